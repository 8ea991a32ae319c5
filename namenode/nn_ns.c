/* nn_ns: see nn_ns.h. */
#include "nn_ns.h"

#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "cdl_checksum.h"
#include "cdl_client.h"
#include "cdl_log.h"
#include "cdl_metrics.h"
#include "cdl_rpc.h"
#include "cdl_util.h"
#include "nn_exports.h"
#include "nn_hosts.h"
#include "nn_token.h"
#include "nn_web.h"

#define ROOT_INO	1
#define MAX_READDIR	4096
#define MAX_XATTR_VALUE 65536
#define MAX_XATTRS	128
#define MAX_REPLICATION 32
#define MAX_EVENTS	4096
#define MAX_WAIT_MS	30000
#define MIN_BLOCK_SIZE	CDL_CHUNK
#define NN_MAX_ID	255  /* client names, datanode ids, hosts and racks */
#define WALK_DEPTH_MAX	4096 /* a path has at most CDL_PATH_MAX / 2 components */

/* ---------------------------------------------------------------- inodes */

typedef struct nn_brec {
	uint64_t id, gen, len;
} nn_brec;

typedef struct nn_xattr {
	char *name;
	uint8_t *val;
	size_t len;
} nn_xattr;

/* An inode decoded from its InodeRec; fields are owned (malloc). */
typedef struct nn_inode {
	uint64_t ino, parent;
	char *name;
	uint32_t mode, uid, gid;
	int64_t atime, mtime, ctime;
	uint32_t repl;
	uint64_t bs;
	size_t nblocks;
	nn_brec *blocks;
	char *link;
	size_t nx;
	nn_xattr *x;
	char *lease;
	uint32_t subdirs;
	uint64_t entries;
	uint64_t rdev;	  /* devices */
	uint64_t version; /* directories: entries added or removed, ever */
	uint8_t *inl;	  /* files: inline bytes (InodeRec.inline_data) */
	size_t inl_len;
	uint64_t q_space; /* files: file_space as last loaded or written (quota deltas) */
} nn_inode;

struct nn_lease {
	struct nn_lease *next;
	uint64_t ino;
	char *client;
	int64_t renewed_ms;
};

static void inode_free(nn_inode *n)
{
	if (!n)
		return;
	free(n->name);
	free(n->blocks);
	free(n->link);
	for (size_t i = 0; i < n->nx; i++) {
		free(n->x[i].name);
		free(n->x[i].val);
	}
	free(n->x);
	free(n->lease);
	free(n->inl);
	free(n);
}

/* Bytes in n's block list, holes included. */
static uint64_t blocks_size(const nn_inode *n)
{
	uint64_t s = 0;
	for (size_t i = 0; i < n->nblocks; i++)
		s += n->blocks[i].len;
	return s;
}

/* An inline file's bytes are its content, also while it moves into its
 * first block (which is not visible until settled: inline_settle). */
static uint64_t inode_size(const nn_inode *n)
{
	if (S_ISLNK(n->mode))
		return strlen(n->link ? n->link : "");
	if (S_ISDIR(n->mode))
		return 4096;
	if (n->inl_len)
		return n->inl_len;
	return blocks_size(n);
}

/* Bytes a file counts against space quotas (docs/decisions.md, "Quotas"):
 * its inline bytes and its stored blocks, times its replication; while a
 * writer holds its lease, its last block counts at the full block size, as
 * HDFS charges a block being written from its allocation. Holes store
 * nothing and count nothing. Only the record's fields: nn_check recounts
 * it the same way. */
static uint64_t file_space(const nn_inode *n)
{
	if (!S_ISREG(n->mode))
		return 0;
	uint64_t s = n->inl_len;
	for (size_t i = 0; i < n->nblocks; i++) {
		if (!n->blocks[i].id)
			continue;
		uint64_t l = n->blocks[i].len;
		if (n->lease && i + 1 == n->nblocks && l < n->bs)
			l = n->bs;
		s += l;
	}
	return s * n->repl;
}

static void inline_set(nn_inode *n, const uint8_t *data, size_t len)
{
	free(n->inl);
	n->inl = NULL;
	n->inl_len = len;
	if (len) {
		n->inl = xmalloc(len);
		memcpy(n->inl, data, len);
	}
}

static void key_ino(uint8_t k[9], uint64_t ino)
{
	k[0] = 'I';
	cdl_put_be64(k + 1, ino);
}

/* 'D' be64(parent) name; returns the key length. */
static size_t key_dirent(uint8_t *k, uint64_t parent, const char *name)
{
	size_t n = strlen(name);
	k[0] = 'D';
	cdl_put_be64(k + 1, parent);
	memcpy(k + 9, name, n);
	return 9 + n;
}

static int inode_load(nn_ns *ns, uint64_t ino, nn_inode **out)
{
	uint8_t k[9];
	char *v;
	size_t vl;
	key_ino(k, ino);
	int rc = nn_store_get(ns->st, k, sizeof(k), &v, &vl);
	if (rc < 0)
		return rc;
	Caudal__InodeRec *r = caudal__inode_rec__unpack(NULL, vl, (const uint8_t *)v);
	nn_store_free(v);
	if (!r) {
		cdl_err("inode %" PRIu64 " record is undecodable", ino);
		return -EIO;
	}
	nn_inode *n = xcalloc(1, sizeof(*n));
	n->ino = r->ino;
	n->parent = r->parent;
	n->name = xstrdup(r->name);
	n->mode = r->mode;
	n->uid = r->uid;
	n->gid = r->gid;
	n->atime = r->atime_ns;
	n->mtime = r->mtime_ns;
	n->ctime = r->ctime_ns;
	n->repl = r->replication;
	n->bs = r->block_size;
	n->nblocks = r->n_blocks;
	n->blocks = xcalloc(r->n_blocks + 1, sizeof(nn_brec));
	for (size_t i = 0; i < r->n_blocks; i++) {
		n->blocks[i].id = r->blocks[i]->id;
		n->blocks[i].gen = r->blocks[i]->gen;
		n->blocks[i].len = r->blocks[i]->length;
	}
	n->link = r->link[0] ? xstrdup(r->link) : NULL;
	n->rdev = r->rdev;
	n->version = r->version;
	n->nx = r->n_xattrs;
	n->x = xcalloc(r->n_xattrs + 1, sizeof(nn_xattr));
	for (size_t i = 0; i < r->n_xattrs; i++) {
		n->x[i].name = xstrdup(r->xattrs[i]->name);
		n->x[i].len = r->xattrs[i]->value.len;
		n->x[i].val = xmalloc(n->x[i].len + 1);
		if (n->x[i].len)
			memcpy(n->x[i].val, r->xattrs[i]->value.data, n->x[i].len);
	}
	n->lease = r->lease[0] ? xstrdup(r->lease) : NULL;
	n->subdirs = r->subdirs;
	n->entries = r->entries;
	inline_set(n, r->inline_data.data, r->inline_data.len);
	caudal__inode_rec__free_unpacked(r, NULL);
	n->q_space = file_space(n);
	*out = n;
	return 0;
}

/* ---------------------------------------------------------------- transactions */

/* A change of a quota'd directory's usage in a transaction, or (drop)
 * the removal of its quota with the directory. */
struct nn_qdelta {
	uint64_t ino;
	int64_t dns, dds;
	bool drop;
};

/* One namespace operation's writes, committed atomically by tx_commit. */
typedef struct nn_tx {
	nn_ns *ns;
	nn_batch *b;
	Caudal__Event ev;
	bool has_event;
	char *ev_path, *ev_dst;
	/* directories whose entries changed, with their versions after: the
	 * event carries them, for the mounts' directory caches */
	uint64_t ev_dirs[4], ev_dir_versions[4];
	size_t nev_dirs;
	/* applied to the soft state only once the batch is written, so an
	 * operation that fails half-way frees nothing */
	uint64_t *doomed_blocks;
	size_t ndoomed, capdoomed;
	uint64_t *doomed_leases; /* inode ids whose lease goes */
	size_t nleases, capleases;
	int64_t dinodes; /* inodes made less inodes removed: ns->inodes moves by it on commit */
	int64_t dfiles, ddirs; /* the same for regular files and directories (/metrics) */
	int64_t dinline_files, dinline_bytes; /* the same for inline files and bytes */
	/* quota'd directories whose usage moves (checked, written and applied
	 * by tx_commit) */
	struct nn_qdelta *qd;
	size_t nqd, capqd;
	/* the last subtree counted for a move (a rename counts it once) */
	uint64_t usage_ino, usage_ns, usage_ds;
} nn_tx;

/* A file's inline bytes go from was to now bytes in t. */
static void tx_inline_delta(nn_tx *t, size_t was, size_t now)
{
	t->dinline_files += (int64_t)(now > 0) - (int64_t)(was > 0);
	t->dinline_bytes += (int64_t)now - (int64_t)was;
}

static void tx_doom_block(nn_tx *t, uint64_t id)
{
	if (id == 0)
		return; /* a hole: nothing stored */
	if (t->ndoomed == t->capdoomed) {
		t->capdoomed = t->capdoomed ? 2 * t->capdoomed : 16;
		t->doomed_blocks = xrealloc(t->doomed_blocks, t->capdoomed * sizeof(uint64_t));
	}
	t->doomed_blocks[t->ndoomed++] = id;
}

static void tx_doom_lease(nn_tx *t, uint64_t ino)
{
	if (t->nleases == t->capleases) {
		t->capleases = t->capleases ? 2 * t->capleases : 4;
		t->doomed_leases = xrealloc(t->doomed_leases, t->capleases * sizeof(uint64_t));
	}
	t->doomed_leases[t->nleases++] = ino;
}

static void tx_begin(nn_tx *t, nn_ns *ns)
{
	memset(t, 0, sizeof(*t));
	t->ns = ns;
	t->b = nn_batch_new();
	caudal__event__init(&t->ev);
}

static void tx_charge(nn_tx *t, uint64_t dir, int64_t dns, int64_t dds);

static void tx_put_inode(nn_tx *t, nn_inode *n)
{
	Caudal__InodeRec r = CAUDAL__INODE_REC__INIT;
	r.ino = n->ino;
	r.parent = n->parent;
	r.name = n->name ? n->name : "";
	r.mode = n->mode;
	r.uid = n->uid;
	r.gid = n->gid;
	r.atime_ns = n->atime;
	r.mtime_ns = n->mtime;
	r.ctime_ns = n->ctime;
	r.replication = n->repl;
	r.block_size = n->bs;
	Caudal__Replica *reps = xcalloc(n->nblocks + 1, sizeof(*reps));
	Caudal__Replica **rp = xcalloc(n->nblocks + 1, sizeof(*rp));
	for (size_t i = 0; i < n->nblocks; i++) {
		caudal__replica__init(&reps[i]);
		reps[i].id = n->blocks[i].id;
		reps[i].gen = n->blocks[i].gen;
		reps[i].length = n->blocks[i].len;
		rp[i] = &reps[i];
	}
	r.n_blocks = n->nblocks;
	r.blocks = rp;
	r.link = n->link ? n->link : "";
	r.rdev = n->rdev;
	r.version = n->version;
	Caudal__XattrRec *xs = xcalloc(n->nx + 1, sizeof(*xs));
	Caudal__XattrRec **xp = xcalloc(n->nx + 1, sizeof(*xp));
	for (size_t i = 0; i < n->nx; i++) {
		caudal__xattr_rec__init(&xs[i]);
		xs[i].name = n->x[i].name;
		xs[i].value.data = n->x[i].val;
		xs[i].value.len = n->x[i].len;
		xp[i] = &xs[i];
	}
	r.n_xattrs = n->nx;
	r.xattrs = xp;
	r.lease = n->lease ? n->lease : "";
	r.subdirs = n->subdirs;
	r.entries = n->entries;
	r.inline_data.data = n->inl;
	r.inline_data.len = n->inl_len;
	size_t len = caudal__inode_rec__get_packed_size(&r);
	uint8_t *buf = xmalloc(len);
	caudal__inode_rec__pack(&r, buf);
	uint8_t k[9];
	key_ino(k, n->ino);
	nn_batch_put(t->b, k, sizeof(k), buf, len);
	free(buf);
	free(reps);
	free(rp);
	free(xs);
	free(xp);
	if (S_ISREG(n->mode)) {
		/* what the file now counts against its ancestors' space quotas */
		uint64_t sp = file_space(n);
		if (sp != n->q_space && n->parent)
			tx_charge(t, n->parent, 0, (int64_t)(sp - n->q_space));
		n->q_space = sp;
	}
}

/* ---------------------------------------------------------------- quotas
 * Each quota'd directory has a 'Q' record (QuotaRec) with its quotas and
 * its usage, kept in ns->quotas too. A transaction that adds or removes
 * inodes, or changes what a file counts (file_space), notes the change for
 * every quota'd directory above it (tx_charge); tx_commit refuses it with
 * EDQUOT when an increase passes a quota (decreases always pass, as in
 * HDFS), writes the new usage in the same batch, and moves ns->quotas
 * once the batch is written. With no quota anywhere none of this costs
 * anything; with some, a change walks up its directory's ancestors. */

static void key_quota(uint8_t k[9], uint64_t ino)
{
	k[0] = 'Q';
	cdl_put_be64(k + 1, ino);
}

static nn_quota *quota_find(nn_ns *ns, uint64_t ino)
{
	size_t lo = 0, hi = ns->nquotas;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (ns->quotas[mid].ino == ino)
			return &ns->quotas[mid];
		if (ns->quotas[mid].ino < ino)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Sets (adds) q in ns->quotas, kept sorted by inode id. */
static void quota_put(nn_ns *ns, const nn_quota *q)
{
	nn_quota *e = quota_find(ns, q->ino);
	if (e) {
		*e = *q;
		return;
	}
	if (ns->nquotas == ns->capquotas) {
		ns->capquotas = ns->capquotas ? 2 * ns->capquotas : 16;
		ns->quotas = xrealloc(ns->quotas, ns->capquotas * sizeof(nn_quota));
	}
	size_t i = ns->nquotas;
	while (i > 0 && ns->quotas[i - 1].ino > q->ino)
		i--;
	memmove(&ns->quotas[i + 1], &ns->quotas[i], (ns->nquotas - i) * sizeof(nn_quota));
	ns->quotas[i] = *q;
	ns->nquotas++;
}

static void quota_remove(nn_ns *ns, uint64_t ino)
{
	nn_quota *e = quota_find(ns, ino);
	if (!e)
		return;
	size_t i = (size_t)(e - ns->quotas);
	memmove(e, e + 1, (ns->nquotas - i - 1) * sizeof(nn_quota));
	ns->nquotas--;
}

static void quota_rec_put(nn_batch *b, const nn_quota *q)
{
	Caudal__QuotaRec r = CAUDAL__QUOTA_REC__INIT;
	r.ns_quota = q->nsq;
	r.ds_quota = q->dsq;
	r.ns_used = q->nsu;
	r.ds_used = q->dsu;
	uint8_t buf[64], k[9];
	size_t len = caudal__quota_rec__pack(&r, buf);
	key_quota(k, q->ino);
	nn_batch_put(b, k, sizeof(k), buf, len);
}

static void tx_qdelta(nn_tx *t, uint64_t ino, int64_t dns, int64_t dds, bool drop)
{
	size_t i = 0;
	while (i < t->nqd && t->qd[i].ino != ino)
		i++;
	if (i == t->nqd) {
		if (t->nqd == t->capqd) {
			t->capqd = t->capqd ? 2 * t->capqd : 4;
			t->qd = xrealloc(t->qd, t->capqd * sizeof(*t->qd));
		}
		t->qd[t->nqd++] = (struct nn_qdelta){ino, 0, 0, false};
	}
	t->qd[i].dns += dns;
	t->qd[i].dds += dds;
	t->qd[i].drop |= drop;
}

/* The quota'd directories among dir and its ancestors, nearest first, in
 * *out (the caller frees it); how many. A directory taken out of the tree
 * (parent 0, being reaped) has none above it. */
static size_t quota_chain(nn_ns *ns, uint64_t dir, uint64_t **out)
{
	*out = NULL;
	if (!ns->nquotas)
		return 0;
	size_t n = 0;
	uint64_t ino = dir;
	for (int depth = 0; ino && depth < WALK_DEPTH_MAX; depth++) {
		if (quota_find(ns, ino)) {
			*out = xrealloc(*out, (n + 1) * sizeof(uint64_t));
			(*out)[n++] = ino;
		}
		if (ino == ROOT_INO)
			break;
		nn_inode *p;
		if (inode_load(ns, ino, &p) < 0)
			break;
		ino = p->parent;
		inode_free(p);
	}
	return n;
}

/* Inodes (dns) and bytes (dds) added under directory dir in t. */
static void tx_charge(nn_tx *t, uint64_t dir, int64_t dns, int64_t dds)
{
	if (!t->ns || !t->ns->nquotas || (!dns && !dds))
		return;
	uint64_t *chain;
	size_t n = quota_chain(t->ns, dir, &chain);
	for (size_t i = 0; i < n; i++)
		tx_qdelta(t, chain[i], dns, dds, false);
	free(chain);
}

struct usage {
	uint64_t dirs, files, length, space;
};
static int subtree_count(nn_ns *ns, uint64_t top, bool quick, bool pause, struct usage *u);

/* child (with everything under it) enters (sign 1) or leaves (-1) dir. */
static void tx_charge_child(nn_tx *t, uint64_t dir, const nn_inode *child, int sign)
{
	nn_ns *ns = t->ns;
	if (!ns || !ns->nquotas)
		return;
	uint64_t *chain;
	size_t n = quota_chain(ns, dir, &chain);
	if (!n)
		return;
	uint64_t cns = 1, cds = S_ISREG(child->mode) ? child->q_space : 0;
	if (S_ISDIR(child->mode)) {
		const nn_quota *q = quota_find(ns, child->ino);
		if (q) {
			cns = q->nsu;
			cds = q->dsu;
		} else if (child->entries && t->usage_ino == child->ino) {
			cns = t->usage_ns;
			cds = t->usage_ds;
		} else if (child->entries) {
			struct usage u = {0};
			subtree_count(ns, child->ino, true, false, &u);
			cns = u.dirs + u.files;
			cds = u.space;
			t->usage_ino = child->ino;
			t->usage_ns = cns;
			t->usage_ds = cds;
		}
	}
	for (size_t i = 0; i < n; i++)
		tx_qdelta(t, chain[i], sign * (int64_t)cns, sign * (int64_t)cds, false);
	free(chain);
}

static bool is_ancestor(nn_ns *ns, uint64_t anc, uint64_t ino);

/* The quotas of top and of every directory under it go with them. */
static void tx_drop_quotas(nn_tx *t, uint64_t top)
{
	nn_ns *ns = t->ns;
	for (size_t i = 0; ns && i < ns->nquotas; i++)
		if (ns->quotas[i].ino == top || is_ancestor(ns, top, ns->quotas[i].ino))
			tx_qdelta(t, ns->quotas[i].ino, 0, 0, true);
}

/* EDQUOT when t would take a quota'd directory past a quota; else the new
 * usage records go into t's batch. */
static int tx_quota_write(nn_ns *ns, nn_tx *t)
{
	for (size_t i = 0; i < t->nqd; i++) {
		const struct nn_qdelta *d = &t->qd[i];
		const nn_quota *q = quota_find(ns, d->ino);
		if (!q || d->drop)
			continue;
		if (d->dns > 0 && q->nsq >= 0 && q->nsu + (uint64_t)d->dns > (uint64_t)q->nsq) {
			cdl_debug("name quota %" PRId64 " of directory inode %" PRIu64
				  " exceeded: %" PRIu64 " + %" PRId64,
				  q->nsq, q->ino, q->nsu, d->dns);
			return -EDQUOT;
		}
		if (d->dds > 0 && q->dsq >= 0 && q->dsu + (uint64_t)d->dds > (uint64_t)q->dsq) {
			cdl_debug("space quota %" PRId64 " of directory inode %" PRIu64
				  " exceeded: %" PRIu64 " + %" PRId64,
				  q->dsq, q->ino, q->dsu, d->dds);
			return -EDQUOT;
		}
	}
	for (size_t i = 0; i < t->nqd; i++) {
		const struct nn_qdelta *d = &t->qd[i];
		const nn_quota *q = quota_find(ns, d->ino);
		if (!q)
			continue;
		if (d->drop) {
			uint8_t k[9];
			key_quota(k, d->ino);
			nn_batch_del(t->b, k, sizeof(k));
			continue;
		}
		nn_quota nq = *q;
		nq.nsu = (uint64_t)((int64_t)nq.nsu + d->dns);
		nq.dsu = (uint64_t)((int64_t)nq.dsu + d->dds);
		quota_rec_put(t->b, &nq);
	}
	return 0;
}

/* t is written: ns->quotas moves as its records did. */
static void tx_quota_apply(nn_ns *ns, nn_tx *t)
{
	for (size_t i = 0; i < t->nqd; i++) {
		const struct nn_qdelta *d = &t->qd[i];
		nn_quota *q = quota_find(ns, d->ino);
		if (!q)
			continue;
		if (d->drop) {
			quota_remove(ns, d->ino);
			continue;
		}
		q->nsu = (uint64_t)((int64_t)q->nsu + d->dns);
		q->dsu = (uint64_t)((int64_t)q->dsu + d->dds);
	}
}

static void tx_del_inode(nn_tx *t, uint64_t ino)
{
	uint8_t k[9];
	key_ino(k, ino);
	nn_batch_del(t->b, k, sizeof(k));
}

static void tx_put_dirent(nn_tx *t, uint64_t parent, const char *name, uint64_t ino)
{
	uint8_t k[9 + CDL_NAME_MAX + 1], v[8];
	size_t kl = key_dirent(k, parent, name);
	cdl_put_be64(v, ino);
	nn_batch_put(t->b, k, kl, v, sizeof(v));
}

static void tx_del_dirent(nn_tx *t, uint64_t parent, const char *name)
{
	uint8_t k[9 + CDL_NAME_MAX + 1];
	size_t kl = key_dirent(k, parent, name);
	nn_batch_del(t->b, k, kl);
}

static char *inode_path(nn_ns *ns, const nn_inode *n);

static void tx_event(nn_tx *t, nn_ns *ns, Caudal__EventType type, const nn_inode *n,
		     const char *dst)
{
	t->has_event = true;
	t->ev.type = type;
	t->ev.ino = n->ino;
	t->ev_path = inode_path(ns, n);
	t->ev.path = t->ev_path;
	if (dst) {
		t->ev_dst = xstrdup(dst);
		t->ev.dst = t->ev_dst;
	}
	if (type == CAUDAL__EVENT_TYPE__EV_CLOSE)
		t->ev.size = inode_size(n);
}

/* The counters as they will be once the batch b is written: txid, first
 * event kept and inode count are the transaction's own, the id counters
 * ns's (they only grow, and a failed write skips ids). */
static void meta_put(nn_ns *ns, nn_batch *b, uint64_t txid, uint64_t first_txid, uint64_t inodes)
{
	Caudal__MetaRec m = CAUDAL__META_REC__INIT;
	m.next_ino = ns->next_ino;
	m.next_block = ns->next_block;
	m.txid = txid;
	m.cluster = ns->cluster;
	m.inodes = inodes;
	m.first_txid = first_txid;
	uint8_t buf[256];
	size_t len = caudal__meta_rec__pack(&m, buf);
	nn_batch_put(b, "Mmeta", 5, buf, len);
}

/* Set by tx_commit when this thread has written without a sync. */
static __thread bool tx_unsynced;

/* A block whose removal was committed in transaction txid: it stays in
 * the block map, and its replicas on the datanodes, until that
 * transaction is durable (ns_synced), as HDFS invalidates after logSync.
 * ns->doomed is in txid order. */
struct nn_doomed {
	uint64_t txid, id;
};

/* Commit: counters, the event and the records in one write (synced by
 * ns_unlock or the flusher). The in-memory counters (txid, first_txid,
 * inodes) and the soft state move only once the write succeeded, so a
 * failed commit leaves memory as it found it; ids taken for it are
 * skipped, never reused. */
static void lease_del(nn_ns *ns, uint64_t ino);

static int tx_commit(nn_ns *ns, nn_tx *t)
{
	uint64_t txid = ns->txid + 1, first_txid = ns->first_txid;
	uint64_t inodes = (uint64_t)((int64_t)ns->inodes + t->dinodes);
	if (t->has_event) {
		t->ev.txid = txid;
		t->ev.n_dirs = t->ev.n_dir_versions = t->nev_dirs;
		t->ev.dirs = t->ev_dirs;
		t->ev.dir_versions = t->ev_dir_versions;
		t->ev.time_ns = cdl_wall_ns();
		size_t len = caudal__event__get_packed_size(&t->ev);
		uint8_t *buf = xmalloc(len);
		caudal__event__pack(&t->ev, buf);
		uint8_t k[9];
		k[0] = 'E';
		cdl_put_be64(k + 1, txid);
		nn_batch_put(t->b, k, sizeof(k), buf, len);
		free(buf);
	}
	/* keep the log bounded: every transaction pushes the one events_keep
	 * older out (most transactions have an event; the rest delete nothing) */
	if (txid > (uint64_t)ns->conf.events_keep) {
		uint64_t old = txid - (uint64_t)ns->conf.events_keep;
		uint8_t k[9];
		k[0] = 'E';
		cdl_put_be64(k + 1, old);
		nn_batch_del(t->b, k, sizeof(k));
		if (first_txid <= old)
			first_txid = old + 1;
	}
	int rc = tx_quota_write(ns, t);
	if (rc == 0) {
		meta_put(ns, t->b, txid, first_txid, inodes);
		rc = nn_store_write_tag(ns->st, t->b, txid);
	}
	nn_batch_free(t->b);
	if (rc == 0) {
		tx_quota_apply(ns, t);
		tx_unsynced = true;
		ns->txid = txid;
		ns->first_txid = first_txid;
		ns->inodes = inodes;
		ns->files = (uint64_t)((int64_t)ns->files + t->dfiles);
		ns->dirs = (uint64_t)((int64_t)ns->dirs + t->ddirs);
		ns->inline_files = (uint64_t)((int64_t)ns->inline_files + t->dinline_files);
		ns->inline_bytes = (uint64_t)((int64_t)ns->inline_bytes + t->dinline_bytes);
		/* the blocks go once the operation is durable: ns_synced */
		for (size_t i = 0; i < t->ndoomed; i++) {
			if (ns->ndoomed == ns->capdoomed) {
				ns->capdoomed = ns->capdoomed ? 2 * ns->capdoomed : 64;
				ns->doomed =
				    xrealloc(ns->doomed, ns->capdoomed * sizeof(*ns->doomed));
			}
			ns->doomed[ns->ndoomed++] = (struct nn_doomed){txid, t->doomed_blocks[i]};
		}
		for (size_t i = 0; i < t->nleases; i++)
			lease_del(ns, t->doomed_leases[i]);
	}
	free(t->doomed_blocks);
	free(t->doomed_leases);
	t->doomed_blocks = t->doomed_leases = NULL;
	free(t->qd);
	t->qd = NULL;
	free(t->ev_path);
	free(t->ev_dst);
	t->b = NULL;
	return rc;
}

/* Release the namespace lock, then make this thread's writes durable
 * before its caller answers. Syncing outside the lock lets concurrent
 * operations share one WAL sync. A namenode that cannot sync its log
 * must not acknowledge anything more: nn_store_sync stops it, as the
 * batch flusher does (nn_store.h). */
static void ns_unlock(nn_ns *ns)
{
	pthread_mutex_unlock(&ns->lock);
	if (tx_unsynced) {
		tx_unsynced = false;
		if (ns->conf.sync_always)
			nn_store_sync(ns->st);
	}
}

/* The WAL is synced up to transaction upto (nn_store_on_synced; called by
 * ns_unlock's sync or the batch flusher, without ns->lock): free the
 * blocks whose removal is now durable and wake the event readers. */
static void ns_synced(void *arg, uint64_t upto)
{
	nn_ns *ns = arg;
	pthread_mutex_lock(&ns->lock);
	if (upto > ns->synced_txid) {
		ns->synced_txid = upto;
		size_t i = 0;
		for (; i < ns->ndoomed && ns->doomed[i].txid <= upto; i++)
			nn_blk_remove(ns->bl, ns->doomed[i].id);
		ns->ndoomed -= i;
		if (i && ns->ndoomed) /* (no memmove with a NULL list: UBSan) */
			memmove(ns->doomed, ns->doomed + i, ns->ndoomed * sizeof(*ns->doomed));
		pthread_cond_broadcast(&ns->txcond);
	}
	pthread_mutex_unlock(&ns->lock);
}

static void tx_abort(nn_tx *t)
{
	free(t->qd);
	t->qd = NULL;
	free(t->doomed_blocks);
	free(t->doomed_leases);
	t->doomed_blocks = t->doomed_leases = NULL;
	if (t->b)
		nn_batch_free(t->b);
	free(t->ev_path);
	free(t->ev_dst);
	t->b = NULL;
}

/* ---------------------------------------------------------------- holds
 * Write-back creates (issue 9, the Batch call): a mount may hold a
 * directory, an exclusive lock on its entries, and create files in it
 * without asking, under inode ids reserved for it. While a hold lives,
 * every other caller's lookup of a name in the directory, its listing and
 * a change to the directory itself get EAGAIN (hold_check; the client
 * library retries them) and the hold is marked recalled, which the
 * holder's next Batch reply tells it. A hold lapses hold_ms after its
 * holder's last Batch; expired holds are dropped when looked at. Holds
 * live in memory only: a restarted namenode has none. */
#define HOLDS_PER_HOLDER 64
#define HOLDS_MAX	 4096

struct nn_hold {
	uint64_t dir;
	char *holder;
	int64_t expires_ms;
	bool recalled;
};

/* The holder whose Batch is being applied on this thread (NULL: none):
 * its own holds let it through. */
static __thread const char *tl_acting;
/* Set when hold_check refused a call on this thread: an in-process caller
 * asks again (call_handler). */
static __thread bool tl_held_off;

/* Index of dir's hold, or of where it would go (ns->holds is sorted). */
static size_t hold_pos(const nn_ns *ns, uint64_t dir)
{
	size_t lo = 0, hi = ns->nholds;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (ns->holds[mid].dir < dir)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* A recalled hold that ended (given back or lapsed): nobody takes its
 * directory again for a moment, so the callers it held off get in even
 * against a holder that would take it back at once. */
static void hold_cool(nn_ns *ns, uint64_t dir)
{
	size_t n = sizeof(ns->cool) / sizeof(ns->cool[0]), pick = 0;
	for (size_t i = 1; i < n; i++)
		if (ns->cool[i].until_ms < ns->cool[pick].until_ms)
			pick = i;
	ns->cool[pick].dir = dir;
	int64_t cool = ns->conf.hold_ms < NN_HOLD_COOL_MS ? ns->conf.hold_ms : NN_HOLD_COOL_MS;
	ns->cool[pick].until_ms = cdl_now_ms() + cool;
}

static bool hold_cooling(const nn_ns *ns, uint64_t dir)
{
	int64_t now = cdl_now_ms();
	for (size_t i = 0; i < sizeof(ns->cool) / sizeof(ns->cool[0]); i++)
		if (ns->cool[i].dir == dir && ns->cool[i].until_ms > now)
			return true;
	return false;
}

static void hold_drop(nn_ns *ns, size_t i)
{
	if (ns->holds[i].recalled)
		hold_cool(ns, ns->holds[i].dir);
	free(ns->holds[i].holder);
	memmove(&ns->holds[i], &ns->holds[i + 1], (ns->nholds - i - 1) * sizeof(*ns->holds));
	ns->nholds--;
}

/* dir's hold if it is live; an expired one is dropped. */
static struct nn_hold *hold_live(nn_ns *ns, uint64_t dir)
{
	if (!ns->nholds)
		return NULL;
	size_t i = hold_pos(ns, dir);
	if (i == ns->nholds || ns->holds[i].dir != dir)
		return NULL;
	if (ns->holds[i].expires_ms <= cdl_now_ms()) {
		hold_drop(ns, i);
		return NULL;
	}
	return &ns->holds[i];
}

/* May this thread's caller look at dir's entries or change dir? -EAGAIN
 * (and the hold recalled) when another holds it. */
static int hold_check(nn_ns *ns, uint64_t dir)
{
	struct nn_hold *h = hold_live(ns, dir);
	if (!h || (tl_acting && !strcmp(tl_acting, h->holder)))
		return 0;
	if (!h->recalled)
		cdl_debug("directory inode %" PRIu64 " is held by '%s': recalled", dir, h->holder);
	h->recalled = true;
	tl_held_off = true;
	return -EAGAIN;
}

static bool is_ancestor(nn_ns *ns, uint64_t anc, uint64_t ino);

/* The same for every directory held at or under top (a recursive delete,
 * a new quota): -EAGAIN, each of them recalled, when any is held. */
static int hold_check_under(nn_ns *ns, uint64_t top)
{
	int rc = 0;
	int64_t now = cdl_now_ms();
	for (size_t i = 0; i < ns->nholds;) {
		struct nn_hold *h = &ns->holds[i];
		if (h->expires_ms <= now) {
			hold_drop(ns, i);
			continue;
		}
		if ((!tl_acting || strcmp(tl_acting, h->holder)) && is_ancestor(ns, top, h->dir)) {
			h->recalled = true;
			tl_held_off = true;
			rc = -EAGAIN;
		}
		i++;
	}
	return rc;
}

static size_t holds_of(const nn_ns *ns, const char *who)
{
	size_t n = 0;
	for (size_t i = 0; i < ns->nholds; i++)
		n += !strcmp(ns->holds[i].holder, who);
	return n;
}

/* ---------------------------------------------------------------- lookup */

/* The one way a name in a directory is looked up by the handlers: a held
 * directory's names are refused to others (hold_check). */
static int dirent_get(nn_ns *ns, uint64_t parent, const char *name, uint64_t *ino)
{
	uint8_t k[9 + CDL_NAME_MAX + 1];
	size_t kl = key_dirent(k, parent, name);
	char *v;
	size_t vl;
	int rc = hold_check(ns, parent);
	if (rc < 0)
		return rc;
	rc = nn_store_get(ns->st, k, kl, &v, &vl);
	if (rc < 0)
		return rc;
	if (vl != 8) {
		nn_store_free(v);
		return -EIO;
	}
	*ino = cdl_get_be64((const uint8_t *)v);
	nn_store_free(v);
	return 0;
}

static char *inode_path(nn_ns *ns, const nn_inode *n)
{
	if (n->ino == ROOT_INO)
		return xstrdup("/");
	char *path = xasprintf("/%s", n->name);
	uint64_t p = n->parent;
	for (int depth = 0; p != ROOT_INO && depth < 2048; depth++) {
		nn_inode *d;
		if (inode_load(ns, p, &d) < 0)
			break;
		char *np = xasprintf("/%s%s", d->name, path);
		free(path);
		path = np;
		p = d->parent;
		inode_free(d);
	}
	return path;
}

static bool in_group(const Caudal__Cred *c, uint32_t gid)
{
	if (c->gid == gid)
		return true;
	/* at most NN_MAX_GROUPS supplementary groups count: the list comes
	 * off the wire and is walked under the namespace lock */
	size_t n = c->n_groups < NN_MAX_GROUPS ? c->n_groups : NN_MAX_GROUPS;
	for (size_t i = 0; i < n; i++)
		if (c->groups[i] == gid)
			return true;
	return false;
}

/* The identity of a caller that may not act at all (a mount's request
 * without a Cred, a user certificate naming no local user): every
 * permission check fails for it. */
static const Caudal__Cred denied_cred = {PROTOBUF_C_MESSAGE_INIT(&caudal__cred__descriptor),
					 UINT32_MAX - 1, UINT32_MAX - 1, 0, NULL};

/* POSIX permission check of mask (R_OK=4, W_OK=2, X_OK=1) for cred. */
static int perm(const nn_inode *n, const Caudal__Cred *c, unsigned mask)
{
	if (!c)
		return 0; /* internal callers */
	if (c == &denied_cred)
		return -EACCES;
	if (c->uid == 0) {
		/* root may execute only what someone may execute */
		if ((mask & 1) && !S_ISDIR(n->mode) && !(n->mode & 0111))
			return -EACCES;
		return 0;
	}
	unsigned bits;
	if (c->uid == n->uid)
		bits = (n->mode >> 6) & 7;
	else if (in_group(c, n->gid))
		bits = (n->mode >> 3) & 7;
	else
		bits = n->mode & 7;
	return (bits & mask) == mask ? 0 : -EACCES;
}

static const Caudal__Cred root_cred = CAUDAL__CRED__INIT;

/* Users named by user certificates, looked up in this host's user database
 * (as HDFS maps a principal to a user and groups on the namenode) and kept
 * for USER_TTL_MS. */
#define USER_CACHE  64
#define USER_TTL_MS 60000
static struct user_ent {
	char name[128];
	bool known;
	uint32_t uid, gid;
	uint32_t groups[NN_MAX_GROUPS];
	size_t ngroups;
	int64_t at;
} user_cache[USER_CACHE];
static pthread_mutex_t user_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned user_next;

/* Fill cred (groups into its own storage) for the local user name; false
 * when there is no such user. */
static bool user_cred(const char *name, Caudal__Cred *cred, uint32_t *groups)
{
	int64_t now = cdl_now_ms();
	struct user_ent e;
	bool hit = false;
	pthread_mutex_lock(&user_mu);
	for (unsigned i = 0; i < USER_CACHE; i++)
		if (user_cache[i].at && !strcmp(user_cache[i].name, name) &&
		    now - user_cache[i].at < USER_TTL_MS) {
			e = user_cache[i];
			hit = true;
			break;
		}
	pthread_mutex_unlock(&user_mu);
	if (!hit) {
		memset(&e, 0, sizeof(e));
		snprintf(e.name, sizeof(e.name), "%s", name);
		struct passwd pw, *pp = NULL;
		char buf[4096];
		if (getpwnam_r(name, &pw, buf, sizeof(buf), &pp) == 0 && pp) {
			e.known = true;
			e.uid = pp->pw_uid;
			e.gid = pp->pw_gid;
			gid_t gl[NN_MAX_GROUPS];
			int ng = NN_MAX_GROUPS;
			if (getgrouplist(name, pp->pw_gid, gl, &ng) < 0)
				ng = NN_MAX_GROUPS; /* more than we keep: the first ones */
			for (int i = 0; i < ng && i < NN_MAX_GROUPS; i++)
				e.groups[e.ngroups++] = gl[i];
		}
		e.at = now;
		pthread_mutex_lock(&user_mu);
		user_cache[user_next++ % USER_CACHE] = e;
		pthread_mutex_unlock(&user_mu);
	}
	if (!e.known)
		return false;
	caudal__cred__init(cred);
	cred->uid = e.uid;
	cred->gid = e.gid;
	memcpy(groups, e.groups, e.ngroups * sizeof(*groups));
	cred->groups = groups;
	cred->n_groups = e.ngroups;
	return true;
}

/* Storage for a credential made for the request on this thread. */
static __thread Caudal__Cred tl_cred;
static __thread uint32_t tl_groups[NN_MAX_GROUPS];

/* Who the request acts as, from the caller's certificate and its claim
 * (DESIGN.md, "Security"): an admin certificate acts as root; a user
 * certificate only as that user (the claim is ignored; a user certificate
 * never acts as uid 0); a mount or a job daemon certificate acts for the
 * uid it claims, as NFS servers trust AUTH_SYS from exported hosts, and a
 * request of theirs without a claim is refused; on a plaintext cluster
 * (insecure = yes) the claim is believed and a request without one is
 * refused. In-process callers (unit tests) have no peer: their claim, or
 * root. Returns denied_cred when the caller may not act. */
/* The exports of the namespace being served (one per process). */
static const nn_exports *g_exports;

/* The exports rule for a caller that acts for other uids (a mount or a job
 * daemon): NULL when it may not act at all. Without an exports file every
 * such caller may act, read and write. */
static const nn_export_rule *export_of(const cdl_peer *p)
{
	static const nn_export_rule open_rule = {false, false, 0, 0};
	if (!g_exports)
		return &open_rule;
	return nn_exports_match(g_exports, p);
}

/* Does the caller's exports rule forbid changes? */
static bool caller_read_only(void)
{
	const cdl_peer *p = cdl_rpc_peer();
	if (!p || (p->role != CDL_ROLE_MOUNT && p->role != CDL_ROLE_JOBTRACKER &&
		   p->role != CDL_ROLE_TASKTRACKER))
		return false;
	const nn_export_rule *r = export_of(p);
	return r && r->ro;
}

static const Caudal__Cred *cred_of(const Caudal__Cred *c)
{
	const cdl_peer *p = cdl_rpc_peer();
	if (!p)
		return c ? c : &root_cred;
	switch (p->role) {
	case CDL_ROLE_ADMIN:
		return &root_cred;
	case CDL_ROLE_USER:
		if (!user_cred(p->name, &tl_cred, tl_groups) || tl_cred.uid == 0) {
			cdl_info("user certificate '%s' names no local user: refused", p->name);
			return &denied_cred;
		}
		return &tl_cred;
	case CDL_ROLE_MOUNT:
	case CDL_ROLE_JOBTRACKER:
	case CDL_ROLE_TASKTRACKER: {
		const nn_export_rule *r = export_of(p);
		if (!c || !r)
			return &denied_cred;
		if (r->maproot && c->uid == 0) {
			/* root squash: the claimed root acts as the rule's user */
			tl_cred = *c;
			tl_cred.uid = r->root_uid;
			tl_cred.gid = r->root_gid;
			tl_cred.n_groups = 0;
			tl_cred.groups = NULL;
			return &tl_cred;
		}
		return c;
	}
	case CDL_ROLE_INSECURE:
		return c ? c : &denied_cred;
	default:
		return &denied_cred;
	}
}

/* Is the caller allowed to speak for the datanode on host? A datanode
 * certificate speaks only for datanodes on its own host. */
static bool dn_caller_ok(const char *host)
{
	const cdl_peer *p = cdl_rpc_peer();
	if (!p || p->role == CDL_ROLE_INSECURE)
		return true;
	if (p->role == CDL_ROLE_DATANODE && !strcmp(p->name, host))
		return true;
	cdl_warn("%s certificate '%s' from %s may not act for datanode host '%s'",
		 cdl_role_name(p->role), p->name, p->addr, host);
	return false;
}

/* Walk an absolute path from the root, checking search permission on
 * every directory passed. With parent_only, stop at the last component's
 * parent and point *last at that component (inside a copy in *buf). */
static int walk(nn_ns *ns, const char *path, const Caudal__Cred *cred, bool parent_only,
		nn_inode **out, char **last, char **buf)
{
	const char *why;
	int rc = cdl_path_check(path, &why);
	if (rc < 0)
		return rc;
	char *p = xstrdup(path);
	size_t len = strlen(p);
	if (len > 1 && p[len - 1] == '/')
		p[--len] = '\0';
	nn_inode *cur;
	rc = inode_load(ns, ROOT_INO, &cur);
	if (rc < 0) {
		free(p);
		return rc;
	}
	char *save = NULL;
	char *comp = strtok_r(p + 1, "/", &save);
	while (comp) {
		char *next = strtok_r(NULL, "/", &save);
		if (parent_only && !next)
			break;
		if (!S_ISDIR(cur->mode)) {
			rc = -ENOTDIR;
			goto fail;
		}
		if ((rc = perm(cur, cred, 1)) < 0)
			goto fail;
		uint64_t ino;
		if ((rc = dirent_get(ns, cur->ino, comp, &ino)) < 0)
			goto fail;
		inode_free(cur);
		cur = NULL;
		if ((rc = inode_load(ns, ino, &cur)) < 0)
			goto fail;
		comp = next;
	}
	if (parent_only) {
		if (!comp) { /* the root has no parent */
			rc = -EINVAL;
			goto fail;
		}
		if (!S_ISDIR(cur->mode)) {
			rc = -ENOTDIR;
			goto fail;
		}
		*last = comp;
		*buf = p;
	} else {
		free(p);
	}
	*out = cur;
	return 0;
fail:
	inode_free(cur);
	free(p);
	return rc;
}

/* Check search permission (X_OK) for cred on every directory above n, up
 * to the root, as a walk from the root to n would have. An operation that
 * names an inode by id skips that walk, so without this a caller could reach
 * a file inside a directory it may not enter by learning the file's id
 * (ids are small counters, easily guessed). uid 0 and internal callers
 * (cred NULL) are exempt, as perm() exempts them. Called with ns->lock held:
 * the parent pointers do not change under it. */
static int search_above(nn_ns *ns, const nn_inode *n, const Caudal__Cred *cred)
{
	if (!cred || cred->uid == 0 || n->ino == ROOT_INO)
		return 0;
	uint64_t ino = n->parent;
	for (int depth = 0; depth < 4096; depth++) {
		nn_inode *d;
		int rc = inode_load(ns, ino, &d);
		if (rc < 0)
			return rc;
		rc = S_ISDIR(d->mode) ? perm(d, cred, X_OK) : -ENOTDIR;
		bool top = d->ino == ROOT_INO;
		ino = d->parent;
		inode_free(d);
		if (rc < 0 || top)
			return rc;
	}
	return -ELOOP; /* a parent chain that does not reach the root: corrupt */
}

/* Does n hang in the tree? Not when it is in a deleted subtree still
 * being removed (reap): nothing may be added there, as its entries are
 * removed in steps. search_above finds the same for other users. */
static int reaches_root(nn_ns *ns, const nn_inode *n)
{
	uint64_t ino = n->ino;
	for (int depth = 0; depth < WALK_DEPTH_MAX; depth++) {
		if (ino == ROOT_INO)
			return 0;
		nn_inode *d;
		int rc = inode_load(ns, ino, &d);
		if (rc < 0)
			return rc;
		ino = d->parent;
		inode_free(d);
	}
	return -ELOOP;
}

/* Resolve a Target to its inode. A target by id (ino, or parent+name)
 * checks search permission on the directories above as well. */
static int resolve(nn_ns *ns, const Caudal__Target *t, const Caudal__Cred *cred, nn_inode **out)
{
	if (!t)
		return -EINVAL;
	if (t->ino) {
		int rc = inode_load(ns, t->ino, out);
		if (rc == 0 && (rc = search_above(ns, *out, cred)) < 0) {
			inode_free(*out);
			*out = NULL;
		}
		return rc;
	}
	if (t->parent) {
		int rc = cdl_name_check(t->name, NULL);
		if (rc < 0)
			return rc;
		nn_inode *p;
		if ((rc = inode_load(ns, t->parent, &p)) < 0)
			return rc;
		if (!S_ISDIR(p->mode))
			rc = -ENOTDIR;
		else if ((rc = perm(p, cred, X_OK)) == 0 && (rc = search_above(ns, p, cred)) == 0) {
			uint64_t ino;
			rc = dirent_get(ns, p->ino, t->name, &ino);
			if (rc == 0)
				rc = inode_load(ns, ino, out);
		}
		inode_free(p);
		return rc;
	}
	if (t->path[0])
		return walk(ns, t->path, cred, false, out, NULL, NULL);
	return -EINVAL;
}

/* Resolve a Target naming a directory entry to (parent inode, name). The
 * name is copied into *name (caller frees). */
static int resolve_parent(nn_ns *ns, const Caudal__Target *t, const Caudal__Cred *cred,
			  nn_inode **parent, char **name)
{
	if (!t)
		return -EINVAL;
	int rc;
	if (t->parent) {
		if ((rc = cdl_name_check(t->name, NULL)) < 0)
			return rc;
		if ((rc = inode_load(ns, t->parent, parent)) < 0)
			return rc;
		/* the callers check the parent itself (W_OK|X_OK or X_OK) */
		rc = S_ISDIR((*parent)->mode) ? search_above(ns, *parent, cred) : -ENOTDIR;
		if (rc == 0 && (!cred || cred->uid == 0))
			rc = reaches_root(ns, *parent);
		if (rc < 0) {
			inode_free(*parent);
			*parent = NULL;
			return rc;
		}
		*name = xstrdup(t->name);
		return 0;
	}
	if (!t->path[0])
		return -EINVAL;
	char *last, *buf;
	if ((rc = walk(ns, t->path, cred, true, parent, &last, &buf)) < 0)
		return rc;
	*name = xstrdup(last);
	free(buf);
	return 0;
}

/* ---------------------------------------------------------------- replies */

static void fill_attr(nn_ns *ns, const nn_inode *n, Caudal__Attr *a)
{
	a->ino = n->ino;
	a->mode = n->mode;
	a->uid = n->uid;
	a->gid = n->gid;
	a->size = inode_size(n);
	a->atime_ns = n->atime;
	a->mtime_ns = n->mtime;
	a->ctime_ns = n->ctime;
	a->nlink = S_ISDIR(n->mode) ? 2 + n->subdirs : 1;
	a->replication = n->repl;
	a->block_size = n->bs;
	a->under_construction = n->lease != NULL;
	a->blocks = n->inl_len ? 0 : (uint32_t)n->nblocks;
	a->rdev = n->rdev;
	a->version = n->version;
	a->txid = ns->txid;
	if (!S_ISREG(n->mode))
		return;
	a->inline_max = (uint64_t)ns->conf.inline_max;
	if (n->inl_len) {
		a->stored = n->inl_len;
		return;
	}
	for (size_t i = 0; i < n->nblocks; i++)
		if (n->blocks[i].id)
			a->stored += n->blocks[i].len;
}

static Caudal__Attr *arena_attr(nn_ns *ns, cdl_arena *a, const nn_inode *n)
{
	Caudal__Attr *at = cdl_arena_alloc(a, sizeof(*at));
	caudal__attr__init(at);
	fill_attr(ns, n, at);
	return at;
}

/* ---------------------------------------------------------------- leases */

static struct nn_lease *lease_find(nn_ns *ns, uint64_t ino)
{
	for (struct nn_lease *l = ns->leases; l; l = l->next)
		if (l->ino == ino)
			return l;
	return NULL;
}

static void lease_add(nn_ns *ns, uint64_t ino, const char *client)
{
	struct nn_lease *l = lease_find(ns, ino);
	if (!l) {
		l = xcalloc(1, sizeof(*l));
		l->ino = ino;
		l->next = ns->leases;
		ns->leases = l;
	} else {
		free(l->client);
	}
	l->client = xstrdup(client);
	l->renewed_ms = cdl_now_ms();
}

static void lease_del(nn_ns *ns, uint64_t ino)
{
	for (struct nn_lease **pl = &ns->leases; *pl; pl = &(*pl)->next)
		if ((*pl)->ino == ino) {
			struct nn_lease *l = *pl;
			*pl = l->next;
			free(l->client);
			free(l);
			return;
		}
}

/* The lease holder a request speaks for: the client name it gives, tied to
 * the certificate that sent it, so that a caller who learns another
 * writer's client name (host and pid, easily guessed) cannot add blocks to,
 * complete, renew or take over that writer's file. Lent: a per-thread
 * buffer, valid until the next call on this thread. */
static __thread char tl_holder[NN_MAX_ID + sizeof(((cdl_peer *)0)->name) + 32];

static const char *holder(const char *client)
{
	const cdl_peer *p = cdl_rpc_peer();
	if (!p || p->role == CDL_ROLE_INSECURE)
		return client;
	snprintf(tl_holder, sizeof(tl_holder), "%s@%s:%s", client, cdl_role_name(p->role), p->name);
	return tl_holder;
}

/* A lease recovery waiting for the datanodes (HDFS's block recovery, driven
 * by the namenode rather than a primary datanode): each live holder of the
 * file's last block gets CMD_RECOVER in its next heartbeat reply, cuts the
 * old writer off, moves its replica to the new stamp at the length it
 * holds and reports it received under that stamp. The file is closed at
 * the shortest length reported (every kept replica holds it, and every
 * byte a writer had acked is on every replica of its pipeline; a replica
 * shorter than the length recorded is not kept), with the
 * new stamp and the reporting nodes as locations, once every holder asked
 * answered (or died), or at the deadline. A round that got no report at
 * all is tried again with a newer stamp (RECOVERY_ROUNDS in all); then the
 * file is closed as before the datanodes were asked: at the longest length
 * reported under the old stamp. */
#define RECOVERY_ROUNDS 3
/* per round, beyond two heartbeats: a holder waits up to 5 s for the
 * writer to let go of its replica (dn_nn.c), then syncs and reports it */
#define RECOVERY_WAIT_MS  8000
#define RECOVERY_CMDS_MAX 64 /* CMD_RECOVER per heartbeat reply; the rest wait for the next */

struct nn_recovery {
	struct nn_recovery *next;
	uint64_t ino, block, old_gen, gen;
	int64_t deadline_ms;
	int rounds;
	int n;
	struct {
		int dn;
		bool sent, answered, got; /* got: recovered, at len bytes */
		uint64_t len;
	} h[MAX_REPLICATION];
};

static struct nn_recovery *recovery_of_ino(nn_ns *ns, uint64_t ino)
{
	for (struct nn_recovery *r = ns->recoveries; r; r = r->next)
		if (r->ino == ino)
			return r;
	return NULL;
}

static struct nn_recovery *recovery_of_block(nn_ns *ns, uint64_t block)
{
	for (struct nn_recovery *r = ns->recoveries; r; r = r->next)
		if (r->block == block)
			return r;
	return NULL;
}

static void recovery_commands(nn_ns *ns, nn_dn *d, Caudal__HeartbeatReply *rep, cdl_arena *a);
static bool recovery_report(nn_ns *ns, nn_dn *d, const Caudal__Replica *r);
static bool recovery_refused(nn_ns *ns, nn_dn *d, const Caudal__Replica *r);

/* The writer must hold the file's lease, and it must not have expired:
 * once a lease recovery started the writer has lost the file, as in HDFS. */
static int lease_check(nn_ns *ns, const nn_inode *n, const char *client)
{
	if (!n->lease || recovery_of_ino(ns, n->ino))
		return -EBADF;
	if (strcmp(n->lease, client))
		return -EBUSY;
	struct nn_lease *l = lease_find(ns, n->ino);
	if (l)
		l->renewed_ms = cdl_now_ms();
	else
		lease_add(ns, n->ino, client);
	return 0;
}

/* ---------------------------------------------------------------- helpers */

static bool mutation_blocked(nn_ns *ns, uint32_t *err)
{
	if (caller_read_only()) {
		*err = EROFS;
		return true;
	}
	if (ns->safemode) {
		*err = EAGAIN;
		return true;
	}
	return false;
}

static int64_t now_ns(void)
{
	return cdl_wall_ns();
}

/* A new inode under id ino (one of a Batch caller's reserved ids). */
static nn_inode *inode_make(uint64_t ino, uint64_t parent, const char *name, uint32_t mode,
			    const Caudal__Cred *cred, const nn_inode *pdir)
{
	nn_inode *n = xcalloc(1, sizeof(*n));
	n->ino = ino;
	n->parent = parent;
	n->name = xstrdup(name);
	n->mode = mode;
	n->uid = cred->uid;
	/* POSIX: the creator's group, unless the directory is setgid */
	n->gid = pdir && (pdir->mode & S_ISGID) ? pdir->gid : cred->gid;
	if (pdir && (pdir->mode & S_ISGID) && S_ISDIR(mode))
		n->mode |= S_ISGID;
	n->atime = n->mtime = n->ctime = now_ns();
	return n;
}

/* A new inode under the next id. */
static nn_inode *inode_new(nn_ns *ns, uint64_t parent, const char *name, uint32_t mode,
			   const Caudal__Cred *cred, const nn_inode *pdir)
{
	return inode_make(ns->next_ino++, parent, name, mode, cred, pdir);
}

/* Add entry name -> child in dir (records written by the caller's tx). */
/* Note that dir's entries changed in t (its version after the change). */
static void tx_dir_changed(nn_tx *t, const nn_inode *dir)
{
	size_t i = 0;
	while (i < t->nev_dirs && t->ev_dirs[i] != dir->ino)
		i++;
	if (i == 4)
		return; /* no operation changes more than four */
	t->ev_dirs[i] = dir->ino;
	t->ev_dir_versions[i] = dir->version;
	if (i == t->nev_dirs)
		t->nev_dirs++;
}

static void link_child(nn_tx *t, nn_inode *dir, nn_inode *child)
{
	tx_charge_child(t, dir->ino, child, 1);
	tx_put_dirent(t, dir->ino, child->name, child->ino);
	dir->entries++;
	dir->version++;
	tx_dir_changed(t, dir);
	if (S_ISDIR(child->mode))
		dir->subdirs++;
	dir->mtime = dir->ctime = now_ns();
}

static void unlink_child(nn_tx *t, nn_inode *dir, const nn_inode *child)
{
	tx_charge_child(t, dir->ino, child, -1);
	tx_del_dirent(t, dir->ino, child->name);
	dir->version++;
	tx_dir_changed(t, dir);
	if (dir->entries)
		dir->entries--;
	if (S_ISDIR(child->mode) && dir->subdirs)
		dir->subdirs--;
	dir->mtime = dir->ctime = now_ns();
}

/* ---------------------------------------------------------------- ClientProtocol */

#define H(name)                                                                                    \
	static void h_##name(void *ctx, const ProtobufCMessage *req_, ProtobufCMessage *rep_,      \
			     cdl_arena *a)

static uint32_t err_of(int rc)
{
	return rc < 0 ? (uint32_t)-rc : 0;
}

H(GetAttr)
{
	nn_ns *ns = ctx;
	const Caudal__GetAttrRequest *req = (const void *)req_;
	Caudal__AttrReply *rep = (void *)rep_;
	nn_inode *n = NULL;
	pthread_mutex_lock(&ns->lock);
	int rc = resolve(ns, req->target, cred_of(req->cred), &n);
	if (rc == 0)
		rep->attr = arena_attr(ns, a, n);
	ns_unlock(ns);
	inode_free(n);
	rep->err = err_of(rc);
}

/* Make one directory name in parent; *out gets it. */
static int mkdir_one(nn_ns *ns, nn_inode *parent, const char *name, uint32_t mode,
		     const Caudal__Cred *cred, nn_inode **out)
{
	int rc = perm(parent, cred, 3);
	if (rc < 0)
		return rc;
	nn_tx t;
	tx_begin(&t, ns);
	nn_inode *n = inode_new(ns, parent->ino, name, S_IFDIR | (mode & 07777), cred, parent);
	link_child(&t, parent, n);
	tx_put_inode(&t, n);
	tx_put_inode(&t, parent);
	tx_event(&t, ns, CAUDAL__EVENT_TYPE__EV_MKDIR, n, NULL);
	t.dinodes = 1;
	t.ddirs = 1;
	rc = tx_commit(ns, &t);
	if (rc < 0) {
		inode_free(n);
		return rc;
	}
	*out = n;
	return 0;
}

H(Mkdir)
{
	nn_ns *ns = ctx;
	const Caudal__MkdirRequest *req = (const void *)req_;
	Caudal__AttrReply *rep = (void *)rep_;
	const Caudal__Cred *cred = cred_of(req->cred);
	nn_inode *parent = NULL, *n = NULL;
	char *name = NULL;
	int rc;
	pthread_mutex_lock(&ns->lock);
	if (mutation_blocked(ns, &rep->err))
		goto out;
	if (req->parents && req->target && req->target->path[0] && !req->target->parent) {
		/* walk creating what is missing */
		const char *why;
		if ((rc = cdl_path_check(req->target->path, &why)) < 0)
			goto done;
		char *p = xstrdup(req->target->path), *save = NULL;
		rc = inode_load(ns, ROOT_INO, &n);
		for (char *c = strtok_r(p + 1, "/", &save); c && rc == 0;
		     c = strtok_r(NULL, "/", &save)) {
			uint64_t ino;
			if (!S_ISDIR(n->mode)) {
				rc = -ENOTDIR;
				break;
			}
			if ((rc = perm(n, cred, 1)) < 0)
				break;
			nn_inode *next = NULL;
			rc = dirent_get(ns, n->ino, c, &ino);
			if (rc == 0)
				rc = inode_load(ns, ino, &next);
			else if (rc == -ENOENT)
				rc = mkdir_one(ns, n, c, req->mode, cred, &next);
			inode_free(n);
			n = next;
		}
		free(p);
		if (rc == 0 && !S_ISDIR(n->mode))
			rc = -ENOTDIR;
		goto done;
	}
	if ((rc = resolve_parent(ns, req->target, cred, &parent, &name)) < 0)
		goto done;
	uint64_t ino;
	if ((rc = dirent_get(ns, parent->ino, name, &ino)) == 0) {
		rc = -EEXIST;
		if (req->parents && inode_load(ns, ino, &n) == 0 && S_ISDIR(n->mode))
			rc = 0;
		goto done;
	}
	if (rc != -ENOENT)
		goto done;
	rc = mkdir_one(ns, parent, name, req->mode, cred, &n);
done:
	if (rc == 0 && n) {
		rep->attr = arena_attr(ns, a, n);
		rep->parent_version = parent ? parent->version : 0;
	}
	rep->err = err_of(rc);
out:
	ns_unlock(ns);
	inode_free(parent);
	inode_free(n);
	free(name);
}

H(Create)
{
	nn_ns *ns = ctx;
	const Caudal__CreateRequest *req = (const void *)req_;
	Caudal__AttrReply *rep = (void *)rep_;
	const Caudal__Cred *cred = cred_of(req->cred);
	nn_inode *parent = NULL, *n = NULL;
	char *name = NULL;
	int rc;
	uint64_t ino;
	nn_tx t;
	pthread_mutex_lock(&ns->lock);
	if (mutation_blocked(ns, &rep->err))
		goto out;
	if (!req->client[0] || strlen(req->client) > NN_MAX_ID) {
		rc = -EINVAL;
		goto done;
	}
	uint32_t repl = req->replication ? req->replication : (uint32_t)ns->conf.replication;
	uint64_t bs = req->block_size ? req->block_size : (uint64_t)ns->conf.block_size;
	if (repl > MAX_REPLICATION || bs < MIN_BLOCK_SIZE || bs > (1ULL << 36) || bs % CDL_CHUNK) {
		rc = -EINVAL;
		goto done;
	}
	if (req->parents && req->target && req->target->path[0] && !req->target->parent) {
		/* make the ancestors first, as mkdir -p would */
		char *dir = xstrdup(req->target->path);
		char *slash = strrchr(dir, '/');
		if (slash && slash != dir) {
			*slash = '\0';
			Caudal__MkdirRequest mk = CAUDAL__MKDIR_REQUEST__INIT;
			Caudal__Target tg = CAUDAL__TARGET__INIT;
			tg.path = dir;
			mk.target = &tg;
			mk.mode = 0755;
			mk.parents = true;
			mk.cred = req->cred;
			Caudal__AttrReply mr = CAUDAL__ATTR_REPLY__INIT;
			cdl_arena ma;
			cdl_arena_init(&ma);
			ns_unlock(ns);
			h_Mkdir(ns, &mk.base, &mr.base, &ma);
			pthread_mutex_lock(&ns->lock);
			cdl_arena_release(&ma);
			if (mr.err && mr.err != EEXIST) {
				free(dir);
				rc = -(int)mr.err;
				goto done;
			}
		}
		free(dir);
	}
	if ((rc = resolve_parent(ns, req->target, cred, &parent, &name)) < 0)
		goto done;
	rc = dirent_get(ns, parent->ino, name, &ino);
	if (rc < 0 && rc != -ENOENT)
		goto done;
	tx_begin(&t, ns);
	if (rc == 0) {
		/* it exists: overwrite in place (O_TRUNC keeps the inode) */
		if ((rc = inode_load(ns, ino, &n)) < 0)
			goto abort;
		if (S_ISDIR(n->mode)) {
			rc = req->exclusive ? -EEXIST : -EISDIR;
			goto abort;
		}
		if (!req->exclusive && n->lease && !strcmp(n->lease, holder(req->client)) &&
		    n->nblocks == 0 && n->inl_len == 0) {
			/* our own create, retried after its reply was lost */
			tx_abort(&t);
			goto done;
		}
		if (req->exclusive || !req->overwrite) {
			rc = -EEXIST;
			goto abort;
		}
		if (n->lease && strcmp(n->lease, holder(req->client))) {
			rc = -EBUSY;
			goto abort;
		}
		if (!S_ISREG(n->mode)) {
			/* a symlink, fifo, socket or device is not a file to
			 * overwrite: it would keep its type and get blocks */
			rc = -EEXIST;
			goto abort;
		}
		if ((rc = perm(n, cred, 2)) < 0)
			goto abort;
		for (size_t i = 0; i < n->nblocks; i++)
			tx_doom_block(&t, n->blocks[i].id);
		n->nblocks = 0;
		tx_inline_delta(&t, n->inl_len, 0);
		inline_set(n, NULL, 0);
		n->mtime = n->ctime = now_ns();
		n->repl = repl;
		n->bs = bs;
		tx_event(&t, ns, CAUDAL__EVENT_TYPE__EV_CREATE, n, NULL);
	} else {
		if ((rc = perm(parent, cred, 3)) < 0)
			goto abort;
		n = inode_new(ns, parent->ino, name, S_IFREG | (req->mode & 07777), cred, parent);
		n->repl = repl;
		n->bs = bs;
		link_child(&t, parent, n);
		tx_put_inode(&t, parent);
		t.dinodes = 1;
		t.dfiles = 1;
		tx_event(&t, ns, CAUDAL__EVENT_TYPE__EV_CREATE, n, NULL);
	}
	free(n->lease);
	n->lease = xstrdup(holder(req->client));
	tx_put_inode(&t, n);
	if ((rc = tx_commit(ns, &t)) == 0)
		lease_add(ns, n->ino, holder(req->client));
	goto done;
abort:
	tx_abort(&t);
done:
	if (rc == 0) {
		rep->attr = arena_attr(ns, a, n);
		rep->parent_version = parent ? parent->version : 0;
	}
	rep->err = err_of(rc);
out:
	ns_unlock(ns);
	inode_free(parent);
	inode_free(n);
	free(name);
}

/* Make a metadata-only inode (symlink, fifo, socket, device, empty
 * closed file) named by target: the parent must be writable and search-
 * able and the name free. Fills rep (attributes and the parent's version)
 * on success; returns 0 or -errno. ns->lock held. */
static int make_leaf(nn_ns *ns, cdl_arena *a, const Caudal__Target *target,
		     const Caudal__Cred *cred, uint32_t mode, const char *link, uint64_t rdev,
		     Caudal__AttrReply *rep)
{
	nn_inode *parent = NULL, *n = NULL;
	char *name = NULL;
	uint64_t ino;
	int rc;
	if ((rc = resolve_parent(ns, target, cred, &parent, &name)) < 0)
		goto out;
	if ((rc = perm(parent, cred, 3)) < 0)
		goto out;
	if ((rc = dirent_get(ns, parent->ino, name, &ino)) != -ENOENT) {
		rc = rc == 0 ? -EEXIST : rc;
		goto out;
	}
	nn_tx t;
	tx_begin(&t, ns);
	n = inode_new(ns, parent->ino, name, mode, cred, parent);
	n->link = link ? xstrdup(link) : NULL;
	n->rdev = rdev;
	if (S_ISREG(mode)) {
		n->repl = (uint32_t)ns->conf.replication;
		n->bs = (uint64_t)ns->conf.block_size;
	}
	link_child(&t, parent, n);
	tx_put_inode(&t, parent);
	tx_put_inode(&t, n);
	tx_event(&t, ns, CAUDAL__EVENT_TYPE__EV_CREATE, n, NULL);
	t.dinodes = 1;
	t.dfiles = S_ISREG(mode);
	t.ddirs = S_ISDIR(mode);
	if ((rc = tx_commit(ns, &t)) == 0) {
		rep->attr = arena_attr(ns, a, n);
		rep->parent_version = parent->version;
	}
out:
	inode_free(parent);
	inode_free(n);
	free(name);
	return rc;
}

H(Symlink)
{
	nn_ns *ns = ctx;
	const Caudal__SymlinkRequest *req = (const void *)req_;
	Caudal__AttrReply *rep = (void *)rep_;
	pthread_mutex_lock(&ns->lock);
	if (!mutation_blocked(ns, &rep->err)) {
		size_t ll = strlen(req->link);
		int rc = ll == 0 ? -EINVAL : ll > CDL_PATH_MAX ? -ENAMETOOLONG : 0;
		if (rc == 0)
			rc = make_leaf(ns, a, req->target, cred_of(req->cred), S_IFLNK | 0777,
				       req->link, 0, rep);
		rep->err = err_of(rc);
	}
	ns_unlock(ns);
}

/* A special file (fifo, socket, device) or an empty closed regular file:
 * metadata only, as MooseFS stores them, so that tar and rsync -a copy a
 * tree holding them. Devices need root, as mknod(2) needs CAP_MKNOD. */
H(Mknod)
{
	nn_ns *ns = ctx;
	const Caudal__MknodRequest *req = (const void *)req_;
	Caudal__AttrReply *rep = (void *)rep_;
	const Caudal__Cred *cred = cred_of(req->cred);
	pthread_mutex_lock(&ns->lock);
	if (!mutation_blocked(ns, &rep->err)) {
		uint32_t type = req->mode & S_IFMT;
		bool dev = type == S_IFCHR || type == S_IFBLK;
		int rc = 0;
		if (!dev && type != S_IFIFO && type != S_IFSOCK && type != S_IFREG)
			rc = -EINVAL;
		else if (dev && cred->uid != 0)
			rc = -EPERM;
		else if (!dev && req->rdev)
			rc = -EINVAL;
		if (rc == 0)
			rc = make_leaf(ns, a, req->target, cred, type | (req->mode & 07777), NULL,
				       req->rdev, rep);
		rep->err = err_of(rc);
	}
	ns_unlock(ns);
}

H(Readlink)
{
	nn_ns *ns = ctx;
	const Caudal__GetAttrRequest *req = (const void *)req_;
	Caudal__ReadlinkReply *rep = (void *)rep_;
	nn_inode *n = NULL;
	pthread_mutex_lock(&ns->lock);
	int rc = resolve(ns, req->target, cred_of(req->cred), &n);
	if (rc == 0 && !S_ISLNK(n->mode))
		rc = -EINVAL;
	if (rc == 0)
		rep->link = cdl_arena_strdup(a, n->link ? n->link : "");
	ns_unlock(ns);
	inode_free(n);
	rep->err = err_of(rc);
}

H(Readdir)
{
	nn_ns *ns = ctx;
	const Caudal__ReaddirRequest *req = (const void *)req_;
	Caudal__ReaddirReply *rep = (void *)rep_;
	const Caudal__Cred *cred = cred_of(req->cred);
	nn_inode *d = NULL;
	pthread_mutex_lock(&ns->lock);
	int rc = resolve(ns, req->target, cred, &d);
	if (rc == 0 && !S_ISDIR(d->mode))
		rc = -ENOTDIR;
	if (rc == 0)
		rc = perm(d, cred, 4);
	if (rc == 0)
		rc = hold_check(ns, d->ino); /* its holder makes entries meanwhile */
	if (rc < 0)
		goto out;
	rep->dir = arena_attr(ns, a, d);
	unsigned limit = req->limit && req->limit < MAX_READDIR ? req->limit : MAX_READDIR;
	uint8_t prefix[9], start[9 + CDL_NAME_MAX + 2];
	prefix[0] = 'D';
	cdl_put_be64(prefix + 1, d->ino);
	size_t sl = 9;
	memcpy(start, prefix, 9);
	if (req->after[0]) {
		size_t al = strlen(req->after);
		if (al > CDL_NAME_MAX) {
			rc = -ENAMETOOLONG;
			goto out;
		}
		memcpy(start + 9, req->after, al);
		start[9 + al] = '\0'; /* the first key after `after` */
		sl = 10 + al;
	}
	nn_iter *it = nn_iter_new(ns->st, prefix, 9, start, sl);
	rep->entries = cdl_arena_alloc(a, (limit + 1) * sizeof(*rep->entries));
	for (; nn_iter_valid(it); nn_iter_next(it)) {
		if (rep->n_entries == limit) {
			rep->more = true;
			break;
		}
		size_t kl, vl;
		const char *k = nn_iter_key(it, &kl);
		const char *v = nn_iter_value(it, &vl);
		if (vl != 8 || kl <= 9)
			continue;
		nn_inode *c;
		if (inode_load(ns, cdl_get_be64((const uint8_t *)v), &c) < 0)
			continue;
		Caudal__Dirent *e = cdl_arena_alloc(a, sizeof(*e));
		caudal__dirent__init(e);
		char *nm = cdl_arena_alloc(a, kl - 9 + 1);
		memcpy(nm, k + 9, kl - 9);
		e->name = nm;
		e->attr = arena_attr(ns, a, c);
		inode_free(c);
		rep->entries[rep->n_entries++] = e;
	}
	nn_iter_free(it);
out:
	ns_unlock(ns);
	inode_free(d);
	rep->err = err_of(rc);
}

static int sticky_ok(const nn_inode *dir, const nn_inode *n, const Caudal__Cred *c);
static int perm(const nn_inode *n, const Caudal__Cred *c, unsigned mask);

/* Remove child, a file, symlink or empty directory, from dir in t: its
 * records, its blocks and lease once t commits. */
static void remove_leaf(nn_tx *t, nn_inode *dir, const nn_inode *child)
{
	for (size_t i = 0; S_ISREG(child->mode) && i < child->nblocks; i++)
		tx_doom_block(t, child->blocks[i].id);
	if (child->lease)
		tx_doom_lease(t, child->ino);
	tx_inline_delta(t, child->inl_len, 0);
	unlink_child(t, dir, child);
	if (S_ISDIR(child->mode) && t->ns && quota_find(t->ns, child->ino))
		tx_qdelta(t, child->ino, 0, 0, true);
	tx_del_inode(t, child->ino);
	t->dinodes--;
	t->dfiles -= S_ISREG(child->mode);
	t->ddirs -= S_ISDIR(child->mode);
}

/* Sticky directories: only the owner of the entry or the directory (or
 * root) may remove or rename it. */
static int sticky_ok(const nn_inode *dir, const nn_inode *n, const Caudal__Cred *c)
{
	if (!(dir->mode & S_ISVTX) || c->uid == 0 || c->uid == dir->uid || c->uid == n->uid)
		return 0;
	return -EPERM;
}

/* A recursive delete in bounded steps. It checks, in steps, that the
 * caller may empty every directory of the subtree (as `rm -r` needs);
 * then one transaction takes the directory out of the tree (its entry
 * goes, its parent becomes 0 and an 'X' record marks it: the delete is
 * then durable, whole, and answered as such); then the subtree's records
 * go in transactions of at most WALK_STEP records, children before their
 * directory, the first in the handler and the rest from nn_ns_tick, so
 * that a crash leaves a detached tree the next start finishes
 * (reap_pending); the inode count falls as they go. Between steps the namespace lock is let go for
 * WALK_PAUSE_US, so heartbeats, block reports and clients go on meanwhile
 * (HDFS deletes a large tree's blocks incrementally the same way). */
#define WALK_STEP     1024
#define WALK_PAUSE_US 500
#define WALK_DEPTH    WALK_DEPTH_MAX

struct walk_frame {
	uint64_t ino;
	char *after; /* last entry looked at (NULL: none yet) */
};

/* Let other threads take the namespace lock, then take it back. */
static void walk_pause(nn_ns *ns)
{
	pthread_mutex_unlock(&ns->lock);
	usleep(WALK_PAUSE_US);
	pthread_mutex_lock(&ns->lock);
}

/* An iterator over the entries of directory f after f->after. */
static nn_iter *walk_seek(nn_ns *ns, const struct walk_frame *f)
{
	uint8_t prefix[9], start[9 + CDL_NAME_MAX + 2];
	prefix[0] = 'D';
	cdl_put_be64(prefix + 1, f->ino);
	memcpy(start, prefix, 9);
	size_t sl = 9;
	if (f->after) {
		size_t al = strlen(f->after);
		memcpy(start + 9, f->after, al);
		start[9 + al] = '\0'; /* the first key after `after` */
		sl = 10 + al;
	}
	return nn_iter_new(ns->st, prefix, 9, start, sl);
}

/* Counts the subtree of directory top into u, top included: its
 * directories, its other inodes (files, symlinks, special files), the
 * bytes of its files and what they count against space quotas. With
 * quick, a quota'd directory below top adds its kept usage (to dirs) and
 * is not walked. With pause, ns->lock is let go every WALK_STEP entries
 * (a summary, like HDFS's, is not a snapshot); without, the walk is one
 * consistent count. 0, or -ELOOP past WALK_DEPTH levels. */
static int subtree_count(nn_ns *ns, uint64_t top, bool quick, bool pause, struct usage *u)
{
	struct walk_frame *stack = xcalloc(WALK_DEPTH, sizeof(*stack));
	size_t depth = 0;
	unsigned budget = WALK_STEP;
	int rc = 0;
	stack[depth++] = (struct walk_frame){top, NULL};
	u->dirs++;
	while (depth && rc == 0) {
		struct walk_frame *f = &stack[depth - 1];
		nn_iter *it = walk_seek(ns, f);
		bool descend = false;
		for (; !descend && budget && nn_iter_valid(it); nn_iter_next(it)) {
			size_t kl, vl;
			const char *k = nn_iter_key(it, &kl);
			const char *v = nn_iter_value(it, &vl);
			if (kl <= 9 || kl - 9 > CDL_NAME_MAX)
				continue;
			free(f->after);
			f->after = xstrndup(k + 9, kl - 9);
			budget--;
			nn_inode *c;
			if (vl != 8 || inode_load(ns, cdl_get_be64((const uint8_t *)v), &c) < 0)
				continue;
			const nn_quota *q =
			    quick && S_ISDIR(c->mode) ? quota_find(ns, c->ino) : NULL;
			if (q) {
				u->dirs += q->nsu;
				u->space += q->dsu;
			} else if (S_ISDIR(c->mode)) {
				u->dirs++;
				if (c->entries) {
					if (depth == WALK_DEPTH)
						rc = -ELOOP;
					else
						stack[depth++] = (struct walk_frame){c->ino, NULL};
					descend = true;
				}
			} else {
				u->files++;
				if (S_ISREG(c->mode)) {
					u->length += inode_size(c);
					u->space += file_space(c);
				}
			}
			inode_free(c);
		}
		bool done = !descend && budget && !nn_iter_valid(it);
		nn_iter_free(it);
		if (done) {
			free(stack[depth - 1].after);
			depth--;
		}
		if (!budget) {
			if (pause)
				walk_pause(ns);
			budget = WALK_STEP;
		}
	}
	while (depth)
		free(stack[--depth].after);
	free(stack);
	return rc;
}

/* May cred empty every directory under top (write and search on each
 * non-empty one, the sticky rule for each entry)? Walked in steps with
 * ns->lock (held on entry and return) let go between them: a change made
 * meanwhile inside the subtree is not seen, as `rm -r` does not see one
 * either. 0 or -errno. */
static int subtree_removable(nn_ns *ns, uint64_t top, const Caudal__Cred *cred)
{
	struct walk_frame *stack = xcalloc(WALK_DEPTH, sizeof(*stack));
	size_t depth = 0;
	unsigned budget = WALK_STEP;
	int rc = 0;
	stack[depth++] = (struct walk_frame){top, NULL};
	while (depth && rc == 0) {
		struct walk_frame *f = &stack[depth - 1];
		nn_inode *d;
		budget--;
		if (inode_load(ns, f->ino, &d) < 0) { /* gone meanwhile */
			free(f->after);
			depth--;
			continue;
		}
		if (!f->after && d->entries)
			rc = perm(d, cred, W_OK | X_OK);
		nn_iter *it = walk_seek(ns, f);
		bool descend = false;
		for (; rc == 0 && !descend && budget && nn_iter_valid(it); nn_iter_next(it)) {
			size_t kl, vl;
			const char *k = nn_iter_key(it, &kl);
			const char *v = nn_iter_value(it, &vl);
			if (kl <= 9 || kl - 9 > CDL_NAME_MAX)
				continue;
			free(f->after);
			f->after = xstrndup(k + 9, kl - 9);
			budget--;
			nn_inode *c;
			if (vl != 8 || inode_load(ns, cdl_get_be64((const uint8_t *)v), &c) < 0)
				continue;
			rc = sticky_ok(d, c, cred);
			if (rc == 0 && S_ISDIR(c->mode) && c->entries) {
				if (depth == WALK_DEPTH)
					rc = -ELOOP;
				else
					stack[depth++] = (struct walk_frame){c->ino, NULL};
				descend = true; /* depth first: f resumes later */
			}
			inode_free(c);
		}
		bool done = rc == 0 && !descend && budget && !nn_iter_valid(it);
		nn_iter_free(it);
		inode_free(d);
		if (done) {
			free(stack[depth - 1].after);
			depth--;
		}
		if (!budget) {
			walk_pause(ns);
			budget = WALK_STEP;
		}
	}
	while (depth)
		free(stack[--depth].after);
	free(stack);
	return rc;
}

static void key_reap(uint8_t k[9], uint64_t ino)
{
	k[0] = 'X';
	cdl_put_be64(k + 1, ino);
}

/* Remove the detached subtree under top (see above) in at most `steps`
 * transactions of at most WALK_STEP records. Called with ns->lock held;
 * lets it go between steps. 0 when it is all gone, 1 when steps ran out,
 * or the -errno of a failed commit; what is left stays detached for
 * reap_pending. */
static int reap(nn_ns *ns, uint64_t top, unsigned steps)
{
	struct walk_frame *stack = xcalloc(WALK_DEPTH, sizeof(*stack));
	size_t depth = 0;
	int rc = 0;
	stack[depth++] = (struct walk_frame){top, NULL};
	while (depth && rc == 0 && steps--) {
		nn_tx t;
		tx_begin(&t, ns);
		for (unsigned budget = WALK_STEP; depth && budget;) {
			struct walk_frame *f = &stack[depth - 1];
			nn_iter *it = walk_seek(ns, f);
			budget--;
			bool descend = false;
			for (; !descend && budget && nn_iter_valid(it); nn_iter_next(it)) {
				size_t kl, vl;
				const char *k = nn_iter_key(it, &kl);
				const char *v = nn_iter_value(it, &vl);
				if (kl <= 9 || kl - 9 > CDL_NAME_MAX)
					continue;
				free(f->after);
				f->after = xstrndup(k + 9, kl - 9);
				budget--;
				nn_inode *c;
				if (vl != 8 ||
				    inode_load(ns, cdl_get_be64((const uint8_t *)v), &c) < 0) {
					tx_del_dirent(&t, f->ino, f->after); /* names nothing */
					continue;
				}
				if (S_ISDIR(c->mode) && depth < WALK_DEPTH) {
					/* its entries first; it goes when f resumes */
					stack[depth++] = (struct walk_frame){c->ino, NULL};
					descend = true;
				} else {
					for (size_t i = 0; S_ISREG(c->mode) && i < c->nblocks; i++)
						tx_doom_block(&t, c->blocks[i].id);
					if (c->lease)
						tx_doom_lease(&t, c->ino);
					tx_inline_delta(&t, c->inl_len, 0);
					tx_del_dirent(&t, f->ino, f->after);
					tx_del_inode(&t, c->ino);
					t.dinodes--;
					t.dfiles -= S_ISREG(c->mode);
					t.ddirs -= S_ISDIR(c->mode);
				}
				inode_free(c);
			}
			bool done = !descend && budget && !nn_iter_valid(it);
			nn_iter_free(it);
			if (!done)
				continue;
			/* every entry of f is gone: f itself, from its parent's
			 * entries (the parent frame's cursor names it) or, for the
			 * top, from the 'X' records */
			if (depth >= 2) {
				tx_del_dirent(&t, stack[depth - 2].ino, stack[depth - 2].after);
			} else {
				uint8_t k[9];
				key_reap(k, top);
				nn_batch_del(t.b, k, sizeof(k));
			}
			tx_del_inode(&t, f->ino);
			t.dinodes--;
			t.ddirs--;
			free(f->after);
			depth--;
		}
		rc = tx_commit(ns, &t);
		if (rc == 0 && depth && steps)
			walk_pause(ns);
	}
	if (rc == 0 && depth)
		rc = 1;
	while (depth)
		free(stack[--depth].after);
	free(stack);
	if (rc < 0)
		cdl_warn("cannot remove the rest of deleted directory inode %" PRIu64
			 " now: it is left for later",
			 top);
	return rc;
}

/* Finish every detached subtree ('X' records): at start, before the
 * block map is built, and from nn_ns_tick after a reap failed. Takes
 * ns->lock, and syncs what it did as an operation does (ns_unlock). */
static void ns_unlock(nn_ns *ns);
static int reap_pending(nn_ns *ns)
{
	int rc = 0;
	pthread_mutex_lock(&ns->lock);
	ns->reap_pending = false;
	for (;;) {
		nn_iter *it = nn_iter_new(ns->st, "X", 1, "X", 1);
		uint64_t top = 0;
		if (nn_iter_valid(it)) {
			size_t kl;
			const char *k = nn_iter_key(it, &kl);
			if (kl == 9)
				top = cdl_get_be64((const uint8_t *)k + 1);
		}
		nn_iter_free(it);
		if (!top)
			break;
		cdl_info("removing the rest of deleted directory inode %" PRIu64, top);
		if ((rc = reap(ns, top, UINT_MAX)) < 0) {
			ns->reap_pending = true;
			break;
		}
	}
	ns_unlock(ns);
	return rc;
}

/* Take the non-empty directory n out of parent in one transaction (see
 * above), then remove what was under it: a small tree at once, the rest
 * of a large one from nn_ns_tick, so that the handler does not hold up
 * the other calls of its RPC worker thread either. */
static int detach_and_reap(nn_ns *ns, nn_inode *parent, nn_inode *n)
{
	nn_tx t;
	tx_begin(&t, ns);
	tx_event(&t, ns, CAUDAL__EVENT_TYPE__EV_UNLINK, n, NULL);
	unlink_child(&t, parent, n);
	tx_drop_quotas(&t, n->ino);
	tx_put_inode(&t, parent);
	n->parent = 0; /* no walk up from inside it reaches the root now */
	tx_put_inode(&t, n);
	uint8_t k[9];
	key_reap(k, n->ino);
	nn_batch_put(t.b, k, sizeof(k), "", 0);
	int rc = tx_commit(ns, &t);
	if (rc == 0 && reap(ns, n->ino, 1) != 0)
		ns->reap_pending = true; /* the delete stands; nn_ns_tick goes on */
	return rc;
}

/* One try of a Delete. Returns 1 with *check set when the subtree under
 * the directory *check must first be checked for cred (then try again). */
static int delete_entry(nn_ns *ns, const Caudal__DeleteRequest *req, const Caudal__Cred *cred,
			uint64_t *check)
{
	nn_inode *parent = NULL, *n = NULL;
	char *name = NULL;
	uint64_t ino;
	int rc;
	if ((rc = resolve_parent(ns, req->target, cred, &parent, &name)) < 0)
		goto done;
	if ((rc = dirent_get(ns, parent->ino, name, &ino)) < 0)
		goto done;
	if ((rc = inode_load(ns, ino, &n)) < 0)
		goto done;
	if ((rc = perm(parent, cred, W_OK | X_OK)) < 0 || (rc = sticky_ok(parent, n, cred)) < 0)
		goto done;
	/* a held directory, or a tree holding one, waits for its holder */
	if ((rc = hold_check(ns, n->ino)) < 0 ||
	    (S_ISDIR(n->mode) && n->entries && req->recursive &&
	     (rc = hold_check_under(ns, n->ino)) < 0))
		goto done;
	if (req->kind == 1 && S_ISDIR(n->mode)) {
		rc = -EISDIR;
		goto done;
	}
	if (req->kind == 2 && !S_ISDIR(n->mode)) {
		rc = -ENOTDIR;
		goto done;
	}
	if (S_ISDIR(n->mode) && n->entries) {
		if (!req->recursive) {
			rc = -ENOTEMPTY;
		} else if (cred->uid != 0 && *check != n->ino) {
			*check = n->ino;
			rc = 1;
		} else {
			rc = detach_and_reap(ns, parent, n);
		}
		goto done;
	}
	nn_tx t;
	tx_begin(&t, ns);
	tx_event(&t, ns, CAUDAL__EVENT_TYPE__EV_UNLINK, n, NULL);
	remove_leaf(&t, parent, n);
	tx_put_inode(&t, parent);
	rc = tx_commit(ns, &t);
done:
	inode_free(parent);
	inode_free(n);
	free(name);
	return rc;
}

H(Delete)
{
	nn_ns *ns = ctx;
	const Caudal__DeleteRequest *req = (const void *)req_;
	Caudal__Status *rep = (void *)rep_;
	const Caudal__Cred *cred = cred_of(req->cred);
	(void)a;
	pthread_mutex_lock(&ns->lock);
	if (!mutation_blocked(ns, &rep->err)) {
		/* the check lets go of the lock: the entry may name another
		 * directory by the time it is done, which is checked in turn */
		uint64_t check = 0;
		int rc = delete_entry(ns, req, cred, &check);
		for (int tries = 0; rc == 1 && tries < 3; tries++) {
			if ((rc = subtree_removable(ns, check, cred)) == 0)
				rc = delete_entry(ns, req, cred, &check);
		}
		rep->err = err_of(rc == 1 ? -EBUSY : rc);
	}
	ns_unlock(ns);
}

/* Is `anc` an ancestor of (or equal to) directory `ino`? */
static bool is_ancestor(nn_ns *ns, uint64_t anc, uint64_t ino)
{
	for (int depth = 0; depth < 4096; depth++) {
		if (ino == anc)
			return true;
		if (ino == ROOT_INO)
			return false;
		nn_inode *n;
		if (inode_load(ns, ino, &n) < 0)
			return false;
		ino = n->parent;
		inode_free(n);
	}
	return true;
}

H(Rename)
{
	nn_ns *ns = ctx;
	const Caudal__RenameRequest *req = (const void *)req_;
	Caudal__Status *rep = (void *)rep_;
	const Caudal__Cred *cred = cred_of(req->cred);
	nn_inode *sp = NULL, *dp = NULL, *n = NULL, *old = NULL;
	char *sname = NULL, *dname = NULL;
	uint64_t ino, oino;
	int rc;
	nn_tx t;
	(void)a;
	pthread_mutex_lock(&ns->lock);
	if (mutation_blocked(ns, &rep->err))
		goto out;
	if ((rc = resolve_parent(ns, req->src, cred, &sp, &sname)) < 0 ||
	    (rc = resolve_parent(ns, req->dst, cred, &dp, &dname)) < 0)
		goto done;
	if ((rc = dirent_get(ns, sp->ino, sname, &ino)) < 0 || (rc = inode_load(ns, ino, &n)) < 0 ||
	    (rc = hold_check(ns, n->ino)) < 0)
		goto done;
	if ((rc = perm(sp, cred, 3)) < 0 || (rc = perm(dp, cred, 3)) < 0 ||
	    (rc = sticky_ok(sp, n, cred)) < 0)
		goto done;
	if (sp->ino == dp->ino && !strcmp(sname, dname))
		goto done; /* same entry: nothing to do */
	if (S_ISDIR(n->mode) && sp->ino != dp->ino && (rc = perm(n, cred, 2)) < 0)
		goto done; /* its ".." changes, as Linux checks */
	if (S_ISDIR(n->mode) && is_ancestor(ns, n->ino, dp->ino)) {
		rc = -EINVAL; /* into its own subtree */
		goto done;
	}
	rc = dirent_get(ns, dp->ino, dname, &oino);
	if (rc < 0 && rc != -ENOENT)
		goto done;
	tx_begin(&t, ns);
	if (rc == 0) {
		if (req->noreplace) {
			rc = -EEXIST;
			goto abort;
		}
		if ((rc = inode_load(ns, oino, &old)) < 0 || (rc = hold_check(ns, old->ino)) < 0)
			goto abort;
		if (old->ino == n->ino)
			goto abort; /* rc == 0 */
		if ((rc = sticky_ok(dp, old, cred)) < 0)
			goto abort;
		if (S_ISDIR(n->mode) && !S_ISDIR(old->mode)) {
			rc = -ENOTDIR;
			goto abort;
		}
		if (!S_ISDIR(n->mode) && S_ISDIR(old->mode)) {
			rc = -EISDIR;
			goto abort;
		}
		if (S_ISDIR(old->mode) && old->entries) {
			rc = -ENOTEMPTY;
			goto abort;
		}
		/* within one directory, sp is the copy written back */
		remove_leaf(&t, sp->ino == dp->ino ? sp : dp, old);
	}
	char *dst_path = NULL;
	{
		char *dpath = inode_path(ns, dp);
		dst_path = xasprintf("%s%s%s", dpath, strcmp(dpath, "/") ? "/" : "", dname);
		free(dpath);
	}
	tx_event(&t, ns, CAUDAL__EVENT_TYPE__EV_RENAME, n, dst_path);
	if (old)
		t.ev.replaced = old->ino;
	free(dst_path);
	/* the same directory may be both parents: update one copy */
	nn_inode *target_dir = sp->ino == dp->ino ? sp : dp;
	unlink_child(&t, sp, n);
	free(n->name);
	n->name = xstrdup(dname);
	n->parent = dp->ino;
	n->ctime = now_ns();
	link_child(&t, target_dir, n);
	tx_put_inode(&t, n);
	tx_put_inode(&t, sp);
	if (target_dir != sp)
		tx_put_inode(&t, dp);
	rc = tx_commit(ns, &t);
	goto done;
abort:
	tx_abort(&t);
done:
	rep->err = err_of(rc);
out:
	ns_unlock(ns);
	inode_free(sp);
	inode_free(dp);
	inode_free(n);
	inode_free(old);
	free(sname);
	free(dname);
}

/* ---------------------------------------------------------------- trash
 * HDFS's trash, with the move done by the namenode (one place for the CLI
 * and the mount, which knows no paths) and the emptier in the namenode, as
 * HDFS's: a removal moves the entry to /user/NAME/.Trash/Current/<its
 * path>; every trash_interval Current becomes a checkpoint named by the
 * time (yymmddHHMMSS, UTC) and checkpoints older than trash_interval go.
 * The folders are made as needed, 0700 and owned by the user (/user itself
 * root's, 0755); the move itself is a Rename with the caller's rights. */

/* The name uid has on the namenode's host, else the uid in decimal. */
static void user_name_of(uint32_t uid, char *buf, size_t n)
{
	struct passwd pw, *pp = NULL;
	char tmp[4096];
	if (getpwuid_r(uid, &pw, tmp, sizeof(tmp), &pp) == 0 && pp && pp->pw_name[0] &&
	    strlen(pp->pw_name) <= NN_MAX_ID && !strchr(pp->pw_name, '/') &&
	    strcmp(pp->pw_name, ".") && strcmp(pp->pw_name, ".."))
		snprintf(buf, n, "%s", pp->pw_name);
	else
		snprintf(buf, n, "%u", uid);
}

/* Directory name in dir, made if missing as uid:gid with mode, without
 * the caller's permission checks (the trash's own folders). ns->lock held. */
static int trash_dir(nn_ns *ns, nn_inode *dir, const char *name, uint32_t uid, uint32_t gid,
		     uint32_t mode, nn_inode **out)
{
	uint64_t ino;
	*out = NULL;
	int rc = dirent_get(ns, dir->ino, name, &ino);
	if (rc == 0) {
		if ((rc = inode_load(ns, ino, out)) == 0 && !S_ISDIR((*out)->mode)) {
			inode_free(*out);
			*out = NULL;
			rc = -ENOTDIR;
		}
		return rc;
	}
	if (rc != -ENOENT)
		return rc;
	Caudal__Cred c = CAUDAL__CRED__INIT;
	c.uid = uid;
	c.gid = gid;
	nn_tx t;
	tx_begin(&t, ns);
	nn_inode *n = inode_new(ns, dir->ino, name, S_IFDIR | mode, &c, NULL);
	link_child(&t, dir, n);
	tx_put_inode(&t, n);
	tx_put_inode(&t, dir);
	tx_event(&t, ns, CAUDAL__EVENT_TYPE__EV_MKDIR, n, NULL);
	t.dinodes = 1;
	if ((rc = tx_commit(ns, &t)) < 0) {
		inode_free(n);
		return rc;
	}
	*out = n;
	return 0;
}

/* In-process calls of the handlers below, as the caller of this thread's
 * request (or, with no request, root: the emptier). */
static int call_rename(nn_ns *ns, Caudal__RenameRequest *rq)
{
	Caudal__Status st = CAUDAL__STATUS__INIT;
	cdl_arena a;
	cdl_arena_init(&a);
	h_Rename(ns, &rq->base, &st.base, &a);
	cdl_arena_release(&a);
	return -(int)st.err;
}

static int call_delete(nn_ns *ns, const char *path, Caudal__Cred *cred)
{
	Caudal__DeleteRequest rq = CAUDAL__DELETE_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	Caudal__Status st = CAUDAL__STATUS__INIT;
	t.path = (char *)path;
	rq.target = &t;
	rq.recursive = true;
	rq.cred = cred;
	cdl_arena a;
	cdl_arena_init(&a);
	h_Delete(ns, &rq.base, &st.base, &a);
	cdl_arena_release(&a);
	return -(int)st.err;
}

/* Make the folders of path's trash copy (ns->lock held) and pick its
 * name there: *dir and *name (the caller frees them). */
static int trash_target(nn_ns *ns, const char *user, const Caudal__Cred *cred, const char *path,
			nn_inode **dir, char **name)
{
	static const char *const top[] = {"user", NULL, ".Trash", "Current"};
	nn_inode *cur = NULL, *next = NULL;
	int rc = inode_load(ns, ROOT_INO, &cur);
	for (int i = 0; rc == 0 && i < 4; i++) {
		bool usr = i > 0;
		rc = trash_dir(ns, cur, top[i] ? top[i] : user, usr ? cred->uid : 0,
			       usr ? cred->gid : 0, usr ? 0700 : 0755, &next);
		inode_free(cur);
		cur = next;
	}
	char *p = xstrdup(path), *save = NULL, *last = strrchr(p, '/');
	*last = '\0';
	for (char *c = strtok_r(p, "/", &save); rc == 0 && c; c = strtok_r(NULL, "/", &save)) {
		rc = trash_dir(ns, cur, c, cred->uid, cred->gid, 0700, &next);
		inode_free(cur);
		cur = next;
	}
	if (rc == 0) {
		/* a name taken there already: add the time, as HDFS does */
		uint64_t ino;
		const char *base = path + (last - p) + 1;
		if (dirent_get(ns, cur->ino, base, &ino) == 0)
			*name =
			    xasprintf("%.200s.%lld", base, (long long)(cdl_wall_ns() / 1000000));
		else
			*name = xstrdup(base);
		*dir = cur;
	} else {
		inode_free(cur);
	}
	free(p);
	return rc;
}

H(Trash)
{
	nn_ns *ns = ctx;
	const Caudal__TrashRequest *req = (const void *)req_;
	Caudal__TrashReply *rep = (void *)rep_;
	const Caudal__Cred *cred = cred_of(req->cred);
	nn_inode *parent = NULL, *n = NULL, *dir = NULL;
	char *name = NULL, *path = NULL, *troot = NULL, *dname = NULL;
	char user[NN_MAX_ID + 1];
	int rc = 0;
	bool locked = true;
	rep->interval_ms = (uint64_t)ns->conf.trash_interval_ms;
	pthread_mutex_lock(&ns->lock);
	if (mutation_blocked(ns, &rep->err))
		goto out;
	if (cred == &denied_cred) {
		rc = -EACCES;
		goto done;
	}
	if (ns->conf.trash_interval_ms <= 0)
		goto done; /* off: not moved, the caller deletes */
	user_name_of(cred->uid, user, sizeof(user));
	troot = xasprintf("/user/%s/.Trash", user);
	if (req->expunge) {
		ns_unlock(ns);
		locked = false;
		rc = call_delete(ns, troot, req->cred);
		if (rc == -ENOENT)
			rc = 0; /* nothing to empty */
		rep->moved = rc == 0;
		rep->path = cdl_arena_strdup(a, troot);
		goto done;
	}
	uint64_t ino;
	if ((rc = resolve_parent(ns, req->target, cred, &parent, &name)) < 0 ||
	    (rc = dirent_get(ns, parent->ino, name, &ino)) < 0 ||
	    (rc = inode_load(ns, ino, &n)) < 0)
		goto done;
	if (req->kind == 1 && S_ISDIR(n->mode)) {
		rc = -EISDIR;
		goto done;
	}
	if (req->kind == 2 && !S_ISDIR(n->mode)) {
		rc = -ENOTDIR;
		goto done;
	}
	path = inode_path(ns, n);
	size_t tl = strlen(troot), pl = strlen(path);
	if (!strncmp(path, troot, tl) && (path[tl] == '/' || !path[tl]))
		goto done; /* in the trash already: deleted for good, as in HDFS */
	if (!strncmp(troot, path, pl) && troot[pl] == '/') {
		rc = -EXDEV; /* it holds the trash: the caller says what to do */
		goto done;
	}
	if ((rc = trash_target(ns, user, cred, path, &dir, &dname)) < 0)
		goto done;
	ns_unlock(ns);
	locked = false;
	Caudal__RenameRequest rq = CAUDAL__RENAME_REQUEST__INIT;
	Caudal__Target dst = CAUDAL__TARGET__INIT;
	dst.parent = dir->ino;
	dst.name = dname;
	rq.src = req->target;
	rq.dst = &dst;
	rq.noreplace = true;
	rq.cred = req->cred;
	if ((rc = call_rename(ns, &rq)) == 0) {
		char *d = strrchr(path, '/');
		*d = '\0';
		rep->moved = true;
		rep->path = cdl_arena_alloc(a, strlen(troot) + strlen(path) + strlen(dname) + 16);
		sprintf(rep->path, "%s/Current%s/%s", troot, path, dname);
	}
done:
	rep->err = err_of(rc);
out:
	if (locked)
		ns_unlock(ns);
	inode_free(parent);
	inode_free(n);
	inode_free(dir);
	free(name);
	free(path);
	free(troot);
	free(dname);
}

/* A checkpoint's name: the UTC time it was made, yymmddHHMMSS, and a
 * "-N" when two were made in the same second. -1 when name is not one. */
static int64_t trash_stamp(const char *name)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	const char *end = strptime(name, "%y%m%d%H%M%S", &tm);
	if (!end || end != name + 12 || (*end && (*end != '-' || !end[1])))
		return -1;
	return (int64_t)timegm(&tm);
}

/* One round of the emptier (HDFS's Trash Emptier): for each /user/NAME,
 * .Trash/Current becomes a checkpoint and checkpoints older than the
 * interval go. Runs as root, from nn_ns_tick, without ns->lock. */
static void trash_tick(nn_ns *ns)
{
	int64_t iv = ns->conf.trash_interval_ms, now = cdl_now_ms();
	if (iv <= 0)
		return;
	if (!ns->trash_next_ms || now < ns->trash_next_ms) {
		if (!ns->trash_next_ms)
			ns->trash_next_ms = now + iv;
		return;
	}
	ns->trash_next_ms = now + iv;
	char **homes = NULL;
	size_t nhomes = 0;
	uint64_t uino;
	/* a folder held by a mount (Batch) is skipped and tried again soon */
	bool again = false;
	pthread_mutex_lock(&ns->lock);
	int urc = ns->safemode ? -EAGAIN : dirent_get(ns, ROOT_INO, "user", &uino);
	again = urc == -EAGAIN && !ns->safemode;
	if (urc == 0) {
		struct walk_frame f = {uino, NULL};
		nn_iter *it = walk_seek(ns, &f);
		for (; nn_iter_valid(it); nn_iter_next(it)) {
			size_t kl;
			const char *k = nn_iter_key(it, &kl);
			if (kl <= 9 || kl - 9 > CDL_NAME_MAX)
				continue;
			homes = xrealloc(homes, (nhomes + 1) * sizeof(char *));
			homes[nhomes++] = xstrndup(k + 9, kl - 9);
		}
		nn_iter_free(it);
	}
	pthread_mutex_unlock(&ns->lock);
	int64_t wall = cdl_wall_ns() / 1000000000;
	for (size_t h = 0; h < nhomes; h++) {
		char *troot = xasprintf("/user/%s/.Trash", homes[h]);
		char **ents = NULL;
		size_t nents = 0;
		bool current = false;
		nn_inode *d = NULL;
		pthread_mutex_lock(&ns->lock);
		int wrc = walk(ns, troot, &root_cred, false, &d, NULL, NULL);
		if (wrc == -EAGAIN ||
		    (wrc == 0 && S_ISDIR(d->mode) && hold_check(ns, d->ino) < 0)) {
			again = true;
		} else if (wrc == 0 && S_ISDIR(d->mode)) {
			struct walk_frame f = {d->ino, NULL};
			nn_iter *it = walk_seek(ns, &f);
			for (; nn_iter_valid(it); nn_iter_next(it)) {
				size_t kl;
				const char *k = nn_iter_key(it, &kl);
				if (kl <= 9 || kl - 9 > CDL_NAME_MAX)
					continue;
				char *e = xstrndup(k + 9, kl - 9);
				if (!strcmp(e, "Current")) {
					current = true;
					free(e);
					continue;
				}
				ents = xrealloc(ents, (nents + 1) * sizeof(char *));
				ents[nents++] = e;
			}
			nn_iter_free(it);
		}
		inode_free(d);
		pthread_mutex_unlock(&ns->lock);
		for (size_t i = 0; i < nents; i++) {
			int64_t t = trash_stamp(ents[i]);
			if (t >= 0 && (wall - t) * 1000 >= iv) {
				char *p = xasprintf("%s/%s", troot, ents[i]);
				int rc = call_delete(ns, p, NULL);
				again |= rc == -EAGAIN;
				if (rc < 0)
					cdl_warn("trash: cannot remove checkpoint '%s': %s", p,
						 strerror(-rc));
				else
					cdl_info("trash: removed checkpoint '%s'", p);
				free(p);
			}
			free(ents[i]);
		}
		if (current) {
			char stamp[32];
			time_t tt = (time_t)wall;
			struct tm tm;
			gmtime_r(&tt, &tm);
			snprintf(stamp, sizeof(stamp), "%02d%02d%02d%02d%02d%02d", tm.tm_year % 100,
				 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
			Caudal__RenameRequest rq = CAUDAL__RENAME_REQUEST__INIT;
			Caudal__Target src = CAUDAL__TARGET__INIT, dst = CAUDAL__TARGET__INIT;
			char *sp = xasprintf("%s/Current", troot), *dp = NULL;
			int rc = -EEXIST;
			for (int k = 0; k < 10 && rc == -EEXIST; k++) {
				free(dp);
				dp = k ? xasprintf("%s/%s-%d", troot, stamp, k)
				       : xasprintf("%s/%s", troot, stamp);
				src.path = sp;
				dst.path = dp;
				rq.src = &src;
				rq.dst = &dst;
				rq.noreplace = true;
				rc = call_rename(ns, &rq);
			}
			again |= rc == -EAGAIN;
			if (rc < 0)
				cdl_warn("trash: cannot checkpoint '%s': %s", sp, strerror(-rc));
			else
				cdl_info("trash: checkpoint '%s'", dp);
			free(sp);
			free(dp);
		}
		free(ents);
		free(troot);
		free(homes[h]);
	}
	free(homes);
	if (again && ns->trash_next_ms > cdl_now_ms() + 1000)
		ns->trash_next_ms = cdl_now_ms() + 1000;
}

/* Quotas of a directory (HDFS's dfsadmin -setQuota, -setSpaceQuota and
 * their -clr forms): root only. A new quota starts from a count of the
 * subtree under the lock (quota'd directories below add their kept
 * usage); a quota below the usage is accepted, as in HDFS, and only
 * refuses what would add more. */
H(SetQuota)
{
	nn_ns *ns = ctx;
	const Caudal__SetQuotaRequest *req = (const void *)req_;
	Caudal__Status *rep = (void *)rep_;
	const Caudal__Cred *cred = cred_of(req->cred);
	nn_inode *n = NULL;
	int rc;
	(void)a;
	pthread_mutex_lock(&ns->lock);
	if (mutation_blocked(ns, &rep->err))
		goto out;
	if (cred->uid != 0) {
		rc = -EPERM;
		goto done;
	}
	if ((!req->set_ns && !req->set_ds) ||
	    (req->set_ns && req->ns_quota != -1 && req->ns_quota < 1) ||
	    (req->set_ds && req->ds_quota != -1 && req->ds_quota < 1)) {
		rc = -EINVAL;
		goto done;
	}
	if ((rc = resolve(ns, req->target, cred, &n)) < 0)
		goto done;
	if (!S_ISDIR(n->mode)) {
		rc = -ENOTDIR;
		goto done;
	}
	/* a holder creates without quota checks (Batch takes no directory
	 * under a quota): the holds under n go first */
	if ((rc = hold_check_under(ns, n->ino)) < 0)
		goto done;
	const nn_quota *old = quota_find(ns, n->ino);
	nn_quota q = {n->ino, -1, -1, 0, 0};
	if (old) {
		q = *old;
	} else {
		struct usage u = {0};
		if ((rc = subtree_count(ns, n->ino, true, false, &u)) < 0)
			goto done;
		q.nsu = u.dirs + u.files;
		q.dsu = u.space;
	}
	if (req->set_ns)
		q.nsq = req->ns_quota;
	if (req->set_ds)
		q.dsq = req->ds_quota;
	nn_tx t;
	tx_begin(&t, ns);
	bool none = q.nsq < 0 && q.dsq < 0;
	if (none) {
		uint8_t k[9];
		key_quota(k, n->ino);
		nn_batch_del(t.b, k, sizeof(k));
	} else {
		quota_rec_put(t.b, &q);
	}
	if ((rc = tx_commit(ns, &t)) < 0)
		goto done;
	if (none)
		quota_remove(ns, n->ino);
	else
		quota_put(ns, &q);
	cdl_info("quotas of directory inode %" PRIu64 ": names %" PRId64 ", bytes %" PRId64
		 " (using %" PRIu64 " and %" PRIu64 ")",
		 q.ino, q.nsq, q.dsq, q.nsu, q.dsu);
done:
	rep->err = err_of(rc);
out:
	ns_unlock(ns);
	inode_free(n);
}

/* A directory's quotas and usage; with nearest, those of the target or of
 * its nearest quota'd ancestor (the mount's statfs); with summary, a count
 * of the subtree as well (`caudal count`). */
H(GetQuota)
{
	nn_ns *ns = ctx;
	const Caudal__QuotaRequest *req = (const void *)req_;
	Caudal__QuotaReply *rep = (void *)rep_;
	nn_inode *n = NULL;
	(void)a;
	pthread_mutex_lock(&ns->lock);
	int rc = resolve(ns, req->target, cred_of(req->cred), &n);
	if (rc < 0)
		goto done;
	if (!req->nearest && !req->summary && !S_ISDIR(n->mode)) {
		rc = -ENOTDIR;
		goto done;
	}
	rep->ns_quota = rep->ds_quota = -1;
	const nn_quota *q = S_ISDIR(n->mode) ? quota_find(ns, n->ino) : NULL;
	if (!q && req->nearest && ns->nquotas) {
		uint64_t *chain;
		size_t k = quota_chain(ns, S_ISDIR(n->mode) ? n->ino : n->parent, &chain);
		if (k)
			q = quota_find(ns, chain[0]);
		free(chain);
	}
	if (q) {
		rep->ino = q->ino;
		rep->ns_quota = q->nsq;
		rep->ds_quota = q->dsq;
		rep->ns_used = q->nsu;
		rep->ds_used = q->dsu;
	}
	if (req->summary) {
		struct usage u = {0};
		if (S_ISDIR(n->mode)) {
			rc = subtree_count(ns, n->ino, false, true, &u);
		} else {
			u.files = 1;
			u.length = S_ISREG(n->mode) ? inode_size(n) : 0;
			u.space = file_space(n);
		}
		rep->dirs = u.dirs;
		rep->files = u.files;
		rep->length = u.length;
		rep->space = u.space;
	}
done:
	ns_unlock(ns);
	inode_free(n);
	rep->err = err_of(rc);
}

/* ---------------------------------------------------------------- inline files
 * A file of at most inline_limit bytes lives in its inode record
 * (InodeRec.inline_data, sent whole by the writer's Complete) and has no
 * blocks. When it outgrows the limit, its writer writes all its bytes,
 * old and new, into a first block; until that block is settled at least
 * as long as the inline bytes, the file is "moving": the record holds
 * both, and the inline bytes stay its content (size, GetBlocks). The
 * settling transaction drops them; a writer that never gets that far
 * leaves the inline bytes, and its block is dropped (Complete without
 * it, lease recovery, a new Append by the same holder). */

/* The most bytes n may keep inline: inline_max, and no more than a block
 * (the first block takes them all when the file outgrows them). */
static uint64_t inline_limit(const nn_ns *ns, const nn_inode *n)
{
	uint64_t m = (uint64_t)ns->conf.inline_max;
	return m < n->bs ? m : n->bs;
}

static bool inline_moving(const nn_inode *n)
{
	return n->inl_len && n->nblocks;
}

/* n's first block was just settled: once it holds at least the inline
 * bytes it is the file's content, and they go in the same transaction.
 * A shorter block cannot take their place (-EINVAL: the writer writes
 * the inline bytes first, so only a broken writer settles less). */
static int inline_settle(nn_inode *n)
{
	if (!inline_moving(n))
		return 0;
	if (n->blocks[0].len < n->inl_len)
		return -EINVAL;
	inline_set(n, NULL, 0);
	return 0;
}

/* Give up moving n into blocks: they are doomed in t, the inline bytes
 * stay the file's content. */
static void inline_abandon(nn_tx *t, nn_inode *n)
{
	for (size_t i = 0; i < n->nblocks; i++)
		tx_doom_block(t, n->blocks[i].id);
	n->nblocks = 0;
}

/* Cut or grow (with zeros) an inline file's bytes to size. */
static void inline_resize(nn_inode *n, uint64_t size)
{
	if (size == 0) {
		inline_set(n, NULL, 0);
		return;
	}
	n->inl = xrealloc(n->inl, (size_t)size);
	if (size > n->inl_len)
		memset(n->inl + n->inl_len, 0, (size_t)size - n->inl_len);
	n->inl_len = (size_t)size;
}

/* Shrink the record of a file to size: whole blocks past it are doomed in
 * t (freed once t is durable, as a delete's are), the block it falls in is
 * shortened (replicas keep their extra bytes, which readers never ask for;
 * the block map follows after the commit: blk_follow_last). */
static void truncate_blocks(nn_tx *t, nn_inode *n, uint64_t size)
{
	uint64_t off = 0;
	size_t keep = 0;
	for (; keep < n->nblocks && off < size; keep++) {
		if (off + n->blocks[keep].len > size)
			n->blocks[keep].len = size - off;
		off += n->blocks[keep].len;
	}
	for (size_t i = keep; i < n->nblocks; i++)
		tx_doom_block(t, n->blocks[i].id);
	n->nblocks = keep;
}

/* Can n grow to size with a hole? Not past max_file_size (EFBIG), and
 * not while its last block is being written: the hole would have to
 * follow bytes not yet settled (the mount finishes its block first). */
static int grow_check(nn_ns *ns, const nn_inode *n, uint64_t size)
{
	if (size > (uint64_t)ns->conf.max_file_size)
		return -EFBIG;
	if (n->nblocks) {
		nn_blk *k = nn_blk_get(ns->bl, n->blocks[n->nblocks - 1].id);
		if (k && k->uc)
			return -EBUSY;
	}
	return 0;
}

/* Grow the record of a file to size with a hole: a block entry with id 0,
 * which stores nothing and reads as zeros (a trailing hole grows instead
 * of adding a second one). The file's bytes cost nothing, whatever the
 * size, as a sparse file on a local disk. */
static void grow_hole(nn_inode *n, uint64_t size)
{
	uint64_t more = size - inode_size(n);
	if (n->nblocks && n->blocks[n->nblocks - 1].id == 0) {
		n->blocks[n->nblocks - 1].len += more;
		return;
	}
	n->blocks = xrealloc(n->blocks, (n->nblocks + 1) * sizeof(nn_brec));
	n->blocks[n->nblocks++] = (nn_brec){0, 0, more};
}

/* After a commit that settled block i of n: the block map takes its
 * length from the record, and with finished it is no longer being
 * written. */
static void blk_follow(nn_ns *ns, const nn_inode *n, size_t i, bool finished)
{
	nn_blk *k = i < n->nblocks ? nn_blk_get(ns->bl, n->blocks[i].id) : NULL;
	if (!k)
		return;
	k->len = n->blocks[i].len;
	if (finished)
		k->uc = false;
}

static void blk_follow_last(nn_ns *ns, const nn_inode *n, bool finished)
{
	if (n->nblocks)
		blk_follow(ns, n, n->nblocks - 1, finished);
}

H(SetAttr)
{
	nn_ns *ns = ctx;
	const Caudal__SetAttrRequest *req = (const void *)req_;
	Caudal__AttrReply *rep = (void *)rep_;
	const Caudal__Cred *cred = cred_of(req->cred);
	nn_inode *n = NULL;
	int rc;
	uint32_t v = req->valid;
	bool cut = false, grow = false;
	pthread_mutex_lock(&ns->lock);
	if (mutation_blocked(ns, &rep->err))
		goto out;
	if ((rc = resolve(ns, req->target, cred, &n)) < 0 || (rc = hold_check(ns, n->ino)) < 0)
		goto done;
	bool owner = cred->uid == 0 || cred->uid == n->uid;
	/* every check before any change to n */
	if (v & (CAUDAL__SET_ATTR_FIELD__SA_ATIME | CAUDAL__SET_ATTR_FIELD__SA_MTIME)) {
		if (!owner) {
			rc = -EPERM;
			goto done;
		}
	} else if (v &
		   (CAUDAL__SET_ATTR_FIELD__SA_ATIME_NOW | CAUDAL__SET_ATTR_FIELD__SA_MTIME_NOW)) {
		if (!owner && (rc = perm(n, cred, 2)) < 0)
			goto done;
	}
	int64_t now = now_ns();
	if (v & CAUDAL__SET_ATTR_FIELD__SA_MODE) {
		uint32_t mode = req->mode & 07777, old = n->mode & 07777;
		const uint32_t ids = S_ISUID | S_ISGID;
		/* a write by someone else clears setuid and setgid (the kernel
		 * asks for it): allowed to anyone who may write, since it
		 * only takes rights away */
		bool drops_ids = mode != old && !(mode & ~old) && (mode & ~ids) == (old & ~ids);
		if (!owner && !(drops_ids && perm(n, cred, 2) == 0)) {
			rc = -EPERM;
			goto done;
		}
		/* a non-root owner outside the group loses setgid, as on Linux */
		if (cred->uid != 0 && !in_group(cred, n->gid))
			mode &= ~(uint32_t)S_ISGID;
		n->mode = (n->mode & S_IFMT) | mode;
	}
	if (v & (CAUDAL__SET_ATTR_FIELD__SA_UID | CAUDAL__SET_ATTR_FIELD__SA_GID)) {
		bool uid_change = (v & CAUDAL__SET_ATTR_FIELD__SA_UID) && req->uid != n->uid;
		bool gid_change = (v & CAUDAL__SET_ATTR_FIELD__SA_GID) && req->gid != n->gid;
		if (cred->uid != 0 &&
		    (uid_change || (gid_change && (!owner || !in_group(cred, req->gid))))) {
			rc = -EPERM;
			goto done;
		}
		if (v & CAUDAL__SET_ATTR_FIELD__SA_UID)
			n->uid = req->uid;
		if (v & CAUDAL__SET_ATTR_FIELD__SA_GID)
			n->gid = req->gid;
		if ((uid_change || gid_change) && !S_ISDIR(n->mode))
			n->mode &= ~(uint32_t)(S_ISUID | S_ISGID);
	}
	if (v & CAUDAL__SET_ATTR_FIELD__SA_SIZE) {
		if (S_ISDIR(n->mode)) {
			rc = -EISDIR;
			goto done;
		}
		if (!S_ISREG(n->mode)) {
			rc = -EINVAL;
			goto done;
		}
		if ((rc = perm(n, cred, 2)) < 0)
			goto done;
		if (n->lease && strcmp(n->lease, holder(req->client))) {
			rc = -EBUSY;
			goto done;
		}
		if (inline_moving(n)) {
			rc = -EBUSY; /* its writer is moving it into a block */
			goto done;
		}
		uint64_t size = inode_size(n);
		if (req->size > size && (rc = grow_check(ns, n, req->size)) < 0)
			goto done;
		/* an inline file stays inline: growing it past the limit needs
		 * its bytes in a block first, which only a writer can do (the
		 * client library does it and asks again: cdl_writer_spill) */
		if (n->inl_len && req->size > size && req->size > inline_limit(ns, n)) {
			rc = -EOPNOTSUPP;
			goto done;
		}
		cut = req->size < size;
		grow = req->size > size;
		n->mtime = now;
	}
	if (v & CAUDAL__SET_ATTR_FIELD__SA_ATIME)
		n->atime = req->atime_ns;
	if (v & CAUDAL__SET_ATTR_FIELD__SA_ATIME_NOW)
		n->atime = now;
	if (v & CAUDAL__SET_ATTR_FIELD__SA_MTIME)
		n->mtime = req->mtime_ns;
	if (v & CAUDAL__SET_ATTR_FIELD__SA_MTIME_NOW)
		n->mtime = now;
	n->ctime = now;
	nn_tx t;
	tx_begin(&t, ns);
	bool inl = n->inl_len > 0;
	if (inl && (cut || grow)) {
		tx_inline_delta(&t, n->inl_len, (size_t)req->size);
		inline_resize(n, req->size);
	} else if (cut)
		truncate_blocks(&t, n, req->size);
	else if (grow)
		grow_hole(n, req->size);
	tx_put_inode(&t, n);
	tx_event(&t, ns, CAUDAL__EVENT_TYPE__EV_SETATTR, n, NULL);
	if ((rc = tx_commit(ns, &t)) == 0 && cut && !inl)
		blk_follow_last(ns, n, false);
done:
	if (rc == 0)
		rep->attr = arena_attr(ns, a, n);
	rep->err = err_of(rc);
out:
	ns_unlock(ns);
	inode_free(n);
}

/* ---------------------------------------------------------------- xattrs */

#define XA_REPL	  "user.caudal.replication"
#define XA_BS	  "user.caudal.blocksize"
#define XA_BLOCKS "user.caudal.blocks"

static bool xa_is_caudal(const char *name)
{
	return !strncmp(name, "user.caudal.", 12);
}

static int set_replication(nn_ns *ns, nn_inode *n, uint32_t repl, const Caudal__Cred *cred)
{
	if (!S_ISREG(n->mode))
		return S_ISDIR(n->mode) ? -EISDIR : -EINVAL;
	if (repl < 1 || repl > MAX_REPLICATION)
		return -EINVAL;
	if (cred->uid != 0 && cred->uid != n->uid) {
		int rc = perm(n, cred, 2);
		if (rc < 0)
			return rc;
	}
	n->repl = repl;
	n->ctime = now_ns();
	nn_tx t;
	tx_begin(&t, ns);
	tx_put_inode(&t, n);
	tx_event(&t, ns, CAUDAL__EVENT_TYPE__EV_SETATTR, n, NULL);
	int rc = tx_commit(ns, &t);
	for (size_t i = 0; rc == 0 && i < n->nblocks; i++) {
		nn_blk *k = nn_blk_get(ns->bl, n->blocks[i].id);
		if (k) {
			k->repl = repl;
			k->pending_until_ms = 0;
		}
	}
	return rc;
}

/* The user.caudal.blocks text: one line per block, "id length host,host"
 * ("-" when no live datanode holds it; a hole is "0 length hole"); an
 * inline file is the one line "inline length". */
static char *blocks_text(nn_ns *ns, const nn_inode *n)
{
	if (n->inl_len)
		return xasprintf("inline %zu\n", n->inl_len);
	size_t cap = 256, len = 0;
	char *s = xmalloc(cap);
	s[0] = '\0';
	for (size_t i = 0; i < n->nblocks; i++) {
		char line[4096];
		int m = snprintf(line, sizeof(line), "%" PRIu64 " %" PRIu64 " ", n->blocks[i].id,
				 n->blocks[i].len);
		nn_blk *k = nn_blk_get(ns->bl, n->blocks[i].id);
		int first = 1;
		for (int j = 0; k && j < k->nloc && m < (int)sizeof(line) - 80; j++) {
			nn_dn *d = ns->bl->dns[k->locs[j]];
			if (!d->alive)
				continue;
			int w = snprintf(line + m, sizeof(line) - (size_t)m, "%s%s:%u",
					 first ? "" : ",", d->host, d->port);
			if (w < 0 || w >= (int)sizeof(line) - m - 80)
				break; /* the line is full: the other hosts are left out */
			m += w;
			first = 0;
		}
		if (first)
			m += snprintf(line + m, sizeof(line) - (size_t)m,
				      n->blocks[i].id ? "-" : "hole");
		m += snprintf(line + m, sizeof(line) - (size_t)m, "\n");
		while (len + (size_t)m + 1 > cap)
			s = xrealloc(s, cap *= 2);
		memcpy(s + len, line, (size_t)m + 1);
		len += (size_t)m;
	}
	return s;
}

H(GetXattr)
{
	nn_ns *ns = ctx;
	const Caudal__XattrRequest *req = (const void *)req_;
	Caudal__XattrReply *rep = (void *)rep_;
	const Caudal__Cred *cred = cred_of(req->cred);
	nn_inode *n = NULL;
	char *text = NULL;
	pthread_mutex_lock(&ns->lock);
	int rc = resolve(ns, req->target, cred, &n);
	if (rc < 0)
		goto out;
	if ((rc = perm(n, cred, 4)) < 0)
		goto out;
	if (S_ISREG(n->mode) && !strcmp(req->name, XA_REPL))
		text = xasprintf("%u", n->repl);
	else if (S_ISREG(n->mode) && !strcmp(req->name, XA_BS))
		text = xasprintf("%" PRIu64, n->bs);
	else if (S_ISREG(n->mode) && !strcmp(req->name, XA_BLOCKS))
		text = blocks_text(ns, n);
	if (text) {
		rep->value.len = strlen(text);
		rep->value.data = cdl_arena_memdup(a, text, rep->value.len);
		goto out;
	}
	rc = -ENODATA;
	for (size_t i = 0; i < n->nx; i++)
		if (!strcmp(n->x[i].name, req->name)) {
			rep->value.len = n->x[i].len;
			rep->value.data = cdl_arena_memdup(a, n->x[i].val, n->x[i].len);
			rc = 0;
		}
out:
	ns_unlock(ns);
	free(text);
	inode_free(n);
	rep->err = err_of(rc);
}

H(ListXattr)
{
	nn_ns *ns = ctx;
	const Caudal__XattrRequest *req = (const void *)req_;
	Caudal__XattrReply *rep = (void *)rep_;
	const Caudal__Cred *cred = cred_of(req->cred);
	nn_inode *n = NULL;
	pthread_mutex_lock(&ns->lock);
	int rc = resolve(ns, req->target, cred, &n);
	if (rc == 0) {
		/* the user.caudal.* attributes are not listed: they are computed,
		 * and `cp -a` or `rsync -X` would try to copy them */
		rep->names = cdl_arena_alloc(a, (n->nx + 1) * sizeof(char *));
		for (size_t i = 0; i < n->nx; i++)
			rep->names[rep->n_names++] = cdl_arena_strdup(a, n->x[i].name);
	}
	ns_unlock(ns);
	inode_free(n);
	rep->err = err_of(rc);
}

static int xattr_change(nn_ns *ns, const Caudal__XattrRequest *req, bool remove)
{
	const Caudal__Cred *cred = cred_of(req->cred);
	nn_inode *n = NULL;
	int rc;
	size_t nl = strlen(req->name);
	if (strncmp(req->name, "user.", 5))
		return -EOPNOTSUPP;
	if (nl <= 5 || nl > 255)
		return nl > 255 ? -ERANGE : -EINVAL;
	if (req->value.len > MAX_XATTR_VALUE)
		return -E2BIG;
	if ((rc = resolve(ns, req->target, cred, &n)) < 0)
		return rc;
	if ((rc = hold_check(ns, n->ino)) < 0) {
		inode_free(n);
		return rc;
	}
	if (xa_is_caudal(req->name)) {
		if (!remove && !strcmp(req->name, XA_REPL)) {
			char buf[16];
			size_t l =
			    req->value.len < sizeof(buf) - 1 ? req->value.len : sizeof(buf) - 1;
			memcpy(buf, req->value.data, l);
			buf[l] = '\0';
			char *end;
			long v = strtol(buf, &end, 10);
			if (end == buf || (*end && *end != '\n') || v < 1 || v > MAX_REPLICATION)
				rc = -EINVAL;
			else
				rc = set_replication(ns, n, (uint32_t)(v < 0 ? 0 : v), cred);
		} else {
			rc = -EPERM; /* read-only attributes */
		}
		inode_free(n);
		return rc;
	}
	if (!S_ISREG(n->mode) && !S_ISDIR(n->mode)) {
		inode_free(n);
		return -EPERM; /* as Linux: no user.* on symlinks */
	}
	if (cred->uid != 0 && cred->uid != n->uid && (rc = perm(n, cred, 2)) < 0) {
		inode_free(n);
		return rc;
	}
	size_t i;
	for (i = 0; i < n->nx; i++)
		if (!strcmp(n->x[i].name, req->name))
			break;
	bool exists = i < n->nx;
	if (remove || (req->flags & XATTR_REPLACE)) {
		if (!exists) {
			inode_free(n);
			return -ENODATA;
		}
	}
	if (!remove && (req->flags & XATTR_CREATE) && exists) {
		inode_free(n);
		return -EEXIST;
	}
	if (remove) {
		free(n->x[i].name);
		free(n->x[i].val);
		n->x[i] = n->x[--n->nx];
	} else {
		if (!exists) {
			if (n->nx >= MAX_XATTRS) {
				inode_free(n);
				return -ENOSPC;
			}
			n->x = xrealloc(n->x, (n->nx + 1) * sizeof(nn_xattr));
			n->x[i].name = xstrdup(req->name);
			n->x[i].val = NULL;
			n->nx++;
		}
		free(n->x[i].val);
		n->x[i].len = req->value.len;
		n->x[i].val = xmalloc(req->value.len + 1);
		if (req->value.len)
			memcpy(n->x[i].val, req->value.data, req->value.len);
	}
	n->ctime = now_ns();
	nn_tx t;
	tx_begin(&t, ns);
	tx_put_inode(&t, n);
	tx_event(&t, ns, CAUDAL__EVENT_TYPE__EV_SETATTR, n, NULL);
	rc = tx_commit(ns, &t);
	inode_free(n);
	return rc;
}

H(SetXattr)
{
	nn_ns *ns = ctx;
	Caudal__Status *rep = (void *)rep_;
	(void)a;
	pthread_mutex_lock(&ns->lock);
	if (!mutation_blocked(ns, &rep->err))
		rep->err = err_of(xattr_change(ns, (const void *)req_, false));
	ns_unlock(ns);
}

H(RemoveXattr)
{
	nn_ns *ns = ctx;
	Caudal__Status *rep = (void *)rep_;
	(void)a;
	pthread_mutex_lock(&ns->lock);
	if (!mutation_blocked(ns, &rep->err))
		rep->err = err_of(xattr_change(ns, (const void *)req_, true));
	ns_unlock(ns);
}

H(SetReplication)
{
	nn_ns *ns = ctx;
	const Caudal__SetReplicationRequest *req = (const void *)req_;
	Caudal__Status *rep = (void *)rep_;
	nn_inode *n = NULL;
	(void)a;
	pthread_mutex_lock(&ns->lock);
	if (!mutation_blocked(ns, &rep->err)) {
		int rc = resolve(ns, req->target, cred_of(req->cred), &n);
		if (rc == 0)
			rc = set_replication(ns, n, req->replication, cred_of(req->cred));
		rep->err = err_of(rc);
	}
	ns_unlock(ns);
	inode_free(n);
}

/* ---------------------------------------------------------------- blocks */

static Caudal__LocatedBlock *located(nn_ns *ns, cdl_arena *a, const nn_brec *br, uint64_t off,
				     const char *client_host)
{
	Caudal__LocatedBlock *lb = cdl_arena_alloc(a, sizeof(*lb));
	caudal__located_block__init(lb);
	lb->id = br->id;
	lb->gen = br->gen;
	lb->length = br->len;
	lb->offset = off;
	nn_blk *k = nn_blk_get(ns->bl, br->id);
	if (!k)
		return lb;
	lb->locs = cdl_arena_alloc(a, (k->nloc + 1) * sizeof(*lb->locs));
	const char *crack = client_host ? nn_topology_rack(ns->bl->topo, client_host) : NULL;
	/* closest first: this host, this rack, the rest; rotated by block id
	 * within a class so readers spread over replicas */
	int64_t now = cdl_now_ms();
	for (int cls = 0; cls < 3; cls++) {
		for (int j = 0; j < k->nloc; j++) {
			int idx = k->locs[(j + (int)(br->id % (uint64_t)k->nloc)) % k->nloc];
			nn_dn *d = ns->bl->dns[idx];
			if (!d->alive)
				continue;
			bool local = client_host && !strcmp(d->host, client_host);
			bool rack = crack && !strcmp(d->rack, crack);
			int c = local ? 0 : rack ? 1 : 2;
			if (c != cls)
				continue;
			Caudal__DatanodeInfo *info = cdl_arena_alloc(a, sizeof(*info));
			caudal__datanode_info__init(info);
			nn_dn_info(d, info, now, a);
			lb->locs[lb->n_locs++] = info;
		}
	}
	lb->corrupt = lb->n_locs == 0 && k->ncorrupt > 0;
	nn_token_located(ns->tok, a, lb, CDL_TOKEN_READ, 0);
	lb->encrypt = ns->conf.encrypt_data;
	return lb;
}

H(GetBlocks)
{
	nn_ns *ns = ctx;
	const Caudal__GetBlocksRequest *req = (const void *)req_;
	Caudal__GetBlocksReply *rep = (void *)rep_;
	const Caudal__Cred *cred = cred_of(req->cred);
	nn_inode *n = NULL;
	pthread_mutex_lock(&ns->lock);
	int rc = resolve(ns, req->target, cred, &n);
	if (rc == 0 && !S_ISREG(n->mode))
		rc = S_ISDIR(n->mode) ? -EISDIR : -EINVAL;
	if (rc == 0)
		rc = perm(n, cred, 4);
	if (rc == 0 && n->inl_len) {
		/* inline: the bytes themselves, no block (also while moving) */
		rep->attr = arena_attr(ns, a, n);
		if (req->offset < n->inl_len) {
			rep->inline_data.data = cdl_arena_alloc(a, n->inl_len);
			memcpy(rep->inline_data.data, n->inl, n->inl_len);
			rep->inline_data.len = n->inl_len;
		}
	} else if (rc == 0) {
		rep->attr = arena_attr(ns, a, n);
		rep->blocks = cdl_arena_alloc(a, (n->nblocks + 1) * sizeof(*rep->blocks));
		uint64_t off = 0, end = req->length && req->length <= UINT64_MAX - req->offset
					    ? req->offset + req->length
					    : UINT64_MAX;
		for (size_t i = 0; i < n->nblocks; i++) {
			uint64_t bend = off + n->blocks[i].len;
			if (bend > req->offset && off < end)
				rep->blocks[rep->n_blocks++] =
				    located(ns, a, &n->blocks[i], off,
					    req->client_host[0] ? req->client_host : NULL);
			off = bend;
		}
	}
	ns_unlock(ns);
	inode_free(n);
	rep->err = err_of(rc);
}

H(Append)
{
	nn_ns *ns = ctx;
	const Caudal__OpenWriteRequest *req = (const void *)req_;
	Caudal__AttrReply *rep = (void *)rep_;
	const Caudal__Cred *cred = cred_of(req->cred);
	nn_inode *n = NULL;
	int rc;
	pthread_mutex_lock(&ns->lock);
	if (mutation_blocked(ns, &rep->err))
		goto out;
	if (!req->client[0] || strlen(req->client) > NN_MAX_ID) {
		rc = -EINVAL;
		goto done;
	}
	if ((rc = resolve(ns, req->target, cred, &n)) < 0)
		goto done;
	if (!S_ISREG(n->mode)) {
		rc = S_ISDIR(n->mode) ? -EISDIR : -EINVAL;
		goto done;
	}
	if ((rc = perm(n, cred, 2)) < 0)
		goto done;
	if (n->lease && strcmp(n->lease, holder(req->client))) {
		rc = -EBUSY;
		goto done;
	}
	free(n->lease);
	n->lease = xstrdup(holder(req->client));
	nn_tx t;
	tx_begin(&t, ns);
	/* the same holder again while its earlier writer was moving the file
	 * into a block: that move is over, the inline bytes are the file */
	if (inline_moving(n))
		inline_abandon(&t, n);
	tx_put_inode(&t, n);
	tx_event(&t, ns, CAUDAL__EVENT_TYPE__EV_APPEND, n, NULL);
	if ((rc = tx_commit(ns, &t)) == 0)
		lease_add(ns, n->ino, holder(req->client));
done:
	if (rc == 0) {
		rep->attr = arena_attr(ns, a, n);
		if (n->inl_len) {
			/* the writer continues them: inline, or in a first block */
			rep->attr->inline_data.data = cdl_arena_alloc(a, n->inl_len);
			memcpy(rep->attr->inline_data.data, n->inl, n->inl_len);
			rep->attr->inline_data.len = n->inl_len;
		}
	}
	rep->err = err_of(rc);
out:
	ns_unlock(ns);
	inode_free(n);
}

/* Record the final length of the file's last block if r names it (in n:
 * the block map follows once the record is committed, blk_follow_last). */
static int settle_last(nn_inode *n, const Caudal__Replica *r)
{
	if (!r || !r->id)
		return 0;
	if (!n->nblocks || n->blocks[n->nblocks - 1].id != r->id)
		return -EINVAL;
	n->blocks[n->nblocks - 1].len = r->length;
	return 0;
}

H(AddBlock)
{
	nn_ns *ns = ctx;
	const Caudal__AddBlockRequest *req = (const void *)req_;
	Caudal__AddBlockReply *rep = (void *)rep_;
	nn_inode *n = NULL;
	uint64_t abandoned = 0; /* the empty last block this call gives up */
	int rc;
	pthread_mutex_lock(&ns->lock);
	if (mutation_blocked(ns, &rep->err))
		goto out;
	if (req->n_excluded > NN_MAX_DN) {
		rc = -EINVAL;
		goto done;
	}
	if ((rc = inode_load(ns, req->ino, &n)) < 0)
		goto done;
	if ((rc = lease_check(ns, n, holder(req->client))) < 0)
		goto done;
	if (n->nblocks) {
		/* The last block is empty and still being written: either this is
		 * a retry whose reply was lost (hand the same block out again), or
		 * the writer could not open its pipeline and excludes a node of it
		 * (abandon it: it never received a byte). */
		nn_brec *lb = &n->blocks[n->nblocks - 1];
		nn_blk *lk = nn_blk_get(ns->bl, lb->id);
		bool named = req->previous && req->previous->id == lb->id;
		if (lk && lk->uc && lb->len == 0 && lk->len == 0 && !named) {
			bool prev_ok =
			    !req->previous || !req->previous->id ||
			    (n->nblocks >= 2 && n->blocks[n->nblocks - 2].id == req->previous->id);
			bool excluded = false;
			for (int j = 0; j < lk->nloc; j++)
				for (size_t e = 0; e < req->n_excluded; e++)
					excluded |=
					    !strcmp(ns->bl->dns[lk->locs[j]]->id, req->excluded[e]);
			if (prev_ok && !excluded) {
				rep->block = cdl_arena_alloc(a, sizeof(*rep->block));
				caudal__located_block__init(rep->block);
				rep->block->id = lb->id;
				rep->block->gen = lb->gen;
				rep->block->offset = blocks_size(n);
				rep->block->locs =
				    cdl_arena_alloc(a, (lk->nloc + 1) * sizeof(*rep->block->locs));
				for (int j = 0; j < lk->nloc; j++) {
					Caudal__DatanodeInfo *info =
					    cdl_arena_alloc(a, sizeof(*info));
					caudal__datanode_info__init(info);
					nn_dn_info(ns->bl->dns[lk->locs[j]], info, cdl_now_ms(), a);
					rep->block->locs[rep->block->n_locs++] = info;
				}
				goto done;
			}
			/* dropped from the record in this operation's transaction
			 * and freed once it is durable: if no datanode can take a
			 * new block, or the commit fails, nothing has changed */
			abandoned = lb->id;
			n->nblocks--;
		}
	}
	size_t inl_was = n->inl_len;
	if ((rc = settle_last(n, req->previous)) < 0)
		goto done;
	bool settled = req->previous && req->previous->id;
	if (settled && (rc = inline_settle(n)) < 0)
		goto done;
	if (inline_moving(n)) {
		rc = -EINVAL; /* a second block before the first took the inline bytes */
		goto done;
	}
	int targets[MAX_REPLICATION];
	size_t got = nn_blocks_choose(ns->bl, req->client_host[0] ? req->client_host : NULL,
				      req->excluded, req->n_excluded, n->repl, targets);
	if (got == 0) {
		cdl_warn("no datanode can take a new block of inode %" PRIu64, n->ino);
		rc = -ENOSPC;
		goto done;
	}
	nn_brec br = {ns->next_block++, 1, 0};
	uint64_t off = blocks_size(n);
	n->blocks = xrealloc(n->blocks, (n->nblocks + 1) * sizeof(nn_brec));
	n->blocks[n->nblocks++] = br;
	n->mtime = now_ns();
	nn_tx t;
	tx_begin(&t, ns);
	tx_inline_delta(&t, inl_was, n->inl_len);
	if (abandoned)
		tx_doom_block(&t, abandoned);
	tx_put_inode(&t, n);
	if ((rc = tx_commit(ns, &t)) < 0)
		goto done;
	if (settled)
		blk_follow(ns, n, n->nblocks - 2, true);
	nn_blk *k = nn_blk_add(ns->bl, br.id, br.gen, 0, n->ino, n->repl);
	k->uc = true;
	/* the pipeline's nodes are the expected locations until they report */
	for (size_t i = 0; i < got; i++)
		nn_blk_add_loc(ns->bl, k, targets[i]);
	Caudal__LocatedBlock *lb = cdl_arena_alloc(a, sizeof(*lb));
	caudal__located_block__init(lb);
	lb->id = br.id;
	lb->gen = br.gen;
	lb->offset = off;
	lb->locs = cdl_arena_alloc(a, got * sizeof(*lb->locs));
	for (size_t i = 0; i < got; i++) {
		Caudal__DatanodeInfo *info = cdl_arena_alloc(a, sizeof(*info));
		caudal__datanode_info__init(info);
		nn_dn_info(ns->bl->dns[targets[i]], info, cdl_now_ms(), a);
		lb->locs[lb->n_locs++] = info;
	}
	rep->block = lb;
done:
	/* the pipeline may write at most one block into each replica */
	if (rc == 0 && rep->block) {
		nn_token_located(ns->tok, a, rep->block, CDL_TOKEN_WRITE, n->bs);
		rep->block->encrypt = ns->conf.encrypt_data;
	}
	rep->err = err_of(rc);
out:
	ns_unlock(ns);
	inode_free(n);
}

/* Close a file in transaction t (begun by the caller, who may have doomed
 * blocks in it) and commit it: drop the lease, log EV_CLOSE; once
 * committed, the last block is no longer being written. */
static int close_file(nn_ns *ns, nn_inode *n, nn_tx *t)
{
	free(n->lease);
	n->lease = NULL;
	tx_doom_lease(t, n->ino);
	n->mtime = n->ctime = now_ns();
	tx_put_inode(t, n);
	tx_event(t, ns, CAUDAL__EVENT_TYPE__EV_CLOSE, n, NULL);
	int rc = tx_commit(ns, t);
	if (rc == 0)
		blk_follow_last(ns, n, true);
	return rc;
}

/* Complete with inline bytes: they become the file's whole content. They
 * may only extend what it holds (acknowledged bytes never change), and
 * only on a file without blocks, within its inline limit. */
static int inline_put(nn_ns *ns, nn_inode *n, const Caudal__CompleteRequest *req)
{
	const ProtobufCBinaryData *d = &req->inline_data;
	if (req->last && req->last->id)
		return -EINVAL;
	if (d->len > inline_limit(ns, n)) {
		cdl_warn("inode %" PRIu64 ": %zu inline bytes refused: the limit is %" PRIu64,
			 n->ino, d->len, inline_limit(ns, n));
		return -EFBIG;
	}
	if (n->nblocks || d->len < n->inl_len ||
	    (n->inl_len && memcmp(d->data, n->inl, n->inl_len)))
		return -EINVAL;
	inline_set(n, d->data, d->len);
	return 0;
}

H(Complete)
{
	nn_ns *ns = ctx;
	const Caudal__CompleteRequest *req = (const void *)req_;
	Caudal__AttrReply *rep = (void *)rep_;
	nn_inode *n = NULL;
	int rc;
	pthread_mutex_lock(&ns->lock);
	if (mutation_blocked(ns, &rep->err))
		goto out;
	if ((rc = inode_load(ns, req->ino, &n)) < 0)
		goto done;
	if (!n->lease && !req->keep_lease) {
		/* already closed: a retried Complete whose reply was lost
		 * succeeds if it describes the file as it was closed */
		bool none = !req->last || !req->last->id;
		bool same = n->nblocks && req->last &&
			    n->blocks[n->nblocks - 1].id == req->last->id &&
			    n->blocks[n->nblocks - 1].len == req->last->length;
		bool no_last = !n->nblocks || n->blocks[n->nblocks - 1].id == 0;
		const ProtobufCBinaryData *d = &req->inline_data;
		bool same_inline = !n->nblocks && d->len == n->inl_len &&
				   (!d->len || !memcmp(d->data, n->inl, d->len));
		if (d->len)
			rc = none && same_inline ? 0 : -EBADF;
		else
			rc = (none && no_last) || same ? 0 : -EBADF;
		goto done;
	}
	if ((rc = lease_check(ns, n, holder(req->client))) < 0)
		goto done;
	size_t inl_was = n->inl_len;
	if (req->inline_data.len) {
		if ((rc = inline_put(ns, n, req)) < 0)
			goto done;
	} else {
		if ((rc = settle_last(n, req->last)) < 0)
			goto done;
		if (req->last && req->last->id && (rc = inline_settle(n)) < 0)
			goto done;
	}
	nn_tx t;
	tx_begin(&t, ns);
	tx_inline_delta(&t, inl_was, n->inl_len);
	/* closed before its first block took the inline bytes: they stay */
	if (!req->keep_lease && inline_moving(n))
		inline_abandon(&t, n);
	if (req->keep_lease) {
		n->mtime = now_ns();
		tx_put_inode(&t, n);
		if ((rc = tx_commit(ns, &t)) == 0)
			blk_follow_last(ns, n, false);
	} else {
		rc = close_file(ns, n, &t);
	}
done:
	rep->err = err_of(rc);
	/* the file as it now is (a mount caches it once closed) */
	if (rc == 0 && n)
		rep->attr = arena_attr(ns, a, n);
out:
	ns_unlock(ns);
	inode_free(n);
}

/* The highest generation stamp a pipeline recovery handed out (prepare),
 * over every block: a new one is above it and above the block's recorded
 * stamp, so no stamp is handed out twice while the namenode runs, even if
 * the recovery it was for never committed. Kept in memory only: a restarted
 * namenode starts again from the recorded stamps. */
static pthread_mutex_t pipeline_gen_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t pipeline_gen_issued;

static uint64_t pipeline_gen_next(uint64_t recorded)
{
	pthread_mutex_lock(&pipeline_gen_lock);
	uint64_t gen = (recorded > pipeline_gen_issued ? recorded : pipeline_gen_issued) + 1;
	pipeline_gen_issued = gen;
	pthread_mutex_unlock(&pipeline_gen_lock);
	return gen;
}

/* Was gen handed out by a prepare since this namenode started? */
static bool pipeline_gen_issued_upto(uint64_t gen)
{
	pthread_mutex_lock(&pipeline_gen_lock);
	bool issued = gen <= pipeline_gen_issued;
	pthread_mutex_unlock(&pipeline_gen_lock);
	return issued;
}

/* A committed stamp (perhaps handed out before a restart of the namenode)
 * is never handed out again. */
static void pipeline_gen_note(uint64_t gen)
{
	pthread_mutex_lock(&pipeline_gen_lock);
	if (gen > pipeline_gen_issued)
		pipeline_gen_issued = gen;
	pthread_mutex_unlock(&pipeline_gen_lock);
}

/* Lease recovery: a pipeline recovery of the last block that was handed a
 * stamp and never committed it (every node of the new pipeline died before
 * the commit, then came back) left replicas newer than the record, which
 * the block reports kept (k->ahead, nn_blocks.h). The file is closed at the
 * newest such stamp: those replicas hold the newest bytes and stay good,
 * ones at older stamps become stale. Changes the record in n, which the
 * caller commits. */
static void pipeline_gen_settle(nn_ns *ns, nn_inode *n)
{
	nn_brec *last = n->nblocks ? &n->blocks[n->nblocks - 1] : NULL;
	nn_blk *k = last ? nn_blk_get(ns->bl, last->id) : NULL;
	/* (k->gen is ahead of the record when a close failed after this) */
	if (!k || !k->uc || k->gen + k->ahead <= last->gen)
		return;
	cdl_info("block %llu of inode %llu: taking generation %llu of replicas from an "
		 "uncommitted pipeline recovery (record %llu)",
		 (unsigned long long)k->id, (unsigned long long)n->ino,
		 (unsigned long long)(k->gen + k->ahead), (unsigned long long)last->gen);
	last->gen = k->gen + k->ahead;
	k->gen = last->gen;
	k->ahead = 0;
	pipeline_gen_note(k->gen);
}

/* Pipeline recovery: the writer lost a node mid-block and carries on with
 * the survivors, in two steps as in HDFS. With `prepare` the namenode only
 * hands out a new generation stamp and a write token naming the survivors
 * (updateBlockForPipeline); the record does not change, so if every
 * survivor fails too the replicas at the old stamp stay good. A prepare may
 * also ask for replacement datanodes (`add`, getAdditionalDatanode): they
 * are chosen like a new block's, remembered for the block, named by the
 * write token, and get a copy token for the recorded stamp, with which a
 * survivor copies its replica to them (DT_TRANSFER). Once the new pipeline
 * accepted the recovery the writer commits (`gen` set): the block gets
 * that stamp, so that a replica left on a lost node is recognisably stale,
 * and its locations become the nodes named (updatePipeline). A request with
 * neither (an older client) does both at once. */
H(UpdatePipeline)
{
	nn_ns *ns = ctx;
	const Caudal__UpdatePipelineRequest *req = (const void *)req_;
	Caudal__UpdatePipelineReply *rep = (void *)rep_;
	nn_inode *n = NULL;
	int rc;
	pthread_mutex_lock(&ns->lock);
	if (mutation_blocked(ns, &rep->err))
		goto out;
	if ((rc = inode_load(ns, req->ino, &n)) < 0)
		goto done;
	if ((rc = lease_check(ns, n, holder(req->client))) < 0)
		goto done;
	nn_blk *k = nn_blk_get(ns->bl, req->block);
	if (!n->nblocks || n->blocks[n->nblocks - 1].id != req->block || !k || !k->uc ||
	    req->n_nodes == 0 || req->n_nodes > MAX_REPLICATION ||
	    req->add > MAX_REPLICATION - req->n_nodes || req->n_exclude > NN_MAX_DN ||
	    (req->add && !req->prepare)) {
		rc = -EINVAL;
		goto done;
	}
	/* the nodes are the block's locations, or replacements handed out for
	 * it, each once: a writer cannot get a token (and replicas) for
	 * datanodes it chooses */
	nn_dn *keep[MAX_REPLICATION];
	int pipe[MAX_REPLICATION];
	for (size_t i = 0; i < req->n_nodes; i++) {
		bool held = false, twice = false;
		keep[i] = nn_dn_find(ns->bl, req->nodes[i]);
		for (uint16_t j = 0; keep[i] && j < k->nloc; j++)
			held |= k->locs[j] == keep[i]->idx;
		if (keep[i] && !held)
			held = nn_blk_offered_dn(ns->bl, k->id, keep[i]->idx);
		for (size_t j = 0; keep[i] && j < i; j++)
			twice |= keep[j] == keep[i];
		if (!keep[i] || !held || twice) {
			rc = -EINVAL;
			goto done;
		}
		pipe[i] = keep[i]->idx;
	}
	uint64_t recorded = n->blocks[n->nblocks - 1].gen, gen;
	if (req->prepare) {
		gen = pipeline_gen_next(recorded);
		nn_blk_offer(ns->bl, k->id, gen, -1);
	} else if (req->gen) {
		/* commit: the stamp a prepare handed out (the survivors only took
		 * it with the write token for it), newer than the record; after a
		 * restart of the namenode it is no longer in memory, but it is
		 * still what the survivors' replicas carry */
		/* and not any stamp the writer likes: a stamp far above the
		 * record would make every good replica look stale */
		if (req->gen <= recorded || (!pipeline_gen_issued_upto(req->gen) &&
					     req->gen - recorded > NN_GEN_AHEAD_MAX)) {
			rc = -EINVAL;
			goto done;
		}
		gen = req->gen;
		pipeline_gen_note(gen);
	} else {
		gen = pipeline_gen_next(recorded);
	}
	/* replacements: live datanodes in service outside the pipeline */
	int more[MAX_REPLICATION];
	size_t nmore = 0, want = req->add;
	/* no more than the file's replication lacks */
	if (req->n_nodes + want > n->repl)
		want = n->repl > req->n_nodes ? n->repl - req->n_nodes : 0;
	if (want) {
		nmore = nn_blocks_choose_more(ns->bl, k, pipe, req->n_nodes, req->exclude,
					      req->n_exclude, want, more);
		for (size_t i = 0; i < nmore; i++)
			nn_blk_offer(ns->bl, k->id, gen, more[i]);
	}
	if (!req->prepare) {
		n->blocks[n->nblocks - 1].gen = gen;
		nn_tx t;
		tx_begin(&t, ns);
		tx_put_inode(&t, n);
		if ((rc = tx_commit(ns, &t)) < 0)
			goto done;
		/* replicas kept at a stamp up to this one are now stale or current */
		k->ahead = k->gen + k->ahead > gen ? (uint32_t)(k->gen + k->ahead - gen) : 0;
		k->gen = gen;
		while (k->nloc)
			nn_blk_del_loc(ns->bl, k, k->locs[0]);
		for (size_t i = 0; i < req->n_nodes; i++)
			nn_blk_add_loc(ns->bl, k, keep[i]->idx);
	}
	rep->gen = gen;
	Caudal__DatanodeInfo **named = cdl_arena_alloc(a, (req->n_nodes + nmore) * sizeof(*named));
	for (size_t i = 0; i < req->n_nodes + nmore; i++) {
		named[i] = cdl_arena_alloc(a, sizeof(*named[i]));
		caudal__datanode_info__init(named[i]);
		nn_dn_info(i < req->n_nodes ? keep[i] : ns->bl->dns[more[i - req->n_nodes]],
			   named[i], cdl_now_ms(), a);
	}
	rep->token = nn_token_make(ns->tok, a, k->id, gen, CDL_TOKEN_WRITE, n->bs, named,
				   req->n_nodes + nmore);
	if (nmore) {
		rep->added = named + req->n_nodes;
		rep->n_added = nmore;
		rep->copy_token = nn_token_make(ns->tok, a, k->id, recorded, CDL_TOKEN_COPY, n->bs,
						named, req->n_nodes + nmore);
	}
	cdl_info("block %llu of inode %llu: pipeline %s %zu node(s)%s%s, generation %llu",
		 (unsigned long long)k->id, (unsigned long long)n->ino,
		 req->prepare ? "recovering on" : "now", req->n_nodes, nmore ? " adding " : "",
		 nmore ? ns->bl->dns[more[0]]->id : "", (unsigned long long)gen);
	if (want && !nmore)
		cdl_info("block %llu: no datanode to add to its pipeline (%zu wanted)",
			 (unsigned long long)k->id, want);
done:
	rep->err = err_of(rc);
out:
	ns_unlock(ns);
	inode_free(n);
}

/* The datanode with this id, or at this "host:port". */
static nn_dn *dn_named(nn_ns *ns, const char *name)
{
	nn_dn *d = nn_dn_find(ns->bl, name);
	for (int i = 0; !d && i < ns->bl->ndn; i++) {
		char hp[300];
		snprintf(hp, sizeof(hp), "%s:%u", ns->bl->dns[i]->host, ns->bl->dns[i]->port);
		if (!strcmp(hp, name))
			d = ns->bl->dns[i];
	}
	return d;
}

/* The Balancer's one request: move up to max_bytes of replicas from one
 * datanode to another (nn_blocks_move says which). Bounded per call, so a
 * balancer that asks for too much, or dies, leaves little in flight. */
#define NN_MOVE_MAX_BYTES  (1ULL << 30)
#define NN_MOVE_MAX_BLOCKS 256
H(MoveReplicas)
{
	nn_ns *ns = ctx;
	const Caudal__MoveRequest *req = (const void *)req_;
	Caudal__MoveReply *rep = (void *)rep_;
	(void)a;
	if (cred_of(req->cred)->uid != 0) {
		rep->err = EPERM;
		return;
	}
	pthread_mutex_lock(&ns->lock);
	nn_dn *src = dn_named(ns, req->source), *dst = dn_named(ns, req->target);
	uint64_t max = req->max_bytes < NN_MOVE_MAX_BYTES ? req->max_bytes : NN_MOVE_MAX_BYTES;
	if (!src || !dst)
		rep->err = ENOENT;
	else if (src == dst || !max)
		rep->err = EINVAL;
	else if (ns->safemode)
		rep->err = EAGAIN;
	else if (!src->alive || !dst->alive || dst->decommissioning || src->decommissioning)
		rep->err = EHOSTDOWN;
	else {
		/* keep a margin on the target for the writes it takes meanwhile */
		if (max > dst->remaining / 2)
			max = dst->remaining / 2;
		rep->bytes = nn_blocks_move(ns->bl, src, dst, max, NN_MOVE_MAX_BLOCKS, cdl_now_ms(),
					    &rep->blocks);
	}
	ns_unlock(ns);
}

/* Take a datanode out of service: its replicas are copied elsewhere by
 * the monitor, and it reports decommissioned once none is short. */
/* Start (on) or stop draining d. ns->lock held. */
static void dn_decommission(nn_dn *d, bool on)
{
	if (!on) {
		if (d->decommissioning)
			cdl_info("datanode '%s' is back in service", d->id);
		d->decommissioning = d->decommissioned = false;
	} else if (!d->decommissioning) {
		cdl_info("decommissioning datanode '%s' at %s:%u", d->id, d->host, d->port);
		d->decommissioning = true;
		d->decommissioned = false;
		d->decom_pending = d->nblocks; /* until the monitor has looked */
	}
}

/* May a datanode on host with data port port register (the include
 * file; an empty one lets any in, as HDFS's)? ns->lock held. */
static bool dn_included(nn_ns *ns, const char *host, unsigned port)
{
	return !nn_hosts_count(ns->include) || nn_hosts_match(ns->include, host, port);
}

/* Drain d when the exclude file names it; put it back in service when it
 * no longer does and only the file had drained it. ns->lock held. */
static void dn_apply_exclude(nn_ns *ns, nn_dn *d)
{
	bool ex = nn_hosts_match(ns->exclude, d->host, d->port);
	if (ex && !d->decommissioning) {
		cdl_info("datanode '%s' at %s:%u is in the exclude file '%s'", d->id, d->host,
			 d->port, ns->conf.hosts_exclude);
		dn_decommission(d, true);
		d->by_hosts = true;
	} else if (!ex && d->by_hosts) {
		dn_decommission(d, false);
		d->by_hosts = false;
	}
}

/* Read both hosts files into ns (replacing the lists only when both read
 * whole); 0 or -errno with the reason in err. ns->lock held, or before the
 * namenode serves. */
static int hosts_load(nn_ns *ns, char *err, size_t errlen)
{
	nn_hosts *inc = NULL, *exc = NULL;
	int rc = 0;
	if (ns->conf.hosts && *ns->conf.hosts)
		rc = nn_hosts_load(ns->conf.hosts, &inc, err, errlen);
	if (rc == 0 && ns->conf.hosts_exclude && *ns->conf.hosts_exclude)
		rc = nn_hosts_load(ns->conf.hosts_exclude, &exc, err, errlen);
	if (rc < 0) {
		nn_hosts_free(inc);
		nn_hosts_free(exc);
		return rc;
	}
	nn_hosts_free(ns->include);
	nn_hosts_free(ns->exclude);
	ns->include = inc;
	ns->exclude = exc;
	return 0;
}

/* `caudal refresh-nodes`: read the hosts files again and apply them to
 * the registered datanodes at once (HDFS's dfsadmin -refreshNodes). A node
 * no longer included is refused from its next heartbeat, so it turns dead
 * and its replicas are copied elsewhere. */
H(RefreshNodes)
{
	nn_ns *ns = ctx;
	const Caudal__RefreshNodesRequest *req = (const void *)req_;
	Caudal__RefreshNodesReply *rep = (void *)rep_;
	if (cred_of(req->cred)->uid != 0) {
		rep->err = EPERM;
		return;
	}
	char err[512];
	pthread_mutex_lock(&ns->lock);
	int rc = hosts_load(ns, err, sizeof(err));
	if (rc < 0) {
		cdl_warn("refresh-nodes: %s (the lists stay as they were)", err);
		rep->err = (uint32_t)-rc;
		rep->message = cdl_arena_strdup(a, err);
		ns_unlock(ns);
		return;
	}
	for (int i = 0; i < ns->bl->ndn; i++) {
		nn_dn *d = ns->bl->dns[i];
		dn_apply_exclude(ns, d);
		rep->decommissioning += d->decommissioning && d->by_hosts;
		if (!dn_included(ns, d->host, d->port)) {
			rep->refused++;
			cdl_warn("datanode '%s' at %s:%u is not in the include file '%s': refused "
				 "from now on",
				 d->id, d->host, d->port, ns->conf.hosts);
		}
	}
	rep->included = (uint32_t)nn_hosts_count(ns->include);
	rep->excluded = (uint32_t)nn_hosts_count(ns->exclude);
	char *msg = xasprintf("include file: %s (%u entries); exclude file: %s (%u entries)",
			      ns->include ? ns->conf.hosts : "none", rep->included,
			      ns->exclude ? ns->conf.hosts_exclude : "none", rep->excluded);
	cdl_info("refresh-nodes: %s; %u datanodes draining for the exclude file, %u refused", msg,
		 rep->decommissioning, rep->refused);
	rep->message = cdl_arena_strdup(a, msg);
	free(msg);
	ns_unlock(ns);
}

H(Decommission)
{
	nn_ns *ns = ctx;
	const Caudal__DecommissionRequest *req = (const void *)req_;
	Caudal__DecommissionReply *rep = (void *)rep_;
	if (cred_of(req->cred)->uid != 0) {
		rep->err = EPERM;
		return;
	}
	pthread_mutex_lock(&ns->lock);
	nn_dn *d = dn_named(ns, req->datanode);
	if (!d) {
		rep->err = ENOENT;
	} else {
		dn_decommission(d, !req->cancel);
		d->by_hosts = false;
		rep->node = cdl_arena_alloc(a, sizeof(*rep->node));
		caudal__datanode_info__init(rep->node);
		nn_dn_info(d, rep->node, cdl_now_ms(), a);
		rep->pending = d->decom_pending;
	}
	ns_unlock(ns);
}

H(RenewLease)
{
	nn_ns *ns = ctx;
	const Caudal__LeaseRequest *req = (const void *)req_;
	Caudal__Status *rep = (void *)rep_;
	(void)a;
	pthread_mutex_lock(&ns->lock);
	int64_t now = cdl_now_ms();
	const char *who = holder(req->client);
	for (struct nn_lease *l = ns->leases; l; l = l->next)
		if (!strcmp(l->client, who))
			l->renewed_ms = now;
	ns_unlock(ns);
	rep->err = 0;
}

H(Statfs)
{
	nn_ns *ns = ctx;
	Caudal__StatfsReply *rep = (void *)rep_;
	(void)req_, (void)a;
	/* the mount's first call: one that no exports rule lets in learns so
	 * at once */
	const cdl_peer *p = cdl_rpc_peer();
	if (p &&
	    (p->role == CDL_ROLE_MOUNT || p->role == CDL_ROLE_JOBTRACKER ||
	     p->role == CDL_ROLE_TASKTRACKER) &&
	    !export_of(p)) {
		cdl_info("%s '%s' from %s is in no exports rule: refused", cdl_role_name(p->role),
			 p->name, p->addr);
		rep->err = EACCES;
		return;
	}
	pthread_mutex_lock(&ns->lock);
	for (int i = 0; i < ns->bl->ndn; i++) {
		nn_dn *d = ns->bl->dns[i];
		if (!d->alive) {
			rep->dead++;
			continue;
		}
		rep->live++;
		rep->capacity += d->capacity;
		rep->used += d->used;
		rep->remaining += d->remaining;
	}
	rep->files = ns->inodes;
	rep->blocks = ns->bl->nblocks;
	rep->safemode = ns->safemode;
	rep->inline_files = ns->inline_files;
	rep->inline_bytes = ns->inline_bytes;
	ns_unlock(ns);
}

H(Report)
{
	nn_ns *ns = ctx;
	Caudal__ReportReply *rep = (void *)rep_;
	(void)req_;
	pthread_mutex_lock(&ns->lock);
	int64_t now = cdl_now_ms();
	rep->datanodes = cdl_arena_alloc(a, (ns->bl->ndn + 1) * sizeof(*rep->datanodes));
	for (int i = 0; i < ns->bl->ndn; i++) {
		Caudal__DatanodeInfo *info = cdl_arena_alloc(a, sizeof(*info));
		caudal__datanode_info__init(info);
		nn_dn_info(ns->bl->dns[i], info, now, a);
		rep->datanodes[rep->n_datanodes++] = info;
	}
	ns_unlock(ns);
	/* set once at load, never changed: `caudal up` checks it is its own */
	rep->cluster = cdl_arena_strdup(a, ns->cluster);
}

struct fsck {
	nn_ns *ns;
	Caudal__FsckReply *rep;
	cdl_arena *a;
	uint32_t max_problems;
	int live_dns;
};

static void fsck_problem(struct fsck *f, const char *path, uint64_t id, const char *what)
{
	if (f->rep->n_problems >= f->max_problems)
		return;
	char *s = xasprintf("%s: block %" PRIu64 ": %s", path, id, what);
	f->rep->problems[f->rep->n_problems++] = cdl_arena_strdup(f->a, s);
	free(s);
}

static void fsck_file(struct fsck *f, const nn_inode *n, const char *path)
{
	Caudal__FsckReply *r = f->rep;
	r->files++;
	r->bytes += inode_size(n);
	if (n->lease)
		r->open_files++;
	if (n->inl_len) {
		r->inline_files++;
		r->inline_bytes += n->inl_len;
	}
	for (size_t i = 0; i < n->nblocks; i++) {
		if (n->blocks[i].id == 0)
			continue; /* a hole: nothing stored, nothing to check */
		nn_blk *k = nn_blk_get(f->ns->bl, n->blocks[i].id);
		r->blocks++;
		r->wanted += n->repl;
		int live = k ? nn_blk_live(f->ns->bl, k) : 0;
		r->replicas += (uint64_t)live;
		bool uc = k && k->uc;
		if (live == 0 && !uc) {
			r->missing++;
			fsck_problem(f, path, n->blocks[i].id, "missing (no live replica)");
		} else if (live < (int)n->repl && !uc) {
			r->under_replicated++;
			char what[64];
			snprintf(what, sizeof(what), "under-replicated (%d of %u)", live, n->repl);
			fsck_problem(f, path, n->blocks[i].id, what);
		} else if (live > (int)n->repl) {
			r->over_replicated++;
		}
		if (k && k->ncorrupt) {
			r->corrupt++;
			fsck_problem(f, path, n->blocks[i].id, "has a corrupt replica");
		}
		for (int x = 0; k && x < k->nloc; x++)
			for (int y = x + 1; y < k->nloc; y++)
				if (!strcmp(f->ns->bl->dns[k->locs[x]]->host,
					    f->ns->bl->dns[k->locs[y]]->host)) {
					r->distinct_hosts_violations++;
					fsck_problem(f, path, k->id, "two replicas on one host");
				}
	}
}

/* Entries fsck looks at per hold of the namespace lock, and how long it
 * lets go between steps, so that heartbeats, block reports and clients do
 * not wait for a whole subtree. A mutex is not fair: without the pause the
 * walker would take it back before a waiter wakes (HDFS's content summary
 * sleeps 500 us between its steps for the same reason). */
#define FSCK_STEP     1024
#define FSCK_PAUSE_US 500
#define FSCK_DEPTH    4096

/* One directory on fsck's walk: its entries after `after` are still to
 * be looked at. The walk goes by inode id, so a directory renamed between
 * steps is still walked (under its old path) and one removed is empty. */
struct fsck_dir {
	uint64_t ino;
	char *path;
	char *after; /* last entry looked at (NULL: none yet) */
};

/* Count directory n (at path) and, when cred may list and search it, push
 * it for the walk; a directory the caller may not enter is named once
 * instead and not looked into, as find(1) reports one. */
static void fsck_enter(struct fsck *f, const nn_inode *n, const char *path,
		       const Caudal__Cred *cred, struct fsck_dir *stack, size_t *depth)
{
	f->rep->dirs++;
	if (perm(n, cred, R_OK | X_OK) < 0) {
		if (f->rep->n_problems < f->max_problems) {
			char *s = xasprintf("%s: not checked: permission denied", path);
			f->rep->problems[f->rep->n_problems++] = cdl_arena_strdup(f->a, s);
			free(s);
		}
		return;
	}
	if (*depth == FSCK_DEPTH)
		return;
	stack[(*depth)++] = (struct fsck_dir){n->ino, xstrdup(path), NULL};
}

/* Check the subtree at n (resolved for cred, at path) in steps of
 * FSCK_STEP entries. Called with ns->lock held; releases and retakes it
 * between steps, so what it reports is each step's view, as HDFS's fsck
 * reports a namespace that changes while it runs. */
static void fsck_walk(struct fsck *f, const nn_inode *n, const char *path, const Caudal__Cred *cred)
{
	if (S_ISREG(n->mode)) {
		fsck_file(f, n, path);
		return;
	}
	if (S_ISLNK(n->mode)) {
		f->rep->symlinks++;
		return;
	}
	struct fsck_dir *stack = xcalloc(FSCK_DEPTH, sizeof(*stack));
	size_t depth = 0;
	unsigned budget = FSCK_STEP;
	fsck_enter(f, n, path, cred, stack, &depth);
	while (depth) {
		struct fsck_dir *d = &stack[depth - 1];
		nn_iter *it = walk_seek(f->ns, &(struct walk_frame){d->ino, d->after});
		budget--; /* a seek costs as much as an entry */
		bool descend = false;
		for (; !descend && budget && nn_iter_valid(it); nn_iter_next(it)) {
			size_t vl, kl;
			const char *k = nn_iter_key(it, &kl);
			const char *v = nn_iter_value(it, &vl);
			if (kl <= 9 || kl - 9 > CDL_NAME_MAX)
				continue;
			free(d->after);
			d->after = xstrndup(k + 9, kl - 9);
			budget--;
			nn_inode *c;
			if (vl != 8 || inode_load(f->ns, cdl_get_be64((const uint8_t *)v), &c) < 0)
				continue;
			char *cp =
			    xasprintf("%s%s%s", d->path, strcmp(d->path, "/") ? "/" : "", d->after);
			if (S_ISDIR(c->mode)) {
				size_t was = depth;
				fsck_enter(f, c, cp, cred, stack, &depth);
				descend = depth > was; /* depth first: d resumes later */
			} else if (S_ISLNK(c->mode)) {
				f->rep->symlinks++;
			} else {
				fsck_file(f, c, cp);
			}
			free(cp);
			inode_free(c);
		}
		bool done = !descend && budget && !nn_iter_valid(it);
		nn_iter_free(it);
		if (done) {
			free(stack[depth - 1].path);
			free(stack[depth - 1].after);
			depth--;
		}
		if (!budget) {
			/* let the others in; the walk holds ids, not pointers */
			pthread_mutex_unlock(&f->ns->lock);
			usleep(FSCK_PAUSE_US);
			pthread_mutex_lock(&f->ns->lock);
			budget = FSCK_STEP;
		}
	}
	free(stack);
}

H(Fsck)
{
	nn_ns *ns = ctx;
	const Caudal__FsckRequest *req = (const void *)req_;
	Caudal__FsckReply *rep = (void *)rep_;
	const Caudal__Cred *cred = cred_of(req->cred);
	nn_inode *n = NULL;
	pthread_mutex_lock(&ns->lock);
	int rc = resolve(ns, req->target, cred, &n);
	if (rc == 0) {
		struct fsck f = {ns, rep, a, req->max_problems < 1000 ? req->max_problems : 1000,
				 nn_dn_live_count(ns->bl)};
		rep->problems = cdl_arena_alloc(a, (f.max_problems + 1) * sizeof(char *));
		char *path = inode_path(ns, n);
		fsck_walk(&f, n, path, cred);
		free(path);
	}
	ns_unlock(ns);
	inode_free(n);
	rep->err = err_of(rc);
}

H(ReportBad)
{
	nn_ns *ns = ctx;
	const Caudal__ReportBadRequest *req = (const void *)req_;
	Caudal__Status *rep = (void *)rep_;
	(void)a;
	const cdl_peer *p = cdl_rpc_peer();
	pthread_mutex_lock(&ns->lock);
	nn_dn *d = nn_dn_find(ns->bl, req->datanode);
	nn_blk *k = d ? nn_blk_get(ns->bl, req->block) : NULL;
	if (!k) {
		rep->err = ENOENT;
	} else if (!p || p->role == CDL_ROLE_INSECURE) {
		nn_dn_corrupt(ns->bl, d, req->block); /* in-process, or every claim believed */
	} else {
		/* A client's word does not drop a replica: any user could make a
		 * file unreadable by reporting each replica bad. The datanode
		 * re-reads the replica and reports it itself if it is bad; the
		 * worst a liar gets is a bounded number of re-reads. */
		int rc = nn_dn_queue_verify(d, k->id, k->gen) ? 0 : -EBUSY;
		if (rc == 0)
			cdl_info("%s '%s' reports block %" PRIu64
				 " on '%s' bad: asked it to verify",
				 cdl_role_name(p->role), p->name, k->id, d->id);
		rep->err = err_of(rc);
	}
	ns_unlock(ns);
}

H(GetEvents)
{
	nn_ns *ns = ctx;
	const Caudal__EventsRequest *req = (const void *)req_;
	Caudal__EventsReply *rep = (void *)rep_;
	uint32_t max = req->max && req->max < MAX_EVENTS ? req->max : MAX_EVENTS;
	uint32_t wait = req->wait_ms < MAX_WAIT_MS ? req->wait_ms : MAX_WAIT_MS;
	uint64_t from = req->from_txid ? req->from_txid : 1;
	pthread_mutex_lock(&ns->lock);
	/* only events of durable transactions: a reader acts on them, and a
	 * power failure must not undo what it acted on (ns_synced wakes us) */
	if (ns->synced_txid < from && wait) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += wait / 1000;
		ts.tv_nsec += (long)(wait % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		while (ns->synced_txid < from && !ns->stopping)
			if (pthread_cond_timedwait(&ns->txcond, &ns->lock, &ts) == ETIMEDOUT)
				break;
	}
	uint64_t upto = ns->synced_txid;
	rep->last_txid = upto;
	rep->first_txid = ns->first_txid;
	uint8_t start[9];
	start[0] = 'E';
	cdl_put_be64(start + 1, from);
	nn_iter *it = nn_iter_new(ns->st, "E", 1, start, sizeof(start));
	rep->events = cdl_arena_alloc(a, (max + 1) * sizeof(*rep->events));
	for (; nn_iter_valid(it) && rep->n_events < max; nn_iter_next(it)) {
		size_t kl, vl;
		const char *k = nn_iter_key(it, &kl);
		if (kl != 9 || cdl_get_be64((const uint8_t *)k + 1) > upto)
			break;
		const char *v = nn_iter_value(it, &vl);
		Caudal__Event *e = caudal__event__unpack(NULL, vl, (const uint8_t *)v);
		if (!e)
			continue;
		Caudal__Event *c = cdl_arena_alloc(a, sizeof(*c));
		*c = *e;
		c->path = cdl_arena_strdup(a, e->path);
		c->dst = cdl_arena_strdup(a, e->dst);
		size_t nd = e->n_dirs < e->n_dir_versions ? e->n_dirs : e->n_dir_versions;
		c->n_dirs = c->n_dir_versions = nd;
		c->dirs = cdl_arena_alloc(a, (nd + 1) * sizeof(uint64_t));
		c->dir_versions = cdl_arena_alloc(a, (nd + 1) * sizeof(uint64_t));
		if (nd) {
			memcpy(c->dirs, e->dirs, nd * sizeof(uint64_t));
			memcpy(c->dir_versions, e->dir_versions, nd * sizeof(uint64_t));
		}
		caudal__event__free_unpacked(e, NULL);
		rep->events[rep->n_events++] = c;
	}
	nn_iter_free(it);
	ns_unlock(ns);
}

/* ---------------------------------------------------------------- DatanodeProtocol */

H(RegisterDatanode)
{
	nn_ns *ns = ctx;
	const Caudal__RegisterRequest *req = (const void *)req_;
	Caudal__RegisterReply *rep = (void *)rep_;
	pthread_mutex_lock(&ns->lock);
	rep->cluster = cdl_arena_strdup(a, ns->cluster);
	rep->heartbeat_ms = (uint32_t)ns->conf.heartbeat_ms;
	rep->report_ms = (uint32_t)ns->conf.report_ms;
	if (!req->node || !req->node->id[0] || !req->node->host[0] || !req->node->data_port ||
	    req->node->data_port > 65535 || strlen(req->node->id) > NN_MAX_ID ||
	    strlen(req->node->host) > NN_MAX_ID || strlen(req->node->rack) > NN_MAX_ID) {
		rep->err = EINVAL;
	} else if (!dn_caller_ok(req->node->host)) {
		rep->err = EACCES;
	} else if (!dn_included(ns, req->node->host, req->node->data_port)) {
		/* the datanode retries: say it once a minute per node (ns->lock held) */
		static char last_id[NN_MAX_ID + 1];
		static int64_t last_ms;
		int64_t now = cdl_now_ms();
		if (strcmp(last_id, req->node->id) || now - last_ms >= 60000) {
			cdl_warn("datanode '%s' at %s:%u is not in the include file '%s': "
				 "registration refused",
				 req->node->id, req->node->host, req->node->data_port,
				 ns->conf.hosts);
			snprintf(last_id, sizeof(last_id), "%s", req->node->id);
			last_ms = now;
		}
		rep->err = EPERM;
	} else if (req->cluster[0] && strcmp(req->cluster, ns->cluster)) {
		cdl_err("datanode '%s' belongs to cluster '%s', not '%s': refused", req->node->id,
			req->cluster, ns->cluster);
		rep->err = EINVAL;
	} else if (!nn_dn_register(ns->bl, req->node, cdl_now_ms())) {
		rep->err = ENOSPC;
	}
	if (!rep->err) {
		nn_dn *d = nn_dn_find(ns->bl, req->node->id);
		if (d)
			dn_apply_exclude(ns, d);
		rep->keys = nn_token_keys(ns->tok, a, &rep->n_keys);
	}
	ns_unlock(ns);
}

/* Give each CMD_REPLICATE of a heartbeat reply a copy token naming its
 * targets, for a replica of at most the file's block size (a truncated
 * file's replicas may be longer than its recorded length). Called with
 * ns->lock held. */
static void copy_tokens(nn_ns *ns, Caudal__HeartbeatReply *rep, cdl_arena *a)
{
	for (size_t i = 0; i < rep->n_commands; i++) {
		Caudal__Command *c = rep->commands[i];
		if (c->type != CAUDAL__COMMAND_TYPE__CMD_REPLICATE || !c->block)
			continue;
		uint64_t max = c->block->length > (uint64_t)ns->conf.block_size
				   ? c->block->length
				   : (uint64_t)ns->conf.block_size;
		nn_blk *k = nn_blk_get(ns->bl, c->block->id);
		nn_inode *n = NULL;
		if (k && inode_load(ns, k->ino, &n) == 0 && n->bs > max)
			max = n->bs;
		inode_free(n);
		c->token = nn_token_make(ns->tok, a, c->block->id, c->block->gen, CDL_TOKEN_COPY,
					 max, c->targets, c->n_targets);
	}
}

H(Heartbeat)
{
	nn_ns *ns = ctx;
	const Caudal__HeartbeatRequest *req = (const void *)req_;
	Caudal__HeartbeatReply *rep = (void *)rep_;
	pthread_mutex_lock(&ns->lock);
	nn_dn *d = req->node ? nn_dn_find(ns->bl, req->node->id) : NULL;
	if (d && !dn_caller_ok(d->host)) {
		ns_unlock(ns);
		return;
	}
	if (d && !dn_included(ns, d->host, d->port))
		d = NULL; /* left out of the include file: register again, and be refused */
	if (!d) {
		rep->commands = cdl_arena_alloc(a, sizeof(*rep->commands));
		Caudal__Command *c = cdl_arena_alloc(a, sizeof(*c));
		caudal__command__init(c);
		c->type = CAUDAL__COMMAND_TYPE__CMD_REREGISTER;
		rep->commands[rep->n_commands++] = c;
	} else {
		nn_dn_heartbeat(ns->bl, d, req->node, cdl_now_ms());
		nn_dn_take_commands(ns->bl, d, rep, a, 64);
		recovery_commands(ns, d, rep, a);
		copy_tokens(ns, rep, a);
		rep->keys = nn_token_keys(ns->tok, a, &rep->n_keys);
	}
	ns_unlock(ns);
}

H(BlockReport)
{
	nn_ns *ns = ctx;
	const Caudal__BlockReportRequest *req = (const void *)req_;
	Caudal__Status *rep = (void *)rep_;
	(void)a;
	pthread_mutex_lock(&ns->lock);
	nn_dn *d = nn_dn_find(ns->bl, req->id);
	if (d && !dn_caller_ok(d->host)) {
		ns_unlock(ns);
		rep->err = EACCES;
		return;
	}
	if (d) {
		/* replicas under a stamp newer than the record: a recovery's
		 * (recovery_report); the rest go through the usual checks */
		Caudal__Replica **usual = xcalloc(req->n_replicas + 1, sizeof(*usual));
		Caudal__Replica **newer = xcalloc(req->n_replicas + 1, sizeof(*newer));
		size_t nu = 0, nnew = 0;
		for (size_t i = 0; i < req->n_replicas; i++) {
			nn_blk *k = nn_blk_get(ns->bl, req->replicas[i]->id);
			if (k && req->replicas[i]->gen > k->gen)
				newer[nnew++] = req->replicas[i];
			else
				usual[nu++] = req->replicas[i];
		}
		nn_dn_block_report(ns->bl, d, usual, nu);
		for (size_t i = 0; i < nnew; i++)
			if (!recovery_report(ns, d, newer[i]))
				nn_dn_received(ns->bl, d, newer[i]);
		free(usual);
		free(newer);
		cdl_info("block report from '%s': %zu replicas", d->id, req->n_replicas);
	}
	ns_unlock(ns);
	rep->err = d ? 0 : ENOENT;
}

H(BlockReceived)
{
	nn_ns *ns = ctx;
	const Caudal__BlockReceivedRequest *req = (const void *)req_;
	Caudal__Status *rep = (void *)rep_;
	(void)a;
	pthread_mutex_lock(&ns->lock);
	nn_dn *d = nn_dn_find(ns->bl, req->id);
	if (d && !dn_caller_ok(d->host)) {
		ns_unlock(ns);
		rep->err = EACCES;
		return;
	}
	if (d) {
		for (size_t i = 0; i < req->n_received; i++)
			if (!recovery_report(ns, d, req->received[i]))
				nn_dn_received(ns->bl, d, req->received[i]);
		for (size_t i = 0; i < req->n_deleted; i++)
			if (!recovery_refused(ns, d, req->deleted[i]))
				nn_dn_deleted(ns->bl, d, req->deleted[i]);
		for (size_t i = 0; i < req->n_corrupt; i++)
			nn_dn_corrupt(ns->bl, d, req->corrupt[i]->id);
	}
	ns_unlock(ns);
	rep->err = d ? 0 : ENOENT;
}

/* ---------------------------------------------------------------- Batch
 * The write-back creates' call (see "holds" above and caudal.proto): a
 * holder takes directories, reserves inode ids and sends the files it
 * made in them, each applied as Create (and, closed, Complete with its
 * inline bytes) would have. Reserved ids are kept in 'R' records, one per
 * holder, so that a mount goes on using its range after a namenode
 * restart; within one namenode run a holder's ids are used in increasing
 * order, and across restarts an id in use already is refused (ESTALE). */
#define BATCH_TAKE_MAX	  64
#define BATCH_OPS_MAX	  256
#define BATCH_RESERVE_MAX 4096
#define BATCH_INLINE_MAX  (16u << 20)
#define RESVS_MAX	  4096

struct nn_resv {
	char *holder;
	uint64_t lo, hi; /* the ids [lo, hi) */
	uint64_t next;	 /* ids below it are used (in this namenode run) */
	/* the range before, still valid: a holder asks for the next range
	 * while ids of this one wait in its queue */
	uint64_t plo, phi, pnext;
	uint64_t seq; /* age: when the table is full the oldest goes */
};

/* 'R' holder -> be64(lo) be64(hi) be64(seq) be64(plo) be64(phi); the key
 * length. */
static size_t key_resv(uint8_t *k, const char *who)
{
	size_t n = strlen(who);
	k[0] = 'R';
	memcpy(k + 1, who, n);
	return 1 + n;
}

static struct nn_resv *resv_find(nn_ns *ns, const char *who)
{
	for (size_t i = 0; i < ns->nresvs; i++)
		if (!strcmp(ns->resvs[i].holder, who))
			return &ns->resvs[i];
	return NULL;
}

/* A fresh range of count ids for who, in place of its old one, written
 * before it is answered; *first is its first id. */
static int resv_new(nn_ns *ns, const char *who, uint32_t count, uint64_t *first)
{
	struct nn_resv *r = resv_find(ns, who);
	bool had = r != NULL;
	size_t evict = SIZE_MAX;
	uint8_t k[1 + sizeof(tl_holder)];
	nn_tx t;
	tx_begin(&t, ns);
	if (!r && ns->nresvs >= RESVS_MAX) {
		evict = 0;
		for (size_t i = 1; i < ns->nresvs; i++)
			if (ns->resvs[i].seq < ns->resvs[evict].seq)
				evict = i;
		nn_batch_del(t.b, k, key_resv(k, ns->resvs[evict].holder));
	}
	uint64_t lo = ns->next_ino;
	ns->next_ino += count; /* written with the record (meta_put) */
	uint8_t v[40];
	cdl_put_be64(v, lo);
	cdl_put_be64(v + 8, lo + count);
	cdl_put_be64(v + 16, ns->resv_seq);
	cdl_put_be64(v + 24, r ? r->lo : 0);
	cdl_put_be64(v + 32, r ? r->hi : 0);
	nn_batch_put(t.b, k, key_resv(k, who), v, sizeof(v));
	int rc = tx_commit(ns, &t);
	if (rc < 0)
		return rc;
	if (!r && evict != SIZE_MAX) {
		r = &ns->resvs[evict];
		cdl_info("reserved inode ids of '%s' forgotten for '%s'", r->holder, who);
		free(r->holder);
		r->holder = xstrdup(who);
	} else if (!r) {
		if (ns->nresvs == ns->capresvs) {
			ns->capresvs = ns->capresvs ? 2 * ns->capresvs : 16;
			ns->resvs = xrealloc(ns->resvs, ns->capresvs * sizeof(*ns->resvs));
		}
		r = &ns->resvs[ns->nresvs++];
		r->holder = xstrdup(who);
	}
	if (had) {
		r->plo = r->lo;
		r->phi = r->hi;
		r->pnext = r->next;
	} else {
		r->plo = r->phi = r->pnext = 0;
	}
	r->lo = r->next = lo;
	r->hi = lo + count;
	r->seq = ns->resv_seq++;
	*first = lo;
	return 0;
}

/* The 'R' records, at start: each range is usable from its first id (the
 * existence check refuses ids used before the restart). */
static void resv_load(nn_ns *ns)
{
	nn_iter *it = nn_iter_new(ns->st, "R", 1, "R", 1);
	for (; nn_iter_valid(it); nn_iter_next(it)) {
		size_t kl, vl;
		const char *k = nn_iter_key(it, &kl);
		const uint8_t *v = (const uint8_t *)nn_iter_value(it, &vl);
		if (kl < 2 || kl > sizeof(tl_holder) || vl != 40 ||
		    cdl_get_be64(v) > cdl_get_be64(v + 8) ||
		    cdl_get_be64(v + 24) > cdl_get_be64(v + 32)) {
			cdl_warn("a reserved inode ids record is malformed: ignored");
			continue;
		}
		if (ns->nresvs == ns->capresvs) {
			ns->capresvs = ns->capresvs ? 2 * ns->capresvs : 16;
			ns->resvs = xrealloc(ns->resvs, ns->capresvs * sizeof(*ns->resvs));
		}
		struct nn_resv *r = &ns->resvs[ns->nresvs++];
		r->holder = xstrndup(k + 1, kl - 1);
		r->lo = r->next = cdl_get_be64(v);
		r->hi = cdl_get_be64(v + 8);
		r->seq = cdl_get_be64(v + 16);
		r->plo = r->pnext = cdl_get_be64(v + 24);
		r->phi = cdl_get_be64(v + 32);
		if (r->seq >= ns->resv_seq)
			ns->resv_seq = r->seq + 1;
	}
	nn_iter_free(it);
}

/* Hold dir for who, as cred asks (a take, or an op whose hold lapsed): a
 * directory in the tree that cred may write and search, with no quota on
 * it or above it (the holder's creates are answered before the namenode
 * sees them, so nothing could refuse them EDQUOT). Another's live hold is
 * recalled: -EAGAIN. *version: the directory's Attr.version. */
static int hold_take(nn_ns *ns, const char *who, const Caudal__Cred *cred, uint64_t dir,
		     uint64_t *version, uint64_t *entries)
{
	struct nn_hold *h = hold_live(ns, dir);
	if (h && strcmp(h->holder, who)) {
		h->recalled = true;
		return -EAGAIN;
	}
	/* recalled: it ends when its holder gives it back or it lapses */
	if ((h && h->recalled) || (!h && hold_cooling(ns, dir)))
		return -EAGAIN;
	nn_inode *d;
	int rc = inode_load(ns, dir, &d);
	if (rc < 0)
		return rc;
	if (!S_ISDIR(d->mode))
		rc = -ENOTDIR;
	else if ((rc = perm(d, cred, W_OK | X_OK)) == 0 && (rc = search_above(ns, d, cred)) == 0)
		rc = reaches_root(ns, d);
	if (rc == 0) {
		uint64_t *chain;
		if (quota_chain(ns, dir, &chain))
			rc = -EDQUOT;
		free(chain);
	}
	*version = d->version;
	*entries = d->entries;
	inode_free(d);
	if (rc < 0)
		return rc;
	int64_t expires = cdl_now_ms() + ns->conf.hold_ms;
	if (h) {
		h->expires_ms = expires;
		return 0;
	}
	if (ns->nholds >= HOLDS_MAX || holds_of(ns, who) >= HOLDS_PER_HOLDER)
		return -ENOSPC;
	if (ns->nholds == ns->capholds) {
		ns->capholds = ns->capholds ? 2 * ns->capholds : 16;
		ns->holds = xrealloc(ns->holds, ns->capholds * sizeof(*ns->holds));
	}
	size_t i = hold_pos(ns, dir);
	memmove(&ns->holds[i + 1], &ns->holds[i], (ns->nholds - i) * sizeof(*ns->holds));
	ns->holds[i] = (struct nn_hold){dir, xstrdup(who), expires, false};
	ns->nholds++;
	return 0;
}

/* One op of a Batch (ns->lock held, tl_acting set): the file, made as
 * Create makes one under the reserved id, and closed with its inline
 * bytes as Complete closes one, or left open under who's lease. *attr:
 * the file as made. */
static int batch_op(nn_ns *ns, const char *who, struct nn_resv *r, const Caudal__BatchOp *op,
		    cdl_arena *a, Caudal__Attr **attr)
{
	const Caudal__Cred *cred = cred_of(op->cred);
	uint64_t version;
	int rc;
	struct nn_hold *h = hold_live(ns, op->parent);
	if (h && strcmp(h->holder, who)) {
		h->recalled = true;
		return -EAGAIN; /* the holder sends it again later */
	}
	uint64_t entries;
	if (!h && (rc = hold_take(ns, who, cred, op->parent, &version, &entries)) < 0)
		return rc;
	bool cur = r && op->ino >= r->next && op->ino < r->hi;
	bool prev = r && op->ino >= r->pnext && op->ino < r->phi;
	if (!cur && !prev)
		return -ESTALE;
	nn_inode *n = NULL, *parent = NULL;
	if ((rc = inode_load(ns, op->ino, &n)) != -ENOENT) {
		inode_free(n);
		return rc == 0 ? -ESTALE : rc;
	}
	if (cur)
		r->next = op->ino + 1;
	else
		r->pnext = op->ino + 1;
	if ((rc = cdl_name_check(op->name, NULL)) < 0)
		return rc;
	if ((op->mode & S_IFMT) != S_IFREG || (op->mode & ~(uint32_t)(S_IFMT | 07777)))
		return -EINVAL;
	size_t len = op->inline_data.len;
	uint64_t limit = (uint64_t)ns->conf.inline_max < (uint64_t)ns->conf.block_size
			     ? (uint64_t)ns->conf.inline_max
			     : (uint64_t)ns->conf.block_size;
	if (len && (!op->closed || !ns->conf.inline_max))
		return -EINVAL;
	if (len > limit)
		return -EFBIG;
	if ((rc = inode_load(ns, op->parent, &parent)) < 0)
		return rc;
	uint64_t ino;
	if (!S_ISDIR(parent->mode))
		rc = -ENOTDIR;
	else if ((rc = perm(parent, cred, W_OK | X_OK)) == 0 &&
		 (rc = search_above(ns, parent, cred)) == 0 &&
		 (rc = dirent_get(ns, parent->ino, op->name, &ino)) == 0)
		rc = -EEXIST;
	if (rc != -ENOENT)
		goto out;
	nn_tx t;
	tx_begin(&t, ns);
	n = inode_make(op->ino, parent->ino, op->name, op->mode, cred, parent);
	n->repl = (uint32_t)ns->conf.replication;
	n->bs = (uint64_t)ns->conf.block_size;
	n->lease = xstrdup(who);
	link_child(&t, parent, n);
	tx_put_inode(&t, parent);
	tx_put_inode(&t, n);
	t.dinodes = 1;
	t.dfiles = 1;
	tx_event(&t, ns, CAUDAL__EVENT_TYPE__EV_CREATE, n, NULL);
	if ((rc = tx_commit(ns, &t)) < 0)
		goto out;
	lease_add(ns, n->ino, who);
	if (op->closed) {
		/* as Complete with inline_data: a second transaction; should it
		 * fail, the file stays open under who's lease */
		Caudal__CompleteRequest cr = CAUDAL__COMPLETE_REQUEST__INIT;
		cr.ino = n->ino;
		cr.inline_data = op->inline_data;
		if (len && (rc = inline_put(ns, n, &cr)) < 0)
			goto out;
		tx_begin(&t, ns);
		tx_inline_delta(&t, 0, n->inl_len);
		free(n->lease);
		n->lease = NULL;
		tx_doom_lease(&t, n->ino);
		n->mtime = n->ctime = now_ns();
		if (op->mtime_ns && op->mtime_ns < n->mtime)
			n->mtime = op->mtime_ns;
		tx_put_inode(&t, n);
		tx_event(&t, ns, CAUDAL__EVENT_TYPE__EV_CLOSE, n, NULL);
		if ((rc = tx_commit(ns, &t)) < 0)
			goto out;
	}
	*attr = arena_attr(ns, a, n);
out:
	inode_free(parent);
	inode_free(n);
	return rc;
}

H(Batch)
{
	nn_ns *ns = ctx;
	const Caudal__BatchRequest *req = (const void *)req_;
	Caudal__BatchReply *rep = (void *)rep_;
	rep->hold_ms = (uint32_t)ns->conf.hold_ms;
	rep->inline_max = (uint64_t)ns->conf.inline_max;
	rep->block_size = (uint64_t)ns->conf.block_size;
	rep->replication = (uint32_t)ns->conf.replication;
	if (!req->client[0] || strlen(req->client) > NN_MAX_ID) {
		rep->err = EINVAL;
		return;
	}
	uint64_t inl = 0;
	bool bad = req->n_take > BATCH_TAKE_MAX || req->n_give > BATCH_TAKE_MAX ||
		   req->n_ops > BATCH_OPS_MAX || req->reserve > BATCH_RESERVE_MAX;
	for (size_t i = 0; !bad && i < req->n_ops; i++) {
		bad = !req->ops[i];
		inl += bad ? 0 : req->ops[i]->inline_data.len;
	}
	char *who = xstrdup(holder(req->client));
	pthread_mutex_lock(&ns->lock);
	int64_t now = cdl_now_ms();
	/* every Batch renews its holds, but those recalled: a holder that
	 * ignores the recall keeps one at most hold_ms longer */
	for (size_t i = 0; i < ns->nholds; i++)
		if (ns->holds[i].expires_ms > now && !ns->holds[i].recalled &&
		    !strcmp(ns->holds[i].holder, who))
			ns->holds[i].expires_ms = now + ns->conf.hold_ms;
	if (bad || inl > BATCH_INLINE_MAX) {
		rep->err = EINVAL;
		goto recalled;
	}
	if (mutation_blocked(ns, &rep->err))
		goto recalled;
	const Caudal__Cred *cred = cred_of(req->cred);
	rep->held = cdl_arena_alloc(a, (req->n_take + 1) * sizeof(uint64_t));
	rep->held_versions = cdl_arena_alloc(a, (req->n_take + 1) * sizeof(uint64_t));
	rep->held_entries = cdl_arena_alloc(a, (req->n_take + 1) * sizeof(uint64_t));
	for (size_t i = 0; i < req->n_take; i++) {
		uint64_t v, ne;
		int rc = hold_take(ns, who, cred, req->take[i], &v, &ne);
		if (rc < 0) {
			cdl_debug("'%s' may not hold directory inode %" PRIu64 ": %s", who,
				  req->take[i], strerror(-rc));
			continue;
		}
		rep->held[rep->n_held] = req->take[i];
		rep->held_versions[rep->n_held_versions++] = v;
		rep->held_entries[rep->n_held_entries++] = ne;
		rep->n_held++;
	}
	if (req->reserve) {
		uint64_t first;
		int rc = resv_new(ns, who, req->reserve, &first);
		if (rc < 0) {
			rep->err = err_of(rc);
			goto recalled;
		}
		rep->ino_first = first;
		rep->ino_count = req->reserve;
	}
	struct nn_resv *r = resv_find(ns, who);
	rep->errs = cdl_arena_alloc(a, (req->n_ops + 1) * sizeof(uint32_t));
	rep->attrs = cdl_arena_alloc(a, (req->n_ops + 1) * sizeof(*rep->attrs));
	tl_acting = who;
	for (size_t i = 0; i < req->n_ops; i++) {
		Caudal__Attr *at = NULL;
		int rc = batch_op(ns, who, r, req->ops[i], a, &at);
		if (!at) {
			at = cdl_arena_alloc(a, sizeof(*at));
			caudal__attr__init(at);
		}
		rep->errs[rep->n_errs++] = err_of(rc);
		rep->attrs[rep->n_attrs++] = at;
	}
	tl_acting = NULL;
	for (size_t i = 0; i < req->n_give; i++) {
		size_t j = hold_pos(ns, req->give[i]);
		if (j < ns->nholds && ns->holds[j].dir == req->give[i] &&
		    !strcmp(ns->holds[j].holder, who))
			hold_drop(ns, j);
	}
recalled:
	rep->recalled = cdl_arena_alloc(a, (HOLDS_PER_HOLDER + 1) * sizeof(uint64_t));
	rep->holding = cdl_arena_alloc(a, (HOLDS_PER_HOLDER + 1) * sizeof(uint64_t));
	for (size_t i = 0; i < ns->nholds && rep->n_holding < HOLDS_PER_HOLDER; i++) {
		if (ns->holds[i].expires_ms <= now || strcmp(ns->holds[i].holder, who))
			continue;
		rep->holding[rep->n_holding++] = ns->holds[i].dir;
		if (ns->holds[i].recalled)
			rep->recalled[rep->n_recalled++] = ns->holds[i].dir;
	}
	ns_unlock(ns);
	free(who);
}

/* Who may call what (DESIGN.md, "Security"): the namespace is for mounts,
 * users, admins and the job daemons; cluster-wide views and actions are for
 * admins (the jobtracker follows the event log); DatanodeProtocol is for
 * datanode certificates only. */
#define R_CLIENTS                                                                                  \
	(CDL_ROLE_BIT(CDL_ROLE_MOUNT) | CDL_ROLE_BIT(CDL_ROLE_ADMIN) |                             \
	 CDL_ROLE_BIT(CDL_ROLE_USER) | CDL_ROLE_BIT(CDL_ROLE_JOBTRACKER) |                         \
	 CDL_ROLE_BIT(CDL_ROLE_TASKTRACKER))
#define R_ADMIN CDL_ROLE_BIT(CDL_ROLE_ADMIN)
/* mounts follow the log to keep their directory caches (mnt_dcache.h) */
#define R_EVENTS                                                                                   \
	(CDL_ROLE_BIT(CDL_ROLE_ADMIN) | CDL_ROLE_BIT(CDL_ROLE_JOBTRACKER) |                        \
	 CDL_ROLE_BIT(CDL_ROLE_MOUNT))
#define R_DATANODE CDL_ROLE_BIT(CDL_ROLE_DATANODE)

/* A WebHDFS datanode's call for a ticket's user (nn_web.h). */
H(WebCall)
{
	nn_ns *ns = ctx;
	Caudal__WebCallReply *rep = (void *)rep_;
	if (!ns->web) {
		rep->err = ENOSYS;
		return;
	}
	nn_web_call(ns->web, (const Caudal__WebCallRequest *)req_, rep, a);
}

static const cdl_rpc_method client_methods[] = {
    {"GetAttr", h_GetAttr, 0, R_CLIENTS},
    {"Mkdir", h_Mkdir, 0, R_CLIENTS},
    {"Create", h_Create, 0, R_CLIENTS},
    {"Symlink", h_Symlink, 0, R_CLIENTS},
    {"Readlink", h_Readlink, 0, R_CLIENTS},
    {"Readdir", h_Readdir, 0, R_CLIENTS},
    {"Delete", h_Delete, 0, R_CLIENTS},
    {"Rename", h_Rename, 0, R_CLIENTS},
    {"SetAttr", h_SetAttr, 0, R_CLIENTS},
    {"GetXattr", h_GetXattr, 0, R_CLIENTS},
    {"SetXattr", h_SetXattr, 0, R_CLIENTS},
    {"ListXattr", h_ListXattr, 0, R_CLIENTS},
    {"RemoveXattr", h_RemoveXattr, 0, R_CLIENTS},
    {"SetReplication", h_SetReplication, 0, R_CLIENTS},
    {"GetBlocks", h_GetBlocks, 0, R_CLIENTS},
    {"Append", h_Append, 0, R_CLIENTS},
    {"AddBlock", h_AddBlock, 0, R_CLIENTS},
    {"Complete", h_Complete, 0, R_CLIENTS},
    {"RenewLease", h_RenewLease, 0, R_CLIENTS},
    {"Statfs", h_Statfs, 0, R_CLIENTS},
    {"Report", h_Report, 0, R_CLIENTS},
    {"Fsck", h_Fsck, CDL_RPC_BLOCKING, R_ADMIN}, /* long: a thread of its own */
    {"ReportBad", h_ReportBad, 0, R_CLIENTS},
    {"GetEvents", h_GetEvents, CDL_RPC_BLOCKING, R_EVENTS},
    {"UpdatePipeline", h_UpdatePipeline, 0, R_CLIENTS},
    {"Decommission", h_Decommission, 0, R_ADMIN},
    {"Mknod", h_Mknod, 0, R_CLIENTS},
    {"SetQuota", h_SetQuota, 0, R_ADMIN},
    {"GetQuota", h_GetQuota, 0, R_CLIENTS},
    {"Trash", h_Trash, 0, R_CLIENTS},
    {"RefreshNodes", h_RefreshNodes, 0, R_ADMIN},
    /* a WebHDFS datanode presenting a ticket (nn_web.h) */
    {"WebCall", h_WebCall, 0, R_DATANODE},
    {"MoveReplicas", h_MoveReplicas, 0, R_ADMIN},
    {"Batch", h_Batch, 0, R_CLIENTS},
    {NULL, NULL, 0, 0},
};

static const cdl_rpc_method datanode_methods[] = {
    {"RegisterDatanode", h_RegisterDatanode, 0, R_DATANODE},
    {"Heartbeat", h_Heartbeat, 0, R_DATANODE},
    {"BlockReport", h_BlockReport, 0, R_DATANODE},
    {"BlockReceived", h_BlockReceived, 0, R_DATANODE},
    {NULL, NULL, 0, 0},
};

/* The handler of ClientProtocol method md, if req is its input; else NULL. */
static const cdl_rpc_method *client_method(const ProtobufCMethodDescriptor *md,
					   const ProtobufCMessage *req)
{
	if (!md || req->descriptor != md->input)
		return NULL;
	const cdl_rpc_method *m = client_methods;
	while (m->name && strcmp(m->name, md->name))
		m++;
	return m->name ? m : NULL;
}

/* Run m for an in-process caller (web UI, WebHDFS), into rep (of type
 * out). A reply refused because a directory is held (hold_check) is asked
 * again for up to CALL_HELD_MS, waiting a little longer each time outside
 * ns->lock, as the client library retries EAGAIN for a remote caller. */
#define CALL_HELD_MS	 2000
#define CALL_HELD_MAX_MS 50
static void call_handler(nn_ns *ns, const cdl_rpc_method *m, const ProtobufCMessageDescriptor *out,
			 const ProtobufCMessage *req, ProtobufCMessage *rep, cdl_arena *a)
{
	int64_t end = cdl_now_ms() + CALL_HELD_MS, wait = 2;
	for (;;) {
		out->message_init(rep);
		tl_held_off = false;
		m->handler(ns, req, rep, a);
		if (!tl_held_off || cdl_reply_err(rep) != EAGAIN || cdl_now_ms() + wait > end)
			break;
		usleep((useconds_t)wait * 1000);
		wait = wait * 2 < CALL_HELD_MAX_MS ? wait * 2 : CALL_HELD_MAX_MS;
	}
	tl_held_off = false;
}

ProtobufCMessage *nn_ns_call_local(nn_ns *ns, const char *method, const ProtobufCMessage *req,
				   cdl_arena *a)
{
	const ProtobufCMethodDescriptor *md = protobuf_c_service_descriptor_get_method_by_name(
	    &caudal__client_protocol__descriptor, method);
	const cdl_rpc_method *m = client_method(md, req);
	if (!m)
		return NULL;
	ProtobufCMessage *rep = cdl_arena_alloc(a, md->output->sizeof_message);
	call_handler(ns, m, md->output, req, rep, a);
	return rep;
}

int nn_ns_call(nn_ns *ns, unsigned method, const cdl_peer *as, const ProtobufCMessage *req,
	       ProtobufCMessage *reply, cdl_arena *arena)
{
	const ProtobufCServiceDescriptor *sd = &caudal__client_protocol__descriptor;
	if (method >= sd->n_methods || !as)
		return -EINVAL;
	const ProtobufCMethodDescriptor *md = &sd->methods[method];
	const cdl_rpc_method *m = client_method(md, req);
	if (!m)
		return -EINVAL;
	if (as->role != CDL_ROLE_INSECURE && m->roles && !(m->roles & CDL_ROLE_BIT(as->role))) {
		cdl_info("refused '%s' to %s '%s' from %s (WebHDFS)", m->name,
			 cdl_role_name(as->role), as->name, as->addr);
		return -EACCES;
	}
	const cdl_peer *old = cdl_rpc_set_peer(as);
	call_handler(ns, m, md->output, req, reply, arena);
	cdl_rpc_set_peer(old);
	return 0;
}

bool nn_ns_user_cred(const char *name, Caudal__Cred *cred, uint32_t *groups)
{
	return user_cred(name, cred, groups);
}

void nn_ns_set_web(nn_ns *ns, struct nn_web *web)
{
	ns->web = web;
}

int nn_ns_register(nn_ns *ns, cdl_rpc_server *srv)
{
	int rc = cdl_rpc_server_add(srv, &caudal__client_protocol__descriptor, client_methods, ns);
	if (rc == 0)
		rc = cdl_rpc_server_add(srv, &caudal__datanode_protocol__descriptor,
					datanode_methods, ns);
	return rc;
}

/* ---------------------------------------------------------------- open / tick */

static int format(nn_ns *ns)
{
	char buf[64];
	FILE *f = fopen("/proc/sys/kernel/random/uuid", "r");
	if (!f || !fgets(buf, sizeof(buf), f)) {
		if (f)
			fclose(f);
		snprintf(buf, sizeof(buf), "cid-%llx", (unsigned long long)cdl_wall_ns());
	} else {
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = '\0';
	ns->cluster = xasprintf("CID-%s", buf);
	ns->next_ino = ROOT_INO + 1;
	ns->next_block = 1;
	ns->txid = 0;
	ns->first_txid = 1;
	ns->inodes = 1;
	ns->dirs = 1;
	ns->files = 0;
	nn_inode root = {0};
	root.ino = ROOT_INO;
	root.parent = ROOT_INO;
	root.name = (char *)"";
	/* 0755 root:root (uid and gid 0 above), as on Linux: a 0777 root
	 * without the sticky bit let any user remove or rename anyone's
	 * entries at /. A namespace formatted before keeps its mode. */
	root.mode = S_IFDIR | 0755;
	root.atime = root.mtime = root.ctime = now_ns();
	nn_tx t;
	tx_begin(&t, ns);
	tx_put_inode(&t, &root);
	int rc = tx_commit(ns, &t);
	tx_unsynced = false;
	if (rc == 0)
		nn_store_sync(ns->st);
	if (rc == 0)
		cdl_info("formatted a new namespace, cluster '%s'", ns->cluster);
	return rc;
}

/* Load counters, then every file's blocks into the block map and every
 * open file's lease (with a fresh timer, as after an HDFS restart). */
static int load(nn_ns *ns)
{
	char *v;
	size_t vl;
	int rc = nn_store_get(ns->st, "Mmeta", 5, &v, &vl);
	if (rc == -ENOENT)
		return format(ns);
	if (rc < 0)
		return rc;
	Caudal__MetaRec *m = caudal__meta_rec__unpack(NULL, vl, (const uint8_t *)v);
	nn_store_free(v);
	if (!m) {
		cdl_err("namespace counters are undecodable");
		return -EIO;
	}
	ns->next_ino = m->next_ino;
	ns->next_block = m->next_block;
	ns->txid = m->txid;
	ns->first_txid = m->first_txid ? m->first_txid : 1;
	ns->inodes = m->inodes;
	ns->cluster = xstrdup(m->cluster);
	caudal__meta_rec__free_unpacked(m, NULL);
	/* the quotas, with their usage as last committed */
	nn_iter *qi = nn_iter_new(ns->st, "Q", 1, "Q", 1);
	for (; nn_iter_valid(qi); nn_iter_next(qi)) {
		size_t kl;
		const char *k = nn_iter_key(qi, &kl);
		const char *val = nn_iter_value(qi, &vl);
		Caudal__QuotaRec *r =
		    kl == 9 ? caudal__quota_rec__unpack(NULL, vl, (const uint8_t *)val) : NULL;
		if (!r) {
			nn_iter_free(qi);
			cdl_err("a quota record is undecodable");
			return -EIO;
		}
		nn_quota q = {cdl_get_be64((const uint8_t *)k + 1), r->ns_quota, r->ds_quota,
			      r->ns_used, r->ds_used};
		quota_put(ns, &q);
		caudal__quota_rec__free_unpacked(r, NULL);
	}
	nn_iter_free(qi);
	resv_load(ns);
	/* a recursive delete cut short by a crash: finish it first, so that
	 * what it removes never enters the block map */
	if ((rc = reap_pending(ns)) < 0)
		return rc;
	nn_iter *it = nn_iter_new(ns->st, "I", 1, "I", 1);
	uint64_t files = 0, dirs = 0, inl_files = 0, inl_bytes = 0;
	for (; nn_iter_valid(it); nn_iter_next(it)) {
		const char *val = nn_iter_value(it, &vl);
		Caudal__InodeRec *r = caudal__inode_rec__unpack(NULL, vl, (const uint8_t *)val);
		if (!r) {
			nn_iter_free(it);
			cdl_err("an inode record is undecodable");
			return -EIO;
		}
		dirs += S_ISDIR(r->mode);
		if (S_ISREG(r->mode)) {
			files++;
			for (size_t i = 0; i < r->n_blocks; i++) {
				if (r->blocks[i]->id == 0)
					continue; /* a hole */
				nn_blk *k =
				    nn_blk_add(ns->bl, r->blocks[i]->id, r->blocks[i]->gen,
					       r->blocks[i]->length, r->ino, r->replication);
				k->uc = r->lease[0] && i + 1 == r->n_blocks;
				ns->uc_blocks += k->uc;
			}
			if (r->lease[0])
				lease_add(ns, r->ino, r->lease);
			inl_files += r->inline_data.len > 0;
			inl_bytes += r->inline_data.len;
		}
		caudal__inode_rec__free_unpacked(r, NULL);
	}
	nn_iter_free(it);
	/* counted here, whatever the reap above moved them by */
	ns->inline_files = inl_files;
	ns->inline_bytes = inl_bytes;
	ns->files = files;
	ns->dirs = dirs;
	cdl_info("loaded namespace: %" PRIu64 " inodes, %" PRIu64 " files, %" PRIu64
		 " blocks, txid %" PRIu64,
		 ns->inodes, files, ns->bl->nblocks, ns->txid);
	return 0;
}

int nn_ns_open(const nn_conf *conf, nn_topology *topo, nn_ns **out)
{
	nn_ns *ns = xcalloc(1, sizeof(*ns));
	ns->conf = *conf;
	if (ns->conf.max_file_size <= 0)
		ns->conf.max_file_size = (int64_t)1 << 50;
	if (ns->conf.inline_max < 0)
		ns->conf.inline_max = 0;
	if (ns->conf.inline_max > NN_INLINE_CAP)
		ns->conf.inline_max = NN_INLINE_CAP;
	if (ns->conf.hold_ms <= 0)
		ns->conf.hold_ms = 2000;
	ns->conf.hold_ms = ns->conf.hold_ms < 50      ? 50
			   : ns->conf.hold_ms > 60000 ? 60000
						      : ns->conf.hold_ms;
	pthread_mutex_init(&ns->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_cond_init(&ns->txcond, &ca);
	pthread_condattr_destroy(&ca);
	ns->bl = nn_blocks_new(topo, conf->dead_ms);
	ns->tok = nn_token_new(conf->token_lifetime_ms, conf->token_key_roll_ms);
	int rc = 0;
	if (conf->exports && *conf->exports) {
		char err[512];
		rc = nn_exports_load(conf->exports, &ns->exports, err, sizeof(err));
		if (rc < 0) {
			cdl_err("%s", err);
			nn_ns_close(ns);
			return rc;
		}
	}
	char herr[512];
	if ((rc = hosts_load(ns, herr, sizeof(herr))) < 0) {
		cdl_err("%s", herr);
		nn_ns_close(ns);
		return rc;
	}
	rc = nn_store_open(conf->dir, conf->sync_always, (int)conf->batch_ms, conf->cache_mb,
			   &ns->st);
	if (rc == 0) {
		nn_store_on_synced(ns->st, ns_synced, ns);
		nn_store_set_reserve(ns->st, (uint64_t)conf->reserved_mb << 20);
		rc = load(ns);
	}
	if (rc < 0) {
		nn_ns_close(ns);
		return rc;
	}
	/* what the log holds now is what a restart would find */
	nn_store_sync(ns->st);
	ns->synced_txid = ns->txid;
	ns->started_ms = cdl_now_ms();
	g_exports = ns->exports;
	ns->safemode = ns->bl->nblocks > 0;
	if (ns->safemode)
		cdl_info("safe mode: waiting for block reports of %" PRIu64 " blocks",
			 ns->bl->nblocks);
	*out = ns;
	return 0;
}

void nn_ns_close(nn_ns *ns)
{
	if (!ns)
		return;
	nn_store_close(ns->st);
	nn_blocks_free(ns->bl);
	nn_token_free(ns->tok);
	nn_exports_free(ns->exports);
	while (ns->leases) {
		struct nn_lease *l = ns->leases;
		ns->leases = l->next;
		free(l->client);
		free(l);
	}
	free(ns->doomed);
	free(ns->quotas);
	for (size_t i = 0; i < ns->nholds; i++)
		free(ns->holds[i].holder);
	free(ns->holds);
	for (size_t i = 0; i < ns->nresvs; i++)
		free(ns->resvs[i].holder);
	free(ns->resvs);
	nn_hosts_free(ns->include);
	nn_hosts_free(ns->exclude);
	while (ns->recoveries) {
		struct nn_recovery *r = ns->recoveries;
		ns->recoveries = r->next;
		free(r);
	}
	free(ns->cluster);
	pthread_mutex_destroy(&ns->lock);
	pthread_cond_destroy(&ns->txcond);
	free(ns);
}

void nn_ns_stop(nn_ns *ns)
{
	pthread_mutex_lock(&ns->lock);
	ns->stopping = true;
	pthread_cond_broadcast(&ns->txcond);
	ns_unlock(ns);
}

/* ---------------------------------------------------------------- lease recovery */

static void recovery_drop(nn_ns *ns, struct nn_recovery *rec)
{
	for (struct nn_recovery **p = &ns->recoveries; *p; p = &(*p)->next)
		if (*p == rec) {
			*p = rec->next;
			free(rec);
			return;
		}
}

/* A new round: a stamp above every one handed out, and the holders to ask
 * (the block's live locations). False when no holder is live. */
static bool recovery_round(nn_ns *ns, struct nn_recovery *rec, const nn_blk *k)
{
	rec->n = 0;
	for (uint16_t i = 0; i < k->nloc && rec->n < MAX_REPLICATION; i++) {
		nn_dn *d = ns->bl->dns[k->locs[i]];
		if (!d->alive)
			continue;
		rec->h[rec->n].dn = d->idx;
		rec->h[rec->n].sent = rec->h[rec->n].answered = rec->h[rec->n].got = false;
		rec->h[rec->n].len = 0;
		rec->n++;
	}
	if (!rec->n)
		return false;
	rec->gen = pipeline_gen_next(rec->gen > rec->old_gen ? rec->gen : rec->old_gen);
	rec->rounds++;
	rec->deadline_ms = cdl_now_ms() + 2 * ns->conf.heartbeat_ms + RECOVERY_WAIT_MS;
	cdl_info("block %" PRIu64 " of inode %" PRIu64 ": recovering generation %" PRIu64
		 " as %" PRIu64 " on %d datanode(s) (round %d)",
		 rec->block, rec->ino, rec->old_gen, rec->gen, rec->n, rec->rounds);
	return true;
}

/* The CMD_RECOVER commands due to datanode d, added to its heartbeat reply
 * (at most RECOVERY_CMDS_MAX). A round's deadline counts from its last
 * command sent. */
static void recovery_commands(nn_ns *ns, nn_dn *d, Caudal__HeartbeatReply *rep, cdl_arena *a)
{
	size_t due = 0;
	for (struct nn_recovery *r = ns->recoveries; r; r = r->next)
		for (int i = 0; i < r->n; i++)
			due += r->h[i].dn == d->idx && !r->h[i].sent;
	if (!due)
		return;
	if (due > RECOVERY_CMDS_MAX)
		due = RECOVERY_CMDS_MAX;
	int64_t deadline = cdl_now_ms() + ns->conf.heartbeat_ms + RECOVERY_WAIT_MS;
	size_t cap = rep->n_commands + due;
	Caudal__Command **cs = cdl_arena_alloc(a, (rep->n_commands + due) * sizeof(*cs));
	if (rep->n_commands)
		memcpy(cs, rep->commands, rep->n_commands * sizeof(*cs));
	rep->commands = cs;
	for (struct nn_recovery *r = ns->recoveries; r; r = r->next)
		for (int i = 0; i < r->n && rep->n_commands < cap; i++) {
			if (r->h[i].dn != d->idx || r->h[i].sent)
				continue;
			Caudal__Command *c = cdl_arena_alloc(a, sizeof(*c));
			caudal__command__init(c);
			c->type = CAUDAL__COMMAND_TYPE__CMD_RECOVER;
			c->block = cdl_arena_alloc(a, sizeof(*c->block));
			caudal__replica__init(c->block);
			c->block->id = r->block;
			c->block->gen = r->old_gen;
			c->new_gen = r->gen;
			rep->commands[rep->n_commands++] = c;
			r->h[i].sent = true;
			if (r->deadline_ms < deadline)
				r->deadline_ms = deadline;
		}
}

/* A replica reported by d under a stamp newer than the block's record,
 * which a lease recovery (or a pipeline recovery not yet committed, or one
 * cut short by a restart of the namenode) gave it. True when it was taken
 * here: the recovery's answer, or a replica of a block still being
 * written, kept as a location for its coming recovery rather than deleted
 * as stale. False: the usual report handling applies. */
static bool recovery_report(nn_ns *ns, nn_dn *d, const Caudal__Replica *r)
{
	nn_blk *k = nn_blk_get(ns->bl, r->id);
	if (!k || r->gen <= k->gen)
		return false;
	struct nn_recovery *rec = recovery_of_block(ns, r->id);
	if (rec && r->gen == rec->gen) {
		int i = 0;
		while (i < rec->n && rec->h[i].dn != d->idx)
			i++;
		if (i == rec->n && rec->n < MAX_REPLICATION) /* not asked, but has it */
			rec->h[rec->n++].dn = d->idx;
		if (i < rec->n) {
			rec->h[i].sent = rec->h[i].answered = rec->h[i].got = true;
			rec->h[i].len = r->length;
		}
		return true;
	}
	/* stamps count up from 1: one near the top of the range is forged
	 * (noting it would wrap the next stamp), and goes as stale */
	if (!k->uc || r->gen > UINT64_MAX / 2)
		return false;
	/* no stamp handed out from now on may be at or below it */
	pipeline_gen_note(r->gen);
	/* a lease recovery that finds no live holder settles at it
	 * (pipeline_gen_settle) rather than leave it stale */
	if (r->gen - k->gen <= UINT32_MAX && r->gen - k->gen > k->ahead)
		k->ahead = (uint32_t)(r->gen - k->gen);
	nn_blk_add_loc(ns->bl, k, d->idx);
	return true;
}

/* A datanode's answer that it has no replica to recover (a deleted report
 * under the recovery's stamp, which no replica has yet): true when taken. */
static bool recovery_refused(nn_ns *ns, nn_dn *d, const Caudal__Replica *r)
{
	struct nn_recovery *rec = recovery_of_block(ns, r->id);
	if (!rec || r->gen != rec->gen)
		return false;
	for (int i = 0; i < rec->n; i++)
		if (rec->h[i].dn == d->idx && !rec->h[i].got)
			rec->h[i].sent = rec->h[i].answered = true;
	return true;
}

/* Close the file of a recovery whose holders answered (or whose time is
 * up). False when it must wait (a new round was started, or the close
 * could not be committed and is tried again). */
static bool recovery_finish(nn_ns *ns, struct nn_recovery *rec)
{
	nn_inode *n;
	if (inode_load(ns, rec->ino, &n) < 0)
		return true; /* deleted meanwhile */
	nn_brec *last = n->nblocks ? &n->blocks[n->nblocks - 1] : NULL;
	nn_blk *k = last ? nn_blk_get(ns->bl, last->id) : NULL;
	if (!n->lease || !k || last->id != rec->block || last->gen != rec->old_gen) {
		inode_free(n);
		return true; /* closed or changed meanwhile */
	}
	/* the replicas kept: those holding at least the length the record
	 * has (what the writer's hsyncs made visible; a node that fell out
	 * of the pipeline without a committed update may hold less), closed
	 * at the shortest of them; with none, the longest there is */
	int got = 0;
	uint64_t len = UINT64_MAX, longest = 0;
	bool keep[MAX_REPLICATION] = {false};
	for (int i = 0; i < rec->n; i++)
		if (rec->h[i].got && rec->h[i].len >= last->len) {
			keep[i] = true;
			got++;
			if (rec->h[i].len < len)
				len = rec->h[i].len;
		} else if (rec->h[i].got && rec->h[i].len > longest) {
			longest = rec->h[i].len;
		}
	if (!got && longest) {
		cdl_warn("block %" PRIu64 " of inode %" PRIu64
			 ": every recovered replica is shorter "
			 "than the %" PRIu64 " bytes recorded: keeping the longest, %" PRIu64,
			 rec->block, rec->ino, last->len, longest);
		len = longest;
		for (int i = 0; i < rec->n; i++)
			if (rec->h[i].got && rec->h[i].len == longest) {
				keep[i] = true;
				got++;
			}
	}
	bool silent = false;
	for (int i = 0; i < rec->n; i++)
		silent |= !rec->h[i].answered;
	if (!got && silent && rec->rounds < RECOVERY_ROUNDS && recovery_round(ns, rec, k)) {
		inode_free(n);
		return false;
	}
	nn_tx t;
	tx_begin(&t, ns);
	if (got) {
		last->gen = rec->gen;
		last->len = len;
	} else {
		cdl_warn("block %" PRIu64 " of inode %" PRIu64 ": no datanode recovered it: "
			 "closing at the longest length reported",
			 rec->block, rec->ino);
		if (k->len > last->len)
			last->len = k->len;
	}
	if (inline_moving(n)) {
		/* the writer died moving the file into its first block: the
		 * block replaces the inline bytes only if the recovered
		 * replicas hold them all; else it goes and the bytes stay */
		if (got && n->nblocks == 1 && len >= n->inl_len) {
			tx_inline_delta(&t, n->inl_len, 0);
			inline_set(n, NULL, 0);
		} else {
			inline_abandon(&t, n);
			got = 0;
		}
	} else if (last->len == 0) {
		/* an empty last block never got a byte: its locations are only
		 * the pipeline the writer was given */
		tx_doom_block(&t, last->id);
		n->nblocks--;
	}
	bool emptied = n->nblocks == 0 || n->blocks[n->nblocks - 1].id != rec->block;
	if (close_file(ns, n, &t) < 0) {
		cdl_warn("cannot close inode %" PRIu64 " after its lease expired: trying again",
			 n->ino);
		rec->deadline_ms = cdl_now_ms() + ns->conf.heartbeat_ms;
		inode_free(n);
		return false;
	}
	if (got && !emptied) {
		/* the block now has the stamp and the locations of the
		 * recovered replicas; any other copy is stale */
		k->gen = rec->gen;
		while (k->nloc)
			nn_blk_del_loc(ns->bl, k, k->locs[0]);
		for (int i = 0; i < rec->n; i++)
			if (keep[i])
				nn_blk_add_loc(ns->bl, k, rec->h[i].dn);
	}
	cdl_info("inode %" PRIu64 " closed by lease recovery: %" PRIu64
		 " bytes, last block %" PRIu64 " generation %" PRIu64 " on %d recovered replica(s)",
		 n->ino, inode_size(n), rec->block, got ? rec->gen : rec->old_gen, got);
	inode_free(n);
	return true;
}

/* Recoveries whose holders have all answered, or whose time is up. */
static void recoveries_tick(nn_ns *ns, int64_t now)
{
	for (struct nn_recovery *r = ns->recoveries, *next; r; r = next) {
		next = r->next;
		bool all = true; /* a holder that died is not waited for */
		for (int i = 0; i < r->n; i++)
			all &= r->h[i].answered || !ns->bl->dns[r->h[i].dn]->alive;
		if ((all || now >= r->deadline_ms) && recovery_finish(ns, r))
			recovery_drop(ns, r);
	}
}

/* An expired lease: the writer is gone. Have the holders of the last block
 * recover it under a new stamp (above), or with no live holder, settle it
 * from what the datanodes reported and close the file at once. */
static void recover_lease(nn_ns *ns, struct nn_lease *l)
{
	nn_inode *n;
	if (inode_load(ns, l->ino, &n) < 0) {
		lease_del(ns, l->ino);
		return;
	}
	cdl_warn("lease of '%s' on inode %" PRIu64 " expired: closing the file", l->client, n->ino);
	nn_blk *k = n->nblocks ? nn_blk_get(ns->bl, n->blocks[n->nblocks - 1].id) : NULL;
	if (k && k->uc) {
		struct nn_recovery *rec = xcalloc(1, sizeof(*rec));
		rec->ino = n->ino;
		rec->block = k->id;
		rec->old_gen = n->blocks[n->nblocks - 1].gen;
		if (recovery_round(ns, rec, k)) {
			rec->next = ns->recoveries;
			ns->recoveries = rec;
			inode_free(n);
			return;
		}
		free(rec);
	}
	nn_tx t;
	tx_begin(&t, ns);
	pipeline_gen_settle(ns, n);
	if (inline_moving(n)) {
		/* the writer died moving the file into its first block: the
		 * block replaces the inline bytes only if the datanodes report
		 * it holds them all */
		nn_blk *k0 = nn_blk_get(ns->bl, n->blocks[0].id);
		if (n->nblocks == 1 && k0 && k0->len > n->blocks[0].len)
			n->blocks[0].len = k0->len;
		if (n->nblocks == 1 && n->blocks[0].len >= n->inl_len) {
			tx_inline_delta(&t, n->inl_len, 0);
			inline_set(n, NULL, 0);
		} else
			inline_abandon(&t, n);
	} else if (n->nblocks) {
		nn_brec *last = &n->blocks[n->nblocks - 1];
		if (k && k->len > last->len)
			last->len = k->len;
		/* an empty last block never got a byte: its locations are only the
		 * pipeline the writer was given */
		if (last->len == 0) {
			tx_doom_block(&t, last->id);
			n->nblocks--;
		}
	}
	if (close_file(ns, n, &t) < 0) {
		/* the lease stays; try again a lease period from now */
		cdl_warn("cannot close inode %" PRIu64 " after its lease expired", n->ino);
		l->renewed_ms = cdl_now_ms();
	}
	inode_free(n);
}

void nn_ns_tick(nn_ns *ns)
{
	pthread_mutex_lock(&ns->lock);
	int64_t now = cdl_now_ms();
	if (ns->safemode) {
		/* blocks being written when the namenode stopped may never be
		 * reported (their writer's replicas were not finalized): as in
		 * HDFS they do not count towards leaving safe mode */
		uint64_t total = ns->bl->nblocks - ns->uc_blocks;
		uint64_t need = total * (uint64_t)ns->conf.safemode_pct / 100;
		if (ns->bl->nreported >= need) {
			ns->safemode = false;
			cdl_info("leaving safe mode: %" PRIu64 " of %" PRIu64 " blocks reported",
				 ns->bl->nreported, ns->bl->nblocks);
		}
	}
	nn_blocks_monitor(ns->bl, now, ns->safemode);
	if (!ns->safemode) {
		for (struct nn_lease *l = ns->leases, *next; l; l = next) {
			next = l->next;
			if (now - l->renewed_ms > ns->conf.lease_ms && !recovery_of_ino(ns, l->ino))
				recover_lease(ns, l);
		}
		recoveries_tick(ns, now);
	}
	bool reap = ns->reap_pending && !ns->safemode;
	ns_unlock(ns);
	if (reap)
		reap_pending(ns);
	trash_tick(ns);
}

char *nn_ns_status_text(nn_ns *ns)
{
	pthread_mutex_lock(&ns->lock);
	char *s = xasprintf("caudal namenode\ncluster %s\nsafemode %s\ntxid %" PRIu64
			    "\ninodes %" PRIu64 "\nblocks %" PRIu64 "\nlive datanodes %d of %d\n",
			    ns->cluster, ns->safemode ? "on" : "off", ns->txid, ns->inodes,
			    ns->bl->nblocks, nn_dn_live_count(ns->bl), ns->bl->ndn);
	int64_t now = cdl_now_ms();
	for (int i = 0; i < ns->bl->ndn; i++) {
		nn_dn *d = ns->bl->dns[i];
		char *t =
		    xasprintf("%sdatanode %s %s:%u %s %s blocks %u used %" PRIu64
			      " remaining %" PRIu64 " last-heartbeat %lldms\n",
			      s, d->id, d->host, d->port, d->rack, d->alive ? "live" : "dead",
			      d->nblocks, d->used, d->remaining, (long long)(now - d->last_hb_ms));
		free(s);
		s = t;
	}
	ns_unlock(ns);
	return s;
}

/* The gauges /metrics shows, looked up once by nn_ns_metrics. */
static struct nn_gauges {
	cdl_series *txid, *inodes, *files, *dirs, *inline_files, *inline_bytes, *blocks, *reported,
	    *under, *corrupt, *missing, *pending_del, *pending_repl, *safemode, *cap, *used, *rem,
	    *leases, *live, *dead, *decom, *decomd, *xceivers;
	cdl_metric *dn_age, *dn_blocks, *dn_used, *dn_rem, *dn_alive; /* by datanode */
} g;

static void metrics_collect(void *arg)
{
	nn_ns *ns = arg;
	pthread_mutex_lock(&ns->lock);
	uint64_t cap = 0, used = 0, rem = 0, dels = 0, xc = 0;
	int live = 0, dead = 0, decom = 0, decomd = 0;
	for (int i = 0; i < ns->bl->ndn; i++) {
		const nn_dn *d = ns->bl->dns[i];
		dels += d->ndeletes;
		if (!d->alive) {
			dead++;
			continue;
		}
		live++;
		decom += d->decommissioning && !d->decommissioned;
		decomd += d->decommissioned;
		cap += d->capacity;
		used += d->used;
		rem += d->remaining;
		xc += d->xceivers;
	}
	uint64_t leases = 0;
	for (const struct nn_lease *l = ns->leases; l; l = l->next)
		leases++;
	cdl_series_set(g.txid, (double)ns->txid);
	cdl_series_set(g.inodes, (double)ns->inodes);
	cdl_series_set(g.files, (double)ns->files);
	cdl_series_set(g.dirs, (double)ns->dirs);
	cdl_series_set(g.inline_files, (double)ns->inline_files);
	cdl_series_set(g.inline_bytes, (double)ns->inline_bytes);
	cdl_series_set(g.blocks, (double)ns->bl->nblocks);
	cdl_series_set(g.reported, (double)ns->bl->nreported);
	cdl_series_set(g.under, (double)ns->bl->n_under);
	cdl_series_set(g.corrupt, (double)ns->bl->n_corrupt);
	cdl_series_set(g.missing, (double)ns->bl->n_missing);
	cdl_series_set(g.pending_repl, (double)ns->bl->n_pending_repl);
	cdl_series_set(g.pending_del, (double)dels);
	cdl_series_set(g.safemode, ns->safemode ? 1 : 0);
	cdl_series_set(g.cap, (double)cap);
	cdl_series_set(g.used, (double)used);
	cdl_series_set(g.rem, (double)rem);
	cdl_series_set(g.leases, (double)leases);
	cdl_series_set(g.live, live);
	cdl_series_set(g.dead, dead);
	cdl_series_set(g.decom, decom);
	cdl_series_set(g.decomd, decomd);
	cdl_series_set(g.xceivers, (double)xc);
	/* each datanode as this namenode sees it, set once the lock is let go
	 * (a series lookup takes the registry's lock) */
	int n = ns->bl->ndn;
	struct dnrow {
		char name[300];
		double age, blocks, used, rem, alive;
	} *rows = xcalloc((size_t)(n ? n : 1), sizeof(*rows));
	int64_t now = cdl_now_ms();
	for (int i = 0; i < n; i++) {
		const nn_dn *d = ns->bl->dns[i];
		snprintf(rows[i].name, sizeof(rows[i].name), "%s:%u", d->host, d->port);
		rows[i].age = (double)(now - d->last_hb_ms) / 1e3;
		rows[i].blocks = d->nblocks;
		rows[i].used = (double)d->used;
		rows[i].rem = (double)d->remaining;
		rows[i].alive = d->alive;
	}
	pthread_mutex_unlock(&ns->lock);
	for (int i = 0; i < n; i++) {
		cdl_series_set(cdl_metric_at(g.dn_age, rows[i].name), rows[i].age);
		cdl_series_set(cdl_metric_at(g.dn_blocks, rows[i].name), rows[i].blocks);
		cdl_series_set(cdl_metric_at(g.dn_used, rows[i].name), rows[i].used);
		cdl_series_set(cdl_metric_at(g.dn_rem, rows[i].name), rows[i].rem);
		cdl_series_set(cdl_metric_at(g.dn_alive, rows[i].name), rows[i].alive);
	}
	free(rows);
}

static cdl_series *gauge(cdl_metrics *r, const char *name, const char *help)
{
	return cdl_metric_one(cdl_metrics_gauge(r, name, help, NULL));
}

int nn_ns_metrics(nn_ns *ns, cdl_metrics *r)
{
	g.txid = gauge(r, "caudal_namenode_txid", "The last committed namespace transaction id.");
	g.inodes = gauge(r, "caudal_namenode_inodes", "Inodes in the namespace (every kind).");
	g.files = gauge(r, "caudal_namenode_files", "Regular files in the namespace.");
	g.dirs = gauge(r, "caudal_namenode_directories", "Directories in the namespace.");
	g.inline_files = gauge(r, "caudal_namenode_inline_files",
			       "Files whose bytes live in their inode record, without blocks.");
	g.inline_bytes =
	    gauge(r, "caudal_namenode_inline_bytes", "Bytes of the files kept inline.");
	g.blocks = gauge(r, "caudal_namenode_blocks", "Blocks in the block map.");
	g.reported = gauge(r, "caudal_namenode_blocks_reported",
			   "Blocks with at least one reported replica (safe mode counts them).");
	g.under = gauge(r, "caudal_namenode_blocks_under_replicated",
			"Complete blocks with fewer live replicas than their replication, but "
			"some (last monitor pass).");
	g.corrupt = gauge(r, "caudal_namenode_blocks_corrupt",
			  "Blocks with at least one replica known corrupt (last monitor pass).");
	g.missing = gauge(r, "caudal_namenode_blocks_missing",
			  "Complete blocks with no replica at all (last monitor pass).");
	g.pending_repl = gauge(r, "caudal_namenode_blocks_pending_replication",
			       "Blocks with a copy scheduled and not yet reported.");
	g.pending_del = gauge(r, "caudal_namenode_blocks_pending_deletion",
			      "Replica deletions queued for datanodes' next heartbeats.");
	g.safemode = gauge(r, "caudal_namenode_safemode", "1 while in safe mode.");
	g.cap = gauge(r, "caudal_namenode_capacity_bytes", "Capacity of the live datanodes.");
	g.used = gauge(r, "caudal_namenode_used_bytes", "Bytes used by blocks on live datanodes.");
	g.rem = gauge(r, "caudal_namenode_remaining_bytes", "Bytes free on live datanodes.");
	g.leases = gauge(r, "caudal_namenode_leases", "Files open for writing (leases held).");
	g.xceivers = gauge(r, "caudal_namenode_datanode_xceivers",
			   "Data-transfer connections the live datanodes last reported, summed.");
	cdl_metric *dn = cdl_metrics_gauge(r, "caudal_namenode_datanodes",
					   "Registered datanodes by state.", "state");
	g.dn_age = cdl_metrics_gauge(r, "caudal_namenode_datanode_heartbeat_age_seconds",
				     "Time since each datanode's last heartbeat.", "datanode");
	g.dn_blocks =
	    cdl_metrics_gauge(r, "caudal_namenode_datanode_blocks",
			      "Replicas each datanode holds, as the block map says.", "datanode");
	g.dn_used = cdl_metrics_gauge(r, "caudal_namenode_datanode_used_bytes",
				      "Bytes each datanode last reported used.", "datanode");
	g.dn_rem = cdl_metrics_gauge(r, "caudal_namenode_datanode_remaining_bytes",
				     "Bytes each datanode last reported free.", "datanode");
	g.dn_alive =
	    cdl_metrics_gauge(r, "caudal_namenode_datanode_live",
			      "1 while a datanode is live, 0 once it is dead.", "datanode");
	g.live = cdl_metric_at(dn, "live");
	g.dead = cdl_metric_at(dn, "dead");
	g.decom = cdl_metric_at(dn, "decommissioning");
	g.decomd = cdl_metric_at(dn, "decommissioned");
	return cdl_metrics_collector(r, metrics_collect, ns);
}
