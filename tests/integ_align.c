/*
 * integ_align.c - alignment and usable size of every allocation call.
 *
 * posix_memalign for every power of two from sizeof(void *) to 16 MiB,
 * aligned_alloc and memalign for every power of two from 1 to 4 MiB, valloc
 * and pvalloc: each block must be aligned, have a usable size at least the
 * request, and be writable through its whole usable size without touching
 * any other live block (every block holds its own pattern until freed).
 * Plain malloc must return 16-byte aligned blocks and malloc_usable_size
 * must cover the request for many sizes.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hakmem.h"
#include "testutil.h"

#define MAX_LIVE 64

struct live {
	char *p;
	size_t n; /* bytes filled: the whole usable size */
	uint64_t key;
	const char *call;
	size_t align, req;
};

static struct live live[MAX_LIVE];
static size_t nlive;
static uint64_t next_key = 1;

/* Blocks above SPARSE_MIN get the pattern on their first and last
 * SPARSE_EDGE bytes and on SPARSE_SPOT bytes every SPARSE_STEP between:
 * page faults dominate the cost of big blocks, so most pages stay
 * untouched. */
#define SPARSE_MIN ((size_t)256 << 10)
#define SPARSE_EDGE ((size_t)16 << 10)
#define SPARSE_STEP ((size_t)100 << 10) /* not a power of two: varied offsets */
#define SPARSE_SPOT 64

static void fill_block(const struct live *b)
{
	if (b->n <= SPARSE_MIN) {
		tu_pattern_fill(b->p, b->n, b->key);
		return;
	}
	tu_pattern_fill(b->p, SPARSE_EDGE, b->key);
	tu_pattern_fill(b->p + b->n - SPARSE_EDGE, SPARSE_EDGE, b->key + 1);
	for (size_t off = SPARSE_EDGE; off + SPARSE_SPOT <= b->n - SPARSE_EDGE;
	     off += SPARSE_STEP)
		tu_pattern_fill(b->p + off, SPARSE_SPOT, b->key + off);
}

static void check_block(const struct live *b)
{
	if (b->n <= SPARSE_MIN) {
		tu_pattern_expect(b->p, b->n, b->key, "aligned block");
		return;
	}
	tu_pattern_expect(b->p, SPARSE_EDGE, b->key, "aligned block head");
	tu_pattern_expect(b->p + b->n - SPARSE_EDGE, SPARSE_EDGE, b->key + 1,
			  "aligned block tail");
	for (size_t off = SPARSE_EDGE; off + SPARSE_SPOT <= b->n - SPARSE_EDGE;
	     off += SPARSE_STEP)
		tu_pattern_expect(b->p + off, SPARSE_SPOT, b->key + off, "aligned block");
}

/* Fill a fresh block through its usable size and remember it. */
static void adopt(const struct tu_api *a, char *p, size_t req, size_t align,
		  const char *call)
{
	if (!p)
		TU_FAIL("%s %s(align %zu, size %zu) returned NULL", a->name, call, align, req);
	if ((uintptr_t)p % align)
		TU_FAIL("%s %s(align %zu, size %zu) = %p is misaligned", a->name, call,
			align, req, (void *)p);
	size_t u = a->usable_size(p);
	if (u < req)
		TU_FAIL("%s %s(align %zu, size %zu): usable size %zu", a->name, call,
			align, req, u);
	if (nlive == MAX_LIVE) { /* retire the oldest half, checking it */
		for (size_t i = 0; i < MAX_LIVE / 2; i++) {
			tu_set_context("%s: free of %p from %s(align %zu, size %zu)", a->name,
				       (void *)live[i].p, live[i].call, live[i].align, live[i].req);
			check_block(&live[i]);
			a->free(live[i].p);
		}
		memmove(live, live + MAX_LIVE / 2, sizeof live[0] * (MAX_LIVE / 2));
		nlive = MAX_LIVE / 2;
	}
	live[nlive] = (struct live){ .p = p, .n = u, .key = next_key++, .call = call,
				     .align = align, .req = req };
	fill_block(&live[nlive]);
	nlive++;
}

static void release_all(const struct tu_api *a)
{
	for (size_t i = 0; i < nlive; i++) {
		tu_set_context("%s: free of %p from %s(align %zu, size %zu)", a->name,
			       (void *)live[i].p, live[i].call, live[i].align, live[i].req);
		check_block(&live[i]);
		a->free(live[i].p);
	}
	nlive = 0;
}

/* Sizes worth trying at alignment al: tiny, around al, and large. */
static size_t sizes_for(size_t al, size_t out[8])
{
	size_t n = 0;
	out[n++] = 1;
	out[n++] = 24;
	out[n++] = 1000;
	if (al > 1)
		out[n++] = al - 1;
	out[n++] = al;
	out[n++] = al + 1;
	out[n++] = 40000;
	if (al <= ((size_t)1 << 20))
		out[n++] = 3 * al + 5;
	return n;
}

static void test_aligned_calls(const struct tu_api *a)
{
	size_t sz[8], n, al;

	for (al = sizeof(void *); al <= ((size_t)16 << 20); al <<= 1) {
		n = sizes_for(al, sz);
		for (size_t i = 0; i < n; i++) {
			void *p = (void *)0x1;
			int rc = a->posix_memalign(&p, al, sz[i]);
			if (rc != 0)
				TU_FAIL("%s posix_memalign(align %zu, size %zu) = %d", a->name,
					al, sz[i], rc);
			adopt(a, p, sz[i], al, "posix_memalign");
		}
		release_all(a);
	}
	for (al = 1; al <= ((size_t)4 << 20); al <<= 1) {
		n = sizes_for(al, sz);
		for (size_t i = 0; i < n; i++) {
			adopt(a, a->aligned_alloc(al, sz[i]), sz[i], al, "aligned_alloc");
			adopt(a, a->memalign(al, sz[i]), sz[i], al, "memalign");
		}
		/* C11's own case: size a multiple of the alignment */
		adopt(a, a->aligned_alloc(al, al * 2), al * 2, al, "aligned_alloc");
		release_all(a);
	}
	/* zero sizes still give aligned, freeable blocks */
	for (al = sizeof(void *); al <= ((size_t)4 << 20); al <<= 1) {
		void *p = NULL;
		TU_CHECK(a->posix_memalign(&p, al, 0) == 0 && p != NULL);
		TU_CHECK((uintptr_t)p % al == 0);
		tu_set_context("%s: free of %p from posix_memalign(align %zu, size 0)", a->name,
			       p, al);
		a->free(p);
		p = a->aligned_alloc(al, 0);
		TU_CHECK(p != NULL && (uintptr_t)p % al == 0);
		tu_set_context("%s: free of %p from aligned_alloc(align %zu, size 0)", a->name,
			       p, al);
		a->free(p);
	}
	/* many small aligned blocks at once: they must not overlap */
	for (al = 16; al <= 4096; al <<= 1) {
		for (size_t i = 0; i < MAX_LIVE; i++)
			adopt(a, a->memalign(al, 16 + i * 8), 16 + i * 8, al, "memalign");
		release_all(a);
	}
}

static void test_page_calls(const struct tu_api *a)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	static const size_t sizes[] = { 1, 100, 4095, 4096, 4097, 10000, 32768,
					32769, 65536, 100001, (size_t)1 << 20,
					((size_t)3 << 20) + 1 };
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		size_t rounded = (sizes[i] + page - 1) / page * page;
		adopt(a, a->valloc(sizes[i]), sizes[i], page, "valloc");
		/* pvalloc rounds the size up to a whole page */
		adopt(a, a->pvalloc(sizes[i]), rounded, page, "pvalloc");
	}
	release_all(a);
	void *p = a->valloc(0);
	TU_CHECK(p != NULL && (uintptr_t)p % page == 0);
	a->free(p);
	p = a->pvalloc(0);
	TU_CHECK(p != NULL && (uintptr_t)p % page == 0);
	a->free(p);
}

static void test_malloc_usable(const struct tu_api *a)
{
	size_t s;
	/* every size up to 40 KiB, then sparser up to 40 MiB */
	for (s = 0; s <= 40960; s += (s < 2048 ? 1 : 7)) {
		char *p = a->malloc(s);
		TU_CHECK(p != NULL, "%s malloc(%zu)", a->name, s);
		TU_CHECK((uintptr_t)p % 16 == 0, "%s malloc(%zu) = %p not 16-aligned", a->name,
			 s, (void *)p);
		size_t u = a->usable_size(p);
		TU_CHECK(u >= s, "%s usable_size(malloc(%zu)) = %zu", a->name, s, u);
		if (s % 64 == 0)
			adopt(a, p, s, 16, "malloc");
		else
			a->free(p);
	}
	release_all(a);
	for (s = 40961; s <= ((size_t)40 << 20); s = s * 2 - 3) {
		adopt(a, a->malloc(s), s, 16, "malloc");
		adopt(a, a->calloc(1, s), s, 16, "calloc");
		adopt(a, a->realloc(NULL, s), s, 16, "realloc");
		release_all(a);
	}
	TU_CHECK(a->usable_size(NULL) == 0, "%s usable_size(NULL)", a->name);
}

int main(void)
{
	static tu_api_test *const tests[] = { test_aligned_calls, test_page_calls,
						test_malloc_usable, NULL };

	tu_run_api_tests(tests);
	printf("integ_align: ok\n");
	return 0;
}
