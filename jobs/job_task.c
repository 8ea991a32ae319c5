/* job_task: the task engine in a child process; see job_task.h. */
#include "job_task.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <regex.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cdl_util.h"
#include "job_counter.h"
#include "job_proc.h"
#include "job_shuffle.h"
#include "job_sort.h"
#include "job_spec.h"
#include "jobs.pb-c.h"

#define READ_CHUNK (1u << 20)
/* Largest task.pb accepted. */
#define TASK_PB_MAX (64u << 20)

struct task {
	const Caudal__TaskAssignment *t;
	const Caudal__ChildTask *ct;
	job_counters cnt;
	char err[1024];
	uint32_t *fetch_failed;
	size_t nfetch_failed;
	uint64_t output_bytes;
	/* map output */
	job_collector *col;
	job_sink text; /* map-only and reduce: the part file */
	int64_t out_records, out_bytes;
	regex_t re;
	bool have_re;
};

static int read_file(const char *path, size_t max, uint8_t **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st)) {
		int e = -errno;
		close(fd);
		return e;
	}
	if ((uint64_t)st.st_size > max) {
		close(fd);
		return -EFBIG;
	}
	*len = (size_t)st.st_size;
	*out = xmalloc(*len ? *len : 1);
	int rc = cdl_read_full(fd, *out, *len);
	close(fd);
	if (rc)
		free(*out);
	return rc;
}

static void write_result(struct task *k)
{
	Caudal__ChildResult r = CAUDAL__CHILD_RESULT__INIT;
	job_counters_sort(&k->cnt);
	Caudal__Counter *cv = xcalloc(k->cnt.n ? k->cnt.n : 1, sizeof(*cv));
	Caudal__Counter **cp = xcalloc(k->cnt.n ? k->cnt.n : 1, sizeof(*cp));
	for (size_t i = 0; i < k->cnt.n; i++) {
		caudal__counter__init(&cv[i]);
		cv[i].group = k->cnt.v[i].group;
		cv[i].name = k->cnt.v[i].name;
		cv[i].value = k->cnt.v[i].value;
		cp[i] = &cv[i];
	}
	r.n_counters = k->cnt.n;
	r.counters = cp;
	r.error = k->err;
	r.n_fetch_failed = k->nfetch_failed;
	r.fetch_failed = k->fetch_failed;
	r.output_bytes = k->output_bytes;
	size_t n = caudal__child_result__get_packed_size(&r);
	uint8_t *b = xmalloc(n ? n : 1);
	caudal__child_result__pack(&r, b);
	int fd = open("result.pb.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || cdl_write_full(fd, b, n) || close(fd) || rename("result.pb.tmp", "result.pb"))
		fprintf(stderr, "task: cannot write 'result.pb': %s\n", strerror(errno));
	free(b);
	free(cv);
	free(cp);
}

/* ------------------------------------------------------------ output */

static int text_emit(void *ctx, const char *key, size_t kl, const char *val, size_t vl)
{
	struct task *k = ctx;
	int rc = job_sink_write(&k->text, key, kl);
	if (!rc && vl) {
		rc = job_sink_write(&k->text, "\t", 1);
		if (!rc)
			rc = job_sink_write(&k->text, val, vl);
	}
	if (!rc)
		rc = job_sink_write(&k->text, "\n", 1);
	k->out_records++;
	k->out_bytes += (int64_t)(kl + vl);
	return rc;
}

static int collect_emit(void *ctx, const char *key, size_t kl, const char *val, size_t vl)
{
	struct task *k = ctx;
	k->out_records++;
	k->out_bytes += (int64_t)(kl + vl);
	return job_collector_add(k->col, key, kl, val, vl);
}

/* ------------------------------------------------------------ built-in maps */

static bool space_tab[256];

static void init_space(void)
{
	static const char sp[] = " \t\n\v\f\r";
	for (size_t i = 0; i < sizeof(sp) - 1; i++)
		space_tab[(unsigned char)sp[i]] = true;
}

/* One input line (without its '\n') through a built-in mapper. */
static int map_line(struct task *k, enum job_op_kind op, char *l, size_t n, job_emit_fn emit)
{
	switch (op) {
	case JOB_OP_WORDCOUNT: {
		size_t i = 0;
		while (i < n) {
			while (i < n && space_tab[(unsigned char)l[i]])
				i++;
			size_t s = i;
			while (i < n && !space_tab[(unsigned char)l[i]])
				i++;
			if (i > s) {
				int rc = emit(k, l + s, i - s, "1", 1);
				if (rc)
					return rc;
			}
		}
		return 0;
	}
	case JOB_OP_GREP: {
		regmatch_t m[1] = {{0, (regoff_t)n}};
		if (regexec(&k->re, l, 1, m, REG_STARTEND) == 0)
			return emit(k, l, n, "", 0);
		return 0;
	}
	case JOB_OP_IDENTITY: {
		const char *tab = memchr(l, '\t', n);
		if (!tab)
			return emit(k, l, n, "", 0);
		return emit(k, l, (size_t)(tab - l), tab + 1, n - (size_t)(tab - l) - 1);
	}
	default:
		return -EINVAL;
	}
}

/* Lines of fd through a built-in mapper. */
static int map_builtin(struct task *k, enum job_op_kind op, int fd, job_emit_fn emit)
{
	size_t cap = READ_CHUNK, len = 0;
	char *buf = xmalloc(cap + 1);
	int rc = 0;
	for (;;) {
		if (len == cap) {
			if (cap >= JOB_REC_MAX) {
				snprintf(k->err, sizeof(k->err), "input line longer than %u bytes",
					 JOB_REC_MAX);
				rc = -E2BIG;
				break;
			}
			cap *= 2;
			buf = xrealloc(buf, cap + 1);
		}
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			snprintf(k->err, sizeof(k->err), "reading the split: %s", strerror(errno));
			break;
		}
		if (r == 0) {
			if (len)
				rc = map_line(k, op, buf, len, emit);
			break;
		}
		size_t end = len + (size_t)r, start = 0;
		char *p = buf + len;
		char *nl;
		while ((nl = memchr(p, '\n', (size_t)(buf + end - p)))) {
			if ((rc = map_line(k, op, buf + start, (size_t)(nl - (buf + start)), emit)))
				goto out;
			start = (size_t)(nl - buf) + 1;
			p = nl + 1;
		}
		memmove(buf, buf + start, end - start);
		len = end - start;
	}
out:
	free(buf);
	if (rc && !k->err[0]) {
		const char *ce = k->col ? job_collector_error(k->col) : "";
		snprintf(k->err, sizeof(k->err), "map: %s", ce[0] ? ce : strerror(-rc));
	}
	return rc;
}

/* ------------------------------------------------------------ exec: combiner */

static int combine_filter(void *fctx, job_next_fn next, void *src, job_emit_fn emit, void *ectx)
{
	struct task *k = fctx;
	job_proc p = {.cmd = strchr(k->t->combine, ':') + 1,
		      .in_fd = -1,
		      .feed = next,
		      .feed_src = src,
		      .out_fd = -1,
		      .emit = emit,
		      .emit_ctx = ectx,
		      .err_fd = 2,
		      .counters = &k->cnt};
	p.cmd += strspn(p.cmd, " \t");
	int st = 0;
	char err[256];
	int rc = job_proc_run(&p, &st, err, sizeof(err));
	if (rc) {
		snprintf(k->err, sizeof(k->err), "combine command: %s", err);
		return rc;
	}
	if (st != 0) {
		char d[96];
		job_proc_describe(st, d, sizeof(d));
		snprintf(k->err, sizeof(k->err), "combine command: %s", d);
		return -ECHILD;
	}
	return 0;
}

/* ------------------------------------------------------------ map */

static int open_part(struct task *k)
{
	int fd = open("part", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		snprintf(k->err, sizeof(k->err), "cannot create 'part': %s", strerror(errno));
	return fd;
}

static int run_map(struct task *k)
{
	const Caudal__TaskAssignment *t = k->t;
	job_op mop, cop = {JOB_OP_NONE, NULL};
	const char *why;
	int rc, st = 0;
	if (job_op_parse(t->map, JOB_ROLE_MAP, &mop, &why)) {
		snprintf(k->err, sizeof(k->err), "map: '%s' %s", t->map, why);
		return -EINVAL;
	}
	if (t->combine[0] && job_op_parse(t->combine, JOB_ROLE_COMBINE, &cop, &why)) {
		snprintf(k->err, sizeof(k->err), "combine: '%s' %s", t->combine, why);
		return -EINVAL;
	}
	if (mop.kind == JOB_OP_GREP) {
		int e = regcomp(&k->re, t->pattern, REG_EXTENDED | REG_NOSUB);
		if (e) {
			regerror(e, &k->re, k->err, sizeof(k->err));
			return -EINVAL;
		}
		k->have_re = true;
	}
	int part_fd = -1;
	if (t->reduces == 0) {
		if ((part_fd = open_part(k)) < 0)
			return -EIO;
		job_sink_init(&k->text, part_fd);
	} else {
		job_collector_opts o = {.dir = ".",
					.nparts = t->reduces,
					.mem_limit = (size_t)k->ct->sort_mb << 20,
					.combine = cop.kind,
					.filter = combine_filter,
					.filter_ctx = k,
					.counters = &k->cnt};
		k->col = job_collector_new(&o);
	}
	job_emit_fn emit = t->reduces == 0 ? text_emit : collect_emit;

	if (mop.kind == JOB_OP_EXEC) {
		/* map-only streaming: the command writes the part file itself */
		job_proc p = {.cmd = mop.cmd,
			      .in_fd = 0,
			      .out_fd = t->reduces == 0 ? part_fd : -1,
			      .emit = emit,
			      .emit_ctx = k,
			      .err_fd = 2,
			      .counters = &k->cnt};
		if (t->reduces == 0)
			job_sink_flush(&k->text);
		char err[512];
		rc = job_proc_run(&p, &st, err, sizeof(err));
		if (rc) {
			const char *ce = k->col ? job_collector_error(k->col) : "";
			snprintf(k->err, sizeof(k->err), "map command: %s%s%s", err,
				 ce[0] ? ": " : "", ce);
		} else if (st != 0) {
			char d[96];
			job_proc_describe(st, d, sizeof(d));
			snprintf(k->err, sizeof(k->err), "map command: %s", d);
			rc = -ECHILD;
		}
	} else {
		rc = map_builtin(k, mop.kind, 0, emit);
	}
	if (!rc && k->col) {
		rc = job_collector_finish(k->col, "file.out", "file.index");
		if (rc)
			snprintf(k->err, sizeof(k->err), "map output: %s",
				 job_collector_error(k->col));
		struct stat sb;
		if (!rc && stat("file.out", &sb) == 0)
			k->output_bytes = (uint64_t)sb.st_size;
	}
	if (part_fd >= 0) {
		int r2 = job_sink_release(&k->text);
		if (!rc && r2) {
			rc = r2;
			snprintf(k->err, sizeof(k->err), "writing 'part': %s", strerror(-rc));
		}
		struct stat sb;
		if (!rc && fstat(part_fd, &sb) == 0)
			k->output_bytes = (uint64_t)sb.st_size;
		if (close(part_fd) && !rc)
			rc = -errno;
	}
	if (mop.kind != JOB_OP_EXEC || t->reduces > 0)
		job_counters_add(&k->cnt, JOB_CG, "map output records", k->out_records);
	job_counters_add(&k->cnt, JOB_CG, "map output bytes", k->out_bytes);
	return rc;
}

/* ------------------------------------------------------------ reduce */

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int merger_next(void *src, const char **k, size_t *kl, const char **v, size_t *vl)
{
	return job_merger_next(src, k, kl, v, vl);
}

static int run_reduce(struct task *k)
{
	const Caudal__TaskAssignment *t = k->t;
	job_op rop;
	const char *why;
	int rc = 0;
	if (job_op_parse(t->reduce, JOB_ROLE_REDUCE, &rop, &why)) {
		snprintf(k->err, sizeof(k->err), "reduce: '%s' %s", t->reduce, why);
		return -EINVAL;
	}
	int in = open("in", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (in < 0) {
		snprintf(k->err, sizeof(k->err), "cannot create 'in': %s", strerror(errno));
		return -errno;
	}
	size_t nmaps = t->n_maps;
	uint64_t *off = xcalloc(nmaps + 1, sizeof(*off));
	uint64_t total = 0, records = 0;
	int timeout = k->ct->fetch_timeout_ms ? (int)k->ct->fetch_timeout_ms : 10000;
	char last_err[512] = "";
	for (size_t i = 0; i < nmaps; i++) {
		const Caudal__MapOutput *m = t->maps[i];
		int64_t end = mono_ms() + timeout;
		int backoff = 100;
		/* a server (or an impostor on its port) that sends more than the
		 * whole map output is refused before it fills our disk */
		uint64_t max_len = m->output_bytes ? m->output_bytes : UINT64_MAX / 2;
		off[i] = total;
		for (;;) {
			uint64_t len = 0, recs = 0;
			char err[400];
			if (lseek(in, (off_t)total, SEEK_SET) < 0 || ftruncate(in, (off_t)total)) {
				rc = -errno;
				snprintf(k->err, sizeof(k->err), "'in': %s", strerror(errno));
				goto out;
			}
			int r =
			    job_shuffle_fetch(m->host, (int)m->port, t->job_id, m->attempt_id,
					      t->task, t->shuffle_key.data, t->shuffle_key.len, in,
					      max_len, 10000, &len, &recs, err, sizeof(err));
			if (r == 0) {
				total += len;
				records += recs;
				break;
			}
			if (r == -EFBIG || r == -ENOSPC || r == -EIO) {
				rc = r;
				snprintf(k->err, sizeof(k->err), "fetching map %u: %s", m->map,
					 err);
				goto out;
			}
			if (mono_ms() + backoff >= end || r == -ENOENT) {
				snprintf(last_err, sizeof(last_err), "map %u: %s", m->map, err);
				fprintf(stderr, "task: fetch failed: %s\n", last_err);
				k->fetch_failed = xrealloc(k->fetch_failed, (k->nfetch_failed + 1) *
										sizeof(uint32_t));
				k->fetch_failed[k->nfetch_failed++] = m->map;
				break;
			}
			sleep_ms(backoff);
			backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
		}
	}
	off[nmaps] = total;
	job_counters_add(&k->cnt, JOB_CG, "reduce shuffle bytes", (int64_t)total);
	if (k->nfetch_failed) {
		snprintf(k->err, sizeof(k->err), "could not fetch the output of %zu map%s (%s)",
			 k->nfetch_failed, k->nfetch_failed > 1 ? "s" : "", last_err);
		rc = -EHOSTUNREACH;
		goto out;
	}

	void *map = NULL;
	if (total) {
		map = mmap(NULL, total, PROT_READ, MAP_PRIVATE, in, 0);
		if (map == MAP_FAILED) {
			rc = -errno;
			snprintf(k->err, sizeof(k->err), "cannot map 'in': %s", strerror(errno));
			goto out;
		}
		madvise(map, total, MADV_SEQUENTIAL);
	}
	job_cursor *cur = xcalloc(nmaps ? nmaps : 1, sizeof(*cur));
	for (size_t i = 0; i < nmaps; i++)
		job_cursor_init(&cur[i], (const char *)map + off[i], off[i + 1] - off[i]);
	job_merger *mg = job_merger_new(cur, nmaps);
	int part_fd = open_part(k);
	if (part_fd < 0) {
		rc = -EIO;
	} else if (rop.kind == JOB_OP_EXEC) {
		job_proc p = {.cmd = rop.cmd,
			      .in_fd = -1,
			      .feed = merger_next,
			      .feed_src = mg,
			      .out_fd = part_fd,
			      .err_fd = 2,
			      .counters = &k->cnt};
		int st = 0;
		char err[512];
		rc = job_proc_run(&p, &st, err, sizeof(err));
		if (rc) {
			snprintf(k->err, sizeof(k->err), "reduce command: %s", err);
		} else if (st != 0) {
			char d[96];
			job_proc_describe(st, d, sizeof(d));
			snprintf(k->err, sizeof(k->err), "reduce command: %s", d);
			rc = -ECHILD;
		}
		job_counters_add(&k->cnt, JOB_CG, "reduce input records", (int64_t)records);
	} else {
		job_sink_init(&k->text, part_fd);
		char err[512] = "";
		rc = job_reduce_builtin(rop.kind, merger_next, mg, text_emit, k, &k->cnt, err,
					sizeof(err));
		if (rc)
			snprintf(k->err, sizeof(k->err), "reduce %s: %s", job_op_name(rop.kind),
				 err);
		int r2 = job_sink_release(&k->text);
		if (!rc && r2) {
			rc = r2;
			snprintf(k->err, sizeof(k->err), "writing 'part': %s", strerror(-rc));
		}
		job_counters_add(&k->cnt, JOB_CG, "reduce output records", k->out_records);
	}
	if (part_fd >= 0) {
		struct stat sb;
		if (!rc && fstat(part_fd, &sb) == 0)
			k->output_bytes = (uint64_t)sb.st_size;
		if (close(part_fd) && !rc)
			rc = -errno;
	}
	job_merger_free(mg);
	free(cur);
	if (map)
		munmap(map, total);
out:
	close(in);
	unlink("in");
	free(off);
	return rc;
}

int job_task_main(const char *dir)
{
	/* Die with the tasktracker's attempt thread that started us. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		return JOB_TASK_FAILED;
	signal(SIGPIPE, SIG_IGN);
	init_space();
	if (chdir(dir)) {
		fprintf(stderr, "task: cannot enter '%s': %s\n", dir, strerror(errno));
		return JOB_TASK_FAILED;
	}
	struct task k;
	memset(&k, 0, sizeof(k));
	job_counters_init(&k.cnt);
	uint8_t *b = NULL;
	size_t n = 0;
	int rc = read_file("task.pb", TASK_PB_MAX, &b, &n);
	if (rc) {
		snprintf(k.err, sizeof(k.err), "cannot read 'task.pb': %s", strerror(-rc));
		write_result(&k);
		return JOB_TASK_FAILED;
	}
	Caudal__ChildTask *ct = caudal__child_task__unpack(NULL, n, b);
	free(b);
	if (!ct || !ct->task) {
		snprintf(k.err, sizeof(k.err), "'task.pb' is not a task");
		write_result(&k);
		return JOB_TASK_FAILED;
	}
	k.ct = ct;
	k.t = ct->task;
	if (ct->sort_mb < 1 || ct->sort_mb > 4096)
		ct->sort_mb = 100;
	if (k.t->type == CAUDAL__TASK_TYPE__TASK_MAP)
		rc = run_map(&k);
	else if (k.t->type == CAUDAL__TASK_TYPE__TASK_REDUCE)
		rc = run_reduce(&k);
	else
		snprintf(k.err, sizeof(k.err), "unknown task type %d", k.t->type), rc = -EINVAL;
	if (rc && !k.err[0])
		snprintf(k.err, sizeof(k.err), "%s", strerror(-rc));
	if (rc)
		fprintf(stderr, "task: %s\n", k.err);
	write_result(&k);
	int status = rc == 0	       ? JOB_TASK_OK
		     : k.nfetch_failed ? JOB_TASK_FETCH_FAILED
				       : JOB_TASK_FAILED;
	job_collector_free(k.col);
	if (k.have_re)
		regfree(&k.re);
	free(k.fetch_failed);
	job_counters_release(&k.cnt);
	caudal__child_task__free_unpacked(ct, NULL);
	return status;
}
