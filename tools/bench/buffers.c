/*
 * buffers.c - big buffers: allocated, filled, freed.  What it costs to get
 * megabytes from the allocator (and the allocator from the OS) and to give
 * them back, and how much of them stays resident.
 *
 * Models mimalloc-bench's malloc-large (one thread allocating a 2 MiB
 * buffer, writing every byte, freeing it; 5000 times), made time-bound and
 * widened: THREADS threads each keep LIVE buffers; an op frees a random one
 * of them and allocates one of a random size in [MIN, MAX] in its place,
 * then fills it: FILL write writes every byte (as published), zero
 * allocates it with calloc instead of malloc (an allocator may know fresh
 * pages are zero), none leaves it untouched.  With LIVE 20 and sizes of 5 to
 * 25 MiB it is the older malloc-large.  The figure is buffers per second.
 */
#include "bench.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define FILL_BYTE 'x'

struct buf_thread {
	struct bufs *run;
	uint64_t rng;
	void **slots;
	uint64_t ops;
	int error;
	pthread_t tid;
} __attribute__((aligned(64)));

struct bufs {
	const struct wl_cfg *cfg;
	atomic_bool stop;
};

/* xorshift64*: sizes and slots need no more. */
static uint64_t next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

static void *new_buffer(const struct wl_cfg *cfg, size_t size)
{
	if (cfg->fill == FILL_ZERO)
		return calloc(1, size);
	void *p = malloc(size);
	if (p && cfg->fill == FILL_WRITE)
		memset(p, FILL_BYTE, size);
	return p;
}

static void *filler(void *arg)
{
	struct buf_thread *t = arg;
	const struct wl_cfg *cfg = t->run->cfg;
	uint64_t span = cfg->max - cfg->min + 1;
	/* At least one buffer, however late the thread is scheduled. */
	do {
		size_t k = cfg->live > 1 ? next(&t->rng) % cfg->live : 0;
		size_t size = cfg->min + (span > 1 ? next(&t->rng) % span : 0);
		free(t->slots[k]);
		t->slots[k] = new_buffer(cfg, size);
		if (!t->slots[k]) {
			t->error = ENOMEM;
			atomic_store(&t->run->stop, true);
			break;
		}
		t->ops++;
	} while (!atomic_load_explicit(&t->run->stop, memory_order_relaxed));
	return NULL;
}

int buffers_run(const struct wl_cfg *cfg, struct wl_result *res)
{
	struct bufs run = { .cfg = cfg };
	size_t tbytes = cfg->threads * sizeof(struct buf_thread);
	size_t sbytes = (size_t)cfg->threads * cfg->live * sizeof(void *);
	struct buf_thread *th = wl_map(tbytes);
	void **slots = wl_map(sbytes);
	int rc = 0;
	if (!th || !slots) {
		opt_error("buffers: out of memory setting up %u threads", cfg->threads);
		wl_unmap(th, tbytes);
		wl_unmap(slots, sbytes);
		return -1;
	}
	atomic_init(&run.stop, false);
	memset(res, 0, sizeof *res);
	for (unsigned i = 0; i < cfg->threads; i++) {
		th[i].run = &run;
		th[i].slots = slots + (size_t)i * cfg->live;
		th[i].rng = (cfg->seed + i) * 0x9e3779b97f4a7c15ULL | 1;
	}
	unsigned started = 0;
	uint64_t t0 = wl_now_ns();
	for (; started < cfg->threads; started++) {
		int e = pthread_create(&th[started].tid, NULL, filler, &th[started]);
		if (e) {
			opt_error("buffers: cannot start thread %u: %s", started, strerror(e));
			rc = -1;
			break;
		}
	}
	if (rc == 0)
		wl_sleep(cfg->seconds);
	atomic_store(&run.stop, true);
	for (unsigned i = 0; i < started; i++)
		pthread_join(th[i].tid, NULL);
	for (unsigned i = 0; i < started; i++) {
		res->ops += th[i].ops;
		if (th[i].error && rc == 0) {
			opt_error("buffers: thread %u failed: %s", i, strerror(th[i].error));
			rc = -1;
		}
	}
	res->threads_created = started;
	wl_finish(res, t0);
	for (size_t i = 0; i < (size_t)cfg->threads * cfg->live; i++)
		free(slots[i]);
	wl_unmap(slots, sbytes);
	wl_unmap(th, tbytes);
	return rc;
}
