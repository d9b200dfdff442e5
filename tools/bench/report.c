/*
 * report.c - printing of larson and churn results: one run as text or JSON, reading a
 * run back from a child's JSON, and the side-by-side comparison of
 * allocators.  Nothing here measures anything.
 */
#include "bench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void report_fmt_count(char *buf, size_t len, bool present, uint64_t v)
{
	if (present)
		snprintf(buf, len, "%llu", (unsigned long long)v);
	else
		snprintf(buf, len, "n/a");
}

static void fmt_rss(char *buf, size_t len, long kb)
{
	if (kb < 0)
		snprintf(buf, len, "n/a");
	else
		snprintf(buf, len, "%ld KiB", kb);
}

static void text_lat(FILE *f, const char *what, const struct lat_summary *l)
{
	if (l->count == 0) {
		fprintf(f, "  %-6s latency    no samples\n", what);
		return;
	}
	fprintf(f, "  %-6s latency    p50 %.0f ns  p99 %.0f ns  p99.9 %.0f ns  max %.0f ns  (%llu samples)\n",
		what, l->p50, l->p99, l->p999, l->max, (unsigned long long)l->count);
}

void report_run_text(FILE *f, const struct run_record *r)
{
	const struct wl_cfg *c = &r->cfg;
	const struct wl_result *s = &r->res;
	const struct alloc_counters *k = &s->ctr;
	char buf[64];

	switch (c->workload) {
	case WL_LARSON:
		fprintf(f, "larson: allocator %s, %u threads x %u chunks of %llu..%llu bytes, "
			"%u rounds (%llu ops per thread), %.2f s, seed %llu, %s calls%s\n",
			r->allocator, c->threads, c->chunks, (unsigned long long)c->min,
			(unsigned long long)(c->max > c->min ? c->max - 1 : c->min), c->rounds,
			(unsigned long long)c->rounds * c->chunks, c->seconds,
			(unsigned long long)c->seed, calls_name(c->calls),
			c->check ? ", blocks checked" : "");
		break;
	case WL_CHURN:
		fprintf(f, "churn: allocator %s, %u chains x %u chunks of %llu..%llu bytes, "
			"%u ops per thread, %.2f s, seed %llu\n",
			r->allocator, c->threads, c->chunks, (unsigned long long)c->min,
			(unsigned long long)c->max, c->rounds, c->seconds,
			(unsigned long long)c->seed);
		break;
	case WL_XMALLOC:
		if (c->size)
			snprintf(buf, sizeof buf, "%llu bytes", (unsigned long long)c->size);
		else
			snprintf(buf, sizeof buf, "8..2048 bytes");
		fprintf(f, "xmalloc: allocator %s, %u producers and %u consumers, objects of %s, "
			"%.2f s (one op = one object freed)\n",
			r->allocator, c->threads, c->threads, buf, c->seconds);
		break;
	case WL_FALSESHARE:
		fprintf(f, "false-sharing: allocator %s, %s, %u threads, objects of %llu bytes "
			"written %u times, %.2f s (one op = one object)\n",
			r->allocator, fs_mode_name(c->mode), c->threads, (unsigned long long)c->size,
			c->writes, c->seconds);
		break;
	case WL_SIMPLE:
		fprintf(f, "simple: allocator %s, 1 thread, %llu, %llu and %llu bytes at depths 25, "
			"100, 400 and 1600, %.2f s\n",
			r->allocator, (unsigned long long)c->size, (unsigned long long)c->size * 2,
			(unsigned long long)c->size * 4, c->seconds);
		break;
	case WL_BUFFERS:
		fprintf(f, "buffers: allocator %s, %u thread(s) x %u live buffer(s) of %llu..%llu bytes, "
			"fill %s, %.2f s (one op = one buffer)\n",
			r->allocator, c->threads, c->live, (unsigned long long)c->min,
			(unsigned long long)c->max, fill_name(c->fill), c->seconds);
		break;
	default:
		break;
	}
	if (r->strategy[0])
		fprintf(f, "  drain strategy     %s", r->strategy);
	if (r->period >= 0)
		fprintf(f, "%s period %ld", r->strategy[0] ? "," : "  drain", r->period);
	if (r->strategy[0] || r->period >= 0)
		fputc('\n', f);
	fprintf(f, "  ops/s              %.0f  (%llu ops in %.3f s, %llu thread%s)\n",
		s->ops_per_sec, (unsigned long long)s->ops, s->elapsed,
		(unsigned long long)s->threads_created, s->threads_created == 1 ? "" : "s");
	if (c->workload == WL_LARSON)
		fprintf(f, "  warm-up            %llu mallocs by the main thread\n",
			(unsigned long long)s->warmup_ops);
	fmt_rss(buf, sizeof buf, s->peak_rss_kb);
	fprintf(f, "  peak RSS           %s\n", buf);
	if (k->present)
		fprintf(f, "  page reuse         %.1f %%\n", k->page_reuse_pct);
	else
		fprintf(f, "  page reuse         n/a\n");
	static const struct {
		const char *label;
		size_t off;
	} rows[] = {
		{ "pages from OS", offsetof(struct alloc_counters, pages_from_os) },
		{ "pages reused", offsetof(struct alloc_counters, pages_reused) },
		{ "pending enqueued", offsetof(struct alloc_counters, pending_enqueued) },
		{ "pending drained", offsetof(struct alloc_counters, pending_drained) },
		{ "adoptions", offsetof(struct alloc_counters, adoptions) },
		{ "lease refusals", offsetof(struct alloc_counters, lease_refusals) },
		{ "remote frees", offsetof(struct alloc_counters, remote_frees) },
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		uint64_t v;
		memcpy(&v, (const char *)k + rows[i].off, sizeof v);
		report_fmt_count(buf, sizeof buf, k->present, v);
		fprintf(f, "  %-18s %s\n", rows[i].label, buf);
	}
	if (s->has_latency) {
		text_lat(f, "malloc", &s->lat_malloc);
		text_lat(f, "free", &s->lat_free);
	}
}

static void json_counter(json_t *o, const char *key, bool present, uint64_t v)
{
	if (present)
		jw_u64(o, key, v);
	else
		jw_null(o, key);
}

static void json_lat(json_t *o, const char *prefix, bool has, const struct lat_summary *l)
{
	static const char *const names[] = { "p50_ns", "p99_ns", "p999_ns", "max_ns" };
	const double vals[] = { l->p50, l->p99, l->p999, l->max };
	char key[64];
	for (size_t i = 0; i < 4; i++) {
		snprintf(key, sizeof key, "%s_%s", prefix, names[i]);
		if (has && l->count)
			jw_num(o, key, vals[i]);
		else
			jw_null(o, key);
	}
	snprintf(key, sizeof key, "%s_samples", prefix);
	if (has)
		jw_u64(o, key, l->count);
	else
		jw_null(o, key);
}

json_t *report_run_object(const struct run_record *r)
{
	const struct wl_cfg *c = &r->cfg;
	const struct wl_result *s = &r->res;
	const struct alloc_counters *k = &s->ctr;

	json_t *o = jw_object();
	jw_str(o, "workload", workload_name(c->workload));
	jw_str(o, "allocator", r->allocator);
	jw_u64(o, "threads", c->threads);
	jw_u64(o, "chunks", c->chunks);
	jw_u64(o, "rounds", c->rounds);
	jw_u64(o, "min", c->min);
	jw_u64(o, "max", c->max);
	jw_num(o, "seconds", c->seconds);
	jw_u64(o, "seed", c->seed);
	jw_int(o, "check", c->check ? 1 : 0);
	jw_str(o, "calls", calls_name(c->calls));
	jw_u64(o, "size", c->size);
	jw_u64(o, "writes", c->writes);
	jw_str(o, "mode", fs_mode_name(c->mode));
	jw_u64(o, "live", c->live);
	jw_str(o, "fill", fill_name(c->fill));
	jw_str(o, "strategy", r->strategy[0] ? r->strategy : NULL);
	if (r->period >= 0)
		jw_int(o, "period", r->period);
	else
		jw_null(o, "period");
	jw_u64(o, "ops", s->ops);
	jw_num(o, "elapsed_sec", s->elapsed);
	jw_num(o, "ops_per_sec", s->ops_per_sec);
	jw_u64(o, "threads_created", s->threads_created);
	jw_u64(o, "warmup_ops", s->warmup_ops);
	if (s->peak_rss_kb >= 0)
		jw_int(o, "peak_rss_kb", s->peak_rss_kb);
	else
		jw_null(o, "peak_rss_kb");
	if (k->present)
		jw_num(o, "page_reuse_pct", k->page_reuse_pct);
	else
		jw_null(o, "page_reuse_pct");
	json_counter(o, "pages_from_os", k->present, k->pages_from_os);
	json_counter(o, "pages_reused", k->present, k->pages_reused);
	json_counter(o, "pending_enqueued", k->present, k->pending_enqueued);
	json_counter(o, "pending_drained", k->present, k->pending_drained);
	json_counter(o, "adoptions", k->present, k->adoptions);
	json_counter(o, "lease_refusals", k->present, k->lease_refusals);
	json_counter(o, "remote_frees", k->present, k->remote_frees);
	json_lat(o, "malloc", s->has_latency, &s->lat_malloc);
	json_lat(o, "free", s->has_latency, &s->lat_free);
	return o;
}

void report_run_json(FILE *f, const struct run_record *r)
{
	jw_dump(f, report_run_object(r));
}

/* Reading a child's object back ----------------------------------------- */

static double num_or(const struct json_kv *kv, size_t n, const char *k, double dflt, bool *null)
{
	const struct json_kv *e = json_find(kv, n, k);
	if (null)
		*null = !e || e->is_null;
	if (!e || e->is_null || e->is_str)
		return dflt;
	return e->num;
}

static void read_lat(const struct json_kv *kv, size_t n, const char *prefix, struct lat_summary *l,
		     bool *has)
{
	char key[64];
	bool null;
	snprintf(key, sizeof key, "%s_samples", prefix);
	l->count = (uint64_t)num_or(kv, n, key, 0, &null);
	if (null)
		return;
	*has = true;
	snprintf(key, sizeof key, "%s_p50_ns", prefix);
	l->p50 = num_or(kv, n, key, 0, NULL);
	snprintf(key, sizeof key, "%s_p99_ns", prefix);
	l->p99 = num_or(kv, n, key, 0, NULL);
	snprintf(key, sizeof key, "%s_p999_ns", prefix);
	l->p999 = num_or(kv, n, key, 0, NULL);
	snprintf(key, sizeof key, "%s_max_ns", prefix);
	l->max = num_or(kv, n, key, 0, NULL);
}

int report_record_from_json(const char *text, struct run_record *r)
{
	struct json_kv *kv;
	size_t n;
	if (json_parse_flat(text, &kv, &n) != 0)
		return -1;
	const struct json_kv *ops = json_find(kv, n, "ops_per_sec");
	if (!ops || ops->is_null || ops->is_str) {
		free(kv);
		return -1;
	}
	struct wl_result *s = &r->res;
	struct alloc_counters *k = &s->ctr;
	bool null;
	memset(s, 0, sizeof *s);
	const struct json_kv *st = json_find(kv, n, "strategy");
	snprintf(r->strategy, sizeof r->strategy, "%s", st && st->is_str ? st->str : "");
	r->period = (long)num_or(kv, n, "period", -1, NULL);
	s->ops = (uint64_t)num_or(kv, n, "ops", 0, NULL);
	s->elapsed = num_or(kv, n, "elapsed_sec", 0, NULL);
	s->ops_per_sec = ops->num;
	s->threads_created = (uint64_t)num_or(kv, n, "threads_created", 0, NULL);
	s->warmup_ops = (uint64_t)num_or(kv, n, "warmup_ops", 0, NULL);
	s->peak_rss_kb = (long)num_or(kv, n, "peak_rss_kb", -1, NULL);
	k->page_reuse_pct = num_or(kv, n, "page_reuse_pct", 0, &null);
	k->present = !null;
	k->pages_from_os = (uint64_t)num_or(kv, n, "pages_from_os", 0, NULL);
	k->pages_reused = (uint64_t)num_or(kv, n, "pages_reused", 0, NULL);
	k->pending_enqueued = (uint64_t)num_or(kv, n, "pending_enqueued", 0, NULL);
	k->pending_drained = (uint64_t)num_or(kv, n, "pending_drained", 0, NULL);
	k->adoptions = (uint64_t)num_or(kv, n, "adoptions", 0, NULL);
	k->lease_refusals = (uint64_t)num_or(kv, n, "lease_refusals", 0, NULL);
	k->remote_frees = (uint64_t)num_or(kv, n, "remote_frees", 0, NULL);
	read_lat(kv, n, "malloc", &s->lat_malloc, &s->has_latency);
	read_lat(kv, n, "free", &s->lat_free, &s->has_latency);
	free(kv);
	return 0;
}

/* Comparison ------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

double report_median(double *v, size_t n)
{
	if (n == 0)
		return NAN;
	qsort(v, n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void report_compare_text(FILE *f, const struct alloc_summary *s, size_t n, const char *baseline,
			 bool latency)
{
	int w = 10; /* width of the name column */
	for (size_t i = 0; i < n; i++)
		if ((int)strlen(s[i].name) > w)
			w = (int)strlen(s[i].name);
	fprintf(f, "%-*s %4s %14s %25s %7s %12s %7s", w, "allocator", "runs", "median ops/s",
		"min..max ops/s", "ratio", "peak RSS KiB", "reuse%");
	if (latency)
		fprintf(f, " %10s %10s %10s %10s", "malloc p50", "p99", "free p50", "p99");
	fputc('\n', f);
	for (size_t i = 0; i < n; i++) {
		const struct alloc_summary *a = &s[i];
		char runs[32], range[64], ratio[16], rss[32], reuse[16];
		snprintf(runs, sizeof runs, "%zu", a->runs - a->failed);
		if (!a->median_run) {
			fprintf(f, "%-*s %4s %14s %25s %7s %12s %7s  (all %zu runs failed)\n", w, a->name,
				runs, "-", "-", "-", "-", "-", a->runs);
			continue;
		}
		const struct wl_result *m = &a->median_run->res;
		snprintf(range, sizeof range, "%.0f..%.0f", a->min, a->max);
		if (isfinite(a->ratio))
			snprintf(ratio, sizeof ratio, "%.2f", a->ratio);
		else
			snprintf(ratio, sizeof ratio, "-");
		if (m->peak_rss_kb >= 0)
			snprintf(rss, sizeof rss, "%ld", m->peak_rss_kb);
		else
			snprintf(rss, sizeof rss, "n/a");
		if (m->ctr.present)
			snprintf(reuse, sizeof reuse, "%.1f", m->ctr.page_reuse_pct);
		else
			snprintf(reuse, sizeof reuse, "n/a");
		fprintf(f, "%-*s %4s %14.0f %25s %7s %12s %7s", w, a->name, runs, a->median, range,
			ratio, rss, reuse);
		if (latency && m->has_latency)
			fprintf(f, " %10.0f %10.0f %10.0f %10.0f", m->lat_malloc.p50, m->lat_malloc.p99,
				m->lat_free.p50, m->lat_free.p99);
		if (a->failed)
			fprintf(f, "  (%zu of %zu runs failed)", a->failed, a->runs);
		fputc('\n', f);
	}
	fprintf(f, "runs: successful runs; ratio: median ops/s / median of %s; peak RSS, reuse%%%s: of the median run\n",
		baseline, latency ? " and latency (ns)" : "");
}

void report_compare_json(FILE *f, const struct alloc_summary *s, size_t n,
			 const struct run_record *runs, const char *const *run_alloc, size_t nruns,
			 const char *baseline)
{
	json_t *root = jw_object(), *allocs = jw_array(), *recs = jw_array();
	jw_str(root, "baseline", baseline);
	for (size_t i = 0; i < n; i++) {
		const struct alloc_summary *a = &s[i];
		json_t *o = jw_object();
		jw_str(o, "allocator", a->name);
		jw_u64(o, "runs", a->runs);
		jw_u64(o, "failed", a->failed);
		if (a->median_run) {
			jw_num(o, "median_ops_per_sec", a->median);
			jw_num(o, "min_ops_per_sec", a->min);
			jw_num(o, "max_ops_per_sec", a->max);
			jw_num(o, "ratio", a->ratio);
		} else {
			jw_null(o, "median_ops_per_sec");
			jw_null(o, "min_ops_per_sec");
			jw_null(o, "max_ops_per_sec");
			jw_null(o, "ratio");
		}
		jw_append(allocs, o);
	}
	for (size_t i = 0; i < nruns; i++) {
		struct run_record r = runs[i];
		snprintf(r.allocator, sizeof r.allocator, "%s", run_alloc[i]);
		jw_append(recs, report_run_object(&r));
	}
	jw_set(root, "allocators", allocs);
	jw_set(root, "runs", recs);
	jw_dump(f, root);
}
