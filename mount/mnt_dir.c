/* mnt_dir: readdir and readdirplus over the namenode's paged Readdir. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cdl_log.h"
#include "cdl_util.h"
#include "mnt_dir.h"
#include "mnt_wb.h"

#define PAGE_ENTRIES 1024 /* entries asked per Readdir call */

struct dent {
	char *name;
	struct stat st;
};

struct mnt_dir {
	pthread_mutex_t mu;
	uint64_t ino;
	struct dent *ents; /* [0] ".", [1] "..", then names in order */
	size_t n, cap;
	bool eof;    /* the namenode has no more after the last one */
	char *after; /* last name fetched */
};

static struct mnt_dir *dh_of(struct fuse_file_info *fi)
{
	return (struct mnt_dir *)(uintptr_t)fi->fh;
}

static void add(struct mnt_dir *d, const char *name, const struct stat *st)
{
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 64;
		d->ents = xrealloc(d->ents, d->cap * sizeof(*d->ents));
	}
	d->ents[d->n].name = xstrdup(name);
	d->ents[d->n].st = *st;
	d->n++;
}

static void reset(struct mnt_dir *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->ents[i].name);
	d->n = 0;
	d->eof = false;
	free(d->after);
	d->after = NULL;
}

/* Fetch the next page of entries. Called with d->mu held. */
static int fetch(struct mnt *m, fuse_req_t req, struct mnt_dir *d)
{
	Caudal__Target t = CAUDAL__TARGET__INIT;
	struct mnt_cred cred;
	Caudal__ReaddirRequest rq = CAUDAL__READDIR_REQUEST__INIT;
	t.ino = d->ino;
	mnt_cred(req, &cred);
	rq.target = &t;
	rq.cred = &cred.c;
	rq.after = d->after ? d->after : "";
	rq.limit = PAGE_ENTRIES;
	Caudal__ReaddirReply *rep;
	int rc = mnt_call(m, CDL_NN_Readdir, &rq.base, (ProtobufCMessage **)&rep);
	if (rc)
		return rc;
	if (d->n == 0) {
		struct stat st;
		memset(&st, 0, sizeof(st));
		st.st_ino = d->ino;
		st.st_mode = S_IFDIR;
		add(d, ".", &st);
		st.st_ino =
		    FUSE_ROOT_ID; /* the parent is not known here; any non-zero ino shows it */
		add(d, "..", &st);
	}
	for (size_t i = 0; i < rep->n_entries; i++) {
		Caudal__Dirent *e = rep->entries[i];
		if (!e->name || !e->attr)
			continue;
		struct stat st;
		mnt_acache_put_attr(&m->ac, e->attr);
		mnt_acache_put_name(&m->ac, d->ino, e->name, e->attr->ino, e->attr->txid);
		mnt_itab_overlay(&m->itab, e->attr);
		mnt_attr_to_stat(e->attr, &st);
		add(d, e->name, &st);
	}
	if (rep->n_entries > 0) {
		free(d->after);
		d->after = xstrdup(rep->entries[rep->n_entries - 1]->name);
	}
	d->eof = !rep->more || rep->n_entries == 0;
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	return 0;
}

void mnt_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mnt_dir *d = xcalloc(1, sizeof(*d));
	pthread_mutex_init(&d->mu, NULL);
	d->ino = ino;
	fi->fh = (uintptr_t)d;
	if (fuse_reply_open(req, fi) != 0) {
		pthread_mutex_destroy(&d->mu);
		free(d);
	}
}

static bool is_dot(const char *name)
{
	return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

static void do_readdir(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi, bool plus)
{
	struct mnt *m = mnt_of(req);
	struct mnt_dir *d = dh_of(fi);
	char *buf = xmalloc(size ? size : 1);
	size_t pos = 0;
	int rc = 0;
	pthread_mutex_lock(&d->mu);
	if (off == 0 && d->n > 0)
		reset(d); /* rewinddir: list afresh */
	for (size_t i = (size_t)off;;) {
		if (i >= d->n) {
			if (d->n > 0 && d->eof)
				break;
			rc = fetch(m, req, d);
			if (rc)
				break;
			if (i >= d->n && d->eof)
				break;
			continue;
		}
		const struct dent *e = &d->ents[i];
		size_t sz;
		if (plus) {
			struct fuse_entry_param ep;
			memset(&ep, 0, sizeof(ep));
			ep.attr = e->st;
			if (!is_dot(e->name)) {
				ep.ino = e->st.st_ino;
				ep.attr_timeout = m->opts->attr_timeout;
				ep.entry_timeout = m->opts->entry_timeout;
			}
			sz = fuse_add_direntry_plus(req, buf + pos, size - pos, e->name, &ep,
						    (off_t)(i + 1));
			if (sz > size - pos)
				break;
			if (ep.ino)
				mnt_itab_ref(&m->itab, ep.ino, 1);
		} else {
			sz = fuse_add_direntry(req, buf + pos, size - pos, e->name, &e->st,
					       (off_t)(i + 1));
			if (sz > size - pos)
				break;
		}
		pos += sz;
		i++;
	}
	pthread_mutex_unlock(&d->mu);
	if (rc && pos == 0)
		mnt_reply_err(req, rc);
	else
		fuse_reply_buf(req, buf, pos);
	free(buf);
}

void mnt_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	(void)ino;
	do_readdir(req, size, off, fi, false);
}

void mnt_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	(void)ino;
	do_readdir(req, size, off, fi, true);
}

void mnt_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	struct mnt_dir *d = dh_of(fi);
	reset(d);
	free(d->ents);
	pthread_mutex_destroy(&d->mu);
	free(d);
	fuse_reply_err(req, 0);
}

void mnt_op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	/* namespace changes are durable when answered; files made here
	 * (mnt_wb.h) are answered before the namenode has them */
	mnt_reply_err(req, mnt_wb_sync(mnt_of(req)));
}
