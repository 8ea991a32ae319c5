/* job_spec: parse and validate job spec files; see job_spec.h. */
#include "job_spec.h"

#include <errno.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cdl_util.h"

enum spec_key { K_INPUT, K_OUTPUT, K_MAP, K_REDUCE, K_COMBINE, K_REDUCES, K_FILES, K_PATTERN, K_N };

static const char *const key_names[K_N] = {
    [K_INPUT] = "input",     [K_OUTPUT] = "output",   [K_MAP] = "map",	   [K_REDUCE] = "reduce",
    [K_COMBINE] = "combine", [K_REDUCES] = "reduces", [K_FILES] = "files", [K_PATTERN] = "pattern",
};

static const struct {
	const char *name;
	enum job_op_kind kind;
	unsigned roles; /* bit (1 << enum job_role) per role it may play */
} builtins[] = {
    {"wordcount", JOB_OP_WORDCOUNT, 1u << JOB_ROLE_MAP},
    {"grep", JOB_OP_GREP, 1u << JOB_ROLE_MAP},
    {"identity", JOB_OP_IDENTITY,
     1u << JOB_ROLE_MAP | 1u << JOB_ROLE_REDUCE | 1u << JOB_ROLE_COMBINE},
    {"sum", JOB_OP_SUM, 1u << JOB_ROLE_REDUCE | 1u << JOB_ROLE_COMBINE},
    {"count", JOB_OP_COUNT, 1u << JOB_ROLE_REDUCE},
};

const char *job_op_name(enum job_op_kind kind)
{
	if (kind == JOB_OP_EXEC)
		return "exec";
	for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++)
		if (builtins[i].kind == kind)
			return builtins[i].name;
	return "none";
}

/* "exec:" followed by a command, or the exact name of a built-in allowed in
 * role. The explanations are written to be shown after the key name. */
int job_op_parse(const char *value, enum job_role role, job_op *op, const char **why)
{
	op->kind = JOB_OP_NONE;
	op->cmd = NULL;
	if (strncmp(value, "exec:", 5) == 0) {
		const char *cmd = value + 5;
		cmd += strspn(cmd, " \t");
		if (*cmd == '\0') {
			*why = "'exec:' needs a command";
			return -EINVAL;
		}
		if (strlen(cmd) > JOB_CMD_MAX) {
			*why = "the command is longer than 65536 bytes";
			return -EINVAL;
		}
		op->kind = JOB_OP_EXEC;
		op->cmd = cmd;
		return 0;
	}
	for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++) {
		if (strcmp(value, builtins[i].name) != 0)
			continue;
		if (!(builtins[i].roles & (1u << role))) {
			static const char *const wrong[] = {
			    [JOB_ROLE_MAP] = "is not a map built-in (maps: wordcount, grep, "
					     "identity, exec:)",
			    [JOB_ROLE_REDUCE] = "is not a reduce built-in (reduces: sum, count, "
						"identity, exec:)",
			    [JOB_ROLE_COMBINE] = "cannot combine (combiners: sum, identity, "
						 "exec:; 'count' would count counts)",
			};
			*why = wrong[role];
			return -EINVAL;
		}
		op->kind = builtins[i].kind;
		return 0;
	}
	*why = "is not a built-in (wordcount, grep, identity, sum, count) or 'exec: command'";
	return -EINVAL;
}

bool job_path_ok(const char *path)
{
	size_t len = strlen(path);
	if (len == 0 || path[0] != '/' || len > CDL_PATH_MAX)
		return false;
	if (len == 1)
		return true;
	const char *p = path + 1;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		if (n == 0)
			return slash == NULL; /* one trailing '/' is fine */
		if (n > CDL_NAME_MAX || (n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		if (!slash)
			return true;
		p = slash + 1;
	}
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (errlen)
		vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Quote a user's value for an error message: at most 60 bytes, shown as
 * given. The value has no control bytes (checked before). */
static const char *shown(const char *v, char *buf, size_t n)
{
	size_t len = strlen(v);
	if (len < n) {
		memcpy(buf, v, len + 1);
	} else {
		memcpy(buf, v, n - 4);
		strcpy(buf + n - 4, "...");
	}
	return buf;
}

/* Split a comma-separated list of paths; blanks around each are trimmed.
 * Appends to *out (grown with xrealloc). */
static int split_paths(const char *v, int lineno, const char *key, char ***out, size_t *n,
		       char *err, size_t errlen)
{
	char sbuf[64];
	const char *p = v;
	for (;;) {
		const char *comma = strchr(p, ',');
		const char *end = comma ? comma : p + strlen(p);
		const char *b = p, *e = end;
		while (b < e && (*b == ' ' || *b == '\t'))
			b++;
		while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (b == e)
			return fail(err, errlen, "line %d: %s: empty path in list", lineno, key);
		if (*n >= JOB_LIST_MAX)
			return fail(err, errlen, "line %d: %s: more than %d paths", lineno, key,
				    JOB_LIST_MAX);
		char *path = xstrndup(b, (size_t)(e - b));
		if (!job_path_ok(path)) {
			fail(err, errlen, "line %d: %s: '%s' is not an absolute path", lineno, key,
			     shown(path, sbuf, sizeof(sbuf)));
			free(path);
			return -EINVAL;
		}
		*out = xrealloc(*out, (*n + 1) * sizeof(char *));
		(*out)[(*n)++] = path;
		if (!comma)
			return 0;
		p = comma + 1;
	}
}

void job_spec_release(job_spec *spec)
{
	for (size_t i = 0; i < spec->ninputs; i++)
		free(spec->inputs[i]);
	free(spec->inputs);
	for (size_t i = 0; i < spec->nfiles; i++)
		free(spec->files[i]);
	free(spec->files);
	free(spec->output);
	free(spec->map);
	free(spec->reduce);
	free(spec->combine);
	free(spec->pattern);
	memset(spec, 0, sizeof(*spec));
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* One pass over the lines records each key's value and line; then the
 * values are checked key by key so that every message names its line. */
int job_spec_parse(const char *buf, size_t len, job_spec *spec, char *err, size_t errlen)
{
	char *val[K_N] = {0};
	int line_of[K_N] = {0};
	char sbuf[64];
	int rc = -EINVAL;
	const char *why;
	job_op op;

	memset(spec, 0, sizeof(*spec));
	spec->reduces = 1;
	if (len > JOB_SPEC_MAX) {
		if (errlen)
			snprintf(err, errlen, "spec is %zu bytes; the limit is %d", len,
				 JOB_SPEC_MAX);
		return -EFBIG;
	}

	int lineno = 0;
	size_t pos = 0;
	while (pos < len) {
		const char *l = buf + pos;
		const char *nl = memchr(l, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - l) : len - pos;
		pos += n + (nl ? 1 : 0);
		lineno++;
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)l[i];
			if ((c < 0x20 && c != '\t' && !(c == '\r' && i == n - 1)) || c == 0x7f) {
				fail(err, errlen,
				     "line %d: binary data (byte 0x%02x at column %zu)", lineno, c,
				     i + 1);
				goto out;
			}
		}
		size_t b = 0, e = n;
		while (b < e && is_blank(l[b]))
			b++;
		while (e > b && is_blank(l[e - 1]))
			e--;
		if (b == e || l[b] == '#')
			continue;
		const char *eq = memchr(l + b, '=', e - b);
		if (!eq) {
			fail(err, errlen, "line %d: no '=' (expected 'key = value')", lineno);
			goto out;
		}
		size_t kb = b, ke = (size_t)(eq - l);
		while (ke > kb && is_blank(l[ke - 1]))
			ke--;
		if (ke == kb) {
			fail(err, errlen, "line %d: no key before '='", lineno);
			goto out;
		}
		int k;
		for (k = 0; k < K_N; k++)
			if (strlen(key_names[k]) == ke - kb &&
			    memcmp(key_names[k], l + kb, ke - kb) == 0)
				break;
		if (k == K_N) {
			char *key = xstrndup(l + kb, ke - kb);
			fail(err, errlen, "line %d: unknown key '%s'", lineno,
			     shown(key, sbuf, sizeof(sbuf)));
			free(key);
			goto out;
		}
		if (line_of[k]) {
			fail(err, errlen, "line %d: key '%s' repeated (first on line %d)", lineno,
			     key_names[k], line_of[k]);
			goto out;
		}
		size_t vb = (size_t)(eq - l) + 1;
		while (vb < e && is_blank(l[vb]))
			vb++;
		if (vb == e) {
			fail(err, errlen, "line %d: key '%s' has no value", lineno, key_names[k]);
			goto out;
		}
		line_of[k] = lineno;
		val[k] = xstrndup(l + vb, e - vb);
	}

	bool any = false;
	for (int k = 0; k < K_N; k++)
		any |= line_of[k] != 0;
	if (!any) {
		fail(err, errlen, "spec is empty: 'input', 'output' and 'map' are required");
		goto out;
	}
	static const int required[] = {K_INPUT, K_OUTPUT, K_MAP};
	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
		if (!line_of[required[i]]) {
			fail(err, errlen, "missing key '%s'", key_names[required[i]]);
			goto out;
		}

	if ((rc = split_paths(val[K_INPUT], line_of[K_INPUT], "input", &spec->inputs,
			      &spec->ninputs, err, errlen)))
		goto out;
	rc = -EINVAL;
	if (!job_path_ok(val[K_OUTPUT]) || strcmp(val[K_OUTPUT], "/") == 0) {
		fail(err, errlen, "line %d: output: '%s' is not an absolute path below '/'",
		     line_of[K_OUTPUT], shown(val[K_OUTPUT], sbuf, sizeof(sbuf)));
		goto out;
	}
	for (size_t i = 0; i < spec->ninputs; i++) {
		const char *in = spec->inputs[i], *o = val[K_OUTPUT];
		size_t il = strlen(in), ol = strlen(o);
		while (il > 1 && in[il - 1] == '/')
			il--;
		while (ol > 1 && o[ol - 1] == '/')
			ol--;
		size_t m = il < ol ? il : ol;
		if (memcmp(in, o, m) == 0 &&
		    (il == ol || (il < ol ? (il == 1 || o[il] == '/') : in[ol] == '/'))) {
			fail(err, errlen, "line %d: output: '%s' overlaps input '%s'",
			     line_of[K_OUTPUT], shown(o, sbuf, sizeof(sbuf)), in);
			goto out;
		}
	}

	if (job_op_parse(val[K_MAP], JOB_ROLE_MAP, &op, &why)) {
		fail(err, errlen, "line %d: map: '%s' %s", line_of[K_MAP],
		     shown(val[K_MAP], sbuf, sizeof(sbuf)), why);
		goto out;
	}
	if (op.kind == JOB_OP_GREP && !line_of[K_PATTERN]) {
		fail(err, errlen, "line %d: map: 'grep' needs a 'pattern' key", line_of[K_MAP]);
		goto out;
	}
	if (op.kind != JOB_OP_GREP && line_of[K_PATTERN]) {
		fail(err, errlen, "line %d: pattern: only used with 'map = grep'",
		     line_of[K_PATTERN]);
		goto out;
	}
	if (line_of[K_PATTERN]) {
		regex_t re;
		int rr = regcomp(&re, val[K_PATTERN], REG_EXTENDED | REG_NOSUB);
		if (rr) {
			char msg[128];
			regerror(rr, &re, msg, sizeof(msg));
			fail(err, errlen, "line %d: pattern: '%s': %s", line_of[K_PATTERN],
			     shown(val[K_PATTERN], sbuf, sizeof(sbuf)), msg);
			goto out;
		}
		regfree(&re);
	}
	if (line_of[K_REDUCE] && job_op_parse(val[K_REDUCE], JOB_ROLE_REDUCE, &op, &why)) {
		fail(err, errlen, "line %d: reduce: '%s' %s", line_of[K_REDUCE],
		     shown(val[K_REDUCE], sbuf, sizeof(sbuf)), why);
		goto out;
	}
	if (line_of[K_COMBINE] && job_op_parse(val[K_COMBINE], JOB_ROLE_COMBINE, &op, &why)) {
		fail(err, errlen, "line %d: combine: '%s' %s", line_of[K_COMBINE],
		     shown(val[K_COMBINE], sbuf, sizeof(sbuf)), why);
		goto out;
	}
	if (line_of[K_REDUCES]) {
		const char *v = val[K_REDUCES];
		char *end;
		errno = 0;
		long r = strtol(v, &end, 10);
		if (errno || end == v || *end || v[0] == '+' || v[0] == '-' || r < 0 ||
		    r > JOB_REDUCES_MAX) {
			fail(err, errlen, "line %d: reduces: '%s' is not an integer in 0..%d",
			     line_of[K_REDUCES], shown(v, sbuf, sizeof(sbuf)), JOB_REDUCES_MAX);
			goto out;
		}
		spec->reduces = (int)r;
	}
	if (line_of[K_FILES]) {
		if ((rc = split_paths(val[K_FILES], line_of[K_FILES], "files", &spec->files,
				      &spec->nfiles, err, errlen)))
			goto out;
		rc = -EINVAL;
		for (size_t i = 0; i < spec->nfiles; i++) {
			const char *bi = strrchr(spec->files[i], '/') + 1;
			if (*bi == '\0') {
				fail(err, errlen, "line %d: files: '%s' names a directory",
				     line_of[K_FILES], spec->files[i]);
				goto out;
			}
			for (size_t j = 0; j < i; j++)
				if (strcmp(bi, strrchr(spec->files[j], '/') + 1) == 0) {
					fail(err, errlen,
					     "line %d: files: two files named '%s' would collide "
					     "in the working directory",
					     line_of[K_FILES], bi);
					goto out;
				}
		}
	}

	spec->output = val[K_OUTPUT];
	spec->map = val[K_MAP];
	spec->reduce = val[K_REDUCE] ? val[K_REDUCE] : xstrdup("identity");
	spec->combine = val[K_COMBINE];
	spec->pattern = val[K_PATTERN];
	val[K_OUTPUT] = val[K_MAP] = val[K_REDUCE] = val[K_COMBINE] = val[K_PATTERN] = NULL;
	rc = 0;
out:
	for (int k = 0; k < K_N; k++)
		free(val[k]);
	return rc;
}
