/* Unit test of the task engine (jobs/job_task) with the shuffle
 * (jobs/job_shuffle), without a cluster: map children (run as forked
 * processes on local files, as the tasktracker's children run) produce
 * partitioned, sorted, combined output; a shuffle server serves it; reduce
 * children fetch their partition over TCP, merge and reduce; the parts
 * together equal a word count computed here. Also a map-only grep, a
 * failing streaming mapper (its error in result.pb), a corrupt run (the
 * reduce fails on the checksum) and an unreachable map (fetch_failed). */
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "job_shuffle.h"
#include "job_sort.h"
#include "job_task.h"
#include "jobs.pb-c.h"

static int failures;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond) && failures++ < 20)                                                    \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
	} while (0)

static char root[256];
static uint8_t key[JOB_SHUFFLE_KEY_LEN]; /* job j1's shuffle key */

static void write_file(const char *path, const void *data, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, data, n) != (ssize_t)n) {
		perror(path);
		exit(1);
	}
	close(fd);
}

static char *read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return NULL;
	struct stat st;
	fstat(fd, &st);
	char *b = malloc((size_t)st.st_size + 1);
	ssize_t k = read(fd, b, (size_t)st.st_size);
	close(fd);
	b[k < 0 ? 0 : k] = '\0';
	*len = k < 0 ? 0 : (size_t)k;
	return b;
}

/* Run `--task DIR` as the tasktracker would: a child process with stdin
 * from a file (or /dev/null), stderr into DIR/stderr. Returns the exit
 * status. */
static int run_task(const char *dir, const Caudal__TaskAssignment *t, const char *input)
{
	mkdir(dir, 0755);
	Caudal__ChildTask ct = CAUDAL__CHILD_TASK__INIT;
	ct.task = (Caudal__TaskAssignment *)t;
	ct.sort_mb = 1;
	ct.fetch_timeout_ms = 300;
	size_t n = caudal__child_task__get_packed_size(&ct);
	uint8_t *b = malloc(n);
	caudal__child_task__pack(&ct, b);
	char p[512];
	snprintf(p, sizeof(p), "%s/task.pb", dir);
	write_file(p, b, n);
	free(b);
	pid_t pid = fork();
	if (pid == 0) {
		int in = open(input ? input : "/dev/null", O_RDONLY);
		snprintf(p, sizeof(p), "%s/stderr", dir);
		int er = open(p, O_WRONLY | O_CREAT | O_APPEND, 0644);
		dup2(in, 0);
		dup2(er, 2);
		_exit(job_task_main(dir));
	}
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static Caudal__ChildResult *result(const char *dir)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/result.pb", dir);
	size_t n;
	char *b = read_file(p, &n);
	if (!b)
		return NULL;
	Caudal__ChildResult *r = caudal__child_result__unpack(NULL, n, (uint8_t *)b);
	free(b);
	return r;
}

static int64_t counter(const Caudal__ChildResult *r, const char *name)
{
	for (size_t i = 0; r && i < r->n_counters; i++)
		if (!strcmp(r->counters[i]->name, name))
			return r->counters[i]->value;
	return -1;
}

/* reference word counts of text: "word count\n" lines sorted */
static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	snprintf(root, sizeof(root), "/tmp/test_job_task.XXXXXX");
	if (!mkdtemp(root))
		return 1;
	char jobs[300], p[1024];
	snprintf(jobs, sizeof(jobs), "%s/jobs", root);
	mkdir(jobs, 0755);
	snprintf(p, sizeof(p), "%s/j1", jobs);
	mkdir(p, 0755);
	if (job_shuffle_key_new(key) || job_shuffle_key_save(jobs, "j1", key, sizeof(key)))
		return 1;

	/* two splits of text */
	char *text[2];
	size_t tlen[2];
	unsigned seed = 5;
	for (int s = 0; s < 2; s++) {
		size_t cap = 300000, len = 0;
		text[s] = malloc(cap);
		while (len < cap - 100) {
			seed = seed * 1103515245u + 12345u;
			unsigned w = (seed >> 8) % 700;
			len += (size_t)sprintf(text[s] + len, "%s%u%s", w % 7 ? "w" : "x", w,
					       (seed >> 20) % 9 ? " " : "\n");
		}
		text[s][len++] = '\n';
		tlen[s] = len;
		snprintf(p, sizeof(p), "%s/in%d", root, s);
		write_file(p, text[s], len);
	}

	job_shuffle_server *srv = job_shuffle_start("127.0.0.1", 0, jobs);
	CHECK(srv != NULL);
	int port = job_shuffle_port(srv);

	/* maps: wordcount, combine sum, 3 partitions, 1 MiB buffer */
	const char *mids[2] = {"j1_m_00000_0", "j1_m_00001_0"};
	for (int s = 0; s < 2; s++) {
		Caudal__TaskAssignment t = CAUDAL__TASK_ASSIGNMENT__INIT;
		t.job_id = "j1";
		t.attempt_id = (char *)mids[s];
		t.type = CAUDAL__TASK_TYPE__TASK_MAP;
		t.task = (uint32_t)s;
		t.map = "wordcount";
		t.combine = "sum";
		t.reduces = 3;
		char dir[600], in[600];
		snprintf(dir, sizeof(dir), "%s/j1/%s", jobs, mids[s]);
		snprintf(in, sizeof(in), "%s/in%d", root, s);
		CHECK(run_task(dir, &t, in) == JOB_TASK_OK);
		Caudal__ChildResult *r = result(dir);
		CHECK(r && r->error[0] == '\0');
		CHECK(counter(r, "combine input records") == counter(r, "map output records"));
		CHECK(counter(r, "map output records") > 0);
		if (r)
			caudal__child_result__free_unpacked(r, NULL);
	}

	/* reduces: fetch each partition from both maps, sum */
	Caudal__MapOutput mo[2], *mop[2];
	for (int s = 0; s < 2; s++) {
		caudal__map_output__init(&mo[s]);
		mo[s].map = (uint32_t)s;
		mo[s].attempt_id = (char *)mids[s];
		mo[s].host = "127.0.0.1";
		mo[s].port = (uint32_t)port;
		mop[s] = &mo[s];
	}
	char *all = malloc(1 << 20);
	size_t alen = 0;
	for (int r = 0; r < 3; r++) {
		Caudal__TaskAssignment t = CAUDAL__TASK_ASSIGNMENT__INIT;
		t.job_id = "j1";
		char id[64];
		snprintf(id, sizeof(id), "j1_r_%05d_0", r);
		t.attempt_id = id;
		t.type = CAUDAL__TASK_TYPE__TASK_REDUCE;
		t.shuffle_key.data = key;
		t.shuffle_key.len = sizeof(key);
		t.shuffle_key.data = key;
		t.shuffle_key.len = sizeof(key);
		t.task = (uint32_t)r;
		t.reduce = "sum";
		t.reduces = 3;
		t.n_maps = 2;
		t.maps = mop;
		char dir[600];
		snprintf(dir, sizeof(dir), "%s/%s", root, id);
		CHECK(run_task(dir, &t, NULL) == JOB_TASK_OK);
		snprintf(p, sizeof(p), "%s/part", dir);
		size_t n;
		char *part = read_file(p, &n);
		CHECK(part != NULL);
		if (part) {
			memcpy(all + alen, part, n);
			alen += n;
			/* sorted by key and every key in partition r */
			char *save, *prev = NULL;
			for (char *l = strtok_r(part, "\n", &save); l;
			     l = strtok_r(NULL, "\n", &save)) {
				char *tab = strchr(l, '\t');
				CHECK(tab != NULL);
				if (!tab)
					break;
				CHECK(job_partition(l, (size_t)(tab - l), 3) == (unsigned)r);
				*tab = '\0';
				CHECK(!prev || strcmp(prev, l) < 0);
				prev = l;
			}
			free(part);
		}
	}
	all[alen] = '\0';
	/* compare with counts made here */
	char **words = NULL;
	size_t nw = 0;
	for (int s = 0; s < 2; s++) {
		char *copy = strndup(text[s], tlen[s]), *save;
		for (char *w = strtok_r(copy, " \n", &save); w; w = strtok_r(NULL, " \n", &save)) {
			words = realloc(words, (nw + 1) * sizeof(char *));
			words[nw++] = strdup(w);
		}
		free(copy);
	}
	qsort(words, nw, sizeof(char *), cmp_str);
	char **got = NULL;
	size_t ng = 0;
	char *save;
	for (char *l = strtok_r(all, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		got = realloc(got, (ng + 1) * sizeof(char *));
		got[ng++] = l;
	}
	qsort(got, ng, sizeof(char *), cmp_str);
	size_t gi = 0;
	for (size_t i = 0; i < nw;) {
		size_t j = i;
		while (j < nw && !strcmp(words[j], words[i]))
			j++;
		char want[128];
		snprintf(want, sizeof(want), "%s\t%zu", words[i], j - i);
		CHECK(gi < ng && !strcmp(got[gi], want));
		gi++;
		i = j;
	}
	CHECK(gi == ng);

	/* map-only grep: the matching lines in order */
	{
		Caudal__TaskAssignment t = CAUDAL__TASK_ASSIGNMENT__INIT;
		t.job_id = "j1";
		t.attempt_id = "j1_m_00000_9";
		t.type = CAUDAL__TASK_TYPE__TASK_MAP;
		t.map = "grep";
		t.pattern = "^x[0-9]+ w1";
		char dir[600], in[600];
		snprintf(dir, sizeof(dir), "%s/grep", root);
		snprintf(in, sizeof(in), "%s/in0", root);
		CHECK(run_task(dir, &t, in) == JOB_TASK_OK);
		snprintf(p, sizeof(p), "%s/part", dir);
		size_t n;
		char *part = read_file(p, &n);
		regex_t re;
		regcomp(&re, "^x[0-9]+ w1", REG_EXTENDED | REG_NOSUB);
		char *want = malloc(tlen[0] + 1);
		size_t wl = 0;
		char *copy = strndup(text[0], tlen[0]);
		for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
			if (!regexec(&re, l, 0, NULL, 0))
				wl += (size_t)sprintf(want + wl, "%s\n", l);
		CHECK(part && n == wl && !memcmp(part, want, n) && wl > 0);
		regfree(&re);
		free(copy);
		free(want);
		free(part);
	}

	/* a streaming mapper that fails: its error and exit in result.pb */
	{
		Caudal__TaskAssignment t = CAUDAL__TASK_ASSIGNMENT__INIT;
		t.job_id = "j1";
		t.attempt_id = "j1_m_00000_8";
		t.type = CAUDAL__TASK_TYPE__TASK_MAP;
		t.map = "exec: echo broken >&2; exit 4";
		t.reduces = 2;
		char dir[600], in[600];
		snprintf(dir, sizeof(dir), "%s/fail", root);
		snprintf(in, sizeof(in), "%s/in0", root);
		CHECK(run_task(dir, &t, in) == JOB_TASK_FAILED);
		Caudal__ChildResult *r = result(dir);
		CHECK(r && strstr(r->error, "exit status 4"));
		snprintf(p, sizeof(p), "%s/stderr", dir);
		size_t n;
		char *e = read_file(p, &n);
		CHECK(e && strstr(e, "broken"));
		free(e);
		if (r)
			caudal__child_result__free_unpacked(r, NULL);
	}

	/* a corrupt map output is refused by its checksum */
	{
		snprintf(p, sizeof(p), "%s/j1/%s/file.out", jobs, mids[0]);
		int fd = open(p, O_WRONLY);
		CHECK(pwrite(fd, "\x01\x01zz", 4, 0) == 4);
		close(fd);
		Caudal__TaskAssignment t = CAUDAL__TASK_ASSIGNMENT__INIT;
		t.job_id = "j1";
		t.attempt_id = "j1_r_00000_1";
		t.type = CAUDAL__TASK_TYPE__TASK_REDUCE;
		t.shuffle_key.data = key;
		t.shuffle_key.len = sizeof(key);
		t.shuffle_key.data = key;
		t.shuffle_key.len = sizeof(key);
		t.reduce = "sum";
		t.reduces = 3;
		t.n_maps = 2;
		t.maps = mop;
		char dir[600];
		snprintf(dir, sizeof(dir), "%s/corrupt", root);
		CHECK(run_task(dir, &t, NULL) != JOB_TASK_OK);
		Caudal__ChildResult *r = result(dir);
		CHECK(r && strstr(r->error, "checksum"));
		if (r)
			caudal__child_result__free_unpacked(r, NULL);
	}

	/* a map output nobody serves: the reduce says which map */
	{
		mo[1].port = 1; /* nothing listens there */
		Caudal__TaskAssignment t = CAUDAL__TASK_ASSIGNMENT__INIT;
		t.job_id = "j1";
		t.attempt_id = "j1_r_00001_1";
		t.type = CAUDAL__TASK_TYPE__TASK_REDUCE;
		t.shuffle_key.data = key;
		t.shuffle_key.len = sizeof(key);
		t.shuffle_key.data = key;
		t.shuffle_key.len = sizeof(key);
		t.task = 1;
		t.reduce = "sum";
		t.reduces = 3;
		t.n_maps = 2;
		t.maps = mop;
		char dir[600];
		snprintf(dir, sizeof(dir), "%s/unreach", root);
		CHECK(run_task(dir, &t, NULL) == JOB_TASK_FETCH_FAILED);
		Caudal__ChildResult *r = result(dir);
		CHECK(r && r->n_fetch_failed == 1 && r->fetch_failed[0] == 1);
		if (r)
			caudal__child_result__free_unpacked(r, NULL);
	}

	/* bad ids never become paths on the server */
	{
		char dir[600];
		snprintf(dir, sizeof(dir), "%s/out.tmp", root);
		int fd = open(dir, O_RDWR | O_CREAT | O_TRUNC, 0644);
		uint64_t len, recs;
		char err[256];
		CHECK(job_shuffle_fetch("127.0.0.1", port, "..", "x", 0, key, sizeof(key), fd,
					1 << 20, 1000, &len, &recs, err, sizeof(err)) == -EINVAL);
		CHECK(job_shuffle_fetch("127.0.0.1", port, "j1", "nope", 0, key, sizeof(key), fd,
					1 << 20, 1000, &len, &recs, err, sizeof(err)) == -ENOENT);
		/* another key (another job's, or a guess) gets nothing */
		uint8_t other[JOB_SHUFFLE_KEY_LEN];
		CHECK(job_shuffle_key_new(other) == 0);
		CHECK(job_shuffle_fetch("127.0.0.1", port, "j1", mids[0], 0, other, sizeof(other),
					fd, 1 << 20, 1000, &len, &recs, err,
					sizeof(err)) == -EACCES);
		CHECK(lseek(fd, 0, SEEK_END) == 0);
		close(fd);
		CHECK(!job_id_ok("a/b") && !job_id_ok("") && job_id_ok("wc_123_m_00001_0"));
	}

	job_shuffle_stop(srv);
	for (size_t i = 0; i < nw; i++)
		free(words[i]);
	free(words);
	free(got);
	free(all);
	free(text[0]);
	free(text[1]);
	snprintf(p, sizeof(p), "rm -rf '%s'", root);
	if (system(p) != 0)
		fprintf(stderr, "cannot remove '%s'\n", root);
	if (failures) {
		fprintf(stderr, "test_job_task: %d failures\n", failures);
		return 1;
	}
	printf("test_job_task: ok\n");
	return 0;
}
