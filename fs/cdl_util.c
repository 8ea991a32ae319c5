/* cdl_util: see cdl_util.h. */
#include "cdl_util.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void oom(size_t n)
{
	fprintf(stderr, "fatal: out of memory allocating %zu bytes\n", n);
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom(n);
	return p;
}

void *xcalloc(size_t nmemb, size_t n)
{
	void *p = calloc(nmemb ? nmemb : 1, n ? n : 1);
	if (!p)
		oom(nmemb * n);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		oom(n);
	return p;
}

char *xstrdup(const char *s)
{
	char *p = strdup(s);
	if (!p)
		oom(strlen(s));
	return p;
}

char *xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);
	if (!p)
		oom(n);
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;
	va_start(ap, fmt);
	if (vasprintf(&p, fmt, ap) < 0)
		oom(0);
	va_end(ap);
	return p;
}

/* Arena chunks: a header followed by the bump area. */
struct cdl_arena_chunk {
	cdl_arena_chunk *next;
	size_t used, cap;
	max_align_t data[];
};

#define ARENA_MIN 4096

void cdl_arena_init(cdl_arena *a)
{
	a->head = NULL;
}

void cdl_arena_release(cdl_arena *a)
{
	cdl_arena_chunk *c = a->head, *next;
	for (; c; c = next) {
		next = c->next;
		free(c);
	}
	a->head = NULL;
}

void *cdl_arena_alloc(cdl_arena *a, size_t n)
{
	const size_t align = _Alignof(max_align_t);
	size_t need = (n + align - 1) / align * align;
	cdl_arena_chunk *c = a->head;
	if (!c || c->cap - c->used < need) {
		size_t cap = need > ARENA_MIN ? need : ARENA_MIN;
		c = xmalloc(sizeof(*c) + cap);
		c->cap = cap;
		c->used = 0;
		c->next = a->head;
		a->head = c;
	}
	void *p = (char *)c->data + c->used;
	c->used += need;
	memset(p, 0, n);
	return p;
}

char *cdl_arena_strdup(cdl_arena *a, const char *s)
{
	return cdl_arena_memdup(a, s, strlen(s) + 1);
}

void *cdl_arena_memdup(cdl_arena *a, const void *p, size_t n)
{
	void *d = cdl_arena_alloc(a, n);
	if (n)
		memcpy(d, p, n);
	return d;
}

static int64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t cdl_now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

int64_t cdl_now_ms(void)
{
	return clock_ns(CLOCK_MONOTONIC) / 1000000;
}

void cdl_cond_init_mono(pthread_cond_t *cv)
{
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
}

int64_t cdl_wall_ns(void)
{
	return clock_ns(CLOCK_REALTIME);
}

int cdl_name_check(const char *name, const char **why)
{
	const char *dummy;
	size_t n = strlen(name);
	if (!why)
		why = &dummy;
	if (n == 0) {
		*why = "empty name";
		return -EINVAL;
	}
	if (n > CDL_NAME_MAX) {
		*why = "name longer than 255 bytes";
		return -ENAMETOOLONG;
	}
	if (strchr(name, '/')) {
		*why = "name contains '/'";
		return -EINVAL;
	}
	if (!strcmp(name, ".") || !strcmp(name, "..")) {
		*why = "name is '.' or '..'";
		return -EINVAL;
	}
	return 0;
}

int cdl_path_check(const char *path, const char **why)
{
	const char *dummy;
	size_t n = strlen(path);
	if (!why)
		why = &dummy;
	if (path[0] != '/') {
		*why = "path is not absolute";
		return -EINVAL;
	}
	if (n > CDL_PATH_MAX) {
		*why = "path longer than 4095 bytes";
		return -ENAMETOOLONG;
	}
	const char *p = path + 1;
	while (*p) {
		const char *e = strchr(p, '/');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (len == 0) {
			if (e && e[1] == '\0')
				break; /* one trailing '/' */
			*why = "path has an empty component";
			return -EINVAL;
		}
		if (len > CDL_NAME_MAX) {
			*why = "path component longer than 255 bytes";
			return -ENAMETOOLONG;
		}
		if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.')) {
			*why = "path contains '.' or '..'";
			return -EINVAL;
		}
		if (!e)
			break;
		if (e[1] == '\0')
			break; /* trailing '/' */
		p = e + 1;
	}
	return 0;
}

int cdl_read_full(int fd, void *buf, size_t n)
{
	char *p = buf;
	while (n > 0) {
		ssize_t r = read(fd, p, n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		}
		if (r == 0)
			return -ENODATA;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

int cdl_write_full(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n > 0) {
		ssize_t r = write(fd, p, n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

int cdl_mkdirs(const char *path)
{
	char *p = xstrdup(path);
	int rc = 0;
	for (char *s = p + 1;; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;
			*s = '\0';
			if (mkdir(p, 0755) < 0 && errno != EEXIST) {
				rc = -errno;
				break;
			}
			*s = c;
			if (!c)
				break;
		}
	}
	free(p);
	return rc;
}
