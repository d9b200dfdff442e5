/*
 * alloc.c - every allocation entry point.  The malloc and free fast paths
 * are here and nowhere else: a class lookup, the thread cache, the active
 * page's free list, and tail calls to the slow paths in heap.c, large.c and
 * pool.c.
 *
 * The public names (hak_malloc ..., and malloc ... unless built with
 * --disable-override) are aliases of the hidden hak__ functions, so that
 * internal calls never go through the PLT.
 */
#include "config.h"
#include "internal.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* malloc ------------------------------------------------------------------- */

/* Every allocation above the classes, and aligned ones no class serves. */
static HAK_NOINLINE void *large_alloc(size_t size, size_t align, bool zero)
{
	hak__init();
	_Atomic uint32_t *g = hak__gate_enter(hak__tl_heap);
	void *p = hak__large_alloc(size, align, zero);
	hak__gate_exit(g);
	hak__background_poll();
	return p;
}

/* The newest block of class c's thread cache, taken out of it; NULL when
 * the cache is empty.  (A cached block is checked for writes after free
 * when it leaves the cache for its page, in hak__heap_tc_flush, not here:
 * the store below must clear the marker anyway, and a check would add a
 * load and a branch to every malloc.  The store is not free either: on a
 * block whose line is no longer in the CPU's caches it waits for that
 * line as a load would, BENCHMARKS.md session 14.) */
static inline struct hak_block *tc_pop(struct hak_heap *h, size_t c)
{
	struct hak_block **top = h->tc_top[c];
	struct hak_block *b = top[-1]; /* NULL: the cache is empty */
	if (likely(b)) {
		h->tc_top[c] = top - 1;
		/* a fork child must not find b in the cache without its marker */
		hak__store_order();
		b->marker = 0;
		HAK_STAT_ADD(h->st->allocs[c], 1);
	}
	return b;
}

/* One block of class c once the thread cache is empty: the active page,
 * the slow path. */
static inline void *small_uncached(struct hak_heap *h, size_t c)
{
	struct hak_page *pg = h->active[c];
	if (likely(pg->free))
		return hak__page_take(h, pg, c);
	return hak__heap_alloc_slow(h, c);
}

/* One block of class c: the thread cache, then small_uncached. */
static inline void *small_alloc(struct hak_heap *h, size_t c)
{
	struct hak_block *b = tc_pop(h, c);
	if (likely(b))
		return b;
	return small_uncached(h, c);
}

/* Above the classes, or any size when blocks carry canaries (small_limit
 * is then 0). */
static HAK_NOINLINE void *malloc_rest(struct hak_heap *h, size_t size)
{
	if (hak__guard.slack && size <= HAK_SMALL_MAX - HAK_CANARY_BYTES) {
		unsigned c = hak__class_of(size + HAK_CANARY_BYTES);
		void *p = small_alloc(h, c);
		if (p)
			hak__canary_set(p, hak__class_size[c] - HAK_CANARY_BYTES);
		return p;
	}
	return large_alloc(size, HAK_MIN_ALIGN, false);
}

/* malloc without the profile's countdown */
static inline __attribute__((always_inline)) void *malloc_body(struct hak_heap *h, size_t size)
{
	if (likely(size < hak__guard.small_limit))
		return small_alloc(h, hak__class_of(size));
	return malloc_rest(h, size);
}

/* Heap profile (prof.c) ------------------------------------------------------
 * A sampled block comes from the large tier, whose header records the
 * sample, so that its free needs no test on the free fast path. */

/* A sampled allocation of size bytes at align; caller is where the program
 * called the entry point. */
static HAK_NOINLINE void *prof_alloc(struct hak_heap *h, size_t size, size_t align, bool zero,
				     void *caller)
{
	_Atomic uint32_t *g = hak__gate_enter(h);
	h->prof_busy = 1;
	void *p = hak__large_alloc(size, align, zero);
	if (p)
		hak__prof_record(p, size, caller);
	h->prof_busy = 0;
	hak__gate_exit(g);
	hak__background_poll();
	return p;
}

/* Whether the profile is on and h's countdown crossed zero at size bytes
 * (off, the countdown is not touched: heapless threads share one). */
static inline bool prof_counts(struct hak_heap *h, size_t size)
{
	return hak__opt.prof_sample && hak__prof_due(h, size);
}

/* A thread's first allocation comes with the empty heap: with the profile
 * on, the thread gets its heap now, so that this allocation can be sampled
 * too (every allocation is, at HAKMEM_PROFILE_SAMPLE=1). */
static struct hak_heap *prof_heap(struct hak_heap *h)
{
	if (likely(h != &hak__empty_heap))
		return h;
	hak__init();
	if (!hak__opt.prof_sample)
		return h;
	_Atomic uint32_t *g = hak__gate_enter(h);
	int saved = errno;
	struct hak_heap *nh = hak__heap_get();
	errno = saved;
	hak__gate_exit(g);
	return nh ? nh : h;
}

/* The countdown crossed zero in malloc: a sample, or a fresh countdown.
 * Reached by a tail call from the entry point, so that the return address
 * is the program's.  (size first: it stays in malloc's argument register,
 * which saves the fast path a move.) */
static HAK_NOINLINE void *malloc_prof(size_t size, struct hak_heap *h)
{
	h = prof_heap(h);
	size_t align = hak__prof_take(h, size);
	if (!align)
		return malloc_body(h, size);
	return prof_alloc(h, size, align, false, __builtin_return_address(0));
}

/* Every malloc that leaves the inline path: sizes above the classes, and
 * with the heap profile on every size, which counts down here (so that the
 * inline path has no countdown: with the profile off, the default, malloc
 * costs what it did without it).  Reached by a tail call, as malloc_prof
 * is from here, so that a sample's return address is the program's. */
static HAK_NOINLINE void *malloc_other(struct hak_heap *h, size_t size)
{
	if (prof_counts(h, size))
		return malloc_prof(size, h);
	return malloc_body(h, size);
}

/* malloc's whole fast path, inlined into malloc and operator new alike */
static inline __attribute__((always_inline)) void *malloc_inline(size_t size)
{
	struct hak_heap *h = hak__tl_heap;
	if (likely(size < hak__guard.fast_limit))
		return small_alloc(h, hak__class_of(size));
	return malloc_other(h, size);
}

HAK_ENTRY_ALIGN void *hak__malloc(size_t size)
{
	return malloc_inline(size);
}

/* free --------------------------------------------------------------------- */

static void free_checked(struct hak_heap *h, struct hak_page *pg, struct hak_block *b);

/* Everything but a free into a page h holds: p outside the arenas (NULL,
 * a large block, a foreign pointer), in an arena's metadata page, in a
 * page another heap holds; and every free at HAKMEM_CHECK=2, which keeps
 * the arena table empty (see hak__guard_init) so that the fast path never
 * takes a block without checking its canary. */
static HAK_NOINLINE void free_generic(struct hak_heap *h, void *p)
{
	if (!p)
		return;
	unsigned kind = hak__map_kind(p);
	if (kind == HAK_MAP_NONE)
		hak__fatal_ptr(hak__call_free, "pointer not allocated by hakmem", p);
	struct hak_page *pg = kind == HAK_MAP_SMALL ? hak__page_of(p) : NULL;
	if (pg && atomic_load_explicit(&pg->owner, memory_order_relaxed) == (uintptr_t)h)
		return free_checked(h, pg, p);
	_Atomic uint32_t *g = hak__gate_enter(h);
	if (pg)
		hak__heap_free_slow(h, pg, p);
	else
		hak__large_free(p);
	hak__gate_exit(g);
	/* (no hak__background_poll here: see init.c) */
}

/* Into the thread cache of class c at top, a free slot (a block of a
 * page h holds, already checked).  Both words of the block get the free
 * marker fm: the second finds a double free, both together a write after
 * free when the block leaves the cache for its page.  The top is stored
 * last, so that a fork child sees b in the cache only once it is marked. */
static inline void tc_push(struct hak_heap *h, size_t c, struct hak_block **top,
			   struct hak_block *b, uintptr_t fm)
{
	b->marker = fm;
	b->next = (struct hak_block *)fm;
	*top = b;
	hak__store_order();
	h->tc_top[c] = top + 1;
}

/* Whether a free ends in the heap's tick (hak__heap_drain_tick): pages
 * came onto h's own queues, or (HAK_OWN_ALWAYS) every free under
 * roundrobin and hybrid.  A load and a test: a count of frees was a
 * read-modify-write of memory on every free, one chain of dependent stores
 * from free to free (glibc's bench-malloc-simple: 4-7% of the time). */
static inline bool tick_due(struct hak_heap *h)
{
	return atomic_load_explicit(&h->own_mask, memory_order_relaxed) != 0;
}

/* The cache of class c is full: make room, then push. */
static HAK_NOINLINE void free_cache_full(struct hak_heap *h, unsigned c, struct hak_block *b,
					 uintptr_t fm)
{
	_Atomic uint32_t *g = hak__gate_enter(h);
	if (!hak__tc_grow(h, c))
		hak__heap_tc_flush(h, c, hak__tc_capacity(h, c) / 2);
	tc_push(h, c, h->tc_top[c], b, fm);
	hak__gate_exit(g);
	if (tick_due(h))
		hak__heap_drain_tick(h);
}

/* A free into a page of class c that h holds, the checks done; fm is b's
 * free marker. */
static inline void free_held(struct hak_heap *h, size_t c, struct hak_block *b, uintptr_t fm)
{
	struct hak_block **top = h->tc_top[c];
	HAK_STAT_ADD(h->st->frees[c], 1);
	if (unlikely(top == h->tc_end[c]))
		return free_cache_full(h, c, b, fm);
	tc_push(h, c, top, b, fm);
	if (unlikely(tick_due(h)))
		return hak__heap_drain_tick(h);
}

/* A suspect block (reported unless HAKMEM_CHECK=0) or any block at level
 * 2, in a page h holds. */
static HAK_NOINLINE void free_checked(struct hak_heap *h, struct hak_page *pg, struct hak_block *b)
{
	hak__block_check(pg, b, hak__call_free);
	free_held(h, pg->class_idx, b, hak__free_marker(b));
}

/* Whether a free by h into page pg, whose owner word is o (not h), is a
 * plain remote push: o is another heap's, holding pg or floating it while
 * its thread lives (a floating page of ours, or of an exited thread, is
 * claimed instead, by hak__heap_free_slow). */
static inline bool remote_plain(struct hak_heap *h, struct hak_page *pg, uintptr_t o)
{
	if (o <= HAK_OWNER_FREE || (o & HAK_OWNER_BUSY))
		return false;
	if (!(o & HAK_OWNER_FLOAT))
		return true;
	return (o & ~HAK_OWNER_FLAGS) != (uintptr_t)h && !hak__owner_gone(pg, o);
}

/* A free into a page that another heap holds (owner word o): a valid,
 * live block takes the remote push at once when remote_plain says so;
 * anything else (a page to claim, a pooled page, no heap yet, a suspect
 * block) the general path. */
static HAK_NOINLINE void free_other(struct hak_heap *h, struct hak_page *pg, struct hak_block *b,
				    uintptr_t o)
{
	if (unlikely(h == &hak__empty_heap || !remote_plain(h, pg, o) ||
		     !hak__block_start(pg, b) || b->marker == hak__free_marker(b)))
		return free_generic(h, b);
	_Atomic uint32_t *g = hak__gate_enter(h);
	/* a holder that stopped allocating: its pages become ours, and the
	 * free a local one (hak__heap_free_quiet) */
	int q = hak__quiet_due(h, o) ? hak__heap_free_quiet(h, pg, b, o) : HAK_QUIET_REMOTE;
	if (q == HAK_QUIET_REMOTE)
		hak__remote_free(h, pg, b, pg->class_idx); /* class read while b is live */
	hak__gate_exit(g);
	if (q == HAK_QUIET_HELD)
		return free_held(h, pg->class_idx, b, hak__free_marker(b));
}

static HAK_NOINLINE void free_unhinted(struct hak_heap *h, void *p, uintptr_t e);

/* free's tail once the owner hint e of p's page is known. */
static inline __attribute__((always_inline)) void free_hinted(struct hak_heap *h, void *p,
							      uintptr_t e)
{
	/* e names h exactly when it differs from h's own only in the class */
	size_t c = e ^ h->hint_self;
	if (unlikely(c >= HAK_NUM_CLASSES))
		return free_unhinted(h, p, e);
	/* the checks of HAKMEM_CHECK=1 (at 0 too: free_checked reports nothing
	 * then, and frees the block as it comes) */
	struct hak_block *b = p;
	uintptr_t fm = hak__free_marker(b);
	if (unlikely(!hak__geom_block_start(h->geom[c], p) || b->marker == fm))
		return free_checked(h, hak__page_of(p), b);
	return free_held(h, c, b, fm);
}

/* A free whose owner hint e does not name h: the descriptor's owner word
 * decides (the hint may be stale, see hak__hints).  No hint at all (0):
 * p is in no arena page, or in one without hints. */
static HAK_NOINLINE void free_unhinted(struct hak_heap *h, void *p, uintptr_t e)
{
	if (!e)
		return free_generic(h, p);
	struct hak_page *pg = hak__page_of(p);
	uintptr_t o = atomic_load_explicit(&pg->owner, memory_order_relaxed);
	if (o != (uintptr_t)h)
		return free_other(h, pg, p, o);
	return free_checked(h, pg, p); /* h's page behind a stale hint: rare */
}

/* A free outside the span: an arena of its own finds its row of hints in
 * the arena table; anything else (NULL, a large block, a foreign pointer)
 * takes the general path. */
static HAK_NOINLINE void free_outside(struct hak_heap *h, void *p)
{
	uintptr_t row = hak__arena_hint_row(p);
	if (!row)
		return free_generic(h, p);
	return free_hinted(h, p, atomic_load_explicit(&hak__hints[hak__hint_row_index(row, p)],
						      memory_order_relaxed));
}

/* Every call below is a tail call, so the fast path needs no stack frame.
 * It reads the page's owner hint, not its descriptor (hak__hints).  The
 * block's own line, which the marker check reads and the cache push writes,
 * is the one a program that frees an old block usually misses: it is asked
 * for first, so that its fetch overlaps the hint lookup instead of
 * following it (published Larson 2-32 KiB: about 6% in paired runs). */
HAK_ENTRY_ALIGN void hak__free(void *p)
{
	__builtin_prefetch(p, 1);
	struct hak_heap *h = hak__tl_heap;
	uintptr_t i = hak__hint_index(p);
	if (unlikely(i >= HAK_HINT_PAGES))
		return free_outside(h, p);
	return free_hinted(h, p, atomic_load_explicit(&hak__hints[i], memory_order_relaxed));
}

/* The rest ----------------------------------------------------------------- */

/* The usable size of block p, validated for call (realloc or
 * malloc_usable_size); *kind gets p's HAK_MAP_ kind. */
static size_t usable_of(void *p, const char *call, unsigned *kind_out)
{
	unsigned kind = *kind_out = hak__map_kind(p);
	if (kind == HAK_MAP_SMALL) {
		struct hak_page *pg = hak__page_of(p);
		hak__block_check(pg, p, call);
		return pg->block_size - hak__guard.slack;
	}
	if (kind == HAK_MAP_LARGE)
		return hak__large_hdr(p, call)->size;
	hak__fatal_ptr(call, "pointer not allocated by hakmem", p);
}

size_t hak__usable(void *p)
{
	unsigned kind;
	return p ? usable_of(p, "malloc_usable_size", &kind) : 0;
}

/* A large allocation the profile's countdown has not seen yet. */
static HAK_NOINLINE void *large_alloc_counted(size_t size, size_t align, bool zero)
{
	struct hak_heap *h = hak__tl_heap;
	if (prof_counts(h, size) && hak__prof_take(h = prof_heap(h), size))
		return prof_alloc(h, size, align, zero, __builtin_return_address(0));
	return large_alloc(size, align, zero);
}

static void *calloc_impl(size_t n, size_t size)
{
	size_t total;
	if (unlikely(__builtin_mul_overflow(n, size, &total))) {
		errno = ENOMEM;
		return NULL;
	}
	if (total > HAK_SMALL_MAX)
		return large_alloc_counted(total, HAK_MIN_ALIGN, true);
	void *p = hak__malloc(total);
	if (p)
		memset(p, 0, total);
	return p;
}

static void *realloc_impl(void *p, size_t size)
{
	if (!p)
		return hak__malloc(size);
	if (size == 0) { /* glibc: frees and returns NULL */
		hak__free(p);
		return NULL;
	}
	unsigned kind;
	size_t old = usable_of(p, hak__call_realloc, &kind);
	if (kind == HAK_MAP_LARGE) {
		if (size > HAK_SMALL_MAX) {
			_Atomic uint32_t *g = hak__gate_enter(hak__tl_heap);
			void *q = hak__large_resize(p, size);
			hak__gate_exit(g);
			if (q)
				return q;
		}
	} else if (size <= old && (size > old / 2 || old <= 16)) {
		/* stay when the block still fits and is not more than twice too big */
		return p;
	}
	int saved = errno;
	void *q = hak__malloc(size);
	if (!q) {
		if (size <= old) { /* a shrink never fails: keep the block */
			errno = saved;
			return p;
		}
		return NULL; /* p is left untouched, errno is ENOMEM */
	}
	memcpy(q, p, old < size ? old : size);
	hak__free(p);
	return q;
}

static void *reallocarray_impl(void *p, size_t n, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(n, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc_impl(p, total);
}

/* Aligned allocation of size bytes at a power-of-two alignment. */
void *hak__aligned(size_t align, size_t size)
{
	if (align <= HAK_MIN_ALIGN)
		return hak__malloc(size);
	if (align > HAK_MAX_ALIGN_LARGE || size > PTRDIFF_MAX) {
		errno = ENOMEM;
		return NULL;
	}
	if (size <= HAK_SMALL_MAX && align <= HAK_SMALL_MAX) {
		/* a class whose block spacing is a multiple of align: every block
		 * of a 64 KiB-aligned page is then aligned */
		size_t slack = hak__guard.slack;
		for (unsigned c = hak__class_of(size ? size : 1); c < HAK_NUM_CLASSES; c++)
			if (hak__class_size[c] % align == 0 && hak__class_size[c] - slack >= size)
				return hak__malloc(hak__class_size[c] - slack);
	}
	return large_alloc_counted(size, align, false);
}

static bool pow2(size_t x)
{
	return x && !(x & (x - 1));
}

static int posix_memalign_impl(void **memptr, size_t align, size_t size)
{
	if (!pow2(align) || align % sizeof(void *))
		return EINVAL;
	int saved = errno;
	void *p = hak__aligned(align, size);
	if (!p) {
		errno = saved;
		return ENOMEM;
	}
	*memptr = p;
	return 0;
}

static void *aligned_alloc_impl(size_t align, size_t size)
{
	/* glibc 2.36 accepts any power of two (and rounds others up) */
	if (!pow2(align)) {
		errno = EINVAL;
		return NULL;
	}
	return hak__aligned(align, size);
}

static void *memalign_impl(size_t align, size_t size)
{
	if (!pow2(align)) { /* glibc rounds a non-power-of-two up */
		if (align > ((size_t)1 << (sizeof(size_t) * 8 - 2))) {
			errno = EINVAL;
			return NULL;
		}
		size_t a = HAK_MIN_ALIGN;
		while (a < align)
			a <<= 1;
		align = a;
	}
	return hak__aligned(align, size);
}

static void *valloc_impl(size_t size)
{
	return hak__aligned(HAK_OS_PAGE, size);
}

static void *pvalloc_impl(size_t size)
{
	size_t ps = HAK_OS_PAGE;
	if (size > SIZE_MAX - ps) {
		errno = ENOMEM;
		return NULL;
	}
	size_t rounded = (size + ps - 1) & ~(ps - 1);
	return hak__aligned(ps, rounded ? rounded : ps);
}

static int malloc_trim_impl(size_t pad)
{
	(void)pad;
	hak__init();
	struct hak_heap *h = hak__tl_heap;
	_Atomic uint32_t *g = hak__gate_enter(h);
	hak__heap_trim(h);
	size_t n = hak__pages_purge(0, true) + hak__large_purge(0, true);
	hak__gate_exit(g);
	return n != 0;
}

static const char *version_impl(void)
{
	return PACKAGE_VERSION;
}

static __attribute__((unused)) struct mallinfo2 mallinfo2_impl(void)
{
	struct hak_stats st;
	struct mallinfo2 mi;
	memset(&mi, 0, sizeof mi);
	if (hak_stats_get(&st, sizeof st) != 0)
		return mi;
	/* the page arenas: mapped bytes less the span tier's regions (address
	 * space reserved per shard) and the large blocks (their own mappings, or
	 * spans: then counted twice, which only makes the figure smaller) */
	uint64_t other = st.span_mapped_bytes + st.large_bytes_in_use;
	size_t small_mapped = st.mapped_bytes > other ? st.mapped_bytes - other : 0;
	mi.arena = small_mapped;              /* non-mmapped space: page arenas */
	mi.hblks = (size_t)(st.large_allocs - st.large_frees);
	mi.hblkhd = st.large_bytes_in_use;    /* space in large mappings */
	mi.uordblks = st.bytes_in_use - st.large_bytes_in_use;
	mi.fordblks = small_mapped > mi.uordblks ? small_mapped - mi.uordblks : 0;
	mi.keepcost = st.resident_bytes > st.bytes_in_use ? st.resident_bytes - st.bytes_in_use : 0;
	return mi;
}

static __attribute__((unused)) struct mallinfo mallinfo_impl(void)
{
	struct mallinfo2 m2 = mallinfo2_impl();
	struct mallinfo m;
	memset(&m, 0, sizeof m);
	m.arena = (int)m2.arena;
	m.hblks = (int)m2.hblks;
	m.hblkhd = (int)m2.hblkhd;
	m.uordblks = (int)m2.uordblks;
	m.fordblks = (int)m2.fordblks;
	m.keepcost = (int)m2.keepcost;
	return m;
}

/* C++ operator new and delete ------------------------------------------------
 *
 * Defined here, as tcmalloc, jemalloc and mimalloc do, so that new and delete
 * cost what malloc and free do: libstdc++'s own operator new is a call
 * through the PLT to malloc plus its handler loop.  Only the failure path is
 * C++'s: call the new-handler until there is none, then throw std::bad_alloc
 * through libstdc++'s own helper.  Both are weak references, so that a C
 * program does not need libstdc++; a C++ program that calls operator new
 * has it loaded.  (The frames here have unwind tables, the default on
 * x86-64, so that the exception passes through them.) */
#if defined(HAK_OVERRIDE) && !defined(HAK_NO_OVERRIDE)
typedef void (*hak_new_handler)(void);
extern hak_new_handler _ZSt15get_new_handlerv(void) __attribute__((weak));
extern void _ZSt17__throw_bad_allocv(void) __attribute__((weak, noreturn));

/* The allocation of size bytes (aligned to align unless 0) failed. */
static HAK_NOINLINE void *new_failed(size_t size, size_t align, bool nothrow)
{
	for (;;) {
		hak_new_handler h = _ZSt15get_new_handlerv ? _ZSt15get_new_handlerv() : NULL;
		if (!h) {
			if (nothrow)
				return NULL;
			if (_ZSt17__throw_bad_allocv)
				_ZSt17__throw_bad_allocv();
			hak__write_err("hakmem: operator new: out of memory, and no "
				       "std::bad_alloc to throw\n", NULL, NULL);
			abort();
		}
		h(); /* frees memory, or throws, or ends the program */
		void *p = align ? hak__aligned(align, size) : hak__malloc(size);
		if (p)
			return p;
	}
}

/* operator new past its cache (found empty by new_impl, not looked at
 * again): the rest of malloc, and the new handler */
static HAK_NOINLINE void *new_slow(size_t size)
{
	struct hak_heap *h = hak__tl_heap;
	void *p = size < hak__guard.fast_limit ? small_uncached(h, hak__class_of(size))
					       : malloc_other(h, size);
	return likely(p != NULL) ? p : new_failed(size, 0, false);
}

/* A block from the cache cannot be NULL: only the rest of malloc, a tail
 * call, may fail, so that operator new needs no stack frame (it kept size
 * for new_failed in one). */
static inline void *new_impl(size_t size)
{
	if (likely(size < hak__guard.fast_limit)) {
		struct hak_block *b = tc_pop(hak__tl_heap, hak__class_of(size));
		if (likely(b))
			return b;
	}
	return new_slow(size);
}

static void *new_nothrow(size_t size, const void *nt)
{
	(void)nt;
	void *p = malloc_inline(size);
	return likely(p != NULL) ? p : new_failed(size, 0, true);
}

/* align: a power of two (the language guarantees it) */
static void *new_aligned(size_t size, size_t align)
{
	void *p = hak__aligned(align, size);
	return likely(p != NULL) ? p : new_failed(size, align, false);
}

static void *new_aligned_nothrow(size_t size, size_t align, const void *nt)
{
	(void)nt;
	void *p = hak__aligned(align, size);
	return likely(p != NULL) ? p : new_failed(size, align, true);
}

HAK_PUBLIC void *_Znwm(size_t size);
HAK_PUBLIC void *_Znam(size_t size);
HAK_ENTRY_ALIGN void *_Znwm(size_t size)
{
	return new_impl(size);
}
HAK_ENTRY_ALIGN void *_Znam(size_t size)
{
	return new_impl(size);
}
HAK_ALIAS(_ZnwmRKSt9nothrow_t, new_nothrow);
HAK_ALIAS(_ZnamRKSt9nothrow_t, new_nothrow);
HAK_ALIAS(_ZnwmSt11align_val_t, new_aligned);
HAK_ALIAS(_ZnamSt11align_val_t, new_aligned);
HAK_ALIAS(_ZnwmSt11align_val_tRKSt9nothrow_t, new_aligned_nothrow);
HAK_ALIAS(_ZnamSt11align_val_tRKSt9nothrow_t, new_aligned_nothrow);
/* Every delete is a free: the size, alignment and nothrow tag some forms
 * pass are not needed, and under the x86-64 calling convention a function
 * may be called with arguments it does not take (they stay in registers the
 * caller owns), so each form is free itself, with no wrapper to jump through. */
HAK_ALIAS(_ZdlPv, hak__free);
HAK_ALIAS(_ZdaPv, hak__free);
HAK_ALIAS(_ZdlPvm, hak__free);                              /* sized */
HAK_ALIAS(_ZdaPvm, hak__free);
HAK_ALIAS(_ZdlPvRKSt9nothrow_t, hak__free);                 /* nothrow */
HAK_ALIAS(_ZdaPvRKSt9nothrow_t, hak__free);
HAK_ALIAS(_ZdlPvSt11align_val_t, hak__free);                /* aligned */
HAK_ALIAS(_ZdaPvSt11align_val_t, hak__free);
HAK_ALIAS(_ZdlPvmSt11align_val_t, hak__free);               /* sized, aligned */
HAK_ALIAS(_ZdaPvmSt11align_val_t, hak__free);
HAK_ALIAS(_ZdlPvSt11align_val_tRKSt9nothrow_t, hak__free);  /* aligned, nothrow */
HAK_ALIAS(_ZdaPvSt11align_val_tRKSt9nothrow_t, hak__free);
#endif

/* Exported names ------------------------------------------------------------ */

HAK_ALIAS(hak_malloc, hak__malloc);
HAK_ALIAS(hak_free, hak__free);
HAK_ALIAS(hak_calloc, calloc_impl);
HAK_ALIAS(hak_realloc, realloc_impl);
HAK_ALIAS(hak_reallocarray, reallocarray_impl);
HAK_ALIAS(hak_posix_memalign, posix_memalign_impl);
HAK_ALIAS(hak_aligned_alloc, aligned_alloc_impl);
HAK_ALIAS(hak_memalign, memalign_impl);
HAK_ALIAS(hak_valloc, valloc_impl);
HAK_ALIAS(hak_pvalloc, pvalloc_impl);
HAK_ALIAS(hak_malloc_usable_size, hak__usable);
HAK_ALIAS(hak_malloc_trim, malloc_trim_impl);
HAK_ALIAS(hak_version, version_impl);

#if defined(HAK_OVERRIDE) && !defined(HAK_NO_OVERRIDE)
HAK_ALIAS(malloc, hak__malloc);
HAK_ALIAS(free, hak__free);
HAK_ALIAS(cfree, hak__free);
HAK_ALIAS(calloc, calloc_impl);
HAK_ALIAS(realloc, realloc_impl);
HAK_ALIAS(reallocarray, reallocarray_impl);
HAK_ALIAS(posix_memalign, posix_memalign_impl);
HAK_ALIAS(aligned_alloc, aligned_alloc_impl);
HAK_ALIAS(memalign, memalign_impl);
HAK_ALIAS(valloc, valloc_impl);
HAK_ALIAS(pvalloc, pvalloc_impl);
HAK_ALIAS(malloc_usable_size, hak__usable);
HAK_ALIAS(malloc_trim, malloc_trim_impl);
HAK_ALIAS(mallinfo2, mallinfo2_impl);
HAK_ALIAS(mallinfo, mallinfo_impl);
#endif
