/* mnt_acache: names and attributes kept coherent by the event log
 * (mnt_acache.h). */
#include "mnt_acache.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "cdl_util.h"

struct mnt_ac_rec {
	uint64_t ino;
	Caudal__Attr attr;  /* scalar fields; no inline data */
	bool has_attr;	    /* attr is a closed inode's, read at attr.txid */
	uint64_t parent;    /* with name: its entry */
	char *name;	    /* NULL: not known by a name */
	uint64_t name_txid; /* the name read at this transaction */
	int64_t read_ms;    /* the newest of the two reads */
	struct mnt_ac_rec *ino_next, *name_next;
	struct mnt_ac_rec *older, *newer;
};

static size_t bucket(uint64_t ino)
{
	return (size_t)((ino * 0x9E3779B97F4A7C15ull) >> 29) & (MNT_AC_BUCKETS - 1);
}

static size_t name_bucket(uint64_t parent, const char *name)
{
	return (size_t)XXH3_64bits_withSeed(name, strlen(name), parent ^ 0x5bd1e995u) &
	       (MNT_AC_BUCKETS - 1);
}

static size_t ino_slot(uint64_t ino)
{
	return (size_t)((ino * 0xC2B2AE3D27D4EB4Full) >> 40) & (MNT_AC_MAX - 1);
}

static size_t name_slot(uint64_t parent, const char *name)
{
	return (size_t)XXH3_64bits_withSeed(name, strlen(name), parent) & (MNT_AC_MAX - 1);
}

void mnt_acache_init(struct mnt_acache *c, int64_t ttl_ms)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->mu, NULL);
	c->ttl_ms = ttl_ms;
	if (ttl_ms > 0) {
		c->by_ino = xcalloc(MNT_AC_MAX, sizeof(*c->by_ino));
		c->by_name = xcalloc(MNT_AC_MAX, sizeof(*c->by_name));
		c->attr_bump = xcalloc(MNT_AC_BUCKETS, sizeof(*c->attr_bump));
		c->name_bump = xcalloc(MNT_AC_BUCKETS, sizeof(*c->name_bump));
	}
}

void mnt_acache_destroy(struct mnt_acache *c)
{
	for (struct mnt_ac_rec *r = c->oldest, *next; r; r = next) {
		next = r->newer;
		free(r->name);
		free(r);
	}
	free(c->by_ino);
	free(c->by_name);
	free(c->attr_bump);
	free(c->name_bump);
	pthread_mutex_destroy(&c->mu);
}

static struct mnt_ac_rec *find_ino(struct mnt_acache *c, uint64_t ino)
{
	struct mnt_ac_rec *r = c->by_ino[ino_slot(ino)];
	while (r && r->ino != ino)
		r = r->ino_next;
	return r;
}

static struct mnt_ac_rec *find_name(struct mnt_acache *c, uint64_t parent, const char *name)
{
	struct mnt_ac_rec *r = c->by_name[name_slot(parent, name)];
	while (r && !(r->parent == parent && !strcmp(r->name, name)))
		r = r->name_next;
	return r;
}

static void unchain_name(struct mnt_acache *c, struct mnt_ac_rec *r)
{
	if (!r->name)
		return;
	struct mnt_ac_rec **p = &c->by_name[name_slot(r->parent, r->name)];
	while (*p != r)
		p = &(*p)->name_next;
	*p = r->name_next;
	free(r->name);
	r->name = NULL;
}

static void unlist(struct mnt_acache *c, struct mnt_ac_rec *r)
{
	if (r->older)
		r->older->newer = r->newer;
	else
		c->oldest = r->newer;
	if (r->newer)
		r->newer->older = r->older;
	else
		c->newest = r->older;
	r->older = r->newer = NULL;
}

static void append(struct mnt_acache *c, struct mnt_ac_rec *r)
{
	r->older = c->newest;
	if (c->newest)
		c->newest->newer = r;
	else
		c->oldest = r;
	c->newest = r;
}

static void drop(struct mnt_acache *c, struct mnt_ac_rec *r)
{
	unchain_name(c, r);
	struct mnt_ac_rec **p = &c->by_ino[ino_slot(r->ino)];
	while (*p != r)
		p = &(*p)->ino_next;
	*p = r->ino_next;
	unlist(c, r);
	free(r);
	c->count--;
}

/* The record of ino, made (and made newest) if need be. Called with mu
 * held. */
static struct mnt_ac_rec *rec_for(struct mnt_acache *c, uint64_t ino)
{
	struct mnt_ac_rec *r = find_ino(c, ino);
	if (!r) {
		if (c->count == MNT_AC_MAX)
			drop(c, c->oldest);
		r = xcalloc(1, sizeof(*r));
		r->ino = ino;
		size_t s = ino_slot(ino);
		r->ino_next = c->by_ino[s];
		c->by_ino[s] = r;
		c->count++;
	} else {
		unlist(c, r);
	}
	append(c, r);
	r->read_ms = cdl_now_ms();
	return r;
}

static void saw(struct mnt_acache *c, uint64_t txid)
{
	if (txid > c->seen)
		c->seen = txid;
}

void mnt_acache_put_attr(struct mnt_acache *c, const Caudal__Attr *a)
{
	if (c->ttl_ms <= 0 || !a || !a->ino)
		return;
	pthread_mutex_lock(&c->mu);
	saw(c, a->txid);
	if (c->live && a->txid >= c->epoch) {
		struct mnt_ac_rec *r = rec_for(c, a->ino);
		if (a->under_construction) {
			r->has_attr = false; /* its size moves without events */
		} else if (!r->has_attr || a->txid >= r->attr.txid) {
			/* an older read must not overwrite a newer one */
			r->attr = *a;
			r->attr.inline_data.data = NULL;
			r->attr.inline_data.len = 0;
			r->has_attr = true;
		}
	}
	pthread_mutex_unlock(&c->mu);
}

void mnt_acache_put_name(struct mnt_acache *c, uint64_t parent, const char *name, uint64_t ino,
			 uint64_t txid)
{
	if (c->ttl_ms <= 0 || !ino || !name)
		return;
	pthread_mutex_lock(&c->mu);
	saw(c, txid);
	if (c->live && txid >= c->epoch) {
		struct mnt_ac_rec *r = rec_for(c, ino);
		if (!r->name || txid >= r->name_txid) {
			struct mnt_ac_rec *other = find_name(c, parent, name);
			if (other && other != r)
				unchain_name(c, other); /* that name is this inode's now */
			if (other != r) {
				unchain_name(c, r);
				r->parent = parent;
				r->name = xstrdup(name);
				size_t s = name_slot(parent, name);
				r->name_next = c->by_name[s];
				c->by_name[s] = r;
			}
			r->name_txid = txid;
		}
	}
	pthread_mutex_unlock(&c->mu);
}

static bool attr_ok(const struct mnt_acache *c, const struct mnt_ac_rec *r)
{
	return c->live && r->has_attr && cdl_now_ms() - r->read_ms <= c->ttl_ms &&
	       r->attr.txid >= c->epoch && r->attr.txid >= c->attr_bump[bucket(r->ino)];
}

bool mnt_acache_attr(struct mnt_acache *c, uint64_t ino, Caudal__Attr *a)
{
	if (c->ttl_ms <= 0)
		return false;
	pthread_mutex_lock(&c->mu);
	struct mnt_ac_rec *r = find_ino(c, ino);
	bool ok = r && attr_ok(c, r);
	if (ok) {
		*a = r->attr;
		c->hits++;
	} else {
		c->misses++;
	}
	pthread_mutex_unlock(&c->mu);
	return ok;
}

bool mnt_acache_lookup(struct mnt_acache *c, uint64_t parent, const char *name, Caudal__Attr *a)
{
	if (c->ttl_ms <= 0)
		return false;
	pthread_mutex_lock(&c->mu);
	struct mnt_ac_rec *r = find_name(c, parent, name);
	bool ok = r && attr_ok(c, r) && r->name_txid >= c->epoch &&
		  r->name_txid >= c->name_bump[name_bucket(parent, name)];
	if (ok) {
		*a = r->attr;
		c->hits++;
	} else {
		c->misses++;
	}
	pthread_mutex_unlock(&c->mu);
	return ok;
}

static void bump(uint64_t *b, uint64_t txid)
{
	if (txid > *b)
		*b = txid;
}

/* The mount's own change: its transaction comes after every id seen so
 * far, so a bucket bumped past them voids what was read before it, and
 * its event bumps again when it arrives. */
void mnt_acache_inval(struct mnt_acache *c, uint64_t ino)
{
	if (c->ttl_ms <= 0)
		return;
	pthread_mutex_lock(&c->mu);
	bump(&c->attr_bump[bucket(ino)], c->seen + 1);
	pthread_mutex_unlock(&c->mu);
}

void mnt_acache_inval_entry(struct mnt_acache *c, uint64_t parent, const char *name)
{
	if (c->ttl_ms <= 0)
		return;
	pthread_mutex_lock(&c->mu);
	struct mnt_ac_rec *r = find_name(c, parent, name);
	if (r)
		bump(&c->attr_bump[bucket(r->ino)], c->seen + 1);
	bump(&c->name_bump[name_bucket(parent, name)], c->seen + 1);
	bump(&c->attr_bump[bucket(parent)], c->seen + 1); /* mtime; nlink */
	pthread_mutex_unlock(&c->mu);
}

void mnt_acache_gone(struct mnt_acache *c, uint64_t ino)
{
	if (c->ttl_ms <= 0)
		return;
	pthread_mutex_lock(&c->mu);
	struct mnt_ac_rec *r = find_ino(c, ino);
	if (r && r->name)
		bump(&c->name_bump[name_bucket(r->parent, r->name)], c->seen + 1);
	bump(&c->attr_bump[bucket(ino)], c->seen + 1);
	pthread_mutex_unlock(&c->mu);
}

/* The last component of an absolute path. */
static const char *base_name(const char *path)
{
	const char *s = path ? strrchr(path, '/') : NULL;
	return s ? s + 1 : path;
}

void mnt_acache_event(struct mnt_acache *c, const Caudal__Event *e)
{
	if (c->ttl_ms <= 0)
		return;
	uint64_t t = e->txid;
	const char *names[2] = {base_name(e->path), base_name(e->dst)};
	pthread_mutex_lock(&c->mu);
	saw(c, t);
	if (e->type == CAUDAL__EVENT_TYPE__EV_UNLINK) {
		/* a directory removed whole takes its subtree without events:
		 * anything under it may be held, so void everything unless it
		 * is known not to be a directory */
		struct mnt_ac_rec *r = find_ino(c, e->ino);
		if (!r || !r->has_attr || S_ISDIR(r->attr.mode))
			bump(&c->epoch, t);
	}
	bump(&c->attr_bump[bucket(e->ino)], t);
	if (e->replaced) /* removed by a rename over it (an empty directory at most) */
		bump(&c->attr_bump[bucket(e->replaced)], t);
	for (size_t i = 0; i < e->n_dirs; i++) {
		bump(&c->attr_bump[bucket(e->dirs[i])], t);
		/* the names the event touched, in whichever directory */
		for (int j = 0; j < 2; j++)
			if (names[j] && *names[j])
				bump(&c->name_bump[name_bucket(e->dirs[i], names[j])], t);
	}
	pthread_mutex_unlock(&c->mu);
}

void mnt_acache_set_live(struct mnt_acache *c, bool live, uint64_t txid)
{
	if (c->ttl_ms <= 0)
		return;
	pthread_mutex_lock(&c->mu);
	/* what was read before stepping out may have missed events; from
	 * the new position on, the log is followed again */
	if (live)
		bump(&c->epoch, txid);
	else
		bump(&c->epoch, c->seen + 1);
	saw(c, txid);
	c->live = live;
	pthread_mutex_unlock(&c->mu);
}
