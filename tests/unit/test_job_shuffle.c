/* Unit test of the shuffle's job tokens (jobs/job_shuffle): a token signs
 * exactly one (job, attempt, partition) under one key, and a changed,
 * truncated or missing token fails; the real shuffle server answers a raw
 * request without a token, with a forged one, or for another partition
 * than the one signed with EACCES and no data, serves the signed fetch,
 * and refuses map output that is a link or owned by someone other than its
 * attempt folder's owner. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cdl_dt.h"
#include "cdl_util.h"
#include "job_shuffle.h"
#include "job_sort.h"
#include "jobs.pb-c.h"

static int failures;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond) && failures++ < 20)                                                    \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
	} while (0)

static void write_file(const char *path, const void *data, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, data, n) != (ssize_t)n) {
		perror(path);
		exit(1);
	}
	close(fd);
}

/* Send one raw request (token of toklen bytes, or none) and return the
 * reply's err; *data_bytes is how many bytes followed the reply. */
static int raw_fetch(int port, const char *job, const char *attempt, unsigned part,
		     const uint8_t *token, size_t toklen, size_t *data_bytes)
{
	Caudal__ShuffleRequest req = CAUDAL__SHUFFLE_REQUEST__INIT;
	req.job_id = (char *)job;
	req.attempt_id = (char *)attempt;
	req.partition = part;
	req.token.data = (uint8_t *)token;
	req.token.len = toklen;
	size_t n = caudal__shuffle_request__get_packed_size(&req);
	uint8_t buf[8 + 1024];
	memcpy(buf, JOB_SHUFFLE_MAGIC, 4);
	cdl_put_be32(buf + 4, (uint32_t)n);
	caudal__shuffle_request__pack(&req, buf + 8);
	int s = cdl_dt_connect("127.0.0.1", port, 2000, 2000);
	if (s < 0)
		return -1000;
	int err = -1001;
	if (cdl_write_full(s, buf, 8 + n) == 0 && cdl_dt_read_full(s, buf, 4) == 0) {
		uint32_t rl = cdl_get_be32(buf);
		if (rl > 0 && rl <= 1024 && cdl_dt_read_full(s, buf, rl) == 0) {
			Caudal__ShuffleReply *rep = caudal__shuffle_reply__unpack(NULL, rl, buf);
			if (rep) {
				err = (int)rep->err;
				caudal__shuffle_reply__free_unpacked(rep, NULL);
			}
		}
	}
	*data_bytes = 0;
	ssize_t k;
	while ((k = read(s, buf, sizeof(buf))) > 0)
		*data_bytes += (size_t)k;
	close(s);
	return err;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	uint8_t key[JOB_SHUFFLE_KEY_LEN], other[JOB_SHUFFLE_KEY_LEN];
	uint8_t tok[JOB_SHUFFLE_TOKEN_LEN], tok2[JOB_SHUFFLE_TOKEN_LEN];
	CHECK(job_shuffle_key_new(key) == 0 && job_shuffle_key_new(other) == 0);
	CHECK(memcmp(key, other, sizeof(key)) != 0);

	/* sign and verify */
	job_shuffle_sign(key, sizeof(key), "j1", "j1_m_00000_0", 2, tok);
	CHECK(job_shuffle_verify(key, sizeof(key), "j1", "j1_m_00000_0", 2, tok, sizeof(tok)));
	CHECK(!job_shuffle_verify(other, sizeof(other), "j1", "j1_m_00000_0", 2, tok, sizeof(tok)));
	CHECK(!job_shuffle_verify(key, sizeof(key), "j1", "j1_m_00000_0", 3, tok, sizeof(tok)));
	CHECK(!job_shuffle_verify(key, sizeof(key), "j1", "j1_m_00000_1", 2, tok, sizeof(tok)));
	CHECK(!job_shuffle_verify(key, sizeof(key), "j2", "j1_m_00000_0", 2, tok, sizeof(tok)));
	/* the NUL separators: moving bytes between the ids changes the token */
	job_shuffle_sign(key, sizeof(key), "j1j", "1_m_00000_0", 2, tok2);
	CHECK(memcmp(tok, tok2, sizeof(tok)) != 0);
	CHECK(!job_shuffle_verify(key, sizeof(key), "j1", "j1_m_00000_0", 2, tok, 31));
	CHECK(!job_shuffle_verify(key, sizeof(key), "j1", "j1_m_00000_0", 2, tok, 0));
	CHECK(!job_shuffle_verify(key, 16, "j1", "j1_m_00000_0", 2, tok, sizeof(tok)));
	for (size_t i = 0; i < sizeof(tok); i++) {
		memcpy(tok2, tok, sizeof(tok));
		tok2[i] ^= 1;
		CHECK(!job_shuffle_verify(key, sizeof(key), "j1", "j1_m_00000_0", 2, tok2,
					  sizeof(tok2)));
	}

	/* the real server: a map output of 3 partitions */
	char root[] = "/tmp/test_job_shuffle.XXXXXX";
	if (!mkdtemp(root))
		return 1;
	char jobs[128], p[256];
	snprintf(jobs, sizeof(jobs), "%s/jobs", root);
	mkdir(jobs, 0755);
	snprintf(p, sizeof(p), "%s/j1", jobs);
	mkdir(p, 0755);
	CHECK(job_shuffle_key_save(jobs, "j1", key, sizeof(key)) == 0);
	struct stat st;
	snprintf(p, sizeof(p), "%s/j1/shuffle.key", jobs);
	CHECK(stat(p, &st) == 0 && (st.st_mode & 0777) == 0600);
	snprintf(p, sizeof(p), "%s/j1/j1_m_00000_0", jobs);
	mkdir(p, 0700);
	const char data[] = "secret map output";
	job_index_entry e[3] = {{0, 6, 1, 0}, {6, 5, 1, 0}, {11, 6, 1, 0}};
	snprintf(p, sizeof(p), "%s/j1/j1_m_00000_0/file.out", jobs);
	write_file(p, data, 17);
	snprintf(p, sizeof(p), "%s/j1/j1_m_00000_0/file.index", jobs);
	CHECK(job_index_write(p, e, 3) == 0);

	job_shuffle_server *srv = job_shuffle_start("127.0.0.1", 0, jobs);
	CHECK(srv != NULL);
	if (!srv)
		return 1;
	int port = job_shuffle_port(srv);
	size_t got = 99;
	CHECK(raw_fetch(port, "j1", "j1_m_00000_0", 2, NULL, 0, &got) == EACCES && got == 0);
	memcpy(tok2, tok, sizeof(tok));
	tok2[5] ^= 0x80;
	CHECK(raw_fetch(port, "j1", "j1_m_00000_0", 2, tok2, sizeof(tok2), &got) == EACCES &&
	      got == 0);
	CHECK(raw_fetch(port, "j1", "j1_m_00000_0", 2, tok, 16, &got) == EACCES && got == 0);
	/* a token for partition 2 does not open partition 1 */
	CHECK(raw_fetch(port, "j1", "j1_m_00000_0", 1, tok, sizeof(tok), &got) == EACCES &&
	      got == 0);
	/* a job this tracker has no key for */
	CHECK(raw_fetch(port, "j9", "j9_m_00000_0", 2, tok, sizeof(tok), &got) == ENOENT &&
	      got == 0);
	/* the signed fetch */
	CHECK(raw_fetch(port, "j1", "j1_m_00000_0", 2, tok, sizeof(tok), &got) == 0 && got == 6);
	/* a partition past the index */
	job_shuffle_sign(key, sizeof(key), "j1", "j1_m_00000_0", 7, tok2);
	CHECK(raw_fetch(port, "j1", "j1_m_00000_0", 7, tok2, sizeof(tok2), &got) == EBADMSG &&
	      got == 0);

	/* the map output swapped for a link to a file it must not serve */
	snprintf(p, sizeof(p), "%s/j1/j1_m_00000_0/file.out", jobs);
	char p2[256];
	snprintf(p2, sizeof(p2), "%s/j1/j1_m_00000_0/real.out", jobs);
	CHECK(rename(p, p2) == 0);
	CHECK(symlink("/etc/passwd", p) == 0);
	CHECK(raw_fetch(port, "j1", "j1_m_00000_0", 2, tok, sizeof(tok), &got) == ELOOP &&
	      got == 0);
	unlink(p);
	/* an index claiming more bytes than the file holds */
	CHECK(rename(p2, p) == 0);
	job_index_entry big[3] = {{0, 6, 1, 0}, {6, 5, 1, 0}, {11, UINT64_MAX - 11, 1, 0}};
	snprintf(p, sizeof(p), "%s/j1/j1_m_00000_0/file.index", jobs);
	CHECK(job_index_write(p, big, 3) == 0);
	CHECK(raw_fetch(port, "j1", "j1_m_00000_0", 2, tok, sizeof(tok), &got) == EBADMSG &&
	      got == 0);
	/* owned by someone else than the attempt folder's owner */
	if (geteuid() == 0) {
		CHECK(job_index_write(p, e, 3) == 0);
		snprintf(p, sizeof(p), "%s/j1/j1_m_00000_0/file.out", jobs);
		CHECK(chown(p, 65534, 65534) == 0);
		CHECK(raw_fetch(port, "j1", "j1_m_00000_0", 2, tok, sizeof(tok), &got) == EPERM &&
		      got == 0);
	}

	/* the client's side: the right key fetches, another is refused */
	snprintf(p, sizeof(p), "%s/j1/j1_m_00000_0/file.out", jobs);
	if (geteuid() == 0)
		CHECK(chown(p, 0, 0) == 0);
	snprintf(p, sizeof(p), "%s/j1/j1_m_00000_0/file.index", jobs);
	CHECK(job_index_write(p, e, 3) == 0);
	snprintf(p, sizeof(p), "%s/fetched", root);
	int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	uint64_t len = 0, recs = 0;
	char err[256];
	CHECK(job_shuffle_fetch("127.0.0.1", port, "j1", "j1_m_00000_0", 1, other, sizeof(other),
				fd, 1 << 20, 2000, &len, &recs, err, sizeof(err)) == -EACCES);
	CHECK(lseek(fd, 0, SEEK_END) == 0);
	/* a run longer than the reader's cap (the map's whole output) is
	 * refused before a byte is written */
	CHECK(job_shuffle_fetch("127.0.0.1", port, "j1", "j1_m_00000_0", 1, key, sizeof(key), fd, 4,
				2000, &len, &recs, err, sizeof(err)) == -EFBIG);
	CHECK(lseek(fd, 0, SEEK_END) == 0);
	int rc = job_shuffle_fetch("127.0.0.1", port, "j1", "j1_m_00000_0", 1, key, sizeof(key), fd,
				   1 << 20, 2000, &len, &recs, err, sizeof(err));
	/* the test index has no checksums: the data arrives and fails its
	 * checksum, which shows the server sent it */
	CHECK(rc == -EBADMSG && lseek(fd, 0, SEEK_END) == 5);
	close(fd);

	job_shuffle_stop(srv);
	snprintf(p, sizeof(p), "rm -rf '%s'", root);
	if (system(p) != 0)
		fprintf(stderr, "cannot remove '%s'\n", root);
	if (failures) {
		fprintf(stderr, "test_job_shuffle: %d failures\n", failures);
		return 1;
	}
	printf("test_job_shuffle: ok\n");
	return 0;
}
