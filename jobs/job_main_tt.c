/* caudal-tasktracker: runs map and reduce attempts beside a datanode and
 * serves map output to reducers (DESIGN.md, "Jobs"). With `--task DIR` the
 * same program is the task child the tracker spawns for each attempt
 * (job_task.h): that path touches neither gRPC nor the config.
 *
 * main() parses the config table, runs the start-up steps in order, then
 * waits for SIGTERM or SIGINT (blocked in every thread, taken by sigwait)
 * and stops in reverse order. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cdl_config.h"
#include "cdl_daemon.h"
#include "cdl_http.h"
#include "cdl_log.h"
#include "cdl_metrics.h"
#include "cdl_rpc.h"
#include "job_task.h"
#include "job_tt.h"

static struct {
	char *jobtracker;
	char *namenode;
	char *host;
	int64_t port;
	int64_t http_port;
	int64_t slots;
	char *work_dir;
	int64_t sort_mb;
	int64_t fetch_timeout_ms;
	int64_t rpc_timeout_ms;
	int64_t heartbeat_ms;
	int64_t io_timeout_ms;
	char *log_level;
	bool print_config;
	cdl_sec_cfg sec;
} cfg;

static const cdl_cfg_key cfg_tab[] = {
    {"jobtracker", CDL_CFG_STR, &cfg.jobtracker, "127.0.0.1:9001", 0, 0,
     "jobtracker address host:port"},
    {"namenode", CDL_CFG_STR, &cfg.namenode, "127.0.0.1:9000", 0, 0, "namenode address host:port"},
    {"host", CDL_CFG_STR, &cfg.host, "127.0.0.1", 0, 0,
     "this tracker's address: the host of the datanode beside it (locality)"},
    {"port", CDL_CFG_INT, &cfg.port, "0", 0, 65535, "shuffle port (0 picks one)"},
    {"http_port", CDL_CFG_INT, &cfg.http_port, "0", 0, 65535,
     "HTTP port on host serving /metrics (0 = off; caudal up gives 50060)"},
    {"slots", CDL_CFG_INT, &cfg.slots, "2", 1, 64, "attempts run at once"},
    {"work_dir", CDL_CFG_STR, &cfg.work_dir, "/var/lib/caudal/tasktracker", 0, 0,
     "local folder for attempts and map output"},
    {"sort_mb", CDL_CFG_INT, &cfg.sort_mb, "100", 1, 4096,
     "map output buffered before a spill, MiB"},
    {"fetch_timeout_ms", CDL_CFG_INT, &cfg.fetch_timeout_ms, "10000", 100, 3600000,
     "a reduce gives up fetching one map's output after this long, ms"},
    {"rpc_timeout_ms", CDL_CFG_INT, &cfg.rpc_timeout_ms, "10000", 100, 600000,
     "deadline of a jobtracker call beyond its long poll, ms"},
    {"heartbeat_ms", CDL_CFG_INT, &cfg.heartbeat_ms, "50", 10, 60000,
     "heartbeat interval when the jobtracker answers at once, ms"},
    {"io_timeout_ms", CDL_CFG_INT, &cfg.io_timeout_ms, "30000", 100, 3600000,
     "give up on a Caudal read or write after this long, ms"},
    {"log_level", CDL_CFG_STR, &cfg.log_level, "info", 0, 0, "error, warn, info or debug"},
    {"print_config", CDL_CFG_BOOL, &cfg.print_config, "false", 0, 0,
     "print the effective config and exit"},
    CDL_SEC_CFG_KEYS(cfg.sec),
    {NULL, 0, NULL, NULL, 0, 0, NULL},
};

static job_tt *tt;
static char self_exe[PATH_MAX];

static int init_tt(void)
{
	ssize_t n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
	if (n <= 0)
		return -errno;
	self_exe[n] = '\0';
	job_tt_opts o = {.jobtracker = cfg.jobtracker,
			 .namenode = cfg.namenode,
			 .host = cfg.host,
			 .port = (int)cfg.port,
			 .slots = (int)cfg.slots,
			 .work_dir = cfg.work_dir,
			 .sort_mb = (int)cfg.sort_mb,
			 .fetch_timeout_ms = (int)cfg.fetch_timeout_ms,
			 .rpc_timeout_ms = (int)cfg.rpc_timeout_ms,
			 .heartbeat_ms = (int)cfg.heartbeat_ms,
			 .io_timeout_ms = (int)cfg.io_timeout_ms,
			 .self_exe = self_exe};
	return job_tt_start(&o, &tt);
}

static void fini_tt(void)
{
	job_tt_stop(tt);
	tt = NULL;
}

/* HTTP: /metrics (Prometheus), after the tasktracker so that its gauges have
 * something to read. */
static cdl_http *http;

static int init_http(void)
{
	if (!cfg.http_port)
		return 0;
	cdl_metrics *r = cdl_metrics_global();
	cdl_metrics_process(r);
	int rc = job_tt_metrics(tt);
	if (rc < 0)
		return rc;
	http = cdl_metrics_serve(cfg.host, (int)cfg.http_port, r, "tasktracker HTTP");
	return http ? 0 : -EADDRINUSE;
}

static void fini_http(void)
{
	cdl_http_free(http);
	http = NULL;
}

static const cdl_step steps[] = {
    {cdl_daemon_rpc_init, cdl_daemon_rpc_fini, "rpc library"},
    {init_tt, fini_tt, "tasktracker"},
    {init_http, fini_http, "HTTP server"},
};
#define NSTEPS (sizeof(steps) / sizeof(steps[0]))

/* The banner, once every step started. */
static void ready(void)
{
	cdl_info("tasktracker on '%s' (shuffle port %d, %d slots) for jobtracker '%s'", cfg.host,
		 job_tt_port(tt), (int)cfg.slots, cfg.jobtracker);
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--task") == 0)
		return job_task_main(argv[2]);

	int rc = cdl_daemon_config(cfg_tab, "tasktracker", argc, argv, &cfg.log_level,
				   &cfg.print_config);
	if (rc >= 0)
		return rc;
	cdl_daemon_use_sec(&cfg.sec);

	int status = cdl_daemon_run(steps, NSTEPS, ready);
	cdl_config_release(cfg_tab);
	return status;
}
