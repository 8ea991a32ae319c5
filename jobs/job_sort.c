/* job_sort: records, collector, runs and merges; see job_sort.h. */
#include "job_sort.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "cdl_checksum.h"
#include "cdl_util.h"

unsigned job_partition(const char *key, size_t klen, unsigned nparts)
{
	return nparts <= 1 ? 0 : (unsigned)(cdl_xxh3(key, klen) % nparts);
}

int job_key_cmp(const char *a, size_t al, const char *b, size_t bl)
{
	int r = memcmp(a, b, al < bl ? al : bl);
	if (r)
		return r;
	return al < bl ? -1 : al > bl;
}

/* ------------------------------------------------------------ varints */

static size_t put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

/* Decode a varint of at most 5 bytes (values below 2^35); -1 on a
 * truncated or over-long one. */
static int get_varint(const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
	const uint8_t *p = *pp;
	uint64_t v = 0;
	for (int shift = 0; shift < 35; shift += 7) {
		if (p >= end)
			return -1;
		uint8_t b = *p++;
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*pp = p;
			*out = v;
			return 0;
		}
	}
	return -1;
}

/* ------------------------------------------------------------ cursors */

void job_cursor_init(job_cursor *c, const void *data, size_t len)
{
	c->p = data;
	c->end = c->p + len;
	c->key = c->val = NULL;
	c->klen = c->vlen = 0;
}

int job_cursor_next(job_cursor *c)
{
	if (c->p == c->end)
		return 0;
	uint64_t kl, vl;
	const uint8_t *p = c->p;
	if (get_varint(&p, c->end, &kl) || get_varint(&p, c->end, &vl) || kl > JOB_REC_MAX ||
	    vl > JOB_REC_MAX || kl + vl > (uint64_t)(c->end - p))
		return -EBADMSG;
	c->key = (const char *)p;
	c->klen = (size_t)kl;
	c->val = (const char *)p + kl;
	c->vlen = (size_t)vl;
	c->p = p + kl + vl;
	return 1;
}

/* ------------------------------------------------------------ merger */

/* A binary min-heap of cursor indexes ordered by (current key, index). */
struct job_merger {
	job_cursor *c;
	size_t *heap;
	size_t n;
	bool started;
	int err;
};

static bool heap_less(const job_merger *m, size_t a, size_t b)
{
	const job_cursor *x = &m->c[a], *y = &m->c[b];
	int r = job_key_cmp(x->key, x->klen, y->key, y->klen);
	return r < 0 || (r == 0 && a < b);
}

static void sift_down(job_merger *m, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, s = i;
		if (l < m->n && heap_less(m, m->heap[l], m->heap[s]))
			s = l;
		if (r < m->n && heap_less(m, m->heap[r], m->heap[s]))
			s = r;
		if (s == i)
			return;
		size_t t = m->heap[i];
		m->heap[i] = m->heap[s];
		m->heap[s] = t;
		i = s;
	}
}

job_merger *job_merger_new(job_cursor *cursors, size_t n)
{
	job_merger *m = xcalloc(1, sizeof(*m));
	m->c = cursors;
	m->heap = xmalloc((n ? n : 1) * sizeof(size_t));
	for (size_t i = 0; i < n; i++) {
		int r = job_cursor_next(&cursors[i]);
		if (r < 0)
			m->err = r;
		else if (r > 0)
			m->heap[m->n++] = i;
	}
	for (size_t i = m->n / 2; i-- > 0;)
		sift_down(m, i);
	return m;
}

int job_merger_next(job_merger *m, const char **key, size_t *klen, const char **val, size_t *vlen)
{
	if (m->err)
		return m->err;
	/* Advance the cursor whose record was handed out last time; its
	 * record stays valid (it points into the run's memory). */
	if (m->started && m->n) {
		int r = job_cursor_next(&m->c[m->heap[0]]);
		if (r < 0)
			return m->err = r;
		if (r == 0)
			m->heap[0] = m->heap[--m->n];
		sift_down(m, 0);
	}
	m->started = true;
	if (!m->n)
		return 0;
	const job_cursor *c = &m->c[m->heap[0]];
	*key = c->key;
	*klen = c->klen;
	*val = c->val;
	*vlen = c->vlen;
	return 1;
}

void job_merger_free(job_merger *m)
{
	if (!m)
		return;
	free(m->heap);
	free(m);
}

/* ------------------------------------------------------------ built-in reduce */

bool job_parse_i64(const char *s, size_t n, int64_t *out)
{
	size_t i = 0;
	bool neg = false;
	if (i < n && (s[i] == '-' || s[i] == '+'))
		neg = s[i++] == '-';
	if (i == n)
		return false;
	uint64_t v = 0;
	for (; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		uint64_t d = (uint64_t)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX)
		return false;
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return true;
}

static const char *shown(const char *s, size_t n, char *buf, size_t cap)
{
	size_t k = n < cap - 4 ? n : cap - 4;
	size_t j = 0;
	for (size_t i = 0; i < k; i++)
		buf[j++] = (unsigned char)s[i] < 0x20 ? '?' : s[i];
	if (k < n)
		buf[j++] = '.', buf[j++] = '.', buf[j++] = '.';
	buf[j] = '\0';
	return buf;
}

int job_reduce_builtin(enum job_op_kind op, job_next_fn next, void *src, job_emit_fn emit,
		       void *ctx, job_counters *counters, char *err, size_t errlen)
{
	const char *k, *v, *gk = NULL;
	size_t kl, vl, gkl = 0;
	int64_t acc = 0, groups = 0, records = 0;
	char num[24], b1[48], b2[48];
	int r, rc = 0;

	if (op != JOB_OP_SUM && op != JOB_OP_COUNT && op != JOB_OP_IDENTITY) {
		snprintf(err, errlen, "'%s' is not a built-in reduce", job_op_name(op));
		return -EINVAL;
	}
	for (;;) {
		r = next(src, &k, &kl, &v, &vl);
		if (r < 0) {
			snprintf(err, errlen, "reading sorted records: %s", strerror(-r));
			rc = r;
			break;
		}
		bool same = r > 0 && gk && job_key_cmp(gk, gkl, k, kl) == 0;
		if (gk && !same && op != JOB_OP_IDENTITY) {
			int n = snprintf(num, sizeof(num), "%" PRId64, acc);
			if ((rc = emit(ctx, gk, gkl, num, (size_t)n)))
				break;
		}
		if (r == 0)
			break;
		records++;
		if (!same) {
			groups++;
			gk = k;
			gkl = kl;
			acc = 0;
		}
		if (op == JOB_OP_IDENTITY) {
			if ((rc = emit(ctx, k, kl, v, vl)))
				break;
		} else if (op == JOB_OP_COUNT) {
			acc++;
		} else {
			int64_t x;
			if (!job_parse_i64(v, vl, &x)) {
				snprintf(
				    err, errlen, "sum: value '%s' of key '%s' is not an integer",
				    shown(v, vl, b1, sizeof(b1)), shown(k, kl, b2, sizeof(b2)));
				rc = -EINVAL;
				break;
			}
			if (__builtin_add_overflow(acc, x, &acc)) {
				snprintf(err, errlen, "sum: overflow adding values of key '%s'",
					 shown(k, kl, b2, sizeof(b2)));
				rc = -EINVAL;
				break;
			}
		}
	}
	if (rc && rc != -EINVAL && !(r < 0) && err[0] == '\0')
		snprintf(err, errlen, "writing output: %s", strerror(-rc));
	if (counters) {
		job_counters_add(counters, JOB_CG, "reduce input groups", groups);
		job_counters_add(counters, JOB_CG, "reduce input records", records);
	}
	return rc;
}

/* ------------------------------------------------------------ sink */

#define SINK_CAP (1u << 20)

void job_sink_init(job_sink *s, int fd)
{
	memset(s, 0, sizeof(*s));
	s->fd = fd;
	s->cap = SINK_CAP;
	s->buf = xmalloc(s->cap);
	s->xs = XXH3_createState();
	if (!s->xs)
		abort();
	XXH3_64bits_reset(s->xs);
}

int job_sink_flush(job_sink *s)
{
	if (s->err)
		return s->err;
	if (s->used) {
		int rc = cdl_write_full(s->fd, s->buf, s->used);
		if (rc)
			return s->err = rc;
		s->used = 0;
	}
	return 0;
}

int job_sink_write(job_sink *s, const void *p, size_t n)
{
	if (s->err)
		return s->err;
	XXH3_64bits_update(s->xs, p, n);
	s->off += n;
	if (n >= s->cap) {
		int rc = job_sink_flush(s);
		if (!rc)
			rc = cdl_write_full(s->fd, p, n);
		return rc ? (s->err = rc) : 0;
	}
	if (s->used + n > s->cap) {
		int rc = job_sink_flush(s);
		if (rc)
			return rc;
	}
	memcpy(s->buf + s->used, p, n);
	s->used += n;
	return 0;
}

int job_sink_put(job_sink *s, const char *key, size_t klen, const char *val, size_t vlen)
{
	uint8_t hdr[20];
	size_t h = put_varint(hdr, klen);
	h += put_varint(hdr + h, vlen);
	int rc = job_sink_write(s, hdr, h);
	if (!rc)
		rc = job_sink_write(s, key, klen);
	if (!rc)
		rc = job_sink_write(s, val, vlen);
	if (!rc)
		s->seg_records++;
	return rc;
}

void job_sink_segment(job_sink *s, uint64_t *off, uint64_t *len, uint64_t *records, uint64_t *sum)
{
	*off = s->seg_start;
	*len = s->off - s->seg_start;
	*records = s->seg_records;
	*sum = XXH3_64bits_digest(s->xs);
	XXH3_64bits_reset(s->xs);
	s->seg_start = s->off;
	s->seg_records = 0;
}

int job_sink_release(job_sink *s)
{
	int rc = job_sink_flush(s);
	free(s->buf);
	s->buf = NULL;
	if (s->xs)
		XXH3_freeState(s->xs);
	s->xs = NULL;
	return rc;
}

/* ------------------------------------------------------------ index */

int job_index_write(const char *path, const job_index_entry *e, unsigned n)
{
	size_t len = (size_t)n * JOB_INDEX_ENTRY;
	uint8_t *b = xmalloc(len ? len : 1);
	for (unsigned i = 0; i < n; i++) {
		uint8_t *p = b + (size_t)i * JOB_INDEX_ENTRY;
		cdl_put_be64(p, e[i].offset);
		cdl_put_be64(p + 8, e[i].length);
		cdl_put_be64(p + 16, e[i].records);
		cdl_put_be64(p + 24, e[i].checksum);
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int rc = fd < 0 ? -errno : cdl_write_full(fd, b, len);
	if (fd >= 0 && close(fd) && !rc)
		rc = -errno;
	free(b);
	return rc;
}

int job_index_read_fd(int fd, unsigned part, job_index_entry *e)
{
	uint8_t b[JOB_INDEX_ENTRY];
	ssize_t k = pread(fd, b, sizeof(b), (off_t)part * JOB_INDEX_ENTRY);
	if (k != (ssize_t)sizeof(b))
		return k < 0 ? -errno : -EBADMSG;
	e->offset = cdl_get_be64(b);
	e->length = cdl_get_be64(b + 8);
	e->records = cdl_get_be64(b + 16);
	e->checksum = cdl_get_be64(b + 24);
	if (e->offset + e->length < e->offset)
		return -EBADMSG;
	return 0;
}

int job_index_read(const char *path, unsigned part, job_index_entry *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = job_index_read_fd(fd, part, e);
	close(fd);
	return rc;
}

/* ------------------------------------------------------------ collector */

/* Generic mode: records in an arena, sorted through an entry array. */
struct gent {
	uint64_t prefix; /* first 8 key bytes, big-endian, zero padded */
	uint64_t off;	 /* key in the arena; the value follows it */
	uint32_t klen, vlen;
	uint32_t part, pad;
};

/* Sum mode (combine = sum): one entry per distinct key in an open-addressed
 * table; the combiner's work is done as records arrive. */
struct hent {
	uint64_t hash; /* XXH3 of the key; 0 = empty slot (a real 0 is stored as 1) */
	uint64_t off;  /* key in the arena */
	int64_t sum;
	uint32_t klen, part;
};

struct run {
	char *path;
	job_index_entry *idx; /* one per partition */
};

struct job_collector {
	job_collector_opts o;
	char *arena;
	size_t used, cap;
	struct gent *ent;
	size_t nent, entcap;
	struct hent *tab;
	size_t tabcap, nkeys;
	struct run *runs;
	unsigned nruns;
	int64_t combine_in, combine_out; /* sum mode, added to counters at finish */
	char err[256];
};

static size_t mem_used(const job_collector *c)
{
	return c->used + c->nent * sizeof(struct gent) + c->tabcap * sizeof(struct hent);
}

job_collector *job_collector_new(const job_collector_opts *o)
{
	job_collector *c = xcalloc(1, sizeof(*c));
	c->o = *o;
	if (c->o.nparts == 0)
		c->o.nparts = 1;
	if (c->o.mem_limit < (64u << 10))
		c->o.mem_limit = 64u << 10;
	c->cap = 1u << 16;
	c->arena = xmalloc(c->cap);
	if (c->o.combine == JOB_OP_SUM) {
		c->tabcap = 1024;
		c->tab = xcalloc(c->tabcap, sizeof(*c->tab));
	}
	return c;
}

const char *job_collector_error(const job_collector *c)
{
	return c->err;
}

unsigned job_collector_spills(const job_collector *c)
{
	return c->nruns;
}

static void count(job_collector *c, const char *name, int64_t d)
{
	if (c->o.counters && d)
		job_counters_add(c->o.counters, JOB_CG, name, d);
}

static uint64_t key_prefix(const char *k, size_t kl)
{
	uint64_t p = 0;
	for (size_t i = 0; i < 8; i++)
		p = p << 8 | (i < kl ? (uint8_t)k[i] : 0);
	return p;
}

static void arena_reserve(job_collector *c, size_t n)
{
	if (c->used + n <= c->cap)
		return;
	while (c->used + n > c->cap)
		c->cap *= 2;
	c->arena = xrealloc(c->arena, c->cap);
}

/* qsort comparators see the collector through this (one thread per
 * collector, and qsort has no context argument in C11). */
static __thread const job_collector *sort_ctx;

static int cmp_gent(const void *a, const void *b)
{
	const struct gent *x = a, *y = b;
	if (x->part != y->part)
		return x->part < y->part ? -1 : 1;
	if (x->prefix != y->prefix)
		return x->prefix < y->prefix ? -1 : 1;
	if (x->klen > 8 && y->klen > 8) {
		size_t m = (x->klen < y->klen ? x->klen : y->klen) - 8;
		int r = memcmp(sort_ctx->arena + x->off + 8, sort_ctx->arena + y->off + 8, m);
		if (r)
			return r;
	}
	if (x->klen != y->klen)
		return x->klen < y->klen ? -1 : 1;
	return x->off < y->off ? -1 : x->off > y->off;
}

static int cmp_hent(const void *a, const void *b)
{
	const struct hent *x = a, *y = b;
	if (x->part != y->part)
		return x->part < y->part ? -1 : 1;
	return job_key_cmp(sort_ctx->arena + x->off, x->klen, sort_ctx->arena + y->off, y->klen);
}

/* Sorted records of the buffer, partition by partition, for writing. */
struct buf_iter {
	job_collector *c;
	size_t i, n;
	unsigned part; /* only records of this partition; UINT_MAX = all */
};

static int buf_next(void *src, const char **k, size_t *kl, const char **v, size_t *vl)
{
	struct buf_iter *it = src;
	job_collector *c = it->c;
	if (it->i >= it->n)
		return 0;
	const struct gent *e = &c->ent[it->i];
	if (it->part != UINT_MAX && e->part != it->part)
		return 0;
	it->i++;
	*k = c->arena + e->off;
	*kl = e->klen;
	*v = c->arena + e->off + e->klen;
	*vl = e->vlen;
	return 1;
}

static int add_generic(job_collector *c, const char *k, size_t kl, const char *v, size_t vl,
		       unsigned part);

/* Records the exec: combiner emits go into a second collector state. */
static int filter_emit(void *ctx, const char *k, size_t kl, const char *v, size_t vl)
{
	job_collector *dst = ctx;
	if (kl > JOB_REC_MAX || vl > JOB_REC_MAX)
		return -E2BIG;
	return add_generic(dst, k, kl, v, vl, job_partition(k, kl, dst->o.nparts));
}

/* Write the (sorted) buffer as one run per partition into sink, recording
 * each partition in idx. Sum mode writes one record per key. */
static int write_buffer(job_collector *c, job_sink *s, job_index_entry *idx, int64_t *written)
{
	int rc = 0;
	char num[24];
	size_t i = 0;
	for (unsigned p = 0; p < c->o.nparts; p++) {
		if (c->o.combine == JOB_OP_SUM) {
			for (; i < c->nkeys && c->tab[i].part == p; i++) {
				const struct hent *h = &c->tab[i];
				int n = snprintf(num, sizeof(num), "%" PRId64, h->sum);
				if ((rc = job_sink_put(s, c->arena + h->off, h->klen, num,
						       (size_t)n)))
					return rc;
				(*written)++;
			}
		} else {
			for (; i < c->nent && c->ent[i].part == p; i++) {
				const struct gent *e = &c->ent[i];
				if ((rc = job_sink_put(s, c->arena + e->off, e->klen,
						       c->arena + e->off + e->klen, e->vlen)))
					return rc;
				(*written)++;
			}
		}
		job_sink_segment(s, &idx[p].offset, &idx[p].length, &idx[p].records,
				 &idx[p].checksum);
	}
	return 0;
}

/* Sort the buffer; in sum mode first compact the table's entries to its
 * front (the table is rebuilt empty after the write). With an exec:
 * combiner, run it over the sorted records and sort what it emits. */
static int sort_buffer(job_collector *c)
{
	sort_ctx = c;
	if (c->o.combine == JOB_OP_SUM) {
		size_t n = 0;
		for (size_t i = 0; i < c->tabcap; i++)
			if (c->tab[i].hash)
				c->tab[n++] = c->tab[i];
		c->nkeys = n;
		if (n > 1)
			qsort(c->tab, n, sizeof(*c->tab), cmp_hent);
		return 0;
	}
	if (c->nent > 1)
		qsort(c->ent, c->nent, sizeof(*c->ent), cmp_gent);
	if (c->o.combine != JOB_OP_EXEC || !c->o.filter || c->nent == 0)
		return 0;

	job_collector_opts o = c->o;
	o.combine = JOB_OP_NONE;
	job_collector *out = xcalloc(1, sizeof(*out));
	out->o = o;
	out->cap = 1u << 16;
	out->arena = xmalloc(out->cap);
	struct buf_iter it = {c, 0, c->nent, UINT_MAX};
	count(c, "combine input records", (int64_t)c->nent);
	int rc = c->o.filter(c->o.filter_ctx, buf_next, &it, filter_emit, out);
	if (rc) {
		if (!c->err[0])
			snprintf(c->err, sizeof(c->err), "combiner failed: %s", strerror(-rc));
		free(out->arena);
		free(out->ent);
		free(out);
		return rc;
	}
	count(c, "combine output records", (int64_t)out->nent);
	/* swap the combined records in */
	free(c->arena);
	free(c->ent);
	c->arena = out->arena;
	c->used = out->used;
	c->cap = out->cap;
	c->ent = out->ent;
	c->nent = out->nent;
	c->entcap = out->entcap;
	free(out);
	sort_ctx = c;
	if (c->nent > 1)
		qsort(c->ent, c->nent, sizeof(*c->ent), cmp_gent);
	return 0;
}

static void reset_buffer(job_collector *c)
{
	c->used = 0;
	c->nent = 0;
	if (c->tab) {
		/* back to a small table, or its size alone would force spills */
		free(c->tab);
		c->tabcap = 1024;
		c->tab = xcalloc(c->tabcap, sizeof(*c->tab));
		c->nkeys = 0;
	}
}

static int spill(job_collector *c)
{
	int rc = sort_buffer(c);
	if (rc)
		return rc;
	struct run r;
	r.path = xasprintf("%s/spill-%u", c->o.dir, c->nruns);
	r.idx = xcalloc(c->o.nparts, sizeof(*r.idx));
	int fd = open(r.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		snprintf(c->err, sizeof(c->err), "cannot create spill '%s': %s", r.path,
			 strerror(-rc));
		free(r.path);
		free(r.idx);
		return rc;
	}
	job_sink s;
	job_sink_init(&s, fd);
	int64_t written = 0;
	rc = write_buffer(c, &s, r.idx, &written);
	int rc2 = job_sink_release(&s);
	if (close(fd) && !rc2)
		rc2 = -errno;
	if (!rc)
		rc = rc2;
	c->runs = xrealloc(c->runs, (c->nruns + 1) * sizeof(*c->runs));
	c->runs[c->nruns++] = r; /* kept even on error so that free removes it */
	if (rc) {
		snprintf(c->err, sizeof(c->err), "cannot write spill '%s': %s", r.path,
			 strerror(-rc));
		return rc;
	}
	count(c, "spilled records", written);
	reset_buffer(c);
	return 0;
}

static int add_generic(job_collector *c, const char *k, size_t kl, const char *v, size_t vl,
		       unsigned part)
{
	if (c->nent == c->entcap) {
		c->entcap = c->entcap ? c->entcap * 2 : 4096;
		c->ent = xrealloc(c->ent, c->entcap * sizeof(*c->ent));
	}
	arena_reserve(c, kl + vl);
	struct gent *e = &c->ent[c->nent++];
	e->prefix = key_prefix(k, kl);
	e->off = c->used;
	e->klen = (uint32_t)kl;
	e->vlen = (uint32_t)vl;
	e->part = part;
	e->pad = 0;
	memcpy(c->arena + c->used, k, kl);
	memcpy(c->arena + c->used + kl, v, vl);
	c->used += kl + vl;
	return 0;
}

static void table_grow(job_collector *c)
{
	size_t ncap = c->tabcap * 2;
	struct hent *nt = xcalloc(ncap, sizeof(*nt));
	for (size_t i = 0; i < c->tabcap; i++) {
		if (!c->tab[i].hash)
			continue;
		size_t j = c->tab[i].hash & (ncap - 1);
		while (nt[j].hash)
			j = (j + 1) & (ncap - 1);
		nt[j] = c->tab[i];
	}
	free(c->tab);
	c->tab = nt;
	c->tabcap = ncap;
}

static int add_sum(job_collector *c, const char *k, size_t kl, const char *v, size_t vl)
{
	int64_t x;
	if (!job_parse_i64(v, vl, &x)) {
		char b1[48], b2[48];
		snprintf(c->err, sizeof(c->err),
			 "combine sum: value '%s' of key '%s' is not an integer",
			 shown(v, vl, b1, sizeof(b1)), shown(k, kl, b2, sizeof(b2)));
		return -EINVAL;
	}
	uint64_t h = cdl_xxh3(k, kl);
	unsigned part = c->o.nparts <= 1 ? 0 : (unsigned)(h % c->o.nparts);
	if (h == 0)
		h = 1;
	size_t j = h & (c->tabcap - 1);
	for (;; j = (j + 1) & (c->tabcap - 1)) {
		struct hent *e = &c->tab[j];
		if (!e->hash)
			break;
		if (e->hash == h && e->klen == kl && memcmp(c->arena + e->off, k, kl) == 0) {
			if (__builtin_add_overflow(e->sum, x, &e->sum)) {
				char b2[48];
				snprintf(c->err, sizeof(c->err),
					 "combine sum: overflow adding values of key '%s'",
					 shown(k, kl, b2, sizeof(b2)));
				return -EINVAL;
			}
			return 0;
		}
	}
	arena_reserve(c, kl);
	struct hent *e = &c->tab[j];
	e->hash = h;
	e->off = c->used;
	e->klen = (uint32_t)kl;
	e->part = part;
	e->sum = x;
	memcpy(c->arena + c->used, k, kl);
	c->used += kl;
	c->nkeys++;
	c->combine_out++;
	if (c->nkeys * 2 > c->tabcap)
		table_grow(c);
	return 0;
}

int job_collector_add(job_collector *c, const char *key, size_t klen, const char *val, size_t vlen)
{
	if (klen > JOB_REC_MAX || vlen > JOB_REC_MAX) {
		snprintf(c->err, sizeof(c->err), "map output record longer than %u bytes",
			 JOB_REC_MAX);
		return -E2BIG;
	}
	int rc;
	if (c->o.combine == JOB_OP_SUM) {
		rc = add_sum(c, key, klen, val, vlen);
		c->combine_in++;
	} else {
		rc = add_generic(c, key, klen, val, vlen, job_partition(key, klen, c->o.nparts));
	}
	if (rc)
		return rc;
	if (mem_used(c) >= c->o.mem_limit)
		return spill(c);
	return 0;
}

/* Merge the runs partition by partition into the final file, applying the
 * built-in combiner again (sum) so that each key appears once per run. */
struct mapped {
	void *p;
	size_t len;
};

struct merge_emit {
	job_sink *s;
	int64_t written;
};

static int sink_emit(void *ctx, const char *k, size_t kl, const char *v, size_t vl)
{
	struct merge_emit *me = ctx;
	me->written++;
	return job_sink_put(me->s, k, kl, v, vl);
}

static int merger_next(void *src, const char **k, size_t *kl, const char **v, size_t *vl)
{
	return job_merger_next(src, k, kl, v, vl);
}

static int merge_runs(job_collector *c, job_sink *s, job_index_entry *idx)
{
	struct mapped *mp = xcalloc(c->nruns, sizeof(*mp));
	job_cursor *cur = xcalloc(c->nruns, sizeof(*cur));
	int rc = 0;
	for (unsigned i = 0; i < c->nruns; i++) {
		int fd = open(c->runs[i].path, O_RDONLY | O_CLOEXEC);
		struct stat st;
		if (fd < 0 || fstat(fd, &st)) {
			rc = -errno;
			if (fd >= 0)
				close(fd);
			snprintf(c->err, sizeof(c->err), "cannot open spill '%s': %s",
				 c->runs[i].path, strerror(-rc));
			goto out;
		}
		mp[i].len = (size_t)st.st_size;
		if (mp[i].len) {
			mp[i].p = mmap(NULL, mp[i].len, PROT_READ, MAP_PRIVATE, fd, 0);
			if (mp[i].p == MAP_FAILED) {
				rc = -errno;
				mp[i].p = NULL;
				close(fd);
				snprintf(c->err, sizeof(c->err), "cannot map spill '%s': %s",
					 c->runs[i].path, strerror(-rc));
				goto out;
			}
			madvise(mp[i].p, mp[i].len, MADV_SEQUENTIAL);
		}
		close(fd);
	}
	for (unsigned p = 0; p < c->o.nparts; p++) {
		for (unsigned i = 0; i < c->nruns; i++) {
			const job_index_entry *e = &c->runs[i].idx[p];
			job_cursor_init(&cur[i], (const char *)mp[i].p + e->offset, e->length);
		}
		job_merger *m = job_merger_new(cur, c->nruns);
		struct merge_emit me = {s, 0};
		if (c->o.combine == JOB_OP_SUM) {
			char err[200] = "";
			rc = job_reduce_builtin(JOB_OP_SUM, merger_next, m, sink_emit, &me, NULL,
						err, sizeof(err));
			if (rc)
				snprintf(c->err, sizeof(c->err), "merging spills: %s", err);
		} else {
			const char *k, *v;
			size_t kl, vl;
			int r;
			while ((r = job_merger_next(m, &k, &kl, &v, &vl)) > 0)
				if ((rc = sink_emit(&me, k, kl, v, vl)))
					break;
			if (r < 0 && !rc)
				rc = r;
			if (rc)
				snprintf(c->err, sizeof(c->err), "merging spills: %s",
					 strerror(-rc));
		}
		job_merger_free(m);
		if (rc)
			goto out;
		job_sink_segment(s, &idx[p].offset, &idx[p].length, &idx[p].records,
				 &idx[p].checksum);
	}
out:
	for (unsigned i = 0; i < c->nruns; i++)
		if (mp[i].p)
			munmap(mp[i].p, mp[i].len);
	free(mp);
	free(cur);
	return rc;
}

int job_collector_finish(job_collector *c, const char *out_path, const char *index_path)
{
	int rc = 0;
	if (c->nruns > 0 && (c->nent > 0 || c->used > 0)) {
		if ((rc = spill(c)))
			return rc;
	}
	job_index_entry *idx = xcalloc(c->o.nparts, sizeof(*idx));
	int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		snprintf(c->err, sizeof(c->err), "cannot create '%s': %s", out_path, strerror(-rc));
		free(idx);
		return rc;
	}
	job_sink s;
	job_sink_init(&s, fd);
	int64_t written = 0;
	if (c->nruns == 0) {
		rc = sort_buffer(c);
		if (!rc)
			rc = write_buffer(c, &s, idx, &written);
		if (rc && !c->err[0])
			snprintf(c->err, sizeof(c->err), "cannot write '%s': %s", out_path,
				 strerror(-rc));
	} else {
		rc = merge_runs(c, &s, idx);
	}
	uint64_t bytes = s.off;
	int rc2 = job_sink_release(&s);
	if (close(fd) && !rc2)
		rc2 = -errno;
	if (!rc && rc2) {
		rc = rc2;
		snprintf(c->err, sizeof(c->err), "cannot write '%s': %s", out_path, strerror(-rc));
	}
	if (!rc) {
		rc = job_index_write(index_path, idx, c->o.nparts);
		if (rc)
			snprintf(c->err, sizeof(c->err), "cannot write '%s': %s", index_path,
				 strerror(-rc));
	}
	if (!rc) {
		uint64_t recs = 0;
		for (unsigned p = 0; p < c->o.nparts; p++)
			recs += idx[p].records;
		count(c, "map output materialized bytes", (int64_t)bytes);
		count(c, "combine input records", c->combine_in);
		count(c, "combine output records", c->combine_out);
		count(c, "spilled records", (int64_t)recs);
	}
	free(idx);
	return rc;
}

void job_collector_free(job_collector *c)
{
	if (!c)
		return;
	for (unsigned i = 0; i < c->nruns; i++) {
		unlink(c->runs[i].path);
		free(c->runs[i].path);
		free(c->runs[i].idx);
	}
	free(c->runs);
	free(c->arena);
	free(c->ent);
	free(c->tab);
	free(c);
}
