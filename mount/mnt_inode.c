/* mnt_inode: lookup counts, open handles and local writers per inode. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cdl_log.h"
#include "cdl_util.h"
#include "mnt_inode.h"

#define ROOT_INO 1

static size_t slot_of(const struct mnt_itab *t, uint64_t ino)
{
	uint64_t h = ino * 0x9E3779B97F4A7C15ULL;
	return (size_t)(h >> 20) & (t->nslots - 1);
}

void mnt_itab_init(struct mnt_itab *t)
{
	pthread_mutex_init(&t->mu, NULL);
	t->nslots = 1024;
	t->slots = xcalloc(t->nslots, sizeof(*t->slots));
	t->count = 0;
}

void mnt_itab_release(struct mnt_itab *t)
{
	for (size_t i = 0; i < t->nslots; i++) {
		struct mnt_inode *in = t->slots[i];
		while (in) {
			struct mnt_inode *next = in->next;
			free(in);
			in = next;
		}
	}
	free(t->slots);
	t->slots = NULL;
	t->count = 0;
	pthread_mutex_destroy(&t->mu);
}

static void grow(struct mnt_itab *t)
{
	size_t old = t->nslots;
	struct mnt_inode **os = t->slots;
	t->nslots = old * 2;
	t->slots = xcalloc(t->nslots, sizeof(*t->slots));
	for (size_t i = 0; i < old; i++) {
		struct mnt_inode *in = os[i];
		while (in) {
			struct mnt_inode *next = in->next;
			size_t s = slot_of(t, in->ino);
			in->next = t->slots[s];
			t->slots[s] = in;
			in = next;
		}
	}
	free(os);
}

/* Find ino, creating it when create is set. Called with mu held. */
static struct mnt_inode *find(struct mnt_itab *t, uint64_t ino, bool create)
{
	size_t s = slot_of(t, ino);
	for (struct mnt_inode *in = t->slots[s]; in; in = in->next)
		if (in->ino == ino)
			return in;
	if (!create)
		return NULL;
	if (t->count >= t->nslots) {
		grow(t);
		s = slot_of(t, ino);
	}
	struct mnt_inode *in = xcalloc(1, sizeof(*in));
	in->ino = ino;
	in->next = t->slots[s];
	t->slots[s] = in;
	t->count++;
	return in;
}

/* Drop the entry when nothing refers to it. Called with mu held. */
static void maybe_drop(struct mnt_itab *t, struct mnt_inode *in)
{
	if (in->nlookup || in->nopen || in->ino == ROOT_INO)
		return;
	struct mnt_inode **pp = &t->slots[slot_of(t, in->ino)];
	while (*pp != in)
		pp = &(*pp)->next;
	*pp = in->next;
	t->count--;
	free(in);
}

void mnt_itab_ref(struct mnt_itab *t, uint64_t ino, uint64_t n)
{
	pthread_mutex_lock(&t->mu);
	find(t, ino, true)->nlookup += n;
	pthread_mutex_unlock(&t->mu);
}

void mnt_itab_forget(struct mnt_itab *t, uint64_t ino, uint64_t n)
{
	pthread_mutex_lock(&t->mu);
	struct mnt_inode *in = find(t, ino, false);
	if (!in) {
		cdl_warn("forget of unknown inode %llu", (unsigned long long)ino);
	} else {
		if (in->nlookup < n) {
			cdl_warn("forget of %llu references to inode %llu that has %llu",
				 (unsigned long long)n, (unsigned long long)ino,
				 (unsigned long long)in->nlookup);
			n = in->nlookup;
		}
		in->nlookup -= n;
		maybe_drop(t, in);
	}
	pthread_mutex_unlock(&t->mu);
}

uint64_t mnt_itab_nlookup(struct mnt_itab *t, uint64_t ino)
{
	pthread_mutex_lock(&t->mu);
	struct mnt_inode *in = find(t, ino, false);
	uint64_t n = in ? in->nlookup : 0;
	pthread_mutex_unlock(&t->mu);
	return n;
}

size_t mnt_itab_count(struct mnt_itab *t)
{
	pthread_mutex_lock(&t->mu);
	size_t n = t->count;
	pthread_mutex_unlock(&t->mu);
	return n;
}

struct mnt_inode *mnt_itab_open(struct mnt_itab *t, uint64_t ino)
{
	pthread_mutex_lock(&t->mu);
	struct mnt_inode *in = find(t, ino, true);
	in->nopen++;
	pthread_mutex_unlock(&t->mu);
	return in;
}

bool mnt_itab_close(struct mnt_itab *t, struct mnt_inode *in)
{
	pthread_mutex_lock(&t->mu);
	bool last = --in->nopen == 0;
	maybe_drop(t, in);
	pthread_mutex_unlock(&t->mu);
	return last;
}

uint32_t mnt_itab_nopen(struct mnt_itab *t, uint64_t ino)
{
	pthread_mutex_lock(&t->mu);
	struct mnt_inode *in = find(t, ino, false);
	uint32_t n = in ? in->nopen : 0;
	pthread_mutex_unlock(&t->mu);
	return n;
}

int mnt_itab_set_writer(struct mnt_itab *t, struct mnt_inode *in, struct mnt_file *f, uint64_t size)
{
	int rc = 0;
	pthread_mutex_lock(&t->mu);
	if (in->writer && in->writer != f) {
		rc = -EBUSY;
	} else {
		in->writer = f;
		in->wsize = size;
		in->cache_ok = false;
	}
	pthread_mutex_unlock(&t->mu);
	return rc;
}

void mnt_itab_unset_writer(struct mnt_itab *t, struct mnt_inode *in, struct mnt_file *f)
{
	pthread_mutex_lock(&t->mu);
	if (in->writer == f) {
		in->writer = NULL;
		in->cache_ok = false;
	}
	pthread_mutex_unlock(&t->mu);
}

void mnt_itab_set_wsize(struct mnt_itab *t, struct mnt_inode *in, uint64_t size)
{
	pthread_mutex_lock(&t->mu);
	in->wsize = size;
	in->pend_valid = 0;
	pthread_mutex_unlock(&t->mu);
}

void mnt_itab_pending_times(struct mnt_itab *t, uint64_t ino, uint32_t valid, int64_t atime_ns,
			    int64_t mtime_ns)
{
	valid &= CAUDAL__SET_ATTR_FIELD__SA_ATIME | CAUDAL__SET_ATTR_FIELD__SA_MTIME;
	if (!valid)
		return;
	pthread_mutex_lock(&t->mu);
	struct mnt_inode *in = find(t, ino, false);
	if (in && in->writer) {
		in->pend_valid |= valid;
		if (valid & CAUDAL__SET_ATTR_FIELD__SA_ATIME)
			in->pend_atime_ns = atime_ns;
		if (valid & CAUDAL__SET_ATTR_FIELD__SA_MTIME)
			in->pend_mtime_ns = mtime_ns;
	}
	pthread_mutex_unlock(&t->mu);
}

bool mnt_itab_has_times(struct mnt_itab *t, struct mnt_inode *in)
{
	pthread_mutex_lock(&t->mu);
	bool has = in->pend_valid != 0;
	pthread_mutex_unlock(&t->mu);
	return has;
}

uint32_t mnt_itab_take_times(struct mnt_itab *t, struct mnt_inode *in, int64_t *atime_ns,
			     int64_t *mtime_ns)
{
	pthread_mutex_lock(&t->mu);
	uint32_t v = in->pend_valid;
	*atime_ns = in->pend_atime_ns;
	*mtime_ns = in->pend_mtime_ns;
	in->pend_valid = 0;
	pthread_mutex_unlock(&t->mu);
	return v;
}

void mnt_itab_overlay(struct mnt_itab *t, Caudal__Attr *a)
{
	pthread_mutex_lock(&t->mu);
	struct mnt_inode *in = find(t, a->ino, false);
	if (in && in->writer && in->wsize > a->size) {
		a->stored += in->wsize - a->size; /* written here, not settled yet */
		a->size = in->wsize;
	}
	pthread_mutex_unlock(&t->mu);
}

bool mnt_itab_keep_cache(struct mnt_itab *t, struct mnt_inode *in, const Caudal__Attr *a)
{
	pthread_mutex_lock(&t->mu);
	bool keep = in->cache_ok && !in->writer && in->cache_size == a->size &&
		    in->cache_mtime_ns == a->mtime_ns;
	if (!in->writer) {
		in->cache_ok = true;
		in->cache_size = a->size;
		in->cache_mtime_ns = a->mtime_ns;
	}
	pthread_mutex_unlock(&t->mu);
	return keep;
}

void mnt_itab_cache_drop(struct mnt_itab *t, uint64_t ino)
{
	pthread_mutex_lock(&t->mu);
	struct mnt_inode *in = find(t, ino, false);
	if (in)
		in->cache_ok = false;
	pthread_mutex_unlock(&t->mu);
}

void mnt_itab_each_writer(struct mnt_itab *t, void (*fn)(struct mnt_file *f, void *arg), void *arg)
{
	pthread_mutex_lock(&t->mu);
	size_t n = 0;
	for (size_t i = 0; i < t->nslots; i++)
		for (struct mnt_inode *in = t->slots[i]; in; in = in->next)
			if (in->writer)
				n++;
	struct mnt_file **fs = xcalloc(n ? n : 1, sizeof(*fs));
	size_t k = 0;
	for (size_t i = 0; i < t->nslots; i++)
		for (struct mnt_inode *in = t->slots[i]; in; in = in->next)
			if (in->writer)
				fs[k++] = in->writer;
	pthread_mutex_unlock(&t->mu);
	for (size_t i = 0; i < k; i++)
		fn(fs[i], arg);
	free(fs);
}
