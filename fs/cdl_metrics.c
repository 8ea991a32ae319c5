/* cdl_metrics: see cdl_metrics.h. */
#include "cdl_metrics.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cdl_log.h"
#include "cdl_util.h"

enum { T_COUNTER, T_GAUGE, T_HISTOGRAM };
static const char *const type_names[] = {"counter", "gauge", "histogram"};

#define MAX_COLLECTORS 32

struct cdl_series {
	cdl_series *next;
	cdl_metric *m;
	char *values[CDL_METRICS_LABELS];
	_Atomic uint64_t v;	   /* counter, or a gauge's double bits */
	_Atomic uint64_t sum;	   /* histogram: the double bits of the sum */
	_Atomic uint64_t *buckets; /* histogram: nb + 1 counts (the last is +Inf) */
};

struct cdl_metric {
	cdl_metric *next;
	cdl_metrics *r;
	char *name, *help;
	int type;
	int nlabels;
	char *labels[CDL_METRICS_LABELS];
	double bounds[CDL_METRICS_BUCKETS];
	size_t nb;
	cdl_series *series, *last;
	size_t nseries;
	cdl_series *other; /* the shared series past CDL_METRICS_SERIES */
};

struct cdl_metrics {
	pthread_mutex_t lock;
	cdl_metric *fams, *last;
	struct {
		cdl_metrics_collect_fn fn;
		void *arg;
	} coll[MAX_COLLECTORS];
	int ncoll;
	bool process; /* cdl_metrics_process was called */
};

const double cdl_metrics_seconds_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
					      0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
					      1,      2.5,     5,      10,    30};
const size_t cdl_metrics_seconds_nbuckets =
    sizeof(cdl_metrics_seconds_buckets) / sizeof(cdl_metrics_seconds_buckets[0]);

/* ------------------------------------------------------------- registry */

cdl_metrics *cdl_metrics_new(void)
{
	cdl_metrics *r = xcalloc(1, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	return r;
}

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static cdl_metrics *global;

static void global_init(void)
{
	global = cdl_metrics_new();
}

cdl_metrics *cdl_metrics_global(void)
{
	pthread_once(&global_once, global_init);
	return global;
}

static void series_free(cdl_series *s)
{
	for (int i = 0; i < CDL_METRICS_LABELS; i++)
		free(s->values[i]);
	free((void *)s->buckets);
	free(s);
}

void cdl_metrics_free(cdl_metrics *r)
{
	if (!r)
		return;
	cdl_metric *m = r->fams;
	while (m) {
		cdl_metric *next = m->next;
		cdl_series *s = m->series;
		while (s) {
			cdl_series *sn = s->next;
			series_free(s);
			s = sn;
		}
		if (m->other)
			series_free(m->other);
		for (int i = 0; i < m->nlabels; i++)
			free(m->labels[i]);
		free(m->name);
		free(m->help);
		free(m);
		m = next;
	}
	pthread_mutex_destroy(&r->lock);
	free(r);
}

static bool name_ok(const char *s, bool colon)
{
	if (!s || !*s)
		return false;
	for (const char *p = s; *p; p++) {
		bool alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
			     (colon && *p == ':');
		if (!alpha && !(p > s && *p >= '0' && *p <= '9'))
			return false;
	}
	return true;
}

/* Split "a,b" into m->labels; false on a bad or reserved name. */
static bool parse_labels(cdl_metric *m, const char *labels)
{
	if (!labels || !*labels)
		return true;
	const char *p = labels;
	for (;;) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (m->nlabels == CDL_METRICS_LABELS)
			return false;
		char *l = xstrndup(p, n);
		m->labels[m->nlabels++] = l;
		if (!name_ok(l, false) || !strncmp(l, "__", 2) ||
		    (m->type == T_HISTOGRAM && !strcmp(l, "le")))
			return false;
		for (int i = 0; i + 1 < m->nlabels; i++)
			if (!strcmp(m->labels[i], l))
				return false;
		if (!e)
			return true;
		p = e + 1;
	}
}

static cdl_series *series_new(cdl_metric *m)
{
	cdl_series *s = xcalloc(1, sizeof(*s));
	s->m = m;
	if (m->type == T_HISTOGRAM)
		s->buckets = xcalloc(m->nb + 1, sizeof(*s->buckets));
	/* 0.0 is all zero bits: calloc made every value 0 */
	return s;
}

static void series_append(cdl_metric *m, cdl_series *s)
{
	if (m->last)
		m->last->next = s;
	else
		m->series = s;
	m->last = s;
	m->nseries++;
}

static bool same_family(const cdl_metric *a, const cdl_metric *b)
{
	if (a->type != b->type || a->nlabels != b->nlabels || a->nb != b->nb)
		return false;
	for (int i = 0; i < a->nlabels; i++)
		if (strcmp(a->labels[i], b->labels[i]))
			return false;
	for (size_t i = 0; i < a->nb; i++)
		if (a->bounds[i] != b->bounds[i])
			return false;
	return true;
}

static void metric_free(cdl_metric *m)
{
	for (int i = 0; i < m->nlabels; i++)
		free(m->labels[i]);
	free(m->name);
	free(m->help);
	free(m);
}

static cdl_metric *family(cdl_metrics *r, int type, const char *name, const char *help,
			  const char *labels, const double *bounds, size_t nb)
{
	if (!r || !name_ok(name, true))
		return NULL;
	cdl_metric *m = xcalloc(1, sizeof(*m));
	m->r = r;
	m->type = type;
	m->name = xstrdup(name);
	m->help = xstrdup(help ? help : "");
	if (!parse_labels(m, labels)) {
		cdl_err("metric '%s': bad labels '%s'", name, labels);
		metric_free(m);
		return NULL;
	}
	if (type == T_HISTOGRAM) {
		if (nb > CDL_METRICS_BUCKETS) {
			metric_free(m);
			return NULL;
		}
		for (size_t i = 0; i < nb; i++) {
			if (!isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1])) {
				metric_free(m);
				return NULL;
			}
			m->bounds[i] = bounds[i];
		}
		m->nb = nb;
	}
	pthread_mutex_lock(&r->lock);
	for (cdl_metric *o = r->fams; o; o = o->next)
		if (!strcmp(o->name, name)) {
			pthread_mutex_unlock(&r->lock);
			bool same = same_family(o, m);
			metric_free(m);
			if (!same)
				cdl_err("metric '%s' registered twice, differently", name);
			return same ? o : NULL;
		}
	if (m->nlabels == 0)
		series_append(m, series_new(m));
	if (r->last)
		r->last->next = m;
	else
		r->fams = m;
	r->last = m;
	pthread_mutex_unlock(&r->lock);
	return m;
}

cdl_metric *cdl_metrics_counter(cdl_metrics *r, const char *name, const char *help,
				const char *labels)
{
	return family(r, T_COUNTER, name, help, labels, NULL, 0);
}

cdl_metric *cdl_metrics_gauge(cdl_metrics *r, const char *name, const char *help,
			      const char *labels)
{
	return family(r, T_GAUGE, name, help, labels, NULL, 0);
}

cdl_metric *cdl_metrics_histogram(cdl_metrics *r, const char *name, const char *help,
				  const char *labels, const double *bounds, size_t nbounds)
{
	if (!bounds) {
		bounds = cdl_metrics_seconds_buckets;
		nbounds = cdl_metrics_seconds_nbuckets;
	}
	return family(r, T_HISTOGRAM, name, help, labels, bounds, nbounds);
}

cdl_series *cdl_metric_one(cdl_metric *m)
{
	return m && m->nlabels == 0 ? m->series : NULL;
}

cdl_series *cdl_metric_at(cdl_metric *m, ...)
{
	if (!m)
		return NULL;
	if (m->nlabels == 0)
		return m->series;
	char vals[CDL_METRICS_LABELS][CDL_METRICS_VALUE_MAX + 1];
	va_list ap;
	va_start(ap, m);
	for (int i = 0; i < m->nlabels; i++) {
		const char *v = va_arg(ap, const char *);
		snprintf(vals[i], sizeof(vals[i]), "%s", v ? v : "");
	}
	va_end(ap);
	cdl_metrics *r = m->r;
	pthread_mutex_lock(&r->lock);
	cdl_series *s;
	for (s = m->series; s; s = s->next) {
		int i;
		for (i = 0; i < m->nlabels; i++)
			if (strcmp(s->values[i], vals[i]))
				break;
		if (i == m->nlabels)
			break;
	}
	if (!s && m->nseries >= CDL_METRICS_SERIES) {
		if (!m->other) {
			m->other = series_new(m);
			for (int i = 0; i < m->nlabels; i++)
				m->other->values[i] = xstrdup("other");
		}
		s = m->other;
	}
	if (!s) {
		s = series_new(m);
		for (int i = 0; i < m->nlabels; i++)
			s->values[i] = xstrdup(vals[i]);
		series_append(m, s);
	}
	pthread_mutex_unlock(&r->lock);
	return s;
}

/* ---------------------------------------------------------------- updates */

static double bits_double(uint64_t b)
{
	double d;
	memcpy(&d, &b, sizeof(d));
	return d;
}

static uint64_t double_bits(double d)
{
	uint64_t b;
	memcpy(&b, &d, sizeof(b));
	return b;
}

/* *a += d on the double kept in a's bits. */
static void atomic_add_double(_Atomic uint64_t *a, double d)
{
	uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(a, &old, double_bits(bits_double(old) + d),
						      memory_order_relaxed, memory_order_relaxed))
		;
}

void cdl_series_add(cdl_series *s, uint64_t n)
{
	if (s && s->m->type == T_COUNTER)
		atomic_fetch_add_explicit(&s->v, n, memory_order_relaxed);
}

void cdl_series_counter_set(cdl_series *s, double v)
{
	if (s && s->m->type == T_COUNTER) {
		atomic_store_explicit(&s->v, 0, memory_order_relaxed);
		atomic_store_explicit(&s->sum, double_bits(v), memory_order_relaxed);
	}
}

void cdl_series_set(cdl_series *s, double v)
{
	if (s && s->m->type == T_GAUGE)
		atomic_store_explicit(&s->v, double_bits(v), memory_order_relaxed);
}

void cdl_series_gauge_add(cdl_series *s, double d)
{
	if (s && s->m->type == T_GAUGE)
		atomic_add_double(&s->v, d);
}

void cdl_series_observe(cdl_series *s, double v)
{
	if (!s || s->m->type != T_HISTOGRAM || isnan(v))
		return;
	const cdl_metric *m = s->m;
	/* the first bucket whose bound holds v (binary search; few buckets) */
	size_t lo = 0, hi = m->nb;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (v <= m->bounds[mid])
			hi = mid;
		else
			lo = mid + 1;
	}
	atomic_fetch_add_explicit(&s->buckets[lo], 1, memory_order_relaxed);
	atomic_add_double(&s->sum, v);
}

double cdl_series_value(const cdl_series *s)
{
	if (!s)
		return 0;
	cdl_series *w = (cdl_series *)s;
	switch (s->m->type) {
	case T_COUNTER:
		return (double)atomic_load_explicit(&w->v, memory_order_relaxed) +
		       bits_double(atomic_load_explicit(&w->sum, memory_order_relaxed));
	case T_GAUGE:
		return bits_double(atomic_load_explicit(&w->v, memory_order_relaxed));
	default: {
		uint64_t n = 0;
		for (size_t i = 0; i <= s->m->nb; i++)
			n += atomic_load_explicit(&w->buckets[i], memory_order_relaxed);
		return (double)n;
	}
	}
}

double cdl_metrics_since(int64_t t0_ns)
{
	return (double)(cdl_now_ns() - t0_ns) / 1e9;
}

int cdl_metrics_collector(cdl_metrics *r, cdl_metrics_collect_fn fn, void *arg)
{
	if (!r || !fn)
		return -EINVAL;
	pthread_mutex_lock(&r->lock);
	int rc = -ENOSPC;
	if (r->ncoll < MAX_COLLECTORS) {
		r->coll[r->ncoll].fn = fn;
		r->coll[r->ncoll].arg = arg;
		r->ncoll++;
		rc = 0;
	}
	pthread_mutex_unlock(&r->lock);
	return rc;
}

/* -------------------------------------------------------------- rendering */

typedef struct buf {
	char *p;
	size_t len, cap;
} buf;

static void buf_put(buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		while (b->len + n + 1 > b->cap)
			b->cap = b->cap ? 2 * b->cap : 4096;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void buf_str(buf *b, const char *s)
{
	buf_put(b, s, strlen(s));
}

/* The length of the well-formed UTF-8 sequence at s, or 0. */
static size_t utf8_len(const unsigned char *s)
{
	if (s[0] < 0x80)
		return 1;
	size_t n;
	uint32_t c;
	if ((s[0] & 0xe0) == 0xc0)
		n = 2, c = s[0] & 0x1f;
	else if ((s[0] & 0xf0) == 0xe0)
		n = 3, c = s[0] & 0x0f;
	else if ((s[0] & 0xf8) == 0xf0)
		n = 4, c = s[0] & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
	if (c < min[n] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	return n;
}

/* Escape into b: backslash and newline, and the double quote when quote;
 * bytes that are not UTF-8 become '?' (the format is UTF-8). */
static void escape_into(buf *b, const char *s, bool quote)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		size_t n = utf8_len(p);
		if (n == 0) {
			buf_put(b, "?", 1);
			p++;
		} else if (*p == '\\') {
			buf_put(b, "\\\\", 2);
			p++;
		} else if (*p == '\n') {
			buf_put(b, "\\n", 2);
			p++;
		} else if (quote && *p == '"') {
			buf_put(b, "\\\"", 2);
			p++;
		} else {
			buf_put(b, (const char *)p, n);
			p += n;
		}
	}
}

char *cdl_metrics_escape_value(const char *s)
{
	buf b = {0};
	buf_put(&b, "", 0);
	escape_into(&b, s, true);
	return b.p;
}

char *cdl_metrics_escape_help(const char *s)
{
	buf b = {0};
	buf_put(&b, "", 0);
	escape_into(&b, s, false);
	return b.p;
}

/* A sample value as the format writes it: integers without a fraction,
 * others with the fewest digits that read back the same. */
static void fmt_double(char *out, size_t n, double v)
{
	if (isnan(v))
		snprintf(out, n, "NaN");
	else if (isinf(v))
		snprintf(out, n, "%s", v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < 1e15)
		snprintf(out, n, "%.0f", v);
	else {
		snprintf(out, n, "%.15g", v);
		if (strtod(out, NULL) != v)
			snprintf(out, n, "%.17g", v);
	}
}

/* name{l1="v1",...[,le="x"]} value\n */
static void sample(buf *b, const cdl_metric *m, const char *suffix, const cdl_series *s,
		   const char *le, const char *value)
{
	buf_str(b, m->name);
	buf_str(b, suffix);
	if (m->nlabels || le) {
		buf_put(b, "{", 1);
		for (int i = 0; i < m->nlabels; i++) {
			if (i)
				buf_put(b, ",", 1);
			buf_str(b, m->labels[i]);
			buf_put(b, "=\"", 2);
			escape_into(b, s->values[i], true);
			buf_put(b, "\"", 1);
		}
		if (le) {
			if (m->nlabels)
				buf_put(b, ",", 1);
			buf_put(b, "le=\"", 4);
			buf_str(b, le);
			buf_put(b, "\"", 1);
		}
		buf_put(b, "}", 1);
	}
	buf_put(b, " ", 1);
	buf_str(b, value);
	buf_put(b, "\n", 1);
}

static void render_series(buf *b, const cdl_metric *m, cdl_series *s)
{
	char v[64], le[64];
	if (m->type == T_COUNTER) {
		fmt_double(v, sizeof(v), cdl_series_value(s));
		sample(b, m, "", s, NULL, v);
		return;
	}
	if (m->type == T_GAUGE) {
		fmt_double(v, sizeof(v),
			   bits_double(atomic_load_explicit(&s->v, memory_order_relaxed)));
		sample(b, m, "", s, NULL, v);
		return;
	}
	/* buckets are read one by one while others may observe: the count is
	 * the cumulative total read here, so +Inf and _count always agree */
	uint64_t cum = 0;
	for (size_t i = 0; i <= m->nb; i++) {
		cum += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
		if (i < m->nb)
			fmt_double(le, sizeof(le), m->bounds[i]);
		else
			snprintf(le, sizeof(le), "+Inf");
		snprintf(v, sizeof(v), "%llu", (unsigned long long)cum);
		sample(b, m, "_bucket", s, le, v);
	}
	fmt_double(v, sizeof(v), bits_double(atomic_load_explicit(&s->sum, memory_order_relaxed)));
	sample(b, m, "_sum", s, NULL, v);
	snprintf(v, sizeof(v), "%llu", (unsigned long long)cum);
	sample(b, m, "_count", s, NULL, v);
}

char *cdl_metrics_render(cdl_metrics *r)
{
	pthread_mutex_lock(&r->lock);
	int n = r->ncoll;
	cdl_metrics_collect_fn fns[MAX_COLLECTORS];
	void *args[MAX_COLLECTORS];
	for (int i = 0; i < n; i++) {
		fns[i] = r->coll[i].fn;
		args[i] = r->coll[i].arg;
	}
	pthread_mutex_unlock(&r->lock);
	for (int i = 0; i < n; i++)
		fns[i](args[i]);

	buf b = {0};
	buf_put(&b, "", 0);
	pthread_mutex_lock(&r->lock);
	for (const cdl_metric *m = r->fams; m; m = m->next) {
		buf_str(&b, "# HELP ");
		buf_str(&b, m->name);
		buf_put(&b, " ", 1);
		escape_into(&b, m->help, false);
		buf_str(&b, "\n# TYPE ");
		buf_str(&b, m->name);
		buf_put(&b, " ", 1);
		buf_str(&b, type_names[m->type]);
		buf_put(&b, "\n", 1);
		for (cdl_series *s = m->series; s; s = s->next)
			render_series(&b, m, s);
		if (m->other)
			render_series(&b, m, m->other);
	}
	pthread_mutex_unlock(&r->lock);
	return b.p;
}

/* ----------------------------------------------------------- process_* */

/* Fields of /proc/self/stat past the command (which may hold spaces). */
static void collect_process(void *arg)
{
	cdl_metrics *r = arg;
	char st[1024];
	FILE *f = fopen("/proc/self/stat", "r");
	if (!f)
		return;
	size_t n = fread(st, 1, sizeof(st) - 1, f);
	fclose(f);
	st[n] = '\0';
	const char *p = strrchr(st, ')');
	if (!p)
		return;
	/* after ") ": state(3) ... utime(14) stime(15) ... num_threads(20)
	 * ... starttime(22) vsize(23) rss(24) */
	unsigned long long utime = 0, stime = 0, start = 0, vsize = 0;
	long long threads = 0, rss = 0;
	if (sscanf(p + 2,
		   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %lld "
		   "%*d %llu %llu %lld",
		   &utime, &stime, &threads, &start, &vsize, &rss) != 6)
		return;
	double tck = (double)sysconf(_SC_CLK_TCK);
	long page = sysconf(_SC_PAGESIZE);
	double btime = 0;
	if ((f = fopen("/proc/stat", "r"))) {
		char line[256];
		while (fgets(line, sizeof(line), f))
			if (!strncmp(line, "btime ", 6)) {
				btime = strtod(line + 6, NULL);
				break;
			}
		fclose(f);
	}
	int fds = 0;
	DIR *d = opendir("/proc/self/fd");
	if (d) {
		struct dirent *e;
		while ((e = readdir(d)))
			fds += e->d_name[0] != '.';
		closedir(d);
	}
	cdl_series_counter_set(cdl_metric_one(cdl_metrics_counter(
				   r, "process_cpu_seconds_total",
				   "Total user and system CPU time spent in seconds.", NULL)),
			       (double)(utime + stime) / tck);
	cdl_series_set(cdl_metric_one(cdl_metrics_gauge(r, "process_resident_memory_bytes",
							"Resident memory size in bytes.", NULL)),
		       (double)rss * (double)page);
	cdl_series_set(cdl_metric_one(cdl_metrics_gauge(r, "process_virtual_memory_bytes",
							"Virtual memory size in bytes.", NULL)),
		       (double)vsize);
	cdl_series_set(cdl_metric_one(cdl_metrics_gauge(r, "process_open_fds",
							"Number of open file descriptors.", NULL)),
		       fds);
	cdl_series_set(
	    cdl_metric_one(cdl_metrics_gauge(r, "process_threads", "Number of OS threads.", NULL)),
	    (double)threads);
	cdl_series_set(cdl_metric_one(cdl_metrics_gauge(
			   r, "process_start_time_seconds",
			   "Start time of the process since unix epoch in seconds.", NULL)),
		       btime + (double)start / tck);
}

void cdl_metrics_process(cdl_metrics *r)
{
	pthread_mutex_lock(&r->lock);
	bool done = r->process;
	r->process = true;
	pthread_mutex_unlock(&r->lock);
	if (!done)
		cdl_metrics_collector(r, collect_process, r);
}
