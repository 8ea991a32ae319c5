/* job_tt: the tasktracker; see job_tt.h. */
#include "job_tt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
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
#include "cdl_metrics.h"
#include "cdl_rpc.h"
#include "cdl_util.h"
#include "job_counter.h"
#include "job_shuffle.h"
#include "job_split.h"
#include "job_status.h"
#include "job_task.h"
#include "job_user.h"
#include "jobs.pb-c.h"

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

/* caudal_tasktracker_* in the process's registry: attempts run, by kind
 * and how they ended, with their time; the slots at each render. */
static cdl_metric *tm_done, *tm_secs;
static pthread_once_t tm_once = PTHREAD_ONCE_INIT;

static void tm_init(void)
{
	cdl_metrics *r = cdl_metrics_global();
	tm_done = cdl_metrics_counter(r, "caudal_tasktracker_attempts_total",
				      "Task attempts run here, by kind and result.", "kind,result");
	tm_secs = cdl_metrics_histogram(r, "caudal_tasktracker_attempt_seconds",
					"Time of the attempts run here, by kind.", "kind", NULL, 0);
	static const char *const res[] = {"succeeded", "failed", "killed"};
	for (int k = 0; k < 2; k++) {
		(void)cdl_metric_at(tm_secs, k ? "map" : "reduce");
		for (int i = 0; i < 3; i++)
			(void)cdl_metric_at(tm_done, k ? "map" : "reduce", res[i]);
	}
}

static int free_slots(const job_tt *t);

static void tt_collect(void *arg)
{
	job_tt *t = arg;
	cdl_metric *slots = cdl_metrics_gauge(cdl_metrics_global(), "caudal_tasktracker_slots",
					      "Attempt slots, by use.", "state");
	pthread_mutex_lock(&t->mu);
	int busy = t->o.slots - free_slots(t);
	pthread_mutex_unlock(&t->mu);
	cdl_series_set(cdl_metric_at(slots, "total"), t->o.slots);
	cdl_series_set(cdl_metric_at(slots, "busy"), busy);
}

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

/* Empty the folder open as dfd (taken over) without following links: an
 * attempt's tree was written by the job's user, who may have left links
 * to anywhere in it, or swap a folder for one while we work. */
static void rm_tree_at(int dfd, int depth)
{
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) == 0 || errno != EISDIR || depth > 64)
			continue;
		int sub =
		    openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub >= 0)
			rm_tree_at(sub, depth + 1);
		unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR);
	}
	closedir(d);
}

/* Remove a local tree; missing is fine. */
static void rm_rf(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		unlink(path);
		return;
	}
	rm_tree_at(fd, 0);
	rmdir(path);
}

/* Open name in an attempt's folder to read it as the tracker: the job's
 * user wrote it and may have left a link (to a file only root may read) or
 * a FIFO there. Only a regular file of the user's with one link is opened.
 * The fd, or -errno. */
static int open_user_file(const char *dir, const char *name, uid_t uid)
{
	char *p = xasprintf("%s/%s", dir, name);
	int fd = open(p, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	free(p);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_nlink != 1 || st.st_uid != uid) {
		close(fd);
		return -EPERM;
	}
	return fd;
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

/* The child's whole environment: a clean one (nothing of the tracker's
 * own passes to a user's command), the user's names, HOME in the
 * attempt's folder, and the attempt's identity (streaming commands see it
 * too). */
static char **child_env(const Caudal__TaskAssignment *task, const job_user *u, const char *dir)
{
	char **env = NULL;
	size_t n = 0;
	bool map = task->type == CAUDAL__TASK_TYPE__TASK_MAP;
	set_env(&env, &n, "PATH", "%s", "/usr/local/bin:/usr/bin:/bin");
	set_env(&env, &n, "HOME", "%s", dir);
	set_env(&env, &n, "USER", "%s", u->name);
	set_env(&env, &n, "LOGNAME", "%s", u->name);
	set_env(&env, &n, "LANG", "%s", "C");
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

/* Last lines of the attempt's stderr (the file we opened for it, read
 * through our descriptor), for the jobtracker's error. */
static char *stderr_tail(int fd)
{
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

/* Copy the job's distributed cache files into the attempt's folder (new,
 * still only ours), keeping their permission bits (a script stays
 * executable). fs reads them as the job's user. */
static int fetch_files(cdl_client *fs, const Caudal__TaskAssignment *task, const char *dir,
		       char *err, size_t errlen)
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
		int rc = cdl_stat(fs, src, &attr);
		uint32_t mode = attr ? (attr->mode & 0777) : 0644;
		if (attr)
			protobuf_c_message_free_unpacked(&attr->base, NULL);
		char *dst = xasprintf("%s/%s", dir, base);
		int fd =
		    rc ? -1
		       : open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (!rc && fd < 0)
			rc = -errno;
		if (!rc)
			rc = cdl_get_fd(fs, src, fd);
		if (fd >= 0) {
			fchmod(fd, (mode & 0777) | 0600);
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
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	int rc = fd < 0 ? -errno : cdl_write_full(fd, b, n);
	if (fd >= 0 && close(fd) && !rc)
		rc = -errno;
	free(path);
	free(b);
	return rc;
}

/* Hand the attempt's folder, and what we put in it, to the job's user.
 * Until now only we could enter it, so nothing in it is the user's
 * doing. */
static int give_to_user(const char *dir, const job_user *u)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	DIR *d = fdopendir(dfd);
	if (!d) {
		int e = -errno;
		close(dfd);
		return e;
	}
	int rc = 0;
	struct dirent *e;
	while ((e = readdir(d)) && !rc)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
		    fchownat(dirfd(d), e->d_name, u->uid, u->gid, AT_SYMLINK_NOFOLLOW))
			rc = -errno;
	if (!rc && fchown(dirfd(d), u->uid, u->gid))
		rc = -errno;
	closedir(d);
	return rc;
}

/* Start `SELF --task .` in DIR as the job's user (user NULL: as the
 * tracker itself), in its own process group, stdin from in_fd, stdout and
 * stderr to err_fd. */
static int spawn_child(job_tt *t, struct tt_attempt *a, const char *dir, const job_user *u,
		       bool as_self, int in_fd, int err_fd, pid_t *pid, char *err, size_t errlen)
{
	char *argv[] = {"caudal-task", "--task", ".", NULL};
	char **env = child_env(a->task, u, dir);
	job_spawn s = {.path = t->o.self_exe,
		       .argv = argv,
		       .envp = env,
		       .dir = dir,
		       .in_fd = in_fd,
		       .out_fd = err_fd,
		       .err_fd = err_fd,
		       .user = as_self ? NULL : u,
		       .new_pgroup = true};
	int rc = job_user_spawn(&s, pid, err, errlen);
	free_env(env);
	return rc;
}

/* Read DIR/result.pb (the user's file: opened with care) into a. */
static void read_result(struct tt_attempt *a, const char *dir, uid_t uid)
{
	int fd = open_user_file(dir, "result.pb", uid);
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
					/* the user's words: one line in
					 * every log and file they reach */
					a->error = job_escape(r->error, strnlen(r->error, 1024));
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

/* Upload DIR/part (the user's file: opened with care) to
 * task->output/task->part in Caudal, as the user (fs). The attempt's
 * folder is made without parents: if the job's _temporary is gone (the
 * job was killed) the upload fails instead of recreating the output. */
static int upload_part(cdl_client *fs, const Caudal__TaskAssignment *task, const char *dir,
		       uid_t uid, char *err, size_t errlen)
{
	int rc = cdl_mkdir(fs, task->output, 0755, false);
	if (rc && rc != -EEXIST) {
		snprintf(err, errlen, "cannot create '%s': %s", task->output, strerror(-rc));
		return rc;
	}
	char *remote = xasprintf("%s/%s", task->output, task->part);
	int fd = open_user_file(dir, "part", uid);
	if (fd < 0) {
		rc = fd;
		snprintf(err, errlen, "no output file '%s/part': %s", dir, strerror(-rc));
	} else {
		rc = cdl_put_fd(fs, remote, fd, 0644, 0, 0, true);
		if (rc)
			snprintf(err, errlen, "cannot write '%s': %s", remote, strerror(-rc));
		close(fd);
	}
	free(remote);
	return rc;
}

/* One attempt, start to end, on its own thread: as the job's user, it
 * reads and writes Caudal through a client of its own whose requests
 * carry the user's Cred, and its child runs with the user's identity in a
 * folder that belongs to the user. */
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
	int pipefd[2] = {-1, -1}, err_fd = -1;
	cdl_client *fs = NULL;
	cdl_reader *reader = NULL;
	Caudal__AttemptState final = CAUDAL__ATTEMPT_STATE__AS_FAILED;
	job_user user;
	/* a tracker that is not root runs only its own user's tasks, as it is */
	bool as_self = geteuid() != 0 && task->uid == geteuid();

	if ((rc = job_user_lookup(task->uid, task->gid, &user))) {
		snprintf(err, sizeof(err), "cannot run as uid %u: %s", task->uid,
			 rc == -ENOENT ? "no such user on this host" : strerror(-rc));
		goto done;
	}
	char *name = xasprintf("task-%s", task->attempt_id);
	cdl_client_opts co = {.namenode = t->o.namenode,
			      .io_timeout_ms = t->o.io_timeout_ms,
			      .client_host = t->o.host,
			      .name = name};
	fs = job_user_client(&co, &user);
	free(name);
	if (!fs) {
		rc = -EINVAL;
		snprintf(err, sizeof(err), "cannot make a client of namenode '%s'", t->o.namenode);
		goto done;
	}
	rm_rf(dir);
	/* WORK/jobs/JOB is ours: users may pass through it to their own
	 * attempt folders, not list it, nor read the job's key */
	if ((rc = cdl_mkdirs(jobdir)) || (chmod(jobdir, 0711) && (rc = -errno))) {
		snprintf(err, sizeof(err), "cannot create '%s': %s", jobdir, strerror(-rc));
		goto done;
	}
	if (mkdir(dir, 0700)) {
		rc = -errno;
		snprintf(err, sizeof(err), "cannot create '%s': %s", dir, strerror(-rc));
		goto done;
	}
	/* the shuffle server checks this job's fetches with it */
	if ((rc = job_shuffle_key_save(t->jobs_dir, task->job_id, task->shuffle_key.data,
				       task->shuffle_key.len))) {
		snprintf(err, sizeof(err), "cannot keep the job's shuffle key: %s", strerror(-rc));
		goto done;
	}
	if ((rc = fetch_files(fs, task, dir, err, sizeof(err))))
		goto done;
	if ((rc = write_task_pb(t, task, dir))) {
		snprintf(err, sizeof(err), "cannot write task.pb: %s", strerror(-rc));
		goto done;
	}
	char *errpath = xasprintf("%s/stderr", dir);
	err_fd = open(errpath, O_RDWR | O_CREAT | O_EXCL | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
	free(errpath);
	if (err_fd < 0) {
		rc = -errno;
		snprintf(err, sizeof(err), "cannot create the attempt's stderr: %s", strerror(-rc));
		goto done;
	}
	if (!as_self && (rc = give_to_user(dir, &user))) {
		snprintf(err, sizeof(err), "cannot give '%s' to '%s': %s", dir, user.name,
			 strerror(-rc));
		goto done;
	}
	if (map) {
		if ((rc = cdl_reader_open_path(fs, task->input, &reader))) {
			snprintf(err, sizeof(err), "cannot open input '%s': %s", task->input,
				 strerror(-rc));
			goto done;
		}
		if (pipe2(pipefd, O_CLOEXEC)) {
			rc = -errno;
			snprintf(err, sizeof(err), "pipe: %s", strerror(errno));
			goto done;
		}
		fcntl(pipefd[1], F_SETPIPE_SZ, 1 << 20);
	}
	pthread_mutex_lock(&t->mu);
	bool killed = a->kill;
	if (!killed) {
		rc = spawn_child(t, a, dir, &user, as_self, pipefd[0], err_fd, &pid, err,
				 sizeof(err));
		if (rc == 0)
			a->pid = pid;
	}
	pthread_mutex_unlock(&t->mu);
	if (pipefd[0] >= 0)
		close(pipefd[0]), pipefd[0] = -1;
	if (killed || rc) {
		if (rc)
			cdl_warn("attempt '%s': %s", a->id, err);
		goto done;
	}
	if (map) {
		struct pump p = {a, reader, pipefd[1], task->length, 0};
		job_split_stats ss;
		int pr = job_split_stream(pump_read, &p, task->offset, task->length, PUMP_CHUNK,
					  pump_write, &p, &ss);
		close(pipefd[1]);
		pipefd[1] = -1;
		cdl_reader_close(reader);
		reader = NULL;
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
	uid_t owner = as_self ? geteuid() : user.uid;
	read_result(a, dir, owner);
	if (killed) {
		final = CAUDAL__ATTEMPT_STATE__AS_KILLED;
		snprintf(err, sizeof(err), "killed");
	} else if (err[0]) {
		final = CAUDAL__ATTEMPT_STATE__AS_FAILED;
	} else if (WIFEXITED(st) && WEXITSTATUS(st) == JOB_TASK_OK) {
		final = CAUDAL__ATTEMPT_STATE__AS_SUCCEEDED;
		if (!map || task->reduces == 0) {
			if (upload_part(fs, task, dir, owner, err, sizeof(err)))
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
	if (reader)
		cdl_reader_close(reader);
	for (int i = 0; i < 2; i++)
		if (pipefd[i] >= 0)
			close(pipefd[i]);
	if (fs)
		cdl_client_free(fs);
	char *tail = final == CAUDAL__ATTEMPT_STATE__AS_FAILED ? stderr_tail(err_fd) : NULL;
	if (err_fd >= 0)
		close(err_fd);
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
	const char *kind = map ? "map" : "reduce";
	cdl_series_add(cdl_metric_at(tm_done, kind,
				     final == CAUDAL__ATTEMPT_STATE__AS_SUCCEEDED ? "succeeded"
				     : final == CAUDAL__ATTEMPT_STATE__AS_KILLED  ? "killed"
										  : "failed"),
		       1);
	cdl_series_observe(cdl_metric_at(tm_secs, kind), (double)(a->end_ms - a->start_ms) / 1e3);
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
	pthread_once(&tm_once, tm_init);
	job_tt *t = xcalloc(1, sizeof(*t));
	t->o = *o;
	t->jobs_dir = xasprintf("%s/jobs", o->work_dir);
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cv, NULL);
	rm_rf(t->jobs_dir);
	int rc = cdl_mkdirs(t->jobs_dir);
	if (!rc && chmod(t->jobs_dir, 0711))
		rc = -errno;
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
	t->jt = cdl_rpc_client_new(o->jobtracker, &caudal__job_protocol__descriptor);
	/* attempts make clients of their own (one per job user): check the
	 * address now */
	cdl_client_opts co = {.namenode = o->namenode, .io_timeout_ms = o->io_timeout_ms};
	cdl_client *probe = cdl_client_new(&co);
	cdl_client_free(probe);
	if (!t->jt || !probe) {
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
	job_shuffle_stop(t->shuffle);
	free(t->id);
	free(t->jobs_dir);
	free(t);
	return rc;
}

int job_tt_metrics(job_tt *t)
{
	return cdl_metrics_collector(cdl_metrics_global(), tt_collect, t);
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
	rm_rf(t->jobs_dir);
	free(t->id);
	free(t->jobs_dir);
	pthread_mutex_destroy(&t->mu);
	pthread_cond_destroy(&t->cv);
	free(t);
}
