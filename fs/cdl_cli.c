/* caudal: the command line. Namespace and file commands talk to a namenode
 * through the client library; `up`, `down` and `status` run a local cluster
 * (a namenode and one datanode per loopback address) whose state lives
 * under one folder ($CAUDAL_HOME, default ./.caudal).
 *
 * Single-threaded apart from the client library's own threads. Errors are
 * one line on stderr, `caudal: cannot VERB 'SUBJECT': reason`, and a
 * non-zero exit (1 failure, 2 usage). */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cdl_progress.h"
#include "cdl_client.h"
#include "job_cli.h"
#include "cdl_log.h"
#include "cdl_rpc.h"
#include "cdl_sec.h"
#include "cdl_util.h"

extern char **environ;

#define DEFAULT_NAMENODE "127.0.0.1:9000"

static const char *g_namenode;	 /* --namenode, CAUDAL_NAMENODE, home file, default */
static int g_timeout_ms = 30000; /* --timeout: bound on every operation */
static cdl_client *g_client;

/* ------------------------------------------------------------ helpers */

static const char *namenode_addr(void);

static int fail(const char *verb, const char *subject, int rc)
{
	int e = rc < 0 ? -rc : rc;
	if (e == EHOSTUNREACH) /* what the RPC layer makes of an unreachable namenode */
		fprintf(stderr, "caudal: cannot %s '%s': namenode '%s' unreachable (%s)\n", verb,
			subject, namenode_addr(), strerror(e));
	else
		fprintf(stderr, "caudal: cannot %s '%s': %s\n", verb, subject, strerror(e));
	return 1;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "caudal: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, " (see 'caudal help')\n");
	va_end(ap);
	return 2;
}

/* Copies a line into a fixed buffer, cutting it at the newline. */
static void copy_line(char *dst, size_t n, const char *src)
{
	size_t k = strcspn(src, "\n");
	if (k >= n)
		k = n - 1;
	memcpy(dst, src, k);
	dst[k] = '\0';
}

/* Validates a path before it is sent; the message says what is wrong. */
static bool path_ok(const char *p)
{
	const char *why = NULL;
	int rc = cdl_path_check(p, &why);
	if (rc) {
		fprintf(stderr, "caudal: invalid path '%s': %s\n", p, why ? why : strerror(-rc));
		return false;
	}
	return true;
}

/* A validated copy of p without its trailing '/' (the caller frees it). */
static char *norm_path(const char *p)
{
	if (!path_ok(p))
		return NULL;
	char *s = xstrdup(p);
	size_t n = strlen(s);
	if (n > 1 && s[n - 1] == '/')
		s[n - 1] = '\0';
	return s;
}

static char *join_path(const char *dir, const char *name)
{
	return xasprintf("%s%s%s", dir, strcmp(dir, "/") == 0 ? "" : "/", name);
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');
	return s && s[1] ? s + 1 : p;
}

/* Parses "123", "64k", "1M", "2g" (powers of 1024). */
static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -EINVAL;
	unsigned shift = 0;
	switch (*end) {
	case '\0':
		break;
	case 'k':
	case 'K':
		shift = 10;
		break;
	case 'm':
	case 'M':
		shift = 20;
		break;
	case 'g':
	case 'G':
		shift = 30;
		break;
	default:
		return -EINVAL;
	}
	if (*end && end[1] && strcmp(end + 1, "iB") != 0 && strcmp(end + 1, "B") != 0)
		return -EINVAL;
	if (shift && v > (~0ULL >> shift))
		return -ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}

static int parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static void human(uint64_t v, char *buf, size_t n)
{
	const char *u = "BKMGTP";
	double d = (double)v;
	int i = 0;
	while (d >= 1024 && i < 5) {
		d /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(buf, n, "%lluB", (unsigned long long)v);
	else
		snprintf(buf, n, "%.1f%c", d, u[i]);
}

static void fmt_time(int64_t ns, char *buf, size_t n)
{
	time_t t = (time_t)(ns / 1000000000);
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(buf, n, "%Y-%m-%d %H:%M", &tm);
}

static void fmt_mode(uint32_t mode, char out[11])
{
	uint32_t type = mode & 0170000;
	out[0] = type == 0040000   ? 'd'
		 : type == 0120000 ? 'l'
		 : type == 0010000 ? 'p'
		 : type == 0140000 ? 's'
		 : type == 0020000 ? 'c'
		 : type == 0060000 ? 'b'
				   : '-';
	const char *rwx = "rwxrwxrwx";
	for (int i = 0; i < 9; i++)
		out[1 + i] = mode & (1u << (8 - i)) ? rwx[i] : '-';
	if (mode & 04000)
		out[3] = out[3] == 'x' ? 's' : 'S';
	if (mode & 02000)
		out[6] = out[6] == 'x' ? 's' : 'S';
	if (mode & 01000)
		out[9] = out[9] == 'x' ? 't' : 'T';
	out[10] = '\0';
}

static const char *type_name(uint32_t mode)
{
	switch (mode & 0170000) {
	case 0040000:
		return "directory";
	case 0120000:
		return "symlink";
	case 0100000:
		return "file";
	case 0010000:
		return "fifo";
	case 0140000:
		return "socket";
	case 0020000:
		return "character device";
	case 0060000:
		return "block device";
	default:
		return "unknown";
	}
}

static void user_name(uint32_t uid, char *buf, size_t n)
{
	struct passwd *pw = getpwuid(uid);
	if (pw)
		snprintf(buf, n, "%s", pw->pw_name);
	else
		snprintf(buf, n, "%u", uid);
}

static void group_name(uint32_t gid, char *buf, size_t n)
{
	struct group *gr = getgrgid(gid);
	if (gr)
		snprintf(buf, n, "%s", gr->gr_name);
	else
		snprintf(buf, n, "%u", gid);
}

static void free_msg(void *m)
{
	if (m)
		protobuf_c_message_free_unpacked((ProtobufCMessage *)m, NULL);
}

static bool is_dir(const Caudal__Attr *a)
{
	return (a->mode & 0170000) == 0040000;
}

/* ------------------------------------------------------------ options */

/* Options of one command: flags and values by letter, the rest positional.
 * `spec` is getopt-like ("r:b:f"); options may come anywhere on the line,
 * "-" is positional (stdin/stdout), "--" ends options. */
struct opts {
	bool set[128];
	const char *val[128];
	char **pos;
	int npos;
};

static int parse_opts(int argc, char **argv, const char *spec, struct opts *o)
{
	memset(o, 0, sizeof(*o));
	o->pos = xcalloc((size_t)argc + 1, sizeof(char *));
	bool done = false;
	for (int i = 0; i < argc; i++) {
		char *a = argv[i];
		if (done || a[0] != '-' || a[1] == '\0') {
			o->pos[o->npos++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			done = true;
			continue;
		}
		for (char *p = a + 1; *p; p++) {
			unsigned char ch = (unsigned char)*p;
			const char *s = ch < 128 && ch != ':' ? strchr(spec, ch) : NULL;
			if (!s) {
				char opt[3] = {'-', (char)ch, 0};
				return usage_error("unknown option '%s'", opt);
			}
			o->set[ch] = true;
			if (s[1] == ':') {
				if (p[1]) {
					o->val[ch] = p + 1;
				} else if (i + 1 < argc) {
					o->val[ch] = argv[++i];
				} else {
					char opt[3] = {'-', (char)ch, 0};
					return usage_error("option '%s' needs a value", opt);
				}
				break;
			}
		}
	}
	return 0;
}

/* ------------------------------------------------------------ client */

static char *home_dir(void)
{
	const char *h = getenv("CAUDAL_HOME");
	return xstrdup(h && *h ? h : ".caudal");
}

/* The namenode to talk to: --namenode, $CAUDAL_NAMENODE, the address
 * `caudal up` recorded in the state folder, or 127.0.0.1:9000. */
static const char *namenode_addr(void)
{
	static char buf[256];
	if (g_namenode)
		return g_namenode;
	const char *e = getenv("CAUDAL_NAMENODE");
	if (e && *e)
		return e;
	char *home = home_dir();
	char *f = xasprintf("%s/namenode.addr", home);
	FILE *fp = fopen(f, "r");
	free(f);
	free(home);
	if (fp) {
		bool ok = fgets(buf, sizeof(buf), fp) != NULL;
		fclose(fp);
		buf[strcspn(buf, "\r\n")] = '\0';
		if (ok && *buf)
			return buf;
	}
	return DEFAULT_NAMENODE;
}

static cdl_client *client_make(const char *addr, int io_ms)
{
	cdl_client_opts o = {0};
	o.namenode = addr;
	o.io_timeout_ms = io_ms;
	o.rpc_timeout_ms = io_ms < 10000 ? io_ms : 10000;
	o.client_host = getenv("CAUDAL_CLIENT_HOST");
	const char *renew = getenv("CAUDAL_LEASE_RENEW_MS");
	o.lease_renew_ms = renew ? atoi(renew) : 0;
	return cdl_client_new(&o);
}

static cdl_client *client(void)
{
	if (!g_client) {
		/* our identity: the admin certificate for root, a user's own
		 * certificate for anyone else (DESIGN.md, "Security") */
		char err[512];
		char *home = home_dir();
		int rc = cdl_sec_client_init(home, NULL, err, sizeof(err));
		free(home);
		if (rc < 0) {
			fprintf(stderr, "caudal: %s\n", err);
			exit(1);
		}
		g_client = client_make(namenode_addr(), g_timeout_ms);
		if (!g_client) {
			fprintf(stderr, "caudal: cannot use namenode '%s': invalid address\n",
				namenode_addr());
			exit(2);
		}
	}
	return g_client;
}

static int do_stat(const char *path, Caudal__Attr **a)
{
	return cdl_stat(client(), path, a);
}

/* ------------------------------------------------------------ namespace commands */

static void print_entry(const char *name, const Caudal__Attr *a, bool lng)
{
	if (!lng) {
		printf("%s\n", name);
		return;
	}
	char mode[11], tm[32], user[64], grp[64], rep[16];
	fmt_mode(a->mode, mode);
	fmt_time(a->mtime_ns, tm, sizeof(tm));
	user_name(a->uid, user, sizeof(user));
	group_name(a->gid, grp, sizeof(grp));
	if ((a->mode & 0170000) == 0100000)
		snprintf(rep, sizeof(rep), "%u", a->replication);
	else
		snprintf(rep, sizeof(rep), "-");
	printf("%s %3s %-8s %-8s %12llu %s %s\n", mode, rep, user, grp, (unsigned long long)a->size,
	       tm, name);
}

/* Call fn with each page of directory path's listing (1000 entries a
 * Readdir) until the last or until fn returns non-zero. 0 or -errno. */
static int each_page(const char *path, int (*fn)(const Caudal__ReaddirReply *rep, void *arg),
		     void *arg)
{
	char *after = xstrdup("");
	int rc;
	for (;;) {
		Caudal__Target t = CAUDAL__TARGET__INIT;
		Caudal__ReaddirRequest req = CAUDAL__READDIR_REQUEST__INIT;
		t.path = (char *)path;
		req.target = &t;
		req.after = after;
		req.limit = 1000;
		req.cred = cdl_client_cred(client());
		Caudal__ReaddirReply *rep;
		rc = cdl_client_call_err(client(), CDL_NN_Readdir, &req.base,
					 (ProtobufCMessage **)&rep);
		if (rc)
			break;
		rc = fn(rep, arg);
		bool more = rc == 0 && rep->more && rep->n_entries > 0;
		if (more) {
			free(after);
			after = xstrdup(rep->entries[rep->n_entries - 1]->name);
		}
		free_msg(rep);
		if (!more)
			break;
	}
	free(after);
	return rc;
}

static int print_page(const Caudal__ReaddirReply *rep, void *lng)
{
	for (size_t i = 0; i < rep->n_entries; i++) {
		Caudal__Dirent *d = rep->entries[i];
		Caudal__Attr empty = CAUDAL__ATTR__INIT;
		print_entry(d->name, d->attr ? d->attr : &empty, *(bool *)lng);
	}
	return 0;
}

static int cmd_ls(struct opts *o)
{
	char *path = norm_path(o->npos ? o->pos[0] : "/");
	if (!path)
		return 1;
	bool lng = o->set['l'];
	Caudal__Attr *a;
	int rc = do_stat(path, &a);
	if (rc) {
		fail("access", path, rc);
		free(path);
		return 1;
	}
	if (!is_dir(a)) {
		print_entry(path, a, lng);
		free_msg(a);
		free(path);
		return 0;
	}
	free_msg(a);
	rc = each_page(path, print_page, &lng);
	if (rc)
		fail("list", path, rc);
	free(path);
	return rc ? 1 : 0;
}

static int cmd_mkdir(struct opts *o)
{
	int ret = 0;
	for (int i = 0; i < o->npos; i++) {
		char *p = norm_path(o->pos[i]);
		if (!p) {
			ret = 1;
			continue;
		}
		int rc = cdl_mkdir(client(), p, 0755 & ~0022u, o->set['p']);
		if (rc)
			ret = fail("create directory", p, rc);
		free(p);
	}
	return ret;
}

static int cmd_rm(struct opts *o)
{
	int ret = 0;
	for (int i = 0; i < o->npos; i++) {
		char *p = norm_path(o->pos[i]);
		if (!p) {
			ret = 1;
			continue;
		}
		if (strcmp(p, "/") == 0) {
			fprintf(stderr, "caudal: cannot remove '/': refusing to remove the root\n");
			ret = 1;
			free(p);
			continue;
		}
		Caudal__Attr *a;
		int rc = do_stat(p, &a);
		if (rc == 0) {
			if (is_dir(a) && !o->set['r'])
				rc = -EISDIR;
			free_msg(a);
		}
		if (rc == 0 && !o->set['S']) {
			/* the trash, when the namenode keeps one (HDFS's rm) */
			Caudal__Target t = CAUDAL__TARGET__INIT;
			Caudal__TrashRequest tq = CAUDAL__TRASH_REQUEST__INIT;
			t.path = p;
			tq.target = &t;
			tq.cred = cdl_client_cred(client());
			Caudal__TrashReply *tr;
			rc = cdl_client_call_err(client(), CDL_NN_Trash, &tq.base,
						 (ProtobufCMessage **)&tr);
			if (rc == 0 && tr->moved) {
				printf("Moved: '%s' to trash at: %s\n", p, tr->path);
				free_msg(tr);
				free(p);
				continue;
			}
			free_msg(rc == 0 ? tr : NULL);
			if (rc == -EXDEV) {
				fprintf(stderr,
					"caudal: cannot move '%s' to the trash: it holds the trash "
					"(-skipTrash removes it at once)\n",
					p);
				ret = 1;
				free(p);
				continue;
			}
		}
		if (rc == 0)
			rc = cdl_delete(client(), p, o->set['r']);
		if (rc && !(rc == -ENOENT && o->set['f']))
			ret = fail("remove", p, rc);
		free(p);
	}
	return ret;
}

/* rm takes HDFS's -skipTrash (one option of many letters): it becomes -S. */
static int cmd_rm_raw(int argc, char **argv)
{
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "-skipTrash"))
			argv[i] = "-S";
	}
	struct opts o;
	int rc = parse_opts(argc, argv, "rfS", &o);
	if (rc == 0 && o.npos < 1) {
		fprintf(stderr, "usage: caudal rm [-r] [-f] [-skipTrash] PATH...\n");
		rc = 2;
	}
	if (rc == 0)
		rc = cmd_rm(&o);
	free(o.pos);
	return rc;
}

/* caudal expunge: the caller's trash, removed now (HDFS's -expunge -immediate). */
static int cmd_expunge(struct opts *o)
{
	(void)o;
	Caudal__TrashRequest tq = CAUDAL__TRASH_REQUEST__INIT;
	tq.expunge = true;
	tq.cred = cdl_client_cred(client());
	Caudal__TrashReply *tr;
	int rc = cdl_client_call_err(client(), CDL_NN_Trash, &tq.base, (ProtobufCMessage **)&tr);
	if (rc)
		return fail("empty", "the trash", rc);
	if (!tr->interval_ms)
		printf("the trash is off (the namenode's trash_interval is 0)\n");
	else
		printf("Deleted trash %s\n", tr->path);
	free_msg(tr);
	return 0;
}

static int cmd_mv(struct opts *o)
{
	char *src = norm_path(o->pos[0]), *dst = norm_path(o->pos[1]);
	int ret = 1;
	if (!src || !dst)
		goto out;
	/* like mv(1): into an existing directory */
	Caudal__Attr *a;
	if (do_stat(dst, &a) == 0) {
		if (is_dir(a)) {
			char *d = join_path(dst, base_name(src));
			free(dst);
			dst = d;
		}
		free_msg(a);
	}
	int rc = cdl_rename(client(), src, dst);
	ret = rc ? fail("move", src, rc) : 0;
out:
	free(src);
	free(dst);
	return ret;
}

static int print_blocks(const char *path, bool table)
{
	Caudal__Target t = CAUDAL__TARGET__INIT;
	Caudal__GetBlocksRequest req = CAUDAL__GET_BLOCKS_REQUEST__INIT;
	t.path = (char *)path;
	req.target = &t;
	req.client_host = (char *)cdl_client_host(client());
	req.cred = cdl_client_cred(client());
	Caudal__GetBlocksReply *rep;
	int rc =
	    cdl_client_call_err(client(), CDL_NN_GetBlocks, &req.base, (ProtobufCMessage **)&rep);
	if (rc)
		return rc;
	if (rep->n_blocks == 0 && rep->inline_data.len)
		printf(table ? "inline %zu\n" : "inline: %zu bytes in the inode record\n",
		       rep->inline_data.len);
	for (size_t i = 0; i < rep->n_blocks; i++) {
		Caudal__LocatedBlock *b = rep->blocks[i];
		if (table)
			printf("%llu %llu %llu %llu ", (unsigned long long)b->id,
			       (unsigned long long)b->gen, (unsigned long long)b->offset,
			       (unsigned long long)b->length);
		else
			printf("block %zu: id %llu gen %llu offset %llu length %llu%s replicas ", i,
			       (unsigned long long)b->id, (unsigned long long)b->gen,
			       (unsigned long long)b->offset, (unsigned long long)b->length,
			       b->corrupt ? " CORRUPT" : "");
		for (size_t j = 0; j < b->n_locs; j++)
			printf("%s%s:%u", j ? "," : "", b->locs[j]->host, b->locs[j]->data_port);
		printf("%s\n", b->n_locs ? "" : "-");
	}
	free_msg(rep);
	return 0;
}

static int cmd_stat(struct opts *o)
{
	char *p = norm_path(o->pos[0]);
	if (!p)
		return 1;
	Caudal__Attr *a;
	int rc = do_stat(p, &a);
	if (rc) {
		fail("stat", p, rc);
		free(p);
		return 1;
	}
	char mode[11], at[32], mt[32], ct[32], user[64], grp[64];
	fmt_mode(a->mode, mode);
	fmt_time(a->atime_ns, at, sizeof(at));
	fmt_time(a->mtime_ns, mt, sizeof(mt));
	fmt_time(a->ctime_ns, ct, sizeof(ct));
	user_name(a->uid, user, sizeof(user));
	group_name(a->gid, grp, sizeof(grp));
	printf("path: %s\ntype: %s\nsize: %llu\nino: %llu\nmode: %04o (%s)\n"
	       "owner: %u (%s)\ngroup: %u (%s)\nlinks: %u\n",
	       p, type_name(a->mode), (unsigned long long)a->size, (unsigned long long)a->ino,
	       a->mode & 07777, mode, a->uid, user, a->gid, grp, a->nlink);
	if ((a->mode & 0170000) == 0100000)
		printf("replication: %u\nblock_size: %llu\nblocks: %u\nunder_construction: %s\n",
		       a->replication, (unsigned long long)a->block_size, a->blocks,
		       a->under_construction ? "yes" : "no");
	printf("access: %s\nmodify: %s\nchange: %s\n", at, mt, ct);
	bool file = (a->mode & 0170000) == 0100000;
	free_msg(a);
	if (file && (rc = print_blocks(p, false)) != 0)
		fail("list blocks of", p, rc);
	free(p);
	return rc ? 1 : 0;
}

static int cmd_blocks(struct opts *o)
{
	char *p = norm_path(o->pos[0]);
	if (!p)
		return 1;
	int rc = print_blocks(p, true);
	if (rc)
		fail("list blocks of", p, rc);
	free(p);
	return rc ? 1 : 0;
}

static int fsck_path(const char *p, uint32_t max_problems, Caudal__FsckReply **out)
{
	Caudal__Target t = CAUDAL__TARGET__INIT;
	Caudal__FsckRequest req = CAUDAL__FSCK_REQUEST__INIT;
	t.path = (char *)p;
	req.target = &t;
	req.max_problems = max_problems;
	req.cred = cdl_client_cred(client());
	return cdl_client_call_err(client(), CDL_NN_Fsck, &req.base, (ProtobufCMessage **)out);
}

static bool fsck_healthy(const Caudal__FsckReply *r)
{
	return r->under_replicated == 0 && r->corrupt == 0 && r->missing == 0 &&
	       r->distinct_hosts_violations == 0;
}

static int cmd_setrep(struct opts *o)
{
	unsigned long long n;
	if (parse_uint(o->pos[0], 32, &n) || n == 0)
		return usage_error("invalid replication '%s' (want 1..32)", o->pos[0]);
	char *p = norm_path(o->pos[1]);
	if (!p)
		return 1;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	Caudal__SetReplicationRequest req = CAUDAL__SET_REPLICATION_REQUEST__INIT;
	t.path = p;
	req.target = &t;
	req.replication = (uint32_t)n;
	req.cred = cdl_client_cred(client());
	ProtobufCMessage *rep;
	int rc = cdl_client_call_err(client(), CDL_NN_SetReplication, &req.base, &rep);
	if (rc) {
		fail("set replication of", p, rc);
		free(p);
		return 1;
	}
	free_msg(rep);
	if (o->set['w']) {
		/* wait until the namenode has added or removed the replicas;
		 * progress: blocks at the new replication */
		int64_t end = cdl_now_ms() + g_timeout_ms;
		cdl_progress pg;
		cdl_progress_start(&pg, cdl_progress_wanted(o->set['q']), "blocks replicated",
				   false, 0);
		for (;;) {
			Caudal__FsckReply *f;
			rc = fsck_path(p, 0, &f);
			bool ok = rc == 0 && f->under_replicated == 0 && f->over_replicated == 0;
			if (rc == 0) {
				uint64_t off = f->under_replicated + f->over_replicated;
				cdl_progress_update(&pg, f->blocks > off ? f->blocks - off : 0,
						    f->blocks ? f->blocks : 1);
			}
			free_msg(rc == 0 ? f : NULL);
			if (ok) {
				cdl_progress_end(&pg);
				break;
			}
			if (cdl_now_ms() >= end) {
				if (pg.on)
					fputc('\n', stderr);
				fail("wait for replication of", p, rc ? rc : -ETIMEDOUT);
				free(p);
				return 1;
			}
			usleep(200000);
		}
	}
	free(p);
	return 0;
}

/* The entry names of directory path (at most max; -E2BIG past that), for
 * fsck's progress. 0 with *names to free with free_names, or -errno. */
struct names {
	char **v;
	size_t n, max;
};

static int add_names(const Caudal__ReaddirReply *rep, void *arg)
{
	struct names *l = arg;
	if (l->n + rep->n_entries > l->max)
		return -E2BIG;
	l->v = xrealloc(l->v, (l->n + rep->n_entries + 1) * sizeof(char *));
	for (size_t i = 0; i < rep->n_entries; i++)
		l->v[l->n++] = xstrdup(rep->entries[i]->name);
	return 0;
}

static int list_names(const char *path, size_t max, char ***names, size_t *n)
{
	struct names l = {NULL, 0, max};
	int rc = each_page(path, add_names, &l);
	if (rc) { /* nothing half-listed for the caller to free */
		for (size_t i = 0; i < l.n; i++)
			free(l.v[i]);
		free(l.v);
		l.v = NULL;
		l.n = 0;
	}
	*names = l.v;
	*n = l.n;
	return rc;
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* Adds b's counts into a, and b's problems into problems (at most max). */
static void fsck_add(Caudal__FsckReply *a, const Caudal__FsckReply *b, char **problems, size_t *np,
		     size_t max)
{
	a->files += b->files;
	a->dirs += b->dirs;
	a->symlinks += b->symlinks;
	a->bytes += b->bytes;
	a->blocks += b->blocks;
	a->replicas += b->replicas;
	a->wanted += b->wanted;
	a->under_replicated += b->under_replicated;
	a->over_replicated += b->over_replicated;
	a->corrupt += b->corrupt;
	a->missing += b->missing;
	a->distinct_hosts_violations += b->distinct_hosts_violations;
	a->open_files += b->open_files;
	a->inline_files += b->inline_files;
	a->inline_bytes += b->inline_bytes;
	for (size_t i = 0; i < b->n_problems && *np < max; i++)
		problems[(*np)++] = xstrdup(b->problems[i]);
}

#define FSCK_PROGRESS_MAX 100000 /* entries of PATH listed to show progress */

/* fsck on a terminal: one check per entry of directory p, so that a
 * progress line can say how far it is (the namenode's walk is one call);
 * the sum is the same as one check of p (its own directory counted once).
 * 0 with *out filled (problems in *problems), 1: not a directory it can
 * list (check it whole instead), or -errno. */
static int fsck_by_entries(const char *p, uint32_t max_problems, Caudal__FsckReply *out,
			   char ***problems, size_t *np)
{
	Caudal__Attr *a;
	if (do_stat(p, &a) != 0)
		return 1;
	bool dir = is_dir(a);
	free_msg(a);
	char **names;
	size_t n;
	if (!dir || list_names(p, FSCK_PROGRESS_MAX, &names, &n) != 0)
		return 1;
	caudal__fsck_reply__init(out);
	out->dirs = 1;
	*problems = xcalloc(max_problems + 1, sizeof(char *));
	*np = 0;
	cdl_progress pg;
	cdl_progress_start(&pg, true, "entries checked", false, n);
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		char *cp = xasprintf("%s%s%s", p, strcmp(p, "/") ? "/" : "", names[i]);
		Caudal__FsckReply *r;
		rc = fsck_path(cp, max_problems, &r);
		if (rc == -ENOENT)
			rc = 0; /* removed since the listing */
		else if (rc == 0) {
			fsck_add(out, r, *problems, np, max_problems);
			free_msg(r);
		}
		free(cp);
		cdl_progress_update(&pg, i + 1, 0);
	}
	if (rc == 0)
		cdl_progress_end(&pg);
	else if (pg.on)
		fputc('\n', stderr);
	free_names(names, n);
	return rc;
}

static int cmd_fsck(struct opts *o)
{
	char *p = norm_path(o->npos ? o->pos[0] : "/");
	if (!p)
		return 1;
	uint32_t maxp = o->set['v'] ? 1000 : 0;
	Caudal__FsckReply sum, *r = NULL;
	char **problems = NULL;
	size_t np = 0;
	int rc = 1;
	if (cdl_progress_wanted(o->set['q']))
		rc = fsck_by_entries(p, maxp, &sum, &problems, &np);
	if (rc == 1) {
		rc = fsck_path(p, maxp, &r);
	} else if (rc == 0) {
		sum.problems = problems;
		sum.n_problems = np;
		r = &sum;
	}
	if (rc) {
		fail("check", p, rc);
		free_names(problems, np);
		free(p);
		return 1;
	}
	bool ok = fsck_healthy(r);
	printf("path: %s\n", p);
	printf("files: %llu\ndirs: %llu\nsymlinks: %llu\nbytes: %llu\nblocks: %llu\n",
	       (unsigned long long)r->files, (unsigned long long)r->dirs,
	       (unsigned long long)r->symlinks, (unsigned long long)r->bytes,
	       (unsigned long long)r->blocks);
	printf("replicas: %llu found, %llu wanted\n", (unsigned long long)r->replicas,
	       (unsigned long long)r->wanted);
	printf("under-replicated: %llu\nover-replicated: %llu\ncorrupt: %llu\nmissing: %llu\n",
	       (unsigned long long)r->under_replicated, (unsigned long long)r->over_replicated,
	       (unsigned long long)r->corrupt, (unsigned long long)r->missing);
	printf("distinct-host violations: %llu\nopen files: %llu\n",
	       (unsigned long long)r->distinct_hosts_violations, (unsigned long long)r->open_files);
	printf("inline files: %llu\ninline bytes: %llu\n", (unsigned long long)r->inline_files,
	       (unsigned long long)r->inline_bytes);
	for (size_t i = 0; i < r->n_problems; i++)
		printf("problem: %s\n", r->problems[i]);
	printf("status: %s\n", ok ? "HEALTHY" : "UNHEALTHY");
	if (r != &sum)
		free_msg(r);
	free_names(problems, np);
	free(p);
	return ok ? 0 : 1;
}

static int cmd_report(struct opts *o)
{
	(void)o;
	Caudal__Empty e = CAUDAL__EMPTY__INIT;
	Caudal__ReportReply *rep;
	Caudal__StatfsReply *st;
	int rc = cdl_client_call_err(client(), CDL_NN_Report, &e.base, (ProtobufCMessage **)&rep);
	if (rc)
		return fail("get a report from", namenode_addr(), rc);
	rc = cdl_client_call_err(client(), CDL_NN_Statfs, &e.base, (ProtobufCMessage **)&st);
	if (rc) {
		free_msg(rep);
		return fail("get a report from", namenode_addr(), rc);
	}
	printf("%-21s %-14s %-5s %9s %9s %9s %7s %9s %s\n", "DATANODE", "RACK", "STATE", "CAPACITY",
	       "USED", "REMAINING", "BLOCKS", "HEARTBEAT", "ID");
	for (size_t i = 0; i < rep->n_datanodes; i++) {
		Caudal__DatanodeInfo *d = rep->datanodes[i];
		char addr[300], cap[16], used[16], rem[16], hb[32];
		snprintf(addr, sizeof(addr), "%s:%u", d->host, d->data_port);
		human(d->capacity, cap, sizeof(cap));
		human(d->used, used, sizeof(used));
		human(d->remaining, rem, sizeof(rem));
		snprintf(hb, sizeof(hb), "%.1fs", (double)d->last_heartbeat_ms / 1000.0);
		printf("%-21s %-14s %-5s %9s %9s %9s %7u %9s %s\n", addr, d->rack,
		       !d->alive	    ? "dead"
		       : d->decommissioned  ? "out"
		       : d->decommissioning ? "decom"
					    : "live",
		       cap, used, rem, d->blocks, hb, d->id);
	}
	char cap[16], used[16], rem[16];
	human(st->capacity, cap, sizeof(cap));
	human(st->used, used, sizeof(used));
	human(st->remaining, rem, sizeof(rem));
	printf("live datanodes: %u\ndead datanodes: %u\n", st->live, st->dead);
	printf("capacity: %s\nused: %s\nremaining: %s\n", cap, used, rem);
	printf("files: %llu\nblocks: %llu\nsafe mode: %s\n", (unsigned long long)st->files,
	       (unsigned long long)st->blocks, st->safemode ? "on" : "off");
	printf("inline files: %llu\ninline bytes: %llu\n", (unsigned long long)st->inline_files,
	       (unsigned long long)st->inline_bytes);
	free_msg(rep);
	free_msg(st);
	return 0;
}

/* Take a datanode out of service (-c: put it back); -w waits until its
 * replicas all have enough copies elsewhere, when it may be stopped. */
static int cmd_decommission(struct opts *o)
{
	Caudal__DecommissionRequest req = CAUDAL__DECOMMISSION_REQUEST__INIT;
	req.datanode = o->pos[0];
	req.cancel = o->set['c'];
	req.cred = cdl_client_cred(client());
	int64_t end = cdl_now_ms() + g_timeout_ms;
	/* progress with -w: replicas copied of those pending at the start */
	cdl_progress pg;
	cdl_progress_start(&pg, o->set['w'] && cdl_progress_wanted(o->set['q']), "replicas copied",
			   false, 0);
	uint64_t first = UINT64_MAX;
	for (;;) {
		Caudal__DecommissionReply *r;
		int rc = cdl_client_call_err(client(), CDL_NN_Decommission, &req.base,
					     (ProtobufCMessage **)&r);
		if (rc) {
			if (pg.on)
				fputc('\n', stderr);
			return fail(req.cancel ? "recommission" : "decommission", o->pos[0], rc);
		}
		bool done = req.cancel || r->node->decommissioned;
		if (first == UINT64_MAX || r->pending > first)
			first = r->pending;
		cdl_progress_update(&pg, first - r->pending, first ? first : 1);
		if (done || !o->set['w'] || cdl_now_ms() >= end) {
			if (done)
				cdl_progress_end(&pg);
			else if (pg.on)
				fputc('\n', stderr);
			printf("%s:%u %s (%llu replicas still to copy)\n", r->node->host,
			       r->node->data_port,
			       r->node->decommissioned	  ? "decommissioned"
			       : r->node->decommissioning ? "decommissioning"
							  : "in service",
			       (unsigned long long)r->pending);
			free_msg(r);
			if (!done && o->set['w'])
				return fail("wait for the decommission of", o->pos[0], -ETIMEDOUT);
			return 0;
		}
		free_msg(r);
		usleep(200000);
	}
}

/* ------------------------------------------------------------ quotas */

/* A space quota: "123", "64k", "1M", "2g", "3t", "1p" (powers of 1024),
 * 1 .. 2^63-1 bytes. Says what is wrong on stderr. */
static int parse_quota_size(const char *s, int64_t *out)
{
	if (*s == '-') {
		fprintf(stderr, "caudal: invalid space quota '%s': it must be positive\n", s);
		return -EINVAL;
	}
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	unsigned shift = 0;
	const char *units = "kmgtpe";
	const char *u = *end ? strchr(units, tolower((unsigned char)*end)) : NULL;
	if (*end && u)
		shift = 10 * (unsigned)(u - units + 1);
	bool tail_ok = !*end || (u && (!end[1] || !strcmp(end + 1, "iB") || !strcmp(end + 1, "B")));
	if (end == s || !tail_ok) {
		fprintf(stderr, "caudal: invalid space quota '%s' (bytes, or with k, m, g, t, p)\n",
			s);
		return -EINVAL;
	}
	if (errno == ERANGE || (shift && v > ((unsigned long long)INT64_MAX >> shift)) ||
	    (v << shift) > (unsigned long long)INT64_MAX) {
		fprintf(stderr, "caudal: space quota '%s' is too large (at most %lld bytes)\n", s,
			(long long)INT64_MAX);
		return -ERANGE;
	}
	if (v == 0) {
		fprintf(stderr, "caudal: invalid space quota '%s': it must be positive\n", s);
		return -EINVAL;
	}
	*out = (int64_t)(v << shift);
	return 0;
}

static int parse_name_quota(const char *s, int64_t *out)
{
	unsigned long long v;
	if (*s == '-' || parse_uint(s, (unsigned long long)INT64_MAX, &v) || v == 0) {
		fprintf(stderr, "caudal: invalid name quota '%s' (want 1..%lld)\n", s,
			(long long)INT64_MAX);
		return -EINVAL;
	}
	*out = (int64_t)v;
	return 0;
}

static int quota_fail(const char *verb, const char *path, int rc)
{
	fail(verb, path, rc);
	if (rc == -EPERM || rc == -EACCES)
		fprintf(stderr, "caudal: only root (the admin certificate) sets quotas\n");
	return 1;
}

static int get_quota(const char *path, bool nearest, bool summary, Caudal__QuotaReply **r)
{
	Caudal__Target t = CAUDAL__TARGET__INIT;
	Caudal__QuotaRequest req = CAUDAL__QUOTA_REQUEST__INIT;
	t.path = (char *)path;
	req.target = &t;
	req.nearest = nearest;
	req.summary = summary;
	req.cred = cdl_client_cred(client());
	return cdl_client_call_err(client(), CDL_NN_GetQuota, &req.base, (ProtobufCMessage **)r);
}

static void quota_line(const char *what, int64_t q, uint64_t used, bool bytes)
{
	char h1[32] = "", h2[32] = "";
	if (q < 0) {
		printf("%-12s none (using %llu)\n", what, (unsigned long long)used);
		return;
	}
	if (bytes) {
		human((uint64_t)q, h1, sizeof(h1));
		human(used, h2, sizeof(h2));
	}
	long long left = (long long)q - (long long)used;
	printf("%-12s %lld%s%s%s, using %llu%s%s%s, %lld left\n", what, (long long)q,
	       bytes ? " (" : "", h1, bytes ? ")" : "", (unsigned long long)used, bytes ? " (" : "",
	       h2, bytes ? ")" : "", left);
}

/* caudal quota set DIR [-n N] [-s SIZE] | clear DIR [-n] [-s] | show DIR:
 * HDFS's dfsadmin -setQuota, -setSpaceQuota, -clrQuota, -clrSpaceQuota. */
static int cmd_quota(int argc, char **argv)
{
	if (argc < 1)
		return usage_error(
		    "quota: set DIR [-n N] [-s SIZE] | clear DIR [-n] [-s] | show DIR");
	const char *sub = argv[0];
	bool set = !strcmp(sub, "set"), clear = !strcmp(sub, "clear"), show = !strcmp(sub, "show");
	if (!set && !clear && !show)
		return usage_error("quota: unknown subcommand '%s' (set, clear or show)", sub);
	struct opts o;
	int rc = parse_opts(argc - 1, argv + 1, set ? "n:s:" : clear ? "ns" : "", &o);
	if (rc)
		return rc;
	int ret = 1;
	char *p = NULL;
	if (o.npos != 1) {
		ret = usage_error("quota %s: one directory", sub);
		goto out;
	}
	if (!(p = norm_path(o.pos[0])))
		goto out;
	if (show) {
		Caudal__QuotaReply *r;
		if ((rc = get_quota(p, false, false, &r)))
			goto failed;
		printf("%s\n", p);
		quota_line("names", r->ns_quota, r->ns_used, false);
		quota_line("space", r->ds_quota, r->ds_used, true);
		free_msg(r);
		ret = 0;
		goto out;
	}
	Caudal__Target t = CAUDAL__TARGET__INIT;
	Caudal__SetQuotaRequest req = CAUDAL__SET_QUOTA_REQUEST__INIT;
	t.path = p;
	req.target = &t;
	req.cred = cdl_client_cred(client());
	if (set) {
		if (!o.set['n'] && !o.set['s']) {
			ret = usage_error("quota set: -n N (names) and/or -s SIZE (bytes)");
			goto out;
		}
		if (o.set['n'] && parse_name_quota(o.val['n'], &req.ns_quota))
			goto out;
		if (o.set['s'] && parse_quota_size(o.val['s'], &req.ds_quota))
			goto out;
		req.set_ns = o.set['n'];
		req.set_ds = o.set['s'];
	} else {
		/* neither flag: both, as clearing "the quotas" means */
		bool both = !o.set['n'] && !o.set['s'];
		req.set_ns = both || o.set['n'];
		req.set_ds = both || o.set['s'];
		req.ns_quota = req.ds_quota = -1;
	}
	ProtobufCMessage *rep;
	if ((rc = cdl_client_call_err(client(), CDL_NN_SetQuota, &req.base, &rep)))
		goto failed;
	free_msg(rep);
	ret = 0;
	goto out;
failed:
	ret = quota_fail(show  ? "show the quota of"
			 : set ? "set the quota of"
			       : "clear the quota of",
			 p, rc);
out:
	free(p);
	free(o.pos);
	return ret;
}

/* caudal count [-q] PATH...: HDFS's `hdfs dfs -count [-q]` columns. */
static int cmd_count(struct opts *o)
{
	int ret = 0;
	if (o->set['q'])
		printf("%12s %15s %15s %15s ", "QUOTA", "REM_QUOTA", "SPACE_QUOTA",
		       "REM_SPACE_QUOTA");
	printf("%12s %12s %18s %s\n", "DIR_COUNT", "FILE_COUNT", "CONTENT_SIZE", "PATHNAME");
	for (int i = 0; i < o->npos; i++) {
		char *p = norm_path(o->pos[i]);
		if (!p) {
			ret = 1;
			continue;
		}
		Caudal__QuotaReply *r;
		int rc = get_quota(p, false, true, &r);
		if (rc) {
			ret = fail("count", p, rc);
			free(p);
			continue;
		}
		if (o->set['q']) {
			char q[24] = "none", rq[24] = "inf", sq[24] = "none", rsq[24] = "inf";
			if (r->ns_quota >= 0) {
				snprintf(q, sizeof(q), "%lld", (long long)r->ns_quota);
				snprintf(rq, sizeof(rq), "%lld",
					 (long long)r->ns_quota - (long long)(r->dirs + r->files));
			}
			if (r->ds_quota >= 0) {
				snprintf(sq, sizeof(sq), "%lld", (long long)r->ds_quota);
				snprintf(rsq, sizeof(rsq), "%lld",
					 (long long)r->ds_quota - (long long)r->space);
			}
			printf("%12s %15s %15s %15s ", q, rq, sq, rsq);
		}
		printf("%12llu %12llu %18llu %s\n", (unsigned long long)r->dirs,
		       (unsigned long long)r->files, (unsigned long long)r->length, p);
		free_msg(r);
		free(p);
	}
	return ret;
}

/* caudal refresh-nodes: the namenode reads its hosts files again. */
static int cmd_refresh_nodes(struct opts *o)
{
	(void)o;
	Caudal__RefreshNodesRequest req = CAUDAL__REFRESH_NODES_REQUEST__INIT;
	req.cred = cdl_client_cred(client());
	Caudal__RefreshNodesReply *r;
	int rc = cdl_client_call(client(), CDL_NN_RefreshNodes, &req.base, (ProtobufCMessage **)&r);
	if (rc) {
		fail("refresh", "the datanode lists", rc);
		if (rc == -EPERM || rc == -EACCES)
			fprintf(stderr,
				"caudal: only root (the admin certificate) refreshes them\n");
		return 1;
	}
	if (r->err) {
		if (r->message && *r->message)
			fprintf(stderr, "caudal: cannot refresh the datanode lists: %s\n",
				r->message);
		else
			fail("refresh", "the datanode lists", -(int)r->err);
		if (r->err == EPERM)
			fprintf(stderr,
				"caudal: only root (the admin certificate) refreshes them\n");
		free_msg(r);
		return 1;
	}
	printf("%s\n%u datanodes draining for the exclude file, %u refused by the include "
	       "file\n",
	       r->message, r->decommissioning, r->refused);
	free_msg(r);
	return 0;
}

/* ------------------------------------------------------------ balancer */

/* A datanode as the balancer sees it: its share of its capacity in use. */
struct bal_dn {
	char id[128], addr[300];
	uint64_t capacity, used;
	double util; /* percent */
};

static volatile sig_atomic_t bal_stop;
static void bal_on_signal(int sig)
{
	(void)sig;
	bal_stop = 1;
}

/* The live datanodes in service; *mean is the cluster's utilisation (used
 * over capacity of them all, percent). Returns how many, or -errno. */
static int bal_nodes(struct bal_dn *out, int max, double *mean)
{
	Caudal__Empty e = CAUDAL__EMPTY__INIT;
	Caudal__ReportReply *rep;
	int rc = cdl_client_call_err(client(), CDL_NN_Report, &e.base, (ProtobufCMessage **)&rep);
	if (rc)
		return rc;
	int n = 0;
	uint64_t cap = 0, used = 0;
	for (size_t i = 0; i < rep->n_datanodes && n < max; i++) {
		Caudal__DatanodeInfo *d = rep->datanodes[i];
		if (!d->alive || d->decommissioning || d->decommissioned || d->capacity == 0)
			continue;
		struct bal_dn *b = &out[n++];
		snprintf(b->id, sizeof(b->id), "%s", d->id);
		snprintf(b->addr, sizeof(b->addr), "%s:%u", d->host, d->data_port);
		b->capacity = d->capacity;
		b->used = d->used;
		b->util = 100.0 * (double)d->used / (double)d->capacity;
		cap += d->capacity;
		used += d->used;
	}
	free_msg(rep);
	*mean = cap ? 100.0 * (double)used / (double)cap : 0;
	return n;
}

static int bal_by_util_desc(const void *x, const void *y)
{
	const struct bal_dn *a = x, *b = y;
	return a->util < b->util ? 1 : a->util > b->util ? -1 : 0;
}

static const struct bal_dn *bal_find(const struct bal_dn *n, int cnt, const char *id)
{
	for (int i = 0; i < cnt; i++)
		if (!strcmp(n[i].id, id))
			return &n[i];
	return NULL;
}

/* caudal balancer [-t PERCENT] [-bandwidth MB/s]: HDFS's Balancer. Rounds
 * of: read every datanode's use, pick the fullest over the mean and the
 * emptiest under it, ask the namenode to move (copy, then drop the source's
 * replica) what brings them closer, at most what the bandwidth allows in
 * two seconds, wait for it to show in the datanodes' use. Done when every
 * datanode is within PERCENT of the mean. It keeps nothing between rounds,
 * so a stopped balancer is resumed by running it again. */
static int cmd_balancer(int argc, char **argv)
{
	double t = 10, bw = 10;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		double *dst = !strcmp(a, "-t") || !strcmp(a, "-threshold") ? &t
			      : !strcmp(a, "-bandwidth")		   ? &bw
									   : NULL;
		if (!dst || i + 1 >= argc)
			return usage_error("balancer [-t PERCENT] [-bandwidth MB/s], not '%s'", a);
		char *end;
		errno = 0;
		*dst = strtod(argv[++i], &end);
		if (errno || *end || end == argv[i] || !(*dst > 0) || (dst == &t && *dst > 100) ||
		    (dst == &bw && *dst > 100000))
			return usage_error("balancer: bad %s '%s' (PERCENT in (0, 100], MB/s in "
					   "(0, 100000])",
					   a, argv[i]);
	}
	signal(SIGINT, bal_on_signal);
	signal(SIGTERM, bal_on_signal);
	const double round_s = 2;
	uint64_t budget = (uint64_t)(bw * 1048576.0 * round_s);
	uint64_t moved = 0;
	int idle = 0, nrounds = 0;
	int64_t started = cdl_now_ms();
	static struct bal_dn nodes[1024], after[1024];
	while (!bal_stop) {
		double mean = 0;
		int n = bal_nodes(nodes, 1024, &mean);
		if (n < 0)
			return fail("get a report from", namenode_addr(), n);
		qsort(nodes, (size_t)n, sizeof(nodes[0]), bal_by_util_desc);
		double worst = 0;
		for (int i = 0; i < n; i++) {
			double dev =
			    nodes[i].util > mean ? nodes[i].util - mean : mean - nodes[i].util;
			worst = dev > worst ? dev : worst;
		}
		if (n < 2 || worst <= t) {
			printf("balanced: %d datanodes within %.2f%% of the mean use %.2f%% (the "
			       "widest "
			       "%.2f%%); %llu bytes moved in %d rounds, %.1f s\n",
			       n, t, mean, worst, (unsigned long long)moved, nrounds,
			       (double)(cdl_now_ms() - started) / 1000.0);
			return 0;
		}
		/* the fullest first against the emptiest first, until one pair
		 * has something the namenode can move without breaking a rule */
		uint64_t got = 0;
		uint32_t blocks = 0;
		const struct bal_dn *src = NULL, *dst = NULL;
		for (int i = 0; i < n && !got && nodes[i].util > mean; i++)
			for (int j = n - 1; j > i && !got && nodes[j].util < mean; j--) {
				if (nodes[i].util - mean <= t && mean - nodes[j].util <= t)
					continue; /* both within the threshold: nothing gained */
				double over =
				    (nodes[i].util - mean) / 100.0 * (double)nodes[i].capacity;
				double under =
				    (mean - nodes[j].util) / 100.0 * (double)nodes[j].capacity;
				uint64_t want = (uint64_t)(over < under ? over : under);
				if (want > budget)
					want = budget;
				if (want == 0)
					continue;
				Caudal__MoveRequest req = CAUDAL__MOVE_REQUEST__INIT;
				req.source = nodes[i].id;
				req.target = nodes[j].id;
				req.max_bytes = want;
				req.cred = cdl_client_cred(client());
				Caudal__MoveReply *r;
				int rc = cdl_client_call_err(client(), CDL_NN_MoveReplicas,
							     &req.base, (ProtobufCMessage **)&r);
				if (rc == -EHOSTDOWN || rc == -ENOENT)
					continue; /* it died or went away since the report */
				if (rc)
					return fail("move replicas from", nodes[i].addr, rc);
				got = r->bytes;
				blocks = r->blocks;
				free_msg(r);
				src = &nodes[i];
				dst = &nodes[j];
			}
		nrounds++;
		if (!got) {
			if (++idle >= 5) {
				printf(
				    "no block can be moved: the widest datanode is %.2f%% from the "
				    "mean %.2f%% (threshold %.2f%%); %llu bytes moved\n",
				    worst, mean, t, (unsigned long long)moved);
				return 1;
			}
			sleep(1); /* copies in flight may unblock blocks */
			continue;
		}
		idle = 0;
		moved += got;
		printf("moving %u replicas (%.1f MiB) from %s (%.2f%%) to %s (%.2f%%), mean "
		       "%.2f%%\n",
		       blocks, (double)got / 1048576.0, src->addr, src->util, dst->addr, dst->util,
		       mean);
		fflush(stdout);
		/* the bandwidth: this round takes at least got / bw; and the next
		 * one starts once the move shows in both datanodes' use (or a
		 * minute passed), so it does not move the same excess twice */
		struct bal_dn s0 = *src, d0 = *dst;
		int64_t round_start = cdl_now_ms();
		int64_t min_ms = (int64_t)((double)got / (bw * 1048576.0) * 1000.0);
		for (;;) {
			if (bal_stop)
				break;
			usleep(200000);
			int64_t el = cdl_now_ms() - round_start;
			if (el < min_ms)
				continue;
			double m2 = 0;
			int n2 = bal_nodes(after, 1024, &m2);
			if (n2 < 0)
				return fail("get a report from", namenode_addr(), n2);
			const struct bal_dn *s1 = bal_find(after, n2, s0.id);
			const struct bal_dn *d1 = bal_find(after, n2, d0.id);
			bool landed = !d1 || d1->used >= d0.used + got * 9 / 10;
			bool dropped = !s1 || s1->used + got * 9 / 10 <= s0.used;
			if ((landed && dropped) || el > 60000)
				break;
		}
	}
	printf("stopped: %llu bytes moved in %d rounds; run the balancer again to go on\n",
	       (unsigned long long)moved, nrounds);
	return 130;
}

static const char *event_name(Caudal__EventType t)
{
	static const char *const names[] = {"none",   "create", "close", "append",
					    "rename", "unlink", "mkdir", "setattr"};
	return (unsigned)t < sizeof(names) / sizeof(names[0]) ? names[t] : "unknown";
}

/* `caudal job list|status|watch|kill`: conveniences over the files the
 * jobtracker keeps in /jobs (jobs/job_cli.c). */
static int cmd_job(int argc, char **argv)
{
	if (argc < 1) {
		job_cli_usage();
		return 2;
	}
	return job_cli_main(client(), "/jobs", argc, argv);
}

static int cmd_events(struct opts *o)
{
	unsigned long long from = 0;
	if (o->npos && parse_uint(o->pos[0], ~0ULL, &from))
		return usage_error("invalid transaction id '%s'", o->pos[0]);
	bool follow = o->set['f'];
	for (;;) {
		Caudal__EventsRequest req = CAUDAL__EVENTS_REQUEST__INIT;
		req.from_txid = from;
		req.max = 1000;
		/* a long poll must end before the RPC deadline */
		int wait = g_timeout_ms > 11000 ? 9000 : g_timeout_ms / 2;
		req.wait_ms = follow ? (uint32_t)wait : 0;
		Caudal__EventsReply *rep;
		int rc = cdl_client_call_err(client(), CDL_NN_GetEvents, &req.base,
					     (ProtobufCMessage **)&rep);
		if (rc)
			return fail("read events from", namenode_addr(), rc);
		for (size_t i = 0; i < rep->n_events; i++) {
			Caudal__Event *e = rep->events[i];
			char tm[32];
			fmt_time(e->time_ns, tm, sizeof(tm));
			printf("%llu %s %s %s", (unsigned long long)e->txid, tm,
			       event_name(e->type), e->path);
			if (e->type == CAUDAL__EVENT_TYPE__EV_RENAME)
				printf(" -> %s", e->dst);
			printf(" ino=%llu", (unsigned long long)e->ino);
			if (e->type == CAUDAL__EVENT_TYPE__EV_CLOSE)
				printf(" size=%llu", (unsigned long long)e->size);
			printf("\n");
			from = e->txid + 1;
		}
		bool more = rep->n_events > 0 && from <= rep->last_txid;
		free_msg(rep);
		fflush(stdout);
		if (!follow && !more)
			return 0;
	}
}

/* ------------------------------------------------------------ file commands */

/* A copy's progress into the line of p (cdl_copied_fn). */
static void progress_copied(void *p, uint64_t done, uint64_t size)
{
	cdl_progress_update(p, done, size);
}

/* cdl_get_fd with a progress line. */
static int get_fd_progress(const char *path, int fd, bool quiet)
{
	cdl_progress pg;
	cdl_progress_start(&pg, cdl_progress_wanted(quiet), base_name(path), true, 0);
	int rc = cdl_get_fd_cb(client(), path, fd, progress_copied, &pg);
	if (rc == 0)
		cdl_progress_end(&pg);
	else if (pg.on)
		fputc('\n', stderr);
	return rc;
}

static int cmd_put(struct opts *o)
{
	const char *local = o->pos[0];
	unsigned long long rep = 0;
	uint64_t bs = 0;
	if (o->set['r'] && (parse_uint(o->val['r'], 32, &rep) || rep == 0))
		return usage_error("invalid replication '%s' (want 1..32)", o->val['r']);
	if (o->set['b'] && (parse_size(o->val['b'], &bs) || bs == 0))
		return usage_error("invalid block size '%s'", o->val['b']);
	char *p = norm_path(o->pos[1]);
	if (!p)
		return 1;
	bool from_stdin = strcmp(local, "-") == 0;
	int fd = from_stdin ? STDIN_FILENO : open(local, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fail("open", local, -errno);
		free(p);
		return 1;
	}
	uint32_t mode = 0644;
	struct stat st = {0};
	if (!from_stdin && fstat(fd, &st) == 0) {
		if (S_ISDIR(st.st_mode)) {
			close(fd);
			free(p);
			return fail("put", local, -EISDIR);
		}
		mode = st.st_mode & 0777;
	}
	/* like `hdfs dfs -put`: into an existing directory */
	Caudal__Attr *a;
	if (do_stat(p, &a) == 0) {
		if (is_dir(a) && !from_stdin) {
			char *d = join_path(p, base_name(local));
			free(p);
			p = d;
		}
		free_msg(a);
	}
	Caudal__Attr *attr;
	cdl_writer *w = NULL;
	int rc;
	bool created = false;
	if (o->set['a']) {
		rc = cdl_append_open(client(), p, &attr);
	} else {
		rc = cdl_create(client(), p, mode, (uint32_t)rep, bs, o->set['f'], &attr);
		created = rc == 0;
	}
	if (rc == 0) {
		rc = cdl_writer_open(client(), attr, &w);
		free_msg(attr);
	}
	if (rc == 0) {
		cdl_progress pg;
		cdl_progress_start(&pg, cdl_progress_wanted(o->set['q']), base_name(p), true,
				   from_stdin || !S_ISREG(st.st_mode) ? 0 : (uint64_t)st.st_size);
		rc = cdl_writer_write_fd_cb(w, fd, progress_copied, &pg);
		if (rc == 0)
			cdl_progress_end(&pg);
		else if (pg.on)
			fputc('\n', stderr);
		if (rc) {
			cdl_writer_abort(w);
		} else {
			rc = cdl_writer_close(w);
		}
		/* a failed put leaves no half-written file behind */
		if (rc && created)
			cdl_delete(client(), p, false);
	}
	if (!from_stdin)
		close(fd);
	if (rc)
		fail(o->set['a'] ? "append to" : "put", p, rc);
	free(p);
	return rc ? 1 : 0;
}

static int cmd_append(struct opts *o)
{
	o->set['a'] = true;
	return cmd_put(o);
}

static int cmd_get(struct opts *o)
{
	char *p = norm_path(o->pos[0]);
	if (!p)
		return 1;
	const char *local = o->npos > 1 ? o->pos[1] : base_name(p);
	if (strcmp(local, "-") == 0) {
		int rc = cdl_get_fd(client(), p, STDOUT_FILENO);
		if (rc)
			fail("get", p, rc);
		free(p);
		return rc ? 1 : 0;
	}
	char *dest;
	struct stat st;
	if (stat(local, &st) == 0 && S_ISDIR(st.st_mode))
		dest = xasprintf("%s/%s", local, base_name(p));
	else
		dest = xstrdup(local);
	/* write beside the destination and rename, so a failed get leaves
	 * no half file behind */
	char *tmp = xasprintf("%s.caudal-%d.tmp", dest, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int rc;
	if (fd < 0) {
		rc = -errno;
		fail("create", dest, rc);
		goto out;
	}
	rc = get_fd_progress(p, fd, o->set['q']);
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc) {
		unlink(tmp);
		fail("get", p, rc);
		goto out;
	}
	if (rename(tmp, dest) < 0) {
		rc = -errno;
		unlink(tmp);
		fail("create", dest, rc);
	}
out:
	free(tmp);
	free(dest);
	free(p);
	return rc ? 1 : 0;
}

static int cmd_cat(struct opts *o)
{
	int ret = 0;
	for (int i = 0; i < o->npos; i++) {
		char *p = norm_path(o->pos[i]);
		if (!p) {
			ret = 1;
			continue;
		}
		int rc = cdl_get_fd(client(), p, STDOUT_FILENO);
		if (rc)
			ret = fail("read", p, rc);
		free(p);
	}
	return ret;
}

/* ------------------------------------------------------------ local cluster */

/* Settings of `caudal up`, each from a flag (--name=value), else an
 * environment variable, else a default. NULL default = not passed to the
 * daemons (they use their own default). */
enum {
	UP_HOME,
	UP_NN_HOST,
	UP_NN_PORT,
	UP_HTTP_PORT,
	UP_DN_PORT,
	UP_DN_HOSTS,
	UP_BLOCK_SIZE,
	UP_REPLICATION,
	UP_HEARTBEAT,
	UP_DEAD,
	UP_LEASE,
	UP_SYNC,
	UP_LOG_LEVEL,
	UP_TIMEOUT,
	UP_BIN_DIR,
	UP_MOUNT,
	UP_JOBS,
	UP_JT_PORT,
	UP_INSECURE,
	UP_EXPORTS,
	UP_ENCRYPT,
	UP_NN_RESERVED,
	UP_DN_HTTP_PORT,
	UP_JT_HTTP_PORT,
	UP_TT_HTTP_PORT,
	UP_MOUNT_METRICS_PORT,
	UP_TRASH,
	UP_TRASH_S,
	UP_HOSTS,
	UP_HOSTS_EXCLUDE,
	UP_N
};

static const struct up_setting {
	const char *flag;
	const char *env;
	const char *def;
	const char *help;
} up_settings[UP_N] = {
    [UP_HOME] = {"home", "CAUDAL_HOME", ".caudal", "state folder"},
    [UP_NN_HOST] = {"nn-host", "CAUDAL_NN_HOST", "127.0.0.1", "namenode address"},
    [UP_NN_PORT] = {"nn-port", "CAUDAL_NN_PORT", "9000", "namenode RPC port"},
    /* the namenode's own default, given explicitly so that up knows the
     * port to check (0: no HTTP server) */
    [UP_HTTP_PORT] = {"http-port", "CAUDAL_NN_HTTP_PORT", "9870",
		      "namenode HTTP status port (0: none)"},
    [UP_DN_PORT] = {"dn-port", "CAUDAL_DN_PORT", "9866",
		    "datanode data port (each on its own address)"},
    [UP_DN_HOSTS] = {"dn-hosts", "CAUDAL_DN_HOSTS", "127.0.0.2,127.0.0.3,127.0.0.4",
		     "datanode addresses, one datanode each"},
    [UP_BLOCK_SIZE] = {"block-size", "CAUDAL_BLOCK_SIZE", NULL, "default block size (e.g. 1M)"},
    [UP_REPLICATION] = {"replication", "CAUDAL_REPLICATION", NULL, "default replication"},
    [UP_HEARTBEAT] = {"heartbeat-ms", "CAUDAL_HEARTBEAT_MS", NULL, "datanode heartbeat interval"},
    [UP_DEAD] = {"dead-ms", "CAUDAL_DEAD_MS", NULL, "silence after which a datanode is dead"},
    [UP_LEASE] = {"lease-ms", "CAUDAL_LEASE_MS", NULL, "namenode lease period"},
    [UP_SYNC] = {"sync", "CAUDAL_SYNC", NULL, "namenode sync mode (always|batch)"},
    [UP_LOG_LEVEL] = {"log-level", "CAUDAL_DAEMON_LOG_LEVEL", NULL, "daemons' log level"},
    [UP_TIMEOUT] = {"up-timeout-ms", "CAUDAL_UP_TIMEOUT_MS", "30000",
		    "how long up waits for the cluster"},
    [UP_BIN_DIR] = {"bin-dir", "CAUDAL_BIN_DIR", NULL,
		    "folder of the daemon programs (default: beside caudal)"},
    [UP_MOUNT] = {"mount", "CAUDAL_MOUNT", "mnt", "mount point ('none': do not mount)"},
    [UP_JOBS] = {"jobs", "CAUDAL_JOBS", "yes",
		 "run the jobtracker and a tasktracker per datanode (yes|no)"},
    [UP_JT_PORT] = {"jt-port", "CAUDAL_JT_PORT", "9001", "jobtracker RPC port"},
    [UP_INSECURE] = {"insecure", "CAUDAL_UP_INSECURE", "no",
		     "plaintext RPC believing every claimed uid (yes|no; benchmarks only)"},
    [UP_ENCRYPT] = {"encrypt-data", "CAUDAL_ENCRYPT_DATA", NULL,
		    "TLS on the data port too (yes|no; default no)"},
    [UP_TRASH] = {"trash-interval", "CAUDAL_TRASH_INTERVAL", NULL,
		  "minutes removed entries stay in the trash (0: off)"},
    [UP_TRASH_S] = {"trash-interval-s", "CAUDAL_TRASH_INTERVAL_S", NULL,
		    "the same in seconds (tests)"},
    [UP_HOSTS] = {"hosts", "CAUDAL_HOSTS", NULL,
		  "include file: only the datanodes it names may register"},
    [UP_HOSTS_EXCLUDE] = {"hosts-exclude", "CAUDAL_HOSTS_EXCLUDE", NULL,
			  "exclude file: the datanodes it names are decommissioned"},
    [UP_NN_RESERVED] = {"nn-reserved-mb", "CAUDAL_NN_RESERVED_MB", NULL,
			"MiB the namenode keeps free on its metadata disk (default 100)"},
    [UP_EXPORTS] = {"exports", "CAUDAL_EXPORTS", NULL,
		    "namenode exports file: which mounts may act for users, ro, maproot"},
    /* /metrics (Prometheus) of the other daemons, at Hadoop's ports; the
     * daemons' own default is off */
    [UP_DN_HTTP_PORT] =
	{"dn-http-port", "CAUDAL_DN_HTTP_PORT", "9864",
	 "datanode HTTP port: WebHDFS and /metrics (each on its own address; 0: none)"},
    [UP_JT_HTTP_PORT] = {"jt-http-port", "CAUDAL_JT_HTTP_PORT", "50030",
			 "jobtracker HTTP port: jobs web UI and /metrics (0: none)"},
    [UP_TT_HTTP_PORT] =
	{"tt-http-port", "CAUDAL_TT_HTTP_PORT", "50060",
	 "tasktracker HTTP port, /metrics (each on its datanode's address; 0: none)"},
    [UP_MOUNT_METRICS_PORT] = {"mount-metrics-port", "CAUDAL_MOUNT_METRICS_PORT", "0",
			       "the mount's /metrics port on 127.0.0.1 (0: none)"},
};

static const char *upv[UP_N];

static int up_parse(struct opts *o, int argc, char **argv)
{
	for (int i = 0; i < UP_N; i++) {
		const char *e = getenv(up_settings[i].env);
		upv[i] = e && *e ? e : up_settings[i].def;
	}
	memset(o, 0, sizeof(*o));
	o->pos = xcalloc((size_t)argc + 1, sizeof(char *));
	for (int a = 0; a < argc; a++) {
		const char *s = argv[a];
		if (strncmp(s, "--", 2) != 0) {
			o->pos[o->npos++] = argv[a];
			continue;
		}
		const char *eq = strchr(s, '=');
		size_t n = eq ? (size_t)(eq - s - 2) : strlen(s + 2);
		int k;
		for (k = 0; k < UP_N; k++)
			if (strlen(up_settings[k].flag) == n &&
			    !strncmp(s + 2, up_settings[k].flag, n))
				break;
		if (k == UP_N)
			return usage_error("unknown option '%s'", s);
		if (eq)
			upv[k] = eq + 1;
		else if (a + 1 < argc)
			upv[k] = argv[++a];
		else
			return usage_error("option '%s' needs a value", s);
	}
	if (upv[UP_BLOCK_SIZE]) {
		uint64_t bs;
		if (parse_size(upv[UP_BLOCK_SIZE], &bs) || bs == 0)
			return usage_error("invalid block size '%s'", upv[UP_BLOCK_SIZE]);
		upv[UP_BLOCK_SIZE] = xasprintf("%llu", (unsigned long long)bs);
	}
	return 0;
}

/* One daemon of the local cluster. Its pid file records the pid, the
 * program, the state folder it was given (to tell it from another
 * cluster's daemon after pid reuse) and its rank (stop order). */
struct daemon {
	char name[32];	  /* "namenode", "dn1": pid file and log names */
	const char *prog; /* program file name */
	int rank;	  /* started in increasing rank, stopped in decreasing */
	char *dir;	  /* state folder, also the marker in its command line */
	char *addr;	  /* what it serves, for messages */
	char *metrics;	  /* host:port of its /metrics, NULL: none */
	char *argv[24];
	int argc;
	pid_t pid;	    /* running pid, 0 = not running */
	bool spawned;	    /* started by this invocation (our child) */
	enum cdl_role role; /* its certificate's role and host */
	const char *host;
	/* the TCP ports it listens on, on host (0 = none), and the setting that
	 * chooses each, for messages about a port held by another process */
	unsigned port[2];
	int port_key[2];
};

/* Records that d listens on the port of setting key (unset: none). */
static void d_port(struct daemon *d, int key)
{
	unsigned long long v;
	for (int i = 0; i < 2; i++)
		if (!d->port[i]) {
			if (upv[key] && parse_uint(upv[key], 65535, &v) == 0 && v) {
				d->port[i] = (unsigned)v;
				d->port_key[i] = key;
			}
			return;
		}
}

static void d_arg(struct daemon *d, const char *key, const char *val)
{
	if (!val || d->argc >= 22)
		return;
	d->argv[d->argc++] = key ? xasprintf("--%s=%s", key, val) : xstrdup(val);
}

/* Its HTTP port from setting key (none when 0), as the argument key, the
 * port up waits for and where `up` says its /metrics are. */
static void d_http(struct daemon *d, const char *argkey, int key, const char *host, bool wait)
{
	unsigned long long v;
	if (!upv[key] || parse_uint(upv[key], 65535, &v) || !v)
		return;
	d_arg(d, argkey, upv[key]);
	if (wait)
		d_port(d, key);
	d->metrics = xasprintf("%s:%llu", host, v);
}

/* What every daemon's arguments and readiness checks are built from. */
struct upctx {
	const char *home;
	const char *nn; /* namenode host:port */
	char **hosts;	/* datanode addresses */
	int ndn;
	struct daemon *ds; /* the whole table, for readiness checks */
	int n;
	int64_t end;	   /* start-up deadline (monotonic ms) */
	char cluster[128]; /* the namenode's cluster id, once it answered */
};

static void nn_args(struct daemon *x, const struct upctx *u, int i)
{
	(void)i;
	x->addr = xstrdup(u->nn);
	d_arg(x, "dir", x->dir);
	d_arg(x, "host", upv[UP_NN_HOST]);
	d_arg(x, "port", upv[UP_NN_PORT]);
	d_arg(x, "http_port", upv[UP_HTTP_PORT]);
	d_port(x, UP_NN_PORT);
	d_port(x, UP_HTTP_PORT);
	unsigned long long hp;
	if (upv[UP_HTTP_PORT] && !parse_uint(upv[UP_HTTP_PORT], 65535, &hp) && hp)
		x->metrics = xasprintf("%s:%llu", upv[UP_NN_HOST], hp);
	d_arg(x, "block_size", upv[UP_BLOCK_SIZE]);
	d_arg(x, "replication", upv[UP_REPLICATION]);
	d_arg(x, "heartbeat_ms", upv[UP_HEARTBEAT]);
	d_arg(x, "dead_ms", upv[UP_DEAD]);
	d_arg(x, "lease_ms", upv[UP_LEASE]);
	d_arg(x, "sync", upv[UP_SYNC]);
	d_arg(x, "log_level", upv[UP_LOG_LEVEL]);
	d_arg(x, "exports", upv[UP_EXPORTS]);
	d_arg(x, "reserved_mb", upv[UP_NN_RESERVED]);
	d_arg(x, "trash_interval", upv[UP_TRASH]);
	d_arg(x, "trash_interval_s", upv[UP_TRASH_S]);
	d_arg(x, "hosts", upv[UP_HOSTS]);
	d_arg(x, "hosts_exclude", upv[UP_HOSTS_EXCLUDE]);
	d_arg(x, "encrypt_data", upv[UP_ENCRYPT]);
	/* the namenode's web UI links to the jobtracker's (ours, or one
	 * started by hand on that port when jobs=no) */
	if (strcmp(upv[UP_JT_HTTP_PORT], "0")) {
		char *url = xasprintf("http://%s:%s/", upv[UP_NN_HOST], upv[UP_JT_HTTP_PORT]);
		d_arg(x, "jobs_url", url);
		free(url);
	}
}

static void dn_args(struct daemon *x, const struct upctx *u, int i)
{
	x->addr = xasprintf("%s:%s", u->hosts[i], upv[UP_DN_PORT]);
	d_arg(x, "namenode", u->nn);
	d_arg(x, "host", u->hosts[i]);
	d_arg(x, "port", upv[UP_DN_PORT]);
	d_arg(x, "data_dir", x->dir);
	d_port(x, UP_DN_PORT);
	d_http(x, "http_port", UP_DN_HTTP_PORT, u->hosts[i], true);
	d_arg(x, "heartbeat_ms", upv[UP_HEARTBEAT]);
	d_arg(x, "log_level", upv[UP_LOG_LEVEL]);
	d_arg(x, "encrypt_data", upv[UP_ENCRYPT]);
}

static int wait_cluster(struct upctx *u, int want);
static bool any_died(const struct upctx *u);

static int nn_ready(struct upctx *u)
{
	return wait_cluster(u, 0);
}

static int dn_ready(struct upctx *u)
{
	return wait_cluster(u, u->ndn);
}

/* The daemons `caudal up` runs, in start order. A rank starts once the
 * ranks before it are ready; `caudal down` stops ranks in reverse. Later
 * issues add theirs here, e.g. the jobtracker (rank 2), a tasktracker per
 * datanode address (rank 2, per_dn) and the mount (rank 3, with a stop
 * hook that unmounts first). */
/* The mount runs in the foreground (-f) so that its pid is the one
 * recorded; SIGTERM makes it complete open files and unmount. Its pid
 * file option puts the state folder (the marker) on its command line. */
static void mount_args(struct daemon *x, const struct upctx *u, int i)
{
	(void)i;
	const char *mnt = upv[UP_MOUNT];
	x->addr = xstrdup(mnt);
	mkdir(mnt, 0755);
	d_arg(x, NULL, u->nn);
	d_arg(x, NULL, mnt);
	d_arg(x, NULL, "-f");
	d_arg(x, NULL, "-o");
	unsigned long long mp = 0;
	if (upv[UP_MOUNT_METRICS_PORT] && !parse_uint(upv[UP_MOUNT_METRICS_PORT], 65535, &mp) && mp)
		x->metrics = xasprintf("127.0.0.1:%llu", mp);
	char *o = mp ? xasprintf("pidfile=%s/mount.pid,metrics_port=%llu", x->dir, mp)
		     : xasprintf("pidfile=%s/mount.pid", x->dir);
	d_arg(x, NULL, o);
	free(o);
	mkdir(x->dir, 0755);
}

/* Ready when the mount point is a different filesystem from its parent. */
static int mount_ready(struct upctx *u)
{
	const char *mnt = upv[UP_MOUNT];
	char *parent = xasprintf("%s/..", mnt);
	int rc = -ETIMEDOUT;
	while (cdl_now_ms() < u->end && !any_died(u)) {
		struct stat a, b;
		if (stat(mnt, &a) == 0 && stat(parent, &b) == 0 && a.st_dev != b.st_dev) {
			rc = 0;
			break;
		}
		usleep(20 * 1000);
	}
	free(parent);
	return rc;
}

static void jt_args(struct daemon *x, const struct upctx *u, int i)
{
	(void)i;
	x->addr = xasprintf("%s:%s", upv[UP_NN_HOST], upv[UP_JT_PORT]);
	d_arg(x, "namenode", u->nn);
	d_arg(x, "host", upv[UP_NN_HOST]);
	d_arg(x, "port", upv[UP_JT_PORT]);
	d_arg(x, "work_dir", x->dir);
	d_port(x, UP_JT_PORT);
	d_http(x, "http_port", UP_JT_HTTP_PORT, upv[UP_NN_HOST], true);
	if (strcmp(upv[UP_HTTP_PORT], "0")) {
		char *url =
		    xasprintf("%s://%s:%s/", strcmp(upv[UP_INSECURE], "yes") ? "https" : "http",
			      upv[UP_NN_HOST], upv[UP_HTTP_PORT]);
		d_arg(x, "namenode_url", url);
		free(url);
	}
	d_arg(x, "log_level", upv[UP_LOG_LEVEL]);
	/* root runs every daemon of this one-machine cluster already, so its
	 * jobs may run as root too (README, "Security") */
	d_arg(x, "allow_root_jobs", "yes");
}

/* A tasktracker beside each datanode, on its address, so that a map whose
 * split has a replica there is data-local. */
static void tt_args(struct daemon *x, const struct upctx *u, int i)
{
	x->addr = xstrdup(u->hosts[i]);
	char *jt = xasprintf("%s:%s", upv[UP_NN_HOST], upv[UP_JT_PORT]);
	d_arg(x, "jobtracker", jt);
	free(jt);
	d_arg(x, "namenode", u->nn);
	d_arg(x, "host", u->hosts[i]);
	d_arg(x, "work_dir", x->dir);
	d_arg(x, "log_level", upv[UP_LOG_LEVEL]);
	d_http(x, "http_port", UP_TT_HTTP_PORT, u->hosts[i], true);
}

static const struct dkind {
	const char *name; /* pid file and log name; per_dn kinds get 1, 2, ... appended */
	const char *dir;  /* state folder under the home, same numbering */
	const char *prog; /* program, found beside caudal */
	int rank;
	bool per_dn;   /* one per datanode address */
	bool optional; /* skipped when its program is not built */
	void (*args)(struct daemon *d, const struct upctx *u, int i);
	int (*ready)(struct upctx *u); /* after the rank started; 0 or -errno */
	/* `caudal down`: run before SIGTERM (e.g. unmount); marker is the
	 * daemon's state folder as recorded in its pid file */
	void (*stop)(pid_t pid, const char *marker);
	enum cdl_role role; /* what its certificate says it is */
} kinds[] = {
    {"namenode", "nn", "caudal-namenode", 0, false, false, nn_args, nn_ready, NULL,
     CDL_ROLE_NAMENODE},
    {"dn", "dn", "caudal-datanode", 1, true, false, dn_args, dn_ready, NULL, CDL_ROLE_DATANODE},
    {"jobtracker", "jt", "caudal-jobtracker", 2, false, true, jt_args, NULL, NULL,
     CDL_ROLE_JOBTRACKER},
    {"tt", "tt", "caudal-tasktracker", 2, true, true, tt_args, NULL, NULL, CDL_ROLE_TASKTRACKER},
    {"mount", "mount", "caudal-mount", 3, false, true, mount_args, mount_ready, NULL,
     CDL_ROLE_MOUNT},
};
#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))

static int dn_hosts(char ***hosts)
{
	char *list = xstrdup(upv[UP_DN_HOSTS]);
	int n = 0;
	*hosts = NULL;
	for (char *save, *t = strtok_r(list, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
		*hosts = xrealloc(*hosts, (size_t)(n + 1) * sizeof(char *));
		(*hosts)[n++] = xstrdup(t);
	}
	free(list);
	return n;
}

/* Builds the daemon table of this cluster from the kinds and the settings;
 * optional kinds whose program is missing from bindir are left out. */
static int build_daemons(struct upctx *u, const char *bindir)
{
	struct daemon *d = NULL;
	int n = 0;
	for (size_t k = 0; k < NKINDS; k++) {
		const struct dkind *kd = &kinds[k];
		if (kd->args == mount_args && !strcmp(upv[UP_MOUNT], "none"))
			continue;
		if ((kd->args == jt_args || kd->args == tt_args) && strcmp(upv[UP_JOBS], "yes"))
			continue;
		if (kd->optional) {
			char *p = xasprintf("%s/%s", bindir, kd->prog);
			bool have = access(p, X_OK) == 0;
			free(p);
			if (!have)
				continue;
		}
		int count = kd->per_dn ? u->ndn : 1;
		for (int i = 0; i < count; i++) {
			d = xrealloc(d, (size_t)(n + 1) * sizeof(*d));
			struct daemon *x = &d[n++];
			memset(x, 0, sizeof(*x));
			if (kd->per_dn) {
				snprintf(x->name, sizeof(x->name), "%s%d", kd->name, i + 1);
				x->dir = xasprintf("%s/%s%d", u->home, kd->dir, i + 1);
			} else {
				snprintf(x->name, sizeof(x->name), "%s", kd->name);
				x->dir = xasprintf("%s/%s", u->home, kd->dir);
			}
			x->prog = kd->prog;
			x->rank = kd->rank;
			x->role = kd->role;
			x->host = kd->per_dn ? u->hosts[i] : upv[UP_NN_HOST];
			d_arg(x, NULL, kd->prog);
			kd->args(x, u, i);
		}
	}
	u->ds = d;
	u->n = n;
	return n;
}

/* Is pid running program prog with marker, a folder, as one of its
 * arguments (the whole argument, the value after its '=', or a path under
 * it)? Checked through /proc so a recycled pid is not mistaken for our
 * daemon, and whole so that the daemon of '/x/dn1' is not the one of
 * '/x/dn10' nor of '/y/x/dn1'; a zombie has no exe link and counts as
 * stopped. */
static bool proc_matches(pid_t pid, const char *prog, const char *marker)
{
	if (pid <= 0 || (kill(pid, 0) < 0 && errno != EPERM))
		return false;
	char link[64], exe[PATH_MAX];
	snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
	ssize_t n = readlink(link, exe, sizeof(exe) - 1);
	if (n <= 0)
		return false;
	exe[n] = '\0';
	char *del = strstr(exe, " (deleted)");
	if (del)
		*del = '\0';
	if (strcmp(base_name(exe), prog) != 0)
		return false;
	if (!marker || !*marker)
		return true;
	snprintf(link, sizeof(link), "/proc/%d/cmdline", (int)pid);
	int fd = open(link, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	char buf[16384];
	ssize_t k = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (k <= 0)
		return false;
	buf[k] = '\0';
	size_t ml = strlen(marker);
	for (char *arg = buf; arg < buf + k; arg += strlen(arg) + 1) {
		char *v = strchr(arg, '=');
		v = v ? v + 1 : arg;
		if (!strncmp(v, marker, ml) && (v[ml] == '\0' || v[ml] == '/'))
			return true;
	}
	return false;
}

/* ------------------------------------------------------------ ports */

/* Inodes of the TCP sockets listening on host:port (host an IPv4 address;
 * a wildcard listener counts too, as it takes the port from every address),
 * read from /proc/net/tcp and tcp6. Returns how many, at most max. */
static int port_listeners(const char *host, unsigned port, unsigned long *ino, int max)
{
	struct in_addr want;
	if (inet_pton(AF_INET, host, &want) != 1)
		want.s_addr = INADDR_ANY;
	char v4mapped[40];
	snprintf(v4mapped, sizeof(v4mapped), "0000000000000000FFFF0000%08X", (unsigned)want.s_addr);
	int n = 0;
	const char *files[] = {"/proc/net/tcp", "/proc/net/tcp6"};
	for (int f = 0; f < 2; f++) {
		FILE *fp = fopen(files[f], "r");
		if (!fp)
			continue;
		char line[512], addr[40];
		unsigned lport, st;
		unsigned long inode;
		while (fgets(line, sizeof(line), fp) && n < max) {
			if (sscanf(line, " %*u: %39[0-9A-Fa-f]:%X %*s %X %*s %*s %*s %*u %*u %lu",
				   addr, &lport, &st, &inode) != 4)
				continue;
			if (st != 0x0A || lport != port) /* 0x0A: TCP_LISTEN */
				continue;
			bool match;
			if (f == 0) {
				unsigned a = (unsigned)strtoul(addr, NULL, 16);
				match = a == INADDR_ANY || want.s_addr == INADDR_ANY ||
					a == (unsigned)want.s_addr;
			} else {
				match = strspn(addr, "0") == strlen(addr) ||
					want.s_addr == INADDR_ANY || !strcasecmp(addr, v4mapped);
			}
			if (match)
				ino[n++] = inode;
		}
		fclose(fp);
	}
	return n;
}

/* Does pid hold one of the sockets ino? Through its open files in /proc:
 * a process of ours, or any when run as root. */
static bool pid_holds(pid_t pid, const unsigned long *ino, int n)
{
	char dir[64];
	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	DIR *dp = opendir(dir);
	if (!dp)
		return false;
	bool found = false;
	struct dirent *e;
	while (!found && (e = readdir(dp))) {
		char target[64];
		ssize_t k = readlinkat(dirfd(dp), e->d_name, target, sizeof(target) - 1);
		if (k <= 0)
			continue;
		target[k] = '\0';
		unsigned long v;
		if (sscanf(target, "socket:[%lu]", &v) != 1)
			continue;
		for (int i = 0; i < n && !found; i++)
			found = ino[i] == v;
	}
	closedir(dp);
	return found;
}

/* Is pid listening on host:port? Only one process can (the daemons bind
 * without SO_REUSEPORT), so this is also "pid is the one answering there". */
static bool pid_listens(pid_t pid, const char *host, unsigned port)
{
	unsigned long ino[16];
	int n = port_listeners(host, port, ino, 16);
	return pid > 0 && n > 0 && pid_holds(pid, ino, n);
}

/* The process listening on host:port, 0 when none is seen (or it is
 * another user's and we are not root); its program's name in prog. */
static pid_t port_holder(const char *host, unsigned port, char *prog, size_t len)
{
	unsigned long ino[16];
	int n = port_listeners(host, port, ino, 16);
	if (n == 0)
		return 0;
	DIR *dp = opendir("/proc");
	if (!dp)
		return 0;
	pid_t found = 0;
	struct dirent *e;
	while (!found && (e = readdir(dp))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (*end || pid <= 0 || !pid_holds((pid_t)pid, ino, n))
			continue;
		found = (pid_t)pid;
		char link[64], exe[PATH_MAX];
		snprintf(link, sizeof(link), "/proc/%ld/exe", pid);
		ssize_t k = readlink(link, exe, sizeof(exe) - 1);
		exe[k > 0 ? k : 0] = '\0';
		copy_line(prog, len, k > 0 ? base_name(exe) : "?");
	}
	closedir(dp);
	return found;
}

/* Says which process holds a port d wanted, if one does: the usual reason
 * a daemon of a second cluster cannot start. True when it said so. */
static bool say_port_conflict(const struct daemon *d, pid_t self)
{
	for (int i = 0; i < 2 && d->port[i]; i++) {
		char prog[64];
		pid_t who = port_holder(d->host, d->port[i], prog, sizeof(prog));
		if (!who || who == self)
			continue;
		const struct up_setting *st = &up_settings[d->port_key[i]];
		fprintf(stderr,
			"caudal: cannot start %s '%s': port %u on %s is in use by another process "
			"(pid %d, '%s'; another cluster?); choose another with --%s or %s\n",
			d->name, d->addr, d->port[i], d->host, (int)who, prog, st->flag, st->env);
		return true;
	}
	return false;
}

struct pidrec {
	pid_t pid;
	char prog[64];
	char marker[PATH_MAX];
	int rank;
	char name[64];
};

static int pidfile_read(const char *file, struct pidrec *r)
{
	FILE *fp = fopen(file, "r");
	if (!fp)
		return -errno;
	memset(r, 0, sizeof(*r));
	int pid = 0;
	char line[PATH_MAX + 16];
	int rc = -EINVAL;
	if (fgets(line, sizeof(line), fp) && sscanf(line, "%d", &pid) == 1 && pid > 0) {
		r->pid = pid;
		if (fgets(line, sizeof(line), fp))
			copy_line(r->prog, sizeof(r->prog), line);
		if (fgets(line, sizeof(line), fp))
			copy_line(r->marker, sizeof(r->marker), line);
		if (fgets(line, sizeof(line), fp))
			r->rank = atoi(line);
		rc = r->prog[0] ? 0 : -EINVAL;
	}
	fclose(fp);
	return rc;
}

static char *pidfile_path(const char *home, const char *name)
{
	return xasprintf("%s/pids/%s.pid", home, name);
}

/* The pid of d if its pid file names a live process of ours, else 0. */
static pid_t daemon_running(const char *home, const struct daemon *d)
{
	char *f = pidfile_path(home, d->name);
	struct pidrec r;
	int rc = pidfile_read(f, &r);
	free(f);
	if (rc)
		return 0;
	return proc_matches(r.pid, d->prog, d->dir) ? r.pid : 0;
}

static int pidfile_write(const char *home, const struct daemon *d)
{
	char *f = pidfile_path(home, d->name);
	char *tmp = xasprintf("%s.tmp", f);
	FILE *fp = fopen(tmp, "w");
	int rc = 0;
	if (!fp || fprintf(fp, "%d\n%s\n%s\n%d\n", (int)d->pid, d->prog, d->dir, d->rank) < 0)
		rc = -errno;
	if (fp && fclose(fp) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, f) < 0)
		rc = -errno;
	if (rc)
		unlink(tmp);
	free(tmp);
	free(f);
	return rc;
}

/* The folder holding this program, where the daemons are installed too. */
static char *bin_dir(void)
{
	if (upv[UP_BIN_DIR])
		return xstrdup(upv[UP_BIN_DIR]);
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return xstrdup(".");
	exe[n] = '\0';
	return xstrdup(dirname(exe));
}

/* Starts d in its own session with stdin from /dev/null and its output
 * appended to logs/NAME.log. */
static int daemon_spawn(const char *home, const char *bindir, struct daemon *d)
{
	char *path = xasprintf("%s/%s", bindir, d->prog);
	char *log = xasprintf("%s/logs/%s.log", home, d->name);
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	posix_spawnattr_init(&at);
	sigset_t none, def;
	sigemptyset(&none);
	sigemptyset(&def);
	sigaddset(&def, SIGTERM);
	sigaddset(&def, SIGINT);
	sigaddset(&def, SIGHUP);
	sigaddset(&def, SIGQUIT);
	sigaddset(&def, SIGPIPE);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &def);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
					  POSIX_SPAWN_SETSIGDEF);
	d->argv[d->argc] = NULL;
	pid_t pid;
	int rc = posix_spawn(&pid, path, &fa, &at, d->argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (rc) {
		fail("start", path, -rc);
		free(path);
		free(log);
		return -rc;
	}
	d->pid = pid;
	d->spawned = true;
	free(path);
	free(log);
	rc = pidfile_write(home, d);
	if (rc)
		fail("write the pid file of", d->name, rc);
	return rc;
}

/* Prints the last lines of a daemon's log after it failed to start. */
static void log_tail(const char *home, const struct daemon *d)
{
	char *log = xasprintf("%s/logs/%s.log", home, d->name);
	FILE *fp = fopen(log, "r");
	if (fp) {
		char lines[5][512];
		int n = 0;
		char buf[512];
		while (fgets(buf, sizeof(buf), fp))
			snprintf(lines[n++ % 5], sizeof(lines[0]), "%s", buf);
		fclose(fp);
		int first = n > 5 ? n - 5 : 0;
		if (n)
			fprintf(stderr, "caudal: last lines of '%s':\n", log);
		for (int i = first; i < n; i++)
			fprintf(stderr, "  %s", lines[i % 5]);
	}
	free(log);
}

/* Did a daemon this invocation started exit already? Says why (a port
 * another process holds, else its exit status and log) and removes its pid
 * file: the pid is free for reuse once reaped. */
static bool spawned_died(const char *home, struct daemon *d)
{
	if (!d->spawned)
		return false;
	int st;
	pid_t r = waitpid(d->pid, &st, WNOHANG);
	if (r != d->pid)
		return false;
	char *f = pidfile_path(home, d->name);
	unlink(f);
	free(f);
	d->spawned = false;
	d->pid = 0;
	if (say_port_conflict(d, 0))
		return true;
	if (WIFEXITED(st))
		fprintf(stderr, "caudal: cannot start %s '%s': it exited with status %d\n", d->name,
			d->addr, WEXITSTATUS(st));
	else
		fprintf(stderr, "caudal: cannot start %s '%s': killed by signal %d\n", d->name,
			d->addr, WTERMSIG(st));
	log_tail(home, d);
	return true;
}

/* Did any daemon this invocation started exit? */
static bool any_died(const struct upctx *u)
{
	bool died = false;
	for (int i = 0; i < u->n; i++)
		died |= spawned_died(u->home, &u->ds[i]);
	return died;
}

/* Waits until every daemon of rank that has a port listens on it itself:
 * until then a client of that port may be talking to another process,
 * e.g. another cluster's namenode started on the same port. */
static int rank_listening(const struct upctx *u, int rank)
{
	for (int i = 0; i < u->n; i++) {
		struct daemon *d = &u->ds[i];
		for (int p = 0; d->rank == rank && p < 2 && d->port[p]; p++) {
			while (!pid_listens(d->pid, d->host, d->port[p])) {
				if (any_died(u))
					return -ECHILD;
				if (cdl_now_ms() >= u->end) {
					if (!say_port_conflict(d, d->pid))
						fprintf(stderr,
							"caudal: cannot start %s '%s': it does not "
							"listen on port %u after %s ms (log in "
							"'%s/logs/%s.log')\n",
							d->name, d->addr, d->port[p],
							upv[UP_TIMEOUT], u->home, d->name);
					return -ETIMEDOUT;
				}
				usleep(20 * 1000);
			}
		}
	}
	return 0;
}

/* Reads a one-line file of a daemon's folder (datanode_id, cluster_id)
 * into buf; "" when it is not there yet. */
static void read_small(const char *dir, const char *name, char *buf, size_t n)
{
	char *f = xasprintf("%s/%s", dir, name);
	FILE *fp = fopen(f, "r");
	free(f);
	buf[0] = '\0';
	if (!fp)
		return;
	if (!fgets(buf, (int)n, fp))
		buf[0] = '\0';
	fclose(fp);
	buf[strcspn(buf, "\r\n")] = '\0';
}

/* Waits until the namenode answers and `want` datanodes of this state
 * folder are live in its report, or a daemon this invocation started
 * exits. The namenode listens on its port itself (rank_listening), so it
 * is ours that answers; the datanodes counted are ours by their ids, and
 * one that registered with a namenode of another cluster id (the
 * namespace was formatted anew) is an error at once, as it would be
 * refused forever. */
static int wait_cluster(struct upctx *u, int want)
{
	bool nn_up = false;
	int live = 0;
	while (cdl_now_ms() < u->end) {
		if (any_died(u))
			return -ECHILD;
		/* a fresh channel per round: no reconnect backoff to wait out */
		cdl_client *c = client_make(u->nn, 1000);
		if (!c)
			return -EINVAL;
		Caudal__Empty e = CAUDAL__EMPTY__INIT;
		Caudal__ReportReply *rep;
		int rc = cdl_client_call(c, CDL_NN_Report, &e.base, (ProtobufCMessage **)&rep);
		cdl_client_free(c);
		if (rc == 0 && rep->err == 0) {
			nn_up = true;
			live = 0;
			for (int i = 0; i < u->n; i++) {
				const struct daemon *d = &u->ds[i];
				if (d->role != CDL_ROLE_DATANODE)
					continue;
				char id[128], cid[128];
				read_small(d->dir, "datanode_id", id, sizeof(id));
				read_small(d->dir, "cluster_id", cid, sizeof(cid));
				if (*cid && rep->cluster && *rep->cluster &&
				    strcmp(cid, rep->cluster)) {
					fprintf(
					    stderr,
					    "caudal: cannot start %s '%s': it belongs to cluster "
					    "'%s', the namenode '%s' to cluster '%s'\n",
					    d->name, d->addr, cid, u->nn, rep->cluster);
					free_msg(rep);
					return -EINVAL;
				}
				for (size_t k = 0; *id && k < rep->n_datanodes; k++)
					if (rep->datanodes[k]->alive &&
					    !strcmp(rep->datanodes[k]->id, id))
						live++;
			}
			if (live >= want) {
				snprintf(u->cluster, sizeof(u->cluster), "%s",
					 rep->cluster ? rep->cluster : "");
				free_msg(rep);
				return 0;
			}
		}
		if (rc == 0)
			free_msg(rep);
		usleep(100000);
	}
	if (!nn_up)
		fprintf(stderr, "caudal: cannot reach namenode '%s': no answer within %s ms\n",
			u->nn, upv[UP_TIMEOUT]);
	else
		fprintf(stderr,
			"caudal: cannot start the cluster: %d of %d datanodes live after %s ms "
			"(logs in '%s/logs')\n",
			live, want, upv[UP_TIMEOUT], u->home);
	return -ETIMEDOUT;
}

/* After a failed start: stops what this invocation started, so that
 * nothing half-started goes on (a datanode talking to another cluster's
 * namenode, say). They are our children, so the pids cannot be stale. */
static void stop_spawned(struct upctx *u)
{
	for (int i = 0; i < u->n; i++)
		if (u->ds[i].spawned)
			kill(u->ds[i].pid, SIGTERM);
	int64_t end = cdl_now_ms() + 10000;
	for (int i = 0; i < u->n; i++) {
		struct daemon *d = &u->ds[i];
		if (!d->spawned)
			continue;
		int st = 0;
		while (waitpid(d->pid, &st, WNOHANG) == 0) {
			if (cdl_now_ms() >= end) {
				kill(d->pid, SIGKILL);
				waitpid(d->pid, &st, 0);
				break;
			}
			usleep(20 * 1000);
		}
		/* one that failed on its own before the signal says why */
		if (!WIFEXITED(st) || WEXITSTATUS(st) == 0 || !say_port_conflict(d, 0))
			printf("%s stopped (pid %d)\n", d->name, (int)d->pid);
		char *f = pidfile_path(u->home, d->name);
		unlink(f);
		free(f);
		d->spawned = false;
		d->pid = 0;
	}
}

static void daemons_free(struct daemon *d, int n)
{
	for (int i = 0; i < n; i++) {
		for (int j = 0; j < d[i].argc; j++)
			free(d[i].argv[j]);
		free(d[i].dir);
		free(d[i].addr);
		free(d[i].metrics);
	}
	free(d);
}

/* The state folder as an absolute path, created if missing. */
static char *home_abs(bool create)
{
	const char *h = upv[UP_HOME];
	if (create) {
		int rc = cdl_mkdirs(h);
		if (rc) {
			fail("create", h, rc);
			return NULL;
		}
	}
	char buf[PATH_MAX];
	if (!realpath(h, buf)) {
		if (create)
			fail("resolve", h, -errno);
		return NULL;
	}
	return xstrdup(buf);
}

/* Makes certs/NAME.{crt,key} for role on host unless they are there. */
static int cert_for(const char *dir, const char *name, enum cdl_role role, const char *host)
{
	char *crt = xasprintf("%s/%s.crt", dir, name);
	char *key = xasprintf("%s/%s.key", dir, name);
	int rc = 0;
	if (access(crt, R_OK) != 0 || access(key, R_OK) != 0)
		rc = cdl_cert_create(dir, role, role == CDL_ROLE_ADMIN ? "root" : host,
				     role == CDL_ROLE_MOUNT || role == CDL_ROLE_ADMIN ? NULL : host,
				     crt, key, 3650);
	free(crt);
	free(key);
	return rc;
}

/* The cluster's CA and a certificate for every daemon the local cluster
 * can run (those started by hand too: a mount, the job daemons, the
 * checkpointer uses the namenode's) and for the admin, under home/certs,
 * made on first start (DESIGN.md, "Security"). Each daemon `up` runs but
 * the mount gets its files as flags. Keys are 0600, readable by root only,
 * so a local user cannot act as a daemon or the admin. */
static int up_certs(struct upctx *u)
{
	char *dir = xasprintf("%s/certs", u->home);
	char *ca = xasprintf("%s/ca.crt", dir);
	char *marker = xasprintf("%s/insecure", u->home);
	unlink(marker); /* started insecure once, secure now */
	free(marker);
	int rc = cdl_cert_create_ca(dir, "local");
	for (size_t k = 0; rc == 0 && k < NKINDS; k++) {
		int count = kinds[k].per_dn ? u->ndn : 1;
		for (int i = 0; rc == 0 && i < count; i++) {
			char name[64];
			if (kinds[k].per_dn)
				snprintf(name, sizeof(name), "%s%d", kinds[k].name, i + 1);
			else
				snprintf(name, sizeof(name), "%s", kinds[k].name);
			rc = cert_for(dir, name, kinds[k].role,
				      kinds[k].per_dn ? u->hosts[i] : upv[UP_NN_HOST]);
		}
	}
	if (rc == 0)
		rc = cert_for(dir, "admin", CDL_ROLE_ADMIN, NULL);
	for (int i = 0; rc == 0 && i < u->n; i++) {
		struct daemon *d = &u->ds[i];
		if (d->role == CDL_ROLE_MOUNT)
			continue;
		char *crt = xasprintf("%s/%s.crt", dir, d->name);
		char *key = xasprintf("%s/%s.key", dir, d->name);
		d_arg(d, "tls_ca", ca);
		d_arg(d, "tls_cert", crt);
		d_arg(d, "tls_key", key);
		free(crt);
		free(key);
	}
	if (rc == 0) {
		/* up itself asks the cluster as the admin */
		char *crt = xasprintf("%s/admin.crt", dir), *key = xasprintf("%s/admin.key", dir);
		rc = cdl_sec_use(ca, crt, key);
		free(crt);
		free(key);
	}
	if (rc < 0)
		fprintf(stderr, "caudal: cannot make the cluster's certificates in '%s': %s\n", dir,
			strerror(-rc));
	free(ca);
	free(dir);
	return rc;
}

/* A cluster without TLS (`caudal up --insecure=yes`): every daemon gets
 * insecure = yes, and the state folder says so, so that the CLI and the
 * mount speak plaintext to it. Anyone who reaches its ports may claim any
 * uid: for measuring what security costs, never for real use. */
static int up_insecure(struct upctx *u)
{
	char *marker = xasprintf("%s/insecure", u->home);
	int fd = open(marker, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	free(marker);
	if (fd < 0) {
		fprintf(stderr, "caudal: cannot mark '%s' insecure: %s\n", u->home,
			strerror(errno));
		return -errno;
	}
	close(fd);
	for (int i = 0; i < u->n; i++)
		if (u->ds[i].role != CDL_ROLE_MOUNT)
			d_arg(&u->ds[i], "insecure", "yes");
	cdl_sec_use_insecure();
	setenv("CAUDAL_INSECURE", "1", 1);
	return 0;
}

/* The mount takes its identity from the environment (as any client does):
 * point it at its certificate before it is spawned. */
static void mount_identity(const char *home, const struct daemon *d)
{
	char *ca = xasprintf("%s/certs/ca.crt", home);
	char *crt = xasprintf("%s/certs/%s.crt", home, d->name);
	char *key = xasprintf("%s/certs/%s.key", home, d->name);
	setenv("CAUDAL_CA", ca, 1);
	setenv("CAUDAL_CERT", crt, 1);
	setenv("CAUDAL_KEY", key, 1);
	free(ca);
	free(crt);
	free(key);
}

static int cmd_up(int argc, char **argv)
{
	struct opts o;
	int rc = up_parse(&o, argc, argv);
	free(o.pos);
	if (rc)
		return rc;
	unsigned long long tmo;
	if (parse_uint(upv[UP_TIMEOUT], 3600000, &tmo))
		return usage_error("invalid start-up timeout '%s'", upv[UP_TIMEOUT]);
	char *home = home_abs(true);
	if (!home)
		return 1;
	char *bindir = bin_dir();
	struct upctx u = {.home = home};
	char *nn = xasprintf("%s:%s", upv[UP_NN_HOST], upv[UP_NN_PORT]);
	u.nn = nn;
	u.ndn = dn_hosts(&u.hosts);
	build_daemons(&u, bindir);
	int ret = 1;
	const char *dirs[] = {"logs", "pids"};
	for (size_t i = 0; i < 2; i++) {
		char *p = xasprintf("%s/%s", home, dirs[i]);
		rc = cdl_mkdirs(p);
		if (rc)
			fail("create", p, rc);
		free(p);
		if (rc)
			goto out;
	}
	for (int i = 0; i < u.n; i++) {
		char *p = xasprintf("%s/%s", bindir, u.ds[i].prog);
		bool ok = access(p, X_OK) == 0;
		if (!ok)
			fprintf(stderr, "caudal: cannot find '%s' (set CAUDAL_BIN_DIR)\n", p);
		free(p);
		if (!ok)
			goto out;
		if ((rc = cdl_mkdirs(u.ds[i].dir)) != 0) {
			fail("create", u.ds[i].dir, rc);
			goto out;
		}
	}
	{
		char *f = xasprintf("%s/namenode.addr", home);
		FILE *fp = fopen(f, "w");
		if (fp) {
			fprintf(fp, "%s\n", nn);
			fclose(fp);
		}
		free(f);
	}
	if (!strcmp(upv[UP_INSECURE], "yes")) {
		if (up_insecure(&u) < 0)
			goto out;
	} else if (up_certs(&u) < 0) {
		goto out;
	}
	u.end = cdl_now_ms() + (int64_t)tmo;
	/* rank by rank, each ready before the next starts */
	for (int rank = 0; rank <= kinds[NKINDS - 1].rank; rank++) {
		for (int i = 0; i < u.n; i++) {
			struct daemon *d = &u.ds[i];
			if (d->rank != rank)
				continue;
			d->pid = daemon_running(home, d);
			if (d->pid) {
				printf("%s %s already running (pid %d)\n", d->name, d->addr,
				       (int)d->pid);
				continue;
			}
			if (d->role == CDL_ROLE_MOUNT && strcmp(upv[UP_INSECURE], "yes"))
				mount_identity(home, d);
			if (daemon_spawn(home, bindir, d))
				goto out;
			printf("%s %s started (pid %d)\n", d->name, d->addr, (int)d->pid);
			fflush(stdout);
		}
		/* each answers on its own ports, not another cluster's daemon */
		if (rank_listening(&u, rank))
			goto out;
		for (size_t k = 0; k < NKINDS; k++) {
			/* a kind left out of this cluster (not built, not wanted) has nothing to
			 * wait for */
			bool present = false;
			for (int i = 0; i < u.n; i++)
				present |= !strcmp(u.ds[i].prog, kinds[k].prog);
			if (present && kinds[k].rank == rank && kinds[k].ready &&
			    kinds[k].ready(&u))
				goto out;
		}
	}
	/* a daemon of the last ranks (no port, no readiness check) may have
	 * failed since */
	if (any_died(&u))
		goto out;
	printf("cluster up: namenode %s, cluster '%s', %d datanodes live, state in '%s'\n", nn,
	       u.cluster, u.ndn, home);
	bool any = false;
	/* with TLS the namenode's and datanodes' HTTP ports speak HTTPS
	 * (WebHDFS's identity); the other daemons serve plain HTTP */
	bool tls = strcmp(upv[UP_INSECURE], "yes") != 0;
	for (int i = 0; i < u.n; i++)
		if (u.ds[i].metrics) {
			bool https = tls && (!strcmp(u.ds[i].name, "namenode") ||
					     !strncmp(u.ds[i].name, "dn", 2));
			printf("%s %s=%s://%s/metrics", any ? "," : "metrics:", u.ds[i].name,
			       https ? "https" : "http", u.ds[i].metrics);
			any = true;
		}
	if (any)
		printf("\n");
	ret = 0;
out:
	if (ret) {
		fflush(stdout);
		stop_spawned(&u);
	}
	fflush(stdout);
	free(nn);
	free(bindir);
	daemons_free(u.ds, u.n);
	for (int i = 0; i < u.ndn; i++)
		free(u.hosts[i]);
	free(u.hosts);
	free(home);
	return ret;
}

/* Every daemon with a pid file in the state folder, whatever settings it
 * was started with. */
static int read_pidfiles(const char *home, struct pidrec **out)
{
	char *dir = xasprintf("%s/pids", home);
	DIR *dp = opendir(dir);
	int n = 0;
	*out = NULL;
	if (dp) {
		struct dirent *e;
		while ((e = readdir(dp))) {
			size_t len = strlen(e->d_name);
			if (len < 5 || strcmp(e->d_name + len - 4, ".pid") != 0)
				continue;
			char *f = xasprintf("%s/%s", dir, e->d_name);
			struct pidrec r;
			if (pidfile_read(f, &r) == 0) {
				snprintf(r.name, sizeof(r.name), "%.*s", (int)(len - 4), e->d_name);
				*out = xrealloc(*out, (size_t)(n + 1) * sizeof(r));
				(*out)[n++] = r;
			}
			free(f);
		}
		closedir(dp);
	}
	free(dir);
	return n;
}

/* Is the process of pid file r still the daemon it names: a program of
 * ours (one of the kinds), given a folder of this state folder (home) on
 * its command line? A pid file is only a claim: the pid may have been
 * reused, by anything, and the file may name a folder of another
 * cluster's, whose daemons `down` here must never signal. */
static bool rec_running(const char *home, const struct pidrec *r)
{
	bool known = false;
	for (size_t k = 0; k < NKINDS; k++)
		known |= !strcmp(kinds[k].prog, r->prog);
	size_t hl = strlen(home);
	if (!known || strncmp(r->marker, home, hl) != 0 || r->marker[hl] != '/')
		return false;
	return proc_matches(r->pid, r->prog, r->marker);
}

static int cmp_rank_desc(const void *a, const void *b)
{
	const struct pidrec *x = a, *y = b;
	if (x->rank != y->rank)
		return y->rank - x->rank;
	return strcmp(x->name, y->name);
}

static int cmp_rank_asc(const void *a, const void *b)
{
	const struct pidrec *x = a, *y = b;
	if (x->rank != y->rank)
		return x->rank - y->rank;
	return strcmp(x->name, y->name);
}

static int cmd_down(int argc, char **argv)
{
	struct opts o;
	int rc = up_parse(&o, argc, argv);
	free(o.pos);
	if (rc)
		return rc;
	char *home = home_abs(false);
	if (!home) {
		printf("nothing to stop: no state folder '%s'\n", upv[UP_HOME]);
		return 0;
	}
	struct pidrec *rs;
	int n = read_pidfiles(home, &rs);
	qsort(rs, (size_t)n, sizeof(*rs), cmp_rank_desc);
	const char *e = getenv("CAUDAL_DOWN_TIMEOUT_MS");
	int64_t grace = e && atoi(e) > 0 ? atoi(e) : 10000;
	int stopped = 0, ret = 0;
	/* stop rank by rank, highest first (clients before servers) */
	for (int i = 0; i < n;) {
		int j = i;
		while (j < n && rs[j].rank == rs[i].rank)
			j++;
		bool live[64] = {false};
		for (int k = i; k < j && k - i < 64; k++) {
			live[k - i] = rec_running(home, &rs[k]);
			if (!live[k - i]) {
				bool other = kill(rs[k].pid, 0) == 0 || errno == EPERM;
				printf("%s not running (pid %d %s)\n", rs[k].name, (int)rs[k].pid,
				       other ? "is another process, left alone" : "has exited");
				continue;
			}
			for (size_t kk = 0; kk < NKINDS; kk++)
				if (kinds[kk].stop && !strcmp(kinds[kk].prog, rs[k].prog))
					kinds[kk].stop(rs[k].pid, rs[k].marker);
			kill(rs[k].pid, SIGTERM);
		}
		for (int sig = SIGTERM; sig; sig = sig == SIGTERM ? SIGKILL : 0) {
			int64_t end = cdl_now_ms() + (sig == SIGTERM ? grace : 3000);
			for (;;) {
				bool any = false;
				for (int k = i; k < j && k - i < 64; k++)
					if (live[k - i] &&
					    proc_matches(rs[k].pid, rs[k].prog, rs[k].marker))
						any = true;
				if (!any || cdl_now_ms() >= end)
					break;
				usleep(50000);
			}
			if (sig == SIGKILL)
				break;
			for (int k = i; k < j && k - i < 64; k++)
				if (live[k - i] &&
				    proc_matches(rs[k].pid, rs[k].prog, rs[k].marker)) {
					fprintf(stderr,
						"caudal: %s (pid %d) ignored SIGTERM; killing it\n",
						rs[k].name, (int)rs[k].pid);
					kill(rs[k].pid, SIGKILL);
				}
		}
		for (int k = i; k < j && k - i < 64; k++) {
			if (live[k - i] && proc_matches(rs[k].pid, rs[k].prog, rs[k].marker)) {
				fprintf(stderr, "caudal: cannot stop %s (pid %d)\n", rs[k].name,
					(int)rs[k].pid);
				ret = 1;
				continue;
			}
			if (live[k - i]) {
				printf("%s stopped (pid %d)\n", rs[k].name, (int)rs[k].pid);
				stopped++;
			}
			char *f = pidfile_path(home, rs[k].name);
			unlink(f);
			free(f);
		}
		i = j;
	}
	if (stopped == 0 && ret == 0)
		printf("nothing running in '%s'\n", home);
	free(rs);
	free(home);
	return ret;
}

static int cmd_status(int argc, char **argv)
{
	struct opts o;
	int rc = up_parse(&o, argc, argv);
	free(o.pos);
	if (rc)
		return rc;
	char *home = home_abs(false);
	if (!home) {
		printf("no local cluster in '%s'\n", upv[UP_HOME]);
		return 1;
	}
	struct pidrec *rs;
	int n = read_pidfiles(home, &rs);
	qsort(rs, (size_t)n, sizeof(*rs), cmp_rank_asc);
	int running = 0;
	for (int i = 0; i < n; i++) {
		bool up = rec_running(home, &rs[i]);
		running += up;
		if (up)
			printf("%-10s running  pid %d\n", rs[i].name, (int)rs[i].pid);
		else
			printf("%-10s stopped\n", rs[i].name);
	}
	free(rs);
	free(home);
	if (n == 0) {
		printf("no daemons started from '%s'\n", upv[UP_HOME]);
		return 1;
	}
	g_timeout_ms = g_timeout_ms > 3000 ? 3000 : g_timeout_ms;
	Caudal__Empty e = CAUDAL__EMPTY__INIT;
	Caudal__StatfsReply *st;
	rc = cdl_client_call_err(client(), CDL_NN_Statfs, &e.base, (ProtobufCMessage **)&st);
	if (rc) {
		printf("namenode %s: not answering (%s)\n", namenode_addr(), strerror(-rc));
		return 1;
	}
	char used[16], cap[16];
	human(st->used, used, sizeof(used));
	human(st->capacity, cap, sizeof(cap));
	printf("namenode %s: %u live / %u dead datanodes, %llu files, %llu blocks, %s of %s used, "
	       "safe mode %s\n",
	       namenode_addr(), st->live, st->dead, (unsigned long long)st->files,
	       (unsigned long long)st->blocks, used, cap, st->safemode ? "on" : "off");
	free_msg(st);
	return running == n ? 0 : 1;
}

/* ------------------------------------------------------------ table */

/* caudal cert create-ca | create-node HOST ROLE | create-client NAME | list:
 * the cluster CA and certificates for other hosts and for users, in
 * $CAUDAL_HOME/certs (or --dir DIR), as CockroachDB's `cockroach cert`. */
static int cmd_cert(int argc, char **argv)
{
	const char *dir_opt = NULL;
	int n = 0;
	for (int i = 0; i < argc; i++) {
		if (!strncmp(argv[i], "--dir=", 6))
			dir_opt = argv[i] + 6;
		else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			dir_opt = argv[++i];
		else
			argv[n++] = argv[i];
	}
	argc = n;
	if (argc < 1)
		return usage_error("cert: create-ca | create-node HOST ROLE | create-client NAME "
				   "| list");
	char *home = home_dir();
	char *dir = dir_opt ? xstrdup(dir_opt) : xasprintf("%s/certs", home);
	free(home);
	int rc = 0;
	const char *what = argv[0];
	if (!strcmp(what, "create-ca") && argc == 1) {
		rc = cdl_cert_create_ca(dir, "cluster");
		if (rc == 0)
			printf("CA in '%s/ca.crt' (key ca.key, keep it safe)\n", dir);
	} else if (!strcmp(what, "create-node") && argc == 3) {
		enum cdl_role role = cdl_role_parse(argv[2]);
		if (role == CDL_ROLE_NONE || role == CDL_ROLE_USER || role == CDL_ROLE_ADMIN) {
			free(dir);
			return usage_error("cert: ROLE is namenode, datanode, jobtracker, "
					   "tasktracker or mount, not '%s'",
					   argv[2]);
		}
		char *crt = xasprintf("%s/%s-%s.crt", dir, argv[2], argv[1]);
		char *key = xasprintf("%s/%s-%s.key", dir, argv[2], argv[1]);
		rc = cdl_cert_create(dir, role, argv[1], role == CDL_ROLE_MOUNT ? NULL : argv[1],
				     crt, key, 3650);
		if (rc == 0)
			printf("%s certificate for '%s' in '%s' (key '%s')\n", argv[2], argv[1],
			       crt, key);
		free(crt);
		free(key);
	} else if (!strcmp(what, "create-client") && argc == 2) {
		bool admin = !strcmp(argv[1], "admin");
		char *udir = admin ? xstrdup(dir) : xasprintf("%s/users", dir);
		char *crt = xasprintf("%s/%s.crt", udir, argv[1]);
		char *key = xasprintf("%s/%s.key", udir, argv[1]);
		rc = cdl_mkdirs(udir);
		if (rc == 0)
			rc = cdl_cert_create(dir, admin ? CDL_ROLE_ADMIN : CDL_ROLE_USER,
					     admin ? "root" : argv[1], NULL, crt, key, 365);
		/* the user's own key is theirs to read, nobody else's */
		struct passwd *pw = admin ? NULL : getpwnam(argv[1]);
		if (rc == 0 && !admin && !pw)
			fprintf(stderr,
				"caudal: no user '%s' on this host: the key stays root's; hand it "
				"over to the user on theirs\n",
				argv[1]);
		if (rc == 0 && pw &&
		    (chown(key, pw->pw_uid, pw->pw_gid) < 0 ||
		     chown(crt, pw->pw_uid, pw->pw_gid) < 0))
			rc = -errno;
		if (rc == 0)
			printf("%s certificate for '%s' in '%s' (key '%s')\n",
			       admin ? "admin" : "user", argv[1], crt, key);
		free(crt);
		free(key);
		free(udir);
	} else if (!strcmp(what, "list") && argc == 1) {
		rc = cdl_cert_list(dir, stdout);
	} else {
		free(dir);
		return usage_error("cert: create-ca | create-node HOST ROLE | create-client NAME "
				   "| list");
	}
	if (rc < 0)
		fprintf(stderr, "caudal: cert %s: %s\n", what, strerror(-rc));
	free(dir);
	return rc < 0 ? 1 : 0;
}

struct command {
	const char *name;
	int (*fn)(struct opts *o);
	int (*raw)(int argc, char **argv); /* parses its own arguments */
	const char *spec;
	int minpos, maxpos;
	const char *usage;
	const char *help; /* more for `caudal COMMAND --help` (NULL: the usage line says it) */
};

static const struct command commands[] = {
    {"up", NULL, cmd_up, "", 0, 0, "up [--nn-port=P ...]   start the local cluster", NULL},
    {"down", NULL, cmd_down, "", 0, 0, "down                   stop the local cluster", NULL},
    {"status", NULL, cmd_status, "", 0, 0,
     "status                 local daemons and a short report", NULL},
    {"ls", cmd_ls, NULL, "l", 0, 1, "ls [-l] [PATH]         list a directory", NULL},
    {"mkdir", cmd_mkdir, NULL, "p", 1, 1000, "mkdir [-p] PATH...     make directories", NULL},
    {"put", cmd_put, NULL, "r:b:fq", 2, 2,
     "put LOCAL|- PATH [-r N] [-b SIZE] [-f] [-q]   copy a local file (or stdin) in", NULL},
    {"append", cmd_append, NULL, "q", 2, 2,
     "append [-q] LOCAL|- PATH   append a local file (or stdin)", NULL},
    {"get", cmd_get, NULL, "q", 1, 2, "get [-q] PATH [LOCAL|-]   copy a file out", NULL},
    {"cat", cmd_cat, NULL, "", 1, 1000, "cat PATH...            print files", NULL},
    {"rm", NULL, cmd_rm_raw, "", 0, 0,
     "rm [-r] [-f] [-skipTrash] PATH...   remove files (and trees with -r)",
     "With the namenode's trash on (trash_interval), PATH moves to\n"
     "/user/NAME/.Trash/Current/PATH (NAME: your user name) and is removed for good after\n"
     "trash_interval; restore it with mv. -skipTrash removes it at once, as does rm of\n"
     "something in your trash already. -f: no error for a missing PATH."},
    {"expunge", cmd_expunge, NULL, "", 0, 0, "expunge                empty your trash now",
     "Removes /user/NAME/.Trash (NAME: your user name) and everything in it at once;\n"
     "another user's trash is theirs alone."},
    {"mv", cmd_mv, NULL, "", 2, 2, "mv SRC DST             rename", NULL},
    {"stat", cmd_stat, NULL, "", 1, 1, "stat PATH              attributes and blocks", NULL},
    {"blocks", cmd_blocks, NULL, "", 1, 1,
     "blocks PATH            one line per block: id gen offset length host:port,...", NULL},
    {"setrep", cmd_setrep, NULL, "wq", 2, 2,
     "setrep [-w] [-q] N PATH   set a file's replication (-w: wait for it)", NULL},
    {"report", cmd_report, NULL, "", 0, 0, "report                 datanodes and totals", NULL},
    {"fsck", cmd_fsck, NULL, "vq", 0, 1,
     "fsck [-v] [-q] [PATH]  check blocks and replicas; exit 1 when unhealthy", NULL},
    {"decommission", cmd_decommission, NULL, "cwq", 1, 1,
     "decommission [-w] [-c] DATANODE   drain HOST:PORT or id (-w: wait; -c: cancel)", NULL},
    {"job", NULL, cmd_job, "", 0, 0,
     "job list|status [-v] NAME|watch NAME|kill NAME   jobs in /jobs", NULL},
    {"cert", NULL, cmd_cert, "", 0, 0,
     "cert create-ca|create-node HOST ROLE|create-client NAME|admin|list [--dir DIR]", NULL},
    {"balancer", NULL, cmd_balancer, "", 0, 0,
     "balancer [-t PERCENT] [-bandwidth MB/s]   move replicas until every datanode's use is "
     "within PERCENT (10) of the mean, at most MB/s (10) (admin)",
     NULL},
    {"events", cmd_events, NULL, "f", 0, 1,
     "events [-f] [FROM]     namespace events from a transaction id (-f: follow)", NULL},
    {"quota", NULL, cmd_quota, "", 0, 0,
     "quota set DIR [-n N] [-s SIZE] | clear DIR [-n] [-s] | show DIR   directory quotas",
     "A name quota (-n) bounds the files and directories under DIR, DIR itself included;\n"
     "a space quota (-s, bytes or with k, m, g, t, p) bounds their bytes times their\n"
     "replication, a block being written counting its full block size. Both are at\n"
     "least 1 and at most 2^63-1. Only root (the admin certificate) sets or clears\n"
     "quotas; anyone who may reach DIR shows them. An operation that would pass a quota\n"
     "fails with 'Disk quota exceeded' (EDQUOT); a quota set below the usage refuses\n"
     "only additions. 'clear' without -n or -s clears both."},
    {"refresh-nodes", cmd_refresh_nodes, NULL, "", 0, 0,
     "refresh-nodes          re-read the namenode's hosts and exclude files (root only)",
     "The namenode reads its include file (hosts) and exclude file (hosts_exclude) again,\n"
     "as HDFS's 'dfsadmin -refreshNodes': a datanode the include file does not name is\n"
     "refused (from its next heartbeat; an empty or unset include file refuses none), one\n"
     "the exclude file names is decommissioned, one no longer named there returns to\n"
     "service. A file with a bad line changes nothing; the error names the line."},
    {"count", cmd_count, NULL, "q", 1, 1000,
     "count [-q] PATH...     directories, files and bytes under PATH (-q: with quotas)",
     "Columns as HDFS's 'hdfs dfs -count': DIR_COUNT FILE_COUNT CONTENT_SIZE PATHNAME;\n"
     "with -q first QUOTA REM_QUOTA SPACE_QUOTA REM_SPACE_QUOTA ('none' and 'inf' where\n"
     "PATH has no quota). DIR_COUNT counts PATH itself."},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: caudal [--namenode HOST:PORT] [--timeout MS] COMMAND [ARGS]\n\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %s\n", commands[i].usage);
	fprintf(out,
		"\nThe namenode is --namenode, else $CAUDAL_NAMENODE, else the one 'caudal up'\n"
		"recorded in $CAUDAL_HOME (default ./.caudal), else %s.\n"
		"'caudal up' settings (flag, environment, default):\n",
		DEFAULT_NAMENODE);
	for (int i = 0; i < UP_N; i++)
		fprintf(out, "  --%-14s %-24s %-14s %s\n", up_settings[i].flag, up_settings[i].env,
			up_settings[i].def ? up_settings[i].def : "-", up_settings[i].help);
}

/* Takes --namenode and --timeout out of argv, wherever they are. */
static int global_opts(int *argc, char **argv)
{
	int n = 0;
	for (int i = 0; i < *argc; i++) {
		const char *a = argv[i], *val = NULL;
		int which = 0;
		if (strcmp(a, "--") == 0) {
			while (i < *argc)
				argv[n++] = argv[i++];
			break;
		}
		if (!strncmp(a, "--namenode", 10) && (a[10] == '=' || a[10] == '\0'))
			which = 1;
		else if (!strncmp(a, "--timeout", 9) && (a[9] == '=' || a[9] == '\0'))
			which = 2;
		if (!which) {
			argv[n++] = argv[i];
			continue;
		}
		const char *eq = strchr(a, '=');
		if (eq)
			val = eq + 1;
		else if (i + 1 < *argc)
			val = argv[++i];
		else
			return usage_error("option '%s' needs a value", a);
		if (which == 1) {
			g_namenode = val;
		} else {
			unsigned long long t;
			if (parse_uint(val, 24 * 3600 * 1000ULL, &t) || t < 100)
				return usage_error("invalid timeout '%s' (ms, at least 100)", val);
			g_timeout_ms = (int)t;
		}
	}
	*argc = n;
	argv[n] = NULL;
	return 0;
}

int main(int argc, char **argv)
{
	/* quiet library unless asked: the CLI prints its own one-line errors */
	const char *lv = getenv("CAUDAL_LOG_LEVEL");
	cdl_log_init("caudal", CDL_LOG_ERROR);
	cdl_log_level_cur = lv && cdl_log_level_parse(lv) >= 0 ? cdl_log_level_parse(lv) : -1;
	signal(SIGPIPE, SIG_DFL);

	argc--;
	argv++;
	int rc = global_opts(&argc, argv);
	if (rc)
		return rc;
	if (argc == 0) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[0], "help") || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
		usage(stdout);
		return 0;
	}
	const struct command *cmd = NULL;
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(commands[i].name, argv[0]))
			cmd = &commands[i];
	if (!cmd)
		return usage_error("unknown command '%s'", argv[0]);
	if (argc >= 2 && !strcmp(argv[1], "--help")) {
		printf("usage: caudal %s\n", cmd->usage);
		if (cmd->help)
			printf("\n%s\n", cmd->help);
		return 0;
	}

	cdl_rpc_global_init();
	if (cmd->raw) {
		rc = cmd->raw(argc - 1, argv + 1);
	} else {
		struct opts o;
		rc = parse_opts(argc - 1, argv + 1, cmd->spec, &o);
		if (rc == 0 && (o.npos < cmd->minpos || o.npos > cmd->maxpos)) {
			fprintf(stderr, "usage: caudal %s\n", cmd->usage);
			rc = 2;
		}
		if (rc == 0)
			rc = cmd->fn(&o);
		free(o.pos);
	}
	fflush(stdout);
	if (g_client)
		cdl_client_free(g_client);
	cdl_rpc_global_shutdown();
	if (ferror(stdout))
		return 1;
	return rc;
}
