/* cdl_dt: the TCP data-transfer protocol (DESIGN.md, "Wire protocols").
 *
 * A connection carries one operation. The client sends "CDT1", a 4-byte
 * big-endian length (1..CDL_DT_MAX_HEADER) and a packed Caudal__DtHeader; the
 * server answers with a 4-byte big-endian length (0..CDL_DT_MAX_HEADER: an
 * all-default reply packs to nothing) and a packed Caudal__DtReply.
 * Then packets flow, each a 24-byte frame followed by its payload:
 *
 *   u32 len    payload bytes, 0..CDL_CHUNK
 *   u32 flags  CDL_DT_LAST (final packet), CDL_DT_SYNC (fsync before acking)
 *   u64 seq    DT_WRITE: packet sequence number from 0; DT_READ: block offset of the payload
 *   u64 sum    XXH3-64 of the payload
 *
 * DT_READ: the server sends whole 64 KiB chunks (the last may be short),
 * aligned to chunk boundaries and covering the range asked for; `sum` is the
 * chunk's stored checksum, so the reader verifies end to end and trims.
 * DT_WRITE: the client sends packets of at most CDL_CHUNK bytes; each
 * datanode forwards to the next target, writes, and once the downstream
 * has acked sends a 16-byte ack up the chain:
 *
 *   u64 seq    packet acknowledged
 *   u32 err    errno, 0 = stored on every node downstream
 *   u32 bad    1-based position in the pipeline of the node that failed, 0 = none
 *
 * Ack positions count from the receiver of the ack: its own next node is 1,
 * so each datanode adds one to a position coming from downstream.
 * DtReply.bad_target is 1-based in the header's targets (the replier's next
 * node is 1; 0 when the replier itself refuses). The writer ends packets on
 * chunk boundaries (a short packet only before an hsync or at the end). A
 * replica being written can be read up to what its datanode has written so
 * far.
 *
 * Pipeline recovery (DESIGN.md: a datanode that fails mid-pipeline is
 * dropped and the write carries on). The writer keeps every packet until it
 * is acked (the window, up to DT_WINDOW packets). An ack means every node
 * downstream stored the packet, so all survivors hold at least the acked
 * bytes. On a failure the caller (cdl_client's writer) takes the failed
 * node from the error ack's `bad` (a connect or I/O error on the first hop
 * counts as node 1), drops it, gets a new generation stamp from the
 * namenode (UpdatePipeline) and calls cdl_block_writer_recover: a new
 * DT_WRITE to the survivors with DtHeader.recover set, recover_gen the old
 * generation and recover_offset the acked byte count. Each survivor takes
 * over its replica being written (a replica whose writer connection dropped
 * is parked, still open, for a while for this; one whose connection is
 * still up is cut off; one already finalized under the old generation is
 * reopened), cuts it to recover_offset (it must hold that many bytes),
 * reloads the checksum state of the partial last chunk from disk, renames
 * it to the new generation and continues as a normal DT_WRITE, forwarding
 * the same header to the rest. The writer then resends the unacked packets,
 * numbered from 0 on the new connection. A parked replica nobody resumes is
 * treated as before recovery existed: its last hsynced length is finalized
 * and reported, or it is dropped.
 *
 * Replacement nodes (HDFS ReplaceDatanodeOnFailure): when the survivors
 * are fewer than the file's replication the namenode may hand out new
 * datanodes with the stamp. Before the recovery the writer asks a survivor
 * to copy the acked bytes to them (DT_TRANSFER: header op, block, gen = the
 * recorded stamp, length = the acked bytes, targets = the new nodes, a copy
 * token; the survivor answers once the copy is stored, as a finalized
 * replica of that stamp, through a DT_WRITE of its own), appends them to
 * the pipeline and runs the recovery with recover_gen = the recorded stamp,
 * which takes their copies over like the survivors' replicas.
 *
 * All integers big-endian. Every length read off the wire is bounded before
 * use. Functions here are blocking with timeouts (SO_RCVTIMEO/SO_SNDTIMEO);
 * an object is used by one thread at a time. */
#ifndef CDL_DT_H
#define CDL_DT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "caudal.pb-c.h"
#include "cdl_checksum.h"

#define CDL_DT_MAGIC	   "CDT1"
#define CDL_DT_MAX_HEADER  65536
#define CDL_DT_FRAME	   24
#define CDL_DT_ACK	   16
#define CDL_DT_LAST	   1u
#define CDL_DT_SYNC	   2u
#define CDL_DT_MAX_TARGETS 32

typedef struct cdl_dt_frame {
	uint32_t len, flags;
	uint64_t seq, sum;
} cdl_dt_frame;

typedef struct cdl_dt_ack {
	uint64_t seq;
	uint32_t err, bad;
} cdl_dt_ack;

/* Connect to host:port within timeout_ms and set I/O timeouts of
 * io_timeout_ms on the socket (with a wrapper installed, on the fd it
 * returns). Returns an fd or -errno. */
int cdl_dt_connect(const char *host, int port, int timeout_ms, int io_timeout_ms);
/* Something every connection cdl_dt_connect makes goes through: it gets
 * the connected socket, owns it from then on, and returns the fd the
 * caller uses or -errno. encrypt_data installs the TLS relay
 * (cdl_dtls.h); NULL (the default) is plain TCP. Set at start-up or once
 * the namenode says the cluster encrypts. */
typedef int (*cdl_dt_wrap_fn)(int fd, const char *host, int timeout_ms);
void cdl_dt_set_wrap(cdl_dt_wrap_fn fn);
/* Header/reply exchange. recv functions return a message the caller frees
 * with protobuf_c_message_free_unpacked, or -EPROTO on bad magic, length or
 * encoding. */
int cdl_dt_send_header(int fd, const Caudal__DtHeader *h);
int cdl_dt_recv_header(int fd, Caudal__DtHeader **h);
int cdl_dt_send_reply(int fd, const Caudal__DtReply *r);
int cdl_dt_recv_reply(int fd, Caudal__DtReply **r);
/* Frames and acks; recv_frame rejects len > CDL_CHUNK with -EPROTO. */
int cdl_dt_send_frame(int fd, const cdl_dt_frame *f, const void *payload);
int cdl_dt_recv_frame(int fd, cdl_dt_frame *f);
int cdl_dt_send_ack(int fd, const cdl_dt_ack *a);
int cdl_dt_recv_ack(int fd, cdl_dt_ack *a);

/* Helpers shared with the datanode's server side. */
/* Full read/write on a socket (sendmsg with MSG_NOSIGNAL); 0 or -errno:
 * -ECONNRESET on EOF, -ETIMEDOUT when SO_RCVTIMEO/SO_SNDTIMEO expire.
 * readv_full and writev_full modify iov. */
int cdl_dt_read_full(int fd, void *buf, size_t n);
int cdl_dt_writev_full(int fd, struct iovec *iov, int cnt);
int cdl_dt_readv_full(int fd, struct iovec *iov, int cnt);
/* Read f->len payload bytes into buf (CDL_CHUNK bytes) and verify f->sum:
 * 0, -EBADMSG on a mismatch, -errno. */
int cdl_dt_recv_payload(int fd, const cdl_dt_frame *f, void *buf);
/* Frame codec; decode returns -EPROTO for len > CDL_CHUNK or unknown flags. */
void cdl_dt_frame_encode(uint8_t out[CDL_DT_FRAME], const cdl_dt_frame *f);
int cdl_dt_frame_decode(const uint8_t in[CDL_DT_FRAME], cdl_dt_frame *f);
/* TCP_NODELAY, large buffers and I/O timeouts (0 = none) on a connected
 * socket. 0 or -errno. */
int cdl_dt_tune(int fd, int io_timeout_ms);
/* Listen on host:port (port 0 picks one, returned in *bound_port).
 * Returns the listening fd or -errno. */
int cdl_dt_listen(const char *host, int port, int *bound_port);

/* Streams [offset, offset+length) of one replica from one datanode. */
typedef struct cdl_block_reader cdl_block_reader;

/* length 0 = to the end of the replica. token: the block access token
 * (fs/cdl_token.h) from the LocatedBlock, NULL = none. Returns 0 or -errno
 * (-ENOENT: the datanode does not hold the replica; -EBADMSG: it knows it
 * is corrupt; -EACCES: it refused the token). */
int cdl_block_reader_open(const char *host, int port, uint64_t block, uint64_t gen, uint64_t offset,
			  uint64_t length, const ProtobufCBinaryData *token, int timeout_ms,
			  cdl_block_reader **out);
/* Up to n bytes; 0 at the end of the range; -EBADMSG on a checksum mismatch
 * (the caller should report the replica and try another); -errno otherwise. */
ssize_t cdl_block_reader_read(cdl_block_reader *r, void *buf, size_t n);
/* Block offset of the next byte read_read would return. */
uint64_t cdl_block_reader_pos(const cdl_block_reader *r);
/* Replica length the datanode announced when the reader was opened. */
uint64_t cdl_block_reader_length(const cdl_block_reader *r);
void cdl_block_reader_close(cdl_block_reader *r);

/* Writes one new replica from offset 0 through a pipeline of datanodes. */
typedef struct cdl_block_writer cdl_block_writer;

/* targets[0] is connected to; the rest travel in the header, with token
 * (the block's write or copy token; NULL = none; only read during the
 * call). */
int cdl_block_writer_open(const Caudal__DtTarget *const *targets, size_t ntargets, uint64_t block,
			  uint64_t gen, const ProtobufCBinaryData *token, const char *client,
			  int timeout_ms, cdl_block_writer **out);
/* Same, and on failure *bad is the 1-based position in targets of the node
 * that could not be reached or set up (0 unknown), so the caller can
 * exclude it and ask for a new pipeline. */
int cdl_block_writer_open_ex(const Caudal__DtTarget *const *targets, size_t ntargets,
			     uint64_t block, uint64_t gen, const ProtobufCBinaryData *token,
			     const char *client, int timeout_ms, cdl_block_writer **out, int *bad);
/* Buffer and send; a window of packets stays in flight. 0 or -errno. On a
 * failure part of buf may have been accepted: cdl_block_writer_bytes tells
 * how much, and after a recovery the caller writes the rest. */
int cdl_block_writer_write(cdl_block_writer *w, const void *buf, size_t n);
/* hsync: send what is buffered with CDL_DT_SYNC and wait until every node
 * has synced it. 0 or -errno; after a recovery, call it again. */
int cdl_block_writer_sync(cdl_block_writer *w);
/* Send the last packet (once) and wait for every ack; *length = bytes
 * written. sync: every replica is fsynced before the final ack. Does not
 * free w: on a failure the caller may recover and call it again. */
int cdl_block_writer_finish(cdl_block_writer *w, bool sync, uint64_t *length);
/* finish, then free w whatever happened. */
int cdl_block_writer_close(cdl_block_writer *w, bool sync, uint64_t *length);
/* Same, and *bad (if not NULL) is the failed target's 1-based position
 * when it fails (0 unknown). Frees w. */
int cdl_block_writer_close_ex(cdl_block_writer *w, bool sync, uint64_t *length, int *bad);
/* After a failure: drop the connection, resume the replica on targets (the
 * survivors, in order) under generation gen (newer than the current one)
 * with token (the namenode's write token for gen, from UpdatePipeline) at
 * the acked byte count, and resend the unacked packets. 0, or -errno
 * with *bad the 1-based position in targets of the node that failed (the
 * caller drops it and tries again with a newer gen). */
int cdl_block_writer_recover(cdl_block_writer *w, const Caudal__DtTarget *const *targets,
			     size_t ntargets, uint64_t gen, const ProtobufCBinaryData *token,
			     int *bad);
/* Same, resuming replicas written under a generation in [from_gen, gen)
 * (from_gen at most the writer's current one): the stamp the namenode
 * recorded, so that a replacement node holding a copy made under it
 * (cdl_block_transfer) is taken over along with survivors that already
 * took a stamp of a failed attempt. */
int cdl_block_writer_recover_from(cdl_block_writer *w, const Caudal__DtTarget *const *targets,
				  size_t ntargets, uint64_t from_gen, uint64_t gen,
				  const ProtobufCBinaryData *token, int *bad);
/* Drop the connection without finishing the replica (after a successful
 * finish: just release). Frees w. */
void cdl_block_writer_abort(cdl_block_writer *w);
/* Bytes accepted so far (acked or not). */
uint64_t cdl_block_writer_bytes(const cdl_block_writer *w);
/* Bytes acknowledged by every node of the pipeline. */
uint64_t cdl_block_writer_acked(const cdl_block_writer *w);
/* Generation stamp the replica is being written under. */
uint64_t cdl_block_writer_gen(const cdl_block_writer *w);
/* After a failure: 1-based position of the target that failed, 0 unknown. */
int cdl_block_writer_bad_target(const cdl_block_writer *w);

/* Adding a replacement datanode to a pipeline (HDFS transferBlock): ask
 * the datanode at host:port, a survivor of the pipeline of block, to copy
 * the first `length` bytes of its replica (being written, parked, or
 * finalized, under gen or a newer stamp) to targets (1..CDL_DT_MAX_TARGETS,
 * in pipeline order), where they are stored as a replica finalized under
 * gen that the following recovery (cdl_block_writer_recover_from) takes
 * over. token: the copy token for (block, gen) naming the survivor and the
 * targets (UpdatePipelineReply.copy_token). Blocks until the copy is
 * stored, with timeouts that grow with length. 0 or -errno (-EACCES: the
 * token was refused, -ERANGE: the replica is shorter than length). */
int cdl_block_transfer(const char *host, int port, uint64_t block, uint64_t gen, uint64_t length,
		       const Caudal__DtTarget *const *targets, size_t ntargets,
		       const ProtobufCBinaryData *token, const char *client, int timeout_ms);

#endif
