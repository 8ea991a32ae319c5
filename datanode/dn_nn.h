/* dn_nn: the datanode's side of DatanodeProtocol.
 *
 * Owns the RPC channel to the namenode and three threads:
 *   - the heartbeat thread registers (again after a namenode restart, a
 *     CMD_REREGISTER or a lost connection), sends a full block report after
 *     each registration and every report interval, heartbeats with the
 *     capacity figures, and carries out CMD_DELETE, CMD_REREGISTER and
 *     CMD_REPORT itself;
 *   - the incremental report thread sends BlockReceived (received, deleted,
 *     corrupt) as soon as the store raises events, batching what piled up
 *     while the previous call was in flight;
 *   - the command worker copies replicas for CMD_REPLICATE through a
 *     pipeline (dn_xfer_replicate) with the command's copy token, so a long
 *     copy never delays heartbeats.
 * The block-token keys in register and heartbeat replies replace those of
 * the keyring given in the options (the one dn_xfer checks tokens with).
 * dn_nn_listener is the store's event listener and may be called from any
 * thread; everything else is called from the main thread. */
#ifndef DN_NN_H
#define DN_NN_H

#include <stdint.h>

#include "dn_store.h"
#include "dn_xfer.h"

typedef struct dn_nn dn_nn;

typedef struct dn_nn_opts {
	const char *namenode; /* "host:port" */
	const char *host;     /* address advertised to clients */
	int data_port;	      /* data-transfer port advertised */
	int http_port;	      /* HTTP (WebHDFS) port advertised (0: none) */
	int heartbeat_ms;     /* heartbeat interval (the namenode may ask for less) */
	int report_ms;	      /* full block report interval */
	int rpc_timeout_ms;   /* deadline of each RPC */
	int io_timeout_ms;    /* socket timeout for replication copies */
	cdl_keyring *keys;    /* block-token keys to fill from replies (NULL: ignore them) */
} dn_nn_opts;

/* Create the channel and start the threads; it registers on its own. The
 * caller then installs dn_nn_listener on the store. 0 or -errno. */
int dn_nn_start(dn_store *s, dn_xfer *x, const dn_nn_opts *o, dn_nn **out);
/* Stop the threads (a copy in progress is finished or fails first) and free. */
void dn_nn_stop(dn_nn *n);
/* Store listener: queue the event for the next BlockReceived. */
void dn_nn_listener(void *ctx, enum dn_event ev, uint64_t id, uint64_t gen, uint64_t len);
/* True once registered with the namenode (for tests and status). */
bool dn_nn_registered(dn_nn *n);

#endif
