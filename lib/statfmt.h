/*
 * statfmt.h - reading a stats segment image: validate it, sum its slots
 * into a summary, and format that summary as text or JSON.
 *
 * Shared by libhakmem (HAKMEM_SHOW_STATS at exit) and hakmem-stat, so that
 * both print the same thing.  Nothing here allocates, locks or uses stdio:
 * the library calls it from a destructor, possibly under LD_PRELOAD.
 * Every output goes into a caller buffer and is truncated, never overrun.
 */
#ifndef HAKMEM_STATFMT_H
#define HAKMEM_STATFMT_H

#include <stddef.h>
#include <stdint.h>

#include "statseg.h"

/* Totals of one size class (or of the large allocations). */
struct hak_statsum_class {
	uint64_t block_size;
	uint64_t allocs;
	uint64_t frees;
	uint64_t in_use;       /* allocs - frees, clamped at 0 */
	uint64_t bytes_in_use; /* in_use * block_size (large: exact bytes) */
};

/* A process's counters summed over its slots, plus what the caller knows
 * about the process from elsewhere (VmRSS, the time of the sample). */
struct hak_statsum {
	int64_t pid;
	uint64_t start_time_ns;  /* CLOCK_REALTIME of the segment's creation */
	uint64_t now_ns;         /* CLOCK_REALTIME of the sample (caller) */
	char comm[16];
	char strategy[16];
	uint32_t num_classes;
	uint32_t slots_used;     /* slots ever bound to a thread */
	uint64_t threads;        /* live heaps */
	uint64_t heaps_created;
	uint64_t bytes_in_use;   /* small + large */
	uint64_t mapped_bytes;
	uint64_t resident_bound; /* mapped - currently purged: an upper bound */
	int64_t vm_rss;          /* whole process from /proc, -1 if unknown */
	uint64_t unpurged_free_bytes;
	uint64_t purged_bytes;
	uint64_t pages_from_os;
	uint64_t pages_reused;
	uint64_t pending_enqueued;
	uint64_t pending_drained;
	uint64_t adoptions;
	uint64_t lease_refusals;
	uint64_t remote_frees;
	uint64_t allocs;         /* all classes and large */
	uint64_t frees;
	int64_t large_bytes_net; /* large bytes allocated - freed, as summed */
	uint64_t large_reused;   /* large allocations served from memory kept */
	uint64_t large_direct;   /* ... by a mapping of their own */
	uint64_t large_inplace;  /* reallocs that grew a large block in place */
	uint64_t span_mapped_bytes; /* span tier regions */
	uint64_t reserved_bytes;    /* arena span reserved, not mapped */
	uint64_t span_kept_bytes;   /* free span bytes kept resident for reuse */
	struct hak_statsum_class large;
	struct hak_statsum_class cls[HAK_SEG_CLASSES];
};

/* Why an image is not a usable segment.  HAK_SEGV_OK is 0. */
enum hak_segv {
	HAK_SEGV_OK = 0,
	HAK_SEGV_TRUNCATED,   /* shorter than its header or its total_size */
	HAK_SEGV_MAGIC,       /* not a hakmem stats segment */
	HAK_SEGV_LAYOUT,      /* another layout version */
	HAK_SEGV_SIZE,        /* total_size differs from the object's size */
	HAK_SEGV_DAMAGED,     /* a field out of range */
	HAK_SEGV_PID,         /* written by another pid than its name says */
	HAK_SEGV_NOT_READY,   /* the writer has not finished the header */
};

/* Check an image of len bytes that should belong to pid (pid <= 0: any).
 * On failure, writes a one-line reason (no trailing newline) into why,
 * e.g. "layout version 7, this reader knows 1". */
enum hak_segv hak__seg_validate(const void *img, size_t len, int64_t pid,
				char *why, size_t why_cap);

/* Summing: start from a validated header (or the live one in-process),
 * add slots, then finish (in-use figures, totals). */
void hak__statsum_begin(struct hak_statsum *s, const struct hak_seg_header *h);
void hak__statsum_add_slot(struct hak_statsum *s, const struct hak_seg_slot *slot);
void hak__statsum_finish(struct hak_statsum *s);
/* begin + every used slot + the overflow slot + finish. */
void hak__statsum_from_seg(struct hak_statsum *s, const struct hak_seg_header *h);

/* Page reuse in tenths of a percent: reused / (reused + from OS). */
uint64_t hak__statsum_reuse_permille(const struct hak_statsum *s);

/* VmRSS in bytes from a /proc/<pid>/status path; -1 if unreadable. */
int64_t hak__proc_vmrss(const char *status_path);

/* The snapshot as text (the HAKMEM_SHOW_STATS summary) or as one JSON
 * object without a newline.  Return the length written (always
 * NUL-terminated, truncated to cap - 1). */
size_t hak__statfmt_text(const struct hak_statsum *s, char *buf, size_t cap);

/* A small append-only writer into a caller buffer, for callers that build
 * their own lines from the same pieces (hakmem-stat's watch and list). */
struct hak_sbuf {
	char *p;
	size_t len;
	size_t cap;
};
void hak__sb_str(struct hak_sbuf *b, const char *s);
void hak__sb_u64(struct hak_sbuf *b, uint64_t v);
void hak__sb_i64(struct hak_sbuf *b, int64_t v);
/* v / 10^decimals with that many decimals, e.g. (1234, 1) -> "123.4" */
void hak__sb_fixed(struct hak_sbuf *b, uint64_t v, unsigned decimals);
/* right-aligned in width columns */
void hak__sb_pad_str(struct hak_sbuf *b, const char *s, size_t width);
void hak__sb_pad_u64(struct hak_sbuf *b, uint64_t v, size_t width);
/* "12.3 MiB"-style size */
void hak__sb_human(struct hak_sbuf *b, uint64_t bytes);
/* the text with anything not printable ASCII shown as '?' */
void hak__sb_safe_str(struct hak_sbuf *b, const char *s, size_t max);

#endif /* HAKMEM_STATFMT_H */
