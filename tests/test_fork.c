/*
 * test_fork.c - fork from a multithreaded process.
 *
 * Parent threads allocate, fill, exchange and free blocks without pause
 * while the main thread forks children one after another.  Each child at
 * once allocates blocks of many sizes, verifies and frees the blocks the
 * parent's threads had published (their threads do not exist in the
 * child), runs a thread that allocates, frees and frees the main thread's
 * blocks, checks it has a stats segment of its own when the parent has
 * one, and exits 0.  Every fourth child forks a grandchild that does the
 * same; every eighth child is forked by a thread other than main.  A
 * child that deadlocks is killed by an alarm and reported.
 *
 * Usage: test_fork [--children N] [--seed N]
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hakmem.h"
#include "testutil.h"

#define PARENT_THREADS 3
#define SHARED_SLOTS 256
#define CHILD_TIMEOUT_S 60 /* hang guard: a deadlocked child */
#define HDR 16             /* block header: size and key */
#define NAME_AFTER_MS 120  /* a fork child's segment is named after 0.1 s */

static uint64_t seed = 0xf0f0f0f0u;
static unsigned n_children = 16;
static atomic_bool stop;
/* Published blocks: each starts with its size and key, then the pattern. */
static _Atomic(char *) shared[SHARED_SLOTS];

static char *make(struct tu_rng *r, size_t size)
{
	if (size < HDR)
		size = HDR;
	char *p = malloc(size);
	if (!p)
		TU_FAIL("malloc(%zu) failed in pid %ld", size, (long)getpid());
	uint64_t key = tu_rng_next(r);
	memcpy(p, &size, sizeof size);
	memcpy(p + 8, &key, sizeof key);
	tu_pattern_fill(p + HDR, size - HDR, key);
	return p;
}

static void verify_free(char *p, const char *what)
{
	size_t size;
	uint64_t key;
	memcpy(&size, p, sizeof size);
	memcpy(&key, p + 8, sizeof key);
	if (size < HDR || size > ((size_t)64 << 20))
		TU_FAIL("%s: block %p has a corrupt header (size %zu)", what, (void *)p, size);
	tu_pattern_expect(p + HDR, size - HDR, key, what);
	free(p);
}

static size_t random_size(struct tu_rng *r)
{
	unsigned e = (unsigned)tu_rng_range(r, 4, 15);
	if (tu_rng_range(r, 0, 99) == 0)
		return (size_t)tu_rng_range(r, 32769, (size_t)256 << 10);
	return (size_t)tu_rng_range(r, (size_t)1 << (e - 1), (size_t)1 << e);
}

/* Parent threads: churn and publish until told to stop. */
static void *parent_worker(void *arg)
{
	struct tu_rng r;
	char *local[32] = { 0 };
	tu_rng_seed(&r, seed + (uintptr_t)arg);
	for (unsigned iter = 0; !atomic_load_explicit(&stop, memory_order_relaxed); iter++) {
		/* a short nap now and then leaves the children some CPU: they
		 * share two cores with these threads */
		if (iter % 16 == 15)
			nanosleep(&(struct timespec){ .tv_nsec = 100000 }, NULL);
		unsigned i = (unsigned)tu_rng_range(&r, 0, 31);
		if (local[i])
			verify_free(local[i], "parent local block");
		local[i] = make(&r, random_size(&r));
		char *pub = make(&r, random_size(&r));
		/* seq_cst exchange: the block is filled before it is seen */
		char *old = atomic_exchange(&shared[tu_rng_range(&r, 0, SHARED_SLOTS - 1)], pub);
		if (old)
			verify_free(old, "parent shared block");
	}
	for (unsigned i = 0; i < 32; i++)
		if (local[i])
			verify_free(local[i], "parent local block");
	return NULL;
}

struct child_thread_arg {
	char **blocks;
	unsigned n;
	uint64_t seed;
};

static void *child_thread(void *varg)
{
	struct child_thread_arg *a = varg;
	struct tu_rng r;
	char *keep[16] = { 0 };
	tu_rng_seed(&r, a->seed);
	for (unsigned i = 0; i < 1000; i++) {
		unsigned k = (unsigned)tu_rng_range(&r, 0, 15);
		if (keep[k])
			verify_free(keep[k], "child thread block");
		keep[k] = make(&r, random_size(&r));
	}
	for (unsigned k = 0; k < 16; k++)
		if (keep[k])
			verify_free(keep[k], "child thread block");
	/* the main thread's blocks, freed here: remote frees in the child */
	for (unsigned i = 0; i < a->n; i++)
		verify_free(a->blocks[i], "child main-thread block");
	return NULL;
}

static void child_body(unsigned number, int depth);

/* Fork a process that runs child_body(number, depth), wait for it and
 * return its wait status; *pid is set to its process id. */
static int fork_and_wait(unsigned number, int depth, pid_t *pid)
{
	fflush(NULL);
	*pid = fork();
	if (*pid < 0)
		TU_FAIL("fork%s: %s", depth ? " in child" : "", strerror(errno));
	if (*pid == 0)
		child_body(number, depth); /* does not return */
	int st;
	while (waitpid(*pid, &st, 0) < 0)
		if (errno != EINTR)
			TU_FAIL("waitpid: %s", strerror(errno));
	return st;
}

static void run_grandchild(unsigned number)
{
	pid_t pid;
	int st = fork_and_wait(number, 1, &pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		TU_FAIL("grandchild of child %u: %s %d", number,
			WIFSIGNALED(st) ? "killed by signal" : "exit status",
			WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
}

static void child_body(unsigned number, int depth)
{
	static const size_t sizes[] = { 0, 1, 16, 24, 100, 512, 1000, 2048, 4000,
					8192, 20000, 32768, 32769, 100000,
					(size_t)1 << 20, (size_t)3 << 20 };
	enum { NS = sizeof sizes / sizeof sizes[0] };
	char *mine[NS + 4];
	struct tu_rng r;
	unsigned n = 0;

	struct timespec born;
	clock_gettime(CLOCK_MONOTONIC, &born);
	alarm(CHILD_TIMEOUT_S);
	tu_set_context("child %u (depth %d, pid %ld), seed %" PRIu64, number, depth,
		       (long)getpid(), seed);
	tu_rng_seed(&r, seed ^ tu_mix64(number * 2 + (unsigned)depth));

	/* allocate at once, before anything else */
	for (unsigned i = 0; i < NS; i++)
		mine[n++] = make(&r, sizes[i]);
	char *z = calloc(1000, 10);
	TU_CHECK(z && tu_all_zero(z, 10000));
	free(z);
	void *al = NULL;
	TU_CHECK(posix_memalign(&al, 4096, 5000) == 0 && (uintptr_t)al % 4096 == 0);
	free(al);
	mine[n] = realloc(make(&r, 100), 50000); /* header and pattern move along */
	TU_CHECK(mine[n] != NULL);
	n++;

	/* blocks made by the parent's threads */
	unsigned inherited = 0;
	for (unsigned i = 0; i < SHARED_SLOTS; i++) {
		char *p = atomic_exchange(&shared[i], NULL);
		if (p) {
			verify_free(p, "block inherited from the parent");
			inherited++;
		}
	}
	if (depth == 0)
		TU_CHECK(inherited > 0, "no published block was inherited");

	struct child_thread_arg ta = { .blocks = mine, .n = n, .seed = tu_rng_next(&r) };
	pthread_t t;
	TU_CHECK(pthread_create(&t, NULL, child_thread, &ta) == 0);
	TU_CHECK(pthread_join(t, NULL) == 0);

	struct hak_stats st;
	TU_CHECK(hak_stats_get(&st, sizeof st) == 0);
	TU_CHECK(st.remote_frees > 0 || st.large_frees > 0);
	if (tu_stats_segment_exists(getppid())) {
		/* a fork child names its segment at a slow path once it is
		 * 0.1 s old (a large block is one) */
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		long age_ms = (now.tv_sec - born.tv_sec) * 1000 +
			      (now.tv_nsec - born.tv_nsec) / 1000000;
		if (age_ms < NAME_AFTER_MS) {
			struct timespec d = {0, (NAME_AFTER_MS - age_ms) * 1000000L};
			while (nanosleep(&d, &d) < 0 && errno == EINTR)
				;
		}
		void *volatile big = malloc(1 << 20); /* not elided by the compiler */
		free(big);
		TU_CHECK(tu_stats_segment_exists(getpid()),
			 "the parent publishes a stats segment, this child does not");
		/* the child copied the counters of the heaps that exist, not the
		 * whole object (a fresh copy of every page cost each fork ms) */
		char path[64];
		struct stat sb;
		snprintf(path, sizeof path, "/dev/shm/hakmem.%ld", (long)getpid());
		TU_CHECK(stat(path, &sb) == 0, "stat %s: %s", path, strerror(errno));
		TU_CHECK((uint64_t)sb.st_blocks * 512 <= (uint64_t)sb.st_size / 4,
			 "the child's segment has %llu of its %llu bytes in memory",
			 (unsigned long long)sb.st_blocks * 512, (unsigned long long)sb.st_size);
	}

	if (depth == 0 && number % 4 == 1)
		run_grandchild(number);
	exit(0); /* a normal exit: atexit handlers run, the segment goes */
}

/* Fork child c, wait for it, fail unless it exited 0 and removed its
 * stats segment. */
static void fork_and_check(unsigned c)
{
	pid_t pid;
	int st = fork_and_wait(c, 0, &pid);
	if (WIFSIGNALED(st)) {
		tu_remove_stats_segment(pid);
		TU_FAIL("child %u (pid %ld) killed by signal %d%s", c, (long)pid, WTERMSIG(st),
			WTERMSIG(st) == SIGALRM ? " (hung: deadlock after fork?)" : "");
	}
	TU_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %u exit status %d", c,
		 WEXITSTATUS(st));
	TU_CHECK(!tu_stats_segment_exists(pid),
		 "child %u (pid %ld) exited normally but left its stats segment", c, (long)pid);
}

static void *fork_thread(void *arg)
{
	fork_and_check((unsigned)(uintptr_t)arg);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t workers[PARENT_THREADS];

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--children"))
			n_children = (unsigned)tu_parse_u64(argv[i], argv[i + 1]);
		else if (!strcmp(argv[i], "--seed"))
			seed = tu_parse_u64(argv[i], argv[i + 1]);
		else
			TU_FAIL("usage: test_fork [--children N] [--seed N]");
	}
	tu_require_hakmem_malloc();
	tu_context_on_abort();
	for (uintptr_t i = 0; i < PARENT_THREADS; i++)
		TU_CHECK(pthread_create(&workers[i], NULL, parent_worker, (void *)i) == 0);
	/* let the workers publish something first */
	while (!atomic_load(&shared[SHARED_SLOTS - 1]) || !atomic_load(&shared[0]))
		sched_yield();

	for (unsigned c = 0; c < n_children; c++) {
		if (c % 8 == 3) { /* fork from a thread other than main */
			pthread_t t;
			TU_CHECK(pthread_create(&t, NULL, fork_thread, (void *)(uintptr_t)c) == 0);
			TU_CHECK(pthread_join(t, NULL) == 0);
		} else {
			fork_and_check(c);
		}
	}
	atomic_store(&stop, true);
	for (unsigned i = 0; i < PARENT_THREADS; i++)
		TU_CHECK(pthread_join(workers[i], NULL) == 0);
	for (unsigned i = 0; i < SHARED_SLOTS; i++) {
		char *p = atomic_exchange(&shared[i], NULL);
		if (p)
			verify_free(p, "parent shared block at the end");
	}
	printf("test_fork: ok, %u children (and %u grandchildren)\n", n_children,
	       (n_children + 2) / 4);
	return 0;
}
