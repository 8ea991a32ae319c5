/* The invariant checker (nn_check) on a real namespace in a temporary
 * RocksDB: a namespace built through the RPC layer checks clean; then each
 * kind of corruption is made on purpose, in the records or in the block
 * map, and the checker must name it; undone, the check is clean again. */
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
#include "nn_ns.h"
#include "test.h"
#include "nn_harness.h"

static cdl_rpc_client *cl;
static nn_ns *ns;
static cdl_rpc_server *srv;
static char dir[] = "/tmp/caudal-test-nn-check-XXXXXX";
static Caudal__Cred root = CAUDAL__CRED__INIT;

static struct nn_harness nnh;

static void start(void)
{
	nn_conf c = nn_harness_conf(dir);
	nn_harness_start(&nnh, &c, 0);
	ns = nnh.ns, srv = nnh.srv, cl = nnh.cl;
}

static void stop_nn(void)
{
	nn_harness_stop(&nnh);
}

/* An Attr-returning namespace call; returns the reply's err and the ino. */
static int attr_call(const char *m, const void *req, uint64_t *ino)
{
	Caudal__AttrReply *r = NULL;
	if (cdl_rpc_call_name(cl, m, req, (ProtobufCMessage **)&r, 5000) < 0) {
		fprintf(stderr, "rpc %s failed\n", m);
		exit(1);
	}
	int e = (int)r->err;
	if (!e && ino && r->attr)
		*ino = r->attr->ino;
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return e;
}

static int mkdir_at(const char *path, uint64_t *ino)
{
	Caudal__MkdirRequest q = CAUDAL__MKDIR_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = (char *)path;
	q.target = &t;
	q.mode = 0755;
	q.cred = &root;
	return attr_call("Mkdir", &q, ino);
}

static int create_at(const char *path, uint64_t *ino)
{
	Caudal__CreateRequest q = CAUDAL__CREATE_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = (char *)path;
	q.target = &t;
	q.mode = 0644;
	q.client = (char *)"test-check";
	q.cred = &root;
	return attr_call("Create", &q, ino);
}

/* Runs the checker; returns its violation count and keeps its text. */
static char *last;
static size_t check(void)
{
	nn_check_report r;
	CHECK_EQ(nn_check_run(ns, 100, &r), 0);
	free(last);
	last = r.text;
	r.text = NULL;
	if (r.violations)
		fprintf(stderr, "(expected) %s", last);
	return r.violations;
}

static bool said(const char *what)
{
	bool yes = last && strstr(last, what);
	if (!yes)
		fprintf(stderr, "the check did not say '%s':\n%s", what, last ? last : "");
	return yes;
}

/* The raw record of inode ino, and a write of one back. */
static Caudal__InodeRec *rec_get(uint64_t ino)
{
	uint8_t k[9] = {'I'};
	cdl_put_be64(k + 1, ino);
	char *v;
	size_t vl;
	if (nn_store_get(ns->st, k, sizeof(k), &v, &vl) < 0)
		return NULL;
	Caudal__InodeRec *r = caudal__inode_rec__unpack(NULL, vl, (const uint8_t *)v);
	nn_store_free(v);
	return r;
}

static void rec_put(const Caudal__InodeRec *r)
{
	uint8_t k[9] = {'I'};
	cdl_put_be64(k + 1, r->ino);
	size_t len = caudal__inode_rec__get_packed_size(r);
	uint8_t *buf = xmalloc(len);
	caudal__inode_rec__pack(r, buf);
	nn_batch *b = nn_batch_new();
	nn_batch_put(b, k, sizeof(k), buf, len);
	CHECK_EQ(nn_store_write(ns->st, b), 0);
	nn_batch_free(b);
	free(buf);
}

static void raw_put(const void *k, size_t kl, const void *v, size_t vl)
{
	nn_batch *b = nn_batch_new();
	if (v)
		nn_batch_put(b, k, kl, v, vl);
	else
		nn_batch_del(b, k, kl);
	CHECK_EQ(nn_store_write(ns->st, b), 0);
	nn_batch_free(b);
}

int main(void)
{
	cdl_log_init("test", CDL_LOG_WARN);
	cdl_rpc_global_init();
	CHECK(mkdtemp(dir) != NULL);
	start();

	uint64_t d_ino = 0, f_ino = 0, g_ino = 0;
	CHECK_EQ(check(), 0);
	CHECK_EQ(mkdir_at("/d", &d_ino), 0);
	CHECK_EQ(mkdir_at("/d/e", NULL), 0);
	CHECK_EQ(create_at("/d/f", &f_ino), 0);
	CHECK_EQ(create_at("/g", &g_ino), 0);
	CHECK_EQ(check(), 0);
	CHECK(said("ok 5 inodes, 2 files, 3 directories"));

	/* a file given a block in its record and, consistently, in the map */
	Caudal__InodeRec *f = rec_get(f_ino);
	CHECK(f != NULL);
	Caudal__Replica blk = CAUDAL__REPLICA__INIT;
	Caudal__Replica *blks[1] = {&blk};
	blk.id = 1; /* ids start at 1 and none was handed out */
	blk.gen = 7;
	blk.length = 1000;
	f->n_blocks = 1;
	f->blocks = blks;
	pthread_mutex_lock(&ns->lock);
	ns->next_block = 2;
	pthread_mutex_unlock(&ns->lock);
	/* the stored next block id must cover it too: a create commits the counters */
	CHECK_EQ(create_at("/h", NULL), 0);
	rec_put(f);
	pthread_mutex_lock(&ns->lock);
	nn_blk_add(ns->bl, 1, 7, 1000, f_ino, 3);
	pthread_mutex_unlock(&ns->lock);
	CHECK_EQ(check(), 0);

	/* the block map disagrees with the record: another generation */
	pthread_mutex_lock(&ns->lock);
	nn_blk_get(ns->bl, 1)->gen = 8;
	pthread_mutex_unlock(&ns->lock);
	CHECK_EQ(check(), 1);
	CHECK(said("block 1: the record of inode"));
	pthread_mutex_lock(&ns->lock);
	nn_blk_get(ns->bl, 1)->gen = 7;
	pthread_mutex_unlock(&ns->lock);
	CHECK_EQ(check(), 0);

	/* a block left under construction in a file that is closed */
	pthread_mutex_lock(&ns->lock);
	nn_blk_get(ns->bl, 1)->uc = true;
	pthread_mutex_unlock(&ns->lock);
	CHECK_EQ(check(), 0); /* /d/f still holds its writer's lease */
	char *lease = f->lease;
	f->lease = (char *)"";
	rec_put(f);
	CHECK_EQ(check(), 1);
	CHECK(said("block 1 of inode"));
	CHECK(said("is marked under construction, but the file is closed"));
	pthread_mutex_lock(&ns->lock);
	nn_blk_get(ns->bl, 1)->uc = false;
	pthread_mutex_unlock(&ns->lock);
	CHECK_EQ(check(), 0);
	f->lease = lease;
	rec_put(f);

	/* a block the map holds but no record lists (an orphan) */
	pthread_mutex_lock(&ns->lock);
	nn_blk_add(ns->bl, 99, 1, 10, g_ino, 3);
	pthread_mutex_unlock(&ns->lock);
	CHECK(check() >= 1);
	CHECK(said("block 99 is in the block map"));
	pthread_mutex_lock(&ns->lock);
	nn_blk_remove(ns->bl, 99);
	pthread_mutex_unlock(&ns->lock);
	CHECK_EQ(check(), 0);

	/* a record's block missing from the map (the record kept a block the
	 * map dropped, as defect A of issue 8 leaves it) */
	pthread_mutex_lock(&ns->lock);
	nn_blk_remove(ns->bl, 1);
	pthread_mutex_unlock(&ns->lock);
	CHECK(check() >= 1);
	CHECK(said("block 1 of inode"));
	CHECK(said("is not in the block map"));
	pthread_mutex_lock(&ns->lock);
	nn_blk_add(ns->bl, 1, 7, 1000, f_ino, 3);
	pthread_mutex_unlock(&ns->lock);
	CHECK_EQ(check(), 0);
	f->n_blocks = 0;
	f->blocks = NULL;
	caudal__inode_rec__free_unpacked(f, NULL);

	/* a directory entry removed: the inode is unreachable, the
	 * directory's entry count is off */
	uint8_t dk[16] = {'D'};
	cdl_put_be64(dk + 1, d_ino);
	memcpy(dk + 9, "f", 1);
	uint8_t dv[8];
	cdl_put_be64(dv, f_ino);
	raw_put(dk, 10, NULL, 0);
	CHECK_EQ(check(), 2);
	CHECK(said("is named by 0 entries"));
	CHECK(said("records 2 entries"));
	/* pointing at the wrong inode instead */
	uint8_t wrong[8];
	cdl_put_be64(wrong, g_ino);
	raw_put(dk, 10, wrong, 8);
	CHECK(check() >= 2);
	CHECK(said("whose record says it is 'g'"));
	raw_put(dk, 10, dv, 8);
	CHECK_EQ(check(), 0);

	/* a record whose parent is not the directory that names it */
	Caudal__InodeRec *g = rec_get(g_ino);
	CHECK(g != NULL);
	g->parent = d_ino;
	rec_put(g);
	CHECK(check() >= 1);
	CHECK(said("whose record says it is 'g' in"));
	g->parent = 1;
	rec_put(g);
	caudal__inode_rec__free_unpacked(g, NULL);
	CHECK_EQ(check(), 0);

	/* counters: the namenode's inode count off by one, as defect C
	 * leaves it after a failed commit */
	pthread_mutex_lock(&ns->lock);
	ns->inodes++;
	pthread_mutex_unlock(&ns->lock);
	CHECK(check() >= 2);
	CHECK(said("inode records, the namenode counts"));
	CHECK(said("stored inode count"));
	pthread_mutex_lock(&ns->lock);
	ns->inodes--;
	pthread_mutex_unlock(&ns->lock);
	CHECK_EQ(check(), 0);

	/* an undecodable inode record */
	uint8_t ik[9] = {'I'};
	cdl_put_be64(ik + 1, g_ino);
	char *save;
	size_t savel;
	CHECK_EQ(nn_store_get(ns->st, ik, 9, &save, &savel), 0);
	raw_put(ik, 9, "\xff\xff\xff", 3);
	CHECK(check() >= 1);
	CHECK(said("record is undecodable"));
	raw_put(ik, 9, save, savel);
	nn_store_free(save);
	CHECK_EQ(check(), 0);

	free(last);
	stop_nn();
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK_EQ(system(cmd), 0);
	cdl_rpc_global_shutdown();
	return TEST_DONE();
}
