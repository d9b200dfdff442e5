/*
 * integ_errors.c - failure returns, errno, and the edge cases of zero sizes
 * through the real entry points (the standard names, which must be
 * hakmem's, and the hak_ names).
 *
 * Reference behaviour is glibc's (checked against glibc 2.36 and the 2.38
 * source):
 *  - malloc/calloc/realloc/reallocarray/valloc/pvalloc/memalign that cannot
 *    be satisfied (or overflow) return NULL with errno ENOMEM; realloc and
 *    reallocarray leave the old block alone.
 *  - posix_memalign returns EINVAL unless the alignment is a power of two
 *    multiple of sizeof(void *), and ENOMEM when it cannot allocate; it
 *    never writes *memptr on failure.
 *  - memalign rounds an alignment that is not a power of two up to the next
 *    one; only an alignment above SIZE_MAX/2+1 is EINVAL.
 *  - aligned_alloc: glibc >= 2.38 (and C17 DR 460) returns NULL/EINVAL for
 *    an alignment that is not a power of two (0 included); glibc <= 2.37
 *    treated it like memalign.  Either is accepted here; a misaligned block
 *    or another errno is not.
 *  - realloc(p, 0) frees p and returns NULL; realloc(NULL, n) is malloc(n).
 *  - Every successful call leaves errno alone, free included.
 *  - Real exhaustion (under RLIMIT_AS) ends in NULL/ENOMEM, not a crash,
 *    and allocation works again once memory is freed.
 */
#include "config.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hakmem.h"
#include "testutil.h"

#define SENTINEL 12345 /* errno value no call sets */

/* volatile so that the compiler cannot fold or warn about the sizes */
static volatile size_t vmax = SIZE_MAX;
static volatile size_t vhalf = SIZE_MAX / 2 + 1;

static void expect_enomem(void *p, const char *api, const char *call)
{
	if (p != NULL)
		TU_FAIL("%s: %s returned %p, want NULL", api, call, p);
	if (errno != ENOMEM)
		TU_FAIL("%s: %s set errno %d (%s), want ENOMEM", api, call, errno,
			strerror(errno));
}

#define ENOMEM_CASE(A, expr)                         \
	do {                                         \
		errno = 0;                           \
		void *r_ = (expr);                   \
		expect_enomem(r_, (A)->name, #expr); \
	} while (0)

static void test_enomem(const struct tu_api *a)
{
	size_t half = vhalf, max = vmax;

	ENOMEM_CASE(a, a->malloc(max));
	ENOMEM_CASE(a, a->malloc(max - 4095));
	ENOMEM_CASE(a, a->malloc(max - 64));
	ENOMEM_CASE(a, a->malloc(half));       /* PTRDIFF_MAX + 1 */
	ENOMEM_CASE(a, a->calloc(half, 2));    /* product wraps to 0 */
	ENOMEM_CASE(a, a->calloc(2, half));
	ENOMEM_CASE(a, a->calloc(max, max));
	ENOMEM_CASE(a, a->calloc((size_t)1 << 32, ((size_t)1 << 32) + 1));
	ENOMEM_CASE(a, a->calloc(1, max));
	ENOMEM_CASE(a, a->reallocarray(NULL, half, 2));
	ENOMEM_CASE(a, a->reallocarray(NULL, 3, max / 2));
	ENOMEM_CASE(a, a->realloc(NULL, max));
	ENOMEM_CASE(a, a->valloc(max));
	ENOMEM_CASE(a, a->pvalloc(max));        /* rounding up overflows */
	ENOMEM_CASE(a, a->pvalloc(max - 100));
	ENOMEM_CASE(a, a->memalign(64, max));
	ENOMEM_CASE(a, a->memalign((size_t)1 << 20, max - 10));
	ENOMEM_CASE(a, a->aligned_alloc(4096, max - 4095));

	/* realloc and reallocarray failures keep the old block and its data. */
	for (size_t sz = 24; sz <= (size_t)1 << 20; sz *= 8) {
		char *p = a->malloc(sz);
		TU_CHECK(p != NULL, "%s malloc(%zu)", a->name, sz);
		tu_pattern_fill(p, sz, sz);
		ENOMEM_CASE(a, a->realloc(p, max));
		ENOMEM_CASE(a, a->realloc(p, max - 4095));
		ENOMEM_CASE(a, a->reallocarray(p, half, 4));
		ENOMEM_CASE(a, a->reallocarray(p, max, max));
		tu_pattern_expect(p, sz, sz, "block kept by a failed realloc");
		a->free(p);
	}

	/* posix_memalign: ENOMEM is returned, *memptr untouched */
	void *mp = (void *)0x1234;
	int rc = a->posix_memalign(&mp, 16, max);
	TU_CHECK(rc == ENOMEM, "%s posix_memalign(16, SIZE_MAX) = %d", a->name, rc);
	TU_CHECK(mp == (void *)0x1234, "%s: *memptr written on failure", a->name);
	rc = a->posix_memalign(&mp, (size_t)1 << 24, max - 100);
	TU_CHECK(rc == ENOMEM, "%s posix_memalign(16M, huge) = %d", a->name, rc);
	TU_CHECK(mp == (void *)0x1234, "%s: *memptr written on failure", a->name);
}

/* For a block p of size bytes that call(align, size) returned with errno at
 * SENTINEL: fail unless errno is still SENTINEL and p is aligned to align
 * rounded up to a power of two; then write all of p and free it. */
static void expect_rounded_up(const struct tu_api *a, const char *call, size_t align,
			      char *p, size_t size)
{
	size_t want = 1;
	while (want < align)
		want <<= 1;
	TU_CHECK(errno == SENTINEL, "%s %s(%zu) succeeded but set errno", a->name, call, align);
	TU_CHECK((uintptr_t)p % want == 0, "%s %s(%zu) = %p, not %zu-aligned", a->name, call,
		 align, (void *)p, want);
	memset(p, 0xa5, size);
	a->free(p);
}

static void test_einval(const struct tu_api *a)
{
	static const size_t bad_pm[] = { 0, 1, 2, 3, 4, 5, 7, 12, 24, 48, 96,
					 4095, 4097, 3 << 20 };
	for (size_t i = 0; i < sizeof bad_pm / sizeof bad_pm[0]; i++) {
		void *mp = (void *)0x5678;
		int rc = a->posix_memalign(&mp, bad_pm[i], 64);
		if (rc != EINVAL)
			TU_FAIL("%s posix_memalign(align %zu) = %d, want EINVAL",
				a->name, bad_pm[i], rc);
		if (mp != (void *)0x5678)
			TU_FAIL("%s posix_memalign(align %zu) wrote *memptr", a->name,
				bad_pm[i]);
	}
	{
		void *mp = (void *)0x5678;
		int rc = a->posix_memalign(&mp, vhalf + 1, 64);
		TU_CHECK(rc == EINVAL, "%s posix_memalign(SIZE_MAX/2+2) = %d", a->name, rc);
		TU_CHECK(mp == (void *)0x5678);
		rc = a->posix_memalign(&mp, vmax, 64);
		TU_CHECK(rc == EINVAL, "%s posix_memalign(SIZE_MAX) = %d", a->name, rc);
		TU_CHECK(mp == (void *)0x5678);
	}

	/* alignments that no power of two can satisfy */
	const size_t huge[] = { vhalf + 1, vmax };
	for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
		errno = 0;
		TU_CHECK(a->memalign(huge[i], 64) == NULL && errno == EINVAL,
			 "%s memalign(%#zx): errno %d", a->name, huge[i], errno);
		errno = 0;
		TU_CHECK(a->aligned_alloc(huge[i], 64) == NULL && errno == EINVAL,
			 "%s aligned_alloc(%#zx): errno %d", a->name, huge[i], errno);
	}

	/* memalign: a non-power-of-two alignment is rounded up (glibc) */
	static const size_t odd[] = { 3, 5, 12, 24, 48, 100, 1000, 5000, 65537 };
	for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
		errno = SENTINEL;
		char *p = a->memalign(odd[i], 100);
		TU_CHECK(p != NULL, "%s memalign(%zu, 100): errno %d", a->name, odd[i], errno);
		expect_rounded_up(a, "memalign", odd[i], p, 100);
	}
	errno = SENTINEL;
	void *p0 = a->memalign(0, 100); /* glibc: same as malloc */
	TU_CHECK(p0 != NULL && errno == SENTINEL, "%s memalign(0, 100)", a->name);
	a->free(p0);

	/* aligned_alloc: EINVAL (glibc >= 2.38) or memalign's rounding */
	static const size_t bad_aa[] = { 0, 3, 5, 12, 24, 48, 100, 1000, 65537 };
	for (size_t i = 0; i < sizeof bad_aa / sizeof bad_aa[0]; i++) {
		errno = SENTINEL;
		char *p = a->aligned_alloc(bad_aa[i], 128);
		if (p == NULL)
			TU_CHECK(errno == EINVAL, "%s aligned_alloc(%zu, 128): NULL with errno %d",
				 a->name, bad_aa[i], errno);
		else
			expect_rounded_up(a, "aligned_alloc", bad_aa[i], p, 128);
	}
}

/* Each successful call with errno set to a sentinel must leave it. */
#define KEEP_ERRNO(A, stmt)                                                     \
	do {                                                                    \
		errno = SENTINEL;                                               \
		stmt;                                                           \
		if (errno != SENTINEL)                                          \
			TU_FAIL("%s: `%s' changed errno to %d", (A)->name, #stmt, errno); \
	} while (0)

static void test_errno_kept(const struct tu_api *a)
{
	static const size_t sizes[] = { 0, 1, 8, 16, 17, 100, 1024, 1025, 4096, 8192,
					32767, 32768, 32769, 65536, 200000,
					(size_t)1 << 20, (size_t)5 << 20 };
	enum { N = sizeof sizes / sizeof sizes[0] };
	void *p[N], *q;
	size_t i;

	for (int round = 0; round < 3; round++) {
		for (i = 0; i < N; i++) {
			KEEP_ERRNO(a, p[i] = a->malloc(sizes[i]));
			TU_CHECK(p[i] != NULL, "%s malloc(%zu)", a->name, sizes[i]);
			KEEP_ERRNO(a, TU_CHECK(a->usable_size(p[i]) >= sizes[i]));
		}
		for (i = 0; i < N; i++) /* grow each into the next range */
			KEEP_ERRNO(a, p[i] = a->realloc(p[i], sizes[i] * 3 + 1));
		for (i = 0; i < N; i++) /* and shrink */
			KEEP_ERRNO(a, p[i] = a->realloc(p[i], sizes[i] / 2 + 1));
		for (i = 0; i < N; i++)
			KEEP_ERRNO(a, p[i] = a->reallocarray(p[i], 3, sizes[i] + 1));
		for (i = 0; i < N; i++)
			KEEP_ERRNO(a, a->free(p[i]));
		for (i = 0; i < N; i++)
			KEEP_ERRNO(a, p[i] = a->calloc(1, sizes[i]));
		for (i = 0; i < N; i++)
			KEEP_ERRNO(a, a->free(p[i]));
		for (i = 0; i < N; i++) {
			size_t al = (size_t)16 << (i % 10);
			KEEP_ERRNO(a, TU_CHECK(a->posix_memalign(&p[i], al, sizes[i]) == 0));
		}
		for (i = 0; i < N; i++)
			KEEP_ERRNO(a, a->free(p[i]));
		for (i = 0; i < N; i++) {
			size_t al = (size_t)8 << (i % 14);
			KEEP_ERRNO(a, p[i] = a->aligned_alloc(al, sizes[i]));
			TU_CHECK(p[i] != NULL);
			KEEP_ERRNO(a, a->free(p[i]));
			KEEP_ERRNO(a, p[i] = a->memalign(al, sizes[i]));
			TU_CHECK(p[i] != NULL);
			KEEP_ERRNO(a, a->free(p[i]));
			KEEP_ERRNO(a, p[i] = a->valloc(sizes[i]));
			TU_CHECK(p[i] != NULL);
			KEEP_ERRNO(a, a->free(p[i]));
			KEEP_ERRNO(a, p[i] = a->pvalloc(sizes[i]));
			TU_CHECK(p[i] != NULL);
			KEEP_ERRNO(a, a->free(p[i]));
		}
		/* after a failure, success must not reset errno either */
		errno = 0;
		q = a->malloc(vmax);
		TU_CHECK(q == NULL && errno == ENOMEM);
		q = a->malloc(10);
		TU_CHECK(q != NULL && errno == ENOMEM, "%s: errno %d after success", a->name,
			 errno);
		a->free(q);
		KEEP_ERRNO(a, a->free(NULL));
		KEEP_ERRNO(a, TU_CHECK(a->usable_size(NULL) == 0));
	}
	/* trimming returns memory with madvise/munmap, which must not leak errno */
	KEEP_ERRNO(a, (void)hak_malloc_trim(0));
	KEEP_ERRNO(a, (void)malloc_trim(0));
}

static void test_zero_sizes(const struct tu_api *a)
{
	enum { N = 64 };
	void *p[N];
	int i, j;

	/* malloc(0) and calloc with a zero factor: unique, freeable pointers */
	for (i = 0; i < N; i++) {
		errno = SENTINEL;
		p[i] = (i % 3 == 0) ? a->malloc(0)
		     : (i % 3 == 1) ? a->calloc(0, 16) : a->calloc(16, 0);
		TU_CHECK(p[i] != NULL, "%s: zero-size allocation %d returned NULL", a->name, i);
		TU_CHECK(errno == SENTINEL);
		for (j = 0; j < i; j++)
			TU_CHECK(p[i] != p[j], "%s: zero-size allocations %d and %d share %p",
				 a->name, i, j, p[i]);
	}
	for (i = 0; i < N; i++)
		a->free(p[i]);

	/* realloc(NULL, n) is malloc(n) */
	for (size_t n = 0; n <= ((size_t)1 << 20); n = n ? n * 4 : 1) {
		char *q = a->realloc(NULL, n);
		TU_CHECK(q != NULL, "%s realloc(NULL, %zu)", a->name, n);
		TU_CHECK(a->usable_size(q) >= n);
		memset(q, 0x11, n);
		a->free(q);
	}

	/* realloc(p, 0) frees p and returns NULL (glibc); errno untouched.
	 * Repeat enough that a leak would show in the in-use counter. */
	struct hak_stats before, after;
	TU_CHECK(hak_stats_get(&before, sizeof before) == 0);
	for (i = 0; i < 2000; i++) {
		size_t n = (i % 2) ? 200 : 100000;
		char *q = a->malloc(n);
		TU_CHECK(q != NULL);
		errno = SENTINEL;
		void *r = a->realloc(q, 0);
		TU_CHECK(r == NULL, "%s realloc(p, 0) returned %p, want NULL (glibc)",
			 a->name, r);
		TU_CHECK(errno == SENTINEL, "%s realloc(p, 0) set errno %d", a->name, errno);
	}
	TU_CHECK(hak_stats_get(&after, sizeof after) == 0);
	TU_CHECK(after.bytes_in_use <= before.bytes_in_use + 100000,
		 "%s realloc(p, 0) did not free: bytes in use %llu -> %llu", a->name,
		 (unsigned long long)before.bytes_in_use,
		 (unsigned long long)after.bytes_in_use);

	/* glibc's reallocarray(p, 0, n) is realloc(p, 0): it frees too. */
	char *q = a->malloc(50);
	TU_CHECK(q != NULL);
	TU_CHECK(a->reallocarray(q, 0, 50) == NULL);

	TU_CHECK(a->usable_size(NULL) == 0, "%s malloc_usable_size(NULL)", a->name);
	a->free(NULL);
}

/* errno is thread-local: a thread's failures and successes stay its own */
static void *errno_thread(void *arg)
{
	const struct tu_api *a = arg;
	for (int i = 0; i < 1000; i++) {
		errno = SENTINEL + i;
		void *p = a->malloc((size_t)(i * 97) % 70000);
		TU_CHECK(p != NULL && errno == SENTINEL + i);
		a->free(p);
		TU_CHECK(errno == SENTINEL + i, "free changed errno in a thread");
		TU_CHECK(a->malloc(vmax) == NULL && errno == ENOMEM);
	}
	return NULL;
}

static void test_errno_threads(const struct tu_api *a)
{
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		TU_CHECK(pthread_create(&t[i], NULL, errno_thread, (void *)a) == 0);
	for (int i = 0; i < 4; i++)
		TU_CHECK(pthread_join(t[i], NULL) == 0);
}

/* Real exhaustion: under an address-space limit, allocation must end in
 * NULL with ENOMEM (never a crash), and work again once memory is freed. */
struct oom_arg {
	const struct tu_api *a;
	size_t min, max; /* request sizes */
	size_t margin;   /* address space left above the start, bytes */
};

static size_t vm_size_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long pages = 0;
	TU_CHECK(f != NULL);
	TU_CHECK(fscanf(f, "%lu", &pages) == 1);
	fclose(f);
	return (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
}

static void oom_child(void *varg)
{
	const struct oom_arg *o = varg;
	const struct tu_api *a = o->a;
	enum { MAXP = 1 << 20 };
	static void *ptrs[MAXP];
	size_t n = 0, bytes = 0, sz;
	struct rlimit lim;

	/* memory the parent's earlier cases freed may still be mapped, and
	 * be unmapped by a purge during the loop below (sooner on a loaded
	 * machine): that would widen the limit's margin past MAXP blocks */
	hak_malloc_trim(0);
	size_t vm_start = vm_size_bytes();
	lim.rlim_cur = lim.rlim_max = vm_start + o->margin;
	TU_CHECK(setrlimit(RLIMIT_AS, &lim) == 0);
	for (;;) {
		sz = o->min + (n * 7919) % (o->max - o->min + 1);
		errno = SENTINEL;
		void *p = a->malloc(sz);
		if (!p) {
			TU_CHECK(errno == ENOMEM, "%s malloc(%zu) failed with errno %d after %zu "
				 "bytes", a->name, sz, errno, bytes);
			break;
		}
		TU_CHECK(errno == SENTINEL);
		memset(p, 0x3c, sz < 4096 ? sz : 4096);
		TU_CHECK(n < MAXP, "no ENOMEM after %zu allocations (%zu bytes; address space %zu "
			 "bytes at the start, %zu now, limit %zu)", n, bytes, vm_start,
			 vm_size_bytes(), (size_t)lim.rlim_cur);
		ptrs[n++] = p;
		bytes += sz;
	}
	/* out of memory: calloc of the size malloc could not serve fails
	 * too, and cleanly (nothing was freed since: no block of that size
	 * is free, no mapping came back to the address space) */
	errno = 0;
	void *q = a->calloc(1, sz);
	TU_CHECK(q == NULL && errno == ENOMEM, "%s calloc(1, %zu) right after malloc(%zu) "
		 "failed: %p, errno %d", a->name, sz, sz, q, errno);
	for (size_t i = 0; i < n; i++)
		a->free(ptrs[i]);
	hak_malloc_trim(0);
	/* usable again */
	for (size_t i = 0; i < 1000; i++) {
		void *p = a->malloc(o->min + i % (o->max - o->min + 1));
		TU_CHECK(p != NULL, "%s: malloc fails after freeing everything", a->name);
		a->free(p);
	}
}

static void test_exhaustion(const struct tu_api *a)
{
	static const size_t ranges[][3] = {
		{ 16, 512, 96 },                   /* small classes only */
		{ 1025, 32768, 96 },               /* mid classes */
		{ 40000, (size_t)4 << 20, 96 },    /* large spans */
		/* room for arenas but not for what an arena may map besides
		 * (the 64 MiB table of arenas outside the span): a success
		 * after that refusal must still leave errno alone */
		{ 16, 512, 16 },
		{ 1025, 32768, 16 },
	};
	for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
		struct oom_arg o = { .a = a, .min = ranges[i][0], .max = ranges[i][1],
				     .margin = ranges[i][2] << 20 };
		struct tu_child c;
		tu_run_child(oom_child, &o, 120, &c);
		if (!WIFEXITED(c.status) || WEXITSTATUS(c.status) != 0)
			TU_FAIL("%s: exhaustion with sizes %zu..%zu, %zu MiB left: child status "
				"%#x, stderr: %s", a->name, o.min, o.max, o.margin >> 20, c.status,
				c.err);
	}
}

int main(void)
{
	static tu_api_test *const tests[] = { test_enomem, test_einval, test_errno_kept,
						test_zero_sizes, test_errno_threads,
						test_exhaustion, NULL };

	tu_run_api_tests(tests);
	printf("integ_errors: ok\n");
	return 0;
}
