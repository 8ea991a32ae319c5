/* caudal-namenode: the namespace and block map [NameNode].
 * Start-up is an ordered table of steps; each fails loudly. The main
 * thread then runs the monitor tick until SIGTERM/SIGINT. */
#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cdl_config.h"
#include "cdl_log.h"
#include "cdl_daemon.h"
#include "cdl_http.h"
#include "cdl_metrics.h"
#include "cdl_rpc.h"
#include "cdl_sec.h"
#include "cdl_util.h"
#include "nn_check.h"
#include "nn_ckpt.h"
#include "nn_ns.h"
#include "nn_place.h"
#include "nn_ui.h"
#include "nn_web.h"

static struct {
	char *host;
	int64_t port;
	int64_t http_port;
	int64_t webhdfs_ticket_ms;
	char *dir;
	int64_t block_size;
	int64_t replication;
	int64_t heartbeat_ms;
	int64_t report_ms;
	int64_t dead_ms;
	int64_t lease_ms;
	int64_t safemode_pct;
	int64_t max_file_size;
	int64_t cache_mb;
	int64_t inline_max;
	int64_t hold_ms;
	int64_t events_keep;
	char *sync;
	int64_t batch_ms;
	int64_t reserved_mb;
	char *topology;
	int64_t token_lifetime_ms;
	int64_t token_key_roll_ms;
	bool encrypt_data;
	int64_t threads;
	int64_t tick_ms;
	char *log_level;
	bool checkpoint;
	bool once;
	char *namenode;
	char *checkpoint_dir;
	int64_t checkpoint_ms;
	int64_t checkpoint_keep;
	char *restore;
	char *exports;
	char *jobs_url;
	int64_t trash_interval, trash_interval_s;
	char *hosts, *hosts_exclude;
	bool check;
	bool print_config;
	cdl_sec_cfg sec;
} cfg;

static const cdl_cfg_key keys[] = {
    {"host", CDL_CFG_STR, &cfg.host, "127.0.0.1", 0, 0, "address to listen on"},
    {"port", CDL_CFG_INT, &cfg.port, "9000", 1, 65535, "RPC port"},
    {"http_port", CDL_CFG_INT, &cfg.http_port, "9870", 0, 65535,
     "HTTP status and /metrics port (0 = off)"},
    {"webhdfs_ticket_ms", CDL_CFG_INT, &cfg.webhdfs_ticket_ms, "300000", 100, 86400000,
     "a WebHDFS redirect's ticket lets its operation start for this long, ms"},
    {"dir", CDL_CFG_STR, &cfg.dir, "./nn", 0, 0, "metadata directory (RocksDB)"},
    {"block_size", CDL_CFG_INT, &cfg.block_size, "64m", 65536, 1LL << 36,
     "default block size in bytes (a multiple of 64 KiB)"},
    {"replication", CDL_CFG_INT, &cfg.replication, "3", 1, 32, "default replicas per block"},
    {"heartbeat_ms", CDL_CFG_INT, &cfg.heartbeat_ms, "3000", 100, 600000,
     "datanode heartbeat interval"},
    {"report_ms", CDL_CFG_INT, &cfg.report_ms, "300000", 1000, 86400000,
     "datanode full block report interval"},
    {"dead_ms", CDL_CFG_INT, &cfg.dead_ms, "30000", 500, 86400000,
     "a datanode silent this long is dead"},
    {"lease_ms", CDL_CFG_INT, &cfg.lease_ms, "60000", 1000, 86400000,
     "a writer's lease expires after this long without renewal"},
    {"safemode_pct", CDL_CFG_INT, &cfg.safemode_pct, "100", 0, 100,
     "leave safe mode when this percentage of blocks has a replica"},
    {"cache_mb", CDL_CFG_INT, &cfg.cache_mb, "256", 8, 1048576,
     "RocksDB block cache for the namespace, MiB"},
    {"max_file_size", CDL_CFG_INT, &cfg.max_file_size, "1125899906842624", 65536, INT64_MAX,
     "largest file size in bytes: growing a file past it gets EFBIG"},
    {"inline_max", CDL_CFG_INT, &cfg.inline_max, "65536", 0, NN_INLINE_CAP,
     "files of at most this many bytes live in their inode record, without blocks (0 = off)"},
    {"hold_ms", CDL_CFG_INT, &cfg.hold_ms, "2000", 50, 60000,
     "a mount's hold on a directory (write-back creates) lapses this long after its last Batch"},
    {"events_keep", CDL_CFG_INT, &cfg.events_keep, "1000000", 1000, 1000000000,
     "namespace events kept for GetEvents"},
    {"sync", CDL_CFG_STR, &cfg.sync, "always", 0, 0,
     "always: sync every operation; batch: sync the WAL every batch_ms"},
    {"batch_ms", CDL_CFG_INT, &cfg.batch_ms, "5", 1, 1000, "WAL sync interval in batch mode"},
    {"reserved_mb", CDL_CFG_INT, &cfg.reserved_mb, "100", 0, 1 << 20,
     "namespace changes fail with ENOSPC while the metadata disk has less free (MiB; 0: no check)"},
    {"topology", CDL_CFG_STR, &cfg.topology, "", 0, 0, "file of 'host /rack' lines"},
    {"token_lifetime_ms", CDL_CFG_INT, &cfg.token_lifetime_ms, "600000", 1000, 86400000,
     "block access tokens are valid this long"},
    {"encrypt_data", CDL_CFG_BOOL, &cfg.encrypt_data, "false", 0, 0,
     "tell clients to use TLS on the data port (set it on every datanode too)"},
    {"token_key_roll_ms", CDL_CFG_INT, &cfg.token_key_roll_ms, "3600000", 1000, 604800000,
     "the block-token signing key changes this often"},
    {"threads", CDL_CFG_INT, &cfg.threads, "8", 1, 64, "RPC worker threads"},
    {"tick_ms", CDL_CFG_INT, &cfg.tick_ms, "500", 50, 60000,
     "replication monitor and lease check interval"},
    {"log_level", CDL_CFG_STR, &cfg.log_level, "info", 0, 0, "error, warn, info or debug"},
    {"checkpoint", CDL_CFG_BOOL, &cfg.checkpoint, "false", 0, 0,
     "run as the checkpointer (Secondary NameNode) of --namenode"},
    {"once", CDL_CFG_BOOL, &cfg.once, "false", 0, 0, "checkpointer: take one checkpoint and exit"},
    {"namenode", CDL_CFG_STR, &cfg.namenode, "127.0.0.1:9000", 0, 0,
     "checkpointer: the namenode's RPC address"},
    {"checkpoint_dir", CDL_CFG_STR, &cfg.checkpoint_dir, "./checkpoints", 0, 0,
     "checkpointer: where checkpoints are kept"},
    {"checkpoint_ms", CDL_CFG_INT, &cfg.checkpoint_ms, "3600000", 1000, 604800000,
     "checkpointer: interval between checkpoints"},
    {"checkpoint_keep", CDL_CFG_INT, &cfg.checkpoint_keep, "2", 1, 1000,
     "checkpointer: checkpoints kept"},
    {"restore", CDL_CFG_STR, &cfg.restore, "", 0, 0,
     "copy this checkpoint folder into an empty --dir and exit"},
    {"trash_interval", CDL_CFG_INT, &cfg.trash_interval, "0", 0, 5256000,
     "minutes a removed entry stays in /user/NAME/.Trash (HDFS's fs.trash.interval; 0 = off)"},
    {"trash_interval_s", CDL_CFG_INT, &cfg.trash_interval_s, "0", 0, 315360000,
     "the same in seconds, for tests and short-lived clusters (wins when set)"},
    {"hosts", CDL_CFG_STR, &cfg.hosts, "", 0, 0,
     "include file: only the datanodes it names may register (HDFS's dfs.hosts; '': any)"},
    {"hosts_exclude", CDL_CFG_STR, &cfg.hosts_exclude, "", 0, 0,
     "exclude file: the datanodes it names are decommissioned (HDFS's dfs.hosts.exclude)"},
    {"exports", CDL_CFG_STR, &cfg.exports, "", 0, 0,
     "exports file: which mounts may act for other users, ro, maproot (nn_exports.h)"},
    {"jobs_url", CDL_CFG_STR, &cfg.jobs_url, "", 0, 0,
     "the jobtracker's web UI, linked from the namenode's (\"\": no link)"},
    {"check", CDL_CFG_BOOL, &cfg.check, "false", 0, 0,
     "check the invariants of the stopped namenode's --dir, print them and exit (1: violations)"},
    {"print_config", CDL_CFG_BOOL, &cfg.print_config, "false", 0, 0,
     "print the effective config and exit"},
    CDL_SEC_CFG_KEYS(cfg.sec),
    {NULL, 0, NULL, NULL, 0, 0, NULL},
};

static volatile sig_atomic_t stop;
static nn_topology *topo;
static nn_ns *ns;
static nn_web *web; /* WebHDFS (nn_web.h) */
static cdl_rpc_server *srv;
static cdl_http *http;
/* The secret /check asks for (hex), kept in DIR/check.token (0600). */
static char check_token[33];

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int step_log(void)
{
	int lvl = cdl_log_level_parse(cfg.log_level);
	if (lvl < 0) {
		fprintf(stderr, "caudal-namenode: config key 'log_level': '%s' is not a level\n",
			cfg.log_level);
		return -EINVAL;
	}
	cdl_log_init("namenode", lvl);
	if (strcmp(cfg.sync, "always") && strcmp(cfg.sync, "batch")) {
		cdl_err("config key 'sync': '%s' is neither 'always' nor 'batch'", cfg.sync);
		return -EINVAL;
	}
	if (cfg.block_size % 65536) {
		cdl_err("config key 'block_size': %lld is not a multiple of 64 KiB",
			(long long)cfg.block_size);
		return -EINVAL;
	}
	return 0;
}

static int step_topology(void)
{
	char err[512];
	int rc = nn_topology_load(cfg.topology, &topo, err, sizeof(err));
	if (rc < 0)
		cdl_err("%s", err);
	return rc;
}

static int step_namespace(void)
{
	nn_conf c = {
	    .dir = cfg.dir,
	    .block_size = cfg.block_size,
	    .replication = cfg.replication,
	    .lease_ms = cfg.lease_ms,
	    .heartbeat_ms = cfg.heartbeat_ms,
	    .report_ms = cfg.report_ms,
	    .dead_ms = cfg.dead_ms,
	    .safemode_pct = cfg.safemode_pct,
	    .max_file_size = cfg.max_file_size,
	    .cache_mb = cfg.cache_mb,
	    .inline_max = cfg.inline_max,
	    .hold_ms = cfg.hold_ms,
	    .events_keep = cfg.events_keep,
	    .sync_always = !strcmp(cfg.sync, "always"),
	    .batch_ms = cfg.batch_ms,
	    .reserved_mb = cfg.reserved_mb,
	    .topology = cfg.topology,
	    .token_lifetime_ms = cfg.token_lifetime_ms,
	    .token_key_roll_ms = cfg.token_key_roll_ms,
	    .encrypt_data = cfg.encrypt_data,
	    .exports = cfg.exports,
	    .hosts = cfg.hosts,
	    .hosts_exclude = cfg.hosts_exclude,
	    .trash_interval_ms =
		cfg.trash_interval_s ? cfg.trash_interval_s * 1000 : cfg.trash_interval * 60000,
	};
	int rc = nn_ns_open(&c, topo, &ns);
	if (rc < 0)
		return rc;
	/* before the RPC server starts: WebCall reads it */
	web = nn_web_new(ns, cfg.webhdfs_ticket_ms);
	if (!web)
		return -EIO;
	nn_ns_set_web(ns, web);
	return 0;
}

static int step_rpc(void)
{
	char addr[300];
	snprintf(addr, sizeof(addr), "%s:%lld", cfg.host, (long long)cfg.port);
	int rc = cdl_sec_daemon_init(cfg.sec.tls_ca, cfg.sec.tls_cert, cfg.sec.tls_key,
				     cfg.sec.insecure);
	if (rc < 0)
		return rc;
	cdl_rpc_global_init();
	srv = cdl_rpc_server_new(addr, (int)cfg.threads);
	if (!srv)
		return -EINVAL;
	cdl_rpc_server_metrics(srv, cdl_metrics_global(), "caudal_namenode");
	rc = nn_ns_register(ns, srv);
	if (rc == 0)
		rc = nn_ckpt_register(ns, srv);
	if (rc == 0)
		rc = cdl_rpc_server_start(srv);
	if (rc == 0)
		cdl_info("serving ClientProtocol, DatanodeProtocol and NamenodeProtocol on %s "
			 "(sync %s, %s)",
			 addr, cfg.sync, cdl_sec_enabled() ? "mutual TLS" : "plaintext");
	return rc;
}

/* GET /check?token=: the invariants, for whoever can read the token. */
static enum MHD_Result http_check(void *arg, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *upload, size_t *upload_size,
				  void **con_cls)
{
	(void)arg, (void)url, (void)upload, (void)upload_size, (void)con_cls;
	if (strcmp(method, "GET"))
		return MHD_NO;
	/* the check stops every operation while it scans, so only whoever
	 * can read the metadata folder may ask for it */
	const char *tok = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "token");
	nn_check_report rep;
	if (!tok || strlen(tok) != strlen(check_token) ||
	    CRYPTO_memcmp(tok, check_token, strlen(check_token)) != 0)
		return cdl_http_reply_str(
		    conn, MHD_HTTP_FORBIDDEN, "text/plain; charset=utf-8",
		    xstrdup("forbidden: /check?token= wants the token in the namenode's "
			    "check.token\n"));
	if (nn_check_run(ns, 1000, &rep) < 0)
		return cdl_http_reply_str(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
					  "text/plain; charset=utf-8",
					  xstrdup("cannot read the metadata store\n"));
	return cdl_http_reply_str(conn, rep.violations ? MHD_HTTP_CONFLICT : MHD_HTTP_OK,
				  "text/plain; charset=utf-8", rep.text);
}

/* A fresh random token for /check, written where only the namenode's user
 * (and root) can read it: DIR/check.token, replaced atomically. */
static int write_check_token(void)
{
	uint8_t raw[16];
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return -errno;
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(check_token + 2 * i, 3, "%02x", raw[i]);
	char *tmp = xasprintf("%s/check.token.tmp", cfg.dir);
	char *path = xasprintf("%s/check.token", cfg.dir);
	int rc = 0;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, check_token, strlen(check_token)) != (ssize_t)strlen(check_token) ||
	    fsync(fd) < 0 || rename(tmp, path) < 0)
		rc = errno ? -errno : -EIO;
	if (fd >= 0)
		close(fd);
	if (rc < 0)
		cdl_err("cannot write the check token '%s': %s", path, strerror(-rc));
	free(tmp);
	free(path);
	return rc;
}

static int step_http(void)
{
	if (!cfg.http_port)
		return 0;
	int rc = write_check_token();
	if (rc < 0)
		return rc;
	http = cdl_http_new(cfg.host, (int)cfg.http_port, "namenode HTTP");
	if (!http)
		return -EINVAL;
	/* with TLS the port speaks HTTPS and asks for client certificates
	 * (WebHDFS's identity, nn_web.h) */
	if (cdl_sec_enabled())
		cdl_http_set_tls(http, cdl_sec_ca_pem(), cdl_sec_cert_pem(), cdl_sec_key_pem());
	cdl_metrics *m = cdl_metrics_global();
	cdl_metrics_process(m);
	if ((rc = nn_ns_metrics(ns, m)) < 0 || (rc = nn_web_route(web, http)) < 0 ||
	    (rc = cdl_http_route(http, "/check", http_check, NULL, NULL)) < 0 ||
	    (rc = cdl_metrics_route(http, m)) < 0 ||
	    (rc = nn_ui_register(http, ns, cfg.jobs_url)) < 0 || (rc = cdl_http_start(http)) < 0)
		return rc;
	return 0;
}

static const struct {
	int (*init)(void);
	const char *what;
} steps[] = {
    {step_log, "check configuration"},	{step_topology, "load topology"},
    {step_namespace, "open namespace"}, {step_rpc, "start RPC server"},
    {step_http, "start HTTP server"},
};

/* --check: the invariants of a stopped namenode's metadata (the block map
 * is the one loading builds, so this checks the records and counters). */
static int offline_check(void)
{
	if (step_log() < 0)
		return 2;
	cdl_log_init("check", cdl_log_level_cur);
	char *current = xasprintf("%s/CURRENT", cfg.dir);
	bool exists = access(current, F_OK) == 0;
	free(current);
	if (!exists) {
		/* opening an empty folder would format a new namespace there */
		cdl_err("'%s' holds no metadata", cfg.dir);
		return 2;
	}
	if (step_topology() < 0 || step_namespace() < 0)
		return 2;
	nn_check_report rep;
	int rc = nn_check_run(ns, 1000, &rep);
	if (rc == 0)
		fputs(rep.text, stdout);
	else
		cdl_err("cannot check '%s': %s", cfg.dir, strerror(-rc));
	int status = rc < 0 ? 2 : rep.violations ? 1 : 0;
	nn_check_report_release(&rep);
	nn_ns_close(ns);
	nn_topology_free(topo);
	cdl_config_release(keys);
	return status;
}

/* --restore and --checkpoint: the Secondary NameNode's jobs. */
static int checkpointer(void)
{
	if (step_log() < 0)
		return 2;
	if (cfg.restore[0]) {
		cdl_log_init("restore", cdl_log_level_cur);
		int rc = nn_ckpt_restore(cfg.restore, cfg.dir);
		if (rc < 0) {
			cdl_err("cannot restore '%s' into '%s': %s", cfg.restore, cfg.dir,
				strerror(-rc));
			return 1;
		}
		cdl_info("restored '%s' into '%s'", cfg.restore, cfg.dir);
		return 0;
	}
	cdl_log_init("checkpoint", cdl_log_level_cur);
	int rc = cdl_sec_daemon_init(cfg.sec.tls_ca, cfg.sec.tls_cert, cfg.sec.tls_key,
				     cfg.sec.insecure);
	if (rc < 0)
		return 1;
	cdl_rpc_global_init();
	while (!stop) {
		uint64_t txid = 0;
		rc = nn_ckpt_fetch(cfg.namenode, cfg.checkpoint_dir, (int)cfg.checkpoint_keep,
				   60000, &txid);
		if (rc < 0)
			cdl_err("checkpoint from '%s' failed: %s", cfg.namenode, strerror(-rc));
		else
			cdl_info("checkpoint of txid %llu kept in '%s'", (unsigned long long)txid,
				 cfg.checkpoint_dir);
		if (cfg.once)
			break;
		for (int64_t slept = 0; slept < cfg.checkpoint_ms && !stop; slept += 100)
			usleep(100 * 1000);
	}
	cdl_rpc_global_shutdown();
	cdl_config_release(keys);
	return rc < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	char err[512];
	int npos = 0;
	cdl_config_defaults(keys);
	/* the checkpointer (Secondary NameNode) usually runs on another host
	 * with its own certificate: it reads its own section of a shared file */
	const char *section = "namenode";
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--checkpoint") || !strcmp(argv[i], "--checkpoint=true") ||
		    !strcmp(argv[i], "--checkpoint=yes") || !strcmp(argv[i], "--checkpoint=1"))
			section = "checkpointer";
	int rc = cdl_config_args(keys, section, argc, argv, &npos, err, sizeof(err));
	if (rc == 1)
		return 0;
	if (rc < 0 || npos > 0) {
		fprintf(stderr, "caudal-namenode: %s\n", rc < 0 ? err : "unexpected argument");
		return 2;
	}
	if (cfg.print_config) {
		cdl_config_dump(keys, stdout);
		cdl_config_release(keys);
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = {0};
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (cfg.check)
		return offline_check();
	if (cfg.restore[0] || cfg.checkpoint)
		return checkpointer();
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		rc = steps[i].init();
		if (rc < 0) {
			cdl_err("cannot %s: %s", steps[i].what, strerror(-rc));
			return 1;
		}
	}
	while (!stop) {
		struct timespec ts = {cfg.tick_ms / 1000, (cfg.tick_ms % 1000) * 1000000};
		nanosleep(&ts, NULL);
		nn_ns_tick(ns);
	}
	cdl_info("stopping");
	cdl_http_free(http);
	nn_ns_stop(ns);
	cdl_rpc_server_free(srv, 2000);
	nn_ckpt_shutdown();
	nn_ns_close(ns);
	nn_web_free(web);
	nn_topology_free(topo);
	cdl_rpc_global_shutdown();
	cdl_config_release(keys);
	return 0;
}
