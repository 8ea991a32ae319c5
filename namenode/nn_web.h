/* nn_web: WebHDFS v1 on the namenode's HTTP port (issue 10; Hadoop's
 * WebHDFS REST API), and the WebCall method through which a datanode serving
 * a redirected OPEN, CREATE or APPEND acts for the ticket's user.
 *
 * Who a request acts as (DESIGN.md "Security", docs/decisions.md): over
 * HTTPS (the daemon has TLS) the client certificate signed by the cluster
 * CA, mapped as the RPC layer maps it (a user certificate: that user; an
 * admin certificate: root; other roles are refused); without TLS
 * (insecure = yes) the `user.name` parameter, believed as HDFS's simple
 * authentication does, and `nobody` without one. Every operation runs the
 * ClientProtocol handler in-process as that caller (nn_ns_call), so each
 * permission check of the RPC path applies.
 *
 * OPEN, CREATE, APPEND and GETFILECHECKSUM answer 307 to a datanode's HTTP
 * port with a ticket (cdl_web.h) naming the caller, the op, the path, the
 * datanode and an expiry; the datanode makes its namespace calls through
 * WebCall with it, and nn_web_call runs only the methods that op needs,
 * only on that path (or the inode it names now), as the ticket's caller.
 *
 * Threads: HTTP requests on the HTTP layer's threads, WebCall on RPC
 * workers; the state is fixed after nn_web_new. */
#ifndef NN_WEB_H
#define NN_WEB_H

#include "caudal.pb-c.h"
#include "cdl_http.h"
#include "cdl_util.h"

struct nn_ns;
typedef struct nn_web nn_web;

/* A ticket lets a datanode start its operation for ticket_ms (config
 * webhdfs_ticket_ms, 5 min), and carry it on (more blocks, the close) for
 * NN_WEB_SESSION_MS more. */
#define NN_WEB_SESSION_MS 3600000
/* Most entries one LISTSTATUS answers (a bigger directory: use
 * LISTSTATUS_BATCH), one LISTSTATUS_BATCH page, and the inodes
 * GETCONTENTSUMMARY may visit. */
#define NN_WEB_LIST_MAX	   100000
#define NN_WEB_BATCH	   1000
#define NN_WEB_SUMMARY_MAX 1000000

nn_web *nn_web_new(struct nn_ns *ns, int64_t ticket_ms);
void nn_web_free(nn_web *w);
/* Serve /webhdfs/v1/ on h (before it starts). */
int nn_web_route(nn_web *w, cdl_http *h);
/* ClientProtocol.WebCall (the caller is a datanode certificate). */
void nn_web_call(nn_web *w, const Caudal__WebCallRequest *req, Caudal__WebCallReply *rep,
		 cdl_arena *a);

#endif
