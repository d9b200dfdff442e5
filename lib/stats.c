/*
 * stats.c - the counters: where they live (a published shared-memory
 * segment, or private memory with HAKMEM_STATS=0), and hak_stats_get().
 *
 * Every heap writes its own struct hak_seg_slot with relaxed single-writer
 * stores; readers (hak_stats_get here, hakmem-stat in another process) sum
 * the slots.  A forked child moves to a segment of its own at once, but
 * names it only at its first slow path (a page refill, a large block, a
 * new thread's first block) once it has lived HAK_SEG_NAME_DELAY_NS: a
 * child that execs or _exits soon, as a shell's children do, must not
 * leave a segment behind that nothing will remove.  Until then the segment
 * is an unnamed file in the shm directory (O_TMPFILE), linked under its
 * name later, so the counters never move.
 */
#include "config.h"
#include "internal.h"
#include "statfmt.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct hak_seg_header *hak__seg;
static struct hak_seg_header private_seg;
static bool seg_shared; /* hak__seg is a named object of this process */
static bool seg_exiting; /* hak__stats_exit has run */
static char seg_name[32];

/* A fork child's segment before it has a name: the open file (close-on-exec)
 * and its identity, checked before use, since a program may close every
 * descriptor after fork and reuse the number. */
int hak__seg_unnamed; /* 1 while the name is due; read by the slow paths */
static int unnamed_fd = -1;
static dev_t unnamed_dev;
static ino_t unnamed_ino;
static uint64_t unnamed_since; /* CLOCK_MONOTONIC ns at the fork */
#define HAK_SEG_FD_MIN 100

static void seg_name_for(pid_t pid)
{
	char num[24];
	strcpy(seg_name, HAK_SEG_PREFIX);
	strcat(seg_name, hak__fmt_u64(num, (uint64_t)pid));
}

static void read_comm(char *out, size_t cap)
{
	int fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
	memset(out, 0, cap);
	if (fd < 0)
		return;
	ssize_t n = read(fd, out, cap - 1);
	close(fd);
	if (n > 0 && out[n - 1] == '\n')
		out[n - 1] = 0;
}

static void header_fill(struct hak_seg_header *s, size_t total)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	s->magic = HAK_SEG_MAGIC;
	s->layout = HAK_SEG_LAYOUT;
	s->header_size = (uint32_t)sizeof *s;
	s->total_size = total;
	s->pid = getpid();
	s->start_time_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	s->num_classes = HAK_NUM_CLASSES;
	s->num_slots = HAK_SEG_SLOTS;
	s->slot_size = (uint32_t)sizeof(struct hak_seg_slot);
	read_comm(s->comm, sizeof s->comm);
	memset(s->strategy, 0, sizeof s->strategy);
	strncpy(s->strategy, hak__strategy_name(hak__opt.strategy), sizeof s->strategy - 1);
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++)
		s->class_size[c] = hak__class_size[c];
	atomic_store_explicit((_Atomic uint32_t *)&s->ready, 1, memory_order_release);
}

static struct hak_seg_header *seg_map(int fd)
{
	size_t total = sizeof(struct hak_seg_header);
	void *p = MAP_FAILED;
	if (ftruncate(fd, (off_t)total) == 0)
		p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	return p == MAP_FAILED ? NULL : p;
}

/* Create and map this process's segment; NULL if it cannot be published. */
static struct hak_seg_header *seg_create(void)
{
	int saved = errno;
	seg_name_for(getpid());
	shm_unlink(seg_name); /* a stale one from a dead process with our pid */
	int fd = shm_open(seg_name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		errno = saved;
		return NULL;
	}
	struct hak_seg_header *p = seg_map(fd);
	close(fd);
	if (!p)
		shm_unlink(seg_name);
	seg_shared = p != NULL;
	errno = saved;
	return p;
}

/* The descriptor of the unnamed segment, if it is still ours; else -1. */
static int unnamed_fd_checked(void)
{
	struct stat st;
	if (unnamed_fd < 0 || fstat(unnamed_fd, &st) != 0 || st.st_dev != unnamed_dev ||
	    st.st_ino != unnamed_ino)
		return -1;
	return unnamed_fd;
}

/* A fork child's segment, to be named by hak__stats_name_late(); a named
 * one at once where unnamed files are not supported. */
static struct hak_seg_header *seg_create_unnamed(void)
{
	int saved = errno;
	int fd = open(HAK_SEG_DIR, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		errno = saved;
		return seg_create();
	}
	/* kept open until the name is given: out of the way of the low
	 * numbers that a child about to exec arranges */
	int high = fcntl(fd, F_DUPFD_CLOEXEC, HAK_SEG_FD_MIN);
	if (high >= 0) {
		close(fd);
		fd = high;
	}
	struct stat st;
	struct hak_seg_header *p = fstat(fd, &st) == 0 ? seg_map(fd) : NULL;
	if (!p) {
		close(fd);
		errno = saved;
		return NULL;
	}
	unnamed_fd = fd;
	unnamed_dev = st.st_dev;
	unnamed_ino = st.st_ino;
	unnamed_since = hak__now_ns();
	seg_shared = false;
	__atomic_store_n(&hak__seg_unnamed, 1, __ATOMIC_RELEASE);
	errno = saved;
	return p;
}

/* Give the fork child's segment its name (at a slow path of any thread,
 * once the child is old enough: one of them does it).  If the descriptor
 * is no longer ours, the counters stay where they are, unpublished. */
void hak__stats_name_late(void)
{
	int one = 1;
	if (hak__now_ns() - unnamed_since < HAK_SEG_NAME_DELAY_NS)
		return;
	if (!__atomic_compare_exchange_n(&hak__seg_unnamed, &one, 0, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_RELAXED))
		return;
	int saved = errno;
	int fd = unnamed_fd_checked();
	unnamed_fd = -1;
	if (fd >= 0) {
		char proc[48], path[64], num[24];
		strcpy(proc, "/proc/self/fd/");
		strcat(proc, hak__fmt_u64(num, (uint64_t)fd));
		seg_name_for(getpid());
		strcpy(path, HAK_SEG_DIR);
		strcat(path, seg_name);
		unlink(path); /* a stale one from a dead process with our pid */
		if (linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0) {
			__atomic_store_n(&seg_shared, true, __ATOMIC_SEQ_CST);
			/* the exit handler ran meanwhile (another thread
			 * calling exit) and may not have seen the name */
			if (__atomic_load_n(&seg_exiting, __ATOMIC_SEQ_CST))
				unlink(path);
		}
		close(fd);
	}
	errno = saved;
}

/* Remove the segments of our user's dead processes: a process that ends
 * with _exit (as dash does) or is killed cannot remove its own.  Only
 * regular files named HAK_SEG_PREFIX<pid>, owned by us, untouched for
 * HAK_SEG_STALE_S, whose pid does not exist: the file is looked at after
 * the pid, so a new process that took the pid meanwhile keeps its own (it
 * is new).
 * Reads the directory with getdents64 into a buffer on the stack: opendir
 * would allocate. */
struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

static bool stale(int dir, const char *name, time_t before)
{
	const char *p = name;
	const char *prefix = &HAK_SEG_PREFIX[1]; /* without the slash */
	size_t n = strlen(prefix);
	if (strncmp(p, prefix, n) != 0)
		return false;
	uint64_t v = 0;
	p += n;
	if (*p < '1' || *p > '9')
		return false;
	for (; *p >= '0' && *p <= '9' && v < (1u << 30); p++)
		v = v * 10 + (uint64_t)(*p - '0');
	if (*p || v >= (1u << 30) || (pid_t)v == getpid())
		return false;
	/* the cheap test first: most entries belong to live processes */
	if (kill((pid_t)v, 0) == 0 || errno != ESRCH)
		return false;
	struct stat st;
	return fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
	       st.st_uid == geteuid() && st.st_mtime < before;
}

static void seg_sweep_stale(void)
{
	int dir = open(HAK_SEG_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return;
	_Alignas(8) char buf[2048];
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	time_t before = now.tv_sec - HAK_SEG_STALE_S;
	long got;
	while ((got = syscall(SYS_getdents64, dir, buf, sizeof buf)) > 0) {
		for (long at = 0; at < got;) {
			struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + at);
			at += d->d_reclen;
			if (stale(dir, d->d_name, before))
				unlinkat(dir, d->d_name, 0);
		}
	}
	close(dir);
}

void hak__stats_init(void)
{
	struct hak_seg_header *s = NULL;
	if (hak__opt.stats) {
		int saved = errno;
		s = seg_create();
		seg_sweep_stale();
		errno = saved;
	}
	if (!s)
		s = &private_seg;
	header_fill(s, sizeof *s);
	hak__seg = s;
}

struct hak_seg_slot *hak__stats_slot(unsigned index, struct hak_seg_slot *fallback)
{
	return index < HAK_SEG_SLOTS ? &hak__seg->slots[index] : fallback;
}

/* Copy the counters of src into dst, which is all zero: the header and the
 * slots of the heaps that exist (every slot ever used: heaps are kept for
 * reuse).  The whole object is 2.1 MiB (873 KiB before the heap profile), and a fork child that read and wrote
 * every page of it took 3-6 ms more than a plain fork (a shell pays that on
 * every command); the slots of no heap are zero in both. */
static void seg_copy(struct hak_seg_header *dst, const struct hak_seg_header *src)
{
	memcpy(dst, src, offsetof(struct hak_seg_header, slots));
	for (struct hak_heap *h = hak__heaps_first(); h; h = hak__heap_next(h))
		if (h->index < HAK_SEG_SLOTS)
			memcpy(&dst->slots[h->index], &src->slots[h->index],
			       sizeof dst->slots[h->index]);
	/* the heap profile: the child frees the sampled blocks it inherits.
	 * Its header, and the entries claimed (no sample is being taken: they
	 * are taken inside the gates, shut now) */
	const struct hak_seg_prof *sp = &src->prof;
	struct hak_seg_prof *dp = &dst->prof;
	memcpy(dp, sp, offsetof(struct hak_seg_prof, stacks));
	uint64_t used = sp->stacks_used < HAK_PROF_STACKS ? sp->stacks_used : HAK_PROF_STACKS;
	for (uint64_t k = 0; k < used; k++) {
		unsigned i = sp->order[k] & (HAK_PROF_STACKS - 1);
		memcpy(&dp->stacks[i], &sp->stacks[i], sizeof dp->stacks[i]);
	}
}

/* The published segment is shared memory: a fork child sees the parent's
 * threads go on counting in it after the fork.  So the parent copies it in
 * fork_prepare, once every slow path is shut out (fork.c), into private
 * memory that the child inherits as it was: the counters of the heaps the
 * child gets, and the live-heap count, as of the fork. */
static struct hak_seg_header *fork_snap;

void hak__stats_fork_prepare(void)
{
	if (hak__seg == &private_seg) /* private memory: the child's copy is exact */
		return;
	int saved = errno;
	fork_snap = hak__os_map(sizeof *fork_snap); /* only the copied pages get memory */
	if (fork_snap)
		seg_copy(fork_snap, hak__seg);
	errno = saved;
}

static void fork_snap_drop(void)
{
	if (fork_snap) {
		hak__os_unmap(fork_snap, sizeof *fork_snap);
		fork_snap = NULL;
	}
}

void hak__stats_fork_parent(void)
{
	fork_snap_drop();
}

/* In a fork child: a segment of our own (named later), carrying the
 * counters over, and every heap pointed at it.  Single-threaded here. */
void hak__stats_fork_child(void)
{
	struct hak_seg_header *old = hak__seg;
	if (old == &private_seg)
		return;
	int saved = errno;
	/* the parent's unnamed file, if its name was still due: not ours */
	int inherited = unnamed_fd_checked();
	if (inherited >= 0)
		close(inherited);
	unnamed_fd = -1;
	__atomic_store_n(&hak__seg_unnamed, 0, __ATOMIC_RELAXED);
	seg_shared = false;
	struct hak_seg_header *s = seg_create_unnamed();
	if (!s)
		s = &private_seg;
	else if (unnamed_fd >= 0) {
		/* a segment under our pid now is a dead process's (pids are
		 * reused): until ours is named, hakmem-stat would show it */
		seg_name_for(getpid());
		shm_unlink(seg_name);
	}
	seg_copy(s, fork_snap ? fork_snap : old);
	fork_snap_drop();
	header_fill(s, sizeof *s);
	hak__seg = s;
	for (struct hak_heap *h = hak__heaps_first(); h; h = hak__heap_next(h))
		h->st = hak__stats_slot(h->index, &h->own_stats);
	munmap(old, sizeof *old); /* the parent's: the child must not write it */
	errno = saved;
}

/* Normal exit: the segment goes away with the process. */
void hak__stats_exit(void)
{
	/* a name still due is given up: a slow path after this (another
	 * destructor's malloc) must not name a segment nobody removes */
	__atomic_store_n(&seg_exiting, true, __ATOMIC_SEQ_CST);
	int one = 1;
	if (__atomic_compare_exchange_n(&hak__seg_unnamed, &one, 0, false, __ATOMIC_ACQ_REL,
					__ATOMIC_RELAXED)) {
		int saved = errno;
		int fd = unnamed_fd_checked();
		unnamed_fd = -1;
		if (fd >= 0)
			close(fd);
		errno = saved;
	}
	if (__atomic_load_n(&seg_shared, __ATOMIC_SEQ_CST) && hak__seg->pid == getpid()) {
		int saved = errno;
		shm_unlink(seg_name);
		errno = saved;
	}
}

/* Sum the live segment, and the heaps beyond HAK_SEG_SLOTS that count in
 * private memory, with the same code hakmem-stat uses on a snapshot. */
static void stats_sum(struct hak_statsum *s)
{
	const struct hak_seg_header *seg = hak__seg;
	hak__statsum_begin(s, seg);
	/* the heaps' own slots only: a read of an untouched page of a shared
	 * memory object gives it memory (873 KiB for the whole of it) */
	for (struct hak_heap *h = hak__heaps_first(); h; h = hak__heap_next(h)) {
		if (h->index >= HAK_SEG_SLOTS) {
			hak__statsum_add_slot(s, &h->own_stats);
			continue;
		}
		const struct hak_seg_slot *slot = &seg->slots[h->index];
		if (!atomic_load_explicit((_Atomic uint64_t *)&slot->state, memory_order_relaxed))
			continue;
		s->slots_used++;
		hak__statsum_add_slot(s, slot);
	}
	hak__statsum_add_slot(s, &seg->global.overflow);
	hak__statsum_finish(s);
}

HAK_PUBLIC int hak_stats_get(struct hak_stats *out, size_t size)
{
	if (!out || size < offsetof(struct hak_stats, classes)) {
		errno = EINVAL;
		return -1;
	}
	hak__init();
	struct hak_statsum sum;
	stats_sum(&sum);
	struct hak_stats st;
	memset(&st, 0, sizeof st);
	st.version = HAK_STATS_VERSION;
	st.num_classes = HAK_NUM_CLASSES;
	st.threads = (uint32_t)sum.threads;
	st.bytes_in_use = sum.bytes_in_use;
	st.large_bytes_in_use = sum.large.bytes_in_use;
	st.mapped_bytes = sum.mapped_bytes;
	st.resident_bytes = sum.resident_bound;
	st.pages_from_os = sum.pages_from_os;
	st.pages_reused = sum.pages_reused;
	st.pending_enqueued = sum.pending_enqueued;
	st.pending_drained = sum.pending_drained;
	st.adoptions = sum.adoptions;
	st.lease_refusals = sum.lease_refusals;
	st.remote_frees = sum.remote_frees;
	st.purged_bytes = sum.purged_bytes;
	st.large_allocs = sum.large.allocs;
	st.large_frees = sum.large.frees;
	st.large_reused = sum.large_reused;
	st.large_direct = sum.large_direct;
	st.large_inplace = sum.large_inplace;
	st.span_mapped_bytes = sum.span_mapped_bytes;
	st.span_kept_bytes = sum.span_kept_bytes;
	st.reserved_bytes = sum.reserved_bytes;
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
		st.classes[c].block_size = sum.cls[c].block_size;
		st.classes[c].allocs = sum.cls[c].allocs;
		st.classes[c].frees = sum.cls[c].frees;
		st.classes[c].in_use = sum.cls[c].in_use;
		st.classes[c].bytes_in_use = sum.cls[c].bytes_in_use;
	}
	size_t n = size < sizeof st ? size : sizeof st;
	st.size = (uint32_t)n;
	memcpy(out, &st, n);
	return 0;
}

HAK_PUBLIC double hak_stats_page_reuse_pct(const struct hak_stats *st)
{
	if (!st)
		return 0.0;
	uint64_t total = st->pages_reused + st->pages_from_os;
	return total ? 100.0 * (double)st->pages_reused / (double)total : 0.0;
}

static void stats_sample(struct hak_statsum *sum)
{
	struct timespec ts;
	hak__init();
	stats_sum(sum);
	clock_gettime(CLOCK_REALTIME, &ts);
	sum->now_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	sum->vm_rss = hak__proc_vmrss("/proc/self/status");
}

/* HAKMEM_SHOW_STATS=1 at exit, and malloc_stats(): the summary hakmem-stat
 * PID would print (statfmt.c formats both), written to fd without stdio.
 * The text is kept off the stack, so one caller at a time. */
void hak__stats_print(int fd)
{
	static char text[16384];
	static _Atomic uint32_t lock;
	struct hak_statsum sum;
	int saved = errno;
	stats_sample(&sum);
	hak__spin_lock(&lock);
	hak__write_all(fd, text, hak__statfmt_text(&sum, text, sizeof text));
	hak__spin_unlock(&lock);
	errno = saved;
}

/* glibc's malloc statistics calls, answered with hakmem's own figures ------ */

static __attribute__((unused)) void malloc_stats_impl(void)
{
	hak__stats_print(STDERR_FILENO);
}

/* glibc's XML skeleton (one heap: the whole process), with hakmem's
 * meaning documented in hakmem(3): <size> elements count the blocks in use
 * in each class (glibc lists free chunks), "mmap" the large blocks. */
static __attribute__((unused)) int malloc_info_impl(int options, FILE *fp)
{
	if (options != 0 || !fp) {
		errno = EINVAL;
		return -1;
	}
	int saved = errno;
	struct hak_statsum sum;
	stats_sample(&sum);
	uint64_t small_count = 0, small_bytes = 0;
	fprintf(fp, "<malloc version=\"1\" allocator=\"hakmem\" release=\"%s\">\n",
		PACKAGE_VERSION);
	fprintf(fp, "<heap nr=\"0\">\n<sizes>\n");
	uint64_t from = 1;
	for (unsigned c = 0; c < sum.num_classes; c++) {
		const struct hak_statsum_class *k = &sum.cls[c];
		if (k->in_use)
			fprintf(fp,
				"  <size from=\"%llu\" to=\"%llu\" total=\"%llu\" "
				"count=\"%llu\"/>\n",
				(unsigned long long)from, (unsigned long long)k->block_size,
				(unsigned long long)k->bytes_in_use,
				(unsigned long long)k->in_use);
		small_count += k->in_use;
		small_bytes += k->bytes_in_use;
		from = k->block_size + 1;
	}
	fprintf(fp, "</sizes>\n");
	for (int outer = 0; outer < 2; outer++) {
		if (outer)
			fprintf(fp, "</heap>\n");
		fprintf(fp,
			"<total type=\"small\" count=\"%llu\" size=\"%llu\"/>\n"
			"<total type=\"mmap\" count=\"%llu\" size=\"%llu\"/>\n"
			"<total type=\"span-kept\" size=\"%llu\"/>\n"
			"<system type=\"current\" size=\"%llu\"/>\n"
			"<aspace type=\"total\" size=\"%llu\"/>\n"
			"<aspace type=\"span\" size=\"%llu\"/>\n",
			(unsigned long long)small_count, (unsigned long long)small_bytes,
			(unsigned long long)sum.large.in_use,
			(unsigned long long)sum.large.bytes_in_use,
			(unsigned long long)sum.span_kept_bytes,
			(unsigned long long)sum.resident_bound,
			(unsigned long long)sum.mapped_bytes,
			(unsigned long long)sum.span_mapped_bytes);
	}
	fprintf(fp, "</malloc>\n");
	errno = saved;
	return 0;
}

/* glibc's tuning parameters have no meaning here (HAKMEM_* variables tune
 * hakmem): those glibc knows are accepted and ignored, as tcmalloc does;
 * any other is an error, as in glibc. */
static __attribute__((unused)) int mallopt_impl(int param, int value)
{
	(void)value;
	return param == 1 /* M_MXFAST */ || (param <= -1 && param >= -8) ? 1 : 0;
}

#if defined(HAK_OVERRIDE) && !defined(HAK_NO_OVERRIDE)
HAK_ALIAS(malloc_stats, malloc_stats_impl);
HAK_ALIAS(malloc_info, malloc_info_impl);
HAK_ALIAS(mallopt, mallopt_impl);
#endif
