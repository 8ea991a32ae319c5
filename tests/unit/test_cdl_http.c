/* Unit test of the HTTP layer (fs/cdl_http.h): a server on a free port of
 * 127.0.0.1 dispatches by exact and subtree prefixes (the longest wins),
 * answers 404 where no route matches, hands an upload to its handler
 * piece by piece with per-request state that the done callback frees, and
 * refuses bad routes and routes added once it runs. %00 in a URL reaches
 * the handler as 0x7f, never as a NUL that cuts it short. With TLS it
 * speaks HTTPS and names the caller from a client certificate of its CA;
 * no certificate and one of another CA are told apart and refused. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "cdl_http.h"
#include "cdl_sec.h"
#include "cdl_util.h"
#include "test.h"

static int freed;

static enum MHD_Result h_name(void *arg, struct MHD_Connection *conn, const char *url,
			      const char *method, const char *upload, size_t *upload_size,
			      void **con_cls)
{
	(void)method, (void)upload, (void)upload_size, (void)con_cls;
	return cdl_http_reply_str(conn, MHD_HTTP_OK, "text/plain",
				  xasprintf("%s %s", (const char *)arg, url));
}

/* Counts the bytes of a PUT body across calls, then answers the count. */
static enum MHD_Result h_count(void *arg, struct MHD_Connection *conn, const char *url,
			       const char *method, const char *upload, size_t *upload_size,
			       void **con_cls)
{
	(void)arg, (void)url, (void)method, (void)upload;
	if (!*con_cls) {
		*con_cls = xcalloc(1, sizeof(size_t));
		return MHD_YES;
	}
	size_t *n = *con_cls;
	if (*upload_size) {
		*n += *upload_size;
		*upload_size = 0;
		return MHD_YES;
	}
	return cdl_http_reply_str(conn, MHD_HTTP_CREATED, "text/plain", xasprintf("%zu", *n));
}

static void done_count(void *arg, void *con_cls)
{
	(void)arg;
	free(con_cls);
	freed++;
}

/* One request over a fresh connection; the whole answer in buf. */
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
	ssize_t r;
	while (got + 1 < cap && (r = read(fd, buf + got, cap - 1 - got)) > 0)
		got += (size_t)r;
	buf[got] = 0;
	close(fd);
	return (int)got;
}

static int status(const char *reply)
{
	int code = 0;
	return sscanf(reply, "HTTP/1.%*d %d", &code) == 1 ? code : -1;
}

/* Answers "ROLE:NAME" of the client certificate, or "none" / "bad". */
static enum MHD_Result h_peer(void *arg, struct MHD_Connection *conn, const char *url,
			      const char *method, const char *upload, size_t *upload_size,
			      void **con_cls)
{
	(void)arg, (void)url, (void)method, (void)upload, (void)upload_size, (void)con_cls;
	cdl_peer p;
	int rc = cdl_http_peer(conn, &p);
	return cdl_http_reply_str(conn, MHD_HTTP_OK, "text/plain",
				  rc == -ENOENT ? xstrdup("none")
				  : rc < 0	? xstrdup("bad")
					   : xasprintf("%s:%s", cdl_role_name(p.role), p.name));
}

/* One HTTPS request with OpenSSL, trusting ca, with the client
 * certificate crt/key when given; the answer in buf. */
static int ask_tls(int port, const char *ca, const char *crt, const char *key, const char *req,
		   char *buf, size_t cap)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx || SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
		return -1;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (crt && (SSL_CTX_use_certificate_file(ctx, crt, SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1))
		return -1;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	int got = -1;
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		SSL *ssl = SSL_new(ctx);
		SSL_set_fd(ssl, fd);
		if (SSL_connect(ssl) == 1 && SSL_write(ssl, req, (int)strlen(req)) > 0) {
			got = 0;
			int r;
			while ((size_t)got + 1 < cap &&
			       (r = SSL_read(ssl, buf + got, (int)(cap - 1 - (size_t)got))) > 0)
				got += r;
			buf[got] = 0;
		}
		SSL_free(ssl);
	}
	if (fd >= 0)
		close(fd);
	SSL_CTX_free(ctx);
	return got;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char *b = xcalloc(1, 65536);
	size_t n = fread(b, 1, 65535, f);
	b[n] = 0;
	fclose(f);
	return b;
}

static void test_tls(void)
{
	char dir[] = "/tmp/caudal-test-http-XXXXXX", evil[] = "/tmp/caudal-test-http-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	CHECK(mkdtemp(evil) != NULL);
	char p[8][256];
	snprintf(p[0], 256, "%s/ca.crt", dir);
	snprintf(p[1], 256, "%s/srv.crt", dir);
	snprintf(p[2], 256, "%s/srv.key", dir);
	snprintf(p[3], 256, "%s/alice.crt", dir);
	snprintf(p[4], 256, "%s/alice.key", dir);
	snprintf(p[5], 256, "%s/ca.crt", evil);
	snprintf(p[6], 256, "%s/mallory.crt", evil);
	snprintf(p[7], 256, "%s/mallory.key", evil);
	CHECK_EQ(cdl_cert_create_ca(dir, "test"), 0);
	CHECK_EQ(cdl_cert_create_ca(evil, "evil"), 0);
	CHECK_EQ(cdl_cert_create(dir, CDL_ROLE_NAMENODE, "127.0.0.1", "127.0.0.1", p[1], p[2], 1),
		 0);
	CHECK_EQ(cdl_cert_create(dir, CDL_ROLE_USER, "alice", NULL, p[3], p[4], 1), 0);
	CHECK_EQ(cdl_cert_create(evil, CDL_ROLE_USER, "alice", NULL, p[6], p[7], 1), 0);
	char *ca = slurp(p[0]), *crt = slurp(p[1]), *key = slurp(p[2]);
	CHECK(ca && crt && key);
	cdl_http *h = cdl_http_new("127.0.0.1", 0, "tls test");
	CHECK(!cdl_http_tls(h));
	cdl_http_set_tls(h, ca, crt, key);
	CHECK(cdl_http_tls(h));
	CHECK_EQ(cdl_http_route(h, "/who", h_peer, NULL, NULL), 0);
	CHECK_EQ(cdl_http_start(h), 0);
	int port = cdl_http_port(h);
	static char buf[8192];
	const char *req = "GET /who HTTP/1.0\r\n\r\n";
	CHECK(ask_tls(port, p[0], p[3], p[4], req, buf, sizeof(buf)) > 0);
	CHECK(strstr(buf, "\r\n\r\nuser:alice") != NULL);
	CHECK(ask_tls(port, p[0], NULL, NULL, req, buf, sizeof(buf)) > 0);
	CHECK(strstr(buf, "\r\n\r\nnone") != NULL);
	CHECK(ask_tls(port, p[0], p[6], p[7], req, buf, sizeof(buf)) > 0);
	CHECK(strstr(buf, "\r\n\r\nbad") != NULL);
	/* plain HTTP to an HTTPS port is not served */
	CHECK(ask(port, req, buf, sizeof(buf)) <= 0 || status(buf) != 200);
	cdl_http_free(h);
	free(ca), free(crt), free(key);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", dir, evil);
	CHECK_EQ(system(cmd), 0);
}

int main(void)
{
	CHECK(cdl_http_new("not-an-address", 0, "test") == NULL);
	CHECK(cdl_http_new("127.0.0.1", 70000, "test") == NULL);
	cdl_http *h = cdl_http_new("127.0.0.1", 0, "test");
	CHECK(h != NULL);
	CHECK_EQ(cdl_http_route(h, "/a", h_name, NULL, "exact"), 0);
	CHECK_EQ(cdl_http_route(h, "/b/", h_name, NULL, "tree"), 0);
	CHECK_EQ(cdl_http_route(h, "/b/c/", h_name, NULL, "deeper"), 0);
	CHECK_EQ(cdl_http_route(h, "/up", h_count, done_count, NULL), 0);
	CHECK_EQ(cdl_http_route(h, "/a", h_name, NULL, "again"), -EEXIST);
	CHECK_EQ(cdl_http_route(h, "relative", h_name, NULL, NULL), -EINVAL);
	CHECK_EQ(cdl_http_route(h, "", h_name, NULL, NULL), -EINVAL);
	char longp[CDL_HTTP_PREFIX + 2];
	memset(longp, 'x', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = 0;
	CHECK_EQ(cdl_http_route(h, longp, h_name, NULL, NULL), -EINVAL);
	CHECK_EQ(cdl_http_start(h), 0);
	CHECK_EQ(cdl_http_route(h, "/late", h_name, NULL, NULL), -EINVAL);
	int port = cdl_http_port(h);
	CHECK(port > 0);

	static char buf[65536];
	CHECK(ask(port, "GET /a HTTP/1.0\r\n\r\n", buf, sizeof(buf)) > 0);
	CHECK_EQ(status(buf), 200);
	CHECK(strstr(buf, "\r\n\r\nexact /a") != NULL);
	CHECK(ask(port, "GET /a/x HTTP/1.0\r\n\r\n", buf, sizeof(buf)) > 0);
	CHECK_EQ(status(buf), 404);
	CHECK(ask(port, "GET /b HTTP/1.0\r\n\r\n", buf, sizeof(buf)) > 0);
	CHECK(strstr(buf, "\r\n\r\ntree /b") != NULL);
	CHECK(ask(port, "GET /b/x/y HTTP/1.0\r\n\r\n", buf, sizeof(buf)) > 0);
	CHECK(strstr(buf, "\r\n\r\ntree /b/x/y") != NULL);
	CHECK(ask(port, "GET /b/c/d HTTP/1.0\r\n\r\n", buf, sizeof(buf)) > 0);
	CHECK(strstr(buf, "\r\n\r\ndeeper /b/c/d") != NULL);
	CHECK(ask(port, "GET /nowhere HTTP/1.0\r\n\r\n", buf, sizeof(buf)) > 0);
	CHECK_EQ(status(buf), 404);
	/* %00 arrives as 0x7f; other escapes decode */
	CHECK(ask(port, "GET /b/x%00y%41 HTTP/1.0\r\n\r\n", buf, sizeof(buf)) > 0);
	CHECK(strstr(buf, "\r\n\r\ntree /b/x\x7fyA") != NULL);

	/* a body larger than one read arrives in pieces */
	size_t body = 200000;
	char *req = xmalloc(body + 256);
	int hl = snprintf(req, 256, "PUT /up HTTP/1.0\r\nContent-Length: %zu\r\n\r\n", body);
	memset(req + hl, 'z', body);
	req[hl + body] = 0;
	CHECK(ask(port, req, buf, sizeof(buf)) > 0);
	CHECK_EQ(status(buf), 201);
	CHECK(strstr(buf, "\r\n\r\n200000") != NULL);
	free(req);
	cdl_http_free(h);
	CHECK_EQ(freed, 1);
	test_tls();
	return TEST_DONE();
}
