/*
 * falseshare.c - small objects written over and over by several threads:
 * an allocator that gives two threads blocks in one cache line makes every
 * write miss.
 *
 * Models Hoard's cache-scratch (passive false sharing) and cache-thrash
 * (active), as mimalloc-bench runs them (`cache-scratch THREADS 1000 SIZE
 * 2000000 THREADS`), made time-bound: each thread repeatedly allocates an
 * object of SIZE bytes, writes every byte of it WRITES times (each write
 * read back through a volatile, as published), and frees it.  Passive: the
 * main thread first allocates one object per thread, one after the other,
 * and each thread begins by freeing its own, so an allocator that hands
 * freed blocks back to the freeing thread places the threads' objects side
 * by side.  Active: no such hand-over.  The figure is objects per second
 * (one op = malloc, SIZE x WRITES byte writes, free).  malloc/free rather
 * than the published new[]/delete[]: the writes dominate.
 */
#include "bench.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct fs_thread {
	struct fs *run;
	void *given; /* passive: the main thread's object, freed first */
	uint64_t objects;
	int error;
	pthread_t tid;
} __attribute__((aligned(64))); /* the bench's own state shares no line */

struct fs {
	const struct wl_cfg *cfg;
	atomic_bool stop;
};

static void *writer(void *arg)
{
	struct fs_thread *t = arg;
	struct fs *run = t->run;
	size_t size = run->cfg->size;
	unsigned writes = run->cfg->writes;
	free(t->given);
	uint64_t n = 0;
	/* At least one object, however late the thread is scheduled. */
	do {
		char *obj = malloc(size);
		if (!obj) {
			t->error = ENOMEM;
			atomic_store(&run->stop, true);
			break;
		}
		for (unsigned j = 0; j < writes; j++) {
			for (size_t k = 0; k < size; k++) {
				obj[k] = (char)k;
				volatile char ch = obj[k];
				ch++;
			}
		}
		free(obj);
		n++;
	} while (!atomic_load_explicit(&run->stop, memory_order_relaxed));
	t->objects = n;
	return NULL;
}

int falseshare_run(const struct wl_cfg *cfg, struct wl_result *res)
{
	struct fs run = { .cfg = cfg };
	size_t bytes = cfg->threads * sizeof(struct fs_thread);
	struct fs_thread *th = wl_map(bytes);
	if (!th) {
		opt_error("false-sharing: out of memory setting up %u threads", cfg->threads);
		return -1;
	}
	atomic_init(&run.stop, false);
	memset(res, 0, sizeof *res);
	int rc = 0;
	for (unsigned i = 0; i < cfg->threads; i++) {
		th[i].run = &run;
		if (cfg->mode == FS_PASSIVE && !(th[i].given = malloc(cfg->size))) {
			opt_error("false-sharing: malloc failed: %s", strerror(ENOMEM));
			rc = -1;
		}
	}
	unsigned started = 0;
	uint64_t t0 = wl_now_ns();
	for (; rc == 0 && started < cfg->threads; started++) {
		int e = pthread_create(&th[started].tid, NULL, writer, &th[started]);
		if (e) {
			opt_error("false-sharing: cannot start thread %u: %s", started, strerror(e));
			rc = -1;
			break;
		}
	}
	if (rc == 0)
		wl_sleep(cfg->seconds);
	atomic_store(&run.stop, true);
	for (unsigned i = 0; i < started; i++)
		pthread_join(th[i].tid, NULL);
	for (unsigned i = 0; i < cfg->threads; i++) {
		res->ops += th[i].objects;
		if (i >= started)
			free(th[i].given);
		if (th[i].error && rc == 0) {
			opt_error("false-sharing: thread %u failed: %s", i, strerror(th[i].error));
			rc = -1;
		}
	}
	res->threads_created = started;
	wl_finish(res, t0);
	wl_unmap(th, bytes);
	return rc;
}
