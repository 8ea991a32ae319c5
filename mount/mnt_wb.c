/* mnt_wb: see mnt_wb.h. */
#include "mnt_wb.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cdl_log.h"
#include "cdl_util.h"
#include "mnt_fs.h"

#define WB_BUCKETS 1024

enum wb_state {
	WB_OPEN,    /* made here, a handle writes it, nothing sent */
	WB_QUEUED,  /* closed: its op waits in the queue */
	WB_SENDING, /* its op is in the Batch in flight */
	WB_MADE,    /* made at the namenode open (mnt_wb_made hands it over) */
	WB_LOST,    /* the namenode refused it while open (mnt_wb_made says why) */
};

struct wb_ent {
	uint64_t ino, parent;
	char *name;
	struct mnt_cred cred;
	enum wb_state st;
	bool want_open; /* settle: send it open (not closed) */
	bool inq;	/* in the queue */
	char *data;	/* closed: the file's bytes */
	size_t len;
	int err;	      /* WB_LOST: why */
	int64_t queued_ms;    /* when it joined the queue */
	Caudal__Attr attr;    /* scalar fields only: local, then the namenode's */
	struct wb_ent *hnext; /* hash chain by ino */
	struct wb_ent *qnext; /* queue (QUEUED, or OPEN with want_open) */
};

struct wb_hold {
	uint64_t dir;
	int64_t last_ms; /* last local create in it */
	bool recalled;	 /* the namenode asks for it back */
	bool giving;	 /* no new creates: give it back next round */
	uint32_t gid;	 /* the directory's group and mode when taken */
	uint32_t mode;
	uint32_t uid;
};

struct mnt_wb {
	struct mnt *m;
	pthread_mutex_t mu;
	pthread_cond_t wake;  /* the sender: something to do */
	pthread_cond_t space; /* creates waiting for room */
	pthread_cond_t done;  /* a round ended */
	pthread_mutex_t send_mu;
	struct wb_ent *tab[WB_BUCKETS];
	size_t nents, bytes;
	struct wb_ent *qhead, *qtail;
	size_t qlen;
	struct wb_hold holds[WB_HOLDS];
	size_t nholds;
	struct {
		uint64_t dir;
		int64_t until_ms;
	} backoff[16];
	uint64_t ino_next, ino_end;
	uint64_t inline_max, block_size;
	uint32_t replication, hold_ms;
	bool known;	 /* the defaults above came from a reply */
	bool stop_local; /* the namenode refused a Batch whole: no more local creates */
	int64_t last_batch_ms;
	int sync_err; /* first op lost since the last mnt_wb_sync */
	uint64_t rounds;
	int64_t pause_until_ms; /* an op waits for another holder: not before */
	struct mnt_wb_stats st;
	pthread_t thread;
	bool stop;
};

static struct wb_ent **slot_of(struct mnt_wb *w, uint64_t ino)
{
	struct wb_ent **p = &w->tab[(ino * 0x9E3779B97F4A7C15ull) >> 54];
	while (*p && (*p)->ino != ino)
		p = &(*p)->hnext;
	return p;
}

static struct wb_ent *ent_find(struct mnt_wb *w, uint64_t ino)
{
	return *slot_of(w, ino);
}

static void ent_remove(struct mnt_wb *w, struct wb_ent *e)
{
	struct wb_ent **p = slot_of(w, e->ino);
	if (*p == e)
		*p = e->hnext;
	w->nents--;
	w->bytes -= e->len;
	free(e->name);
	free(e->data);
	free(e);
	pthread_cond_broadcast(&w->space);
}

static void enqueue(struct mnt_wb *w, struct wb_ent *e)
{
	if (e->inq)
		return;
	e->inq = true;
	e->qnext = NULL;
	e->queued_ms = cdl_now_ms();
	if (w->qtail)
		w->qtail->qnext = e;
	else
		w->qhead = e;
	w->qtail = e;
	w->qlen++;
	pthread_cond_signal(&w->wake);
}

static struct wb_hold *hold_find(struct mnt_wb *w, uint64_t dir)
{
	for (size_t i = 0; i < w->nholds; i++)
		if (w->holds[i].dir == dir)
			return &w->holds[i];
	return NULL;
}

static void hold_drop(struct mnt_wb *w, uint64_t dir)
{
	struct wb_hold *h = hold_find(w, dir);
	if (h)
		*h = w->holds[--w->nholds];
}

static bool backed_off(struct mnt_wb *w, uint64_t dir, int64_t now)
{
	for (size_t i = 0; i < sizeof(w->backoff) / sizeof(w->backoff[0]); i++)
		if (w->backoff[i].dir == dir && w->backoff[i].until_ms > now)
			return true;
	return false;
}

static void back_off(struct mnt_wb *w, uint64_t dir)
{
	size_t n = sizeof(w->backoff) / sizeof(w->backoff[0]), pick = 0;
	for (size_t i = 0; i < n; i++) {
		if (w->backoff[i].dir == dir) {
			pick = i;
			break;
		}
		if (w->backoff[i].until_ms < w->backoff[pick].until_ms)
			pick = i;
	}
	w->backoff[pick].dir = dir;
	w->backoff[pick].until_ms = cdl_now_ms() + WB_BACKOFF_MS;
}

/* Does dir hold a pending file that is still open (not sendable whole)? */
static bool dir_has_open(struct mnt_wb *w, uint64_t dir)
{
	for (size_t b = 0; b < WB_BUCKETS; b++)
		for (struct wb_ent *e = w->tab[b]; e; e = e->hnext)
			if (e->parent == dir && e->st == WB_OPEN)
				return true;
	return false;
}

/* Mark dir to be given back, its open files to be made open first. */
static void hold_give(struct mnt_wb *w, struct wb_hold *h)
{
	h->giving = true;
	for (size_t b = 0; b < WB_BUCKETS; b++)
		for (struct wb_ent *e = w->tab[b]; e; e = e->hnext)
			if (e->parent == h->dir && e->st == WB_OPEN && !e->want_open) {
				e->want_open = true;
				enqueue(w, e);
			}
}

/* ------------------------------------------------------------ one round */

struct lost {
	uint64_t parent;
	char *name;
};

/* Send what is queued (and take, give, reserve as needed) in one Batch,
 * and apply the reply. Called with send_mu held, w->mu not held. take: a
 * directory to take (0: none) for take_cred (it must be allowed to create
 * there); *took_version and *took_entries get its version and number of
 * entries when held.
 * 0, or -errno of the call (the ops go back to the queue). */
static int round_once(struct mnt_wb *w, uint64_t take, const Caudal__Cred *take_cred, bool give_all,
		      bool *took, uint64_t *took_version, uint64_t *took_entries)
{
	struct mnt *m = w->m;
	Caudal__BatchRequest rq = CAUDAL__BATCH_REQUEST__INIT;
	struct wb_ent *sent[WB_BATCH];
	Caudal__BatchOp ops[WB_BATCH], *opp[WB_BATCH];
	uint64_t gives[WB_HOLDS], takes[1];
	size_t n = 0, ng = 0, bytes = 0;
	int64_t now = cdl_now_ms();

	pthread_mutex_lock(&w->mu);
	w->rounds++;
	/* the ops, in queue order */
	while (w->qhead && n < WB_BATCH && (n == 0 || bytes + w->qhead->len <= WB_CALL_BYTES)) {
		struct wb_ent *e = w->qhead;
		w->qhead = e->qnext;
		if (!w->qhead)
			w->qtail = NULL;
		w->qlen--;
		e->qnext = NULL;
		e->inq = false;
		if (e->st != WB_QUEUED && !(e->st == WB_OPEN && e->want_open))
			continue; /* settled since it was queued */
		Caudal__BatchOp *o = &ops[n];
		caudal__batch_op__init(o);
		o->parent = e->parent;
		o->name = e->name;
		o->ino = e->ino;
		o->mode = e->attr.mode;
		o->cred = &e->cred.c;
		o->closed = e->st == WB_QUEUED;
		if (o->closed) {
			o->inline_data.data = (uint8_t *)e->data;
			o->inline_data.len = e->len;
			o->mtime_ns = e->attr.mtime_ns;
		}
		e->st = WB_SENDING;
		bytes += e->len;
		opp[n] = o;
		sent[n++] = e;
	}
	/* gives: asked for, recalled, or idle with nothing left in them */
	for (size_t i = 0; i < w->nholds; i++) {
		struct wb_hold *h = &w->holds[i];
		if (give_all || h->recalled)
			hold_give(w, h);
		bool idle = now - h->last_ms >= WB_IDLE_MS;
		if (idle && !h->giving && !dir_has_open(w, h->dir))
			h->giving = true;
		if (!h->giving || dir_has_open(w, h->dir))
			continue; /* open files go first (want_open, next round) */
		bool queued = false;
		for (struct wb_ent *e = w->qhead; e && !queued; e = e->qnext)
			queued = e->parent == h->dir;
		if (!queued)
			gives[ng++] = h->dir;
	}
	if (take && !hold_find(w, take)) {
		takes[0] = take;
		rq.n_take = 1;
		rq.take = takes;
	}
	if (w->ino_end - w->ino_next < WB_RESERVE / 4)
		rq.reserve = WB_RESERVE;
	pthread_mutex_unlock(&w->mu);

	Caudal__Cred none = CAUDAL__CRED__INIT;
	rq.cred = take_cred ? (Caudal__Cred *)take_cred : &none;
	rq.client = (char *)cdl_client_name(m->cl);
	rq.n_ops = n;
	rq.ops = opp;
	rq.n_give = ng;
	rq.give = gives;
	Caudal__BatchReply *rep = NULL;
	int rc = mnt_call(m, CDL_NN_Batch, &rq.base, (ProtobufCMessage **)&rep);
	if (rc == 0 && (rep->n_errs != n || rep->n_attrs != n)) {
		protobuf_c_message_free_unpacked(&rep->base, NULL);
		rc = -EPROTO;
	}

	struct lost lost[WB_BATCH];
	size_t nlost = 0;
	pthread_mutex_lock(&w->mu);
	w->st.batches++;
	w->last_batch_ms = cdl_now_ms();
	if (rc == -EINVAL || rc == -EPROTO) {
		/* refused whole (a namenode that does not know this call, or
		 * a malformed one): sending it again would not help */
		cdl_err("the namenode refused a batch of %zu files made here: %s; they are lost", n,
			strerror(-rc));
		for (size_t i = 0; i < n; i++) {
			struct wb_ent *e = sent[i];
			w->st.lost++;
			mnt_dcache_forget(&m->dc, e->parent);
			mnt_acache_inval_entry(&m->ac, e->parent, e->name);
			if (!ops[i].closed) {
				e->st = WB_LOST;
				e->err = rc;
			} else {
				ent_remove(w, e);
			}
		}
		if (!w->sync_err)
			w->sync_err = rc;
		w->nholds = 0;
		w->stop_local = true; /* no more creates here: the usual way */
		pthread_cond_broadcast(&w->done);
		pthread_mutex_unlock(&w->mu);
		return rc;
	}
	if (rc) {
		/* back to the head of the queue, in order; the holds' state is
		 * unknown (the namenode lets them lapse): forget them, the ops
		 * re-take their directories */
		for (size_t i = n; i-- > 0;) {
			struct wb_ent *e = sent[i];
			e->st = ops[i].closed ? WB_QUEUED : WB_OPEN;
			e->inq = true;
			e->qnext = w->qhead;
			w->qhead = e;
			if (!w->qtail)
				w->qtail = e;
			w->qlen++;
		}
		uint64_t dirs[WB_HOLDS];
		size_t nd = w->nholds;
		for (size_t i = 0; i < nd; i++)
			dirs[i] = w->holds[i].dir;
		w->nholds = 0;
		pthread_cond_broadcast(&w->done);
		pthread_mutex_unlock(&w->mu);
		for (size_t i = 0; i < nd; i++)
			mnt_dcache_forget(&m->dc, dirs[i]);
		return rc;
	}
	w->inline_max = rep->inline_max;
	w->block_size = rep->block_size;
	w->replication = rep->replication;
	w->hold_ms = rep->hold_ms;
	w->known = true;
	if (rep->ino_first && rep->ino_count) {
		w->ino_next = rep->ino_first;
		w->ino_end = rep->ino_first + rep->ino_count;
	}
	for (size_t i = 0; i < n; i++) {
		struct wb_ent *e = sent[i];
		uint32_t err = rep->errs[i];
		const Caudal__Attr *a = rep->attrs[i];
		if (err == 0 && a && a->ino == e->ino) {
			w->st.made++;
			if (!ops[i].closed) {
				e->attr = *a;
				e->attr.inline_data.data = NULL;
				e->attr.inline_data.len = 0;
				e->attr.base.unknown_fields = NULL;
				e->attr.base.n_unknown_fields = 0;
				e->st = WB_MADE;
			} else {
				mnt_acache_put_attr(&m->ac, a);
				mnt_acache_put_name(&m->ac, e->parent, e->name, a->ino, a->txid);
				ent_remove(w, e);
			}
			continue;
		}
		if (err == EAGAIN && cdl_now_ms() - e->queued_ms < cdl_client_io_timeout(m->cl)) {
			/* another caller holds the directory now: later */
			w->pause_until_ms = cdl_now_ms() + WB_RETRY_MS;
			int64_t q = e->queued_ms;
			e->st = ops[i].closed ? WB_QUEUED : WB_OPEN;
			enqueue(w, e);
			e->queued_ms = q;
			continue;
		}
		int eno = err ? (int)err : EIO;
		w->st.lost++;
		cdl_err("the namenode refused the file '%s' (inode %llu) made in directory %llu: "
			"%s; it is lost",
			e->name, (unsigned long long)e->ino, (unsigned long long)e->parent,
			strerror(eno));
		if (!w->sync_err)
			w->sync_err = -eno;
		lost[nlost].parent = e->parent;
		lost[nlost++].name = xstrdup(e->name);
		if (!ops[i].closed) {
			e->st = WB_LOST;
			e->err = -eno;
		} else {
			ent_remove(w, e);
		}
	}
	for (size_t i = 0; i < rep->n_held && i < rep->n_held_versions; i++) {
		uint64_t dir = rep->held[i];
		if (dir == take) {
			*took = true;
			*took_version = rep->held_versions[i];
			*took_entries = i < rep->n_held_entries ? rep->held_entries[i] : UINT64_MAX;
		}
		if (!hold_find(w, dir) && w->nholds < WB_HOLDS) {
			struct wb_hold *h = &w->holds[w->nholds++];
			memset(h, 0, sizeof(*h));
			h->dir = dir;
			h->last_ms = cdl_now_ms();
		}
	}
	for (size_t i = 0; i < ng; i++)
		hold_drop(w, gives[i]);
	/* a hold the namenode no longer has (it lapsed while this mount
	 * stalled, or a restart forgot it): others may have made names
	 * there that the directory cache, ahead by the files sent since,
	 * would not notice; forget the directory's names */
	uint64_t gone[WB_HOLDS];
	size_t ngone = 0;
	for (size_t i = 0; i < w->nholds;) {
		bool live = false;
		for (size_t j = 0; j < rep->n_holding && !live; j++)
			live = rep->holding[j] == w->holds[i].dir;
		if (live) {
			i++;
			continue;
		}
		gone[ngone++] = w->holds[i].dir;
		w->holds[i] = w->holds[--w->nholds];
	}
	for (size_t i = 0; i < rep->n_recalled; i++) {
		struct wb_hold *h = hold_find(w, rep->recalled[i]);
		if (h && !h->recalled) {
			h->recalled = true;
			w->st.recalls++;
			back_off(w, h->dir);
			hold_give(w, h);
			pthread_cond_signal(&w->wake);
		}
	}
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	pthread_cond_broadcast(&w->done);
	pthread_mutex_unlock(&w->mu);

	for (size_t i = 0; i < ngone; i++)
		mnt_dcache_forget(&m->dc, gone[i]);
	for (size_t i = 0; i < nlost; i++) {
		mnt_dcache_forget(&m->dc, lost[i].parent);
		/* (not the kernel: a notification from here would wait for
		 * the directory's lock, which a create waiting for this
		 * thread may hold; its entry lapses within entry_timeout) */
		mnt_acache_inval_entry(&m->ac, lost[i].parent, lost[i].name);
		free(lost[i].name);
	}
	return 0;
}

/* Is there anything for a round now? Called with w->mu held; *wait_ms
 * gets how long until there may be. */
static bool round_due(struct mnt_wb *w, int64_t now, int64_t *wait_ms)
{
	*wait_ms = 1000;
	if (w->pause_until_ms > now) {
		*wait_ms = w->pause_until_ms - now;
		return false;
	}
	if (w->qhead) {
		int64_t age = now - w->qhead->queued_ms;
		if (w->qlen >= WB_BATCH / 2 || age >= WB_DELAY_MS || w->qhead->want_open)
			return true;
		*wait_ms = WB_DELAY_MS - age;
	}
	for (size_t i = 0; i < w->nholds; i++) {
		const struct wb_hold *h = &w->holds[i];
		if (h->recalled || h->giving)
			return true;
		int64_t idle = WB_IDLE_MS - (now - h->last_ms);
		if (idle <= 0 && !dir_has_open(w, h->dir))
			return true;
		if (idle > 0 && idle < *wait_ms)
			*wait_ms = idle;
	}
	if (w->nholds) {
		/* renew before the holds lapse (open files keep them) */
		int64_t renew = (int64_t)(w->hold_ms ? w->hold_ms : 2000) / 3;
		int64_t left = renew - (now - w->last_batch_ms);
		if (left <= 0)
			return true;
		if (left < *wait_ms)
			*wait_ms = left;
	}
	if (*wait_ms < 1)
		*wait_ms = 1;
	return false;
}

static void *sender_main(void *arg)
{
	struct mnt_wb *w = arg;
	pthread_mutex_lock(&w->mu);
	while (!w->stop) {
		int64_t wait;
		if (!round_due(w, cdl_now_ms(), &wait)) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += (long)(wait % 1000) * 1000000L;
			ts.tv_sec += wait / 1000 + ts.tv_nsec / 1000000000L;
			ts.tv_nsec %= 1000000000L;
			pthread_cond_timedwait(&w->wake, &w->mu, &ts);
			continue;
		}
		pthread_mutex_unlock(&w->mu);
		pthread_mutex_lock(&w->send_mu);
		bool took;
		uint64_t v, ne;
		int rc = round_once(w, 0, NULL, false, &took, &v, &ne);
		pthread_mutex_unlock(&w->send_mu);
		if (rc) {
			struct timespec ts = {0, 100 * 1000000L};
			nanosleep(&ts, NULL); /* the namenode is away: not a busy loop */
		}
		pthread_mutex_lock(&w->mu);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* Rounds until done(w, arg) holds (checked with w->mu held), at most the
 * client's io_timeout. 0 or -ETIMEDOUT. */
static int rounds_until(struct mnt_wb *w, bool (*done)(struct mnt_wb *, const void *),
			const void *arg, bool give_all)
{
	int64_t end = cdl_now_ms() + cdl_client_io_timeout(w->m->cl);
	for (int round = 0;; round++) {
		pthread_mutex_lock(&w->mu);
		bool ok = done(w, arg);
		pthread_mutex_unlock(&w->mu);
		if (ok)
			return 0;
		if (cdl_now_ms() >= end)
			return -ETIMEDOUT;
		if (round >= 2) {
			/* (ops, then the give-back, take two rounds; more means
			 * waiting for another holder: not a busy loop) */
			struct timespec ts = {0, WB_RETRY_MS * 1000000L};
			nanosleep(&ts, NULL);
		}
		pthread_mutex_lock(&w->send_mu);
		bool took;
		uint64_t v, ne;
		int rc = round_once(w, 0, NULL, give_all, &took, &v, &ne);
		pthread_mutex_unlock(&w->send_mu);
		if (rc) {
			struct timespec ts = {0, 50 * 1000000L};
			nanosleep(&ts, NULL);
		}
	}
}

/* ------------------------------------------------------------ API */

int mnt_wb_start(struct mnt *m)
{
	struct mnt_wb *w = xcalloc(1, sizeof(*w));
	w->m = m;
	pthread_mutex_init(&w->mu, NULL);
	pthread_mutex_init(&w->send_mu, NULL);
	pthread_cond_init(&w->wake, NULL);
	pthread_cond_init(&w->space, NULL);
	pthread_cond_init(&w->done, NULL);
	w->last_batch_ms = cdl_now_ms();
	int rc = pthread_create(&w->thread, NULL, sender_main, w);
	if (rc) {
		free(w);
		return -rc;
	}
	m->wb = w;
	return 0;
}

static bool all_sent(struct mnt_wb *w, const void *arg)
{
	(void)arg;
	for (size_t b = 0; b < WB_BUCKETS; b++)
		for (struct wb_ent *e = w->tab[b]; e; e = e->hnext)
			if (e->st == WB_QUEUED || e->st == WB_SENDING ||
			    (e->st == WB_OPEN && e->want_open))
				return false;
	return true;
}

static bool all_given(struct mnt_wb *w, const void *arg)
{
	return all_sent(w, arg) && w->nholds == 0;
}

void mnt_wb_stop(struct mnt *m)
{
	struct mnt_wb *w = m->wb;
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_broadcast(&w->wake);
	pthread_cond_broadcast(&w->space);
	/* files still open at unmount were closed by mnt_file_close_all;
	 * anything left open goes to the namenode open */
	for (size_t b = 0; b < WB_BUCKETS; b++)
		for (struct wb_ent *e = w->tab[b]; e; e = e->hnext)
			if (e->st == WB_OPEN) {
				e->want_open = true;
				enqueue(w, e);
			}
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	if (rounds_until(w, all_given, NULL, true))
		cdl_err("unmount: the namenode did not take %zu files made here; they are lost",
			w->nents);
	m->wb = NULL;
	for (size_t b = 0; b < WB_BUCKETS; b++)
		while (w->tab[b])
			ent_remove(w, w->tab[b]);
	pthread_mutex_destroy(&w->mu);
	pthread_mutex_destroy(&w->send_mu);
	pthread_cond_destroy(&w->wake);
	pthread_cond_destroy(&w->space);
	pthread_cond_destroy(&w->done);
	free(w);
}

/* May cred write and search a directory of owner uid, group gid, mode? */
static bool may_create(const Caudal__Cred *c, uint32_t uid, uint32_t gid, uint32_t mode)
{
	if (c->uid == 0)
		return true;
	unsigned bits;
	if (c->uid == uid) {
		bits = mode >> 6;
	} else {
		bool member = c->gid == gid;
		for (size_t i = 0; i < c->n_groups && !member; i++)
			member = c->groups[i] == gid;
		bits = member ? mode >> 3 : mode;
	}
	return (bits & 3) == 3;
}

/* Take parent; 0 when held and this mount knows its names as they are. */
static int take(struct mnt_wb *w, uint64_t parent, const Caudal__Cred *cred)
{
	struct mnt *m = w->m;
	/* its owner, group and mode, for the local permission check and the
	 * new files' group (they cannot change while it is held: a chmod
	 * waits for the give-back) */
	Caudal__Attr pa;
	if (!mnt_acache_attr(&m->ac, parent, &pa)) {
		Caudal__AttrReply *r;
		if (mnt_getattr_as(m, cred, parent, &r) != 0)
			return -EAGAIN;
		pa = *r->attr;
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	if (!S_ISDIR(pa.mode))
		return -EAGAIN;
	pthread_mutex_lock(&w->send_mu);
	bool took = false;
	uint64_t v = 0, entries = UINT64_MAX;
	int rc = round_once(w, parent, cred, false, &took, &v, &entries);
	pthread_mutex_unlock(&w->send_mu);
	if (rc || !took)
		return -EAGAIN;
	/* an empty directory is known whole at once, whoever made it */
	if (entries == 0)
		mnt_dcache_made_dir(&m->dc, parent, v);
	uint64_t dv;
	bool known = mnt_dcache_version(&m->dc, parent, &dv) && dv == v;
	pthread_mutex_lock(&w->mu);
	w->st.takes++;
	struct wb_hold *h = hold_find(w, parent);
	if (h) {
		h->uid = pa.uid;
		h->gid = pa.gid;
		h->mode = pa.mode;
		if (!known) {
			/* names this mount does not know: give it back,
			 * create the usual way there for a while */
			h->giving = true;
			back_off(w, parent);
			pthread_cond_signal(&w->wake);
		}
	}
	pthread_mutex_unlock(&w->mu);
	return h && known ? 0 : -EAGAIN;
}

int mnt_wb_create(struct mnt *m, uint64_t parent, const char *name, uint32_t mode,
		  const Caudal__Cred *cred, Caudal__Attr *out)
{
	struct mnt_wb *w = m->wb;
	if (!w || cred->n_groups > MNT_MAX_GROUPS)
		return -EAGAIN;
	int64_t now = cdl_now_ms();
	pthread_mutex_lock(&w->mu);
	struct wb_hold *h = hold_find(w, parent);
	if (!h) {
		bool can = !w->stop && !w->stop_local && !backed_off(w, parent, now) &&
			   w->nholds < WB_HOLDS;
		pthread_mutex_unlock(&w->mu);
		if (!can || take(w, parent, cred))
			return -EAGAIN;
		pthread_mutex_lock(&w->mu);
		h = hold_find(w, parent);
	}
	/* room for it: wait for the sender, at most io_timeout (then the
	 * usual way, which fails in time if the namenode is away) */
	int64_t end = now + cdl_client_io_timeout(m->cl);
	while (h && !w->stop && (w->nents >= WB_PENDING || w->bytes >= WB_DATA)) {
		if (cdl_now_ms() >= end) {
			pthread_mutex_unlock(&w->mu);
			return -EAGAIN;
		}
		pthread_cond_signal(&w->wake);
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&w->space, &w->mu, &ts);
		h = hold_find(w, parent);
	}
	if (!h || h->giving || h->recalled || w->stop || w->stop_local || !w->known ||
	    w->ino_next >= w->ino_end || !may_create(cred, h->uid, h->gid, h->mode) ||
	    !mnt_dcache_claim(&m->dc, parent, name)) {
		pthread_mutex_unlock(&w->mu);
		return -EAGAIN;
	}
	struct wb_ent *e = xcalloc(1, sizeof(*e));
	e->ino = w->ino_next++;
	e->parent = parent;
	e->name = xstrdup(name);
	e->cred.c = *cred;
	if (cred->n_groups)
		memcpy(e->cred.groups, cred->groups, cred->n_groups * sizeof(uint32_t));
	e->cred.c.groups = e->cred.groups;
	e->st = WB_OPEN;
	Caudal__Attr *a = &e->attr;
	caudal__attr__init(a);
	a->ino = e->ino;
	a->mode = S_IFREG | (mode & 07777);
	a->uid = cred->uid;
	a->gid = (h->mode & S_ISGID) ? h->gid : cred->gid;
	a->nlink = 1;
	a->atime_ns = a->mtime_ns = a->ctime_ns = cdl_wall_ns();
	a->replication = w->replication;
	a->block_size = w->block_size;
	a->inline_max = w->inline_max;
	a->under_construction = true;
	*slot_of(w, e->ino) = e;
	w->nents++;
	h->last_ms = now;
	w->st.local++;
	/* the directory's times move once the namenode has it: a stat of it
	 * asks the namenode, whose GetAttr settles the directory first */
	mnt_acache_inval(&m->ac, parent);
	*out = *a;
	pthread_mutex_unlock(&w->mu);
	return 0;
}

int mnt_wb_close(struct mnt *m, uint64_t ino, const void *data, size_t len)
{
	struct mnt_wb *w = m->wb;
	if (!w)
		return -EAGAIN;
	pthread_mutex_lock(&w->mu);
	struct wb_ent *e = ent_find(w, ino);
	if (!e || e->st != WB_OPEN || len > w->inline_max) {
		pthread_mutex_unlock(&w->mu);
		return -EAGAIN;
	}
	if (len) {
		e->data = xmalloc(len);
		memcpy(e->data, data, len);
	}
	e->len = len;
	w->bytes += len;
	e->attr.size = len;
	e->attr.stored = len;
	e->attr.under_construction = false;
	e->attr.mtime_ns = e->attr.ctime_ns = cdl_wall_ns();
	e->st = WB_QUEUED;
	e->want_open = false;
	enqueue(w, e);
	pthread_mutex_unlock(&w->mu);
	return 0;
}

int mnt_wb_made(struct mnt *m, uint64_t ino, Caudal__Attr *out)
{
	struct mnt_wb *w = m->wb;
	if (!w)
		return -ENOENT;
	int rc = -ENOENT;
	pthread_mutex_lock(&w->mu);
	struct wb_ent *e = ent_find(w, ino);
	if (e && e->st == WB_MADE) {
		*out = e->attr;
		ent_remove(w, e);
		rc = 0;
	} else if (e && e->st == WB_LOST) {
		rc = e->err;
		ent_remove(w, e);
	} else if (e) {
		rc = -EINPROGRESS;
	}
	pthread_mutex_unlock(&w->mu);
	return rc;
}

static bool ent_settled(struct mnt_wb *w, const void *arg)
{
	const struct wb_ent *e = ent_find(w, *(const uint64_t *)arg);
	return !e || e->st == WB_MADE || e->st == WB_LOST || (e->st == WB_OPEN && !e->want_open);
}

int mnt_wb_make(struct mnt *m, uint64_t ino, Caudal__Attr *out)
{
	struct mnt_wb *w = m->wb;
	if (!w)
		return -ENOENT;
	pthread_mutex_lock(&w->mu);
	struct wb_ent *e = ent_find(w, ino);
	if (e && e->st == WB_OPEN) {
		e->want_open = true;
		enqueue(w, e);
	}
	pthread_mutex_unlock(&w->mu);
	int rc = rounds_until(w, ent_settled, &ino, false);
	if (rc)
		return rc;
	return mnt_wb_made(m, ino, out);
}

bool mnt_wb_attr(struct mnt *m, uint64_t ino, Caudal__Attr *out)
{
	struct mnt_wb *w = m->wb;
	if (!w)
		return false;
	pthread_mutex_lock(&w->mu);
	struct wb_ent *e = ent_find(w, ino);
	bool p = e && (e->st == WB_OPEN || e->st == WB_QUEUED || e->st == WB_SENDING);
	if (p)
		*out = e->attr;
	pthread_mutex_unlock(&w->mu);
	return p;
}

bool mnt_wb_pending(struct mnt *m, uint64_t ino)
{
	Caudal__Attr a;
	return mnt_wb_attr(m, ino, &a);
}

uint64_t mnt_wb_inline_max(struct mnt *m)
{
	struct mnt_wb *w = m->wb;
	if (!w)
		return 0;
	pthread_mutex_lock(&w->mu);
	uint64_t v = w->inline_max;
	pthread_mutex_unlock(&w->mu);
	return v;
}

/* What a barrier waits for: the ids it named settled, their holds gone. */
struct settle {
	uint64_t ids[8];
	size_t n;
	bool all;
};

static bool settled(struct mnt_wb *w, const void *arg)
{
	const struct settle *s = arg;
	if (s->all)
		return all_given(w, NULL);
	for (size_t i = 0; i < s->n; i++) {
		if (hold_find(w, s->ids[i]))
			return false;
		if (!ent_settled(w, &s->ids[i]))
			return false;
	}
	return true;
}

static void note_id(struct settle *s, uint64_t id)
{
	if (!id)
		return;
	if (s->n == sizeof(s->ids) / sizeof(s->ids[0]))
		s->all = true;
	else
		s->ids[s->n++] = id;
}

void mnt_wb_barrier(struct mnt *m, const ProtobufCMessage *rq)
{
	struct mnt_wb *w = m->wb;
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	bool idle = w->nholds == 0 && w->nents == 0;
	pthread_mutex_unlock(&w->mu);
	if (idle)
		return;
	/* the ids rq names: its Targets (a path may cross any held
	 * directory: settle all) and its inode id fields */
	struct settle s = {.n = 0, .all = false};
	const ProtobufCMessageDescriptor *d = rq->descriptor;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const void *p = (const char *)rq + f->offset;
		if (f->label == PROTOBUF_C_LABEL_REPEATED)
			continue;
		if (f->type == PROTOBUF_C_TYPE_MESSAGE &&
		    f->descriptor == &caudal__target__descriptor) {
			const Caudal__Target *t = *(Caudal__Target *const *)p;
			if (!t)
				continue;
			if (t->path && t->path[0] && !t->ino && !t->parent)
				s.all = true;
			note_id(&s, t->ino);
			note_id(&s, t->parent);
		} else if (f->type == PROTOBUF_C_TYPE_UINT64 &&
			   (!strcmp(f->name, "ino") || !strcmp(f->name, "dir"))) {
			note_id(&s, *(const uint64_t *)p);
		}
	}
	bool need = false;
	pthread_mutex_lock(&w->mu);
	for (size_t i = 0; i < w->nholds; i++) {
		struct wb_hold *h = &w->holds[i];
		bool named = s.all;
		for (size_t j = 0; j < s.n && !named; j++)
			named = s.ids[j] == h->dir;
		if (named) {
			hold_give(w, h);
			need = true;
		}
	}
	for (size_t j = 0; j < s.n; j++) {
		struct wb_ent *e = ent_find(w, s.ids[j]);
		if (!e)
			continue;
		if (e->st == WB_OPEN && !e->want_open) {
			e->want_open = true;
			enqueue(w, e);
		}
		need = need || !ent_settled(w, &s.ids[j]);
	}
	if (s.all)
		need = need || !all_sent(w, NULL);
	pthread_mutex_unlock(&w->mu);
	if (need && rounds_until(w, settled, &s, s.all))
		cdl_warn("the namenode did not take this mount's new files in time");
}

int mnt_wb_sync(struct mnt *m)
{
	struct mnt_wb *w = m->wb;
	if (!w)
		return 0;
	int rc = rounds_until(w, all_sent, NULL, false);
	pthread_mutex_lock(&w->mu);
	if (rc == 0)
		rc = w->sync_err;
	w->sync_err = 0;
	pthread_mutex_unlock(&w->mu);
	return rc;
}

void mnt_wb_stats(struct mnt *m, struct mnt_wb_stats *s)
{
	struct mnt_wb *w = m->wb;
	memset(s, 0, sizeof(*s));
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	*s = w->st;
	pthread_mutex_unlock(&w->mu);
}
