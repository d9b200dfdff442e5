/*
 * unit_gate.c - shutting one heap's slow paths from another thread
 * (hak__heap_shut / hak__heap_open), which a thread that takes over a
 * quiet holder's pages relies on (heap.c, quiet_holder):
 *
 *   - the shut is refused while the holder is inside its gate, granted
 *     once it has left;
 *   - once granted, the holder's next gate entry waits until the heap is
 *     opened again, and then goes in;
 *   - a second shut of a shut heap (also while the holder waits, which
 *     must still be woken by the open), and a shut of a dead heap (its
 *     thread exited), are refused.
 */
#include "config.h"

#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "internal.h"
#include "testutil.h"

#define TIMEOUT_S 60 /* hang guard only */

static struct hak_heap *holder;
static _Atomic int step; /* the holder's progress, set by it */
static _Atomic int go;   /* the test's permission for its next step */

static void pause_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static void wait_for(_Atomic int *v, int want)
{
	for (int i = 0; atomic_load(v) < want; i++) {
		UCHECK(i < 20000, "waited 20 s for step %d", want);
		pause_ms(1);
	}
}

/* The holder: a heap, inside its gate until go 1, outside until go 2, then
 * enters again (step 3 once it is in) and leaves; exits at go 3. */
static void *holder_thread(void *arg)
{
	(void)arg;
	struct hak_heap *h = hak__heap_get();
	UCHECK(h != NULL && h != &hak__empty_heap, "no heap for the holder");
	holder = h;
	_Atomic uint32_t *g = hak__gate_enter(h);
	atomic_store(&step, 1);
	wait_for(&go, 1);
	hak__gate_exit(g);
	atomic_store(&step, 2);
	wait_for(&go, 2);
	g = hak__gate_enter(h);
	atomic_store(&step, 3);
	hak__gate_exit(g);
	wait_for(&go, 3);
	return NULL;
}

START_TEST(shut_waits_for_the_holder)
{
	hak__init();
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, holder_thread, NULL), 0);
	wait_for(&step, 1);
	ck_assert_msg(!hak__heap_shut(holder), "shut granted while the holder is inside its gate");
	atomic_store(&go, 1);
	wait_for(&step, 2);
	ck_assert_msg(hak__heap_shut(holder), "shut refused although the holder left its gate");
	ck_assert_msg(!hak__heap_shut(holder), "a second shut of a shut heap was granted");
	atomic_store(&go, 2);
	pause_ms(200);
	ck_assert_msg(atomic_load(&step) == 2,
		      "the holder entered its gate while its heap was shut");
	/* refused again while the holder waits: the refusal must leave the
	 * holder's wake-up to the open below */
	ck_assert_msg(!hak__heap_shut(holder), "a shut of a shut heap was granted");
	hak__heap_open(holder);
	wait_for(&step, 3);
	atomic_store(&go, 3);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	/* the thread exit abandoned the heap */
	ck_assert_msg(!hak__heap_shut(holder), "shut granted on a dead heap");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("gate");
	TCase *tc = tu_add_tcase(s, "core", TIMEOUT_S);
	tcase_add_test(tc, shut_waits_for_the_holder);
	return tu_run_suite(s);
}
