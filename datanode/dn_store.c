/* dn_store: the block store of one data directory. See dn_store.h. */
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
#include "cdl_util.h"

#define NSUB 64

/* A finalized replica in the map, chained by block id. */
typedef struct rep {
	uint64_t id, gen, len;
	struct rep *next;
} rep;

struct dn_wr {
	dn_store *s;
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
	char *dir;
	char *id;
	char *cluster;
	int lockfd;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* parked and claimed writers (CLOCK_MONOTONIC) */
	rep **tab;	   /* hash of finalized replicas by id */
	size_t nb, count;
	uint64_t used;	 /* bytes of finalized data and sidecars */
	dn_wr *rbw;	 /* replicas being written */
	uint64_t serial; /* makes tmp names unique */
	dn_store_listener fn;
	void *ctx;
};

/* ---------------------------------------------------------------- helpers */

static uint64_t sidecar_size(uint64_t len)
{
	return (len + CDL_CHUNK - 1) / CDL_CHUNK * 8;
}

static char *fin_path(const dn_store *s, uint64_t id, uint64_t gen, const char *suffix)
{
	return xasprintf("%s/current/%02x/blk_%" PRIu64 "_%" PRIu64 "%s", s->dir,
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

static rep *map_insert(dn_store *s, uint64_t id, uint64_t gen, uint64_t len)
{
	if (s->count >= s->nb)
		map_grow(s);
	rep *r = xcalloc(1, sizeof(*r));
	r->id = id;
	r->gen = gen;
	r->len = len;
	size_t k = slot(s, id);
	r->next = s->tab[k];
	s->tab[k] = r;
	s->count++;
	s->used += len + sidecar_size(len);
	return r;
}

static void map_remove(dn_store *s, rep *victim)
{
	for (rep **pp = &s->tab[slot(s, victim->id)]; *pp; pp = &(*pp)->next) {
		if (*pp == victim) {
			*pp = victim->next;
			s->count--;
			s->used -= victim->len + sidecar_size(victim->len);
			free(victim);
			return;
		}
	}
}

static void unlink_replica(const dn_store *s, uint64_t id, uint64_t gen)
{
	char *p = fin_path(s, id, gen, "");
	char *q = fin_path(s, id, gen, ".xxh");
	unlink(p);
	unlink(q);
	free(p);
	free(q);
}

/* Move a replica's files (data and sidecar, whichever exist) to corrupt/. */
static void move_aside(const dn_store *s, const char *data, const char *side, uint64_t id,
		       uint64_t gen)
{
	char *d = xasprintf("%s/corrupt/blk_%" PRIu64 "_%" PRIu64, s->dir, id, gen);
	char *x = xasprintf("%s.xxh", d);
	if (rename(data, d) < 0 && errno != ENOENT)
		unlink(data);
	if (rename(side, x) < 0 && errno != ENOENT)
		unlink(side);
	free(d);
	free(x);
}

/* ---------------------------------------------------------------- scan at start */

/* Add one finalized replica found on disk, keeping the newest generation. */
static void scan_add(dn_store *s, const char *sub, uint64_t id, uint64_t gen)
{
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
		move_aside(s, data, side, id, gen);
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
		unlink_replica(s, id, r->gen);
		map_remove(s, r);
	}
	map_insert(s, id, gen, (uint64_t)st.st_size);
out:
	free(data);
	free(side);
}

static int scan_current(dn_store *s)
{
	for (unsigned i = 0; i < NSUB; i++) {
		char *sub = xasprintf("%s/current/%02x", s->dir, i);
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
				scan_add(s, sub, id, gen);
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
static int install(dn_store *s, dn_wr *w, const char *tmp, uint64_t id, uint64_t gen, uint64_t len,
		   const uint64_t *sums, size_t nsums, bool sync)
{
	char *tside = xasprintf("%s.xxh", tmp);
	char *data = fin_path(s, id, gen, "");
	char *side = fin_path(s, id, gen, ".xxh");
	uint64_t old_gen = 0;
	bool replaced = false;
	int rc = write_sidecar(tside, sums, nsums, sync);
	if (rc < 0) {
		cdl_err("cannot write checksums '%s': %s", tside, strerror(-rc));
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
			rc = -ESTALE;
			goto out;
		}
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
		goto out;
	}
	if (r) {
		if (r->gen != gen) {
			old_gen = r->gen;
			replaced = true;
			unlink_replica(s, id, r->gen);
		}
		map_remove(s, r);
	}
	map_insert(s, id, gen, len);
	pthread_mutex_unlock(&s->mu);
	if (replaced)
		cdl_info("replica 'blk_%" PRIu64 "_%" PRIu64 "' replaces generation %" PRIu64, id,
			 gen, old_gen);
	if (sync) {
		char *sub = xasprintf("%s/current/%02x", s->dir, (unsigned)(id % NSUB));
		fsync_dir(sub);
		free(sub);
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
static void recover_tmp(dn_store *s, const char *tmp, const char *syncf, uint64_t id, uint64_t gen)
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
	if (install(s, NULL, tmp, id, gen, synced, sums, n, true) == 0)
		cdl_info("recovered replica 'blk_%" PRIu64 "_%" PRIu64
			 "' at its synced length %" PRIu64,
			 id, gen, synced);
	free(sums);
}

static int scan_tmp(dn_store *s)
{
	char *tdir = xasprintf("%s/tmp", s->dir);
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
			recover_tmp(s, tmp, syncf, id, gen);
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

static int load_id(dn_store *s)
{
	char *path = xasprintf("%s/datanode_id", s->dir);
	s->id = read_line_file(path);
	int rc = 0;
	if (s->id && (!*s->id || strlen(s->id) > 64)) {
		cdl_err("datanode id file '%s' is malformed", path);
		rc = -EINVAL;
		goto out;
	}
	if (!s->id) {
		s->id = read_line_file("/proc/sys/kernel/random/uuid");
		if (!s->id) {
			/* no procfs: time and pid make a unique enough id */
			s->id = xasprintf("%016" PRIx64 "-%08x", (uint64_t)cdl_wall_ns(),
					  (unsigned)getpid());
		}
		char *text = xasprintf("%s\n", s->id);
		rc = write_small_file(path, text);
		free(text);
		if (rc < 0)
			cdl_err("cannot write datanode id '%s': %s", path, strerror(-rc));
		else
			cdl_info("new datanode id '%s'", s->id);
	}
out:
	free(path);
	return rc;
}

int dn_store_open(const char *dir, dn_store **out)
{
	int rc = cdl_mkdirs(dir);
	if (rc < 0) {
		cdl_err("cannot create data dir '%s': %s", dir, strerror(-rc));
		return rc;
	}
	dn_store *s = xcalloc(1, sizeof(*s));
	s->dir = xstrdup(dir);
	s->lockfd = -1;
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cv, &ca);
	pthread_condattr_destroy(&ca);
	s->nb = 1024;
	s->tab = xcalloc(s->nb, sizeof(*s->tab));

	char *lp = xasprintf("%s/in_use.lock", dir);
	s->lockfd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (s->lockfd < 0 || flock(s->lockfd, LOCK_EX | LOCK_NB) < 0) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		cdl_err("cannot lock data dir '%s': %s", dir,
			rc == -EBUSY ? "in use by another datanode" : strerror(-rc));
		free(lp);
		goto fail;
	}
	free(lp);
	char *cp = xasprintf("%s/corrupt", dir);
	rc = cdl_mkdirs(cp);
	free(cp);
	if (rc < 0)
		goto fail;
	if ((rc = load_id(s)) < 0)
		goto fail;
	char *cl = xasprintf("%s/cluster_id", dir);
	s->cluster = read_line_file(cl);
	free(cl);
	if (!s->cluster)
		s->cluster = xstrdup("");
	if ((rc = scan_current(s)) < 0 || (rc = scan_tmp(s)) < 0)
		goto fail;
	cdl_info("block store '%s': %zu replicas, %" PRIu64 " bytes", dir, s->count, s->used);
	*out = s;
	return 0;
fail:
	dn_store_free(s);
	return rc;
}

void dn_store_free(dn_store *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nb; i++) {
		rep *r = s->tab[i];
		while (r) {
			rep *n = r->next;
			free(r);
			r = n;
		}
	}
	free(s->tab);
	if (s->lockfd >= 0)
		close(s->lockfd);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s->dir);
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
	return s->dir;
}

const char *dn_store_cluster(const dn_store *s)
{
	return s->cluster;
}

int dn_store_set_cluster(dn_store *s, const char *cluster)
{
	char *path = xasprintf("%s/cluster_id", s->dir);
	char *text = xasprintf("%s\n", cluster);
	int rc = write_small_file(path, text);
	if (rc == 0) {
		free(s->cluster);
		s->cluster = xstrdup(cluster);
	} else {
		cdl_err("cannot write cluster id '%s': %s", path, strerror(-rc));
	}
	free(text);
	free(path);
	return rc;
}

int dn_store_usage(dn_store *s, dn_usage *u)
{
	struct statvfs v;
	if (statvfs(s->dir, &v) < 0)
		return -errno;
	u->capacity = (uint64_t)v.f_blocks * v.f_frsize;
	u->remaining = (uint64_t)v.f_bavail * v.f_frsize;
	pthread_mutex_lock(&s->mu);
	u->used = s->used;
	u->blocks = (uint32_t)s->count;
	pthread_mutex_unlock(&s->mu);
	return 0;
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
		char *data = fin_path(s, id, r->gen, "");
		char *side = fin_path(s, id, r->gen, ".xxh");
		rd->fd = open(data, O_RDONLY | O_CLOEXEC);
		if (rd->fd >= 0)
			sfd = open(side, O_RDONLY | O_CLOEXEC);
		rc = rd->fd < 0 || sfd < 0 ? -errno : 0;
		rd->gen = r->gen;
		rd->len = r->len;
		free(data);
		free(side);
		pthread_mutex_unlock(&s->mu);
		if (rc == 0)
			rc = load_sidecar(sfd, rd->len, &rd->sums, &rd->nsums);
		if (sfd >= 0)
			close(sfd);
		if (rc < 0) {
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
		pthread_mutex_unlock(&s->mu);
		return rc;
	}
	pthread_mutex_unlock(&s->mu);
	return -ENOENT;
}

int dn_rd_chunk(dn_rd *rd, uint64_t idx, void *buf, size_t *n, uint64_t *sum)
{
	uint64_t off = idx * CDL_CHUNK;
	if (off >= rd->len)
		return -EINVAL;
	size_t k = rd->len - off < CDL_CHUNK ? (size_t)(rd->len - off) : CDL_CHUNK;
	ssize_t r;
	do
		r = pread(rd->fd, buf, k, (off_t)off);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	*n = k;
	if (rd->rbw) {
		if ((size_t)r != k)
			return -EIO;
		*sum = cdl_xxh3(buf, k);
		return 0;
	}
	*sum = idx < rd->nsums ? rd->sums[idx] : 0;
	if ((size_t)r != k) {
		/* the file is shorter than recorded */
		memset((uint8_t *)buf + r, 0, k - (size_t)r);
		return -EBADMSG;
	}
	if (idx >= rd->nsums || cdl_xxh3(buf, k) != rd->sums[idx])
		return -EBADMSG;
	return 0;
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
	char *data = fin_path(s, id, gen, "");
	char *side = fin_path(s, id, gen, ".xxh");
	move_aside(s, data, side, id, gen);
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

int dn_store_create(dn_store *s, uint64_t id, uint64_t gen, dn_wr **out)
{
	pthread_mutex_lock(&s->mu);
	rep *r = map_find(s, id);
	if (r && r->gen > gen) {
		pthread_mutex_unlock(&s->mu);
		return -ESTALE;
	}
	char *path =
	    xasprintf("%s/tmp/blk_%" PRIu64 "_%" PRIu64 ".%" PRIu64, s->dir, id, gen, ++s->serial);
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		int rc = -errno;
		pthread_mutex_unlock(&s->mu);
		cdl_err("cannot create replica '%s': %s", path, strerror(-rc));
		free(path);
		return rc;
	}
	for (dn_wr *o = s->rbw; o; o = o->next)
		if (o->id == id)
			o->superseded = true;
	dn_wr *w = xcalloc(1, sizeof(*w));
	w->s = s;
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
		char *tdir = xasprintf("%s/tmp", w->s->dir);
		rc = fsync_dir(tdir);
		free(tdir);
		if (rc < 0)
			goto fail;
	}
	w->synced = w->len;
	return 0;
fail:
	cdl_err("cannot sync replica '%s': %s", w->path, strerror(-rc));
	return rc;
}

uint64_t dn_wr_length(const dn_wr *w)
{
	return w->len;
}

static void wr_free(dn_wr *w)
{
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
	}
	if (rc == 0)
		rc = install(s, w, w->path, w->id, w->gen, w->len, w->sums, w->nsums, sync);
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
	char *data = fin_path(s, r->id, r->gen, "");
	char *side = fin_path(s, r->id, r->gen, ".xxh");
	char *path = xasprintf("%s/tmp/blk_%" PRIu64 "_%" PRIu64 ".%" PRIu64, s->dir, r->id, r->gen,
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
	w->id = r->id;
	w->gen = r->gen;
	w->fd = fd;
	w->sfd = -1;
	w->path = path;
	w->len = r->len;
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
		char *path = xasprintf("%s/tmp/blk_%" PRIu64 "_%" PRIu64 ".%" PRIu64, s->dir, id,
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
		unlink_replica(s, id, r->gen);
		map_remove(s, r);
		rc = 0;
	}
	pthread_mutex_unlock(&s->mu);
	/* a copy kept aside as corrupt is no longer wanted either */
	char *cd = xasprintf("%s/corrupt", s->dir);
	DIR *d = opendir(cd);
	if (d) {
		struct dirent *de;
		char *pre = xasprintf("blk_%" PRIu64 "_", id);
		while ((de = readdir(d))) {
			if (strncmp(de->d_name, pre, strlen(pre)) != 0)
				continue;
			char *p = xasprintf("%s/%s", cd, de->d_name);
			unlink(p);
			free(p);
		}
		free(pre);
		closedir(d);
	}
	free(cd);
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
