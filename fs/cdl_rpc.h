/* cdl_rpc: unary RPCs over gRPC core with protobuf-c messages.
 *
 * Server: a fixed pool of worker threads, each with its own completion
 * queue, serves one or more services. Each service is a table of
 * {method, handler} checked against the protoc-c service descriptor when it
 * is added: a missing, extra or misnamed handler is an error. Handlers run on
 * the worker threads that poll the completion queues and must not block,
 * except those flagged CDL_RPC_BLOCKING (long polls), which get a thread of
 * their own. Handlers build their reply in a per-call arena. Unknown methods get UNIMPLEMENTED;
 * undecodable requests get INVALID_ARGUMENT.
 *
 * Client: one channel per cdl_rpc_client; calls may be made from any thread
 * (each thread plucks on its own completion queue). Every call has a
 * deadline. Transport failures come back as negative errnos:
 * DEADLINE_EXCEEDED -ETIMEDOUT, UNAVAILABLE -EHOSTUNREACH, UNIMPLEMENTED
 * -ENOSYS, INVALID_ARGUMENT -EINVAL, others -EIO. Filesystem errors are
 * the reply's own `err` field, never a gRPC status. */
#ifndef CDL_RPC_H
#define CDL_RPC_H

#include <protobuf-c/protobuf-c.h>
#include <stdint.h>

#include "cdl_sec.h"
#include "cdl_util.h"

/* Largest message either side accepts (block data never travels by RPC). */
#define CDL_RPC_MAX_MSG (64 * 1024 * 1024)

/* A handler fills `reply` (already initialised for the method's output type,
 * allocated in `arena`) from `req`. Everything it points the reply at must
 * live in the arena or outlive the call. */
typedef void (*cdl_rpc_handler)(void *ctx, const ProtobufCMessage *req, ProtobufCMessage *reply,
				cdl_arena *arena);

/* The handler may block for long (a long poll): it runs on a thread of its
 * own, so the completion-queue threads keep serving other calls. */
#define CDL_RPC_BLOCKING 1u

typedef struct cdl_rpc_method {
	const char *name; /* method name as in the .proto, e.g. "GetAttr" */
	cdl_rpc_handler handler;
	unsigned flags; /* CDL_RPC_BLOCKING */
	/* CDL_ROLE_BIT mask of the roles that may call it; 0 = any
	 * authenticated peer. Others get PERMISSION_DENIED (-EACCES) before
	 * the handler runs. Not checked on a plaintext (insecure) server. */
	unsigned roles;
} cdl_rpc_method;

/* The caller of the handler running on this thread (NULL outside a
 * handler). On a TLS server it comes from the verified client
 * certificate; on a plaintext one its role is CDL_ROLE_INSECURE. */
const cdl_peer *cdl_rpc_peer(void);
/* Make p the caller of what this thread runs next (an in-process caller
 * acting as an identity it has verified itself: the namenode's WebHDFS);
 * returns the one it replaces, to be put back after. */
const cdl_peer *cdl_rpc_set_peer(const cdl_peer *p);

typedef struct cdl_rpc_server cdl_rpc_server;

/* Create a server listening on addr ("127.0.0.1:9000"; port 0 picks one).
 * Returns NULL and logs on failure. */
cdl_rpc_server *cdl_rpc_server_new(const char *addr, int nthreads);
/* Register a service; table is terminated by {NULL, NULL} and must name each
 * method of desc exactly once. Must be called before cdl_rpc_server_start.
 * 0 or -EINVAL (logged, naming the method). */
int cdl_rpc_server_add(cdl_rpc_server *srv, const ProtobufCServiceDescriptor *desc,
		       const cdl_rpc_method *table, void *ctx);
/* Before start: measure every call into r, as PREFIX_rpc_seconds (a
 * histogram of the time from arrival to answer) and
 * PREFIX_rpc_failed_total (gRPC status not OK), both by service and
 * method; prefix is e.g. "caudal_namenode". */
struct cdl_metrics;
void cdl_rpc_server_metrics(cdl_rpc_server *srv, struct cdl_metrics *r, const char *prefix);
/* Bind and start the workers; 0 or -EADDRINUSE/-EIO. */
int cdl_rpc_server_start(cdl_rpc_server *srv);
/* The port actually bound (after start). */
int cdl_rpc_server_port(const cdl_rpc_server *srv);
/* Stop accepting, cancel calls still running after grace_ms, join the
 * workers and free everything. */
void cdl_rpc_server_free(cdl_rpc_server *srv, int grace_ms);

typedef struct cdl_rpc_client cdl_rpc_client;

/* A channel to target ("host:port") for one service. Connection happens
 * lazily; never fails except on bad arguments (NULL). */
cdl_rpc_client *cdl_rpc_client_new(const char *target, const ProtobufCServiceDescriptor *desc);
void cdl_rpc_client_free(cdl_rpc_client *c);
const char *cdl_rpc_client_target(const cdl_rpc_client *c);

/* Call method `index` of the client's service with `req`; on success
 * *reply is a freshly unpacked message the caller frees with
 * protobuf_c_message_free_unpacked(*reply, NULL). Returns 0 or a negative
 * errno for transport failures (the reply's own err field is not looked at).
 * The call fails after timeout_ms. */
int cdl_rpc_call(cdl_rpc_client *c, unsigned index, const ProtobufCMessage *req,
		 ProtobufCMessage **reply, int timeout_ms);
/* Same, looking the method up by name (slower; for tests and tools). */
int cdl_rpc_call_name(cdl_rpc_client *c, const char *method, const ProtobufCMessage *req,
		      ProtobufCMessage **reply, int timeout_ms);

/* Must be called once before any other cdl_rpc function / after the last. */
void cdl_rpc_global_init(void);
void cdl_rpc_global_shutdown(void);

#endif
