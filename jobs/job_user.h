/* job_user: who a job runs as, and starting a process as that user, as
 * Hadoop's LinuxContainerExecutor does. A job runs as the owner of its spec
 * file; the jobtracker looks the owner up and checks it against its policy
 * (no root unless allowed, no uid below min_uid, no banned user name); each
 * tasktracker looks it up again and starts the attempt's child with that
 * uid, primary group and supplementary groups.
 *
 * job_user_spawn forks and, in the child, makes only async-signal-safe
 * calls (the tracker has gRPC threads: nothing may lock or allocate there)
 * before exec: process group, signals, descriptors, chdir, setgroups,
 * setgid, setuid. Everything it needs is prepared by the caller first.
 * Functions here are safe to call from any thread. */
#ifndef JOB_USER_H
#define JOB_USER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "cdl_client.h"

#define JOB_USER_GROUPS_MAX 64
#define JOB_USER_NAME_MAX   64

typedef struct job_user {
	uid_t uid;
	gid_t gid;			   /* primary group of the attempt */
	gid_t groups[JOB_USER_GROUPS_MAX]; /* supplementary groups (getgrouplist) */
	int ngroups;			   /* entries of groups */
	char name[JOB_USER_NAME_MAX];	   /* login name */
} job_user;

/* Look uid up in the local user database. The primary group is want_gid
 * (the spec file's group) when the user belongs to it, else the user's
 * own; the supplementary groups are the user's (at most
 * JOB_USER_GROUPS_MAX). 0, -ENOENT (no such user here) or -errno. */
int job_user_lookup(uid_t uid, gid_t want_gid, job_user *u);

typedef struct job_user_policy {
	bool allow_root;    /* root-owned specs run as root (one-machine clusters) */
	unsigned min_uid;   /* owners with a smaller uid are refused (root apart) */
	const char *banned; /* comma-separated user names that may not run jobs */
} job_user_policy;

/* Whether u may run jobs under p; when not, why says so in one line. */
bool job_user_allowed(const job_user_policy *p, const job_user *u, char *why, size_t n);

/* A client of the cluster whose every request carries u's uid, gid and
 * groups in its Cred, so that the namenode checks permissions for u and
 * what it creates belongs to u (trackers may act for any uid, as NFS
 * servers trust AUTH_SYS from exported hosts). u must outlive the client.
 * NULL on bad options (logged). */
cdl_client *job_user_client(const cdl_client_opts *o, const job_user *u);

/* One process to start. */
typedef struct job_spawn {
	const char *path;     /* program to exec */
	char *const *argv;    /* its arguments */
	char *const *envp;    /* its whole environment */
	const char *dir;      /* working directory, entered before dropping privileges */
	int in_fd;	      /* becomes 0; -1 = /dev/null */
	int out_fd, err_fd;   /* become 1 and 2 (required) */
	const job_user *user; /* run as this user; NULL = as we are */
	bool new_pgroup;      /* lead a process group of its own (to kill it whole) */
} job_spawn;

/* Start s. Every other descriptor is closed at exec. When the child cannot
 * take the user's identity (or enter dir, or exec), it exits without
 * running anything and this returns -errno with err naming the step.
 * 0 with *pid on success. */
int job_user_spawn(const job_spawn *s, pid_t *pid, char *err, size_t errlen);

#endif
