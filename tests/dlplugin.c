/*
 * dlplugin.c - a plugin linked against libhakmem, for integ_dlplugin.
 *
 * Its code calls the hak_ functions of <hakmem.h> and the plain malloc,
 * realloc, strdup and free, from the loading thread and from a thread it
 * starts.  Which malloc the plain calls reach depends on how it was
 * loaded; integ_dlplugin.c says which and checks it.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "dlplugin.h"
#include "hakmem.h"

#define EXPORT __attribute__((visibility("default")))

static void *malloc_seen(void)
{
	return (void *)&malloc;
}

static void *free_seen(void)
{
	return (void *)&free;
}

static void *hak_block(size_t n, uint64_t key)
{
	void *p = hak_malloc(n);
	if (p)
		dlplugin_fill(p, n, key);
	return p;
}

static void *hak_zeroed(size_t n)
{
	return hak_calloc(n, 1);
}

/* NULL if the old contents did not survive (or no memory). */
static void *hak_grow(void *p, size_t old_n, size_t n, uint64_t key)
{
	void *q = hak_realloc(p, n);
	if (!q)
		return NULL;
	if (dlplugin_check(q, old_n, key) != old_n) {
		hak_free(q);
		return NULL;
	}
	dlplugin_fill(q, n, key);
	return q;
}

static void hak_release(void *p)
{
	hak_free(p);
}

static size_t hak_usable(void *p)
{
	return hak_malloc_usable_size(p);
}

static int stats(struct hak_stats *st, size_t size)
{
	return hak_stats_get(st, size);
}

static const char *version(void)
{
	return hak_version();
}

static void *plain_block(size_t n, uint64_t key)
{
	void *p = malloc(n);
	if (p)
		dlplugin_fill(p, n, key);
	return p;
}

static void *plain_grow(void *p, size_t old_n, size_t n, uint64_t key)
{
	void *q = realloc(p, n);
	if (!q)
		return NULL;
	if (dlplugin_check(q, old_n, key) != old_n) {
		free(q);
		return NULL;
	}
	dlplugin_fill(q, n, key);
	return q;
}

static char *plain_dup(const char *s)
{
	return strdup(s);
}

static void plain_release(void *p)
{
	free(p);
}

/* The plugin's own thread ---------------------------------------------------- */

struct job {
	unsigned rounds;
	void **out;
	size_t nout, n;
	uint64_t key;
	const char *err;
};

static const char *worker_rounds(struct job *j)
{
	enum { N = 32 };
	void *h[N], *g[N];
	for (unsigned r = 0; r < j->rounds; r++) {
		for (unsigned i = 0; i < N; i++) {
			size_t n = 1 + (i * 977 + r * 131) % 40000;
			uint64_t key = j->key + r * N + i;
			if (!(h[i] = hak_block(n, key)) || hak_malloc_usable_size(h[i]) < n)
				return "hak_malloc in the plugin's thread";
			if (!(h[i] = hak_grow(h[i], n, n + 5000, key)))
				return "hak_realloc in the plugin's thread";
			if (!(g[i] = plain_block(n, ~key)))
				return "malloc in the plugin's thread";
			if (!(g[i] = plain_grow(g[i], n, n + 100, ~key)))
				return "realloc in the plugin's thread";
		}
		for (unsigned i = 0; i < N; i++) {
			size_t n = 1 + (i * 977 + r * 131) % 40000;
			uint64_t key = j->key + r * N + i;
			if (dlplugin_check(h[i], n + 5000, key) != n + 5000 ||
			    dlplugin_check(g[i], n + 100, ~key) != n + 100)
				return "a block changed in the plugin's thread";
			hak_free(h[i]);
			free(g[i]);
		}
	}
	for (size_t i = 0; i < j->nout; i++)
		if (!(j->out[i] = hak_block(j->n, j->key + i)))
			return "hak_malloc of the blocks handed back";
	return NULL;
}

static void *worker(void *arg)
{
	struct job *j = arg;
	j->err = worker_rounds(j);
	return NULL;
}

static const char *thread_run(unsigned rounds, void **out, size_t nout, size_t n,
			      uint64_t key)
{
	struct job j = { .rounds = rounds, .out = out, .nout = nout, .n = n, .key = key };
	pthread_t t;
	if (pthread_create(&t, NULL, worker, &j) != 0)
		return "pthread_create in the plugin";
	if (pthread_join(t, NULL) != 0)
		return "pthread_join in the plugin";
	return j.err;
}

static const struct dlplugin_api api = {
	.version = DLPLUGIN_API_VERSION,
	.malloc_seen = malloc_seen,
	.free_seen = free_seen,
	.hak_block = hak_block,
	.hak_zeroed = hak_zeroed,
	.hak_grow = hak_grow,
	.hak_release = hak_release,
	.hak_usable = hak_usable,
	.hak_stats = stats,
	.hak_version = version,
	.plain_block = plain_block,
	.plain_grow = plain_grow,
	.plain_dup = plain_dup,
	.plain_release = plain_release,
	.thread_run = thread_run,
};

EXPORT const struct dlplugin_api *dlplugin_api(void)
{
	return &api;
}
