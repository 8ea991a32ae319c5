/* cdl_ui: what the web UI (issue 10) shares between the daemons that serve
 * it, the namenode (overview, datanodes, file browser) and the jobtracker
 * (jobs): the page and its assets, built into libcaudal from fs/ui/, and
 * small helpers for the JSON the page fetches.
 *
 * The page is one HTML file with one script and one style sheet, all
 * served by the daemon (no network needed); its Content-Security-Policy
 * lets it load nothing else and run no inline script, so a name that
 * slipped through unescaped still could not run. The script puts every
 * string into the page as text (textContent), never as markup. */
#ifndef CDL_UI_H
#define CDL_UI_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Longest query argument the UI reads (a path, a name); longer ones are
 * refused with 414. */
#define CDL_UI_ARG_MAX 4096

/* Serve GET url if it names the page ("/" or "/index.html", when the
 * caller accepts HTML) or an asset ("/ui/app.js", "/ui/style.css").
 * Returns MHD_YES/MHD_NO when it answered, -1 when url is none of them
 * (the caller answers). */
int cdl_ui_serve_static(struct MHD_Connection *conn, const char *url);

/* Does the caller's Accept header ask for HTML (a browser)? */
bool cdl_ui_wants_html(struct MHD_Connection *conn);

/* A reply with the UI's headers (no caching, nosniff, the CSP); body is
 * taken and freed. */
enum MHD_Result cdl_ui_reply(struct MHD_Connection *conn, unsigned code, const char *ctype,
			     char *body);
/* A JSON error reply {"error": msg}. */
enum MHD_Result cdl_ui_error(struct MHD_Connection *conn, unsigned code, const char *msg);

/* Query argument key, or def when absent. *too_long is set when it is
 * longer than CDL_UI_ARG_MAX (then def is returned). */
const char *cdl_ui_arg(struct MHD_Connection *conn, const char *key, const char *def,
		       bool *too_long);

/* s as a JSON string (quotes included): every control byte, quote,
 * backslash and '<', '>', '&' escaped as \uXXXX; bytes >= 0x80 go as they
 * are (the page decodes UTF-8, replacing what is not). NULL writes "". */
void cdl_json_str(FILE *f, const char *s);
void cdl_json_strn(FILE *f, const char *s, size_t n);
/* "key": as the start of a member, preceded by a comma unless first. */
void cdl_json_key(FILE *f, const char *key, bool first);

#endif
