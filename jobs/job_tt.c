/* job_tt: the tasktracker; see job_tt.h. */
#include "job_tt.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cdl_client.h"
#include "cdl_log.h"
#include "cdl_rpc.h"
#include "cdl_util.h"
#include "job_counter.h"
#include "job_shuffle.h"
#include "job_split.h"
#include "job_task.h"
#include "jobs.pb-c.h"

extern char **environ;

/* JobProtocol methods in .proto order. */
enum { JT_REGISTER, JT_HEARTBEAT, JT_REPORT };

#define STDERR_TAIL  4096
#define STDERR_LINES 20
#define PUMP_CHUNK   (1u << 20)

struct tt_attempt {
	struct tt_attempt *next;
	job_tt *t;
	char *id, *job_id;
	Caudal__TaskAssignment *task; /* owned copy */
	Caudal__AttemptState state;
	float progress;
	pid_t pid;     /* task child while it runs (its own process group) */
	bool kill;     /* kill requested */
	bool reported; /* the jobtracker has the final status (Report answered) */
	bool acked;    /* a heartbeat reply acknowledged the final status */
	bool done;     /* its thread is finished with it */
	int64_t start_ms, end_ms;
	/* final status */
	job_counters cnt;
	char *error, *stderr_tail;
	uint32_t *fetch_failed;
	size_t nfetch_failed;
	uint64_t output_bytes;
};

struct job_tt {
	job_tt_opts o;
	char *jobs_dir;
	char *id;
	job_shuffle_server *shuffle;
	cdl_client *fs;
	cdl_rpc_client *jt;
	pthread_t hb_thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct tt_attempt *attempts;
	int threads; /* attempt threads alive */
	uint64_t epoch;
	bool registered;
	bool stopping;
	int wait_ms; /* the jobtracker's longest long poll (0: it answers at once) */
	bool wake;   /* an attempt ended: heartbeat now */
};

static void forget(job_tt *t, const char *id);

static void timed_wait(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(cv, mu, &ts);
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

/* Remove a local tree; missing is fine. */
static void rm_rf(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ------------------------------------------------------------ attempts */

static void attempt_free(struct tt_attempt *a)
{
	free(a->id);
	free(a->job_id);
	if (a->task)
		caudal__task_assignment__free_unpacked(a->task, NULL);
	job_counters_release(&a->cnt);
	free(a->error);
	free(a->stderr_tail);
	free(a->fetch_failed);
	free(a);
}

/* Fill an AttemptStatus from a, with strings lent from a (hold t->mu
 * while the status is used). */
static void fill_status(const struct tt_attempt *a, Caudal__AttemptStatus *s, cdl_arena *ar)
{
	caudal__attempt_status__init(s);
	s->attempt_id = a->id;
	s->state = a->state;
	s->progress = a->progress;
	int64_t end = a->end_ms ? a->end_ms : cdl_now_ms();
	s->runtime_ms = (uint64_t)(end - a->start_ms);
	if (a->state == CAUDAL__ATTEMPT_STATE__AS_RUNNING)
		return;
	s->n_counters = a->cnt.n;
	s->counters = cdl_arena_alloc(ar, (a->cnt.n + 1) * sizeof(*s->counters));
	for (size_t i = 0; i < a->cnt.n; i++) {
		Caudal__Counter *c = cdl_arena_alloc(ar, sizeof(*c));
		caudal__counter__init(c);
		c->group = a->cnt.v[i].group;
		c->name = a->cnt.v[i].name;
		c->value = a->cnt.v[i].value;
		s->counters[i] = c;
	}
	if (a->error)
		s->error = a->error;
	if (a->stderr_tail)
		s->stderr_tail = a->stderr_tail;
	s->n_fetch_failed = a->nfetch_failed;
	s->fetch_failed = a->fetch_failed;
	s->output_bytes = a->output_bytes;
}

static int free_slots(const job_tt *t)
{
	int running = 0;
	for (const struct tt_attempt *a = t->attempts; a; a = a->next)
		running += a->state == CAUDAL__ATTEMPT_STATE__AS_RUNNING;
	return running >= t->o.slots ? 0 : t->o.slots - running;
}

/* Send the final status of a to the jobtracker now (it is also repeated in
 * heartbeats until acknowledged). */
static void report(job_tt *t, struct tt_attempt *a)
{
	cdl_arena ar;
	cdl_arena_init(&ar);
	Caudal__AttemptReportRequest req = CAUDAL__ATTEMPT_REPORT_REQUEST__INIT;
	Caudal__AttemptStatus st;
	pthread_mutex_lock(&t->mu);
	req.tracker_id = t->id;
	req.epoch = t->epoch;
	fill_status(a, &st, &ar);
	req.status = &st;
	req.free_slots = (uint32_t)free_slots(t);
	/* pack under the lock: the status lends a's strings */
	size_t n = caudal__attempt_report_request__get_packed_size(&req);
	uint8_t *buf = xmalloc(n ? n : 1);
	caudal__attempt_report_request__pack(&req, buf);
	pthread_mutex_unlock(&t->mu);
	cdl_arena_release(&ar);
	Caudal__AttemptReportRequest *copy = caudal__attempt_report_request__unpack(NULL, n, buf);
	free(buf);
	if (!copy)
		return;
	ProtobufCMessage *rep = NULL;
	int rc = cdl_rpc_call(t->jt, JT_REPORT, &copy->base, &rep, t->o.rpc_timeout_ms);
	caudal__attempt_report_request__free_unpacked(copy, NULL);
	if (rc == 0 && ((Caudal__AttemptReportReply *)rep)->err == 0) {
		pthread_mutex_lock(&t->mu);
		a->reported = true;
		pthread_mutex_unlock(&t->mu);
	}
	if (rep)
		protobuf_c_message_free_unpacked(rep, NULL);
}

static void set_env(char ***envp, size_t *n, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void set_env(char ***envp, size_t *n, const char *name, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *v;
	if (vasprintf(&v, fmt, ap) < 0)
		abort();
	va_end(ap);
	*envp = xrealloc(*envp, (*n + 2) * sizeof(char *));
	(*envp)[(*n)++] = xasprintf("%s=%s", name, v);
	(*envp)[*n] = NULL;
	free(v);
}

/* The child's environment: ours without CAUDAL_* and mapreduce_*, plus
 * the attempt's identity (streaming commands see it too). */
static char **child_env(const Caudal__TaskAssignment *task)
{
	char **env = NULL;
	size_t n = 0;
	for (char **e = environ; *e; e++) {
		if (!strncmp(*e, "CAUDAL_", 7) || !strncmp(*e, "mapreduce_", 10))
			continue;
		env = xrealloc(env, (n + 2) * sizeof(char *));
		env[n++] = xstrdup(*e);
		env[n] = NULL;
	}
	bool map = task->type == CAUDAL__TASK_TYPE__TASK_MAP;
	set_env(&env, &n, "CAUDAL_JOB_ID", "%s", task->job_id);
	set_env(&env, &n, "CAUDAL_JOB_NAME", "%s", task->job_name);
	set_env(&env, &n, "CAUDAL_TASK", "%s-%05u", map ? "m" : "r", task->task);
	set_env(&env, &n, "CAUDAL_TASK_TYPE", "%s", map ? "map" : "reduce");
	set_env(&env, &n, "CAUDAL_ATTEMPT", "%u", task->attempt);
	set_env(&env, &n, "CAUDAL_ATTEMPT_ID", "%s", task->attempt_id);
	set_env(&env, &n, "mapreduce_task_attempt_id", "%s", task->attempt_id);
	set_env(&env, &n, "mapreduce_task_partition", "%u", task->task);
	if (map) {
		set_env(&env, &n, "CAUDAL_INPUT_FILE", "%s", task->input);
		set_env(&env, &n, "CAUDAL_INPUT_OFFSET", "%llu", (unsigned long long)task->offset);
		set_env(&env, &n, "CAUDAL_INPUT_LENGTH", "%llu", (unsigned long long)task->length);
		set_env(&env, &n, "mapreduce_map_input_file", "%s", task->input);
		set_env(&env, &n, "map_input_file", "%s", task->input);
	}
	return env;
}

static void free_env(char **env)
{
	for (char **e = env; e && *e; e++)
		free(*e);
	free(env);
}

/* Last lines of the attempt's stderr, for the jobtracker's error. */
static char *stderr_tail(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct stat st;
	char *buf = NULL;
	if (fstat(fd, &st) == 0 && st.st_size > 0) {
		off_t from = st.st_size > STDERR_TAIL ? st.st_size - STDERR_TAIL : 0;
		size_t n = (size_t)(st.st_size - from);
		buf = xmalloc(n + 1);
		ssize_t k = pread(fd, buf, n, from);
		n = k > 0 ? (size_t)k : 0;
		buf[n] = '\0';
		char *p = buf;
		if (from > 0) { /* drop the partial first line */
			char *nl = memchr(buf, '\n', n);
			p = nl ? nl + 1 : buf;
		}
		/* keep the last STDERR_LINES lines */
		int lines = 0;
		char *q = buf + n;
		while (q > p) {
			q--;
			if (*q == '\n' && q != buf + n - 1 && ++lines >= STDERR_LINES) {
				p = q + 1;
				break;
			}
		}
		memmove(buf, p, strlen(p) + 1);
	}
	close(fd);
	return buf;
}

struct pump {
	struct tt_attempt *a;
	cdl_reader *r;
	int fd;
	uint64_t length;
	uint64_t done;
};

static ssize_t pump_read(void *ctx, void *buf, size_t n, uint64_t off)
{
	struct pump *p = ctx;
	return cdl_reader_pread(p->r, buf, n, off);
}

static int pump_write(void *ctx, const void *buf, size_t n)
{
	struct pump *p = ctx;
	int rc = cdl_write_full(p->fd, buf, n);
	p->done += n;
	job_tt *t = p->a->t;
	pthread_mutex_lock(&t->mu);
	p->a->progress = p->length ? (float)((double)p->done / (double)p->length) : 1.0f;
	if (p->a->progress > 1.0f)
		p->a->progress = 1.0f;
	bool kill = p->a->kill;
	pthread_mutex_unlock(&t->mu);
	return kill ? -ECANCELED : rc;
}

/* Copy the job's distributed cache files into the attempt's folder,
 * keeping their permission bits (a script stays executable). */
static int fetch_files(job_tt *t, const Caudal__TaskAssignment *task, const char *dir, char *err,
		       size_t errlen)
{
	for (size_t i = 0; i < task->n_files; i++) {
		const char *src = task->files[i];
		const char *base = strrchr(src, '/');
		base = base ? base + 1 : src;
		if (!*base || !strcmp(base, ".") || !strcmp(base, "..")) {
			snprintf(err, errlen, "files: bad name '%s'", src);
			return -EINVAL;
		}
		Caudal__Attr *attr = NULL;
		int rc = cdl_stat(t->fs, src, &attr);
		uint32_t mode = attr ? (attr->mode & 0777) : 0644;
		if (attr)
			protobuf_c_message_free_unpacked(&attr->base, NULL);
		char *dst = xasprintf("%s/%s", dir, base);
		int fd = rc ? -1 : open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (!rc && fd < 0)
			rc = -errno;
		if (!rc)
			rc = cdl_get_fd(t->fs, src, fd);
		if (fd >= 0) {
			fchmod(fd, mode | 0600);
			close(fd);
		}
		free(dst);
		if (rc) {
			snprintf(err, errlen, "files: cannot copy '%s': %s", src, strerror(-rc));
			return rc;
		}
	}
	return 0;
}

static int write_task_pb(job_tt *t, const Caudal__TaskAssignment *task, const char *dir)
{
	Caudal__ChildTask ct = CAUDAL__CHILD_TASK__INIT;
	ct.task = (Caudal__TaskAssignment *)task;
	ct.sort_mb = (uint32_t)t->o.sort_mb;
	ct.fetch_timeout_ms = (uint32_t)t->o.fetch_timeout_ms;
	size_t n = caudal__child_task__get_packed_size(&ct);
	uint8_t *b = xmalloc(n);
	caudal__child_task__pack(&ct, b);
	char *path = xasprintf("%s/task.pb", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int rc = fd < 0 ? -errno : cdl_write_full(fd, b, n);
	if (fd >= 0 && close(fd) && !rc)
		rc = -errno;
	free(path);
	free(b);
	return rc;
}

/* Start `SELF --task DIR` in its own process group, stdin from in_fd,
 * stdout and stderr appended to DIR/stderr. */
static int spawn_child(job_tt *t, struct tt_attempt *a, const char *dir, int in_fd, pid_t *pid)
{
	char *errpath = xasprintf("%s/stderr", dir);
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	posix_spawn_file_actions_init(&fa);
	if (in_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, in_fd, 0);
	else
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, errpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
	posix_spawn_file_actions_adddup2(&fa, 2, 1);
	posix_spawn_file_actions_addchdir_np(&fa, dir);
	posix_spawnattr_init(&at);
	sigset_t none, def;
	sigemptyset(&none);
	sigemptyset(&def);
	sigaddset(&def, SIGTERM);
	sigaddset(&def, SIGINT);
	sigaddset(&def, SIGHUP);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &def);
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
					  POSIX_SPAWN_SETSIGDEF);
	char *argv[] = {"caudal-task", "--task", (char *)dir, NULL};
	char **env = child_env(a->task);
	int e = posix_spawn(pid, t->o.self_exe, &fa, &at, argv, env);
	free_env(env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	free(errpath);
	return -e;
}

/* Read DIR/result.pb into a. */
static void read_result(struct tt_attempt *a, const char *dir)
{
	char *path = xasprintf("%s/result.pb", dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd < 0)
		return;
	struct stat st;
	uint8_t *b = NULL;
	if (fstat(fd, &st) == 0 && st.st_size > 0 && st.st_size < (16 << 20)) {
		b = xmalloc((size_t)st.st_size);
		if (cdl_read_full(fd, b, (size_t)st.st_size) == 0) {
			Caudal__ChildResult *r =
			    caudal__child_result__unpack(NULL, (size_t)st.st_size, b);
			if (r) {
				for (size_t i = 0; i < r->n_counters; i++)
					job_counters_add(&a->cnt, r->counters[i]->group,
							 r->counters[i]->name,
							 r->counters[i]->value);
				if (r->error[0])
					a->error = xstrdup(r->error);
				if (r->n_fetch_failed) {
					a->fetch_failed =
					    xmalloc(r->n_fetch_failed * sizeof(uint32_t));
					memcpy(a->fetch_failed, r->fetch_failed,
					       r->n_fetch_failed * sizeof(uint32_t));
					a->nfetch_failed = r->n_fetch_failed;
				}
				a->output_bytes = r->output_bytes;
				caudal__child_result__free_unpacked(r, NULL);
			}
		}
	}
	free(b);
	close(fd);
}

/* Upload DIR/part to task->output/task->part in Caudal. The attempt's
 * folder is made without parents: if the job's _temporary is gone (the
 * job was killed) the upload fails instead of recreating the output. */
static int upload_part(job_tt *t, const Caudal__TaskAssignment *task, const char *dir, char *err,
		       size_t errlen)
{
	int rc = cdl_mkdir(t->fs, task->output, 0755, false);
	if (rc && rc != -EEXIST) {
		snprintf(err, errlen, "cannot create '%s': %s", task->output, strerror(-rc));
		return rc;
	}
	char *local = xasprintf("%s/part", dir);
	char *remote = xasprintf("%s/%s", task->output, task->part);
	int fd = open(local, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "no output file '%s': %s", local, strerror(errno));
	} else {
		rc = cdl_put_fd(t->fs, remote, fd, 0644, 0, 0, true);
		if (rc)
			snprintf(err, errlen, "cannot write '%s': %s", remote, strerror(-rc));
		close(fd);
	}
	free(local);
	free(remote);
	return rc;
}

/* One attempt, start to end, on its own thread. */
static void *attempt_main(void *arg)
{
	struct tt_attempt *a = arg;
	job_tt *t = a->t;
	const Caudal__TaskAssignment *task = a->task;
	bool map = task->type == CAUDAL__TASK_TYPE__TASK_MAP;
	char *jobdir = xasprintf("%s/%s", t->jobs_dir, task->job_id);
	char *dir = xasprintf("%s/%s", jobdir, task->attempt_id);
	char err[1024] = "";
	int rc = 0, st = 0;
	pid_t pid = -1;
	int pipefd[2] = {-1, -1};
	Caudal__AttemptState final = CAUDAL__ATTEMPT_STATE__AS_FAILED;

	rm_rf(dir);
	if ((rc = cdl_mkdirs(dir))) {
		snprintf(err, sizeof(err), "cannot create '%s': %s", dir, strerror(-rc));
		goto done;
	}
	/* the shuffle server checks this job's fetches with it */
	if ((rc = job_shuffle_key_save(t->jobs_dir, task->job_id, task->shuffle_key.data,
				       task->shuffle_key.len))) {
		snprintf(err, sizeof(err), "cannot keep the job's shuffle key: %s",
			 strerror(-rc));
		goto done;
	}
	if ((rc = fetch_files(t, task, dir, err, sizeof(err))))
		goto done;
	if ((rc = write_task_pb(t, task, dir))) {
		snprintf(err, sizeof(err), "cannot write task.pb: %s", strerror(-rc));
		goto done;
	}
	cdl_reader *reader = NULL;
	if (map) {
		if ((rc = cdl_reader_open_path(t->fs, task->input, &reader))) {
			snprintf(err, sizeof(err), "cannot open input '%s': %s", task->input,
				 strerror(-rc));
			goto done;
		}
		if (pipe2(pipefd, O_CLOEXEC)) {
			rc = -errno;
			cdl_reader_close(reader);
			snprintf(err, sizeof(err), "pipe: %s", strerror(errno));
			goto done;
		}
		fcntl(pipefd[1], F_SETPIPE_SZ, 1 << 20);
	}
	pthread_mutex_lock(&t->mu);
	bool killed = a->kill;
	if (!killed) {
		rc = spawn_child(t, a, dir, pipefd[0], &pid);
		if (rc == 0)
			a->pid = pid;
	}
	pthread_mutex_unlock(&t->mu);
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (killed || rc) {
		if (rc)
			snprintf(err, sizeof(err), "cannot start the task process '%s': %s",
				 t->o.self_exe, strerror(-rc));
		if (reader)
			cdl_reader_close(reader);
		if (pipefd[1] >= 0)
			close(pipefd[1]);
		goto done;
	}
	if (map) {
		struct pump p = {a, reader, pipefd[1], task->length, 0};
		job_split_stats ss;
		int pr = job_split_stream(pump_read, &p, task->offset, task->length, PUMP_CHUNK,
					  pump_write, &p, &ss);
		close(pipefd[1]);
		cdl_reader_close(reader);
		if (pr && pr != -EPIPE && pr != -ECANCELED) {
			/* the child may still be reading: it must not succeed on
			 * a partial split */
			kill(-pid, SIGKILL);
			snprintf(err, sizeof(err), "reading input '%s' at %llu: %s", task->input,
				 (unsigned long long)task->offset, strerror(-pr));
		}
		job_counters_add(&a->cnt, JOB_CG, "map input records", (int64_t)ss.records);
		job_counters_add(&a->cnt, JOB_CG, "map input bytes", (int64_t)ss.bytes);
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	pthread_mutex_lock(&t->mu);
	a->pid = 0;
	killed = a->kill;
	pthread_mutex_unlock(&t->mu);
	read_result(a, dir);
	if (killed) {
		final = CAUDAL__ATTEMPT_STATE__AS_KILLED;
		snprintf(err, sizeof(err), "killed");
	} else if (err[0]) {
		final = CAUDAL__ATTEMPT_STATE__AS_FAILED;
	} else if (WIFEXITED(st) && WEXITSTATUS(st) == JOB_TASK_OK) {
		final = CAUDAL__ATTEMPT_STATE__AS_SUCCEEDED;
		if (!map || task->reduces == 0) {
			if (upload_part(t, task, dir, err, sizeof(err)))
				final = CAUDAL__ATTEMPT_STATE__AS_FAILED;
		}
	} else if (!a->error) {
		char d[128];
		if (WIFSIGNALED(st))
			snprintf(d, sizeof(d), "task process killed by signal %d (%s)",
				 WTERMSIG(st), strsignal(WTERMSIG(st)));
		else
			snprintf(d, sizeof(d), "task process exit status %d", WEXITSTATUS(st));
		snprintf(err, sizeof(err), "%s", d);
	}
done:;
	char *errpath = xasprintf("%s/stderr", dir);
	char *tail = final == CAUDAL__ATTEMPT_STATE__AS_FAILED ? stderr_tail(errpath) : NULL;
	free(errpath);
	pthread_mutex_lock(&t->mu);
	if (a->kill)
		final = CAUDAL__ATTEMPT_STATE__AS_KILLED;
	a->state = final;
	a->end_ms = cdl_now_ms();
	if (final == CAUDAL__ATTEMPT_STATE__AS_SUCCEEDED)
		a->progress = 1.0f;
	if (err[0]) {
		free(a->error);
		a->error = xstrdup(err);
	}
	a->stderr_tail = tail;
	pthread_mutex_unlock(&t->mu);
	cdl_info("attempt '%s' %s in %.2f s%s%s", a->id,
		 final == CAUDAL__ATTEMPT_STATE__AS_SUCCEEDED ? "succeeded"
		 : final == CAUDAL__ATTEMPT_STATE__AS_KILLED  ? "killed"
							      : "failed",
		 (double)(a->end_ms - a->start_ms) / 1000.0, a->error ? ": " : "",
		 a->error ? a->error : "");
	report(t, a);
	free(dir);
	free(jobdir);
	pthread_mutex_lock(&t->mu);
	a->done = true;
	if (a->acked)
		forget(t, a->id);
	t->wake = true;
	t->threads--;
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
	return NULL;
}

/* Take an assignment from a reply (under t->mu): copy it and start its
 * thread. Ids are checked: they become local folder names. */
static void start_attempt(job_tt *t, const Caudal__TaskAssignment *as)
{
	if (!job_id_ok(as->job_id) || !job_id_ok(as->attempt_id)) {
		cdl_warn("assignment with a bad id '%s' ignored", as->attempt_id);
		return;
	}
	for (struct tt_attempt *x = t->attempts; x; x = x->next)
		if (!strcmp(x->id, as->attempt_id))
			return; /* already have it */
	size_t n = caudal__task_assignment__get_packed_size(as);
	uint8_t *b = xmalloc(n ? n : 1);
	caudal__task_assignment__pack(as, b);
	Caudal__TaskAssignment *copy = caudal__task_assignment__unpack(NULL, n, b);
	free(b);
	if (!copy)
		return;
	struct tt_attempt *a = xcalloc(1, sizeof(*a));
	a->t = t;
	a->id = xstrdup(as->attempt_id);
	a->job_id = xstrdup(as->job_id);
	a->task = copy;
	a->state = CAUDAL__ATTEMPT_STATE__AS_RUNNING;
	a->start_ms = cdl_now_ms();
	job_counters_init(&a->cnt);
	a->next = t->attempts;
	t->attempts = a;
	t->threads++;
	pthread_t th;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &at, attempt_main, a)) {
		t->threads--;
		a->done = true;
		a->state = CAUDAL__ATTEMPT_STATE__AS_FAILED;
		a->error = xstrdup("cannot start a thread");
		a->end_ms = cdl_now_ms();
	}
	pthread_attr_destroy(&at);
	cdl_debug("attempt '%s' started", a->id);
}

/* Under t->mu. */
static void kill_attempt(struct tt_attempt *a)
{
	if (a->state != CAUDAL__ATTEMPT_STATE__AS_RUNNING)
		return;
	a->kill = true;
	if (a->pid > 0)
		kill(-a->pid, SIGKILL);
}

/* Under t->mu: the jobtracker has recorded the final status of id; free
 * the attempt, or let its thread do so when it ends. */
static void forget(job_tt *t, const char *id)
{
	for (struct tt_attempt **pp = &t->attempts; *pp; pp = &(*pp)->next) {
		struct tt_attempt *a = *pp;
		if (strcmp(a->id, id) || a->state == CAUDAL__ATTEMPT_STATE__AS_RUNNING)
			continue;
		a->acked = true;
		if (a->done) {
			*pp = a->next;
			attempt_free(a);
		}
		return;
	}
}

static bool job_has_attempts(const job_tt *t, const char *job_id)
{
	for (const struct tt_attempt *a = t->attempts; a; a = a->next)
		if (!strcmp(a->job_id, job_id))
			return true;
	return false;
}

/* ------------------------------------------------------------ heartbeat */

static int do_register(job_tt *t)
{
	Caudal__RegisterTrackerRequest req = CAUDAL__REGISTER_TRACKER_REQUEST__INIT;
	Caudal__TrackerInfo ti = CAUDAL__TRACKER_INFO__INIT;
	ti.id = t->id;
	ti.host = (char *)t->o.host;
	ti.port = (uint32_t)job_shuffle_port(t->shuffle);
	ti.slots = (uint32_t)t->o.slots;
	req.tracker = &ti;
	ProtobufCMessage *rp = NULL;
	int rc = cdl_rpc_call(t->jt, JT_REGISTER, &req.base, &rp, t->o.rpc_timeout_ms);
	if (rc)
		return rc;
	Caudal__RegisterTrackerReply *rep = (void *)rp;
	rc = -(int)rep->err;
	if (rc == 0) {
		pthread_mutex_lock(&t->mu);
		/* A new jobtracker run does not know our attempts: kill them. */
		if (t->epoch != rep->epoch) {
			for (struct tt_attempt *a = t->attempts; a; a = a->next)
				kill_attempt(a);
			t->epoch = rep->epoch;
		}
		t->registered = true;
		t->wait_ms = (int)rep->wait_ms;
		pthread_mutex_unlock(&t->mu);
	}
	protobuf_c_message_free_unpacked(rp, NULL);
	return rc;
}

static void handle_reply(job_tt *t, const Caudal__TrackerHeartbeatReply *rep)
{
	pthread_mutex_lock(&t->mu);
	for (size_t i = 0; i < rep->n_acked; i++)
		forget(t, rep->acked[i]);
	for (size_t i = 0; i < rep->n_kill; i++)
		for (struct tt_attempt *a = t->attempts; a; a = a->next)
			if (!strcmp(a->id, rep->kill[i]))
				kill_attempt(a);
	for (size_t i = 0; i < rep->n_cleanup; i++) {
		const char *j = rep->cleanup[i];
		if (!job_id_ok(j) || job_has_attempts(t, j))
			continue;
		char *p = xasprintf("%s/%s", t->jobs_dir, j);
		if (access(p, F_OK) == 0) {
			rm_rf(p);
			cdl_debug("removed the local files of job '%s'", j);
		}
		free(p);
	}
	for (size_t i = 0; i < rep->n_assign; i++)
		start_attempt(t, rep->assign[i]);
	pthread_mutex_unlock(&t->mu);
}

static void *hb_main(void *arg)
{
	job_tt *t = arg;
	bool warned = false;
	while (!t->stopping) {
		if (!t->registered) {
			int rc = do_register(t);
			if (rc) {
				if (!warned)
					cdl_warn(
					    "cannot register with jobtracker '%s': %s; retrying",
					    t->o.jobtracker, strerror(-rc));
				warned = true;
				sleep_ms(500);
				continue;
			}
			cdl_info("registered with jobtracker '%s' as '%s'", t->o.jobtracker, t->id);
			warned = false;
		}
		cdl_arena ar;
		cdl_arena_init(&ar);
		Caudal__TrackerHeartbeatRequest req = CAUDAL__TRACKER_HEARTBEAT_REQUEST__INIT;
		pthread_mutex_lock(&t->mu);
		size_t n = 0;
		for (struct tt_attempt *a = t->attempts; a; a = a->next)
			n++;
		req.tracker_id = t->id;
		req.epoch = t->epoch;
		req.free_slots = (uint32_t)free_slots(t);
		req.attempts = cdl_arena_alloc(&ar, (n + 1) * sizeof(*req.attempts));
		bool news = false;
		for (struct tt_attempt *a = t->attempts; a; a = a->next) {
			Caudal__AttemptStatus *s = cdl_arena_alloc(&ar, sizeof(*s));
			fill_status(a, s, &ar);
			req.attempts[req.n_attempts++] = s;
			news |= a->state != CAUDAL__ATTEMPT_STATE__AS_RUNNING && !a->reported;
		}
		req.wait_ms = news ? 0 : (uint32_t)t->wait_ms;
		int wait = t->wait_ms;
		size_t len = caudal__tracker_heartbeat_request__get_packed_size(&req);
		uint8_t *buf = xmalloc(len ? len : 1);
		caudal__tracker_heartbeat_request__pack(&req, buf);
		pthread_mutex_unlock(&t->mu);
		cdl_arena_release(&ar);
		Caudal__TrackerHeartbeatRequest *copy =
		    caudal__tracker_heartbeat_request__unpack(NULL, len, buf);
		free(buf);
		ProtobufCMessage *rp = NULL;
		int rc = copy ? cdl_rpc_call(t->jt, JT_HEARTBEAT, &copy->base, &rp,
					     wait + t->o.rpc_timeout_ms)
			      : -ENOMEM;
		if (copy)
			caudal__tracker_heartbeat_request__free_unpacked(copy, NULL);
		if (rc) {
			if (!warned)
				cdl_warn("heartbeat to jobtracker '%s' failed: %s; retrying",
					 t->o.jobtracker, strerror(-rc));
			warned = true;
			sleep_ms(500);
			continue;
		}
		warned = false;
		Caudal__TrackerHeartbeatReply *rep = (void *)rp;
		if (rep->err == ESTALE) {
			cdl_info("jobtracker '%s' does not know us: registering again",
				 t->o.jobtracker);
			t->registered = false;
		} else if (rep->err) {
			cdl_warn("heartbeat refused: %s", strerror((int)rep->err));
			sleep_ms(500);
		} else {
			handle_reply(t, rep);
		}
		bool assigned = rep->n_assign > 0;
		protobuf_c_message_free_unpacked(rp, NULL);
		/* A jobtracker that does not hold calls is polled every
		 * heartbeat_ms, or at once when an attempt ends. */
		if (!assigned && t->wait_ms == 0) {
			pthread_mutex_lock(&t->mu);
			if (!t->wake && !t->stopping)
				timed_wait(&t->cv, &t->mu, t->o.heartbeat_ms);
			t->wake = false;
			pthread_mutex_unlock(&t->mu);
		}
	}
	return NULL;
}

/* ------------------------------------------------------------ start/stop */

int job_tt_start(const job_tt_opts *o, job_tt **out)
{
	job_tt *t = xcalloc(1, sizeof(*t));
	t->o = *o;
	t->jobs_dir = xasprintf("%s/jobs", o->work_dir);
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cv, NULL);
	rm_rf(t->jobs_dir);
	int rc = cdl_mkdirs(t->jobs_dir);
	if (rc) {
		cdl_err("cannot create '%s': %s", t->jobs_dir, strerror(-rc));
		goto fail;
	}
	t->shuffle = job_shuffle_start(o->host, o->port, t->jobs_dir);
	if (!t->shuffle) {
		rc = -EADDRINUSE;
		goto fail;
	}
	t->id = xasprintf("%s:%d", o->host, job_shuffle_port(t->shuffle));
	char *name = xasprintf("tasktracker-%s", t->id);
	cdl_client_opts co = {.namenode = o->namenode,
			      .io_timeout_ms = o->io_timeout_ms,
			      .client_host = o->host,
			      .name = name};
	t->fs = cdl_client_new(&co);
	free(name);
	t->jt = cdl_rpc_client_new(o->jobtracker, &caudal__job_protocol__descriptor);
	if (!t->fs || !t->jt) {
		cdl_err("bad namenode '%s' or jobtracker '%s' address", o->namenode, o->jobtracker);
		rc = -EINVAL;
		goto fail;
	}
	if ((rc = -pthread_create(&t->hb_thread, NULL, hb_main, t)))
		goto fail;
	*out = t;
	return 0;
fail:
	if (t->jt)
		cdl_rpc_client_free(t->jt);
	if (t->fs)
		cdl_client_free(t->fs);
	job_shuffle_stop(t->shuffle);
	free(t->id);
	free(t->jobs_dir);
	free(t);
	return rc;
}

int job_tt_port(const job_tt *t)
{
	return job_shuffle_port(t->shuffle);
}

void job_tt_stop(job_tt *t)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->mu);
	t->stopping = true;
	for (struct tt_attempt *a = t->attempts; a; a = a->next)
		kill_attempt(a);
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
	pthread_join(t->hb_thread, NULL);
	pthread_mutex_lock(&t->mu);
	while (t->threads > 0)
		pthread_cond_wait(&t->cv, &t->mu);
	pthread_mutex_unlock(&t->mu);
	while (t->attempts) {
		struct tt_attempt *a = t->attempts;
		t->attempts = a->next;
		attempt_free(a);
	}
	job_shuffle_stop(t->shuffle);
	cdl_rpc_client_free(t->jt);
	cdl_client_free(t->fs);
	rm_rf(t->jobs_dir);
	free(t->id);
	free(t->jobs_dir);
	pthread_mutex_destroy(&t->mu);
	pthread_cond_destroy(&t->cv);
	free(t);
}
