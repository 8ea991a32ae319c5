/* dn_xfer: the datanode's TCP data-transfer server (fs/cdl_dt.h protocol).
 *
 * Owns the listening socket, an accept thread and one thread per
 * connection. Bounds: at most max_conns_per_peer connections from one
 * address and max_xceivers in all; a connection must send its header
 * within header_timeout_ms. At a limit, a connection still waiting for its
 * header (from the same peer, or from the busiest one) is cut to make
 * room, so idle sockets cost their holder only; with none to cut, the
 * newcomer is closed at once. The accept thread enforces the header
 * deadline.
 *
 * With a keyring (dn_xfer_opts.keys) every operation needs a block access
 * token (fs/cdl_token.h) for its block, generation and mode that names
 * this datanode; a DT_WRITE forwards only to datanodes its token names and
 * stores at most the token's max_length bytes. A refusal answers EACCES
 * (EFBIG for too much data) and logs a line. A connection that opens with
 * a TLS handshake is served through the TLS relay (cdl_dtls.h); with
 * require_tls (encrypt_data) a plaintext one is refused. DT_READ
 * streams verified chunks of a replica; a chunk that fails its checksum
 * gets the replica marked corrupt in the store (which reports it) and the
 * client sees the mismatch and fails over. DT_WRITE receives a replica,
 * forwards every packet to the next node of the pipeline, and acks a
 * packet upstream once it is written here and acked downstream (a
 * responder thread per connection reads the downstream acks). A header
 * that is garbage or too large drops only its connection.
 *
 * DT_TRANSFER (a writer adding a replacement node to its pipeline) copies
 * the first `length` bytes of a local replica, even one being written, to
 * its targets the same way, with a copy token naming this node and them.
 *
 * Also the replication used by CMD_REPLICATE: read a local replica and
 * write it through a pipeline with cdl_block_writer.
 *
 * Threads: dn_xfer_start/stop from the main thread; dn_xfer_active from
 * any thread; dn_xfer_replicate from the namenode command worker. */
#ifndef DN_XFER_H
#define DN_XFER_H

#include <stddef.h>
#include <stdint.h>

#include "caudal.pb-c.h"
#include "cdl_token.h"
#include "dn_store.h"

typedef struct dn_xfer dn_xfer;

typedef struct dn_xfer_opts {
	const char *host;	/* address to bind */
	int port;		/* 0 picks a free port */
	int max_xceivers;	/* connections served at once */
	int io_timeout_ms;	/* per socket read/write and downstream connect */
	int max_conns_per_peer; /* connections from one address (0: 64) */
	int header_timeout_ms;	/* a connection must send its header this fast (0: 5000) */
	cdl_keyring *keys;	/* block-token keys (filled by dn_nn); NULL: no checks (tests) */
	bool require_tls;	/* encrypt_data: refuse plaintext connections (cdl_dtls.h) */
} dn_xfer_opts;

/* Bind and start accepting. 0 or -errno (logged). */
int dn_xfer_start(dn_store *s, const dn_xfer_opts *o, dn_xfer **out);
/* The port actually bound. */
int dn_xfer_port(const dn_xfer *x);
/* Connections being served now. */
unsigned dn_xfer_active(const dn_xfer *x);
/* Stop accepting, cut every connection, wait for their threads, free. */
void dn_xfer_stop(dn_xfer *x);

/* Cut the connections writing block under a stamp in [old_gen, gen), so
 * that their replica is parked for a recovery (lease recovery's
 * CMD_RECOVER; a DT_WRITE recovery does the same). */
void dn_xfer_cut_writers(dn_xfer *x, uint64_t block, uint64_t old_gen, uint64_t gen);

/* Copy the local finalized replica (id, gen) to a pipeline of targets,
 * presenting token (the copy token of the namenode's command; NULL =
 * none). A local checksum failure marks the replica corrupt and returns
 * -EBADMSG. 0 or -errno. */
int dn_xfer_replicate(dn_store *s, uint64_t id, uint64_t gen,
		      const Caudal__DtTarget *const *targets, size_t ntargets,
		      const ProtobufCBinaryData *token, const char *self, int timeout_ms);

#endif
