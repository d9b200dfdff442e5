/*
 * page.c - one page's blocks: initialisation, lazy carving, the holder's
 * local free list, and the lock-free remote list other threads push onto.
 */
#include "config.h"
#include "internal.h"

/* The page every class of a heap points to before it has a real one: it has
 * no free block, so the allocation fast path falls to the slow path. */
struct hak_page hak__empty_page;

/* Carve at most this many bytes per extension, so that a page touches only
 * the memory it hands out. */
#define HAK_CARVE_BYTES 4096u

void hak__page_init(struct hak_page *pg, unsigned cls)
{
	uint32_t bs = hak__class_size[cls];
	pg->class_idx = (uint8_t)cls;
	pg->block_size = bs;
	pg->recip = hak__class_geom[cls].recip;
	pg->bound = hak__class_geom[cls].bound;
	pg->capacity = hak__class_capacity[cls];
	pg->carved = 0;
	pg->used = 0;
	pg->free = NULL;
	pg->in_list = 0;
	pg->next = pg->prev = NULL;
	atomic_store_explicit(&pg->remote, NULL, memory_order_relaxed);
}

/* Carve fresh blocks onto the (empty) local free list; false when the page
 * has no uncarved block left. */
bool hak__page_extend(struct hak_page *pg)
{
	uint32_t left = pg->capacity - pg->carved;
	if (!left)
		return false;
	uint32_t n = HAK_CARVE_BYTES / pg->block_size;
	if (n == 0)
		n = 1;
	if (n > left)
		n = left;
	char *first = hak__page_start(pg) + (size_t)pg->carved * pg->block_size;
	char *p = first;
	for (uint32_t i = 1; i < n; i++) {
		struct hak_block *b = (struct hak_block *)p;
		b->next = hak__link_enc(b, (struct hak_block *)(p + pg->block_size));
		p += pg->block_size;
	}
	struct hak_block *last = (struct hak_block *)p;
	last->next = hak__link_enc(last, pg->free);
	pg->free = (struct hak_block *)first;
	pg->carved += n;
	return true;
}

/* Splice the whole remote list into the local free list (holder only).
 * Returns how many blocks came back. */
unsigned hak__page_drain(struct hak_page *pg)
{
	if (!atomic_load_explicit(&pg->remote, memory_order_relaxed))
		return 0;
	struct hak_block *list = atomic_exchange_explicit(&pg->remote, NULL, memory_order_acquire);
	if (!list)
		return 0;
	/* walk to the tail, checking each link as it is followed */
	unsigned n = 1;
	struct hak_block *tail = list, *next;
	while ((next = hak__link_dec(tail, tail->next)) != NULL) {
		if (hak__link_bad(tail, next))
			hak__link_damaged(tail);
		tail = next;
		n++;
	}
	tail->next = hak__link_enc(tail, pg->free);
	pg->free = list;
	pg->used -= n;
	return n;
}
