/* job_split: see job_split.h. */
#include "job_split.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cdl_util.h"

/* Position just after the first '\n' at or after from, or -ENODATA at
 * end of file without one. */
static int64_t after_newline(job_pread_fn rd, void *rctx, uint64_t from, char *buf, size_t bufsize)
{
	uint64_t pos = from;
	for (;;) {
		ssize_t k = rd(rctx, buf, bufsize, pos);
		if (k < 0)
			return k;
		if (k == 0)
			return -ENODATA;
		const char *nl = memchr(buf, '\n', (size_t)k);
		if (nl)
			return (int64_t)(pos + (uint64_t)(nl - buf) + 1);
		pos += (uint64_t)k;
	}
}

static uint64_t count_lines(const char *p, size_t n)
{
	uint64_t c = 0;
	const char *end = p + n;
	while ((p = memchr(p, '\n', (size_t)(end - p)))) {
		c++;
		p++;
	}
	return c;
}

int job_split_stream(job_pread_fn rd, void *rctx, uint64_t offset, uint64_t length, size_t bufsize,
		     job_out_fn out, void *octx, job_split_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (length == 0 || bufsize == 0)
		return 0;
	char *buf = xmalloc(bufsize);
	uint64_t end = offset + length;
	uint64_t pos = offset;
	int rc = 0;
	bool last_nl = true;

	if (offset > 0) {
		/* The line holding byte offset-1 started in an earlier split
		 * (or ends right there); ours begin after its newline. */
		int64_t p = after_newline(rd, rctx, offset - 1, buf, bufsize);
		if (p == -ENODATA)
			goto out;
		if (p < 0) {
			rc = (int)p;
			goto out;
		}
		pos = (uint64_t)p;
	}
	if (pos >= end)
		goto out; /* one line covers the whole split: not ours */
	st->first = pos;
	for (;;) {
		ssize_t k = rd(rctx, buf, bufsize, pos);
		if (k < 0) {
			rc = (int)k;
			goto out;
		}
		if (k == 0)
			break;
		size_t n = (size_t)k;
		bool done = false;
		/* Our last line is the one holding byte end-1: stop after the
		 * first '\n' at or beyond it. */
		if (pos + n > end - 1) {
			size_t from = pos >= end - 1 ? 0 : (size_t)(end - 1 - pos);
			const char *nl = memchr(buf + from, '\n', n - from);
			if (nl) {
				n = (size_t)(nl - buf) + 1;
				done = true;
			}
		}
		st->records += count_lines(buf, n);
		last_nl = buf[n - 1] == '\n';
		st->bytes += n;
		if ((rc = out(octx, buf, n)))
			goto out;
		pos += n;
		if (done)
			break;
	}
	if (!last_nl)
		st->records++;
out:
	free(buf);
	return rc;
}
