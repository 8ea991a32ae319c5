/* nn_store: see nn_store.h. */
#include "nn_store.h"

#include <errno.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "cdl_log.h"
#include "cdl_util.h"

#define REOPEN_MIN (16u << 20) /* free bytes a reopen waits for when there is no reserve */

struct nn_store {
	rocksdb_t *db;
	rocksdb_options_t *opts;
	rocksdb_block_based_table_options_t *table;
	rocksdb_cache_t *cache;
	rocksdb_writeoptions_t *wopts;
	rocksdb_readoptions_t *ropts;
	bool sync;
	int batch_ms;
	pthread_t flusher;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
	/* nn_store_inject: failures still to give, and their errno */
	_Atomic unsigned fail_count[NN_STORE_NOPS];
	_Atomic int fail_err[NN_STORE_NOPS];
	_Atomic unsigned fail_skip[NN_STORE_NOPS]; /* successes still to give first */
	_Atomic uint64_t tag_written;		   /* highest tag of a write that returned */
	_Atomic uint64_t tag_synced;		   /* highest tag reported to synced_fn */
	nn_store_synced_fn synced_fn;
	void *synced_arg;
	char *dir;
	_Atomic uint64_t reserve; /* bytes kept free on the metadata disk */
	_Atomic bool low;	  /* below the reserve at the last check (for the log) */
	/* RocksDB failed a write: its WAL writer is poisoned (a sync of it
	 * aborts Debian's assert-enabled build) and the DB refuses writes
	 * until reopened, so nn_store refuses them itself */
	_Atomic int broken; /* 0 or the -errno the failed write gave */
	/* taken shared by every use of db, exclusively by reopen (the
	 * namenode's lock already keeps its other threads out: this is for
	 * the syncs it makes outside that lock) */
	pthread_rwlock_t rw;
	_Atomic int iters;     /* iterators alive (a reopen waits for none) */
	_Atomic bool unsynced; /* a write returned since the last sync began */
};

struct nn_iter {
	nn_store *s;
	rocksdb_iterator_t *it;
	rocksdb_readoptions_t *ro;
	char *prefix;
	size_t plen;
	char *bound; /* the first key past the prefix (NULL: none) */
};

/* Convert a RocksDB error at the edge: log it, free it, return -ENOSPC
 * for a full disk (RocksDB's NoSpace and SpaceLimit statuses name it in
 * their text, the C API gives no code), else -EIO. */
static int rocks_err(const char *what, char *err)
{
	cdl_err("rocksdb %s: %s", what, err);
	int rc = strstr(err, "No space left") || strstr(err, "space limit") ? -ENOSPC : -EIO;
	rocksdb_free(err);
	return rc;
}

/* -ENOSPC when the metadata disk has less than the reserve free, else 0.
 * One statvfs per mutation (about a microsecond), so space that comes back
 * is seen by the next operation. */
static int space_check(nn_store *s)
{
	uint64_t reserve = atomic_load(&s->reserve);
	if (!reserve)
		return 0;
	struct statvfs v;
	if (statvfs(s->dir, &v) < 0)
		return 0; /* cannot tell: let RocksDB find out */
	uint64_t avail = (uint64_t)v.f_bavail * v.f_frsize;
	bool low = avail < reserve;
	bool was = atomic_exchange(&s->low, low);
	if (low && !was)
		cdl_err("metadata disk of '%s': %llu KiB free, below the reserve of %llu KiB: "
			"refusing namespace changes (ENOSPC) until space is freed",
			s->dir, (unsigned long long)(avail >> 10),
			(unsigned long long)(reserve >> 10));
	else if (!low && was)
		cdl_info("metadata disk of '%s': %llu KiB free again: accepting namespace changes",
			 s->dir, (unsigned long long)(avail >> 10));
	return low ? -ENOSPC : 0;
}

void nn_store_set_reserve(nn_store *s, uint64_t bytes)
{
	atomic_store(&s->reserve, bytes);
}

/* An injected failure of op, if one is due: its -errno, else 0. */
static int injected(nn_store *s, nn_store_op op)
{
	unsigned skip = atomic_load(&s->fail_skip[op]);
	while (skip && !atomic_compare_exchange_weak(&s->fail_skip[op], &skip, skip - 1))
		;
	if (skip)
		return 0;
	unsigned n = atomic_load(&s->fail_count[op]);
	while (n && !atomic_compare_exchange_weak(&s->fail_count[op], &n, n - 1))
		;
	if (!n)
		return 0;
	int err = atomic_load(&s->fail_err[op]);
	cdl_warn("injected failure of metadata %s: %s", op == NN_STORE_WRITE ? "write" : "sync",
		 strerror(-err));
	return err;
}

void nn_store_inject_after(nn_store *s, nn_store_op op, int err, unsigned skip, unsigned count)
{
	atomic_store(&s->fail_err[op], err < 0 ? err : -EIO);
	atomic_store(&s->fail_skip[op], skip);
	atomic_store(&s->fail_count[op], count);
}

void nn_store_inject(nn_store *s, nn_store_op op, int err, unsigned count)
{
	nn_store_inject_after(s, op, err, 0, count);
}

/* Sync the WAL and tell the synced callback how far it reaches; a
 * failure stops the process (nn_store.h says why), so the flusher and
 * nn_store_sync share one policy. */
static void wal_sync(nn_store *s)
{
	uint64_t upto = atomic_load(&s->tag_written);
	pthread_rwlock_rdlock(&s->rw);
	bool pending = atomic_exchange(&s->unsynced, false);
	int rc = injected(s, NN_STORE_SYNC);
	if (rc == 0 && atomic_load(&s->broken)) {
		/* the WAL writer is poisoned: nothing can be synced; with
		 * nothing written since the last sync there is nothing to lose */
		if (!pending) {
			pthread_rwlock_unlock(&s->rw);
			return;
		}
		rc = atomic_load(&s->broken);
	} else if (rc == 0) {
		char *err = NULL;
		rocksdb_flush_wal(s->db, 1, &err);
		if (err)
			rc = rocks_err("wal sync", err);
	}
	pthread_rwlock_unlock(&s->rw);
	if (rc < 0) {
		cdl_err("cannot sync the metadata log: %s: stopping", strerror(-rc));
		_exit(1);
	}
	/* the flusher syncs every batch_ms, mostly with nothing new to report */
	uint64_t was = atomic_load(&s->tag_synced);
	while (upto > was && !atomic_compare_exchange_weak(&s->tag_synced, &was, upto))
		;
	if (s->synced_fn && upto > was)
		s->synced_fn(s->synced_arg, upto);
}

void nn_store_on_synced(nn_store *s, nn_store_synced_fn fn, void *arg)
{
	s->synced_fn = fn;
	s->synced_arg = arg;
}

static void *flusher_main(void *arg)
{
	nn_store *s = arg;
	pthread_mutex_lock(&s->lock);
	while (!s->stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)s->batch_ms * 1000000;
		ts.tv_sec += ts.tv_nsec / 1000000000;
		ts.tv_nsec %= 1000000000;
		pthread_cond_timedwait(&s->cond, &s->lock, &ts);
		pthread_mutex_unlock(&s->lock);
		wal_sync(s);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int nn_store_open(const char *dir, bool sync, int batch_ms, int64_t cache_mb, nn_store **out)
{
	int rc = cdl_mkdirs(dir);
	if (rc < 0) {
		cdl_err("cannot create metadata directory '%s': %s", dir, strerror(-rc));
		return rc;
	}
	nn_store *s = xcalloc(1, sizeof(*s));
	s->opts = rocksdb_options_create();
	rocksdb_options_set_create_if_missing(s->opts, 1);
	rocksdb_options_increase_parallelism(s->opts, 2);
	rocksdb_options_set_max_open_files(s->opts, 512);
	/* in batch mode writes must reach the WAL file at once, not sit in a
	 * user-space buffer, so that only a power failure can lose them */
	rocksdb_options_set_manual_wal_flush(s->opts, 0);
	/* RocksDB's own LOG lives on the metadata disk, and Debian's build
	 * aborts (an assert) when a file is written again after a failed
	 * write: on a full disk the second line logged would kill the
	 * namenode. Keep it to fatal messages; the errors RocksDB returns are
	 * logged by nn_store (rocks_err). */
	rocksdb_options_set_info_log_level(s->opts, 4 /* FATAL_LEVEL */);
	/* Tuned for the namespace: most reads are point lookups of inode
	 * records and directory entries, many of names that do not exist (a
	 * create's lookup): a bloom filter per table answers those without
	 * reading a block, and the block cache holds the hot records. */
	s->cache = rocksdb_cache_create_lru((size_t)(cache_mb > 0 ? cache_mb : 256) << 20);
	s->table = rocksdb_block_based_options_create();
	rocksdb_block_based_options_set_block_cache(s->table, s->cache);
	rocksdb_block_based_options_set_filter_policy(s->table,
						      rocksdb_filterpolicy_create_bloom_full(10));
	rocksdb_block_based_options_set_cache_index_and_filter_blocks(s->table, 1);
	rocksdb_options_set_block_based_table_factory(s->opts, s->table);
	char *err = NULL;
	s->db = rocksdb_open(s->opts, dir, &err);
	if (err) {
		rc = rocks_err("open", err);
		rocksdb_options_destroy(s->opts);
		rocksdb_block_based_options_destroy(s->table);
		rocksdb_cache_destroy(s->cache);
		free(s);
		return rc;
	}
	s->dir = xstrdup(dir);
	s->sync = sync;
	s->batch_ms = batch_ms > 0 ? batch_ms : 5;
	s->wopts = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(s->wopts, 0); /* see nn_store_sync */
	s->ropts = rocksdb_readoptions_create();
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	pthread_rwlock_init(&s->rw, NULL);
	if (!sync)
		pthread_create(&s->flusher, NULL, flusher_main, s);
	*out = s;
	return 0;
}

void nn_store_close(nn_store *s)
{
	if (!s)
		return;
	if (!s->sync) {
		pthread_mutex_lock(&s->lock);
		s->stop = true;
		pthread_cond_signal(&s->cond);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->flusher, NULL);
		char *err = NULL;
		if (!atomic_load(&s->broken))
			rocksdb_flush_wal(s->db, 1, &err);
		if (err)
			rocks_err("wal sync", err);
	}
	rocksdb_close(s->db);
	rocksdb_writeoptions_destroy(s->wopts);
	rocksdb_readoptions_destroy(s->ropts);
	rocksdb_options_destroy(s->opts);
	rocksdb_block_based_options_destroy(s->table);
	rocksdb_cache_destroy(s->cache);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	pthread_rwlock_destroy(&s->rw);
	free(s->dir);
	free(s);
}

int nn_store_get(nn_store *s, const void *key, size_t klen, char **val, size_t *vlen)
{
	char *err = NULL;
	pthread_rwlock_rdlock(&s->rw);
	*val = rocksdb_get(s->db, s->ropts, key, klen, vlen, &err);
	pthread_rwlock_unlock(&s->rw);
	if (err)
		return rocks_err("get", err);
	return *val ? 0 : -ENOENT;
}

void nn_store_free(void *val)
{
	rocksdb_free(val);
}

nn_batch *nn_batch_new(void)
{
	return (nn_batch *)rocksdb_writebatch_create();
}

void nn_batch_put(nn_batch *b, const void *k, size_t kl, const void *v, size_t vl)
{
	rocksdb_writebatch_put((rocksdb_writebatch_t *)b, k, kl, v, vl);
}

void nn_batch_del(nn_batch *b, const void *k, size_t kl)
{
	rocksdb_writebatch_delete((rocksdb_writebatch_t *)b, k, kl);
}

void nn_batch_free(nn_batch *b)
{
	rocksdb_writebatch_destroy((rocksdb_writebatch_t *)b);
}

/* RocksDB failed a write and stopped writing (its C API has no
 * DB::Resume, and 7.8 does not resume by itself after a failed WAL
 * append): space is back, so close it and open it again, as a restart
 * would. The open replays the WAL (every write that returned; the failed
 * one's torn record is dropped) and flushes it to tables, so what the
 * namenode holds in memory is what the store holds. If the open fails
 * the store is opened read-only to go on serving reads, and the next
 * write tries again; if that fails too the process stops (a restart
 * recovers the same way). Returns 0, or the error writes still get. */
static int reopen(nn_store *s)
{
	/* the open writes tables, a MANIFEST and a WAL: not on a disk that
	 * is still full (a failed write inside the open risks the assert a
	 * failed WAL write does), so wait for the reserve, or REOPEN_MIN
	 * without one */
	struct statvfs v;
	uint64_t need = atomic_load(&s->reserve);
	if (need < REOPEN_MIN)
		need = REOPEN_MIN;
	if (statvfs(s->dir, &v) < 0 || (uint64_t)v.f_bavail * v.f_frsize < need)
		return atomic_load(&s->broken);
	pthread_rwlock_wrlock(&s->rw);
	int rc = atomic_load(&s->broken);
	/* not with an iterator alive (a walk that let go of the namespace
	 * lock between steps): the next write tries again */
	if (!rc || atomic_load(&s->iters)) {
		pthread_rwlock_unlock(&s->rw);
		return rc;
	}
	rocksdb_close(s->db);
	char *err = NULL;
	s->db = rocksdb_open(s->opts, s->dir, &err);
	if (!err) {
		atomic_store(&s->broken, 0);
		/* the open made everything it replayed durable */
		atomic_store(&s->unsynced, false);
		cdl_info("metadata store reopened: taking namespace changes again");
		rc = 0;
	} else {
		rocks_err("reopen", err);
		err = NULL;
		s->db = rocksdb_open_for_read_only(s->opts, s->dir, 0, &err);
		if (err) {
			rocks_err("read-only reopen", err);
			cdl_err("cannot reopen the metadata store: stopping");
			_exit(1);
		}
	}
	pthread_rwlock_unlock(&s->rw);
	return rc;
}

int nn_store_write_tag(nn_store *s, nn_batch *b, uint64_t tag)
{
	int rc = injected(s, NN_STORE_WRITE);
	if (rc == 0)
		rc = space_check(s);
	if (rc == 0 && atomic_load(&s->broken))
		rc = reopen(s);
	if (rc < 0)
		return rc;
	char *err = NULL;
	pthread_rwlock_rdlock(&s->rw);
	rocksdb_write(s->db, s->wopts, (rocksdb_writebatch_t *)b, &err);
	pthread_rwlock_unlock(&s->rw);
	if (err) {
		rc = rocks_err("write", err);
		atomic_store(&s->broken, rc);
		cdl_err(
		    "metadata store stopped taking writes: namespace changes fail with %s until "
		    "space is freed (reads go on)",
		    strerror(-rc));
		return rc;
	}
	atomic_store(&s->unsynced, true);
	if (tag)
		atomic_store(&s->tag_written, tag);
	return 0;
}

int nn_store_write(nn_store *s, nn_batch *b)
{
	return nn_store_write_tag(s, b, 0);
}

void nn_store_sync(nn_store *s)
{
	wal_sync(s);
}

nn_iter *nn_iter_new(nn_store *s, const void *prefix, size_t plen, const void *start, size_t slen)
{
	nn_iter *it = xcalloc(1, sizeof(*it));
	it->ro = rocksdb_readoptions_create();
	it->prefix = xmalloc(plen);
	memcpy(it->prefix, prefix, plen);
	it->plen = plen;
	/* stop at the end of the prefix: a seek into an empty range would
	 * otherwise walk on through whatever follows it, such as the
	 * tombstones of trimmed events after the directory entries */
	size_t bl = plen;
	while (bl && ((const uint8_t *)prefix)[bl - 1] == 0xff)
		bl--;
	if (bl) {
		/* RocksDB keeps a pointer to the bound: it lives as long as it */
		it->bound = xmalloc(bl);
		memcpy(it->bound, prefix, bl);
		it->bound[bl - 1] = (char)(((const uint8_t *)prefix)[bl - 1] + 1);
		rocksdb_readoptions_set_iterate_upper_bound(it->ro, it->bound, bl);
	}
	pthread_rwlock_rdlock(&s->rw);
	it->it = rocksdb_create_iterator(s->db, it->ro);
	it->s = s;
	atomic_fetch_add(&s->iters, 1); /* before a reopen can look */
	pthread_rwlock_unlock(&s->rw);
	rocksdb_iter_seek(it->it, start, slen);
	return it;
}

bool nn_iter_valid(nn_iter *it)
{
	if (!rocksdb_iter_valid(it->it))
		return false;
	size_t kl;
	const char *k = rocksdb_iter_key(it->it, &kl);
	return kl >= it->plen && !memcmp(k, it->prefix, it->plen);
}

const char *nn_iter_key(nn_iter *it, size_t *len)
{
	return rocksdb_iter_key(it->it, len);
}

const char *nn_iter_value(nn_iter *it, size_t *len)
{
	return rocksdb_iter_value(it->it, len);
}

void nn_iter_next(nn_iter *it)
{
	rocksdb_iter_next(it->it);
}

void nn_iter_free(nn_iter *it)
{
	if (!it)
		return;
	rocksdb_iter_destroy(it->it);
	atomic_fetch_sub(&it->s->iters, 1);
	rocksdb_readoptions_destroy(it->ro);
	free(it->prefix);
	free(it->bound);
	free(it);
}

int nn_store_checkpoint(nn_store *s, const char *dir)
{
	/* a checkpoint copies the MANIFEST and OPTIONS files beside the
	 * database: not into the reserve, and not with a poisoned store */
	int rc = atomic_load(&s->broken);
	if (rc == 0)
		rc = space_check(s);
	if (rc < 0)
		return rc;
	char *err = NULL;
	pthread_rwlock_rdlock(&s->rw);
	rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(s->db, &err);
	if (!err)
		rocksdb_checkpoint_create(cp, dir, 0, &err);
	if (cp)
		rocksdb_checkpoint_object_destroy(cp);
	pthread_rwlock_unlock(&s->rw);
	return err ? rocks_err("checkpoint", err) : 0;
}
