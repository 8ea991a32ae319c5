/* Unit test of mnt_wb (write-back creates) against a real namenode in this
 * process: a create in a directory the mount knows whole is answered
 * without the namenode and held from other callers until it is there; a
 * closed file arrives whole with its bytes; a barrier on a pending file
 * makes it at the namenode open under the mount's lease; a namenode
 * restart that forgot the hold while another caller took the name makes
 * the file lost, counted and reported by the next sync; stop sends
 * everything and gives every directory back; the bounds refuse what they
 * should (a directory not known whole, a user who may not write). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "caudal.pb-c.h"
#include "cdl_client.h"
#include "cdl_log.h"
#include "cdl_rpc.h"
#include "cdl_util.h"
#include "mnt_fs.h"
#include "mnt_wb.h"
#include "nn_ns.h"
#include "test.h"
#include "nn_harness.h"

static struct nn_harness nnh;
static cdl_rpc_client *other; /* another caller, through the plain RPC layer */
static char dir[] = "/tmp/caudal-test-mnt-wb-XXXXXX";
static char addr[64];
static int port;
static const Caudal__Cred root_cred = CAUDAL__CRED__INIT;

/* (again on the same port after a restart: the mount's client knows it) */
static void start_nn(void)
{
	nn_conf c = nn_harness_conf(dir);
	c.safemode_pct = 0;
	c.events_keep = 10000;
	c.inline_max = 65536;
	c.hold_ms = 2000;
	c.batch_ms = 5;
	c.sync_always = false;
	nn_harness_start(&nnh, &c, port);
	port = cdl_rpc_server_port(nnh.srv);
	snprintf(addr, sizeof(addr), "%s", nnh.addr);
	other = nnh.cl;
	nn_ns_tick(nnh.ns);
}

static void stop_nn(void)
{
	nn_harness_stop(&nnh);
}

/* GetAttr of path by the other caller (no retries): its err. */
static int other_getattr(const char *path, uint64_t *size)
{
	Caudal__GetAttrRequest q = CAUDAL__GET_ATTR_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = (char *)path;
	q.target = &t;
	q.cred = (Caudal__Cred *)&root_cred;
	Caudal__AttrReply *r = NULL;
	CHECK_EQ(cdl_rpc_call_name(other, "GetAttr", &q.base, (ProtobufCMessage **)&r, 10000), 0);
	int e = r ? (int)r->err : EIO;
	if (r && size && r->attr)
		*size = r->attr->size;
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	return e;
}

/* The same, waiting (at most 5 s) while the directory is held. */
static int other_getattr_wait(const char *path, uint64_t *size)
{
	int e = EAGAIN;
	for (int i = 0; i < 500 && e == EAGAIN; i++) {
		e = other_getattr(path, size);
		if (e == EAGAIN)
			usleep(10000);
	}
	return e;
}

static int other_create(const char *path)
{
	Caudal__CreateRequest q = CAUDAL__CREATE_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = (char *)path;
	q.target = &t;
	q.client = "other";
	q.cred = (Caudal__Cred *)&root_cred;
	q.mode = 0644;
	Caudal__AttrReply *r = NULL;
	CHECK_EQ(cdl_rpc_call_name(other, "Create", &q.base, (ProtobufCMessage **)&r, 10000), 0);
	int e = r ? (int)r->err : EIO;
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	return e;
}

/* A directory made through the mount's client: known whole to its
 * directory cache, its attributes in the attribute cache. */
static uint64_t make_dir(struct mnt *m, const char *path, uint32_t mode)
{
	Caudal__MkdirRequest q = CAUDAL__MKDIR_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = (char *)path;
	q.target = &t;
	q.mode = mode;
	q.cred = (Caudal__Cred *)&root_cred;
	Caudal__AttrReply *r = NULL;
	CHECK_EQ(mnt_call(m, CDL_NN_Mkdir, &q.base, (ProtobufCMessage **)&r), 0);
	uint64_t ino = r->attr->ino;
	mnt_dcache_made_dir(&m->dc, ino, r->attr->version);
	mnt_acache_put_attr(&m->ac, r->attr);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return ino;
}

int main(void)
{
	cdl_log_init("test", CDL_LOG_WARN);
	cdl_rpc_global_init();
	CHECK(mkdtemp(dir) != NULL);
	start_nn();

	struct mnt m;
	memset(&m, 0, sizeof(m));
	cdl_client_opts co = {.namenode = addr, .io_timeout_ms = 5000, .name = "wbtest"};
	m.cl = cdl_client_new(&co);
	CHECK(m.cl != NULL);
	mnt_dcache_init(&m.dc, 60000);
	mnt_acache_init(&m.ac, 60000);
	mnt_itab_init(&m.itab);
	mnt_dcache_set_live(&m.dc, true); /* (no follower: this test is the log) */
	mnt_acache_set_live(&m.ac, true, 0);
	CHECK_EQ(mnt_wb_start(&m), 0);

	uint64_t d = make_dir(&m, "/d", 0777);
	Caudal__Cred user = CAUDAL__CRED__INIT;
	user.uid = 1000;
	user.gid = 1000;

	/* a create answered here, held from others until it is there */
	Caudal__Attr a, b;
	CHECK_EQ(mnt_wb_create(&m, d, "a", 0640, &user, &a), 0);
	CHECK(a.ino > d);
	CHECK_EQ(a.mode, S_IFREG | 0640);
	CHECK_EQ(a.uid, 1000);
	CHECK(mnt_wb_pending(&m, a.ino));
	CHECK(!mnt_dcache_absent(&m.dc, d, "a")); /* claimed */
	CHECK_EQ(other_getattr("/d/a", NULL), EAGAIN);
	CHECK_EQ(mnt_wb_close(&m, a.ino, "hello", 5), 0);
	CHECK(mnt_wb_attr(&m, a.ino, &b) && b.size == 5);
	CHECK_EQ(mnt_wb_sync(&m), 0);
	CHECK(!mnt_wb_pending(&m, a.ino));
	uint64_t size = 0;
	CHECK_EQ(other_getattr_wait("/d/a", &size), 0);
	CHECK_EQ(size, 5);
	/* the other caller recalled the hold: the mount creates the usual way
	 * there for a while, then takes it again */
	CHECK_EQ(mnt_wb_create(&m, d, "a2", 0640, &user, &b), -EAGAIN);
	usleep((WB_BACKOFF_MS + 100) * 1000);
	/* the name stays taken: a second create of it is not answered here */
	CHECK_EQ(mnt_wb_create(&m, d, "a", 0640, &user, &b), -EAGAIN);

	/* a barrier on a pending file makes it open under the mount's lease */
	CHECK_EQ(mnt_wb_create(&m, d, "b", 0644, &root_cred, &b), 0);
	Caudal__GetAttrRequest gq = CAUDAL__GET_ATTR_REQUEST__INIT;
	Caudal__Target gt = CAUDAL__TARGET__INIT;
	gt.ino = b.ino;
	gq.target = &gt;
	mnt_wb_barrier(&m, &gq.base);
	Caudal__Attr made;
	CHECK_EQ(mnt_wb_made(&m, b.ino, &made), 0);
	CHECK_EQ(made.ino, b.ino);
	CHECK(made.under_construction);
	CHECK_EQ(mnt_wb_made(&m, b.ino, &made), -ENOENT);   /* handed over once */
	CHECK_EQ(mnt_wb_close(&m, b.ino, "x", 1), -EAGAIN); /* no longer pending */

	/* refused: a directory not known whole, a user who may not write */
	Caudal__MkdirRequest mq = CAUDAL__MKDIR_REQUEST__INIT;
	Caudal__Target mt = CAUDAL__TARGET__INIT;
	mt.path = "/unknown";
	mq.target = &mt;
	mq.mode = 0777;
	Caudal__AttrReply *mr = NULL;
	CHECK_EQ(mnt_call(&m, CDL_NN_Mkdir, &mq.base, (ProtobufCMessage **)&mr), 0);
	uint64_t unknown = mr->attr->ino;
	protobuf_c_message_free_unpacked(&mr->base, NULL);
	CHECK_EQ(other_create("/unknown/theirs"), 0); /* (an empty one would be known) */
	CHECK_EQ(mnt_wb_create(&m, unknown, "x", 0644, &root_cred, &b), -EAGAIN);
	uint64_t locked = make_dir(&m, "/locked", 0755);
	CHECK_EQ(mnt_wb_create(&m, locked, "x", 0644, &user, &b), -EAGAIN);

	/* many files, in several batches */
	for (int i = 0; i < 500; i++) {
		char name[16];
		snprintf(name, sizeof(name), "m%d", i);
		CHECK_EQ(mnt_wb_create(&m, d, name, 0644, &root_cred, &b), 0);
		CHECK_EQ(mnt_wb_close(&m, b.ino, name, strlen(name)), 0);
	}
	CHECK_EQ(mnt_wb_sync(&m), 0);
	CHECK_EQ(other_getattr_wait("/d/m499", &size), 0);
	CHECK_EQ(size, 4);

	/* a restart forgets the hold; another caller takes the name the
	 * mount made meanwhile: the file is lost, said by the next sync */
	uint64_t e = make_dir(&m, "/e", 0777);
	CHECK_EQ(mnt_wb_create(&m, e, "c", 0644, &root_cred, &b), 0);
	stop_nn();
	start_nn();
	CHECK_EQ(other_create("/e/c"), 0);
	CHECK_EQ(mnt_wb_close(&m, b.ino, "mine", 4), 0);
	CHECK_EQ(mnt_wb_sync(&m), -EEXIST);
	struct mnt_wb_stats st;
	mnt_wb_stats(&m, &st);
	CHECK_EQ(st.lost, 1);
	CHECK(st.local >= 503 && st.made >= 502 && st.takes >= 1);
	CHECK(!mnt_dcache_absent(&m.dc, e, "zzz")); /* forgotten: names unknown */
	CHECK_EQ(mnt_wb_sync(&m), 0);		    /* said once */

	/* stop sends everything and gives every directory back */
	uint64_t f = make_dir(&m, "/f", 0777);
	CHECK_EQ(mnt_wb_create(&m, f, "z", 0644, &root_cred, &b), 0);
	CHECK_EQ(mnt_wb_close(&m, b.ino, "zz", 2), 0);
	mnt_wb_stop(&m);
	CHECK(m.wb == NULL);
	CHECK_EQ(other_getattr("/f/z", &size), 0); /* at once: not held */
	CHECK_EQ(size, 2);
	CHECK_EQ(mnt_wb_create(&m, f, "y", 0644, &root_cred, &b), -EAGAIN); /* off */

	mnt_dcache_destroy(&m.dc);
	mnt_acache_destroy(&m.ac);
	mnt_itab_release(&m.itab);
	cdl_client_free(m.cl);
	stop_nn();
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK_EQ(system(cmd), 0);
	cdl_rpc_global_shutdown();
	return TEST_DONE();
}
