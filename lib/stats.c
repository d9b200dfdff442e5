/*
 * stats.c - the counters: where they live (a published shared-memory
 * segment, or private memory with HAKMEM_STATS=0), and hak_stats_get().
 *
 * Every heap writes its own struct hak_seg_slot with relaxed single-writer
 * stores; readers (hak_stats_get here, hakmem-stat in another process) sum
 * the slots.  A forked child moves to a segment of its own at once.
 */
#include "config.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct hak_seg_header *hak__seg;
static struct hak_seg_header private_seg;
static bool seg_shared;
static char seg_name[32];

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
	size_t total = sizeof(struct hak_seg_header);
	void *p = MAP_FAILED;
	if (ftruncate(fd, (off_t)total) == 0)
		p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		shm_unlink(seg_name);
		errno = saved;
		return NULL;
	}
	errno = saved;
	return p;
}

void hak__stats_init(void)
{
	struct hak_seg_header *s = NULL;
	if (hak__opt.stats)
		s = seg_create();
	seg_shared = s != NULL;
	if (!s)
		s = &private_seg;
	header_fill(s, sizeof *s);
	hak__seg = s;
}

struct hak_seg_slot *hak__stats_slot(unsigned index, struct hak_seg_slot *fallback)
{
	return index < HAK_SEG_SLOTS ? &hak__seg->slots[index] : fallback;
}

/* In a fork child: publish a segment of our own, carrying the counters
 * over, and point every heap at it.  Single-threaded here. */
void hak__stats_fork_child(void)
{
	struct hak_seg_header *old = hak__seg;
	if (!seg_shared)
		return;
	struct hak_seg_header *s = seg_create();
	if (!s)
		s = &private_seg;
	memcpy(s, old, sizeof *s);
	header_fill(s, sizeof *s);
	hak__seg = s;
	for (struct hak_heap *h = hak__heaps_first(); h; h = h->next_heap)
		h->st = hak__stats_slot(h->index, &h->own_stats);
	seg_shared = s != &private_seg;
	int saved = errno;
	munmap(old, sizeof *old); /* the parent's: the child must not write it */
	errno = saved;
}

/* Normal exit: the segment goes away with the process. */
void hak__stats_exit(void)
{
	if (seg_shared && hak__seg->pid == getpid()) {
		int saved = errno;
		shm_unlink(seg_name);
		errno = saved;
	}
}

static uint64_t rd(const uint64_t *p)
{
	return atomic_load_explicit((_Atomic uint64_t *)p, memory_order_relaxed);
}

static void slot_add(struct hak_stats *st, const struct hak_seg_slot *s, uint64_t *large_bytes)
{
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
		st->classes[c].allocs += rd(&s->allocs[c]);
		st->classes[c].frees += rd(&s->frees[c]);
	}
	st->pages_from_os += rd(&s->pages_from_os);
	st->pages_reused += rd(&s->pages_reused);
	st->pending_enqueued += rd(&s->pending_enqueued);
	st->pending_drained += rd(&s->pending_drained);
	st->adoptions += rd(&s->adoptions);
	st->lease_refusals += rd(&s->lease_refusals);
	st->remote_frees += rd(&s->remote_frees);
	st->large_allocs += rd(&s->large_allocs);
	st->large_frees += rd(&s->large_frees);
	*large_bytes += rd(&s->large_alloc_bytes) - rd(&s->large_free_bytes);
}

HAK_PUBLIC int hak_stats_get(struct hak_stats *out, size_t size)
{
	if (!out || size < offsetof(struct hak_stats, classes)) {
		errno = EINVAL;
		return -1;
	}
	hak__init();
	struct hak_stats st;
	memset(&st, 0, sizeof st);
	st.version = HAK_STATS_VERSION;
	st.num_classes = HAK_NUM_CLASSES;
	uint64_t large = 0;
	const struct hak_seg_header *seg = hak__seg;
	for (unsigned i = 0; i < HAK_SEG_SLOTS; i++)
		if (rd(&seg->slots[i].state))
			slot_add(&st, &seg->slots[i], &large);
	for (struct hak_heap *h = hak__heaps_first(); h; h = h->next_heap)
		if (h->index >= HAK_SEG_SLOTS)
			slot_add(&st, &h->own_stats, &large);
	slot_add(&st, &seg->global.overflow, &large);
	uint64_t small = 0;
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
		struct hak_class_stats *cs = &st.classes[c];
		cs->block_size = hak__class_size[c];
		/* counts are read slot by slot while threads run: clamp */
		cs->in_use = cs->allocs > cs->frees ? cs->allocs - cs->frees : 0;
		cs->bytes_in_use = cs->in_use * cs->block_size;
		small += cs->bytes_in_use;
	}
	st.large_bytes_in_use = (int64_t)large > 0 ? large : 0;
	st.bytes_in_use = small + st.large_bytes_in_use;
	st.threads = (uint32_t)rd(&seg->global.threads);
	st.mapped_bytes = rd(&seg->global.mapped_bytes);
	st.purged_bytes = rd(&seg->global.purged_bytes);
	uint64_t purged_now = rd(&seg->global.purged_now_bytes);
	st.resident_bytes = st.mapped_bytes > purged_now ? st.mapped_bytes - purged_now : 0;
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

/* HAKMEM_SHOW_STATS=1: a summary on fd at exit, written without stdio. */
struct outbuf {
	char buf[8192];
	size_t len;
	int fd;
};

static void out_flush(struct outbuf *o)
{
	size_t off = 0;
	while (off < o->len) {
		ssize_t w = write(o->fd, o->buf + off, o->len - off);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	o->len = 0;
}

static void out_str(struct outbuf *o, const char *s)
{
	for (; *s; s++) {
		if (o->len == sizeof o->buf)
			out_flush(o);
		o->buf[o->len++] = *s;
	}
}

static void out_pad(struct outbuf *o, const char *s, size_t width)
{
	for (size_t n = strlen(s); n < width; n++)
		out_str(o, " ");
	out_str(o, s);
}

static void out_kv(struct outbuf *o, const char *key, uint64_t v)
{
	char num[24];
	out_str(o, "  ");
	out_str(o, key);
	out_pad(o, hak__fmt_u64(num, v), 28 - strlen(key));
	out_str(o, "\n");
}

void hak__stats_print(int fd)
{
	struct hak_stats st;
	if (hak_stats_get(&st, sizeof st) != 0)
		return;
	struct outbuf o = {.len = 0, .fd = fd};
	char num[24];
	int saved = errno;
	out_str(&o, "hakmem ");
	out_str(&o, PACKAGE_VERSION);
	out_str(&o, " pid ");
	out_str(&o, hak__fmt_u64(num, (uint64_t)getpid()));
	out_str(&o, " (");
	out_str(&o, hak__seg->comm);
	out_str(&o, ") strategy ");
	out_str(&o, hak__strategy_name(hak__opt.strategy));
	out_str(&o, "\n");
	out_kv(&o, "bytes in use", st.bytes_in_use);
	out_kv(&o, "large bytes in use", st.large_bytes_in_use);
	out_kv(&o, "mapped bytes", st.mapped_bytes);
	out_kv(&o, "resident bytes (bound)", st.resident_bytes);
	out_kv(&o, "pages from OS", st.pages_from_os);
	out_kv(&o, "pages reused", st.pages_reused);
	uint64_t pct10 = (uint64_t)(hak_stats_page_reuse_pct(&st) * 10.0 + 0.5);
	out_str(&o, "  page reuse %");
	char pct[32];
	char *e = hak__fmt_u64(pct, pct10 / 10);
	e += strlen(e);
	*e++ = '.';
	*e++ = (char)('0' + pct10 % 10);
	*e = 0;
	out_pad(&o, pct, 28 - strlen("page reuse %"));
	out_str(&o, "\n");
	out_kv(&o, "pending enqueued", st.pending_enqueued);
	out_kv(&o, "pending drained", st.pending_drained);
	out_kv(&o, "adoptions", st.adoptions);
	out_kv(&o, "lease refusals", st.lease_refusals);
	out_kv(&o, "remote frees", st.remote_frees);
	out_kv(&o, "purged bytes", st.purged_bytes);
	out_str(&o, "  class     size       allocs        frees       in use\n");
	for (unsigned c = 0; c < st.num_classes; c++) {
		const struct hak_class_stats *cs = &st.classes[c];
		if (!cs->allocs)
			continue;
		out_pad(&o, hak__fmt_u64(num, c), 7);
		out_pad(&o, hak__fmt_u64(num, cs->block_size), 9);
		out_pad(&o, hak__fmt_u64(num, cs->allocs), 13);
		out_pad(&o, hak__fmt_u64(num, cs->frees), 13);
		out_pad(&o, hak__fmt_u64(num, cs->in_use), 13);
		out_str(&o, "\n");
	}
	out_flush(&o);
	errno = saved;
}
