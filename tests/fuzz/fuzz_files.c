/* libFuzzer: the namenode's exports file and topology file. The first byte
 * chooses which; the rest is the file. Loading must succeed or fail with a
 * message, never crash, and a loaded exports file must match any peer. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn_exports.h"
#include "nn_place.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	char path[] = "/tmp/caudal-fuzz-files-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		return 0;
	if (size > 1 && write(fd, data + 1, size - 1) != (ssize_t)(size - 1))
		abort();
	close(fd);
	char err[512] = "";
	if (data[0] & 1) {
		nn_exports *e = NULL;
		int rc = nn_exports_load(path, &e, err, sizeof(err));
		if (rc < 0 && (!err[0] || e))
			abort();
		if (rc == 0) {
			const cdl_peer peers[] = {
			    {CDL_ROLE_MOUNT, "127.0.0.1", "127.0.0.1"},
			    {CDL_ROLE_TASKTRACKER, "10.1.2.3", "10.1.2.3"},
			    {CDL_ROLE_MOUNT, "x", "fd00::1"},
			    {CDL_ROLE_MOUNT, "", ""},
			};
			for (size_t i = 0; i < sizeof(peers) / sizeof(peers[0]); i++)
				(void)nn_exports_match(e, &peers[i]);
			nn_exports_free(e);
		}
	} else {
		nn_topology *t = NULL;
		int rc = nn_topology_load(path, &t, err, sizeof(err));
		if (rc == 0) {
			(void)nn_topology_rack(t, "127.0.0.2");
			nn_topology_free(t);
		}
	}
	unlink(path);
	return 0;
}
