/*
 * map.c - which 64 KiB granules of the address space belong to hakmem.
 *
 * A two-level table: 2^15 top entries (one per 4 GiB) pointing to leaves of
 * 2^16 bytes (one byte per 64 KiB granule), mapped on first use and never
 * freed.  free() and friends consult it before they trust any metadata, so
 * a foreign pointer is reported instead of corrupting memory.  (The free
 * fast path asks the owner hints first, see internal.h: a page that has
 * one is an arena's.)
 *
 * Arenas outside the reserved span (beyond 16 GiB of them, or all of them
 * under RLIMIT_AS) find their row of owner hints in hak__arena_tab: two
 * bytes per 4 MiB of the 47-bit address space (64 MiB of address space,
 * mapped without reserve when the first such arena comes; only the 4 KiB
 * pieces that cover arenas ever get memory).
 */
#include "config.h"
#include "internal.h"

#define HAK_MAP_TOP_ENTRIES (1u << (31 - HAK_MAP_LEAF_SHIFT))
#define HAK_MAP_LEAF_SIZE ((size_t)1 << HAK_MAP_LEAF_SHIFT)

_Atomic(uint8_t *) hak__map_top[HAK_MAP_TOP_ENTRIES];
uint16_t *hak__arena_tab;

/* Mark the arena at a (4 MiB aligned) as one with row of owner hints row,
 * or (0) as none.  Returns false if the table could not be mapped (the
 * arena's frees then take the two-level map). */
bool hak__arena_tab_set(const void *a, unsigned row)
{
	uintptr_t i = (uintptr_t)a >> HAK_ARENA_SHIFT;
	uint16_t *t = __atomic_load_n(&hak__arena_tab, __ATOMIC_ACQUIRE);
	if (!t) {
		if (!row)
			return true;
		/* first use: two arenas may race to map the table */
		uint16_t *fresh = hak__os_map(HAK_ARENA_TAB_LEN * sizeof *fresh);
		if (!fresh)
			return false;
		if (__atomic_compare_exchange_n(&hak__arena_tab, &t, fresh, false,
						__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			t = fresh;
		else
			hak__os_unmap(fresh, HAK_ARENA_TAB_LEN * sizeof *fresh);
	}
	if (i < HAK_ARENA_TAB_LEN)
		__atomic_store_n(&t[i], (uint16_t)row, __ATOMIC_RELEASE);
	return true;
}
static uint8_t *leaf_get(uintptr_t g)
{
	_Atomic(uint8_t *) *slot = &hak__map_top[g >> HAK_MAP_LEAF_SHIFT];
	uint8_t *leaf = atomic_load_explicit(slot, memory_order_acquire);
	if (leaf)
		return leaf;
	uint8_t *fresh = hak__os_map(HAK_MAP_LEAF_SIZE);
	if (!fresh)
		return NULL;
	uint8_t *expected = NULL;
	if (atomic_compare_exchange_strong_explicit(slot, &expected, fresh,
						    memory_order_acq_rel,
						    memory_order_acquire))
		return fresh;
	hak__os_unmap(fresh, HAK_MAP_LEAF_SIZE); /* another thread won */
	return expected;
}

/* Mark [p, p+size) (64 KiB aligned) as kind.  Returns -1 (ENOMEM) if a
 * leaf could not be mapped, with none of the range marked; marking
 * HAK_MAP_NONE never fails. */
int hak__map_set(void *p, size_t size, unsigned kind)
{
	uintptr_t first = (uintptr_t)p >> HAK_PAGE_SHIFT, g = first;
	uintptr_t end = ((uintptr_t)p + size + HAK_PAGE_SIZE - 1) >> HAK_PAGE_SHIFT;
	for (; g < end; g++) {
		uint8_t *leaf = kind == HAK_MAP_NONE
			? atomic_load_explicit(&hak__map_top[g >> HAK_MAP_LEAF_SHIFT],
					       memory_order_acquire)
			: leaf_get(g);
		if (!leaf) {
			if (kind == HAK_MAP_NONE)
				continue;
			/* a range that crosses into a new leaf: the caller unmaps it,
			 * so the granules marked below must not stay hakmem's */
			hak__map_set(p, (size_t)(g - first) << HAK_PAGE_SHIFT, HAK_MAP_NONE);
			return -1;
		}
		atomic_store_explicit((_Atomic uint8_t *)&leaf[g & (HAK_MAP_LEAF_SIZE - 1)],
				      (uint8_t)kind, memory_order_release);
	}
	return 0;
}
