/* Unit test of jobs/job_split: for random files and every split size, the
 * bytes streamed for the splits, concatenated, are the file exactly once;
 * a line crossing a split boundary goes whole to the split it starts in. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job_split.h"

static int failures;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
			failures++;                                                                \
		}                                                                                  \
	} while (0)

struct mem {
	const char *data;
	size_t len;
	int fail_at; /* fail the nth read (0 = never) */
	int reads;
};

static ssize_t mem_pread(void *ctx, void *buf, size_t n, uint64_t off)
{
	struct mem *m = ctx;
	if (m->fail_at && ++m->reads >= m->fail_at)
		return -EIO;
	if (off >= m->len)
		return 0;
	if (n > m->len - off)
		n = m->len - (size_t)off;
	memcpy(buf, m->data + off, n);
	return (ssize_t)n;
}

struct acc {
	char *buf;
	size_t len, cap;
};

static int acc_out(void *ctx, const void *p, size_t n)
{
	struct acc *a = ctx;
	if (n == 0)
		return 0;
	if (a->len + n > a->cap) {
		a->cap = (a->len + n) * 2;
		a->buf = realloc(a->buf, a->cap);
	}
	memcpy(a->buf + a->len, p, n);
	a->len += n;
	return 0;
}

static unsigned seed = 42;
static unsigned rnd(unsigned n)
{
	seed = seed * 1103515245u + 12345u;
	return (seed >> 8) % n;
}

static void check_file(const char *data, size_t len, size_t split, size_t bufsize)
{
	struct mem m = {data, len, 0, 0};
	struct acc all = {0};
	uint64_t records = 0;
	for (size_t off = 0; off < len; off += split) {
		size_t l = len - off < split ? len - off : split;
		struct acc one = {0};
		job_split_stats st;
		int rc = job_split_stream(mem_pread, &m, off, l, bufsize, acc_out, &one, &st);
		CHECK(rc == 0);
		CHECK(st.bytes == one.len);
		if (one.len) {
			/* starts a line, and at or after the split's start */
			CHECK(st.first >= off && st.first < off + l);
			CHECK(st.first == 0 || data[st.first - 1] == '\n');
			/* ends a line (or the file) at or after the split's end-1 */
			uint64_t last = st.first + one.len;
			CHECK(last >= off + l || last == len);
			CHECK(last == len || data[last - 1] == '\n');
			CHECK(memcmp(one.buf, data + st.first, one.len) == 0);
		}
		records += st.records;
		acc_out(&all, one.buf, one.len);
		free(one.buf);
	}
	CHECK(all.len == len && (len == 0 || memcmp(all.buf, data, len) == 0));
	uint64_t lines = 0;
	for (size_t i = 0; i < len; i++)
		lines += data[i] == '\n';
	if (len && data[len - 1] != '\n')
		lines++;
	CHECK(records == lines);
	free(all.buf);
}

int main(void)
{
	/* hand cases: boundaries exactly at line ends and starts */
	const char *t = "aaa\nbbb\nccc\n";
	for (size_t s = 1; s <= 13; s++)
		for (size_t b = 1; b <= 5; b++)
			check_file(t, strlen(t), s, b);
	check_file("no newline at all", 17, 4, 3);
	check_file("\n\n\n\n", 4, 1, 1);
	check_file("x", 1, 1, 1);

	/* a line crossing a split boundary belongs to the split it starts in */
	struct mem m = {t, strlen(t), 0, 0};
	struct acc a = {0};
	job_split_stats st;
	CHECK(job_split_stream(mem_pread, &m, 0, 5, 2, acc_out, &a, &st) == 0);
	CHECK(a.len == 8 && memcmp(a.buf, "aaa\nbbb\n", 8) == 0 && st.records == 2);
	a.len = 0;
	CHECK(job_split_stream(mem_pread, &m, 5, 5, 2, acc_out, &a, &st) == 0);
	CHECK(a.len == 4 && memcmp(a.buf, "ccc\n", 4) == 0);
	a.len = 0;
	/* split starting right after a newline owns that line */
	CHECK(job_split_stream(mem_pread, &m, 4, 1, 64, acc_out, &a, &st) == 0);
	CHECK(a.len == 4 && memcmp(a.buf, "bbb\n", 4) == 0);
	free(a.buf);

	/* read errors come back */
	m.fail_at = 1;
	a = (struct acc){0};
	CHECK(job_split_stream(mem_pread, &m, 0, 5, 2, acc_out, &a, &st) == -EIO);
	free(a.buf);

	/* random files with long and empty lines, all split and buffer sizes */
	for (int iter = 0; iter < 200; iter++) {
		size_t len = 1 + rnd(3000);
		char *d = malloc(len);
		for (size_t i = 0; i < len; i++)
			d[i] = rnd(iter % 3 == 0 ? 4 : 40) == 0 ? '\n' : (char)('a' + rnd(26));
		size_t split = 1 + rnd(len + 10);
		check_file(d, len, split, 1 + rnd(100));
		check_file(d, len, 1 + rnd(64), 4096);
		free(d);
	}
	if (failures) {
		fprintf(stderr, "test_job_split: %d failures\n", failures);
		return 1;
	}
	printf("test_job_split: ok\n");
	return 0;
}
