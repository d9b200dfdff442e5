/*
 * main.c - hakmem-stat's command line (popt): what to do, and the checks
 * that turn every usage mistake into one line on stderr and exit 2.
 */
#include "config.h"
#include "stat.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <popt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIN_INTERVAL 0.1
#define MAX_INTERVAL 86400.0
#define MAX_COUNT 1000000000L
#define DEFAULT_INTERVAL 1.0
#define MAX_PRUNE_PIDS 1024

/* "hakmem-stat: " and the message on stderr, then tail. */
static void vmessage(const char *fmt, va_list ap, const char *tail)
{
	fputs(PROG ": ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs(tail, stderr);
}

void errmsg(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmessage(fmt, ap, "\n");
	va_end(ap);
}

static void usage_error(poptContext pc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

static void usage_error(poptContext pc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmessage(fmt, ap, " (try --help)\n");
	va_end(ap);
	poptFreeContext(pc);
	exit(EXIT_USAGE);
}

pid_t parse_pid(const char *s)
{
	long v = 0;
	if (!*s || strlen(s) > 7)
		return -1;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (*p - '0');
	}
	return v >= 1 && v <= PID_LIMIT ? (pid_t)v : -1;
}

static bool parse_seconds(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < MIN_INTERVAL || v > MAX_INTERVAL)
		return false;
	*out = v;
	return true;
}

static bool parse_count(const char *s, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || *s == '+' || v < 1 || v > MAX_COUNT)
		return false;
	*out = v;
	return true;
}

/* A byte count for --min-bytes: digits, optionally K, M or G (KiB, MiB,
 * GiB), at most 2^50. */
static bool parse_bytes(const char *s, uint64_t *out)
{
	char *end;
	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	unsigned shift = 0;
	if (*end == 'K' || *end == 'k')
		shift = 10;
	else if (*end == 'M' || *end == 'm')
		shift = 20;
	else if (*end == 'G' || *end == 'g')
		shift = 30;
	if (shift)
		end++;
	if (errno || *end || v > (1ull << 50) >> shift)
		return false;
	*out = (uint64_t)v << shift;
	return true;
}

#define DEFAULT_TOP 10

enum { OPT_WATCH = 1, OPT_COUNT, OPT_JSON, OPT_LIST, OPT_PRUNE, OPT_VERSION, OPT_HEAP,
       OPT_FOLDED, OPT_TOP, OPT_MIN_BYTES };

int main(int argc, const char **argv)
{
	static struct stat_opts o = {.interval = DEFAULT_INTERVAL};
	static pid_t prune_pids[MAX_PRUNE_PIDS];
	char *watch_arg = NULL, *count_arg = NULL, *top_arg = NULL, *min_arg = NULL;
	bool top_given = false, min_given = false;
	struct poptOption table[] = {
		{"watch", 'w', POPT_ARG_STRING, &watch_arg, OPT_WATCH,
		 "refresh every SECONDS until the process exits or Ctrl-C", "SECONDS"},
		{"count", 'c', POPT_ARG_STRING, &count_arg, OPT_COUNT,
		 "stop after N samples (implies --watch 1)", "N"},
		{"json", 'j', POPT_ARG_NONE, NULL, OPT_JSON,
		 "print JSON (one object per line when watching)", NULL},
		{"list", 'l', POPT_ARG_NONE, NULL, OPT_LIST,
		 "list the processes with a live stats segment", NULL},
		{"prune", 0, POPT_ARG_NONE, NULL, OPT_PRUNE,
		 "remove stats segments of processes that no longer exist (all of ours, "
		 "or only those of the PIDs given)",
		 NULL},
		{"heap", 'H', POPT_ARG_NONE, NULL, OPT_HEAP,
		 "the heap profile: the call stacks holding the most memory (estimated "
		 "from samples), with --watch which of them grow",
		 NULL},
		{"folded", 0, POPT_ARG_NONE, NULL, OPT_FOLDED,
		 "with --heap: one line per stack, frames joined by ';', then its live bytes "
		 "(for flame-graph tools)",
		 NULL},
		{"top", 'n', POPT_ARG_STRING, &top_arg, OPT_TOP,
		 "with --heap: show the N stacks with most live bytes (default 10; with "
		 "--folded, all)",
		 "N"},
		{"min-bytes", 0, POPT_ARG_STRING, &min_arg, OPT_MIN_BYTES,
		 "with --heap: leave out stacks with fewer estimated live bytes (K, M, G "
		 "suffixes)",
		 "BYTES"},
		{"version", 'V', POPT_ARG_NONE, NULL, OPT_VERSION, "print the version", NULL},
		POPT_AUTOHELP POPT_TABLEEND};
	poptContext pc = poptGetContext(PROG, argc, argv, table, 0);
	poptSetOtherOptionHelp(pc, "[OPTION...] PID | --list | --prune [PID...]");

	int rc;
	while ((rc = poptGetNextOpt(pc)) > 0) {
		switch (rc) {
		case OPT_WATCH:
			if (!parse_seconds(watch_arg, &o.interval))
				usage_error(pc, "bad interval '%s' (seconds, %g to %g)", watch_arg,
					    MIN_INTERVAL, MAX_INTERVAL);
			o.watch = true;
			break;
		case OPT_COUNT:
			if (!parse_count(count_arg, &o.count))
				usage_error(pc, "bad count '%s' (a number of samples, 1 or more)",
					    count_arg);
			o.watch = true;
			break;
		case OPT_JSON:
			o.json = true;
			break;
		case OPT_LIST:
			o.list = true;
			break;
		case OPT_PRUNE:
			o.prune = true;
			break;
		case OPT_HEAP:
			o.heap = true;
			break;
		case OPT_FOLDED:
			o.folded = true;
			break;
		case OPT_TOP:
			if (!parse_count(top_arg, &o.top))
				usage_error(pc, "bad --top '%s' (a number of stacks, 1 or more)",
					    top_arg);
			top_given = true;
			break;
		case OPT_MIN_BYTES:
			if (!parse_bytes(min_arg, &o.min_bytes))
				usage_error(pc, "bad --min-bytes '%s' (bytes, with K, M or G "
					    "for KiB, MiB, GiB)",
					    min_arg);
			min_given = true;
			break;
		case OPT_VERSION:
			printf("hakmem-stat (hakmem) %s, reads stats segment layout %d\n",
			       PACKAGE_VERSION, HAK_SEG_LAYOUT);
			poptFreeContext(pc);
			return 0;
		}
	}
	if (rc < -1)
		usage_error(pc, "%s: %s", poptBadOption(pc, POPT_BADOPTION_NOALIAS),
			    poptStrerror(rc));
	free(watch_arg); /* parsed: popt's copies are no longer needed */
	free(count_arg);
	free(top_arg);
	free(min_arg);

	const char *arg;
	size_t nargs = 0;
	const char *first = NULL;
	while ((arg = poptGetArg(pc))) {
		pid_t pid = parse_pid(arg);
		if (pid < 0)
			usage_error(pc, "bad pid '%s' (a process id, 1 to %d)", arg, PID_LIMIT);
		if (!first)
			first = arg;
		if (nargs < MAX_PRUNE_PIDS)
			prune_pids[nargs] = pid;
		nargs++;
		o.pid = pid;
	}

	if (!o.heap && (o.folded || top_given || min_given))
		usage_error(pc, "%s needs --heap",
			    o.folded ? "--folded" : top_given ? "--top" : "--min-bytes");
	if (o.heap && (o.list || o.prune))
		usage_error(pc, "--heap shows one process; it cannot be combined with %s",
			    o.list ? "--list" : "--prune");
	if (o.folded && o.json)
		usage_error(pc, "--folded and --json cannot be combined");
	if (!top_given)
		o.top = o.folded ? 0 : DEFAULT_TOP;
	if (o.list && o.prune)
		usage_error(pc, "--list and --prune cannot be combined");
	if ((o.list || o.prune) && o.watch)
		usage_error(pc, "--watch shows one process; it cannot be combined with %s",
			    o.list ? "--list" : "--prune");
	if (o.prune && o.json)
		usage_error(pc, "--prune has no JSON output");
	if (o.list && nargs)
		usage_error(pc, "--list takes no PID (got '%s')", first);
	if (o.prune) {
		if (nargs > MAX_PRUNE_PIDS)
			usage_error(pc, "too many PIDs for --prune (at most %d)", MAX_PRUNE_PIDS);
		poptFreeContext(pc);
		return prune_run(prune_pids, nargs);
	}
	if (o.list) {
		poptFreeContext(pc);
		return list_run(o.json);
	}
	if (nargs == 0)
		usage_error(pc, "no PID given");
	if (nargs > 1)
		usage_error(pc, "one PID at a time (got '%s' and more)", first);
	poptFreeContext(pc);

	if (o.heap)
		return heap_run(&o);
	if (o.watch)
		return watch_run(&o);

	static struct hak_seg_header snap;
	char msg[512];
	if (seg_read(o.pid, &snap, msg, sizeof msg) != SEG_OK) {
		errmsg("%s", msg);
		return EXIT_TROUBLE;
	}
	struct hak_statsum s;
	seg_summary(&snap, &s);
	render_snapshot(&s, o.json);
	if (fflush(stdout) != 0) {
		errmsg("cannot write output: %s", strerror(errno));
		return EXIT_TROUBLE;
	}
	return 0;
}
