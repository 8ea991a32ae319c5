/* Unit test of jobs/job_user: owners looked up (name, groups, the primary
 * group taken from the spec only when the user is in it), the policy
 * (root only with allow_root, min_uid, banned names), and, when run as
 * root, a child started as `nobody` that prints `id -u`, `id -g` and its
 * folder and cannot read /etc/shadow; a failed identity change is reported
 * and runs nothing. */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "job_user.h"

static int failures;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond) && failures++ < 20)                                                    \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
	} while (0)

static char *slurp(const char *path)
{
	static char buf[8192];
	int fd = open(path, O_RDONLY);
	ssize_t k = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	if (fd >= 0)
		close(fd);
	buf[k < 0 ? 0 : k] = '\0';
	return buf;
}

/* Run sh -c cmd as u (NULL: as we are) in dir; stdout to out, stderr to
 * errf. Returns the exit status, or -errno from the spawn (msg says why). */
static int run_as(const job_user *u, const char *dir, const char *cmd, const char *out,
		  const char *errf, char *msg, size_t n)
{
	int o = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int e = open(errf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	char *argv[] = {"sh", "-c", (char *)cmd, NULL};
	char *envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C", NULL};
	job_spawn s = {.path = "/bin/sh",
		       .argv = argv,
		       .envp = envp,
		       .dir = dir,
		       .in_fd = -1,
		       .out_fd = o,
		       .err_fd = e,
		       .user = u,
		       .new_pgroup = true};
	pid_t pid;
	int rc = job_user_spawn(&s, &pid, msg, n);
	close(o);
	close(e);
	if (rc)
		return rc;
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int main(void)
{
	char why[256];
	job_user u;

	/* lookup */
	CHECK(job_user_lookup(0, 0, &u) == 0 && !strcmp(u.name, "root") && u.gid == 0);
	CHECK(job_user_lookup(4000000000u, 0, &u) == -ENOENT);
	struct passwd *nb = getpwnam("nobody");
	CHECK(nb != NULL);
	if (!nb)
		return 1;
	CHECK(job_user_lookup(nb->pw_uid, 0, &u) == 0 && !strcmp(u.name, "nobody"));
	/* nobody is not in group 0: the spec's group is not taken */
	CHECK(u.gid == nb->pw_gid);
	CHECK(u.ngroups >= 1);
	bool own = false;
	for (int i = 0; i < u.ngroups; i++)
		own |= u.groups[i] == nb->pw_gid;
	CHECK(own);
	job_user root;
	CHECK(job_user_lookup(0, 0, &root) == 0);

	/* policy */
	job_user_policy p = {.allow_root = false, .min_uid = 1000, .banned = "bin, daemon,sys"};
	CHECK(!job_user_allowed(&p, &root, why, sizeof(why)) && strstr(why, "allow_root_jobs"));
	p.allow_root = true;
	CHECK(job_user_allowed(&p, &root, why, sizeof(why)));
	CHECK(job_user_allowed(&p, &u, why, sizeof(why))); /* nobody: 65534 */
	job_user fake = u;
	fake.uid = 2;
	snprintf(fake.name, sizeof(fake.name), "daemon");
	CHECK(!job_user_allowed(&p, &fake, why, sizeof(why)) && strstr(why, "below 1000"));
	fake.uid = 5000;
	CHECK(!job_user_allowed(&p, &fake, why, sizeof(why)) && strstr(why, "banned"));
	snprintf(fake.name, sizeof(fake.name), "daemonx");
	CHECK(job_user_allowed(&p, &fake, why, sizeof(why)));
	snprintf(fake.name, sizeof(fake.name), "sys");
	CHECK(!job_user_allowed(&p, &fake, why, sizeof(why)));
	p.banned = "";
	CHECK(job_user_allowed(&p, &fake, why, sizeof(why)));

	/* spawning */
	char dir[] = "/tmp/test_job_user.XXXXXX";
	if (!mkdtemp(dir))
		return 1;
	char out[128], err[128], msg[256];
	snprintf(out, sizeof(out), "%s/out", dir);
	snprintf(err, sizeof(err), "%s/err", dir);
	CHECK(run_as(NULL, dir, "pwd; echo $HOME", out, err, msg, sizeof(msg)) == 0);
	char want[256];
	snprintf(want, sizeof(want), "%s\n\n", dir);
	CHECK(!strcmp(slurp(out), want)); /* the environment is the one given */
	CHECK(run_as(NULL, "/nonexistent-dir", "true", out, err, msg, sizeof(msg)) == -ENOENT &&
	      strstr(msg, "working folder"));

	if (geteuid() == 0) {
		/* a folder only nobody may enter, below one only root may */
		char work[160];
		snprintf(work, sizeof(work), "%s/attempt", dir);
		CHECK(mkdir(work, 0700) == 0 && chown(work, u.uid, u.gid) == 0);
		CHECK(chmod(dir, 0700) == 0);
		int rc = run_as(&u, work, "id -u; id -g; id -G; touch mine; cat /etc/shadow", out,
				err, msg, sizeof(msg));
		CHECK(rc == 1); /* cat fails */
		snprintf(want, sizeof(want), "%u\n%u\n", (unsigned)u.uid, (unsigned)u.gid);
		CHECK(!strncmp(slurp(out), want, strlen(want)));
		CHECK(!strstr(slurp(out), "root:"));
		CHECK(strstr(slurp(err), "Permission denied") != NULL);
		char mine[200];
		snprintf(mine, sizeof(mine), "%s/mine", work);
		struct stat st;
		CHECK(stat(mine, &st) == 0 && st.st_uid == u.uid && st.st_gid == u.gid);
		/* an identity that cannot be taken: nothing runs */
		job_user bad = u;
		bad.ngroups = -1; /* setgroups fails with EINVAL */
		unlink(mine);
		rc = run_as(&bad, work, "touch mine", out, err, msg, sizeof(msg));
		CHECK(rc == -EINVAL && strstr(msg, "groups") && strstr(msg, "nobody"));
		CHECK(access(mine, F_OK) != 0);
	} else {
		printf("test_job_user: not root, the identity change is not tested\n");
		/* a non-root caller cannot become another user */
		int rc = run_as(&u, dir, "true", out, err, msg, sizeof(msg));
		CHECK(rc < 0);
	}

	char cmd[200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove '%s'\n", dir);
	if (failures) {
		fprintf(stderr, "test_job_user: %d failures\n", failures);
		return 1;
	}
	printf("test_job_user: ok\n");
	return 0;
}
