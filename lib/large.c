/*
 * large.c - allocations above HAK_SMALL_MAX, each with a 64-byte header just
 * before the user pointer.  Up to HAKMEM_SPAN_MAX_MB they are spans of the
 * span tier (span.c), kept and reused when freed; larger ones (and those
 * aligned above 64 KiB) are their own 64 KiB-aligned mapping, with a small
 * cache of freed mappings that are reused or unmapped after the purge delay.
 */
#include "config.h"
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#define HAK_SPAN_CACHE 32

struct cached_map {
	void *base;
	size_t size;
	uint64_t freed_ns;
};

static _Atomic uint32_t cache_lock;
static struct cached_map cache[HAK_SPAN_CACHE];
static unsigned cache_n;
static size_t cache_bytes;

static size_t round_up(size_t x, size_t a)
{
	return (x + a - 1) & ~(a - 1);
}

/* What an allocation was served from, for the counters. */
enum { FROM_NONE, FROM_REUSED, FROM_FRESH, FROM_DIRECT };

/* Count large allocations (alloc) or frees and their bytes in the calling
 * thread's slot, and where an allocation came from; a thread that could not
 * get a heap counts in the shared overflow slot with atomic adds, so that
 * the sums stay exact.  The call being counted succeeded: errno stays as it
 * was. */
static void count_large(struct hak_heap *h, bool alloc, uint64_t calls, uint64_t bytes,
			unsigned from)
{
	if (h) {
		struct hak_seg_slot *st = h->st;
		HAK_STAT_ADD(*(alloc ? &st->large_allocs : &st->large_frees), calls);
		HAK_STAT_ADD(*(alloc ? &st->large_alloc_bytes : &st->large_free_bytes), bytes);
		if (from == FROM_REUSED)
			HAK_STAT_ADD(st->large_reused, 1);
		else if (from == FROM_DIRECT)
			HAK_STAT_ADD(st->large_direct, 1);
	} else {
		struct hak_seg_slot *ov = &hak__seg->global.overflow;
		HAK_GSTAT_ADD(*(alloc ? &ov->large_allocs : &ov->large_frees), calls);
		HAK_GSTAT_ADD(*(alloc ? &ov->large_alloc_bytes : &ov->large_free_bytes), bytes);
		if (from == FROM_REUSED)
			HAK_GSTAT_ADD(ov->large_reused, 1);
		else if (from == FROM_DIRECT)
			HAK_GSTAT_ADD(ov->large_direct, 1);
	}
}

static struct hak_heap *heap_quiet(void)
{
	int saved = errno;
	struct hak_heap *h = hak__heap_get();
	errno = saved;
	return h;
}

/* A cached mapping of at least need bytes and at most a quarter more. */
static void *cache_take(size_t need, size_t *got)
{
	void *best = NULL;
	size_t best_size = 0;
	unsigned best_i = 0;
	hak__spin_lock(&cache_lock);
	for (unsigned i = 0; i < cache_n; i++) {
		size_t s = cache[i].size;
		if (s >= need && s - need <= need / 4 && (!best || s < best_size)) {
			best = cache[i].base;
			best_size = s;
			best_i = i;
		}
	}
	if (best) {
		cache[best_i] = cache[--cache_n];
		cache_bytes -= best_size;
		HAK_GSTAT_SUB(hak__seg->global.unpurged_free_bytes, best_size);
	}
	hak__spin_unlock(&cache_lock);
	*got = best_size;
	return best;
}

/* Write the header of the block at user, of usable size bytes, whose
 * memory is [base, base + len) (region: its span tier region, or NULL). */
static void header_set(char *user, char *base, size_t len, size_t usable,
		       struct hak_region *region)
{
	struct hak_large *hdr = (struct hak_large *)(user - HAK_LARGE_HDR);
	hdr->base = base;
	hdr->map_size = len;
	hdr->size = usable;
	hdr->region = region;
	hdr->magic = hak__guard.secret ^ (uintptr_t)user;
	hdr->pad[0] = hdr->pad[1] = 0; /* not a profile sample (prof.c) */
	if (hak__guard.slack)
		hak__canary_set(user, usable);
}

/* A span tier block: align <= HAK_SPAN_ALIGN_MAX, size <= the tier's max. */
static void *span_block(struct hak_heap *h, size_t size, size_t align, bool zero)
{
	/* spans start on 4 KiB pages: the user pointer is the first multiple
	 * of align after the header, at most max(align, header) in */
	size_t off = align > HAK_LARGE_HDR ? align : HAK_LARGE_HDR;
	size_t need = round_up(off + size + hak__guard.slack, HAK_OS_PAGE);
	uint32_t npages = (uint32_t)(need / HAK_OS_PAGE);
	uint32_t dfirst, dn;
	struct hak_region *region;
	char *base = hak__span_alloc(npages, h ? h->index : 0, &dfirst, &dn, &region);
	if (!base)
		return NULL;
	char *user = (char *)round_up((uintptr_t)base + HAK_LARGE_HDR, align);
	size_t usable = (size_t)(base + need - user) - hak__guard.slack;
	header_set(user, base, need, usable, region);
	/* clean pages read as zero (never touched, or purged): only the
	 * dirty ones need the memset */
	if (zero && dn) {
		char *from = base + (size_t)dfirst * HAK_OS_PAGE;
		char *to = from + (size_t)dn * HAK_OS_PAGE;
		if (from < user)
			from = user;
		if (to > user + size)
			to = user + size;
		if (from < to)
			memset(from, 0, (size_t)(to - from));
	}
	count_large(h, true, 1, usable, dn ? FROM_REUSED : FROM_FRESH);
	return user;
}

void *hak__large_alloc(size_t size, size_t align, bool zero)
{
	hak__stats_publish();
	if (align < HAK_MIN_ALIGN)
		align = HAK_MIN_ALIGN;
	if (size == 0) /* the block must lie inside its mapping */
		size = 1;
	struct hak_heap *h = heap_quiet();
	if (size <= hak__opt.span_max && align <= HAK_SPAN_ALIGN_MAX) {
		void *p = span_block(h, size, align, zero);
		if (!hak__opt.background)
			hak__purge_inline();
		return p;
	}
	size_t off = align > HAK_LARGE_HDR ? align : HAK_LARGE_HDR;
	if (size > PTRDIFF_MAX - off - HAK_PAGE_SIZE) {
		errno = ENOMEM;
		return NULL;
	}
	size_t need = round_up(off + size + hak__guard.slack, HAK_PAGE_SIZE);
	size_t map_size = 0;
	char *base = NULL;
	bool fresh = true;
	if (align <= HAK_PAGE_SIZE && hak__opt.large_cache) {
		base = cache_take(need, &map_size);
		fresh = base == NULL;
	}
	if (!base) {
		map_size = need;
		base = hak__os_map_aligned(need, align > HAK_PAGE_SIZE ? align : HAK_PAGE_SIZE);
		if (!base)
			return NULL;
		if (hak__map_set(base, need, HAK_MAP_LARGE) != 0) {
			hak__os_unmap(base, need);
			errno = ENOMEM;
			return NULL;
		}
		HAK_GSTAT_ADD(hak__seg->global.mapped_bytes, need);
	}
	char *user = base + off;
	size_t usable = map_size - off - hak__guard.slack;
	header_set(user, base, map_size, usable, NULL);
	if (zero && !fresh)
		memset(user, 0, size);
	count_large(h, true, 1, usable, fresh ? FROM_DIRECT : FROM_REUSED);
	return user;
}

/* The header of large block p; aborts if p is not one. */
struct hak_large *hak__large_hdr(void *p, const char *call)
{
	if (((uintptr_t)p & (HAK_MIN_ALIGN - 1)) ||
	    (((uintptr_t)p & (HAK_PAGE_SIZE - 1)) < HAK_LARGE_HDR &&
	     hak__map_kind((char *)p - HAK_LARGE_HDR) != HAK_MAP_LARGE))
		hak__fatal_ptr(call, "invalid pointer (not the start of a block)", p);
	struct hak_large *hdr = (struct hak_large *)((char *)p - HAK_LARGE_HDR);
	if (hdr->magic != (hak__guard.secret ^ (uintptr_t)p)) {
		if (hdr->magic == ~(hak__guard.secret ^ (uintptr_t)p))
			hak__fatal_ptr(call, call == hak__call_free ? "double free" : "block already freed", p);
		hak__fatal_ptr(call, "invalid pointer (not the start of a block)", p);
	}
	if (hak__guard.slack)
		hak__canary_check(p, hdr->size, call);
	return hdr;
}

static void span_unmap(void *base, size_t size)
{
	hak__map_set(base, size, HAK_MAP_NONE);
	hak__os_unmap(base, size);
	HAK_GSTAT_SUB(hak__seg->global.mapped_bytes, size);
	HAK_GSTAT_ADD(hak__seg->global.purged_bytes, size);
}

void hak__large_free(void *p)
{
	struct hak_large *hdr = hak__large_hdr(p, hak__call_free);
	void *base = hdr->base;
	size_t size = hdr->map_size;
	count_large(heap_quiet(), false, 1, hdr->size, FROM_NONE);
	if (hdr->pad[1])
		hak__prof_free(hdr);
	hdr->magic = ~(hak__guard.secret ^ (uintptr_t)p); /* a second free is a double free */
	if (hdr->region) {
		hak__span_free(hdr->region, base, (uint32_t)(size / HAK_OS_PAGE), p);
		return;
	}
	if (size <= hak__opt.large_cache / 4) {
		uint64_t now = hak__now_ns();
		hak__spin_lock(&cache_lock);
		if (cache_n < HAK_SPAN_CACHE && cache_bytes + size <= hak__opt.large_cache) {
			cache[cache_n++] = (struct cached_map){.base = base, .size = size, .freed_ns = now};
			cache_bytes += size;
			HAK_GSTAT_ADD(hak__seg->global.unpurged_free_bytes, size);
			hak__spin_unlock(&cache_lock);
			hak__background_kick();
			return;
		}
		hak__spin_unlock(&cache_lock);
	}
	span_unmap(base, size);
}

/* Resize span tier block p in place: shrink by freeing its tail pages,
 * grow into the free span after it.  Returns p or NULL. */
static void *span_resize(struct hak_large *hdr, void *p, size_t size)
{
	size_t off = (size_t)((char *)p - (char *)hdr->base);
	if (size > hak__opt.span_max || size > PTRDIFF_MAX - off - HAK_PAGE_SIZE)
		return NULL;
	size_t need = round_up(off + size + hak__guard.slack, HAK_OS_PAGE);
	uint32_t have = (uint32_t)(hdr->map_size / HAK_OS_PAGE);
	uint32_t want = (uint32_t)(need / HAK_OS_PAGE);
	if (want == have)
		return p;
	struct hak_heap *h = heap_quiet();
	if (want < have) {
		hak__span_shrink(hdr->region, hdr->base, have, want, p);
		count_large(h, false, 0, hdr->map_size - need, FROM_NONE);
	} else {
		if (!hak__span_grow(hdr->region, hdr->base, have, want, p))
			return NULL;
		count_large(h, true, 0, need - hdr->map_size, FROM_NONE);
		if (h)
			HAK_STAT_ADD(h->st->large_inplace, 1);
	}
	hdr->size = hdr->size + need - hdr->map_size;
	hdr->map_size = need;
	if (hak__guard.slack)
		hak__canary_set(p, hdr->size);
	return p;
}

/* Grow or shrink large block p in place if its mapping allows; returns p or
 * NULL when the caller must move it. */
void *hak__large_resize(void *p, size_t size)
{
	struct hak_large *hdr = hak__large_hdr(p, hak__call_realloc);
	if (hdr->pad[1]) /* a profile sample: moved, so that the new size is sampled */
		return NULL;
	if (size <= hdr->size && size >= hdr->size / 2)
		return p;
	if (hdr->region)
		return span_resize(hdr, p, size);
	if (size <= hdr->size)
		return NULL;
	size_t off = (size_t)((char *)p - (char *)hdr->base);
	if (size > PTRDIFF_MAX - off - HAK_PAGE_SIZE)
		return NULL;
	size_t need = round_up(off + size + hak__guard.slack, HAK_PAGE_SIZE);
	/* extend the mapping where it stands; never moves (alignment).  A
	 * refusal is not an error for the caller, who then moves the block. */
	int saved = errno;
	void *r = mremap(hdr->base, hdr->map_size, need, 0);
	if (r == MAP_FAILED) {
		errno = saved;
		return NULL;
	}
	if (hak__map_set((char *)hdr->base + hdr->map_size, need - hdr->map_size,
			 HAK_MAP_LARGE) != 0) {
		mremap(hdr->base, need, hdr->map_size, 0);
		errno = saved;
		return NULL;
	}
	HAK_GSTAT_ADD(hak__seg->global.mapped_bytes, need - hdr->map_size);
	struct hak_heap *h = heap_quiet();
	count_large(h, true, 0, need - hdr->map_size, FROM_NONE);
	if (h)
		HAK_STAT_ADD(h->st->large_inplace, 1);
	hdr->size += need - hdr->map_size;
	hdr->map_size = need;
	if (hak__guard.slack)
		hak__canary_set(p, hdr->size);
	return p;
}

/* Purge the span tier, and unmap cached mappings freed before
 * older_than_ns (all when all is set). */
size_t hak__large_purge(uint64_t older_than_ns, bool all)
{
	size_t bytes = hak__span_purge(older_than_ns, all);
	struct cached_map victims[HAK_SPAN_CACHE];
	unsigned n = 0;
	hak__spin_lock(&cache_lock);
	for (unsigned i = 0; i < cache_n;) {
		if (all || cache[i].freed_ns < older_than_ns) {
			victims[n++] = cache[i];
			cache_bytes -= cache[i].size;
			HAK_GSTAT_SUB(hak__seg->global.unpurged_free_bytes, cache[i].size);
			cache[i] = cache[--cache_n];
		} else {
			i++;
		}
	}
	hak__spin_unlock(&cache_lock);
	for (unsigned i = 0; i < n; i++) {
		span_unmap(victims[i].base, victims[i].size);
		bytes += victims[i].size;
	}
	return bytes;
}

void hak__large_lock_all(void)
{
	hak__span_lock_all();
	hak__spin_lock(&cache_lock);
}

void hak__large_unlock_all(void)
{
	hak__spin_unlock(&cache_lock);
	hak__span_unlock_all();
}
