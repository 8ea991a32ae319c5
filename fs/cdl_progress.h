/* cdl_progress: one status line on a terminal, redrawn in place (`\r`) at
 * most CDL_PROGRESS_HZ times a second, for long CLI commands (put, get,
 * setrep -w, decommission -w), in the manner of `pv` and
 * `rsync --info=progress2`: what, how much of how much, the percentage,
 * the average rate and the time left. Off unless both stdout and stderr
 * are terminals (and the caller did not ask for quiet), so scripts and
 * pipes never see it. Drawn on stderr. Not thread-safe: one per command. */
#ifndef CDL_PROGRESS_H
#define CDL_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define CDL_PROGRESS_HZ 4

typedef struct cdl_progress {
	bool on;
	FILE *out;
	char what[48];
	bool bytes;	/* amounts are bytes (rate in B/s) rather than items */
	uint64_t total; /* 0: unknown */
	uint64_t done;
	int64_t start_ns, drawn_ns;
	size_t last_len; /* length of the last line drawn */
} cdl_progress;

/* Whether progress may be drawn: not quiet, stdout and stderr terminals. */
bool cdl_progress_wanted(bool quiet);
/* Start; on=false makes every other call do nothing. */
void cdl_progress_start(cdl_progress *p, bool on, const char *what, bool bytes, uint64_t total);
/* done so far (and a new total when the total moves, 0: keep); redraws
 * when the last draw is old enough. */
void cdl_progress_update(cdl_progress *p, uint64_t done, uint64_t total);
/* The last line, kept (ends it with a newline). */
void cdl_progress_end(cdl_progress *p);

/* The line as it would be drawn (tests): into buf; now_ns is the time. */
void cdl_progress_format(const cdl_progress *p, int64_t now_ns, char *buf, size_t n);

#endif
