/* Unit test of jobs/job_proc: streaming commands get records as lines and
 * give records back; reporter:counter lines become counters and other
 * stderr lines are kept; exit statuses, a missing command, a command that
 * stops reading early, and an emit error that stops the command. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "job_proc.h"

static int failures;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond) && failures++ < 20)                                                    \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
	} while (0)

/* records fed from an array */
struct feed {
	const char *const *kv;
	size_t n, i;
	char big[100];
	size_t repeat; /* feed "big" records this many times after kv */
};

static int feed_next(void *src, const char **k, size_t *kl, const char **v, size_t *vl)
{
	struct feed *f = src;
	if (f->i < f->n) {
		*k = f->kv[2 * f->i];
		*kl = strlen(*k);
		*v = f->kv[2 * f->i + 1];
		*vl = strlen(*v);
		f->i++;
		return 1;
	}
	if (f->repeat) {
		f->repeat--;
		*k = f->big;
		*kl = sizeof(f->big) - 1;
		*v = "1";
		*vl = 1;
		return 1;
	}
	return 0;
}

/* records collected as "key|value;" text */
struct out {
	char buf[65536];
	size_t len;
	int fail_after; /* emit fails with -ENOSPC after this many (0 = never) */
	int n;
};

static int out_emit(void *ctx, const char *k, size_t kl, const char *v, size_t vl)
{
	struct out *o = ctx;
	if (o->fail_after && ++o->n > o->fail_after)
		return -ENOSPC;
	if (o->len + kl + vl + 2 < sizeof(o->buf)) {
		memcpy(o->buf + o->len, k, kl);
		o->len += kl;
		o->buf[o->len++] = '|';
		memcpy(o->buf + o->len, v, vl);
		o->len += vl;
		o->buf[o->len++] = ';';
		o->buf[o->len] = '\0';
	}
	return 0;
}

static char *read_fd(int fd)
{
	static char b[65536];
	lseek(fd, 0, SEEK_SET);
	ssize_t k = read(fd, b, sizeof(b) - 1);
	b[k < 0 ? 0 : k] = '\0';
	return b;
}

int main(void)
{
	char tmpl[] = "/tmp/test_job_proc.XXXXXX";
	int errfd = mkstemp(tmpl);
	unlink(tmpl);
	int st;
	char err[256];
	signal(SIGPIPE, SIG_IGN); /* as in the task child: EPIPE, not death */
	job_counters cnt;
	job_counters_init(&cnt);

	/* records through cat: lines in, records out; empty values have no tab */
	static const char *const kv[] = {"a", "1", "b", "", "c d", "x\ty", "", "e"};
	struct feed f = {kv, 4, 0, "", 0};
	struct out o = {.len = 0};
	job_proc p = {.cmd = "cat",
		      .in_fd = -1,
		      .feed = feed_next,
		      .feed_src = &f,
		      .out_fd = -1,
		      .emit = out_emit,
		      .emit_ctx = &o,
		      .err_fd = errfd,
		      .counters = &cnt};
	CHECK(job_proc_run(&p, &st, err, sizeof(err)) == 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(strcmp(o.buf, "a|1;b|;c d|x\ty;|e;") == 0);

	/* stderr: counters counted, other lines kept, status lines dropped */
	f = (struct feed){kv, 4, 0, "", 0};
	o.len = 0;
	p.cmd = "cat >/dev/null; echo 'reporter:counter:G,lines,4' >&2; echo oops >&2; "
		"echo 'reporter:status:half way' >&2; echo 'reporter:counter:G,lines,1' >&2; "
		"printf 'no newline' >&2; exit 3";
	CHECK(job_proc_run(&p, &st, err, sizeof(err)) == 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 3);
	CHECK(job_counters_get(&cnt, "G", "lines") == 5);
	CHECK(strcmp(read_fd(errfd), "oops\nno newline\n") == 0);
	char d[96];
	job_proc_describe(st, d, sizeof(d));
	CHECK(strcmp(d, "exit status 3") == 0);

	/* a command that does not exist */
	p.cmd = "no-such-command-job-proc-test";
	f = (struct feed){kv, 4, 0, "", 0};
	CHECK(job_proc_run(&p, &st, err, sizeof(err)) == 0);
	job_proc_describe(st, d, sizeof(d));
	CHECK(strstr(d, "127") && strstr(d, "command not found"));

	/* a command that stops reading: no hang, its exit status decides */
	memset(f.big, 'k', sizeof(f.big) - 1);
	f = (struct feed){kv, 0, 0, "", 200000};
	memset(f.big, 'k', sizeof(f.big) - 1);
	o.len = 0;
	p.cmd = "head -n 2";
	CHECK(job_proc_run(&p, &st, err, sizeof(err)) == 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(o.len == 2 * (sizeof(f.big) - 1 + 3));

	/* an emit error stops the command and comes back */
	o = (struct out){.fail_after = 10};
	p.cmd = "seq 1 100000";
	p.in_fd = open("/dev/null", O_RDONLY);
	CHECK(job_proc_run(&p, &st, err, sizeof(err)) == -ENOSPC);
	close(p.in_fd);

	/* stdin from an fd and stdout straight into a file */
	char tin[] = "/tmp/test_job_proc_in.XXXXXX", tout[] = "/tmp/test_job_proc_out.XXXXXX";
	int in = mkstemp(tin), outfd = mkstemp(tout);
	unlink(tin);
	unlink(tout);
	CHECK(write(in, "x\ny\n", 4) == 4);
	lseek(in, 0, SEEK_SET);
	p = (job_proc){.cmd = "tr a-z A-Z", .in_fd = in, .out_fd = outfd, .err_fd = errfd};
	CHECK(job_proc_run(&p, &st, err, sizeof(err)) == 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(strcmp(read_fd(outfd), "X\nY\n") == 0);

	job_counters_release(&cnt);
	if (failures) {
		fprintf(stderr, "test_job_proc: %d failures\n", failures);
		return 1;
	}
	printf("test_job_proc: ok\n");
	return 0;
}
