/*
 * larson.c - the published Larson & Krishnan server benchmark (larson.cpp,
 * as mimalloc-bench and Hoard run it), measured in-process.
 *
 * The same arguments do the same work as `larson SECONDS MIN MAX CHUNKS
 * ROUNDS SEED THREADS`:
 *  - the main thread allocates THREADS x CHUNKS blocks of sizes in
 *    [MIN, MAX), shuffles them, and frees and reallocates 4 x THREADS x
 *    CHUNKS random ones (the published warm-up); slice i of that array is
 *    thread i's, so a first thread's first frees are of blocks the main
 *    thread allocated;
 *  - a thread does ROUNDS x CHUNKS ops on its slice, each freeing a random
 *    block of it and allocating one of random size in its place (and writing
 *    its first two bytes), then starts a new thread on the same slice and
 *    exits: a generation's successor frees what it allocated.  An op does
 *    its steps in the published order: draw the victim, free it, draw the
 *    size, allocate.  (Drawing the size before the free, as this model
 *    once did, lets the generator's work overlap the free, and made every
 *    allocator 1.18-1.24x faster here than in the published program at
 *    2-32 KiB, against 1.07-1.10x in this order: BENCHMARKS.md, session 12);
 *  - the clock starts once the main thread has started the first threads;
 *    it sleeps SECONDS, raises the stop flag, which every thread reads after
 *    each op, and waits for the last generation; the figure is all ops over
 *    that time.
 * Victims and sizes come from the generator the published program uses,
 * seeded the same way, so a seed gives the published program's sequence.
 * Blocks come from operator new[] and go back to delete[] by default, as in
 * mimalloc-bench's build of the program (-DCPP): an allocator that does not
 * define them is reached through libstdc++'s, which costs a few calls per
 * op, in the published program as here.  --calls picks the sized delete[]
 * of its larson-sized, or malloc/free (the source built without -DCPP).
 *
 * Where we differ, and why: a successor joins its predecessor once it has
 * done its own ops (the published program never joins its threads, so each
 * generation's stack stays mapped until exit; that leak is not the
 * allocator's memory), and --check replaces the two-byte write with a tag
 * written into and checked before the free of every block.  The bench's own
 * memory (the block array, latency samples) comes from mmap, so the
 * allocator's counters describe the workload alone.
 */
#include "bench.h"
#include "lran2.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WARMUP_PASSES 4 /* the published warm-up reallocates 4x the blocks */
#define LAT_CAPACITY ((size_t)1 << 16) /* samples per slice per call */

/* The published program's record of one thread's slice (its thread_data,
 * de_area[i]), field for field: what an op reads and writes, at the same
 * offsets.  The records lie side by side, 880 bytes apart, as the
 * published array does on the main thread's stack, so that neighbouring
 * threads share the cache lines at their boundaries as they do there (a
 * generator's table writes, one thread's counters beside the next one's
 * pointers): padded apart, the published program ran 16% faster and the
 * allocators' ratios moved by 4% (BENCHMARKS.md, session 12). */
struct larson_rec {
	int threadno, num_blocks, seed, min_size, max_size;
	void **array;
	size_t *blksize;
	int asize;
	/* counted per call in memory, as the published loop does; ops = allocs */
	long allocs, frees, threads, bytes;
	atomic_int finished;
	struct lr_gen rng;
};
_Static_assert(sizeof(struct larson_rec) == 880, "the published record is 880 bytes");

/* One thread's slice, worked by one generation at a time: pthread_create
 * orders a generation's writes before its successor's reads. */
struct slice {
	struct larson_rec *d; /* the published part (d->threads: its generations) */
	pthread_t prev; /* the generation to join; valid when has_prev */
	bool has_prev;
	struct lat_buf *lat_malloc, *lat_free;
	unsigned lat_period, lat_countdown;
	struct larson *run;
	/* Written under run->lock when the last generation ends. */
	pthread_t last;
	int error; /* errno of a failed pthread_create, ENOMEM */
};

/* The entry points an op calls, looked up as the published program's
 * dynamic linker would bind them (see calls_resolve). */
struct calls {
	void *(*alloc)(size_t);
	void (*release)(void *);
	void (*sized_release)(void *, size_t);
};

struct larson {
	const struct wl_cfg *cfg;
	struct calls calls;
	long range;    /* max - min: sizes are min + r % range (min when 0) */
	void **blocks; /* THREADS x CHUNKS, slice i at i x CHUNKS */
	size_t *sizes;
	struct slice *slices;
	/* the records, side by side from a line's start: the published array
	 * is on the main thread's stack, whose place the kernel randomises in
	 * 16-byte steps; it started a line in 7 of 12 runs (the others at 16,
	 * 32 or 48 bytes into one) */
	struct larson_rec *recs;
	uint64_t warmup_ops;
	atomic_bool stop;
	pthread_mutex_t lock; /* guards slices_done */
	pthread_cond_t cond;
	unsigned slices_done;
};

/* A block size drawn as published: min, plus a draw below range unless it
 * is 0 (then no draw). */
static inline size_t draw_size(long min, long range, struct lr_gen *g)
{
	return (size_t)min + (range ? (size_t)(lr_next(g) % range) : 0);
}

/* The published op writes the new block's first byte, reads it back and
 * writes the second: the block's first cache line is touched, no more.
 * It reads the byte back through the array (its byte store may alias the
 * array, so the compiler loads the pointer again), and so does this. */
static inline void touch(void *const *slot, size_t size)
{
	volatile char *c = *slot;
	c[0] = 'a';
	(void)*(volatile char *)*slot;
	if (size > 1)
		c[1] = 'b';
}

/* Give a block back the way --calls says; sized is a constant at each call. */
static inline __attribute__((always_inline)) void release(const struct calls *c, bool sized,
							  void *p, size_t size)
{
	if (sized)
		c->sized_release(p, size);
	else
		c->release(p);
}

static void sample_latency(struct slice *s, void *old, size_t old_size, size_t size, void **p)
{
	const struct calls *c = &s->run->calls;
	uint64_t t0 = wl_now_ns();
	release(c, c->sized_release != NULL, old, old_size);
	uint64_t t1 = wl_now_ns();
	*p = c->alloc(size);
	uint64_t t2 = wl_now_ns();
	s->d->frees++;
	lat_record(s->lat_free, t1 - t0);
	if (lat_record(s->lat_malloc, t2 - t1)) {
		/* Both buffers are full at once: thin them, sample half as often. */
		lat_halve(s->lat_free);
		lat_halve(s->lat_malloc);
		s->lat_period *= 2;
	}
	s->lat_countdown = s->lat_period;
}

/* Up to n ops on s, stopping after the op that sees the stop flag; the
 * flags are constants at each call, so each loop is compiled without the
 * features it does not use.  *error is ENOMEM when an allocation failed
 * (that op is not counted). */
static inline __attribute__((always_inline)) void
work(struct slice *s, uint64_t n, bool check, bool latency, bool sized, int *error)
{
	struct larson *run = s->run;
	struct larson_rec *d = s->d;
	const struct calls *c = &run->calls;
	int range = d->max_size - d->min_size; /* as published, read once */
	for (uint64_t done = 0; done < n; done++) {
		unsigned victim = (unsigned)(lr_next(&d->rng) % d->asize);
		void *old = d->array[victim];
		if (check)
			wl_tag_check(old, d->blksize[victim], "larson");
		size_t size;
		void *p;
		if (latency && --s->lat_countdown == 0) {
			size = draw_size(d->min_size, range, &d->rng);
			sample_latency(s, old, d->blksize[victim], size, &p);
		} else {
			release(c, sized, old, d->blksize[victim]);
			d->frees++;
			size = draw_size(d->min_size, range, &d->rng);
			p = c->alloc(size);
		}
		d->array[victim] = p;
		d->blksize[victim] = size;
		if (!p) {
			*error = ENOMEM;
			break;
		}
		d->allocs++;
		if (check)
			wl_tag_write(p, size);
		else
			touch(&d->array[victim], size);
		if (atomic_load_explicit(&run->stop, memory_order_relaxed))
			break;
	}
}

/* work() compiled for each combination of the run's options; the common
 * one (no check, no latency) is tested first. */
static void work_variant(struct slice *s, uint64_t n, int *error)
{
	const struct wl_cfg *cfg = s->run->cfg;
	bool sized = s->run->calls.sized_release != NULL;
	if (!cfg->check && !cfg->latency) {
		if (sized)
			work(s, n, false, false, true, error);
		else
			work(s, n, false, false, false, error);
	} else if (cfg->check && cfg->latency) {
		work(s, n, true, true, sized, error);
	} else if (cfg->check) {
		work(s, n, true, false, sized, error);
	} else {
		work(s, n, false, true, sized, error);
	}
}

static void slice_end(struct slice *s, int error)
{
	struct larson *run = s->run;
	pthread_mutex_lock(&run->lock);
	s->last = pthread_self();
	s->error = error;
	run->slices_done++;
	if (error)
		atomic_store(&run->stop, true);
	pthread_cond_broadcast(&run->cond);
	pthread_mutex_unlock(&run->lock);
}

/* One generation: ROUNDS x CHUNKS ops, then the slice goes to a new thread. */
static void *generation(void *arg)
{
	struct slice *s = arg;
	struct larson *run = s->run;
	const struct wl_cfg *cfg = run->cfg;
	pthread_t prev = s->prev;
	bool has_prev = s->has_prev;
	int error = 0;

	/* As published: a thread started after the stop does nothing. */
	if (!atomic_load_explicit(&run->stop, memory_order_relaxed)) {
		uint64_t n = (uint64_t)cfg->rounds * cfg->chunks;
		/* the published generation's writes to its record */
		atomic_store(&s->d->finished, 0);
		s->d->threads++;
		work_variant(s, n, &error);
		atomic_store(&s->d->finished, 1);
	}
	if (has_prev)
		pthread_join(prev, NULL);
	if (error || atomic_load_explicit(&run->stop, memory_order_relaxed)) {
		slice_end(s, error);
		return NULL;
	}
	pthread_t next;
	s->prev = pthread_self();
	s->has_prev = true;
	error = pthread_create(&next, NULL, generation, s);
	if (error)
		slice_end(s, error); /* the main thread joins this one */
	/* Otherwise s now belongs to the successor; it joins this thread. */
	return NULL;
}

/* The published warm-up, by the main thread: allocate every block, shuffle
 * them, then free and reallocate WARMUP_PASSES x as many random ones. */
static int warm_up(struct larson *run, struct lr_gen *g)
{
	size_t n = (size_t)run->cfg->threads * run->cfg->chunks;
	for (size_t i = 0; i < n; i++) {
		run->sizes[i] = draw_size((long)run->cfg->min, run->range, g);
		run->blocks[i] = run->calls.alloc(run->sizes[i]);
		run->warmup_ops++;
		if (!run->blocks[i])
			return ENOMEM;
	}
	for (size_t i = n; i > 0; i--) {
		size_t k = (size_t)lr_next(g) % i;
		void *p = run->blocks[k];
		size_t sz = run->sizes[k];
		run->blocks[k] = run->blocks[i - 1];
		run->sizes[k] = run->sizes[i - 1];
		run->blocks[i - 1] = p;
		run->sizes[i - 1] = sz;
	}
	for (size_t i = 0; i < WARMUP_PASSES * n; i++) {
		size_t k = (size_t)lr_next(g) % n;
		release(&run->calls, run->calls.sized_release != NULL, run->blocks[k], run->sizes[k]);
		run->sizes[k] = draw_size((long)run->cfg->min, run->range, g);
		run->blocks[k] = run->calls.alloc(run->sizes[k]);
		run->warmup_ops++;
		if (!run->blocks[k])
			return ENOMEM;
	}
	if (run->cfg->check)
		for (size_t i = 0; i < n; i++)
			wl_tag_write(run->blocks[i], run->sizes[i]);
	return 0;
}

/*
 * The published binary's operator new[] binds to the first definition in
 * the global scope: the preloaded allocator's if it has one (mimalloc,
 * jemalloc and tcmalloc do), else libstdc++'s, which calls malloc.  The
 * bench is C and does not link libstdc++, so it asks the global scope
 * first and libstdc++ second; libstdc++'s malloc calls still reach the
 * preloaded allocator.  Returns 0, or -1 after one line.
 */
static int calls_resolve(enum larson_calls which, struct calls *c)
{
	static const char *const names[][2] = {
		[CALLS_NEW] = { "_Znam", "_ZdaPv" },    /* operator new[], delete[] */
		[CALLS_SIZED] = { "_Znam", "_ZdaPvm" }, /* and delete[](void *, size_t) */
	};
	memset(c, 0, sizeof *c);
	if (which == CALLS_MALLOC) {
		c->alloc = malloc;
		c->release = free;
		return 0;
	}
	void *a = dlsym(RTLD_DEFAULT, names[which][0]);
	void *f = dlsym(RTLD_DEFAULT, names[which][1]);
	if (!a || !f) {
		void *cxx = dlopen("libstdc++.so.6", RTLD_NOW | RTLD_LOCAL);
		if (!cxx) {
			opt_error("larson: --calls %s needs libstdc++.so.6 (%s); --calls malloc does not",
				  calls_name(which), dlerror());
			return -1;
		}
		a = a ? a : dlsym(cxx, names[which][0]);
		f = f ? f : dlsym(cxx, names[which][1]);
	}
	if (!a || !f) {
		opt_error("larson: libstdc++.so.6 has no %s", !a ? names[which][0] : names[which][1]);
		return -1;
	}
	c->alloc = (void *(*)(size_t))(uintptr_t)a;
	if (which == CALLS_SIZED)
		c->sized_release = (void (*)(void *, size_t))(uintptr_t)f;
	else
		c->release = (void (*)(void *))(uintptr_t)f;
	return 0;
}

static int setup(struct larson *run)
{
	const struct wl_cfg *cfg = run->cfg;
	size_t n = (size_t)cfg->threads * cfg->chunks;
	run->range = (long)(cfg->max - cfg->min);
	run->blocks = wl_map(n * sizeof *run->blocks);
	run->sizes = wl_map(n * sizeof *run->sizes);
	run->slices = wl_map(cfg->threads * sizeof *run->slices);
	run->recs = wl_map(cfg->threads * sizeof *run->recs);
	if (!run->blocks || !run->sizes || !run->slices || !run->recs)
		return -1;
	for (unsigned i = 0; i < cfg->threads; i++) {
		struct slice *s = &run->slices[i];
		struct larson_rec *d = s->d = &run->recs[i];
		s->run = run;
		d->threadno = (int)i + 1;
		uint64_t n = (uint64_t)cfg->rounds * cfg->chunks;
		d->num_blocks = n > INT_MAX ? INT_MAX : (int)n; /* (the loop counts n) */
		d->min_size = (int)cfg->min;
		d->max_size = (int)cfg->max;
		d->array = run->blocks + (size_t)i * cfg->chunks;
		d->blksize = run->sizes + (size_t)i * cfg->chunks;
		d->asize = (int)cfg->chunks;
		if (cfg->latency) {
			s->lat_malloc = lat_buf_new(LAT_CAPACITY);
			s->lat_free = lat_buf_new(LAT_CAPACITY);
			if (!s->lat_malloc || !s->lat_free)
				return -1;
			s->lat_period = cfg->sample;
			s->lat_countdown = cfg->sample;
		}
	}
	return 0;
}

static void teardown(struct larson *run)
{
	const struct wl_cfg *cfg = run->cfg;
	size_t n = (size_t)cfg->threads * cfg->chunks;
	if (run->blocks) {
		for (size_t i = 0; i < n && run->calls.alloc; i++)
			if (run->blocks[i])
				release(&run->calls, run->calls.sized_release != NULL, run->blocks[i],
					run->sizes[i]);
		wl_unmap(run->blocks, n * sizeof *run->blocks);
	}
	if (run->sizes)
		wl_unmap(run->sizes, n * sizeof *run->sizes);
	if (run->recs)
		wl_unmap(run->recs, cfg->threads * sizeof *run->recs);
	if (run->slices) {
		for (unsigned i = 0; i < cfg->threads; i++) {
			lat_buf_free(run->slices[i].lat_malloc);
			lat_buf_free(run->slices[i].lat_free);
		}
		wl_unmap(run->slices, cfg->threads * sizeof *run->slices);
	}
}

/* Wait until the last generation of each of the started slices has ended,
 * and join it. */
static void wait_slices(struct larson *run, unsigned started)
{
	pthread_mutex_lock(&run->lock);
	while (run->slices_done < started)
		pthread_cond_wait(&run->cond, &run->lock);
	pthread_mutex_unlock(&run->lock);
	for (unsigned i = 0; i < started; i++)
		pthread_join(run->slices[i].last, NULL);
}

static void collect(struct larson *run, struct wl_result *res, double elapsed)
{
	const struct wl_cfg *cfg = run->cfg;
	memset(res, 0, sizeof *res);
	for (unsigned i = 0; i < cfg->threads; i++) {
		res->ops += (uint64_t)run->slices[i].d->allocs;
		res->threads_created += (uint64_t)run->slices[i].d->threads;
	}
	res->warmup_ops = run->warmup_ops;
	/* counters and RSS before the bench frees the blocks */
	wl_finish_elapsed(res, elapsed);
	if (cfg->latency) {
		struct lat_buf *bufs[LARSON_MAX_THREADS];
		for (unsigned i = 0; i < cfg->threads; i++)
			bufs[i] = run->slices[i].lat_malloc;
		lat_summarise(bufs, cfg->threads, &res->lat_malloc);
		for (unsigned i = 0; i < cfg->threads; i++)
			bufs[i] = run->slices[i].lat_free;
		lat_summarise(bufs, cfg->threads, &res->lat_free);
		res->has_latency = true;
	}
}

int larson_run(const struct wl_cfg *cfg, struct wl_result *res)
{
	struct larson run = { .cfg = cfg };
	unsigned started = 0;
	int rc = -1;

	atomic_init(&run.stop, false);
	pthread_mutex_init(&run.lock, NULL);
	pthread_cond_init(&run.cond, NULL);
	if (calls_resolve(cfg->calls, &run.calls) != 0)
		goto out;
	if (setup(&run) != 0) {
		opt_error("larson: out of memory setting up %u threads", cfg->threads);
		goto out;
	}
	struct lr_gen main_rng;
	lr_seed(&main_rng, (long)cfg->seed);
	if (warm_up(&run, &main_rng) != 0) {
		opt_error("larson: warm-up: malloc failed: %s", strerror(ENOMEM));
		goto out;
	}
	/* As published: each slice's generator is seeded from the main one. */
	for (unsigned i = 0; i < cfg->threads; i++)
		lr_seed(&run.slices[i].d->rng, lr_next(&main_rng));
	for (; started < cfg->threads; started++) {
		pthread_t t;
		int e = pthread_create(&t, NULL, generation, &run.slices[started]);
		if (e) {
			opt_error("larson: cannot start thread %u: %s", started, strerror(e));
			atomic_store(&run.stop, true);
			wait_slices(&run, started);
			goto out;
		}
	}
	uint64_t t0 = wl_now_ns();
	wl_sleep(cfg->seconds);
	atomic_store(&run.stop, true);
	wait_slices(&run, started);
	double elapsed = (double)(wl_now_ns() - t0) / 1e9;

	rc = 0;
	for (unsigned i = 0; i < cfg->threads; i++) {
		if (run.slices[i].error) {
			opt_error("larson: thread %u failed: %s", i, strerror(run.slices[i].error));
			rc = -1;
		}
	}
	if (rc == 0)
		collect(&run, res, elapsed);
out:
	teardown(&run);
	pthread_cond_destroy(&run.cond);
	pthread_mutex_destroy(&run.lock);
	return rc;
}
