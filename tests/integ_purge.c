/*
 * integ_purge.c - memory goes back to the OS without the program asking.
 *
 *   integ_purge idle   four threads allocate ~96 MiB of small, mid and
 *                      large blocks, then everything is freed and the
 *                      program only sleeps: within a few seconds at most a
 *                      quarter of the peak growth may stay resident.
 *   integ_purge trim   the same, then malloc_trim(0): the memory is
 *                      returned at once, and malloc_trim reports it.
 *   integ_purge holder the main thread allocates ~64 MiB of 22-32 KiB
 *                      blocks (two to a page), frees one block of each
 *                      page itself (its pages then stay its own rather
 *                      than float), other threads free the rest, and the
 *                      main thread then only sleeps (it never calls the
 *                      allocator again, like Larson's): its pages, emptied
 *                      by remote frees, must still go back to the OS, so
 *                      at most a quarter of the growth stays resident.
 *   integ_purge floated the same, but the main thread frees none of the
 *                      blocks: its full pages float (see heap.c) before
 *                      the other threads free every block in them, and
 *                      must go back to the OS all the same.
 *   integ_purge exited the same blocks, allocated by a second thread that
 *                      frees one of each page and exits once the main
 *                      thread has freed the rest: nobody allocates any more,
 *                      and the exited thread's emptied pages (kept for a
 *                      successor to adopt, see heap.c) must go back to the
 *                      OS all the same.
 *   integ_purge keep   small and mid blocks only, run with a purge delay of
 *                      an hour (HAKMEM_PURGE_DELAY_MS=3600000): the free
 *                      pages beyond twice the pool's share of memory in
 *                      use (HAKMEM_PURGE_KEEP_PCT, at least 4 MiB) must go
 *                      back anyway, so at most KEEP_SLACK_KB stay resident.
 *   integ_purge class  one thread's 32 KiB blocks (two to a page) and then
 *                      another's 16 KiB blocks go back to the pool, each
 *                      block's first byte written; 32 KiB blocks allocated
 *                      again must come from the pages of 32 KiB blocks, not
 *                      from the newer ones of 16 KiB, and no memory of
 *                      those pages that was not resident may become so (run
 *                      with an hour's purge delay, so that the pool keeps
 *                      every page).
 *
 * Resident size is the process's own (/proc/self/statm, read without
 * allocating: in holder mode the main thread must not call malloc), so this
 * measures what users see.  The idle case polls: the purge thread runs after
 * HAKMEM_PURGE_DELAY_MS (200 ms by default), a little later on a busy
 * machine; the test fails only if the memory never comes back.
 */
#include <fcntl.h>
#include <malloc.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define THREADS 4
#define BLOCKS 6000 /* per thread: ~24 MiB each */

static void *blocks[THREADS][BLOCKS];
static bool small_only; /* keep mode: no large blocks (their cache is separate) */
/* keep mode: twice the pool's 4 MiB minimum (what goes back at once is
 * beyond twice the keep), plus room for heaps and metadata */
#define KEEP_SLACK_KB (16 * 1024)

/* The second field of /proc/self/statm (resident pages), in KiB. */
static long rss_kb(void)
{
	char buf[128];
	int fd = open("/proc/self/statm", O_RDONLY);
	TU_CHECK(fd >= 0);
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	TU_CHECK(n > 0);
	buf[n] = 0;
	const char *p = buf;
	while (*p && *p != ' ')
		p++;
	long res = 0;
	for (p++; *p >= '0' && *p <= '9'; p++)
		res = res * 10 + (*p - '0');
	TU_CHECK(res > 0, "statm: %s", buf);
	return res * (sysconf(_SC_PAGESIZE) / 1024);
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

/* holder and floated modes: the main thread's blocks; the other threads
 * free the odd ones (holder) or all of them (floated) */
#define HELD 2400
static void *held[HELD];
static int held_step;

static void *drop_held(void *arg)
{
	long t = (long)arg;
	for (long i = held_step * t + held_step - 1; i < HELD; i += held_step * THREADS)
		free(held[i]);
	return NULL;
}

static void alloc_held(void)
{
	struct tu_rng r;
	tu_rng_seed(&r, 12);
	for (int i = 0; i < HELD; i++) {
		size_t n = tu_rng_range(&r, 22000, 32768);
		held[i] = malloc(n);
		TU_CHECK(held[i] != NULL);
		memset(held[i], 0x55, n);
	}
}

/* exited mode: the thread that allocates, and its steps with the main one */
static pthread_barrier_t steps;

static void *exited_thread(void *arg)
{
	(void)arg;
	alloc_held();
	pthread_barrier_wait(&steps); /* main: peak */
	for (int i = 0; i < HELD; i += 2)
		free(held[i]);
	pthread_barrier_wait(&steps); /* main frees the odd ones */
	pthread_barrier_wait(&steps);
	return NULL;
}

/* class mode: the blocks of each class (the first's pages are the ones
 * watched), and each thread's signal to free them and exit */
#define CLASS_N 64
static void *class_blocks[2][CLASS_N];
static const size_t class_size[2] = {32768, 16384};
static pthread_barrier_t class_allocated, class_go[2];

static void *class_thread(void *arg)
{
	long k = (long)arg;
	for (int i = 0; i < CLASS_N; i++) {
		class_blocks[k][i] = malloc(class_size[k]);
		TU_CHECK(class_blocks[k][i] != NULL);
		*(char *)class_blocks[k][i] = 1;
	}
	pthread_barrier_wait(&class_allocated);
	pthread_barrier_wait(&class_go[k]);
	for (int i = 0; i < CLASS_N; i++)
		free(class_blocks[k][i]);
	return NULL;
}

static uintptr_t page_of(const void *p)
{
	return (uintptr_t)p & ~(uintptr_t)0xffff;
}

static bool in_class_pages(const void *p)
{
	for (int i = 0; i < CLASS_N; i++)
		if (page_of(p) == page_of(class_blocks[0][i]))
			return true;
	return false;
}

/* Resident 4 KiB pages in the 64 KiB pages of the first class's blocks
 * (each counted once per block: both blocks of a page count it twice). */
static long class_resident(void)
{
	long n = 0;
	unsigned char vec[16];
	for (int i = 0; i < CLASS_N; i++) {
		TU_CHECK(mincore((void *)page_of(class_blocks[0][i]), 0x10000, vec) == 0);
		for (int j = 0; j < 16; j++)
			n += vec[j] & 1;
	}
	return n;
}

static int class_reuse(void)
{
	pthread_t t[2];
	TU_CHECK(pthread_barrier_init(&class_allocated, NULL, 3) == 0);
	for (long k = 0; k < 2; k++) {
		TU_CHECK(pthread_barrier_init(&class_go[k], NULL, 2) == 0);
		TU_CHECK(pthread_create(&t[k], NULL, class_thread, (void *)k) == 0);
	}
	pthread_barrier_wait(&class_allocated);
	/* the 32 KiB blocks' pages go back to the pool first, then the 16 KiB
	 * blocks' ones, which are then the newest there */
	for (int k = 0; k < 2; k++) {
		pthread_barrier_wait(&class_go[k]);
		TU_CHECK(pthread_join(t[k], NULL) == 0);
	}
	long before = class_resident();
	void *again[CLASS_N];
	int outside = 0;
	for (int i = 0; i < CLASS_N; i++) {
		again[i] = malloc(class_size[0]);
		TU_CHECK(again[i] != NULL);
		*(char *)again[i] = 2;
		outside += !in_class_pages(again[i]);
	}
	long after = class_resident();
	printf("class: %d of %d blocks of %zu bytes outside the pages that held that size; "
	       "resident 4 KiB pages there %ld before, %ld after\n",
	       outside, CLASS_N, class_size[0], before, after);
	TU_CHECK(outside == 0, "%d of %d blocks of %zu bytes came from pages of another size",
		 outside, CLASS_N, class_size[0]);
	TU_CHECK(after == before, "reusing the pages made %ld KiB resident that was not",
		 (after - before) * 4 / 2);
	for (int i = 0; i < CLASS_N; i++)
		free(again[i]);
	return 0;
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
	bool floated = !strcmp(mode, "floated");
	bool holder = floated || !strcmp(mode, "holder");
	bool exited = !strcmp(mode, "exited");
	if (!strcmp(mode, "class"))
		return class_reuse();
	if (!trim && !keep && !holder && !exited && strcmp(mode, "idle")) {
		fprintf(stderr, "usage: integ_purge idle|trim|keep|holder|floated|exited|class\n");
		return 2;
	}
	small_only = keep;
	long base = rss_kb();
	long peak;
	if (exited) {
		pthread_t t;
		TU_CHECK(pthread_barrier_init(&steps, NULL, 2) == 0);
		TU_CHECK(pthread_create(&t, NULL, exited_thread, NULL) == 0);
		pthread_barrier_wait(&steps);
		peak = rss_kb();
		pthread_barrier_wait(&steps);
		for (int i = 1; i < HELD; i += 2)
			free(held[i]);
		pthread_barrier_wait(&steps);
		TU_CHECK(pthread_join(t, NULL) == 0);
	} else if (holder) {
		alloc_held();
		peak = rss_kb();
		held_step = floated ? 1 : 2;
		for (int i = 0; i < HELD && !floated; i += 2)
			free(held[i]);
		run_threads(drop_held); /* remote frees */
	} else {
		run_threads(fill);
		peak = rss_kb();
		run_threads(drop); /* freed by the threads that allocated them */
	}
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
