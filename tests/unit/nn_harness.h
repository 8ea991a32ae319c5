/* nn_harness: a namenode in a unit test's own process, on the test's
 * temporary RocksDB folder, served over plaintext loopback RPC, with a
 * client of each of its protocols; and the call helper the namenode tests
 * share. Include after test.h (it uses CHECK). */
#ifndef NN_HARNESS_H
#define NN_HARNESS_H

#include <stdio.h>
#include <stdlib.h>

#include "caudal.pb-c.h"
#include "cdl_rpc.h"
#include "nn_ckpt.h"
#include "nn_ns.h"

struct nn_harness {
	nn_ns *ns;
	cdl_rpc_server *srv;
	nn_topology *topo;
	cdl_rpc_client *cl; /* ClientProtocol */
	cdl_rpc_client *dl; /* DatanodeProtocol */
	char addr[32];	    /* "127.0.0.1:PORT" it serves */
};

/* The settings the tests start from: 1 MiB blocks, three replicas, a long
 * lease, safe mode until every block is reported, every commit synced. */
static inline nn_conf nn_harness_conf(const char *dir)
{
	nn_conf c = {.dir = (char *)dir,
		     .block_size = 1 << 20,
		     .replication = 3,
		     .lease_ms = 60000,
		     .heartbeat_ms = 1000,
		     .report_ms = 10000,
		     .dead_ms = 5000,
		     .safemode_pct = 100,
		     .events_keep = 1000,
		     .sync_always = true};
	return c;
}

/* Open c's namespace and serve it (and checkpoints) on port (0: any). */
static inline void nn_harness_start(struct nn_harness *h, const nn_conf *c, int port)
{
	char err[128];
	nn_topology_load(NULL, &h->topo, err, sizeof(err));
	CHECK_EQ(nn_ns_open(c, h->topo, &h->ns), 0);
	snprintf(h->addr, sizeof(h->addr), "127.0.0.1:%d", port);
	h->srv = cdl_rpc_server_new(h->addr, 2);
	CHECK_EQ(nn_ns_register(h->ns, h->srv), 0);
	CHECK_EQ(nn_ckpt_register(h->ns, h->srv), 0);
	CHECK_EQ(cdl_rpc_server_start(h->srv), 0);
	snprintf(h->addr, sizeof(h->addr), "127.0.0.1:%d", cdl_rpc_server_port(h->srv));
	h->cl = cdl_rpc_client_new(h->addr, &caudal__client_protocol__descriptor);
	h->dl = cdl_rpc_client_new(h->addr, &caudal__datanode_protocol__descriptor);
}

static inline void nn_harness_stop(struct nn_harness *h)
{
	cdl_rpc_client_free(h->cl);
	cdl_rpc_client_free(h->dl);
	nn_ns_stop(h->ns);
	cdl_rpc_server_free(h->srv, 1000);
	nn_ns_close(h->ns);
	nn_topology_free(h->topo);
}

/* Call method m through c and return its reply (free it with
 * protobuf_c_message_free_unpacked). A request without a Cred acts as
 * dflt, as the client library fills in its caller's own (the namenode
 * refuses requests that carry none). A transport failure ends the test. */
static inline void *nn_harness_call(cdl_rpc_client *c, const char *m, const void *req,
				    const Caudal__Cred *dflt, int timeout_ms)
{
	ProtobufCMessage *r = NULL;
	const ProtobufCMessage *msg = req;
	const ProtobufCFieldDescriptor *cf =
	    protobuf_c_message_descriptor_get_field_by_name(msg->descriptor, "cred");
	if (cf && !*(Caudal__Cred **)((char *)req + cf->offset))
		*(const Caudal__Cred **)((char *)req + cf->offset) = dflt;
	int rc = cdl_rpc_call_name(c, m, req, &r, timeout_ms);
	if (rc < 0) {
		fprintf(stderr, "rpc %s failed: %d\n", m, rc);
		exit(1);
	}
	return r;
}

#endif
