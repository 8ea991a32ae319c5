/* nn_ckpt: see nn_ckpt.h. */
#include "nn_ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cdl_log.h"
#include "cdl_util.h"

#define PIECE	   (4u << 20)
#define SESSION_MS (10 * 60 * 1000)

static struct {
	pthread_mutex_t lock;
	nn_ns *ns;
	uint64_t session;
	char *dir;
	int64_t started_ms;
} ck = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Remove a flat folder (checkpoints have no subfolders). */
static void rm_flat(const char *dir)
{
	DIR *d = opendir(dir);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.' &&
			    (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
				continue;
			char *p = xasprintf("%s/%s", dir, e->d_name);
			unlink(p);
			free(p);
		}
		closedir(d);
	}
	rmdir(dir);
}

static void end_session_locked(void)
{
	if (ck.dir) {
		rm_flat(ck.dir);
		free(ck.dir);
		ck.dir = NULL;
	}
	ck.session = 0;
}

static void h_begin(void *ctx, const ProtobufCMessage *req, ProtobufCMessage *rep_, cdl_arena *a)
{
	Caudal__CheckpointReply *rep = (void *)rep_;
	nn_ns *ns = ctx;
	(void)req;
	pthread_mutex_lock(&ck.lock);
	if (ck.session && cdl_now_ms() - ck.started_ms < SESSION_MS) {
		rep->err = EBUSY;
		goto out;
	}
	end_session_locked();
	ck.session = (uint64_t)cdl_wall_ns();
	ck.started_ms = cdl_now_ms();
	ck.dir = xasprintf("%s-checkpoint", ns->conf.dir);
	rm_flat(ck.dir); /* a leftover from a crash */
	/* the namespace lock makes txid and the checkpoint agree */
	pthread_mutex_lock(&ns->lock);
	int rc = nn_store_checkpoint(ns->st, ck.dir);
	rep->txid = ns->txid;
	pthread_mutex_unlock(&ns->lock);
	if (rc < 0) {
		end_session_locked();
		rep->err = EIO;
		goto out;
	}
	DIR *d = opendir(ck.dir);
	if (!d) {
		end_session_locked();
		rep->err = EIO;
		goto out;
	}
	size_t cap = 16;
	rep->files = cdl_arena_alloc(a, cap * sizeof(*rep->files));
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char *p = xasprintf("%s/%s", ck.dir, e->d_name);
		struct stat st;
		int ok = stat(p, &st) == 0 && S_ISREG(st.st_mode);
		free(p);
		if (!ok)
			continue;
		if (rep->n_files == cap) {
			Caudal__CheckpointFile **nf =
			    cdl_arena_alloc(a, cap * 2 * sizeof(*rep->files));
			memcpy(nf, rep->files, cap * sizeof(*rep->files));
			rep->files = nf;
			cap *= 2;
		}
		Caudal__CheckpointFile *f = cdl_arena_alloc(a, sizeof(*f));
		caudal__checkpoint_file__init(f);
		f->name = cdl_arena_strdup(a, e->d_name);
		f->size = (uint64_t)st.st_size;
		rep->files[rep->n_files++] = f;
	}
	closedir(d);
	rep->session = ck.session;
	cdl_info("checkpoint at txid %" PRIu64 ": %zu files", rep->txid, rep->n_files);
out:
	pthread_mutex_unlock(&ck.lock);
}

static void h_read(void *ctx, const ProtobufCMessage *req_, ProtobufCMessage *rep_, cdl_arena *a)
{
	const Caudal__CheckpointRequest *req = (const void *)req_;
	Caudal__CheckpointReply *rep = (void *)rep_;
	(void)ctx;
	pthread_mutex_lock(&ck.lock);
	if (!ck.session || req->session != ck.session) {
		rep->err = ESTALE;
		goto out;
	}
	if (cdl_name_check(req->file, NULL) < 0) {
		rep->err = EINVAL;
		goto out;
	}
	char *p = xasprintf("%s/%s", ck.dir, req->file);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	free(p);
	if (fd < 0) {
		rep->err = (uint32_t)errno;
		goto out;
	}
	uint32_t len = req->length && req->length < PIECE ? req->length : PIECE;
	uint8_t *buf = cdl_arena_alloc(a, len);
	ssize_t n = pread(fd, buf, len, (off_t)req->offset);
	close(fd);
	if (n < 0) {
		rep->err = (uint32_t)errno;
		goto out;
	}
	rep->data.data = buf;
	rep->data.len = (size_t)n;
	rep->session = ck.session;
out:
	pthread_mutex_unlock(&ck.lock);
}

static void h_end(void *ctx, const ProtobufCMessage *req_, ProtobufCMessage *rep_, cdl_arena *a)
{
	const Caudal__CheckpointRequest *req = (const void *)req_;
	Caudal__Status *rep = (void *)rep_;
	(void)ctx, (void)a;
	pthread_mutex_lock(&ck.lock);
	if (ck.session && req->session == ck.session)
		end_session_locked();
	else
		rep->err = ESTALE;
	pthread_mutex_unlock(&ck.lock);
}

/* The metadata database goes only to a checkpointer (namenode certificate)
 * or an admin. */
#define NN_CKPT_ROLES (CDL_ROLE_BIT(CDL_ROLE_NAMENODE) | CDL_ROLE_BIT(CDL_ROLE_ADMIN))

static const cdl_rpc_method methods[] = {
    {"CheckpointBegin", h_begin, 0, NN_CKPT_ROLES},
    {"CheckpointRead", h_read, 0, NN_CKPT_ROLES},
    {"CheckpointEnd", h_end, 0, NN_CKPT_ROLES},
    {NULL, NULL, 0, 0},
};

int nn_ckpt_register(nn_ns *ns, cdl_rpc_server *srv)
{
	ck.ns = ns;
	return cdl_rpc_server_add(srv, &caudal__namenode_protocol__descriptor, methods, ns);
}

void nn_ckpt_shutdown(void)
{
	pthread_mutex_lock(&ck.lock);
	end_session_locked();
	pthread_mutex_unlock(&ck.lock);
}

/* ---------------------------------------------------------------- checkpointer */

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

static int name_cmp(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Keep the newest `keep` ckpt-<txid> folders (names sort by txid: fixed width). */
static void prune(const char *dir, int keep)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	char **names = NULL;
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, "ckpt-", 5)) {
			names = xrealloc(names, (n + 1) * sizeof(char *));
			names[n++] = xstrdup(e->d_name);
		}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(char *), name_cmp);
	for (size_t i = 0; i < n; i++) {
		if (i + (size_t)keep < n) {
			char *p = xasprintf("%s/%s", dir, names[i]);
			rm_flat(p);
			free(p);
		}
		free(names[i]);
	}
	free(names);
}

static int fetch_file(cdl_rpc_client *c, uint64_t session, const Caudal__CheckpointFile *f,
		      const char *dst, int timeout_ms)
{
	if (cdl_name_check(f->name, NULL) < 0)
		return -EPROTO;
	char *p = xasprintf("%s/%s", dst, f->name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	free(p);
	if (fd < 0)
		return -errno;
	int rc = 0;
	uint64_t off = 0;
	while (off < f->size) {
		Caudal__CheckpointRequest q = CAUDAL__CHECKPOINT_REQUEST__INIT;
		q.session = session;
		q.file = f->name;
		q.offset = off;
		q.length = PIECE;
		Caudal__CheckpointReply *r;
		rc = cdl_rpc_call_name(c, "CheckpointRead", &q.base, (ProtobufCMessage **)&r,
				       timeout_ms);
		if (rc < 0)
			break;
		if (r->err || r->data.len == 0) {
			rc = r->err ? -(int)r->err : -EPROTO;
			protobuf_c_message_free_unpacked(&r->base, NULL);
			break;
		}
		rc = cdl_write_full(fd, r->data.data, r->data.len);
		off += r->data.len;
		protobuf_c_message_free_unpacked(&r->base, NULL);
		if (rc < 0)
			break;
	}
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

int nn_ckpt_fetch(const char *addr, const char *dir, int keep, int timeout_ms, uint64_t *txid)
{
	int rc = cdl_mkdirs(dir);
	if (rc < 0)
		return rc;
	cdl_rpc_client *c = cdl_rpc_client_new(addr, &caudal__namenode_protocol__descriptor);
	if (!c)
		return -EINVAL;
	Caudal__Empty e = CAUDAL__EMPTY__INIT;
	Caudal__CheckpointReply *b;
	rc = cdl_rpc_call_name(c, "CheckpointBegin", &e.base, (ProtobufCMessage **)&b, timeout_ms);
	if (rc < 0)
		goto out;
	if (b->err) {
		rc = -(int)b->err;
		protobuf_c_message_free_unpacked(&b->base, NULL);
		goto out;
	}
	char *tmp = xasprintf("%s/tmp-ckpt", dir);
	char *final = xasprintf("%s/ckpt-%020" PRIu64, dir, b->txid);
	rm_flat(tmp);
	rc = mkdir(tmp, 0755) < 0 ? -errno : 0;
	for (size_t i = 0; rc == 0 && i < b->n_files; i++)
		rc = fetch_file(c, b->session, b->files[i], tmp, timeout_ms);
	if (rc == 0)
		rc = fsync_dir(tmp);
	if (rc == 0) {
		rm_flat(final);
		rc = rename(tmp, final) < 0 ? -errno : fsync_dir(dir);
	}
	if (rc < 0)
		rm_flat(tmp);
	else if (txid)
		*txid = b->txid;
	Caudal__CheckpointRequest q = CAUDAL__CHECKPOINT_REQUEST__INIT;
	q.session = b->session;
	ProtobufCMessage *r;
	if (cdl_rpc_call_name(c, "CheckpointEnd", &q.base, &r, timeout_ms) == 0)
		protobuf_c_message_free_unpacked(r, NULL);
	protobuf_c_message_free_unpacked(&b->base, NULL);
	free(tmp);
	free(final);
	if (rc == 0)
		prune(dir, keep);
out:
	cdl_rpc_client_free(c);
	return rc;
}

int nn_ckpt_restore(const char *src, const char *dst)
{
	DIR *d = opendir(dst);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d)))
			if (e->d_name[0] != '.') {
				closedir(d);
				cdl_err("cannot restore into '%s': it is not empty", dst);
				return -ENOTEMPTY;
			}
		closedir(d);
	}
	int rc = cdl_mkdirs(dst);
	if (rc < 0)
		return rc;
	d = opendir(src);
	if (!d)
		return -errno;
	struct dirent *e;
	char *buf = xmalloc(1 << 20);
	while (rc == 0 && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char *sp = xasprintf("%s/%s", src, e->d_name);
		char *dp = xasprintf("%s/%s", dst, e->d_name);
		int in = open(sp, O_RDONLY | O_CLOEXEC);
		int out = in < 0 ? -1 : open(dp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (in < 0 || out < 0)
			rc = -errno;
		ssize_t n;
		while (rc == 0 && (n = read(in, buf, 1 << 20)) > 0)
			rc = cdl_write_full(out, buf, (size_t)n);
		if (rc == 0 && fsync(out) < 0)
			rc = -errno;
		if (in >= 0)
			close(in);
		if (out >= 0)
			close(out);
		free(sp);
		free(dp);
	}
	closedir(d);
	free(buf);
	if (rc == 0)
		rc = fsync_dir(dst);
	return rc;
}
