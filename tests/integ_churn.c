/*
 * integ_churn.c - many short-lived threads, and many live ones.
 *
 * Claims: 10,000 short-lived threads that allocate and free across threads
 * leave the memory of the process bounded; a process with more than 1,000
 * live threads works, also past the 1024 per-thread slots of the stats
 * segment (lib/statseg.h), whose heaps count in private memory and fold
 * into the overflow slot when they exit.
 *
 * Churn: CHURN_THREADS threads, at most LANES alive at a time (the main
 * thread joins the oldest before it starts the next).  Each takes the
 * oldest batch of blocks that earlier threads handed on (its owner may
 * still run or may have exited), checks every block, frees those that have
 * travelled twice and half of the others (frees into other threads'
 * pages), allocates blocks of mixed sizes (small, 2..32 KiB, a few large),
 * hands its new blocks and the rest of the received ones on as a batch,
 * frees its private blocks and exits.
 *
 * RSS bounded: after the first CHURN_EARLY threads and after all of them,
 * with all workers joined, the test reads VmRSS and hakmem's mapped bytes,
 * then trims (hak_malloc_trim) and reads both again.  The later values may
 * exceed the earlier ones by at most a fixed margin (the *_MARGIN below),
 * above what the live data, the span cache and chance page fragmentation
 * add (up to 1 MiB of RSS after a trim, 8 MiB mapped - two arenas - in
 * 20 runs), and below what the 9,000 later threads leaking 1 KiB each would
 * (9 MiB of RSS); a 64 KiB page each is 560 MiB, a heap each (44 KiB,
 * five to a 256 KiB chunk) 450 MiB mapped.  `integ_churn --leak BYTES`
 * makes every thread leak a block of BYTES, to show that the check catches
 * it: test-churn-leak.sh runs it with 1024 and wants this check to fail.
 * This holds for the default strategy, adopt: with HAKMEM_DRAIN=owner,
 * roundrobin or hybrid, which never take another thread's pages, the pages
 * of exited threads that still hold handed-on blocks are never reused,
 * and the check fails by about 95 KiB of RSS per thread.
 *
 * Live: LIVE_THREADS threads (small stacks) each allocate blocks of their
 * own four sizes, free some, publish some, and wait on a barrier; the main
 * thread then checks that hak_stats_get counts every live block of the
 * classes of 4 KiB and up exactly (heaps without a slot included); each
 * thread frees the published blocks of the next one, waits until all have
 * done so, frees its own and exits.  Afterwards bytes in use and the
 * number of threads owning a heap are back at their start values.
 *
 * glibc keeps the stacks of exited threads in a cache, with their TLS
 * blocks, which it callocs from hakmem; a warm-up wave of idle threads
 * fills that cache before the counters are read, so that the start and the
 * end see the same cached blocks.
 */
#include "config.h"

#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hakmem.h"
#include "testutil.h"

#define MiB ((uint64_t)1 << 20)

#define CHURN_THREADS 10000
#define CHURN_EARLY 1000
#define LANES 4
#define LIVE_THREADS 1100 /* more than the 1024 slots of the stats segment */
#define STACK_SIZE ((size_t)64 << 10)
/* hang guards, not time limits: a deadlock must end the test */
#define HANG_GUARD_S 600
#define CHILD_HANG_GUARD_S 60

/* The growth allowed from the early to the final measure, raw and after a
 * trim.  The span tier may keep 64 MiB (HAKMEM_LARGE_CACHE_MB) of freed
 * memory in the raw figures, little of it resident (the test touches 2 KiB
 * of each large block); arenas are mapped 4 MiB at a time; live data and
 * fragmentation vary by about 1 MiB.  9,000 threads leaking 1 KiB each
 * (9 MiB) exceed the RSS after a trim.  "Mapped" leaves out the span
 * tier's regions: address space reserved per shard (one per CPU), of which
 * only what is used and kept is memory, and that shows in the RSS. */
#define RAW_RSS_MARGIN (24 * MiB)
#define RAW_MAPPED_MARGIN (80 * MiB)
#define TRIM_RSS_MARGIN (6 * MiB)
#define TRIM_MAPPED_MARGIN (16 * MiB)

struct hblk {
	char *p;
	size_t n;
	uint64_t key;
	unsigned hops; /* batches it travelled in */
};

/* Blocks above SPARSE_MIN hold the pattern on their first and last
 * SPARSE_EDGE bytes only: the large ones would dominate the run. */
#define SPARSE_MIN ((size_t)8 << 10)
#define SPARSE_EDGE ((size_t)1 << 10)

static void blk_fill(struct hblk *b, uint64_t key)
{
	b->key = key;
	if (b->n <= SPARSE_MIN) {
		tu_pattern_fill(b->p, b->n, key);
		return;
	}
	tu_pattern_fill(b->p, SPARSE_EDGE, key);
	tu_pattern_fill(b->p + b->n - SPARSE_EDGE, SPARSE_EDGE, key + 1);
}

static void blk_check(const struct hblk *b, const char *what)
{
	if (b->n <= SPARSE_MIN) {
		tu_pattern_expect(b->p, b->n, b->key, what);
		return;
	}
	tu_pattern_expect(b->p, SPARSE_EDGE, b->key, what);
	tu_pattern_expect(b->p + b->n - SPARSE_EDGE, SPARSE_EDGE, b->key + 1, what);
}

static void blk_free(struct hblk *b, const char *what)
{
	blk_check(b, what);
	free(b->p);
	b->p = NULL;
}

static void stats(struct hak_stats *st)
{
	TU_CHECK(hak_stats_get(st, sizeof *st) == 0);
}

static uint64_t vm_rss(void)
{
	char buf[128] = { 0 };
	unsigned long long size, rss;
	int fd = open("/proc/self/statm", O_RDONLY);
	TU_CHECK(fd >= 0);
	TU_CHECK(read(fd, buf, sizeof buf - 1) > 0);
	close(fd);
	TU_CHECK(sscanf(buf, "%llu %llu", &size, &rss) == 2);
	return rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void thread_attr(pthread_attr_t *a)
{
	long min = sysconf(_SC_THREAD_STACK_MIN);
	TU_CHECK(pthread_attr_init(a) == 0);
	TU_CHECK(pthread_attr_setstacksize(a, min > (long)STACK_SIZE ? (size_t)min
					      : STACK_SIZE) == 0);
}

static void *idle_thread(void *arg)
{
	return arg;
}

/* Create and join nthreads idle threads. */
static void idle_wave(unsigned nthreads)
{
	static pthread_t t[LIVE_THREADS];
	pthread_attr_t attr;
	thread_attr(&attr);
	for (unsigned i = 0; i < nthreads; i++)
		TU_CHECK(pthread_create(&t[i], &attr, idle_thread, NULL) == 0);
	for (unsigned i = 0; i < nthreads; i++)
		TU_CHECK(pthread_join(t[i], NULL) == 0);
	pthread_attr_destroy(&attr);
}

/* Start hakmem's background thread (an allocation starts it once 8 MiB
 * are mapped, or after a free asked for a purge), then fill glibc's stack
 * cache (see the opening comment). */
static void warm_up(void)
{
	free(malloc(16 * MiB));
	free(malloc(16 * MiB));
	idle_wave(LIVE_THREADS);
}

/* Thread teardown before the background thread runs: glibc frees the TLS
 * blocks of exited threads under its stack-cache lock, those frees empty
 * pages and ask for a purge, and nothing there may start the background
 * thread (pthread_create takes the same lock: hakmem deadlocked here).  In
 * a forked child, where hakmem's background thread has not started yet. */
static void teardown_child(void *unused)
{
	(void)unused;
	idle_wave(LIVE_THREADS);
}

static void test_teardown(void)
{
	struct tu_child c;
	tu_run_child(teardown_child, NULL, CHILD_HANG_GUARD_S, &c);
	if (WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGALRM)
		TU_FAIL("%d threads created and joined: hung (a deadlock?)", LIVE_THREADS);
	TU_CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0,
		 "thread teardown child: status %#x, stderr: %s", c.status, c.err);
	printf("ok - %d threads created and joined before the background thread started\n",
	       LIVE_THREADS);
}

/* Churn ----------------------------------------------------------------------- */

#define NEW_HANDED 16  /* blocks a thread allocates and hands on */
#define NEW_PRIVATE 8  /* blocks it allocates and frees itself */
#define MAX_BATCH 64
#define RING 64

struct batch {
	unsigned n;
	struct hblk b[MAX_BATCH];
};

/* Batches handed on, oldest first. */
static struct {
	pthread_mutex_t mu;
	struct batch q[RING];
	unsigned head, count;
} ring = { .mu = PTHREAD_MUTEX_INITIALIZER };

static size_t leak_bytes; /* --leak: what every churn thread leaks */

static bool ring_pop(struct batch *out)
{
	bool got = false;
	pthread_mutex_lock(&ring.mu);
	if (ring.count) {
		*out = ring.q[ring.head];
		ring.head = (ring.head + 1) % RING;
		ring.count--;
		got = true;
	}
	pthread_mutex_unlock(&ring.mu);
	return got;
}

static void ring_push(const struct batch *in)
{
	pthread_mutex_lock(&ring.mu);
	TU_CHECK(ring.count < RING, "too many batches in flight");
	ring.q[(ring.head + ring.count) % RING] = *in;
	ring.count++;
	pthread_mutex_unlock(&ring.mu);
}

/* Small 60%, 2..32 KiB 37%, large (40..256 KiB) 3%. */
static size_t churn_size(struct tu_rng *r)
{
	uint64_t k = tu_rng_range(r, 0, 99);
	if (k < 60)
		return (size_t)tu_rng_range(r, 1, 1024);
	if (k < 97)
		return (size_t)tu_rng_range(r, 2048, 32768);
	return (size_t)tu_rng_range(r, 40000, 256 << 10);
}

static void alloc_blk(struct hblk *b, struct tu_rng *r)
{
	b->n = churn_size(r);
	b->p = malloc(b->n);
	TU_CHECK(b->p != NULL, "malloc(%zu) failed in a churn thread", b->n);
	b->hops = 0;
	blk_fill(b, tu_rng_next(r));
}

static void *churn_thread(void *arg)
{
	uint64_t idx = (uintptr_t)arg;
	struct tu_rng r;
	struct batch in, out = { .n = 0 };
	struct hblk priv[NEW_PRIVATE], dying[MAX_BATCH];
	unsigned ndying = 0;

	tu_rng_seed(&r, idx);
	if (!ring_pop(&in))
		in.n = 0;
	/* what came from earlier threads: checked; freed after travelling
	 * twice, else half the time; the rest travels on */
	for (unsigned i = 0; i < in.n; i++) {
		struct hblk *b = &in.b[i];
		blk_check(b, "received block");
		if (b->hops >= 2 || tu_rng_range(&r, 0, 1))
			dying[ndying++] = *b;
		else
			out.b[out.n++] = *b;
	}
	for (unsigned i = 0; i < NEW_PRIVATE; i++)
		alloc_blk(&priv[i], &r);
	for (unsigned i = 0; i < NEW_HANDED; i++) {
		TU_CHECK(out.n < MAX_BATCH, "batch overflow");
		alloc_blk(&out.b[out.n++], &r);
	}
	for (unsigned i = 0; i < ndying; i++)
		blk_free(&dying[i], "block freed by a later thread");
	for (unsigned i = 0; i < out.n; i++)
		out.b[i].hops++;
	ring_push(&out);
	if (leak_bytes) {
		char *volatile leak = malloc(leak_bytes);
		TU_CHECK(leak != NULL);
		memset(leak, 0x5a, leak_bytes);
	}
	for (unsigned i = 0; i < NEW_PRIVATE; i++)
		blk_free(&priv[i], "private block");
	return NULL;
}

struct usage {
	uint64_t rss, mapped, rss_trim, mapped_trim;
};

static void measure(struct usage *u, const char *when)
{
	struct hak_stats st;
	u->rss = vm_rss();
	stats(&st);
	u->mapped = st.mapped_bytes - st.span_mapped_bytes;
	hak_malloc_trim(0);
	u->rss_trim = vm_rss();
	stats(&st);
	u->mapped_trim = st.mapped_bytes - st.span_mapped_bytes;
	printf("# %s: RSS %" PRIu64 " KiB, mapped %" PRIu64 " KiB; after trim: RSS %" PRIu64
	       " KiB, mapped %" PRIu64 " KiB\n", when, u->rss >> 10, u->mapped >> 10,
	       u->rss_trim >> 10, u->mapped_trim >> 10);
}

static void bounded(uint64_t early, uint64_t late, uint64_t margin, const char *what)
{
	TU_CHECK(late <= early + margin,
		 "%s grew from %" PRIu64 " MiB after %d threads to %" PRIu64
		 " MiB after %d (allowed: +%" PRIu64 " MiB)", what, early / MiB,
		 CHURN_EARLY, late / MiB, CHURN_THREADS, margin / MiB);
}

static void join_lanes(pthread_t *tid, bool *alive)
{
	for (unsigned l = 0; l < LANES; l++)
		if (alive[l]) {
			TU_CHECK(pthread_join(tid[l], NULL) == 0);
			alive[l] = false;
		}
}

static void test_churn(void)
{
	pthread_t tid[LANES];
	bool alive[LANES] = { false };
	pthread_attr_t attr;
	struct usage early, late;
	struct hak_stats s0, s;
	struct batch b;

	stats(&s0);
	thread_attr(&attr);
	for (unsigned t = 0; t < CHURN_THREADS; t++) {
		unsigned l = t % LANES;
		if (alive[l])
			TU_CHECK(pthread_join(tid[l], NULL) == 0);
		int e = pthread_create(&tid[l], &attr, churn_thread, (void *)(uintptr_t)t);
		TU_CHECK(e == 0, "pthread_create of churn thread %u: %s", t, strerror(e));
		alive[l] = true;
		if (t + 1 == CHURN_EARLY) {
			join_lanes(tid, alive);
			measure(&early, "after the first threads");
		}
	}
	join_lanes(tid, alive);
	measure(&late, "after all threads");
	pthread_attr_destroy(&attr);
	stats(&s);
	TU_CHECK(s.threads == s0.threads, "%u threads own a heap after the churn, %u before",
		 s.threads, s0.threads);
	bounded(early.rss, late.rss, RAW_RSS_MARGIN, "RSS");
	bounded(early.mapped, late.mapped, RAW_MAPPED_MARGIN, "mapped bytes");
	bounded(early.rss_trim, late.rss_trim, TRIM_RSS_MARGIN, "RSS after trim");
	bounded(early.mapped_trim, late.mapped_trim, TRIM_MAPPED_MARGIN,
		"mapped bytes after trim");

	/* the blocks still travelling */
	while (ring_pop(&b))
		for (unsigned i = 0; i < b.n; i++)
			blk_free(&b.b[i], "block left in a batch");
	stats(&s);
	TU_CHECK(s.bytes_in_use == s0.bytes_in_use,
		 "%" PRIu64 " bytes in use after the churn, %" PRIu64 " before",
		 s.bytes_in_use, s0.bytes_in_use);
	printf("# remote frees %" PRIu64 ", adoptions %" PRIu64 ", pages reused %" PRIu64
	       ", pages from the OS %" PRIu64 "\n", s.remote_frees - s0.remote_frees,
	       s.adoptions - s0.adoptions, s.pages_reused - s0.pages_reused,
	       s.pages_from_os - s0.pages_from_os);
	/* the frees really crossed threads: into live owners' pages (remote)
	 * or into exited threads' pages (claimed: adoptions) */
	TU_CHECK(s.remote_frees - s0.remote_frees + s.adoptions - s0.adoptions >= CHURN_THREADS,
		 "only %" PRIu64 " remote frees and %" PRIu64 " adoptions",
		 s.remote_frees - s0.remote_frees, s.adoptions - s0.adoptions);
	printf("ok - %d threads, %d at a time: bounded, nothing left in use\n",
	       CHURN_THREADS, LANES);
}

/* Live threads ---------------------------------------------------------------- */

#define LIVE_BLOCKS 24 /* allocated by each thread */
#define LIVE_FREED 8   /* ... freed at once */
#define LIVE_PUB 8     /* ... published for the next thread to free */
#define CHECKED_CLASS 4096 /* classes from this size up are counted exactly */

struct live_slot {
	struct hblk pub[LIVE_PUB];
	unsigned checked; /* live blocks of CHECKED_CLASS and up */
};
static struct live_slot slots[LIVE_THREADS];
static pthread_barrier_t all_published, all_checked, all_freed;

/* Each thread uses four sizes of its own (two small, two 4..32 KiB). */
static size_t live_size(unsigned idx, unsigned k)
{
	static const size_t sizes[] = {
		16, 48, 100, 200, 500, 1000, 4096, 6000, 10000, 16384, 24000, 32768,
	};
	const unsigned n = sizeof sizes / sizeof sizes[0];
	return k < 2 ? sizes[(idx + 5 * k) % 6] : sizes[6 + (idx + 3 * k) % (n - 6)];
}

static void *live_thread(void *arg)
{
	unsigned idx = (unsigned)(uintptr_t)arg;
	struct tu_rng r;
	struct hblk mine[LIVE_BLOCKS];
	struct live_slot *s = &slots[idx], *next = &slots[(idx + 1) % LIVE_THREADS];

	tu_rng_seed(&r, 1000000 + idx);
	for (unsigned i = 0; i < LIVE_BLOCKS; i++) {
		mine[i].n = live_size(idx, i % 4);
		mine[i].p = malloc(mine[i].n);
		TU_CHECK(mine[i].p != NULL, "live thread %u: malloc(%zu)", idx, mine[i].n);
		blk_fill(&mine[i], tu_rng_next(&r));
	}
	for (unsigned i = 0; i < LIVE_FREED; i++)
		blk_free(&mine[i], "live thread's own block");
	for (unsigned i = 0; i < LIVE_PUB; i++)
		s->pub[i] = mine[LIVE_FREED + i];
	s->checked = 0;
	for (unsigned i = LIVE_FREED; i < LIVE_BLOCKS; i++)
		s->checked += malloc_usable_size(mine[i].p) >= CHECKED_CLASS;
	pthread_barrier_wait(&all_published);
	pthread_barrier_wait(&all_checked);
	/* the next thread's published blocks: remote frees to a live owner */
	for (unsigned i = 0; i < LIVE_PUB; i++)
		blk_free(&next->pub[i], "block published by another live thread");
	pthread_barrier_wait(&all_freed);
	for (unsigned i = LIVE_FREED + LIVE_PUB; i < LIVE_BLOCKS; i++)
		blk_free(&mine[i], "live thread's kept block");
	/* and allocation still works in a heap whose pages took remote frees */
	for (unsigned i = 0; i < 4; i++) {
		struct hblk b = { .n = live_size(idx, i) };
		b.p = malloc(b.n);
		TU_CHECK(b.p != NULL);
		blk_fill(&b, tu_rng_next(&r));
		blk_free(&b, "live thread's last block");
	}
	return NULL;
}

static uint64_t checked_in_use(const struct hak_stats *st)
{
	uint64_t n = 0;
	for (unsigned c = 0; c < st->num_classes; c++)
		if (st->classes[c].block_size >= CHECKED_CLASS)
			n += st->classes[c].in_use;
	return n;
}

static void test_live(void)
{
	static pthread_t tid[LIVE_THREADS];
	pthread_attr_t attr;
	struct hak_stats s0, s;
	uint64_t expect = 0;

	stats(&s0);
	TU_CHECK(pthread_barrier_init(&all_published, NULL, LIVE_THREADS + 1) == 0);
	TU_CHECK(pthread_barrier_init(&all_checked, NULL, LIVE_THREADS + 1) == 0);
	TU_CHECK(pthread_barrier_init(&all_freed, NULL, LIVE_THREADS) == 0);
	thread_attr(&attr);
	for (unsigned i = 0; i < LIVE_THREADS; i++) {
		int e = pthread_create(&tid[i], &attr, live_thread, (void *)(uintptr_t)i);
		TU_CHECK(e == 0, "pthread_create of live thread %u: %s", i, strerror(e));
	}
	pthread_attr_destroy(&attr);
	pthread_barrier_wait(&all_published);
	stats(&s);
	for (unsigned i = 0; i < LIVE_THREADS; i++)
		expect += slots[i].checked;
	TU_CHECK(s.threads >= s0.threads + LIVE_THREADS, "%u threads own a heap, want %u + %d",
		 s.threads, s0.threads, LIVE_THREADS);
	TU_CHECK(checked_in_use(&s) == checked_in_use(&s0) + expect,
		 "%" PRIu64 " blocks of %d bytes and up in use with %d threads alive, want %"
		 PRIu64 " + %" PRIu64, checked_in_use(&s), CHECKED_CLASS, LIVE_THREADS,
		 checked_in_use(&s0), expect);
	printf("# %u threads own a heap; %" PRIu64 " blocks of %d bytes and up in use\n",
	       s.threads, expect, CHECKED_CLASS);
	pthread_barrier_wait(&all_checked);
	for (unsigned i = 0; i < LIVE_THREADS; i++)
		TU_CHECK(pthread_join(tid[i], NULL) == 0);
	pthread_barrier_destroy(&all_published);
	pthread_barrier_destroy(&all_checked);
	pthread_barrier_destroy(&all_freed);

	stats(&s);
	TU_CHECK(s.threads == s0.threads, "%u threads own a heap after the joins, %u before",
		 s.threads, s0.threads);
	TU_CHECK(checked_in_use(&s) == checked_in_use(&s0));
	TU_CHECK(s.bytes_in_use == s0.bytes_in_use,
		 "%" PRIu64 " bytes in use after the live threads, %" PRIu64 " before",
		 s.bytes_in_use, s0.bytes_in_use);
	printf("ok - %d live threads: every block checked, nothing left in use\n",
	       LIVE_THREADS);
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--leak") == 0)
		leak_bytes = (size_t)tu_parse_u64("--leak", argv[2]);
	else if (argc != 1)
		TU_FAIL("usage: integ_churn [--leak BYTES]");
	setvbuf(stdout, NULL, _IOLBF, BUFSIZ);
	tu_require_hakmem_malloc();
	/* (stdout's buffer is allocated now, before any count is read) */
	printf("# integ_churn: %d short-lived threads, then %d live ones\n", CHURN_THREADS,
	       LIVE_THREADS);
	alarm(HANG_GUARD_S);
	test_teardown();
	warm_up();
	test_churn();
	if (leak_bytes)
		return 0;
	test_live();
	printf("integ_churn: ok\n");
	return 0;
}
