/* job_ui: the jobtracker's side of the web UI (docs/decisions.md, "Web
 * UI"): the same page as the namenode's (fs/ui/, cdl_ui), showing the
 * jobs from the jobtracker's own state (job_jt_ui_json) on an HTTP port of
 * the jobtracker's, as Hadoop 1's JobTracker served its pages on 50030.
 *
 * Routes: "/" (the page for a browser, the jobs' JSON otherwise), "/index.html", "/ui/" (assets and
 * /ui/api/{info,jobs,job}). */
#ifndef JOB_UI_H
#define JOB_UI_H

#include "cdl_http.h"
#include "job_jt.h"

/* Add the UI's routes to h (before it starts); once per process.
 * namenode_url: the namenode's UI, for the page's links to it ("" or NULL:
 * none), which must outlive the server. */
int job_ui_register(cdl_http *h, job_jt *jt, const char *namenode_url);

#endif
