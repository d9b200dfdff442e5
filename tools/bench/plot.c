/*
 * plot.c - draws a sweep with gnuplot: throughput (top) and page reuse
 * (bottom) against the drain period, one line per strategy (and per thread
 * count and tunable setting when those vary).  A point without a period
 * (owner, adopt, or a strategy at the library's default period) is drawn as
 * a dashed horizontal line across the swept periods, for reference.
 *
 * The script, with the data inline, is piped into gnuplot.
 */
#include "bench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SERIES_MAX 64

struct series {
	char label[128];
	bool periodless;
	size_t idx[256]; /* points of this series */
	size_t n;
};

static bool in_path(const char *prog)
{
	const char *path = getenv("PATH");
	if (!path)
		path = "/usr/bin:/bin";
	while (*path) {
		size_t len = strcspn(path, ":");
		char cand[4096];
		snprintf(cand, sizeof cand, "%.*s/%s", (int)len, len ? path : ".", prog);
		if (access(cand, X_OK) == 0)
			return true;
		path += len + (path[len] == ':');
	}
	return false;
}

static const char *terminal_for(const char *file)
{
	const char *dot = strrchr(file, '.');
	if (dot && strcmp(dot, ".svg") == 0)
		return "svg size 900,700 dynamic enhanced font 'sans,11'";
	if (dot && strcmp(dot, ".png") == 0)
		return "pngcairo size 900,700 enhanced font 'sans,10'";
	return NULL;
}

static void series_label(const struct sweep_point *p, const struct sweep_tunable *tun,
			 size_t ntun, bool many_threads, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s", p->strategy);
	if (many_threads)
		n += snprintf(buf + n, len - (size_t)n, " %uT", p->threads);
	for (size_t k = 0; k < ntun && (size_t)n < len; k++)
		n += snprintf(buf + n, len - (size_t)n, " %s=%s", tun[k].name + 7, p->values[k]);
}

static size_t group(const struct sweep_point *pts, size_t n, const struct sweep_tunable *tun,
		    size_t ntun, struct series *s)
{
	bool many_threads = false;
	for (size_t i = 1; i < n; i++)
		many_threads |= pts[i].threads != pts[0].threads;
	size_t ns = 0;
	for (size_t i = 0; i < n; i++) {
		if (!pts[i].ok)
			continue;
		char label[128];
		series_label(&pts[i], tun, ntun, many_threads, label, sizeof label);
		bool periodless = pts[i].period < 0;
		if (periodless) /* a strategy at its default period gets its own line */
			strncat(label, periodless && (strcmp(pts[i].strategy, "roundrobin") == 0 ||
						      strcmp(pts[i].strategy, "hybrid") == 0)
					       ? " (default period)"
					       : "",
				sizeof label - strlen(label) - 1);
		size_t k = 0;
		while (k < ns && !(strcmp(s[k].label, label) == 0 && s[k].periodless == periodless))
			k++;
		if (k == ns) {
			if (ns == SERIES_MAX)
				continue;
			memset(&s[ns], 0, sizeof s[ns]);
			snprintf(s[ns].label, sizeof s[ns].label, "%s", label);
			s[ns].periodless = periodless;
			ns++;
		}
		if (s[k].n < sizeof s[k].idx / sizeof s[k].idx[0])
			s[k].idx[s[k].n++] = i;
	}
	return ns;
}

static void write_script(FILE *g, const char *file, const char *term,
			 const struct sweep_point *pts, const struct series *s, size_t ns)
{
	long pmin = -1, pmax = -1;
	bool reuse = false;
	for (size_t k = 0; k < ns; k++)
		for (size_t j = 0; j < s[k].n; j++) {
			const struct sweep_point *p = &pts[s[k].idx[j]];
			reuse |= p->rec.res.ctr.present;
			if (p->period < 0)
				continue;
			pmin = pmin < 0 || p->period < pmin ? p->period : pmin;
			pmax = p->period > pmax ? p->period : pmax;
		}
	double x0 = pmin > 0 ? (double)pmin : 1, x1 = pmax > pmin ? (double)pmax : x0 * 2;

	fprintf(g, "set terminal %s\nset output '%s'\n", term, file);
	/* One data block per series: period, ops/s, reuse %. */
	for (size_t k = 0; k < ns; k++) {
		fprintf(g, "$s%zu << EOD\n", k);
		for (size_t j = 0; j < s[k].n; j++) {
			const struct wl_result *r = &pts[s[k].idx[j]].rec.res;
			double reuse_v = r->ctr.present ? r->ctr.page_reuse_pct : NAN;
			if (s[k].periodless) {
				fprintf(g, "%g %.1f %.2f\n%g %.1f %.2f\n\n", x0, r->ops_per_sec, reuse_v,
					x1, r->ops_per_sec, reuse_v);
			} else {
				fprintf(g, "%ld %.1f %.2f\n", pts[s[k].idx[j]].period, r->ops_per_sec,
					reuse_v);
			}
		}
		fputs("EOD\n", g);
	}
	fputs("set multiplot layout 2,1 title 'hakmem drain sweep (Larson)'\n"
	      "set grid\nset key outside right\nset datafile missing 'nan'\n",
	      g);
	if (pmin > 0 && pmax >= 4 * pmin)
		fputs("set logscale x 2\n", g);
	fprintf(g, "set xrange [%g:%g]\nset yrange [0:*]\n", x0, x1);
	fputs("set xlabel 'drain period (HAKMEM\\_DRAIN\\_PERIOD)'\nset ylabel 'ops/s'\n", g);
	for (int panel = 0; panel < 2; panel++) {
		if (panel == 1) {
			fputs("set ylabel 'page reuse %'\nset yrange [0:100]\n", g);
			if (!reuse) {
				fputs("set label 1 'no page-reuse counters (not hakmem?)' at graph 0.5,0.5 "
				      "center\nplot NaN notitle\n",
				      g);
				break;
			}
		}
		fputs("plot ", g);
		for (size_t k = 0; k < ns; k++) {
			fprintf(g, "%s$s%zu using 1:%d with %s lw 2 lc %zu title '", k ? ", " : "", k,
				panel ? 3 : 2, s[k].periodless ? "lines dt 2" : "linespoints pt 7",
				k + 1);
			for (const char *c = s[k].label; *c; c++) {
				if (*c == '\'')
					fputc('\'', g); /* '' is a quote inside '...' */
				fputc(*c, g);
			}
			fputs("' noenhanced", g);
		}
		fputc('\n', g);
	}
	fputs("unset multiplot\n", g);
}

int plot_sweep(const char *file, const struct sweep_point *pts, size_t n,
	       const struct sweep_tunable *tun, size_t ntun)
{
	const char *term = terminal_for(file);
	if (!term) {
		opt_error("--plot: %s: name the file .svg or .png", file);
		return -1;
	}
	if (!in_path("gnuplot")) {
		opt_error("cannot plot: gnuplot is not installed (Debian package gnuplot-nox)");
		return -1;
	}
	struct series *s = calloc(SERIES_MAX, sizeof *s);
	if (!s)
		return -1;
	size_t ns = group(pts, n, tun, ntun, s);
	if (ns == 0) {
		opt_error("cannot plot: no point succeeded");
		free(s);
		return -1;
	}
	fflush(NULL);
	FILE *g = popen("gnuplot", "w");
	if (!g) {
		opt_error("cannot run gnuplot: %m");
		free(s);
		return -1;
	}
	write_script(g, file, term, pts, s, ns);
	int st = pclose(g);
	free(s);
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		opt_error("gnuplot failed to draw %s", file);
		return -1;
	}
	return 0;
}

/* The suite: one bar chart per workload, ops/s and peak RSS ratios to the
 * baseline for each allocator, with a dashed line at 1. ---------------------- */

int plot_suite_check(const char *file)
{
	if (!terminal_for(file)) {
		opt_error("--plot: %s: name the file .svg or .png", file);
		return -1;
	}
	if (!in_path("gnuplot")) {
		opt_error("cannot plot: gnuplot is not installed (Debian package gnuplot-nox)");
		return -1;
	}
	return 0;
}

static void ratio_or_missing(FILE *g, double v)
{
	if (isfinite(v))
		fprintf(g, " %.4f", v);
	else
		fputs(" ?", g); /* gnuplot leaves the bar out */
}

int plot_suite(const char *file, const char *const *workloads, size_t nwl,
	       const char *const *allocs, size_t nalloc, const double *ops, const double *rss,
	       const char *baseline)
{
	if (plot_suite_check(file) != 0)
		return -1;
	size_t rows = (nwl + 1) / 2;
	fflush(NULL);
	FILE *g = popen("gnuplot", "w");
	if (!g) {
		opt_error("cannot run gnuplot: %m");
		return -1;
	}
	const char *term = terminal_for(file);
	/* Tall enough for the rows of charts. */
	fprintf(g, "set terminal %s size 1000,%zu\n",
		strstr(term, "svg") ? "svg dynamic enhanced font 'sans,11'"
				    : "pngcairo enhanced font 'sans,10'",
		rows * 300 + 60);
	fputs("set output '", g);
	for (const char *c = file; *c; c++)
		fprintf(g, *c == '\'' ? "''" : "%c", *c);
	fputs("'\n", g);
	for (size_t w = 0; w < nwl; w++) {
		fprintf(g, "$d%zu << EOD\n", w);
		for (size_t a = 0; a < nalloc; a++) {
			fprintf(g, "\"%s\"", allocs[a]);
			ratio_or_missing(g, ops[w * nalloc + a]);
			ratio_or_missing(g, rss[w * nalloc + a]);
			fputc('\n', g);
		}
		fputs("EOD\n", g);
	}
	fprintf(g, "set multiplot layout %zu,2 title \"hakmem-bench suite: ratios to %s "
		   "(higher ops/s is better, lower RSS is better)\"\n",
		rows, baseline);
	fputs("set style data histograms\nset style histogram clustered gap 1\n"
	      "set style fill solid 0.8 border -1\nset boxwidth 0.9\nset yrange [0:*]\n"
	      "set grid ytics\nset key top left font ',9'\nset xtics font ',9'\n",
	      g);
	for (size_t w = 0; w < nwl; w++) {
		fprintf(g, "set title \"%s\"\n", workloads[w]);
		fprintf(g, "plot $d%zu using 2:xtic(1) title 'ops/s', '' using 3 title 'peak RSS', "
			   "1 with lines dt 2 lc rgb 'gray40' notitle\n",
			w);
	}
	fputs("unset multiplot\n", g);
	int st = pclose(g);
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		opt_error("gnuplot failed to draw %s", file);
		return -1;
	}
	return 0;
}
