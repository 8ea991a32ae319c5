/* A flood of long polls: for tests/e2e/sec_rpc.sh.
 *
 *   sec_longpoll NAMENODE N PATH
 *
 * With the identity the environment gives, opens N GetEvents long polls at
 * once (each waiting up to 5 s for an event that does not come), then,
 * while they wait, times GetAttr of PATH from a second client with the same
 * identity. Prints "refused R of N", "getattr MS ms" and exits 0 when the
 * GetAttr succeeded; the test judges the numbers. Built by the test with
 * the tree's libcaudal. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "caudal.pb-c.h"
#include "cdl_client.h"
#include "cdl_log.h"
#include "cdl_rpc.h"
#include "cdl_sec.h"
#include "cdl_util.h"

static cdl_client *flood;
static int refused;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static void *poll_main(void *arg)
{
	(void)arg;
	Caudal__EventsRequest rq = CAUDAL__EVENTS_REQUEST__INIT;
	rq.from_txid = UINT64_MAX / 2; /* nothing will come */
	rq.wait_ms = 5000;
	ProtobufCMessage *r = NULL;
	int rc = cdl_client_call(flood, CDL_NN_GetEvents, &rq.base, &r);
	if (r)
		protobuf_c_message_free_unpacked(r, NULL);
	if (rc < 0) {
		pthread_mutex_lock(&mu);
		refused++;
		pthread_mutex_unlock(&mu);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: sec_longpoll NAMENODE N PATH\n");
		return 2;
	}
	int n = atoi(argv[2]);
	if (n < 1 || n > 1000)
		return 2;
	cdl_log_init("longpoll", CDL_LOG_ERROR);
	char err[512];
	if (cdl_sec_client_init(getenv("CAUDAL_HOME"), NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	cdl_rpc_global_init();
	/* one attempt each: a refused long poll is not retried */
	cdl_client_opts o = {.namenode = argv[1], .io_timeout_ms = 25000, .rpc_timeout_ms = 25000};
	flood = cdl_client_new(&o);
	cdl_client_opts h = {.namenode = argv[1], .io_timeout_ms = 10000, .rpc_timeout_ms = 10000};
	cdl_client *honest = cdl_client_new(&h);
	if (!flood || !honest)
		return 1;
	pthread_t *th = xcalloc((size_t)n, sizeof(*th));
	for (int i = 0; i < n; i++)
		pthread_create(&th[i], NULL, poll_main, NULL);
	usleep(1500 * 1000); /* let them arrive and wait */
	int64_t t0 = cdl_now_ms();
	Caudal__Attr *a = NULL;
	int rc = cdl_stat(honest, argv[3], &a);
	int64_t ms = cdl_now_ms() - t0;
	if (a)
		protobuf_c_message_free_unpacked(&a->base, NULL);
	printf("getattr %lld ms\n", (long long)ms);
	fflush(stdout);
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	printf("refused %d of %d\n", refused, n);
	free(th);
	cdl_client_free(honest);
	cdl_client_free(flood);
	cdl_rpc_global_shutdown();
	return rc == 0 ? 0 : 1;
}
