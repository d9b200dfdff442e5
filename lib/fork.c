/*
 * fork.c - what makes fork() safe while other threads allocate: the gate
 * every slow path passes, and the wait for it in fork_prepare.
 *
 * A fork child has one thread, and inherits every other thread's heap as
 * it was at the instant of fork.  It abandons those heaps (hak__heap_abandon:
 * their cached blocks go back to their pages, their pages float or go to
 * the pool), which is sound only if none of them was halfway through an
 * update that spans several stores: a thread-cache flush half done, a page
 * half moved between lists, a popped queue entry not yet put back.  glibc
 * gets this by taking every arena lock in its fork handler; hakmem's fast
 * paths take no lock, so:
 *
 *  - The fast paths (a block into or out of the thread cache, a block off
 *    the active page's free list) order their stores so that the heap is
 *    consistent after any prefix of them.  A child sees a prefix of each
 *    thread's stores in program order (a thread that touches a page fork
 *    has write-protected stops until fork is over), so at worst it loses
 *    the one block in flight: as if that free had not started, or that
 *    malloc had returned to a thread the child does not have.
 *  - Every other path runs inside a *gate*: a counter in the thread's heap
 *    that only its thread writes, non-zero while it is inside.  fork_prepare
 *    raises hak__forking, makes sure every thread will see it, waits until
 *    every other gate is shut, and only then takes the allocator's locks.
 *    A thread that meets the raised flag at its gate shuts it again and
 *    waits (futex) until fork has returned.
 *
 * Cost: entering a gate is a plain store and a load.  The store-then-load
 * needs a full fence against fork's store-then-load (Dekker); membarrier's
 * expedited command gives fork that fence on every thread's behalf (an
 * asymmetric fence), so the gate needs none.  Without membarrier (old
 * kernels, seccomp filters) the gate's store is seq_cst instead.
 */
#include "config.h"
#include "internal.h"

#include <limits.h>
#include <sched.h>
#include <unistd.h>

_Alignas(HAK_CACHE_LINE) _Atomic uint32_t hak__forking;
_Alignas(HAK_CACHE_LINE) _Atomic uint32_t hak__gate_shared;
bool hak__gate_light;
__thread uint32_t hak__tl_shared_depth __attribute__((tls_model("initial-exec")));

static _Atomic uint32_t fork_lock; /* one fork at a time */
static pid_t fork_pid; /* the forking process and thread, while forking */
static pid_t fork_tid;

void hak__gate_init(void)
{
	hak__gate_light = hak__os_barrier_register();
}

/* Whether the calling thread must go on through a raised gate: it is inside
 * another gate already (fork is waiting for it to come out), it is the
 * thread that forks (other atfork handlers may allocate), or it is the
 * child, which runs before our child handler has lowered the flag. */
static bool must_pass(_Atomic uint32_t *g, uint32_t was)
{
	if (g == &hak__gate_shared ? hak__tl_shared_depth > 1 : (was || hak__tl_shared_depth))
		return true;
	return hak__gettid() == __atomic_load_n(&fork_tid, __ATOMIC_RELAXED) ||
	       getpid() != __atomic_load_n(&fork_pid, __ATOMIC_RELAXED);
}

/* Whether the owner of h, entering its gate g from outside every gate
 * (was 0), must wait: another thread is taking over h's held pages. */
static bool held_shut(struct hak_heap *h, _Atomic uint32_t *g, uint32_t was)
{
	return g != &hak__gate_shared && !was &&
	       atomic_load_explicit(&h->held_shut, memory_order_seq_cst);
}

/* The flag was raised, or h's held pages are being taken over
 * (quiet_holder in heap.c), as we entered gate g of heap h (its value before
 * was was): leave, wait for fork (or the takeover) to be over, and enter
 * again.  A takeover lasts a walk over the heap's page lists; it never
 * waits for anything the owner holds, since the owner is outside every
 * gate and holds no lock of ours. */
void hak__gate_blocked(struct hak_heap *h, _Atomic uint32_t *g, uint32_t was)
{
	for (;;) {
		bool forking = atomic_load_explicit(&hak__forking, memory_order_seq_cst);
		if (forking ? must_pass(g, was) : !held_shut(h, g, was))
			return;
		if (g == &hak__gate_shared)
			atomic_fetch_sub_explicit(g, 1, memory_order_seq_cst);
		else
			atomic_store_explicit(g, was, memory_order_seq_cst);
		if (forking) {
			while (atomic_load_explicit(&hak__forking, memory_order_acquire))
				hak__futex_wait(&hak__forking, 1, NULL);
		} else {
			/* 2: the taker wakes us when it is done */
			uint32_t s;
			while ((s = atomic_load_explicit(&h->held_shut, memory_order_acquire))) {
				if (s == 1 && !atomic_compare_exchange_strong_explicit(
						      &h->held_shut, &s, 2, memory_order_seq_cst,
						      memory_order_relaxed))
					continue;
				hak__futex_wait(&h->held_shut, 2, NULL);
			}
		}
		if (g == &hak__gate_shared)
			atomic_fetch_add_explicit(g, 1, memory_order_seq_cst);
		else
			atomic_store_explicit(g, was + 1, memory_order_seq_cst);
	}
}

/* Shut the slow paths of heap p (not the caller's) if its thread is outside
 * all of them, so that the caller may take over p's held pages: false if
 * p's thread is inside one, p is dead, or another thread is taking over
 * already.  Dekker with hak__gate_enter, as in hak__gate_close: our store,
 * the asymmetric fence, the load of p's gate. */
bool hak__heap_shut(struct hak_heap *p)
{
	uint32_t open = 0; /* (a CAS: a shut heap's 2 must stay for its taker) */
	if (!atomic_compare_exchange_strong_explicit(&p->held_shut, &open, 1,
						     memory_order_seq_cst, memory_order_relaxed))
		return false;
	if (hak__gate_light)
		hak__os_barrier_all();
	if (!atomic_load_explicit(&p->gate, memory_order_seq_cst) &&
	    atomic_load_explicit(&p->alive, memory_order_acquire))
		return true;
	hak__heap_open(p);
	return false;
}

void hak__heap_open(struct hak_heap *p)
{
	if (atomic_exchange_explicit(&p->held_shut, 0, memory_order_seq_cst) == 2)
		hak__futex_wake(&p->held_shut, INT_MAX);
}

/* Wait until gate g holds at most mine (the calling thread's own share). */
static void wait_shut(_Atomic uint32_t *g, uint32_t mine)
{
	for (unsigned spins = 0; atomic_load_explicit(g, memory_order_acquire) > mine; spins++) {
		if (spins < 64)
			__builtin_ia32_pause();
		else
			sched_yield();
	}
}

/* fork_prepare: raise the flag, then wait for every other thread to leave
 * its slow path.  New threads get a heap inside the shared gate, so a heap
 * added to the registry after the walk has passed is covered by the wait on
 * the shared gate that follows it. */
void hak__gate_close(void)
{
	/* two threads forking at once would each wait for the other */
	hak__spin_lock(&fork_lock);
	__atomic_store_n(&fork_pid, getpid(), __ATOMIC_RELAXED);
	__atomic_store_n(&fork_tid, hak__gettid(), __ATOMIC_RELAXED);
	atomic_store_explicit(&hak__forking, 1, memory_order_seq_cst);
	if (hak__gate_light)
		hak__os_barrier_all();
	struct hak_heap *self = hak__tl_heap;
	for (struct hak_heap *h = hak__heaps_first(); h; h = hak__heap_next(h))
		if (h != self)
			wait_shut(&h->gate, 0);
	wait_shut(&hak__gate_shared, hak__tl_shared_depth);
}

/* After fork, in the parent: let the waiting threads in. */
void hak__gate_open(void)
{
	__atomic_store_n(&fork_tid, 0, __ATOMIC_RELAXED);
	atomic_store_explicit(&hak__forking, 0, memory_order_seq_cst);
	hak__futex_wake(&hak__forking, INT_MAX);
	hak__spin_unlock(&fork_lock);
}

/* In the child: the other threads' gates say nothing any more (a thread may
 * have been between raising its gate and seeing the flag). */
void hak__gate_fork_child(void)
{
	struct hak_heap *self = hak__tl_heap;
	for (struct hak_heap *h = hak__heaps_first(); h; h = hak__heap_next(h))
		if (h != self) {
			atomic_store_explicit(&h->gate, 0, memory_order_relaxed);
			atomic_store_explicit(&h->held_shut, 0, memory_order_relaxed);
		}
	atomic_store_explicit(&hak__gate_shared, hak__tl_shared_depth, memory_order_relaxed);
	__atomic_store_n(&fork_tid, 0, __ATOMIC_RELAXED);
	atomic_store_explicit(&hak__forking, 0, memory_order_seq_cst);
	atomic_store_explicit(&fork_lock, 0, memory_order_relaxed);
}
