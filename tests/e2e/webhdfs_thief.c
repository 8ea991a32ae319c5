/* Presents a WebHDFS ticket to the namenode itself: for
 * tests/e2e/webhdfs_abuse.sh.
 *
 *   webhdfs_thief NAMENODE TICKET_FILE PATH
 *
 * With the identity the environment gives (CAUDAL_CERT ...), stats PATH
 * through WebCall with the raw ticket bytes of TICKET_FILE, as a datanode
 * serving the redirect would, or as whoever captured the ticket. Prints
 * "ok" or the error's errno name and exits 0 either way (1 on a usage or
 * set-up error). Built by the test with the tree's libcaudal. */
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
	if (argc != 4) {
		fprintf(stderr, "usage: webhdfs_thief NAMENODE TICKET_FILE PATH\n");
		return 1;
	}
	cdl_log_init("thief", CDL_LOG_ERROR);
	char err[512];
	if (cdl_sec_client_init(getenv("CAUDAL_HOME"), NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	FILE *f = fopen(argv[2], "rb");
	static unsigned char tok[8192];
	size_t n = f ? fread(tok, 1, sizeof(tok), f) : 0;
	if (f)
		fclose(f);
	if (n == 0) {
		fprintf(stderr, "no ticket in '%s'\n", argv[2]);
		return 1;
	}
	cdl_rpc_global_init();
	cdl_client_opts o = {.namenode = argv[1], .io_timeout_ms = 5000, .rpc_timeout_ms = 5000};
	cdl_client *c = cdl_client_new(&o);
	if (!c)
		return 1;
	cdl_client_set_ticket(c, tok, n);
	Caudal__Attr *a = NULL;
	int rc = cdl_stat(c, argv[3], &a);
	if (rc == 0) {
		printf("ok\n");
		protobuf_c_message_free_unpacked(&a->base, NULL);
	} else {
		printf("%s\n", rc == -EACCES ? "EACCES" : strerror(-rc));
	}
	cdl_client_free(c);
	cdl_rpc_global_shutdown();
	return 0;
}
