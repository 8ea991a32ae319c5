/* nn_ui: the namenode's side of the web UI (issue 10; docs/decisions.md,
 * "Web UI"): the page (fs/ui/, served by cdl_ui) and the JSON it fetches,
 * all made in-process from the namespace by the same operations the RPC
 * clients use (Statfs and Report as `caudal report`, Readdir, GetAttr,
 * GetBlocks, GetEvents) and from the block map as fsck classifies it.
 *
 * HTTP callers have no identity: the file browser and the event list act
 * as the unprivileged user nobody (uid and gid NN_UI_NOBODY) with every
 * permission check, so they show only what a local user with no rights
 * of its own could see; overview and datanodes are cluster-wide counts.
 *
 * Routes: "/" (the page for a browser, the text status otherwise),
 * "/status.txt" (the text status), "/index.html", "/ui/" (assets and
 * /ui/api/{info,overview,datanodes,ls,file}). */
#ifndef NN_UI_H
#define NN_UI_H

#include "cdl_http.h"
#include "nn_ns.h"

#define NN_UI_NOBODY 65534u
/* Entries per listing page and blocks per file page. */
#define NN_UI_LS_PAGE	 200
#define NN_UI_BLOCK_PAGE 500
/* Recent namespace events on the overview. */
#define NN_UI_EVENTS 25

/* Add the UI's routes to h (before it starts); once per process. jobs_url:
 * the jobtracker's UI for the page's Jobs link ("" or NULL: none), which
 * must outlive the server. 0 or -errno. */
int nn_ui_register(cdl_http *h, nn_ns *ns, const char *jobs_url);

#endif
