/*
 * runner.c - allocators by name, and Larson runs in child processes.
 *
 * Each run re-executes this binary (/proc/self/exe) in "child mode" with the
 * allocator in LD_PRELOAD and any HAKMEM_* settings in its environment.  The
 * child runs the workload and writes one JSON object to a pipe whose file
 * descriptor it is given; the parent reads it under a deadline, kills a child
 * that overruns, and turns a crash into one line of text.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef HAK_LIBDIR
#define HAK_LIBDIR "/usr/local/lib"
#endif

#define RESULT_MAX 16384 /* bytes of JSON a child may send */

extern char **environ;

#if defined(__x86_64__)
#define MULTIARCH "x86_64-linux-gnu"
#elif defined(__aarch64__)
#define MULTIARCH "aarch64-linux-gnu"
#elif defined(__i386__)
#define MULTIARCH "i386-linux-gnu"
#elif defined(__arm__)
#define MULTIARCH "arm-linux-gnueabihf"
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define MULTIARCH "powerpc64le-linux-gnu"
#elif defined(__s390x__)
#define MULTIARCH "s390x-linux-gnu"
#elif defined(__riscv) && __riscv_xlen == 64
#define MULTIARCH "riscv64-linux-gnu"
#else
#define MULTIARCH "unknown-linux-gnu"
#endif

static const char *const lib_dirs[] = {
	"/usr/lib/" MULTIARCH, "/lib/" MULTIARCH, "/usr/local/lib/" MULTIARCH,
	"/usr/lib64", "/lib64", "/usr/lib", "/lib", "/usr/local/lib",
};

/* Peers by their Debian library names, most specific first. */
static const struct peer {
	const char *name;
	const char *package;
	const char *sonames[3];
} peers[] = {
	{ "mimalloc", "libmimalloc2.0", { "libmimalloc.so.2", "libmimalloc.so", NULL } },
	{ "jemalloc", "libjemalloc2", { "libjemalloc.so.2", "libjemalloc.so", NULL } },
	{ "tcmalloc", "libtcmalloc-minimal4",
	  { "libtcmalloc_minimal.so.4", "libtcmalloc.so.4", "libtcmalloc_minimal.so" } },
};

static bool readable(const char *path)
{
	return access(path, R_OK) == 0;
}

static bool find_in_dirs(const char *soname, char *out, size_t len)
{
	for (size_t i = 0; i < sizeof lib_dirs / sizeof lib_dirs[0]; i++) {
		snprintf(out, len, "%s/%s", lib_dirs[i], soname);
		if (readable(out))
			return true;
	}
	return false;
}

/* Ask the dynamic linker's cache ("ldconfig -p") for soname. */
static bool find_in_ldconfig(const char *soname, char *out, size_t len)
{
	static const char *const cmds[] = { "/sbin/ldconfig -p 2>/dev/null",
					    "ldconfig -p 2>/dev/null" };
	size_t slen = strlen(soname);
	for (size_t c = 0; c < 2; c++) {
		FILE *p = popen(cmds[c], "r");
		if (!p)
			continue;
		char line[1024];
		bool found = false;
		while (!found && fgets(line, sizeof line, p)) {
			const char *s = line + strspn(line, " \t");
			const char *arrow = strstr(s, "=> ");
			if (strncmp(s, soname, slen) != 0 || (s[slen] != ' ' && s[slen] != '\t') ||
			    !arrow)
				continue;
			snprintf(out, len, "%s", arrow + 3);
			out[strcspn(out, "\n")] = '\0';
			found = readable(out);
		}
		pclose(p);
		if (found)
			return true;
	}
	return false;
}

static bool find_soname(const char *soname, char *out, size_t len)
{
	return find_in_dirs(soname, out, len) || find_in_ldconfig(soname, out, len);
}

/* libhakmem beside the tool (libtool's uninstalled layout: the binary in
 * tools/ or tools/.libs/, the library in lib/.libs/), else installed. */
static bool find_hakmem(char *out, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash)
			*slash = '\0';
		static const char *const rel[] = {
			"../lib/.libs/libhakmem.so.1", "../lib/.libs/libhakmem.so",
			"../../lib/.libs/libhakmem.so.1", "../../lib/.libs/libhakmem.so",
		};
		for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
			char cand[PATH_MAX + 64];
			snprintf(cand, sizeof cand, "%s/%s", exe, rel[i]);
			if (readable(cand) && realpath(cand, out))
				return true;
		}
	}
	snprintf(out, len, "%s/libhakmem.so.1", HAK_LIBDIR);
	if (readable(out))
		return true;
	snprintf(out, len, "%s/libhakmem.so", HAK_LIBDIR);
	return readable(out);
}

int runner_resolve(const char *name, struct allocator *a)
{
	memset(a, 0, sizeof *a);
	snprintf(a->name, sizeof a->name, "%s", name);
	if (strcmp(name, "glibc") == 0 || strcmp(name, "system") == 0)
		return 0;
	if (strcmp(name, "hakmem") == 0) {
		if (find_hakmem(a->path, sizeof a->path))
			return 0;
		opt_error("libhakmem not found beside %s (../lib/.libs) nor in %s", BENCH_PROG,
			  HAK_LIBDIR);
		return -1;
	}
	for (size_t i = 0; i < sizeof peers / sizeof peers[0]; i++) {
		if (strcmp(name, peers[i].name) != 0)
			continue;
		for (size_t k = 0; k < 3 && peers[i].sonames[k]; k++)
			if (find_soname(peers[i].sonames[k], a->path, sizeof a->path))
				return 0;
		fprintf(stderr, "%s: note: skipping %s: %s not installed (Debian package %s)\n",
			BENCH_PROG, name, peers[i].sonames[0], peers[i].package);
		return 1;
	}
	if (strchr(name, '/')) {
		if (!readable(name)) {
			opt_error("allocator library not found: %s", name);
			return -1;
		}
		if (!realpath(name, a->path))
			snprintf(a->path, sizeof a->path, "%s", name);
		return 0;
	}
	if (strstr(name, ".so")) {
		if (find_soname(name, a->path, sizeof a->path))
			return 0;
		opt_error("allocator library not found: %s", name);
		return -1;
	}
	opt_error("unknown allocator '%s' (known: hakmem, glibc, mimalloc, jemalloc, tcmalloc, "
		  "or a path to a malloc library)", name);
	return -1;
}

/* Child processes -------------------------------------------------------- */

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool env_overridden(const char *entry, const struct child_env *env, size_t nenv)
{
	size_t klen = strcspn(entry, "=");
	if (klen == strlen("LD_PRELOAD") && strncmp(entry, "LD_PRELOAD", klen) == 0)
		return true;
	for (size_t i = 0; i < nenv; i++)
		if (strlen(env[i].name) == klen && strncmp(entry, env[i].name, klen) == 0)
			return true;
	return false;
}

/* The child's environment: ours, minus LD_PRELOAD and the overridden names,
 * plus the allocator and the settings.  Built before fork. */
static char **child_environ(const struct allocator *a, const struct child_env *env, size_t nenv)
{
	size_t n = 0;
	while (environ[n])
		n++;
	char **v = calloc(n + nenv + 2, sizeof *v);
	if (!v)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (!env_overridden(environ[i], env, nenv))
			v[k++] = environ[i];
	if (a->path[0]) {
		size_t len = strlen("LD_PRELOAD=") + strlen(a->path) + 1;
		if (!(v[k] = malloc(len)))
			return free(v), NULL;
		snprintf(v[k++], len, "LD_PRELOAD=%s", a->path);
	}
	for (size_t i = 0; i < nenv; i++) {
		size_t len = strlen(env[i].name) + strlen(env[i].value) + 2;
		if (!(v[k] = malloc(len)))
			return free(v), NULL;
		snprintf(v[k++], len, "%s=%s", env[i].name, env[i].value);
	}
	return v;
}

static void free_child_environ(char **v, const struct allocator *a, size_t nenv)
{
	size_t n = 0;
	while (v[n])
		n++;
	size_t own = nenv + (a->path[0] ? 1 : 0);
	for (size_t i = n - own; i < n; i++)
		free(v[i]);
	free(v);
}

/* Read until EOF or the deadline; returns bytes read, or -1 on timeout. */
static ssize_t read_result(int fd, char *buf, size_t cap, double deadline)
{
	size_t len = 0;
	for (;;) {
		double left = deadline - mono_now();
		if (left <= 0)
			return -1;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, (int)(left * 1000) + 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			continue;
		ssize_t got = read(fd, buf + len, cap - 1 - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		len += (size_t)got;
		if (len == cap - 1)
			break;
	}
	buf[len] = '\0';
	return (ssize_t)len;
}

/* Wait for pid until the deadline; kill it then.  Returns true if it was
 * killed for overrunning. */
static bool reap(pid_t pid, int *status, double deadline)
{
	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);
		if (r == pid)
			return false;
		if (r < 0 && errno != EINTR)
			return false;
		if (mono_now() >= deadline) {
			kill(pid, SIGKILL);
			while (waitpid(pid, status, 0) < 0 && errno == EINTR)
				;
			return true;
		}
		struct timespec ts = { .tv_nsec = 5 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

static void child_args(char args[][32], const struct wl_cfg *cfg, int fd)
{
	snprintf(args[0], 32, "%d", fd);
	snprintf(args[9], 32, "%s", workload_name(cfg->workload));
	snprintf(args[10], 32, "%d", cfg->check ? 1 : 0);
	snprintf(args[11], 32, "%s", calls_name(cfg->calls));
	snprintf(args[12], 32, "%llu", (unsigned long long)cfg->size);
	snprintf(args[13], 32, "%u", cfg->writes);
	snprintf(args[14], 32, "%s", fs_mode_name(cfg->mode));
	snprintf(args[15], 32, "%u", cfg->live);
	snprintf(args[16], 32, "%s", fill_name(cfg->fill));
	snprintf(args[1], 32, "%u", cfg->threads);
	snprintf(args[2], 32, "%u", cfg->chunks);
	snprintf(args[3], 32, "%u", cfg->rounds);
	snprintf(args[4], 32, "%llu", (unsigned long long)cfg->min);
	snprintf(args[5], 32, "%llu", (unsigned long long)cfg->max);
	snprintf(args[6], 32, "%.17g", cfg->seconds);
	snprintf(args[7], 32, "%llu", (unsigned long long)cfg->seed);
	snprintf(args[8], 32, "%u", cfg->latency ? cfg->sample : 0);
}

static void describe_status(struct child_outcome *out, int status)
{
	if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);
		snprintf(out->what, sizeof out->what, "crashed: killed by signal %d (%s)%s", sig,
			 strsignal(sig), WCOREDUMP(status) ? ", core dumped" : "");
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
		snprintf(out->what, sizeof out->what, "could not be started (exit status 127)");
	} else if (WIFEXITED(status)) {
		snprintf(out->what, sizeof out->what, "failed: exit status %d", WEXITSTATUS(status));
	}
}

int runner_run(const struct allocator *a, const struct wl_cfg *cfg,
		      const struct child_env *env, size_t nenv, double timeout,
		      struct run_record *rec, struct child_outcome *out)
{
	memset(out, 0, sizeof *out);
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) != 0) {
		snprintf(out->what, sizeof out->what, "pipe: %s", strerror(errno));
		return -1;
	}
	char **envp = child_environ(a, env, nenv);
	char args[17][32];
	child_args(args, cfg, fds[1]);
	const char *argv[] = { BENCH_PROG, "__child", args[0], a->name, args[9],  args[1],
			       args[2],	   args[3],   args[4], args[5], args[6],  args[7],
			       args[8],	   args[10],  args[11], args[12], args[13], args[14],
			       args[15],   args[16],  NULL };
	if (!envp) {
		close(fds[0]);
		close(fds[1]);
		snprintf(out->what, sizeof out->what, "out of memory");
		return -1;
	}
	fflush(NULL);
	double deadline = mono_now() + timeout;
	pid_t pid = fork();
	if (pid == 0) {
		/* Only async-signal-safe calls from here to exec. */
		fcntl(fds[1], F_SETFD, 0);
		dup2(STDERR_FILENO, STDOUT_FILENO); /* keep our stdout for results */
		execve("/proc/self/exe", (char *const *)argv, envp);
		static const char msg[] = BENCH_PROG ": cannot re-execute /proc/self/exe\n";
		if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0)
			_exit(127);
		_exit(127);
	}
	close(fds[1]);
	free_child_environ(envp, a, nenv);
	if (pid < 0) {
		close(fds[0]);
		snprintf(out->what, sizeof out->what, "fork: %s", strerror(errno));
		return -1;
	}
	static char buf[RESULT_MAX];
	ssize_t len = read_result(fds[0], buf, sizeof buf, deadline);
	close(fds[0]);
	int status = 0;
	bool killed = reap(pid, &status, len < 0 ? 0 : deadline);
	if (killed || len < 0) {
		snprintf(out->what, sizeof out->what, "timed out after %.0f s (killed)", timeout);
		return -1;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		describe_status(out, status);
		return -1;
	}
	if (len == 0 || report_record_from_json(buf, rec) != 0) {
		snprintf(out->what, sizeof out->what, "%s", len == 0 ? "sent no result"
								: "sent a result that does not parse");
		return -1;
	}
	snprintf(rec->allocator, sizeof rec->allocator, "%s", a->name);
	rec->cfg = *cfg;
	out->ok = true;
	return 0;
}
