/*
 * unit_sizeclass.c - the size-class table and hak__class_of().
 *
 * Every request 0..32768 maps to the smallest class that holds it; classes
 * are 16-byte multiples, strictly increasing, end at HAK_SMALL_MAX, and
 * waste at most 15 bytes up to 128 bytes and at most 25% above; the thread
 * cache's caps follow their rule.  The
 * allocator's usable size and its published statistics agree with the
 * table.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>

#include "internal.h"
#include "testutil.h"

#define TIMEOUT_S 60 /* hang guard only */

START_TEST(table_shape)
{
	ck_assert_uint_eq(HAK_NUM_CLASSES, 40);
	ck_assert_uint_eq(hak__class_size[0], 16);
	ck_assert_uint_eq(hak__class_size[HAK_NUM_CLASSES - 1], HAK_SMALL_MAX);
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
		UCHECK(hak__class_size[c] % HAK_MIN_ALIGN == 0,
			      "class %u size %u is not a multiple of 16", c,
			      (unsigned)hak__class_size[c]);
		if (c > 0)
			UCHECK(hak__class_size[c] > hak__class_size[c - 1],
				      "class %u (%u) not above class %u (%u)", c,
				      (unsigned)hak__class_size[c], c - 1,
				      (unsigned)hak__class_size[c - 1]);
		/* a page holds at least two blocks of every class */
		ck_assert_uint_ge(HAK_PAGE_SIZE / hak__class_size[c], 2);
		/* above 4 KiB, no bigger multiple of 128 fits as many blocks */
		if (hak__class_size[c] > 4096) {
			size_t per = HAK_PAGE_SIZE / hak__class_size[c];
			UCHECK(HAK_PAGE_SIZE / (hak__class_size[c] + 128) < per,
			       "class %u (%u): a page's tail could hold bigger blocks", c,
			       (unsigned)hak__class_size[c]);
		}
	}
}
END_TEST

/* free's block-start check reads a class's geometry from a table built
 * at compile time: it must hold the reciprocal of the class's size, the
 * capacity table what a page holds, and the check must accept exactly the
 * block starts of such a page, at every byte. */
START_TEST(class_geometry_tables)
{
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
		uint32_t bs = hak__class_size[c];
		struct hak_geom g = hak__class_geom[c];
		UCHECK(g.recip == (uint32_t)((((uint64_t)1 << 32) + bs - 1) / bs),
		       "class %u (%u): recip %u", c, (unsigned)bs, (unsigned)g.recip);
		UCHECK(hak__class_capacity[c] == HAK_PAGE_SIZE / bs, "class %u (%u): capacity %u",
		       c, (unsigned)bs, (unsigned)hak__class_capacity[c]);
		/* every offset of a (fake, 64 KiB aligned) page */
		for (uintptr_t off = 0; off < HAK_PAGE_SIZE; off++) {
			bool start = off % bs == 0 && off / bs < HAK_PAGE_SIZE / bs;
			UCHECK(hak__geom_block_start(g, (void *)(((uintptr_t)1 << 30) + off)) == start,
			       "class %u (%u), offset %u: block start %d", c, (unsigned)bs,
			       (unsigned)off, (int)start);
		}
	}
}
END_TEST

/* The thread cache of a class holds 64 KiB of blocks (at most 2048) up to
 * 512 bytes, otherwise 128 blocks but no more than 256 KiB, and sixteen
 * pages' worth for the classes of five blocks or fewer per page: exactly
 * that many, and at least 8 (the fast paths keep no byte count, so this
 * table is the whole bound); the caches fill the heap's slot array
 * exactly. */
START_TEST(cache_caps_follow_the_rule)
{
	size_t total = 0, slots = 0;
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
		unsigned size = hak__class_size[c];
		unsigned want = (256u << 10) / size < 128 ? (256u << 10) / size : 128;
		if ((64u << 10) / size > want)
			want = (64u << 10) / size;
		if (want > 2048)
			want = 2048;
		if (HAK_PAGE_SIZE / size <= 5)
			want = 16 * (HAK_PAGE_SIZE / size);
		UCHECK(hak__tc_cap[c] == want, "class %u (%u bytes): cache cap %u, want %u", c,
		       size, (unsigned)hak__tc_cap[c], want);
		UCHECK(hak__tc_cap[c] >= 8, "class %u: cache cap %u", c, (unsigned)hak__tc_cap[c]);
		total += (size_t)hak__tc_cap[c] * size;
		/* the caches up to 512 bytes may grow to 2048 blocks, the
		 * others to four times their cap */
		unsigned max = size <= 512 ? 2048 : 4 * want;
		UCHECK(hak__tc_max(c) == max, "class %u (%u bytes): cache max %u, want %u", c,
		       size, (unsigned)hak__tc_max(c), max);
		slots += hak__tc_max(c);
	}
	/* and one NULL slot below each cache */
	UCHECK(slots + HAK_NUM_CLASSES == HAK_TC_SLOTS,
	       "the caches' most add up to %zu slots, the heap has %u", slots,
	       (unsigned)HAK_TC_SLOTS);
	/* growth past the caps is bounded by the heap's budget */
	UCHECK(total + HAK_TC_GROW_BUDGET <= (size_t)69 << 18, "a thread may cache %zu bytes",
	       total + HAK_TC_GROW_BUDGET);
}
END_TEST

START_TEST(every_size_fits_smallest_class)
{
	unsigned prev = 0;
	for (size_t s = 0; s <= HAK_SMALL_MAX; s++) {
		unsigned c = hak__class_of(s);
		UCHECK(c < HAK_NUM_CLASSES, "size %zu -> class %u", s, c);
		size_t cs = hak__class_size[c];
		UCHECK(cs >= s, "size %zu -> class %u of only %zu bytes", s, c, cs);
		/* the smallest class that fits: the one below is too small */
		if (c > 0)
			UCHECK(hak__class_size[c - 1] < s,
				      "size %zu -> class %u (%zu) but class %u (%u) fits",
				      s, c, cs, c - 1, (unsigned)hak__class_size[c - 1]);
		UCHECK(c >= prev, "class of %zu (%u) below class of %zu (%u)", s, c,
			      s - 1, prev);
		UCHECK(c <= prev + 1, "size %zu skips from class %u to %u", s, prev, c);
		prev = c;
		/* bounded waste: in the block up to 4 KiB; above, in the page,
		 * where a block costs 64 KiB / (blocks per page): within one
		 * block per page of the best any class could do */
		if (s <= 128) {
			UCHECK(cs - s <= 15 || s == 0,
				      "size %zu wastes %zu bytes in class %zu", s, cs - s, cs);
		} else if (s <= 4096) {
			UCHECK((cs - s) * 4 <= s,
				      "size %zu wastes %zu bytes (> 25%%) in class %zu", s,
				      cs - s, cs);
		} else {
			size_t per = HAK_PAGE_SIZE / cs;
			size_t best = HAK_PAGE_SIZE / ((s + 127) & ~(size_t)127);
			UCHECK(per + 1 >= best,
			       "size %zu: %zu blocks per page in class %zu, %zu possible",
			       s, per, cs, best);
		}
	}
	ck_assert_uint_eq(prev, HAK_NUM_CLASSES - 1);
	ck_assert_uint_eq(hak__class_of(0), 0);
	ck_assert_uint_eq(hak__class_of(1), 0);
}
END_TEST

/* Both lookup halves (table below 1 KiB, arithmetic above) agree at the
 * seam and on exact class sizes. */
START_TEST(class_sizes_map_to_themselves)
{
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
		size_t cs = hak__class_size[c];
		ck_assert_uint_eq(hak__class_of(cs), c);
		ck_assert_uint_eq(hak__class_of(cs - 1), c); /* classes are >= 16 apart */
		if (c + 1 < HAK_NUM_CLASSES)
			ck_assert_uint_eq(hak__class_of(cs + 1), c + 1);
	}
}
END_TEST

/* What the allocator hands out matches the table. */
START_TEST(usable_size_is_class_size)
{
	for (size_t s = 0; s <= HAK_SMALL_MAX; s += (s < 4096 ? 1 : 13)) {
		void *p = hak_malloc(s);
		UCHECK(p != NULL, "hak_malloc(%zu) failed", s);
		size_t u = hak_malloc_usable_size(p);
		UCHECK(u == hak__class_size[hak__class_of(s)],
			      "usable size of hak_malloc(%zu) is %zu, class size %u", s, u,
			      (unsigned)hak__class_size[hak__class_of(s)]);
		/* blocks are spaced by their class size inside their page */
		struct hak_page *pg = hak__page_of(p);
		UCHECK(((char *)p - hak__page_start(pg)) % u == 0, "block %p of size %zu misplaced in page %p",
		       p, u, (void *)hak__page_start(pg));
		hak_free(p);
	}
}
END_TEST

/* A loop that frees more blocks of a small class than its cache's cap
 * before allocating them again: the cache grows to hold them all (they come
 * back newest first, none through its page); the caches of the largest
 * classes grow past their caps too, but all together only as far as the
 * heap's budget; and both go back to their caps once emptied
 * (hak_malloc_trim). */
START_TEST(caches_grow_within_budget)
{
	enum { N = 1600 };
	static void *p[2048];
	unsigned c = hak__class_of(64);
	ck_assert_uint_lt(hak__tc_cap[c], N);
	for (unsigned i = 0; i < N; i++)
		ck_assert_ptr_nonnull(p[i] = hak_malloc(64));
	struct hak_heap *h = hak__tl_heap;
	for (unsigned i = 0; i < N; i++)
		hak_free(p[i]);
	UCHECK(hak__tc_count(h, c) >= N, "%u of %u freed blocks cached", hak__tc_count(h, c),
	       (unsigned)N);
	for (unsigned i = 0; i < N; i++) {
		void *q = hak_malloc(64);
		UCHECK(q == p[N - 1 - i], "allocation %u: %p, want the cached %p", i, q,
		       p[N - 1 - i]);
	}
	for (unsigned i = 0; i < N; i++)
		hak_free(p[i]);
	/* the four largest classes filled to four times their caps would
	 * grow by about 12 MiB, past the whole budget */
	static void *q[4][512];
	unsigned big[4], cached = 0, most = 0;
	for (unsigned k = 0; k < 4; k++) {
		big[k] = HAK_NUM_CLASSES - 1 - k;
		ck_assert_uint_le(hak__tc_max(big[k]), 512);
		for (unsigned i = 0; i < hak__tc_max(big[k]); i++)
			ck_assert_ptr_nonnull(q[k][i] = hak_malloc(hak__class_size[big[k]]));
	}
	for (unsigned k = 0; k < 4; k++) {
		for (unsigned i = 0; i < hak__tc_max(big[k]); i++)
			hak_free(q[k][i]);
		cached += hak__tc_count(h, big[k]);
		most += hak__tc_max(big[k]);
	}
	UCHECK(h->tc_grown <= HAK_TC_GROW_BUDGET, "the caches grew by %zu bytes", h->tc_grown);
	UCHECK(cached < most, "all %u blocks of the largest classes cached, past the budget",
	       most);
	UCHECK(hak__tc_capacity(h, big[0]) > hak__tc_cap[big[0]],
	       "the largest class's cache did not grow past its cap %u",
	       (unsigned)hak__tc_cap[big[0]]);
	unsigned d = big[0];
	hak_malloc_trim(0);
	UCHECK(hak__tc_capacity(h, c) == hak__tc_cap[c] &&
		       hak__tc_capacity(h, d) == hak__tc_cap[d] && h->tc_grown == 0,
	       "after the trim: caps %u and %u, grown %zu", hak__tc_capacity(h, c),
	       hak__tc_capacity(h, d), h->tc_grown);
}
END_TEST

START_TEST(stats_report_the_classes)
{
	struct hak_stats st;
	void *p = hak_malloc(100);
	ck_assert_int_eq(hak_stats_get(&st, sizeof st), 0);
	ck_assert_uint_eq(st.version, HAK_STATS_VERSION);
	ck_assert_uint_eq(st.num_classes, HAK_NUM_CLASSES);
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++)
		ck_assert_uint_eq(st.classes[c].block_size, hak__class_size[c]);
	unsigned c100 = hak__class_of(100);
	ck_assert_uint_ge(st.classes[c100].in_use, 1);
	ck_assert_uint_ge(st.classes[c100].allocs, 1);
	hak_free(p);
	/* too small a buffer is refused */
	errno = 0;
	ck_assert_int_eq(hak_stats_get(&st, 4), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(hak_stats_get(NULL, sizeof st), -1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sizeclass");
	TCase *tc = tu_add_tcase(s, "core", TIMEOUT_S);
	tcase_add_test(tc, table_shape);
	tcase_add_test(tc, class_geometry_tables);
	tcase_add_test(tc, cache_caps_follow_the_rule);
	tcase_add_test(tc, caches_grow_within_budget);
	tcase_add_test(tc, every_size_fits_smallest_class);
	tcase_add_test(tc, class_sizes_map_to_themselves);
	tcase_add_test(tc, usable_size_is_class_size);
	tcase_add_test(tc, stats_report_the_classes);
	return tu_run_suite(s);
}
