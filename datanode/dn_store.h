/* dn_store: the block store of a datanode's data directories (volumes).
 *
 * A datanode has one or more data directories, usually one per disk
 * (JBOD, HDFS's dfs.datanode.data.dir). Each has the same layout:
 *
 *   DIR/datanode_id            persistent datanode uuid (made at first start
 *                              in the first directory, copied to the others)
 *   DIR/cluster_id             the namenode's cluster id, once registered
 *   DIR/in_use.lock            flock'ed while a datanode runs on DIR
 *   DIR/disk_check             the volume probe's file, briefly
 *   DIR/current/XX/blk_I_G     finalized replica of block I, generation G
 *                              (XX = I % 64 in hex)
 *   DIR/current/XX/blk_I_G.xxh sidecar: little-endian uint64 XXH3-64 per
 *                              64 KiB chunk
 *   DIR/tmp/blk_I_G.N          replicas being written (rbw), N unique
 *   DIR/tmp/blk_I_G.N.sync     length made durable by the last hsync
 *   DIR/corrupt/               replicas whose checksums failed, kept aside
 *
 * A replica lives wholly in one directory; the map remembers which. A new
 * replica goes to the healthy, not full directory with the most free bytes
 * (less the reserve, and less an allowance per replica being written there,
 * so that concurrent writers spread). A directory is full when its free
 * space drops to the reserve or a write there fails with ENOSPC; it takes
 * no new replicas until the space is back (logged once each way). A
 * directory whose I/O fails with EIO (or EROFS, ...) and whose probe (a
 * small file written, fsynced, read back) then fails too is failed for
 * good: its replicas leave the map and are reported deleted, so that the
 * namenode copies them elsewhere. More failed directories than tolerated
 * (or none left) is fatal: the store calls its on_fatal hook.
 *
 * A replica being written is renamed into current/ when finalized. When
 * its writer goes away mid-block it is first parked (dn_wr_park), still
 * open, so that a pipeline recovery (dn_store_recover) can continue it
 * under a new generation; only then is it abandoned. At start
 * the store scans current/ (a replica whose sidecar does not fit its length
 * is moved aside), recovers hsynced replicas from tmp/ up to their synced
 * length and drops the rest of tmp/.
 *
 * Threads: every function is thread-safe (one mutex guards the map, the
 * volumes' states and the renames; file I/O happens outside it). The
 * data-transfer connection threads read and write replicas, the namenode
 * thread deletes and lists them, the scanner verifies them, the disk
 * checker (a thread of the store) probes the volumes. A dn_wr and a dn_rd
 * belong to the thread that opened them. The listener is called outside
 * the lock from whichever thread caused the event. */
#ifndef DN_STORE_H
#define DN_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct dn_store dn_store;

enum dn_event {
	DN_EV_RECEIVED, /* a replica was finalized */
	DN_EV_DELETED,	/* a replica was removed */
	DN_EV_CORRUPT,	/* a replica failed its checksums and is no longer served */
};

typedef void (*dn_store_listener)(void *ctx, enum dn_event ev, uint64_t id, uint64_t gen,
				  uint64_t len);

typedef struct dn_store_opts {
	uint64_t reserved;    /* bytes per directory left free for other uses */
	int failed_tolerated; /* failed directories the store goes on with */
	int check_ms;	      /* probe every directory this often (0: never) */
	/* called once, from the thread that found it, when more directories
	 * failed than tolerated; the store keeps serving what it still can */
	void (*on_fatal)(void *ctx);
	void *fatal_ctx;
} dn_store_opts;

/* Largest number of data directories. */
#define DN_MAX_VOLS 64

/* Open (creating if needed) the store in dirs (one directory, or several
 * separated by commas) and scan it. A directory that cannot be created,
 * locked, probed or scanned counts as failed; more than tolerated fails
 * the open with its error. Directories that carry different datanode or
 * cluster ids, or one listed twice, are refused (-EINVAL). 0 or -errno
 * (-EBUSY: another datanode holds the directory). o may be NULL (no
 * reserve, none tolerated, no checker). */
int dn_store_open_opts(const char *dirs, const dn_store_opts *o, dn_store **out);
int dn_store_open(const char *dirs, dn_store **out);
void dn_store_free(dn_store *s);
/* Set before any traffic; called for every event afterwards. */
void dn_store_set_listener(dn_store *s, dn_store_listener fn, void *ctx);

const char *dn_store_id(const dn_store *s);
/* The directories as configured (comma-separated). */
const char *dn_store_dir(const dn_store *s);
/* The cluster id remembered from the namenode; "" when none yet. Lent
 * until the next dn_store_set_cluster. Called from the namenode thread. */
const char *dn_store_cluster(const dn_store *s);
int dn_store_set_cluster(dn_store *s, const char *cluster);

/* Sums over the healthy directories. */
typedef struct dn_usage {
	uint64_t capacity;  /* bytes of the volumes, less the reserves */
	uint64_t used;	    /* bytes of finalized block and sidecar files */
	uint64_t remaining; /* bytes free for replicas (0 on a full volume) */
	uint32_t blocks;    /* finalized replicas */
} dn_usage;
int dn_store_usage(dn_store *s, dn_usage *u);

/* ---- volumes */

typedef struct dn_vol dn_vol;

typedef struct dn_vol_info {
	const char *dir; /* lent for the store's life */
	bool failed, full;
	size_t replicas; /* finalized replicas held */
	uint64_t used;	 /* their bytes, with sidecars */
} dn_vol_info;
/* The directories in configured order; returns how many there are (fills
 * at most max). */
size_t dn_store_volumes(dn_store *s, dn_vol_info *v, size_t max);
int dn_store_failed_volumes(dn_store *s);
/* Index of the directory holding finalized replica id, or -ENOENT. */
int dn_store_volume_of(dn_store *s, uint64_t id);
/* Probe every healthy directory now (what the checker thread does):
 * refreshes the full states and fails the directories whose probe fails.
 * Returns the number of failed directories. */
int dn_store_check(dn_store *s);

typedef struct dn_replica_info {
	uint64_t id, gen, len;
} dn_replica_info;
/* Snapshot of the finalized replicas; *out is the caller's to free. */
size_t dn_store_list(dn_store *s, dn_replica_info **out);
/* Whether a finalized replica of id with generation gen or newer is held
 * (and its length). */
bool dn_store_has(dn_store *s, uint64_t id, uint64_t gen, uint64_t *len);

/* ---- reading */

typedef struct dn_rd {
	int fd;
	uint64_t id, gen;
	uint64_t len;	/* bytes readable */
	bool rbw;	/* being written: checksums are computed from the data */
	uint64_t *sums; /* finalized: the sidecar, one per chunk */
	uint64_t nsums;
	dn_vol *vol; /* where it lives: an I/O error there gets it checked */
} dn_rd;

/* Open replica id for reading; its generation must be gen or newer.
 * Finalized replicas come first, then ones being written (readable up to
 * what has been written). 0, -ENOENT, or -errno. */
int dn_store_open_read(dn_store *s, uint64_t id, uint64_t gen, dn_rd *rd);
/* Read chunk idx into buf (CDL_CHUNK bytes). *n is its length, *sum the
 * checksum to send (the stored one). Returns 0, -EBADMSG if the data does
 * not match the sidecar (buf, *n and *sum are still set), or -errno. */
int dn_rd_chunk(dn_rd *rd, uint64_t idx, void *buf, size_t *n, uint64_t *sum);
/* The same for up to cnt chunks from idx on, with one read: buf holds cnt
 * chunks, n[] and sum[] one entry each. Returns how many chunks are set
 * (>= 1); when one does not match the sidecar it is the last returned and
 * *bad is set. -errno on an I/O error. */
int dn_rd_chunks(dn_rd *rd, uint64_t idx, unsigned cnt, void *buf, size_t *n, uint64_t *sum,
		 bool *bad);
void dn_rd_release(dn_rd *rd);

/* Stop serving a finalized replica whose checksums failed: move its files
 * to corrupt/ and raise DN_EV_CORRUPT. -ENOENT if it is no longer held
 * (someone else already did it). */
int dn_store_mark_corrupt(dn_store *s, uint64_t id, uint64_t gen, const char *why);

/* ---- writing */

typedef struct dn_wr dn_wr;

/* Start a new replica of (id, gen) in tmp/ of the directory with the most
 * room. A newer writer of the same block supersedes an older one. -ESTALE
 * if a finalized replica with a newer generation is held, -ENOSPC if no
 * directory can take it. */
int dn_store_create(dn_store *s, uint64_t id, uint64_t gen, dn_wr **out);
/* Append n bytes. sum is XXH3 of these bytes (already verified by the
 * caller); it saves hashing when the bytes are exactly one chunk. */
int dn_wr_append(dn_wr *w, const void *data, size_t n, uint64_t sum);
/* hsync: make every byte appended so far durable. */
int dn_wr_sync(dn_wr *w);
uint64_t dn_wr_length(const dn_wr *w);
/* Write the sidecar, optionally fsync, rename into current/ (replacing an
 * older generation) and raise DN_EV_RECEIVED. Frees w in every case. */
int dn_wr_finalize(dn_wr *w, bool sync);
/* The writer went away: keep the hsynced prefix if there is one
 * (finalized at that length), else drop the files. Frees w. */
void dn_wr_abandon(dn_wr *w);

/* ---- pipeline recovery (fs/cdl_dt.h) */

/* The writer's upstream went away before the last packet: keep w open so
 * that a pipeline recovery can take it over, for up to ms, checking
 * cancel(ctx) (may be NULL) every 100 ms to give up early (shutdown).
 * Returns true if a recovery took w over (it is no longer the caller's),
 * false if not (w is the caller's again, typically for dn_wr_abandon). */
bool dn_wr_park(dn_wr *w, int ms, bool (*cancel)(void *), void *ctx);
/* Take over the replica of block id being written under a generation in
 * [old_gen, gen) (a parked writer; one still writing is waited for up to
 * wait_ms, the caller having cut its connections; or a finalized replica,
 * reopened), cut it to offset bytes, rebuild the checksum state of its
 * partial last chunk from disk, and rename it to generation gen in tmp/.
 * *out then continues it like a dn_store_create writer. 0, -ENOENT (no such
 * replica), -EBUSY (its writer did not let go in time), -ERANGE (shorter
 * than offset; it is abandoned), -ESTALE (gen not newer), -errno. */
int dn_store_recover(dn_store *s, uint64_t id, uint64_t old_gen, uint64_t gen, uint64_t offset,
		     int wait_ms, dn_wr **out);

/* The length of the replica dn_store_recover(id, old_gen, gen) would take
 * (the one being written, else the finalized one): bytes written so far.
 * 0 or -ENOENT. For lease recovery (CMD_RECOVER), which keeps what a
 * replica holds. */
int dn_store_replica_length(dn_store *s, uint64_t id, uint64_t old_gen, uint64_t gen,
			    uint64_t *len);

/* Remove a finalized replica (gen 0 = whatever generation is held) and
 * raise DN_EV_DELETED. Also removes a corrupt copy kept aside. 0 or
 * -ENOENT. */
int dn_store_delete(dn_store *s, uint64_t id, uint64_t gen);

#endif
