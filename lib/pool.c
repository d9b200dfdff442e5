/*
 * pool.c - the shared mid-size pool that MF2 replaced, kept so that sweeps
 * can measure the difference (HAKMEM_MF2_ENABLE=0).
 *
 * Classes of HAK_POOL_MIN_CLASS_SIZE and up are served from pages shared by
 * all threads, one lock per class around each allocation and free.
 */
#include "config.h"
#include "internal.h"

struct pool_class {
	_Alignas(HAK_CACHE_LINE) _Atomic uint32_t lock;
	struct hak_page *pages; /* pages with free or uncarved blocks */
};

static struct pool_class pool[HAK_NUM_CLASSES];

static void pool_link(struct pool_class *pc, struct hak_page *pg)
{
	hak__plist_push(&pc->pages, NULL, pg);
	pg->in_list = 1;
}

static void pool_unlink(struct pool_class *pc, struct hak_page *pg)
{
	hak__plist_unlink(&pc->pages, NULL, pg);
	pg->in_list = 0;
}

void *hak__pool_alloc(unsigned cls, struct hak_seg_slot *st)
{
	struct pool_class *pc = &pool[cls];
	hak__spin_lock(&pc->lock);
	struct hak_page *pg = pc->pages;
	if (!pg) {
		hak__spin_unlock(&pc->lock);
		pg = hak__page_alloc(cls, st); /* may map memory: not under our lock */
		if (!pg)
			return NULL;
		hak__page_init(pg, cls);
		hak__owner_give(pg, HAK_OWNER_POOL, cls);
		hak__spin_lock(&pc->lock);
		pool_link(pc, pg);
	}
	if (!pg->free)
		hak__page_extend(pg);
	struct hak_block *b = hak__page_pop(pg);
	if (!pg->free && pg->carved == pg->capacity)
		pool_unlink(pc, pg);
	hak__spin_unlock(&pc->lock);
	HAK_STAT_ADD(st->allocs[cls], 1);
	return b;
}

void hak__pool_free(struct hak_page *pg, struct hak_block *b, struct hak_seg_slot *st)
{
	unsigned cls = pg->class_idx;
	struct pool_class *pc = &pool[cls];
	HAK_STAT_ADD(st->frees[cls], 1);
	hak__spin_lock(&pc->lock);
	b->marker = hak__free_marker(b);
	b->next = hak__link_enc(b, pg->free);
	pg->free = b;
	bool release = --pg->used == 0 && (pc->pages != pg || pg->next);
	if (release) {
		if (pg->in_list)
			pool_unlink(pc, pg);
	} else if (!pg->in_list) {
		pool_link(pc, pg);
	}
	hak__spin_unlock(&pc->lock);
	if (release)
		hak__page_release(pg);
}

void hak__pool_lock_all(void)
{
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++)
		hak__spin_lock(&pool[c].lock);
}

void hak__pool_unlock_all(void)
{
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++)
		hak__spin_unlock(&pool[c].lock);
}
