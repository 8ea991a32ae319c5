/* Unit test of the data-transfer framing (fs/cdl_dt.c): header, reply,
 * frame and ack round trips over a socketpair; every bound on lengths and
 * counts read off the wire; and the block reader against a scripted fake
 * server that lies in various ways. Exits non-zero on any failure. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cdl_dt.h"
#include "cdl_log.h"
#include "cdl_util.h"

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

static void pair(int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
		perror("socketpair");
		exit(1);
	}
}

/* Feed raw bytes to recv_header on a fresh socketpair. */
static int header_from_bytes(const void *b, size_t n)
{
	int sv[2];
	pair(sv);
	if (n)
		(void)!write(sv[0], b, n);
	shutdown(sv[0], SHUT_WR);
	Caudal__DtHeader *h = NULL;
	int rc = cdl_dt_recv_header(sv[1], &h);
	if (h)
		protobuf_c_message_free_unpacked(&h->base, NULL);
	close(sv[0]);
	close(sv[1]);
	return rc;
}

static void test_headers(void)
{
	int sv[2];
	pair(sv);
	Caudal__DtTarget t1 = CAUDAL__DT_TARGET__INIT, t2 = CAUDAL__DT_TARGET__INIT;
	t1.host = "127.0.0.2";
	t1.port = 9866;
	t1.id = "a";
	t2.host = "127.0.0.3";
	t2.port = 9867;
	t2.id = "b";
	Caudal__DtTarget *tv[2] = {&t1, &t2};
	Caudal__DtHeader h = CAUDAL__DT_HEADER__INIT;
	h.op = CAUDAL__DT_OP__DT_WRITE;
	h.block = 42;
	h.gen = 7;
	h.offset = 3;
	h.length = 1000;
	h.n_targets = 2;
	h.targets = tv;
	h.client = "me";
	h.sync = true;
	CHECK(cdl_dt_send_header(sv[0], &h) == 0, "send header");
	Caudal__DtHeader *g = NULL;
	int rc = cdl_dt_recv_header(sv[1], &g);
	CHECK(rc == 0, "recv header: %d", rc);
	if (g) {
		CHECK(g->op == CAUDAL__DT_OP__DT_WRITE && g->block == 42 && g->gen == 7 &&
			  g->offset == 3 && g->length == 1000 && g->n_targets == 2 && g->sync &&
			  !strcmp(g->targets[1]->host, "127.0.0.3") &&
			  g->targets[1]->port == 9867 && !strcmp(g->client, "me"),
		      "header fields differ");
		protobuf_c_message_free_unpacked(&g->base, NULL);
	}

	/* replies, including the all-default one that packs to zero bytes */
	Caudal__DtReply r = CAUDAL__DT_REPLY__INIT;
	CHECK(cdl_dt_send_reply(sv[0], &r) == 0, "send empty reply");
	Caudal__DtReply *gr = NULL;
	CHECK(cdl_dt_recv_reply(sv[1], &gr) == 0 && gr->err == 0 && gr->length == 0, "empty reply");
	if (gr)
		protobuf_c_message_free_unpacked(&gr->base, NULL);
	r.err = ENOENT;
	r.length = 123;
	r.message = "nope";
	r.bad_target = 2;
	CHECK(cdl_dt_send_reply(sv[0], &r) == 0, "send reply");
	gr = NULL;
	CHECK(cdl_dt_recv_reply(sv[1], &gr) == 0 && gr->err == ENOENT && gr->length == 123 &&
		  gr->bad_target == 2 && !strcmp(gr->message, "nope"),
	      "reply fields differ");
	if (gr)
		protobuf_c_message_free_unpacked(&gr->base, NULL);
	close(sv[0]);
	close(sv[1]);

	/* bounds and garbage */
	CHECK(header_from_bytes("XXXX\0\0\0\1\0", 9) == -EPROTO, "bad magic");
	CHECK(header_from_bytes("CDT1\0\0\0\0", 8) == -EPROTO, "zero length");
	CHECK(header_from_bytes("CDT1\0\1\0\1", 8) == -EPROTO, "length 65537");
	CHECK(header_from_bytes("CDT1\xff\xff\xff\xff", 8) == -EPROTO, "length 4 GiB");
	CHECK(header_from_bytes("CDT1\0\0\0\5\xff\xff\xff\xff\xff", 13) == -EPROTO, "junk body");
	CHECK(header_from_bytes("CDT1\0\0\0\x10", 8) == -ECONNRESET, "truncated body");
	CHECK(header_from_bytes("CD", 2) == -ECONNRESET, "truncated magic");
	CHECK(header_from_bytes("", 0) == -ECONNRESET, "nothing");

	/* too many targets: refused on send, rejected on receipt */
	Caudal__DtTarget *many[CDL_DT_MAX_TARGETS + 1];
	for (int i = 0; i <= CDL_DT_MAX_TARGETS; i++)
		many[i] = &t1;
	h.n_targets = CDL_DT_MAX_TARGETS + 1;
	h.targets = many;
	pair(sv);
	CHECK(cdl_dt_send_header(sv[0], &h) == -E2BIG, "send with too many targets");
	close(sv[0]);
	close(sv[1]);
	size_t n = protobuf_c_message_get_packed_size(&h.base);
	uint8_t *b = xmalloc(8 + n);
	memcpy(b, "CDT1", 4);
	cdl_put_be32(b + 4, (uint32_t)n);
	protobuf_c_message_pack(&h.base, b + 8);
	CHECK(header_from_bytes(b, 8 + n) == -EPROTO, "recv with too many targets");
	free(b);
	/* exactly the maximum is fine */
	h.n_targets = CDL_DT_MAX_TARGETS;
	pair(sv);
	CHECK(cdl_dt_send_header(sv[0], &h) == 0, "send max targets");
	g = NULL;
	CHECK(cdl_dt_recv_header(sv[1], &g) == 0 && g->n_targets == CDL_DT_MAX_TARGETS,
	      "recv max targets");
	if (g)
		protobuf_c_message_free_unpacked(&g->base, NULL);
	close(sv[0]);
	close(sv[1]);

	/* a reply length over the bound */
	pair(sv);
	(void)!write(sv[0], "\0\2\0\0", 4);
	gr = NULL;
	CHECK(cdl_dt_recv_reply(sv[1], &gr) == -EPROTO, "oversized reply");
	close(sv[0]);
	close(sv[1]);
}

static void test_frames(void)
{
	int sv[2];
	pair(sv);
	uint8_t *p = xmalloc(CDL_CHUNK), *q = xmalloc(CDL_CHUNK);
	for (size_t i = 0; i < CDL_CHUNK; i++)
		p[i] = (uint8_t)(i * 31 + 7);
	/* whole chunk, short, empty */
	uint32_t lens[3] = {CDL_CHUNK, 100, 0};
	for (int i = 0; i < 3; i++) {
		cdl_dt_frame f = {.len = lens[i],
				  .flags = i == 2 ? CDL_DT_LAST | CDL_DT_SYNC : 0,
				  .seq = 0x0102030405060708ull + (uint64_t)i,
				  .sum = cdl_xxh3(p, lens[i])};
		/* the chunk fits the socket buffer only in pieces: send from a child */
		pid_t pid = fork();
		if (pid == 0) {
			_exit(cdl_dt_send_frame(sv[0], &f, p) == 0 ? 0 : 1);
		}
		cdl_dt_frame g;
		int rc = cdl_dt_recv_frame(sv[1], &g);
		CHECK(rc == 0 && g.len == f.len && g.flags == f.flags && g.seq == f.seq &&
			  g.sum == f.sum,
		      "frame %d round trip", i);
		rc = cdl_dt_recv_payload(sv[1], &g, q);
		CHECK(rc == 0 && !memcmp(p, q, g.len), "payload %d: %d", i, rc);
		int st;
		waitpid(pid, &st, 0);
	}
	/* a payload that does not match its sum */
	cdl_dt_frame f = {.len = 100, .seq = 1, .sum = cdl_xxh3(p, 100) ^ 1};
	CHECK(cdl_dt_send_frame(sv[0], &f, p) == 0, "send bad-sum frame");
	cdl_dt_frame g;
	CHECK(cdl_dt_recv_frame(sv[1], &g) == 0, "recv bad-sum frame");
	CHECK(cdl_dt_recv_payload(sv[1], &g, q) == -EBADMSG, "bad sum detected");
	/* a frame longer than a chunk, and unknown flags */
	uint8_t raw[CDL_DT_FRAME];
	f = (cdl_dt_frame){.len = 10};
	cdl_dt_frame_encode(raw, &f);
	cdl_put_be32(raw, CDL_CHUNK + 1);
	(void)!write(sv[0], raw, sizeof(raw));
	CHECK(cdl_dt_recv_frame(sv[1], &g) == -EPROTO, "oversized frame");
	cdl_put_be32(raw, 10);
	cdl_put_be32(raw + 4, 0x80);
	(void)!write(sv[0], raw, sizeof(raw));
	CHECK(cdl_dt_recv_frame(sv[1], &g) == -EPROTO, "unknown flags");
	f.len = CDL_CHUNK + 1;
	CHECK(cdl_dt_send_frame(sv[0], &f, p) == -EINVAL, "send oversized frame");
	/* acks */
	cdl_dt_ack a = {.seq = 99, .err = EIO, .bad = 3}, b;
	CHECK(cdl_dt_send_ack(sv[0], &a) == 0 && cdl_dt_recv_ack(sv[1], &b) == 0 && b.seq == 99 &&
		  b.err == EIO && b.bad == 3,
	      "ack round trip");
	a.bad = CDL_DT_MAX_TARGETS + 2;
	CHECK(cdl_dt_send_ack(sv[0], &a) == 0 && cdl_dt_recv_ack(sv[1], &b) == -EPROTO,
	      "ack with impossible position");
	close(sv[0]);
	CHECK(cdl_dt_recv_ack(sv[1], &b) == -ECONNRESET, "ack after close");
	close(sv[1]);
	free(p);
	free(q);
}

/* ---- a scripted fake datanode for the reader */

enum lie { L_NONE, L_REFUSE, L_BAD_SUM, L_BAD_SEQ, L_SHORT, L_LONG_REPLICA };

struct fake {
	int lfd;
	enum lie lie;
	uint64_t len;
};

static void *fake_main(void *arg)
{
	struct fake *fk = arg;
	int fd = accept(fk->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	Caudal__DtHeader *h = NULL;
	if (cdl_dt_recv_header(fd, &h) < 0)
		goto out;
	Caudal__DtReply r = CAUDAL__DT_REPLY__INIT;
	if (fk->lie == L_REFUSE) {
		r.err = ENOENT;
		cdl_dt_send_reply(fd, &r);
		goto out;
	}
	r.length = fk->len;
	cdl_dt_send_reply(fd, &r);
	uint8_t *buf = xmalloc(CDL_CHUNK);
	for (uint64_t off = h->offset / CDL_CHUNK * CDL_CHUNK; off < fk->len; off += CDL_CHUNK) {
		uint32_t n = fk->len - off < CDL_CHUNK ? (uint32_t)(fk->len - off) : CDL_CHUNK;
		for (uint32_t i = 0; i < n; i++)
			buf[i] = (uint8_t)(off + i);
		cdl_dt_frame f = {.len = n, .seq = off, .sum = cdl_xxh3(buf, n)};
		if (fk->lie == L_BAD_SUM && off >= CDL_CHUNK)
			f.sum ^= 1;
		if (fk->lie == L_BAD_SEQ && off >= CDL_CHUNK)
			f.seq += 1;
		if (fk->lie == L_SHORT && off == 0 && n == CDL_CHUNK) {
			f.len = 100;
			f.sum = cdl_xxh3(buf, 100);
		}
		if (cdl_dt_send_frame(fd, &f, buf) < 0)
			break;
	}
	free(buf);
out:
	if (h)
		protobuf_c_message_free_unpacked(&h->base, NULL);
	close(fd);
	return NULL;
}

/* The reader's buffer: two chunks, or more to take many frames at once. */
static size_t fake_buf = CDL_CHUNK * 2;

/* Read a range from a fake server telling lie; returns bytes or -errno. */
static ssize_t fake_read(enum lie lie, uint64_t len, uint64_t off, uint64_t n, int *open_rc)
{
	struct fake fk = {.lie = lie, .len = len};
	int port;
	fk.lfd = cdl_dt_listen("127.0.0.1", 0, &port);
	pthread_t t;
	pthread_create(&t, NULL, fake_main, &fk);
	cdl_block_reader *r;
	ssize_t total = 0;
	*open_rc = cdl_block_reader_open("127.0.0.1", port, 1, 1, off, n, NULL, 5000, &r);
	if (*open_rc == 0) {
		uint8_t *buf = xmalloc(fake_buf);
		ssize_t k;
		uint64_t pos = off;
		while ((k = cdl_block_reader_read(r, buf, fake_buf)) > 0) {
			for (ssize_t i = 0; i < k; i++)
				if (buf[i] != (uint8_t)(pos + (uint64_t)i)) {
					k = -EILSEQ;
					break;
				}
			if (k < 0)
				break;
			pos += (uint64_t)k;
			total += k;
		}
		if (k < 0)
			total = k;
		free(buf);
		cdl_block_reader_close(r);
	}
	pthread_join(t, NULL);
	close(fk.lfd);
	return total;
}

static void test_reader(void)
{
	int orc;
	uint64_t len = 3 * CDL_CHUNK + 5;
	CHECK(fake_read(L_NONE, len, 0, 0, &orc) == (ssize_t)len && orc == 0, "honest read");
	CHECK(fake_read(L_NONE, len, CDL_CHUNK + 3, 10, &orc) == 10, "honest range");
	CHECK(fake_read(L_NONE, len, len - 1, 0, &orc) == 1, "honest last byte");
	CHECK(fake_read(L_NONE, len, len, 0, &orc) == 0 && orc == 0, "read at the end");
	fake_read(L_REFUSE, len, 0, 0, &orc);
	CHECK(orc == -ENOENT, "refusal: %d", orc);
	CHECK(fake_read(L_BAD_SUM, len, 0, 0, &orc) == -EBADMSG, "bad sum");
	CHECK(fake_read(L_BAD_SEQ, len, 0, 0, &orc) == -EPROTO, "bad seq");
	CHECK(fake_read(L_SHORT, len, 0, 0, &orc) == -EPROTO, "short chunk mid-replica");
	/* the server stops early: the reader sees the connection end */
	CHECK(fake_read(L_NONE, len, 0, 0, &orc) == (ssize_t)len, "honest again");

	/* many frames per receive: the same answers */
	fake_buf = 8 * CDL_CHUNK + 3;
	len = 20 * CDL_CHUNK + 5;
	CHECK(fake_read(L_NONE, len, 0, 0, &orc) == (ssize_t)len, "honest read, runs");
	CHECK(fake_read(L_NONE, len, CDL_CHUNK, 5 * CDL_CHUNK + 9, &orc) ==
		  (ssize_t)(5 * CDL_CHUNK + 9),
	      "range ending mid-chunk, runs");
	CHECK(fake_read(L_NONE, len, 7, 0, &orc) == (ssize_t)(len - 7), "unaligned start, runs");
	CHECK(fake_read(L_BAD_SUM, len, 0, 0, &orc) == -EBADMSG, "bad sum in a run");
	CHECK(fake_read(L_BAD_SEQ, len, 0, 0, &orc) == -EPROTO, "bad seq in a run");
	CHECK(fake_read(L_SHORT, len, 0, 0, &orc) == -EPROTO, "short chunk in a run");
	fake_buf = CDL_CHUNK * 2;
}

static void test_connect(void)
{
	int port;
	int lfd = cdl_dt_listen("127.0.0.1", 0, &port);
	CHECK(lfd >= 0 && port > 0, "listen on a free port");
	close(lfd);
	int fd = cdl_dt_connect("127.0.0.1", port, 2000, 2000);
	CHECK(fd == -ECONNREFUSED, "connect to a closed port: %d", fd);
	CHECK(cdl_dt_connect("127.0.0.1", 0, 2000, 2000) == -EINVAL, "port 0");
	CHECK(cdl_dt_connect("", 1, 2000, 2000) == -EINVAL, "empty host");
	CHECK(cdl_dt_connect("no-such-host.invalid", 1, 2000, 2000) < 0, "unknown host");
}

int main(void)
{
	cdl_log_init("test", CDL_LOG_WARN);
	signal(SIGPIPE, SIG_IGN);
	test_headers();
	test_frames();
	test_reader();
	test_connect();
	if (failures) {
		fprintf(stderr, "test_cdl_dt: %d checks failed\n", failures);
		return 1;
	}
	printf("test_cdl_dt: ok\n");
	return 0;
}
