/*
 * heap.c - thread heaps and the MF2 machinery between them: floating full
 * pages, pending queues, consumer-driven adoption, the drain strategies,
 * claiming pages of exited threads, and abandonment at thread exit.
 *
 * Protocol (see struct hak_page in internal.h for the owner word):
 *  - A heap holds its active page per class and a partial list of held
 *    pages with free blocks.  When the active page runs out it is *floated*
 *    (owner = H|FLOAT) and forgotten; from then on only a CAS on owner lets
 *    anyone, H included, touch its local fields again.
 *  - A remote free that takes a floating page's remote list from empty to
 *    non-empty puts the page on its owner heap's pending queue for the class
 *    (once: in_pending guards the link).  Held pages are never queued: their
 *    holder drains them when it next uses them.
 *  - Whoever pops a page it cannot take re-queues it if it still floats, so
 *    a floating page with reclaimable blocks is never lost.
 */
#include "config.h"
#include "internal.h"

#include <string.h>

struct hak_heap hak__empty_heap = {
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
#define HAK_HEAP_CHUNK ((size_t)256 << 10)

struct hak_heap *hak__heaps_first(void)
{
	return __atomic_load_n(&heaps_head, __ATOMIC_ACQUIRE);
}

static struct hak_heap *heap_next_wrap(struct hak_heap *x)
{
	struct hak_heap *n = __atomic_load_n(&x->next_heap, __ATOMIC_ACQUIRE);
	return n ? n : hak__heaps_first();
}

static void heap_setup(struct hak_heap *h)
{
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
		h->active[c] = &hak__empty_page;
		h->partial[c] = NULL;
	}
	h->tid = hak__gettid();
	h->st = hak__stats_slot(h->index, &h->own_stats);
	atomic_store_explicit((_Atomic uint64_t *)&h->st->tid, (uint64_t)h->tid,
			      memory_order_relaxed);
	atomic_store_explicit((_Atomic uint64_t *)&h->st->state, 1, memory_order_release);
	h->drain_tick = hak__opt.strategy == HAK_DRAIN_ROUNDROBIN ||
					hak__opt.strategy == HAK_DRAIN_HYBRID
				? hak__opt.drain_period
				: UINT32_MAX;
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
		h->index = heaps_count++;
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

/* Queue pg on heap h's pending queue for its class unless it is queued
 * somewhere already.  Returns true if this call linked it. */
static bool pending_enqueue(struct hak_heap *h, struct hak_page *pg, unsigned cls)
{
	if (atomic_exchange_explicit(&pg->in_pending, 1, memory_order_acq_rel))
		return false;
	pending_link(&h->pending[cls], pg);
	return true;
}

void hak__pending_push(struct hak_heap *h, struct hak_page *pg)
{
	pending_enqueue(h, pg, pg->class_idx);
}

/* Pop one page (consumers serialised by the queue's try-lock: no ABA). */
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
	if (pg)
		atomic_store_explicit(&pg->in_pending, 0, memory_order_seq_cst);
	return pg;
}

/* A popped page that the popper could not take: if it still floats it goes
 * back on its owner's queue (its blocks must stay findable). */
static void pending_requeue(struct hak_page *pg)
{
	uintptr_t o = atomic_load_explicit(&pg->owner, memory_order_seq_cst);
	if (!(o & HAK_OWNER_FLOAT))
		return; /* held (its holder drains it) or free */
	pending_enqueue((struct hak_heap *)(o & ~HAK_OWNER_FLAGS), pg, pg->class_idx);
}

/* Holding pages ---------------------------------------------------------- */

static void partial_push(struct hak_heap *h, struct hak_page *pg)
{
	unsigned c = pg->class_idx;
	pg->prev = NULL;
	pg->next = h->partial[c];
	if (pg->next)
		pg->next->prev = pg;
	h->partial[c] = pg;
	pg->in_list = 1;
}

static void partial_unlink(struct hak_heap *h, struct hak_page *pg)
{
	if (pg->prev)
		pg->prev->next = pg->next;
	else
		h->partial[pg->class_idx] = pg->next;
	if (pg->next)
		pg->next->prev = pg->prev;
	pg->next = pg->prev = NULL;
	pg->in_list = 0;
}

/* Try to take a floating page: CAS owner from o (a FLOAT value) to h. */
static bool page_take(struct hak_heap *h, struct hak_page *pg, uintptr_t o)
{
	return atomic_compare_exchange_strong_explicit(&pg->owner, &o, (uintptr_t)h,
						       memory_order_acquire,
						       memory_order_relaxed);
}

/* Float a held page that has no free block.  Returns false if remote frees
 * arrived meanwhile and the page was kept (drained, with free blocks). */
static bool page_float(struct hak_heap *h, struct hak_page *pg)
{
	atomic_store_explicit(&pg->owner, (uintptr_t)h | HAK_OWNER_FLOAT, memory_order_seq_cst);
	if (!atomic_load_explicit(&pg->remote, memory_order_seq_cst))
		return true;
	/* A remote free raced with us: it may or may not have queued the page.
	 * Take it back if nobody adopted it yet. */
	if (!page_take(h, pg, (uintptr_t)h | HAK_OWNER_FLOAT))
		return true; /* adopted from a stale queue entry: no longer ours */
	hak__page_drain(pg);
	return false;
}

/* Make pg (held by h, with free blocks) the active page of its class; the
 * previous active page joins the partial list or floats. */
static void page_activate(struct hak_heap *h, struct hak_page *pg)
{
	unsigned c = pg->class_idx;
	struct hak_page *old = h->active[c];
	if (pg->in_list)
		partial_unlink(h, pg);
	h->active[c] = pg;
	if (old == &hak__empty_page || old == pg)
		return;
	if (old->free || old->carved < old->capacity) {
		partial_push(h, old);
	} else if (!page_float(h, old)) {
		partial_push(h, old);
	}
}

/* A page h just took over (reclaimed, adopted or claimed): drain it and use
 * it, or float it again if it had nothing to give.  Returns true if it
 * became h's active page. */
static bool page_use_taken(struct hak_heap *h, struct hak_page *pg, unsigned want)
{
	hak__page_drain(pg);
	if (pg->used == 0 && pg->class_idx != want) {
		hak__page_release(pg);
		return false;
	}
	if (!pg->free && !hak__page_extend(pg)) {
		if (!page_float(h, pg))
			partial_push(h, pg);
		return false;
	}
	if (pg->class_idx != want) {
		partial_push(h, pg);
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
static bool take_pending_from(struct hak_heap *h, struct hak_heap *src, unsigned cls,
			      unsigned *budget)
{
	struct hak_page *pg;
	uint64_t now = 0;
	while (*budget && (pg = pending_pop(&src->pending[cls]))) {
		(*budget)--;
		uintptr_t o = atomic_load_explicit(&pg->owner, memory_order_acquire);
		if (!(o & HAK_OWNER_FLOAT) || (o & HAK_OWNER_BUSY)) {
			if (o & HAK_OWNER_FLOAT)
				pending_requeue(pg);
			continue;
		}
		struct hak_heap *from = (struct hak_heap *)(o & ~HAK_OWNER_FLAGS);
		bool transfer = from != h;
		if (transfer && hak__opt.strategy != HAK_DRAIN_ADOPT) {
			pending_requeue(pg); /* not ours to take under this strategy */
			continue;
		}
		if (transfer && atomic_load_explicit(&from->alive, memory_order_acquire)) {
			if (!now)
				now = hak__now_ns();
			if (!lease_allows(pg, now)) {
				HAK_STAT_ADD(h->st->lease_refusals, 1);
				pending_requeue(pg);
				continue;
			}
		}
		if (!page_take(h, pg, o)) {
			pending_requeue(pg);
			continue;
		}
		HAK_STAT_ADD(h->st->pending_drained, 1);
		if (transfer) {
			if (!now)
				now = hak__now_ns();
			atomic_store_explicit(&pg->last_transfer_ns, now, memory_order_relaxed);
			HAK_STAT_ADD(h->st->adoptions, 1);
			HAK_STAT_ADD(h->st->pages_reused, 1);
		}
		if (page_use_taken(h, pg, cls))
			return true;
	}
	return false;
}

static bool find_pending(struct hak_heap *h, unsigned cls)
{
	unsigned budget = hak__opt.scan_budget;
	if (take_pending_from(h, h, cls, &budget))
		return true;
	if (hak__opt.strategy != HAK_DRAIN_ADOPT)
		return false;
	for (struct hak_heap *o = heap_next_wrap(h); o != h && budget; o = heap_next_wrap(o))
		if (take_pending_from(h, o, cls, &budget))
			return true;
	return false;
}

/* The allocation slow path ------------------------------------------------ */

static void *take_block(struct hak_heap *h, struct hak_page *pg, unsigned cls)
{
	struct hak_block *b = pg->free;
	pg->free = b->next;
	pg->used++;
	b->marker = 0;
	HAK_STAT_ADD(h->st->allocs[cls], 1);
	return b;
}

void *hak__heap_alloc_slow(struct hak_heap *h, unsigned cls)
{
	if (unlikely(h == &hak__empty_heap)) {
		h = hak__heap_get();
		if (!h)
			return NULL;
	}
	if (!hak__opt.mf2 && hak__class_size[cls] >= HAK_POOL_MIN_CLASS_SIZE)
		return hak__pool_alloc(cls, h->st);

	struct hak_page *pg = h->active[cls];
	if (pg != &hak__empty_page) {
		if (pg->free || hak__page_drain(pg) || hak__page_extend(pg))
			return take_block(h, pg, cls);
	}
	/* held pages with free blocks */
	while ((pg = h->partial[cls])) {
		hak__page_drain(pg);
		if (pg->free || hak__page_extend(pg)) {
			page_activate(h, pg);
			return take_block(h, pg, cls);
		}
		partial_unlink(h, pg);
		if (page_float(h, pg))
			continue;
		page_activate(h, pg);
		return take_block(h, pg, cls);
	}
	/* floating pages with reclaimable blocks */
	if (find_pending(h, cls))
		return take_block(h, h->active[cls], cls);
	/* a page from the free pool, or from the OS */
	pg = hak__page_alloc(h->st);
	if (!pg)
		return NULL;
	hak__page_init(pg, cls);
	atomic_store_explicit(&pg->owner, (uintptr_t)h, memory_order_release);
	hak__page_extend(pg);
	page_activate(h, pg);
	return take_block(h, pg, cls);
}

/* The free slow paths ----------------------------------------------------- */

/* A page h holds became empty through a local free or a drain. */
void hak__heap_page_emptied(struct hak_heap *h, struct hak_page *pg)
{
	if (h->active[pg->class_idx] == pg)
		return; /* keep the active page: the next allocation wants it */
	if (pg->in_list)
		partial_unlink(h, pg);
	hak__page_release(pg);
}

static void local_free(struct hak_heap *h, struct hak_page *pg, struct hak_block *b)
{
	b->marker = hak__free_marker(b);
	b->next = pg->free;
	pg->free = b;
	HAK_STAT_ADD(h->st->frees[pg->class_idx], 1);
	if (--pg->used == 0 && h->active[pg->class_idx] != pg) {
		hak__heap_page_emptied(h, pg);
		return;
	}
	if (!pg->in_list && h->active[pg->class_idx] != pg)
		partial_push(h, pg);
}

/* free() of a block in a page the calling thread does not hold. */
void hak__heap_free_slow(struct hak_heap *h, struct hak_page *pg, struct hak_block *b)
{
	hak__block_check(pg, b);
	if (h == &hak__empty_heap) {
		h = hak__heap_get();
		if (!h) { /* no heap and no memory for one: free remotely, uncounted */
			if (hak__remote_push(pg, b))
				pending_requeue(pg);
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
		 * An exited thread's page: claim it on the spot (adopt only). */
		bool claim = from != h && hak__opt.strategy == HAK_DRAIN_ADOPT &&
			     !atomic_load_explicit(&from->alive, memory_order_acquire);
		if ((from == h || claim) && page_take(h, pg, o)) {
			if (claim) {
				atomic_store_explicit(&pg->last_transfer_ns, hak__now_ns(),
						      memory_order_relaxed);
				HAK_STAT_ADD(h->st->adoptions, 1);
				HAK_STAT_ADD(h->st->pages_reused, 1);
			}
			hak__page_drain(pg);
			local_free(h, pg, b);
			return;
		}
	}
	HAK_STAT_ADD(h->st->remote_frees, 1);
	HAK_STAT_ADD(h->st->frees[pg->class_idx], 1);
	if (!hak__remote_push(pg, b))
		return;
	/* 0 -> 1: queue the page on its owner's pending queue if it floats */
	o = atomic_load_explicit(&pg->owner, memory_order_seq_cst);
	if (o & HAK_OWNER_FLOAT) {
		if (pending_enqueue((struct hak_heap *)(o & ~HAK_OWNER_FLAGS), pg, pg->class_idx))
			HAK_STAT_ADD(h->st->pending_enqueued, 1);
	}
}

/* Drain strategies roundrobin and hybrid ---------------------------------- */

/* Drain one floating page of heap src in place and leave it on src's queue
 * for src to pick up (the pre-adoption design the seed measured). */
static bool drain_for_owner(struct hak_heap *h, struct hak_heap *src, unsigned cls)
{
	struct hak_page *pg = pending_pop(&src->pending[cls]);
	if (!pg)
		return false;
	uintptr_t o = atomic_load_explicit(&pg->owner, memory_order_acquire);
	if ((o & HAK_OWNER_FLAGS) != HAK_OWNER_FLOAT) {
		if (o & HAK_OWNER_FLOAT)
			pending_requeue(pg);
		return false;
	}
	if ((struct hak_heap *)(o & ~HAK_OWNER_FLAGS) == h) {
		if (page_take(h, pg, o)) { /* our own: reclaim it outright */
			HAK_STAT_ADD(h->st->pending_drained, 1);
			hak__page_drain(pg);
			if (pg->used == 0)
				hak__heap_page_emptied(h, pg);
			else if (pg->free || pg->carved < pg->capacity)
				partial_push(h, pg);
			else if (!page_float(h, pg))
				partial_push(h, pg);
		} else {
			pending_requeue(pg);
		}
		return true;
	}
	uintptr_t busy = o | HAK_OWNER_BUSY;
	if (!atomic_compare_exchange_strong_explicit(&pg->owner, &o, busy, memory_order_acquire,
						     memory_order_relaxed)) {
		pending_requeue(pg);
		return false;
	}
	bool drained = hak__page_drain(pg) != 0;
	atomic_store_explicit(&pg->owner, busy & ~HAK_OWNER_BUSY, memory_order_seq_cst);
	if (drained)
		HAK_STAT_ADD(h->st->pending_drained, 1);
	pending_requeue(pg); /* the owner finds it there, with free blocks */
	return drained;
}

void hak__heap_drain_tick(struct hak_heap *h)
{
	int s = hak__opt.strategy;
	if (s != HAK_DRAIN_ROUNDROBIN && s != HAK_DRAIN_HYBRID) {
		h->drain_tick = UINT32_MAX;
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
			target = target->next_heap;
		if (!target)
			target = h;
	}
	/* one page: try classes starting at the rotating position */
	for (unsigned i = 0; i < HAK_NUM_CLASSES; i++) {
		unsigned c = (step + i) % HAK_NUM_CLASSES;
		if (atomic_load_explicit(&target->pending[c].head, memory_order_relaxed)) {
			drain_for_owner(h, target, c);
			return;
		}
	}
}

/* Background sweeper: drain every queued floating page; pages left with no
 * live block go back to the pool (so that they can be purged). */
void hak__sweep_pending(void)
{
	for (struct hak_heap *src = hak__heaps_first(); src; src = src->next_heap) {
		for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
			struct hak_page *list = NULL, *pg;
			unsigned budget = hak__opt.scan_budget;
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
					pending_requeue(pg);
					continue;
				}
				hak__page_drain(pg);
				if (pg->used == 0) {
					hak__page_release(pg);
					continue;
				}
				atomic_store_explicit(&pg->owner, o, memory_order_seq_cst);
				pending_requeue(pg);
			}
		}
	}
}

/* Thread exit --------------------------------------------------------------- */

/* Give up every page h holds: empty ones to the pool, the rest float,
 * queued when they have free blocks so that other threads find them. */
void hak__heap_abandon(struct hak_heap *h)
{
	atomic_store_explicit(&h->alive, 0, memory_order_seq_cst);
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
		struct hak_page *act = h->active[c];
		h->active[c] = &hak__empty_page;
		if (act != &hak__empty_page) {
			act->in_list = 0;
			act->next = h->partial[c];
			h->partial[c] = act; /* treat it like the partial pages below */
		}
		struct hak_page *pg = h->partial[c];
		h->partial[c] = NULL;
		while (pg) {
			struct hak_page *next = pg->next;
			pg->next = pg->prev = NULL;
			pg->in_list = 0;
			hak__page_drain(pg);
			if (pg->used == 0) {
				hak__page_release(pg);
			} else {
				bool has_free = pg->free || pg->carved < pg->capacity;
				atomic_store_explicit(&pg->owner, (uintptr_t)h | HAK_OWNER_FLOAT,
						      memory_order_seq_cst);
				if (has_free || atomic_load_explicit(&pg->remote, memory_order_seq_cst))
					pending_enqueue(h, pg, c);
			}
			pg = next;
		}
	}
	atomic_store_explicit((_Atomic uint64_t *)&h->st->state, 2, memory_order_release);
	HAK_GSTAT_SUB(hak__seg->global.threads, 1);
	hak__tl_heap = &hak__empty_heap;
	hak__spin_lock(&heaps_lock);
	h->next_free = heaps_free;
	heaps_free = h;
	hak__spin_unlock(&heaps_lock);
}

void hak__heaps_lock(void)
{
	hak__spin_lock(&heaps_lock);
}

void hak__heaps_unlock(bool child)
{
	(void)child;
	hak__spin_unlock(&heaps_lock);
}

/* In a fork child only the forking thread survives: abandon the heaps of
 * the threads that did not come along, so their pages can be reused. */
void hak__heaps_after_fork_child(struct hak_heap *self)
{
	for (struct hak_heap *h = hak__heaps_first(); h; h = h->next_heap) {
		if (h == self || !atomic_load_explicit(&h->alive, memory_order_relaxed))
			continue;
		for (unsigned c = 0; c < HAK_NUM_CLASSES; c++)
			atomic_store_explicit(&h->pending[c].lock, 0, memory_order_relaxed);
		hak__heap_abandon(h);
	}
	for (unsigned c = 0; self && c < HAK_NUM_CLASSES; c++)
		atomic_store_explicit(&self->pending[c].lock, 0, memory_order_relaxed);
	hak__tl_heap = self ? self : &hak__empty_heap;
	if (self)
		self->tid = hak__gettid();
}
