/* mnt_dcache: complete name sets of directories this mount made
 * (mnt_dcache.h). */
#include "mnt_dcache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "cdl_client.h"
#include "cdl_log.h"
#include "cdl_util.h"

struct mnt_dc_dir {
	uint64_t ino, version;
	int64_t confirmed_ms;
	/* this mount's create-like calls in it not answered yet, and the
	 * newest version an event showed meanwhile: an event may come before
	 * the reply of the call that caused it, so it is judged at the reply */
	uint32_t inflight;
	uint64_t ev_max;
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
	if (c->started) {
		__atomic_store_n(&c->stop, true, __ATOMIC_RELEASE);
		pthread_join(c->thread, NULL);
		c->started = false;
	}
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
	if (c->dirs[i])
		c->names -= c->dirs[i]->n;
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
	/* an event already showed it past that version: someone else made
	 * a name in it before this reply was handled */
	for (size_t j = 0; j < MNT_DC_RECENT; j++)
		if (c->recent[j].ino == ino && c->recent[j].version > version) {
			pthread_mutex_unlock(&c->mu);
			return;
		}
	struct mnt_dc_dir *d = xcalloc(1, sizeof(*d));
	d->ino = ino;
	d->version = version;
	d->confirmed_ms = cdl_now_ms();
	grow(d);
	c->dirs[i] = d;
	pthread_mutex_unlock(&c->mu);
}

void mnt_dcache_begin(struct mnt_dcache *c, uint64_t dir)
{
	pthread_mutex_lock(&c->mu);
	size_t i = find(c, dir);
	if (i < MNT_DC_DIRS)
		c->dirs[i]->inflight++;
	pthread_mutex_unlock(&c->mu);
}

void mnt_dcache_failed(struct mnt_dcache *c, uint64_t dir)
{
	pthread_mutex_lock(&c->mu);
	size_t i = find(c, dir);
	if (i < MNT_DC_DIRS)
		drop(c, i); /* the call's outcome is unknown */
	pthread_mutex_unlock(&c->mu);
}

/* Can name go into d at slot s (free, and room under the bounds)? */
static bool room_for(const struct mnt_dcache *c, const struct mnt_dc_dir *d, size_t s)
{
	return !d->slot[s] && d->n < MNT_DC_NAMES && c->names < MNT_DC_TOTAL;
}

/* Put name at slot s of d, which is now at version. */
static void add_name(struct mnt_dcache *c, struct mnt_dc_dir *d, size_t s, const char *name,
		     uint64_t version)
{
	d->slot[s] = xstrdup(name);
	d->n++;
	c->names++;
	if (2 * d->n > d->cap)
		grow(d);
	d->version = version;
	d->confirmed_ms = cdl_now_ms();
}

void mnt_dcache_added(struct mnt_dcache *c, uint64_t dir, const char *name, uint64_t version)
{
	pthread_mutex_lock(&c->mu);
	size_t i = find(c, dir);
	if (i < MNT_DC_DIRS) {
		struct mnt_dc_dir *d = c->dirs[i];
		if (d->inflight)
			d->inflight--;
		size_t s = probe(d, name);
		if (version == d->version + 1 && room_for(c, d, s)) {
			add_name(c, d, s, name, version);
		} else if (version == d->version && d->slot[s]) {
			d->confirmed_ms = cdl_now_ms(); /* an existing name: nothing changed */
		} else {
			drop(c, i); /* someone else changed it, or it is too large */
			d = NULL;
		}
		/* an event past every reply, with no call left to explain it:
		 * someone else's change */
		if (d && !d->inflight && d->ev_max > d->version)
			drop(c, i);
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
		else /* (an event not yet explained by a reply: ask) */
			absent = c->live && d->ev_max <= d->version && !d->slot[probe(d, name)];
	}
	if (absent)
		c->hits++;
	else
		c->misses++;
	pthread_mutex_unlock(&c->mu);
	return absent;
}

bool mnt_dcache_version(struct mnt_dcache *c, uint64_t dir, uint64_t *version)
{
	bool ok = false;
	pthread_mutex_lock(&c->mu);
	size_t i = find(c, dir);
	if (i < MNT_DC_DIRS && c->live && !c->dirs[i]->inflight &&
	    c->dirs[i]->ev_max <= c->dirs[i]->version &&
	    cdl_now_ms() - c->dirs[i]->confirmed_ms <= c->ttl_ms) {
		*version = c->dirs[i]->version;
		ok = true;
	}
	pthread_mutex_unlock(&c->mu);
	return ok;
}

bool mnt_dcache_claim(struct mnt_dcache *c, uint64_t dir, const char *name)
{
	bool ok = false;
	pthread_mutex_lock(&c->mu);
	size_t i = find(c, dir);
	if (i < MNT_DC_DIRS && c->live) {
		struct mnt_dc_dir *d = c->dirs[i];
		size_t s = probe(d, name);
		if (cdl_now_ms() - d->confirmed_ms <= c->ttl_ms && !d->inflight &&
		    d->ev_max <= d->version && room_for(c, d, s)) {
			add_name(c, d, s, name, d->version + 1);
			ok = true;
		}
	}
	pthread_mutex_unlock(&c->mu);
	return ok;
}

void mnt_dcache_changed(struct mnt_dcache *c, uint64_t dir, uint64_t version)
{
	pthread_mutex_lock(&c->mu);
	size_t i = find(c, dir);
	/* at the version or below: a change this mount made (its reply came
	 * first) or already knew of; past it, with a call of this mount in
	 * flight, perhaps that call's: judged at its reply */
	if (i == MNT_DC_DIRS) {
		c->recent[c->recent_pos].ino = dir;
		c->recent[c->recent_pos].version = version;
		c->recent_pos = (c->recent_pos + 1) % MNT_DC_RECENT;
	} else if (c->dirs[i]->version < version) {
		struct mnt_dc_dir *d = c->dirs[i];
		if (d->inflight) {
			if (version > d->ev_max)
				d->ev_max = version;
		} else {
			drop(c, i);
		}
	}
	pthread_mutex_unlock(&c->mu);
}

void mnt_dcache_set_live(struct mnt_dcache *c, bool live)
{
	pthread_mutex_lock(&c->mu);
	/* what was learnt out of step with the log may be stale either way */
	for (size_t i = 0; i < MNT_DC_DIRS; i++)
		drop(c, i);
	c->live = live;
	pthread_mutex_unlock(&c->mu);
}

/* How long one poll waits for an event: also how long a stop may take. */
#define FOLLOW_WAIT_MS 1000

/* One GetEvents from *from; applies the events and moves *from past them.
 * 0, or -errno (the caller forgets everything and starts again). */
static int follow_once(struct mnt_dcache *c, uint64_t *from, bool *caught_up)
{
	Caudal__EventsRequest q = CAUDAL__EVENTS_REQUEST__INIT;
	q.from_txid = *from;
	q.max = 1024;
	q.wait_ms = *from ? FOLLOW_WAIT_MS : 0;
	Caudal__EventsReply *r = NULL;
	/* one attempt, so that a stop (unmount) never waits for the
	 * client's retries against a namenode that is down */
	int rc = cdl_client_call_once(c->cl, CDL_NN_GetEvents, &q.base, (ProtobufCMessage **)&r,
				      FOLLOW_WAIT_MS + 2000);
	if (rc)
		return rc;
	if (*from == 0) {
		/* the first poll only learns where the log is */
		*from = r->last_txid + 1;
	} else if (r->first_txid > *from) {
		rc = -ESTALE; /* events we missed were trimmed */
	} else {
		for (size_t i = 0; i < r->n_events; i++) {
			const Caudal__Event *e = r->events[i];
			size_t n = e->n_dirs < e->n_dir_versions ? e->n_dirs : e->n_dir_versions;
			for (size_t j = 0; j < n; j++)
				mnt_dcache_changed(c, e->dirs[j], e->dir_versions[j]);
			if (c->on_event)
				c->on_event(c->hook_arg, e);
			if (e->txid >= *from)
				*from = e->txid + 1;
		}
		/* fewer than asked: everything up to last_txid was seen */
		if (r->n_events < q.max && r->last_txid >= *from)
			*from = r->last_txid + 1;
	}
	*caught_up = rc == 0;
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return rc;
}

static void *follow_main(void *arg)
{
	struct mnt_dcache *c = arg;
	uint64_t from = 0;
	bool warned = false;
	while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE)) {
		bool caught_up = false;
		int rc = follow_once(c, &from, &caught_up);
		if (rc == 0) {
			if (caught_up && !c->live) {
				mnt_dcache_set_live(c, true);
				if (c->on_live)
					c->on_live(c->hook_arg, true, from ? from - 1 : 0);
				cdl_info("directory cache on: following the namespace event log "
					 "from transaction %llu",
					 (unsigned long long)from);
			}
			warned = false;
			continue;
		}
		mnt_dcache_set_live(c, false);
		if (c->on_live)
			c->on_live(c->hook_arg, false, 0);
		from = 0;
		if (rc == -EACCES || rc == -EPERM) {
			cdl_warn("the namenode does not let this mount follow its event log (%s): "
				 "every lookup asks it",
				 strerror(-rc));
			break;
		}
		if (!warned)
			cdl_info(
			    "directory cache off until the event log can be followed again: %s",
			    strerror(-rc));
		warned = true;
		for (int i = 0; i < 10 && !__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE); i++)
			usleep(100 * 1000);
	}
	return NULL;
}

int mnt_dcache_follow(struct mnt_dcache *c, struct cdl_client *cl)
{
	if (c->ttl_ms <= 0 && !c->on_event)
		return 0;
	c->cl = cl;
	int rc = pthread_create(&c->thread, NULL, follow_main, c);
	if (rc)
		return -rc;
	c->started = true;
	return 0;
}
