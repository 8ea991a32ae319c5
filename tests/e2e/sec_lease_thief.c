/* A lease thief: for tests/e2e/sec_rpc.sh.
 *
 *   sec_lease_thief NAMENODE CERTDIR PATH
 *
 * The victim (the admin certificate of CERTDIR) creates PATH and holds its
 * lease under the client name "victim-writer". The thief (the user
 * certificate CERTDIR/users/nobody.*) knows that name, as anyone who can
 * guess a host and a pid does, and tries to add a block to the file,
 * complete it, and truncate it under that name. Each must be refused; then
 * the victim completes its file. Prints one line per step and exits 0
 * only when every step went as it should. Built by the test with the
 * tree's libcaudal. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caudal.pb-c.h"
#include "cdl_client.h"
#include "cdl_log.h"
#include "cdl_rpc.h"
#include "cdl_sec.h"
#include "cdl_util.h"

static int failed;

static void expect(const char *what, int rc, bool ok_wanted)
{
	bool good = ok_wanted ? rc == 0 : rc != 0;
	printf("%s: %s: %s\n", good ? "ok" : "WRONG", what, rc ? strerror(-rc) : "done");
	if (!good)
		failed = 1;
}

static cdl_client *as(const char *ns, const char *dir, const char *crt, const char *key)
{
	char *ca = xasprintf("%s/ca.crt", dir), *c = xasprintf("%s/%s", dir, crt),
	     *k = xasprintf("%s/%s", dir, key);
	int rc = cdl_sec_use(ca, c, k);
	free(ca);
	free(c);
	free(k);
	if (rc < 0)
		exit(1);
	cdl_client_opts o = {.namenode = ns, .io_timeout_ms = 5000, .rpc_timeout_ms = 5000};
	o.name = "victim-writer";
	return cdl_client_new(&o);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: sec_lease_thief NAMENODE CERTDIR PATH\n");
		return 2;
	}
	cdl_log_init("thief", CDL_LOG_ERROR);
	cdl_rpc_global_init();
	cdl_client *victim = as(argv[1], argv[2], "admin.crt", "admin.key");
	cdl_client *thief = as(argv[1], argv[2], "users/nobody.crt", "users/nobody.key");
	if (!victim || !thief)
		return 1;

	Caudal__Attr *attr = NULL;
	int rc = cdl_create(victim, argv[3], 0644, 0, 0, true, &attr);
	expect("the victim creates the file", rc, true);
	if (rc)
		return 1;
	uint64_t ino = attr->ino;
	protobuf_c_message_free_unpacked(&attr->base, NULL);

	Caudal__AddBlockRequest ab = CAUDAL__ADD_BLOCK_REQUEST__INIT;
	ab.ino = ino;
	ab.client = "victim-writer";
	ab.client_host = "127.0.0.1";
	ProtobufCMessage *r = NULL;
	rc = cdl_client_call_err(thief, CDL_NN_AddBlock, &ab.base, &r);
	expect("the thief adds a block under the victim's name", rc, false);
	if (r)
		protobuf_c_message_free_unpacked(r, NULL);

	Caudal__CompleteRequest cq = CAUDAL__COMPLETE_REQUEST__INIT;
	cq.ino = ino;
	cq.client = "victim-writer";
	r = NULL;
	rc = cdl_client_call_err(thief, CDL_NN_Complete, &cq.base, &r);
	expect("the thief completes the victim's file", rc, false);
	if (r)
		protobuf_c_message_free_unpacked(r, NULL);

	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.ino = ino;
	Caudal__SetAttrRequest sa = CAUDAL__SET_ATTR_REQUEST__INIT;
	sa.target = &t;
	sa.valid = CAUDAL__SET_ATTR_FIELD__SA_SIZE;
	sa.size = 0;
	sa.client = "victim-writer";
	r = NULL;
	rc = cdl_client_call_err(thief, CDL_NN_SetAttr, &sa.base, &r);
	expect("the thief truncates the victim's file", rc, false);
	if (r)
		protobuf_c_message_free_unpacked(r, NULL);

	r = NULL;
	rc = cdl_client_call_err(victim, CDL_NN_Complete, &cq.base, &r);
	expect("the victim completes its file", rc, true);
	if (r)
		protobuf_c_message_free_unpacked(r, NULL);

	cdl_client_free(thief);
	cdl_client_free(victim);
	cdl_rpc_global_shutdown();
	return failed;
}
