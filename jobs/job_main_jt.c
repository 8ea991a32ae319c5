/* caudal-jobtracker: watches the jobs folder, plans and schedules map and
 * reduce attempts on the tasktrackers and keeps each job's status files
 * (DESIGN.md, "Jobs: the control directory").
 *
 * main() parses the config table, runs the start-up steps in order, then
 * waits for SIGTERM or SIGINT (blocked in every thread, taken by sigwait)
 * and stops in reverse order. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cdl_config.h"
#include "cdl_daemon.h"
#include "cdl_http.h"
#include "cdl_log.h"
#include "cdl_metrics.h"
#include "cdl_rpc.h"
#include "job_jt.h"
#include "job_ui.h"

static struct {
	char *namenode;
	char *host;
	int64_t port;
	int64_t http_port;
	char *work_dir;
	char *jobs_dir;
	int64_t threads;
	int64_t wait_ms;
	int64_t events_wait_ms;
	int64_t tracker_timeout_ms;
	int64_t max_attempts;
	int64_t locality_wait_ms;
	bool allow_root_jobs;
	int64_t min_uid;
	char *banned_users;
	int64_t status_ms;
	int64_t io_timeout_ms;
	char *log_level;
	char *namenode_url;
	bool print_config;
	cdl_sec_cfg sec;
} cfg;

static const cdl_cfg_key cfg_tab[] = {
    {"namenode", CDL_CFG_STR, &cfg.namenode, "127.0.0.1:9000", 0, 0, "namenode address host:port"},
    {"host", CDL_CFG_STR, &cfg.host, "127.0.0.1", 0, 0, "address to serve JobProtocol on"},
    {"port", CDL_CFG_INT, &cfg.port, "9001", 0, 65535, "JobProtocol port (0 picks one)"},
    {"work_dir", CDL_CFG_STR, &cfg.work_dir, "/var/lib/caudal/jobtracker", 0, 0,
     "local folder (job history log)"},
    {"jobs_dir", CDL_CFG_STR, &cfg.jobs_dir, "/jobs", 0, 0,
     "Caudal folder watched for *.job specs"},
    {"threads", CDL_CFG_INT, &cfg.threads, "8", 2, 256,
     "RPC worker threads (heartbeat long polls run on threads of their own)"},
    {"wait_ms", CDL_CFG_INT, &cfg.wait_ms, "1000", 0, 30000,
     "longest heartbeat long poll, ms (0: answer at once; trackers poll)"},
    {"events_wait_ms", CDL_CFG_INT, &cfg.events_wait_ms, "5000", 0, 30000,
     "long poll of the namenode's event log, ms (0: poll every 50 ms)"},
    {"tracker_timeout_ms", CDL_CFG_INT, &cfg.tracker_timeout_ms, "10000", 500, 3600000,
     "a tasktracker silent this long is lost and its work redone, ms"},
    {"max_attempts", CDL_CFG_INT, &cfg.max_attempts, "4", 1, 100,
     "attempts per task before the job fails"},
    {"locality_wait_ms", CDL_CFG_INT, &cfg.locality_wait_ms, "500", 0, 600000,
     "wait for a data-local slot this long before rack-local (twice: anywhere), ms"},
    {"allow_root_jobs", CDL_CFG_BOOL, &cfg.allow_root_jobs, "no", 0, 0,
     "run jobs whose spec root owns, as root (a one-machine cluster where root runs everything)"},
    {"min_uid", CDL_CFG_INT, &cfg.min_uid, "1000", 0, 4294967295LL,
     "refuse jobs of owners with a smaller uid (system accounts), root apart"},
    {"banned_users", CDL_CFG_STR, &cfg.banned_users, "bin,daemon,sys,adm", 0, 0,
     "comma-separated user names whose jobs are refused"},
    {"status_ms", CDL_CFG_INT, &cfg.status_ms, "1000", 100, 60000,
     "rewrite a running job's status files at least this often, ms"},
    {"io_timeout_ms", CDL_CFG_INT, &cfg.io_timeout_ms, "30000", 100, 3600000,
     "give up on a Caudal operation after this long, ms"},
    {"http_port", CDL_CFG_INT, &cfg.http_port, "0", 0, 65535,
     "HTTP port on host: jobs web UI and /metrics (0: none; caudal up gives Hadoop's 50030)"},
    {"namenode_url", CDL_CFG_STR, &cfg.namenode_url, "", 0, 0,
     "the namenode's web UI, linked from the jobs pages (\"\": no link)"},
    {"log_level", CDL_CFG_STR, &cfg.log_level, "info", 0, 0, "error, warn, info or debug"},
    {"print_config", CDL_CFG_BOOL, &cfg.print_config, "false", 0, 0,
     "print the effective config and exit"},
    CDL_SEC_CFG_KEYS(cfg.sec),
    {NULL, 0, NULL, NULL, 0, 0, NULL},
};

static job_jt *jt;

static int init_jt(void)
{
	job_jt_opts o = {.namenode = cfg.namenode,
			 .host = cfg.host,
			 .port = (int)cfg.port,
			 .work_dir = cfg.work_dir,
			 .jobs_dir = cfg.jobs_dir,
			 .threads = (int)cfg.threads,
			 .wait_ms = (int)cfg.wait_ms,
			 .events_wait_ms = (int)cfg.events_wait_ms,
			 .tracker_timeout_ms = (int)cfg.tracker_timeout_ms,
			 .max_attempts = (int)cfg.max_attempts,
			 .locality_wait_ms = (int)cfg.locality_wait_ms,
			 .status_ms = (int)cfg.status_ms,
			 .io_timeout_ms = (int)cfg.io_timeout_ms,
			 .allow_root_jobs = cfg.allow_root_jobs,
			 .min_uid = (unsigned)cfg.min_uid,
			 .banned_users = cfg.banned_users};
	return job_jt_start(&o, &jt);
}

static void fini_jt(void)
{
	job_jt_stop(jt);
	jt = NULL;
}

/* HTTP, once the jobtracker runs: the web UI (jobs/job_ui.h) and
 * /metrics (Prometheus), whose gauges read the jobtracker. */
static cdl_http *http;

static int init_http(void)
{
	if (!cfg.http_port)
		return 0;
	cdl_metrics *r = cdl_metrics_global();
	cdl_metrics_process(r);
	int rc = job_jt_metrics(jt);
	if (rc < 0)
		return rc;
	http = cdl_http_new(cfg.host, (int)cfg.http_port, "jobtracker HTTP");
	if (!http)
		return -EINVAL;
	if ((rc = job_ui_register(http, jt, cfg.namenode_url)) < 0 ||
	    (rc = cdl_metrics_route(http, r)) < 0)
		return rc;
	return cdl_http_start(http);
}

static void fini_http(void)
{
	cdl_http_free(http);
	http = NULL;
}

static const cdl_step steps[] = {
    {cdl_daemon_rpc_init, cdl_daemon_rpc_fini, "rpc library"},
    {init_jt, fini_jt, "jobtracker"},
    {init_http, fini_http, "HTTP server (web UI, /metrics)"},
};
#define NSTEPS (sizeof(steps) / sizeof(steps[0]))

/* The banner, once every step started. */
static void ready(void)
{
	cdl_info("jobtracker on '%s:%d' watching '%s' on namenode '%s'", cfg.host, job_jt_port(jt),
		 cfg.jobs_dir, cfg.namenode);
}

int main(int argc, char **argv)
{
	int rc =
	    cdl_daemon_config(cfg_tab, "jobtracker", argc, argv, &cfg.log_level, &cfg.print_config);
	if (rc >= 0)
		return rc;
	cdl_daemon_use_sec(&cfg.sec);
	size_t dl = strlen(cfg.jobs_dir);
	if (dl < 2 || cfg.jobs_dir[0] != '/' || cfg.jobs_dir[dl - 1] == '/') {
		fprintf(stderr,
			"caudal-jobtracker: jobs_dir: '%s' is not an absolute folder path\n",
			cfg.jobs_dir);
		return 2;
	}

	int status = cdl_daemon_run(steps, NSTEPS, ready);
	cdl_config_release(cfg_tab);
	return status;
}
