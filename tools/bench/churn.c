/*
 * churn.c - thread churn: chains of short-lived threads that hand their
 * blocks on, measured in-process.  (Until issue 12 this was hakmem-bench's
 * "larson"; it is not the published Larson, which larson.c does.)
 *
 * cfg->threads chains run at once.  A chain is a sequence of threads that
 * share one array of cfg->chunks live blocks: a thread frees a random block
 * and allocates a new one of random size in [min, max] cfg->rounds times,
 * then starts its successor, which joins it and inherits the array (so it
 * frees blocks its predecessor allocated), and exits.  Chains go on until
 * cfg->seconds have passed since the warm-up.
 *
 * Warm-up: every first-generation thread allocates its own chunks, then all
 * wait at a gate; the clock starts when the main thread opens it.  One op is
 * one free plus one malloc; every block is tagged and checked before its
 * free.  The bench's own memory (block arrays, latency samples) comes from
 * mmap, never from the allocator under test, so that the allocator's
 * counters describe the workload alone.
 *
 * Each chain has its own deterministic RNG seeded from (cfg->seed, chain
 * index); a successor continues its predecessor's RNG stream.
 */
#include "bench.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Bytes written into each new block (at most the block size) and checked
 * again before it is freed. */
#define LAT_CAPACITY ((size_t)1 << 16) /* samples per chain per call */

struct chain {
	/* Touched by one thread at a time: the current thread of the chain.
	 * pthread_create orders a thread's writes before its successor's reads. */
	void **blocks;
	uint32_t *sizes;
	uint64_t rng;
	uint64_t ops;
	uint64_t generations;
	pthread_t prev;         /* predecessor to join; valid when has_prev */
	bool has_prev;
	unsigned index;
	struct lat_buf *lat_malloc, *lat_free;
	unsigned lat_period;    /* current sampling period */
	unsigned lat_countdown;
	struct churn *run;
	/* Written under run->lock when the chain ends; read by the main thread. */
	pthread_t last;
	bool done;
	int error;              /* errno of a failed pthread_create, ENOMEM, ... */
};

struct churn {
	const struct wl_cfg *cfg;
	struct chain *chains;
	atomic_bool stop;
	pthread_mutex_t lock;   /* guards the fields below */
	pthread_cond_t cond;    /* signalled when any of them changes */
	unsigned chains_ready;  /* first-generation threads done warming up */
	bool go;                /* the timed phase has begun */
	unsigned chains_done;
};

/* splitmix64: seeds the per-chain generators. */
static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* xorshift64*: small and fast; quality is ample for picking slots/sizes. */
static inline uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

/* Uniform in [0, n) by multiply-shift (n < 2^32 here). */
static inline uint64_t rng_below(uint64_t *s, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)rng_next(s) * n) >> 64);
}

static inline uint64_t pick_size(struct chain *c)
{
	const struct wl_cfg *cfg = c->run->cfg;
	return cfg->min + rng_below(&c->rng, cfg->max - cfg->min + 1);
}

static int warm_up(struct chain *c)
{
	unsigned chunks = c->run->cfg->chunks;
	for (unsigned i = 0; i < chunks; i++) {
		uint64_t sz = pick_size(c);
		void *p = malloc(sz);
		if (!p)
			return ENOMEM;
		wl_tag_write(p, sz);
		c->blocks[i] = p;
		c->sizes[i] = (uint32_t)sz;
	}
	return 0;
}

/* One free+malloc pair, timed when the sampling countdown runs out. */
static inline int one_op(struct chain *c, bool latency)
{
	unsigned idx = (unsigned)rng_below(&c->rng, c->run->cfg->chunks);
	uint64_t sz = pick_size(c);
	void *old = c->blocks[idx];
	wl_tag_check(old, c->sizes[idx], "churn");
	void *p;
	if (latency && --c->lat_countdown == 0) {
		uint64_t t0 = wl_now_ns();
		free(old);
		uint64_t t1 = wl_now_ns();
		p = malloc(sz);
		uint64_t t2 = wl_now_ns();
		lat_record(c->lat_free, t1 - t0);
		if (lat_record(c->lat_malloc, t2 - t1)) {
			/* Both buffers are full at once: thin them, sample half as often. */
			lat_halve(c->lat_free);
			lat_halve(c->lat_malloc);
			c->lat_period *= 2;
		}
		c->lat_countdown = c->lat_period;
	} else {
		free(old);
		p = malloc(sz);
	}
	if (!p) {
		c->blocks[idx] = NULL;
		return ENOMEM;
	}
	wl_tag_write(p, sz);
	c->blocks[idx] = p;
	c->sizes[idx] = (uint32_t)sz;
	return 0;
}

static void chain_end(struct chain *c, int error)
{
	struct churn *run = c->run;
	pthread_mutex_lock(&run->lock);
	c->last = pthread_self();
	c->error = error;
	c->done = true;
	run->chains_done++;
	if (error)
		atomic_store(&run->stop, true);
	pthread_cond_broadcast(&run->cond);
	pthread_mutex_unlock(&run->lock);
}

static void *chain_thread(void *arg)
{
	struct chain *c = arg;
	struct churn *run = c->run;
	int error = 0;

	if (c->has_prev) {
		pthread_join(c->prev, NULL);
	} else {
		error = warm_up(c);
		pthread_mutex_lock(&run->lock);
		run->chains_ready++;
		pthread_cond_broadcast(&run->cond);
		while (!run->go)
			pthread_cond_wait(&run->cond, &run->lock);
		pthread_mutex_unlock(&run->lock);
		if (error) {
			chain_end(c, error);
			return NULL;
		}
	}
	c->generations++;

	bool latency = c->lat_malloc != NULL;
	unsigned rounds = run->cfg->rounds;
	uint64_t ops = 0;
	while (ops < rounds && !atomic_load_explicit(&run->stop, memory_order_relaxed)) {
		error = one_op(c, latency);
		if (error)
			break;
		ops++;
	}
	c->ops += ops;

	if (error || atomic_load_explicit(&run->stop, memory_order_relaxed)) {
		chain_end(c, error);
		return NULL;
	}
	pthread_t next;
	c->prev = pthread_self();
	c->has_prev = true;
	error = pthread_create(&next, NULL, chain_thread, c);
	if (error) {
		chain_end(c, error);
		return NULL;
	}
	/* c now belongs to the successor; it joins this thread. */
	return NULL;
}

static void wait_chains(struct churn *run, unsigned started)
{
	pthread_mutex_lock(&run->lock);
	while (run->chains_done < started)
		pthread_cond_wait(&run->cond, &run->lock);
	pthread_mutex_unlock(&run->lock);
	for (unsigned i = 0; i < started; i++)
		pthread_join(run->chains[i].last, NULL);
}

static int chains_setup(struct churn *run)
{
	const struct wl_cfg *cfg = run->cfg;
	run->chains = wl_map(cfg->threads * sizeof *run->chains);
	if (!run->chains)
		return -1;
	uint64_t seeder = cfg->seed;
	for (unsigned i = 0; i < cfg->threads; i++) {
		struct chain *c = &run->chains[i];
		c->run = run;
		c->index = i;
		c->blocks = wl_map(cfg->chunks * sizeof *c->blocks);
		c->sizes = wl_map(cfg->chunks * sizeof *c->sizes);
		if (!c->blocks || !c->sizes)
			return -1;
		c->rng = splitmix64(&seeder) | 1; /* xorshift needs a non-zero state */
		if (cfg->latency) {
			c->lat_malloc = lat_buf_new(LAT_CAPACITY);
			c->lat_free = lat_buf_new(LAT_CAPACITY);
			if (!c->lat_malloc || !c->lat_free)
				return -1;
			c->lat_period = cfg->sample;
			c->lat_countdown = cfg->sample;
		}
	}
	return 0;
}

static void chains_teardown(struct churn *run)
{
	const struct wl_cfg *cfg = run->cfg;
	if (!run->chains)
		return;
	for (unsigned i = 0; i < cfg->threads; i++) {
		struct chain *c = &run->chains[i];
		if (c->blocks) {
			for (unsigned k = 0; k < cfg->chunks; k++)
				free(c->blocks[k]);
			wl_unmap(c->blocks, cfg->chunks * sizeof *c->blocks);
		}
		if (c->sizes)
			wl_unmap(c->sizes, cfg->chunks * sizeof *c->sizes);
		lat_buf_free(c->lat_malloc);
		lat_buf_free(c->lat_free);
	}
	wl_unmap(run->chains, cfg->threads * sizeof *run->chains);
}

static void collect(struct churn *run, struct wl_result *res, double elapsed)
{
	const struct wl_cfg *cfg = run->cfg;
	memset(res, 0, sizeof *res);
	for (unsigned i = 0; i < cfg->threads; i++) {
		res->ops += run->chains[i].ops;
		res->threads_created += run->chains[i].generations;
	}
	/* counters and RSS before the bench frees its leftovers */
	wl_finish_elapsed(res, elapsed);
	if (cfg->latency) {
		struct lat_buf *bufs[2 * LARSON_MAX_THREADS];
		for (unsigned i = 0; i < cfg->threads; i++)
			bufs[i] = run->chains[i].lat_malloc;
		lat_summarise(bufs, cfg->threads, &res->lat_malloc);
		for (unsigned i = 0; i < cfg->threads; i++)
			bufs[i] = run->chains[i].lat_free;
		lat_summarise(bufs, cfg->threads, &res->lat_free);
		res->has_latency = true;
	}
}

int churn_run(const struct wl_cfg *cfg, struct wl_result *res)
{
	struct churn run = { .cfg = cfg };
	int rc = -1;
	unsigned started = 0;

	atomic_init(&run.stop, false);
	pthread_mutex_init(&run.lock, NULL);
	pthread_cond_init(&run.cond, NULL);
	if (chains_setup(&run) != 0) {
		opt_error("churn: out of memory setting up %u threads", cfg->threads);
		goto out;
	}
	for (; started < cfg->threads; started++) {
		pthread_t t;
		int e = pthread_create(&t, NULL, chain_thread, &run.chains[started]);
		if (e) {
			opt_error("churn: cannot start thread %u: %s", started, strerror(e));
			break;
		}
	}
	if (started < cfg->threads)
		atomic_store(&run.stop, true);
	pthread_mutex_lock(&run.lock);
	while (run.chains_ready < started)
		pthread_cond_wait(&run.cond, &run.lock);
	run.go = true;
	pthread_cond_broadcast(&run.cond);
	pthread_mutex_unlock(&run.lock);
	if (started < cfg->threads) {
		wait_chains(&run, started);
		goto out;
	}
	uint64_t t0 = wl_now_ns();
	wl_sleep(cfg->seconds);
	atomic_store(&run.stop, true);
	wait_chains(&run, started);
	double elapsed = (double)(wl_now_ns() - t0) / 1e9;

	rc = 0;
	for (unsigned i = 0; i < cfg->threads; i++) {
		if (run.chains[i].error) {
			opt_error("churn: thread chain %u failed: %s", i,
				  strerror(run.chains[i].error));
			rc = -1;
		}
	}
	if (rc == 0)
		collect(&run, res, elapsed);
out:
	chains_teardown(&run);
	pthread_cond_destroy(&run.cond);
	pthread_mutex_destroy(&run.lock);
	return rc;
}
