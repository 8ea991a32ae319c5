/* job_status: the words and formats of the files a jobtracker keeps under
 * /jobs/NAME/ (status, counters, tasks), and reading a status file back
 * (the jobtracker resuming after a restart, `caudal job` commands).
 *
 * status is "key: value" lines, one per fact:
 *   job, id, spec, spec_ino, state (QUEUED RUNNING SUCCEEDED FAILED KILLED),
 *   input, output, map, reduce, combine, maps, maps_done, reduces,
 *   reduces_done, map_progress, reduce_progress (percent), data_local_maps,
 *   rack_local_maps, remote_maps, failed_attempts, killed_attempts,
 *   submitted, started, finished (ISO 8601 UTC, "-" when not yet),
 *   elapsed (seconds), error ("-" or one line), then zero or more
 *   "stderr: LINE" lines: the tail of a failed attempt's stderr.
 * counters is "GROUP<TAB>NAME<TAB>VALUE" lines, sorted.
 * tasks is a "# task attempt host locality state seconds" header and one
 *   line per attempt.
 *
 * Pure functions; any thread. */
#ifndef JOB_STATUS_H
#define JOB_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum job_state {
	JOB_PREP = 0, /* read and checked, not yet in status */
	JOB_QUEUED,
	JOB_RUNNING,
	JOB_SUCCEEDED,
	JOB_FAILED,
	JOB_KILLED,
};

const char *job_state_name(enum job_state s);
/* -1 if s names no state. */
int job_state_parse(const char *s);
bool job_state_final(enum job_state s);

/* The value of the first "key: value" line of text (a copy the caller
 * frees), or NULL. */
char *job_status_field(const char *text, size_t len, const char *key);

/* ISO 8601 UTC with milliseconds, or "-" for 0. */
void job_fmt_time(int64_t wall_ns, char *buf, size_t n);

/* Whether a job name (the spec's file name without ".job") may be used:
 * 1..251 bytes, no control byte (< 0x20 or 0x7f), so that it cannot
 * forge lines in status, tasks or `caudal job` output. */
bool job_name_ok(const char *name);

/* s (n bytes) with every control byte (< 0x20 or 0x7f) written as \n,
 * \r, \t or \xHH: one line whatever s holds. A copy the caller frees. */
char *job_escape(const char *s, size_t n);

/* Write text to f keeping its line breaks, every other control byte
 * escaped as job_escape does (a terminal cannot be driven by a status). */
void job_write_escaped(FILE *f, const char *text, size_t len);

/* A one-line summary of a status text for `caudal job list/watch`:
 * "wc  RUNNING  maps 3/10 [#####.....]  reduces 0/2 [..........]". */
void job_status_summary(const char *text, size_t len, char *out, size_t n);

#endif
