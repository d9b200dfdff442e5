/*
 * watch.c - sample a process's segment every interval until it exits, the
 * user interrupts (SIGINT/SIGTERM), or --count samples are taken.  Each
 * sample re-opens the segment, so the end of the process (segment gone,
 * pid gone, or pid reused by another process) is noticed at the next tick.
 */
#include "config.h"
#include "stat.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

static void catch_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: the sleep must end at once */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

/* Sleep seconds unless a signal arrives first. */
static void pause_for(double seconds)
{
	struct timespec ts = {.tv_sec = (time_t)seconds};
	ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
	while (!stop_signal && nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static struct hak_seg_header snap; /* ~220 KiB: static, not on the stack */

int watch_run(const struct stat_opts *o)
{
	struct hak_statsum sums[2];
	struct hak_statsum *prev = NULL, *cur = &sums[0];
	uint64_t start_time = 0;
	bool tty = !o->json && isatty(STDOUT_FILENO);
	char msg[512];

	catch_signals();
	for (long n = 0;; n++) {
		enum seg_status rc = seg_read(o->pid, &snap, msg, sizeof msg);
		bool gone = rc == SEG_NO_PROCESS || rc == SEG_NO_SEGMENT || rc == SEG_STALE;
		if (rc == SEG_OK && n > 0 && snap.start_time_ns != start_time)
			gone = true; /* the pid now belongs to another hakmem process */
		if (gone && n > 0) {
			fflush(stdout);
			errmsg("process %ld exited", (long)o->pid);
			return 0;
		}
		if (rc != SEG_OK) {
			fflush(stdout);
			errmsg("%s", msg);
			return EXIT_TROUBLE;
		}
		if (n == 0) {
			start_time = snap.start_time_ns;
			if (!tty && !o->json)
				render_watch_header();
		}
		seg_summary(&snap, cur);
		struct rates r;
		rates_between(prev, cur, &r);
		if (o->json)
			render_watch_json(cur, &r);
		else if (tty)
			render_watch_tty(cur, &r, o->interval);
		else
			render_watch_line(cur, &r);
		if (fflush(stdout) != 0 || ferror(stdout)) {
			errmsg("cannot write output: %s", strerror(errno));
			return EXIT_TROUBLE;
		}
		if (o->count && n + 1 >= o->count)
			return 0;
		prev = cur;
		cur = cur == &sums[0] ? &sums[1] : &sums[0];
		pause_for(o->interval);
		if (stop_signal) {
			errmsg("interrupted (%s)", stop_signal == SIGINT ? "SIGINT" : "SIGTERM");
			return 0;
		}
	}
}
