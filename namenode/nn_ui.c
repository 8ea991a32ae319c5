/* nn_ui: the namenode's web UI JSON; see nn_ui.h. */
#include "nn_ui.h"

#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "caudal.pb-c.h"
#include "cdl_ui.h"
#include "cdl_util.h"

/* Block states are counted over the whole block map at most every
 * BLOCK_STATES_MS, and at most every BLOCK_STATES_SHARE passes' time: a pass
 * holds the namespace lock for a time that grows with the map (about 200 ms
 * per million blocks here), so browsers keep it at most 2% of the time. */
#define BLOCK_STATES_MS	   2000
#define BLOCK_STATES_SHARE 50

typedef struct nn_ui {
	nn_ns *ns;
	const char *jobs_url;
	pthread_mutex_t mu; /* the cached block states */
	int64_t counted_ms, pass_ms;
	struct block_states {
		uint64_t blocks, under, missing, corrupt, over, uc;
	} bs;
} nn_ui;

/* Who an HTTP caller acts as in the namespace: nobody. */
static const Caudal__Cred nobody = {PROTOBUF_C_MESSAGE_INIT(&caudal__cred__descriptor),
				    NN_UI_NOBODY, NN_UI_NOBODY, 0, NULL};

static void count_block(nn_blk *k, void *arg)
{
	struct {
		nn_blocks *bl;
		struct block_states *s;
	} *c = arg;
	int live = nn_blk_live(c->bl, k);
	c->s->blocks++;
	/* fsck's classes (nn_ns.c fsck_file), per block of the map */
	if (k->uc)
		c->s->uc++;
	if (live == 0 && !k->uc)
		c->s->missing++;
	else if (live < (int)k->repl && !k->uc)
		c->s->under++;
	else if (live > (int)k->repl)
		c->s->over++;
	if (k->ncorrupt)
		c->s->corrupt++;
}

static struct block_states block_states(nn_ui *u, int64_t *at)
{
	pthread_mutex_lock(&u->mu);
	int64_t now = cdl_now_ms();
	int64_t every = u->pass_ms * BLOCK_STATES_SHARE;
	if (every < BLOCK_STATES_MS)
		every = BLOCK_STATES_MS;
	if (!u->counted_ms || now - u->counted_ms >= every) {
		struct block_states s = {0};
		struct {
			nn_blocks *bl;
			struct block_states *s;
		} c = {u->ns->bl, &s};
		pthread_mutex_lock(&u->ns->lock);
		nn_blocks_foreach(u->ns->bl, count_block, &c);
		pthread_mutex_unlock(&u->ns->lock);
		u->bs = s;
		u->counted_ms = cdl_now_ms();
		u->pass_ms = u->counted_ms - now;
	}
	struct block_states s = u->bs;
	*at = u->counted_ms;
	pthread_mutex_unlock(&u->mu);
	return s;
}

static unsigned http_code(uint32_t err)
{
	switch (err) {
	case ENOENT:
		return MHD_HTTP_NOT_FOUND;
	case EACCES:
	case EPERM:
		return MHD_HTTP_FORBIDDEN;
	case ENAMETOOLONG:
		return MHD_HTTP_URI_TOO_LONG;
	case ENOTDIR:
	case EINVAL:
	case EISDIR:
		return MHD_HTTP_BAD_REQUEST;
	default:
		return MHD_HTTP_INTERNAL_SERVER_ERROR;
	}
}

static char *finish(FILE *f, char **buf)
{
	fputs("\n", f);
	fclose(f);
	return *buf;
}

static void json_u64(FILE *f, const char *key, uint64_t v, bool first)
{
	cdl_json_key(f, key, first);
	fprintf(f, "%" PRIu64, v);
}

static void json_bool(FILE *f, const char *key, bool v)
{
	cdl_json_key(f, key, false);
	fputs(v ? "true" : "false", f);
}

static void json_s(FILE *f, const char *key, const char *v)
{
	cdl_json_key(f, key, false);
	cdl_json_str(f, v);
}

/* ------------------------------------------------------------ overview */

static const char *event_name(Caudal__EventType t)
{
	static const char *const names[] = {"none",   "create", "close", "append",
					    "rename", "unlink", "mkdir", "setattr"};
	return (unsigned)t < sizeof(names) / sizeof(names[0]) ? names[t] : "unknown";
}

/* May nobody list the folder holding path (so see its name)? The answers
 * of one request are kept in seen. */
struct seen {
	char *dir[2 * NN_UI_EVENTS];
	bool ok[2 * NN_UI_EVENTS];
	size_t n;
};

static bool visible(nn_ns *ns, const char *path, struct seen *sn)
{
	if (!path || path[0] != '/')
		return false;
	const char *slash = strrchr(path, '/');
	char *dir = slash == path ? xstrdup("/") : xstrndup(path, (size_t)(slash - path));
	for (size_t i = 0; i < sn->n; i++)
		if (!strcmp(sn->dir[i], dir)) {
			free(dir);
			return sn->ok[i];
		}
	Caudal__ReaddirRequest q = CAUDAL__READDIR_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = dir;
	q.target = &t;
	q.limit = 1;
	q.cred = (Caudal__Cred *)&nobody;
	cdl_arena a;
	cdl_arena_init(&a);
	Caudal__ReaddirReply *r = (void *)nn_ns_call_local(ns, "Readdir", &q.base, &a);
	bool ok = r && r->err == 0;
	cdl_arena_release(&a);
	if (sn->n < sizeof(sn->dir) / sizeof(sn->dir[0])) {
		sn->dir[sn->n] = dir;
		sn->ok[sn->n++] = ok;
	} else {
		free(dir);
	}
	return ok;
}

static void events_json(nn_ui *u, FILE *f, cdl_arena *a)
{
	nn_ns *ns = u->ns;
	pthread_mutex_lock(&ns->lock);
	uint64_t last = ns->synced_txid;
	pthread_mutex_unlock(&ns->lock);
	/* transactions without an event (leases, block additions) take ids
	 * too: look back further than the events wanted, keep the newest */
	Caudal__EventsRequest q = CAUDAL__EVENTS_REQUEST__INIT;
	q.from_txid = last > 8 * NN_UI_EVENTS ? last - 8 * NN_UI_EVENTS + 1 : 1;
	q.max = 8 * NN_UI_EVENTS;
	Caudal__EventsReply *r = (void *)nn_ns_call_local(ns, "GetEvents", &q.base, a);
	cdl_json_key(f, "events", false);
	fputc('[', f);
	size_t first = r && r->n_events > NN_UI_EVENTS ? r->n_events - NN_UI_EVENTS : 0;
	struct seen sn = {.n = 0};
	unsigned hidden = 0;
	bool comma = false;
	for (size_t i = r ? r->n_events : 0; i > first; i--) {
		const Caudal__Event *e = r->events[i - 1];
		bool show = visible(ns, e->path, &sn) &&
			    (e->type != CAUDAL__EVENT_TYPE__EV_RENAME || visible(ns, e->dst, &sn));
		if (!show) {
			hidden++;
			continue;
		}
		fputs(comma ? ",{" : "{", f);
		comma = true;
		json_u64(f, "txid", e->txid, true);
		json_s(f, "type", event_name(e->type));
		json_s(f, "path", e->path);
		if (e->type == CAUDAL__EVENT_TYPE__EV_RENAME)
			json_s(f, "dst", e->dst);
		json_u64(f, "time_ms", (uint64_t)(e->time_ns / 1000000), false);
		if (e->type == CAUDAL__EVENT_TYPE__EV_CLOSE)
			json_u64(f, "size", e->size, false);
		fputc('}', f);
	}
	fputc(']', f);
	json_u64(f, "events_hidden", hidden, false);
	for (size_t i = 0; i < sn.n; i++)
		free(sn.dir[i]);
}

static char *overview(nn_ui *u)
{
	nn_ns *ns = u->ns;
	cdl_arena a;
	cdl_arena_init(&a);
	Caudal__Empty e = CAUDAL__EMPTY__INIT;
	Caudal__StatfsReply *st = (void *)nn_ns_call_local(ns, "Statfs", &e.base, &a);
	Caudal__ReportReply *rep = (void *)nn_ns_call_local(ns, "Report", &e.base, &a);
	int64_t at;
	struct block_states bs = block_states(u, &at);
	pthread_mutex_lock(&ns->lock);
	uint64_t txid = ns->txid, inodes = ns->inodes;
	int64_t started = ns->started_ms;
	pthread_mutex_unlock(&ns->lock);
	unsigned decom = 0, out = 0;
	for (size_t i = 0; rep && i < rep->n_datanodes; i++) {
		const Caudal__DatanodeInfo *d = rep->datanodes[i];
		out += d->alive && d->decommissioned;
		decom += d->alive && d->decommissioning && !d->decommissioned;
	}
	char *buf;
	size_t len;
	FILE *f = open_memstream(&buf, &len);
	fputc('{', f);
	cdl_json_key(f, "cluster", true);
	cdl_json_str(f, rep ? rep->cluster : "");
	json_bool(f, "safemode", st && st->safemode);
	json_s(f, "sync", ns->conf.sync_always ? "always" : "batch");
	json_u64(f, "batch_ms", (uint64_t)ns->conf.batch_ms, false);
	json_u64(f, "txid", txid, false);
	json_u64(f, "uptime_s", (uint64_t)((cdl_now_ms() - started) / 1000), false);
	if (st) {
		json_u64(f, "capacity", st->capacity, false);
		json_u64(f, "used", st->used, false);
		json_u64(f, "remaining", st->remaining, false);
		json_u64(f, "files", st->files, false);
		json_u64(f, "blocks", st->blocks, false);
		json_u64(f, "live", st->live, false);
		json_u64(f, "dead", st->dead, false);
		json_u64(f, "inline_files", st->inline_files, false);
		json_u64(f, "inline_bytes", st->inline_bytes, false);
	}
	json_u64(f, "inodes", inodes, false);
	json_u64(f, "decommissioning", decom, false);
	json_u64(f, "decommissioned", out, false);
	json_u64(f, "under_replicated", bs.under, false);
	json_u64(f, "missing", bs.missing, false);
	json_u64(f, "corrupt", bs.corrupt, false);
	json_u64(f, "over_replicated", bs.over, false);
	json_u64(f, "under_construction", bs.uc, false);
	json_u64(f, "block_states_age_ms", (uint64_t)(cdl_now_ms() - at), false);
	events_json(u, f, &a);
	fputc('}', f);
	cdl_arena_release(&a);
	return finish(f, &buf);
}

/* ------------------------------------------------------------ datanodes */

static const char *dn_state(const Caudal__DatanodeInfo *d)
{
	return !d->alive	    ? "dead"
	       : d->decommissioned  ? "decommissioned"
	       : d->decommissioning ? "decommissioning"
				    : "live";
}

static void dn_json(FILE *f, const Caudal__DatanodeInfo *d)
{
	fputc('{', f);
	cdl_json_key(f, "id", true);
	cdl_json_str(f, d->id);
	json_s(f, "host", d->host);
	json_u64(f, "port", d->data_port, false);
	json_s(f, "rack", d->rack);
	json_s(f, "state", dn_state(d));
	json_u64(f, "capacity", d->capacity, false);
	json_u64(f, "used", d->used, false);
	json_u64(f, "remaining", d->remaining, false);
	json_u64(f, "blocks", d->blocks, false);
	json_u64(f, "heartbeat_ms", (uint64_t)(d->last_heartbeat_ms > 0 ? d->last_heartbeat_ms : 0),
		 false);
	json_u64(f, "xceivers", d->xceivers, false);
	fputc('}', f);
}

static char *datanodes(nn_ui *u)
{
	cdl_arena a;
	cdl_arena_init(&a);
	Caudal__Empty e = CAUDAL__EMPTY__INIT;
	Caudal__ReportReply *rep = (void *)nn_ns_call_local(u->ns, "Report", &e.base, &a);
	char *buf;
	size_t len;
	FILE *f = open_memstream(&buf, &len);
	fputs("{\"datanodes\":[", f);
	for (size_t i = 0; rep && i < rep->n_datanodes; i++) {
		if (i)
			fputc(',', f);
		dn_json(f, rep->datanodes[i]);
	}
	fputs("]}", f);
	cdl_arena_release(&a);
	return finish(f, &buf);
}

/* ------------------------------------------------------------ browser */

static const char *kind(uint32_t mode)
{
	return S_ISDIR(mode) ? "dir" : S_ISREG(mode) ? "file" : S_ISLNK(mode) ? "link" : "other";
}

static void attr_json(FILE *f, const Caudal__Attr *at)
{
	char name[256];
	struct passwd pw, *pp = NULL;
	struct group gr, *gp = NULL;
	char pbuf[1024], gbuf[4096];
	cdl_json_key(f, "type", false);
	cdl_json_str(f, kind(at->mode));
	json_u64(f, "mode", at->mode & 07777, false);
	json_u64(f, "uid", at->uid, false);
	json_u64(f, "gid", at->gid, false);
	/* names from this host's user database, as `ls -l` on it would show */
	if (getpwuid_r(at->uid, &pw, pbuf, sizeof(pbuf), &pp) == 0 && pp)
		snprintf(name, sizeof(name), "%s", pp->pw_name);
	else
		snprintf(name, sizeof(name), "%u", at->uid);
	json_s(f, "user", name);
	if (getgrgid_r(at->gid, &gr, gbuf, sizeof(gbuf), &gp) == 0 && gp)
		snprintf(name, sizeof(name), "%s", gp->gr_name);
	else
		snprintf(name, sizeof(name), "%u", at->gid);
	json_s(f, "group", name);
	json_u64(f, "size", at->size, false);
	json_u64(f, "mtime_ms", (uint64_t)(at->mtime_ns > 0 ? at->mtime_ns / 1000000 : 0), false);
	if (S_ISREG(at->mode)) {
		json_u64(f, "replication", at->replication, false);
		json_u64(f, "block_size", at->block_size, false);
		json_u64(f, "nblocks", at->blocks, false);
		json_bool(f, "open", at->under_construction);
	}
	if (S_ISDIR(at->mode))
		json_u64(f, "entries", at->nlink >= 2 ? at->nlink - 2 : 0, false);
}

static bool path_ok(const char *p)
{
	return p[0] == '/';
}

static enum MHD_Result ls(nn_ui *u, struct MHD_Connection *conn)
{
	bool too_long = false;
	const char *path = cdl_ui_arg(conn, "path", "/", &too_long);
	const char *after = cdl_ui_arg(conn, "after", "", &too_long);
	if (too_long)
		return cdl_ui_error(conn, MHD_HTTP_URI_TOO_LONG, "argument too long");
	if (!path_ok(path))
		return cdl_ui_error(conn, MHD_HTTP_BAD_REQUEST, "path must be absolute");
	Caudal__ReaddirRequest q = CAUDAL__READDIR_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = (char *)path;
	q.target = &t;
	q.after = (char *)after;
	q.limit = NN_UI_LS_PAGE;
	q.cred = (Caudal__Cred *)&nobody;
	cdl_arena a;
	cdl_arena_init(&a);
	Caudal__ReaddirReply *r = (void *)nn_ns_call_local(u->ns, "Readdir", &q.base, &a);
	if (!r || r->err) {
		uint32_t err = r ? r->err : EIO;
		cdl_arena_release(&a);
		return cdl_ui_error(conn, http_code(err), strerror((int)err));
	}
	char *buf;
	size_t len;
	FILE *f = open_memstream(&buf, &len);
	fputc('{', f);
	cdl_json_key(f, "path", true);
	cdl_json_str(f, path);
	if (r->dir) {
		cdl_json_key(f, "dir", false);
		fputc('{', f);
		json_u64(f, "ino", r->dir->ino, true);
		attr_json(f, r->dir);
		fputc('}', f);
	}
	cdl_json_key(f, "entries", false);
	fputc('[', f);
	for (size_t i = 0; i < r->n_entries; i++) {
		const Caudal__Dirent *d = r->entries[i];
		fputs(i ? ",{" : "{", f);
		cdl_json_key(f, "name", true);
		cdl_json_str(f, d->name);
		if (d->attr)
			attr_json(f, d->attr);
		fputc('}', f);
	}
	fputc(']', f);
	json_bool(f, "more", r->more);
	if (r->more && r->n_entries)
		json_s(f, "next", r->entries[r->n_entries - 1]->name);
	json_u64(f, "page", NN_UI_LS_PAGE, false);
	fputc('}', f);
	cdl_arena_release(&a);
	return cdl_ui_reply(conn, MHD_HTTP_OK, "application/json", finish(f, &buf));
}

static enum MHD_Result file(nn_ui *u, struct MHD_Connection *conn)
{
	bool too_long = false;
	const char *path = cdl_ui_arg(conn, "path", "/", &too_long);
	const char *offs = cdl_ui_arg(conn, "offset", "0", &too_long);
	if (too_long)
		return cdl_ui_error(conn, MHD_HTTP_URI_TOO_LONG, "argument too long");
	char *end;
	errno = 0;
	unsigned long long off = strtoull(offs, &end, 10);
	if (!path_ok(path) || *end || end == offs || errno || offs[0] == '-')
		return cdl_ui_error(conn, MHD_HTTP_BAD_REQUEST, "bad path or offset");
	cdl_arena a;
	cdl_arena_init(&a);
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = (char *)path;
	Caudal__GetAttrRequest gq = CAUDAL__GET_ATTR_REQUEST__INIT;
	gq.target = &t;
	gq.cred = (Caudal__Cred *)&nobody;
	Caudal__AttrReply *ar = (void *)nn_ns_call_local(u->ns, "GetAttr", &gq.base, &a);
	Caudal__GetBlocksReply *br = NULL;
	uint32_t err = !ar ? EIO : ar->err ? ar->err : !ar->attr ? EIO : 0;
	if (!err && S_ISREG(ar->attr->mode)) {
		Caudal__GetBlocksRequest bq = CAUDAL__GET_BLOCKS_REQUEST__INIT;
		bq.target = &t;
		bq.offset = off;
		uint64_t bs = ar->attr->block_size ? ar->attr->block_size : 1;
		bq.length = bs <= UINT64_MAX / NN_UI_BLOCK_PAGE ? bs * NN_UI_BLOCK_PAGE : 0;
		bq.cred = (Caudal__Cred *)&nobody;
		br = (void *)nn_ns_call_local(u->ns, "GetBlocks", &bq.base, &a);
	}
	if (err) {
		cdl_arena_release(&a);
		return cdl_ui_error(conn, http_code(err), strerror((int)err));
	}
	char *buf;
	size_t len;
	FILE *f = open_memstream(&buf, &len);
	fputc('{', f);
	cdl_json_key(f, "path", true);
	cdl_json_str(f, path);
	attr_json(f, ar->attr);
	if (br && br->err) {
		/* listed but not readable by nobody: its blocks stay hidden */
		json_s(f, "blocks_error", strerror((int)br->err));
	} else if (br) {
		json_bool(f, "inline",
			  br->inline_data.len > 0 ||
			      (ar->attr->size && !br->n_blocks && !ar->attr->blocks));
		json_u64(f, "offset", off, false);
		cdl_json_key(f, "blocks", false);
		fputc('[', f);
		uint64_t next = off;
		size_t n = br->n_blocks < NN_UI_BLOCK_PAGE ? br->n_blocks : NN_UI_BLOCK_PAGE;
		for (size_t i = 0; i < n; i++) {
			const Caudal__LocatedBlock *b = br->blocks[i];
			fputs(i ? ",{" : "{", f);
			json_u64(f, "id", b->id, true);
			json_u64(f, "gen", b->gen, false);
			json_u64(f, "offset", b->offset, false);
			json_u64(f, "length", b->length, false);
			json_bool(f, "corrupt", b->corrupt);
			cdl_json_key(f, "locs", false);
			fputc('[', f);
			for (size_t k = 0; k < b->n_locs; k++) {
				if (k)
					fputc(',', f);
				dn_json(f, b->locs[k]);
			}
			fputs("]}", f);
			next = b->offset + b->length;
		}
		fputc(']', f);
		json_bool(f, "more", n && next < ar->attr->size);
		json_u64(f, "next_offset", next, false);
	}
	fputc('}', f);
	cdl_arena_release(&a);
	return cdl_ui_reply(conn, MHD_HTTP_OK, "application/json", finish(f, &buf));
}

/* ------------------------------------------------------------ routes */

static char *info(nn_ui *u)
{
	char *buf;
	size_t len;
	FILE *f = open_memstream(&buf, &len);
	fputc('{', f);
	cdl_json_key(f, "daemon", true);
	cdl_json_str(f, "namenode");
	json_s(f, "jobs_url", u->jobs_url);
	json_s(f, "namenode_url", "");
	json_u64(f, "browse_uid", NN_UI_NOBODY, false);
	fputc('}', f);
	return finish(f, &buf);
}

static enum MHD_Result api(nn_ui *u, struct MHD_Connection *conn, const char *what)
{
	if (!strcmp(what, "info"))
		return cdl_ui_reply(conn, MHD_HTTP_OK, "application/json", info(u));
	if (!strcmp(what, "overview"))
		return cdl_ui_reply(conn, MHD_HTTP_OK, "application/json", overview(u));
	if (!strcmp(what, "datanodes"))
		return cdl_ui_reply(conn, MHD_HTTP_OK, "application/json", datanodes(u));
	if (!strcmp(what, "ls"))
		return ls(u, conn);
	if (!strcmp(what, "file"))
		return file(u, conn);
	return cdl_ui_error(conn, MHD_HTTP_NOT_FOUND, "no such page");
}

static enum MHD_Result http_ui(void *arg, struct MHD_Connection *conn, const char *url,
			       const char *method, const char *upload, size_t *upload_size,
			       void **con_cls)
{
	(void)upload, (void)upload_size, (void)con_cls;
	nn_ui *u = arg;
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return cdl_ui_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "GET only");
	int rc = cdl_ui_serve_static(conn, url);
	if (rc >= 0)
		return (enum MHD_Result)rc;
	if (!strncmp(url, "/ui/api/", 8))
		return api(u, conn, url + 8);
	if (!strcmp(url, "/") || !strcmp(url, "/status.txt"))
		return cdl_ui_reply(conn, MHD_HTTP_OK, "text/plain; charset=utf-8",
				    nn_ns_status_text(u->ns));
	return cdl_ui_reply(conn, MHD_HTTP_NOT_FOUND, "text/plain; charset=utf-8",
			    xstrdup("not found\n"));
}

int nn_ui_register(cdl_http *h, nn_ns *ns, const char *jobs_url)
{
	/* one per process, as long as the server that calls it */
	static nn_ui the_ui = {.mu = PTHREAD_MUTEX_INITIALIZER};
	nn_ui *u = &the_ui;
	u->ns = ns;
	u->jobs_url = jobs_url ? jobs_url : "";
	int rc;
	if ((rc = cdl_http_route(h, "/ui/", http_ui, NULL, u)) < 0 ||
	    (rc = cdl_http_route(h, "/status.txt", http_ui, NULL, u)) < 0 ||
	    (rc = cdl_http_route(h, "/index.html", http_ui, NULL, u)) < 0 ||
	    (rc = cdl_http_route(h, "/", http_ui, NULL, u)) < 0)
		return rc;
	return 0;
}
