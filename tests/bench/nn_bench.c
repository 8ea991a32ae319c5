/* nn_bench: namenode operations per second through the client library.
 *   nn_bench NAMENODE DIR [THREADS] [OPS_PER_THREAD]
 * Creates (and completes) files under DIR, then stats them, then asks for
 * their block locations, each phase from THREADS threads sharing one
 * client; prints one "op<TAB>ops/s" line per phase. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cdl_client.h"
#include "cdl_log.h"
#include "cdl_rpc.h"
#include "cdl_sec.h"
#include "cdl_util.h"

static cdl_client *cl;
static const char *dir;
static int nops;
static int phase;
static long failures;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static void *worker(void *arg)
{
	int t = (int)(intptr_t)arg;
	char path[512];
	for (int i = 0; i < nops; i++) {
		snprintf(path, sizeof(path), "%s/t%d-f%d", dir, t, i);
		Caudal__Target tg = CAUDAL__TARGET__INIT;
		tg.path = path;
		ProtobufCMessage *r = NULL;
		int rc;
		if (phase == 0) {
			Caudal__CreateRequest q = CAUDAL__CREATE_REQUEST__INIT;
			q.target = &tg;
			q.mode = 0644;
			q.client = (char *)cdl_client_name(cl);
			q.cred = cdl_client_cred(cl);
			rc = cdl_client_call_err(cl, CDL_NN_Create, &q.base, &r);
			if (rc == 0) {
				Caudal__CompleteRequest cq = CAUDAL__COMPLETE_REQUEST__INIT;
				cq.ino = ((Caudal__AttrReply *)r)->attr->ino;
				cq.client = q.client;
				protobuf_c_message_free_unpacked(r, NULL);
				r = NULL;
				rc = cdl_client_call_err(cl, CDL_NN_Complete, &cq.base, &r);
			}
		} else if (phase == 1) {
			Caudal__GetAttrRequest q = CAUDAL__GET_ATTR_REQUEST__INIT;
			q.target = &tg;
			q.cred = cdl_client_cred(cl);
			rc = cdl_client_call_err(cl, CDL_NN_GetAttr, &q.base, &r);
		} else {
			Caudal__GetBlocksRequest q = CAUDAL__GET_BLOCKS_REQUEST__INIT;
			q.target = &tg;
			q.cred = cdl_client_cred(cl);
			q.client_host = (char *)cdl_client_host(cl);
			rc = cdl_client_call_err(cl, CDL_NN_GetBlocks, &q.base, &r);
		}
		if (r)
			protobuf_c_message_free_unpacked(r, NULL);
		if (rc < 0) {
			pthread_mutex_lock(&mu);
			failures++;
			pthread_mutex_unlock(&mu);
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: nn_bench NAMENODE DIR [THREADS] [OPS_PER_THREAD]\n");
		return 2;
	}
	int nthreads = argc > 3 ? atoi(argv[3]) : 4;
	nops = argc > 4 ? atoi(argv[4]) : 2000;
	if (nthreads < 1 || nthreads > 256 || nops < 1) {
		fprintf(stderr, "nn_bench: bad thread or op count\n");
		return 2;
	}
	dir = argv[2];
	cdl_log_init("nn_bench", CDL_LOG_WARN);
	char err[512];
	if (cdl_sec_client_init(getenv("CAUDAL_HOME"), NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "nn_bench: %s\n", err);
		return 1;
	}
	cdl_rpc_global_init();
	cdl_client_opts o = {.namenode = argv[1]};
	cl = cdl_client_new(&o);
	if (!cl)
		return 1;
	int rc = cdl_mkdir(cl, dir, 0755, true);
	if (rc < 0) {
		fprintf(stderr, "nn_bench: cannot create '%s': %s\n", dir, strerror(-rc));
		return 1;
	}
	static const char *const names[] = {"create", "getattr", "getblocklocations"};
	for (phase = 0; phase < 3; phase++) {
		pthread_t th[256];
		int64_t t0 = cdl_now_ns();
		for (int t = 0; t < nthreads; t++)
			pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t);
		for (int t = 0; t < nthreads; t++)
			pthread_join(th[t], NULL);
		double s = (double)(cdl_now_ns() - t0) / 1e9;
		printf("%s\t%.0f\n", names[phase], (double)nthreads * nops / s);
		fflush(stdout);
	}
	cdl_client_free(cl);
	cdl_rpc_global_shutdown();
	if (failures)
		fprintf(stderr, "nn_bench: %ld operations failed\n", failures);
	return failures ? 1 : 0;
}
