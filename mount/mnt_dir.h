/* mnt_dir: open directories. A struct mnt_dir is the FUSE handle (fi->fh)
 * of an opendir; it holds the entries fetched so far from the namenode's
 * paged Readdir (names with attributes), so that the kernel's offsets are
 * stable indexes into it, and the name to resume after. readdirplus hands
 * the attributes to the kernel with each name (one RPC per page for
 * `ls -l`), counting a lookup reference per entry added.
 *
 * Threads: any FUSE worker; the handle's mutex serialises readdir calls on
 * one handle. */
#ifndef MNT_DIR_H
#define MNT_DIR_H

#include "mnt_fs.h"

void mnt_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void mnt_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi);
void mnt_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi);
void mnt_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void mnt_op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);

#endif
