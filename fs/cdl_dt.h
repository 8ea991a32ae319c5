/* cdl_dt: the TCP data-transfer protocol (DESIGN.md, "Wire protocols").
 *
 * A connection carries one operation. The client sends "CDT1", a 4-byte
 * big-endian length (1..CDL_DT_MAX_HEADER) and a packed Caudal__DtHeader; the
 * server answers with a 4-byte big-endian length and a packed Caudal__DtReply.
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
 * All integers big-endian. Every length read off the wire is bounded before
 * use. Functions here are blocking with timeouts (SO_RCVTIMEO/SO_SNDTIMEO);
 * an object is used by one thread at a time. */
#ifndef CDL_DT_H
#define CDL_DT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "caudal.pb-c.h"
#include "cdl_checksum.h"

#define CDL_DT_MAGIC "CDT1"
#define CDL_DT_MAX_HEADER 65536
#define CDL_DT_FRAME 24
#define CDL_DT_ACK 16
#define CDL_DT_LAST 1u
#define CDL_DT_SYNC 2u
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
 * io_timeout_ms on the socket. Returns an fd or -errno. */
int cdl_dt_connect(const char *host, int port, int timeout_ms, int io_timeout_ms);
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

/* Streams [offset, offset+length) of one replica from one datanode. */
typedef struct cdl_block_reader cdl_block_reader;

/* length 0 = to the end of the replica. Returns 0 or -errno (-ENOENT: the
 * datanode does not hold the replica; -EBADMSG: it knows it is corrupt). */
int cdl_block_reader_open(const char *host, int port, uint64_t block, uint64_t gen, uint64_t offset,
			  uint64_t length, int timeout_ms, cdl_block_reader **out);
/* Up to n bytes; 0 at the end of the range; -EBADMSG on a checksum mismatch
 * (the caller should report the replica and try another); -errno otherwise. */
ssize_t cdl_block_reader_read(cdl_block_reader *r, void *buf, size_t n);
/* Block offset of the next byte read_read would return. */
uint64_t cdl_block_reader_pos(const cdl_block_reader *r);
void cdl_block_reader_close(cdl_block_reader *r);

/* Writes one new replica from offset 0 through a pipeline of datanodes. */
typedef struct cdl_block_writer cdl_block_writer;

/* targets[0] is connected to; the rest travel in the header. */
int cdl_block_writer_open(const Caudal__DtTarget *const *targets, size_t ntargets, uint64_t block,
			  uint64_t gen, const char *client, int timeout_ms, cdl_block_writer **out);
/* Buffer and send; a window of packets stays in flight. 0 or -errno. */
int cdl_block_writer_write(cdl_block_writer *w, const void *buf, size_t n);
/* hsync: send what is buffered with CDL_DT_SYNC and wait until every node
 * has synced it. 0 or -errno. */
int cdl_block_writer_sync(cdl_block_writer *w);
/* Send the last packet, wait for every ack, close; *length = bytes written.
 * sync: every replica is fsynced before the final ack. Frees w. */
int cdl_block_writer_close(cdl_block_writer *w, bool sync, uint64_t *length);
/* Drop the connection without finishing the replica. Frees w. */
void cdl_block_writer_abort(cdl_block_writer *w);
/* Bytes accepted so far (acked or not). */
uint64_t cdl_block_writer_bytes(const cdl_block_writer *w);
/* After a failure: 1-based position of the target that failed, 0 unknown. */
int cdl_block_writer_bad_target(const cdl_block_writer *w);

#endif
