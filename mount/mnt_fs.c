/* mnt_fs: namespace operations and the FUSE operations table. Every
 * handler turns its request into one ClientProtocol call (naming inodes by
 * id, or by parent id + name), with the caller's uid/gid, and converts the
 * reply's errno at the FUSE edge. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <time.h>

#include "cdl_log.h"
#include "cdl_metrics.h"
#include "cdl_util.h"
#include "mnt_dir.h"
#include "mnt_file.h"
#include "mnt_wb.h"
#include "mnt_fs.h"

#define BLKSIZE_HINT  (1u << 20) /* st_blksize: tools size their buffers by it */
#define STATFS_FRSIZE 4096u

/* ------------------------------------------------------------ helpers */

/* The supplementary groups come from /proc (fuse_req_getgroups), as the
 * request carries only uid and gid. Root's are not looked up: uid 0 passes
 * the namenode's checks whatever its groups. A caller gone by now (or a
 * kernel without the /proc file) gets no supplementary groups, which can
 * only cost it rights, never grant any. */
void mnt_cred(fuse_req_t req, struct mnt_cred *mc)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	caudal__cred__init(&mc->c);
	mc->c.uid = ctx->uid;
	mc->c.gid = ctx->gid;
	if (ctx->uid == 0)
		return;
	gid_t g[MNT_MAX_GROUPS];
	int n = fuse_req_getgroups(req, MNT_MAX_GROUPS, g);
	if (n < 0) {
		cdl_debug("no supplementary groups for pid %d: %s", (int)ctx->pid, strerror(-n));
		return;
	}
	if (n > MNT_MAX_GROUPS)
		n = MNT_MAX_GROUPS; /* the first MNT_MAX_GROUPS were filled in */
	for (int i = 0; i < n; i++)
		mc->groups[i] = (uint32_t)g[i];
	mc->c.groups = mc->groups;
	mc->c.n_groups = (size_t)n;
}

static uint32_t reply_err(const ProtobufCMessage *r)
{
	const ProtobufCFieldDescriptor *f =
	    protobuf_c_message_descriptor_get_field_by_name(r->descriptor, "err");
	if (!f || f->type != PROTOBUF_C_TYPE_UINT32 || f->label == PROTOBUF_C_LABEL_REPEATED)
		return 0;
	return *(const uint32_t *)((const char *)r + f->offset);
}

int mnt_call(struct mnt *m, enum cdl_nn_method meth, const ProtobufCMessage *rq,
	     ProtobufCMessage **reply)
{
	*reply = NULL;
	/* what rq names must reach the namenode first (mnt_wb.h) */
	if (m->wb && meth != CDL_NN_Batch)
		mnt_wb_barrier(m, rq);
	ProtobufCMessage *rep = NULL;
	int rc = cdl_client_call(m->cl, meth, rq, &rep);
	if (rc != 0) {
		int64_t now = cdl_now_ms();
		int64_t last = __atomic_load_n(&m->last_unreach_log_ms, __ATOMIC_RELAXED);
		if (now - last >= 5000 &&
		    __atomic_compare_exchange_n(&m->last_unreach_log_ms, &last, now, false,
						__ATOMIC_RELAXED, __ATOMIC_RELAXED))
			cdl_warn("namenode '%s' did not answer %s: %s", m->opts->namenode,
				 rq->descriptor->short_name, strerror(rc < 0 ? -rc : rc));
		return rc == -ETIMEDOUT ? -ETIMEDOUT : -EIO;
	}
	if (!rep)
		return -EIO;
	uint32_t err = reply_err(rep);
	if (err) {
		protobuf_c_message_free_unpacked(rep, NULL);
		return err > 4095 ? -EIO : -(int)err;
	}
	*reply = rep;
	return 0;
}

int mnt_call_status(struct mnt *m, enum cdl_nn_method meth, const ProtobufCMessage *rq)
{
	ProtobufCMessage *rep;
	int rc = mnt_call(m, meth, rq, &rep);
	if (rc == 0)
		protobuf_c_message_free_unpacked(rep, NULL);
	return rc;
}

void mnt_reply_err(fuse_req_t req, int rc)
{
	int e = rc < 0 ? -rc : rc;
	if (e == ENOSYS)
		e = EIO;
	fuse_reply_err(req, e);
}

void mnt_attr_to_stat(const Caudal__Attr *a, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = a->ino;
	st->st_mode = a->mode;
	st->st_nlink = a->nlink ? a->nlink : 1;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_size = (off_t)a->size;
	st->st_rdev = (dev_t)a->rdev;
	st->st_blksize = BLKSIZE_HINT;
	/* a file's holes take no room (du), as a sparse local file's */
	uint64_t held = S_ISREG(a->mode) ? a->stored : a->size;
	st->st_blocks = (blkcnt_t)((held + 511) / 512);
	st->st_atim.tv_sec = a->atime_ns / 1000000000;
	st->st_atim.tv_nsec = a->atime_ns % 1000000000;
	st->st_mtim.tv_sec = a->mtime_ns / 1000000000;
	st->st_mtim.tv_nsec = a->mtime_ns % 1000000000;
	st->st_ctim.tv_sec = a->ctime_ns / 1000000000;
	st->st_ctim.tv_nsec = a->ctime_ns % 1000000000;
}

void mnt_entry_ref(struct mnt *m, const Caudal__Attr *a, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = a->ino;
	e->generation = 0;
	e->attr_timeout = m->opts->attr_timeout;
	e->entry_timeout = m->opts->entry_timeout;
	mnt_attr_to_stat(a, &e->attr);
	mnt_itab_ref(&m->itab, a->ino, 1);
}

int mnt_getattr(struct mnt *m, fuse_req_t req, uint64_t ino, Caudal__AttrReply **out)
{
	struct mnt_cred cred;
	mnt_cred(req, &cred);
	return mnt_getattr_as(m, &cred.c, ino, out);
}

int mnt_getattr_as(struct mnt *m, const Caudal__Cred *cred, uint64_t ino, Caudal__AttrReply **out)
{
	Caudal__Target t = CAUDAL__TARGET__INIT;
	Caudal__GetAttrRequest rq = CAUDAL__GET_ATTR_REQUEST__INIT;
	t.ino = ino;
	rq.target = &t;
	rq.cred = (Caudal__Cred *)cred;
	Caudal__AttrReply *rep;
	int rc = mnt_call(m, CDL_NN_GetAttr, &rq.base, (ProtobufCMessage **)&rep);
	if (rc)
		return rc;
	if (!rep->attr) {
		protobuf_c_message_free_unpacked(&rep->base, NULL);
		return -EIO;
	}
	mnt_acache_put_attr(&m->ac, rep->attr);
	mnt_itab_overlay(&m->itab, rep->attr);
	*out = rep;
	return 0;
}

/* Reply to an entry-creating call (mkdir, symlink, lookup) from an
 * AttrReply, and free it. */
static void reply_entry_attr(fuse_req_t req, struct mnt *m, int rc, Caudal__AttrReply *rep)
{
	if (rc == 0 && !rep->attr)
		rc = -EIO;
	if (rc) {
		if (rep)
			protobuf_c_message_free_unpacked(&rep->base, NULL);
		mnt_reply_err(req, rc);
		return;
	}
	struct fuse_entry_param e;
	mnt_itab_overlay(&m->itab, rep->attr);
	mnt_entry_ref(m, rep->attr, &e);
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	if (fuse_reply_entry(req, &e) != 0)
		mnt_itab_forget(&m->itab, e.ino, 1); /* interrupted: the kernel has no ref */
}

void mnt_note_made(struct mnt *m, uint64_t parent, const char *name, int rc,
		   const Caudal__AttrReply *rep)
{
	/* the directory's mtime, ctime and nlink moved (the event that says
	 * so may come after the next stat) */
	mnt_acache_inval(&m->ac, parent);
	if (rc == 0 && rep && rep->attr) {
		if (S_ISDIR(rep->attr->mode))
			mnt_dcache_made_dir(&m->dc, rep->attr->ino, rep->attr->version);
		mnt_dcache_added(&m->dc, parent, name, rep->parent_version);
		mnt_acache_put_attr(&m->ac, rep->attr); /* (not a file being written) */
		mnt_acache_put_name(&m->ac, parent, name, rep->attr->ino, rep->attr->txid);
	} else {
		/* EEXIST: it said absent and was wrong; a transport error: the
		 * call may have been done */
		mnt_dcache_failed(&m->dc, parent);
	}
}

static bool is_hidden(struct mnt *m, uint64_t ino);

/* ------------------------------------------------------------ lifecycle */

size_t mnt_kernel_readahead(const struct mnt_opts *o)
{
	size_t ra = o->readahead;
	if (ra > (1u << 20))
		ra = 1u << 20;
	return ra < (128u << 10) ? 128u << 10 : ra;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct mnt *m = userdata;
	unsigned want = FUSE_CAP_ASYNC_READ | FUSE_CAP_ATOMIC_O_TRUNC | FUSE_CAP_READDIRPLUS |
			FUSE_CAP_PARALLEL_DIROPS | FUSE_CAP_AUTO_INVAL_DATA |
			FUSE_CAP_CACHE_SYMLINKS;
	conn->want |= want & conn->capable;
	/* readdirplus always: `ls -l` and find get attributes with the names */
	conn->want &= ~(unsigned)FUSE_CAP_READDIRPLUS_AUTO;
	/* no writeback cache: writes must reach us in order, with their errors */
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	conn->want &=
	    ~(unsigned)(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
	conn->max_write = 1u << 20;
	conn->max_read = 0;
	conn->max_readahead = (unsigned)mnt_kernel_readahead(m->opts);
	conn->max_background = 64;
	conn->congestion_threshold = 48;
	conn->time_gran = 1;
	cdl_info("mounted '%s' at '%s' (kernel FUSE %u.%u, max_write %u)", m->opts->namenode,
		 m->opts->mountpoint, conn->proto_major, conn->proto_minor, conn->max_write);
}

static void op_destroy(void *userdata)
{
	struct mnt *m = userdata;
	mnt_file_close_all(m);
	m->se = NULL;	/* the kernel is gone: nothing to tell it */
	mnt_wb_stop(m); /* what was made here reaches the namenode first */
	cdl_debug("unmount: the kernel still referenced %zu inodes", mnt_itab_count(&m->itab));
}

/* ------------------------------------------------------------ names */

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct mnt *m = mnt_of(req);
	Caudal__Target t = CAUDAL__TARGET__INIT;
	struct mnt_cred cred;
	Caudal__GetAttrRequest rq = CAUDAL__GET_ATTR_REQUEST__INIT;
	if (strlen(name) > CDL_NAME_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	if (mnt_dcache_absent(&m->dc, parent, name)) {
		fuse_reply_err(req, ENOENT); /* a directory this mount made, known whole */
		return;
	}
	/* a name read before and unchanged since (the kernel has checked the
	 * caller may search parent: default_permissions) */
	Caudal__Attr a;
	if (mnt_acache_lookup(&m->ac, parent, name, &a)) {
		struct fuse_entry_param e;
		mnt_itab_overlay(&m->itab, &a);
		mnt_entry_ref(m, &a, &e);
		if (fuse_reply_entry(req, &e) != 0)
			mnt_itab_forget(&m->itab, e.ino, 1);
		return;
	}
	t.parent = parent;
	t.name = (char *)name;
	mnt_cred(req, &cred);
	rq.target = &t;
	rq.cred = &cred.c;
	Caudal__AttrReply *rep = NULL;
	int rc = mnt_call(m, CDL_NN_GetAttr, &rq.base, (ProtobufCMessage **)&rep);
	if (rc == 0 && rep->attr) {
		mnt_acache_put_attr(&m->ac, rep->attr);
		mnt_acache_put_name(&m->ac, parent, name, rep->attr->ino, rep->attr->txid);
	}
	reply_entry_attr(req, m, rc, rep);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	mnt_itab_forget(&mnt_of(req)->itab, ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct mnt *m = mnt_of(req);
	for (size_t i = 0; i < count; i++)
		mnt_itab_forget(&m->itab, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	struct mnt *m = mnt_of(req);
	Caudal__Attr a;
	if (mnt_wb_attr(m, ino, &a) || mnt_acache_attr(&m->ac, ino, &a)) {
		struct stat st;
		mnt_itab_overlay(&m->itab, &a);
		mnt_attr_to_stat(&a, &st);
		if (is_hidden(m, ino))
			st.st_nlink = 0; /* unlinked, still open */
		fuse_reply_attr(req, &st, m->opts->attr_timeout);
		return;
	}
	Caudal__AttrReply *rep;
	int rc = mnt_getattr(m, req, ino, &rep);
	if (rc) {
		/* the inode the kernel's cached entry names is gone (removed,
		 * or replaced by a rename from another client): ESTALE has the
		 * kernel look the path up again, as NFS does */
		mnt_reply_err(req, rc == -ENOENT ? -ESTALE : rc);
		return;
	}
	struct stat st;
	mnt_attr_to_stat(rep->attr, &st);
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	if (is_hidden(m, ino))
		st.st_nlink = 0;
	fuse_reply_attr(req, &st, m->opts->attr_timeout);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct mnt *m = mnt_of(req);
	int rc;
	if (m->opts->ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if (attr->st_size < 0) {
			fuse_reply_err(req, EINVAL);
			return;
		}
		rc = mnt_file_truncate(m, req, ino, (uint64_t)attr->st_size, fi);
		if (rc) {
			mnt_reply_err(req, rc);
			return;
		}
	}
	Caudal__Target t = CAUDAL__TARGET__INIT;
	struct mnt_cred cred;
	Caudal__SetAttrRequest rq = CAUDAL__SET_ATTR_REQUEST__INIT;
	t.ino = ino;
	mnt_cred(req, &cred);
	rq.target = &t;
	rq.cred = &cred.c;
	rq.client = (char *)cdl_client_name(m->cl);
	if (to_set & FUSE_SET_ATTR_MODE) {
		rq.valid |= CAUDAL__SET_ATTR_FIELD__SA_MODE;
		rq.mode = attr->st_mode & 07777;
	}
	if (to_set & FUSE_SET_ATTR_UID) {
		rq.valid |= CAUDAL__SET_ATTR_FIELD__SA_UID;
		rq.uid = attr->st_uid;
	}
	if (to_set & FUSE_SET_ATTR_GID) {
		rq.valid |= CAUDAL__SET_ATTR_FIELD__SA_GID;
		rq.gid = attr->st_gid;
	}
	if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
		rq.valid |= CAUDAL__SET_ATTR_FIELD__SA_ATIME_NOW;
	} else if (to_set & FUSE_SET_ATTR_ATIME) {
		rq.valid |= CAUDAL__SET_ATTR_FIELD__SA_ATIME;
		rq.atime_ns = (int64_t)attr->st_atim.tv_sec * 1000000000 + attr->st_atim.tv_nsec;
	}
	if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
		rq.valid |= CAUDAL__SET_ATTR_FIELD__SA_MTIME_NOW;
	} else if (to_set & FUSE_SET_ATTR_MTIME) {
		rq.valid |= CAUDAL__SET_ATTR_FIELD__SA_MTIME;
		rq.mtime_ns = (int64_t)attr->st_mtim.tv_sec * 1000000000 + attr->st_mtim.tv_nsec;
	}
	Caudal__AttrReply *rep = NULL;
	if (rq.valid) {
		mnt_acache_inval(&m->ac, ino);
		rc = mnt_call(m, CDL_NN_SetAttr, &rq.base, (ProtobufCMessage **)&rep);
		if (rc == 0 && rep->attr)
			mnt_acache_put_attr(&m->ac, rep->attr);
		if (rc == 0 && !rep->attr) {
			protobuf_c_message_free_unpacked(&rep->base, NULL);
			rc = -EIO;
		}
		if (rc == 0) {
			/* times set on a file this mount is writing must survive the
			 * completion at close */
			mnt_itab_pending_times(&m->itab, ino, rq.valid, rq.atime_ns, rq.mtime_ns);
			mnt_itab_overlay(&m->itab, rep->attr);
		}
	} else {
		rc = mnt_getattr(m, req, ino, &rep);
	}
	if (rc) {
		mnt_reply_err(req, rc);
		return;
	}
	struct stat st;
	mnt_attr_to_stat(rep->attr, &st);
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	fuse_reply_attr(req, &st, m->opts->attr_timeout);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct mnt *m = mnt_of(req);
	Caudal__Target t = CAUDAL__TARGET__INIT;
	struct mnt_cred cred;
	Caudal__GetAttrRequest rq = CAUDAL__GET_ATTR_REQUEST__INIT;
	t.ino = ino;
	mnt_cred(req, &cred);
	rq.target = &t;
	rq.cred = &cred.c;
	Caudal__ReadlinkReply *rep;
	int rc = mnt_call(m, CDL_NN_Readlink, &rq.base, (ProtobufCMessage **)&rep);
	if (rc) {
		mnt_reply_err(req, rc);
		return;
	}
	fuse_reply_readlink(req, rep->link ? rep->link : "");
	protobuf_c_message_free_unpacked(&rep->base, NULL);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct mnt *m = mnt_of(req);
	if (m->opts->ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	Caudal__Target t = CAUDAL__TARGET__INIT;
	struct mnt_cred cred;
	Caudal__MkdirRequest rq = CAUDAL__MKDIR_REQUEST__INIT;
	t.parent = parent;
	t.name = (char *)name;
	mnt_cred(req, &cred);
	rq.target = &t;
	rq.cred = &cred.c;
	rq.mode = mode & 07777;
	Caudal__AttrReply *rep = NULL;
	mnt_dcache_begin(&m->dc, parent);
	int rc = mnt_call(m, CDL_NN_Mkdir, &rq.base, (ProtobufCMessage **)&rep);
	mnt_note_made(m, parent, name, rc, rep);
	reply_entry_attr(req, m, rc, rep);
}

/* Fifos, sockets, devices (root only, checked by the namenode) and empty
 * regular files: metadata-only inodes. The kernel serves a fifo's or a
 * device's I/O itself, so nothing else reaches the mount for them. */
static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct mnt *m = mnt_of(req);
	if (m->opts->ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	Caudal__Target t = CAUDAL__TARGET__INIT;
	struct mnt_cred cred;
	Caudal__MknodRequest rq = CAUDAL__MKNOD_REQUEST__INIT;
	t.parent = parent;
	t.name = (char *)name;
	mnt_cred(req, &cred);
	rq.target = &t;
	rq.cred = &cred.c;
	rq.mode = (uint32_t)mode;
	rq.rdev = (uint64_t)rdev;
	Caudal__AttrReply *rep = NULL;
	mnt_dcache_begin(&m->dc, parent);
	int rc = mnt_call(m, CDL_NN_Mknod, &rq.base, (ProtobufCMessage **)&rep);
	mnt_note_made(m, parent, name, rc, rep);
	reply_entry_attr(req, m, rc, rep);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	struct mnt *m = mnt_of(req);
	if (m->opts->ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	Caudal__Target t = CAUDAL__TARGET__INIT;
	struct mnt_cred cred;
	Caudal__SymlinkRequest rq = CAUDAL__SYMLINK_REQUEST__INIT;
	t.parent = parent;
	t.name = (char *)name;
	mnt_cred(req, &cred);
	rq.target = &t;
	rq.cred = &cred.c;
	rq.link = (char *)link;
	Caudal__AttrReply *rep = NULL;
	mnt_dcache_begin(&m->dc, parent);
	int rc = mnt_call(m, CDL_NN_Symlink, &rq.base, (ProtobufCMessage **)&rep);
	mnt_note_made(m, parent, name, rc, rep);
	reply_entry_attr(req, m, rc, rep);
}

/* ------------------------------------------------------------ unlinked while open */

/* POSIX keeps a file that is unlinked while open readable and writable
 * until its last close; HDFS removes it at once, and its readers fail. So
 * an unlink of a file this mount has open renames it aside in its
 * directory, as NFS clients do (.nfsXXXX), and removes it, as the caller
 * who unlinked it, at the last close (or at unmount). Another mount's
 * open handles are not known here: for them HDFS's semantics stay. */
struct mnt_hidden {
	uint64_t ino, parent;
	char *name;
	struct mnt_cred cred;
	struct mnt_hidden *next;
};

/* Remove a hidden file. Called with hidden_mu held. */
static void hidden_remove(struct mnt *m, struct mnt_hidden *h)
{
	Caudal__Target t = CAUDAL__TARGET__INIT;
	Caudal__DeleteRequest rq = CAUDAL__DELETE_REQUEST__INIT;
	t.parent = h->parent;
	t.name = h->name;
	rq.target = &t;
	h->cred.c.groups = h->cred.groups;
	rq.cred = &h->cred.c;
	rq.kind = 1;
	mnt_dcache_forget(&m->dc, h->parent);
	mnt_acache_inval_entry(&m->ac, h->parent, h->name);
	int rc = mnt_call_status(m, CDL_NN_Delete, &rq.base);
	mnt_dcache_forget(&m->dc, h->parent);
	mnt_acache_inval_entry(&m->ac, h->parent, h->name);
	if (rc && rc != -ENOENT)
		cdl_warn(
		    "cannot remove '%s' (inode %llu, unlinked while open) at its last close: %s",
		    h->name, (unsigned long long)h->ino, strerror(-rc));
	struct mnt_hidden **pp = &m->hidden;
	while (*pp != h)
		pp = &(*pp)->next;
	*pp = h->next;
	free(h->name);
	free(h);
	pthread_cond_broadcast(&m->hidden_cv);
}

void mnt_hidden_closed(struct mnt *m, uint64_t ino)
{
	pthread_mutex_lock(&m->hidden_mu);
	for (struct mnt_hidden *h = m->hidden; h; h = h->next)
		if (h->ino == ino) {
			hidden_remove(m, h);
			break;
		}
	pthread_mutex_unlock(&m->hidden_mu);
}

static bool is_hidden(struct mnt *m, uint64_t ino)
{
	bool found = false;
	pthread_mutex_lock(&m->hidden_mu);
	for (struct mnt_hidden *h = m->hidden; h && !found; h = h->next)
		found = h->ino == ino;
	pthread_mutex_unlock(&m->hidden_mu);
	return found;
}

/* The attributes of parent's entry name (scalar fields), from the cache
 * or the namenode. 0 or -errno. */
static int entry_attr(struct mnt *m, struct mnt_cred *cred, uint64_t parent, const char *name,
		      Caudal__Attr *a)
{
	if (mnt_acache_lookup(&m->ac, parent, name, a))
		return 0;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	Caudal__GetAttrRequest rq = CAUDAL__GET_ATTR_REQUEST__INIT;
	t.parent = parent;
	t.name = (char *)name;
	rq.target = &t;
	rq.cred = &cred->c;
	Caudal__AttrReply *rep;
	int rc = mnt_call(m, CDL_NN_GetAttr, &rq.base, (ProtobufCMessage **)&rep);
	if (rc)
		return rc;
	*a = *rep->attr;
	a->inline_data.data = NULL;
	a->inline_data.len = 0;
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	return 0;
}

/* If parent's name is a file this mount has open, rename it aside and
 * return 0 (the unlink is done), or the rename's -errno; 1: not open
 * here, unlink it. */
static int hide_if_open(struct mnt *m, fuse_req_t req, uint64_t parent, const char *name)
{
	pthread_mutex_lock(&m->files_mu);
	bool any_open = m->files != NULL;
	pthread_mutex_unlock(&m->files_mu);
	if (!any_open)
		return 1;
	Caudal__Attr a;
	struct mnt_cred cred;
	mnt_cred(req, &cred);
	if (entry_attr(m, &cred, parent, name, &a) != 0)
		return 1; /* the unlink says why */
	if (!S_ISREG(a.mode) || mnt_itab_nopen(&m->itab, a.ino) == 0)
		return 1;
	uint32_t salt;
	if (getrandom(&salt, sizeof(salt), 0) != (ssize_t)sizeof(salt))
		salt = (uint32_t)cdl_now_ms();
	char *hidden = xasprintf(".caudal_hidden_%llx_%08x", (unsigned long long)a.ino, salt);
	Caudal__Target src = CAUDAL__TARGET__INIT, dst = CAUDAL__TARGET__INIT;
	Caudal__RenameRequest rq = CAUDAL__RENAME_REQUEST__INIT;
	src.parent = parent;
	src.name = (char *)name;
	dst.parent = parent;
	dst.name = hidden;
	rq.src = &src;
	rq.dst = &dst;
	rq.cred = &cred.c;
	rq.noreplace = true;
	mnt_dcache_forget(&m->dc, parent);
	mnt_acache_inval_entry(&m->ac, parent, name);
	int rc = mnt_call_status(m, CDL_NN_Rename, &rq.base);
	mnt_dcache_forget(&m->dc, parent);
	mnt_acache_inval_entry(&m->ac, parent, name);
	if (rc) {
		free(hidden);
		return rc;
	}
	struct mnt_hidden *h = xcalloc(1, sizeof(*h));
	h->ino = a.ino;
	h->parent = parent;
	h->name = hidden;
	h->cred = cred;
	pthread_mutex_lock(&m->hidden_mu);
	h->next = m->hidden;
	m->hidden = h;
	/* closed meanwhile: its last close found nothing to remove */
	if (mnt_itab_nopen(&m->itab, a.ino) == 0)
		hidden_remove(m, h);
	pthread_mutex_unlock(&m->hidden_mu);
	return 0;
}

/* Does directory dir hold a file hidden here? Called with hidden_mu held. */
static bool hidden_in(struct mnt *m, uint64_t dir)
{
	for (struct mnt_hidden *h = m->hidden; h; h = h->next)
		if (h->parent == dir)
			return true;
	return false;
}

/* A directory that holds only files hidden here still answers ENOTEMPTY
 * until their last close, which the kernel sends after close() returned:
 * if parent's directory name holds some, wait for their removal (at most
 * 2 s) and say to try again. */
static bool wait_hidden(struct mnt *m, fuse_req_t req, uint64_t parent, const char *name)
{
	pthread_mutex_lock(&m->hidden_mu);
	bool any = m->hidden != NULL;
	pthread_mutex_unlock(&m->hidden_mu);
	Caudal__Attr a;
	struct mnt_cred cred;
	mnt_cred(req, &cred);
	if (!any || entry_attr(m, &cred, parent, name, &a) != 0)
		return false;
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 2;
	pthread_mutex_lock(&m->hidden_mu);
	bool had = hidden_in(m, a.ino);
	while (hidden_in(m, a.ino))
		if (pthread_cond_timedwait(&m->hidden_cv, &m->hidden_mu, &until) != 0)
			break;
	pthread_mutex_unlock(&m->hidden_mu);
	return had;
}

static void do_delete(fuse_req_t req, fuse_ino_t parent, const char *name, uint32_t kind)
{
	struct mnt *m = mnt_of(req);
	if (m->opts->ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	Caudal__Target t = CAUDAL__TARGET__INIT;
	struct mnt_cred cred;
	Caudal__DeleteRequest rq = CAUDAL__DELETE_REQUEST__INIT;
	t.parent = parent;
	t.name = (char *)name;
	mnt_cred(req, &cred);
	rq.target = &t;
	rq.cred = &cred.c;
	rq.kind = kind;
	/* names change: the directory is no longer known whole (before the
	 * call, so no lookup meanwhile trusts it, and after, in case one
	 * re-made it) */
	if (kind == 1) {
		int hrc = hide_if_open(m, req, parent, name);
		if (hrc <= 0) {
			mnt_reply_err(req, hrc);
			return;
		}
	}
	mnt_dcache_forget(&m->dc, parent);
	mnt_acache_inval_entry(&m->ac, parent, name);
	int rc = 1;
	if (m->opts->trash && kind == 1) {
		/* -o trash: an unlinked file goes to the caller's trash (the
		 * namenode says when it keeps none, or the file is in it) */
		Caudal__TrashRequest tq = CAUDAL__TRASH_REQUEST__INIT;
		tq.target = &t;
		tq.cred = &cred.c;
		tq.kind = kind;
		Caudal__TrashReply *tr;
		rc = mnt_call(m, CDL_NN_Trash, &tq.base, (ProtobufCMessage **)&tr);
		if (rc == 0) {
			rc = tr->moved ? 0 : 1;
			protobuf_c_message_free_unpacked(&tr->base, NULL);
		}
	}
	if (rc == 1)
		rc = mnt_call_status(m, CDL_NN_Delete, &rq.base);
	if (rc == -ENOTEMPTY && kind == 2 && wait_hidden(m, req, parent, name))
		rc = mnt_call_status(m, CDL_NN_Delete, &rq.base);
	mnt_dcache_forget(&m->dc, parent);
	mnt_acache_inval_entry(&m->ac, parent, name);
	mnt_reply_err(req, rc);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	do_delete(req, parent, name, 1);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	do_delete(req, parent, name, 2);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct mnt *m = mnt_of(req);
	if (m->opts->ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (flags & ~(unsigned)RENAME_NOREPLACE) {
		fuse_reply_err(req, EINVAL); /* RENAME_EXCHANGE, RENAME_WHITEOUT */
		return;
	}
	Caudal__Target src = CAUDAL__TARGET__INIT, dst = CAUDAL__TARGET__INIT;
	struct mnt_cred cred;
	Caudal__RenameRequest rq = CAUDAL__RENAME_REQUEST__INIT;
	src.parent = parent;
	src.name = (char *)name;
	dst.parent = newparent;
	dst.name = (char *)newname;
	mnt_cred(req, &cred);
	rq.src = &src;
	rq.dst = &dst;
	rq.cred = &cred.c;
	rq.noreplace = (flags & RENAME_NOREPLACE) != 0;
	mnt_dcache_forget(&m->dc, parent);
	mnt_dcache_forget(&m->dc, newparent);
	mnt_acache_inval_entry(&m->ac, parent, name);
	mnt_acache_inval_entry(&m->ac, newparent, newname);
	int rc = mnt_call_status(m, CDL_NN_Rename, &rq.base);
	mnt_dcache_forget(&m->dc, parent);
	mnt_dcache_forget(&m->dc, newparent);
	mnt_acache_inval_entry(&m->ac, parent, name);
	mnt_acache_inval_entry(&m->ac, newparent, newname);
	mnt_reply_err(req, rc);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	(void)ino;
	(void)newparent;
	(void)newname;
	fuse_reply_err(req, EPERM); /* HDFS has no hard links */
}

/* statfs(2) names the inode it was called on (df DIR): inside a
 * directory with quotas, or under one, the nearest quota'd directory's
 * quotas are the size and the free room shown (as CephFS shows its quotas),
 * the space quota in the raw bytes it counts (times replication), never
 * more free than the cluster has. */
static void statfs_quota(struct mnt *m, fuse_req_t req, fuse_ino_t ino, struct statvfs *sv)
{
	Caudal__Target t = CAUDAL__TARGET__INIT;
	struct mnt_cred cred;
	Caudal__QuotaRequest rq = CAUDAL__QUOTA_REQUEST__INIT;
	t.ino = ino;
	mnt_cred(req, &cred);
	rq.target = &t;
	rq.cred = &cred.c;
	rq.nearest = true;
	Caudal__QuotaReply *rep;
	if (mnt_call(m, CDL_NN_GetQuota, &rq.base, (ProtobufCMessage **)&rep) != 0)
		return; /* the cluster's figures stand */
	if (rep->ds_quota >= 0) {
		uint64_t q = (uint64_t)rep->ds_quota;
		uint64_t left = rep->ds_used < q ? q - rep->ds_used : 0;
		sv->f_blocks = q / STATFS_FRSIZE;
		if (left / STATFS_FRSIZE < sv->f_bfree)
			sv->f_bfree = left / STATFS_FRSIZE;
		sv->f_bavail = sv->f_bfree;
	}
	if (rep->ns_quota >= 0) {
		uint64_t q = (uint64_t)rep->ns_quota;
		sv->f_files = q;
		sv->f_ffree = rep->ns_used < q ? q - rep->ns_used : 0;
		sv->f_favail = sv->f_ffree;
	}
	protobuf_c_message_free_unpacked(&rep->base, NULL);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct mnt *m = mnt_of(req);
	Caudal__Empty rq = CAUDAL__EMPTY__INIT;
	Caudal__StatfsReply *rep;
	int rc = mnt_call(m, CDL_NN_Statfs, &rq.base, (ProtobufCMessage **)&rep);
	if (rc) {
		mnt_reply_err(req, rc);
		return;
	}
	struct statvfs sv;
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = BLKSIZE_HINT;
	sv.f_frsize = STATFS_FRSIZE;
	sv.f_blocks = rep->capacity / STATFS_FRSIZE;
	sv.f_bfree = rep->remaining / STATFS_FRSIZE;
	sv.f_bavail = sv.f_bfree;
	sv.f_ffree = 1u << 30;
	sv.f_favail = sv.f_ffree;
	sv.f_files = rep->files + sv.f_ffree;
	sv.f_namemax = CDL_NAME_MAX;
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	statfs_quota(m, req, ino, &sv);
	fuse_reply_statfs(req, &sv);
}

/* ------------------------------------------------------------ xattrs */

/* The namenode keeps user.* attributes (and answers user.caudal.* itself);
 * other namespaces (security.*, system.*, trusted.*) have none, answered
 * here without a round trip: the kernel asks security.capability before
 * every write. */
static bool user_xattr(const char *name)
{
	return strncmp(name, "user.", 5) == 0;
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	struct mnt *m = mnt_of(req);
	if (!user_xattr(name)) {
		fuse_reply_err(req, ENOTSUP);
		return;
	}
	if (m->opts->ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (size > 65536) {
		fuse_reply_err(req, E2BIG);
		return;
	}
	Caudal__Target t = CAUDAL__TARGET__INIT;
	struct mnt_cred cred;
	Caudal__XattrRequest rq = CAUDAL__XATTR_REQUEST__INIT;
	t.ino = ino;
	mnt_cred(req, &cred);
	rq.target = &t;
	rq.cred = &cred.c;
	rq.name = (char *)name;
	rq.value.data = (uint8_t *)value;
	rq.value.len = size;
	rq.flags = (flags & XATTR_CREATE ? 1u : 0u) | (flags & XATTR_REPLACE ? 2u : 0u);
	mnt_acache_inval(&m->ac, ino);
	int rc = mnt_call_status(m, CDL_NN_SetXattr, &rq.base);
	mnt_acache_inval(&m->ac, ino);
	if (rc == 0 && strncmp(name, "user.caudal.", 12) == 0)
		mnt_itab_cache_drop(&m->itab, ino);
	mnt_reply_err(req, rc);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct mnt *m = mnt_of(req);
	if (!user_xattr(name)) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	Caudal__Target t = CAUDAL__TARGET__INIT;
	struct mnt_cred cred;
	Caudal__XattrRequest rq = CAUDAL__XATTR_REQUEST__INIT;
	t.ino = ino;
	mnt_cred(req, &cred);
	rq.target = &t;
	rq.cred = &cred.c;
	rq.name = (char *)name;
	Caudal__XattrReply *rep;
	int rc = mnt_call(m, CDL_NN_GetXattr, &rq.base, (ProtobufCMessage **)&rep);
	if (rc) {
		mnt_reply_err(req, rc);
		return;
	}
	if (size == 0)
		fuse_reply_xattr(req, rep->value.len);
	else if (rep->value.len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, (const char *)rep->value.data, rep->value.len);
	protobuf_c_message_free_unpacked(&rep->base, NULL);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct mnt *m = mnt_of(req);
	Caudal__Target t = CAUDAL__TARGET__INIT;
	struct mnt_cred cred;
	Caudal__XattrRequest rq = CAUDAL__XATTR_REQUEST__INIT;
	t.ino = ino;
	mnt_cred(req, &cred);
	rq.target = &t;
	rq.cred = &cred.c;
	Caudal__XattrReply *rep;
	int rc = mnt_call(m, CDL_NN_ListXattr, &rq.base, (ProtobufCMessage **)&rep);
	if (rc) {
		mnt_reply_err(req, rc);
		return;
	}
	size_t len = 0;
	for (size_t i = 0; i < rep->n_names; i++)
		len += strlen(rep->names[i]) + 1;
	if (size == 0) {
		fuse_reply_xattr(req, len);
	} else if (len > size) {
		fuse_reply_err(req, ERANGE);
	} else {
		char *buf = xmalloc(len ? len : 1);
		size_t k = 0;
		for (size_t i = 0; i < rep->n_names; i++) {
			size_t n = strlen(rep->names[i]) + 1;
			memcpy(buf + k, rep->names[i], n);
			k += n;
		}
		fuse_reply_buf(req, buf, len);
		free(buf);
	}
	protobuf_c_message_free_unpacked(&rep->base, NULL);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct mnt *m = mnt_of(req);
	if (!user_xattr(name)) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	if (m->opts->ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	Caudal__Target t = CAUDAL__TARGET__INIT;
	struct mnt_cred cred;
	Caudal__XattrRequest rq = CAUDAL__XATTR_REQUEST__INIT;
	t.ino = ino;
	mnt_cred(req, &cred);
	rq.target = &t;
	rq.cred = &cred.c;
	rq.name = (char *)name;
	mnt_acache_inval(&m->ac, ino);
	int rc = mnt_call_status(m, CDL_NN_RemoveXattr, &rq.base);
	mnt_acache_inval(&m->ac, ino);
	mnt_reply_err(req, rc);
}

/* ------------------------------------------------------------ the table */

static const struct fuse_lowlevel_ops raw_ops = {
    .init = op_init,
    .destroy = op_destroy,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .readlink = op_readlink,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_rmdir,
    .symlink = op_symlink,
    .rename = op_rename,
    .link = op_link,
    .open = mnt_op_open,
    .create = mnt_op_create,
    .read = mnt_op_read,
    .write = mnt_op_write,
    .flush = mnt_op_flush,
    .release = mnt_op_release,
    .fsync = mnt_op_fsync,
    .opendir = mnt_op_opendir,
    .readdir = mnt_op_readdir,
    .readdirplus = mnt_op_readdirplus,
    .releasedir = mnt_op_releasedir,
    .fsyncdir = mnt_op_fsyncdir,
    .statfs = op_statfs,
    .setxattr = op_setxattr,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
    .removexattr = op_removexattr,
};

/* ---------------------------------------------------------------- metrics */

/* Every operation the kernel sends goes through a wrapper that times its
 * handler (which replies before it returns, but for writes buffered in
 * the handle) into caudal_mount_op_seconds{op}. */
enum mop {
	MOP_LOOKUP,
	MOP_GETATTR,
	MOP_SETATTR,
	MOP_READLINK,
	MOP_MKNOD,
	MOP_MKDIR,
	MOP_UNLINK,
	MOP_RMDIR,
	MOP_SYMLINK,
	MOP_RENAME,
	MOP_LINK,
	MOP_OPEN,
	MOP_CREATE,
	MOP_READ,
	MOP_WRITE,
	MOP_FLUSH,
	MOP_RELEASE,
	MOP_FSYNC,
	MOP_OPENDIR,
	MOP_READDIR,
	MOP_READDIRPLUS,
	MOP_RELEASEDIR,
	MOP_FSYNCDIR,
	MOP_STATFS,
	MOP_SETXATTR,
	MOP_GETXATTR,
	MOP_LISTXATTR,
	MOP_REMOVEXATTR,
	MOP_N
};
static const char *const mop_names[MOP_N] = {
    "lookup",	  "getattr",  "setattr", "readlink", "mknod",	 "mkdir",     "unlink",
    "rmdir",	  "symlink",  "rename",	 "link",     "open",	 "create",    "read",
    "write",	  "flush",    "release", "fsync",    "opendir",	 "readdir",   "readdirplus",
    "releasedir", "fsyncdir", "statfs",	 "setxattr", "getxattr", "listxattr", "removexattr"};
static cdl_series *mop_secs[MOP_N];
cdl_series *mnt_m_bytes_read, *mnt_m_bytes_written;
static cdl_series *m_hits, *m_misses, *m_ac_hits, *m_ac_misses, *m_open, *m_inodes;
static cdl_series *m_wb_local, *m_wb_made, *m_wb_lost, *m_wb_batches, *m_wb_takes, *m_wb_recalls;

#define TIMED(op, OP, params, args)                                                                \
	static void t_##op params                                                                  \
	{                                                                                          \
		int64_t t0 = cdl_now_ns();                                                         \
		raw_ops.op args;                                                                   \
		cdl_series_observe(mop_secs[OP], cdl_metrics_since(t0));                           \
	}

typedef struct fuse_file_info ffi;
TIMED(lookup, MOP_LOOKUP, (fuse_req_t r, fuse_ino_t p, const char *n), (r, p, n))
TIMED(getattr, MOP_GETATTR, (fuse_req_t r, fuse_ino_t i, ffi *f), (r, i, f))
TIMED(setattr, MOP_SETATTR, (fuse_req_t r, fuse_ino_t i, struct stat *a, int s, ffi *f),
      (r, i, a, s, f))
TIMED(readlink, MOP_READLINK, (fuse_req_t r, fuse_ino_t i), (r, i))
TIMED(mknod, MOP_MKNOD, (fuse_req_t r, fuse_ino_t p, const char *n, mode_t m, dev_t d),
      (r, p, n, m, d))
TIMED(mkdir, MOP_MKDIR, (fuse_req_t r, fuse_ino_t p, const char *n, mode_t m), (r, p, n, m))
TIMED(unlink, MOP_UNLINK, (fuse_req_t r, fuse_ino_t p, const char *n), (r, p, n))
TIMED(rmdir, MOP_RMDIR, (fuse_req_t r, fuse_ino_t p, const char *n), (r, p, n))
TIMED(symlink, MOP_SYMLINK, (fuse_req_t r, const char *l, fuse_ino_t p, const char *n),
      (r, l, p, n))
TIMED(rename, MOP_RENAME,
      (fuse_req_t r, fuse_ino_t p, const char *n, fuse_ino_t np, const char *nn, unsigned fl),
      (r, p, n, np, nn, fl))
TIMED(link, MOP_LINK, (fuse_req_t r, fuse_ino_t i, fuse_ino_t np, const char *nn), (r, i, np, nn))
TIMED(open, MOP_OPEN, (fuse_req_t r, fuse_ino_t i, ffi *f), (r, i, f))
TIMED(create, MOP_CREATE, (fuse_req_t r, fuse_ino_t p, const char *n, mode_t m, ffi *f),
      (r, p, n, m, f))
TIMED(read, MOP_READ, (fuse_req_t r, fuse_ino_t i, size_t z, off_t o, ffi *f), (r, i, z, o, f))
TIMED(write, MOP_WRITE, (fuse_req_t r, fuse_ino_t i, const char *b, size_t z, off_t o, ffi *f),
      (r, i, b, z, o, f))
TIMED(flush, MOP_FLUSH, (fuse_req_t r, fuse_ino_t i, ffi *f), (r, i, f))
TIMED(release, MOP_RELEASE, (fuse_req_t r, fuse_ino_t i, ffi *f), (r, i, f))
TIMED(fsync, MOP_FSYNC, (fuse_req_t r, fuse_ino_t i, int d, ffi *f), (r, i, d, f))
TIMED(opendir, MOP_OPENDIR, (fuse_req_t r, fuse_ino_t i, ffi *f), (r, i, f))
TIMED(readdir, MOP_READDIR, (fuse_req_t r, fuse_ino_t i, size_t z, off_t o, ffi *f),
      (r, i, z, o, f))
TIMED(readdirplus, MOP_READDIRPLUS, (fuse_req_t r, fuse_ino_t i, size_t z, off_t o, ffi *f),
      (r, i, z, o, f))
TIMED(releasedir, MOP_RELEASEDIR, (fuse_req_t r, fuse_ino_t i, ffi *f), (r, i, f))
TIMED(fsyncdir, MOP_FSYNCDIR, (fuse_req_t r, fuse_ino_t i, int d, ffi *f), (r, i, d, f))
TIMED(statfs, MOP_STATFS, (fuse_req_t r, fuse_ino_t i), (r, i))
TIMED(setxattr, MOP_SETXATTR,
      (fuse_req_t r, fuse_ino_t i, const char *n, const char *v, size_t z, int fl),
      (r, i, n, v, z, fl))
TIMED(getxattr, MOP_GETXATTR, (fuse_req_t r, fuse_ino_t i, const char *n, size_t z), (r, i, n, z))
TIMED(listxattr, MOP_LISTXATTR, (fuse_req_t r, fuse_ino_t i, size_t z), (r, i, z))
TIMED(removexattr, MOP_REMOVEXATTR, (fuse_req_t r, fuse_ino_t i, const char *n), (r, i, n))

const struct fuse_lowlevel_ops mnt_ops = {
    .init = op_init,
    .destroy = op_destroy,
    .lookup = t_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = t_getattr,
    .setattr = t_setattr,
    .readlink = t_readlink,
    .mknod = t_mknod,
    .mkdir = t_mkdir,
    .unlink = t_unlink,
    .rmdir = t_rmdir,
    .symlink = t_symlink,
    .rename = t_rename,
    .link = t_link,
    .open = t_open,
    .create = t_create,
    .read = t_read,
    .write = t_write,
    .flush = t_flush,
    .release = t_release,
    .fsync = t_fsync,
    .opendir = t_opendir,
    .readdir = t_readdir,
    .readdirplus = t_readdirplus,
    .releasedir = t_releasedir,
    .fsyncdir = t_fsyncdir,
    .statfs = t_statfs,
    .setxattr = t_setxattr,
    .getxattr = t_getxattr,
    .listxattr = t_listxattr,
    .removexattr = t_removexattr,
};

/* Read at each render: the directory and attribute caches' counts (kept
 * under their own locks), the open handles and the inodes the kernel holds. */
static void mnt_collect(void *arg)
{
	struct mnt *m = arg;
	pthread_mutex_lock(&m->dc.mu);
	uint64_t hits = m->dc.hits, misses = m->dc.misses;
	pthread_mutex_unlock(&m->dc.mu);
	cdl_series_counter_set(m_hits, (double)hits);
	cdl_series_counter_set(m_misses, (double)misses);
	pthread_mutex_lock(&m->ac.mu);
	hits = m->ac.hits, misses = m->ac.misses;
	pthread_mutex_unlock(&m->ac.mu);
	cdl_series_counter_set(m_ac_hits, (double)hits);
	cdl_series_counter_set(m_ac_misses, (double)misses);
	cdl_series_set(m_open, (double)mnt_files_open(m));
	cdl_series_set(m_inodes, (double)mnt_itab_count(&m->itab));
	struct mnt_wb_stats ws;
	mnt_wb_stats(m, &ws);
	cdl_series_counter_set(m_wb_local, (double)ws.local);
	cdl_series_counter_set(m_wb_made, (double)ws.made);
	cdl_series_counter_set(m_wb_lost, (double)ws.lost);
	cdl_series_counter_set(m_wb_batches, (double)ws.batches);
	cdl_series_counter_set(m_wb_takes, (double)ws.takes);
	cdl_series_counter_set(m_wb_recalls, (double)ws.recalls);
}

void mnt_metrics_init(struct mnt *m, cdl_metrics *r)
{
	cdl_metric *h = cdl_metrics_histogram(
	    r, "caudal_mount_op_seconds",
	    "Operations the kernel sent the mount and the time their handler took, by kind.", "op",
	    NULL, 0);
	for (int i = 0; i < MOP_N; i++)
		mop_secs[i] = cdl_metric_at(h, mop_names[i]);
	mnt_m_bytes_read = cdl_metric_one(cdl_metrics_counter(
	    r, "caudal_mount_bytes_read_total", "Bytes read through the mount.", NULL));
	mnt_m_bytes_written = cdl_metric_one(cdl_metrics_counter(
	    r, "caudal_mount_bytes_written_total", "Bytes written through the mount.", NULL));
	cdl_metric *dc = cdl_metrics_counter(
	    r, "caudal_mount_dcache_lookups_total",
	    "Lookups by whether the directory cache answered them (hit) or the namenode (miss).",
	    "result");
	m_hits = cdl_metric_at(dc, "hit");
	m_misses = cdl_metric_at(dc, "miss");
	cdl_metric *ac = cdl_metrics_counter(
	    r, "caudal_mount_acache_lookups_total",
	    "Lookups and stats by whether the attribute cache answered them (hit) or the namenode "
	    "(miss).",
	    "result");
	m_ac_hits = cdl_metric_at(ac, "hit");
	m_ac_misses = cdl_metric_at(ac, "miss");
	m_open = cdl_metric_one(
	    cdl_metrics_gauge(r, "caudal_mount_open_files", "File handles open now.", NULL));
	m_inodes = cdl_metric_one(cdl_metrics_gauge(
	    r, "caudal_mount_inodes", "Inodes the kernel holds references to.", NULL));
	cdl_metric *wf = cdl_metrics_counter(
	    r, "caudal_mount_wb_files_total",
	    "Write-back creates: files made here without asking (local), taken by the namenode "
	    "(made), refused by it and lost (lost).",
	    "state");
	m_wb_local = cdl_metric_at(wf, "local");
	m_wb_made = cdl_metric_at(wf, "made");
	m_wb_lost = cdl_metric_at(wf, "lost");
	m_wb_batches = cdl_metric_one(cdl_metrics_counter(
	    r, "caudal_mount_wb_batches_total", "Batch calls sent to the namenode.", NULL));
	m_wb_takes = cdl_metric_one(
	    cdl_metrics_counter(r, "caudal_mount_wb_takes_total",
				"Directories taken to create in without asking.", NULL));
	m_wb_recalls = cdl_metric_one(cdl_metrics_counter(
	    r, "caudal_mount_wb_recalls_total",
	    "Held directories the namenode asked back for another caller.", NULL));
	cdl_metrics_collector(r, mnt_collect, m);
}
