/*
 * unit_prof.c - the heap profile's table (lib/prof.c) seen from inside:
 *  - every allocation sampled (HAKMEM_PROFILE_SAMPLE=1): one entry for a
 *    call site, whose first frame is in the calling function (this program
 *    links hakmem statically: the frames are skipped by the caller's return
 *    address alone), with exact live and allocated bytes and counts; frees
 *    take blocks off the live figures only;
 *  - a sample weighs size / (1 - exp(-size / mean)) at a mean of 4096;
 *  - a fork child inherits the entries and takes its frees off its own
 *    copy, while the parent's stay.
 * The library reads its environment when it loads: main() runs the program
 * again with HAKMEM_PROFILE=1 HAKMEM_PROFILE_SAMPLE=1, and the weights test
 * runs it with HAKMEM_PROFILE_SAMPLE=4096 and the argument "weights".
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "testutil.h"

#define TIMEOUT_S 60 /* hang guard only */
#define NBLOCKS 10
#define BLOCK 100
#define SITE_BYTES 512 /* the allocating function is shorter than this */

static void *blocks[1000];

static char *self_path;

__attribute__((noinline)) static void alloc_site(unsigned n, size_t size)
{
	for (unsigned i = 0; i < n; i++) {
		blocks[i] = hak_malloc(size);
		__asm__ volatile("" ::: "memory"); /* not a tail call */
	}
}

/* The entry whose first frame lies in alloc_site; fails if not one. */
static const struct hak_prof_stack *site_entry(void)
{
	const struct hak_prof_stack *found = NULL;
	uintptr_t lo = (uintptr_t)&alloc_site, hi = lo + SITE_BYTES;
	for (unsigned i = 0; i < HAK_PROF_STACKS; i++) {
		const struct hak_prof_stack *e = &hak__seg->prof.stacks[i];
		if (!e->ready || e->frames[0] < lo || e->frames[0] >= hi)
			continue;
		UCHECK(!found, "two entries for one call site (%u and %ld)", i,
		       (long)(found - hak__seg->prof.stacks));
		found = e;
	}
	UCHECK(found, "no entry whose first frame is in alloc_site (%#lx)", (unsigned long)lo);
	return found;
}

START_TEST(every_allocation)
{
	const struct hak_prof_stack *first = NULL;
	for (unsigned round = 0; round < 2; round++) {
		/* the same call, twice: the same stack, the same entry */
		alloc_site(NBLOCKS, BLOCK);
		const struct hak_prof_stack *e = site_entry();
		if (!first)
			first = e;
		ck_assert_ptr_eq(e, first);
		ck_assert_uint_eq(hak__seg->prof.sample_bytes, 1);
		ck_assert_uint_ge(e->depth, 2); /* alloc_site, then its callers */
		ck_assert_uint_eq(e->live_count, NBLOCKS);
		ck_assert_uint_eq(e->live_bytes, NBLOCKS * BLOCK);
		ck_assert_uint_eq(e->live_est, NBLOCKS * BLOCK);
		ck_assert_uint_eq(e->total_est, (round + 1) * NBLOCKS * BLOCK);
		for (unsigned i = 0; i < NBLOCKS / 2; i++)
			hak_free(blocks[i]);
		ck_assert_uint_eq(e->live_count, NBLOCKS / 2);
		ck_assert_uint_eq(e->live_est, NBLOCKS / 2 * BLOCK);
		ck_assert_uint_eq(e->total_count, (round + 1) * NBLOCKS);
		for (unsigned i = NBLOCKS / 2; i < NBLOCKS; i++)
			hak_free(blocks[i]);
		ck_assert_uint_eq(e->live_count, 0);
		ck_assert_uint_eq(e->live_bytes, 0);
		ck_assert_uint_eq(e->live_est, 0);
		ck_assert_uint_eq(e->total_bytes, (round + 1) * NBLOCKS * BLOCK);
	}
}
END_TEST

/* In a run with HAKMEM_PROFILE_SAMPLE=4096: 0 if the weights are right. */
static int weights_run(void)
{
	if (hak__seg->prof.sample_bytes != 4096)
		return 2;
	alloc_site(1000, BLOCK);
	const struct hak_prof_stack *e = site_entry();
	uint64_t w = (uint64_t)((double)BLOCK / -expm1(-(double)BLOCK / 4096.0) + 0.5);
	if (e->live_count == 0 || e->live_count >= 1000 || e->live_bytes != e->live_count * BLOCK)
		return 3;
	if (e->live_est != e->live_count * w)
		return 4;
	for (unsigned i = 0; i < 1000; i++)
		hak_free(blocks[i]);
	return e->live_est == 0 ? 0 : 5;
}

START_TEST(weights)
{
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		setenv("HAKMEM_PROFILE_SAMPLE", "4096", 1);
		execl(self_path, self_path, "weights", (char *)NULL);
		_exit(127);
	}
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	UCHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	       "weights run: status %#x (2: interval not 4096, 3: counts, 4: a sample does "
	       "not weigh size / (1 - exp(-size / mean)), 5: frees not taken off)",
	       status);
}
END_TEST

START_TEST(fork_copy)
{
	alloc_site(NBLOCKS, BLOCK);
	const struct hak_prof_stack *parent = site_entry();
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* the child's segment is its own, with the entry copied */
		const struct hak_prof_stack *e = site_entry();
		if (e == parent || e->live_count != NBLOCKS)
			_exit(2);
		for (unsigned i = 0; i < NBLOCKS; i++)
			hak_free(blocks[i]);
		_exit(e->live_count == 0 && e->live_est == 0 && e->total_count == NBLOCKS ? 0 : 3);
	}
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	UCHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x (2: no copy, "
	       "3: frees not taken off)", status);
	ck_assert_uint_eq(parent->live_count, NBLOCKS);
	for (unsigned i = 0; i < NBLOCKS; i++)
		hak_free(blocks[i]);
	ck_assert_uint_eq(parent->live_count, 0);
}
END_TEST

int main(int argc, char **argv)
{
	static char path[4096];
	ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
	if (n <= 0)
		tu_skip("cannot read /proc/self/exe");
	self_path = path;
	if (argc > 1 && !strcmp(argv[1], "weights"))
		return weights_run();
	const char *on = getenv("HAKMEM_PROFILE"), *rate = getenv("HAKMEM_PROFILE_SAMPLE");
	if (!on || strcmp(on, "1") || !rate || strcmp(rate, "1")) {
		setenv("HAKMEM_PROFILE", "1", 1);
		setenv("HAKMEM_PROFILE_SAMPLE", "1", 1);
		execv(path, argv);
		TU_FAIL("cannot run %s again", path);
	}
	Suite *s = suite_create("prof");
	TCase *tc = tu_add_tcase(s, "core", TIMEOUT_S);
	tcase_add_test(tc, every_allocation);
	tcase_add_test(tc, weights);
	tcase_add_test(tc, fork_copy);
	return tu_run_suite(s);
}
