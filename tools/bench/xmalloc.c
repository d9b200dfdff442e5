/*
 * xmalloc.c - producers and consumers: every free is remote.
 *
 * Models xmalloc-test (Lever and Boreham, "malloc() Performance in a
 * Multithreaded Linux Environment", USENIX 2000; as mimalloc-bench runs it,
 * `xmalloc-test -w THREADS -t SECONDS -s SIZE`): THREADS producer threads
 * fill batches of XM_BATCH objects of SIZE bytes (or, with SIZE 0, of sizes
 * drawn from the published list), writing up to 128 bytes of each, and push
 * each batch on a shared stack of at most XM_QUEUE_LIMIT batches; THREADS
 * consumer threads pop batches and free every object in them.  The batches
 * themselves come from malloc too, as published.  The figure is objects
 * freed per second; the clock starts before the threads are created.
 */
#include "bench.h"
#include "lran2.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define XM_BATCH 4096
#define XM_QUEUE_LIMIT 100
#define XM_WRITE_MAX 128 /* bytes written into each object */

/* The published size list, drawn from when SIZE is 0. */
static const uint32_t xm_sizes[] = { 8,   12,  16,  24,  32,   48,   64,   96,  128,
				     192, 256, 384, 512, 768, 1024, 1536, 2048 };
#define XM_NSIZES (sizeof xm_sizes / sizeof xm_sizes[0])

struct xm_batch {
	struct xm_batch *next;
	void *objects[XM_BATCH];
};

struct xm_thread {
	struct xm *run;
	unsigned index;
	uint64_t freed;
	int error;
	pthread_t tid;
} __attribute__((aligned(64))); /* each consumer's count on its own line */

struct xm {
	const struct wl_cfg *cfg;
	pthread_mutex_t lock; /* guards head and count */
	pthread_cond_t not_empty, not_full;
	struct xm_batch *head;
	unsigned count;
	atomic_bool done;
};

static void push(struct xm *run, struct xm_batch *b)
{
	pthread_mutex_lock(&run->lock);
	while (run->count >= XM_QUEUE_LIMIT && !atomic_load(&run->done))
		pthread_cond_wait(&run->not_full, &run->lock);
	b->next = run->head;
	run->head = b;
	run->count++;
	pthread_cond_signal(&run->not_empty);
	pthread_mutex_unlock(&run->lock);
}

static struct xm_batch *pop(struct xm *run)
{
	pthread_mutex_lock(&run->lock);
	while (!run->head && !atomic_load(&run->done))
		pthread_cond_wait(&run->not_empty, &run->lock);
	struct xm_batch *b = run->head;
	if (b) {
		run->head = b->next;
		run->count--;
		pthread_cond_signal(&run->not_full);
	}
	pthread_mutex_unlock(&run->lock);
	return b;
}

/* Raise the done flag and wake every waiting thread. */
static void stop(struct xm *run)
{
	atomic_store(&run->done, true);
	pthread_mutex_lock(&run->lock);
	pthread_cond_broadcast(&run->not_empty);
	pthread_cond_broadcast(&run->not_full);
	pthread_mutex_unlock(&run->lock);
}

static void fail(struct xm_thread *t, int error)
{
	t->error = error;
	stop(t->run);
}

static void *producer(void *arg)
{
	struct xm_thread *t = arg;
	struct xm *run = t->run;
	uint64_t fixed = run->cfg->size;
	struct lr_gen g;
	lr_seed(&g, (long)t->index); /* as published: the thread's number */
	/* At least one batch, however late the thread is scheduled. */
	do {
		struct xm_batch *b = malloc(sizeof *b);
		if (!b) {
			fail(t, ENOMEM);
			break;
		}
		for (unsigned i = 0; i < XM_BATCH; i++) {
			size_t size = fixed ? fixed : xm_sizes[lr_next(&g) % XM_NSIZES];
			void *p = malloc(size);
			if (!p) {
				while (i-- > 0)
					free(b->objects[i]);
				free(b);
				fail(t, ENOMEM);
				return NULL;
			}
			memset(p, (int)(i % 256), size < XM_WRITE_MAX ? size : XM_WRITE_MAX);
			b->objects[i] = p;
		}
		push(run, b);
	} while (!atomic_load_explicit(&run->done, memory_order_relaxed));
	return NULL;
}

static void *consumer(void *arg)
{
	struct xm_thread *t = arg;
	struct xm *run = t->run;
	while (!atomic_load_explicit(&run->done, memory_order_relaxed)) {
		struct xm_batch *b = pop(run);
		if (!b)
			continue;
		for (unsigned i = 0; i < XM_BATCH; i++)
			free(b->objects[i]);
		free(b);
		t->freed += XM_BATCH;
	}
	return NULL;
}

int xmalloc_run(const struct wl_cfg *cfg, struct wl_result *res)
{
	struct xm run = { .cfg = cfg };
	size_t nthreads = 2 * (size_t)cfg->threads;
	size_t bytes = nthreads * sizeof(struct xm_thread);
	struct xm_thread *th = wl_map(bytes);
	int rc = -1;
	if (!th) {
		opt_error("xmalloc: out of memory setting up %zu threads", nthreads);
		return -1;
	}
	pthread_mutex_init(&run.lock, NULL);
	pthread_cond_init(&run.not_empty, NULL);
	pthread_cond_init(&run.not_full, NULL);
	atomic_init(&run.done, false);
	memset(res, 0, sizeof *res);

	uint64_t t0 = wl_now_ns();
	size_t started = 0;
	/* Consumer i at 2i, producer i at 2i + 1, started in that order. */
	for (; started < nthreads; started++) {
		struct xm_thread *t = &th[started];
		t->run = &run;
		t->index = (unsigned)(started / 2);
		int e = pthread_create(&t->tid, NULL, started % 2 ? producer : consumer, t);
		if (e) {
			opt_error("xmalloc: cannot start thread %zu: %s", started, strerror(e));
			fail(t, e);
			break;
		}
	}
	if (started == nthreads)
		wl_sleep(cfg->seconds);
	stop(&run);
	for (size_t i = 0; i < started; i++)
		pthread_join(th[i].tid, NULL);
	rc = started == nthreads ? 0 : -1;
	for (size_t i = 0; i < started; i++) {
		res->ops += th[i].freed;
		if (th[i].error && rc == 0) {
			opt_error("xmalloc: thread %zu failed: %s", i, strerror(th[i].error));
			rc = -1;
		}
	}
	res->threads_created = started;
	wl_finish(res, t0);
	/* As published: the batches left on the stack are freed after the clock. */
	while (run.head) {
		struct xm_batch *b = run.head;
		run.head = b->next;
		for (unsigned i = 0; i < XM_BATCH; i++)
			free(b->objects[i]);
		free(b);
	}
	pthread_cond_destroy(&run.not_full);
	pthread_cond_destroy(&run.not_empty);
	pthread_mutex_destroy(&run.lock);
	wl_unmap(th, bytes);
	return rc;
}
