/* libFuzzer: text that arrives from elsewhere. The first byte chooses:
 * the mount's command line and -o options (split at NUL bytes; a mount is
 * started by mount(8) with options from fstab), or a job status file as
 * `caudal job` reads it from the cluster (fields, summary, escaping). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job_status.h"
#include "mnt_opts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void mount_args(uint8_t how, const uint8_t *d, size_t n)
{
	char *buf = malloc(n + 1);
	memcpy(buf, d, n);
	buf[n] = '\0';
	char *argv[34];
	int argc = 0;
	argv[argc++] = "caudal-mount";
	for (char *p = buf; p < buf + n && argc < 33; p += strlen(p) + 1)
		argv[argc++] = p;
	argv[argc] = NULL;
	struct mnt_opts o;
	char err[512] = "";
	int rc = mnt_opts_parse(&o, (how & 2) ? "mount.caudal" : "caudal-mount", how & 4 ? 0 : 1000,
				argc, argv, err, sizeof(err));
	if (rc < 0 && !err[0])
		abort();
	if (rc == 0 && (o.io_timeout_ms <= 0 || o.rpc_timeout_ms > o.io_timeout_ms))
		abort(); /* bounds hold whatever the options say */
	mnt_opts_release(&o);
	free(buf);
}

static void status_text(const uint8_t *d, size_t n)
{
	const char *t = (const char *)d;
	char *v = job_status_field(t, n, "state");
	free(v);
	v = job_status_field(t, n, "error");
	free(v);
	char line[256];
	job_status_summary(t, n, line, sizeof(line));
	for (const char *p = line; *p; p++)
		if ((unsigned char)*p < 0x20)
			abort(); /* a summary line never carries a control byte */
	char *e = job_escape(t, n);
	free(e);
	FILE *f = fopen("/dev/null", "w");
	job_write_escaped(f, t, n);
	fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 65536)
		return 0;
	if (data[0] & 1)
		mount_args(data[0], data + 1, size - 1);
	else
		status_text(data + 1, size - 1);
	return 0;
}
