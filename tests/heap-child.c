/*
 * heap-child.c - a process for the heap profile tests (test-heap-profile.sh)
 * to attach hakmem-stat --heap to.  Built with -g and without frame
 * pointers, twice: linked against libhakmem (heap-child), and not
 * (heap-child-plain, which the test starts with LD_PRELOAD).
 *
 * keep_small() keeps KEEP_SMALL bytes live in blocks of SMALL_SIZE,
 * keep_large() KEEP_LARGE bytes in blocks of LARGE_SIZE, and churn()
 * allocates CHURN bytes and frees them all (each divided by the argument
 * DIV, default 1); then it prints
 *   ready pid=P keep_small=BYTES keep_small_line=L keep_large=BYTES
 *         keep_large_line=L
 * and leak_step() leaks LEAK_STEP bytes (blocks of LEAK_SIZE) every
 * LEAK_MS, until it got SIGUSR2 and has leaked LEAK_MIN / DIV bytes, or has
 * leaked LEAK_MAX / DIV; then it prints
 *   leaked bytes=B leak_line=L
 * and waits for SIGUSR1 (or alarm() ends it).  The _line values are the
 * lines of the malloc calls, which the profile must show.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* At the default rate (one sample per 2 MiB) each site holds about 320
 * samples or more: a standard deviation of 5.6% or less.  Only the first
 * page of a block is written, so that the process stays near 400 MiB. */
#define SMALL_SIZE 16000
#define KEEP_SMALL ((size_t)640 << 20)
#define LARGE_SIZE ((size_t)1 << 20)
#define KEEP_LARGE ((size_t)1 << 30)
#define LEAK_SIZE 16000
#define LEAK_STEP ((size_t)8 << 20)
#define LEAK_MIN ((size_t)640 << 20)
#define LEAK_MAX ((size_t)1920 << 20)
#define LEAK_MS 20
#define CHURN ((size_t)64 << 20)
#define CHURN_BATCH 64
#define LIFETIME_S 120

static size_t div_by = 1;
static void **kept_small, **kept_large;
static int line_small, line_large, line_leak;
static volatile sig_atomic_t go, enough;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		go = 1;
	else
		enough = 1;
}

static void *check(void *p, size_t size)
{
	if (!p) {
		fprintf(stderr, "heap-child: malloc(%zu) failed\n", size);
		exit(3);
	}
	return p;
}

__attribute__((noinline)) static size_t keep_small(void)
{
	size_t n = KEEP_SMALL / div_by / SMALL_SIZE;
	kept_small = check(calloc(n, sizeof *kept_small), n);
	for (size_t i = 0; i < n; i++) {
		line_small = __LINE__ + 1;
		char *p = check(malloc(SMALL_SIZE), SMALL_SIZE);
		p[0] = 1;
		kept_small[i] = p;
	}
	return n * SMALL_SIZE;
}

__attribute__((noinline)) static size_t keep_large(void)
{
	size_t n = KEEP_LARGE / div_by / LARGE_SIZE;
	kept_large = check(calloc(n, sizeof *kept_large), n);
	for (size_t i = 0; i < n; i++) {
		line_large = __LINE__ + 1;
		char *p = check(malloc(LARGE_SIZE), LARGE_SIZE);
		p[0] = 1;
		kept_large[i] = p;
	}
	return n * LARGE_SIZE;
}

/* Allocates CHURN bytes in batches, freeing each: nothing stays live. */
__attribute__((noinline)) static void churn(void)
{
	void *batch[CHURN_BATCH];
	for (size_t done = 0; done < CHURN / div_by;) {
		for (unsigned i = 0; i < CHURN_BATCH; i++, done += SMALL_SIZE)
			batch[i] = check(malloc(SMALL_SIZE), SMALL_SIZE);
		for (unsigned i = 0; i < CHURN_BATCH; i++)
			free(batch[i]);
	}
}

/* Leaks LEAK_STEP bytes: the pointers are dropped. */
__attribute__((noinline)) static size_t leak_step(void)
{
	size_t n = LEAK_STEP / LEAK_SIZE;
	for (size_t i = 0; i < n; i++) {
		line_leak = __LINE__ + 1;
		char *volatile p = check(malloc(LEAK_SIZE), LEAK_SIZE);
		p[0] = 1;
	}
	return n * LEAK_SIZE;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		div_by = (size_t)atol(argv[1]);
	if (div_by < 1 || div_by > 1024) {
		fprintf(stderr, "usage: heap-child [DIV]\n");
		return 2;
	}
	signal(SIGUSR1, on_signal);
	signal(SIGUSR2, on_signal);
	alarm(LIFETIME_S);
	size_t small = keep_small();
	size_t large = keep_large();
	churn();
	size_t leaked = 0;
	printf("ready pid=%ld keep_small=%zu keep_small_line=%d keep_large=%zu "
	       "keep_large_line=%d\n",
	       (long)getpid(), small, line_small, large, line_large);
	fflush(stdout);
	struct timespec pause = {.tv_sec = 0, .tv_nsec = LEAK_MS * 1000000L};
	while ((!enough || leaked < LEAK_MIN / div_by) && leaked < LEAK_MAX / div_by) {
		nanosleep(&pause, NULL);
		leaked += leak_step();
	}
	printf("leaked bytes=%zu leak_line=%d\n", leaked, line_leak);
	fflush(stdout);
	struct timespec tick = {.tv_sec = 0, .tv_nsec = 10000000L};
	while (!go)
		nanosleep(&tick, NULL);
	for (size_t i = 0; i < small / SMALL_SIZE; i++)
		free(kept_small[i]);
	for (size_t i = 0; i < large / LARGE_SIZE; i++)
		free(kept_large[i]);
	free(kept_small);
	free(kept_large);
	return 0;
}
