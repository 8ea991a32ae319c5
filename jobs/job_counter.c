/* job_counter: named counters; see job_counter.h. */
#include "job_counter.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cdl_util.h"

void job_counters_init(job_counters *c)
{
	memset(c, 0, sizeof(*c));
}

void job_counters_release(job_counters *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i].group);
		free(c->v[i].name);
	}
	free(c->v);
	memset(c, 0, sizeof(*c));
}

static bool name_ok(const char *s, size_t n)
{
	if (n == 0 || n > JOB_COUNTER_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

static int add_n(job_counters *c, const char *g, size_t gl, const char *nm, size_t nl, int64_t d)
{
	if (!name_ok(g, gl) || !name_ok(nm, nl))
		return -EINVAL;
	for (size_t i = 0; i < c->n; i++) {
		job_counter *k = &c->v[i];
		if (strlen(k->group) == gl && strlen(k->name) == nl && !memcmp(k->group, g, gl) &&
		    !memcmp(k->name, nm, nl)) {
			k->value += d;
			return 0;
		}
	}
	if (c->n >= JOB_COUNTER_MAX)
		return -ENOSPC;
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 16;
		c->v = xrealloc(c->v, c->cap * sizeof(*c->v));
	}
	c->v[c->n].group = xstrndup(g, gl);
	c->v[c->n].name = xstrndup(nm, nl);
	c->v[c->n].value = d;
	c->n++;
	return 0;
}

int job_counters_add(job_counters *c, const char *group, const char *name, int64_t delta)
{
	return add_n(c, group, strlen(group), name, strlen(name), delta);
}

int64_t job_counters_get(const job_counters *c, const char *group, const char *name)
{
	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(c->v[i].group, group) && !strcmp(c->v[i].name, name))
			return c->v[i].value;
	return 0;
}

void job_counters_merge(job_counters *dst, const job_counters *src)
{
	for (size_t i = 0; i < src->n; i++)
		job_counters_add(dst, src->v[i].group, src->v[i].name, src->v[i].value);
}

static int cmp_counter(const void *a, const void *b)
{
	const job_counter *x = a, *y = b;
	int r = strcmp(x->group, y->group);
	return r ? r : strcmp(x->name, y->name);
}

void job_counters_sort(job_counters *c)
{
	if (c->n > 1)
		qsort(c->v, c->n, sizeof(*c->v), cmp_counter);
}

int job_counters_parse_reporter(job_counters *c, const char *line, size_t len)
{
	static const char pfx[] = "reporter:counter:";
	size_t pl = sizeof(pfx) - 1;
	if (len < pl || memcmp(line, pfx, pl) != 0)
		return 0;
	const char *p = line + pl, *end = line + len;
	const char *c1 = memchr(p, ',', (size_t)(end - p));
	if (!c1)
		return -EINVAL;
	const char *c2 = memchr(c1 + 1, ',', (size_t)(end - c1 - 1));
	if (!c2)
		return -EINVAL;
	/* N: an optional '-' and 1..18 digits */
	const char *d = c2 + 1;
	bool neg = d < end && *d == '-';
	if (neg)
		d++;
	if (d == end || end - d > 18)
		return -EINVAL;
	int64_t v = 0;
	for (const char *q = d; q < end; q++) {
		if (*q < '0' || *q > '9')
			return -EINVAL;
		v = v * 10 + (*q - '0');
	}
	int rc = add_n(c, p, (size_t)(c1 - p), c1 + 1, (size_t)(c2 - c1 - 1), neg ? -v : v);
	return rc ? rc : 1;
}
