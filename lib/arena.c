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

static _Atomic uint32_t pool_lock;
/* Unpurged free pages, doubly linked: head newest, tail oldest. */
static struct hak_page *pool_head, *pool_tail;
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
	if (--pool_pages < pool_low)
		pool_low = pool_pages;
}

static void pool_push_head(struct hak_page *pg)
{
	hak__plist_push(&pool_head, &pool_tail, pg);
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

/* Owner hints of every arena's pages (see internal.h), 32 KiB per 64
 * arenas; rows handed out in order, never reused. */
_Atomic uintptr_t hak__hints[HAK_HINT_ARENAS][HAK_ARENA_PAGES];
static _Atomic uint32_t hint_rows;

static struct hak_arena *arena_new(void)
{
	struct hak_arena *a = hak__os_map_aligned(HAK_ARENA_SIZE, HAK_ARENA_SIZE);
	if (!a)
		return NULL;
	if (hak__map_set((char *)a + HAK_PAGE_SIZE, HAK_ARENA_SIZE - HAK_PAGE_SIZE,
			 HAK_MAP_SMALL) != 0) {
		hak__os_unmap(a, HAK_ARENA_SIZE);
		return NULL;
	}
	a->pages_carved = 0;
	/* its row of owner hints (row 0 is nobody's) */
	uint32_t row = atomic_fetch_add_explicit(&hint_rows, 1, memory_order_relaxed) + 1;
	a->hint_idx = row < HAK_HINT_ARENAS ? row : 0;
	hak__arena_tab_set(a, a->hint_idx);
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

/* A page for the caller to initialise, or NULL with ENOMEM. */
struct hak_page *hak__page_alloc(struct hak_seg_slot *st)
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
			pg = pool_head;
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
		hak__arena_tab_set(fresh, 0);
		hak__map_set(fresh, HAK_ARENA_SIZE, HAK_MAP_NONE);
		hak__os_unmap(fresh, HAK_ARENA_SIZE);
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
		for (unsigned i = 0; i < n; i++) {
			hak__os_purge(hak__page_start(batch[i]), HAK_PAGE_SIZE);
			batch[i]->purged = 1;
		}
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

