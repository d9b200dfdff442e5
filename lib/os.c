/*
 * os.c - the only file that talks to the kernel for memory, time, thread
 * ids, futexes and barriers, plus error reporting that never allocates.
 *
 * Every wrapper preserves errno except hak__os_map*, which leave ENOMEM
 * when the kernel refuses memory.
 */
#include "config.h"
#include "internal.h"

#include <errno.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

void *hak__os_map(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		errno = ENOMEM;
		return NULL;
	}
	return p;
}

/* Map size bytes with prot, aligned to align (a power of two), by mapping
 * size + align and trimming both ends; NULL with ENOMEM. */
static void *map_trimmed(size_t size, size_t align, int prot)
{
	if (size + align < size) {
		errno = ENOMEM;
		return NULL;
	}
	char *raw = mmap(NULL, size + align, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			 -1, 0);
	if (raw == MAP_FAILED) {
		errno = ENOMEM;
		return NULL;
	}
	uintptr_t start = ((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1);
	size_t head = start - (uintptr_t)raw;
	size_t tail = align - head;
	if (head)
		hak__os_unmap(raw, head);
	if (tail)
		hak__os_unmap((char *)start + size, tail);
	return (void *)start;
}

/* Map size bytes aligned to align (a power of two >= 4 KiB). */
void *hak__os_map_aligned(size_t size, size_t align)
{
	if (align <= HAK_OS_PAGE)
		return hak__os_map(size);
	return map_trimmed(size, align, PROT_READ | PROT_WRITE);
}

/* Reserve size bytes of address space (aligned to align, a power of two):
 * no access, no memory, not counted against the commit limit. */
void *hak__os_reserve(size_t size, size_t align)
{
	int saved = errno;
	void *p = map_trimmed(size, align, PROT_NONE);
	errno = saved;
	return p;
}

/* Memory for [p, p + size) of a reservation, or NULL with ENOMEM. */
void *hak__os_map_reserved(void *p, size_t size)
{
	void *q = mmap(p, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
	if (q == MAP_FAILED) {
		errno = ENOMEM;
		return NULL;
	}
	return q;
}

/* Give [p, p + size) of a reservation back: its memory goes, the range stays
 * reserved. */
void hak__os_unmap_reserved(void *p, size_t size)
{
	int saved = errno;
	if (mmap(p, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
		 -1, 0) == MAP_FAILED)
		madvise(p, size, MADV_DONTNEED); /* refused: at least the memory goes */
	errno = saved;
}

/* Whether the address space is limited (RLIMIT_AS): reserved address space
 * would then escape the kernel's count, see hak__hints_init. */
bool hak__os_as_limited(void)
{
	struct rlimit r;
	return getrlimit(RLIMIT_AS, &r) == 0 && r.rlim_cur != RLIM_INFINITY;
}

void hak__os_unmap(void *p, size_t size)
{
	int saved = errno;
	munmap(p, size);
	errno = saved;
}

/* process_madvise(2)'s name for the calling process (PIDFD_SELF_THREAD_GROUP,
 * Linux 6.15; from 6.13 a process may give itself any advice this way). */
#define HAK_PIDFD_SELF_GROUP (-10001)

/* Whether a purge may still try one process_madvise for a whole batch:
 * cleared for good once the kernel refuses it (an older kernel does not
 * know the name above, a sandbox may deny the call).  Tests clear it to
 * run the one-range-at-a-time path. */
_Atomic bool hak__os_vector_purge = true;

/* Sort v[0..n) by address and merge ranges that touch; returns the new
 * count.  (Insertion sort: a batch is at most a few dozen ranges, and most
 * come in order already.) */
static unsigned ranges_merge(struct iovec *v, unsigned n)
{
	for (unsigned i = 1; i < n; i++) {
		struct iovec t = v[i];
		unsigned j = i;
		for (; j > 0 && (uintptr_t)v[j - 1].iov_base > (uintptr_t)t.iov_base; j--)
			v[j] = v[j - 1];
		v[j] = t;
	}
	unsigned m = 0;
	for (unsigned i = 0; i < n; i++) {
		if (m && (char *)v[m - 1].iov_base + v[m - 1].iov_len == (char *)v[i].iov_base)
			v[m - 1].iov_len += v[i].iov_len;
		else
			v[m++] = v[i];
	}
	return m;
}

/* Purge n ranges at once (their memory goes, the ranges stay mapped and
 * read as zero), reordering v.  Adjacent ranges become one; the rest go to
 * the kernel in a single process_madvise where it takes one, which costs
 * one system call and, on kernels that batch them, one TLB shootdown for
 * the whole batch instead of one per range (published Larson 2-32 KiB:
 * 2% of its time in madvise, half of it the other CPU's TLB flushes).
 * Whatever the call left undone is purged one range at a time. */
void hak__os_purge_ranges(struct iovec *v, unsigned n)
{
	n = ranges_merge(v, n);
	unsigned i = 0;
	int saved = errno;
#ifdef SYS_process_madvise /* (C libraries older than the call lack its number) */
	if (n > 1 && atomic_load_explicit(&hak__os_vector_purge, memory_order_relaxed)) {
		long done = syscall(SYS_process_madvise, HAK_PIDFD_SELF_GROUP, v, (size_t)n,
				    MADV_DONTNEED, 0u);
		if (done < 0 && (errno == EBADF || errno == EINVAL || errno == ENOSYS ||
				 errno == EPERM || errno == ESRCH))
			atomic_store_explicit(&hak__os_vector_purge, false, memory_order_relaxed);
		/* skip the ranges done in full; a range done in part goes again */
		for (; done > 0 && i < n && (size_t)done >= v[i].iov_len; i++)
			done -= (long)v[i].iov_len;
	}
#endif
	for (; i < n; i++)
		madvise(v[i].iov_base, v[i].iov_len, MADV_DONTNEED);
	errno = saved;
}

uint64_t hak__now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CPUs this process may run on (1 if unknown); sched_getaffinity fills a
 * set on the stack, nothing is allocated. */
unsigned hak__os_ncpus(void)
{
	int saved = errno;
	cpu_set_t set;
	unsigned n = 1;
	if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
		n = (unsigned)CPU_COUNT(&set);
	errno = saved;
	return n;
}

pid_t hak__gettid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

void hak__futex_wait(_Atomic uint32_t *w, uint32_t val, const struct timespec *ts)
{
	int saved = errno;
	syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT_PRIVATE, val, ts, NULL, 0);
	errno = saved;
}

void hak__futex_wake(_Atomic uint32_t *w, int n)
{
	int saved = errno;
	syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
	errno = saved;
}

/* The process's threads' half of an asymmetric fence: once registered,
 * hak__os_barrier_all() makes every running thread of the process execute a
 * full memory barrier before it returns (membarrier(2), Linux 4.14). */
bool hak__os_barrier_register(void)
{
	int saved = errno;
	long r = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0);
	errno = saved;
	return r == 0;
}

void hak__os_barrier_all(void)
{
	int saved = errno;
	syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
	errno = saved;
}

/* Spin locks guard slow paths only (page pool, span cache, registries);
 * no system call is made while one is held. */
void hak__spin_lock(_Atomic uint32_t *l)
{
	for (unsigned spins = 0;; spins++) {
		if (!atomic_exchange_explicit(l, 1, memory_order_acquire))
			return;
		while (atomic_load_explicit(l, memory_order_relaxed)) {
			if (++spins > 64) {
				sched_yield();
				spins = 0;
			} else {
				__builtin_ia32_pause();
			}
		}
	}
}

bool hak__spin_trylock(_Atomic uint32_t *l)
{
	return !atomic_load_explicit(l, memory_order_relaxed) &&
	       !atomic_exchange_explicit(l, 1, memory_order_acquire);
}

void hak__spin_unlock(_Atomic uint32_t *l)
{
	atomic_store_explicit(l, 0, memory_order_release);
}

char *hak__fmt_hex(char *buf, uintptr_t v)
{
	static const char digits[] = "0123456789abcdef";
	char tmp[2 + 16];
	int n = 0;
	do {
		tmp[n++] = digits[v & 15];
		v >>= 4;
	} while (v);
	char *o = buf;
	*o++ = '0';
	*o++ = 'x';
	while (n)
		*o++ = tmp[--n];
	*o = 0;
	return buf;
}

char *hak__fmt_u64(char *buf, uint64_t v)
{
	char tmp[24];
	int n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	char *o = buf;
	while (n)
		*o++ = tmp[--n];
	*o = 0;
	return buf;
}

/* Write all of buf to fd, retrying short and interrupted writes. */
void hak__write_all(int fd, const char *buf, size_t len)
{
	int saved = errno;
	while (len) {
		ssize_t w = write(fd, buf, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		buf += w;
		len -= (size_t)w;
	}
	errno = saved;
}

void hak__write_err(const char *a, const char *b, const char *c)
{
	const char *parts[3] = {a, b, c};
	for (int i = 0; i < 3; i++)
		if (parts[i])
			hak__write_all(STDERR_FILENO, parts[i], strlen(parts[i]));
}

void hak__fatal_ptr(const char *call, const char *what, const void *p)
{
	char hex[24];
	hak__write_err("hakmem: ", call, "(): ");
	hak__write_err(what, ": ", NULL);
	hak__write_err(hak__fmt_hex(hex, (uintptr_t)p), "\n", NULL);
	hak__stats_exit(); /* no stale stats segment left behind */
	abort();
}
