/*
 * json.c - the little JSON hakmem-bench needs: a writer of flat objects,
 * and a reader of the flat object a child process sends back.
 *
 * The writer writes one flat object at a time (it remembers only whether a
 * key is the object's first); a caller that nests objects in arrays writes
 * the brackets and commas between them itself.
 */
#include "bench.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static FILE *cur_stream;
static bool cur_first;

static void key(FILE *f, const char *k)
{
	if (f != cur_stream) {
		cur_stream = f;
		cur_first = true;
	}
	fprintf(f, "%s\"%s\": ", cur_first ? "" : ", ", k);
	cur_first = false;
}

void json_begin(FILE *f)
{
	cur_stream = f;
	cur_first = true;
	fputc('{', f);
}

void json_end(FILE *f)
{
	fputc('}', f);
	cur_stream = NULL;
}

void json_value_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

void json_str(FILE *f, const char *k, const char *val)
{
	key(f, k);
	if (val)
		json_value_str(f, val);
	else
		fputs("null", f);
}

void json_u64(FILE *f, const char *k, uint64_t v)
{
	key(f, k);
	fprintf(f, "%llu", (unsigned long long)v);
}

void json_int(FILE *f, const char *k, long v)
{
	key(f, k);
	fprintf(f, "%ld", v);
}

void json_num(FILE *f, const char *k, double v)
{
	key(f, k);
	if (isfinite(v))
		fprintf(f, "%.10g", v);
	else
		fputs("null", f);
}

void json_null(FILE *f, const char *k)
{
	key(f, k);
	fputs("null", f);
}

/* Reader ---------------------------------------------------------------- */

static const char *skip_ws(const char *p)
{
	while (isspace((unsigned char)*p))
		p++;
	return p;
}

/* Parse a string at p (after the opening quote); returns the char after the
 * closing quote or NULL.  Escapes other than \" \\ \/ \n \t \uXXXX (ASCII)
 * are rejected: the writer above produces no others. */
static const char *parse_string(const char *p, char *out, size_t cap)
{
	size_t n = 0;
	while (*p && *p != '"') {
		char c = *p++;
		if (c == '\\') {
			c = *p++;
			switch (c) {
			case '"': case '\\': case '/': break;
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			case 'u': {
				char hex[5] = { 0 };
				for (int i = 0; i < 4; i++) {
					if (!isxdigit((unsigned char)p[i]))
						return NULL;
					hex[i] = p[i];
				}
				p += 4;
				c = (char)strtol(hex, NULL, 16);
				break;
			}
			default: return NULL;
			}
		}
		if (n + 1 < cap)
			out[n++] = c;
	}
	if (*p != '"')
		return NULL;
	out[n] = '\0';
	return p + 1;
}

int json_parse_flat(const char *text, struct json_kv **kvp, size_t *np)
{
	size_t cap = 16, n = 0;
	struct json_kv *kv = calloc(cap, sizeof *kv);
	if (!kv)
		return -1;
	const char *p = skip_ws(text);
	if (*p++ != '{')
		goto bad;
	p = skip_ws(p);
	if (*p == '}') {
		p++;
		goto done;
	}
	for (;;) {
		if (n == cap) {
			struct json_kv *m = realloc(kv, 2 * cap * sizeof *kv);
			if (!m)
				goto bad;
			kv = m;
			cap *= 2;
		}
		struct json_kv *e = &kv[n];
		memset(e, 0, sizeof *e);
		p = skip_ws(p);
		if (*p++ != '"' || !(p = parse_string(p, e->key, sizeof e->key)))
			goto bad;
		p = skip_ws(p);
		if (*p++ != ':')
			goto bad;
		p = skip_ws(p);
		if (*p == '"') {
			e->is_str = true;
			if (!(p = parse_string(p + 1, e->str, sizeof e->str)))
				goto bad;
		} else if (strncmp(p, "null", 4) == 0) {
			e->is_null = true;
			p += 4;
		} else {
			char *end;
			e->num = strtod(p, &end);
			if (end == p)
				goto bad;
			p = end;
		}
		n++;
		p = skip_ws(p);
		if (*p == ',') {
			p++;
			continue;
		}
		if (*p++ != '}')
			goto bad;
		break;
	}
done:
	if (*skip_ws(p) != '\0')
		goto bad;
	*kvp = kv;
	*np = n;
	return 0;
bad:
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
