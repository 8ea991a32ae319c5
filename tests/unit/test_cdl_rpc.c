/* RPC layer: a real server and client on loopback. Covers a round trip,
 * errno in the reply, the handler-table check, an unknown method
 * (UNIMPLEMENTED), a deadline, an absent server, and concurrent callers. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "caudal.pb-c.h"
#include "cdl_log.h"
#include "cdl_rpc.h"
#include "test.h"

static void h_register(void *ctx, const ProtobufCMessage *req, ProtobufCMessage *reply,
		       cdl_arena *a)
{
	const Caudal__RegisterRequest *r = (const void *)req;
	Caudal__RegisterReply *o = (void *)reply;
	(void)ctx;
	/* echo the datanode id back as the cluster id; "slow" sleeps past deadlines */
	const char *id = r->node ? r->node->id : "";
	if (!strcmp(id, "slow"))
		usleep(600 * 1000);
	if (!strcmp(id, "longpoll"))
		usleep(1500 * 1000);
	o->cluster = cdl_arena_strdup(a, id);
	o->heartbeat_ms = r->node ? r->node->data_port * 2 : 0;
	o->err = strcmp(id, "bad") ? 0 : ENOENT;
}

static void h_heartbeat(void *ctx, const ProtobufCMessage *req, ProtobufCMessage *reply,
			cdl_arena *a)
{
	Caudal__HeartbeatReply *o = (void *)reply;
	(void)req;
	(*(int *)ctx)++;
	o->n_commands = 2;
	o->commands = cdl_arena_alloc(a, 2 * sizeof(*o->commands));
	for (int i = 0; i < 2; i++) {
		Caudal__Command *c = cdl_arena_alloc(a, sizeof(*c));
		caudal__command__init(c);
		c->type = CAUDAL__COMMAND_TYPE__CMD_DELETE;
		o->commands[i] = c;
	}
}

static void h_status(void *ctx, const ProtobufCMessage *req, ProtobufCMessage *reply,
		     cdl_arena *a)
{
	(void)ctx, (void)req, (void)reply, (void)a;
}

static int heartbeats;

static const cdl_rpc_method table[] = {
	{"RegisterDatanode", h_register, CDL_RPC_BLOCKING, 0},
	{"Heartbeat", h_heartbeat, 0, 0},
	{"BlockReport", h_status, 0, 0},
	{"BlockReceived", h_status, 0, 0},
	{NULL, NULL, 0, 0},
};

static const cdl_rpc_method missing[] = {
	{"RegisterDatanode", h_register, 0, 0},
	{NULL, NULL, 0, 0},
};

static const cdl_rpc_method extra[] = {
	{"RegisterDatanode", h_register, 0, 0}, {"Heartbeat", h_heartbeat, 0, 0}, {"BlockReport", h_status, 0, 0},
	{"BlockReceived", h_status, 0, 0},      {"Nope", h_status, 0, 0},         {NULL, NULL, 0, 0},
};

static int do_register(cdl_rpc_client *c, const char *id, uint32_t port, int timeout,
		       Caudal__RegisterReply **out)
{
	Caudal__RegisterRequest req = CAUDAL__REGISTER_REQUEST__INIT;
	Caudal__DatanodeInfo node = CAUDAL__DATANODE_INFO__INIT;
	node.id = (char *)id;
	node.data_port = port;
	req.node = &node;
	return cdl_rpc_call_name(c, "RegisterDatanode", &req.base, (ProtobufCMessage **)out,
				 timeout);
}

static void *longpoll(void *arg)
{
	Caudal__RegisterReply *r;
	long rc = do_register(arg, "longpoll", 1, 5000, &r);
	if (rc == 0)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	return (void *)rc;
}

static void *caller(void *arg)
{
	cdl_rpc_client *c = arg;
	long bad = 0;
	for (int i = 0; i < 200; i++) {
		Caudal__RegisterReply *r;
		char id[32];
		snprintf(id, sizeof(id), "n%d", i);
		if (do_register(c, id, (uint32_t)i, 5000, &r) < 0) {
			bad++;
			continue;
		}
		if (strcmp(r->cluster, id) || r->heartbeat_ms != (uint32_t)i * 2)
			bad++;
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	return (void *)bad;
}

int main(void)
{
	cdl_log_init("test", CDL_LOG_WARN);
	cdl_rpc_global_init();

	/* the handler table must match the descriptor exactly */
	cdl_rpc_server *bad = cdl_rpc_server_new("127.0.0.1:0", 1);
	CHECK_EQ(cdl_rpc_server_add(bad, &caudal__datanode_protocol__descriptor, missing, NULL),
		 -EINVAL);
	CHECK_EQ(cdl_rpc_server_add(bad, &caudal__datanode_protocol__descriptor, extra, NULL),
		 -EINVAL);
	cdl_rpc_server_free(bad, 100);

	cdl_rpc_server *s = cdl_rpc_server_new("127.0.0.1:0", 2);
	CHECK(s != NULL);
	CHECK_EQ(cdl_rpc_server_add(s, &caudal__datanode_protocol__descriptor, table, &heartbeats),
		 0);
	CHECK_EQ(cdl_rpc_server_start(s), 0);
	int port = cdl_rpc_server_port(s);
	CHECK(port > 0);
	char target[64];
	snprintf(target, sizeof(target), "127.0.0.1:%d", port);

	cdl_rpc_client *c = cdl_rpc_client_new(target, &caudal__datanode_protocol__descriptor);
	Caudal__RegisterReply *r = NULL;
	CHECK_EQ(do_register(c, "dn-1", 21, 5000, &r), 0);
	if (r) {
		CHECK(!strcmp(r->cluster, "dn-1"));
		CHECK_EQ(r->heartbeat_ms, 42);
		CHECK_EQ(r->err, 0);
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	/* a filesystem error travels in the reply, not as a transport error */
	CHECK_EQ(do_register(c, "bad", 1, 5000, &r), 0);
	if (r) {
		CHECK_EQ(r->err, ENOENT);
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	/* nested repeated messages built in the arena */
	Caudal__HeartbeatRequest hb = CAUDAL__HEARTBEAT_REQUEST__INIT;
	Caudal__HeartbeatReply *hr = NULL;
	CHECK_EQ(cdl_rpc_call_name(c, "Heartbeat", &hb.base, (ProtobufCMessage **)&hr, 5000), 0);
	if (hr) {
		CHECK_EQ(hr->n_commands, 2);
		CHECK_EQ(hr->commands[1]->type, CAUDAL__COMMAND_TYPE__CMD_DELETE);
		protobuf_c_message_free_unpacked(&hr->base, NULL);
	}
	CHECK_EQ(heartbeats, 1);

	/* a deadline shorter than the handler */
	int64_t t0 = cdl_now_ms();
	CHECK_EQ(do_register(c, "slow", 1, 150, &r), -ETIMEDOUT);
	CHECK(cdl_now_ms() - t0 < 550);
	CHECK(r == NULL);

	/* a method the server does not serve */
	cdl_rpc_client *other = cdl_rpc_client_new(target, &caudal__client_protocol__descriptor);
	Caudal__Empty e = CAUDAL__EMPTY__INIT;
	ProtobufCMessage *sr = NULL;
	CHECK_EQ(cdl_rpc_call_name(other, "Statfs", &e.base, &sr, 2000), -ENOSYS);
	CHECK_EQ(cdl_rpc_call_name(other, "NoSuchMethod", &e.base, &sr, 2000), -ENOSYS);
	/* a request of the wrong type is refused before it is sent */
	CHECK_EQ(cdl_rpc_call_name(other, "GetAttr", &e.base, &sr, 2000), -EINVAL);
	cdl_rpc_client_free(other);

	/* a blocking handler (a long poll) does not hold up other calls: each of
	 * several quick calls made meanwhile returns fast (without the flag the
	 * call lands on the blocked worker's queue and waits ~1.4 s) */
	cdl_rpc_client *other_ch = cdl_rpc_client_new(target, &caudal__datanode_protocol__descriptor);
	pthread_t lp;
	pthread_create(&lp, NULL, longpoll, other_ch);
	usleep(100 * 1000);
	int64_t worst = 0;
	for (int i = 0; i < 20; i++) {
		int64_t t1 = cdl_now_ms();
		CHECK_EQ(cdl_rpc_call_name(c, "Heartbeat", &hb.base, (ProtobufCMessage **)&hr,
					   5000),
			 0);
		if (hr)
			protobuf_c_message_free_unpacked(&hr->base, NULL);
		if (cdl_now_ms() - t1 > worst)
			worst = cdl_now_ms() - t1;
	}
	if (worst >= 500)
		fprintf(stderr, "slowest call beside a long poll: %lld ms\n", (long long)worst);
	CHECK(worst < 500);
	void *lprc;
	pthread_join(lp, &lprc);
	CHECK_EQ((long)lprc, 0);
	cdl_rpc_client_free(other_ch);

	/* concurrent callers on one channel */
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, caller, c);
	long errs = 0;
	for (int i = 0; i < 4; i++) {
		void *ret;
		pthread_join(th[i], &ret);
		errs += (long)ret;
	}
	CHECK_EQ(errs, 0);
	cdl_rpc_client_free(c);
	cdl_rpc_server_free(s, 1000);

	/* nobody listening: fails fast, not at the deadline */
	cdl_rpc_client *gone = cdl_rpc_client_new(target, &caudal__datanode_protocol__descriptor);
	t0 = cdl_now_ms();
	int rc = do_register(gone, "x", 1, 3000, &r);
	CHECK(rc == -EHOSTUNREACH || rc == -ETIMEDOUT);
	CHECK(cdl_now_ms() - t0 < 2900);
	cdl_rpc_client_free(gone);

	cdl_rpc_global_shutdown();
	return TEST_DONE();
}
