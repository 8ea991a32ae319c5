/* nn_store: the namenode's only contact with RocksDB. A key-value store
 * with atomic write batches, prefix iteration and checkpoints.
 *
 * Keys (big-endian ids so that RocksDB's byte order is id order):
 *   'I' be64(ino)               -> InodeRec
 *   'D' be64(parent) name       -> be64(ino)
 *   'E' be64(txid)              -> Event
 *   'M' "meta"                  -> MetaRec
 *   'X' be64(ino)               -> "" (a deleted directory whose subtree is
 *                                  still being removed: nn_ns.c, reap)
 *   'Q' be64(ino)               -> QuotaRec (a quota'd directory)
 *   'R' holder                  -> be64(lo) be64(hi) be64(seq) (inode ids
 *                                  reserved for a Batch caller: nn_ns.c)
 *
 * Durability: writes reach the WAL file (write(2)) before nn_store_write
 * returns but are not synced by it. With sync on, the caller calls
 * nn_store_sync before acknowledging; syncs of concurrent callers overlap
 * (group commit), as HDFS's logSync outside the namesystem lock does. In
 * batch mode a flusher thread syncs the WAL every batch_ms, so a power
 * failure (not a process crash) can lose the last batch_ms of acknowledged
 * operations.
 *
 * A failed WAL sync stops the process, in either mode: once fsync has
 * failed the kernel may have dropped the pages it could not write, so
 * neither retrying nor going on can keep what was promised; a restart
 * recovers from what the log really holds (PostgreSQL's answer to the
 * same problem, and HDFS's namenode stops when its edit log fails). A
 * failed write only fails its operation: nothing of it was applied.
 *
 * A full disk: every write first checks that the metadata disk keeps the
 * reserve free (nn_store_set_reserve; HDFS's namenode resource checker
 * keeps 100 MB) and fails with -ENOSPC without reaching RocksDB when it
 * does not, so RocksDB never meets ENOSPC in its WAL, flushes or
 * compactions; reads go on, and writes succeed again as soon as space is
 * freed. Should RocksDB fail a write all the same (the disk filled between
 * the check and the write), the store refuses every later write with that
 * error until the namenode is restarted: RocksDB has stopped writing, and
 * its C API cannot resume it; a sync still owed then fails (and stops the
 * process, as above).
 * Thread-safe (RocksDB is); the namenode serialises writers itself. */
#ifndef NN_STORE_H
#define NN_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct nn_store nn_store;
typedef struct nn_batch nn_batch;
typedef struct nn_iter nn_iter;

int nn_store_open(const char *dir, bool sync, int batch_ms, int64_t cache_mb, nn_store **out);
void nn_store_close(nn_store *s);
/* Writes (and checkpoints) fail with -ENOSPC while the disk of the
 * store's directory has fewer than bytes free (0: no check). */
void nn_store_set_reserve(nn_store *s, uint64_t bytes);
/* 0 with *val (free with nn_store_free), -ENOENT, or -EIO. */
int nn_store_get(nn_store *s, const void *key, size_t klen, char **val, size_t *vlen);
void nn_store_free(void *val);

nn_batch *nn_batch_new(void);
void nn_batch_put(nn_batch *b, const void *k, size_t kl, const void *v, size_t vl);
void nn_batch_del(nn_batch *b, const void *k, size_t kl);
void nn_batch_free(nn_batch *b);
/* Apply the batch atomically; 0, -ENOSPC or -EIO (logged). nn_store_write_tag
 * names the write with a tag (the namenode's transaction id: tags only
 * grow) that a later sync reports to the synced callback. */
int nn_store_write(nn_store *s, nn_batch *b);
int nn_store_write_tag(nn_store *s, nn_batch *b, uint64_t tag);
/* Sync the WAL: every write that returned before this call is durable
 * when it returns. When the sync fails it does not return (see above). */
void nn_store_sync(nn_store *s);
/* After every WAL sync (nn_store_sync's or the batch flusher's) fn gets
 * the highest tag written before that sync began: everything up to it is
 * durable. Called on the syncing thread with no store lock held. Set it
 * once, before the first write. */
typedef void (*nn_store_synced_fn)(void *arg, uint64_t tag);
void nn_store_on_synced(nn_store *s, nn_store_synced_fn fn, void *arg);

/* Fault injection for the crash and fault tests: the next `count` calls
 * of op fail with err (a negative errno) without reaching RocksDB, as a
 * failing or full disk would make them fail (SQLite's fault hooks,
 * FoundationDB's BUGGIFY in miniature). Safe from any thread. */
typedef enum nn_store_op { NN_STORE_WRITE, NN_STORE_SYNC, NN_STORE_NOPS } nn_store_op;
void nn_store_inject(nn_store *s, nn_store_op op, int err, unsigned count);
/* The same, once `skip` more calls of op have succeeded. */
void nn_store_inject_after(nn_store *s, nn_store_op op, int err, unsigned skip, unsigned count);

/* Iterate keys starting with prefix, from the first key >= start (start
 * must itself begin with the prefix). */
nn_iter *nn_iter_new(nn_store *s, const void *prefix, size_t plen, const void *start, size_t slen);
bool nn_iter_valid(nn_iter *it);
const char *nn_iter_key(nn_iter *it, size_t *len);
const char *nn_iter_value(nn_iter *it, size_t *len);
void nn_iter_next(nn_iter *it);
void nn_iter_free(nn_iter *it);

/* A consistent copy of the database in dir (which must not exist). */
int nn_store_checkpoint(nn_store *s, const char *dir);

#endif
