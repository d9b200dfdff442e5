/*
 * unit_page.c - one page's blocks: geometry, lazy carving, the local free
 * list, the remote list (push, drain, the empty->non-empty edge), and
 * double-free/interior-pointer detection.
 *
 * Pages are taken straight from the arena layer (hak__page_alloc) and
 * driven by hand, as the holder would: pop = allocate, push = local free.
 * The invariant checked throughout:
 *     used == carved - |local free list| == live + |remote list|
 */
#include "config.h"

#include <check.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "testutil.h"

#define TIMEOUT_S 120 /* hang guard only */
#define MAX_BLOCKS (HAK_PAGE_SIZE / 16)

static struct hak_seg_slot test_slot;
static struct hak_heap fake_heap __attribute__((aligned(HAK_CACHE_LINE)));

/* A fresh page of class cls, held by fake_heap. */
static struct hak_page *new_page(unsigned cls)
{
	hak__init();
	struct hak_page *pg = hak__page_alloc(cls, &test_slot);
	ck_assert_ptr_nonnull(pg);
	hak__page_init(pg, cls);
	atomic_store(&pg->owner, (uintptr_t)&fake_heap);
	return pg;
}

static unsigned list_len(struct hak_block *b)
{
	unsigned n = 0;
	for (; b; b = hak__link_dec(b, b->next)) {
		UCHECK(n <= MAX_BLOCKS, "free list longer than a page can hold: a cycle?");
		n++;
	}
	return n;
}

static unsigned block_index(struct hak_page *pg, const void *b)
{
	size_t off = (size_t)((const char *)b - hak__page_start(pg));
	UCHECK((const char *)b >= hak__page_start(pg) && off < HAK_PAGE_SIZE,
		      "block %p outside its page [%p, +64K)", b, (void *)hak__page_start(pg));
	UCHECK(off % pg->block_size == 0, "block %p at offset %zu, spacing %u", b,
		      off, (unsigned)pg->block_size);
	unsigned idx = (unsigned)(off / pg->block_size);
	UCHECK(idx < pg->capacity, "block %p: index %u beyond capacity %u", b, idx,
	       (unsigned)pg->capacity);
	return idx;
}

/* Allocate as the holder does. */
static struct hak_block *pop(struct hak_page *pg)
{
	struct hak_block *b = pg->free;
	if (!b)
		return NULL;
	pg->free = hak__link_dec(b, b->next);
	pg->used++;
	b->marker = 0;
	return b;
}

/* Free locally as the holder does. */
static void push_local(struct hak_page *pg, struct hak_block *b)
{
	b->marker = hak__free_marker(b);
	b->next = hak__link_enc(b, pg->free);
	pg->free = b;
	pg->used--;
}

/* Carve and pop every block of the page into out[]; returns the count. */
static unsigned take_all(struct hak_page *pg, struct hak_block **out)
{
	unsigned n = 0;
	struct hak_block *b;
	for (;;) {
		while ((b = pop(pg)) != NULL)
			out[n++] = b;
		if (!hak__page_extend(pg))
			break;
	}
	return n;
}

static void check_invariant(struct hak_page *pg)
{
	ck_assert_uint_eq(pg->used, pg->carved - list_len(pg->free));
}

START_TEST(geometry)
{
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
		struct hak_page *pg = new_page(c);
		ck_assert_uint_eq(pg->block_size, hak__class_size[c]);
		ck_assert_uint_eq(pg->class_idx, c);
		/* out-of-band descriptors: the whole 64 KiB holds blocks */
		ck_assert_uint_eq(pg->capacity, HAK_PAGE_SIZE / pg->block_size);
		ck_assert_uint_eq(pg->carved, 0);
		ck_assert_uint_eq(pg->used, 0);
		ck_assert_ptr_null(pg->free);
		ck_assert_ptr_null(atomic_load(&pg->remote));
		ck_assert_uint_eq((uintptr_t)hak__page_start(pg) % HAK_PAGE_SIZE, 0);
		/* the descriptor is found from the address, and lives in the
		 * arena's first (metadata) page, outside the blocks */
		ck_assert_ptr_eq(hak__page_of(hak__page_start(pg)), pg);
		ck_assert_ptr_eq(hak__page_of(hak__page_start(pg) + HAK_PAGE_SIZE - 1), pg);
		struct hak_arena *a = hak__arena_of(hak__page_start(pg));
		ck_assert_ptr_ne((void *)a, (void *)hak__page_start(pg));
		ck_assert((char *)pg >= (char *)a && (char *)pg < (char *)a + HAK_PAGE_SIZE);
		ck_assert_uint_eq(hak__map_kind(hak__page_start(pg)), HAK_MAP_SMALL);
	}
}
END_TEST

/* Descriptors are coloured: page i of 8 arenas in a row (any 4 MiB-aligned
 * addresses; nothing is read) has its descriptor at 8 different offsets,
 * 8 KiB apart, so that a free's descriptor read does not always land in
 * the same few cache sets; every one lies in the arena's first page, apart
 * from the others and from the arena's header. */
START_TEST(descriptor_colours)
{
	const uintptr_t base = (uintptr_t)1 << 40;
	for (unsigned i = 1; i < HAK_ARENA_PAGES; i++) {
		uintptr_t seen = 0;
		for (unsigned k = 0; k < HAK_ARENA_COLOURS; k++) {
			uintptr_t a = base + (uintptr_t)k * HAK_ARENA_SIZE;
			char *page = (char *)a + (size_t)i * HAK_PAGE_SIZE;
			uintptr_t d = (uintptr_t)hak__page_of(page + 12345 % HAK_PAGE_SIZE);
			ck_assert_uint_ge(d, a + sizeof(struct hak_arena));
			ck_assert_uint_le(d + sizeof(struct hak_page), a + HAK_PAGE_SIZE);
			ck_assert_ptr_eq(hak__page_start((struct hak_page *)d), page);
			ck_assert_ptr_eq(hak__arena_page((struct hak_arena *)a, i), (void *)d);
			unsigned colour = (unsigned)((d - a) / (HAK_ARENA_PAGES * sizeof(struct hak_page)));
			ck_assert_msg(!(seen & (1u << colour)), "arenas share descriptor colour %u", colour);
			seen |= 1u << colour;
		}
	}
}
END_TEST

START_TEST(carving)
{
	static struct hak_block *blk[MAX_BLOCKS];
	static unsigned char seen[MAX_BLOCKS];
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
		struct hak_page *pg = new_page(c);
		unsigned n = 0, extends = 0;
		memset(seen, 0, sizeof seen);
		while (hak__page_extend(pg)) {
			unsigned before = n;
			extends++;
			ck_assert_uint_le(pg->carved, pg->capacity);
			check_invariant(pg);
			struct hak_block *b;
			while ((b = pop(pg)) != NULL) {
				unsigned idx = block_index(pg, b);
				UCHECK(!seen[idx], "class %u: block %u handed out twice", c, idx);
				/* carving is in address order from the page start */
				UCHECK(idx < pg->carved, "class %u: block %u handed out, only %u carved",
				       c, idx, (unsigned)pg->carved);
				seen[idx] = 1;
				blk[n++] = b;
				/* a block may be written through its whole size
				 * without harming the blocks still on the list */
				memset(b, 0xa5, pg->block_size);
			}
			ck_assert_uint_gt(n, before);
			ck_assert_uint_eq(pg->used, n);
			check_invariant(pg);
		}
		ck_assert_uint_eq(n, pg->capacity);
		ck_assert_uint_eq(pg->carved, pg->capacity);
		ck_assert(!hak__page_extend(pg));
		/* lazy: a page of many small blocks is not carved in one go */
		if (pg->capacity >= 64)
			ck_assert_uint_gt(extends, 1);
		/* local frees and re-allocation: LIFO, same blocks */
		for (unsigned i = 0; i < n; i += 2)
			push_local(pg, blk[i]);
		check_invariant(pg);
		ck_assert_uint_eq(pg->used, n / 2);
		for (unsigned i = n - (n % 2 ? 1 : 2);; i -= 2) {
			struct hak_block *b = pop(pg);
			ck_assert_ptr_eq(b, blk[i]);
			if (i < 2)
				break;
		}
		ck_assert_ptr_null(pg->free);
		ck_assert_uint_eq(pg->used, n);
	}
}
END_TEST

START_TEST(remote_push_and_drain)
{
	static struct hak_block *blk[MAX_BLOCKS];
	static unsigned char seen[MAX_BLOCKS];
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c += 3) {
		struct hak_page *pg = new_page(c);
		unsigned n = take_all(pg, blk);
		ck_assert_uint_eq(n, pg->capacity);
		unsigned k = n < 10 ? n : 10;

		ck_assert_uint_eq(hak__page_drain(pg), 0); /* nothing to drain */
		for (unsigned i = 0; i < k; i++) {
			bool first = hak__remote_push(pg, blk[i]);
			UCHECK(first == (i == 0),
				      "push %u returned %d: only the first push onto an "
				      "empty remote list returns true", i, first);
			/* pushed blocks still count as used until drained */
			ck_assert_uint_eq(pg->used, n);
		}
		ck_assert_ptr_null(pg->free);
		ck_assert_uint_eq(hak__page_drain(pg), k);
		ck_assert_ptr_null(atomic_load(&pg->remote));
		ck_assert_uint_eq(pg->used, n - k);
		ck_assert_uint_eq(list_len(pg->free), k);
		memset(seen, 0, sizeof seen);
		for (struct hak_block *b = pg->free; b; b = hak__link_dec(b, b->next))
			seen[block_index(pg, b)]++;
		for (unsigned i = 0; i < k; i++)
			ck_assert_uint_eq(seen[block_index(pg, blk[i])], 1);
		check_invariant(pg);
		ck_assert_uint_eq(hak__page_drain(pg), 0);

		/* the edge again, onto a non-empty local list: splice keeps both */
		if (n > k) {
			ck_assert(hak__remote_push(pg, blk[k]));
			ck_assert_uint_eq(hak__page_drain(pg), 1);
			ck_assert_uint_eq(list_len(pg->free), k + 1);
			ck_assert_uint_eq(pg->used, n - k - 1);
			check_invariant(pg);
		}
	}
}
END_TEST

/* A remote-freed block carries the free marker: freeing it again is a
 * double free, found by hak__block_check (which aborts). */
START_TEST(double_free_after_remote_push_aborts)
{
	static struct hak_block *blk[MAX_BLOCKS];
	struct hak_page *pg = new_page(hak__class_of(64));
	take_all(pg, blk);
	hak__block_check(pg, blk[3], hak__call_free); /* a live block passes */
	hak__remote_push(pg, blk[3]);
	hak__block_check(pg, blk[3], hak__call_free); /* must not return */
}
END_TEST

/* hak__block_start against division, for every class and every byte of
 * the page: true exactly at the start of each of the capacity blocks. */
START_TEST(block_start_every_offset)
{
	struct hak_page *pg = new_page(0);
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
		hak__page_init(pg, c);
		size_t bs = hak__class_size[c];
		for (size_t off = 0; off < HAK_PAGE_SIZE; off++) {
			bool want = off % bs == 0 && off / bs < pg->capacity;
			UCHECK(hak__block_start(pg, hak__page_start(pg) + off) == want,
			       "class %u (%zu bytes), offset %zu: block_start says %d", c, bs, off,
			       (int)!want);
		}
	}
}
END_TEST

START_TEST(interior_pointer_aborts)
{
	static struct hak_block *blk[MAX_BLOCKS];
	struct hak_page *pg = new_page(hak__class_of(1000));
	take_all(pg, blk);
	hak__block_check(pg, (char *)blk[2] + 16, hak__call_free);
}
END_TEST

START_TEST(free_page_aborts)
{
	struct hak_page *pg = new_page(hak__class_of(64));
	atomic_store(&pg->owner, HAK_OWNER_FREE);
	hak__block_check(pg, hak__page_start(pg), hak__call_free);
}
END_TEST

/* Several threads push concurrently while the holder drains. */
#define PUSHERS 4
#define ROUNDS 40

struct pusher {
	pthread_t tid;
	struct hak_page *pg;
	struct hak_block **blocks;
	unsigned n;
	unsigned firsts; /* pushes that returned true */
};

static _Atomic unsigned round_go, round_done;

static void *pusher_main(void *arg)
{
	struct pusher *p = arg;
	for (unsigned r = 1; r <= ROUNDS; r++) {
		while (atomic_load(&round_go) < r)
			sched_yield();
		for (unsigned i = 0; i < p->n; i++)
			p->firsts += hak__remote_push(p->pg, p->blocks[i]);
		atomic_fetch_add(&round_done, 1);
	}
	return NULL;
}

START_TEST(concurrent_push_drain)
{
	static struct hak_block *blk[MAX_BLOCKS];
	static unsigned char seen[MAX_BLOCKS];
	struct pusher pu[PUSHERS];
	unsigned cls = (unsigned)_i; /* loop test: a few classes */
	struct hak_page *pg = new_page(cls);
	unsigned n = take_all(pg, blk), per = n / PUSHERS, nonzero = 0;
	unsigned total = per * PUSHERS;

	atomic_store(&round_go, 0);
	atomic_store(&round_done, 0);
	for (unsigned t = 0; t < PUSHERS; t++) {
		pu[t] = (struct pusher){ .pg = pg, .blocks = blk + t * per, .n = per };
		ck_assert_int_eq(pthread_create(&pu[t].tid, NULL, pusher_main, &pu[t]), 0);
	}
	for (unsigned r = 1; r <= ROUNDS; r++) {
		unsigned drained = 0, d;
		atomic_store(&round_go, r);
		/* drain while they push, until every block is back */
		while (drained < total) {
			/* pushers finished before this drain: an empty one is final */
			bool pushers_done = atomic_load(&round_done) == r * PUSHERS;
			d = hak__page_drain(pg);
			nonzero += d != 0;
			drained += d;
			UCHECK(drained <= total, "round %u: drained %u of %u pushed", r, drained,
			       total);
			if (!d && pushers_done)
				break;
		}
		ck_assert_uint_eq(hak__page_drain(pg), 0);
		UCHECK(drained == total, "round %u: drained %u of %u pushed blocks",
			      r, drained, total);
		ck_assert_uint_eq(pg->used, n - total);
		/* each pushed block is on the local list exactly once */
		memset(seen, 0, sizeof seen);
		unsigned len = 0;
		for (struct hak_block *b = pg->free; b; b = hak__link_dec(b, b->next)) {
			unsigned idx = block_index(pg, b);
			UCHECK(!seen[idx], "round %u: block %u on the list twice", r, idx);
			seen[idx] = 1;
			len++;
		}
		ck_assert_uint_eq(len, total);
		check_invariant(pg);
		/* take them back for the next round (the order differs) */
		while (atomic_load(&round_done) < r * PUSHERS)
			sched_yield();
		for (unsigned i = 0; i < total; i++)
			UCHECK(pop(pg) != NULL, "round %u: free list ran dry at %u of %u", r, i,
			       total);
		ck_assert_ptr_null(pg->free);
	}
	unsigned firsts = 0;
	for (unsigned t = 0; t < PUSHERS; t++) {
		ck_assert_int_eq(pthread_join(pu[t].tid, NULL), 0);
		firsts += pu[t].firsts;
	}
	/* every empty->non-empty transition was reported to exactly one
	 * pusher, and each non-empty->empty one was a drain that found blocks */
	UCHECK(firsts == nonzero, "pushes that saw an empty list: %u, "
		      "drains that found blocks: %u", firsts, nonzero);
	ck_assert_uint_ge(firsts, ROUNDS);
}
END_TEST

/* The pool's purge rule (arena.c, hak__pages_purge): free pages beyond the
 * keep go back only once they have lasted a window of half the purge delay
 * in the pool, and those beyond twice the keep at once.  With few pages in
 * use the keep is its 4 MiB minimum, 64 pages. */
START_TEST(pool_purge_rule)
{
	enum { KEEP = 64, TAKEN = 300 };
	static struct hak_page *pg[TAKEN];
	const size_t P = HAK_PAGE_SIZE;
	const struct timespec window = {.tv_sec = 0, .tv_nsec = 150 * 1000 * 1000};
	hak__init();
	hak__opt.background = false;
	hak__opt.purge_keep_pct = 20;
	hak__opt.purge_delay_ms = 200; /* a window of 100 ms */
	hak__pages_purge(0, true); /* an empty pool; the window starts */
	for (unsigned i = 0; i < TAKEN; i++)
		ck_assert_ptr_nonnull(pg[i] = hak__page_alloc(0, &test_slot));
	/* 100 free, 200 (fewer than 320) in use: between keep and twice it */
	for (unsigned i = 0; i < 100; i++)
		hak__page_release(pg[i]);
	ck_assert_uint_eq(hak__pages_purge(0, false), 0); /* within the window */
	nanosleep(&window, NULL);
	/* the pool was empty at the window's start: nothing lasted */
	ck_assert_uint_eq(hak__pages_purge(0, false), 0);
	/* a swing down to 80 and back: 80 - KEEP pages lasted the next window */
	for (unsigned i = 0; i < 20; i++)
		pg[i] = hak__page_alloc(0, &test_slot);
	for (unsigned i = 0; i < 20; i++)
		hak__page_release(pg[i]);
	ck_assert_uint_eq(hak__pages_purge(0, false), 0);
	nanosleep(&window, NULL);
	ck_assert_uint_eq(hak__pages_purge(0, false), (80 - KEEP) * P);
	/* 84 in the pool; 100 more: beyond twice the keep at once */
	for (unsigned i = 100; i < 200; i++)
		hak__page_release(pg[i]);
	ck_assert_uint_eq(hak__pages_purge(0, false), (184 - 2 * KEEP) * P);
	ck_assert_uint_eq(hak__pages_purge(0, true), 2 * KEEP * P);
	for (unsigned i = 200; i < TAKEN; i++)
		hak__page_release(pg[i]);
}
END_TEST

/* The pool hands out the newest free page that last served the class
 * asked for, else its newest page (arena.c, hak__page_alloc). */
START_TEST(pool_class_first)
{
	hak__init();
	hak__opt.background = false;
	hak__opt.purge_delay_ms = 3600000;
	hak__pages_purge(0, true); /* an empty pool */
	struct hak_page *a = new_page(3), *b = new_page(3), *c = new_page(5);
	hak__page_release(a);
	hak__page_release(b);
	hak__page_release(c); /* the newest */
	ck_assert_ptr_eq(hak__page_alloc(3, &test_slot), b);
	ck_assert_ptr_eq(hak__page_alloc(7, &test_slot), c); /* none of 7: the newest */
	ck_assert_ptr_eq(hak__page_alloc(5, &test_slot), a); /* none of 5 left */
	hak__page_init(a, 3);
	hak__page_init(b, 3);
	hak__page_init(c, 5);
	hak__page_release(a);
	hak__page_release(b);
	hak__page_release(c);
	hak__pages_purge(0, true);
}
END_TEST

int main(int argc, char **argv)
{
	/* The abort tests would leave stats segments behind: publish none.
	 * hakmem reads its environment in a constructor, so re-exec. */
	(void)argc;
	if (!getenv("HAKMEM_STATS")) {
		setenv("HAKMEM_STATS", "0", 1);
		tu_remove_stats_segment(getpid()); /* exec skips the exit hook */
		execv("/proc/self/exe", argv);
	}
	Suite *s = suite_create("page");
	TCase *tc = tu_add_tcase(s, "core", TIMEOUT_S);
	tcase_add_test(tc, geometry);
	tcase_add_test(tc, carving);
	tcase_add_test(tc, descriptor_colours);
	tcase_add_test(tc, remote_push_and_drain);
	tcase_add_test(tc, block_start_every_offset);
	tcase_add_test(tc, pool_purge_rule);
	tcase_add_test(tc, pool_class_first);
	tcase_add_test_raise_signal(tc, double_free_after_remote_push_aborts, SIGABRT);
	tcase_add_test_raise_signal(tc, interior_pointer_aborts, SIGABRT);
	tcase_add_test_raise_signal(tc, free_page_aborts, SIGABRT);
	TCase *tcc = tu_add_tcase(s, "concurrent", TIMEOUT_S);
	/* classes 16, 64, 1024 and 8192 bytes */
	tcase_add_loop_test(tcc, concurrent_push_drain, 0, 1);
	tcase_add_loop_test(tcc, concurrent_push_drain, 3, 4);
	tcase_add_loop_test(tcc, concurrent_push_drain, 19, 20);
	tcase_add_loop_test(tcc, concurrent_push_drain, 31, 32);
	return tu_run_suite(s);
}
