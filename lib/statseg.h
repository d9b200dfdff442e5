/*
 * statseg.h - layout of the counters hakmem keeps, shared by the library
 * (the writer) and hakmem-stat (a reader in another process).
 *
 * The same structures hold the counters whether or not they are published:
 * with HAKMEM_STATS=0 they live in private memory, otherwise in a POSIX
 * shared-memory object named HAK_SEG_PREFIX<pid> (mode 0600).
 *
 * Writers: every struct hak_seg_slot has exactly one writer, the thread that
 * owns the heap bound to it, which updates it with relaxed loads and stores
 * (no read-modify-write, no lock).  The global block is written with relaxed
 * atomic adds from slow paths only.  Readers load every field relaxed and
 * must validate the header before trusting any size or count in it.
 */
#ifndef HAKMEM_STATSEG_H
#define HAKMEM_STATSEG_H

#include <stdint.h>

#define HAK_SEG_PREFIX "/hakmem."
#define HAK_SEG_DIR "/dev/shm" /* where shm_open(3) keeps them, on Linux */
/* a fork child names its segment at its first slow path after this long */
#define HAK_SEG_NAME_DELAY_NS 100000000u
/* a process removes its user's segments of dead processes this old */
#define HAK_SEG_STALE_S 60
#define HAK_SEG_MAGIC 0x314745534b4d4148ULL /* "HAKMSEG1" little-endian */
#define HAK_SEG_LAYOUT 4 /* 2: the span tier's counters; 3: the heap profile;
			  * 4: reserved_bytes */
#define HAK_SEG_CLASSES 48 /* room for classes; header says how many are used */
#define HAK_SEG_SLOTS 1024 /* thread slots (see global.overflow) */
#define HAK_SEG_SPAN_SHARDS 8 /* span tier shards (lib/span.c) */
#define HAK_SEG_SPAN_STEP ((uint64_t)1 << 20)

/* Per-thread counters.  Slot lifecycle: state goes 0 (never used) ->
 * 1 (bound to a live thread) -> 2 (thread exited; counters kept). */
struct hak_seg_slot {
	uint64_t state;
	uint64_t tid;
	uint64_t allocs[HAK_SEG_CLASSES];
	uint64_t frees[HAK_SEG_CLASSES];
	uint64_t pages_from_os;
	uint64_t pages_reused;
	uint64_t pending_enqueued;
	uint64_t pending_drained;
	uint64_t adoptions;
	uint64_t lease_refusals;
	uint64_t remote_frees;
	uint64_t large_allocs;
	uint64_t large_frees;
	uint64_t large_alloc_bytes;
	uint64_t large_free_bytes;
	uint64_t large_reused;   /* large allocations served from freed memory kept */
	uint64_t large_direct;   /* ... by a new mapping of their own */
	uint64_t large_inplace;  /* reallocs that grew a large block in place */
};

/* Process-wide counters, updated with relaxed atomic adds (slow paths). */
struct hak_seg_global {
	uint64_t mapped_bytes;   /* currently mapped */
	uint64_t purged_bytes;   /* total returned to the OS */
	uint64_t unpurged_free_bytes; /* free pages/spans not yet purged */
	uint64_t purged_now_bytes;    /* mapped but currently purged */
	uint64_t span_mapped_bytes;   /* span tier regions (in mapped_bytes) */
	uint64_t reserved_bytes;      /* arena span reserved, not mapped yet */
	/* Free span bytes kept resident for reuse, per shard: written with
	 * relaxed stores by the holder of the shard's lock (one writer at a
	 * time); unpurged_free_bytes and purged_now_bytes get the tier's
	 * figures in steps of at least HAK_SEG_SPAN_STEP (exact at zero), so
	 * that its locks do not share one counter's cache line. */
	uint64_t span_kept_bytes[HAK_SEG_SPAN_SHARDS];
	uint64_t threads;        /* live heaps */
	uint64_t heaps_created;
	/* Threads beyond HAK_SEG_SLOTS count in private memory (seen only by
	 * hak_stats_get in the process) and fold their counters in here with
	 * atomic adds when they exit. */
	struct hak_seg_slot overflow;
};

/* The heap profile (lib/prof.c): sampled allocations by call stack.
 *
 * A fixed open-addressed table of stacks, keyed by a hash of the frames.
 * Insertion (any thread, inside its fork gate): claim an empty entry with a
 * CAS of hash 0 -> hash, write depth and frames, then store ready = 1 with
 * release.  An entry is never removed or rewritten, so its frames are
 * immutable once ready.  ready sits before the frames: a reader copying the
 * entry in address order that sees ready = 1 sees whole frames.
 * Counters: relaxed atomic adds; an allocation adds to total_* before
 * live_*, a free subtracts from live_* only, and live_* lie before total_*,
 * so an in-order copy never shows live_count > total_count.
 * Byte figures are estimates (each sample weighs size / P(sampled)); the
 * raw sampled bytes are kept beside them. */
#define HAK_PROF_FRAMES 32
#define HAK_PROF_STACKS 4096 /* a power of two */
#define HAK_PROF_PROBES 64   /* entries looked at before a sample is dropped */
#define HAK_PROF_MAX_SAMPLE (1 << 30) /* HAKMEM_PROFILE_SAMPLE's largest value */
struct hak_prof_stack {
	uint64_t hash;           /* 0: empty; set once, by CAS */
	uint32_t ready;          /* 1 once depth and frames are written */
	uint32_t depth;          /* frames[] used, 1..HAK_PROF_FRAMES */
	uint64_t live_est;       /* estimated live bytes */
	uint64_t live_bytes;     /* sampled live bytes (requested sizes) */
	uint64_t live_count;     /* sampled live blocks */
	uint64_t total_est;      /* estimated bytes allocated since start */
	uint64_t total_bytes;
	uint64_t total_count;
	uint64_t frames[HAK_PROF_FRAMES]; /* return addresses, innermost first */
};

struct hak_seg_prof {
	uint64_t sample_bytes;   /* HAKMEM_PROFILE_SAMPLE: mean interval, 0 off */
	uint32_t num_stacks;     /* HAK_PROF_STACKS */
	uint32_t max_frames;     /* HAK_PROF_FRAMES */
	uint32_t stack_size;     /* sizeof(struct hak_prof_stack) */
	uint32_t pad;
	uint64_t samples;        /* allocations sampled */
	uint64_t dropped;        /* samples lost: table full, or no stack */
	uint64_t stacks_used;    /* entries claimed */
	uint16_t order[HAK_PROF_STACKS]; /* the entries claimed, in claim order:
					  * [0, stacks_used) (a fork copies only these) */
	struct hak_prof_stack stacks[HAK_PROF_STACKS];
};

/* The hash of a stack (never 0): the writer's key, which a reader
 * recomputes to check an entry. */
static inline uint64_t hak_prof_hash(const uint64_t *frames, unsigned n)
{
	uint64_t x = 0xcbf29ce484222325ull ^ n;
	for (unsigned i = 0; i < n; i++) {
		x ^= frames[i];
		x *= 0x100000001b3ull;
		x ^= x >> 29;
	}
	return x ? x : 1;
}

struct hak_seg_header {
	uint64_t magic;          /* HAK_SEG_MAGIC */
	uint32_t layout;         /* HAK_SEG_LAYOUT */
	uint32_t header_size;    /* sizeof(struct hak_seg_header) */
	uint64_t total_size;     /* bytes of the whole object */
	int64_t pid;
	uint64_t start_time_ns;  /* CLOCK_REALTIME at start-up */
	uint32_t num_classes;    /* entries of class_size[] in use */
	uint32_t num_slots;      /* HAK_SEG_SLOTS */
	uint32_t slot_size;      /* sizeof(struct hak_seg_slot) */
	uint32_t ready;          /* 1 once every field above is written */
	char comm[16];           /* command name (NUL-terminated) */
	char strategy[16];       /* drain strategy name */
	uint64_t class_size[HAK_SEG_CLASSES];
	struct hak_seg_global global;
	struct hak_seg_slot slots[HAK_SEG_SLOTS];
	struct hak_seg_prof prof;
};

#endif /* HAKMEM_STATSEG_H */
