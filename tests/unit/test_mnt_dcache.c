/* Unit test of mnt_dcache: a directory this mount made is known whole
 * while every reply in it is exactly one version ahead; anything else, a
 * removal, an event of a newer version, or the entry timeout forgets it;
 * it answers only while in step with the event log; the bounds on names
 * and directories hold. */
#include <stdio.h>
#include <unistd.h>

#include "mnt_dcache.h"
#include "test.h"

static void test_versions(void)
{
	struct mnt_dcache c;
	mnt_dcache_init(&c, 10000);
	/* not in step with the event log yet: answers nothing */
	mnt_dcache_made_dir(&c, 5, 0);
	CHECK(!mnt_dcache_absent(&c, 5, "a"));
	mnt_dcache_set_live(&c, true);
	CHECK(!mnt_dcache_absent(&c, 5, "a")); /* going live forgot it */
	CHECK(!mnt_dcache_absent(&c, 4, "a")); /* unknown directory: ask */
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
	/* events: one at a version this mount knows is its own, a newer one
	 * is someone else's and forgets */
	mnt_dcache_made_dir(&c, 8, 3);
	mnt_dcache_added(&c, 8, "mine", 4);
	mnt_dcache_changed(&c, 8, 4);
	mnt_dcache_changed(&c, 8, 2);
	CHECK(mnt_dcache_absent(&c, 8, "other"));
	mnt_dcache_changed(&c, 8, 5);
	CHECK(!mnt_dcache_absent(&c, 8, "other"));
	/* the event of this mount's own call before its reply: not judged
	 * until the reply, and no answer meanwhile */
	mnt_dcache_made_dir(&c, 10, 0);
	mnt_dcache_begin(&c, 10);
	mnt_dcache_changed(&c, 10, 1);
	CHECK(!mnt_dcache_absent(&c, 10, "x"));
	mnt_dcache_added(&c, 10, "a", 1);
	CHECK(mnt_dcache_absent(&c, 10, "x"));
	/* ... but one past the reply, with nothing in flight, is someone else's */
	mnt_dcache_begin(&c, 10);
	mnt_dcache_changed(&c, 10, 2);
	mnt_dcache_changed(&c, 10, 3);
	mnt_dcache_added(&c, 10, "b", 2);
	CHECK(!mnt_dcache_absent(&c, 10, "x"));
	/* someone else made a name in a directory this mount just made,
	 * and the event came before the Mkdir reply: not cached */
	mnt_dcache_changed(&c, 12, 1);
	mnt_dcache_made_dir(&c, 12, 0);
	CHECK(!mnt_dcache_absent(&c, 12, "x"));
	/* a call that failed forgets */
	mnt_dcache_made_dir(&c, 11, 0);
	mnt_dcache_begin(&c, 11);
	mnt_dcache_failed(&c, 11);
	CHECK(!mnt_dcache_absent(&c, 11, "x"));
	/* the follower lost its place: everything goes, nothing answers */
	mnt_dcache_made_dir(&c, 8, 5);
	mnt_dcache_set_live(&c, false);
	CHECK(!mnt_dcache_absent(&c, 8, "other"));
	mnt_dcache_set_live(&c, true);
	CHECK(!mnt_dcache_absent(&c, 8, "other"));
	CHECK(c.hits > 0 && c.misses > 0);
	mnt_dcache_destroy(&c);
}

static void test_ttl(void)
{
	struct mnt_dcache c;
	mnt_dcache_init(&c, 50);
	mnt_dcache_set_live(&c, true);
	mnt_dcache_made_dir(&c, 9, 0);
	CHECK(mnt_dcache_absent(&c, 9, "a"));
	usleep(120 * 1000);
	CHECK(!mnt_dcache_absent(&c, 9, "a")); /* not confirmed within the ttl */
	mnt_dcache_destroy(&c);
	/* a zero timeout turns the cache off */
	mnt_dcache_init(&c, 0);
	mnt_dcache_set_live(&c, true);
	mnt_dcache_made_dir(&c, 9, 0);
	CHECK(!mnt_dcache_absent(&c, 9, "a"));
	mnt_dcache_destroy(&c);
}

static void test_bounds(void)
{
	struct mnt_dcache c;
	mnt_dcache_init(&c, 60000);
	mnt_dcache_set_live(&c, true);
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
