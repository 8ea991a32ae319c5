/* nn_blocks: the namenode's soft state — registered datanodes, the block
 * map (block id -> owning inode, wanted replication, replica locations),
 * the commands queued for each datanode, and the replication monitor's
 * decisions. Locations are rebuilt from block reports after a restart.
 * Not thread-safe: every call is made with the namenode lock held. */
#ifndef NN_BLOCKS_H
#define NN_BLOCKS_H

#include <stdbool.h>
#include <stdint.h>

#include "caudal.pb-c.h"
#include "nn_place.h"

#define NN_MAX_DN 1024

typedef struct nn_cmd nn_cmd;

typedef struct nn_dn {
	int idx;
	char *id, *host, *rack;
	uint32_t port;
	uint32_t http_port; /* WebHDFS data side (0: none) */
	uint64_t capacity, used, remaining;
	uint32_t xceivers;
	int64_t last_hb_ms;
	bool alive;
	bool decommissioning;
	bool decommissioned;	/* drained: safe to stop */
	bool by_hosts;		/* decommissioning because the exclude file names it */
	uint64_t decom_pending; /* its replicas still short of copies elsewhere */
	uint32_t nblocks;
	nn_cmd *cmds, *cmds_tail; /* queued for the next heartbeat */
	uint32_t ncmds;
	uint32_t ndeletes; /* of ncmds, replica deletions (/metrics) */
} nn_dn;

typedef struct nn_blk {
	uint64_t id, gen, len;
	uint64_t ino;
	uint32_t repl;
	bool uc; /* being written: not re-replicated yet */
	uint16_t nloc, locap;
	uint16_t *locs; /* datanode indices */
	uint16_t ncorrupt, corcap;
	/* uc: a replica kept by a report is this far above gen, a stamp a
	 * pipeline recovery handed out and never committed (0: none) */
	uint32_t ahead;
	uint16_t *corrupt;	  /* datanode indices with a corrupt replica */
	int64_t pending_until_ms; /* replication scheduled; wait before retrying */
	uint16_t move_from;	  /* balancer: 1 + the datanode whose replica goes once
				   * the copy is in (0: none) */
} nn_blk;

/* Stamps and replacement datanodes pipeline recoveries handed out
 * (UpdatePipeline prepare), remembered for the commit and the block
 * reports; the oldest are forgotten past NN_MAX_OFFERS. */
#define NN_MAX_OFFERS 4096
typedef struct nn_offer {
	uint64_t block, gen;
	int dn; /* datanode index, -1: the stamp alone */
} nn_offer;

typedef struct nn_blocks {
	nn_dn *dns[NN_MAX_DN];
	int ndn;
	struct nn_blkmap *map;
	nn_topology *topo;
	int64_t dead_ms;
	int64_t last_monitor_ms;
	uint64_t seed;
	uint64_t nblocks, nreported; /* blocks, blocks with >=1 replica (safe mode) */
	/* counted by the last monitor pass, for /metrics: complete blocks with
	 * fewer live replicas than wanted (but some), with a corrupt replica,
	 * with no replica at all, and with a copy scheduled */
	uint64_t n_under, n_corrupt, n_missing, n_pending_repl;
	nn_offer *offers; /* ring of NN_MAX_OFFERS, allocated on first use */
	uint32_t noffers, offer_next;
	uint64_t move_cursor; /* balancer: the map slot its next scan starts at */
} nn_blocks;

nn_blocks *nn_blocks_new(nn_topology *topo, int64_t dead_ms);
void nn_blocks_free(nn_blocks *b);

/* ---- datanodes */
nn_dn *nn_dn_find(nn_blocks *b, const char *id);
/* Register or refresh a datanode from its info; returns it (NULL: too many). */
nn_dn *nn_dn_register(nn_blocks *b, const Caudal__DatanodeInfo *info, int64_t now);
void nn_dn_heartbeat(nn_blocks *b, nn_dn *d, const Caudal__DatanodeInfo *info, int64_t now);
/* Move up to max queued commands into a heartbeat reply (allocated in arena). */
struct cdl_arena;
void nn_dn_take_commands(nn_blocks *b, nn_dn *d, Caudal__HeartbeatReply *r, struct cdl_arena *a,
			 unsigned max);
void nn_dn_queue_delete(nn_dn *d, uint64_t id, uint64_t gen);
/* Ask d to re-read its replica of block id against its checksums (once per
 * block; false when too many are queued already). */
bool nn_dn_queue_verify(nn_dn *d, uint64_t id, uint64_t gen);
/* Fill a DatanodeInfo; strings are copied into a (borrowed from d if a is NULL). */
void nn_dn_info(const nn_dn *d, Caudal__DatanodeInfo *info, int64_t now, struct cdl_arena *a);
/* Apply a full block report; replicas the namespace does not know are
 * queued for deletion. */
void nn_dn_block_report(nn_blocks *b, nn_dn *d, Caudal__Replica **reps, size_t n);
void nn_dn_received(nn_blocks *b, nn_dn *d, const Caudal__Replica *r);
void nn_dn_deleted(nn_blocks *b, nn_dn *d, const Caudal__Replica *r);
void nn_dn_corrupt(nn_blocks *b, nn_dn *d, uint64_t id);
int nn_dn_live_count(const nn_blocks *b);

/* ---- blocks */
nn_blk *nn_blk_get(nn_blocks *b, uint64_t id);
nn_blk *nn_blk_add(nn_blocks *b, uint64_t id, uint64_t gen, uint64_t len, uint64_t ino,
		   uint32_t repl);
/* Forget a block and ask every datanode holding it to delete it. */
void nn_blk_remove(nn_blocks *b, uint64_t id);
void nn_blk_add_loc(nn_blocks *b, nn_blk *k, int dn);
void nn_blk_del_loc(nn_blocks *b, nn_blk *k, int dn);
/* Live, non-corrupt replicas. */
int nn_blk_live(const nn_blocks *b, const nn_blk *k);

/* Choose pipeline targets for a new block (dn indices into out). */
size_t nn_blocks_choose(nn_blocks *b, const char *writer_host, char **excluded, size_t nexcluded,
			size_t want, int *out);
/* Choose up to want replacement datanodes for the pipeline of block k
 * (HDFS getAdditionalDatanode): live, in service, not among pipeline[]
 * (datanode indices), k's locations or the excluded ids, placed by the rack
 * rule relative to the pipeline. Returns how many went to out. */
size_t nn_blocks_choose_more(nn_blocks *b, const nn_blk *k, const int *pipeline, size_t npipeline,
			     char **excluded, size_t nexcluded, size_t want, int *out);

/* ---- pipeline recovery (UpdatePipeline)
 * A prepare hands out stamp gen for block id, and maybe replacement
 * datanodes: remember them (dn -1: the stamp alone). The commit takes as
 * locations only current ones and ones handed out for the block; a block
 * report keeps a replica of a block under construction whose stamp is
 * newer than the record if it was handed out, or is at most
 * NN_GEN_AHEAD_MAX above it (after a restart of the namenode, which
 * forgets what it handed out), and notes it in k->ahead. */
#define NN_GEN_AHEAD_MAX 16
void nn_blk_offer(nn_blocks *b, uint64_t id, uint64_t gen, int dn);
bool nn_blk_offered_dn(const nn_blocks *b, uint64_t id, int dn);
bool nn_blk_offered_gen(const nn_blocks *b, uint64_t id, uint64_t gen);

/* One pass of the monitor: mark dead datanodes, schedule re-replication
 * (fewest live replicas first) and removal of excess replicas. Does
 * nothing to replicas while safemode is set. */
void nn_blocks_monitor(nn_blocks *b, int64_t now, bool safemode);

/* The Balancer's move (issue 11; HDFS's Dispatcher): copy up to max_blocks
 * replicas, at most max_bytes in all, from src to dst, each of a block that
 * is complete, has exactly its wanted live replicas, one on src and none on
 * dst, is not being copied already, and keeps as many racks after the move
 * as before. src sends each copy (a CMD_REPLICATE on its next heartbeat);
 * once dst reports it, the monitor removes src's replica as the excess.
 * Returns the bytes scheduled, their count in *nblocks. */
uint64_t nn_blocks_move(nn_blocks *b, nn_dn *src, nn_dn *dst, uint64_t max_bytes,
			uint32_t max_blocks, int64_t now, uint32_t *nblocks);

/* Iterate every block (for fsck-style counts). */
typedef void (*nn_blk_fn)(nn_blk *k, void *arg);
void nn_blocks_foreach(nn_blocks *b, nn_blk_fn fn, void *arg);

#endif
