/*
 * heap.c - thread heaps and the MF2 machinery between them: held and
 * floating pages, pending queues, consumer-driven adoption, the drain
 * strategies, claiming pages of exited threads, the thread cache's flush,
 * and abandonment at thread exit.
 *
 * Protocol (see struct hak_page in internal.h for the owner word):
 *  - A heap holds its active page per class, a partial list (held pages
 *    with free blocks) and a full list.  Only its thread touches them.
 *  - When the heap must grow (its own pages and queue are exhausted) it
 *    *floats* the full pages that have been full for HAK_FLOAT_AGE refills
 *    (owner = H|FLOAT) and forgets them; from then on only a CAS on owner
 *    lets anyone, H included, touch their local fields again.
 *  - A remote free that takes a page's remote list from empty to non-empty
 *    puts the page on its owner heap's pending queue for the class (once:
 *    in_pending guards the link), held or floating.  The holder drains its
 *    held pages from there; other threads may take only floating ones.
 *  - Whoever pops a page it cannot take re-queues it on its current owner's
 *    queue, so a page with reclaimable blocks is never lost.
 */
#include "config.h"
#include "internal.h"

#include <errno.h>
#include <string.h>

/* HAK_OWN_ALWAYS under the strategies that drain every HAKMEM_DRAIN_PERIOD
 * frees, else 0: the bit of own_mask that is never cleared. */
static uint64_t own_always(void)
{
	return hak__opt.strategy == HAK_DRAIN_ROUNDROBIN || hak__opt.strategy == HAK_DRAIN_HYBRID
		       ? HAK_OWN_ALWAYS
		       : 0;
}

/* Every cache of the empty heap is empty (its top is above the NULL in
 * slot 0) and full (its end is its top). */
struct hak_heap hak__empty_heap = {
	.tc_top = {[0 ... HAK_NUM_CLASSES - 1] = &hak__empty_heap.tc_slots[1]},
	.tc_end = {[0 ... HAK_NUM_CLASSES - 1] = &hak__empty_heap.tc_slots[1]},
	.tc_first = {[0 ... HAK_NUM_CLASSES - 1] = &hak__empty_heap.tc_slots[1]},
	.active = {[0 ... HAK_NUM_CLASSES - 1] = &hak__empty_page},
};
__thread struct hak_heap *hak__tl_heap __attribute__((tls_model("initial-exec"))) =
	&hak__empty_heap;

static _Atomic uint32_t heaps_lock;
static struct hak_heap *heaps_head;     /* every heap ever made, never unlinked */
static struct hak_heap *heaps_free;     /* heaps of exited threads, for reuse */
static unsigned heaps_count;
static char *heap_chunk;
static size_t heap_chunk_left;
#define HAK_HEAP_CHUNK ((size_t)1 << 20)
_Static_assert(sizeof(struct hak_heap) <= HAK_HEAP_CHUNK / 3,
	       "a heap chunk holds a few heaps (only the slots in use get memory)");

struct hak_heap *hak__heaps_first(void)
{
	return __atomic_load_n(&heaps_head, __ATOMIC_ACQUIRE);
}

/* The registry only grows, by appending with a release store. */
struct hak_heap *hak__heap_next(struct hak_heap *x)
{
	return __atomic_load_n(&x->next_heap, __ATOMIC_ACQUIRE);
}

static struct hak_heap *heap_next_wrap(struct hak_heap *x)
{
	struct hak_heap *n = hak__heap_next(x);
	return n ? n : hak__heaps_first();
}

static void heap_setup(struct hak_heap *h)
{
	size_t slot = 0;
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
		h->tc_slots[slot++] = NULL; /* below the cache: malloc stops here */
		h->tc_first[c] = h->tc_top[c] = h->tc_slots + slot;
		h->tc_end[c] = h->tc_first[c] + hak__tc_cap[c];
		slot += hak__tc_max(c);
		h->active[c] = &hak__empty_page;
		h->partial[c] = NULL;
		h->full[c] = h->full_tail[c] = NULL;
		h->geom[c] = hak__class_geom[c];
	}
	h->tc_grown = 0;
	h->quiet_from = NULL;
	/* a new thread: what takers learnt of the last one does not hold */
	__atomic_store_n(&h->quiet_robbed, false, __ATOMIC_RELAXED);
	atomic_store_explicit(&h->quiet_shift, 0, memory_order_relaxed);
	h->hint_self = (uintptr_t)h << HAK_HINT_OWNER_SHIFT;
	h->tid = hak__gettid();
	h->st = hak__stats_slot(h->index, &h->own_stats);
	atomic_store_explicit((_Atomic uint64_t *)&h->st->tid, (uint64_t)h->tid,
			      memory_order_relaxed);
	atomic_store_explicit((_Atomic uint64_t *)&h->st->state, 1, memory_order_release);
	h->drain_tick = hak__opt.drain_period;
	atomic_fetch_or_explicit(&h->own_mask, own_always(), memory_order_relaxed);
	atomic_store_explicit(&h->alive, 1, memory_order_release);
	HAK_GSTAT_ADD(hak__seg->global.threads, 1);
}

/* The calling thread's heap, made (or recycled) on first use.  NULL with
 * ENOMEM if no memory is left for it. */
struct hak_heap *hak__heap_get(void)
{
	struct hak_heap *h = hak__tl_heap;
	if (h != &hak__empty_heap)
		return h;
	hak__init();
	hak__spin_lock(&heaps_lock);
	h = heaps_free;
	if (h) {
		heaps_free = h->next_free;
	} else {
		if (heap_chunk_left < sizeof *h) {
			hak__spin_unlock(&heaps_lock);
			char *chunk = hak__os_map(HAK_HEAP_CHUNK);
			if (!chunk)
				return NULL;
			HAK_GSTAT_ADD(hak__seg->global.mapped_bytes, HAK_HEAP_CHUNK);
			hak__spin_lock(&heaps_lock);
			heap_chunk = chunk; /* the rest of an older chunk is abandoned */
			heap_chunk_left = HAK_HEAP_CHUNK;
		}
		h = (struct hak_heap *)heap_chunk;
		size_t sz = (sizeof *h + HAK_CACHE_LINE - 1) & ~(size_t)(HAK_CACHE_LINE - 1);
		heap_chunk += sz;
		heap_chunk_left = heap_chunk_left > sz ? heap_chunk_left - sz : 0;
		h->index = __atomic_fetch_add(&heaps_count, 1, __ATOMIC_RELAXED);
		/* append so that the registry order is creation order */
		struct hak_heap **pp = &heaps_head;
		while (*pp)
			pp = &(*pp)->next_heap;
		__atomic_store_n(pp, h, __ATOMIC_RELEASE);
		HAK_GSTAT_ADD(hak__seg->global.heaps_created, 1);
	}
	hak__spin_unlock(&heaps_lock);
	heap_setup(h);
	hak__tl_heap = h;
	hak__thread_started(h);
	return h;
}

/* Pending queues --------------------------------------------------------- */

static void pending_link(struct hak_pending *q, struct hak_page *pg)
{
	struct hak_page *head = atomic_load_explicit(&q->head, memory_order_relaxed);
	do {
		atomic_store_explicit(&pg->pending_next, head, memory_order_relaxed);
	} while (!atomic_compare_exchange_weak_explicit(&q->head, &head, pg,
							memory_order_release,
							memory_order_relaxed));
}

/* Link pg on the right queue of the heap in owner word o: the adoptable
 * pending queue if the page floats, else the holder's own queue (and mark
 * the class for the holder's own_queues_refresh). */
static void queue_link(uintptr_t o, struct hak_page *pg, unsigned cls)
{
	struct hak_heap *h = (struct hak_heap *)(o & ~HAK_OWNER_FLAGS);
	if (o & HAK_OWNER_FLOAT) {
		pending_link(&h->pending[cls], pg);
	} else {
		pending_link(&h->own_q[cls], pg);
		/* the first queued page: the background thread looks at h from
		 * now on, in case its thread is idle (hak__heaps_reclaim_idle) */
		if (!(atomic_fetch_or_explicit(&h->own_mask, (uint64_t)1 << cls,
					       memory_order_relaxed) & ~HAK_OWN_ALWAYS))
			hak__background_kick();
	}
}

/* Queue pg, whose owner word was o, on its owner heap's queue for class
 * cls unless it is queued somewhere already: the adoptable pending queue if
 * it floats, the owner's own queue if held.  Returns true if it linked it. */
static bool pending_enqueue(uintptr_t o, struct hak_page *pg, unsigned cls,
			    struct hak_seg_slot *st)
{
	if (atomic_exchange_explicit(&pg->in_pending, 1, memory_order_acq_rel))
		return false;
	queue_link(o, pg, cls);
	if (st) /* a first enqueue, not a page put back by a consumer */
		HAK_STAT_ADD(st->pending_enqueued, 1);
	return true;
}

/* Pop one page (consumers serialised by the queue's try-lock: no ABA).
 * The page keeps in_pending set: the popper now owns the entry, and must
 * either pending_done() it (it keeps or drops the page) or
 * pending_requeue() it.  Meanwhile no pusher touches pending_next, so the
 * popper may link popped pages through it. */
static struct hak_page *pending_pop(struct hak_pending *q)
{
	if (!atomic_load_explicit(&q->head, memory_order_relaxed))
		return NULL;
	if (!hak__spin_trylock(&q->lock))
		return NULL;
	struct hak_page *pg = atomic_load_explicit(&q->head, memory_order_acquire);
	while (pg && !atomic_compare_exchange_weak_explicit(
			     &q->head, &pg,
			     atomic_load_explicit(&pg->pending_next, memory_order_relaxed),
			     memory_order_acquire, memory_order_acquire))
		;
	hak__spin_unlock(&q->lock);
	return pg;
}

/* The popper is done with the entry: from now on the remote free that makes
 * the page's remote list non-empty queues it again.  Call before draining. */
static void pending_done(struct hak_page *pg)
{
	atomic_store_explicit(&pg->in_pending, 0, memory_order_seq_cst);
}

/* A popped page that the popper could not take goes back on the right queue
 * of its current owner: its remote blocks must stay findable. */
static void pending_requeue(struct hak_page *pg, unsigned cls)
{
	uintptr_t o = atomic_load_explicit(&pg->owner, memory_order_seq_cst);
	if (o == HAK_OWNER_FREE || o == HAK_OWNER_POOL || o == 0) {
		pending_done(pg);
		return;
	}
	queue_link(o, pg, cls);
}

/* Popped pages set aside during a scan (linked through pending_next, which
 * the popper owns) go back to their current owners' queues after it, or
 * the scan would pop them again at once. */
static void putback_add(struct hak_page **putback, struct hak_page *pg)
{
	atomic_store_explicit(&pg->pending_next, *putback, memory_order_relaxed);
	*putback = pg;
}

static void putback_requeue(struct hak_page *putback, unsigned cls)
{
	struct hak_page *pg;
	while ((pg = putback)) {
		putback = atomic_load_explicit(&pg->pending_next, memory_order_relaxed);
		pending_requeue(pg, cls);
	}
}

/* Holding pages ---------------------------------------------------------- */

static struct hak_page **list_head(struct hak_heap *h, struct hak_page *pg)
{
	return pg->in_list == HAK_LIST_FULL ? &h->full[pg->class_idx]
					    : &h->partial[pg->class_idx];
}

/* The full list keeps a tail (oldest first for float_full); partial none. */
static struct hak_page **list_tail(struct hak_heap *h, struct hak_page *pg)
{
	return pg->in_list == HAK_LIST_FULL ? &h->full_tail[pg->class_idx] : NULL;
}

static void list_push(struct hak_heap *h, struct hak_page *pg, uint8_t which)
{
	pg->in_list = which;
	pg->full_tick = h->refills;
	hak__plist_push(list_head(h, pg), list_tail(h, pg), pg);
}

static void list_unlink(struct hak_heap *h, struct hak_page *pg)
{
	if (pg->in_list == HAK_LIST_NONE)
		return;
	hak__plist_unlink(list_head(h, pg), list_tail(h, pg), pg);
	pg->in_list = HAK_LIST_NONE;
}

static bool page_has_free(const struct hak_page *pg)
{
	return pg->free || pg->carved < pg->capacity;
}

/* Try to take a floating page: CAS owner from o (a FLOAT value) to h. */
static bool page_take(struct hak_heap *h, struct hak_page *pg, uintptr_t o)
{
	if (!atomic_compare_exchange_strong_explicit(&pg->owner, &o, (uintptr_t)h,
						     memory_order_acquire, memory_order_relaxed))
		return false;
	hak__hint_put(pg, (uintptr_t)h, pg->class_idx);
	return true;
}

/* pg came to h from another heap at time now: the lease's clock, and the
 * counters (an adoption, a page reused). */
static void page_transferred(struct hak_heap *h, struct hak_page *pg, uint64_t now)
{
	atomic_store_explicit(&pg->last_transfer_ns, now, memory_order_relaxed);
	HAK_STAT_ADD(h->st->adoptions, 1);
	HAK_STAT_ADD(h->st->pages_reused, 1);
}

/* Float a held page (in no list) that has no free block.  Returns false if
 * remote frees arrived meanwhile and the page was kept, drained. */
static bool page_float(struct hak_heap *h, struct hak_page *pg)
{
	atomic_store_explicit(&pg->float_gen, atomic_load_explicit(&h->gen, memory_order_relaxed),
			      memory_order_relaxed);
	hak__owner_give(pg, (uintptr_t)h | HAK_OWNER_FLOAT, pg->class_idx);
	if (!atomic_load_explicit(&pg->remote, memory_order_seq_cst))
		return true;
	/* A remote free raced with us and may have missed the float: take the
	 * page back unless somebody adopted it already. */
	if (!page_take(h, pg, (uintptr_t)h | HAK_OWNER_FLOAT))
		return true;
	hak__page_drain(pg);
	return false;
}

/* File a held page that is not active: partial if it has free blocks,
 * released if it has no live block, full otherwise. */
static void page_file(struct hak_heap *h, struct hak_page *pg)
{
	if (pg->used == 0)
		hak__page_release(pg);
	else
		list_push(h, pg, page_has_free(pg) ? HAK_LIST_PARTIAL : HAK_LIST_FULL);
}

/* Make pg (held by h, with free blocks) the active page of its class; the
 * previous active page is filed. */
static void page_activate(struct hak_heap *h, struct hak_page *pg)
{
	unsigned c = pg->class_idx;
	struct hak_page *old = h->active[c];
	list_unlink(h, pg);
	h->active[c] = pg;
	if (old != &hak__empty_page && old != pg)
		list_push(h, old, page_has_free(old) ? HAK_LIST_PARTIAL : HAK_LIST_FULL);
}

/* A held page that is not active got blocks back (a local free, a flush of
 * the thread cache, a drain): release it if it has no live block left, move
 * it from the full list to the partial list if it has free ones.  Returns
 * true if it is on the partial list. */
static bool page_refile(struct hak_heap *h, struct hak_page *pg)
{
	if (pg->used == 0) {
		list_unlink(h, pg);
		hak__page_release(pg);
		return false;
	}
	if (pg->in_list == HAK_LIST_FULL && page_has_free(pg)) {
		list_unlink(h, pg);
		list_push(h, pg, HAK_LIST_PARTIAL);
	}
	return pg->in_list == HAK_LIST_PARTIAL;
}

/* Full pages younger than this many refills stay held: a busy thread frees
 * into its recent pages soon, and reclaiming a floated page costs a CAS. */
#define HAK_FLOAT_AGE 32u

/* Float the full pages of class c that have been full for a while.  Done
 * when h grows (asks the pool or the OS for a page), so that pages of a
 * thread that stops allocating become adoptable once blocks are freed in
 * them.  Oldest first, from the tail. */
static void float_full(struct hak_heap *h, unsigned c)
{
	struct hak_page *pg = h->full_tail[c];
	while (pg && h->refills - pg->full_tick >= HAK_FLOAT_AGE) {
		struct hak_page *prev = pg->prev;
		/* a page on our own queue stays held: we drain it from there */
		if (!atomic_load_explicit(&pg->in_pending, memory_order_acquire)) {
			list_unlink(h, pg);
			if (!page_float(h, pg))
				page_file(h, pg);
		}
		pg = prev;
	}
}

/* Returns true if the page now has free blocks and h still holds it (a
 * page left without a live block went back to the pool). */
static bool own_page_refresh(struct hak_heap *h, struct hak_page *pg)
{
	hak__page_drain(pg);
	if (h->active[pg->class_idx] == pg)
		return pg->free != NULL;
	return page_refile(h, pg);
}

/* A page h just took over (it was floating: in no list, not active):
 * drain it and use it, or file it.  Returns true if it became active. */
static bool page_use_taken(struct hak_heap *h, struct hak_page *pg, unsigned want)
{
	hak__page_drain(pg);
	if (pg->class_idx != want || (!pg->free && !hak__page_extend(pg))) {
		page_file(h, pg);
		return false;
	}
	page_activate(h, pg);
	return true;
}

/* Pending pages: own queue, then (adopt) the other heaps' queues ---------- */

static bool lease_allows(struct hak_page *pg, uint64_t now)
{
	uint64_t last = atomic_load_explicit(&pg->last_transfer_ns, memory_order_relaxed);
	return now - last >= (uint64_t)hak__opt.lease_us * 1000u;
}

/* Take pending pages of class cls from heap src's queue into h, up to
 * *budget pops.  Returns true once h has an active page with free blocks. */
static bool take_pending_from(struct hak_heap *h, struct hak_pending *q, unsigned cls,
			      unsigned *budget)
{
	struct hak_page *pg, *putback = NULL;
	uint64_t now = 0;
	bool found = false;
	while (*budget && (pg = pending_pop(q))) {
		(*budget)--;
		uintptr_t o = atomic_load_explicit(&pg->owner, memory_order_acquire);
		if (o == (uintptr_t)h) {
			/* one of our held pages got remote frees */
			pending_done(pg);
			HAK_STAT_ADD(h->st->pending_drained, 1);
			if (own_page_refresh(h, pg) && pg->class_idx == cls) {
				/* a partial page may have only uncarved blocks */
				if (!pg->free)
					hak__page_extend(pg);
				page_activate(h, pg);
				found = true;
				break;
			}
			continue;
		}
		if (o == HAK_OWNER_FREE || o == HAK_OWNER_POOL || o == 0) {
			pending_done(pg); /* a stale entry */
			continue;
		}
		struct hak_heap *from = (struct hak_heap *)(o & ~HAK_OWNER_FLAGS);
		bool gone = (o & HAK_OWNER_FLOAT) && hak__owner_gone(pg, o);
		bool transfer = from != h || gone;
		/* held by another heap: its holder drains it from its own queue */
		bool refuse = !(o & HAK_OWNER_FLOAT) || (o & HAK_OWNER_BUSY) ||
			      (transfer && hak__opt.strategy != HAK_DRAIN_ADOPT);
		if (!refuse && transfer && hak__opt.lease_us && !gone) {
			if (!now)
				now = hak__now_ns();
			if (!lease_allows(pg, now)) {
				HAK_STAT_ADD(h->st->lease_refusals, 1);
				refuse = true;
			}
		}
		if (refuse || !page_take(h, pg, o)) {
			putback_add(&putback, pg);
			continue;
		}
		pending_done(pg);
		HAK_STAT_ADD(h->st->pending_drained, 1);
		if (transfer) {
			if (!now)
				now = hak__now_ns();
			page_transferred(h, pg, now);
		}
		if (page_use_taken(h, pg, cls)) {
			found = true;
			break;
		}
	}
	putback_requeue(putback, cls);
	return found;
}

static bool find_pending(struct hak_heap *h, unsigned cls)
{
	unsigned budget = hak__opt.scan_budget;
	if (take_pending_from(h, &h->own_q[cls], cls, &budget) ||
	    take_pending_from(h, &h->pending[cls], cls, &budget))
		return true;
	if (hak__opt.strategy != HAK_DRAIN_ADOPT)
		return false;
	for (struct hak_heap *o = heap_next_wrap(h); o != h && budget; o = heap_next_wrap(o))
		if (take_pending_from(h, &o->pending[cls], cls, &budget))
			return true;
	return false;
}

/* The allocation slow path ------------------------------------------------ */

/* h allocates again after another thread took pages over from it as a
 * quiet holder: it was only paused (a producer waiting for room, a thread
 * off its CPU), and its pages went to the pool and back.  Those who free
 * into its pages wait twice as long before they take them the next time
 * (up to 1024 times HAKMEM_QUIET_FREES): a thread that is done (a Larson
 * worker that handed its blocks on) never comes here. */
static HAK_NOINLINE void quiet_resumed(struct hak_heap *h)
{
	__atomic_store_n(&h->quiet_robbed, false, __ATOMIC_RELAXED);
	uint32_t s = atomic_load_explicit(&h->quiet_shift, memory_order_relaxed);
	if (s < 10)
		atomic_store_explicit(&h->quiet_shift, s + 1, memory_order_relaxed);
}

/* The general case: h may be the empty heap, pages may have to be found in
 * pending queues, in the pool or from the OS. */
static HAK_NOINLINE void *alloc_refill(struct hak_heap *h, unsigned cls)
{
	if (unlikely(h == &hak__empty_heap)) {
		h = hak__heap_get();
		if (!h)
			return NULL;
	}
	/* (read by threads that free into our pages: quiet_holder) */
	__atomic_store_n(&h->refills, h->refills + 1, __ATOMIC_RELAXED);
	if (unlikely(__atomic_load_n(&h->quiet_robbed, __ATOMIC_RELAXED)))
		quiet_resumed(h);
	hak__stats_publish();
	if (!hak__opt.mf2 && hak__class_size[cls] >= HAK_POOL_MIN_CLASS_SIZE)
		return hak__pool_alloc(cls, h->st);

	struct hak_page *pg = h->active[cls];
	if (pg != &hak__empty_page && (pg->free || hak__page_drain(pg) || hak__page_extend(pg)))
		return hak__page_take(h, pg, cls);
	/* Our held pages that took remote frees come before the partial list:
	 * a page whose last blocks were freed remotely would otherwise stay
	 * held, empty, for as long as partial pages last.  (Classes the thread
	 * no longer allocates are visited from the free path: own_queues_refresh.) */
	unsigned budget = hak__opt.scan_budget;
	if (atomic_load_explicit(&h->own_q[cls].head, memory_order_relaxed) &&
	    take_pending_from(h, &h->own_q[cls], cls, &budget))
		return hak__page_take(h, h->active[cls], cls);
	if ((pg = h->partial[cls])) {
		hak__page_drain(pg);
		if (!pg->free)
			hak__page_extend(pg);
		page_activate(h, pg);
		return hak__page_take(h, pg, cls);
	}
	/* pages with remote frees: ours, then (adopt) anybody's */
	if (find_pending(h, cls))
		return hak__page_take(h, h->active[cls], cls);
	/* growing: let our old full pages go, then a page from the pool or OS */
	float_full(h, cls);
	if ((pg = h->partial[cls])) { /* a full page took remote frees meanwhile */
		page_activate(h, pg);
		return hak__page_take(h, pg, cls);
	}
	pg = hak__page_alloc(cls, h->st);
	if (!pg)
		return NULL;
	hak__page_init(pg, cls);
	atomic_store_explicit(&pg->owner, (uintptr_t)h, memory_order_release);
	hak__hint_put(pg, (uintptr_t)h, cls);
	hak__page_extend(pg);
	page_activate(h, pg);
	return hak__page_take(h, pg, cls);
}

/* The active page of cls has no free block.  The common case, a held page
 * with free blocks on the partial list, is handled inline: no atomic, no
 * call, unless the class's own queue has pages (then alloc_refill drains
 * them first).  Remote frees to held pages are found through that queue. */
void *hak__heap_alloc_slow(struct hak_heap *h, unsigned cls)
{
	_Atomic uint32_t *g = hak__gate_enter(h);
	struct hak_page *pg = h->partial[cls];
	struct hak_page *old = h->active[cls];
	if (likely(pg && old->carved == old->capacity &&
		   !atomic_load_explicit(&h->own_q[cls].head, memory_order_relaxed))) {
		/* old has no free block left: it goes to the full list */
		page_activate(h, pg);
		if (unlikely(!pg->free))
			hak__page_extend(pg);
		void *b = hak__page_take(h, pg, cls);
		hak__gate_exit(g);
		return b;
	}
	/* a refusal on the way (an optional mapping, a place in the span)
	 * followed by a success is a success: errno stays as it was */
	int saved = errno;
	void *p = alloc_refill(h, cls);
	errno = p ? saved : ENOMEM;
	if (!hak__opt.background)
		hak__purge_inline();
	hak__gate_exit(g);
	hak__background_poll(); /* may start a thread: outside the gate */
	return p;
}

/* The free slow paths ----------------------------------------------------- */

/* Return the oldest cached blocks of class cls to their pages, keeping the
 * newest keep.  Blocks whose page h no longer holds (floated, adopted) take
 * the ordinary free path for a page held by someone else. */
void hak__heap_tc_flush(struct hak_heap *h, unsigned cls, unsigned keep)
{
	struct hak_block **base = h->tc_first[cls];
	unsigned n = hak__tc_count(h, cls);
	if (keep >= n)
		return;
	unsigned out = n - keep;
	for (unsigned i = 0; i < out; i++) {
		struct hak_block *b = base[i];
		struct hak_page *pg = hak__page_of(b);
		/* free wrote the marker into both words: a write after free? */
		uintptr_t fm = hak__free_marker(b);
		if (unlikely((((uintptr_t)b->next ^ fm) | (b->marker ^ fm)) & hak__guard.check_mask))
			hak__tc_damaged(b);
		if (atomic_load_explicit(&pg->owner, memory_order_relaxed) == (uintptr_t)h) {
			b->next = hak__link_enc(b, pg->free);
			pg->free = b;
			/* the active page keeps its blocks, empty or not */
			if ((--pg->used == 0 || pg->in_list == HAK_LIST_FULL) &&
			    h->active[cls] != pg)
				page_refile(h, pg);
		} else {
			/* counted as freed when it entered the cache */
			HAK_STAT_ADD(h->st->frees[cls], (uint64_t)-1);
			b->marker = 0;
			hak__heap_free_slow(h, pg, b);
		}
	}
	/* the newest stay, moved down (memmove: libc's, which allocates
	 * nothing, copies them many at a time) */
	memmove(base, base + out, keep * sizeof *base);
	h->tc_top[cls] = base + keep;
	if (!keep) { /* emptied (trim, exit, idle): back to its cap */
		h->tc_grown -= (size_t)(hak__tc_capacity(h, cls) - hak__tc_cap[cls]) *
			       hak__class_size[cls];
		h->tc_end[cls] = base + hak__tc_cap[cls];
	}
}

/* The cache of class cls is full: let it grow, doubling, up to
 * hak__tc_max() blocks while the heap's growth stays within
 * HAK_TC_GROW_BUDGET.  Returns whether it grew. */
bool hak__tc_grow(struct hak_heap *h, unsigned cls)
{
	size_t cap = hak__tc_capacity(h, cls);
	size_t grow = hak__tc_max(cls) - cap, size = hak__class_size[cls];
	if (grow > cap)
		grow = cap;
	if (grow > (HAK_TC_GROW_BUDGET - h->tc_grown) / size)
		grow = (HAK_TC_GROW_BUDGET - h->tc_grown) / size;
	if (!grow)
		return false;
	h->tc_end[cls] += grow;
	h->tc_grown += grow * size;
	return true;
}

/* A free into a page h has just taken over (in no list, not active). */
static void local_free(struct hak_heap *h, struct hak_page *pg, struct hak_block *b)
{
	b->marker = hak__free_marker(b);
	b->next = hak__link_enc(b, pg->free);
	pg->free = b;
	pg->used--;
	HAK_STAT_ADD(h->st->frees[pg->class_idx], 1);
	page_file(h, pg);
}

/* Free b into pg, a floating page (owner word o) that h takes now, from
 * another heap if transfer: false if another thread took it first. */
static bool take_and_free(struct hak_heap *h, struct hak_page *pg, struct hak_block *b,
			  uintptr_t o, bool transfer)
{
	if (!page_take(h, pg, o))
		return false;
	if (transfer)
		page_transferred(h, pg, hak__now_ns());
	hak__page_drain(pg);
	local_free(h, pg, b);
	return true;
}

/* free() of a block in a page the calling thread does not hold. */
void hak__heap_free_slow(struct hak_heap *h, struct hak_page *pg, struct hak_block *b)
{
	hak__block_check(pg, b, hak__call_free);
	/* b is live until pushed: read the class while the page cannot change */
	unsigned cls = pg->class_idx;
	if (h == &hak__empty_heap) {
		int saved = errno;
		h = hak__heap_get();
		if (!h) { /* no heap and no memory for one: free remotely, counted
			   * in the shared overflow slot (the sums must stay exact) */
			errno = saved;
			HAK_GSTAT_ADD(hak__seg->global.overflow.remote_frees, 1);
			HAK_GSTAT_ADD(hak__seg->global.overflow.frees[cls], 1);
			if (hak__remote_push(pg, b))
				hak__heap_remote_first(pg, cls, NULL);
			return;
		}
	}
	uintptr_t o = atomic_load_explicit(&pg->owner, memory_order_acquire);
	if (o == HAK_OWNER_POOL) {
		hak__pool_free(pg, b, h->st);
		return;
	}
	if ((o & HAK_OWNER_FLAGS) == HAK_OWNER_FLOAT) {
		struct hak_heap *from = (struct hak_heap *)(o & ~HAK_OWNER_FLAGS);
		/* Our own floating page: reclaim it, its later frees are local.
		 * A page of an exited thread (even one whose heap we recycled):
		 * claim it on the spot (adopt only). */
		bool gone = hak__owner_gone(pg, o);
		bool claim = gone && hak__opt.strategy == HAK_DRAIN_ADOPT;
		if (((from == h && !gone) || claim) && take_and_free(h, pg, b, o, claim))
			return;
	}
	hak__remote_free(h, pg, b, cls);
}

/* A remote free took pg's remote list from empty: queue pg, exactly once,
 * on the queue of the heap in its owner word now (the adoptable queue if
 * it floats, the holder's own queue if held).  st: the freeing heap's
 * counters, or NULL for a free counted in the overflow slot. */
void hak__heap_remote_first(struct hak_page *pg, unsigned cls, struct hak_seg_slot *st)
{
	uintptr_t o = atomic_load_explicit(&pg->owner, memory_order_seq_cst);
	if (o != HAK_OWNER_FREE && o != HAK_OWNER_POOL && o != 0)
		pending_enqueue(o, pg, cls, st);
}

/* Drain strategies roundrobin and hybrid ---------------------------------- */

/* Drain one floating page of heap src in place and leave it on src's queue
 * for src to pick up (the pre-adoption design the seed measured). */
static bool drain_for_owner(struct hak_heap *h, struct hak_heap *src, unsigned cls)
{
	struct hak_page *pg = src == h ? pending_pop(&h->own_q[cls]) : NULL;
	if (!pg)
		pg = pending_pop(&src->pending[cls]);
	if (!pg)
		return false;
	uintptr_t o = atomic_load_explicit(&pg->owner, memory_order_acquire);
	if (o == (uintptr_t)h) {
		pending_done(pg);
		HAK_STAT_ADD(h->st->pending_drained, 1);
		own_page_refresh(h, pg);
		return true;
	}
	if ((o & HAK_OWNER_FLAGS) != HAK_OWNER_FLOAT) {
		pending_requeue(pg, cls); /* held by its owner, busy, or free */
		return false;
	}
	if ((struct hak_heap *)(o & ~HAK_OWNER_FLAGS) == h) {
		if (page_take(h, pg, o)) { /* our own: reclaim it outright */
			pending_done(pg);
			HAK_STAT_ADD(h->st->pending_drained, 1);
			hak__page_drain(pg);
			page_file(h, pg);
		} else {
			pending_requeue(pg, cls);
		}
		return true;
	}
	uintptr_t busy = o | HAK_OWNER_BUSY;
	if (!atomic_compare_exchange_strong_explicit(&pg->owner, &o, busy, memory_order_acquire,
						     memory_order_relaxed)) {
		pending_requeue(pg, cls);
		return false;
	}
	bool drained = hak__page_drain(pg) != 0;
	hak__owner_give(pg, busy & ~HAK_OWNER_BUSY, pg->class_idx);
	if (drained)
		HAK_STAT_ADD(h->st->pending_drained, 1);
	pending_requeue(pg, cls); /* the owner finds it there, with free blocks */
	return drained;
}

/* Under owner and adopt, at the first free after pages came onto h's own
 * queues (free sees own_mask): refresh those pages (drain them; release
 * those left without a live block).  A thread that frees but no longer
 * allocates a class (its thread cache serves it, or it stopped) would
 * otherwise keep pages that other threads emptied, forever. */
/* Take the classes whose own queue got pages from own_mask: they are
 * cleared, HAK_OWN_ALWAYS stays as it is. */
static uint64_t own_classes_take(struct hak_heap *h)
{
	return atomic_fetch_and_explicit(&h->own_mask, HAK_OWN_ALWAYS, memory_order_acquire) &
	       ~HAK_OWN_ALWAYS;
}

static void own_queues_refresh(struct hak_heap *h)
{
	if (!(atomic_load_explicit(&h->own_mask, memory_order_relaxed) & ~HAK_OWN_ALWAYS))
		return;
	uint64_t mask = own_classes_take(h);
	while (mask) {
		unsigned c = (unsigned)__builtin_ctzll(mask);
		mask &= mask - 1;
		struct hak_page *pg, *putback = NULL;
		while ((pg = pending_pop(&h->own_q[c]))) {
			if (atomic_load_explicit(&pg->owner, memory_order_acquire) != (uintptr_t)h) {
				putback_add(&putback, pg); /* floated since */
				continue;
			}
			pending_done(pg);
			HAK_STAT_ADD(h->st->pending_drained, 1);
			own_page_refresh(h, pg);
		}
		putback_requeue(putback, c);
	}
}

static void drain_tick(struct hak_heap *h)
{
	int s = hak__opt.strategy;
	if (s != HAK_DRAIN_ROUNDROBIN && s != HAK_DRAIN_HYBRID) {
		own_queues_refresh(h);
		return;
	}
	h->drain_tick = hak__opt.drain_period;
	unsigned step = h->rr_cursor++;
	struct hak_heap *target = h;
	if (s == HAK_DRAIN_ROUNDROBIN || (step & 3) == 3) {
		/* the next heap in the registry, rotating per tick */
		unsigned n = __atomic_load_n(&heaps_count, __ATOMIC_RELAXED);
		unsigned k = n ? (step / HAK_NUM_CLASSES) % n : 0;
		target = hak__heaps_first();
		while (k-- && target)
			target = hak__heap_next(target);
		if (!target)
			target = h;
	}
	/* one page: try classes starting at the rotating position */
	for (unsigned i = 0; i < HAK_NUM_CLASSES; i++) {
		unsigned c = (step + i) % HAK_NUM_CLASSES;
		if (atomic_load_explicit(&target->pending[c].head, memory_order_relaxed) ||
		    (target == h && atomic_load_explicit(&h->own_q[c].head, memory_order_relaxed))) {
			drain_for_owner(h, target, c);
			return;
		}
	}
}

void hak__heap_drain_tick(struct hak_heap *h)
{
	/* roundrobin and hybrid come here on every free: their period */
	if (own_always() && --h->drain_tick != 0)
		return;
	_Atomic uint32_t *g = hak__gate_enter(h);
	drain_tick(h);
	hak__gate_exit(g);
}

static void sweep_heap(struct hak_heap *src, unsigned budget_per_class);

/* malloc_trim: give back what the calling thread keeps for itself -- its
 * cached blocks, the remote frees queued on its pages, and the pages (the
 * active ones too) that are left without a live block -- and the floating
 * pages left without one, so that the purge that follows finds them in the
 * pool. */
void hak__heap_trim(struct hak_heap *h)
{
	if (h == &hak__empty_heap)
		return;
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++)
		hak__heap_tc_flush(h, c, 0);
	own_queues_refresh(h);
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
		struct hak_page *pg = h->active[c], *next;
		if (pg != &hak__empty_page) {
			hak__page_drain(pg);
			if (pg->used == 0) {
				h->active[c] = &hak__empty_page;
				hak__page_release(pg);
			}
		}
		for (unsigned l = 0; l < 2; l++)
			for (pg = l ? h->full[c] : h->partial[c]; pg; pg = next) {
				next = pg->next;
				own_page_refresh(h, pg);
			}
	}
	/* and the queued floating pages without a live block, exited
	 * threads' among them (see abandon_page) */
	for (struct hak_heap *src = hak__heaps_first(); src; src = hak__heap_next(src))
		sweep_heap(src, ~0u);
}

/* Background sweeper: drain every queued floating page; pages left with no
 * live block go back to the pool (so that they can be purged). */

/* Drain the floating pages queued on src's pending queues (up to budget
 * per class); those left without a live block go to the pool. */
static void sweep_heap(struct hak_heap *src, unsigned budget_per_class)
{
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
		struct hak_page *list = NULL, *pg;
		unsigned budget = budget_per_class;
		while (budget-- && (pg = pending_pop(&src->pending[c]))) {
			atomic_store_explicit(&pg->pending_next, list, memory_order_relaxed);
			list = pg;
		}
		while ((pg = list)) {
			list = atomic_load_explicit(&pg->pending_next, memory_order_relaxed);
			uintptr_t o = atomic_load_explicit(&pg->owner, memory_order_acquire);
			if ((o & HAK_OWNER_FLAGS) != HAK_OWNER_FLOAT ||
			    !atomic_compare_exchange_strong_explicit(
				    &pg->owner, &o, o | HAK_OWNER_BUSY,
				    memory_order_acquire, memory_order_relaxed)) {
				pending_requeue(pg, c);
				continue;
			}
			hak__page_drain(pg);
			if (pg->used == 0) {
				pending_done(pg);
				hak__page_release(pg);
				continue;
			}
			hak__owner_give(pg, o, pg->class_idx);
			pending_requeue(pg, c);
		}
	}
}

void hak__sweep_pending(void)
{
	for (struct hak_heap *src = hak__heaps_first(); src; src = hak__heap_next(src))
		sweep_heap(src, hak__opt.scan_budget);
}

/* Idle heaps ------------------------------------------------------------------ */

/* A thread that stops allocating keeps the pages it holds, and the blocks
 * other threads free into them wait on its own queue: it would drain them,
 * and give the pages left without a live block to the pool, at its next
 * refill or next free.  A thread that sleeps does neither
 * (Larson's main thread allocates every block at warm-up, then sleeps while
 * the workers free them all: without this, that memory stays resident and
 * unusable for the whole run, about 40% of the peak).  Only the holder may
 * touch a held page, and nothing tells others when it is not about to; so
 * the background thread stops every slow path for a moment (the fork gate,
 * fork.c) and, while nobody is inside one, does that refresh on behalf of
 * each heap that has queued pages and has not allocated since its last
 * look.  Active pages are left alone: the malloc fast path uses them
 * without the gate.  The fast paths touch nothing else of a heap's pages
 * (free only pushes onto the thread cache).  The pages such a thread
 * floated before it stopped, and that other threads then freed into, wait
 * for a thread that needs a page of their class to adopt them; the
 * background thread sweeps them too (that needs no stop). */

/* The allocations h's thread has made, as its counters say. */
static uint64_t heap_allocs(struct hak_heap *h)
{
	/* the slot from the index, not h->st: a thread taking h over writes
	 * that pointer without a lock (to the same value) */
	struct hak_seg_slot *st = hak__stats_slot(h->index, &h->own_stats);
	uint64_t n = 0;
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++)
		n += atomic_load_explicit((_Atomic uint64_t *)&st->allocs[c],
					  memory_order_relaxed);
	return n;
}

/* Refresh the pages on h's own queues, but its active ones (every slow path
 * stopped): drained, those left without a live block go to the pool.
 * Returns how many did. */
static size_t heap_refresh_idle(struct hak_heap *h)
{
	size_t released = 0;
	uint64_t mask = own_classes_take(h);
	while (mask) {
		unsigned c = (unsigned)__builtin_ctzll(mask);
		mask &= mask - 1;
		struct hak_page *pg, *putback = NULL, *active = NULL;
		while ((pg = pending_pop(&h->own_q[c]))) {
			if (atomic_load_explicit(&pg->owner, memory_order_acquire) != (uintptr_t)h) {
				putback_add(&putback, pg); /* floated since */
				continue;
			}
			/* (a page's class may have changed since it was queued: it
			 * went through the pool meanwhile) */
			if (pg == h->active[pg->class_idx]) {
				putback_add(&active, pg); /* h drains it itself */
				continue;
			}
			pending_done(pg);
			HAK_STAT_ADD(h->st->pending_drained, 1);
			hak__page_drain(pg);
			released += pg->used == 0;
			page_refile(h, pg);
		}
		putback_requeue(putback, c);
		/* back on the queue, without the mask bit: the bit would keep
		 * the background thread looking at an idle heap */
		while ((pg = active)) {
			active = atomic_load_explicit(&pg->pending_next, memory_order_relaxed);
			pending_link(&h->own_q[c], pg);
		}
	}
	return released;
}

static void sweep_idle(struct hak_heap *h, unsigned budget_per_class)
{
	_Atomic uint32_t *g = hak__gate_enter(&hak__empty_heap);
	sweep_heap(h, budget_per_class);
	hak__gate_exit(g);
}

/* The background thread, at most every HAK_IDLE_LOOK_NS: refresh the
 * queued pages of the heaps whose threads have not allocated since the
 * previous look.  Returns the pages that went back to the pool; *watch is
 * set if a heap has queued pages and may be idle at a later look. */
size_t hak__heaps_reclaim_idle(uint64_t now, bool *watch)
{
	static uint64_t last_look;
	bool any = false;
	*watch = false;
	if (now - last_look < HAK_IDLE_LOOK_NS) {
		*watch = true; /* come back when the time is up */
		return 0;
	}
	last_look = now;
	for (struct hak_heap *h = hak__heaps_first(); h; h = hak__heap_next(h)) {
		uint64_t n = heap_allocs(h);
		bool idle = n == h->idle_allocs;
		h->idle_allocs = n;
		bool floating = false; /* its floated pages with free blocks */
		for (unsigned c = 0; c < HAK_NUM_CLASSES && !floating; c++)
			floating = atomic_load_explicit(&h->pending[c].head, memory_order_relaxed);
		if (!atomic_load_explicit(&h->alive, memory_order_acquire)) {
			/* an exited thread's pages that nobody adopted since
			 * the last look (see abandon_page) */
			h->idle_pick = false;
			*watch |= floating && !idle;
			if (floating && idle)
				sweep_idle(h, ~0u);
			continue;
		}
		bool own = (atomic_load_explicit(&h->own_mask, memory_order_relaxed) &
			    ~HAK_OWN_ALWAYS) != 0;
		h->idle_pick = own && idle;
		any |= h->idle_pick;
		*watch |= (own || floating) && !idle;
		/* nobody who needs a page of their class may come to adopt
		 * them: drain them here (no stop needed, see sweep_heap) */
		if (floating && idle)
			sweep_idle(h, hak__opt.scan_budget);
	}
	if (!any)
		return 0;
	size_t released = 0;
	hak__gate_close();
	/* a heap that allocated since the look, or whose thread exited, is
	 * left alone */
	for (struct hak_heap *h = hak__heaps_first(); h; h = hak__heap_next(h))
		if (h->idle_pick && h->idle_allocs == heap_allocs(h) &&
		    atomic_load_explicit(&h->alive, memory_order_acquire))
			released += heap_refresh_idle(h);
	hak__gate_open();
	return released;
}

/* Quiet holders ------------------------------------------------------------- */

/* A thread that frees blocks into the held pages of another whose thread
 * has stopped allocating (a worker that hands its blocks to a successor
 * and is about to exit, as on every generation of the published Larson;
 * a thread blocked for a while) pushes each onto a remote list, and those
 * pages come back into use only when their holder next refills or exits.
 * Meanwhile the freeing thread maps and carves pages of its own: with
 * four Larson threads pinned to one CPU, 840,000 of the 841,000 remote
 * frees of a run went to the held pages of a holder that had made no
 * refill since the previous one.  So once a thread has freed
 * HAKMEM_QUIET_FREES blocks remotely into the pages of one heap, and that
 * heap's thread has made no allocation meanwhile, it takes the pages that
 * heap holds (all but the active ones, which its malloc fast path uses
 * without a gate) for itself, and claims its floating ones as it frees
 * into them: its frees there are then local, and its mallocs find their
 * blocks.  A holder that allocates again was only paused, and the next
 * takeover waits longer (quiet_resumed).  The holder's slow paths are shut meanwhile
 * (hak__heap_shut), which is what every slow path relies on: only the
 * holder touches its lists.  Its fast paths touch no page but the active
 * ones; a block it caches from a page taken meanwhile goes back by a
 * remote free when its cache flushes (the hint protocol, hak__hints). */

/* Take p's held pages, but its active ones, for h (p's slow paths shut):
 * drained, and filed on h's lists (those left without a live block go to
 * the pool, where they can be purged if h does not need them).  Returns
 * how many. */
static size_t take_held(struct hak_heap *h, struct hak_heap *p)
{
	size_t n = 0;
	uint64_t now = hak__now_ns();
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
		struct hak_page *lists[2] = {p->partial[c], p->full[c]}, *pg, *next;
		for (unsigned l = 0; l < 2; l++)
			for (pg = lists[l]; pg; pg = next) {
				next = pg->next;
				uintptr_t o = (uintptr_t)p;
				if (!atomic_compare_exchange_strong_explicit(
					    &pg->owner, &o, (uintptr_t)h, memory_order_acquire,
					    memory_order_relaxed))
					continue;
				list_unlink(p, pg);
				hak__hint_put(pg, (uintptr_t)h, c);
				page_transferred(h, pg, now);
				hak__page_drain(pg);
				page_file(h, pg);
				n++;
			}
	}
	return n;
}

/* Start h's next window of frees into p's pages; n is p's allocations now. */
static void quiet_window(struct hak_heap *h, struct hak_heap *p, uint64_t n)
{
	h->quiet_frees = 0;
	h->quiet_window = hak__opt.quiet_frees
			  << atomic_load_explicit(&p->quiet_shift, memory_order_relaxed);
	h->quiet_allocs = n;
	h->quiet_refills = __atomic_load_n(&p->refills, __ATOMIC_RELAXED);
}

/* Whether p, a live heap that is not h, whose pages h frees into, is quiet:
 * its thread made no allocation while h freed the last HAKMEM_QUIET_FREES
 * << p->quiet_shift blocks into them.  When it becomes so, h takes over the
 * pages p holds.  Between looks, a remote free costs a count in h, and
 * while p is quiet a load of p's refill count (no line of p is read on
 * every free of a producer-consumer program, which would bounce it between
 * the two).  (h's gate entered.) */
static bool quiet_holder(struct hak_heap *h, struct hak_heap *p)
{
	if (h->quiet_from != p) {
		h->quiet_from = p;
		h->quiet_on = false;
		h->quiet_taken = ~(uint64_t)0;
		quiet_window(h, p, heap_allocs(p));
		return false;
	}
	/* quiet so far: no refill since (a cheaper sign than the allocations) */
	if (h->quiet_on && __atomic_load_n(&p->refills, __ATOMIC_RELAXED) != h->quiet_refills)
		h->quiet_on = false;
	/* (the count, hak__quiet_due) */
	if (h->quiet_frees < h->quiet_window)
		return h->quiet_on;
	uint64_t n = heap_allocs(p);
	h->quiet_on = n == h->quiet_allocs;
	quiet_window(h, p, n);
	/* p's held pages, unless we took them since its last allocation */
	if (h->quiet_on && n != h->quiet_taken && hak__heap_shut(p)) {
		if (take_held(h, p))
			__atomic_store_n(&p->quiet_robbed, true, __ATOMIC_RELAXED);
		hak__heap_open(p);
		h->quiet_taken = n;
	}
	return h->quiet_on;
}

/* h is about to free b remotely into page pg, which another live heap
 * holds or floats (owner word o; h's gate entered).  If that heap is
 * quiet, pg becomes h's: HAK_QUIET_FREED if b was freed here (pg floated,
 * h claimed it), HAK_QUIET_HELD if h now holds pg (taken with the holder's
 * other pages: b can go to h's cache); HAK_QUIET_REMOTE to free b
 * remotely. */
int hak__heap_free_quiet(struct hak_heap *h, struct hak_page *pg, struct hak_block *b,
			 uintptr_t o)
{
	struct hak_heap *p = (struct hak_heap *)(o & ~HAK_OWNER_FLAGS);
	if (hak__opt.strategy != HAK_DRAIN_ADOPT || !hak__opt.quiet_frees || !quiet_holder(h, p))
		return HAK_QUIET_REMOTE;
	if (!(o & HAK_OWNER_FLOAT))
		return atomic_load_explicit(&pg->owner, memory_order_relaxed) == (uintptr_t)h
			       ? HAK_QUIET_HELD
			       : HAK_QUIET_REMOTE;
	if (!take_and_free(h, pg, b, o, true))
		return HAK_QUIET_REMOTE;
	/* (a floating page: no shut orders this store with p's reads of it) */
	__atomic_store_n(&p->quiet_robbed, true, __ATOMIC_RELAXED);
	return HAK_QUIET_FREED;
}

/* Thread exit --------------------------------------------------------------- */

/* A heap without a slot in the segment hands its counters to the shared
 * overflow slot when its thread exits. */
static void fold_overflow(struct hak_heap *h)
{
	uint64_t *from = (uint64_t *)&h->own_stats;
	uint64_t *to = (uint64_t *)&hak__seg->global.overflow;
	size_t first = offsetof(struct hak_seg_slot, allocs) / sizeof(uint64_t);
	for (size_t i = first; i < sizeof h->own_stats / sizeof(uint64_t); i++) {
		uint64_t v = atomic_exchange_explicit((_Atomic uint64_t *)&from[i], 0,
						      memory_order_relaxed);
		if (v)
			HAK_GSTAT_ADD(to[i], v);
	}
}

/* Under adopt, a page left without a live block floats like the others
 * (queued: it has free blocks) instead of going to the pool: the thread
 * that takes over the exiting one's work (Larson starts a successor on the
 * same blocks at every generation) wants pages of the same classes at
 * once, and adopts these carved and warm, where the pool would have
 * carved them again and, beyond its keep, purged them and faulted them
 * back in (about 150 pages an exit on Larson 2-32 KiB).  Those nobody
 * adopts go to the pool after a look or two of the background thread
 * (hak__heaps_reclaim_idle), or at malloc_trim.  The other strategies
 * never adopt a floating page of another heap: there they go to the pool
 * at once. */
static void abandon_page(struct hak_heap *h, struct hak_page *pg)
{
	pg->next = pg->prev = NULL;
	pg->in_list = HAK_LIST_NONE;
	hak__page_drain(pg);
	if (pg->used == 0 && (hak__opt.strategy != HAK_DRAIN_ADOPT || !hak__opt.background)) {
		hak__page_release(pg);
		return;
	}
	/* read our fields before the float: after it, another thread may
	 * claim the page and write them */
	bool has_free = page_has_free(pg), empty = pg->used == 0;
	unsigned cls = pg->class_idx;
	atomic_store_explicit(&pg->float_gen, atomic_load_explicit(&h->gen, memory_order_relaxed),
			      memory_order_relaxed);
	/* Queued if it has free blocks, so that the next thread that needs a
	 * page of its class adopts it warm instead of mapping a cold one; the
	 * rest wait for the thread that frees into them to claim them. */
	hak__owner_give(pg, (uintptr_t)h | HAK_OWNER_FLOAT, cls);
	if (has_free || atomic_load_explicit(&pg->remote, memory_order_seq_cst))
		pending_enqueue((uintptr_t)h | HAK_OWNER_FLOAT, pg, cls, h->st);
	if (empty) /* the background thread sweeps it if nobody adopts it */
		hak__background_kick();
}

/* Give up every page h holds: empty ones to the pool, the rest float,
 * queued when they have free blocks so that other threads find them.  The
 * caller has entered h's gate (or is a fork child, alone); it is shut here,
 * when h goes on the free list. */
void hak__heap_abandon(struct hak_heap *h)
{
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
		hak__heap_tc_flush(h, c, 0);
		/* our own queue dies with us: its pages are all floated below and
		 * re-queued on the adoptable queue if they have blocks to give */
		struct hak_page *q;
		while ((q = pending_pop(&h->own_q[c]))) {
			/* (a page another thread took over from us is queued
			 * again on its queue: quiet_holder) */
			if (atomic_load_explicit(&q->owner, memory_order_acquire) == (uintptr_t)h)
				pending_done(q);
			else
				pending_requeue(q, c);
		}
	}
	atomic_store_explicit(&h->alive, 0, memory_order_seq_cst);
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
		struct hak_page *pg = h->active[c], *next;
		h->active[c] = &hak__empty_page;
		if (pg != &hak__empty_page)
			abandon_page(h, pg);
		struct hak_page *lists[2] = {h->partial[c], h->full[c]};
		h->partial[c] = h->full[c] = h->full_tail[c] = NULL;
		for (unsigned l = 0; l < 2; l++)
			for (pg = lists[l]; pg; pg = next) {
				next = pg->next;
				abandon_page(h, pg);
			}
	}
	atomic_store_explicit(&h->gen, atomic_load_explicit(&h->gen, memory_order_relaxed) + 1,
			      memory_order_release);
	atomic_store_explicit((_Atomic uint64_t *)&h->st->state, 2, memory_order_release);
	if (h->st == &h->own_stats)
		fold_overflow(h);
	HAK_GSTAT_SUB(hak__seg->global.threads, 1);
	hak__tl_heap = &hak__empty_heap;
	hak__spin_lock(&heaps_lock);
	/* the gate the exiting thread entered shuts here, under the lock that
	 * fork_prepare takes once the gates are shut: a fork child finds h
	 * either in use (and abandons it) or on the free list */
	atomic_store_explicit(&h->gate, 0, memory_order_release);
	h->next_free = heaps_free;
	heaps_free = h;
	hak__spin_unlock(&heaps_lock);
}

void hak__heaps_lock(void)
{
	hak__spin_lock(&heaps_lock);
}

void hak__heaps_unlock(void)
{
	hak__spin_unlock(&heaps_lock);
}

/* In a fork child only the forking thread survives: abandon the heaps of
 * the threads that did not come along, so their pages can be reused. */
void hak__heaps_after_fork_child(struct hak_heap *self)
{
	/* queue locks held by threads that are gone would never be released */
	for (struct hak_heap *h = hak__heaps_first(); h; h = h->next_heap)
		for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
			atomic_store_explicit(&h->pending[c].lock, 0, memory_order_relaxed);
			atomic_store_explicit(&h->own_q[c].lock, 0, memory_order_relaxed);
		}
	for (struct hak_heap *h = hak__heaps_first(); h; h = h->next_heap)
		if (h != self && atomic_load_explicit(&h->alive, memory_order_relaxed))
			hak__heap_abandon(h);
	hak__tl_heap = self ? self : &hak__empty_heap;
	if (self)
		self->tid = hak__gettid();
}
