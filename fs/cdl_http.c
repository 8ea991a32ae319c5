/* cdl_http: routes over libmicrohttpd; see cdl_http.h. */
#include "cdl_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "cdl_log.h"
#include "cdl_util.h"

typedef struct route {
	char prefix[CDL_HTTP_PREFIX];
	size_t len;
	bool subtree;
	cdl_http_fn fn;
	cdl_http_done_fn done;
	void *arg;
} route;

struct cdl_http {
	struct sockaddr_in sa;
	char what[64];
	route routes[CDL_HTTP_ROUTES];
	size_t nroutes;
	struct MHD_Daemon *d;
	char *ca, *cert, *key;	/* PEM; set: HTTPS */
	pthread_mutex_t log_mu; /* libmicrohttpd's messages: at most one a second */
	int64_t log_at;
	unsigned log_dropped;
};

/* What a request carries between the handler's calls: its route (fixed at
 * the first call) and the handler's own state. */
typedef struct req {
	const route *r;
	void *inner;
} req;

cdl_http *cdl_http_new(const char *host, int port, const char *what)
{
	if (port < 0 || port > 65535)
		return NULL;
	cdl_http *h = xcalloc(1, sizeof(*h));
	h->sa.sin_family = AF_INET;
	h->sa.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &h->sa.sin_addr) != 1) {
		cdl_err("%s: '%s' is not an IPv4 address", what, host);
		free(h);
		return NULL;
	}
	snprintf(h->what, sizeof(h->what), "%s", what);
	pthread_mutex_init(&h->log_mu, NULL);
	return h;
}

int cdl_http_route(cdl_http *h, const char *prefix, cdl_http_fn fn, cdl_http_done_fn done,
		   void *arg)
{
	size_t len = strlen(prefix);
	if (h->d || !fn || len == 0 || prefix[0] != '/' || len >= CDL_HTTP_PREFIX)
		return -EINVAL;
	for (size_t i = 0; i < h->nroutes; i++)
		if (!strcmp(h->routes[i].prefix, prefix))
			return -EEXIST;
	if (h->nroutes == CDL_HTTP_ROUTES)
		return -ENOSPC;
	route *r = &h->routes[h->nroutes++];
	memcpy(r->prefix, prefix, len + 1);
	r->len = len;
	r->subtree = prefix[len - 1] == '/';
	r->fn = fn;
	r->done = done;
	r->arg = arg;
	return 0;
}

/* The longest route matching url, or NULL. A subtree route "/a/" also
 * matches "/a" itself. */
static const route *match(const cdl_http *h, const char *url)
{
	const route *best = NULL;
	size_t ulen = strlen(url);
	for (size_t i = 0; i < h->nroutes; i++) {
		const route *r = &h->routes[i];
		bool hit;
		if (r->subtree)
			hit = !strncmp(url, r->prefix, r->len) ||
			      (ulen == r->len - 1 && !strncmp(url, r->prefix, ulen));
		else
			hit = !strcmp(url, r->prefix);
		if (hit && (!best || r->len > best->len))
			best = r;
	}
	return best;
}

static enum MHD_Result dispatch(void *cls, struct MHD_Connection *conn, const char *url,
				const char *method, const char *version, const char *upload,
				size_t *upload_size, void **con_cls)
{
	(void)version;
	cdl_http *h = cls;
	req *q = *con_cls;
	if (!q) {
		const route *r = match(h, url);
		if (!r)
			return cdl_http_reply_str(conn, MHD_HTTP_NOT_FOUND, "text/plain",
						  xstrdup("not found\n"));
		q = xcalloc(1, sizeof(*q));
		q->r = r;
		*con_cls = q;
	}
	return q->r->fn(q->r->arg, conn, url, method, upload, upload_size, &q->inner);
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
		      enum MHD_RequestTerminationCode toe)
{
	(void)cls, (void)conn, (void)toe;
	req *q = *con_cls;
	if (!q)
		return;
	if (q->r->done && q->inner)
		q->r->done(q->r->arg, q->inner);
	free(q);
	*con_cls = NULL;
}

/* libmicrohttpd's error messages (a failed TLS handshake, a dropped
 * connection), which any peer can cause: logged at most once a second with
 * the count of those left out, so that they cannot fill the log's disk. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	cdl_http *h = cls;
	int64_t now = cdl_now_ms();
	pthread_mutex_lock(&h->log_mu);
	bool say = now - h->log_at >= 1000;
	unsigned dropped = h->log_dropped;
	if (say) {
		h->log_at = now;
		h->log_dropped = 0;
	} else {
		h->log_dropped++;
	}
	pthread_mutex_unlock(&h->log_mu);
	if (!say)
		return;
	char msg[256];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	cdl_info("%s: %s (%u more not logged)", h->what, msg, dropped);
}

static int hexdigit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decoding of URLs and query values in place; %00 becomes 0x7f
 * (see cdl_http.h). */
static size_t unescape(void *cls, struct MHD_Connection *conn, char *s)
{
	(void)cls, (void)conn;
	char *o = s;
	for (const char *p = s; *p; p++) {
		int hi, lo;
		if (p[0] == '%' && (hi = hexdigit(p[1])) >= 0 && (lo = hexdigit(p[2])) >= 0) {
			char c = (char)(hi << 4 | lo);
			*o++ = c ? c : 0x7f;
			p += 2;
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
	return (size_t)(o - s);
}

void cdl_http_set_tls(cdl_http *h, const char *ca_pem, const char *cert_pem, const char *key_pem)
{
	if (h->d)
		return;
	free(h->ca), free(h->cert), free(h->key);
	h->ca = xstrdup(ca_pem);
	h->cert = xstrdup(cert_pem);
	h->key = xstrdup(key_pem);
}

bool cdl_http_tls(const cdl_http *h)
{
	return h->key != NULL;
}

int cdl_http_peer(struct MHD_Connection *conn, cdl_peer *p)
{
	memset(p, 0, sizeof(*p));
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ci->client_addr)->sin_addr,
			  p->addr, sizeof(p->addr));
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (!ci || !ci->tls_session)
		return -ENOENT;
	gnutls_session_t s = (gnutls_session_t)ci->tls_session;
	unsigned n = 0;
	const gnutls_datum_t *certs = gnutls_certificate_get_peers(s, &n);
	if (!certs || n == 0)
		return -ENOENT;
	unsigned status = 0;
	if (gnutls_certificate_type_get(s) != GNUTLS_CRT_X509 ||
	    gnutls_certificate_verify_peers2(s, &status) < 0 || status != 0)
		return -EACCES;
	gnutls_x509_crt_t crt;
	if (gnutls_x509_crt_init(&crt) < 0)
		return -EACCES;
	char cn[256];
	size_t cnlen = sizeof(cn);
	int rc = -EACCES;
	if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) >= 0 &&
	    gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &cnlen) >=
		0 &&
	    cnlen < sizeof(cn)) {
		char addr[sizeof(p->addr)];
		memcpy(addr, p->addr, sizeof(addr));
		if (cdl_peer_from_cn(cn, cnlen, p))
			rc = 0;
		memcpy(p->addr, addr, sizeof(addr));
	}
	gnutls_x509_crt_deinit(crt);
	return rc;
}

int cdl_http_start(cdl_http *h)
{
	unsigned flags =
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;
	if (h->key)
		h->d = MHD_start_daemon(
		    flags | MHD_USE_TLS, ntohs(h->sa.sin_port), NULL, NULL, dispatch, h,
		    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h, MHD_OPTION_SOCK_ADDR, &h->sa,
		    MHD_OPTION_CONNECTION_LIMIT, (unsigned)CDL_HTTP_CONNS,
		    MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)CDL_HTTP_PER_IP,
		    MHD_OPTION_CONNECTION_TIMEOUT, CDL_HTTP_IDLE_S, MHD_OPTION_NOTIFY_COMPLETED,
		    completed, h, MHD_OPTION_UNESCAPE_CALLBACK, unescape, h,
		    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CDL_HTTP_MEM,
		    MHD_OPTION_HTTPS_MEM_KEY, h->key, MHD_OPTION_HTTPS_MEM_CERT, h->cert,
		    MHD_OPTION_HTTPS_MEM_TRUST, h->ca, MHD_OPTION_END);
	else
		h->d = MHD_start_daemon(
		    flags, ntohs(h->sa.sin_port), NULL, NULL, dispatch, h,
		    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h, MHD_OPTION_SOCK_ADDR, &h->sa,
		    MHD_OPTION_CONNECTION_LIMIT, (unsigned)CDL_HTTP_CONNS,
		    MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)CDL_HTTP_PER_IP,
		    MHD_OPTION_CONNECTION_TIMEOUT, CDL_HTTP_IDLE_S, MHD_OPTION_NOTIFY_COMPLETED,
		    completed, h, MHD_OPTION_UNESCAPE_CALLBACK, unescape, h,
		    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CDL_HTTP_MEM, MHD_OPTION_END);
	if (!h->d) {
		char a[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &h->sa.sin_addr, a, sizeof(a));
		cdl_err("%s: cannot listen on %s:%u", h->what, a, ntohs(h->sa.sin_port));
		return -EADDRINUSE;
	}
	return 0;
}

int cdl_http_port(const cdl_http *h)
{
	const union MHD_DaemonInfo *i =
	    h->d ? MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT) : NULL;
	return i ? (int)i->port : -1;
}

void cdl_http_free(cdl_http *h)
{
	if (!h)
		return;
	if (h->d)
		MHD_stop_daemon(h->d);
	free(h->ca), free(h->cert), free(h->key);
	pthread_mutex_destroy(&h->log_mu);
	free(h);
}

enum MHD_Result cdl_http_reply(struct MHD_Connection *conn, unsigned code, const char *ctype,
			       const void *body, size_t len)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	if (ctype)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	enum MHD_Result ret = MHD_queue_response(conn, code, r);
	MHD_destroy_response(r);
	return ret;
}

enum MHD_Result cdl_http_reply_str(struct MHD_Connection *conn, unsigned code, const char *ctype,
				   char *body)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	if (ctype)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	enum MHD_Result ret = MHD_queue_response(conn, code, r);
	MHD_destroy_response(r);
	return ret;
}
