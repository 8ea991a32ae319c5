/* job_jt: the jobtracker; see job_jt.h. */
#include "job_jt.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cdl_client.h"
#include "cdl_log.h"
#include "cdl_metrics.h"
#include "cdl_rpc.h"
#include "cdl_ui.h"
#include "cdl_util.h"
#include "job_counter.h"
#include "job_shuffle.h"
#include "job_spec.h"
#include "job_status.h"
#include "job_user.h"
#include "jobs.pb-c.h"

/* Jobs that ended this long ago are forgotten (their files stay). */
#define JOB_FORGET_MS (10 * 60 * 1000)
/* Trackers are told to delete an ended job's local files for this long. */
#define CLEANUP_WINDOW_MS (120 * 1000)
/* Map output reported unfetchable this many times is produced again. */
#define FETCH_FAILURES_MAX 2
/* Attempts stopped for reasons not their own (lost tracker, unfetchable
 * input) before they count as failures anyway. */
#define UNCOUNTED_MAX 20
/* Most splits in one job. */
#define SPLITS_MAX 1000000
/* Poll interval of the event log when events_wait_ms is 0. */
#define EVENTS_POLL_MS 50

enum task_state { T_PENDING, T_RUNNING, T_SUCCEEDED };
enum locality { L_NONE, L_DATA, L_RACK, L_REMOTE };
static const char *const loc_names[] = {"-", "data-local", "rack-local", "remote"};

struct tracker {
	struct tracker *next;
	char *id, *host, *rack;
	int port, slots, running;
	int64_t last_seen_ms;
	bool lost;
	char **kills; /* attempt ids to put in its next reply */
	size_t nkills;
};

struct jattempt {
	char *id;
	unsigned num;
	struct tracker *tt; /* trackers are never freed while the jobtracker runs */
	char *host;
	enum locality loc;
	Caudal__AttemptState state;
	float progress;
	int64_t start_ms, end_ms;
	job_counters cnt;
	char *error, *stderr_tail;
	char *output;	       /* reduce and map-only: temp folder of its part file */
	uint64_t output_bytes; /* succeeded: bytes of its map output or part file */
};

struct jtask {
	bool map;
	unsigned index;
	enum task_state state;
	/* map: the split */
	char *path;
	uint64_t offset, length;
	char **hosts, **racks;
	size_t nhosts;
	struct jattempt **att;
	size_t natt;
	int failures, uncounted, fetch_failures;
	struct jattempt *winner;
	char **failed_on; /* tracker ids where an attempt failed */
	size_t nfailed_on;
};

struct job {
	struct job *next;
	struct job_jt *jt;
	char *name, *id, *spec_path, *status_dir;
	uint64_t spec_ino, spec_size; /* the spec file this run read */
	int64_t spec_mtime_ns;
	uint32_t spec_uid, spec_gid, spec_mode; /* its owner, group and mode */
	job_user owner;	 /* who the job runs as: the spec's owner (driver thread) */
	cdl_client *fs;	 /* acts as owner: every namespace operation of the job */
	bool no_status;	 /* the status folder is not ours: write nothing there */
	bool resume;	 /* found by the start-up scan */
	bool superseded; /* its spec was rewritten: killed quietly, no final status */
	bool resubmit;	 /* submit the spec again when this run has ended */
	job_spec spec;
	bool have_spec;
	uint8_t shuffle_key[JOB_SHUFFLE_KEY_LEN]; /* signs its shuffle fetches (random per run) */
	enum job_state state;
	bool schedulable; /* planned: attempts may be assigned */
	bool kill_req, fail_req;
	bool created_output;
	char *error, *error_tail;
	struct jtask *maps, *reds;
	size_t nmaps, nreds, maps_done, reds_done;
	int64_t submit_ns, start_ns, end_ns; /* wall clock */
	int64_t submit_ms, ended_ms;	     /* monotonic */
	int64_t skip_since_ms;		     /* delay scheduling: waiting for locality since */
	bool dirty;
	enum job_state written; /* state in the last status written */
	pthread_t thread;
	bool thread_started, thread_done;
	pthread_cond_t cv;
};

struct job_jt {
	job_jt_opts o;
	cdl_client *fs;
	cdl_rpc_server *srv;
	pthread_mutex_t mu;
	pthread_cond_t work_cv; /* new work or a freed slot: wake long polls */
	pthread_cond_t stop_cv;
	struct job *jobs; /* in submission order */
	struct tracker *trackers;
	uint64_t epoch;
	int64_t last_stamp;
	bool stopping;
	bool racks_wanted;
	pthread_t events_thread, monitor_thread;
	bool events_started, monitor_started;
};

/* What /metrics counts as it happens (caudal_jobtracker_*); the gauges
 * are read from memory at each render (jt_collect). */
static struct {
	cdl_metric *started; /* attempts started, by kind and locality */
	cdl_series *failed_map, *failed_reduce;
	cdl_series *done[JOB_KILLED + 1];
} jm;
static pthread_once_t jm_once = PTHREAD_ONCE_INIT;

static void jm_init(void)
{
	cdl_metrics *r = cdl_metrics_global();
	jm.started = cdl_metrics_counter(r, "caudal_jobtracker_attempts_started_total",
					 "Task attempts started, by kind and (for maps) locality.",
					 "kind,locality");
	cdl_metric *f =
	    cdl_metrics_counter(r, "caudal_jobtracker_attempts_failed_total",
				"Task attempts that failed (counted against their task).", "kind");
	jm.failed_map = cdl_metric_at(f, "map");
	jm.failed_reduce = cdl_metric_at(f, "reduce");
	cdl_metric *d = cdl_metrics_counter(r, "caudal_jobtracker_jobs_completed_total",
					    "Jobs that ended, by final state.", "state");
	for (int st = JOB_SUCCEEDED; st <= JOB_KILLED; st++)
		jm.done[st] = cdl_metric_at(d, job_state_name((enum job_state)st));
	for (int m = 0; m < 2; m++)
		for (int l = L_NONE; l <= L_REMOTE; l++)
			if (m == 1 ? l != L_NONE : l == L_NONE)
				(void)cdl_metric_at(jm.started, m ? "map" : "reduce", loc_names[l]);
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
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

static void free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void push_str(char ***v, size_t *n, const char *s)
{
	*v = xrealloc(*v, (*n + 1) * sizeof(char *));
	(*v)[(*n)++] = xstrdup(s);
}

static bool has_str(char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i], s))
			return true;
	return false;
}

/* ------------------------------------------------------------ jobs in memory */

static void task_release(struct jtask *t)
{
	free(t->path);
	free_strv(t->hosts, t->nhosts);
	free_strv(t->racks, t->nhosts);
	for (size_t i = 0; i < t->natt; i++) {
		struct jattempt *a = t->att[i];
		free(a->id);
		free(a->host);
		job_counters_release(&a->cnt);
		free(a->error);
		free(a->stderr_tail);
		free(a->output);
		free(a);
	}
	free(t->att);
	free_strv(t->failed_on, t->nfailed_on);
}

static void job_free(struct job *j)
{
	for (size_t i = 0; i < j->nmaps; i++)
		task_release(&j->maps[i]);
	for (size_t i = 0; i < j->nreds; i++)
		task_release(&j->reds[i]);
	free(j->maps);
	free(j->reds);
	if (j->have_spec)
		job_spec_release(&j->spec);
	free(j->name);
	free(j->id);
	free(j->spec_path);
	free(j->status_dir);
	free(j->error);
	free(j->error_tail);
	if (j->fs)
		cdl_client_free(j->fs);
	OPENSSL_cleanse(j->shuffle_key, sizeof(j->shuffle_key));
	pthread_cond_destroy(&j->cv);
	free(j);
}

static bool job_active(const struct job *j)
{
	return !j->thread_done;
}

static struct job *find_job_id(job_jt *jt, const char *id, size_t n)
{
	for (struct job *j = jt->jobs; j; j = j->next)
		if (strlen(j->id) == n && !memcmp(j->id, id, n))
			return j;
	return NULL;
}

/* "JOBID_m_00003_1" -> its job, task and attempt; NULL if unknown. */
static struct jattempt *find_attempt(job_jt *jt, const char *id, struct job **jo, struct jtask **to)
{
	size_t n = strlen(id);
	const char *u3 = memrchr(id, '_', n);
	if (!u3 || u3 - id < 4)
		return NULL;
	const char *u2 = memrchr(id, '_', (size_t)(u3 - id));
	if (!u2 || u2 - id < 3 || u2[-2] != '_' || (u2[-1] != 'm' && u2[-1] != 'r'))
		return NULL;
	struct job *j = find_job_id(jt, id, (size_t)(u2 - 2 - id));
	if (!j)
		return NULL;
	char *end;
	unsigned long idx = strtoul(u2 + 1, &end, 10);
	if (end != u3)
		return NULL;
	unsigned long num = strtoul(u3 + 1, &end, 10);
	if (*end)
		return NULL;
	bool map = u2[-1] == 'm';
	if (idx >= (map ? j->nmaps : j->nreds))
		return NULL;
	struct jtask *t = map ? &j->maps[idx] : &j->reds[idx];
	if (num >= t->natt || strcmp(t->att[num]->id, id))
		return NULL;
	*jo = j;
	*to = t;
	return t->att[num];
}

static struct tracker *find_tracker(job_jt *jt, const char *id)
{
	for (struct tracker *t = jt->trackers; t; t = t->next)
		if (!strcmp(t->id, id))
			return t;
	return NULL;
}

static void mark_dirty(struct job *j)
{
	j->dirty = true;
	pthread_cond_signal(&j->cv);
}

/* Under mu: stop a running attempt at the jobtracker's side; the tracker
 * is told in its next reply. */
static void stop_attempt(job_jt *jt, struct jattempt *a, Caudal__AttemptState st, const char *why)
{
	if (a->state != CAUDAL__ATTEMPT_STATE__AS_RUNNING)
		return;
	a->state = st;
	a->end_ms = cdl_now_ms();
	if (why && !a->error)
		a->error = xstrdup(why);
	if (a->tt) {
		if (a->tt->running > 0)
			a->tt->running--;
		if (!a->tt->lost)
			push_str(&a->tt->kills, &a->tt->nkills, a->id);
	}
	pthread_cond_broadcast(&jt->work_cv);
}

/* Under mu: end every running attempt of j (job failed or killed). */
static void stop_job_attempts(job_jt *jt, struct job *j, const char *why)
{
	for (int pass = 0; pass < 2; pass++) {
		struct jtask *ts = pass ? j->reds : j->maps;
		size_t n = pass ? j->nreds : j->nmaps;
		for (size_t i = 0; i < n; i++)
			for (size_t k = 0; k < ts[i].natt; k++)
				stop_attempt(jt, ts[i].att[k], CAUDAL__ATTEMPT_STATE__AS_KILLED,
					     why);
	}
}

/* Under mu: a map's output is gone (its tracker was lost, or reducers
 * could not fetch it): run the map again. */
static void redo_map(job_jt *jt, struct job *j, struct jtask *t, const char *why)
{
	if (t->state != T_SUCCEEDED)
		return;
	cdl_info("job '%s': map %u will run again: %s", j->name, t->index, why);
	t->state = T_PENDING;
	t->winner = NULL;
	t->fetch_failures = 0;
	j->maps_done--;
	/* running reduces were told where the lost output was: they cannot
	 * finish; they start again once every map has succeeded */
	for (size_t i = 0; i < j->nreds; i++) {
		struct jtask *r = &j->reds[i];
		for (size_t k = 0; k < r->natt; k++) {
			struct jattempt *a = r->att[k];
			if (a->state != CAUDAL__ATTEMPT_STATE__AS_RUNNING)
				continue;
			stop_attempt(jt, a, CAUDAL__ATTEMPT_STATE__AS_KILLED,
				     "a map output it needs is being produced again");
			r->uncounted++;
			if (r->state == T_RUNNING)
				r->state = T_PENDING;
		}
	}
	mark_dirty(j);
	pthread_cond_broadcast(&jt->work_cv);
}

/* Under mu: the job cannot succeed. */
static void fail_job(job_jt *jt, struct job *j, const char *error, const char *tail)
{
	if (j->fail_req || j->kill_req)
		return;
	j->fail_req = true;
	free(j->error);
	j->error = xstrdup(error);
	free(j->error_tail);
	j->error_tail = tail ? xstrdup(tail) : NULL;
	stop_job_attempts(jt, j, "job failed");
	mark_dirty(j);
}

/* Under mu: apply the final status s of attempt a of task t. */
static void finish_attempt(job_jt *jt, struct job *j, struct jtask *t, struct jattempt *a,
			   const Caudal__AttemptStatus *s)
{
	if (a->state != CAUDAL__ATTEMPT_STATE__AS_RUNNING)
		return;
	a->end_ms = cdl_now_ms();
	a->progress = s->progress;
	for (size_t i = 0; i < s->n_counters; i++)
		job_counters_add(&a->cnt, s->counters[i]->group, s->counters[i]->name,
				 s->counters[i]->value);
	if (s->error[0] && !a->error)
		a->error = job_escape(s->error, strnlen(s->error, 1024));
	if (s->stderr_tail[0] && !a->stderr_tail)
		a->stderr_tail = xstrndup(s->stderr_tail, 4096);
	if (a->tt && a->tt->running > 0)
		a->tt->running--;
	pthread_cond_broadcast(&jt->work_cv);
	mark_dirty(j);
	bool ending = j->fail_req || j->kill_req || job_state_final(j->state);

	if (s->state == CAUDAL__ATTEMPT_STATE__AS_SUCCEEDED) {
		a->state = CAUDAL__ATTEMPT_STATE__AS_SUCCEEDED;
		a->progress = 1.0f;
		a->output_bytes = s->output_bytes;
		if (t->state == T_SUCCEEDED || ending)
			return;
		t->state = T_SUCCEEDED;
		t->winner = a;
		t->fetch_failures = 0;
		if (t->map)
			j->maps_done++;
		else
			j->reds_done++;
		return;
	}
	if (s->state == CAUDAL__ATTEMPT_STATE__AS_FAILED && s->n_fetch_failed &&
	    t->uncounted < UNCOUNTED_MAX) {
		/* not the reducer's fault: the maps it needs are redone */
		a->state = CAUDAL__ATTEMPT_STATE__AS_KILLED;
		t->uncounted++;
		for (size_t i = 0; i < s->n_fetch_failed; i++) {
			uint32_t m = s->fetch_failed[i];
			if (m >= j->nmaps)
				continue;
			struct jtask *mt = &j->maps[m];
			/* only reports about the output it was given count: a
			 * map redone since then is not to blame */
			if (mt->state != T_SUCCEEDED || !mt->winner ||
			    mt->winner->end_ms > a->start_ms)
				continue;
			mt->fetch_failures++;
			if (mt->fetch_failures >= FETCH_FAILURES_MAX ||
			    (mt->winner && mt->winner->tt && mt->winner->tt->lost))
				redo_map(jt, j, mt, "its output could not be fetched");
		}
	} else if (s->state == CAUDAL__ATTEMPT_STATE__AS_FAILED) {
		a->state = CAUDAL__ATTEMPT_STATE__AS_FAILED;
		t->failures++;
		cdl_series_add(t->map ? jm.failed_map : jm.failed_reduce, 1);
		if (a->tt && !has_str(t->failed_on, t->nfailed_on, a->tt->id))
			push_str(&t->failed_on, &t->nfailed_on, a->tt->id);
		if (t->failures >= jt->o.max_attempts && !ending) {
			char msg[1400];
			snprintf(msg, sizeof(msg),
				 "%s task %c-%05u failed %d attempts; last on %s: %s",
				 t->map ? "map" : "reduce", t->map ? 'm' : 'r', t->index,
				 t->failures, a->host, a->error ? a->error : "unknown error");
			cdl_warn("job '%s': %s", j->name, msg);
			if (t->state == T_RUNNING)
				t->state = T_PENDING;
			fail_job(jt, j, msg, a->stderr_tail);
			return;
		}
	} else {
		a->state = CAUDAL__ATTEMPT_STATE__AS_KILLED;
		t->uncounted++;
	}
	if (t->state == T_RUNNING)
		t->state = T_PENDING;
}

/* Under mu: a tracker is gone (silent, or registered again): its running
 * attempts are redone, and so are its finished maps whose output reducers
 * still need. */
static void tracker_lost(job_jt *jt, struct tracker *tr, const char *why)
{
	cdl_warn("tasktracker '%s' lost (%s): redoing its work", tr->id, why);
	for (struct job *j = jt->jobs; j; j = j->next) {
		if (!job_active(j))
			continue;
		for (int pass = 0; pass < 2; pass++) {
			struct jtask *ts = pass ? j->reds : j->maps;
			size_t n = pass ? j->nreds : j->nmaps;
			for (size_t i = 0; i < n; i++) {
				struct jtask *t = &ts[i];
				for (size_t k = 0; k < t->natt; k++) {
					struct jattempt *a = t->att[k];
					if (a->tt != tr ||
					    a->state != CAUDAL__ATTEMPT_STATE__AS_RUNNING)
						continue;
					stop_attempt(jt, a, CAUDAL__ATTEMPT_STATE__AS_KILLED,
						     "tasktracker lost");
					t->uncounted++;
					if (t->state == T_RUNNING)
						t->state = T_PENDING;
					mark_dirty(j);
				}
				if (t->map && t->state == T_SUCCEEDED && t->winner &&
				    t->winner->tt == tr && j->nreds > 0 &&
				    j->reds_done < j->nreds && !job_state_final(j->state))
					redo_map(jt, j, t, "its tasktracker was lost");
			}
		}
	}
	tr->running = 0;
	free_strv(tr->kills, tr->nkills);
	tr->kills = NULL;
	tr->nkills = 0;
	pthread_cond_broadcast(&jt->work_cv);
}

/* ------------------------------------------------------------ scheduling */

static bool live_tracker_not_in(job_jt *jt, const struct jtask *t)
{
	for (struct tracker *tr = jt->trackers; tr; tr = tr->next)
		if (!tr->lost && !has_str(t->failed_on, t->nfailed_on, tr->id))
			return true;
	return false;
}

/* A retry goes elsewhere: skip trackers where the task failed, unless it
 * failed on every live one. */
static bool avoid(job_jt *jt, const struct jtask *t, const struct tracker *tr)
{
	return has_str(t->failed_on, t->nfailed_on, tr->id) && live_tracker_not_in(jt, t);
}

static struct jtask *pick_map(job_jt *jt, struct job *j, struct tracker *tr, enum locality *loc)
{
	struct jtask *rack = NULL, *any = NULL;
	for (size_t i = 0; i < j->nmaps; i++) {
		struct jtask *t = &j->maps[i];
		if (t->state != T_PENDING || avoid(jt, t, tr))
			continue;
		/* no hosts: an inline file, read from the namenode, as near
		 * to one tracker as to any */
		if (t->nhosts == 0 || has_str(t->hosts, t->nhosts, tr->host)) {
			*loc = L_DATA;
			j->skip_since_ms = 0;
			return t;
		}
		if (!rack && tr->rack && has_str(t->racks, t->nhosts, tr->rack))
			rack = t;
		if (!any)
			any = t;
	}
	if (!any)
		return NULL;
	/* Delay scheduling: give trackers holding the data a moment first. */
	int64_t now = cdl_now_ms();
	if (!j->skip_since_ms)
		j->skip_since_ms = now;
	int64_t waited = now - j->skip_since_ms;
	if (rack && waited >= jt->o.locality_wait_ms) {
		*loc = L_RACK;
		return rack;
	}
	if (waited >= 2 * (int64_t)jt->o.locality_wait_ms) {
		*loc = rack == any ? L_RACK : L_REMOTE;
		return any;
	}
	return NULL;
}

static struct jtask *pick_reduce(job_jt *jt, struct job *j, struct tracker *tr)
{
	for (size_t i = 0; i < j->nreds; i++) {
		struct jtask *t = &j->reds[i];
		if (t->state == T_PENDING && !avoid(jt, t, tr))
			return t;
	}
	return NULL;
}

static char *output_tmp(const struct job *j)
{
	return xasprintf("%s/_temporary", j->spec.output);
}

/* Under mu: a new attempt of t on tr, described into as (arena-owned). */
static void new_attempt(struct job *j, struct jtask *t, struct tracker *tr, enum locality loc,
			Caudal__TaskAssignment *as, cdl_arena *ar)
{
	struct jattempt *a = xcalloc(1, sizeof(*a));
	a->num = (unsigned)t->natt;
	a->id = xasprintf("%s_%c_%05u_%u", j->id, t->map ? 'm' : 'r', t->index, a->num);
	a->tt = tr;
	a->host = xstrdup(tr->host);
	a->loc = loc;
	a->state = CAUDAL__ATTEMPT_STATE__AS_RUNNING;
	cdl_series_add(cdl_metric_at(jm.started, t->map ? "map" : "reduce", loc_names[loc]), 1);
	a->start_ms = cdl_now_ms();
	job_counters_init(&a->cnt);
	t->att = xrealloc(t->att, (t->natt + 1) * sizeof(*t->att));
	t->att[t->natt++] = a;
	t->state = T_RUNNING;
	tr->running++;
	if (j->state == JOB_QUEUED) {
		j->state = JOB_RUNNING;
		j->start_ns = cdl_wall_ns();
	}
	mark_dirty(j);

	caudal__task_assignment__init(as);
	as->job_id = cdl_arena_strdup(ar, j->id);
	as->job_name = cdl_arena_strdup(ar, j->name);
	as->attempt_id = cdl_arena_strdup(ar, a->id);
	as->type = t->map ? CAUDAL__TASK_TYPE__TASK_MAP : CAUDAL__TASK_TYPE__TASK_REDUCE;
	as->task = t->index;
	as->attempt = a->num;
	as->map = cdl_arena_strdup(ar, j->spec.map);
	as->reduce = cdl_arena_strdup(ar, j->spec.reduce);
	if (j->spec.combine)
		as->combine = cdl_arena_strdup(ar, j->spec.combine);
	if (j->spec.pattern)
		as->pattern = cdl_arena_strdup(ar, j->spec.pattern);
	as->reduces = (uint32_t)j->nreds;
	as->uid = j->owner.uid;
	as->gid = j->owner.gid;
	as->shuffle_key.data = cdl_arena_alloc(ar, sizeof(j->shuffle_key));
	memcpy(as->shuffle_key.data, j->shuffle_key, sizeof(j->shuffle_key));
	as->shuffle_key.len = sizeof(j->shuffle_key);
	as->n_files = j->spec.nfiles;
	as->files = cdl_arena_alloc(ar, (j->spec.nfiles + 1) * sizeof(char *));
	for (size_t i = 0; i < j->spec.nfiles; i++)
		as->files[i] = cdl_arena_strdup(ar, j->spec.files[i]);
	if (t->map) {
		as->input = cdl_arena_strdup(ar, t->path);
		as->offset = t->offset;
		as->length = t->length;
	} else {
		as->n_maps = j->nmaps;
		as->maps = cdl_arena_alloc(ar, (j->nmaps + 1) * sizeof(*as->maps));
		for (size_t i = 0; i < j->nmaps; i++) {
			const struct jattempt *w = j->maps[i].winner;
			Caudal__MapOutput *m = cdl_arena_alloc(ar, sizeof(*m));
			caudal__map_output__init(m);
			m->map = (uint32_t)i;
			m->attempt_id = cdl_arena_strdup(ar, w->id);
			m->host = cdl_arena_strdup(ar, w->tt->host);
			m->port = (uint32_t)w->tt->port;
			m->output_bytes = w->output_bytes;
			as->maps[i] = m;
		}
	}
	if (!t->map || j->nreds == 0) {
		char *tmp = output_tmp(j);
		a->output = xasprintf("%s/%s", tmp, a->id);
		free(tmp);
		as->output = cdl_arena_strdup(ar, a->output);
		char part[32];
		snprintf(part, sizeof(part), "part-%05u", t->index);
		as->part = cdl_arena_strdup(ar, part);
	}
	cdl_debug("job '%s': attempt '%s' on '%s' (%s)", j->name, a->id, tr->id, loc_names[loc]);
}

/* Under mu: fill tr's free slots from the jobs, oldest job first. */
static size_t assign(job_jt *jt, struct tracker *tr, Caudal__TrackerHeartbeatReply *rep, size_t cap,
		     cdl_arena *ar)
{
	size_t n = 0;
	for (struct job *j = jt->jobs; j && n < cap; j = j->next) {
		if (!j->schedulable || j->kill_req || j->fail_req || job_state_final(j->state))
			continue;
		while (n < cap && tr->running < tr->slots) {
			enum locality loc = L_NONE;
			struct jtask *t = pick_map(jt, j, tr, &loc);
			if (!t && j->maps_done == j->nmaps)
				t = pick_reduce(jt, j, tr);
			if (!t)
				break;
			Caudal__TaskAssignment *as = cdl_arena_alloc(ar, sizeof(*as));
			new_attempt(j, t, tr, loc, as, ar);
			rep->assign[rep->n_assign++] = as;
			n++;
		}
	}
	return n;
}

/* ------------------------------------------------------------ JobProtocol */

/* Whether the caller of this RPC may speak for a tracker on host: with
 * TLS, only a tasktracker certificate naming that host (the RPC layer
 * refused every other role already); a plaintext server (insecure = yes)
 * believes every claim, and unit tests have no peer. */
static bool caller_is_host(const char *host)
{
	const cdl_peer *p = cdl_rpc_peer();
	if (!p || p->role != CDL_ROLE_TASKTRACKER)
		return true;
	if (strcmp(p->name, host) == 0)
		return true;
	cdl_warn("a tasktracker certificate for '%s' spoke for the tracker on '%s': refused",
		 p->name, host);
	return false;
}

static void h_register(void *ctx, const ProtobufCMessage *req_, ProtobufCMessage *rep_,
		       cdl_arena *ar)
{
	job_jt *jt = ctx;
	const Caudal__RegisterTrackerRequest *req = (const void *)req_;
	Caudal__RegisterTrackerReply *rep = (void *)rep_;
	(void)ar;
	const Caudal__TrackerInfo *ti = req->tracker;
	if (!ti || !ti->id[0] || strlen(ti->id) > 300 || !ti->host[0] || strlen(ti->host) > 255 ||
	    ti->port == 0 || ti->port > 65535 || ti->slots == 0 || ti->slots > 64) {
		rep->err = EINVAL;
		return;
	}
	/* the id is the tracker's "host:port" (its shuffle server), and the
	 * host lands in tasks files: no control bytes */
	char want[300];
	snprintf(want, sizeof(want), "%s:%u", ti->host, ti->port);
	if (strcmp(want, ti->id) || !job_name_ok(ti->host)) {
		rep->err = EINVAL;
		return;
	}
	if (!caller_is_host(ti->host)) {
		rep->err = EPERM;
		return;
	}
	pthread_mutex_lock(&jt->mu);
	struct tracker *tr = find_tracker(jt, ti->id);
	if (tr && !tr->lost) {
		/* a second registration under a live tracker's id must not take
		 * over (and kill) its attempts: the real one keeps them; a
		 * restarted tracker registers once the old one is lost (silent
		 * for tracker_timeout_ms) */
		pthread_mutex_unlock(&jt->mu);
		cdl_warn("tasktracker '%s' registering again (host '%s') refused: that tracker "
			 "is alive",
			 ti->id, ti->host);
		rep->err = EEXIST;
		return;
	}
	if (tr) {
		/* a tracker that registers again has lost its attempts and
		 * its local map output */
		tracker_lost(jt, tr, "registered again");
		free(tr->host);
		tr->host = xstrdup(ti->host);
	} else {
		tr = xcalloc(1, sizeof(*tr));
		tr->id = xstrdup(ti->id);
		tr->host = xstrdup(ti->host);
		tr->next = jt->trackers;
		jt->trackers = tr;
	}
	tr->port = (int)ti->port;
	tr->slots = (int)ti->slots;
	tr->lost = false;
	tr->running = 0;
	tr->last_seen_ms = cdl_now_ms();
	jt->racks_wanted = true;
	rep->epoch = jt->epoch;
	rep->wait_ms = (uint32_t)jt->o.wait_ms;
	rep->timeout_ms = (uint32_t)jt->o.tracker_timeout_ms;
	pthread_cond_broadcast(&jt->work_cv);
	pthread_mutex_unlock(&jt->mu);
	cdl_info("tasktracker '%s' registered (host '%s', %u slots)", ti->id, ti->host, ti->slots);
}

/* Under mu: take one status from a tracker. Returns true if the tracker
 * should kill the attempt. */
static bool take_status(job_jt *jt, struct tracker *tr, const Caudal__AttemptStatus *s,
			Caudal__TrackerHeartbeatReply *rep, cdl_arena *ar)
{
	struct job *j;
	struct jtask *t;
	struct jattempt *a = find_attempt(jt, s->attempt_id, &j, &t);
	bool running = s->state == CAUDAL__ATTEMPT_STATE__AS_RUNNING;
	if (!running && rep)
		rep->acked[rep->n_acked++] = cdl_arena_strdup(ar, s->attempt_id);
	if (!a || a->tt != tr)
		return running;
	if (a->state != CAUDAL__ATTEMPT_STATE__AS_RUNNING)
		return running; /* the jobtracker ended it already */
	if (running) {
		a->progress = s->progress < 0 ? 0 : s->progress > 1 ? 1 : s->progress;
		return false;
	}
	finish_attempt(jt, j, t, a, s);
	return false;
}

static void h_heartbeat(void *ctx, const ProtobufCMessage *req_, ProtobufCMessage *rep_,
			cdl_arena *ar)
{
	job_jt *jt = ctx;
	const Caudal__TrackerHeartbeatRequest *req = (const void *)req_;
	Caudal__TrackerHeartbeatReply *rep = (void *)rep_;
	pthread_mutex_lock(&jt->mu);
	struct tracker *tr = find_tracker(jt, req->tracker_id);
	if (!tr || tr->lost || req->epoch != jt->epoch) {
		rep->err = ESTALE;
		pthread_mutex_unlock(&jt->mu);
		return;
	}
	if (!caller_is_host(tr->host)) {
		/* another host's tracker must not take this one's tasks (their
		 * commands and shuffle keys) nor end its attempts */
		rep->err = EPERM;
		pthread_mutex_unlock(&jt->mu);
		return;
	}
	int64_t now = cdl_now_ms();
	tr->last_seen_ms = now;
	rep->acked = cdl_arena_alloc(ar, (req->n_attempts + 1) * sizeof(char *));
	size_t kcap = req->n_attempts + tr->nkills + 64;
	rep->kill = cdl_arena_alloc(ar, kcap * sizeof(char *));
	for (size_t i = 0; i < req->n_attempts; i++) {
		const Caudal__AttemptStatus *s = req->attempts[i];
		if (take_status(jt, tr, s, rep, ar) && rep->n_kill < kcap)
			rep->kill[rep->n_kill++] = cdl_arena_strdup(ar, s->attempt_id);
	}
	/* Attempts we think run there but the tracker does not list never
	 * reached it (a lost reply) or vanished: redo them. */
	for (struct job *j = jt->jobs; j; j = j->next) {
		if (!job_active(j))
			continue;
		for (int pass = 0; pass < 2; pass++) {
			struct jtask *ts = pass ? j->reds : j->maps;
			size_t n = pass ? j->nreds : j->nmaps;
			for (size_t i = 0; i < n; i++)
				for (size_t k = 0; k < ts[i].natt; k++) {
					struct jattempt *a = ts[i].att[k];
					if (a->tt != tr ||
					    a->state != CAUDAL__ATTEMPT_STATE__AS_RUNNING)
						continue;
					bool listed = false;
					for (size_t x = 0; x < req->n_attempts && !listed; x++)
						listed =
						    !strcmp(req->attempts[x]->attempt_id, a->id);
					if (listed)
						continue;
					stop_attempt(jt, a, CAUDAL__ATTEMPT_STATE__AS_KILLED,
						     "lost on its way to the tasktracker");
					ts[i].uncounted++;
					if (ts[i].state == T_RUNNING)
						ts[i].state = T_PENDING;
					mark_dirty(j);
				}
		}
	}
	/* Long poll: assign now, or wait for work, a kill or the end. */
	size_t cap = (size_t)tr->slots;
	rep->assign = cdl_arena_alloc(ar, (cap + 1) * sizeof(*rep->assign));
	int64_t wait =
	    req->wait_ms < (uint32_t)jt->o.wait_ms ? (int64_t)req->wait_ms : (int64_t)jt->o.wait_ms;
	int64_t deadline = now + wait;
	for (;;) {
		if (tr->lost) {
			rep->err = ESTALE;
			break;
		}
		assign(jt, tr, rep, cap, ar);
		if (rep->n_assign || tr->nkills || jt->stopping)
			break;
		int64_t left = deadline - cdl_now_ms();
		if (left <= 0)
			break;
		timed_wait(&jt->work_cv, &jt->mu, left < 200 ? left : 200);
		tr->last_seen_ms = cdl_now_ms();
	}
	for (size_t i = 0; i < tr->nkills && rep->n_kill < kcap; i++)
		rep->kill[rep->n_kill++] = cdl_arena_strdup(ar, tr->kills[i]);
	free_strv(tr->kills, tr->nkills);
	tr->kills = NULL;
	tr->nkills = 0;
	size_t nc = 0;
	for (struct job *j = jt->jobs; j; j = j->next)
		nc += j->ended_ms && cdl_now_ms() - j->ended_ms < CLEANUP_WINDOW_MS;
	rep->cleanup = cdl_arena_alloc(ar, (nc + 1) * sizeof(char *));
	for (struct job *j = jt->jobs; j; j = j->next)
		if (j->ended_ms && cdl_now_ms() - j->ended_ms < CLEANUP_WINDOW_MS)
			rep->cleanup[rep->n_cleanup++] = cdl_arena_strdup(ar, j->id);
	pthread_mutex_unlock(&jt->mu);
}

static void h_report(void *ctx, const ProtobufCMessage *req_, ProtobufCMessage *rep_, cdl_arena *ar)
{
	job_jt *jt = ctx;
	const Caudal__AttemptReportRequest *req = (const void *)req_;
	Caudal__AttemptReportReply *rep = (void *)rep_;
	(void)ar;
	pthread_mutex_lock(&jt->mu);
	struct tracker *tr = find_tracker(jt, req->tracker_id);
	if (!tr || tr->lost || req->epoch != jt->epoch) {
		rep->err = ESTALE;
	} else if (!caller_is_host(tr->host)) {
		rep->err = EPERM;
	} else if (req->status && req->status->state != CAUDAL__ATTEMPT_STATE__AS_RUNNING) {
		tr->last_seen_ms = cdl_now_ms();
		if (take_status(jt, tr, req->status, NULL, NULL))
			push_str(&tr->kills, &tr->nkills, req->status->attempt_id);
	}
	pthread_mutex_unlock(&jt->mu);
}

static const cdl_rpc_method job_methods[] = {
    {"RegisterTracker", h_register, 0, CDL_ROLE_BIT(CDL_ROLE_TASKTRACKER)},
    {"Heartbeat", h_heartbeat, CDL_RPC_BLOCKING, CDL_ROLE_BIT(CDL_ROLE_TASKTRACKER)},
    {"Report", h_report, 0, CDL_ROLE_BIT(CDL_ROLE_TASKTRACKER)},
    {NULL, NULL, 0, 0},
};

/* ------------------------------------------------------------ Caudal I/O */

/* Write data to path atomically through c (as c's user): a temp file
 * beside it, then rename. */
static int put_atomic(cdl_client *c, const char *dir, const char *name, const char *data, size_t n)
{
	char *tmp = xasprintf("%s/.%s.tmp", dir, name);
	char *dst = xasprintf("%s/%s", dir, name);
	Caudal__Attr *attr = NULL;
	cdl_writer *w = NULL;
	int rc = cdl_create(c, tmp, 0644, 0, 0, true, &attr);
	if (!rc) {
		rc = cdl_writer_open(c, attr, &w);
		protobuf_c_message_free_unpacked(&attr->base, NULL);
	}
	if (!rc) {
		rc = cdl_writer_write(w, data, n);
		if (rc)
			cdl_writer_abort(w);
		else
			rc = cdl_writer_close(w);
	}
	if (!rc)
		rc = cdl_rename(c, tmp, dst);
	if (rc)
		cdl_warn("cannot write '%s': %s", dst, strerror(-rc));
	free(tmp);
	free(dst);
	return rc;
}

/* Read a small Caudal file whole through c: inode ino when not 0, else
 * path; -EFBIG past max. */
static int get_small(cdl_client *c, const char *path, uint64_t ino, size_t max, char **out,
		     size_t *len)
{
	cdl_reader *r;
	int rc = ino ? cdl_reader_open(c, ino, &r) : cdl_reader_open_path(c, path, &r);
	if (rc)
		return rc;
	uint64_t size = cdl_reader_size(r);
	if (size > max) {
		cdl_reader_close(r);
		*len = (size_t)size;
		return -EFBIG;
	}
	char *b = xmalloc((size_t)size + 1);
	size_t got = 0;
	while (got < size) {
		ssize_t k = cdl_reader_pread(r, b + got, (size_t)size - got, got);
		if (k <= 0) {
			rc = k < 0 ? (int)k : -EIO;
			break;
		}
		got += (size_t)k;
	}
	cdl_reader_close(r);
	if (rc) {
		free(b);
		return rc;
	}
	b[got] = '\0';
	*out = b;
	*len = got;
	return 0;
}

/* ------------------------------------------------------------ status files */

static void render(job_jt *jt, struct job *j, char **status, size_t *slen, char **tasks,
		   size_t *tlen, char **counters, size_t *clen)
{
	(void)jt;
	FILE *f = open_memstream(status, slen);
	char t1[40], t2[40], t3[40];
	job_fmt_time(j->submit_ns, t1, sizeof(t1));
	job_fmt_time(j->start_ns, t2, sizeof(t2));
	job_fmt_time(j->end_ns, t3, sizeof(t3));
	double mp = 0, rp = 0;
	int dl = 0, rl = 0, rm = 0, failed = 0, killed = 0;
	for (int pass = 0; pass < 2; pass++) {
		struct jtask *ts = pass ? j->reds : j->maps;
		size_t n = pass ? j->nreds : j->nmaps;
		for (size_t i = 0; i < n; i++) {
			struct jtask *t = &ts[i];
			double p = 0;
			for (size_t k = 0; k < t->natt; k++) {
				struct jattempt *a = t->att[k];
				failed += a->state == CAUDAL__ATTEMPT_STATE__AS_FAILED;
				killed += a->state == CAUDAL__ATTEMPT_STATE__AS_KILLED;
				if (a->state == CAUDAL__ATTEMPT_STATE__AS_RUNNING &&
				    a->progress > p)
					p = a->progress;
			}
			if (t->state == T_SUCCEEDED)
				p = 1;
			if (pass)
				rp += p;
			else
				mp += p;
			if (!pass && t->state == T_SUCCEEDED && t->winner) {
				dl += t->winner->loc == L_DATA;
				rl += t->winner->loc == L_RACK;
				rm += t->winner->loc == L_REMOTE;
			}
		}
	}
	/* a job that has no maps (or reduces) is done with them once planned */
	mp = j->nmaps ? 100.0 * mp / (double)j->nmaps : (j->created_output ? 100 : 0);
	rp = j->nreds ? 100.0 * rp / (double)j->nreds : (j->created_output ? 100 : 0);
	size_t nreds = j->created_output || !j->have_spec ? j->nreds : (size_t)j->spec.reduces;
	int64_t endns = j->end_ns ? j->end_ns : cdl_wall_ns();
	double elapsed = j->start_ns ? (double)(endns - j->start_ns) / 1e9 : 0;
	fprintf(f, "job: %s\nid: %s\nspec: %s\nspec_ino: %" PRIu64 "\nstate: %s\n", j->name, j->id,
		j->spec_path, j->spec_ino, job_state_name(j->state));
	if (j->have_spec) {
		fprintf(f, "input: ");
		for (size_t i = 0; i < j->spec.ninputs; i++)
			fprintf(f, "%s%s", i ? "," : "", j->spec.inputs[i]);
		fprintf(f, "\noutput: %s\nmap: %s\nreduce: %s\ncombine: %s\n", j->spec.output,
			j->spec.map, j->spec.reduces ? j->spec.reduce : "-",
			j->spec.combine ? j->spec.combine : "-");
	}
	fprintf(f,
		"maps: %zu\nmaps_done: %zu\nreduces: %zu\nreduces_done: %zu\n"
		"map_progress: %.0f%%\nreduce_progress: %.0f%%\n"
		"data_local_maps: %d\nrack_local_maps: %d\nremote_maps: %d\n"
		"failed_attempts: %d\nkilled_attempts: %d\n"
		"submitted: %s\nstarted: %s\nfinished: %s\nelapsed: %.1f s\n",
		j->nmaps, j->maps_done, nreds, j->reds_done, mp, rp, dl, rl, rm, failed, killed, t1,
		t2, t3, elapsed);
	/* the error and stderr come partly from users' commands: escaped,
	 * so that each stays one line and cannot forge another */
	char *esc = j->error ? job_escape(j->error, strlen(j->error)) : xstrdup("-");
	fprintf(f, "error: %s\n", esc);
	free(esc);
	if (j->error_tail) {
		const char *p = j->error_tail;
		while (*p) {
			const char *nl = strchr(p, '\n');
			size_t n = nl ? (size_t)(nl - p) : strlen(p);
			esc = job_escape(p, n);
			fprintf(f, "stderr: %s\n", esc);
			free(esc);
			p += n + (nl ? 1 : 0);
		}
	}
	fclose(f);

	f = open_memstream(tasks, tlen);
	fprintf(f, "# task attempt host locality state seconds\n");
	job_counters sum;
	job_counters_init(&sum);
	for (int pass = 0; pass < 2; pass++) {
		struct jtask *ts = pass ? j->reds : j->maps;
		size_t n = pass ? j->nreds : j->nmaps;
		for (size_t i = 0; i < n; i++) {
			struct jtask *t = &ts[i];
			for (size_t k = 0; k < t->natt; k++) {
				struct jattempt *a = t->att[k];
				int64_t e = a->end_ms ? a->end_ms : cdl_now_ms();
				const char *st =
				    a->state == CAUDAL__ATTEMPT_STATE__AS_RUNNING     ? "RUNNING"
				    : a->state == CAUDAL__ATTEMPT_STATE__AS_SUCCEEDED ? "SUCCEEDED"
				    : a->state == CAUDAL__ATTEMPT_STATE__AS_FAILED    ? "FAILED"
										      : "KILLED";
				char *host = job_escape(a->host, strlen(a->host));
				fprintf(f, "%c-%05u %u %s %s %s %.2f\n", t->map ? 'm' : 'r',
					t->index, a->num, host, loc_names[a->loc], st,
					(double)(e - a->start_ms) / 1000.0);
				free(host);
			}
			if (t->state == T_SUCCEEDED && t->winner)
				job_counters_merge(&sum, &t->winner->cnt);
		}
	}
	fclose(f);
	job_counters_add(&sum, "job", "maps", (int64_t)j->nmaps);
	job_counters_add(&sum, "job", "reduces", (int64_t)j->nreds);
	job_counters_add(&sum, "job", "data-local maps", dl);
	job_counters_add(&sum, "job", "rack-local maps", rl);
	job_counters_add(&sum, "job", "remote maps", rm);
	job_counters_add(&sum, "job", "failed attempts", failed);
	job_counters_add(&sum, "job", "killed attempts", killed);
	job_counters_sort(&sum);
	f = open_memstream(counters, clen);
	for (size_t i = 0; i < sum.n; i++) {
		/* streaming commands name their counters */
		char *g = job_escape(sum.v[i].group, strlen(sum.v[i].group));
		char *nm = job_escape(sum.v[i].name, strlen(sum.v[i].name));
		fprintf(f, "%s\t%s\t%" PRId64 "\n", g, nm, sum.v[i].value);
		free(g);
		free(nm);
	}
	fclose(f);
	job_counters_release(&sum);
}

/* Snapshot j's files under mu, write them without it: status first (a
 * reader waiting for a state sees it soonest), then, unless only_status,
 * tasks and counters. */
static void write_status(job_jt *jt, struct job *j, bool only_status)
{
	char *s, *t, *c;
	size_t sl, tl, cl;
	pthread_mutex_lock(&jt->mu);
	render(jt, j, &s, &sl, &t, &tl, &c, &cl);
	j->dirty = false;
	j->written = j->state;
	pthread_mutex_unlock(&jt->mu);
	if (!j->no_status) {
		put_atomic(jt->fs, j->status_dir, "status", s, sl);
		if (!only_status) {
			put_atomic(jt->fs, j->status_dir, "tasks", t, tl);
			put_atomic(jt->fs, j->status_dir, "counters", c, cl);
		}
	}
	free(s);
	free(t);
	free(c);
}

/* ------------------------------------------------------------ the driver */

/* Add one split per block of file path to j (an inline file: one split
 * of all of it, with no hosts, since its bytes come from the namenode). */
static int plan_file(struct job *j, const char *path, char *err, size_t errlen)
{
	Caudal__Target tg = CAUDAL__TARGET__INIT;
	Caudal__GetBlocksRequest req = CAUDAL__GET_BLOCKS_REQUEST__INIT;
	tg.path = (char *)path;
	req.target = &tg;
	req.cred = cdl_client_cred(j->fs);
	Caudal__GetBlocksReply *rep;
	int rc = cdl_client_call_err(j->fs, CDL_NN_GetBlocks, &req.base, (ProtobufCMessage **)&rep);
	if (rc) {
		snprintf(err, errlen, "cannot read the blocks of '%s': %s", path, strerror(-rc));
		return rc;
	}
	if (rep->n_blocks == 0 && rep->inline_data.len) {
		if (j->nmaps >= SPLITS_MAX) {
			rc = -E2BIG;
			snprintf(err, errlen, "more than %d splits", SPLITS_MAX);
		} else {
			j->maps = xrealloc(j->maps, (j->nmaps + 1) * sizeof(*j->maps));
			struct jtask *t = &j->maps[j->nmaps];
			memset(t, 0, sizeof(*t));
			t->map = true;
			t->index = (unsigned)j->nmaps;
			t->path = xstrdup(path);
			t->length = rep->inline_data.len;
			t->hosts = xcalloc(1, sizeof(char *));
			t->racks = xcalloc(1, sizeof(char *));
			j->nmaps++;
		}
	}
	for (size_t i = 0; i < rep->n_blocks; i++) {
		const Caudal__LocatedBlock *b = rep->blocks[i];
		if (b->length == 0)
			continue;
		if (j->nmaps >= SPLITS_MAX) {
			rc = -E2BIG;
			snprintf(err, errlen, "more than %d splits", SPLITS_MAX);
			break;
		}
		j->maps = xrealloc(j->maps, (j->nmaps + 1) * sizeof(*j->maps));
		struct jtask *t = &j->maps[j->nmaps];
		memset(t, 0, sizeof(*t));
		t->map = true;
		t->index = (unsigned)j->nmaps;
		t->path = xstrdup(path);
		t->offset = b->offset;
		t->length = b->length;
		t->nhosts = b->n_locs;
		t->hosts = xcalloc(b->n_locs + 1, sizeof(char *));
		t->racks = xcalloc(b->n_locs + 1, sizeof(char *));
		for (size_t k = 0; k < b->n_locs; k++) {
			t->hosts[k] = xstrdup(b->locs[k]->host);
			t->racks[k] =
			    xstrdup(b->locs[k]->rack[0] ? b->locs[k]->rack : "/default-rack");
		}
		j->nmaps++;
	}
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	return rc;
}

/* Plan a file, or every file under a folder (names starting with '_' or
 * '.' are skipped, as Hadoop skips them). */
static int plan_path(struct job *j, const char *path, uint32_t mode, int depth, char *err,
		     size_t errlen)
{
	if (S_ISREG(mode))
		return plan_file(j, path, err, errlen);
	if (!S_ISDIR(mode) || depth > 64)
		return 0;
	char *after = xstrdup("");
	int rc = 0;
	for (;;) {
		Caudal__Target tg = CAUDAL__TARGET__INIT;
		Caudal__ReaddirRequest req = CAUDAL__READDIR_REQUEST__INIT;
		tg.path = (char *)path;
		req.target = &tg;
		req.after = after;
		req.limit = 1000;
		req.cred = cdl_client_cred(j->fs);
		Caudal__ReaddirReply *rep;
		rc = cdl_client_call_err(j->fs, CDL_NN_Readdir, &req.base,
					 (ProtobufCMessage **)&rep);
		if (rc) {
			snprintf(err, errlen, "cannot list '%s': %s", path, strerror(-rc));
			break;
		}
		for (size_t i = 0; i < rep->n_entries && !rc; i++) {
			const Caudal__Dirent *d = rep->entries[i];
			if (d->name[0] == '_' || d->name[0] == '.' || !d->attr)
				continue;
			char *cp = xasprintf("%s%s%s", path, strcmp(path, "/") ? "/" : "", d->name);
			rc = plan_path(j, cp, d->attr->mode, depth + 1, err, errlen);
			free(cp);
		}
		bool more = rep->more && rep->n_entries > 0;
		if (more) {
			free(after);
			after = xstrdup(rep->entries[rep->n_entries - 1]->name);
		}
		protobuf_c_message_free_unpacked(&rep->base, NULL);
		if (rc || !more)
			break;
	}
	free(after);
	return rc;
}

/* Read, parse and check the spec against the cluster, and plan the
 * splits. On a problem, err says it and the job fails at once. */
static int prepare(job_jt *jt, struct job *j, char *err, size_t errlen)
{
	char *text = NULL;
	size_t len = 0;
	/* the very file whose owner the job runs as (by inode) */
	int rc = get_small(j->fs, j->spec_path, j->spec_ino, JOB_SPEC_MAX, &text, &len);
	if (rc == -EFBIG) {
		snprintf(err, errlen, "bad spec '%s': spec is %zu bytes; the limit is %d",
			 j->spec_path, len, JOB_SPEC_MAX);
		return rc;
	}
	if (rc) {
		snprintf(err, errlen, "cannot read spec '%s': %s", j->spec_path, strerror(-rc));
		return rc;
	}
	job_spec spec;
	char perr[512];
	rc = job_spec_parse(text, len, &spec, perr, sizeof(perr));
	free(text);
	if (rc) {
		job_spec_release(&spec);
		snprintf(err, errlen, "bad spec '%s': %s", j->spec_path, perr);
		return rc;
	}
	pthread_mutex_lock(&jt->mu);
	j->spec = spec;
	j->have_spec = true;
	pthread_mutex_unlock(&jt->mu);

	for (size_t i = 0; i < spec.ninputs; i++) {
		Caudal__Attr *a = NULL;
		rc = cdl_stat(j->fs, spec.inputs[i], &a);
		if (rc == -ENOENT) {
			snprintf(err, errlen, "input '%s' does not exist", spec.inputs[i]);
			return rc;
		}
		if (rc) {
			snprintf(err, errlen, "cannot check input '%s': %s", spec.inputs[i],
				 strerror(-rc));
			return rc;
		}
		uint32_t mode = a->mode;
		protobuf_c_message_free_unpacked(&a->base, NULL);
		if (!S_ISREG(mode) && !S_ISDIR(mode)) {
			snprintf(err, errlen, "input '%s' is neither a file nor a folder",
				 spec.inputs[i]);
			return -EINVAL;
		}
		rc = plan_path(j, spec.inputs[i], mode, 0, err, errlen);
		if (rc)
			return rc;
	}
	Caudal__Attr *a = NULL;
	rc = cdl_stat(j->fs, spec.output, &a);
	if (rc == 0) {
		protobuf_c_message_free_unpacked(&a->base, NULL);
		snprintf(err, errlen, "output '%s' already exists", spec.output);
		return -EEXIST;
	}
	if (rc != -ENOENT) {
		snprintf(err, errlen, "cannot check output '%s': %s", spec.output, strerror(-rc));
		return rc;
	}
	for (size_t i = 0; i < spec.nfiles; i++) {
		rc = cdl_stat(j->fs, spec.files[i], &a);
		if (rc) {
			snprintf(err, errlen, "files: '%s' %s", spec.files[i],
				 rc == -ENOENT ? "does not exist" : strerror(-rc));
			return rc;
		}
		bool reg = S_ISREG(a->mode);
		protobuf_c_message_free_unpacked(&a->base, NULL);
		if (!reg) {
			snprintf(err, errlen, "files: '%s' is not a file", spec.files[i]);
			return -EINVAL;
		}
	}
	/* an empty input still gives the reducers their (empty) part files */
	size_t nreds = (size_t)spec.reduces;
	struct jtask *reds = xcalloc(nreds ? nreds : 1, sizeof(*reds));
	for (size_t i = 0; i < nreds; i++)
		reds[i].index = (unsigned)i;
	pthread_mutex_lock(&jt->mu);
	j->reds = reds;
	j->nreds = nreds;
	pthread_mutex_unlock(&jt->mu);
	return 0;
}

/* Rename each winning attempt's part file into the output, then write
 * _SUCCESS last and drop _temporary. */
static int commit(job_jt *jt, struct job *j, char *err, size_t errlen)
{
	pthread_mutex_lock(&jt->mu);
	bool maponly = j->nreds == 0;
	size_t n = maponly ? j->nmaps : j->nreds;
	char **src = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		struct jtask *t = maponly ? &j->maps[i] : &j->reds[i];
		src[i] = t->winner && t->winner->output ? xstrdup(t->winner->output) : NULL;
	}
	pthread_mutex_unlock(&jt->mu);
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		if (!src[i]) {
			rc = -EIO;
			snprintf(err, errlen, "commit: task %zu has no output", i);
			break;
		}
		char *from = xasprintf("%s/part-%05zu", src[i], i);
		char *to = xasprintf("%s/part-%05zu", j->spec.output, i);
		rc = cdl_rename(j->fs, from, to);
		if (rc)
			snprintf(err, errlen, "commit: cannot rename '%s' to '%s': %s", from, to,
				 strerror(-rc));
		free(from);
		free(to);
	}
	free_strv(src, n);
	if (rc)
		return rc;
	char *tmp = output_tmp(j);
	rc = cdl_delete(j->fs, tmp, true);
	if (rc && rc != -ENOENT)
		cdl_warn("cannot remove '%s': %s", tmp, strerror(-rc));
	free(tmp);
	char *succ = xasprintf("%s/_SUCCESS", j->spec.output);
	rc = put_atomic(j->fs, j->spec.output, "_SUCCESS", "", 0);
	if (rc)
		snprintf(err, errlen, "commit: cannot write '%s': %s", succ, strerror(-rc));
	free(succ);
	return rc;
}

static void history(job_jt *jt, struct job *j)
{
	char *path = xasprintf("%s/history.log", jt->o.work_dir);
	FILE *f = fopen(path, "a");
	if (f) {
		char t1[40], t2[40];
		job_fmt_time(j->submit_ns, t1, sizeof(t1));
		job_fmt_time(j->end_ns, t2, sizeof(t2));
		char *e = j->error ? job_escape(j->error, strlen(j->error)) : xstrdup("-");
		fprintf(f, "%s\t%s\t%s\t%s\t%s\t%s\n", j->id, j->name, job_state_name(j->state), t1,
			t2, e);
		free(e);
		fclose(f);
	}
	free(path);
}

/* The start-up scan found j: whether its status is already final for
 * this very spec file (then it is left alone). */
static bool resume_final(job_jt *jt, struct job *j)
{
	char *path = xasprintf("%s/status", j->status_dir);
	char *text = NULL;
	size_t len = 0;
	int rc = get_small(jt->fs, path, 0, 1 << 20, &text, &len);
	free(path);
	if (rc)
		return false; /* no status: a new job */
	char *state = job_status_field(text, len, "state");
	char *ino = job_status_field(text, len, "spec_ino");
	int st = state ? job_state_parse(state) : -1;
	bool final = st >= 0 && job_state_final((enum job_state)st) && ino &&
		     strtoull(ino, NULL, 10) == j->spec_ino;
	free(state);
	free(ino);
	free(text);
	return final;
}

/* The start-up scan found j caught mid-run: run it again after removing
 * its output (as its owner), or just mark it SUCCEEDED if it had
 * committed. Returns 1 to skip the job, 0 to run it. */
static int resume_check(job_jt *jt, struct job *j)
{
	char *path = xasprintf("%s/status", j->status_dir);
	char *text = NULL;
	size_t len = 0;
	int rc = get_small(jt->fs, path, 0, 1 << 20, &text, &len);
	free(path);
	if (rc)
		return 0; /* no status: a new job */
	char *state = job_status_field(text, len, "state");
	char *out = job_status_field(text, len, "output");
	int st = state ? job_state_parse(state) : -1;
	int skip = 0;
	if ((st < 0 || !job_state_final((enum job_state)st)) && out && job_path_ok(out)) {
		char *succ = xasprintf("%s/_SUCCESS", out);
		Caudal__Attr *a = NULL;
		if (cdl_stat(j->fs, succ, &a) == 0) {
			protobuf_c_message_free_unpacked(&a->base, NULL);
			/* committed before the restart: only the state was lost */
			char *fixed = NULL;
			size_t fl = 0;
			FILE *f = open_memstream(&fixed, &fl);
			const char *p = text;
			while (*p) {
				const char *nl = strchr(p, '\n');
				size_t n = nl ? (size_t)(nl - p) + 1 : strlen(p);
				if (!strncmp(p, "state: ", 7))
					fprintf(f, "state: SUCCEEDED\n");
				else
					fwrite(p, 1, n, f);
				p += n;
			}
			fclose(f);
			put_atomic(jt->fs, j->status_dir, "status", fixed, fl);
			free(fixed);
			cdl_info("job '%s' had committed its output before the restart", j->name);
			skip = 1;
		} else {
			int d = cdl_delete(j->fs, out, true);
			cdl_info("job '%s' was caught mid-run by a restart: running it again%s",
				 j->name, d == 0 ? " (partial output removed)" : "");
		}
		free(succ);
	}
	free(state);
	free(out);
	free(text);
	return skip;
}

/* Who j runs as: the owner of its spec file, looked up here and checked
 * against the policy (LinuxContainerExecutor's: no root unless
 * allow_root_jobs, no uid below min_uid, no banned name). A spec others
 * may write is refused too: its writer could run commands as its owner.
 * Then j->fs, a client that acts as the owner. On a refusal err says why. */
static int take_owner(job_jt *jt, struct job *j, char *err, size_t errlen)
{
	int rc = job_user_lookup(j->spec_uid, j->spec_gid, &j->owner);
	if (rc) {
		snprintf(err, errlen, "spec '%s': its owner (uid %u) %s", j->spec_path, j->spec_uid,
			 rc == -ENOENT ? "is no user of this host" : strerror(-rc));
		return rc == -ENOENT ? -EPERM : rc;
	}
	job_user_policy pol = {.allow_root = jt->o.allow_root_jobs,
			       .min_uid = jt->o.min_uid,
			       .banned = jt->o.banned_users};
	char why[256];
	if (!job_user_allowed(&pol, &j->owner, why, sizeof(why))) {
		snprintf(err, errlen, "spec '%s': %s", j->spec_path, why);
		return -EPERM;
	}
	if (j->spec_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(err, errlen,
			 "spec '%s' is writable by others than its owner '%s' (mode %04o): "
			 "refused, as its writers could run commands as '%s'",
			 j->spec_path, j->owner.name, j->spec_mode & 07777, j->owner.name);
		return -EPERM;
	}
	cdl_client_opts co = {.namenode = jt->o.namenode,
			      .io_timeout_ms = jt->o.io_timeout_ms,
			      .client_host = jt->o.host};
	cdl_client *c = job_user_client(&co, &j->owner);
	if (!c) {
		snprintf(err, errlen, "cannot make a client of namenode '%s'", jt->o.namenode);
		return -EINVAL;
	}
	pthread_mutex_lock(&jt->mu);
	j->fs = c;
	pthread_mutex_unlock(&jt->mu);
	return 0;
}

/* The status folder NAME/ beside the spec: made by us, or left by an
 * earlier run of ours. One someone else made is not written to (they
 * could rewrite what it says of another user's job). */
static void status_folder(job_jt *jt, struct job *j)
{
	int rc = cdl_mkdir(jt->fs, j->status_dir, 0755, false);
	if (rc == 0 || rc != -EEXIST) {
		if (rc)
			cdl_warn("cannot create '%s': %s", j->status_dir, strerror(-rc));
		return;
	}
	Caudal__Attr *a = NULL;
	if (cdl_stat(jt->fs, j->status_dir, &a))
		return;
	if (!S_ISDIR(a->mode) || a->uid != cdl_client_cred(jt->fs)->uid) {
		cdl_err("job '%s': '%s' is not a folder of the jobtracker's (owner uid %u): its "
			"status is not written there",
			j->name, j->status_dir, a->uid);
		j->no_status = true;
	}
	protobuf_c_message_free_unpacked(&a->base, NULL);
}

static void submit(job_jt *jt, const char *path, bool resume);

static void *driver_main(void *arg)
{
	struct job *j = arg;
	job_jt *jt = j->jt;
	char err[1500] = "";
	int rc;

	status_folder(jt, j);
	if (j->resume && resume_final(jt, j))
		goto forget;
	rc = take_owner(jt, j, err, sizeof(err));
	if (!rc && j->resume && resume_check(jt, j))
		goto forget;
	if (!rc)
		rc = prepare(jt, j, err, sizeof(err));
	pthread_mutex_lock(&jt->mu);
	if (!rc && j->kill_req)
		rc = -ECANCELED;
	if (rc) {
		if (rc == -ECANCELED) {
			j->state = JOB_KILLED;
		} else {
			j->state = JOB_FAILED;
			free(j->error);
			j->error = xstrdup(err);
		}
	} else {
		/* RUNNING from here when a tracker can take its tasks; QUEUED
		 * until one registers */
		bool live = false;
		for (struct tracker *tr = jt->trackers; tr && !live; tr = tr->next)
			live = !tr->lost;
		j->state = live ? JOB_RUNNING : JOB_QUEUED;
		if (live)
			j->start_ns = cdl_wall_ns();
	}
	pthread_mutex_unlock(&jt->mu);
	if (rc) {
		cdl_warn("job '%s' %s: %s", j->name, job_state_name(j->state), err);
		goto final;
	}
	/* before the output exists: a restart then knows the output is ours */
	write_status(jt, j, true);
	char *tmp = output_tmp(j);
	rc = cdl_mkdir(j->fs, tmp, 0755, true);
	free(tmp);
	pthread_mutex_lock(&jt->mu);
	if (rc) {
		j->state = JOB_FAILED;
		snprintf(err, sizeof(err), "cannot create output '%s': %s", j->spec.output,
			 strerror(-rc));
		j->error = xstrdup(err);
	} else {
		j->created_output = true;
		j->schedulable = true;
		pthread_cond_broadcast(&jt->work_cv);
	}
	pthread_mutex_unlock(&jt->mu);
	if (rc)
		goto final;
	cdl_info("job '%s' (%s): %zu maps, %zu reduces, ready in %lld ms", j->name, j->id, j->nmaps,
		 j->nreds, (long long)(cdl_now_ms() - j->submit_ms));

	/* Run: rewrite the files on each change (at most every 100 ms) and
	 * at least every status_ms, until the job ends one way or another. */
	int64_t last = cdl_now_ms();
	for (;;) {
		pthread_mutex_lock(&jt->mu);
		bool all = j->maps_done == j->nmaps && j->reds_done == j->nreds;
		while (!j->dirty && !jt->stopping && !j->kill_req && !j->fail_req && !all &&
		       cdl_now_ms() - last < jt->o.status_ms)
			timed_wait(&j->cv, &jt->mu, jt->o.status_ms - (cdl_now_ms() - last));
		all = j->maps_done == j->nmaps && j->reds_done == j->nreds;
		bool stop = jt->stopping, end = j->kill_req || j->fail_req || all;
		bool new_state = j->state != j->written;
		pthread_mutex_unlock(&jt->mu);
		if (stop)
			goto out; /* the next jobtracker resumes the job */
		if (end)
			break;
		int64_t since = cdl_now_ms() - last;
		if (since < 100 && !new_state)
			sleep_ms(100 - since);
		last = cdl_now_ms();
		write_status(jt, j, false);
	}

	pthread_mutex_lock(&jt->mu);
	bool killed = j->kill_req, failed = j->fail_req;
	if (!killed && !failed)
		j->schedulable = false;
	pthread_mutex_unlock(&jt->mu);
	if (!killed && !failed) {
		rc = commit(jt, j, err, sizeof(err));
		pthread_mutex_lock(&jt->mu);
		if (j->kill_req) {
			killed = true;
		} else if (rc) {
			failed = true;
			free(j->error);
			j->error = xstrdup(err);
		} else {
			j->state = JOB_SUCCEEDED;
		}
		pthread_mutex_unlock(&jt->mu);
	}
	if (killed || failed) {
		pthread_mutex_lock(&jt->mu);
		j->state = killed ? JOB_KILLED : JOB_FAILED;
		if (killed && !j->error)
			j->error = xstrdup("killed: its spec was removed");
		stop_job_attempts(jt, j, killed ? "job killed" : "job failed");
		j->schedulable = false;
		pthread_mutex_unlock(&jt->mu);
		if (j->created_output) {
			rc = cdl_delete(j->fs, j->spec.output, true);
			if (rc && rc != -ENOENT)
				cdl_warn("cannot remove the output '%s': %s", j->spec.output,
					 strerror(-rc));
		}
	}
final:
	pthread_mutex_lock(&jt->mu);
	j->end_ns = cdl_wall_ns();
	if (!j->start_ns)
		j->start_ns = j->end_ns;
	bool superseded = j->superseded;
	pthread_mutex_unlock(&jt->mu);
	if (superseded) {
		cdl_info("job '%s' (%s) stopped: its spec was rewritten", j->name, j->id);
		goto out;
	}
	write_status(jt, j, false);
	if (j->state == JOB_FAILED && j->created_output)
		cdl_delete(j->fs, j->spec.output, true); /* attempts still uploading */
	if (j->state >= JOB_SUCCEEDED && j->state <= JOB_KILLED)
		cdl_series_add(jm.done[j->state], 1);
	cdl_info("job '%s' %s in %.2f s%s%s", j->name, job_state_name(j->state),
		 (double)(j->end_ns - j->submit_ns) / 1e9, j->error ? ": " : "",
		 j->error ? j->error : "");
	history(jt, j);
out:
	pthread_mutex_lock(&jt->mu);
	j->ended_ms = cdl_now_ms();
	j->thread_done = true;
	bool again = j->resubmit && !jt->stopping;
	pthread_cond_broadcast(&jt->work_cv);
	pthread_mutex_unlock(&jt->mu);
	if (again)
		submit(jt, j->spec_path, false);
	return NULL;
forget:
	pthread_mutex_lock(&jt->mu);
	j->thread_done = true;
	j->ended_ms = 0;
	pthread_mutex_unlock(&jt->mu);
	return NULL;
}

/* ------------------------------------------------------------ the jobs folder */

/* "/jobs/NAME.job" -> NAME (a copy), or NULL if path is not a spec. */
static char *spec_name(job_jt *jt, const char *path)
{
	size_t dl = strlen(jt->o.jobs_dir);
	if (strncmp(path, jt->o.jobs_dir, dl) || path[dl] != '/')
		return NULL;
	const char *base = path + dl + 1;
	size_t bl = strlen(base);
	if (strchr(base, '/') || bl <= 4 || strcmp(base + bl - 4, ".job"))
		return NULL;
	return xstrndup(base, bl - 4);
}

/* A spec was closed, appended to or renamed into the jobs folder (or found
 * by the start-up scan): start a run of it. The same file seen again
 * (same inode, size and mtime: a repeated event) is ignored; a spec
 * rewritten while its job runs stops that run quietly, and the new one
 * starts when it has ended. A spec still being written waits for its
 * close. */
static void submit(job_jt *jt, const char *path, bool resume)
{
	char *name = spec_name(jt, path);
	if (!name)
		return;
	if (!job_name_ok(name)) {
		/* it would forge lines in status files and listings: refused
		 * before anything is written */
		char *e = job_escape(name, strlen(name));
		cdl_warn("spec '%s/%s.job' refused: a job name may not hold control characters",
			 jt->o.jobs_dir, e);
		free(e);
		free(name);
		return;
	}
	Caudal__Attr *sa = NULL;
	if (cdl_stat(jt->fs, path, &sa)) {
		free(name);
		return;
	}
	uint64_t ino = sa->ino, size = sa->size;
	int64_t mtime = sa->mtime_ns;
	uint32_t uid = sa->uid, gid = sa->gid, mode = sa->mode;
	bool reg = S_ISREG(sa->mode), writing = sa->under_construction;
	protobuf_c_message_free_unpacked(&sa->base, NULL);
	if (!reg) {
		free(name);
		return;
	}
	pthread_mutex_lock(&jt->mu);
	struct job *last = NULL;
	for (struct job *x = jt->jobs; x; x = x->next)
		if (!strcmp(x->name, name))
			last = x;
	if (last && last->spec_ino == ino && last->spec_size == size &&
	    last->spec_mtime_ns == mtime && !last->superseded) {
		pthread_mutex_unlock(&jt->mu);
		free(name);
		return;
	}
	if (last && job_active(last)) {
		last->resubmit = true;
		if (!last->superseded && !job_state_final(last->state)) {
			last->superseded = true;
			last->kill_req = true;
			stop_job_attempts(jt, last, "spec rewritten");
			mark_dirty(last);
			cdl_info("job '%s': spec rewritten, restarting it", name);
		}
		pthread_mutex_unlock(&jt->mu);
		free(name);
		return;
	}
	if (writing) {
		pthread_mutex_unlock(&jt->mu);
		free(name);
		return; /* its close is still to come */
	}
	struct job *j = xcalloc(1, sizeof(*j));
	if (job_shuffle_key_new(j->shuffle_key)) {
		cdl_err("job '%s': no random bytes for its shuffle key", name);
		pthread_mutex_unlock(&jt->mu);
		free(j);
		free(name);
		return;
	}
	j->jt = jt;
	j->name = name;
	j->spec_path = xstrdup(path);
	j->status_dir = xasprintf("%s/%s", jt->o.jobs_dir, name);
	j->spec_ino = ino;
	j->spec_size = size;
	j->spec_mtime_ns = mtime;
	j->spec_uid = uid;
	j->spec_gid = gid;
	j->spec_mode = mode;
	j->resume = resume;
	j->state = JOB_PREP;
	j->submit_ns = cdl_wall_ns();
	j->submit_ms = cdl_now_ms();
	int64_t stamp = j->submit_ns / 1000000;
	if (stamp <= jt->last_stamp)
		stamp = jt->last_stamp + 1;
	jt->last_stamp = stamp;
	/* a local folder name: keep [A-Za-z0-9.-] of the name */
	char safe[65];
	size_t k = 0;
	for (const char *p = name; *p && k < 64; p++)
		safe[k++] = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
				    (*p >= '0' && *p <= '9') || *p == '.' || *p == '-'
				? *p
				: '-';
	safe[k] = '\0';
	if (k == 0 || safe[0] == '.')
		safe[0] = 'j';
	j->id = xasprintf("%s_%lld", safe, (long long)stamp);
	pthread_cond_init(&j->cv, NULL);
	struct job **pp = &jt->jobs;
	while (*pp)
		pp = &(*pp)->next;
	*pp = j;
	if (pthread_create(&j->thread, NULL, driver_main, j)) {
		cdl_err("cannot start a thread for job '%s'", name);
		j->thread_done = true;
	} else {
		j->thread_started = true;
	}
	pthread_mutex_unlock(&jt->mu);
	cdl_info("job '%s' submitted as '%s'%s", name, j->id, resume ? " (start-up scan)" : "");
}

/* The spec at path was removed (or moved away): kill its job. */
static void kill_spec(job_jt *jt, const char *path)
{
	char *name = spec_name(jt, path);
	if (!name)
		return;
	pthread_mutex_lock(&jt->mu);
	for (struct job *j = jt->jobs; j; j = j->next)
		if (!strcmp(j->name, name) && job_active(j) && !job_state_final(j->state) &&
		    !j->kill_req) {
			j->kill_req = true;
			stop_job_attempts(jt, j, "job killed");
			mark_dirty(j);
			cdl_info("job '%s': spec removed, killing it", name);
		}
	pthread_mutex_unlock(&jt->mu);
	free(name);
}

/* Submit every spec in the jobs folder (resume mode). */
static void scan(job_jt *jt)
{
	/* like /tmp: anyone may drop a spec, only its owner may remove or
	 * replace it */
	Caudal__Attr *a = NULL;
	int rc = cdl_stat(jt->fs, jt->o.jobs_dir, &a);
	if (rc == -ENOENT) {
		rc = cdl_mkdir(jt->fs, jt->o.jobs_dir, 01777, true);
		if (rc && rc != -EEXIST)
			cdl_warn("cannot create '%s': %s", jt->o.jobs_dir, strerror(-rc));
	} else if (rc == 0) {
		if ((a->mode & S_IWOTH) && !(a->mode & S_ISVTX))
			cdl_warn(
			    "'%s' (mode %04o) is writable by all without the sticky bit: users "
			    "can remove each other's specs (chmod 1777 it)",
			    jt->o.jobs_dir, a->mode & 07777);
		protobuf_c_message_free_unpacked(&a->base, NULL);
	}
	char *after = xstrdup("");
	for (;;) {
		Caudal__Target tg = CAUDAL__TARGET__INIT;
		Caudal__ReaddirRequest req = CAUDAL__READDIR_REQUEST__INIT;
		tg.path = (char *)jt->o.jobs_dir;
		req.target = &tg;
		req.after = after;
		req.limit = 1000;
		req.cred = cdl_client_cred(jt->fs);
		Caudal__ReaddirReply *rep;
		rc = cdl_client_call_err(jt->fs, CDL_NN_Readdir, &req.base,
					 (ProtobufCMessage **)&rep);
		if (rc) {
			cdl_warn("cannot list '%s': %s", jt->o.jobs_dir, strerror(-rc));
			break;
		}
		for (size_t i = 0; i < rep->n_entries; i++) {
			const Caudal__Dirent *d = rep->entries[i];
			if (!d->attr || !S_ISREG(d->attr->mode))
				continue;
			char *p = xasprintf("%s/%s", jt->o.jobs_dir, d->name);
			submit(jt, p, true);
			free(p);
		}
		bool more = rep->more && rep->n_entries > 0;
		if (more) {
			free(after);
			after = xstrdup(rep->entries[rep->n_entries - 1]->name);
		}
		protobuf_c_message_free_unpacked(&rep->base, NULL);
		if (!more)
			break;
	}
	free(after);
}

static int get_events(job_jt *jt, uint64_t from, uint32_t wait, Caudal__EventsReply **out)
{
	Caudal__EventsRequest req = CAUDAL__EVENTS_REQUEST__INIT;
	req.from_txid = from;
	req.max = 1000;
	req.wait_ms = wait;
	return cdl_client_call_err(jt->fs, CDL_NN_GetEvents, &req.base, (ProtobufCMessage **)out);
}

static void *events_main(void *arg)
{
	job_jt *jt = arg;
	Caudal__EventsReply *rep = NULL;
	uint64_t from = 0;
	/* Where the log is now, then the scan: specs closed in between are
	 * seen twice, and the second is ignored (the job is running). */
	while (!jt->stopping) {
		int rc = get_events(jt, UINT64_MAX, 0, &rep);
		if (rc == 0) {
			from = rep->last_txid + 1;
			protobuf_c_message_free_unpacked(&rep->base, NULL);
			break;
		}
		cdl_warn("cannot reach namenode '%s': %s; retrying", jt->o.namenode, strerror(-rc));
		sleep_ms(1000);
	}
	if (!jt->stopping)
		scan(jt);
	while (!jt->stopping) {
		int rc = get_events(jt, from, (uint32_t)jt->o.events_wait_ms, &rep);
		if (rc) {
			cdl_warn("following the namespace events: %s; retrying", strerror(-rc));
			sleep_ms(1000);
			continue;
		}
		if (rep->first_txid > from) {
			cdl_warn("namespace events %llu..%llu were trimmed: rescanning '%s'",
				 (unsigned long long)from, (unsigned long long)rep->first_txid - 1,
				 jt->o.jobs_dir);
			scan(jt);
		}
		for (size_t i = 0; i < rep->n_events; i++) {
			const Caudal__Event *e = rep->events[i];
			if (e->txid < from)
				continue;
			from = e->txid + 1;
			switch (e->type) {
			case CAUDAL__EVENT_TYPE__EV_CLOSE:
			case CAUDAL__EVENT_TYPE__EV_APPEND:
				submit(jt, e->path, false);
				break;
			case CAUDAL__EVENT_TYPE__EV_RENAME:
				kill_spec(jt, e->path);
				submit(jt, e->dst, false);
				break;
			case CAUDAL__EVENT_TYPE__EV_UNLINK:
				kill_spec(jt, e->path);
				break;
			default:
				break;
			}
		}
		bool none = rep->n_events == 0;
		if (none && rep->last_txid + 1 > from)
			from = rep->last_txid + 1;
		protobuf_c_message_free_unpacked(&rep->base, NULL);
		if (none && jt->o.events_wait_ms == 0)
			sleep_ms(EVENTS_POLL_MS);
	}
	return NULL;
}

/* ------------------------------------------------------------ the monitor */

static void learn_racks(job_jt *jt)
{
	Caudal__Empty e = CAUDAL__EMPTY__INIT;
	Caudal__ReportReply *rep;
	if (cdl_client_call_err(jt->fs, CDL_NN_Report, &e.base, (ProtobufCMessage **)&rep))
		return;
	pthread_mutex_lock(&jt->mu);
	for (struct tracker *tr = jt->trackers; tr; tr = tr->next)
		for (size_t i = 0; i < rep->n_datanodes; i++)
			if (!strcmp(rep->datanodes[i]->host, tr->host)) {
				free(tr->rack);
				tr->rack =
				    xstrdup(rep->datanodes[i]->rack[0] ? rep->datanodes[i]->rack
								       : "/default-rack");
			}
	jt->racks_wanted = false;
	pthread_mutex_unlock(&jt->mu);
	protobuf_c_message_free_unpacked(&rep->base, NULL);
}

static void *monitor_main(void *arg)
{
	job_jt *jt = arg;
	int64_t last_racks = 0;
	pthread_mutex_lock(&jt->mu);
	while (!jt->stopping) {
		int64_t now = cdl_now_ms();
		for (struct tracker *tr = jt->trackers; tr; tr = tr->next)
			if (!tr->lost && now - tr->last_seen_ms > jt->o.tracker_timeout_ms) {
				tr->lost = true;
				tracker_lost(jt, tr, "no heartbeat");
			}
		/* forget jobs that ended long ago */
		for (struct job **pp = &jt->jobs; *pp;) {
			struct job *j = *pp;
			if (j->thread_done &&
			    (j->ended_ms == 0 || now - j->ended_ms > JOB_FORGET_MS)) {
				*pp = j->next;
				pthread_mutex_unlock(&jt->mu);
				if (j->thread_started)
					pthread_join(j->thread, NULL);
				job_free(j);
				pthread_mutex_lock(&jt->mu);
				pp = &jt->jobs; /* the list may have changed */
				continue;
			}
			pp = &j->next;
		}
		bool racks = jt->racks_wanted || now - last_racks > 30000;
		if (racks) {
			pthread_mutex_unlock(&jt->mu);
			learn_racks(jt);
			last_racks = cdl_now_ms();
			pthread_mutex_lock(&jt->mu);
		}
		timed_wait(&jt->stop_cv, &jt->mu, 250);
	}
	pthread_mutex_unlock(&jt->mu);
	return NULL;
}

/* ------------------------------------------------------------ start/stop */

int job_jt_start(const job_jt_opts *o, job_jt **out)
{
	job_jt *jt = xcalloc(1, sizeof(*jt));
	jt->o = *o;
	pthread_mutex_init(&jt->mu, NULL);
	pthread_cond_init(&jt->work_cv, NULL);
	pthread_cond_init(&jt->stop_cv, NULL);
	jt->epoch = (uint64_t)cdl_wall_ns();
	int rc = cdl_mkdirs(o->work_dir);
	if (rc) {
		cdl_err("cannot create '%s': %s", o->work_dir, strerror(-rc));
		goto fail;
	}
	cdl_client_opts co = {.namenode = o->namenode,
			      .io_timeout_ms = o->io_timeout_ms,
			      .client_host = o->host,
			      .name = "jobtracker"};
	jt->fs = cdl_client_new(&co);
	if (!jt->fs) {
		rc = -EINVAL;
		goto fail;
	}
	char *addr = xasprintf("%s:%d", o->host, o->port);
	jt->srv = cdl_rpc_server_new(addr, o->threads);
	free(addr);
	if (!jt->srv) {
		rc = -EIO;
		goto fail;
	}
	pthread_once(&jm_once, jm_init);
	cdl_rpc_server_metrics(jt->srv, cdl_metrics_global(), "caudal_jobtracker");
	if ((rc = cdl_rpc_server_add(jt->srv, &caudal__job_protocol__descriptor, job_methods, jt)))
		goto fail;
	if ((rc = cdl_rpc_server_start(jt->srv))) {
		cdl_err("cannot serve on '%s:%d': %s", o->host, o->port, strerror(-rc));
		goto fail;
	}
	if ((rc = -pthread_create(&jt->monitor_thread, NULL, monitor_main, jt)))
		goto fail;
	jt->monitor_started = true;
	if ((rc = -pthread_create(&jt->events_thread, NULL, events_main, jt)))
		goto fail;
	jt->events_started = true;
	*out = jt;
	return 0;
fail:
	job_jt_stop(jt);
	return rc ? rc : -EIO;
}

/* The gauges: jobs in memory by state, their tasks by kind and state,
 * trackers and their slots. */
static void jt_collect(void *arg)
{
	job_jt *jt = arg;
	cdl_metrics *r = cdl_metrics_global();
	cdl_metric *jobs = cdl_metrics_gauge(
	    r, "caudal_jobtracker_jobs",
	    "Jobs the jobtracker holds, by state (ended ones until they are forgotten).", "state");
	cdl_metric *tasks =
	    cdl_metrics_gauge(r, "caudal_jobtracker_tasks",
			      "Tasks of the jobs not ended, by kind and state.", "kind,state");
	cdl_metric *trackers = cdl_metrics_gauge(r, "caudal_jobtracker_trackers",
						 "Tasktrackers known, by state.", "state");
	cdl_metric *slots =
	    cdl_metrics_gauge(r, "caudal_jobtracker_slots",
			      "Attempt slots of the live tasktrackers, by use.", "state");
	double nj[JOB_KILLED + 1] = {0}, nt[2][3] = {{0}};
	double live = 0, lost = 0, total = 0, busy = 0;
	pthread_mutex_lock(&jt->mu);
	for (const struct job *j = jt->jobs; j; j = j->next) {
		if (j->state <= JOB_KILLED)
			nj[j->state]++;
		if (job_state_final(j->state))
			continue;
		for (size_t i = 0; i < j->nmaps; i++)
			nt[1][j->maps[i].state]++;
		for (size_t i = 0; i < j->nreds; i++)
			nt[0][j->reds[i].state]++;
	}
	for (const struct tracker *t = jt->trackers; t; t = t->next) {
		if (t->lost) {
			lost++;
			continue;
		}
		live++;
		total += t->slots;
		busy += t->running;
	}
	pthread_mutex_unlock(&jt->mu);
	for (int st = JOB_PREP; st <= JOB_KILLED; st++)
		cdl_series_set(cdl_metric_at(jobs, job_state_name((enum job_state)st)), nj[st]);
	static const char *const tstate[] = {"pending", "running", "succeeded"};
	for (int k = 0; k < 2; k++)
		for (int st = 0; st < 3; st++)
			cdl_series_set(cdl_metric_at(tasks, k ? "map" : "reduce", tstate[st]),
				       nt[k][st]);
	cdl_series_set(cdl_metric_at(trackers, "live"), live);
	cdl_series_set(cdl_metric_at(trackers, "lost"), lost);
	cdl_series_set(cdl_metric_at(slots, "total"), total);
	cdl_series_set(cdl_metric_at(slots, "busy"), busy);
}

int job_jt_metrics(job_jt *jt)
{
	return cdl_metrics_collector(cdl_metrics_global(), jt_collect, jt);
}

int job_jt_port(const job_jt *jt)
{
	return cdl_rpc_server_port(jt->srv);
}

void job_jt_stop(job_jt *jt)
{
	if (!jt)
		return;
	pthread_mutex_lock(&jt->mu);
	jt->stopping = true;
	pthread_cond_broadcast(&jt->work_cv);
	pthread_cond_broadcast(&jt->stop_cv);
	for (struct job *j = jt->jobs; j; j = j->next)
		pthread_cond_broadcast(&j->cv);
	pthread_mutex_unlock(&jt->mu);
	if (jt->srv)
		cdl_rpc_server_free(jt->srv, 1000);
	if (jt->events_started)
		pthread_join(jt->events_thread, NULL);
	if (jt->monitor_started)
		pthread_join(jt->monitor_thread, NULL);
	while (jt->jobs) {
		struct job *j = jt->jobs;
		jt->jobs = j->next;
		if (j->thread_started)
			pthread_join(j->thread, NULL);
		job_free(j);
	}
	while (jt->trackers) {
		struct tracker *t = jt->trackers;
		jt->trackers = t->next;
		free(t->id);
		free(t->host);
		free(t->rack);
		free_strv(t->kills, t->nkills);
		free(t);
	}
	if (jt->fs)
		cdl_client_free(jt->fs);
	pthread_mutex_destroy(&jt->mu);
	pthread_cond_destroy(&jt->work_cv);
	pthread_cond_destroy(&jt->stop_cv);
	free(jt);
}

/* ------------------------------------------------------------ web UI */

/* The status-file fields the UI shows, in the file's words. */
static const char *const ui_fields[] = {
    "job",
    "id",
    "state",
    "input",
    "output",
    "map",
    "reduce",
    "combine",
    "maps",
    "maps_done",
    "reduces",
    "reduces_done",
    "map_progress",
    "reduce_progress",
    "data_local_maps",
    "rack_local_maps",
    "remote_maps",
    "failed_attempts",
    "killed_attempts",
    "submitted",
    "started",
    "finished",
    "elapsed",
    "error",
};

/* Under mu: j's status as the status file says it (render), as members
 * of the JSON object being written to f. */
static void ui_status(job_jt *jt, struct job *j, FILE *f, bool detail)
{
	char *s, *t, *c;
	size_t sl, tl, cl;
	render(jt, j, &s, &sl, &t, &tl, &c, &cl);
	bool first = true;
	for (size_t i = 0; i < sizeof(ui_fields) / sizeof(ui_fields[0]); i++) {
		char *v = job_status_field(s, sl, ui_fields[i]);
		cdl_json_key(f, ui_fields[i], first);
		first = false;
		cdl_json_str(f, v ? v : "");
		free(v);
	}
	cdl_json_key(f, "uid", false);
	fprintf(f, "%u", j->spec_uid);
	struct passwd pw, *pp = NULL;
	char pbuf[1024];
	cdl_json_key(f, "user", false);
	if (getpwuid_r(j->spec_uid, &pw, pbuf, sizeof(pbuf), &pp) == 0 && pp)
		cdl_json_str(f, pp->pw_name);
	else
		fprintf(f, "\"%u\"", j->spec_uid);
	if (detail) {
		/* the stderr tail of the failed attempt, one element a line */
		cdl_json_key(f, "stderr", false);
		fputc('[', f);
		bool comma = false;
		for (size_t pos = 0; pos < sl;) {
			const char *l = s + pos;
			const char *nl = memchr(l, '\n', sl - pos);
			size_t n = nl ? (size_t)(nl - l) : sl - pos;
			pos += n + 1;
			if (n >= 8 && !memcmp(l, "stderr: ", 8)) {
				if (comma)
					fputc(',', f);
				comma = true;
				cdl_json_strn(f, l + 8, n - 8);
			}
		}
		fputc(']', f);
		/* counters: "GROUP<TAB>NAME<TAB>VALUE" lines */
		cdl_json_key(f, "counters", false);
		fputc('[', f);
		comma = false;
		for (size_t pos = 0; pos < cl;) {
			const char *l = c + pos;
			const char *nl = memchr(l, '\n', cl - pos);
			size_t n = nl ? (size_t)(nl - l) : cl - pos;
			pos += n + 1;
			const char *t1 = memchr(l, '\t', n);
			const char *t2 = t1 ? memchr(t1 + 1, '\t', n - (size_t)(t1 + 1 - l)) : NULL;
			if (!t2)
				continue;
			fputs(comma ? ",[" : "[", f);
			comma = true;
			cdl_json_strn(f, l, (size_t)(t1 - l));
			fputc(',', f);
			cdl_json_strn(f, t1 + 1, (size_t)(t2 - t1 - 1));
			fputc(',', f);
			cdl_json_strn(f, t2 + 1, n - (size_t)(t2 + 1 - l));
			fputc(']', f);
		}
		fputc(']', f);
	}
	free(s);
	free(t);
	free(c);
}

/* Under mu: j's attempts (at most JOB_UI_ATTEMPTS, failed ones first so
 * that none is cut off) as a JSON array member. */
static void ui_attempts(struct job *j, FILE *f)
{
	cdl_json_key(f, "attempts", false);
	fputc('[', f);
	size_t shown = 0, total = 0;
	for (int failed_pass = 1; failed_pass >= 0; failed_pass--)
		for (int pass = 0; pass < 2; pass++) {
			struct jtask *ts = pass ? j->reds : j->maps;
			size_t n = pass ? j->nreds : j->nmaps;
			for (size_t i = 0; i < n; i++)
				for (size_t k = 0; k < ts[i].natt; k++) {
					struct jattempt *a = ts[i].att[k];
					bool failed = a->state == CAUDAL__ATTEMPT_STATE__AS_FAILED;
					if (failed != (failed_pass == 1))
						continue;
					total++;
					if (shown == JOB_UI_ATTEMPTS)
						continue;
					int64_t e = a->end_ms ? a->end_ms : cdl_now_ms();
					const char *st =
					    a->state == CAUDAL__ATTEMPT_STATE__AS_RUNNING
						? "RUNNING"
					    : a->state == CAUDAL__ATTEMPT_STATE__AS_SUCCEEDED
						? "SUCCEEDED"
					    : failed ? "FAILED"
						     : "KILLED";
					char task[32];
					snprintf(task, sizeof(task), "%c-%05u",
						 ts[i].map ? 'm' : 'r', ts[i].index);
					fputs(shown++ ? ",{" : "{", f);
					cdl_json_key(f, "task", true);
					cdl_json_str(f, task);
					cdl_json_key(f, "attempt", false);
					fprintf(f, "%u", a->num);
					cdl_json_key(f, "host", false);
					cdl_json_str(f, a->host);
					cdl_json_key(f, "locality", false);
					cdl_json_str(f, loc_names[a->loc]);
					cdl_json_key(f, "state", false);
					cdl_json_str(f, st);
					cdl_json_key(f, "seconds", false);
					fprintf(f, "%.2f", (double)(e - a->start_ms) / 1000.0);
					cdl_json_key(f, "progress", false);
					fprintf(f, "%.3f",
						a->state == CAUDAL__ATTEMPT_STATE__AS_SUCCEEDED
						    ? 1.0
						    : (double)a->progress);
					cdl_json_key(f, "error", false);
					cdl_json_str(f, a->error);
					cdl_json_key(f, "stderr", false);
					cdl_json_str(f, a->stderr_tail);
					fputc('}', f);
				}
		}
	fputc(']', f);
	cdl_json_key(f, "attempts_total", false);
	fprintf(f, "%zu", total);
}

char *job_jt_ui_json(job_jt *jt, const char *name)
{
	char *buf;
	size_t len;
	FILE *f = open_memstream(&buf, &len);
	bool found = false;
	pthread_mutex_lock(&jt->mu);
	if (name) {
		/* the newest run of that name */
		struct job *hit = NULL;
		for (struct job *j = jt->jobs; j; j = j->next)
			if (!strcmp(j->name, name))
				hit = j;
		if (hit) {
			found = true;
			fputc('{', f);
			ui_status(jt, hit, f, true);
			ui_attempts(hit, f);
			fputc('}', f);
		}
	} else {
		found = true;
		size_t n = 0;
		for (struct job *j = jt->jobs; j; j = j->next)
			n++;
		/* newest first, at most JOB_UI_JOBS */
		struct job **v = xcalloc(n + 1, sizeof(*v));
		size_t k = 0;
		for (struct job *j = jt->jobs; j; j = j->next)
			v[k++] = j;
		fputs("{\"jobs\":[", f);
		size_t shown = 0;
		for (size_t i = n; i > 0 && shown < JOB_UI_JOBS; i--, shown++) {
			fputs(shown ? ",{" : "{", f);
			ui_status(jt, v[i - 1], f, false);
			fputc('}', f);
		}
		fprintf(f, "],\"total\":%zu,\"forget_s\":%d}", n, JOB_FORGET_MS / 1000);
		free(v);
	}
	pthread_mutex_unlock(&jt->mu);
	fputc('\n', f);
	fclose(f);
	if (!found) {
		free(buf);
		return NULL;
	}
	return buf;
}
