/* dn_store: the block store of a datanode's data directories. See dn_store.h. */
#include "dn_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "cdl_checksum.h"
#include "cdl_log.h"
#include "cdl_metrics.h"
#include "cdl_util.h"

#define NSUB 64
/* Placement counts this many bytes for each replica being written on a
 * volume (HDFS reserves a block per rbw replica): concurrent writers
 * spread over volumes of equal room. */
#define RBW_ALLOWANCE (128ull << 20)
#define PROBE_BYTES   4096

/* A finalized replica in the map, chained by block id. */
typedef struct rep {
	uint64_t id, gen, len;
	dn_vol *v;
	struct rep *next;
} rep;

struct dn_vol {
	dn_store *s;
	char *dir;
	int lockfd;
	pthread_mutex_t ck; /* one probe at a time */
	/* under s->mu */
	bool failed;
	bool full;     /* takes no new replicas */
	uint64_t need; /* full after an ENOSPC: the bytes that did not fit */
	int writers;   /* replicas being written here */
	size_t count;  /* finalized replicas */
	uint64_t used; /* their bytes and sidecars' */
};

struct dn_wr {
	dn_store *s;
	dn_vol *v;
	uint64_t id, gen;
	int fd;		 /* data file in tmp/ */
	int sfd;	 /* .sync file, -1 until the first hsync */
	char *path;	 /* tmp data path */
	uint64_t len;	 /* bytes appended; read by rbw readers (atomic) */
	uint64_t synced; /* bytes made durable by hsync */
	uint64_t *sums;	 /* checksums of the complete chunks */
	size_t nsums, cap;
	uint8_t *cbuf; /* bytes of the chunk being filled */
	size_t clen;
	bool superseded; /* a newer writer of the block exists (under s->mu) */
	/* Under s->mu: parked while its writer went away and a recovery may
	 * take it; each park has a ticket, and taken is the ticket of the last
	 * park a recovery took it from. */
	bool parked;
	uint64_t park_ticket, taken;
	dn_wr *next; /* s->rbw list */
};

struct dn_store {
	char *dirs; /* as configured */
	dn_vol **vols;
	size_t nvols;
	uint64_t reserved;
	int tolerated;
	void (*on_fatal)(void *);
	void *fatal_ctx;
	char *id;
	char *cluster;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* parked and claimed writers (CLOCK_MONOTONIC) */
	rep **tab;	   /* hash of finalized replicas by id */
	size_t nb, count;
	uint64_t used;	 /* bytes of finalized data and sidecars */
	dn_wr *rbw;	 /* replicas being written */
	uint64_t serial; /* makes tmp names unique */
	dn_store_listener fn;
	void *ctx;
	int nfailed;	  /* under mu */
	bool fatal;	  /* on_fatal called (under mu) */
	bool none_logged; /* "no directory can take a replica" said (under mu) */
	/* the disk checker thread */
	int check_ms;
	bool ck_started, ck_stop; /* ck_stop under ck_mu */
	pthread_t ck_thr;
	pthread_mutex_t ck_mu;
	pthread_cond_t ck_cv;
};

/* ---------------------------------------------------------------- helpers */

static uint64_t sidecar_size(uint64_t len)
{
	return (len + CDL_CHUNK - 1) / CDL_CHUNK * 8;
}

static char *fin_path(const dn_vol *v, uint64_t id, uint64_t gen, const char *suffix)
{
	return xasprintf("%s/current/%02x/blk_%" PRIu64 "_%" PRIu64 "%s", v->dir,
			 (unsigned)(id % NSUB), id, gen, suffix);
}

static void emit(dn_store *s, enum dn_event ev, uint64_t id, uint64_t gen, uint64_t len)
{
	if (s->fn)
		s->fn(s->ctx, ev, id, gen, len);
}

static int fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

/* Write a small file atomically (tmp, fsync, rename). */
static int write_small_file(const char *path, const char *text)
{
	char *tmp = xasprintf("%s.tmp", path);
	int rc = 0;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		goto out_free;
	}
	rc = cdl_write_full(fd, text, strlen(text));
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	close(fd);
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0)
		unlink(tmp);
out_free:
	free(tmp);
	return rc;
}

/* Read a one-line file into a fresh string without the newline; NULL if
 * absent or unreadable. */
static char *read_line_file(const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return NULL;
	char buf[256];
	char *r = fgets(buf, sizeof(buf), f);
	fclose(f);
	if (!r)
		return NULL;
	buf[strcspn(buf, "\r\n")] = '\0';
	return xstrdup(buf);
}

static int write_sidecar(const char *path, const uint64_t *sums, size_t n, bool sync)
{
	uint8_t *b = xmalloc(n * 8 + 1);
	for (size_t i = 0; i < n; i++)
		for (int k = 0; k < 8; k++)
			b[i * 8 + k] = (uint8_t)(sums[i] >> (8 * k));
	int rc = 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	rc = cdl_write_full(fd, b, n * 8);
	if (rc == 0 && sync && fdatasync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
out:
	free(b);
	return rc;
}

/* ---------------------------------------------------------------- map (under mu) */

static size_t slot(const dn_store *s, uint64_t id)
{
	uint64_t h = id * 0x9E3779B97F4A7C15ull;
	return (size_t)(h >> 32) & (s->nb - 1);
}

static rep *map_find(const dn_store *s, uint64_t id)
{
	for (rep *r = s->tab[slot(s, id)]; r; r = r->next)
		if (r->id == id)
			return r;
	return NULL;
}

static void map_grow(dn_store *s)
{
	size_t onb = s->nb;
	rep **ot = s->tab;
	s->nb = onb * 2;
	s->tab = xcalloc(s->nb, sizeof(*s->tab));
	for (size_t i = 0; i < onb; i++) {
		rep *r = ot[i];
		while (r) {
			rep *n = r->next;
			size_t k = slot(s, r->id);
			r->next = s->tab[k];
			s->tab[k] = r;
			r = n;
		}
	}
	free(ot);
}

static rep *map_insert(dn_store *s, dn_vol *v, uint64_t id, uint64_t gen, uint64_t len)
{
	if (s->count >= s->nb)
		map_grow(s);
	rep *r = xcalloc(1, sizeof(*r));
	r->id = id;
	r->gen = gen;
	r->len = len;
	r->v = v;
	size_t k = slot(s, id);
	r->next = s->tab[k];
	s->tab[k] = r;
	s->count++;
	s->used += len + sidecar_size(len);
	v->count++;
	v->used += len + sidecar_size(len);
	return r;
}

static void map_remove(dn_store *s, rep *victim)
{
	for (rep **pp = &s->tab[slot(s, victim->id)]; *pp; pp = &(*pp)->next) {
		if (*pp == victim) {
			*pp = victim->next;
			s->count--;
			s->used -= victim->len + sidecar_size(victim->len);
			victim->v->count--;
			victim->v->used -= victim->len + sidecar_size(victim->len);
			free(victim);
			return;
		}
	}
}

static void unlink_replica(const dn_vol *v, uint64_t id, uint64_t gen)
{
	char *p = fin_path(v, id, gen, "");
	char *q = fin_path(v, id, gen, ".xxh");
	unlink(p);
	unlink(q);
	free(p);
	free(q);
}

/* Move a replica's files (data and sidecar, whichever exist) to corrupt/. */
static void move_aside(const dn_vol *v, const char *data, const char *side, uint64_t id,
		       uint64_t gen)
{
	char *d = xasprintf("%s/corrupt/blk_%" PRIu64 "_%" PRIu64, v->dir, id, gen);
	char *x = xasprintf("%s.xxh", d);
	if (rename(data, d) < 0 && errno != ENOENT)
		unlink(data);
	if (rename(side, x) < 0 && errno != ENOENT)
		unlink(side);
	free(d);
	free(x);
}

/* ---------------------------------------------------------------- volume states */

/* Errors that may mean the disk itself is gone bad (checked by a probe). */
static bool io_fault(int rc)
{
	return rc == -EIO || rc == -EROFS || rc == -EUCLEAN || rc == -ENODEV || rc == -ENXIO ||
	       rc == -ENOTCONN;
}

static bool no_space(int rc)
{
	return rc == -ENOSPC || rc == -EDQUOT;
}

/* A probe that fails for want of a process resource says nothing of the
 * disk. */
static bool inconclusive(int rc)
{
	return rc == -EMFILE || rc == -ENFILE || rc == -ENOMEM || rc == -EINTR || rc == -EAGAIN;
}

/* Bytes free to a new replica on v, and the volume's size; -errno. */
static int vol_room(const dn_vol *v, uint64_t *avail, uint64_t *total)
{
	struct statvfs f;
	if (statvfs(v->dir, &f) < 0)
		return -errno;
	*avail = (uint64_t)f.f_bavail * f.f_frsize;
	*total = (uint64_t)f.f_blocks * f.f_frsize;
	if (f.f_files > 0 && f.f_favail == 0)
		*avail = 0; /* no inode left: no file either */
	return 0;
}

/* Called with s->mu held: v is full from now on, said once. */
static void set_full(dn_vol *v, uint64_t need, const char *why)
{
	if (v->need < need)
		v->need = need;
	if (v->full)
		return;
	v->full = true;
	cdl_warn("data dir '%s' is full (%s): it takes no new replicas until space is freed",
		 v->dir, why);
}

/* Called with s->mu held after a look at v's free space: full at or below
 * the reserve; a full volume takes replicas again once the reserve and
 * whatever did not fit there are free. */
static void refresh_full(dn_vol *v, uint64_t avail)
{
	dn_store *s = v->s;
	if (v->failed)
		return;
	if (avail <= s->reserved) {
		char why[96];
		snprintf(why, sizeof(why), "%" PRIu64 " bytes free, reserve %" PRIu64, avail,
			 s->reserved);
		set_full(v, 0, why);
	} else if (v->full && avail - s->reserved > v->need) {
		v->full = false;
		v->need = 0;
		cdl_info("data dir '%s' has room again (%" PRIu64 " bytes free): it takes new "
			 "replicas",
			 v->dir, avail);
	}
}

/* Write, sync and read back a small file in v, and see that current/ is
 * there: 0, or the error. */
static int vol_probe(const dn_vol *v)
{
	char *cur = xasprintf("%s/current", v->dir);
	char *p = xasprintf("%s/disk_check", v->dir);
	uint8_t *b = xmalloc(2 * PROBE_BYTES);
	uint64_t seed = (uint64_t)cdl_wall_ns();
	for (size_t i = 0; i < PROBE_BYTES; i++)
		b[i] = (uint8_t)((seed >> (8 * (i % 8))) ^ i);
	struct stat st;
	int rc = 0;
	if (stat(cur, &st) < 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISDIR(st.st_mode)) {
		rc = -ENOTDIR;
		goto out;
	}
	int fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	rc = cdl_write_full(fd, b, PROBE_BYTES);
	if (rc == 0 && fdatasync(fd) < 0)
		rc = -errno;
	if (rc == 0) {
		ssize_t r = pread(fd, b + PROBE_BYTES, PROBE_BYTES, 0);
		if (r < 0)
			rc = -errno;
		else if (r != PROBE_BYTES || memcmp(b, b + PROBE_BYTES, PROBE_BYTES) != 0)
			rc = -EIO;
	}
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (unlink(p) < 0 && rc == 0)
		rc = -errno;
out:
	free(b);
	free(p);
	free(cur);
	return rc;
}

/* Take v out of service for good: its replicas leave the map and are
 * reported deleted, its writers are cut off. Past the tolerated count the
 * store's on_fatal hook is called. */
static void vol_fail(dn_vol *v, const char *why)
{
	dn_store *s = v->s;
	pthread_mutex_lock(&s->mu);
	if (v->failed) {
		pthread_mutex_unlock(&s->mu);
		return;
	}
	v->failed = true;
	s->nfailed++;
	size_t n = 0;
	dn_replica_info *lost = xmalloc((v->count + 1) * sizeof(*lost));
	for (size_t i = 0; i < s->nb; i++) {
		rep *r = s->tab[i];
		while (r) {
			rep *next = r->next;
			if (r->v == v) {
				lost[n++] = (dn_replica_info){r->id, r->gen, r->len};
				map_remove(s, r);
			}
			r = next;
		}
	}
	for (dn_wr *w = s->rbw; w; w = w->next)
		if (w->v == v)
			w->superseded = true;
	pthread_cond_broadcast(&s->cv); /* parked writers there give up */
	if (v->lockfd >= 0)
		close(v->lockfd); /* lets the disk be unmounted */
	v->lockfd = -1;
	int healthy = (int)s->nvols - s->nfailed;
	bool fatal = !s->fatal && (s->nfailed > s->tolerated || healthy == 0);
	if (fatal)
		s->fatal = true;
	void (*hook)(void *) = s->on_fatal;
	void *hctx = s->fatal_ctx;
	pthread_mutex_unlock(&s->mu);
	cdl_err("data dir '%s' failed (%s): taken out of service; its %zu replicas are reported "
		"lost",
		v->dir, why, n);
	for (size_t i = 0; i < n; i++)
		emit(s, DN_EV_DELETED, lost[i].id, lost[i].gen, lost[i].len);
	free(lost);
	if (fatal) {
		cdl_err("%d of %zu data dirs failed, more than failed_volumes_tolerated (%d): the "
			"datanode cannot go on",
			s->nfailed, s->nvols, s->tolerated);
		if (hook)
			hook(hctx);
	}
}

/* Probe v; a failed probe fails v. Returns the probe's result (a full
 * volume's ENOSPC is no failure: 0). */
static int vol_check(dn_vol *v, const char *after)
{
	dn_store *s = v->s;
	pthread_mutex_lock(&v->ck);
	pthread_mutex_lock(&s->mu);
	bool failed = v->failed;
	pthread_mutex_unlock(&s->mu);
	int rc = failed ? -EIO : vol_probe(v);
	if (!failed && no_space(rc)) {
		pthread_mutex_lock(&s->mu);
		set_full(v, PROBE_BYTES, strerror(-rc));
		pthread_mutex_unlock(&s->mu);
		rc = 0;
	} else if (!failed && inconclusive(rc)) {
		cdl_warn("data dir '%s': probe inconclusive: %s", v->dir, strerror(-rc));
	} else if (!failed && rc < 0) {
		char why[192];
		snprintf(why, sizeof(why), "%s%sprobe: %s", after ? after : "", after ? "; " : "",
			 strerror(-rc));
		vol_fail(v, why);
	} else if (!failed) {
		uint64_t avail = 0, total = 0;
		if (vol_room(v, &avail, &total) == 0) {
			pthread_mutex_lock(&s->mu);
			refresh_full(v, avail);
			pthread_mutex_unlock(&s->mu);
		}
	}
	pthread_mutex_unlock(&v->ck);
	return rc;
}

/* An operation on v failed with rc (called without s->mu): no space makes
 * v full (need: the bytes the replica wanted); an I/O error has v
 * probed. */
static void vol_error(dn_vol *v, int rc, uint64_t need, const char *what)
{
	if (!v)
		return;
	if (no_space(rc)) {
		char why[128];
		snprintf(why, sizeof(why), "%s: %s", what, strerror(-rc));
		pthread_mutex_lock(&v->s->mu);
		set_full(v, need, why);
		pthread_mutex_unlock(&v->s->mu);
	} else if (io_fault(rc)) {
		char after[128];
		snprintf(after, sizeof(after), "%s: %s", what, strerror(-rc));
		vol_check(v, after);
	}
}

/* ---------------------------------------------------------------- scan at start */

/* Add one finalized replica found on disk, keeping the newest generation. */
static void scan_add(dn_vol *v, const char *sub, uint64_t id, uint64_t gen)
{
	dn_store *s = v->s;
	char *data = xasprintf("%s/blk_%" PRIu64 "_%" PRIu64, sub, id, gen);
	char *side = xasprintf("%s.xxh", data);
	struct stat st, sx;
	if (stat(data, &st) < 0 || !S_ISREG(st.st_mode))
		goto out;
	if ((unsigned)(id % NSUB) != (unsigned)strtoul(strrchr(sub, '/') + 1, NULL, 16) ||
	    stat(side, &sx) < 0 || (uint64_t)sx.st_size != sidecar_size((uint64_t)st.st_size)) {
		cdl_warn("replica 'blk_%" PRIu64 "_%" PRIu64 "' has no matching checksum file; "
			 "moved to corrupt/",
			 id, gen);
		move_aside(v, data, side, id, gen);
		goto out;
	}
	rep *r = map_find(s, id);
	if (r && r->gen >= gen) {
		cdl_info("dropping replica 'blk_%" PRIu64 "_%" PRIu64 "': generation %" PRIu64
			 " is held",
			 id, gen, r->gen);
		unlink(data);
		unlink(side);
		goto out;
	}
	if (r) {
		cdl_info("dropping replica 'blk_%" PRIu64 "_%" PRIu64 "': generation %" PRIu64
			 " is newer",
			 id, r->gen, gen);
		unlink_replica(r->v, id, r->gen);
		map_remove(s, r);
	}
	map_insert(s, v, id, gen, (uint64_t)st.st_size);
out:
	free(data);
	free(side);
}

static int scan_current(dn_vol *v)
{
	for (unsigned i = 0; i < NSUB; i++) {
		char *sub = xasprintf("%s/current/%02x", v->dir, i);
		int rc = cdl_mkdirs(sub);
		if (rc < 0) {
			cdl_err("cannot create '%s': %s", sub, strerror(-rc));
			free(sub);
			return rc;
		}
		DIR *d = opendir(sub);
		if (!d) {
			rc = -errno;
			cdl_err("cannot open '%s': %s", sub, strerror(errno));
			free(sub);
			return rc;
		}
		struct dirent *de;
		while ((de = readdir(d))) {
			uint64_t id, gen;
			int n = 0;
			if (sscanf(de->d_name, "blk_%" SCNu64 "_%" SCNu64 "%n", &id, &gen, &n) != 2)
				continue;
			if (de->d_name[n] == '\0') {
				scan_add(v, sub, id, gen);
			} else if (!strcmp(de->d_name + n, ".xxh")) {
				/* a sidecar whose data file is gone */
				char *data = xasprintf("%s/blk_%" PRIu64 "_%" PRIu64, sub, id, gen);
				if (access(data, F_OK) < 0 && errno == ENOENT) {
					char *side = xasprintf("%s.xxh", data);
					unlink(side);
					free(side);
				}
				free(data);
			}
		}
		closedir(d);
		free(sub);
	}
	return 0;
}

/* Recompute the checksums of the first len bytes of fd. */
static int checksum_file(int fd, uint64_t len, uint64_t **sums, size_t *n)
{
	size_t cnt = (size_t)((len + CDL_CHUNK - 1) / CDL_CHUNK);
	uint64_t *v = xmalloc((cnt + 1) * sizeof(*v));
	uint8_t *buf = xmalloc(CDL_CHUNK);
	int rc = 0;
	for (size_t i = 0; i < cnt; i++) {
		uint64_t off = (uint64_t)i * CDL_CHUNK;
		size_t k = len - off < CDL_CHUNK ? (size_t)(len - off) : CDL_CHUNK;
		ssize_t r = pread(fd, buf, k, (off_t)off);
		if (r != (ssize_t)k) {
			rc = r < 0 ? -errno : -EIO;
			break;
		}
		v[i] = cdl_xxh3(buf, k);
	}
	free(buf);
	if (rc < 0) {
		free(v);
		return rc;
	}
	*sums = v;
	*n = cnt;
	return 0;
}

/* Install a fully written tmp data file as finalized replica (id, gen):
 * write its sidecar, sync if asked, rename both into current/ and update
 * the map. Takes s->mu itself. If w is given it must still be the block's
 * current writer and is unlinked from the rbw list. */
static int install(dn_store *s, dn_vol *v, dn_wr *w, const char *tmp, uint64_t id, uint64_t gen,
		   uint64_t len, const uint64_t *sums, size_t nsums, bool sync)
{
	char *tside = xasprintf("%s.xxh", tmp);
	char *data = fin_path(v, id, gen, "");
	char *side = fin_path(v, id, gen, ".xxh");
	uint64_t old_gen = 0;
	bool replaced = false;
	int rc = write_sidecar(tside, sums, nsums, sync);
	if (rc < 0) {
		cdl_err("cannot write checksums '%s': %s", tside, strerror(-rc));
		vol_error(v, rc, len + sidecar_size(len), "writing checksums");
		goto out;
	}
	pthread_mutex_lock(&s->mu);
	if (w) {
		for (dn_wr **pp = &s->rbw; *pp; pp = &(*pp)->next)
			if (*pp == w) {
				*pp = w->next;
				break;
			}
		if (w->superseded) {
			pthread_mutex_unlock(&s->mu);
			rc = v->failed ? -EIO : -ESTALE;
			goto out;
		}
	}
	if (v->failed) {
		pthread_mutex_unlock(&s->mu);
		rc = -EIO;
		goto out;
	}
	rep *r = map_find(s, id);
	if (r && r->gen > gen) {
		pthread_mutex_unlock(&s->mu);
		rc = -ESTALE;
		goto out;
	}
	if (rename(tmp, data) < 0 || rename(tside, side) < 0) {
		rc = -errno;
		pthread_mutex_unlock(&s->mu);
		cdl_err("cannot finalize replica '%s': %s", data, strerror(-rc));
		unlink(data);
		vol_error(v, rc, len + sidecar_size(len), "finalizing a replica");
		goto out;
	}
	if (r) {
		/* the same generation in another volume (a recovery that
		 * reopened it there is not this): the old files go */
		if (r->gen != gen || r->v != v) {
			old_gen = r->gen;
			replaced = r->gen != gen;
			unlink_replica(r->v, id, r->gen);
		}
		map_remove(s, r);
	}
	map_insert(s, v, id, gen, len);
	pthread_mutex_unlock(&s->mu);
	if (replaced)
		cdl_info("replica 'blk_%" PRIu64 "_%" PRIu64 "' replaces generation %" PRIu64, id,
			 gen, old_gen);
	if (sync) {
		char *sub = xasprintf("%s/current/%02x", v->dir, (unsigned)(id % NSUB));
		int frc = fsync_dir(sub);
		free(sub);
		if (frc < 0) {
			vol_error(v, frc, 0, "syncing a directory");
			/* not durable, and perhaps on a volume now taken out
			 * (reported deleted): not reported received either */
			rc = frc;
		}
	}
out:
	if (rc < 0) {
		unlink(tmp);
		unlink(tside);
	}
	free(tside);
	free(data);
	free(side);
	return rc;
}

/* Recover an hsynced replica left in tmp/ by a crash, up to its synced
 * length. */
static void recover_tmp(dn_vol *v, const char *tmp, const char *syncf, uint64_t id, uint64_t gen)
{
	uint8_t b[8];
	uint64_t synced = 0, *sums = NULL;
	size_t n = 0;
	struct stat st;
	int fd = open(syncf, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t r = pread(fd, b, 8, 0);
	close(fd);
	if (r != 8)
		return;
	for (int k = 0; k < 8; k++)
		synced |= (uint64_t)b[k] << (8 * k);
	fd = open(tmp, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size < synced || synced == 0 ||
	    ftruncate(fd, (off_t)synced) < 0 || checksum_file(fd, synced, &sums, &n) < 0 ||
	    fdatasync(fd) < 0) {
		close(fd);
		free(sums);
		return;
	}
	close(fd);
	if (install(v->s, v, NULL, tmp, id, gen, synced, sums, n, true) == 0)
		cdl_info("recovered replica 'blk_%" PRIu64 "_%" PRIu64
			 "' at its synced length %" PRIu64,
			 id, gen, synced);
	free(sums);
}

static int scan_tmp(dn_vol *v)
{
	char *tdir = xasprintf("%s/tmp", v->dir);
	int rc = cdl_mkdirs(tdir);
	DIR *d = rc == 0 ? opendir(tdir) : NULL;
	if (!d) {
		rc = rc ? rc : -errno;
		cdl_err("cannot open '%s': %s", tdir, strerror(-rc));
		free(tdir);
		return rc;
	}
	struct dirent *de;
	/* First recover, then drop whatever is left. */
	while ((de = readdir(d))) {
		uint64_t id, gen, ser;
		int n = 0;
		if (sscanf(de->d_name, "blk_%" SCNu64 "_%" SCNu64 ".%" SCNu64 "%n", &id, &gen, &ser,
			   &n) == 3 &&
		    !strcmp(de->d_name + n, ".sync")) {
			char *tmp = xasprintf("%s/%.*s", tdir, n, de->d_name);
			char *syncf = xasprintf("%s/%s", tdir, de->d_name);
			recover_tmp(v, tmp, syncf, id, gen);
			free(tmp);
			free(syncf);
		}
	}
	rewinddir(d);
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char *p = xasprintf("%s/%s", tdir, de->d_name);
		unlink(p);
		free(p);
	}
	closedir(d);
	free(tdir);
	return 0;
}

/* ---------------------------------------------------------------- open / free */

/* A new datanode id. */
static char *make_id(void)
{
	char *id = read_line_file("/proc/sys/kernel/random/uuid");
	if (!id) /* no procfs: time and pid make a unique enough id */
		id = xasprintf("%016" PRIx64 "-%08x", (uint64_t)cdl_wall_ns(), (unsigned)getpid());
	return id;
}

/* Read the one-line file name of every healthy volume and agree on one
 * value: the first found; a volume with another is refused. Volumes
 * without one get it written (when there is one). */
static int agree(dn_store *s, const char *name, const char *what, char **out, bool make)
{
	char **vals = xcalloc(s->nvols, sizeof(*vals));
	char *pick = NULL;
	size_t from = 0;
	int rc = 0;
	for (size_t i = 0; i < s->nvols && rc == 0; i++) {
		dn_vol *v = s->vols[i];
		if (v->failed)
			continue;
		char *path = xasprintf("%s/%s", v->dir, name);
		vals[i] = read_line_file(path);
		if (vals[i] && (!*vals[i] || strlen(vals[i]) > 64)) {
			cdl_err("%s file '%s' is malformed", what, path);
			rc = -EINVAL;
		} else if (vals[i] && !pick) {
			pick = vals[i];
			from = i;
		} else if (vals[i] && strcmp(vals[i], pick) != 0) {
			cdl_err("data dir '%s' belongs to %s '%s', but '%s' to '%s': refusing to "
				"mix them",
				v->dir, what, vals[i], s->vols[from]->dir, pick);
			rc = -EINVAL;
		}
		free(path);
	}
	if (rc == 0 && !pick && make) {
		*out = make_id();
		cdl_info("new %s '%s'", what, *out);
	} else {
		*out = xstrdup(rc == 0 && pick ? pick : "");
	}
	for (size_t i = 0; i < s->nvols && rc == 0 && **out; i++) {
		dn_vol *v = s->vols[i];
		if (v->failed || vals[i])
			continue;
		char *path = xasprintf("%s/%s", v->dir, name);
		char *text = xasprintf("%s\n", *out);
		rc = write_small_file(path, text);
		if (rc < 0)
			cdl_err("cannot write %s '%s': %s", what, path, strerror(-rc));
		free(text);
		free(path);
	}
	for (size_t i = 0; i < s->nvols; i++)
		free(vals[i]);
	free(vals);
	return rc;
}

/* Lock, lay out and probe one volume: 0 or the error (logged). */
static int vol_open(dn_vol *v)
{
	int rc = cdl_mkdirs(v->dir);
	if (rc < 0) {
		cdl_err("cannot create data dir '%s': %s", v->dir, strerror(-rc));
		return rc;
	}
	char *lp = xasprintf("%s/in_use.lock", v->dir);
	v->lockfd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	free(lp);
	if (v->lockfd < 0 || flock(v->lockfd, LOCK_EX | LOCK_NB) < 0) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		cdl_err("cannot lock data dir '%s': %s", v->dir,
			rc == -EBUSY ? "in use by another datanode" : strerror(-rc));
		return rc;
	}
	const char *subs[] = {"corrupt", "tmp", "current"};
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		char *p = xasprintf("%s/%s", v->dir, subs[i]);
		rc = cdl_mkdirs(p);
		if (rc < 0)
			cdl_err("cannot create '%s': %s", p, strerror(-rc));
		free(p);
		if (rc < 0)
			return rc;
	}
	rc = vol_probe(v);
	if (no_space(rc)) {
		v->full = true; /* usable, but full: said by the caller */
		rc = 0;
	} else if (rc < 0) {
		cdl_err("data dir '%s' fails its probe: %s", v->dir, strerror(-rc));
	}
	return rc;
}

/* Called at start without listeners: drop v's replicas from the map. */
static void vol_forget(dn_vol *v)
{
	dn_store *s = v->s;
	for (size_t i = 0; i < s->nb; i++) {
		rep *r = s->tab[i];
		while (r) {
			rep *next = r->next;
			if (r->v == v)
				map_remove(s, r);
			r = next;
		}
	}
}

static void *checker_main(void *arg)
{
	dn_store *s = arg;
	pthread_mutex_lock(&s->ck_mu);
	while (!s->ck_stop) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += s->check_ms / 1000;
		ts.tv_nsec += (long)(s->check_ms % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&s->ck_cv, &s->ck_mu, &ts);
		if (s->ck_stop)
			break;
		pthread_mutex_unlock(&s->ck_mu);
		dn_store_check(s);
		pthread_mutex_lock(&s->ck_mu);
	}
	pthread_mutex_unlock(&s->ck_mu);
	return NULL;
}

/* Split a comma-separated list into trimmed entries; -EINVAL on an empty
 * one or too many. */
static int split_dirs(const char *dirs, char ***out, size_t *n)
{
	char **v = NULL;
	size_t cnt = 0;
	const char *p = dirs;
	for (;;) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		while (len && (*p == ' ' || *p == '\t')) {
			p++;
			len--;
		}
		while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len == 0 || cnt == DN_MAX_VOLS) {
			cdl_err("data dirs '%s': %s", dirs,
				len == 0 ? "an entry is empty" : "more than 64 directories");
			for (size_t i = 0; i < cnt; i++)
				free(v[i]);
			free(v);
			return -EINVAL;
		}
		v = xrealloc(v, (cnt + 1) * sizeof(*v));
		v[cnt++] = xstrndup(p, len);
		if (!e)
			break;
		p = e + 1;
	}
	*out = v;
	*n = cnt;
	return 0;
}

int dn_store_open(const char *dirs, dn_store **out)
{
	return dn_store_open_opts(dirs, NULL, out);
}

int dn_store_open_opts(const char *dirs, const dn_store_opts *o, dn_store **out)
{
	dn_store_opts none = {0};
	if (!o)
		o = &none;
	char **names;
	size_t nn;
	int rc = split_dirs(dirs, &names, &nn);
	if (rc < 0)
		return rc;
	if (o->failed_tolerated < 0 || (size_t)o->failed_tolerated >= nn) {
		cdl_err("failed_volumes_tolerated (%d) must be at least 0 and less than the number "
			"of data dirs (%zu)",
			o->failed_tolerated, nn);
		for (size_t i = 0; i < nn; i++)
			free(names[i]);
		free(names);
		return -EINVAL;
	}
	dn_store *s = xcalloc(1, sizeof(*s));
	s->dirs = xstrdup(dirs);
	s->reserved = o->reserved;
	s->tolerated = o->failed_tolerated;
	s->on_fatal = o->on_fatal;
	s->fatal_ctx = o->fatal_ctx;
	s->check_ms = o->check_ms;
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->ck_mu, NULL);
	cdl_cond_init_mono(&s->cv);
	cdl_cond_init_mono(&s->ck_cv);
	s->nb = 1024;
	s->tab = xcalloc(s->nb, sizeof(*s->tab));
	s->vols = xcalloc(nn, sizeof(*s->vols));
	s->nvols = nn;
	int first_err = 0;
	for (size_t i = 0; i < nn; i++) {
		dn_vol *v = xcalloc(1, sizeof(*v));
		v->s = s;
		v->dir = names[i];
		v->lockfd = -1;
		pthread_mutex_init(&v->ck, NULL);
		s->vols[i] = v;
	}
	free(names);
	/* the same directory twice would hold every replica twice */
	dev_t *dev = xcalloc(nn, sizeof(*dev));
	ino_t *ino = xcalloc(nn, sizeof(*ino));
	for (size_t i = 0; i < nn; i++) {
		struct stat st;
		if (cdl_mkdirs(s->vols[i]->dir) < 0 || stat(s->vols[i]->dir, &st) < 0)
			continue; /* vol_open says why */
		dev[i] = st.st_dev;
		ino[i] = st.st_ino;
		for (size_t j = 0; j < i; j++)
			if (ino[j] && dev[j] == dev[i] && ino[j] == ino[i]) {
				cdl_err("data dir '%s' is listed twice (as '%s')", s->vols[i]->dir,
					s->vols[j]->dir);
				rc = -EINVAL;
			}
	}
	free(dev);
	free(ino);
	if (rc < 0)
		goto fail;
	for (size_t i = 0; i < nn; i++) {
		dn_vol *v = s->vols[i];
		int vrc = vol_open(v);
		if (vrc < 0) {
			v->failed = true;
			s->nfailed++;
			if (!first_err)
				first_err = vrc;
			if (v->lockfd >= 0)
				close(v->lockfd);
			v->lockfd = -1;
		}
	}
	if (s->nfailed > s->tolerated)
		goto too_many;
	if ((rc = agree(s, "datanode_id", "datanode id", &s->id, true)) < 0 ||
	    (rc = agree(s, "cluster_id", "cluster id", &s->cluster, false)) < 0)
		goto fail;
	for (size_t i = 0; i < nn; i++) {
		dn_vol *v = s->vols[i];
		if (v->failed)
			continue;
		int vrc = scan_current(v);
		if (vrc == 0)
			vrc = scan_tmp(v);
		if (vrc < 0) {
			v->failed = true;
			s->nfailed++;
			vol_forget(v);
			if (!first_err)
				first_err = vrc;
			continue;
		}
		uint64_t avail = 0, total = 0;
		(void)vol_room(v, &avail, &total);
		bool full = v->full;
		v->full = false;
		if (full)
			set_full(v, PROBE_BYTES, "no space for the probe");
		refresh_full(v, avail);
		cdl_info("data dir '%s': %zu replicas, %" PRIu64 " bytes; %" PRIu64 " of %" PRIu64
			 " bytes free",
			 v->dir, v->count, v->used, avail, total);
	}
	if (s->nfailed > s->tolerated)
		goto too_many;
	if (s->check_ms > 0) {
		if (pthread_create(&s->ck_thr, NULL, checker_main, s) != 0) {
			cdl_err("cannot start the disk checker thread");
			rc = -EAGAIN;
			goto fail;
		}
		s->ck_started = true;
	}
	if (nn > 1 || s->nfailed)
		cdl_info("block store: %zu data dirs (%d failed, %d tolerated), %zu replicas, "
			 "%" PRIu64 " bytes",
			 nn, s->nfailed, s->tolerated, s->count, s->used);
	else
		cdl_info("block store '%s': %zu replicas, %" PRIu64 " bytes", dirs, s->count,
			 s->used);
	*out = s;
	return 0;
too_many:
	rc = first_err ? first_err : -EIO;
	if (nn > 1)
		cdl_err("%d of %zu data dirs failed, more than failed_volumes_tolerated (%d)",
			s->nfailed, nn, s->tolerated);
fail:
	dn_store_free(s);
	return rc;
}

void dn_store_free(dn_store *s)
{
	if (!s)
		return;
	if (s->ck_started) {
		pthread_mutex_lock(&s->ck_mu);
		s->ck_stop = true;
		pthread_cond_broadcast(&s->ck_cv);
		pthread_mutex_unlock(&s->ck_mu);
		pthread_join(s->ck_thr, NULL);
	}
	for (size_t i = 0; i < s->nb; i++) {
		rep *r = s->tab[i];
		while (r) {
			rep *n = r->next;
			free(r);
			r = n;
		}
	}
	free(s->tab);
	for (size_t i = 0; i < s->nvols; i++) {
		dn_vol *v = s->vols[i];
		if (v->lockfd >= 0)
			close(v->lockfd);
		pthread_mutex_destroy(&v->ck);
		free(v->dir);
		free(v);
	}
	free(s->vols);
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->ck_mu);
	pthread_cond_destroy(&s->cv);
	pthread_cond_destroy(&s->ck_cv);
	free(s->dirs);
	free(s->id);
	free(s->cluster);
	free(s);
}

void dn_store_set_listener(dn_store *s, dn_store_listener fn, void *ctx)
{
	pthread_mutex_lock(&s->mu);
	s->fn = fn;
	s->ctx = ctx;
	pthread_mutex_unlock(&s->mu);
}

const char *dn_store_id(const dn_store *s)
{
	return s->id;
}

const char *dn_store_dir(const dn_store *s)
{
	return s->dirs;
}

const char *dn_store_cluster(const dn_store *s)
{
	return s->cluster;
}

/* The healthy volumes, snapshot under the lock; *n of them (malloc'd). */
static dn_vol **healthy(dn_store *s, size_t *n)
{
	dn_vol **v = xmalloc((s->nvols + 1) * sizeof(*v));
	size_t k = 0;
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < s->nvols; i++)
		if (!s->vols[i]->failed)
			v[k++] = s->vols[i];
	pthread_mutex_unlock(&s->mu);
	*n = k;
	return v;
}

int dn_store_set_cluster(dn_store *s, const char *cluster)
{
	size_t n;
	dn_vol **v = healthy(s, &n);
	char *text = xasprintf("%s\n", cluster);
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		char *path = xasprintf("%s/cluster_id", v[i]->dir);
		int r = write_small_file(path, text);
		if (r < 0) {
			cdl_err("cannot write cluster id '%s': %s", path, strerror(-r));
			vol_error(v[i], r, 0, "writing the cluster id");
			if (rc == 0)
				rc = r;
		}
		free(path);
	}
	if (rc == 0) {
		free(s->cluster);
		s->cluster = xstrdup(cluster);
	}
	free(text);
	free(v);
	return rc;
}

int dn_store_usage(dn_store *s, dn_usage *u)
{
	size_t n;
	dn_vol **v = healthy(s, &n);
	uint64_t *avail = xcalloc(n + 1, sizeof(*avail)), *total = xcalloc(n + 1, sizeof(*total));
	int *ok = xcalloc(n + 1, sizeof(*ok));
	int rc = n ? -EIO : 0;
	for (size_t i = 0; i < n; i++) {
		int r = vol_room(v[i], &avail[i], &total[i]);
		ok[i] = r == 0;
		if (r == 0)
			rc = 0;
		else if (rc < 0)
			rc = r;
	}
	memset(u, 0, sizeof(*u));
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < n; i++) {
		if (!ok[i] || v[i]->failed)
			continue;
		refresh_full(v[i], avail[i]);
		u->capacity += total[i] > s->reserved ? total[i] - s->reserved : 0;
		if (!v[i]->full && avail[i] > s->reserved)
			u->remaining += avail[i] - s->reserved;
	}
	u->used = s->used;
	u->blocks = (uint32_t)s->count;
	pthread_mutex_unlock(&s->mu);
	free(avail);
	free(total);
	free(ok);
	free(v);
	return rc;
}

size_t dn_store_volumes(dn_store *s, dn_vol_info *v, size_t max)
{
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < s->nvols && i < max; i++) {
		dn_vol *x = s->vols[i];
		v[i] = (dn_vol_info){.dir = x->dir,
				     .failed = x->failed,
				     .full = x->full,
				     .replicas = x->count,
				     .used = x->used};
	}
	size_t n = s->nvols;
	pthread_mutex_unlock(&s->mu);
	return n;
}

int dn_store_failed_volumes(dn_store *s)
{
	pthread_mutex_lock(&s->mu);
	int n = s->nfailed;
	pthread_mutex_unlock(&s->mu);
	return n;
}

int dn_store_volume_of(dn_store *s, uint64_t id)
{
	int rc = -ENOENT;
	pthread_mutex_lock(&s->mu);
	rep *r = map_find(s, id);
	for (size_t i = 0; r && i < s->nvols; i++)
		if (s->vols[i] == r->v)
			rc = (int)i;
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int dn_store_check(dn_store *s)
{
	size_t n;
	dn_vol **v = healthy(s, &n);
	for (size_t i = 0; i < n; i++)
		vol_check(v[i], NULL);
	free(v);
	return dn_store_failed_volumes(s);
}

size_t dn_store_list(dn_store *s, dn_replica_info **out)
{
	pthread_mutex_lock(&s->mu);
	dn_replica_info *v = xmalloc((s->count + 1) * sizeof(*v));
	size_t n = 0;
	for (size_t i = 0; i < s->nb; i++)
		for (rep *r = s->tab[i]; r; r = r->next)
			v[n++] = (dn_replica_info){r->id, r->gen, r->len};
	pthread_mutex_unlock(&s->mu);
	*out = v;
	return n;
}

bool dn_store_has(dn_store *s, uint64_t id, uint64_t gen, uint64_t *len)
{
	pthread_mutex_lock(&s->mu);
	rep *r = map_find(s, id);
	bool ok = r && r->gen >= gen;
	if (ok && len)
		*len = r->len;
	pthread_mutex_unlock(&s->mu);
	return ok;
}

/* ---------------------------------------------------------------- reading */

/* Read a whole sidecar; it must hold exactly one sum per chunk of len. */
static int load_sidecar(int fd, uint64_t len, uint64_t **sums, uint64_t *n)
{
	uint64_t want = sidecar_size(len);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size != want)
		return -EBADMSG;
	uint8_t *b = xmalloc(want + 1);
	ssize_t r = pread(fd, b, want, 0);
	if (r != (ssize_t)want) {
		free(b);
		return r < 0 ? -errno : -EBADMSG;
	}
	uint64_t cnt = want / 8;
	uint64_t *v = xmalloc((cnt + 1) * sizeof(*v));
	for (uint64_t i = 0; i < cnt; i++) {
		uint64_t x = 0;
		for (int k = 0; k < 8; k++)
			x |= (uint64_t)b[i * 8 + k] << (8 * k);
		v[i] = x;
	}
	free(b);
	*sums = v;
	*n = cnt;
	return 0;
}

int dn_store_open_read(dn_store *s, uint64_t id, uint64_t gen, dn_rd *rd)
{
	memset(rd, 0, sizeof(*rd));
	rd->fd = -1;
	rd->id = id;
	int sfd = -1, rc = 0;
	pthread_mutex_lock(&s->mu);
	rep *r = map_find(s, id);
	if (r && r->gen >= gen) {
		char *data = fin_path(r->v, id, r->gen, "");
		char *side = fin_path(r->v, id, r->gen, ".xxh");
		rd->fd = open(data, O_RDONLY | O_CLOEXEC);
		if (rd->fd >= 0)
			sfd = open(side, O_RDONLY | O_CLOEXEC);
		rc = rd->fd < 0 || sfd < 0 ? -errno : 0;
		rd->gen = r->gen;
		rd->len = r->len;
		rd->vol = r->v;
		free(data);
		free(side);
		pthread_mutex_unlock(&s->mu);
		if (rc == 0)
			rc = load_sidecar(sfd, rd->len, &rd->sums, &rd->nsums);
		if (sfd >= 0)
			close(sfd);
		if (rc < 0) {
			vol_error(rd->vol, rc, 0, "opening a replica");
			if (rc == -ENOENT || rc == -EBADMSG) {
				dn_store_mark_corrupt(s, id, rd->gen,
						      rc == -ENOENT ? "a file is missing"
								    : "checksum file does not fit");
				rc = -EBADMSG;
			}
			dn_rd_release(rd);
		}
		return rc;
	}
	/* A replica being written: the newest writer of a new enough gen. */
	for (dn_wr *w = s->rbw; w; w = w->next) {
		if (w->id != id || w->superseded || w->gen < gen)
			continue;
		rd->fd = open(w->path, O_RDONLY | O_CLOEXEC);
		rc = rd->fd < 0 ? -errno : 0;
		rd->gen = w->gen;
		rd->len = __atomic_load_n(&w->len, __ATOMIC_ACQUIRE);
		rd->rbw = true;
		rd->vol = w->v;
		pthread_mutex_unlock(&s->mu);
		if (rc < 0)
			vol_error(rd->vol, rc, 0, "opening a replica being written");
		return rc;
	}
	pthread_mutex_unlock(&s->mu);
	return -ENOENT;
}

/* Every stored chunk that fails its checksum, whoever read it (a client's
 * read, a copy, the scanner). */
static cdl_series *disk_csum_errors;
static pthread_once_t csum_once = PTHREAD_ONCE_INIT;
static void csum_metric(void)
{
	disk_csum_errors =
	    cdl_metric_at(cdl_metrics_counter(
			      cdl_metrics_global(), "caudal_datanode_checksum_errors_total",
			      "Chunks that failed their checksum: stored ones read back (disk) or "
			      "packets received (network).",
			      "source"),
			  "disk");
}

static int csum_error(void)
{
	pthread_once(&csum_once, csum_metric);
	cdl_series_add(disk_csum_errors, 1);
	return -EBADMSG;
}

int dn_rd_chunks(dn_rd *rd, uint64_t idx, unsigned cnt, void *buf, size_t *n, uint64_t *sum,
		 bool *bad)
{
	uint64_t off = idx * CDL_CHUNK;
	*bad = false;
	if (off >= rd->len || cnt == 0)
		return -EINVAL;
	uint64_t left = rd->len - off;
	if ((uint64_t)cnt * CDL_CHUNK > left)
		cnt = (unsigned)((left + CDL_CHUNK - 1) / CDL_CHUNK);
	size_t want = (uint64_t)cnt * CDL_CHUNK > left ? (size_t)left : (size_t)cnt * CDL_CHUNK;
	/* one read for the run: a chunk at a time costs a syscall per 64 KiB */
	size_t got = 0;
	while (got < want) {
		ssize_t r = pread(rd->fd, (uint8_t *)buf + got, want - got, (off_t)(off + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int rc = -errno;
			vol_error(rd->vol, rc, 0, "reading a replica");
			return rc;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	for (unsigned i = 0; i < cnt; i++) {
		size_t at = (size_t)i * CDL_CHUNK;
		uint8_t *p = (uint8_t *)buf + at;
		size_t k = want - at < CDL_CHUNK ? want - at : CDL_CHUNK;
		n[i] = k;
		if (got < at + k) {
			/* the file is shorter than recorded */
			size_t have = got > at ? got - at : 0;
			memset(p + have, 0, k - have);
			if (rd->rbw)
				return -EIO;
		}
		if (rd->rbw) {
			sum[i] = cdl_xxh3(p, k);
			continue;
		}
		uint64_t c = idx + i;
		sum[i] = c < rd->nsums ? rd->sums[c] : 0;
		if (got < at + k || c >= rd->nsums || cdl_xxh3(p, k) != rd->sums[c]) {
			(void)csum_error();
			*bad = true;
			return (int)i + 1;
		}
	}
	return (int)cnt;
}

int dn_rd_chunk(dn_rd *rd, uint64_t idx, void *buf, size_t *n, uint64_t *sum)
{
	bool bad;
	int rc = dn_rd_chunks(rd, idx, 1, buf, n, sum, &bad);
	if (rc < 0)
		return rc;
	return bad ? -EBADMSG : 0;
}

void dn_rd_release(dn_rd *rd)
{
	if (rd->fd >= 0)
		close(rd->fd);
	rd->fd = -1;
	free(rd->sums);
	rd->sums = NULL;
}

int dn_store_mark_corrupt(dn_store *s, uint64_t id, uint64_t gen, const char *why)
{
	pthread_mutex_lock(&s->mu);
	rep *r = map_find(s, id);
	if (!r || r->gen != gen) {
		pthread_mutex_unlock(&s->mu);
		return -ENOENT;
	}
	uint64_t len = r->len;
	char *data = fin_path(r->v, id, gen, "");
	char *side = fin_path(r->v, id, gen, ".xxh");
	move_aside(r->v, data, side, id, gen);
	map_remove(s, r);
	pthread_mutex_unlock(&s->mu);
	free(data);
	free(side);
	cdl_warn("replica 'blk_%" PRIu64 "_%" PRIu64 "' is corrupt (%s); moved to corrupt/", id,
		 gen, why);
	emit(s, DN_EV_CORRUPT, id, gen, len);
	return 0;
}

/* ---------------------------------------------------------------- writing */

/* The volume for a new replica: the healthy, not full one with the most
 * room, counting an allowance for each replica being written there; its
 * writer count is raised. NULL if none can take one. */
static dn_vol *pick_vol(dn_store *s)
{
	size_t n;
	dn_vol **v = healthy(s, &n);
	uint64_t *avail = xcalloc(n + 1, sizeof(*avail));
	int *ok = xcalloc(n + 1, sizeof(*ok));
	for (size_t i = 0; i < n; i++) {
		uint64_t total;
		ok[i] = vol_room(v[i], &avail[i], &total) == 0;
	}
	dn_vol *best = NULL;
	int64_t best_score = 0;
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < n; i++) {
		if (!ok[i] || v[i]->failed)
			continue;
		refresh_full(v[i], avail[i]);
		if (v[i]->full)
			continue;
		uint64_t room = avail[i] - s->reserved;
		uint64_t busy = (uint64_t)v[i]->writers * RBW_ALLOWANCE;
		int64_t score = room > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)room;
		score -= busy > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)busy;
		if (!best || score > best_score) {
			best = v[i];
			best_score = score;
		}
	}
	if (best) {
		best->writers++;
		s->none_logged = false;
	} else if (!s->none_logged) {
		s->none_logged = true;
		cdl_warn("no data dir can take a new replica: every one is full or failed");
	}
	pthread_mutex_unlock(&s->mu);
	free(avail);
	free(ok);
	free(v);
	return best;
}

static void writers_down(dn_vol *v)
{
	pthread_mutex_lock(&v->s->mu);
	v->writers--;
	pthread_mutex_unlock(&v->s->mu);
}

int dn_store_create(dn_store *s, uint64_t id, uint64_t gen, dn_wr **out)
{
	/* a volume that turns out full or failed is skipped the next time */
	int last = -ENOSPC;
	for (size_t attempt = 0; attempt <= s->nvols; attempt++) {
		pthread_mutex_lock(&s->mu);
		rep *r = map_find(s, id);
		bool stale = r && r->gen > gen;
		pthread_mutex_unlock(&s->mu);
		if (stale)
			return -ESTALE;
		dn_vol *v = pick_vol(s);
		if (!v)
			return -ENOSPC;
		pthread_mutex_lock(&s->mu);
		r = map_find(s, id);
		if (r && r->gen > gen) {
			v->writers--;
			pthread_mutex_unlock(&s->mu);
			return -ESTALE;
		}
		char *path = xasprintf("%s/tmp/blk_%" PRIu64 "_%" PRIu64 ".%" PRIu64, v->dir, id,
				       gen, ++s->serial);
		int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0) {
			int rc = -errno;
			v->writers--;
			pthread_mutex_unlock(&s->mu);
			cdl_err("cannot create replica '%s': %s", path, strerror(-rc));
			free(path);
			vol_error(v, rc, 1, "creating a replica");
			last = rc;
			if (no_space(rc) || io_fault(rc))
				continue;
			return rc;
		}
		for (dn_wr *o = s->rbw; o; o = o->next)
			if (o->id == id)
				o->superseded = true;
		dn_wr *w = xcalloc(1, sizeof(*w));
		w->s = s;
		w->v = v;
		w->id = id;
		w->gen = gen;
		w->fd = fd;
		w->sfd = -1;
		w->path = path;
		w->next = s->rbw;
		s->rbw = w;
		pthread_mutex_unlock(&s->mu);
		*out = w;
		return 0;
	}
	return last;
}

static void push_sum(dn_wr *w, uint64_t sum)
{
	if (w->nsums == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 1024;
		w->sums = xrealloc(w->sums, w->cap * sizeof(*w->sums));
	}
	w->sums[w->nsums++] = sum;
}

int dn_wr_append(dn_wr *w, const void *data, size_t n, uint64_t sum)
{
	int rc = cdl_write_full(w->fd, data, n);
	if (rc < 0) {
		cdl_err("cannot write replica '%s': %s", w->path, strerror(-rc));
		vol_error(w->v, rc, w->len + n, "writing a replica");
		return rc;
	}
	if (w->clen == 0 && n == CDL_CHUNK) {
		push_sum(w, sum);
	} else {
		const uint8_t *p = data;
		if (!w->cbuf)
			w->cbuf = xmalloc(CDL_CHUNK);
		while (n > 0) {
			size_t k = CDL_CHUNK - w->clen;
			if (k > n)
				k = n;
			memcpy(w->cbuf + w->clen, p, k);
			w->clen += k;
			p += k;
			n -= k;
			if (w->clen == CDL_CHUNK) {
				push_sum(w, cdl_xxh3(w->cbuf, CDL_CHUNK));
				w->clen = 0;
			}
		}
	}
	__atomic_store_n(&w->len, (uint64_t)w->nsums * CDL_CHUNK + w->clen, __ATOMIC_RELEASE);
	return 0;
}

int dn_wr_sync(dn_wr *w)
{
	int rc = 0;
	if (fdatasync(w->fd) < 0) {
		rc = -errno;
		goto fail;
	}
	bool first = w->sfd < 0;
	if (first) {
		char *sp = xasprintf("%s.sync", w->path);
		w->sfd = open(sp, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		free(sp);
		if (w->sfd < 0) {
			rc = -errno;
			goto fail;
		}
	}
	uint8_t b[8];
	for (int k = 0; k < 8; k++)
		b[k] = (uint8_t)(w->len >> (8 * k));
	if (pwrite(w->sfd, b, 8, 0) != 8 || fdatasync(w->sfd) < 0) {
		rc = errno ? -errno : -EIO;
		goto fail;
	}
	if (first) {
		char *tdir = xasprintf("%s/tmp", w->v->dir);
		rc = fsync_dir(tdir);
		free(tdir);
		if (rc < 0)
			goto fail;
	}
	w->synced = w->len;
	return 0;
fail:
	cdl_err("cannot sync replica '%s': %s", w->path, strerror(-rc));
	vol_error(w->v, rc, w->len, "syncing a replica");
	return rc;
}

uint64_t dn_wr_length(const dn_wr *w)
{
	return w->len;
}

static void wr_free(dn_wr *w)
{
	writers_down(w->v);
	if (w->fd >= 0)
		close(w->fd);
	if (w->sfd >= 0) {
		close(w->sfd);
		char *sp = xasprintf("%s.sync", w->path);
		unlink(sp);
		free(sp);
	}
	free(w->path);
	free(w->sums);
	free(w->cbuf);
	free(w);
}

int dn_wr_finalize(dn_wr *w, bool sync)
{
	dn_store *s = w->s;
	if (w->clen > 0) {
		push_sum(w, cdl_xxh3(w->cbuf, w->clen));
		w->clen = 0;
	}
	int rc = 0;
	if (sync && fdatasync(w->fd) < 0) {
		rc = -errno;
		cdl_err("cannot sync replica '%s': %s", w->path, strerror(-rc));
		vol_error(w->v, rc, w->len, "syncing a replica");
	}
	if (rc == 0)
		rc = install(s, w->v, w, w->path, w->id, w->gen, w->len, w->sums, w->nsums, sync);
	if (rc < 0) {
		/* install unlinks on its own failures; cover the sync failure */
		unlink(w->path);
		pthread_mutex_lock(&s->mu);
		for (dn_wr **pp = &s->rbw; *pp; pp = &(*pp)->next)
			if (*pp == w) {
				*pp = w->next;
				break;
			}
		pthread_mutex_unlock(&s->mu);
	}
	uint64_t id = w->id, gen = w->gen, len = w->len;
	wr_free(w);
	if (rc == 0) {
		cdl_debug("finalized replica 'blk_%" PRIu64 "_%" PRIu64 "' of %" PRIu64 " bytes",
			  id, gen, len);
		emit(s, DN_EV_RECEIVED, id, gen, len);
	}
	return rc;
}

void dn_wr_abandon(dn_wr *w)
{
	dn_store *s = w->s;
	pthread_mutex_lock(&s->mu);
	bool keep = w->synced > 0 && !w->superseded;
	pthread_mutex_unlock(&s->mu);
	if (keep) {
		/* Cut back to what every node in the pipeline synced. */
		uint64_t len = w->synced;
		w->nsums = (size_t)(len / CDL_CHUNK);
		w->clen = (size_t)(len % CDL_CHUNK);
		if (w->clen) {
			if (!w->cbuf)
				w->cbuf = xmalloc(CDL_CHUNK);
			if (pread(w->fd, w->cbuf, w->clen, (off_t)(len - w->clen)) !=
			    (ssize_t)w->clen)
				keep = false;
		}
		if (keep && ftruncate(w->fd, (off_t)len) < 0)
			keep = false;
		if (keep) {
			w->len = len;
			cdl_info("keeping the synced %" PRIu64 " bytes of abandoned replica "
				 "'blk_%" PRIu64 "_%" PRIu64 "'",
				 len, w->id, w->gen);
			dn_wr_finalize(w, true);
			return;
		}
	}
	pthread_mutex_lock(&s->mu);
	for (dn_wr **pp = &s->rbw; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	pthread_mutex_unlock(&s->mu);
	unlink(w->path);
	wr_free(w);
}

/* ---------------------------------------------------------------- pipeline recovery */

/* Wait on s->cv until the CLOCK_MONOTONIC time end_ms at the latest.
 * Called with s->mu held. */
static void cv_wait_until(dn_store *s, int64_t end_ms)
{
	struct timespec ts = {.tv_sec = end_ms / 1000, .tv_nsec = (end_ms % 1000) * 1000000};
	(void)pthread_cond_timedwait(&s->cv, &s->mu, &ts);
}

bool dn_wr_park(dn_wr *w, int ms, bool (*cancel)(void *), void *ctx)
{
	dn_store *s = w->s;
	int64_t end = cdl_now_ms() + ms;
	pthread_mutex_lock(&s->mu);
	uint64_t ticket = ++w->park_ticket;
	w->parked = true;
	pthread_cond_broadcast(&s->cv); /* a recovery may wait for this writer */
	for (;;) {
		if (w->taken == ticket || w->superseded)
			break;
		int64_t now = cdl_now_ms();
		if (now >= end)
			break;
		pthread_mutex_unlock(&s->mu);
		bool stop = cancel && cancel(ctx);
		pthread_mutex_lock(&s->mu);
		if (stop || w->taken == ticket)
			break;
		cv_wait_until(s, end < now + 100 ? end : now + 100);
	}
	bool taken = w->taken == ticket;
	if (!taken)
		w->parked = false;
	pthread_mutex_unlock(&s->mu);
	return taken;
}

/* Reopen the finalized replica r as a writer in tmp/ (its generation is
 * about to be replaced by a recovery). Called with s->mu held; r is
 * removed from the map. No event is raised: the namenode already counts
 * this node as a location of the new generation. */
static int unfinalize(dn_store *s, rep *r, dn_wr **out)
{
	dn_vol *v = r->v;
	char *data = fin_path(v, r->id, r->gen, "");
	char *side = fin_path(v, r->id, r->gen, ".xxh");
	char *path = xasprintf("%s/tmp/blk_%" PRIu64 "_%" PRIu64 ".%" PRIu64, v->dir, r->id, r->gen,
			       ++s->serial);
	int rc = 0;
	if (rename(data, path) < 0) {
		rc = -errno;
		cdl_err("cannot reopen replica '%s': %s", data, strerror(-rc));
		free(path);
		goto out;
	}
	unlink(side);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		unlink(path);
		free(path);
		map_remove(s, r);
		goto out;
	}
	dn_wr *w = xcalloc(1, sizeof(*w));
	w->s = s;
	w->v = v;
	v->writers++;
	w->id = r->id;
	w->gen = r->gen;
	w->fd = fd;
	w->sfd = -1;
	w->path = path;
	w->len = r->len;
	/* it was finalized, so durable: a recovery that fails after this
	 * abandons it back to a finalized replica rather than unlink the
	 * only copy (which left the namenode listing a replica gone) */
	w->synced = r->len;
	w->next = s->rbw;
	s->rbw = w;
	map_remove(s, r);
	*out = w;
out:
	free(data);
	free(side);
	return rc;
}

/* Cut w (owned by the caller) to offset bytes and rebuild its checksum
 * state from disk: the sums of the whole chunks before offset and the
 * bytes of the partial last chunk. */
static int wr_cut(dn_wr *w, uint64_t offset)
{
	struct stat st;
	if (fstat(w->fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size < offset)
		return -ERANGE;
	if (ftruncate(w->fd, (off_t)offset) < 0 || lseek(w->fd, (off_t)offset, SEEK_SET) < 0)
		return -errno;
	size_t whole = (size_t)(offset / CDL_CHUNK);
	if (w->nsums >= whole) {
		/* computed from the bytes as they arrived (verified packets) */
		w->nsums = whole;
	} else {
		uint64_t *sums = NULL;
		size_t n = 0;
		int rc = checksum_file(w->fd, (uint64_t)whole * CDL_CHUNK, &sums, &n);
		if (rc < 0)
			return rc;
		free(w->sums);
		w->sums = sums;
		w->nsums = n;
		w->cap = n + 1;
	}
	w->clen = (size_t)(offset % CDL_CHUNK);
	if (w->clen) {
		if (!w->cbuf)
			w->cbuf = xmalloc(CDL_CHUNK);
		ssize_t r = pread(w->fd, w->cbuf, w->clen, (off_t)(offset - w->clen));
		if (r != (ssize_t)w->clen)
			return r < 0 ? -errno : -EIO;
	}
	__atomic_store_n(&w->len, offset, __ATOMIC_RELEASE);
	if (w->synced > offset) {
		/* hsynced past what the pipeline acked: only offset is common */
		w->synced = offset;
		uint8_t b[8];
		for (int k = 0; k < 8; k++)
			b[k] = (uint8_t)(offset >> (8 * k));
		if (w->sfd >= 0 && (pwrite(w->sfd, b, 8, 0) != 8 || fdatasync(w->sfd) < 0))
			return errno ? -errno : -EIO;
	}
	return 0;
}

int dn_store_recover(dn_store *s, uint64_t id, uint64_t old_gen, uint64_t gen, uint64_t offset,
		     int wait_ms, dn_wr **out)
{
	if (gen <= old_gen)
		return -ESTALE;
	int64_t end = cdl_now_ms() + wait_ms;
	dn_wr *w = NULL;
	int rc = 0;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		dn_wr *cand = NULL;
		for (dn_wr *o = s->rbw; o; o = o->next)
			if (o->id == id && o->gen >= old_gen && o->gen < gen && !o->superseded)
				cand = o;
		/* too short to resume: leave it as it is */
		if (cand && cand->parked && cand->len < offset) {
			rc = -ERANGE;
			break;
		}
		if (cand && cand->parked) {
			cand->taken = cand->park_ticket;
			cand->parked = false;
			pthread_cond_broadcast(&s->cv);
			w = cand;
			break;
		}
		if (!cand) {
			rep *r = map_find(s, id);
			if (r && r->gen >= old_gen && r->gen < gen)
				rc = r->len < offset ? -ERANGE : unfinalize(s, r, &w);
			else
				rc = -ENOENT;
			break;
		}
		/* its writer has not noticed its upstream is gone yet */
		if (cdl_now_ms() >= end) {
			rc = -EBUSY;
			break;
		}
		cv_wait_until(s, end);
	}
	pthread_mutex_unlock(&s->mu);
	if (rc < 0)
		return rc;
	if (!w)
		return -EIO;
	uint64_t was_gen = w->gen;
	rc = wr_cut(w, offset);
	if (rc == 0) {
		/* rename to the new generation, with its .sync file */
		pthread_mutex_lock(&s->mu);
		char *path = xasprintf("%s/tmp/blk_%" PRIu64 "_%" PRIu64 ".%" PRIu64, w->v->dir, id,
				       gen, ++s->serial);
		char *osync = xasprintf("%s.sync", w->path);
		char *nsync = xasprintf("%s.sync", path);
		if (rename(w->path, path) < 0 || (w->sfd >= 0 && rename(osync, nsync) < 0)) {
			rc = -errno;
			cdl_err("cannot rename replica '%s': %s", w->path, strerror(-rc));
			free(path);
		} else {
			free(w->path);
			w->path = path;
			w->gen = gen;
			for (dn_wr *o = s->rbw; o; o = o->next)
				if (o->id == id && o != w)
					o->superseded = true;
		}
		pthread_mutex_unlock(&s->mu);
		free(osync);
		free(nsync);
	}
	if (rc < 0) {
		cdl_err("cannot resume replica 'blk_%" PRIu64 "_%" PRIu64 "' at %" PRIu64
			" bytes: %s",
			id, was_gen, offset, strerror(-rc));
		/* it stays what it was: an abandoned replica of its old generation */
		dn_wr_abandon(w);
		return rc;
	}
	*out = w;
	return 0;
}

int dn_store_delete(dn_store *s, uint64_t id, uint64_t gen)
{
	int rc = -ENOENT;
	uint64_t rgen = gen, len = 0;
	pthread_mutex_lock(&s->mu);
	rep *r = map_find(s, id);
	if (r && (gen == 0 || r->gen <= gen)) {
		rgen = r->gen;
		len = r->len;
		unlink_replica(r->v, id, r->gen);
		map_remove(s, r);
		rc = 0;
	}
	pthread_mutex_unlock(&s->mu);
	/* a copy kept aside as corrupt is no longer wanted either */
	size_t nv;
	dn_vol **vols = healthy(s, &nv);
	char *pre = xasprintf("blk_%" PRIu64 "_", id);
	for (size_t i = 0; i < nv; i++) {
		char *cd = xasprintf("%s/corrupt", vols[i]->dir);
		DIR *d = opendir(cd);
		if (d) {
			struct dirent *de;
			while ((de = readdir(d))) {
				if (strncmp(de->d_name, pre, strlen(pre)) != 0)
					continue;
				char *p = xasprintf("%s/%s", cd, de->d_name);
				unlink(p);
				free(p);
			}
			closedir(d);
		}
		free(cd);
	}
	free(pre);
	free(vols);
	if (rc == 0) {
		cdl_debug("deleted replica 'blk_%" PRIu64 "_%" PRIu64 "'", id, rgen);
		emit(s, DN_EV_DELETED, id, rgen, len);
	}
	return rc;
}

int dn_store_replica_length(dn_store *s, uint64_t id, uint64_t old_gen, uint64_t gen, uint64_t *len)
{
	int rc = -ENOENT;
	pthread_mutex_lock(&s->mu);
	dn_wr *cand = NULL; /* the one dn_store_recover would take */
	for (dn_wr *o = s->rbw; o; o = o->next)
		if (o->id == id && o->gen >= old_gen && o->gen < gen && !o->superseded)
			cand = o;
	if (cand) {
		*len = __atomic_load_n(&cand->len, __ATOMIC_ACQUIRE);
		rc = 0;
	} else {
		rep *r = map_find(s, id);
		if (r && r->gen >= old_gen && r->gen < gen) {
			*len = r->len;
			rc = 0;
		}
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}
