/* Unit test of the data-transfer server and the block reader/writer: three
 * (sometimes four) datanode stores and servers in one process on 127.0.0.1,
 * pipeline writes and read-back, ranges, hsync, reads of a replica being
 * written, checksum failures, garbage headers, failed pipeline nodes,
 * replication, and a throughput figure. Exits non-zero on any failure. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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
	char dir[256];
	dn_store *s;
	dn_xfer *x;
	int port;
	pthread_mutex_t mu;
	int received, deleted, corrupt;
	uint64_t last_corrupt;
	Caudal__DtTarget t;
	char portname[16];
} node;

static void listener(void *ctx, enum dn_event ev, uint64_t id, uint64_t gen, uint64_t len)
{
	node *n = ctx;
	(void)gen;
	(void)len;
	pthread_mutex_lock(&n->mu);
	if (ev == DN_EV_RECEIVED)
		n->received++;
	else if (ev == DN_EV_DELETED)
		n->deleted++;
	else {
		n->corrupt++;
		n->last_corrupt = id;
	}
	pthread_mutex_unlock(&n->mu);
}

static int start_node(node *n, const char *root, int i)
{
	snprintf(n->dir, sizeof(n->dir), "%s/dn%d", root, i);
	pthread_mutex_init(&n->mu, NULL);
	int rc = dn_store_open(n->dir, &n->s);
	if (rc < 0)
		return rc;
	dn_store_set_listener(n->s, listener, n);
	dn_xfer_opts o = {.host = "127.0.0.1", .port = 0, .max_xceivers = 64, .io_timeout_ms = TMO};
	rc = dn_xfer_start(n->s, &o, &n->x);
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

static void stop_node(node *n)
{
	if (n->x)
		dn_xfer_stop(n->x);
	n->x = NULL;
	if (n->s)
		dn_store_free(n->s);
	n->s = NULL;
}

static int count(node *n, int *field)
{
	pthread_mutex_lock(&n->mu);
	int v = *field;
	pthread_mutex_unlock(&n->mu);
	return v;
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

/* Write data through the pipeline in uneven pieces. */
static int write_block(node **nodes, size_t nn, uint64_t id, uint64_t gen, const uint8_t *data,
		       size_t len, bool sync)
{
	const Caudal__DtTarget *t[8];
	for (size_t i = 0; i < nn; i++)
		t[i] = &nodes[i]->t;
	cdl_block_writer *w;
	int rc = cdl_block_writer_open(t, nn, id, gen, NULL, "test", TMO, &w);
	if (rc < 0)
		return rc;
	size_t off = 0, piece = 7777;
	while (off < len) {
		size_t k = len - off < piece ? len - off : piece;
		rc = cdl_block_writer_write(w, data + off, k);
		if (rc < 0) {
			cdl_block_writer_abort(w);
			return rc;
		}
		off += k;
		piece = piece * 3 % 200003 + 1;
	}
	uint64_t got = 0;
	rc = cdl_block_writer_close(w, sync, &got);
	if (rc == 0 && got != len)
		return -EIO;
	return rc;
}

/* Read [off, off+len) (len 0 = to the end) into a fresh buffer. */
static ssize_t read_range(node *n, uint64_t id, uint64_t gen, uint64_t off, uint64_t len,
			  uint8_t **out)
{
	cdl_block_reader *r;
	int rc = cdl_block_reader_open("127.0.0.1", n->port, id, gen, off, len, NULL, TMO, &r);
	if (rc < 0)
		return rc;
	size_t cap = 1 << 16, got = 0;
	uint8_t *buf = xmalloc(cap);
	size_t piece = 1000;
	for (;;) {
		if (got + piece > cap) {
			cap = (got + piece) * 2;
			buf = xrealloc(buf, cap);
		}
		ssize_t k = cdl_block_reader_read(r, buf + got, piece);
		if (k < 0) {
			free(buf);
			cdl_block_reader_close(r);
			return k;
		}
		if (k == 0)
			break;
		got += (size_t)k;
		piece = piece * 7 % 300007 + 1;
	}
	cdl_block_reader_close(r);
	*out = buf;
	return (ssize_t)got;
}

static void check_read(node *n, uint64_t id, uint64_t gen, const uint8_t *data, size_t len,
		       uint64_t off, uint64_t rlen)
{
	uint8_t *got = NULL;
	ssize_t k = read_range(n, id, gen, off, rlen, &got);
	size_t want = 0;
	if (off < len)
		want = rlen == 0 || rlen > len - off ? len - (size_t)off : (size_t)rlen;
	CHECK(k == (ssize_t)want,
	      "block %" PRIu64 " off %" PRIu64 " len %" PRIu64 ": got %zd want %zu", id, off, rlen,
	      k, want);
	if (k == (ssize_t)want && want)
		CHECK(!memcmp(got, data + off, want),
		      "block %" PRIu64 " off %" PRIu64 ": bytes differ", id, off);
	free(got);
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p);
}

/* Open a raw connection, send bytes, and see the server close it. */
static bool dropped_after(int port, const void *bytes, size_t n)
{
	int fd = cdl_dt_connect("127.0.0.1", port, TMO, 5000);
	if (fd < 0)
		return false;
	(void)send(fd, bytes, n, MSG_NOSIGNAL);
	char buf[256];
	ssize_t r;
	bool closed = false;
	while ((r = recv(fd, buf, sizeof(buf), 0)) > 0)
		;
	closed = r == 0 || (r < 0 && errno == ECONNRESET);
	close(fd);
	return closed;
}

static void test_sizes(node **nodes, const char *what)
{
	static const size_t sizes[] = {
	    0, 1, CDL_CHUNK - 1, CDL_CHUNK, CDL_CHUNK + 1, 3 * CDL_CHUNK + 7, 5 * 1024 * 1024 + 3};
	int before[3];
	for (int i = 0; i < 3; i++)
		before[i] = count(nodes[i], &nodes[i]->received);
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		size_t len = sizes[k];
		uint8_t *data = xmalloc(len + 1);
		pattern(data, len, k + 1);
		uint64_t id = 100 + k;
		int rc = write_block(nodes, 3, id, 1, data, len, k % 2);
		CHECK(rc == 0, "%s: write of %zu bytes: %s", what, len, strerror(-rc));
		for (int i = 0; i < 3; i++) {
			uint64_t l = 99;
			CHECK(dn_store_has(nodes[i]->s, id, 1, &l) && l == len,
			      "%s: node %d lacks block %" PRIu64, what, i, id);
			check_read(nodes[i], id, 1, data, len, 0, 0);
		}
		free(data);
	}
	for (int i = 0; i < 3; i++)
		CHECK(count(nodes[i], &nodes[i]->received) - before[i] == 7,
		      "%s: node %d saw %d received events", what, i,
		      count(nodes[i], &nodes[i]->received) - before[i]);
}

static void test_ranges(node *n)
{
	size_t len = 5 * 1024 * 1024 + 3;
	uint8_t *data = xmalloc(len);
	pattern(data, len, 7);
	uint64_t offs[] = {0, 1, CDL_CHUNK - 1, CDL_CHUNK, CDL_CHUNK + 5, len - 1, len, len + 10};
	uint64_t lens[] = {0, 1, 100, CDL_CHUNK, 2 * CDL_CHUNK + 3, UINT64_MAX};
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++)
		for (size_t j = 0; j < sizeof(lens) / sizeof(lens[0]); j++)
			check_read(n, 106, 1, data, len, offs[i], lens[j]);
	/* a generation newer than held is not served */
	uint8_t *got;
	ssize_t k = read_range(n, 106, 2, 0, 0, &got);
	CHECK(k == -ENOENT, "newer gen: got %zd", k);
	k = read_range(n, 999999, 1, 0, 0, &got);
	CHECK(k == -ENOENT, "unknown block: got %zd", k);
	free(data);
}

static void test_hsync(node **nodes)
{
	const Caudal__DtTarget *t[3] = {&nodes[0]->t, &nodes[1]->t, &nodes[2]->t};
	size_t len = 1000 + 2 * CDL_CHUNK + 5 + 10;
	uint8_t *data = xmalloc(len);
	pattern(data, len, 9);
	cdl_block_writer *w;
	int rc = cdl_block_writer_open(t, 3, 200, 1, NULL, "test", TMO, &w);
	CHECK(rc == 0, "hsync open: %s", strerror(-rc));
	if (rc)
		return;
	CHECK(cdl_block_writer_write(w, data, 1000) == 0, "hsync write 1");
	CHECK(cdl_block_writer_sync(w) == 0, "hsync sync 1");
	/* the replica being written is readable up to what was synced */
	check_read(nodes[2], 200, 1, data, 1000, 0, 0);
	check_read(nodes[0], 200, 1, data, 1000, 10, 500);
	CHECK(cdl_block_writer_write(w, data + 1000, 2 * CDL_CHUNK + 5) == 0, "hsync write 2");
	CHECK(cdl_block_writer_sync(w) == 0, "hsync sync 2");
	check_read(nodes[1], 200, 1, data, 1000 + 2 * CDL_CHUNK + 5, 0, 0);
	CHECK(cdl_block_writer_sync(w) == 0, "empty sync");
	CHECK(cdl_block_writer_write(w, data + 1000 + 2 * CDL_CHUNK + 5, 10) == 0, "hsync write 3");
	uint64_t got;
	rc = cdl_block_writer_close(w, true, &got);
	CHECK(rc == 0 && got == len, "hsync close: %s", strerror(-rc));
	for (int i = 0; i < 3; i++)
		check_read(nodes[i], 200, 1, data, len, 0, 0);
	/* checksums of the finalized replica cover the odd packet boundaries */
	CHECK(dn_scan_once(nodes[0]->s) == 0, "scan after hsync found corrupt replicas");
	free(data);
}

/* DT_TRANSFER with block tokens: only a copy token for the block and
 * stamp naming the survivor and every target gets a copy made; a missing
 * token, a write token, one for another stamp, or one that does not name
 * the target is refused and leaves nothing on the target. */
static void test_transfer_tokens(const char *root)
{
	cdl_keyring *nn = cdl_keyring_new();
	CHECK(cdl_keyring_roll(nn, cdl_token_now_ms(), 3600000, 600000) == 0, "roll");
	cdl_arena a;
	cdl_arena_init(&a);
	size_t nkeys;
	Caudal__BlockKey **keys = cdl_keyring_export(nn, &a, cdl_token_now_ms(), &nkeys);
	node k[3];
	cdl_keyring *kr[3];
	memset(k, 0, sizeof(k));
	for (int i = 0; i < 3; i++) {
		snprintf(k[i].dir, sizeof(k[i].dir), "%.200s/keyed%d", root, i);
		pthread_mutex_init(&k[i].mu, NULL);
		kr[i] = cdl_keyring_new();
		cdl_keyring_set(kr[i], keys, nkeys);
		int rc = dn_store_open(k[i].dir, &k[i].s);
		dn_xfer_opts o = {.host = "127.0.0.1",
				  .port = 0,
				  .max_xceivers = 64,
				  .io_timeout_ms = TMO,
				  .keys = kr[i]};
		if (rc == 0)
			rc = dn_xfer_start(k[i].s, &o, &k[i].x);
		CHECK(rc == 0, "keyed node %d: %s", i, strerror(-rc));
		if (rc < 0)
			return;
		k[i].port = dn_xfer_port(k[i].x);
		caudal__dt_target__init(&k[i].t);
		k[i].t.host = "127.0.0.1";
		k[i].t.port = (uint32_t)k[i].port;
		k[i].t.id = (char *)dn_store_id(k[i].s);
	}
	const Caudal__DtTarget *all[3] = {&k[0].t, &k[1].t, &k[2].t};
	size_t len = CDL_CHUNK + 5;
	uint8_t *data = xmalloc(len);
	pattern(data, len, 17);
	ProtobufCBinaryData tw = {0, NULL}, tc = {0, NULL}, tc2 = {0, NULL}, tcold = {0, NULL},
			    tcread = {0, NULL};
	cdl_token_spec sp = {.block = 660,
			     .gen = 3,
			     .modes = CDL_TOKEN_WRITE,
			     .max_length = 1 << 20,
			     .nodes = all,
			     .nnodes = 1,
			     .lifetime_ms = 600000};
	CHECK(cdl_token_sign(nn, &sp, cdl_token_now_ms(), &tw) == 0, "sign write");
	cdl_block_writer *w = NULL;
	int rc = cdl_block_writer_open(all, 1, 660, 3, &tw, "test", TMO, &w);
	CHECK(rc == 0, "keyed open: %s", strerror(-rc));
	if (rc == 0) {
		CHECK(cdl_block_writer_write(w, data, len) == 0, "keyed write");
		CHECK(cdl_block_writer_sync(w) == 0, "keyed sync");
	}
	/* copy tokens: naming the survivor and k[1]; the survivor alone; an
	 * older stamp; a read token */
	sp.modes = CDL_TOKEN_COPY;
	sp.nnodes = 2;
	CHECK(cdl_token_sign(nn, &sp, cdl_token_now_ms(), &tc) == 0, "sign copy");
	sp.nnodes = 1;
	CHECK(cdl_token_sign(nn, &sp, cdl_token_now_ms(), &tc2) == 0, "sign copy, one node");
	sp.nnodes = 2;
	sp.gen = 2;
	CHECK(cdl_token_sign(nn, &sp, cdl_token_now_ms(), &tcold) == 0, "sign old");
	sp.gen = 3;
	sp.modes = CDL_TOKEN_READ;
	CHECK(cdl_token_sign(nn, &sp, cdl_token_now_ms(), &tcread) == 0, "sign read");
	const Caudal__DtTarget *to1[1] = {&k[1].t}, *to2[1] = {&k[2].t};
	rc = cdl_block_transfer("127.0.0.1", k[0].port, 660, 3, len, to1, 1, NULL, "test", TMO);
	CHECK(rc == -EACCES, "transfer without a token: %d", rc);
	rc = cdl_block_transfer("127.0.0.1", k[0].port, 660, 3, len, to1, 1, &tw, "test", TMO);
	CHECK(rc == -EACCES, "transfer with a write token: %d", rc);
	rc = cdl_block_transfer("127.0.0.1", k[0].port, 660, 3, len, to1, 1, &tcread, "test", TMO);
	CHECK(rc == -EACCES, "transfer with a read token: %d", rc);
	rc = cdl_block_transfer("127.0.0.1", k[0].port, 660, 3, len, to1, 1, &tcold, "test", TMO);
	CHECK(rc == -EACCES, "transfer with another stamp's token: %d", rc);
	rc = cdl_block_transfer("127.0.0.1", k[0].port, 660, 3, len, to1, 1, &tc2, "test", TMO);
	CHECK(rc == -EACCES, "transfer to a node the token does not name: %d", rc);
	rc = cdl_block_transfer("127.0.0.1", k[0].port, 660, 3, len, to2, 1, &tc, "test", TMO);
	CHECK(rc == -EACCES, "transfer to k2, not named: %d", rc);
	/* the token names k[0] and k[1], but k[1] is not the one holding it */
	rc = cdl_block_transfer("127.0.0.1", k[2].port, 660, 3, len, to1, 1, &tc, "test", TMO);
	CHECK(rc == -EACCES, "transfer asked of a node the token does not name: %d", rc);
	CHECK(!dn_store_has(k[1].s, 660, 3, NULL) && !dn_store_has(k[2].s, 660, 3, NULL),
	      "a refused transfer left a replica");
	rc = cdl_block_transfer("127.0.0.1", k[0].port, 660, 3, len, to1, 1, &tc, "test", TMO);
	CHECK(rc == 0, "transfer with the copy token: %s", strerror(-rc));
	uint64_t l = 0;
	CHECK(dn_store_has(k[1].s, 660, 3, &l) && l == len, "copy holds %" PRIu64, l);
	CHECK(!dn_store_has(k[2].s, 660, 3, NULL), "k2 got a copy");
	if (w)
		cdl_block_writer_abort(w);
	free(tw.data);
	free(tc.data);
	free(tc2.data);
	free(tcold.data);
	free(tcread.data);
	free(data);
	for (int i = 0; i < 3; i++) {
		stop_node(&k[i]);
		cdl_keyring_free(kr[i]);
	}
	cdl_arena_release(&a);
	cdl_keyring_free(nn);
}

int main(void)
{
	cdl_log_init("test", CDL_LOG_WARN);
	signal(SIGPIPE, SIG_IGN);
	const char *tmp = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char root[512];
	snprintf(root, sizeof(root), "%s/test_dn_xfer.XXXXXX", tmp);
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}
	node n[4];
	memset(n, 0, sizeof(n));
	for (int i = 0; i < 4; i++) {
		int rc = start_node(&n[i], root, i);
		if (rc < 0) {
			fprintf(stderr, "FAIL cannot start node %d: %s\n", i, strerror(-rc));
			return 1;
		}
	}
	node *p3[3] = {&n[0], &n[1], &n[2]};
	test_sizes(p3, "pipeline 0,1,2");
	test_ranges(&n[1]);
	test_hsync(p3);
	test_transfer_tokens(root);

	/* ---- corruption: flip a byte in node 1's copy of block 106 */
	{
		size_t len = 5 * 1024 * 1024 + 3;
		uint8_t *data = xmalloc(len);
		pattern(data, len, 7);
		char *path = xasprintf("%s/current/%02x/blk_106_1", n[1].dir, 106 % 64);
		int fd = open(path, O_RDWR);
		CHECK(fd >= 0, "open '%s'", path);
		uint8_t b = 0;
		CHECK(pread(fd, &b, 1, 3 * CDL_CHUNK + 10) == 1, "pread");
		b ^= 0x40;
		CHECK(pwrite(fd, &b, 1, 3 * CDL_CHUNK + 10) == 1, "pwrite");
		close(fd);
		uint8_t *got = NULL;
		ssize_t k = read_range(&n[1], 106, 1, 0, 0, &got);
		CHECK(k == -EBADMSG, "corrupt read gave %zd", k);
		CHECK(count(&n[1], &n[1].corrupt) == 1 && n[1].last_corrupt == 106,
		      "corrupt event: %d", count(&n[1], &n[1].corrupt));
		k = read_range(&n[1], 106, 1, 0, 0, &got);
		CHECK(k == -ENOENT, "corrupt replica still served: %zd", k);
		CHECK(!dn_store_has(n[1].s, 106, 1, NULL), "corrupt replica still listed");
		char *aside = xasprintf("%s/corrupt/blk_106_1", n[1].dir);
		CHECK(access(aside, F_OK) == 0, "corrupt replica not kept aside");
		CHECK(access(path, F_OK) < 0, "corrupt replica still in current/");
		/* the other replicas still serve the right bytes; a range read
		 * that avoids nothing also works */
		check_read(&n[0], 106, 1, data, len, 0, 0);
		check_read(&n[2], 106, 1, data, len, 3 * CDL_CHUNK, 100);
		free(aside);
		free(path);
		free(data);
	}

	/* ---- garbage and oversized headers drop the connection only */
	{
		CHECK(dropped_after(n[0].port, "GARBAGE GARBAGE GARBAGE", 23), "garbage magic");
		uint8_t big[8] = {'C', 'D', 'T', '1', 0x7f, 0xff, 0xff, 0xff};
		CHECK(dropped_after(n[0].port, big, sizeof(big)), "oversized header");
		uint8_t zero[8] = {'C', 'D', 'T', '1', 0, 0, 0, 0};
		CHECK(dropped_after(n[0].port, zero, sizeof(zero)), "empty header");
		uint8_t junk[13] = {'C', 'D', 'T', '1', 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0xff};
		CHECK(dropped_after(n[0].port, junk, sizeof(junk)), "undecodable header");
		/* too many pipeline targets */
		Caudal__DtHeader h = CAUDAL__DT_HEADER__INIT;
		Caudal__DtTarget tt = CAUDAL__DT_TARGET__INIT, *tp[40];
		tt.host = "127.0.0.1";
		tt.port = 1;
		for (int i = 0; i < 40; i++)
			tp[i] = &tt;
		h.op = CAUDAL__DT_OP__DT_WRITE;
		h.block = 5;
		h.n_targets = 40;
		h.targets = tp;
		size_t hl = protobuf_c_message_get_packed_size(&h.base);
		uint8_t *hb = xmalloc(8 + hl);
		memcpy(hb, "CDT1", 4);
		cdl_put_be32(hb + 4, (uint32_t)hl);
		protobuf_c_message_pack(&h.base, hb + 8);
		CHECK(dropped_after(n[0].port, hb, 8 + hl), "too many targets");
		free(hb);
		/* a frame longer than a chunk in a write gets an error ack */
		{
			int fd = cdl_dt_connect("127.0.0.1", n[3].port, TMO, 5000);
			Caudal__DtHeader wh = CAUDAL__DT_HEADER__INIT;
			wh.op = CAUDAL__DT_OP__DT_WRITE;
			wh.block = 300;
			wh.gen = 1;
			Caudal__DtReply *rep = NULL;
			CHECK(fd >= 0 && cdl_dt_send_header(fd, &wh) == 0 &&
				  cdl_dt_recv_reply(fd, &rep) == 0 && rep->err == 0,
			      "raw write setup");
			if (rep)
				protobuf_c_message_free_unpacked(&rep->base, NULL);
			uint8_t fr[CDL_DT_FRAME];
			cdl_dt_frame f = {.len = CDL_CHUNK, .seq = 0};
			cdl_dt_frame_encode(fr, &f);
			cdl_put_be32(fr, CDL_CHUNK + 1);
			CHECK(send(fd, fr, sizeof(fr), MSG_NOSIGNAL) == sizeof(fr),
			      "send bad frame");
			cdl_dt_ack a = {0};
			int rc = cdl_dt_recv_ack(fd, &a);
			CHECK(rc == 0 && a.err == EPROTO && a.bad == 1,
			      "bad frame ack: rc %d err %u", rc, a.err);
			close(fd);
		}
		/* still serving */
		uint8_t *data = xmalloc(CDL_CHUNK + 1);
		pattern(data, CDL_CHUNK + 1, 5);
		check_read(&n[0], 104, 1, data, CDL_CHUNK + 1, 0, 0);
		free(data);
		CHECK(!dn_store_has(n[3].s, 300, 1, NULL), "aborted write was finalized");
	}

	/* ---- an unreachable pipeline node is named */
	{
		node dead = {0};
		Caudal__DtTarget dt = CAUDAL__DT_TARGET__INIT;
		dt.host = "127.0.0.1";
		int lfd = cdl_dt_listen("127.0.0.1", 0, &dead.port);
		close(lfd); /* nothing listens there now */
		dt.port = (uint32_t)dead.port;
		const Caudal__DtTarget *t[3] = {&n[0].t, &dt, &n[2].t};
		cdl_block_writer *w = NULL;
		int bad = 0;
		int rc = cdl_block_writer_open_ex(t, 3, 400, 1, NULL, "test", TMO, &w, &bad);
		CHECK(rc < 0 && bad == 2, "dead second node: rc %d bad %d", rc, bad);
		const Caudal__DtTarget *t2[3] = {&n[0].t, &n[1].t, &dt};
		rc = cdl_block_writer_open_ex(t2, 3, 401, 1, NULL, "test", TMO, &w, &bad);
		CHECK(rc < 0 && bad == 3, "dead third node: rc %d bad %d", rc, bad);
		const Caudal__DtTarget *t3[1] = {&dt};
		rc = cdl_block_writer_open_ex(t3, 1, 402, 1, NULL, "test", TMO, &w, &bad);
		CHECK(rc < 0 && bad == 1, "dead first node: rc %d bad %d", rc, bad);
		usleep(100 * 1000);
		CHECK(!dn_store_has(n[0].s, 400, 1, NULL) && !dn_store_has(n[0].s, 401, 1, NULL),
		      "failed pipeline left a replica");
	}

	/* ---- a newer generation refuses an older writer */
	{
		uint8_t d[10] = {1, 2, 3};
		node *one[1] = {&n[0]};
		CHECK(write_block(one, 1, 500, 5, d, 10, false) == 0, "gen 5 write");
		int rc = write_block(one, 1, 500, 4, d, 10, false);
		CHECK(rc == -ESTALE, "gen 4 after gen 5: %d", rc);
		CHECK(write_block(one, 1, 500, 6, d, 5, false) == 0, "gen 6 write");
		uint64_t l = 0;
		CHECK(dn_store_has(n[0].s, 500, 6, &l) && l == 5, "gen 6 replaces gen 5");
		char *old = xasprintf("%s/current/%02x/blk_500_5", n[0].dir, 500 % 64);
		CHECK(access(old, F_OK) < 0, "old generation left on disk");
		free(old);
	}

	/* ---- replication from one node to a pipeline of two */
	{
		size_t len = 3 * CDL_CHUNK + 99;
		uint8_t *data = xmalloc(len);
		pattern(data, len, 11);
		node *one[1] = {&n[3]};
		CHECK(write_block(one, 1, 600, 2, data, len, false) == 0, "write for replication");
		const Caudal__DtTarget *t[2] = {&n[0].t, &n[2].t};
		int rc = dn_xfer_replicate(n[3].s, 600, 2, t, 2, NULL, "dn3", TMO);
		CHECK(rc == 0, "replicate: %s", strerror(-rc));
		check_read(&n[0], 600, 2, data, len, 0, 0);
		check_read(&n[2], 600, 2, data, len, 0, 0);
		rc = dn_xfer_replicate(n[3].s, 601, 1, t, 2, NULL, "dn3", TMO);
		CHECK(rc == -ENOENT, "replicate missing block: %d", rc);
		free(data);
	}

	/* ---- a replacement node (DT_TRANSFER): a survivor copies the acked
	 * bytes of its replica being written to a new node, under the old
	 * stamp, and the recovery takes the copy over with the survivors' */
	{
		size_t len = 5 * CDL_CHUNK + 777, first = 2 * CDL_CHUNK + 1000;
		uint8_t *data = xmalloc(len);
		pattern(data, len, 13);
		const Caudal__DtTarget *t[3] = {&n[0].t, &n[1].t, &n[2].t};
		cdl_block_writer *w;
		int rc = cdl_block_writer_open(t, 2, 650, 1, NULL, "test", TMO, &w);
		CHECK(rc == 0, "open for transfer");
		if (rc == 0) {
			CHECK(cdl_block_writer_write(w, data, first) == 0, "first part");
			CHECK(cdl_block_writer_sync(w) == 0, "sync before transfer");
			CHECK(cdl_block_writer_acked(w) == first, "acked %" PRIu64,
			      cdl_block_writer_acked(w));
			/* bounds: more than the replica holds, more than a block, a
			 * block not held */
			rc = cdl_block_transfer("127.0.0.1", n[1].port, 650, 1, first + 1, t + 2, 1,
						NULL, "test", TMO);
			CHECK(rc == -ERANGE, "transfer past the replica: %d", rc);
			rc = cdl_block_transfer("127.0.0.1", n[1].port, 650, 1, 1ULL << 37, t + 2,
						1, NULL, "test", TMO);
			CHECK(rc == -EFBIG, "transfer past a block: %d", rc);
			rc = cdl_block_transfer("127.0.0.1", n[1].port, 651, 1, 10, t + 2, 1, NULL,
						"test", TMO);
			CHECK(rc == -ENOENT, "transfer of a missing block: %d", rc);
			CHECK(!dn_store_has(n[2].s, 650, 1, NULL),
			      "refused transfer left a replica");
			rc = cdl_block_transfer("127.0.0.1", n[1].port, 650, 1, first, t + 2, 1,
						NULL, "test", TMO);
			CHECK(rc == 0, "transfer: %s", strerror(-rc));
			uint64_t l = 0;
			CHECK(dn_store_has(n[2].s, 650, 1, &l) && l == first,
			      "replacement holds %" PRIu64 " bytes", l);
			check_read(&n[2], 650, 1, data, first, 0, 0);
			int bad = 0;
			rc = cdl_block_writer_recover_from(w, t, 3, 1, 2, NULL, &bad);
			CHECK(rc == 0, "recovery with the replacement: %s (bad %d)", strerror(-rc),
			      bad);
			if (rc == 0)
				rc = cdl_block_writer_write(w, data + first, len - first);
			uint64_t got = 0;
			if (rc == 0)
				rc = cdl_block_writer_close(w, false, &got);
			else
				cdl_block_writer_abort(w);
			CHECK(rc == 0 && got == len, "write after the recovery: %d, %" PRIu64, rc,
			      got);
			for (int i = 0; i < 3; i++)
				check_read(&n[i], 650, 2, data, len, 0, 0);
		}
		free(data);
	}

	/* ---- a node failing mid-write is reported by position; the others
	 * park their replica for a pipeline recovery, and when their servers
	 * stop without one, keep the hsynced prefix */
	{
		size_t len = 8 * 1024 * 1024;
		uint8_t *data = xmalloc(len);
		pattern(data, len, 12);
		const Caudal__DtTarget *t[3] = {&n[0].t, &n[1].t, &n[3].t};
		cdl_block_writer *w;
		int rc = cdl_block_writer_open(t, 3, 700, 1, NULL, "test", TMO, &w);
		CHECK(rc == 0, "open for mid-write failure");
		if (rc == 0) {
			CHECK(cdl_block_writer_write(w, data, len / 4) == 0, "first quarter");
			CHECK(cdl_block_writer_sync(w) == 0, "sync before failure");
			dn_xfer_stop(n[3].x);
			n[3].x = NULL;
			rc = cdl_block_writer_write(w, data + len / 4, len - len / 4);
			int bad = 0;
			if (rc == 0) {
				rc = cdl_block_writer_close_ex(w, false, NULL, &bad);
			} else {
				bad = cdl_block_writer_bad_target(w);
				cdl_block_writer_abort(w);
			}
			CHECK(rc < 0, "write survived a dead node");
			CHECK(bad == 3, "failed node reported at position %d, not 3", bad);
		}
		usleep(200 * 1000);
		for (int i = 0; i < 2; i++) {
			CHECK(!dn_store_has(n[i].s, 700, 1, NULL),
			      "node %d finalized its replica instead of parking it", i);
			/* restarting the server gives parked replicas up at once */
			int64_t t0 = cdl_now_ms();
			dn_xfer_stop(n[i].x);
			CHECK(cdl_now_ms() - t0 < 2000,
			      "stopping node %d waited for a parked replica", i);
			dn_xfer_opts o = {.host = "127.0.0.1",
					  .port = 0,
					  .max_xceivers = 64,
					  .io_timeout_ms = TMO};
			CHECK(dn_xfer_start(n[i].s, &o, &n[i].x) == 0, "restart server %d", i);
			n[i].port = dn_xfer_port(n[i].x);
			n[i].t.port = (uint32_t)n[i].port;
		}
		for (int i = 0; i < 2; i++) {
			uint64_t l = 0;
			CHECK(dn_store_has(n[i].s, 700, 1, &l) && l == len / 4,
			      "node %d kept %" PRIu64 " bytes of the synced %zu", i, l, len / 4);
			check_read(&n[i], 700, 1, data, len / 4, 0, 0);
		}
		free(data);
	}

	/* ---- a restarted store finds its replicas */
	{
		stop_node(&n[3]);
		int rc = start_node(&n[3], root, 3);
		CHECK(rc == 0, "restart node 3: %s", strerror(-rc));
		size_t len = 3 * CDL_CHUNK + 99;
		uint8_t *data = xmalloc(len);
		pattern(data, len, 11);
		if (rc == 0)
			check_read(&n[3], 600, 2, data, len, 0, 0);
		free(data);
	}

	/* ---- connections beyond max_xceivers, all busy, are closed at once */
	{
		dn_xfer *small = NULL;
		dn_xfer_opts o = {
		    .host = "127.0.0.1", .port = 0, .max_xceivers = 2, .io_timeout_ms = TMO};
		CHECK(dn_xfer_start(n[0].s, &o, &small) == 0, "start a small server");
		int port = small ? dn_xfer_port(small) : 0;
		/* two writes that sent their header and wait for data: busy, not idle */
		Caudal__DtTarget st = CAUDAL__DT_TARGET__INIT;
		st.host = "127.0.0.1";
		st.port = (uint32_t)port;
		const Caudal__DtTarget *stp[1] = {&st};
		cdl_block_writer *busy[2] = {NULL, NULL};
		for (int i = 0; i < 2; i++)
			CHECK(cdl_block_writer_open(stp, 1, 800 + (uint64_t)i, 1, NULL, "test", TMO,
						    &busy[i]) == 0,
			      "busy writer %d", i);
		CHECK(small && dn_xfer_active(small) == 2, "two busy connections served");
		int64_t t0 = cdl_now_ms();
		CHECK(dropped_after(port, "", 0), "third connection not dropped");
		CHECK(cdl_now_ms() - t0 < 2000, "third connection dropped late");
		for (int i = 0; i < 2; i++)
			if (busy[i])
				cdl_block_writer_abort(busy[i]);
		for (int i = 0; i < 100 && small && dn_xfer_active(small) > 0; i++)
			usleep(10 * 1000);
		uint8_t *data = xmalloc(CDL_CHUNK + 1);
		pattern(data, CDL_CHUNK + 1, 5);
		node alt = {.port = port};
		check_read(&alt, 104, 1, data, CDL_CHUNK + 1, 0, 0);
		free(data);
		dn_xfer_stop(small);
	}

	/* ---- throughput: 3 replicas on loopback */
	{
		size_t len = 128u * 1024 * 1024;
		if (getenv("DT_BENCH_MB"))
			len = (size_t)atoi(getenv("DT_BENCH_MB")) * 1024 * 1024;
		size_t blk = 64u * 1024 * 1024, piece = 1024 * 1024;
		uint8_t *data = xmalloc(piece);
		pattern(data, piece, 13);
		const Caudal__DtTarget *t[3] = {&n[0].t, &n[1].t, &n[2].t};
		int64_t t0 = cdl_now_ns();
		int rc = 0;
		for (size_t done = 0, id = 800; done < len && rc == 0; id++) {
			cdl_block_writer *w;
			size_t nrep =
			    getenv("DT_BENCH_REPL") ? (size_t)atoi(getenv("DT_BENCH_REPL")) : 3;
			rc = cdl_block_writer_open(t, nrep, id, 1, NULL, "bench", TMO, &w);
			for (size_t k = 0; rc == 0 && k < blk && done < len;
			     k += piece, done += piece)
				rc = cdl_block_writer_write(w, data, piece);
			if (rc == 0)
				rc = cdl_block_writer_close(w, false, NULL);
		}
		double wsec = (double)(cdl_now_ns() - t0) / 1e9;
		CHECK(rc == 0, "bench write: %s", strerror(-rc));
		t0 = cdl_now_ns();
		uint8_t *buf = xmalloc(piece);
		size_t rd = 0;
		for (size_t id = 800; rc == 0 && rd < len; id++) {
			cdl_block_reader *r;
			rc = cdl_block_reader_open("127.0.0.1", n[1].port, id, 1, 0, 0, NULL, TMO,
						   &r);
			ssize_t k;
			while (rc == 0 && (k = cdl_block_reader_read(r, buf, piece)) > 0)
				rd += (size_t)k;
			if (rc == 0)
				cdl_block_reader_close(r);
		}
		double rsec = (double)(cdl_now_ns() - t0) / 1e9;
		CHECK(rd == len, "bench read %zu of %zu", rd, len);
		printf("test_dn_xfer: write %zu MiB x3 replicas: %.0f MB/s; read: %.0f MB/s\n",
		       len >> 20, (double)len / 1e6 / wsec, (double)len / 1e6 / rsec);
		free(buf);
		free(data);
	}

	for (int i = 0; i < 4; i++)
		stop_node(&n[i]);
	nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	if (failures) {
		fprintf(stderr, "test_dn_xfer: %d checks failed\n", failures);
		return 1;
	}
	printf("test_dn_xfer: ok\n");
	return 0;
}
