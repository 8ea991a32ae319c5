/* Name and space quotas on a temporary RocksDB, through the real RPC layer:
 * what each operation counts, what it is refused (EDQUOT), renames across
 * quota'd trees, the checker's recount, a restart and a checkpoint restore,
 * and who may set a quota with what values. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "caudal.pb-c.h"
#include "cdl_log.h"
#include "cdl_rpc.h"
#include "nn_check.h"
#include "nn_ckpt.h"
#include "nn_ns.h"
#include "test.h"
#include "nn_harness.h"

#define MB (1ULL << 20)

static cdl_rpc_client *cl, *dl;
static nn_ns *ns;
static cdl_rpc_server *srv;
static char dir[] = "/tmp/caudal-test-quota-XXXXXX";
static const Caudal__Cred root_cred = CAUDAL__CRED__INIT;
static Caudal__Cred user = CAUDAL__CRED__INIT;

static struct nn_harness nnh;

static void start(void)
{
	nn_conf c = nn_harness_conf(dir);
	c.safemode_pct = 0;
	c.inline_max = 65536;
	nn_harness_start(&nnh, &c, 0);
	ns = nnh.ns, srv = nnh.srv, cl = nnh.cl, dl = nnh.dl;
}

static void stop_nn(void)
{
	nn_harness_stop(&nnh);
}

/* Calls method m; a request without a Cred acts as root. */
static void *call(const char *m, const void *req)
{
	return nn_harness_call(cl, m, req, &root_cred, 5000);
}

static void rfree(void *r)
{
	protobuf_c_message_free_unpacked(r, NULL);
}

static void register_dn(const char *id, const char *host)
{
	Caudal__RegisterRequest q = CAUDAL__REGISTER_REQUEST__INIT;
	Caudal__DatanodeInfo n = CAUDAL__DATANODE_INFO__INIT;
	n.id = (char *)id;
	n.host = (char *)host;
	n.data_port = 9866;
	n.capacity = 1ULL << 40;
	n.remaining = 1ULL << 39;
	q.node = &n;
	ProtobufCMessage *r;
	CHECK_EQ(cdl_rpc_call_name(dl, "RegisterDatanode", &q.base, &r, 5000), 0);
	CHECK_EQ(((Caudal__RegisterReply *)r)->err, 0);
	rfree(r);
}

static int mkdir_as(const char *path, const Caudal__Cred *cred)
{
	Caudal__MkdirRequest q = CAUDAL__MKDIR_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = (char *)path;
	q.target = &t;
	q.mode = 0777;
	q.cred = (Caudal__Cred *)cred;
	Caudal__AttrReply *r = call("Mkdir", &q);
	int e = (int)r->err;
	rfree(r);
	return e;
}

static int mk(const char *path)
{
	return mkdir_as(path, NULL);
}

static int create(const char *path, const char *client, uint64_t *ino)
{
	Caudal__CreateRequest q = CAUDAL__CREATE_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = (char *)path;
	q.target = &t;
	q.mode = 0644;
	q.client = (char *)client;
	Caudal__AttrReply *r = call("Create", &q);
	int e = (int)r->err;
	if (!e && ino)
		*ino = r->attr->ino;
	rfree(r);
	return e;
}

static int add_block(uint64_t ino, const char *client, uint64_t prev, uint64_t plen, uint64_t *blk)
{
	Caudal__AddBlockRequest q = CAUDAL__ADD_BLOCK_REQUEST__INIT;
	Caudal__Replica p = CAUDAL__REPLICA__INIT;
	q.ino = ino;
	q.client = (char *)client;
	if (prev) {
		p.id = prev;
		p.gen = 1;
		p.length = plen;
		q.previous = &p;
	}
	Caudal__AddBlockReply *r = call("AddBlock", &q);
	int e = (int)r->err;
	if (!e)
		*blk = r->block->id;
	rfree(r);
	return e;
}

static int complete(uint64_t ino, const char *client, uint64_t blk, uint64_t len, const void *inl,
		    size_t inl_len)
{
	Caudal__CompleteRequest q = CAUDAL__COMPLETE_REQUEST__INIT;
	Caudal__Replica last = CAUDAL__REPLICA__INIT;
	q.ino = ino;
	q.client = (char *)client;
	if (blk) {
		last.id = blk;
		last.gen = 1;
		last.length = len;
		q.last = &last;
	}
	q.inline_data.data = (uint8_t *)inl;
	q.inline_data.len = inl_len;
	Caudal__Status *r = call("Complete", &q);
	int e = (int)r->err;
	rfree(r);
	return e;
}

static int append(const char *path, const char *client)
{
	Caudal__OpenWriteRequest q = CAUDAL__OPEN_WRITE_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = (char *)path;
	q.target = &t;
	q.client = (char *)client;
	Caudal__AttrReply *r = call("Append", &q);
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

static int symlink_(const char *path, const char *to)
{
	Caudal__SymlinkRequest q = CAUDAL__SYMLINK_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = (char *)path;
	q.target = &t;
	q.link = (char *)to;
	Caudal__AttrReply *r = call("Symlink", &q);
	int e = (int)r->err;
	rfree(r);
	return e;
}

static int mknod_(const char *path)
{
	Caudal__MknodRequest q = CAUDAL__MKNOD_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = (char *)path;
	q.target = &t;
	q.mode = S_IFIFO | 0644;
	Caudal__AttrReply *r = call("Mknod", &q);
	int e = (int)r->err;
	rfree(r);
	return e;
}

static int setrep(const char *path, uint32_t n)
{
	Caudal__SetReplicationRequest q = CAUDAL__SET_REPLICATION_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = (char *)path;
	q.target = &t;
	q.replication = n;
	Caudal__Status *r = call("SetReplication", &q);
	int e = (int)r->err;
	rfree(r);
	return e;
}

/* SetQuota: nsq/dsq 0 leave that quota as it is. */
static int set_quota_as(const char *path, int64_t nsq, int64_t dsq, const Caudal__Cred *cred)
{
	Caudal__SetQuotaRequest q = CAUDAL__SET_QUOTA_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = (char *)path;
	q.target = &t;
	q.cred = (Caudal__Cred *)cred;
	q.set_ns = nsq != 0;
	q.ns_quota = nsq;
	q.set_ds = dsq != 0;
	q.ds_quota = dsq;
	Caudal__Status *r = call("SetQuota", &q);
	int e = (int)r->err;
	rfree(r);
	return e;
}

static int set_quota(const char *path, int64_t nsq, int64_t dsq)
{
	return set_quota_as(path, nsq, dsq, NULL);
}

/* The quota and usage of path (nearest: of it or the nearest above). */
static Caudal__QuotaReply *get_quota(const char *path, bool nearest, bool summary)
{
	Caudal__QuotaRequest q = CAUDAL__QUOTA_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = (char *)path;
	q.target = &t;
	q.nearest = nearest;
	q.summary = summary;
	return call("GetQuota", &q);
}

static void expect_usage(const char *path, uint64_t nsu, uint64_t dsu, int line)
{
	Caudal__QuotaReply *r = get_quota(path, false, false);
	if (r->err || r->ns_used != nsu || r->ds_used != dsu) {
		fprintf(stderr,
			"line %d: %s: err %u, usage %llu names %llu bytes, want %llu %llu\n", line,
			path, r->err, (unsigned long long)r->ns_used,
			(unsigned long long)r->ds_used, (unsigned long long)nsu,
			(unsigned long long)dsu);
		CHECK(0);
	}
	rfree(r);
}
#define USAGE(p, n, d) expect_usage(p, n, d, __LINE__)

static void expect_check_ok(void)
{
	nn_check_report rep;
	CHECK_EQ(nn_check_run(ns, 20, &rep), 0);
	CHECK_EQ(rep.violations, 0);
	if (rep.violations)
		fprintf(stderr, "%s", rep.text);
	nn_check_report_release(&rep);
}

/* Name quotas: the directory counts itself; every kind of entry counts;
 * a removal frees its names; a quota below the usage refuses additions. */
static void test_names(void)
{
	CHECK_EQ(mk("/q"), 0);
	CHECK_EQ(mk("/q/pre"), 0);
	CHECK_EQ(set_quota("/q", 4, 0), 0);
	USAGE("/q", 2, 0);
	uint64_t ino;
	CHECK_EQ(create("/q/f", "c1", &ino), 0);
	CHECK_EQ(complete(ino, "c1", 0, 0, NULL, 0), 0);
	CHECK_EQ(mk("/q/d"), 0);
	USAGE("/q", 4, 0);
	CHECK_EQ(mk("/q/d2"), EDQUOT);
	CHECK_EQ(create("/q/f2", "c1", NULL), EDQUOT);
	CHECK_EQ(symlink_("/q/l", "/x"), EDQUOT);
	CHECK_EQ(mknod_("/q/fifo"), EDQUOT);
	CHECK_EQ(mk("/q/d/deeper"), EDQUOT); /* an ancestor's quota holds below */
	USAGE("/q", 4, 0);
	/* renames inside the tree move nothing */
	CHECK_EQ(ren("/q/f", "/q/d/f"), 0);
	USAGE("/q", 4, 0);
	CHECK_EQ(del("/q/d/f", false), 0);
	USAGE("/q", 3, 0);
	CHECK_EQ(symlink_("/q/l", "/x"), 0);
	CHECK_EQ(del("/q/l", false), 0);
	CHECK_EQ(mknod_("/q/fifo"), 0);
	USAGE("/q", 4, 0);
	/* a quota below the usage is accepted and refuses every addition */
	CHECK_EQ(set_quota("/q", 2, 0), 0);
	CHECK_EQ(mk("/q/more"), EDQUOT);
	CHECK_EQ(del("/q/fifo", false), 0);
	USAGE("/q", 3, 0);
	/* cleared: no quota at all, the record goes */
	CHECK_EQ(set_quota("/q", -1, 0), 0);
	Caudal__QuotaReply *r = get_quota("/q", false, false);
	CHECK_EQ(r->ino, 0);
	CHECK_EQ(r->ns_quota, -1);
	rfree(r);
	CHECK_EQ(mk("/q/more"), 0);
	expect_check_ok();
}

/* Space quotas: a block counts its full size times replication from its
 * allocation until it is settled; setrep, append and inline bytes count. */
static void test_space(void)
{
	CHECK_EQ(mk("/s"), 0);
	CHECK_EQ(set_quota("/s", 0, 6 * MB + 1000), 0);
	USAGE("/s", 1, 0);
	uint64_t ino, blk, blk2;
	CHECK_EQ(create("/s/a", "c1", &ino), 0);
	CHECK_EQ(add_block(ino, "c1", 0, 0, &blk), 0);
	USAGE("/s", 2, 3 * MB); /* 1 MiB blocks, 3 replicas */
	CHECK_EQ(add_block(ino, "c1", blk, MB, &blk2), 0);
	USAGE("/s", 2, 6 * MB);
	/* a third block would take 3 MiB more, the second one settled at 1000 */
	uint64_t none;
	CHECK_EQ(add_block(ino, "c1", blk2, 1000, &none), EDQUOT);
	/* the refusal changed nothing: the writer completes what it has */
	CHECK_EQ(complete(ino, "c1", blk2, 1000, NULL, 0), 0);
	USAGE("/s", 2, 3 * (MB + 1000));
	/* setrep is charged: the file's bytes times 4 fit, times 7 do not */
	CHECK_EQ(setrep("/s/a", 7), EDQUOT);
	CHECK_EQ(setrep("/s/a", 4), 0);
	USAGE("/s", 2, 4 * (MB + 1000));
	CHECK_EQ(setrep("/s/a", 1), 0);
	USAGE("/s", 2, MB + 1000);
	/* append reopens the file: its last block counts whole again */
	CHECK_EQ(append("/s/a", "c2"), 0);
	USAGE("/s", 2, 2 * MB);
	CHECK_EQ(complete(ino, "c2", 0, 0, NULL, 0), 0);
	USAGE("/s", 2, MB + 1000);
	/* inline bytes count times the replication */
	char buf[4096];
	memset(buf, 'i', sizeof(buf));
	uint64_t iino;
	CHECK_EQ(create("/s/small", "c1", &iino), 0);
	CHECK_EQ(complete(iino, "c1", 0, 0, buf, sizeof(buf)), 0);
	USAGE("/s", 3, MB + 1000 + 3 * 4096);
	/* a quota'd directory inside another: both count */
	CHECK_EQ(mk("/s/in"), 0);
	CHECK_EQ(set_quota("/s/in", 10, 4 * MB), 0);
	USAGE("/s/in", 1, 0);
	CHECK_EQ(create("/s/in/b", "c1", &ino), 0);
	CHECK_EQ(add_block(ino, "c1", 0, 0, &blk), 0);
	USAGE("/s/in", 2, 3 * MB);
	USAGE("/s", 5, MB + 1000 + 3 * 4096 + 3 * MB);
	/* the outer quota refuses a block the inner one would take */
	CHECK_EQ(set_quota("/s/in", 0, 100 * MB), 0);
	CHECK_EQ(add_block(ino, "c1", blk, MB, &blk2), EDQUOT);
	CHECK_EQ(complete(ino, "c1", blk, 10, NULL, 0), 0);
	USAGE("/s/in", 2, 30);
	/* an inline Complete past the quota is refused whole */
	CHECK_EQ(set_quota("/s/in", 0, 1000), 0);
	CHECK_EQ(create("/s/in/c", "c1", &iino), 0);
	CHECK_EQ(complete(iino, "c1", 0, 0, buf, sizeof(buf)), EDQUOT);
	CHECK_EQ(complete(iino, "c1", 0, 0, buf, 100), 0);
	USAGE("/s/in", 3, 30 + 300);
	expect_check_ok();
}

/* Renames into a quota'd tree are checked against the destination's
 * quotas (HDFS), whole subtrees count, and a move between two quota'd
 * trees moves their usage. */
static void test_rename(void)
{
	CHECK_EQ(mk("/r1"), 0);
	CHECK_EQ(mk("/r2"), 0);
	CHECK_EQ(mk("/r1/t"), 0);
	CHECK_EQ(mk("/r1/t/u"), 0);
	uint64_t ino, blk;
	CHECK_EQ(create("/r1/t/u/f", "c1", &ino), 0);
	CHECK_EQ(add_block(ino, "c1", 0, 0, &blk), 0);
	CHECK_EQ(complete(ino, "c1", blk, 5000, NULL, 0), 0);
	CHECK_EQ(set_quota("/r1", 100, 0), 0);
	CHECK_EQ(set_quota("/r2", 4, 20000), 0);
	USAGE("/r1", 4, 15000);
	USAGE("/r2", 1, 0);
	CHECK_EQ(mk("/r2/x"), 0);
	/* t, u and f are 3 names: 2 + 3 > 4 */
	CHECK_EQ(ren("/r1/t", "/r2/t"), EDQUOT);
	USAGE("/r1", 4, 15000);
	CHECK_EQ(del("/r2/x", false), 0);
	CHECK_EQ(ren("/r1/t", "/r2/t"), 0);
	USAGE("/r1", 1, 0);
	USAGE("/r2", 4, 15000);
	/* space: replication 3 of 5000 bytes, against 20000 */
	CHECK_EQ(create("/r1/g", "c1", &ino), 0);
	CHECK_EQ(add_block(ino, "c1", 0, 0, &blk), 0);
	CHECK_EQ(complete(ino, "c1", blk, 2000, NULL, 0), 0);
	CHECK_EQ(set_quota("/r2", 10, 0), 0);
	CHECK_EQ(ren("/r1/g", "/r2/t/g"), EDQUOT); /* 15000 + 6000 > 20000 */
	CHECK_EQ(set_quota("/r2", 0, 21000), 0);
	CHECK_EQ(ren("/r1/g", "/r2/t/g"), 0);
	USAGE("/r2", 5, 21000);
	/* over an existing file: the replaced one's usage goes */
	CHECK_EQ(ren("/r2/t/g", "/r2/t/u/f"), 0);
	USAGE("/r2", 4, 6000);
	/* a quota'd directory moves with its quota and usage */
	CHECK_EQ(set_quota("/r2/t", 50, 0), 0);
	CHECK_EQ(ren("/r2/t", "/r1/t"), 0);
	USAGE("/r1/t", 3, 6000);
	USAGE("/r1", 4, 6000);
	USAGE("/r2", 1, 0);
	expect_check_ok();
	/* a recursive delete frees the names and drops the quotas under it */
	CHECK_EQ(del("/r1/t", true), 0);
	USAGE("/r1", 1, 0);
	Caudal__QuotaReply *r = get_quota("/r1/t", false, false);
	CHECK_EQ(r->err, ENOENT);
	rfree(r);
	expect_check_ok();
}

/* Root only, sane values only, directories only; reads for anyone who may
 * search the path. */
static void test_admin(void)
{
	CHECK_EQ(mk("/adm"), 0);
	CHECK_EQ(set_quota_as("/adm", 10, 0, &user), EPERM);
	CHECK_EQ(set_quota("/adm", -5, 0), EINVAL);
	CHECK_EQ(set_quota("/adm", 0, -2), EINVAL);
	CHECK_EQ(set_quota("/adm", 0, 0), EINVAL); /* nothing to set */
	CHECK_EQ(set_quota("/adm", INT64_MIN, 0), EINVAL);
	CHECK_EQ(set_quota("/nope", 10, 0), ENOENT);
	uint64_t ino;
	CHECK_EQ(create("/adm/f", "c1", &ino), 0);
	CHECK_EQ(complete(ino, "c1", 0, 0, NULL, 0), 0);
	CHECK_EQ(set_quota("/adm/f", 10, 0), ENOTDIR);
	CHECK_EQ(set_quota("/adm", INT64_MAX, INT64_MAX), 0);
	Caudal__QuotaReply *r = get_quota("/adm", false, true);
	CHECK_EQ(r->err, 0);
	CHECK_EQ(r->ns_quota, INT64_MAX);
	CHECK_EQ(r->ds_quota, INT64_MAX);
	CHECK_EQ(r->dirs, 1);
	CHECK_EQ(r->files, 1);
	rfree(r);
	/* nearest: a file or a directory below answers with the quota above */
	CHECK_EQ(mk("/adm/sub"), 0);
	r = get_quota("/adm/sub", true, false);
	CHECK_EQ(r->ino, ino - 1); /* /adm was made just before its file */
	CHECK_EQ(r->ns_used, 3);
	rfree(r);
	r = get_quota("/adm/f", false, false);
	CHECK_EQ(r->err, ENOTDIR);
	rfree(r);
	/* a user reads it (a mount's df does) */
	Caudal__QuotaRequest q = CAUDAL__QUOTA_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = "/adm/sub";
	q.target = &t;
	q.nearest = true;
	q.cred = &user;
	r = call("GetQuota", &q);
	CHECK_EQ(r->err, 0);
	CHECK_EQ(r->ns_quota, INT64_MAX);
	rfree(r);
}

int main(void)
{
	cdl_log_init("test", CDL_LOG_WARN);
	cdl_rpc_global_init();
	CHECK(mkdtemp(dir) != NULL);
	user.uid = 1000;
	user.gid = 1000;
	start();
	register_dn("dn1", "127.0.0.2");
	register_dn("dn2", "127.0.0.3");
	register_dn("dn3", "127.0.0.4");
	test_names();
	test_space();
	test_rename();
	test_admin();

	/* a checkpoint carries the quotas and their usage */
	char ckdir[600], target[64];
	snprintf(ckdir, sizeof(ckdir), "%s-ckpts", dir);
	snprintf(target, sizeof(target), "127.0.0.1:%d", cdl_rpc_server_port(srv));
	uint64_t cktxid = 0;
	CHECK_EQ(nn_ckpt_fetch(target, ckdir, 2, 10000, &cktxid), 0);
	CHECK_EQ(mk("/s/in/later"), 0);
	USAGE("/s/in", 4, 330);

	/* a restart keeps them, and keeps enforcing them */
	stop_nn();
	start();
	nn_ns_tick(ns); /* out of safe mode (safemode_pct 0) */
	USAGE("/s/in", 4, 330);
	USAGE("/s", 7, MB + 1000 + 3 * 4096 + 330);
	USAGE("/r2", 1, 0);
	expect_check_ok();
	CHECK_EQ(set_quota("/s/in", 4, 0), 0);
	CHECK_EQ(mk("/s/in/full"), EDQUOT);
	stop_nn();

	/* the checkpoint restored: the usage of when it was taken */
	char ckpt[700], cmd[1500];
	snprintf(ckpt, sizeof(ckpt), "%s/ckpt-%020llu", ckdir, (unsigned long long)cktxid);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK_EQ(system(cmd), 0);
	CHECK_EQ(nn_ckpt_restore(ckpt, dir), 0);
	start();
	USAGE("/s/in", 3, 330);
	expect_check_ok();

	/* the checker sees a usage record that is not what the tree holds */
	Caudal__QuotaReply *qr = get_quota("/s/in", false, false);
	Caudal__QuotaRec rec = CAUDAL__QUOTA_REC__INIT;
	rec.ns_quota = qr->ns_quota;
	rec.ds_quota = qr->ds_quota;
	rec.ns_used = qr->ns_used + 1;
	rec.ds_used = qr->ds_used;
	uint8_t key[9] = {'Q'}, val[64];
	for (int i = 0; i < 8; i++)
		key[1 + i] = (uint8_t)(qr->ino >> (56 - 8 * i));
	rfree(qr);
	nn_batch *b = nn_batch_new();
	nn_batch_put(b, key, sizeof(key), val, caudal__quota_rec__pack(&rec, val));
	CHECK_EQ(nn_store_write(ns->st, b), 0);
	nn_batch_free(b);
	nn_check_report crep;
	CHECK_EQ(nn_check_run(ns, 20, &crep), 0);
	CHECK_EQ(crep.violations, 2); /* against the tree, and against the namenode's copy */
	CHECK(crep.text && strstr(crep.text, "records 4 names"));
	nn_check_report_release(&crep);
	stop_nn();

	snprintf(cmd, sizeof(cmd), "rm -rf %s %s", dir, ckdir);
	CHECK_EQ(system(cmd), 0);
	cdl_rpc_global_shutdown();
	return TEST_DONE();
}
