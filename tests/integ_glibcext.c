/*
 * integ_glibcext.c - glibc's malloc statistics and tuning calls answer with
 * hakmem's own figures: mallinfo2() and mallinfo() follow the blocks a
 * program holds, malloc_stats() prints hakmem's summary on stderr,
 * malloc_info() writes its XML with a <size> element per class in use, and
 * mallopt() accepts glibc's parameters (ignoring them) and refuses others.
 * Each of them is hakmem's (not glibc's) and keeps errno on success.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

/* mallinfo() is deprecated (its int fields overflow); it is tested here
 * because programs still call it */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

#define SMALL 100     /* class 112: the one after 96 */
#define NSMALL 1000
#define LARGE (1u << 20)
#define NLARGE 3

static void *small[NSMALL], *large[NLARGE];

static void expect_hakmem_symbol(void *fn, const char *name)
{
	Dl_info info;
	TU_CHECK(dladdr(fn, &info) && info.dli_fname, "%s: dladdr failed", name);
	TU_CHECK(strstr(info.dli_fname, "libhakmem") != NULL, "%s comes from %s, not libhakmem",
		 name, info.dli_fname);
}

static void allocate(void)
{
	for (unsigned i = 0; i < NSMALL; i++)
		TU_CHECK((small[i] = malloc(SMALL)) != NULL);
	for (unsigned i = 0; i < NLARGE; i++)
		TU_CHECK((large[i] = malloc(LARGE)) != NULL);
}

static void release(void)
{
	for (unsigned i = 0; i < NSMALL; i++)
		free(small[i]);
	for (unsigned i = 0; i < NLARGE; i++)
		free(large[i]);
}

static void check_mallinfo(void)
{
	struct mallinfo2 before = mallinfo2();
	allocate();
	struct mallinfo2 held = mallinfo2();
	struct mallinfo old = mallinfo();
	TU_CHECK(held.hblks >= before.hblks + NLARGE, "hblks %zu -> %zu", before.hblks, held.hblks);
	TU_CHECK(held.hblkhd >= before.hblkhd + (size_t)NLARGE * LARGE, "hblkhd %zu -> %zu",
		 before.hblkhd, held.hblkhd);
	TU_CHECK(held.uordblks >= before.uordblks + (size_t)NSMALL * 112, "uordblks %zu -> %zu",
		 before.uordblks, held.uordblks);
	TU_CHECK(held.arena >= held.uordblks, "arena %zu < uordblks %zu", held.arena,
		 held.uordblks);
	TU_CHECK(held.arena == held.uordblks + held.fordblks, "arena %zu != %zu + %zu",
		 held.arena, held.uordblks, held.fordblks);
	TU_CHECK((size_t)old.hblks == held.hblks && (size_t)old.uordblks == held.uordblks &&
			 (size_t)old.arena == held.arena,
		 "mallinfo() differs from mallinfo2()");
	release();
	struct mallinfo2 after = mallinfo2();
	TU_CHECK(after.hblks + NLARGE <= held.hblks, "hblks %zu after freeing, %zu held",
		 after.hblks, held.hblks);
	TU_CHECK(after.uordblks + (size_t)NSMALL * 112 <= held.uordblks,
		 "uordblks %zu after freeing, %zu held", after.uordblks, held.uordblks);
}

/* The value of attribute attr in the first element of xml that starts with
 * prefix; -1 if there is none. */
static long long xml_attr(const char *xml, const char *prefix, const char *attr)
{
	const char *e = strstr(xml, prefix);
	if (!e)
		return -1;
	const char *end = strchr(e, '>');
	char key[64];
	snprintf(key, sizeof key, " %s=\"", attr);
	const char *a = strstr(e, key);
	if (!a || (end && a > end))
		return -1;
	return strtoll(a + strlen(key), NULL, 10);
}

static void check_malloc_info(void)
{
	allocate();
	char *xml = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&xml, &len);
	TU_CHECK(f != NULL);
	errno = 1234;
	TU_CHECK(malloc_info(0, f) == 0);
	TU_CHECK(errno == 1234, "malloc_info changed errno to %d", errno);
	TU_CHECK(fclose(f) == 0);
	TU_CHECK(strncmp(xml, "<malloc version=\"1\" allocator=\"hakmem\"", 38) == 0,
		 "malloc_info begins: %.60s", xml);
	TU_CHECK(len > 9 && strcmp(xml + len - 10, "</malloc>\n") == 0, "malloc_info ends: %s",
		 len > 40 ? xml + len - 40 : xml);
	long long count = xml_attr(xml, "<size from=\"97\" to=\"112\"", "count");
	long long total = xml_attr(xml, "<size from=\"97\" to=\"112\"", "total");
	TU_CHECK(count >= NSMALL && total == count * 112, "class 112: count %lld total %lld\n%s",
		 count, total, xml);
	long long mmap_count = xml_attr(xml, "<total type=\"mmap\"", "count");
	TU_CHECK(mmap_count >= NLARGE, "mmap count %lld\n%s", mmap_count, xml);
	TU_CHECK(strstr(xml, "<heap nr=\"0\">") && strstr(xml, "</heap>"), "no heap element");
	free(xml);
	release();

	errno = 0;
	TU_CHECK(malloc_info(1, stdout) == -1 && errno == EINVAL,
		 "malloc_info(1, ...) must fail with EINVAL");
	errno = 0;
	TU_CHECK(malloc_info(0, NULL) == -1 && errno == EINVAL,
		 "malloc_info(0, NULL) must fail with EINVAL");
}

static void check_malloc_stats(void)
{
	char path[] = "/tmp/integ_glibcext.XXXXXX";
	int fd = mkstemp(path);
	TU_CHECK(fd >= 0);
	unlink(path);
	allocate();
	fflush(stderr);
	int saved_fd = dup(STDERR_FILENO);
	TU_CHECK(saved_fd >= 0 && dup2(fd, STDERR_FILENO) == STDERR_FILENO);
	errno = 4321;
	malloc_stats();
	int e = errno;
	TU_CHECK(dup2(saved_fd, STDERR_FILENO) == STDERR_FILENO);
	close(saved_fd);
	TU_CHECK(e == 4321, "malloc_stats changed errno to %d", e);
	char text[16384];
	ssize_t n = pread(fd, text, sizeof text - 1, 0);
	close(fd);
	TU_CHECK(n > 0, "malloc_stats printed nothing");
	text[n] = 0;
	char want[64];
	snprintf(want, sizeof want, "hakmem pid %ld ", (long)getpid());
	TU_CHECK(strncmp(text, want, strlen(want)) == 0, "malloc_stats printed:\n%s", text);
	TU_CHECK(strstr(text, "bytes in use") && strstr(text, "pages from OS"),
		 "malloc_stats printed:\n%s", text);
	/* the class line: class 6, size 112, with at least NSMALL in use */
	const char *line = strstr(text, "      6      112 ");
	TU_CHECK(line != NULL, "no line for class 112:\n%s", text);
	unsigned long long allocs, frees, in_use;
	TU_CHECK(sscanf(line, " 6 112 %llu %llu %llu", &allocs, &frees, &in_use) == 3 &&
			 in_use >= NSMALL,
		 "class 112 line: %.60s", line);
	release();
}

static void check_mallopt(void)
{
	TU_CHECK(mallopt(M_ARENA_MAX, 2) == 1);
	TU_CHECK(mallopt(M_MMAP_THRESHOLD, 1 << 20) == 1);
	TU_CHECK(mallopt(M_TRIM_THRESHOLD, 0) == 1);
	TU_CHECK(mallopt(M_PERTURB, 0xaa) == 1);
	TU_CHECK(mallopt(M_MXFAST, 0) == 1);
	TU_CHECK(mallopt(12345, 1) == 0, "an unknown parameter must be refused");
	TU_CHECK(mallopt(-9, 1) == 0, "an unknown parameter must be refused");
	/* Accepted and ignored (hakmem(3)): allocation goes on as before,
	 * unperturbed.  glibc, given M_PERTURB, fills a block with the byte on
	 * free and with its complement on malloc.  The freed block comes back
	 * to the next malloc of its size (the thread cache is LIFO): hakmem
	 * writes its free-list link and a marker in the first 16 bytes, and
	 * must leave the rest as the program left it. */
	enum { N = 64, META = 16, MARK = 0x3c };
	unsigned char *p = malloc(N);
	TU_CHECK(p != NULL);
	memset(p, MARK, N);
	free(p);
	unsigned char *q = malloc(N);
	TU_CHECK(q == p, "malloc(%d) after free: %p, not the block just freed %p", N,
		 (void *)q, (void *)p);
	for (unsigned i = META; i < N; i++)
		TU_CHECK(q[i] == MARK, "after mallopt(M_PERTURB, 0xaa): byte %u of a reused "
			 "block is %#x, was %#x before free", i, q[i], MARK);
	free(q);
	unsigned char *z = calloc(1, N);
	TU_CHECK(z != NULL && z[0] == 0 && z[N - 1] == 0, "calloc after M_PERTURB");
	free(z);
}

int main(void)
{
	tu_require_hakmem_malloc();
	expect_hakmem_symbol((void *)mallinfo2, "mallinfo2");
	expect_hakmem_symbol((void *)mallinfo, "mallinfo");
	expect_hakmem_symbol((void *)malloc_stats, "malloc_stats");
	expect_hakmem_symbol((void *)malloc_info, "malloc_info");
	expect_hakmem_symbol((void *)mallopt, "mallopt");
	check_mallinfo();
	check_malloc_info();
	check_malloc_stats();
	check_mallopt();
	printf("mallinfo, mallinfo2, malloc_info, malloc_stats, mallopt: hakmem's\n");
	return 0;
}
