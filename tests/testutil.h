/*
 * testutil.h - helpers shared by the hakmem tests: failure reporting,
 * a seeded PRNG, block content patterns, forked children that are
 * expected to abort, and a check that hakmem really is the allocator.
 */
#ifndef HAKMEM_TESTUTIL_H
#define HAKMEM_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Exit status the automake test harness reads as "skipped". */
#define TU_SKIP 77

/* Print "file:line: message" (and the context, if set) and exit 1.  Safe
 * to call from any thread: it uses _exit so no atexit handler races the
 * other threads. */
__attribute__((noreturn, format(printf, 3, 4)))
void tu_fail_at(const char *file, int line, const char *fmt, ...);

#define TU_FAIL(...) tu_fail_at(__FILE__, __LINE__, __VA_ARGS__)
/* TU_CHECK(cond) or TU_CHECK(cond, "format", args...) */
#define TU_CHECK(cond, ...)                                                 \
	do {                                                                \
		if (!(cond))                                                \
			tu_check_failed(__FILE__, __LINE__, #cond, " " __VA_ARGS__); \
	} while (0)
__attribute__((noreturn, format(printf, 4, 5)))
void tu_check_failed(const char *file, int line, const char *cond,
		     const char *fmt, ...);

/* A line printed with every failure (e.g. the seed of a stress run). */
__attribute__((format(printf, 1, 2)))
void tu_set_context(const char *fmt, ...);

/* On SIGABRT (hakmem's reaction to a bad pointer), print the context line
 * before dying, so that the log says what the test was doing. */
void tu_context_on_abort(void);

/* Print a message to stderr and exit with TU_SKIP. */
__attribute__((noreturn, format(printf, 1, 2)))
void tu_skip(const char *fmt, ...);

/* Deterministic PRNG (splitmix64 to seed, xorshift64* to step). */
struct tu_rng {
	uint64_t s;
};
uint64_t tu_mix64(uint64_t x);
void tu_rng_seed(struct tu_rng *r, uint64_t seed);
uint64_t tu_rng_next(struct tu_rng *r);
/* Uniform in [lo, hi] (inclusive). */
uint64_t tu_rng_range(struct tu_rng *r, uint64_t lo, uint64_t hi);

/* Fill n bytes at p with a pattern derived from key; tu_pattern_check
 * returns the offset of the first byte that differs, or SIZE_MAX. */
void tu_pattern_fill(void *p, size_t n, uint64_t key);
size_t tu_pattern_check(const void *p, size_t n, uint64_t key);
/* Fail (naming what, the key and the offset) unless p holds the pattern. */
void tu_pattern_expect(const void *p, size_t n, uint64_t key, const char *what);

/* True when every one of the n bytes at p is zero. */
bool tu_all_zero(const void *p, size_t n);

/* Result of running a function in a forked child. */
struct tu_child {
	pid_t pid;
	int status;       /* as from waitpid */
	char err[4096];   /* the child's stderr, NUL-terminated, truncated */
	size_t err_len;
};

/* Fork; in the child redirect stderr to a pipe and call fn(arg), then
 * _exit(0).  The parent collects stderr and the exit status.  The child
 * is killed by SIGALRM if it runs longer than timeout_s seconds (a hang
 * guard, not a performance threshold).  The child's stats segment, which
 * nothing removes after _exit or a signal, is removed. */
void tu_run_child(void (*fn)(void *), void *arg, unsigned timeout_s,
		  struct tu_child *out);

/* Fail unless the child died of SIGABRT after writing exactly one line to
 * stderr, and that line contains the address p in hexadecimal. */
void tu_expect_abort_naming(const struct tu_child *c, const void *p,
			    const char *what);

/* Remove the stats segment hakmem publishes for process pid (named as in
 * lib/statseg.h), if it is there: processes that die leave theirs. */
void tu_remove_stats_segment(pid_t pid);

/* Whether that segment exists. */
bool tu_stats_segment_exists(pid_t pid);
/* Whether this process maps a stats segment: its named one, or the unnamed
 * file a fork child keeps until it names it.  Reads /proc/self/maps with
 * read(2) into static memory: no allocation. */
bool tu_stats_segment_mapped(void);

/* Fail unless the standard malloc of this process is hakmem's: the
 * library's counters must move when malloc and free are called. */
void tu_require_hakmem_malloc(void);

/* Sum of allocations counted by hakmem (all classes plus large). */
uint64_t tu_hak_total_allocs(void);

/* The allocation entry points, as the standard names or the hak_ ones, so
 * that one test body checks both. */
struct tu_api {
	const char *name;
	void *(*malloc)(size_t);
	void (*free)(void *);
	void *(*calloc)(size_t, size_t);
	void *(*realloc)(void *, size_t);
	void *(*reallocarray)(void *, size_t, size_t);
	int (*posix_memalign)(void **, size_t, size_t);
	void *(*aligned_alloc)(size_t, size_t);
	void *(*memalign)(size_t, size_t);
	void *(*valloc)(size_t);
	void *(*pvalloc)(size_t);
	size_t (*usable_size)(void *);
};
extern const struct tu_api tu_api_std, tu_api_hak;

/* One test body, run once per table of entry points. */
typedef void tu_api_test(const struct tu_api *a);

/* Fail unless malloc is hakmem's, then run the tests of the NULL-ended
 * list in order, first all with tu_api_std, then all with tu_api_hak (the
 * table's name is the failure context, also on abort). */
void tu_run_api_tests(tu_api_test *const tests[]);

/* Unsigned integer from a command line option value; fails on junk. */
uint64_t tu_parse_u64(const char *name, const char *s);

/* For check(1) tests (include <check.h> first): an assertion for hot
 * loops.  ck_assert records its location with a write(2) on every
 * success; this costs nothing until it fails. */
#ifdef CHECK_MAJOR_VERSION
#define UCHECK(cond, ...)                    \
	do {                                 \
		if (!(cond))                 \
			ck_abort_msg(__VA_ARGS__); \
	} while (0)

/* (testutil-check.c, linked into the unit tests only.)  A test case named
 * name with a hang guard of timeout_s seconds, already added to s. */
TCase *tu_add_tcase(Suite *s, const char *name, double timeout_s);

/* Run every test of s (and free it): EXIT_SUCCESS unless one failed. */
int tu_run_suite(Suite *s);
#endif

#endif /* HAKMEM_TESTUTIL_H */
