/* job_spec: the job spec file (DESIGN.md, "Jobs: the control directory").
 *
 * Owns parsing and validation of the text a user writes into /jobs/NAME.job:
 * `key = value` lines, `#` comments, values verbatim to the end of the line
 * (blanks around them trimmed), case-sensitive keys. An unknown key, a
 * repeated key, a line without '=', binary bytes or a bad value is an error
 * whose message names the line. Checks that need the cluster (input exists,
 * output does not) are the jobtracker's; everything decidable from the text
 * alone is here. Also owns the names of the built-in map and reduce
 * operations, shared by the jobtracker (validation) and the task engine.
 *
 * Pure functions over caller-owned memory; any thread. */
#ifndef JOB_SPEC_H
#define JOB_SPEC_H

#include <stdbool.h>
#include <stddef.h>

/* Largest spec accepted, bytes. A spec is a handful of lines; anything
 * bigger is a mistake (or an attack) and is refused before parsing. */
#define JOB_SPEC_MAX (64 * 1024)
/* Most reduce partitions a job may ask for. */
#define JOB_REDUCES_MAX 10000
/* Most comma-separated inputs and cache files. */
#define JOB_LIST_MAX 1024
/* Longest exec: command, bytes. */
#define JOB_CMD_MAX 65536

enum job_role { JOB_ROLE_MAP, JOB_ROLE_REDUCE, JOB_ROLE_COMBINE };

enum job_op_kind {
	JOB_OP_NONE = 0,
	JOB_OP_EXEC,	  /* "exec: command": a streaming command run by /bin/sh -c */
	JOB_OP_WORDCOUNT, /* map: (word, 1) per blank-separated word */
	JOB_OP_GREP,	  /* map: (line, "") per line matching `pattern` */
	JOB_OP_IDENTITY, /* map: line split at its first tab; reduce/combine: records as they are */
	JOB_OP_SUM,	 /* reduce/combine: (key, sum of integer values) */
	JOB_OP_COUNT,	 /* reduce: (key, number of values) */
};

/* A map, reduce or combine operation; cmd points into the parsed string
 * (the command after "exec:" with leading blanks skipped), NULL for built-ins. */
typedef struct job_op {
	enum job_op_kind kind;
	const char *cmd;
} job_op;

/* Parse value as an operation usable in role. 0, or -EINVAL with *why
 * pointing at a static explanation. */
int job_op_parse(const char *value, enum job_role role, job_op *op, const char **why);
const char *job_op_name(enum job_op_kind kind);

/* A parsed spec. Every string is owned by the spec. */
typedef struct job_spec {
	char **inputs; /* absolute Caudal paths, at least one */
	size_t ninputs;
	char *output;  /* absolute Caudal path */
	char *map;     /* as written: built-in name or "exec: ..." */
	char *reduce;  /* as written; "identity" when not given */
	char *combine; /* as written; NULL when not given */
	char *pattern; /* map = grep: POSIX extended regular expression */
	int reduces;   /* 0..JOB_REDUCES_MAX, default 1 */
	char **files;  /* distributed cache: absolute Caudal paths */
	size_t nfiles;
} job_spec;

/* Parse and validate len bytes of spec text into *spec (which the caller
 * releases with job_spec_release, also after an error). Returns 0, or
 * -EINVAL with a one-line message in err ("line 3: unknown key 'inptu'"),
 * or -EFBIG when len exceeds JOB_SPEC_MAX. */
int job_spec_parse(const char *buf, size_t len, job_spec *spec, char *err, size_t errlen);
void job_spec_release(job_spec *spec);

/* True if path is absolute with no empty, "." or ".." component and fits
 * CDL_PATH_MAX; used on every path a spec names. */
bool job_path_ok(const char *path);

#endif
