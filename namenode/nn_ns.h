/* nn_ns: the namenode's state and every ClientProtocol and
 * DatanodeProtocol operation. The namespace lives in RocksDB (nn_store);
 * each operation reads what it needs, builds one write batch (records,
 * counters and its namespace event) and commits it before answering.
 * Block locations, datanodes and leases are soft state (nn_blocks).
 *
 * Locking: one mutex (ns->lock) serialises every operation, as HDFS's
 * namesystem lock does; RPC worker threads and the monitor thread take it.
 * In sync=always mode an operation's WAL sync happens after it releases
 * the lock and before it answers, so concurrent operations share syncs.
 * GetEvents waits on ns->txcond without holding it.
 *
 * Blocks leave the block map (and their replicas are deleted) only once
 * the transaction that removed them is durable: the WAL sync's callback
 * (nn_store_on_synced) frees them, whichever thread synced. Fsck and a
 * recursive delete walk in steps and let go of the lock between them; a
 * deleted tree's records are removed after its entry, partly by the
 * monitor thread (nn_ns_tick). */
#ifndef NN_NS_H
#define NN_NS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "cdl_rpc.h"
#include "nn_blocks.h"
#include "nn_store.h"

/* Largest inline_max: inline bytes travel in the inode record and in one
 * RPC message. */
#define NN_INLINE_CAP (1 << 20)

/* Supplementary groups a Cred may carry. */
#define NN_MAX_GROUPS 64

typedef struct nn_conf {
	char *dir;	      /* metadata directory */
	int64_t block_size;   /* default bytes per block */
	int64_t replication;  /* default replicas per block */
	int64_t lease_ms;     /* a lease not renewed for this long expires */
	int64_t heartbeat_ms; /* interval asked of datanodes */
	int64_t report_ms;    /* full block report interval asked of datanodes */
	int64_t dead_ms;      /* a datanode silent this long is dead */
	int64_t safemode_pct; /* leave safe mode when this % of blocks have a replica */
	int64_t events_keep;  /* namespace events kept in the log */
	bool sync_always;     /* sync the WAL on every operation */
	int64_t batch_ms;     /* batch mode: WAL sync interval */
	int64_t reserved_mb;  /* mutations fail with ENOSPC below this much free (0: no check) */
	char *topology;	      /* host -> rack file */

	/* block access tokens (nn_token.h) */
	int64_t token_lifetime_ms; /* a token is valid this long (0: 10 min) */
	int64_t token_key_roll_ms; /* the signing key changes this often (0: 1 hour) */
	bool encrypt_data;	   /* tell clients to use TLS on the data port */

	/* larger file sizes get EFBIG (0: 1 PiB) */
	int64_t max_file_size;
	/* RocksDB block cache, MiB (0: 256) */
	int64_t cache_mb;

	/* a file of at most this many bytes (and at most its block size) lives
	 * in its inode record, without blocks (0: off; at most NN_INLINE_CAP) */
	int64_t inline_max;

	char *exports; /* exports file (nn_exports.h); NULL or "": none */

	/* the trash (HDFS's fs.trash.interval): removals move to
	 * /user/NAME/.Trash/Current; every this many ms Current becomes a
	 * checkpoint and checkpoints this old go (0: trash off) */
	int64_t trash_interval_ms;

	/* hosts files (nn_hosts.h, HDFS's dfs.hosts and dfs.hosts.exclude):
	 * only datanodes the include file names may register (none set or
	 * empty: any), those the exclude file names are decommissioned */
	char *hosts, *hosts_exclude;

	/* write-back creates (Batch): a directory hold lapses this long after
	 * its holder's last Batch (0: 2000; 50..60000) */
	int64_t hold_ms;
} nn_conf;

/* A directory's quotas and usage (QuotaRec, 'Q' records): -1 is no quota. */
typedef struct nn_quota {
	uint64_t ino;
	int64_t nsq, dsq;
	uint64_t nsu, dsu;
} nn_quota;

/* Largest quota value, names or bytes (HDFS's Long.MAX_VALUE). */
#define NN_QUOTA_MAX INT64_MAX

struct nn_lease;
struct nn_hold;
struct nn_resv;
struct nn_recovery;
struct nn_hosts;
struct nn_token;
struct nn_exports;

typedef struct nn_ns {
	pthread_mutex_t lock;
	pthread_cond_t txcond;
	nn_conf conf;
	nn_store *st;
	nn_blocks *bl;
	uint64_t next_ino, next_block, txid, first_txid, inodes;
	/* files kept inline and their bytes: counted at load, moved by each
	 * commit (nn_check recounts them) */
	uint64_t inline_files, inline_bytes;
	/* regular files and directories: counted at load, moved by each commit
	 * (nn_check recounts them) */
	uint64_t files, dirs;
	char *cluster;
	bool safemode;
	uint64_t uc_blocks; /* blocks under construction when loaded (not awaited in safe mode) */
	int64_t started_ms;
	struct nn_lease *leases;
	struct nn_token *tok;	    /* block access tokens and their keys (nn_token.h) */
	struct nn_exports *exports; /* who may act for other uids; NULL: every mount */
	volatile bool stopping;
	uint64_t ops; /* operations served, for /metrics */
	uint64_t ops_failed;
	uint64_t synced_txid;	  /* every transaction up to this one is durable */
	struct nn_doomed *doomed; /* blocks of committed removals, freed once synced */
	size_t ndoomed, capdoomed;
	bool reap_pending; /* a deleted subtree is left to remove (nn_ns_tick retries) */
	struct nn_recovery *recoveries; /* lease recoveries waiting for datanodes */
	/* every quota'd directory, by inode id; loaded at start, moved by each
	 * commit with the records (nn_check recounts them) */
	nn_quota *quotas;
	size_t nquotas, capquotas;
	int64_t trash_next_ms;		    /* the trash emptier's next round (monotonic ms) */
	struct nn_hosts *include, *exclude; /* the hosts files as last read (NULL: none) */
	struct nn_web *web;		    /* WebHDFS: answers WebCall (NULL: refused) */
	/* directories held by Batch callers (in memory only), by inode id */
	struct nn_hold *holds;
	size_t nholds, capholds;
	struct {
		uint64_t dir;
		int64_t until_ms;
	} cool[64];	    /* directories whose recalled hold just ended (nn_ns.c) */
#define NN_HOLD_COOL_MS 300 /* how long (at most hold_ms) nobody takes those */
	/* each Batch caller's reserved inode ids ('R' records, loaded at start) */
	struct nn_resv *resvs;
	size_t nresvs, capresvs;
	uint64_t resv_seq; /* the next reservation's age stamp (the oldest is evicted) */
} nn_ns;

/* Open (formatting an empty directory) and load block map and leases. */
int nn_ns_open(const nn_conf *conf, nn_topology *topo, nn_ns **out);
void nn_ns_close(nn_ns *ns);

/* Add both services to an RPC server. */
int nn_ns_register(nn_ns *ns, cdl_rpc_server *srv);

/* Run ClientProtocol method (by its .proto name) in-process, as the RPC
 * server would for req, without a peer: req's Cred is who acts (none:
 * root), so an in-process caller passes the Cred it means. The reply lives
 * in a; NULL for an unknown method or a req of the wrong type. */
ProtobufCMessage *nn_ns_call_local(nn_ns *ns, const char *method, const ProtobufCMessage *req,
				   cdl_arena *a);

/* Periodic work: dead datanodes, replication, lease expiry, safe mode. */
void nn_ns_tick(nn_ns *ns);

/* Wake long polls so shutdown does not wait for them. */
void nn_ns_stop(nn_ns *ns);

/* Run ClientProtocol method `method` (its index in the service, as
 * enum cdl_nn_method) in-process as the caller `as`, exactly as the RPC
 * layer would for that certificate: the method's role mask is checked
 * (-EACCES, logged) and the handler sees `as` as its peer, so its own
 * identity mapping and permission checks apply. reply is initialised here
 * for the method's output type; everything it points at lives in arena.
 * -EINVAL for an unknown method. For in-process callers that verified
 * the identity themselves (WebHDFS); never pass a NULL `as`. */
int nn_ns_call(nn_ns *ns, unsigned method, const cdl_peer *as, const ProtobufCMessage *req,
	       ProtobufCMessage *reply, cdl_arena *arena);
/* The uid, gid and groups (into groups, NN_MAX_GROUPS) of the local user
 * name, as a user certificate maps; false when there is no such user. */
bool nn_ns_user_cred(const char *name, Caudal__Cred *cred, uint32_t *groups);

/* WebHDFS (namenode/nn_web.h), set before the RPC server starts: WebCall
 * is answered by it. */
struct nn_web;
void nn_ns_set_web(nn_ns *ns, struct nn_web *web);

/* Text status for the HTTP page; caller frees. */
char *nn_ns_status_text(nn_ns *ns);
/* Export the namespace sizes, block states and datanode totals into r
 * (read under the lock at each render); once, after nn_ns_open. */
struct cdl_metrics;
int nn_ns_metrics(nn_ns *ns, struct cdl_metrics *r);

#endif
