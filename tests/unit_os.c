/*
 * unit_os.c - purging a batch of ranges at once (hak__os_purge_ranges),
 * which the page pool (arena.c) and the span tier (span.c) use to give
 * memory back:
 *
 *   - every range of the batch reads as zero afterwards, in whatever order
 *     the ranges came, adjacent ones too; memory between and around them
 *     keeps its contents;
 *   - so it does one range at a time (the path of kernels without
 *     process_madvise for the calling process);
 *   - a range the kernel refuses (a hole in the mapping) stops neither the
 *     ranges before it nor those after it;
 *   - errno is kept.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include "internal.h"
#include "testutil.h"

#define TIMEOUT_S 60 /* hang guard only */
#define UNIT ((size_t)64 << 10)
#define UNITS 16

static unsigned char *area;

static void area_map(void)
{
	area = mmap(NULL, UNITS * UNIT, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_msg(area != MAP_FAILED, "mmap: %s", strerror(errno));
	memset(area, 0xab, UNITS * UNIT);
}

/* Whether unit u reads as zero (purged), or as the fill everywhere. */
static void expect_unit(unsigned u, bool purged)
{
	const unsigned char *p = area + u * UNIT;
	for (size_t i = 0; i < UNIT; i += 512)
		UCHECK(p[i] == (purged ? 0 : 0xab), "unit %u at %zu: %#x, want %s", u, i, p[i],
		       purged ? "purged (0)" : "kept (0xab)");
	UCHECK(p[UNIT - 1] == (purged ? 0 : 0xab), "unit %u, last byte: %#x", u, p[UNIT - 1]);
}

/* Purge units (given out of order, three of them adjacent) and check
 * every unit of the area. */
static void purge_scattered(void)
{
	area_map();
	static const unsigned pick[] = {9, 4, 15, 3, 0, 5, 11};
	enum { N = sizeof pick / sizeof pick[0] };
	struct iovec v[N];
	bool purged[UNITS] = {false};
	for (unsigned i = 0; i < N; i++) {
		v[i].iov_base = area + pick[i] * UNIT;
		v[i].iov_len = UNIT;
		purged[pick[i]] = true;
	}
	errno = 1234;
	hak__os_purge_ranges(v, N);
	ck_assert_int_eq(errno, 1234);
	for (unsigned u = 0; u < UNITS; u++)
		expect_unit(u, purged[u]);
}

START_TEST(batch_at_once)
{
	purge_scattered();
	if (!atomic_load(&hak__os_vector_purge))
		fprintf(stderr, "unit_os: this kernel takes no process_madvise for the calling "
				"process; the batch went one range at a time\n");
}
END_TEST

START_TEST(batch_one_at_a_time)
{
	atomic_store(&hak__os_vector_purge, false);
	purge_scattered();
}
END_TEST

/* Units 2 and 12 around a hole at 7: the kernel refuses the hole, and
 * both others go all the same, whichever path runs. */
static void purge_around_hole(void)
{
	area_map();
	ck_assert_int_eq(munmap(area + 7 * UNIT, UNIT), 0);
	struct iovec v[3] = {{area + 2 * UNIT, UNIT}, {area + 7 * UNIT, UNIT},
			     {area + 12 * UNIT, UNIT}};
	errno = 1234;
	hak__os_purge_ranges(v, 3);
	ck_assert_int_eq(errno, 1234);
	for (unsigned u = 0; u < UNITS; u++)
		if (u != 7)
			expect_unit(u, u == 2 || u == 12);
}

START_TEST(hole_at_once)
{
	purge_around_hole();
}
END_TEST

START_TEST(hole_one_at_a_time)
{
	atomic_store(&hak__os_vector_purge, false);
	purge_around_hole();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("os");
	TCase *tc = tu_add_tcase(s, "purge", TIMEOUT_S);
	tcase_add_test(tc, batch_at_once);
	tcase_add_test(tc, batch_one_at_a_time);
	tcase_add_test(tc, hole_at_once);
	tcase_add_test(tc, hole_one_at_a_time);
	return tu_run_suite(s);
}
