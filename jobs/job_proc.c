/* job_proc: streaming commands; see job_proc.h. */
#include "job_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cdl_util.h"

extern char **environ;

#define FEED_CHUNK   (256u << 10)
#define ERR_LINE_MAX (64u << 10)

void job_proc_describe(int st, char *buf, size_t n)
{
	if (WIFEXITED(st))
		snprintf(buf, n, "exit status %d%s", WEXITSTATUS(st),
			 WEXITSTATUS(st) == 127 ? " (command not found)" : "");
	else if (WIFSIGNALED(st))
		snprintf(buf, n, "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
	else
		snprintf(buf, n, "wait status %#x", st);
}

/* A growing line buffer for one of the command's output pipes. */
struct linebuf {
	char *p;
	size_t len, cap, max;
};

static void lb_reserve(struct linebuf *b, size_t n)
{
	if (b->len + n <= b->cap)
		return;
	while (b->len + n > b->cap)
		b->cap = b->cap ? b->cap * 2 : 65536;
	b->p = xrealloc(b->p, b->cap);
}

struct run {
	const job_proc *p;
	struct linebuf out, err;
	char *msg;
	size_t msglen;
};

static int out_line(struct run *r, const char *l, size_t n)
{
	const char *tab = memchr(l, '\t', n);
	if (!tab)
		return r->p->emit(r->p->emit_ctx, l, n, "", 0);
	return r->p->emit(r->p->emit_ctx, l, (size_t)(tab - l), tab + 1, n - (size_t)(tab - l) - 1);
}

static void err_line(struct run *r, const char *l, size_t n, bool nl)
{
	if (r->p->counters) {
		int k = job_counters_parse_reporter(r->p->counters, l, n);
		if (k == 1)
			return;
	}
	if (n >= 16 && memcmp(l, "reporter:status:", 16) == 0)
		return;
	if (r->p->err_fd >= 0) {
		cdl_write_full(r->p->err_fd, l, n);
		if (nl)
			cdl_write_full(r->p->err_fd, "\n", 1);
	}
}

/* Consume whole lines of b; keep the partial last one. At eof the rest is
 * a final line. */
static int drain(struct run *r, struct linebuf *b, bool is_out, bool eof)
{
	size_t start = 0;
	int rc = 0;
	while (start < b->len) {
		char *nl = memchr(b->p + start, '\n', b->len - start);
		if (!nl)
			break;
		size_t n = (size_t)(nl - (b->p + start));
		if (is_out)
			rc = out_line(r, b->p + start, n);
		else
			err_line(r, b->p + start, n, true);
		start += n + 1;
		if (rc)
			return rc;
	}
	size_t rest = b->len - start;
	if (rest && (eof || rest >= b->max)) {
		if (is_out && !eof) {
			snprintf(r->msg, r->msglen, "output line longer than %zu bytes", b->max);
			return -E2BIG;
		}
		if (is_out)
			rc = out_line(r, b->p + start, rest);
		else
			err_line(r, b->p + start, rest, true);
		start = b->len;
	}
	memmove(b->p, b->p + start, b->len - start);
	b->len -= start;
	return rc;
}

/* Read what is there from fd into b. 1 = more to come, 0 = eof, -errno. */
static int fill(int fd, struct linebuf *b)
{
	lb_reserve(b, 65536);
	ssize_t k = read(fd, b->p + b->len, b->cap - b->len);
	if (k < 0)
		return errno == EINTR || errno == EAGAIN ? 1 : -errno;
	if (k == 0)
		return 0;
	b->len += (size_t)k;
	return 1;
}

/* Format the next records as lines into buf, up to about FEED_CHUNK. */
static int feed_more(const job_proc *p, struct linebuf *buf, bool *eof)
{
	const char *k, *v;
	size_t kl, vl;
	while (buf->len < FEED_CHUNK) {
		int r = p->feed(p->feed_src, &k, &kl, &v, &vl);
		if (r < 0)
			return r;
		if (r == 0) {
			*eof = true;
			return 0;
		}
		lb_reserve(buf, kl + vl + 2);
		if (kl)
			memcpy(buf->p + buf->len, k, kl);
		buf->len += kl;
		if (vl) {
			buf->p[buf->len++] = '\t';
			memcpy(buf->p + buf->len, v, vl);
			buf->len += vl;
		}
		buf->p[buf->len++] = '\n';
	}
	return 0;
}

int job_proc_run(const job_proc *p, int *wstatus, char *err, size_t errlen)
{
	int in[2] = {-1, -1}, out[2] = {-1, -1}, er[2] = {-1, -1};
	int rc = 0;
	pid_t pid = -1;
	struct run r = {.p = p, .msg = err, .msglen = errlen};
	struct linebuf feedbuf = {0};
	size_t feedpos = 0;
	bool feed_eof = false;
	r.out.max = JOB_REC_MAX;
	r.err.max = ERR_LINE_MAX;
	if (errlen)
		err[0] = '\0';

	if ((p->in_fd < 0 && pipe2(in, O_CLOEXEC)) || (p->out_fd < 0 && pipe2(out, O_CLOEXEC)) ||
	    pipe2(er, O_CLOEXEC)) {
		rc = -errno;
		snprintf(err, errlen, "cannot make pipes: %s", strerror(-rc));
		goto out;
	}
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p->in_fd >= 0 ? p->in_fd : in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, p->out_fd >= 0 ? p->out_fd : out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, er[1], 2);
	posix_spawnattr_init(&at);
	/* the command gets default signal dispositions (we ignore SIGPIPE) */
	sigset_t def, none;
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	sigemptyset(&none);
	posix_spawnattr_setsigdefault(&at, &def);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
	char *argv[] = {"sh", "-c", (char *)p->cmd, NULL};
	int e = posix_spawn(&pid, "/bin/sh", &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (e) {
		rc = -e;
		pid = -1;
		snprintf(err, errlen, "cannot run '/bin/sh': %s", strerror(e));
		goto out;
	}
	/* our copies of the command's ends */
	if (in[0] >= 0)
		close(in[0]), in[0] = -1;
	if (out[1] >= 0)
		close(out[1]), out[1] = -1;
	close(er[1]);
	er[1] = -1;
	if (in[1] >= 0)
		fcntl(in[1], F_SETFL, O_NONBLOCK);

	while (in[1] >= 0 || out[0] >= 0 || er[0] >= 0) {
		struct pollfd pf[3];
		int n = 0, iin = -1, iout = -1, ierr = -1;
		if (in[1] >= 0) {
			if (feedpos == feedbuf.len && !feed_eof) {
				feedbuf.len = feedpos = 0;
				if ((rc = feed_more(p, &feedbuf, &feed_eof))) {
					snprintf(err, errlen, "reading records for the command: %s",
						 strerror(-rc));
					goto out;
				}
			}
			if (feedpos == feedbuf.len && feed_eof) {
				close(in[1]);
				in[1] = -1;
			} else {
				pf[n] = (struct pollfd){in[1], POLLOUT, 0};
				iin = n++;
			}
		}
		if (out[0] >= 0) {
			pf[n] = (struct pollfd){out[0], POLLIN, 0};
			iout = n++;
		}
		if (er[0] >= 0) {
			pf[n] = (struct pollfd){er[0], POLLIN, 0};
			ierr = n++;
		}
		if (n == 0)
			break;
		if (poll(pf, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			snprintf(err, errlen, "poll: %s", strerror(-rc));
			goto out;
		}
		if (iin >= 0 && pf[iin].revents) {
			ssize_t k = write(in[1], feedbuf.p + feedpos, feedbuf.len - feedpos);
			if (k > 0) {
				feedpos += (size_t)k;
			} else if (k < 0 && errno != EAGAIN && errno != EINTR) {
				/* the command stopped reading (EPIPE): its exit
				 * status decides */
				close(in[1]);
				in[1] = -1;
			}
		}
		if (iout >= 0 && pf[iout].revents) {
			int f = fill(out[0], &r.out);
			if (f < 0) {
				rc = f;
				snprintf(err, errlen, "reading the command's output: %s",
					 strerror(-rc));
				goto out;
			}
			if ((rc = drain(&r, &r.out, true, f == 0))) {
				if (!err[0])
					snprintf(err, errlen, "taking the command's output: %s",
						 strerror(-rc));
				goto out;
			}
			if (f == 0)
				close(out[0]), out[0] = -1;
		}
		if (ierr >= 0 && pf[ierr].revents) {
			int f = fill(er[0], &r.err);
			drain(&r, &r.err, false, f <= 0);
			if (f <= 0)
				close(er[0]), er[0] = -1;
		}
	}
out:
	if (rc && pid > 0)
		kill(pid, SIGKILL);
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (out[i] >= 0)
			close(out[i]);
		if (er[i] >= 0)
			close(er[i]);
	}
	if (pid > 0) {
		int st;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		*wstatus = st;
	}
	free(r.out.p);
	free(r.err.p);
	free(feedbuf.p);
	return rc;
}
