/* Reports every replica of a file bad: for tests/e2e/sec_rpc.sh.
 *
 *   sec_report_bad NAMENODE PATH
 *
 * With the identity the environment gives (CAUDAL_CERT ...), asks for the
 * blocks of PATH and sends ReportBad for each replica of each, as a user
 * who wants the file gone would. Prints "reported N" and exits 0 when
 * every report got an answer (the namenode decides what it is worth).
 * Built by the test with the tree's libcaudal. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caudal.pb-c.h"
#include "cdl_client.h"
#include "cdl_log.h"
#include "cdl_rpc.h"
#include "cdl_sec.h"

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: sec_report_bad NAMENODE PATH\n");
		return 2;
	}
	cdl_log_init("report-bad", CDL_LOG_ERROR);
	char err[512];
	if (cdl_sec_client_init(getenv("CAUDAL_HOME"), NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	cdl_rpc_global_init();
	cdl_client_opts o = {.namenode = argv[1], .io_timeout_ms = 5000, .rpc_timeout_ms = 5000};
	cdl_client *c = cdl_client_new(&o);
	if (!c)
		return 1;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = argv[2];
	Caudal__GetBlocksRequest gq = CAUDAL__GET_BLOCKS_REQUEST__INIT;
	gq.target = &t;
	Caudal__GetBlocksReply *gr = NULL;
	int rc = cdl_client_call_err(c, CDL_NN_GetBlocks, &gq.base, (ProtobufCMessage **)&gr);
	if (rc) {
		fprintf(stderr, "cannot get the blocks of '%s': %s\n", argv[2], strerror(-rc));
		return 1;
	}
	int n = 0;
	for (size_t i = 0; i < gr->n_blocks; i++)
		for (size_t j = 0; j < gr->blocks[i]->n_locs; j++) {
			Caudal__ReportBadRequest rq = CAUDAL__REPORT_BAD_REQUEST__INIT;
			rq.block = gr->blocks[i]->id;
			rq.datanode = gr->blocks[i]->locs[j]->id;
			ProtobufCMessage *r = NULL;
			rc = cdl_client_call(c, CDL_NN_ReportBad, &rq.base, &r);
			if (rc) {
				fprintf(stderr, "ReportBad: %s\n", strerror(-rc));
				return 1;
			}
			protobuf_c_message_free_unpacked(r, NULL);
			n++;
		}
	printf("reported %d\n", n);
	protobuf_c_message_free_unpacked(&gr->base, NULL);
	cdl_client_free(c);
	cdl_rpc_global_shutdown();
	return 0;
}
