/*
 * json.c - hakmem-bench's JSON, through jansson: objects built key by key
 * (numbers that are not finite become null), written whole, and the flat
 * object a child process sends back, read into a table of keys.
 */
#include "bench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

json_t *jw_object(void)
{
	return json_object();
}

json_t *jw_array(void)
{
	return json_array();
}

/* set_new takes v's reference, and drops it when o or v is NULL (no memory) */
static void set(json_t *o, const char *key, json_t *v)
{
	json_object_set_new(o, key, v);
}

void jw_str(json_t *o, const char *key, const char *val)
{
	set(o, key, val ? json_string(val) : json_null());
}

void jw_u64(json_t *o, const char *key, uint64_t v)
{
	set(o, key, json_integer((json_int_t)v));
}

void jw_int(json_t *o, const char *key, long v)
{
	set(o, key, json_integer((json_int_t)v));
}

void jw_num(json_t *o, const char *key, double v)
{
	set(o, key, isfinite(v) ? json_real(v) : json_null());
}

void jw_null(json_t *o, const char *key)
{
	set(o, key, json_null());
}

void jw_append(json_t *arr, json_t *v)
{
	json_array_append_new(arr, v);
}

void jw_set(json_t *o, const char *key, json_t *v)
{
	set(o, key, v);
}

int jw_dump(FILE *f, json_t *v)
{
	int rc = v ? json_dumpf(v, f, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10)) : -1;
	json_decref(v);
	if (rc != 0) {
		opt_error("cannot write JSON (out of memory?)");
		return -1;
	}
	fputc('\n', f);
	return 0;
}

int json_parse_flat(const char *text, struct json_kv **kvp, size_t *np)
{
	json_error_t err;
	json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &err);
	if (!root || !json_is_object(root)) {
		json_decref(root);
		return -1;
	}
	size_t n = json_object_size(root), i = 0;
	struct json_kv *kv = calloc(n ? n : 1, sizeof *kv);
	if (!kv) {
		json_decref(root);
		return -1;
	}
	const char *key;
	json_t *v;
	json_object_foreach(root, key, v) {
		struct json_kv *e = &kv[i];
		if (strlen(key) >= sizeof e->key)
			goto bad;
		strcpy(e->key, key);
		if (json_is_string(v)) {
			e->is_str = true;
			snprintf(e->str, sizeof e->str, "%s", json_string_value(v));
		} else if (json_is_null(v)) {
			e->is_null = true;
		} else if (json_is_number(v)) {
			e->num = json_number_value(v);
		} else {
			goto bad; /* not flat */
		}
		i++;
	}
	json_decref(root);
	*kvp = kv;
	*np = i;
	return 0;
bad:
	json_decref(root);
	free(kv);
	return -1;
}

const struct json_kv *json_find(const struct json_kv *kv, size_t n, const char *k)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(kv[i].key, k) == 0)
			return &kv[i];
	return NULL;
}
