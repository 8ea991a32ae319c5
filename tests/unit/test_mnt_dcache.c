/* Unit test of mnt_dcache: a directory this mount made is known whole
 * while every reply in it is exactly one version ahead; anything else, a
 * removal, or the entry timeout forgets it; the bounds on names and
 * directories hold. */
#include <stdio.h>
#include <unistd.h>

#include "mnt_dcache.h"
#include "test.h"

static void test_versions(void)
{
	struct mnt_dcache c;
	mnt_dcache_init(&c, 10000);
	CHECK(!mnt_dcache_absent(&c, 5, "a")); /* unknown directory: ask */
	mnt_dcache_made_dir(&c, 5, 0);
	CHECK(mnt_dcache_absent(&c, 5, "a"));
	mnt_dcache_added(&c, 5, "a", 1);
	CHECK(!mnt_dcache_absent(&c, 5, "a"));
	CHECK(mnt_dcache_absent(&c, 5, "b"));
	/* an overwrite of an existing name leaves the version: still known */
	mnt_dcache_added(&c, 5, "a", 1);
	CHECK(mnt_dcache_absent(&c, 5, "b"));
	/* someone else made a name (the version jumped): forgotten */
	mnt_dcache_added(&c, 5, "c", 3);
	CHECK(!mnt_dcache_absent(&c, 5, "b"));
	CHECK(!mnt_dcache_absent(&c, 5, "zzz"));
	/* a name said new but already held: forgotten too */
	mnt_dcache_made_dir(&c, 6, 7);
	mnt_dcache_added(&c, 6, "x", 8);
	mnt_dcache_added(&c, 6, "x", 9);
	CHECK(!mnt_dcache_absent(&c, 6, "y"));
	/* a removal forgets */
	mnt_dcache_made_dir(&c, 7, 0);
	mnt_dcache_added(&c, 7, "x", 1);
	mnt_dcache_forget(&c, 7);
	CHECK(!mnt_dcache_absent(&c, 7, "y"));
	CHECK(c.hits > 0 && c.misses > 0);
	mnt_dcache_destroy(&c);
}

static void test_ttl(void)
{
	struct mnt_dcache c;
	mnt_dcache_init(&c, 50);
	mnt_dcache_made_dir(&c, 9, 0);
	CHECK(mnt_dcache_absent(&c, 9, "a"));
	usleep(120 * 1000);
	CHECK(!mnt_dcache_absent(&c, 9, "a")); /* not confirmed within the ttl */
	mnt_dcache_destroy(&c);
	/* a zero timeout turns the cache off */
	mnt_dcache_init(&c, 0);
	mnt_dcache_made_dir(&c, 9, 0);
	CHECK(!mnt_dcache_absent(&c, 9, "a"));
	mnt_dcache_destroy(&c);
}

static void test_bounds(void)
{
	struct mnt_dcache c;
	mnt_dcache_init(&c, 60000);
	/* more directories than slots: the oldest go, the newest stay */
	for (uint64_t d = 1; d <= MNT_DC_DIRS + 10; d++)
		mnt_dcache_made_dir(&c, d, 0);
	CHECK(mnt_dcache_absent(&c, MNT_DC_DIRS + 10, "a"));
	size_t known = 0;
	for (uint64_t d = 1; d <= MNT_DC_DIRS + 10; d++)
		known += mnt_dcache_absent(&c, d, "a");
	CHECK_EQ(known, MNT_DC_DIRS);
	/* a directory past MNT_DC_NAMES names is forgotten, never wrong */
	mnt_dcache_made_dir(&c, 1000000, 0);
	char name[32];
	for (uint64_t i = 0; i <= MNT_DC_NAMES; i++) {
		snprintf(name, sizeof(name), "f%llu", (unsigned long long)i);
		mnt_dcache_added(&c, 1000000, name, i + 1);
	}
	CHECK(!mnt_dcache_absent(&c, 1000000, "f0"));
	CHECK(!mnt_dcache_absent(&c, 1000000, "new"));
	mnt_dcache_destroy(&c);
}

int main(void)
{
	test_versions();
	test_ttl();
	test_bounds();
	return TEST_DONE();
}
