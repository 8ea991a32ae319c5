/* cdl_client: the client library every program uses to reach a cluster.
 *
 * Namespace calls go to the namenode over ClientProtocol with a deadline
 * each, retried with backoff on transport failures and on EAGAIN (safe
 * mode) until the I/O timeout has passed. Files are read and written
 * through the data-transfer protocol: readers fail over to another replica
 * on a dead datanode or a checksum mismatch (reporting the bad replica);
 * writers stream each block through its pipeline.
 *
 * A cdl_client is thread-safe. A cdl_reader is thread-safe (reads are
 * serialised on it); a cdl_writer is used by one thread at a time. A lease
 * renewer thread runs while any writer is open. */
#ifndef CDL_CLIENT_H
#define CDL_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "caudal.pb-c.h"

/* ClientProtocol methods in .proto order; checked against the descriptor
 * by cdl_client_new. */
enum cdl_nn_method {
	CDL_NN_GetAttr,
	CDL_NN_Mkdir,
	CDL_NN_Create,
	CDL_NN_Symlink,
	CDL_NN_Readlink,
	CDL_NN_Readdir,
	CDL_NN_Delete,
	CDL_NN_Rename,
	CDL_NN_SetAttr,
	CDL_NN_GetXattr,
	CDL_NN_SetXattr,
	CDL_NN_ListXattr,
	CDL_NN_RemoveXattr,
	CDL_NN_SetReplication,
	CDL_NN_GetBlocks,
	CDL_NN_Append,
	CDL_NN_AddBlock,
	CDL_NN_Complete,
	CDL_NN_RenewLease,
	CDL_NN_Statfs,
	CDL_NN_Report,
	CDL_NN_Fsck,
	CDL_NN_ReportBad,
	CDL_NN_GetEvents,
	CDL_NN_UpdatePipeline,
	CDL_NN_Decommission,
	CDL_NN_Mknod,
	CDL_NN_SetQuota,
	CDL_NN_GetQuota,
	CDL_NN_Trash,
	CDL_NN_RefreshNodes,
	CDL_NN_WebCall,
	CDL_NN_MoveReplicas,
	CDL_NN_Batch,
	CDL_NN_NMETHODS
};

typedef struct cdl_client_opts {
	const char *namenode;	 /* "host:port" */
	int io_timeout_ms;	 /* give up on an operation after this long (default 30000) */
	int rpc_timeout_ms;	 /* deadline of one RPC attempt (default 10000) */
	const char *client_host; /* this host's address, for local replicas (default 127.0.0.1) */
	const char *name;	 /* lease holder name (default derived from host and pid) */
	int lease_renew_ms;	 /* renew leases this often while writing (default 10000; keep
				  * it well under the namenode's lease_ms) */
} cdl_client_opts;

typedef struct cdl_client cdl_client;

/* NULL on bad options (logged). Does not contact the namenode. */
cdl_client *cdl_client_new(const cdl_client_opts *o);
void cdl_client_free(cdl_client *c);
const char *cdl_client_name(const cdl_client *c);
const char *cdl_client_host(const cdl_client *c);
int cdl_client_io_timeout(const cdl_client *c);

/* Call a ClientProtocol method with retries. On 0, *reply is the unpacked
 * reply (free with protobuf_c_message_free_unpacked); its err field is not
 * looked at. Returns -errno for transport failures after retries. */
int cdl_client_call(cdl_client *c, enum cdl_nn_method m, const ProtobufCMessage *req,
		    ProtobufCMessage **reply);
/* Same, but a non-zero err in the reply is returned as -err (the reply is
 * then freed and *reply is NULL). */
int cdl_client_call_err(cdl_client *c, enum cdl_nn_method m, const ProtobufCMessage *req,
			ProtobufCMessage **reply);
/* One attempt within timeout_ms, no retries (a caller that must stay
 * responsive, e.g. to a stop); a reply err is returned as -err. */
int cdl_client_call_once(cdl_client *c, enum cdl_nn_method m, const ProtobufCMessage *req,
			 ProtobufCMessage **reply, int timeout_ms);
/* The `err` field of any reply message (0 when it has none), found through
 * its descriptor. */
uint32_t cdl_reply_err(const ProtobufCMessage *reply);
/* A client with base's options and identity and a lease holder name of its
 * own, making its calls over base's channel (no connection of its own);
 * base must outlive it. For many short-lived clients of one process (a
 * WebHDFS datanode's requests). */
cdl_client *cdl_client_new_sharing(cdl_client *base);
/* Make every later call of c through WebCall presenting ticket (a WebHDFS
 * datanode acting for the ticket's user; copied): the namenode runs it as
 * that user if the ticket allows it, and a refusal comes back as -EACCES.
 * Set once, before c is used. */
void cdl_client_set_ticket(cdl_client *c, const void *ticket, size_t len);
/* This process's uid, gid and groups, for requests; lent, do not modify. */
Caudal__Cred *cdl_client_cred(cdl_client *c);

/* Path conveniences; return 0 or -errno (transport or reply err). cred
 * may be NULL for the process's own uid/gid. */
int cdl_stat(cdl_client *c, const char *path,
	     Caudal__Attr **attr); /* free with protobuf_c_message_free_unpacked */
int cdl_mkdir(cdl_client *c, const char *path, uint32_t mode, bool parents);
int cdl_delete(cdl_client *c, const char *path, bool recursive);
int cdl_rename(cdl_client *c, const char *src, const char *dst);

/* ---- writing: after Create or Append returned attr for the file */
typedef struct cdl_writer cdl_writer;

/* Take over writing inode attr->ino (the caller holds its lease). The
 * writer continues after attr->size bytes (append) and uses the file's
 * block size and replication. */
int cdl_writer_open(cdl_client *c, const Caudal__Attr *attr, cdl_writer **out);
int cdl_writer_write(cdl_writer *w, const void *buf, size_t n);
/* hsync: every replica of what was written has synced, and the namenode
 * knows the new length (visible to readers). */
int cdl_writer_sync(cdl_writer *w);
/* A file of at most min(Attr.inline_max, block size) bytes is kept inline
 * in its inode: the writer holds it and sends it whole in Complete (no
 * block, no datanode); past the limit its bytes go into a first block.
 * cdl_writer_spill moves them there now (a truncate past the limit needs
 * the file in blocks). */
int cdl_writer_spill(cdl_writer *w);
/* Finish the last block and complete the file; frees w even on error. */
int cdl_writer_close(cdl_writer *w);
/* The same, and the closed file's attributes into *closed (scalar fields;
 * ino 0 when the namenode sent none), for a cache of them. */
int cdl_writer_close_attr(cdl_writer *w, Caudal__Attr *closed);
/* Stop writing without completing (the lease will expire). Frees w. */
void cdl_writer_abort(cdl_writer *w);
uint64_t cdl_writer_size(const cdl_writer *w); /* file size including buffered bytes */
uint64_t cdl_writer_ino(const cdl_writer *w);

/* Create (or overwrite) path, taking its lease; *attr is the new file's
 * attributes for cdl_writer_open (free with protobuf_c_message_free_unpacked). */
int cdl_create(cdl_client *c, const char *path, uint32_t mode, uint32_t replication,
	       uint64_t block_size, bool overwrite, Caudal__Attr **attr);
/* Open an existing file for append, taking its lease; *attr as for cdl_create. */
int cdl_append_open(cdl_client *c, const char *path, Caudal__Attr **attr);
/* How far a copy is: done bytes of size (0: not known), after each piece
 * (a progress line). */
typedef void (*cdl_copied_fn)(void *arg, uint64_t done, uint64_t size);
/* Write everything read from fd until EOF; does not close w. */
int cdl_writer_write_fd(cdl_writer *w, int fd);
/* The same, telling copied(arg, ...) after each piece (NULL: nothing). */
int cdl_writer_write_fd_cb(cdl_writer *w, int fd, cdl_copied_fn copied, void *arg);

/* Create (or overwrite) path and write all of fd into it. replication and
 * block_size 0 = namenode defaults. */
int cdl_put_fd(cdl_client *c, const char *path, int fd, uint32_t mode, uint32_t replication,
	       uint64_t block_size, bool overwrite);
/* Append all of fd to the existing file path (HDFS append: the new bytes
 * start a new block). */
int cdl_append_fd(cdl_client *c, const char *path, int fd);

/* ---- reading */
typedef struct cdl_reader cdl_reader;

/* Open inode ino (fetches its block locations). */
int cdl_reader_open(cdl_client *c, uint64_t ino, cdl_reader **out);
int cdl_reader_open_path(cdl_client *c, const char *path, cdl_reader **out);
/* A reader of inode ino from a GetBlocks reply the caller already has,
 * when it holds an inline file whole (no block, the bytes of all of it):
 * it takes rep (freed with the reader) and asks nothing more. -EINVAL,
 * rep left to the caller, for anything else. */
int cdl_reader_open_inline(cdl_client *c, uint64_t ino, Caudal__GetBlocksReply *rep,
			   cdl_reader **out);
/* Up to n bytes at off; returns bytes read (0 at EOF) or -errno. A short
 * count happens only at EOF. */
ssize_t cdl_reader_pread(cdl_reader *r, void *buf, size_t n, uint64_t off);
uint64_t cdl_reader_size(const cdl_reader *r);
/* Forget cached locations and size (after the file changed). */
int cdl_reader_refresh(cdl_reader *r);
void cdl_reader_close(cdl_reader *r);

/* Copy path into fd. */
int cdl_get_fd(cdl_client *c, const char *path, int fd);
/* The same, telling copied(arg, ...) first with 0 bytes and the file's
 * size, then after each piece (NULL: nothing). */
int cdl_get_fd_cb(cdl_client *c, const char *path, int fd, cdl_copied_fn copied, void *arg);

#endif
