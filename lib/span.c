/*
 * span.c - the span tier: memory for blocks above HAK_SMALL_MAX and up to
 * HAKMEM_SPAN_MAX_MB, carved in 4 KiB pages from large regions and kept
 * when freed, so that a program that replaces its buffers reuses resident
 * memory instead of mapping, faulting and unmapping it every time.
 *
 * A region is one mapping (128 MiB by default: four times the largest
 * block, smaller when the kernel refuses that much): a metadata prefix
 * (this header and one descriptor per page) and the data pages, which tile
 * into spans.  Every span is either in use, free and dirty (it may be resident),
 * free and clean (it reads as zero: never touched, or purged), or busy
 * (being purged).  Free spans of the same state coalesce with their
 * neighbours; dirty and clean ones do not, so that a clean span stays
 * known to be zero (calloc skips the memset) and reusing a dirty one costs
 * no page fault.  An allocation takes a dirty span first (its own shard's,
 * then another shard's if it can lock it at once), then a clean one, then
 * a new region.
 *
 * Regions belong to shards, one per CPU (at most HAK_SPAN_SHARDS); a thread
 * allocates from shard (heap index mod shards), and a block goes back to its
 * region's shard, so frees from different threads take different locks; a
 * free that finds the lock taken pushes the block on the shard's deferred
 * stack instead of waiting, and the next holder of the lock frees it.
 *
 * Dirty free spans wait on a list ordered by the time they were freed: the
 * purge returns those older than HAKMEM_PURGE_DELAY_MS, the oldest beyond
 * the shard's keep (HAKMEM_SPAN_KEEP_PCT of the bytes it has in use, at
 * least HAKMEM_LARGE_CACHE_MB) whatever their age, and as many as fresh
 * pages were taken while more than HAKMEM_LARGE_CACHE_MB waited (debt).
 *
 * Invariants (shard lock held to read or write any of them):
 *  - the spans of a region tile its data pages; the descriptor of a span's
 *    first page holds npages and state, that of its last page holds the
 *    state and the first page's index (first); descriptors of inner pages
 *    mean nothing;
 *  - a free span (DIRTY or CLEAN) is on exactly one bin list of its shard,
 *    bin[state][bin_floor(npages)], and a DIRTY one is also on the lru list;
 *  - two free spans of the same state are never neighbours;
 *  - dirty_bytes and used_bytes are the sums over the shard's spans.
 */
#include "config.h"
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <sys/uio.h>

#define SPAN_PAGE_SHIFT 12
#define SPAN_PAGE ((size_t)1 << SPAN_PAGE_SHIFT)
#define SPAN_BINS 64 /* bin_floor(2^15 pages) = 59; the mask is one word */
#define SPAN_MIN_REGION ((size_t)16 << 20)

enum { SP_INNER, SP_DIRTY, SP_CLEAN, SP_USED, SP_BUSY };

struct span {
	struct hak_region *region; /* first page: the region */
	uint32_t npages;       /* first page: pages in the span */
	uint32_t first;        /* last page: index of the first */
	uint8_t state;         /* first and last page: SP_* */
	uint8_t bin;           /* free: its bin */
	struct span *next, *prev;   /* free: bin list */
	struct span *lnext, *lprev; /* dirty: lru list, newest first */
	uint64_t freed_ns;     /* dirty: when it was freed */
};

struct hak_region {
	struct hak_region *next;  /* the shard's regions */
	struct hak_span_shard *shard;
	char *data;               /* first data page */
	size_t map_size;          /* the whole mapping */
	uint32_t npages;          /* data pages */
	uint32_t pad;
	struct span desc[];       /* one per data page */
};

struct hak_span_shard {
	_Alignas(HAK_CACHE_LINE) _Atomic uint32_t lock;
	uint64_t mask[2];                  /* non-empty bins: [0] dirty, [1] clean */
	struct span *bin[2][SPAN_BINS];
	struct span *lru_head, *lru_tail;  /* dirty free spans */
	size_t dirty_bytes, used_bytes, clean_bytes;
	size_t pub_dirty, pub_clean; /* what the segment's totals have of them */
	size_t debt;  /* fresh bytes taken while dirty memory was idle: to purge */
	struct hak_region *regions;
	/* Blocks freed while the lock was taken, by their headers: an MPSC
	 * Treiber stack (pushers CAS with release; whoever holds the lock takes
	 * the whole list with an acquire exchange, so there is no ABA). */
	_Alignas(HAK_CACHE_LINE) _Atomic(struct hak_large *) deferred;
};

static struct hak_span_shard shards[HAK_SPAN_SHARDS];
static unsigned nshards = 1; /* shards in use: one per CPU, at most HAK_SPAN_SHARDS */
static size_t region_size;  /* 4 x the largest span block, at least 16 MiB */

/* Set up the geometry from the options (once, at init). */
void hak__span_init(void)
{
	if (!hak__opt.span_max)
		return;
	unsigned n = hak__os_ncpus();
	nshards = n < HAK_SPAN_SHARDS ? n : HAK_SPAN_SHARDS;
	size_t want = hak__opt.span_max * 4;
	region_size = want > SPAN_MIN_REGION ? want : SPAN_MIN_REGION;
}

/* The metadata prefix of a region of size bytes: 64 KiB multiple. */
static size_t region_meta(size_t size)
{
	size_t meta = sizeof(struct hak_region) + (size >> SPAN_PAGE_SHIFT) * sizeof(struct span);
	return (meta + HAK_PAGE_SIZE - 1) & ~(HAK_PAGE_SIZE - 1);
}

/* Bins: one per page count below 16, then four per doubling.  A free span
 * goes to bin_floor(npages); any span in bin_ceil(n) or above has n pages
 * at least. */
static unsigned bin_floor(uint32_t n)
{
	if (n < 16)
		return n - 1;
	unsigned b = 31u - (unsigned)__builtin_clz(n);
	return 15 + (b - 4) * 4 + ((n >> (b - 2)) & 3);
}

static uint32_t bin_min(unsigned i)
{
	if (i < 15)
		return i + 1;
	unsigned b = 4 + (i - 15) / 4, sub = (i - 15) % 4;
	return (4u + sub) << (b - 2);
}

static unsigned bin_ceil(uint32_t n)
{
	unsigned i = bin_floor(n);
	return bin_min(i) < n ? i + 1 : i;
}

static struct hak_region *region_of(const struct span *d)
{
	return d->region;
}

static uint32_t index_of(const struct hak_region *r, const struct span *d)
{
	return (uint32_t)(d - r->desc);
}

static char *span_addr(const struct hak_region *r, uint32_t i)
{
	return r->data + ((size_t)i << SPAN_PAGE_SHIFT);
}

static void mark(struct hak_region *r, uint32_t i, uint32_t n, unsigned state)
{
	struct span *d = &r->desc[i], *t = &r->desc[i + n - 1];
	d->region = r;
	d->npages = n;
	d->state = (uint8_t)state;
	t->first = i;
	t->state = (uint8_t)state;
}

static void bin_push(struct hak_span_shard *s, struct span *d, unsigned state)
{
	unsigned k = state == SP_CLEAN, b = bin_floor(d->npages);
	d->bin = (uint8_t)b;
	d->prev = NULL;
	d->next = s->bin[k][b];
	if (d->next)
		d->next->prev = d;
	s->bin[k][b] = d;
	s->mask[k] |= (uint64_t)1 << b;
	if (state == SP_DIRTY) {
		d->lprev = NULL;
		d->lnext = s->lru_head;
		if (d->lnext)
			d->lnext->lprev = d;
		else
			s->lru_tail = d;
		s->lru_head = d;
		s->dirty_bytes += (size_t)d->npages << SPAN_PAGE_SHIFT;
	}
}

static void bin_unlink(struct hak_span_shard *s, struct span *d)
{
	unsigned k = d->state == SP_CLEAN, b = d->bin;
	if (d->prev)
		d->prev->next = d->next;
	else if (!(s->bin[k][b] = d->next))
		s->mask[k] &= ~((uint64_t)1 << b);
	if (d->next)
		d->next->prev = d->prev;
	if (d->state == SP_DIRTY) {
		if (d->lprev)
			d->lprev->lnext = d->lnext;
		else
			s->lru_head = d->lnext;
		if (d->lnext)
			d->lnext->lprev = d->lprev;
		else
			s->lru_tail = d->lprev;
		s->dirty_bytes -= (size_t)d->npages << SPAN_PAGE_SHIFT;
	}
}

/* The clean free bytes (lock held); dirty_bytes is kept by bin_push and
 * bin_unlink. */
static void stat_free_add(struct hak_span_shard *s, unsigned state, size_t bytes)
{
	if (state != SP_DIRTY)
		s->clean_bytes += bytes;
}

static void stat_free_sub(struct hak_span_shard *s, unsigned state, size_t bytes)
{
	if (state != SP_DIRTY)
		s->clean_bytes -= bytes;
}

/* Publish shard s's figures to the stats segment (lock held): its kept
 * bytes exactly, its share of the process totals when they moved by a
 * step or reached zero. */
static void publish(struct hak_span_shard *s)
{
	struct hak_seg_global *g = &hak__seg->global;
	unsigned i = (unsigned)(s - shards);
	atomic_store_explicit((_Atomic uint64_t *)&g->span_kept_bytes[i], s->dirty_bytes,
			      memory_order_relaxed);
	if (s->dirty_bytes != s->pub_dirty &&
	    (!s->dirty_bytes || !s->pub_dirty ||
	     s->dirty_bytes - s->pub_dirty + HAK_SEG_SPAN_STEP > 2 * HAK_SEG_SPAN_STEP)) {
		HAK_GSTAT_ADD(g->unpurged_free_bytes, s->dirty_bytes - s->pub_dirty);
		s->pub_dirty = s->dirty_bytes;
	}
	if (s->clean_bytes != s->pub_clean &&
	    (!s->clean_bytes || !s->pub_clean ||
	     s->clean_bytes - s->pub_clean + HAK_SEG_SPAN_STEP > 2 * HAK_SEG_SPAN_STEP)) {
		HAK_GSTAT_ADD(g->purged_now_bytes, s->clean_bytes - s->pub_clean);
		s->pub_clean = s->clean_bytes;
	}
}

static void shard_unlock(struct hak_span_shard *s)
{
	publish(s);
	hak__spin_unlock(&s->lock);
}

/* Make pages [i, i+n) of r a free span of state (DIRTY or CLEAN), merged
 * with free neighbours of the same state.  freed_ns is its age. */
static void free_insert(struct hak_span_shard *s, struct hak_region *r, uint32_t i, uint32_t n,
			unsigned state, uint64_t freed_ns)
{
	stat_free_add(s, state, (size_t)n << SPAN_PAGE_SHIFT);
	if (i > 0 && r->desc[i - 1].state == state) {
		struct span *p = &r->desc[r->desc[i - 1].first];
		bin_unlink(s, p);
		n += p->npages;
		i = index_of(r, p);
	}
	if (i + n < r->npages && r->desc[i + n].state == state) {
		struct span *q = &r->desc[i + n];
		bin_unlink(s, q);
		if (state == SP_DIRTY && q->freed_ns > freed_ns)
			freed_ns = q->freed_ns;
		n += q->npages;
	}
	mark(r, i, n, state);
	r->desc[i].freed_ns = freed_ns;
	bin_push(s, &r->desc[i], state);
}

/* Take the first n pages of free span d (unlinked by the caller, state
 * still set); the rest stays free with the same state and age. */
static void take_front(struct hak_span_shard *s, struct span *d, uint32_t n)
{
	struct hak_region *r = region_of(d);
	uint32_t i = index_of(r, d), total = d->npages;
	unsigned state = d->state;
	uint64_t age = d->freed_ns;
	stat_free_sub(s, state, (size_t)total << SPAN_PAGE_SHIFT);
	mark(r, i, n, SP_USED);
	if (total > n) {
		/* the neighbour after it is in use or of the other state: no merge */
		mark(r, i + n, total - n, state);
		r->desc[i + n].freed_ns = age;
		bin_push(s, &r->desc[i + n], state);
		stat_free_add(s, state, (size_t)(total - n) << SPAN_PAGE_SHIFT);
	}
	s->used_bytes += (size_t)n << SPAN_PAGE_SHIFT;
}

/* Whether free span d is a better fit than best: fewer pages, then the
 * lower address (address-ordered best fit fragments least). */
static bool better(const struct span *d, const struct span *best)
{
	return !best || d->npages < best->npages || (d->npages == best->npages && d < best);
}

/* The best fitting free span of state k (0 dirty, 1 clean) with at least
 * n pages, or NULL: in the bin that may hold a close fit, else in the
 * lowest bin that surely fits (spans within a quarter of each other). */
static struct span *find(struct hak_span_shard *s, unsigned k, uint32_t n)
{
	enum { SCAN = 32 };
	struct span *best = NULL;
	unsigned lo = bin_floor(n), hi = bin_ceil(n), tries = SCAN;
	if (lo != hi)
		for (struct span *d = s->bin[k][lo]; d && tries--; d = d->next)
			if (d->npages >= n && better(d, best))
				best = d;
	if (best || hi >= SPAN_BINS)
		return best;
	uint64_t m = s->mask[k] & (~(uint64_t)0 << hi);
	if (!m)
		return NULL;
	tries = SCAN;
	for (struct span *d = s->bin[k][__builtin_ctzll(m)]; d && tries--; d = d->next)
		if (better(d, best))
			best = d;
	return best;
}

/* A new region with room for npages at least: the usual size, or, when
 * the kernel refuses that much address space, halves of it down to what
 * the request needs (so that under RLIMIT_AS a block that fits is still
 * served). */
static struct hak_region *region_new(struct hak_span_shard *s, uint32_t npages)
{
	size_t need = ((size_t)npages << SPAN_PAGE_SHIFT);
	size_t size = region_size;
	struct hak_region *r;
	int saved = errno; /* a refusal followed by a success is a success */
	for (;;) {
		if ((r = hak__os_map_aligned(size, HAK_PAGE_SIZE)))
			break;
		size_t half = size / 2;
		half = (half + HAK_PAGE_SIZE - 1) & ~(HAK_PAGE_SIZE - 1);
		if (half >= size || half < need + region_meta(half))
			return NULL;
		size = half;
	}
	size_t meta = region_meta(size);
	if (size < need + meta ||
	    hak__map_set((char *)r + meta, size - meta, HAK_MAP_LARGE) != 0) {
		hak__os_unmap(r, size);
		errno = ENOMEM;
		return NULL;
	}
	r->shard = s;
	r->data = (char *)r + meta;
	r->map_size = size;
	r->npages = (uint32_t)((size - meta) >> SPAN_PAGE_SHIFT);
	HAK_GSTAT_ADD(hak__seg->global.mapped_bytes, size);
	HAK_GSTAT_ADD(hak__seg->global.span_mapped_bytes, size);
	errno = saved;
	return r;
}

/* n pages made of dirty free span d and the clean free span c next to it
 * (d + c >= n > d), the way a heap's top absorbs the chunk freed next to
 * it: d's pages are reused without a fault, and c's rest stays clean.
 * *dirty_first gets where d's pages are in the block.  Returns the block's
 * first page. */
static uint32_t combine(struct hak_span_shard *s, struct hak_region *r, struct span *d,
			struct span *c, uint32_t n, uint32_t *dirty_first)
{
	uint32_t di = index_of(r, d), dn = d->npages, ci = index_of(r, c), cn = c->npages;
	uint32_t rest = dn + cn - n, at;
	bin_unlink(s, d);
	bin_unlink(s, c);
	stat_free_sub(s, SP_DIRTY, (size_t)dn << SPAN_PAGE_SHIFT);
	stat_free_sub(s, SP_CLEAN, (size_t)cn << SPAN_PAGE_SHIFT);
	if (ci > di) { /* [d][c]: the block, then c's rest */
		at = di;
		*dirty_first = 0;
		if (rest)
			mark(r, di + n, rest, SP_CLEAN);
	} else {       /* [c][d]: c's rest, then the block */
		at = ci + rest;
		*dirty_first = n - dn;
		if (rest)
			mark(r, ci, rest, SP_CLEAN);
	}
	if (rest) {
		struct span *left = &r->desc[ci > di ? di + n : ci];
		left->freed_ns = 0;
		bin_push(s, left, SP_CLEAN);
		stat_free_add(s, SP_CLEAN, (size_t)rest << SPAN_PAGE_SHIFT);
	}
	mark(r, at, n, SP_USED);
	s->used_bytes += (size_t)n << SPAN_PAGE_SHIFT;
	return at;
}

/* A clean free span next to d, or NULL. */
static struct span *clean_neighbour(struct hak_region *r, struct span *d, uint32_t n)
{
	uint32_t i = index_of(r, d), dn = d->npages;
	if (i + dn < r->npages && r->desc[i + dn].state == SP_CLEAN &&
	    r->desc[i + dn].npages + dn >= n)
		return &r->desc[i + dn];
	if (i > 0 && r->desc[i - 1].state == SP_CLEAN) {
		struct span *c = &r->desc[r->desc[i - 1].first];
		if (c->npages + dn >= n)
			return c;
	}
	return NULL;
}

/* The largest dirty spans (none holds n pages) with a clean neighbour that
 * makes up the rest: the one that reuses most. */
static struct span *find_combined(struct hak_span_shard *s, uint32_t n, struct span **clean)
{
	enum { SCAN = 16 };
	unsigned tries = SCAN;
	for (uint64_t m = s->mask[0]; m && tries; m &= ~((uint64_t)1 << (63 - __builtin_clzll(m))))
		for (struct span *d = s->bin[0][63 - __builtin_clzll(m)]; d && tries; d = d->next, tries--)
			if ((*clean = clean_neighbour(region_of(d), d, n)))
				return d;
	return NULL;
}

/* The span in use at base, npages long, of the block user in region r,
 * becomes free (lock held). */
static void span_release(struct hak_span_shard *s, struct hak_region *r, void *base,
			 uint32_t npages, void *user, uint64_t now);

/* Free the blocks other threads deferred (lock held). */
static void drain_deferred(struct hak_span_shard *s)
{
	if (!atomic_load_explicit(&s->deferred, memory_order_relaxed))
		return;
	struct hak_large *h = atomic_exchange_explicit(&s->deferred, NULL, memory_order_acquire);
	uint64_t now = hak__now_ns();
	while (h) {
		struct hak_large *next = h->deferred_next;
		span_release(s, h->region, h->base, (uint32_t)(h->map_size >> SPAN_PAGE_SHIFT),
			     (char *)h + HAK_LARGE_HDR, now);
		h = next;
	}
}

/* Take region r, all of it one clean free span, out of shard s (lock
 * held), for region_unmap: a region nobody uses keeps no metadata resident
 * and no address space. */
static struct hak_region *region_detach(struct hak_span_shard *s, struct hak_region *r)
{
	bin_unlink(s, &r->desc[0]);
	stat_free_sub(s, SP_CLEAN, (size_t)r->npages << SPAN_PAGE_SHIFT);
	r->desc[0].state = SP_BUSY;
	struct hak_region **pp = &s->regions;
	while (*pp != r)
		pp = &(*pp)->next;
	*pp = r->next;
	return r;
}

static void region_unmap(struct hak_region *r)
{
	size_t size = r->map_size;
	hak__map_set(r->data, size - (size_t)(r->data - (char *)r), HAK_MAP_NONE);
	hak__os_unmap(r, size);
	HAK_GSTAT_SUB(hak__seg->global.mapped_bytes, size);
	HAK_GSTAT_SUB(hak__seg->global.span_mapped_bytes, size);
}

/* Pages for a block: npages pages from shard si (or another's dirty
 * memory).  Pages [*dirty_first, *dirty_first + *dirty_n) of the block may
 * hold old data, the others read as zero; *region gets the region.  NULL
 * with ENOMEM when no region can be mapped. */
void *hak__span_alloc(uint32_t npages, unsigned si, uint32_t *dirty_first, uint32_t *dirty_n,
		      struct hak_region **region)
{
	struct hak_span_shard *s = &shards[si % nshards];
	struct span *d;
	struct hak_region *r;
	uint32_t i;
	hak__spin_lock(&s->lock);
	drain_deferred(s);
	if ((d = find(s, 0, npages)))
		goto found;
	/* another shard's resident memory before a page fault here */
	for (unsigned j = 1; j < nshards; j++) {
		struct hak_span_shard *o = &shards[(si + j) % nshards];
		if (!hak__spin_trylock(&o->lock))
			continue;
		if ((d = find(o, 0, npages))) {
			shard_unlock(s);
			s = o;
			goto found;
		}
		shard_unlock(o);
	}
	struct span *c;
	if ((d = find_combined(s, npages, &c))) {
		r = region_of(d);
		*dirty_n = d->npages;
		i = combine(s, r, d, c, npages, dirty_first);
		goto out;
	}
	for (;;) {
		if ((d = find(s, 1, npages))) {
			r = region_of(d);
			i = index_of(r, d);
			/* a dirty neighbour of a clean span that fits */
			struct span *p = i > 0 && r->desc[i - 1].state == SP_DIRTY
					 ? &r->desc[r->desc[i - 1].first] : NULL;
			if (!p && i + d->npages < r->npages &&
			    r->desc[i + d->npages].state == SP_DIRTY)
				p = &r->desc[i + d->npages];
			if (p && p->npages < npages) {
				*dirty_n = p->npages;
				i = combine(s, r, p, d, npages, dirty_first);
				goto out;
			}
			bin_unlink(s, d);
			take_front(s, d, npages);
			*dirty_first = *dirty_n = 0;
			goto out;
		}
		shard_unlock(s); /* no system call under the lock */
		r = region_new(s, npages);
		if (!r)
			return NULL;
		hak__spin_lock(&s->lock);
		r->next = s->regions;
		s->regions = r;
		free_insert(s, r, 0, r->npages, SP_CLEAN, 0);
	}
found:
	r = region_of(d);
	i = index_of(r, d);
	bin_unlink(s, d);
	take_front(s, d, npages);
	*dirty_first = 0;
	*dirty_n = npages;
out:;
	/* pages given memory while more than the floor of dirty memory
	 * waits: as much of the oldest dirty memory goes back, so that
	 * fragments that fit no request do not add to the footprint */
	bool urge = false;
	if (*dirty_n < npages && s->dirty_bytes > hak__opt.large_cache) {
		s->debt += (size_t)(npages - *dirty_n) << SPAN_PAGE_SHIFT;
		urge = true;
	}
	shard_unlock(s);
	if (urge)
		hak__background_urge();
	*region = r;
	return span_addr(r, i);
}

/* The descriptor of the span in use at base, npages long; aborts if the
 * block's header (already checked) disagrees with the region's records. */
static struct span *used_span(struct hak_region *r, void *base, uint32_t npages, void *user,
			      const char *call)
{
	uintptr_t off = (uintptr_t)((char *)base - r->data);
	uint32_t i = (uint32_t)(off >> SPAN_PAGE_SHIFT);
	struct span *d = &r->desc[i];
	if ((char *)base < r->data || (off & (SPAN_PAGE - 1)) || i >= r->npages ||
	    d->state != SP_USED || d->npages != npages)
		hak__fatal_ptr(call, "block header damaged", user);
	return d;
}

/* How many dirty free bytes shard s may keep within the purge delay (lock
 * held): a share of its bytes in use, at least HAKMEM_LARGE_CACHE_MB. */
static size_t keep_bytes(const struct hak_span_shard *s)
{
	size_t keep = s->used_bytes / 100 * hak__opt.span_keep_pct;
	size_t floor = hak__opt.large_cache;
	return keep > floor ? keep : floor;
}

static void span_release(struct hak_span_shard *s, struct hak_region *r, void *base,
			 uint32_t npages, void *user, uint64_t now)
{
	struct span *d = used_span(r, base, npages, user, hak__call_free);
	s->used_bytes -= (size_t)npages << SPAN_PAGE_SHIFT;
	free_insert(s, r, index_of(r, d), npages, SP_DIRTY, now);
}

/* Free the span of npages pages at base (in region r) of the block user,
 * whose header says so (checked, and marked freed, by the caller).  When
 * the shard's lock is taken the block waits on the deferred stack: a free
 * never waits for a lock. */
void hak__span_free(struct hak_region *r, void *base, uint32_t npages, void *user)
{
	struct hak_span_shard *s = r->shard;
	if (!hak__spin_trylock(&s->lock)) {
		struct hak_large *h = (struct hak_large *)((char *)user - HAK_LARGE_HDR);
		struct hak_large *top = atomic_load_explicit(&s->deferred, memory_order_relaxed);
		do
			h->deferred_next = top;
		while (!atomic_compare_exchange_weak_explicit(&s->deferred, &top, h,
							      memory_order_release,
							      memory_order_relaxed));
		hak__background_kick();
		return;
	}
	drain_deferred(s);
	span_release(s, r, base, npages, user, hak__now_ns());
	bool over = s->dirty_bytes > keep_bytes(s);
	shard_unlock(s);
	if (over)
		hak__background_urge();
	else
		hak__background_kick();
}

/* Grow the span at base from npages to want pages with the free span that
 * follows it; false if that span is not free or too short. */
bool hak__span_grow(struct hak_region *r, void *base, uint32_t npages, uint32_t want, void *user)
{
	struct hak_span_shard *s = r->shard;
	bool ok = false;
	hak__spin_lock(&s->lock);
	struct span *d = used_span(r, base, npages, user, hak__call_realloc);
	uint32_t i = index_of(r, d), end = i + npages;
	if (end < r->npages) {
		struct span *q = &r->desc[end];
		if ((q->state == SP_DIRTY || q->state == SP_CLEAN) && q->npages >= want - npages) {
			bin_unlink(s, q);
			take_front(s, q, want - npages);
			mark(r, i, want, SP_USED);
			ok = true;
		}
	}
	shard_unlock(s);
	return ok;
}

/* Shrink the span at base from npages to want pages; the tail is free. */
void hak__span_shrink(struct hak_region *r, void *base, uint32_t npages, uint32_t want, void *user)
{
	struct hak_span_shard *s = r->shard;
	uint64_t now = hak__now_ns();
	hak__spin_lock(&s->lock);
	struct span *d = used_span(r, base, npages, user, hak__call_realloc);
	uint32_t i = index_of(r, d);
	mark(r, i, want, SP_USED);
	s->used_bytes -= (size_t)(npages - want) << SPAN_PAGE_SHIFT;
	free_insert(s, r, i + want, npages - want, SP_DIRTY, now);
	shard_unlock(s);
	hak__background_kick();
}

/* Purge shard s: dirty spans freed before older_than_ns (all with all),
 * and the oldest beyond its keep.  madvise runs with the lock dropped, on
 * spans marked busy meanwhile (their neighbours do not merge with them). */
static size_t shard_purge(struct hak_span_shard *s, uint64_t older_than_ns, bool all)
{
	enum { BATCH = 32 };
	struct span *batch[BATCH];
	size_t purged = 0;
	for (;;) {
		unsigned n = 0;
		size_t bytes = 0;
		hak__spin_lock(&s->lock);
		drain_deferred(s);
		size_t keep = keep_bytes(s), floor = hak__opt.large_cache;
		size_t over = s->dirty_bytes > keep ? s->dirty_bytes - keep : 0;
		size_t owed = s->dirty_bytes > floor ? s->dirty_bytes - floor : 0;
		if (owed > s->debt)
			owed = s->debt;
		size_t excess = over > owed ? over : owed;
		struct span *d = s->lru_tail;
		while (d && n < BATCH && (all || d->freed_ns < older_than_ns || excess)) {
			struct span *prev = d->lprev;
			struct hak_region *r = region_of(d);
			uint32_t i = index_of(r, d), dn = d->npages;
			bin_unlink(s, d);
			stat_free_sub(s, SP_DIRTY, (size_t)dn << SPAN_PAGE_SHIFT);
			if (!all && d->freed_ns >= older_than_ns && dn > 1) {
				/* only the excess must go: the front of the span
				 * stays dirty (spans coalesce, so one may hold most
				 * of what is free) */
				uint32_t cut = (uint32_t)((excess + SPAN_PAGE - 1) >> SPAN_PAGE_SHIFT);
				if (cut < dn) {
					uint64_t age = d->freed_ns;
					mark(r, i, dn - cut, SP_DIRTY);
					d->freed_ns = age;
					bin_push(s, d, SP_DIRTY);
					stat_free_add(s, SP_DIRTY, (size_t)(dn - cut) << SPAN_PAGE_SHIFT);
					i += dn - cut;
					dn = cut;
					d = &r->desc[i];
				}
			}
			mark(r, i, dn, SP_BUSY);
			size_t b = (size_t)dn << SPAN_PAGE_SHIFT;
			excess = excess > b ? excess - b : 0;
			s->debt = s->debt > b ? s->debt - b : 0;
			bytes += b;
			batch[n++] = d;
			d = prev;
		}
		shard_unlock(s);
		if (!n)
			return purged;
		struct iovec ranges[BATCH];
		for (unsigned k = 0; k < n; k++) {
			struct hak_region *r = region_of(batch[k]);
			ranges[k].iov_base = span_addr(r, index_of(r, batch[k]));
			ranges[k].iov_len = (size_t)batch[k]->npages << SPAN_PAGE_SHIFT;
		}
		hak__os_purge_ranges(ranges, n);
		HAK_GSTAT_ADD(hak__seg->global.purged_bytes, bytes);
		purged += bytes;
		struct hak_region *idle[BATCH];
		unsigned nidle = 0;
		hak__spin_lock(&s->lock);
		for (unsigned k = 0; k < n; k++) {
			struct hak_region *r = region_of(batch[k]);
			free_insert(s, r, index_of(r, batch[k]), batch[k]->npages, SP_CLEAN, 0);
			if (r->desc[0].state == SP_CLEAN && r->desc[0].npages == r->npages)
				idle[nidle++] = region_detach(s, r);
		}
		shard_unlock(s);
		for (unsigned k = 0; k < nidle; k++)
			region_unmap(idle[k]);
		if (n < BATCH)
			return purged;
	}
}

/* Unmap shard s's regions that are all clean and free (a trim: the purge
 * unmaps those it empties itself). */
static void shard_unmap_idle(struct hak_span_shard *s)
{
	for (;;) {
		struct hak_region *idle = NULL;
		hak__spin_lock(&s->lock);
		for (struct hak_region *r = s->regions; r && !idle; r = r->next)
			if (r->desc[0].state == SP_CLEAN && r->desc[0].npages == r->npages)
				idle = region_detach(s, r);
		shard_unlock(s);
		if (!idle)
			return;
		region_unmap(idle);
	}
}

size_t hak__span_purge(uint64_t older_than_ns, bool all)
{
	size_t bytes = 0;
	if (!region_size)
		return 0;
	for (unsigned i = 0; i < nshards; i++) {
		bytes += shard_purge(&shards[i], older_than_ns, all);
		if (all)
			shard_unmap_idle(&shards[i]);
	}
	return bytes;
}

/* (In a forked child, spans that a purge in the parent's background thread
 * had marked busy stay busy: lost to the child, as pages are in arena.c.) */
void hak__span_lock_all(void)
{
	for (unsigned i = 0; i < HAK_SPAN_SHARDS; i++)
		hak__spin_lock(&shards[i].lock);
}

void hak__span_unlock_all(void)
{
	for (unsigned i = HAK_SPAN_SHARDS; i-- > 0;)
		hak__spin_unlock(&shards[i].lock);
}
