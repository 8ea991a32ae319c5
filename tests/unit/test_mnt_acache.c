/* Unit test of mnt_acache: a name or attributes read at transaction R are
 * believed until an event of a later transaction touches them, whatever
 * order the reply and the event arrive in; a file under construction is
 * never kept; renames and removals void the names they touched, a
 * directory removed whole voids everything; nothing is believed out of
 * step with the log or past the timeout; the mount's own changes void at
 * once; the record count stays bounded. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mnt_acache.h"
#include "test.h"

static Caudal__Attr attr(uint64_t ino, uint32_t mode, uint64_t size, uint64_t txid)
{
	Caudal__Attr a = CAUDAL__ATTR__INIT;
	a.ino = ino;
	a.mode = mode;
	a.size = size;
	a.txid = txid;
	return a;
}

static Caudal__Event event(Caudal__EventType type, uint64_t txid, uint64_t ino, const char *path,
			   const char *dst, uint64_t *dirs, size_t ndirs)
{
	Caudal__Event e = CAUDAL__EVENT__INIT;
	e.type = type;
	e.txid = txid;
	e.ino = ino;
	e.path = (char *)path;
	e.dst = (char *)(dst ? dst : "");
	e.dirs = dirs;
	e.n_dirs = ndirs;
	return e;
}

#define FILE_MODE (S_IFREG | 0644)
#define DIR_MODE  (S_IFDIR | 0755)

static void put(struct mnt_acache *c, uint64_t parent, const char *name, Caudal__Attr a)
{
	mnt_acache_put_attr(c, &a);
	mnt_acache_put_name(c, parent, name, a.ino, a.txid);
}

static void test_order(void)
{
	struct mnt_acache c;
	Caudal__Attr got;
	mnt_acache_init(&c, 60000);
	/* out of step with the log: nothing kept */
	put(&c, 1, "f", attr(10, FILE_MODE, 5, 3));
	CHECK(!mnt_acache_lookup(&c, 1, "f", &got));
	mnt_acache_set_live(&c, true, 3);
	put(&c, 1, "f", attr(10, FILE_MODE, 5, 3));
	CHECK(mnt_acache_lookup(&c, 1, "f", &got));
	CHECK_EQ(got.size, 5);
	CHECK(mnt_acache_attr(&c, 10, &got));
	CHECK(!mnt_acache_lookup(&c, 1, "g", &got));
	CHECK(!mnt_acache_lookup(&c, 2, "f", &got));

	/* an event newer than the read voids it */
	uint64_t d1[] = {1};
	Caudal__Event e = event(CAUDAL__EVENT_TYPE__EV_SETATTR, 4, 10, "/f", NULL, NULL, 0);
	mnt_acache_event(&c, &e);
	CHECK(!mnt_acache_attr(&c, 10, &got));
	CHECK(!mnt_acache_lookup(&c, 1, "f", &got));
	/* a reply read before that event, arriving after it: not believed */
	Caudal__Attr old = attr(10, FILE_MODE, 5, 3);
	mnt_acache_put_attr(&c, &old);
	CHECK(!mnt_acache_attr(&c, 10, &got));
	/* read at the event or after: believed, and an older read arriving
	 * late does not overwrite it */
	Caudal__Attr now = attr(10, FILE_MODE, 7, 4);
	mnt_acache_put_attr(&c, &now);
	CHECK(mnt_acache_attr(&c, 10, &got));
	CHECK_EQ(got.size, 7);
	mnt_acache_put_attr(&c, &old);
	CHECK(mnt_acache_attr(&c, 10, &got));
	CHECK_EQ(got.size, 7);
	/* the name survived an attribute change */
	CHECK(mnt_acache_lookup(&c, 1, "f", &got));
	/* an event this read already reflects changes nothing */
	e = event(CAUDAL__EVENT_TYPE__EV_CLOSE, 4, 10, "/f", NULL, NULL, 0);
	mnt_acache_event(&c, &e);
	CHECK(mnt_acache_attr(&c, 10, &got));

	/* a create elsewhere in the directory leaves other names alone, but
	 * voids the directory's own attributes */
	Caudal__Attr dir = attr(1, DIR_MODE, 0, 4);
	mnt_acache_put_attr(&c, &dir);
	CHECK(mnt_acache_attr(&c, 1, &got));
	e = event(CAUDAL__EVENT_TYPE__EV_CREATE, 5, 11, "/g", NULL, d1, 1);
	mnt_acache_event(&c, &e);
	CHECK(mnt_acache_lookup(&c, 1, "f", &got));
	CHECK(!mnt_acache_attr(&c, 1, &got));

	/* a file under construction is not kept; its earlier record goes */
	Caudal__Attr uc = attr(10, FILE_MODE, 9, 6);
	uc.under_construction = true;
	mnt_acache_put_attr(&c, &uc);
	CHECK(!mnt_acache_attr(&c, 10, &got));
	CHECK(!mnt_acache_lookup(&c, 1, "f", &got));
	mnt_acache_destroy(&c);
}

static void test_names(void)
{
	struct mnt_acache c;
	Caudal__Attr got;
	mnt_acache_init(&c, 60000);
	mnt_acache_set_live(&c, true, 10);
	uint64_t d12[] = {1, 2};
	put(&c, 1, "a", attr(20, FILE_MODE, 1, 10));
	put(&c, 2, "b", attr(21, FILE_MODE, 2, 10));
	put(&c, 1, "keep", attr(22, FILE_MODE, 3, 10));
	/* a rename of /x/a onto /y/b: both names void, others stay */
	Caudal__Event e = event(CAUDAL__EVENT_TYPE__EV_RENAME, 11, 20, "/x/a", "/y/b", d12, 2);
	mnt_acache_event(&c, &e);
	CHECK(!mnt_acache_lookup(&c, 1, "a", &got));
	CHECK(!mnt_acache_lookup(&c, 2, "b", &got));
	CHECK(mnt_acache_lookup(&c, 1, "keep", &got));
	/* the new name, read after: believed, and it takes the name from the
	 * inode that held it */
	put(&c, 2, "b", attr(20, FILE_MODE, 1, 11));
	CHECK(mnt_acache_lookup(&c, 2, "b", &got));
	CHECK_EQ(got.ino, 20);
	CHECK(!mnt_acache_lookup(&c, 1, "a", &got));

	/* removing a file voids its name only */
	uint64_t d1[] = {1};
	e = event(CAUDAL__EVENT_TYPE__EV_UNLINK, 12, 22, "/x/keep", NULL, d1, 1);
	put(&c, 1, "other", attr(23, FILE_MODE, 4, 11));
	mnt_acache_event(&c, &e);
	CHECK(!mnt_acache_lookup(&c, 1, "keep", &got));
	CHECK(mnt_acache_lookup(&c, 1, "other", &got));
	/* removing a directory (or an inode not known) voids everything: its
	 * subtree went without events */
	put(&c, 1, "sub", attr(30, DIR_MODE, 0, 12));
	put(&c, 30, "deep", attr(31, FILE_MODE, 0, 12));
	e = event(CAUDAL__EVENT_TYPE__EV_UNLINK, 13, 30, "/x/sub", NULL, d1, 1);
	mnt_acache_event(&c, &e);
	CHECK(!mnt_acache_lookup(&c, 30, "deep", &got));
	CHECK(!mnt_acache_lookup(&c, 1, "other", &got));
	put(&c, 1, "other", attr(23, FILE_MODE, 4, 13));
	CHECK(mnt_acache_lookup(&c, 1, "other", &got));
	e = event(CAUDAL__EVENT_TYPE__EV_UNLINK, 14, 999, "/x/unknown", NULL, d1, 1);
	mnt_acache_event(&c, &e);
	CHECK(!mnt_acache_lookup(&c, 1, "other", &got));

	/* the mount's own changes void at once, before any event */
	put(&c, 1, "mine", attr(40, FILE_MODE, 1, 14));
	CHECK(mnt_acache_lookup(&c, 1, "mine", &got));
	mnt_acache_inval(&c, 40);
	CHECK(!mnt_acache_attr(&c, 40, &got));
	put(&c, 1, "mine", attr(40, FILE_MODE, 2, 15));
	CHECK(mnt_acache_lookup(&c, 1, "mine", &got));
	mnt_acache_inval_entry(&c, 1, "mine");
	CHECK(!mnt_acache_lookup(&c, 1, "mine", &got));
	CHECK(!mnt_acache_attr(&c, 40, &got));

	/* out of step: nothing believed; back in step: only what is read
	 * from then on */
	put(&c, 1, "z", attr(50, FILE_MODE, 1, 16));
	CHECK(mnt_acache_lookup(&c, 1, "z", &got));
	mnt_acache_set_live(&c, false, 0);
	CHECK(!mnt_acache_lookup(&c, 1, "z", &got));
	mnt_acache_set_live(&c, true, 20);
	CHECK(!mnt_acache_lookup(&c, 1, "z", &got));
	put(&c, 1, "z", attr(50, FILE_MODE, 1, 20));
	CHECK(mnt_acache_lookup(&c, 1, "z", &got));
	mnt_acache_destroy(&c);
}

static void test_bounds(void)
{
	struct mnt_acache c;
	Caudal__Attr got;
	/* off */
	mnt_acache_init(&c, 0);
	mnt_acache_set_live(&c, true, 1);
	put(&c, 1, "f", attr(2, FILE_MODE, 1, 1));
	CHECK(!mnt_acache_lookup(&c, 1, "f", &got));
	mnt_acache_destroy(&c);
	/* the timeout */
	mnt_acache_init(&c, 30);
	mnt_acache_set_live(&c, true, 1);
	put(&c, 1, "f", attr(2, FILE_MODE, 1, 1));
	CHECK(mnt_acache_lookup(&c, 1, "f", &got));
	usleep(80 * 1000);
	CHECK(!mnt_acache_lookup(&c, 1, "f", &got));
	mnt_acache_destroy(&c);
	/* the count: the oldest read goes */
	mnt_acache_init(&c, 600000);
	mnt_acache_set_live(&c, true, 1);
	char name[32];
	for (uint64_t i = 0; i < MNT_AC_MAX + 100; i++) {
		snprintf(name, sizeof(name), "n%llu", (unsigned long long)i);
		put(&c, 1, name, attr(1000 + i, FILE_MODE, i, 1));
	}
	CHECK_EQ(c.count, MNT_AC_MAX);
	CHECK(!mnt_acache_lookup(&c, 1, "n0", &got));
	snprintf(name, sizeof(name), "n%llu", (unsigned long long)(MNT_AC_MAX + 99));
	CHECK(mnt_acache_lookup(&c, 1, name, &got));
	CHECK_EQ(got.size, MNT_AC_MAX + 99);
	mnt_acache_destroy(&c);
}

int main(void)
{
	test_order();
	test_names();
	test_bounds();
	return TEST_DONE();
}
