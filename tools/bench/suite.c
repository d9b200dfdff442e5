/*
 * suite.c - the suite command: every workload under every allocator, each
 * run in a child process, interleaved (for each round, each workload, each
 * allocator), then per workload the median ops/s and peak RSS of each
 * allocator and their ratios to a baseline allocator, and the geometric
 * mean of those ratios over the workloads.  Writes CSV, JSON and a plot on
 * demand; shows a progress bar with an ETA on a terminal.
 *
 * The default (five allocators, six workloads, three rounds of 1 s runs)
 * takes about two minutes.
 */
#include "bench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SUITE_DEF_ALLOCATORS "hakmem,glibc,mimalloc,jemalloc,tcmalloc"
#define SUITE_DEF_BASELINE "glibc"
#define SUITE_DEF_RUNS 3
#define SUITE_DEF_SECONDS 1.0
#define SUITE_MAX_RUNS 100
#define BAR_WIDTH 30

static struct {
	char *allocators, *baseline, *runs, *seconds, *workloads, *timeout;
	char *csv, *json, *plot;
} so;

static const struct poptOption suite_table[] = {
	{ "allocator", 'a', POPT_ARG_STRING, &so.allocators, 0,
	  "allocators to compare (default " SUITE_DEF_ALLOCATORS "; uninstalled peers are "
	  "skipped with a note)",
	  "A,B,..." },
	{ "baseline", 'b', POPT_ARG_STRING, &so.baseline, 0,
	  "allocator the ratios are relative to (default glibc, else the first)", "A" },
	{ "runs", 'n', POPT_ARG_STRING, &so.runs, 0,
	  "runs of each workload per allocator, interleaved (default 3)", "N" },
	{ "seconds", 's', POPT_ARG_STRING, &so.seconds, 0,
	  "length of each run (default 1)", "SECONDS" },
	{ "workloads", 'w', POPT_ARG_STRING, &so.workloads, 0,
	  "workloads to run, each with its defaults (default all)", "W,W,..." },
	{ "timeout", 0, POPT_ARG_STRING, &so.timeout, 0,
	  "kill a child run after this many seconds (default 60)", "SECONDS" },
	{ "csv", 0, POPT_ARG_STRING, &so.csv, 0, "write the table as CSV", "FILE" },
	{ "json", 0, POPT_ARG_STRING, &so.json, 0, "write the table and every run as JSON",
	  "FILE" },
	{ "plot", 0, POPT_ARG_STRING, &so.plot, 0,
	  "draw ops/s and RSS ratios, one bar chart per workload, with gnuplot",
	  "FILE.svg|FILE.png" },
	POPT_AUTOHELP
	POPT_TABLEEND
};

/* One cell of the table: a workload under an allocator. */
struct cell {
	size_t ok;           /* successful runs */
	double *ops, *rss;   /* their ops/s and peak RSS (KiB), runs entries */
	double ops_med, rss_med;
	double ops_ratio, rss_ratio; /* to the baseline; NAN when unknown */
};

struct suite {
	struct allocator *allocs;
	size_t nalloc, base;
	enum bench_workload wl[WL_COUNT];
	size_t nwl;
	unsigned runs;
	double seconds, timeout;
	struct cell *cells; /* nwl x nalloc */
	size_t failures;
};

static struct cell *cell_at(struct suite *su, size_t w, size_t a)
{
	return &su->cells[w * su->nalloc + a];
}

static double now_sec(void)
{
	return (double)wl_now_ns() / 1e9;
}

static int parse(struct suite *su)
{
	uint64_t v;
	su->runs = SUITE_DEF_RUNS;
	su->seconds = SUITE_DEF_SECONDS;
	su->timeout = RUN_DEF_TIMEOUT;
	if (so.runs) {
		if (opt_parse_u64("--runs", so.runs, 1, SUITE_MAX_RUNS, &v))
			return -1;
		su->runs = (unsigned)v;
	}
	if (so.seconds &&
	    opt_parse_double("--seconds", so.seconds, 0.001, LARSON_MAX_SECONDS, &su->seconds))
		return -1;
	if (so.timeout && opt_parse_double("--timeout", so.timeout, 0.1, 86400, &su->timeout))
		return -1;
	if (su->timeout <= su->seconds) {
		opt_error("--timeout (%g s) must be longer than --seconds (%g s)", su->timeout,
			  su->seconds);
		return -1;
	}
	if (so.workloads) {
		size_t n;
		char **names = opt_split_list(so.workloads, &n);
		int rc = names && n ? 0 : -1;
		if (rc)
			opt_error("--workloads: no workload named");
		for (size_t i = 0; rc == 0 && i < n; i++) {
			enum bench_workload w;
			if (workload_by_name(names[i], &w) != 0) {
				opt_error("--workloads: unknown workload '%s'", names[i]);
				rc = -1;
			}
			for (size_t k = 0; rc == 0 && k < su->nwl; k++)
				if (su->wl[k] == w) {
					opt_error("--workloads: '%s' is named twice", names[i]);
					rc = -1;
				}
			if (rc == 0)
				su->wl[su->nwl++] = w;
		}
		opt_free_list(names, names ? n : 0);
		if (rc)
			return -1;
	} else {
		for (int w = 0; w < WL_COUNT; w++)
			su->wl[su->nwl++] = (enum bench_workload)w;
	}
	/* The default baseline is glibc when it is among the allocators run. */
	const char *list = so.allocators ? so.allocators : SUITE_DEF_ALLOCATORS;
	const char *base = so.baseline;
	if (!base && strstr(list, SUITE_DEF_BASELINE)) {
		size_t n;
		char **names = opt_split_list(list, &n);
		for (size_t i = 0; names && i < n; i++)
			if (strcmp(names[i], SUITE_DEF_BASELINE) == 0)
				base = SUITE_DEF_BASELINE;
		opt_free_list(names, names ? n : 0);
	}
	return compare_allocators(list, base, &su->allocs, &su->nalloc, &su->base);
}

static void progress(size_t done, size_t total, double elapsed, double guess, const char *what)
{
	int filled = (int)(BAR_WIDTH * done / total);
	double eta = done ? elapsed / (double)done * (double)(total - done) : guess * (double)total;
	fprintf(stderr, "\r\033[K[%.*s%*s] %zu/%zu  ETA %d:%02d  %s", filled,
		"##############################", BAR_WIDTH - filled, "", done, total,
		(int)eta / 60, (int)eta % 60, what);
	fflush(stderr);
}

static void run_all(struct suite *su)
{
	bool bar = isatty(STDERR_FILENO);
	size_t total = su->runs * su->nwl * su->nalloc, done = 0;
	double t0 = now_sec();
	for (unsigned r = 0; r < su->runs; r++) {
		for (size_t w = 0; w < su->nwl; w++) {
			struct wl_cfg cfg = wl_table[su->wl[w]].defaults;
			cfg.seconds = su->seconds;
			for (size_t a = 0; a < su->nalloc; a++, done++) {
				struct allocator *al = &su->allocs[a];
				char what[320];
				snprintf(what, sizeof what, "%s under %s", workload_name(su->wl[w]),
					 al->name);
				if (bar)
					progress(done, total, now_sec() - t0, su->seconds + 0.3, what);
				static struct run_record rec;
				struct child_outcome out;
				runner_run(al, &cfg, NULL, 0, su->timeout, &rec, &out);
				struct cell *c = cell_at(su, w, a);
				if (!out.ok) {
					fprintf(stderr, "%s%s: run %u/%u of %s %s\n", bar ? "\r\033[K" : "",
						BENCH_PROG, r + 1, su->runs, what, out.what);
					su->failures++;
					continue;
				}
				c->ops[c->ok] = rec.res.ops_per_sec;
				c->rss[c->ok] = (double)rec.res.peak_rss_kb;
				c->ok++;
			}
		}
	}
	if (bar) {
		progress(total, total, now_sec() - t0, 0, "done");
		fputs("\r\033[K", stderr);
	}
}

static void summarise(struct suite *su)
{
	for (size_t w = 0; w < su->nwl; w++) {
		for (size_t a = 0; a < su->nalloc; a++) {
			struct cell *c = cell_at(su, w, a);
			c->ops_med = c->ok ? report_median(c->ops, c->ok) : NAN;
			c->rss_med = c->ok ? report_median(c->rss, c->ok) : NAN;
		}
		const struct cell *b = cell_at(su, w, su->base);
		for (size_t a = 0; a < su->nalloc; a++) {
			struct cell *c = cell_at(su, w, a);
			c->ops_ratio = c->ok && b->ok && b->ops_med > 0 ? c->ops_med / b->ops_med : NAN;
			c->rss_ratio = c->ok && b->ok && b->rss_med > 0 ? c->rss_med / b->rss_med : NAN;
		}
	}
}

/* Geometric mean of an allocator's ratios over the workloads where both it
 * and the baseline succeeded; NAN when there are none. */
static double geomean(struct suite *su, size_t a, bool rss, size_t *used)
{
	double logsum = 0;
	*used = 0;
	for (size_t w = 0; w < su->nwl; w++) {
		const struct cell *c = cell_at(su, w, a);
		double r = rss ? c->rss_ratio : c->ops_ratio;
		if (isfinite(r) && r > 0) {
			logsum += log(r);
			(*used)++;
		}
	}
	return *used ? exp(logsum / (double)*used) : NAN;
}

/* A rate in three significant digits with a K/M/G suffix. */
static void fmt_rate(char *buf, size_t len, double v)
{
	static const char suffix[] = " KMG";
	int k = 0;
	while (v >= 1000 && k < 3) {
		v /= 1000;
		k++;
	}
	snprintf(buf, len, "%.3g%.*s", v, k ? 1 : 0, suffix + k);
}

static void fmt_ratio(char *buf, size_t len, double r)
{
	if (isfinite(r))
		snprintf(buf, len, "%.2f", r);
	else
		snprintf(buf, len, "-");
}

static void print_table(struct suite *su, FILE *f)
{
	const char *base = su->allocs[su->base].name;
	fprintf(f, "suite: %u run%s of %.2f s per workload and allocator; ratios to %s\n\n",
		su->runs, su->runs == 1 ? "" : "s", su->seconds, base);
	for (int rss = 0; rss < 2; rss++) {
		fprintf(f, "%-14s", rss ? "peak RSS" : "ops/s");
		for (size_t a = 0; a < su->nalloc; a++)
			fprintf(f, " %18s", su->allocs[a].name);
		fputc('\n', f);
		for (size_t w = 0; w < su->nwl; w++) {
			fprintf(f, "%-14s", workload_name(su->wl[w]));
			for (size_t a = 0; a < su->nalloc; a++) {
				const struct cell *c = cell_at(su, w, a);
				char val[32], ratio[16];
				if (!c->ok) {
					fprintf(f, " %18s", "failed");
					continue;
				}
				if (rss)
					snprintf(val, sizeof val, "%.1fM", c->rss_med / 1024);
				else
					fmt_rate(val, sizeof val, c->ops_med);
				fmt_ratio(ratio, sizeof ratio, rss ? c->rss_ratio : c->ops_ratio);
				fprintf(f, " %10s (%5s)", val, ratio);
			}
			fputc('\n', f);
		}
		fprintf(f, "%-14s", "geomean");
		for (size_t a = 0; a < su->nalloc; a++) {
			size_t used;
			char ratio[16];
			fmt_ratio(ratio, sizeof ratio, geomean(su, a, rss, &used));
			fprintf(f, " %10s (%5s)", "", ratio);
		}
		fprintf(f, "\n\n");
	}
	fprintf(f, "medians of the runs; (ratio) to %s's median; RSS in MiB; geomean: of the "
		   "ratios over the workloads\n", base);
}

static int write_csv(struct suite *su, const char *file)
{
	FILE *f = fopen(file, "w");
	if (!f) {
		opt_error("--csv: cannot write %s: %m", file);
		return -1;
	}
	fprintf(f, "workload,allocator,runs,ops_per_sec,ops_ratio,peak_rss_kb,rss_ratio\n");
	for (size_t w = 0; w < su->nwl; w++)
		for (size_t a = 0; a < su->nalloc; a++) {
			const struct cell *c = cell_at(su, w, a);
			fprintf(f, "%s,%s,%zu", workload_name(su->wl[w]), su->allocs[a].name, c->ok);
			if (c->ok)
				fprintf(f, ",%.0f,%.4f,%.0f,%.4f\n", c->ops_med, c->ops_ratio, c->rss_med,
					c->rss_ratio);
			else
				fprintf(f, ",,,,\n");
		}
	for (size_t a = 0; a < su->nalloc; a++) {
		size_t u1, u2;
		double g = geomean(su, a, false, &u1), gr = geomean(su, a, true, &u2);
		fprintf(f, "geomean,%s,,,%.4f,,%.4f\n", su->allocs[a].name, g, gr);
	}
	if (fclose(f) != 0) {
		opt_error("--csv: cannot write %s: %m", file);
		return -1;
	}
	return 0;
}

static void json_ratio(json_t *o, const char *key, double v)
{
	if (isfinite(v))
		jw_num(o, key, v);
	else
		jw_null(o, key);
}

static int write_json(struct suite *su, const char *file)
{
	FILE *f = fopen(file, "w");
	if (!f) {
		opt_error("--json: cannot write %s: %m", file);
		return -1;
	}
	json_t *root = jw_object(), *cells = jw_array(), *geo = jw_array();
	jw_str(root, "baseline", su->allocs[su->base].name);
	jw_u64(root, "runs", su->runs);
	jw_num(root, "seconds", su->seconds);
	for (size_t w = 0; w < su->nwl; w++)
		for (size_t a = 0; a < su->nalloc; a++) {
			const struct cell *c = cell_at(su, w, a);
			json_t *o = jw_object();
			jw_str(o, "workload", workload_name(su->wl[w]));
			jw_str(o, "allocator", su->allocs[a].name);
			jw_u64(o, "ok", c->ok);
			json_ratio(o, "ops_per_sec", c->ok ? c->ops_med : NAN);
			json_ratio(o, "ops_ratio", c->ops_ratio);
			json_ratio(o, "peak_rss_kb", c->ok ? c->rss_med : NAN);
			json_ratio(o, "rss_ratio", c->rss_ratio);
			jw_append(cells, o);
		}
	for (size_t a = 0; a < su->nalloc; a++) {
		size_t u1, u2;
		json_t *o = jw_object();
		jw_str(o, "allocator", su->allocs[a].name);
		json_ratio(o, "ops_ratio", geomean(su, a, false, &u1));
		json_ratio(o, "rss_ratio", geomean(su, a, true, &u2));
		jw_u64(o, "workloads", u1);
		jw_append(geo, o);
	}
	jw_set(root, "cells", cells);
	jw_set(root, "geomean", geo);
	if (jw_dump(f, root) != 0) {
		fclose(f);
		return -1;
	}
	if (fclose(f) != 0) {
		opt_error("--json: cannot write %s: %m", file);
		return -1;
	}
	return 0;
}

int cmd_suite(int argc, const char **argv)
{
	poptContext con = poptGetContext(BENCH_PROG " suite", argc, argv, suite_table, 0);
	if (opt_popt_parse("suite", con) != 0)
		return BENCH_EXIT_USAGE;
	const char *extra = poptGetArg(con);
	if (extra) {
		opt_error("suite: unexpected argument '%s'", extra);
		poptFreeContext(con);
		return BENCH_EXIT_USAGE;
	}
	struct suite su = { 0 };
	int rc = BENCH_EXIT_USAGE;
	if (parse(&su) != 0)
		goto out;
	if (so.plot && plot_suite_check(so.plot) != 0)
		goto out;
	rc = BENCH_EXIT_FAILED;
	su.cells = calloc(su.nwl * su.nalloc, sizeof *su.cells);
	if (!su.cells)
		goto out;
	for (size_t i = 0; i < su.nwl * su.nalloc; i++) {
		su.cells[i].ops = calloc(su.runs, sizeof(double));
		su.cells[i].rss = calloc(su.runs, sizeof(double));
		if (!su.cells[i].ops || !su.cells[i].rss)
			goto out;
	}
	run_all(&su);
	summarise(&su);
	print_table(&su, stdout);
	rc = su.failures ? BENCH_EXIT_FAILED : BENCH_EXIT_OK;
	if (su.failures)
		fprintf(stderr, "%s: %zu of %zu runs failed\n", BENCH_PROG, su.failures,
			su.runs * su.nwl * su.nalloc);
	if (so.csv && write_csv(&su, so.csv) != 0)
		rc = BENCH_EXIT_FAILED;
	if (so.json && write_json(&su, so.json) != 0)
		rc = BENCH_EXIT_FAILED;
	if (so.plot) {
		const char *names[WL_COUNT], *anames[64];
		double ops[WL_COUNT * 64], rss[WL_COUNT * 64];
		size_t na = su.nalloc < 64 ? su.nalloc : 64;
		for (size_t w = 0; w < su.nwl; w++) {
			names[w] = workload_name(su.wl[w]);
			for (size_t a = 0; a < na; a++) {
				ops[w * na + a] = cell_at(&su, w, a)->ops_ratio;
				rss[w * na + a] = cell_at(&su, w, a)->rss_ratio;
			}
		}
		for (size_t a = 0; a < na; a++)
			anames[a] = su.allocs[a].name;
		if (plot_suite(so.plot, names, su.nwl, anames, na, ops, rss,
			       su.allocs[su.base].name) != 0)
			rc = BENCH_EXIT_FAILED;
	}
out:
	if (su.cells)
		for (size_t i = 0; i < su.nwl * su.nalloc; i++) {
			free(su.cells[i].ops);
			free(su.cells[i].rss);
		}
	free(su.cells);
	free(su.allocs);
	poptFreeContext(con);
	return rc;
}
