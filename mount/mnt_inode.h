/* mnt_inode: the mount's table of inodes the kernel knows, keyed by the
 * namenode's inode id (which is also the FUSE inode number; the root is 1).
 *
 * It owns, per inode: the kernel's lookup count (lookup, create, mkdir,
 * symlink, readdirplus add; forget and forget_multi subtract; the entry goes
 * when the count and the open handles both reach zero), the number of open
 * handles, the one handle of this mount writing the inode (so a second local
 * writer gets EBUSY and getattr can show the size being written), and what
 * the kernel was last told about size and mtime, used to decide whether an
 * open may keep the page cache.
 *
 * Every FUSE worker thread calls in; one mutex guards the table. Entries are
 * handed out as pointers only to holders of an open reference
 * (mnt_itab_open .. mnt_itab_close), which keeps them alive. */
#ifndef MNT_INODE_H
#define MNT_INODE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "caudal.pb-c.h"

struct mnt_file;

struct mnt_inode {
	uint64_t ino;
	uint64_t nlookup;	 /* kernel references */
	uint32_t nopen;		 /* open file handles in this mount */
	struct mnt_file *writer; /* the handle of this mount writing it, or NULL */
	uint64_t wsize;		 /* with writer: size including buffered bytes */
	/* page cache: attributes seen at the last open that filled it */
	bool cache_ok;
	/* times set while this mount writes it, re-applied after completion
	 * (SetAttrField bits; a later write clears them) */
	uint32_t pend_valid;
	int64_t pend_atime_ns, pend_mtime_ns;
	uint64_t cache_size;
	int64_t cache_mtime_ns;
	struct mnt_inode *next; /* hash chain */
};

struct mnt_itab {
	pthread_mutex_t mu;
	struct mnt_inode **slots;
	size_t nslots;
	size_t count;
};

void mnt_itab_init(struct mnt_itab *t);
void mnt_itab_release(struct mnt_itab *t);

/* The kernel got n more references to ino (a reply carrying an entry). */
void mnt_itab_ref(struct mnt_itab *t, uint64_t ino, uint64_t n);
/* The kernel dropped n references (forget). */
void mnt_itab_forget(struct mnt_itab *t, uint64_t ino, uint64_t n);
/* Lookup count of ino, 0 when unknown (for tests and logs). */
uint64_t mnt_itab_nlookup(struct mnt_itab *t, uint64_t ino);
size_t mnt_itab_count(struct mnt_itab *t);

/* An open handle's reference: the entry stays until mnt_itab_close. */
struct mnt_inode *mnt_itab_open(struct mnt_itab *t, uint64_t ino);
/* True when that was the inode's last open handle in this mount. */
bool mnt_itab_close(struct mnt_itab *t, struct mnt_inode *in);
/* Open handles of ino in this mount. */
uint32_t mnt_itab_nopen(struct mnt_itab *t, uint64_t ino);

/* Make f the inode's writer: 0, or -EBUSY when another handle of this
 * mount writes it. mnt_itab_unset_writer clears it if it is f. */
int mnt_itab_set_writer(struct mnt_itab *t, struct mnt_inode *in, struct mnt_file *f,
			uint64_t size);
void mnt_itab_unset_writer(struct mnt_itab *t, struct mnt_inode *in, struct mnt_file *f);
/* The writer's size moved to size (a write also voids pending times). */
void mnt_itab_set_wsize(struct mnt_itab *t, struct mnt_inode *in, uint64_t size);

/* If a handle of this mount writes ino, raise a->size to what it has
 * written (buffered bytes included), so stat agrees with the writer. */
void mnt_itab_overlay(struct mnt_itab *t, Caudal__Attr *a);

/* Decide for a read-only open whether the page cache may be kept: true
 * when the attributes match those of the open that filled it and no
 * writer has run since. Records a's size and mtime for the next open. */
bool mnt_itab_keep_cache(struct mnt_itab *t, struct mnt_inode *in, const Caudal__Attr *a);
/* Forget page-cache validity (a write handle or truncate touched it). */
void mnt_itab_cache_drop(struct mnt_itab *t, uint64_t ino);

/* Remember times set (SetAttrField bits) on ino while this mount writes
 * it; no-op without a writer. take returns and clears them. */
void mnt_itab_pending_times(struct mnt_itab *t, uint64_t ino, uint32_t valid, int64_t atime_ns,
			    int64_t mtime_ns);
uint32_t mnt_itab_take_times(struct mnt_itab *t, struct mnt_inode *in, int64_t *atime_ns,
			     int64_t *mtime_ns);
bool mnt_itab_has_times(struct mnt_itab *t, struct mnt_inode *in);

/* Call fn on each handle writing an inode (collected under the lock, called
 * without it). Only at unmount, when no FUSE thread runs. */
void mnt_itab_each_writer(struct mnt_itab *t, void (*fn)(struct mnt_file *f, void *arg), void *arg);

#endif
