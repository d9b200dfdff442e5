/*
 * unit_map.c - address to page lookup: hak__map_kind, hak__page_of and
 * hak__arena_of.
 *
 * Any interior pointer of a small block maps to the block's page (SMALL);
 * any interior pointer of a large block maps to LARGE; memory hakmem does
 * not own (stack, static data, code, glibc's heap and its mmapped chunks,
 * a private mmap, the arena metadata page, impossible addresses) maps to
 * NONE.  In this program malloc is glibc's: the internal library does not
 * override it, which gives foreign heap pointers for free.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"
#include "testutil.h"

#define TIMEOUT_S 60 /* hang guard only */

static char static_data[4096] = { 1 };
static char static_bss[4096];

static void expect_small_block(void *p, size_t req)
{
	struct hak_page *pg = hak__page_of(p);
	ck_assert_uint_ge(pg->block_size, req);
	UCHECK((char *)p >= hak__page_start(pg) && (char *)p < hak__page_start(pg) + HAK_PAGE_SIZE,
		      "block %p not in the page [%p, +64K) found for it", p,
		      (void *)hak__page_start(pg));
	ck_assert_uint_eq(((char *)p - hak__page_start(pg)) % pg->block_size, 0);
	for (size_t i = 0; i < pg->block_size; i++) {
		char *q = (char *)p + i;
		UCHECK(hak__map_kind(q) == HAK_MAP_SMALL,
			      "interior %p (+%zu) of a %u-byte block: kind %u", (void *)q, i,
			      (unsigned)pg->block_size, hak__map_kind(q));
		UCHECK(hak__page_of(q) == pg, "interior %p (+%zu) maps to another page",
			      (void *)q, i);
		UCHECK(hak__arena_of(q) == hak__arena_of(p), "interior %p: another arena",
		       (void *)q);
	}
	/* the arena's metadata page never passes for blocks */
	ck_assert_uint_eq(hak__map_kind(hak__arena_of(p)), HAK_MAP_NONE);
	ck_assert_uint_eq(hak__map_kind((char *)hak__arena_of(p) + HAK_PAGE_SIZE - 1),
			  HAK_MAP_NONE);
}

START_TEST(small_blocks_interior)
{
	enum { PER_CLASS = 3 };
	void *keep[HAK_NUM_CLASSES][PER_CLASS];
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
		for (unsigned k = 0; k < PER_CLASS; k++) {
			size_t req = hak__class_size[c] - k; /* exact and just below */
			keep[c][k] = hak_malloc(req);
			ck_assert_ptr_nonnull(keep[c][k]);
			expect_small_block(keep[c][k], req);
		}
	}
	/* blocks deep into later pages, too */
	static void *many[5000];
	for (unsigned i = 0; i < 5000; i++) {
		many[i] = hak_malloc(48);
		ck_assert_ptr_nonnull(many[i]);
	}
	for (unsigned i = 0; i < 5000; i += 97)
		expect_small_block(many[i], 48);
	for (unsigned i = 0; i < 5000; i++)
		hak_free(many[i]);
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++)
		for (unsigned k = 0; k < PER_CLASS; k++)
			hak_free(keep[c][k]);
}
END_TEST

static void expect_large_block(char *p, size_t size)
{
	size_t step = size / 61 + 1; /* not a power of two: varied offsets */
	for (size_t i = 0; i < size; i += step)
		UCHECK(hak__map_kind(p + i) == HAK_MAP_LARGE,
			      "large block %p +%zu: kind %u", (void *)p, i, hak__map_kind(p + i));
	ck_assert_uint_eq(hak__map_kind(p + size - 1), HAK_MAP_LARGE);
	ck_assert_uint_eq(hak__map_kind(p), HAK_MAP_LARGE);
}

START_TEST(large_blocks_interior)
{
	static const size_t sizes[] = { HAK_SMALL_MAX + 1, 40000, 65536, 100000,
					(size_t)1 << 20, ((size_t)5 << 20) + 3 };
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		char *p = hak_malloc(sizes[i]);
		ck_assert_ptr_nonnull(p);
		memset(p, 0, sizes[i]);
		expect_large_block(p, sizes[i]);
		hak_free(p);
	}
	for (size_t al = 4096; al <= ((size_t)4 << 20); al <<= 2) {
		char *p = hak_aligned_alloc(al, 50000);
		ck_assert_ptr_nonnull(p);
		ck_assert_uint_eq((uintptr_t)p % al, 0);
		expect_large_block(p, 50000);
		hak_free(p);
	}
}
END_TEST

static void expect_none(const void *p, const char *what)
{
	UCHECK(hak__map_kind(p) == HAK_MAP_NONE, "%s %p: kind %u, want NONE", what,
		      p, hak__map_kind(p));
}

START_TEST(foreign_pointers)
{
	char stack[256] = { 0 };
	/* make sure hakmem has arenas and a map before asking */
	void *mine = hak_malloc(100), *big = hak_malloc((size_t)1 << 20);
	ck_assert_ptr_nonnull(mine);
	ck_assert_ptr_nonnull(big);

	expect_none(stack, "stack");
	expect_none(stack + sizeof stack - 1, "stack end");
	expect_none(static_data, "static data");
	expect_none(static_bss + 100, "bss");
	expect_none("a string literal", "rodata");
	expect_none((const void *)(uintptr_t)&expect_none, "code");
	expect_none(&errno, "thread-local storage");

	void *g_small = malloc(64), *g_big = malloc((size_t)4 << 20);
	ck_assert_ptr_nonnull(g_small);
	ck_assert_ptr_nonnull(g_big);
	expect_none(g_small, "glibc heap");
	expect_none(g_big, "glibc mmapped chunk");
	expect_none((char *)g_big + ((size_t)2 << 20), "inside a glibc mmapped chunk");

	char *m = mmap(NULL, (size_t)8 << 20, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert(m != MAP_FAILED);
	for (size_t off = 0; off < ((size_t)8 << 20); off += HAK_PAGE_SIZE)
		expect_none(m + off, "private mmap");
	munmap(m, (size_t)8 << 20);

	expect_none(NULL, "NULL");
	expect_none((void *)1, "address 1");
	expect_none((void *)((uintptr_t)1 << 47), "2^47");
	expect_none((void *)(((uintptr_t)1 << 47) - 1), "2^47 - 1");
	expect_none((void *)UINTPTR_MAX, "~0");
	expect_none((void *)((uintptr_t)mine ^ ((uintptr_t)1 << 62)), "non-canonical");
	free(g_small);
	free(g_big);
	hak_free(mine);
	hak_free(big);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("map");
	TCase *tc = tu_add_tcase(s, "core", TIMEOUT_S);
	tcase_add_test(tc, small_blocks_interior);
	tcase_add_test(tc, large_blocks_interior);
	tcase_add_test(tc, foreign_pointers);
	return tu_run_suite(s);
}
