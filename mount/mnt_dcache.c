/* mnt_dcache: complete name sets of directories this mount made
 * (mnt_dcache.h). */
#include "mnt_dcache.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "cdl_util.h"

struct mnt_dc_dir {
	uint64_t ino, version;
	int64_t confirmed_ms;
	size_t n, cap; /* names held; slots (a power of two, at most half full) */
	char **slot;   /* open addressing, linear probing */
};

static void dir_free(struct mnt_dc_dir *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->cap; i++)
		free(d->slot[i]);
	free(d->slot);
	free(d);
}

static size_t name_hash(const char *name)
{
	return (size_t)XXH3_64bits(name, strlen(name));
}

/* The slot holding name, or the empty slot where it would go. */
static size_t probe(const struct mnt_dc_dir *d, const char *name)
{
	size_t i = name_hash(name) & (d->cap - 1);
	while (d->slot[i] && strcmp(d->slot[i], name))
		i = (i + 1) & (d->cap - 1);
	return i;
}

static void grow(struct mnt_dc_dir *d)
{
	size_t oldcap = d->cap;
	char **old = d->slot;
	d->cap = oldcap ? 2 * oldcap : 16;
	d->slot = xcalloc(d->cap, sizeof(char *));
	for (size_t i = 0; i < oldcap; i++)
		if (old[i])
			d->slot[probe(d, old[i])] = old[i];
	free(old);
}

void mnt_dcache_init(struct mnt_dcache *c, int64_t ttl_ms)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->mu, NULL);
	c->ttl_ms = ttl_ms;
}

void mnt_dcache_destroy(struct mnt_dcache *c)
{
	for (size_t i = 0; i < MNT_DC_DIRS; i++)
		dir_free(c->dirs[i]);
	pthread_mutex_destroy(&c->mu);
}

static size_t find(struct mnt_dcache *c, uint64_t ino)
{
	for (size_t i = 0; i < MNT_DC_DIRS; i++)
		if (c->dirs[i] && c->dirs[i]->ino == ino)
			return i;
	return MNT_DC_DIRS;
}

static void drop(struct mnt_dcache *c, size_t i)
{
	dir_free(c->dirs[i]);
	c->dirs[i] = NULL;
}

void mnt_dcache_made_dir(struct mnt_dcache *c, uint64_t ino, uint64_t version)
{
	if (c->ttl_ms <= 0)
		return;
	pthread_mutex_lock(&c->mu);
	size_t i = find(c, ino);
	if (i == MNT_DC_DIRS) {
		/* a free slot, else the one confirmed longest ago */
		i = 0;
		for (size_t j = 0; j < MNT_DC_DIRS; j++) {
			if (!c->dirs[j]) {
				i = j;
				break;
			}
			if (c->dirs[j]->confirmed_ms < c->dirs[i]->confirmed_ms)
				i = j;
		}
	}
	drop(c, i);
	struct mnt_dc_dir *d = xcalloc(1, sizeof(*d));
	d->ino = ino;
	d->version = version;
	d->confirmed_ms = cdl_now_ms();
	grow(d);
	c->dirs[i] = d;
	pthread_mutex_unlock(&c->mu);
}

void mnt_dcache_added(struct mnt_dcache *c, uint64_t dir, const char *name, uint64_t version)
{
	pthread_mutex_lock(&c->mu);
	size_t i = find(c, dir);
	if (i < MNT_DC_DIRS) {
		struct mnt_dc_dir *d = c->dirs[i];
		size_t s = probe(d, name);
		if (version == d->version + 1 && !d->slot[s] && d->n < MNT_DC_NAMES) {
			d->slot[s] = xstrdup(name);
			d->n++;
			if (2 * d->n > d->cap)
				grow(d);
			d->version = version;
			d->confirmed_ms = cdl_now_ms();
		} else if (version == d->version && d->slot[s]) {
			d->confirmed_ms = cdl_now_ms(); /* an existing name: nothing changed */
		} else {
			drop(c, i); /* someone else changed it, or it is too large */
		}
	}
	pthread_mutex_unlock(&c->mu);
}

void mnt_dcache_forget(struct mnt_dcache *c, uint64_t dir)
{
	pthread_mutex_lock(&c->mu);
	size_t i = find(c, dir);
	if (i < MNT_DC_DIRS)
		drop(c, i);
	pthread_mutex_unlock(&c->mu);
}

bool mnt_dcache_absent(struct mnt_dcache *c, uint64_t dir, const char *name)
{
	bool absent = false;
	pthread_mutex_lock(&c->mu);
	size_t i = find(c, dir);
	if (i < MNT_DC_DIRS) {
		struct mnt_dc_dir *d = c->dirs[i];
		if (cdl_now_ms() - d->confirmed_ms > c->ttl_ms)
			drop(c, i);
		else
			absent = !d->slot[probe(d, name)];
	}
	if (absent)
		c->hits++;
	else
		c->misses++;
	pthread_mutex_unlock(&c->mu);
	return absent;
}
