/* Unit test of jobs/job_sort: partitioning, the collector (plain, with the
 * sum combiner, with an external combiner) through many spills and the
 * final merge, the record format against malformed bytes, the k-way merge
 * and the built-in reduces. Checked against a simple model. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "job_sort.h"

static int failures;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond) && failures++ < 20)                                                    \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
	} while (0)

static unsigned seed = 7;
static unsigned rnd(unsigned n)
{
	seed = seed * 1103515245u + 12345u;
	return (seed >> 8) % n;
}

static char dir[256];

static char *slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st))
		return NULL;
	char *b = malloc((size_t)st.st_size + 1);
	ssize_t k = read(fd, b, (size_t)st.st_size);
	close(fd);
	*len = k < 0 ? 0 : (size_t)k;
	return b;
}

/* A key from a vocabulary with shared prefixes, odd bytes and lengths
 * around the 8-byte sort prefix. */
static void make_key(char *k, size_t *kl, unsigned v)
{
	static const char *const stems[] = {
	    "",		"a",	     "ab",
	    "abcdefgh", "abcdefghi", "abcdefgh\0",
	    "zz",	"\xff\xfe",  "longer-key-with-a-common-stem-"};
	static const size_t stem_len[] = {0, 1, 2, 8, 9, 9, 2, 2, 30};
	unsigned s = v % 9;
	memcpy(k, stems[s], stem_len[s]);
	size_t n = stem_len[s];
	if (v >= 9)
		n += (size_t)sprintf(k + n, "%u", v / 9);
	*kl = n;
}

struct rec {
	char k[64];
	size_t kl;
	int64_t v;
	unsigned seq;
};

static int cmp_model(const void *a, const void *b)
{
	const struct rec *x = a, *y = b;
	int r = job_key_cmp(x->k, x->kl, y->k, y->kl);
	if (r)
		return r;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Test external combiner: sums each group like `sum` but emits in
 * reverse key order, to check the collector sorts what it gets back. */
struct frec {
	char *k;
	size_t kl;
	int64_t v;
};
static int filter_calls;
static int rev_sum_filter(void *fctx, job_next_fn next, void *src, job_emit_fn emit, void *ectx)
{
	(void)fctx;
	filter_calls++;
	struct frec *out = NULL;
	size_t n = 0;
	const char *k, *v;
	size_t kl, vl;
	int r;
	while ((r = next(src, &k, &kl, &v, &vl)) > 0) {
		int64_t x;
		if (!job_parse_i64(v, vl, &x))
			return -EINVAL;
		if (n && job_key_cmp(out[n - 1].k, out[n - 1].kl, k, kl) == 0) {
			out[n - 1].v += x;
			continue;
		}
		out = realloc(out, (n + 1) * sizeof(*out));
		out[n].k = malloc(kl ? kl : 1);
		memcpy(out[n].k, k, kl);
		out[n].kl = kl;
		out[n].v = x;
		n++;
	}
	int rc = r;
	for (size_t i = n; i-- > 0;) {
		char num[24];
		int m = snprintf(num, sizeof(num), "%" PRId64, out[i].v);
		if (!rc)
			rc = emit(ectx, out[i].k, out[i].kl, num, (size_t)m);
		free(out[i].k);
	}
	free(out);
	return rc;
}

/* Run one collector configuration over nrec random records and check the
 * output file against the model. */
static void run_collector(enum job_op_kind combine, unsigned nparts, size_t nrec, size_t mem,
			  unsigned vocab, bool want_spills)
{
	struct rec *model = malloc((nrec ? nrec : 1) * sizeof(*model));
	int before = failures;
	job_counters cnt;
	job_counters_init(&cnt);
	job_collector_opts o = {dir, nparts, mem, combine, NULL, NULL, &cnt};
	if (combine == JOB_OP_EXEC)
		o.filter = rev_sum_filter;
	filter_calls = 0;
	job_collector *c = job_collector_new(&o);
	for (size_t i = 0; i < nrec; i++) {
		struct rec *r = &model[i];
		make_key(r->k, &r->kl, rnd(vocab));
		r->v = (int64_t)rnd(1000) - 100;
		r->seq = (unsigned)i;
		char val[24];
		int n = snprintf(val, sizeof(val), "%" PRId64, r->v);
		/* plain mode: make the value carry the sequence, to check order */
		if (combine == JOB_OP_NONE || combine == JOB_OP_IDENTITY)
			n = snprintf(val, sizeof(val), "%u", r->seq);
		CHECK(job_collector_add(c, r->k, r->kl, val, (size_t)n) == 0);
	}
	char out[300], idx[300];
	snprintf(out, sizeof(out), "%s/file.out", dir);
	snprintf(idx, sizeof(idx), "%s/file.index", dir);
	CHECK(job_collector_finish(c, out, idx) == 0);
	if (want_spills)
		CHECK(job_collector_spills(c) > 1);
	if (combine == JOB_OP_EXEC)
		CHECK(filter_calls >= 1);
	job_collector_free(c);

	qsort(model, nrec, sizeof(*model), cmp_model);
	size_t flen;
	char *f = slurp(out, &flen);
	uint64_t total = 0, expect_off = 0;
	/* Per partition the output must be the model's records of that
	 * partition, in order (plain) or summed per key (combined). */
	for (unsigned p = 0; p < nparts; p++) {
		job_index_entry e;
		CHECK(job_index_read(idx, p, &e) == 0);
		CHECK(e.offset == expect_off);
		expect_off += e.length;
		CHECK(e.offset + e.length <= flen);
		job_cursor cur;
		job_cursor_init(&cur, f + e.offset, e.length);
		size_t m = 0;
		uint64_t recs = 0;
		while (m < nrec && job_partition(model[m].k, model[m].kl, nparts) != p)
			m++;
		int r = job_cursor_next(&cur);
		while (r > 0) {
			recs++;
			CHECK(job_partition(cur.key, cur.klen, nparts) == p);
			while (m < nrec && job_partition(model[m].k, model[m].kl, nparts) != p)
				m++;
			if (m >= nrec) {
				CHECK(!"more output than input");
				break;
			}
			CHECK(job_key_cmp(cur.key, cur.klen, model[m].k, model[m].kl) == 0);
			if (combine == JOB_OP_NONE || combine == JOB_OP_IDENTITY) {
				char want[24];
				int n = snprintf(want, sizeof(want), "%u", model[m].seq);
				CHECK(cur.vlen == (size_t)n && !memcmp(cur.val, want, (size_t)n));
				m++;
				r = job_cursor_next(&cur);
				continue;
			}
			/* combined: the records of one key (one per spill for an
			 * external combiner) add up to the model's sum */
			int64_t sum = 0, got = 0;
			size_t k0 = m;
			while (m < nrec &&
			       job_key_cmp(model[m].k, model[m].kl, model[k0].k, model[k0].kl) == 0)
				sum += model[m++].v;
			const char *gk = cur.key;
			size_t gkl = cur.klen;
			for (;;) {
				int64_t x;
				CHECK(job_parse_i64(cur.val, cur.vlen, &x));
				got += x;
				r = job_cursor_next(&cur);
				if (r <= 0 || job_key_cmp(cur.key, cur.klen, gk, gkl) != 0)
					break;
				recs++;
				if (combine == JOB_OP_SUM)
					CHECK(!"sum combiner left a key twice");
			}
			CHECK(got == sum);
		}
		CHECK(r == 0);
		while (m < nrec && job_partition(model[m].k, model[m].kl, nparts) != p)
			m++;
		CHECK(m == nrec); /* every model record of p was matched */
		CHECK(recs == e.records);
		total += recs;
	}
	CHECK(expect_off == flen);
	if (combine == JOB_OP_NONE || combine == JOB_OP_IDENTITY)
		CHECK(total == nrec);
	CHECK(job_counters_get(&cnt, JOB_CG, "map output materialized bytes") == (int64_t)flen);
	free(f);
	free(model);
	job_counters_release(&cnt);
	/* spill files are gone */
	char sp[300];
	snprintf(sp, sizeof(sp), "%s/spill-0", dir);
	CHECK(access(sp, F_OK) != 0);
	unlink(out);
	unlink(idx);
	if (failures != before)
		fprintf(stderr, "... in collector combine=%s parts=%u records=%zu mem=%zu\n",
			job_op_name(combine), nparts, nrec, mem);
}

static void test_partition(void)
{
	unsigned hist[7] = {0};
	char k[32];
	for (unsigned i = 0; i < 70000; i++) {
		int n = snprintf(k, sizeof(k), "word%u", i);
		unsigned p = job_partition(k, (size_t)n, 7);
		CHECK(p < 7);
		CHECK(p == job_partition(k, (size_t)n, 7));
		hist[p]++;
	}
	for (int i = 0; i < 7; i++)
		CHECK(hist[i] > 9000 && hist[i] < 11000);
	CHECK(job_partition("x", 1, 1) == 0 && job_partition("x", 1, 0) == 0);
}

static void test_cursor_garbage(void)
{
	/* a varint running past the end, a length past the end, an over-long
	 * varint, and lengths over the cap are all -EBADMSG */
	static const unsigned char bad1[] = {0x80};
	static const unsigned char bad2[] = {0x05, 0x00, 'a'};
	static const unsigned char bad3[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x00};
	static const unsigned char bad4[] = {0x81, 0x80, 0x80, 0x40, 0x00}; /* 128 MiB+1 */
	static const unsigned char good[] = {0x01, 0x02, 'k', 'v', 'w', 0x00, 0x00};
	const struct {
		const unsigned char *p;
		size_t n;
	} bads[] = {
	    {bad1, sizeof(bad1)}, {bad2, sizeof(bad2)}, {bad3, sizeof(bad3)}, {bad4, sizeof(bad4)}};
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		job_cursor c;
		job_cursor_init(&c, bads[i].p, bads[i].n);
		CHECK(job_cursor_next(&c) == -EBADMSG);
	}
	job_cursor c;
	job_cursor_init(&c, good, sizeof(good));
	CHECK(job_cursor_next(&c) == 1 && c.klen == 1 && c.vlen == 2 && !memcmp(c.val, "vw", 2));
	CHECK(job_cursor_next(&c) == 1 && c.klen == 0 && c.vlen == 0);
	CHECK(job_cursor_next(&c) == 0);
	/* random bytes never read out of bounds (run under ASan) */
	for (int it = 0; it < 2000; it++) {
		unsigned char buf[64];
		size_t n = rnd(sizeof(buf));
		for (size_t i = 0; i < n; i++)
			buf[i] = (unsigned char)(rnd(3) ? rnd(8) : rnd(256));
		unsigned char *copy = malloc(n ? n : 1);
		memcpy(copy, buf, n);
		job_cursor_init(&c, copy, n);
		int r;
		while ((r = job_cursor_next(&c)) > 0)
			CHECK((const unsigned char *)c.val + c.vlen <= copy + n);
		CHECK(r == 0 || r == -EBADMSG);
		free(copy);
	}
}

struct strbuf {
	char *p;
	size_t len, cap;
};
static int text_emit(void *ctx, const char *k, size_t kl, const char *v, size_t vl)
{
	struct strbuf *s = ctx;
	size_t need = s->len + kl + vl + 2;
	if (need > s->cap) {
		s->cap = need * 2;
		s->p = realloc(s->p, s->cap);
	}
	memcpy(s->p + s->len, k, kl);
	s->len += kl;
	s->p[s->len++] = '\t';
	memcpy(s->p + s->len, v, vl);
	s->len += vl;
	s->p[s->len++] = '\n';
	return 0;
}
static int merger_next(void *src, const char **k, size_t *kl, const char **v, size_t *vl)
{
	return job_merger_next(src, k, kl, v, vl);
}

/* Encode records into memory through a sink on a pipe-less temp file. */
static char *encode(const char *const *kv, size_t n, size_t *len)
{
	char path[300];
	snprintf(path, sizeof(path), "%s/enc", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	job_sink s;
	job_sink_init(&s, fd);
	for (size_t i = 0; i < n; i++)
		CHECK(job_sink_put(&s, kv[2 * i], strlen(kv[2 * i]), kv[2 * i + 1],
				   strlen(kv[2 * i + 1])) == 0);
	CHECK(job_sink_release(&s) == 0);
	close(fd);
	char *b = slurp(path, len);
	unlink(path);
	return b;
}

static void test_merge_reduce(void)
{
	static const char *const r1[] = {"a", "1", "b", "2", "b", "3", "d", "x"};
	static const char *const r2[] = {"a", "10", "c", "5", "d", "y"};
	static const char *const r3[] = {"b", "100"};
	size_t l1, l2, l3;
	char *b1 = encode(r1, 4, &l1), *b2 = encode(r2, 3, &l2), *b3 = encode(r3, 1, &l3);
	job_cursor cur[4];

	/* identity keeps ties in run order */
	job_cursor_init(&cur[0], b1, l1);
	job_cursor_init(&cur[1], b2, l2);
	job_cursor_init(&cur[2], b3, l3);
	job_cursor_init(&cur[3], "", 0);
	job_merger *m = job_merger_new(cur, 4);
	struct strbuf out = {0};
	char err[256] = "";
	job_counters cnt;
	job_counters_init(&cnt);
	CHECK(job_reduce_builtin(JOB_OP_IDENTITY, merger_next, m, text_emit, &out, &cnt, err,
				 sizeof(err)) == 0);
	const char *want = "a\t1\na\t10\nb\t2\nb\t3\nb\t100\nc\t5\nd\tx\nd\ty\n";
	CHECK(out.len == strlen(want) && !memcmp(out.p, want, out.len));
	CHECK(job_counters_get(&cnt, JOB_CG, "reduce input groups") == 4);
	CHECK(job_counters_get(&cnt, JOB_CG, "reduce input records") == 8);
	job_merger_free(m);

	/* count */
	job_cursor_init(&cur[0], b1, l1);
	job_cursor_init(&cur[1], b2, l2);
	job_cursor_init(&cur[2], b3, l3);
	m = job_merger_new(cur, 3);
	out.len = 0;
	CHECK(job_reduce_builtin(JOB_OP_COUNT, merger_next, m, text_emit, &out, NULL, err,
				 sizeof(err)) == 0);
	want = "a\t2\nb\t3\nc\t1\nd\t2\n";
	CHECK(out.len == strlen(want) && !memcmp(out.p, want, out.len));
	job_merger_free(m);

	/* sum over integers; 'x' is not one and is named in the error */
	job_cursor_init(&cur[0], b1, l1);
	job_cursor_init(&cur[1], b2, l2);
	job_cursor_init(&cur[2], b3, l3);
	m = job_merger_new(cur, 3);
	out.len = 0;
	CHECK(job_reduce_builtin(JOB_OP_SUM, merger_next, m, text_emit, &out, NULL, err,
				 sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "'x'") && strstr(err, "'d'"));
	want = "a\t11\nb\t105\nc\t5\n";
	CHECK(out.len == strlen(want) && !memcmp(out.p, want, out.len));
	job_merger_free(m);

	/* a corrupt run is reported, not read past */
	char *bad = malloc(l1);
	memcpy(bad, b1, l1);
	bad[0] = 0x7f;
	job_cursor_init(&cur[0], bad, l1);
	job_cursor_init(&cur[1], b2, l2);
	m = job_merger_new(cur, 2);
	out.len = 0;
	err[0] = '\0';
	CHECK(job_reduce_builtin(JOB_OP_IDENTITY, merger_next, m, text_emit, &out, NULL, err,
				 sizeof(err)) == -EBADMSG);
	job_merger_free(m);
	free(bad);

	int64_t x;
	CHECK(job_parse_i64("-9223372036854775808", 20, &x) && x == INT64_MIN);
	CHECK(!job_parse_i64("9223372036854775808", 19, &x));
	CHECK(job_parse_i64("+7", 2, &x) && x == 7);
	CHECK(!job_parse_i64("", 0, &x) && !job_parse_i64("-", 1, &x) &&
	      !job_parse_i64("1 ", 2, &x));

	free(out.p);
	free(b1);
	free(b2);
	free(b3);
	job_counters_release(&cnt);
}

static void test_counters(void)
{
	job_counters c;
	job_counters_init(&c);
	const char *l1 = "reporter:counter:My Group,lines,5";
	CHECK(job_counters_parse_reporter(&c, l1, strlen(l1)) == 1);
	CHECK(job_counters_parse_reporter(&c, l1, strlen(l1)) == 1);
	const char *l2 = "reporter:counter:g,n,-3";
	CHECK(job_counters_parse_reporter(&c, l2, strlen(l2)) == 1);
	CHECK(job_counters_get(&c, "My Group", "lines") == 10);
	CHECK(job_counters_get(&c, "g", "n") == -3);
	const char *bad[] = {"reporter:counter:g,n", "reporter:counter:g,n,x",
			     "reporter:counter:,n,1", "reporter:counter:g,n,1234567890123456789"};
	for (size_t i = 0; i < 4; i++)
		CHECK(job_counters_parse_reporter(&c, bad[i], strlen(bad[i])) == -EINVAL);
	const char *other = "Traceback (most recent call last):";
	CHECK(job_counters_parse_reporter(&c, other, strlen(other)) == 0);
	job_counters_release(&c);
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/test_job_sort.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_partition();
	test_cursor_garbage();
	test_merge_reduce();
	test_counters();
	/* in memory, one partition and several */
	run_collector(JOB_OP_NONE, 1, 1000, 1 << 20, 50, false);
	run_collector(JOB_OP_NONE, 5, 1000, 1 << 20, 50, false);
	/* many spills (64 KiB buffer), stable order across them */
	run_collector(JOB_OP_NONE, 3, 60000, 64 << 10, 500, true);
	run_collector(JOB_OP_IDENTITY, 3, 20000, 64 << 10, 500, true);
	/* sum combiner: in memory and with spills over a large vocabulary */
	run_collector(JOB_OP_SUM, 4, 5000, 1 << 20, 100, false);
	run_collector(JOB_OP_SUM, 4, 100000, 64 << 10, 20000, true);
	/* external combiner that emits out of order */
	run_collector(JOB_OP_EXEC, 2, 30000, 64 << 10, 300, true);
	/* no records at all */
	run_collector(JOB_OP_NONE, 3, 0, 1 << 20, 1, false);
	rmdir(dir);
	if (failures) {
		fprintf(stderr, "test_job_sort: %d failures\n", failures);
		return 1;
	}
	printf("test_job_sort: ok\n");
	return 0;
}
