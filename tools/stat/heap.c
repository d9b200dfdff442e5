/*
 * heap.c - hakmem-stat --heap: the process's sampled heap profile (the
 * table lib/prof.c keeps in the stats segment), as the call sites that hold
 * the most memory, symbolised from the target's own mappings with elfutils'
 * libdwfl; --folded for flame-graph tools; with --watch, which sites grow.
 *
 * The table comes from the same validated snapshot as the counters, and is
 * validated on its own before any of it is used: its geometry, and every
 * entry (flags, depth, hash of its frames, live figures not above the
 * totals); a damaged or hostile table is one error line.  JSON goes
 * through jansson, as the rest of the tool's does (json.c).
 */
#include "config.h"
#include "stat.h"

#include <elfutils/libdwfl.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FRAME_TEXT 512
#define VALIDATE_TRIES 3
#define VALIDATE_WAIT_NS 10000000L /* 10 ms */

struct site {
	unsigned entry;       /* index in the table: stable for the process's life */
	const struct hak_prof_stack *st;
	uint64_t live_est, live_bytes, live_count, total_est, total_bytes, total_count;
	int64_t growth;       /* live_est since the previous refresh (watch) */
	unsigned streak;      /* refreshes in a row it grew */
};

struct frame_info {
	uint64_t addr;
	char module[128];
	char function[256];   /* empty: no symbol */
	uint64_t offset;      /* from the function (or the module) to addr */
	char file[256];       /* empty: no line information */
	int line;
};

/* Validation ----------------------------------------------------------- */

/* One line into msg if the profile of snap cannot be trusted; 0 if it can. */
static int prof_validate(const struct hak_seg_header *snap, char *msg, size_t cap)
{
	const struct hak_seg_prof *t = &snap->prof;
	if (t->num_stacks != HAK_PROF_STACKS || t->max_frames != HAK_PROF_FRAMES ||
	    t->stack_size != sizeof(struct hak_prof_stack)) {
		snprintf(msg, cap,
			 "damaged heap profile: geometry %" PRIu32 " stacks of %" PRIu32
			 " frames (%" PRIu32 " bytes), expected %d of %d (%zu)",
			 t->num_stacks, t->max_frames, t->stack_size, HAK_PROF_STACKS,
			 HAK_PROF_FRAMES, sizeof(struct hak_prof_stack));
		return -1;
	}
	if (t->sample_bytes > HAK_PROF_MAX_SAMPLE) {
		snprintf(msg, cap, "damaged heap profile: sample interval %" PRIu64
			 " bytes, at most %d", t->sample_bytes, HAK_PROF_MAX_SAMPLE);
		return -1;
	}
	if (t->stacks_used > HAK_PROF_STACKS) {
		snprintf(msg, cap, "damaged heap profile: %" PRIu64 " stacks used, at most %d",
			 t->stacks_used, HAK_PROF_STACKS);
		return -1;
	}
	for (unsigned i = 0; i < HAK_PROF_STACKS; i++) {
		const struct hak_prof_stack *e = &t->stacks[i];
		const char *bad = NULL;
		if (e->ready > 1)
			bad = "bad ready flag";
		else if (e->ready && !e->hash)
			bad = "ready but empty";
		else if (!e->hash && (e->live_count || e->total_count || e->live_est ||
				      e->total_est || e->depth))
			bad = "counts in an empty entry";
		else if (e->ready && (e->depth == 0 || e->depth > HAK_PROF_FRAMES))
			bad = "bad depth";
		else if (e->ready && hak_prof_hash(e->frames, e->depth) != e->hash)
			bad = "hash does not match its frames";
		else if (e->live_count > e->total_count || e->live_est > e->total_est ||
			 e->live_bytes > e->total_bytes)
			bad = "live figures above the totals";
		if (bad) {
			snprintf(msg, cap, "damaged heap profile: entry %u: %s", i, bad);
			return -1;
		}
	}
	return 0;
}

/* Symbols ---------------------------------------------------------------- */

static char *debuginfo_path;
static const Dwfl_Callbacks proc_callbacks = {
	.find_elf = dwfl_linux_proc_find_elf,
	.find_debuginfo = dwfl_standard_find_debuginfo,
	.debuginfo_path = &debuginfo_path,
};

/* A libdwfl session on pid's modules as they are mapped now; NULL if the
 * process cannot be read (then frames are shown as addresses). */
static Dwfl *symbols_open(pid_t pid)
{
	Dwfl *d = dwfl_begin(&proc_callbacks);
	if (!d)
		return NULL;
	if (dwfl_linux_proc_report(d, pid) != 0 || dwfl_report_end(d, NULL, NULL) != 0) {
		dwfl_end(d);
		return NULL;
	}
	return d;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
	snprintf(dst, cap, "%s", src ? src : "");
}

/* What addr (a return address: the call is the byte before it) is. */
static void symbolise(Dwfl *d, uint64_t addr, struct frame_info *f)
{
	memset(f, 0, sizeof *f);
	f->addr = addr;
	if (!d || addr == 0)
		return;
	Dwarf_Addr pc = addr - 1;
	Dwfl_Module *m = dwfl_addrmodule(d, pc);
	if (!m)
		return;
	Dwarf_Addr start = 0;
	const char *mname = dwfl_module_info(m, NULL, &start, NULL, NULL, NULL, NULL, NULL);
	const char *slash = mname ? strrchr(mname, '/') : NULL;
	copy_str(f->module, sizeof f->module, slash ? slash + 1 : mname);
	GElf_Off off = 0;
	GElf_Sym sym;
	const char *fn = dwfl_module_addrinfo(m, pc, &off, &sym, NULL, NULL, NULL);
	if (fn) {
		copy_str(f->function, sizeof f->function, fn);
		f->offset = off + 1;
	} else {
		f->offset = addr - start;
	}
	Dwfl_Line *l = dwfl_module_getsrc(m, pc);
	int line = 0;
	const char *file = l ? dwfl_lineinfo(l, NULL, &line, NULL, NULL, NULL) : NULL;
	if (file && line > 0) {
		copy_str(f->file, sizeof f->file, file);
		f->line = line;
	}
}

/* "function+0x1f (file.c:42)", "function+0x1f (libc.so.6)", "0x7f..." */
static void frame_text(const struct frame_info *f, char *out, size_t cap)
{
	char where[300];
	if (f->file[0]) {
		const char *slash = strrchr(f->file, '/');
		snprintf(where, sizeof where, " (%s:%d)", slash ? slash + 1 : f->file, f->line);
	} else if (f->module[0]) {
		snprintf(where, sizeof where, " (%s)", f->module);
	} else {
		where[0] = 0;
	}
	if (f->function[0])
		snprintf(out, cap, "%s+0x%" PRIx64 "%s", f->function, f->offset, where);
	else if (f->module[0])
		snprintf(out, cap, "%s+0x%" PRIx64, f->module, f->offset);
	else
		snprintf(out, cap, "0x%" PRIx64, f->addr);
}

/* A frame's name for --folded: the function, else module+offset, else
 * the address; ';' and blanks (the format's separators) become '_'. */
static void frame_folded(const struct frame_info *f, char *out, size_t cap)
{
	if (f->function[0])
		snprintf(out, cap, "%s", f->function);
	else if (f->module[0])
		snprintf(out, cap, "%s+0x%" PRIx64, f->module, f->offset);
	else
		snprintf(out, cap, "0x%" PRIx64, f->addr);
	for (char *p = out; *p; p++)
		if (*p == ';' || *p == ' ' || *p == '\t' || *p == '\n')
			*p = '_';
}

/* Collecting ------------------------------------------------------------- */

static int by_live(const void *a, const void *b)
{
	const struct site *x = a, *y = b;
	if (x->live_est != y->live_est)
		return x->live_est < y->live_est ? 1 : -1;
	return x->entry < y->entry ? -1 : x->entry > y->entry;
}

/* The ready entries of a validated table, largest estimated live first;
 * prev (the previous refresh's figures by entry, or NULL) gives growth. */
static size_t sites_collect(const struct hak_seg_prof *t, struct site *out,
			    const uint64_t *prev_live, const unsigned *prev_streak)
{
	size_t n = 0;
	for (unsigned i = 0; i < HAK_PROF_STACKS; i++) {
		const struct hak_prof_stack *e = &t->stacks[i];
		if (!e->ready || !e->total_count)
			continue;
		struct site *s = &out[n++];
		*s = (struct site){
			.entry = i,
			.st = e,
			.live_est = e->live_est,
			.live_bytes = e->live_bytes,
			.live_count = e->live_count,
			.total_est = e->total_est,
			.total_bytes = e->total_bytes,
			.total_count = e->total_count,
		};
		if (prev_live) {
			s->growth = (int64_t)(e->live_est - prev_live[i]);
			s->streak = s->growth > 0 ? prev_streak[i] + 1 : 0;
		}
	}
	qsort(out, n, sizeof *out, by_live);
	return n;
}

/* Estimated blocks live: the sampled blocks' share of the estimate. */
static uint64_t est_blocks(const struct site *s)
{
	if (!s->live_bytes)
		return s->live_count;
	return (uint64_t)((double)s->live_est * (double)s->live_count / (double)s->live_bytes + 0.5);
}

static bool shown(const struct stat_opts *o, const struct site *s, size_t rank)
{
	return s->live_est >= o->min_bytes && (!o->top || rank < (size_t)o->top);
}

/* Output ------------------------------------------------------------------ */

static void human(char *out, size_t cap, uint64_t bytes)
{
	char buf[32];
	struct hak_sbuf b = {.p = buf, .len = 0, .cap = sizeof buf};
	hak__sb_human(&b, bytes);
	snprintf(out, cap, "%s", buf);
}

/* The estimated live bytes of all n sites. */
static uint64_t sites_live(const struct site *v, size_t n)
{
	uint64_t live = 0;
	for (size_t i = 0; i < n; i++)
		live += v[i].live_est;
	return live;
}

static void print_text(const struct hak_seg_header *snap, Dwfl *d, const struct site *v,
		       size_t n, const struct stat_opts *o, double seconds)
{
	const struct hak_seg_prof *t = &snap->prof;
	uint64_t live = sites_live(v, n);
	char comm[sizeof snap->comm + 1], lb[32], tb[32], gb[32];
	struct hak_sbuf cb = {.p = comm, .len = 0, .cap = sizeof comm};
	comm[0] = 0;
	hak__sb_safe_str(&cb, snap->comm, sizeof snap->comm);
	human(lb, sizeof lb, live);
	printf("heap profile of pid %lld (%s): one sample per %" PRIu64 " bytes on average\n",
	       (long long)snap->pid, comm, t->sample_bytes);
	printf("estimated live %s at %zu call stacks; %" PRIu64 " samples taken, %" PRIu64
	       " dropped\n",
	       lb, n, t->samples, t->dropped);
	for (size_t i = 0; i < n; i++) {
		const struct site *s = &v[i];
		if (!shown(o, s, i))
			continue;
		human(lb, sizeof lb, s->live_est);
		human(tb, sizeof tb, s->total_est);
		printf("\n#%zu  %s live (%.1f%%) in ~%" PRIu64 " blocks; %s allocated; %" PRIu64
		       " live of %" PRIu64 " samples",
		       i + 1, lb, live ? 100.0 * (double)s->live_est / (double)live : 0.0,
		       est_blocks(s), tb, s->live_count, s->total_count);
		if (o->watch && s->growth > 0) {
			human(gb, sizeof gb, (uint64_t)s->growth);
			printf("  GROWING +%s in %.1f s (%u in a row)", gb, seconds, s->streak);
		}
		putchar('\n');
		for (unsigned k = 0; k < s->st->depth; k++) {
			struct frame_info f;
			char text[FRAME_TEXT];
			symbolise(d, s->st->frames[k], &f);
			frame_text(&f, text, sizeof text);
			printf("    %s\n", text);
		}
	}
}

static json_t *json_frame(const struct frame_info *f)
{
	char addr[24];
	snprintf(addr, sizeof addr, "0x%" PRIx64, f->addr);
	json_t *o = json_object();
	json_object_set_new(o, "addr", json_string(addr));
	json_object_set_new(o, "module", json_from_bytes(f->module, sizeof f->module));
	json_object_set_new(o, "function", json_from_bytes(f->function, sizeof f->function));
	json_object_set_new(o, "offset", json_integer((json_int_t)f->offset));
	json_object_set_new(o, "file", json_from_bytes(f->file, sizeof f->file));
	json_object_set_new(o, "line", json_integer(f->line > 0 ? f->line : 0));
	return o;
}

/* One JSON object (one line); -1 if it could not be written. */
static int print_json(const struct hak_seg_header *snap, Dwfl *d, const struct site *v,
		      size_t n, const struct stat_opts *o, double seconds)
{
	const struct hak_seg_prof *t = &snap->prof;
	uint64_t live = sites_live(v, n);
	json_t *root = json_object();
	json_object_set_new(root, "pid", json_integer(snap->pid));
	json_object_set_new(root, "comm", json_from_bytes(snap->comm, sizeof snap->comm));
	json_put_u64(root, "time_ns", now_realtime_ns());
	json_put_u64(root, "sample_bytes", t->sample_bytes);
	json_put_u64(root, "samples", t->samples);
	json_put_u64(root, "dropped", t->dropped);
	json_put_u64(root, "stacks", n);
	json_put_u64(root, "live_bytes", live);
	json_t *sites_j = json_array();
	for (size_t i = 0; i < n; i++) {
		const struct site *s = &v[i];
		if (!shown(o, s, i))
			continue;
		json_t *j = json_object();
		json_put_u64(j, "live_bytes", s->live_est);
		json_put_u64(j, "live_blocks", est_blocks(s));
		json_put_u64(j, "live_samples", s->live_count);
		json_put_u64(j, "live_sampled_bytes", s->live_bytes);
		json_put_u64(j, "alloc_bytes", s->total_est);
		json_put_u64(j, "alloc_samples", s->total_count);
		if (o->watch) {
			json_object_set_new(j, "growth_bytes", json_integer(s->growth));
			json_object_set_new(j, "growth_bytes_per_s",
					    json_integer(seconds > 0 ? (json_int_t)((double)s->growth /
										   seconds)
								     : 0));
			json_object_set_new(j, "growing", json_boolean(s->growth > 0));
			json_put_u64(j, "streak", s->streak);
		}
		json_t *frames = json_array();
		for (unsigned k = 0; k < s->st->depth; k++) {
			struct frame_info f;
			symbolise(d, s->st->frames[k], &f);
			json_array_append_new(frames, json_frame(&f));
		}
		json_object_set_new(j, "frames", frames);
		json_array_append_new(sites_j, j);
	}
	json_object_set_new(root, "sites", sites_j);
	return json_print(root);
}

static void print_folded(Dwfl *d, const struct site *v, size_t n, const struct stat_opts *o)
{
	for (size_t i = 0; i < n; i++) {
		const struct site *s = &v[i];
		if (!shown(o, s, i) || !s->live_est)
			continue;
		for (unsigned k = s->st->depth; k-- > 0;) {
			struct frame_info f;
			char text[FRAME_TEXT];
			symbolise(d, s->st->frames[k], &f);
			frame_folded(&f, text, sizeof text);
			printf("%s%s", text, k ? ";" : "");
		}
		printf(" %" PRIu64 "\n", s->live_est);
	}
}

/* Running ----------------------------------------------------------------- */

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

static struct hak_seg_header snap; /* 2 MiB: static, not on the stack */
static struct site sites[HAK_PROF_STACKS];
static uint64_t prev_live[HAK_PROF_STACKS];
static unsigned prev_streak[HAK_PROF_STACKS];

/* One reading of the profile: 0, or EXIT_TROUBLE after one error line. */
static int heap_once(const struct stat_opts *o, bool have_prev, double seconds,
		     uint64_t *start_time, bool *gone)
{
	char msg[512];
	enum seg_status rc;
	/* The copy is not atomic: an entry the process claims while it is
	 * copied can look damaged (its hash not yet there, its depth or its
	 * counts already).  Such a state lasts microseconds; a damaged table
	 * stays damaged: only a table that fails every reading is refused. */
	for (int tries = 0;; tries++) {
		rc = seg_read(o->pid, &snap, msg, sizeof msg);
		if (rc != SEG_OK || prof_validate(&snap, msg, sizeof msg) == 0)
			break;
		if (tries + 1 >= VALIDATE_TRIES) {
			errmsg("process %ld: %s", (long)o->pid, msg);
			return EXIT_TROUBLE;
		}
		struct timespec ts = {.tv_sec = 0, .tv_nsec = VALIDATE_WAIT_NS};
		nanosleep(&ts, NULL);
	}
	*gone = rc == SEG_NO_PROCESS || rc == SEG_NO_SEGMENT || rc == SEG_STALE ||
		(rc == SEG_OK && have_prev && snap.start_time_ns != *start_time);
	if (*gone && have_prev)
		return 0;
	if (rc != SEG_OK) {
		errmsg("%s", msg);
		return EXIT_TROUBLE;
	}
	*start_time = snap.start_time_ns;
	if (!snap.prof.sample_bytes) {
		errmsg("process %ld has no heap profile (start it with HAKMEM_PROFILE=1)",
		       (long)o->pid);
		return EXIT_TROUBLE;
	}
	size_t n = sites_collect(&snap.prof, sites, have_prev ? prev_live : NULL, prev_streak);
	Dwfl *d = symbols_open(o->pid);
	if (o->watch && !o->json && !o->folded) {
		char when[16];
		time_t t = time(NULL);
		struct tm tm;
		localtime_r(&t, &tm);
		strftime(when, sizeof when, "%H:%M:%S", &tm);
		if (have_prev)
			printf("\n--- %s, %.1f s after the previous reading\n", when, seconds);
		else
			printf("--- %s\n", when);
	}
	int out = 0;
	if (o->folded)
		print_folded(d, sites, n, o);
	else if (o->json)
		out = print_json(&snap, d, sites, n, o, seconds);
	else
		print_text(&snap, d, sites, n, o, seconds);
	if (d)
		dwfl_end(d);
	if (out != 0)
		return EXIT_TROUBLE;
	memset(prev_live, 0, sizeof prev_live);
	memset(prev_streak, 0, sizeof prev_streak);
	for (size_t i = 0; i < n; i++) {
		prev_live[sites[i].entry] = sites[i].live_est;
		prev_streak[sites[i].entry] = sites[i].streak;
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		errmsg("cannot write output: %s", strerror(errno));
		return EXIT_TROUBLE;
	}
	return 0;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int heap_run(const struct stat_opts *o)
{
	uint64_t start_time = 0, last = mono_ns();
	bool gone;
	if (!o->watch)
		return heap_once(o, false, 0.0, &start_time, &gone);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	for (long n = 0;; n++) {
		uint64_t now = mono_ns();
		int rc = heap_once(o, n > 0, (double)(now - last) / 1e9, &start_time, &gone);
		last = now;
		if (rc)
			return rc;
		if (gone) {
			fflush(stdout);
			errmsg("process %ld exited", (long)o->pid);
			return 0;
		}
		if (o->count && n + 1 >= o->count)
			return 0;
		struct timespec ts = {.tv_sec = (time_t)o->interval};
		ts.tv_nsec = (long)((o->interval - (double)ts.tv_sec) * 1e9);
		while (!stop_signal && nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
		if (stop_signal) {
			errmsg("interrupted (%s)", stop_signal == SIGINT ? "SIGINT" : "SIGTERM");
			return 0;
		}
	}
}
