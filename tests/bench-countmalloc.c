/*
 * bench-countmalloc.c - a test-only malloc for LD_PRELOAD that watches who
 * allocates and frees the blocks of a workload, so that a test can check
 * what hakmem-bench's threads do from outside the bench.
 *
 * Every call is served by glibc.  A malloc of a size in [COUNTMALLOC_MIN,
 * COUNTMALLOC_MAX) (a range the test picks so that only the workload's
 * blocks fall in it) is recorded with the thread that made it; free looks
 * the block up.  At exit it writes to COUNTMALLOC_OUT one line per thread
 * that did either:
 *   TID main|worker MALLOCS FREES FIRST
 * where FIRST says whose block the thread's first recorded free was: main
 * (the main thread's), other (another thread's), self, or - (none); and a
 * last line "live MAX" with the most recorded blocks live at once.
 * Never installed (check_LTLIBRARIES).
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t nmemb, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);
extern void __libc_free(void *ptr);

#define MAX_THREADS 65536
#define TABLE_SLOTS (1u << 20) /* live recorded blocks: far more than a test has */

struct thread_rec {
	pid_t tid;
	uint64_t mallocs, frees;
	char first; /* 'm' main, 'o' other, 's' self, 0 none yet */
};

struct block {
	uintptr_t addr; /* 0: empty slot */
	pid_t owner;    /* the thread that allocated it */
};

static size_t lo, hi; /* recorded sizes; hi == 0: record nothing */
static struct thread_rec *threads;
static atomic_uint nthreads;
static struct block *table;
static pthread_spinlock_t table_lock;
static uint64_t live, live_max; /* under table_lock */
static __thread struct thread_rec *self;

__attribute__((constructor)) static void countmalloc_init(void)
{
	const char *a = getenv("COUNTMALLOC_MIN"), *b = getenv("COUNTMALLOC_MAX");
	if (!a || !b || !getenv("COUNTMALLOC_OUT"))
		return;
	threads = mmap(NULL, MAX_THREADS * sizeof *threads, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	table = mmap(NULL, TABLE_SLOTS * sizeof *table, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (threads == MAP_FAILED || table == MAP_FAILED)
		abort();
	pthread_spin_init(&table_lock, PTHREAD_PROCESS_PRIVATE);
	lo = strtoul(a, NULL, 10);
	hi = strtoul(b, NULL, 10);
}

static struct thread_rec *me(void)
{
	if (!self) {
		unsigned i = atomic_fetch_add(&nthreads, 1);
		if (i >= MAX_THREADS)
			abort();
		self = &threads[i];
		self->tid = (pid_t)syscall(SYS_gettid);
	}
	return self;
}

static size_t slot_of(uintptr_t a)
{
	return (size_t)((a >> 4) * 0x9e3779b97f4a7c15ULL >> 44) & (TABLE_SLOTS - 1);
}

/* Linear probing; deletion shifts later entries of the run back. */
static void table_put(uintptr_t a, pid_t owner)
{
	size_t i = slot_of(a);
	while (table[i].addr)
		i = (i + 1) & (TABLE_SLOTS - 1);
	table[i] = (struct block){ .addr = a, .owner = owner };
	if (++live > live_max)
		live_max = live;
}

static bool table_take(uintptr_t a, pid_t *owner)
{
	size_t i = slot_of(a);
	while (table[i].addr != a) {
		if (!table[i].addr)
			return false;
		i = (i + 1) & (TABLE_SLOTS - 1);
	}
	*owner = table[i].owner;
	table[i].addr = 0;
	live--;
	for (size_t j = (i + 1) & (TABLE_SLOTS - 1); table[j].addr; j = (j + 1) & (TABLE_SLOTS - 1)) {
		size_t home = slot_of(table[j].addr);
		/* Move j into the hole at i unless its home lies in (i, j]. */
		bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
		if (!stays) {
			table[i] = table[j];
			table[j].addr = 0;
			i = j;
		}
	}
	return true;
}

void *malloc(size_t size)
{
	void *p = __libc_malloc(size);
	if (p && size >= lo && size < hi) {
		struct thread_rec *t = me();
		t->mallocs++;
		pthread_spin_lock(&table_lock);
		table_put((uintptr_t)p, t->tid);
		pthread_spin_unlock(&table_lock);
	}
	return p;
}

void free(void *ptr)
{
	if (ptr && hi) {
		pid_t owner;
		pthread_spin_lock(&table_lock);
		bool found = table_take((uintptr_t)ptr, &owner);
		pthread_spin_unlock(&table_lock);
		if (found) {
			struct thread_rec *t = me();
			t->frees++;
			if (!t->first)
				t->first = owner == getpid() ? 'm' : owner == t->tid ? 's' : 'o';
		}
	}
	__libc_free(ptr);
}

/* realloc and calloc are served by glibc and not recorded (the workloads
 * under test use neither); realloc of a recorded block would be a bug. */
void *calloc(size_t nmemb, size_t size)
{
	return __libc_calloc(nmemb, size);
}

void *realloc(void *ptr, size_t size)
{
	return __libc_realloc(ptr, size);
}

__attribute__((destructor)) static void countmalloc_report(void)
{
	const char *path = getenv("COUNTMALLOC_OUT");
	if (!hi || !path)
		return;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	char line[128];
	unsigned n = atomic_load(&nthreads);
	for (unsigned i = 0; i < n; i++) {
		const struct thread_rec *t = &threads[i];
		const char *first = t->first == 'm' ? "main" : t->first == 'o' ? "other"
							: t->first == 's' ? "self" : "-";
		int len = snprintf(line, sizeof line, "%d %s %llu %llu %s\n", (int)t->tid,
				   t->tid == getpid() ? "main" : "worker",
				   (unsigned long long)t->mallocs, (unsigned long long)t->frees, first);
		if (write(fd, line, (size_t)len) != len)
			break;
	}
	int len = snprintf(line, sizeof line, "live %llu\n", (unsigned long long)live_max);
	if (write(fd, line, (size_t)len) != len) {
		/* nothing more to do: the test sees a short file */
	}
	close(fd);
}
