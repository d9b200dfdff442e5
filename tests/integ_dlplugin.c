/*
 * integ_dlplugin.c - dlopen of a library linked against libhakmem, in a
 * program that neither links hakmem nor preloads it.
 *
 * The plugin (dlplugin.c, built with libtool as a module linked against
 * libhakmem.la) calls the hak_ functions and the plain malloc, realloc,
 * strdup and free, from the calling thread and from a thread it starts.
 * What glibc's dynamic linker does with it, and what this test checks:
 *
 *  - dlopen loads the plugin and libhakmem.so.1 (its dependency) into a
 *    new local scope; libhakmem initialises itself (with its stats segment)
 *    at once, and its thread-local storage fits in the static TLS surplus,
 *    also for threads that existed before the dlopen.
 *  - A symbol the plugin uses is looked up in the global scope first (the
 *    program and the libraries it was linked with, libc among them), then
 *    in the plugin's own scope.  So its hak_ calls reach libhakmem, the
 *    only library that defines them: those blocks are hakmem's
 *    (hak_malloc_usable_size knows them, hakmem's counters move) and must
 *    go back through hak_free.  Its plain malloc, realloc and free reach
 *    glibc's, which comes first: hakmem does not serve them, and the
 *    program may free those blocks with its own free().  RTLD_GLOBAL
 *    changes nothing there (libhakmem joins the global scope after libc).
 *  - With RTLD_DEEPBIND the plugin's own scope comes first: its malloc and
 *    free are then hakmem's, its plain blocks hakmem's too, and they must
 *    go back through the plugin (never the program's free); memory that
 *    libc allocates for it internally (strdup) stays glibc's, and such a
 *    plugin must not free that with its free.
 *  - dlclose unloads the plugin but not libhakmem, which is linked with
 *    -z nodelete (its thread-exit destructor and fork handlers must stay
 *    valid); a later dlopen finds the same instance, counters and all.
 *  - Afterwards the program still starts threads and forks.
 *
 * The plugin is found through HAKMEM_TEST_BUILDDIR (set by `make check'),
 * and libhakmem through the plugin's run path (the build tree).
 */
#include "config.h"

#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dlplugin.h"
#include "hakmem.h" /* struct hak_stats only: nothing of hakmem is linked */
#include "testutil.h"

static char plugin_path[4096];
static char hakmem_path[4096]; /* libhakmem as the dynamic linker loaded it */

struct loaded {
	void *handle;
	const struct dlplugin_api *api;
};

static struct loaded load(int flags, const char *how)
{
	struct loaded l;
	l.handle = dlopen(plugin_path, flags);
	if (!l.handle)
		TU_FAIL("dlopen(%s, %s): %s", plugin_path, how, dlerror());
	dlplugin_api_fn *fn = (dlplugin_api_fn *)dlsym(l.handle, "dlplugin_api");
	TU_CHECK(fn != NULL, "dlplugin_api: %s", dlerror());
	l.api = fn();
	TU_CHECK(l.api->version == DLPLUGIN_API_VERSION);
	return l;
}

/* dlclose unloads the plugin; libhakmem stays (nodelete). */
static void unload(struct loaded *l)
{
	TU_CHECK(dlclose(l->handle) == 0, "dlclose: %s", dlerror());
	void *again = dlopen(plugin_path, RTLD_NOW | RTLD_NOLOAD);
	TU_CHECK(again == NULL, "the plugin is still loaded after dlclose");
	void *hm = dlopen(hakmem_path, RTLD_NOW | RTLD_NOLOAD);
	TU_CHECK(hm != NULL, "libhakmem was unloaded with the plugin (it is linked "
		 "with -z nodelete)");
	dlclose(hm);
}

/* The shared object that defines the function at addr. */
static const char *defined_in(void *addr)
{
	Dl_info info;
	TU_CHECK(dladdr(addr, &info) != 0 && info.dli_fname, "dladdr(%p)", addr);
	return info.dli_fname;
}

static struct hak_stats stats(const struct dlplugin_api *api)
{
	struct hak_stats st;
	TU_CHECK(api->hak_stats(&st, sizeof st) == 0);
	return st;
}

static uint64_t total_allocs(const struct hak_stats *st)
{
	uint64_t n = st->large_allocs;
	for (unsigned c = 0; c < st->num_classes; c++)
		n += st->classes[c].allocs;
	return n;
}

static size_t block_size(unsigned i)
{
	return 1 + (size_t)(tu_mix64(i) % (i % 8 == 7 ? 300000 : 3000));
}

static void expect_pattern(const void *p, size_t n, uint64_t key, const char *what)
{
	size_t off = dlplugin_check(p, n, key);
	if (off != n)
		TU_FAIL("%s: block %p of %zu bytes changed at offset %zu", what, p, n, off);
}

/* The plugin's hak_ blocks are hakmem's ----------------------------------- */

static void check_hak_blocks(const struct dlplugin_api *api)
{
	enum { N = 64 };
	void *p[N];
	struct hak_stats s0 = stats(api), s;
	for (unsigned i = 0; i < N; i++) {
		size_t n = block_size(i);
		p[i] = api->hak_block(n, i);
		TU_CHECK(p[i] != NULL);
		TU_CHECK(api->hak_usable(p[i]) >= n, "hak_malloc_usable_size %zu < %zu",
			 api->hak_usable(p[i]), n);
	}
	s = stats(api);
	TU_CHECK(total_allocs(&s) - total_allocs(&s0) == N,
		 "%d hak_mallocs in the plugin moved hakmem's counters by %llu", N,
		 (unsigned long long)(total_allocs(&s) - total_allocs(&s0)));
	for (unsigned i = 0; i < N; i += 2) {
		size_t n = block_size(i);
		p[i] = api->hak_grow(p[i], n, n + 20000, i);
		TU_CHECK(p[i] != NULL, "hak_realloc in the plugin lost the contents");
	}
	for (unsigned i = 0; i < N; i++)
		expect_pattern(p[i], block_size(i) + (i % 2 ? 0 : 20000), i, "hak_ block");
	char *z = api->hak_zeroed(5000);
	TU_CHECK(z != NULL && tu_all_zero(z, 5000), "hak_calloc in the plugin");
	api->hak_release(z);
	for (unsigned i = 0; i < N; i++)
		api->hak_release(p[i]);
	s = stats(api);
	TU_CHECK(s.bytes_in_use == s0.bytes_in_use, "bytes in use %llu, before %llu",
		 (unsigned long long)s.bytes_in_use, (unsigned long long)s0.bytes_in_use);
}

/* The plugin's plain malloc is glibc's (deep: hakmem's) -------------------- */

static void check_plain_blocks(const struct dlplugin_api *api, bool hakmem)
{
	enum { N = 64 };
	void *p[N];
	struct hak_stats s0 = stats(api), s;
	for (unsigned i = 0; i < N; i++) {
		size_t n = block_size(i);
		p[i] = api->plain_block(n, ~(uint64_t)i);
		TU_CHECK(p[i] != NULL);
		if (hakmem)
			TU_CHECK(api->hak_usable(p[i]) >= n);
		else /* glibc's own malloc_usable_size knows it */
			TU_CHECK(malloc_usable_size(p[i]) >= n);
		p[i] = api->plain_grow(p[i], n, n + 1000, ~(uint64_t)i);
		TU_CHECK(p[i] != NULL, "realloc in the plugin lost the contents");
	}
	s = stats(api);
	uint64_t moved = total_allocs(&s) - total_allocs(&s0);
	if (hakmem)
		TU_CHECK(moved >= N, "with RTLD_DEEPBIND the plugin's malloc is not hakmem's "
			 "(%llu allocations counted)", (unsigned long long)moved);
	else
		TU_CHECK(moved == 0, "the plugin's plain malloc reached hakmem (%llu "
			 "allocations counted): it should be glibc's", (unsigned long long)moved);
	for (unsigned i = 0; i < N; i++) {
		expect_pattern(p[i], block_size(i) + 1000, ~(uint64_t)i, "plain block");
		if (hakmem || i % 2)
			api->plain_release(p[i]);
		else
			free(p[i]); /* glibc's block, glibc's free */
	}
	if (!hakmem) {
		char *d = api->plain_dup("a string duplicated in the plugin");
		TU_CHECK(d && strcmp(d, "a string duplicated in the plugin") == 0);
		free(d);
	}
	s = stats(api);
	TU_CHECK(s.bytes_in_use == s0.bytes_in_use);
}

/* Threads: the plugin's own, and one of the program older than the dlopen. */

static void check_plugin_thread(const struct dlplugin_api *api)
{
	enum { NOUT = 16, OUT_SIZE = 3000 };
	void *out[NOUT];
	struct hak_stats s0 = stats(api), s;
	const char *err = api->thread_run(10, out, NOUT, OUT_SIZE, 500);
	TU_CHECK(err == NULL, "the plugin's thread: %s", err);
	s = stats(api);
	TU_CHECK(s.threads == s0.threads, "%u threads own a heap after the plugin's thread "
		 "exited, %u before", s.threads, s0.threads);
	TU_CHECK(total_allocs(&s) - total_allocs(&s0) >= 10 * 32 + NOUT);
	/* its blocks, freed here: frees into an exited thread's pages */
	for (unsigned i = 0; i < NOUT; i++) {
		expect_pattern(out[i], OUT_SIZE, 500 + i, "block of the plugin's thread");
		api->hak_release(out[i]);
	}
	s = stats(api);
	TU_CHECK(s.bytes_in_use == s0.bytes_in_use);
}

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	const struct dlplugin_api *api;
	bool done;
} early = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

/* Started before the dlopen: libhakmem's TLS must exist in it too. */
static void *early_thread(void *unused)
{
	(void)unused;
	pthread_mutex_lock(&early.mu);
	while (!early.api)
		pthread_cond_wait(&early.cv, &early.mu);
	pthread_mutex_unlock(&early.mu);
	for (unsigned i = 0; i < 200; i++) {
		size_t n = block_size(i);
		void *p = early.api->hak_block(n, 7 * i);
		TU_CHECK(p != NULL);
		expect_pattern(p, n, 7 * i, "early thread's block");
		early.api->hak_release(p);
	}
	return NULL;
}

/* After the plugin: the program goes on ------------------------------------ */

static void *plain_thread(void *arg)
{
	char *p = malloc(1000);
	TU_CHECK(p != NULL);
	memset(p, 1, 1000);
	free(p);
	return arg;
}

static void fork_child(void *unused)
{
	(void)unused;
	pthread_t t;
	TU_CHECK(pthread_create(&t, NULL, plain_thread, NULL) == 0);
	TU_CHECK(pthread_join(t, NULL) == 0);
}

static void check_after(void)
{
	pthread_t t;
	struct tu_child c;
	TU_CHECK(pthread_create(&t, NULL, plain_thread, NULL) == 0);
	TU_CHECK(pthread_join(t, NULL) == 0);
	tu_run_child(fork_child, NULL, 60, &c);
	TU_CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0,
		 "forked child: status %#x, stderr: %s", c.status, c.err);
}

int main(void)
{
	const char *dir = getenv("HAKMEM_TEST_BUILDDIR");
	const char *preload = getenv("LD_PRELOAD");
	if (!dir || !*dir)
		tu_skip("HAKMEM_TEST_BUILDDIR is not set (run through make check)");
	snprintf(plugin_path, sizeof plugin_path, "%s/.libs/dlplugin.so", dir);

	/* the premise: no hakmem in this process before the dlopen */
	TU_CHECK(dlsym(RTLD_DEFAULT, "hak_malloc") == NULL && !(preload && *preload),
		 "hakmem is in the process already (linked or preloaded)");
	void *libc_malloc = dlsym(RTLD_DEFAULT, "malloc");
	void *libc_free = dlsym(RTLD_DEFAULT, "free");
	TU_CHECK(libc_malloc && libc_free);

	pthread_t et;
	TU_CHECK(pthread_create(&et, NULL, early_thread, NULL) == 0);

	/* RTLD_LOCAL, the usual plugin load */
	struct loaded l = load(RTLD_NOW | RTLD_LOCAL, "RTLD_LOCAL");
	void *hak_malloc_fn = dlsym(l.handle, "hak_malloc");
	TU_CHECK(hak_malloc_fn != NULL, "hak_malloc not reachable from the plugin");
	snprintf(hakmem_path, sizeof hakmem_path, "%s", defined_in(hak_malloc_fn));
	TU_CHECK(strstr(hakmem_path, "libhakmem") != NULL, "hak_malloc is in %s", hakmem_path);
	TU_CHECK(strcmp(l.api->hak_version(), PACKAGE_VERSION) == 0);
	TU_CHECK(tu_stats_segment_exists(getpid()), "the loaded libhakmem has no stats segment");
	TU_CHECK(l.api->malloc_seen() == libc_malloc && l.api->free_seen() == libc_free,
		 "the plugin's malloc is in %s, want glibc's (%s)",
		 defined_in(l.api->malloc_seen()), defined_in(libc_malloc));
	printf("# RTLD_LOCAL: hak_malloc from %s, malloc from %s\n", hakmem_path,
	       defined_in(l.api->malloc_seen()));
	check_hak_blocks(l.api);
	check_plain_blocks(l.api, false);
	check_plugin_thread(l.api);
	pthread_mutex_lock(&early.mu);
	early.api = l.api;
	pthread_cond_broadcast(&early.cv);
	pthread_mutex_unlock(&early.mu);
	TU_CHECK(pthread_join(et, NULL) == 0);
	struct hak_stats before = stats(l.api);
	unload(&l);
	printf("ok - RTLD_LOCAL: hak_ blocks are hakmem's, malloc blocks glibc's; threads; "
	       "dlclose keeps libhakmem\n");

	/* RTLD_GLOBAL: the same instance of libhakmem, the same answer */
	l = load(RTLD_NOW | RTLD_GLOBAL, "RTLD_GLOBAL");
	struct hak_stats again = stats(l.api);
	TU_CHECK(total_allocs(&again) >= total_allocs(&before),
		 "libhakmem's counters went back: a new instance was loaded");
	TU_CHECK(l.api->malloc_seen() == libc_malloc,
		 "with RTLD_GLOBAL the plugin's malloc is in %s", defined_in(l.api->malloc_seen()));
	check_hak_blocks(l.api);
	check_plain_blocks(l.api, false);
	unload(&l);
	printf("ok - RTLD_GLOBAL: the same libhakmem, malloc still glibc's\n");

	/* RTLD_DEEPBIND: the plugin's own scope first, if libhakmem has the
	 * standard names (not with --disable-override) */
	void *hm = dlopen(hakmem_path, RTLD_NOW | RTLD_NOLOAD);
	TU_CHECK(hm != NULL);
	void *hak_std_malloc = dlsym(hm, "malloc");
	if (hak_std_malloc && hak_std_malloc != libc_malloc) {
		l = load(RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND, "RTLD_DEEPBIND");
		TU_CHECK(l.api->malloc_seen() == hak_std_malloc &&
			 l.api->free_seen() == dlsym(hm, "free"),
			 "with RTLD_DEEPBIND the plugin's malloc is in %s, want libhakmem's",
			 defined_in(l.api->malloc_seen()));
		check_hak_blocks(l.api);
		check_plain_blocks(l.api, true);
		check_plugin_thread(l.api);
		unload(&l);
		printf("ok - RTLD_DEEPBIND: the plugin's malloc is hakmem's\n");
	} else {
		printf("# libhakmem built without the standard names: no RTLD_DEEPBIND case\n");
	}
	dlclose(hm);

	check_after();
	printf("ok - after dlclose: threads and fork work\n");
	printf("integ_dlplugin: ok\n");
	return 0;
}
