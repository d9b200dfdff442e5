/*
 * integ_mf2.c - MF2 page ownership through the real entry points, checked
 * with the counters of hak_stats_get().
 *
 *   integ_mf2 exited   a page whose owner thread exited is claimed by the
 *                      thread that frees into it and reused for its
 *                      allocations: no page from the OS, adoptions counted.
 *   integ_mf2 emptied  a thread's pages are left without a live block
 *                      (other threads freed its blocks) when it exits:
 *                      the next thread to allocate blocks of those classes
 *                      adopts the emptied pages (carved, resident) instead
 *                      of taking them through the free-page pool, which
 *                      purges beyond its keep: adoptions counted, and the
 *                      new thread's allocations take few page faults.
 *   integ_mf2 pending  Larson-style handoff to a live, idle owner: a second
 *                      thread frees the blocks of the first (remote frees,
 *                      pages queued as pending), a third allocates.  Under
 *                      adopt (the default) the third adopts the pending
 *                      pages; under HAKMEM_DRAIN=owner they stay undrained.
 *   integ_mf2 quiet    a live owner that stopped allocating, whose blocks
 *                      another thread frees: after HAKMEM_QUIET_FREES
 *                      remote frees the freeing thread takes over the
 *                      owner's held pages (its other frees are local, its
 *                      allocations reuse them); with HAKMEM_QUIET_FREES=0
 *                      every free stays remote.  The owner then allocates
 *                      again: no block is handed out twice.
 *   integ_mf2 quietback  an owner that comes back after each takeover
 *                      (allocates again): the takeovers thin out (each
 *                      doubles the frees the next one waits for).
 *   integ_mf2 quietrace  takeovers racing with the owner's slow paths: an
 *                      owner that allocates in bursts with pauses (a new
 *                      one every 100 bursts, so that the back-off does
 *                      not thin the takeovers out), a
 *                      thread that frees its blocks meanwhile (run with
 *                      HAKMEM_QUIET_FREES=1, a takeover at every pause):
 *                      every block keeps its contents until freed.
 *   integ_mf2 refresh  a live owner that no longer allocates the class of
 *                      its blocks other threads freed gets its pages back
 *                      at its next free of anything: one free drains the
 *                      pages it holds that the remote frees queued on it
 *                      (run with HAKMEM_BACKGROUND=0, so that only the
 *                      owner does).
 */
#define _GNU_SOURCE /* RUSAGE_THREAD */
#include <pthread.h>
#include <stdint.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hakmem.h"
#include "testutil.h"

#define BLOCK 4000    /* class 4096: 16 blocks per 64 KiB page */
#define NBLOCKS 4096  /* 256 pages: enough for full pages to age and float */

static void *blocks[NBLOCKS];

static void stats(struct hak_stats *st)
{
	TU_CHECK(hak_stats_get(st, sizeof *st) == 0);
}

/* n blocks of BLOCK bytes into out, each filled with byte. */
static void alloc_filled(void **out, int n, int byte)
{
	for (int i = 0; i < n; i++) {
		TU_CHECK((out[i] = malloc(BLOCK)) != NULL);
		memset(out[i], byte, BLOCK);
	}
}

static void *alloc_all(void *arg)
{
	(void)arg;
	alloc_filled(blocks, NBLOCKS, 0x5a);
	return NULL;
}

/* The page (64 KiB granule) of p. */
static uintptr_t page_of(const void *p)
{
	return (uintptr_t)p & ~(uintptr_t)0xffff;
}

/* Whether p lies in a page of blocks[0..n) (16 to a page). */
static bool in_pages_of(const void *p, int n)
{
	for (int i = 0; i < n; i += 16)
		if (page_of(blocks[i]) == page_of(p))
			return true;
	return false;
}

static bool in_old_pages(const void *p)
{
	return in_pages_of(p, NBLOCKS);
}

static void *free_then_alloc(void *arg)
{
	(void)arg;
	struct hak_stats before, after;
	stats(&before);
	for (int i = 0; i < NBLOCKS; i++)
		free(blocks[i]);
	static void *again[NBLOCKS];
	for (int i = 0; i < NBLOCKS; i++) {
		again[i] = malloc(BLOCK);
		TU_CHECK(again[i] != NULL);
	}
	stats(&after);
	int reused = 0;
	for (int i = 0; i < NBLOCKS; i++)
		reused += in_old_pages(again[i]);
	printf("exited: adoptions +%llu, remote frees +%llu, pages from OS +%llu, "
	       "pages reused +%llu, blocks in the exited thread's pages %d/%d\n",
	       (unsigned long long)(after.adoptions - before.adoptions),
	       (unsigned long long)(after.remote_frees - before.remote_frees),
	       (unsigned long long)(after.pages_from_os - before.pages_from_os),
	       (unsigned long long)(after.pages_reused - before.pages_reused), reused, NBLOCKS);
	fflush(stdout);
	TU_CHECK(after.adoptions - before.adoptions >= NBLOCKS / 16 / 2,
		 "the exited thread's pages were not adopted");
	/* a free into a page of the exited thread claims it: the frees that
	 * follow there are local, not remote pushes */
	TU_CHECK(after.remote_frees - before.remote_frees <= NBLOCKS / 16 / 4,
		 "%llu of the %d frees into the exited thread's pages were remote",
		 (unsigned long long)(after.remote_frees - before.remote_frees), NBLOCKS);
	/* a page or two may go to the thread's own first small allocations */
	TU_CHECK(after.pages_from_os - before.pages_from_os <= 2,
		 "%llu new pages came from the OS although the old ones were free",
		 (unsigned long long)(after.pages_from_os - before.pages_from_os));
	TU_CHECK(reused >= NBLOCKS * 9 / 10, "only %d blocks reused the old pages", reused);
	for (int i = 0; i < NBLOCKS; i++)
		free(again[i]);
	return NULL;
}

static void test_exited(void)
{
	pthread_t t;
	TU_CHECK(pthread_create(&t, NULL, alloc_all, NULL) == 0);
	TU_CHECK(pthread_join(t, NULL) == 0);
	TU_CHECK(pthread_create(&t, NULL, free_then_alloc, NULL) == 0);
	TU_CHECK(pthread_join(t, NULL) == 0);
}

/* emptied ---------------------------------------------------------------- */

static void wait_phase(int p);
static void set_phase(int p);

/* One block of each page freed here (so that the pages stay this
 * thread's, partial, rather than float), the rest by the main thread
 * meanwhile: the pages are left without a live block when this thread
 * exits. */
static void *alloc_then_exit(void *arg)
{
	alloc_all(arg);
	for (int i = 0; i < NBLOCKS; i += 16)
		free(blocks[i]);
	set_phase(1);
	wait_phase(2);
	return NULL;
}

static long thread_faults(void)
{
	struct rusage ru;
	TU_CHECK(getrusage(RUSAGE_THREAD, &ru) == 0);
	return ru.ru_minflt;
}

static void *alloc_again(void *arg)
{
	(void)arg;
	struct hak_stats before, after;
	static void *again[NBLOCKS];
	stats(&before);
	long f0 = thread_faults();
	alloc_filled(again, NBLOCKS, 0xa5);
	long faults = thread_faults() - f0;
	stats(&after);
	int reused = 0;
	for (int i = 0; i < NBLOCKS; i++)
		reused += in_old_pages(again[i]);
	printf("emptied: adoptions +%llu, pages from OS +%llu, page faults %ld, "
	       "blocks in the exited thread's pages %d/%d\n",
	       (unsigned long long)(after.adoptions - before.adoptions),
	       (unsigned long long)(after.pages_from_os - before.pages_from_os), faults,
	       reused, NBLOCKS);
	fflush(stdout);
	TU_CHECK(after.adoptions - before.adoptions >= NBLOCKS / 16 * 9 / 10,
		 "the exited thread's emptied pages were not adopted");
	TU_CHECK(reused >= NBLOCKS * 9 / 10, "only %d blocks reused the old pages", reused);
	/* 4096 faults if the pages had been purged (16 per page); a few for
	 * the stack and the thread's first small allocations */
	TU_CHECK(faults < NBLOCKS / 16, "%ld page faults: the pages were purged", faults);
	for (int i = 0; i < NBLOCKS; i++)
		free(again[i]);
	return NULL;
}

static void test_emptied(void)
{
	pthread_t t;
	TU_CHECK(pthread_create(&t, NULL, alloc_then_exit, NULL) == 0);
	wait_phase(1);
	for (int i = 0; i < NBLOCKS; i++)
		if (i % 16)
			free(blocks[i]);
	set_phase(2);
	TU_CHECK(pthread_join(t, NULL) == 0);
	TU_CHECK(pthread_create(&t, NULL, alloc_again, NULL) == 0);
	TU_CHECK(pthread_join(t, NULL) == 0);
}

/* pending ---------------------------------------------------------------- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int phase;

static void wait_phase(int p)
{
	pthread_mutex_lock(&mu);
	while (phase < p)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
}

static void set_phase(int p)
{
	pthread_mutex_lock(&mu);
	phase = p;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

static void *owner_thread(void *arg)
{
	(void)arg;
	alloc_all(NULL);
	set_phase(1);
	wait_phase(3); /* stays alive and idle while the others work */
	return NULL;
}

static void *freer_thread(void *arg)
{
	(void)arg;
	wait_phase(1);
	for (int i = 0; i < NBLOCKS; i++)
		free(blocks[i]);
	return NULL;
}

static void *alloc_thread(void *arg)
{
	void **out = arg;
	for (int i = 0; i < NBLOCKS; i++)
		out[i] = malloc(BLOCK);
	return NULL;
}

static void test_pending(bool expect_adopt)
{
	static void *got[NBLOCKS];
	struct hak_stats s0, s1, s2;
	pthread_t o, f, a;
	TU_CHECK(pthread_create(&o, NULL, owner_thread, NULL) == 0);
	wait_phase(1);
	stats(&s0);
	TU_CHECK(pthread_create(&f, NULL, freer_thread, NULL) == 0);
	TU_CHECK(pthread_join(f, NULL) == 0);
	stats(&s1);
	TU_CHECK(pthread_create(&a, NULL, alloc_thread, got) == 0);
	TU_CHECK(pthread_join(a, NULL) == 0);
	stats(&s2);
	unsigned long long enq = s1.pending_enqueued - s0.pending_enqueued;
	unsigned long long drained = s2.pending_drained - s1.pending_drained;
	unsigned long long adopted = s2.adoptions - s1.adoptions;
	unsigned long long remote = s1.remote_frees - s0.remote_frees;
	int reused = 0;
	for (int i = 0; i < NBLOCKS; i++)
		reused += in_old_pages(got[i]);
	printf("pending (%s): remote frees %llu, enqueued %llu, drained %llu, adoptions %llu, "
	       "blocks from the idle owner's pages %d/%d\n",
	       expect_adopt ? "adopt" : "owner", remote, enq, drained, adopted, reused, NBLOCKS);
	TU_CHECK(remote == NBLOCKS, "every free by the second thread is remote");
	TU_CHECK(enq > 0, "remote frees queued no page");
	if (expect_adopt) {
		TU_CHECK(adopted > 0 && drained > 0, "pending pages were not adopted");
		TU_CHECK(reused >= NBLOCKS / 2, "only %d blocks came from adopted pages", reused);
	} else {
		TU_CHECK(adopted == 0, "owner strategy must not adopt");
		TU_CHECK(drained == 0, "owner strategy drained another thread's queue");
		TU_CHECK(reused == 0, "blocks came from the idle owner's pages");
	}
	set_phase(3);
	TU_CHECK(pthread_join(o, NULL) == 0);
	for (int i = 0; i < NBLOCKS; i++)
		free(got[i]);
}

/* quiet ------------------------------------------------------------------ */

/* Too few pages for one to age and float (HAK_FLOAT_AGE refills): the
 * owner holds them all, and the frees into them meet a held page. */
#define QUIET_PAGES 8
#define QUIET_BLOCKS (QUIET_PAGES * 16)

static void *quiet_owner(void *arg)
{
	(void)arg;
	alloc_filled(blocks, QUIET_BLOCKS, 0x5a);
	set_phase(1);
	wait_phase(2); /* alive and quiet while the main thread frees */
	/* its slow paths again, without the pages it lost */
	static void *mine[NBLOCKS];
	alloc_filled(mine, NBLOCKS, 0x3c);
	for (int i = 0; i < NBLOCKS; i++)
		free(mine[i]);
	return NULL;
}

static void test_quiet(bool expect_take)
{
	static void *got[QUIET_BLOCKS];
	struct hak_stats s0, s1;
	pthread_t o;
	free(malloc(BLOCK)); /* this thread's heap, before the count starts */
	TU_CHECK(pthread_create(&o, NULL, quiet_owner, NULL) == 0);
	wait_phase(1);
	stats(&s0);
	/* a block of each page in turn: the frees before the owner counts as
	 * quiet meet every page */
	for (int j = 0; j < 16; j++)
		for (int i = j; i < QUIET_BLOCKS; i += 16)
			free(blocks[i]);
	stats(&s1);
	alloc_filled(got, QUIET_BLOCKS, 0xa5);
	int reused = 0;
	for (int i = 0; i < QUIET_BLOCKS; i++)
		reused += in_pages_of(got[i], QUIET_BLOCKS);
	set_phase(2);
	TU_CHECK(pthread_join(o, NULL) == 0);
	unsigned long long remote = s1.remote_frees - s0.remote_frees;
	unsigned long long taken = s1.adoptions - s0.adoptions;
	printf("quiet (%s): remote frees %llu of %d, pages taken over %llu of %d, "
	       "blocks from the old pages %d/%d\n", expect_take ? "take" : "never", remote,
	       QUIET_BLOCKS, taken, QUIET_PAGES, reused, QUIET_BLOCKS);
	fflush(stdout);
	/* the owner's new blocks (0x3c) never landed on ours */
	for (int i = 0; i < QUIET_BLOCKS; i++)
		for (int j = 0; j < BLOCK; j++)
			TU_CHECK(((unsigned char *)got[i])[j] == 0xa5,
				 "block %d byte %d was overwritten: handed out twice", i, j);
	if (expect_take) {
		/* all but the owner's active page, whose malloc fast path uses
		 * it without a gate */
		TU_CHECK(taken >= QUIET_PAGES - 1, "only %llu pages were taken over", taken);
		/* the first HAKMEM_QUIET_FREES (32), and those into the active page */
		TU_CHECK(remote <= 32 + 16, "%llu frees stayed remote", remote);
		TU_CHECK(remote >= 32, "only %llu frees were remote before the takeover", remote);
		/* all but the active page's blocks, which stay on its remote list */
		TU_CHECK(reused >= QUIET_BLOCKS - 16, "only %d blocks reused the old pages",
			 reused);
	} else {
		TU_CHECK(remote == QUIET_BLOCKS, "%llu of %d frees were remote", remote,
			 QUIET_BLOCKS);
		TU_CHECK(taken == 0, "%llu pages were taken over", taken);
	}
	for (int i = 0; i < QUIET_BLOCKS; i++)
		free(got[i]);
}

/* quietback -------------------------------------------------------------- */

/* An owner that pauses and allocates again, round after round, while the
 * main thread frees each round's blocks: after every takeover the owner
 * comes back, so the takeovers thin out. */
#define BACK_ROUNDS 12
#define BACK_BLOCKS 128

static void *back_owner(void *arg)
{
	(void)arg;
	for (int r = 0; r < BACK_ROUNDS; r++) {
		alloc_filled(blocks, BACK_BLOCKS, r);
		set_phase(2 * r + 1);
		wait_phase(2 * r + 2); /* quiet while the main thread frees */
	}
	return NULL;
}

static void test_quietback(void)
{
	unsigned long long taken[BACK_ROUNDS];
	pthread_t o;
	free(malloc(BLOCK));
	TU_CHECK(pthread_create(&o, NULL, back_owner, NULL) == 0);
	for (int r = 0; r < BACK_ROUNDS; r++) {
		struct hak_stats s0, s1;
		wait_phase(2 * r + 1);
		stats(&s0);
		for (int i = 0; i < BACK_BLOCKS; i++)
			free(blocks[i]);
		stats(&s1);
		taken[r] = s1.adoptions - s0.adoptions;
		set_phase(2 * r + 2);
	}
	TU_CHECK(pthread_join(o, NULL) == 0);
	unsigned long long late = 0;
	printf("quietback: pages taken over per round:");
	for (int r = 0; r < BACK_ROUNDS; r++) {
		printf(" %llu", taken[r]);
		late += r >= BACK_ROUNDS / 2 && taken[r] > 0;
	}
	printf("\n");
	fflush(stdout);
	TU_CHECK(taken[0] > 0 && taken[1] > 0, "no takeover in the first rounds");
	/* windows of 32 << 6 frees and more: at most one more takeover */
	TU_CHECK(late <= 1, "takeovers in %llu of the last %d rounds: no back-off", late,
		 BACK_ROUNDS / 2);
}

/* quietrace ------------------------------------------------------------- */

#define RACE_BATCH 64
#define RACE_ROUNDS 3000
/* a new owner every 100 rounds: each starts without the back-off that its
 * returns after the takeovers build up */
#define RACE_OWNERS 30
static void *race_slot[2][RACE_BATCH];
static _Atomic int race_full[2]; /* 1: the batch is the freer's */

static size_t race_size(unsigned i, unsigned r)
{
	static const size_t sizes[] = {48, 200, 1000, 3000, 9000, 20000};
	return sizes[(i * 7 + r) % 6];
}

static void race_pause(unsigned r)
{
	if (r % 4 == 0)
		return; /* no pause: the freer meets a busy owner */
	struct timespec ts = {0, (long)(r % 7) * 20000};
	nanosleep(&ts, NULL);
}

static void *race_owner(void *arg)
{
	unsigned first = (unsigned)(uintptr_t)arg;
	for (unsigned r = first; r < first + RACE_ROUNDS / RACE_OWNERS; r++) {
		int k = r & 1;
		while (atomic_load(&race_full[k]))
			sched_yield();
		for (unsigned i = 0; i < RACE_BATCH; i++) {
			size_t n = race_size(i, r);
			unsigned char *p = malloc(n);
			TU_CHECK(p != NULL);
			memset(p, (int)(r * RACE_BATCH + i) & 0xff, n);
			race_slot[k][i] = p;
		}
		atomic_store(&race_full[k], 1);
		race_pause(r);
	}
	return NULL;
}

static void test_quietrace(void)
{
	struct hak_stats s0, s1;
	pthread_t o;
	stats(&s0);
	for (unsigned r = 0; r < RACE_ROUNDS; r++) {
		int k = r & 1;
		if (r % (RACE_ROUNDS / RACE_OWNERS) == 0) {
			if (r)
				TU_CHECK(pthread_join(o, NULL) == 0);
			TU_CHECK(pthread_create(&o, NULL, race_owner, (void *)(uintptr_t)r) == 0);
		}
		while (!atomic_load(&race_full[k]))
			sched_yield();
		for (unsigned i = 0; i < RACE_BATCH; i++) {
			unsigned char *p = race_slot[k][i];
			size_t n = race_size(i, r);
			unsigned char want = (unsigned char)((r * RACE_BATCH + i) & 0xff);
			for (size_t j = 0; j < n; j += 61)
				TU_CHECK(p[j] == want, "round %u block %u byte %zu: %u, not %u", r,
					 i, j, p[j], want);
			free(p);
		}
		atomic_store(&race_full[k], 0);
	}
	TU_CHECK(pthread_join(o, NULL) == 0);
	stats(&s1);
	printf("quietrace: %d rounds of %d blocks, remote frees %llu, pages taken over %llu\n",
	       RACE_ROUNDS, RACE_BATCH, (unsigned long long)(s1.remote_frees - s0.remote_frees),
	       (unsigned long long)(s1.adoptions - s0.adoptions));
	TU_CHECK(s1.adoptions > s0.adoptions, "no takeover happened");
}

/* The owner: the blocks of REFRESH_PAGES pages, too few for a page to age
 * and float (HAK_FLOAT_AGE refills), so that it holds them all; then one
 * small block it keeps cached.  After the remote frees, one free of that
 * small block. */
#define REFRESH_PAGES 8
static void *small_block;
static struct hak_stats r1, r2;

static void *refresh_owner(void *arg)
{
	(void)arg;
	for (int i = 0; i < REFRESH_PAGES * 16; i++)
		TU_CHECK((blocks[i] = malloc(BLOCK)) != NULL);
	small_block = malloc(64);
	free(small_block);
	small_block = malloc(64); /* from the cache: its free is a cached one */
	set_phase(1);
	wait_phase(2);
	stats(&r1);
	free(small_block);
	stats(&r2);
	return NULL;
}

static void test_refresh(void)
{
	struct hak_stats s0, s1;
	pthread_t o;
	TU_CHECK(pthread_create(&o, NULL, refresh_owner, NULL) == 0);
	wait_phase(1);
	stats(&s0);
	for (int i = 0; i < REFRESH_PAGES * 16; i++)
		free(blocks[i]); /* remote frees, from this thread */
	stats(&s1);
	set_phase(2);
	TU_CHECK(pthread_join(o, NULL) == 0);
	unsigned long long enq = s1.pending_enqueued - s0.pending_enqueued;
	unsigned long long before = r1.pending_drained - s0.pending_drained;
	unsigned long long drained = r2.pending_drained - r1.pending_drained;
	printf("refresh: remote frees %llu, pages queued on the owner %llu, drained before its "
	       "free %llu, by its one free %llu\n", s1.remote_frees - s0.remote_frees, enq,
	       before, drained);
	TU_CHECK(enq == REFRESH_PAGES, "remote frees queued %llu pages, not %d", enq,
		 REFRESH_PAGES);
	TU_CHECK(before == 0, "%llu pages drained before the owner freed", before);
	/* the pages it still held (the others floated, full, as it grew:
	 * those wait on its adoptable queue for whoever needs the class) */
	TU_CHECK(drained >= 1 && drained <= enq,
		 "the owner's next free drained %llu of %llu queued pages", drained, enq);
}

int main(int argc, char **argv)
{
	tu_require_hakmem_malloc();
	const char *mode = argc > 1 ? argv[1] : "";
	const char *drain = getenv("HAKMEM_DRAIN");
	bool adopt = !drain || !strcmp(drain, "adopt");
	if (!strcmp(mode, "exited")) {
		if (!adopt)
			tu_skip("claiming exited threads' pages is part of the adopt strategy");
		test_exited();
	} else if (!strcmp(mode, "emptied")) {
		if (!adopt)
			tu_skip("adopting exited threads' pages is part of the adopt strategy");
		test_emptied();
	} else if (!strcmp(mode, "pending")) {
		test_pending(adopt);
	} else if (!strcmp(mode, "quiet")) {
		const char *q = getenv("HAKMEM_QUIET_FREES");
		if (!adopt)
			tu_skip("taking over a quiet holder's pages is part of the adopt strategy");
		if (q && strcmp(q, "0") && strcmp(q, "32"))
			tu_skip("the counts assume HAKMEM_QUIET_FREES=32 (the default) or 0");
		test_quiet(!q || strcmp(q, "0"));
	} else if (!strcmp(mode, "quietback")) {
		const char *q = getenv("HAKMEM_QUIET_FREES");
		if (!adopt)
			tu_skip("taking over a quiet holder's pages is part of the adopt strategy");
		if (q && strcmp(q, "32"))
			tu_skip("the counts assume HAKMEM_QUIET_FREES=32 (the default)");
		test_quietback();
	} else if (!strcmp(mode, "quietrace")) {
		if (!adopt)
			tu_skip("taking over a quiet holder's pages is part of the adopt strategy");
		test_quietrace();
	} else if (!strcmp(mode, "refresh")) {
		if (drain && strcmp(drain, "adopt") && strcmp(drain, "owner"))
			tu_skip("roundrobin and hybrid drain on their own period");
		test_refresh();
	} else {
		fprintf(stderr, "usage: integ_mf2 exited|emptied|pending|quiet|quietback|quietrace|refresh\n");
		return 2;
	}
	return 0;
}
