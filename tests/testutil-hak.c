/*
 * testutil-hak.c - the test helpers that call into hakmem (see testutil.h):
 * entry-point tables, the check that malloc is hakmem's, and a runner of
 * test bodies over both tables.  Kept apart from testutil.c so that a
 * program not linked to hakmem can use the rest.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "hakmem.h"
#include "testutil.h"

/* hakmem presence ----------------------------------------------------------- */

uint64_t tu_hak_total_allocs(void)
{
	struct hak_stats st;
	uint64_t sum;
	if (hak_stats_get(&st, sizeof st) != 0)
		TU_FAIL("hak_stats_get: %s", strerror(errno));
	TU_CHECK(st.num_classes <= HAK_STATS_MAX_CLASSES, "num_classes %u", st.num_classes);
	sum = st.large_allocs;
	for (uint32_t i = 0; i < st.num_classes; i++)
		sum += st.classes[i].allocs;
	return sum;
}

void tu_require_hakmem_malloc(void)
{
	enum { N = 64 };
	static void *volatile keep[N];
	uint64_t before = tu_hak_total_allocs(), after;
	for (int i = 0; i < N; i++)
		keep[i] = malloc(100 + (size_t)i);
	after = tu_hak_total_allocs();
	for (int i = 0; i < N; i++) {
		TU_CHECK(keep[i] != NULL);
		/* only hakmem knows the size of its own blocks */
		TU_CHECK(hak_malloc_usable_size(keep[i]) >= 100 + (size_t)i);
		free(keep[i]);
	}
	if (after < before + N)
		TU_FAIL("malloc is not hakmem's: %d mallocs moved the hakmem "
			"allocation counters by %" PRIu64, N, after - before);
}

/* Entry-point tables -------------------------------------------------------- */

const struct tu_api tu_api_std = {
	.name = "std",
	.malloc = malloc,
	.free = free,
	.calloc = calloc,
	.realloc = realloc,
	.reallocarray = reallocarray,
	.posix_memalign = posix_memalign,
	.aligned_alloc = aligned_alloc,
	.memalign = memalign,
	.valloc = valloc,
	.pvalloc = pvalloc,
	.usable_size = malloc_usable_size,
};

const struct tu_api tu_api_hak = {
	.name = "hak",
	.malloc = hak_malloc,
	.free = hak_free,
	.calloc = hak_calloc,
	.realloc = hak_realloc,
	.reallocarray = hak_reallocarray,
	.posix_memalign = hak_posix_memalign,
	.aligned_alloc = hak_aligned_alloc,
	.memalign = hak_memalign,
	.valloc = hak_valloc,
	.pvalloc = hak_pvalloc,
	.usable_size = hak_malloc_usable_size,
};

void tu_run_api_tests(tu_api_test *const tests[])
{
	const struct tu_api *apis[] = { &tu_api_std, &tu_api_hak };

	tu_require_hakmem_malloc();
	tu_context_on_abort();
	for (size_t i = 0; i < sizeof apis / sizeof apis[0]; i++) {
		tu_set_context("api %s", apis[i]->name);
		for (size_t t = 0; tests[t]; t++)
			tests[t](apis[i]);
	}
}
