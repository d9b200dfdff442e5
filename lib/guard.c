/*
 * guard.c - heap-misuse detection: the per-process keys, the HAKMEM_CHECK
 * level, block validation at free, canaries (paranoid level) and the
 * reports.  Every report is one line on stderr naming the address, then
 * abort(), as glibc does.
 *
 * What each level checks.  free's fast path makes the level-1 checks at
 * every level and hands a suspect block to free_checked, which reports it
 * unless the level is 0 (so level 0 costs what level 1 does, and acts as
 * before); the link and thread-cache checks are masked with check_mask, so
 * level 0 runs the same code without them; slack and small_limit route
 * level 2's allocations through the paths that write canaries, and an empty
 * arena table (map.c) routes its frees through the one that checks them:
 *   0  nothing beyond what routing needs (a pointer hakmem never mapped is
 *      still reported: free could not find its page otherwise).
 *   1  free: the pointer starts a block of a page in use, and is not free
 *      already (double free, also across threads); allocation: the free
 *      list link it follows decodes into the same page, and a block that
 *      leaves the thread cache for its page still carries its free marker
 *      in its first 16 bytes (a write after free).
 *   2  as 1, and every block keeps HAK_CANARY_BYTES after its usable size
 *      holding a keyed canary, checked at free, realloc and
 *      malloc_usable_size (a heap overflow past the block).
 */
#include "config.h"
#include "internal.h"

#include <string.h>

struct hak_guard hak__guard = {
	.check_mask = ~(uintptr_t)0,
	.small_limit = HAK_SMALL_MAX + 1,
	.fast_limit = HAK_SMALL_MAX + 1,
	.level = 1,
};

/* splitmix64's finaliser: a second key that does not reveal the first */
static uintptr_t mix(uintptr_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* After hak__opt is read; secret is already set (init.c). */
void hak__guard_init(void)
{
	struct hak_guard *g = &hak__guard;
	g->link_key = mix(g->secret) | 1;
	g->level = hak__opt.check;
	g->check_mask = g->level ? ~(uintptr_t)0 : 0;
	g->slack = g->level >= 2 ? HAK_CANARY_BYTES : 0;
	g->small_limit = g->level >= 2 ? 0 : HAK_SMALL_MAX + 1;
	g->fast_limit = hak__opt.prof_sample ? 0 : g->small_limit;
}

static inline uintptr_t canary_of(const void *p)
{
	uintptr_t x = (uintptr_t)p ^ hak__guard.secret;
	return (x << 29) | (x >> 35);
}

/* Write the canary of block p, whose usable size is usable. */
void hak__canary_set(void *p, size_t usable)
{
	uintptr_t c = canary_of(p);
	memcpy((char *)p + usable, &c, sizeof c);
}

/* Report a damaged canary of block p (usable bytes) and abort. */
void hak__canary_check(void *p, size_t usable, const char *call)
{
	uintptr_t c;
	memcpy(&c, (char *)p + usable, sizeof c);
	if (c != canary_of(p))
		hak__fatal_ptr(call, "heap overflow (the canary after the block was overwritten)", p);
}

void hak__link_damaged(const struct hak_block *at)
{
	hak__fatal_ptr("malloc", "free list damaged (a freed block was written to)", at);
}

void hak__tc_damaged(const struct hak_block *b)
{
	hak__fatal_ptr("free", "write after free (a freed block was modified)", b);
}

const char hak__call_free[] = "free", hak__call_realloc[] = "realloc";

/* Validate page block p passed to call (free, realloc, ...): it must start
 * a block of a page in use and must not carry the free marker (a double
 * free); at level 2 its canary must be intact. */
void hak__block_check(struct hak_page *pg, void *p, const char *call)
{
	if (!hak__guard.level)
		return;
	uintptr_t owner = atomic_load_explicit(&pg->owner, memory_order_relaxed);
	if (owner == HAK_OWNER_FREE || owner == 0)
		hak__fatal_ptr(call, "pointer not allocated (in a free page)", p);
	if (!hak__block_start(pg, p))
		hak__fatal_ptr(call, "invalid pointer (not the start of a block)", p);
	if (((struct hak_block *)p)->marker == hak__free_marker(p))
		hak__fatal_ptr(call, call == hak__call_free ? "double free" : "block already freed", p);
	if (hak__guard.slack)
		hak__canary_check(p, pg->block_size - hak__guard.slack, call);
}
