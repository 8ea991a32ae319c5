/* cdl_util: allocation that aborts on failure, a per-call arena, clocks,
 * path validation and small I/O helpers shared by every program.
 * Everything here is thread-safe; an arena belongs to one thread at a time. */
#ifndef CDL_UTIL_H
#define CDL_UTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CDL_NAME_MAX 255
#define CDL_PATH_MAX 4095

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a fresh allocation the caller frees */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A bump allocator for the lifetime of one RPC: everything a handler puts in
 * a reply comes from here and is freed at once by cdl_arena_release. */
typedef struct cdl_arena_chunk cdl_arena_chunk;
typedef struct cdl_arena {
	cdl_arena_chunk *head;
} cdl_arena;

void cdl_arena_init(cdl_arena *a);
void cdl_arena_release(cdl_arena *a);
void *cdl_arena_alloc(cdl_arena *a, size_t n); /* zeroed */
char *cdl_arena_strdup(cdl_arena *a, const char *s);
void *cdl_arena_memdup(cdl_arena *a, const void *p, size_t n);

/* clocks */
int64_t cdl_now_ms(void);  /* CLOCK_MONOTONIC, ms */
int64_t cdl_now_ns(void);  /* CLOCK_MONOTONIC, ns */
int64_t cdl_wall_ns(void); /* CLOCK_REALTIME, ns since the epoch */
/* A condition whose timed waits count on CLOCK_MONOTONIC, like
 * cdl_now_ms (a wall-clock step neither cuts nor stretches them). */
void cdl_cond_init_mono(pthread_cond_t *cv);

/* Validate an absolute path: starts with '/', components 1..255 bytes, no
 * '.', '..' or empty component (a single trailing '/' is tolerated), total
 * length <= CDL_PATH_MAX. Returns 0 or -EINVAL/-ENAMETOOLONG and, if why is
 * non-NULL, points it at a static explanation. */
int cdl_path_check(const char *path, const char **why);
/* Validate one entry name (no '/', not '.' or '..', 1..255 bytes). */
int cdl_name_check(const char *name, const char **why);

/* Full read/write on a socket or file, retrying on EINTR and short counts.
 * Return 0, or -errno (-EPIPE/-ECONNRESET...; read returns -ENODATA on EOF
 * before n bytes). */
int cdl_read_full(int fd, void *buf, size_t n);
int cdl_write_full(int fd, const void *buf, size_t n);

/* Make a directory and its parents (mode 0755); 0 or -errno. */
int cdl_mkdirs(const char *path);

/* Big-endian helpers for wire framing. */
static inline void cdl_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}
static inline uint32_t cdl_get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void cdl_put_be64(uint8_t *p, uint64_t v)
{
	cdl_put_be32(p, (uint32_t)(v >> 32));
	cdl_put_be32(p + 4, (uint32_t)v);
}
static inline uint64_t cdl_get_be64(const uint8_t *p)
{
	return (uint64_t)cdl_get_be32(p) << 32 | cdl_get_be32(p + 4);
}

#endif
