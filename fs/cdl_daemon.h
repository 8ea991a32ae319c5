/* cdl_daemon: the life of a daemon's main thread (MooseFS's RunTab): run an
 * ordered table of start-up steps, each failing loudly, wait for SIGTERM or
 * SIGINT (SIGHUP is ignored), then undo the started steps in reverse.
 * Called once, from main, before any other thread exists. */
#ifndef CDL_DAEMON_H
#define CDL_DAEMON_H

#include <stddef.h>

typedef struct cdl_step {
	int (*init)(void);  /* 0 or -errno (logged by the step or here) */
	void (*fini)(void); /* undoes init; called only if init succeeded */
	const char *what;   /* for "cannot start the WHAT: ..." */
} cdl_step;

/* Blocks the stop signals in every thread to come (main waits for them),
 * ignores SIGPIPE, runs the steps, calls ready() (a banner) once all
 * started, and returns the exit status: 0 after a clean stop, 1 if a step
 * failed. */
int cdl_daemon_run(const cdl_step *steps, size_t n, void (*ready)(void));

#endif
