/* dn_xfer: the datanode's TCP data-transfer server (fs/cdl_dt.h protocol).
 *
 * Owns the listening socket, an accept thread and one thread per
 * connection (at most max_xceivers; more are closed at once). DT_READ
 * streams verified chunks of a replica; a chunk that fails its checksum
 * gets the replica marked corrupt in the store (which reports it) and the
 * client sees the mismatch and fails over. DT_WRITE receives a replica,
 * forwards every packet to the next node of the pipeline, and acks a
 * packet upstream once it is written here and acked downstream (a
 * responder thread per connection reads the downstream acks). A header
 * that is garbage or too large drops only its connection.
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
#include "dn_store.h"

typedef struct dn_xfer dn_xfer;

typedef struct dn_xfer_opts {
	const char *host;  /* address to bind */
	int port;	   /* 0 picks a free port */
	int max_xceivers;  /* connections served at once */
	int io_timeout_ms; /* per socket read/write and downstream connect */
} dn_xfer_opts;

/* Bind and start accepting. 0 or -errno (logged). */
int dn_xfer_start(dn_store *s, const dn_xfer_opts *o, dn_xfer **out);
/* The port actually bound. */
int dn_xfer_port(const dn_xfer *x);
/* Connections being served now. */
unsigned dn_xfer_active(const dn_xfer *x);
/* Stop accepting, cut every connection, wait for their threads, free. */
void dn_xfer_stop(dn_xfer *x);

/* Copy the local finalized replica (id, gen) to a pipeline of targets.
 * A local checksum failure marks the replica corrupt and returns -EBADMSG.
 * 0 or -errno. */
int dn_xfer_replicate(dn_store *s, uint64_t id, uint64_t gen,
		      const Caudal__DtTarget *const *targets, size_t ntargets, const char *self,
		      int timeout_ms);

#endif
