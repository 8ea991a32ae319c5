/* job_counter: a set of named counters, (group, name) -> int64, as Hadoop
 * counts records and bytes and as streaming commands report them on stderr
 * ("reporter:counter:GROUP,NAME,N"). Owns the set and its text forms.
 *
 * A set is used by one thread at a time (its owner locks if it shares it). */
#ifndef JOB_COUNTER_H
#define JOB_COUNTER_H

#include <stddef.h>
#include <stdint.h>

/* Longest group or name kept, bytes; longer ones are refused. */
#define JOB_COUNTER_NAME_MAX 128
/* Most distinct counters in one set; further new ones are dropped. */
#define JOB_COUNTER_MAX 512

/* Group of the counters the engine itself keeps. */
#define JOB_CG "caudal"

typedef struct job_counter {
	char *group, *name;
	int64_t value;
} job_counter;

typedef struct job_counters {
	job_counter *v;
	size_t n, cap;
} job_counters;

void job_counters_init(job_counters *c);
void job_counters_release(job_counters *c);
/* Add delta to (group, name), creating it at 0. -EINVAL if a name is empty,
 * too long or holds a control byte; -ENOSPC past JOB_COUNTER_MAX. */
int job_counters_add(job_counters *c, const char *group, const char *name, int64_t delta);
int64_t job_counters_get(const job_counters *c, const char *group, const char *name);
/* Add every counter of src to dst. */
void job_counters_merge(job_counters *dst, const job_counters *src);
/* Sort by group then name (for stable output). */
void job_counters_sort(job_counters *c);

/* Parse a streaming stderr line "reporter:counter:GROUP,NAME,N" (without
 * its newline) and add it. Returns 1 if the line was a counter line and was
 * added, 0 if it is not a reporter:counter line, -EINVAL if it is one but
 * malformed. */
int job_counters_parse_reporter(job_counters *c, const char *line, size_t len);

#endif
