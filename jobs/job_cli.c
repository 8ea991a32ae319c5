/* job_cli: `caudal job ...`; see job_cli.h. */
#include "job_cli.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cdl_util.h"
#include "job_status.h"

void job_cli_usage(void)
{
	fprintf(stderr, "usage: caudal job list\n"
			"       caudal job status [-v] NAME\n"
			"       caudal job watch NAME\n"
			"       caudal job kill NAME\n");
}

/* A small file of Caudal, whole; -errno. */
static int slurp(cdl_client *c, const char *path, char **out, size_t *len)
{
	cdl_reader *r;
	int rc = cdl_reader_open_path(c, path, &r);
	if (rc)
		return rc;
	uint64_t size = cdl_reader_size(r);
	if (size > (16u << 20)) {
		cdl_reader_close(r);
		return -EFBIG;
	}
	char *b = xmalloc((size_t)size + 1);
	size_t got = 0;
	while (got < size) {
		ssize_t k = cdl_reader_pread(r, b + got, (size_t)size - got, got);
		if (k <= 0) {
			rc = k < 0 ? (int)k : -EIO;
			break;
		}
		got += (size_t)k;
	}
	cdl_reader_close(r);
	if (rc) {
		free(b);
		return rc;
	}
	b[got] = '\0';
	*out = b;
	*len = got;
	return 0;
}

static bool name_ok(const char *n)
{
	return n[0] && !strchr(n, '/') && strcmp(n, ".") && strcmp(n, "..") &&
	       strlen(n) <= CDL_NAME_MAX - 4;
}

static char *status_path(const char *jobs_dir, const char *name, const char *file)
{
	return xasprintf("%s/%s/%s", jobs_dir, name, file);
}

static int cmd_list(cdl_client *c, const char *jobs_dir)
{
	char *after = xstrdup("");
	int rc = 0, shown = 0;
	for (;;) {
		Caudal__Target tg = CAUDAL__TARGET__INIT;
		Caudal__ReaddirRequest req = CAUDAL__READDIR_REQUEST__INIT;
		tg.path = (char *)jobs_dir;
		req.target = &tg;
		req.after = after;
		req.limit = 1000;
		req.cred = cdl_client_cred(c);
		Caudal__ReaddirReply *rep;
		rc = cdl_client_call_err(c, CDL_NN_Readdir, &req.base, (ProtobufCMessage **)&rep);
		if (rc) {
			fprintf(stderr, "caudal: cannot list '%s': %s\n", jobs_dir, strerror(-rc));
			break;
		}
		for (size_t i = 0; i < rep->n_entries; i++) {
			const Caudal__Dirent *d = rep->entries[i];
			size_t n = strlen(d->name);
			if (d->attr && S_ISREG(d->attr->mode) && n > 4 &&
			    !strcmp(d->name + n - 4, ".job")) {
				/* a spec: show its job, or that it has none yet */
				char *name = xstrndup(d->name, n - 4);
				char *p = status_path(jobs_dir, name, "status");
				char *text;
				size_t len;
				char line[512];
				if (slurp(c, p, &text, &len) == 0) {
					job_status_summary(text, len, line, sizeof(line));
					free(text);
				} else {
					/* the name is the spec's: it may hold anything */
					char *e = job_escape(name, strlen(name));
					snprintf(line, sizeof(line), "%-16s %-9s (no status yet)",
						 e, "-");
					free(e);
				}
				printf("%s\n", line);
				shown++;
				free(p);
				free(name);
			} else if (d->attr && S_ISDIR(d->attr->mode)) {
				/* a job whose spec was removed: still list it */
				char *spec = xasprintf("%s/%s.job", jobs_dir, d->name);
				Caudal__Attr *a = NULL;
				bool has_spec = cdl_stat(c, spec, &a) == 0;
				if (a)
					protobuf_c_message_free_unpacked(&a->base, NULL);
				free(spec);
				char *p = status_path(jobs_dir, d->name, "status");
				char *text;
				size_t len;
				if (!has_spec && slurp(c, p, &text, &len) == 0) {
					char line[512];
					job_status_summary(text, len, line, sizeof(line));
					printf("%s  (spec removed)\n", line);
					free(text);
					shown++;
				}
				free(p);
			}
		}
		bool more = rep->more && rep->n_entries > 0;
		if (more) {
			free(after);
			after = xstrdup(rep->entries[rep->n_entries - 1]->name);
		}
		protobuf_c_message_free_unpacked(&rep->base, NULL);
		if (!more)
			break;
	}
	free(after);
	if (!rc && !shown)
		printf("no jobs in '%s'\n", jobs_dir);
	return rc ? 1 : 0;
}

/* 0 SUCCEEDED, 1 FAILED or KILLED, 3 not final; -errno. */
static int state_code(const char *text, size_t len)
{
	char *s = job_status_field(text, len, "state");
	int st = s ? job_state_parse(s) : -1;
	free(s);
	if (st == JOB_SUCCEEDED)
		return 0;
	if (st == JOB_FAILED || st == JOB_KILLED)
		return 1;
	return 3;
}

static int cmd_status(cdl_client *c, const char *jobs_dir, const char *name, bool verbose)
{
	char *p = status_path(jobs_dir, name, "status");
	char *text;
	size_t len;
	int rc = slurp(c, p, &text, &len);
	if (rc) {
		fprintf(stderr, "caudal: no status for job '%s' ('%s': %s)\n", name, p,
			strerror(-rc));
		free(p);
		return 1;
	}
	free(p);
	job_write_escaped(stdout, text, len);
	int code = state_code(text, len);
	free(text);
	if (verbose) {
		p = status_path(jobs_dir, name, "counters");
		if (slurp(c, p, &text, &len) == 0) {
			printf("\n");
			job_write_escaped(stdout, text, len);
			free(text);
		}
		free(p);
	}
	return code == 1 ? 1 : 0;
}

static void nap(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

static int cmd_watch(cdl_client *c, const char *jobs_dir, const char *name)
{
	char *p = status_path(jobs_dir, name, "status");
	bool tty = isatty(STDOUT_FILENO);
	char last[512] = "";
	int misses = 0;
	for (;;) {
		char *text;
		size_t len;
		int rc = slurp(c, p, &text, &len);
		if (rc) {
			/* replaced between lookup and read, or not written yet */
			if (++misses > 100) {
				fprintf(stderr, "caudal: no status for job '%s' ('%s': %s)\n", name,
					p, strerror(-rc));
				free(p);
				return 1;
			}
			nap(200);
			continue;
		}
		misses = 0;
		char line[512];
		job_status_summary(text, len, line, sizeof(line));
		int code = state_code(text, len);
		free(text);
		if (tty)
			printf("\r\033[K%s", line);
		else if (strcmp(line, last))
			printf("%s\n", line);
		fflush(stdout);
		snprintf(last, sizeof(last), "%s", line);
		if (code != 3) {
			if (tty)
				printf("\n");
			free(p);
			return code;
		}
		nap(500);
	}
}

static int cmd_kill(cdl_client *c, const char *jobs_dir, const char *name)
{
	char *spec = xasprintf("%s/%s.job", jobs_dir, name);
	int rc = cdl_delete(c, spec, false);
	if (rc) {
		fprintf(stderr, "caudal: cannot remove '%s': %s\n", spec, strerror(-rc));
		free(spec);
		return 1;
	}
	free(spec);
	/* the jobtracker sees the removal and ends the job */
	char *p = status_path(jobs_dir, name, "status");
	for (int i = 0; i < 100; i++) {
		char *text;
		size_t len;
		if (slurp(c, p, &text, &len) == 0) {
			char *s = job_status_field(text, len, "state");
			free(text);
			if (s && job_state_parse(s) >= 0 &&
			    job_state_final((enum job_state)job_state_parse(s))) {
				printf("job '%s': %s\n", name, s);
				free(s);
				free(p);
				return 0;
			}
			free(s);
		}
		nap(100);
	}
	printf("job '%s': spec removed; the jobtracker has not ended it yet\n", name);
	free(p);
	return 0;
}

int job_cli_main(cdl_client *c, const char *jobs_dir, int argc, char **argv)
{
	if (argc < 1) {
		job_cli_usage();
		return 2;
	}
	const char *cmd = argv[0];
	if (!strcmp(cmd, "list") && argc == 1)
		return cmd_list(c, jobs_dir);
	bool verbose = argc == 3 && !strcmp(cmd, "status") && !strcmp(argv[1], "-v");
	if (argc != 2 && !verbose) {
		job_cli_usage();
		return 2;
	}
	const char *name = argv[argc - 1];
	size_t n = strlen(name);
	char *base = n > 4 && !strcmp(name + n - 4, ".job") ? xstrndup(name, n - 4) : xstrdup(name);
	int rc = 2;
	if (!name_ok(base) || !job_name_ok(base)) {
		char *e = job_escape(name, n);
		fprintf(stderr, "caudal: bad job name '%s'\n", e);
		free(e);
	} else if (!strcmp(cmd, "status"))
		rc = cmd_status(c, jobs_dir, base, verbose);
	else if (!strcmp(cmd, "watch"))
		rc = cmd_watch(c, jobs_dir, base);
	else if (!strcmp(cmd, "kill"))
		rc = cmd_kill(c, jobs_dir, base);
	else
		job_cli_usage();
	free(base);
	return rc;
}
