/* dn_xfer: the data-transfer server. See dn_xfer.h. */
#include "dn_xfer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cdl_dt.h"
#include "cdl_dtls.h"
#include "cdl_log.h"
#include "cdl_metrics.h"
#include "cdl_token.h"
#include "cdl_util.h"

/* What /metrics counts here (caudal_datanode_*), looked up once. */
static struct {
	cdl_series *bytes_read, *bytes_written, *blocks_read, *blocks_written, *net_csum,
	    *pipe_down, *pipe_up, *refused, *op_read, *op_write, *op_transfer, *op_replicate;
} dm;
static pthread_once_t dm_once = PTHREAD_ONCE_INIT;

static void dm_init(void)
{
	cdl_metrics *r = cdl_metrics_global();
	dm.bytes_read = cdl_metric_one(cdl_metrics_counter(r, "caudal_datanode_bytes_read_total",
							   "Block bytes sent to readers.", NULL));
	dm.bytes_written = cdl_metric_one(cdl_metrics_counter(
	    r, "caudal_datanode_bytes_written_total",
	    "Block bytes received and stored (client writes, pipelines, copies).", NULL));
	dm.blocks_read = cdl_metric_one(cdl_metrics_counter(r, "caudal_datanode_blocks_read_total",
							    "Block reads served.", NULL));
	dm.blocks_written = cdl_metric_one(cdl_metrics_counter(
	    r, "caudal_datanode_blocks_written_total", "Replicas received and finalized.", NULL));
	cdl_metric *ce = cdl_metrics_counter(
	    r, "caudal_datanode_checksum_errors_total",
	    "Chunks that failed their checksum: stored ones read back (disk) or "
	    "packets received (network).",
	    "source");
	(void)cdl_metric_at(ce, "disk"); /* counted by dn_store; shown from the start */
	dm.net_csum = cdl_metric_at(ce, "network");
	cdl_metric *pe =
	    cdl_metrics_counter(r, "caudal_datanode_pipeline_errors_total",
				"Write pipelines broken: the next datanode failed (downstream) or "
				"the writer went away mid-block (upstream).",
				"side");
	dm.pipe_down = cdl_metric_at(pe, "downstream");
	dm.pipe_up = cdl_metric_at(pe, "upstream");
	dm.refused = cdl_metric_one(
	    cdl_metrics_counter(r, "caudal_datanode_connections_refused_total",
				"Data connections refused at a connection limit.", NULL));
	cdl_metric *op = cdl_metrics_histogram(r, "caudal_datanode_op_seconds",
					       "Data-transfer operations and their time, by kind.",
					       "op", NULL, 0);
	dm.op_read = cdl_metric_at(op, "read");
	dm.op_write = cdl_metric_at(op, "write");
	dm.op_transfer = cdl_metric_at(op, "transfer");
	dm.op_replicate = cdl_metric_at(op, "replicate");
}

/* Chunks per disk read and send when serving a read (1 MiB). */
#define READ_RUN 16
/* Packets a connection may hold between its receiver and its responder. */
#define ACKQ 256
/* Longest wait to connect to the next node of a pipeline. */
#define CONNECT_MAX_MS 10000
/* Longest time a replica whose writer went away mid-block stays open for a
 * pipeline recovery (the I/O timeout if shorter). */
#define PARK_MAX_MS 30000
/* Longest wait, in a recovery, for the replica's old writer to let go. */
#define RECOVER_WAIT_MS 5000
/* How often the accept thread looks for connections past their header
 * deadline. */
#define REAP_MS 250
/* Largest replica taken when tokens are not checked (in-process tests):
 * the namenode's largest block size. */
#define MAX_REPLICA_NOCHECK (1ULL << 36)

/* When a kind of refusal was last logged, and how many went unlogged since. */
typedef struct log_budget {
	int64_t last_ms;
	unsigned quiet;
} log_budget;

typedef struct conn {
	struct dn_xfer *x;
	int fd;
	char peer[64];	 /* "addr:port", for logs */
	char addr[48];	 /* the peer's address alone: the per-peer limit counts it */
	int64_t born_ms; /* accepted at (monotonic) */
	bool headed;	 /* its header arrived (under x->mu) */
	bool evicted;	 /* cut off before its header (under x->mu) */
	struct conn *prev, *next;
	/* a DT_WRITE in progress, under x->mu, so that a recovery of the
	 * same replica can cut off this stale writer */
	bool writing;
	uint64_t wblock, wgen;
	int down; /* its downstream socket, -1 none */
} conn;

struct dn_xfer {
	dn_store *s;
	cdl_keyring *keys; /* NULL: tokens are not checked (in-process tests) */
	int lfd, port;
	int max, io_timeout_ms;
	int max_per_peer, header_timeout_ms;
	bool require_tls; /* encrypt_data: plaintext connections are refused */
	/* refusals come in floods: each kind is logged once a second at most */
	log_budget conn_log, token_log; /* under mu */
	pthread_t acceptor;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	conn *conns;	 /* being served, under mu */
	unsigned active; /* number of conns (read without mu by heartbeats) */
	bool stopping;
};

/* Whether a refusal of kind b may be logged now (one a second); *quiet is
 * how many were not logged before it. Called with x->mu held. */
static bool may_log(log_budget *b, unsigned *quiet)
{
	int64_t now = cdl_now_ms();
	if (b->last_ms && now - b->last_ms < 1000) {
		b->quiet++;
		return false;
	}
	*quiet = b->quiet;
	b->last_ms = now;
	b->quiet = 0;
	return true;
}

static void send_refusal(int fd, uint32_t err, const char *msg, uint32_t bad)
{
	Caudal__DtReply rep = CAUDAL__DT_REPLY__INIT;
	rep.err = err;
	rep.message = (char *)msg;
	rep.bad_target = bad;
	(void)cdl_dt_send_reply(fd, &rep);
}

/* ---------------------------------------------------------------- tokens */

/* Check the block access token of h (fs/cdl_token.h) for one of `modes`:
 * signed by a key the namenode gave, unexpired, for exactly h->block and
 * h->gen, naming this datanode, and for a write naming every node of the
 * rest of the pipeline (so a caller cannot make this datanode connect
 * anywhere else). *maxlen is the most bytes the replica may hold. On a
 * refusal logs it, answers EACCES and returns -EACCES. Without a keyring
 * (in-process tests) everything passes. */
static int check_token(conn *c, const Caudal__DtHeader *h, uint32_t modes, const char *what,
		       uint64_t *maxlen)
{
	dn_xfer *x = c->x;
	*maxlen = MAX_REPLICA_NOCHECK;
	if (!x->keys)
		return 0;
	Caudal__BlockTokenId *id = NULL;
	const char *why = NULL;
	char msg[160];
	int rc;
	if (cdl_keyring_count(x->keys) == 0) {
		why = "no block keys from the namenode yet";
		rc = -EACCES;
	} else {
		rc = cdl_token_check(x->keys, &h->token, cdl_token_now_ms(), h->block, h->gen,
				     modes, &id, &why);
	}
	if (rc == 0 && !cdl_token_names_id(id, dn_store_id(x->s))) {
		why = "block token does not name this datanode";
		rc = -EACCES;
	}
	for (size_t i = 0; rc == 0 && i < h->n_targets; i++) {
		const Caudal__DtTarget *t = h->targets[i];
		if (!cdl_token_names_addr(id, t->host, t->port)) {
			snprintf(msg, sizeof(msg),
				 "pipeline target '%.64s:%u' is not in the block token",
				 t->host ? t->host : "", t->port);
			why = msg;
			rc = -EACCES;
		}
	}
	if (rc == 0) {
		*maxlen = id->max_length;
	} else {
		unsigned quiet = 0;
		pthread_mutex_lock(&x->mu);
		bool say = may_log(&x->token_log, &quiet);
		pthread_mutex_unlock(&x->mu);
		if (say)
			cdl_warn("refusing %s of block %" PRIu64 " generation %" PRIu64
				 " from '%s': %s (%u more refused unlogged)",
				 what, h->block, h->gen, c->peer, why, quiet);
		send_refusal(c->fd, EACCES, why, 0);
	}
	if (id)
		caudal__block_token_id__free_unpacked(id, NULL);
	return rc;
}

/* ---------------------------------------------------------------- reads */

static void serve_read(conn *c, const Caudal__DtHeader *h)
{
	dn_store *s = c->x->s;
	dn_rd rd;
	uint64_t maxlen;
	if (check_token(c, h, CDL_TOKEN_READ, "read", &maxlen) < 0)
		return;
	int rc = dn_store_open_read(s, h->block, h->gen, &rd);
	if (rc < 0) {
		cdl_debug("read of block %" PRIu64 " from '%s' refused: %s", h->block, c->peer,
			  strerror(-rc));
		send_refusal(c->fd, (uint32_t)-rc,
			     rc == -ENOENT    ? "replica not found"
			     : rc == -EBADMSG ? "replica is corrupt"
					      : strerror(-rc),
			     0);
		return;
	}
	uint64_t end = rd.len;
	if (h->offset >= rd.len)
		end = h->offset;
	else if (h->length && h->length < rd.len - h->offset)
		end = h->offset + h->length;
	Caudal__DtReply rep = CAUDAL__DT_REPLY__INIT;
	rep.length = rd.len;
	if (cdl_dt_send_reply(c->fd, &rep) < 0)
		goto out;
	cdl_series_add(dm.blocks_read, 1);
	(void)posix_fadvise(rd.fd, (off_t)h->offset, (off_t)(end - h->offset),
			    POSIX_FADV_SEQUENTIAL);
	/* Chunks go out in runs of READ_RUN: one read from disk and one
	 * send for the run (a frame header before each chunk). The datanode
	 * checks each against its stored sum as it goes. */
	uint64_t idx = h->offset / CDL_CHUNK;
	uint8_t *buf = xmalloc((size_t)READ_RUN * CDL_CHUNK);
	while (h->offset < end && idx * CDL_CHUNK < end) {
		uint64_t left = (end - idx * CDL_CHUNK + CDL_CHUNK - 1) / CDL_CHUNK;
		unsigned cnt = left < READ_RUN ? (unsigned)left : READ_RUN;
		size_t n[READ_RUN];
		uint64_t sum[READ_RUN];
		bool bad;
		int k = dn_rd_chunks(&rd, idx, cnt, buf, n, sum, &bad);
		if (k < 0) {
			cdl_err("cannot read replica 'blk_%" PRIu64 "_%" PRIu64 "': %s", rd.id,
				rd.gen, strerror(-k));
			break;
		}
		uint8_t hdr[READ_RUN][CDL_DT_FRAME];
		struct iovec iov[2 * READ_RUN];
		uint64_t bytes = 0;
		for (int i = 0; i < k; i++) {
			cdl_dt_frame f = {.seq = (idx + (uint64_t)i) * CDL_CHUNK,
					  .len = (uint32_t)n[i],
					  .sum = sum[i]};
			f.flags = f.seq + CDL_CHUNK >= end ? CDL_DT_LAST : 0;
			cdl_dt_frame_encode(hdr[i], &f);
			iov[2 * i] = (struct iovec){hdr[i], CDL_DT_FRAME};
			iov[2 * i + 1] = (struct iovec){buf + (size_t)i * CDL_CHUNK, n[i]};
			bytes += n[i];
		}
		if (bad) {
			char why[64];
			snprintf(why, sizeof(why), "checksum mismatch in chunk %" PRIu64,
				 idx + (uint64_t)k - 1);
			dn_store_mark_corrupt(s, rd.id, rd.gen, why);
			/* The stored sum goes with the bad data: the reader sees the
			 * mismatch itself and fails over. */
			(void)cdl_dt_writev_full(c->fd, iov, 2 * k);
			break;
		}
		if (cdl_dt_writev_full(c->fd, iov, 2 * k) < 0)
			break; /* the client went away */
		cdl_series_add(dm.bytes_read, bytes);
		idx += (uint64_t)k;
	}
	free(buf);
out:
	dn_rd_release(&rd);
}

/* ---------------------------------------------------------------- writes */

typedef struct pkt {
	uint64_t seq;
	uint32_t err, bad;
	bool last;
} pkt;

/* State shared by a write's receiver (connection thread) and responder. */
typedef struct wctx {
	int up, down;
	uint64_t block;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pkt q[ACKQ];
	uint64_t head, tail; /* q[head % ACKQ] .. q[tail % ACKQ] are queued */
	bool closed;	     /* the receiver queues nothing more */
	bool failed;	     /* the responder stopped early */
} wctx;

/* Queue a packet's outcome for the responder; false if it has stopped. */
static bool enqueue(wctx *w, pkt p)
{
	pthread_mutex_lock(&w->mu);
	while (w->tail - w->head >= ACKQ && !w->failed)
		pthread_cond_wait(&w->cv, &w->mu);
	bool ok = !w->failed;
	if (ok) {
		w->q[w->tail++ % ACKQ] = p;
		pthread_cond_broadcast(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
	return ok;
}

static bool responder_failed(wctx *w)
{
	pthread_mutex_lock(&w->mu);
	bool f = w->failed;
	pthread_mutex_unlock(&w->mu);
	return f;
}

/* Responder: for each packet written here, wait for the downstream ack,
 * merge it with the local outcome and send the ack upstream. Positions in
 * `bad` are relative to the receiver of the ack, so a downstream position
 * moves up by one. */
static void *responder_main(void *arg)
{
	wctx *w = arg;
	bool fail = false;
	for (;;) {
		pthread_mutex_lock(&w->mu);
		while (w->head == w->tail && !w->closed)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->head == w->tail) {
			pthread_mutex_unlock(&w->mu);
			break;
		}
		pkt p = w->q[w->head++ % ACKQ];
		pthread_cond_broadcast(&w->cv);
		pthread_mutex_unlock(&w->mu);

		cdl_dt_ack a = {.seq = p.seq, .err = p.err, .bad = p.bad};
		if (!p.err) {
			cdl_dt_ack d;
			int rc = cdl_dt_recv_ack(w->down, &d);
			if (rc < 0) {
				cdl_warn("block %" PRIu64 ": no ack from the next datanode: %s",
					 w->block, strerror(-rc));
				cdl_series_add(dm.pipe_down, 1);
				a.err = EIO;
				a.bad = 2;
			} else if (d.seq != p.seq) {
				a.err = EPROTO;
				a.bad = 2;
			} else if (d.err) {
				a.err = d.err;
				a.bad = d.bad ? d.bad + 1 : 2;
			}
		}
		if (cdl_dt_send_ack(w->up, &a) < 0 || a.err) {
			fail = true;
			break;
		}
		if (p.last)
			break;
	}
	if (fail) {
		pthread_mutex_lock(&w->mu);
		w->failed = true;
		pthread_cond_broadcast(&w->cv);
		pthread_mutex_unlock(&w->mu);
		/* wake the receiver if it waits for more packets */
		shutdown(w->up, SHUT_RD);
	}
	return NULL;
}

/* Connect to the next node and hand it the rest of the pipeline. Returns
 * the socket or -errno with *bad set (1-based in h->targets). */
static int connect_downstream(conn *c, const Caudal__DtHeader *h, int *bad)
{
	const Caudal__DtTarget *t = h->targets[0];
	*bad = 1;
	if (!t->host || !*t->host || t->port == 0 || t->port > 65535)
		return -EINVAL;
	int tmo = c->x->io_timeout_ms < CONNECT_MAX_MS ? c->x->io_timeout_ms : CONNECT_MAX_MS;
	int fd = cdl_dt_connect(t->host, (int)t->port, tmo, c->x->io_timeout_ms);
	if (fd < 0) {
		cdl_warn("block %" PRIu64 ": cannot connect to datanode '%s:%u': %s", h->block,
			 t->host, t->port, strerror(-fd));
		return fd;
	}
	Caudal__DtHeader nh = *h;
	nh.targets = h->targets + 1;
	nh.n_targets = h->n_targets - 1;
	Caudal__DtReply *rep = NULL;
	int rc = cdl_dt_send_header(fd, &nh);
	if (rc == 0)
		rc = cdl_dt_recv_reply(fd, &rep);
	if (rc == 0 && !rep)
		rc = -EPROTO;
	if (rc != 0) {
		cdl_warn("block %" PRIu64 ": datanode '%s:%u' did not answer: %s", h->block,
			 t->host, t->port, strerror(-rc));
		close(fd);
		return rc;
	}
	if (rep->err) {
		rc = rep->err > 4095 ? -EIO : -(int)rep->err;
		*bad = rep->bad_target && rep->bad_target <= nh.n_targets ? (int)rep->bad_target + 1
									  : 1;
		protobuf_c_message_free_unpacked(&rep->base, NULL);
		close(fd);
		return rc;
	}
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	*bad = 0;
	return fd;
}

/* Record (or with block 0, clear) the write this connection serves and its
 * downstream socket, for cut_stale_writers. */
static void set_writing(conn *c, uint64_t block, uint64_t gen, int down)
{
	pthread_mutex_lock(&c->x->mu);
	c->writing = block != 0;
	c->wblock = block;
	c->wgen = gen;
	c->down = down;
	pthread_mutex_unlock(&c->x->mu);
}

/* A recovery of block under gen takes over the replica written under a
 * generation in [old_gen, gen): cut the connections of a writer of it that
 * has not noticed yet that its upstream is gone, so that it parks. */
static void cut_stale_writers(dn_xfer *x, const conn *self, uint64_t block, uint64_t old_gen,
			      uint64_t gen)
{
	pthread_mutex_lock(&x->mu);
	for (conn *c = x->conns; c; c = c->next) {
		if (c == self || !c->writing || c->wblock != block || c->wgen < old_gen ||
		    c->wgen >= gen)
			continue;
		cdl_info("block %" PRIu64 ": cutting off the stale writer from '%s' "
			 "(generation %" PRIu64 ")",
			 block, c->peer, c->wgen);
		shutdown(c->fd, SHUT_RDWR);
		if (c->down >= 0)
			shutdown(c->down, SHUT_RDWR);
	}
	pthread_mutex_unlock(&x->mu);
}

void dn_xfer_cut_writers(dn_xfer *x, uint64_t block, uint64_t old_gen, uint64_t gen)
{
	cut_stale_writers(x, NULL, block, old_gen, gen);
}

static bool xfer_stopping(void *arg)
{
	dn_xfer *x = arg;
	pthread_mutex_lock(&x->mu);
	bool stop = x->stopping;
	pthread_mutex_unlock(&x->mu);
	return stop;
}

/* Open the replica a DT_WRITE asks for: a new one, or for a pipeline
 * recovery the one being written, continued at h->recover_offset under
 * h->gen. On a failure the refusal is sent. */
static int open_replica(conn *c, const Caudal__DtHeader *h, uint64_t maxlen, dn_wr **wr)
{
	dn_store *s = c->x->s;
	int rc;
	if (h->recover && h->recover_offset > maxlen) {
		cdl_warn("refusing recovery of block %" PRIu64 " at %" PRIu64
			 " bytes from '%s': past the block size %" PRIu64,
			 h->block, h->recover_offset, c->peer, maxlen);
		send_refusal(c->fd, EFBIG, "resume offset past the block size", 0);
		return -EFBIG;
	}
	if (!h->recover) {
		rc = dn_store_create(s, h->block, h->gen, wr);
		if (rc < 0)
			send_refusal(c->fd, (uint32_t)-rc,
				     rc == -ESTALE ? "a newer generation is held" : strerror(-rc),
				     0);
		return rc;
	}
	cut_stale_writers(c->x, c, h->block, h->recover_gen, h->gen);
	rc = dn_store_recover(s, h->block, h->recover_gen, h->gen, h->recover_offset,
			      RECOVER_WAIT_MS, wr);
	if (rc < 0) {
		cdl_warn("block %" PRIu64 ": cannot resume generation %" PRIu64 " at %" PRIu64
			 " bytes for '%s': %s",
			 h->block, h->recover_gen, h->recover_offset,
			 h->client ? h->client : c->peer, strerror(-rc));
		send_refusal(c->fd, (uint32_t)-rc,
			     rc == -ENOENT   ? "replica not found"
			     : rc == -ERANGE ? "replica shorter than the resume offset"
			     : rc == -EBUSY  ? "replica still busy with its old writer"
			     : rc == -ESTALE ? "generation not newer"
					     : strerror(-rc),
			     0);
		return rc;
	}
	cdl_info("block %" PRIu64 ": resuming replica at %" PRIu64
		 " bytes under generation %" PRIu64 " (was %" PRIu64 ") for '%s'",
		 h->block, h->recover_offset, h->gen, h->recover_gen,
		 h->client ? h->client : c->peer);
	return 0;
}

static void serve_write(conn *c, const Caudal__DtHeader *h)
{
	dn_wr *wr = NULL;
	uint64_t maxlen;
	/* a recovery resumes a client's write; a new replica may also be a
	 * datanode's copy */
	if (check_token(c, h, h->recover ? CDL_TOKEN_WRITE : CDL_TOKEN_WRITE | CDL_TOKEN_COPY,
			h->recover ? "recovery" : "write", &maxlen) < 0)
		return;
	if (open_replica(c, h, maxlen, &wr) < 0)
		return;
	int rc;
	bool local_fail = false; /* this node's copy failed: not resumable */
	bool got_data = false;	 /* a packet was stored */
	set_writing(c, h->block, h->gen, -1);
	wctx w = {.up = c->fd, .down = -1, .block = h->block};
	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cv, NULL);
	pthread_t responder;
	bool have_responder = false;
	uint8_t *buf = NULL;
	if (h->n_targets > 0) {
		int bad;
		w.down = connect_downstream(c, h, &bad);
		if (w.down >= 0)
			set_writing(c, h->block, h->gen, w.down);
		if (w.down < 0) {
			cdl_series_add(dm.pipe_down, 1);
			send_refusal(c->fd, (uint32_t)-w.down, "pipeline setup failed",
				     (uint32_t)bad);
			goto out;
		}
	}
	Caudal__DtReply rep = CAUDAL__DT_REPLY__INIT;
	if (cdl_dt_send_reply(c->fd, &rep) < 0)
		goto out;
	if (w.down >= 0) {
		if (pthread_create(&responder, NULL, responder_main, &w) != 0) {
			cdl_err("cannot start a responder thread");
			goto out;
		}
		have_responder = true;
	}
	buf = xmalloc(CDL_CHUNK);
	bool clean = false;   /* the last packet was handled */
	bool up_gone = false; /* the upstream connection failed */
	for (uint64_t expect = 0;; expect++) {
		cdl_dt_frame f;
		pkt p = {.seq = expect};
		rc = cdl_dt_recv_frame(c->fd, &f);
		if (rc == 0 && f.seq != expect)
			rc = -EPROTO;
		if (rc == 0)
			rc = cdl_dt_recv_payload(c->fd, &f, buf);
		if (rc == 0 && f.len > maxlen - dn_wr_length(wr)) {
			/* never more than one block into one replica */
			cdl_warn("block %" PRIu64 ": '%s' sends more than its %" PRIu64
				 " bytes: cut off",
				 h->block, c->peer, maxlen);
			p.err = EFBIG;
			p.bad = 1;
			local_fail = true;
		} else if (rc == -EPROTO || rc == -EBADMSG) {
			cdl_warn("block %" PRIu64 ": bad packet %" PRIu64 " from '%s': %s",
				 h->block, expect, c->peer, strerror(-rc));
			if (rc == -EBADMSG)
				cdl_series_add(dm.net_csum, 1);
			p.err = (uint32_t)-rc;
			p.bad = 1;
		} else if (rc < 0) {
			up_gone = true;
			if (!have_responder || !responder_failed(&w))
				cdl_debug("block %" PRIu64 ": upstream '%s' went away: %s",
					  h->block, c->peer, strerror(-rc));
			break;
		}
		if (!p.err && w.down >= 0 && cdl_dt_send_frame(w.down, &f, buf) < 0) {
			cdl_series_add(dm.pipe_down, 1);
			p.err = EIO;
			p.bad = 2;
		}
		if (!p.err && (rc = dn_wr_append(wr, buf, f.len, f.sum)) < 0) {
			p.err = (uint32_t)-rc;
			p.bad = 1;
			local_fail = true;
		}
		if (!p.err) {
			got_data = true;
			cdl_series_add(dm.bytes_written, f.len);
		}
		if (!p.err && (f.flags & CDL_DT_SYNC) && !(f.flags & CDL_DT_LAST) &&
		    (rc = dn_wr_sync(wr)) < 0) {
			p.err = (uint32_t)-rc;
			p.bad = 1;
			local_fail = true;
		}
		if (!p.err && (f.flags & CDL_DT_LAST)) {
			uint64_t len = dn_wr_length(wr);
			rc = dn_wr_finalize(wr, h->sync || (f.flags & CDL_DT_SYNC));
			wr = NULL;
			if (rc < 0) {
				p.err = (uint32_t)-rc;
				p.bad = 1;
				local_fail = true;
			} else {
				cdl_series_add(dm.blocks_written, 1);
				cdl_info("received block 'blk_%" PRIu64 "_%" PRIu64 "' (%" PRIu64
					 " bytes) from '%s'",
					 h->block, h->gen, len, h->client ? h->client : c->peer);
			}
			p.last = true;
		}
		if (have_responder) {
			if (!enqueue(&w, p))
				break;
		} else {
			cdl_dt_ack a = {.seq = p.seq, .err = p.err, .bad = p.bad};
			if (cdl_dt_send_ack(c->fd, &a) < 0)
				break;
		}
		if (p.err)
			break;
		if (p.last) {
			clean = true;
			break;
		}
	}
	if (have_responder) {
		pthread_mutex_lock(&w.mu);
		w.closed = true;
		pthread_cond_broadcast(&w.cv);
		pthread_mutex_unlock(&w.mu);
		/* The upstream is gone: nobody wants the outstanding acks. */
		if (!clean && up_gone)
			shutdown(w.down, SHUT_RDWR);
		pthread_join(responder, NULL);
	}
	if (!clean && up_gone)
		cdl_series_add(dm.pipe_up, 1);
out:
	set_writing(c, 0, 0, -1);
	if (w.down >= 0)
		close(w.down); /* the next node notices, and parks its copy too */
	free(buf);
	pthread_mutex_destroy(&w.mu);
	pthread_cond_destroy(&w.cv);
	/* Cut off mid-block: keep the replica open for a pipeline recovery,
	 * unless it never got data (a failed setup: the client asks for
	 * another block) or this node's own disk failed. */
	if (wr && !local_fail && (got_data || h->recover)) {
		int ms = c->x->io_timeout_ms < PARK_MAX_MS ? c->x->io_timeout_ms : PARK_MAX_MS;
		if (dn_wr_park(wr, ms, xfer_stopping, c->x)) {
			cdl_debug("block %" PRIu64 ": replica taken over by a recovery", h->block);
			wr = NULL;
		}
	}
	if (wr)
		dn_wr_abandon(wr);
}

/* ---------------------------------------------------------------- transfer */

static int copy_replica(dn_store *s, uint64_t id, uint64_t gen, uint64_t out_gen, uint64_t limit,
			bool rbw_ok, const Caudal__DtTarget *const *targets, size_t ntargets,
			const ProtobufCBinaryData *token, const char *self, int timeout_ms);

/* DT_TRANSFER: a writer adds a replacement datanode to the pipeline of a
 * block (HDFS transferBlock): copy the first h->length bytes of the local
 * replica (being written, parked or finalized, under h->gen or newer: the
 * bytes every node acked) to h->targets as a replica of h->gen, then
 * answer. The copy token for (block, gen) must name this datanode and
 * every target, and allow that many bytes. */
static void serve_transfer(conn *c, const Caudal__DtHeader *h)
{
	dn_xfer *x = c->x;
	uint64_t maxlen;
	if (h->n_targets < 1 || h->n_targets > CDL_DT_MAX_TARGETS) {
		send_refusal(c->fd, EINVAL, "a transfer needs 1 to 32 targets", 0);
		return;
	}
	if (check_token(c, h, CDL_TOKEN_COPY, "transfer", &maxlen) < 0)
		return;
	if (h->length > maxlen) {
		cdl_warn("refusing transfer of %" PRIu64 " bytes of block %" PRIu64
			 " from '%s': past the block size %" PRIu64,
			 h->length, h->block, c->peer, maxlen);
		send_refusal(c->fd, EFBIG, "transfer length past the block size", 0);
		return;
	}
	int rc = copy_replica(x->s, h->block, h->gen, h->gen, h->length, true,
			      (const Caudal__DtTarget *const *)h->targets, h->n_targets, &h->token,
			      dn_store_id(x->s), x->io_timeout_ms);
	if (rc < 0) {
		cdl_warn("block %" PRIu64 ": cannot copy %" PRIu64 " bytes to '%s:%u' for '%s': %s",
			 h->block, h->length, h->targets[0]->host ? h->targets[0]->host : "",
			 h->targets[0]->port, h->client ? h->client : c->peer, strerror(-rc));
		send_refusal(c->fd, (uint32_t)-rc,
			     rc == -ENOENT   ? "replica not found"
			     : rc == -ERANGE ? "replica shorter than the transfer length"
					     : strerror(-rc),
			     0);
		return;
	}
	cdl_info("block %" PRIu64 ": copied %" PRIu64 " bytes under generation %" PRIu64
		 " to '%s:%u' for '%s'",
		 h->block, h->length, h->gen, h->targets[0]->host, h->targets[0]->port,
		 h->client ? h->client : c->peer);
	Caudal__DtReply rep = CAUDAL__DT_REPLY__INIT;
	(void)cdl_dt_send_reply(c->fd, &rep);
}

/* ---------------------------------------------------------------- server */

/* A connection that opens with a TLS handshake is handed to the TLS relay
 * (cdl_dtls.h) and served through it; with require_tls a plaintext one is
 * refused. 0 to go on with c->fd, or -errno (answered and logged). */
static int start_tls(conn *c, int timeout_ms)
{
	dn_xfer *x = c->x;
	uint8_t first;
	ssize_t n;
	while ((n = recv(c->fd, &first, 1, MSG_PEEK)) < 0 && errno == EINTR)
		;
	if (n <= 0)
		return n == 0 ? -ECONNRESET : -errno;
	if (first != CDL_DTLS_RECORD_HANDSHAKE) {
		if (!x->require_tls)
			return 0;
		cdl_debug("refusing a plaintext data connection from '%s'", c->peer);
		/* read the header first: closing with it unread would reset
		 * the connection and lose the answer */
		Caudal__DtHeader *h = NULL;
		if (cdl_dt_recv_header(c->fd, &h) == 0)
			protobuf_c_message_free_unpacked(&h->base, NULL);
		send_refusal(c->fd, EACCES, "this datanode takes encrypted data connections only",
			     0);
		return -EACCES;
	}
	if (!cdl_dtls_ready()) {
		cdl_debug("dropping a TLS data connection from '%s': encrypt_data is off", c->peer);
		return -EPROTO;
	}
	int fd = cdl_dtls_wrap(c->fd, true, NULL, timeout_ms);
	pthread_mutex_lock(&x->mu);
	/* the TCP socket is the relay's now (or closed): shutdown and close
	 * go to the caller's end from here on */
	c->fd = fd >= 0 ? fd : -1;
	pthread_mutex_unlock(&x->mu);
	if (fd < 0) {
		cdl_debug("TLS handshake with '%s' failed: %s", c->peer, strerror(-fd));
		return fd;
	}
	return cdl_dt_tune(c->fd, timeout_ms);
}

static void *conn_main(void *arg)
{
	conn *c = arg;
	dn_xfer *x = c->x;
	Caudal__DtHeader *h = NULL;
	/* The header must come within header_timeout_ms (the accept thread
	 * cuts a connection that dribbles it slower); then the I/O timeout. */
	int htmo =
	    x->header_timeout_ms < x->io_timeout_ms ? x->header_timeout_ms : x->io_timeout_ms;
	if (cdl_dt_tune(c->fd, htmo) < 0)
		goto out;
	if (start_tls(c, htmo) < 0)
		goto out;
	int rc = cdl_dt_recv_header(c->fd, &h);
	pthread_mutex_lock(&x->mu);
	c->headed = rc == 0 && !c->evicted;
	if (rc == 0 && c->evicted)
		rc = -ETIMEDOUT;
	pthread_mutex_unlock(&x->mu);
	if (rc == 0 && cdl_dt_tune(c->fd, x->io_timeout_ms) < 0)
		rc = -EIO;
	if (rc < 0) {
		if (rc == -EPROTO)
			cdl_warn("dropping connection from '%s': bad data-transfer header",
				 c->peer);
		else if (rc == -ETIMEDOUT || rc == -EAGAIN)
			cdl_debug("dropping connection from '%s': no header within %d ms", c->peer,
				  htmo);
		else
			cdl_debug("connection from '%s' closed before its header: %s", c->peer,
				  strerror(-rc));
		goto out;
	}
	int64_t t0 = cdl_now_ns();
	switch (h->op) {
	case CAUDAL__DT_OP__DT_READ:
		serve_read(c, h);
		cdl_series_observe(dm.op_read, cdl_metrics_since(t0));
		break;
	case CAUDAL__DT_OP__DT_WRITE:
		serve_write(c, h);
		cdl_series_observe(dm.op_write, cdl_metrics_since(t0));
		break;
	case CAUDAL__DT_OP__DT_TRANSFER:
		serve_transfer(c, h);
		cdl_series_observe(dm.op_transfer, cdl_metrics_since(t0));
		break;
	default:
		cdl_warn("dropping connection from '%s': unknown operation %d", c->peer,
			 (int)h->op);
		send_refusal(c->fd, EINVAL, "unknown operation", 0);
		break;
	}
out:
	if (h)
		protobuf_c_message_free_unpacked(&h->base, NULL);
	pthread_mutex_lock(&x->mu);
	if (c->prev)
		c->prev->next = c->next;
	else
		x->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	__atomic_sub_fetch(&x->active, 1, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
	close(c->fd);
	free(c);
	return NULL;
}

static void peer_name(const struct sockaddr_storage *ss, char *out, size_t n, char *addr,
		      size_t addrn)
{
	char a[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
		port = ntohs(s4->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
		port = ntohs(s6->sin6_port);
	}
	snprintf(out, n, "%s:%d", a, port);
	snprintf(addr, addrn, "%s", a);
}

/* Cut off c, a connection still waiting for its header, so that its
 * thread ends; called with x->mu held. */
static void evict(conn *c, const char *why)
{
	cdl_debug("cutting off '%s' before its header: %s", c->peer, why);
	c->evicted = true;
	shutdown(c->fd, SHUT_RDWR);
}

/* Cut every connection that has not sent its header within
 * header_timeout_ms, however slowly it dribbles bytes. Called with x->mu
 * held. */
static void reap_headless(dn_xfer *x, int64_t now)
{
	for (conn *c = x->conns; c; c = c->next)
		if (!c->headed && !c->evicted && now - c->born_ms >= x->header_timeout_ms)
			evict(c, "header deadline passed");
}

/* Whether a new connection from addr may be served, making room when the
 * limits are reached: a peer at max_per_peer connections loses its oldest
 * one still waiting for a header, and at max connections in all the
 * busiest peer does. An idle socket costs its holder a slot, never
 * another client's. Called with x->mu held. */
static bool admit(dn_xfer *x, const char *addr, const char **why)
{
	unsigned mine = 0, live = 0;
	conn *my_idle = NULL;
	for (conn *c = x->conns; c; c = c->next) {
		if (c->evicted)
			continue; /* going away */
		live++;
		if (strcmp(c->addr, addr))
			continue;
		mine++;
		if (!c->headed && (!my_idle || c->born_ms <= my_idle->born_ms))
			my_idle = c;
	}
	if (mine >= (unsigned)x->max_per_peer) {
		if (!my_idle) {
			*why = "per-peer connection limit";
			return false;
		}
		evict(my_idle, "per-peer connection limit");
		live--;
	}
	if (live < (unsigned)x->max)
		return true;
	/* full: take an idle slot from the peer holding the most connections */
	conn *victim = NULL;
	unsigned most = 0;
	for (conn *c = x->conns; c; c = c->next) {
		if (c->evicted || c->headed)
			continue;
		unsigned cnt = 0;
		for (conn *d = x->conns; d; d = d->next)
			cnt += !d->evicted && !strcmp(d->addr, c->addr);
		if (cnt > most || (cnt == most && victim && c->born_ms < victim->born_ms)) {
			most = cnt;
			victim = c;
		}
	}
	if (!victim) {
		*why = "connection limit";
		return false;
	}
	evict(victim, "connection limit");
	return true;
}

static void *accept_main(void *arg)
{
	dn_xfer *x = arg;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (;;) {
		struct sockaddr_storage ss = {0};
		socklen_t sl = sizeof(ss);
		struct pollfd pfd = {.fd = x->lfd, .events = POLLIN};
		int pr = poll(&pfd, 1, REAP_MS);
		int fd = pr > 0 ? accept4(x->lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC) : -1;
		int aerr = errno;
		pthread_mutex_lock(&x->mu);
		bool stop = x->stopping;
		if (!stop)
			reap_headless(x, cdl_now_ms());
		pthread_mutex_unlock(&x->mu);
		if (stop) {
			if (fd >= 0)
				close(fd);
			break;
		}
		if (fd < 0) {
			if (pr > 0 && (aerr == EMFILE || aerr == ENFILE || aerr == ENOMEM)) {
				cdl_warn("cannot accept a data connection: %s", strerror(aerr));
				usleep(100 * 1000);
			}
			continue;
		}
		conn *c = xcalloc(1, sizeof(*c));
		c->x = x;
		c->fd = fd;
		c->down = -1;
		c->born_ms = cdl_now_ms();
		peer_name(&ss, c->peer, sizeof(c->peer), c->addr, sizeof(c->addr));
		pthread_mutex_lock(&x->mu);
		const char *why = NULL;
		/* evicted connections still hold threads until they notice: bound those too */
		if (x->active >= 2 * (unsigned)x->max || !admit(x, c->addr, &why)) {
			unsigned active = x->active, quiet = 0;
			bool say = may_log(&x->conn_log, &quiet);
			pthread_mutex_unlock(&x->mu);
			cdl_series_add(dm.refused, 1);
			if (say)
				cdl_warn("refusing data connection from '%s': %s (%u connections; "
					 "%u more refused unlogged)",
					 c->peer, why ? why : "connection limit", active, quiet);
			close(fd);
			free(c);
			continue;
		}
		c->next = x->conns;
		if (x->conns)
			x->conns->prev = c;
		x->conns = c;
		__atomic_add_fetch(&x->active, 1, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&x->mu);
		pthread_t t;
		if (pthread_create(&t, &attr, conn_main, c) != 0) {
			cdl_warn("cannot start a thread for '%s'", c->peer);
			pthread_mutex_lock(&x->mu);
			if (c->next)
				c->next->prev = NULL;
			x->conns = c->next;
			__atomic_sub_fetch(&x->active, 1, __ATOMIC_RELAXED);
			pthread_mutex_unlock(&x->mu);
			close(fd);
			free(c);
		}
	}
	pthread_attr_destroy(&attr);
	return NULL;
}

int dn_xfer_start(dn_store *s, const dn_xfer_opts *o, dn_xfer **out)
{
	pthread_once(&dm_once, dm_init);
	int port = 0;
	int lfd = cdl_dt_listen(o->host, o->port, &port);
	if (lfd < 0) {
		cdl_err("cannot listen on '%s:%d': %s", o->host, o->port, strerror(-lfd));
		return lfd;
	}
	dn_xfer *x = xcalloc(1, sizeof(*x));
	x->s = s;
	x->lfd = lfd;
	x->port = port;
	x->max = o->max_xceivers > 0 ? o->max_xceivers : 256;
	x->io_timeout_ms = o->io_timeout_ms > 0 ? o->io_timeout_ms : 60000;
	x->max_per_peer = o->max_conns_per_peer > 0 ? o->max_conns_per_peer : 64;
	x->header_timeout_ms = o->header_timeout_ms > 0 ? o->header_timeout_ms : 5000;
	x->keys = o->keys;
	x->require_tls = o->require_tls;
	pthread_mutex_init(&x->mu, NULL);
	pthread_cond_init(&x->cv, NULL);
	if (pthread_create(&x->acceptor, NULL, accept_main, x) != 0) {
		cdl_err("cannot start the data-transfer accept thread");
		close(lfd);
		pthread_mutex_destroy(&x->mu);
		pthread_cond_destroy(&x->cv);
		free(x);
		return -EAGAIN;
	}
	cdl_info("data transfer listening on '%s:%d'", o->host, port);
	*out = x;
	return 0;
}

int dn_xfer_port(const dn_xfer *x)
{
	return x->port;
}

unsigned dn_xfer_active(const dn_xfer *x)
{
	return __atomic_load_n(&x->active, __ATOMIC_RELAXED);
}

void dn_xfer_stop(dn_xfer *x)
{
	if (!x)
		return;
	pthread_mutex_lock(&x->mu);
	x->stopping = true;
	pthread_mutex_unlock(&x->mu);
	shutdown(x->lfd, SHUT_RDWR);
	pthread_join(x->acceptor, NULL);
	close(x->lfd);
	pthread_mutex_lock(&x->mu);
	for (conn *c = x->conns; c; c = c->next)
		shutdown(c->fd, SHUT_RDWR);
	while (x->active > 0)
		pthread_cond_wait(&x->cv, &x->mu);
	pthread_mutex_unlock(&x->mu);
	pthread_mutex_destroy(&x->mu);
	pthread_cond_destroy(&x->cv);
	free(x);
}

/* ---------------------------------------------------------------- replication */

/* Copy the first `limit` bytes (UINT64_MAX: all) of the local replica of
 * id under gen or newer to a pipeline of targets as a replica of out_gen
 * (0: the local replica's stamp). rbw_ok: a replica being written may be
 * the source, else -EAGAIN. -ERANGE if it holds fewer than limit bytes. */
static int copy_replica(dn_store *s, uint64_t id, uint64_t gen, uint64_t out_gen, uint64_t limit,
			bool rbw_ok, const Caudal__DtTarget *const *targets, size_t ntargets,
			const ProtobufCBinaryData *token, const char *self, int timeout_ms)
{
	dn_rd rd;
	int rc = dn_store_open_read(s, id, gen, &rd);
	if (rc < 0)
		return rc;
	if (rd.rbw && !rbw_ok) {
		dn_rd_release(&rd);
		return -EAGAIN;
	}
	uint64_t len = rd.len;
	if (limit != UINT64_MAX) {
		if (len < limit) {
			dn_rd_release(&rd);
			return -ERANGE;
		}
		len = limit;
	}
	cdl_block_writer *w = NULL;
	rc = cdl_block_writer_open(targets, ntargets, id, out_gen ? out_gen : rd.gen, token, self,
				   timeout_ms, &w);
	if (rc < 0)
		goto out;
	uint8_t *buf = xmalloc(CDL_CHUNK);
	uint64_t nchunks = (len + CDL_CHUNK - 1) / CDL_CHUNK;
	for (uint64_t idx = 0; idx < nchunks; idx++) {
		size_t n;
		uint64_t sum;
		rc = dn_rd_chunk(&rd, idx, buf, &n, &sum);
		if (rc == -EBADMSG) {
			char why[64];
			snprintf(why, sizeof(why), "checksum mismatch in chunk %" PRIu64, idx);
			dn_store_mark_corrupt(s, id, rd.gen, why);
		}
		/* a chunk is verified whole, then cut to the bytes wanted */
		if (rc == 0 && idx * CDL_CHUNK + n > len)
			n = (size_t)(len - idx * CDL_CHUNK);
		if (rc == 0)
			rc = cdl_block_writer_write(w, buf, n);
		if (rc < 0)
			break;
	}
	free(buf);
	if (rc < 0) {
		cdl_block_writer_abort(w);
		goto out;
	}
	uint64_t wrote;
	rc = cdl_block_writer_close(w, false, &wrote);
out:
	dn_rd_release(&rd);
	return rc;
}

int dn_xfer_replicate(dn_store *s, uint64_t id, uint64_t gen,
		      const Caudal__DtTarget *const *targets, size_t ntargets,
		      const ProtobufCBinaryData *token, const char *self, int timeout_ms)
{
	pthread_once(&dm_once, dm_init);
	int64_t t0 = cdl_now_ns();
	int rc = copy_replica(s, id, gen, 0, UINT64_MAX, false, targets, ntargets, token, self,
			      timeout_ms);
	cdl_series_observe(dm.op_replicate, cdl_metrics_since(t0));
	return rc;
}
