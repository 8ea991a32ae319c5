/* cdl_progress: see cdl_progress.h. */
#include "cdl_progress.h"

#include <string.h>
#include <unistd.h>

#include "cdl_util.h"

bool cdl_progress_wanted(bool quiet)
{
	return !quiet && isatty(STDOUT_FILENO) && isatty(STDERR_FILENO);
}

void cdl_progress_start(cdl_progress *p, bool on, const char *what, bool bytes, uint64_t total)
{
	memset(p, 0, sizeof(*p));
	p->on = on;
	p->out = stderr;
	p->bytes = bytes;
	p->total = total;
	snprintf(p->what, sizeof(p->what), "%s", what);
	p->start_ns = cdl_now_ns();
}

/* 1536 -> "1.5 KiB"; items as plain numbers. */
static void amount(char *buf, size_t n, double v, bool bytes)
{
	if (!bytes) {
		snprintf(buf, n, "%.0f", v);
		return;
	}
	static const char *const u[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	int i = 0;
	while (v >= 1024 && i < 5) {
		v /= 1024;
		i++;
	}
	snprintf(buf, n, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

static void hms(char *buf, size_t n, double s)
{
	if (s < 0 || s > 99 * 3600.0) {
		snprintf(buf, n, "--:--");
		return;
	}
	unsigned t = (unsigned)(s + 0.5);
	if (t >= 3600)
		snprintf(buf, n, "%u:%02u:%02u", t / 3600, t / 60 % 60, t % 60);
	else
		snprintf(buf, n, "%u:%02u", t / 60, t % 60);
}

void cdl_progress_format(const cdl_progress *p, int64_t now_ns, char *buf, size_t n)
{
	double secs = (double)(now_ns - p->start_ns) / 1e9;
	double rate = secs > 0 ? (double)p->done / secs : 0;
	char done[32], total[32], r[32], left[16], took[16];
	amount(done, sizeof(done), (double)p->done, p->bytes);
	amount(r, sizeof(r), rate, p->bytes);
	hms(took, sizeof(took), secs);
	if (p->total) {
		uint64_t d = p->done > p->total ? p->total : p->done;
		amount(total, sizeof(total), (double)p->total, p->bytes);
		hms(left, sizeof(left), rate > 0 ? (double)(p->total - d) / rate : -1);
		snprintf(buf, n, "%s: %s of %s %3.0f%% %s/s %s left, %s", p->what, done, total,
			 100.0 * (double)d / (double)p->total, r, left, took);
	} else {
		snprintf(buf, n, "%s: %s %s/s %s", p->what, done, r, took);
	}
}

static void draw(cdl_progress *p, int64_t now)
{
	char line[200];
	cdl_progress_format(p, now, line, sizeof(line));
	size_t len = strlen(line);
	/* spaces over what a longer earlier line left */
	int pad = p->last_len > len ? (int)(p->last_len - len) : 0;
	fprintf(p->out, "\r%s%*s", line, pad, "");
	fflush(p->out);
	p->last_len = len;
	p->drawn_ns = now;
}

void cdl_progress_update(cdl_progress *p, uint64_t done, uint64_t total)
{
	if (!p->on)
		return;
	p->done = done;
	if (total)
		p->total = total;
	int64_t now = cdl_now_ns();
	if (now - p->drawn_ns >= 1000000000 / CDL_PROGRESS_HZ)
		draw(p, now);
}

void cdl_progress_end(cdl_progress *p)
{
	if (!p->on)
		return;
	draw(p, cdl_now_ns());
	fputc('\n', p->out);
	fflush(p->out);
	p->on = false;
}
