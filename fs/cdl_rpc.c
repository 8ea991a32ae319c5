/* cdl_rpc: see cdl_rpc.h. The call lifecycle follows
 * ../shared/notes/grpc-core.md: a registered request is kept outstanding
 * per method on every worker's completion queue; an arrived call is
 * unpacked, handled, answered with two batches (receive-close, and
 * metadata+message+status), and freed when both complete. */
#include "cdl_rpc.h"

#include <errno.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cdl_log.h"
#include "cdl_metrics.h"

#define MAX_SERVICES 8
/* Longest pause between a client channel's reconnect attempts. */
#define RECONNECT_MAX_MS 1000

void cdl_rpc_global_init(void)
{
	grpc_init();
}

void cdl_rpc_global_shutdown(void)
{
	grpc_shutdown();
}

/* ---------------------------------------------------------------- server */

struct service {
	const ProtobufCServiceDescriptor *desc;
	cdl_rpc_handler *handlers; /* by method index */
	unsigned *flags;	   /* by method index */
	unsigned *roles;	   /* by method index: CDL_ROLE_BIT mask, 0 = any */
	void *ctx;
};

struct method_reg {
	struct service *svc;
	unsigned index;
	char *path;
	void *handle;
	cdl_series *seconds; /* time from arrival to answer (NULL: no metrics) */
	cdl_series *failed;  /* calls answered with a gRPC status other than OK */
};

enum call_state { CALL_WAIT, CALL_SENDING };

struct srv_call {
	enum call_state state;
	_Atomic int pending;  /* batches outstanding while sending */
	struct method_reg *m; /* NULL: generic (unknown method) request */
	int worker;
	grpc_call *call;
	gpr_timespec deadline;
	grpc_metadata_array md;
	grpc_byte_buffer *payload;
	grpc_call_details details;
	grpc_byte_buffer *resp;
	grpc_slice status_details;
	int cancelled;
	cdl_peer peer;		   /* who called, filled when the call arrives */
	grpc_status_code refuse;   /* non-OK: answer this without running the handler */
	const char *refuse_detail; /* static text for refuse */
	int64_t arrived_ns;	   /* cdl_now_ns when the call was taken */
};

/* The caller of the handler running on this thread. */
static __thread const cdl_peer *cur_peer;

const cdl_peer *cdl_rpc_peer(void)
{
	return cur_peer;
}

const cdl_peer *cdl_rpc_set_peer(const cdl_peer *p)
{
	const cdl_peer *old = cur_peer;
	cur_peer = p;
	return old;
}

struct cdl_rpc_server {
	grpc_server *srv;
	char *addr;
	int port;
	int nthreads;
	pthread_t *threads;
	grpc_completion_queue **cqs;
	struct service svcs[MAX_SERVICES];
	int nsvc;
	struct method_reg *methods;
	int nmethods;
	int started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int shutdown_done;
	int nblocking; /* blocking handlers running on their own threads */
	/* blocking handlers running per caller (identity or address), so that
	 * one caller cannot take every long-poll thread; under lock */
	struct peer_count {
		char key[160];
		int n;
	} * pcount;
	int npcount;
	bool tls; /* listening with mutual TLS (else plaintext, roles unchecked) */
	_Atomic int stopping;
	cdl_metrics *metrics; /* cdl_rpc_server_metrics; NULL: none */
	char *metrics_prefix;
};

/* Long polls at once, in all and per caller. Past these a long poll is
 * answered RESOURCE_EXHAUSTED at once rather than run on a worker thread,
 * where it would stall every other call queued there. */
#define MAX_BLOCKING	  256
#define MAX_BLOCKING_PEER 16

static char shutdown_tag;

cdl_rpc_server *cdl_rpc_server_new(const char *addr, int nthreads)
{
	if (!addr || nthreads < 1 || nthreads > 256)
		return NULL;
	cdl_rpc_server *s = xcalloc(1, sizeof(*s));
	s->addr = xstrdup(addr);
	s->nthreads = nthreads;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	grpc_arg args[2];
	args[0].type = GRPC_ARG_INTEGER;
	args[0].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
	args[0].value.integer = CDL_RPC_MAX_MSG;
	/* SO_REUSEPORT would let a second daemon bind the same port silently. */
	args[1].type = GRPC_ARG_INTEGER;
	args[1].key = (char *)GRPC_ARG_ALLOW_REUSEPORT;
	args[1].value.integer = 0;
	grpc_channel_args ca = {2, args};
	s->srv = grpc_server_create(&ca, NULL);
	return s;
}

int cdl_rpc_server_add(cdl_rpc_server *s, const ProtobufCServiceDescriptor *desc,
		       const cdl_rpc_method *table, void *ctx)
{
	if (s->started || s->nsvc == MAX_SERVICES)
		return -EINVAL;
	cdl_rpc_handler *h = xcalloc(desc->n_methods, sizeof(*h));
	unsigned *fl = xcalloc(desc->n_methods, sizeof(*fl));
	unsigned *ro = xcalloc(desc->n_methods, sizeof(*ro));
	for (const cdl_rpc_method *t = table; t->name; t++) {
		unsigned i;
		for (i = 0; i < desc->n_methods; i++)
			if (!strcmp(desc->methods[i].name, t->name))
				break;
		if (i == desc->n_methods) {
			cdl_err("service '%s' has no method '%s'", desc->name, t->name);
			goto fail;
		}
		if (h[i]) {
			cdl_err("service '%s': method '%s' has two handlers", desc->name, t->name);
			goto fail;
		}
		if (!t->handler) {
			cdl_err("service '%s': method '%s' has a NULL handler", desc->name,
				t->name);
			goto fail;
		}
		h[i] = t->handler;
		fl[i] = t->flags;
		ro[i] = t->roles;
	}
	for (unsigned i = 0; i < desc->n_methods; i++)
		if (!h[i]) {
			cdl_err("service '%s': no handler for method '%s'", desc->name,
				desc->methods[i].name);
			goto fail;
		}
	struct service *svc = &s->svcs[s->nsvc++];
	svc->desc = desc;
	svc->handlers = h;
	svc->flags = fl;
	svc->roles = ro;
	svc->ctx = ctx;
	s->methods = xrealloc(s->methods, sizeof(*s->methods) * (s->nmethods + desc->n_methods));
	for (unsigned i = 0; i < desc->n_methods; i++) {
		struct method_reg *m = &s->methods[s->nmethods++];
		m->svc = svc;
		m->index = i;
		m->seconds = m->failed = NULL;
		m->path = xasprintf("/%s/%s", desc->name, desc->methods[i].name);
		m->handle = grpc_server_register_method(
		    s->srv, m->path, NULL, GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
	}
	return 0;
fail:
	free(h);
	free(fl);
	free(ro);
	return -EINVAL;
}

static void post_request(cdl_rpc_server *s, int worker, struct method_reg *m)
{
	struct srv_call *c = xcalloc(1, sizeof(*c));
	c->state = CALL_WAIT;
	c->m = m;
	c->worker = worker;
	grpc_metadata_array_init(&c->md);
	grpc_completion_queue *cq = s->cqs[worker];
	grpc_call_error e;
	if (m) {
		e = grpc_server_request_registered_call(s->srv, m->handle, &c->call, &c->deadline,
							&c->md, &c->payload, cq, cq, c);
	} else {
		grpc_call_details_init(&c->details);
		e = grpc_server_request_call(s->srv, &c->call, &c->details, &c->md, cq, cq, c);
	}
	if (e != GRPC_CALL_OK) {
		/* only happens while shutting down */
		grpc_metadata_array_destroy(&c->md);
		if (!m)
			grpc_call_details_destroy(&c->details);
		free(c);
	}
}

static void call_free(struct srv_call *c)
{
	grpc_metadata_array_destroy(&c->md);
	if (!c->m)
		grpc_call_details_destroy(&c->details);
	if (c->payload)
		grpc_byte_buffer_destroy(c->payload);
	if (c->resp)
		grpc_byte_buffer_destroy(c->resp);
	grpc_slice_unref(c->status_details);
	if (c->call)
		grpc_call_unref(c->call);
	free(c);
}

/* Who is calling: the role and name in the verified client certificate
 * ("ROLE:NAME" common name) on a TLS server, CDL_ROLE_INSECURE on a
 * plaintext one, CDL_ROLE_NONE when a TLS peer's certificate names no role;
 * and the peer's IP address. */
static void identify(const cdl_rpc_server *s, struct srv_call *c)
{
	cdl_peer *p = &c->peer;
	memset(p, 0, sizeof(*p));
	char *addr = grpc_call_get_peer(c->call);
	if (addr) {
		/* "ipv4:127.0.0.2:4242" or "ipv6:[::1]:4242" */
		const char *a = strchr(addr, ':');
		a = a ? a + 1 : addr;
		if (*a == '[')
			a++;
		const char *end = strrchr(a, ':');
		size_t n = end ? (size_t)(end - a) : strlen(a);
		if (n > 0 && a[n - 1] == ']')
			n--;
		if (n >= sizeof(p->addr))
			n = sizeof(p->addr) - 1;
		memcpy(p->addr, a, n);
		gpr_free(addr);
	}
	if (!s->tls) {
		p->role = CDL_ROLE_INSECURE;
		return;
	}
	grpc_auth_context *ac = grpc_call_auth_context(c->call);
	if (!ac)
		return;
	grpc_auth_property_iterator it =
	    grpc_auth_context_find_properties_by_name(ac, GRPC_X509_CN_PROPERTY_NAME);
	const grpc_auth_property *prop = grpc_auth_property_iterator_next(&it);
	if (!prop || !cdl_peer_from_cn(prop->value, prop->value_length, p) ||
	    p->role == CDL_ROLE_INSECURE)
		p->role = CDL_ROLE_NONE;
	grpc_auth_context_release(ac);
}

/* Unpack, run the handler and pack its reply. Returns a gRPC status. */
static grpc_status_code run_handler(cdl_rpc_server *s, struct srv_call *c, const char **detail)
{
	struct service *svc = c->m->svc;
	const ProtobufCMethodDescriptor *md = &svc->desc->methods[c->m->index];
	grpc_status_code st = GRPC_STATUS_OK;
	ProtobufCMessage *req = NULL;
	cdl_arena arena;

	if (s->tls) {
		unsigned allowed = svc->roles[c->m->index];
		if (c->peer.role == CDL_ROLE_NONE) {
			*detail = "no caudal identity in the client certificate";
			return GRPC_STATUS_UNAUTHENTICATED;
		}
		if (allowed && !(allowed & CDL_ROLE_BIT(c->peer.role))) {
			cdl_info("refused '%s' to %s '%s' from %s", md->name,
				 cdl_role_name(c->peer.role), c->peer.name, c->peer.addr);
			*detail = "this certificate's role may not call this method";
			return GRPC_STATUS_PERMISSION_DENIED;
		}
	}
	cdl_arena_init(&arena);

	if (!c->payload) {
		*detail = "no request message";
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	grpc_byte_buffer_reader rd;
	if (!grpc_byte_buffer_reader_init(&rd, c->payload)) {
		*detail = "unreadable request";
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	grpc_slice in = grpc_byte_buffer_reader_readall(&rd);
	grpc_byte_buffer_reader_destroy(&rd);
	req = protobuf_c_message_unpack(md->input, NULL, GRPC_SLICE_LENGTH(in),
					GRPC_SLICE_START_PTR(in));
	grpc_slice_unref(in);
	if (!req) {
		*detail = "malformed request message";
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	ProtobufCMessage *reply = cdl_arena_alloc(&arena, md->output->sizeof_message);
	md->output->message_init(reply);
	cur_peer = &c->peer;
	svc->handlers[c->m->index](svc->ctx, req, reply, &arena);
	cur_peer = NULL;
	size_t len = protobuf_c_message_get_packed_size(reply);
	grpc_slice out = grpc_slice_malloc(len);
	protobuf_c_message_pack(reply, GRPC_SLICE_START_PTR(out));
	c->resp = grpc_raw_byte_buffer_create(&out, 1);
	grpc_slice_unref(out);
	protobuf_c_message_free_unpacked(req, NULL);
	cdl_arena_release(&arena);
	return st;
}

static void answer(cdl_rpc_server *s, struct srv_call *c)
{
	const char *detail = "";
	grpc_status_code st;
	if (c->refuse != GRPC_STATUS_OK) {
		st = c->refuse;
		detail = c->refuse_detail;
	} else if (c->m) {
		st = run_handler(s, c, &detail);
	} else {
		st = GRPC_STATUS_UNIMPLEMENTED;
		detail = "unknown method";
		cdl_debug("unknown method '%.*s'", (int)GRPC_SLICE_LENGTH(c->details.method),
			  (const char *)GRPC_SLICE_START_PTR(c->details.method));
	}
	if (c->m && c->m->seconds) {
		cdl_series_observe(c->m->seconds, cdl_metrics_since(c->arrived_ns));
		if (st != GRPC_STATUS_OK)
			cdl_series_add(c->m->failed, 1);
	}
	c->status_details = grpc_slice_from_copied_string(detail);
	c->state = CALL_SENDING;
	c->pending = 2;

	grpc_op r[1];
	memset(r, 0, sizeof(r));
	r[0].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	r[0].data.recv_close_on_server.cancelled = &c->cancelled;
	/* once a batch is started the completion thread may free c as soon as
	 * pending reaches 0, so c is not touched after the last decrement */
	if (grpc_call_start_batch(c->call, r, 1, c, NULL) != GRPC_CALL_OK &&
	    atomic_fetch_sub(&c->pending, 1) == 1) {
		call_free(c);
		return;
	}

	grpc_op ops[3];
	memset(ops, 0, sizeof(ops));
	size_t n = 0;
	ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
	if (c->resp) {
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n++].data.send_message.send_message = c->resp;
	}
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.status = st;
	ops[n++].data.send_status_from_server.status_details = &c->status_details;
	if (grpc_call_start_batch(c->call, ops, n, c, NULL) != GRPC_CALL_OK &&
	    atomic_fetch_sub(&c->pending, 1) == 1)
		call_free(c);
}

struct blocking_arg {
	cdl_rpc_server *s;
	struct srv_call *c;
	char key[160];
};

/* The caller's key for long-poll accounting: its certificate identity, or
 * its address on a plaintext server. */
static void peer_key(const cdl_peer *p, char *key, size_t n)
{
	if (p->role == CDL_ROLE_INSECURE || p->role == CDL_ROLE_NONE)
		snprintf(key, n, "@%s", p->addr);
	else
		snprintf(key, n, "%s:%s", cdl_role_name(p->role), p->name);
}

/* Takes a long-poll slot for key; false when the caller or the server has
 * too many. Called with s->lock held. */
static bool slot_take(cdl_rpc_server *s, const char *key)
{
	if (s->nblocking >= MAX_BLOCKING)
		return false;
	int i;
	for (i = 0; i < s->npcount; i++)
		if (!strcmp(s->pcount[i].key, key))
			break;
	if (i == s->npcount) {
		s->pcount = xrealloc(s->pcount, sizeof(*s->pcount) * (size_t)(s->npcount + 1));
		snprintf(s->pcount[i].key, sizeof(s->pcount[i].key), "%s", key);
		s->pcount[i].n = 0;
		s->npcount++;
	}
	if (s->pcount[i].n >= MAX_BLOCKING_PEER)
		return false;
	s->pcount[i].n++;
	s->nblocking++;
	return true;
}

/* Called with s->lock held. */
static void slot_give(cdl_rpc_server *s, const char *key)
{
	s->nblocking--;
	for (int i = 0; i < s->npcount; i++)
		if (!strcmp(s->pcount[i].key, key)) {
			if (--s->pcount[i].n == 0)
				s->pcount[i] = s->pcount[--s->npcount];
			break;
		}
}

static void *blocking_main(void *arg)
{
	struct blocking_arg *b = arg;
	cdl_rpc_server *s = b->s;
	answer(s, b->c);
	pthread_mutex_lock(&s->lock);
	slot_give(s, b->key);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	free(b);
	return NULL;
}

/* Run a blocking handler on a detached thread of its own. Never inline: a
 * long poll on a worker thread stalls every call queued there, so when the
 * caller holds too many long polls (or no thread can be made) the call is
 * refused with RESOURCE_EXHAUSTED at once. */
static void answer_blocking(cdl_rpc_server *s, struct srv_call *c)
{
	struct blocking_arg *b = xmalloc(sizeof(*b));
	b->s = s;
	b->c = c;
	peer_key(&c->peer, b->key, sizeof(b->key));
	pthread_mutex_lock(&s->lock);
	bool room = slot_take(s, b->key);
	pthread_mutex_unlock(&s->lock);
	if (room) {
		pthread_t t;
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		int rc = pthread_create(&t, &at, blocking_main, b);
		pthread_attr_destroy(&at);
		if (rc == 0)
			return;
		pthread_mutex_lock(&s->lock);
		slot_give(s, b->key);
		pthread_mutex_unlock(&s->lock);
	}
	free(b);
	c->refuse = GRPC_STATUS_RESOURCE_EXHAUSTED;
	c->refuse_detail = "too many long polls from this caller";
	answer(s, c);
}

static void *worker_main(void *arg)
{
	cdl_rpc_server *s = ((void **)arg)[0];
	int w = (int)(intptr_t)((void **)arg)[1];
	free(arg);
	grpc_completion_queue *cq = s->cqs[w];
	for (int i = 0; i < s->nmethods; i++)
		post_request(s, w, &s->methods[i]);
	post_request(s, w, NULL);
	for (;;) {
		grpc_event ev =
		    grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type != GRPC_OP_COMPLETE)
			continue;
		if (ev.tag == &shutdown_tag) {
			pthread_mutex_lock(&s->lock);
			s->shutdown_done = 1;
			pthread_cond_broadcast(&s->cond);
			pthread_mutex_unlock(&s->lock);
			continue;
		}
		struct srv_call *c = ev.tag;
		if (c->state == CALL_WAIT) {
			if (!ev.success) { /* server shutting down */
				call_free(c);
				continue;
			}
			struct method_reg *m = c->m;
			c->arrived_ns = cdl_now_ns();
			identify(s, c);
			if (m && (m->svc->flags[m->index] & CDL_RPC_BLOCKING)) {
				if (!s->stopping)
					post_request(s, w, m);
				answer_blocking(s, c);
				continue;
			}
			answer(s, c);
			if (!s->stopping)
				post_request(s, w, m);
		} else if (atomic_fetch_sub(&c->pending, 1) == 1) {
			call_free(c);
		}
	}
	return NULL;
}

void cdl_rpc_server_metrics(cdl_rpc_server *s, cdl_metrics *r, const char *prefix)
{
	s->metrics = r;
	free(s->metrics_prefix);
	s->metrics_prefix = xstrdup(prefix);
}

/* One latency histogram and one failure counter per method, looked up once
 * here so that a call only touches atomics. */
static void metrics_series(cdl_rpc_server *s)
{
	if (!s->metrics)
		return;
	char *name = xasprintf("%s_rpc_seconds", s->metrics_prefix);
	cdl_metric *h = cdl_metrics_histogram(
	    s->metrics, name,
	    "Time from a call's arrival to its answer (long polls included), by method.",
	    "service,method", NULL, 0);
	free(name);
	name = xasprintf("%s_rpc_failed_total", s->metrics_prefix);
	cdl_metric *f =
	    cdl_metrics_counter(s->metrics, name,
				"Calls answered with a gRPC status other than OK (refused, "
				"malformed, unauthenticated), by method.",
				"service,method");
	free(name);
	for (int i = 0; i < s->nmethods; i++) {
		struct method_reg *m = &s->methods[i];
		const ProtobufCServiceDescriptor *d = m->svc->desc;
		const char *svc = d->short_name ? d->short_name : d->name;
		m->seconds = cdl_metric_at(h, svc, d->methods[m->index].name);
		m->failed = cdl_metric_at(f, svc, d->methods[m->index].name);
	}
}

int cdl_rpc_server_start(cdl_rpc_server *s)
{
	metrics_series(s);
	s->cqs = xcalloc(s->nthreads, sizeof(*s->cqs));
	for (int i = 0; i < s->nthreads; i++) {
		s->cqs[i] = grpc_completion_queue_create_for_next(NULL);
		grpc_server_register_completion_queue(s->srv, s->cqs[i], NULL);
	}
	grpc_server_credentials *cr;
	if (cdl_sec_enabled()) {
		/* mutual TLS: only peers with a certificate of the cluster CA */
		grpc_ssl_pem_key_cert_pair kp = {cdl_sec_key_pem(), cdl_sec_cert_pem()};
		cr = grpc_ssl_server_credentials_create_ex(
		    cdl_sec_ca_pem(), &kp, 1,
		    GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY, NULL);
		s->tls = true;
	} else {
		cr = grpc_insecure_server_credentials_create();
	}
	s->port = grpc_server_add_http2_port(s->srv, s->addr, cr);
	grpc_server_credentials_release(cr);
	if (s->port <= 0) {
		cdl_err("cannot listen on '%s' (address in use or invalid)", s->addr);
		return -EADDRINUSE;
	}
	grpc_server_start(s->srv);
	s->started = 1;
	s->threads = xcalloc(s->nthreads, sizeof(*s->threads));
	for (int i = 0; i < s->nthreads; i++) {
		void **arg = xmalloc(2 * sizeof(void *));
		arg[0] = s;
		arg[1] = (void *)(intptr_t)i;
		pthread_create(&s->threads[i], NULL, worker_main, arg);
	}
	return 0;
}

int cdl_rpc_server_port(const cdl_rpc_server *s)
{
	return s->port;
}

void cdl_rpc_server_free(cdl_rpc_server *s, int grace_ms)
{
	if (!s)
		return;
	if (s->started) {
		s->stopping = 1;
		grpc_server_shutdown_and_notify(s->srv, s->cqs[0], &shutdown_tag);
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += grace_ms / 1000;
		ts.tv_nsec += (long)(grace_ms % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_mutex_lock(&s->lock);
		while (!s->shutdown_done) {
			if (pthread_cond_timedwait(&s->cond, &s->lock, &ts) == ETIMEDOUT) {
				grpc_server_cancel_all_calls(s->srv);
				while (!s->shutdown_done)
					pthread_cond_wait(&s->cond, &s->lock);
			}
		}
		pthread_mutex_unlock(&s->lock);
		/* blocking handlers finished their calls (shutdown waited for
		 * them) but may still be returning: wait until they are gone */
		pthread_mutex_lock(&s->lock);
		while (s->nblocking > 0)
			pthread_cond_wait(&s->cond, &s->lock);
		pthread_mutex_unlock(&s->lock);
		for (int i = 0; i < s->nthreads; i++)
			grpc_completion_queue_shutdown(s->cqs[i]);
		for (int i = 0; i < s->nthreads; i++)
			pthread_join(s->threads[i], NULL);
	}
	grpc_server_destroy(s->srv);
	if (s->cqs)
		for (int i = 0; i < s->nthreads; i++)
			if (s->cqs[i])
				grpc_completion_queue_destroy(s->cqs[i]);
	for (int i = 0; i < s->nmethods; i++)
		free(s->methods[i].path);
	for (int i = 0; i < s->nsvc; i++) {
		free(s->svcs[i].handlers);
		free(s->svcs[i].flags);
		free(s->svcs[i].roles);
	}
	free(s->methods);
	free(s->metrics_prefix);
	free(s->pcount);
	free(s->cqs);
	free(s->threads);
	free(s->addr);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s);
}

/* ---------------------------------------------------------------- client */

struct cdl_rpc_client {
	grpc_channel *ch;
	char *target;
	const ProtobufCServiceDescriptor *desc;
	char **paths;
	void **handles;
};

static pthread_key_t cq_key;
static pthread_once_t cq_once = PTHREAD_ONCE_INIT;

static void cq_destroy(void *p)
{
	grpc_completion_queue *cq = p;
	grpc_completion_queue_shutdown(cq);
	grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	grpc_completion_queue_destroy(cq);
}

static void cq_key_init(void)
{
	pthread_key_create(&cq_key, cq_destroy);
}

/* Each calling thread plucks on its own queue, created on first use and
 * destroyed when the thread exits. */
static grpc_completion_queue *thread_cq(void)
{
	pthread_once(&cq_once, cq_key_init);
	grpc_completion_queue *cq = pthread_getspecific(cq_key);
	if (!cq) {
		cq = grpc_completion_queue_create_for_pluck(NULL);
		pthread_setspecific(cq_key, cq);
	}
	return cq;
}

cdl_rpc_client *cdl_rpc_client_new(const char *target, const ProtobufCServiceDescriptor *desc)
{
	if (!target || !*target || !desc)
		return NULL;
	cdl_rpc_client *c = xcalloc(1, sizeof(*c));
	c->target = xstrdup(target);
	c->desc = desc;
	/* Reconnect quickly after a daemon restarts; the default backoff grows
	 * to two minutes, during which fail-fast calls would all fail. */
	grpc_arg args[4];
	memset(args, 0, sizeof(args));
	args[0].type = GRPC_ARG_INTEGER;
	args[0].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
	args[0].value.integer = CDL_RPC_MAX_MSG;
	args[1].type = GRPC_ARG_INTEGER;
	args[1].key = (char *)GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS;
	args[1].value.integer = 100;
	args[2].type = GRPC_ARG_INTEGER;
	args[2].key = (char *)GRPC_ARG_MIN_RECONNECT_BACKOFF_MS;
	args[2].value.integer = 100;
	args[3].type = GRPC_ARG_INTEGER;
	args[3].key = (char *)GRPC_ARG_MAX_RECONNECT_BACKOFF_MS;
	args[3].value.integer = RECONNECT_MAX_MS;
	grpc_channel_args ca = {4, args};
	grpc_channel_credentials *cr;
	if (cdl_sec_enabled()) {
		grpc_ssl_pem_key_cert_pair kp = {cdl_sec_key_pem(), cdl_sec_cert_pem()};
		cr = grpc_ssl_credentials_create(cdl_sec_ca_pem(), &kp, NULL, NULL);
	} else {
		cr = grpc_insecure_credentials_create();
	}
	c->ch = grpc_channel_create(target, cr, &ca);
	grpc_channel_credentials_release(cr);
	c->paths = xcalloc(desc->n_methods, sizeof(char *));
	c->handles = xcalloc(desc->n_methods, sizeof(void *));
	for (unsigned i = 0; i < desc->n_methods; i++) {
		c->paths[i] = xasprintf("/%s/%s", desc->name, desc->methods[i].name);
		c->handles[i] = grpc_channel_register_call(c->ch, c->paths[i], NULL, NULL);
	}
	return c;
}

void cdl_rpc_client_free(cdl_rpc_client *c)
{
	if (!c)
		return;
	grpc_channel_destroy(c->ch);
	for (unsigned i = 0; i < c->desc->n_methods; i++)
		free(c->paths[i]);
	free(c->paths);
	free(c->handles);
	free(c->target);
	free(c);
}

const char *cdl_rpc_client_target(const cdl_rpc_client *c)
{
	return c->target;
}

static int status_errno(grpc_status_code st)
{
	switch (st) {
	case GRPC_STATUS_OK:
		return 0;
	case GRPC_STATUS_DEADLINE_EXCEEDED:
		return -ETIMEDOUT;
	case GRPC_STATUS_UNAVAILABLE:
		return -EHOSTUNREACH;
	case GRPC_STATUS_UNIMPLEMENTED:
		return -ENOSYS;
	case GRPC_STATUS_PERMISSION_DENIED:
	case GRPC_STATUS_UNAUTHENTICATED:
		return -EACCES;
	case GRPC_STATUS_INVALID_ARGUMENT:
		return -EINVAL;
	case GRPC_STATUS_NOT_FOUND:
		return -ENOENT;
	case GRPC_STATUS_ALREADY_EXISTS:
		return -EEXIST;
	case GRPC_STATUS_CANCELLED:
		return -ECANCELED;
	case GRPC_STATUS_RESOURCE_EXHAUSTED:
		return -EBUSY;
	default:
		return -EIO;
	}
}

/* Calls fail fast when their channel is not connected (an absent server is
 * told at once). But a connection makes progress (the TCP connect and the
 * TLS handshake's round trips) only while some thread waits on a queue, so
 * a caller that fails fast and sleeps between attempts, such as a
 * datanode's heartbeat, would never get a TLS connection back after its
 * server restarts. So before a call on a channel that is not ready, wait
 * here (driving it) until it is ready or one connection attempt has failed,
 * within the call's deadline. */
static grpc_connectivity_state await_channel(cdl_rpc_client *c, grpc_completion_queue *cq,
					     gpr_timespec deadline)
{
	grpc_connectivity_state st = grpc_channel_check_connectivity_state(c->ch, 1);
	bool moved = false;
	while (st != GRPC_CHANNEL_READY && st != GRPC_CHANNEL_SHUTDOWN) {
		if (st == GRPC_CHANNEL_TRANSIENT_FAILURE && moved)
			break; /* an attempt failed since we came: let the call say so */
		/* a channel in failure keeps that state through its reconnect
		 * attempts (it leaves it only when one succeeds): give it one
		 * backoff period and a handshake, not the whole deadline */
		gpr_timespec until = deadline;
		if (st == GRPC_CHANNEL_TRANSIENT_FAILURE) {
			gpr_timespec slice = gpr_time_add(
			    gpr_now(GPR_CLOCK_MONOTONIC),
			    gpr_time_from_millis(RECONNECT_MAX_MS + 500, GPR_TIMESPAN));
			if (gpr_time_cmp(slice, until) < 0)
				until = slice;
		}
		char tag;
		grpc_channel_watch_connectivity_state(c->ch, st, until, cq, &tag);
		grpc_event ev =
		    grpc_completion_queue_pluck(cq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type != GRPC_OP_COMPLETE)
			break;
		moved = true;
		st = grpc_channel_check_connectivity_state(c->ch, 0);
		if (!ev.success && gpr_time_cmp(gpr_now(GPR_CLOCK_MONOTONIC), deadline) >= 0)
			break; /* the call's time is up */
	}
	return st;
}

int cdl_rpc_call(cdl_rpc_client *c, unsigned index, const ProtobufCMessage *req,
		 ProtobufCMessage **reply, int timeout_ms)
{
	*reply = NULL;
	if (index >= c->desc->n_methods || req->descriptor != c->desc->methods[index].input)
		return -EINVAL;
	if (timeout_ms <= 0)
		timeout_ms = 1;
	grpc_completion_queue *cq = thread_cq();
	gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
					     gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
	if (await_channel(c, cq, deadline) != GRPC_CHANNEL_READY &&
	    gpr_time_cmp(gpr_now(GPR_CLOCK_MONOTONIC), deadline) >= 0)
		return -EHOSTUNREACH; /* never reached the server in the time given */
	grpc_call *call = grpc_channel_create_registered_call(
	    c->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, c->handles[index], deadline, NULL);
	if (!call)
		return -EIO;

	size_t len = protobuf_c_message_get_packed_size(req);
	grpc_slice out = grpc_slice_malloc(len);
	protobuf_c_message_pack(req, GRPC_SLICE_START_PTR(out));
	grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&out, 1);
	grpc_slice_unref(out);

	grpc_metadata_array init_md, trail_md;
	grpc_metadata_array_init(&init_md);
	grpc_metadata_array_init(&trail_md);
	grpc_byte_buffer *recv = NULL;
	grpc_status_code st = GRPC_STATUS_UNKNOWN;
	grpc_slice details = grpc_empty_slice();
	const char *error_string = NULL;

	grpc_op ops[6];
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = send;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &init_md;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &recv;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &trail_md;
	ops[5].data.recv_status_on_client.status = &st;
	ops[5].data.recv_status_on_client.status_details = &details;
	ops[5].data.recv_status_on_client.error_string = &error_string;

	int rc = 0;
	char tag;
	if (grpc_call_start_batch(call, ops, 6, &tag, NULL) != GRPC_CALL_OK) {
		rc = -EIO;
		goto out;
	}
	/* The call deadline bounds this wait; the margin only guards against a
	 * library that failed to enforce it. */
	gpr_timespec guard = gpr_time_add(deadline, gpr_time_from_millis(5000, GPR_TIMESPAN));
	grpc_event ev = grpc_completion_queue_pluck(cq, &tag, guard, NULL);
	if (ev.type != GRPC_OP_COMPLETE) {
		grpc_call_cancel(call, NULL);
		grpc_completion_queue_pluck(cq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		rc = -ETIMEDOUT;
		goto out;
	}
	rc = status_errno(st);
	if (rc < 0) {
		cdl_debug("rpc '%s' to '%s' failed: status %d %.*s", c->paths[index], c->target,
			  (int)st, (int)GRPC_SLICE_LENGTH(details),
			  (const char *)GRPC_SLICE_START_PTR(details));
		goto out;
	}
	if (!recv) {
		rc = -EPROTO;
		goto out;
	}
	grpc_byte_buffer_reader rd;
	if (!grpc_byte_buffer_reader_init(&rd, recv)) {
		rc = -EPROTO;
		goto out;
	}
	grpc_slice in = grpc_byte_buffer_reader_readall(&rd);
	grpc_byte_buffer_reader_destroy(&rd);
	*reply = protobuf_c_message_unpack(c->desc->methods[index].output, NULL,
					   GRPC_SLICE_LENGTH(in), GRPC_SLICE_START_PTR(in));
	grpc_slice_unref(in);
	if (!*reply)
		rc = -EPROTO;
out:
	grpc_byte_buffer_destroy(send);
	if (recv)
		grpc_byte_buffer_destroy(recv);
	grpc_metadata_array_destroy(&init_md);
	grpc_metadata_array_destroy(&trail_md);
	grpc_slice_unref(details);
	gpr_free((void *)error_string);
	grpc_call_unref(call);
	return rc;
}

int cdl_rpc_call_name(cdl_rpc_client *c, const char *method, const ProtobufCMessage *req,
		      ProtobufCMessage **reply, int timeout_ms)
{
	for (unsigned i = 0; i < c->desc->n_methods; i++)
		if (!strcmp(c->desc->methods[i].name, method))
			return cdl_rpc_call(c, i, req, reply, timeout_ms);
	*reply = NULL;
	return -ENOSYS;
}
