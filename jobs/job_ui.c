/* job_ui: the jobtracker's web UI routes; see job_ui.h. */
#include "job_ui.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cdl_ui.h"
#include "cdl_util.h"
#include "job_status.h"

/* The jobs list is made at most this often, whatever the number of
 * browsers: making it renders every job held under the jobtracker's lock. */
#define JOBS_CACHE_MS 1000

typedef struct job_ui {
	job_jt *jt;
	const char *namenode_url;
	pthread_mutex_t mu; /* the cached list */
	char *jobs;
	int64_t jobs_ms;
} job_ui;

/* The jobs list's JSON, a copy the caller frees. */
static char *jobs_json(job_ui *u)
{
	pthread_mutex_lock(&u->mu);
	int64_t now = cdl_now_ms();
	if (!u->jobs || now - u->jobs_ms >= JOBS_CACHE_MS) {
		free(u->jobs);
		u->jobs = job_jt_ui_json(u->jt, NULL);
		u->jobs_ms = now;
	}
	char *s = xstrdup(u->jobs);
	pthread_mutex_unlock(&u->mu);
	return s;
}

static char *info(const job_ui *u)
{
	char *buf;
	size_t len;
	FILE *f = open_memstream(&buf, &len);
	fputc('{', f);
	cdl_json_key(f, "daemon", true);
	cdl_json_str(f, "jobtracker");
	cdl_json_key(f, "namenode_url", false);
	cdl_json_str(f, u->namenode_url);
	cdl_json_key(f, "jobs_url", false);
	cdl_json_str(f, "");
	fputs("}\n", f);
	fclose(f);
	return buf;
}

static enum MHD_Result http_ui(void *arg, struct MHD_Connection *conn, const char *url,
			       const char *method, const char *upload, size_t *upload_size,
			       void **con_cls)
{
	(void)upload, (void)upload_size, (void)con_cls;
	job_ui *u = arg;
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return cdl_ui_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "GET only");
	int rc = cdl_ui_serve_static(conn, url);
	if (rc >= 0)
		return (enum MHD_Result)rc;
	if (!strcmp(url, "/ui/api/info"))
		return cdl_ui_reply(conn, MHD_HTTP_OK, "application/json", info(u));
	if (!strcmp(url, "/ui/api/jobs"))
		return cdl_ui_reply(conn, MHD_HTTP_OK, "application/json", jobs_json(u));
	if (!strcmp(url, "/ui/api/job")) {
		bool too_long = false;
		const char *name = cdl_ui_arg(conn, "name", NULL, &too_long);
		if (too_long || !name || !job_name_ok(name))
			return cdl_ui_error(conn, MHD_HTTP_BAD_REQUEST, "bad job name");
		char *j = job_jt_ui_json(u->jt, name);
		if (!j)
			return cdl_ui_error(conn, MHD_HTTP_NOT_FOUND, "no such job");
		return cdl_ui_reply(conn, MHD_HTTP_OK, "application/json", j);
	}
	if (!strcmp(url, "/")) {
		/* for curl and scripts: what the page shows */
		return cdl_ui_reply(conn, MHD_HTTP_OK, "application/json", jobs_json(u));
	}
	return cdl_ui_reply(conn, MHD_HTTP_NOT_FOUND, "text/plain; charset=utf-8",
			    xstrdup("not found\n"));
}

int job_ui_register(cdl_http *h, job_jt *jt, const char *namenode_url)
{
	/* one per process, as long as the server */
	static job_ui the_ui = {.mu = PTHREAD_MUTEX_INITIALIZER};
	job_ui *u = &the_ui;
	u->jt = jt;
	u->namenode_url = namenode_url ? namenode_url : "";
	int rc;
	if ((rc = cdl_http_route(h, "/ui/", http_ui, NULL, u)) < 0 ||
	    (rc = cdl_http_route(h, "/index.html", http_ui, NULL, u)) < 0 ||
	    (rc = cdl_http_route(h, "/", http_ui, NULL, u)) < 0)
		return rc;
	return 0;
}
