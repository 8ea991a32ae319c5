/* A writer that keeps going past its block: for tests/e2e/sec_data.sh.
 *
 *   sec_data_writer NAMENODE PATH BYTES
 *
 * Creates PATH, asks the namenode for its first block (AddBlock: a real
 * pipeline and a real write token, as any user may get for a file it
 * creates) and then pushes BYTES into that one block through the pipeline,
 * more than the block size. Prints "acked N" (bytes every datanode stored)
 * and "rc R" (the writer's last result) and exits 0; the test checks that
 * the datanodes cut it off at the block size. Built by the test with the
 * tree's libcaudal. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caudal.pb-c.h"
#include "cdl_client.h"
#include "cdl_dt.h"
#include "cdl_log.h"
#include "cdl_rpc.h"
#include "cdl_sec.h"
#include "cdl_util.h"

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: sec_data_writer NAMENODE PATH BYTES\n");
		return 2;
	}
	cdl_log_init("writer", CDL_LOG_WARN);
	/* the identity any client has: the state folder's admin certificate */
	char err[512];
	if (cdl_sec_client_init(getenv("CAUDAL_HOME"), NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	cdl_rpc_global_init();
	cdl_client_opts o = {.namenode = argv[1], .io_timeout_ms = 20000, .rpc_timeout_ms = 10000};
	cdl_client *c = cdl_client_new(&o);
	if (!c)
		return 1;
	uint64_t want = strtoull(argv[3], NULL, 0);

	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = argv[2];
	Caudal__CreateRequest cr = CAUDAL__CREATE_REQUEST__INIT;
	cr.target = &t;
	cr.mode = 0644;
	cr.client = (char *)cdl_client_name(c);
	cr.cred = cdl_client_cred(c);
	Caudal__AttrReply *ar;
	int rc = cdl_client_call_err(c, CDL_NN_Create, &cr.base, (ProtobufCMessage **)&ar);
	if (rc) {
		fprintf(stderr, "cannot create '%s': %s\n", argv[2], strerror(-rc));
		return 1;
	}
	uint64_t ino = ar->attr->ino;
	printf("block_size %" PRIu64 "\n", ar->attr->block_size);
	protobuf_c_message_free_unpacked(&ar->base, NULL);

	Caudal__AddBlockRequest ab = CAUDAL__ADD_BLOCK_REQUEST__INIT;
	ab.ino = ino;
	ab.client = (char *)cdl_client_name(c);
	ab.client_host = "127.0.0.1";
	Caudal__AddBlockReply *br;
	rc = cdl_client_call_err(c, CDL_NN_AddBlock, &ab.base, (ProtobufCMessage **)&br);
	if (rc || !br->block || !br->block->n_locs) {
		fprintf(stderr, "cannot add a block: %s\n", strerror(rc ? -rc : EIO));
		return 1;
	}
	Caudal__LocatedBlock *b = br->block;
	Caudal__DtTarget tg[CDL_DT_MAX_TARGETS];
	const Caudal__DtTarget *tp[CDL_DT_MAX_TARGETS];
	size_t n = b->n_locs < CDL_DT_MAX_TARGETS ? b->n_locs : CDL_DT_MAX_TARGETS;
	for (size_t i = 0; i < n; i++) {
		caudal__dt_target__init(&tg[i]);
		tg[i].host = b->locs[i]->host;
		tg[i].port = b->locs[i]->data_port;
		tg[i].id = b->locs[i]->id;
		tp[i] = &tg[i];
	}
	cdl_block_writer *w;
	rc = cdl_block_writer_open(tp, n, b->id, b->gen, &b->token, "sec_data_writer", 20000, &w);
	if (rc) {
		fprintf(stderr, "cannot open the pipeline: %s\n", strerror(-rc));
		return 1;
	}
	printf("block %" PRIu64 " gen %" PRIu64 "\n", b->id, b->gen);
	size_t chunk = 1 << 20;
	uint8_t *buf = xcalloc(1, chunk);
	uint64_t sent = 0;
	while (sent < want && rc == 0) {
		size_t k = want - sent < chunk ? (size_t)(want - sent) : chunk;
		memset(buf, (int)(sent >> 20), k);
		rc = cdl_block_writer_write(w, buf, k);
		if (rc == 0)
			sent += k;
	}
	uint64_t len = 0;
	if (rc == 0)
		rc = cdl_block_writer_finish(w, false, &len);
	printf("acked %" PRIu64 "\nrc %d\n", cdl_block_writer_acked(w), rc);
	cdl_block_writer_abort(w);
	free(buf);
	protobuf_c_message_free_unpacked(&br->base, NULL);
	cdl_client_free(c);
	return 0;
}
