/* job_shuffle: map output over TCP; see job_shuffle.h. */
#include "job_shuffle.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <xxhash.h>

#include "cdl_dt.h"
#include "cdl_log.h"
#include "cdl_util.h"
#include "job_sort.h"
#include "jobs.pb-c.h"

/* A connection idle this long is dropped (server side). */
#define SERVE_IO_MS 30000
/* The request must arrive within this long of the connection: a client
 * that holds a connection without asking keeps a slot from reducers. */
#define REQUEST_MS 5000
/* Name of the job key in WORK/jobs/JOB/. */
#define KEY_FILE "shuffle.key"

bool job_id_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > JOB_ID_MAX || !strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

int job_shuffle_key_new(uint8_t key[JOB_SHUFFLE_KEY_LEN])
{
	return RAND_bytes(key, JOB_SHUFFLE_KEY_LEN) == 1 ? 0 : -EIO;
}

void job_shuffle_sign(const uint8_t *key, size_t keylen, const char *job_id, const char *attempt_id,
		      uint32_t part, uint8_t out[JOB_SHUFFLE_TOKEN_LEN])
{
	size_t jl = strlen(job_id), al = strlen(attempt_id);
	size_t n = jl + 1 + al + 1 + 4;
	uint8_t *msg = xmalloc(n);
	memcpy(msg, job_id, jl + 1);
	memcpy(msg + jl + 1, attempt_id, al + 1);
	cdl_put_be32(msg + jl + 1 + al + 1, part);
	unsigned outlen = JOB_SHUFFLE_TOKEN_LEN;
	if (!HMAC(EVP_sha256(), key, (int)keylen, msg, n, out, &outlen))
		abort(); /* only on allocation failure */
	free(msg);
}

bool job_shuffle_verify(const uint8_t *key, size_t keylen, const char *job_id,
			const char *attempt_id, uint32_t part, const uint8_t *token, size_t toklen)
{
	if (keylen != JOB_SHUFFLE_KEY_LEN || toklen != JOB_SHUFFLE_TOKEN_LEN)
		return false;
	uint8_t want[JOB_SHUFFLE_TOKEN_LEN];
	job_shuffle_sign(key, keylen, job_id, attempt_id, part, want);
	bool ok = CRYPTO_memcmp(want, token, JOB_SHUFFLE_TOKEN_LEN) == 0;
	OPENSSL_cleanse(want, sizeof(want));
	return ok;
}

int job_shuffle_key_save(const char *jobs_dir, const char *job_id, const uint8_t *key,
			 size_t keylen)
{
	if (!job_id_ok(job_id) || keylen != JOB_SHUFFLE_KEY_LEN)
		return -EINVAL;
	char *tmp = xasprintf("%s/%s/." KEY_FILE ".%ld", jobs_dir, job_id, (long)pthread_self());
	char *dst = xasprintf("%s/%s/" KEY_FILE, jobs_dir, job_id);
	int rc = 0;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		goto free_names;
	}
	rc = cdl_write_full(fd, key, keylen);
	if (close(fd) && !rc)
		rc = -errno;
	if (!rc && rename(tmp, dst))
		rc = -errno;
	if (rc)
		unlink(tmp);
free_names:
	free(tmp);
	free(dst);
	return rc;
}

/* The key of job_id from jobs_dir/JOB/shuffle.key, which must be a regular
 * file of ours of exactly the key's length. -ENOENT when this tracker has
 * none (it ran nothing of that job). */
static int key_load(const char *jobs_dir, const char *job_id, uint8_t key[JOB_SHUFFLE_KEY_LEN])
{
	char *path = xasprintf("%s/%s/" KEY_FILE, jobs_dir, job_id);
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	free(path);
	if (fd < 0)
		return errno == ENOENT || errno == ENOTDIR ? -ENOENT : -errno;
	struct stat st;
	int rc = 0;
	if (fstat(fd, &st))
		rc = -errno;
	else if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
		 st.st_size != JOB_SHUFFLE_KEY_LEN)
		rc = -EBADMSG;
	else
		rc = cdl_read_full(fd, key, JOB_SHUFFLE_KEY_LEN);
	close(fd);
	return rc;
}

struct job_shuffle_server {
	int lfd, port;
	char *jobs_dir;
	pthread_t accept_thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int active;
	int stop_pipe[2];
	bool stopping;
};

struct conn {
	job_shuffle_server *s;
	int fd;
};

static int send_reply(int fd, const Caudal__ShuffleReply *r)
{
	uint8_t buf[4 + 64];
	size_t n = caudal__shuffle_reply__get_packed_size(r);
	if (n > sizeof(buf) - 4)
		return -EMSGSIZE;
	cdl_put_be32(buf, (uint32_t)n);
	caudal__shuffle_reply__pack(r, buf + 4);
	return cdl_write_full(fd, buf, n + 4);
}

/* Open name in the attempt folder dfd for reading without following a
 * link or blocking on a FIFO: the map task wrote it as the job's user, who
 * could have swapped in a link to a file only we may read. It must be a
 * regular file with one link, owned by the folder's owner (uid). */
static int open_output(int dfd, const char *name, uid_t uid, struct stat *st)
{
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, st)) {
		int e = -errno;
		close(fd);
		return e;
	}
	if (!S_ISREG(st->st_mode) || st->st_nlink != 1 || st->st_uid != uid) {
		close(fd);
		return -EPERM;
	}
	return fd;
}

/* Find partition part of the map output in jobs_dir/JOB/ATTEMPT: the index
 * entry *e and the open data file *out, its bounds checked against the
 * file's size. 0 or -errno (-ENOENT: no such output). */
static int open_run(const char *jobs_dir, const Caudal__ShuffleRequest *req, job_index_entry *e,
		    int *out)
{
	char *dir = xasprintf("%s/%s/%s", jobs_dir, req->job_id, req->attempt_id);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	free(dir);
	if (dfd < 0)
		return errno == ENOTDIR || errno == ELOOP ? -ENOENT : -errno;
	struct stat ds, is, fs;
	int rc = 0, idx = -1, dat = -1;
	if (fstat(dfd, &ds)) {
		rc = -errno;
		goto close_dir;
	}
	if ((idx = open_output(dfd, "file.index", ds.st_uid, &is)) < 0) {
		rc = idx;
		goto close_dir;
	}
	if ((rc = job_index_read_fd(idx, req->partition, e)))
		goto close_files;
	if ((dat = open_output(dfd, "file.out", ds.st_uid, &fs)) < 0) {
		rc = dat;
		goto close_files;
	}
	if (e->offset > (uint64_t)fs.st_size || e->length > (uint64_t)fs.st_size - e->offset) {
		rc = -EBADMSG;
		goto close_files;
	}
	*out = dat;
	dat = -1;
close_files:
	if (dat >= 0)
		close(dat);
	close(idx);
close_dir:
	close(dfd);
	return rc;
}

/* Answer one request on fd from the map output under jobs_dir. Every
 * length from the peer is bounded before use; ids are checked before they
 * become path components, and the token before any file is opened. */
void job_shuffle_serve_fd(const char *jobs_dir, int fd)
{
	uint8_t hdr[8];
	uint8_t *body = NULL;
	Caudal__ShuffleRequest *req = NULL;
	Caudal__ShuffleReply rep = CAUDAL__SHUFFLE_REPLY__INIT;
	uint8_t key[JOB_SHUFFLE_KEY_LEN];
	int file = -1;
	if (cdl_dt_read_full(fd, hdr, sizeof(hdr)))
		goto out;
	uint32_t len = cdl_get_be32(hdr + 4);
	if (memcmp(hdr, JOB_SHUFFLE_MAGIC, 4) != 0 || len == 0 || len > JOB_SHUFFLE_MAX_HEADER) {
		cdl_warn("shuffle: bad request header from a client (length %u)", len);
		goto out;
	}
	body = xmalloc(len);
	if (cdl_dt_read_full(fd, body, len))
		goto out;
	req = caudal__shuffle_request__unpack(NULL, len, body);
	if (!req || !job_id_ok(req->job_id) || !job_id_ok(req->attempt_id)) {
		rep.err = EINVAL;
		send_reply(fd, &rep);
		goto out;
	}
	int rc = key_load(jobs_dir, req->job_id, key);
	if (rc == 0 && !job_shuffle_verify(key, sizeof(key), req->job_id, req->attempt_id,
					   req->partition, req->token.data, req->token.len)) {
		cdl_warn("shuffle: refused a fetch of '%s' partition %u: %s token", req->attempt_id,
			 req->partition, req->token.len ? "bad" : "no");
		rc = -EACCES;
	}
	OPENSSL_cleanse(key, sizeof(key));
	job_index_entry e;
	if (rc == 0)
		rc = open_run(jobs_dir, req, &e, &file);
	if (rc) {
		rep.err = (uint32_t)(rc == -ENOENT ? ENOENT : -rc);
		cdl_debug("shuffle: '%s/%s' partition %u: %s", req->job_id, req->attempt_id,
			  req->partition, strerror(-rc));
		send_reply(fd, &rep);
		goto out;
	}
	rep.length = e.length;
	rep.checksum = e.checksum;
	rep.records = e.records;
	if (send_reply(fd, &rep))
		goto out;
	off_t off = (off_t)e.offset;
	uint64_t left = e.length;
	while (left > 0) {
		ssize_t k = sendfile(fd, file, &off, left > (1u << 30) ? (1u << 30) : left);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			cdl_warn("shuffle: sending '%s' partition %u: %s", req->attempt_id,
				 req->partition, k < 0 ? strerror(errno) : "short file");
			break;
		}
		left -= (uint64_t)k;
	}
out:
	if (file >= 0)
		close(file);
	if (req)
		caudal__shuffle_request__free_unpacked(req, NULL);
	free(body);
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	job_shuffle_serve_fd(c->s->jobs_dir, c->fd);
	close(c->fd);
	pthread_mutex_lock(&c->s->mu);
	c->s->active--;
	pthread_cond_broadcast(&c->s->cv);
	pthread_mutex_unlock(&c->s->mu);
	free(c);
	return NULL;
}

static void *accept_main(void *arg)
{
	job_shuffle_server *s = arg;
	for (;;) {
		struct pollfd pf[2] = {{s->lfd, POLLIN, 0}, {s->stop_pipe[0], POLLIN, 0}};
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[1].revents)
			break;
		int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE)
				usleep(100000);
			continue;
		}
		pthread_mutex_lock(&s->mu);
		bool full = s->active >= JOB_SHUFFLE_CONNS;
		if (!full)
			s->active++;
		pthread_mutex_unlock(&s->mu);
		if (full) {
			close(fd); /* the reducer retries */
			continue;
		}
		cdl_dt_tune(fd, SERVE_IO_MS);
		struct timeval tv = {REQUEST_MS / 1000, 0};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		struct conn *c = xmalloc(sizeof(*c));
		c->s = s;
		c->fd = fd;
		pthread_t t;
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &at, conn_main, c)) {
			close(fd);
			free(c);
			pthread_mutex_lock(&s->mu);
			s->active--;
			pthread_mutex_unlock(&s->mu);
		}
		pthread_attr_destroy(&at);
	}
	return NULL;
}

job_shuffle_server *job_shuffle_start(const char *host, int port, const char *jobs_dir)
{
	int bound = 0;
	int fd = cdl_dt_listen(host, port, &bound);
	if (fd < 0) {
		cdl_err("cannot listen for shuffle on '%s:%d': %s", host, port, strerror(-fd));
		return NULL;
	}
	job_shuffle_server *s = xcalloc(1, sizeof(*s));
	s->lfd = fd;
	s->port = bound;
	s->jobs_dir = xstrdup(jobs_dir);
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	if (pipe2(s->stop_pipe, O_CLOEXEC) ||
	    pthread_create(&s->accept_thread, NULL, accept_main, s)) {
		cdl_err("cannot start the shuffle server: %s", strerror(errno));
		close(fd);
		free(s->jobs_dir);
		free(s);
		return NULL;
	}
	return s;
}

int job_shuffle_port(const job_shuffle_server *s)
{
	return s->port;
}

void job_shuffle_stop(job_shuffle_server *s)
{
	if (!s)
		return;
	ssize_t w = write(s->stop_pipe[1], "x", 1);
	(void)w;
	pthread_join(s->accept_thread, NULL);
	close(s->lfd);
	pthread_mutex_lock(&s->mu);
	while (s->active > 0)
		pthread_cond_wait(&s->cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
	close(s->stop_pipe[0]);
	close(s->stop_pipe[1]);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s->jobs_dir);
	free(s);
}

int job_shuffle_fetch(const char *host, int port, const char *job_id, const char *attempt_id,
		      unsigned part, const uint8_t *key, size_t keylen, int fd, uint64_t max_len,
		      int timeout_ms, uint64_t *len, uint64_t *records, char *err, size_t errlen)
{
	int s = cdl_dt_connect(host, port, timeout_ms, timeout_ms);
	if (s < 0) {
		snprintf(err, errlen, "cannot connect to '%s:%d': %s", host, port, strerror(-s));
		return s;
	}
	char peer[300];
	snprintf(peer, sizeof(peer), "%s:%d", host, port);
	int rc = job_shuffle_fetch_fd(s, peer, job_id, attempt_id, part, key, keylen, fd, max_len,
				      len, records, err, errlen);
	close(s);
	return rc;
}

int job_shuffle_fetch_fd(int s, const char *peer, const char *job_id, const char *attempt_id,
			 unsigned part, const uint8_t *key, size_t keylen, int fd, uint64_t max_len,
			 uint64_t *len, uint64_t *records, char *err, size_t errlen)
{
	Caudal__ShuffleRequest req = CAUDAL__SHUFFLE_REQUEST__INIT;
	Caudal__ShuffleReply *rep = NULL;
	uint8_t token[JOB_SHUFFLE_TOKEN_LEN];
	job_shuffle_sign(key, keylen, job_id, attempt_id, part, token);
	req.job_id = (char *)job_id;
	req.attempt_id = (char *)attempt_id;
	req.partition = part;
	req.token.data = token;
	req.token.len = sizeof(token);
	size_t n = caudal__shuffle_request__get_packed_size(&req);
	if (n > JOB_SHUFFLE_MAX_HEADER) {
		snprintf(err, errlen, "request too long");
		return -EINVAL;
	}
	uint8_t *buf = xmalloc(8 + n);
	memcpy(buf, JOB_SHUFFLE_MAGIC, 4);
	cdl_put_be32(buf + 4, (uint32_t)n);
	caudal__shuffle_request__pack(&req, buf + 8);
	int rc = cdl_write_full(s, buf, 8 + n);
	free(buf);
	uint8_t hl[4], body[JOB_SHUFFLE_MAX_HEADER];
	char *data = NULL;
	void *xs = NULL;
	if (rc || (rc = cdl_dt_read_full(s, hl, 4))) {
		snprintf(err, errlen, "'%s': %s", peer, strerror(-rc));
		goto out;
	}
	uint32_t rl = cdl_get_be32(hl);
	if (rl == 0 || rl > JOB_SHUFFLE_MAX_HEADER) {
		rc = -EPROTO;
		snprintf(err, errlen, "'%s': bad reply length %u", peer, rl);
		goto out;
	}
	if ((rc = cdl_dt_read_full(s, body, rl))) {
		snprintf(err, errlen, "'%s': %s", peer, strerror(-rc));
		goto out;
	}
	rep = caudal__shuffle_reply__unpack(NULL, rl, body);
	if (!rep) {
		rc = -EPROTO;
		snprintf(err, errlen, "'%s': undecodable reply", peer);
		goto out;
	}
	if (rep->err > 4095) {
		rc = -EPROTO;
		snprintf(err, errlen, "'%s': bad error %u in the reply", peer, rep->err);
		goto out;
	}
	if (rep->err) {
		rc = -(int)rep->err;
		snprintf(err, errlen, "'%s' has no output of '%s' partition %u: %s", peer,
			 attempt_id, part, strerror((int)rep->err));
		goto out;
	}
	if (rep->length > max_len) {
		rc = -EFBIG;
		snprintf(err, errlen, "'%s': run of %llu bytes exceeds the cap of %llu", peer,
			 (unsigned long long)rep->length, (unsigned long long)max_len);
		goto out;
	}
	xs = XXH3_createState();
	if (!xs)
		abort();
	XXH3_64bits_reset(xs);
	size_t cap = 1u << 20;
	data = xmalloc(cap);
	uint64_t left = rep->length;
	while (left > 0) {
		size_t k = left < cap ? (size_t)left : cap;
		if ((rc = cdl_dt_read_full(s, data, k))) {
			snprintf(err, errlen, "'%s': reading the run: %s", peer, strerror(-rc));
			goto out;
		}
		XXH3_64bits_update(xs, data, k);
		if ((rc = cdl_write_full(fd, data, k))) {
			snprintf(err, errlen, "writing the fetched run: %s", strerror(-rc));
			goto out;
		}
		left -= k;
	}
	if (XXH3_64bits_digest(xs) != rep->checksum) {
		rc = -EBADMSG;
		snprintf(err, errlen, "'%s': checksum mismatch on '%s' partition %u", peer,
			 attempt_id, part);
		goto out;
	}
	*len = rep->length;
	*records = rep->records;
out:
	if (xs)
		XXH3_freeState(xs);
	free(data);
	if (rep)
		caudal__shuffle_reply__free_unpacked(rep, NULL);
	return rc;
}
