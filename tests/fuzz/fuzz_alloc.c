/*
 * fuzz_alloc.c - a fuzz target for the hak_ API: the input is a program of
 * allocation calls over a table of slots, and every result is checked.
 *
 * Format: a sequence of operations, each an opcode byte followed by the
 * bytes its arguments take (reads past the end give 0).  The low six bits
 * of the opcode pick the operation (op_table); when its two top bits are
 * both set, the helper thread makes the call while the main thread waits,
 * so that blocks are freed into another thread's pages, and allocated by
 * one thread and freed by the other.  Operations on a slot read a slot
 * byte next; sizes and alignments are read by read_size() and read_align().
 *
 * Checks (a failure prints one line and calls abort()):
 *  - every live block holds a pattern derived from (slot, generation),
 *    verified before each free and realloc, every CHECK_EVERY operations
 *    and at the end; realloc keeps the prefix; calloc returns zeros;
 *  - alignment; usable size >= request and stable; no overlap with any
 *    other live block;
 *  - errno untouched by every success (free, usable size and trim too);
 *    impossible sizes and alignments fail with the errors of hakmem(3), and
 *    a failed call leaves the old block as it was;
 *  - hak_stats_get's bytes in use equal their value at the start of the
 *    input plus the usable sizes of the live blocks; once the input's
 *    blocks are freed, every class and the large counters are back.
 *
 * Deterministic: no clock, no random numbers, and the helper makes its
 * calls while the main thread waits.  The allocator's own state carries
 * from one input to the next, as it does in any program.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hakmem.h"
#include "fuzz_alloc.h"

#define NSLOTS 256
/* Blocks up to FULL_MAX are patterned in full; bigger ones in their first
 * and last EDGE bytes and STRIDE_BYTES in every STRIDE, at an OS page of
 * the stride that the seed picks: touching every page of every big block
 * would make runs slow (page faults).  The periodic checks of every slot
 * only sample: blocks above SAMPLE_MAX in their first and last SAMPLE_EDGE
 * bytes and the strides. */
#define FULL_MAX ((size_t)64 << 10)
#define EDGE ((size_t)4096)
#define STRIDE ((size_t)64 << 10)
#define STRIDE_BYTES ((size_t)64)
#define SAMPLE_MAX ((size_t)256)
#define SAMPLE_EDGE ((size_t)64)
/* Requested bytes the live blocks may hold together; a bigger request is
 * cut down to a small size (an impossible one is left alone). */
#define LIVE_BUDGET ((size_t)64 << 20)
/* Sizes read_size() makes to fail are >= 2^58; anything >= 2^50 cannot be
 * mapped (above the user address space), so it must fail with ENOMEM. */
#define HUGE_GEN ((size_t)1 << 58)
#define FAIL_MIN ((size_t)1 << 50)
#define LARGE_GEN_MAX (((size_t)4 << 20) + ((size_t)64 << 10))
#define MAX_ALIGN ((size_t)1 << 30) /* larger alignments: ENOMEM (hakmem(3)) */
#define MEMALIGN_EINVAL ((size_t)1 << 62) /* memalign: larger non-powers of two */
#define OS_PAGE ((size_t)4096)
#define MALLOC_ALIGN 16
#define CHECK_EVERY 128   /* operations between checks of every slot */
#define ERRNO_MARK 4242   /* errno before each call: no call sets it */

int fuzz_alloc_trace;

/* The checking loops of this file: their coverage says nothing about the
 * allocator, and the comparisons libFuzzer would trace make runs slow. */
#ifdef __clang__
#define NO_COVERAGE __attribute__((no_sanitize("coverage")))
#else
#define NO_COVERAGE
#endif

#define TRACE(...)                                    \
	do {                                          \
		if (fuzz_alloc_trace)                 \
			fprintf(stderr, __VA_ARGS__); \
	} while (0)

/* Calls ---------------------------------------------------------------------- */

enum call_fn {
	C_MALLOC, C_CALLOC, C_REALLOC, C_REALLOCARRAY, C_POSIX_MEMALIGN, C_ALIGNED_ALLOC,
	C_MEMALIGN, C_VALLOC, C_PVALLOC, C_FREE, C_USABLE, C_TRIM,
};

static const char *const call_name[] = {
	[C_MALLOC] = "malloc", [C_CALLOC] = "calloc", [C_REALLOC] = "realloc",
	[C_REALLOCARRAY] = "reallocarray", [C_POSIX_MEMALIGN] = "posix_memalign",
	[C_ALIGNED_ALLOC] = "aligned_alloc", [C_MEMALIGN] = "memalign",
	[C_VALLOC] = "valloc", [C_PVALLOC] = "pvalloc", [C_FREE] = "free",
	[C_USABLE] = "malloc_usable_size", [C_TRIM] = "malloc_trim",
};

/* One call, its arguments and everything it returned. */
struct call {
	enum call_fn fn;
	void *ptr;     /* realloc, reallocarray, free, usable size */
	size_t a, b;   /* size; nmemb, size; alignment, size; trim pad */
	void *ret;
	size_t usable;
	int rc;        /* posix_memalign, malloc_trim */
	int err_out;   /* errno after the call (ERRNO_MARK before it) */
};

static char memptr_untouched; /* posix_memalign must not overwrite *memptr on failure */

static void call_run(struct call *c)
{
	void *m = &memptr_untouched;
	errno = ERRNO_MARK;
	switch (c->fn) {
	case C_MALLOC: c->ret = hak_malloc(c->a); break;
	case C_CALLOC: c->ret = hak_calloc(c->a, c->b); break;
	case C_REALLOC: c->ret = hak_realloc(c->ptr, c->a); break;
	case C_REALLOCARRAY: c->ret = hak_reallocarray(c->ptr, c->a, c->b); break;
	case C_POSIX_MEMALIGN:
		c->rc = hak_posix_memalign(&m, c->a, c->b);
		c->ret = m;
		break;
	case C_ALIGNED_ALLOC: c->ret = hak_aligned_alloc(c->a, c->b); break;
	case C_MEMALIGN: c->ret = hak_memalign(c->a, c->b); break;
	case C_VALLOC: c->ret = hak_valloc(c->a); break;
	case C_PVALLOC: c->ret = hak_pvalloc(c->a); break;
	case C_FREE: hak_free(c->ptr); break;
	case C_USABLE: c->usable = hak_malloc_usable_size(c->ptr); break;
	case C_TRIM: c->rc = hak_malloc_trim(c->a); break;
	}
	c->err_out = errno;
}

/* The helper thread ------------------------------------------------------------
 * It waits for calls, makes them and reports back; the main thread waits
 * meanwhile, so the order of everything is fixed by the input.  A burst
 * goes over in one request: a wake-up costs far more than a call. */

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct call *req;
	size_t nreq;
	enum { H_IDLE, H_REQUEST, H_DONE, H_QUIT } state;
	pthread_t thread;
	bool running;
} helper = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.cv = PTHREAD_COND_INITIALIZER,
};

static void *helper_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&helper.mu);
	for (;;) {
		while (helper.state != H_REQUEST && helper.state != H_QUIT)
			pthread_cond_wait(&helper.cv, &helper.mu);
		if (helper.state == H_QUIT)
			break;
		pthread_mutex_unlock(&helper.mu);
		for (size_t i = 0; i < helper.nreq; i++)
			call_run(&helper.req[i]);
		pthread_mutex_lock(&helper.mu);
		helper.state = H_DONE;
		pthread_cond_broadcast(&helper.cv);
	}
	pthread_mutex_unlock(&helper.mu);
	return NULL;
}

/* The helper makes calls c[0..n), in order. */
static void helper_run(struct call *c, size_t n)
{
	if (!helper.running) {
		helper.state = H_IDLE;
		if (pthread_create(&helper.thread, NULL, helper_main, NULL) != 0) {
			fprintf(stderr, "fuzz_alloc: cannot start the helper thread\n");
			abort();
		}
		helper.running = true;
	}
	pthread_mutex_lock(&helper.mu);
	helper.req = c;
	helper.nreq = n;
	helper.state = H_REQUEST;
	pthread_cond_broadcast(&helper.cv);
	while (helper.state != H_DONE)
		pthread_cond_wait(&helper.cv, &helper.mu);
	helper.state = H_IDLE;
	pthread_mutex_unlock(&helper.mu);
}

/* The helper exits (its heap is abandoned with the blocks it still owns
 * pages for); the next remote call starts a new one. */
static void helper_stop(void)
{
	if (!helper.running)
		return;
	pthread_mutex_lock(&helper.mu);
	helper.state = H_QUIT;
	pthread_cond_broadcast(&helper.cv);
	pthread_mutex_unlock(&helper.mu);
	pthread_join(helper.thread, NULL);
	helper.running = false;
}

/* Run state ---------------------------------------------------------------------- */

struct slot {
	unsigned char *p;
	size_t size;   /* bytes requested: the patterned part */
	size_t usable; /* hak_malloc_usable_size at allocation */
	uint64_t seed; /* of the pattern: (slot, generation) */
};

static struct run {
	const uint8_t *in;
	size_t n, pos;
	unsigned long op;      /* operations so far in this input */
	const char *what;      /* the operation being run, for reports */
	int slot;              /* its slot, or -1 */
	uint64_t gen;          /* patterns written so far */
	size_t live_bytes;     /* requested bytes of the live blocks */
	struct hak_stats start;
	struct slot slots[NSLOTS];
} run;

/* The size classes, as hak_stats_get reports them (read once). */
static size_t class_size[HAK_STATS_MAX_CLASSES];
static unsigned num_classes;
static size_t small_max;

static __attribute__((noreturn, format(printf, 1, 2))) void fail(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "fuzz_alloc: op %lu (%s", run.op, run.what ? run.what : "end");
	if (run.slot >= 0)
		fprintf(stderr, ", slot %d", run.slot);
	fprintf(stderr, "): ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	abort();
}

static uint8_t rd8(struct run *r)
{
	if (r->pos >= r->n)
		return 0;
	return r->in[r->pos++];
}

static size_t rd16(struct run *r)
{
	size_t lo = rd8(r);
	return lo | (size_t)rd8(r) << 8;
}

/* Patterns -----------------------------------------------------------------------
 * Byte i of a block holds byte i % 8 of the word word_at(seed, i / 8), so
 * any range can be written or checked on its own, and realloc's copy of a
 * prefix keeps every byte valid. */

static uint64_t mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9u;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebu;
	return x ^ (x >> 31);
}

static uint64_t word_at(uint64_t seed, size_t k)
{
	return seed + (uint64_t)k * 0x9e3779b97f4a7c15u;
}

static uint64_t slot_seed(unsigned slot, uint64_t gen)
{
	return mix(((uint64_t)slot << 40) ^ gen);
}

enum pat_op { PAT_FILL, PAT_VERIFY, PAT_ZERO };

/* Word access without memcmp, which libFuzzer intercepts (slowly). */
static uint64_t load64(const unsigned char *p)
{
	uint64_t w;
	__builtin_memcpy(&w, p, 8);
	return w;
}

/* Fill or check bytes [off, end) of p; returns the first bad offset, or
 * SIZE_MAX.  PAT_ZERO checks for zeros. */
static NO_COVERAGE size_t pat_range(enum pat_op op, unsigned char *p, size_t off, size_t end,
				    uint64_t seed)
{
	size_t i = off;
	while (i < end) {
		size_t base = i & ~(size_t)7;
		uint64_t w = op == PAT_ZERO ? 0 : word_at(seed, base / 8);
		if (i == base && end - base >= 8) {
			if (op == PAT_FILL) {
				__builtin_memcpy(p + base, &w, 8);
			} else if (load64(p + base) != w) {
				unsigned char want[8];
				__builtin_memcpy(want, &w, 8);
				for (size_t j = 0;; j++)
					if (p[base + j] != want[j])
						return base + j;
			}
			i += 8;
			continue;
		}
		unsigned char want[8];
		__builtin_memcpy(want, &w, 8);
		size_t stop = end - base < 8 ? end : base + 8;
		for (; i < stop; i++) {
			if (op == PAT_FILL)
				p[i] = want[i - base];
			else if (p[i] != want[i - base])
				return i;
		}
	}
	return SIZE_MAX;
}

/* Apply op to the patterned ranges of an n-byte block that lie below
 * limit, or to a sample of them. */
static NO_COVERAGE size_t pat_apply(enum pat_op op, unsigned char *p, size_t n, size_t limit,
				    uint64_t seed, bool sample)
{
	size_t bad, full = sample ? SAMPLE_MAX : FULL_MAX, edge = sample ? SAMPLE_EDGE : EDGE;
	if (limit > n)
		limit = n;
	if (n <= full)
		return pat_range(op, p, 0, limit, seed);
	if ((bad = pat_range(op, p, 0, edge < limit ? edge : limit, seed)) != SIZE_MAX)
		return bad;
	/* the same strides in both modes: a sample checks only what a fill wrote */
	size_t phase = (size_t)(seed % (STRIDE / OS_PAGE)) * OS_PAGE;
	for (size_t off = phase; off + STRIDE_BYTES + EDGE <= n && off < limit; off += STRIDE) {
		size_t end = off + STRIDE_BYTES < limit ? off + STRIDE_BYTES : limit;
		if ((bad = pat_range(op, p, off, end, seed)) != SIZE_MAX)
			return bad;
	}
	size_t tail = (n - edge) & ~(size_t)7;
	return tail < limit ? pat_range(op, p, tail, limit, seed) : SIZE_MAX;
}

static void expect_pattern(unsigned char *p, size_t n, size_t limit, uint64_t seed,
			   enum pat_op op, bool sample, const char *what)
{
	size_t bad = pat_apply(op, p, n, limit, seed, sample);
	if (bad == SIZE_MAX)
		return;
	unsigned char want = 0;
	if (op != PAT_ZERO) {
		uint64_t w = word_at(seed, bad / 8);
		memcpy(&want, (unsigned char *)&w + bad % 8, 1);
	}
	fail("%s: block %p (%zu bytes): byte %zu is %#x, want %#x", what, (void *)p, n,
	     bad, p[bad], want);
}

static void verify_slot(struct run *r, unsigned si, bool sample, const char *what)
{
	struct slot *s = &r->slots[si];
	if (s->p)
		expect_pattern(s->p, s->size, s->size, s->seed, PAT_VERIFY, sample, what);
}

/* Statistics -------------------------------------------------------------------- */

static void stats_read(struct hak_stats *st)
{
	errno = ERRNO_MARK;
	if (hak_stats_get(st, sizeof *st) != 0)
		fail("hak_stats_get failed: errno %d", errno);
	if (errno != ERRNO_MARK)
		fail("hak_stats_get changed errno to %d", errno);
}

/* Bytes in use = start + usable sizes of the live blocks; with none live,
 * every class's and the large blocks' counts are back at the start too. */
static void stats_check(struct run *r)
{
	struct hak_stats st;
	uint64_t live = 0;
	unsigned nlive = 0;
	stats_read(&st);
	for (unsigned i = 0; i < NSLOTS; i++)
		if (r->slots[i].p) {
			live += r->slots[i].usable;
			nlive++;
		}
	if (st.bytes_in_use != r->start.bytes_in_use + live)
		fail("stats: %llu bytes in use, want %llu (%llu at the start + %llu in %u live blocks)",
		     (unsigned long long)st.bytes_in_use,
		     (unsigned long long)(r->start.bytes_in_use + live),
		     (unsigned long long)r->start.bytes_in_use, (unsigned long long)live, nlive);
	if (nlive)
		return;
	for (unsigned c = 0; c < st.num_classes && c < HAK_STATS_MAX_CLASSES; c++)
		if (st.classes[c].in_use != r->start.classes[c].in_use)
			fail("stats: class %u (%llu B): %llu blocks in use, %llu at the start", c,
			     (unsigned long long)st.classes[c].block_size,
			     (unsigned long long)st.classes[c].in_use,
			     (unsigned long long)r->start.classes[c].in_use);
	if (st.large_allocs - st.large_frees != r->start.large_allocs - r->start.large_frees ||
	    st.large_bytes_in_use != r->start.large_bytes_in_use)
		fail("stats: %llu large blocks (%llu B) in use, %llu (%llu B) at the start",
		     (unsigned long long)(st.large_allocs - st.large_frees),
		     (unsigned long long)st.large_bytes_in_use,
		     (unsigned long long)(r->start.large_allocs - r->start.large_frees),
		     (unsigned long long)r->start.large_bytes_in_use);
}

static void check_all(struct run *r)
{
	for (unsigned i = 0; i < NSLOTS; i++) {
		struct slot *s = &r->slots[i];
		if (!s->p)
			continue;
		verify_slot(r, i, true, "periodic check");
		size_t u = hak_malloc_usable_size(s->p);
		if (u != s->usable)
			fail("slot %u: usable size of %p is %zu, was %zu", i, (void *)s->p, u,
			     s->usable);
	}
	stats_check(r);
}

/* Sizes and alignments ---------------------------------------------------------- */

/* Tiny, each class boundary, any small size, up to 4 KiB, large up to
 * 4 MiB, near multiples of 64 KiB, and sizes no mapping can satisfy. */
static size_t read_size(struct run *r)
{
	static const long near64k[8] = {-65, -64, -63, -1, 0, 1, 16, 4096};
	static const size_t huge[7] = {
		SIZE_MAX, SIZE_MAX - 4095, PTRDIFF_MAX, (size_t)PTRDIFF_MAX + 1,
		PTRDIFF_MAX - 65536 - 64, PTRDIFF_MAX - 65536 - 65, HUGE_GEN,
	};
	uint8_t s = rd8(r);
	switch (s >> 5) {
	case 0:
		return s & 31;
	case 1: { /* a class's block size - 1, itself, + 1, + 16 */
		static const long d[4] = {-1, 0, 1, 16};
		size_t bs = class_size[rd8(r) % num_classes];
		return (size_t)((long)bs + d[s & 3]);
	}
	case 2:
		return rd16(r) % (small_max + 1);
	case 3:
		return rd16(r) % 4097;
	case 4: /* up to 64 KiB << (s & 7): mostly below 1 MiB, as big copies,
		 * page faults and unmaps are slow */
		return (rd16(r) << (s & 7)) % (LARGE_GEN_MAX + 1);
	case 5: { /* 1..64 times 64 KiB, mostly the small multiples */
		uint8_t k = rd8(r);
		size_t mult = (size_t)(1 + (k & 7)) << (k >> 3 & 3);
		return (size_t)((long)(mult << 16) + near64k[s & 7]);
	}
	case 6:
		if ((s & 7) == 7)
			return HUGE_GEN + (rd16(r) << 40);
		return huge[s & 7];
	default:
		return rd8(r);
	}
}

/* Powers of two from 1 to 2 GiB (> 1 GiB fails), other numbers, 0, and
 * alignments no allocator can give. */
static size_t read_align(struct run *r)
{
	static const size_t huge[8] = {
		SIZE_MAX, (SIZE_MAX >> 1) + 1, (SIZE_MAX >> 1) + 2, ((size_t)1 << 62) + 1,
		(size_t)1 << 62, ((size_t)1 << 62) - 1, (size_t)1 << 31, ((size_t)1 << 30) + 1,
	};
	uint8_t a = rd8(r);
	switch (a >> 5) {
	case 0:
	case 1:
	case 2:
		return (size_t)1 << ((a & 31) % 24);
	case 3:
		return (size_t)1 << (24 + (a & 7));
	case 4: { /* odd, or eight times odd: never a power of two */
		size_t odd = (size_t)rd8(r) * 2 + 3;
		return (a & 1) ? odd * 8 : odd;
	}
	case 5:
		return 0;
	case 6:
		return huge[a & 7];
	default:
		return (size_t)1 << (a & 15);
	}
}

static bool pow2(size_t x)
{
	return x && !(x & (x - 1));
}

/* A request that fits the budget, or one that must fail, stays as it is;
 * others are cut to a small size. */
static size_t budget(struct run *r, size_t size, size_t old)
{
	if (size >= FAIL_MIN || r->live_bytes - old + size <= LIVE_BUDGET)
		return size;
	return size % (small_max + 1);
}

/* Allocation and free ------------------------------------------------------------ */

/* What a call must do: fail with err, or succeed with a block of at least
 * min_usable bytes aligned to align (zeroed if zero). */
struct expect {
	int err;
	size_t align;
	size_t min_usable;
	bool zero;
	bool frees;     /* realloc to 0: frees the block and returns NULL */
};

/* Make calls c[0..n) in order, in the main thread or the helper. */
static void perform(struct call *c, size_t n, bool remote)
{
	if (remote)
		helper_run(c, n);
	else
		for (size_t i = 0; i < n; i++)
			call_run(&c[i]);
}

static void trace_call(const struct call *c, bool remote)
{
	if (!fuzz_alloc_trace)
		return;
	fprintf(stderr, "  %s(", call_name[c->fn]);
	if (c->fn == C_REALLOC || c->fn == C_REALLOCARRAY)
		fprintf(stderr, "%p, ", c->ptr);
	fprintf(stderr, "%#zx", c->a);
	if (c->fn == C_CALLOC || c->fn == C_REALLOCARRAY || c->fn == C_POSIX_MEMALIGN ||
	    c->fn == C_ALIGNED_ALLOC || c->fn == C_MEMALIGN)
		fprintf(stderr, ", %#zx", c->b);
	fprintf(stderr, ")%s -> %p", remote ? " by the helper" : "", c->ret);
	if (c->fn == C_POSIX_MEMALIGN)
		fprintf(stderr, " rc %d", c->rc);
	fprintf(stderr, " errno %d\n", c->err_out == ERRNO_MARK ? 0 : c->err_out);
}

static void expect_errno_kept(const struct call *c)
{
	if (c->err_out != ERRNO_MARK)
		fail("%s succeeded but changed errno to %d", call_name[c->fn], c->err_out);
}

static void slot_clear(struct run *r, unsigned si)
{
	struct slot *s = &r->slots[si];
	r->live_bytes -= s->size;
	memset(s, 0, sizeof *s);
}

/* Free slot si's block (or NULL): free_prepare, perform, free_check. */
static void free_prepare(struct run *r, unsigned si, struct call *c)
{
	verify_slot(r, si, false, "before free");
	memset(c, 0, sizeof *c);
	c->fn = C_FREE;
	c->ptr = r->slots[si].p;
}

static void free_check(struct run *r, unsigned si, const struct call *c, bool remote)
{
	TRACE("  free(%p)%s\n", c->ptr, remote ? " by the helper" : "");
	expect_errno_kept(c);
	if (r->slots[si].p)
		slot_clear(r, si);
}

static void free_slot(struct run *r, unsigned si, bool remote)
{
	struct call c;
	free_prepare(r, si, &c);
	perform(&c, 1, remote);
	free_check(r, si, &c, remote);
}

static NO_COVERAGE void expect_no_overlap(struct run *r, unsigned si, const unsigned char *p,
					  size_t n)
{
	for (unsigned j = 0; j < NSLOTS; j++) {
		const struct slot *o = &r->slots[j];
		if (j == si || !o->p)
			continue;
		if (p < o->p + o->usable && o->p < p + n)
			fail("new block %p (%zu usable) overlaps slot %u's %p (%zu usable)",
			     (const void *)p, n, j, (const void *)o->p, o->usable);
	}
}

/* Allocation call c (realloc included) for slot si: alloc_prepare, perform,
 * alloc_check against x.  Any block the slot holds is freed first, except
 * by realloc, which gets it as its argument. */
static void alloc_prepare(struct run *r, unsigned si, struct call *c)
{
	struct slot *s = &r->slots[si];
	if (c->fn == C_REALLOC || c->fn == C_REALLOCARRAY) {
		verify_slot(r, si, false, "before realloc");
		c->ptr = s->p;
	} else if (s->p) {
		free_slot(r, si, false);
	}
}

static void alloc_check(struct run *r, unsigned si, struct call *c, const struct expect *x,
			bool remote)
{
	struct slot *s = &r->slots[si];
	bool is_realloc = c->fn == C_REALLOC || c->fn == C_REALLOCARRAY;
	const char *name = call_name[c->fn];
	bool ok = c->fn == C_POSIX_MEMALIGN ? c->rc == 0 : c->ret != NULL;
	trace_call(c, remote);

	if (x->frees && s->p) {
		if (c->ret)
			fail("%s(%p, 0) returned %p, want NULL (the block freed)", name, c->ptr,
			     c->ret);
		expect_errno_kept(c);
		slot_clear(r, si);
		return;
	}
	if (x->err) {
		if (ok)
			fail("%s(%#zx, %#zx) succeeded (%p), want %s", name, c->a, c->b, c->ret,
			     x->err == ENOMEM ? "ENOMEM" : "EINVAL");
		if (c->fn == C_POSIX_MEMALIGN) {
			if (c->rc != x->err)
				fail("posix_memalign(%#zx, %#zx) returned %d, want %d", c->a, c->b,
				     c->rc, x->err);
			if (c->ret != &memptr_untouched)
				fail("posix_memalign failed but wrote *memptr");
			expect_errno_kept(c);
		} else if (c->err_out != x->err) {
			fail("%s(%#zx, %#zx) failed with errno %d, want %d", name, c->a, c->b,
			     c->err_out, x->err);
		}
		if (is_realloc && s->p) {
			verify_slot(r, si, false, "after a failed realloc");
			size_t u = hak_malloc_usable_size(s->p);
			if (u != s->usable)
				fail("usable size %zu after a failed realloc, was %zu", u, s->usable);
		}
		return;
	}
	if (!ok)
		fail("%s(%#zx, %#zx) failed: rc %d errno %d", name, c->a, c->b, c->rc, c->err_out);
	expect_errno_kept(c);
	unsigned char *p = c->ret;
	if ((uintptr_t)p % x->align)
		fail("%s(%#zx, %#zx) = %p is not aligned to %zu", name, c->a, c->b, (void *)p,
		     x->align);
	errno = ERRNO_MARK;
	size_t usable = hak_malloc_usable_size(p);
	if (errno != ERRNO_MARK)
		fail("malloc_usable_size changed errno to %d", errno);
	if (usable < x->min_usable || usable == 0)
		fail("%s(%#zx, %#zx) = %p: usable size %zu, want >= %zu", name, c->a, c->b,
		     (void *)p, usable, x->min_usable ? x->min_usable : 1);
	if (is_realloc && s->p)
		expect_pattern(p, s->size, x->min_usable, s->seed, PAT_VERIFY, false,
			       "prefix after realloc");
	if (x->zero)
		expect_pattern(p, x->min_usable, x->min_usable, 0, PAT_ZERO, false, "calloc");
	expect_no_overlap(r, si, p, usable);
	p[usable - 1] = 0xa5; /* the whole usable size is ours */
	if (s->p)
		slot_clear(r, si);
	s->p = p;
	s->size = x->min_usable;
	s->usable = usable;
	s->seed = slot_seed(si, ++r->gen);
	r->live_bytes += s->size;
	expect_pattern(p, s->size, s->size, s->seed, PAT_FILL, false, "fill");
}

static void alloc_into(struct run *r, unsigned si, struct call *c, const struct expect *x,
		       bool remote)
{
	alloc_prepare(r, si, c);
	perform(c, 1, remote);
	alloc_check(r, si, c, x, remote);
}

/* Read the arguments of an allocation call fn and work out what it must
 * do.  old is the size of the block a realloc gets. */
static void read_call(struct run *r, enum call_fn fn, size_t old, bool has_old, struct call *c,
		      struct expect *x)
{
	memset(x, 0, sizeof *x);
	x->align = MALLOC_ALIGN;
	c->fn = fn;
	switch (fn) {
	case C_MALLOC:
	case C_REALLOC:
	case C_VALLOC:
	case C_PVALLOC:
		c->a = budget(r, read_size(r), old);
		x->min_usable = c->a;
		if (c->a >= FAIL_MIN)
			x->err = ENOMEM;
		if (fn == C_REALLOC && c->a == 0 && has_old)
			x->frees = true;
		if (fn == C_VALLOC || fn == C_PVALLOC)
			x->align = OS_PAGE;
		if (fn == C_PVALLOC) {
			size_t rounded = (c->a + OS_PAGE - 1) & ~(OS_PAGE - 1);
			if (c->a > SIZE_MAX - (OS_PAGE - 1))
				x->err = ENOMEM;
			else
				x->min_usable = rounded ? rounded : OS_PAGE;
		}
		break;
	case C_CALLOC:
	case C_REALLOCARRAY: {
		uint8_t k = rd8(r);
		size_t total = budget(r, read_size(r), old);
		if (k >> 6 == 2) { /* a zero count or element size */
			c->a = (k & 1) ? 0 : total;
			c->b = (k & 1) ? total : 0;
		} else if (k >> 6 == 3) { /* a product that overflows */
			size_t e = 2 + total % 65536;
			c->a = SIZE_MAX / e + 1 + (k & 15);
			c->b = e;
		} else {
			c->a = 1 + (k & 15);
			c->b = total / c->a;
		}
		if (k & 16) { /* either order */
			size_t t = c->a;
			c->a = c->b;
			c->b = t;
		}
		if (__builtin_mul_overflow(c->a, c->b, &total) || total >= FAIL_MIN)
			x->err = ENOMEM;
		x->min_usable = total;
		x->zero = fn == C_CALLOC;
		if (fn == C_REALLOCARRAY && total == 0 && has_old && !x->err)
			x->frees = true;
		break;
	}
	case C_POSIX_MEMALIGN:
	case C_ALIGNED_ALLOC:
	case C_MEMALIGN: {
		size_t align = read_align(r);
		size_t size = budget(r, read_size(r), old);
		c->a = align;
		c->b = size;
		x->min_usable = size;
		if (fn == C_POSIX_MEMALIGN && (!pow2(align) || align % sizeof(void *))) {
			x->err = EINVAL;
			break;
		}
		if (fn == C_ALIGNED_ALLOC && !pow2(align)) {
			x->err = EINVAL;
			break;
		}
		if (fn == C_MEMALIGN && !pow2(align)) { /* rounded up to a power of two */
			if (align > MEMALIGN_EINVAL) {
				x->err = EINVAL;
				break;
			}
			size_t a2 = MALLOC_ALIGN;
			while (a2 < align)
				a2 <<= 1;
			align = a2;
		}
		x->align = align > MALLOC_ALIGN ? align : MALLOC_ALIGN;
		if (align > MAX_ALIGN || size >= FAIL_MIN)
			x->err = ENOMEM;
		break;
	}
	default:
		abort();
	}
}

/* Operations ---------------------------------------------------------------------- */

enum op {
	OP_MALLOC, OP_CALLOC, OP_REALLOC, OP_REALLOCARRAY, OP_POSIX_MEMALIGN,
	OP_ALIGNED_ALLOC, OP_MEMALIGN, OP_VALLOC, OP_PVALLOC, OP_FREE, OP_USABLE,
	OP_TRIM, OP_CHECK, OP_BURST, OP_FREE_BURST, OP_HELPER_RESTART,
};

static const char *const op_name[] = {
	[OP_MALLOC] = "malloc", [OP_CALLOC] = "calloc", [OP_REALLOC] = "realloc",
	[OP_REALLOCARRAY] = "reallocarray", [OP_POSIX_MEMALIGN] = "posix_memalign",
	[OP_ALIGNED_ALLOC] = "aligned_alloc", [OP_MEMALIGN] = "memalign",
	[OP_VALLOC] = "valloc", [OP_PVALLOC] = "pvalloc", [OP_FREE] = "free",
	[OP_USABLE] = "malloc_usable_size", [OP_TRIM] = "malloc_trim",
	[OP_CHECK] = "check", [OP_BURST] = "burst", [OP_FREE_BURST] = "free burst",
	[OP_HELPER_RESTART] = "helper restart",
};

/* Opcode & 63 -> operation, weighted: trimming costs milliseconds. */
#define OPCODE_MASK 63
static const uint8_t op_table[OPCODE_MASK + 1] = {
	[0 ... 9] = OP_MALLOC,
	[10 ... 19] = OP_FREE,
	[20 ... 27] = OP_REALLOC,
	[28 ... 31] = OP_CALLOC,
	[32 ... 35] = OP_REALLOCARRAY,
	[36 ... 39] = OP_POSIX_MEMALIGN,
	[40 ... 41] = OP_ALIGNED_ALLOC,
	[42 ... 45] = OP_MEMALIGN,
	[46 ... 47] = OP_VALLOC,
	[48 ... 49] = OP_PVALLOC,
	[50 ... 52] = OP_USABLE,
	[53] = OP_TRIM,
	[54 ... 55] = OP_CHECK,
	[56 ... 59] = OP_BURST,
	[60 ... 62] = OP_FREE_BURST,
	[63] = OP_HELPER_RESTART,
};

static const enum call_fn op_call[] = {
	[OP_MALLOC] = C_MALLOC, [OP_CALLOC] = C_CALLOC, [OP_REALLOC] = C_REALLOC,
	[OP_REALLOCARRAY] = C_REALLOCARRAY, [OP_POSIX_MEMALIGN] = C_POSIX_MEMALIGN,
	[OP_ALIGNED_ALLOC] = C_ALIGNED_ALLOC, [OP_MEMALIGN] = C_MEMALIGN,
	[OP_VALLOC] = C_VALLOC, [OP_PVALLOC] = C_PVALLOC,
};

/* The usable size of a live block is what it was; of NULL, 0. */
static void op_usable(struct run *r, unsigned si, bool remote)
{
	struct slot *s = &r->slots[si];
	struct call c = {.fn = C_USABLE, .ptr = s->p};
	perform(&c, 1, remote);
	expect_errno_kept(&c);
	if (c.usable != s->usable)
		fail("malloc_usable_size(%p) = %zu, want %zu", (void *)s->p, c.usable, s->usable);
	verify_slot(r, si, false, "usable size check");
}

static void op_trim(struct run *r, bool remote)
{
	struct call c = {.fn = C_TRIM, .a = (size_t)rd8(r) << 12};
	perform(&c, 1, remote);
	expect_errno_kept(&c);
	if (c.rc != 0 && c.rc != 1)
		fail("malloc_trim returned %d", c.rc);
	check_all(r); /* trimming must not touch a live block */
}

#define BURST_MAX 64

/* count small blocks of one size into consecutive slots: enough to fill
 * pages of the bigger classes and the thread cache of any class.  The
 * slots' old blocks are freed first; the calls go in one batch. */
static void op_burst(struct run *r, unsigned si, bool remote)
{
	struct call c[BURST_MAX];
	unsigned slot[BURST_MAX], n = 0;
	uint8_t k = rd8(r);
	unsigned count = 1 + (k % BURST_MAX);
	size_t size = read_size(r), batch_bytes = 0;
	if (size > small_max)
		size %= small_max + 1;
	struct expect x = {.align = MALLOC_ALIGN, .min_usable = size, .zero = k & 64};
	for (unsigned i = 0; i < count; i++) {
		unsigned j = (si + i) % NSLOTS;
		r->slot = (int)j;
		if (r->slots[j].p)
			free_slot(r, j, false);
		if (r->live_bytes + batch_bytes + size > LIVE_BUDGET)
			continue;
		memset(&c[n], 0, sizeof c[n]);
		c[n].fn = x.zero ? C_CALLOC : C_MALLOC;
		c[n].a = size;
		c[n].b = 1;
		slot[n++] = j;
		batch_bytes += size;
	}
	perform(c, n, remote);
	for (unsigned i = 0; i < n; i++) {
		r->slot = (int)slot[i];
		alloc_check(r, slot[i], &c[i], &x, remote);
	}
}

/* Free up to count slots from si with an odd stride (so all distinct): it
 * empties pages and flushes the thread cache.  One batch. */
static void op_free_burst(struct run *r, unsigned si, bool remote)
{
	struct call c[BURST_MAX];
	unsigned slot[BURST_MAX], n = 0;
	uint8_t k = rd8(r);
	unsigned count = 1 + (k % BURST_MAX), stride = 1 + (k >> 6) * 2;
	for (unsigned i = 0; i < count; i++) {
		unsigned j = (si + i * stride) % NSLOTS;
		r->slot = (int)j;
		if (r->slots[j].p) {
			free_prepare(r, j, &c[n]);
			slot[n++] = j;
		}
	}
	perform(c, n, remote);
	for (unsigned i = 0; i < n; i++) {
		r->slot = (int)slot[i];
		free_check(r, slot[i], &c[i], remote);
	}
}

static void step(struct run *r)
{
	uint8_t code = rd8(r);
	enum op op = op_table[code & OPCODE_MASK];
	bool remote = (code & 0xc0) == 0xc0;
	r->what = op_name[op];
	r->slot = -1;
	unsigned si = 0;
	if (op != OP_TRIM && op != OP_CHECK && op != OP_HELPER_RESTART) {
		si = rd8(r) % NSLOTS;
		r->slot = (int)si;
	}
	TRACE("op %lu: %s%s, slot %d\n", r->op, op_name[op], remote ? " by the helper" : "",
	      r->slot);
	switch (op) {
	case OP_MALLOC:
	case OP_CALLOC:
	case OP_REALLOC:
	case OP_REALLOCARRAY:
	case OP_POSIX_MEMALIGN:
	case OP_ALIGNED_ALLOC:
	case OP_MEMALIGN:
	case OP_VALLOC:
	case OP_PVALLOC: {
		struct call c;
		struct expect x;
		memset(&c, 0, sizeof c);
		bool realloc_op = op == OP_REALLOC || op == OP_REALLOCARRAY;
		struct slot *s = &r->slots[si];
		read_call(r, op_call[op], s->p ? s->size : 0, realloc_op && s->p, &c, &x);
		alloc_into(r, si, &c, &x, remote);
		break;
	}
	case OP_FREE:
		free_slot(r, si, remote);
		break;
	case OP_USABLE:
		op_usable(r, si, remote);
		break;
	case OP_TRIM:
		op_trim(r, remote);
		break;
	case OP_CHECK:
		check_all(r);
		break;
	case OP_BURST:
		op_burst(r, si, remote);
		break;
	case OP_FREE_BURST:
		op_free_burst(r, si, remote);
		break;
	case OP_HELPER_RESTART:
		helper_stop();
		break;
	}
}

static void classes_read(void)
{
	struct hak_stats st;
	stats_read(&st);
	num_classes = st.num_classes < HAK_STATS_MAX_CLASSES ? st.num_classes
							     : HAK_STATS_MAX_CLASSES;
	if (num_classes == 0)
		fail("hak_stats_get reports no size classes");
	for (unsigned c = 0; c < num_classes; c++)
		class_size[c] = st.classes[c].block_size;
	small_max = class_size[num_classes - 1];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run *r = &run;
	if (!num_classes)
		classes_read();
	r->in = data;
	r->n = size;
	r->pos = 0;
	r->op = 0;
	r->what = "start";
	r->slot = -1;
	r->gen = 0;
	r->live_bytes = 0;
	stats_read(&r->start);
	while (r->pos < r->n) {
		step(r);
		if (++r->op % CHECK_EVERY == 0) {
			r->what = "periodic check";
			r->slot = -1;
			check_all(r);
		}
	}
	r->what = "end";
	for (unsigned i = 0; i < NSLOTS; i++) {
		r->slot = (int)i;
		if (r->slots[i].p)
			free_slot(r, i, false);
	}
	r->slot = -1;
	stats_check(r);
	return 0;
}
