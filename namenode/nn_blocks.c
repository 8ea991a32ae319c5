/* nn_blocks: see nn_blocks.h. */
#include "nn_blocks.h"

#include <stdlib.h>
#include <string.h>

#include "cdl_log.h"
#include "cdl_util.h"

struct nn_cmd {
	nn_cmd *next;
	int type; /* CAUDAL__COMMAND_TYPE__* */
	uint64_t id, gen, len;
	int ntargets;
	int targets[8];
};

/* Open-addressing map from block id to nn_blk*, linear probing, tombstones
 * cleared on resize. Block ids are sequential so they are mixed first. */
struct nn_blkmap {
	uint64_t cap, used, live;
	uint64_t *keys; /* 0 = empty, UINT64_MAX = tombstone */
	nn_blk **vals;
};

#define TOMB UINT64_MAX

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return x;
}

static void map_init(struct nn_blkmap *m, uint64_t cap)
{
	m->cap = cap;
	m->used = m->live = 0;
	m->keys = xcalloc(cap, sizeof(uint64_t));
	m->vals = xcalloc(cap, sizeof(nn_blk *));
}

static void map_insert(struct nn_blkmap *m, uint64_t k, nn_blk *v);

/* Rehash into a power-of-two table four times the live count (at least
 * 1024 slots), which also clears the tombstones. */
static void map_grow(struct nn_blkmap *m)
{
	struct nn_blkmap old = *m;
	uint64_t cap = 1024;
	while (cap < old.live * 4)
		cap <<= 1;
	map_init(m, cap);
	for (uint64_t i = 0; i < old.cap; i++)
		if (old.keys[i] && old.keys[i] != TOMB)
			map_insert(m, old.keys[i], old.vals[i]);
	free(old.keys);
	free(old.vals);
}

/* Insert a key known to be absent. */
static void map_insert(struct nn_blkmap *m, uint64_t k, nn_blk *v)
{
	if ((m->used + 1) * 4 > m->cap * 3)
		map_grow(m);
	uint64_t i = mix(k) & (m->cap - 1);
	while (m->keys[i] && m->keys[i] != TOMB)
		i = (i + 1) & (m->cap - 1);
	if (!m->keys[i])
		m->used++;
	m->live++;
	m->keys[i] = k;
	m->vals[i] = v;
}

/* The slot holding k, or -1. Terminates because used <= 3/4 of cap, so
 * empty slots always exist. */
static int64_t map_find(const struct nn_blkmap *m, uint64_t k)
{
	uint64_t i = mix(k) & (m->cap - 1);
	while (m->keys[i]) {
		if (m->keys[i] == k)
			return (int64_t)i;
		i = (i + 1) & (m->cap - 1);
	}
	return -1;
}

static void map_put(struct nn_blkmap *m, uint64_t k, nn_blk *v)
{
	int64_t i = map_find(m, k);
	if (i >= 0)
		m->vals[i] = v;
	else
		map_insert(m, k, v);
}

static nn_blk *map_get(const struct nn_blkmap *m, uint64_t k)
{
	int64_t i = map_find(m, k);
	return i >= 0 ? m->vals[i] : NULL;
}

static void map_del(struct nn_blkmap *m, uint64_t k)
{
	int64_t i = map_find(m, k);
	if (i >= 0) {
		m->keys[i] = TOMB;
		m->vals[i] = NULL;
		m->live--;
	}
}

nn_blocks *nn_blocks_new(nn_topology *topo, int64_t dead_ms)
{
	nn_blocks *b = xcalloc(1, sizeof(*b));
	b->map = xcalloc(1, sizeof(*b->map));
	map_init(b->map, 1024);
	b->topo = topo;
	b->dead_ms = dead_ms;
	b->seed = (uint64_t)cdl_wall_ns();
	return b;
}

static void blk_free(nn_blk *k)
{
	free(k->locs);
	free(k->corrupt);
	free(k);
}

static void cmds_free(nn_dn *d)
{
	nn_cmd *c = d->cmds, *n;
	for (; c; c = n) {
		n = c->next;
		free(c);
	}
	d->cmds = d->cmds_tail = NULL;
	d->ncmds = 0;
	d->ndeletes = 0;
}

void nn_blocks_free(nn_blocks *b)
{
	if (!b)
		return;
	for (uint64_t i = 0; i < b->map->cap; i++)
		if (b->map->keys[i] && b->map->keys[i] != TOMB)
			blk_free(b->map->vals[i]);
	free(b->map->keys);
	free(b->map->vals);
	free(b->map);
	free(b->offers);
	for (int i = 0; i < b->ndn; i++) {
		cmds_free(b->dns[i]);
		free(b->dns[i]->id);
		free(b->dns[i]->host);
		free(b->dns[i]->rack);
		free(b->dns[i]);
	}
	free(b);
}

/* ---------------------------------------------------------------- datanodes */

nn_dn *nn_dn_find(nn_blocks *b, const char *id)
{
	for (int i = 0; i < b->ndn; i++)
		if (!strcmp(b->dns[i]->id, id))
			return b->dns[i];
	return NULL;
}

int nn_dn_live_count(const nn_blocks *b)
{
	int n = 0;
	for (int i = 0; i < b->ndn; i++)
		n += b->dns[i]->alive;
	return n;
}

static void dn_stats(nn_dn *d, const Caudal__DatanodeInfo *info, int64_t now)
{
	d->capacity = info->capacity;
	d->used = info->used;
	d->remaining = info->remaining;
	d->xceivers = info->xceivers;
	d->last_hb_ms = now;
}

nn_dn *nn_dn_register(nn_blocks *b, const Caudal__DatanodeInfo *info, int64_t now)
{
	nn_dn *d = nn_dn_find(b, info->id);
	if (!d) {
		if (b->ndn == NN_MAX_DN)
			return NULL;
		d = xcalloc(1, sizeof(*d));
		d->idx = b->ndn;
		d->id = xstrdup(info->id);
		b->dns[b->ndn++] = d;
	} else {
		free(d->host);
		free(d->rack);
	}
	d->host = xstrdup(info->host);
	d->rack = xstrdup(nn_topology_rack(b->topo, info->host));
	d->port = info->data_port;
	d->http_port = info->http_port <= 65535 ? info->http_port : 0;
	d->alive = true;
	/* commands queued for an earlier incarnation may no longer apply */
	cmds_free(d);
	dn_stats(d, info, now);
	cdl_info("datanode '%s' registered at %s:%u rack '%s'", d->id, d->host, d->port, d->rack);
	return d;
}

static void queue(nn_dn *d, nn_cmd *c)
{
	c->next = NULL;
	if (d->cmds_tail)
		d->cmds_tail->next = c;
	else
		d->cmds = c;
	d->cmds_tail = c;
	d->ncmds++;
	d->ndeletes += c->type == CAUDAL__COMMAND_TYPE__CMD_DELETE;
}

void nn_dn_heartbeat(nn_blocks *b, nn_dn *d, const Caudal__DatanodeInfo *info, int64_t now)
{
	(void)b;
	if (!d->alive) {
		/* its replicas were forgotten when it was declared dead */
		cdl_info("datanode '%s' is back: asking for a block report", d->id);
		nn_cmd *c = xcalloc(1, sizeof(*c));
		c->type = CAUDAL__COMMAND_TYPE__CMD_REPORT;
		queue(d, c);
	}
	d->alive = true;
	dn_stats(d, info, now);
}

void nn_dn_queue_delete(nn_dn *d, uint64_t id, uint64_t gen)
{
	nn_cmd *c = xcalloc(1, sizeof(*c));
	c->type = CAUDAL__COMMAND_TYPE__CMD_DELETE;
	c->id = id;
	c->gen = gen;
	queue(d, c);
}

/* Verifications queued on one datanode at most: client reports beyond it
 * are dropped (the datanode's scanner still reads every replica). */
#define MAX_VERIFY_QUEUED 64

bool nn_dn_queue_verify(nn_dn *d, uint64_t id, uint64_t gen)
{
	unsigned queued = 0;
	for (nn_cmd *c = d->cmds; c; c = c->next)
		if (c->type == CAUDAL__COMMAND_TYPE__CMD_VERIFY) {
			if (c->id == id)
				return true; /* already asked */
			queued++;
		}
	if (queued >= MAX_VERIFY_QUEUED)
		return false;
	nn_cmd *c = xcalloc(1, sizeof(*c));
	c->type = CAUDAL__COMMAND_TYPE__CMD_VERIFY;
	c->id = id;
	c->gen = gen;
	queue(d, c);
	return true;
}

static Caudal__Replica *arena_replica(struct cdl_arena *a, uint64_t id, uint64_t gen, uint64_t len)
{
	Caudal__Replica *r = cdl_arena_alloc(a, sizeof(*r));
	caudal__replica__init(r);
	r->id = id;
	r->gen = gen;
	r->length = len;
	return r;
}

void nn_dn_take_commands(nn_blocks *b, nn_dn *d, Caudal__HeartbeatReply *r, struct cdl_arena *a,
			 unsigned max)
{
	unsigned n = 0, ndel = 0, nver = 0;
	for (nn_cmd *c = d->cmds; c && n < max; c = c->next, n++) {
		ndel += c->type == CAUDAL__COMMAND_TYPE__CMD_DELETE;
		nver += c->type == CAUDAL__COMMAND_TYPE__CMD_VERIFY;
	}
	if (!n)
		return;
	r->commands = cdl_arena_alloc(a, (n + 1) * sizeof(*r->commands));
	Caudal__Command *del = NULL, *ver = NULL;
	for (unsigned i = 0; i < n; i++) {
		nn_cmd *c = d->cmds;
		d->cmds = c->next;
		if (!d->cmds)
			d->cmds_tail = NULL;
		d->ncmds--;
		if (c->type == CAUDAL__COMMAND_TYPE__CMD_DELETE) {
			d->ndeletes--;
			/* all deletions travel in one command */
			if (!del) {
				del = cdl_arena_alloc(a, sizeof(*del));
				caudal__command__init(del);
				del->type = CAUDAL__COMMAND_TYPE__CMD_DELETE;
				del->blocks = cdl_arena_alloc(a, ndel * sizeof(*del->blocks));
				r->commands[r->n_commands++] = del;
			}
			del->blocks[del->n_blocks++] = arena_replica(a, c->id, c->gen, 0);
		} else if (c->type == CAUDAL__COMMAND_TYPE__CMD_VERIFY) {
			/* and all verifications in one */
			if (!ver) {
				ver = cdl_arena_alloc(a, sizeof(*ver));
				caudal__command__init(ver);
				ver->type = CAUDAL__COMMAND_TYPE__CMD_VERIFY;
				ver->blocks = cdl_arena_alloc(a, nver * sizeof(*ver->blocks));
				r->commands[r->n_commands++] = ver;
			}
			ver->blocks[ver->n_blocks++] = arena_replica(a, c->id, c->gen, 0);
		} else if (c->type == CAUDAL__COMMAND_TYPE__CMD_REPORT) {
			Caudal__Command *cmd = cdl_arena_alloc(a, sizeof(*cmd));
			caudal__command__init(cmd);
			cmd->type = c->type;
			r->commands[r->n_commands++] = cmd;
		} else {
			Caudal__Command *cmd = cdl_arena_alloc(a, sizeof(*cmd));
			caudal__command__init(cmd);
			cmd->type = c->type;
			cmd->block = arena_replica(a, c->id, c->gen, c->len);
			cmd->targets = cdl_arena_alloc(a, c->ntargets * sizeof(*cmd->targets));
			for (int t = 0; t < c->ntargets; t++) {
				Caudal__DatanodeInfo *info = cdl_arena_alloc(a, sizeof(*info));
				caudal__datanode_info__init(info);
				nn_dn_info(b->dns[c->targets[t]], info, cdl_now_ms(), a);
				cmd->targets[cmd->n_targets++] = info;
			}
			r->commands[r->n_commands++] = cmd;
		}
		free(c);
	}
}

void nn_dn_info(const nn_dn *d, Caudal__DatanodeInfo *info, int64_t now, struct cdl_arena *a)
{
	info->id = a ? cdl_arena_strdup(a, d->id) : d->id;
	info->host = a ? cdl_arena_strdup(a, d->host) : d->host;
	info->data_port = d->port;
	info->http_port = d->http_port;
	info->rack = a ? cdl_arena_strdup(a, d->rack) : d->rack;
	info->capacity = d->capacity;
	info->used = d->used;
	info->remaining = d->remaining;
	info->blocks = d->nblocks;
	info->last_heartbeat_ms = now - d->last_hb_ms;
	info->alive = d->alive;
	info->decommissioning = d->decommissioning;
	info->decommissioned = d->decommissioned;
	info->xceivers = d->xceivers;
}

static bool has_loc(const nn_blk *k, int dn)
{
	for (int i = 0; i < k->nloc; i++)
		if (k->locs[i] == dn)
			return true;
	return false;
}

static bool has_corrupt(const nn_blk *k, int dn)
{
	for (int i = 0; i < k->ncorrupt; i++)
		if (k->corrupt[i] == dn)
			return true;
	return false;
}

/* A replica of a block under construction stamped newer than the record:
 * a pipeline recovery whose commit has not come (it is on its way, or
 * every node of the new pipeline died before it). As HDFS keeps the
 * replicas of a block under construction, it is kept if the stamp was
 * handed out for this block or is close above the record; deleting it as
 * stale would lose the block's newest bytes. */
static bool replica_ahead(const nn_blocks *b, const nn_blk *k, const Caudal__Replica *r)
{
	if (!k->uc || r->gen <= k->gen || r->gen - k->gen > UINT32_MAX)
		return false;
	return r->gen - k->gen <= NN_GEN_AHEAD_MAX || nn_blk_offered_gen(b, k->id, r->gen);
}

/* A reported replica is good when it has the block's generation and at
 * least the recorded length (a truncate shortens only the record), or is
 * one of a pipeline recovery of the block being written (replica_ahead,
 * noted in k->ahead for lease recovery). */
static bool replica_ok(const nn_blocks *b, nn_blk *k, const Caudal__Replica *r)
{
	if (replica_ahead(b, k, r)) {
		if (r->gen - k->gen > k->ahead)
			k->ahead = (uint32_t)(r->gen - k->gen);
		return true;
	}
	return r->gen == k->gen && (k->uc || r->length >= k->len);
}

void nn_dn_received(nn_blocks *b, nn_dn *d, const Caudal__Replica *r)
{
	nn_blk *k = nn_blk_get(b, r->id);
	if (!k) {
		nn_dn_queue_delete(d, r->id, r->gen);
		return;
	}
	if (k->uc && r->length > k->len)
		k->len = r->length; /* the writer has not reported it yet */
	if (!replica_ok(b, k, r)) {
		nn_dn_queue_delete(d, r->id, r->gen);
		return;
	}
	/* A node that held a corrupt copy has set it aside; a replica it
	 * reports as received now is a fresh copy (re-replication). */
	for (int i = 0; i < k->ncorrupt; i++)
		if (k->corrupt[i] == d->idx)
			k->corrupt[i--] = k->corrupt[--k->ncorrupt];
	nn_blk_add_loc(b, k, d->idx);
}

void nn_dn_deleted(nn_blocks *b, nn_dn *d, const Caudal__Replica *r)
{
	nn_blk *k = nn_blk_get(b, r->id);
	if (k)
		nn_blk_del_loc(b, k, d->idx);
	if (k && has_corrupt(k, d->idx)) {
		for (int i = 0; i < k->ncorrupt; i++)
			if (k->corrupt[i] == d->idx)
				k->corrupt[i] = k->corrupt[--k->ncorrupt];
	}
}

void nn_dn_corrupt(nn_blocks *b, nn_dn *d, uint64_t id)
{
	nn_blk *k = nn_blk_get(b, id);
	if (!k)
		return;
	cdl_warn("replica of block %llu on datanode '%s' is corrupt", (unsigned long long)id,
		 d->id);
	nn_blk_del_loc(b, k, d->idx);
	if (!has_corrupt(k, d->idx)) {
		if (k->ncorrupt == k->corcap) {
			k->corcap = k->corcap ? k->corcap * 2 : 2;
			k->corrupt = xrealloc(k->corrupt, k->corcap * sizeof(uint16_t));
		}
		k->corrupt[k->ncorrupt++] = (uint16_t)d->idx;
	}
	/* the bad copy goes once a good one can replace it: the monitor
	 * re-replicates first, and the datanode already stopped serving it */
	k->pending_until_ms = 0;
}

static int u64_cmp(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, c = *(const uint64_t *)y;
	return a < c ? -1 : a > c;
}

void nn_dn_block_report(nn_blocks *b, nn_dn *d, Caudal__Replica **reps, size_t n)
{
	/* Add what the report holds, then drop locations it lacks. */
	uint64_t *seen = xmalloc((n + 1) * sizeof(uint64_t));
	size_t nseen = 0;
	for (size_t i = 0; i < n; i++) {
		nn_blk *k = nn_blk_get(b, reps[i]->id);
		if (!k || !replica_ok(b, k, reps[i])) {
			if (!k || !has_corrupt(k, d->idx))
				nn_dn_queue_delete(d, reps[i]->id, reps[i]->gen);
			continue;
		}
		if (has_corrupt(k, d->idx))
			continue;
		nn_blk_add_loc(b, k, d->idx);
		seen[nseen++] = k->id;
	}
	/* sort seen ids for lookups while sweeping the map */
	qsort(seen, nseen, sizeof(uint64_t), u64_cmp);
	for (uint64_t i = 0; i < b->map->cap; i++) {
		uint64_t key = b->map->keys[i];
		if (!key || key == TOMB)
			continue;
		nn_blk *k = b->map->vals[i];
		if (!has_loc(k, d->idx) || k->uc)
			continue;
		if (!bsearch(&key, seen, nseen, sizeof(uint64_t), u64_cmp))
			nn_blk_del_loc(b, k, d->idx);
	}
	free(seen);
	d->nblocks = (uint32_t)nseen;
}

/* ---------------------------------------------------------------- blocks */

nn_blk *nn_blk_get(nn_blocks *b, uint64_t id)
{
	return map_get(b->map, id);
}

nn_blk *nn_blk_add(nn_blocks *b, uint64_t id, uint64_t gen, uint64_t len, uint64_t ino,
		   uint32_t repl)
{
	nn_blk *k = map_get(b->map, id);
	if (!k) {
		k = xcalloc(1, sizeof(*k));
		map_put(b->map, id, k);
		b->nblocks++;
	}
	k->id = id;
	k->gen = gen;
	k->len = len;
	k->ino = ino;
	k->repl = repl;
	return k;
}

void nn_blk_remove(nn_blocks *b, uint64_t id)
{
	nn_blk *k = map_get(b->map, id);
	if (!k)
		return;
	for (int i = 0; i < k->nloc; i++) {
		nn_dn *d = b->dns[k->locs[i]];
		nn_dn_queue_delete(d, k->id, k->gen);
		if (d->nblocks)
			d->nblocks--;
	}
	for (int i = 0; i < k->ncorrupt; i++)
		nn_dn_queue_delete(b->dns[k->corrupt[i]], k->id, k->gen);
	if (k->nloc)
		b->nreported--;
	b->nblocks--;
	map_del(b->map, id);
	blk_free(k);
}

void nn_blk_add_loc(nn_blocks *b, nn_blk *k, int dn)
{
	if (has_loc(k, dn))
		return;
	if (k->nloc == k->locap) {
		k->locap = k->locap ? k->locap * 2 : 4;
		k->locs = xrealloc(k->locs, k->locap * sizeof(uint16_t));
	}
	if (k->nloc == 0)
		b->nreported++;
	k->locs[k->nloc++] = (uint16_t)dn;
	b->dns[dn]->nblocks++;
}

void nn_blk_del_loc(nn_blocks *b, nn_blk *k, int dn)
{
	for (int i = 0; i < k->nloc; i++)
		if (k->locs[i] == dn) {
			k->locs[i] = k->locs[--k->nloc];
			if (k->nloc == 0)
				b->nreported--;
			if (b->dns[dn]->nblocks)
				b->dns[dn]->nblocks--;
			return;
		}
}

int nn_blk_live(const nn_blocks *b, const nn_blk *k)
{
	int n = 0;
	for (int i = 0; i < k->nloc; i++)
		n += b->dns[k->locs[i]]->alive;
	return n;
}

static void candidates(nn_blocks *b, nn_candidate *c, char **excluded, size_t nexcluded,
		       uint64_t need)
{
	for (int i = 0; i < b->ndn; i++) {
		nn_dn *d = b->dns[i];
		c[i].host = d->host;
		c[i].rack = d->rack;
		c[i].remaining = d->remaining;
		c[i].usable = d->alive && !d->decommissioning && d->remaining >= need;
		for (size_t j = 0; j < nexcluded; j++)
			if (!strcmp(excluded[j], d->id))
				c[i].usable = false;
	}
}

size_t nn_blocks_choose(nn_blocks *b, const char *writer_host, char **excluded, size_t nexcluded,
			size_t want, int *out)
{
	nn_candidate c[NN_MAX_DN];
	candidates(b, c, excluded, nexcluded, 0);
	return nn_place_choose(c, (size_t)b->ndn, writer_host, NULL, 0, want, out, &b->seed);
}

size_t nn_blocks_choose_more(nn_blocks *b, const nn_blk *k, const int *pipeline, size_t npipeline,
			     char **excluded, size_t nexcluded, size_t want, int *out)
{
	nn_candidate c[NN_MAX_DN];
	int chosen[64];
	size_t nch = 0;
	candidates(b, c, excluded, nexcluded, 0);
	for (size_t i = 0; i < npipeline && nch < 64; i++)
		if (pipeline[i] >= 0 && pipeline[i] < b->ndn) {
			c[pipeline[i]].usable = false;
			chosen[nch++] = pipeline[i];
		}
	for (int i = 0; i < k->nloc; i++)
		c[k->locs[i]].usable = false;
	if (want > 8)
		want = 8;
	return nn_place_choose(c, (size_t)b->ndn, NULL, chosen, nch, want, out, &b->seed);
}

void nn_blk_offer(nn_blocks *b, uint64_t id, uint64_t gen, int dn)
{
	if (!b->offers)
		b->offers = xcalloc(NN_MAX_OFFERS, sizeof(*b->offers));
	b->offers[b->offer_next] = (nn_offer){id, gen, dn};
	b->offer_next = (b->offer_next + 1) % NN_MAX_OFFERS;
	if (b->noffers < NN_MAX_OFFERS)
		b->noffers++;
}

bool nn_blk_offered_dn(const nn_blocks *b, uint64_t id, int dn)
{
	for (uint32_t i = 0; dn >= 0 && i < b->noffers; i++)
		if (b->offers[i].block == id && b->offers[i].dn == dn)
			return true;
	return false;
}

bool nn_blk_offered_gen(const nn_blocks *b, uint64_t id, uint64_t gen)
{
	for (uint32_t i = 0; i < b->noffers; i++)
		if (b->offers[i].block == id && b->offers[i].gen == gen)
			return true;
	return false;
}

/* Does another replica of k share the rack of its j-th? */
static bool rack_shared(const nn_blocks *b, const nn_blk *k, int j)
{
	const char *rack = b->dns[k->locs[j]]->rack;
	for (int i = 0; i < k->nloc; i++)
		if (i != j && !strcmp(b->dns[k->locs[i]]->rack, rack))
			return true;
	return false;
}

/* Racks among k's replicas, with the one on datanode `out` (-1: none)
 * replaced by datanode `in` (-1: none). */
static int racks_of(const nn_blocks *b, const nn_blk *k, int out, int in)
{
	const char *seen[64] = {NULL};
	int n = 0;
	for (int i = 0; i <= k->nloc && n < 64; i++) {
		int dn = i < k->nloc ? k->locs[i] : in;
		if (dn < 0 || (i < k->nloc && dn == out))
			continue;
		const char *r = b->dns[dn]->rack;
		bool dup = false;
		for (int j = 0; j < n && !dup; j++)
			dup = !strcmp(seen[j], r);
		if (!dup)
			seen[n++] = r;
	}
	return n;
}

uint64_t nn_blocks_move(nn_blocks *b, nn_dn *src, nn_dn *dst, uint64_t max_bytes,
			uint32_t max_blocks, int64_t now, uint32_t *nblocks)
{
	uint64_t bytes = 0;
	uint32_t n = 0;
	uint64_t cap = b->map->cap;
	/* start where the last scan stopped, so that repeated calls do not
	 * keep offering the same blocks that could not move */
	uint64_t start = b->move_cursor % cap, i = 0;
	for (; i < cap && n < max_blocks && bytes < max_bytes; i++) {
		uint64_t slot = (start + i) % cap;
		uint64_t key = b->map->keys[slot];
		if (!key || key == TOMB)
			continue;
		nn_blk *k = b->map->vals[slot];
		if (k->uc || k->ncorrupt || k->pending_until_ms > now || k->len == 0 ||
		    bytes + k->len > max_bytes)
			continue;
		bool on_src = false, on_dst = false;
		int live = 0;
		for (int j = 0; j < k->nloc; j++) {
			on_src |= k->locs[j] == src->idx;
			on_dst |= k->locs[j] == dst->idx;
			live += b->dns[k->locs[j]]->alive && !b->dns[k->locs[j]]->decommissioning;
		}
		if (!on_src || on_dst || live != (int)k->repl ||
		    racks_of(b, k, -1, -1) > racks_of(b, k, src->idx, dst->idx))
			continue;
		nn_cmd *cmd = xcalloc(1, sizeof(*cmd));
		cmd->type = CAUDAL__COMMAND_TYPE__CMD_REPLICATE;
		cmd->id = k->id;
		cmd->gen = k->gen;
		cmd->len = k->len;
		cmd->ntargets = 1;
		cmd->targets[0] = dst->idx;
		queue(src, cmd);
		k->pending_until_ms = now + 15000 + (int64_t)(k->len >> 20) * 100;
		k->move_from = (uint16_t)(src->idx + 1);
		bytes += k->len;
		n++;
	}
	b->move_cursor = start + i;
	*nblocks = n;
	if (n)
		cdl_info("balancer: moving %u replicas (%llu bytes) from '%s' to '%s'", n,
			 (unsigned long long)bytes, src->id, dst->id);
	return bytes;
}

struct need {
	nn_blk *k;
	int live;
};

static int need_cmp(const void *x, const void *y)
{
	const struct need *a = x, *c = y;
	return a->live - c->live;
}

void nn_blocks_monitor(nn_blocks *b, int64_t now, bool safemode)
{
	/* If the namenode itself was not running (stopped, swapped out), the
	 * silence was ours: give every datanode a fresh interval. */
	if (b->last_monitor_ms && now - b->last_monitor_ms > b->dead_ms / 2) {
		cdl_warn("the monitor did not run for %lld ms: not counting that against datanodes",
			 (long long)(now - b->last_monitor_ms));
		for (int i = 0; i < b->ndn; i++)
			if (b->dns[i]->alive)
				b->dns[i]->last_hb_ms = now;
	}
	b->last_monitor_ms = now;
	for (int i = 0; i < b->ndn; i++) {
		nn_dn *d = b->dns[i];
		if (d->alive && now - d->last_hb_ms > b->dead_ms) {
			d->alive = false;
			cdl_warn("datanode '%s' at %s:%u is dead (silent for %lld ms)", d->id,
				 d->host, d->port, (long long)(now - d->last_hb_ms));
			cmds_free(d);
		}
	}
	uint64_t under = 0, corrupt = 0, missing = 0, pending = 0;
	if (safemode) {
		/* nothing moves, but /metrics still tells the states */
		for (uint64_t i = 0; i < b->map->cap; i++) {
			uint64_t key = b->map->keys[i];
			if (!key || key == TOMB || b->map->vals[i]->uc)
				continue;
			nn_blk *k = b->map->vals[i];
			int live = nn_blk_live(b, k);
			missing += k->nloc == 0;
			under += k->nloc > 0 && live < (int)k->repl;
			corrupt += k->ncorrupt > 0;
		}
		b->n_under = under, b->n_corrupt = corrupt, b->n_missing = missing;
		b->n_pending_repl = 0;
		return;
	}
	for (int i = 0; i < b->ndn; i++)
		b->dns[i]->decom_pending = 0;
	struct need *need = NULL;
	size_t nneed = 0, capneed = 0;
	for (uint64_t i = 0; i < b->map->cap; i++) {
		uint64_t key = b->map->keys[i];
		if (!key || key == TOMB)
			continue;
		nn_blk *k = b->map->vals[i];
		if (k->uc)
			continue;
		/* replicas on dead nodes no longer count; forget them */
		for (int j = k->nloc - 1; j >= 0; j--)
			if (!b->dns[k->locs[j]]->alive)
				nn_blk_del_loc(b, k, k->locs[j]);
		/* replicas on decommissioning nodes serve reads and are copy
		 * sources, but do not count towards the replication */
		int live = 0;
		for (int j = 0; j < k->nloc; j++)
			live += !b->dns[k->locs[j]]->decommissioning;
		missing += k->nloc == 0;
		under += k->nloc > 0 && live < (int)k->repl;
		corrupt += k->ncorrupt > 0;
		pending += k->pending_until_ms > now;
		if (live < (int)k->repl)
			for (int j = 0; j < k->nloc; j++)
				if (b->dns[k->locs[j]]->decommissioning)
					b->dns[k->locs[j]]->decom_pending++;
		if (live > (int)k->repl) {
			/* drop the excess: the balancer's source first, then
			 * from the fullest nodes in service, never the last
			 * replica of a rack while another rack holds two */
			while (live > (int)k->repl) {
				int worst = -1;
				for (int j = 0; j < k->nloc; j++) {
					nn_dn *d = b->dns[k->locs[j]];
					if (d->decommissioning || !rack_shared(b, k, j))
						continue;
					if (k->move_from == d->idx + 1) {
						worst = j;
						break;
					}
					if (worst < 0 ||
					    d->remaining < b->dns[k->locs[worst]]->remaining)
						worst = j;
				}
				for (int j = 0; worst < 0 && j < k->nloc; j++)
					if (!b->dns[k->locs[j]]->decommissioning &&
					    (worst < 0 || b->dns[k->locs[j]]->remaining <
							      b->dns[k->locs[worst]]->remaining))
						worst = j;
				nn_dn *d = b->dns[k->locs[worst]];
				nn_dn_queue_delete(d, k->id, k->gen);
				nn_blk_del_loc(b, k, d->idx);
				live--;
			}
			k->move_from = 0;
			continue;
		}
		if (live > 0 && k->ncorrupt && live >= (int)k->repl) {
			/* enough good copies again: remove the corrupt ones */
			for (int j = 0; j < k->ncorrupt; j++)
				nn_dn_queue_delete(b->dns[k->corrupt[j]], k->id, k->gen);
			k->ncorrupt = 0;
		}
		if (k->nloc == 0 || live >= (int)k->repl || k->pending_until_ms > now)
			continue;
		if (nneed == capneed) {
			capneed = capneed ? capneed * 2 : 64;
			need = xrealloc(need, capneed * sizeof(*need));
		}
		need[nneed].k = k;
		need[nneed++].live = live;
	}
	/* most endangered first; a bounded number per pass */
	if (nneed)
		qsort(need, nneed, sizeof(*need), need_cmp);
	nn_candidate c[NN_MAX_DN];
	size_t scheduled = 0;
	for (size_t i = 0; i < nneed && scheduled < 256; i++) {
		nn_blk *k = need[i].k;
		candidates(b, c, NULL, 0, k->len);
		int chosen[64], out[8];
		size_t nch = 0;
		for (int j = 0; j < k->nloc && nch < 64; j++)
			chosen[nch++] = k->locs[j];
		size_t want = k->repl - (size_t)need[i].live;
		if (want > 8)
			want = 8;
		size_t got =
		    nn_place_choose(c, (size_t)b->ndn, NULL, chosen, nch, want, out, &b->seed);
		if (!got)
			continue;
		/* the source: the live holder with the fewest queued commands */
		nn_dn *src = NULL;
		for (int j = 0; j < k->nloc; j++) {
			nn_dn *d = b->dns[k->locs[j]];
			if (d->alive && (!src || d->ncmds < src->ncmds))
				src = d;
		}
		if (!src)
			continue;
		nn_cmd *cmd = xcalloc(1, sizeof(*cmd));
		cmd->type = CAUDAL__COMMAND_TYPE__CMD_REPLICATE;
		cmd->id = k->id;
		cmd->gen = k->gen;
		cmd->len = k->len;
		cmd->ntargets = (int)got;
		memcpy(cmd->targets, out, got * sizeof(int));
		queue(src, cmd);
		k->pending_until_ms = now + 15000 + (int64_t)(k->len >> 20) * 100;
		scheduled++;
		cdl_debug("block %llu: %d of %u replicas, copying from '%s' to %zu node(s)",
			  (unsigned long long)k->id, need[i].live, k->repl, src->id, got);
	}
	free(need);
	b->n_under = under, b->n_corrupt = corrupt, b->n_missing = missing;
	b->n_pending_repl = pending + scheduled;
	for (int i = 0; i < b->ndn; i++) {
		nn_dn *d = b->dns[i];
		if (d->decommissioning && !d->decommissioned && d->decom_pending == 0) {
			d->decommissioned = true;
			cdl_info("datanode '%s' at %s:%u is decommissioned: it may be stopped",
				 d->id, d->host, d->port);
		}
	}
}

void nn_blocks_foreach(nn_blocks *b, nn_blk_fn fn, void *arg)
{
	for (uint64_t i = 0; i < b->map->cap; i++) {
		uint64_t key = b->map->keys[i];
		if (key && key != TOMB)
			fn(b->map->vals[i], arg);
	}
}
