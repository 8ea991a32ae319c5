/* Identities: certificates made by cdl_cert_*, a mutual-TLS RPC server and
 * clients holding different certificates. Covers the "ROLE:NAME" parser
 * against hostile names, the role table (a user certificate may not call
 * an admin method; the handler sees who called), callers refused without a
 * certificate of the cluster CA (plaintext, or another CA's), and the
 * per-caller cap on long polls (one caller cannot take them all). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "caudal.pb-c.h"
#include "cdl_log.h"
#include "cdl_rpc.h"
#include "cdl_sec.h"
#include "test.h"

/* Echoes "ROLE:NAME" of the caller as the cluster id; "longpoll" sleeps. */
static void h_register(void *ctx, const ProtobufCMessage *req, ProtobufCMessage *reply,
		       cdl_arena *a)
{
	const Caudal__RegisterRequest *r = (const void *)req;
	Caudal__RegisterReply *o = (void *)reply;
	(void)ctx;
	if (r->node && !strcmp(r->node->id, "longpoll"))
		usleep(1500 * 1000);
	const cdl_peer *p = cdl_rpc_peer();
	char buf[200];
	snprintf(buf, sizeof(buf), "%s:%s", p ? cdl_role_name(p->role) : "-", p ? p->name : "-");
	o->cluster = cdl_arena_strdup(a, buf);
}

static void h_status(void *ctx, const ProtobufCMessage *req, ProtobufCMessage *reply,
		     cdl_arena *a)
{
	(void)ctx, (void)req, (void)reply, (void)a;
}

static void h_heartbeat(void *ctx, const ProtobufCMessage *req, ProtobufCMessage *reply,
			cdl_arena *a)
{
	(void)ctx, (void)req, (void)reply, (void)a;
}

static const cdl_rpc_method table[] = {
    {"RegisterDatanode", h_register, CDL_RPC_BLOCKING, 0},
    {"Heartbeat", h_heartbeat, 0, CDL_ROLE_BIT(CDL_ROLE_ADMIN)},
    {"BlockReport", h_status, 0, 0},
    {"BlockReceived", h_status, 0, 0},
    {NULL, NULL, 0, 0},
};

/* Deadline of the calls expected to fail: a refused TLS handshake leaves
 * the channel connecting until the deadline. */
#define FAIL_MS 1500

static int do_register_ms(cdl_rpc_client *c, const char *id, char *who, size_t n, int ms)
{
	Caudal__RegisterRequest req = CAUDAL__REGISTER_REQUEST__INIT;
	Caudal__DatanodeInfo node = CAUDAL__DATANODE_INFO__INIT;
	node.id = (char *)id;
	req.node = &node;
	Caudal__RegisterReply *r = NULL;
	int rc = cdl_rpc_call_name(c, "RegisterDatanode", &req.base, (ProtobufCMessage **)&r, ms);
	if (rc == 0) {
		if (who)
			snprintf(who, n, "%s", r->cluster);
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	return rc;
}

static int do_register(cdl_rpc_client *c, const char *id, char *who, size_t n)
{
	return do_register_ms(c, id, who, n, 5000);
}

static int do_heartbeat_ms(cdl_rpc_client *c, int ms)
{
	Caudal__HeartbeatRequest req = CAUDAL__HEARTBEAT_REQUEST__INIT;
	ProtobufCMessage *r = NULL;
	int rc = cdl_rpc_call_name(c, "Heartbeat", &req.base, &r, ms);
	if (r)
		protobuf_c_message_free_unpacked(r, NULL);
	return rc;
}

static int do_heartbeat(cdl_rpc_client *c)
{
	return do_heartbeat_ms(c, 5000);
}

static char dir[256];

/* Makes a certificate ROLE:NAME in dir and switches this process to it. */
static int become(const char *cadir, enum cdl_role role, const char *name, const char *host)
{
	char crt[400], key[400], ca[400];
	snprintf(crt, sizeof(crt), "%s/%s-%s.crt", dir, cdl_role_name(role), name);
	snprintf(key, sizeof(key), "%s/%s-%s.key", dir, cdl_role_name(role), name);
	snprintf(ca, sizeof(ca), "%s/ca.crt", cadir);
	int rc = cdl_cert_create(cadir, role, name, host, crt, key, 1);
	if (rc == 0)
		rc = cdl_sec_use(ca, crt, key);
	return rc;
}

struct poll_arg {
	cdl_rpc_client *c;
	int rc;
};

static void *longpoll(void *arg)
{
	struct poll_arg *p = arg;
	p->rc = do_register(p->c, "longpoll", NULL, 0);
	return NULL;
}

int main(void)
{
	cdl_log_init("test", CDL_LOG_ERROR);

	/* the common name parser refuses what is not "ROLE:NAME" */
	cdl_peer p;
	CHECK(cdl_peer_from_cn("user:alice", 10, &p) && p.role == CDL_ROLE_USER &&
	      !strcmp(p.name, "alice"));
	CHECK(cdl_peer_from_cn("datanode:127.0.0.2", 18, &p) && p.role == CDL_ROLE_DATANODE);
	CHECK(!cdl_peer_from_cn("user:", 5, &p));
	CHECK(!cdl_peer_from_cn(":alice", 6, &p));
	CHECK(!cdl_peer_from_cn("alice", 5, &p));
	CHECK(!cdl_peer_from_cn("wizard:alice", 12, &p));
	CHECK(!cdl_peer_from_cn("insecure:x", 10, &p)); /* never from a certificate */
	CHECK(!cdl_peer_from_cn("user:a b", 8, &p));
	CHECK(!cdl_peer_from_cn("user:a\nadmin:root", 17, &p));
	char longcn[300];
	memset(longcn, 'a', sizeof(longcn));
	memcpy(longcn, "user:", 5);
	CHECK(!cdl_peer_from_cn(longcn, sizeof(longcn), &p));
	CHECK_EQ(cdl_role_parse("admin"), CDL_ROLE_ADMIN);
	CHECK_EQ(cdl_role_parse("root"), CDL_ROLE_NONE);

	snprintf(dir, sizeof(dir), "/tmp/caudal-test-sec-XXXXXX");
	CHECK(mkdtemp(dir) != NULL);
	char cadir[300], evil[300];
	snprintf(cadir, sizeof(cadir), "%s/ca", dir);
	snprintf(evil, sizeof(evil), "%s/evil", dir);
	CHECK_EQ(cdl_cert_create_ca(cadir, "test"), 0);
	CHECK_EQ(cdl_cert_create_ca(evil, "evil"), 0);
	char kp[400];
	struct stat st;
	snprintf(kp, sizeof(kp), "%s/ca.key", cadir);
	CHECK(stat(kp, &st) == 0 && (st.st_mode & 0777) == 0600);
	/* a certificate's name cannot smuggle a second role or a path */
	CHECK_EQ(cdl_cert_create(cadir, CDL_ROLE_USER, "a:admin", NULL, "/dev/null", "/dev/null",
				 1),
		 -EINVAL);
	CHECK_EQ(cdl_cert_create(cadir, CDL_ROLE_USER, "../x", NULL, "/dev/null", "/dev/null", 1),
		 -EINVAL);
	CHECK_EQ(cdl_cert_create(cadir, CDL_ROLE_INSECURE, "x", NULL, "/dev/null", "/dev/null", 1),
		 -EINVAL);

	cdl_rpc_global_init();
	/* the server: a namenode certificate for 127.0.0.1 */
	CHECK_EQ(become(cadir, CDL_ROLE_NAMENODE, "127.0.0.1", "127.0.0.1"), 0);
	cdl_rpc_server *srv = cdl_rpc_server_new("127.0.0.1:0", 2);
	CHECK_EQ(cdl_rpc_server_add(srv, &caudal__datanode_protocol__descriptor, table, NULL), 0);
	CHECK_EQ(cdl_rpc_server_start(srv), 0);
	char target[64];
	snprintf(target, sizeof(target), "127.0.0.1:%d", cdl_rpc_server_port(srv));

	CHECK_EQ(become(cadir, CDL_ROLE_USER, "alice", NULL), 0);
	cdl_rpc_client *alice = cdl_rpc_client_new(target, &caudal__datanode_protocol__descriptor);
	CHECK_EQ(become(cadir, CDL_ROLE_ADMIN, "root", NULL), 0);
	cdl_rpc_client *admin = cdl_rpc_client_new(target, &caudal__datanode_protocol__descriptor);
	CHECK_EQ(become(evil, CDL_ROLE_ADMIN, "root", NULL), 0);
	cdl_rpc_client *forged = cdl_rpc_client_new(target, &caudal__datanode_protocol__descriptor);
	cdl_sec_use_insecure();
	cdl_rpc_client *plain = cdl_rpc_client_new(target, &caudal__datanode_protocol__descriptor);

	char who[200] = "";
	CHECK_EQ(do_register(alice, "x", who, sizeof(who)), 0);
	CHECK(!strcmp(who, "user:alice"));
	CHECK_EQ(do_register(admin, "x", who, sizeof(who)), 0);
	CHECK(!strcmp(who, "admin:root"));
	/* the role table: Heartbeat is for admins only */
	CHECK_EQ(do_heartbeat(alice), -EACCES);
	CHECK_EQ(do_heartbeat(admin), 0);
	/* no certificate, or an admin certificate of another CA: nothing */
	CHECK(do_register_ms(plain, "x", NULL, 0, FAIL_MS) < 0);
	CHECK(do_heartbeat_ms(plain, FAIL_MS) < 0);
	CHECK(do_register_ms(forged, "x", NULL, 0, FAIL_MS) < 0);
	CHECK(do_heartbeat_ms(forged, FAIL_MS) < 0);

	/* one caller's long polls: at most 16 at once; the rest are refused at
	 * once (EBUSY), and another caller still gets in */
	enum { NPOLL = 24 };
	pthread_t th[NPOLL];
	struct poll_arg pa[NPOLL];
	for (int i = 0; i < NPOLL; i++) {
		pa[i].c = alice;
		pa[i].rc = 1;
		pthread_create(&th[i], NULL, longpoll, &pa[i]);
	}
	usleep(300 * 1000);
	int64_t t0 = cdl_now_ms();
	CHECK_EQ(do_register(admin, "x", who, sizeof(who)), 0);
	CHECK(cdl_now_ms() - t0 < 1000);
	int ok = 0, busy = 0;
	for (int i = 0; i < NPOLL; i++) {
		pthread_join(th[i], NULL);
		ok += pa[i].rc == 0;
		busy += pa[i].rc == -EBUSY;
	}
	CHECK_EQ(ok, 16);
	CHECK_EQ(busy, NPOLL - 16);

	/* a server that restarts on the same port is reached again by the
	 * clients that knew the old one (a namenode restart) */
	cdl_rpc_server_free(srv, 1000);
	CHECK_EQ(become(cadir, CDL_ROLE_NAMENODE, "127.0.0.1", "127.0.0.1"), 0);
	srv = cdl_rpc_server_new(target, 2);
	CHECK_EQ(cdl_rpc_server_add(srv, &caudal__datanode_protocol__descriptor, table, NULL), 0);
	CHECK_EQ(cdl_rpc_server_start(srv), 0);
	int again = -1;
	for (int i = 0; i < 50 && again != 0; i++) {
		again = do_register(admin, "x", who, sizeof(who));
		if (again)
			usleep(100 * 1000);
	}
	CHECK_EQ(again, 0);

	cdl_rpc_client_free(alice);
	cdl_rpc_client_free(admin);
	cdl_rpc_client_free(forged);
	cdl_rpc_client_free(plain);
	cdl_rpc_server_free(srv, 1000);
	cdl_rpc_global_shutdown();
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK_EQ(system(cmd), 0);
	return TEST_DONE();
}
