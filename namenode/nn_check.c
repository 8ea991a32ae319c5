/* nn_check: the namenode's invariant checker (see nn_check.h). */
#include "nn_check.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "caudal.pb-c.h"
#include "cdl_log.h"
#include "cdl_util.h"

#define ROOT_INO 1

/* What the scan keeps of one inode record. */
typedef struct chk_ino {
	uint64_t ino, parent;
	char *name;
	uint32_t mode, subdirs;
	uint64_t entries;
	uint64_t seen_entries, seen_subdirs; /* counted from 'D' records */
	uint32_t reached;		     /* 'D' records naming this inode */
	uint8_t rooted;			     /* 0 unknown, 1 reaches the root, 2 does not */
	uint64_t space;			     /* what it counts against space quotas */
	int64_t quota;			     /* its index in chk.quotas, -1: none */
} chk_ino;

/* A 'Q' record and the usage counted for it. */
typedef struct chk_quota {
	uint64_t ino;
	Caudal__QuotaRec rec;
	uint64_t ns, ds;
} chk_quota;

/* One block as an inode record lists it. */
typedef struct chk_blk {
	uint64_t id, gen, len, ino;
	bool open; /* its file holds a lease */
	bool in_map;
} chk_blk;

typedef struct chk {
	nn_ns *ns;
	FILE *out;
	size_t max_lines, violations;
	chk_ino *inos;
	size_t ninos, capinos;
	chk_blk *blks;
	size_t nblks, capblks;
	uint64_t map_blocks, map_reported;
	uint64_t inline_files, inline_bytes;
	chk_quota *quotas;
	size_t nquotas;
} chk;

/* Record one violation (listed while under max_lines, always counted). */
static void __attribute__((format(printf, 2, 3))) bad(chk *c, const char *fmt, ...)
{
	if (c->violations++ >= c->max_lines)
		return;
	va_list ap;
	va_start(ap, fmt);
	vfprintf(c->out, fmt, ap);
	va_end(ap);
	fputc('\n', c->out);
}

static int ino_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = ((const chk_ino *)b)->ino;
	return x < y ? -1 : x > y;
}

static chk_ino *ino_find(chk *c, uint64_t ino)
{
	/* bsearch wants a non-null base even for no elements */
	return c->ninos ? bsearch(&ino, c->inos, c->ninos, sizeof(chk_ino), ino_cmp) : NULL;
}

static int blk_sort_cmp(const void *a, const void *b)
{
	uint64_t x = ((const chk_blk *)a)->id, y = ((const chk_blk *)b)->id;
	return x < y ? -1 : x > y;
}

static int blk_find_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = ((const chk_blk *)b)->id;
	return x < y ? -1 : x > y;
}

/* The 'M' record: its counters against the in-memory ones. */
static int scan_meta(chk *c, Caudal__MetaRec **out)
{
	char *v;
	size_t vl;
	int rc = nn_store_get(c->ns->st, "Mmeta", 5, &v, &vl);
	if (rc == -ENOENT) {
		bad(c, "the counters record 'Mmeta' is missing");
		return 0;
	}
	if (rc < 0)
		return rc;
	*out = caudal__meta_rec__unpack(NULL, vl, (const uint8_t *)v);
	nn_store_free(v);
	if (!*out) {
		bad(c, "the counters record 'Mmeta' is undecodable");
		return 0;
	}
	Caudal__MetaRec *m = *out;
	if (m->inodes != c->ns->inodes)
		bad(c, "stored inode count %" PRIu64 " differs from the namenode's %" PRIu64,
		    m->inodes, c->ns->inodes);
	if (m->txid != c->ns->txid)
		bad(c, "stored txid %" PRIu64 " differs from the namenode's %" PRIu64, m->txid,
		    c->ns->txid);
	return 0;
}

/* An inline file's bytes: only a file has them, at most NN_INLINE_CAP
 * and a block; with blocks only while its writer moves them into its
 * first block (one block, not a hole, under a lease). */
static void check_inline(chk *c, const Caudal__InodeRec *r, uint64_t kino)
{
	size_t len = r->inline_data.len;
	if (!len)
		return;
	c->inline_files++;
	c->inline_bytes += len;
	if (!S_ISREG(r->mode))
		bad(c, "inode %" PRIu64 ": not a file but holds %zu inline bytes", kino, len);
	if (len > NN_INLINE_CAP || len > r->block_size)
		bad(c,
		    "inode %" PRIu64
		    ": %zu inline bytes, over the cap (%d) or its block size (%" PRIu64 ")",
		    kino, len, NN_INLINE_CAP, r->block_size);
	if (r->n_blocks && (!r->lease[0] || r->n_blocks != 1 || r->blocks[0]->id == 0))
		bad(c, "inode %" PRIu64 ": holds inline bytes and %zu block(s)%s", kino,
		    r->n_blocks, r->lease[0] ? "" : " while closed");
}

/* What a file counts against space quotas, as nn_ns.c's file_space
 * counts it: inline bytes and stored blocks, the last one at the full
 * block size while the file is open, times the replication. */
static uint64_t rec_space(const Caudal__InodeRec *r)
{
	if (!S_ISREG(r->mode))
		return 0;
	uint64_t s = r->inline_data.len;
	for (size_t i = 0; i < r->n_blocks; i++) {
		if (!r->blocks[i]->id)
			continue;
		uint64_t l = r->blocks[i]->length;
		if (r->lease[0] && i + 1 == r->n_blocks && l < r->block_size)
			l = r->block_size;
		s += l;
	}
	return s * r->replication;
}

/* Every 'I' record: decodable, keyed by its own id, ids below the stored
 * next ids; its blocks collected for the block-map comparison. */
static void scan_inodes(chk *c, const Caudal__MetaRec *m)
{
	nn_iter *it = nn_iter_new(c->ns->st, "I", 1, "I", 1);
	for (; nn_iter_valid(it); nn_iter_next(it)) {
		size_t kl, vl;
		const char *k = nn_iter_key(it, &kl);
		const char *v = nn_iter_value(it, &vl);
		if (kl != 9) {
			bad(c, "an inode key has %zu bytes, not 9", kl);
			continue;
		}
		uint64_t kino = cdl_get_be64((const uint8_t *)k + 1);
		Caudal__InodeRec *r = caudal__inode_rec__unpack(NULL, vl, (const uint8_t *)v);
		if (!r) {
			bad(c, "inode %" PRIu64 ": record is undecodable", kino);
			continue;
		}
		if (r->ino != kino)
			bad(c, "inode %" PRIu64 ": record says it is inode %" PRIu64, kino, r->ino);
		if (m && kino >= m->next_ino)
			bad(c, "inode %" PRIu64 ": not below the stored next inode id %" PRIu64,
			    kino, m->next_ino);
		if (c->ninos == c->capinos) {
			c->capinos = c->capinos ? 2 * c->capinos : 256;
			c->inos = xrealloc(c->inos, c->capinos * sizeof(chk_ino));
		}
		chk_ino *n = &c->inos[c->ninos++];
		*n = (chk_ino){.ino = kino,
			       .parent = r->parent,
			       .name = xstrdup(r->name),
			       .mode = r->mode,
			       .subdirs = r->subdirs,
			       .entries = r->entries,
			       .space = rec_space(r),
			       .quota = -1};
		if (!S_ISREG(r->mode) && r->n_blocks)
			bad(c, "inode %" PRIu64 ": not a file but lists %zu blocks", kino,
			    r->n_blocks);
		check_inline(c, r, kino);
		for (size_t i = 0; i < r->n_blocks; i++) {
			if (r->blocks[i]->id == 0) {
				/* a hole stores nothing; it is never empty, and two
				 * in a row would have been one */
				if (r->blocks[i]->gen || !r->blocks[i]->length ||
				    (i && r->blocks[i - 1]->id == 0))
					bad(c, "inode %" PRIu64 ": malformed hole at block %zu",
					    kino, i);
				continue;
			}
			if (c->nblks == c->capblks) {
				c->capblks = c->capblks ? 2 * c->capblks : 256;
				c->blks = xrealloc(c->blks, c->capblks * sizeof(chk_blk));
			}
			c->blks[c->nblks++] = (chk_blk){.id = r->blocks[i]->id,
							.gen = r->blocks[i]->gen,
							.len = r->blocks[i]->length,
							.ino = kino,
							.open = r->lease[0] != '\0'};
			if (m && r->blocks[i]->id >= m->next_block)
				bad(c,
				    "inode %" PRIu64 ": block %" PRIu64
				    " not below the stored next block id %" PRIu64,
				    kino, r->blocks[i]->id, m->next_block);
		}
		caudal__inode_rec__free_unpacked(r, NULL);
	}
	nn_iter_free(it);
}

/* Every 'D' record: names an existing inode whose parent and name are the
 * entry's, inside an existing directory; counts entries per directory. */
static void scan_dirents(chk *c)
{
	nn_iter *it = nn_iter_new(c->ns->st, "D", 1, "D", 1);
	for (; nn_iter_valid(it); nn_iter_next(it)) {
		size_t kl, vl;
		const char *k = nn_iter_key(it, &kl);
		const char *v = nn_iter_value(it, &vl);
		if (kl < 10) {
			bad(c, "a directory entry key has %zu bytes", kl);
			continue;
		}
		uint64_t parent = cdl_get_be64((const uint8_t *)k + 1);
		char *name = xstrndup(k + 9, kl - 9);
		chk_ino *p = ino_find(c, parent);
		if (!p)
			bad(c, "entry '%s' of directory %" PRIu64 ": the directory does not exist",
			    name, parent);
		else if (!S_ISDIR(p->mode))
			bad(c, "entry '%s' of inode %" PRIu64 ": that inode is not a directory",
			    name, parent);
		if (vl != 8) {
			bad(c, "entry '%s' of directory %" PRIu64 ": value has %zu bytes, not 8",
			    name, parent, vl);
			free(name);
			continue;
		}
		uint64_t ino = cdl_get_be64((const uint8_t *)v);
		chk_ino *n = ino_find(c, ino);
		if (!n) {
			bad(c,
			    "entry '%s' of directory %" PRIu64 " names inode %" PRIu64
			    " which does not exist",
			    name, parent, ino);
		} else {
			n->reached++;
			if (n->parent != parent || strcmp(n->name, name))
				bad(c,
				    "entry '%s' of directory %" PRIu64 " names inode %" PRIu64
				    " whose record says it is '%s' in %" PRIu64,
				    name, parent, ino, n->name, n->parent);
			if (p) {
				p->seen_entries++;
				p->seen_subdirs += S_ISDIR(n->mode);
			}
		}
		free(name);
	}
	nn_iter_free(it);
}

/* Does inode n reach the root through parents? Memoised; a chain longer
 * than the inode count is a cycle. */
static bool rooted(chk *c, chk_ino *n)
{
	chk_ino *cur = n;
	for (size_t steps = 0; steps <= c->ninos && cur; steps++) {
		if (cur->ino == ROOT_INO || cur->rooted == 1) {
			n->rooted = 1;
			return true;
		}
		if (cur->rooted == 2)
			break;
		cur = ino_find(c, cur->parent);
	}
	n->rooted = 2;
	return false;
}

static void check_tree(chk *c)
{
	chk_ino *root = ino_find(c, ROOT_INO);
	if (!root)
		bad(c, "the root inode %d does not exist", ROOT_INO);
	else if (!S_ISDIR(root->mode) || root->parent != ROOT_INO)
		bad(c, "the root inode is not a directory that is its own parent");
	for (size_t i = 0; i < c->ninos; i++) {
		chk_ino *n = &c->inos[i];
		if (n->ino != ROOT_INO && n->reached != 1)
			bad(c,
			    "inode %" PRIu64 " ('%s' in %" PRIu64 ") is named by %u entries, not 1",
			    n->ino, n->name, n->parent, n->reached);
		else if (n->ino != ROOT_INO && !rooted(c, n))
			bad(c,
			    "inode %" PRIu64 " ('%s') does not reach the root through its parents",
			    n->ino, n->name);
		if (S_ISDIR(n->mode) &&
		    (n->entries != n->seen_entries || n->subdirs != n->seen_subdirs))
			bad(c,
			    "directory %" PRIu64 " ('%s') records %" PRIu64 " entries and %u "
			    "subdirectories, its entries are %" PRIu64 " and %" PRIu64,
			    n->ino, n->name, n->entries, n->subdirs, n->seen_entries,
			    n->seen_subdirs);
	}
}

/* Every 'Q' record names a directory in the tree, and its usage is what
 * the tree holds under it (the directory included) and what the namenode
 * keeps in memory. */
static void check_quotas(chk *c)
{
	nn_iter *it = nn_iter_new(c->ns->st, "Q", 1, "Q", 1);
	size_t cap = 0;
	for (; nn_iter_valid(it); nn_iter_next(it)) {
		size_t kl, vl;
		const char *k = nn_iter_key(it, &kl);
		const char *v = nn_iter_value(it, &vl);
		Caudal__QuotaRec *r =
		    kl == 9 ? caudal__quota_rec__unpack(NULL, vl, (const uint8_t *)v) : NULL;
		if (!r) {
			bad(c, "a quota record (key of %zu bytes) is undecodable", kl);
			continue;
		}
		if (c->nquotas == cap) {
			cap = cap ? 2 * cap : 16;
			c->quotas = xrealloc(c->quotas, cap * sizeof(chk_quota));
		}
		chk_quota *q = &c->quotas[c->nquotas++];
		q->ino = cdl_get_be64((const uint8_t *)k + 1);
		q->rec = *r;
		q->ns = q->ds = 0;
		caudal__quota_rec__free_unpacked(r, NULL);
		chk_ino *d = ino_find(c, q->ino);
		if (!d || !S_ISDIR(d->mode) || !rooted(c, d))
			bad(c, "quota of inode %" PRIu64 ": not a directory in the tree", q->ino);
		else
			d->quota = (int64_t)(c->nquotas - 1);
		if (q->rec.ns_quota < -1 || q->rec.ns_quota == 0 || q->rec.ds_quota < -1 ||
		    q->rec.ds_quota == 0 || (q->rec.ns_quota < 0 && q->rec.ds_quota < 0))
			bad(c,
			    "quota of inode %" PRIu64 ": names %" PRId64 ", bytes %" PRId64
			    " is not a quota",
			    q->ino, q->rec.ns_quota, q->rec.ds_quota);
	}
	nn_iter_free(it);
	if (!c->nquotas && !c->ns->nquotas)
		return;
	/* every inode in the tree counts for each quota'd directory above it */
	for (size_t i = 0; i < c->ninos; i++) {
		chk_ino *n = &c->inos[i];
		if (!rooted(c, n))
			continue;
		chk_ino *cur = n;
		for (size_t steps = 0; steps <= c->ninos && cur; steps++) {
			if (cur->quota >= 0) {
				c->quotas[cur->quota].ns++;
				c->quotas[cur->quota].ds += n->space;
			}
			if (cur->ino == ROOT_INO)
				break;
			cur = ino_find(c, cur->parent);
		}
	}
	if (c->nquotas != c->ns->nquotas)
		bad(c, "%zu quota records, the namenode keeps %zu quotas", c->nquotas,
		    c->ns->nquotas);
	for (size_t i = 0; i < c->nquotas; i++) {
		chk_quota *q = &c->quotas[i];
		if (q->rec.ns_used != q->ns || q->rec.ds_used != q->ds)
			bad(c,
			    "quota of directory %" PRIu64 ": records %" PRIu64 " names and %" PRIu64
			    " bytes used, the tree under it holds %" PRIu64 " and %" PRIu64,
			    q->ino, q->rec.ns_used, q->rec.ds_used, q->ns, q->ds);
		const nn_quota *m = NULL;
		for (size_t j = 0; j < c->ns->nquotas; j++)
			if (c->ns->quotas[j].ino == q->ino)
				m = &c->ns->quotas[j];
		if (!m || m->nsq != q->rec.ns_quota || m->dsq != q->rec.ds_quota ||
		    m->nsu != q->rec.ns_used || m->dsu != q->rec.ds_used)
			bad(c,
			    "quota of directory %" PRIu64 ": the namenode's copy differs from "
			    "its record",
			    q->ino);
	}
}

/* Each block map entry against the records' blocks (sorted by id). */
static void check_map_entry(nn_blk *k, void *arg)
{
	chk *c = arg;
	c->map_blocks++;
	c->map_reported += k->nloc > 0;
	chk_blk *b =
	    c->nblks ? bsearch(&k->id, c->blks, c->nblks, sizeof(chk_blk), blk_find_cmp) : NULL;
	if (!b) {
		bad(c,
		    "block %" PRIu64 " is in the block map (inode %" PRIu64
		    ") but in no inode record",
		    k->id, k->ino);
		return;
	}
	b->in_map = true;
	/* a block being written may have been reported longer by its
	 * datanodes than the writer has recorded yet */
	bool len_ok = b->len == k->len || (k->uc && b->open && k->len > b->len);
	if (b->gen != k->gen || !len_ok || b->ino != k->ino)
		bad(c,
		    "block %" PRIu64 ": the record of inode %" PRIu64 " says gen %" PRIu64
		    " length %" PRIu64 ", the block map inode %" PRIu64 " gen %" PRIu64
		    " length %" PRIu64,
		    k->id, b->ino, b->gen, b->len, k->ino, k->gen, k->len);
	/* the monitor never re-replicates a block under construction: one
	 * left so in a closed file stays short of replicas for good */
	if (k->uc && !b->open)
		bad(c,
		    "block %" PRIu64 " of inode %" PRIu64 " is marked under construction, "
		    "but the file is closed",
		    k->id, b->ino);
}

static void check_blocks(chk *c)
{
	if (c->nblks)
		qsort(c->blks, c->nblks, sizeof(chk_blk), blk_sort_cmp);
	for (size_t i = 1; i < c->nblks; i++)
		if (c->blks[i].id == c->blks[i - 1].id)
			bad(c, "block %" PRIu64 " is listed by inodes %" PRIu64 " and %" PRIu64,
			    c->blks[i].id, c->blks[i - 1].ino, c->blks[i].ino);
	nn_blocks_foreach(c->ns->bl, check_map_entry, c);
	for (size_t i = 0; i < c->nblks; i++)
		if (!c->blks[i].in_map)
			bad(c, "block %" PRIu64 " of inode %" PRIu64 " is not in the block map",
			    c->blks[i].id, c->blks[i].ino);
	if (c->nblks != c->ns->bl->nblocks)
		bad(c, "the inode records list %zu blocks, the block counter says %" PRIu64,
		    c->nblks, c->ns->bl->nblocks);
	if (c->map_blocks != c->ns->bl->nblocks)
		bad(c, "the block map holds %" PRIu64 " blocks, its counter says %" PRIu64,
		    c->map_blocks, c->ns->bl->nblocks);
	if (c->map_reported != c->ns->bl->nreported)
		bad(c, "%" PRIu64 " blocks have a location, the safe-mode counter says %" PRIu64,
		    c->map_reported, c->ns->bl->nreported);
}

int nn_check_run(nn_ns *ns, size_t max_lines, nn_check_report *r)
{
	memset(r, 0, sizeof(*r));
	chk c = {.ns = ns, .max_lines = max_lines};
	char *body = NULL;
	size_t blen = 0;
	c.out = open_memstream(&body, &blen);
	if (!c.out)
		return -ENOMEM;
	Caudal__MetaRec *m = NULL;
	pthread_mutex_lock(&ns->lock);
	int rc = scan_meta(&c, &m);
	if (rc == 0) {
		scan_inodes(&c, m);
		scan_dirents(&c);
		check_tree(&c);
		check_quotas(&c);
		check_blocks(&c);
		if (c.ninos != ns->inodes)
			bad(&c, "%zu inode records, the namenode counts %" PRIu64, c.ninos,
			    ns->inodes);
		if (c.inline_files != ns->inline_files || c.inline_bytes != ns->inline_bytes)
			bad(&c,
			    "%" PRIu64 " inline files of %" PRIu64 " bytes in the records, the "
			    "namenode counts %" PRIu64 " of %" PRIu64,
			    c.inline_files, c.inline_bytes, ns->inline_files, ns->inline_bytes);
		uint64_t files = 0, dirs = 0;
		for (size_t i = 0; i < c.ninos; i++) {
			files += S_ISREG(c.inos[i].mode);
			dirs += S_ISDIR(c.inos[i].mode);
		}
		if (files != ns->files || dirs != ns->dirs)
			bad(&c,
			    "%" PRIu64 " files and %" PRIu64 " directories in the records, the "
			    "namenode counts %" PRIu64 " and %" PRIu64,
			    files, dirs, ns->files, ns->dirs);
	}
	pthread_mutex_unlock(&ns->lock);
	if (m)
		caudal__meta_rec__free_unpacked(m, NULL);
	fclose(c.out);
	for (size_t i = 0; i < c.ninos; i++) {
		chk_ino *n = &c.inos[i];
		r->files += S_ISREG(n->mode);
		r->dirs += S_ISDIR(n->mode);
		r->symlinks += S_ISLNK(n->mode);
		free(n->name);
	}
	free(c.inos);
	free(c.blks);
	free(c.quotas);
	if (rc < 0) {
		free(body);
		return rc;
	}
	r->inodes = c.ninos;
	r->blocks = c.nblks;
	r->inline_files = c.inline_files;
	r->violations = c.violations;
	char *head = xasprintf(
	    "%s %" PRIu64 " inodes, %" PRIu64 " files, %" PRIu64 " directories, %" PRIu64
	    " symlinks, %" PRIu64 " blocks, %" PRIu64 " inline files, %zu violations%s\n",
	    c.violations ? "bad" : "ok", r->inodes, r->files, r->dirs, r->symlinks, r->blocks,
	    r->inline_files, c.violations, c.violations > max_lines ? " (first ones listed)" : "");
	r->text = xasprintf("%s%s", head, body);
	free(head);
	free(body);
	return 0;
}

void nn_check_report_release(nn_check_report *r)
{
	free(r->text);
	r->text = NULL;
}
