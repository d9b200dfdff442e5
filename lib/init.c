/*
 * init.c - process-wide life cycle: lazy initialisation without
 * allocating, thread exit (a key destructor abandons the heap), fork
 * (every slow path waited for and every lock taken around it, see fork.c;
 * the child gets its own stats segment), the background purge/sweep
 * thread, and exit.
 */
#include "config.h"
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/auxv.h>
#include <time.h>
#include <unistd.h>

_Atomic int hak__initialized;
static _Atomic uint32_t init_lock;
static pthread_key_t heap_key;
static bool heap_key_ok;

/* Background thread state. */
static _Atomic uint32_t bg_seq;      /* futex word: bumped by every kick */
static _Atomic int bg_state;         /* 0 none, 1 wanted, 2 starting/running */
static _Atomic int bg_sleeping;      /* BG_*: how the thread sleeps */
enum { BG_AWAKE, BG_IDLE, BG_TICK };

static void thread_exit(void *arg)
{
	struct hak_heap *h = arg;
	if (h && h == hak__tl_heap && h != &hak__empty_heap) {
		hak__gate_enter(h); /* shut again by hak__heap_abandon */
		hak__heap_abandon(h);
	}
}

void hak__thread_started(struct hak_heap *h)
{
	if (heap_key_ok)
		pthread_setspecific(heap_key, h);
}

static void fork_prepare(void)
{
	hak__gate_close();
	hak__stats_fork_prepare(); /* a system call: before the spin locks */
	hak__spin_lock(&init_lock);
	hak__heaps_lock();
	hak__pool_lock_all();
	hak__arena_lock_all();
	hak__large_lock_all();
}

/* After fork, in the parent and the child: the locks fork_prepare took. */
static void unlock_all(void)
{
	hak__large_unlock_all();
	hak__arena_unlock_all();
	hak__pool_unlock_all();
	hak__heaps_unlock();
	hak__spin_unlock(&init_lock);
}

static void fork_parent(void)
{
	hak__stats_fork_parent();
	unlock_all();
	hak__gate_open();
}

static void fork_child(void)
{
	hak__gate_fork_child();
	unlock_all();
	hak__arena_fork_child();
	atomic_store(&bg_state, 0); /* the background thread did not come along */
	atomic_store(&bg_sleeping, 0);
	struct hak_heap *self = hak__tl_heap;
	/* our own segment first: abandoning the other heaps updates counters */
	hak__stats_fork_child();
	hak__heaps_after_fork_child(self == &hak__empty_heap ? NULL : self);
	if (self != &hak__empty_heap)
		hak__thread_started(self);
}

static uintptr_t random_secret(void)
{
	uintptr_t s = 0;
	const unsigned char *r = (const unsigned char *)getauxval(AT_RANDOM);
	if (r)
		memcpy(&s, r + 8, sizeof s); /* the first 8 bytes are the stack canary */
	s ^= (uintptr_t)&s ^ ((uintptr_t)getpid() << 32);
	return s | 1;
}

void hak__init_slow(void)
{
	hak__spin_lock(&init_lock);
	if (atomic_load_explicit(&hak__initialized, memory_order_relaxed)) {
		hak__spin_unlock(&init_lock);
		return;
	}
	int saved = errno;
	hak__guard.secret = random_secret();
	hak__options_init();
	hak__guard_init();
	hak__gate_init();
	hak__stats_init();
	hak__hints_init(); /* counts the reservation */
	hak__prof_init();
	heap_key_ok = pthread_key_create(&heap_key, thread_exit) == 0;
	atomic_store_explicit(&hak__initialized, 1, memory_order_release);
	hak__spin_unlock(&init_lock);
	/* pthread_atfork may allocate: only once we are usable */
	pthread_atfork(fork_prepare, fork_parent, fork_child);
	errno = saved;
}

/* Background thread ------------------------------------------------------- */

static bool purge_pending(void)
{
	return atomic_load_explicit((_Atomic uint64_t *)&hak__seg->global.unpurged_free_bytes,
				    memory_order_relaxed) != 0;
}

/* What entered the pool before this is old enough to purge: now - delay,
 * or 0 (nothing is) while the clock, which starts at boot, is younger than
 * the delay (the subtraction would wrap and purge everything at once). */
static uint64_t purge_horizon(uint64_t now, uint64_t delay)
{
	return now > delay ? now - delay : 0;
}

static void *background_main(void *arg)
{
	(void)arg;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	uint64_t delay = (uint64_t)hak__opt.purge_delay_ms * 1000000u;
	uint64_t sweep = (uint64_t)hak__opt.sweep_ms * 1000000u;
	uint64_t tick = delay / 2 ? delay / 2 : 1000000u;
	if (sweep && sweep < tick)
		tick = sweep;
	uint64_t last_sweep = 0;
	for (;;) {
		uint32_t seq = atomic_load(&bg_seq);
		/* outside our gate: it stops every slow path for a moment */
		bool watch;
		hak__heaps_reclaim_idle(hak__now_ns(), &watch);
		uint64_t now = hak__now_ns();
		_Atomic uint32_t *g = hak__gate_enter(&hak__empty_heap);
		if (sweep && now - last_sweep >= sweep) {
			hak__sweep_pending();
			last_sweep = now;
		}
		hak__pages_purge(purge_horizon(now, delay), false);
		hak__large_purge(purge_horizon(now, delay), false);
		hak__gate_exit(g);
		uint64_t sleep = watch && tick > HAK_IDLE_LOOK_NS ? HAK_IDLE_LOOK_NS : tick;
		struct timespec ts = {.tv_sec = (time_t)(sleep / 1000000000u),
				      .tv_nsec = (long)(sleep % 1000000000u)};
		/* idle until the next kick, or sleep a tick (woken early only
		 * by hak__background_urge): ticks go on while there is memory
		 * to purge, or a heap with queued pages to look at again */
		bool idle = !sweep && !purge_pending() && !watch;
		atomic_store(&bg_sleeping, idle ? BG_IDLE : BG_TICK);
		hak__futex_wait(&bg_seq, seq, idle ? NULL : &ts);
		atomic_store(&bg_sleeping, BG_AWAKE);
	}
	return NULL;
}

/* Note that there is (or may be) memory to purge.  Never starts the thread
 * itself: callers may hold locks, and free() may run under glibc's
 * stack-cache lock; hak__background_poll() does, later. */
void hak__background_kick(void)
{
	if (!hak__opt.background) {
		return;
	}
	int s = atomic_load_explicit(&bg_state, memory_order_relaxed);
	if (s == 0) {
		atomic_store_explicit(&bg_state, 1, memory_order_relaxed);
		return;
	}
	if (s == 2 && atomic_load_explicit(&bg_sleeping, memory_order_relaxed) == BG_IDLE) {
		atomic_fetch_add(&bg_seq, 1);
		hak__futex_wake(&bg_seq, 1);
	}
}

/* More free pages than the pool may keep: wake the background thread even
 * from a tick's sleep.  The sequence is bumped even when the thread is
 * awake, so that the sleep it is about to start (with the sequence it read
 * before this purge pass) returns at once. */
void hak__background_urge(void)
{
	if (!hak__opt.background)
		return;
	int s = atomic_load_explicit(&bg_state, memory_order_relaxed);
	if (s == 0) {
		atomic_store_explicit(&bg_state, 1, memory_order_relaxed);
		return;
	}
	if (s != 2)
		return;
	atomic_fetch_add(&bg_seq, 1);
	int sl = atomic_load_explicit(&bg_sleeping, memory_order_relaxed);
	if (sl != BG_AWAKE && atomic_compare_exchange_strong(&bg_sleeping, &sl, BG_AWAKE))
		hak__futex_wake(&bg_seq, 1);
}

/* Start the background thread if it was asked for, or, before anything
 * asks, once the process has mapped HAK_BG_EAGER bytes: its memory may be
 * freed later with no allocation after it, and free() cannot start the
 * thread.
 *
 * Call from allocation paths only, with no lock held: pthread_create takes
 * glibc's stack-cache lock, and glibc calls free() under that lock when it
 * reclaims the TLS of exited threads (pthread_join, detached exits); a
 * free() that started the thread there would deadlock. */
#define HAK_BG_EAGER (2 * HAK_ARENA_SIZE)
void hak__background_poll(void)
{
	int s = atomic_load_explicit(&bg_state, memory_order_relaxed);
	bool eager = s == 0 && hak__opt.background &&
		     atomic_load_explicit((_Atomic uint64_t *)&hak__seg->global.mapped_bytes,
					  memory_order_relaxed) >= HAK_BG_EAGER;
	if ((s != 1 && !eager) || !atomic_compare_exchange_strong(&bg_state, &s, 2))
		return;
	int saved = errno;
	pthread_attr_t attr;
	pthread_t t;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, PTHREAD_STACK_MIN > 65536 ? PTHREAD_STACK_MIN : 65536);
	if (pthread_create(&t, &attr, background_main, NULL) != 0)
		atomic_store(&bg_state, 1); /* try again at a later poll */
	pthread_attr_destroy(&attr);
	errno = saved;
}

/* Without a background thread (HAKMEM_BACKGROUND=0), purge from the slow
 * paths instead: at most every purge delay. */
void hak__purge_inline(void)
{
	static _Atomic uint64_t last;
	uint64_t now = hak__now_ns();
	uint64_t delay = (uint64_t)hak__opt.purge_delay_ms * 1000000u;
	uint64_t l = atomic_load_explicit(&last, memory_order_relaxed);
	if (now - l < delay / 2 + 1 ||
	    !atomic_compare_exchange_strong(&last, &l, now))
		return;
	hak__pages_purge(purge_horizon(now, delay), false);
	hak__large_purge(purge_horizon(now, delay), false);
}

__attribute__((constructor)) static void hak_ctor(void)
{
	hak__init();
}

__attribute__((destructor)) static void hak_dtor(void)
{
	if (!atomic_load(&hak__initialized))
		return;
	if (hak__opt.show_stats)
		hak__stats_print(STDERR_FILENO);
	hak__stats_exit();
}
