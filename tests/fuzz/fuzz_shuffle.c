/* libFuzzer harness for the shuffle server (jobs/job_shuffle.c
 * job_shuffle_serve_fd) and its reply parser (job_shuffle_fetch_fd): the
 * first byte chooses which; the rest is what the peer sends, over a
 * socketpair. The server has one job with a key and a map output. */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "job_shuffle.h"
#include "job_sort.h"

static char jobs[64];
static uint8_t key[JOB_SHUFFLE_KEY_LEN];

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
	char root[] = "/tmp/fuzz_shuffle.XXXXXX";
	if (!mkdtemp(root))
		abort();
	snprintf(jobs, sizeof(jobs), "%s", root);
	char p[256];
	snprintf(p, sizeof(p), "%s/j1", jobs);
	mkdir(p, 0755);
	memset(key, 7, sizeof(key));
	job_shuffle_key_save(jobs, "j1", key, sizeof(key));
	snprintf(p, sizeof(p), "%s/j1/j1_m_00000_0", jobs);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/j1/j1_m_00000_0/file.out", jobs);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (write(fd, "0123456789", 10) != 10)
		abort();
	close(fd);
	job_index_entry e[2] = {{0, 4, 1, 0}, {4, 6, 1, 0}};
	snprintf(p, sizeof(p), "%s/j1/j1_m_00000_0/file.index", jobs);
	job_index_write(p, e, 2);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	static int init;
	if (!init) {
		setup();
		init = 1;
	}
	if (n < 1 || n > 60000)
		return 0;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return 0;
	int bufsz = 1 << 20;
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
	setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof(bufsz));
	if (n > 1 && write(sv[1], d + 1, n - 1) != (ssize_t)(n - 1)) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	shutdown(sv[1], SHUT_WR);
	if (d[0] & 1) {
		job_shuffle_serve_fd(jobs, sv[0]);
	} else {
		int out = open("/dev/null", O_WRONLY | O_CLOEXEC);
		uint64_t len, recs;
		char err[256];
		job_shuffle_fetch_fd(sv[0], "fuzz", "j1", "j1_m_00000_0", 1, key, sizeof(key), out,
				     1 << 16, &len, &recs, err, sizeof(err));
		close(out);
	}
	close(sv[0]);
	close(sv[1]);
	return 0;
}
