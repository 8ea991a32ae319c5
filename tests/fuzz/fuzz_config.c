/* libFuzzer: config files. Loading must apply or refuse with a message
 * naming the line, never crash. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cdl_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int64_t port;
static char *name;
static bool flag;
static const cdl_cfg_key keys[] = {
	{"port", CDL_CFG_INT, &port, "9000", 1, 65535, "port"},
	{"name", CDL_CFG_STR, &name, "x", 0, 0, "name"},
	{"flag", CDL_CFG_BOOL, &flag, "false", 0, 0, "flag"},
	{NULL, 0, NULL, NULL, 0, 0, NULL},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[] = "/tmp/caudal-fuzz-cfg-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		return 0;
	if (size && write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);
	cdl_config_defaults(keys);
	char err[512];
	err[0] = '\0';
	int rc = cdl_config_load(keys, path, "me", err, sizeof(err));
	if (rc < 0 && !err[0])
		abort();
	if (port < 1 || port > 65535)
		abort(); /* bounds hold whatever the file says */
	cdl_config_release(keys);
	unlink(path);
	return 0;
}
