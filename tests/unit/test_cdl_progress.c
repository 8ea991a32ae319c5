/* Unit test of the progress line (fs/cdl_progress.h): amounts in binary
 * units, the percentage, the average rate and the time left, an unknown
 * total, a done past the total capped at 100%, items rather than bytes;
 * and that a progress that is off writes nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cdl_progress.h"
#include "test.h"

#define S 1000000000LL

int main(void)
{
	cdl_progress p;
	char line[200];
	cdl_progress_start(&p, false, "big.iso", true, 4ULL << 30);
	p.start_ns = 0;
	p.done = 1ULL << 30; /* 1 GiB in 4 s: 256 MiB/s, 3 GiB left: 12 s */
	cdl_progress_format(&p, 4 * S, line, sizeof(line));
	CHECK(!strcmp(line, "big.iso: 1.0 GiB of 4.0 GiB  25% 256.0 MiB/s 0:12 left, 0:04"));

	p.done = 5ULL << 30; /* past the total (a file that grew): 100%, nothing left */
	cdl_progress_format(&p, 5 * S, line, sizeof(line));
	CHECK(strstr(line, " 100% ") != NULL);
	CHECK(strstr(line, "0:00 left") != NULL);

	p.total = 0; /* unknown total (stdin) */
	p.done = 1536;
	cdl_progress_format(&p, 2 * S, line, sizeof(line));
	CHECK(!strcmp(line, "big.iso: 1.5 KiB 768 B/s 0:02"));

	/* nothing done yet: no rate, the time left is unknown */
	cdl_progress_start(&p, false, "x", true, 100);
	p.start_ns = 0;
	cdl_progress_format(&p, 0, line, sizeof(line));
	CHECK(!strcmp(line, "x: 0 B of 100 B   0% 0 B/s --:-- left, 0:00"));

	/* items, and hours */
	cdl_progress_start(&p, false, "blocks replicated", false, 7200);
	p.start_ns = 0;
	p.done = 1;
	cdl_progress_format(&p, 1 * S, line, sizeof(line));
	CHECK(!strcmp(line, "blocks replicated: 1 of 7200   0% 1/s 1:59:59 left, 0:01"));

	/* off: updates and the end write nothing (stderr unused) */
	FILE *f = tmpfile();
	cdl_progress_start(&p, false, "quiet", true, 10);
	p.out = f;
	cdl_progress_update(&p, 5, 0);
	cdl_progress_end(&p);
	CHECK_EQ(ftell(f), 0);
	/* on: a \r line, then the final one and a newline */
	cdl_progress_start(&p, true, "loud", true, 10);
	p.out = f;
	cdl_progress_update(&p, 5, 0);
	cdl_progress_update(&p, 6, 0); /* too soon after the first: not drawn */
	cdl_progress_end(&p);
	rewind(f);
	char got[512] = "";
	size_t n = fread(got, 1, sizeof(got) - 1, f);
	got[n] = 0;
	CHECK(got[0] == '\r');
	CHECK(strstr(got, "loud: 5 B of 10 B  50%") != NULL);
	CHECK(strstr(got, "loud: 6 B of 10 B  60%") != NULL);
	CHECK(got[n - 1] == '\n');
	int lines = 0;
	for (size_t i = 0; i < n; i++)
		lines += got[i] == '\r';
	CHECK_EQ(lines, 2);
	fclose(f);
	return TEST_DONE();
}
