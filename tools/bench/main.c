/*
 * main.c - hakmem-bench: sub-command dispatch, the run command (run WORKLOAD,
 * and its short forms larson and churn: options, in-process run or
 * comparison of allocators in child processes) and the hidden child mode
 * that the comparison, the suite and the sweep re-execute.
 */
#include "bench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHILD_CMD "__child"
#define MAX_RUNS 1000

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: %s COMMAND [OPTION...]\n"
		"Benchmarks malloc implementations.\n\n"
		"Commands:\n"
		"  run WORKLOAD  run a workload under the loaded allocator, or compare\n"
		"                allocators with --allocator A,B,...; workloads:\n",
		BENCH_PROG);
	for (int w = 0; w < WL_COUNT; w++)
		fprintf(f, "                  %-14s %s\n", wl_table[w].name, wl_table[w].what);
	fprintf(f,
		"  larson, churn the same as run larson, run churn\n"
		"  suite         every workload under each allocator, interleaved: ratios\n"
		"                to a baseline and their geometric mean\n"
		"  sweep         run larson under hakmem for each drain strategy,\n"
		"                period, thread count and HAKMEM_* setting\n\n"
		"'%s COMMAND --help' lists the options of a command.\n",
		BENCH_PROG);
}

int main(int argc, char **argv)
{
	const char **av = (const char **)argv;
	if (argc < 2) {
		opt_error("no command given (run, larson, churn, suite or sweep); try '%s --help'",
			  BENCH_PROG);
		return BENCH_EXIT_USAGE;
	}
	if (strcmp(argv[1], "run") == 0)
		return cmd_run(argc - 1, av + 1);
	if (strcmp(argv[1], "suite") == 0)
		return cmd_suite(argc - 1, av + 1);
	if (strcmp(argv[1], "larson") == 0)
		return cmd_larson(argc - 1, av + 1);
	if (strcmp(argv[1], "churn") == 0)
		return cmd_churn(argc - 1, av + 1);
	if (strcmp(argv[1], "sweep") == 0)
		return cmd_sweep(argc - 1, av + 1);
	if (strcmp(argv[1], CHILD_CMD) == 0)
		return cmd_child(argc - 1, av + 1);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return BENCH_EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("%s (hakmem) %s\n", BENCH_PROG, PACKAGE_VERSION);
		return BENCH_EXIT_OK;
	}
	opt_error("unknown command '%s' (run, larson, churn, suite or sweep); try '%s --help'",
		  argv[1], BENCH_PROG);
	return BENCH_EXIT_USAGE;
}

/* The value of --calls, or -1 after one line. */
static int parse_calls(const char *s, enum larson_calls *out)
{
	for (int c = CALLS_NEW; c <= CALLS_MALLOC; c++)
		if (strcmp(s, calls_name((enum larson_calls)c)) == 0) {
			*out = (enum larson_calls)c;
			return 0;
		}
	opt_error("--calls: '%s' is not new, sized or malloc", s);
	return -1;
}

/* The settings of this process's allocator that a record names. */
static void record_env(struct run_record *r)
{
	const char *s = getenv("HAKMEM_DRAIN");
	const char *p = getenv("HAKMEM_DRAIN_PERIOD");
	snprintf(r->strategy, sizeof r->strategy, "%s", s ? s : "");
	r->period = p && *p ? strtol(p, NULL, 10) : -1;
}

/* Child mode: __child FD NAME WORKLOAD THREADS CHUNKS ROUNDS MIN MAX SECONDS
 * SEED SAMPLE CHECK CALLS SIZE WRITES MODE LIVE FILL (written by runner.c;
 * not for people). */
int cmd_child(int argc, const char **argv)
{
	if (argc != 19) {
		opt_error("%s is internal to %s", CHILD_CMD, BENCH_PROG);
		return BENCH_EXIT_USAGE;
	}
	int fd = atoi(argv[1]);
	static struct run_record rec;
	struct wl_cfg *c = &rec.cfg;
	snprintf(rec.allocator, sizeof rec.allocator, "%s", argv[2]);
	bool known = workload_by_name(argv[3], &c->workload) == 0;
	c->threads = (unsigned)strtoul(argv[4], NULL, 10);
	c->chunks = (unsigned)strtoul(argv[5], NULL, 10);
	c->rounds = (unsigned)strtoul(argv[6], NULL, 10);
	c->min = strtoull(argv[7], NULL, 10);
	c->max = strtoull(argv[8], NULL, 10);
	c->seconds = strtod(argv[9], NULL);
	c->seed = strtoull(argv[10], NULL, 10);
	c->sample = (unsigned)strtoul(argv[11], NULL, 10);
	c->latency = c->sample > 0;
	c->check = strcmp(argv[12], "1") == 0;
	if (parse_calls(argv[13], &c->calls) != 0)
		return BENCH_EXIT_USAGE;
	c->size = strtoull(argv[14], NULL, 10);
	c->writes = (unsigned)strtoul(argv[15], NULL, 10);
	c->mode = strcmp(argv[16], "active") == 0 ? FS_ACTIVE : FS_PASSIVE;
	c->live = (unsigned)strtoul(argv[17], NULL, 10);
	c->fill = strcmp(argv[18], "zero") == 0 ? FILL_ZERO
		  : strcmp(argv[18], "none") == 0 ? FILL_NONE : FILL_WRITE;
	FILE *out = fdopen(fd, "w");
	if (!out || !known || c->threads == 0 || c->min > c->max) {
		opt_error("%s: bad arguments", CHILD_CMD);
		return BENCH_EXIT_USAGE;
	}
	record_env(&rec);
	if (workload_run(c, &rec.res) != 0)
		return BENCH_EXIT_FAILED;
	report_run_json(out, &rec);
	fputc('\n', out);
	return fclose(out) == 0 ? BENCH_EXIT_OK : BENCH_EXIT_FAILED;
}

/* run WORKLOAD -------------------------------------------------------------- */

static struct {
	char *threads, *allocators, *runs, *baseline, *sample, *calls;
	int json, latency, check;
} lo;

#define THREADS(what)                                                                         \
	{ "threads", 't', POPT_ARG_STRING, &lo.threads, 0, what, "N" }
#define WORKLOAD(table)                                                                       \
	{ NULL, 0, POPT_ARG_INCLUDE_TABLE, (void *)(table), 0, "Workload:", NULL }
#define LATENCY_OPTIONS                                                                       \
	{ "latency", 'l', POPT_ARG_NONE, &lo.latency, 0,                                      \
	  "sample per-call latency of malloc and free (p50, p99, p99.9, max)", NULL },        \
	{ "sample", 0, POPT_ARG_STRING, &lo.sample, 0,                                        \
	  "with --latency: time 1 call in N (default 64)", "N" }
/* The options after the workload's own, common to every workload. */
#define RUN_OPTIONS                                                                           \
	{ "allocator", 'a', POPT_ARG_STRING, &lo.allocators, 0,                               \
	  "compare allocators, each in child processes: hakmem, glibc, mimalloc, jemalloc, "  \
	  "tcmalloc or a path to a malloc .so",                                               \
	  "A,B,..." },                                                                        \
	{ "runs", 'n', POPT_ARG_STRING, &lo.runs, 0,                                          \
	  "with --allocator: runs per allocator, interleaved (default 1)", "N" },             \
	{ "baseline", 'b', POPT_ARG_STRING, &lo.baseline, 0,                                  \
	  "with --allocator: allocator the ratios are relative to (default the first)", "A" },\
	{ "json", 'j', POPT_ARG_NONE, &lo.json, 0, "print one JSON object", NULL },           \
	POPT_AUTOHELP                                                                         \
	POPT_TABLEEND

static const struct poptOption larson_table[] = {
	THREADS("threads running at once, each on its own slice (default 4)"),
	WORKLOAD(opt_workload_table),
	{ "check", 0, POPT_ARG_NONE, &lo.check, 0,
	  "tag every block and check the tag before its free, instead of the published "
	  "two-byte write",
	  NULL },
	{ "calls", 0, POPT_ARG_STRING, &lo.calls, 0,
	  "new: operator new[]/delete[], as mimalloc-bench builds larson (default); "
	  "sized: with sized delete[], its larson-sized; malloc: malloc/free, the source "
	  "built without -DCPP",
	  "new|sized|malloc" },
	LATENCY_OPTIONS,
	RUN_OPTIONS
};

static const struct poptOption churn_table[] = {
	THREADS("chains of threads running at once (default 4)"),
	WORKLOAD(opt_churn_table),
	LATENCY_OPTIONS,
	RUN_OPTIONS
};

static const struct poptOption xmalloc_table[] = {
	THREADS("producer threads, and as many consumers (default 2)"),
	WORKLOAD(opt_xmalloc_table),
	RUN_OPTIONS
};

static const struct poptOption falseshare_table[] = {
	THREADS("threads writing objects (default 2)"),
	WORKLOAD(opt_falseshare_table),
	RUN_OPTIONS
};

static const struct poptOption simple_table[] = {
	WORKLOAD(opt_simple_table),
	RUN_OPTIONS
};

static const struct poptOption buffers_table[] = {
	THREADS("threads, each with its own buffers (default 1)"),
	WORKLOAD(opt_buffers_table),
	RUN_OPTIONS
};

static const struct poptOption *const cmd_tables[WL_COUNT] = {
	[WL_LARSON] = larson_table,	    [WL_CHURN] = churn_table,
	[WL_XMALLOC] = xmalloc_table,	    [WL_FALSESHARE] = falseshare_table,
	[WL_SIMPLE] = simple_table,	    [WL_BUFFERS] = buffers_table,
};

struct compare {
	struct allocator *allocs;
	size_t nalloc;
	size_t baseline;
	unsigned runs;
	double timeout;
	struct run_record *recs;  /* successful runs */
	const char **rec_alloc;   /* their allocator names */
	size_t nrecs;
	size_t failures;
};

int compare_allocators(const char *list, const char *baseline, struct allocator **out,
		       size_t *nout, size_t *base)
{
	size_t n;
	char **names = opt_split_list(list, &n);
	if (!names || n == 0) {
		opt_error("--allocator: no allocator named");
		opt_free_list(names, names ? n : 0);
		return -1;
	}
	struct allocator *allocs = calloc(n, sizeof *allocs);
	size_t nalloc = 0;
	int rc = allocs ? 0 : -1;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		for (size_t k = 0; k < i; k++)
			if (strcmp(names[i], names[k]) == 0) {
				opt_error("--allocator: '%s' is named twice", names[i]);
				rc = -1;
			}
		if (rc)
			break;
		int r = runner_resolve(names[i], &allocs[nalloc]);
		if (r < 0)
			rc = -1;
		else if (r == 0)
			nalloc++;
	}
	const char *b = baseline ? baseline : names[0];
	if (rc == 0 && nalloc == 0) {
		opt_error("--allocator: none of the allocators is installed");
		rc = -1;
	}
	if (rc == 0) {
		*base = nalloc;
		for (size_t i = 0; i < nalloc; i++)
			if (strcmp(allocs[i].name, b) == 0)
				*base = i;
		if (*base == nalloc) {
			opt_error("--baseline: '%s' is not among the allocators run", b);
			rc = -1;
		}
	}
	opt_free_list(names, n);
	if (rc != 0) {
		free(allocs);
		return -1;
	}
	*out = allocs;
	*nout = nalloc;
	return 0;
}

static int parse_allocators(struct compare *cmp)
{
	return compare_allocators(lo.allocators, lo.baseline, &cmp->allocs, &cmp->nalloc,
				  &cmp->baseline);
}

static void run_compare(struct compare *cmp, const struct wl_cfg *cfg)
{
	size_t total = cmp->nalloc * cmp->runs;
	cmp->recs = calloc(total, sizeof *cmp->recs);
	cmp->rec_alloc = calloc(total, sizeof *cmp->rec_alloc);
	if (!cmp->recs || !cmp->rec_alloc) {
		opt_error("out of memory");
		cmp->failures = total;
		return;
	}
	/* Interleaved (A B A B ...) so that drift of the machine hits all alike. */
	for (unsigned r = 0; r < cmp->runs; r++) {
		for (size_t i = 0; i < cmp->nalloc; i++) {
			struct allocator *a = &cmp->allocs[i];
			struct run_record *rec = &cmp->recs[cmp->nrecs];
			struct child_outcome out;
			runner_run(a, cfg, NULL, 0, cmp->timeout, rec, &out);
			if (!out.ok) {
				fprintf(stderr, "%s: run %u/%u of %s %s\n", BENCH_PROG, r + 1,
					cmp->runs, a->name, out.what);
				cmp->failures++;
				continue;
			}
			fprintf(stderr, "%s: run %u/%u %-10s %12.0f ops/s\n", BENCH_PROG, r + 1,
				cmp->runs, a->name, rec->res.ops_per_sec);
			cmp->rec_alloc[cmp->nrecs++] = a->name;
		}
	}
}

static void summarise(const struct compare *cmp, struct alloc_summary *s)
{
	double *v = calloc(cmp->runs, sizeof *v);
	for (size_t i = 0; v && i < cmp->nalloc; i++) {
		struct alloc_summary *a = &s[i];
		memset(a, 0, sizeof *a);
		a->name = cmp->allocs[i].name;
		a->runs = cmp->runs;
		size_t k = 0;
		for (size_t j = 0; j < cmp->nrecs; j++)
			if (cmp->rec_alloc[j] == a->name)
				v[k++] = cmp->recs[j].res.ops_per_sec;
		a->failed = cmp->runs - k;
		if (k == 0)
			continue;
		a->median = report_median(v, k);
		a->min = v[0];
		a->max = v[k - 1];
		/* The run closest to the median lends its RSS, counters and latency. */
		double best = INFINITY;
		for (size_t j = 0; j < cmp->nrecs; j++)
			if (cmp->rec_alloc[j] == a->name &&
			    fabs(cmp->recs[j].res.ops_per_sec - a->median) < best) {
				best = fabs(cmp->recs[j].res.ops_per_sec - a->median);
				a->median_run = &cmp->recs[j];
			}
	}
	for (size_t i = 0; i < cmp->nalloc; i++) {
		const struct alloc_summary *b = &s[cmp->baseline];
		s[i].ratio = s[i].median_run && b->median_run && b->median > 0
				     ? s[i].median / b->median
				     : NAN;
	}
	free(v);
}

static int larson_compare(const struct wl_cfg *cfg, double timeout)
{
	struct compare cmp = { .timeout = timeout, .runs = 1 };
	uint64_t v;
	if (lo.runs) {
		if (opt_parse_u64("--runs", lo.runs, 1, MAX_RUNS, &v))
			return BENCH_EXIT_USAGE;
		cmp.runs = (unsigned)v;
	}
	if (parse_allocators(&cmp) != 0) {
		free(cmp.allocs);
		return BENCH_EXIT_USAGE;
	}
	run_compare(&cmp, cfg);
	struct alloc_summary *s = calloc(cmp.nalloc, sizeof *s);
	if (s) {
		summarise(&cmp, s);
		const char *base = cmp.allocs[cmp.baseline].name;
		if (lo.json)
			report_compare_json(stdout, s, cmp.nalloc, cmp.recs, cmp.rec_alloc, cmp.nrecs,
					    base);
		else
			report_compare_text(stdout, s, cmp.nalloc, base, cfg->latency);
	}
	if (cmp.failures)
		fprintf(stderr, "%s: %zu of %zu runs failed\n", BENCH_PROG, cmp.failures,
			cmp.nalloc * cmp.runs);
	int rc = cmp.failures || !s ? BENCH_EXIT_FAILED : BENCH_EXIT_OK;
	free(s);
	free(cmp.recs);
	free(cmp.rec_alloc);
	free(cmp.allocs);
	return rc;
}

static int cmd_workload(enum bench_workload wl, int argc, const char **argv)
{
	const char *name = workload_name(wl);
	char title[64];
	snprintf(title, sizeof title, "%s run %s", BENCH_PROG, name);
	/* popt's --help and --usage name argv[0]: name the whole command. */
	const char **args = calloc((size_t)argc + 1, sizeof *args);
	if (!args) {
		opt_error("out of memory");
		return BENCH_EXIT_FAILED;
	}
	memcpy(args, argv, (size_t)argc * sizeof *args);
	args[0] = title;
	poptContext con = poptGetContext(title, argc, args, cmd_tables[wl], 0);
	if (opt_popt_parse(name, con) != 0) {
		free(args);
		return BENCH_EXIT_USAGE;
	}
	const char *extra = poptGetArg(con);
	if (extra) {
		opt_error("%s: unexpected argument '%s'", name, extra);
		poptFreeContext(con);
		free(args);
		return BENCH_EXIT_USAGE;
	}
	struct wl_cfg cfg = { .workload = wl };
	double timeout;
	uint64_t v;
	int rc = BENCH_EXIT_USAGE;
	if (opt_workload_finish(&cfg, &timeout) != 0)
		goto out;
	cfg.check |= lo.check != 0;
	if (lo.threads && opt_parse_u64("--threads", lo.threads, 1, LARSON_MAX_THREADS, &v))
		goto out;
	if (lo.threads)
		cfg.threads = (unsigned)v;
	if (lo.sample && opt_parse_u64("--sample", lo.sample, 1, 1u << 20, &v))
		goto out;
	if (lo.sample)
		cfg.sample = (unsigned)v;
	if (lo.calls && parse_calls(lo.calls, &cfg.calls) != 0)
		goto out;
	if (!lo.allocators && (lo.runs || lo.baseline)) {
		opt_error("%s: %s needs --allocator", name, lo.runs ? "--runs" : "--baseline");
		goto out;
	}
	cfg.latency = lo.latency != 0;
	if (lo.allocators) {
		rc = larson_compare(&cfg, timeout);
		goto out;
	}
	static struct run_record rec;
	rec.cfg = cfg;
	snprintf(rec.allocator, sizeof rec.allocator, "%s", probe_allocator_name());
	record_env(&rec);
	if (workload_run(&cfg, &rec.res) != 0) {
		rc = BENCH_EXIT_FAILED;
		goto out;
	}
	if (lo.json) {
		report_run_json(stdout, &rec);
		fputc('\n', stdout);
	} else {
		report_run_text(stdout, &rec);
	}
	rc = BENCH_EXIT_OK;
out:
	poptFreeContext(con);
	free(args);
	return rc;
}

int cmd_larson(int argc, const char **argv)
{
	return cmd_workload(WL_LARSON, argc, argv);
}

int cmd_run(int argc, const char **argv)
{
	enum bench_workload wl;
	if (argc < 2 || argv[1][0] == '-') {
		if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-?") == 0)) {
			usage(stdout);
			return BENCH_EXIT_OK;
		}
		opt_error("run: no workload named; try '%s --help'", BENCH_PROG);
		return BENCH_EXIT_USAGE;
	}
	if (workload_by_name(argv[1], &wl) != 0) {
		opt_error("run: unknown workload '%s'; try '%s --help'", argv[1], BENCH_PROG);
		return BENCH_EXIT_USAGE;
	}
	return cmd_workload(wl, argc - 1, argv + 1);
}

int cmd_churn(int argc, const char **argv)
{
	return cmd_workload(WL_CHURN, argc, argv);
}
