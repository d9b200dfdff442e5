/*
 * integ_prof.c - the entry points stay right for blocks the heap profile
 * samples (lib/prof.c serves them from the large tier).  Run by
 * test-prof.sh with HAKMEM_PROFILE_SAMPLE=1 (every allocation of a byte or
 * more is sampled) at every HAKMEM_CHECK level, and with a small interval
 * (a mix of sampled and page blocks):
 *  - malloc of every size class and of large sizes: usable size at least
 *    the request, contents kept, and at =1 every block counted as a large
 *    allocation (it was sampled);
 *  - posix_memalign, aligned_alloc, memalign, valloc at every power of two
 *    from 16 to 64 KiB: aligned, usable, contents kept;
 *  - calloc of a size whose last block was dirtied and freed: zero;
 *  - realloc chains growing and shrinking across the classes and the
 *    large sizes: contents kept;
 *  - four threads allocating and freeing each other's blocks (sample
 *    table insertions race), contents checked;
 *  - a fork child frees the sampled blocks it inherits and allocates more.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hakmem.h"
#include "testutil.h"

#define NBLOCKS 600
#define THREADS 4
#define THREAD_ROUNDS 3000

static bool every; /* HAKMEM_PROFILE_SAMPLE=1: every allocation sampled */

static uint64_t large_allocs(void)
{
	struct hak_stats st;
	TU_CHECK(hak_stats_get(&st, sizeof st) == 0);
	return st.large_allocs;
}

static size_t size_at(unsigned i)
{
	static const size_t big[] = {40000, 100000, 1u << 20, 5u << 20};
	if (i % 50 == 49)
		return big[(i / 50) % 4];
	return 1 + (size_t)i * 53 % 32768;
}

static void case_malloc(void)
{
	static char *p[NBLOCKS];
	uint64_t before = large_allocs();
	for (unsigned i = 0; i < NBLOCKS; i++) {
		size_t n = size_at(i);
		p[i] = malloc(n);
		TU_CHECK(p[i] != NULL, "malloc(%zu)", n);
		TU_CHECK(((uintptr_t)p[i] & 15) == 0, "malloc(%zu) = %p not 16-aligned", n,
			 (void *)p[i]);
		TU_CHECK(malloc_usable_size(p[i]) >= n, "usable %zu < %zu",
			 malloc_usable_size(p[i]), n);
		tu_pattern_fill(p[i], n, i);
	}
	uint64_t sampled = large_allocs() - before;
	if (every)
		TU_CHECK(sampled == NBLOCKS, "%llu of %d blocks counted as large (sampled)",
			 (unsigned long long)sampled, NBLOCKS);
	for (unsigned i = 0; i < NBLOCKS; i++) {
		tu_pattern_expect(p[i], size_at(i), i, "malloc block");
		free(p[i]);
	}
}

static void case_aligned(void)
{
	for (size_t align = 16; align <= 65536; align <<= 1) {
		for (size_t n = 1; n <= 40000; n = n * 3 + 7) {
			void *a = NULL, *b, *c, *d = NULL;
			TU_CHECK(posix_memalign(&a, align, n) == 0, "posix_memalign(%zu, %zu)",
				 align, n);
			b = aligned_alloc(align, n);
			c = memalign(align, n);
			if (align == 4096)
				d = valloc(n);
			TU_CHECK(b != NULL && c != NULL, "aligned_alloc/memalign(%zu, %zu)", align, n);
			void *all[] = {a, b, c, d};
			for (unsigned k = 0; k < 4; k++) {
				if (!all[k])
					continue;
				TU_CHECK(((uintptr_t)all[k] & (align - 1)) == 0,
					 "call %u align %zu size %zu: %p", k, align, n, all[k]);
				TU_CHECK(malloc_usable_size(all[k]) >= n, "usable %zu < %zu",
					 malloc_usable_size(all[k]), n);
				tu_pattern_fill(all[k], n, align + k);
			}
			for (unsigned k = 0; k < 4; k++)
				if (all[k]) {
					tu_pattern_expect(all[k], n, align + k, "aligned block");
					free(all[k]);
				}
		}
	}
}

static void case_calloc(void)
{
	for (size_t n = 8; n <= 300000; n = n * 2 + 24) {
		for (unsigned r = 0; r < 4; r++) {
			char *p = malloc(n);
			TU_CHECK(p != NULL);
			memset(p, 0xa5, n);
			free(p);
			char *q = calloc(1, n);
			TU_CHECK(q != NULL, "calloc(1, %zu)", n);
			TU_CHECK(tu_all_zero(q, n), "calloc(1, %zu) not zero", n);
			free(q);
		}
	}
}

static void case_realloc(void)
{
	static const size_t steps[] = {1,     24,     100,   900,   5000, 32768, 32769,
				       70000, 300000, 2000,  16,    40000, 8,     1u << 20,
				       100,   3u << 20, 64,  0};
	for (unsigned rep = 0; rep < 20; rep++) {
		char *p = NULL;
		size_t have = 0;
		for (unsigned i = 0; steps[i]; i++) {
			size_t n = steps[i];
			char *q = realloc(p, n);
			TU_CHECK(q != NULL, "realloc(%p, %zu)", (void *)p, n);
			if (have)
				tu_pattern_expect(q, have < n ? have : n, rep * 100 + i - 1,
						  "realloc'd block");
			TU_CHECK(malloc_usable_size(q) >= n);
			tu_pattern_fill(q, n, rep * 100 + i);
			p = q;
			have = n;
		}
		free(p);
	}
}

struct shared {
	pthread_mutex_t lock;
	char *slot[64];
	size_t size[64];
};

static void *worker(void *arg)
{
	struct shared *sh = arg;
	struct tu_rng r;
	tu_rng_seed(&r, (uint64_t)(uintptr_t)&r);
	for (unsigned k = 0; k < THREAD_ROUNDS; k++) {
		size_t n = tu_rng_range(&r, 1, k % 10 == 0 ? 100000 : 3000);
		char *p = malloc(n);
		TU_CHECK(p != NULL);
		memset(p, (int)(n & 0xff), n);
		unsigned i = (unsigned)tu_rng_range(&r, 0, 63);
		pthread_mutex_lock(&sh->lock);
		char *old = sh->slot[i];
		size_t on = sh->size[i];
		sh->slot[i] = p;
		sh->size[i] = n;
		pthread_mutex_unlock(&sh->lock);
		if (old) {
			for (size_t j = 0; j < on; j++)
				TU_CHECK(old[j] == (char)(on & 0xff), "block of %zu damaged at %zu",
					 on, j);
			free(old);
		}
	}
	return NULL;
}

static void case_threads(void)
{
	static struct shared sh = {.lock = PTHREAD_MUTEX_INITIALIZER};
	pthread_t t[THREADS];
	for (unsigned i = 0; i < THREADS; i++)
		TU_CHECK(pthread_create(&t[i], NULL, worker, &sh) == 0);
	for (unsigned i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	for (unsigned i = 0; i < 64; i++)
		free(sh.slot[i]);
}

static void case_fork(void)
{
	char *p[100];
	for (unsigned i = 0; i < 100; i++) {
		p[i] = malloc(size_at(i));
		tu_pattern_fill(p[i], size_at(i), i);
	}
	fflush(NULL);
	pid_t pid = fork();
	TU_CHECK(pid >= 0);
	if (pid == 0) {
		for (unsigned i = 0; i < 100; i++) {
			tu_pattern_expect(p[i], size_at(i), i, "block inherited by the child");
			free(p[i]);
		}
		for (unsigned i = 0; i < 100; i++)
			free(malloc(size_at(i)));
		_exit(0);
	}
	int status;
	TU_CHECK(waitpid(pid, &status, 0) == pid);
	TU_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status 0x%x", status);
	for (unsigned i = 0; i < 100; i++)
		free(p[i]);
}

int main(void)
{
	const char *s = getenv("HAKMEM_PROFILE_SAMPLE");
	every = s && !strcmp(s, "1");
	tu_set_context("HAKMEM_PROFILE_SAMPLE=%s HAKMEM_CHECK=%s", s ? s : "(default)",
		       getenv("HAKMEM_CHECK") ? getenv("HAKMEM_CHECK") : "(default)");
	tu_context_on_abort();
	/* the first allocation may start the background thread, whose own
	 * allocations (glibc's thread set-up) are sampled too: before counting */
	free(malloc(1));
	case_malloc();
	case_aligned();
	case_calloc();
	case_realloc();
	case_threads();
	case_fork();
	printf("ok: integ_prof (HAKMEM_PROFILE_SAMPLE=%s HAKMEM_CHECK=%s)\n", s ? s : "default",
	       getenv("HAKMEM_CHECK") ? getenv("HAKMEM_CHECK") : "default");
	return 0;
}
