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
 * or rename through this mount forgets it too. A directory not confirmed
 * this way within the entry timeout is forgotten, so a name another client
 * made is missed for at most that long, as the kernel's own entry cache
 * misses a removal (MooseFS's mfsentrycacheto bounds the same).
 *
 * Bounded: at most MNT_DC_DIRS directories (the least recently confirmed
 * goes) of at most MNT_DC_NAMES names each (a larger one is forgotten).
 * Thread-safe: one mutex. */
#ifndef MNT_DCACHE_H
#define MNT_DCACHE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define MNT_DC_DIRS  256
#define MNT_DC_NAMES 65536

struct mnt_dc_dir;

struct mnt_dcache {
	pthread_mutex_t mu;
	int64_t ttl_ms; /* forget a directory not confirmed for this long; 0: off */
	struct mnt_dc_dir *dirs[MNT_DC_DIRS];
	uint64_t hits, misses; /* lookups answered here, and not */
};

void mnt_dcache_init(struct mnt_dcache *c, int64_t ttl_ms);
void mnt_dcache_destroy(struct mnt_dcache *c);

/* This mount made directory ino (empty, at version). */
void mnt_dcache_made_dir(struct mnt_dcache *c, uint64_t ino, uint64_t version);
/* A create-like call made name in dir; version is the reply's
 * parent_version. */
void mnt_dcache_added(struct mnt_dcache *c, uint64_t dir, const char *name, uint64_t version);
/* Something in dir changed another way (unlink, rmdir, rename, an error
 * that leaves its state unknown): forget it. */
void mnt_dcache_forget(struct mnt_dcache *c, uint64_t dir);
/* True if dir is known, confirmed within the ttl and has no entry name:
 * the lookup can answer ENOENT. */
bool mnt_dcache_absent(struct mnt_dcache *c, uint64_t dir, const char *name);

#endif
