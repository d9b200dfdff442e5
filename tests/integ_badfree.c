/*
 * integ_badfree.c - invalid frees are reported and abort.
 *
 * A pointer hakmem does not own, a double free and an interior pointer must
 * produce exactly one line on stderr naming the address, then abort().  Each
 * case runs in a forked child; the parent checks for SIGABRT and the
 * address in the child's stderr.  A control child that frees correctly must
 * exit 0 and print nothing, so the checks themselves can fail.
 */
#include "config.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hakmem.h"
#include "testutil.h"

#define CHILD_TIMEOUT_S 30 /* hang guard */

/* glibc's own allocator, reachable beside an interposed malloc */
extern void *__libc_malloc(size_t size);

static char static_buf[256];

struct bad_case {
	const char *name;
	/* prepare: returns the pointer that will be passed to the bad call */
	void *(*prepare)(size_t arg);
	size_t arg;
	int use_realloc; /* 1: realloc(p, 64) instead of free(p); 2: hak_free */
};

static void *freed_block(size_t size)
{
	char *p = malloc(size);
	TU_CHECK(p != NULL);
	memset(p, 0x77, size);
	free(p);
	return p;
}

static void *free_in_thread(void *p)
{
	free(p);
	return NULL;
}

/* The first free happens on another thread (a remote free). */
static void *remote_freed_block(size_t size)
{
	pthread_t t;
	char *p = malloc(size);
	TU_CHECK(p != NULL);
	memset(p, 0x66, size);
	TU_CHECK(pthread_create(&t, NULL, free_in_thread, p) == 0);
	TU_CHECK(pthread_join(t, NULL) == 0);
	return p;
}

/* A double free buried among live neighbours of the same class. */
static void *freed_among_live(size_t size)
{
	enum { N = 50 };
	void *keep[N];
	for (int i = 0; i < N; i++)
		keep[i] = malloc(size);
	void *victim = keep[N / 2];
	free(victim);
	return victim; /* the others stay live until the child dies */
}

static void *interior_ptr(size_t offset)
{
	size_t size = offset < 4096 ? 1000 : (size_t)1 << 20;
	char *p = malloc(size);
	TU_CHECK(p != NULL);
	memset(p, 0, size); /* no stale header-like data in the block */
	return p + offset;
}

static void *interior_ptr_large(size_t offset)
{
	char *p = malloc((size_t)4 << 20);
	TU_CHECK(p != NULL);
	memset(p, 0, (size_t)4 << 20);
	return p + offset;
}

static void *stack_ptr(size_t unused)
{
	(void)unused;
	/* an address of this child's stack; never dereferenced by the test */
	static volatile uintptr_t addr;
	char local[64];
	addr = (uintptr_t)local;
	return (void *)addr;
}

static void *static_ptr(size_t offset)
{
	return static_buf + offset;
}

static void *libc_ptr(size_t size)
{
	void *p = __libc_malloc(size);
	TU_CHECK(p != NULL);
	return p;
}

static void *mmap_ptr(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	TU_CHECK(p != MAP_FAILED);
	return p;
}

/* The child prepares the bad pointer and sends its value to the parent
 * through a pipe of its own (stderr must hold only hakmem's line), then
 * makes the bad call. */
struct child_arg {
	const struct bad_case *c;
	int addr_fd;
};

static void bad_child(void *varg)
{
	struct child_arg *ca = varg;
	void *p = ca->c->prepare(ca->c->arg);
	uintptr_t v = (uintptr_t)p;
	if (write(ca->addr_fd, &v, sizeof v) != (ssize_t)sizeof v)
		_exit(125);
	switch (ca->c->use_realloc) {
	case 0:
		free(p);
		break;
	case 1: {
		void *volatile r = realloc(p, 64);
		(void)r;
		break;
	}
	default:
		hak_free(p);
		break;
	}
	/* reaching here means the bad call returned */
	_exit(3);
}

static const struct bad_case cases[] = {
	{ "double free 16", freed_block, 16, 0 },
	{ "double free 100", freed_block, 100, 0 },
	{ "double free 1000", freed_block, 1000, 0 },
	{ "double free 8192", freed_block, 8192, 0 },
	{ "double free 32768", freed_block, 32768, 0 },
	{ "double free 48 via hak_free", freed_block, 48, 2 },
	{ "double free among live blocks 64", freed_among_live, 64, 0 },
	{ "double free among live blocks 3000", freed_among_live, 3000, 0 },
	{ "double free after a remote free 256", remote_freed_block, 256, 0 },
	{ "double free after a remote free 20000", remote_freed_block, 20000, 0 },
	{ "double free large 40000", freed_block, 40000, 0 },
	{ "double free large 1 MiB", freed_block, (size_t)1 << 20, 0 },
	{ "double free large 10 MiB", freed_block, (size_t)10 << 20, 0 },
	{ "double free large after a remote free", remote_freed_block, (size_t)2 << 20, 0 },
	{ "free of a stack address", stack_ptr, 0, 0 },
	{ "free of static data", static_ptr, 32, 0 },
	{ "free of glibc malloc'd memory (small)", libc_ptr, 64, 0 },
	{ "free of glibc malloc'd memory (mmapped)", libc_ptr, (size_t)1 << 20, 0 },
	{ "free of a foreign mmap", mmap_ptr, (size_t)1 << 16, 0 },
	{ "free of an interior pointer +8", interior_ptr, 8, 0 },
	{ "free of an interior pointer +16", interior_ptr, 16, 0 },
	{ "free of an interior pointer +1", interior_ptr, 1, 0 },
	{ "free of an interior pointer +512", interior_ptr, 512, 0 },
	{ "free of an interior pointer of a large block +4096", interior_ptr, 4096, 0 },
	{ "free of an interior pointer of a large block +64", interior_ptr_large, 64, 0 },
	{ "free of an interior pointer of a large block +2 MiB", interior_ptr_large,
	  (size_t)2 << 20, 0 },
	{ "realloc of a freed block", freed_block, 200, 1 },
	{ "realloc of a freed large block", freed_block, (size_t)1 << 20, 1 },
	{ "realloc of a stack address", stack_ptr, 0, 1 },
	{ "realloc of an interior pointer", interior_ptr, 8, 1 },
};

static void good_child(void *unused)
{
	(void)unused;
	for (size_t n = 1; n < ((size_t)8 << 20); n = n * 3 + 1) {
		char *p = malloc(n);
		TU_CHECK(p != NULL);
		memset(p, 1, n);
		p = realloc(p, n + 100);
		TU_CHECK(p != NULL);
		free(p);
	}
	free(NULL);
}

int main(void)
{
	struct tu_child res;
	size_t i;

	tu_require_hakmem_malloc();

	/* control: correct frees exit 0 without a word */
	tu_run_child(good_child, NULL, CHILD_TIMEOUT_S, &res);
	TU_CHECK(WIFEXITED(res.status) && WEXITSTATUS(res.status) == 0,
		 "control child status %#x, stderr: %s", res.status, res.err);
	TU_CHECK(res.err_len == 0, "control child wrote to stderr: %s", res.err);

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int fds[2];
		uintptr_t addr = 0;
		struct child_arg ca = { .c = &cases[i] };

		tu_set_context("case \"%s\"", cases[i].name);
		TU_CHECK(pipe(fds) == 0);
		ca.addr_fd = fds[1];
		tu_run_child(bad_child, &ca, CHILD_TIMEOUT_S, &res);
		close(fds[1]);
		if (read(fds[0], &addr, sizeof addr) != (ssize_t)sizeof addr)
			TU_FAIL("%s: child did not report its pointer (status %#x, stderr: %s)",
				cases[i].name, res.status, res.err);
		close(fds[0]);
		if (WIFEXITED(res.status) && WEXITSTATUS(res.status) == 3)
			TU_FAIL("%s: the call returned instead of aborting (stderr: \"%s\")",
				cases[i].name, res.err);
		tu_expect_abort_naming(&res, (void *)addr, cases[i].name);
		printf("ok - %s: %.*s", cases[i].name, (int)res.err_len, res.err);
	}
	printf("integ_badfree: ok\n");
	return 0;
}
