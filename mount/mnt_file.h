/* mnt_file: open files. A struct mnt_file is the FUSE file handle (fi->fh)
 * of an open regular file; it owns
 *  - for writing: the lease taken at open (Create for new files and O_TRUNC,
 *    Append otherwise), the cdl_writer streaming to the block pipeline, and
 *    a write-behind buffer where small writes coalesce before they are
 *    streamed; the file is completed at flush (every close()), so
 *    close-to-open holds, and its lease re-taken with Append if the handle
 *    writes again after a flush (a dup of the descriptor was closed); the
 *    handle owns the inode's local writer slot from open to release, so a
 *    second local open for writing gets EBUSY;
 *  - for reading: a cdl_reader opened at the first read (its block stream
 *    is kept across sequential reads) and a read-ahead buffer.
 * Writes must land at the file's end (HDFS semantics): any other offset is
 * refused with EOPNOTSUPP and a log line, leaving the file untouched.
 *
 * Threads: any FUSE worker may run any operation on a handle; the handle's
 * mutex serialises them. Lock order: handle mutex, then the inode table's. */
#ifndef MNT_FILE_H
#define MNT_FILE_H

#include "mnt_fs.h"

/* File handles open now (for /metrics). */
size_t mnt_files_open(struct mnt *m);
void mnt_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void mnt_op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		   struct fuse_file_info *fi);
void mnt_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void mnt_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		  struct fuse_file_info *fi);
void mnt_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void mnt_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void mnt_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);

/* Truncate or extend ino to size for setattr. Through the caller's open
 * handle (ftruncate) when fi is one of ours opened for writing; otherwise by
 * SetAttr (shrinking) or by appending zeros (growing). 0 or -errno. */
int mnt_file_truncate(struct mnt *m, fuse_req_t req, uint64_t ino, uint64_t size,
		      struct fuse_file_info *fi);

/* At unmount: complete every file still open for writing, so nothing
 * written is left under a lease. Only when no FUSE thread runs. */
void mnt_file_close_all(struct mnt *m);

#endif
