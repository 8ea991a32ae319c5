/* nn_web: WebHDFS v1 on the namenode. See nn_web.h. */
#include "nn_web.h"

#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#include "cdl_client.h"
#include "cdl_log.h"
#include "cdl_rpc.h"
#include "cdl_sec.h"
#include "cdl_web.h"
#include "nn_blocks.h"
#include "nn_ns.h"
#include "nn_token.h"

struct nn_web {
	nn_ns *ns;
	uint8_t key[CDL_WEB_NNKEY]; /* the namenode's own ticket secret */
	bool tls;		    /* the HTTP port speaks HTTPS */
	int64_t ticket_ms;	    /* how long a ticket lets an operation start */
	unsigned next_dn;	    /* round robin over datanodes for CREATE */
	pthread_mutex_t mu;
};

nn_web *nn_web_new(nn_ns *ns, int64_t ticket_ms)
{
	nn_web *w = xcalloc(1, sizeof(*w));
	w->ns = ns;
	w->ticket_ms = ticket_ms > 0 ? ticket_ms : 300000;
	if (getrandom(w->key, sizeof(w->key), 0) != (ssize_t)sizeof(w->key)) {
		cdl_err("WebHDFS: no random bytes for the ticket key");
		free(w);
		return NULL;
	}
	pthread_mutex_init(&w->mu, NULL);
	return w;
}

void nn_web_free(nn_web *w)
{
	if (!w)
		return;
	OPENSSL_cleanse(w->key, sizeof(w->key));
	pthread_mutex_destroy(&w->mu);
	free(w);
}

/* ---------------------------------------------------------------- replies */

static enum MHD_Result reply_json(struct MHD_Connection *conn, unsigned code, json_t *j)
{
	return cdl_http_reply_str(conn, code, "application/json", cdl_web_dump(j));
}

static enum MHD_Result reply_err(struct MHD_Connection *conn, int err, const char *msg)
{
	unsigned code;
	char *body = cdl_web_error(err, msg, &code);
	return cdl_http_reply_str(conn, code, "application/json", body);
}

static enum MHD_Result reply_bad(struct MHD_Connection *conn, const char *msg)
{
	return reply_err(conn, -EINVAL, msg);
}

static enum MHD_Result reply_bool(struct MHD_Connection *conn, bool b)
{
	json_t *j = json_object();
	json_object_set_new(j, "boolean", json_boolean(b));
	return reply_json(conn, MHD_HTTP_OK, j);
}

static enum MHD_Result reply_empty(struct MHD_Connection *conn)
{
	return cdl_http_reply(conn, MHD_HTTP_OK, "application/json", "", 0);
}

/* ---------------------------------------------------------------- callers */

/* Who a request acts as: peer, and for an insecure caller the Cred its
 * requests claim (groups in its own storage). */
typedef struct caller {
	cdl_peer p;
	Caudal__Cred cred;
	uint32_t groups[NN_MAX_GROUPS];
	bool claim; /* requests carry cred */
} caller;

static const char *arg(struct MHD_Connection *conn, const char *key)
{
	const char *v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, key);
	return v && strlen(v) <= CDL_WEB_PARAM_MAX ? v : NULL;
}

/* Fill c from the connection; on refusal queue the answer and return
 * false with *ret set. */
static bool who(nn_web *w, struct MHD_Connection *conn, caller *c, enum MHD_Result *ret)
{
	memset(c, 0, sizeof(*c));
	const char *uname = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "user.name");
	if (MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "doas")) {
		*ret = reply_err(conn, -EACCES, "doas is not supported");
		return false;
	}
	if (w->tls) {
		int rc = cdl_http_peer(conn, &c->p);
		if (rc < 0) {
			*ret = cdl_http_reply_str(
			    conn, MHD_HTTP_UNAUTHORIZED, "application/json",
			    cdl_web_exception_json(
				"SecurityException", "java.lang.SecurityException",
				rc == -ENOENT
				    ? "a client certificate of the cluster CA is required"
				    : "the client certificate is not valid for this cluster"));
			return false;
		}
		if (c->p.role != CDL_ROLE_USER && c->p.role != CDL_ROLE_ADMIN) {
			cdl_info("WebHDFS: refused %s certificate '%s' from %s",
				 cdl_role_name(c->p.role), c->p.name, c->p.addr);
			*ret = reply_err(conn, -EACCES,
					 "only user and admin certificates may use WebHDFS");
			return false;
		}
		/* the certificate says who; a claim of anyone else is refused */
		if (uname && strcmp(uname, c->p.role == CDL_ROLE_ADMIN ? "root" : c->p.name)) {
			*ret = reply_err(conn, -EACCES,
					 "user.name does not match the client certificate");
			return false;
		}
		return true;
	}
	if (!uname || !*uname)
		uname = "nobody"; /* HDFS's anonymous dr.who */
	if (strlen(uname) > CDL_WEB_USER_MAX || strchr(uname, ':')) {
		*ret = reply_bad(conn, "invalid user.name");
		return false;
	}
	c->p.role = CDL_ROLE_INSECURE;
	snprintf(c->p.name, sizeof(c->p.name), "%s", uname);
	cdl_peer none;
	cdl_http_peer(conn, &none); /* plain HTTP: only the address */
	memcpy(c->p.addr, none.addr, sizeof(c->p.addr));
	if (!nn_ns_user_cred(uname, &c->cred, c->groups)) {
		*ret = reply_err(conn, -EACCES, "user.name names no user on the namenode's host");
		return false;
	}
	c->cred.groups = c->groups;
	c->claim = true;
	return true;
}

/* Run method m as c; the reply's err as -errno, 0, or -EACCES when the
 * caller's role may not call it. */
static int call(nn_web *w, caller *c, enum cdl_nn_method m, ProtobufCMessage *req,
		ProtobufCMessage *rep, cdl_arena *a)
{
	if (c->claim) {
		const ProtobufCFieldDescriptor *cf =
		    protobuf_c_message_descriptor_get_field_by_name(req->descriptor, "cred");
		if (cf)
			*(Caudal__Cred **)((char *)req + cf->offset) = &c->cred;
	}
	int rc = nn_ns_call(w->ns, (unsigned)m, &c->p, req, rep, a);
	if (rc < 0)
		return rc;
	return -(int)cdl_reply_err(rep);
}

static Caudal__Target *target(cdl_arena *a, const char *path)
{
	Caudal__Target *t = cdl_arena_alloc(a, sizeof(*t));
	caudal__target__init(t);
	t->path = (char *)path;
	return t;
}

static int stat_path(nn_web *w, caller *c, const char *path, Caudal__AttrReply *rep, cdl_arena *a)
{
	Caudal__GetAttrRequest req = CAUDAL__GET_ATTR_REQUEST__INIT;
	req.target = target(a, path);
	return call(w, c, CDL_NN_GetAttr, &req.base, &rep->base, a);
}

static const char *readlink_path(nn_web *w, caller *c, const char *path, cdl_arena *a)
{
	Caudal__GetAttrRequest req = CAUDAL__GET_ATTR_REQUEST__INIT;
	Caudal__ReadlinkReply rep = CAUDAL__READLINK_REPLY__INIT;
	req.target = target(a, path);
	return call(w, c, CDL_NN_Readlink, &req.base, &rep.base, a) == 0 ? rep.link : NULL;
}

/* ---------------------------------------------------------------- reads */

static enum MHD_Result op_getfilestatus(nn_web *w, struct MHD_Connection *conn, caller *c,
					const char *path, cdl_arena *a)
{
	Caudal__AttrReply rep = CAUDAL__ATTR_REPLY__INIT;
	int rc = stat_path(w, c, path, &rep, a);
	if (rc < 0)
		return reply_err(conn, rc, NULL);
	const char *link = S_ISLNK(rep.attr->mode) ? readlink_path(w, c, path, a) : NULL;
	json_t *j = json_object();
	json_object_set_new(j, "FileStatus", cdl_web_file_status(rep.attr, "", link));
	return reply_json(conn, MHD_HTTP_OK, j);
}

/* Entries of dir after `after` into arr, at most max; *more when some are
 * left. */
static int list_dir(nn_web *w, caller *c, const char *path, const char *after, size_t max,
		    json_t *arr, bool *more, cdl_arena *a)
{
	char *from = xstrdup(after ? after : "");
	int rc = 0;
	*more = false;
	for (;;) {
		Caudal__ReaddirRequest req = CAUDAL__READDIR_REQUEST__INIT;
		Caudal__ReaddirReply rep = CAUDAL__READDIR_REPLY__INIT;
		cdl_arena pa;
		cdl_arena_init(&pa);
		req.target = target(&pa, path);
		req.after = from;
		size_t left = max - json_array_size(arr);
		req.limit = left < NN_WEB_BATCH ? (uint32_t)left : NN_WEB_BATCH;
		rc = call(w, c, CDL_NN_Readdir, &req.base, &rep.base, &pa);
		if (rc == 0 && rep.dir && !S_ISDIR(rep.dir->mode))
			rc = -ENOTDIR;
		if (rc < 0) {
			cdl_arena_release(&pa);
			break;
		}
		for (size_t i = 0; i < rep.n_entries; i++) {
			const Caudal__Dirent *d = rep.entries[i];
			if (!d->attr)
				continue;
			const char *link = NULL;
			char *child = NULL;
			if (S_ISLNK(d->attr->mode)) {
				child = !strcmp(path, "/") ? xasprintf("/%s", d->name)
							   : xasprintf("%s/%s", path, d->name);
				link = readlink_path(w, c, child, &pa);
			}
			json_array_append_new(arr, cdl_web_file_status(d->attr, d->name, link));
			free(child);
		}
		bool rep_more = rep.more;
		if (rep.n_entries) {
			free(from);
			from = xstrdup(rep.entries[rep.n_entries - 1]->name);
		}
		cdl_arena_release(&pa);
		if (!rep_more)
			break;
		if (json_array_size(arr) >= max) {
			*more = true;
			break;
		}
	}
	free(from);
	(void)a;
	return rc;
}

static enum MHD_Result op_liststatus(nn_web *w, struct MHD_Connection *conn, caller *c,
				     const char *path, bool batch, cdl_arena *a)
{
	Caudal__AttrReply st = CAUDAL__ATTR_REPLY__INIT;
	int rc = stat_path(w, c, path, &st, a);
	if (rc < 0)
		return reply_err(conn, rc, NULL);
	json_t *arr = json_array();
	bool more = false;
	if (!S_ISDIR(st.attr->mode)) {
		/* HDFS lists a file as itself */
		json_array_append_new(arr, cdl_web_file_status(st.attr, "", NULL));
	} else {
		const char *after = batch ? arg(conn, "startAfter") : NULL;
		if (after && (strchr(after, '/') || strlen(after) > CDL_NAME_MAX)) {
			json_decref(arr);
			return reply_bad(conn, "invalid startAfter");
		}
		rc = list_dir(w, c, path, after, batch ? NN_WEB_BATCH : NN_WEB_LIST_MAX, arr, &more,
			      a);
		if (rc == 0 && more && !batch)
			rc = -E2BIG;
		if (rc < 0) {
			json_decref(arr);
			return reply_err(conn, rc,
					 rc == -E2BIG ? "directory too large for LISTSTATUS: use "
							"LISTSTATUS_BATCH"
						      : NULL);
		}
	}
	json_t *fs = json_object();
	json_object_set_new(fs, "FileStatus", arr);
	json_t *j = json_object();
	if (batch) {
		json_t *pl = json_object();
		json_object_set_new(pl, "FileStatuses", fs);
		json_t *dl = json_object();
		json_object_set_new(dl, "partialListing", pl);
		/* the namenode knows whether more follow, not how many */
		json_object_set_new(dl, "remainingEntries", json_integer(more ? 1 : 0));
		json_object_set_new(j, "DirectoryListing", dl);
	} else {
		json_object_set_new(j, "FileStatuses", fs);
	}
	return reply_json(conn, MHD_HTTP_OK, j);
}

struct summary {
	uint64_t dirs, files, length, consumed, seen;
};

/* Walk the subtree of dir inode ino (an explicit stack, bounded in
 * inodes visited). */
static int summarize(nn_web *w, caller *c, uint64_t root, struct summary *s)
{
	size_t cap = 64, n = 0;
	uint64_t *stack = xmalloc(cap * sizeof(*stack));
	stack[n++] = root;
	int rc = 0;
	while (n && rc == 0) {
		uint64_t ino = stack[--n];
		char *from = xstrdup("");
		for (;;) {
			Caudal__ReaddirRequest req = CAUDAL__READDIR_REQUEST__INIT;
			Caudal__ReaddirReply rep = CAUDAL__READDIR_REPLY__INIT;
			cdl_arena pa;
			cdl_arena_init(&pa);
			Caudal__Target *t = target(&pa, NULL);
			t->ino = ino;
			req.target = t;
			req.after = from;
			req.limit = NN_WEB_BATCH;
			rc = call(w, c, CDL_NN_Readdir, &req.base, &rep.base, &pa);
			if (rc < 0) {
				cdl_arena_release(&pa);
				break;
			}
			for (size_t i = 0; i < rep.n_entries; i++) {
				const Caudal__Attr *at = rep.entries[i]->attr;
				if (!at)
					continue;
				if (++s->seen > NN_WEB_SUMMARY_MAX) {
					rc = -E2BIG;
					break;
				}
				if (S_ISDIR(at->mode)) {
					s->dirs++;
					if (n == cap)
						stack =
						    xrealloc(stack, (cap *= 2) * sizeof(*stack));
					stack[n++] = at->ino;
				} else {
					s->files++;
					if (S_ISREG(at->mode)) {
						s->length += at->size;
						s->consumed += at->size * at->replication;
					}
				}
			}
			bool more = rep.more && rc == 0;
			if (rep.n_entries) {
				free(from);
				from = xstrdup(rep.entries[rep.n_entries - 1]->name);
			}
			cdl_arena_release(&pa);
			if (!more)
				break;
		}
		free(from);
	}
	free(stack);
	return rc;
}

static enum MHD_Result op_contentsummary(nn_web *w, struct MHD_Connection *conn, caller *c,
					 const char *path, cdl_arena *a)
{
	Caudal__AttrReply st = CAUDAL__ATTR_REPLY__INIT;
	int rc = stat_path(w, c, path, &st, a);
	if (rc < 0)
		return reply_err(conn, rc, NULL);
	struct summary s = {0};
	if (S_ISDIR(st.attr->mode)) {
		s.dirs = 1;
		rc = summarize(w, c, st.attr->ino, &s);
	} else {
		s.files = 1;
		if (S_ISREG(st.attr->mode)) {
			s.length = st.attr->size;
			s.consumed = st.attr->size * st.attr->replication;
		}
	}
	if (rc < 0)
		return reply_err(conn, rc, rc == -E2BIG ? "subtree too large to summarize" : NULL);
	json_t *cs = json_object();
	json_object_set_new(cs, "directoryCount", json_integer((json_int_t)s.dirs));
	json_object_set_new(cs, "fileCount", json_integer((json_int_t)s.files));
	json_object_set_new(cs, "length", json_integer((json_int_t)s.length));
	json_object_set_new(cs, "quota", json_integer(-1));
	json_object_set_new(cs, "spaceConsumed", json_integer((json_int_t)s.consumed));
	json_object_set_new(cs, "spaceQuota", json_integer(-1));
	json_t *j = json_object();
	json_object_set_new(j, "ContentSummary", cs);
	return reply_json(conn, MHD_HTTP_OK, j);
}

static enum MHD_Result op_homedir(struct MHD_Connection *conn, caller *c)
{
	json_t *j = json_object();
	char *p = xasprintf("/user/%s", c->p.role == CDL_ROLE_ADMIN ? "root" : c->p.name);
	json_object_set_new(j, "Path", cdl_web_jstr(p));
	free(p);
	return reply_json(conn, MHD_HTTP_OK, j);
}

/* ---------------------------------------------------------------- xattrs */

struct names {
	const char *v[64];
	size_t n;
	bool overflow;
};

static enum MHD_Result collect_names(void *cls, enum MHD_ValueKind kind, const char *key,
				     const char *value)
{
	(void)kind;
	struct names *ns = cls;
	if (strcmp(key, "xattr.name") || !value)
		return MHD_YES;
	if (ns->n == sizeof(ns->v) / sizeof(ns->v[0])) {
		ns->overflow = true;
		return MHD_NO;
	}
	ns->v[ns->n++] = value;
	return MHD_YES;
}

static json_t *xattr_value(const ProtobufCBinaryData *v, const char *enc)
{
	if (enc && !strcasecmp(enc, "hex")) {
		char *s = xmalloc(v->len * 2 + 3);
		memcpy(s, "0x", 3);
		for (size_t i = 0; i < v->len; i++)
			snprintf(s + 2 + 2 * i, 3, "%02x", v->data[i]);
		json_t *j = json_string(s);
		free(s);
		return j;
	}
	if (enc && !strcasecmp(enc, "base64")) {
		/* standard base64 with padding, as Java's Base64 writes it */
		static const char t[] =
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
		char *s = xmalloc(v->len / 3 * 4 + 8);
		size_t o = 0;
		memcpy(s, "0s", 3);
		o = 2;
		for (size_t i = 0; i < v->len; i += 3) {
			uint32_t x = (uint32_t)v->data[i] << 16;
			if (i + 1 < v->len)
				x |= (uint32_t)v->data[i + 1] << 8;
			if (i + 2 < v->len)
				x |= v->data[i + 2];
			s[o++] = t[x >> 18];
			s[o++] = t[(x >> 12) & 63];
			s[o++] = i + 1 < v->len ? t[(x >> 6) & 63] : '=';
			s[o++] = i + 2 < v->len ? t[x & 63] : '=';
		}
		s[o] = '\0';
		json_t *j = json_string(s);
		free(s);
		return j;
	}
	/* text: the value in double quotes, as HDFS shows it */
	char *s = xmalloc(v->len + 3);
	s[0] = '"';
	memcpy(s + 1, v->data, v->len);
	s[v->len + 1] = '"';
	s[v->len + 2] = '\0';
	json_t *j = memchr(v->data, 0, v->len) ? json_string("\"\"") : cdl_web_jstr(s);
	free(s);
	return j;
}

static enum MHD_Result op_getxattrs(nn_web *w, struct MHD_Connection *conn, caller *c,
				    const char *path, cdl_arena *a)
{
	const char *enc = arg(conn, "encoding");
	if (enc && strcasecmp(enc, "text") && strcasecmp(enc, "hex") && strcasecmp(enc, "base64"))
		return reply_bad(conn, "invalid encoding");
	struct names want = {0};
	MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_names, &want);
	if (want.overflow)
		return reply_bad(conn, "too many xattr.name parameters");
	Caudal__XattrReply lrep = CAUDAL__XATTR_REPLY__INIT;
	char **names;
	size_t nnames;
	if (want.n) {
		names = (char **)want.v;
		nnames = want.n;
	} else {
		Caudal__XattrRequest lreq = CAUDAL__XATTR_REQUEST__INIT;
		lreq.target = target(a, path);
		int rc = call(w, c, CDL_NN_ListXattr, &lreq.base, &lrep.base, a);
		if (rc < 0)
			return reply_err(conn, rc, NULL);
		names = lrep.names;
		nnames = lrep.n_names;
	}
	json_t *arr = json_array();
	for (size_t i = 0; i < nnames; i++) {
		Caudal__XattrRequest req = CAUDAL__XATTR_REQUEST__INIT;
		Caudal__XattrReply rep = CAUDAL__XATTR_REPLY__INIT;
		req.target = target(a, path);
		req.name = names[i];
		int rc = call(w, c, CDL_NN_GetXattr, &req.base, &rep.base, a);
		if (rc == -ENODATA && !want.n)
			continue; /* removed since the listing */
		if (rc < 0) {
			json_decref(arr);
			return reply_err(conn, rc,
					 rc == -ENODATA ? "At least one of the attributes provided "
							  "was not found."
							: NULL);
		}
		json_t *x = json_object();
		json_object_set_new(x, "name", cdl_web_jstr(names[i]));
		json_object_set_new(x, "value", xattr_value(&rep.value, enc));
		json_array_append_new(arr, x);
	}
	json_t *j = json_object();
	json_object_set_new(j, "XAttrs", arr);
	return reply_json(conn, MHD_HTTP_OK, j);
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* An xattr.value as HDFS encodes it: 0x hex, 0s base64, else text (quotes
 * around it dropped). */
static bool parse_value(const char *s, cdl_arena *a, ProtobufCBinaryData *out)
{
	size_t n = strlen(s);
	if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		if ((n - 2) % 2)
			return false;
		out->len = (n - 2) / 2;
		out->data = cdl_arena_alloc(a, out->len + 1);
		for (size_t i = 0; i < out->len; i++) {
			int hi = hexval(s[2 + 2 * i]), lo = hexval(s[3 + 2 * i]);
			if (hi < 0 || lo < 0)
				return false;
			out->data[i] = (uint8_t)(hi << 4 | lo);
		}
		return true;
	}
	if (n >= 2 && s[0] == '0' && (s[1] == 's' || s[1] == 'S')) {
		/* standard base64 -> base64url, padding dropped */
		char *t = xstrdup(s + 2);
		size_t tl = strlen(t);
		while (tl && t[tl - 1] == '=')
			t[--tl] = '\0';
		for (char *p = t; *p; p++)
			*p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
		uint8_t *buf;
		size_t bl;
		int rc = cdl_b64url_decode(t, CDL_WEB_PARAM_MAX, &buf, &bl);
		free(t);
		if (rc < 0)
			return false;
		out->data = cdl_arena_memdup(a, buf, bl ? bl : 1);
		out->len = bl;
		free(buf);
		return true;
	}
	if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
		s++;
		n -= 2;
	}
	out->data = cdl_arena_memdup(a, s, n + 1);
	out->len = n;
	return true;
}

static enum MHD_Result op_setxattr(nn_web *w, struct MHD_Connection *conn, caller *c,
				   const char *path, bool remove, cdl_arena *a)
{
	const char *name = arg(conn, "xattr.name");
	if (!name || !*name || strlen(name) > CDL_NAME_MAX)
		return reply_bad(conn, "missing or invalid xattr.name");
	Caudal__XattrRequest req = CAUDAL__XATTR_REQUEST__INIT;
	Caudal__Status rep = CAUDAL__STATUS__INIT;
	req.target = target(a, path);
	req.name = (char *)name;
	if (!remove) {
		const char *v = arg(conn, "xattr.value");
		const char *flag = arg(conn, "flag");
		if (!v)
			v = "";
		if (!parse_value(v, a, &req.value))
			return reply_bad(conn, "invalid xattr.value");
		if (flag && !strcasecmp(flag, "CREATE"))
			req.flags = 1;
		else if (flag && !strcasecmp(flag, "REPLACE"))
			req.flags = 2;
		else if (flag && *flag && strcasecmp(flag, "CREATE,REPLACE") &&
			 strcasecmp(flag, "REPLACE,CREATE"))
			return reply_bad(conn, "invalid flag");
	}
	int rc = call(w, c, remove ? CDL_NN_RemoveXattr : CDL_NN_SetXattr, &req.base, &rep.base, a);
	if (rc < 0)
		return reply_err(
		    conn, rc,
		    rc == -ENODATA ? "No matching attributes found for remove operation" : NULL);
	return reply_empty(conn);
}

/* ---------------------------------------------------------------- changes */

static enum MHD_Result op_mkdirs(nn_web *w, struct MHD_Connection *conn, caller *c,
				 const char *path, cdl_arena *a)
{
	uint32_t perm = 0755;
	const char *ps = arg(conn, "permission");
	if (ps && !cdl_web_perm(ps, &perm))
		return reply_bad(conn, "invalid permission");
	Caudal__MkdirRequest req = CAUDAL__MKDIR_REQUEST__INIT;
	Caudal__AttrReply rep = CAUDAL__ATTR_REPLY__INIT;
	req.target = target(a, path);
	req.mode = perm;
	req.parents = true;
	int rc = call(w, c, CDL_NN_Mkdir, &req.base, &rep.base, a);
	if (rc < 0)
		return reply_err(conn, rc, NULL);
	return reply_bool(conn, true);
}

static enum MHD_Result op_delete(nn_web *w, struct MHD_Connection *conn, caller *c,
				 const char *path, cdl_arena *a)
{
	bool rec = false;
	const char *r = arg(conn, "recursive");
	if (r && !cdl_web_bool(r, &rec))
		return reply_bad(conn, "invalid recursive");
	if (!strcmp(path, "/"))
		return reply_bool(conn, false); /* HDFS never deletes the root */
	Caudal__DeleteRequest req = CAUDAL__DELETE_REQUEST__INIT;
	Caudal__Status rep = CAUDAL__STATUS__INIT;
	req.target = target(a, path);
	req.recursive = rec;
	int rc = call(w, c, CDL_NN_Delete, &req.base, &rep.base, a);
	if (rc == -ENOENT)
		return reply_bool(conn, false);
	if (rc < 0)
		return reply_err(conn, rc, NULL);
	return reply_bool(conn, true);
}

static enum MHD_Result op_rename(nn_web *w, struct MHD_Connection *conn, caller *c,
				 const char *path, cdl_arena *a)
{
	const char *d = arg(conn, "destination");
	const char *why = "missing destination";
	char *dst = d ? cdl_web_param_path(d, &why) : NULL;
	if (!dst)
		return reply_bad(conn, why);
	char *to = dst;
	/* HDFS's rename moves into an existing directory */
	Caudal__AttrReply st = CAUDAL__ATTR_REPLY__INIT;
	if (stat_path(w, c, dst, &st, a) == 0 && S_ISDIR(st.attr->mode)) {
		const char *base = strrchr(path, '/') + 1;
		to = !strcmp(dst, "/") ? xasprintf("/%s", base) : xasprintf("%s/%s", dst, base);
		free(dst);
		dst = to;
	}
	Caudal__RenameRequest req = CAUDAL__RENAME_REQUEST__INIT;
	Caudal__Status rep = CAUDAL__STATUS__INIT;
	req.src = target(a, path);
	req.dst = target(a, to);
	req.noreplace = true;
	int rc = strcmp(path, "/") ? call(w, c, CDL_NN_Rename, &req.base, &rep.base, a) : -EINVAL;
	free(dst);
	/* as HDFS: a rename that cannot happen answers false; a refusal is an
	 * exception */
	if (rc == -EACCES || rc == -EPERM || rc == -EROFS)
		return reply_err(conn, rc, NULL);
	return reply_bool(conn, rc == 0);
}

static enum MHD_Result op_symlink(nn_web *w, struct MHD_Connection *conn, caller *c,
				  const char *path, cdl_arena *a)
{
	const char *d = arg(conn, "destination");
	if (!d || !*d || strlen(d) > CDL_PATH_MAX)
		return reply_bad(conn, "missing or invalid destination");
	for (const char *p = d; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return reply_bad(conn, "destination contains a control character");
	bool parents = false;
	const char *cp = arg(conn, "createParent");
	if (cp && !cdl_web_bool(cp, &parents))
		return reply_bad(conn, "invalid createParent");
	if (parents) {
		char *dir = xstrdup(path);
		*strrchr(dir, '/') = '\0';
		if (*dir) {
			Caudal__MkdirRequest mreq = CAUDAL__MKDIR_REQUEST__INIT;
			Caudal__AttrReply mrep = CAUDAL__ATTR_REPLY__INIT;
			mreq.target = target(a, cdl_arena_strdup(a, dir));
			mreq.mode = 0755;
			mreq.parents = true;
			int rc = call(w, c, CDL_NN_Mkdir, &mreq.base, &mrep.base, a);
			if (rc < 0) {
				free(dir);
				return reply_err(conn, rc, NULL);
			}
		}
		free(dir);
	}
	Caudal__SymlinkRequest req = CAUDAL__SYMLINK_REQUEST__INIT;
	Caudal__AttrReply rep = CAUDAL__ATTR_REPLY__INIT;
	req.target = target(a, path);
	req.link = (char *)d;
	int rc = call(w, c, CDL_NN_Symlink, &req.base, &rep.base, a);
	if (rc < 0)
		return reply_err(conn, rc, NULL);
	return reply_empty(conn);
}

static enum MHD_Result op_setreplication(nn_web *w, struct MHD_Connection *conn, caller *c,
					 const char *path, cdl_arena *a)
{
	uint64_t r = 0;
	const char *s = arg(conn, "replication");
	if (s && !cdl_web_uint(s, 32, &r))
		return reply_bad(conn, "invalid replication");
	Caudal__AttrReply st = CAUDAL__ATTR_REPLY__INIT;
	int rc = stat_path(w, c, path, &st, a);
	if (rc < 0)
		return reply_err(conn, rc, NULL);
	if (!S_ISREG(st.attr->mode))
		return reply_bool(conn, false); /* HDFS: false for a directory */
	Caudal__SetReplicationRequest req = CAUDAL__SET_REPLICATION_REQUEST__INIT;
	Caudal__Status rep = CAUDAL__STATUS__INIT;
	req.target = target(a, path);
	req.replication = s ? (uint32_t)r : 0;
	if (!req.replication)
		return reply_bad(conn, "replication must be 1..32");
	rc = call(w, c, CDL_NN_SetReplication, &req.base, &rep.base, a);
	if (rc < 0)
		return reply_err(conn, rc, NULL);
	return reply_bool(conn, true);
}

/* A user or group given by name (on the namenode's host) or number. */
static bool lookup_id(const char *s, bool group, uint32_t *out)
{
	uint64_t v;
	if (cdl_web_uint(s, UINT32_MAX - 1, &v)) {
		*out = (uint32_t)v;
		return true;
	}
	char buf[4096];
	if (group) {
		struct group g, *gp = NULL;
		if (getgrnam_r(s, &g, buf, sizeof(buf), &gp) || !gp)
			return false;
		*out = gp->gr_gid;
	} else {
		struct passwd p, *pp = NULL;
		if (getpwnam_r(s, &p, buf, sizeof(buf), &pp) || !pp)
			return false;
		*out = pp->pw_uid;
	}
	return true;
}

static enum MHD_Result op_setattr(nn_web *w, struct MHD_Connection *conn, caller *c,
				  const char *path, const char *op, cdl_arena *a)
{
	Caudal__SetAttrRequest req = CAUDAL__SET_ATTR_REQUEST__INIT;
	Caudal__AttrReply rep = CAUDAL__ATTR_REPLY__INIT;
	req.target = target(a, path);
	bool truncate = false;
	if (!strcmp(op, "SETPERMISSION")) {
		uint32_t perm = 0755;
		const char *ps = arg(conn, "permission");
		if (ps && !cdl_web_perm(ps, &perm))
			return reply_bad(conn, "invalid permission");
		req.valid = CAUDAL__SET_ATTR_FIELD__SA_MODE;
		req.mode = perm;
	} else if (!strcmp(op, "SETOWNER")) {
		const char *o = arg(conn, "owner"), *g = arg(conn, "group");
		if ((!o || !*o) && (!g || !*g))
			return reply_bad(conn, "owner or group is required");
		if (o && *o) {
			if (!lookup_id(o, false, &req.uid))
				return reply_bad(conn, "unknown owner");
			req.valid |= CAUDAL__SET_ATTR_FIELD__SA_UID;
		}
		if (g && *g) {
			if (!lookup_id(g, true, &req.gid))
				return reply_bad(conn, "unknown group");
			req.valid |= CAUDAL__SET_ATTR_FIELD__SA_GID;
		}
	} else if (!strcmp(op, "SETTIMES")) {
		int64_t m = -1, at = -1;
		const char *ms = arg(conn, "modificationtime"), *as = arg(conn, "accesstime");
		if ((ms && !cdl_web_int(ms, &m)) || (as && !cdl_web_int(as, &at)) || m < -1 ||
		    at < -1 || m > INT64_MAX / 1000000 || at > INT64_MAX / 1000000)
			return reply_bad(conn, "invalid time");
		if (m >= 0) {
			req.valid |= CAUDAL__SET_ATTR_FIELD__SA_MTIME;
			req.mtime_ns = m * 1000000;
		}
		if (at >= 0) {
			req.valid |= CAUDAL__SET_ATTR_FIELD__SA_ATIME;
			req.atime_ns = at * 1000000;
		}
		if (!req.valid)
			return reply_empty(conn);
	} else { /* TRUNCATE */
		uint64_t len;
		const char *ls = arg(conn, "newlength");
		if (!ls || !cdl_web_uint(ls, INT64_MAX, &len))
			return reply_bad(conn, "missing or invalid newlength");
		req.valid = CAUDAL__SET_ATTR_FIELD__SA_SIZE;
		req.size = len;
		truncate = true;
		Caudal__AttrReply st = CAUDAL__ATTR_REPLY__INIT;
		int rc = stat_path(w, c, path, &st, a);
		if (rc < 0)
			return reply_err(conn, rc, NULL);
		if (!S_ISREG(st.attr->mode))
			return reply_err(conn, -EISDIR, "not a file");
		if (len > st.attr->size)
			return reply_bad(conn, "newlength is past the end of the file");
	}
	int rc = call(w, c, CDL_NN_SetAttr, &req.base, &rep.base, a);
	if (rc < 0)
		return reply_err(conn, rc, NULL);
	return truncate ? reply_bool(conn, true) : reply_empty(conn);
}

/* ---------------------------------------------------------------- redirects */

/* A live datanode serving HTTP: the first of locs that does, else the next
 * one in turn. host and port filled; false when there is none. */
static bool pick_dn(nn_web *w, Caudal__DatanodeInfo *const *locs, size_t nlocs, char *id,
		    size_t idlen, char *host, size_t hostlen, unsigned *port)
{
	for (size_t i = 0; i < nlocs; i++)
		if (locs[i]->http_port && locs[i]->alive) {
			snprintf(id, idlen, "%s", locs[i]->id);
			snprintf(host, hostlen, "%s", locs[i]->host);
			*port = locs[i]->http_port;
			return true;
		}
	nn_ns *ns = w->ns;
	pthread_mutex_lock(&w->mu);
	unsigned start = w->next_dn++;
	pthread_mutex_unlock(&w->mu);
	bool found = false;
	pthread_mutex_lock(&ns->lock);
	int n = ns->bl->ndn;
	for (int k = 0; k < n && !found; k++) {
		const nn_dn *d = ns->bl->dns[(start + (unsigned)k) % (unsigned)n];
		if (!d->alive || !d->http_port || d->decommissioning)
			continue;
		snprintf(id, idlen, "%s", d->id);
		snprintf(host, hostlen, "%s", d->host);
		*port = d->http_port;
		found = true;
	}
	pthread_mutex_unlock(&ns->lock);
	return found;
}

/* path with every byte but unreserved ones and '/' percent-escaped. */
static char *escape_path(const char *p)
{
	char *out = xmalloc(strlen(p) * 3 + 1);
	size_t o = 0;
	for (const unsigned char *s = (const unsigned char *)p; *s; s++) {
		if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || strchr("-._~/", *s))
			out[o++] = (char)*s;
		else
			o += (size_t)sprintf(out + o, "%%%02X", *s);
	}
	out[o] = '\0';
	return out;
}

static enum MHD_Result op_redirect(nn_web *w, struct MHD_Connection *conn, caller *c,
				   const char *path, const char *op, cdl_arena *a)
{
	Caudal__WebOp wop;
	char params[512] = "";
	Caudal__DatanodeInfo *const *locs = NULL;
	size_t nlocs = 0;
	if (!strcmp(op, "OPEN") || !strcmp(op, "GETFILECHECKSUM")) {
		bool open = !strcmp(op, "OPEN");
		wop = open ? CAUDAL__WEB_OP__WEB_OPEN : CAUDAL__WEB_OP__WEB_CHECKSUM;
		uint64_t off = 0, len = 0;
		const char *os = arg(conn, "offset"), *ls = arg(conn, "length");
		if (open && os && !cdl_web_uint(os, INT64_MAX, &off))
			return reply_bad(conn, "invalid offset");
		if (open && ls && !cdl_web_uint(ls, INT64_MAX, &len))
			return reply_bad(conn, "invalid length");
		/* the caller may read it (and it is a file): ask where its
		 * first wanted block is */
		Caudal__GetBlocksRequest req = CAUDAL__GET_BLOCKS_REQUEST__INIT;
		Caudal__GetBlocksReply rep = CAUDAL__GET_BLOCKS_REPLY__INIT;
		req.target = target(a, path);
		req.offset = off;
		req.length = 1;
		int rc = call(w, c, CDL_NN_GetBlocks, &req.base, &rep.base, a);
		if (rc < 0)
			return reply_err(conn, rc, NULL);
		if (off > rep.attr->size)
			return reply_bad(conn, "offset is past the end of the file");
		if (rep.n_blocks)
			locs = rep.blocks[0]->locs, nlocs = rep.blocks[0]->n_locs;
		if (open && ls)
			snprintf(params, sizeof(params), "&offset=%llu&length=%llu",
				 (unsigned long long)off, (unsigned long long)len);
		else if (open)
			snprintf(params, sizeof(params), "&offset=%llu", (unsigned long long)off);
	} else if (!strcmp(op, "CREATE")) {
		wop = CAUDAL__WEB_OP__WEB_CREATE;
		bool ow = false;
		uint64_t repl = 0, bs = 0;
		uint32_t perm = 0644;
		const char *s;
		if ((s = arg(conn, "overwrite")) && !cdl_web_bool(s, &ow))
			return reply_bad(conn, "invalid overwrite");
		if ((s = arg(conn, "replication")) && !cdl_web_uint(s, 32, &repl))
			return reply_bad(conn, "invalid replication");
		if ((s = arg(conn, "blocksize")) && !cdl_web_uint(s, INT64_MAX, &bs))
			return reply_bad(conn, "invalid blocksize");
		if ((s = arg(conn, "permission")) && !cdl_web_perm(s, &perm))
			return reply_bad(conn, "invalid permission");
		snprintf(params, sizeof(params),
			 "&overwrite=%s&replication=%llu&blocksize=%llu&permission=%o",
			 ow ? "true" : "false", (unsigned long long)repl, (unsigned long long)bs,
			 perm);
	} else { /* APPEND */
		wop = CAUDAL__WEB_OP__WEB_APPEND;
		Caudal__AttrReply st = CAUDAL__ATTR_REPLY__INIT;
		int rc = stat_path(w, c, path, &st, a);
		if (rc < 0)
			return reply_err(conn, rc, NULL);
		if (!S_ISREG(st.attr->mode))
			return reply_err(conn, -EISDIR, "not a file");
	}
	char id[256], host[256];
	unsigned port;
	if (!pick_dn(w, locs, nlocs, id, sizeof(id), host, sizeof(host), &port))
		return reply_err(conn, -EIO, "no datanode serves WebHDFS");
	char ident[160];
	cdl_web_ident(&c->p, ident, sizeof(ident));
	Caudal__WebTicketId t = CAUDAL__WEB_TICKET_ID__INIT;
	t.user = ident;
	t.op = wop;
	t.path = (char *)path;
	t.datanode = id;
	if (getrandom(&t.nonce, sizeof(t.nonce), 0) != (ssize_t)sizeof(t.nonce))
		return reply_err(conn, -EIO, "no random bytes");
	char *tok = NULL;
	int rc = cdl_ticket_sign(nn_token_keyring(w->ns->tok), w->key, &t, cdl_token_now_ms(),
				 w->ticket_ms, &tok);
	if (rc < 0)
		return reply_err(conn, -EAGAIN, "no ticket key yet: retry shortly");
	char *ep = escape_path(path);
	char *loc = xasprintf("%s://%s:%u%s%s?op=%s%s&ticket=%s", w->tls ? "https" : "http", host,
			      port, CDL_WEB_PREFIX, ep, op, params, tok);
	free(ep);
	free(tok);
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	if (!r) {
		free(loc);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, loc);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
	free(loc);
	enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_TEMPORARY_REDIRECT, r);
	MHD_destroy_response(r);
	return ret;
}

/* ---------------------------------------------------------------- dispatch */

enum { M_GET = 1, M_PUT = 2, M_POST = 4, M_DELETE = 8 };

static const struct {
	const char *op;
	unsigned method;
} ops[] = {
    {"OPEN", M_GET},
    {"GETFILESTATUS", M_GET},
    {"LISTSTATUS", M_GET},
    {"LISTSTATUS_BATCH", M_GET},
    {"GETCONTENTSUMMARY", M_GET},
    {"GETFILECHECKSUM", M_GET},
    {"GETHOMEDIRECTORY", M_GET},
    {"GETXATTRS", M_GET},
    {"CREATE", M_PUT},
    {"MKDIRS", M_PUT},
    {"CREATESYMLINK", M_PUT},
    {"RENAME", M_PUT},
    {"SETREPLICATION", M_PUT},
    {"SETOWNER", M_PUT},
    {"SETPERMISSION", M_PUT},
    {"SETTIMES", M_PUT},
    {"SETXATTR", M_PUT},
    {"REMOVEXATTR", M_PUT},
    {"APPEND", M_POST},
    {"TRUNCATE", M_POST},
    {"DELETE", M_DELETE},
};

static unsigned method_bit(const char *m)
{
	return !strcmp(m, "GET")      ? M_GET
	       : !strcmp(m, "PUT")    ? M_PUT
	       : !strcmp(m, "POST")   ? M_POST
	       : !strcmp(m, "DELETE") ? M_DELETE
				      : 0;
}

static enum MHD_Result serve(nn_web *w, struct MHD_Connection *conn, const char *url,
			     const char *method, cdl_arena *a)
{
	const char *opq = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "op");
	if (!opq)
		return reply_bad(conn, "op is required");
	char op[32];
	size_t i = 0;
	for (; i < sizeof(op) - 1 && opq[i]; i++)
		op[i] = (char)(opq[i] >= 'a' && opq[i] <= 'z' ? opq[i] - 32 : opq[i]);
	op[i] = '\0';
	size_t k = 0;
	while (k < sizeof(ops) / sizeof(ops[0]) && (opq[i] || strcmp(ops[k].op, op)))
		k++;
	if (k == sizeof(ops) / sizeof(ops[0]))
		return reply_bad(conn, "Invalid value for webhdfs parameter \"op\"");
	if (!(ops[k].method & method_bit(method)))
		return reply_err(conn, -EINVAL, "op is not valid for this HTTP method");
	const char *why;
	char *path = cdl_web_path(url, &why);
	if (!path)
		return reply_bad(conn, why);
	caller c;
	enum MHD_Result ret;
	if (!who(w, conn, &c, &ret)) {
		free(path);
		return ret;
	}
	const char *p = cdl_arena_strdup(a, path);
	free(path);
	if (!strcmp(op, "GETFILESTATUS"))
		return op_getfilestatus(w, conn, &c, p, a);
	if (!strcmp(op, "LISTSTATUS") || !strcmp(op, "LISTSTATUS_BATCH"))
		return op_liststatus(w, conn, &c, p, !strcmp(op, "LISTSTATUS_BATCH"), a);
	if (!strcmp(op, "GETCONTENTSUMMARY"))
		return op_contentsummary(w, conn, &c, p, a);
	if (!strcmp(op, "GETHOMEDIRECTORY"))
		return op_homedir(conn, &c);
	if (!strcmp(op, "GETXATTRS"))
		return op_getxattrs(w, conn, &c, p, a);
	if (!strcmp(op, "SETXATTR") || !strcmp(op, "REMOVEXATTR"))
		return op_setxattr(w, conn, &c, p, !strcmp(op, "REMOVEXATTR"), a);
	if (!strcmp(op, "MKDIRS"))
		return op_mkdirs(w, conn, &c, p, a);
	if (!strcmp(op, "DELETE"))
		return op_delete(w, conn, &c, p, a);
	if (!strcmp(op, "RENAME"))
		return op_rename(w, conn, &c, p, a);
	if (!strcmp(op, "CREATESYMLINK"))
		return op_symlink(w, conn, &c, p, a);
	if (!strcmp(op, "SETREPLICATION"))
		return op_setreplication(w, conn, &c, p, a);
	if (!strcmp(op, "SETPERMISSION") || !strcmp(op, "SETOWNER") || !strcmp(op, "SETTIMES") ||
	    !strcmp(op, "TRUNCATE"))
		return op_setattr(w, conn, &c, p, op, a);
	return op_redirect(w, conn, &c, p, op, a);
}

/* Every request is answered at its first call (bodies are for the
 * datanodes); a body sent here anyway is left unread and the connection
 * closed after the answer. */
static enum MHD_Result http_web(void *arg_, struct MHD_Connection *conn, const char *url,
				const char *method, const char *upload, size_t *upload_size,
				void **con_cls)
{
	(void)upload, (void)upload_size;
	nn_web *w = arg_;
	if (*con_cls) {
		*upload_size = 0; /* answered already: drop what follows */
		return MHD_YES;
	}
	*con_cls = w; /* marks the request answered; nothing to free */
	cdl_arena a;
	cdl_arena_init(&a);
	enum MHD_Result r = serve(w, conn, url, method, &a);
	cdl_arena_release(&a);
	return r;
}

int nn_web_route(nn_web *w, cdl_http *h)
{
	w->tls = cdl_http_tls(h);
	return cdl_http_route(h, CDL_WEB_PREFIX "/", http_web, NULL, w);
}

/* ---------------------------------------------------------------- WebCall */

/* Is method m one the ticket's op needs? *opening: it starts the
 * operation, so the ticket must not have expired. */
static bool allowed(Caudal__WebOp op, unsigned m, bool *opening)
{
	*opening = m == CDL_NN_GetAttr || m == CDL_NN_Create || m == CDL_NN_Append;
	switch (op) {
	case CAUDAL__WEB_OP__WEB_OPEN:
	case CAUDAL__WEB_OP__WEB_CHECKSUM:
		return m == CDL_NN_GetAttr || m == CDL_NN_GetBlocks || m == CDL_NN_ReportBad;
	case CAUDAL__WEB_OP__WEB_CREATE:
		/* a creator may go on appending to what it made (fsspec writes a
		 * file as a CREATE then APPENDs to the same location) */
		return m == CDL_NN_Create || m == CDL_NN_Append || m == CDL_NN_AddBlock ||
		       m == CDL_NN_Complete || m == CDL_NN_RenewLease ||
		       m == CDL_NN_UpdatePipeline || m == CDL_NN_ReportBad;
	case CAUDAL__WEB_OP__WEB_APPEND:
		return m == CDL_NN_Append || m == CDL_NN_AddBlock || m == CDL_NN_Complete ||
		       m == CDL_NN_RenewLease || m == CDL_NN_UpdatePipeline ||
		       m == CDL_NN_ReportBad;
	default:
		return false;
	}
}

/* Does req name only the ticket's path (or the inode that path names
 * now, as c sees it)? */
static bool on_path(nn_web *w, caller *c, const Caudal__WebTicketId *t, const ProtobufCMessage *req,
		    cdl_arena *a)
{
	const ProtobufCMessageDescriptor *d = req->descriptor;
	const ProtobufCFieldDescriptor *tf =
	    protobuf_c_message_descriptor_get_field_by_name(d, "target");
	const ProtobufCFieldDescriptor *inf =
	    protobuf_c_message_descriptor_get_field_by_name(d, "ino");
	uint64_t ino = 0;
	if (tf && tf->type == PROTOBUF_C_TYPE_MESSAGE) {
		const Caudal__Target *tg =
		    *(Caudal__Target *const *)((const char *)req + tf->offset);
		if (!tg)
			return false;
		if (!tg->ino && !tg->parent && !tg->name[0])
			return !strcmp(tg->path, t->path);
		if (tg->parent || tg->name[0])
			return false;
		ino = tg->ino;
	} else if (inf && inf->type == PROTOBUF_C_TYPE_UINT64) {
		ino = *(const uint64_t *)((const char *)req + inf->offset);
	} else {
		return true; /* RenewLease, ReportBad: no file named */
	}
	Caudal__AttrReply st = CAUDAL__ATTR_REPLY__INIT;
	return ino && stat_path(w, c, t->path, &st, a) == 0 && st.attr->ino == ino;
}

void nn_web_call(nn_web *w, const Caudal__WebCallRequest *req, Caudal__WebCallReply *rep,
		 cdl_arena *a)
{
	const cdl_peer *dn = cdl_rpc_peer();
	int64_t now = cdl_token_now_ms();
	Caudal__WebTicketId *t = NULL;
	ProtobufCMessage *inner = NULL;
	const char *why = NULL;
	rep->err = EACCES;
	if (cdl_ticket_verify(nn_token_keyring(w->ns->tok), w->key, req->ticket.data,
			      req->ticket.len, now, NN_WEB_SESSION_MS, &t, &why) < 0)
		goto refuse;
	/* only the datanode the ticket was issued for may present it */
	if (dn && dn->role != CDL_ROLE_INSECURE) {
		bool ok = false;
		pthread_mutex_lock(&w->ns->lock);
		const nn_dn *d = nn_dn_find(w->ns->bl, t->datanode);
		ok = d && !strcmp(d->host, dn->name);
		pthread_mutex_unlock(&w->ns->lock);
		if (!ok) {
			why = "ticket issued for another datanode";
			goto refuse;
		}
	}
	bool opening;
	if (!allowed(t->op, req->method, &opening)) {
		why = "method not allowed by the ticket's op";
		goto refuse;
	}
	if (opening && t->expiry_ms <= now) {
		why = "ticket expired";
		goto refuse;
	}
	caller c;
	memset(&c, 0, sizeof(c));
	if (!cdl_web_ident_parse(t->user, &c.p)) {
		why = "ticket names no caller";
		goto refuse;
	}
	if (dn)
		snprintf(c.p.addr, sizeof(c.p.addr), "%s", dn->addr);
	if (c.p.role == CDL_ROLE_INSECURE) {
		if (!nn_ns_user_cred(c.p.name, &c.cred, c.groups)) {
			why = "ticket names no local user";
			goto refuse;
		}
		c.cred.groups = c.groups;
		c.claim = true;
	}
	const ProtobufCMethodDescriptor *md =
	    &caudal__client_protocol__descriptor.methods[req->method];
	inner = protobuf_c_message_unpack(md->input, NULL, req->request.len, req->request.data);
	if (!inner) {
		rep->err = EINVAL;
		why = "malformed request";
		goto refuse;
	}
	if (!on_path(w, &c, t, inner, a)) {
		why = "request names another file than the ticket's";
		goto refuse;
	}
	if (c.claim) { /* the ticket's caller replaces whatever the request claims */
		const ProtobufCFieldDescriptor *cf =
		    protobuf_c_message_descriptor_get_field_by_name(inner->descriptor, "cred");
		Caudal__Cred **slot = cf ? (Caudal__Cred **)((char *)inner + cf->offset) : NULL;
		if (slot && *slot) {
			caudal__cred__free_unpacked(*slot, NULL);
			*slot = NULL;
		}
	}
	ProtobufCMessage *out = cdl_arena_alloc(a, md->output->sizeof_message);
	int rc = call(w, &c, req->method, inner, out, a);
	if (rc == -EACCES && cdl_reply_err(out) == 0) {
		why = "the ticket's caller may not call this method";
		goto refuse;
	}
	rep->err = 0;
	rep->reply.len = protobuf_c_message_get_packed_size(out);
	rep->reply.data = cdl_arena_alloc(a, rep->reply.len + 1);
	protobuf_c_message_pack(out, rep->reply.data);
	/* the handler pointed inner's cred at c, which goes now */
	if (c.claim) {
		const ProtobufCFieldDescriptor *cf =
		    protobuf_c_message_descriptor_get_field_by_name(inner->descriptor, "cred");
		if (cf)
			*(Caudal__Cred **)((char *)inner + cf->offset) = NULL;
	}
	protobuf_c_message_free_unpacked(inner, NULL);
	caudal__web_ticket_id__free_unpacked(t, NULL);
	return;
refuse:
	cdl_info("WebCall refused to %s '%s' from %s: %s", dn ? cdl_role_name(dn->role) : "?",
		 dn ? dn->name : "?", dn ? dn->addr : "?", why);
	if (inner)
		protobuf_c_message_free_unpacked(inner, NULL);
	if (t)
		caudal__web_ticket_id__free_unpacked(t, NULL);
}
