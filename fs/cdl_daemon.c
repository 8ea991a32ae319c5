/* cdl_daemon: see cdl_daemon.h. */
#include "cdl_daemon.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "cdl_log.h"

int cdl_daemon_run(const cdl_step *steps, size_t n, void (*ready)(void))
{
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	size_t started = 0;
	for (; started < n; started++) {
		int rc = steps[started].init();
		if (rc < 0) {
			cdl_err("cannot start the %s: %s", steps[started].what, strerror(-rc));
			break;
		}
	}
	int status = 0;
	if (started == n) {
		if (ready)
			ready();
		int sig = 0, rc;
		do
			rc = sigwait(&sigs, &sig);
		while (rc == 0 && sig == SIGHUP);
		cdl_info("stopping on signal %d", sig);
	} else {
		status = 1;
	}
	while (started > 0) {
		started--;
		steps[started].fini();
	}
	if (status == 0)
		cdl_info("stopped");
	return status;
}
