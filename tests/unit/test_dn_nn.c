/* Unit test of the datanode's DatanodeProtocol client (dn_nn) against a
 * fake namenode served in-process with cdl_rpc: registration with the
 * node's figures and cluster id, the full block report, heartbeats,
 * incremental reports (received, deleted, corrupt) within a short delay,
 * the commands (delete, replicate through a real data-transfer server,
 * re-register, report), and re-registration after a namenode restart.
 * The fake namenode also hands out block-token keys: they reach the
 * datanode's keyring with the registration and are replaced by a
 * heartbeat's; a replication command is carried out only with its copy
 * token, which the receiving datanode checks.
 * Exits non-zero on any failure. */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cdl_checksum.h"
#include "cdl_log.h"
#include "cdl_rpc.h"
#include "cdl_util.h"
#include "dn_nn.h"
#include "dn_store.h"
#include "dn_xfer.h"

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

/* ---- the fake namenode */

static struct fake {
	pthread_mutex_t mu;
	int registers, heartbeats, reports;
	char id[80], host[64], cluster_sent[64];
	uint32_t port;
	uint64_t capacity;
	size_t last_report_n;
	bool report_has[16]; /* block ids 0..15 seen in the last full report */
	int received[16], deleted[16], corrupt[16];
	uint64_t received_gen[16], received_len[16], deleted_gen[16];
	int64_t received_at_ms[16];
	/* the next heartbeat reply carries this command */
	int cmd; /* CommandType, 0 = none */
	uint64_t cmd_block, cmd_gen, cmd_new_gen;
	char tgt_host[64], tgt_id[80];
	uint32_t tgt_port;
	bool refuse_unknown; /* answer CMD_REREGISTER to heartbeats */
	cdl_keyring *kr;     /* the namenode's block-token keys, sent in every reply */
	bool cmd_token;	     /* the CMD_REPLICATE carries a copy token */
} fk = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* The fake namenode's keys into a reply, as nn_token_keys does. */
static Caudal__BlockKey **fake_keys(cdl_arena *a, size_t *n)
{
	int64_t now = cdl_token_now_ms();
	(void)cdl_keyring_roll(fk.kr, now, 3600000, 600000);
	return cdl_keyring_export(fk.kr, a, now, n);
}

static void h_register(void *ctx, const ProtobufCMessage *req, ProtobufCMessage *reply,
		       cdl_arena *a)
{
	(void)ctx;
	const Caudal__RegisterRequest *r = (const Caudal__RegisterRequest *)req;
	Caudal__RegisterReply *rep = (Caudal__RegisterReply *)reply;
	pthread_mutex_lock(&fk.mu);
	fk.registers++;
	fk.refuse_unknown = false;
	if (r->node) {
		snprintf(fk.id, sizeof(fk.id), "%s", r->node->id);
		snprintf(fk.host, sizeof(fk.host), "%s", r->node->host);
		fk.port = r->node->data_port;
		fk.capacity = r->node->capacity;
	}
	snprintf(fk.cluster_sent, sizeof(fk.cluster_sent), "%s", r->cluster);
	pthread_mutex_unlock(&fk.mu);
	rep->cluster = cdl_arena_strdup(a, "cluster-1");
	rep->heartbeat_ms = 100;
	rep->report_ms = 600000;
	pthread_mutex_lock(&fk.mu);
	rep->keys = fake_keys(a, &rep->n_keys);
	pthread_mutex_unlock(&fk.mu);
}

static void h_heartbeat(void *ctx, const ProtobufCMessage *req, ProtobufCMessage *reply,
			cdl_arena *a)
{
	(void)ctx;
	(void)req;
	Caudal__HeartbeatReply *rep = (Caudal__HeartbeatReply *)reply;
	pthread_mutex_lock(&fk.mu);
	fk.heartbeats++;
	int type = fk.refuse_unknown ? CAUDAL__COMMAND_TYPE__CMD_REREGISTER : fk.cmd;
	if (type) {
		Caudal__Command *c = cdl_arena_alloc(a, sizeof(*c));
		caudal__command__init(c);
		c->type = (Caudal__CommandType)type;
		Caudal__Replica *b = cdl_arena_alloc(a, sizeof(*b));
		caudal__replica__init(b);
		b->id = fk.cmd_block;
		b->gen = fk.cmd_gen;
		if (type == CAUDAL__COMMAND_TYPE__CMD_DELETE) {
			c->n_blocks = 1;
			c->blocks = cdl_arena_alloc(a, sizeof(*c->blocks));
			c->blocks[0] = b;
		} else if (type == CAUDAL__COMMAND_TYPE__CMD_RECOVER) {
			c->block = b;
			c->new_gen = fk.cmd_new_gen;
		} else if (type == CAUDAL__COMMAND_TYPE__CMD_REPLICATE) {
			c->block = b;
			Caudal__DatanodeInfo *t = cdl_arena_alloc(a, sizeof(*t));
			caudal__datanode_info__init(t);
			t->host = cdl_arena_strdup(a, fk.tgt_host);
			t->id = cdl_arena_strdup(a, fk.tgt_id);
			t->data_port = fk.tgt_port;
			c->n_targets = 1;
			c->targets = cdl_arena_alloc(a, sizeof(*c->targets));
			c->targets[0] = t;
			if (fk.cmd_token) {
				Caudal__DtTarget dt = CAUDAL__DT_TARGET__INIT;
				dt.host = t->host;
				dt.port = t->data_port;
				dt.id = t->id;
				const Caudal__DtTarget *nodes[1] = {&dt};
				cdl_token_spec spec = {.block = b->id,
						       .gen = b->gen,
						       .modes = CDL_TOKEN_COPY,
						       .max_length = 1 << 20,
						       .nodes = nodes,
						       .nnodes = 1,
						       .lifetime_ms = 600000};
				ProtobufCBinaryData tok;
				if (cdl_token_sign(fk.kr, &spec, cdl_token_now_ms(), &tok) == 0) {
					c->token.data = cdl_arena_alloc(a, tok.len);
					memcpy(c->token.data, tok.data, tok.len);
					c->token.len = tok.len;
					free(tok.data);
				}
			}
		}
		rep->n_commands = 1;
		rep->commands = cdl_arena_alloc(a, sizeof(*rep->commands));
		rep->commands[0] = c;
		fk.cmd = 0;
	}
	if (!fk.refuse_unknown)
		rep->keys = fake_keys(a, &rep->n_keys);
	pthread_mutex_unlock(&fk.mu);
}

static void h_report(void *ctx, const ProtobufCMessage *req, ProtobufCMessage *reply, cdl_arena *a)
{
	(void)ctx;
	(void)reply;
	(void)a;
	const Caudal__BlockReportRequest *r = (const Caudal__BlockReportRequest *)req;
	pthread_mutex_lock(&fk.mu);
	fk.reports++;
	fk.last_report_n = r->n_replicas;
	memset(fk.report_has, 0, sizeof(fk.report_has));
	for (size_t i = 0; i < r->n_replicas; i++)
		if (r->replicas[i]->id < 16)
			fk.report_has[r->replicas[i]->id] = true;
	pthread_mutex_unlock(&fk.mu);
}

static void h_received(void *ctx, const ProtobufCMessage *req, ProtobufCMessage *reply,
		       cdl_arena *a)
{
	(void)ctx;
	(void)reply;
	(void)a;
	const Caudal__BlockReceivedRequest *r = (const Caudal__BlockReceivedRequest *)req;
	pthread_mutex_lock(&fk.mu);
	for (size_t i = 0; i < r->n_received; i++)
		if (r->received[i]->id < 16) {
			fk.received[r->received[i]->id]++;
			fk.received_gen[r->received[i]->id] = r->received[i]->gen;
			fk.received_len[r->received[i]->id] = r->received[i]->length;
			fk.received_at_ms[r->received[i]->id] = cdl_now_ms();
		}
	for (size_t i = 0; i < r->n_deleted; i++)
		if (r->deleted[i]->id < 16) {
			fk.deleted[r->deleted[i]->id]++;
			fk.deleted_gen[r->deleted[i]->id] = r->deleted[i]->gen;
		}
	for (size_t i = 0; i < r->n_corrupt; i++)
		if (r->corrupt[i]->id < 16)
			fk.corrupt[r->corrupt[i]->id]++;
	pthread_mutex_unlock(&fk.mu);
}

static const cdl_rpc_method nn_methods[] = {
    {"RegisterDatanode", h_register, 0, 0},
    {"Heartbeat", h_heartbeat, 0, 0},
    {"BlockReport", h_report, 0, 0},
    {"BlockReceived", h_received, 0, 0},
    {NULL, NULL, 0, 0},
};

static cdl_rpc_server *fake_start(int port)
{
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	cdl_rpc_server *srv = cdl_rpc_server_new(addr, 1);
	if (!srv ||
	    cdl_rpc_server_add(srv, &caudal__datanode_protocol__descriptor, nn_methods, NULL) ||
	    cdl_rpc_server_start(srv)) {
		fprintf(stderr, "FAIL cannot start the fake namenode on '%s'\n", addr);
		exit(1);
	}
	return srv;
}

/* Wait up to ms for *field (under fk.mu) to reach at least want. */
static bool wait_for(int *field, int want, int ms)
{
	int64_t end = cdl_now_ms() + ms;
	for (;;) {
		pthread_mutex_lock(&fk.mu);
		int v = *field;
		pthread_mutex_unlock(&fk.mu);
		if (v >= want)
			return true;
		if (cdl_now_ms() > end)
			return false;
		usleep(10 * 1000);
	}
}

static int get(int *field)
{
	pthread_mutex_lock(&fk.mu);
	int v = *field;
	pthread_mutex_unlock(&fk.mu);
	return v;
}

static int put(dn_store *s, uint64_t id, const uint8_t *d, size_t len)
{
	dn_wr *w;
	int rc = dn_store_create(s, id, 1, &w);
	if (rc < 0)
		return rc;
	rc = dn_wr_append(w, d, len, cdl_xxh3(d, len));
	if (rc < 0) {
		dn_wr_abandon(w);
		return rc;
	}
	return dn_wr_finalize(w, false);
}

/* Sets the next heartbeat's command to CMD_RECOVER of block id. */
static void cmd_recover(uint64_t id, uint64_t gen, uint64_t new_gen)
{
	pthread_mutex_lock(&fk.mu);
	fk.cmd = CAUDAL__COMMAND_TYPE__CMD_RECOVER;
	fk.cmd_block = id;
	fk.cmd_gen = gen;
	fk.cmd_new_gen = new_gen;
	pthread_mutex_unlock(&fk.mu);
}

static void *park_main(void *arg)
{
	return dn_wr_park(arg, 10000, NULL, NULL) ? arg : NULL;
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p);
}

int main(void)
{
	cdl_log_init("test", CDL_LOG_ERROR);
	signal(SIGPIPE, SIG_IGN);
	cdl_rpc_global_init();
	const char *tmp = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char root[512];
	snprintf(root, sizeof(root), "%s/test_dn_nn.XXXXXX", tmp);
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}
	char *d1 = xasprintf("%s/dn1", root), *d2 = xasprintf("%s/dn2", root);
	dn_store *s = NULL, *s2 = NULL;
	dn_xfer *x = NULL, *x2 = NULL;
	if (dn_store_open(d1, &s) || dn_store_open(d2, &s2)) {
		fprintf(stderr, "FAIL cannot open stores\n");
		return 1;
	}
	uint8_t data[3000];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7);
	CHECK(put(s, 1, data, 1000) == 0 && put(s, 2, data, 3000) == 0, "seed replicas");
	/* both servers check tokens: the first with the keys dn_nn receives,
	 * the second with a copy of the fake namenode's */
	fk.kr = cdl_keyring_new();
	cdl_keyring *kr1 = cdl_keyring_new(), *kr2 = cdl_keyring_new();
	{
		cdl_arena a;
		cdl_arena_init(&a);
		size_t n;
		Caudal__BlockKey **k = fake_keys(&a, &n);
		cdl_keyring_set(kr2, k, n);
		cdl_arena_release(&a);
	}
	dn_xfer_opts xo = {
	    .host = "127.0.0.1", .port = 0, .max_xceivers = 16, .io_timeout_ms = 5000, .keys = kr1};
	dn_xfer_opts xo2 = xo;
	xo2.keys = kr2;
	CHECK(dn_xfer_start(s, &xo, &x) == 0 && dn_xfer_start(s2, &xo2, &x2) == 0, "xfer servers");

	cdl_rpc_server *srv = fake_start(0);
	int nn_port = cdl_rpc_server_port(srv);
	char *nn_addr = xasprintf("127.0.0.1:%d", nn_port);
	dn_nn_opts o = {.namenode = nn_addr,
			.host = "127.0.0.1",
			.data_port = dn_xfer_port(x),
			.heartbeat_ms = 3000, /* the namenode asks for 100 */
			.report_ms = 600000,
			.rpc_timeout_ms = 2000,
			.io_timeout_ms = 5000,
			.keys = kr1};
	dn_nn *nn = NULL;
	CHECK(dn_nn_start(s, x, &o, &nn) == 0, "start dn_nn");
	dn_store_set_listener(s, dn_nn_listener, nn);

	/* registration and the first full report */
	CHECK(wait_for(&fk.registers, 1, 5000), "no registration");
	CHECK(wait_for(&fk.reports, 1, 5000), "no block report");
	pthread_mutex_lock(&fk.mu);
	CHECK(!strcmp(fk.id, dn_store_id(s)) && !strcmp(fk.host, "127.0.0.1") &&
		  fk.port == (uint32_t)dn_xfer_port(x) && fk.capacity > 0,
	      "register fields: id '%s' host '%s' port %u", fk.id, fk.host, fk.port);
	CHECK(!strcmp(fk.cluster_sent, ""), "first contact sent cluster '%s'", fk.cluster_sent);
	CHECK(fk.last_report_n == 2 && fk.report_has[1] && fk.report_has[2], "report of %zu",
	      fk.last_report_n);
	pthread_mutex_unlock(&fk.mu);
	CHECK(dn_nn_registered(nn), "not registered");
	CHECK(!strcmp(dn_store_cluster(s), "cluster-1"), "cluster id not kept");
	CHECK(cdl_keyring_count(kr1) == 2, "%zu block-token keys after registering",
	      cdl_keyring_count(kr1));

	/* heartbeats at the interval the namenode asked for */
	int hb0 = get(&fk.heartbeats);
	usleep(1000 * 1000);
	int hbs = get(&fk.heartbeats) - hb0;
	CHECK(hbs >= 5 && hbs <= 15, "%d heartbeats in a second at 100 ms", hbs);

	/* incremental report of a new replica, promptly */
	int64_t t0 = cdl_now_ms();
	CHECK(put(s, 3, data, 500) == 0, "put block 3");
	CHECK(wait_for(&fk.received[3], 1, 2000), "block 3 not reported received");
	pthread_mutex_lock(&fk.mu);
	int64_t lag = fk.received_at_ms[3] - t0;
	pthread_mutex_unlock(&fk.mu);
	CHECK(lag < 200, "received report took %" PRId64 " ms", lag);

	/* a corrupt replica is reported */
	CHECK(dn_store_mark_corrupt(s, 2, 1, "test") == 0, "mark corrupt");
	CHECK(wait_for(&fk.corrupt[2], 1, 2000), "corrupt replica not reported");

	/* CMD_DELETE */
	pthread_mutex_lock(&fk.mu);
	fk.cmd = CAUDAL__COMMAND_TYPE__CMD_DELETE;
	fk.cmd_block = 1;
	fk.cmd_gen = 1;
	pthread_mutex_unlock(&fk.mu);
	CHECK(wait_for(&fk.deleted[1], 1, 3000), "delete not reported");
	CHECK(!dn_store_has(s, 1, 1, NULL), "deleted replica still held");

	/* CMD_REPLICATE to the second datanode: refused there without a
	 * token, carried out with the command's copy token */
	pthread_mutex_lock(&fk.mu);
	fk.cmd = CAUDAL__COMMAND_TYPE__CMD_REPLICATE;
	fk.cmd_block = 3;
	fk.cmd_gen = 1;
	fk.cmd_token = false;
	snprintf(fk.tgt_host, sizeof(fk.tgt_host), "127.0.0.1");
	snprintf(fk.tgt_id, sizeof(fk.tgt_id), "%s", dn_store_id(s2));
	fk.tgt_port = (uint32_t)dn_xfer_port(x2);
	pthread_mutex_unlock(&fk.mu);
	usleep(800 * 1000);
	CHECK(!dn_store_has(s2, 3, 1, NULL), "a copy without a token was taken");
	pthread_mutex_lock(&fk.mu);
	fk.cmd = CAUDAL__COMMAND_TYPE__CMD_REPLICATE;
	fk.cmd_token = true;
	pthread_mutex_unlock(&fk.mu);
	bool copied = false;
	for (int i = 0; i < 300 && !copied; i++) {
		copied = dn_store_has(s2, 3, 1, NULL);
		usleep(10 * 1000);
	}
	CHECK(copied, "replication command not carried out");

	/* the namenode's keys change (as after its restart): the next
	 * heartbeat replaces the datanode's */
	{
		pthread_mutex_lock(&fk.mu);
		cdl_keyring *old = fk.kr;
		fk.kr = cdl_keyring_new();
		cdl_arena a;
		cdl_arena_init(&a);
		size_t n;
		Caudal__BlockKey **k = fake_keys(&a, &n);
		pthread_mutex_unlock(&fk.mu);
		uint32_t want = n ? k[0]->id : 0;
		bool replaced = false;
		for (int i = 0; i < 300 && !replaced; i++) {
			cdl_arena b;
			cdl_arena_init(&b);
			size_t m;
			Caudal__BlockKey **held =
			    cdl_keyring_export(kr1, &b, cdl_token_now_ms(), &m);
			replaced = m == n && m && held[0]->id == want;
			cdl_arena_release(&b);
			if (!replaced)
				usleep(10 * 1000);
		}
		CHECK(replaced, "the heartbeat's keys did not replace the old ones");
		cdl_arena_release(&a);
		cdl_keyring_free(old);
	}

	/* CMD_RECOVER (lease recovery): a finalized replica moves to the new
	 * stamp at its length and is reported received under it */
	cmd_recover(3, 1, 2);
	CHECK(wait_for(&fk.received[3], 2, 3000), "recovered block 3 not reported");
	pthread_mutex_lock(&fk.mu);
	CHECK(fk.received_gen[3] == 2 && fk.received_len[3] == 500,
	      "block 3 reported as gen %" PRIu64 ", %" PRIu64 " bytes", fk.received_gen[3],
	      fk.received_len[3]);
	pthread_mutex_unlock(&fk.mu);
	uint64_t rlen = 0;
	CHECK(dn_store_has(s, 3, 2, &rlen) && rlen == 500, "block 3 not held under gen 2");
	/* a replica still being written (its writer gone, parked) is taken
	 * over, finalized at what it holds and synced */
	{
		dn_wr *w;
		CHECK(dn_store_create(s, 5, 1, &w) == 0, "create block 5");
		CHECK(dn_wr_append(w, data, 700, cdl_xxh3(data, 700)) == 0, "append block 5");
		pthread_t pt;
		pthread_create(&pt, NULL, park_main, w);
		cmd_recover(5, 1, 3);
		CHECK(wait_for(&fk.received[5], 1, 8000), "recovered block 5 not reported");
		void *taken = NULL;
		pthread_join(pt, &taken);
		CHECK(taken != NULL, "the parked replica was not taken over");
		pthread_mutex_lock(&fk.mu);
		CHECK(fk.received_gen[5] == 3 && fk.received_len[5] == 700,
		      "block 5 reported as gen %" PRIu64 ", %" PRIu64 " bytes", fk.received_gen[5],
		      fk.received_len[5]);
		pthread_mutex_unlock(&fk.mu);
		CHECK(dn_store_has(s, 5, 3, &rlen) && rlen == 700, "block 5 not held under gen 3");
	}
	/* nothing to recover (no replica, or a stamp not newer): a deleted
	 * report under the new stamp says so, nothing changes */
	cmd_recover(9, 1, 4);
	CHECK(wait_for(&fk.deleted[9], 1, 3000), "no answer for a missing replica");
	pthread_mutex_lock(&fk.mu);
	CHECK(fk.deleted_gen[9] == 4, "refusal under gen %" PRIu64, fk.deleted_gen[9]);
	pthread_mutex_unlock(&fk.mu);
	int dels = get(&fk.deleted[3]), recvs = get(&fk.received[3]);
	cmd_recover(3, 1, 2); /* gen 2 is held: not below the new stamp */
	CHECK(wait_for(&fk.deleted[3], dels + 1, 3000), "no answer for a stale recovery");
	CHECK(get(&fk.received[3]) == recvs && dn_store_has(s, 3, 2, NULL),
	      "a recovery to the stamp held changed block 3");

	/* CMD_REREGISTER: register again and send a full report */
	int reg0 = get(&fk.registers), rep0 = get(&fk.reports);
	pthread_mutex_lock(&fk.mu);
	fk.refuse_unknown = true;
	pthread_mutex_unlock(&fk.mu);
	CHECK(wait_for(&fk.registers, reg0 + 1, 3000), "no re-registration");
	CHECK(wait_for(&fk.reports, rep0 + 1, 3000), "no report after re-registration");
	pthread_mutex_lock(&fk.mu);
	CHECK(!strcmp(fk.cluster_sent, "cluster-1"), "re-registration sent cluster '%s'",
	      fk.cluster_sent);
	CHECK(fk.report_has[3] && !fk.report_has[1] && !fk.report_has[2],
	      "report after delete/corrupt is wrong");
	pthread_mutex_unlock(&fk.mu);

	/* CMD_REPORT */
	rep0 = get(&fk.reports);
	pthread_mutex_lock(&fk.mu);
	fk.cmd = CAUDAL__COMMAND_TYPE__CMD_REPORT;
	pthread_mutex_unlock(&fk.mu);
	CHECK(wait_for(&fk.reports, rep0 + 1, 3000), "CMD_REPORT ignored");

	/* the namenode restarts on the same port: register and report again */
	cdl_rpc_server_free(srv, 100);
	usleep(500 * 1000);
	reg0 = get(&fk.registers);
	rep0 = get(&fk.reports);
	srv = fake_start(nn_port);
	CHECK(wait_for(&fk.registers, reg0 + 1, 8000), "no registration after namenode restart");
	CHECK(wait_for(&fk.reports, rep0 + 1, 8000), "no report after namenode restart");
	/* news while the namenode was away still arrives */
	CHECK(put(s, 4, data, 10) == 0, "put block 4");
	CHECK(wait_for(&fk.received[4], 1, 3000), "block 4 not reported");

	dn_store_set_listener(s, NULL, NULL);
	dn_nn_stop(nn);
	cdl_rpc_server_free(srv, 100);
	dn_xfer_stop(x);
	dn_xfer_stop(x2);
	dn_store_free(s);
	dn_store_free(s2);
	cdl_keyring_free(kr1);
	cdl_keyring_free(kr2);
	cdl_keyring_free(fk.kr);
	cdl_rpc_global_shutdown();
	nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(nn_addr);
	free(d1);
	free(d2);
	if (failures) {
		fprintf(stderr, "test_dn_nn: %d checks failed\n", failures);
		return 1;
	}
	printf("test_dn_nn: ok\n");
	return 0;
}
