/* cdl_log: see cdl_log.h. Lines are written with one write(2) so they do
 * not interleave between threads. */
#include "cdl_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

int cdl_log_level_cur = CDL_LOG_INFO;
static char log_role[32] = "caudal";

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void cdl_log_init(const char *role, int level)
{
	snprintf(log_role, sizeof(log_role), "%s", role);
	if (level >= CDL_LOG_ERROR && level <= CDL_LOG_DEBUG)
		cdl_log_level_cur = level;
}

int cdl_log_level_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (!strcasecmp(s, level_names[i]))
			return i;
	return -1;
}

void cdl_log_write(int level, const char *fmt, ...)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, ts.tv_nsec / 1000000, log_role,
			 level_names[level < 0	 ? 0
				     : level > 3 ? 3
						 : level]);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	line[len++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
}
