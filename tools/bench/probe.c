/*
 * probe.c - what the bench can learn about its own process: the counters of
 * the allocator loaded in it (if that allocator is hakmem), and peak RSS.
 *
 * hakmem-bench does not link libhakmem: it looks hak_stats_get up at run
 * time, so the same binary measures glibc, a preloaded peer or hakmem.
 */
#include "bench.h"
#include "hakmem.h"

#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

typedef int (*stats_get_fn)(struct hak_stats *, size_t);
typedef double (*reuse_pct_fn)(const struct hak_stats *);

void probe_counters(struct alloc_counters *c)
{
	memset(c, 0, sizeof *c);
	stats_get_fn get = (stats_get_fn)(uintptr_t)dlsym(RTLD_DEFAULT, "hak_stats_get");
	if (!get)
		return;
	/* Static: struct hak_stats is several KiB, and this may run on a small stack. */
	static struct hak_stats st;
	memset(&st, 0, sizeof st);
	if (get(&st, sizeof st) != 0)
		return;
	if (st.size < offsetof(struct hak_stats, large_allocs)) {
		opt_error("warning: hak_stats_get filled %u bytes, too few to use", st.size);
		return;
	}
	c->present = true;
	c->pages_from_os = st.pages_from_os;
	c->pages_reused = st.pages_reused;
	c->pending_enqueued = st.pending_enqueued;
	c->pending_drained = st.pending_drained;
	c->adoptions = st.adoptions;
	c->lease_refusals = st.lease_refusals;
	c->remote_frees = st.remote_frees;
	reuse_pct_fn pct = (reuse_pct_fn)(uintptr_t)dlsym(RTLD_DEFAULT, "hak_stats_page_reuse_pct");
	if (pct) {
		c->page_reuse_pct = pct(&st);
	} else {
		uint64_t all = st.pages_reused + st.pages_from_os;
		c->page_reuse_pct = all ? 100.0 * (double)st.pages_reused / (double)all : 0.0;
	}
}

/* VmHWM from /proc/self/status, else ru_maxrss (both KiB on Linux). */
long probe_peak_rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	if (f) {
		char line[256];
		long kb = -1;
		while (fgets(line, sizeof line, f)) {
			if (strncmp(line, "VmHWM:", 6) == 0) {
				kb = strtol(line + 6, NULL, 10);
				break;
			}
		}
		fclose(f);
		if (kb > 0)
			return kb;
	}
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) == 0 && ru.ru_maxrss > 0)
		return ru.ru_maxrss;
	return -1;
}

/* A name for the allocator of this process when none was given: the file
 * name of the first LD_PRELOAD entry, or "default". */
const char *probe_allocator_name(void)
{
	static char name[256];
	const char *pre = getenv("LD_PRELOAD");
	if (!pre)
		return "default";
	pre += strspn(pre, " :");
	if (!*pre)
		return "default";
	size_t len = strcspn(pre, " :");
	const char *base = pre;
	for (const char *p = pre; p < pre + len; p++)
		if (*p == '/')
			base = p + 1;
	len -= (size_t)(base - pre);
	if (len >= sizeof name)
		len = sizeof name - 1;
	memcpy(name, base, len);
	name[len] = '\0';
	return name;
}
