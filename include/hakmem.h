/*
 * hakmem.h - public interface of libhakmem, a per-page sharded malloc.
 *
 * Every standard allocation call is also available with a hak_ prefix so that
 * a program can use hakmem beside another allocator.  Statistics are read
 * with hak_stats_get() into a versioned structure.
 */
#ifndef HAKMEM_H
#define HAKMEM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HAKMEM_VERSION_MAJOR 1
#define HAKMEM_VERSION_MINOR 0
#define HAKMEM_VERSION_PATCH 0

/* Version string of the loaded library, e.g. "1.0.0". */
const char *hak_version(void);

void *hak_malloc(size_t size);
void hak_free(void *ptr);
void *hak_calloc(size_t nmemb, size_t size);
void *hak_realloc(void *ptr, size_t size);
void *hak_reallocarray(void *ptr, size_t nmemb, size_t size);
int hak_posix_memalign(void **memptr, size_t alignment, size_t size);
void *hak_aligned_alloc(size_t alignment, size_t size);
void *hak_memalign(size_t alignment, size_t size);
void *hak_valloc(size_t size);
void *hak_pvalloc(size_t size);
size_t hak_malloc_usable_size(void *ptr);
/* Return free pages and cached spans to the operating system now.
 * Returns 1 if memory was released, 0 otherwise (as glibc's malloc_trim). */
int hak_malloc_trim(size_t pad);

/* Statistics ---------------------------------------------------------- */

#define HAK_STATS_VERSION 3 /* 2: the span tier's fields after classes[];
			     * 3: reserved_bytes */
/* Upper bound on the number of size classes reported; the library fills
 * num_classes entries of classes[]. */
#define HAK_STATS_MAX_CLASSES 48

struct hak_class_stats {
	uint64_t block_size;   /* bytes per block of this class */
	uint64_t allocs;       /* blocks handed out since start */
	uint64_t frees;        /* blocks returned since start */
	uint64_t in_use;       /* allocs - frees at the moment of reading */
	uint64_t bytes_in_use; /* in_use * block_size */
};

struct hak_stats {
	uint32_t version;       /* HAK_STATS_VERSION of the library */
	uint32_t size;          /* bytes of this structure the library filled */
	uint32_t num_classes;   /* valid entries in classes[] */
	uint32_t threads;       /* threads that currently own a heap */
	uint64_t bytes_in_use;  /* small + large bytes handed out, not freed */
	uint64_t large_bytes_in_use;
	uint64_t mapped_bytes;  /* address space hakmem holds mapped */
	uint64_t resident_bytes;/* mapped minus purged (an upper bound) */
	uint64_t pages_from_os; /* 64 KiB pages carved from fresh mappings */
	uint64_t pages_reused;  /* pages adopted, claimed, or taken from the pool */
	uint64_t pending_enqueued; /* pages put on a pending queue */
	uint64_t pending_drained;  /* pending pages drained */
	uint64_t adoptions;     /* ownership transfers of pages between threads */
	uint64_t lease_refusals;/* adoptions refused because of the lease */
	uint64_t remote_frees;  /* frees by a thread other than the page owner */
	uint64_t purged_bytes;  /* bytes returned to the OS since start */
	uint64_t large_allocs;  /* allocations above the largest class */
	uint64_t large_frees;
	struct hak_class_stats classes[HAK_STATS_MAX_CLASSES];
	/* version 2: large blocks up to HAKMEM_SPAN_MAX_MB come from the span
	 * tier, whose freed memory is kept for reuse */
	uint64_t large_reused;  /* large allocations served from memory kept */
	uint64_t large_direct;  /* large allocations given a mapping of their own */
	uint64_t large_inplace; /* reallocs that grew a large block in place */
	uint64_t span_mapped_bytes; /* address space of the span tier (in mapped_bytes) */
	uint64_t span_kept_bytes;   /* freed span memory kept resident for reuse */
	/* version 3 */
	uint64_t reserved_bytes;    /* address space reserved for arenas, not yet
				     * mapped (not in mapped_bytes): no memory */
};

/* Fill *st (size bytes of it; pass sizeof *st).  Returns 0, or -1 with
 * errno EINVAL when st is NULL or size is too small for the header. */
int hak_stats_get(struct hak_stats *st, size_t size);

/* Page reuse in percent: reused / (reused + from_os) * 100; 0 when none. */
double hak_stats_page_reuse_pct(const struct hak_stats *st);

#ifdef __cplusplus
}
#endif

#endif /* HAKMEM_H */
