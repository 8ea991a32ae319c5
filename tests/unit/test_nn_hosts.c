/* The hosts files (nn_hosts): entries, comments, ports, IPv6, names that
 * resolve, and every kind of bad line refused with its number. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cdl_log.h"
#include "nn_hosts.h"
#include "test.h"

static char path[] = "/tmp/caudal-test-hosts-XXXXXX";

static int load(const char *text, nn_hosts **h, char *err, size_t n)
{
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	fputs(text, f);
	fclose(f);
	return nn_hosts_load(path, h, err, n);
}

/* A bad file: refused, and the error names line. */
static void bad(const char *text, int line)
{
	nn_hosts *h = NULL;
	char err[512], want[32];
	CHECK_EQ(load(text, &h, err, sizeof(err)), -EINVAL);
	CHECK(h == NULL);
	snprintf(want, sizeof(want), "line %d:", line);
	if (!strstr(err, want))
		fprintf(stderr, "error '%s' does not say '%s'\n", err, want);
	CHECK(strstr(err, want) != NULL);
}

int main(void)
{
	cdl_log_init("test", CDL_LOG_ERROR);
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	close(fd);
	nn_hosts *h = NULL;
	char err[512];
	CHECK_EQ(load("# comment only\n\n   \n", &h, err, sizeof(err)), 0);
	CHECK_EQ(nn_hosts_count(h), 0);
	CHECK(!nn_hosts_match(h, "10.0.0.1", 9866));
	nn_hosts_free(h);

	CHECK_EQ(load("10.0.0.1 10.0.0.2\t# two\n10.0.0.3:9866\n::1\n[fe80::1]:50010\n"
		      "localhost\nDN7.Example.org\n",
		      &h, err, sizeof(err)),
		 0);
	CHECK_EQ(nn_hosts_count(h), 7);
	CHECK(nn_hosts_match(h, "10.0.0.1", 1));
	CHECK(nn_hosts_match(h, "10.0.0.2", 9866));
	CHECK(nn_hosts_match(h, "10.0.0.3", 9866));
	CHECK(!nn_hosts_match(h, "10.0.0.3", 9867)); /* another port: another datanode */
	CHECK(nn_hosts_match(h, "::1", 1));
	CHECK(nn_hosts_match(h, "fe80::1", 50010));
	CHECK(!nn_hosts_match(h, "fe80::1", 50011));
	CHECK(nn_hosts_match(h, "127.0.0.1", 9866));	/* localhost, resolved */
	CHECK(nn_hosts_match(h, "dn7.example.org", 1)); /* names ignore case */
	CHECK(!nn_hosts_match(h, "10.0.0.4", 9866));
	CHECK(!nn_hosts_match(h, "10.0.0", 9866));
	nn_hosts_free(h);

	bad("10.0.0.1\nnot/a/host\n", 2);
	bad("ok\n\n10.0.0.1:0\n", 3);
	bad("10.0.0.1:65536\n", 1);
	bad("10.0.0.1:9x\n", 1);
	bad("a:b:c\n", 1);	  /* neither IPv6 nor HOST:PORT */
	bad("[10.0.0.1]:1\n", 1); /* brackets are for IPv6 */
	bad("[::1\n", 1);
	bad("-dash.org\n", 1);
	bad("a..b\n", 1);
	bad("host:\n", 1);
	bad("x\ny\n\xff\xfe\n", 3); /* bytes no host name has */
	/* bounds: a line of more than 4096 bytes, a file of more than 1 MiB */
	char *longl = malloc(6000);
	memset(longl, 'a', 5999);
	longl[5999] = '\0';
	CHECK_EQ(load(longl, &h, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "line 1:") && strstr(err, "longer than"));
	free(longl);
	size_t big = (1 << 20) + 100;
	char *many = malloc(big + 1);
	for (size_t i = 0; i < big; i += 10)
		memcpy(many + i, "10.0.0.1\n\n", i + 10 <= big ? 10 : big - i);
	many[big] = '\0';
	/* about 105000 entries: past the most a file may list */
	CHECK_EQ(load(many, &h, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "more than") != NULL);
	/* the same bytes as comments: past the size a file may have */
	for (size_t i = 0; i < big; i += 10)
		many[i] = '#';
	CHECK_EQ(load(many, &h, err, sizeof(err)), -EFBIG);
	free(many);
	CHECK_EQ(nn_hosts_load("/nonexistent/hosts", &h, err, sizeof(err)), -ENOENT);
	CHECK(strstr(err, "/nonexistent/hosts") != NULL);
	unlink(path);
	return TEST_DONE();
}
