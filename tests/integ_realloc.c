/*
 * integ_realloc.c - realloc keeps contents, calloc zeroes reused memory.
 *
 * realloc is driven up and down through every size range: tiny sizes, both
 * sides of every size-class boundary (found through malloc_usable_size), the
 * 32 KiB small/large boundary, large and multi-MiB sizes, on the allocating
 * thread and on another one.  calloc is checked on blocks that were dirtied
 * and freed just before, for small and large sizes.
 */
#include "config.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hakmem.h"
#include "testutil.h"

#define SMALL_MAX 32768
#define MAX_BOUNDARIES 4096

static size_t boundaries[MAX_BOUNDARIES]; /* distinct usable sizes <= 32 KiB */
static size_t nboundaries;

/* The class sizes, as the allocator reports them. */
static void find_boundaries(const struct tu_api *a)
{
	size_t last = 0;
	nboundaries = 0;
	for (size_t s = 1; s <= SMALL_MAX; s++) {
		void *p = a->malloc(s);
		TU_CHECK(p != NULL);
		size_t u = a->usable_size(p);
		TU_CHECK(u >= s, "%s usable_size(malloc(%zu)) = %zu", a->name, s, u);
		a->free(p);
		if (u != last) {
			TU_CHECK(u > last, "%s: usable size of %zu (%zu) below that of %zu (%zu)",
				 a->name, s, u, s - 1, last);
			TU_CHECK(nboundaries < MAX_BOUNDARIES);
			boundaries[nboundaries++] = u;
			last = u;
		}
	}
	TU_CHECK(nboundaries >= 8, "%s: only %zu distinct usable sizes up to 32 KiB",
		 a->name, nboundaries);
}

/* Resize p (holding *cur bytes of the pattern of key) to n bytes and check
 * the kept prefix; then refill it all. */
static char *resize(const struct tu_api *a, char *p, size_t *cur, size_t n,
		    uint64_t key)
{
	char *q = a->realloc(p, n);
	if (!q)
		TU_FAIL("%s realloc(%p, %zu) from %zu bytes returned NULL", a->name,
			(void *)p, n, *cur);
	size_t keep = *cur < n ? *cur : n;
	size_t off = tu_pattern_check(q, keep, key);
	if (off != SIZE_MAX)
		TU_FAIL("%s realloc %zu -> %zu bytes lost contents at offset %zu "
			"(old %p, new %p)", a->name, *cur, n, off, (void *)p, (void *)q);
	TU_CHECK(a->usable_size(q) >= n, "%s usable %zu < %zu", a->name,
		 a->usable_size(q), n);
	tu_pattern_fill(q, n, key);
	*cur = n;
	return q;
}

/* One sequence of sizes, walked up then down. */
static void walk(const struct tu_api *a, const size_t *sizes, size_t n, uint64_t key)
{
	size_t cur = sizes[0];
	char *p = a->malloc(cur);
	TU_CHECK(p != NULL);
	tu_pattern_fill(p, cur, key);
	for (size_t i = 1; i < n; i++)
		p = resize(a, p, &cur, sizes[i], key);
	for (size_t i = n; i-- > 0;)
		p = resize(a, p, &cur, sizes[i], key);
	tu_pattern_expect(p, cur, key, "after a realloc walk");
	a->free(p);
}

static void test_boundaries(const struct tu_api *a)
{
	find_boundaries(a);
	/* across each class boundary, both ways, from and to neighbours */
	for (size_t i = 0; i < nboundaries; i++) {
		size_t b = boundaries[i];
		size_t seq[] = { b > 1 ? b - 1 : 1, b, b + 1, b + 17, b };
		walk(a, seq, sizeof seq / sizeof seq[0], 0x100 + i);
		if (i + 1 < nboundaries) {
			size_t seq2[] = { b, boundaries[i + 1], b + 1, boundaries[i + 1] + 1 };
			walk(a, seq2, sizeof seq2 / sizeof seq2[0], 0x200 + i);
		}
	}
	/* tiny sizes one by one */
	size_t tiny[33];
	for (size_t i = 0; i < 33; i++)
		tiny[i] = i + 1;
	walk(a, tiny, 33, 0x300);

	/* the small/large boundary and beyond */
	static const size_t big[] = {
		1, 100, 4096, 32767, 32768, 32769, 40000, 65535, 65536, 65537,
		(size_t)1 << 20, ((size_t)1 << 20) + 1, (size_t)3 << 20,
		((size_t)5 << 20) + 12345, (size_t)12 << 20,
	};
	walk(a, big, sizeof big / sizeof big[0], 0x400);
	/* jumps straight between tiny and huge */
	static const size_t jumps[] = { 8, (size_t)6 << 20, 24, 32768, 16,
					(size_t)2 << 20, 32769, 1 };
	walk(a, jumps, sizeof jumps / sizeof jumps[0], 0x500);
	/* a slow crawl upwards through the large range: in-place growth paths */
	size_t crawl[64];
	for (size_t i = 0; i < 64; i++)
		crawl[i] = 30000 + i * 7919 * 13;
	walk(a, crawl, 64, 0x600);
}

/* realloc of a block allocated by another thread (remote realloc). */
struct remote_arg {
	const struct tu_api *a;
	char *p;
	size_t cur;
	size_t next;
	uint64_t key;
};

static void *remote_resize(void *varg)
{
	struct remote_arg *r = varg;
	r->p = resize(r->a, r->p, &r->cur, r->next, r->key);
	return NULL;
}

static void test_remote(const struct tu_api *a)
{
	static const size_t sizes[] = { 24, 500, 5000, 32768, 70000, (size_t)3 << 20,
					40, 16000 };
	enum { N = sizeof sizes / sizeof sizes[0] };
	struct remote_arg r = { .a = a, .cur = sizes[0], .key = 0x700 };
	r.p = a->malloc(r.cur);
	TU_CHECK(r.p != NULL);
	tu_pattern_fill(r.p, r.cur, r.key);
	for (size_t i = 1; i < N; i++) {
		pthread_t t;
		r.next = sizes[i];
		TU_CHECK(pthread_create(&t, NULL, remote_resize, &r) == 0);
		TU_CHECK(pthread_join(t, NULL) == 0);
		/* and back on this thread, by a little */
		r.p = resize(a, r.p, &r.cur, r.cur + 1, r.key);
	}
	a->free(r.p);
}

/* realloc of blocks from the aligned calls: their headers and mappings
 * differ from malloc's (the user pointer may sit far into the mapping). */
static void test_aligned_origin(const struct tu_api *a)
{
	static const size_t aligns[] = { 64, 4096, 65536, (size_t)1 << 20, (size_t)4 << 20 };
	static const size_t sizes[] = { 100, 5000, 40000, 300000 };
	static const size_t targets[] = { 50, 33000, 700000, (size_t)3 << 20, 20 };
	for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
		for (size_t j = 0; j < sizeof sizes / sizeof sizes[0]; j++) {
			void *v = NULL;
			TU_CHECK(a->posix_memalign(&v, aligns[i], sizes[j]) == 0);
			char *p = v;
			size_t cur = sizes[j];
			uint64_t key = 0x800 + i * 16 + j;
			tu_pattern_fill(p, cur, key);
			for (size_t k = 0; k < sizeof targets / sizeof targets[0]; k++)
				p = resize(a, p, &cur, targets[k], key);
			a->free(p);
		}
	}
}

/* Dirty count blocks of size n, free them, calloc the same, check zeros.
 * Returns how many callocs got one of the freed blocks back. */
static size_t calloc_after_dirty(const struct tu_api *a, size_t n, size_t count)
{
	enum { MAXC = 64 };
	char *dirty[MAXC];
	size_t reused = 0;
	TU_CHECK(count <= MAXC);
	for (size_t i = 0; i < count; i++) {
		dirty[i] = a->malloc(n);
		TU_CHECK(dirty[i] != NULL, "%s malloc(%zu)", a->name, n);
		memset(dirty[i], 0xff, a->usable_size(dirty[i]));
	}
	for (size_t i = 0; i < count; i++)
		a->free(dirty[i]);
	for (size_t i = 0; i < count; i++) {
		/* alternate how the size is split between the two factors */
		char *z = (i % 2 || n % 8) ? a->calloc(1, n) : a->calloc(n / 8, 8);
		TU_CHECK(z != NULL, "%s calloc for %zu bytes", a->name, n);
		for (size_t j = 0; j < count; j++)
			reused += z == dirty[j];
		if (!tu_all_zero(z, n)) {
			size_t off = 0;
			while (off < n && !z[off])
				off++;
			TU_FAIL("%s calloc(%zu bytes) = %p is not zeroed at offset %zu "
				"(reused dirty block: %s)", a->name, n, (void *)z, off,
				reused ? "yes" : "no");
		}
		dirty[i] = z; /* keep it, so the next calloc needs another block */
	}
	for (size_t i = 0; i < count; i++)
		a->free(dirty[i]);
	return reused;
}

/* Freed blocks of a size class come back to the next allocations of that
 * class: otherwise this test would not test reuse at all. */
static void calloc_small_after_dirty(const struct tu_api *a, size_t n, size_t count)
{
	TU_CHECK(calloc_after_dirty(a, n, count) > 0, "%s: no calloc(%zu) reused a freed block",
		 a->name, n);
}

static uint64_t purged_bytes(void)
{
	struct hak_stats st;
	TU_CHECK(hak_stats_get(&st, sizeof st) == 0);
	return st.purged_bytes;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	TU_CHECK(clock_gettime(CLOCK_MONOTONIC, &ts) == 0);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* HAKMEM_PURGE_DELAY_MS as the library reads it (hakmem(7)). */
static uint64_t purge_delay_ms(void)
{
	const char *v = getenv("HAKMEM_PURGE_DELAY_MS");
	return v ? tu_parse_u64("HAKMEM_PURGE_DELAY_MS", v) : 200;
}

/* Freed large blocks go to the span cache and come back to the next large
 * allocation of about their size (hakmem(7): HAKMEM_LARGE_CACHE_MB; a span
 * of more than a quarter of it is unmapped at once): the reused span must
 * be zeroed as well.  The cache is emptied first (a trim), so that it has
 * room and nothing in it or in the page pool comes of purge age during the
 * calls.  Then, unless the purge delay passed meanwhile (this thread was
 * not running), a freed span comes back, from the cache: at the same
 * address, and without a byte unmapped (purged) in between. */
static void calloc_large_after_dirty(const struct tu_api *a, size_t n, size_t count,
				     int cached)
{
	hak_malloc_trim(0);
	uint64_t purged = purged_bytes(), t0 = now_ms();
	size_t reused = calloc_after_dirty(a, n, count);
	uint64_t purged_since = purged_bytes() - purged;
	if (!cached || now_ms() - t0 >= purge_delay_ms())
		return;
	TU_CHECK(reused > 0 && purged_since == 0,
		 "%s: calloc(%zu) after %zu frees: %zu reused, %" PRIu64 " bytes unmapped "
		 "meanwhile: the span cache did not give a freed span back", a->name, n,
		 count, reused, purged_since);
}

static void test_calloc(const struct tu_api *a)
{
	for (size_t i = 0; i < nboundaries; i++) {
		calloc_small_after_dirty(a, boundaries[i], 16);
		if (boundaries[i] > 1)
			calloc_small_after_dirty(a, boundaries[i] - 1, 4);
	}
	static const size_t large[] = { 32769, 40000, 65536, 100000, (size_t)1 << 20,
					(size_t)4 << 20 };
	for (size_t i = 0; i < sizeof large / sizeof large[0]; i++)
		calloc_large_after_dirty(a, large[i], 3, 1);
	calloc_large_after_dirty(a, ((size_t)16 << 20) + 8, 3, 0); /* too big to cache */
	/* a reused large block with the same size class of span, many times */
	for (int i = 0; i < 20; i++)
		calloc_large_after_dirty(a, (size_t)(200000 + i * 4096), 1, 1);
}

int main(void)
{
	static tu_api_test *const tests[] = { test_boundaries, test_remote,
						test_aligned_origin, test_calloc, NULL };

	tu_run_api_tests(tests);
	printf("integ_realloc: ok (%zu size classes seen)\n", nboundaries);
	return 0;
}
