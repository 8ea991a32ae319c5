/* mnt_acache: the mount's own cache of names and attributes, so that a
 * lookup or stat the kernel has forgotten (its caches last attr_timeout and
 * entry_timeout, 1 s; drop_caches empties them) is answered without asking
 * the namenode (issue 9: a stat of a cold file cost a GetAttr round trip).
 *
 * What it holds: per inode, its attributes and the one name (parent inode
 * and name) it was last seen by; Caudal has no hard links, so an inode has
 * one name. Filled from the replies of GetAttr by name and by inode, of
 * readdirplus and of Mkdir, Symlink and Mknod; never for a file under
 * construction (its size moves without events).
 *
 * Coherence: every change to a closed inode's attributes or to a name is a
 * transaction with an event (create, mkdir, unlink, rename, setattr,
 * truncate, setrep, xattrs, append, close), and the directory cache's
 * follower passes each event here as it arrives. Every Attr the namenode
 * sends carries the transaction id it was read at (Attr.txid): it reflects
 * every event up to that id. An event bumps a bucket of its inode, of each
 * directory it changed and of each (directory, name) it touched to its
 * txid; a record is believed only if it was read at or after the bumps of
 * its buckets (so whatever order a reply and an event arrive in, a reply
 * older than the event is never believed after it), and only while the
 * follower is in step with the log. The mount's own changes bump the same
 * buckets at once, past every id it has seen. What remains is the log's
 * delay: another client's change is seen here once its event arrives
 * (milliseconds), as for the negative directory cache. As a last bound a
 * record is believed for at most ttl_ms after it was read (-o
 * meta_timeout, seconds).
 *
 * Rights: only used when the kernel checks permissions itself
 * (default_permissions, always set by mnt_main), against attributes that
 * come from here and are as coherent as the rest.
 *
 * Bounded: MNT_AC_MAX records, the oldest read goes first; MNT_AC_BUCKETS
 * buckets of each kind (4 MiB in all), so that two inodes or names rarely
 * share one (a shared bucket only costs a miss). One mutex. */
#ifndef MNT_ACACHE_H
#define MNT_ACACHE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "caudal.pb-c.h"

#define MNT_AC_MAX     (1u << 17)
#define MNT_AC_BUCKETS (1u << 18)

struct mnt_ac_rec;

struct mnt_acache {
	pthread_mutex_t mu;
	int64_t ttl_ms;			 /* 0: off */
	bool live;			 /* in step with the event log */
	uint64_t epoch;			 /* nothing read before this transaction is believed */
	uint64_t seen;			 /* the newest transaction id seen in a reply or event */
	uint64_t *attr_bump, *name_bump; /* MNT_AC_BUCKETS each */
	struct mnt_ac_rec **by_ino, **by_name; /* MNT_AC_MAX slots each, chained */
	struct mnt_ac_rec *oldest, *newest;    /* by read time, for eviction */
	size_t count;
	uint64_t hits, misses;
};

void mnt_acache_init(struct mnt_acache *c, int64_t ttl_ms);
void mnt_acache_destroy(struct mnt_acache *c);

/* A reply's attributes (a->txid says when they were read); a file under
 * construction is not kept. */
void mnt_acache_put_attr(struct mnt_acache *c, const Caudal__Attr *a);
/* A reply's entry: parent's name is ino, as of transaction txid. */
void mnt_acache_put_name(struct mnt_acache *c, uint64_t parent, const char *name, uint64_t ino,
			 uint64_t txid);
/* Believed attributes of ino (true) into *a (scalar fields only). */
bool mnt_acache_attr(struct mnt_acache *c, uint64_t ino, Caudal__Attr *a);
/* Believed entry name of parent, with its inode's believed attributes. */
bool mnt_acache_lookup(struct mnt_acache *c, uint64_t parent, const char *name, Caudal__Attr *a);

/* This mount changed ino's attributes (or removed it). */
void mnt_acache_inval(struct mnt_acache *c, uint64_t ino);
/* This mount changed the entry name of parent (removed or renamed it, or
 * renamed something onto it): its inode, the name and parent's own
 * attributes. */
void mnt_acache_inval_entry(struct mnt_acache *c, uint64_t parent, const char *name);
/* The namenode says ino is gone, before its event came: its record and
 * the name it held are void. */
void mnt_acache_gone(struct mnt_acache *c, uint64_t ino);
/* An event of the namespace log. */
void mnt_acache_event(struct mnt_acache *c, const Caudal__Event *e);
/* In step with the log from transaction txid on (live: nothing read
 * before txid is believed), or out of step (everything read so far is
 * void, and nothing is believed until live again). */
void mnt_acache_set_live(struct mnt_acache *c, bool live, uint64_t txid);

#endif
