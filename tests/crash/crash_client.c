/* The crash test's client: one namespace operation per line of stdin,
 * one answer line per operation on stdout, so that the driver
 * (tests/crash/crash.py) knows exactly which operations were acknowledged.
 *
 *   crash_client NAMENODE IO_TIMEOUT_MS
 *
 * Fields are separated by tabs (paths never hold one). Operations:
 *   mkdir P | put P LOCAL REPL | append P LOCAL | trunc P SIZE |
 *   chmod P OCTAL | mv SRC DST | rm P (recursive) | setx P NAME HEXVALUE |
 *   rmx P NAME | ln TARGET P | setrep P N | get P LOCAL | dump P |
 *   putsync P LOCAL REPL CHUNK | appendsync P LOCAL CHUNK | blocks P
 * Each answers "ok" or "err ERRNO MESSAGE". putsync and appendsync write
 * CHUNK bytes at a time, each followed by an hsync and a line "synced N"
 * (N: the file's size, durable from then on), with a pause of 20 ms, so
 * that a kill lands in the middle of the write. blocks prints a line
 * "B id gen length" for each block of file P. dump first prints the tree
 * under P, one line per entry, tab-separated:
 *   D path mode | F path mode size sha256|unreadable-ERRNO replication uc(0|1) |
 *   L path target | X path name hexvalue  (user.* attributes only)
 * With the identity $CAUDAL_HOME gives (the admin certificate of a local
 * cluster). Built by the test with the tree's libcaudal (build_tool). */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "caudal.pb-c.h"
#include "cdl_client.h"
#include "cdl_log.h"
#include "cdl_rpc.h"
#include "cdl_sec.h"

static cdl_client *cl;

static int call_status(enum cdl_nn_method m, const ProtobufCMessage *req)
{
	ProtobufCMessage *r = NULL;
	int rc = cdl_client_call_err(cl, m, req, &r);
	if (r)
		protobuf_c_message_free_unpacked(r, NULL);
	return rc;
}

static int setattr(const char *path, uint32_t valid, uint32_t mode, uint64_t size)
{
	Caudal__Target t = CAUDAL__TARGET__INIT;
	Caudal__SetAttrRequest q = CAUDAL__SET_ATTR_REQUEST__INIT;
	t.path = (char *)path;
	q.target = &t;
	q.valid = valid;
	q.mode = mode;
	q.size = size;
	q.cred = cdl_client_cred(cl);
	return call_status(CDL_NN_SetAttr, &q.base);
}

static int unhex(const char *s, uint8_t *out, size_t cap, size_t *len)
{
	size_t n = strlen(s);
	if (n % 2 || n / 2 > cap)
		return -EINVAL;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -EINVAL;
		out[i] = (uint8_t)v;
	}
	*len = n / 2;
	return 0;
}

static void hex(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		printf("%02x", p[i]);
}

static int xattr(enum cdl_nn_method m, const char *path, const char *name, const char *hexval)
{
	Caudal__Target t = CAUDAL__TARGET__INIT;
	Caudal__XattrRequest q = CAUDAL__XATTR_REQUEST__INIT;
	uint8_t val[4096];
	size_t len = 0;
	if (hexval && unhex(hexval, val, sizeof(val), &len) < 0)
		return -EINVAL;
	t.path = (char *)path;
	q.target = &t;
	q.name = (char *)name;
	q.value.data = val;
	q.value.len = len;
	q.cred = cdl_client_cred(cl);
	return call_status(m, &q.base);
}

static int op_file(const char *op, const char *path, const char *local, const char *repl)
{
	int fd = open(local, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = !strcmp(op, "put") ? cdl_put_fd(cl, path, fd, 0644, (uint32_t)atoi(repl), 0, true)
				    : cdl_append_fd(cl, path, fd);
	close(fd);
	return rc;
}

static int op_file_sync(const char *path, const char *local, const char *repl, size_t chunk)
{
	Caudal__Attr *attr = NULL;
	int rc = repl ? cdl_create(cl, path, 0644, (uint32_t)atoi(repl), 0, true, &attr)
		      : cdl_append_open(cl, path, &attr);
	if (rc < 0)
		return rc;
	cdl_writer *w;
	rc = cdl_writer_open(cl, attr, &w);
	protobuf_c_message_free_unpacked(&attr->base, NULL);
	if (rc < 0)
		return rc;
	FILE *f = fopen(local, "rb");
	if (!f) {
		rc = -errno;
		cdl_writer_abort(w);
		return rc;
	}
	static char buf[1 << 20];
	if (chunk == 0 || chunk > sizeof(buf))
		chunk = sizeof(buf);
	size_t n;
	while (rc == 0 && (n = fread(buf, 1, chunk, f)) > 0) {
		rc = cdl_writer_write(w, buf, n);
		if (rc == 0)
			rc = cdl_writer_sync(w);
		if (rc == 0) {
			printf("synced %llu\n", (unsigned long long)cdl_writer_size(w));
			usleep(20 * 1000);
		}
	}
	fclose(f);
	if (rc < 0) {
		cdl_writer_abort(w);
		return rc;
	}
	return cdl_writer_close(w);
}

static int op_get(const char *path, const char *local)
{
	int fd = open(local, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int rc = cdl_get_fd(cl, path, fd);
	close(fd);
	return rc;
}

/* sha256 of a file's content as readers see it now. */
static int sha_file(uint64_t ino, char out[65])
{
	cdl_reader *r;
	int rc = cdl_reader_open(cl, ino, &r);
	if (rc < 0)
		return rc;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	static uint8_t buf[1 << 20];
	uint64_t off = 0;
	for (;;) {
		ssize_t n = cdl_reader_pread(r, buf, sizeof(buf), off);
		if (n < 0) {
			rc = (int)n;
			break;
		}
		if (n == 0)
			break;
		EVP_DigestUpdate(ctx, buf, (size_t)n);
		off += (uint64_t)n;
	}
	uint8_t md[32];
	unsigned mdl = 0;
	EVP_DigestFinal_ex(ctx, md, &mdl);
	EVP_MD_CTX_free(ctx);
	cdl_reader_close(r);
	for (unsigned i = 0; i < mdl; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return rc;
}

static int dump_xattrs(const char *path)
{
	Caudal__Target t = CAUDAL__TARGET__INIT;
	Caudal__XattrRequest q = CAUDAL__XATTR_REQUEST__INIT;
	t.path = (char *)path;
	q.target = &t;
	q.cred = cdl_client_cred(cl);
	Caudal__XattrReply *r = NULL;
	int rc = cdl_client_call_err(cl, CDL_NN_ListXattr, &q.base, (ProtobufCMessage **)&r);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < r->n_names && rc == 0; i++) {
		if (strncmp(r->names[i], "user.", 5) || !strncmp(r->names[i], "user.caudal.", 12))
			continue;
		q.name = r->names[i];
		Caudal__XattrReply *v = NULL;
		rc = cdl_client_call_err(cl, CDL_NN_GetXattr, &q.base, (ProtobufCMessage **)&v);
		if (rc < 0)
			break;
		printf("X\t%s\t%s\t", path, r->names[i]);
		hex(v->value.data, v->value.len);
		printf("\n");
		protobuf_c_message_free_unpacked(&v->base, NULL);
	}
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return rc;
}

static int blocks(const char *path)
{
	Caudal__Target t = CAUDAL__TARGET__INIT;
	Caudal__GetBlocksRequest q = CAUDAL__GET_BLOCKS_REQUEST__INIT;
	t.path = (char *)path;
	q.target = &t;
	q.cred = cdl_client_cred(cl);
	Caudal__GetBlocksReply *r = NULL;
	int rc = cdl_client_call_err(cl, CDL_NN_GetBlocks, &q.base, (ProtobufCMessage **)&r);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < r->n_blocks; i++)
		printf("B\t%llu\t%llu\t%llu\n", (unsigned long long)r->blocks[i]->id,
		       (unsigned long long)r->blocks[i]->gen,
		       (unsigned long long)r->blocks[i]->length);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return 0;
}

/* Print the tree under dir (depth first, names in order). */
static int dump(const char *dir)
{
	char after[256] = "";
	for (;;) {
		Caudal__Target t = CAUDAL__TARGET__INIT;
		Caudal__ReaddirRequest q = CAUDAL__READDIR_REQUEST__INIT;
		t.path = (char *)dir;
		q.target = &t;
		q.after = after;
		q.limit = 1000;
		q.cred = cdl_client_cred(cl);
		Caudal__ReaddirReply *r = NULL;
		int rc = cdl_client_call_err(cl, CDL_NN_Readdir, &q.base, (ProtobufCMessage **)&r);
		if (rc < 0)
			return rc;
		for (size_t i = 0; i < r->n_entries && rc == 0; i++) {
			Caudal__Dirent *e = r->entries[i];
			char *p;
			if (asprintf(&p, "%s/%s", strcmp(dir, "/") ? dir : "", e->name) < 0)
				abort();
			uint32_t mode = e->attr->mode;
			if (S_ISDIR(mode)) {
				printf("D\t%s\t%o\n", p, mode & 07777);
				rc = dump_xattrs(p);
				if (rc == 0)
					rc = dump(p);
			} else if (S_ISLNK(mode)) {
				Caudal__Target lt = CAUDAL__TARGET__INIT;
				Caudal__GetAttrRequest lq = CAUDAL__GET_ATTR_REQUEST__INIT;
				lt.path = p;
				lq.target = &lt;
				lq.cred = cdl_client_cred(cl);
				Caudal__ReadlinkReply *lr = NULL;
				rc = cdl_client_call_err(cl, CDL_NN_Readlink, &lq.base,
							 (ProtobufCMessage **)&lr);
				if (rc == 0) {
					printf("L\t%s\t%s\n", p, lr->link);
					protobuf_c_message_free_unpacked(&lr->base, NULL);
				}
			} else {
				/* a file that cannot be read is listed as such: the
				 * driver reports it rather than losing the listing */
				char sha[65] = "";
				int rrc = sha_file(e->attr->ino, sha);
				if (rrc < 0)
					snprintf(sha, sizeof(sha), "unreadable-%d", -rrc);
				printf("F\t%s\t%o\t%llu\t%s\t%u\t%d\n", p, mode & 07777,
				       (unsigned long long)e->attr->size, sha, e->attr->replication,
				       e->attr->under_construction);
				rc = dump_xattrs(p);
			}
			free(p);
			snprintf(after, sizeof(after), "%s", e->name);
		}
		bool more = r->more;
		protobuf_c_message_free_unpacked(&r->base, NULL);
		if (rc < 0)
			return rc;
		if (!more)
			return 0;
	}
}

/* One operation; 0 or -errno. */
static int run(char **f, int n)
{
	const char *op = f[0];
	if (!strcmp(op, "mkdir") && n == 2)
		return cdl_mkdir(cl, f[1], 0755, false);
	if ((!strcmp(op, "put") && n == 4) || (!strcmp(op, "append") && n == 3))
		return op_file(op, f[1], f[2], n == 4 ? f[3] : NULL);
	if (!strcmp(op, "putsync") && n == 5)
		return op_file_sync(f[1], f[2], f[3], strtoull(f[4], NULL, 10));
	if (!strcmp(op, "appendsync") && n == 4)
		return op_file_sync(f[1], f[2], NULL, strtoull(f[3], NULL, 10));
	if (!strcmp(op, "trunc") && n == 3)
		return setattr(f[1], CAUDAL__SET_ATTR_FIELD__SA_SIZE, 0, strtoull(f[2], NULL, 10));
	if (!strcmp(op, "chmod") && n == 3)
		return setattr(f[1], CAUDAL__SET_ATTR_FIELD__SA_MODE,
			       (uint32_t)strtoul(f[2], NULL, 8), 0);
	if (!strcmp(op, "mv") && n == 3)
		return cdl_rename(cl, f[1], f[2]);
	if (!strcmp(op, "rm") && n == 2)
		return cdl_delete(cl, f[1], true);
	if (!strcmp(op, "setx") && n == 4)
		return xattr(CDL_NN_SetXattr, f[1], f[2], f[3]);
	if (!strcmp(op, "rmx") && n == 3)
		return xattr(CDL_NN_RemoveXattr, f[1], f[2], NULL);
	if (!strcmp(op, "ln") && n == 3) {
		Caudal__Target t = CAUDAL__TARGET__INIT;
		Caudal__SymlinkRequest q = CAUDAL__SYMLINK_REQUEST__INIT;
		t.path = f[2];
		q.target = &t;
		q.link = f[1];
		q.cred = cdl_client_cred(cl);
		return call_status(CDL_NN_Symlink, &q.base);
	}
	if (!strcmp(op, "setrep") && n == 3) {
		Caudal__Target t = CAUDAL__TARGET__INIT;
		Caudal__SetReplicationRequest q = CAUDAL__SET_REPLICATION_REQUEST__INIT;
		t.path = f[1];
		q.target = &t;
		q.replication = (uint32_t)atoi(f[2]);
		q.cred = cdl_client_cred(cl);
		return call_status(CDL_NN_SetReplication, &q.base);
	}
	if (!strcmp(op, "blocks") && n == 2)
		return blocks(f[1]);
	if (!strcmp(op, "get") && n == 3)
		return op_get(f[1], f[2]);
	if (!strcmp(op, "dump") && n == 2)
		return dump(f[1]);
	return -EINVAL;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: crash_client NAMENODE IO_TIMEOUT_MS\n");
		return 2;
	}
	cdl_log_init("crash-client", CDL_LOG_ERROR);
	char err[512];
	if (cdl_sec_client_init(getenv("CAUDAL_HOME"), NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	cdl_rpc_global_init();
	int tmo = atoi(argv[2]);
	cdl_client_opts o = {.namenode = argv[1],
			     .io_timeout_ms = tmo,
			     .rpc_timeout_ms = tmo < 5000 ? tmo : 5000,
			     .lease_renew_ms = 500};
	cl = cdl_client_new(&o);
	if (!cl)
		return 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	char line[8192];
	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\n")] = '\0';
		char *f[8];
		int n = 0;
		for (char *s = line, *tok; n < 8 && (tok = strsep(&s, "\t"));)
			f[n++] = tok;
		int rc = n ? run(f, n) : -EINVAL;
		if (rc == 0)
			printf("ok\n");
		else
			printf("err %d %s\n", -rc, strerror(-rc));
	}
	cdl_client_free(cl);
	cdl_rpc_global_shutdown();
	return 0;
}
