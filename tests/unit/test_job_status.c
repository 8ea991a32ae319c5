/* Unit test of jobs/job_status: state names, reading fields back from a
 * status text, times, and the one-line summary `caudal job list` shows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job_status.h"

static int failures;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond) && failures++ < 20)                                                    \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
	} while (0)

int main(void)
{
	for (int s = JOB_PREP; s <= JOB_KILLED; s++)
		CHECK(job_state_parse(job_state_name((enum job_state)s)) == s);
	CHECK(job_state_parse("running") == -1 && job_state_parse("") == -1);
	CHECK(job_state_final(JOB_SUCCEEDED) && job_state_final(JOB_FAILED) &&
	      job_state_final(JOB_KILLED) && !job_state_final(JOB_RUNNING) &&
	      !job_state_final(JOB_QUEUED));

	const char *st = "job: wc\nstate: RUNNING\nmaps: 10\nmaps_done: 4\nreduces: 2\n"
			 "reduces_done: 0\nerror: -\nstderr: state: FAILED\nmaps_x: 1";
	size_t n = strlen(st);
	char *v = job_status_field(st, n, "state");
	CHECK(v && !strcmp(v, "RUNNING")); /* the first line only, not the stderr one */
	free(v);
	v = job_status_field(st, n, "maps");
	CHECK(v && !strcmp(v, "10"));
	free(v);
	v = job_status_field(st, n, "maps_x"); /* a last line without '\n' */
	CHECK(v && !strcmp(v, "1"));
	free(v);
	CHECK(job_status_field(st, n, "map") == NULL);
	CHECK(job_status_field(st, 5, "state") == NULL); /* bounded by len */

	char line[256];
	job_status_summary(st, n, line, sizeof(line));
	CHECK(strstr(line, "wc") && strstr(line, "RUNNING") &&
	      strstr(line, "maps 4/10 [####......]") && strstr(line, "reduces 0/2 [..........]") &&
	      !strstr(line, "error"));
	const char *failed = "job: bad\nstate: FAILED\nmaps: 0\nmaps_done: 0\nreduces: 1\n"
			     "reduces_done: 0\nerror: input '/x' does not exist\n";
	job_status_summary(failed, strlen(failed), line, sizeof(line));
	CHECK(strstr(line, "maps 0/0 [..........]") && strstr(line, "error: input '/x'"));
	const char *empty = "job: e\nstate: SUCCEEDED\nmaps: 0\nmaps_done: 0\nreduces: 0\n";
	job_status_summary(empty, strlen(empty), line, sizeof(line));
	CHECK(strstr(line, "maps 0/0 [##########]"));
	job_status_summary("garbage", 7, line, sizeof(line));
	CHECK(strstr(line, "?") != NULL);

	/* names and escaping: a name cannot forge a line */
	CHECK(job_name_ok("wc") && job_name_ok("a b.c-d") && job_name_ok("\xc3\xa9t\xc3\xa9"));
	CHECK(!job_name_ok("") && !job_name_ok("x\nwc  SUCCEEDED") && !job_name_ok("a\tb") &&
	      !job_name_ok("a\x7f") && !job_name_ok("\x1b[2J") && !job_name_ok("a\rb"));
	char longname[300];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	CHECK(!job_name_ok(longname));
	const char *raw = "x\nstate: SUCCEEDED\r\t\x1b\x7f\\ok";
	char *e = job_escape(raw, strlen(raw));
	CHECK(!strcmp(e, "x\\nstate: SUCCEEDED\\r\\t\\x1b\\x7f\\ok"));
	CHECK(!strchr(e, '\n'));
	free(e);
	const char *forged = "job: x\nstate: SUCCEEDED\x1b[2J\nstate: FAILED\nmaps: 1\nmaps_done: "
			     "0\nreduces: 0\nreduces_done: 0\nerror: a\rstate: SUCCEEDED\n";
	job_status_summary(forged, strlen(forged), line, sizeof(line));
	CHECK(!strchr(line, '\n') && !strchr(line, '\r') && !strchr(line, '\x1b'));
	CHECK(strstr(line, "a\\rstate: SUCCEEDED") != NULL);
	char *buf = NULL;
	size_t blen = 0;
	FILE *f = open_memstream(&buf, &blen);
	const char *st2 = "a: 1\nb: \x1b[31mred\r\n";
	job_write_escaped(f, st2, strlen(st2));
	fclose(f);
	CHECK(!strcmp(buf, "a: 1\nb: \\x1b[31mred\\r\n"));
	free(buf);

	char t[40];
	job_fmt_time(0, t, sizeof(t));
	CHECK(!strcmp(t, "-"));
	job_fmt_time(1700000000123456789LL, t, sizeof(t));
	CHECK(!strcmp(t, "2023-11-14T22:13:20.123Z"));

	if (failures) {
		fprintf(stderr, "test_job_status: %d failures\n", failures);
		return 1;
	}
	printf("test_job_status: ok\n");
	return 0;
}
