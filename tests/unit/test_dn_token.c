/* Unit test of the datanode's refusals and bounds (datanode/dn_xfer.h):
 * two datanode servers on 127.0.0.1 that check block tokens with keys from
 * a namenode-side keyring. Reads, writes, recoveries and copies without a
 * valid token for exactly their block, generation and mode are refused with
 * EACCES; a write whose pipeline names a node the token does not is refused
 * without connecting to it; a write past the token's max_length is cut off
 * and leaves no replica; a server with no keys serves nothing. Then the
 * connection bounds: idle sockets from one peer cost that peer only (an
 * honest read still gets through while 256 are held, from another address
 * or the same one), and a header dribbled too slowly is cut. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cdl_dt.h"
#include "cdl_log.h"
#include "cdl_token.h"
#include "cdl_util.h"
#include "dn_store.h"
#include "dn_xfer.h"
#include "test.h"

#define TMO 10000

typedef struct node {
	char dir[256];
	dn_store *s;
	dn_xfer *x;
	cdl_keyring *kr;
	Caudal__DtTarget t;
} node;

static cdl_keyring *nn; /* the namenode's keyring: signs */

static int start(node *n, const char *root, int i, const dn_xfer_opts *extra, bool keys)
{
	snprintf(n->dir, sizeof(n->dir), "%s/dn%d", root, i);
	int rc = dn_store_open(n->dir, &n->s);
	if (rc < 0)
		return rc;
	n->kr = cdl_keyring_new();
	if (keys) {
		cdl_arena a;
		cdl_arena_init(&a);
		size_t cnt;
		Caudal__BlockKey **k = cdl_keyring_export(nn, &a, cdl_token_now_ms(), &cnt);
		cdl_keyring_set(n->kr, k, cnt);
		cdl_arena_release(&a);
	}
	dn_xfer_opts o = {.host = "127.0.0.1", .port = 0, .max_xceivers = 64, .io_timeout_ms = TMO};
	if (extra)
		o = *extra;
	o.keys = n->kr;
	rc = dn_xfer_start(n->s, &o, &n->x);
	if (rc < 0)
		return rc;
	caudal__dt_target__init(&n->t);
	n->t.host = "127.0.0.1";
	n->t.port = (uint32_t)dn_xfer_port(n->x);
	n->t.id = (char *)dn_store_id(n->s);
	return 0;
}

static void stop(node *n)
{
	dn_xfer_stop(n->x);
	dn_store_free(n->s);
	cdl_keyring_free(n->kr);
}

/* A token from the namenode's keyring for nodes[0..nn). */
static ProtobufCBinaryData tok(uint64_t block, uint64_t gen, uint32_t modes, uint64_t max,
			       const Caudal__DtTarget *const *nodes, size_t nnodes, int64_t life)
{
	cdl_token_spec spec = {.block = block,
			       .gen = gen,
			       .modes = modes,
			       .max_length = max,
			       .nodes = nodes,
			       .nnodes = nnodes,
			       .lifetime_ms = life};
	ProtobufCBinaryData t = {0, NULL};
	CHECK_EQ(cdl_token_sign(nn, &spec, cdl_token_now_ms(), &t), 0);
	return t;
}

static int write_block(const Caudal__DtTarget *const *pipe, size_t np, uint64_t id, uint64_t gen,
		       const ProtobufCBinaryData *t, size_t len)
{
	cdl_block_writer *w;
	int rc = cdl_block_writer_open(pipe, np, id, gen, t, "test", TMO, &w);
	if (rc < 0)
		return rc;
	uint8_t *buf = xmalloc(len + 1);
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(i * 7 + id);
	rc = cdl_block_writer_write(w, buf, len);
	free(buf);
	uint64_t got;
	if (rc < 0) {
		cdl_block_writer_abort(w);
		return rc;
	}
	return cdl_block_writer_close(w, false, &got);
}

static int read_block(const node *n, uint64_t id, uint64_t gen, const ProtobufCBinaryData *t)
{
	cdl_block_reader *r;
	int rc = cdl_block_reader_open("127.0.0.1", (int)n->t.port, id, gen, 0, 0, t, TMO, &r);
	if (rc < 0)
		return rc;
	uint8_t buf[4096];
	ssize_t k;
	while ((k = cdl_block_reader_read(r, buf, sizeof(buf))) > 0)
		;
	cdl_block_reader_close(r);
	return k < 0 ? (int)k : 0;
}

/* A socket connected from source address src (NULL: any) to 127.0.0.1:port. */
static int connect_from(const char *src, int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in sa = {.sin_family = AF_INET};
	if (src) {
		inet_pton(AF_INET, src, &sa.sin_addr);
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			close(fd);
			return -1;
		}
	}
	sa.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Whether the server closed fd within ms. */
static bool closed_within(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int64_t end = cdl_now_ms() + ms;
	for (;;) {
		int left = (int)(end - cdl_now_ms());
		if (left <= 0 || poll(&p, 1, left) <= 0)
			return false;
		char b[64];
		ssize_t r = recv(fd, b, sizeof(b), MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
			return true;
	}
}

static void test_refusals(node *a, node *b)
{
	const Caudal__DtTarget *ab[2] = {&a->t, &b->t};
	const Caudal__DtTarget *only_a[1] = {&a->t}, *only_b[1] = {&b->t};
	size_t len = 3 * CDL_CHUNK + 5;

	/* the honest path: write through a -> b, read from both */
	ProtobufCBinaryData w = tok(10, 1, CDL_TOKEN_WRITE, 64 * CDL_CHUNK, ab, 2, 60000);
	CHECK_EQ(write_block(ab, 2, 10, 1, &w, len), 0);
	ProtobufCBinaryData r = tok(10, 1, CDL_TOKEN_READ, 0, ab, 2, 60000);
	CHECK_EQ(read_block(a, 10, 1, &r), 0);
	CHECK_EQ(read_block(b, 10, 1, &r), 0);

	/* reads: none, another generation, generation 0, another block, a
	 * write token, an expired one, one naming only the other node */
	CHECK_EQ(read_block(a, 10, 1, NULL), -EACCES);
	CHECK_EQ(read_block(a, 10, 2, &r), -EACCES);
	CHECK_EQ(read_block(a, 10, 0, &r), -EACCES);
	CHECK_EQ(read_block(a, 11, 1, &r), -EACCES);
	CHECK_EQ(read_block(a, 10, 1, &w), -EACCES);
	ProtobufCBinaryData old = tok(10, 1, CDL_TOKEN_READ, 0, ab, 2, 1);
	usleep(5 * 1000);
	CHECK_EQ(read_block(a, 10, 1, &old), -EACCES);
	ProtobufCBinaryData rb = tok(10, 1, CDL_TOKEN_READ, 0, only_b, 1, 60000);
	CHECK_EQ(read_block(a, 10, 1, &rb), -EACCES);
	CHECK_EQ(read_block(b, 10, 1, &rb), 0);

	/* writes: none, a read token, the same id and gen again with no
	 * token; nothing replaces the replica */
	CHECK_EQ(write_block(ab, 2, 10, 1, NULL, 100), -EACCES);
	CHECK_EQ(write_block(ab, 2, 10, 2, &r, 100), -EACCES);
	CHECK_EQ(write_block(ab, 2, 10, 1ULL << 62, NULL, 100), -EACCES);
	uint64_t have = 0;
	CHECK(dn_store_has(a->s, 10, 1, &have) && have == len);
	CHECK(!dn_store_has(a->s, 10, 2, &have));

	/* a pipeline target the token does not name: refused before any
	 * connection is made to it */
	int lfd = -1, eport = 0;
	lfd = cdl_dt_listen("127.0.0.1", 0, &eport);
	CHECK(lfd >= 0);
	Caudal__DtTarget evil = CAUDAL__DT_TARGET__INIT;
	evil.host = "127.0.0.1";
	evil.port = (uint32_t)eport;
	evil.id = (char *)dn_store_id(b->s); /* even under a real node's id */
	const Caudal__DtTarget *a_evil[2] = {&a->t, &evil};
	ProtobufCBinaryData w12 = tok(12, 1, CDL_TOKEN_WRITE, 64 * CDL_CHUNK, ab, 2, 60000);
	CHECK_EQ(write_block(a_evil, 2, 12, 1, &w12, 100), -EACCES);
	struct pollfd p = {.fd = lfd, .events = POLLIN};
	CHECK_EQ(poll(&p, 1, 300), 0);
	close(lfd);
	CHECK(!dn_store_has(a->s, 12, 1, &have));

	/* a token that does not name the node it is sent to */
	CHECK_EQ(write_block(only_a, 1, 12, 1, &(ProtobufCBinaryData){0, NULL}, 1), -EACCES);
	ProtobufCBinaryData wb = tok(12, 1, CDL_TOKEN_WRITE, 64 * CDL_CHUNK, only_b, 1, 60000);
	CHECK_EQ(write_block(only_a, 1, 12, 1, &wb, 100), -EACCES);

	/* never more than max_length into a replica: cut off, nothing kept */
	ProtobufCBinaryData small = tok(13, 1, CDL_TOKEN_WRITE, 2 * CDL_CHUNK, ab, 2, 60000);
	CHECK_EQ(write_block(ab, 2, 13, 1, &small, 2 * CDL_CHUNK), 0);
	ProtobufCBinaryData small14 = tok(14, 1, CDL_TOKEN_WRITE, 2 * CDL_CHUNK, ab, 2, 60000);
	CHECK(write_block(ab, 2, 14, 1, &small14, 2 * CDL_CHUNK + 1) < 0);
	usleep(100 * 1000);
	CHECK(!dn_store_has(a->s, 14, 1, &have) && !dn_store_has(b->s, 14, 1, &have));

	/* a recovery needs a write token for the new generation */
	{
		ProtobufCBinaryData w15 = tok(15, 1, CDL_TOKEN_WRITE, 64 * CDL_CHUNK, ab, 2, 60000);
		cdl_block_writer *bw;
		CHECK_EQ(cdl_block_writer_open(ab, 2, 15, 1, &w15, "test", TMO, &bw), 0);
		uint8_t buf[1000] = {0};
		CHECK_EQ(cdl_block_writer_write(bw, buf, sizeof(buf)), 0);
		CHECK_EQ(cdl_block_writer_sync(bw), 0);
		int bad;
		ProtobufCBinaryData r2 = tok(15, 2, CDL_TOKEN_READ, 0, ab, 2, 60000);
		CHECK_EQ(cdl_block_writer_recover(bw, ab, 2, 2, &w15, &bad), -EACCES);
		CHECK_EQ(cdl_block_writer_recover(bw, ab, 2, 3, &r2, &bad), -EACCES);
		ProtobufCBinaryData w4 = tok(15, 4, CDL_TOKEN_WRITE, 64 * CDL_CHUNK, ab, 2, 60000);
		CHECK_EQ(cdl_block_writer_recover(bw, ab, 2, 4, &w4, &bad), 0);
		uint64_t got = 0;
		CHECK_EQ(cdl_block_writer_close(bw, false, &got), 0);
		CHECK_EQ(got, sizeof(buf));
		CHECK(dn_store_has(b->s, 15, 4, &have) && have == sizeof(buf));
		free(w15.data);
		free(r2.data);
		free(w4.data);
	}

	/* a copy: only with a copy (or write) token naming the targets */
	{
		ProtobufCBinaryData w16 =
		    tok(16, 1, CDL_TOKEN_WRITE, 64 * CDL_CHUNK, only_a, 1, 60000);
		CHECK_EQ(write_block(only_a, 1, 16, 1, &w16, len), 0);
		CHECK_EQ(dn_xfer_replicate(a->s, 16, 1, only_b, 1, NULL, "a", TMO), -EACCES);
		CHECK_EQ(dn_xfer_replicate(a->s, 16, 1, only_b, 1, &r, "a", TMO), -EACCES);
		ProtobufCBinaryData c16 =
		    tok(16, 1, CDL_TOKEN_COPY, 64 * CDL_CHUNK, only_b, 1, 60000);
		CHECK_EQ(dn_xfer_replicate(a->s, 16, 1, only_b, 1, &c16, "a", TMO), 0);
		CHECK(dn_store_has(b->s, 16, 1, &have) && have == len);
		free(w16.data);
		free(c16.data);
	}
	free(w.data);
	free(r.data);
	free(old.data);
	free(rb.data);
	free(w12.data);
	free(wb.data);
	free(small.data);
	free(small14.data);
}

/* A server with no keys yet serves nothing. */
static void test_no_keys(const char *root)
{
	node k;
	memset(&k, 0, sizeof(k));
	CHECK_EQ(start(&k, root, 9, NULL, false), 0);
	const Caudal__DtTarget *only[1] = {&k.t};
	ProtobufCBinaryData w = tok(20, 1, CDL_TOKEN_WRITE, 64 * CDL_CHUNK, only, 1, 60000);
	CHECK_EQ(write_block(only, 1, 20, 1, &w, 100), -EACCES);
	free(w.data);
	stop(&k);
}

/* Idle sockets: at max_conns_per_peer a peer's oldest idle socket is cut
 * for its new one; 256 idle sockets from one address, then from the
 * honest client's own address, do not stop an honest read; a header
 * dribbled slower than header_timeout_ms is cut. */
static void test_bounds(const char *root, node *a)
{
	node s;
	memset(&s, 0, sizeof(s));
	dn_xfer_opts o = {.host = "127.0.0.1",
			  .port = 0,
			  .max_xceivers = 96,
			  .max_conns_per_peer = 8,
			  .header_timeout_ms = 60000,
			  .io_timeout_ms = TMO};
	/* the same store as node a, so the block written there is readable */
	(void)root;
	s.s = a->s;
	s.kr = a->kr;
	CHECK_EQ(dn_xfer_start(s.s, &o, &s.x), 0);
	int port = dn_xfer_port(s.x);
	s.t = a->t;
	s.t.port = (uint32_t)port;
	const Caudal__DtTarget *only[1] = {&s.t};
	ProtobufCBinaryData r = tok(10, 1, CDL_TOKEN_READ, 0, only, 1, 60000);

	int idle[256];
	for (int i = 0; i < 8; i++)
		idle[i] = connect_from("127.0.0.5", port);
	usleep(100 * 1000);
	CHECK_EQ(dn_xfer_active(s.x), 8);
	int ninth = connect_from("127.0.0.5", port);
	CHECK(closed_within(idle[0], 2000));
	CHECK(!closed_within(ninth, 200));
	close(ninth);
	for (int i = 0; i < 8; i++)
		close(idle[i]);

	/* 256 from one attacker address, then 256 from the honest one's */
	const char *from[2] = {"127.0.0.5", NULL};
	for (int round = 0; round < 2; round++) {
		int held = 0;
		for (int i = 0; i < 256; i++)
			if ((idle[i] = connect_from(from[round], port)) >= 0)
				held++;
		CHECK_EQ(held, 256);
		usleep(100 * 1000);
		int64_t t0 = cdl_now_ms();
		CHECK_EQ(read_block(&s, 10, 1, &r), 0);
		CHECK(cdl_now_ms() - t0 < 2000);
		for (int i = 0; i < 256; i++)
			if (idle[i] >= 0)
				close(idle[i]);
		for (int i = 0; i < 200 && dn_xfer_active(s.x) > 0; i++)
			usleep(10 * 1000);
	}
	dn_xfer_stop(s.x);

	/* a header dribbled one byte per 100 ms is cut near the deadline */
	o.header_timeout_ms = 400;
	CHECK_EQ(dn_xfer_start(s.s, &o, &s.x), 0);
	port = dn_xfer_port(s.x);
	int fd = connect_from(NULL, port);
	int64_t t0 = cdl_now_ms();
	bool cut = false;
	/* a valid start: the magic and a 256-byte header length */
	static const char prefix[8] = {'C', 'D', 'T', '1', 0, 0, 1, 0};
	for (int i = 0; i < 30 && !cut; i++) {
		if (send(fd, i < 8 ? &prefix[i] : "x", 1, MSG_NOSIGNAL) < 0 ||
		    closed_within(fd, 100))
			cut = true;
	}
	int64_t took = cdl_now_ms() - t0;
	CHECK(cut);
	CHECK(took < 1500);
	close(fd);
	dn_xfer_stop(s.x);
	free(r.data);
}

int main(void)
{
	cdl_log_init("test", CDL_LOG_ERROR);
	signal(SIGPIPE, SIG_IGN);
	const char *tmp = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char root[512];
	snprintf(root, sizeof(root), "%s/test_dn_token.XXXXXX", tmp);
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}
	nn = cdl_keyring_new();
	CHECK_EQ(cdl_keyring_roll(nn, cdl_token_now_ms(), 3600000, 600000), 0);
	node a, b;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	if (start(&a, root, 0, NULL, true) < 0 || start(&b, root, 1, NULL, true) < 0) {
		fprintf(stderr, "cannot start the datanodes\n");
		return 1;
	}
	test_refusals(&a, &b);
	test_no_keys(root);
	test_bounds(root, &a);
	stop(&a);
	stop(&b);
	cdl_keyring_free(nn);
	char *cmd = xasprintf("rm -rf '%s'", root);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove '%s'\n", root);
	free(cmd);
	return TEST_DONE();
}
