/* nn_check: the namenode's invariant checker. One full scan of the
 * RocksDB records ('M' counters, 'I' inodes, 'D' directory entries)
 * compared with each other and with the in-memory state: the block map
 * equals the blocks the inode records list (same gen, length and owner,
 * nothing more, nothing less; none under construction in a closed file),
 * the counters equal what the scan counts,
 * every directory entry names an inode whose parent and name are that
 * entry's, every inode but the root is reached by exactly such an entry,
 * and a directory's entry and subdirectory counts are its entries'.
 *
 * For tests and administrators (HTTP /check with the admin token,
 * caudal-namenode --check): it holds the namespace lock for the whole
 * scan, so every operation waits for it. The block map and the records
 * agree between operations: a delete frees its blocks from the map just
 * after its WAL sync, outside the lock, so a check that races a delete can
 * see its blocks in the map without an owner for that moment; check a
 * quiet namenode (the crash test does), or run it twice. */
#ifndef NN_CHECK_H
#define NN_CHECK_H

#include <stddef.h>

#include "nn_ns.h"

typedef struct nn_check_report {
	size_t violations; /* lines in text after the summary */
	uint64_t inodes, files, dirs, symlinks, blocks;
	uint64_t inline_files; /* files whose bytes are in their inode record */
	char *text;	       /* "ok ..." summary line, then one line per violation (malloc) */
} nn_check_report;

/* Scan and check; takes and releases ns->lock. Stops listing (not
 * counting) violations after max_lines. 0 with *r filled (free with
 * nn_check_report_release), or -errno when the store cannot be read. */
int nn_check_run(nn_ns *ns, size_t max_lines, nn_check_report *r);
void nn_check_report_release(nn_check_report *r);

#endif
