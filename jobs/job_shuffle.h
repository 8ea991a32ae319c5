/* job_shuffle: map output served to reducers over plain TCP (the protocol
 * is documented in fs/jobs.proto, "shuffle"). The server runs in the
 * tasktracker: an accept thread and one short-lived thread per connection
 * (at most JOB_SHUFFLE_CONNS at once), each answering one request from the
 * files under WORK/jobs/JOB/ATTEMPT/ with sendfile. The client runs in
 * reduce task children and writes one partition's run to a local fd,
 * checking its length and checksum.
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

/* True if s is 1..JOB_ID_MAX bytes of [A-Za-z0-9._-] and not "." or "..":
 * safe as one local path component. */
bool job_id_ok(const char *s);

typedef struct job_shuffle_server job_shuffle_server;

/* Listen on host:port (port 0 picks one) serving files under
 * jobs_dir/JOB/ATTEMPT/. NULL and a log line on failure. */
job_shuffle_server *job_shuffle_start(const char *host, int port, const char *jobs_dir);
int job_shuffle_port(const job_shuffle_server *s);
/* Stop accepting and wait for the connections being served. */
void job_shuffle_stop(job_shuffle_server *s);

/* Fetch partition part of map attempt attempt_id of job job_id from
 * host:port into fd (appending at its current offset). Refuses runs longer
 * than max_len. Returns 0 with the run's length and record count, or
 * -errno with err saying what failed (-EBADMSG: checksum mismatch,
 * -ENOENT: the tracker does not have that output). */
int job_shuffle_fetch(const char *host, int port, const char *job_id, const char *attempt_id,
		      unsigned part, int fd, uint64_t max_len, int timeout_ms, uint64_t *len,
		      uint64_t *records, char *err, size_t errlen);

#endif
