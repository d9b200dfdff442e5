/*
 * stress_threads.c - threaded allocation stress with a content check on
 * every block.
 *
 * Worker threads allocate blocks of random sizes (mostly 8..32768, some
 * large, some calloc'ed or aligned), fill each with a pattern derived from
 * (seed, block id), and send them to other threads' mailbox rows; each
 * thread frees (or reallocs and sends on) what arrives in its own row, so
 * most blocks are freed by a thread other than the one that made them.  Workers run in generations: each worker slot is
 * refilled with a new thread as soon as the previous one exits, so blocks
 * of exited threads are freed by new ones (Larson's pattern), and a thread
 * key destructor allocates and frees after the allocator's own one.  Every
 * block's contents are verified before it is freed or resized.
 *
 * The random choices of each thread are fixed by (seed, generation, slot);
 * the interleaving is not.  On failure the seed is printed with the
 * command line to repeat the run.  The accounting check at the end asks
 * hakmem's counters (blocks in use per class, large blocks, bytes in use)
 * to return exactly to where they started.
 *
 * Usage: stress_threads [--seed N] [--threads N] [--generations N]
 *                       [--ops N] [--slots N (per thread)] [--large-permille N]
 *                       [--max-large BYTES] [--quiet]
 */
#include "config.h"

#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hakmem.h"
#include "testutil.h"

#define DEFAULT_SEED 0x5eed2026u
#define LOCAL_RING 16
#define MAX_THREADS 64
#define ALIGN_MAX_SHIFT 12 /* aligned blocks: 16 .. 4096 */

static struct {
	uint64_t seed;
	unsigned threads, generations, slots, large_permille;
	uint64_t ops;
	size_t max_large;
	int quiet;
} opt = {
	.seed = DEFAULT_SEED,
	.threads = 4,
	.generations = 6,
	.ops = 40000,
	.slots = 2048, /* per thread: holds a time slice of sends */
	.large_permille = 5,
	.max_large = (size_t)256 << 10,
};

/* A live block: its owner-independent description. */
struct rec {
	char *p;
	size_t size;
	uint64_t id;
	unsigned maker; /* worker number (generation * threads + slot) */
};

struct mailbox {
	pthread_mutex_t lock;
	struct rec r; /* r.p == NULL when empty */
};

static struct mailbox *boxes; /* threads rows of slots */
static size_t nboxes;
static _Atomic uint64_t n_allocs, n_frees, n_cross_frees, n_reallocs, n_bytes;

struct worker {
	pthread_t tid;
	unsigned gen, slot, number;
	struct tu_rng rng;
	uint64_t next_id;
	struct rec ring[LOCAL_RING];
	unsigned ring_n;
};

static pthread_key_t exit_key;

static uint64_t block_key(uint64_t id)
{
	return opt.seed ^ tu_mix64(id);
}

static void check_rec(const struct rec *r, const char *when)
{
	size_t off = tu_pattern_check(r->p, r->size, block_key(r->id));
	if (off != SIZE_MAX)
		TU_FAIL("block id %#" PRIx64 " (%zu bytes at %p, made by worker %u) "
			"corrupted at offset %zu %s", r->id, r->size, (void *)r->p,
			r->maker, off, when);
}

static void release(struct worker *w, struct rec *r)
{
	check_rec(r, "before free");
	free(r->p);
	atomic_fetch_add_explicit(&n_frees, 1, memory_order_relaxed);
	if (r->maker != w->number)
		atomic_fetch_add_explicit(&n_cross_frees, 1, memory_order_relaxed);
	r->p = NULL;
}

static size_t pick_size(struct tu_rng *rng)
{
	if (tu_rng_range(rng, 1, 1000) <= opt.large_permille)
		return (size_t)tu_rng_range(rng, 32769, opt.max_large > 32769 ? opt.max_large : 32769);
	/* log-uniform over 8..32768: every class gets traffic */
	unsigned e = (unsigned)tu_rng_range(rng, 3, 15);
	size_t hi = (size_t)1 << e, lo = e == 3 ? 8 : hi / 2 + 1;
	return (size_t)tu_rng_range(rng, lo, hi);
}

/* Allocate one block with a random entry point and fill it. */
static struct rec make_block(struct worker *w)
{
	struct rec r = {
		.size = pick_size(&w->rng),
		.id = ((uint64_t)w->number << 40) | w->next_id++,
		.maker = w->number,
	};
	unsigned how = (unsigned)tu_rng_range(&w->rng, 0, 19);
	if (how == 0) {
		r.p = calloc(1, r.size);
		if (r.p && !tu_all_zero(r.p, r.size))
			TU_FAIL("calloc(1, %zu) = %p is not zeroed", r.size, (void *)r.p);
	} else if (how == 1) {
		size_t al = (size_t)1 << tu_rng_range(&w->rng, 4, ALIGN_MAX_SHIFT);
		void *p = NULL;
		if (posix_memalign(&p, al, r.size) != 0)
			p = NULL;
		r.p = p;
		if (p && (uintptr_t)p % al)
			TU_FAIL("posix_memalign(%zu, %zu) = %p misaligned", al, r.size, p);
	} else {
		r.p = malloc(r.size);
	}
	if (!r.p)
		TU_FAIL("allocation of %zu bytes failed (how %u)", r.size, how);
	if (how == 2 && malloc_usable_size(r.p) < r.size)
		TU_FAIL("malloc_usable_size(%p) = %zu < %zu", (void *)r.p,
			malloc_usable_size(r.p), r.size);
	tu_pattern_fill(r.p, r.size, block_key(r.id));
	atomic_fetch_add_explicit(&n_allocs, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&n_bytes, r.size, memory_order_relaxed);
	return r;
}

/* The mailbox row of worker slot s: other threads send into it, the
 * thread in slot s receives (frees) from it. */
static struct mailbox *inbox(unsigned s)
{
	return boxes + (size_t)s * opt.slots;
}

#define PROBE 8 /* slots looked at per send or receive */

/* A slot other than the sender's (its own when it is alone). */
static unsigned other_slot(struct worker *w)
{
	if (opt.threads == 1)
		return 0;
	return (w->slot + 1 + (unsigned)tu_rng_range(&w->rng, 0, opt.threads - 2)) %
	       opt.threads;
}

/* Send r to another thread's inbox, into an empty slot if one of PROBE
 * consecutive slots is; otherwise displace a block and free it. */
static void send_block(struct worker *w, struct rec r)
{
	struct mailbox *row = inbox(other_slot(w));
	unsigned start = (unsigned)tu_rng_range(&w->rng, 0, opt.slots - 1);
	struct rec old = { .p = NULL };
	for (unsigned i = 0; i < PROBE; i++) {
		struct mailbox *b = &row[(start + i) % opt.slots];
		pthread_mutex_lock(&b->lock);
		if (!b->r.p || i == PROBE - 1) {
			old = b->r;
			b->r = r;
			pthread_mutex_unlock(&b->lock);
			break;
		}
		pthread_mutex_unlock(&b->lock);
	}
	if (old.p)
		release(w, &old);
}

/* Take a block from this thread's inbox: the first of PROBE consecutive
 * slots that holds one. */
static struct rec receive(struct worker *w)
{
	struct mailbox *row = inbox(w->slot);
	unsigned start = (unsigned)tu_rng_range(&w->rng, 0, opt.slots - 1);
	struct rec r = { .p = NULL };
	for (unsigned i = 0; i < PROBE && !r.p; i++) {
		struct mailbox *b = &row[(start + i) % opt.slots];
		pthread_mutex_lock(&b->lock);
		r = b->r;
		b->r.p = NULL;
		pthread_mutex_unlock(&b->lock);
	}
	return r;
}

/* Resize a received block and send it on. */
static void resize_one(struct worker *w)
{
	struct rec r = receive(w);
	if (!r.p)
		return;
	check_rec(&r, "before realloc");
	size_t n = pick_size(&w->rng);
	char *q = realloc(r.p, n);
	if (!q)
		TU_FAIL("realloc(%p, %zu) failed", (void *)r.p, n);
	size_t keep = n < r.size ? n : r.size;
	size_t off = tu_pattern_check(q, keep, block_key(r.id));
	if (off != SIZE_MAX)
		TU_FAIL("realloc of block id %#" PRIx64 " %zu -> %zu bytes lost contents "
			"at offset %zu", r.id, r.size, n, off);
	r.p = q;
	r.size = n;
	tu_pattern_fill(q, n, block_key(r.id));
	atomic_fetch_add_explicit(&n_reallocs, 1, memory_order_relaxed);
	send_block(w, r);
}

/* Runs after the allocator's own thread-exit work: allocation and free
 * must still work here. */
static void exit_destructor(void *arg)
{
	struct worker *w = arg;
	for (unsigned i = 0; i < 8; i++) {
		struct rec r = make_block(w);
		if (i % 2)
			release(w, &r);
		else
			send_block(w, r);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	pthread_setspecific(exit_key, w);
	for (uint64_t op = 0; op < opt.ops; op++) {
		unsigned what = (unsigned)tu_rng_range(&w->rng, 0, 99);
		/* receive more often than send, so that inboxes stay sparse
		 * and few sends displace (and free) a block themselves */
		if (what < 40) {
			send_block(w, make_block(w));
		} else if (what < 85) {
			struct rec r = receive(w);
			if (r.p)
				release(w, &r);
		} else if (what < 93) {
			if (w->ring_n == LOCAL_RING) { /* free the oldest here */
				release(w, &w->ring[0]);
				memmove(w->ring, w->ring + 1, sizeof w->ring[0] * (LOCAL_RING - 1));
				w->ring_n--;
			}
			w->ring[w->ring_n++] = make_block(w);
		} else {
			resize_one(w);
		}
	}
	/* leave half of the local blocks to other (later) threads */
	for (unsigned i = 0; i < w->ring_n; i++) {
		if (i % 2)
			send_block(w, w->ring[i]);
		else
			release(w, &w->ring[i]);
	}
	w->ring_n = 0;
	return NULL;
}

static void *warm_thread(void *arg)
{
	free(malloc(100));
	return arg;
}

/* Let glibc and hakmem make, before the first count, the bookkeeping the
 * run would otherwise make during it, so that the counts can be exact:
 * glibc keeps a TLS vector (malloc'ed) with each thread stack it caches,
 * and the cache fills with as many stacks as there are threads at once;
 * hakmem starts its purge thread (another stack and vector) once a large
 * block was freed, at the next allocation. */
static void warm_up(void)
{
	pthread_t t[MAX_THREADS];
	for (unsigned s = 0; s < opt.threads; s++)
		TU_CHECK(pthread_create(&t[s], NULL, warm_thread, NULL) == 0);
	for (unsigned s = 0; s < opt.threads; s++)
		TU_CHECK(pthread_join(t[s], NULL) == 0);
	free(malloc((size_t)1 << 20));
	free(malloc((size_t)1 << 20));
}

/* Every block the workers made was freed (the test's own counts say so):
 * hakmem's counts must say so too, exactly, class by class and for large
 * blocks, and they must have seen at least the test's allocations. */
static void check_accounting(const struct hak_stats *b, const struct hak_stats *a,
			     uint64_t allocs)
{
	uint64_t seen = a->large_allocs - b->large_allocs;
	for (uint32_t c = 0; c < a->num_classes; c++) {
		const struct hak_class_stats *cb = &b->classes[c], *ca = &a->classes[c];
		seen += ca->allocs - cb->allocs;
		TU_CHECK(ca->in_use == cb->in_use,
			 "class %u (%" PRIu64 " B): %" PRIu64 " blocks in use before the run, "
			 "%" PRIu64 " after it freed every block", c, ca->block_size, cb->in_use,
			 ca->in_use);
	}
	TU_CHECK(a->large_allocs - b->large_allocs == a->large_frees - b->large_frees,
		 "large blocks: %" PRIu64 " allocated, %" PRIu64 " freed during the run",
		 a->large_allocs - b->large_allocs, a->large_frees - b->large_frees);
	TU_CHECK(a->large_bytes_in_use == b->large_bytes_in_use && a->bytes_in_use ==
		 b->bytes_in_use, "bytes in use moved across a run that freed every block: "
		 "%" PRIu64 " -> %" PRIu64 " (large %" PRIu64 " -> %" PRIu64 ")",
		 b->bytes_in_use, a->bytes_in_use, b->large_bytes_in_use,
		 a->large_bytes_in_use);
	TU_CHECK(seen >= allocs, "hakmem counted %" PRIu64 " allocations, the test made %"
		 PRIu64, seen, allocs);
}

static void usage(void)
{
	fprintf(stderr, "usage: stress_threads [--seed N] [--threads N] [--generations N] "
		"[--ops N] [--slots N] [--large-permille N] [--max-large BYTES] [--quiet]\n");
	exit(2);
}

static void parse_args(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--quiet")) {
			opt.quiet = 1;
			continue;
		}
		if (i + 1 >= argc)
			usage();
		uint64_t v = tu_parse_u64(a, argv[++i]);
		if (!strcmp(a, "--seed"))
			opt.seed = v;
		else if (!strcmp(a, "--threads") && v >= 1 && v <= MAX_THREADS)
			opt.threads = (unsigned)v;
		else if (!strcmp(a, "--generations") && v >= 1 && v <= 1000)
			opt.generations = (unsigned)v;
		else if (!strcmp(a, "--ops"))
			opt.ops = v;
		else if (!strcmp(a, "--slots") && v >= 1 && v <= (1u << 20))
			opt.slots = (unsigned)v;
		else if (!strcmp(a, "--large-permille") && v <= 1000)
			opt.large_permille = (unsigned)v;
		else if (!strcmp(a, "--max-large") && v >= 32769 && v <= ((uint64_t)1 << 30))
			opt.max_large = (size_t)v;
		else
			usage();
	}
}

int main(int argc, char **argv)
{
	struct hak_stats before, after;
	static struct worker workers[MAX_THREADS];

	parse_args(argc, argv);
	tu_set_context("repeat with: stress_threads --seed %" PRIu64 " --threads %u "
		       "--generations %u --ops %" PRIu64 " --slots %u --large-permille %u "
		       "--max-large %zu", opt.seed, opt.threads, opt.generations, opt.ops,
		       opt.slots, opt.large_permille, opt.max_large);
	tu_require_hakmem_malloc();
	tu_context_on_abort();
	TU_CHECK(pthread_key_create(&exit_key, exit_destructor) == 0);
	nboxes = (size_t)opt.slots * opt.threads;
	boxes = calloc(nboxes, sizeof *boxes);
	TU_CHECK(boxes != NULL);
	for (size_t i = 0; i < nboxes; i++)
		pthread_mutex_init(&boxes[i].lock, NULL);
	warm_up();
	TU_CHECK(hak_stats_get(&before, sizeof before) == 0);

	for (unsigned g = 0; g < opt.generations; g++) {
		for (unsigned s = 0; s < opt.threads; s++) {
			struct worker *w = &workers[s];
			if (g > 0)
				TU_CHECK(pthread_join(w->tid, NULL) == 0);
			memset(w, 0, sizeof *w);
			w->gen = g;
			w->slot = s;
			w->number = g * opt.threads + s;
			tu_rng_seed(&w->rng, opt.seed ^ tu_mix64(w->number + 1));
			TU_CHECK(pthread_create(&w->tid, NULL, worker_main, w) == 0);
		}
	}
	for (unsigned s = 0; s < opt.threads; s++)
		TU_CHECK(pthread_join(workers[s].tid, NULL) == 0);

	/* the main thread frees what is left, made by threads now gone */
	struct worker self = { .number = UINT32_MAX };
	unsigned left = 0;
	for (size_t i = 0; i < nboxes; i++)
		if (boxes[i].r.p) {
			release(&self, &boxes[i].r);
			left++;
		}
	TU_CHECK(hak_stats_get(&after, sizeof after) == 0);
	for (size_t i = 0; i < nboxes; i++)
		pthread_mutex_destroy(&boxes[i].lock);
	free(boxes);

	uint64_t allocs = atomic_load(&n_allocs), frees = atomic_load(&n_frees);
	TU_CHECK(allocs == frees, "%" PRIu64 " blocks allocated, %" PRIu64 " freed", allocs,
		 frees);
	check_accounting(&before, &after, allocs);
	if (opt.threads > 1)
		TU_CHECK(after.remote_frees > before.remote_frees,
			 "no remote free counted by hakmem in a cross-thread run");
	if (!opt.quiet)
		printf("stress_threads: ok seed=%" PRIu64 " threads=%u generations=%u "
		       "allocs=%" PRIu64 " reallocs=%" PRIu64 " cross-thread frees=%.1f%% "
		       "bytes=%" PRIu64 " left-in-mailboxes=%u | hakmem: remote_frees=%" PRIu64
		       " adoptions=%" PRIu64 " pending_enqueued=%" PRIu64 " pending_drained=%"
		       PRIu64 " page_reuse=%.1f%%\n", opt.seed, opt.threads, opt.generations,
		       allocs, atomic_load(&n_reallocs),
		       frees ? 100.0 * (double)atomic_load(&n_cross_frees) / (double)frees : 0.0,
		       atomic_load(&n_bytes), left, after.remote_frees - before.remote_frees,
		       after.adoptions - before.adoptions,
		       after.pending_enqueued - before.pending_enqueued,
		       after.pending_drained - before.pending_drained,
		       hak_stats_page_reuse_pct(&after));
	return 0;
}
