/*
 * options.c - the HAKMEM_* tunables: one table, read once at start-up.
 *
 * The table is the single place that states each variable's default and
 * range; hakmem(7) is written from it.  An invalid value gets one warning
 * line naming the variable, the value and the default that is used instead.
 */
#include "config.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>

struct hak_options hak__opt;

static const char *const strategy_names[] = {
	[HAK_DRAIN_OWNER] = "owner",
	[HAK_DRAIN_ROUNDROBIN] = "roundrobin",
	[HAK_DRAIN_HYBRID] = "hybrid",
	[HAK_DRAIN_ADOPT] = "adopt",
};

enum opt_kind { OPT_UINT, OPT_BOOL, OPT_STRATEGY };

struct opt_def {
	const char *name;
	enum opt_kind kind;
	unsigned long dflt, min, max;
	void *target;        /* unsigned, bool or int */
	unsigned long scale; /* multiplier applied to a size_t target, 0 = none */
	const char *range;   /* for the warning text */
};

static const struct opt_def opt_table[] = {
	{"HAKMEM_DRAIN", OPT_STRATEGY, HAK_DRAIN_ADOPT, 0, 3, &hak__opt.strategy, 0,
	 "owner, roundrobin, hybrid or adopt"},
	{"HAKMEM_DRAIN_PERIOD", OPT_UINT, 4, 1, 1000000, &hak__opt.drain_period, 0,
	 "an integer from 1 to 1000000"},
	{"HAKMEM_LEASE_US", OPT_UINT, 0, 0, 10000000, &hak__opt.lease_us, 0,
	 "an integer from 0 to 10000000"},
	{"HAKMEM_SCAN_BUDGET", OPT_UINT, 64, 1, 65536, &hak__opt.scan_budget, 0,
	 "an integer from 1 to 65536"},
	{"HAKMEM_QUIET_FREES", OPT_UINT, 32, 0, 1000000, &hak__opt.quiet_frees, 0,
	 "an integer from 0 (never) to 1000000"},
	{"HAKMEM_SWEEP_MS", OPT_UINT, 0, 0, 60000, &hak__opt.sweep_ms, 0,
	 "an integer from 0 (off) to 60000"},
	{"HAKMEM_PURGE_DELAY_MS", OPT_UINT, 200, 0, 3600000, &hak__opt.purge_delay_ms, 0,
	 "an integer from 0 to 3600000"},
	{"HAKMEM_PURGE_KEEP_PCT", OPT_UINT, 20, 0, 1000, &hak__opt.purge_keep_pct, 0,
	 "an integer from 0 to 1000"},
	{"HAKMEM_MF2_ENABLE", OPT_BOOL, 1, 0, 1, &hak__opt.mf2, 0, "0 or 1"},
	{"HAKMEM_STATS", OPT_BOOL, 1, 0, 1, &hak__opt.stats, 0, "0 or 1"},
	{"HAKMEM_SHOW_STATS", OPT_BOOL, 0, 0, 1, &hak__opt.show_stats, 0, "0 or 1"},
	{"HAKMEM_BACKGROUND", OPT_BOOL, 1, 0, 1, &hak__opt.background, 0, "0 or 1"},
	{"HAKMEM_LARGE_CACHE_MB", OPT_UINT, 64, 0, 65536, &hak__opt.large_cache, 1u << 20,
	 "an integer from 0 to 65536"},
	{"HAKMEM_SPAN_MAX_MB", OPT_UINT, 32, 0, 256, &hak__opt.span_max, 1u << 20,
	 "an integer from 0 (no span tier) to 256"},
	{"HAKMEM_SPAN_KEEP_PCT", OPT_UINT, 100, 0, 1000, &hak__opt.span_keep_pct, 0,
	 "an integer from 0 to 1000"},
	{"HAKMEM_CHECK", OPT_UINT, 1, 0, 2, &hak__opt.check, 0,
	 "0 (off), 1 (default checks) or 2 (paranoid: canaries)"},
	{"HAKMEM_PROFILE", OPT_BOOL, 0, 0, 1, &hak__opt.prof, 0,
	 "0 or 1 (the heap profile; off by default: see BENCHMARKS.md)"},
	{"HAKMEM_PROFILE_SAMPLE", OPT_UINT, HAK_PROF_DEFAULT, 0, HAK_PROF_MAX_SAMPLE, &hak__opt.prof_sample, 1,
	 "an integer from 0 (off) to 1073741824 bytes per sample"},
};

const char *hak__strategy_name(int s)
{
	if (s < 0 || s > HAK_DRAIN_ADOPT)
		return "?";
	return strategy_names[s];
}

static bool parse_uint(const char *v, unsigned long *out)
{
	if (!*v)
		return false;
	unsigned long x = 0;
	for (; *v; v++) {
		if (*v < '0' || *v > '9')
			return false;
		if (x > (~0ul - 9) / 10)
			return false;
		x = x * 10 + (unsigned long)(*v - '0');
	}
	*out = x;
	return true;
}

static bool parse_value(const struct opt_def *d, const char *v, unsigned long *out)
{
	switch (d->kind) {
	case OPT_STRATEGY:
		for (unsigned long i = 0; i <= HAK_DRAIN_ADOPT; i++)
			if (!strcmp(v, strategy_names[i])) {
				*out = i;
				return true;
			}
		return false;
	case OPT_BOOL:
	case OPT_UINT:
		return parse_uint(v, out) && *out >= d->min && *out <= d->max;
	}
	return false;
}

static void store(const struct opt_def *d, unsigned long v)
{
	switch (d->kind) {
	case OPT_STRATEGY:
		*(int *)d->target = (int)v;
		break;
	case OPT_BOOL:
		*(bool *)d->target = v != 0;
		break;
	case OPT_UINT:
		if (d->scale)
			*(size_t *)d->target = (size_t)v * d->scale;
		else
			*(unsigned *)d->target = (unsigned)v;
		break;
	}
}

void hak__options_init(void)
{
	for (size_t i = 0; i < sizeof opt_table / sizeof opt_table[0]; i++) {
		const struct opt_def *d = &opt_table[i];
		const char *v = getenv(d->name);
		unsigned long val = d->dflt;
		if (v && !parse_value(d, v, &val)) {
			char num[24];
			const char *dflt = d->kind == OPT_STRATEGY ? strategy_names[d->dflt]
								   : hak__fmt_u64(num, d->dflt);
			hak__write_err("hakmem: warning: ", d->name, "=");
			hak__write_err(v, " is invalid (expected ", d->range);
			hak__write_err("); using the default ", dflt, "\n");
			val = d->dflt;
		}
		store(d, val);
	}
	if (!hak__opt.prof)
		hak__opt.prof_sample = 0; /* the interval counts only when it is on */
	hak__span_init(); /* the span tier's geometry follows its options */
}
