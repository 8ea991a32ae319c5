/* libcaudal basics: path and name validation, config parsing with bounds
 * and errors that name the key or line, XXH3 checksums, the arena. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <stdint.h>
#include <stddef.h>
#include <unistd.h>

#include "cdl_checksum.h"
#include "cdl_config.h"
#include "cdl_util.h"
#include "test.h"

static int64_t port, size;
static char *name;
static bool flag;

static const cdl_cfg_key keys[] = {
    {"port", CDL_CFG_INT, &port, "9000", 1, 65535, "port"},
    {"size", CDL_CFG_INT, &size, "64m", 0, 1LL << 40, "size"},
    {"name", CDL_CFG_STR, &name, "x", 0, 0, "name"},
    {"flag", CDL_CFG_BOOL, &flag, "false", 0, 0, "flag"},
    {NULL, 0, NULL, NULL, 0, 0, NULL},
};

int main(void)
{
	const char *why;
	CHECK_EQ(cdl_path_check("/", &why), 0);
	CHECK_EQ(cdl_path_check("/a/b/c", &why), 0);
	CHECK_EQ(cdl_path_check("/a/b/", &why), 0);
	CHECK_EQ(cdl_path_check("a/b", &why), -EINVAL);
	CHECK(strstr(why, "absolute") != NULL);
	CHECK_EQ(cdl_path_check("/a/../b", &why), -EINVAL);
	CHECK_EQ(cdl_path_check("/a/./b", &why), -EINVAL);
	CHECK_EQ(cdl_path_check("/a//b", &why), -EINVAL);
	CHECK(strstr(why, "empty") != NULL);
	CHECK_EQ(cdl_path_check("", &why), -EINVAL);
	char p[300];
	memset(p, 'a', sizeof(p));
	p[0] = '/';
	p[299] = '\0';
	CHECK_EQ(cdl_path_check(p, &why), -ENAMETOOLONG);
	p[256] = '\0';
	CHECK_EQ(cdl_path_check(p, &why), 0); /* exactly 255 */
	CHECK_EQ(cdl_name_check("a/b", &why), -EINVAL);
	CHECK_EQ(cdl_name_check("..", &why), -EINVAL);
	CHECK_EQ(cdl_name_check("ok", &why), 0);

	/* config: defaults, flags, file, bounds */
	char err[256];
	cdl_config_defaults(keys);
	CHECK_EQ(port, 9000);
	CHECK_EQ(size, 64 << 20);
	CHECK(!strcmp(name, "x"));
	char path[] = "/tmp/caudal-cfg-XXXXXX";
	int fd = mkstemp(path);
	const char *ini = "[other]\nport = 1\n[me]\nport = 1234\nname = hello world\n";
	CHECK(write(fd, ini, strlen(ini)) == (ssize_t)strlen(ini));
	close(fd);
	char *argv[] = {"prog",	  "--config", path, "pos1", "--size=2k",
			"--flag", "--name",   "n2", NULL};
	int npos;
	CHECK_EQ(cdl_config_args(keys, "me", 8, argv, &npos, err, sizeof(err)), 0);
	CHECK_EQ(port, 1234);
	CHECK_EQ(size, 2048);
	CHECK(flag);
	CHECK(!strcmp(name, "n2")); /* flags override the file */
	CHECK_EQ(npos, 1);
	CHECK(!strcmp(argv[0], "pos1"));
	CHECK_EQ(cdl_config_set(keys, "port", "70000", err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "'port'") && strstr(err, "range"));
	CHECK_EQ(cdl_config_set(keys, "port", "12x", err, sizeof(err)), -EINVAL);
	CHECK_EQ(cdl_config_set(keys, "nope", "1", err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "'nope'") != NULL);
	fd = open(path, O_WRONLY | O_TRUNC);
	const char *bad = "[me]\nport = 80\nbogus = 1\n";
	CHECK(write(fd, bad, strlen(bad)) == (ssize_t)strlen(bad));
	close(fd);
	CHECK_EQ(cdl_config_load(keys, path, "me", err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "line 3") && strstr(err, "bogus"));
	/* --instance: [me] then [me.two] of each file, flags last; the top
	 * section is not read twice */
	fd = open(path, O_WRONLY | O_TRUNC);
	const char *inst = "name = top\n[me]\nport = 80\nsize = 4k\n[me.two]\nport = 81\n"
			   "[me.three]\nport = 82\n";
	CHECK(write(fd, inst, strlen(inst)) == (ssize_t)strlen(inst));
	close(fd);
	cdl_config_release(keys);
	cdl_config_defaults(keys);
	char *argv2[] = {"prog", "--instance", "two", "--config", path, NULL};
	CHECK_EQ(cdl_config_args(keys, "me", 5, argv2, &npos, err, sizeof(err)), 0);
	CHECK_EQ(port, 81);
	CHECK_EQ(size, 4096);
	CHECK(!strcmp(name, "top"));
	CHECK_EQ(npos, 0);
	char *argv3[] = {"prog", "--config=", "--instance=a/b", NULL};
	char cfgarg[64];
	snprintf(cfgarg, sizeof(cfgarg), "--config=%s", path);
	argv3[1] = cfgarg;
	CHECK_EQ(cdl_config_args(keys, "me", 3, argv3, &npos, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "--instance") != NULL);
	char *argv4[] = {"prog", "--config", path, "--instance", NULL};
	CHECK_EQ(cdl_config_args(keys, "me", 4, argv4, &npos, err, sizeof(err)), -EINVAL);
	char *argv5[] = {"prog", "--config", NULL};
	CHECK_EQ(cdl_config_args(keys, "me", 2, argv5, &npos, err, sizeof(err)), -EINVAL);
	unlink(path);
	CHECK_EQ(cdl_config_load(keys, path, "me", err, sizeof(err)), -ENOENT);
	cdl_config_release(keys);

	/* checksums: stable, sensitive to one bit */
	char buf[CDL_CHUNK];
	memset(buf, 7, sizeof(buf));
	uint64_t a = cdl_xxh3(buf, sizeof(buf));
	CHECK_EQ(a, cdl_xxh3(buf, sizeof(buf)));
	buf[1000] ^= 1;
	CHECK(a != cdl_xxh3(buf, sizeof(buf)));
	CHECK(cdl_xxh3("", 0) == cdl_xxh3(NULL, 0));

	/* arena: zeroed, aligned, big allocations */
	cdl_arena ar;
	cdl_arena_init(&ar);
	for (int i = 0; i < 1000; i++) {
		char *q = cdl_arena_alloc(&ar, (size_t)i * 13 + 1);
		CHECK(((uintptr_t)q % _Alignof(max_align_t)) == 0);
		CHECK(q[0] == 0);
		q[0] = 1;
	}
	CHECK(!strcmp(cdl_arena_strdup(&ar, "hi"), "hi"));
	cdl_arena_release(&ar);
	return TEST_DONE();
}
