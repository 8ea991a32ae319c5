/* A writer for core_lease_recover.sh: creates PATH (replication 3),
 * writes the first NSYNC bytes of LOCAL and hsyncs them, prints "synced N",
 * then waits for a line on stdin (the test stops it with SIGSTOP meanwhile
 * and lets its lease expire). Then it writes the rest of LOCAL, hsyncs and
 * closes, printing "write|sync|close: ok" or "...: err ERRNO MESSAGE" for
 * each step, and exits 0 only if all of them succeeded.
 *
 *   core_lease_writer NAMENODE PATH LOCAL NSYNC
 *
 * With the identity $CAUDAL_HOME gives. Built by the test (build_tool). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "caudal.pb-c.h"
#include "cdl_client.h"
#include "cdl_log.h"
#include "cdl_rpc.h"
#include "cdl_sec.h"

static void say(const char *what, int rc)
{
	if (rc == 0)
		printf("%s: ok\n", what);
	else
		printf("%s: err %d %s\n", what, -rc, strerror(-rc));
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: core_lease_writer NAMENODE PATH LOCAL NSYNC\n");
		return 2;
	}
	cdl_log_init("lease-writer", CDL_LOG_ERROR);
	char err[512];
	if (cdl_sec_client_init(getenv("CAUDAL_HOME"), NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	cdl_rpc_global_init();
	setvbuf(stdout, NULL, _IOLBF, 0);
	cdl_client_opts o = {.namenode = argv[1],
			     .io_timeout_ms = 5000,
			     .rpc_timeout_ms = 2000,
			     .lease_renew_ms = 300};
	cdl_client *cl = cdl_client_new(&o);
	if (!cl)
		return 1;
	int fd = open(argv[3], O_RDONLY);
	if (fd < 0) {
		perror(argv[3]);
		return 1;
	}
	size_t nsync = strtoull(argv[4], NULL, 10);
	static char buf[4 << 20];
	ssize_t got = read(fd, buf, sizeof(buf));
	close(fd);
	if (got < 0 || (size_t)got < nsync) {
		fprintf(stderr, "%s: shorter than %zu bytes\n", argv[3], nsync);
		return 1;
	}
	Caudal__Attr *attr;
	int rc = cdl_create(cl, argv[2], 0644, 3, 0, false, &attr);
	cdl_writer *w = NULL;
	if (rc == 0) {
		rc = cdl_writer_open(cl, attr, &w);
		protobuf_c_message_free_unpacked(&attr->base, NULL);
	}
	if (rc == 0)
		rc = cdl_writer_write(w, buf, nsync);
	if (rc == 0)
		rc = cdl_writer_sync(w);
	if (rc < 0) {
		say("first write", rc);
		return 1;
	}
	printf("synced %zu\n", nsync);
	char line[64];
	if (!fgets(line, sizeof(line), stdin))
		return 1;
	int wrc = cdl_writer_write(w, buf + nsync, (size_t)got - nsync);
	say("write", wrc);
	int src = wrc ? wrc : cdl_writer_sync(w);
	say("sync", src);
	int crc = cdl_writer_close(w);
	say("close", crc);
	cdl_client_free(cl);
	cdl_rpc_global_shutdown();
	return wrc || src || crc ? 1 : 0;
}
