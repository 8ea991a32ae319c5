/* caudal-mount / mount.caudal: mounts a Caudal cluster with FUSE.
 *
 * Start-up, in order (each step fails loudly with its reason on stderr and
 * a non-zero exit, before the program goes to the background):
 *   parse options -> check the mount point -> fork (unless -f; the parent
 *   waits for the child's verdict, so mount(8) and scripts see the real
 *   exit status; gRPC must only start after the fork) -> one Statfs with a
 *   short deadline (a cluster that is not there fails at once) -> FUSE
 *   session -> mount -> detach from the terminal -> serve with a pool of
 *   worker threads until unmounted or signalled -> complete files still
 *   open for writing -> unmount. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cdl_client.h"
#include "cdl_http.h"
#include "cdl_log.h"
#include "cdl_metrics.h"
#include "cdl_rpc.h"
#include "cdl_sec.h"
#include "cdl_util.h"
#include "mnt_fs.h"
#include "mnt_opts.h"
#include "mnt_wb.h"

static const char *prog = "caudal-mount";

/* The kernel gives a FUSE mount 128 KiB of read-ahead whatever the daemon
 * asks (INIT can only lower it), so a sequential reader sends a request per
 * 128 KiB. Raise this mount's own read-ahead to kb, as gcsfuse and s3fs
 * advise by hand; it needs root, and without it reads still work. Found
 * by the mount point's device number in /proc/self/mountinfo, since a stat
 * of the mount point would wait for this very daemon. */
static void raise_readahead(const char *mountpoint, unsigned kb)
{
	char real[PATH_MAX], want[4 * PATH_MAX];
	if (!realpath(mountpoint, real))
		return;
	/* mountinfo escapes space, tab, newline and backslash as \ooo */
	size_t n = 0;
	for (const char *p = real; *p && n + 5 < sizeof(want); p++) {
		if (strchr(" \t\n\\", *p))
			n += (size_t)snprintf(want + n, 5, "\\%03o", (unsigned char)*p);
		else
			want[n++] = *p;
	}
	want[n] = 0;
	FILE *mi = fopen("/proc/self/mountinfo", "re");
	if (!mi)
		return;
	char line[8192], dev[32] = "";
	while (fgets(line, sizeof(line), mi)) {
		char d[32], mp[4 * PATH_MAX];
		if (sscanf(line, "%*s %*s %31s %*s %4095s", d, mp) == 2 && strcmp(mp, want) == 0)
			snprintf(dev, sizeof(dev), "%s", d); /* the last one is ours */
	}
	fclose(mi);
	if (!*dev)
		return;
	char path[96];
	snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", dev);
	FILE *f = fopen(path, "we");
	bool ok = f && fprintf(f, "%u\n", kb) > 0;
	if (f && fclose(f) != 0)
		ok = false;
	if (ok)
		cdl_debug("kernel read-ahead of the mount raised to %u KiB", kb);
	else
		cdl_debug("cannot raise the kernel read-ahead of the mount (%s): %s", path,
			  strerror(errno));
}

/* The write end of the pipe to the waiting parent (-1 in the foreground). */
static int verdict_fd = -1;

static void tell_parent(char status)
{
	if (verdict_fd < 0)
		return;
	ssize_t k;
	do
		k = write(verdict_fd, &status, 1);
	while (k < 0 && errno == EINTR);
	close(verdict_fd);
	verdict_fd = -1;
}

/* Fork: the parent waits for the child's verdict and exits with it. */
/* The event follower's hooks into the attribute cache. */
static void ac_event(void *arg, const Caudal__Event *e)
{
	mnt_acache_event(arg, e);
}

static void ac_live(void *arg, bool live, uint64_t txid)
{
	mnt_acache_set_live(arg, live, txid);
}

static int go_background(void)
{
	int p[2];
	if (pipe(p) < 0) {
		fprintf(stderr, "%s: cannot create a pipe: %s\n", prog, strerror(errno));
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "%s: cannot fork: %s\n", prog, strerror(errno));
		return -1;
	}
	if (pid > 0) {
		close(p[1]);
		char status = 1;
		ssize_t k;
		do
			k = read(p[0], &status, 1);
		while (k < 0 && errno == EINTR);
		if (k != 1) {
			int ws;
			waitpid(pid, &ws, 0);
			status = 1;
		}
		_exit(status);
	}
	close(p[0]);
	verdict_fd = p[1];
	if (setsid() < 0)
		cdl_warn("setsid: %s", strerror(errno));
	return 0;
}

/* Stdio goes to the log file (or nowhere) once mounted in the background. */
static void detach_stdio(const struct mnt_opts *o)
{
	int null = open("/dev/null", O_RDWR);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
	}
	int log =
	    o->log_file ? open(o->log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644) : -1;
	if (log >= 0) {
		dup2(log, 2);
		close(log);
	} else if (null >= 0) {
		dup2(null, 2);
	}
	if (null > 2)
		close(null);
	if (chdir("/") < 0)
		cdl_warn("chdir /: %s", strerror(errno));
}

/* One Statfs with a short deadline: is the cluster there at all? */
static int probe(const struct mnt_opts *o)
{
	cdl_client_opts co = {
	    .namenode = o->namenode,
	    .io_timeout_ms = o->probe_timeout_ms,
	    .rpc_timeout_ms = o->probe_timeout_ms,
	    .client_host = o->client_host,
	};
	cdl_client *c = cdl_client_new(&co);
	if (!c)
		return -EINVAL;
	Caudal__Empty rq = CAUDAL__EMPTY__INIT;
	ProtobufCMessage *rep = NULL;
	int rc = cdl_client_call(c, CDL_NN_Statfs, &rq.base, &rep);
	if (rc == 0) {
		Caudal__StatfsReply *sr = (Caudal__StatfsReply *)rep;
		if (sr->err)
			rc = -(int)sr->err;
		else if (sr->live == 0)
			cdl_warn("namenode '%s' knows no live datanode yet", o->namenode);
		protobuf_c_message_free_unpacked(rep, NULL);
	}
	cdl_client_free(c);
	return rc;
}

int main(int argc, char **argv)
{
	char *p0 = xstrdup(argv[0]);
	prog = xstrdup(basename(p0));
	free(p0);
	struct mnt_opts o;
	char err[512];
	int status = 1;
	struct fuse_session *se = NULL;
	cdl_client *cl = NULL;
	struct mnt m;
	memset(&m, 0, sizeof(m));

	if (mnt_opts_parse(&o, prog, geteuid(), argc, argv, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s: %s\n", prog, err);
		fprintf(stderr, "try '%s --help'\n", prog);
		goto out_opts;
	}
	if (o.help) {
		mnt_opts_usage(stdout, prog);
		status = 0;
		goto out_opts;
	}
	if (o.fake) {
		status = 0;
		goto out_opts;
	}
	char abs[PATH_MAX];
	struct stat st;
	if (!realpath(o.mountpoint, abs) || stat(abs, &st) < 0) {
		fprintf(stderr, "%s: cannot use mount point '%s': %s\n", prog, o.mountpoint,
			strerror(errno));
		goto out_opts;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "%s: mount point '%s' is not a directory\n", prog, o.mountpoint);
		goto out_opts;
	}
	free(o.mountpoint);
	o.mountpoint = xstrdup(abs);
	cdl_log_init("mount", o.log_level);
	/* our identity: CAUDAL_CERT, else the state folder's mount certificate
	 * (root), else the user's own (DESIGN.md, "Security"); read before
	 * going to the background, which leaves the working folder */
	if (o.tls_ca || o.tls_cert || o.tls_key) {
		/* from fstab: mount(8) passes no environment worth the name */
		if (!o.tls_ca || !o.tls_cert || !o.tls_key) {
			fprintf(stderr, "%s: tls_ca, tls_cert and tls_key go together\n", prog);
			goto out_opts;
		}
		if (cdl_sec_use(o.tls_ca, o.tls_cert, o.tls_key) < 0) {
			fprintf(stderr, "%s: cannot use the certificate '%s' (key '%s', CA '%s')\n",
				prog, o.tls_cert, o.tls_key, o.tls_ca);
			goto out_opts;
		}
	} else if (cdl_sec_client_init(getenv("CAUDAL_HOME"), "mount", err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", prog, err);
		goto out_opts;
	}

	if (!o.foreground && go_background() < 0)
		goto out_opts;

	cdl_rpc_global_init(); /* after the fork: gRPC does not survive one */
	int rc = probe(&o);
	if (rc) {
		fprintf(stderr, "%s: cannot reach the namenode at '%s': %s\n", prog, o.namenode,
			strerror(-rc));
		goto out_client;
	}
	cdl_client_opts co = {
	    .namenode = o.namenode,
	    .io_timeout_ms = o.io_timeout_ms,
	    .rpc_timeout_ms = o.rpc_timeout_ms,
	    .client_host = o.client_host,
	};
	cl = cdl_client_new(&co);
	if (!cl) {
		fprintf(stderr, "%s: bad client options for '%s'\n", prog, o.namenode);
		goto out_client;
	}
	m.opts = &o;
	pthread_mutex_init(&m.files_mu, NULL);
	pthread_mutex_init(&m.hidden_mu, NULL);
	pthread_cond_init(&m.hidden_cv, NULL);
	m.cl = cl;
	mnt_itab_init(&m.itab);
	mnt_dcache_init(&m.dc, (int64_t)(o.entry_timeout * 1000));
	mnt_acache_init(&m.ac, (int64_t)(o.meta_timeout * 1000));
	if (o.meta_timeout > 0) {
		m.dc.on_event = ac_event;
		m.dc.on_live = ac_live;
		m.dc.hook_arg = &m.ac;
	}

	/* default_permissions always: the kernel checks each caller's rights
	 * before the namenode checks them again, which allow_other needs */
	char *fo = xasprintf("fsname=%s,subtype=caudal,default_permissions%s%s%s%s", o.namenode,
			     o.allow_other ? ",allow_other" : "", o.ro ? ",ro" : "",
			     o.fuse_opts ? "," : "", o.fuse_opts ? o.fuse_opts : "");
	char *fargv[] = {(char *)prog, "-o", fo, o.debug ? "-d" : NULL, NULL};
	struct fuse_args args = FUSE_ARGS_INIT(o.debug ? 4 : 3, fargv);
	se = fuse_session_new(&args, &mnt_ops, sizeof(mnt_ops), &m);
	fuse_opt_free_args(&args);
	free(fo);
	if (!se) {
		fprintf(stderr, "%s: cannot start a FUSE session\n", prog);
		goto out_client;
	}
	m.se = se;
	if (fuse_set_signal_handlers(se) != 0) {
		fprintf(stderr, "%s: cannot install signal handlers\n", prog);
		goto out_session;
	}
	if (fuse_session_mount(se, o.mountpoint) != 0) {
		fprintf(stderr,
			"%s: cannot mount at '%s' (is /dev/fuse there, and the point "
			"not mounted already?)\n",
			prog, o.mountpoint);
		goto out_signals;
	}
	/* before INIT is answered: INIT then keeps the lower of the two */
	raise_readahead(o.mountpoint, (unsigned)(mnt_kernel_readahead(&o) >> 10));
	if (o.pid_file) {
		FILE *pf = fopen(o.pid_file, "w");
		if (!pf || fprintf(pf, "%d\ncaudal-mount\n", (int)getpid()) < 0 || fclose(pf) != 0)
			cdl_warn("cannot write pid file '%s': %s", o.pid_file, strerror(errno));
	}
	cdl_info("mounted '%s'%s", o.mountpoint,
		 o.allow_other ? " for every local user (allow_other)" : " for its owner only");
	if (!o.foreground)
		detach_stdio(&o);
	tell_parent(0);

	if (mnt_dcache_follow(&m.dc, cl) != 0)
		cdl_warn("cannot start the event follower: the directory cache is off");
	/* write-back creates need the directory cache (they create only
	 * names it knows are free) */
	else if (o.async_create && !o.ro && o.entry_timeout > 0 && mnt_wb_start(&m) != 0)
		cdl_warn("cannot start the create sender: every create waits for the namenode");
	/* after the fork to the background: the HTTP server's threads would
	 * not survive it. Loopback only: the mount's metrics are this host's. */
	cdl_http *http = NULL;
	if (o.metrics_port) {
		cdl_metrics *r = cdl_metrics_global();
		cdl_metrics_process(r);
		mnt_metrics_init(&m, r);
		http = cdl_metrics_serve("127.0.0.1", o.metrics_port, r, "mount metrics");
		if (!http)
			cdl_err("no metrics: port %d of 127.0.0.1 is taken", o.metrics_port);
	}

	struct fuse_loop_config *lc = fuse_loop_cfg_create();
	fuse_loop_cfg_set_clone_fd(lc, 1);
	fuse_loop_cfg_set_max_threads(lc, (unsigned)o.max_threads);
	fuse_loop_cfg_set_idle_threads(lc, (unsigned)(o.max_threads / 2 ? o.max_threads / 2 : 1));
	rc = fuse_session_loop_mt(se, lc);
	fuse_loop_cfg_destroy(lc);
	cdl_http_free(http);
	status = rc < 0 ? 1 : 0;
	cdl_info("unmounting '%s'%s", o.mountpoint, rc > 0 ? " on a signal" : "");
	fuse_session_unmount(se);
	if (o.pid_file)
		unlink(o.pid_file);
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
out_client:
	if (m.itab.slots) {
		cdl_info(
		    "lookups answered by the directory cache: %llu of %llu; lookups and "
		    "stats by the attribute cache: %llu of %llu",
		    (unsigned long long)m.dc.hits, (unsigned long long)(m.dc.hits + m.dc.misses),
		    (unsigned long long)m.ac.hits, (unsigned long long)(m.ac.hits + m.ac.misses));
		mnt_itab_release(&m.itab);
		mnt_dcache_destroy(&m.dc);
		mnt_acache_destroy(&m.ac);
	}
	cdl_client_free(cl);
	cdl_rpc_global_shutdown();
out_opts:
	tell_parent((char)status);
	mnt_opts_release(&o);
	return status;
}
