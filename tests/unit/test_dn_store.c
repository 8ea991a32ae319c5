/* Unit test of the datanode block store and scanner: replica files and
 * sidecars, reads that verify, corruption detected by reads and by the
 * scanner, the persistent id and the data-dir lock, the start-up scan
 * (bad sidecars moved aside, hsynced replicas recovered after a crash,
 * unsynced ones dropped), superseded writers, deletes and usage figures;
 * several data dirs: the id shared and mixed ids refused, placement by free
 * space, a full dir (ENOSPC, reserve; on tmpfs mounts when run as root),
 * a failed dir whose replicas are reported deleted, and the tolerated
 * count. Exits non-zero on any failure. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cdl_checksum.h"
#include "cdl_log.h"
#include "cdl_util.h"
#include "dn_scan.h"
#include "dn_store.h"

static int failures;
#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			failures++;                                                                \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);            \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
		}                                                                                  \
	} while (0)

static pthread_mutex_t ev_mu = PTHREAD_MUTEX_INITIALIZER;
static int ev_count[3];
static uint64_t ev_last_id[3], ev_last_len[3];

static void listener(void *ctx, enum dn_event ev, uint64_t id, uint64_t gen, uint64_t len)
{
	(void)ctx;
	(void)gen;
	pthread_mutex_lock(&ev_mu);
	ev_count[ev]++;
	ev_last_id[ev] = id;
	ev_last_len[ev] = len;
	pthread_mutex_unlock(&ev_mu);
}

static int events(enum dn_event ev)
{
	pthread_mutex_lock(&ev_mu);
	int n = ev_count[ev];
	pthread_mutex_unlock(&ev_mu);
	return n;
}

static void pattern(uint8_t *p, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)((i * 2654435761u) >> 13 ^ seed);
}

/* Append data in uneven pieces, as packets after hsyncs would arrive. */
static int put(dn_store *s, uint64_t id, uint64_t gen, const uint8_t *d, size_t len, bool sync)
{
	dn_wr *w;
	int rc = dn_store_create(s, id, gen, &w);
	if (rc < 0)
		return rc;
	size_t off = 0, piece = 1000;
	while (off < len) {
		size_t k = len - off < piece ? len - off : piece;
		/* packets never cross a chunk boundary */
		size_t room = CDL_CHUNK - off % CDL_CHUNK;
		if (k > room)
			k = room;
		rc = dn_wr_append(w, d + off, k, cdl_xxh3(d + off, k));
		if (rc < 0) {
			dn_wr_abandon(w);
			return rc;
		}
		off += k;
		piece = piece == 1000 ? CDL_CHUNK : 1000;
	}
	return dn_wr_finalize(w, sync);
}

/* Read a whole replica back through dn_rd, verifying every chunk. */
static int get(dn_store *s, uint64_t id, uint64_t gen, uint8_t **out, uint64_t *len)
{
	dn_rd rd;
	*out = NULL;
	int rc = dn_store_open_read(s, id, gen, &rd);
	if (rc < 0)
		return rc;
	uint8_t *buf = xmalloc(rd.len + CDL_CHUNK);
	for (uint64_t idx = 0; idx * CDL_CHUNK < rd.len; idx++) {
		size_t n;
		uint64_t sum;
		rc = dn_rd_chunk(&rd, idx, buf + idx * CDL_CHUNK, &n, &sum);
		if (rc < 0)
			break;
	}
	*len = rd.len;
	dn_rd_release(&rd);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	*out = buf;
	return 0;
}

static char *blk_path(const char *dir, uint64_t id, uint64_t gen, const char *sfx)
{
	return xasprintf("%s/current/%02x/blk_%" PRIu64 "_%" PRIu64 "%s", dir, (unsigned)(id % 64),
			 id, gen, sfx);
}

static void flip(const char *path, off_t off)
{
	int fd = open(path, O_RDWR);
	uint8_t b = 0;
	CHECK(fd >= 0 && pread(fd, &b, 1, off) == 1, "read '%s'", path);
	b ^= 1;
	CHECK(pwrite(fd, &b, 1, off) == 1, "write '%s'", path);
	close(fd);
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p);
}

/* In a child: write a replica, hsync part of it, write more, and die
 * without cleaning up. */
static void crash_writer(const char *dir, uint64_t id, const uint8_t *d, size_t synced, size_t more)
{
	pid_t pid = fork();
	if (pid == 0) {
		dn_store *s;
		if (dn_store_open(dir, &s) < 0)
			_exit(2);
		dn_wr *w;
		if (dn_store_create(s, id, 1, &w) < 0)
			_exit(3);
		if (synced &&
		    (dn_wr_append(w, d, synced, cdl_xxh3(d, synced)) < 0 || dn_wr_sync(w) < 0))
			_exit(4);
		if (dn_wr_append(w, d + synced, more, cdl_xxh3(d + synced, more)) < 0)
			_exit(5);
		_exit(0);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "crash writer exit %d", WEXITSTATUS(st));
}

static int fatal_calls;
static void on_fatal(void *ctx)
{
	(void)ctx;
	__atomic_add_fetch(&fatal_calls, 1, __ATOMIC_SEQ_CST);
}

static void write_line(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	CHECK(f && fprintf(f, "%s\n", text) > 0, "write '%s'", path);
	if (f)
		fclose(f);
}

static char *read_line(const char *path)
{
	char buf[128] = "";
	FILE *f = fopen(path, "r");
	if (f) {
		if (!fgets(buf, sizeof(buf), f))
			buf[0] = '\0';
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = '\0';
	return xstrdup(buf);
}

/* Ids shared over the dirs; bad lists refused. */
static void test_vol_config(const char *root)
{
	char *a = xasprintf("%s/ca", root), *b = xasprintf("%s/cb", root);
	char *list = xasprintf("%s,%s", a, b);
	dn_store *s = NULL;
	CHECK(dn_store_open(list, &s) == 0, "open two dirs");
	if (s) {
		char *ia = xasprintf("%s/datanode_id", a), *ib = xasprintf("%s/datanode_id", b);
		char *x = read_line(ia), *y = read_line(ib);
		CHECK(*x && !strcmp(x, y) && !strcmp(x, dn_store_id(s)), "id '%s' vs '%s'", x, y);
		CHECK(!strcmp(dn_store_dir(s), list), "dirs as configured");
		CHECK(dn_store_set_cluster(s, "cid-9") == 0, "set cluster");
		dn_store_free(s);
		free(x);
		free(y);
		char *cb = xasprintf("%s/cluster_id", b);
		x = read_line(cb);
		CHECK(!strcmp(x, "cid-9"), "cluster id in every dir: '%s'", x);
		free(x);
		/* a third dir joins: it gets the id */
		char *c = xasprintf("%s/cc", root);
		char *list3 = xasprintf("%s, %s ,%s", a, b, c);
		s = NULL;
		CHECK(dn_store_open(list3, &s) == 0, "open three dirs (spaces trimmed)");
		char *ic = xasprintf("%s/datanode_id", c);
		x = read_line(ia);
		y = read_line(ic);
		CHECK(!strcmp(x, y), "id copied to a new dir");
		dn_store_free(s);
		free(x);
		free(y);
		/* another datanode's dir, another cluster's dir */
		write_line(ic, "someone-else");
		s = NULL;
		CHECK(dn_store_open(list3, &s) == -EINVAL && !s, "dirs of two datanodes mixed");
		x = read_line(ia);
		write_line(ic, x);
		free(x);
		char *cc = xasprintf("%s/cluster_id", c);
		write_line(cc, "cid-other");
		CHECK(dn_store_open(list3, &s) == -EINVAL, "dirs of two clusters mixed");
		unlink(cc);
		CHECK(dn_store_open(list3, &s) == 0, "cluster id copied");
		dn_store_free(s);
		x = read_line(cc);
		CHECK(!strcmp(x, "cid-9"), "cluster id copied: '%s'", x);
		free(x);
		free(cc);
		free(ic);
		free(list3);
		free(c);
		free(cb);
		free(ia);
		free(ib);
	}
	/* bad lists */
	char *twice = xasprintf("%s,%s/.", a, a);
	CHECK(dn_store_open(twice, &s) == -EINVAL, "a dir twice");
	char *empty = xasprintf("%s,,%s", a, b);
	CHECK(dn_store_open(empty, &s) == -EINVAL, "an empty entry");
	CHECK(dn_store_open("", &s) == -EINVAL, "no dir");
	dn_store_opts o = {.failed_tolerated = 2};
	CHECK(dn_store_open_opts(list, &o, &s) == -EINVAL, "tolerated >= dirs");
	o.failed_tolerated = -1;
	CHECK(dn_store_open_opts(list, &o, &s) == -EINVAL, "tolerated < 0");
	char *many = xstrdup(a);
	for (int i = 0; i < DN_MAX_VOLS; i++) {
		char *m = xasprintf("%s,%s/m%d", many, root, i);
		free(many);
		many = m;
	}
	CHECK(dn_store_open(many, &s) == -EINVAL, "more than %d dirs", DN_MAX_VOLS);
	/* a dir that cannot be made counts as failed */
	char *file = xasprintf("%s/plainfile", root);
	write_line(file, "x");
	char *bad = xasprintf("%s,%s/sub", a, file);
	CHECK(dn_store_open(bad, &s) == -ENOTDIR, "a dir that cannot be made, none tolerated");
	o.failed_tolerated = 1;
	s = NULL;
	CHECK(dn_store_open_opts(bad, &o, &s) == 0 && s, "a dir that cannot be made, tolerated");
	if (s) {
		CHECK(dn_store_failed_volumes(s) == 1, "failed at start");
		dn_vol_info vi[2];
		CHECK(dn_store_volumes(s, vi, 2) == 2 && !vi[0].failed && vi[1].failed,
		      "volume states");
		dn_store_free(s);
	}
	free(bad);
	free(file);
	free(many);
	free(twice);
	free(empty);
	free(list);
	free(a);
	free(b);
}

/* Two dirs on one filesystem: concurrent writers spread; a failed dir's
 * replicas are reported deleted; the tolerated count. */
static void test_vol_fail(const char *root, const uint8_t *d)
{
	char *a = xasprintf("%s/fa", root), *b = xasprintf("%s/fb", root);
	char *list = xasprintf("%s,%s", a, b);
	dn_store_opts o = {.failed_tolerated = 1, .on_fatal = on_fatal};
	dn_store *s = NULL;
	CHECK(dn_store_open_opts(list, &o, &s) == 0, "open two dirs");
	if (!s)
		goto out;
	dn_store_set_listener(s, listener, NULL);
	/* equal room: two replicas written at once go to both dirs */
	dn_wr *w1, *w2;
	CHECK(dn_store_create(s, 101, 1, &w1) == 0, "create 101");
	CHECK(dn_store_create(s, 102, 1, &w2) == 0, "create 102");
	CHECK(dn_wr_append(w1, d, 1000, cdl_xxh3(d, 1000)) == 0, "append 101");
	CHECK(dn_wr_append(w2, d, 2000, cdl_xxh3(d, 2000)) == 0, "append 102");
	CHECK(dn_wr_finalize(w1, true) == 0 && dn_wr_finalize(w2, true) == 0, "finalize");
	int v1 = dn_store_volume_of(s, 101), v2 = dn_store_volume_of(s, 102);
	CHECK(v1 >= 0 && v2 >= 0 && v1 != v2, "concurrent replicas in dirs %d and %d", v1, v2);
	CHECK(dn_store_volume_of(s, 999) == -ENOENT, "volume of a missing replica");
	dn_usage u;
	CHECK(dn_store_usage(s, &u) == 0 && u.blocks == 2, "usage of two dirs");
	uint64_t cap2 = u.capacity;
	/* the dir of 102 dies (its folder vanishes, as an unmounted disk's) */
	int del0 = events(DN_EV_DELETED);
	char *dead = v2 == 0 ? a : b;
	nftw(dead, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	CHECK(dn_store_check(s) == 1, "one failed dir");
	CHECK(events(DN_EV_DELETED) == del0 + 1 && ev_last_id[DN_EV_DELETED] == 102 &&
		  ev_last_len[DN_EV_DELETED] == 2000,
	      "the lost replica is reported deleted");
	CHECK(!dn_store_has(s, 102, 1, NULL), "lost replica still held");
	uint8_t *back = NULL;
	uint64_t l = 0;
	CHECK(get(s, 101, 1, &back, &l) == 0 && l == 1000 && !memcmp(back, d, 1000),
	      "the other dir still serves");
	free(back);
	CHECK(dn_store_check(s) == 1 && events(DN_EV_DELETED) == del0 + 1, "failed only once");
	CHECK(__atomic_load_n(&fatal_calls, __ATOMIC_SEQ_CST) == 0, "one tolerated failure fatal");
	CHECK(dn_store_usage(s, &u) == 0 && u.blocks == 1 && u.capacity < cap2,
	      "usage without the failed dir");
	/* new replicas go to the healthy dir */
	CHECK(put(s, 103, 1, d, 500, false) == 0 && dn_store_volume_of(s, 103) == v1,
	      "new replica in the healthy dir");
	dn_replica_info *ri;
	size_t n = dn_store_list(s, &ri);
	CHECK(n == 2, "list after the failure: %zu", n);
	free(ri);
	/* the last dir fails too: fatal, though within the count */
	nftw(v1 == 0 ? a : b, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	CHECK(dn_store_check(s) == 2, "both failed");
	CHECK(__atomic_load_n(&fatal_calls, __ATOMIC_SEQ_CST) == 1, "no dir left: fatal");
	dn_wr *w;
	CHECK(dn_store_create(s, 104, 1, &w) == -ENOSPC, "create with no dir left");
	dn_store_free(s);

	/* none tolerated: the first failure is fatal */
	fatal_calls = 0;
	o.failed_tolerated = 0;
	s = NULL;
	CHECK(dn_store_open_opts(list, &o, &s) == 0, "reopen");
	if (s) {
		nftw(b, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
		CHECK(dn_store_check(s) == 1, "one failed");
		CHECK(__atomic_load_n(&fatal_calls, __ATOMIC_SEQ_CST) == 1,
		      "a failure past the tolerated count is fatal");
		dn_store_free(s);
	}
	/* the checker thread finds a failure on its own */
	fatal_calls = 0;
	o.failed_tolerated = 1;
	o.check_ms = 50;
	s = NULL;
	CHECK(dn_store_open_opts(list, &o, &s) == 0, "reopen with a checker");
	if (s) {
		nftw(b, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
		for (int i = 0; i < 200 && dn_store_failed_volumes(s) == 0; i++)
			usleep(20 * 1000);
		CHECK(dn_store_failed_volumes(s) == 1, "the checker found the failed dir");
		dn_store_free(s);
	}
out:
	free(list);
	free(a);
	free(b);
}

/* Full dirs, on tmpfs mounts of known sizes (root only). */
static void test_vol_full(const char *root, const uint8_t *d, size_t dlen)
{
	char *a = xasprintf("%s/ta", root), *b = xasprintf("%s/tb", root);
	mkdir(a, 0755);
	mkdir(b, 0755);
	if (mount("tmpfs", a, "tmpfs", 0, "size=3m") < 0) {
		printf("test_dn_store: full dirs not tested: cannot mount a tmpfs (%s)\n",
		       strerror(errno));
		goto out;
	}
	if (mount("tmpfs", b, "tmpfs", 0, "size=1m") < 0) {
		umount2(a, MNT_DETACH);
		goto out;
	}
	char *list = xasprintf("%s,%s", b, a);
	dn_store *s = NULL;
	CHECK(dn_store_open(list, &s) == 0, "open two tmpfs dirs");
	if (s) {
		dn_store_set_listener(s, listener, NULL);
		/* the most free bytes win, whatever the order */
		CHECK(put(s, 201, 1, d, 1000, false) == 0 && dn_store_volume_of(s, 201) == 1,
		      "replica on the larger dir");
		/* a replica larger than the dir: ENOSPC mid-write makes it full */
		size_t big = 4 * 1024 * 1024;
		CHECK(dlen >= big, "pattern too short");
		CHECK(put(s, 202, 1, d, big, false) == -ENOSPC, "write past the dir's end");
		dn_vol_info vi[2];
		CHECK(dn_store_volumes(s, vi, 2) == 2 && vi[1].full && !vi[0].full,
		      "the larger dir is full");
		/* still the larger by free bytes, but full: the other takes it */
		CHECK(put(s, 203, 1, d, 1000, false) == 0 && dn_store_volume_of(s, 203) == 0,
		      "new replica on the dir with room");
		dn_usage u;
		CHECK(dn_store_usage(s, &u) == 0 && u.remaining < 1024 * 1024,
		      "a full dir's room not counted: %" PRIu64, u.remaining);
		/* space comes back */
		CHECK(mount(NULL, a, NULL, MS_REMOUNT, "size=64m") == 0, "grow tmpfs");
		CHECK(dn_store_check(s) == 0, "check");
		CHECK(dn_store_volumes(s, vi, 2) == 2 && !vi[1].full, "room again");
		CHECK(put(s, 204, 1, d, 1000, false) == 0 && dn_store_volume_of(s, 204) == 1,
		      "the dir with room again takes replicas");
		uint8_t *back = NULL;
		uint64_t l = 0;
		CHECK(get(s, 203, 1, &back, &l) == 0 && l == 1000 && !memcmp(back, d, 1000),
		      "read back");
		free(back);
		dn_store_free(s);
	}
	/* a reserve larger than a dir's free space makes it full from the start */
	dn_store_opts o = {.reserved = 2 * 1024 * 1024};
	s = NULL;
	CHECK(dn_store_open_opts(list, &o, &s) == 0, "open with a reserve");
	if (s) {
		dn_vol_info vi[2];
		CHECK(dn_store_volumes(s, vi, 2) == 2 && vi[0].full && !vi[1].full,
		      "the small dir is full under the reserve");
		CHECK(put(s, 205, 1, d, 1000, false) == 0 && dn_store_volume_of(s, 205) == 1,
		      "replica on the dir above its reserve");
		dn_store_free(s);
	}
	free(list);
	umount2(a, MNT_DETACH);
	umount2(b, MNT_DETACH);
out:
	free(a);
	free(b);
}

int main(void)
{
	cdl_log_init("test", CDL_LOG_ERROR);
	const char *tmp = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char root[512];
	snprintf(root, sizeof(root), "%s/test_dn_store.XXXXXX", tmp);
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}
	char *dir = xasprintf("%s/data", root);
	dn_store *s = NULL;
	int rc = dn_store_open(dir, &s);
	if (rc < 0) {
		fprintf(stderr, "FAIL cannot open store: %s\n", strerror(-rc));
		return 1;
	}
	dn_store_set_listener(s, listener, NULL);
	char *id = xstrdup(dn_store_id(s));
	CHECK(strlen(id) >= 8, "datanode id '%s'", id);
	CHECK(!strcmp(dn_store_cluster(s), ""), "no cluster yet");

	/* the data dir is locked */
	dn_store *s2 = NULL;
	CHECK(dn_store_open(dir, &s2) == -EBUSY, "second open of a locked dir");

	/* ---- write, finalize, read back */
	size_t len = 3 * CDL_CHUNK + 100;
	uint8_t *d = xmalloc(len);
	pattern(d, len, 1);
	CHECK(put(s, 1, 1, d, len, true) == 0, "put block 1");
	CHECK(events(DN_EV_RECEIVED) == 1 && ev_last_id[DN_EV_RECEIVED] == 1 &&
		  ev_last_len[DN_EV_RECEIVED] == len,
	      "received event");
	uint64_t l = 0;
	CHECK(dn_store_has(s, 1, 1, &l) && l == len, "has block 1");
	CHECK(!dn_store_has(s, 1, 2, NULL), "has a newer gen");
	char *p1 = blk_path(dir, 1, 1, ""), *x1 = blk_path(dir, 1, 1, ".xxh");
	struct stat st;
	CHECK(stat(p1, &st) == 0 && (size_t)st.st_size == len, "data file size");
	CHECK(stat(x1, &st) == 0 && st.st_size == 4 * 8, "sidecar size %lld",
	      (long long)st.st_size);
	/* sidecar content is little-endian XXH3 per chunk */
	{
		uint8_t sc[32];
		int fd = open(x1, O_RDONLY);
		CHECK(fd >= 0 && read(fd, sc, 32) == 32, "read sidecar");
		close(fd);
		for (int i = 0; i < 4; i++) {
			size_t n = i < 3 ? CDL_CHUNK : 100;
			uint64_t want = cdl_xxh3(d + (size_t)i * CDL_CHUNK, n), got = 0;
			for (int k = 0; k < 8; k++)
				got |= (uint64_t)sc[i * 8 + k] << (8 * k);
			CHECK(got == want, "sidecar entry %d", i);
		}
	}
	uint8_t *back = NULL;
	CHECK(get(s, 1, 1, &back, &l) == 0 && l == len && !memcmp(back, d, len), "read back");
	free(back);
	CHECK(get(s, 2, 1, &back, &l) == -ENOENT, "missing block");

	/* ---- usage and listing */
	dn_usage u;
	CHECK(dn_store_usage(s, &u) == 0 && u.blocks == 1 && u.used == len + 32 && u.capacity > 0 &&
		  u.remaining > 0,
	      "usage: %u blocks, %" PRIu64 " used", u.blocks, u.used);
	CHECK(put(s, 2, 3, d, 10, false) == 0, "put block 2");
	dn_replica_info *v;
	size_t n = dn_store_list(s, &v);
	CHECK(n == 2, "list: %zu", n);
	for (size_t i = 0; i < n; i++)
		CHECK((v[i].id == 1 && v[i].gen == 1 && v[i].len == len) ||
			  (v[i].id == 2 && v[i].gen == 3 && v[i].len == 10),
		      "list entry %zu", i);
	free(v);

	/* ---- a replica being written is readable up to what was written */
	{
		dn_wr *w;
		CHECK(dn_store_create(s, 3, 1, &w) == 0, "create block 3");
		CHECK(dn_wr_append(w, d, 5000, cdl_xxh3(d, 5000)) == 0, "append");
		dn_rd rd;
		CHECK(dn_store_open_read(s, 3, 1, &rd) == 0 && rd.rbw && rd.len == 5000,
		      "rbw read");
		uint8_t *buf = xmalloc(CDL_CHUNK);
		size_t k;
		uint64_t sum;
		CHECK(dn_rd_chunk(&rd, 0, buf, &k, &sum) == 0 && k == 5000 &&
			  !memcmp(buf, d, 5000) && sum == cdl_xxh3(d, 5000),
		      "rbw chunk");
		free(buf);
		dn_rd_release(&rd);
		/* a newer writer supersedes it: the older cannot finalize */
		dn_wr *w2;
		CHECK(dn_store_create(s, 3, 2, &w2) == 0, "second writer");
		CHECK(dn_wr_finalize(w, false) == -ESTALE, "superseded writer finalized");
		CHECK(dn_wr_append(w2, d, 7, cdl_xxh3(d, 7)) == 0, "append 2");
		CHECK(dn_wr_finalize(w2, false) == 0, "newer writer finalizes");
		CHECK(dn_store_has(s, 3, 2, &l) && l == 7, "block 3 gen 2");
		/* older generation refused */
		CHECK(dn_store_create(s, 3, 1, &w) == -ESTALE, "older gen create");
	}

	/* ---- abandon keeps what was hsynced, drops the rest */
	{
		dn_wr *w;
		CHECK(dn_store_create(s, 4, 1, &w) == 0, "create block 4");
		CHECK(dn_wr_append(w, d, CDL_CHUNK + 10, cdl_xxh3(d, CDL_CHUNK + 10)) == 0,
		      "append");
		CHECK(dn_wr_sync(w) == 0, "sync");
		CHECK(dn_wr_append(w, d + CDL_CHUNK + 10, 500, cdl_xxh3(d + CDL_CHUNK + 10, 500)) ==
			  0,
		      "append more");
		dn_wr_abandon(w);
		CHECK(dn_store_has(s, 4, 1, &l) && l == CDL_CHUNK + 10, "abandoned kept %" PRIu64,
		      l);
		CHECK(get(s, 4, 1, &back, &l) == 0 && !memcmp(back, d, CDL_CHUNK + 10),
		      "abandoned content");
		free(back);
		CHECK(dn_store_create(s, 5, 1, &w) == 0, "create block 5");
		CHECK(dn_wr_append(w, d, 100, cdl_xxh3(d, 100)) == 0, "append");
		dn_wr_abandon(w);
		CHECK(!dn_store_has(s, 5, 1, NULL), "unsynced abandoned replica kept");
	}

	/* ---- a run of chunks in one read: whole, a range, the short tail */
	{
		dn_rd rd;
		uint8_t *buf = xmalloc(16 * CDL_CHUNK);
		size_t cn[16];
		uint64_t sum[16];
		bool bad = true;
		CHECK(dn_store_open_read(s, 1, 1, &rd) == 0, "open block 1 for a run");
		CHECK(dn_rd_chunks(&rd, 0, 16, buf, cn, sum, &bad) == 4 && !bad &&
			  !memcmp(buf, d, len) && cn[0] == CDL_CHUNK && cn[3] == 100,
		      "run of the whole replica");
		for (int i = 0; i < 4; i++)
			CHECK(sum[i] == cdl_xxh3(d + (size_t)i * CDL_CHUNK, cn[i]), "run sum %d", i);
		CHECK(dn_rd_chunks(&rd, 1, 2, buf, cn, sum, &bad) == 2 && !bad &&
			  !memcmp(buf, d + CDL_CHUNK, 2 * CDL_CHUNK),
		      "run from chunk 1");
		CHECK(dn_rd_chunks(&rd, 4, 1, buf, cn, sum, &bad) == -EINVAL, "run past the end");
		dn_rd_release(&rd);
		/* a bad chunk ends the run and is the last one returned */
		flip(p1, 2 * CDL_CHUNK + 7);
		CHECK(dn_store_open_read(s, 1, 1, &rd) == 0, "open again");
		CHECK(dn_rd_chunks(&rd, 0, 16, buf, cn, sum, &bad) == 3 && bad,
		      "run stops at the corrupt chunk");
		CHECK(sum[2] == cdl_xxh3(d + 2 * CDL_CHUNK, CDL_CHUNK), "stored sum sent with it");
		dn_rd_release(&rd);
		flip(p1, 2 * CDL_CHUNK + 7); /* flip back */
		free(buf);
	}

	/* ---- corruption found by a read */
	int corrupt0 = events(DN_EV_CORRUPT);
	flip(p1, 2 * CDL_CHUNK + 7);
	CHECK(get(s, 1, 1, &back, &l) == -EBADMSG, "corrupt chunk detected");
	CHECK(dn_store_mark_corrupt(s, 1, 1, "test") == 0, "mark corrupt");
	CHECK(dn_store_mark_corrupt(s, 1, 1, "test") == -ENOENT, "mark corrupt twice");
	CHECK(events(DN_EV_CORRUPT) == corrupt0 + 1, "one corrupt event");
	CHECK(get(s, 1, 1, &back, &l) == -ENOENT, "corrupt replica served");
	char *aside = xasprintf("%s/corrupt/blk_1_1", dir);
	CHECK(access(aside, F_OK) == 0 && access(p1, F_OK) < 0, "moved aside");

	/* ---- corruption found by the scanner */
	CHECK(put(s, 6, 1, d, len, false) == 0, "put block 6");
	CHECK(put(s, 7, 1, d, len, false) == 0, "put block 7");
	CHECK(dn_scan_once(s) == 0, "clean scan");
	char *p7 = blk_path(dir, 7, 1, "");
	flip(p7, 10);
	CHECK(dn_scan_once(s) == 1, "scan finds one corrupt replica");
	CHECK(!dn_store_has(s, 7, 1, NULL), "scanned corrupt replica still held");
	/* a throttled scanner thread finds one too */
	char *p6 = blk_path(dir, 6, 1, "");
	flip(p6, CDL_CHUNK);
	dn_scan *sc = NULL;
	int before = events(DN_EV_CORRUPT);
	CHECK(dn_scan_start(s, 4 * 1024 * 1024, 1000, &sc) == 0 && sc, "start scanner");
	for (int i = 0; i < 100 && events(DN_EV_CORRUPT) == before; i++)
		usleep(50 * 1000);
	CHECK(events(DN_EV_CORRUPT) == before + 1, "scanner thread found the corrupt replica");
	dn_scan_stop(sc);
	CHECK(dn_scan_start(s, 0, 1000, &sc) == 0 && !sc, "scan_rate 0 disables");

	/* ---- delete */
	int del0 = events(DN_EV_DELETED);
	CHECK(dn_store_delete(s, 2, 2) == -ENOENT, "delete with an older gen than held");
	CHECK(dn_store_delete(s, 2, 3) == 0, "delete block 2");
	CHECK(dn_store_delete(s, 2, 3) == -ENOENT, "delete twice");
	CHECK(events(DN_EV_DELETED) == del0 + 1, "delete event");
	char *p2 = blk_path(dir, 2, 3, "");
	CHECK(access(p2, F_OK) < 0, "deleted file remains");
	CHECK(dn_store_delete(s, 1, 0) == -ENOENT && access(aside, F_OK) < 0,
	      "delete removes the corrupt copy");

	/* ---- restart: same id, replicas found, a bad sidecar moved aside */
	CHECK(dn_store_set_cluster(s, "cid-1") == 0, "set cluster");
	dn_store_free(s);
	char *x4 = blk_path(dir, 4, 1, ".xxh");
	CHECK(truncate(x4, 3) == 0, "truncate sidecar");
	/* a crash after an hsync keeps the synced prefix; without one, nothing */
	crash_writer(dir, 8, d, 2 * CDL_CHUNK + 3, 1000);
	crash_writer(dir, 9, d, 0, 1000);
	CHECK(dn_store_open(dir, &s) == 0, "reopen");
	CHECK(!strcmp(dn_store_id(s), id), "id changed across restart: '%s'", dn_store_id(s));
	CHECK(!strcmp(dn_store_cluster(s), "cid-1"), "cluster id kept");
	CHECK(dn_store_has(s, 3, 2, &l) && l == 7, "block 3 after restart");
	CHECK(dn_store_has(s, 6, 1, NULL) == false, "corrupt block 6 back");
	CHECK(!dn_store_has(s, 4, 1, NULL), "replica with a bad sidecar kept");
	CHECK(dn_store_has(s, 8, 1, &l) && l == 2 * CDL_CHUNK + 3,
	      "hsynced replica recovered: %" PRIu64, l);
	CHECK(get(s, 8, 1, &back, &l) == 0 && !memcmp(back, d, 2 * CDL_CHUNK + 3),
	      "recovered content");
	free(back);
	CHECK(!dn_store_has(s, 9, 1, NULL), "unsynced crashed replica recovered");
	char *tdir = xasprintf("%s/tmp", dir);
	int left = 0;
	{
		char *cmd = xasprintf("ls -A '%s' | wc -l", tdir);
		FILE *f = popen(cmd, "r");
		if (f && fscanf(f, "%d", &left) != 1)
			left = -1;
		if (f)
			pclose(f);
		free(cmd);
	}
	CHECK(left == 0, "tmp/ not emptied at start: %d files", left);
	dn_store_free(s);

	/* ---- several data dirs */
	test_vol_config(root);
	test_vol_fail(root, d);
	{
		size_t blen = 4 * 1024 * 1024;
		uint8_t *bd = xmalloc(blen);
		pattern(bd, blen, 7);
		test_vol_full(root, bd, blen);
		free(bd);
	}

	nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(tdir);
	free(x4);
	free(p2);
	free(p6);
	free(p7);
	free(aside);
	free(p1);
	free(x1);
	free(d);
	free(id);
	free(dir);
	if (failures) {
		fprintf(stderr, "test_dn_store: %d checks failed\n", failures);
		return 1;
	}
	printf("test_dn_store: ok\n");
	return 0;
}
