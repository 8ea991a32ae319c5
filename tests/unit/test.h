/* Minimal unit-test support: CHECK records a failure with its location and
 * carries on; TEST_DONE prints the tally and gives the exit status. */
#ifndef CDL_TEST_H
#define CDL_TEST_H

#include <stdio.h>

static int test_failures, test_checks;

#define CHECK(cond)                                                                    \
	do {                                                                           \
		test_checks++;                                                         \
		if (!(cond)) {                                                         \
			test_failures++;                                               \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
				#cond);                                                \
		}                                                                      \
	} while (0)

#define CHECK_EQ(a, b)                                                                    \
	do {                                                                              \
		long long va_ = (long long)(a), vb_ = (long long)(b);                     \
		test_checks++;                                                            \
		if (va_ != vb_) {                                                         \
			test_failures++;                                                  \
			fprintf(stderr, "%s:%d: check failed: %s == %s (%lld vs %lld)\n", \
				__FILE__, __LINE__, #a, #b, va_, vb_);                    \
		}                                                                         \
	} while (0)

#define TEST_DONE()                                                                   \
	(printf("%d checks, %d failed\n", test_checks, test_failures), \
	 test_failures ? 1 : 0)

#endif
