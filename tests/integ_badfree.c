/*
 * integ_badfree.c - heap misuse is reported and aborts.
 *
 * A pointer hakmem does not own, a double free (also after another thread's
 * free), an interior pointer, a free list damaged by a write after free and
 * (with HAKMEM_CHECK=2) a write past the end of a block must produce exactly
 * one line on stderr saying what was wrong and naming the address, then
 * abort().  Each case runs in a forked child; the parent checks for SIGABRT,
 * the message and the address in the child's stderr.  A control child that
 * uses memory correctly must exit 0 and print nothing, so the checks
 * themselves can fail.
 *
 * Run without HAKMEM_CHECK, the program runs every case at the default
 * level, then runs itself again with HAKMEM_CHECK=2, where every case must
 * still be caught and the canary cases are added.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
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
	int use_realloc; /* 1: realloc(p, 64) instead of free(p); 2: hak_free;
			  * 3: malloc(arg) until the damage is found;
			  * 4: free(p) on another thread;
			  * 6: free(p) on another thread that allocated first;
			  * 5: free the other blocks of damaged_in_cache */
	const char *expect; /* the message must contain this */
	int level;       /* the lowest HAKMEM_CHECK level that catches it */
};

static int check_level = 1;

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

/* The same by a thread that has a heap already (it allocated first), so
 * that its free takes the remote path that a heapless thread does not. */
static void *free_in_busy_thread(void *p)
{
	void *volatile q = malloc(24);
	free(q);
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

/* More blocks of one class than its thread cache holds (2048 at most),
 * within 4 MiB: the oldest cached ones go back to their pages when the
 * others are freed (mode 5). */
enum { SPILL = 4400 };
static void *spill[SPILL];
static size_t spill_n;

/* A freed block whose first 16 bytes are then overwritten at offset off.
 * In the thread cache (they hold the free marker twice), it is caught when
 * freeing more blocks of the class spills it to its page.  It is the last
 * block allocated, so that its page is still held (a thread floats its
 * pages that have been full for a while; a free into one of those puts the
 * block on the page's list at once, where damage to the second word is not
 * seen), and mode 5 frees the others newest first, so that the cache fills
 * from held pages too. */
static void *damaged_in_cache(size_t size, size_t off, int byte)
{
	spill_n = (size_t)(4 << 20) / size + 64;
	if (spill_n > SPILL)
		spill_n = SPILL;
	for (size_t i = 0; i < spill_n; i++) {
		spill[i] = malloc(size);
		TU_CHECK(spill[i] != NULL);
	}
	char *p = spill[spill_n - 1];
	free(p);
	memset(p + off, byte, 8);
	spill[spill_n - 1] = NULL;
	return p;
}

static void *written_after_free(size_t size)
{
	return damaged_in_cache(size, 0, 0x41);
}

static void *marker_written_after_free(size_t size)
{
	return damaged_in_cache(size, 8, 0);
}

/* A block on its page's local free list (the thread cache of its class
 * overflowed and returned its oldest blocks), its link then overwritten.
 * Every other block stays live, so that no page empties (an empty page is
 * carved afresh, which would erase the damage). */
static void *link_damaged(size_t size)
{
	enum { N = 4400 }; /* frees N/2: more than a class's cache holds (2048) */
	static void *blk[N];
	for (int i = 0; i < N; i++) {
		blk[i] = malloc(size);
		TU_CHECK(blk[i] != NULL);
	}
	for (int i = 0; i < N; i += 2)
		free(blk[i]);
	memset(blk[0], 0, 8); /* the oldest: on the page list, not cached */
	return blk[0];
}

/* A block on its page's remote list (freed by another thread), its link
 * then overwritten by the owner: found when the owner drains the list. */
static void *remote_link_damaged(size_t size)
{
	pthread_t t;
	char *p = malloc(size);
	TU_CHECK(p != NULL);
	TU_CHECK(pthread_create(&t, NULL, free_in_thread, p) == 0);
	TU_CHECK(pthread_join(t, NULL) == 0);
	memset(p, 0x5a, 8);
	return p;
}

/* Bytes written just past the usable size (HAKMEM_CHECK=2 keeps a canary
 * there; at the default level the write lands in the block's slack). */
static void *overflowed(size_t size)
{
	char *p = malloc(size);
	TU_CHECK(p != NULL);
	size_t usable = malloc_usable_size(p);
	TU_CHECK(usable >= size);
	p[usable] = 'x';
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
	case 2:
		hak_free(p);
		break;
	case 5: /* the other blocks of the class, newest first: the cache
		 * spills (the damaged block's page keeps it, counted live while
		 * cached, so the page is not carved afresh); then allocate, in
		 * case the block had gone to its page's list */
		for (size_t i = spill_n - 1; i-- > 0;)
			free(spill[i]);
		for (int i = 0; i < 100000; i++) {
			void *volatile q = malloc(ca->c->arg);
			(void)q;
		}
		break;
	case 4: /* freed by another thread: a remote free */
	case 6: {
		pthread_t t;
		TU_CHECK(pthread_create(&t, NULL,
					ca->c->use_realloc == 4 ? free_in_thread : free_in_busy_thread,
					p) == 0);
		pthread_join(t, NULL);
		break;
	}
	default:
		/* the damaged block is handed out again, or its list followed,
		 * within these: the program must stop before the loop ends */
		for (int i = 0; i < 100000; i++) {
			void *volatile q = malloc(ca->c->arg);
			(void)q;
		}
		break;
	}
	/* reaching here means the bad call returned */
	_exit(3);
}

static const struct bad_case cases[] = {
	{ "double free 16", freed_block, 16, 0, "free(): double free", 1 },
	{ "double free 100", freed_block, 100, 0, "free(): double free", 1 },
	{ "double free 1000", freed_block, 1000, 0, "free(): double free", 1 },
	{ "double free 8192", freed_block, 8192, 0, "free(): double free", 1 },
	{ "double free 32768", freed_block, 32768, 0, "free(): double free", 1 },
	{ "double free 48 via hak_free", freed_block, 48, 2, "free(): double free", 1 },
	{ "double free among live blocks 64", freed_among_live, 64, 0, "free(): double free", 1 },
	{ "double free among live blocks 3000", freed_among_live, 3000, 0,
	  "free(): double free", 1 },
	{ "double free after a remote free 256", remote_freed_block, 256, 0,
	  "free(): double free", 1 },
	{ "double free after a remote free 20000", remote_freed_block, 20000, 0,
	  "free(): double free", 1 },
	{ "double free large 40000", freed_block, 40000, 0, "free(): double free", 1 },
	{ "double free large 1 MiB", freed_block, (size_t)1 << 20, 0, "free(): double free", 1 },
	{ "double free large 10 MiB", freed_block, (size_t)10 << 20, 0, "free(): double free", 1 },
	{ "double free large after a remote free", remote_freed_block, (size_t)2 << 20, 0,
	  "free(): double free", 1 },
	{ "write after free (first word) 64", written_after_free, 64, 5,
	  "free(): write after free", 1 },
	{ "write after free (first word) 20000", written_after_free, 20000, 5,
	  "a freed block was", 1 },
	{ "write after free (second word) 48", marker_written_after_free, 48, 5,
	  "free(): write after free", 1 },
	{ "free list link damaged 64", link_damaged, 64, 3, "malloc(): free list damaged", 1 },
	{ "free list link damaged 4000", link_damaged, 4000, 3, "malloc(): free list damaged", 1 },
	{ "remote free list link damaged 128", remote_link_damaged, 128, 3,
	  "malloc(): free list damaged", 1 },
	{ "remote free list link damaged 9000", remote_link_damaged, 9000, 3,
	  "malloc(): free list damaged", 1 },
	{ "heap overflow 24", overflowed, 24, 0, "free(): heap overflow", 2 },
	{ "heap overflow 1000", overflowed, 1000, 0, "free(): heap overflow", 2 },
	{ "heap overflow 32760", overflowed, 32760, 0, "free(): heap overflow", 2 },
	{ "heap overflow large 100000", overflowed, 100000, 0, "free(): heap overflow", 2 },
	{ "heap overflow found by realloc", overflowed, 3000, 1, "realloc(): heap overflow", 2 },
	{ "heap overflow found by hak_free", overflowed, 200, 2, "free(): heap overflow", 2 },
	{ "heap overflow found by a remote free", overflowed, 5000, 4, "free(): heap overflow", 2 },
	{ "double free by another thread", freed_block, 640, 4, "free(): double free", 1 },
	{ "double free by another thread with a heap", freed_block, 640, 6, "free(): double free", 1 },
	{ "double free after a remote free, by a thread with a heap", remote_freed_block, 256, 6,
	  "free(): double free", 1 },
	{ "free of a stack address", stack_ptr, 0, 0,
	  "free(): pointer not allocated by hakmem", 0 },
	{ "free of static data", static_ptr, 32, 0, "free(): pointer not allocated by hakmem", 0 },
	{ "free of glibc malloc'd memory (small)", libc_ptr, 64, 0,
	  "free(): pointer not allocated by hakmem", 0 },
	{ "free of glibc malloc'd memory (mmapped)", libc_ptr, (size_t)1 << 20, 0,
	  "free(): pointer not allocated by hakmem", 0 },
	{ "free of a foreign mmap", mmap_ptr, (size_t)1 << 16, 0,
	  "free(): pointer not allocated by hakmem", 0 },
	{ "free of an interior pointer +8", interior_ptr, 8, 0,
	  "free(): invalid pointer (not the start of a block)", 1 },
	{ "free of an interior pointer +16", interior_ptr, 16, 0,
	  "free(): invalid pointer (not the start of a block)", 1 },
	{ "free of an interior pointer +1", interior_ptr, 1, 0,
	  "free(): invalid pointer (not the start of a block)", 1 },
	{ "free of an interior pointer +512", interior_ptr, 512, 0,
	  "free(): invalid pointer (not the start of a block)", 1 },
	{ "free of an interior pointer by another thread +16", interior_ptr, 16, 6,
	  "free(): invalid pointer (not the start of a block)", 1 },
	{ "free of an interior pointer by another thread +1", interior_ptr, 1, 6,
	  "free(): invalid pointer (not the start of a block)", 1 },
	{ "free of an interior pointer of a large block +4096", interior_ptr, 4096, 0,
	  "free(): invalid pointer (not the start of a block)", 1 },
	{ "free of an interior pointer of a large block +64", interior_ptr_large, 64, 0,
	  "free(): invalid pointer (not the start of a block)", 1 },
	{ "free of an interior pointer of a large block +2 MiB", interior_ptr_large,
	  (size_t)2 << 20, 0, "free(): invalid pointer (not the start of a block)", 1 },
	{ "realloc of a freed block", freed_block, 200, 1, "realloc(): block already freed", 1 },
	{ "realloc of a freed large block", freed_block, (size_t)1 << 20, 1,
	  "realloc(): block already freed", 1 },
	{ "realloc of a stack address", stack_ptr, 0, 1,
	  "realloc(): pointer not allocated by hakmem", 1 },
	{ "realloc of an interior pointer", interior_ptr, 8, 1,
	  "realloc(): invalid pointer (not the start of a block)", 1 },
};

static void good_child(void *unused)
{
	(void)unused;
	for (size_t n = 1; n < ((size_t)8 << 20); n = n * 3 + 1) {
		char *p = malloc(n);
		TU_CHECK(p != NULL);
		size_t usable = malloc_usable_size(p);
		TU_CHECK(usable >= n);
		memset(p, 1, usable); /* all of the usable size is the program's */
		p = realloc(p, n + 100);
		TU_CHECK(p != NULL);
		free(p);
	}
	/* large blocks that end exactly at (or a few bytes short of) the end of
	 * their mapping, reached by malloc and by realloc growing in place:
	 * with canaries, the mapping must still hold the whole request */
	for (size_t k = 1; k <= 4; k++) {
		for (size_t d = 0; d <= 8; d += 4) {
			size_t n = k * 65536 + 65536 - 64 - d;
			char *p = malloc(n);
			TU_CHECK(p != NULL && malloc_usable_size(p) >= n);
			memset(p, 2, n);
			p = realloc(p, n + 65536);
			TU_CHECK(p != NULL && malloc_usable_size(p) >= n + 65536);
			memset(p, 3, n + 65536);
			free(p);
		}
	}
	free(NULL);
}

/* Run this program again with HAKMEM_CHECK=2; returns its exit status. */
static int rerun_paranoid(const char *self)
{
	fflush(stdout);
	pid_t pid = fork();
	TU_CHECK(pid >= 0);
	if (pid == 0) {
		setenv("HAKMEM_CHECK", "2", 1);
		execl(self, self, (char *)NULL);
		_exit(127);
	}
	int status;
	TU_CHECK(waitpid(pid, &status, 0) == pid);
	TU_CHECK(WIFEXITED(status), "HAKMEM_CHECK=2 run: status %#x", status);
	return WEXITSTATUS(status);
}

int main(int argc, char **argv)
{
	struct tu_child res;
	size_t i;
	const char *lv = getenv("HAKMEM_CHECK");

	(void)argc;
	tu_require_hakmem_malloc();
	if (lv)
		check_level = atoi(lv);
	printf("HAKMEM_CHECK=%d\n", check_level);

	/* control: correct use exits 0 without a word */
	tu_run_child(good_child, NULL, CHILD_TIMEOUT_S, &res);
	TU_CHECK(WIFEXITED(res.status) && WEXITSTATUS(res.status) == 0,
		 "control child status %#x, stderr: %s", res.status, res.err);
	TU_CHECK(res.err_len == 0, "control child wrote to stderr: %s", res.err);

	unsigned ran = 0;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int fds[2];
		uintptr_t addr = 0;
		struct child_arg ca = { .c = &cases[i] };

		if (cases[i].level > check_level)
			continue;
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
		if (!strstr(res.err, cases[i].expect))
			TU_FAIL("%s: want a message with \"%s\", got \"%s\"", cases[i].name,
				cases[i].expect, res.err);
		printf("ok - %s: %.*s", cases[i].name, (int)res.err_len, res.err);
		ran++;
	}
	printf("integ_badfree: HAKMEM_CHECK=%d: %u cases ok\n", check_level, ran);
	if (!lv) {
		int rc = rerun_paranoid(argv[0]);
		TU_CHECK(rc == 0, "the HAKMEM_CHECK=2 run failed (exit %d)", rc);
	}
	return 0;
}
