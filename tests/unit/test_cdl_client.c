/* Client library against a fake namenode (a real cdl_rpc server with a
 * scripted ClientProtocol) and fake datanodes (real data-transfer sockets):
 *   - option checks, the generic err field, the method-order check;
 *   - retries: EAGAIN replies are retried, errors are returned, an absent
 *     namenode fails within the I/O timeout instead of hanging;
 *   - reads: a replica sending corrupt chunks is reported with ReportBad
 *     and the read fails over; a dead replica is skipped; random and
 *     sequential preads return the right bytes and sequential ones reuse
 *     one connection per block; a file with no live replica gives -EIO;
 *   - writes: blocks split at the block size, AddBlock carries the previous
 *     block's length, a pipeline that cannot be opened is excluded and a new
 *     block asked for, hsync publishes the length (Complete keep_lease),
 *     Complete carries the last block. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "caudal.pb-c.h"
#include "cdl_checksum.h"
#include "cdl_client.h"
#include "cdl_dt.h"
#include "cdl_log.h"
#include "cdl_rpc.h"
#include "cdl_util.h"
#include "test.h"

#define FILE_SIZE (2 * CDL_CHUNK * 2 + 1234) /* two blocks of 2 chunks + a short one */
#define BLOCK	  (2 * CDL_CHUNK)
#define FILE_INO  42
#define WRITE_INO 77

static uint8_t *content; /* the file the fake datanodes serve */

/* ---------------------------------------------------------------- fake datanode */

struct fakedn {
	const char *id;
	int lfd, port;
	bool corrupt; /* serve chunks whose bytes do not match their checksum */
	pthread_t th;
	volatile bool stop;
	int reads; /* read connections served */
	/* received by DT_WRITE, in order */
	uint8_t *wbuf;
	size_t wlen;
	uint64_t wblocks[16];
	int nwblocks;
	pthread_mutex_t mu;
};

static void dn_read(struct fakedn *d, int fd, const Caudal__DtHeader *h)
{
	uint64_t bidx = h->block - 1; /* block ids 1, 2, 3 */
	uint64_t bstart = bidx * BLOCK;
	uint64_t blen = bstart + BLOCK <= FILE_SIZE ? BLOCK : FILE_SIZE - bstart;
	Caudal__DtReply r = CAUDAL__DT_REPLY__INIT;
	if (bidx > 2) {
		r.err = ENOENT;
		cdl_dt_send_reply(fd, &r);
		return;
	}
	r.length = blen;
	if (cdl_dt_send_reply(fd, &r))
		return;
	uint64_t end = h->length ? h->offset + h->length : blen;
	if (end > blen)
		end = blen;
	uint8_t buf[CDL_CHUNK];
	for (uint64_t o = h->offset / CDL_CHUNK * CDL_CHUNK; o < end; o += CDL_CHUNK) {
		uint32_t len = (uint32_t)(blen - o < CDL_CHUNK ? blen - o : CDL_CHUNK);
		memcpy(buf, content + bstart + o, len);
		cdl_dt_frame f = {.len = len,
				  .flags = o + len >= end ? CDL_DT_LAST : 0,
				  .seq = o,
				  .sum = cdl_xxh3(buf, len)};
		if (d->corrupt)
			buf[len / 2] ^= 0x55;
		if (cdl_dt_send_frame(fd, &f, buf))
			return;
	}
}

static void dn_write(struct fakedn *d, int fd, const Caudal__DtHeader *h)
{
	Caudal__DtReply r = CAUDAL__DT_REPLY__INIT;
	if (cdl_dt_send_reply(fd, &r))
		return;
	pthread_mutex_lock(&d->mu);
	if (d->nwblocks < 16)
		d->wblocks[d->nwblocks++] = h->block;
	pthread_mutex_unlock(&d->mu);
	uint8_t *buf = xmalloc(CDL_CHUNK);
	for (;;) {
		cdl_dt_frame f;
		if (cdl_dt_recv_frame(fd, &f) || cdl_dt_recv_payload(fd, &f, buf))
			break;
		pthread_mutex_lock(&d->mu);
		d->wbuf = xrealloc(d->wbuf, d->wlen + f.len + 1);
		memcpy(d->wbuf + d->wlen, buf, f.len);
		d->wlen += f.len;
		pthread_mutex_unlock(&d->mu);
		cdl_dt_ack a = {.seq = f.seq, .err = 0, .bad = 0};
		if (cdl_dt_send_ack(fd, &a) || (f.flags & CDL_DT_LAST))
			break;
	}
	free(buf);
}

static void *dn_main(void *arg)
{
	struct fakedn *d = arg;
	while (!d->stop) {
		struct pollfd p = {.fd = d->lfd, .events = POLLIN};
		if (poll(&p, 1, 50) != 1)
			continue;
		int fd = accept(d->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		cdl_dt_tune(fd, 5000);
		Caudal__DtHeader *h;
		if (cdl_dt_recv_header(fd, &h) == 0) {
			if (h->op == CAUDAL__DT_OP__DT_READ) {
				__atomic_add_fetch(&d->reads, 1, __ATOMIC_RELAXED);
				dn_read(d, fd, h);
			} else {
				dn_write(d, fd, h);
			}
			protobuf_c_message_free_unpacked(&h->base, NULL);
		}
		close(fd);
	}
	return NULL;
}

static void dn_start(struct fakedn *d, const char *id, bool corrupt)
{
	memset(d, 0, sizeof(*d));
	d->id = id;
	d->corrupt = corrupt;
	pthread_mutex_init(&d->mu, NULL);
	d->lfd = cdl_dt_listen("127.0.0.1", 0, &d->port);
	CHECK(d->lfd >= 0);
	pthread_create(&d->th, NULL, dn_main, d);
}

static void dn_stop(struct fakedn *d)
{
	d->stop = true;
	pthread_join(d->th, NULL);
	close(d->lfd);
	free(d->wbuf);
	pthread_mutex_destroy(&d->mu);
}

/* A port nobody listens on. */
static int dead_port(void)
{
	int port;
	int fd = cdl_dt_listen("127.0.0.1", 0, &port);
	close(fd);
	return port;
}

/* ---------------------------------------------------------------- fake namenode */

static struct fakedn dn_bad, dn_good;
static int port_dead;
static int getattr_calls, reportbad_calls, addblock_calls;
static uint64_t reported_block;
static char reported_dn[64];
static bool file_lost; /* GetBlocks lists only the dead replica */
static uint64_t prev_lengths[16];
static int nprev;
static char excluded_seen[64];
static uint64_t complete_len[16];
static bool complete_keep[16];
static int ncomplete;
/* inline files: what Create says of inline_max, the bytes each Complete
 * carried */
static uint64_t create_inline_max;
static size_t complete_inline[16];
static uint8_t last_inline[70000];
static pthread_mutex_t nn_mu = PTHREAD_MUTEX_INITIALIZER;

static void set_err(ProtobufCMessage *reply, uint32_t err)
{
	const ProtobufCFieldDescriptor *f =
	    protobuf_c_message_descriptor_get_field_by_name(reply->descriptor, "err");
	if (f)
		*(uint32_t *)((char *)reply + f->offset) = err;
}

static void h_nosys(void *ctx, const ProtobufCMessage *req, ProtobufCMessage *reply, cdl_arena *a)
{
	(void)ctx, (void)req, (void)a;
	set_err(reply, ENOSYS);
}

static Caudal__Attr *mk_attr(cdl_arena *a, uint64_t ino, uint64_t size)
{
	Caudal__Attr *at = cdl_arena_alloc(a, sizeof(*at));
	caudal__attr__init(at);
	at->ino = ino;
	at->mode = 0100644;
	at->size = size;
	at->block_size = BLOCK;
	at->replication = 2;
	return at;
}

static void h_getattr(void *ctx, const ProtobufCMessage *req, ProtobufCMessage *reply, cdl_arena *a)
{
	const Caudal__GetAttrRequest *r = (const void *)req;
	Caudal__AttrReply *o = (void *)reply;
	(void)ctx;
	const char *path = r->target ? r->target->path : "";
	if (!strcmp(path, "/retry")) {
		/* safe mode for the first two calls */
		if (__atomic_add_fetch(&getattr_calls, 1, __ATOMIC_RELAXED) <= 2) {
			o->err = EAGAIN;
			return;
		}
	} else if (!strcmp(path, "/stuck")) {
		o->err = EAGAIN;
		return;
	} else if (strcmp(path, "/file")) {
		o->err = ENOENT;
		return;
	}
	o->attr = mk_attr(a, FILE_INO, FILE_SIZE);
}

static Caudal__DatanodeInfo *mk_dn(cdl_arena *a, const char *id, int port)
{
	Caudal__DatanodeInfo *d = cdl_arena_alloc(a, sizeof(*d));
	caudal__datanode_info__init(d);
	d->id = cdl_arena_strdup(a, id);
	d->host = cdl_arena_strdup(a, "127.0.0.1");
	d->data_port = (uint32_t)port;
	d->alive = true;
	return d;
}

static void h_getblocks(void *ctx, const ProtobufCMessage *req, ProtobufCMessage *reply,
			cdl_arena *a)
{
	const Caudal__GetBlocksRequest *r = (const void *)req;
	Caudal__GetBlocksReply *o = (void *)reply;
	(void)ctx;
	if (!r->target || r->target->ino != FILE_INO) {
		o->err = ENOENT;
		return;
	}
	o->attr = mk_attr(a, FILE_INO, FILE_SIZE);
	o->n_blocks = 3;
	o->blocks = cdl_arena_alloc(a, 3 * sizeof(*o->blocks));
	for (int i = 0; i < 3; i++) {
		Caudal__LocatedBlock *b = cdl_arena_alloc(a, sizeof(*b));
		caudal__located_block__init(b);
		b->id = (uint64_t)i + 1;
		b->gen = 1;
		b->offset = (uint64_t)i * BLOCK;
		b->length = b->offset + BLOCK <= FILE_SIZE ? BLOCK : FILE_SIZE - b->offset;
		b->locs = cdl_arena_alloc(a, 3 * sizeof(*b->locs));
		if (file_lost) {
			b->locs[b->n_locs++] = mk_dn(a, "dead", port_dead);
		} else {
			/* the dead one and the corrupt one come first */
			b->locs[b->n_locs++] = mk_dn(a, "dead", port_dead);
			if (reported_block != b->id)
				b->locs[b->n_locs++] = mk_dn(a, "bad", dn_bad.port);
			b->locs[b->n_locs++] = mk_dn(a, "good", dn_good.port);
		}
		o->blocks[i] = b;
	}
}

static void h_reportbad(void *ctx, const ProtobufCMessage *req, ProtobufCMessage *reply,
			cdl_arena *a)
{
	const Caudal__ReportBadRequest *r = (const void *)req;
	(void)ctx, (void)reply, (void)a;
	pthread_mutex_lock(&nn_mu);
	reportbad_calls++;
	reported_block = r->block;
	snprintf(reported_dn, sizeof(reported_dn), "%s", r->datanode);
	pthread_mutex_unlock(&nn_mu);
}

static void h_create(void *ctx, const ProtobufCMessage *req, ProtobufCMessage *reply, cdl_arena *a)
{
	(void)ctx, (void)req;
	Caudal__AttrReply *o = (void *)reply;
	o->attr = mk_attr(a, WRITE_INO, 0);
	o->attr->inline_max = create_inline_max;
}

static void h_addblock(void *ctx, const ProtobufCMessage *req, ProtobufCMessage *reply,
		       cdl_arena *a)
{
	const Caudal__AddBlockRequest *r = (const void *)req;
	Caudal__AddBlockReply *o = (void *)reply;
	(void)ctx;
	pthread_mutex_lock(&nn_mu);
	int n = ++addblock_calls;
	if (nprev < 16)
		prev_lengths[nprev++] = r->previous ? r->previous->length : (uint64_t)-1;
	bool excl = false;
	for (size_t i = 0; i < r->n_excluded; i++) {
		snprintf(excluded_seen, sizeof(excluded_seen), "%s", r->excluded[i]);
		excl |= !strcmp(r->excluded[i], "dead");
	}
	pthread_mutex_unlock(&nn_mu);
	Caudal__LocatedBlock *b = cdl_arena_alloc(a, sizeof(*b));
	caudal__located_block__init(b);
	b->id = 100 + (uint64_t)n;
	b->gen = 1;
	b->locs = cdl_arena_alloc(a, sizeof(*b->locs));
	b->n_locs = 1;
	/* the first pipeline starts at a dead datanode until it is excluded */
	b->locs[0] = excl || n > 1 ? mk_dn(a, "good", dn_good.port) : mk_dn(a, "dead", port_dead);
	o->block = b;
}

static void h_complete(void *ctx, const ProtobufCMessage *req, ProtobufCMessage *reply,
		       cdl_arena *a)
{
	const Caudal__CompleteRequest *r = (const void *)req;
	Caudal__AttrReply *rep = (void *)reply;
	(void)ctx;
	/* the namenode answers with the file's attributes */
	rep->attr = cdl_arena_alloc(a, sizeof(*rep->attr));
	caudal__attr__init(rep->attr);
	rep->attr->ino = r->ino;
	rep->attr->mode = S_IFREG | 0644;
	rep->attr->under_construction = r->keep_lease;
	pthread_mutex_lock(&nn_mu);
	if (ncomplete < 16) {
		complete_inline[ncomplete] = r->inline_data.len;
		if (r->inline_data.len && r->inline_data.len <= sizeof(last_inline))
			memcpy(last_inline, r->inline_data.data, r->inline_data.len);
		complete_len[ncomplete] = r->last ? r->last->length : (uint64_t)-1;
		complete_keep[ncomplete++] = r->keep_lease;
	}
	pthread_mutex_unlock(&nn_mu);
}

static void h_status(void *ctx, const ProtobufCMessage *req, ProtobufCMessage *reply, cdl_arena *a)
{
	(void)ctx, (void)req, (void)reply, (void)a;
}

static void h_webcall(void *ctx, const ProtobufCMessage *req, ProtobufCMessage *reply,
		      cdl_arena *a);

static const cdl_rpc_method nn_table[] = {
    {"GetAttr", h_getattr, 0, 0},
    {"Mkdir", h_nosys, 0, 0},
    {"Create", h_create, 0, 0},
    {"Symlink", h_nosys, 0, 0},
    {"Readlink", h_nosys, 0, 0},
    {"Readdir", h_nosys, 0, 0},
    {"Delete", h_status, 0, 0},
    {"Rename", h_nosys, 0, 0},
    {"SetAttr", h_nosys, 0, 0},
    {"GetXattr", h_nosys, 0, 0},
    {"SetXattr", h_nosys, 0, 0},
    {"ListXattr", h_nosys, 0, 0},
    {"RemoveXattr", h_nosys, 0, 0},
    {"SetReplication", h_nosys, 0, 0},
    {"GetBlocks", h_getblocks, 0, 0},
    {"Append", h_nosys, 0, 0},
    {"AddBlock", h_addblock, 0, 0},
    {"Complete", h_complete, 0, 0},
    {"RenewLease", h_status, 0, 0},
    {"Statfs", h_nosys, 0, 0},
    {"Report", h_nosys, 0, 0},
    {"Fsck", h_nosys, 0, 0},
    {"ReportBad", h_reportbad, 0, 0},
    {"GetEvents", h_nosys, 0, 0},
    {"UpdatePipeline", h_nosys, 0, 0},
    {"Decommission", h_nosys, 0, 0},
    {"Mknod", h_nosys, 0, 0},
    {"SetQuota", h_nosys, 0, 0},
    {"GetQuota", h_nosys, 0, 0},
    {"Trash", h_nosys, 0, 0},
    {"RefreshNodes", h_nosys, 0, 0},
    {"WebCall", h_webcall, 0, 0},
    {"MoveReplicas", h_nosys, 0, 0},
    {"Batch", h_nosys, 0, 0},
    {NULL, NULL, 0, 0},
};

/* WebCall as the namenode answers it for a good ticket ("TICKET"): the
 * inner request runs through this table (in .proto order) and its reply
 * comes back packed; any other ticket is EACCES. */
static int webcall_calls;
static void h_webcall(void *ctx, const ProtobufCMessage *req, ProtobufCMessage *reply, cdl_arena *a)
{
	const Caudal__WebCallRequest *r = (const void *)req;
	Caudal__WebCallReply *o = (void *)reply;
	__atomic_add_fetch(&webcall_calls, 1, __ATOMIC_RELAXED);
	const ProtobufCServiceDescriptor *sd = &caudal__client_protocol__descriptor;
	if (r->ticket.len != 6 || memcmp(r->ticket.data, "TICKET", 6) ||
	    r->method >= sd->n_methods || r->method == CDL_NN_WebCall) {
		o->err = EACCES;
		return;
	}
	const ProtobufCMethodDescriptor *md = &sd->methods[r->method];
	ProtobufCMessage *in =
	    protobuf_c_message_unpack(md->input, NULL, r->request.len, r->request.data);
	if (!in) {
		o->err = EINVAL;
		return;
	}
	ProtobufCMessage *out = cdl_arena_alloc(a, md->output->sizeof_message);
	md->output->message_init(out);
	nn_table[r->method].handler(ctx, in, out, a);
	o->reply.len = protobuf_c_message_get_packed_size(out);
	o->reply.data = cdl_arena_alloc(a, o->reply.len + 1);
	protobuf_c_message_pack(out, o->reply.data);
	protobuf_c_message_free_unpacked(in, NULL);
}

/* ---------------------------------------------------------------- tests */

static cdl_client *mk_client(const char *addr, int io_ms, int rpc_ms)
{
	cdl_client_opts o = {.namenode = addr, .io_timeout_ms = io_ms, .rpc_timeout_ms = rpc_ms};
	return cdl_client_new(&o);
}

static void test_options(void)
{
	const char *bad[] = {NULL, "", "host", "host:", ":9000", "h:0", "h:70000", "h:12x"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cdl_client_opts o = {.namenode = bad[i]};
		CHECK(cdl_client_new(&o) == NULL);
	}
	cdl_client_opts neg = {.namenode = "127.0.0.1:1", .io_timeout_ms = -1};
	CHECK(cdl_client_new(&neg) == NULL);
	cdl_client *c = mk_client("127.0.0.1:1", 0, 0);
	CHECK(c != NULL);
	if (c) {
		CHECK_EQ(cdl_client_io_timeout(c), 30000);
		CHECK(!strcmp(cdl_client_host(c), "127.0.0.1"));
		CHECK(strlen(cdl_client_name(c)) > 0);
		cdl_client *c2 = mk_client("127.0.0.1:1", 0, 0);
		CHECK(strcmp(cdl_client_name(c), cdl_client_name(c2)) != 0);
		cdl_client_free(c2);
		cdl_client_free(c);
	}
	Caudal__AttrReply ar = CAUDAL__ATTR_REPLY__INIT;
	ar.err = EROFS;
	CHECK_EQ(cdl_reply_err(&ar.base), EROFS);
	Caudal__EventsReply er = CAUDAL__EVENTS_REPLY__INIT;
	er.err = 7;
	CHECK_EQ(cdl_reply_err(&er.base), 7);
	Caudal__Empty e = CAUDAL__EMPTY__INIT;
	CHECK_EQ(cdl_reply_err(&e.base), 0);
	CHECK_EQ(cdl_reply_err(NULL), 0);
}

static void test_unreachable(void)
{
	char addr[32];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", dead_port());
	cdl_client *c = mk_client(addr, 700, 300);
	int64_t t0 = cdl_now_ms();
	Caudal__Attr *a = NULL;
	int rc = cdl_stat(c, "/x", &a);
	int64_t took = cdl_now_ms() - t0;
	CHECK(rc == -EHOSTUNREACH || rc == -ETIMEDOUT);
	CHECK(took >= 600); /* it kept retrying... */
	CHECK(took < 2500); /* ...but not past the I/O timeout */
	cdl_client_free(c);
}

static void test_retries(const char *addr)
{
	cdl_client *c = mk_client(addr, 5000, 1000);
	Caudal__Attr *a = NULL;
	CHECK_EQ(cdl_stat(c, "/retry", &a), 0);
	CHECK_EQ(getattr_calls, 3);
	if (a) {
		CHECK_EQ(a->ino, FILE_INO);
		protobuf_c_message_free_unpacked(&a->base, NULL);
	}
	CHECK_EQ(cdl_stat(c, "/nothing", &a), -ENOENT);
	cdl_client_free(c);

	/* with a ticket every call goes through WebCall (cdl_client_set_ticket) */
	c = mk_client(addr, 5000, 1000);
	cdl_client_set_ticket(c, "TICKET", 6);
	CHECK_EQ(cdl_stat(c, "/file", &a), 0);
	CHECK_EQ(webcall_calls, 1);
	if (a) {
		CHECK_EQ(a->ino, FILE_INO);
		protobuf_c_message_free_unpacked(&a->base, NULL);
	}
	CHECK_EQ(cdl_stat(c, "/nothing", &a), -ENOENT);
	CHECK_EQ(webcall_calls, 2);
	cdl_client_free(c);
	c = mk_client(addr, 5000, 1000);
	cdl_client_set_ticket(c, "FORGED", 6);
	CHECK_EQ(cdl_stat(c, "/file", &a), -EACCES);
	cdl_client_free(c);

	/* EAGAIN that never ends comes back once the I/O timeout passed */
	c = mk_client(addr, 600, 300);
	int64_t t0 = cdl_now_ms();
	CHECK_EQ(cdl_stat(c, "/stuck", &a), -EAGAIN);
	CHECK(cdl_now_ms() - t0 < 2000);
	cdl_client_free(c);
}

static void test_read(const char *addr)
{
	cdl_client *c = mk_client(addr, 5000, 2000);
	cdl_reader *r = NULL;
	CHECK_EQ(cdl_reader_open_path(c, "/nothing", &r), -ENOENT);
	CHECK_EQ(cdl_reader_open_path(c, "/file", &r), 0);
	if (!r) {
		cdl_client_free(c);
		return;
	}
	CHECK_EQ(cdl_reader_size(r), FILE_SIZE);
	uint8_t *buf = xmalloc(FILE_SIZE + 100);

	/* whole file: block 1 goes dead -> corrupt (reported) -> good */
	CHECK_EQ(cdl_reader_pread(r, buf, FILE_SIZE + 100, 0), FILE_SIZE);
	CHECK(memcmp(buf, content, FILE_SIZE) == 0);
	CHECK(reportbad_calls >= 1);
	CHECK_EQ(reported_block, 1);
	CHECK(!strcmp(reported_dn, "bad"));

	/* random reads, across block boundaries too */
	uint64_t offs[] = {5, BLOCK - 3, BLOCK, 2 * BLOCK + 1000, CDL_CHUNK + 7, FILE_SIZE - 1};
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		memset(buf, 0, 5000);
		size_t want = offs[i] + 5000 <= FILE_SIZE ? 5000 : FILE_SIZE - offs[i];
		CHECK_EQ(cdl_reader_pread(r, buf, 5000, offs[i]), want);
		CHECK(memcmp(buf, content + offs[i], want) == 0);
	}
	CHECK_EQ(cdl_reader_pread(r, buf, 10, FILE_SIZE), 0);
	CHECK_EQ(cdl_reader_pread(r, buf, 10, FILE_SIZE + 5), 0);

	/* sequential small reads reuse the stream: one connection per block */
	int before = dn_good.reads;
	for (uint64_t off = 0; off < FILE_SIZE; off += 4096) {
		ssize_t k = cdl_reader_pread(r, buf, 4096, off);
		size_t want = off + 4096 <= FILE_SIZE ? 4096 : FILE_SIZE - off;
		CHECK_EQ(k, want);
		if (k > 0 && memcmp(buf, content + off, (size_t)k) != 0) {
			CHECK(!"sequential read mismatch");
			break;
		}
	}
	CHECK_EQ(dn_good.reads - before, 3);
	cdl_reader_close(r);

	/* only a dead replica: -EIO after one refresh, in bounded time */
	file_lost = true;
	CHECK_EQ(cdl_reader_open(c, FILE_INO, &r), 0);
	int64_t t0 = cdl_now_ms();
	CHECK_EQ(cdl_reader_pread(r, buf, 100, 0), -EIO);
	CHECK(cdl_now_ms() - t0 < 3000);
	cdl_reader_close(r);
	file_lost = false;

	/* cdl_get_fd into a pipe-backed temp file */
	char tmpl[] = "/tmp/test_cdl_client.XXXXXX";
	int fd = mkstemp(tmpl);
	CHECK(fd >= 0);
	unlink(tmpl);
	CHECK_EQ(cdl_get_fd(c, "/file", fd), 0);
	CHECK_EQ(lseek(fd, 0, SEEK_END), FILE_SIZE);
	CHECK_EQ(pread(fd, buf, FILE_SIZE, 0), FILE_SIZE);
	CHECK(memcmp(buf, content, FILE_SIZE) == 0);
	close(fd);
	free(buf);
	cdl_client_free(c);
}

static void test_write(const char *addr)
{
	cdl_client *c = mk_client(addr, 5000, 2000);
	Caudal__Attr *attr = NULL;
	CHECK_EQ(cdl_create(c, "/w", 0644, 0, 0, false, &attr), 0);
	cdl_writer *w = NULL;
	if (attr) {
		CHECK_EQ(cdl_writer_open(c, attr, &w), 0);
		protobuf_c_message_free_unpacked(&attr->base, NULL);
	}
	if (!w) {
		cdl_client_free(c);
		return;
	}
	/* 1000 bytes, hsync, then the rest in odd pieces */
	CHECK_EQ(cdl_writer_write(w, content, 1000), 0);
	CHECK_EQ(cdl_writer_sync(w), 0);
	CHECK_EQ(ncomplete, 1);
	CHECK_EQ(complete_len[0], 1000);
	CHECK(complete_keep[0]);
	for (size_t off = 1000; off < FILE_SIZE;) {
		size_t k = FILE_SIZE - off < 33333 ? FILE_SIZE - off : 33333;
		CHECK_EQ(cdl_writer_write(w, content + off, k), 0);
		off += k;
	}
	CHECK_EQ(cdl_writer_size(w), FILE_SIZE);
	CHECK_EQ(cdl_writer_ino(w), WRITE_INO);
	CHECK_EQ(cdl_writer_close(w), 0);

	/* the dead first pipeline was excluded and replaced */
	CHECK(!strcmp(excluded_seen, "dead"));
	CHECK_EQ(addblock_calls, 4);		 /* dead try + 3 blocks */
	CHECK_EQ(prev_lengths[0], (uint64_t)-1); /* first block: no previous */
	CHECK_EQ(prev_lengths[1], (uint64_t)-1); /* retry of the first block */
	CHECK_EQ(prev_lengths[2], BLOCK);
	CHECK_EQ(prev_lengths[3], BLOCK);
	CHECK_EQ(ncomplete, 2);
	CHECK_EQ(complete_len[1], FILE_SIZE - 2 * BLOCK);
	CHECK(!complete_keep[1]);
	CHECK_EQ(dn_good.wlen, FILE_SIZE);
	CHECK(dn_good.wbuf && memcmp(dn_good.wbuf, content, FILE_SIZE) == 0);
	CHECK_EQ(dn_good.nwblocks, 3);
	CHECK_EQ(dn_good.wblocks[0], 102);
	CHECK_EQ(dn_good.wblocks[2], 104);
	cdl_client_free(c);
}

/* Inline files: with inline_max from Create, a small file goes whole in
 * Complete (hsync sends what there is, keeping the lease), no block, no
 * datanode; one that outgrows the limit writes all its bytes through a
 * block; an append to an inline file continues its bytes; a reader serves
 * an inline file from the GetBlocks reply. Runs after test_write. */
static void test_inline_write(const char *addr)
{
	cdl_client *c = mk_client(addr, 5000, 2000);
	create_inline_max = 65536;
	int adds = addblock_calls, done = ncomplete;
	size_t dn_bytes = dn_good.wlen;
	Caudal__Attr *attr = NULL;
	cdl_writer *w = NULL;
	CHECK_EQ(cdl_create(c, "/small", 0644, 0, 0, false, &attr), 0);
	CHECK_EQ(cdl_writer_open(c, attr, &w), 0);
	protobuf_c_message_free_unpacked(&attr->base, NULL);
	CHECK_EQ(cdl_writer_write(w, content, 1000), 0);
	CHECK_EQ(cdl_writer_sync(w), 0);
	CHECK_EQ(ncomplete, done + 1);
	CHECK(complete_keep[done]);
	CHECK_EQ(complete_inline[done], 1000);
	CHECK_EQ(cdl_writer_sync(w), 0); /* nothing new: no call */
	CHECK_EQ(ncomplete, done + 1);
	CHECK_EQ(cdl_writer_write(w, content + 1000, 64536), 0); /* 64 KiB exactly */
	CHECK_EQ(cdl_writer_size(w), 65536);
	CHECK_EQ(cdl_writer_close(w), 0);
	CHECK_EQ(ncomplete, done + 2);
	CHECK(!complete_keep[done + 1]);
	CHECK_EQ(complete_inline[done + 1], 65536);
	CHECK_EQ(complete_len[done + 1], (uint64_t)-1); /* no block named */
	CHECK(!memcmp(last_inline, content, 65536));
	CHECK_EQ(addblock_calls, adds);
	CHECK_EQ(dn_good.wlen, dn_bytes);

	/* one byte more: every byte goes through a block */
	CHECK_EQ(cdl_create(c, "/small2", 0644, 0, 0, false, &attr), 0);
	CHECK_EQ(cdl_writer_open(c, attr, &w), 0);
	protobuf_c_message_free_unpacked(&attr->base, NULL);
	CHECK_EQ(cdl_writer_write(w, content, 65536), 0);
	CHECK_EQ(addblock_calls, adds);
	CHECK_EQ(cdl_writer_write(w, content + 65536, 1), 0);
	CHECK_EQ(addblock_calls, adds + 1);
	CHECK_EQ(cdl_writer_close(w), 0);
	CHECK_EQ(complete_inline[done + 2], 0);
	CHECK_EQ(complete_len[done + 2], 65537);
	CHECK_EQ(dn_good.wlen, dn_bytes + 65537);
	CHECK(!memcmp(dn_good.wbuf + dn_bytes, content, 65537));

	/* an append to an inline file continues its bytes */
	Caudal__Attr ap = CAUDAL__ATTR__INIT;
	ap.ino = WRITE_INO;
	ap.mode = 0100644;
	ap.size = 3;
	ap.block_size = BLOCK;
	ap.inline_max = 65536;
	ap.inline_data.data = (uint8_t *)"abc";
	ap.inline_data.len = 3;
	CHECK_EQ(cdl_writer_open(c, &ap, &w), 0);
	CHECK_EQ(cdl_writer_write(w, "de", 2), 0);
	CHECK_EQ(cdl_writer_close(w), 0);
	CHECK_EQ(complete_inline[done + 3], 5);
	CHECK(!memcmp(last_inline, "abcde", 5));
	/* ... and refuses to start without them */
	ap.inline_data.len = 0;
	CHECK_EQ(cdl_writer_open(c, &ap, &w), -EPROTO);

	/* a reader from a GetBlocks reply holding an inline file: served from
	 * it (the reply names an inode the fake namenode does not know, so any
	 * call would fail) */
	Caudal__GetBlocksReply gr = CAUDAL__GET_BLOCKS_REPLY__INIT;
	Caudal__Attr ga = CAUDAL__ATTR__INIT;
	ga.ino = 999;
	ga.mode = 0100644;
	ga.size = 5000;
	ga.block_size = BLOCK;
	gr.attr = &ga;
	gr.inline_data.data = content;
	gr.inline_data.len = 5000;
	uint8_t packed[6000], got[6000];
	size_t pl = caudal__get_blocks_reply__pack(&gr, packed);
	Caudal__GetBlocksReply *un = caudal__get_blocks_reply__unpack(NULL, pl, packed);
	cdl_reader *r = NULL;
	CHECK_EQ(cdl_reader_open_inline(c, 999, un, &r), 0);
	CHECK_EQ(cdl_reader_size(r), 5000);
	CHECK_EQ(cdl_reader_pread(r, got, sizeof(got), 0), 5000);
	CHECK(!memcmp(got, content, 5000));
	CHECK_EQ(cdl_reader_pread(r, got, 100, 4950), 50);
	CHECK(!memcmp(got, content + 4950, 50));
	CHECK_EQ(cdl_reader_pread(r, got, 100, 5000), 0);
	cdl_reader_close(r);
	/* not the whole file inline: refused, the reply stays the caller's */
	gr.inline_data.len = 10;
	pl = caudal__get_blocks_reply__pack(&gr, packed);
	un = caudal__get_blocks_reply__unpack(NULL, pl, packed);
	CHECK_EQ(cdl_reader_open_inline(c, 999, un, &r), -EINVAL);
	protobuf_c_message_free_unpacked(&un->base, NULL);
	create_inline_max = 0;
	cdl_client_free(c);
}

int main(void)
{
	cdl_log_init("test", CDL_LOG_ERROR);
	cdl_rpc_global_init();
	content = xmalloc(FILE_SIZE);
	for (size_t i = 0; i < FILE_SIZE; i++)
		content[i] = (uint8_t)(i * 7 + i / 251);

	test_options();
	test_unreachable();

	dn_start(&dn_bad, "bad", true);
	dn_start(&dn_good, "good", false);
	port_dead = dead_port();
	cdl_rpc_server *s = cdl_rpc_server_new("127.0.0.1:0", 2);
	CHECK(s != NULL);
	CHECK_EQ(cdl_rpc_server_add(s, &caudal__client_protocol__descriptor, nn_table, NULL), 0);
	CHECK_EQ(cdl_rpc_server_start(s), 0);
	char addr[32];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", cdl_rpc_server_port(s));

	test_retries(addr);
	test_read(addr);
	test_write(addr);
	test_inline_write(addr);

	cdl_rpc_server_free(s, 500);
	dn_stop(&dn_bad);
	dn_stop(&dn_good);
	free(content);
	cdl_rpc_global_shutdown();
	return TEST_DONE();
}
