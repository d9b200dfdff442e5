/*
 * stat-child.c - a process for the hakmem-stat tests to attach to.  Linked
 * against libhakmem, so its malloc is hakmem's.
 *
 * Every worker thread allocates BLOCKS blocks of SMALL_SIZE bytes,
 * BLOCKS / MID_DIVISOR of MID_SIZE bytes and LARGE_PER_THREAD blocks of
 * LARGE_SIZE bytes, touches them, and waits.  The main thread then frees
 * REMOTE of worker 0's small blocks (remote frees), prints one line
 *   ready pid=P threads=T small=S small_size=Z mid=M mid_size=Y large=L
 *         large_size=X remote=R
 * and waits for SIGUSR1; then everything is freed, the threads are joined
 * and main returns (so the library's destructor runs).  With --fork, after
 * "ready" the process forks a child that waits CHILD_DELAY_MS (a fork child
 * names its segment at a slow path once it is 0.1 s old), allocates
 * CHILD_BLOCKS blocks, prints "child pid=C", and also waits for SIGUSR1,
 * then calls exit(0).  With --fork-brief, after "ready" it forks BRIEF
 * children that allocate CHILD_BLOCKS blocks and _exit, and BRIEF that
 * allocate and exec /bin/true, reaps them and prints "brief PID..." (their
 * pids), as a shell does with its children.
 * --exit: allocate, print ready, and return at once.  alarm() bounds the
 * life of either process so that a broken test never leaves it behind.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SMALL_SIZE 100
#define MID_SIZE 3000
#define MID_DIVISOR 10
#define LARGE_SIZE (1u << 20)
#define LARGE_PER_THREAD 2
#define CHILD_SIZE 200
#define CHILD_BLOCKS 300
#define CHILD_DELAY_MS 150
#define BRIEF 8
#define LIFETIME_S 60
#define MAX_THREADS 64

struct worker {
	pthread_t tid;
	unsigned blocks;
	char **small, **mid, *large[LARGE_PER_THREAD];
};

static pthread_barrier_t ready, release;

static void *touch(size_t size)
{
	char *p = malloc(size);
	if (!p) {
		fprintf(stderr, "stat-child: malloc(%zu) failed\n", size);
		exit(3);
	}
	memset(p, 0x5a, size);
	return p;
}

static void *work(void *arg)
{
	struct worker *w = arg;
	unsigned mids = w->blocks / MID_DIVISOR;
	w->small = touch(w->blocks * sizeof *w->small);
	w->mid = touch(mids * sizeof *w->mid);
	for (unsigned i = 0; i < w->blocks; i++)
		w->small[i] = touch(SMALL_SIZE);
	for (unsigned i = 0; i < mids; i++)
		w->mid[i] = touch(MID_SIZE);
	for (unsigned i = 0; i < LARGE_PER_THREAD; i++)
		w->large[i] = touch(LARGE_SIZE);
	pthread_barrier_wait(&ready);
	pthread_barrier_wait(&release);
	for (unsigned i = 0; i < w->blocks; i++)
		free(w->small[i]);
	for (unsigned i = 0; i < mids; i++)
		free(w->mid[i]);
	for (unsigned i = 0; i < LARGE_PER_THREAD; i++)
		free(w->large[i]);
	free(w->small);
	free(w->mid);
	return NULL;
}

static void wait_usr1(void)
{
	sigset_t set;
	int sig;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigwait(&set, &sig);
}

/* Fork 2 * BRIEF short-lived children (see above); print their pids. */
static void fork_brief(void)
{
	pid_t pids[2 * BRIEF];
	for (unsigned i = 0; i < 2 * BRIEF; i++) {
		pids[i] = fork();
		if (pids[i] < 0) {
			perror("stat-child: fork");
			exit(3);
		}
		if (pids[i] == 0) {
			char *b[CHILD_BLOCKS];
			for (unsigned k = 0; k < CHILD_BLOCKS; k++)
				b[k] = touch(CHILD_SIZE + 64 * (k % 8));
			free(touch(LARGE_SIZE));
			for (unsigned k = 0; k < CHILD_BLOCKS; k += 2)
				free(b[k]); /* half: a shell child leaves the rest */
			if (i < BRIEF)
				_exit(0);
			execl("/bin/true", "true", (char *)NULL);
			_exit(127);
		}
	}
	printf("brief");
	for (unsigned i = 0; i < 2 * BRIEF; i++) {
		int st;
		while (waitpid(pids[i], &st, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "stat-child: brief child %ld failed\n", (long)pids[i]);
			exit(3);
		}
		printf(" %ld", (long)pids[i]);
	}
	printf("\n");
	fflush(stdout);
}

static unsigned arg_num(const char *s, unsigned lo, unsigned hi)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);
	if (*end || v < lo || v > hi) {
		fprintf(stderr, "stat-child: bad number '%s'\n", s);
		exit(2);
	}
	return (unsigned)v;
}

int main(int argc, char **argv)
{
	unsigned threads = 4, blocks = 1000;
	int do_fork = 0, quick = 0, brief = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--fork"))
			do_fork = 1;
		else if (!strcmp(argv[i], "--fork-brief"))
			brief = 1;
		else if (!strcmp(argv[i], "--exit"))
			quick = 1;
		else if (!strcmp(argv[i], "-t") && i + 1 < argc)
			threads = arg_num(argv[++i], 1, MAX_THREADS);
		else if (!strcmp(argv[i], "-n") && i + 1 < argc)
			blocks = arg_num(argv[++i], MID_DIVISOR, 1000000);
		else {
			fprintf(stderr, "usage: stat-child [-t THREADS] [-n BLOCKS] [--fork|--fork-brief|--exit]\n");
			return 2;
		}
	}
	/* SIGUSR1 is taken by sigwait in main only: block it everywhere */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	alarm(LIFETIME_S);

	static struct worker w[MAX_THREADS];
	pthread_barrier_init(&ready, NULL, threads + 1);
	pthread_barrier_init(&release, NULL, threads + 1);
	for (unsigned i = 0; i < threads; i++) {
		w[i].blocks = blocks;
		if (pthread_create(&w[i].tid, NULL, work, &w[i]) != 0) {
			fprintf(stderr, "stat-child: pthread_create failed\n");
			return 3;
		}
	}
	pthread_barrier_wait(&ready);
	unsigned remote = blocks / 2;
	for (unsigned i = 0; i < remote; i++) {
		free(w[0].small[i]);
		w[0].small[i] = NULL; /* free(NULL) later is a no-op */
	}
	printf("ready pid=%ld threads=%u small=%u small_size=%u mid=%u mid_size=%u large=%u "
	       "large_size=%u remote=%u\n",
	       (long)getpid(), threads, threads * blocks, SMALL_SIZE,
	       threads * (blocks / MID_DIVISOR), MID_SIZE, threads * LARGE_PER_THREAD,
	       LARGE_SIZE, remote);
	fflush(stdout);

	pid_t child = -1;
	if (do_fork) {
		child = fork();
		if (child < 0) {
			perror("stat-child: fork");
			return 3;
		}
		if (child == 0) {
			alarm(LIFETIME_S);
			struct timespec ts = {0, CHILD_DELAY_MS * 1000000L};
			while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
				;
			char *b[CHILD_BLOCKS];
			for (unsigned i = 0; i < CHILD_BLOCKS; i++)
				b[i] = touch(CHILD_SIZE);
			printf("child pid=%ld blocks=%u size=%u\n", (long)getpid(), CHILD_BLOCKS,
			       CHILD_SIZE);
			fflush(stdout);
			wait_usr1();
			for (unsigned i = 0; i < CHILD_BLOCKS; i++)
				free(b[i]);
			exit(0);
		}
	}
	if (brief)
		fork_brief();
	if (!quick)
		wait_usr1();
	pthread_barrier_wait(&release);
	for (unsigned i = 0; i < threads; i++)
		pthread_join(w[i].tid, NULL);
	if (child > 0) {
		kill(child, SIGUSR1);
		while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
			;
	}
	return 0;
}
