/*
 * simple.c - one thread, malloc/free loops of several depths: the fast
 * paths and thread caches, without another thread in sight.
 *
 * Models glibc's benchtests/bench-malloc-simple (as mimalloc-bench runs it,
 * `glibc-simple`, base size 16), made time-bound: for each size SIZE,
 * 2 x SIZE and 4 x SIZE and each depth 25, 100, 400 and 1600, a cell of
 * SIMPLE_CELL_PAIRS / depth rounds, each allocating `depth` blocks (writing
 * every int of each, as mimalloc-bench's copy does) and then freeing them
 * all; the twelve cells repeat in that order until SECONDS have passed
 * (checked after the twelfth, so that every cell weighs the same).  The published program runs each cell 2,000,000 / depth
 * times in the main thread, in a second thread and in the main thread
 * again; this runs them in the main thread only.  The figure is
 * malloc+free pairs per second.
 */
#include "bench.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SIMPLE_CELL_PAIRS 200000 /* pairs per cell: ~1-10 ms on a fast path */
#define SIMPLE_MAX_DEPTH 1600

static const unsigned depths[] = { 25, 100, 400, SIMPLE_MAX_DEPTH };
static const unsigned scales[] = { 1, 2, 4 };

/* One cell; returns the pairs done, or 0 with *error set. */
static uint64_t cell(int **arr, size_t size, unsigned depth, int *error)
{
	unsigned rounds = SIMPLE_CELL_PAIRS / depth;
	size_t ints = size / sizeof(int);
	for (unsigned r = 0; r < rounds; r++) {
		for (unsigned i = 0; i < depth; i++) {
			volatile int *p = malloc(size);
			if (!p) {
				while (i-- > 0)
					free(arr[i]);
				*error = ENOMEM;
				return 0;
			}
			for (size_t g = 0; g < ints; g++)
				p[g] = (int)g;
			arr[i] = (int *)p;
		}
		for (unsigned i = 0; i < depth; i++)
			free(arr[i]);
	}
	return (uint64_t)rounds * depth;
}

int simple_run(const struct wl_cfg *cfg, struct wl_result *res)
{
	size_t bytes = SIMPLE_MAX_DEPTH * sizeof(int *);
	int **arr = wl_map(bytes);
	if (!arr) {
		opt_error("simple: out of memory");
		return -1;
	}
	memset(res, 0, sizeof *res);
	int error = 0;
	uint64_t t0 = wl_now_ns();
	uint64_t end = t0 + (uint64_t)(cfg->seconds * 1e9);
	do {
		for (size_t s = 0; !error && s < sizeof scales / sizeof scales[0]; s++)
			for (size_t d = 0; !error && d < sizeof depths / sizeof depths[0]; d++)
				res->ops += cell(arr, cfg->size * scales[s], depths[d], &error);
	} while (!error && wl_now_ns() < end);
	res->threads_created = 0;
	wl_finish(res, t0);
	wl_unmap(arr, bytes);
	if (error) {
		opt_error("simple: malloc failed: %s", strerror(error));
		return -1;
	}
	return 0;
}
