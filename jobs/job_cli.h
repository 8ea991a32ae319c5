/* job_cli: the `caudal job` commands, for fs/cdl_cli.c to call. They only
 * read and remove files in the jobs folder, as a shell user would (no RPC
 * to the jobtracker):
 *
 *   caudal job list          one line per job: name, state, progress bars
 *   caudal job status NAME   its status file (then counters with -v)
 *   caudal job watch NAME    a live progress bar until the job ends
 *   caudal job kill NAME     remove NAME.job and wait for KILLED
 *
 * Uses only job_status and the client library (link jobs/job_cli.o and
 * jobs/job_status.o into the caudal program). One thread. */
#ifndef JOB_CLI_H
#define JOB_CLI_H

#include "cdl_client.h"

/* argv[0] is the subcommand ("list", "status", ...). Returns the exit
 * status: 0; 1 when the job failed or was killed (status, watch) or a
 * command failed; 2 on a usage error. Messages go to stderr. */
int job_cli_main(cdl_client *c, const char *jobs_dir, int argc, char **argv);
void job_cli_usage(void);

#endif
