/*
 * statfmt.c - validate a stats segment image, sum it, format the summary.
 *
 * Compiled into libhakmem (HAKMEM_SHOW_STATS, hak_stats_get) and into
 * hakmem-stat, so that the two agree on every figure and every line.
 * No allocation, no stdio, no locks: only loads, arithmetic, open/read.
 */
#include "statfmt.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

/* The writer stores counters with relaxed atomics while we read them. */
static uint64_t rd(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

#define LARGEST_CLASS (1u << 20) /* sanity bound on a class size */

/* Appending to a caller buffer --------------------------------------- */

static void sb_char(struct hak_sbuf *b, char c)
{
	if (b->len + 1 < b->cap) {
		b->p[b->len++] = c;
		b->p[b->len] = 0;
	}
}

void hak__sb_str(struct hak_sbuf *b, const char *s)
{
	while (*s)
		sb_char(b, *s++);
}

static char *u64_digits(char out[24], uint64_t v)
{
	char *e = out + 23;
	*e = 0;
	do {
		*--e = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return e;
}

void hak__sb_u64(struct hak_sbuf *b, uint64_t v)
{
	char num[24];
	hak__sb_str(b, u64_digits(num, v));
}

void hak__sb_i64(struct hak_sbuf *b, int64_t v)
{
	if (v < 0) {
		sb_char(b, '-');
		hak__sb_u64(b, (uint64_t)0 - (uint64_t)v);
	} else {
		hak__sb_u64(b, (uint64_t)v);
	}
}

static uint64_t pow10u(unsigned n)
{
	uint64_t p = 1;
	while (n--)
		p *= 10;
	return p;
}

void hak__sb_fixed(struct hak_sbuf *b, uint64_t v, unsigned decimals)
{
	uint64_t scale = pow10u(decimals);
	hak__sb_u64(b, v / scale);
	if (!decimals)
		return;
	sb_char(b, '.');
	char num[24];
	const char *frac = u64_digits(num, v % scale);
	for (size_t n = strlen(frac); n < decimals; n++)
		sb_char(b, '0');
	hak__sb_str(b, frac);
}

void hak__sb_pad_str(struct hak_sbuf *b, const char *s, size_t width)
{
	for (size_t n = strlen(s); n < width; n++)
		sb_char(b, ' ');
	hak__sb_str(b, s);
}

void hak__sb_pad_u64(struct hak_sbuf *b, uint64_t v, size_t width)
{
	char num[24];
	hak__sb_pad_str(b, u64_digits(num, v), width);
}

void hak__sb_human(struct hak_sbuf *b, uint64_t bytes)
{
	static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	unsigned u = 0;
	while (u + 1 < sizeof unit / sizeof unit[0] && bytes >> (10 * (u + 1)))
		u++;
	if (u == 0) {
		hak__sb_u64(b, bytes);
	} else {
		uint64_t one = (uint64_t)1 << (10 * u);
		uint64_t tenths = (bytes / one) * 10 + (bytes % one) * 10 / one;
		hak__sb_fixed(b, tenths, 1);
	}
	sb_char(b, ' ');
	hak__sb_str(b, unit[u]);
}

static int printable(char c)
{
	return c >= 0x20 && c < 0x7f;
}

void hak__sb_safe_str(struct hak_sbuf *b, const char *s, size_t max)
{
	for (size_t i = 0; i < max && s[i]; i++)
		sb_char(b, printable(s[i]) ? s[i] : '?');
}

/* Validation ---------------------------------------------------------- */

static enum hak_segv why_set(enum hak_segv e, char *why, size_t cap, const char *a,
			     uint64_t n, const char *c, uint64_t m)
{
	struct hak_sbuf b = {.p = why, .len = 0, .cap = cap};
	if (cap)
		why[0] = 0;
	hak__sb_str(&b, a);
	hak__sb_u64(&b, n);
	hak__sb_str(&b, c);
	if (m != UINT64_MAX)
		hak__sb_u64(&b, m);
	return e;
}

static int nul_within(const char *s, size_t n)
{
	return memchr(s, 0, n) != NULL;
}

enum hak_segv hak__seg_validate(const void *img, size_t len, int64_t pid,
				char *why, size_t cap)
{
	const struct hak_seg_header *h = img;
	const size_t need = sizeof *h;
	const size_t head = offsetof(struct hak_seg_header, header_size);
	if (cap)
		why[0] = 0;
	if (len < head)
		return why_set(HAK_SEGV_TRUNCATED, why, cap, "truncated: ", len,
			       " bytes, too short for a header", UINT64_MAX);
	if (h->magic == 0 && h->layout == 0 && rd(&h->total_size) == 0)
		return why_set(HAK_SEGV_NOT_READY, why, cap, "still being created (",
			       len, " zero bytes)", UINT64_MAX);
	if (h->magic != HAK_SEG_MAGIC)
		return why_set(HAK_SEGV_MAGIC, why, cap, "not a hakmem stats segment (bad magic, ",
			       len, " bytes)", UINT64_MAX);
	if (h->layout != HAK_SEG_LAYOUT)
		return why_set(HAK_SEGV_LAYOUT, why, cap, "segment layout version ", h->layout,
			       ", this reader knows ", HAK_SEG_LAYOUT);
	if (len < need)
		return why_set(HAK_SEGV_TRUNCATED, why, cap, "truncated: ", len,
			       " bytes, a complete segment has ", need);
	if (h->header_size != need)
		return why_set(HAK_SEGV_DAMAGED, why, cap, "damaged: header_size ",
			       h->header_size, ", expected ", need);
	if (h->total_size != need)
		return why_set(HAK_SEGV_SIZE, why, cap, "damaged: total_size ", h->total_size,
			       ", expected ", need);
	if (__atomic_load_n(&h->ready, __ATOMIC_ACQUIRE) != 1)
		return why_set(HAK_SEGV_NOT_READY, why, cap, "not ready (ready flag ", h->ready,
			       ")", UINT64_MAX);
	if (h->slot_size != sizeof(struct hak_seg_slot))
		return why_set(HAK_SEGV_DAMAGED, why, cap, "damaged: slot_size ", h->slot_size,
			       ", expected ", sizeof(struct hak_seg_slot));
	if (h->num_slots == 0 || h->num_slots > HAK_SEG_SLOTS)
		return why_set(HAK_SEGV_DAMAGED, why, cap, "damaged: num_slots ", h->num_slots,
			       ", at most ", HAK_SEG_SLOTS);
	if (h->num_classes == 0 || h->num_classes > HAK_SEG_CLASSES)
		return why_set(HAK_SEGV_DAMAGED, why, cap, "damaged: num_classes ",
			       h->num_classes, ", at most ", HAK_SEG_CLASSES);
	if (pid > 0 && h->pid != pid)
		return why_set(HAK_SEGV_PID, why, cap, "damaged: written by pid ",
			       (uint64_t)h->pid, ", not ", (uint64_t)pid);
	if (h->pid <= 0)
		return why_set(HAK_SEGV_DAMAGED, why, cap, "damaged: pid field ",
			       (uint64_t)h->pid, "", UINT64_MAX);
	uint64_t prev = 0;
	for (unsigned c = 0; c < h->num_classes; c++) {
		uint64_t sz = h->class_size[c];
		if (sz <= prev || sz > LARGEST_CLASS)
			return why_set(HAK_SEGV_DAMAGED, why, cap, "damaged: size of class ", c,
				       " is ", sz);
		prev = sz;
	}
	if (!nul_within(h->comm, sizeof h->comm) || !nul_within(h->strategy, sizeof h->strategy))
		return why_set(HAK_SEGV_DAMAGED, why, cap, "damaged: unterminated name (",
			       sizeof h->comm, " bytes)", UINT64_MAX);
	for (unsigned i = 0; i < h->num_slots; i++) {
		uint64_t st = rd(&h->slots[i].state);
		if (st > 2)
			return why_set(HAK_SEGV_DAMAGED, why, cap, "damaged: state of slot ", i,
				       " is ", st);
	}
	return HAK_SEGV_OK;
}

/* Summing ------------------------------------------------------------- */

void hak__statsum_begin(struct hak_statsum *s, const struct hak_seg_header *h)
{
	memset(s, 0, sizeof *s);
	s->pid = h->pid;
	s->start_time_ns = h->start_time_ns;
	memcpy(s->comm, h->comm, sizeof s->comm);
	s->comm[sizeof s->comm - 1] = 0;
	memcpy(s->strategy, h->strategy, sizeof s->strategy);
	s->strategy[sizeof s->strategy - 1] = 0;
	s->num_classes = h->num_classes <= HAK_SEG_CLASSES ? h->num_classes : HAK_SEG_CLASSES;
	for (unsigned c = 0; c < s->num_classes; c++)
		s->cls[c].block_size = h->class_size[c];
	const struct hak_seg_global *g = &h->global;
	s->threads = rd(&g->threads);
	s->heaps_created = rd(&g->heaps_created);
	s->mapped_bytes = rd(&g->mapped_bytes);
	uint64_t purged_now = rd(&g->purged_now_bytes);
	s->resident_bound = s->mapped_bytes > purged_now ? s->mapped_bytes - purged_now : 0;
	s->unpurged_free_bytes = rd(&g->unpurged_free_bytes);
	s->purged_bytes = rd(&g->purged_bytes);
	s->span_mapped_bytes = rd(&g->span_mapped_bytes);
	s->reserved_bytes = rd(&g->reserved_bytes);
	for (unsigned i = 0; i < HAK_SEG_SPAN_SHARDS; i++)
		s->span_kept_bytes += rd(&g->span_kept_bytes[i]);
	s->vm_rss = -1;
}

void hak__statsum_add_slot(struct hak_statsum *s, const struct hak_seg_slot *slot)
{
	for (unsigned c = 0; c < s->num_classes; c++) {
		s->cls[c].allocs += rd(&slot->allocs[c]);
		s->cls[c].frees += rd(&slot->frees[c]);
	}
	s->pages_from_os += rd(&slot->pages_from_os);
	s->pages_reused += rd(&slot->pages_reused);
	s->pending_enqueued += rd(&slot->pending_enqueued);
	s->pending_drained += rd(&slot->pending_drained);
	s->adoptions += rd(&slot->adoptions);
	s->lease_refusals += rd(&slot->lease_refusals);
	s->remote_frees += rd(&slot->remote_frees);
	s->large.allocs += rd(&slot->large_allocs);
	s->large.frees += rd(&slot->large_frees);
	s->large_reused += rd(&slot->large_reused);
	s->large_direct += rd(&slot->large_direct);
	s->large_inplace += rd(&slot->large_inplace);
	/* a thread may free another's large blocks: only the sum is >= 0 */
	s->large_bytes_net = (int64_t)((uint64_t)s->large_bytes_net +
				       rd(&slot->large_alloc_bytes) -
				       rd(&slot->large_free_bytes));
}

static void class_finish(struct hak_statsum_class *c)
{
	/* slots are read one by one while threads run: a free may be seen
	 * before the allocation it undoes */
	c->in_use = c->allocs > c->frees ? c->allocs - c->frees : 0;
}

void hak__statsum_finish(struct hak_statsum *s)
{
	uint64_t bytes = 0;
	s->allocs = s->large.allocs;
	s->frees = s->large.frees;
	for (unsigned c = 0; c < s->num_classes; c++) {
		struct hak_statsum_class *k = &s->cls[c];
		class_finish(k);
		k->bytes_in_use = k->in_use * k->block_size;
		bytes += k->bytes_in_use;
		s->allocs += k->allocs;
		s->frees += k->frees;
	}
	class_finish(&s->large);
	s->large.bytes_in_use = s->large_bytes_net > 0 ? (uint64_t)s->large_bytes_net : 0;
	s->bytes_in_use = bytes + s->large.bytes_in_use;
}

void hak__statsum_from_seg(struct hak_statsum *s, const struct hak_seg_header *h)
{
	hak__statsum_begin(s, h);
	unsigned n = h->num_slots <= HAK_SEG_SLOTS ? h->num_slots : HAK_SEG_SLOTS;
	for (unsigned i = 0; i < n; i++) {
		if (!rd(&h->slots[i].state))
			continue;
		s->slots_used++;
		hak__statsum_add_slot(s, &h->slots[i]);
	}
	hak__statsum_add_slot(s, &h->global.overflow);
	hak__statsum_finish(s);
}

uint64_t hak__statsum_reuse_permille(const struct hak_statsum *s)
{
	uint64_t total = s->pages_reused + s->pages_from_os;
	if (!total)
		return 0;
	/* reused <= total, so reused * 1000 overflows only past 2^54 pages */
	return (s->pages_reused * 1000 + total / 2) / total;
}

/* /proc ---------------------------------------------------------------- */

int64_t hak__proc_vmrss(const char *path)
{
	char buf[4096];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t len = 0;
	ssize_t n;
	while (len < sizeof buf - 1 && (n = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = 0;
	static const char key[] = "\nVmRSS:";
	const char *p = NULL;
	for (size_t i = 0; i + sizeof key - 1 <= len; i++)
		if (memcmp(buf + i, key, sizeof key - 1) == 0) {
			p = buf + i + sizeof key - 1;
			break;
		}
	if (!p)
		return -1;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p < '0' || *p > '9')
		return -1;
	int64_t kib = 0;
	for (; *p >= '0' && *p <= '9' && kib < ((int64_t)1 << 50); p++)
		kib = kib * 10 + (*p - '0');
	return kib * 1024;
}

/* Formatting ------------------------------------------------------------ */

#define LABEL_WIDTH 26
#define VALUE_WIDTH 16

static void line_label(struct hak_sbuf *b, const char *label)
{
	hak__sb_str(b, "  ");
	hak__sb_str(b, label);
	for (size_t n = strlen(label); n < LABEL_WIDTH; n++)
		sb_char(b, ' ');
}

static void line_count(struct hak_sbuf *b, const char *label, uint64_t v)
{
	line_label(b, label);
	hak__sb_pad_u64(b, v, VALUE_WIDTH);
	sb_char(b, '\n');
}

static void line_bytes(struct hak_sbuf *b, const char *label, uint64_t v, const char *note)
{
	line_label(b, label);
	hak__sb_pad_u64(b, v, VALUE_WIDTH);
	hak__sb_str(b, "  (");
	hak__sb_human(b, v);
	hak__sb_str(b, ")");
	if (note) {
		hak__sb_str(b, " ");
		hak__sb_str(b, note);
	}
	sb_char(b, '\n');
}

static void class_row(struct hak_sbuf *b, const char *name, const char *size,
		      const struct hak_statsum_class *c)
{
	hak__sb_pad_str(b, name, 7);
	hak__sb_pad_str(b, size, 9);
	hak__sb_pad_u64(b, c->allocs, 14);
	hak__sb_pad_u64(b, c->frees, 14);
	hak__sb_pad_u64(b, c->in_use, 12);
	hak__sb_pad_u64(b, c->bytes_in_use, 16);
	sb_char(b, '\n');
}

static uint64_t uptime_ds(const struct hak_statsum *s)
{
	if (s->now_ns <= s->start_time_ns)
		return 0;
	return (s->now_ns - s->start_time_ns) / 100000000u;
}

size_t hak__statfmt_text(const struct hak_statsum *s, char *buf, size_t cap)
{
	struct hak_sbuf b = {.p = buf, .len = 0, .cap = cap};
	char num[24];
	if (cap)
		buf[0] = 0;
	hak__sb_str(&b, "hakmem pid ");
	hak__sb_i64(&b, s->pid);
	hak__sb_str(&b, " (");
	hak__sb_safe_str(&b, s->comm, sizeof s->comm);
	hak__sb_str(&b, "), strategy ");
	hak__sb_safe_str(&b, s->strategy, sizeof s->strategy);
	hak__sb_str(&b, ", up ");
	hak__sb_fixed(&b, uptime_ds(s), 1);
	hak__sb_str(&b, " s, ");
	hak__sb_u64(&b, s->threads);
	hak__sb_str(&b, " threads (");
	hak__sb_u64(&b, s->heaps_created);
	hak__sb_str(&b, " heaps created)\n");
	line_bytes(&b, "bytes in use", s->bytes_in_use, NULL);
	line_bytes(&b, "mapped", s->mapped_bytes, NULL);
	line_bytes(&b, "reserved", s->reserved_bytes, "address space for arenas, no memory");
	line_bytes(&b, "resident (bound)", s->resident_bound, "mapped minus purged");
	line_label(&b, "resident (VmRSS)");
	if (s->vm_rss >= 0) {
		hak__sb_pad_u64(&b, (uint64_t)s->vm_rss, VALUE_WIDTH);
		hak__sb_str(&b, "  (");
		hak__sb_human(&b, (uint64_t)s->vm_rss);
		hak__sb_str(&b, ") whole process\n");
	} else {
		hak__sb_pad_str(&b, "unknown", VALUE_WIDTH);
		sb_char(&b, '\n');
	}
	line_bytes(&b, "free, not yet purged", s->unpurged_free_bytes, NULL);
	line_bytes(&b, "purged", s->purged_bytes, "since start");
	line_count(&b, "pages from OS", s->pages_from_os);
	line_count(&b, "pages reused", s->pages_reused);
	line_label(&b, "page reuse %");
	struct hak_sbuf pct = {.p = num, .len = 0, .cap = sizeof num};
	hak__sb_fixed(&pct, hak__statsum_reuse_permille(s), 1);
	hak__sb_pad_str(&b, num, VALUE_WIDTH);
	sb_char(&b, '\n');
	line_count(&b, "pending enqueued", s->pending_enqueued);
	line_count(&b, "pending drained", s->pending_drained);
	line_count(&b, "adoptions", s->adoptions);
	line_count(&b, "lease refusals", s->lease_refusals);
	line_count(&b, "remote frees", s->remote_frees);
	line_bytes(&b, "span tier mapped", s->span_mapped_bytes, "regions for large blocks");
	line_bytes(&b, "span tier kept", s->span_kept_bytes, "freed, resident, for reuse");
	line_count(&b, "large reused", s->large_reused);
	line_count(&b, "large own mapping", s->large_direct);
	line_count(&b, "large grown in place", s->large_inplace);
	line_count(&b, "allocations", s->allocs);
	line_count(&b, "frees", s->frees);
	hak__sb_str(&b, "  class     size        allocs         frees      in use    bytes in use\n");
	for (unsigned c = 0; c < s->num_classes; c++) {
		const struct hak_statsum_class *k = &s->cls[c];
		if (!k->allocs && !k->frees)
			continue;
		char name[24], size[24];
		class_row(&b, u64_digits(name, c), u64_digits(size, k->block_size), k);
	}
	class_row(&b, "large", "-", &s->large);
	return b.len;
}
