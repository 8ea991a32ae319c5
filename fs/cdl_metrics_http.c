/* cdl_metrics over HTTP (see cdl_metrics.h): an object of its own, so that
 * what only counts (the RPC layer, and the tools linked with it) does not
 * pull libmicrohttpd in. */
#include <string.h>

#include "cdl_http.h"
#include "cdl_log.h"
#include "cdl_metrics.h"
#include "cdl_util.h"

static enum MHD_Result http_metrics(void *arg, struct MHD_Connection *conn, const char *url,
				    const char *method, const char *upload, size_t *upload_size,
				    void **con_cls)
{
	(void)url, (void)upload, (void)upload_size, (void)con_cls;
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return cdl_http_reply_str(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
					  "text/plain; charset=utf-8",
					  xstrdup("only GET and HEAD\n"));
	return cdl_http_reply_str(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
				  cdl_metrics_render(arg));
}

int cdl_metrics_route(struct cdl_http *h, cdl_metrics *r)
{
	return cdl_http_route(h, "/metrics", http_metrics, NULL, r);
}

struct cdl_http *cdl_metrics_serve(const char *host, int port, cdl_metrics *r, const char *what)
{
	cdl_http *h = cdl_http_new(host, port, what);
	if (!h)
		return NULL;
	if (cdl_metrics_route(h, r) < 0 || cdl_http_start(h) < 0) {
		cdl_http_free(h);
		return NULL;
	}
	cdl_info("%s: /metrics on %s:%d", what, host, cdl_http_port(h));
	return h;
}
