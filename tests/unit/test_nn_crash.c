/* The namenode's failure paths and long walks (issue 8): what a failed
 * commit, a failed WAL sync or a crash between commit and sync may and may
 * not leave behind, and that fsck and a recursive delete of a large tree
 * let other calls through. Each test drives a namespace on a temporary
 * RocksDB through the real RPC layer and makes the metadata store fail on
 * purpose (nn_store_inject), then checks that the block map, the records
 * and the counters still agree and that nothing not yet durable was acted
 * on. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "caudal.pb-c.h"
#include "cdl_log.h"
#include "cdl_rpc.h"
#include "cdl_util.h"
#include "nn_check.h"
#include "nn_ns.h"
#include "test.h"
#include "nn_harness.h"

static cdl_rpc_client *cl, *dl;
static nn_ns *ns;
static cdl_rpc_server *srv;
static char dir[] = "/tmp/caudal-test-nncrash-XXXXXX";

/* Open the namespace in dir: with sync_always, or in batch mode with a
 * flusher so slow (a minute) that only the test's own nn_store_sync
 * makes anything durable. */
static int64_t lease_ms = 60000; /* of the namenodes start() opens */

static struct nn_harness nnh;

static void start(bool sync_always)
{
	nn_conf c = nn_harness_conf(dir);
	c.lease_ms = lease_ms;
	c.sync_always = sync_always;
	c.batch_ms = 60000;
	nn_harness_start(&nnh, &c, 0);
	ns = nnh.ns, srv = nnh.srv, cl = nnh.cl, dl = nnh.dl;
}

static void stop_nn(void)
{
	nn_harness_stop(&nnh);
}

/* A fresh, empty metadata folder for the next start(). */
static void wipe(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir %s", dir, dir);
	CHECK_EQ(system(cmd), 0);
}

static const Caudal__Cred root_cred = CAUDAL__CRED__INIT;

/* Call method m of service (cl or dl); a request without a Cred acts as
 * root, as in test_nn_ns.c. */
static void *call_on(cdl_rpc_client *c, const char *m, const void *req)
{
	return nn_harness_call(c, m, req, &root_cred, 5000);
}

static void *call(const char *m, const void *req)
{
	return call_on(cl, m, req);
}

static void rfree(void *r)
{
	protobuf_c_message_free_unpacked(r, NULL);
}

static int mkdir_as(const char *path, const Caudal__Cred *cred)
{
	Caudal__MkdirRequest q = CAUDAL__MKDIR_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = (char *)path;
	q.target = &t;
	q.mode = 0755;
	q.cred = (Caudal__Cred *)cred;
	Caudal__AttrReply *r = call("Mkdir", &q);
	int e = (int)r->err;
	rfree(r);
	return e;
}

static int create_as(const char *path, const char *client, uint64_t *ino, const Caudal__Cred *cred)
{
	Caudal__CreateRequest q = CAUDAL__CREATE_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = (char *)path;
	q.target = &t;
	q.mode = 0644;
	q.client = (char *)client;
	q.cred = (Caudal__Cred *)cred;
	Caudal__AttrReply *r = call("Create", &q);
	int e = (int)r->err;
	if (!e && ino)
		*ino = r->attr->ino;
	rfree(r);
	return e;
}

static int complete(uint64_t ino, const char *client, uint64_t blk, uint64_t len)
{
	Caudal__CompleteRequest q = CAUDAL__COMPLETE_REQUEST__INIT;
	Caudal__Replica last = CAUDAL__REPLICA__INIT;
	q.ino = ino;
	q.client = (char *)client;
	last.id = blk;
	last.length = len;
	q.last = &last;
	Caudal__AttrReply *r = call("Complete", &q);
	int e = (int)r->err;
	rfree(r);
	return e;
}

/* AddBlock for ino; previous (0: none) with its final length; excluded
 * datanode ids. The new block's id in *blk. */
static int add_block(uint64_t ino, const char *client, uint64_t prev, uint64_t prev_len,
		     char **excluded, size_t nexcluded, uint64_t *blk)
{
	Caudal__AddBlockRequest q = CAUDAL__ADD_BLOCK_REQUEST__INIT;
	Caudal__Replica p = CAUDAL__REPLICA__INIT;
	q.ino = ino;
	q.client = (char *)client;
	if (prev) {
		p.id = prev;
		p.length = prev_len;
		q.previous = &p;
	}
	q.excluded = excluded;
	q.n_excluded = nexcluded;
	Caudal__AddBlockReply *r = call("AddBlock", &q);
	int e = (int)r->err;
	if (!e && blk)
		*blk = r->block->id;
	rfree(r);
	return e;
}

static int stat_path(const char *path, Caudal__Attr *out)
{
	Caudal__GetAttrRequest q = CAUDAL__GET_ATTR_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = (char *)path;
	q.target = &t;
	Caudal__AttrReply *r = call("GetAttr", &q);
	int e = (int)r->err;
	if (!e && out)
		*out = *r->attr;
	rfree(r);
	return e;
}

static int truncate_to(const char *path, uint64_t size)
{
	Caudal__SetAttrRequest q = CAUDAL__SET_ATTR_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = (char *)path;
	q.target = &t;
	q.valid = CAUDAL__SET_ATTR_FIELD__SA_SIZE;
	q.size = size;
	q.client = "";
	Caudal__AttrReply *r = call("SetAttr", &q);
	int e = (int)r->err;
	rfree(r);
	return e;
}

static int del_as(const char *path, bool recursive, const Caudal__Cred *cred)
{
	Caudal__DeleteRequest q = CAUDAL__DELETE_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = (char *)path;
	q.target = &t;
	q.recursive = recursive;
	q.cred = (Caudal__Cred *)cred;
	Caudal__Status *r = call("Delete", &q);
	int e = (int)r->err;
	rfree(r);
	return e;
}

static uint64_t files_counted(void)
{
	Caudal__Empty q = CAUDAL__EMPTY__INIT;
	Caudal__StatfsReply *r = call("Statfs", &q);
	uint64_t n = r->files;
	rfree(r);
	return n;
}

static uint64_t fsck_missing(void)
{
	Caudal__FsckRequest q = CAUDAL__FSCK_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = "/";
	q.target = &t;
	q.max_problems = 10;
	Caudal__FsckReply *r = call("Fsck", &q);
	CHECK_EQ(r->err, 0);
	uint64_t n = r->missing;
	rfree(r);
	return n;
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
	Caudal__RegisterReply *r = call_on(dl, "RegisterDatanode", &q);
	CHECK_EQ(r->err, 0);
	rfree(r);
}

static void register_dns(void)
{
	register_dn("dn1", "127.0.0.2");
	register_dn("dn2", "127.0.0.3");
	register_dn("dn3", "127.0.0.4");
}

/* Heartbeat of datanode id: how many deletions of block blk (0: of any
 * block) its reply asks for. Takes the queued commands. */
static int deletes_for(const char *id, uint64_t blk)
{
	Caudal__HeartbeatRequest q = CAUDAL__HEARTBEAT_REQUEST__INIT;
	Caudal__DatanodeInfo n = CAUDAL__DATANODE_INFO__INIT;
	n.id = (char *)id;
	n.capacity = 1ULL << 40;
	n.remaining = 1ULL << 39;
	q.node = &n;
	Caudal__HeartbeatReply *r = call_on(dl, "Heartbeat", &q);
	int dels = 0;
	for (size_t i = 0; i < r->n_commands; i++) {
		const Caudal__Command *c = r->commands[i];
		if (c->type != CAUDAL__COMMAND_TYPE__CMD_DELETE)
			continue;
		for (size_t j = 0; j < c->n_blocks; j++)
			dels += !blk || c->blocks[j]->id == blk;
	}
	rfree(r);
	return dels;
}

static int deletes_anywhere(uint64_t blk)
{
	return deletes_for("dn1", blk) + deletes_for("dn2", blk) + deletes_for("dn3", blk);
}

static void block_report(const char *id, uint64_t blk, uint64_t gen, uint64_t len)
{
	Caudal__BlockReportRequest q = CAUDAL__BLOCK_REPORT_REQUEST__INIT;
	Caudal__Replica rep = CAUDAL__REPLICA__INIT, *reps[1] = {&rep};
	rep.id = blk;
	rep.gen = gen;
	rep.length = len;
	q.id = (char *)id;
	q.replicas = reps;
	q.n_replicas = 1;
	Caudal__Status *r = call_on(dl, "BlockReport", &q);
	CHECK_EQ(r->err, 0);
	rfree(r);
}

/* Is block id in the namenode's block map? */
static bool in_map(uint64_t id)
{
	pthread_mutex_lock(&ns->lock);
	bool in = nn_blk_get(ns->bl, id) != NULL;
	pthread_mutex_unlock(&ns->lock);
	return in;
}

/* Defect A: an AddBlock that abandons the file's empty last block and then
 * finds no datanode for a new one changes nothing: the block stays in the
 * record and in the block map, a retry gets it again, and the file closes
 * with the blocks it really has, reported whole after a restart. */
static void test_abandon_without_targets(void)
{
	wipe();
	start(true);
	register_dns();
	uint64_t ino, blk, again;
	CHECK_EQ(create_as("/a", "c1", &ino, NULL), 0);
	CHECK_EQ(add_block(ino, "c1", 0, 0, NULL, 0, &blk), 0);
	/* the writer could reach none of its pipeline: nowhere to go */
	char *all[3] = {"dn1", "dn2", "dn3"};
	CHECK_EQ(add_block(ino, "c1", 0, 0, all, 3, NULL), ENOSPC);
	CHECK(in_map(blk));
	CHECK_EQ(deletes_anywhere(0), 0);
	/* the writer tries again once the nodes are back */
	CHECK_EQ(add_block(ino, "c1", 0, 0, NULL, 0, &again), 0);
	CHECK_EQ(again, blk);
	CHECK_EQ(complete(ino, "c1", again, 100), 0);
	Caudal__Attr at;
	CHECK_EQ(stat_path("/a", &at), 0);
	CHECK_EQ(at.blocks, 1);
	CHECK_EQ(at.size, 100);
	block_report("dn1", again, 1, 100);
	CHECK_EQ(fsck_missing(), 0);
	stop_nn();

	/* every block the records list gets reported: safe mode ends */
	start(true);
	CHECK(ns->safemode);
	register_dns();
	block_report("dn1", again, 1, 100);
	nn_ns_tick(ns);
	CHECK(!ns->safemode);
	CHECK_EQ(fsck_missing(), 0);
	stop_nn();
}

/* UpdatePipeline with prepare or gen (0 for neither, an older client):
 * the reply's err, its stamp in *gen. */
static int update_pipeline(uint64_t ino, const char *client, uint64_t blk, char **nodes, size_t n,
			   bool prepare, uint64_t *gen)
{
	Caudal__UpdatePipelineRequest q = CAUDAL__UPDATE_PIPELINE_REQUEST__INIT;
	q.ino = ino;
	q.client = (char *)client;
	q.block = blk;
	q.nodes = nodes;
	q.n_nodes = n;
	q.prepare = prepare;
	q.gen = prepare ? 0 : *gen;
	Caudal__UpdatePipelineReply *r = call("UpdatePipeline", &q);
	int e = (int)r->err;
	if (!e) {
		CHECK(r->token.len > 0);
		*gen = r->gen;
	}
	rfree(r);
	return e;
}

/* The block's stamp and locations in the block map (ids into ids[]). */
static uint64_t blk_state(uint64_t id, char ids[][16], size_t *n)
{
	pthread_mutex_lock(&ns->lock);
	nn_blk *k = nn_blk_get(ns->bl, id);
	CHECK(k != NULL);
	*n = k->nloc;
	for (uint16_t i = 0; i < k->nloc; i++)
		snprintf(ids[i], 16, "%s", ns->bl->dns[k->locs[i]]->id);
	uint64_t gen = k->gen;
	pthread_mutex_unlock(&ns->lock);
	return gen;
}

/* Issue 8: pipeline recoveries that no survivor accepted leave the record
 * alone. A prepare hands out a new stamp (never the same twice) and a
 * token but the block keeps its stamp and locations, so the replicas at
 * the old stamp are still good when their datanodes report them; only a
 * commit of a handed-out stamp moves the block to it and to the survivors. */
static void test_pipeline_prepare_then_commit(void)
{
	wipe();
	start(true);
	register_dns();
	uint64_t ino, blk;
	CHECK_EQ(create_as("/p", "c1", &ino, NULL), 0);
	CHECK_EQ(add_block(ino, "c1", 0, 0, NULL, 0, &blk), 0);
	char ids[3][16];
	size_t n;
	CHECK_EQ(blk_state(blk, ids, &n), 1);
	CHECK(n >= 2);
	char *surv[3] = {ids[1], ids[2], NULL};

	/* two recoveries towards nodes that all die: the record stays */
	uint64_t g1 = 0, g2 = 0;
	CHECK_EQ(update_pipeline(ino, "c1", blk, surv, n - 1, true, &g1), 0);
	CHECK(g1 > 1);
	CHECK_EQ(update_pipeline(ino, "c1", blk, surv, n - 1, true, &g2), 0);
	CHECK(g2 > g1);
	char now[3][16];
	size_t m;
	CHECK_EQ(blk_state(blk, now, &m), 1);
	CHECK_EQ(m, n);
	/* the nodes come back with the replica at the old stamp: kept */
	block_report(ids[0], blk, 1, 65536);
	CHECK_EQ(deletes_anywhere(blk), 0);

	/* a commit must carry a stamp newer than the record */
	uint64_t bad = 1;
	CHECK_EQ(update_pipeline(ino, "c1", blk, surv, n - 1, false, &bad), EINVAL);
	/* and one the namenode handed out, not one far above every replica
	 * (which would make the good ones look stale) */
	bad = 1ull << 62;
	CHECK_EQ(update_pipeline(ino, "c1", blk, surv, n - 1, false, &bad), EINVAL);
	CHECK_EQ(blk_state(blk, now, &m), 1);
	/* the survivors accepted g2: committed with them as the locations */
	uint64_t g = g2;
	CHECK_EQ(update_pipeline(ino, "c1", blk, surv, n - 1, false, &g), 0);
	CHECK_EQ(g, g2);
	CHECK_EQ(blk_state(blk, now, &m), g2);
	CHECK_EQ(m, n - 1);
	/* an older client: bump and commit at once, above every stamp handed out */
	uint64_t g3 = 0;
	CHECK_EQ(update_pipeline(ino, "c1", blk, surv, 1, false, &g3), 0);
	CHECK(g3 > g2);
	CHECK_EQ(blk_state(blk, now, &m), g3);
	CHECK_EQ(m, 1);
	stop_nn();
}

/* How many replacements the last prepare_add got. */
static size_t last_nadded;

/* UpdatePipeline's prepare asking for `add` replacements; *added gets the
 * id of the first one handed out ("" none), *ncopy the copy token's size. */
static int prepare_add(uint64_t ino, uint64_t blk, char **nodes, size_t n, uint32_t add,
		       char **exclude, size_t nexclude, uint64_t *gen, char added[16],
		       size_t *ncopy)
{
	Caudal__UpdatePipelineRequest q = CAUDAL__UPDATE_PIPELINE_REQUEST__INIT;
	q.ino = ino;
	q.client = "c1";
	q.block = blk;
	q.nodes = nodes;
	q.n_nodes = n;
	q.prepare = true;
	q.add = add;
	q.exclude = exclude;
	q.n_exclude = nexclude;
	Caudal__UpdatePipelineReply *r = call("UpdatePipeline", &q);
	int e = (int)r->err;
	added[0] = 0;
	*ncopy = 0;
	if (!e) {
		*gen = r->gen;
		CHECK(r->n_added <= add);
		last_nadded = r->n_added;
		if (r->n_added)
			snprintf(added, 16, "%s", r->added[0]->id);
		*ncopy = r->copy_token.len;
	}
	rfree(r);
	return e;
}

/* Replacement datanodes (HDFS ReplaceDatanodeOnFailure): a prepare may ask
 * for nodes to add to a pipeline that lost one; the namenode picks live
 * ones outside the pipeline and the block's locations (and the writer's
 * excluded), with a copy token for the transfer. A commit takes as
 * locations only the block's and those handed out for it: a writer cannot
 * get replicas placed on a datanode of its choosing. */
static void test_pipeline_replace(void)
{
	wipe();
	start(true);
	register_dns();
	register_dn("dn4", "127.0.0.5");
	uint64_t ino, blk;
	CHECK_EQ(create_as("/r", "c1", &ino, NULL), 0);
	CHECK_EQ(add_block(ino, "c1", 0, 0, NULL, 0, &blk), 0);
	char ids[4][16];
	size_t n;
	CHECK_EQ(blk_state(blk, ids, &n), 1);
	CHECK_EQ(n, 3);
	/* the datanode not in the pipeline */
	const char *spare = NULL;
	static const char *all[4] = {"dn1", "dn2", "dn3", "dn4"};
	for (int i = 0; i < 4; i++) {
		bool in = false;
		for (size_t j = 0; j < n; j++)
			in |= !strcmp(ids[j], all[i]);
		if (!in)
			spare = all[i];
	}
	CHECK(spare != NULL);
	char *surv[4] = {ids[1], ids[2], NULL, NULL};

	/* bounds: too many wanted, or `add` on a commit */
	uint64_t g = 0;
	char added[16];
	size_t ncopy;
	CHECK_EQ(prepare_add(ino, blk, surv, 2, 31, NULL, 0, &g, added, &ncopy), EINVAL);
	/* the spare excluded by the writer: nothing to add (the dropped node
	 * is still a location and is not handed out either), not an error */
	char *ex[1] = {(char *)spare};
	CHECK_EQ(prepare_add(ino, blk, surv, 2, 1, ex, 1, &g, added, &ncopy), 0);
	CHECK_EQ(added[0], 0);
	CHECK_EQ(ncopy, 0);
	/* the spare is handed out, with a copy token */
	uint64_t g1 = 0;
	CHECK_EQ(prepare_add(ino, blk, surv, 2, 1, NULL, 0, &g1, added, &ncopy), 0);
	CHECK(g1 > g);
	CHECK(!strcmp(added, spare));
	CHECK(ncopy > 0);

	/* abuse: a live datanode never handed out for this block is refused,
	 * in a prepare and in a commit */
	uint64_t gx0 = 0;
	/* two spares now, but no more than the replication (3) lacks */
	register_dn("dn6", "127.0.0.7");
	char more[16];
	CHECK_EQ(prepare_add(ino, blk, surv, 2, 5, NULL, 0, &gx0, more, &ncopy), 0);
	CHECK_EQ(last_nadded, 1);
	register_dn("dn5", "127.0.0.6");
	char *rogue[3] = {ids[1], ids[2], "dn5"};
	uint64_t gx = 0;
	CHECK_EQ(update_pipeline(ino, "c1", blk, rogue, 3, true, &gx), EINVAL);
	gx = g1;
	CHECK_EQ(update_pipeline(ino, "c1", blk, rogue, 3, false, &gx), EINVAL);
	char now[4][16];
	size_t m;
	CHECK_EQ(blk_state(blk, now, &m), 1);
	CHECK_EQ(m, 3);
	/* a second block's replacement does not count for this one */
	{
		Caudal__UpdatePipelineRequest q = CAUDAL__UPDATE_PIPELINE_REQUEST__INIT;
		q.ino = ino;
		q.client = "c1";
		q.block = blk;
		q.nodes = surv;
		q.n_nodes = 2;
		q.add = 1;
		q.gen = g1;
		Caudal__UpdatePipelineReply *r = call("UpdatePipeline", &q);
		CHECK_EQ(r->err, EINVAL); /* add only with prepare */
		rfree(r);
	}

	/* the survivors and the replacement took g1: committed, 3 locations */
	surv[2] = added;
	uint64_t gc = g1;
	CHECK_EQ(update_pipeline(ino, "c1", blk, surv, 3, false, &gc), 0);
	CHECK_EQ(blk_state(blk, now, &m), g1);
	CHECK_EQ(m, 3);
	bool has_spare = false;
	for (size_t j = 0; j < m; j++)
		has_spare |= !strcmp(now[j], spare);
	CHECK(has_spare);
	/* a replacement is never a node of the pipeline or a location */
	CHECK_EQ(prepare_add(ino, blk, surv, 2, 1, NULL, 0, &g, added, &ncopy), 0);
	CHECK_EQ(last_nadded, 1);
	CHECK(strcmp(added, ids[1]) && strcmp(added, ids[2]) && strcmp(added, spare));
	stop_nn();
}

/* Issue 8's last window: the survivors of a recovery took the prepared
 * stamp and all died before the commit. Their replicas come back newer
 * than the record: a block report keeps them (a stamp handed out for the
 * block, or close above the record, not a forged one), and lease recovery
 * takes them over under a new stamp, so they stay good after it while the
 * dropped node's old-stamp copy is stale. */
static uint64_t expire_and_recover(uint64_t blk, char ids[][16], size_t n, uint64_t old);
static void received(const char *id, uint64_t blk, uint64_t gen, uint64_t len, bool deleted);

static void test_pipeline_uncommitted_stamp(void)
{
	wipe();
	start(true);
	register_dns();
	uint64_t ino, blk;
	CHECK_EQ(create_as("/u", "c1", &ino, NULL), 0);
	CHECK_EQ(add_block(ino, "c1", 0, 0, NULL, 0, &blk), 0);
	char ids[3][16];
	size_t n;
	CHECK_EQ(blk_state(blk, ids, &n), 1);
	CHECK_EQ(n, 3);
	char *surv[2] = {ids[1], ids[2]};
	/* an hsync recorded 65536 bytes */
	{
		Caudal__CompleteRequest q = CAUDAL__COMPLETE_REQUEST__INIT;
		Caudal__Replica last = CAUDAL__REPLICA__INIT;
		q.ino = ino;
		q.client = "c1";
		q.keep_lease = true;
		last.id = blk;
		last.gen = 1;
		last.length = 65536;
		q.last = &last;
		Caudal__AttrReply *r = call("Complete", &q);
		CHECK_EQ(r->err, 0);
		rfree(r);
	}
	uint64_t g1 = 0;
	CHECK_EQ(update_pipeline(ino, "c1", blk, surv, 2, true, &g1), 0);
	/* the survivors finalized their hsynced bytes at g1 and restarted */
	block_report(ids[1], blk, g1, 65536);
	block_report(ids[2], blk, g1, 65536);
	CHECK_EQ(deletes_anywhere(blk), 0);
	/* a stamp at the top of the range is forged: stale */
	block_report(ids[0], blk, UINT64_MAX - 1, 65536);
	CHECK_EQ(deletes_for(ids[0], blk), 1);
	block_report(ids[0], blk, 1, 65536);

	/* the writer is gone: lease recovery has every holder move its
	 * replica to a new stamp; the survivors' g1 replicas are taken over
	 * (the dropped node has nothing at that length) and the file closes
	 * at the new stamp with them */
	pthread_mutex_lock(&ns->lock);
	ns->conf.lease_ms = 0;
	pthread_mutex_unlock(&ns->lock);
	usleep(2000);
	uint64_t g2 = expire_and_recover(blk, ids, 3, 1);
	CHECK(g2 > g1);
	received(ids[1], blk, g2, 65536, false);
	received(ids[2], blk, g2, 65536, false);
	received(ids[0], blk, g2, 0, true);
	nn_ns_tick(ns);
	Caudal__Attr at;
	CHECK_EQ(stat_path("/u", &at), 0);
	CHECK(!at.under_construction);
	CHECK_EQ(at.size, 65536);
	char now[3][16];
	size_t m;
	CHECK_EQ(blk_state(blk, now, &m), g2);
	/* the next full reports: the g2 replicas are good, the old one stale */
	block_report(ids[1], blk, g2, 65536);
	block_report(ids[2], blk, g2, 65536);
	block_report(ids[0], blk, 1, 65536);
	CHECK_EQ(deletes_for(ids[1], blk), 0);
	CHECK_EQ(deletes_for(ids[2], blk), 0);
	CHECK_EQ(deletes_for(ids[0], blk), 1);
	CHECK_EQ(blk_state(blk, now, &m), g2);
	CHECK_EQ(m, 2);
	CHECK_EQ(fsck_missing(), 0);
	stop_nn();

	/* after a restart the record has g2: the replicas are still good */
	start(true);
	register_dns();
	block_report(ids[1], blk, g2, 65536);
	CHECK_EQ(deletes_for(ids[1], blk), 0);
	stop_nn();
}

/* Defect B: a truncate frees the blocks past the new end through the same
 * path as a delete: nothing if its commit fails, and only once it is
 * durable (here in batch mode, where the flusher has not synced yet). */
static void test_truncate_frees_after_sync(void)
{
	wipe();
	start(true);
	register_dns();
	uint64_t ino, b1, b2;
	CHECK_EQ(create_as("/t", "c1", &ino, NULL), 0);
	CHECK_EQ(add_block(ino, "c1", 0, 0, NULL, 0, &b1), 0);
	CHECK_EQ(add_block(ino, "c1", b1, 1 << 20, NULL, 0, &b2), 0);
	CHECK_EQ(complete(ino, "c1", b2, 1000), 0);
	CHECK_EQ(deletes_anywhere(0), 0);

	/* the commit fails: no block leaves the map, no replica is deleted */
	nn_store_inject(ns->st, NN_STORE_WRITE, -EIO, 1);
	CHECK_EQ(truncate_to("/t", 10), EIO);
	CHECK(in_map(b1) && in_map(b2));
	CHECK_EQ(deletes_anywhere(0), 0);
	Caudal__Attr at;
	CHECK_EQ(stat_path("/t", &at), 0);
	CHECK_EQ(at.size, (1 << 20) + 1000);
	CHECK_EQ(at.blocks, 2);
	stop_nn();

	/* batch mode: acknowledged, but not durable until the WAL sync */
	start(false);
	register_dns();
	block_report("dn1", b1, 1, 1 << 20);
	block_report("dn2", b2, 1, 1000);
	nn_ns_tick(ns);
	CHECK(!ns->safemode);
	CHECK_EQ(truncate_to("/t", 10), 0);
	CHECK_EQ(stat_path("/t", &at), 0);
	CHECK_EQ(at.size, 10);
	CHECK(in_map(b2));
	CHECK_EQ(deletes_anywhere(b2), 0);
	nn_store_sync(ns->st);
	CHECK(!in_map(b2));
	CHECK(in_map(b1));
	stop_nn();
}

/* Defect C: the inode count moves only with a committed operation: not
 * for a create whose commit fails, nor for a recursive delete that stops
 * half-way at a directory the caller may not empty. */
static void test_inode_count(void)
{
	wipe();
	start(true);
	Caudal__Cred user = CAUDAL__CRED__INIT;
	user.uid = 1000;
	user.gid = 1000;
	uint64_t n0 = files_counted();
	nn_store_inject(ns->st, NN_STORE_WRITE, -EIO, 1);
	CHECK_EQ(create_as("/lost", "c1", NULL, NULL), EIO);
	CHECK_EQ(stat_path("/lost", NULL), ENOENT);
	nn_store_inject(ns->st, NN_STORE_WRITE, -EIO, 1);
	CHECK_EQ(mkdir_as("/lostdir", NULL), EIO);
	CHECK_EQ(files_counted(), n0);

	/* /pub (0777) holds the user's /pub/d with the user's file f and
	 * root's directory x (0755, not empty): `rm -r /pub/d` removes f
	 * first, then may not empty x and fails as a whole */
	CHECK_EQ(mkdir_as("/pub", NULL), 0);
	{
		Caudal__SetAttrRequest q = CAUDAL__SET_ATTR_REQUEST__INIT;
		Caudal__Target t = CAUDAL__TARGET__INIT;
		t.path = "/pub";
		q.target = &t;
		q.valid = CAUDAL__SET_ATTR_FIELD__SA_MODE;
		q.mode = 0777;
		Caudal__AttrReply *r = call("SetAttr", &q);
		CHECK_EQ(r->err, 0);
		rfree(r);
	}
	CHECK_EQ(mkdir_as("/pub/d", &user), 0);
	uint64_t fino;
	CHECK_EQ(create_as("/pub/d/f", "c1", &fino, &user), 0);
	CHECK_EQ(complete(fino, "c1", 0, 0), 0);
	CHECK_EQ(mkdir_as("/pub/d/x", NULL), 0);
	CHECK_EQ(mkdir_as("/pub/d/x/y", NULL), 0);
	uint64_t n1 = files_counted();
	CHECK_EQ(n1, n0 + 5);
	CHECK_EQ(del_as("/pub/d", true, &user), EACCES);
	CHECK_EQ(stat_path("/pub/d/f", NULL), 0);
	CHECK_EQ(files_counted(), n1);

	/* a recursive delete whose commit fails */
	nn_store_inject(ns->st, NN_STORE_WRITE, -EIO, 1);
	CHECK_EQ(del_as("/pub/d", true, NULL), EIO);
	CHECK_EQ(files_counted(), n1);
	/* the stored count is the true one after a restart */
	CHECK_EQ(mkdir_as("/pub/e", NULL), 0);
	stop_nn();
	start(true);
	CHECK_EQ(files_counted(), n1 + 1);
	CHECK_EQ(del_as("/pub", true, NULL), 0);
	CHECK_EQ(files_counted(), n0);
	stop_nn();
}

/* Defect E: a failed WAL sync stops the namenode in both sync modes, so
 * that nothing more is acknowledged. Run in a child process, which must
 * exit with status 1 within a few seconds. */
static void sync_fails_in_child(bool sync_always)
{
	pid_t pid = fork();
	if (pid == 0) {
		cdl_log_init("child", CDL_LOG_ERROR);
		wipe();
		nn_store *s;
		if (nn_store_open(dir, sync_always, 5, 0, &s) < 0)
			_exit(3);
		nn_store_inject(s, NN_STORE_SYNC, -EIO, 1);
		nn_batch *b = nn_batch_new();
		nn_batch_put(b, "k", 1, "v", 1);
		if (nn_store_write(s, b) < 0)
			_exit(3);
		nn_batch_free(b);
		if (sync_always)
			nn_store_sync(s);
		else
			sleep(3); /* some 600 flusher rounds */
		/* still here: it went on after the failure */
		_exit(0);
	}
	int st = 0;
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
	CHECK(WIFEXITED(st));
	CHECK_EQ(WEXITSTATUS(st), 1);
}

static void test_sync_failure_stops(void)
{
	sync_fails_in_child(true);
	sync_fails_in_child(false);
}

/* Events from txid from on (waiting up to wait_ms): how many name path. */
static int events_of(uint64_t from, uint32_t wait_ms, const char *path, uint64_t *last)
{
	Caudal__EventsRequest q = CAUDAL__EVENTS_REQUEST__INIT;
	q.from_txid = from;
	q.wait_ms = wait_ms;
	Caudal__EventsReply *r = call("GetEvents", &q);
	int n = 0;
	for (size_t i = 0; i < r->n_events; i++) {
		n += !strcmp(r->events[i]->path, path);
		CHECK(r->events[i]->txid <= r->last_txid);
	}
	if (last)
		*last = r->last_txid;
	rfree(r);
	return n;
}

/* GetEvents hands out only events of durable transactions: the
 * jobtracker acts on them, and a power failure must not undo what it
 * acted on. In batch mode (a flusher that has not run yet) a new event
 * waits for the WAL sync. */
static void test_events_after_sync(void)
{
	wipe();
	start(false);
	uint64_t last;
	CHECK_EQ(mkdir_as("/seen", NULL), 0);
	nn_store_sync(ns->st);
	CHECK_EQ(events_of(1, 0, "/seen", &last), 1);
	CHECK_EQ(mkdir_as("/pending", NULL), 0);
	CHECK_EQ(events_of(1, 0, "/pending", NULL), 0);
	/* a long poll for it waits, and ends empty, while it is not durable */
	uint64_t t0 = (uint64_t)cdl_now_ms(), now_last;
	CHECK_EQ(events_of(last + 1, 300, "/pending", &now_last), 0);
	CHECK((uint64_t)cdl_now_ms() - t0 >= 250);
	CHECK_EQ(now_last, last);
	nn_store_sync(ns->st);
	CHECK_EQ(events_of(last + 1, 0, "/pending", &now_last), 1);
	CHECK_EQ(now_last, last + 1);
	stop_nn();
}

/* Fsck of target path as cred: its reply (caller frees). */
static Caudal__FsckReply *fsck_as(cdl_rpc_client *c, const char *path, const Caudal__Cred *cred)
{
	Caudal__FsckRequest q = CAUDAL__FSCK_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = (char *)path;
	q.target = &t;
	q.max_problems = 100;
	q.cred = (Caudal__Cred *)cred;
	Caudal__FsckReply *r = call_on(c, "Fsck", &q);
	CHECK_EQ(r->err, 0);
	return r;
}

struct fsck_run {
	cdl_rpc_client *c;
	int64_t t0, t1;
	uint64_t dirs;
};

static void *fsck_thread(void *arg)
{
	struct fsck_run *fr = arg;
	fr->t0 = cdl_now_ms();
	Caudal__FsckReply *r = fsck_as(fr->c, "/", NULL);
	fr->t1 = cdl_now_ms();
	fr->dirs = r->dirs;
	rfree(r);
	return NULL;
}

/* Defect D, fsck: it walks in bounded steps and lets go of the namespace
 * lock between them, so a GetAttr made while it walks a large tree is
 * answered at once, not after the walk; and it does not look into a
 * directory the caller may not list and search. */
static void test_fsck_steps(void)
{
	wipe();
	start(false);
	/* /vault (0700 root) holds a file nobody may see */
	CHECK_EQ(mkdir_as("/vault", NULL), 0);
	uint64_t ino;
	CHECK_EQ(create_as("/vault/secret", "c1", &ino, NULL), 0);
	CHECK_EQ(complete(ino, "c1", 0, 0), 0);
	{
		Caudal__SetAttrRequest q = CAUDAL__SET_ATTR_REQUEST__INIT;
		Caudal__Target t = CAUDAL__TARGET__INIT;
		t.path = "/vault";
		q.target = &t;
		q.valid = CAUDAL__SET_ATTR_FIELD__SA_MODE;
		q.mode = 0700;
		Caudal__AttrReply *r = call("SetAttr", &q);
		CHECK_EQ(r->err, 0);
		rfree(r);
	}
	Caudal__Cred nobody = CAUDAL__CRED__INIT;
	nobody.uid = 65534;
	nobody.gid = 65534;
	Caudal__FsckReply *r = fsck_as(cl, "/", &nobody);
	CHECK_EQ(r->files, 0);
	CHECK_EQ(r->dirs, 2);
	CHECK_EQ(r->n_problems, 1);
	if (r->n_problems)
		CHECK(!strcmp(r->problems[0], "/vault: not checked: permission denied"));
	rfree(r);
	r = fsck_as(cl, "/", NULL);
	CHECK_EQ(r->files, 1);
	CHECK_EQ(r->n_problems, 0);
	rfree(r);

	/* a tree of some twenty steps of entries */
	enum { WIDE = 200, DEEP = 100 };
	char p[64];
	for (int i = 0; i < WIDE; i++) {
		snprintf(p, sizeof(p), "/big/d%03d", i);
		CHECK_EQ(mkdir_as(i ? p : "/big", NULL), 0);
		if (!i)
			CHECK_EQ(mkdir_as(p, NULL), 0);
		for (int j = 0; j < DEEP; j++) {
			snprintf(p, sizeof(p), "/big/d%03d/e%02d", i, j);
			CHECK_EQ(mkdir_as(p, NULL), 0);
		}
	}
	char target[64];
	snprintf(target, sizeof(target), "127.0.0.1:%d", cdl_rpc_server_port(srv));
	struct fsck_run fr = {cdl_rpc_client_new(target, &caudal__client_protocol__descriptor), 0,
			      0, 0};
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, fsck_thread, &fr), 0);
	/* GetAttrs while the walk runs: the slowest of them */
	int64_t worst = 0;
	int during = 0;
	usleep(2000);
	while (!fr.t1) {
		int64_t t0 = cdl_now_ms();
		CHECK_EQ(stat_path("/big", NULL), 0);
		int64_t t = cdl_now_ms() - t0;
		worst = t > worst ? t : worst;
		during++;
	}
	pthread_join(th, NULL);
	cdl_rpc_client_free(fr.c);
	CHECK_EQ(fr.dirs, 2 + 1 + WIDE + WIDE * DEEP);
	int64_t walk = fr.t1 - fr.t0;
	fprintf(stderr,
		"fsck of %d directories: %lld ms; %d GetAttrs meanwhile, the slowest %lld ms\n",
		WIDE * DEEP, (long long)walk, during, (long long)worst);
	CHECK(walk >= 40); /* long enough to tell */
	CHECK(worst * 4 < walk);
	stop_nn();
}

struct tick_run {
	int64_t t0, t1;
};

/* The monitor thread's work: one nn_ns_tick, which removes the rest of a
 * large deleted tree. */
static void *tick_thread(void *arg)
{
	struct tick_run *tr = arg;
	tr->t0 = cdl_now_ms();
	nn_ns_tick(ns);
	tr->t1 = cdl_now_ms();
	return NULL;
}

/* Make /NAME/dIII/eJJ: wide * deep directories (and every tenth a file). */
static void make_tree(const char *name, int wide, int deep)
{
	char p[64];
	snprintf(p, sizeof(p), "/%s", name);
	CHECK_EQ(mkdir_as(p, NULL), 0);
	for (int i = 0; i < wide; i++) {
		snprintf(p, sizeof(p), "/%s/d%03d", name, i);
		CHECK_EQ(mkdir_as(p, NULL), 0);
		for (int j = 0; j < deep; j++) {
			snprintf(p, sizeof(p), "/%s/d%03d/e%02d", name, i, j);
			if (j % 10)
				CHECK_EQ(mkdir_as(p, NULL), 0);
			else
				CHECK_EQ(create_as(p, "c1", NULL, NULL), 0);
		}
	}
}

/* nn_check finds no violation (nn_check.h). */
static void invariants_hold(void)
{
	nn_check_report cr;
	CHECK_EQ(nn_check_run(ns, 5, &cr), 0);
	CHECK_EQ(cr.violations, 0);
	if (cr.violations)
		fprintf(stderr, "%s\n", cr.text);
	nn_check_report_release(&cr);
}

/* Defect D, recursive delete: it removes a large tree in bounded steps,
 * letting go of the namespace lock between them, so a GetAttr made
 * meanwhile is answered at once; it is whole from the start (the entry
 * goes first, in one transaction), and what a failure or a crash leaves
 * of the tree is removed at the next start, never seen again. */
static void test_delete_steps(void)
{
	wipe();
	start(false);
	register_dns();
	uint64_t n0 = files_counted();
	enum { WIDE = 200, DEEP = 100 };
	make_tree("big", WIDE, DEEP);
	CHECK_EQ(files_counted(), n0 + 1 + WIDE + WIDE * DEEP);
	/* the reply comes after the first step: the entry is gone, the rest
	 * of the tree goes from the monitor's tick */
	int64_t d0 = cdl_now_ms();
	CHECK_EQ(del_as("/big", true, NULL), 0);
	int64_t answered = cdl_now_ms() - d0;
	CHECK_EQ(stat_path("/big", NULL), ENOENT);
	CHECK(files_counted() > n0);
	struct tick_run tr = {0, 0};
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, tick_thread, &tr), 0);
	int64_t worst = 0;
	int during = 0;
	usleep(2000);
	while (!tr.t1) {
		int64_t t0 = cdl_now_ms();
		CHECK_EQ(stat_path("/", NULL), 0);
		int64_t t = cdl_now_ms() - t0;
		worst = t > worst ? t : worst;
		during++;
	}
	pthread_join(th, NULL);
	int64_t took = tr.t1 - tr.t0;
	fprintf(stderr,
		"delete of %d entries: answered in %lld ms, the rest %lld ms; %d GetAttrs "
		"meanwhile, the slowest %lld ms\n",
		WIDE * DEEP, (long long)answered, (long long)took, during, (long long)worst);
	CHECK(answered * 4 < took);
	CHECK(took >= 40); /* long enough to tell */
	CHECK(worst * 4 < took);
	CHECK_EQ(stat_path("/big", NULL), ENOENT);
	CHECK_EQ(files_counted(), n0);
	invariants_hold();

	/* the entry goes in the first write; every later one fails: the
	 * delete stands, the rest waits, and the next start removes it */
	make_tree("r", 30, 100);
	register_dns(); /* alive again, however long the tree took */
	uint64_t fino, blk;
	CHECK_EQ(create_as("/r/d000/file", "c1", &fino, NULL), 0);
	CHECK_EQ(add_block(fino, "c1", 0, 0, NULL, 0, &blk), 0);
	CHECK_EQ(complete(fino, "c1", blk, 10), 0);
	nn_store_inject_after(ns->st, NN_STORE_WRITE, -EIO, 1, 1000000);
	CHECK_EQ(del_as("/r", true, NULL), 0);
	CHECK_EQ(stat_path("/r", NULL), ENOENT);
	CHECK_EQ(stat_path("/r/d000/file", NULL), ENOENT);
	CHECK(files_counted() > n0);
	CHECK(in_map(blk));
	nn_store_inject(ns->st, NN_STORE_WRITE, 0, 0);
	stop_nn();
	start(false);
	CHECK_EQ(files_counted(), n0);
	CHECK(!in_map(blk));
	CHECK(!ns->safemode);
	invariants_hold();
	CHECK_EQ(mkdir_as("/r", NULL), 0);
	stop_nn();
}

/* Metadata disk full: below the reserve every change fails with ENOSPC
 * and changes nothing, reads go on, and once space is back changes work
 * without a restart; a restart finds exactly what was acknowledged. The
 * reserve is set above any disk's size to stand for a full disk. */
static void test_disk_full(void)
{
	wipe();
	start(true);
	uint64_t n0 = files_counted();
	CHECK_EQ(mkdir_as("/before", NULL), 0);
	uint64_t fino;
	CHECK_EQ(create_as("/before/f", "c1", &fino, NULL), 0);
	/* a write the disk refuses (injected) fails with ENOSPC, not EIO */
	nn_store_inject(ns->st, NN_STORE_WRITE, -ENOSPC, 1);
	CHECK_EQ(mkdir_as("/refused", NULL), ENOSPC);
	nn_store_set_reserve(ns->st, UINT64_MAX / 2);
	CHECK_EQ(mkdir_as("/refused", NULL), ENOSPC);
	CHECK_EQ(create_as("/before/g", "c1", NULL, NULL), ENOSPC);
	CHECK_EQ(complete(fino, "c1", 0, 0), ENOSPC);
	CHECK_EQ(del_as("/before", true, NULL), ENOSPC);
	/* reads go on */
	CHECK_EQ(stat_path("/before/f", NULL), 0);
	CHECK_EQ(stat_path("/refused", NULL), ENOENT);
	CHECK_EQ(files_counted(), n0 + 2);
	/* space is back */
	nn_store_set_reserve(ns->st, 1);
	CHECK_EQ(complete(fino, "c1", 0, 0), 0);
	CHECK_EQ(mkdir_as("/after", NULL), 0);
	stop_nn();
	start(true);
	CHECK_EQ(stat_path("/before/f", NULL), 0);
	CHECK_EQ(stat_path("/after", NULL), 0);
	CHECK_EQ(stat_path("/refused", NULL), ENOENT);
	CHECK_EQ(stat_path("/before/g", NULL), ENOENT);
	CHECK_EQ(files_counted(), n0 + 3);
	invariants_hold();
	stop_nn();
}

/* Heartbeat of datanode id: the CMD_RECOVER of block blk in its reply (how
 * many; the last one's stamps in *old and *gen). Takes the queued commands. */
static int recover_cmds(const char *id, uint64_t blk, uint64_t *old, uint64_t *gen)
{
	Caudal__HeartbeatRequest q = CAUDAL__HEARTBEAT_REQUEST__INIT;
	Caudal__DatanodeInfo n = CAUDAL__DATANODE_INFO__INIT;
	n.id = (char *)id;
	n.capacity = 1ULL << 40;
	n.remaining = 1ULL << 39;
	q.node = &n;
	Caudal__HeartbeatReply *r = call_on(dl, "Heartbeat", &q);
	int cnt = 0;
	for (size_t i = 0; i < r->n_commands; i++) {
		const Caudal__Command *c = r->commands[i];
		if (c->type != CAUDAL__COMMAND_TYPE__CMD_RECOVER || !c->block ||
		    c->block->id != blk)
			continue;
		cnt++;
		*old = c->block->gen;
		*gen = c->new_gen;
	}
	rfree(r);
	return cnt;
}

/* BlockReceived from datanode id: one replica received, or deleted. */
static void received(const char *id, uint64_t blk, uint64_t gen, uint64_t len, bool deleted)
{
	Caudal__BlockReceivedRequest q = CAUDAL__BLOCK_RECEIVED_REQUEST__INIT;
	Caudal__Replica rep = CAUDAL__REPLICA__INIT, *reps[1] = {&rep};
	rep.id = blk;
	rep.gen = gen;
	rep.length = len;
	q.id = (char *)id;
	if (deleted) {
		q.deleted = reps;
		q.n_deleted = 1;
	} else {
		q.received = reps;
		q.n_received = 1;
	}
	Caudal__Status *r = call_on(dl, "BlockReceived", &q);
	CHECK_EQ(r->err, 0);
	rfree(r);
}

/* hsync: Complete with keep_lease, recording len bytes of the last block. */
static int hsync_len(uint64_t ino, const char *client, uint64_t blk, uint64_t len)
{
	Caudal__CompleteRequest q = CAUDAL__COMPLETE_REQUEST__INIT;
	Caudal__Replica last = CAUDAL__REPLICA__INIT;
	q.ino = ino;
	q.client = (char *)client;
	last.id = blk;
	last.length = len;
	q.last = &last;
	q.keep_lease = true;
	Caudal__AttrReply *r = call("Complete", &q);
	int e = (int)r->err;
	rfree(r);
	return e;
}

/* Expire the lease of the file whose last block is blk and take the
 * CMD_RECOVER each holder in ids gets: its new stamp (the same for all). */
static uint64_t expire_and_recover(uint64_t blk, char ids[][16], size_t n, uint64_t old)
{
	uint64_t o[3] = {0}, g[3] = {0};
	int got[3] = {0};
	bool all = false;
	for (int tries = 0; tries < 200 && !all; tries++) {
		nn_ns_tick(ns);
		all = true;
		for (size_t i = 0; i < n; i++) {
			got[i] += recover_cmds(ids[i], blk, &o[i], &g[i]);
			all &= got[i] > 0;
		}
		if (!all)
			usleep(50000);
	}
	for (size_t i = 0; i < n; i++) {
		CHECK_EQ(got[i], 1);
		CHECK_EQ(o[i], old);
		CHECK_EQ(g[i], g[0]);
	}
	CHECK(g[0] > old);
	return g[0];
}

/* Issue 8: lease recovery moves the last block to a new stamp. Once the
 * lease expires each holder is told to recover the block under a new
 * stamp; the writer is refused from then on; the file is closed at the
 * shortest length the holders recovered, under the new stamp, with the
 * recovering nodes as its locations, without waiting for a node that
 * answered it has nothing. A replica under a stamp nobody handed out, and
 * the old stamp's, are deleted; a restart keeps the outcome. */
static void test_lease_recovery_new_stamp(void)
{
	wipe();
	lease_ms = 1000;
	start(true);
	register_dns();
	uint64_t ino, blk;
	CHECK_EQ(create_as("/r", "c1", &ino, NULL), 0);
	CHECK_EQ(add_block(ino, "c1", 0, 0, NULL, 0, &blk), 0);
	char ids[3][16];
	size_t n;
	uint64_t old = blk_state(blk, ids, &n);
	CHECK_EQ(n, 3);

	/* the lease expires: every holder gets the command, once */
	uint64_t gen = expire_and_recover(blk, ids, 3, old), o0, g0;
	CHECK_EQ(recover_cmds(ids[0], blk, &o0, &g0), 0);
	/* a forged stamp at the top of the range for the block being
	 * recovered is deleted as stale, and moves no stamp */
	received(ids[2], blk, UINT64_MAX - 1, 5000, false);
	CHECK_EQ(deletes_for(ids[2], blk), 1);
	/* the writer lost the file */
	CHECK_EQ(complete(ino, "c1", blk, 100), EBADF);
	CHECK_EQ(add_block(ino, "c1", blk, 100, NULL, 0, NULL), EBADF);

	/* two holders recovered different lengths, the third has nothing */
	received(ids[0], blk, gen, 5000, false);
	received(ids[1], blk, gen, 4000, false);
	nn_ns_tick(ns);
	{
		Caudal__GetAttrRequest q = CAUDAL__GET_ATTR_REQUEST__INIT;
		Caudal__Target t = CAUDAL__TARGET__INIT;
		t.path = "/r";
		q.target = &t;
		Caudal__AttrReply *r = call("GetAttr", &q);
		CHECK_EQ(r->err, 0);
		CHECK(r->attr->under_construction); /* still waiting for the third */
		rfree(r);
	}
	received(ids[2], blk, gen, 0, true);
	nn_ns_tick(ns);
	{
		Caudal__GetAttrRequest q = CAUDAL__GET_ATTR_REQUEST__INIT;
		Caudal__Target t = CAUDAL__TARGET__INIT;
		t.path = "/r";
		q.target = &t;
		Caudal__AttrReply *r = call("GetAttr", &q);
		CHECK_EQ(r->err, 0);
		CHECK(!r->attr->under_construction);
		CHECK_EQ(r->attr->size, 4000);
		rfree(r);
	}
	char now[3][16];
	CHECK_EQ(blk_state(blk, now, &n), gen);
	CHECK_EQ(n, 2);
	CHECK(!strcmp(now[0], ids[0]) || !strcmp(now[1], ids[0]));
	CHECK(!strcmp(now[0], ids[1]) || !strcmp(now[1], ids[1]));
	/* the old stamp, and a stamp above the one handed out, are stale */
	block_report(ids[2], blk, old, 5000);
	CHECK_EQ(deletes_for(ids[2], blk), 1);
	received(ids[2], blk, gen + 5, 5000, false);
	CHECK_EQ(deletes_for(ids[2], blk), 1);
	CHECK_EQ(deletes_for(ids[0], blk), 0);
	invariants_hold();

	/* a restart keeps the new stamp and length */
	stop_nn();
	start(true);
	register_dns();
	block_report(ids[0], blk, gen, 5000);
	block_report(ids[1], blk, gen, 4000);
	CHECK_EQ(deletes_for(ids[0], blk) + deletes_for(ids[1], blk), 0);
	CHECK_EQ(blk_state(blk, now, &n), gen);
	CHECK_EQ(n, 2);

	/* a replica shorter than what the writer's hsync recorded (a node
	 * that fell out of the pipeline) is not kept, nor does it cut the
	 * file short */
	uint64_t ino2, blk2;
	nn_ns_tick(ns); /* out of safe mode: the block was reported */
	CHECK_EQ(create_as("/s", "c2", &ino2, NULL), 0);
	CHECK_EQ(add_block(ino2, "c2", 0, 0, NULL, 0, &blk2), 0);
	CHECK_EQ(hsync_len(ino2, "c2", blk2, 3000), 0);
	uint64_t old2 = blk_state(blk2, ids, &n);
	CHECK_EQ(n, 3);
	uint64_t gen2 = expire_and_recover(blk2, ids, 3, old2);
	received(ids[0], blk2, gen2, 5000, false);
	received(ids[1], blk2, gen2, 2000, false);
	received(ids[2], blk2, gen2, 4000, false);
	nn_ns_tick(ns);
	{
		Caudal__GetAttrRequest q = CAUDAL__GET_ATTR_REQUEST__INIT;
		Caudal__Target t = CAUDAL__TARGET__INIT;
		t.path = "/s";
		q.target = &t;
		Caudal__AttrReply *r = call("GetAttr", &q);
		CHECK_EQ(r->err, 0);
		CHECK(!r->attr->under_construction);
		CHECK_EQ(r->attr->size, 4000);
		rfree(r);
	}
	CHECK_EQ(blk_state(blk2, now, &n), gen2);
	CHECK_EQ(n, 2);
	for (size_t i = 0; i < n; i++)
		CHECK(strcmp(now[i], ids[1]) != 0);
	invariants_hold();
	stop_nn();
	lease_ms = 60000;
}

int main(void)
{
	cdl_log_init("test", CDL_LOG_WARN);
	CHECK(mkdtemp(dir) != NULL);
	/* children first: they must not inherit gRPC's threads */
	test_sync_failure_stops();
	cdl_rpc_global_init();
	test_abandon_without_targets();
	test_pipeline_prepare_then_commit();
	test_pipeline_replace();
	test_pipeline_uncommitted_stamp();
	test_truncate_frees_after_sync();
	test_inode_count();
	test_events_after_sync();
	test_fsck_steps();
	test_delete_steps();
	test_disk_full();
	test_lease_recovery_new_stamp();

	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK_EQ(system(cmd), 0);
	cdl_rpc_global_shutdown();
	return TEST_DONE();
}
