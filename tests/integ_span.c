/*
 * integ_span.c - the span tier: blocks above 32 KiB up to
 * HAKMEM_SPAN_MAX_MB are carved from regions and kept when freed.
 *
 *   integ_span [all]  every case below, each in a forked child (a fresh
 *                     tier: the addresses they expect follow from it)
 *   integ_span keep   the keep bound (run it with
 *                     HAKMEM_PURGE_DELAY_MS=3600000 HAKMEM_LARGE_CACHE_MB=8
 *                     HAKMEM_SPAN_KEEP_PCT=100, as test-span.sh does)
 *   integ_span debt   fresh pages taken while freed memory waits send as
 *                     much of it back (HAKMEM_PURGE_DELAY_MS=3600000
 *                     HAKMEM_LARGE_CACHE_MB=8 HAKMEM_SPAN_KEEP_PCT=1000)
 *
 * Cases:
 *  - reuse: a freed span serves the next request that fits, at the same
 *    address, with no new mapping, counted as reused; with nothing in use,
 *    a trim purges the kept memory and unmaps the region;
 *  - fit: of the free spans that hold a request, the smallest (then the
 *    lowest address) serves it;
 *  - calloc: fresh pages are not written (RSS stays), reused ones are zeroed;
 *  - realloc: grows into the free span after the block and shrinks in place;
 *  - threads: blocks freed by other threads (each shard its own lock) are
 *    reused, contents intact under a 4-thread hand-off;
 *  - fork: a child reuses the parent's freed spans and keeps its live ones;
 *    forks while another thread allocates and frees large blocks.
 * keep: within the purge delay, freed span memory is kept up to
 * HAKMEM_SPAN_KEEP_PCT of the bytes in use (at least HAKMEM_LARGE_CACHE_MB);
 * beyond that it goes back to the OS without waiting.
 * debt: pages that get memory while more than HAKMEM_LARGE_CACHE_MB of
 * freed memory waits send as much of the oldest of it back.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hakmem.h"
#include "testutil.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define CHILD_TIMEOUT_S 120 /* hang guard */

static struct hak_stats stats(void)
{
	struct hak_stats st;
	TU_CHECK(hak_stats_get(&st, sizeof st) == 0);
	TU_CHECK(st.version >= 2 && st.size == sizeof st, "hak_stats version %u size %u",
		 st.version, st.size);
	return st;
}

static long rss_kb(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long size = 0, res = 0;
	TU_CHECK(f != NULL);
	TU_CHECK(fscanf(f, "%ld %ld", &size, &res) == 2);
	fclose(f);
	return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static char *alloc_filled(size_t n, uint64_t key)
{
	char *p = malloc(n);
	TU_CHECK(p != NULL, "malloc(%zu)", n);
	tu_pattern_fill(p, n, key);
	return p;
}

/* reuse ------------------------------------------------------------------ */

static void case_reuse(void *unused)
{
	(void)unused;
	char *p = alloc_filled(3 * MiB, 1);
	struct hak_stats s0 = stats();
	free(p);
	char *q = malloc(3 * MiB);
	struct hak_stats s1 = stats();
	TU_CHECK(q == p, "a freed 3 MiB span is not reused for 3 MiB: %p, then %p", (void *)p,
		 (void *)q);
	TU_CHECK(s1.mapped_bytes == s0.mapped_bytes, "mapped bytes %llu -> %llu",
		 (unsigned long long)s0.mapped_bytes, (unsigned long long)s1.mapped_bytes);
	TU_CHECK(s1.large_reused == s0.large_reused + 1, "large_reused %llu -> %llu",
		 (unsigned long long)s0.large_reused, (unsigned long long)s1.large_reused);
	/* a smaller request takes the front of the freed span */
	free(q);
	char *r = malloc(2 * MiB + 12345);
	TU_CHECK(r == p, "a 2 MiB request does not reuse the freed 3 MiB span");
	TU_CHECK(stats().mapped_bytes == s0.mapped_bytes);
	tu_pattern_fill(r, 2 * MiB + 12345, 2);
	tu_pattern_expect(r, 2 * MiB + 12345, 2, "reused span");
	free(r);
	/* nothing in use: a trim purges the kept memory and unmaps the idle
	 * region */
	TU_CHECK(stats().span_mapped_bytes > 0);
	malloc_trim(0);
	struct hak_stats s2 = stats();
	TU_CHECK(s2.span_kept_bytes == 0 && s2.span_mapped_bytes == 0,
		 "after a trim with no span in use: %llu bytes kept, %llu mapped",
		 (unsigned long long)s2.span_kept_bytes, (unsigned long long)s2.span_mapped_bytes);
	TU_CHECK(s2.mapped_bytes < s0.mapped_bytes, "mapped bytes %llu -> %llu after the trim",
		 (unsigned long long)s0.mapped_bytes, (unsigned long long)s2.mapped_bytes);
}

/* fit -------------------------------------------------------------------- */

static void case_fit(void *unused)
{
	(void)unused;
	/* free spans of 1, 2 and 1.5 MiB, kept apart by live blocks */
	char *a = alloc_filled(1 * MiB, 1), *sa = alloc_filled(40000, 2);
	char *b = alloc_filled(2 * MiB, 3), *sb = alloc_filled(40000, 4);
	char *c = alloc_filled(3 * MiB / 2, 5), *sc = alloc_filled(40000, 6);
	char *d = alloc_filled(3 * MiB / 2, 7), *sd = alloc_filled(40000, 8);
	free(b);
	free(c);
	free(a);
	free(d);
	/* 1.4 MiB: C and D fit best (equal), C is lower; 0.9 MiB: A; 1.9: B */
	char *x = malloc(1400 * KiB);
	TU_CHECK(x == c, "1.4 MiB went to %p, not the lowest best fit %p (A %p B %p D %p)",
		 (void *)x, (void *)c, (void *)a, (void *)b, (void *)d);
	char *y = malloc(900 * KiB);
	TU_CHECK(y == a, "0.9 MiB went to %p, not the best fit %p", (void *)y, (void *)a);
	char *z = malloc(1900 * KiB);
	TU_CHECK(z == b, "1.9 MiB went to %p, not the best fit %p", (void *)z, (void *)b);
	char *w = malloc(1400 * KiB);
	TU_CHECK(w == d, "1.4 MiB went to %p, not the remaining fit %p", (void *)w, (void *)d);
	/* too big for any: none of them */
	char *v = malloc(2 * MiB + 64 * KiB);
	TU_CHECK(v < a || v > sd, "2 MiB + 64 KiB placed inside the freed spans");
	tu_pattern_expect(sa, 40000, 2, "separator");
	tu_pattern_expect(sb, 40000, 4, "separator");
	tu_pattern_expect(sc, 40000, 6, "separator");
	tu_pattern_expect(sd, 40000, 8, "separator");
	free(v);
	free(w);
	free(x);
	free(y);
	free(z);
	free(sa);
	free(sb);
	free(sc);
	free(sd);
}

/* calloc ----------------------------------------------------------------- */

static void case_calloc(void *unused)
{
	(void)unused;
	const size_t n = 24 * MiB;
	long before = rss_kb();
	char *p = calloc(n / 8, 8);
	long after = rss_kb();
	TU_CHECK(p != NULL);
	/* fresh pages read as zero: calloc must not have written them */
	TU_CHECK(after - before < 2048, "calloc of %zu fresh bytes made %ld KiB resident",
		 n, after - before);
	TU_CHECK(tu_all_zero(p, n), "fresh calloc not zero");
	memset(p, 0xab, n);
	free(p);
	char *q = calloc(1, n);
	TU_CHECK(q == p, "the dirty span is not reused");
	TU_CHECK(tu_all_zero(q, n), "calloc of a reused span is not zeroed");
	/* a request that covers the dirty span and fresh pages after it */
	memset(q, 0xcd, n);
	free(q);
	char *r = calloc(1, n + 4 * MiB);
	TU_CHECK(tu_all_zero(r, n + 4 * MiB), "calloc over dirty and fresh pages is not zeroed");
	free(r);
}

/* realloc ---------------------------------------------------------------- */

static void case_realloc(void *unused)
{
	(void)unused;
	char *p = alloc_filled(1 * MiB, 1);
	char *q = alloc_filled(1 * MiB, 2);
	char *guard = alloc_filled(40000, 3);
	TU_CHECK(q > p && q < p + 2 * MiB, "blocks not carved in address order");
	free(q);
	struct hak_stats s0 = stats();
	char *g = realloc(p, 1 * MiB + 900 * KiB);
	TU_CHECK(g == p, "realloc did not grow into the free span after the block");
	TU_CHECK(stats().large_inplace == s0.large_inplace + 1, "not counted as in place");
	tu_pattern_expect(g, 1 * MiB, 1, "block grown in place");
	TU_CHECK(malloc_usable_size(g) >= 1 * MiB + 900 * KiB);
	/* no room after it now (the guard): it moves */
	char *m = realloc(g, 3 * MiB);
	TU_CHECK(m != NULL && m != g, "realloc grew over a live block");
	tu_pattern_expect(m, 1 * MiB, 1, "block moved by realloc");
	/* shrinking keeps the block where it is */
	char *s = realloc(m, 200 * KiB);
	TU_CHECK(s == m, "realloc shrinking a span moved it");
	tu_pattern_expect(s, 200 * KiB, 1, "block shrunk in place");
	TU_CHECK(malloc_usable_size(s) < 3 * MiB / 2, "usable size %zu after the shrink",
		 malloc_usable_size(s));
	/* and the pages it gave up serve the next request */
	char *t = malloc(5 * MiB / 2);
	TU_CHECK(t > s && t < s + 512 * KiB, "the freed tail of a shrunk block is not reused "
		 "(%p, the block at %p)", (void *)t, (void *)s);
	tu_pattern_expect(guard, 40000, 3, "guard block");
	free(t);
	free(s);
	free(guard);
}

/* threads ---------------------------------------------------------------- */

#define HAND_THREADS 4
#define HAND_OPS 4000
#define HAND_RING 64

struct ring {
	pthread_mutex_t mu;
	char *p[HAND_RING];
	size_t n[HAND_RING];
	uint64_t key[HAND_RING];
	unsigned count;
};
static struct ring rings[HAND_THREADS];

/* Each thread allocates blocks of 33 KiB..3 MiB and pushes them to the
 * next thread's ring; it frees what the previous one pushed, after
 * checking the block's pattern (first and last 4 KiB). */
static void *hand_thread(void *arg)
{
	unsigned t = (unsigned)(uintptr_t)arg;
	struct tu_rng r;
	tu_rng_seed(&r, 1000 + t);
	struct ring *out = &rings[(t + 1) % HAND_THREADS], *in = &rings[t];
	for (unsigned i = 0; i < HAND_OPS; i++) {
		size_t n = (size_t)tu_rng_range(&r, 33 * KiB, 3 * MiB);
		uint64_t key = ((uint64_t)t << 32) | i;
		char *p = malloc(n);
		TU_CHECK(p != NULL);
		tu_pattern_fill(p, 4096, key);
		tu_pattern_fill(p + n - 4096, 4096, ~key);
		pthread_mutex_lock(&out->mu);
		bool pushed = out->count < HAND_RING;
		if (pushed) {
			out->p[out->count] = p;
			out->n[out->count] = n;
			out->key[out->count++] = key;
		}
		pthread_mutex_unlock(&out->mu);
		if (!pushed)
			free(p);
		pthread_mutex_lock(&in->mu);
		while (in->count) {
			unsigned k = --in->count;
			char *q = in->p[k];
			size_t m = in->n[k];
			uint64_t qk = in->key[k];
			pthread_mutex_unlock(&in->mu);
			tu_pattern_expect(q, 4096, qk, "head of a handed block");
			tu_pattern_expect(q + m - 4096, 4096, ~qk, "tail of a handed block");
			free(q);
			pthread_mutex_lock(&in->mu);
		}
		pthread_mutex_unlock(&in->mu);
	}
	return NULL;
}

static char *remote_victim;
static void *free_remote(void *arg)
{
	(void)arg;
	free(remote_victim);
	return NULL;
}

static void case_threads(void *unused)
{
	(void)unused;
	/* a block freed by another thread is kept and reused here */
	remote_victim = alloc_filled(5 * MiB, 9);
	pthread_t th[HAND_THREADS];
	TU_CHECK(pthread_create(&th[0], NULL, free_remote, NULL) == 0);
	TU_CHECK(pthread_join(th[0], NULL) == 0);
	struct hak_stats s0 = stats();
	char *p = malloc(5 * MiB);
	struct hak_stats s1 = stats();
	TU_CHECK(p == remote_victim, "a span freed by another thread is not reused");
	TU_CHECK(s1.mapped_bytes == s0.mapped_bytes);
	TU_CHECK(s1.large_reused == s0.large_reused + 1,
		 "a span freed by another thread was not kept resident (large_reused %llu -> %llu)",
		 (unsigned long long)s0.large_reused, (unsigned long long)s1.large_reused);
	free(p);

	s0 = stats();
	for (unsigned t = 0; t < HAND_THREADS; t++)
		pthread_mutex_init(&rings[t].mu, NULL);
	for (unsigned t = 0; t < HAND_THREADS; t++)
		TU_CHECK(pthread_create(&th[t], NULL, hand_thread, (void *)(uintptr_t)t) == 0);
	for (unsigned t = 0; t < HAND_THREADS; t++)
		TU_CHECK(pthread_join(th[t], NULL) == 0);
	for (unsigned t = 0; t < HAND_THREADS; t++)
		for (unsigned k = 0; k < rings[t].count; k++)
			free(rings[t].p[k]);
	s1 = stats();
	TU_CHECK(s1.large_bytes_in_use == s0.large_bytes_in_use,
		 "large bytes in use %llu, at the start %llu",
		 (unsigned long long)s1.large_bytes_in_use,
		 (unsigned long long)s0.large_bytes_in_use);
	/* most of 16,000 blocks reused freed memory */
	uint64_t reused = s1.large_reused - s0.large_reused;
	TU_CHECK(reused > HAND_THREADS * HAND_OPS / 2, "only %llu of %u allocations reused memory",
		 (unsigned long long)reused, HAND_THREADS * HAND_OPS);
}

/* fork ------------------------------------------------------------------- */

static volatile int churn_stop;
static void *churn_thread(void *arg)
{
	struct tu_rng r;
	tu_rng_seed(&r, (uint64_t)(uintptr_t)arg);
	while (!churn_stop) {
		size_t n = (size_t)tu_rng_range(&r, 33 * KiB, 2 * MiB);
		char *p = malloc(n);
		TU_CHECK(p != NULL);
		p[0] = p[n - 1] = 1;
		free(p);
	}
	return NULL;
}

static void case_fork(void *unused)
{
	(void)unused;
	char *live = alloc_filled(3 * MiB, 21);
	char *freed = alloc_filled(4 * MiB, 22);
	free(freed);
	pid_t pid = fork();
	TU_CHECK(pid >= 0);
	if (pid == 0) {
		tu_pattern_expect(live, 3 * MiB, 21, "parent's live block in the child");
		char *p = malloc(4 * MiB);
		if (p != freed) {
			fprintf(stderr, "child: the parent's freed span is not reused\n");
			_exit(1);
		}
		tu_pattern_fill(p, 4 * MiB, 23);
		free(p);
		free(live);
		_exit(0);
	}
	int status;
	TU_CHECK(waitpid(pid, &status, 0) == pid);
	TU_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
	tu_pattern_expect(live, 3 * MiB, 21, "live block after the fork");
	free(live);

	/* forks while another thread is inside the tier: the child allocates
	 * at once (no lock left held) */
	pthread_t th[2];
	for (uintptr_t t = 0; t < 2; t++)
		TU_CHECK(pthread_create(&th[t], NULL, churn_thread, (void *)(t + 1)) == 0);
	for (int i = 0; i < 40; i++) {
		pid = fork();
		TU_CHECK(pid >= 0);
		if (pid == 0) {
			for (int k = 0; k < 20; k++) {
				char *p = malloc(33 * KiB + (size_t)k * 100 * KiB);
				if (!p)
					_exit(2);
				p[0] = 1;
				free(p);
			}
			_exit(0);
		}
		TU_CHECK(waitpid(pid, &status, 0) == pid);
		TU_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			 "child %d of a busy parent: status %#x", i, status);
	}
	churn_stop = 1;
	for (int t = 0; t < 2; t++)
		TU_CHECK(pthread_join(th[t], NULL) == 0);
}

/* keep ------------------------------------------------------------------- */

/* Run with a purge delay of an hour, an 8 MiB floor and a keep of 100%:
 * 16 MiB stay in use, 80 MiB are freed; the tier may keep 16 MiB of it,
 * the rest goes back to the OS at once. */
static void case_keep(void)
{
	enum { LIVE = 4, FREED = 20 };
	/* each block's span is its size and the page that holds its header */
	const size_t n = 4 * MiB, bound = LIVE * (n + 4096);
	char *live[LIVE], *tmp[FREED];
	for (int i = 0; i < LIVE; i++)
		live[i] = alloc_filled(n, (uint64_t)i);
	for (int i = 0; i < FREED; i++)
		tmp[i] = alloc_filled(n, 100 + (uint64_t)i);
	struct hak_stats s0 = stats();
	long rss0 = rss_kb();
	for (int i = 0; i < FREED; i++)
		free(tmp[i]);
	/* the background thread purges what is beyond the bound: poll (it
	 * counts the bytes kept before its madvise, the bytes purged after) */
	const size_t beyond = FREED * n - bound - n;
	struct hak_stats s = stats();
	for (int tries = 0; tries < 400 && (s.span_kept_bytes > bound ||
					    s.purged_bytes - s0.purged_bytes < beyond); tries++) {
		struct timespec ts = {.tv_sec = 0, .tv_nsec = 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
		s = stats();
	}
	long rss1 = rss_kb();
	printf("# kept %llu KiB (bound %zu KiB), purged %llu KiB, RSS %ld -> %ld KiB\n",
	       (unsigned long long)s.span_kept_bytes >> 10, bound >> 10,
	       (unsigned long long)(s.purged_bytes - s0.purged_bytes) >> 10, rss0, rss1);
	TU_CHECK(s.span_kept_bytes <= bound, "%llu bytes kept, bound %zu",
		 (unsigned long long)s.span_kept_bytes, bound);
	/* what the bound allows stays (the delay is an hour) */
	TU_CHECK(s.span_kept_bytes >= bound - n, "only %llu bytes kept, bound %zu",
		 (unsigned long long)s.span_kept_bytes, bound);
	TU_CHECK(s.purged_bytes - s0.purged_bytes >= beyond,
		 "%llu bytes purged", (unsigned long long)(s.purged_bytes - s0.purged_bytes));
	TU_CHECK(rss0 - rss1 >= (long)(beyond >> 10),
		 "RSS only went from %ld to %ld KiB", rss0, rss1);
	for (int i = 0; i < LIVE; i++) {
		tu_pattern_expect(live[i], n, (uint64_t)i, "live block");
		free(live[i]);
	}
}

/* Run with a purge delay of an hour, an 8 MiB floor and no keep bound
 * (1000%): 24 MiB of freed 2 MiB spans that no 3 MiB request fits, then
 * 18 MiB of 3 MiB blocks from fresh pages; as much of the oldest freed
 * memory goes back, but not below the floor (so exactly 8 MiB stay), so
 * that fragments do not add to the footprint. */
static void case_debt(void)
{
	enum { FRAG = 12, NEW = 6 };
	const size_t frag = 2 * MiB, fresh = 3 * MiB, floor = 8 * MiB;
	char *f[FRAG], *sep[FRAG], *nb[NEW];
	/* in use, so that the keep bound (10 x) allows the fragments */
	char *ballast = alloc_filled(4 * MiB, 99);
	for (int i = 0; i < FRAG; i++) {
		f[i] = alloc_filled(frag, (uint64_t)i);
		sep[i] = alloc_filled(40000, 50 + (uint64_t)i);
	}
	for (int i = 0; i < FRAG; i++)
		free(f[i]);
	struct hak_stats s0 = stats();
	TU_CHECK(s0.span_kept_bytes >= FRAG * frag, "%llu bytes kept after the frees",
		 (unsigned long long)s0.span_kept_bytes);
	for (int i = 0; i < NEW; i++)
		nb[i] = alloc_filled(fresh, 100 + (uint64_t)i);
	/* owed: the fresh pages (each block and its header page), down to
	 * the floor */
	size_t owed = NEW * (fresh + 4096);
	size_t want = s0.span_kept_bytes - owed > floor ? s0.span_kept_bytes - owed : floor;
	struct hak_stats s = stats();
	for (int tries = 0; tries < 400 && s.span_kept_bytes > want; tries++) {
		struct timespec ts = {.tv_sec = 0, .tv_nsec = 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
		s = stats();
	}
	printf("# kept %llu KiB after the frees, %llu KiB after %zu KiB of fresh pages\n",
	       (unsigned long long)s0.span_kept_bytes >> 10,
	       (unsigned long long)s.span_kept_bytes >> 10, owed >> 10);
	TU_CHECK(s.span_kept_bytes <= want, "%llu bytes kept, want at most %zu",
		 (unsigned long long)s.span_kept_bytes, want);
	TU_CHECK(s.span_kept_bytes + 64 * KiB >= want, "%llu bytes kept, want %zu",
		 (unsigned long long)s.span_kept_bytes, want);
	for (int i = 0; i < FRAG; i++) {
		tu_pattern_expect(sep[i], 40000, 50 + (uint64_t)i, "live block");
		free(sep[i]);
	}
	for (int i = 0; i < NEW; i++) {
		tu_pattern_expect(nb[i], fresh, 100 + (uint64_t)i, "live block");
		free(nb[i]);
	}
	tu_pattern_expect(ballast, 4 * MiB, 99, "live block");
	free(ballast);
}

static const struct {
	const char *name;
	void (*fn)(void *);
} cases[] = {
	{ "reuse", case_reuse },
	{ "fit", case_fit },
	{ "calloc", case_calloc },
	{ "realloc", case_realloc },
	{ "threads", case_threads },
	{ "fork", case_fork },
};

int main(int argc, char **argv)
{
	tu_require_hakmem_malloc();
	const char *mode = argc > 1 ? argv[1] : "all";
	if (!strcmp(mode, "keep")) {
		case_keep();
		printf("ok - keep\n");
		return 0;
	}
	if (!strcmp(mode, "debt")) {
		case_debt();
		printf("ok - debt\n");
		return 0;
	}
	bool any = false;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		if (strcmp(mode, "all") && strcmp(mode, cases[i].name))
			continue;
		any = true;
		struct tu_child ch;
		tu_set_context("integ_span %s", cases[i].name);
		tu_run_child(cases[i].fn, NULL, CHILD_TIMEOUT_S, &ch);
		if (!WIFEXITED(ch.status) || WEXITSTATUS(ch.status) != 0)
			TU_FAIL("%s: child status %#x, stderr:\n%s", cases[i].name, ch.status,
				ch.err);
		printf("ok - %s\n", cases[i].name);
	}
	TU_CHECK(any, "no case named %s", mode);
	return 0;
}
