/* job_shuffle: map output served to reducers over plain TCP (the protocol
 * is documented in fs/jobs.proto, "shuffle"). The server runs in the
 * tasktracker: an accept thread and one short-lived thread per connection
 * (at most JOB_SHUFFLE_CONNS at once), each answering one request from the
 * files under WORK/jobs/JOB/ATTEMPT/ with sendfile. The client runs in
 * reduce task children and writes one partition's run to a local fd,
 * checking its length and checksum.
 *
 * Every fetch is signed, as Hadoop's job token signs each shuffle request:
 * the jobtracker makes a random key per job and hands it to trackers with
 * each task; the tracker keeps it in WORK/jobs/JOB/shuffle.key (0600, its
 * own) and the server refuses a request whose token is not the
 * HMAC-SHA256 of (job id, attempt id, partition) under that key. The map
 * output files are written by the job's user: the server opens them
 * without following links and serves only regular files owned by the
 * owner of their attempt folder.
 *
 * Also owns the rule for ids used as local directory names. */
#ifndef JOB_SHUFFLE_H
#define JOB_SHUFFLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JOB_SHUFFLE_MAGIC      "CSH1"
#define JOB_SHUFFLE_MAX_HEADER 4096
#define JOB_SHUFFLE_CONNS      64
#define JOB_ID_MAX	       128
#define JOB_SHUFFLE_KEY_LEN    32 /* bytes of a job's shuffle key */
#define JOB_SHUFFLE_TOKEN_LEN  32 /* bytes of an HMAC-SHA256 token */

/* True if s is 1..JOB_ID_MAX bytes of [A-Za-z0-9._-] and not "." or "..":
 * safe as one local path component. */
bool job_id_ok(const char *s);

/* A new random job key (OpenSSL RAND_bytes). 0 or -EIO. */
int job_shuffle_key_new(uint8_t key[JOB_SHUFFLE_KEY_LEN]);
/* The token of one fetch: HMAC-SHA256 under key of job_id, a NUL,
 * attempt_id, a NUL and part as a big-endian u32. */
void job_shuffle_sign(const uint8_t *key, size_t keylen, const char *job_id, const char *attempt_id,
		      uint32_t part, uint8_t out[JOB_SHUFFLE_TOKEN_LEN]);
/* Whether token (toklen bytes) is the token of that fetch under key;
 * compared in constant time. A key or token of the wrong length fails. */
bool job_shuffle_verify(const uint8_t *key, size_t keylen, const char *job_id,
			const char *attempt_id, uint32_t part, const uint8_t *token, size_t toklen);
/* Keep job_id's key where the server finds it: jobs_dir/JOB/shuffle.key,
 * 0600, written to a temp name and renamed (the folder must exist).
 * 0 or -errno. */
int job_shuffle_key_save(const char *jobs_dir, const char *job_id, const uint8_t *key,
			 size_t keylen);

typedef struct job_shuffle_server job_shuffle_server;

/* Listen on host:port (port 0 picks one) serving files under
 * jobs_dir/JOB/ATTEMPT/. NULL and a log line on failure. */
job_shuffle_server *job_shuffle_start(const char *host, int port, const char *jobs_dir);
int job_shuffle_port(const job_shuffle_server *s);
/* Stop accepting and wait for the connections being served. */
void job_shuffle_stop(job_shuffle_server *s);
/* The server's work on one connection: read one request from fd and
 * answer it from the map output under jobs_dir (for the server's threads,
 * tests and fuzzing). */
void job_shuffle_serve_fd(const char *jobs_dir, int fd);

/* Fetch partition part of map attempt attempt_id of job job_id from
 * host:port into fd (appending at its current offset), signed with the
 * job's key. Refuses runs longer than max_len. Returns 0 with the run's
 * length and record count, or -errno with err saying what failed
 * (-EBADMSG: checksum mismatch, -ENOENT: the tracker does not have that
 * output, -EACCES: it refused the token). */
int job_shuffle_fetch(const char *host, int port, const char *job_id, const char *attempt_id,
		      unsigned part, const uint8_t *key, size_t keylen, int fd, uint64_t max_len,
		      int timeout_ms, uint64_t *len, uint64_t *records, char *err, size_t errlen);
/* The same exchange on a connected socket s; peer names the server in
 * messages. Every length in the reply is bounded before use. */
int job_shuffle_fetch_fd(int s, const char *peer, const char *job_id, const char *attempt_id,
			 unsigned part, const uint8_t *key, size_t keylen, int fd, uint64_t max_len,
			 uint64_t *len, uint64_t *records, char *err, size_t errlen);

#endif
