/*
 * render.c - hakmem-stat's output: the snapshot (text from statfmt.c, the
 * same as HAKMEM_SHOW_STATS), and the watch forms: a redrawn screen on a
 * terminal, one plain line per sample otherwise, or one JSON object per
 * line.  Rates are per second over the interval between two samples.
 */
#include "config.h"
#include "stat.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define TEXT_CAP 32768 /* a full table of classes fits in a third of this */

static char text[TEXT_CAP];

void render_snapshot(const struct hak_statsum *s, bool json)
{
	if (json) {
		json_print(json_summary(s));
		return;
	}
	size_t n = hak__statfmt_text(s, text, sizeof text);
	fwrite(text, 1, n, stdout);
}

static double per_second(uint64_t old, uint64_t cur, double seconds)
{
	/* counters only grow; a smaller reading is a torn sum: no rate */
	return cur > old && seconds > 0 ? (double)(cur - old) / seconds : 0.0;
}

void rates_between(const struct hak_statsum *old, const struct hak_statsum *cur,
		   struct rates *r)
{
	/* with no earlier sample, the averages since the process started */
	static const struct hak_statsum zero;
	uint64_t from_ns = old ? old->now_ns : cur->start_time_ns;
	if (!old)
		old = &zero;
	r->seconds = cur->now_ns > from_ns ? (double)(cur->now_ns - from_ns) / 1e9 : 0.0;
	r->allocs = per_second(old->allocs, cur->allocs, r->seconds);
	r->frees = per_second(old->frees, cur->frees, r->seconds);
	r->remote_frees = per_second(old->remote_frees, cur->remote_frees, r->seconds);
	r->adoptions = per_second(old->adoptions, cur->adoptions, r->seconds);
	r->pages = per_second(old->pages_from_os + old->pages_reused,
			      cur->pages_from_os + cur->pages_reused, r->seconds);
}

void render_age(char *out, size_t cap, uint64_t s)
{
	if (s < 60)
		snprintf(out, cap, "%llus", (unsigned long long)s);
	else if (s < 3600)
		snprintf(out, cap, "%llum%02llus", (unsigned long long)(s / 60),
			 (unsigned long long)(s % 60));
	else if (s < 86400)
		snprintf(out, cap, "%lluh%02llum", (unsigned long long)(s / 3600),
			 (unsigned long long)(s / 60 % 60));
	else
		snprintf(out, cap, "%llud%02lluh", (unsigned long long)(s / 86400),
			 (unsigned long long)(s / 3600 % 24));
}

static void clock_text(char *out, size_t cap, uint64_t ns)
{
	time_t t = (time_t)(ns / 1000000000u);
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(out, cap, "%H:%M:%S", &tm);
}

/* On a terminal: home the cursor, write each line over the old one,
 * clearing what is left of it, and clear below the last line, so the
 * screen does not flicker as a full clear would. */
void render_watch_tty(const struct hak_statsum *s, const struct rates *r, double interval)
{
	char when[16];
	clock_text(when, sizeof when, s->now_ns);
	hak__statfmt_text(s, text, sizeof text);
	fputs("\033[H", stdout);
	printf("%s  every %gs  rates per second: allocs %.0f  frees %.0f  remote frees %.0f"
	       "  adoptions %.0f  pages %.1f\033[K\n",
	       when, interval, r->allocs, r->frees, r->remote_frees, r->adoptions, r->pages);
	for (const char *line = text; *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		fwrite(line, 1, len, stdout);
		fputs("\033[K\n", stdout);
		line += len + (nl != NULL);
	}
	fputs("\033[J", stdout);
}

void render_watch_header(void)
{
	printf("%-8s %8s %7s %14s %12s %12s %10s %9s %9s %12s\n", "time", "pid", "threads",
	       "bytes_in_use", "allocs/s", "frees/s", "remote/s", "adopt/s", "pages/s",
	       "rss");
}

void render_watch_line(const struct hak_statsum *s, const struct rates *r)
{
	char when[16];
	clock_text(when, sizeof when, s->now_ns);
	printf("%-8s %8lld %7llu %14llu %12.0f %12.0f %10.0f %9.1f %9.1f ", when,
	       (long long)s->pid, (unsigned long long)s->threads,
	       (unsigned long long)s->bytes_in_use, r->allocs, r->frees, r->remote_frees,
	       r->adoptions, r->pages);
	if (s->vm_rss >= 0)
		printf("%12lld\n", (long long)s->vm_rss);
	else
		printf("%12s\n", "-");
}

void render_watch_json(const struct hak_statsum *s, const struct rates *r)
{
	json_t *o = json_summary(s);
	json_add_rates(o, r);
	json_print(o);
}
