/*
 * bench.h - shared types and cross-file prototypes of hakmem-bench.
 *
 * hakmem-bench never links libhakmem: it measures whatever allocator is
 * loaded in its process (LD_PRELOAD), and compares allocators by re-running
 * itself in child processes with a different LD_PRELOAD each.
 *
 * Prototypes are grouped under the file that defines them.
 */
#ifndef HAKMEM_BENCH_H
#define HAKMEM_BENCH_H

#ifdef HAVE_CONFIG_H
#include "config.h" /* first: it defines _GNU_SOURCE */
#endif

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>
#include <sys/types.h>
#include <time.h>

#include <popt.h>

#define BENCH_PROG "hakmem-bench"

/* Exit codes: usage errors are distinguished from failed runs. */
#define BENCH_EXIT_OK 0
#define BENCH_EXIT_FAILED 1
#define BENCH_EXIT_USAGE 2

/* The workloads a run can do (hakmem-bench(1) says which public program
 * each models). */
enum bench_workload {
	WL_LARSON,     /* the published Larson & Krishnan program (larson.c) */
	WL_CHURN,      /* thread churn: chains of short-lived threads (churn.c) */
	WL_XMALLOC,    /* producers allocate, consumers free (xmalloc.c) */
	WL_FALSESHARE, /* objects written by threads, Hoard's cache-scratch/-thrash */
	WL_SIMPLE,     /* one thread, malloc/free loops of several depths (simple.c) */
	WL_BUFFERS,    /* big buffers, N live, filled (buffers.c) */
	WL_COUNT
};

/* false-sharing: whose objects the threads write. */
enum fs_mode {
	FS_PASSIVE, /* each thread first frees an object the main thread gave it */
	FS_ACTIVE,  /* each thread allocates its own from the start */
};

/* buffers: what is done to a new buffer. */
enum buf_fill {
	FILL_WRITE, /* write every byte (malloc-large) */
	FILL_ZERO,  /* allocate it with calloc */
	FILL_NONE,  /* leave it untouched */
};

/* Defaults of the Larson workload: the published program's run of the seed
 * report, `larson 10 2048 32768 1000 100 _ 4`, but 2 s long. */
#define LARSON_DEF_THREADS 4
#define LARSON_DEF_CHUNKS 1000
#define LARSON_DEF_ROUNDS 100   /* a generation does ROUNDS x CHUNKS ops */
#define LARSON_DEF_MIN 2048
#define LARSON_DEF_MAX 32768
#define LARSON_DEF_SECONDS 2.0
#define LARSON_DEF_SEED 4141    /* the seed of mimalloc-bench's larson runs */
#define LARSON_DEF_SAMPLE 64 /* time 1 in this many calls with --latency */
/* The published generator draws from [0, LARSON_RNG_RANGE): a slice or a
 * size range larger than that would leave blocks or sizes never drawn. */
#define LARSON_RNG_RANGE 714025u
#define LARSON_MAX_SEED 2147483647u /* the published program reads an int */

/* Defaults of the churn workload (hakmem-bench's old "larson" variant). */
#define CHURN_DEF_ROUNDS 10000  /* ops in a thread's life */
#define CHURN_DEF_SEED 1

#define LARSON_MAX_THREADS 1024
#define LARSON_MAX_CHUNKS (1u << 24)
#define LARSON_MAX_SIZE ((uint64_t)1 << 30)
#define LARSON_MAX_SECONDS 3600.0

#define RUN_DEF_TIMEOUT 60.0 /* seconds a child may run past its --seconds */

/* The calls a larson op makes (--calls): the published source's two
 * builds, and larson-sized. */
enum larson_calls {
	CALLS_NEW,    /* operator new[] / delete[]: mimalloc-bench's build (-DCPP) */
	CALLS_SIZED,  /* new[] / sized delete[]: mimalloc-bench's larson-sized */
	CALLS_MALLOC, /* malloc / free: larson.cpp built without -DCPP */
};
const char *calls_name(enum larson_calls c); /* main.c */

/* What one run does (larson or churn; the fields mean what hakmem-bench(1)
 * says for each). */
struct wl_cfg {
	enum bench_workload workload;
	unsigned threads;   /* larson: slices worked at once; churn: chains */
	unsigned chunks;    /* live blocks per thread */
	unsigned rounds;    /* larson: a generation does rounds x chunks ops;
			     * churn: ops in one thread's life */
	uint64_t min, max;  /* block sizes: larson [min, max), churn [min, max] */
	double seconds;     /* timed phase */
	uint64_t seed;
	bool check;         /* larson: tag and check every block (churn always) */
	enum larson_calls calls; /* larson: what allocates and frees */
	uint64_t size;      /* xmalloc: object size (0: the published mix);
			     * false-sharing: object size; simple: first size */
	unsigned writes;    /* false-sharing: writes of each byte of an object */
	enum fs_mode mode;  /* false-sharing */
	unsigned live;      /* buffers: buffers live at once per thread */
	enum buf_fill fill; /* buffers */
	bool latency;       /* sample per-call latency */
	unsigned sample;    /* with latency: time 1 in sample calls */
};

/* A latency summary in nanoseconds (valid when count > 0). */
struct lat_summary {
	uint64_t count;
	double p50, p99, p999, max;
};

/* Allocator counters as read from hak_stats_get (valid when present). */
struct alloc_counters {
	bool present;
	double page_reuse_pct;
	uint64_t pages_from_os, pages_reused;
	uint64_t pending_enqueued, pending_drained, adoptions;
	uint64_t lease_refusals, remote_frees;
};

/* What one run measured. */
struct wl_result {
	uint64_t ops;           /* free+malloc pairs in the timed phase */
	uint64_t warmup_ops;    /* larson: the main thread's mallocs before the threads */
	double elapsed;         /* seconds of the timed phase */
	double ops_per_sec;
	uint64_t threads_created; /* thread generations, including the first */
	long peak_rss_kb;       /* -1 when unknown */
	struct alloc_counters ctr;
	bool has_latency;
	struct lat_summary lat_malloc, lat_free;
};

/* The keys of a run's JSON object, as printed by report_run_json and read
 * back by the parent from a child. */
struct run_record {
	char allocator[256];
	char strategy[256];      /* HAKMEM_DRAIN of the run, "" when unset */
	long period;            /* HAKMEM_DRAIN_PERIOD, -1 when unset */
	struct wl_cfg cfg;
	struct wl_result res;
};

/* options.c: value parsers; each prints one error line and returns -1 on
 * bad input. */
int opt_parse_u64(const char *opt, const char *s, uint64_t lo, uint64_t hi, uint64_t *out);
int opt_parse_size(const char *opt, const char *s, uint64_t lo, uint64_t hi, uint64_t *out);
int opt_parse_double(const char *opt, const char *s, double lo, double hi, double *out);
int opt_check_workload(const struct wl_cfg *cfg);
void opt_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char **opt_split_list(const char *s, size_t *n); /* comma list, free with opt_free_list */
void opt_free_list(char **v, size_t n);
/* The workload options shared by larson and sweep, as a popt sub-table
 * that fills opt_workload; opt_workload_finish checks and converts them. */
struct opt_workload {
	char *chunks, *rounds, *min, *max, *seconds, *seed, *timeout;
	char *size, *writes, *mode, *live, *fill;
};
extern struct opt_workload opt_workload;
/* Each workload's own options (popt sub-tables); larson's is also sweep's. */
extern const struct poptOption opt_workload_table[], opt_churn_table[], opt_xmalloc_table[],
	opt_falseshare_table[], opt_simple_table[], opt_buffers_table[];
/* Fill cfg from the options, with cfg->workload's defaults. */
int opt_workload_finish(struct wl_cfg *cfg, double *timeout);
/* Take every option of con, the popt context of subcommand cmd: 0, or on a
 * usage error -1 after one line on stderr, with con freed. */
int opt_popt_parse(const char *cmd, void *con);

/* One file per workload; each runs cfg in this process and fills res (ops,
 * elapsed, ops_per_sec, threads_created, peak RSS, counters), or returns -1
 * after one line. */
int larson_run(const struct wl_cfg *cfg, struct wl_result *res);
int churn_run(const struct wl_cfg *cfg, struct wl_result *res);
int xmalloc_run(const struct wl_cfg *cfg, struct wl_result *res);
int falseshare_run(const struct wl_cfg *cfg, struct wl_result *res);
int simple_run(const struct wl_cfg *cfg, struct wl_result *res);
int buffers_run(const struct wl_cfg *cfg, struct wl_result *res);

/* workload.c: the table of workloads and what they share. */
struct wl_info {
	const char *name;
	const char *what;  /* one line for --help and the suite's table */
	struct wl_cfg defaults;
	int (*run)(const struct wl_cfg *, struct wl_result *);
};
extern const struct wl_info wl_table[WL_COUNT];
const char *workload_name(enum bench_workload w);
int workload_by_name(const char *name, enum bench_workload *w); /* 0, or -1 */
int workload_run(const struct wl_cfg *cfg, struct wl_result *res);
const char *fs_mode_name(enum fs_mode m);
const char *fill_name(enum buf_fill f);
/* CLOCK_MONOTONIC in ns; inline, since --latency times single calls with it */
static inline uint64_t wl_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
void wl_sleep(double seconds);
/* Tagged blocks (larson --check, churn): a pattern derived from the address
 * in the first WL_TAG_BYTES bytes and in the last byte; wl_tag_check names
 * the workload and aborts if a live block was overwritten. */
#define WL_TAG_BYTES 16
void wl_tag_write(void *p, size_t size);
void wl_tag_check(const void *p, size_t size, const char *workload);
void *wl_map(size_t bytes);  /* zeroed memory outside the allocator, or NULL */
void wl_unmap(void *p, size_t bytes);
/* The end of a run: elapsed time (since t0, or as measured), rate, peak
 * RSS and counters into res (res->ops already summed). */
void wl_finish(struct wl_result *res, uint64_t t0);
void wl_finish_elapsed(struct wl_result *res, double elapsed);

/* latency.c: per-thread sample buffers, outside the allocator under test. */
struct lat_buf;
struct lat_buf *lat_buf_new(size_t capacity);
void lat_buf_free(struct lat_buf *b);
/* Merge and summarise the samples (allocates: call after the timed phase). */
void lat_summarise(struct lat_buf *const *bufs, size_t n, struct lat_summary *out);
/* Record one sample; returns true when the buffer is now full, and the
 * caller should lat_halve it and sample half as often, so that samples stay
 * spread over the whole run. */
bool lat_record(struct lat_buf *b, uint64_t ns);
void lat_halve(struct lat_buf *b);

/* probe.c: what the process knows about itself. */
void probe_counters(struct alloc_counters *c);
long probe_peak_rss_kb(void);
const char *probe_allocator_name(void); /* from LD_PRELOAD, or "default" */

/* json.c: JSON through jansson.  jw_ calls set a key of object o (a NULL
 * string and a number that is not finite become null); jw_dump writes v and
 * a newline, and releases v. */
json_t *jw_object(void);
json_t *jw_array(void);
void jw_str(json_t *o, const char *key, const char *val);
void jw_u64(json_t *o, const char *key, uint64_t v);
void jw_num(json_t *o, const char *key, double v);
void jw_int(json_t *o, const char *key, long v);
void jw_null(json_t *o, const char *key);
void jw_set(json_t *o, const char *key, json_t *v); /* takes v */
void jw_append(json_t *arr, json_t *v);            /* takes v */
int jw_dump(FILE *f, json_t *v);
struct json_kv {
	char key[64];
	bool is_null, is_str;
	double num;
	char str[256];
};
/* Parse one flat object of strings, numbers and nulls; -1 on syntax error. */
int json_parse_flat(const char *text, struct json_kv **kv, size_t *n);
const struct json_kv *json_find(const struct json_kv *kv, size_t n, const char *key);

/* report.c: printing. */
void report_run_text(FILE *f, const struct run_record *r);
void report_run_json(FILE *f, const struct run_record *r);
json_t *report_run_object(const struct run_record *r);
int report_record_from_json(const char *text, struct run_record *r);
struct alloc_summary {
	const char *name;
	size_t runs, failed;
	double median, min, max, ratio;
	const struct run_record *median_run; /* NULL if no run succeeded */
};
void report_compare_text(FILE *f, const struct alloc_summary *s, size_t n, const char *baseline,
			 bool latency);
void report_compare_json(FILE *f, const struct alloc_summary *s, size_t n,
			 const struct run_record *runs, const char *const *run_alloc, size_t nruns,
			 const char *baseline);
double report_median(double *v, size_t n); /* sorts v */
void report_fmt_count(char *buf, size_t len, bool present, uint64_t v);

/* runner.c: allocators and child processes. */
struct allocator {
	char name[256];  /* as given */
	char path[4096]; /* library to preload, "" for glibc */
};
/* Resolve name (hakmem, glibc, mimalloc, jemalloc, tcmalloc or a path).
 * Returns 0, 1 when a known peer is not installed (note printed), -1 on
 * error (message printed). */
int runner_resolve(const char *name, struct allocator *a);
struct child_env {
	const char *name;  /* HAKMEM_* */
	const char *value;
};
struct child_outcome {
	bool ok;
	char what[160]; /* on failure: one line saying what happened */
};
/* Run cfg's workload in a child with the allocator preloaded and the extra
 * environment set; fill rec from its JSON. */
int runner_run(const struct allocator *a, const struct wl_cfg *cfg,
		      const struct child_env *env, size_t nenv, double timeout,
		      struct run_record *rec, struct child_outcome *out);

/* main.c / sweep.c: the sub-commands. */
int cmd_run(int argc, const char **argv); /* run WORKLOAD ... */
int cmd_larson(int argc, const char **argv);
int cmd_churn(int argc, const char **argv);
int cmd_suite(int argc, const char **argv);
/* main.c: resolve a comma list of allocators and find the baseline among
 * them (NULL: the first); 0, or -1 after one line. */
int compare_allocators(const char *list, const char *baseline, struct allocator **out,
		       size_t *n, size_t *base);
int cmd_sweep(int argc, const char **argv);
int cmd_child(int argc, const char **argv);

/* sweep.c: one point of a sweep. */
#define SWEEP_MAX_TUNABLES 8
struct sweep_point {
	const char *strategy;   /* HAKMEM_DRAIN value */
	long period;            /* HAKMEM_DRAIN_PERIOD, -1 = library default */
	unsigned threads;
	const char *values[SWEEP_MAX_TUNABLES]; /* of the --set tunables */
	bool ok;
	char error[160];
	struct run_record rec;
};
struct sweep_tunable {
	char *name;
	char **values;
	size_t nvalues;
};

/* plot.c: throughput and page reuse against period, one line per strategy
 * (and thread count, and setting).  Returns 0, or -1 with a message. */
int plot_sweep(const char *file, const struct sweep_point *pts, size_t n,
	       const struct sweep_tunable *tun, size_t ntun);

/* plot.c: the suite's ratios, one bar chart per workload (ops and rss hold
 * nwl x nalloc ratios, NAN where unknown).  plot_suite_check: can FILE be
 * drawn at all (its suffix, gnuplot); 0, or -1 after one line. */
int plot_suite_check(const char *file);
int plot_suite(const char *file, const char *const *workloads, size_t nwl,
	       const char *const *allocs, size_t nalloc, const double *ops, const double *rss,
	       const char *baseline);

#endif /* HAKMEM_BENCH_H */
