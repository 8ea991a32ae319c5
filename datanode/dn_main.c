/* caudal-datanode: holds replicas on local disk, serves the data-transfer
 * protocol, and reports to the namenode (DESIGN.md, "Blocks").
 *
 * main() parses the config table, runs the start-up steps in order (each
 * fails loudly and undoes the ones before it), then waits for SIGTERM or
 * SIGINT and stops the modules in reverse order. Signals are blocked in
 * every thread and taken synchronously by main with sigwait. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cdl_config.h"
#include "cdl_daemon.h"
#include "cdl_dtls.h"
#include "cdl_http.h"
#include "cdl_log.h"
#include "cdl_metrics.h"
#include "cdl_rpc.h"
#include "dn_nn.h"
#include "dn_scan.h"
#include "dn_store.h"
#include "dn_web.h"
#include "dn_xfer.h"

static struct {
	char *namenode;
	char *host;
	int64_t port;
	int64_t http_port;
	char *data_dir;
	int64_t du_reserved;
	int64_t failed_volumes_tolerated;
	int64_t disk_check_ms;
	int64_t heartbeat_ms;
	int64_t report_ms;
	int64_t scan_rate;
	int64_t scan_period_ms;
	int64_t max_xceivers;
	int64_t max_conns_per_peer;
	int64_t header_timeout_ms;
	bool encrypt_data;
	int64_t io_timeout_ms;
	int64_t rpc_timeout_ms;
	char *log_level;
	bool print_config;
	cdl_sec_cfg sec;
} cfg;

static const cdl_cfg_key cfg_tab[] = {
    {"namenode", CDL_CFG_STR, &cfg.namenode, "127.0.0.1:9000", 0, 0, "namenode address host:port"},
    {"host", CDL_CFG_STR, &cfg.host, "127.0.0.1", 0, 0,
     "address to bind the data port to and to advertise"},
    {"port", CDL_CFG_INT, &cfg.port, "9866", 0, 65535, "data-transfer port (0 picks one)"},
    {"http_port", CDL_CFG_INT, &cfg.http_port, "9864", 0, 65535,
     "HTTP port: WebHDFS's data side and /metrics (HTTPS with the TLS identity); 0: none"},
    {"data_dir", CDL_CFG_STR, &cfg.data_dir, "/var/lib/caudal/datanode", 0, 0,
     "folder holding the block store; several, comma-separated, spread the replicas over "
     "them (one per disk)"},
    {"du_reserved", CDL_CFG_INT, &cfg.du_reserved, "0", 0, INT64_MAX,
     "bytes left free on each data dir for other uses"},
    {"failed_volumes_tolerated", CDL_CFG_INT, &cfg.failed_volumes_tolerated, "0", 0,
     DN_MAX_VOLS - 1, "failed data dirs the datanode goes on with; one more stops it"},
    {"disk_check_ms", CDL_CFG_INT, &cfg.disk_check_ms, "5000", 0, 3600000,
     "probe every data dir this often, ms (0 = only after an I/O error)"},
    {"heartbeat_ms", CDL_CFG_INT, &cfg.heartbeat_ms, "3000", 100, 600000, "heartbeat interval, ms"},
    {"report_ms", CDL_CFG_INT, &cfg.report_ms, "3600000", 1000, 86400000,
     "full block report interval, ms"},
    {"scan_rate", CDL_CFG_INT, &cfg.scan_rate, "8388608", 0, INT64_MAX,
     "block scanner rate, bytes/s (0 = off)"},
    {"scan_period_ms", CDL_CFG_INT, &cfg.scan_period_ms, "21600000", 1000, INT64_MAX,
     "start a scanner pass at most this often, ms"},
    {"max_xceivers", CDL_CFG_INT, &cfg.max_xceivers, "256", 1, 65536,
     "data-transfer connections served at once"},
    {"max_conns_per_peer", CDL_CFG_INT, &cfg.max_conns_per_peer, "64", 1, 65536,
     "data-transfer connections from one address at once"},
    {"header_timeout_ms", CDL_CFG_INT, &cfg.header_timeout_ms, "5000", 100, 600000,
     "a data-transfer connection must send its header within this, ms"},
    {"encrypt_data", CDL_CFG_BOOL, &cfg.encrypt_data, "false", 0, 0,
     "TLS on the data port: refuse plaintext connections, and encrypt our own"},
    {"io_timeout_ms", CDL_CFG_INT, &cfg.io_timeout_ms, "60000", 100, 3600000,
     "data-transfer socket timeout, ms"},
    {"rpc_timeout_ms", CDL_CFG_INT, &cfg.rpc_timeout_ms, "10000", 100, 600000,
     "deadline of each namenode call, ms"},
    {"log_level", CDL_CFG_STR, &cfg.log_level, "info", 0, 0, "error, warn, info or debug"},
    {"print_config", CDL_CFG_BOOL, &cfg.print_config, "false", 0, 0,
     "print the effective config and exit"},
    CDL_SEC_CFG_KEYS(cfg.sec),
    {NULL, 0, NULL, NULL, 0, 0, NULL},
};

static dn_store *store;
static cdl_keyring *keys; /* block-token keys: dn_nn fills, dn_xfer checks */
static dn_xfer *xfer;
static dn_nn *nn;
static dn_scan *scan;
static cdl_http *http; /* the HTTP port: WebHDFS (dn_web.h) */
static dn_web *web;
static volatile sig_atomic_t disks_failed;

/* Too many data dirs failed (the store said which): stop as on SIGTERM,
 * but exit non-zero. */
static void on_disks_failed(void *ctx)
{
	(void)ctx;
	disks_failed = 1;
	kill(getpid(), SIGTERM);
}

static int init_store(void)
{
	dn_store_opts o = {.reserved = (uint64_t)cfg.du_reserved,
			   .failed_tolerated = (int)cfg.failed_volumes_tolerated,
			   .check_ms = (int)cfg.disk_check_ms,
			   .on_fatal = on_disks_failed};
	int rc = dn_store_open_opts(cfg.data_dir, &o, &store);
	if (rc == 0)
		keys = cdl_keyring_new();
	return rc;
}

static void fini_store(void)
{
	dn_store_free(store);
	store = NULL;
	cdl_keyring_free(keys);
	keys = NULL;
}

static int init_xfer(void)
{
	dn_xfer_opts o = {.host = cfg.host,
			  .port = (int)cfg.port,
			  .max_xceivers = (int)cfg.max_xceivers,
			  .max_conns_per_peer = (int)cfg.max_conns_per_peer,
			  .header_timeout_ms = (int)cfg.header_timeout_ms,
			  .require_tls = cfg.encrypt_data,
			  .io_timeout_ms = (int)cfg.io_timeout_ms,
			  /* every operation needs a token: until the namenode
			   * sends keys, the datanode serves nothing */
			  .keys = keys};
	return dn_xfer_start(store, &o, &xfer);
}

static void fini_xfer(void)
{
	dn_xfer_stop(xfer);
	xfer = NULL;
}

/* encrypt_data: the data port's TLS, from the identity the RPC step
 * loaded; our own data connections (pipelines, copies) use it too. */
static int init_dtls(void)
{
	if (!cfg.encrypt_data)
		return 0;
	int rc = cdl_dtls_init();
	if (rc == 0)
		cdl_dtls_set_client(true);
	return rc;
}

static void fini_dtls(void)
{
	cdl_dtls_set_client(false);
}

/* The HTTP port, before the namenode client, which advertises it. */

static int init_nn(void)
{
	dn_nn_opts o = {.namenode = cfg.namenode,
			.host = cfg.host,
			.data_port = dn_xfer_port(xfer),
			.http_port = http ? cdl_http_port(http) : 0,
			.heartbeat_ms = (int)cfg.heartbeat_ms,
			.report_ms = (int)cfg.report_ms,
			.rpc_timeout_ms = (int)cfg.rpc_timeout_ms,
			.io_timeout_ms = (int)cfg.io_timeout_ms,
			.keys = keys};
	int rc = dn_nn_start(store, xfer, &o, &nn);
	if (rc == 0)
		dn_store_set_listener(store, dn_nn_listener, nn);
	return rc;
}

static void fini_nn(void)
{
	dn_store_set_listener(store, NULL, NULL);
	dn_nn_stop(nn);
	nn = NULL;
}

static int init_scan(void)
{
	return dn_scan_start(store, cfg.scan_rate, cfg.scan_period_ms, &scan);
}

static void fini_scan(void)
{
	dn_scan_stop(scan);
	scan = NULL;
}

/* ---- HTTP: WebHDFS's data side (dn_web.h) and /metrics (Prometheus) on
 * one port, listening before the datanode registers (the namenode
 * redirects WebHDFS clients to it). */

static struct {
	cdl_series *cap, *used, *rem, *blocks, *xceivers, *vol_ok, *vol_failed, *vol_full;
	cdl_metric *vused, *vreplicas, *vfailed;
} dg;

static void collect(void *arg)
{
	(void)arg;
	dn_usage u;
	if (dn_store_usage(store, &u) == 0) {
		cdl_series_set(dg.cap, (double)u.capacity);
		cdl_series_set(dg.used, (double)u.used);
		cdl_series_set(dg.rem, (double)u.remaining);
		cdl_series_set(dg.blocks, u.blocks);
	}
	cdl_series_set(dg.xceivers, xfer ? dn_xfer_active(xfer) : 0);
	dn_vol_info v[DN_MAX_VOLS];
	size_t n = dn_store_volumes(store, v, DN_MAX_VOLS);
	int ok = 0, failed = 0, full = 0;
	for (size_t i = 0; i < n && i < DN_MAX_VOLS; i++) {
		ok += !v[i].failed && !v[i].full;
		failed += v[i].failed;
		full += !v[i].failed && v[i].full;
		cdl_series_set(cdl_metric_at(dg.vused, v[i].dir), (double)v[i].used);
		cdl_series_set(cdl_metric_at(dg.vreplicas, v[i].dir), (double)v[i].replicas);
		cdl_series_set(cdl_metric_at(dg.vfailed, v[i].dir), v[i].failed);
	}
	cdl_series_set(dg.vol_ok, ok);
	cdl_series_set(dg.vol_failed, failed);
	cdl_series_set(dg.vol_full, full);
}

static cdl_series *gauge(cdl_metrics *r, const char *name, const char *help)
{
	return cdl_metric_one(cdl_metrics_gauge(r, name, help, NULL));
}

static int init_http(void)
{
	if (!cfg.http_port)
		return 0;
	cdl_metrics *r = cdl_metrics_global();
	cdl_metrics_process(r);
	dg.cap = gauge(r, "caudal_datanode_capacity_bytes",
		       "Bytes of the healthy data dirs, less the reserves.");
	dg.used =
	    gauge(r, "caudal_datanode_used_bytes", "Bytes of finalized replicas and sidecars.");
	dg.rem = gauge(r, "caudal_datanode_remaining_bytes", "Bytes free for replicas.");
	dg.blocks = gauge(r, "caudal_datanode_blocks", "Finalized replicas held.");
	dg.xceivers = gauge(r, "caudal_datanode_xceivers", "Data-transfer connections served now.");
	cdl_metric *vs = cdl_metrics_gauge(r, "caudal_datanode_volumes",
					   "Data dirs by state (ok, failed, full).", "state");
	dg.vol_ok = cdl_metric_at(vs, "ok");
	dg.vol_failed = cdl_metric_at(vs, "failed");
	dg.vol_full = cdl_metric_at(vs, "full");
	dg.vused = cdl_metrics_gauge(r, "caudal_datanode_volume_used_bytes",
				     "Bytes of finalized replicas on one data dir.", "dir");
	dg.vreplicas = cdl_metrics_gauge(r, "caudal_datanode_volume_replicas",
					 "Finalized replicas on one data dir.", "dir");
	dg.vfailed = cdl_metrics_gauge(r, "caudal_datanode_volume_failed",
				       "1 when a data dir has failed.", "dir");
	cdl_metrics_collector(r, collect, NULL);
	http = cdl_http_new(cfg.host, (int)cfg.http_port, "datanode HTTP");
	if (!http)
		return -EINVAL;
	if (cdl_sec_enabled())
		cdl_http_set_tls(http, cdl_sec_ca_pem(), cdl_sec_cert_pem(), cdl_sec_key_pem());
	dn_web_opts wo = {.namenode = cfg.namenode,
			  .host = cfg.host,
			  .id = dn_store_id(store),
			  .keys = keys,
			  .io_timeout_ms = (int)cfg.io_timeout_ms,
			  .rpc_timeout_ms = (int)cfg.rpc_timeout_ms};
	web = dn_web_new(&wo);
	if (!web)
		return -EINVAL;
	int rc = dn_web_route(web, http);
	if (rc == 0)
		rc = cdl_metrics_route(http, r);
	if (rc == 0)
		rc = cdl_http_start(http);
	return rc;
}

static void fini_http(void)
{
	cdl_http_free(http);
	http = NULL;
	dn_web_free(web);
	web = NULL;
}

/* Start-up in order; shut-down in reverse. */
static const cdl_step steps[] = {
    {init_store, fini_store, "block store"},
    {init_xfer, fini_xfer, "data-transfer server"},
    {cdl_daemon_rpc_init, cdl_daemon_rpc_fini, "rpc library"},
    {init_dtls, fini_dtls, "encrypted data transfer"},
    {init_http, fini_http, "HTTP server"},
    {init_nn, fini_nn, "namenode client"},
    {init_scan, fini_scan, "block scanner"},
};
#define NSTEPS (sizeof(steps) / sizeof(steps[0]))

/* The banner, once every step started. */
static void ready(void)
{
	cdl_info("datanode '%s' serving '%s' on '%s:%d'", dn_store_id(store), cfg.data_dir,
		 cfg.host, dn_xfer_port(xfer));
}

int main(int argc, char **argv)
{
	int rc =
	    cdl_daemon_config(cfg_tab, "datanode", argc, argv, &cfg.log_level, &cfg.print_config);
	if (rc >= 0)
		return rc;
	cdl_daemon_use_sec(&cfg.sec);

	int status = cdl_daemon_run(steps, NSTEPS, ready);
	if (disks_failed) {
		cdl_err("datanode stopped: more data dirs failed than failed_volumes_tolerated "
			"(%" PRId64 ")",
			cfg.failed_volumes_tolerated);
		status = 1;
	}
	cdl_config_release(cfg_tab);
	return status;
}
