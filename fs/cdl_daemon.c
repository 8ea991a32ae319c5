/* cdl_daemon: see cdl_daemon.h. */
#include "cdl_daemon.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cdl_log.h"
#include "cdl_rpc.h"
#include "cdl_sec.h"

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

int cdl_daemon_config(const cdl_cfg_key *tab, const char *role, int argc, char **argv,
		      char *const *log_level, const bool *print_config)
{
	char err[512];
	int npos = 0;
	cdl_config_defaults(tab);
	int rc = cdl_config_args(tab, role, argc, argv, &npos, err, sizeof(err));
	if (rc == 1)
		return 0;
	if (rc < 0) {
		fprintf(stderr, "caudal-%s: %s\n", role, err);
		return 2;
	}
	if (npos > 0) {
		fprintf(stderr, "caudal-%s: unexpected argument '%s'\n", role, argv[0]);
		return 2;
	}
	int level = cdl_log_level_parse(*log_level);
	if (level < 0) {
		fprintf(stderr, "caudal-%s: log_level: unknown level '%s'\n", role, *log_level);
		return 2;
	}
	if (*print_config) {
		cdl_config_dump(tab, stdout);
		cdl_config_release(tab);
		return 0;
	}
	cdl_log_init(role, level);
	return -1;
}

static bool rpc_up;
static const cdl_sec_cfg *daemon_sec;

void cdl_daemon_use_sec(const cdl_sec_cfg *sec)
{
	daemon_sec = sec;
}

int cdl_daemon_rpc_init(void)
{
	if (daemon_sec) {
		int rc = cdl_sec_daemon_init(daemon_sec->tls_ca, daemon_sec->tls_cert,
					     daemon_sec->tls_key, daemon_sec->insecure);
		if (rc < 0)
			return rc;
	}
	cdl_rpc_global_init();
	rpc_up = true;
	return 0;
}

void cdl_daemon_rpc_fini(void)
{
	if (rpc_up)
		cdl_rpc_global_shutdown();
	rpc_up = false;
}
