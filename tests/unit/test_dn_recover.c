/* Unit test of pipeline recovery (fs/cdl_dt.h): three datanode stores and
 * servers in one process on 127.0.0.1. A block is written part way through
 * a pipeline of three, one server is stopped (the middle one, then the
 * first one), and the block writer resumes the replica on the two others
 * under a new generation at the acked offset (not on a chunk boundary, with
 * unacked packets to resend), then finishes. Both survivors must serve the
 * exact bytes under the new generation, their checksums must verify, and no
 * file of the old generation may be left. Also: a finalized replica is
 * reopened by a recovery, and refusals (offset past the replica, unknown
 * replica, generation not newer). Exits non-zero on any failure. */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cdl_dt.h"
#include "cdl_log.h"
#include "cdl_util.h"
#include "dn_scan.h"
#include "dn_store.h"
#include "dn_xfer.h"

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

#define TMO 10000

typedef struct node {
	char dir[600];
	dn_store *s;
	dn_xfer *x;
	int port;
	Caudal__DtTarget t;
} node;

static int start_server(node *n)
{
	dn_xfer_opts o = {.host = "127.0.0.1", .port = 0, .max_xceivers = 64, .io_timeout_ms = TMO};
	int rc = dn_xfer_start(n->s, &o, &n->x);
	if (rc < 0)
		return rc;
	n->port = dn_xfer_port(n->x);
	Caudal__DtTarget t = CAUDAL__DT_TARGET__INIT;
	t.host = "127.0.0.1";
	t.port = (uint32_t)n->port;
	t.id = (char *)dn_store_id(n->s);
	n->t = t;
	return 0;
}

static int start_node(node *n, const char *root, int i)
{
	snprintf(n->dir, sizeof(n->dir), "%s/dn%d", root, i);
	int rc = dn_store_open(n->dir, &n->s);
	return rc < 0 ? rc : start_server(n);
}

static void stop_server(node *n)
{
	if (n->x)
		dn_xfer_stop(n->x);
	n->x = NULL;
}

static void pattern(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)x;
	}
}

/* Read the whole replica (id, gen) from n and compare it with data. */
static void check_replica(node *n, uint64_t id, uint64_t gen, const uint8_t *data, size_t len)
{
	cdl_block_reader *r;
	int rc = cdl_block_reader_open("127.0.0.1", n->port, id, gen, 0, 0, NULL, TMO, &r);
	CHECK(rc == 0, "open block %" PRIu64 " gen %" PRIu64 " on '%s': %s", id, gen, n->dir,
	      strerror(-rc));
	if (rc)
		return;
	CHECK(cdl_block_reader_length(r) == len,
	      "block %" PRIu64 " on '%s' is %" PRIu64 " bytes, not %zu", id, n->dir,
	      cdl_block_reader_length(r), len);
	uint8_t *got = xmalloc(len + CDL_CHUNK);
	size_t have = 0;
	ssize_t k;
	while ((k = cdl_block_reader_read(r, got + have, CDL_CHUNK)) > 0)
		have += (size_t)k;
	CHECK(k == 0, "read of block %" PRIu64 " on '%s': %s", id, n->dir, strerror((int)-k));
	CHECK(have == len && !memcmp(got, data, len),
	      "block %" PRIu64 " on '%s': %zu bytes read, content %s", id, n->dir, have,
	      have == len ? "differs" : "short");
	cdl_block_reader_close(r);
	free(got);
	uint64_t l = 0;
	CHECK(dn_store_has(n->s, id, gen, &l) && l == len,
	      "block %" PRIu64 " gen %" PRIu64 " not finalized on '%s'", id, gen, n->dir);
	CHECK(dn_scan_once(n->s) == 0, "scan of '%s' found corrupt replicas", n->dir);
}

/* Files of block id with generation gen under n's tmp/ and current/. */
static int count_files(node *n, uint64_t id, uint64_t gen)
{
	char pre[64];
	snprintf(pre, sizeof(pre), "blk_%" PRIu64 "_%" PRIu64, id, gen);
	size_t pl = strlen(pre);
	int found = 0;
	char *dirs[2] = {xasprintf("%s/tmp", n->dir),
			 xasprintf("%s/current/%02x", n->dir, (unsigned)(id % 64))};
	for (int i = 0; i < 2; i++) {
		DIR *d = opendir(dirs[i]);
		struct dirent *de;
		while (d && (de = readdir(d)))
			if (!strncmp(de->d_name, pre, pl) &&
			    (de->d_name[pl] == '\0' || de->d_name[pl] == '.'))
				found++;
		if (d)
			closedir(d);
		free(dirs[i]);
	}
	return found;
}

/* Write data[0, len) through t[0..2] as block id gen 1, stopping server
 * `victim` part way; resume on the two others under gen 2 and finish. */
static void resume_after_loss(node *n, int victim, uint64_t id)
{
	size_t len = 5 * CDL_CHUNK + 4321;
	size_t a = 3 * CDL_CHUNK + 1000; /* synced: acked everywhere */
	size_t b = 2 * CDL_CHUNK + 5;	 /* sent after the loss: never acked */
	uint8_t *data = xmalloc(len);
	pattern(data, len, id);
	const Caudal__DtTarget *t[3] = {&n[0].t, &n[1].t, &n[2].t};
	cdl_block_writer *w;
	int rc = cdl_block_writer_open(t, 3, id, 1, NULL, "test", TMO, &w);
	CHECK(rc == 0, "open: %s", strerror(-rc));
	if (rc) {
		free(data);
		return;
	}
	CHECK(cdl_block_writer_write(w, data, a) == 0, "first part");
	CHECK(cdl_block_writer_sync(w) == 0, "sync");
	stop_server(&n[victim]);
	usleep(50 * 1000);
	/* the nodes before the lost one may store some of this; the failure
	 * shows at the latest at the next ack the writer waits for */
	rc = cdl_block_writer_write(w, data + a, b);
	size_t took = (size_t)(cdl_block_writer_bytes(w) - a);
	if (rc == 0)
		rc = cdl_block_writer_sync(w);
	CHECK(rc < 0, "write after losing node %d succeeded", victim + 1);
	int bad = cdl_block_writer_bad_target(w);
	CHECK(bad == victim + 1, "failed node reported at %d, not %d", bad, victim + 1);
	CHECK(cdl_block_writer_acked(w) == a, "acked %" PRIu64 " bytes, expected %zu",
	      cdl_block_writer_acked(w), a);

	const Caudal__DtTarget *s[2];
	node *surv[2];
	for (int i = 0, k = 0; i < 3; i++)
		if (i != victim) {
			surv[k] = &n[i];
			s[k++] = &n[i].t;
		}
	rc = cdl_block_writer_recover(w, s, 2, 2, NULL, &bad);
	CHECK(rc == 0, "recover on the survivors: %s (bad %d)", strerror(-rc), bad);
	CHECK(cdl_block_writer_gen(w) == 2, "generation after recovery");
	if (rc == 0) {
		CHECK(cdl_block_writer_write(w, data + a + took, len - a - took) == 0, "last part");
		uint64_t got = 0;
		rc = cdl_block_writer_close(w, false, &got);
		CHECK(rc == 0 && got == len, "close after recovery: %s, %" PRIu64 " bytes",
		      strerror(-rc), got);
	} else {
		cdl_block_writer_abort(w);
	}
	for (int k = 0; k < 2; k++) {
		check_replica(surv[k], id, 2, data, len);
		CHECK(count_files(surv[k], id, 1) == 0, "old generation left on '%s'",
		      surv[k]->dir);
		CHECK(!dn_store_has(surv[k]->s, id, 1, NULL) ||
			  dn_store_has(surv[k]->s, id, 2, NULL),
		      "old generation still listed");
	}
	/* the stopped node's copy stays behind under the old generation or not
	 * at all, never the new one */
	CHECK(!dn_store_has(n[victim].s, id, 2, NULL), "the lost node has the new generation");
	free(data);
	CHECK(start_server(&n[victim]) == 0, "restart server %d", victim);
}

/* Raw DT_WRITE recovery header to n: returns the reply's err (0 = go). */
static int raw_recover(node *n, uint64_t id, uint64_t old_gen, uint64_t gen, uint64_t off, int *fdp)
{
	int fd = cdl_dt_connect("127.0.0.1", n->port, TMO, TMO);
	if (fd < 0)
		return fd;
	Caudal__DtHeader h = CAUDAL__DT_HEADER__INIT;
	h.op = CAUDAL__DT_OP__DT_WRITE;
	h.block = id;
	h.gen = gen;
	h.recover = true;
	h.recover_gen = old_gen;
	h.recover_offset = off;
	Caudal__DtReply *rep = NULL;
	int rc = cdl_dt_send_header(fd, &h);
	if (rc == 0)
		rc = cdl_dt_recv_reply(fd, &rep);
	if (rc == 0) {
		rc = (int)rep->err;
		protobuf_c_message_free_unpacked(&rep->base, NULL);
	}
	if (rc == 0 && fdp)
		*fdp = fd;
	else
		close(fd);
	return rc;
}

static void refusals_and_finalized(node *n)
{
	/* a finalized replica is reopened: keep 2 chunks + 10 bytes, send the rest */
	size_t len = 4 * CDL_CHUNK + 77, off = 2 * CDL_CHUNK + 10;
	uint8_t *data = xmalloc(len);
	pattern(data, len, 31);
	const Caudal__DtTarget *t[1] = {&n[0].t};
	cdl_block_writer *w;
	int rc = cdl_block_writer_open(t, 1, 900, 1, NULL, "test", TMO, &w);
	if (rc == 0)
		rc = cdl_block_writer_write(w, data, len);
	if (rc == 0)
		rc = cdl_block_writer_close(w, false, NULL);
	CHECK(rc == 0, "write block 900: %s", strerror(-rc));

	CHECK(raw_recover(&n[0], 900, 1, 1, off, NULL) == ESTALE, "same generation accepted");
	CHECK(raw_recover(&n[0], 900, 1, 2, len + 1, NULL) == ERANGE,
	      "offset past the replica accepted");
	CHECK(raw_recover(&n[0], 901, 1, 2, 0, NULL) == ENOENT, "unknown replica resumed");
	/* ERANGE leaves a finalized replica alone */
	check_replica(&n[0], 900, 1, data, len);

	int fd = -1;
	rc = raw_recover(&n[0], 900, 1, 3, off, &fd);
	CHECK(rc == 0, "recovery of a finalized replica refused: %s", strerror(rc));
	if (rc == 0) {
		uint64_t seq = 0;
		for (size_t p = off; p < len; seq++) {
			size_t k = len - p;
			size_t room = CDL_CHUNK - p % CDL_CHUNK;
			if (k > room)
				k = room;
			cdl_dt_frame f = {.len = (uint32_t)k,
					  .flags = p + k == len ? CDL_DT_LAST : 0,
					  .seq = seq,
					  .sum = cdl_xxh3(data + p, k)};
			CHECK(cdl_dt_send_frame(fd, &f, data + p) == 0, "send packet");
			p += k;
		}
		for (uint64_t i = 0; i < seq; i++) {
			cdl_dt_ack a = {0};
			rc = cdl_dt_recv_ack(fd, &a);
			CHECK(rc == 0 && a.err == 0 && a.seq == i, "ack %" PRIu64 ": rc %d err %u",
			      i, rc, a.err);
		}
		close(fd);
		check_replica(&n[0], 900, 3, data, len);
		CHECK(count_files(&n[0], 900, 1) == 0, "generation 1 of block 900 left");
	}
	free(data);
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p);
}

int main(void)
{
	cdl_log_init("test", CDL_LOG_ERROR);
	signal(SIGPIPE, SIG_IGN);
	const char *tmp = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char root[512];
	snprintf(root, sizeof(root), "%s/test_dn_recover.XXXXXX", tmp);
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}
	node n[3];
	memset(n, 0, sizeof(n));
	for (int i = 0; i < 3; i++) {
		int rc = start_node(&n[i], root, i);
		if (rc < 0) {
			fprintf(stderr, "FAIL cannot start node %d: %s\n", i, strerror(-rc));
			return 1;
		}
	}
	int64_t t0 = cdl_now_ms();
	resume_after_loss(n, 1, 10); /* the middle node */
	resume_after_loss(n, 0, 11); /* the first node, the one the writer talks to */
	resume_after_loss(n, 2, 12); /* the last node */
	refusals_and_finalized(n);
	int64_t ms = cdl_now_ms() - t0;
	CHECK(ms < 20000, "took %" PRId64 " ms: a recovery waited for a timeout", ms);

	for (int i = 0; i < 3; i++) {
		stop_server(&n[i]);
		dn_store_free(n[i].s);
	}
	nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	if (failures) {
		fprintf(stderr, "test_dn_recover: %d checks failed\n", failures);
		return 1;
	}
	printf("test_dn_recover: ok (%" PRId64 " ms)\n", ms);
	return 0;
}
