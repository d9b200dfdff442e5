/*
 * json.c - hakmem-stat's JSON, through jansson: the snapshot object (the
 * same figures as the text of statfmt.c), the watch form's rates, and the
 * strings that come from a segment (a command name may hold any byte).
 */
#include "config.h"
#include "stat.h"

#include <math.h>
#include <stdio.h>

/* A string of at most max bytes from a segment, as JSON text: each byte
 * that is not printable ASCII stands for the code point of the same value
 * (as \u00XX did before), so that any bytes give valid UTF-8. */
json_t *json_from_bytes(const char *s, size_t max)
{
	char out[4 * 256 + 1];
	size_t n = 0;
	for (size_t i = 0; i < max && s[i] && n + 2 < sizeof out; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x80) {
			out[n++] = (char)c;
		} else {
			out[n++] = (char)(0xc0 | c >> 6);
			out[n++] = (char)(0x80 | (c & 0x3f));
		}
	}
	return json_stringn(out, n);
}

/* x rounded to 10^-digits, so that a tenth prints as a tenth */
static json_t *rounded(double x, int digits)
{
	double f = pow(10, digits);
	return isfinite(x) ? json_real(round(x * f) / f) : json_null();
}

static void put(json_t *o, const char *key, json_t *v)
{
	json_object_set_new(o, key, v);
}

void json_put_u64(json_t *o, const char *key, uint64_t v)
{
	put(o, key, json_integer((json_int_t)v));
}

static void put_class(json_t *o, const struct hak_statsum_class *c)
{
	json_put_u64(o, "allocs", c->allocs);
	json_put_u64(o, "frees", c->frees);
	json_put_u64(o, "in_use", c->in_use);
	json_put_u64(o, "bytes_in_use", c->bytes_in_use);
}

json_t *json_summary(const struct hak_statsum *s)
{
	json_t *o = json_object();
	put(o, "pid", json_integer(s->pid));
	put(o, "comm", json_from_bytes(s->comm, sizeof s->comm));
	put(o, "strategy", json_from_bytes(s->strategy, sizeof s->strategy));
	json_put_u64(o, "start_time_ns", s->start_time_ns);
	json_put_u64(o, "time_ns", s->now_ns);
	double up = s->now_ns > s->start_time_ns ? (double)((s->now_ns - s->start_time_ns) /
							    100000000u) / 10 : 0;
	put(o, "uptime_s", rounded(up, 1));
	json_put_u64(o, "threads", s->threads);
	json_put_u64(o, "heaps_created", s->heaps_created);
	json_put_u64(o, "bytes_in_use", s->bytes_in_use);
	json_put_u64(o, "mapped_bytes", s->mapped_bytes);
	json_put_u64(o, "reserved_bytes", s->reserved_bytes);
	json_put_u64(o, "resident_bound_bytes", s->resident_bound);
	put(o, "vm_rss_bytes", s->vm_rss >= 0 ? json_integer(s->vm_rss) : json_null());
	json_put_u64(o, "unpurged_free_bytes", s->unpurged_free_bytes);
	json_put_u64(o, "purged_bytes", s->purged_bytes);
	json_put_u64(o, "pages_from_os", s->pages_from_os);
	json_put_u64(o, "pages_reused", s->pages_reused);
	put(o, "page_reuse_pct", rounded((double)hak__statsum_reuse_permille(s) / 10, 1));
	json_put_u64(o, "pending_enqueued", s->pending_enqueued);
	json_put_u64(o, "pending_drained", s->pending_drained);
	json_put_u64(o, "adoptions", s->adoptions);
	json_put_u64(o, "lease_refusals", s->lease_refusals);
	json_put_u64(o, "remote_frees", s->remote_frees);
	json_put_u64(o, "allocs", s->allocs);
	json_put_u64(o, "frees", s->frees);
	json_t *large = json_object();
	put_class(large, &s->large);
	json_put_u64(large, "reused", s->large_reused);
	json_put_u64(large, "own_mapping", s->large_direct);
	json_put_u64(large, "grown_in_place", s->large_inplace);
	json_put_u64(large, "span_mapped_bytes", s->span_mapped_bytes);
	json_put_u64(large, "span_kept_bytes", s->span_kept_bytes);
	put(o, "large", large);
	json_t *classes = json_array();
	for (unsigned c = 0; c < s->num_classes; c++) {
		const struct hak_statsum_class *k = &s->cls[c];
		if (!k->allocs && !k->frees)
			continue;
		json_t *e = json_object();
		json_put_u64(e, "class", c);
		json_put_u64(e, "size", k->block_size);
		put_class(e, k);
		json_array_append_new(classes, e);
	}
	put(o, "classes", classes);
	return o;
}

void json_add_rates(json_t *o, const struct rates *r)
{
	json_t *j = json_object();
	put(j, "seconds", rounded(r->seconds, 3));
	put(j, "allocs", rounded(r->allocs, 1));
	put(j, "frees", rounded(r->frees, 1));
	put(j, "remote_frees", rounded(r->remote_frees, 1));
	put(j, "adoptions", rounded(r->adoptions, 1));
	put(j, "pages", rounded(r->pages, 1));
	put(o, "rates", j);
}

int json_print(json_t *v)
{
	int rc = v ? json_dumpf(v, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15))
		   : -1;
	json_decref(v);
	if (rc != 0) {
		errmsg("cannot write JSON (out of memory?)");
		return -1;
	}
	putchar('\n');
	return 0;
}
