/* cdl_ui: the web UI's page, assets and JSON helpers; see cdl_ui.h. */
#include "cdl_ui.h"

#include <stdlib.h>
#include <string.h>

#include "cdl_util.h"

/* fs/ui/ built in by the Makefile (xxd -i into gen/cdl_ui_assets.c). */
extern unsigned char fs_ui_index_html[];
extern unsigned int fs_ui_index_html_len;
extern unsigned char fs_ui_app_js[];
extern unsigned int fs_ui_app_js_len;
extern unsigned char fs_ui_style_css[];
extern unsigned int fs_ui_style_css_len;
extern unsigned char fs_ui_favicon_svg[];
extern unsigned int fs_ui_favicon_svg_len;

/* Only the daemon's own script, style and JSON; no inline script, no
 * frame, no form posting anywhere. */
#define CSP                                                                                        \
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "                \
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned code, const char *ctype,
			     struct MHD_Response *r, bool cache)
{
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Content-Security-Policy", CSP);
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL,
				cache ? "max-age=60" : "no-store");
	enum MHD_Result ret = MHD_queue_response(conn, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result asset(struct MHD_Connection *conn, const unsigned char *data, unsigned len,
			     const char *ctype)
{
	/* the arrays live as long as the program: no copy */
	return reply(conn, MHD_HTTP_OK, ctype,
		     MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_PERSISTENT),
		     true);
}

bool cdl_ui_wants_html(struct MHD_Connection *conn)
{
	const char *acc =
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
	return acc && strstr(acc, "text/html");
}

int cdl_ui_serve_static(struct MHD_Connection *conn, const char *url)
{
	if (!strcmp(url, "/index.html") || (!strcmp(url, "/") && cdl_ui_wants_html(conn)))
		return asset(conn, fs_ui_index_html, fs_ui_index_html_len,
			     "text/html; charset=utf-8");
	if (!strcmp(url, "/ui/app.js"))
		return asset(conn, fs_ui_app_js, fs_ui_app_js_len,
			     "text/javascript; charset=utf-8");
	if (!strcmp(url, "/ui/style.css"))
		return asset(conn, fs_ui_style_css, fs_ui_style_css_len, "text/css; charset=utf-8");
	if (!strcmp(url, "/ui/favicon.svg"))
		return asset(conn, fs_ui_favicon_svg, fs_ui_favicon_svg_len, "image/svg+xml");
	return -1;
}

enum MHD_Result cdl_ui_reply(struct MHD_Connection *conn, unsigned code, const char *ctype,
			     char *body)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (!r)
		free(body);
	return reply(conn, code, ctype, r, false);
}

enum MHD_Result cdl_ui_error(struct MHD_Connection *conn, unsigned code, const char *msg)
{
	char *b;
	size_t n;
	FILE *f = open_memstream(&b, &n);
	fputs("{\"error\":", f);
	cdl_json_str(f, msg);
	fputs("}\n", f);
	fclose(f);
	return cdl_ui_reply(conn, code, "application/json", b);
}

const char *cdl_ui_arg(struct MHD_Connection *conn, const char *key, const char *def,
		       bool *too_long)
{
	const char *v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, key);
	if (!v)
		return def;
	if (strnlen(v, CDL_UI_ARG_MAX + 1) > CDL_UI_ARG_MAX) {
		*too_long = true;
		return def;
	}
	return v;
}

void cdl_json_strn(FILE *f, const char *s, size_t n)
{
	fputc('"', f);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c == 0x7f || c == '<' || c == '>' || c == '&')
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

void cdl_json_str(FILE *f, const char *s)
{
	cdl_json_strn(f, s ? s : "", s ? strlen(s) : 0);
}

void cdl_json_key(FILE *f, const char *key, bool first)
{
	if (!first)
		fputc(',', f);
	cdl_json_str(f, key);
	fputc(':', f);
}
