/* cdl_metrics: counters, gauges and histograms every daemon exports in the
 * Prometheus text exposition format (version 0.0.4) on GET /metrics.
 *
 * A registry holds families (one metric name, its help, its type and up to
 * CDL_METRICS_LABELS label names); a family holds series, one per tuple of
 * label values. Looking a series up takes the registry's lock, so hot paths
 * look theirs up once and keep the pointer (series live as long as the
 * registry); updating a series is a few relaxed atomic operations and never
 * locks. Collectors are callbacks run at the start of each render, for
 * values read from elsewhere (namespace sizes under the namenode's lock).
 *
 * Names follow the Prometheus conventions (docs/decisions.md): the
 * caudal_<daemon>_ prefix, base units (seconds, bytes), counters end in
 * _total. Registering a family twice with the same type and labels gives
 * the same family (modules register what they use without caring who came
 * first); with another type or labels it is a programming error (NULL).
 *
 * Bounds: at most CDL_METRICS_SERIES series per family; past it further
 * label tuples share one series whose label values are all "other", so a
 * caller-controlled label (a user's name) cannot grow memory without end.
 * Label values are cut at CDL_METRICS_VALUE_MAX bytes. */
#ifndef CDL_METRICS_H
#define CDL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define CDL_METRICS_LABELS    4
#define CDL_METRICS_SERIES    1024
#define CDL_METRICS_VALUE_MAX 128
#define CDL_METRICS_BUCKETS   32

typedef struct cdl_metrics cdl_metrics;
typedef struct cdl_metric cdl_metric;
typedef struct cdl_series cdl_series;

/* The process's registry: a process is one daemon, which serves it. */
cdl_metrics *cdl_metrics_global(void);

cdl_metrics *cdl_metrics_new(void);
void cdl_metrics_free(cdl_metrics *r);

/* Families. labels: NULL or "" for none, else label names separated by
 * commas ("service,method"). A family without labels has its one series
 * from the start (it shows 0 before anything happens). NULL on a bad name,
 * label, or a clash with an existing family of that name. */
cdl_metric *cdl_metrics_counter(cdl_metrics *r, const char *name, const char *help,
				const char *labels);
cdl_metric *cdl_metrics_gauge(cdl_metrics *r, const char *name, const char *help,
			      const char *labels);
/* bounds: the buckets' upper bounds, increasing, at most CDL_METRICS_BUCKETS
 * (+Inf is implicit); NULL uses cdl_metrics_seconds_buckets. */
cdl_metric *cdl_metrics_histogram(cdl_metrics *r, const char *name, const char *help,
				  const char *labels, const double *bounds, size_t nbounds);
/* Latency buckets from 100 µs to 30 s. */
extern const double cdl_metrics_seconds_buckets[];
extern const size_t cdl_metrics_seconds_nbuckets;

/* The series of m for these label values (as many as m has labels; NULL
 * for m without labels), made on first use. NULL only if m is NULL. */
cdl_series *cdl_metric_at(cdl_metric *m, ...);
/* The series of an unlabelled family (or NULL). */
cdl_series *cdl_metric_one(cdl_metric *m);

/* Updates; all accept NULL (a metric that could not be registered). */
void cdl_series_add(cdl_series *s, uint64_t n); /* counter */
void cdl_series_set(cdl_series *s, double v);	/* gauge */
/* A counter whose value is read from elsewhere at collect time (process
 * CPU seconds, the namenode's transaction id): set, not added. */
void cdl_series_counter_set(cdl_series *s, double v);
void cdl_series_gauge_add(cdl_series *s, double d); /* gauge */
void cdl_series_observe(cdl_series *s, double v);   /* histogram */
/* The value of a counter or gauge (tests); a histogram's count. */
double cdl_series_value(const cdl_series *s);

/* Called at the start of every render, with the registry unlocked (it may
 * look series up and set them). */
typedef void (*cdl_metrics_collect_fn)(void *arg);
int cdl_metrics_collector(cdl_metrics *r, cdl_metrics_collect_fn fn, void *arg);

/* process_* metrics from /proc (CPU seconds, resident memory, open fds,
 * threads, start time), collected at render. */
void cdl_metrics_process(cdl_metrics *r);

/* The exposition text; the caller frees. */
char *cdl_metrics_render(cdl_metrics *r);

/* Escaping as the format wants it, into a fresh string: a label value
 * (backslash, double quote, newline) and a HELP text (backslash, newline). */
char *cdl_metrics_escape_value(const char *s);
char *cdl_metrics_escape_help(const char *s);

/* Seconds since t0_ns on CLOCK_MONOTONIC (cdl_now_ns), for observe. */
double cdl_metrics_since(int64_t t0_ns);

/* HTTP: serve GET /metrics of r on h (before cdl_http_start). */
struct cdl_http;
int cdl_metrics_route(struct cdl_http *h, cdl_metrics *r);
/* A server of its own that serves only /metrics of r on host:port (port
 * 0: any free one); NULL on failure (logged). */
struct cdl_http *cdl_metrics_serve(const char *host, int port, cdl_metrics *r, const char *what);

#endif
