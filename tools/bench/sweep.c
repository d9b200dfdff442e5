/*
 * sweep.c - the sweep command: the published Larson under hakmem for every
 * combination of drain strategy, drain period, thread count and any other
 * HAKMEM_* tunable, each point in a fresh child process with its settings
 * in the environment.  Prints a table; writes CSV, JSON and a plot on demand.
 *
 * With no options it repeats the seed report's experiment: owner,
 * roundrobin at periods 2, 4 and 8, hybrid and adopt; larson's defaults
 * (2-32 KiB blocks, 1000 per thread, 100 rounds, 4 threads), 2 s per point.
 */
#include "bench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SWEEP_DEF_STRATEGIES "owner,roundrobin@2,roundrobin@4,roundrobin@8,hybrid,adopt"
#define SWEEP_MAX_POINTS 10000
#define PERIOD_MAX 1000000 /* the library's range of HAKMEM_DRAIN_PERIOD */
#define BAR_WIDTH 30

static const char *const strategies_known[] = { "owner", "roundrobin", "hybrid", "adopt" };

static struct {
	char *strategies, *periods, *threads, *allocator, *csv, *json, *plot;
	const char **set; /* --set, repeatable (POPT_ARG_ARGV) */
} so;

static const struct poptOption sweep_table[] = {
	{ "strategies", 'S', POPT_ARG_STRING, &so.strategies, 0,
	  "drain strategies: owner, roundrobin, hybrid, adopt, each optionally @PERIOD "
	  "(default " SWEEP_DEF_STRATEGIES ")",
	  "LIST" },
	{ "periods", 'p', POPT_ARG_STRING, &so.periods, 0,
	  "HAKMEM_DRAIN_PERIOD values for roundrobin and hybrid given without @PERIOD", "LIST" },
	{ "threads", 't', POPT_ARG_STRING, &so.threads, 0, "thread counts (default 4)", "LIST" },
	{ "set", 0, POPT_ARG_ARGV, &so.set, 0,
	  "also sweep a tunable (repeatable; NAME=v1,v2 may also be given as an argument)",
	  "HAKMEM_NAME=v1,v2,..." },
	{ NULL, 0, POPT_ARG_INCLUDE_TABLE, (void *)opt_workload_table, 0, "Workload:", NULL },
	{ "allocator", 'a', POPT_ARG_STRING, &so.allocator, 0,
	  "library to sweep (default hakmem; a path is accepted)", "A" },
	{ "csv", 0, POPT_ARG_STRING, &so.csv, 0, "write the points as CSV", "FILE" },
	{ "json", 0, POPT_ARG_STRING, &so.json, 0, "write the points as a JSON array", "FILE" },
	{ "plot", 0, POPT_ARG_STRING, &so.plot, 0,
	  "plot throughput and page reuse against period with gnuplot", "FILE.svg|FILE.png" },
	POPT_AUTOHELP
	POPT_TABLEEND
};

struct sweep {
	struct wl_cfg cfg;
	double timeout;
	struct allocator alloc;
	char **strat;      /* tokens as given */
	size_t nstrat;
	long *periods;
	size_t nperiods;
	unsigned *threads;
	size_t nthreads;
	struct sweep_tunable tun[SWEEP_MAX_TUNABLES];
	size_t ntun;
	struct sweep_point *pts;
	size_t npts;
	char (*names)[16]; /* strategy names split from the tokens, per point */
};

/* Parsing ------------------------------------------------------------------ */

static bool periodic(const char *s)
{
	return strcmp(s, "roundrobin") == 0 || strcmp(s, "hybrid") == 0;
}

static int check_strategy(const char *tok, char *name, long *period)
{
	const char *at = strchr(tok, '@');
	size_t len = at ? (size_t)(at - tok) : strlen(tok);
	*period = -1;
	bool known = false;
	for (size_t i = 0; i < sizeof strategies_known / sizeof strategies_known[0]; i++)
		known |= strlen(strategies_known[i]) == len &&
			 strncmp(tok, strategies_known[i], len) == 0;
	if (!known) {
		opt_error("--strategies: unknown strategy '%.*s' (owner, roundrobin, hybrid or adopt)",
			  (int)len, tok);
		return -1;
	}
	snprintf(name, 16, "%.*s", (int)len, tok);
	if (at) {
		uint64_t v;
		if (!periodic(name)) {
			opt_error("--strategies: %s has no drain period ('%s')", name, tok);
			return -1;
		}
		if (opt_parse_u64("--strategies", at + 1, 1, PERIOD_MAX, &v))
			return -1;
		*period = (long)v;
	}
	return 0;
}

static int parse_u64_list(const char *opt, const char *s, uint64_t lo, uint64_t hi,
			  uint64_t **out, size_t *n)
{
	char **v = opt_split_list(s, n);
	if (!v || *n == 0) {
		opt_error("%s: empty list", opt);
		opt_free_list(v, v ? *n : 0);
		return -1;
	}
	*out = calloc(*n, sizeof **out);
	int rc = *out ? 0 : -1;
	for (size_t i = 0; rc == 0 && i < *n; i++)
		rc = opt_parse_u64(opt, v[i], lo, hi, &(*out)[i]);
	opt_free_list(v, *n);
	return rc;
}

static int add_tunable(struct sweep *sw, const char *arg)
{
	const char *eq = strchr(arg, '=');
	if (strncmp(arg, "HAKMEM_", 7) != 0 || !eq || eq == arg + 7) {
		opt_error("sweep: '%s' is not HAKMEM_NAME=v1,v2,...", arg);
		return -1;
	}
	size_t len = (size_t)(eq - arg);
	if ((len == 12 && strncmp(arg, "HAKMEM_DRAIN", 12) == 0) ||
	    (len == 19 && strncmp(arg, "HAKMEM_DRAIN_PERIOD", 19) == 0)) {
		opt_error("sweep: give %.*s with --strategies or --periods", (int)len, arg);
		return -1;
	}
	for (size_t i = 0; i < sw->ntun; i++)
		if (strlen(sw->tun[i].name) == len && strncmp(sw->tun[i].name, arg, len) == 0) {
			opt_error("sweep: %.*s is given twice", (int)len, arg);
			return -1;
		}
	if (sw->ntun == SWEEP_MAX_TUNABLES) {
		opt_error("sweep: at most %d tunables can be swept", SWEEP_MAX_TUNABLES);
		return -1;
	}
	struct sweep_tunable *t = &sw->tun[sw->ntun];
	t->name = strndup(arg, len);
	t->values = opt_split_list(eq + 1, &t->nvalues);
	if (!t->name || !t->values || t->nvalues == 0) {
		opt_error("sweep: %s: no values", arg);
		return -1;
	}
	sw->ntun++;
	return 0;
}

static int parse_sweep(struct sweep *sw, poptContext con)
{
	uint64_t *v = NULL;
	size_t n;
	sw->cfg.sample = LARSON_DEF_SAMPLE;
	if (opt_workload_finish(&sw->cfg, &sw->timeout) != 0)
		return -1;
	if (runner_resolve(so.allocator ? so.allocator : "hakmem", &sw->alloc) != 0)
		return -1;

	sw->strat = opt_split_list(so.strategies ? so.strategies : SWEEP_DEF_STRATEGIES,
				   &sw->nstrat);
	if (!sw->strat || sw->nstrat == 0) {
		opt_error("--strategies: empty list");
		return -1;
	}
	char name[16];
	long period;
	for (size_t i = 0; i < sw->nstrat; i++)
		if (check_strategy(sw->strat[i], name, &period) != 0)
			return -1;
	if (so.periods) {
		if (parse_u64_list("--periods", so.periods, 1, PERIOD_MAX, &v, &n))
			return free(v), -1;
		sw->periods = calloc(n, sizeof *sw->periods);
		if (!sw->periods) {
			opt_error("--periods: out of memory");
			return free(v), -1;
		}
		for (size_t i = 0; i < n; i++)
			sw->periods[i] = (long)v[i];
		sw->nperiods = n;
		free(v);
	}
	if (parse_u64_list("--threads", so.threads ? so.threads : "4", 1, LARSON_MAX_THREADS, &v,
			   &n))
		return free(v), -1;
	sw->threads = calloc(n, sizeof *sw->threads);
	if (!sw->threads) {
		opt_error("--threads: out of memory");
		return free(v), -1;
	}
	for (size_t i = 0; i < n; i++)
		sw->threads[i] = (unsigned)v[i];
	sw->nthreads = n;
	free(v);
	for (size_t i = 0; so.set && so.set[i]; i++)
		if (add_tunable(sw, so.set[i]) != 0)
			return -1;
	const char *arg;
	while ((arg = poptGetArg(con)))
		if (add_tunable(sw, arg) != 0)
			return -1;
	return 0;
}

/* The grid ------------------------------------------------------------------ */

static int build_points(struct sweep *sw)
{
	size_t combos = 1;
	for (size_t i = 0; i < sw->ntun; i++)
		combos *= sw->tun[i].nvalues;
	size_t per_threads = 0;
	for (size_t i = 0; i < sw->nstrat; i++) {
		char name[16];
		long period;
		check_strategy(sw->strat[i], name, &period);
		per_threads += periodic(name) && period < 0 && sw->nperiods ? sw->nperiods : 1;
	}
	size_t total = per_threads * sw->nthreads * combos;
	if (total > SWEEP_MAX_POINTS) {
		opt_error("sweep: %zu points is too many (at most %d)", total, SWEEP_MAX_POINTS);
		return -1;
	}
	sw->pts = calloc(total, sizeof *sw->pts);
	sw->names = calloc(total, sizeof *sw->names);
	if (!sw->pts || !sw->names)
		return -1;
	for (size_t s = 0; s < sw->nstrat; s++) {
		char name[16];
		long period;
		check_strategy(sw->strat[s], name, &period);
		bool expand = periodic(name) && period < 0 && sw->nperiods;
		size_t np = expand ? sw->nperiods : 1;
		for (size_t p = 0; p < np; p++)
			for (size_t t = 0; t < sw->nthreads; t++)
				for (size_t c = 0; c < combos; c++) {
					struct sweep_point *pt = &sw->pts[sw->npts];
					memcpy(sw->names[sw->npts], name, sizeof name);
					pt->strategy = sw->names[sw->npts];
					pt->period = expand ? sw->periods[p] : period;
					pt->threads = sw->threads[t];
					size_t rest = c;
					for (size_t k = sw->ntun; k-- > 0;) {
						pt->values[k] =
							sw->tun[k].values[rest % sw->tun[k].nvalues];
						rest /= sw->tun[k].nvalues;
					}
					sw->npts++;
				}
	}
	return 0;
}

/* Running --------------------------------------------------------------------- */

static double now_sec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void progress(size_t done, size_t total, double elapsed, double per_point)
{
	int filled = (int)(BAR_WIDTH * done / total);
	double eta = done ? elapsed / (double)done * (double)(total - done)
			  : per_point * (double)total;
	fprintf(stderr, "\r[%.*s%*s] %zu/%zu  elapsed %d:%02d  ETA %d:%02d ", filled,
		"##############################", BAR_WIDTH - filled, "", done, total,
		(int)elapsed / 60, (int)elapsed % 60, (int)eta / 60, (int)eta % 60);
	fflush(stderr);
}

static void point_label(const struct sweep *sw, const struct sweep_point *pt, char *buf,
			size_t len)
{
	int n = snprintf(buf, len, "%s", pt->strategy);
	if (pt->period >= 0)
		n += snprintf(buf + n, len - (size_t)n, "@%ld", pt->period);
	n += snprintf(buf + n, len - (size_t)n, ", %u threads", pt->threads);
	for (size_t k = 0; k < sw->ntun && (size_t)n < len; k++)
		n += snprintf(buf + n, len - (size_t)n, ", %s=%s", sw->tun[k].name, pt->values[k]);
}

static size_t run_points(struct sweep *sw)
{
	bool bar = isatty(STDERR_FILENO);
	size_t failures = 0;
	double t0 = now_sec();
	double per_point = sw->cfg.seconds + 0.5; /* a guess until one is done */
	for (size_t i = 0; i < sw->npts; i++) {
		struct sweep_point *pt = &sw->pts[i];
		struct child_env env[SWEEP_MAX_TUNABLES + 2];
		char period[32];
		size_t nenv = 0;
		env[nenv++] = (struct child_env){ "HAKMEM_DRAIN", pt->strategy };
		if (pt->period >= 0) {
			snprintf(period, sizeof period, "%ld", pt->period);
			env[nenv++] = (struct child_env){ "HAKMEM_DRAIN_PERIOD", period };
		}
		for (size_t k = 0; k < sw->ntun; k++)
			env[nenv++] = (struct child_env){ sw->tun[k].name, pt->values[k] };
		if (bar)
			progress(i, sw->npts, now_sec() - t0, per_point);
		struct wl_cfg cfg = sw->cfg;
		cfg.threads = pt->threads;
		struct child_outcome out;
		runner_run(&sw->alloc, &cfg, env, nenv, sw->timeout, &pt->rec, &out);
		pt->ok = out.ok;
		if (!out.ok) {
			char label[256];
			point_label(sw, pt, label, sizeof label);
			snprintf(pt->error, sizeof pt->error, "%s", out.what);
			fprintf(stderr, "%s%s: point %zu (%s) %s\n", bar ? "\r\033[K" : "", BENCH_PROG,
				i + 1, label, out.what);
			failures++;
		}
	}
	if (bar) {
		progress(sw->npts, sw->npts, now_sec() - t0, per_point);
		fputs("\r\033[K", stderr);
	}
	return failures;
}

/* Output ------------------------------------------------------------------------ */

static void cell_u64(char *b, size_t n, const struct sweep_point *pt, uint64_t v)
{
	report_fmt_count(b, n, pt->ok && pt->rec.res.ctr.present, v);
}

static void print_table(const struct sweep *sw, FILE *f)
{
	fprintf(f, "sweep: %s, larson (published) %llu..%llu bytes, %u chunks, %u rounds, "
		"%.2f s per point, seed %llu\n",
		sw->alloc.name, (unsigned long long)sw->cfg.min,
		(unsigned long long)(sw->cfg.max > sw->cfg.min ? sw->cfg.max - 1 : sw->cfg.min),
		sw->cfg.chunks, sw->cfg.rounds, sw->cfg.seconds, (unsigned long long)sw->cfg.seed);
	fprintf(f, "%-10s %6s %7s", "strategy", "period", "threads");
	for (size_t k = 0; k < sw->ntun; k++)
		fprintf(f, " %s", sw->tun[k].name);
	fprintf(f, " %12s %7s %12s %12s %10s %12s\n", "ops/s", "reuse%", "pend.enq", "pend.drain",
		"adoptions", "peakRSS KiB");
	for (size_t i = 0; i < sw->npts; i++) {
		const struct sweep_point *pt = &sw->pts[i];
		const struct wl_result *r = &pt->rec.res;
		char period[24] = "-";
		if (pt->period >= 0)
			snprintf(period, sizeof period, "%ld", pt->period);
		fprintf(f, "%-10s %6s %7u", pt->strategy, period, pt->threads);
		for (size_t k = 0; k < sw->ntun; k++)
			fprintf(f, " %*s", (int)strlen(sw->tun[k].name), pt->values[k]);
		if (!pt->ok) {
			fprintf(f, "  FAILED: %s\n", pt->error);
			continue;
		}
		char reuse[16] = "n/a", enq[24], drn[24], adp[24], rss[24] = "n/a";
		if (r->ctr.present)
			snprintf(reuse, sizeof reuse, "%.1f", r->ctr.page_reuse_pct);
		cell_u64(enq, sizeof enq, pt, r->ctr.pending_enqueued);
		cell_u64(drn, sizeof drn, pt, r->ctr.pending_drained);
		cell_u64(adp, sizeof adp, pt, r->ctr.adoptions);
		if (r->peak_rss_kb >= 0)
			snprintf(rss, sizeof rss, "%ld", r->peak_rss_kb);
		fprintf(f, " %12.0f %7s %12s %12s %10s %12s\n", r->ops_per_sec, reuse, enq, drn, adp,
			rss);
	}
}

/* CSV: one header line, one line per point; n/a and failures are empty
 * cells, "error" says what failed. */
static void csv_field(FILE *f, const char *s, bool last)
{
	if (strpbrk(s, ",\"\n")) {
		fputc('"', f);
		for (; *s; s++) {
			if (*s == '"')
				fputc('"', f);
			fputc(*s, f);
		}
		fputc('"', f);
	} else {
		fputs(s, f);
	}
	fputc(last ? '\n' : ',', f);
}

static void write_csv(const struct sweep *sw, FILE *f)
{
	fputs("strategy,period,threads,ops_per_sec,page_reuse_pct,pending_enqueued,"
	      "pending_drained,adoptions,peak_rss_kb",
	      f);
	for (size_t k = 0; k < sw->ntun; k++)
		fprintf(f, ",%s", sw->tun[k].name);
	fputs(",error\n", f);
	for (size_t i = 0; i < sw->npts; i++) {
		const struct sweep_point *pt = &sw->pts[i];
		const struct wl_result *r = &pt->rec.res;
		bool c = pt->ok && r->ctr.present;
		char b[64];
		csv_field(f, pt->strategy, false);
		snprintf(b, sizeof b, "%ld", pt->period);
		csv_field(f, pt->period >= 0 ? b : "", false);
		snprintf(b, sizeof b, "%u", pt->threads);
		csv_field(f, b, false);
		snprintf(b, sizeof b, "%.1f", r->ops_per_sec);
		csv_field(f, pt->ok ? b : "", false);
		snprintf(b, sizeof b, "%.2f", r->ctr.page_reuse_pct);
		csv_field(f, c ? b : "", false);
		const uint64_t cnt[] = { r->ctr.pending_enqueued, r->ctr.pending_drained,
					 r->ctr.adoptions };
		for (size_t k = 0; k < 3; k++) {
			snprintf(b, sizeof b, "%llu", (unsigned long long)cnt[k]);
			csv_field(f, c ? b : "", false);
		}
		snprintf(b, sizeof b, "%ld", r->peak_rss_kb);
		csv_field(f, pt->ok && r->peak_rss_kb >= 0 ? b : "", false);
		for (size_t k = 0; k < sw->ntun; k++)
			csv_field(f, pt->values[k], false);
		csv_field(f, pt->ok ? "" : pt->error, true);
	}
}

static void write_json(const struct sweep *sw, FILE *f)
{
	json_t *arr = jw_array();
	for (size_t i = 0; i < sw->npts; i++) {
		const struct sweep_point *pt = &sw->pts[i];
		const struct wl_result *r = &pt->rec.res;
		bool c = pt->ok && r->ctr.present;
		json_t *o = jw_object();
		jw_str(o, "strategy", pt->strategy);
		if (pt->period >= 0)
			jw_int(o, "period", pt->period);
		else
			jw_null(o, "period");
		jw_u64(o, "threads", pt->threads);
		if (pt->ok)
			jw_num(o, "ops_per_sec", r->ops_per_sec);
		else
			jw_null(o, "ops_per_sec");
		if (c)
			jw_num(o, "page_reuse_pct", r->ctr.page_reuse_pct);
		else
			jw_null(o, "page_reuse_pct");
		const char *keys[] = { "pending_enqueued", "pending_drained", "adoptions",
				       "lease_refusals", "remote_frees", "pages_from_os",
				       "pages_reused" };
		const uint64_t vals[] = { r->ctr.pending_enqueued, r->ctr.pending_drained,
					  r->ctr.adoptions, r->ctr.lease_refusals,
					  r->ctr.remote_frees, r->ctr.pages_from_os,
					  r->ctr.pages_reused };
		for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
			if (c)
				jw_u64(o, keys[k], vals[k]);
			else
				jw_null(o, keys[k]);
		}
		if (pt->ok && r->peak_rss_kb >= 0)
			jw_int(o, "peak_rss_kb", r->peak_rss_kb);
		else
			jw_null(o, "peak_rss_kb");
		for (size_t k = 0; k < sw->ntun; k++)
			jw_str(o, sw->tun[k].name, pt->values[k]);
		jw_str(o, "error", pt->ok ? NULL : pt->error);
		jw_append(arr, o);
	}
	jw_dump(f, arr);
}

static int write_file(const char *path, void (*fn)(const struct sweep *, FILE *),
		      const struct sweep *sw)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		opt_error("cannot write %s: %m", path);
		return -1;
	}
	fn(sw, f);
	if (fclose(f) != 0) {
		opt_error("cannot write %s: %m", path);
		return -1;
	}
	return 0;
}

static void sweep_free(struct sweep *sw)
{
	opt_free_list(sw->strat, sw->nstrat);
	free(sw->periods);
	free(sw->threads);
	for (size_t i = 0; i < sw->ntun; i++) {
		free(sw->tun[i].name);
		opt_free_list(sw->tun[i].values, sw->tun[i].nvalues);
	}
	free(sw->pts);
	free(sw->names);
}

int cmd_sweep(int argc, const char **argv)
{
	static struct sweep sw;
	poptContext con = poptGetContext(BENCH_PROG " sweep", argc, argv, sweep_table, 0);
	poptSetOtherOptionHelp(con, "[OPTION...] [HAKMEM_NAME=v1,v2,...]...");
	if (opt_popt_parse("sweep", con) != 0)
		return BENCH_EXIT_USAGE;
	if (parse_sweep(&sw, con) != 0 || build_points(&sw) != 0) {
		poptFreeContext(con);
		sweep_free(&sw);
		return BENCH_EXIT_USAGE;
	}
	poptFreeContext(con);

	size_t failures = run_points(&sw);
	print_table(&sw, stdout);
	int rc = BENCH_EXIT_OK;
	if (so.csv && write_file(so.csv, write_csv, &sw) != 0)
		rc = BENCH_EXIT_FAILED;
	if (so.json && write_file(so.json, write_json, &sw) != 0)
		rc = BENCH_EXIT_FAILED;
	if (so.plot && plot_sweep(so.plot, sw.pts, sw.npts, sw.tun, sw.ntun) != 0)
		rc = BENCH_EXIT_FAILED;
	if (failures) {
		fprintf(stderr, "%s: %zu of %zu points failed:\n", BENCH_PROG, failures, sw.npts);
		for (size_t i = 0; i < sw.npts; i++) {
			char label[256];
			if (sw.pts[i].ok)
				continue;
			point_label(&sw, &sw.pts[i], label, sizeof label);
			fprintf(stderr, "  %s: %s\n", label, sw.pts[i].error);
		}
		rc = BENCH_EXIT_FAILED;
	}
	sweep_free(&sw);
	return rc;
}
