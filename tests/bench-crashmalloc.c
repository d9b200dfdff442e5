/*
 * bench-crashmalloc.c - a test-only malloc for LD_PRELOAD that misbehaves
 * on purpose, so the tests can check how hakmem-bench reports a child whose
 * allocator crashes or hangs.  It serves every call from glibc and counts
 * malloc calls; past BENCH_CRASHMALLOC_AFTER calls (default 20000) it
 *   BENCH_CRASHMALLOC=crash (default)  raises SIGSEGV;
 *   BENCH_CRASHMALLOC=hang             blocks the calling thread forever.
 * Never installed (check_LTLIBRARIES).
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_AFTER 20000UL

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t nmemb, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);
extern void __libc_free(void *ptr);

static atomic_ulong calls;

/* getenv does not allocate, so it is safe here. */
static void maybe_misbehave(void)
{
	const char *after = getenv("BENCH_CRASHMALLOC_AFTER");
	unsigned long limit = after ? strtoul(after, NULL, 10) : DEFAULT_AFTER;
	if (atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed) < limit)
		return;
	const char *mode = getenv("BENCH_CRASHMALLOC");
	if (mode && strcmp(mode, "hang") == 0)
		for (;;)
			pause();
	raise(SIGSEGV);
}

void *malloc(size_t size)
{
	maybe_misbehave();
	return __libc_malloc(size);
}

void *calloc(size_t nmemb, size_t size)
{
	return __libc_calloc(nmemb, size);
}

void *realloc(void *ptr, size_t size)
{
	return __libc_realloc(ptr, size);
}

void free(void *ptr)
{
	__libc_free(ptr);
}
