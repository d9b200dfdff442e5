/*
 * latency.c - sampled per-call latency: buffers and percentiles.
 *
 * A buffer is mapped before the timed phase and belongs to one thread chain
 * (one thread at a time), so recording is a store and an increment: nothing
 * allocates inside the timed region.  When a buffer fills, every other sample
 * is dropped and the caller halves its sampling rate, so the kept samples
 * cover the whole run evenly however long it is.
 */
#include "bench.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct lat_buf {
	size_t capacity;
	size_t count;
	uint64_t ns[];
};

static size_t buf_bytes(size_t capacity)
{
	return sizeof(struct lat_buf) + capacity * sizeof(uint64_t);
}

struct lat_buf *lat_buf_new(size_t capacity)
{
	struct lat_buf *b = mmap(NULL, buf_bytes(capacity), PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b == MAP_FAILED)
		return NULL;
	b->capacity = capacity;
	b->count = 0;
	return b;
}

void lat_buf_free(struct lat_buf *b)
{
	if (b)
		munmap(b, buf_bytes(b->capacity));
}

bool lat_record(struct lat_buf *b, uint64_t ns)
{
	if (b->count < b->capacity)
		b->ns[b->count++] = ns;
	return b->count == b->capacity;
}

void lat_halve(struct lat_buf *b)
{
	size_t k = 0;
	for (size_t i = 0; i < b->count; i += 2)
		b->ns[k++] = b->ns[i];
	b->count = k;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v[0..n). */
static double rank(const uint64_t *v, size_t n, double pct)
{
	size_t r = (size_t)(pct / 100.0 * (double)n + 0.999999);
	if (r < 1)
		r = 1;
	if (r > n)
		r = n;
	return (double)v[r - 1];
}

void lat_summarise(struct lat_buf *const *bufs, size_t n, struct lat_summary *out)
{
	memset(out, 0, sizeof *out);
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += bufs[i]->count;
	if (total == 0)
		return;
	uint64_t *all = malloc(total * sizeof *all);
	if (!all)
		return;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		memcpy(all + k, bufs[i]->ns, bufs[i]->count * sizeof *all);
		k += bufs[i]->count;
	}
	qsort(all, total, sizeof *all, cmp_u64);
	out->count = total;
	out->p50 = rank(all, total, 50.0);
	out->p99 = rank(all, total, 99.0);
	out->p999 = rank(all, total, 99.9);
	out->max = (double)all[total - 1];
	free(all);
}
