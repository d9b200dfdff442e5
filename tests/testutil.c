/*
 * testutil.c - helpers shared by the hakmem tests (see testutil.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static char tu_context[256];

void tu_set_context(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(tu_context, sizeof tu_context, fmt, ap);
	va_end(ap);
}

/* HAK_SEG_PREFIX of lib/statseg.h followed by the pid; async-signal-safe */
static void segment_name(char *buf, size_t cap, pid_t pid)
{
	static const char prefix[] = "/hakmem.";
	char digits[24];
	size_t n = 0, i;
	unsigned long v = (unsigned long)pid;
	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v && n < sizeof digits);
	if (sizeof prefix + n > cap) {
		buf[0] = '\0';
		return;
	}
	memcpy(buf, prefix, sizeof prefix - 1);
	for (i = 0; i < n; i++)
		buf[sizeof prefix - 1 + i] = digits[n - 1 - i];
	buf[sizeof prefix - 1 + n] = '\0';
}

static void abort_handler(int sig)
{
	static const char head[] = "  context at abort: ";
	size_t n = 0;
	while (n < sizeof tu_context && tu_context[n])
		n++;
	if (n) {
		(void)!write(STDERR_FILENO, head, sizeof head - 1);
		(void)!write(STDERR_FILENO, tu_context, n);
		(void)!write(STDERR_FILENO, "\n", 1);
	}
	/* a failing test dies without hakmem's exit hook: drop its segment */
	tu_remove_stats_segment(getpid());
	signal(sig, SIG_DFL);
	raise(sig);
}

void tu_context_on_abort(void)
{
	signal(SIGABRT, abort_handler);
}

void tu_fail_at(const char *file, int line, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	int n = snprintf(msg, sizeof msg, "FAIL %s:%d: ", file, line);
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof msg)
		vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
	va_end(ap);
	/* stdio may be what is broken: write the line with one syscall. */
	fprintf(stderr, "%s\n", msg);
	if (tu_context[0])
		fprintf(stderr, "  context: %s\n", tu_context);
	fflush(stderr);
	tu_remove_stats_segment(getpid()); /* _exit skips hakmem's exit hook */
	_exit(1);
}

void tu_check_failed(const char *file, int line, const char *cond,
		     const char *fmt, ...)
{
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	tu_fail_at(file, line, "check `%s' failed:%s", cond, msg);
}

void tu_skip(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("SKIP: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(TU_SKIP);
}

/* PRNG -------------------------------------------------------------------- */

uint64_t tu_mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

void tu_rng_seed(struct tu_rng *r, uint64_t seed)
{
	r->s = tu_mix64(seed);
	if (r->s == 0) /* xorshift must never hold 0 */
		r->s = 0x2545f4914f6cdd1dULL;
}

uint64_t tu_rng_next(struct tu_rng *r)
{
	uint64_t x = r->s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	r->s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

uint64_t tu_rng_range(struct tu_rng *r, uint64_t lo, uint64_t hi)
{
	uint64_t span = hi - lo + 1;
	if (span == 0) /* the whole 64-bit range */
		return tu_rng_next(r);
	return lo + tu_rng_next(r) % span;
}

/* Patterns ---------------------------------------------------------------- */

/* Word i of the pattern of key is mix64(key) ^ (i * PATTERN_STEP): cheap
 * enough to fill megabytes, different for every key and every word, and
 * the byte at offset j is byte j % 8 of word j / 8, so that any prefix of a
 * block can be checked on its own.  (__builtin_memcpy: the tests build
 * with -fno-builtin, and a libc call per word would dominate.) */
#define PATTERN_STEP 0x9e3779b97f4a7c15ULL

void tu_pattern_fill(void *p, size_t n, uint64_t key)
{
	unsigned char *b = p;
	const uint64_t k = tu_mix64(key);
	uint64_t acc = 0, w;
	size_t words = n / 8, i;
	for (i = 0; i < words; i++, acc += PATTERN_STEP) {
		w = k ^ acc;
		__builtin_memcpy(b + i * 8, &w, 8);
	}
	w = k ^ acc;
	for (i = 0; i < n % 8; i++)
		b[words * 8 + i] = ((const unsigned char *)&w)[i];
}

size_t tu_pattern_check(const void *p, size_t n, uint64_t key)
{
	const unsigned char *b = p;
	const uint64_t k = tu_mix64(key);
	uint64_t acc = 0, w, got;
	size_t words = n / 8, i, j;
	for (i = 0; i < words; i++, acc += PATTERN_STEP) {
		__builtin_memcpy(&got, b + i * 8, 8);
		if (got != (k ^ acc))
			break;
	}
	/* i is the first differing word, or the tail */
	w = k ^ acc;
	size_t len = i < words ? 8 : n % 8;
	for (j = 0; j < len; j++)
		if (b[i * 8 + j] != ((const unsigned char *)&w)[j])
			return i * 8 + j;
	return SIZE_MAX;
}

void tu_pattern_expect(const void *p, size_t n, uint64_t key, const char *what)
{
	size_t off = tu_pattern_check(p, n, key);
	if (off != SIZE_MAX)
		TU_FAIL("%s: block %p of %zu bytes (key %#" PRIx64
			") corrupted at offset %zu: byte %#x", what, p, n, key,
			off, ((const unsigned char *)p)[off]);
}

bool tu_all_zero(const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

/* Children ---------------------------------------------------------------- */

void tu_run_child(void (*fn)(void *), void *arg, unsigned timeout_s,
		  struct tu_child *out)
{
	int fds[2];
	pid_t pid;

	memset(out, 0, sizeof *out);
	fflush(NULL);
	if (pipe(fds) != 0)
		TU_FAIL("pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		TU_FAIL("fork: %s", strerror(errno));
	if (pid == 0) {
		close(fds[0]);
		if (dup2(fds[1], STDERR_FILENO) < 0)
			_exit(126);
		close(fds[1]);
		signal(SIGABRT, SIG_DFL); /* stderr must hold hakmem's line only */
		/* No core files from the aborts we provoke on purpose. */
		struct rlimit nocore = { 0, 0 };
		setrlimit(RLIMIT_CORE, &nocore);
		signal(SIGALRM, SIG_DFL);
		alarm(timeout_s);
		fn(arg);
		_exit(0);
	}
	close(fds[1]);
	for (;;) {
		ssize_t r = read(fds[0], out->err + out->err_len,
				 sizeof out->err - 1 - out->err_len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		out->err_len += (size_t)r;
		if (out->err_len == sizeof out->err - 1) {
			char sink[256]; /* keep draining so the child never blocks */
			while (read(fds[0], sink, sizeof sink) > 0)
				;
			break;
		}
	}
	out->err[out->err_len] = '\0';
	close(fds[0]);
	while (waitpid(pid, &out->status, 0) < 0)
		if (errno != EINTR)
			TU_FAIL("waitpid: %s", strerror(errno));
	out->pid = pid;
	/* the child ended with _exit or a signal: nothing removed its segment */
	tu_remove_stats_segment(pid);
}


void tu_remove_stats_segment(pid_t pid)
{
	char name[64];
	segment_name(name, sizeof name, pid);
	shm_unlink(name);
}

bool tu_stats_segment_exists(pid_t pid)
{
	char name[64];
	segment_name(name, sizeof name, pid);
	int fd = shm_open(name, O_RDONLY, 0);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

bool tu_stats_segment_mapped(void)
{
	static char buf[8192];
	static const char *const marks[] = {" /dev/shm/hakmem.", " /dev/shm/#"};
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	bool found = false;
	size_t keep = 0; /* the tail of the last chunk: a mark may span two */
	ssize_t n;
	while (!found && (n = read(fd, buf + keep, sizeof buf - 1 - keep)) > 0) {
		size_t len = keep + (size_t)n;
		buf[len] = 0;
		for (unsigned i = 0; i < 2 && !found; i++)
			found = strstr(buf, marks[i]) != NULL;
		keep = len < 32 ? len : 32;
		memmove(buf, buf + len - keep, keep);
	}
	close(fd);
	return found;
}

void tu_expect_abort_naming(const struct tu_child *c, const void *p,
			    const char *what)
{
	char hex[32], lower[sizeof c->err];
	size_t i, lines = 0;

	if (!WIFSIGNALED(c->status) || WTERMSIG(c->status) != SIGABRT) {
		if (WIFSIGNALED(c->status))
			TU_FAIL("%s: child died of signal %d, want SIGABRT; stderr: %s",
				what, WTERMSIG(c->status), c->err);
		TU_FAIL("%s: child exited with status %d, want SIGABRT; stderr: %s",
			what, WEXITSTATUS(c->status), c->err);
	}
	for (i = 0; i < c->err_len; i++) {
		lower[i] = (char)((c->err[i] >= 'A' && c->err[i] <= 'F')
				  ? c->err[i] - 'A' + 'a' : c->err[i]);
		lines += c->err[i] == '\n';
	}
	lower[c->err_len] = '\0';
	if (lines != 1 || c->err_len == 0 || c->err[c->err_len - 1] != '\n')
		TU_FAIL("%s: want exactly one line on stderr, got %zu bytes: \"%s\"",
			what, c->err_len, c->err);
	/* Without 0x and leading zeros, so any common spelling matches. */
	snprintf(hex, sizeof hex, "%" PRIxPTR, (uintptr_t)p);
	if (!strstr(lower, hex))
		TU_FAIL("%s: stderr does not name the address %p: \"%s\"", what, p,
			c->err);
}

uint64_t tu_parse_u64(const char *name, const char *s)
{
	char *end;
	unsigned long long v;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end)
		TU_FAIL("bad value for %s: \"%s\"", name, s);
	return v;
}
