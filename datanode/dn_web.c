/* dn_web: WebHDFS's data side on the datanode. See dn_web.h. */
#include "dn_web.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "cdl_client.h"
#include "cdl_log.h"
#include "cdl_util.h"
#include "cdl_web.h"

struct dn_web {
	char *namenode, *host, *id;
	cdl_keyring *keys;
	int io_timeout_ms, rpc_timeout_ms;
	bool tls;
	cdl_client *base; /* one channel to the namenode, shared by every request */
};

dn_web *dn_web_new(const dn_web_opts *o)
{
	dn_web *w = xcalloc(1, sizeof(*w));
	w->namenode = xstrdup(o->namenode);
	w->host = xstrdup(o->host);
	w->id = xstrdup(o->id);
	w->keys = o->keys;
	w->io_timeout_ms = o->io_timeout_ms;
	w->rpc_timeout_ms = o->rpc_timeout_ms;
	cdl_client_opts co = {.namenode = w->namenode,
			      .client_host = w->host,
			      .io_timeout_ms = w->io_timeout_ms,
			      .rpc_timeout_ms = w->rpc_timeout_ms};
	w->base = cdl_client_new(&co);
	if (!w->base) {
		dn_web_free(w);
		return NULL;
	}
	return w;
}

void dn_web_free(dn_web *w)
{
	if (!w)
		return;
	cdl_client_free(w->base);
	free(w->namenode);
	free(w->host);
	free(w->id);
	free(w);
}

/* A request's state across the handler's calls. */
typedef struct wreq {
	dn_web *w;
	Caudal__WebOp op;
	cdl_client *c;
	cdl_writer *wr; /* CREATE, APPEND: open until the body ends */
	cdl_reader *rd; /* OPEN: owned by the response once queued */
	int err;	/* a write failed: the rest of the body is dropped */
	bool answered;	/* a reply is queued: the rest of the body is dropped */
	char *path;
} wreq;

static void wreq_free(wreq *q)
{
	if (q->wr)
		cdl_writer_abort(q->wr);
	if (q->rd)
		cdl_reader_close(q->rd);
	cdl_client_free(q->c);
	free(q->path);
	free(q);
}

static enum MHD_Result reply_err(struct MHD_Connection *conn, int err, const char *msg)
{
	unsigned code;
	char *body = cdl_web_error(err, msg, &code);
	return cdl_http_reply_str(conn, code, "application/json", body);
}

static const char *arg(struct MHD_Connection *conn, const char *key)
{
	const char *v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, key);
	return v && strlen(v) <= CDL_WEB_PARAM_MAX ? v : NULL;
}

/* ---------------------------------------------------------------- OPEN */

typedef struct rstream {
	cdl_client *c;
	cdl_reader *rd;
	uint64_t off, end;
} rstream;

static ssize_t read_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
	rstream *s = cls;
	uint64_t at = s->off + pos;
	if (at >= s->end)
		return MHD_CONTENT_READER_END_OF_STREAM;
	size_t n = max < s->end - at ? max : (size_t)(s->end - at);
	ssize_t got = cdl_reader_pread(s->rd, buf, n, at);
	if (got <= 0) {
		cdl_warn("WebHDFS OPEN: read at %llu failed: %s", (unsigned long long)at,
			 got == 0 ? "file shorter than announced" : strerror((int)-got));
		return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	return got;
}

static void read_free(void *cls)
{
	rstream *s = cls;
	cdl_reader_close(s->rd);
	cdl_client_free(s->c);
	free(s);
}

static enum MHD_Result do_open(wreq *q, struct MHD_Connection *conn)
{
	uint64_t off = 0, len = UINT64_MAX;
	const char *os = arg(conn, "offset"), *ls = arg(conn, "length");
	if ((os && !cdl_web_uint(os, INT64_MAX, &off)) ||
	    (ls && !cdl_web_uint(ls, INT64_MAX, &len)))
		return reply_err(conn, -EINVAL, "invalid offset or length");
	int rc = cdl_reader_open_path(q->c, q->path, &q->rd);
	if (rc < 0)
		return reply_err(conn, rc, NULL);
	uint64_t size = cdl_reader_size(q->rd);
	if (off > size)
		return reply_err(conn, -EINVAL, "offset is past the end of the file");
	uint64_t end = len > size - off ? size : off + len;
	rstream *s = xcalloc(1, sizeof(*s));
	s->c = q->c;
	s->rd = q->rd;
	s->off = off;
	s->end = end;
	struct MHD_Response *r =
	    MHD_create_response_from_callback(end - off, DN_WEB_CHUNK, read_cb, s, read_free);
	if (!r) {
		free(s);
		return MHD_NO;
	}
	q->c = NULL; /* the response owns them now */
	q->rd = NULL;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
	enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

/* ---------------------------------------------------------------- GETFILECHECKSUM */

/* SHA-256 of the whole file (Caudal's block checksums are XXH3, so HDFS's
 * MD5-of-MD5-of-CRC32 cannot be given). */
static enum MHD_Result do_checksum(wreq *q, struct MHD_Connection *conn)
{
	int rc = cdl_reader_open_path(q->c, q->path, &q->rd);
	if (rc < 0)
		return reply_err(conn, rc, NULL);
	uint64_t size = cdl_reader_size(q->rd);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL))
		abort();
	char *buf = xmalloc(DN_WEB_CHUNK);
	for (uint64_t at = 0; at < size && rc == 0;) {
		size_t n = size - at < DN_WEB_CHUNK ? (size_t)(size - at) : DN_WEB_CHUNK;
		ssize_t got = cdl_reader_pread(q->rd, buf, n, at);
		if (got <= 0)
			rc = got < 0 ? (int)got : -EIO;
		else
			EVP_DigestUpdate(md, buf, (size_t)got), at += (uint64_t)got;
	}
	free(buf);
	unsigned char dig[32];
	unsigned dl = 0;
	EVP_DigestFinal_ex(md, dig, &dl);
	EVP_MD_CTX_free(md);
	if (rc < 0)
		return reply_err(conn, rc, NULL);
	char hex[65];
	for (unsigned i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", dig[i]);
	json_t *fc = json_object();
	json_object_set_new(fc, "algorithm", json_string("SHA-256"));
	json_object_set_new(fc, "bytes", json_string(hex));
	json_object_set_new(fc, "length", json_integer(32));
	json_t *j = json_object();
	json_object_set_new(j, "FileChecksum", fc);
	return cdl_http_reply_str(conn, MHD_HTTP_OK, "application/json", cdl_web_dump(j));
}

/* ---------------------------------------------------------------- CREATE, APPEND */

static int start_write(wreq *q, struct MHD_Connection *conn)
{
	Caudal__Attr *attr = NULL;
	int rc;
	if (q->op == CAUDAL__WEB_OP__WEB_CREATE) {
		bool ow = false;
		uint64_t repl = 0, bs = 0;
		uint32_t perm = 0644;
		const char *s;
		if (((s = arg(conn, "overwrite")) && !cdl_web_bool(s, &ow)) ||
		    ((s = arg(conn, "replication")) && !cdl_web_uint(s, 32, &repl)) ||
		    ((s = arg(conn, "blocksize")) && !cdl_web_uint(s, INT64_MAX, &bs)) ||
		    ((s = arg(conn, "permission")) && !cdl_web_perm(s, &perm)))
			return -EINVAL;
		rc = cdl_create(q->c, q->path, perm, (uint32_t)repl, bs, ow, &attr);
	} else {
		rc = cdl_append_open(q->c, q->path, &attr);
	}
	if (rc < 0)
		return rc;
	rc = cdl_writer_open(q->c, attr, &q->wr);
	protobuf_c_message_free_unpacked(&attr->base, NULL);
	return rc;
}

static enum MHD_Result end_write(wreq *q, struct MHD_Connection *conn)
{
	int rc = q->err;
	if (q->wr) {
		int cr = cdl_writer_close(q->wr);
		q->wr = NULL;
		if (rc == 0)
			rc = cr;
	}
	if (rc < 0)
		return reply_err(conn, rc, NULL);
	if (q->op == CAUDAL__WEB_OP__WEB_APPEND)
		return cdl_http_reply(conn, MHD_HTTP_OK, "application/octet-stream", "", 0);
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	char *loc = xasprintf("webhdfs://%s%s", q->w->namenode, q->path);
	MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, loc);
	free(loc);
	enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_CREATED, r);
	MHD_destroy_response(r);
	return ret;
}

/* ---------------------------------------------------------------- dispatch */

/* Check the request against its ticket; fill q. On refusal queue the
 * answer and return false with *ret. */
static bool admit(dn_web *w, struct MHD_Connection *conn, const char *url, const char *method,
		  wreq *q, enum MHD_Result *ret)
{
	const char *opq = arg(conn, "op");
	const char *why = NULL;
	Caudal__WebOp op;
	const char *want;
	if (opq && !strcasecmp(opq, "OPEN"))
		op = CAUDAL__WEB_OP__WEB_OPEN, want = "GET";
	else if (opq && !strcasecmp(opq, "GETFILECHECKSUM"))
		op = CAUDAL__WEB_OP__WEB_CHECKSUM, want = "GET";
	else if (opq && !strcasecmp(opq, "CREATE"))
		op = CAUDAL__WEB_OP__WEB_CREATE, want = "PUT";
	else if (opq && !strcasecmp(opq, "APPEND"))
		op = CAUDAL__WEB_OP__WEB_APPEND, want = "POST";
	else {
		*ret = reply_err(conn, -EINVAL, "Invalid value for webhdfs parameter \"op\"");
		return false;
	}
	if (strcmp(method, want)) {
		*ret = reply_err(conn, -EINVAL, "op is not valid for this HTTP method");
		return false;
	}
	char *path = cdl_web_path(url, &why);
	if (!path) {
		*ret = reply_err(conn, -EINVAL, why);
		return false;
	}
	const char *ts = arg(conn, "ticket");
	uint8_t *raw = NULL;
	size_t rawlen = 0;
	Caudal__WebTicketId *t = NULL;
	if (!ts || cdl_b64url_decode(ts, CDL_WEB_TICKET_MAX, &raw, &rawlen) < 0)
		why = "missing or malformed ticket";
	else if (cdl_ticket_verify(w->keys, NULL, raw, rawlen, cdl_token_now_ms(), 0, &t, &why) < 0)
		; /* why set */
	else if (strcmp(t->datanode, w->id))
		why = "ticket issued for another datanode";
	else if (t->op != op &&
		 !(t->op == CAUDAL__WEB_OP__WEB_CREATE && op == CAUDAL__WEB_OP__WEB_APPEND))
		why = "ticket issued for another op"; /* a creator may append (nn_web.c) */
	else if (strcmp(t->path, path))
		why = "ticket issued for another path";
	if (!why && w->tls) {
		/* the ticket's caller must be the one asking */
		cdl_peer p;
		char ident[160];
		if (cdl_http_peer(conn, &p) < 0)
			why = "a client certificate of the cluster CA is required";
		else if (cdl_web_ident(&p, ident, sizeof(ident)), strcmp(ident, t->user))
			why = "ticket issued for another caller";
	}
	if (why) {
		cdl_info("WebHDFS %s %s refused: %s", opq, path, why);
		*ret = reply_err(conn, -EACCES, why);
		free(path);
		free(raw);
		if (t)
			caudal__web_ticket_id__free_unpacked(t, NULL);
		return false;
	}
	caudal__web_ticket_id__free_unpacked(t, NULL);
	q->c = cdl_client_new_sharing(w->base);
	cdl_client_set_ticket(q->c, raw, rawlen);
	free(raw);
	q->op = op;
	q->path = path;
	return true;
}

static enum MHD_Result http_web(void *arg_, struct MHD_Connection *conn, const char *url,
				const char *method, const char *upload, size_t *upload_size,
				void **con_cls)
{
	dn_web *w = arg_;
	wreq *q = *con_cls;
	if (!q) {
		q = xcalloc(1, sizeof(*q));
		q->w = w;
		*con_cls = q;
		enum MHD_Result ret;
		q->answered = true;
		if (!admit(w, conn, url, method, q, &ret))
			return ret;
		if (q->op == CAUDAL__WEB_OP__WEB_OPEN)
			return do_open(q, conn);
		if (q->op == CAUDAL__WEB_OP__WEB_CHECKSUM)
			return do_checksum(q, conn);
		int rc = start_write(q, conn);
		if (rc < 0)
			return reply_err(conn, rc, NULL);
		q->answered = false;
		return MHD_YES; /* the body follows */
	}
	if (q->answered) {
		*upload_size = 0;
		return MHD_YES;
	}
	if (*upload_size) {
		if (q->wr && q->err == 0) {
			int rc = cdl_writer_write(q->wr, upload, *upload_size);
			if (rc < 0) {
				q->err = rc;
				cdl_writer_abort(q->wr);
				q->wr = NULL;
			}
		}
		*upload_size = 0;
		return MHD_YES;
	}
	q->answered = true;
	return end_write(q, conn);
}

static void http_done(void *arg_, void *con_cls)
{
	(void)arg_;
	wreq_free(con_cls);
}

int dn_web_route(dn_web *w, cdl_http *h)
{
	w->tls = cdl_http_tls(h);
	return cdl_http_route(h, CDL_WEB_PREFIX "/", http_web, http_done, w);
}
