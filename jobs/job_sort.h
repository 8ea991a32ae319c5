/* job_sort: map output records, the collector that partitions, sorts,
 * combines and spills them, and the merge of sorted runs that feeds the
 * reduce side. Owns the on-disk formats of map output:
 *
 *  - a record is a varint (LEB128) key length, a varint value length, the
 *    key bytes, the value bytes; keys and values are at most JOB_REC_MAX;
 *  - a run is a sequence of records sorted by key (bytewise, shorter first
 *    on a common prefix, as LC_ALL=C sort); records with equal keys keep
 *    the order in which they were produced;
 *  - a map output file (file.out) is one run per partition, back to back;
 *    its index (file.index) has 32 bytes per partition: big-endian u64
 *    offset, length, records and XXH3-64 of the run's bytes.
 *
 * The partition of a key is XXH3-64(key) mod the number of reduces.
 * A collector is used by one thread; cursors and mergers likewise. Nothing
 * here talks to the cluster. */
#ifndef JOB_SORT_H
#define JOB_SORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "job_counter.h"
#include "job_spec.h"

/* Longest key or value, bytes (also the longest line a task accepts). */
#define JOB_REC_MAX	(64u << 20)
#define JOB_INDEX_ENTRY 32

unsigned job_partition(const char *key, size_t klen, unsigned nparts);

/* Bytewise key order: <0, 0, >0. */
int job_key_cmp(const char *a, size_t al, const char *b, size_t bl);

/* ---- reading runs */

/* Iterates the records of a run held in memory [p, end). The pointers it
 * returns point into that memory. */
typedef struct job_cursor {
	const uint8_t *p, *end;
	const char *key, *val;
	size_t klen, vlen;
} job_cursor;

void job_cursor_init(job_cursor *c, const void *data, size_t len);
/* 1 and the next record in key/val, 0 at the end, -EBADMSG if the bytes
 * are not a well-formed record (a length past the end or over the cap). */
int job_cursor_next(job_cursor *c);

/* A k-way merge of cursors (borrowed; they must outlive the merger). Ties
 * go to the lower cursor index, so a merge of runs is stable. */
typedef struct job_merger job_merger;
job_merger *job_merger_new(job_cursor *cursors, size_t n);
/* 1 and the next record, 0 at the end, -EBADMSG from a cursor. The record
 * stays valid as long as the cursors' memory does. */
int job_merger_next(job_merger *m, const char **key, size_t *klen, const char **val, size_t *vlen);
void job_merger_free(job_merger *m);

/* A source of sorted records: job_merger_next has this shape. */
typedef int (*job_next_fn)(void *src, const char **key, size_t *klen, const char **val,
			   size_t *vlen);
/* Where records go: 0 or -errno. */
typedef int (*job_emit_fn)(void *ctx, const char *key, size_t klen, const char *val, size_t vlen);

/* Run a built-in reduce (sum, count, identity) over sorted records: one
 * emit per key for sum and count (value in decimal), one per record for
 * identity. Records from next must stay valid until the following call.
 * Counts "reduce input groups" and "reduce input records" in counters
 * (when not NULL). 0, or -EINVAL with a message in err (a value that is not
 * an integer, an overflow), or an error from next or emit. */
int job_reduce_builtin(enum job_op_kind op, job_next_fn next, void *src, job_emit_fn emit,
		       void *ctx, job_counters *counters, char *err, size_t errlen);

/* Parse a whole decimal int64 (optional sign); false if it is not one. */
bool job_parse_i64(const char *s, size_t n, int64_t *out);

/* ---- writing */

/* A buffered writer to an fd that counts bytes and records and checksums
 * the current segment. */
typedef struct job_sink {
	int fd;
	uint8_t *buf;
	size_t used, cap;
	uint64_t off;	    /* bytes written (flushed or buffered) since open */
	uint64_t seg_start; /* offset where the current segment began */
	uint64_t seg_records;
	void *xs; /* XXH3 state of the current segment */
	int err;  /* first write error, sticky */
} job_sink;

void job_sink_init(job_sink *s, int fd);
/* Append one encoded record; 0 or -errno. */
int job_sink_put(job_sink *s, const char *key, size_t klen, const char *val, size_t vlen);
/* Append raw bytes (text output); 0 or -errno. */
int job_sink_write(job_sink *s, const void *p, size_t n);
/* End the current segment: its offset, length, records and checksum; a new
 * segment starts. */
void job_sink_segment(job_sink *s, uint64_t *off, uint64_t *len, uint64_t *records, uint64_t *sum);
int job_sink_flush(job_sink *s);
/* Flush and free the buffer (not the fd); returns the first error. */
int job_sink_release(job_sink *s);

/* One partition's run in a map output file. */
typedef struct job_index_entry {
	uint64_t offset, length, records, checksum;
} job_index_entry;

int job_index_write(const char *path, const job_index_entry *e, unsigned n);
/* Read entry part of the index at path; -ENOENT, -EBADMSG (short or
 * inconsistent), or 0. */
int job_index_read(const char *path, unsigned part, job_index_entry *e);
/* Same from an open index file (the shuffle server opens it without
 * following links). */
int job_index_read_fd(int fd, unsigned part, job_index_entry *e);

/* ---- the collector */

/* An external combiner: reads sorted records through next and emits its
 * own (in any order); used for "exec:" combiners. */
typedef int (*job_filter_fn)(void *fctx, job_next_fn next, void *src, job_emit_fn emit, void *ectx);

typedef struct job_collector_opts {
	const char *dir;	  /* local directory for spill files */
	unsigned nparts;	  /* reduce partitions, >= 1 */
	size_t mem_limit;	  /* bytes buffered before a spill */
	enum job_op_kind combine; /* NONE, IDENTITY, SUM or EXEC */
	job_filter_fn filter;	  /* EXEC: runs the command */
	void *filter_ctx;
	job_counters *counters; /* borrowed; may be NULL */
} job_collector_opts;

typedef struct job_collector job_collector;

job_collector *job_collector_new(const job_collector_opts *o);
/* Add one map output record. With combine = sum the value must be an
 * integer (-EINVAL otherwise, with a message from job_collector_error). */
int job_collector_add(job_collector *c, const char *key, size_t klen, const char *val, size_t vlen);
/* Spill what is left, merge every run into out_path (one run per
 * partition, combined) and write its index to index_path. 0 or -errno. */
int job_collector_finish(job_collector *c, const char *out_path, const char *index_path);
const char *job_collector_error(const job_collector *c);
unsigned job_collector_spills(const job_collector *c);
/* Remove spill files and free. */
void job_collector_free(job_collector *c);

#endif
