/*
 * dlplugin.h - the interface of dlplugin.so, a test plugin linked against
 * libhakmem that integ_dlplugin loads with dlopen (see integ_dlplugin.c).
 *
 * The plugin exports one function, dlplugin_api(), which returns this
 * table; the program calls everything else through it.
 */
#ifndef HAKMEM_DLPLUGIN_H
#define HAKMEM_DLPLUGIN_H

#include <stddef.h>
#include <stdint.h>

struct hak_stats;

#define DLPLUGIN_API_VERSION 1

struct dlplugin_api {
	unsigned version; /* DLPLUGIN_API_VERSION */
	/* The functions the plugin's own malloc and free calls bind to. */
	void *(*malloc_seen)(void);
	void *(*free_seen)(void);
	/* hak_malloc / hak_calloc / hak_realloc of n bytes (the old block held
	 * old_n bytes of key's pattern: checked), filled with key's pattern. */
	void *(*hak_block)(size_t n, uint64_t key);
	void *(*hak_zeroed)(size_t n);
	void *(*hak_grow)(void *p, size_t old_n, size_t n, uint64_t key);
	void (*hak_release)(void *p);
	size_t (*hak_usable)(void *p);
	int (*hak_stats)(struct hak_stats *st, size_t size);
	const char *(*hak_version)(void);
	/* The same with the plain names, as the plugin's code sees them. */
	void *(*plain_block)(size_t n, uint64_t key);
	void *(*plain_grow)(void *p, size_t old_n, size_t n, uint64_t key);
	char *(*plain_dup)(const char *s);
	void (*plain_release)(void *p);
	/* Start a thread in the plugin that allocates, grows and frees with
	 * the hak_ calls and the plain ones for rounds rounds, then leaves
	 * nout blocks of n bytes (hak_malloc, pattern key + i) in out[], and
	 * join it.  Returns NULL, or what went wrong. */
	const char *(*thread_run)(unsigned rounds, void **out, size_t nout, size_t n,
				  uint64_t key);
};

typedef const struct dlplugin_api *dlplugin_api_fn(void);

/* The pattern both sides write and check: cheap, different per key. */
static inline unsigned char dlplugin_byte(uint64_t key, size_t i)
{
	uint64_t x = key * 0x9e3779b97f4a7c15ULL + i * 0xbf58476d1ce4e5b9ULL;
	return (unsigned char)(x >> 56);
}

static inline void dlplugin_fill(void *p, size_t n, uint64_t key)
{
	unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		b[i] = dlplugin_byte(key, i);
}

/* The offset of the first byte that differs, or n. */
static inline size_t dlplugin_check(const void *p, size_t n, uint64_t key)
{
	const unsigned char *b = p;
	size_t i;
	for (i = 0; i < n; i++)
		if (b[i] != dlplugin_byte(key, i))
			break;
	return i;
}

#endif /* HAKMEM_DLPLUGIN_H */
