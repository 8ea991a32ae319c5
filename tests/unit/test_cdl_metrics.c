/* Unit test of the metrics module (fs/cdl_metrics.h): the text exposition
 * format (HELP and TYPE lines, samples, histogram buckets, _sum and
 * _count), escaping of label values and help texts (and bytes that are not
 * UTF-8), bad names and clashes refused, the cap on series per family,
 * collectors, concurrent updates from many threads adding up exactly, and
 * /metrics over HTTP (GET answers, other methods and paths do not). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cdl_http.h"
#include "cdl_metrics.h"
#include "cdl_util.h"
#include "test.h"

static bool has(const char *text, const char *line)
{
	char *want = xasprintf("%s\n", line);
	const char *p = text;
	bool found = false;
	/* whole lines only */
	while ((p = strstr(p, want))) {
		if (p == text || p[-1] == '\n') {
			found = true;
			break;
		}
		p++;
	}
	free(want);
	return found;
}

static void test_format(void)
{
	cdl_metrics *r = cdl_metrics_new();
	cdl_metric *c = cdl_metrics_counter(r, "t_ops_total", "Operations done.", NULL);
	cdl_metric *g = cdl_metrics_gauge(r, "t_temp", "A gauge.", "room");
	CHECK(c && g);
	cdl_series_add(cdl_metric_one(c), 3);
	cdl_series_add(cdl_metric_one(c), 4);
	cdl_series_set(cdl_metric_at(g, "a"), 1.5);
	cdl_series_gauge_add(cdl_metric_at(g, "a"), -3);
	cdl_series_set(cdl_metric_at(g, "b"), 1e20);
	/* a metric with labels and no series yet still says what it is */
	CHECK(cdl_metrics_counter(r, "t_empty_total", "Nothing yet.", "x") != NULL);
	char *t = cdl_metrics_render(r);
	CHECK(has(t, "# HELP t_ops_total Operations done."));
	CHECK(has(t, "# TYPE t_ops_total counter"));
	CHECK(has(t, "t_ops_total 7"));
	CHECK(has(t, "# TYPE t_temp gauge"));
	CHECK(has(t, "t_temp{room=\"a\"} -1.5"));
	CHECK(has(t, "t_temp{room=\"b\"} 1e+20"));
	CHECK(has(t, "# TYPE t_empty_total counter"));
	/* families in registration order, HELP before TYPE before samples */
	CHECK(strstr(t, "# HELP t_ops_total") < strstr(t, "# TYPE t_ops_total"));
	CHECK(strstr(t, "t_ops_total 7") < strstr(t, "# HELP t_temp"));
	free(t);
	CHECK(cdl_series_value(cdl_metric_one(c)) == 7);

	/* counters read from elsewhere are set */
	cdl_metric *set = cdl_metrics_counter(r, "t_cpu_seconds_total", "CPU.", NULL);
	cdl_series_counter_set(cdl_metric_one(set), 2.25);
	t = cdl_metrics_render(r);
	CHECK(has(t, "t_cpu_seconds_total 2.25"));
	free(t);
	cdl_metrics_free(r);
}

static void test_histogram(void)
{
	cdl_metrics *r = cdl_metrics_new();
	const double b[] = {0.1, 1, 10};
	cdl_metric *h = cdl_metrics_histogram(r, "t_seconds", "Latency.", "op", b, 3);
	CHECK(h != NULL);
	cdl_series *s = cdl_metric_at(h, "read");
	cdl_series_observe(s, 0.05); /* le 0.1 */
	cdl_series_observe(s, 0.1);  /* le 0.1: bounds are inclusive */
	cdl_series_observe(s, 0.5);  /* le 1 */
	cdl_series_observe(s, 20);   /* +Inf only */
	char *t = cdl_metrics_render(r);
	CHECK(has(t, "# TYPE t_seconds histogram"));
	CHECK(has(t, "t_seconds_bucket{op=\"read\",le=\"0.1\"} 2"));
	CHECK(has(t, "t_seconds_bucket{op=\"read\",le=\"1\"} 3"));
	CHECK(has(t, "t_seconds_bucket{op=\"read\",le=\"10\"} 3"));
	CHECK(has(t, "t_seconds_bucket{op=\"read\",le=\"+Inf\"} 4"));
	CHECK(has(t, "t_seconds_sum{op=\"read\"} 20.65"));
	CHECK(has(t, "t_seconds_count{op=\"read\"} 4"));
	free(t);
	CHECK(cdl_series_value(s) == 4);

	/* the default buckets print as written */
	cdl_metric *d = cdl_metrics_histogram(r, "t_rpc_seconds", "RPC.", NULL, NULL, 0);
	cdl_series_observe(cdl_metric_one(d), 0.0003);
	t = cdl_metrics_render(r);
	CHECK(has(t, "t_rpc_seconds_bucket{le=\"0.00025\"} 0"));
	CHECK(has(t, "t_rpc_seconds_bucket{le=\"0.0005\"} 1"));
	CHECK(has(t, "t_rpc_seconds_bucket{le=\"30\"} 1"));
	free(t);

	/* bounds must increase; "le" is not a label of a histogram */
	const double bad[] = {1, 1};
	CHECK(cdl_metrics_histogram(r, "t_bad", "", NULL, bad, 2) == NULL);
	CHECK(cdl_metrics_histogram(r, "t_bad2", "", "le", b, 3) == NULL);
	double many[CDL_METRICS_BUCKETS + 1];
	for (int i = 0; i <= CDL_METRICS_BUCKETS; i++)
		many[i] = i;
	CHECK(cdl_metrics_histogram(r, "t_bad3", "", NULL, many, CDL_METRICS_BUCKETS + 1) == NULL);
	cdl_metrics_free(r);
}

static void test_escaping(void)
{
	char *e = cdl_metrics_escape_value("a\\b\"c\nd");
	CHECK(!strcmp(e, "a\\\\b\\\"c\\nd"));
	free(e);
	e = cdl_metrics_escape_help("say \"hi\"\\\n");
	CHECK(!strcmp(e, "say \"hi\"\\\\\\n"));
	free(e);
	/* UTF-8 passes; bytes that are not UTF-8 become '?' */
	e = cdl_metrics_escape_value("caf\xc3\xa9 \xff\xc3(\xed\xa0\x80");
	CHECK(!strcmp(e, "caf\xc3\xa9 ?"
			 "?(?"
			 "??"));
	free(e);

	cdl_metrics *r = cdl_metrics_new();
	cdl_metric *c =
	    cdl_metrics_counter(r, "t_paths_total", "Help with \\ and\nnewline.", "path,user");
	cdl_series_add(cdl_metric_at(c, "/a \"b\"\n", "x\\y"), 1);
	char *t = cdl_metrics_render(r);
	CHECK(has(t, "# HELP t_paths_total Help with \\\\ and\\nnewline."));
	CHECK(has(t, "t_paths_total{path=\"/a \\\"b\\\"\\n\",user=\"x\\\\y\"} 1"));
	free(t);

	/* bad names, bad or repeated labels, clashes */
	CHECK(cdl_metrics_counter(r, "9lives", "", NULL) == NULL);
	CHECK(cdl_metrics_counter(r, "a-b", "", NULL) == NULL);
	CHECK(cdl_metrics_counter(r, "", "", NULL) == NULL);
	CHECK(cdl_metrics_counter(r, "t_ok", "", "a,a") == NULL);
	CHECK(cdl_metrics_counter(r, "t_ok2", "", "__reserved") == NULL);
	CHECK(cdl_metrics_counter(r, "t_ok3", "", "a,b,c,d,e") == NULL);
	CHECK(cdl_metrics_counter(r, "t_ok4", "", "a:b") == NULL);
	CHECK(cdl_metrics_counter(r, "ns:t_ok5", "", "a,b,c,d") != NULL);
	/* the same family again is the same; another type is refused */
	CHECK(cdl_metrics_counter(r, "t_paths_total", "other help", "path,user") == c);
	CHECK(cdl_metrics_gauge(r, "t_paths_total", "", "path,user") == NULL);
	CHECK(cdl_metrics_counter(r, "t_paths_total", "", "path") == NULL);
	/* NULL metrics and series are no-ops */
	cdl_series_add(cdl_metric_at(NULL, "x"), 1);
	cdl_series_observe(NULL, 1);
	cdl_series_set(NULL, 1);
	/* the wrong update for the type changes nothing */
	cdl_series_set(cdl_metric_at(c, "p", "u"), 5);
	CHECK(cdl_series_value(cdl_metric_at(c, "p", "u")) == 0);
	cdl_metrics_free(r);
}

static void test_series_cap(void)
{
	cdl_metrics *r = cdl_metrics_new();
	cdl_metric *c = cdl_metrics_counter(r, "t_users_total", "Per user.", "user");
	for (int i = 0; i < CDL_METRICS_SERIES + 50; i++) {
		char u[32];
		snprintf(u, sizeof(u), "u%d", i);
		cdl_series_add(cdl_metric_at(c, u), 1);
	}
	/* the same value finds the same series */
	CHECK(cdl_metric_at(c, "u1") == cdl_metric_at(c, "u1"));
	char *t = cdl_metrics_render(r);
	CHECK(has(t, "t_users_total{user=\"u0\"} 1"));
	CHECK(has(t, "t_users_total{user=\"other\"} 50"));
	size_t lines = 0;
	for (const char *p = t; *p; p++)
		lines += *p == '\n';
	CHECK_EQ(lines, 2 + CDL_METRICS_SERIES + 1);
	free(t);
	/* long values are cut, not refused */
	char big[1000];
	memset(big, 'v', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	cdl_metrics *r2 = cdl_metrics_new();
	cdl_metric *c2 = cdl_metrics_counter(r2, "t_long_total", "", "v");
	cdl_series_add(cdl_metric_at(c2, big), 1);
	t = cdl_metrics_render(r2);
	CHECK(strlen(t) < 400);
	free(t);
	cdl_metrics_free(r2);
	cdl_metrics_free(r);
}

static int collected;
static void collect(void *arg)
{
	collected++;
	cdl_series_set(
	    cdl_metric_one(cdl_metrics_gauge(arg, "t_collected", "Set at render.", NULL)),
	    collected);
}

static void test_collector(void)
{
	cdl_metrics *r = cdl_metrics_new();
	CHECK_EQ(cdl_metrics_collector(r, collect, r), 0);
	char *t = cdl_metrics_render(r);
	CHECK(has(t, "t_collected 1"));
	free(t);
	t = cdl_metrics_render(r);
	CHECK(has(t, "t_collected 2"));
	free(t);
	cdl_metrics_process(r);
	cdl_metrics_process(r); /* once is enough */
	t = cdl_metrics_render(r);
	CHECK(strstr(t, "# TYPE process_cpu_seconds_total counter\n") != NULL);
	CHECK(
	    strstr(t,
		   "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes ") !=
	    NULL);
	CHECK(strstr(t, "\nprocess_open_fds ") != NULL);
	CHECK(strstr(t, "\nprocess_start_time_seconds ") != NULL);
	free(t);
	cdl_metrics_free(r);
}

#define THREADS 8
#define ROUNDS	100000

static cdl_metrics *cr;
static void *hammer(void *arg)
{
	(void)arg;
	cdl_metric *c = cdl_metrics_counter(cr, "t_hits_total", "Hits.", "kind");
	cdl_metric *h = cdl_metrics_histogram(cr, "t_lat_seconds", "Latency.", NULL, NULL, 0);
	cdl_metric *g = cdl_metrics_gauge(cr, "t_level", "Level.", NULL);
	cdl_series *a = cdl_metric_at(c, "a");
	for (int i = 0; i < ROUNDS; i++) {
		cdl_series_add(a, 1);
		cdl_series_observe(cdl_metric_one(h), 0.001);
		cdl_series_gauge_add(cdl_metric_one(g), 1);
		if (i % 1000 == 0) /* lookups and renders meanwhile */
			free(cdl_metrics_render(cr));
	}
	return NULL;
}

static void test_concurrency(void)
{
	cr = cdl_metrics_new();
	pthread_t t[THREADS];
	for (int i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, hammer, NULL);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	char *txt = cdl_metrics_render(cr);
	char want[128];
	snprintf(want, sizeof(want), "t_hits_total{kind=\"a\"} %d", THREADS * ROUNDS);
	CHECK(has(txt, want));
	snprintf(want, sizeof(want), "t_lat_seconds_count %d", THREADS * ROUNDS);
	CHECK(has(txt, want));
	snprintf(want, sizeof(want), "t_lat_seconds_bucket{le=\"0.001\"} %d", THREADS * ROUNDS);
	CHECK(has(txt, want));
	snprintf(want, sizeof(want), "t_level %d", THREADS * ROUNDS);
	CHECK(has(txt, want));
	free(txt);
	cdl_metrics_free(cr);
}

static int ask(int port, const char *req, char *buf, size_t cap)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -1;
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req))
		return -1;
	size_t got = 0;
	ssize_t n;
	while (got + 1 < cap && (n = read(fd, buf + got, cap - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = 0;
	close(fd);
	return (int)got;
}

static void test_http(void)
{
	cdl_metrics *r = cdl_metrics_new();
	cdl_series_add(cdl_metric_one(cdl_metrics_counter(r, "t_served_total", "Served.", NULL)),
		       9);
	cdl_http *h = cdl_metrics_serve("127.0.0.1", 0, r, "test metrics");
	CHECK(h != NULL);
	if (!h) {
		cdl_metrics_free(r);
		return;
	}
	int port = cdl_http_port(h);
	char buf[8192];
	CHECK(ask(port, "GET /metrics HTTP/1.0\r\n\r\n", buf, sizeof(buf)) > 0);
	CHECK(strstr(buf, "HTTP/1.0 200") == buf || strstr(buf, "HTTP/1.1 200") == buf);
	CHECK(strstr(buf, "text/plain; version=0.0.4") != NULL);
	CHECK(strstr(buf, "\nt_served_total 9\n") != NULL);
	CHECK(ask(port, "GET /nothing HTTP/1.0\r\n\r\n", buf, sizeof(buf)) > 0);
	CHECK(strstr(buf, " 404 ") != NULL);
	CHECK(ask(port, "POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n", buf, sizeof(buf)) >
	      0);
	CHECK(strstr(buf, " 405 ") != NULL);
	cdl_http_free(h);
	/* a taken port is refused */
	cdl_http *a = cdl_metrics_serve("127.0.0.1", 0, r, "a");
	CHECK(a != NULL);
	if (a) {
		CHECK(cdl_metrics_serve("127.0.0.1", cdl_http_port(a), r, "b") == NULL);
		cdl_http_free(a);
	}
	CHECK(cdl_metrics_serve("not-an-address", 0, r, "c") == NULL);
	cdl_metrics_free(r);
}

int main(void)
{
	test_format();
	test_histogram();
	test_escaping();
	test_series_cap();
	test_collector();
	test_concurrency();
	test_http();
	CHECK(cdl_metrics_global() == cdl_metrics_global());
	return TEST_DONE();
}
