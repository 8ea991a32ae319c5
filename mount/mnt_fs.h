/* mnt_fs: the mount's shared state (struct mnt), the FUSE low-level
 * operations table, the namespace operations (lookup, forget, getattr,
 * setattr, mkdir, unlink, rmdir, symlink, readlink, rename, link, mknod,
 * statfs, xattrs), and the helpers every mount module uses to call the
 * namenode: the caller's Cred, errno conversion, attribute conversion.
 *
 * Threads: every FUSE worker thread (fuse_session_loop_mt) runs these
 * operations concurrently; struct mnt is set up by main before the loop and
 * only its inode table (own lock) changes afterwards. This is the one header
 * that includes libfuse, so FUSE_USE_VERSION is fixed here. */
#ifndef MNT_FS_H
#define MNT_FS_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "caudal.pb-c.h"
#include "cdl_client.h"
#include "mnt_acache.h"
#include "mnt_dcache.h"
#include "mnt_inode.h"
#include "mnt_opts.h"

struct mnt {
	const struct mnt_opts *opts;
	cdl_client *cl;
	struct fuse_session *se;
	struct mnt_itab itab;
	struct mnt_dcache dc;	     /* names of directories this mount made */
	struct mnt_acache ac;	     /* names and attributes read (mnt_acache.h) */
	int64_t last_unreach_log_ms; /* rate limit of "namenode unreachable" lines */
	pthread_mutex_t files_mu;    /* guards files */
	struct mnt_file *files;	     /* every open file handle (mnt_file.c) */
	/* files unlinked while open here, renamed aside until their last
	 * close (mnt_hide_open); hidden_cv signals each removal */
	pthread_mutex_t hidden_mu;
	pthread_cond_t hidden_cv;
	struct mnt_hidden *hidden;
	struct mnt_wb *wb;  /* write-back creates (mnt_wb.h); NULL: off */
	size_t ahead_bytes; /* read-ahead buffers filled in the background (files_mu) */
};

extern const struct fuse_lowlevel_ops mnt_ops;

/* The kernel's read-ahead for the mount: the readahead option within
 * 128 KiB..1 MiB (the kernel's requests are at most 1 MiB). */
size_t mnt_kernel_readahead(const struct mnt_opts *o);

/* Metrics (caudal_mount_*): every operation timed by kind, bytes read and
 * written, the directory cache's hits and misses, open handles; into r,
 * once, before the session runs. Until then nothing is counted. */
struct cdl_metrics;
struct cdl_series;
void mnt_metrics_init(struct mnt *m, struct cdl_metrics *r);
extern struct cdl_series *mnt_m_bytes_read, *mnt_m_bytes_written;

/* After a Create, Mkdir, Mknod or Symlink of name in parent that returned
 * rc and rep: keeps the directory cache (mnt_dcache.h) up to date. */
void mnt_note_made(struct mnt *m, uint64_t parent, const char *name, int rc,
		   const Caudal__AttrReply *rep);

/* The last open handle of ino in this mount closed: if it was unlinked
 * while open, remove it now. */
void mnt_hidden_closed(struct mnt *m, uint64_t ino);

/* Supplementary groups sent with a caller's Cred at most: the namenode
 * counts as many (NN_MAX_GROUPS), as does libcaudal's own client. */
#define MNT_MAX_GROUPS 64

/* A caller's Cred with room for its groups (c.groups points into groups). */
struct mnt_cred {
	Caudal__Cred c;
	uint32_t groups[MNT_MAX_GROUPS];
};

/* The caller of req as a Cred: its uid, gid and supplementary groups. The
 * kernel has already checked permissions (default_permissions); the
 * namenode checks again with these, so with allow_other each local user
 * gets its own rights. Set rq.cred = &mc->c; mc must outlive the call. */
void mnt_cred(fuse_req_t req, struct mnt_cred *mc);

/* Call the namenode. 0 with *reply to free (protobuf_c_message_free_unpacked),
 * or -errno: the reply's err, or a transport failure after the client's
 * retries (ETIMEDOUT stays, others become EIO; logged at most every few
 * seconds). */
int mnt_call(struct mnt *m, enum cdl_nn_method meth, const ProtobufCMessage *rq,
	     ProtobufCMessage **reply);
/* Same for calls whose reply carries only err. */
int mnt_call_status(struct mnt *m, enum cdl_nn_method meth, const ProtobufCMessage *rq);

/* Fresh attributes of ino (with this mount's writer overlay). */
int mnt_getattr(struct mnt *m, fuse_req_t req, uint64_t ino, Caudal__AttrReply **out);
/* The same as cred (a caller without a request: the create sender). */
int mnt_getattr_as(struct mnt *m, const Caudal__Cred *cred, uint64_t ino, Caudal__AttrReply **out);

void mnt_attr_to_stat(const Caudal__Attr *a, struct stat *st);
/* Fill an entry for a (timeouts from the options) and count the kernel's
 * new reference in the inode table. */
void mnt_entry_ref(struct mnt *m, const Caudal__Attr *a, struct fuse_entry_param *e);

/* Reply 0 or a negative errno. ENOSYS would make the kernel stop sending
 * the operation for good, so it becomes EIO. */
void mnt_reply_err(fuse_req_t req, int rc);

static inline struct mnt *mnt_of(fuse_req_t req)
{
	return (struct mnt *)fuse_req_userdata(req);
}

#endif
