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
	uint64_t capacity, used, remaining;
	uint32_t xceivers;
	int64_t last_hb_ms;
	bool alive;
	bool decommissioning;
	bool decommissioned;	/* drained: safe to stop */
	uint64_t decom_pending; /* its replicas still short of copies elsewhere */
	uint32_t nblocks;
	nn_cmd *cmds, *cmds_tail; /* queued for the next heartbeat */
	uint32_t ncmds;
} nn_dn;

typedef struct nn_blk {
	uint64_t id, gen, len;
	uint64_t ino;
	uint32_t repl;
	bool uc; /* being written: not re-replicated yet */
	uint16_t nloc, locap;
	uint16_t *locs; /* datanode indices */
	uint16_t ncorrupt, corcap;
	uint16_t *corrupt;	  /* datanode indices with a corrupt replica */
	int64_t pending_until_ms; /* replication scheduled; wait before retrying */
} nn_blk;

typedef struct nn_blocks {
	nn_dn *dns[NN_MAX_DN];
	int ndn;
	struct nn_blkmap *map;
	nn_topology *topo;
	int64_t dead_ms;
	int64_t last_monitor_ms;
	uint64_t seed;
	uint64_t nblocks, nreported; /* blocks, blocks with >=1 replica (safe mode) */
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

/* One pass of the monitor: mark dead datanodes, schedule re-replication
 * (fewest live replicas first) and removal of excess replicas. Does
 * nothing to replicas while safemode is set. */
void nn_blocks_monitor(nn_blocks *b, int64_t now, bool safemode);

/* Iterate every block (for fsck-style counts). */
typedef void (*nn_blk_fn)(nn_blk *k, void *arg);
void nn_blocks_foreach(nn_blocks *b, nn_blk_fn fn, void *arg);

#endif
