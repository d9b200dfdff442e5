/*
 * integ_purge.c - memory goes back to the OS without the program asking.
 *
 *   integ_purge idle   four threads allocate ~96 MiB of small, mid and
 *                      large blocks, then everything is freed and the
 *                      program only sleeps: within a few seconds at most a
 *                      quarter of the peak growth may stay resident.
 *   integ_purge trim   the same, then malloc_trim(0): the memory is
 *                      returned at once, and malloc_trim reports it.
 *   integ_purge keep   small and mid blocks only, run with a purge delay of
 *                      an hour (HAKMEM_PURGE_DELAY_MS=3600000): the free
 *                      pages beyond the pool's share of memory in use
 *                      (HAKMEM_PURGE_KEEP_PCT, at least 4 MiB) must go back
 *                      anyway, so at most KEEP_SLACK_KB stay resident.
 *
 * Resident size is the process's own (/proc/self/statm), so this measures
 * what users see.  The idle case polls: the purge thread runs after
 * HAKMEM_PURGE_DELAY_MS (200 ms by default), a little later on a busy
 * machine; the test fails only if the memory never comes back.
 */
#include <malloc.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

#define THREADS 4
#define BLOCKS 6000 /* per thread: ~24 MiB each */

static void *blocks[THREADS][BLOCKS];
static bool small_only; /* keep mode: no large blocks (their cache is separate) */
/* keep mode: the pool's 4 MiB minimum, plus room for heaps and metadata */
#define KEEP_SLACK_KB (12 * 1024)

static long rss_kb(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long size = 0, res = 0;
	TU_CHECK(f != NULL);
	TU_CHECK(fscanf(f, "%ld %ld", &size, &res) == 2);
	fclose(f);
	return res * 4;
}

static void *fill(void *arg)
{
	long t = (long)arg;
	struct tu_rng r;
	tu_rng_seed(&r, (uint64_t)t + 1);
	for (int i = 0; i < BLOCKS; i++) {
		uint64_t kind = tu_rng_range(&r, 0, small_only ? 8 : 9);
		size_t n = kind < 5   ? tu_rng_range(&r, 16, 1024)
			   : kind < 9 ? tu_rng_range(&r, 2048, 32768)
				      : tu_rng_range(&r, 40000, 120000);
		blocks[t][i] = malloc(n);
		TU_CHECK(blocks[t][i] != NULL);
		memset(blocks[t][i], 0x77, n); /* make it resident */
	}
	return NULL;
}

static void *drop(void *arg)
{
	long t = (long)arg;
	for (int i = 0; i < BLOCKS; i++)
		free(blocks[t][i]);
	return NULL;
}

static void run_threads(void *(*fn)(void *))
{
	pthread_t th[THREADS];
	for (long t = 0; t < THREADS; t++)
		TU_CHECK(pthread_create(&th[t], NULL, fn, (void *)t) == 0);
	for (int t = 0; t < THREADS; t++)
		TU_CHECK(pthread_join(th[t], NULL) == 0);
}

int main(int argc, char **argv)
{
	tu_require_hakmem_malloc();
	const char *mode = argc > 1 ? argv[1] : "";
	bool trim = !strcmp(mode, "trim");
	bool keep = !strcmp(mode, "keep");
	if (!trim && !keep && strcmp(mode, "idle")) {
		fprintf(stderr, "usage: integ_purge idle|trim|keep\n");
		return 2;
	}
	small_only = keep;
	long base = rss_kb();
	run_threads(fill);
	long peak = rss_kb();
	run_threads(drop); /* freed by the threads that allocated them */
	long growth = peak - base;
	TU_CHECK(growth > 50 * 1024, "the workload grew RSS by only %ld KiB", growth);
	long now = rss_kb();
	int waited_ms = 0;
	if (trim) {
		TU_CHECK(malloc_trim(0) == 1, "malloc_trim(0) released nothing");
		now = rss_kb();
	} else {
		long goal = keep ? KEEP_SLACK_KB : growth / 4;
		struct timespec tick = {.tv_sec = 0, .tv_nsec = 100 * 1000 * 1000};
		for (int i = 0; i < 100 && now - base > goal; i++) {
			nanosleep(&tick, NULL);
			waited_ms += 100;
			now = rss_kb();
		}
	}
	printf("%s: base %ld KiB, peak %ld KiB, after %s %ld KiB (%d ms): %.1f%% of the growth kept\n",
	       mode, base, peak, trim ? "malloc_trim" : "idling", now, waited_ms,
	       100.0 * (double)(now - base) / (double)growth);
	TU_CHECK(now - base <= (keep ? KEEP_SLACK_KB : growth / 4),
		 "%ld of %ld KiB of growth still resident", now - base, growth);
	return 0;
}
