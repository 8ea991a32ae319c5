/* mnt_wb: write-back creates (issue 9). A create through FUSE that waits
 * for the namenode costs a gRPC round trip; here a directory this mount
 * knows whole (mnt_dcache) is *held* from the namenode (Batch take: an
 * exclusive lock on its entries, fs/caudal.proto), new files in it are
 * answered at once under inode ids the namenode reserved for this mount,
 * and what was made goes to the namenode in batches: a file closed with at
 * most inline_max bytes travels whole (create and inline bytes in one op).
 *
 * A file is *pending* from its local create until the namenode's reply
 * for its op. Before any other namenode call that names a pending inode or
 * a held directory (mnt_call runs mnt_wb_barrier), the mount settles them:
 * open pending files are made at the namenode under this mount's lease (the
 * handle then writes on as any file), queued ones are sent, and held
 * directories are given back. A thread sends the queue within WB_DELAY_MS
 * (or at WB_BATCH ops), renews holds, gives back a directory idle for
 * WB_IDLE_MS or that the namenode says another caller waits for.
 *
 * What this costs in guarantees (docs/decisions.md, "Write-back creates"):
 * close() returns before the namenode has the file. Other clients see it
 * within milliseconds (they wait for the give-back, never see a half
 * state); fsync of the file or of its directory waits for it; a mount
 * killed in that window loses those files, as a local filesystem loses
 * what it had not written back. An op the namenode refuses (which the hold
 * and the local checks make rare: a permission changed on an ancestor, a
 * namenode restart with holds lost and a name taken meanwhile) is logged
 * with the file's name and the file disappears.
 *
 * Thread-safe: one mutex for the tables, one for sending (one Batch in
 * flight). */
#ifndef MNT_WB_H
#define MNT_WB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "caudal.pb-c.h"

#define WB_DELAY_MS   2		  /* a queued op waits at most this long for company */
#define WB_BATCH      128	  /* ops per Batch at most */
#define WB_CALL_BYTES (8u << 20)  /* and inline bytes per Batch */
#define WB_IDLE_MS    50	  /* a held directory unused this long is given back */
#define WB_RETRY_MS   10	  /* an op another caller waits on is sent again after this */
#define WB_BACKOFF_MS 1000	  /* a directory recalled is not taken again for this long */
#define WB_PENDING    4096	  /* pending files at most; a create past it waits */
#define WB_DATA	      (32u << 20) /* their bytes at most */
#define WB_RESERVE    1024	  /* inode ids asked for at a time */
#define WB_HOLDS      32	  /* directories held at once at most */

struct mnt;
struct mnt_wb;

/* Start (the sending thread); m->wb is set. 0 or -errno. */
int mnt_wb_start(struct mnt *m);
/* Send everything, give every directory back, stop the thread, free. */
void mnt_wb_stop(struct mnt *m);

/* Make file name (mode: permission bits) in parent for cred here: 0 with
 * *out its attributes, or -EAGAIN: create it the usual way. */
int mnt_wb_create(struct mnt *m, uint64_t parent, const char *name, uint32_t mode,
		  const Caudal__Cred *cred, Caudal__Attr *out);
/* The pending file ino was closed holding data[0..len) (len at most
 * mnt_wb_inline_max): queue it whole. -EAGAIN: it is not pending in the
 * open state (settled meanwhile: mnt_wb_made tells). */
int mnt_wb_close(struct mnt *m, uint64_t ino, const void *data, size_t len);
/* ino was pending and is now made at the namenode, open for writing under
 * this mount's lease: 0 with *out its attributes (once), -errno if the
 * namenode refused it, -ENOENT if ino is not in that state. */
int mnt_wb_made(struct mnt *m, uint64_t ino, Caudal__Attr *out);
/* Have the open pending file ino made now (a write past inline_max, a
 * truncate, an fsync): as mnt_wb_made afterwards. */
int mnt_wb_make(struct mnt *m, uint64_t ino, Caudal__Attr *out);
/* Attributes of a pending file (size: bytes closed with, or 0). */
bool mnt_wb_attr(struct mnt *m, uint64_t ino, Caudal__Attr *out);
/* Is ino pending (open, queued or being sent)? */
bool mnt_wb_pending(struct mnt *m, uint64_t ino);
/* Largest file sent whole (the namenode's inline_max, 0: none). */
uint64_t mnt_wb_inline_max(struct mnt *m);
/* Before a namenode call rq (not Batch): settle what it names. */
void mnt_wb_barrier(struct mnt *m, const ProtobufCMessage *rq);
/* Send everything queued and wait for the replies (fsync, fsyncdir):
 * 0, or the first error of an op that was lost. */
int mnt_wb_sync(struct mnt *m);

/* Counters for metrics and tests. */
struct mnt_wb_stats {
	uint64_t local, made, lost, batches, takes, recalls;
};
void mnt_wb_stats(struct mnt *m, struct mnt_wb_stats *s);

#endif
