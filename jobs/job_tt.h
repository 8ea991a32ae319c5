/* job_tt: the tasktracker (DESIGN.md, "Jobs"). Owns the tracker's view of
 * its attempts, its registration with the jobtracker and its local folder
 * WORK/jobs/JOB/ATTEMPT/ (task.pb, stderr, map output, part file).
 *
 * Threads: one heartbeat thread (registers, then heartbeats: a long poll
 * when the jobtracker holds calls, else every heartbeat_ms and at once when
 * an attempt ends; starts and kills attempts as the replies say); one thread
 * per attempt (fetches the distributed cache, starts the task child as the
 * job's user with job_user_spawn, streams a map's split into it, waits,
 * uploads the part file, reports; all its Caudal I/O goes through a client
 * of its own whose requests carry the user's Cred); the shuffle server's
 * threads (job_shuffle.h). They share the attempt list under one mutex; no
 * gRPC call or file I/O is made under it, except the fork of a child.
 * Children never touch gRPC: they are fresh programs (exec) that read and
 * write local files and fetch map output over plain TCP.
 *
 * WORK/jobs and WORK/jobs/JOB are the tracker's (0711: users pass through
 * to their own folders); WORK/jobs/JOB/ATTEMPT belongs to the job's user
 * (0700). Whatever the tracker reads back from it (result.pb, part) is
 * opened without following links and only when the user owns it; trees
 * are removed with *at() calls that never follow a link. */
#ifndef JOB_TT_H
#define JOB_TT_H

typedef struct job_tt_opts {
	const char *jobtracker; /* host:port of the jobtracker */
	const char *namenode;	/* host:port of the namenode */
	const char *host;	/* this tracker's address (the datanode's host beside it) */
	int port;		/* shuffle port (0 picks one) */
	int slots;		/* attempts run at once */
	const char *work_dir;	/* local folder for attempts */
	int sort_mb;		/* map output buffer, MiB */
	int fetch_timeout_ms;	/* reduce: per map output */
	int rpc_timeout_ms;	/* deadline of a jobtracker call (beyond the long poll) */
	int heartbeat_ms;	/* poll interval when the jobtracker does not hold calls */
	int io_timeout_ms;	/* client library: give up on a Caudal operation after this */
	const char *self_exe;	/* this program, run as `SELF --task DIR` for each attempt */
} job_tt_opts;

typedef struct job_tt job_tt;

/* Wipe WORK/jobs, start the shuffle server and the heartbeat thread.
 * 0 or -errno (logged). */
int job_tt_start(const job_tt_opts *o, job_tt **out);
/* Kill every attempt, stop the threads, free. */
void job_tt_stop(job_tt *t);
int job_tt_port(const job_tt *t);
/* Export its slots into the process's metrics registry
 * (cdl_metrics_global), read at each render. Once. */
int job_tt_metrics(job_tt *t);

#endif
