/* job_split: which bytes of a file a map task reads. A split is a byte
 * range [offset, offset+length) of a file (one block); it owns every line
 * that starts inside it. So a split not at offset 0 skips its first,
 * partial line (the previous split reads it), and the last line it owns is
 * read whole even where it runs past the split's end. Concatenating the
 * bytes streamed for every split of a file gives the file, exactly once.
 *
 * Stateless; the callbacks say where bytes come from and go. Any thread. */
#ifndef JOB_SPLIT_H
#define JOB_SPLIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Read up to n bytes at off; bytes read (0 at end of file) or -errno. */
typedef ssize_t (*job_pread_fn)(void *ctx, void *buf, size_t n, uint64_t off);
/* Take n bytes of the split's lines; 0 or -errno (stops the stream). */
typedef int (*job_out_fn)(void *ctx, const void *buf, size_t n);

typedef struct job_split_stats {
	uint64_t bytes;	  /* bytes handed to out */
	uint64_t records; /* lines handed to out (a final line without '\n' counts) */
	uint64_t first;	  /* file offset of the first byte handed out */
} job_split_stats;

/* Stream the lines owned by [offset, offset+length) through out, reading
 * with rd in pieces of bufsize bytes. 0 or the first -errno of rd or out. */
int job_split_stream(job_pread_fn rd, void *rctx, uint64_t offset, uint64_t length, size_t bufsize,
		     job_out_fn out, void *octx, job_split_stats *st);

#endif
