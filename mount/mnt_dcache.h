/* mnt_dcache: the names of directories this mount knows completely, so
 * that a lookup of a name that is not there is answered without asking the
 * namenode (issue 9: a create through the mount cost a negative lookup,
 * Create and Complete).
 *
 * A directory becomes known when this mount makes it (Mkdir's reply: empty,
 * at its version). Each Create, Mkdir, Mknod and Symlink reply in it carries
 * the directory's version after the call (AttrReply.parent_version; the
 * namenode adds one for every entry added or removed): if it is exactly one
 * above what the cache holds, nobody else changed the directory since and
 * the new name is added; any other value forgets the directory. A removal
 * or rename through this mount forgets it too.
 *
 * Other clients' changes: a thread follows the namespace event log
 * (GetEvents long polls); every event names the directories whose entries
 * it changed with their versions after it, and a directory cached at an
 * older version is forgotten. The cache answers only while the follower is
 * in step (after its first poll, and not after a failed one, which forgets
 * everything), so a name another client makes is hidden only until its
 * event arrives (milliseconds; its transaction must be durable first). As
 * a last bound, a directory not confirmed by this mount's own calls within
 * the entry timeout is forgotten too.
 *
 * Bounded: at most MNT_DC_DIRS directories (the least recently confirmed
 * goes) of at most MNT_DC_NAMES names each (a larger one is forgotten),
 * MNT_DC_TOTAL names in all.
 * Thread-safe: one mutex. */
#ifndef MNT_DCACHE_H
#define MNT_DCACHE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "caudal.pb-c.h"

#define MNT_DC_DIRS   256
#define MNT_DC_NAMES  65536
#define MNT_DC_TOTAL  (1u << 20)
#define MNT_DC_RECENT 1024

struct mnt_dc_dir;

struct cdl_client;

struct mnt_dcache {
	pthread_mutex_t mu;
	int64_t ttl_ms; /* forget a directory not confirmed for this long; 0: off */
	bool live;	/* in step with the event log: may answer */
	struct mnt_dc_dir *dirs[MNT_DC_DIRS];
	size_t names; /* held in every directory: at most MNT_DC_TOTAL */
	/* the newest versions events showed for directories not held: one
	 * this mount makes may have changed before its Mkdir reply came */
	struct {
		uint64_t ino, version;
	} recent[MNT_DC_RECENT];
	size_t recent_pos;
	uint64_t hits, misses; /* lookups answered here, and not */
	/* the event follower; each event and each change of step also go to
	 * the hooks, if set before mnt_dcache_follow (the attribute cache) */
	void (*on_event)(void *arg, const Caudal__Event *e);
	void (*on_live)(void *arg, bool live, uint64_t txid);
	void *hook_arg;
	struct cdl_client *cl;
	pthread_t thread;
	bool started, stop;
};

void mnt_dcache_init(struct mnt_dcache *c, int64_t ttl_ms);
/* Stops the follower (within about a second) and frees everything. */
void mnt_dcache_destroy(struct mnt_dcache *c);
/* Start following the event log through cl; until its first poll answers
 * (and for good if the namenode refuses this mount the log) the cache
 * answers nothing. 0 or -errno. */
int mnt_dcache_follow(struct mnt_dcache *c, struct cdl_client *cl);
/* An event: dir's entries changed, its version is now version. */
void mnt_dcache_changed(struct mnt_dcache *c, uint64_t dir, uint64_t version);
/* In step with the log or not (the follower, or tests): forgets
 * everything either way; answers only while live. */
void mnt_dcache_set_live(struct mnt_dcache *c, bool live);

/* This mount made directory ino (empty, at version). */
void mnt_dcache_made_dir(struct mnt_dcache *c, uint64_t ino, uint64_t version);
/* A create-like call in dir is about to be sent: an event it causes may
 * arrive before its reply. Every begin is followed by added or failed. */
void mnt_dcache_begin(struct mnt_dcache *c, uint64_t dir);
/* That call failed in a way that may have changed dir: forget it. */
void mnt_dcache_failed(struct mnt_dcache *c, uint64_t dir);
/* A create-like call made name in dir; version is the reply's
 * parent_version. */
void mnt_dcache_added(struct mnt_dcache *c, uint64_t dir, const char *name, uint64_t version);
/* Something in dir changed another way (unlink, rmdir, rename, an error
 * that leaves its state unknown): forget it. */
void mnt_dcache_forget(struct mnt_dcache *c, uint64_t dir);
/* True if dir is known, confirmed within the ttl and has no entry name:
 * the lookup can answer ENOENT. */
bool mnt_dcache_absent(struct mnt_dcache *c, uint64_t dir, const char *name);
/* The version at which dir is known whole (false: not known). */
bool mnt_dcache_version(struct mnt_dcache *c, uint64_t dir, uint64_t *version);
/* A write-back create (mnt_wb.h) of name in dir, which this mount holds:
 * if dir is known whole and name absent, add it one version up (the
 * namenode's version once the create reaches it) and return true. */
bool mnt_dcache_claim(struct mnt_dcache *c, uint64_t dir, const char *name);

#endif
