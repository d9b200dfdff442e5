/*
 * options.c - parsing and checking of option values for hakmem-bench.
 *
 * popt hands every value over as a string; the parsers here check range and
 * syntax themselves so that each mistake gets one line naming the option,
 * and a non-zero exit (BENCH_EXIT_USAGE) from the caller.
 */
#include "bench.h"

#include <popt.h>

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void opt_error(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", BENCH_PROG);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* The leading digits of s as by strtoull (errno set on overflow), *end
 * after them; -1 after "OPT: 's' is not a WHAT" unless s starts with one. */
static int leading_digits(const char *opt, const char *s, const char *what,
			  unsigned long long *v, char **end)
{
	if (!s || !*s || !isdigit((unsigned char)*s)) {
		opt_error("%s: '%s' is not a %s", opt, s ? s : "", what);
		return -1;
	}
	errno = 0;
	*v = strtoull(s, end, 10);
	return 0;
}

/* Store v in *out if lo <= v <= hi, else -1 after one line (unit follows
 * the number in it). */
static int store_in_range(const char *opt, unsigned long long v, const char *unit,
			  uint64_t lo, uint64_t hi, uint64_t *out)
{
	if (v < lo || v > hi) {
		opt_error("%s: %llu%s is out of range (%llu to %llu)", opt, v, unit,
			  (unsigned long long)lo, (unsigned long long)hi);
		return -1;
	}
	*out = v;
	return 0;
}

int opt_parse_u64(const char *opt, const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	unsigned long long v;
	if (leading_digits(opt, s, "number", &v, &end) != 0)
		return -1;
	if (errno || *end) {
		opt_error("%s: '%s' is not a number", opt, s);
		return -1;
	}
	return store_in_range(opt, v, "", lo, hi, out);
}

/* A byte count with an optional K, M or G suffix (binary). */
int opt_parse_size(const char *opt, const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	unsigned long long v;
	if (leading_digits(opt, s, "size", &v, &end) != 0)
		return -1;
	unsigned shift = 0;
	switch (toupper((unsigned char)*end)) {
	case 'K': shift = 10; end++; break;
	case 'M': shift = 20; end++; break;
	case 'G': shift = 30; end++; break;
	default: break;
	}
	if (shift && toupper((unsigned char)*end) == 'I' && toupper((unsigned char)end[1]) == 'B')
		end += 2;
	if (errno || *end || v > (~0ULL >> shift)) {
		opt_error("%s: '%s' is not a size (bytes, or a number with K, M or G)", opt, s);
		return -1;
	}
	return store_in_range(opt, v << shift, " bytes", lo, hi, out);
}

int opt_parse_double(const char *opt, const char *s, double lo, double hi, double *out)
{
	char *end;
	if (!s || !*s) {
		opt_error("%s: '' is not a number", opt);
		return -1;
	}
	errno = 0;
	double v = strtod(s, &end);
	if (errno || *end || !isfinite(v)) {
		opt_error("%s: '%s' is not a number", opt, s);
		return -1;
	}
	if (v < lo || v > hi) {
		opt_error("%s: %s is out of range (%g to %g)", opt, s, lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

int opt_check_workload(const struct wl_cfg *cfg)
{
	if (cfg->min > cfg->max) {
		opt_error("--min (%llu) is larger than --max (%llu)",
			  (unsigned long long)cfg->min, (unsigned long long)cfg->max);
		return -1;
	}
	if (cfg->workload != WL_LARSON)
		return 0;
	/* The published generator cannot reach past its range: refuse rather
	 * than run a workload that never draws some blocks or sizes. */
	if (cfg->chunks > LARSON_RNG_RANGE) {
		opt_error("--chunks: %u is more than larson's generator can pick from (%u)",
			  cfg->chunks, LARSON_RNG_RANGE);
		return -1;
	}
	if (cfg->max - cfg->min > LARSON_RNG_RANGE) {
		opt_error("--max - --min: %llu bytes is wider than larson's generator draws (%u)",
			  (unsigned long long)(cfg->max - cfg->min), LARSON_RNG_RANGE);
		return -1;
	}
	return 0;
}

char **opt_split_list(const char *s, size_t *n)
{
	size_t cap = 1;
	for (const char *p = s; *p; p++)
		cap += *p == ',';
	char **v = calloc(cap, sizeof *v);
	if (!v)
		return NULL;
	size_t k = 0;
	const char *start = s;
	for (;;) {
		const char *comma = strchr(start, ',');
		size_t len = comma ? (size_t)(comma - start) : strlen(start);
		if (len) {
			v[k] = strndup(start, len);
			if (!v[k]) {
				opt_free_list(v, k);
				return NULL;
			}
			k++;
		}
		if (!comma)
			break;
		start = comma + 1;
	}
	*n = k;
	return v;
}

void opt_free_list(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Workload options ----------------------------------------------------------- */

struct opt_workload opt_workload;

/* Entries shared by several workloads' tables. */
#define OPT_MIN(dflt)                                                                    \
	{ "min", 0, POPT_ARG_STRING, &opt_workload.min, 0,                               \
	  "smallest block, bytes or with K/M/G suffix (default " dflt ")", "SIZE" }
#define OPT_SECONDS                                                                      \
	{ "seconds", 's', POPT_ARG_STRING, &opt_workload.seconds, 0,                     \
	  "length of the timed phase of each run (default 2)", "SECONDS" }
#define OPT_TIMEOUT                                                                      \
	{ "timeout", 0, POPT_ARG_STRING, &opt_workload.timeout, 0,                       \
	  "kill a child run after this many seconds (default 60)", "SECONDS" }

const struct poptOption opt_workload_table[] = {
	{ "chunks", 'c', POPT_ARG_STRING, &opt_workload.chunks, 0,
	  "blocks in each thread's slice (default 1000)", "N" },
	{ "rounds", 'r', POPT_ARG_STRING, &opt_workload.rounds, 0,
	  "a thread does N x CHUNKS free+malloc pairs, then hands its slice to a new "
	  "thread (default 100)",
	  "N" },
	{ "seed", 0, POPT_ARG_STRING, &opt_workload.seed, 0,
	  "seed of the published program's generator (default 4141)", "N" },
	OPT_MIN("2048"),
	{ "max", 0, POPT_ARG_STRING, &opt_workload.max, 0,
	  "sizes are drawn below this, as published (default 32768)", "SIZE" },
	OPT_SECONDS,
	OPT_TIMEOUT,
	POPT_TABLEEND
};

const struct poptOption opt_churn_table[] = {
	{ "chunks", 'c', POPT_ARG_STRING, &opt_workload.chunks, 0,
	  "live blocks per chain of threads (default 1000)", "N" },
	{ "rounds", 'r', POPT_ARG_STRING, &opt_workload.rounds, 0,
	  "free+malloc pairs in a thread's life, before it hands its blocks to a new thread "
	  "(default 10000)",
	  "N" },
	{ "seed", 0, POPT_ARG_STRING, &opt_workload.seed, 0,
	  "seed of the per-chain random generators (default 1)", "N" },
	OPT_MIN("2048"),
	{ "max", 0, POPT_ARG_STRING, &opt_workload.max, 0, "largest block (default 32768)",
	  "SIZE" },
	OPT_SECONDS,
	OPT_TIMEOUT,
	POPT_TABLEEND
};

const struct poptOption opt_xmalloc_table[] = {
	{ "size", 0, POPT_ARG_STRING, &opt_workload.size, 0,
	  "object size, at most 4K; 0 draws from the published list of 8 to 2048 (default 64)",
	  "SIZE" },
	OPT_SECONDS,
	OPT_TIMEOUT,
	POPT_TABLEEND
};

const struct poptOption opt_falseshare_table[] = {
	{ "size", 0, POPT_ARG_STRING, &opt_workload.size, 0,
	  "object size, at most 4K (default 8)", "SIZE" },
	{ "writes", 'w', POPT_ARG_STRING, &opt_workload.writes, 0,
	  "writes of each byte of an object before it is freed (default 1000)", "N" },
	{ "mode", 'm', POPT_ARG_STRING, &opt_workload.mode, 0,
	  "passive: threads first free objects the main thread allocated side by side "
	  "(cache-scratch, default); active: they do not (cache-thrash)",
	  "passive|active" },
	OPT_SECONDS,
	OPT_TIMEOUT,
	POPT_TABLEEND
};

const struct poptOption opt_simple_table[] = {
	{ "size", 0, POPT_ARG_STRING, &opt_workload.size, 0,
	  "first block size; SIZE, 2 x SIZE and 4 x SIZE are run (default 16, at most 64K)",
	  "SIZE" },
	OPT_SECONDS,
	OPT_TIMEOUT,
	POPT_TABLEEND
};

const struct poptOption opt_buffers_table[] = {
	{ "live", 0, POPT_ARG_STRING, &opt_workload.live, 0,
	  "buffers each thread keeps (default 1, at most 1024)", "N" },
	OPT_MIN("2M"),
	{ "max", 0, POPT_ARG_STRING, &opt_workload.max, 0, "largest buffer (default 2M)",
	  "SIZE" },
	{ "fill", 0, POPT_ARG_STRING, &opt_workload.fill, 0,
	  "write: write every byte (default); zero: calloc; none: leave it", "write|zero|none" },
	{ "seed", 0, POPT_ARG_STRING, &opt_workload.seed, 0, "seed of the generators (default 1)",
	  "N" },
	OPT_SECONDS,
	OPT_TIMEOUT,
	POPT_TABLEEND
};

#define XM_MAX_SIZE 4096
#define FS_MAX_SIZE 4096
#define FS_MAX_WRITES 1000000
#define SIMPLE_MAX_SIZE 65536
#define BUF_MAX_LIVE 1024

/* One of names (n of them) by its string, or -1 after one line. */
static int parse_choice(const char *opt, const char *s, const char *const *names, int n)
{
	char list[128] = "";
	for (int i = 0; i < n; i++) {
		if (strcmp(s, names[i]) == 0)
			return i;
		size_t len = strlen(list);
		snprintf(list + len, sizeof list - len, "%s%s", i == 0 ? "" : i == n - 1 ? " or " : ", ",
			 names[i]);
	}
	opt_error("%s: '%s' is not %s", opt, s, list);
	return -1;
}

int opt_workload_finish(struct wl_cfg *cfg, double *timeout)
{
	struct opt_workload *w = &opt_workload;
	enum bench_workload wl = cfg->workload;
	bool larson = wl == WL_LARSON;
	uint64_t v;
	*cfg = wl_table[wl].defaults;
	*timeout = RUN_DEF_TIMEOUT;
	if (w->chunks) {
		if (opt_parse_u64("--chunks", w->chunks, 1, LARSON_MAX_CHUNKS, &v))
			return -1;
		cfg->chunks = (unsigned)v;
	}
	if (w->rounds) {
		if (opt_parse_u64("--rounds", w->rounds, 1, UINT32_MAX, &v))
			return -1;
		cfg->rounds = (unsigned)v;
	}
	if (w->min && opt_parse_size("--min", w->min, 1, LARSON_MAX_SIZE, &cfg->min))
		return -1;
	if (w->max && opt_parse_size("--max", w->max, 1, LARSON_MAX_SIZE, &cfg->max))
		return -1;
	if (w->seconds &&
	    opt_parse_double("--seconds", w->seconds, 0.001, LARSON_MAX_SECONDS, &cfg->seconds))
		return -1;
	if (w->seed &&
	    opt_parse_u64("--seed", w->seed, 0, larson ? LARSON_MAX_SEED : UINT64_MAX, &cfg->seed))
		return -1;
	if (w->size) {
		uint64_t lo = wl == WL_XMALLOC ? 0 : 1;
		uint64_t hi = wl == WL_XMALLOC ? XM_MAX_SIZE
			      : wl == WL_FALSESHARE ? FS_MAX_SIZE : SIMPLE_MAX_SIZE;
		if (opt_parse_size("--size", w->size, lo, hi, &cfg->size))
			return -1;
	}
	if (w->writes) {
		if (opt_parse_u64("--writes", w->writes, 1, FS_MAX_WRITES, &v))
			return -1;
		cfg->writes = (unsigned)v;
	}
	if (w->mode) {
		static const char *const modes[] = { [FS_PASSIVE] = "passive", [FS_ACTIVE] = "active" };
		int m = parse_choice("--mode", w->mode, modes, 2);
		if (m < 0)
			return -1;
		cfg->mode = (enum fs_mode)m;
	}
	if (w->live) {
		if (opt_parse_u64("--live", w->live, 1, BUF_MAX_LIVE, &v))
			return -1;
		cfg->live = (unsigned)v;
	}
	if (w->fill) {
		static const char *const fills[] = { [FILL_WRITE] = "write", [FILL_ZERO] = "zero",
						     [FILL_NONE] = "none" };
		int f = parse_choice("--fill", w->fill, fills, 3);
		if (f < 0)
			return -1;
		cfg->fill = (enum buf_fill)f;
	}
	if (w->timeout && opt_parse_double("--timeout", w->timeout, 0.1, 86400, timeout))
		return -1;
	if (*timeout <= cfg->seconds) {
		opt_error("--timeout (%g s) must be longer than --seconds (%g s)", *timeout,
			  cfg->seconds);
		return -1;
	}
	return opt_check_workload(cfg);
}

int opt_popt_parse(const char *cmd, void *con)
{
	int rc;
	while ((rc = poptGetNextOpt(con)) > 0)
		;
	if (rc >= -1)
		return 0;
	opt_error("%s: %s: %s", cmd, poptBadOption((poptContext)con, POPT_BADOPTION_NOALIAS),
		  poptStrerror(rc));
	poptFreeContext(con);
	return -1;
}
