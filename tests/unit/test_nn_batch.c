/* Batch, the write-back creates' call (issue 9), on a temporary RocksDB
 * through the real RPC layer (which does not retry EAGAIN, so a caller held
 * off sees it): holds on directories and what they block, reserved inode
 * ids, files made closed (inline) and open, recalls, lapses, a restart
 * (holds forgotten, reservations kept), and every bound and refusal. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "caudal.pb-c.h"
#include "cdl_log.h"
#include "cdl_rpc.h"
#include "cdl_util.h"
#include "nn_check.h"
#include "nn_ckpt.h"
#include "nn_ns.h"
#include "test.h"
#include "nn_harness.h"

/* Wait out the moment after a recalled hold ends (NN_HOLD_COOL_MS). */
static void cool_off(void)
{
	usleep((NN_HOLD_COOL_MS + 50) * 1000);
}

static cdl_rpc_client *cl;
static nn_ns *ns;
static cdl_rpc_server *srv;
static char dir[] = "/tmp/caudal-test-batch-XXXXXX";
static const Caudal__Cred root_cred = CAUDAL__CRED__INIT;
static Caudal__Cred user = CAUDAL__CRED__INIT;

static struct nn_harness nnh;

static void start_sync(int64_t hold_ms, int64_t inline_max, bool sync)
{
	nn_conf c = nn_harness_conf(dir);
	c.safemode_pct = 0;
	c.events_keep = 10000;
	c.inline_max = inline_max;
	c.hold_ms = hold_ms;
	c.batch_ms = 5;
	c.sync_always = sync;
	nn_harness_start(&nnh, &c, 0);
	ns = nnh.ns, srv = nnh.srv, cl = nnh.cl;
	nn_ns_tick(ns); /* out of safe mode (safemode_pct 0) */
}

static void start(int64_t hold_ms, int64_t inline_max)
{
	start_sync(hold_ms, inline_max, true);
}

static void stop_nn(void)
{
	nn_harness_stop(&nnh);
}

/* Calls method m; a request without a Cred acts as root. */
static void *call(const char *m, const void *req)
{
	return nn_harness_call(cl, m, req, &root_cred, 10000);
}

static void rfree(void *r)
{
	protobuf_c_message_free_unpacked(r, NULL);
}

static int mkdir_mode(const char *path, uint32_t mode)
{
	Caudal__MkdirRequest q = CAUDAL__MKDIR_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = (char *)path;
	q.target = &t;
	q.mode = mode;
	Caudal__AttrReply *r = call("Mkdir", &q);
	int e = (int)r->err;
	rfree(r);
	return e;
}

/* GetAttr by path (ino 0) or by id; *out gets the attributes (caller frees
 * the reply through rfree(*reply)) when wanted. */
static int getattr(const char *path, uint64_t ino, Caudal__AttrReply **reply)
{
	Caudal__GetAttrRequest q = CAUDAL__GET_ATTR_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = (char *)(path ? path : "");
	t.ino = ino;
	q.target = &t;
	Caudal__AttrReply *r = call("GetAttr", &q);
	int e = (int)r->err;
	if (reply)
		*reply = r;
	else
		rfree(r);
	return e;
}

static uint64_t ino_of(const char *path)
{
	Caudal__AttrReply *r;
	uint64_t ino = getattr(path, 0, &r) == 0 ? r->attr->ino : 0;
	rfree(r);
	return ino;
}

static uint64_t version_of(uint64_t ino)
{
	Caudal__AttrReply *r;
	uint64_t v = getattr(NULL, ino, &r) == 0 ? r->attr->version : 0;
	rfree(r);
	return v;
}

static int readdir_n(uint64_t ino, size_t *n)
{
	Caudal__ReaddirRequest q = CAUDAL__READDIR_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.ino = ino;
	q.target = &t;
	Caudal__ReaddirReply *r = call("Readdir", &q);
	int e = (int)r->err;
	if (n)
		*n = r->n_entries;
	rfree(r);
	return e;
}

static int create(const char *path, const char *client)
{
	Caudal__CreateRequest q = CAUDAL__CREATE_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = (char *)path;
	q.target = &t;
	q.mode = 0644;
	q.client = (char *)client;
	Caudal__AttrReply *r = call("Create", &q);
	int e = (int)r->err;
	rfree(r);
	return e;
}

static int complete_inline(uint64_t ino, const char *client, const char *data)
{
	Caudal__CompleteRequest q = CAUDAL__COMPLETE_REQUEST__INIT;
	q.ino = ino;
	q.client = (char *)client;
	q.inline_data.data = (uint8_t *)data;
	q.inline_data.len = strlen(data);
	Caudal__AttrReply *r = call("Complete", &q);
	int e = (int)r->err;
	rfree(r);
	return e;
}

static int del(const char *path, bool recursive)
{
	Caudal__DeleteRequest q = CAUDAL__DELETE_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = (char *)path;
	q.target = &t;
	q.recursive = recursive;
	Caudal__Status *r = call("Delete", &q);
	int e = (int)r->err;
	rfree(r);
	return e;
}

static int ren(const char *a, const char *b)
{
	Caudal__RenameRequest q = CAUDAL__RENAME_REQUEST__INIT;
	Caudal__Target s = CAUDAL__TARGET__INIT, d = CAUDAL__TARGET__INIT;
	s.path = (char *)a;
	d.path = (char *)b;
	q.src = &s;
	q.dst = &d;
	Caudal__Status *r = call("Rename", &q);
	int e = (int)r->err;
	rfree(r);
	return e;
}

static int chmod_ino(uint64_t ino, uint32_t mode)
{
	Caudal__SetAttrRequest q = CAUDAL__SET_ATTR_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.ino = ino;
	q.target = &t;
	q.valid = CAUDAL__SET_ATTR_FIELD__SA_MODE;
	q.mode = mode;
	Caudal__AttrReply *r = call("SetAttr", &q);
	int e = (int)r->err;
	rfree(r);
	return e;
}

static int set_ns_quota(const char *path, int64_t n)
{
	Caudal__SetQuotaRequest q = CAUDAL__SET_QUOTA_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = (char *)path;
	q.target = &t;
	q.set_ns = true;
	q.ns_quota = n;
	Caudal__Status *r = call("SetQuota", &q);
	int e = (int)r->err;
	rfree(r);
	return e;
}

/* A Batch being built: takes, ops, gives, a reservation. */
typedef struct batch {
	Caudal__BatchRequest q;
	uint64_t take[80], give[80];
	Caudal__BatchOp ops[300], *opp[300];
	Caudal__Cred *cred;
} batch;

static void b_init(batch *b, const char *client)
{
	memset(b, 0, sizeof(*b));
	caudal__batch_request__init(&b->q);
	b->q.client = (char *)client;
	b->q.take = b->take;
	b->q.give = b->give;
	b->q.ops = b->opp;
}

static Caudal__BatchOp *b_op(batch *b, uint64_t parent, const char *name, uint64_t ino, bool closed,
			     const char *data)
{
	Caudal__BatchOp *o = &b->ops[b->q.n_ops];
	caudal__batch_op__init(o);
	o->parent = parent;
	o->name = (char *)name;
	o->ino = ino;
	o->mode = S_IFREG | 0644;
	o->cred = (Caudal__Cred *)&root_cred;
	o->closed = closed;
	if (data) {
		o->inline_data.data = (uint8_t *)data;
		o->inline_data.len = strlen(data);
	}
	b->opp[b->q.n_ops++] = o;
	return o;
}

static Caudal__BatchReply *b_send(batch *b)
{
	Caudal__BatchReply *r = call("Batch", &b->q);
	if (!r->err) {
		CHECK_EQ(r->n_errs, b->q.n_ops);
		CHECK_EQ(r->n_attrs, b->q.n_ops);
		CHECK_EQ(r->n_held, r->n_held_versions);
	}
	return r;
}

/* One op alone for client, as cred (NULL: root): its errno. */
static int one_op(const char *client, uint64_t parent, const char *name, uint64_t ino,
		  const Caudal__Cred *cred)
{
	batch b;
	b_init(&b, client);
	Caudal__BatchOp *o = b_op(&b, parent, name, ino, true, NULL);
	o->cred = (Caudal__Cred *)(cred ? cred : &root_cred);
	Caudal__BatchReply *r = b_send(&b);
	int e = r->err ? (int)r->err : (int)r->errs[0];
	rfree(r);
	return e;
}

/* Does client hold dir after taking it (as cred)? */
static bool take(const char *client, uint64_t d, const Caudal__Cred *cred)
{
	batch b;
	b_init(&b, client);
	b.take[b.q.n_take++] = d;
	b.q.cred = (Caudal__Cred *)cred;
	Caudal__BatchReply *r = b_send(&b);
	bool held = !r->err && r->n_held == 1 && r->held[0] == d;
	rfree(r);
	return held;
}

static void give(const char *client, uint64_t d)
{
	batch b;
	b_init(&b, client);
	b.give[b.q.n_give++] = d;
	Caudal__BatchReply *r = b_send(&b);
	CHECK_EQ(r->err, 0);
	rfree(r);
}

/* A range of n ids for client; its first. */
static uint64_t reserve(const char *client, uint32_t n)
{
	batch b;
	b_init(&b, client);
	b.q.reserve = n;
	Caudal__BatchReply *r = b_send(&b);
	CHECK_EQ(r->err, 0);
	CHECK_EQ(r->ino_count, n);
	uint64_t first = r->ino_first;
	rfree(r);
	return first;
}

/* Is d in client's recalled list (a Batch with nothing else)? */
static bool recalled(const char *client, uint64_t d)
{
	batch b;
	b_init(&b, client);
	Caudal__BatchReply *r = b_send(&b);
	bool found = false;
	for (size_t i = 0; i < r->n_recalled; i++)
		found |= r->recalled[i] == d;
	rfree(r);
	return found;
}

static bool event_seen(Caudal__EventType type, const char *path)
{
	Caudal__EventsRequest q = CAUDAL__EVENTS_REQUEST__INIT;
	q.from_txid = 1;
	q.max = 4096;
	Caudal__EventsReply *r = call("GetEvents", &q);
	bool seen = false;
	for (size_t i = 0; i < r->n_events; i++)
		seen |= r->events[i]->type == type && !strcmp(r->events[i]->path, path);
	rfree(r);
	return seen;
}

static void expect_check_ok(void)
{
	nn_check_report rep;
	CHECK_EQ(nn_check_run(ns, 20, &rep), 0);
	CHECK_EQ(rep.violations, 0);
	if (rep.violations)
		fprintf(stderr, "%s", rep.text);
	nn_check_report_release(&rep);
}

/* Take, reserve, make files closed and open, give back; what others see
 * meanwhile and after. */
static void test_honest(void)
{
	CHECK_EQ(mkdir_mode("/w", 0777), 0);
	CHECK_EQ(mkdir_mode("/w/d", 0777), 0);
	uint64_t d = ino_of("/w/d"), v0 = version_of(d);
	CHECK(d != 0);

	batch b;
	b_init(&b, "m1");
	b.take[b.q.n_take++] = d;
	b.q.reserve = 16;
	Caudal__BatchReply *r = b_send(&b);
	CHECK_EQ(r->err, 0);
	CHECK_EQ(r->n_held, 1);
	CHECK_EQ(r->held[0], d);
	CHECK_EQ(r->held_versions[0], v0);
	CHECK_EQ(r->ino_count, 16);
	CHECK(r->ino_first > d);
	CHECK_EQ(r->hold_ms, 60000);
	CHECK_EQ(r->inline_max, 65536);
	CHECK_EQ(r->block_size, 1 << 20);
	CHECK_EQ(r->replication, 3);
	uint64_t first = r->ino_first;
	rfree(r);
	/* the range is the namenode's no more: a Create gets an id past it */
	CHECK_EQ(create("/w/plain", "c1"), 0);
	CHECK(ino_of("/w/plain") >= first + 16);

	b_init(&b, "m1");
	b_op(&b, d, "empty", first, true, NULL)->cred = &user;
	Caudal__BatchOp *o = b_op(&b, d, "small", first + 1, true, "hello");
	o->cred = &user;
	o->mtime_ns = 12345;
	b_op(&b, d, "open", first + 2, false, NULL)->cred = &user;
	r = b_send(&b);
	CHECK_EQ(r->err, 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(r->errs[i], 0);
	CHECK_EQ(r->attrs[0]->ino, first);
	CHECK_EQ(r->attrs[0]->size, 0);
	CHECK_EQ(r->attrs[0]->uid, 1000);
	CHECK(!r->attrs[0]->under_construction);
	CHECK_EQ(r->attrs[1]->ino, first + 1);
	CHECK_EQ(r->attrs[1]->size, 5);
	CHECK_EQ(r->attrs[1]->mtime_ns, 12345);
	CHECK_EQ(r->attrs[1]->mode, S_IFREG | 0644);
	CHECK(!r->attrs[1]->under_construction);
	CHECK_EQ(r->attrs[2]->ino, first + 2);
	CHECK(r->attrs[2]->under_construction);
	CHECK_EQ(r->n_recalled, 0);
	rfree(r);

	/* while held: lookups, listings, changes in d and of d wait */
	Caudal__AttrReply *ar;
	CHECK_EQ(getattr(NULL, d, NULL), 0);	     /* d's own attributes by id */
	CHECK_EQ(getattr(NULL, first + 1, NULL), 0); /* a file in d by id */
	CHECK_EQ(getattr("/w/d/small", 0, NULL), EAGAIN);
	CHECK_EQ(getattr("/w/d/nothere", 0, NULL), EAGAIN);
	CHECK_EQ(getattr("/w/d", 0, NULL), 0); /* d in /w */
	CHECK_EQ(readdir_n(d, NULL), EAGAIN);
	CHECK_EQ(create("/w/d/x", "c1"), EAGAIN);
	CHECK_EQ(mkdir_mode("/w/d/sub", 0755), EAGAIN);
	CHECK_EQ(del("/w/d/small", false), EAGAIN);
	CHECK_EQ(del("/w/d", true), EAGAIN);
	CHECK_EQ(del("/w", true), EAGAIN); /* a tree holding d */
	CHECK_EQ(ren("/w/d", "/w/e"), EAGAIN);
	CHECK_EQ(ren("/w/d/small", "/w/small"), EAGAIN);
	CHECK_EQ(ren("/w/plain", "/w/d/plain"), EAGAIN);
	CHECK_EQ(chmod_ino(d, 0700), EAGAIN);
	CHECK_EQ(set_ns_quota("/w", 1000), EAGAIN);
	/* the in-process callers wait, then give up with EAGAIN */
	{
		cdl_arena a;
		cdl_arena_init(&a);
		Caudal__ReaddirRequest q = CAUDAL__READDIR_REQUEST__INIT;
		Caudal__Target t = CAUDAL__TARGET__INIT;
		t.ino = d;
		q.target = &t;
		Caudal__ReaddirReply *rr = (void *)nn_ns_call_local(ns, "Readdir", &q.base, &a);
		CHECK(rr && rr->err == EAGAIN);
		cdl_arena_release(&a);
	}
	CHECK(recalled("m1", d));
	/* another holder: not granted, and its op there waits */
	CHECK(!take("m2", d, &root_cred));
	uint64_t first2 = reserve("m2", 4);
	CHECK_EQ(one_op("m2", d, "theirs", first2, NULL), EAGAIN);
	/* the open file is m1's to complete */
	CHECK_EQ(complete_inline(first + 2, "m2", "abc"), EBUSY);
	CHECK_EQ(complete_inline(first + 2, "m1", "abc"), 0);

	give("m1", d);
	CHECK(!recalled("m1", d));
	size_t n = 0;
	CHECK_EQ(readdir_n(d, &n), 0);
	CHECK_EQ(n, 3);
	CHECK_EQ(getattr("/w/d/open", 0, &ar), 0);
	CHECK_EQ(ar->attr->size, 3);
	CHECK(!ar->attr->under_construction);
	rfree(ar);
	CHECK(version_of(d) == v0 + 3);
	{
		Caudal__GetBlocksRequest q = CAUDAL__GET_BLOCKS_REQUEST__INIT;
		Caudal__Target t = CAUDAL__TARGET__INIT;
		t.path = "/w/d/small";
		q.target = &t;
		Caudal__GetBlocksReply *gr = call("GetBlocks", &q);
		CHECK_EQ(gr->err, 0);
		CHECK_EQ(gr->n_blocks, 0);
		CHECK(gr->inline_data.len == 5 && !memcmp(gr->inline_data.data, "hello", 5));
		rfree(gr);
	}
	CHECK(event_seen(CAUDAL__EVENT_TYPE__EV_CREATE, "/w/d/small"));
	CHECK(event_seen(CAUDAL__EVENT_TYPE__EV_CLOSE, "/w/d/small"));
	CHECK(event_seen(CAUDAL__EVENT_TYPE__EV_CREATE, "/w/d/open"));
	CHECK(event_seen(CAUDAL__EVENT_TYPE__EV_CLOSE, "/w/d/open"));
	/* what waited goes through now */
	CHECK_EQ(ren("/w/d/small", "/w/d/small2"), 0);
	CHECK_EQ(create("/w/d/x", "c1"), 0);
	/* and m2 may take it, then make its file */
	cool_off(); /* a recalled hold just ended: no take for a moment */
	CHECK(take("m2", d, &root_cred));
	CHECK_EQ(one_op("m2", d, "theirs", first2, NULL), 0);
	/* m1's next op there waits for m2 */
	CHECK_EQ(one_op("m1", d, "mine", first + 3, NULL), EAGAIN);
	CHECK(recalled("m2", d));
	give("m2", d);
	cool_off(); /* a recalled hold just ended: no take for a moment */
	/* a lapsed (here: given back) hold is taken again by the op itself */
	CHECK_EQ(one_op("m1", d, "mine", first + 4, NULL), 0);
	CHECK_EQ(readdir_n(d, NULL), EAGAIN);
	give("m1", d);
	CHECK_EQ(readdir_n(d, &n), 0);
	CHECK_EQ(n, 6);
	expect_check_ok();
}

/* Every refusal: ids, names, modes, permissions, quotas, bounds. */
static void test_abuse(void)
{
	CHECK_EQ(mkdir_mode("/a", 0777), 0);
	CHECK_EQ(mkdir_mode("/a/locked", 0755), 0); /* root's: user may not write */
	CHECK_EQ(mkdir_mode("/q", 0777), 0);
	CHECK_EQ(mkdir_mode("/q/sub", 0777), 0);
	CHECK_EQ(set_ns_quota("/q", 100), 0);
	CHECK_EQ(create("/a/file", "c1"), 0);
	uint64_t a = ino_of("/a"), locked = ino_of("/a/locked"), q = ino_of("/q"),
		 qsub = ino_of("/q/sub"), file = ino_of("/a/file");

	uint64_t f3 = reserve("m3", 8), f4 = reserve("m4", 8);
	CHECK(take("m3", a, &user));
	/* ids: outside the range, another's, reused, below the last used */
	CHECK_EQ(one_op("m3", a, "f", f3 + 8, NULL), ESTALE);
	CHECK_EQ(one_op("m3", a, "f", f4, NULL), ESTALE);
	CHECK_EQ(one_op("m3", a, "f", 0, NULL), ESTALE);
	CHECK_EQ(one_op("m3", a, "f", file, NULL), ESTALE);
	CHECK_EQ(one_op("m3", a, "f", f3 + 2, NULL), 0);
	CHECK_EQ(one_op("m3", a, "g", f3 + 2, NULL), ESTALE);
	CHECK_EQ(one_op("m3", a, "g", f3 + 1, NULL), ESTALE);
	/* no reservation at all */
	CHECK_EQ(one_op("m5", a, "g", f3 + 5, NULL), EAGAIN); /* m3 holds /a */
	/* names and modes */
	CHECK_EQ(one_op("m3", a, "f", f3 + 3, NULL), EEXIST);
	CHECK_EQ(one_op("m3", a, "x/y", f3 + 4, NULL), EINVAL);
	CHECK_EQ(one_op("m3", a, "..", f3 + 5, NULL), EINVAL);
	CHECK_EQ(one_op("m3", a, "", f3 + 6, NULL), EINVAL);
	{
		batch b;
		b_init(&b, "m3");
		b_op(&b, a, "dir", f3 + 7, true, NULL)->mode = S_IFDIR | 0755;
		Caudal__BatchReply *r = b_send(&b);
		CHECK_EQ(r->err, 0);
		CHECK_EQ(r->errs[0], EINVAL);
		CHECK_EQ(r->attrs[0]->ino, 0);
		rfree(r);
	}
	f3 = reserve("m3", 64); /* a new range replaces the old one */
	CHECK_EQ(one_op("m3", a, "h", f3 - 1, NULL), ESTALE);
	{
		batch b;
		b_init(&b, "m3");
		b_op(&b, a, "suid", f3, true, NULL)->mode = S_IFREG | 04755;
		b_op(&b, a, "bits", f3 + 1, true, NULL)->mode = 0644; /* no type */
		b_op(&b, a, "opendata", f3 + 2, false, "x");
		Caudal__BatchReply *r = b_send(&b);
		CHECK_EQ(r->errs[0], 0);
		CHECK_EQ(r->errs[1], EINVAL);
		CHECK_EQ(r->errs[2], EINVAL);
		rfree(r);
	}
	/* permissions: no take, no op for a user who may not write there */
	CHECK(!take("m3", locked, &user));
	CHECK_EQ(one_op("m3", locked, "u", f3 + 3, &user), EACCES);
	CHECK_EQ(one_op("m3", a, "u", f3 + 4, &user), 0); /* /a is 0777 */
	CHECK(take("m3", locked, &root_cred));
	CHECK_EQ(one_op("m3", locked, "u", f3 + 5, &user), EACCES);
	CHECK_EQ(one_op("m3", locked, "r", f3 + 6, NULL), 0);
	{ /* an op without a Cred acts for nobody (a plaintext caller's claim) */
		batch b;
		b_init(&b, "m3");
		b_op(&b, locked, "nocred", f3 + 7, true, NULL)->cred = NULL;
		Caudal__BatchReply *r = b_send(&b);
		CHECK_EQ(r->errs[0], EACCES);
		rfree(r);
	}
	give("m3", locked);
	/* quotas, files, nothing */
	CHECK(!take("m3", q, &root_cred));
	CHECK(!take("m3", qsub, &root_cred));
	CHECK_EQ(one_op("m3", qsub, "z", f3 + 8, NULL), EDQUOT);
	CHECK(!take("m3", file, &root_cred));
	CHECK(!take("m3", 999999, &root_cred));
	CHECK(!take("m3", 0, &root_cred));
	/* inline bytes: past inline_max */
	{
		static char big[70001];
		memset(big, 'b', sizeof(big) - 1);
		batch b;
		b_init(&b, "m3");
		b_op(&b, a, "big", f3 + 8, true, big); /* unused above: EDQUOT kept it */
		b_op(&b, a, "max", f3 + 9, true, big + sizeof(big) - 1 - 65536);
		Caudal__BatchReply *r = b_send(&b);
		CHECK_EQ(r->errs[0], EFBIG);
		CHECK_EQ(r->errs[1], 0);
		CHECK_EQ(r->attrs[1]->size, 65536);
		rfree(r);
	}
	/* bounds of the whole call */
	batch *b = calloc(1, sizeof(*b));
	b_init(b, "m3");
	for (int i = 0; i < 257; i++)
		b_op(b, a, "n", f3 + 10, true, NULL);
	Caudal__BatchReply *r = call("Batch", &b->q);
	CHECK_EQ(r->err, EINVAL);
	rfree(r);
	b_init(b, "m3");
	for (int i = 0; i < 65; i++)
		b->take[b->q.n_take++] = a;
	r = call("Batch", &b->q);
	CHECK_EQ(r->err, EINVAL);
	rfree(r);
	b_init(b, "m3");
	for (int i = 0; i < 65; i++)
		b->give[b->q.n_give++] = a;
	r = call("Batch", &b->q);
	CHECK_EQ(r->err, EINVAL);
	rfree(r);
	b_init(b, "m3");
	b->q.reserve = 5000;
	r = call("Batch", &b->q);
	CHECK_EQ(r->err, EINVAL);
	CHECK_EQ(r->ino_first, 0);
	rfree(r);
	b_init(b, "");
	r = call("Batch", &b->q);
	CHECK_EQ(r->err, EINVAL);
	rfree(r);
	char longname[300];
	memset(longname, 'c', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	b_init(b, longname);
	r = call("Batch", &b->q);
	CHECK_EQ(r->err, EINVAL);
	rfree(r);
	/* more than 16 MiB of inline bytes in one call (in-process: no
	 * message limit in the way) */
	{
		size_t len = (16u << 20) / 256 + 1;
		char *huge = malloc(len + 1);
		memset(huge, 'h', len);
		huge[len] = '\0';
		b_init(b, "m3");
		for (int i = 0; i < 256; i++)
			b_op(b, a, "h", f3 + 10 + (uint64_t)i, true, huge);
		cdl_arena ar;
		cdl_arena_init(&ar);
		Caudal__BatchReply *lr = (void *)nn_ns_call_local(ns, "Batch", &b->q.base, &ar);
		CHECK(lr && lr->err == EINVAL && lr->n_errs == 0);
		cdl_arena_release(&ar);
		free(huge);
	}
	give("m3", a);
	/* at most 64 holds per holder */
	char name[32];
	uint64_t held[64];
	b_init(b, "m6");
	for (int i = 0; i < 64; i++) {
		snprintf(name, sizeof(name), "/a/h%d", i);
		CHECK_EQ(mkdir_mode(name, 0777), 0);
		held[i] = b->take[b->q.n_take++] = ino_of(name);
	}
	r = call("Batch", &b->q);
	CHECK_EQ(r->err, 0);
	CHECK_EQ(r->n_held, 64);
	rfree(r);
	CHECK_EQ(mkdir_mode("/a/h64", 0777), 0);
	CHECK(!take("m6", ino_of("/a/h64"), &root_cred));
	CHECK(take("m7", ino_of("/a/h64"), &root_cred)); /* another holder's own 64 */
	give("m7", ino_of("/a/h64"));
	b_init(b, "m6");
	memcpy(b->give, held, sizeof(held));
	b->q.n_give = 64;
	r = call("Batch", &b->q);
	CHECK_EQ(r->err, 0);
	rfree(r);
	CHECK(take("m6", ino_of("/a/h64"), &root_cred));
	give("m6", ino_of("/a/h64"));
	free(b);
	expect_check_ok();
}

int main(void)
{
	cdl_log_init("test", CDL_LOG_WARN);
	cdl_rpc_global_init();
	CHECK(mkdtemp(dir) != NULL);
	user.uid = 1000;
	user.gid = 1000;
	start(60000, 65536);
	test_honest();
	test_abuse();

	/* a restart forgets holds and keeps reservations */
	CHECK_EQ(mkdir_mode("/r", 0777), 0);
	uint64_t rd = ino_of("/r");
	uint64_t f7 = reserve("m7", 8);
	CHECK(take("m7", rd, &root_cred));
	CHECK_EQ(one_op("m7", rd, "before", f7 + 1, NULL), 0);
	CHECK_EQ(readdir_n(rd, NULL), EAGAIN);
	stop_nn();
	start(60000, 65536);
	size_t n = 0;
	CHECK_EQ(readdir_n(rd, &n), 0);
	CHECK_EQ(n, 1);
	CHECK_EQ(one_op("m7", rd, "again", f7 + 1, NULL), ESTALE); /* used before */
	CHECK_EQ(one_op("m7", rd, "lower", f7, NULL), 0); /* unused: a restart forgets the order */
	CHECK_EQ(one_op("m7", rd, "after", f7 + 2, NULL), 0);
	CHECK_EQ(one_op("m8", rd, "theirs", f7 + 3, NULL), EAGAIN); /* m7 holds /r again */
	give("m7", rd);
	cool_off(); /* a recalled hold just ended: no take for a moment */
	CHECK_EQ(one_op("m8", rd, "theirs", f7 + 3, NULL), ESTALE); /* not m8's */
	give("m8", rd);						    /* the op took it */
	CHECK(ino_of("/r/after") == f7 + 2);
	expect_check_ok();
	/* a checkpoint carries the reservations */
	char ckdir[600], target[64], ckpt[700], cmd[1500];
	snprintf(ckdir, sizeof(ckdir), "%s-ckpts", dir);
	snprintf(target, sizeof(target), "127.0.0.1:%d", cdl_rpc_server_port(srv));
	uint64_t cktxid = 0;
	CHECK_EQ(nn_ckpt_fetch(target, ckdir, 2, 10000, &cktxid), 0);
	stop_nn();
	snprintf(ckpt, sizeof(ckpt), "%s/ckpt-%020llu", ckdir, (unsigned long long)cktxid);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK_EQ(system(cmd), 0);
	CHECK_EQ(nn_ckpt_restore(ckpt, dir), 0);
	start(60000, 65536);
	CHECK_EQ(one_op("m7", rd, "restored", f7 + 3, NULL), 0);
	CHECK_EQ(one_op("m7", rd, "restored2", f7 + 3, NULL), ESTALE);
	give("m7", rd);
	stop_nn();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", ckdir);
	CHECK_EQ(system(cmd), 0);

	/* a short hold lapses by itself; inline off refuses inline bytes (no
	 * WAL sync per operation: the reservations below are many) */
	start_sync(100, 0, false);
	CHECK(take("m7", rd, &root_cred));
	int rc = EAGAIN;
	for (int i = 0; i < 1000 && rc == EAGAIN; i++) {
		rc = readdir_n(rd, NULL);
		if (rc == EAGAIN)
			usleep(10000);
	}
	CHECK_EQ(rc, 0);
	CHECK(!recalled("m7", rd)); /* lapsed: nothing to give back */
	cool_off();		    /* a recalled hold just ended: no take for a moment */
	/* an in-process caller waits for the lapse */
	CHECK(take("m7", rd, &root_cred));
	{
		cdl_arena a;
		cdl_arena_init(&a);
		Caudal__ReaddirRequest q = CAUDAL__READDIR_REQUEST__INIT;
		Caudal__Target t = CAUDAL__TARGET__INIT;
		t.ino = rd;
		q.target = &t;
		Caudal__ReaddirReply *rr = (void *)nn_ns_call_local(ns, "Readdir", &q.base, &a);
		CHECK(rr && rr->err == 0 && rr->n_entries == 4);
		cdl_arena_release(&a);
	}
	cool_off(); /* a recalled hold just ended: no take for a moment */
	batch b;
	b_init(&b, "m7");
	b_op(&b, rd, "inl", f7 + 4, true, "data");
	b_op(&b, rd, "noinl", f7 + 5, true, NULL);
	Caudal__BatchReply *r = b_send(&b);
	CHECK_EQ(r->err, 0);
	CHECK_EQ(r->inline_max, 0);
	CHECK_EQ(r->hold_ms, 100);
	CHECK_EQ(r->errs[0], EINVAL);
	CHECK_EQ(r->errs[1], 0);
	rfree(r);
	give("m7", rd); /* the op took it; a fast loop below would not outlast the hold */
	/* at most 4096 reservations: the oldest goes */
	{
		char client[32];
		uint64_t e0 = 0, e1 = 0;
		for (int i = 0; i <= 4096; i++) {
			cdl_arena ar;
			cdl_arena_init(&ar);
			Caudal__BatchRequest q = CAUDAL__BATCH_REQUEST__INIT;
			snprintf(client, sizeof(client), "e%d", i);
			q.client = client;
			q.reserve = 1;
			Caudal__BatchReply *lr =
			    (void *)nn_ns_call_local(ns, "Batch", &q.base, &ar);
			CHECK(lr && lr->err == 0 && lr->ino_count == 1);
			if (i == 0)
				e0 = lr->ino_first;
			if (i == 1)
				e1 = lr->ino_first;
			cdl_arena_release(&ar);
		}
		CHECK_EQ(ns->nresvs, 4096);
		size_t records = 0;
		nn_iter *it = nn_iter_new(ns->st, "R", 1, "R", 1);
		for (; nn_iter_valid(it); nn_iter_next(it))
			records++;
		nn_iter_free(it);
		CHECK_EQ(records, 4096);
		CHECK_EQ(one_op("e0", rd, "e0", e0, NULL), ESTALE);
		give("e0", rd); /* the op took it */
		CHECK_EQ(one_op("e1", rd, "e1", e1, NULL), 0);
		give("e1", rd);
	}
	/* the range before the newest stays usable (its ids wait in a
	 * mount's queue when it asks for the next one); the one before not */
	{
		CHECK_EQ(mkdir_mode("/p", 0777), 0);
		uint64_t pd = ino_of("/p");
		uint64_t r1 = reserve("m9", 4), r2 = reserve("m9", 4), r3 = reserve("m9", 4);
		CHECK_EQ(one_op("m9", pd, "p3", r3, NULL), 0);
		CHECK_EQ(one_op("m9", pd, "p2", r2, NULL), 0);
		CHECK_EQ(one_op("m9", pd, "p2b", r2 + 1, NULL), 0);
		CHECK_EQ(one_op("m9", pd, "p1", r1, NULL), ESTALE);
		CHECK_EQ(one_op("m9", pd, "p2c", r2, NULL), ESTALE); /* used */
		give("m9", pd);
	}
	/* a recalled hold is not renewed: a holder that ignores the recall and
	 * keeps calling keeps it at most hold_ms (100 here); then nobody takes
	 * it for a moment, so the caller held off gets in */
	{
		uint64_t pd = ino_of("/p");
		CHECK(take("m9", pd, &root_cred));
		CHECK_EQ(readdir_n(pd, NULL), EAGAIN);
		CHECK(recalled("m9", pd));
		int i;
		rc = EAGAIN;
		for (i = 0; i < 100 && rc == EAGAIN; i++) {
			CHECK(!take("m9", pd, &root_cred)); /* renews nothing, takes nothing */
			rc = readdir_n(pd, NULL);
			if (rc == EAGAIN)
				usleep(10000);
		}
		CHECK_EQ(rc, 0);
		CHECK(i < 50);			    /* within about hold_ms, not never */
		CHECK(!take("m9", pd, &root_cred)); /* cooling off */
		cool_off();
		CHECK(take("m9", pd, &root_cred));
		give("m9", pd);
	}
	expect_check_ok();
	stop_nn();

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK_EQ(system(cmd), 0);
	cdl_rpc_global_shutdown();
	return TEST_DONE();
}
