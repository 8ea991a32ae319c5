/* dn_web: the data side of WebHDFS (issue 10) on the datanode's HTTP
 * port, where the namenode redirects OPEN, CREATE, APPEND and
 * GETFILECHECKSUM (namenode/nn_web.h).
 *
 * A request must carry the namenode's ticket (fs/cdl_web.h) for this
 * datanode, this path and this op, unexpired and signed with a block-token
 * key this datanode holds; over HTTPS the client's certificate must name
 * the ticket's caller too. The datanode then reads or writes through the
 * client library with the ticket (cdl_client_set_ticket): every namespace
 * call goes through WebCall, and the namenode runs it as the ticket's
 * caller, for that path only. Bodies stream in bounded pieces: an OPEN is
 * a callback response reading DN_WEB_CHUNK bytes at a time, a CREATE or
 * APPEND body goes into the block writer as it arrives.
 *
 * Threads: each request on its own HTTP connection thread. */
#ifndef DN_WEB_H
#define DN_WEB_H

#include <stdbool.h>

#include "cdl_http.h"
#include "cdl_token.h"

#define DN_WEB_CHUNK (256 * 1024)

typedef struct dn_web_opts {
	const char *namenode; /* "host:port" */
	const char *host;     /* this datanode's address (replica locality) */
	const char *id;	      /* this datanode's id (tickets name it) */
	cdl_keyring *keys;    /* block-token keys (tickets are signed with them) */
	int io_timeout_ms;    /* the client library's operation timeout */
	int rpc_timeout_ms;   /* its RPC deadline */
} dn_web_opts;

typedef struct dn_web dn_web;

/* Strings are copied. NULL on a bad namenode address (logged). */
dn_web *dn_web_new(const dn_web_opts *o);
void dn_web_free(dn_web *w);
/* Serve /webhdfs/v1/ on h (before it starts). */
int dn_web_route(dn_web *w, cdl_http *h);

#endif
