/* cdl_client: namespace calls with retries, block writes through pipelines,
 * block reads with replica failover, and the lease renewer. See
 * cdl_client.h for the contract and the threading rules. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cdl_client.h"
#include "cdl_dt.h"
#include "cdl_dtls.h"
#include "cdl_log.h"
#include "cdl_rpc.h"
#include "cdl_util.h"

/* How often the renewer renews this client's leases by default: well
 * inside the namenode's lease period (HDFS renews every ~third of 60 s). */
#define CDL_LEASE_RENEW_MS 10000
/* Pipeline attempts for one block before the write fails. */
#define CDL_PIPELINE_TRIES 3
/* Largest number of datanode ids a writer excludes. */
#define CDL_MAX_EXCLUDED 32
/* Backoff between retried calls, first and largest, in ms. */
#define CDL_BACKOFF_MIN 20
#define CDL_BACKOFF_MAX 1000

/* Method names in enum cdl_nn_method order: must match the .proto. */
static const char *const nn_method_names[CDL_NN_NMETHODS] = {
    [CDL_NN_GetAttr] = "GetAttr",
    [CDL_NN_Mkdir] = "Mkdir",
    [CDL_NN_Create] = "Create",
    [CDL_NN_Symlink] = "Symlink",
    [CDL_NN_Readlink] = "Readlink",
    [CDL_NN_Readdir] = "Readdir",
    [CDL_NN_Delete] = "Delete",
    [CDL_NN_Rename] = "Rename",
    [CDL_NN_SetAttr] = "SetAttr",
    [CDL_NN_GetXattr] = "GetXattr",
    [CDL_NN_SetXattr] = "SetXattr",
    [CDL_NN_ListXattr] = "ListXattr",
    [CDL_NN_RemoveXattr] = "RemoveXattr",
    [CDL_NN_SetReplication] = "SetReplication",
    [CDL_NN_GetBlocks] = "GetBlocks",
    [CDL_NN_Append] = "Append",
    [CDL_NN_AddBlock] = "AddBlock",
    [CDL_NN_Complete] = "Complete",
    [CDL_NN_RenewLease] = "RenewLease",
    [CDL_NN_Statfs] = "Statfs",
    [CDL_NN_Report] = "Report",
    [CDL_NN_Fsck] = "Fsck",
    [CDL_NN_ReportBad] = "ReportBad",
    [CDL_NN_GetEvents] = "GetEvents",
    [CDL_NN_UpdatePipeline] = "UpdatePipeline",
    [CDL_NN_Decommission] = "Decommission",
    [CDL_NN_Mknod] = "Mknod",
    [CDL_NN_SetQuota] = "SetQuota",
    [CDL_NN_GetQuota] = "GetQuota",
    [CDL_NN_Trash] = "Trash",
    [CDL_NN_RefreshNodes] = "RefreshNodes",
    [CDL_NN_WebCall] = "WebCall",
    [CDL_NN_MoveReplicas] = "MoveReplicas",
    [CDL_NN_Batch] = "Batch",
};

struct cdl_client {
	cdl_rpc_client *rpc;
	char *namenode;
	char *host;
	char *name;
	int io_timeout_ms;
	int rpc_timeout_ms;
	int renew_ms;
	Caudal__Cred cred;
	uint32_t groups[64];
	ProtobufCBinaryData ticket; /* cdl_client_set_ticket: every call goes through WebCall */
	bool rpc_lent;		    /* rpc belongs to the client this one was made from */

	/* Lease renewer: started with the first writer, stopped by free. */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	pthread_t renewer;
	bool renewer_started;
	bool stopping;
	int nwriters;
};

static void sleep_ms(int64_t ms)
{
	if (ms <= 0)
		return;
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Checks enum cdl_nn_method against the service descriptor, so that a
 * .proto edit that reorders methods cannot send a request to the wrong
 * handler. */
static bool methods_match(const ProtobufCServiceDescriptor *d)
{
	if (d->n_methods != CDL_NN_NMETHODS) {
		cdl_err("client protocol has %u methods, the client library knows %d", d->n_methods,
			CDL_NN_NMETHODS);
		return false;
	}
	for (unsigned i = 0; i < d->n_methods; i++) {
		if (strcmp(d->methods[i].name, nn_method_names[i]) != 0) {
			cdl_err(
			    "client protocol method %u is '%s', the client library expects '%s'", i,
			    d->methods[i].name, nn_method_names[i]);
			return false;
		}
	}
	return true;
}

static bool valid_hostport(const char *s)
{
	const char *colon = s ? strrchr(s, ':') : NULL;
	if (!colon || colon == s)
		return false;
	char *end;
	long port = strtol(colon + 1, &end, 10);
	return *end == '\0' && colon[1] != '\0' && port > 0 && port < 65536;
}

/* c's lock and the condition its renewer sleeps on (monotonic clock). */
static void sync_init(cdl_client *c)
{
	pthread_mutex_init(&c->mu, NULL);
	cdl_cond_init_mono(&c->cond);
}

cdl_client *cdl_client_new(const cdl_client_opts *o)
{
	static unsigned counter;
	if (!methods_match(&caudal__client_protocol__descriptor))
		return NULL;
	if (!o || !valid_hostport(o->namenode)) {
		cdl_err("invalid namenode address '%s' (want host:port)",
			o && o->namenode ? o->namenode : "");
		return NULL;
	}
	if (o->io_timeout_ms < 0 || o->rpc_timeout_ms < 0 || o->lease_renew_ms < 0) {
		cdl_err("invalid client timeouts %d/%d/%d ms", o->io_timeout_ms, o->rpc_timeout_ms,
			o->lease_renew_ms);
		return NULL;
	}
	cdl_client *c = xcalloc(1, sizeof(*c));
	c->namenode = xstrdup(o->namenode);
	c->host = xstrdup(o->client_host && *o->client_host ? o->client_host : "127.0.0.1");
	c->io_timeout_ms = o->io_timeout_ms ? o->io_timeout_ms : 30000;
	c->rpc_timeout_ms = o->rpc_timeout_ms ? o->rpc_timeout_ms : 10000;
	if (c->rpc_timeout_ms > c->io_timeout_ms)
		c->rpc_timeout_ms = c->io_timeout_ms;
	c->renew_ms = o->lease_renew_ms ? o->lease_renew_ms : CDL_LEASE_RENEW_MS;
	if (o->name && *o->name) {
		c->name = xstrdup(o->name);
	} else {
		char hn[256] = "localhost";
		gethostname(hn, sizeof(hn) - 1);
		unsigned n = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
		c->name = xasprintf("cdl-%s-%d-%u", hn, (int)getpid(), n);
	}
	c->rpc = cdl_rpc_client_new(c->namenode, &caudal__client_protocol__descriptor);
	if (!c->rpc) {
		cdl_err("cannot create a channel to namenode '%s'", c->namenode);
		free(c->namenode);
		free(c->host);
		free(c->name);
		free(c);
		return NULL;
	}
	caudal__cred__init(&c->cred);
	c->cred.uid = getuid();
	c->cred.gid = getgid();
	gid_t g[64];
	int ng = getgroups(64, g);
	for (int i = 0; i < ng; i++)
		c->groups[i] = g[i];
	c->cred.n_groups = ng > 0 ? (size_t)ng : 0;
	c->cred.groups = c->groups;

	sync_init(c);
	return c;
}

void cdl_client_free(cdl_client *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	c->stopping = true;
	pthread_cond_broadcast(&c->cond);
	bool started = c->renewer_started;
	pthread_mutex_unlock(&c->mu);
	if (started)
		pthread_join(c->renewer, NULL);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->mu);
	if (!c->rpc_lent)
		cdl_rpc_client_free(c->rpc);
	free(c->namenode);
	free(c->host);
	free(c->name);
	free(c->ticket.data);
	free(c);
}

cdl_client *cdl_client_new_sharing(cdl_client *base)
{
	static unsigned counter;
	cdl_client *c = xcalloc(1, sizeof(*c));
	c->rpc = base->rpc;
	c->rpc_lent = true;
	c->namenode = xstrdup(base->namenode);
	c->host = xstrdup(base->host);
	unsigned n = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
	c->name = xasprintf("%s-s%u", base->name, n);
	c->io_timeout_ms = base->io_timeout_ms;
	c->rpc_timeout_ms = base->rpc_timeout_ms;
	c->renew_ms = base->renew_ms;
	c->cred = base->cred;
	memcpy(c->groups, base->groups, sizeof(c->groups));
	c->cred.groups = c->groups;
	sync_init(c);
	return c;
}

void cdl_client_set_ticket(cdl_client *c, const void *ticket, size_t len)
{
	free(c->ticket.data);
	c->ticket.data = xmalloc(len ? len : 1);
	memcpy(c->ticket.data, ticket, len);
	c->ticket.len = len;
}

/* One attempt of method m, through WebCall when the client has a ticket:
 * the request travels packed inside a WebCallRequest and its reply comes
 * back packed. Returns as cdl_rpc_call; a refused ticket is -EACCES. */
static int rpc_call(cdl_client *c, enum cdl_nn_method m, const ProtobufCMessage *req,
		    ProtobufCMessage **reply, int timeout_ms)
{
	if (!c->ticket.data)
		return cdl_rpc_call(c->rpc, (unsigned)m, req, reply, timeout_ms);
	*reply = NULL;
	const ProtobufCMethodDescriptor *md = &caudal__client_protocol__descriptor.methods[m];
	Caudal__WebCallRequest w = CAUDAL__WEB_CALL_REQUEST__INIT;
	w.ticket = c->ticket;
	w.method = (uint32_t)m;
	w.request.len = protobuf_c_message_get_packed_size(req);
	w.request.data = xmalloc(w.request.len ? w.request.len : 1);
	protobuf_c_message_pack(req, w.request.data);
	ProtobufCMessage *rep = NULL;
	int rc = cdl_rpc_call(c->rpc, CDL_NN_WebCall, &w.base, &rep, timeout_ms);
	free(w.request.data);
	if (rc)
		return rc;
	Caudal__WebCallReply *wr = (Caudal__WebCallReply *)rep;
	if (wr->err) {
		rc = -(int)wr->err;
	} else {
		*reply = protobuf_c_message_unpack(md->output, NULL, wr->reply.len, wr->reply.data);
		if (!*reply)
			rc = -EIO;
	}
	protobuf_c_message_free_unpacked(rep, NULL);
	return rc;
}

const char *cdl_client_name(const cdl_client *c)
{
	return c->name;
}

const char *cdl_client_host(const cdl_client *c)
{
	return c->host;
}

int cdl_client_io_timeout(const cdl_client *c)
{
	return c->io_timeout_ms;
}

Caudal__Cred *cdl_client_cred(cdl_client *c)
{
	return &c->cred;
}

uint32_t cdl_reply_err(const ProtobufCMessage *reply)
{
	if (!reply)
		return 0;
	const ProtobufCFieldDescriptor *f =
	    protobuf_c_message_descriptor_get_field_by_name(reply->descriptor, "err");
	if (!f || f->type != PROTOBUF_C_TYPE_UINT32 || f->label == PROTOBUF_C_LABEL_REPEATED)
		return 0;
	return *(const uint32_t *)((const char *)reply + f->offset);
}

/* Transport failures worth another attempt: the namenode may be restarting,
 * overloaded or briefly unreachable. */
static bool retryable(int rc)
{
	switch (-rc) {
	case EHOSTUNREACH:
	case ETIMEDOUT:
	case ECONNREFUSED:
	case ECONNRESET:
	case ECONNABORTED:
	case ENOTCONN:
	case ENETUNREACH:
	case EPIPE:
	case EAGAIN:
		return true;
	default:
		return false;
	}
}

/* Every request that can carry a Cred carries one: the namenode refuses a
 * request without one rather than guess (DESIGN.md, "Security"). */
static void fill_cred(cdl_client *c, const ProtobufCMessage *req)
{
	const ProtobufCFieldDescriptor *cf =
	    protobuf_c_message_descriptor_get_field_by_name(req->descriptor, "cred");
	if (cf && cf->type == PROTOBUF_C_TYPE_MESSAGE) {
		Caudal__Cred **slot = (Caudal__Cred **)((char *)req + cf->offset);
		if (!*slot)
			*slot = &c->cred;
	}
}

int cdl_client_call(cdl_client *c, enum cdl_nn_method m, const ProtobufCMessage *req,
		    ProtobufCMessage **reply)
{
	*reply = NULL;
	if ((unsigned)m >= CDL_NN_NMETHODS)
		return -EINVAL;
	fill_cred(c, req);
	int64_t end = cdl_now_ms() + c->io_timeout_ms;
	int64_t backoff = CDL_BACKOFF_MIN;
	for (int attempt = 1;; attempt++) {
		int64_t left = end - cdl_now_ms();
		int t = c->rpc_timeout_ms;
		if (left < t)
			t = left < 50 ? 50 : (int)left;
		ProtobufCMessage *rep = NULL;
		int rc = rpc_call(c, m, req, &rep, t);
		if (rc == 0) {
			if (cdl_reply_err(rep) != EAGAIN || cdl_now_ms() + backoff >= end) {
				*reply = rep;
				return 0;
			}
			protobuf_c_message_free_unpacked(rep, NULL);
			rc = -EAGAIN;
		} else if (!retryable(rc)) {
			return rc;
		}
		int64_t now = cdl_now_ms();
		if (now >= end)
			return rc;
		cdl_debug("%s to '%s' attempt %d: %s; retrying in %lld ms", nn_method_names[m],
			  c->namenode, attempt, strerror(-rc), (long long)backoff);
		sleep_ms(backoff < end - now ? backoff : end - now);
		backoff = backoff * 2 > CDL_BACKOFF_MAX ? CDL_BACKOFF_MAX : backoff * 2;
	}
}

int cdl_client_call_once(cdl_client *c, enum cdl_nn_method m, const ProtobufCMessage *req,
			 ProtobufCMessage **reply, int timeout_ms)
{
	*reply = NULL;
	if ((unsigned)m >= CDL_NN_NMETHODS)
		return -EINVAL;
	fill_cred(c, req);
	ProtobufCMessage *rep = NULL;
	int rc = rpc_call(c, m, req, &rep, timeout_ms);
	if (rc)
		return rc;
	uint32_t err = cdl_reply_err(rep);
	if (err) {
		protobuf_c_message_free_unpacked(rep, NULL);
		return -(int)err;
	}
	*reply = rep;
	return 0;
}

/* Replies whose result is a submessage that a successful answer must
 * carry; callers dereference it without checking. */
static const struct {
	const ProtobufCMessageDescriptor *desc;
	const char *field;
} required_results[] = {
    {&caudal__attr_reply__descriptor, "attr"},
    {&caudal__add_block_reply__descriptor, "block"},
    {&caudal__get_blocks_reply__descriptor, "attr"},
    {&caudal__readdir_reply__descriptor, "dir"},
    {&caudal__decommission_reply__descriptor, "node"},
};

static bool reply_complete(const ProtobufCMessage *m)
{
	for (size_t i = 0; i < sizeof(required_results) / sizeof(required_results[0]); i++) {
		if (m->descriptor != required_results[i].desc)
			continue;
		const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(
		    m->descriptor, required_results[i].field);
		if (f && !*(const void *const *)((const char *)m + f->offset))
			return false;
	}
	return true;
}

int cdl_client_call_err(cdl_client *c, enum cdl_nn_method m, const ProtobufCMessage *req,
			ProtobufCMessage **reply)
{
	int rc = cdl_client_call(c, m, req, reply);
	if (rc)
		return rc;
	uint32_t err = cdl_reply_err(*reply);
	if (err) {
		protobuf_c_message_free_unpacked(*reply, NULL);
		*reply = NULL;
		return -(int)err;
	}
	if (!reply_complete(*reply)) {
		cdl_warn("namenode '%s' sent a %s without its result: dropped", c->namenode,
			 (*reply)->descriptor->short_name);
		protobuf_c_message_free_unpacked(*reply, NULL);
		*reply = NULL;
		return -EPROTO;
	}
	return 0;
}

/* Calls whose reply carries nothing but err. */
static int call_status(cdl_client *c, enum cdl_nn_method m, const ProtobufCMessage *req)
{
	ProtobufCMessage *rep;
	int rc = cdl_client_call_err(c, m, req, &rep);
	if (rc == 0)
		protobuf_c_message_free_unpacked(rep, NULL);
	return rc;
}

int cdl_stat(cdl_client *c, const char *path, Caudal__Attr **attr)
{
	Caudal__Target t = CAUDAL__TARGET__INIT;
	Caudal__GetAttrRequest req = CAUDAL__GET_ATTR_REQUEST__INIT;
	t.path = (char *)path;
	req.target = &t;
	req.cred = &c->cred;
	Caudal__AttrReply *rep;
	int rc = cdl_client_call_err(c, CDL_NN_GetAttr, &req.base, (ProtobufCMessage **)&rep);
	if (rc)
		return rc;
	if (!rep->attr) {
		protobuf_c_message_free_unpacked(&rep->base, NULL);
		return -EPROTO;
	}
	*attr = rep->attr;
	rep->attr = NULL;
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	return 0;
}

int cdl_mkdir(cdl_client *c, const char *path, uint32_t mode, bool parents)
{
	Caudal__Target t = CAUDAL__TARGET__INIT;
	Caudal__MkdirRequest req = CAUDAL__MKDIR_REQUEST__INIT;
	t.path = (char *)path;
	req.target = &t;
	req.mode = mode;
	req.parents = parents;
	req.cred = &c->cred;
	return call_status(c, CDL_NN_Mkdir, &req.base);
}

int cdl_delete(cdl_client *c, const char *path, bool recursive)
{
	Caudal__Target t = CAUDAL__TARGET__INIT;
	Caudal__DeleteRequest req = CAUDAL__DELETE_REQUEST__INIT;
	t.path = (char *)path;
	req.target = &t;
	req.recursive = recursive;
	req.cred = &c->cred;
	return call_status(c, CDL_NN_Delete, &req.base);
}

int cdl_rename(cdl_client *c, const char *src, const char *dst)
{
	Caudal__Target s = CAUDAL__TARGET__INIT, d = CAUDAL__TARGET__INIT;
	Caudal__RenameRequest req = CAUDAL__RENAME_REQUEST__INIT;
	s.path = (char *)src;
	d.path = (char *)dst;
	req.src = &s;
	req.dst = &d;
	req.cred = &c->cred;
	return call_status(c, CDL_NN_Rename, &req.base);
}

/* ------------------------------------------------------------ leases */

/* Renews this client's leases every renew_ms while a writer is open.
 * One attempt per round (no long retries) so that cdl_client_free
 * joins it within one RPC deadline; a failed round is retried after 1 s. */
static void *renewer_main(void *arg)
{
	cdl_client *c = arg;
	int64_t next = cdl_now_ms() + c->renew_ms;
	pthread_mutex_lock(&c->mu);
	while (!c->stopping) {
		int64_t now = cdl_now_ms();
		if (now < next || c->nwriters == 0) {
			int64_t wait = c->nwriters == 0 ? c->renew_ms : next - now;
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += wait / 1000;
			ts.tv_nsec += (wait % 1000) * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&c->cond, &c->mu, &ts);
			if (c->nwriters == 0)
				next = cdl_now_ms() + c->renew_ms;
			continue;
		}
		pthread_mutex_unlock(&c->mu);
		Caudal__LeaseRequest req = CAUDAL__LEASE_REQUEST__INIT;
		req.client = c->name;
		ProtobufCMessage *rep = NULL;
		int rc = rpc_call(c, CDL_NN_RenewLease, &req.base, &rep, c->rpc_timeout_ms);
		if (rc == 0) {
			rc = -(int)cdl_reply_err(rep);
			protobuf_c_message_free_unpacked(rep, NULL);
		}
		if (rc)
			cdl_warn("cannot renew the leases of '%s': %s", c->name, strerror(-rc));
		pthread_mutex_lock(&c->mu);
		int64_t retry = c->renew_ms < 1000 ? c->renew_ms : 1000;
		next = cdl_now_ms() + (rc ? retry : c->renew_ms);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

static void writer_register(cdl_client *c)
{
	pthread_mutex_lock(&c->mu);
	c->nwriters++;
	if (!c->renewer_started) {
		if (pthread_create(&c->renewer, NULL, renewer_main, c) == 0)
			c->renewer_started = true;
		else
			cdl_err("cannot start the lease renewer of '%s'", c->name);
	}
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->mu);
}

static void writer_unregister(cdl_client *c)
{
	pthread_mutex_lock(&c->mu);
	c->nwriters--;
	pthread_mutex_unlock(&c->mu);
}

/* ------------------------------------------------------------ writing */

/* One datanode of the current block's pipeline. */
struct wtarget {
	char *id, *host;
	uint32_t port;
};

struct cdl_writer {
	cdl_client *c;
	uint64_t ino;
	uint64_t block_size;
	uint64_t size; /* file size including what the pipeline holds */
	int err;       /* sticky: once a write failed for good, the writer is dead */
	/* the block being written (bw != NULL) and its pipeline */
	cdl_block_writer *bw;
	uint64_t cur_id, cur_gen, cur_len;
	struct wtarget tg[CDL_DT_MAX_TARGETS];
	size_t ntg;
	/* the last finished block (prev_id 0 = none since open) */
	uint64_t prev_id, prev_gen, prev_len;
	/* datanodes this writer could not reach */
	char *excluded[CDL_MAX_EXCLUDED];
	size_t nexcluded;
	uint32_t repl;	     /* the file's replication: what a recovery replaces up to */
	bool replace_warned; /* said once that no replacement could be added */
	/* inline (inl_on): the whole file is held here while it fits
	 * inl_limit and goes to the namenode in Complete, which holds the
	 * first inl_sent bytes of it already */
	bool inl_on;
	char *inl;
	size_t inl_len, inl_cap, inl_sent;
	uint64_t inl_limit;
};

int cdl_writer_open(cdl_client *c, const Caudal__Attr *attr, cdl_writer **out)
{
	if (!attr || attr->ino == 0 || attr->block_size == 0) {
		cdl_err("cannot write inode %llu: no block size in its attributes",
			attr ? (unsigned long long)attr->ino : 0ULL);
		return -EINVAL;
	}
	bool inline_file = attr->blocks == 0 && attr->size > 0;
	if (inline_file && attr->inline_data.len != attr->size) {
		cdl_err("cannot write inode %llu: its %llu inline bytes did not come with its "
			"attributes",
			(unsigned long long)attr->ino, (unsigned long long)attr->size);
		return -EPROTO;
	}
	cdl_writer *w = xcalloc(1, sizeof(*w));
	w->c = c;
	w->ino = attr->ino;
	w->block_size = attr->block_size;
	w->size = attr->size;
	w->repl = attr->replication;
	w->inl_limit = attr->inline_max < attr->block_size ? attr->inline_max : attr->block_size;
	/* a file without blocks is written inline while it fits; an inline
	 * file is continued from its bytes (which move into a first block
	 * once it outgrows the limit) */
	if (inline_file || (attr->blocks == 0 && w->inl_limit > 0)) {
		w->inl_on = true;
		w->inl_cap = inline_file ? attr->size : 0;
		w->inl = inline_file ? xmalloc(w->inl_cap) : NULL;
		if (inline_file)
			memcpy(w->inl, attr->inline_data.data, attr->size);
		w->inl_len = w->inl_sent = inline_file ? attr->size : 0;
	}
	writer_register(c);
	*out = w;
	return 0;
}

static void exclude(cdl_writer *w, const char *id)
{
	if (!id || !*id)
		return;
	for (size_t i = 0; i < w->nexcluded; i++)
		if (strcmp(w->excluded[i], id) == 0)
			return;
	if (w->nexcluded == CDL_MAX_EXCLUDED) {
		free(w->excluded[0]);
		memmove(w->excluded, w->excluded + 1, (CDL_MAX_EXCLUDED - 1) * sizeof(char *));
		w->nexcluded--;
	}
	w->excluded[w->nexcluded++] = xstrdup(id);
}

static void clear_excluded(cdl_writer *w)
{
	for (size_t i = 0; i < w->nexcluded; i++)
		free(w->excluded[i]);
	w->nexcluded = 0;
}

static void clear_targets(cdl_writer *w)
{
	for (size_t i = 0; i < w->ntg; i++) {
		free(w->tg[i].id);
		free(w->tg[i].host);
	}
	w->ntg = 0;
}

static void drop_target(cdl_writer *w, size_t idx)
{
	free(w->tg[idx].id);
	free(w->tg[idx].host);
	memmove(w->tg + idx, w->tg + idx + 1, (w->ntg - idx - 1) * sizeof(w->tg[0]));
	w->ntg--;
}

/* Opens w->bw on the pipeline w->tg for (cur_id, cur_gen) with the
 * block's write token from the namenode. On failure *bad is the 1-based
 * position of the node at fault (0 unknown). */
static int open_pipeline(cdl_writer *w, const ProtobufCBinaryData *token, int *bad)
{
	Caudal__DtTarget tg[CDL_DT_MAX_TARGETS];
	const Caudal__DtTarget *tp[CDL_DT_MAX_TARGETS];
	for (size_t i = 0; i < w->ntg; i++) {
		caudal__dt_target__init(&tg[i]);
		tg[i].host = w->tg[i].host;
		tg[i].port = w->tg[i].port;
		tg[i].id = w->tg[i].id;
		tp[i] = &tg[i];
	}
	*bad = 0;
	return cdl_block_writer_open_ex(tp, w->ntg, w->cur_id, w->cur_gen, token, w->c->name,
					w->c->rpc_timeout_ms, &w->bw, bad);
}

/* Index in w->tg of the node a 1-based failure position names; the first
 * node (the one the client talks to) when unknown. */
static size_t bad_index(const cdl_writer *w, int bad)
{
	return bad >= 1 && (size_t)bad <= w->ntg ? (size_t)bad - 1 : 0;
}

/* encrypt_data: once the namenode says the cluster encrypts data
 * transfer, every data connection of this process goes through TLS
 * (cdl_dtls.h). -EACCES when this process has no certificate for it. */
static int follow_encryption(bool encrypt)
{
	if (!encrypt || cdl_dtls_client())
		return 0;
	if (cdl_dtls_init() < 0) {
		cdl_err("the cluster encrypts data transfer and this client cannot");
		return -EACCES;
	}
	cdl_dtls_set_client(true);
	return 0;
}

static int add_block(cdl_writer *w, Caudal__AddBlockReply **out)
{
	Caudal__AddBlockRequest req = CAUDAL__ADD_BLOCK_REQUEST__INIT;
	Caudal__Replica prev = CAUDAL__REPLICA__INIT;
	req.ino = w->ino;
	req.client = w->c->name;
	req.client_host = w->c->host;
	if (w->prev_id) {
		prev.id = w->prev_id;
		prev.gen = w->prev_gen;
		prev.length = w->prev_len;
		req.previous = &prev;
	}
	req.n_excluded = w->nexcluded;
	req.excluded = w->excluded;
	Caudal__AddBlockReply *rep;
	int rc = cdl_client_call_err(w->c, CDL_NN_AddBlock, &req.base, (ProtobufCMessage **)&rep);
	if (rc)
		return rc;
	if (!rep->block || rep->block->n_locs == 0 || rep->block->id == 0) {
		cdl_err("namenode gave no pipeline for a new block of inode %llu",
			(unsigned long long)w->ino);
		protobuf_c_message_free_unpacked(&rep->base, NULL);
		return -EIO;
	}
	if ((rc = follow_encryption(rep->block->encrypt)) < 0) {
		protobuf_c_message_free_unpacked(&rep->base, NULL);
		return rc;
	}
	*out = rep;
	return 0;
}

/* Allocates the next block and opens its pipeline. When a datanode of the
 * pipeline cannot be reached, asks for another block without it, up to
 * CDL_PIPELINE_TRIES times (the namenode drops the abandoned block when the
 * next AddBlock names the same previous block). */
static int next_block(cdl_writer *w)
{
	int rc = -EIO;
	for (int attempt = 0; attempt < CDL_PIPELINE_TRIES; attempt++) {
		Caudal__AddBlockReply *rep;
		rc = add_block(w, &rep);
		if (rc && w->nexcluded) {
			/* too many exclusions can leave no placement: forget them once */
			clear_excluded(w);
			rc = add_block(w, &rep);
		}
		if (rc)
			return rc;
		Caudal__LocatedBlock *b = rep->block;
		clear_targets(w);
		for (size_t i = 0; i < b->n_locs && i < CDL_DT_MAX_TARGETS; i++) {
			w->tg[i].id = xstrdup(b->locs[i]->id);
			w->tg[i].host = xstrdup(b->locs[i]->host);
			w->tg[i].port = b->locs[i]->data_port;
			w->ntg++;
		}
		w->cur_id = b->id;
		w->cur_gen = b->gen;
		w->cur_len = 0;
		int bad;
		rc = open_pipeline(w, &b->token, &bad);
		protobuf_c_message_free_unpacked(&rep->base, NULL);
		if (rc == 0)
			return 0;
		size_t idx = bad_index(w, bad);
		cdl_warn("cannot open the pipeline of block %llu at '%s:%u': %s; excluding it",
			 (unsigned long long)w->cur_id, w->tg[idx].host, w->tg[idx].port,
			 strerror(-rc));
		exclude(w, w->tg[idx].id);
	}
	return rc;
}

/* Prepare rounds of one recovery that may ask for replacement datanodes:
 * each replacement that fails is dropped like any node, so this bounds the
 * recovery. */
#define CDL_REPLACE_TRIES 3

/* Replacement datanodes (HDFS addDatanode2ExistingPipeline): the namenode
 * handed out rep->added for the pipeline of the current block. The last
 * survivor copies the bytes every node acked to them under the recorded
 * stamp (cdl_block_transfer, HDFS transferBlock), and they join the end of
 * w->tg, so that the recovery takes their copy over with the survivors'
 * replicas. With none handed out, or when the copy fails, the pipeline
 * carries on with the survivors (said once per writer; a failed copy's
 * targets are excluded from the next try). */
static void add_replacements(cdl_writer *w, const Caudal__UpdatePipelineReply *rep, size_t want)
{
	size_t n = rep->n_added < want ? rep->n_added : want;
	if (n > CDL_DT_MAX_TARGETS - w->ntg)
		n = CDL_DT_MAX_TARGETS - w->ntg;
	const char *why = "no datanode to spare";
	if (n > 0) {
		Caudal__DtTarget tg[CDL_DT_MAX_TARGETS];
		const Caudal__DtTarget *tp[CDL_DT_MAX_TARGETS];
		for (size_t i = 0; i < n; i++) {
			caudal__dt_target__init(&tg[i]);
			tg[i].host = rep->added[i]->host;
			tg[i].port = rep->added[i]->data_port;
			tg[i].id = rep->added[i]->id;
			tp[i] = &tg[i];
		}
		const struct wtarget *src = &w->tg[w->ntg - 1];
		uint64_t acked = cdl_block_writer_acked(w->bw);
		int rc =
		    cdl_block_transfer(src->host, (int)src->port, w->cur_id, w->cur_gen, acked, tp,
				       n, &rep->copy_token, w->c->name, w->c->rpc_timeout_ms);
		if (rc == 0) {
			for (size_t i = 0; i < n; i++) {
				w->tg[w->ntg].id = xstrdup(tg[i].id);
				w->tg[w->ntg].host = xstrdup(tg[i].host);
				w->tg[w->ntg].port = tg[i].port;
				w->ntg++;
				cdl_info("block %llu of inode %llu: datanode '%s:%u' added to the "
					 "pipeline with %llu bytes copied from '%s:%u'",
					 (unsigned long long)w->cur_id, (unsigned long long)w->ino,
					 tg[i].host, tg[i].port, (unsigned long long)acked,
					 src->host, src->port);
			}
			return;
		}
		why = strerror(-rc);
		for (size_t i = 0; i < n; i++)
			exclude(w, tg[i].id);
	}
	if (!w->replace_warned)
		cdl_warn("block %llu of inode %llu: no replacement datanode for its pipeline (%s); "
			 "carrying on with %zu of %u",
			 (unsigned long long)w->cur_id, (unsigned long long)w->ino, why, w->ntg,
			 w->repl);
	w->replace_warned = true;
}

/* Pipeline recovery (fs/cdl_dt.h): the current block's pipeline failed
 * with rc at position bad (1-based, 0 unknown: the first node, the one the
 * client talks to). Drops that node, asks the namenode for a new generation
 * stamp and a write token for the survivors (UpdatePipeline with prepare:
 * the namenode's record does not change), resumes the replica on them at
 * the bytes every node acked, resending the unacked packets, and only then
 * has the namenode record the stamp with the new pipeline as the block's
 * locations (UpdatePipeline with gen). If every survivor fails the record
 * keeps the old stamp, under which the datanodes keep the hsynced bytes.
 * When the file's replication is 2 or more and the survivors are fewer, the
 * prepare also asks for replacements (add_replacements): HDFS's default
 * ReplaceDatanodeOnFailure policy, simplified to "whenever short", see
 * docs/decisions.md. Each attempt drops one node and only
 * CDL_REPLACE_TRIES attempts add any, so this ends; with no node left the
 * write fails with EIO. Returns 0 when w->bw can go on. */
static int recover(cdl_writer *w, int rc, int bad)
{
	int replace_tries = 0;
	while (w->ntg > 0) {
		size_t idx = bad_index(w, bad);
		cdl_warn("block %llu of inode %llu: datanode '%s:%u' failed in the pipeline (%s); "
			 "continuing with %zu node(s) from byte %llu",
			 (unsigned long long)w->cur_id, (unsigned long long)w->ino, w->tg[idx].host,
			 w->tg[idx].port, strerror(-rc), w->ntg - 1,
			 (unsigned long long)cdl_block_writer_acked(w->bw));
		exclude(w, w->tg[idx].id);
		drop_target(w, idx);
		if (w->ntg == 0)
			break;

		size_t want = 0;
		if (w->repl >= 2 && w->ntg < w->repl && replace_tries < CDL_REPLACE_TRIES) {
			want = w->repl - w->ntg;
			replace_tries++;
		}
		Caudal__UpdatePipelineRequest req = CAUDAL__UPDATE_PIPELINE_REQUEST__INIT;
		char *ids[CDL_DT_MAX_TARGETS];
		for (size_t i = 0; i < w->ntg; i++)
			ids[i] = w->tg[i].id;
		req.ino = w->ino;
		req.client = w->c->name;
		req.block = w->cur_id;
		req.n_nodes = w->ntg;
		req.nodes = ids;
		req.prepare = true;
		req.add = (uint32_t)want;
		if (want) {
			req.n_exclude = w->nexcluded;
			req.exclude = w->excluded;
		}
		Caudal__UpdatePipelineReply *rep;
		int e = cdl_client_call_err(w->c, CDL_NN_UpdatePipeline, &req.base,
					    (ProtobufCMessage **)&rep);
		if (e) {
			cdl_err("block %llu: no new generation stamp for its pipeline: %s",
				(unsigned long long)w->cur_id, strerror(-e));
			return e;
		}
		uint64_t gen = rep->gen;
		if (want)
			add_replacements(w, rep, want);
		Caudal__DtTarget tg[CDL_DT_MAX_TARGETS];
		const Caudal__DtTarget *tp[CDL_DT_MAX_TARGETS];
		for (size_t i = 0; i < w->ntg; i++) {
			ids[i] = w->tg[i].id;
			caudal__dt_target__init(&tg[i]);
			tg[i].host = w->tg[i].host;
			tg[i].port = w->tg[i].port;
			tg[i].id = w->tg[i].id;
			tp[i] = &tg[i];
		}
		/* from the recorded stamp: a replacement's copy carries it */
		rc = cdl_block_writer_recover_from(w->bw, tp, w->ntg, w->cur_gen, gen, &rep->token,
						   &bad);
		protobuf_c_message_free_unpacked(&rep->base, NULL);
		if (rc != 0)
			continue;
		/* the new pipeline took the replica at gen: only now does the
		 * namenode record it (and the pipeline as the locations) */
		req.prepare = false;
		req.gen = gen;
		req.add = 0;
		req.n_exclude = 0;
		req.exclude = NULL;
		req.n_nodes = w->ntg;
		e = cdl_client_call_err(w->c, CDL_NN_UpdatePipeline, &req.base,
					(ProtobufCMessage **)&rep);
		if (e) {
			cdl_err("block %llu: cannot commit its pipeline at generation %llu: %s",
				(unsigned long long)w->cur_id, (unsigned long long)gen,
				strerror(-e));
			return e;
		}
		protobuf_c_message_free_unpacked(&rep->base, NULL);
		w->cur_gen = gen;
		return 0;
	}
	cdl_err("block %llu: pipeline failed (%s) with no datanode left to continue on",
		(unsigned long long)w->cur_id, strerror(-rc));
	return -EIO;
}

/* Finishes the current block (recovering its pipeline if a node fails
 * during the final acks) and remembers it as the previous one. */
static int finish_block(cdl_writer *w)
{
	uint64_t len = 0;
	int rc;
	while ((rc = cdl_block_writer_finish(w->bw, false, &len)) != 0 &&
	       (rc = recover(w, rc, cdl_block_writer_bad_target(w->bw))) == 0)
		;
	cdl_block_writer_abort(w->bw);
	w->bw = NULL;
	clear_targets(w);
	if (rc == 0 && len != w->cur_len) {
		cdl_err("block %llu: pipeline stored %llu bytes, %llu were written",
			(unsigned long long)w->cur_id, (unsigned long long)len,
			(unsigned long long)w->cur_len);
		rc = -EIO;
	}
	if (rc) {
		w->err = rc;
		return rc;
	}
	w->prev_id = w->cur_id;
	w->prev_gen = w->cur_gen;
	w->prev_len = len;
	return 0;
}

/* The file outgrew its inline limit: its bytes so far (old and new) go
 * first into its first block, through the pipeline. The namenode keeps
 * the inline bytes it holds as the file's content until that block is
 * settled at least as long. */
static int spill(cdl_writer *w)
{
	char *b = w->inl;
	size_t len = w->inl_len;
	w->inl_on = false;
	w->inl = NULL;
	w->inl_len = w->inl_cap = 0;
	w->size -= len;
	int rc = len ? cdl_writer_write(w, b, len) : 0;
	free(b);
	return rc;
}

int cdl_writer_spill(cdl_writer *w)
{
	if (w->err)
		return w->err;
	return w->inl_on ? spill(w) : 0;
}

int cdl_writer_write(cdl_writer *w, const void *buf, size_t n)
{
	const char *p = buf;
	if (w->err)
		return w->err;
	if (n == 0)
		return 0;
	if (w->inl_on && w->inl_len <= w->inl_limit && n <= w->inl_limit - w->inl_len) {
		if (w->inl_len + n > w->inl_cap) {
			size_t nc = w->inl_cap ? w->inl_cap : 4096;
			while (nc < w->inl_len + n)
				nc *= 2;
			w->inl_cap = nc < w->inl_limit ? nc : (size_t)w->inl_limit;
			w->inl = xrealloc(w->inl, w->inl_cap);
		}
		memcpy(w->inl + w->inl_len, p, n);
		w->inl_len += n;
		w->size += n;
		return 0;
	}
	if (w->inl_on) {
		int rc = spill(w);
		if (rc)
			return rc;
	}
	while (n > 0) {
		int rc;
		if (!w->bw && (rc = next_block(w)) != 0) {
			w->err = rc;
			return rc;
		}
		uint64_t room = w->block_size - w->cur_len;
		size_t k = n < room ? n : (size_t)room;
		uint64_t before = cdl_block_writer_bytes(w->bw);
		rc = cdl_block_writer_write(w->bw, p, k);
		/* on a failure part of the bytes may have been taken */
		size_t took = (size_t)(cdl_block_writer_bytes(w->bw) - before);
		w->cur_len += took;
		w->size += took;
		p += took;
		n -= took;
		if (rc)
			rc = recover(w, rc, cdl_block_writer_bad_target(w->bw));
		if (rc) {
			cdl_err("cannot write block %llu of inode %llu: %s",
				(unsigned long long)w->cur_id, (unsigned long long)w->ino,
				strerror(-rc));
			cdl_block_writer_abort(w->bw);
			w->bw = NULL;
			clear_targets(w);
			w->err = rc;
			return rc;
		}
		if (w->cur_len == w->block_size && (rc = finish_block(w)) != 0)
			return rc;
	}
	return 0;
}

/* Tells the namenode the length so far (keep_lease) or closes the file;
 * closing, the file's attributes after it go to *closed if given (scalar
 * fields; ino 0 if the namenode sent none). */
static int complete(cdl_writer *w, bool keep_lease, Caudal__Attr *closed)
{
	Caudal__CompleteRequest req = CAUDAL__COMPLETE_REQUEST__INIT;
	Caudal__Replica last = CAUDAL__REPLICA__INIT;
	req.ino = w->ino;
	req.client = w->c->name;
	req.keep_lease = keep_lease;
	if (w->inl_on && w->inl_len > w->inl_sent) {
		req.inline_data.data = (uint8_t *)w->inl;
		req.inline_data.len = w->inl_len;
	}
	if (w->bw) {
		last.id = w->cur_id;
		last.gen = w->cur_gen;
		last.length = w->cur_len;
		req.last = &last;
	} else if (w->prev_id) {
		last.id = w->prev_id;
		last.gen = w->prev_gen;
		last.length = w->prev_len;
		req.last = &last;
	}
	Caudal__AttrReply *rep;
	int rc = cdl_client_call_err(w->c, CDL_NN_Complete, &req.base, (ProtobufCMessage **)&rep);
	if (rc)
		return rc;
	if (closed && rep->attr) {
		*closed = *rep->attr;
		closed->inline_data.data = NULL;
		closed->inline_data.len = 0;
	}
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	if (w->inl_on)
		w->inl_sent = w->inl_len;
	return 0;
}

int cdl_writer_sync(cdl_writer *w)
{
	if (w->err)
		return w->err;
	if (w->inl_on && w->inl_len == w->inl_sent)
		return 0; /* the namenode holds every byte already */
	while (w->bw) {
		int rc = cdl_block_writer_sync(w->bw);
		if (rc == 0)
			break;
		rc = recover(w, rc, cdl_block_writer_bad_target(w->bw));
		if (rc) {
			cdl_block_writer_abort(w->bw);
			w->bw = NULL;
			clear_targets(w);
			w->err = rc;
			return rc;
		}
	}
	return complete(w, true, NULL);
}

static void writer_free(cdl_writer *w)
{
	free(w->inl);
	clear_excluded(w);
	clear_targets(w);
	writer_unregister(w->c);
	free(w);
}

int cdl_writer_close(cdl_writer *w)
{
	return cdl_writer_close_attr(w, NULL);
}

int cdl_writer_close_attr(cdl_writer *w, Caudal__Attr *closed)
{
	if (closed) {
		caudal__attr__init(closed);
	}
	int rc = w->err;
	if (rc == 0 && w->bw)
		rc = finish_block(w);
	if (rc == 0)
		rc = complete(w, false, closed);
	if (w->bw)
		cdl_block_writer_abort(w->bw);
	writer_free(w);
	return rc;
}

void cdl_writer_abort(cdl_writer *w)
{
	if (w->bw)
		cdl_block_writer_abort(w->bw);
	writer_free(w);
}

uint64_t cdl_writer_size(const cdl_writer *w)
{
	return w->size;
}

uint64_t cdl_writer_ino(const cdl_writer *w)
{
	return w->ino;
}

int cdl_writer_write_fd(cdl_writer *w, int fd)
{
	return cdl_writer_write_fd_cb(w, fd, NULL, NULL);
}

int cdl_writer_write_fd_cb(cdl_writer *w, int fd, cdl_copied_fn copied, void *arg)
{
	size_t cap = 1 << 20;
	char *buf = xmalloc(cap);
	uint64_t done = 0;
	int rc = 0;
	for (;;) {
		ssize_t k = read(fd, buf, cap);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			rc = -errno;
			break;
		}
		if (k == 0)
			break;
		rc = cdl_writer_write(w, buf, (size_t)k);
		if (rc)
			break;
		done += (uint64_t)k;
		if (copied)
			copied(arg, done, 0);
	}
	free(buf);
	return rc;
}

/* Takes the attributes out of an AttrReply (freeing the rest). */
static int take_attr(Caudal__AttrReply *rep, Caudal__Attr **attr)
{
	if (!rep->attr) {
		protobuf_c_message_free_unpacked(&rep->base, NULL);
		return -EPROTO;
	}
	*attr = rep->attr;
	rep->attr = NULL;
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	return 0;
}

int cdl_create(cdl_client *c, const char *path, uint32_t mode, uint32_t replication,
	       uint64_t block_size, bool overwrite, Caudal__Attr **attr)
{
	Caudal__Target t = CAUDAL__TARGET__INIT;
	Caudal__CreateRequest req = CAUDAL__CREATE_REQUEST__INIT;
	t.path = (char *)path;
	req.target = &t;
	req.mode = mode;
	req.replication = replication;
	req.block_size = block_size;
	req.overwrite = overwrite;
	req.client = c->name;
	req.cred = &c->cred;
	Caudal__AttrReply *rep;
	int rc = cdl_client_call_err(c, CDL_NN_Create, &req.base, (ProtobufCMessage **)&rep);
	return rc ? rc : take_attr(rep, attr);
}

int cdl_append_open(cdl_client *c, const char *path, Caudal__Attr **attr)
{
	Caudal__Target t = CAUDAL__TARGET__INIT;
	Caudal__OpenWriteRequest req = CAUDAL__OPEN_WRITE_REQUEST__INIT;
	t.path = (char *)path;
	req.target = &t;
	req.client = c->name;
	req.cred = &c->cred;
	Caudal__AttrReply *rep;
	int rc = cdl_client_call_err(c, CDL_NN_Append, &req.base, (ProtobufCMessage **)&rep);
	return rc ? rc : take_attr(rep, attr);
}

/* Opens a writer on attr (freeing attr), streams fd into it and closes it. */
static int write_all_fd(cdl_client *c, Caudal__Attr *attr, int fd)
{
	cdl_writer *w;
	int rc = cdl_writer_open(c, attr, &w);
	protobuf_c_message_free_unpacked(&attr->base, NULL);
	if (rc)
		return rc;
	rc = cdl_writer_write_fd(w, fd);
	if (rc) {
		cdl_writer_abort(w);
		return rc;
	}
	return cdl_writer_close(w);
}

int cdl_put_fd(cdl_client *c, const char *path, int fd, uint32_t mode, uint32_t replication,
	       uint64_t block_size, bool overwrite)
{
	Caudal__Attr *attr;
	int rc = cdl_create(c, path, mode, replication, block_size, overwrite, &attr);
	return rc ? rc : write_all_fd(c, attr, fd);
}

int cdl_append_fd(cdl_client *c, const char *path, int fd)
{
	Caudal__Attr *attr;
	int rc = cdl_append_open(c, path, &attr);
	return rc ? rc : write_all_fd(c, attr, fd);
}

/* ------------------------------------------------------------ reading */

struct cdl_reader {
	cdl_client *c;
	pthread_mutex_t mu;
	uint64_t ino;
	uint64_t size;
	Caudal__GetBlocksReply *gb; /* owned: the file's blocks and locations */
	/* the streaming reader: block index, replica's datanode id */
	cdl_block_reader *br;
	size_t br_blk;
	char *br_dn;
	/* datanode ids that failed since the last refresh */
	char **bad;
	size_t nbad;
};

static void reader_drop_stream(cdl_reader *r)
{
	if (r->br)
		cdl_block_reader_close(r->br);
	r->br = NULL;
	free(r->br_dn);
	r->br_dn = NULL;
}

static void reader_clear_bad(cdl_reader *r)
{
	for (size_t i = 0; i < r->nbad; i++)
		free(r->bad[i]);
	free(r->bad);
	r->bad = NULL;
	r->nbad = 0;
}

static bool reader_is_bad(const cdl_reader *r, const char *id)
{
	for (size_t i = 0; i < r->nbad; i++)
		if (strcmp(r->bad[i], id) == 0)
			return true;
	return false;
}

/* Remembers a failed replica; reports it to the namenode when its bytes
 * did not match their checksum. */
static void reader_mark_bad(cdl_reader *r, const Caudal__LocatedBlock *b, const char *dn_id,
			    const char *host, int rc)
{
	cdl_warn("replica of block %llu on '%s' failed: %s%s", (unsigned long long)b->id, host,
		 strerror(-rc), rc == -EBADMSG ? "; reporting it" : "; trying another");
	if (!reader_is_bad(r, dn_id)) {
		r->bad = xrealloc(r->bad, (r->nbad + 1) * sizeof(char *));
		r->bad[r->nbad++] = xstrdup(dn_id);
	}
	if (rc == -EBADMSG) {
		Caudal__ReportBadRequest req = CAUDAL__REPORT_BAD_REQUEST__INIT;
		req.block = b->id;
		req.datanode = (char *)dn_id;
		int e = call_status(r->c, CDL_NN_ReportBad, &req.base);
		if (e)
			cdl_warn("cannot report corrupt block %llu on '%s': %s",
				 (unsigned long long)b->id, host, strerror(-e));
	}
}

static int reader_fetch(cdl_reader *r)
{
	Caudal__Target t = CAUDAL__TARGET__INIT;
	Caudal__GetBlocksRequest req = CAUDAL__GET_BLOCKS_REQUEST__INIT;
	t.ino = r->ino;
	req.target = &t;
	req.client_host = r->c->host;
	req.cred = &r->c->cred;
	Caudal__GetBlocksReply *rep;
	int rc = cdl_client_call_err(r->c, CDL_NN_GetBlocks, &req.base, (ProtobufCMessage **)&rep);
	if (rc)
		return rc;
	if (!rep->attr) {
		protobuf_c_message_free_unpacked(&rep->base, NULL);
		return -EPROTO;
	}
	if ((rc = follow_encryption(rep->n_blocks && rep->blocks[0]->encrypt)) < 0) {
		protobuf_c_message_free_unpacked(&rep->base, NULL);
		return rc;
	}
	reader_drop_stream(r);
	reader_clear_bad(r);
	if (r->gb)
		protobuf_c_message_free_unpacked(&r->gb->base, NULL);
	r->gb = rep;
	r->size = rep->attr->size;
	return 0;
}

int cdl_reader_open(cdl_client *c, uint64_t ino, cdl_reader **out)
{
	cdl_reader *r = xcalloc(1, sizeof(*r));
	r->c = c;
	r->ino = ino;
	pthread_mutex_init(&r->mu, NULL);
	int rc = reader_fetch(r);
	if (rc) {
		cdl_reader_close(r);
		return rc;
	}
	*out = r;
	return 0;
}

int cdl_reader_open_inline(cdl_client *c, uint64_t ino, Caudal__GetBlocksReply *rep,
			   cdl_reader **out)
{
	if (!rep || !rep->attr || rep->n_blocks || rep->attr->blocks || !rep->attr->size ||
	    rep->inline_data.len != rep->attr->size)
		return -EINVAL;
	cdl_reader *r = xcalloc(1, sizeof(*r));
	r->c = c;
	r->ino = ino;
	pthread_mutex_init(&r->mu, NULL);
	r->gb = rep;
	r->size = rep->attr->size;
	*out = r;
	return 0;
}

int cdl_reader_open_path(cdl_client *c, const char *path, cdl_reader **out)
{
	Caudal__Attr *a;
	int rc = cdl_stat(c, path, &a);
	if (rc)
		return rc;
	uint32_t type = a->mode & 0170000;
	uint64_t ino = a->ino;
	protobuf_c_message_free_unpacked(&a->base, NULL);
	if (type == 0040000)
		return -EISDIR;
	if (type != 0100000)
		return -EINVAL;
	return cdl_reader_open(c, ino, out);
}

/* Index of the block holding file offset off, or -1 past the last block. */
static ssize_t find_block(const cdl_reader *r, uint64_t off)
{
	size_t lo = 0, hi = r->gb->n_blocks;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const Caudal__LocatedBlock *b = r->gb->blocks[mid];
		if (off < b->offset)
			hi = mid;
		else if (off >= b->offset + b->length)
			lo = mid + 1;
		else
			return (ssize_t)mid;
	}
	return -1;
}

/* Replicas of b in the order to try: one on this host first, then the
 * namenode's order (closest first); replicas that failed since the last
 * refresh are left out. */
static size_t order_replicas(const cdl_reader *r, const Caudal__LocatedBlock *b,
			     const Caudal__DatanodeInfo **out, size_t max)
{
	size_t n = 0;
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < b->n_locs && n < max; i++) {
			const Caudal__DatanodeInfo *d = b->locs[i];
			bool local = strcmp(d->host, r->c->host) == 0;
			if ((pass == 0) != local || reader_is_bad(r, d->id))
				continue;
			out[n++] = d;
		}
	}
	return n;
}

/* Reads up to n bytes at file offset off (inside the file) from some
 * replica of its block, reusing the streaming reader when it sits exactly
 * there. Returns bytes read (> 0), 0 past the known blocks, or -errno
 * once every replica failed, even after refreshing the locations. */
static ssize_t read_some(cdl_reader *r, void *buf, size_t n, uint64_t off)
{
	const ProtobufCBinaryData *inl = &r->gb->inline_data;
	if (inl->len) {
		/* an inline file: its bytes came with GetBlocks */
		if (off >= inl->len)
			return 0;
		if (n > inl->len - off)
			n = (size_t)(inl->len - off);
		memcpy(buf, inl->data + off, n);
		return (ssize_t)n;
	}
	ssize_t i = find_block(r, off);
	if (i < 0)
		return 0;
	const Caudal__LocatedBlock *b = r->gb->blocks[i];
	uint64_t boff = off - b->offset;
	if (n > b->length - boff)
		n = (size_t)(b->length - boff);
	if (b->id == 0) {
		/* a hole (a file grown by truncate): zeros, stored nowhere */
		memset(buf, 0, n);
		return (ssize_t)n;
	}

	if (r->br && r->br_blk == (size_t)i && cdl_block_reader_pos(r->br) == boff) {
		ssize_t k = cdl_block_reader_read(r->br, buf, n);
		if (k > 0)
			return k;
		reader_mark_bad(r, b, r->br_dn, "stream", k < 0 ? (int)k : -EIO);
	}
	reader_drop_stream(r);

	int64_t end = cdl_now_ms() + r->c->io_timeout_ms;
	int64_t backoff = 250;
	int refreshes = 0;
	int rc = -EIO;
	for (;;) {
		const Caudal__DatanodeInfo *cand[CDL_DT_MAX_TARGETS];
		size_t nc = order_replicas(r, b, cand, CDL_DT_MAX_TARGETS);
		for (size_t j = 0; j < nc; j++) {
			const Caudal__DatanodeInfo *d = cand[j];
			cdl_block_reader *br;
			rc = cdl_block_reader_open(d->host, (int)d->data_port, b->id, b->gen, boff,
						   b->length - boff, &b->token,
						   r->c->rpc_timeout_ms, &br);
			if (rc == 0) {
				ssize_t k = cdl_block_reader_read(br, buf, n);
				if (k > 0) {
					r->br = br;
					r->br_blk = (size_t)i;
					r->br_dn = xstrdup(d->id);
					return k;
				}
				cdl_block_reader_close(br);
				rc = k < 0 ? (int)k : -EIO;
			}
			reader_mark_bad(r, b, d->id, d->host, rc);
		}
		/* Every replica failed. Ask the namenode again: once when there
		 * were replicas to try, and until the I/O timeout when it knew
		 * none (a restarted namenode waits for block reports). */
		bool none_known = b->n_locs == 0;
		if (cdl_now_ms() >= end || (refreshes >= 1 && !none_known))
			break;
		if (refreshes > 0 || none_known) {
			sleep_ms(backoff);
			backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
		}
		refreshes++;
		int e = reader_fetch(r);
		if (e)
			return e;
		i = find_block(r, off);
		if (i < 0)
			return 0;
		b = r->gb->blocks[i];
		boff = off - b->offset;
		if (n > b->length - boff)
			n = (size_t)(b->length - boff);
	}
	cdl_err("cannot read block %llu of inode %llu: every replica failed (%s)",
		(unsigned long long)b->id, (unsigned long long)r->ino,
		b->n_locs ? strerror(-rc) : "no replica known");
	return -EIO;
}

ssize_t cdl_reader_pread(cdl_reader *r, void *buf, size_t n, uint64_t off)
{
	pthread_mutex_lock(&r->mu);
	size_t done = 0;
	if (off < r->size) {
		if (n > r->size - off)
			n = (size_t)(r->size - off);
		while (done < n) {
			ssize_t k = read_some(r, (char *)buf + done, n - done, off + done);
			if (k < 0) {
				pthread_mutex_unlock(&r->mu);
				return k;
			}
			if (k == 0)
				break;
			done += (size_t)k;
		}
	}
	pthread_mutex_unlock(&r->mu);
	return (ssize_t)done;
}

uint64_t cdl_reader_size(const cdl_reader *r)
{
	return r->size;
}

int cdl_reader_refresh(cdl_reader *r)
{
	pthread_mutex_lock(&r->mu);
	int rc = reader_fetch(r);
	pthread_mutex_unlock(&r->mu);
	return rc;
}

void cdl_reader_close(cdl_reader *r)
{
	if (!r)
		return;
	reader_drop_stream(r);
	reader_clear_bad(r);
	if (r->gb)
		protobuf_c_message_free_unpacked(&r->gb->base, NULL);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

int cdl_get_fd(cdl_client *c, const char *path, int fd)
{
	return cdl_get_fd_cb(c, path, fd, NULL, NULL);
}

int cdl_get_fd_cb(cdl_client *c, const char *path, int fd, cdl_copied_fn copied, void *arg)
{
	cdl_reader *r;
	int rc = cdl_reader_open_path(c, path, &r);
	if (rc)
		return rc;
	if (copied)
		copied(arg, 0, cdl_reader_size(r));
	size_t cap = 1 << 20;
	char *buf = xmalloc(cap);
	uint64_t off = 0;
	for (;;) {
		ssize_t k = cdl_reader_pread(r, buf, cap, off);
		if (k < 0) {
			rc = (int)k;
			break;
		}
		if (k == 0)
			break;
		rc = cdl_write_full(fd, buf, (size_t)k);
		if (rc)
			break;
		off += (uint64_t)k;
		if (copied)
			copied(arg, off, cdl_reader_size(r));
	}
	free(buf);
	cdl_reader_close(r);
	return rc;
}
