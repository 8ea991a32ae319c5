/* job_user: job owners and starting processes as them; see job_user.h. */
#include "job_user.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cdl_util.h"

int job_user_lookup(uid_t uid, gid_t want_gid, job_user *u)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	memset(u, 0, sizeof(*u));
	int e = getpwuid_r(uid, &pw, buf, sizeof(buf), &res);
	if (e)
		return -e;
	if (!res)
		return -ENOENT;
	if (strlen(pw.pw_name) >= sizeof(u->name))
		return -ENAMETOOLONG;
	u->uid = uid;
	snprintf(u->name, sizeof(u->name), "%s", pw.pw_name);
	int n = JOB_USER_GROUPS_MAX;
	if (getgrouplist(pw.pw_name, pw.pw_gid, u->groups, &n) < 0) {
		/* more groups than we pass on: keep the first ones (the
		 * user's own group is first) */
		n = JOB_USER_GROUPS_MAX;
	}
	u->ngroups = n;
	u->gid = pw.pw_gid;
	for (int i = 0; i < n; i++)
		if (u->groups[i] == want_gid)
			u->gid = want_gid;
	return 0;
}

/* Whether name is one of the comma-separated names in list (blanks around
 * names ignored). */
static bool in_list(const char *list, const char *name)
{
	size_t nl = strlen(name);
	for (const char *p = list; p && *p;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		size_t k = n;
		while (k > 0 && (p[k - 1] == ' ' || p[k - 1] == '\t'))
			k--;
		if (k == nl && k > 0 && !memcmp(p, name, k))
			return true;
		p += n;
	}
	return false;
}

bool job_user_allowed(const job_user_policy *p, const job_user *u, char *why, size_t n)
{
	if (u->uid == 0) {
		if (p->allow_root)
			return true;
		snprintf(why, n,
			 "jobs of 'root' are refused (the jobtracker's allow_root_jobs is off)");
		return false;
	}
	if (u->uid < p->min_uid) {
		snprintf(why, n,
			 "jobs of '%s' (uid %u) are refused: uids below %u may not run jobs",
			 u->name, (unsigned)u->uid, p->min_uid);
		return false;
	}
	if (in_list(p->banned, u->name)) {
		snprintf(why, n, "jobs of '%s' are refused: the user is banned", u->name);
		return false;
	}
	return true;
}

_Static_assert(sizeof(gid_t) == sizeof(uint32_t), "groups go to the wire as they are");

cdl_client *job_user_client(const cdl_client_opts *o, const job_user *u)
{
	cdl_client *c = cdl_client_new(o);
	if (!c)
		return NULL;
	/* Before any request: the client lends the Cred it sends with each.
	 * (fs/ has no option for this yet; see jobs/README.md.) */
	Caudal__Cred *cred = cdl_client_cred(c);
	cred->uid = u->uid;
	cred->gid = u->gid;
	cred->n_groups = (size_t)u->ngroups;
	cred->groups = (uint32_t *)u->groups;
	return c;
}

/* What failed in the child, sent back over the error pipe. */
enum spawn_step { S_FDS, S_CHDIR, S_GROUPS, S_GID, S_UID, S_STILL_ROOT, S_EXEC };
static const char *const step_names[] = {
    [S_FDS] = "set up its descriptors",	   [S_CHDIR] = "enter its working folder",
    [S_GROUPS] = "take the user's groups", [S_GID] = "take the user's group",
    [S_UID] = "take the user's uid",	   [S_STILL_ROOT] = "drop root",
    [S_EXEC] = "run the program",
};

/* In the child: report step and errno on the pipe and exit. Only
 * async-signal-safe calls. */
_Noreturn static void child_fail(int pfd, enum spawn_step step, int e)
{
	int msg[2] = {(int)step, e};
	ssize_t w = write(pfd, msg, sizeof(msg));
	(void)w;
	_exit(127);
}

/* The child between fork and exec: async-signal-safe calls only. */
_Noreturn static void child_main(const job_spawn *s, int devnull, int pfd)
{
	if (s->new_pgroup && setpgid(0, 0))
		child_fail(pfd, S_FDS, errno);
	/* default dispositions and an empty mask: the tracker blocks and
	 * ignores signals a task must get */
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &sa, NULL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* 0, 1, 2; the sources are above 2 (the parent made sure) */
	if (dup2(s->in_fd >= 0 ? s->in_fd : devnull, 0) < 0 || dup2(s->out_fd, 1) < 0 ||
	    dup2(s->err_fd, 2) < 0)
		child_fail(pfd, S_FDS, errno);
	/* nothing else of the tracker's (sockets, files) reaches the task */
	if (close_range(3, ~0u, CLOSE_RANGE_CLOEXEC)) {
		for (int fd = 3; fd < 65536; fd++)
			fcntl(fd, F_SETFD, FD_CLOEXEC);
	}
	/* enter the folder first: its parents may be closed to the user */
	if (s->dir && chdir(s->dir))
		child_fail(pfd, S_CHDIR, errno);
	if (s->user) {
		const job_user *u = s->user;
		if (setgroups((size_t)u->ngroups, u->groups))
			child_fail(pfd, S_GROUPS, errno);
		if (setgid(u->gid))
			child_fail(pfd, S_GID, errno);
		if (setuid(u->uid))
			child_fail(pfd, S_UID, errno);
		if (u->uid != 0 && (setuid(0) == 0 || geteuid() == 0))
			child_fail(pfd, S_STILL_ROOT, EPERM);
	}
	execve(s->path, s->argv, s->envp);
	child_fail(pfd, S_EXEC, errno);
}

int job_user_spawn(const job_spawn *s, pid_t *pid, char *err, size_t errlen)
{
	int pfd[2];
	int rc = 0;
	if (s->out_fd < 0 || s->err_fd < 0) {
		snprintf(err, errlen, "no output descriptors");
		return -EINVAL;
	}
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (devnull < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot open '/dev/null': %s", strerror(errno));
		return rc;
	}
	/* Descriptors 0..2 of ours must not be sources: dup2 onto 0..2 in
	 * order would clobber them. A daemon has them open (the log), so
	 * this only guards odd callers. */
	if (s->in_fd >= 0 && s->in_fd <= 2) {
		close(devnull);
		snprintf(err, errlen, "input descriptor %d is a standard one", s->in_fd);
		return -EINVAL;
	}
	if (pipe2(pfd, O_CLOEXEC)) {
		rc = -errno;
		snprintf(err, errlen, "cannot make a pipe: %s", strerror(errno));
		goto close_devnull;
	}
	pid_t p = fork();
	if (p < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot fork: %s", strerror(errno));
		goto close_pipe;
	}
	if (p == 0) {
		close(pfd[0]);
		child_main(s, devnull, pfd[1]);
	}
	close(pfd[1]);
	pfd[1] = -1;
	/* the pipe closes at exec (nothing read) or carries the failure */
	int msg[2];
	ssize_t k;
	while ((k = read(pfd[0], msg, sizeof(msg))) < 0 && errno == EINTR)
		;
	if (k == (ssize_t)sizeof(msg)) {
		int st;
		while (waitpid(p, &st, 0) < 0 && errno == EINTR)
			;
		int step = msg[0] >= 0 && msg[0] <= S_EXEC ? msg[0] : S_EXEC;
		rc = msg[1] > 0 ? -msg[1] : -EIO;
		if (s->user)
			snprintf(err, errlen, "cannot %s as '%s' (uid %u): %s", step_names[step],
				 s->user->name, (unsigned)s->user->uid, strerror(-rc));
		else
			snprintf(err, errlen, "cannot %s: %s", step_names[step], strerror(-rc));
		goto close_pipe;
	}
	*pid = p;
close_pipe:
	if (pfd[1] >= 0)
		close(pfd[1]);
	close(pfd[0]);
close_devnull:
	close(devnull);
	return rc;
}
