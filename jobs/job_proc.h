/* job_proc: runs one streaming command ("exec:" map, reduce or combine) the
 * way Hadoop Streaming does: /bin/sh -c COMMAND, records in as lines on
 * stdin ("key<TAB>value", or just "key" when the value is empty), records
 * out as lines on stdout (split at the first tab; no tab = the whole line
 * is the key), "reporter:counter:GROUP,NAME,N" lines on stderr added to
 * counters and every other stderr line copied to the attempt's log. A
 * non-zero exit is the caller's to judge.
 *
 * Runs only inside a task child process (never in a daemon: the caller's
 * thread blocks in poll(2) until the command ends), which ignores SIGPIPE
 * (a command that stops reading must not kill its feeder). One thread. */
#ifndef JOB_PROC_H
#define JOB_PROC_H

#include <stddef.h>

#include "job_counter.h"
#include "job_sort.h"

typedef struct job_proc {
	const char *cmd;  /* shell command */
	int in_fd;	  /* >= 0: the command's stdin; else records from feed */
	job_next_fn feed; /* sorted records to write as lines (in_fd < 0) */
	void *feed_src;
	int out_fd;	  /* >= 0: the command's stdout goes there verbatim */
	job_emit_fn emit; /* else each stdout line becomes a record here */
	void *emit_ctx;
	int err_fd;		/* other stderr lines are written here (usually 2) */
	job_counters *counters; /* reporter:counter lines; may be NULL */
} job_proc;

/* Run p->cmd to completion. Returns 0 with the wait status in *wstatus,
 * or -errno when it could not be run or fed, or the error of feed/emit
 * (the command is then killed); err says what happened. */
int job_proc_run(const job_proc *p, int *wstatus, char *err, size_t errlen);

/* Describe a wait status for a message: "exit status 1", "killed by
 * signal 9", with " (command not found)" for 127. */
void job_proc_describe(int wstatus, char *buf, size_t n);

#endif
