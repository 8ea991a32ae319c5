/* Unit test of the web UI's shared part (fs/cdl_ui.h): JSON strings escape
 * every byte that could end a string or start markup (quotes, backslash,
 * control bytes, '<', '>', '&') and pass UTF-8 through; the page goes to
 * a browser (Accept: text/html) and not to curl, the assets to anyone,
 * each with the Content-Security-Policy and nosniff; a query argument
 * longer than CDL_UI_ARG_MAX is refused rather than used. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cdl_http.h"
#include "cdl_ui.h"
#include "cdl_util.h"
#include "test.h"

static char *json(const char *s, size_t n)
{
	char *b;
	size_t len;
	FILE *f = open_memstream(&b, &len);
	cdl_json_strn(f, s, n);
	fclose(f);
	return b;
}

static enum MHD_Result h_ui(void *arg, struct MHD_Connection *conn, const char *url,
			    const char *method, const char *upload, size_t *upload_size,
			    void **con_cls)
{
	(void)arg, (void)method, (void)upload, (void)upload_size, (void)con_cls;
	int rc = cdl_ui_serve_static(conn, url);
	if (rc >= 0)
		return (enum MHD_Result)rc;
	if (!strcmp(url, "/ui/arg")) {
		bool too_long = false;
		const char *v = cdl_ui_arg(conn, "v", "none", &too_long);
		if (too_long)
			return cdl_ui_error(conn, MHD_HTTP_URI_TOO_LONG, "argument too long");
		return cdl_ui_reply(conn, MHD_HTTP_OK, "text/plain", xasprintf("v=%s", v));
	}
	return cdl_ui_reply(conn, MHD_HTTP_OK, "text/plain", xstrdup("text status"));
}

static int ask(int port, const char *req, char *buf, size_t cap)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -1;
	size_t off = 0, len = strlen(req);
	while (off < len) {
		ssize_t w = write(fd, req + off, len - off);
		if (w <= 0)
			return -1;
		off += (size_t)w;
	}
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
	char *s = json("a\"b\\c", 5);
	CHECK(!strcmp(s, "\"a\\\"b\\\\c\""));
	free(s);
	s = json("<img src=x onerror=alert(1)>&", 29);
	CHECK(!strcmp(s, "\"\\u003cimg src=x onerror=alert(1)\\u003e\\u0026\""));
	free(s);
	s = json("\n\x01\x7f\x1f", 4);
	CHECK(!strcmp(s, "\"\\u000a\\u0001\\u007f\\u001f\""));
	free(s);
	s = json("caf\xc3\xa9 \xff", 7); /* UTF-8 and a stray byte go through */
	CHECK(!strcmp(s, "\"caf\xc3\xa9 \xff\""));
	free(s);
	s = json("a\0b", 3); /* a NUL inside a counted string is escaped too */
	CHECK(!strcmp(s, "\"a\\u0000b\""));
	free(s);
	char *b;
	size_t len;
	FILE *f = open_memstream(&b, &len);
	fputc('{', f);
	cdl_json_key(f, "k", true);
	cdl_json_str(f, NULL);
	cdl_json_key(f, "<", false);
	fputs("1}", f);
	fclose(f);
	CHECK(!strcmp(b, "{\"k\":\"\",\"\\u003c\":1}"));
	free(b);

	cdl_http *h = cdl_http_new("127.0.0.1", 0, "test");
	CHECK(h != NULL);
	CHECK_EQ(cdl_http_route(h, "/", h_ui, NULL, NULL), 0);
	CHECK_EQ(cdl_http_start(h), 0);
	int port = cdl_http_port(h);
	static char buf[1 << 20];
	CHECK(ask(port, "GET / HTTP/1.0\r\nAccept: text/html,*/*\r\n\r\n", buf, sizeof(buf)) > 0);
	CHECK_EQ(status(buf), 200);
	CHECK(strstr(buf, "Content-Type: text/html") != NULL);
	CHECK(strstr(buf, "Content-Security-Policy: default-src 'none'; script-src 'self'") !=
	      NULL);
	CHECK(strstr(buf, "X-Content-Type-Options: nosniff") != NULL);
	CHECK(strstr(buf, "<script src=\"/ui/app.js\"></script>") != NULL);
	CHECK(ask(port, "GET / HTTP/1.0\r\n\r\n", buf, sizeof(buf)) > 0);
	CHECK(strstr(buf, "\r\n\r\ntext status") != NULL);
	CHECK(ask(port, "GET /ui/app.js HTTP/1.0\r\n\r\n", buf, sizeof(buf)) > 0);
	CHECK_EQ(status(buf), 200);
	CHECK(strstr(buf, "Content-Type: text/javascript") != NULL);
	/* the script never hands data to the HTML parser */
	CHECK(strstr(buf, "innerHTML") == NULL && strstr(buf, "outerHTML") == NULL &&
	      strstr(buf, "insertAdjacentHTML") == NULL && strstr(buf, "document.write") == NULL);
	CHECK(ask(port, "GET /ui/style.css HTTP/1.0\r\n\r\n", buf, sizeof(buf)) > 0);
	CHECK(strstr(buf, "Content-Type: text/css") != NULL);
	CHECK(ask(port, "GET /ui/favicon.svg HTTP/1.0\r\n\r\n", buf, sizeof(buf)) > 0);
	CHECK(strstr(buf, "Content-Type: image/svg+xml") != NULL);
	CHECK(ask(port, "GET /ui/arg?v=abc HTTP/1.0\r\n\r\n", buf, sizeof(buf)) > 0);
	CHECK(strstr(buf, "\r\n\r\nv=abc") != NULL);
	char *req = xmalloc(CDL_UI_ARG_MAX + 64);
	int n = snprintf(req, 64, "GET /ui/arg?v=");
	memset(req + n, 'a', CDL_UI_ARG_MAX + 1);
	strcpy(req + n + CDL_UI_ARG_MAX + 1, " HTTP/1.0\r\n\r\n");
	CHECK(ask(port, req, buf, sizeof(buf)) > 0);
	CHECK_EQ(status(buf), 414);
	CHECK(strstr(buf, "{\"error\":\"argument too long\"}") != NULL);
	free(req);
	cdl_http_free(h);
	return TEST_DONE();
}
