/* Unit test of jobs/job_spec: good specs parse to the right values; each
 * kind of bad spec fails with a message naming the line and the problem. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job_spec.h"

static int failures;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
			failures++;                                                                \
		}                                                                                  \
	} while (0)

static int parse(const char *text, job_spec *s, char *err, size_t errlen)
{
	return job_spec_parse(text, strlen(text), s, err, errlen);
}

/* A bad spec must fail with -EINVAL (or want_rc) and a message containing
 * every fragment given. */
static void bad(const char *text, size_t len, int want_rc, const char *frag1, const char *frag2)
{
	job_spec s;
	char err[256] = "";
	int rc = job_spec_parse(text, len, &s, err, sizeof(err));
	if (rc != want_rc || (frag1 && !strstr(err, frag1)) || (frag2 && !strstr(err, frag2))) {
		fprintf(stderr, "bad spec: rc %d (want %d), message '%s' (want '%s' and '%s')\n",
			rc, want_rc, err, frag1 ? frag1 : "", frag2 ? frag2 : "");
		failures++;
	}
	job_spec_release(&s);
}

static void bads(const char *text, const char *frag1, const char *frag2)
{
	bad(text, strlen(text), -EINVAL, frag1, frag2);
}

static void test_good(void)
{
	job_spec s;
	char err[256] = "";
	const char *wc = "# /jobs/wc.job\n"
			 "# input: a file or a directory\n"
			 "input    = /data/books\n"
			 "  # output must not exist yet\n"
			 "output   = /out/wc\n"
			 "\n"
			 "map      = wordcount\n"
			 "reduce   = sum\n"
			 "combine  = sum\n"
			 "reduces  = 2\n"
			 "files    = /apps/mapper.py\n";
	CHECK(parse(wc, &s, err, sizeof(err)) == 0);
	CHECK(s.ninputs == 1 && strcmp(s.inputs[0], "/data/books") == 0);
	CHECK(strcmp(s.output, "/out/wc") == 0);
	CHECK(strcmp(s.map, "wordcount") == 0);
	CHECK(strcmp(s.reduce, "sum") == 0);
	CHECK(s.combine && strcmp(s.combine, "sum") == 0);
	CHECK(s.reduces == 2);
	CHECK(s.nfiles == 1 && strcmp(s.files[0], "/apps/mapper.py") == 0);
	CHECK(s.pattern == NULL);
	job_spec_release(&s);

	/* Values are verbatim: '#', ';', quotes and '=' stay; CRLF endings,
	 * several inputs, defaults for reduce and reduces, no final newline. */
	const char *st = "input = /a, /b/c ,/d\r\n"
			 "output=/o\r\n"
			 "map = exec: awk -F= '{print $1 \"\\t\" 1}' # not a comment; x=1\r\n"
			 "files = /x/m.py,/y/r.sh";
	CHECK(parse(st, &s, err, sizeof(err)) == 0);
	CHECK(s.ninputs == 3 && strcmp(s.inputs[1], "/b/c") == 0 && strcmp(s.inputs[2], "/d") == 0);
	CHECK(strcmp(s.map, "exec: awk -F= '{print $1 \"\\t\" 1}' # not a comment; x=1") == 0);
	CHECK(strcmp(s.reduce, "identity") == 0 && s.combine == NULL && s.reduces == 1);
	CHECK(s.nfiles == 2 && strcmp(s.files[1], "/y/r.sh") == 0);
	job_spec_release(&s);

	CHECK(parse("input=/i\noutput=/o\nmap=grep\npattern=^[a-z]+ing$\nreduces=0\n", &s, err,
		    sizeof(err)) == 0);
	CHECK(s.reduces == 0 && strcmp(s.pattern, "^[a-z]+ing$") == 0);
	job_spec_release(&s);

	CHECK(parse("input=/i\noutput=/o\nmap=identity\nreduce=count\nreduces=10000\n", &s, err,
		    sizeof(err)) == 0);
	CHECK(s.reduces == 10000);
	job_spec_release(&s);

	job_op op;
	const char *why;
	CHECK(job_op_parse("exec:   sort -u", JOB_ROLE_REDUCE, &op, &why) == 0);
	CHECK(op.kind == JOB_OP_EXEC && strcmp(op.cmd, "sort -u") == 0);
	CHECK(job_op_parse("sum", JOB_ROLE_COMBINE, &op, &why) == 0 && op.kind == JOB_OP_SUM);
	CHECK(job_op_parse("count", JOB_ROLE_COMBINE, &op, &why) == -EINVAL);
	CHECK(job_op_parse("Sum", JOB_ROLE_REDUCE, &op, &why) == -EINVAL);
	CHECK(job_op_parse("wordcount", JOB_ROLE_REDUCE, &op, &why) == -EINVAL);
}

static void test_bad(void)
{
	const char *base = "input=/i\noutput=/o\n";
	char buf[512];

	bads("", "empty", NULL);
	bads("# only a comment\n\n   \n", "empty", NULL);
	bads("input=/i\noutput=/o\ninptu=/x\nmap=wordcount\n", "line 3", "unknown key 'inptu'");
	bads("input=/i\nOutput=/o\nmap=wordcount\n", "line 2", "unknown key 'Output'");
	bads("input=/i\noutput=/o\nmap=wordcount\ninput=/j\n", "line 4", "repeated");
	bads("input=/i\noutput=/o\nmap wordcount\n", "line 3", "no '='");
	bads("input=/i\noutput=/o\n= wordcount\n", "line 3", "no key");
	bads("input=/i\noutput=/o\nmap=\n", "line 3", "no value");
	bads("input=/i\noutput=/o\n", "missing key 'map'", NULL);
	bads("output=/o\nmap=wordcount\n", "missing key 'input'", NULL);
	bads("input=/i\nmap=wordcount\n", "missing key 'output'", NULL);
	snprintf(buf, sizeof(buf), "%smap=wordcount\nreduces=-1\n", base);
	bads(buf, "line 4", "reduces: '-1'");
	snprintf(buf, sizeof(buf), "%smap=wordcount\nreduces=10001\n", base);
	bads(buf, "line 4", "0..10000");
	snprintf(buf, sizeof(buf), "%smap=wordcount\nreduces=2x\n", base);
	bads(buf, "line 4", "'2x'");
	snprintf(buf, sizeof(buf), "%smap=wordcount\nreduces=99999999999999999999\n", base);
	bads(buf, "line 4", "reduces");
	snprintf(buf, sizeof(buf), "%smap=wordcnt\n", base);
	bads(buf, "line 3", "'wordcnt' is not a built-in");
	snprintf(buf, sizeof(buf), "%smap=sum\n", base);
	bads(buf, "line 3", "not a map built-in");
	snprintf(buf, sizeof(buf), "%smap=wordcount\nreduce=wordcount\n", base);
	bads(buf, "line 4", "not a reduce built-in");
	snprintf(buf, sizeof(buf), "%smap=wordcount\ncombine=count\n", base);
	bads(buf, "line 4", "cannot combine");
	snprintf(buf, sizeof(buf), "%smap=exec:   \n", base);
	bads(buf, "line 3", "needs a command");
	snprintf(buf, sizeof(buf), "%smap=grep\n", base);
	bads(buf, "line 3", "pattern");
	snprintf(buf, sizeof(buf), "%smap=grep\npattern=a(b\n", base);
	bads(buf, "line 4", "pattern");
	snprintf(buf, sizeof(buf), "%smap=wordcount\npattern=x\n", base);
	bads(buf, "line 4", "only used with");
	bads("input=data\noutput=/o\nmap=wordcount\n", "line 1", "'data' is not an absolute path");
	bads("input=/a,,/b\noutput=/o\nmap=wordcount\n", "line 1", "empty path");
	bads("input=/a/../b\noutput=/o\nmap=wordcount\n", "line 1", "not an absolute path");
	bads("input=/a\noutput=/\nmap=wordcount\n", "line 2", "output");
	bads("input=/a\noutput=/a/out\nmap=wordcount\n", "line 2", "overlaps input '/a'");
	bads("input=/a/b\noutput=/a\nmap=wordcount\n", "line 2", "overlaps");
	bads("input=/\noutput=/a\nmap=wordcount\n", "line 2", "overlaps");
	bads("input=/ab\noutput=/a\nmap=wordcount\nreduce=sum\nreduces=1\nfiles=/x/m,/y/m\n",
	     "line 6", "collide");
	bads("input=/ab\noutput=/a\nmap=wordcount\nfiles=/x/\n", "line 4", "directory");

	/* binary garbage: a NUL on line 2, and random bytes */
	static const char nul[] = "input=/i\nout\0put=/o\nmap=wordcount\n";
	bad(nul, sizeof(nul) - 1, -EINVAL, "line 2", "binary");
	unsigned char garbage[4096];
	unsigned seed = 12345;
	for (size_t i = 0; i < sizeof(garbage); i++) {
		seed = seed * 1103515245u + 12345u;
		garbage[i] = (unsigned char)(seed >> 16);
	}
	bad((const char *)garbage, sizeof(garbage), -EINVAL, "line ", NULL);

	/* 10 MB: refused by size before any parsing */
	size_t big = 10 * 1024 * 1024;
	char *huge = malloc(big);
	memset(huge, '#', big);
	for (size_t i = 79; i < big; i += 80)
		huge[i] = '\n';
	bad(huge, big, -EFBIG, "10485760 bytes", "65536");
	/* just at the limit a comment-only spec parses (and is empty) */
	bad(huge, 65536, -EINVAL, "empty", NULL);
	free(huge);
}

/* Every prefix of a good spec either parses or fails cleanly; run under
 * ASan this catches reads past the end of the buffer. */
static void test_prefixes(void)
{
	const char *wc = "input=/data/books,/more\noutput=/out/wc\nmap=grep\npattern=a.*b\n"
			 "reduce=exec: sort | uniq -c\ncombine=identity\nreduces=3\nfiles=/f/a\n";
	size_t n = strlen(wc);
	for (size_t i = 0; i <= n; i++) {
		char *copy = malloc(i ? i : 1);
		memcpy(copy, wc, i);
		job_spec s;
		char err[256];
		int rc = job_spec_parse(copy, i, &s, err, sizeof(err));
		CHECK(rc == 0 || rc == -EINVAL);
		if (i == n)
			CHECK(rc == 0 && s.reduces == 3);
		job_spec_release(&s);
		free(copy);
	}
}

int main(void)
{
	test_good();
	test_bad();
	test_prefixes();
	if (failures) {
		fprintf(stderr, "test_job_spec: %d failures\n", failures);
		return 1;
	}
	printf("test_job_spec: ok\n");
	return 0;
}
