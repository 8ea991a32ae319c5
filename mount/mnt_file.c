/* mnt_file: open, create, read, write, flush, release, fsync and truncate
 * of regular files. See mnt_file.h for what a handle owns. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "cdl_log.h"
#include "cdl_metrics.h"
#include "cdl_util.h"
#include "mnt_file.h"
#include "mnt_wb.h"

#define WBUF_MIN     (64u << 10)  /* first write-buffer allocation */
#define DIRECT_WRITE (1u << 20)	  /* writes this big skip the buffer when it is empty */
#define AHEAD_BUDGET (256u << 20) /* background read-ahead buffers, mount-wide */

struct mnt_file {
	pthread_mutex_t mu;
	struct mnt *m;
	struct mnt_file *prev, *next; /* every open handle, for unmount (files_mu) */
	struct mnt_inode *in;	      /* open reference in the inode table */
	uint64_t ino;
	bool wr;     /* opened for writing */
	bool append; /* O_APPEND: every write goes to the end */
	/* writing */
	cdl_writer *w;	/* holds the lease; NULL before the first write after a flush */
	uint64_t wsize; /* file size as this handle sees it, buffered bytes included */
	char *wbuf;
	size_t wlen, wcap;
	int werr;      /* the stream failed: reported by every later write and flush */
	bool unsynced; /* written since the last sync or completion */
	bool warned;   /* the offset refusal was logged */
	bool written;  /* written or truncated through this handle, ever */
	bool pend;     /* a write-back create (mnt_wb.h) not yet at the namenode: no
			* writer, the bytes wait in wbuf (at most inline_max) */
	/* reading */
	cdl_reader *r; /* opened at the first read */
	char *rbuf;    /* read-ahead: bytes [roff, roff + rlen) of the file */
	size_t rcap, rlen;
	uint64_t roff;
	uint64_t rnext; /* where a sequential reader reads next */
	bool rseq;	/* rbuf was filled for a sequential reader */
	/* background read-ahead (read-only handles): a thread fills abuf with
	 * [aoff, aoff + alen) while the reader takes rbuf; the two swap */
	pthread_t ath;
	pthread_cond_t acv;
	bool abusy; /* the thread was started and is not joined */
	bool adone; /* it finished: alen or aerr are set */
	char *abuf;
	size_t acap, awant, alen;
	uint64_t aoff;
	int aerr;
};

static struct mnt_file *fh_of(struct fuse_file_info *fi)
{
	return (struct mnt_file *)(uintptr_t)fi->fh;
}

static struct mnt_file *file_new(struct mnt *m, uint64_t ino, int flags)
{
	struct mnt_file *f = xcalloc(1, sizeof(*f));
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->acv, NULL);
	f->m = m;
	f->ino = ino;
	f->in = mnt_itab_open(&m->itab, ino);
	f->wr = (flags & O_ACCMODE) != O_RDONLY;
	f->append = (flags & O_APPEND) != 0;
	pthread_mutex_lock(&m->files_mu);
	f->next = m->files;
	if (m->files)
		m->files->prev = f;
	m->files = f;
	pthread_mutex_unlock(&m->files_mu);
	return f;
}

size_t mnt_files_open(struct mnt *m)
{
	size_t n = 0;
	pthread_mutex_lock(&m->files_mu);
	for (const struct mnt_file *f = m->files; f; f = f->next)
		n++;
	pthread_mutex_unlock(&m->files_mu);
	return n;
}

/* Frees f; its writer must be gone. */
static void file_free(struct mnt_file *f)
{
	struct mnt *m = f->m;
	pthread_mutex_lock(&m->files_mu);
	if (f->prev)
		f->prev->next = f->next;
	else
		m->files = f->next;
	if (f->next)
		f->next->prev = f->prev;
	m->ahead_bytes -= f->acap;
	pthread_mutex_unlock(&m->files_mu);
	if (f->abusy)
		pthread_join(f->ath, NULL);
	if (f->r)
		cdl_reader_close(f->r);
	mnt_itab_unset_writer(&f->m->itab, f->in, f);
	if (mnt_itab_close(&f->m->itab, f->in))
		mnt_hidden_closed(m, f->ino);
	free(f->wbuf);
	free(f->rbuf);
	free(f->abuf);
	pthread_cond_destroy(&f->acv);
	pthread_mutex_destroy(&f->mu);
	free(f);
}

/* Start writing with the lease just taken (attr from Create or Append):
 * the writer continues after attr->size bytes. */
static int start_writer(struct mnt_file *f, const Caudal__Attr *a)
{
	int rc = mnt_itab_set_writer(&f->m->itab, f->in, f, a->size);
	if (rc)
		return rc;
	rc = cdl_writer_open(f->m->cl, a, &f->w);
	if (rc) {
		mnt_itab_unset_writer(&f->m->itab, f->in, f);
		return rc;
	}
	f->wsize = a->size;
	f->unsynced = false;
	return 0;
}

/* The pending file of f needs a writer (make: have it made now, else
 * only if the sender made it meanwhile): once made at the namenode, open
 * under this mount's lease, the buffered bytes are its first. 0 (f->pend
 * cleared, or still set when !make and not made yet) or -errno. Called
 * with f->mu held. */
static int pend_resolve(struct mnt_file *f, bool make)
{
	Caudal__Attr a;
	int rc = make ? mnt_wb_make(f->m, f->ino, &a) : mnt_wb_made(f->m, f->ino, &a);
	if (rc == -EINPROGRESS && !make)
		return 0;
	f->pend = false;
	mnt_itab_unset_writer(&f->m->itab, f->in, f);
	if (rc == 0)
		rc = start_writer(f, &a);
	if (rc) {
		f->werr = rc;
		return rc;
	}
	f->wsize = f->wlen;
	f->unsynced = f->wlen > 0;
	/* (the buffered bytes are no new write: times set meanwhile stay) */
	int64_t at, mt;
	uint32_t v = mnt_itab_take_times(&f->m->itab, f->in, &at, &mt);
	mnt_itab_set_wsize(&f->m->itab, f->in, f->wsize);
	if (v)
		mnt_itab_pending_times(&f->m->itab, f->ino, v, at, mt);
	return 0;
}

static int finish_writer(struct mnt_file *f, fuse_req_t req);

/* Closing a pending file: hand it whole to the sender (mnt_wb_close), or
 * else make it and complete it as any file (times set while open are
 * applied that way). Called with f->mu held. */
static int pend_close(struct mnt_file *f, fuse_req_t req)
{
	int rc = pend_resolve(f, false);
	if (rc)
		return rc;
	if (f->pend && !mnt_itab_has_times(&f->m->itab, f->in) &&
	    mnt_wb_close(f->m, f->ino, f->wbuf, f->wlen) == 0) {
		f->pend = false;
		f->wlen = 0;
		f->unsynced = false;
		/* nothing more to write here: times set before the release
		 * (tar's utimensat after close) go to the namenode */
		mnt_itab_unset_writer(&f->m->itab, f->in, f);
		return 0;
	}
	if (f->pend && (rc = pend_resolve(f, true)) != 0)
		return rc;
	return finish_writer(f, req);
}

/* Tell the namenode we stop writing (Complete without a writer). */
static int complete_empty(struct mnt *m, uint64_t ino)
{
	mnt_acache_inval(&m->ac, ino);
	Caudal__CompleteRequest cq = CAUDAL__COMPLETE_REQUEST__INIT;
	cq.ino = ino;
	cq.client = (char *)cdl_client_name(m->cl);
	return mnt_call_status(m, CDL_NN_Complete, &cq.base);
}

/* Take the file's lease with Append (HDFS append) and start a writer at
 * its end. The writer slot in the inode table is reserved first, so a
 * second local writer gets EBUSY without asking; the namenode answers
 * EBUSY when another client writes the file. */
static int lease_append(struct mnt_file *f, const Caudal__Cred *cred, Caudal__AttrReply **out)
{
	int rc = mnt_itab_set_writer(&f->m->itab, f->in, f, f->wsize);
	if (rc)
		return rc;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	Caudal__OpenWriteRequest rq = CAUDAL__OPEN_WRITE_REQUEST__INIT;
	t.ino = f->ino;
	rq.target = &t;
	rq.client = (char *)cdl_client_name(f->m->cl);
	rq.cred = (Caudal__Cred *)cred;
	Caudal__AttrReply *rep;
	rc = mnt_call(f->m, CDL_NN_Append, &rq.base, (ProtobufCMessage **)&rep);
	if (rc == 0 && !rep->attr) {
		protobuf_c_message_free_unpacked(&rep->base, NULL);
		complete_empty(f->m, f->ino);
		rc = -EIO;
	}
	if (rc) {
		mnt_itab_unset_writer(&f->m->itab, f->in, f);
		return rc;
	}
	rc = start_writer(f, rep->attr);
	if (rc)
		complete_empty(f->m, f->ino);
	if (rc || !out)
		protobuf_c_message_free_unpacked(&rep->base, NULL);
	else
		*out = rep;
	return rc;
}

/* Stream the write-behind buffer. Called with f->mu held. */
static int flush_buf(struct mnt_file *f)
{
	if (f->werr)
		return f->werr;
	if (f->wlen == 0 || !f->w)
		return 0;
	int rc = cdl_writer_write(f->w, f->wbuf, f->wlen);
	f->wlen = 0;
	if (rc)
		f->werr = rc;
	return rc;
}

/* Re-apply times set while writing (tar and rsync set them before close;
 * completion would otherwise stamp the close time). */
static void apply_pending_times(struct mnt_file *f, fuse_req_t req)
{
	int64_t at, mt;
	uint32_t v = mnt_itab_take_times(&f->m->itab, f->in, &at, &mt);
	if (!v)
		return;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	struct mnt_cred cred;
	Caudal__SetAttrRequest rq = CAUDAL__SET_ATTR_REQUEST__INIT;
	t.ino = f->ino;
	if (req)
		mnt_cred(req, &cred);
	else
		caudal__cred__init(&cred.c); /* unmount: as root */
	rq.target = &t;
	rq.cred = &cred.c;
	rq.valid = v;
	rq.atime_ns = at;
	rq.mtime_ns = mt;
	mnt_acache_inval(&f->m->ac, f->ino);
	int rc = mnt_call_status(f->m, CDL_NN_SetAttr, &rq.base);
	if (rc)
		cdl_warn("cannot restore the times of inode %llu after closing it: %s",
			 (unsigned long long)f->ino, strerror(-rc));
}

/* Flush the buffer and complete the file, giving up the namenode's lease;
 * the next write re-takes it with Append. The handle keeps this mount's
 * writer slot until release: every close() of a dup of the descriptor
 * flushes, and the descriptors left open still own the file locally.
 * Called with f->mu held. */
static int finish_writer(struct mnt_file *f, fuse_req_t req)
{
	if (!f->w)
		return f->werr;
	int rc = flush_buf(f);
	if (rc) {
		cdl_writer_abort(f->w);
	} else {
		Caudal__Attr closed;
		rc = cdl_writer_close_attr(f->w, &closed);
		if (rc)
			f->werr = rc;
		else
			mnt_acache_put_attr(&f->m->ac, &closed);
	}
	f->w = NULL;
	f->unsynced = false;
	if (rc == 0)
		apply_pending_times(f, req);
	if (rc)
		cdl_err("cannot complete inode %llu: %s", (unsigned long long)f->ino,
			strerror(-rc));
	return rc;
}

/* The kernel's cached size or mtime of ino may be older than a (another
 * mount wrote the file): drop its cached attributes so reads are not cut
 * at a stale size. Only attributes: the page cache goes by keep_cache. */
static void refresh_kernel_attr(struct mnt *m, uint64_t ino)
{
	if (m->se)
		fuse_lowlevel_notify_inval_inode(m->se, ino, -1, 0);
}

/* Open an existing file for writing: take the lease with Append and, for
 * O_TRUNC, truncate under it. */
static int open_write(struct mnt_file *f, fuse_req_t req, int flags)
{
	mnt_acache_inval(&f->m->ac, f->ino); /* its size and times will move */
	struct mnt_cred cred;
	mnt_cred(req, &cred);
	Caudal__AttrReply *rep = NULL;
	int rc = lease_append(f, &cred.c, &rep);
	if (rc)
		return rc;
	if ((flags & O_TRUNC) && rep->attr->size > 0) {
		/* truncate to 0 as the lease holder, then write from 0 */
		cdl_writer_abort(f->w);
		f->w = NULL;
		Caudal__Target t = CAUDAL__TARGET__INIT;
		Caudal__SetAttrRequest rq = CAUDAL__SET_ATTR_REQUEST__INIT;
		t.ino = f->ino;
		rq.target = &t;
		rq.cred = &cred.c;
		rq.client = (char *)cdl_client_name(f->m->cl);
		rq.valid = CAUDAL__SET_ATTR_FIELD__SA_SIZE;
		rq.size = 0;
		Caudal__AttrReply *sr;
		rc = mnt_call(f->m, CDL_NN_SetAttr, &rq.base, (ProtobufCMessage **)&sr);
		if (rc == 0 && !sr->attr) {
			protobuf_c_message_free_unpacked(&sr->base, NULL);
			rc = -EIO;
		}
		if (rc == 0) {
			sr->attr->size = 0;
			rc = cdl_writer_open(f->m->cl, sr->attr, &f->w);
			protobuf_c_message_free_unpacked(&sr->base, NULL);
		}
		if (rc) {
			complete_empty(f->m, f->ino);
			mnt_itab_unset_writer(&f->m->itab, f->in, f);
		} else {
			f->wsize = 0;
			mnt_itab_set_wsize(&f->m->itab, f->in, 0);
		}
	}
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	return rc;
}

/* May the caller of req read inode ino? The namenode answers, with the
 * file's fresh attributes in *out (to free). The kernel has checked already
 * (default_permissions), but against attributes up to attr_timeout old, and
 * the reads that follow go with the mount's own credentials, so this is
 * where the caller's right to read is checked against the namespace as it
 * is. A GetBlocks of the first byte names at most one block, and for an
 * inline file brings its bytes, which the reader then serves without
 * asking again (one namenode round trip per small file); the namenode
 * checks read permission on the file (and search permission on the
 * directories above) for the Cred. */
static int may_read(struct mnt *m, fuse_req_t req, uint64_t ino, Caudal__GetBlocksReply **out)
{
	Caudal__Target t = CAUDAL__TARGET__INIT;
	struct mnt_cred cred;
	Caudal__GetBlocksRequest rq = CAUDAL__GET_BLOCKS_REQUEST__INIT;
	t.ino = ino;
	mnt_cred(req, &cred);
	rq.target = &t;
	rq.cred = &cred.c;
	rq.offset = 0;
	rq.length = 1;
	Caudal__GetBlocksReply *rep;
	int rc = mnt_call(m, CDL_NN_GetBlocks, &rq.base, (ProtobufCMessage **)&rep);
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

void mnt_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mnt *m = mnt_of(req);
	bool wr = (fi->flags & O_ACCMODE) != O_RDONLY;
	if (wr && m->opts->ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	struct mnt_file *f = file_new(m, ino, fi->flags);
	Caudal__GetBlocksReply *rep = NULL;
	int rc;
	if (wr) {
		/* O_RDWR: read permission first, before the lease is taken */
		rc = (fi->flags & O_ACCMODE) == O_RDWR ? may_read(m, req, ino, &rep) : 0;
		if (rep)
			protobuf_c_message_free_unpacked(&rep->base, NULL);
		if (rc == 0)
			rc = open_write(f, req, fi->flags);
		if (rc == 0)
			refresh_kernel_attr(m, ino);
	} else {
		/* close-to-open: fresh attributes decide about the page cache */
		rc = may_read(m, req, ino, &rep);
		if (rc == 0) {
			bool keep = mnt_itab_keep_cache(&m->itab, f->in, rep->attr);
			cdl_debug("open inode %llu for reading: size %llu, %s the page cache",
				  (unsigned long long)ino, (unsigned long long)rep->attr->size,
				  keep ? "keeping" : "dropping");
			fi->keep_cache = keep;
			if (!keep)
				refresh_kernel_attr(m, ino);
			if (cdl_reader_open_inline(m->cl, ino, rep, &f->r) != 0)
				protobuf_c_message_free_unpacked(&rep->base, NULL);
		}
	}
	if (rc) {
		file_free(f);
		/* the inode is gone (see op_getattr): the kernel looks again */
		if (rc == -ENOENT)
			mnt_acache_gone(&m->ac, ino); /* its event has not come yet */
		mnt_reply_err(req, rc == -ENOENT ? -ESTALE : rc);
		return;
	}
	fi->fh = (uintptr_t)f;
	if (fuse_reply_open(req, fi) != 0) {
		/* interrupted: the kernel will never release it */
		pthread_mutex_lock(&f->mu);
		finish_writer(f, NULL);
		pthread_mutex_unlock(&f->mu);
		file_free(f);
	}
}

void mnt_op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		   struct fuse_file_info *fi)
{
	struct mnt *m = mnt_of(req);
	if (m->opts->ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	Caudal__Target t = CAUDAL__TARGET__INIT;
	struct mnt_cred cred;
	Caudal__CreateRequest rq = CAUDAL__CREATE_REQUEST__INIT;
	t.parent = parent;
	t.name = (char *)name;
	mnt_cred(req, &cred);
	rq.target = &t;
	rq.cred = &cred.c;
	rq.mode = mode & 07777;
	rq.client = (char *)cdl_client_name(m->cl);
	rq.exclusive = (fi->flags & O_EXCL) != 0;
	rq.overwrite = (fi->flags & O_TRUNC) != 0;
	Caudal__Attr la;
	if (mnt_wb_create(m, parent, name, mode & 07777, &cred.c, &la) == 0) {
		/* made here; the namenode hears of it in a batch (mnt_wb.h) */
		struct mnt_file *f = file_new(m, la.ino, fi->flags);
		if (f->wr) {
			mnt_itab_set_writer(&m->itab, f->in, f, 0);
			f->pend = true;
		} else {
			mnt_wb_close(m, la.ino, NULL, 0); /* O_CREAT|O_RDONLY: empty, closed */
		}
		struct fuse_entry_param e;
		mnt_entry_ref(m, &la, &e);
		fi->fh = (uintptr_t)f;
		if (fuse_reply_create(req, &e, fi) != 0) {
			mnt_itab_forget(&m->itab, e.ino, 1);
			pthread_mutex_lock(&f->mu);
			if (f->pend)
				pend_close(f, NULL);
			pthread_mutex_unlock(&f->mu);
			file_free(f);
		}
		return;
	}
	Caudal__AttrReply *rep = NULL;
	mnt_dcache_begin(&m->dc, parent);
	int rc = mnt_call(m, CDL_NN_Create, &rq.base, (ProtobufCMessage **)&rep);
	mnt_note_made(m, parent, name, rc, rep);
	if (rc == 0 && !rep->attr) {
		protobuf_c_message_free_unpacked(&rep->base, NULL);
		rc = -EIO;
	}
	struct mnt_file *f = NULL;
	if (rc == -EEXIST && !(fi->flags & O_EXCL)) {
		/* created meanwhile by someone else: open the existing file */
		Caudal__GetAttrRequest gq = CAUDAL__GET_ATTR_REQUEST__INIT;
		gq.target = &t;
		gq.cred = &cred.c;
		rc = mnt_call(m, CDL_NN_GetAttr, &gq.base, (ProtobufCMessage **)&rep);
		if (rc == 0 && (!rep->attr || !S_ISREG(rep->attr->mode))) {
			rc = rep->attr && S_ISDIR(rep->attr->mode) ? -EISDIR : -EEXIST;
			protobuf_c_message_free_unpacked(&rep->base, NULL);
		}
		if (rc == 0) {
			f = file_new(m, rep->attr->ino, fi->flags);
			rc = f->wr ? open_write(f, req, fi->flags) : 0;
			if (rc) {
				protobuf_c_message_free_unpacked(&rep->base, NULL);
				file_free(f);
			}
		}
	} else if (rc == 0) {
		f = file_new(m, rep->attr->ino, fi->flags);
		/* O_CREAT|O_RDONLY still made the file: complete it at once */
		rc = f->wr ? start_writer(f, rep->attr) : complete_empty(m, rep->attr->ino);
		if (rc) {
			if (f->wr)
				complete_empty(m, rep->attr->ino);
			protobuf_c_message_free_unpacked(&rep->base, NULL);
			file_free(f);
		}
	}
	if (rc) {
		mnt_reply_err(req, rc);
		return;
	}
	mnt_itab_overlay(&m->itab, rep->attr);
	struct fuse_entry_param e;
	mnt_entry_ref(m, rep->attr, &e);
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	fi->fh = (uintptr_t)f;
	if (fuse_reply_create(req, &e, fi) != 0) {
		mnt_itab_forget(&m->itab, e.ino, 1);
		pthread_mutex_lock(&f->mu);
		finish_writer(f, NULL);
		pthread_mutex_unlock(&f->mu);
		file_free(f);
	}
}

/* ------------------------------------------------------------ writing */

/* Append n bytes to the handle's stream through the write-behind buffer.
 * Called with f->mu held and the writer open. */
static int put_bytes(struct mnt_file *f, const char *buf, size_t n)
{
	size_t cap = f->m->opts->write_buffer;
	if (f->wlen == 0 && (n >= DIRECT_WRITE || n >= cap)) {
		int rc = cdl_writer_write(f->w, buf, n);
		if (rc)
			f->werr = rc;
		return rc;
	}
	while (n > 0) {
		if (f->wlen == f->wcap) {
			if (f->wcap < cap) {
				size_t nc = f->wcap ? f->wcap * 2 : WBUF_MIN;
				while (nc < f->wlen + n && nc < cap)
					nc *= 2;
				f->wcap = nc < cap ? nc : cap;
				f->wbuf = xrealloc(f->wbuf, f->wcap);
			} else {
				int rc = flush_buf(f);
				if (rc)
					return rc;
			}
			continue;
		}
		size_t k = f->wcap - f->wlen < n ? f->wcap - f->wlen : n;
		memcpy(f->wbuf + f->wlen, buf, k);
		f->wlen += k;
		buf += k;
		n -= k;
	}
	if (f->wlen == cap)
		return flush_buf(f);
	return 0;
}

static int truncate_handle(struct mnt_file *f, fuse_req_t req, uint64_t size);

void mnt_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		  struct fuse_file_info *fi)
{
	(void)ino;
	struct mnt_file *f = fh_of(fi);
	int rc = 0;
	pthread_mutex_lock(&f->mu);
	if (!f->wr) {
		rc = -EBADF;
		goto out;
	}
	if (f->werr) {
		rc = f->werr;
		goto out;
	}
	if (f->pend && (rc = pend_resolve(f, false)) != 0)
		goto out;
	if (f->pend) {
		/* a new file still here: keep its bytes while it fits inline */
		uint64_t at = f->append ? f->wsize : (uint64_t)off;
		size_t need = f->wlen + size;
		if (at == f->wsize && need <= mnt_wb_inline_max(f->m) &&
		    need <= f->m->opts->write_buffer) {
			if (need > f->wcap) {
				size_t nc = f->wcap ? f->wcap : WBUF_MIN;
				while (nc < need)
					nc *= 2;
				f->wcap = nc;
				f->wbuf = xrealloc(f->wbuf, f->wcap);
			}
			memcpy(f->wbuf + f->wlen, buf, size);
			f->wlen = need;
			f->wsize = need;
			f->written = true;
			mnt_itab_set_wsize(&f->m->itab, f->in, f->wsize);
			goto out;
		}
		if ((rc = pend_resolve(f, true)) != 0)
			goto out;
	}
	if (!f->w) {
		/* written again after a flush completed it: append from its end */
		struct mnt_cred cred;
		mnt_cred(req, &cred);
		rc = lease_append(f, &cred.c, NULL);
		if (rc)
			goto out;
	}
	f->written = true;
	uint64_t at = f->append ? f->wsize : (uint64_t)off;
	if (at > f->wsize) {
		/* past the end (lseek, dd seek=): the gap becomes a hole */
		rc = truncate_handle(f, req, at);
		if (rc)
			goto out;
	}
	if (at != f->wsize) {
		if (!f->warned)
			cdl_warn("write at offset %llu of inode %llu refused: caudal files are "
				 "append-only (HDFS semantics) and this one ends at %llu",
				 (unsigned long long)at, (unsigned long long)f->ino,
				 (unsigned long long)f->wsize);
		f->warned = true;
		rc = -EOPNOTSUPP;
		goto out;
	}
	rc = put_bytes(f, buf, size);
	if (rc)
		goto out;
	f->wsize += size;
	f->unsynced = true;
	mnt_itab_set_wsize(&f->m->itab, f->in, f->wsize);
out:
	pthread_mutex_unlock(&f->mu);
	if (rc)
		mnt_reply_err(req, rc);
	else {
		cdl_series_add(mnt_m_bytes_written, size);
		fuse_reply_write(req, size);
	}
}

/* Push everything written so far to every replica and tell the namenode
 * the length (hsync). Called with f->mu held. */
static int sync_writer(struct mnt_file *f)
{
	if (!f->w)
		return f->werr;
	int rc = flush_buf(f);
	if (rc == 0 && f->unsynced) {
		rc = cdl_writer_sync(f->w);
		if (rc)
			f->werr = rc;
	}
	if (rc == 0)
		f->unsynced = false;
	return rc;
}

void mnt_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	struct mnt_file *f = fh_of(fi);
	pthread_mutex_lock(&f->mu);
	int rc = f->pend ? pend_resolve(f, true) : 0;
	if (rc == 0 && f->wr)
		rc = sync_writer(f);
	pthread_mutex_unlock(&f->mu);
	if (rc == 0 && mnt_wb_pending(f->m, ino))
		rc = mnt_wb_sync(f->m); /* closed here, not yet sent */
	mnt_reply_err(req, rc);
}

void mnt_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	struct mnt_file *f = fh_of(fi);
	int rc = 0;
	pthread_mutex_lock(&f->mu);
	if (f->pend) {
		rc = pend_close(f, req);
		f->werr = 0;
		pthread_mutex_unlock(&f->mu);
		mnt_reply_err(req, rc);
		return;
	}
	/* Nothing written through this handle (a create, touch, an open for
	 * writing that wrote nothing): there is nothing for close() to report,
	 * so the Complete waits for the release, which the kernel does not
	 * wait for. A create then costs close() no round trip. */
	bool idle = f->w && !f->written && !f->werr && !mnt_itab_has_times(&f->m->itab, f->in);
	if (f->wr && !idle) {
		rc = finish_writer(f, req);
		f->werr = 0; /* reported once, here; a later write starts afresh */
	}
	pthread_mutex_unlock(&f->mu);
	mnt_reply_err(req, rc);
}

void mnt_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	struct mnt_file *f = fh_of(fi);
	pthread_mutex_lock(&f->mu);
	if (f->pend)
		pend_close(f, req);
	if (f->w)
		finish_writer(f, req);
	pthread_mutex_unlock(&f->mu);
	file_free(f);
	fuse_reply_err(req, 0);
}

/* ------------------------------------------------------------ reading */

/* Fill the read-ahead buffer with up to want bytes at off. Called with
 * f->mu held and the reader open. Returns bytes now buffered at off (0 at
 * the end of the file) or -errno. */
static ssize_t fill(struct mnt_file *f, uint64_t off, size_t want)
{
	uint64_t size = cdl_reader_size(f->r);
	if (off >= size)
		return 0;
	if (want > size - off)
		want = (size_t)(size - off);
	if (want > f->rcap) {
		free(f->rbuf);
		f->rbuf = xmalloc(want);
		f->rcap = want;
	}
	f->rlen = 0;
	ssize_t k = cdl_reader_pread(f->r, f->rbuf, want, off);
	if (k < 0)
		return k;
	f->roff = off;
	f->rlen = (size_t)k;
	return k;
}

static void *ahead_main(void *arg)
{
	struct mnt_file *f = arg;
	ssize_t k = cdl_reader_pread(f->r, f->abuf, f->awant, f->aoff);
	pthread_mutex_lock(&f->mu);
	f->alen = k > 0 ? (size_t)k : 0;
	f->aerr = k < 0 ? (int)k : 0;
	f->adone = true;
	pthread_cond_broadcast(&f->acv);
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

/* A sequential reader of a read-only handle is taking rbuf: fetch what
 * follows it in the background, so the next fill costs no round trip.
 * f->mu held. Skipped when the mount's read-ahead budget is spent. */
static void ahead_start(struct mnt_file *f)
{
	struct mnt *m = f->m;
	uint64_t at = f->roff + f->rlen;
	size_t want = m->opts->readahead;
	if (f->abusy || f->wr || !f->r || !f->rseq || f->rlen == 0 || want == 0 ||
	    at >= cdl_reader_size(f->r))
		return;
	if (want > f->acap) {
		pthread_mutex_lock(&m->files_mu);
		bool ok = m->ahead_bytes - f->acap + want <= AHEAD_BUDGET;
		if (ok)
			m->ahead_bytes = m->ahead_bytes - f->acap + want;
		pthread_mutex_unlock(&m->files_mu);
		if (!ok)
			return;
		free(f->abuf);
		f->abuf = xmalloc(want);
		f->acap = want;
	}
	f->aoff = at;
	f->awant = want;
	f->adone = false;
	f->abusy = pthread_create(&f->ath, NULL, ahead_main, f) == 0;
}

/* Wait for the background read and take its bytes when they cover at;
 * true if rbuf now holds at. f->mu held. */
static bool ahead_take(struct mnt_file *f, uint64_t at)
{
	/* another request of this handle may take (and join) the thread
	 * while this one waits */
	while (f->abusy && !f->adone)
		pthread_cond_wait(&f->acv, &f->mu);
	if (!f->abusy)
		return false;
	pthread_join(f->ath, NULL);
	f->abusy = false;
	if (f->aerr || at < f->aoff || at >= f->aoff + f->alen)
		return false;
	char *b = f->rbuf;
	size_t cap = f->rcap;
	f->rbuf = f->abuf;
	f->rcap = f->acap;
	f->abuf = b;
	f->acap = cap;
	f->roff = f->aoff;
	f->rlen = f->alen;
	f->rseq = true;
	/* the swapped-in buffer may be smaller: keep the budget exact */
	pthread_mutex_lock(&f->m->files_mu);
	f->m->ahead_bytes = f->m->ahead_bytes - f->rcap + f->acap;
	pthread_mutex_unlock(&f->m->files_mu);
	return true;
}

void mnt_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	struct mnt_file *f = fh_of(fi);
	struct mnt *m = f->m;
	char *out = NULL;
	int rc = 0;
	size_t done = 0;
	uint64_t o = (uint64_t)off;
	pthread_mutex_lock(&f->mu);
	if (f->pend && (rc = pend_resolve(f, true)) != 0)
		goto out;
	if (f->wr && f->unsynced && f->w) {
		/* reading back what this handle wrote: make it readable first */
		rc = sync_writer(f);
		if (rc == 0 && f->r)
			rc = cdl_reader_refresh(f->r);
		f->rlen = 0;
		if (rc)
			goto out;
	}
	if (!f->r) {
		rc = cdl_reader_open(m->cl, f->ino, &f->r);
		if (rc)
			goto out;
	}
	/* fast path: the whole request is in the buffer */
	if (o >= f->roff && o + size <= f->roff + f->rlen) {
		f->rnext = o + size;
		cdl_series_add(mnt_m_bytes_read, size);
		fuse_reply_buf(req, f->rbuf + (o - f->roff), size);
		ahead_start(f);
		pthread_mutex_unlock(&f->mu);
		return;
	}
	bool seq = o == f->rnext || (o >= f->roff && o <= f->roff + f->rlen);
	out = xmalloc(size ? size : 1);
	while (done < size) {
		uint64_t at = o + done;
		if (at >= f->roff && at < f->roff + f->rlen) {
			size_t k = (size_t)(f->roff + f->rlen - at);
			if (k > size - done)
				k = size - done;
			memcpy(out + done, f->rbuf + (at - f->roff), k);
			done += k;
			continue;
		}
		if (ahead_take(f, at))
			continue;
		size_t want = size - done;
		if (seq && want < m->opts->readahead)
			want = m->opts->readahead;
		ssize_t k = fill(f, at, want);
		if (k < 0) {
			rc = (int)k;
			break;
		}
		f->rseq = seq;
		if (k == 0)
			break;
	}
	f->rnext = o + done;
	if (rc == 0 && seq)
		ahead_start(f);
out:
	pthread_mutex_unlock(&f->mu);
	if (rc && done == 0) {
		mnt_reply_err(req, rc);
	} else {
		cdl_series_add(mnt_m_bytes_read, done);
		fuse_reply_buf(req, out, done);
	}
	free(out);
}

/* ------------------------------------------------------------ truncate */

/* Truncate through an open write handle. f->mu held. Growing records a
 * hole in the namenode (nothing is written, whatever the size); like a
 * shrink it first completes what is written, since the hole follows the
 * file's settled bytes. */
static int truncate_handle(struct mnt_file *f, fuse_req_t req, uint64_t size)
{
	struct mnt_cred cred;
	mnt_cred(req, &cred);
	int rc;
	if (f->pend && (rc = pend_resolve(f, true)) != 0)
		return rc;
	if (f->werr)
		return f->werr;
	f->written = true;
	if (!f->w && (rc = lease_append(f, &cred.c, NULL)) != 0)
		return rc;
	if (size == f->wsize)
		return 0;
	/* complete what is written (finalizing its last block), cut or grow
	 * it, and take the lease again to go on writing */
	rc = finish_writer(f, req);
	if (rc)
		return rc;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	Caudal__SetAttrRequest rq = CAUDAL__SET_ATTR_REQUEST__INIT;
	t.ino = f->ino;
	rq.target = &t;
	rq.cred = &cred.c;
	rq.client = (char *)cdl_client_name(f->m->cl);
	rq.valid = CAUDAL__SET_ATTR_FIELD__SA_SIZE;
	rq.size = size;
	rc = mnt_call_status(f->m, CDL_NN_SetAttr, &rq.base);
	if (rc == -EOPNOTSUPP) {
		/* an inline file grown past the inline limit: its bytes move
		 * into a block first, then the growth is a hole */
		if ((rc = lease_append(f, &cred.c, NULL)) != 0)
			return rc;
		if ((rc = cdl_writer_spill(f->w)) != 0)
			f->werr = rc;
		if ((rc = finish_writer(f, req)) != 0)
			return rc;
		rc = mnt_call_status(f->m, CDL_NN_SetAttr, &rq.base);
	}
	if (rc)
		return rc;
	f->wsize = size;
	mnt_itab_set_wsize(&f->m->itab, f->in, f->wsize);
	return lease_append(f, &cred.c, NULL);
}

int mnt_file_truncate(struct mnt *m, fuse_req_t req, uint64_t ino, uint64_t size,
		      struct fuse_file_info *fi)
{
	struct mnt_file *f = fi ? fh_of(fi) : NULL;
	int rc;
	mnt_acache_inval(&m->ac, ino);
	if (f && f->wr && f->ino == ino) {
		pthread_mutex_lock(&f->mu);
		rc = truncate_handle(f, req, size);
		pthread_mutex_unlock(&f->mu);
		mnt_itab_cache_drop(&m->itab, ino);
		return rc;
	}
	Caudal__Target t = CAUDAL__TARGET__INIT;
	struct mnt_cred cred;
	Caudal__SetAttrRequest rq = CAUDAL__SET_ATTR_REQUEST__INIT;
	t.ino = ino;
	mnt_cred(req, &cred);
	rq.target = &t;
	rq.cred = &cred.c;
	rq.valid = CAUDAL__SET_ATTR_FIELD__SA_SIZE;
	rq.size = size;
	rc = mnt_call_status(m, CDL_NN_SetAttr, &rq.base);
	if (rc == -EOPNOTSUPP) {
		/* an inline file grown past the inline limit: through a
		 * handle of our own, which moves its bytes into a block */
		struct mnt_file *tf = file_new(m, ino, O_WRONLY);
		pthread_mutex_lock(&tf->mu);
		rc = truncate_handle(tf, req, size);
		int e = finish_writer(tf, req);
		pthread_mutex_unlock(&tf->mu);
		file_free(tf);
		if (rc == 0)
			rc = e;
	}
	mnt_itab_cache_drop(&m->itab, ino);
	return rc;
}

/* ------------------------------------------------------------ unmount */

static void close_one(struct mnt_file *f, void *arg)
{
	(void)arg;
	pthread_mutex_lock(&f->mu);
	int rc = f->pend ? pend_close(f, NULL) : finish_writer(f, NULL);
	pthread_mutex_unlock(&f->mu);
	if (rc == 0)
		cdl_info("completed inode %llu, still open at unmount", (unsigned long long)f->ino);
}

void mnt_file_close_all(struct mnt *m)
{
	mnt_itab_each_writer(&m->itab, close_one, NULL);
	/* the kernel sends no release for handles still open at unmount: the
	 * session is over, so free them here */
	while (m->files)
		file_free(m->files);
}
