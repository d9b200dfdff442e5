/*
 * integ_dlopen.c - libhakmem loaded with dlopen into a running process.
 *
 * The library keeps its thread-local storage small and initial-exec, so
 * that dlopen still finds room for it in the static TLS surplus; then its
 * hak_ calls must work from the loading thread and from new threads
 * (malloc itself stays glibc's: dlopen does not interpose).  The library
 * path comes from HAKMEM_TEST_LIB (set by `make check').
 */
#include "config.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static void *(*d_malloc)(size_t);
static void (*d_free)(void *);
static size_t (*d_usable)(void *);
static void *(*d_realloc)(void *, size_t);

static void *worker(void *arg)
{
	uint64_t key = (uintptr_t)arg;
	char *keep[64];
	for (unsigned round = 0; round < 20; round++) {
		for (unsigned i = 0; i < 64; i++) {
			size_t n = 1 + (size_t)tu_mix64(key + i + round * 64) % 40000;
			keep[i] = d_malloc(n);
			TU_CHECK(keep[i] != NULL);
			TU_CHECK(d_usable(keep[i]) >= n);
			tu_pattern_fill(keep[i], n, key + i);
			keep[i] = d_realloc(keep[i], n + 100);
			TU_CHECK(keep[i] != NULL);
			tu_pattern_expect(keep[i], n, key + i, "after hak_realloc");
		}
		for (unsigned i = 0; i < 64; i++)
			d_free(keep[i]);
	}
	return NULL;
}

int main(void)
{
	const char *path = getenv("HAKMEM_TEST_LIB");
	if (!path || !*path)
		tu_skip("HAKMEM_TEST_LIB is not set (run through make check)");
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h)
		TU_FAIL("dlopen(%s): %s", path, dlerror());
	d_malloc = (void *(*)(size_t))dlsym(h, "hak_malloc");
	d_free = (void (*)(void *))dlsym(h, "hak_free");
	d_usable = (size_t (*)(void *))dlsym(h, "hak_malloc_usable_size");
	d_realloc = (void *(*)(void *, size_t))dlsym(h, "hak_realloc");
	TU_CHECK(d_malloc && d_free && d_usable && d_realloc, "missing hak_ symbols");

	worker((void *)1);
	pthread_t t[3];
	for (uintptr_t i = 0; i < 3; i++)
		TU_CHECK(pthread_create(&t[i], NULL, worker, (void *)(i + 2)) == 0);
	for (unsigned i = 0; i < 3; i++)
		TU_CHECK(pthread_join(t[i], NULL) == 0);
	/* glibc's malloc is still usable beside it */
	char *g = malloc(1000);
	TU_CHECK(g != NULL);
	free(g);
	printf("integ_dlopen: ok\n");
	return 0;
}
