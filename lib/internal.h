/*
 * internal.h - types, invariants and cross-file prototypes of libhakmem.
 *
 * Names: public hak_* (hakmem.h); shared internal hak__* (hidden); static
 * for file-local.  Prototypes are grouped under the file that defines them.
 */
#ifndef HAKMEM_INTERNAL_H
#define HAKMEM_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hakmem.h"
#include "statseg.h"

#define HAK_HIDDEN __attribute__((visibility("hidden")))
#define HAK_PUBLIC __attribute__((visibility("default")))
/* An exported name for a function defined in the same file. */
#define HAK_ALIAS(name, target) \
	extern __typeof(target) name __attribute__((alias(#target), visibility("default")))
#define HAK_NOINLINE __attribute__((noinline))
/* The entry points of the fast paths start on a cache line: where the
 * linker happened to place them decided how many lines free's 38
 * instructions spanned, and that moved glibc's bench-malloc-simple by 4%
 * from one build to the next with no change to their code. */
#define HAK_ENTRY_ALIGN __attribute__((aligned(64)))
#define HAK_COLD __attribute__((cold, noinline))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define HAK_CACHE_LINE 64

/* Single-writer counter update: a plain add, no lock prefix.  On x86-64 one
 * add instruction on memory (a relaxed atomic load and store would be three:
 * compilers do not fuse them); readers load the word relaxed, and an aligned
 * 8-byte store is never torn. */
#if defined(__x86_64__)
#define HAK_STAT_ADD(field, n) \
	__asm__ volatile("addq %1, %0" : "+m"(field) : "er"((uint64_t)(n)))
#else
#define HAK_STAT_ADD(field, n)                                                   \
	atomic_store_explicit((_Atomic uint64_t *)&(field),                      \
			      atomic_load_explicit((_Atomic uint64_t *)&(field), \
						   memory_order_relaxed) + (n),  \
			      memory_order_relaxed)
#endif
#define HAK_GSTAT_ADD(field, n) \
	atomic_fetch_add_explicit((_Atomic uint64_t *)&(field), (n), memory_order_relaxed)
#define HAK_GSTAT_SUB(field, n) \
	atomic_fetch_sub_explicit((_Atomic uint64_t *)&(field), (n), memory_order_relaxed)

/* Geometry ------------------------------------------------------------- */
#define HAK_PAGE_SHIFT 16
#define HAK_PAGE_SIZE ((size_t)1 << HAK_PAGE_SHIFT) /* 64 KiB pages */
#define HAK_ARENA_SHIFT 22
#define HAK_ARENA_SIZE ((size_t)1 << HAK_ARENA_SHIFT) /* 4 MiB arenas */
#define HAK_ARENA_PAGES (HAK_ARENA_SIZE / HAK_PAGE_SIZE) /* 64; page 0 holds metadata */
#define HAK_MIN_ALIGN 16
#define HAK_SMALL_MAX 32768 /* largest size served from pages */
#define HAK_NUM_CLASSES 40
#define HAK_OS_PAGE 4096
#define HAK_MAX_ALIGN_LARGE ((size_t)1 << 30) /* alignments above this: ENOMEM/EINVAL */

/* Free block.  The first word links the free list, encoded (see
 * hak__link_enc) so that a link damaged by a write after free is caught
 * rather than followed.  The second holds the free marker
 * (hak__free_marker(block)) while the block is free, so that a double free
 * is caught in O(1).  Every class is at least 16 bytes. */
struct hak_block {
	struct hak_block *next;
	uintptr_t marker;
};

/* Page owner word: a heap pointer (64-byte aligned) or'ed with flags.
 *   owner == H             H holds the page: only H's thread touches the
 *                          owner-local fields, with plain loads/stores.
 *   owner == H|FLOAT       the page is full or queued: nobody touches its
 *                          local fields until it wins a CAS to a held value.
 *   owner == H|FLOAT|BUSY  a drainer (roundrobin/hybrid/sweeper) has it.
 *   owner == HAK_OWNER_POOL   page is in the shared pool (MF2 disabled).
 *   owner == HAK_OWNER_FREE   page is in the process free-page pool. */
#define HAK_OWNER_FLOAT ((uintptr_t)1)
#define HAK_OWNER_BUSY ((uintptr_t)2)
#define HAK_OWNER_FLAGS ((uintptr_t)3)
#define HAK_OWNER_POOL ((uintptr_t)4)
#define HAK_OWNER_FREE ((uintptr_t)8)

/* Lists of held pages (struct hak_page.in_list). */
#define HAK_LIST_NONE 0    /* active page, floating, or in no list */
#define HAK_LIST_PARTIAL 1 /* held, has free or uncarved blocks */
#define HAK_LIST_FULL 2    /* held, no free block: floated in batches later */

/* A 64 KiB page's descriptor, out of band in its arena's metadata page so
 * that the whole 64 KiB holds blocks.
 *
 * Invariants:
 *  - used == blocks carved - blocks on the local free list
 *          == live blocks + blocks on the remote list.
 *  - free/used/carved/next/prev are touched only by the holder (see owner).
 *  - remote is an MPSC Treiber stack: pushers CAS with release; the holder
 *    takes the whole list with an acquire exchange.
 *  - in_pending is 1 while the page is linked on a queue (via pending_next)
 *    or held by the consumer that popped it; whoever sets it 0->1 links it;
 *    the consumer either links it again or clears it (before draining).
 */
struct hak_page {
	/* holder-local line: written by the holder on every allocation */
	struct hak_block *free;   /* local free list */
	uint32_t used;
	uint32_t carved;          /* blocks carved so far (lazy carving) */
	uint8_t in_list;          /* HAK_LIST_*: which of the holder's lists */
	uint8_t purged;           /* memory was returned to the OS */
	uint16_t pad2;
	uint32_t full_tick;       /* holder's refill count when it became full */
	struct hak_page *next, *prev; /* holder's partial list / free pool */
	uint64_t freed_ns;        /* when it entered the free pool */
	struct hak_page *cnext, *cprev; /* free pool: the pages last of its class */
	/* shared line: what every free reads (the owner, and the class's
	 * constants beside it, so that a free touches this line only) and
	 * what other threads write (remote frees, transfers) */
	_Alignas(HAK_CACHE_LINE) _Atomic(struct hak_block *) remote;
	_Atomic uintptr_t owner;
	_Atomic(struct hak_page *) pending_next;
	_Atomic uint64_t last_transfer_ns; /* lease: time of last ownership change */
	_Atomic uint32_t in_pending;
	_Atomic uint32_t float_gen; /* owner heap's generation when it floated the page */
	uint32_t capacity;        /* blocks that fit in the page */
	uint32_t block_size;
	uint32_t recip;           /* hak__class_geom's: block starts (hak__block_start_at) */
	uint32_t bound;
	uint8_t class_idx;
};
_Static_assert(sizeof(struct hak_page) == 2 * HAK_CACHE_LINE,
	       "a page descriptor is two cache lines");

/* Intrusive doubly linked lists of pages, pushed at the head; tail is NULL
 * for a list that keeps none.  HAK_PLIST(name, nx, pv) defines name_push
 * and name_unlink over the links nx/pv of struct hak_page: the holder's
 * lists and the free pool use next/prev (hak__plist_*), the pool's lists by
 * class cnext/cprev (arena.c). */
#define HAK_PLIST(name, nx, pv)                                                        \
	static inline void name##_push(struct hak_page **head, struct hak_page **tail,   \
				       struct hak_page *pg)                              \
	{                                                                                \
		pg->pv = NULL;                                                           \
		pg->nx = *head;                                                          \
		if (*head)                                                               \
			(*head)->pv = pg;                                                \
		else if (tail)                                                           \
			*tail = pg;                                                      \
		*head = pg;                                                              \
	}                                                                                \
	static inline void name##_unlink(struct hak_page **head, struct hak_page **tail, \
					 struct hak_page *pg)                            \
	{                                                                                \
		if (pg->pv)                                                              \
			pg->pv->nx = pg->nx;                                             \
		else                                                                     \
			*head = pg->nx;                                                  \
		if (pg->nx)                                                              \
			pg->nx->pv = pg->pv;                                             \
		else if (tail)                                                           \
			*tail = pg->pv;                                                  \
		pg->nx = pg->pv = NULL;                                                  \
	}
HAK_PLIST(hak__plist, next, prev)

/* An arena's first page holds its header and the descriptors of its pages.
 * The descriptors start at one of HAK_ARENA_COLOURS offsets, picked by the
 * arena's address: arenas are 4 MiB aligned, so descriptors at the same
 * offset in every arena would all fall in the same few cache sets, and a
 * free reads one at random (the colour costs no instruction: see
 * hak__page_of).  The header sits in colour 0's slot of page 0, which
 * describes no page. */
#define HAK_ARENA_COLOURS 8
struct hak_arena {
	uint32_t pages_carved;    /* pages [1, pages_carved] have been handed out */
	uint32_t hint_row;        /* outside the span: its row of hints, 0 for none */
};
_Static_assert(HAK_ARENA_COLOURS * HAK_ARENA_PAGES * sizeof(struct hak_page) <= HAK_PAGE_SIZE,
	       "every colour's descriptors fit in an arena's first page");
_Static_assert(sizeof(struct hak_arena) <= offsetof(struct hak_page, remote),
	       "the header leaves page 0's shared line (its owner) alone");

/* A pending queue: MPSC Treiber stack of pages.  Producers (remote frees)
 * push with CAS; consumers pop one page at a time while holding lock
 * (try-lock), so pops never race with pops and the stack has no ABA. */
struct hak_pending {
	_Atomic(struct hak_page *) head;
	_Atomic uint32_t lock;
	uint32_t pad;
};

/* A class's block geometry in a page, what free's block-start check
 * (hak__block_start_at) reads: one 8-byte word per class. */
struct hak_geom {
	uint32_t recip; /* ceil(2^32 / size) */
	uint32_t bound; /* capacity * (size * recip - 2^32), or 1 */
};

/* Local block cache: the last blocks a thread freed into pages it holds,
 * handed out again first.  It batches the page-list transitions that a
 * free-one/allocate-one pattern would otherwise pay per call.  A cached
 * block still counts in its page's used (it is not on any page list) and
 * carries the free marker, so a double free is still caught.  Each class's
 * cache is a stack of block pointers in the heap's tc_slots, below a NULL
 * slot of its own: malloc finds the cache empty when the slot under the
 * top holds NULL, with no count to compare, and free full when the top
 * reaches the end. */
#define HAK_TC_SLOTS (40288 + HAK_NUM_CLASSES) /* the sum of hak__tc_max(), and
						  * the NULL below each cache */
HAK_HIDDEN extern const uint16_t hak__tc_cap[HAK_NUM_CLASSES];
/* The bytes of blocks by which a heap's caches may grow past their caps in
 * all (hak__tc_grow): room for the four largest classes to double or
 * triple. */
#define HAK_TC_GROW_BUDGET ((size_t)8 << 20)

/* Per-thread heap.  Only its thread touches active[], the lists and the
 * cache; other threads only push onto pending[]. */
struct hak_heap {
	struct hak_block **tc_top[HAK_NUM_CLASSES]; /* each class's cache: above
						    * its newest block */
	struct hak_block **tc_end[HAK_NUM_CLASSES]; /* ... and past its last slot */
	uintptr_t hint_self;      /* what this heap's owner hints hold above their
				   * class byte (hak__hints): free compares */
	struct hak_geom geom[HAK_NUM_CLASSES]; /* hak__class_geom, beside the cache */
	struct hak_page *active[HAK_NUM_CLASSES]; /* never NULL: hak__empty_page */
	struct hak_seg_slot *st;  /* this heap's counters (single writer) */
	int64_t prof_left;        /* bytes to the next profile sample (prof.c):
				   * malloc subtracts, a negative value samples */
	uint32_t drain_tick;      /* frees until the next roundrobin/hybrid drain
				   * (counted in hak__heap_drain_tick) */
	uint32_t rr_cursor;       /* roundrobin position (class * heaps) */
	uint32_t refills;         /* slow-path refills so far: the age of full pages */
	_Atomic uint32_t gate;    /* > 0 while the thread is inside a slow path
				   * (fork.c): written by the owner only */
	_Atomic uint32_t held_shut; /* another thread is taking over this heap's
				     * held pages (quiet_holder in heap.c): 1, or 2
				     * once the owner waits at its gate */
	_Atomic uint64_t own_mask; /* classes whose own queue got pages since the
				    * last own_queues_refresh: set by enqueuers; and
				    * HAK_OWN_ALWAYS under roundrobin and hybrid.
				    * Not 0: free ends in hak__heap_drain_tick */
	struct hak_page *partial[HAK_NUM_CLASSES]; /* held pages with free blocks */
	struct hak_page *full[HAK_NUM_CLASSES];    /* held pages without: newest */
	struct hak_page *full_tail[HAK_NUM_CLASSES]; /* ... and oldest */
	struct hak_heap *next_heap;  /* registry (never unlinked) */
	struct hak_heap *next_free;  /* recycled heaps */
	_Atomic uint32_t alive;   /* 1 while a thread owns this heap */
	_Atomic uint32_t gen;     /* bumped when a thread gives the heap up */
	uint32_t index;           /* registry position; stats slot */
	struct hak_heap *quiet_from; /* the holder of the last pages this heap
				      * freed remotely into, its allocations then,
				      * the frees since, and its allocations at
				      * our last takeover (quiet_holder in heap.c) */
	uint64_t quiet_allocs, quiet_taken;
	uint32_t quiet_frees, quiet_window, quiet_refills;
	bool quiet_on;            /* quiet_from was quiet at the last look */
	bool quiet_robbed;        /* (as a holder) pages of ours were taken over
				   * since our last refill: set by the taker */
	_Atomic uint32_t quiet_shift; /* (as a holder) takers wait 2^shift times
				       * HAKMEM_QUIET_FREES: one more each time we
				       * allocated again after a takeover */
	uint64_t idle_allocs;     /* allocations when the background thread
				   * last looked, and whether h then looked
				   * idle with queued pages (it alone writes
				   * both): see hak__heaps_reclaim_idle */
	bool idle_pick;
	pid_t tid;
	struct hak_seg_slot own_stats; /* used when not published */
	uint64_t prof_rng;        /* prof.c: the interval generator's state */
	uint8_t prof_armed;       /* prof.c: prof_left holds a drawn interval */
	uint8_t prof_busy;        /* prof.c: this thread is taking a sample */
	/* pending[]: floating pages with remote frees, adoptable by anyone;
	 * own_q[]: pages this heap holds that got remote frees (only it pops) */
	_Alignas(HAK_CACHE_LINE) struct hak_pending pending[HAK_NUM_CLASSES];
	struct hak_pending own_q[HAK_NUM_CLASSES];
	struct hak_block **tc_first[HAK_NUM_CLASSES]; /* each cache's first slot */
	size_t tc_grown;          /* bytes the caches grew past their caps */
	struct hak_block *tc_slots[HAK_TC_SLOTS];
};

/* The blocks in class c's cache, and the most it holds now. */
static inline unsigned hak__tc_count(const struct hak_heap *h, unsigned c)
{
	return (unsigned)(h->tc_top[c] - h->tc_first[c]);
}
static inline unsigned hak__tc_capacity(const struct hak_heap *h, unsigned c)
{
	return (unsigned)(h->tc_end[c] - h->tc_first[c]);
}

/* Options (options.c) ------------------------------------------------- */
enum hak_strategy {
	HAK_DRAIN_OWNER,
	HAK_DRAIN_ROUNDROBIN,
	HAK_DRAIN_HYBRID,
	HAK_DRAIN_ADOPT,
};

struct hak_options {
	int strategy;            /* HAKMEM_DRAIN */
	unsigned drain_period;   /* HAKMEM_DRAIN_PERIOD: frees between drains */
	unsigned lease_us;       /* HAKMEM_LEASE_US */
	unsigned scan_budget;    /* HAKMEM_SCAN_BUDGET: pages examined per adoption */
	unsigned quiet_frees;    /* HAKMEM_QUIET_FREES: remote frees into a quiet
				  * holder's pages before we take them, 0 = never */
	unsigned sweep_ms;       /* HAKMEM_SWEEP_MS: background sweeper, 0 = off */
	unsigned purge_delay_ms; /* HAKMEM_PURGE_DELAY_MS */
	unsigned purge_keep_pct; /* HAKMEM_PURGE_KEEP_PCT: free pages kept, % of in use */
	bool mf2;                /* HAKMEM_MF2_ENABLE */
	bool stats;              /* HAKMEM_STATS */
	bool show_stats;         /* HAKMEM_SHOW_STATS */
	bool background;         /* HAKMEM_BACKGROUND: purge/sweep thread */
	size_t large_cache;      /* HAKMEM_LARGE_CACHE_MB in bytes */
	size_t span_max;         /* HAKMEM_SPAN_MAX_MB in bytes: 0 = no span tier */
	unsigned span_keep_pct;  /* HAKMEM_SPAN_KEEP_PCT: dirty free spans kept, % of in use */
	unsigned check;          /* HAKMEM_CHECK: 0, 1 or 2 (guard.c) */
	bool prof;               /* HAKMEM_PROFILE: the heap profile is on */
	size_t prof_sample;      /* HAKMEM_PROFILE_SAMPLE: bytes per sample; 0 when
				  * HAKMEM_PROFILE is 0 (the profile is off) */
};
HAK_HIDDEN extern struct hak_options hak__opt;
HAK_HIDDEN void hak__options_init(void);
HAK_HIDDEN const char *hak__strategy_name(int s);

/* sizeclass.c ---------------------------------------------------------- */
HAK_HIDDEN extern const uint32_t hak__class_size[HAK_NUM_CLASSES];
HAK_HIDDEN extern const struct hak_geom hak__class_geom[HAK_NUM_CLASSES];
HAK_HIDDEN extern const uint16_t hak__class_capacity[HAK_NUM_CLASSES];
HAK_HIDDEN extern const uint8_t hak__class_index[(HAK_SMALL_MAX >> 4) + 1];
HAK_HIDDEN extern const uint8_t hak__class_mid[(HAK_SMALL_MAX >> 7) + 1];
/* What the cache of class c may grow to (hak__tc_grow): 2048 blocks for the
 * classes up to 512 bytes, whose caches start at 64 KiB of blocks; four
 * times their cap for the others.  A class of two to five blocks a page
 * whose cache overflows sends its oldest half back to the pages, which then
 * empty, go to the pool, are taken again and carved anew: on the published
 * Larson at 2-32 KiB (random sizes, so each class's count of live blocks
 * wanders) that was 12,000 pages a second in one thread; letting these
 * caches grow made it 5-8% faster, pinned to one CPU (BENCHMARKS.md,
 * session 10).  A program that holds more blocks of a small
 * class than its cache had frees and allocates them through the pages
 * otherwise (glibc's bench-malloc-simple, 1,600 blocks of 64 or 128 bytes:
 * 1.8 times the time per pair of 400 blocks). */
static inline unsigned hak__tc_max(unsigned c)
{
	return hak__class_size[c] <= 512 ? 2048 : 4u * hak__tc_cap[c];
}
HAK_HIDDEN unsigned hak__class_of_large(size_t size);

/* The class of size (<= HAK_SMALL_MAX): one table lookup, no branch. */
static inline unsigned hak__class_of(size_t size)
{
	return hak__class_index[(size + 15) >> 4];
}

/* os.c ------------------------------------------------------------------ */
HAK_HIDDEN void *hak__os_map(size_t size);
HAK_HIDDEN void *hak__os_map_aligned(size_t size, size_t align);
HAK_HIDDEN void *hak__os_reserve(size_t size, size_t align);
HAK_HIDDEN void *hak__os_map_reserved(void *p, size_t size);
HAK_HIDDEN void hak__os_unmap_reserved(void *p, size_t size);
HAK_HIDDEN bool hak__os_as_limited(void);
HAK_HIDDEN void hak__os_unmap(void *p, size_t size);
struct iovec;
HAK_HIDDEN void hak__os_purge_ranges(struct iovec *v, unsigned n);
HAK_HIDDEN extern _Atomic bool hak__os_vector_purge;
HAK_HIDDEN uint64_t hak__now_ns(void);
HAK_HIDDEN pid_t hak__gettid(void);
struct timespec;
HAK_HIDDEN void hak__futex_wait(_Atomic uint32_t *w, uint32_t val, const struct timespec *ts);
HAK_HIDDEN void hak__futex_wake(_Atomic uint32_t *w, int n);
HAK_HIDDEN bool hak__os_barrier_register(void);
HAK_HIDDEN void hak__os_barrier_all(void);
HAK_HIDDEN unsigned hak__os_ncpus(void);
HAK_HIDDEN void hak__spin_lock(_Atomic uint32_t *l);
HAK_HIDDEN void hak__spin_unlock(_Atomic uint32_t *l);
HAK_HIDDEN bool hak__spin_trylock(_Atomic uint32_t *l);
HAK_HIDDEN void hak__write_all(int fd, const char *buf, size_t len);
HAK_HIDDEN void hak__write_err(const char *a, const char *b, const char *c);
HAK_HIDDEN char *hak__fmt_hex(char *buf, uintptr_t v);
HAK_HIDDEN char *hak__fmt_u64(char *buf, uint64_t v);
/* "hakmem: call(): what: 0x...", one line on stderr, then abort() */
HAK_HIDDEN __attribute__((noreturn)) void hak__fatal_ptr(const char *call, const char *what,
							 const void *p);

/* map.c: which 64 KiB granules of the address space hakmem owns ---------- */
enum { HAK_MAP_NONE = 0, HAK_MAP_SMALL = 1, HAK_MAP_LARGE = 2 };
HAK_HIDDEN extern _Atomic(uint8_t *) hak__map_top[];
#define HAK_MAP_LEAF_SHIFT 16
static inline unsigned hak__map_kind(const void *p)
{
	uintptr_t g = (uintptr_t)p >> HAK_PAGE_SHIFT;
	if (unlikely(g >> 31)) /* beyond the 47-bit user address space */
		return HAK_MAP_NONE;
	uint8_t *leaf = atomic_load_explicit(&hak__map_top[g >> HAK_MAP_LEAF_SHIFT],
					     memory_order_acquire);
	if (unlikely(!leaf))
		return HAK_MAP_NONE;
	return atomic_load_explicit((_Atomic uint8_t *)&leaf[g & ((1u << HAK_MAP_LEAF_SHIFT) - 1)],
				    memory_order_relaxed);
}
HAK_HIDDEN int hak__map_set(void *p, size_t size, unsigned kind);
/* Two bytes per 4 MiB of the 47-bit address space: the row of owner hints
 * of an arena outside the span (from 1), else 0.  NULL until the first
 * arena outside the span. */
#define HAK_ARENA_TAB_LEN ((uintptr_t)1 << (47 - HAK_ARENA_SHIFT))
HAK_HIDDEN extern uint16_t *hak__arena_tab;
HAK_HIDDEN bool hak__arena_tab_set(const void *arena, unsigned row);
/* p's arena's row of hints if p is in an arena outside the span, else 0. */
static inline uintptr_t hak__arena_hint_row(const void *p)
{
	uintptr_t i = (uintptr_t)p >> HAK_ARENA_SHIFT;
	uint16_t *t = __atomic_load_n(&hak__arena_tab, __ATOMIC_ACQUIRE);
	return t && i < HAK_ARENA_TAB_LEN ? t[i] : 0;
}
/* arena.c: arenas, page descriptors, the free-page pool, purge ---------- */
static inline struct hak_arena *hak__arena_of(const void *p)
{
	return (struct hak_arena *)((uintptr_t)p & ~(HAK_ARENA_SIZE - 1));
}
#define HAK_DESC_SHIFT 7 /* log2 sizeof(struct hak_page) */
_Static_assert(sizeof(struct hak_page) == (size_t)1 << HAK_DESC_SHIFT, "HAK_DESC_SHIFT");
/* The descriptor of the page holding p: the page's index (address bits
 * 16-21) and the arena's colour (bits 22-24) shifted together into place. */
static inline struct hak_page *hak__page_of(const void *p)
{
	uintptr_t off = ((uintptr_t)p >> (HAK_PAGE_SHIFT - HAK_DESC_SHIFT)) &
			((HAK_ARENA_COLOURS * HAK_ARENA_PAGES - 1) << HAK_DESC_SHIFT);
	return (struct hak_page *)((uintptr_t)hak__arena_of(p) + off);
}
/* The descriptor of page idx of arena a. */
static inline struct hak_page *hak__arena_page(struct hak_arena *a, size_t idx)
{
	return hak__page_of((char *)a + idx * HAK_PAGE_SIZE);
}
/* The first byte of the page pg describes. */
static inline char *hak__page_start(const struct hak_page *pg)
{
	size_t idx = ((uintptr_t)pg >> HAK_DESC_SHIFT) & (HAK_ARENA_PAGES - 1);
	return (char *)hak__arena_of(pg) + idx * HAK_PAGE_SIZE;
}
/* Owner hints.  free() needs a page's holder and class; read from the
 * descriptor, that is one line per page (on Larson 16-32 KiB, 1,600 of
 * them, pushed out of L2 by the blocks' own lines), and the line missed on
 * most frees.  So each page also has a hint: a copy of its owner word with
 * its class in the low byte, written at every change of the owner, in one
 * dense array, a few cache lines and TLB entries for the whole heap.  The
 * array covers HAK_HINT_SPAN bytes of address space from hak__hint_base,
 * where arenas are asked to go (arena.c), so that free finds a page's hint
 * with a subtraction and a shift; an entry that no arena page wrote is 0.
 * A hint can be stale for a moment after an owner change; free trusts only
 * a hint that names the calling heap, and what it does then is safe even
 * if the page has just left that heap: it caches the block, and the
 * cache's flush checks the real owner (hak__heap_tc_flush).  Arenas
 * outside the span (beyond 16 GiB of them, or every arena under RLIMIT_AS)
 * have a row of 64 hints after the span's, which free finds through the
 * arena table (map.c): two more dependent loads.  Beyond HAK_HINT_ROWS of
 * those, frees take the general path. */
#define HAK_HINT_OWNER_SHIFT 8 /* owner words are below 2^56: heap
				   * pointers (47 bits) and the HAK_OWNER_ values */
#define HAK_HINT_ARENAS 4096
#define HAK_HINT_PAGES ((uintptr_t)HAK_HINT_ARENAS * HAK_ARENA_PAGES)
#define HAK_HINT_SPAN (HAK_HINT_PAGES * HAK_PAGE_SIZE)
/* Rows of hints for arenas outside the span, after the span's entries:
 * row r (from 1) is hak__hints[HAK_HINT_PAGES + (r - 1) * 64 + page]. */
#define HAK_HINT_ROWS 4096
/* hak__hint_base until hak__hints_init, and for good at HAKMEM_CHECK=2
 * (every free must then see the canary): every user-space address p
 * (below 2^47) is far out of the span, since p - base = p + 2^40. */
#define HAK_HINT_BASE_OFF ((uintptr_t)-1 << 40)
HAK_HIDDEN extern uintptr_t hak__hint_base;
HAK_HIDDEN extern _Atomic uintptr_t hak__hints[HAK_HINT_PAGES + HAK_HINT_ROWS * HAK_ARENA_PAGES];
HAK_HIDDEN void hak__hints_init(void);
/* p's entry of hak__hints, or an index >= HAK_HINT_PAGES for none. */
static inline uintptr_t hak__hint_index(const void *p)
{
	return ((uintptr_t)p - hak__hint_base) >> HAK_PAGE_SHIFT;
}
/* The entry of p's page in row (from 1) of an arena outside the span. */
static inline uintptr_t hak__hint_row_index(uintptr_t row, const void *p)
{
	return HAK_HINT_PAGES + (row - 1) * HAK_ARENA_PAGES +
	       (((uintptr_t)p >> HAK_PAGE_SHIFT) & (HAK_ARENA_PAGES - 1));
}
/* Set pg's hint to owner word o and class cls, values the caller knows:
 * it reads nothing of pg, which may change hands the moment the caller
 * lets it go.  So a thread that gives a page up (floats it, releases it,
 * ends its BUSY hold) writes the hint *before* its store to the owner
 * word (hak__owner_give), and one that takes a page writes it after its
 * CAS or store, as the holder; the owner word's ordering orders the two
 * hints. */
static inline void hak__hint_put(struct hak_page *pg, uintptr_t o, unsigned cls)
{
	const char *start = hak__page_start(pg);
	uintptr_t i = hak__hint_index(start);
	if (i >= HAK_HINT_PAGES) {
		const struct hak_arena *a = hak__arena_of(pg);
		if (!a->hint_row)
			return;
		i = hak__hint_row_index(a->hint_row, start);
	}
	atomic_store_explicit(&hak__hints[i], (o << HAK_HINT_OWNER_SHIFT) | cls,
			      memory_order_relaxed);
}
/* Give pg up: its owner word becomes o (a page of class cls), the hint
 * first.  Every path that lets a page go stores its owner word here, so
 * none can store it before the hint.  (seq_cst, the strongest order any
 * of them needs: the float checks the remote list after it; these are
 * slow paths.) */
static inline void hak__owner_give(struct hak_page *pg, uintptr_t o, unsigned cls)
{
	hak__hint_put(pg, o, cls);
	atomic_store_explicit(&pg->owner, o, memory_order_seq_cst);
}
HAK_HIDDEN struct hak_page *hak__page_alloc(unsigned cls, struct hak_seg_slot *st);
HAK_HIDDEN void hak__page_release(struct hak_page *pg);
HAK_HIDDEN size_t hak__pages_purge(uint64_t older_than_ns, bool all);
HAK_HIDDEN void hak__arena_lock_all(void);
HAK_HIDDEN void hak__arena_fork_child(void);
HAK_HIDDEN void hak__arena_unlock_all(void);

/* guard.c: misuse detection (HAKMEM_CHECK), keys, reports ----------------- */
struct hak_guard {
	uintptr_t secret;    /* per process, random: free markers, large headers */
	uintptr_t link_key;  /* per process, random: free-list link encoding */
	uintptr_t check_mask; /* ~0 when HAKMEM_CHECK >= 1, else 0: masks the checks */
	size_t small_limit;  /* sizes below it take the malloc fast path:
			      * HAK_SMALL_MAX + 1, or 0 when paranoid, so that
			      * every malloc takes the path that writes canaries */
	size_t fast_limit;   /* sizes below it take malloc's inline path:
			      * small_limit, or 0 with the heap profile on, so
			      * that only then does malloc count down its bytes */
	unsigned level;      /* HAKMEM_CHECK: 0 off, 1 default, 2 paranoid */
	unsigned slack;      /* bytes kept after each block for its canary */
};
HAK_HIDDEN extern struct hak_guard hak__guard;
#define HAK_CANARY_BYTES 8
HAK_HIDDEN void hak__guard_init(void);

static inline uintptr_t hak__free_marker(const void *b)
{
	return (uintptr_t)b ^ hak__guard.secret;
}
/* A link is stored xor'ed with its own address and the link key: the same
 * function encodes and decodes.  A stray write decodes to a random address,
 * which the readers' same-page test rejects (every free list of blocks
 * lives inside one 64 KiB page). */
static inline struct hak_block *hak__link_enc(const struct hak_block *at,
					      const struct hak_block *next)
{
	return (struct hak_block *)((uintptr_t)next ^ (uintptr_t)at ^ hak__guard.link_key);
}
#define hak__link_dec hak__link_enc
/* Whether decoded link next of block at is damaged: outside at's page and
 * not the NULL that ends a list.  The common case costs one branch. */
static inline bool hak__link_bad(const struct hak_block *at, const struct hak_block *next)
{
	return unlikely((((uintptr_t)next ^ (uintptr_t)at) & hak__guard.check_mask) >=
			HAK_PAGE_SIZE) && next != NULL;
}
/* The reports: noreturn, so that the fast paths that call them keep no
 * stack frame. */
HAK_HIDDEN __attribute__((noreturn, cold)) void hak__link_damaged(const struct hak_block *at);
HAK_HIDDEN __attribute__((noreturn, cold)) void hak__tc_damaged(const struct hak_block *b);
HAK_HIDDEN void hak__block_check(struct hak_page *pg, void *p, const char *call);
HAK_HIDDEN void hak__canary_set(void *p, size_t usable);
HAK_HIDDEN void hak__canary_check(void *p, size_t usable, const char *call);

/* page.c: carving, local free lists, remote lists ----------------------- */
HAK_HIDDEN extern struct hak_page hak__empty_page;
/* Whether p is the start of a block of a page of geometry (recip, bound):
 * one multiply and one compare, no division.  recip = ceil(2^32 / size)
 * = (2^32 + e) / size, e < size.  For an offset off = k * size + r in the
 * 64 KiB page (size <= 2^15), the low 32 bits of off * recip are
 * k * e + r * recip, without wrapping: k * e < 2^16, and r * recip is 0
 * for r = 0 and otherwise between recip >= 2^17 and 2^32 + e - recip.  So
 * they are below bound = capacity * e exactly for the block starts k <
 * capacity (bound <= 2^16); a size that is a power of two (e = 0) fills
 * its page, and every multiple of it in the page is a block start: bound
 * is 1 then.  (unit_sizeclass checks every offset of every class.) */
static inline bool hak__block_start_at(uint32_t recip, uint32_t bound, const void *p)
{
	/* pages are 64 KiB aligned: the offset comes from the address */
	return (uint32_t)((uint32_t)((uintptr_t)p & (HAK_PAGE_SIZE - 1)) * recip) < bound;
}
static inline bool hak__block_start(const struct hak_page *pg, const void *p)
{
	return hak__block_start_at(pg->recip, pg->bound, p);
}
/* The same from a class's entry of hak__class_geom (a page's geometry is
 * its class's). */
static inline bool hak__geom_block_start(struct hak_geom g, const void *p)
{
	return hak__block_start_at(g.recip, g.bound, p);
}
/* Pop the first block of pg's local free list (not empty), following the
 * encoded link with its check; the block is no longer free. */
static inline struct hak_block *hak__page_pop(struct hak_page *pg)
{
	struct hak_block *b = pg->free;
	struct hak_block *next = hak__link_dec(b, b->next);
	if (hak__link_bad(b, next))
		hak__link_damaged(b);
	pg->free = next;
	pg->used++;
	b->marker = 0;
	return b;
}
HAK_HIDDEN void hak__page_init(struct hak_page *pg, unsigned cls);
HAK_HIDDEN bool hak__page_extend(struct hak_page *pg);
HAK_HIDDEN unsigned hak__page_drain(struct hak_page *pg);
/* Push a block freed by a thread that does not hold the page.  Returns true
 * when the push took the remote list from empty to non-empty.  seq_cst so
 * that the pusher's following load of owner and the holder's float-then-
 * check in hak__heap_float() cannot both miss each other.  (Inline: the
 * remote free of alloc.c pushes without a call.) */
static inline bool hak__remote_push(struct hak_page *pg, struct hak_block *b)
{
	b->marker = hak__free_marker(b);
	struct hak_block *head = atomic_load_explicit(&pg->remote, memory_order_relaxed);
	do {
		b->next = hak__link_enc(b, head);
	} while (!atomic_compare_exchange_weak_explicit(&pg->remote, &head, b,
							memory_order_seq_cst,
							memory_order_relaxed));
	return head == NULL;
}

/* heap.c: thread heaps, registry, pending queues, adoption, strategies ---- */
HAK_HIDDEN extern struct hak_heap hak__empty_heap;
HAK_HIDDEN extern __thread struct hak_heap *hak__tl_heap
	__attribute__((tls_model("initial-exec")));
HAK_HIDDEN struct hak_heap *hak__heap_get(void);
/* Hand out the first free block of pg, which h holds (pg->free != NULL). */
static inline void *hak__page_take(struct hak_heap *h, struct hak_page *pg, unsigned cls)
{
	struct hak_block *b = hak__page_pop(pg);
	HAK_STAT_ADD(h->st->allocs[cls], 1);
	return b;
}
HAK_HIDDEN void *hak__heap_alloc_slow(struct hak_heap *h, unsigned cls);
HAK_HIDDEN void hak__heap_free_slow(struct hak_heap *h, struct hak_page *pg,
				    struct hak_block *b);
HAK_HIDDEN void hak__heap_tc_flush(struct hak_heap *h, unsigned cls, unsigned keep);
HAK_HIDDEN void hak__heap_remote_first(struct hak_page *pg, unsigned cls, struct hak_seg_slot *st);
/* A free by h of live block b of class cls into page pg that another heap
 * holds or floats: counted, pushed, and the page queued on a first push. */
static inline void hak__remote_free(struct hak_heap *h, struct hak_page *pg, struct hak_block *b,
				    unsigned cls)
{
	HAK_STAT_ADD(h->st->remote_frees, 1);
	HAK_STAT_ADD(h->st->frees[cls], 1);
	if (hak__remote_push(pg, b))
		hak__heap_remote_first(pg, cls, h->st);
}
/* Whether the thread that floated pg (owner value o) has exited since: its
 * heap is dead, or was recycled by another thread (a newer generation). */
static inline bool hak__owner_gone(struct hak_page *pg, uintptr_t o)
{
	struct hak_heap *from = (struct hak_heap *)(o & ~HAK_OWNER_FLAGS);
	return !atomic_load_explicit(&from->alive, memory_order_acquire) ||
	       atomic_load_explicit(&pg->float_gen, memory_order_relaxed) !=
		       atomic_load_explicit(&from->gen, memory_order_relaxed);
}
HAK_HIDDEN void hak__heap_drain_tick(struct hak_heap *h);
/* In own_mask for good under roundrobin and hybrid, whose drains come every
 * HAKMEM_DRAIN_PERIOD frees: every free then ends in the tick, which counts
 * them.  (Not a class: classes are below 64, and the loops over own_mask's
 * classes mask it off.) */
#define HAK_OWN_ALWAYS ((uint64_t)1 << 63)
HAK_HIDDEN void hak__heap_abandon(struct hak_heap *h);
/* Whether a remote free by h into a page of the heap in owner word o must
 * go through hak__heap_free_quiet: not when it only counts one more free
 * into the same holder's pages, which is every remote free of a
 * producer-consumer program between two looks (inline: a call there cost
 * the published xmalloc-test about 10%). */
static inline bool hak__quiet_due(struct hak_heap *h, uintptr_t o)
{
	return h->quiet_from != (struct hak_heap *)(o & ~HAK_OWNER_FLAGS) ||
	       ++h->quiet_frees >= h->quiet_window || h->quiet_on;
}
/* What hak__heap_free_quiet did with a remote free's block. */
enum { HAK_QUIET_REMOTE, HAK_QUIET_FREED, HAK_QUIET_HELD };
HAK_HIDDEN int hak__heap_free_quiet(struct hak_heap *h, struct hak_page *pg,
				    struct hak_block *b, uintptr_t o);
HAK_HIDDEN bool hak__tc_grow(struct hak_heap *h, unsigned cls);
HAK_HIDDEN void hak__heap_trim(struct hak_heap *h);
HAK_HIDDEN void hak__heaps_after_fork_child(struct hak_heap *self);
HAK_HIDDEN void hak__heaps_lock(void);
HAK_HIDDEN void hak__heaps_unlock(void);
HAK_HIDDEN struct hak_heap *hak__heaps_first(void);
HAK_HIDDEN struct hak_heap *hak__heap_next(struct hak_heap *h);
HAK_HIDDEN void hak__sweep_pending(void);
/* A heap counts as idle when it made no allocation between two looks of
 * the background thread this far apart (at least): see heap.c */
#define HAK_IDLE_LOOK_NS ((uint64_t)100 * 1000 * 1000)
HAK_HIDDEN size_t hak__heaps_reclaim_idle(uint64_t now, bool *watch);

/* pool.c: the shared pool that serves mid classes when MF2 is disabled --- */
#define HAK_POOL_MIN_CLASS_SIZE 2048
HAK_HIDDEN void *hak__pool_alloc(unsigned cls, struct hak_seg_slot *st);
HAK_HIDDEN void hak__pool_free(struct hak_page *pg, struct hak_block *b, struct hak_seg_slot *st);
HAK_HIDDEN void hak__pool_lock_all(void);
HAK_HIDDEN void hak__pool_unlock_all(void);

/* large.c: spans above HAK_SMALL_MAX ------------------------------------ */
struct hak_large {
	uint64_t magic;          /* hak__guard.secret ^ user pointer */
	void *base;              /* start of the mapping */
	size_t map_size;         /* length of the mapping */
	size_t size;             /* usable bytes from the user pointer */
	struct hak_region *region; /* span tier region, NULL for a mapping of its own */
	struct hak_large *deferred_next; /* freed, waiting for its shard's lock */
	uint64_t pad[2];         /* a profile sample (prof.c): its weight, and its
				  * entry + 1 | size << 16; 0 when not sampled */
};
#define HAK_LARGE_HDR sizeof(struct hak_large) /* 64 */
HAK_HIDDEN void *hak__large_alloc(size_t size, size_t align, bool zero);
HAK_HIDDEN void hak__large_free(void *p);
HAK_HIDDEN struct hak_large *hak__large_hdr(void *p, const char *call); /* validates; aborts */
HAK_HIDDEN size_t hak__large_purge(uint64_t older_than_ns, bool all);
HAK_HIDDEN void *hak__large_resize(void *p, size_t size);
HAK_HIDDEN void hak__large_lock_all(void);
HAK_HIDDEN void hak__large_unlock_all(void);

/* span.c: the span tier (blocks above HAK_SMALL_MAX up to span_max) ------ */
#define HAK_SPAN_SHARDS HAK_SEG_SPAN_SHARDS /* at most; as many as CPUs */
#define HAK_SPAN_ALIGN_MAX HAK_PAGE_SIZE /* larger alignments: own mapping */
struct hak_region;
HAK_HIDDEN void hak__span_init(void);
HAK_HIDDEN void *hak__span_alloc(uint32_t npages, unsigned shard, uint32_t *dirty_first,
				 uint32_t *dirty_n, struct hak_region **region);
HAK_HIDDEN void hak__span_free(struct hak_region *r, void *base, uint32_t npages, void *user);
HAK_HIDDEN bool hak__span_grow(struct hak_region *r, void *base, uint32_t npages,
			       uint32_t want, void *user);
HAK_HIDDEN void hak__span_shrink(struct hak_region *r, void *base, uint32_t npages,
				 uint32_t want, void *user);
HAK_HIDDEN size_t hak__span_purge(uint64_t older_than_ns, bool all);
HAK_HIDDEN void hak__span_lock_all(void);
HAK_HIDDEN void hak__span_unlock_all(void);

/* stats.c ----------------------------------------------------------------- */
HAK_HIDDEN extern struct hak_seg_header *hak__seg; /* never NULL after init */
HAK_HIDDEN struct hak_seg_slot *hak__stats_slot(unsigned index, struct hak_seg_slot *fallback);
HAK_HIDDEN void hak__stats_init(void);
HAK_HIDDEN void hak__stats_fork_prepare(void);
HAK_HIDDEN void hak__stats_fork_parent(void);
HAK_HIDDEN void hak__stats_fork_child(void);
HAK_HIDDEN void hak__stats_exit(void);
HAK_HIDDEN void hak__stats_name_late(void);
HAK_HIDDEN extern int hak__seg_unnamed;

/* On a slow path: a fork child's segment gets its name now, if it is due. */
static inline void hak__stats_publish(void)
{
	if (unlikely(__atomic_load_n(&hak__seg_unnamed, __ATOMIC_RELAXED)))
		hak__stats_name_late();
}
HAK_HIDDEN void hak__stats_print(int fd);

/* prof.c: the sampled heap profile -------------------------------------- */
/* HAKMEM_PROFILE_SAMPLE's default, when HAKMEM_PROFILE=1 turns the profile
 * on (off by default: BENCHMARKS.md has the cost) */
#define HAK_PROF_DEFAULT 2097152
HAK_HIDDEN void hak__prof_init(void);
/* The countdown of h went below zero at an allocation of size bytes: 0 if
 * it is not sampled (the countdown is reset), else the alignment the
 * sampled block must have.  The caller then allocates it from the large
 * tier with h->prof_busy set and calls hak__prof_record; caller is the
 * return address of the public entry point (where the program called). */
HAK_HIDDEN size_t hak__prof_take(struct hak_heap *h, size_t size);
HAK_HIDDEN void hak__prof_record(void *p, size_t size, void *caller);
HAK_HIDDEN void hak__prof_free(struct hak_large *hdr);
/* One subtract and branch on the fast path: whether this allocation
 * crosses the heap's countdown.  Threads without a heap yet all subtract
 * from the empty heap's (they go to the slow path at once, and prof_take
 * gives them no sample): a race whose loser's store only leaves a huge
 * count.  On x86-64 it is one sub instruction whose sign flag is the
 * answer, in assembly as HAK_STAT_ADD is (not a C data race). */
static inline bool hak__prof_due(struct hak_heap *h, size_t size)
{
#if defined(__x86_64__) && defined(__GCC_ASM_FLAG_OUTPUTS__)
	bool neg;
	__asm__ volatile("subq %2, %0" : "+m"(h->prof_left), "=@ccs"(neg) : "r"(size));
	return unlikely(neg);
#else
	_Atomic int64_t *c = (_Atomic int64_t *)&h->prof_left;
	int64_t left = (int64_t)((uint64_t)atomic_load_explicit(c, memory_order_relaxed) - size);
	atomic_store_explicit(c, left, memory_order_relaxed);
	return unlikely(left < 0);
#endif
}

/* init.c ------------------------------------------------------------------ */
HAK_HIDDEN extern _Atomic int hak__initialized;
HAK_HIDDEN void hak__init_slow(void);
static inline void hak__init(void)
{
	if (unlikely(!atomic_load_explicit(&hak__initialized, memory_order_acquire)))
		hak__init_slow();
}
HAK_HIDDEN void hak__thread_started(struct hak_heap *h);
HAK_HIDDEN void hak__background_kick(void);
HAK_HIDDEN void hak__background_urge(void);
HAK_HIDDEN void hak__background_poll(void);
HAK_HIDDEN void hak__purge_inline(void);

/* fork.c: the fork gate -------------------------------------------------- */
/* Every path other than the fast paths runs inside its heap's gate (threads
 * without a heap, and the background thread, share one counter); fork waits
 * until every gate is shut and keeps them from opening until it returns, so
 * that a fork child never inherits a heap in the middle of a slow path.
 * The fast paths need no gate: their stores are ordered so that any prefix
 * of them leaves the heap consistent (see fork.c). */
HAK_HIDDEN extern _Atomic uint32_t hak__forking;  /* 1 from fork_prepare to fork's return */
HAK_HIDDEN extern _Atomic uint32_t hak__gate_shared;
HAK_HIDDEN extern bool hak__gate_light;           /* membarrier registered */
HAK_HIDDEN extern __thread uint32_t hak__tl_shared_depth
	__attribute__((tls_model("initial-exec")));
HAK_HIDDEN void hak__gate_blocked(struct hak_heap *h, _Atomic uint32_t *gate, uint32_t was);
HAK_HIDDEN void hak__gate_init(void);
HAK_HIDDEN void hak__gate_close(void);
HAK_HIDDEN void hak__gate_open(void);
HAK_HIDDEN void hak__gate_fork_child(void);
HAK_HIDDEN bool hak__heap_shut(struct hak_heap *p);
HAK_HIDDEN void hak__heap_open(struct hak_heap *p);
/* A compiler barrier: no instruction, but stores on either side of it stay
 * in program order (which is all a fork child can observe of a thread). */
#define hak__store_order() atomic_signal_fence(memory_order_seq_cst)

/* Enter the gate of h (the calling thread's heap, or the empty heap);
 * returns the gate to pass to hak__gate_exit.  The owner's store and its
 * loads of hak__forking and of h's held_shut are ordered by the other
 * side's membarrier (an asymmetric fence: fork's, or that of a thread
 * taking over h's held pages), or by a seq_cst store where membarrier is
 * missing.  (held_shut shares the gate's line: the load costs nothing
 * more.) */
static inline _Atomic uint32_t *hak__gate_enter(struct hak_heap *h)
{
	_Atomic uint32_t *g;
	uint32_t was;
	if (unlikely(h == &hak__empty_heap)) {
		g = &hak__gate_shared;
		hak__tl_shared_depth++;
		was = atomic_fetch_add_explicit(g, 1, memory_order_seq_cst);
	} else {
		g = &h->gate;
		was = atomic_load_explicit(g, memory_order_relaxed);
		if (likely(hak__gate_light)) {
			atomic_store_explicit(g, was + 1, memory_order_relaxed);
			hak__store_order();
		} else {
			atomic_store_explicit(g, was + 1, memory_order_seq_cst);
		}
	}
	if (unlikely(atomic_load_explicit(&hak__forking, memory_order_seq_cst) |
		     atomic_load_explicit(&h->held_shut, memory_order_seq_cst)))
		hak__gate_blocked(h, g, was);
	return g;
}

static inline void hak__gate_exit(_Atomic uint32_t *g)
{
	if (unlikely(g == &hak__gate_shared)) {
		hak__tl_shared_depth--;
		atomic_fetch_sub_explicit(g, 1, memory_order_release);
		return;
	}
	atomic_store_explicit(g, atomic_load_explicit(g, memory_order_relaxed) - 1,
			      memory_order_release);
}

/* alloc.c ----------------------------------------------------------------- */
HAK_HIDDEN void *hak__malloc(size_t size);
HAK_HIDDEN void hak__free(void *p);
HAK_HIDDEN void *hak__aligned(size_t align, size_t size);
HAK_HIDDEN size_t hak__usable(void *p);
HAK_HIDDEN extern const char hak__call_free[], hak__call_realloc[];

#endif /* HAKMEM_INTERNAL_H */
