/* job_jt: the jobtracker (DESIGN.md, "Jobs: the control directory"). Owns
 * every job's state (tasks, attempts, counters), the registry of
 * tasktrackers, scheduling by locality, and the files under /jobs/NAME/.
 *
 * Threads, all sharing one mutex (no Caudal or RPC call is made under it):
 *  - RPC workers serve JobProtocol: RegisterTracker, Heartbeat (a long poll
 *    that assigns attempts: data-local, else rack-local, else anywhere,
 *    after a short locality wait), Report;
 *  - the event follower long-polls the namenode's event log (GetEvents)
 *    for *.job files closed, renamed or removed in the jobs folder, and at
 *    start scans the folder to resume jobs with no final state;
 *  - one driver thread per job checks its owner (the spec file's, who the
 *    job runs as: every namespace operation for it carries the owner's
 *    Cred), reads and checks its spec, plans one split
 *    per block, writes status/counters/tasks (temp file + rename) at least
 *    once a second, commits the output by rename and writes _SUCCESS last,
 *    or removes the output of a failed or killed job;
 *  - the monitor notices lost tasktrackers (their running attempts and the
 *    map output still needed are redone) and learns hosts' racks. */
#ifndef JOB_JT_H
#define JOB_JT_H

#include <stdbool.h>

typedef struct job_jt_opts {
	const char *namenode;	/* host:port */
	const char *host;	/* address to serve JobProtocol on */
	int port;		/* its port (0 picks one) */
	const char *work_dir;	/* local folder: history log */
	const char *jobs_dir;	/* Caudal folder watched for *.job, e.g. "/jobs" */
	int threads;		/* RPC worker threads */
	int wait_ms;		/* longest Heartbeat long poll (0: answer at once) */
	int events_wait_ms;	/* GetEvents long poll (0: poll every 50 ms) */
	int tracker_timeout_ms; /* a tracker silent this long is lost */
	int max_attempts;	/* attempts per task before the job fails */
	int locality_wait_ms; /* wait this long for a data-local slot before rack-local (2x: remote)
			       */
	int status_ms;	      /* rewrite a running job's files at least this often */
	int io_timeout_ms;    /* client library: give up on a Caudal operation after this */
	/* who may run jobs (LinuxContainerExecutor's rules): a job runs as
	 * its spec file's owner */
	bool allow_root_jobs;	  /* root-owned specs run (as root) */
	unsigned min_uid;	  /* owners below this uid are refused (root apart) */
	const char *banned_users; /* comma-separated names refused */
} job_jt_opts;

typedef struct job_jt job_jt;

/* Start serving and following the jobs folder. 0 or -errno (logged). */
int job_jt_start(const job_jt_opts *o, job_jt **out);
int job_jt_port(const job_jt *jt);
/* The web UI's JSON (docs/decisions.md, "Web UI"), from the state the
 * status files are rendered from: name NULL, the jobs held (newest first,
 * at most JOB_UI_JOBS) with their status fields; else the newest run of
 * job name with its counters and attempts (at most JOB_UI_ATTEMPTS,
 * failed ones first), or NULL when there is none. Caller frees. */
#define JOB_UI_JOBS	200
#define JOB_UI_ATTEMPTS 2000
char *job_jt_ui_json(job_jt *jt, const char *name);

/* Export its jobs, tasks and trackers into the process's metrics
 * registry (cdl_metrics_global), read at each render. Once. */
int job_jt_metrics(job_jt *jt);
/* Stop every thread and free. Running jobs keep their non-final status and
 * are resumed by the next jobtracker. */
void job_jt_stop(job_jt *jt);

#endif
