/* cdl_http: the HTTP port every daemon serves (issue 10: WebHDFS, the web
 * UI, Prometheus metrics), a thin layer over libmicrohttpd.
 *
 * A server is made, given its routes, then started; routes are fixed once
 * it runs, so dispatch needs no lock. A route is a URL prefix: one ending in
 * '/' matches that subtree, any other matches exactly; the longest match
 * wins. A handler has libmicrohttpd's access-handler contract (called again
 * for each piece of an upload, *con_cls its own per-request state; a
 * completion callback frees it, see cdl_http_route's done).
 *
 * Bounds: at most CDL_HTTP_CONNS connections in all and CDL_HTTP_PER_IP per
 * peer address, an idle connection closed after CDL_HTTP_IDLE_S seconds;
 * each connection has its own thread, so a handler may block on the
 * cluster (a streamed WebHDFS body) without stopping the others.
 *
 * URLs and query values are percent-decoded with one change: %00 decodes
 * to 0x7f (DEL), so that a NUL cannot cut a name short unseen; handlers
 * that take names refuse control characters. */
#ifndef CDL_HTTP_H
#define CDL_HTTP_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

#include "cdl_sec.h"

#define CDL_HTTP_ROUTES 32
#define CDL_HTTP_CONNS	128
#define CDL_HTTP_PER_IP 32
#define CDL_HTTP_IDLE_S 30u
#define CDL_HTTP_PREFIX 64
/* Memory of one connection: its request line and headers (so the longest
 * URL and query string) and each piece of an upload. */
#define CDL_HTTP_MEM (256 * 1024)

typedef enum MHD_Result (*cdl_http_fn)(void *arg, struct MHD_Connection *conn, const char *url,
				       const char *method, const char *upload, size_t *upload_size,
				       void **con_cls);
/* Frees what a handler left in *con_cls when its request ends (also
 * after an error or a dropped connection). */
typedef void (*cdl_http_done_fn)(void *arg, void *con_cls);

typedef struct cdl_http cdl_http;

/* A server for host (IPv4 address) and port (0: any free one); what names
 * it in logs ("namenode HTTP"). NULL on a bad address or port. */
cdl_http *cdl_http_new(const char *host, int port, const char *what);
/* Serve prefix with fn(arg, ...); done may be NULL. Only before start.
 * 0, or -EINVAL (bad prefix) / -ENOSPC (too many routes) / -EEXIST. */
int cdl_http_route(cdl_http *h, const char *prefix, cdl_http_fn fn, cdl_http_done_fn done,
		   void *arg);
/* Speak HTTPS with this PEM key and certificate, and ask every client for
 * a certificate of the CA in ca_pem (each copied). A client without one is
 * still served: each handler decides with cdl_http_peer. Only before
 * start. */
void cdl_http_set_tls(cdl_http *h, const char *ca_pem, const char *cert_pem, const char *key_pem);
/* Whether h speaks HTTPS. */
bool cdl_http_tls(const cdl_http *h);
/* The caller of an HTTPS request, from its certificate (role and name
 * from the common name as cdl_peer_from_cn reads it; addr filled): 0,
 * -ENOENT when it sent none (or the connection is plain HTTP), -EACCES
 * when it does not verify against the CA (expired, another CA, bad
 * signature) or names no known role. */
int cdl_http_peer(struct MHD_Connection *conn, cdl_peer *p);

/* Listen and serve. 0 or -errno (logged). */
int cdl_http_start(cdl_http *h);
/* The port it listens on once started, or -1. */
int cdl_http_port(const cdl_http *h);
/* Stop serving (waits for running handlers) and free. NULL is fine. */
void cdl_http_free(cdl_http *h);

/* Queue a whole reply: body of len bytes, copied. MHD_NO if it could not
 * be queued (the connection is then closed). */
enum MHD_Result cdl_http_reply(struct MHD_Connection *conn, unsigned code, const char *ctype,
			       const void *body, size_t len);
/* The same for a NUL-terminated string that the reply takes and frees. */
enum MHD_Result cdl_http_reply_str(struct MHD_Connection *conn, unsigned code, const char *ctype,
				   char *body);

#endif
