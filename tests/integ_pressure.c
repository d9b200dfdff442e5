/*
 * integ_pressure.c - allocation while the kernel refuses memory.
 *
 * Claim: when the OS refuses memory, every entry point returns NULL with
 * errno ENOMEM (posix_memalign returns ENOMEM and leaves *memptr alone),
 * realloc and reallocarray leave the old block intact, nothing live is
 * corrupted, nothing leaks, and once memory is available again allocation
 * works, also in new threads.
 *
 * Two ways to refuse memory, each run in forked children:
 *  - RLIMIT_AS set to the child's current address-space size plus a sweep
 *    of margins (0 to 24 MiB), so that the refusal lands on different
 *    mappings (a new arena, a large span, a new thread's heap, a forked
 *    child's stats segment, a mremap that grows a large block);
 *  - injected refusals: this program defines mmap() and mremap(), and the
 *    dynamic linker binds libhakmem's calls to them (a definition in the
 *    executable comes first in the global scope; main() checks that it
 *    does).  They pass through to the kernel with syscall(2), except that
 *    a rule makes them fail with ENOMEM: every call from the k-th on, for
 *    every k up to the number of calls the workload makes, or only the
 *    k-th (every third k, and the first call of each kind of mapping).
 *    glibc's own mappings (thread stacks) do not go through them.
 *    With an address hint the rule also places a mapping in an empty
 *    4 GiB region, so that hakmem needs a new leaf of its address map
 *    there, and refuses that leaf: once for a new arena, once for a large
 *    span that straddles a 4 GiB boundary (half of it already marked).
 *
 * Each child: warms up (so that glibc's thread-stack cache and hakmem's
 * background thread exist before the baseline), reads the counters, starts
 * refusing, then runs a fixed plan (every entry point for every size range,
 * growing reallocs, new threads that allocate and free a block of the main
 * thread, a fork whose child allocates), then allocates until everything
 * fails.  Every failure must be NULL+ENOMEM; then every live block must
 * hold its pattern and hak_stats_get's bytes in use must equal the start
 * plus the usable sizes of the live blocks, exactly.  Memory comes back;
 * every call must succeed; everything is freed and bytes in use must be
 * back at the start, and the address space must have grown by no more
 * than hakmem's mapped bytes.  Replaying the small blocks twice must need
 * no new page the second time, and a new thread must be able to allocate.
 * Across each sweep, the outcomes must show that a page, a span, a new
 * thread's heap, a forked child's segment and a realloc growing a large
 * block were each refused at least once.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hakmem.h"
#include "testutil.h"

#define SENTINEL 12345        /* errno before each call */
#define CHILD_TIMEOUT_S 120   /* hang guard */
#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define GiB ((size_t)1 << 30)

/* Mappings by size, for the log only (see lib/map.c, heap.c, arena.c):
 * a leaf of the address map is 64 KiB, a chunk of thread heaps 256 KiB,
 * an arena 4 MiB mapped with 4 MiB of slack to align it.  A span can have
 * those sizes too; the plan's sizes avoid them, and the checks of coverage
 * rest on what the calls returned, not on this. */
enum mkind { MK_LEAF, MK_CHUNK, MK_ARENA, MK_SPAN, MK_SHARED, MK_RESIZE, MK_COUNT };
static const char *const mkind_name[MK_COUNT] = {
	"map leaf", "heap chunk", "arena", "span", "stats segment", "mremap",
};
#define LEAF_MAP ((size_t)64 << 10)
#define CHUNK_MAP ((size_t)1 << 20) /* HAK_HEAP_CHUNK */
#define ARENA_SIZE ((size_t)4 << 20)
#define ARENA_MAP (2 * ARENA_SIZE)

static unsigned classify(size_t len, int flags)
{
	if (flags & MAP_SHARED)
		return MK_SHARED;
	if (len == LEAF_MAP)
		return MK_LEAF;
	if (len == CHUNK_MAP)
		return MK_CHUNK;
	/* an arena of its own (aligned by trimming), or one mapped into
	 * hakmem's reserved span */
	if (len == ARENA_MAP || (len == ARENA_SIZE && (flags & MAP_FIXED)))
		return MK_ARENA;
	return MK_SPAN;
}

/* What a child (and its own children) saw, in shared memory. */
#define MAX_SEQ 1024
struct report {
	unsigned long calls[MK_COUNT];   /* mapping calls while counting */
	unsigned long nseq;              /* ... in all, and their kinds in order */
	unsigned char seq[MAX_SEQ];
	unsigned long refused[MK_COUNT]; /* refused (injected or by the kernel) */
	int first_refused;               /* kind, or -1 */
	unsigned long ok, failed;        /* allocation calls */
	unsigned long small_failed, large_failed; /* failures by size range */
	unsigned long grow_large_failed; /* reallocs of a large block refused */
	unsigned long rounds;            /* of the exhaustion loop */
	unsigned threads, threads_refused; /* new threads; those whose malloc failed */
	unsigned threads_not_started;
	unsigned private_stats;          /* forked children without a segment */
	unsigned mapped_stats;           /* forked children with one (named or not) */
	uintptr_t hinted_at;             /* where the hinted mapping went */
	unsigned long leaves_mapped;     /* leaves of the address map mapped, counting
					  * or not (one per 4 GiB region hakmem's
					  * mappings have touched, never unmapped) */
};
static struct report *rep;

/* The refusal rule: refuse calls of the kinds in mask numbered [from, to)
 * (counted from arming, over those kinds); place the next anonymous
 * mapping of hint_len bytes at hint. */
static struct {
	int armed;
	unsigned mask;
	unsigned long from, to;
	unsigned long seen;
	int counting;
	uintptr_t hint;
	size_t hint_len;
} rule;

static void note_call(unsigned kind, bool refused)
{
	struct report *r = rep;
	if (!r)
		return;
	if (__atomic_load_n(&rule.counting, __ATOMIC_RELAXED)) {
		__atomic_add_fetch(&r->calls[kind], 1, __ATOMIC_RELAXED);
		unsigned long i = __atomic_fetch_add(&r->nseq, 1, __ATOMIC_RELAXED);
		if (i < MAX_SEQ)
			r->seq[i] = (unsigned char)kind;
	}
	if (refused) {
		__atomic_add_fetch(&r->refused[kind], 1, __ATOMIC_RELAXED);
		int none = -1;
		__atomic_compare_exchange_n(&r->first_refused, &none, (int)kind, false,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
	}
}

static bool refuse_now(unsigned kind)
{
	if (!__atomic_load_n(&rule.armed, __ATOMIC_ACQUIRE) || !(rule.mask & (1u << kind)))
		return false;
	unsigned long n = __atomic_fetch_add(&rule.seen, 1, __ATOMIC_RELAXED);
	return n >= rule.from && n < rule.to;
}

static void arm(unsigned mask, unsigned long from, unsigned long to)
{
	rule.mask = mask;
	rule.from = from;
	rule.to = to;
	rule.seen = 0;
	__atomic_store_n(&rule.armed, 1, __ATOMIC_RELEASE);
}

static void disarm(void)
{
	__atomic_store_n(&rule.armed, 0, __ATOMIC_RELEASE);
	rule.hint_len = 0;
}

#define ALL_KINDS ((1u << MK_COUNT) - 1)

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	unsigned kind = classify(len, flags);
	if (refuse_now(kind)) {
		note_call(kind, true);
		errno = ENOMEM;
		return MAP_FAILED;
	}
	bool hinted = false;
	if (!addr && !(flags & MAP_FIXED) && (flags & MAP_ANONYMOUS) && rule.hint_len == len &&
	    __atomic_exchange_n(&rule.hint_len, 0, __ATOMIC_RELAXED) == len) {
		addr = (void *)rule.hint;
		hinted = true;
	}
	long r = syscall(SYS_mmap, addr, len, prot, flags, fd, off);
	note_call(kind, r == -1);
	if (kind == MK_LEAF && r != -1 && rep)
		__atomic_add_fetch(&rep->leaves_mapped, 1, __ATOMIC_RELAXED);
	if (hinted && rep)
		rep->hinted_at = (uintptr_t)r;
	return r == -1 ? MAP_FAILED : (void *)r;
}

void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
	void *new_addr = NULL;
	if (flags & MREMAP_FIXED) {
		va_list ap;
		va_start(ap, flags);
		new_addr = va_arg(ap, void *);
		va_end(ap);
	}
	if (new_len > old_len && refuse_now(MK_RESIZE)) {
		note_call(MK_RESIZE, true);
		errno = ENOMEM;
		return MAP_FAILED;
	}
	long r = syscall(SYS_mremap, old, old_len, new_len, flags, new_addr);
	/* (the kernel refuses to grow in place whenever the next pages are
	 * taken: that is no refusal of memory) */
	note_call(MK_RESIZE, false);
	return r == -1 ? MAP_FAILED : (void *)r;
}

/* Blocks ----------------------------------------------------------------- */

enum api {
	A_MALLOC, A_CALLOC, A_REALLOC, A_REALLOCARRAY, A_POSIX_MEMALIGN,
	A_ALIGNED_ALLOC, A_MEMALIGN, A_VALLOC, A_PVALLOC, A_STRDUP, A_COUNT
};
static const char *const api_name[A_COUNT] = {
	"malloc", "calloc", "realloc", "reallocarray", "posix_memalign",
	"aligned_alloc", "memalign", "valloc", "pvalloc", "strdup",
};

/* Size ranges: small classes, mid classes, the largest class, large
 * spans.  (Their spans are mapped as 128 or 192 KiB, or 1..2 MiB plus
 * 64 KiB: never the size of a heap chunk or an arena, see classify.) */
struct range {
	const char *name;
	size_t lo, hi;
	bool large;
};
static const struct range ranges[] = {
	{ "tiny", 1, 256, false },
	{ "small", 257, 1024, false },
	{ "mid", 1025, 32767, false },
	{ "32 KiB", 32768, 32768, false },
	{ "large", 40000, 120000, true },
	{ "huge", MiB, 2 * MiB, true },
};
#define NRANGES (sizeof ranges / sizeof ranges[0])
#define RANGE_32K 3
static const size_t aligns[] = { 16, 64, 4096, 65536 };

struct blk {
	char *p;
	size_t n;      /* bytes that hold the pattern */
	size_t align;  /* guaranteed alignment */
	uint64_t key;
};
#define MAX_LIVE ((size_t)1 << 18)
static struct blk live[MAX_LIVE];
static size_t nlive;
static size_t own_idx = SIZE_MAX; /* the block of its own mapping in live[] */
static uint64_t next_key = 1;
#define STRDUP_MAX ((size_t)256 << 10)
#define GROW_MAX ((size_t)256 << 10)
static char dup_src[STRDUP_MAX + 1]; /* 'x's: strdup's source */

static size_t round_up(size_t x, size_t a)
{
	return (x + a - 1) & ~(a - 1);
}

/* Blocks above SPARSE_MIN hold the pattern on their first and last
 * SPARSE_EDGE bytes and on SPARSE_SPOT bytes every SPARSE_STEP between:
 * filling and checking whole blocks would dominate the run. */
#define SPARSE_MIN ((size_t)8 << 10)
#define SPARSE_EDGE ((size_t)2 << 10)
#define SPARSE_STEP ((size_t)10000) /* not a power of two: varied offsets */
#define SPARSE_STEPS 13 /* at most about this many spots */
#define SPARSE_SPOT 64

static void pattern(char *p, size_t n, uint64_t key, const char *check)
{
	if (n <= SPARSE_MIN) {
		if (check)
			tu_pattern_expect(p, n, key, check);
		else
			tu_pattern_fill(p, n, key);
		return;
	}
	size_t step = n / SPARSE_STEPS > SPARSE_STEP ? n / SPARSE_STEPS : SPARSE_STEP;
	for (size_t off = 0; off < n; off = off == 0 ? SPARSE_EDGE : off + step) {
		size_t len = off == 0 ? SPARSE_EDGE : SPARSE_SPOT;
		if (off + len > n - SPARSE_EDGE) {
			off = n - SPARSE_EDGE; /* the tail, last */
			len = SPARSE_EDGE;
		}
		if (check)
			tu_pattern_expect(p + off, len, key + off, check);
		else
			tu_pattern_fill(p + off, len, key + off);
		if (off + len == n)
			break;
	}
}

/* Whether the bytes pattern() covers are all zero (calloc). */
static bool sparse_zero(const char *p, size_t n)
{
	if (n <= SPARSE_MIN)
		return tu_all_zero(p, n);
	size_t step = n / SPARSE_STEPS > SPARSE_STEP ? n / SPARSE_STEPS : SPARSE_STEP;
	for (size_t off = 0; off < n - SPARSE_EDGE; off += step)
		if (!tu_all_zero(p + off, SPARSE_SPOT))
			return false;
	return tu_all_zero(p, SPARSE_EDGE) && tu_all_zero(p + n - SPARSE_EDGE, SPARSE_EDGE);
}

static void blk_fill(struct blk *b)
{
	b->key = next_key++;
	pattern(b->p, b->n, b->key, NULL);
}

static void blk_check(const struct blk *b, const char *what)
{
	pattern(b->p, b->n, b->key, what);
}

static void verify_live(void)
{
	for (size_t i = 0; i < nlive; i++)
		blk_check(&live[i], "live block");
}

static size_t live_usable(void)
{
	size_t sum = 0;
	for (size_t i = 0; i < nlive; i++)
		sum += malloc_usable_size(live[i].p);
	return sum;
}

static void free_all(void)
{
	for (size_t i = 0; i < nlive; i++) {
		blk_check(&live[i], "block before free");
		free(live[i].p);
	}
	nlive = 0;
	own_idx = SIZE_MAX;
}

static void stats(struct hak_stats *st)
{
	TU_CHECK(hak_stats_get(st, sizeof *st) == 0);
}

static size_t vm_size(void);

/* The counters and the address-space size together: the background thread
 * may map or unmap between two reads, so read the counters on both sides
 * of the size (and the size on both sides of the second read) until
 * neither moved. */
static size_t stats_and_vm(struct hak_stats *st)
{
	for (int tries = 0;; tries++) {
		struct hak_stats again;
		stats(st);
		size_t vm = vm_size();
		stats(&again);
		if ((again.mapped_bytes == st->mapped_bytes && vm_size() == vm) || tries == 1000)
			return vm;
		usleep(1000);
	}
}

/* One call of entry point api for a size of range g.  Returns true if it
 * succeeded; a failure must be a clean ENOMEM, with the old block of a
 * realloc intact. */
static bool try_alloc(unsigned api, unsigned g, struct tu_rng *r)
{
	const struct range *rg = &ranges[g];
	size_t n = (size_t)tu_rng_range(r, rg->lo, rg->hi);
	size_t align = aligns[tu_rng_range(r, 0, sizeof aligns / sizeof aligns[0] - 1)];
	size_t want = n;
	void *p = NULL, *const memptr_unset = (void *)(uintptr_t)0x5eed;
	struct blk *victim = NULL;
	bool ok;
	int ret = 0;

	TU_CHECK(nlive < MAX_LIVE, "too many live blocks");
	errno = SENTINEL;
	switch (api) {
	case A_MALLOC:
		align = 16;
		p = malloc(n);
		break;
	case A_CALLOC:
		align = 16;
		p = n % 8 ? calloc(n, 1) : calloc(n / 8, 8);
		break;
	case A_REALLOC:
	case A_REALLOCARRAY:
		if (!nlive)
			return false;
		/* a block of at most GROW_MAX: copying megabytes costs time */
		for (size_t i = tu_rng_range(r, 0, nlive - 1), left = nlive; left--;
		     i = (i + 1) % nlive) {
			victim = &live[i];
			if (victim->n <= GROW_MAX)
				break;
		}
		align = 16;
		want = round_up(victim->n + n, 8);
		p = api == A_REALLOC ? realloc(victim->p, want)
				     : reallocarray(victim->p, want / 8, 8);
		break;
	case A_POSIX_MEMALIGN:
		p = memptr_unset;
		ret = posix_memalign(&p, align, n);
		if (ret) {
			TU_CHECK(ret == ENOMEM, "posix_memalign(%zu, %zu) returned %d", align, n, ret);
			TU_CHECK(p == memptr_unset, "posix_memalign wrote *memptr on failure");
			p = NULL;
		}
		break;
	case A_ALIGNED_ALLOC:
		p = aligned_alloc(align, n);
		break;
	case A_MEMALIGN:
		p = memalign(align, n);
		break;
	case A_VALLOC:
		align = 4096;
		p = valloc(n);
		break;
	case A_PVALLOC:
		align = 4096;
		want = round_up(n, 4096);
		p = pvalloc(n);
		break;
	case A_STRDUP:
		/* at most STRDUP_MAX: strlen and the copy would dominate */
		if (n > STRDUP_MAX)
			want = n = STRDUP_MAX - n % (64 * KiB);
		align = 16;
		dup_src[n - 1] = '\0';
		p = strdup(dup_src);
		dup_src[n - 1] = 'x';
		break;
	}
	ok = p != NULL;
	if (!ok) {
		if (api != A_POSIX_MEMALIGN)
			TU_CHECK(errno == ENOMEM, "%s of %zu bytes (%s): NULL with errno %d",
				 api_name[api], want, rg->name, errno);
		if (victim) {
			blk_check(victim, "block whose realloc failed");
			if (victim->n > 32768)
				rep->grow_large_failed++;
		}
		rep->failed++;
		if (rg->large)
			rep->large_failed++;
		else
			rep->small_failed++;
		return false;
	}
	rep->ok++;
	TU_CHECK(errno == SENTINEL, "%s of %zu bytes succeeded but changed errno to %d",
		 api_name[api], want, errno);
	TU_CHECK((uintptr_t)p % align == 0, "%s(%zu) = %p: not %zu-aligned", api_name[api],
		 want, p, align);
	TU_CHECK(malloc_usable_size(p) >= want, "%s(%zu): usable size %zu", api_name[api],
		 want, malloc_usable_size(p));
	if (api == A_CALLOC)
		TU_CHECK(sparse_zero(p, n), "calloc(%zu) is not zeroed", n);
	if (api == A_STRDUP)
		TU_CHECK(memcmp(p, dup_src, n - 1) == 0 && ((char *)p)[n - 1] == '\0',
			 "strdup copied wrongly");
	if (victim) {
		struct blk moved = *victim;
		moved.p = p;
		blk_check(&moved, "contents moved by realloc");
		victim->p = p;
		victim->n = want;
		victim->align = align;
		blk_fill(victim);
		return true;
	}
	live[nlive] = (struct blk){ .p = p, .n = want, .align = align };
	blk_fill(&live[nlive]);
	nlive++;
	return true;
}

/* New threads under pressure --------------------------------------------- */

#define STEP_THREADS 12
#define THREAD_STACK ((size_t)128 << 10)

struct step {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned ready, go;
};

struct tctx {
	struct step *s;
	struct blk handed; /* a block of the main thread, freed here */
	uint64_t seed;
};

static void step_wait(struct step *s)
{
	pthread_mutex_lock(&s->mu);
	s->ready++;
	pthread_cond_broadcast(&s->cv);
	while (!s->go)
		pthread_cond_wait(&s->cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
}

/* A new thread's first allocation may need a heap, which may need a new
 * chunk: it either works or fails cleanly.  The thread also frees a block
 * the main thread allocated (a remote free, maybe from a thread that could
 * not get a heap). */
static void *step_thread(void *arg)
{
	struct tctx *t = arg;
	struct tu_rng r;
	struct blk mine[3];
	size_t sizes[3] = { 100, 3000, 50000 };
	unsigned n = 0;
	bool refused = false;

	tu_rng_seed(&r, t->seed);
	for (unsigned i = 0; i < 3; i++) {
		errno = SENTINEL;
		char *p = i == 1 ? calloc(1, sizes[i]) : malloc(sizes[i]);
		if (!p) {
			TU_CHECK(errno == ENOMEM, "new thread: malloc(%zu) NULL with errno %d",
				 sizes[i], errno);
			if (i == 0)
				refused = true;
			continue;
		}
		TU_CHECK(errno == SENTINEL, "new thread: malloc(%zu) succeeded but changed errno "
			 "to %d", sizes[i], errno);
		mine[n] = (struct blk){ .p = p, .n = sizes[i], .key = tu_rng_next(&r) };
		pattern(p, sizes[i], mine[n].key, NULL);
		n++;
	}
	if (refused)
		__atomic_add_fetch(&rep->threads_refused, 1, __ATOMIC_RELAXED);
	if (t->handed.p) {
		blk_check(&t->handed, "block handed to a new thread");
		errno = SENTINEL;
		free(t->handed.p);
		TU_CHECK(errno == SENTINEL, "free in a new thread changed errno to %d", errno);
	}
	step_wait(t->s);
	for (unsigned i = 0; i < n; i++) {
		blk_check(&mine[i], "new thread's block");
		free(mine[i].p);
	}
	return NULL;
}

static void thread_attr(pthread_attr_t *a)
{
	TU_CHECK(pthread_attr_init(a) == 0);
	TU_CHECK(pthread_attr_setstacksize(a, THREAD_STACK) == 0);
}

static void thread_step(uint64_t seed)
{
	static struct tctx ctx[STEP_THREADS];
	struct step s = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
	pthread_t tid[STEP_THREADS];
	bool started[STEP_THREADS];
	unsigned nstarted = 0;
	pthread_attr_t attr;

	thread_attr(&attr);
	for (unsigned i = 0; i < STEP_THREADS; i++) {
		ctx[i] = (struct tctx){ .s = &s, .seed = seed * 100 + i };
		if (nlive) /* the newest live block changes hands */
			ctx[i].handed = live[--nlive];
		int e = pthread_create(&tid[i], &attr, step_thread, &ctx[i]);
		started[i] = e == 0;
		if (e) {
			TU_CHECK(e == EAGAIN || e == ENOMEM, "pthread_create: %d", e);
			rep->threads_not_started++;
			if (ctx[i].handed.p) /* back to the list */
				live[nlive++] = ctx[i].handed;
			continue;
		}
		nstarted++;
	}
	rep->threads += nstarted;
	pthread_mutex_lock(&s.mu);
	while (s.ready < nstarted)
		pthread_cond_wait(&s.cv, &s.mu);
	s.go = 1;
	pthread_cond_broadcast(&s.cv);
	pthread_mutex_unlock(&s.mu);
	for (unsigned i = 0; i < STEP_THREADS; i++)
		if (started[i])
			TU_CHECK(pthread_join(tid[i], NULL) == 0);
	pthread_attr_destroy(&attr);
}

/* A forked child under pressure ------------------------------------------- */

/* Its stats segment may be refused (it then counts in private memory);
 * it must allocate or fail cleanly, read its counters, and exit 0 without
 * leaving a segment behind. */
static void fork_step(uint64_t seed)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		TU_CHECK(errno == EAGAIN || errno == ENOMEM, "fork: %s", strerror(errno));
		return;
	}
	if (pid == 0) {
		struct tu_rng r;
		struct hak_stats st;
		size_t keep = nlive;
		tu_rng_seed(&r, seed);
		if (!tu_stats_segment_exists(getpid()) && !tu_stats_segment_mapped())
			__atomic_add_fetch(&rep->private_stats, 1, __ATOMIC_RELAXED);
		else
			__atomic_add_fetch(&rep->mapped_stats, 1, __ATOMIC_RELAXED);
		for (unsigned g = 0; g < NRANGES; g++)
			try_alloc(A_MALLOC, g, &r);
		verify_live();
		stats(&st);
		TU_CHECK(st.threads >= 1);
		for (size_t i = keep; i < nlive; i++)
			free(live[i].p);
		exit(0); /* hakmem's exit hook removes the segment, if any */
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		TU_CHECK(errno == EINTR, "waitpid: %s", strerror(errno));
	TU_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		 "forked child under pressure: status %#x", status);
	TU_CHECK(!tu_stats_segment_exists(pid), "forked child left its stats segment");
}

/* The child's run --------------------------------------------------------- */

enum run_mode { RUN_NONE, RUN_RLIMIT, RUN_FAIL_FROM, RUN_FAIL_ONCE };

struct run_cfg {
	enum run_mode mode;
	size_t margin;       /* RUN_RLIMIT */
	unsigned long k;     /* RUN_FAIL_* */
};

/* The stack must not need to grow while the limit is on. */
static __attribute__((noinline)) void prefault_stack(void)
{
	volatile char buf[512 * 1024];
	for (size_t i = 0; i < sizeof buf; i += 4096)
		buf[i] = 0;
}

static size_t vm_size(void)
{
	char buf[128] = { 0 };
	int fd = open("/proc/self/statm", O_RDONLY);
	TU_CHECK(fd >= 0);
	TU_CHECK(read(fd, buf, sizeof buf - 1) > 0);
	close(fd);
	return (size_t)strtoull(buf, NULL, 10) * (size_t)sysconf(_SC_PAGESIZE);
}

static void *idle_thread(void *arg)
{
	return arg;
}

/* Before the baseline: hakmem starts its background thread (an allocation
 * starts it once 8 MiB are mapped, or after a free asked for a purge), and
 * glibc caches the stacks of the step's threads (with their TLS blocks,
 * which glibc callocs from hakmem); neither then allocates while the test
 * counts. */
static void warm_up(void)
{
	pthread_t t[STEP_THREADS];
	pthread_attr_t attr;
	free(malloc(16 * MiB));
	free(malloc(16 * MiB));
	thread_attr(&attr);
	for (unsigned i = 0; i < STEP_THREADS; i++)
		TU_CHECK(pthread_create(&t[i], &attr, idle_thread, NULL) == 0);
	for (unsigned i = 0; i < STEP_THREADS; i++)
		TU_CHECK(pthread_join(t[i], NULL) == 0);
	pthread_attr_destroy(&attr);
	hak_malloc_trim(0);
}

static void pressure_on(const struct run_cfg *c)
{
	struct rlimit lim;
	switch (c->mode) {
	case RUN_NONE:
		break;
	case RUN_RLIMIT:
		TU_CHECK(getrlimit(RLIMIT_AS, &lim) == 0);
		lim.rlim_cur = vm_size() + c->margin; /* rlim_max stays: we raise it again */
		TU_CHECK(setrlimit(RLIMIT_AS, &lim) == 0);
		break;
	case RUN_FAIL_FROM:
		arm(ALL_KINDS, c->k, ULONG_MAX);
		break;
	case RUN_FAIL_ONCE:
		arm(ALL_KINDS, c->k, c->k + 1);
		break;
	}
}

static void pressure_off(const struct run_cfg *c)
{
	struct rlimit lim;
	if (c->mode == RUN_RLIMIT) {
		TU_CHECK(getrlimit(RLIMIT_AS, &lim) == 0);
		lim.rlim_cur = lim.rlim_max;
		TU_CHECK(setrlimit(RLIMIT_AS, &lim) == 0);
	}
	disarm();
}

/* A block above HAKMEM_SPAN_MAX_MB (32 MiB by default) is a mapping of its
 * own, and realloc grows it with mremap.  One is allocated before the
 * pressure (so that RLIMIT_AS leaves it something to grow), and each round
 * of the plan grows it by 2 MiB (or allocates it, if that failed). */
#define OWN_MAP (33 * MiB)
#define OWN_MAP_STEP (2 * MiB)

static void own_mapping_new(void)
{
	TU_CHECK(nlive < MAX_LIVE, "too many live blocks");
	errno = SENTINEL;
	char *p = malloc(OWN_MAP);
	if (!p) {
		TU_CHECK(errno == ENOMEM, "malloc of %zu bytes: NULL with errno %d", OWN_MAP, errno);
		rep->failed++;
		rep->large_failed++;
		return;
	}
	rep->ok++;
	own_idx = nlive++;
	live[own_idx] = (struct blk){ .p = p, .n = OWN_MAP, .align = 16 };
	blk_fill(&live[own_idx]);
}

static void grow_own_mapping(void)
{
	if (own_idx == SIZE_MAX) {
		own_mapping_new();
		return;
	}
	struct blk *b = &live[own_idx];
	size_t want = b->n + OWN_MAP_STEP;
	errno = SENTINEL;
	char *q = realloc(b->p, want);
	if (!q) {
		TU_CHECK(errno == ENOMEM, "realloc to %zu bytes: NULL with errno %d", want, errno);
		blk_check(b, "block whose realloc failed");
		rep->failed++;
		rep->large_failed++;
		rep->grow_large_failed++;
		return;
	}
	rep->ok++;
	TU_CHECK(errno == SENTINEL, "realloc to %zu bytes succeeded but changed errno to %d",
		 want, errno);
	struct blk moved = *b;
	moved.p = q;
	blk_check(&moved, "contents moved by realloc");
	b->p = q;
	b->n = want;
	blk_fill(b);
}

/* Every entry point for every size range, 32 KiB blocks enough for more
 * than an arena (two to a page), and a block of its own mapping grown,
 * twice, with threads and a fork between the rounds: the same calls in the
 * same order in every child, so that the k-th mapping call is the same
 * one. */
#define PLAN_PAGE_FILL 80
static void run_plan(struct tu_rng *r, uint64_t seed)
{
	for (unsigned round = 0; round < 2; round++) {
		for (unsigned g = 0; g < NRANGES; g++)
			for (unsigned a = 0; a < A_COUNT; a++)
				try_alloc(a, g, r);
		for (unsigned i = 0; i < PLAN_PAGE_FILL; i++)
			try_alloc(A_MALLOC, RANGE_32K, r);
		grow_own_mapping();
		thread_step(seed + round);
	}
	fork_step(seed);
}

/* Allocate until a whole round of every entry point and size fails. */
static void exhaust(struct tu_rng *r)
{
	enum { MAX_ROUNDS = 100000 };
	unsigned round;
	for (round = 0; round < MAX_ROUNDS; round++) {
		unsigned ok = 0;
		for (unsigned g = 0; g < NRANGES; g++)
			for (unsigned a = 0; a < A_COUNT; a++)
				ok += try_alloc(a, g, r);
		if (!ok)
			break;
	}
	TU_CHECK(round < MAX_ROUNDS, "allocation never failed everywhere");
	rep->rounds = round + 1;
}

static void new_thread_allocates(void)
{
	struct step s = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER,
			  .go = 1 };
	struct tctx ctx = { .s = &s, .seed = 99 };
	pthread_attr_t attr;
	pthread_t t;
	unsigned refused_before = rep->threads_refused;
	thread_attr(&attr);
	TU_CHECK(pthread_create(&t, &attr, step_thread, &ctx) == 0,
		 "no thread can be started after the pressure");
	TU_CHECK(pthread_join(t, NULL) == 0);
	pthread_attr_destroy(&attr);
	TU_CHECK(rep->threads_refused == refused_before,
		 "a new thread cannot allocate after the pressure");
}

static void pressure_child(void *arg)
{
	const struct run_cfg *c = arg;
	struct hak_stats s0, s, p1, p2;
	struct tu_rng r;
	uint64_t seed = 1;

	prefault_stack();
	warm_up();
	size_t vm0 = stats_and_vm(&s0);
	unsigned long leaves0 = __atomic_load_n(&rep->leaves_mapped, __ATOMIC_RELAXED);
	tu_rng_seed(&r, seed);
	own_mapping_new();
	rule.counting = 1;
	pressure_on(c);
	run_plan(&r, seed);
	if (c->mode == RUN_RLIMIT || c->mode == RUN_FAIL_FROM)
		exhaust(&r);
	rule.counting = 0;

	/* still under pressure: every block intact, the counters exact */
	verify_live();
	stats(&s);
	size_t usable = live_usable();
	TU_CHECK(s.bytes_in_use == s0.bytes_in_use + usable,
		 "bytes in use %" PRIu64 ", want %" PRIu64 " + %zu of live blocks",
		 s.bytes_in_use, s0.bytes_in_use, usable);
	TU_CHECK(s.threads == s0.threads, "%u threads own a heap, want %u", s.threads,
		 s0.threads);

	/* a realloc that shrinks never fails, not even now (as with glibc):
	 * it keeps the block when a smaller one cannot be had */
	for (size_t i = 0; i < nlive; i += 8) {
		struct blk *b = &live[i];
		size_t m = b->n / 4 ? b->n / 4 : 1;
		char head[16];
		size_t h = m < sizeof head ? m : sizeof head;
		memcpy(head, b->p, h);
		errno = 0;
		char *q = realloc(b->p, m);
		TU_CHECK(q != NULL, "realloc shrinking %zu to %zu bytes failed under pressure",
			 b->n, m);
		TU_CHECK(errno == 0, "realloc shrinking %zu bytes changed errno to %d", b->n, errno);
		TU_CHECK(memcmp(q, head, h) == 0, "realloc shrinking %zu bytes lost the contents",
			 b->n);
		b->p = q;
		b->n = m;
		b->align = 16;
		blk_fill(b);
	}
	verify_live();
	stats(&s);
	usable = live_usable();
	TU_CHECK(s.bytes_in_use == s0.bytes_in_use + usable,
		 "after the shrinks: bytes in use %" PRIu64 ", want %" PRIu64 " + %zu",
		 s.bytes_in_use, s0.bytes_in_use, usable);

	/* memory is back: every call works */
	pressure_off(c);
	for (unsigned g = 0; g < NRANGES; g++)
		for (unsigned a = 0; a < A_COUNT; a++)
			TU_CHECK(try_alloc(a, g, &r), "%s of a %s size fails after the pressure",
				 api_name[a], ranges[g].name);
	verify_live();

	/* everything freed: nothing left counted, no address space kept
	 * beyond what hakmem counts as mapped (arenas, heap chunks; a span
	 * mapped and forgotten on a failure path would show), but for the
	 * 64 KiB leaves of the address map that the run's mappings needed:
	 * one per 4 GiB region they touched, which depends on where the kernel
	 * put them (two in one CI run, which a fixed allowance of one failed) */
	static size_t rn[MAX_LIVE], ra[MAX_LIVE];
	size_t nreplay = nlive;
	for (size_t i = 0; i < nlive; i++) {
		rn[i] = live[i].n;
		ra[i] = live[i].align < sizeof(void *) ? sizeof(void *) : live[i].align;
	}
	free_all();
	stats(&s);
	TU_CHECK(s.bytes_in_use == s0.bytes_in_use,
		 "after freeing everything %" PRIu64 " bytes in use, at the start %" PRIu64,
		 s.bytes_in_use, s0.bytes_in_use);
	hak_malloc_trim(0);
	size_t vm1 = stats_and_vm(&s);
	int64_t unaccounted = (int64_t)(vm1 - s.mapped_bytes - s.reserved_bytes) -
			      (int64_t)(vm0 - s0.mapped_bytes - s0.reserved_bytes);
	unsigned long leaves = __atomic_load_n(&rep->leaves_mapped, __ATOMIC_RELAXED) - leaves0;
	TU_CHECK(unaccounted >= 0 && unaccounted <= (int64_t)(leaves * LEAF_MAP),
		 "address space grew by %zd bytes more than hakmem's mapped bytes (%" PRIu64
		 " -> %" PRIu64 "), with %lu new leaves of the address map", (ssize_t)unaccounted,
		 s0.mapped_bytes, s.mapped_bytes, leaves);

	/* the same small blocks again, twice: the second time needs no new
	 * page and no new mapping (the first may: pages that took remote
	 * frees from the threads are drained when the main thread next needs
	 * their class) */
	for (int pass = 0; pass < 2; pass++) {
		stats(&p1);
		for (size_t i = 0; i < nreplay; i++) {
			void *p;
			if (rn[i] > 32768 || ra[i] > 32768)
				continue; /* a span: no page */
			TU_CHECK(posix_memalign(&p, ra[i], rn[i]) == 0, "replay of %zu bytes", rn[i]);
			live[nlive++] = (struct blk){ .p = p, .n = 0 };
		}
		free_all();
		hak_malloc_trim(0);
		stats(&p2);
	}
	TU_CHECK(p2.pages_from_os == p1.pages_from_os,
		 "the same blocks again took %" PRIu64 " new pages from the OS",
		 p2.pages_from_os - p1.pages_from_os);
	/* (fewer is no new mapping: a span tier region that a purge in
	 * flight left behind the trim may be unmapped meanwhile) */
	TU_CHECK(p2.mapped_bytes <= p1.mapped_bytes,
		 "mapped bytes %" PRIu64 " after the replay, %" PRIu64 " before",
		 p2.mapped_bytes, p1.mapped_bytes);

	new_thread_allocates();
}

/* Parent side ------------------------------------------------------------- */

static struct report *report_map(void)
{
	void *p = mmap(NULL, sizeof(struct report), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	TU_CHECK(p != MAP_FAILED);
	return p;
}

static void report_clear(void)
{
	memset(rep, 0, sizeof *rep);
	rep->first_refused = -1;
}

/* Run fn(arg) in a child that must exit 0. */
static void run_child(void (*fn)(void *), void *arg, const char *label)
{
	struct tu_child ch;
	report_clear();
	tu_set_context("%s", label);
	tu_run_child(fn, arg, CHILD_TIMEOUT_S, &ch);
	if (!WIFEXITED(ch.status) || WEXITSTATUS(ch.status) != 0)
		TU_FAIL("%s: child status %#x (%s %d), stderr:\n%s", label, ch.status,
			WIFSIGNALED(ch.status) ? "signal" : "exit",
			WIFSIGNALED(ch.status) ? WTERMSIG(ch.status) : WEXITSTATUS(ch.status),
			ch.err);
}

static void run(const struct run_cfg *c, const char *label)
{
	run_child(pressure_child, (void *)c, label);
	printf("ok - %s: %lu calls ok, %lu refused (small %lu, large %lu) in %lu rounds; "
	       "threads %u (%u without memory, %u not started); fork %s; first refusal: %s\n",
	       label, rep->ok, rep->failed, rep->small_failed, rep->large_failed, rep->rounds,
	       rep->threads, rep->threads_refused, rep->threads_not_started,
	       rep->private_stats ? "without segment" : "with segment",
	       rep->first_refused < 0 ? "none" : mkind_name[rep->first_refused]);
}

/* What the sweeps must have reached, from the calls' outcomes. */
struct coverage {
	unsigned long small_failed, large_failed, threads_refused, private_stats, resize;
};

static void cover(struct coverage *cv)
{
	cv->small_failed += rep->small_failed;
	cv->large_failed += rep->large_failed;
	cv->threads_refused += rep->threads_refused;
	cv->private_stats += rep->private_stats;
	cv->resize += rep->grow_large_failed;
}

static void cover_check(const struct coverage *cv, const char *sweep)
{
	TU_CHECK(cv->small_failed, "%s: no page allocation was refused", sweep);
	TU_CHECK(cv->large_failed, "%s: no large span was refused", sweep);
	TU_CHECK(cv->threads_refused, "%s: no new thread was refused a heap", sweep);
	TU_CHECK(cv->private_stats, "%s: no forked child was refused its stats segment", sweep);
	TU_CHECK(cv->resize, "%s: no realloc growing a large block was refused", sweep);
}

static void sweep_injected(void)
{
	struct run_cfg c = { .mode = RUN_NONE };
	struct coverage cv = { 0 };
	unsigned long total = 0;
	char label[96];

	run(&c, "plan without refusals");
	TU_CHECK(rep->mapped_stats && !rep->private_stats,
		 "without refusals, the forked child has no stats segment");
	for (unsigned k = 0; k < MK_COUNT; k++)
		total += rep->calls[k];
	TU_CHECK(rep->calls[MK_ARENA] && rep->calls[MK_SPAN] && rep->calls[MK_CHUNK] &&
		 rep->calls[MK_SHARED] && rep->calls[MK_RESIZE],
		 "the plan does not map every kind (arena %lu, span %lu, chunk %lu, "
		 "segment %lu, mremap %lu)", rep->calls[MK_ARENA], rep->calls[MK_SPAN],
		 rep->calls[MK_CHUNK], rep->calls[MK_SHARED], rep->calls[MK_RESIZE]);
	printf("# the plan makes %lu mapping calls\n", total);
	TU_CHECK(total <= MAX_SEQ, "%lu mapping calls", total);
	static unsigned char seq[MAX_SEQ];
	memcpy(seq, rep->seq, total);
	unsigned seen = 0;
	for (unsigned long k = 0; k <= total; k++) {
		c = (struct run_cfg){ .mode = RUN_FAIL_FROM, .k = k };
		snprintf(label, sizeof label, "every mapping refused from call %lu on", k);
		run(&c, label);
		cover(&cv);
		/* a single refusal: of every third call, and of the first call
		 * of each kind (the rest behave alike; time is short) */
		unsigned bit = k < total ? 1u << seq[k] : 0;
		if (k % 3 && !(bit & ~seen))
			continue;
		seen |= bit;
		c = (struct run_cfg){ .mode = RUN_FAIL_ONCE, .k = k };
		snprintf(label, sizeof label, "mapping call %lu (%s) refused", k,
			 k < total ? mkind_name[seq[k]] : "none");
		run(&c, label);
		cover(&cv);
	}
	cover_check(&cv, "injected refusals");
}

static void sweep_rlimit(void)
{
	static const size_t margins[] = {
		0, 64 * KiB, 128 * KiB, 192 * KiB, 256 * KiB, 512 * KiB, MiB, 2 * MiB,
		4 * MiB, 6 * MiB, 8 * MiB, 8 * MiB + 192 * KiB, 16 * MiB, 24 * MiB,
	};
	struct coverage cv = { 0 };
	char label[96];
	for (size_t i = 0; i < sizeof margins / sizeof margins[0]; i++) {
		struct run_cfg c = { .mode = RUN_RLIMIT, .margin = margins[i] };
		snprintf(label, sizeof label, "RLIMIT_AS margin %zu KiB", margins[i] / KiB);
		run(&c, label);
		cover(&cv);
	}
	cover_check(&cv, "RLIMIT_AS sweep");
}

/* Leaves of the address map ----------------------------------------------- */

/* A 12 GiB, 4 GiB-aligned range with nothing mapped in it (so hakmem has
 * no leaf there), far below the mappings of the process. */
static uintptr_t empty_region(void)
{
	void *anchor = malloc(64);
	uintptr_t top = ((uintptr_t)anchor & ~(uintptr_t)(4 * GiB - 1)) - 64 * GiB;
	free(anchor);
	for (uintptr_t r = top; r > 64 * GiB; r -= 4 * GiB) {
		void *p = mmap((void *)r, 12 * GiB, PROT_NONE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE,
			       -1, 0);
		if (p == MAP_FAILED)
			continue;
		munmap(p, 12 * GiB);
		if ((uintptr_t)p == r)
			return r;
	}
	TU_FAIL("no empty 12 GiB region found");
}

/* The free of a pointer into memory that is not hakmem's, in a forked
 * child: it must report it in one line and abort. */
static void free_foreign(void *p)
{
	free(p);
	_exit(3);
}

static void expect_foreign(void *p, const char *what)
{
	struct tu_child ch;
	tu_run_child(free_foreign, p, CHILD_TIMEOUT_S, &ch);
	tu_expect_abort_naming(&ch, p, what);
}

/* A new arena in a region without a leaf, and the leaf refused.  The
 * arenas that come from hakmem's reserved span have their leaves from the
 * span's first arena on; with the address space limited (a limit far above
 * this test's use) new arenas are mappings of their own, placed by mmap,
 * and this program's mmap puts the next one in an empty region. */
static void leaf_arena_child(void *unused)
{
	struct hak_stats s0, s;
	struct rlimit lim;
	(void)unused;
	TU_CHECK(getrlimit(RLIMIT_AS, &lim) == 0);
	lim.rlim_cur = (rlim_t)1 << 46;
	TU_CHECK(setrlimit(RLIMIT_AS, &lim) == 0);
	prefault_stack();
	warm_up();
	stats(&s0);
	uintptr_t region = empty_region();
	rule.hint = region;
	rule.hint_len = ARENA_MAP;
	arm(1u << MK_LEAF, 0, 1);
	/* 30000-byte blocks take two to a page: a new arena comes soon */
	for (unsigned i = 0;; i++) {
		TU_CHECK(i < 4096, "no new arena was needed");
		errno = SENTINEL;
		char *p = malloc(30000);
		if (!p) {
			TU_CHECK(errno == ENOMEM, "errno %d", errno);
			break;
		}
		live[nlive] = (struct blk){ .p = p, .n = 30000 };
		blk_fill(&live[nlive++]);
	}
	TU_CHECK(rep->hinted_at == region, "the arena was not placed in the empty region "
		 "(at %#" PRIxPTR ")", rep->hinted_at);
	TU_CHECK(rep->refused[MK_LEAF] == 1, "%lu leaf mappings refused",
		 rep->refused[MK_LEAF]);
	disarm();
	/* the refused arena is gone, nothing of it is hakmem's */
	expect_foreign((void *)(region + 64 * KiB + 4096), "a pointer into the refused arena");
	for (unsigned i = 0; i < 200; i++) {
		char *p = malloc(30000);
		TU_CHECK(p != NULL, "malloc fails after the leaf came back");
		live[nlive] = (struct blk){ .p = p, .n = 30000 };
		blk_fill(&live[nlive++]);
	}
	verify_live();
	free_all();
	stats(&s);
	TU_CHECK(s.bytes_in_use == s0.bytes_in_use);
}

/* A region of the span tier (128 MiB, 64 KiB-aligned: mapped with 64 KiB
 * of slack) in a region without a leaf, and the leaf refused: the
 * allocation fails cleanly, and none of the region stays hakmem's. */
#define REGION_MAP (128 * MiB + 64 * KiB)
static void leaf_region_child(void *unused)
{
	struct hak_stats s0, s;
	(void)unused;
	prefault_stack();
	warm_up(); /* its trim unmapped the idle region */
	stats(&s0);
	uintptr_t region = empty_region();
	rule.hint = region;
	rule.hint_len = REGION_MAP;
	arm(1u << MK_LEAF, 0, 1);
	errno = SENTINEL;
	char *p = malloc(40000);
	TU_CHECK(p == NULL && errno == ENOMEM, "malloc = %p, errno %d", (void *)p, errno);
	TU_CHECK(rep->hinted_at == region, "the region was not placed in the empty region "
		 "(at %#" PRIxPTR ")", rep->hinted_at);
	TU_CHECK(rep->refused[MK_LEAF] == 1, "%lu leaf mappings refused",
		 rep->refused[MK_LEAF]);
	disarm();
	expect_foreign((void *)(region + MiB + 64), "a pointer into the refused region");
	for (unsigned i = 0; i < 64; i++) {
		p = malloc(40000 + i * 4096);
		TU_CHECK(p != NULL, "malloc fails after the leaf came back");
		live[nlive] = (struct blk){ .p = p, .n = 40000 + i * 4096 };
		blk_fill(&live[nlive++]);
	}
	verify_live();
	free_all();
	stats(&s);
	TU_CHECK(s.bytes_in_use == s0.bytes_in_use);
}

/* A large span placed across a 4 GiB boundary whose lower leaf exists:
 * the granule below is marked, then the leaf above is refused.  The span
 * is unmapped, and none of its address range may stay marked as hakmem's:
 * a foreign mapping that lands there must be reported as foreign, not
 * read as a span. */
static void leaf_span_child(void *unused)
{
	struct hak_stats s0, s;
	(void)unused;
	prefault_stack();
	warm_up();
	stats(&s0);
	uintptr_t region = empty_region();
	/* 33 MiB, above HAKMEM_SPAN_MAX_MB (32): a mapping of its own, of
	 * 33 MiB + 64 KiB (the header rounded up), mapped with 64 KiB of
	 * slack */
	const size_t size = 33 * MiB, map_len = 33 * MiB + 128 * KiB;

	/* first without a refusal: a span across region + 4 GiB works, and
	 * leaves the leaves of both sides mapped */
	uintptr_t base = region + 4 * GiB - 64 * KiB;
	rule.hint = base;
	rule.hint_len = map_len;
	rule.counting = 1;
	char *p = malloc(size);
	rule.counting = 0;
	TU_CHECK(p != NULL && rep->hinted_at == base, "span not placed at %#" PRIxPTR
		 " but %#" PRIxPTR, base, rep->hinted_at);
	TU_CHECK(rep->calls[MK_LEAF] == 2, "%lu new leaves for a span across 4 GiB",
		 rep->calls[MK_LEAF]);
	tu_pattern_fill(p, size, 7);
	tu_pattern_expect(p, size, 7, "span across 4 GiB");
	TU_CHECK(malloc_usable_size(p) >= size);
	free(p);
	hak_malloc_trim(0); /* unmap it (not cached) */

	/* across region + 8 GiB: the leaf below exists, the one above is
	 * refused */
	base = region + 8 * GiB - 64 * KiB;
	rep->hinted_at = 0;
	rule.hint = base;
	rule.hint_len = map_len;
	arm(1u << MK_LEAF, 0, 1);
	errno = SENTINEL;
	p = malloc(size);
	TU_CHECK(p == NULL && errno == ENOMEM, "malloc = %p, errno %d", (void *)p, errno);
	TU_CHECK(rep->hinted_at == base, "span not placed at %#" PRIxPTR, base);
	TU_CHECK(rep->refused[MK_LEAF] == 1, "%lu leaf mappings refused",
		 rep->refused[MK_LEAF]);
	disarm();

	/* a foreign page where the span began, 4 KiB into its first granule */
	char *foreign = mmap((void *)(base + 4096), 4096, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	TU_CHECK(foreign == (char *)(base + 4096), "foreign page not placed: %p",
		 (void *)foreign);
	expect_foreign(foreign, "a foreign page where a refused span was");
	munmap(foreign, 4096);

	p = malloc(size);
	TU_CHECK(p != NULL, "malloc fails after the leaf came back");
	free(p);
	stats(&s);
	TU_CHECK(s.bytes_in_use == s0.bytes_in_use);
}

static void run_leaf(void (*fn)(void *), const char *label)
{
	run_child(fn, NULL, label);
	printf("ok - %s\n", label);
}

int main(void)
{
	tu_require_hakmem_malloc();
	memset(dup_src, 'x', sizeof dup_src - 1);
	rep = report_map();
	report_clear();

	/* hakmem's mappings must come through our mmap, or the injected
	 * refusals would test nothing */
	hak_malloc_trim(0);
	rule.counting = 1;
	void *big = malloc(5 * MiB);
	rule.counting = 0;
	TU_CHECK(big != NULL);
	free(big);
	TU_CHECK(rep->calls[MK_SPAN] >= 1, "hakmem's mmap calls do not reach this program's "
		 "mmap (is it exported?)");

	run_leaf(leaf_arena_child, "new arena in a region without a map leaf, leaf refused");
	run_leaf(leaf_span_child, "span across a 4 GiB boundary, upper map leaf refused");
	run_leaf(leaf_region_child, "span tier region in a region without a map leaf, leaf refused");
	sweep_injected();
	sweep_rlimit();
	printf("integ_pressure: ok\n");
	return 0;
}
