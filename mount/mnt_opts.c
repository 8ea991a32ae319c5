/* mnt_opts: command line and -o options of caudal-mount / mount.caudal.
 * One table of options drives parsing and --help. */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cdl_log.h"
#include "cdl_util.h"
#include "mnt_opts.h"

enum opt_kind {
	K_SECONDS, /* double seconds */
	K_MSEC,	   /* seconds given, stored as int ms */
	K_BYTES,   /* size_t with K/M/G suffix */
	K_INT,	   /* int */
	K_SET,	   /* flag: sets a bool */
	K_CLEAR,   /* flag: clears a bool */
	K_STR,	   /* char *, owned */
	K_LEVEL,   /* log level name */
	K_FUSE,	   /* generic mount flag handed to libfuse as is */
	K_IGNORE,  /* fstab/mount(8) options that mean nothing here */
};

struct opt_def {
	const char *name;
	enum opt_kind kind;
	size_t off;	 /* offset of the field in struct mnt_opts */
	double min, max; /* bounds for numbers (bytes, seconds, ints) */
	const char *help;
};

#define F(field) offsetof(struct mnt_opts, field)

static const struct opt_def opt_tab[] = {
    {"attr_timeout", K_SECONDS, F(attr_timeout), 0, 3600,
     "seconds the kernel caches attributes (default 1)"},
    {"entry_timeout", K_SECONDS, F(entry_timeout), 0, 3600,
     "seconds the kernel caches names (default 1)"},
    {"meta_timeout", K_SECONDS, F(meta_timeout), 0, 3600,
     "seconds the mount itself keeps names and attributes, kept coherent by the namespace "
     "event log (default 30; 0: off)"},
    {"io_timeout", K_MSEC, F(io_timeout_ms), 0.1, 3600,
     "seconds before an operation on an unreachable cluster fails (default 20)"},
    {"rpc_timeout", K_MSEC, F(rpc_timeout_ms), 0.05, 3600,
     "seconds one namenode call may take before it is retried (default 10, at most io_timeout)"},
    {"probe_timeout", K_MSEC, F(probe_timeout_ms), 0.1, 600,
     "seconds the cluster has to answer at start (default 3)"},
    {"readahead", K_BYTES, F(readahead), 0, 256.0 * 1048576,
     "bytes read ahead of a sequential reader, K/M/G suffixes (default 8M)"},
    {"write_buffer", K_BYTES, F(write_buffer), 4096, 256.0 * 1048576,
     "bytes an open file buffers before streaming them (default 4M)"},
    {"max_threads", K_INT, F(max_threads), 1, 1024, "FUSE worker threads at most (default 16)"},
    {"client_host", K_STR, F(client_host), 0, 0,
     "this host's address, to read from a replica here (default 127.0.0.1)"},
    {"log", K_STR, F(log_file), 0, 0, "log file once in the background (default: none)"},
    {"pidfile", K_STR, F(pid_file), 0, 0, "write the mount process's pid to this file"},
    {"metrics_port", K_INT, F(metrics_port), 0, 65535,
     "serve Prometheus /metrics on this port of 127.0.0.1 (default 0: none)"},
    {"tls_ca", K_STR, F(tls_ca), 0, 0, "the cluster CA certificate (default: CAUDAL_CA)"},
    {"tls_cert", K_STR, F(tls_cert), 0, 0,
     "this mount's certificate, 'caudal cert create-node HOST mount' (default: CAUDAL_CERT, "
     "else $CAUDAL_HOME/certs/mount.crt)"},
    {"tls_key", K_STR, F(tls_key), 0, 0, "its private key (default: CAUDAL_KEY)"},
    {"log_level", K_LEVEL, F(log_level), 0, 0, "error, warn, info or debug (default info)"},
    {"allow_other", K_SET, F(allow_other), 0, 0,
     "let other users use the mount, with their own rights (default when run by root)"},
    {"noallow_other", K_CLEAR, F(allow_other), 0, 0,
     "only the user running the mount may use it (default for other users)"},
    {"ro", K_SET, F(ro), 0, 0, "read-only mount"},
    {"trash", K_SET, F(trash), 0, 0,
     "unlink moves a file to /user/NAME/.Trash/Current when the namenode keeps a trash"},
    {"rw", K_CLEAR, F(ro), 0, 0, "read-write mount (default)"},
    {"async_create", K_SET, F(async_create), 0, 0,
     "answer creates in a directory this mount holds at once and send them to the namenode in "
     "batches; fsync waits for them (default)"},
    {"noasync_create", K_CLEAR, F(async_create), 0, 0, "every create waits for the namenode"},
    {"default_permissions", K_IGNORE, 0, 0, 0, NULL},
    {"nosuid", K_FUSE, 0, 0, 0, NULL},
    {"suid", K_FUSE, 0, 0, 0, NULL},
    {"nodev", K_FUSE, 0, 0, 0, NULL},
    {"dev", K_FUSE, 0, 0, 0, NULL},
    {"noexec", K_FUSE, 0, 0, 0, NULL},
    {"exec", K_FUSE, 0, 0, 0, NULL},
    {"noatime", K_FUSE, 0, 0, 0, NULL},
    {"atime", K_FUSE, 0, 0, 0, NULL},
    {"relatime", K_FUSE, 0, 0, 0, NULL},
    {"norelatime", K_FUSE, 0, 0, 0, NULL},
    {"strictatime", K_FUSE, 0, 0, 0, NULL},
    {"nodiratime", K_FUSE, 0, 0, 0, NULL},
    {"dirsync", K_FUSE, 0, 0, 0, NULL},
    {"sync", K_FUSE, 0, 0, 0, NULL},
    {"async", K_FUSE, 0, 0, 0, NULL},
    {"defaults", K_IGNORE, 0, 0, 0, NULL},
    {"auto", K_IGNORE, 0, 0, 0, NULL},
    {"noauto", K_IGNORE, 0, 0, 0, NULL},
    {"user", K_IGNORE, 0, 0, 0, NULL},
    {"users", K_IGNORE, 0, 0, 0, NULL},
    {"nouser", K_IGNORE, 0, 0, 0, NULL},
    {"owner", K_IGNORE, 0, 0, 0, NULL},
    {"group", K_IGNORE, 0, 0, 0, NULL},
    {"nofail", K_IGNORE, 0, 0, 0, NULL},
    {"_netdev", K_IGNORE, 0, 0, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL},
};

/* Root's mount lets every local user in, each with its own rights (the
 * kernel and the namenode check them), as mfsmount does: otherwise the one
 * mount of a host would serve root alone. Another user's mount keeps FUSE's
 * default, which needs no user_allow_other in /etc/fuse.conf. */
static void set_defaults(struct mnt_opts *o, uid_t euid)
{
	memset(o, 0, sizeof(*o));
	o->allow_other = euid == 0;
	o->attr_timeout = 1.0;
	o->entry_timeout = 1.0;
	o->meta_timeout = 30.0;
	o->async_create = true;
	o->io_timeout_ms = 20000;
	o->rpc_timeout_ms = 10000;
	o->probe_timeout_ms = 3000;
	o->readahead = 8u << 20;
	o->write_buffer = 4u << 20;
	o->max_threads = 16;
	o->log_level = CDL_LOG_INFO;
}

int mnt_parse_bytes(const char *s, size_t *out)
{
	if (!s || !*s || *s == '-')
		return -EINVAL;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	unsigned shift = 0;
	switch (*end) {
	case '\0':
		break;
	case 'k':
	case 'K':
		shift = 10;
		break;
	case 'm':
	case 'M':
		shift = 20;
		break;
	case 'g':
	case 'G':
		shift = 30;
		break;
	default:
		return -EINVAL;
	}
	if (*end && end[1] != '\0' && strcmp(end + 1, "iB") != 0 && strcmp(end + 1, "B") != 0)
		return -EINVAL;
	if (shift && v > (SIZE_MAX >> shift))
		return -EINVAL;
	*out = (size_t)(v << shift);
	return 0;
}

int mnt_parse_seconds(const char *s, double *out)
{
	if (!s || !*s)
		return -EINVAL;
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < 0)
		return -EINVAL;
	*out = v;
	return 0;
}

static void append_fuse(struct mnt_opts *o, const char *opt)
{
	char *n = o->fuse_opts ? xasprintf("%s,%s", o->fuse_opts, opt) : xstrdup(opt);
	free(o->fuse_opts);
	o->fuse_opts = n;
}

/* Apply one "name" or "name=value" option. */
static int apply_one(struct mnt_opts *o, const char *opt, char *err, size_t errlen)
{
	const char *eq = strchr(opt, '=');
	size_t nlen = eq ? (size_t)(eq - opt) : strlen(opt);
	const char *val = eq ? eq + 1 : NULL;

	if (nlen == 0)
		return 0; /* "a,,b" */
	if (strncmp(opt, "x-", 2) == 0 || strncmp(opt, "comment=", 8) == 0)
		return 0; /* fstab annotations for other tools */

	const struct opt_def *d;
	for (d = opt_tab; d->name; d++)
		if (strlen(d->name) == nlen && strncmp(d->name, opt, nlen) == 0)
			break;
	if (!d->name) {
		if (o->sloppy)
			return 0;
		snprintf(err, errlen, "unknown mount option '%.*s'", (int)nlen, opt);
		return -EINVAL;
	}
	bool flag =
	    d->kind == K_SET || d->kind == K_CLEAR || d->kind == K_FUSE || d->kind == K_IGNORE;
	if (flag && val && d->kind != K_IGNORE) {
		snprintf(err, errlen, "mount option '%s' takes no value", d->name);
		return -EINVAL;
	}
	if (!flag && (!val || !*val)) {
		snprintf(err, errlen, "mount option '%s' needs a value", d->name);
		return -EINVAL;
	}
	void *field = (char *)o + d->off;
	double num = 0;
	int rc = 0;
	switch (d->kind) {
	case K_SECONDS:
	case K_MSEC:
		rc = mnt_parse_seconds(val, &num);
		break;
	case K_BYTES: {
		size_t b = 0;
		rc = mnt_parse_bytes(val, &b);
		num = (double)b;
		break;
	}
	case K_INT: {
		char *end;
		errno = 0;
		long v = strtol(val, &end, 10);
		rc = errno || end == val || *end ? -EINVAL : 0;
		num = (double)v;
		break;
	}
	default:
		break;
	}
	if (rc || num < d->min || (d->max > d->min && num > d->max)) {
		snprintf(err, errlen, "bad value '%s' for mount option '%s' (%s)", val, d->name,
			 d->help ? d->help : "");
		return -EINVAL;
	}
	switch (d->kind) {
	case K_SECONDS:
		*(double *)field = num;
		break;
	case K_MSEC:
		*(int *)field = (int)llround(num * 1000);
		break;
	case K_BYTES:
		*(size_t *)field = (size_t)num;
		break;
	case K_INT:
		*(int *)field = (int)num;
		break;
	case K_SET:
		*(bool *)field = true;
		break;
	case K_CLEAR:
		*(bool *)field = false;
		break;
	case K_STR:
		free(*(char **)field);
		*(char **)field = xstrdup(val);
		break;
	case K_LEVEL: {
		int lv = cdl_log_level_parse(val);
		if (lv < 0) {
			snprintf(err, errlen, "bad value '%s' for mount option '%s' (%s)", val,
				 d->name, d->help);
			return -EINVAL;
		}
		*(int *)field = lv;
		break;
	}
	case K_FUSE:
		append_fuse(o, d->name);
		break;
	case K_IGNORE:
		break;
	}
	return 0;
}

/* Apply a comma-separated -o list. */
static int apply_list(struct mnt_opts *o, const char *list, char *err, size_t errlen)
{
	char *copy = xstrdup(list);
	char *save = NULL;
	int rc = 0;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		rc = apply_one(o, t, err, errlen);
		if (rc)
			break;
	}
	free(copy);
	return rc;
}

int mnt_opts_parse(struct mnt_opts *o, const char *prog, uid_t euid, int argc, char **argv,
		   char *err, size_t errlen)
{
	set_defaults(o, euid);
	bool as_helper = prog && strcmp(prog, "mount.caudal") == 0;
	const char *pos[2] = {NULL, NULL};
	int npos = 0;
	bool rpc_given = false;
	err[0] = '\0';

	/* -s changes how the rest is read: find it first */
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "-s") == 0)
			o->sloppy = true;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			o->help = true;
			return 0;
		}
		if (strncmp(a, "-o", 2) == 0) {
			const char *list = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
			if (!list) {
				snprintf(err, errlen, "option '-o' needs a list of mount options");
				return -EINVAL;
			}
			int rc = apply_list(o, list, err, errlen);
			if (rc)
				return rc;
			if (strstr(list, "rpc_timeout="))
				rpc_given = true;
			continue;
		}
		if (strcmp(a, "-t") == 0 || strcmp(a, "-N") == 0) {
			if (i + 1 >= argc) {
				snprintf(err, errlen, "option '%s' needs a value", a);
				return -EINVAL;
			}
			if (strcmp(a, "-N") == 0) {
				snprintf(err, errlen, "mount namespaces (-N) are not supported");
				return -EINVAL;
			}
			i++; /* -t caudal[.subtype]: we know what we are */
			continue;
		}
		if (a[0] == '-' && a[1] && a[1] != '-') {
			for (const char *f = a + 1; *f; f++) {
				switch (*f) {
				case 'f':
					if (as_helper)
						o->fake = true;
					else
						o->foreground = true;
					break;
				case 'd':
					o->debug = true;
					o->foreground = true;
					break;
				case 's': /* sloppy, handled above */
				case 'n': /* no mtab: there is none */
				case 'v': /* verbose */
					break;
				default:
					snprintf(err, errlen, "unknown flag '-%c'", *f);
					return -EINVAL;
				}
			}
			continue;
		}
		if (a[0] == '-' && a[1] == '-' && a[2]) {
			snprintf(err, errlen, "unknown option '%s'", a);
			return -EINVAL;
		}
		if (npos == 2) {
			snprintf(err, errlen, "unexpected argument '%s'", a);
			return -EINVAL;
		}
		pos[npos++] = a;
	}
	if (npos < 2) {
		snprintf(err, errlen, "need the namenode address and the mount point");
		return -EINVAL;
	}
	const char *spec = pos[0];
	/* "caudal://host:port" and "caudal:host:port" are accepted spellings */
	if (strncmp(spec, "caudal://", 9) == 0)
		spec += 9;
	else if (strncmp(spec, "caudal:", 7) == 0)
		spec += 7;
	const char *colon = strrchr(spec, ':');
	if (!colon || colon == spec || !colon[1] ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1) || atoi(colon + 1) <= 0 ||
	    atoi(colon + 1) > 65535) {
		snprintf(err, errlen, "bad namenode address '%s' (want host:port)", pos[0]);
		return -EINVAL;
	}
	o->namenode = xstrdup(spec);
	o->mountpoint = xstrdup(pos[1]);
	if (!rpc_given && o->rpc_timeout_ms > o->io_timeout_ms)
		o->rpc_timeout_ms = o->io_timeout_ms;
	if (o->rpc_timeout_ms > o->io_timeout_ms) {
		snprintf(err, errlen, "rpc_timeout may not exceed io_timeout");
		return -EINVAL;
	}
	if (!o->client_host)
		o->client_host = xstrdup("127.0.0.1");
	return 0;
}

void mnt_opts_release(struct mnt_opts *o)
{
	free(o->namenode);
	free(o->mountpoint);
	free(o->client_host);
	free(o->log_file);
	free(o->pid_file);
	free(o->tls_ca);
	free(o->tls_cert);
	free(o->tls_key);
	free(o->fuse_opts);
	memset(o, 0, sizeof(*o));
}

void mnt_opts_usage(FILE *out, const char *prog)
{
	fprintf(out,
		"usage: %s NAMENODE_HOST:PORT MOUNTPOINT [-o opt[,opt...]] [-f] [-d]\n"
		"       mount -t caudal HOST:PORT MOUNTPOINT [-o opts]   (as mount.caudal)\n"
		"Mounts a Caudal cluster with FUSE.\n"
		"  -f   stay in the foreground (as mount.caudal: mount(8)'s fake mode)\n"
		"  -d   trace FUSE requests (implies -f)\n"
		"  -s   ignore unknown mount options\n"
		"mount options:\n",
		prog);
	for (const struct opt_def *d = opt_tab; d->name; d++)
		if (d->help)
			fprintf(out, "  %-16s %s\n", d->name, d->help);
	fprintf(out,
		"  also: nosuid, nodev, noexec, noatime, ... (generic), and fstab's defaults,\n"
		"  noauto, user, nofail, _netdev, x-* (ignored)\n");
}
