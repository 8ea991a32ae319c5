/* job_status: see job_status.h. */
#include "job_status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cdl_util.h"

static const char *const names[] = {
    [JOB_PREP] = "PREP",	   [JOB_QUEUED] = "QUEUED", [JOB_RUNNING] = "RUNNING",
    [JOB_SUCCEEDED] = "SUCCEEDED", [JOB_FAILED] = "FAILED", [JOB_KILLED] = "KILLED",
};

const char *job_state_name(enum job_state s)
{
	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

int job_state_parse(const char *s)
{
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(s, names[i]))
			return (int)i;
	return -1;
}

bool job_state_final(enum job_state s)
{
	return s == JOB_SUCCEEDED || s == JOB_FAILED || s == JOB_KILLED;
}

char *job_status_field(const char *text, size_t len, const char *key)
{
	size_t kl = strlen(key);
	size_t pos = 0;
	while (pos < len) {
		const char *l = text + pos;
		const char *nl = memchr(l, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - l) : len - pos;
		pos += n + 1;
		if (n >= kl + 2 && !memcmp(l, key, kl) && l[kl] == ':' && l[kl + 1] == ' ')
			return xstrndup(l + kl + 2, n - kl - 2);
	}
	return NULL;
}

void job_fmt_time(int64_t wall_ns, char *buf, size_t n)
{
	if (wall_ns <= 0) {
		snprintf(buf, n, "-");
		return;
	}
	time_t s = (time_t)(wall_ns / 1000000000);
	struct tm tm;
	gmtime_r(&s, &tm);
	snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (int)(wall_ns % 1000000000 / 1000000));
}

static bool is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

bool job_name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > 251)
		return false;
	for (size_t i = 0; i < n; i++)
		if (is_ctl((unsigned char)name[i]))
			return false;
	return true;
}

/* Append the escape of byte c to out (room for 4 bytes). */
static size_t esc1(unsigned char c, char *out)
{
	if (c == '\n')
		return (size_t)sprintf(out, "\\n");
	if (c == '\r')
		return (size_t)sprintf(out, "\\r");
	if (c == '\t')
		return (size_t)sprintf(out, "\\t");
	return (size_t)sprintf(out, "\\x%02x", c);
}

char *job_escape(const char *s, size_t n)
{
	char *out = xmalloc(n * 4 + 1);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (is_ctl(c))
			k += esc1(c, out + k);
		else
			out[k++] = (char)c;
	}
	out[k] = '\0';
	return out;
}

void job_write_escaped(FILE *f, const char *text, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];
		if (c == '\n' || !is_ctl(c)) {
			putc(c, f);
		} else {
			char e[8];
			size_t n = esc1(c, e); /* fills e before fwrite reads it */
			fwrite(e, 1, n, f);
		}
	}
}

/* [#####.....]: done of total; nothing to do counts as done only once the
 * job succeeded. */
static void bar(char *out, size_t n, long done, long total, bool ok)
{
	const int w = 10;
	int k = total > 0 ? (int)(done * w / total) : ok ? w : 0;
	if (n < (size_t)w + 3)
		return;
	out[0] = '[';
	for (int i = 0; i < w; i++)
		out[1 + i] = i < k ? '#' : '.';
	out[w + 1] = ']';
	out[w + 2] = '\0';
}

void job_status_summary(const char *text, size_t len, char *out, size_t n)
{
	const char *keys[] = {"job",	 "state",	 "maps", "maps_done",
			      "reduces", "reduces_done", "error"};
	char *v[7];
	for (int i = 0; i < 7; i++)
		v[i] = job_status_field(text, len, keys[i]);
	long m = v[2] ? atol(v[2]) : 0, md = v[3] ? atol(v[3]) : 0;
	long r = v[4] ? atol(v[4]) : 0, rd = v[5] ? atol(v[5]) : 0;
	char b1[16] = "", b2[16] = "";
	bool ok = v[1] && !strcmp(v[1], "SUCCEEDED");
	bar(b1, sizeof(b1), md, m, ok);
	bar(b2, sizeof(b2), rd, r, ok);
	bool err = v[6] && strcmp(v[6], "-") != 0;
	snprintf(out, n, "%-16s %-9s maps %ld/%ld %s  reduces %ld/%ld %s%s%s", v[0] ? v[0] : "?",
		 v[1] ? v[1] : "?", md, m, b1, rd, r, b2, err ? "  error: " : "", err ? v[6] : "");
	/* one line, whatever the file held */
	char *e = job_escape(out, strlen(out));
	snprintf(out, n, "%s", e);
	free(e);
	for (int i = 0; i < 7; i++)
		free(v[i]);
}
