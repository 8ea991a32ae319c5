/* Unit test of mnt_opts: caudal-mount's and mount.caudal's command lines. */
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "mnt_opts.h"
#include "cdl_log.h"
#include "test.h"

/* The user the parsed command line runs as: an ordinary one, unless a
 * test says root. */
static uid_t parse_euid = 1000;

static int parse(struct mnt_opts *o, const char *prog, char *err, size_t errlen, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;
	va_start(ap, errlen);
	argv[argc++] = (char *)prog;
	for (char *a; (a = va_arg(ap, char *)) != NULL && argc < 31;)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	return mnt_opts_parse(o, prog, parse_euid, argc, argv, err, errlen);
}

static void test_defaults(void)
{
	struct mnt_opts o;
	char err[256];
	CHECK_EQ(parse(&o, "caudal-mount", err, sizeof(err), "127.0.0.1:9000", "/mnt/x", NULL), 0);
	CHECK(strcmp(o.namenode, "127.0.0.1:9000") == 0);
	CHECK(strcmp(o.mountpoint, "/mnt/x") == 0);
	CHECK_EQ(o.io_timeout_ms, 20000);
	CHECK_EQ(o.rpc_timeout_ms, 10000);
	CHECK(o.attr_timeout == 1.0 && o.entry_timeout == 1.0);
	CHECK(!o.foreground && !o.ro && !o.allow_other && !o.fake);
	CHECK(strcmp(o.client_host, "127.0.0.1") == 0);
	CHECK(o.fuse_opts == NULL);
	CHECK_EQ(o.metrics_port, 0); /* no /metrics unless asked */
	mnt_opts_release(&o);
	/* metrics_port: a port, or refused */
	CHECK_EQ(parse(&o, "caudal-mount", err, sizeof(err), "h:1", "/m", "-o", "metrics_port=9100",
		       NULL),
		 0);
	CHECK_EQ(o.metrics_port, 9100);
	mnt_opts_release(&o);
	CHECK_EQ(parse(&o, "caudal-mount", err, sizeof(err), "h:1", "/m", "-o",
		       "metrics_port=65536", NULL),
		 -EINVAL);
	mnt_opts_release(&o);
	CHECK_EQ(
	    parse(&o, "caudal-mount", err, sizeof(err), "h:1", "/m", "-o", "metrics_port=-1", NULL),
	    -EINVAL);
	mnt_opts_release(&o);
}

static void test_options(void)
{
	struct mnt_opts o;
	char err[256];
	int rc =
	    parse(&o, "caudal-mount", err, sizeof(err), "-o",
		  "attr_timeout=0.5,entry_timeout=2,io_timeout=3,readahead=16M,write_buffer=512K",
		  "nn:8020", "dir", "-f",
		  "-oallow_other,ro,nosuid,noatime,log=/tmp/l,log_level=debug", NULL);
	CHECK_EQ(rc, 0);
	CHECK(o.attr_timeout == 0.5);
	CHECK(o.entry_timeout == 2.0);
	CHECK_EQ(o.io_timeout_ms, 3000);
	CHECK_EQ(o.rpc_timeout_ms, 3000); /* clamped to the io timeout */
	CHECK_EQ(o.readahead, 16u << 20);
	CHECK_EQ(o.write_buffer, 512u << 10);
	CHECK(o.foreground && o.allow_other && o.ro);
	CHECK(o.fuse_opts && strcmp(o.fuse_opts, "nosuid,noatime") == 0);
	CHECK(o.log_file && strcmp(o.log_file, "/tmp/l") == 0);
	CHECK_EQ(o.log_level, CDL_LOG_DEBUG);
	mnt_opts_release(&o);

	/* rw after ro wins; fstab noise is ignored */
	rc = parse(&o, "caudal-mount", err, sizeof(err), "h:1", "d", "-o",
		   "ro,rw,defaults,noauto,_netdev,nofail,x-systemd.automount,comment=x,user", NULL);
	CHECK_EQ(rc, 0);
	CHECK(!o.ro);
	mnt_opts_release(&o);

	/* an fstab line names its certificate (mount(8) passes no environment) */
	rc = parse(&o, "mount.caudal", err, sizeof(err), "10.0.0.1:9000", "/mnt", "-o",
		   "_netdev,tls_ca=/etc/caudal/certs/ca.crt,tls_cert=/etc/caudal/certs/m.crt,"
		   "tls_key=/etc/caudal/certs/m.key,client_host=10.0.0.9",
		   NULL);
	CHECK_EQ(rc, 0);
	CHECK(o.tls_ca && strcmp(o.tls_ca, "/etc/caudal/certs/ca.crt") == 0);
	CHECK(o.tls_cert && strcmp(o.tls_cert, "/etc/caudal/certs/m.crt") == 0);
	CHECK(o.tls_key && strcmp(o.tls_key, "/etc/caudal/certs/m.key") == 0);
	CHECK(strcmp(o.client_host, "10.0.0.9") == 0);
	CHECK(o.fuse_opts == NULL);
	mnt_opts_release(&o);
}

static void test_helper_conventions(void)
{
	struct mnt_opts o;
	char err[256];
	/* mount(8): mount.caudal SPEC DIR -o opts [-t type]; -f means fake */
	int rc = parse(&o, "mount.caudal", err, sizeof(err), "caudal://10.0.0.1:9000", "/mnt", "-n",
		       "-o", "rw,io_timeout=5", "-t", "caudal", NULL);
	CHECK_EQ(rc, 0);
	CHECK(strcmp(o.namenode, "10.0.0.1:9000") == 0);
	CHECK(!o.fake && !o.foreground);
	mnt_opts_release(&o);
	rc = parse(&o, "mount.caudal", err, sizeof(err), "h:1", "/mnt", "-fv", NULL);
	CHECK_EQ(rc, 0);
	CHECK(o.fake && !o.foreground);
	mnt_opts_release(&o);
	/* -s: unknown options are ignored */
	rc =
	    parse(&o, "mount.caudal", err, sizeof(err), "h:1", "/mnt", "-s", "-o", "bogus=1", NULL);
	CHECK_EQ(rc, 0);
	mnt_opts_release(&o);
}

static void test_errors(void)
{
	struct mnt_opts o;
	char err[256];
	CHECK_EQ(parse(&o, "caudal-mount", err, sizeof(err), "h:1", NULL), -EINVAL);
	CHECK(strstr(err, "mount point") != NULL);
	mnt_opts_release(&o);
	CHECK_EQ(parse(&o, "caudal-mount", err, sizeof(err), "nohost", "/m", NULL), -EINVAL);
	CHECK(strstr(err, "'nohost'") != NULL);
	mnt_opts_release(&o);
	CHECK_EQ(parse(&o, "caudal-mount", err, sizeof(err), "h:99999", "/m", NULL), -EINVAL);
	mnt_opts_release(&o);
	CHECK_EQ(parse(&o, "caudal-mount", err, sizeof(err), "h:1", "/m", "-o", "bogus", NULL),
		 -EINVAL);
	CHECK(strstr(err, "'bogus'") != NULL);
	mnt_opts_release(&o);
	CHECK_EQ(
	    parse(&o, "caudal-mount", err, sizeof(err), "h:1", "/m", "-o", "io_timeout=-1", NULL),
	    -EINVAL);
	CHECK(strstr(err, "io_timeout") != NULL);
	mnt_opts_release(&o);
	CHECK_EQ(
	    parse(&o, "caudal-mount", err, sizeof(err), "h:1", "/m", "-o", "readahead=3X", NULL),
	    -EINVAL);
	mnt_opts_release(&o);
	CHECK_EQ(parse(&o, "caudal-mount", err, sizeof(err), "h:1", "/m", "-o", "ro=1", NULL),
		 -EINVAL);
	CHECK(strstr(err, "takes no value") != NULL);
	mnt_opts_release(&o);
	CHECK_EQ(parse(&o, "caudal-mount", err, sizeof(err), "h:1", "/m", "-o", "log", NULL),
		 -EINVAL);
	CHECK(strstr(err, "needs a value") != NULL);
	mnt_opts_release(&o);
	CHECK_EQ(parse(&o, "caudal-mount", err, sizeof(err), "h:1", "/m", "-o",
		       "io_timeout=2,rpc_timeout=5", NULL),
		 -EINVAL);
	mnt_opts_release(&o);
	CHECK_EQ(parse(&o, "caudal-mount", err, sizeof(err), "h:1", "/m", "extra", NULL), -EINVAL);
	mnt_opts_release(&o);
	CHECK_EQ(parse(&o, "caudal-mount", err, sizeof(err), "h:1", "/m", "-x", NULL), -EINVAL);
	mnt_opts_release(&o);
}

/* Root's mount lets other users in unless told noallow_other; another
 * user's mount does not unless told allow_other; the last word wins. */
static void test_allow_other(void)
{
	struct mnt_opts o;
	char err[256];
	parse_euid = 0;
	CHECK_EQ(parse(&o, "caudal-mount", err, sizeof(err), "h:1", "/m", NULL), 0);
	CHECK(o.allow_other);
	mnt_opts_release(&o);
	CHECK_EQ(
	    parse(&o, "caudal-mount", err, sizeof(err), "h:1", "/m", "-o", "noallow_other", NULL),
	    0);
	CHECK(!o.allow_other);
	CHECK(o.fuse_opts == NULL); /* ours, not handed to libfuse as is */
	mnt_opts_release(&o);
	CHECK_EQ(parse(&o, "mount.caudal", err, sizeof(err), "h:1", "/m", "-o",
		       "rw,noallow_other,allow_other", NULL),
		 0);
	CHECK(o.allow_other);
	mnt_opts_release(&o);
	CHECK_EQ(
	    parse(&o, "caudal-mount", err, sizeof(err), "h:1", "/m", "-o", "noallow_other=1", NULL),
	    -EINVAL);
	CHECK(strstr(err, "takes no value") != NULL);
	mnt_opts_release(&o);

	parse_euid = 4321;
	CHECK_EQ(parse(&o, "caudal-mount", err, sizeof(err), "h:1", "/m", NULL), 0);
	CHECK(!o.allow_other);
	mnt_opts_release(&o);
	CHECK_EQ(
	    parse(&o, "caudal-mount", err, sizeof(err), "h:1", "/m", "-o", "allow_other", NULL), 0);
	CHECK(o.allow_other);
	mnt_opts_release(&o);
	CHECK_EQ(parse(&o, "caudal-mount", err, sizeof(err), "h:1", "/m", "-o",
		       "allow_other,noallow_other", NULL),
		 0);
	CHECK(!o.allow_other);
	mnt_opts_release(&o);
	parse_euid = 1000;
}

static void test_numbers(void)
{
	size_t b;
	double s;
	CHECK(mnt_parse_bytes("4096", &b) == 0 && b == 4096);
	CHECK(mnt_parse_bytes("4k", &b) == 0 && b == 4096);
	CHECK(mnt_parse_bytes("1MiB", &b) == 0 && b == 1048576);
	CHECK(mnt_parse_bytes("2G", &b) == 0 && b == 2147483648u);
	CHECK(mnt_parse_bytes("", &b) == -EINVAL);
	CHECK(mnt_parse_bytes("-1", &b) == -EINVAL);
	CHECK(mnt_parse_bytes("1Mx", &b) == -EINVAL);
	CHECK(mnt_parse_seconds("0.25", &s) == 0 && s == 0.25);
	CHECK(mnt_parse_seconds("0", &s) == 0 && s == 0);
	CHECK(mnt_parse_seconds("1s", &s) == -EINVAL);
	CHECK(mnt_parse_seconds("nan", &s) == -EINVAL);
}

int main(void)
{
	cdl_log_init("test", CDL_LOG_ERROR);
	test_defaults();
	test_options();
	test_helper_conventions();
	test_errors();
	test_allow_other();
	test_numbers();
	return TEST_DONE();
}
