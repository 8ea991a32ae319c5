/* Unit test of the HTTP layer (fs/cdl_http.h): a server on a free port of
 * 127.0.0.1 dispatches by exact and subtree prefixes (the longest wins),
 * answers 404 where no route matches, hands an upload to its handler
 * piece by piece with per-request state that the done callback frees, and
 * refuses bad routes and routes added once it runs. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cdl_http.h"
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
	return TEST_DONE();
}
