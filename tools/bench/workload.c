/*
 * workload.c - the table of hakmem-bench's workloads (names, defaults, the
 * function that runs each) and what their implementations share: a clock,
 * memory outside the allocator under test, tagged blocks, and the end of a
 * run.
 */
#include "bench.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define MIB ((uint64_t)1 << 20)

/* Defaults: each workload's published run, shortened to LARSON_DEF_SECONDS
 * where the published program is time-bound, and made time-bound where it
 * is not (hakmem-bench(1) says which program and arguments each models). */
const struct wl_info wl_table[WL_COUNT] = {
	[WL_LARSON] = {
		.name = "larson",
		.what = "published Larson: slices of blocks handed to new threads",
		.run = larson_run,
		.defaults = { .workload = WL_LARSON, .threads = LARSON_DEF_THREADS,
			      .chunks = LARSON_DEF_CHUNKS, .rounds = LARSON_DEF_ROUNDS,
			      .min = LARSON_DEF_MIN, .max = LARSON_DEF_MAX,
			      .seconds = LARSON_DEF_SECONDS, .seed = LARSON_DEF_SEED,
			      .sample = LARSON_DEF_SAMPLE },
	},
	[WL_CHURN] = {
		.name = "churn",
		.what = "thread churn: chains of short-lived threads",
		.run = churn_run,
		.defaults = { .workload = WL_CHURN, .threads = LARSON_DEF_THREADS,
			      .chunks = LARSON_DEF_CHUNKS, .rounds = CHURN_DEF_ROUNDS,
			      .min = LARSON_DEF_MIN, .max = LARSON_DEF_MAX,
			      .seconds = LARSON_DEF_SECONDS, .seed = CHURN_DEF_SEED,
			      .check = true, .calls = CALLS_MALLOC,
			      .sample = LARSON_DEF_SAMPLE },
	},
	[WL_XMALLOC] = {
		.name = "xmalloc",
		.what = "producers allocate, consumers free: every free remote",
		.run = xmalloc_run,
		/* mimalloc-bench: xmalloc-test -w PROCS -t 5 -s 64 */
		.defaults = { .workload = WL_XMALLOC, .threads = 2, .size = 64,
			      .seconds = LARSON_DEF_SECONDS, .calls = CALLS_MALLOC },
	},
	[WL_FALSESHARE] = {
		.name = "false-sharing",
		.what = "small objects written by other threads (cache-scratch)",
		.run = falseshare_run,
		/* mimalloc-bench: cache-scratch P 1000 1 2000000 P, time-bound */
		.defaults = { .workload = WL_FALSESHARE, .threads = 2, .size = 8,
			      .writes = 1000, .mode = FS_PASSIVE,
			      .seconds = LARSON_DEF_SECONDS, .calls = CALLS_MALLOC },
	},
	[WL_SIMPLE] = {
		.name = "simple",
		.what = "one thread: malloc/free loops of depth 25..1600",
		.run = simple_run,
		/* glibc's bench-malloc-simple 16: sizes 16, 32, 64 */
		.defaults = { .workload = WL_SIMPLE, .threads = 1, .size = 16,
			      .seconds = LARSON_DEF_SECONDS, .calls = CALLS_MALLOC },
	},
	[WL_BUFFERS] = {
		.name = "buffers",
		.what = "big buffers allocated, filled and freed (malloc-large)",
		.run = buffers_run,
		/* mimalloc-bench: malloc-large, 2 MiB written byte by byte */
		.defaults = { .workload = WL_BUFFERS, .threads = 1, .live = 1,
			      .min = 2 * MIB, .max = 2 * MIB, .fill = FILL_WRITE,
			      .seconds = LARSON_DEF_SECONDS, .seed = 1, .calls = CALLS_MALLOC },
	},
};

const char *workload_name(enum bench_workload w)
{
	return (unsigned)w < WL_COUNT ? wl_table[w].name : "?";
}

int workload_by_name(const char *name, enum bench_workload *w)
{
	for (int i = 0; i < WL_COUNT; i++)
		if (strcmp(name, wl_table[i].name) == 0) {
			*w = (enum bench_workload)i;
			return 0;
		}
	return -1;
}

int workload_run(const struct wl_cfg *cfg, struct wl_result *res)
{
	return wl_table[cfg->workload].run(cfg, res);
}

const char *calls_name(enum larson_calls c)
{
	return c == CALLS_MALLOC ? "malloc" : c == CALLS_SIZED ? "sized" : "new";
}

const char *fs_mode_name(enum fs_mode m)
{
	return m == FS_ACTIVE ? "active" : "passive";
}

const char *fill_name(enum buf_fill f)
{
	return f == FILL_ZERO ? "zero" : f == FILL_NONE ? "none" : "write";
}

static inline unsigned char tag_byte(const void *p, size_t i)
{
	uintptr_t a = (uintptr_t)p;
	return (unsigned char)((a >> 4) ^ (a >> 12) ^ i);
}

void wl_tag_write(void *p, size_t size)
{
	unsigned char *c = p;
	size_t n = size < WL_TAG_BYTES ? size : WL_TAG_BYTES;
	for (size_t i = 0; i < n; i++)
		c[i] = tag_byte(p, i);
	if (size > WL_TAG_BYTES)
		c[size - 1] = tag_byte(p, size);
}

void wl_tag_check(const void *p, size_t size, const char *workload)
{
	const unsigned char *c = p;
	size_t n = size < WL_TAG_BYTES ? size : WL_TAG_BYTES;
	bool ok = size <= WL_TAG_BYTES || c[size - 1] == tag_byte(p, size);
	for (size_t i = 0; ok && i < n; i++)
		ok = c[i] == tag_byte(p, i);
	if (!ok) {
		fprintf(stderr, "%s: %s: block %p of %zu bytes was overwritten while live\n",
			BENCH_PROG, workload, p, size);
		abort();
	}
}

void wl_sleep(double seconds)
{
	struct timespec ts = {
		.tv_sec = (time_t)seconds,
		.tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9),
	};
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

void *wl_map(size_t bytes)
{
	void *p = mmap(NULL, bytes ? bytes : 1, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void wl_unmap(void *p, size_t bytes)
{
	if (p)
		munmap(p, bytes ? bytes : 1);
}

void wl_finish_elapsed(struct wl_result *res, double elapsed)
{
	res->elapsed = elapsed;
	res->ops_per_sec = elapsed > 0 ? (double)res->ops / elapsed : 0;
	probe_counters(&res->ctr);
	res->peak_rss_kb = probe_peak_rss_kb();
}

void wl_finish(struct wl_result *res, uint64_t t0)
{
	wl_finish_elapsed(res, (double)(wl_now_ns() - t0) / 1e9);
}
