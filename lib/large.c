/*
 * large.c - allocations above HAK_SMALL_MAX: each its own 64 KiB-aligned
 * mapping with a 64-byte header just before the user pointer, and a small
 * cache of freed mappings that are reused or unmapped after the purge delay.
 */
#include "config.h"
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#define HAK_SPAN_CACHE 32

struct span {
	void *base;
	size_t size;
	uint64_t freed_ns;
};

static _Atomic uint32_t cache_lock;
static struct span cache[HAK_SPAN_CACHE];
static unsigned cache_n;
static size_t cache_bytes;

static size_t round_up(size_t x, size_t a)
{
	return (x + a - 1) & ~(a - 1);
}

/* Count large allocations (alloc) or frees and their bytes in the calling
 * thread's slot; a thread that could not get a heap counts in the shared
 * overflow slot with atomic adds, so that the sums stay exact.  The call
 * being counted succeeded: errno stays as it was. */
static void count_large(bool alloc, uint64_t calls, uint64_t bytes)
{
	int saved = errno;
	struct hak_heap *h = hak__heap_get();
	errno = saved;
	if (h) {
		struct hak_seg_slot *st = h->st;
		HAK_STAT_ADD(*(alloc ? &st->large_allocs : &st->large_frees), calls);
		HAK_STAT_ADD(*(alloc ? &st->large_alloc_bytes : &st->large_free_bytes), bytes);
	} else {
		struct hak_seg_slot *ov = &hak__seg->global.overflow;
		HAK_GSTAT_ADD(*(alloc ? &ov->large_allocs : &ov->large_frees), calls);
		HAK_GSTAT_ADD(*(alloc ? &ov->large_alloc_bytes : &ov->large_free_bytes), bytes);
	}
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

void *hak__large_alloc(size_t size, size_t align, bool zero)
{
	hak__stats_publish();
	if (align < HAK_MIN_ALIGN)
		align = HAK_MIN_ALIGN;
	if (size == 0) /* the block must lie inside its mapping */
		size = 1;
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
	struct hak_large *hdr = (struct hak_large *)(user - HAK_LARGE_HDR);
	hdr->base = base;
	hdr->map_size = map_size;
	hdr->size = map_size - off - hak__guard.slack;
	hdr->magic = hak__guard.secret ^ (uintptr_t)user;
	if (hak__guard.slack)
		hak__canary_set(user, hdr->size);
	if (zero && !fresh)
		memset(user, 0, size);
	count_large(true, 1, hdr->size);
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
	count_large(false, 1, hdr->size);
	hdr->magic = ~(hak__guard.secret ^ (uintptr_t)p); /* a second free is a double free */
	if (size <= hak__opt.large_cache / 4) {
		uint64_t now = hak__now_ns();
		hak__spin_lock(&cache_lock);
		if (cache_n < HAK_SPAN_CACHE && cache_bytes + size <= hak__opt.large_cache) {
			cache[cache_n++] = (struct span){.base = base, .size = size, .freed_ns = now};
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

/* Grow or shrink large block p in place if its mapping allows; returns p or
 * NULL when the caller must move it. */
void *hak__large_resize(void *p, size_t size)
{
	struct hak_large *hdr = hak__large_hdr(p, hak__call_realloc);
	if (size <= hdr->size && size >= hdr->size / 2)
		return p;
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
	count_large(true, 0, need - hdr->map_size);
	hdr->size += need - hdr->map_size;
	hdr->map_size = need;
	if (hak__guard.slack)
		hak__canary_set(p, hdr->size);
	return p;
}

/* Unmap cached spans freed before older_than_ns (all when all is set). */
size_t hak__large_purge(uint64_t older_than_ns, bool all)
{
	struct span victims[HAK_SPAN_CACHE];
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
	size_t bytes = 0;
	for (unsigned i = 0; i < n; i++) {
		span_unmap(victims[i].base, victims[i].size);
		bytes += victims[i].size;
	}
	return bytes;
}

void hak__large_lock_all(void)
{
	hak__spin_lock(&cache_lock);
}

void hak__large_unlock_all(void)
{
	hak__spin_unlock(&cache_lock);
}
