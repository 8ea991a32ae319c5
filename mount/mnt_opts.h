/* mnt_opts: the mount's command line. Parses
 *   caudal-mount NAMENODE_ADDR MOUNTPOINT [-o opt[,opt...]] [-f] [-d]
 *   mount.caudal SPEC DIR [-sfnv] [-o opts] [-t type]     (as mount(8) calls it)
 * into a struct mnt_opts, driven by one table of -o options, and builds the
 * generic mount options handed to libfuse. Pure logic (no FUSE, no network),
 * so the unit test links it alone. Used at start-up from the main thread;
 * the result is read-only afterwards and read by every FUSE worker. */
#ifndef MNT_OPTS_H
#define MNT_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

struct mnt_opts {
	char *namenode;	      /* "host:port" of the namenode (owned) */
	char *mountpoint;     /* as given (owned); made absolute by main */
	double attr_timeout;  /* s the kernel caches attributes */
	double entry_timeout; /* s the kernel caches names */
	double meta_timeout;  /* s the mount's own cache believes a read (mnt_acache.h) */
	int io_timeout_ms;    /* an operation fails (ETIMEDOUT/EIO) after this long */
	int rpc_timeout_ms;   /* deadline of one RPC attempt (<= io_timeout_ms) */
	int probe_timeout_ms; /* the start-up Statfs must answer within this */
	size_t readahead;     /* bytes read ahead of a sequential reader */
	size_t write_buffer;  /* bytes an open file buffers before streaming */
	int max_threads;      /* FUSE worker threads at most */
	bool allow_other;     /* other users may use the mount (root's default) */
	bool ro;
	bool async_create; /* write-back creates (mnt_wb.h) */
	bool trash;	 /* unlink moves files to the user's trash (when the namenode keeps one) */
	bool foreground; /* -f (caudal-mount): stay in the foreground */
	bool fake;	 /* -f (mount.caudal): mount(8)'s fake mode, do nothing */
	bool debug;	 /* -d: libfuse request tracing, implies foreground */
	bool sloppy;	 /* -s: ignore unknown options */
	bool help;
	char *client_host; /* this host's address, to prefer its replicas (owned) */
	char *log_file;	   /* log here once daemonized (owned; NULL = discard) */
	char *pid_file;	   /* write the serving process's pid here (owned; NULL = none) */
	char *tls_ca;	   /* the cluster CA, this mount's certificate and key (owned; */
	char *tls_cert;	   /* NULL: CAUDAL_CA/CERT/KEY or $CAUDAL_HOME/certs, as the */
	char *tls_key;	   /* command line finds them) */
	int log_level;	   /* cdl_log level */
	int metrics_port;  /* serve /metrics on 127.0.0.1:metrics_port (0 = none) */
	char *fuse_opts;   /* comma list passed to libfuse as -o (owned) */
};

/* Fill o from argv. prog is the basename the program was run as
 * ("mount.caudal" switches to mount(8)'s conventions); euid is the user
 * running the mount (root's mount allows other users unless told
 * noallow_other). Returns 0, or -EINVAL with a message naming the culprit
 * in err. o must be released with mnt_opts_release in both cases. */
int mnt_opts_parse(struct mnt_opts *o, const char *prog, uid_t euid, int argc, char **argv,
		   char *err, size_t errlen);
void mnt_opts_release(struct mnt_opts *o);
void mnt_opts_usage(FILE *out, const char *prog);

/* "4M" -> 4194304; K, M, G suffixes (binary). 0 or -EINVAL. */
int mnt_parse_bytes(const char *s, size_t *out);
/* "1.5" -> 1.5 seconds; 0 or -EINVAL (negative, empty, trailing junk). */
int mnt_parse_seconds(const char *s, double *out);

#endif
