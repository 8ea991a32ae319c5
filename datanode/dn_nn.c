/* dn_nn: the datanode's side of DatanodeProtocol. See dn_nn.h. */
#include "dn_nn.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cdl_dt.h"
#include "cdl_log.h"
#include "cdl_rpc.h"
#include "cdl_util.h"
#include "dn_scan.h"

/* DatanodeProtocol methods in .proto order; checked at start. */
enum { M_REGISTER, M_HEARTBEAT, M_BLOCK_REPORT, M_BLOCK_RECEIVED, M_COUNT };
static const char *const method_names[M_COUNT] = {"RegisterDatanode", "Heartbeat", "BlockReport",
						  "BlockReceived"};

/* Wait between attempts while the namenode cannot be reached. */
#define RETRY_MS 1000
/* Replication commands waiting for the worker; more are dropped (the
 * namenode asks again). */
#define MAX_PENDING_COPIES 256
/* Longest wait, in a lease recovery, for the replica's writer to let go. */
#define RECOVER_WAIT_MS 5000

/* A command for the worker: a copy (CMD_REPLICATE), or with new_gen set a
 * lease recovery (CMD_RECOVER), queued ahead of the copies. */
typedef struct copy_cmd {
	uint64_t id, gen;
	uint64_t new_gen;
	size_t n;
	Caudal__DtTarget *targets;
	ProtobufCBinaryData token; /* the command's copy token (malloc'd) */
	struct copy_cmd *next;
} copy_cmd;

typedef struct replist {
	Caudal__Replica *v;
	size_t n, cap;
} replist;

struct dn_nn {
	dn_store *s;
	dn_xfer *x;
	cdl_keyring *keys; /* replaced by every reply that carries keys */
	cdl_rpc_client *rpc;
	char *host;
	int data_port;
	int http_port;
	int conf_hb_ms, conf_report_ms;
	int hb_ms, report_ms, rpc_timeout_ms, io_timeout_ms;
	pthread_t hb_thr, ibr_thr, cmd_thr;

	pthread_mutex_t mu; /* guards everything below */
	pthread_cond_t hb_cv, ibr_cv, cmd_cv;
	bool stop;
	bool registered;
	bool report_now;
	bool lost_logged;	/* "lost contact" already said */
	replist recv, del, bad; /* for the next BlockReceived */
	copy_cmd *copies, *copies_tail;
	size_t ncopies;
};

/* ---------------------------------------------------------------- helpers */

static void wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ms)
{
	if (ms <= 0)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(cv, mu, &ts);
}

static void replist_add(replist *l, uint64_t id, uint64_t gen, uint64_t len)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	Caudal__Replica r = CAUDAL__REPLICA__INIT;
	r.id = id;
	r.gen = gen;
	r.length = len;
	l->v[l->n++] = r;
}

/* Put items that could not be sent back in front of newer ones. */
static void replist_requeue(replist *l, replist *old)
{
	for (size_t i = 0; i < l->n; i++)
		replist_add(old, l->v[i].id, l->v[i].gen, l->v[i].length);
	free(l->v);
	*l = *old;
	*old = (replist){0};
}

static Caudal__Replica **replist_ptrs(replist *l)
{
	Caudal__Replica **p = xmalloc((l->n + 1) * sizeof(*p));
	for (size_t i = 0; i < l->n; i++)
		p[i] = &l->v[i];
	return p;
}

static void fill_info(dn_nn *n, Caudal__DatanodeInfo *info)
{
	dn_usage u = {0};
	(void)dn_store_usage(n->s, &u);
	info->id = (char *)dn_store_id(n->s);
	info->host = n->host;
	info->data_port = (uint32_t)n->data_port;
	info->http_port = (uint32_t)n->http_port;
	info->capacity = u.capacity;
	info->used = u.used;
	info->remaining = u.remaining;
	info->blocks = u.blocks;
	info->xceivers = n->x ? dn_xfer_active(n->x) : 0;
}

/* A transport failure: say so once per outage and register again. */
static void lost(dn_nn *n, const char *what, int rc)
{
	pthread_mutex_lock(&n->mu);
	bool say = !n->lost_logged;
	n->lost_logged = true;
	n->registered = false;
	pthread_mutex_unlock(&n->mu);
	if (say)
		cdl_warn("lost contact with namenode '%s' (%s): %s", cdl_rpc_client_target(n->rpc),
			 what, strerror(-rc));
}

/* Install the namenode's block-token keys (none in a reply: keep ours). */
static void take_keys(dn_nn *n, Caudal__BlockKey *const *keys, size_t nkeys)
{
	if (!n->keys || nkeys == 0)
		return;
	size_t had = cdl_keyring_count(n->keys);
	size_t kept = cdl_keyring_set(n->keys, keys, nkeys);
	if (had == 0 || kept == 0)
		cdl_info("block-token keys from the namenode: %zu", kept);
}

/* ---------------------------------------------------------------- calls */

static int do_register(dn_nn *n)
{
	Caudal__RegisterRequest req = CAUDAL__REGISTER_REQUEST__INIT;
	Caudal__DatanodeInfo info = CAUDAL__DATANODE_INFO__INIT;
	fill_info(n, &info);
	req.node = &info;
	req.cluster = (char *)dn_store_cluster(n->s);
	ProtobufCMessage *m = NULL;
	int rc = cdl_rpc_call(n->rpc, M_REGISTER, &req.base, &m, n->rpc_timeout_ms);
	if (rc < 0) {
		lost(n, "register", rc);
		return rc;
	}
	Caudal__RegisterReply *rep = (Caudal__RegisterReply *)m;
	if (rep->err) {
		rc = -(int)rep->err;
		if (rep->err == EINVAL)
			cdl_err(
			    "namenode '%s' refused registration: data dir '%s' belongs to cluster "
			    "'%s', the namenode's is '%s'",
			    cdl_rpc_client_target(n->rpc), dn_store_dir(n->s), req.cluster,
			    rep->cluster ? rep->cluster : "");
		else
			cdl_warn("namenode '%s' refused registration: %s",
				 cdl_rpc_client_target(n->rpc), strerror(-rc));
		protobuf_c_message_free_unpacked(m, NULL);
		return rc;
	}
	if (!*dn_store_cluster(n->s) && rep->cluster && *rep->cluster)
		(void)dn_store_set_cluster(n->s, rep->cluster);
	take_keys(n, rep->keys, rep->n_keys);
	/* Never slower than either side asks. */
	n->hb_ms = n->conf_hb_ms;
	if (rep->heartbeat_ms && (int)rep->heartbeat_ms < n->hb_ms)
		n->hb_ms = (int)rep->heartbeat_ms;
	n->report_ms = n->conf_report_ms;
	if (rep->report_ms && (int)rep->report_ms < n->report_ms)
		n->report_ms = (int)rep->report_ms;
	protobuf_c_message_free_unpacked(m, NULL);
	pthread_mutex_lock(&n->mu);
	n->registered = true;
	n->lost_logged = false;
	pthread_cond_broadcast(&n->ibr_cv);
	pthread_mutex_unlock(&n->mu);
	cdl_info("registered with namenode '%s' as '%s' (%s:%d)", cdl_rpc_client_target(n->rpc),
		 dn_store_id(n->s), n->host, n->data_port);
	return 0;
}

static int do_block_report(dn_nn *n)
{
	dn_replica_info *v;
	size_t cnt = dn_store_list(n->s, &v);
	Caudal__Replica *reps = xmalloc((cnt + 1) * sizeof(*reps));
	Caudal__Replica **ptrs = xmalloc((cnt + 1) * sizeof(*ptrs));
	for (size_t i = 0; i < cnt; i++) {
		Caudal__Replica r = CAUDAL__REPLICA__INIT;
		r.id = v[i].id;
		r.gen = v[i].gen;
		r.length = v[i].len;
		reps[i] = r;
		ptrs[i] = &reps[i];
	}
	free(v);
	Caudal__BlockReportRequest req = CAUDAL__BLOCK_REPORT_REQUEST__INIT;
	req.id = (char *)dn_store_id(n->s);
	req.n_replicas = cnt;
	req.replicas = ptrs;
	ProtobufCMessage *m = NULL;
	int rc = cdl_rpc_call(n->rpc, M_BLOCK_REPORT, &req.base, &m, n->rpc_timeout_ms);
	free(ptrs);
	free(reps);
	if (rc < 0) {
		lost(n, "block report", rc);
		return rc;
	}
	uint32_t err = ((Caudal__Status *)m)->err;
	protobuf_c_message_free_unpacked(m, NULL);
	if (err) {
		cdl_warn("namenode refused the block report: %s; registering again",
			 strerror((int)err));
		pthread_mutex_lock(&n->mu);
		n->registered = false;
		pthread_mutex_unlock(&n->mu);
		return -(int)err;
	}
	cdl_debug("block report sent: %zu replicas", cnt);
	return 0;
}

static void queue_copy(dn_nn *n, const Caudal__Command *c)
{
	if (!c->block || c->n_targets == 0 || c->n_targets > CDL_DT_MAX_TARGETS + 1)
		return;
	copy_cmd *k = xcalloc(1, sizeof(*k));
	k->id = c->block->id;
	k->gen = c->block->gen;
	k->n = c->n_targets;
	if (c->token.len && c->token.len <= CDL_TOKEN_MAX) {
		k->token.data = xmalloc(c->token.len);
		memcpy(k->token.data, c->token.data, c->token.len);
		k->token.len = c->token.len;
	}
	k->targets = xcalloc(k->n, sizeof(*k->targets));
	for (size_t i = 0; i < k->n; i++) {
		Caudal__DtTarget t = CAUDAL__DT_TARGET__INIT;
		t.host = xstrdup(c->targets[i]->host ? c->targets[i]->host : "");
		t.port = c->targets[i]->data_port;
		t.id = xstrdup(c->targets[i]->id ? c->targets[i]->id : "");
		k->targets[i] = t;
	}
	pthread_mutex_lock(&n->mu);
	bool dup = false;
	for (copy_cmd *o = n->copies; o; o = o->next)
		if (!o->new_gen && o->id == k->id && !strcmp(o->targets[0].id, k->targets[0].id))
			dup = true;
	if (dup || n->ncopies >= MAX_PENDING_COPIES) {
		pthread_mutex_unlock(&n->mu);
		if (!dup)
			cdl_warn("dropping replication of block %" PRIu64 ": %d copies queued",
				 k->id, MAX_PENDING_COPIES);
		for (size_t i = 0; i < k->n; i++) {
			free(k->targets[i].host);
			free(k->targets[i].id);
		}
		free(k->targets);
		free(k->token.data);
		free(k);
		return;
	}
	if (n->copies_tail)
		n->copies_tail->next = k;
	else
		n->copies = k;
	n->copies_tail = k;
	n->ncopies++;
	pthread_cond_signal(&n->cmd_cv);
	pthread_mutex_unlock(&n->mu);
}

/* CMD_RECOVER goes to the worker: taking the replica over may wait for its
 * writer to let go (seconds), which the heartbeat thread must not. */
static void queue_recover(dn_nn *n, const Caudal__Command *c)
{
	if (!c->block || !c->block->id || c->new_gen <= c->block->gen)
		return;
	pthread_mutex_lock(&n->mu);
	for (copy_cmd *o = n->copies; o; o = o->next)
		if (o->new_gen && o->id == c->block->id && o->new_gen == c->new_gen) {
			pthread_mutex_unlock(&n->mu);
			return;
		}
	if (n->ncopies >= MAX_PENDING_COPIES) {
		/* the namenode tries again with a newer stamp */
		pthread_mutex_unlock(&n->mu);
		cdl_warn("dropping recovery of block %" PRIu64 ": %d commands queued", c->block->id,
			 MAX_PENDING_COPIES);
		return;
	}
	copy_cmd *k = xcalloc(1, sizeof(*k));
	k->id = c->block->id;
	k->gen = c->block->gen;
	k->new_gen = c->new_gen;
	k->next = n->copies;
	n->copies = k;
	if (!n->copies_tail)
		n->copies_tail = k;
	n->ncopies++;
	pthread_cond_signal(&n->cmd_cv);
	pthread_mutex_unlock(&n->mu);
}

/* Lease recovery of block id (CMD_RECOVER): cut its writer off, and move
 * the replica held under a stamp in [gen, new_gen) to new_gen at the
 * length it holds, finalized and synced; the store reports it received.
 * Without one to move, say so with a deleted report under new_gen, so that
 * the namenode does not wait for this node. */
static void recover_block(dn_nn *n, uint64_t id, uint64_t gen, uint64_t new_gen)
{
	dn_xfer_cut_writers(n->x, id, gen, new_gen);
	uint64_t len = 0;
	dn_wr *w = NULL;
	int rc = -ERANGE;
	/* a parked replica abandoned meanwhile is finalized at its hsynced
	 * length, shorter than it was: look again */
	for (int tries = 0; tries < 3 && rc == -ERANGE; tries++) {
		rc = dn_store_replica_length(n->s, id, gen, new_gen, &len);
		if (rc == 0)
			rc = dn_store_recover(n->s, id, gen, new_gen, len, RECOVER_WAIT_MS, &w);
	}
	if (rc == 0)
		rc = dn_wr_finalize(w, true);
	if (rc == 0) {
		cdl_info("block %" PRIu64 ": recovered at %" PRIu64
			 " bytes under generation %" PRIu64 " as the namenode asked",
			 id, len, new_gen);
		return;
	}
	cdl_warn("block %" PRIu64 ": cannot recover generation %" PRIu64 " as %" PRIu64 ": %s", id,
		 gen, new_gen, strerror(-rc));
	pthread_mutex_lock(&n->mu);
	replist_add(&n->del, id, new_gen, 0);
	pthread_cond_signal(&n->ibr_cv);
	pthread_mutex_unlock(&n->mu);
}

static void run_commands(dn_nn *n, Caudal__HeartbeatReply *rep)
{
	for (size_t i = 0; i < rep->n_commands; i++) {
		const Caudal__Command *c = rep->commands[i];
		switch (c->type) {
		case CAUDAL__COMMAND_TYPE__CMD_REPLICATE:
			queue_copy(n, c);
			break;
		case CAUDAL__COMMAND_TYPE__CMD_DELETE:
			for (size_t j = 0; j < c->n_blocks; j++)
				(void)dn_store_delete(n->s, c->blocks[j]->id, c->blocks[j]->gen);
			if (c->n_blocks)
				cdl_info("deleted %zu replicas as the namenode asked", c->n_blocks);
			break;
		case CAUDAL__COMMAND_TYPE__CMD_REREGISTER:
			cdl_info("namenode asks to register again");
			pthread_mutex_lock(&n->mu);
			n->registered = false;
			pthread_mutex_unlock(&n->mu);
			break;
		case CAUDAL__COMMAND_TYPE__CMD_RECOVER:
			queue_recover(n, c);
			break;
		case CAUDAL__COMMAND_TYPE__CMD_REPORT:
			pthread_mutex_lock(&n->mu);
			n->report_now = true;
			pthread_mutex_unlock(&n->mu);
			break;
		case CAUDAL__COMMAND_TYPE__CMD_VERIFY:
			/* on this thread: the namenode sends a bounded few, and a
			 * block is read at disk speed */
			for (size_t j = 0; j < c->n_blocks && j < 64; j++) {
				int v = dn_scan_verify(n->s, c->blocks[j]->id, c->blocks[j]->gen);
				cdl_info("verified block %" PRIu64 " as the namenode asked: %s",
					 c->blocks[j]->id,
					 v == 1	  ? "corrupt"
					 : v == 0 ? "good"
						  : strerror(-v));
			}
			break;
		default:
			cdl_warn("ignoring unknown namenode command %d", (int)c->type);
			break;
		}
	}
}

static int do_heartbeat(dn_nn *n)
{
	Caudal__HeartbeatRequest req = CAUDAL__HEARTBEAT_REQUEST__INIT;
	Caudal__DatanodeInfo info = CAUDAL__DATANODE_INFO__INIT;
	fill_info(n, &info);
	req.node = &info;
	ProtobufCMessage *m = NULL;
	int rc = cdl_rpc_call(n->rpc, M_HEARTBEAT, &req.base, &m, n->rpc_timeout_ms);
	if (rc < 0) {
		lost(n, "heartbeat", rc);
		return rc;
	}
	Caudal__HeartbeatReply *rep = (Caudal__HeartbeatReply *)m;
	if (rep->err) {
		cdl_warn("namenode refused the heartbeat: %s; registering again",
			 strerror((int)rep->err));
		pthread_mutex_lock(&n->mu);
		n->registered = false;
		pthread_mutex_unlock(&n->mu);
		rc = -(int)rep->err;
	} else {
		take_keys(n, rep->keys, rep->n_keys);
		run_commands(n, rep);
	}
	protobuf_c_message_free_unpacked(m, NULL);
	return rc;
}

/* ---------------------------------------------------------------- threads */

static void *hb_main(void *arg)
{
	dn_nn *n = arg;
	int64_t next_hb = 0, next_report = 0;
	pthread_mutex_lock(&n->mu);
	while (!n->stop) {
		bool reg = n->registered;
		pthread_mutex_unlock(&n->mu);
		int64_t now = cdl_now_ms();
		if (!reg) {
			if (do_register(n) < 0) {
				pthread_mutex_lock(&n->mu);
				if (!n->stop)
					wait_ms(&n->hb_cv, &n->mu, RETRY_MS);
				continue;
			}
			pthread_mutex_lock(&n->mu);
			n->report_now = true;
			pthread_mutex_unlock(&n->mu);
			next_hb = now + n->hb_ms;
		}
		pthread_mutex_lock(&n->mu);
		bool report = n->report_now || now >= next_report;
		n->report_now = false;
		pthread_mutex_unlock(&n->mu);
		if (report) {
			if (do_block_report(n) < 0) {
				pthread_mutex_lock(&n->mu);
				n->report_now = true;
				if (!n->stop)
					wait_ms(&n->hb_cv, &n->mu, RETRY_MS);
				continue;
			}
			next_report = cdl_now_ms() + n->report_ms;
		}
		now = cdl_now_ms();
		if (now >= next_hb) {
			int rc = do_heartbeat(n);
			next_hb = cdl_now_ms() + (rc < 0 ? RETRY_MS : n->hb_ms);
		}
		pthread_mutex_lock(&n->mu);
		if (n->stop || !n->registered || n->report_now)
			continue;
		int64_t until = next_hb < next_report ? next_hb : next_report;
		wait_ms(&n->hb_cv, &n->mu, until - cdl_now_ms());
	}
	pthread_mutex_unlock(&n->mu);
	return NULL;
}

static void *ibr_main(void *arg)
{
	dn_nn *n = arg;
	pthread_mutex_lock(&n->mu);
	while (!n->stop) {
		if (!n->registered || (!n->recv.n && !n->del.n && !n->bad.n)) {
			wait_ms(&n->ibr_cv, &n->mu, 1000);
			continue;
		}
		replist recv = n->recv, del = n->del, bad = n->bad;
		n->recv = n->del = n->bad = (replist){0};
		pthread_mutex_unlock(&n->mu);

		Caudal__BlockReceivedRequest req = CAUDAL__BLOCK_RECEIVED_REQUEST__INIT;
		req.id = (char *)dn_store_id(n->s);
		req.n_received = recv.n;
		req.received = replist_ptrs(&recv);
		req.n_deleted = del.n;
		req.deleted = replist_ptrs(&del);
		req.n_corrupt = bad.n;
		req.corrupt = replist_ptrs(&bad);
		ProtobufCMessage *m = NULL;
		int rc = cdl_rpc_call(n->rpc, M_BLOCK_RECEIVED, &req.base, &m, n->rpc_timeout_ms);
		free(req.received);
		free(req.deleted);
		free(req.corrupt);
		uint32_t err = 0;
		if (rc == 0) {
			err = ((Caudal__Status *)m)->err;
			protobuf_c_message_free_unpacked(m, NULL);
		}
		if (rc < 0)
			lost(n, "block received", rc);
		else if (err)
			cdl_warn("namenode refused incremental block report: %s; registering again",
				 strerror((int)err));
		else
			cdl_debug("incremental report: %zu received, %zu deleted, %zu corrupt",
				  recv.n, del.n, bad.n);

		pthread_mutex_lock(&n->mu);
		if (rc < 0 || err) {
			/* Keep corrupt and deleted news; a full report after the
			 * next registration covers what was received. */
			replist_requeue(&n->del, &del);
			replist_requeue(&n->bad, &bad);
			if (err) {
				n->registered = false;
				pthread_cond_broadcast(&n->hb_cv);
			} else {
				replist_requeue(&n->recv, &recv);
			}
			if (!n->stop)
				wait_ms(&n->ibr_cv, &n->mu, RETRY_MS);
		}
		free(recv.v);
		free(del.v);
		free(bad.v);
	}
	pthread_mutex_unlock(&n->mu);
	return NULL;
}

static void *cmd_main(void *arg)
{
	dn_nn *n = arg;
	pthread_mutex_lock(&n->mu);
	for (;;) {
		while (!n->stop && !n->copies)
			pthread_cond_wait(&n->cmd_cv, &n->mu);
		if (n->stop)
			break;
		copy_cmd *k = n->copies;
		n->copies = k->next;
		if (!n->copies)
			n->copies_tail = NULL;
		n->ncopies--;
		pthread_mutex_unlock(&n->mu);

		if (k->new_gen) {
			recover_block(n, k->id, k->gen, k->new_gen);
			free(k);
			pthread_mutex_lock(&n->mu);
			continue;
		}
		const Caudal__DtTarget **t = xmalloc(k->n * sizeof(*t));
		for (size_t i = 0; i < k->n; i++)
			t[i] = &k->targets[i];
		int64_t t0 = cdl_now_ms();
		int rc = dn_xfer_replicate(n->s, k->id, k->gen, t, k->n, &k->token,
					   dn_store_id(n->s), n->io_timeout_ms);
		if (rc == 0)
			cdl_info("replicated block %" PRIu64 " to '%s:%u'%s in %" PRId64 " ms",
				 k->id, k->targets[0].host, k->targets[0].port,
				 k->n > 1 ? " and on" : "", cdl_now_ms() - t0);
		else
			cdl_warn("cannot replicate block %" PRIu64 " to '%s:%u': %s", k->id,
				 k->targets[0].host, k->targets[0].port, strerror(-rc));
		free(t);
		for (size_t i = 0; i < k->n; i++) {
			free(k->targets[i].host);
			free(k->targets[i].id);
		}
		free(k->targets);
		free(k->token.data);
		free(k);
		pthread_mutex_lock(&n->mu);
	}
	pthread_mutex_unlock(&n->mu);
	return NULL;
}

/* ---------------------------------------------------------------- lifecycle */

void dn_nn_listener(void *ctx, enum dn_event ev, uint64_t id, uint64_t gen, uint64_t len)
{
	dn_nn *n = ctx;
	pthread_mutex_lock(&n->mu);
	switch (ev) {
	case DN_EV_RECEIVED:
		replist_add(&n->recv, id, gen, len);
		break;
	case DN_EV_DELETED:
		replist_add(&n->del, id, gen, len);
		break;
	case DN_EV_CORRUPT:
		replist_add(&n->bad, id, gen, len);
		break;
	}
	pthread_cond_signal(&n->ibr_cv);
	pthread_mutex_unlock(&n->mu);
}

bool dn_nn_registered(dn_nn *n)
{
	pthread_mutex_lock(&n->mu);
	bool r = n->registered;
	pthread_mutex_unlock(&n->mu);
	return r;
}

int dn_nn_start(dn_store *s, dn_xfer *x, const dn_nn_opts *o, dn_nn **out)
{
	const ProtobufCServiceDescriptor *d = &caudal__datanode_protocol__descriptor;
	if (d->n_methods != M_COUNT) {
		cdl_err("DatanodeProtocol has %u methods, expected %d", d->n_methods, M_COUNT);
		return -EINVAL;
	}
	for (unsigned i = 0; i < M_COUNT; i++)
		if (strcmp(d->methods[i].name, method_names[i]) != 0) {
			cdl_err("DatanodeProtocol method %u is '%s', expected '%s'", i,
				d->methods[i].name, method_names[i]);
			return -EINVAL;
		}
	cdl_rpc_client *rpc = cdl_rpc_client_new(o->namenode, d);
	if (!rpc) {
		cdl_err("bad namenode address '%s'", o->namenode ? o->namenode : "");
		return -EINVAL;
	}
	dn_nn *n = xcalloc(1, sizeof(*n));
	n->s = s;
	n->x = x;
	n->keys = o->keys;
	n->rpc = rpc;
	n->host = xstrdup(o->host);
	n->data_port = o->data_port;
	n->http_port = o->http_port;
	n->conf_hb_ms = n->hb_ms = o->heartbeat_ms > 0 ? o->heartbeat_ms : 3000;
	n->conf_report_ms = n->report_ms = o->report_ms > 0 ? o->report_ms : 3600000;
	n->rpc_timeout_ms = o->rpc_timeout_ms > 0 ? o->rpc_timeout_ms : 10000;
	n->io_timeout_ms = o->io_timeout_ms > 0 ? o->io_timeout_ms : 60000;
	pthread_mutex_init(&n->mu, NULL);
	cdl_cond_init_mono(&n->hb_cv);
	cdl_cond_init_mono(&n->ibr_cv);
	cdl_cond_init_mono(&n->cmd_cv);
	if (pthread_create(&n->hb_thr, NULL, hb_main, n) != 0)
		goto fail_hb;
	if (pthread_create(&n->ibr_thr, NULL, ibr_main, n) != 0)
		goto fail_ibr;
	if (pthread_create(&n->cmd_thr, NULL, cmd_main, n) != 0)
		goto fail_cmd;
	*out = n;
	return 0;
fail_cmd:
	pthread_mutex_lock(&n->mu);
	n->stop = true;
	pthread_cond_broadcast(&n->ibr_cv);
	pthread_mutex_unlock(&n->mu);
	pthread_join(n->ibr_thr, NULL);
fail_ibr:
	pthread_mutex_lock(&n->mu);
	n->stop = true;
	pthread_cond_broadcast(&n->hb_cv);
	pthread_mutex_unlock(&n->mu);
	pthread_join(n->hb_thr, NULL);
fail_hb:
	cdl_err("cannot start the namenode threads");
	cdl_rpc_client_free(rpc);
	free(n->host);
	free(n);
	return -EAGAIN;
}

void dn_nn_stop(dn_nn *n)
{
	if (!n)
		return;
	pthread_mutex_lock(&n->mu);
	n->stop = true;
	pthread_cond_broadcast(&n->hb_cv);
	pthread_cond_broadcast(&n->ibr_cv);
	pthread_cond_broadcast(&n->cmd_cv);
	pthread_mutex_unlock(&n->mu);
	pthread_join(n->hb_thr, NULL);
	pthread_join(n->ibr_thr, NULL);
	pthread_join(n->cmd_thr, NULL);
	cdl_rpc_client_free(n->rpc);
	while (n->copies) {
		copy_cmd *k = n->copies;
		n->copies = k->next;
		for (size_t i = 0; i < k->n; i++) {
			free(k->targets[i].host);
			free(k->targets[i].id);
		}
		free(k->targets);
		free(k->token.data);
		free(k);
	}
	free(n->recv.v);
	free(n->del.v);
	free(n->bad.v);
	free(n->host);
	pthread_mutex_destroy(&n->mu);
	pthread_cond_destroy(&n->hb_cv);
	pthread_cond_destroy(&n->ibr_cv);
	pthread_cond_destroy(&n->cmd_cv);
	free(n);
}
