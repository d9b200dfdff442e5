/*
 * arena.c - 4 MiB arenas carved into 64 KiB pages, the process-wide pool of
 * free pages, and purging free pages back to the OS.
 *
 * An arena's first 64 KiB holds its header and the descriptors of its 63
 * other pages, so a page's descriptor is found from any block address by
 * masking.  Free pages wait in a LIFO pool (hot pages first); those that
 * stay longer than the purge delay are madvised away, oldest first, and so
 * are those beyond the pool's share of memory in use (HAKMEM_PURGE_KEEP_PCT)
 * at once.
 */
#include "config.h"
#include "internal.h"

#include <sched.h>
#include <string.h>
#include <sys/uio.h>

static _Atomic uint32_t pool_lock;
/* Unpurged free pages, doubly linked: head newest, tail oldest. */
static struct hak_page *pool_head, *pool_tail;
/* The same pages by the class they last served, newest first (through
 * cnext/cprev): a page goes back to its class when it can.  Its blocks
 * then start where the class's blocks started before, on memory the
 * program touched already, and the rest of the page stays untouched; a
 * page carved for another class touches new memory.  (Larson 2-32 KiB,
 * which writes the start of each block: without it the resident set grew
 * with every page that changed class, 94 against 74 MiB, and a third more
 * page faults.) */
static struct hak_page *pool_class[HAK_NUM_CLASSES];
HAK_PLIST(class_list, cnext, cprev)
static size_t pool_pages; /* on that list */
static size_t pages_out;  /* handed out and not released: pages in use */
static size_t purging;    /* taken out of the pool by a purge, being madvised */
/* The fewest pages the pool held since low_since_ns: pages beyond the keep
 * that stayed in the pool that whole window were not needed in it. */
static size_t pool_low;
static uint64_t low_since_ns;
/* Purged free pages (memory reads as zero), singly linked through next. */
static struct hak_page *purged_head;
static struct hak_arena *arena_current; /* arena still handing out fresh pages */
/* An arena mapped by a thread that lost the race to install its own: the
 * next one to use, so that no arena is left partly carved. */
static struct hak_arena *arena_spare;

static bool arena_full(const struct hak_arena *a)
{
	return a->pages_carved >= HAK_ARENA_PAGES - 1;
}

static void pool_unlink(struct hak_page *pg)
{
	hak__plist_unlink(&pool_head, &pool_tail, pg);
	class_list_unlink(&pool_class[pg->class_idx], NULL, pg);
	if (--pool_pages < pool_low)
		pool_low = pool_pages;
}

static void pool_push_head(struct hak_page *pg)
{
	hak__plist_push(&pool_head, &pool_tail, pg);
	class_list_push(&pool_class[pg->class_idx], NULL, pg);
	pool_pages++;
}

/* How many unpurged free pages the pool may keep (pool_lock held): a share
 * of the pages in use, at least HAK_POOL_KEEP_MIN bytes.  Beyond it, pages
 * waiting for the purge delay cost more resident memory than their reuse
 * saves in page faults -- unless they are about to be reused: see
 * hak__pages_purge. */
#define HAK_POOL_KEEP_MIN ((size_t)4 << 20)
#define HAK_POOL_SURGE 2
static size_t pool_keep_pages(void)
{
	size_t keep = pages_out / 100 * hak__opt.purge_keep_pct;
	size_t min = HAK_POOL_KEEP_MIN / HAK_PAGE_SIZE;
	return keep > min ? keep : min;
}

/* Owner hints (see internal.h): 8 bytes per page of the span, 2 MiB of
 * zero pages until arenas use them. */
uintptr_t hak__hint_base = HAK_HINT_BASE_OFF;
_Atomic uintptr_t hak__hints[HAK_HINT_PAGES + HAK_HINT_ROWS * HAK_ARENA_PAGES];
/* Rows handed to arenas outside the span, in order, never reused. */
static _Atomic uint32_t hint_rows;
/* Whether pages get hints at all: not at HAKMEM_CHECK=2, where every free
 * must see the canary (set once, by hak__hints_init). */
static bool hints_on;
/* The part of the span reserved at start-up, in arenas, and how many of
 * those places arenas took (the next goes at this index). */
static uintptr_t span_arenas;
static _Atomic uintptr_t span_next;

/* Reserve the span: as much of HAK_HINT_SPAN as the kernel grants, 4 MiB
 * aligned, wherever it places it (so a sanitizer's layout is respected,
 * and address randomisation applies).  Arenas are then mapped into it in
 * order; the reservation itself keeps other mappings out.  Not at
 * HAKMEM_CHECK=2 (every free must see the canary), nor under RLIMIT_AS: a
 * mapping inside a reservation does not grow the address space the kernel
 * counts, and an arena would escape the limit. */
void hak__hints_init(void)
{
	hints_on = hak__guard.level < 2;
	if (!hints_on || hak__os_as_limited())
		return;
	for (uintptr_t size = HAK_HINT_SPAN; size >= (uintptr_t)256 << 20; size /= 4) {
		void *r = hak__os_reserve(size, HAK_ARENA_SIZE);
		if (r) {
			span_arenas = size / HAK_ARENA_SIZE;
			hak__hint_base = (uintptr_t)r;
			HAK_GSTAT_ADD(hak__seg->global.reserved_bytes, size);
			return;
		}
	}
}

/* A fresh arena's memory: the next place in the span, else anywhere (4 MiB
 * aligned), without hints.  The span is passed over once the address
 * space is limited (see hak__hints_init).  A place whose memory the kernel
 * refused is handed back for the next arena, unless another thread took a
 * place meanwhile. */
static struct hak_arena *arena_map(void)
{
	uintptr_t n = atomic_load_explicit(&span_next, memory_order_relaxed);
	while (n < span_arenas && !hak__os_as_limited()) {
		if (!atomic_compare_exchange_weak_explicit(&span_next, &n, n + 1,
							   memory_order_relaxed,
							   memory_order_relaxed))
			continue;
		void *a = hak__os_map_reserved((void *)(hak__hint_base + n * HAK_ARENA_SIZE),
					       HAK_ARENA_SIZE);
		if (a) {
			HAK_GSTAT_SUB(hak__seg->global.reserved_bytes, HAK_ARENA_SIZE);
			return a;
		}
		uintptr_t next = n + 1;
		atomic_compare_exchange_strong_explicit(&span_next, &next, n, memory_order_relaxed,
							memory_order_relaxed);
		return NULL;
	}
	return hak__os_map_aligned(HAK_ARENA_SIZE, HAK_ARENA_SIZE);
}

/* Undo arena_map for an arena none of whose pages was handed out: an arena
 * of the span goes back to the reservation (its place is not used again). */
static void arena_unmap(struct hak_arena *a)
{
	uintptr_t off = (uintptr_t)a - hak__hint_base;
	if (span_arenas && off < span_arenas * HAK_ARENA_SIZE) {
		hak__os_unmap_reserved(a, HAK_ARENA_SIZE);
		HAK_GSTAT_ADD(hak__seg->global.reserved_bytes, HAK_ARENA_SIZE);
	} else {
		if (a->hint_row)
			hak__arena_tab_set(a, 0);
		hak__os_unmap(a, HAK_ARENA_SIZE);
	}
}

static struct hak_arena *arena_new(void)
{
	struct hak_arena *a = arena_map();
	if (!a)
		return NULL;
	if (hak__map_set((char *)a + HAK_PAGE_SIZE, HAK_ARENA_SIZE - HAK_PAGE_SIZE,
			 HAK_MAP_SMALL) != 0) {
		arena_unmap(a);
		return NULL;
	}
	a->pages_carved = 0;
	a->hint_row = 0;
	if (hints_on && hak__hint_index(a) >= HAK_HINT_PAGES) {
		/* optional: without its table the arena's frees take the general
		 * path (a refusal's ENOMEM is undone by hak__heap_alloc_slow) */
		uint32_t row = atomic_fetch_add_explicit(&hint_rows, 1, memory_order_relaxed) + 1;
		if (row <= HAK_HINT_ROWS && hak__arena_tab_set(a, row))
			a->hint_row = row;
	}
	HAK_GSTAT_ADD(hak__seg->global.mapped_bytes, HAK_ARENA_SIZE);
	return a;
}

/* Take a page out of arena a (pool_lock held). */
static struct hak_page *arena_carve(struct hak_arena *a)
{
	unsigned idx = ++a->pages_carved;
	struct hak_page *pg = hak__arena_page(a, idx);
	pg->purged = 0;
	return pg;
}

/* A page for the caller to initialise for class cls, or NULL with ENOMEM:
 * the newest free page that last served cls, else the newest free page. */
struct hak_page *hak__page_alloc(unsigned cls, struct hak_seg_slot *st)
{
	struct hak_page *pg = NULL;
	hak__spin_lock(&pool_lock);
	/* pages being purged come back within a system call: wait for them
	 * rather than carve new ones */
	while (!pool_head && !purged_head && purging) {
		hak__spin_unlock(&pool_lock);
		sched_yield();
		hak__spin_lock(&pool_lock);
	}
	if (pool_head || purged_head) {
		if (pool_head) {
			pg = pool_class[cls] ? pool_class[cls] : pool_head;
			pool_unlink(pg);
			HAK_GSTAT_SUB(hak__seg->global.unpurged_free_bytes, HAK_PAGE_SIZE);
		} else {
			pg = purged_head;
			purged_head = pg->next;
			pg->next = NULL;
			pg->purged = 0;
			HAK_GSTAT_SUB(hak__seg->global.purged_now_bytes, HAK_PAGE_SIZE);
		}
		pages_out++;
		hak__spin_unlock(&pool_lock);
		HAK_STAT_ADD(st->pages_reused, 1);
		return pg;
	}
	if ((!arena_current || arena_full(arena_current)) && arena_spare) {
		arena_current = arena_spare;
		arena_spare = NULL;
	}
	if (arena_current && !arena_full(arena_current)) {
		pg = arena_carve(arena_current);
		pages_out++;
		hak__spin_unlock(&pool_lock);
		HAK_STAT_ADD(st->pages_from_os, 1);
		return pg;
	}
	hak__spin_unlock(&pool_lock);

	struct hak_arena *fresh = arena_new(); /* no system call under the lock */
	if (!fresh)
		return NULL;
	hak__spin_lock(&pool_lock);
	if (!arena_current || arena_full(arena_current)) {
		arena_current = fresh;
		fresh = NULL;
	} else if (!arena_spare) { /* another thread installed one meanwhile */
		arena_spare = fresh;
		fresh = NULL;
	}
	pg = arena_carve(arena_current);
	pages_out++;
	hak__spin_unlock(&pool_lock);
	if (fresh) { /* a third arena in the race: not needed */
		hak__map_set(fresh, HAK_ARENA_SIZE, HAK_MAP_NONE);
		arena_unmap(fresh);
		HAK_GSTAT_SUB(hak__seg->global.mapped_bytes, HAK_ARENA_SIZE);
	}
	HAK_STAT_ADD(st->pages_from_os, 1);
	return pg;
}

/* Return an empty page (no live block, no remote block) to the pool.  The
 * caller held it; from here on nobody does. */
void hak__page_release(struct hak_page *pg)
{
	hak__owner_give(pg, HAK_OWNER_FREE, pg->class_idx);
	pg->free = NULL;
	pg->used = 0;
	pg->in_list = 0;
	pg->freed_ns = hak__now_ns();
	hak__spin_lock(&pool_lock);
	pool_push_head(pg);
	pages_out--;
	bool over = pool_pages > HAK_POOL_SURGE * pool_keep_pages();
	HAK_GSTAT_ADD(hak__seg->global.unpurged_free_bytes, HAK_PAGE_SIZE);
	hak__spin_unlock(&pool_lock);
	if (over)
		hak__background_urge();
	else
		hak__background_kick();
}

/* Purge free pages that entered the pool before older_than_ns (all of them
 * when all is set), and the oldest beyond the pool's keep whatever their
 * age -- if they lasted there.  A program whose need for pages swings (a
 * thread that exits hands its pages back, its successor takes as many)
 * fills the pool past the keep and drains it again within milliseconds;
 * purging that swing has every page of it faulted back in (Larson 2-32 KiB:
 * half a gigabyte a second, 10% of its time).  So the pages beyond the
 * keep go once the pool has stayed above keep + their number for a whole
 * window of half the purge delay, and those beyond HAK_POOL_SURGE times the
 * keep at once (hak__page_release urges the background thread then).
 * Returns the bytes purged.  madvise runs with the lock dropped, on pages
 * taken out of the pool meanwhile. */
size_t hak__pages_purge(uint64_t older_than_ns, bool all)
{
	enum { BATCH = 64 };
	struct hak_page *batch[BATCH];
	size_t purged = 0;
	uint64_t now = hak__now_ns();
	hak__spin_lock(&pool_lock);
	size_t keep = pool_keep_pages();
	/* pages beyond the keep that lasted the window, if it is over */
	bool window = now - low_since_ns >= (uint64_t)hak__opt.purge_delay_ms * 500000u;
	size_t lasting = window && pool_low > keep ? pool_low - keep : 0;
	if (window) {
		low_since_ns = now;
		pool_low = pool_pages; /* lowered as the purge below takes pages */
	}
	hak__spin_unlock(&pool_lock);
	for (;;) {
		unsigned n = 0;
		hak__spin_lock(&pool_lock);
		struct hak_page *pg = pool_tail;
		keep = pool_keep_pages();
		while (pg && n < BATCH &&
		       (all || pg->freed_ns < older_than_ns || lasting ||
			pool_pages > HAK_POOL_SURGE * keep)) {
			struct hak_page *prev = pg->prev;
			if (lasting)
				lasting--;
			pool_unlink(pg);
			HAK_GSTAT_SUB(hak__seg->global.unpurged_free_bytes, HAK_PAGE_SIZE);
			batch[n++] = pg;
			pg = prev;
		}
		purging += n;
		hak__spin_unlock(&pool_lock);
		if (!n)
			return purged;
		struct iovec ranges[BATCH];
		for (unsigned i = 0; i < n; i++) {
			ranges[i].iov_base = hak__page_start(batch[i]);
			ranges[i].iov_len = HAK_PAGE_SIZE;
			batch[i]->purged = 1;
		}
		hak__os_purge_ranges(ranges, n);
		purged += (size_t)n * HAK_PAGE_SIZE;
		HAK_GSTAT_ADD(hak__seg->global.purged_bytes, (uint64_t)n * HAK_PAGE_SIZE);
		hak__spin_lock(&pool_lock);
		for (unsigned i = 0; i < n; i++) {
			batch[i]->next = purged_head;
			purged_head = batch[i];
			HAK_GSTAT_ADD(hak__seg->global.purged_now_bytes, HAK_PAGE_SIZE);
		}
		purging -= n;
		hak__spin_unlock(&pool_lock);
		if (n < BATCH)
			return purged;
	}
}

/* In a forked child: a purge that was in flight in the parent's background
 * thread never finishes here; its pages (at most one batch) are lost to
 * the child, and nobody may wait for them. */
void hak__arena_fork_child(void)
{
	purging = 0;
}

void hak__arena_lock_all(void)
{
	hak__spin_lock(&pool_lock);
}

void hak__arena_unlock_all(void)
{
	hak__spin_unlock(&pool_lock);
}

