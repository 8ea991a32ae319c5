/* cdl_daemon: the life of a daemon's main thread (MooseFS's RunTab): run an
 * ordered table of start-up steps, each failing loudly, wait for SIGTERM or
 * SIGINT (SIGHUP is ignored), then undo the started steps in reverse.
 * Called once, from main, before any other thread exists. */
#ifndef CDL_DAEMON_H
#define CDL_DAEMON_H

#include <stdbool.h>
#include <stddef.h>

#include "cdl_config.h"

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

/* Read a daemon's configuration: defaults, --config FILE and --key=value
 * flags from section, then check *log_level and honour *print_config.
 * Returns -1 when the daemon goes on (logging is then set up as role), or
 * the exit status: 0 after --help or --print_config, 2 after one line on
 * stderr naming a bad option, value or level. */
int cdl_daemon_config(const cdl_cfg_key *tab, const char *role, int argc, char **argv,
		      char *const *log_level, const bool *print_config);

/* The TLS identity keys every daemon's config table carries (DESIGN.md,
 * "Security"); put CDL_SEC_CFG_KEYS(cfg.sec) in the table and call
 * cdl_daemon_use_sec(&cfg.sec) before cdl_daemon_run. */
typedef struct cdl_sec_cfg {
	char *tls_ca, *tls_cert, *tls_key;
	bool insecure;
} cdl_sec_cfg;
#define CDL_SEC_CFG_KEYS(s)                                                                        \
	{"tls_ca", CDL_CFG_STR, &(s).tls_ca, "", 0, 0, "cluster CA certificate (PEM)"},            \
	    {"tls_cert",                                                                           \
	     CDL_CFG_STR,                                                                          \
	     &(s).tls_cert,                                                                        \
	     "",                                                                                   \
	     0,                                                                                    \
	     0,                                                                                    \
	     "this daemon's certificate, signed by the CA (PEM; see 'caudal cert')"},              \
	    {"tls_key", CDL_CFG_STR, &(s).tls_key, "", 0, 0, "its private key (PEM, 0600)"},       \
	{                                                                                          \
		"insecure", CDL_CFG_BOOL, &(s).insecure, "false", 0, 0,                            \
		    "plaintext RPC where every claimed identity is believed (tests only)"          \
	}
void cdl_daemon_use_sec(const cdl_sec_cfg *sec);

/* The RPC library (cdl_rpc_global_init/shutdown) and the TLS identity given
 * to cdl_daemon_use_sec (without one the daemon refuses to start unless
 * insecure is set) as a start-up step. */
int cdl_daemon_rpc_init(void);
void cdl_daemon_rpc_fini(void);

#endif
