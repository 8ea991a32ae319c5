/* Unit test of the datanode block store and scanner: replica files and
 * sidecars, reads that verify, corruption detected by reads and by the
 * scanner, the persistent id and the data-dir lock, the start-up scan
 * (bad sidecars moved aside, hsynced replicas recovered after a crash,
 * unsynced ones dropped), superseded writers, deletes and usage figures.
 * Exits non-zero on any failure. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
