/*
 * prof.c - the sampled heap profile: which call stacks hold the memory.
 *
 * About one allocation per HAKMEM_PROFILE_SAMPLE bytes is sampled.  Every
 * heap counts down the bytes it hands out (one subtract and branch in
 * malloc_other, alloc.c, which every malloc takes while the profile is on:
 * with it off, malloc's inline path has no countdown); when the count goes
 * below zero the allocation
 * that crossed it is sampled and a new count is drawn from an exponential
 * distribution of that mean.  Sampling bytes as a Poisson process makes an
 * allocation of s bytes sampled with probability 1 - exp(-s / mean), so a
 * sample weighs s / (1 - exp(-s / mean)) estimated bytes: the estimates
 * are unbiased whatever the sizes (tcmalloc and jemalloc do the same).  A
 * mean of 1 samples every allocation of one byte or more, weighing its size.
 *
 * A sampled allocation is served by the large tier (large.c, span.c),
 * whose 64-byte header carries the sample (hak_large.pad: its weight, its
 * stack entry and its size): so a free of a sampled block is a large free,
 * which is already a slow path, and the free fast path needs no test.  A
 * small sampled block costs a 4 KiB span: one per 512 KiB allocated.
 *
 * The stack (up to HAK_PROF_FRAMES return addresses) comes from libunwind's
 * unw_backtrace: a DWARF unwinder (no frame pointers needed) that keeps a
 * per-thread cache of frame layouts in memory it maps itself, and never
 * calls malloc (measured: 0.1-0.2 us for 15-32 frames, against 10-21 us
 * for libgcc's _Unwind_Backtrace; see BENCHMARKS.md).  A malloc made while
 * the thread is already sampling (say libunwind's pthread_setspecific) is
 * not sampled.  Sampling runs inside the heap's fork gate, so a fork child
 * never inherits a half-written entry.
 *
 * The stacks live in the stats segment's table (statseg.h: struct
 * hak_seg_prof, with its protocol), where hakmem-stat --heap reads them.
 */
#include "config.h"
#include "internal.h"

#define UNW_LOCAL_ONLY
#include <errno.h>
#include <libunwind.h>
#include <link.h>
#include <math.h>
#include <sched.h>
#include <string.h>

#define PROF_MAX_INTERVAL_FACTOR 64 /* a drawn interval is at most 64 means */
#define PROF_SLOT_BITS 16            /* hak_large.pad[1]: entry + 1 | size << 16 */
#define PROF_SLOT_MASK ((1u << PROF_SLOT_BITS) - 1)
#define PROF_SKIP_SEARCH 8           /* frames searched for the caller's return */
_Static_assert(HAK_PROF_STACKS < PROF_SLOT_MASK, "entry index fits in pad[1]");
_Static_assert((HAK_PROF_STACKS & (HAK_PROF_STACKS - 1)) == 0, "a power of two");

/* libhakmem's own code, when it is a shared object of its own: frames there
 * are the allocator's, not the program's (empty when linked statically). */
static uintptr_t self_lo, self_hi;

static int find_self(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	uintptr_t me = (uintptr_t)arg;
	for (unsigned i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X) || me < lo ||
		    me >= lo + ph->p_memsz)
			continue;
		/* the main program (name ""): hakmem is linked into it */
		if (info->dlpi_name && info->dlpi_name[0]) {
			self_lo = lo;
			self_hi = lo + ph->p_memsz;
		}
		return 1;
	}
	return 0;
}

void hak__prof_init(void)
{
	struct hak_seg_prof *t = &hak__seg->prof;
	t->sample_bytes = hak__opt.prof_sample;
	t->num_stacks = HAK_PROF_STACKS;
	t->max_frames = HAK_PROF_FRAMES;
	t->stack_size = (uint32_t)sizeof(struct hak_prof_stack);
	if (hak__opt.prof_sample)
		dl_iterate_phdr(find_self, (void *)(uintptr_t)&hak__prof_init);
}

/* xorshift64*: the heap's own generator (one writer, no lock). */
static uint64_t rng_next(struct hak_heap *h)
{
	uint64_t x = h->prof_rng;
	if (!x)
		x = ((uintptr_t)h * 0x9e3779b97f4a7c15ull) ^ hak__now_ns() ^ hak__guard.secret;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	h->prof_rng = x ? x : 1;
	return x * 0x2545f4914f6cdd1dull;
}

/* Bytes to the next sample: exponential of the mean (0 at a mean of 1). */
static int64_t draw_interval(struct hak_heap *h, uint64_t mean)
{
	if (mean <= 1)
		return 0;
	/* u in [0, 1): -log(1 - u) is exponential with mean 1 */
	double u = (double)(rng_next(h) >> 11) * (1.0 / 9007199254740992.0);
	double v = -log1p(-u) * (double)mean;
	double cap = (double)mean * PROF_MAX_INTERVAL_FACTOR;
	return (int64_t)(v < cap ? v : cap);
}

size_t hak__prof_take(struct hak_heap *h, size_t size)
{
	uint64_t mean = hak__opt.prof_sample;
	if (h == &hak__empty_heap || !mean) {
		/* before a heap (every such thread shares the empty heap: all
		 * store the same value), or off: no countdown for 2^62 bytes */
		__atomic_store_n(&h->prof_left, INT64_MAX / 2, __ATOMIC_RELAXED);
		return 0;
	}
	int saved = errno;
	if (h->prof_busy) { /* a malloc made while sampling: not sampled */
		h->prof_left = draw_interval(h, mean);
		errno = saved;
		return 0;
	}
	bool armed = h->prof_armed;
	int64_t next = draw_interval(h, mean);
	errno = saved;
	h->prof_armed = 1;
	if (!armed) {
		/* a new heap: its first interval starts here, and this
		 * allocation counts against it */
		int64_t left = next - (int64_t)(size < INT64_MAX / 2 ? size : INT64_MAX / 2);
		if (left >= 0) {
			h->prof_left = left;
			return 0;
		}
		next = draw_interval(h, mean);
	}
	h->prof_left = next;
	/* the alignment the block needs: that of the class malloc would have
	 * used, so that hak__aligned's class trick holds for a sampled block */
	size_t cls_size = 0;
	if (size < hak__guard.small_limit)
		cls_size = hak__class_size[hak__class_of(size)];
	else if (hak__guard.slack && size <= HAK_SMALL_MAX - HAK_CANARY_BYTES)
		cls_size = hak__class_size[hak__class_of(size + HAK_CANARY_BYTES)];
	size_t align = cls_size ? cls_size & -cls_size : HAK_MIN_ALIGN;
	return align < HAK_MIN_ALIGN ? HAK_MIN_ALIGN : align;
}

/* The weight of a sample of size bytes: size / P(sampled). */
static uint64_t weight(size_t size, uint64_t mean)
{
	if (mean <= 1)
		return size;
	if (size == 0)
		return mean;
	double r = (double)size / (double)mean;
	if (r > 40.0) /* certain: exp would underflow (and set errno) */
		return size;
	double w = (double)size / -expm1(-r);
	return (uint64_t)(w + 0.5);
}

static bool same_frames(const struct hak_prof_stack *e, const uint64_t *f, unsigned n)
{
	return e->depth == n && memcmp(e->frames, f, n * sizeof *f) == 0;
}

/* The entry of stack f[0..n), inserted if new; -1 if the table has no room
 * for it within HAK_PROF_PROBES entries. */
static int entry_of(struct hak_seg_prof *t, const uint64_t *f, unsigned n)
{
	uint64_t hash = hak_prof_hash(f, n);
	for (unsigned k = 0; k < HAK_PROF_PROBES; k++) {
		unsigned i = (unsigned)(hash + k) & (HAK_PROF_STACKS - 1);
		struct hak_prof_stack *e = &t->stacks[i];
		uint64_t have = __atomic_load_n(&e->hash, __ATOMIC_ACQUIRE);
		if (have == 0) {
			if (__atomic_compare_exchange_n(&e->hash, &have, hash, false,
							__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
				e->depth = n;
				memcpy(e->frames, f, n * sizeof *f);
				__atomic_store_n(&e->ready, 1, __ATOMIC_RELEASE);
				uint64_t at = __atomic_fetch_add(&t->stacks_used, 1,
								 __ATOMIC_RELAXED);
				if (at < HAK_PROF_STACKS)
					__atomic_store_n(&t->order[at], (uint16_t)i,
							 __ATOMIC_RELEASE);
				return (int)i;
			}
			/* lost the race: have is the winner's hash */
		}
		if (have != hash)
			continue;
		/* the winner writes a few words in its gate: wait for them */
		while (!__atomic_load_n(&e->ready, __ATOMIC_ACQUIRE))
			sched_yield();
		if (same_frames(e, f, n))
			return (int)i;
	}
	return -1;
}

void hak__prof_record(void *p, size_t size, void *caller)
{
	struct hak_seg_prof *t = &hak__seg->prof;
	/* void * and uint64_t are the same here: one array for both uses */
	_Static_assert(sizeof(void *) == sizeof(uint64_t), "64-bit addresses");
	union {
		void *p[HAK_PROF_FRAMES + PROF_SKIP_SEARCH];
		uint64_t u[HAK_PROF_FRAMES + PROF_SKIP_SEARCH];
	} fr;
	void **frames = fr.p;
	int saved = errno;
	int n = unw_backtrace(frames, HAK_PROF_FRAMES + PROF_SKIP_SEARCH);
	errno = saved;
	/* start at the program's frame: the one that returns to where our
	 * entry point was called from, past any frame of libhakmem */
	int first = 1;
	for (int i = 0; i < n && i < PROF_SKIP_SEARCH; i++)
		if (frames[i] == caller) {
			first = i;
			break;
		}
	while (first < n && (uintptr_t)frames[first] >= self_lo &&
	       (uintptr_t)frames[first] < self_hi)
		first++;
	int depth = n - first;
	if (depth > HAK_PROF_FRAMES)
		depth = HAK_PROF_FRAMES;
	__atomic_fetch_add(&t->samples, 1, __ATOMIC_RELAXED);
	int i = depth > 0 ? entry_of(t, &fr.u[first], (unsigned)depth) : -1;
	if (i < 0) {
		__atomic_fetch_add(&t->dropped, 1, __ATOMIC_RELAXED);
		return;
	}
	struct hak_prof_stack *e = &t->stacks[i];
	uint64_t w = weight(size, t->sample_bytes);
	/* total before live: see statseg.h */
	__atomic_fetch_add(&e->total_count, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&e->total_bytes, size, __ATOMIC_RELAXED);
	__atomic_fetch_add(&e->total_est, w, __ATOMIC_RELEASE);
	__atomic_fetch_add(&e->live_count, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&e->live_bytes, size, __ATOMIC_RELAXED);
	__atomic_fetch_add(&e->live_est, w, __ATOMIC_RELAXED);
	struct hak_large *hdr = (struct hak_large *)((char *)p - HAK_LARGE_HDR);
	hdr->pad[0] = w;
	hdr->pad[1] = ((uint64_t)i + 1) | ((uint64_t)size << PROF_SLOT_BITS);
}

/* A sampled large block is freed (or moved by realloc): its sample leaves
 * the live figures of its stack. */
void hak__prof_free(struct hak_large *hdr)
{
	uint64_t tag = hdr->pad[1];
	unsigned i = (unsigned)(tag & PROF_SLOT_MASK) - 1;
	hdr->pad[1] = 0;
	if (i >= HAK_PROF_STACKS)
		return;
	struct hak_prof_stack *e = &hak__seg->prof.stacks[i];
	__atomic_fetch_sub(&e->live_est, hdr->pad[0], __ATOMIC_RELAXED);
	__atomic_fetch_sub(&e->live_bytes, tag >> PROF_SLOT_BITS, __ATOMIC_RELAXED);
	__atomic_fetch_sub(&e->live_count, 1, __ATOMIC_RELAXED);
}
