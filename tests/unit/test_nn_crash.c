/* The namenode's failure paths (issue 8): what a failed commit, a failed
 * WAL sync or a crash between commit and sync may and may not leave
 * behind. Each test drives a namespace on a temporary RocksDB through the
 * real RPC layer and makes the metadata store fail on purpose
 * (nn_store_inject), then checks that the block map, the records and the
 * counters still agree and that nothing not yet durable was acted on. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "caudal.pb-c.h"
#include "cdl_log.h"
#include "cdl_rpc.h"
#include "cdl_util.h"
#include "nn_ns.h"
#include "test.h"

static char dir[] = "/tmp/caudal-test-nncrash-XXXXXX";

/* A fresh, empty metadata folder for the next start(). */
static void wipe(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir %s", dir, dir);
	CHECK_EQ(system(cmd), 0);
}

/* Defect E: a failed WAL sync stops the namenode in both sync modes, so
 * that nothing more is acknowledged. Run in a child process, which must
 * exit with status 1 within a few seconds. */
static void sync_fails_in_child(bool sync_always)
{
	pid_t pid = fork();
	if (pid == 0) {
		cdl_log_init("child", CDL_LOG_ERROR);
		wipe();
		nn_store *s;
		if (nn_store_open(dir, sync_always, 5, &s) < 0)
			_exit(3);
		nn_store_inject(s, NN_STORE_SYNC, -EIO, 1);
		nn_batch *b = nn_batch_new();
		nn_batch_put(b, "k", 1, "v", 1);
		if (nn_store_write(s, b) < 0)
			_exit(3);
		nn_batch_free(b);
		if (sync_always)
			nn_store_sync(s);
		else
			sleep(3); /* some 600 flusher rounds */
		_exit(0);     /* went on after the failure */
	}
	int st = 0;
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
	CHECK(WIFEXITED(st));
	CHECK_EQ(WEXITSTATUS(st), 1);
}

static void test_sync_failure_stops(void)
{
	sync_fails_in_child(true);
	sync_fails_in_child(false);
}

int main(void)
{
	cdl_log_init("test", CDL_LOG_WARN);
	CHECK(mkdtemp(dir) != NULL);
	/* children first: they must not inherit gRPC's threads */
	test_sync_failure_stops();

	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK_EQ(system(cmd), 0);
	return TEST_DONE();
}
