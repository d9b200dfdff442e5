#!/bin/sh
# test-purge.sh - integ_purge in its modes: memory freed by a program that
# then idles goes back to the OS by itself (with and without the background
# thread), malloc_trim(0) returns it at once, a thread that allocated the
# memory and then only sleeps does not keep it when other threads free it
# (pages it still holds, and pages it had floated), nor do the emptied
# pages of an exited thread that no successor adopts,
# free pages beyond twice the pool's keep go back without waiting for the
# purge delay, and a free page serves the size it last served again.
set -u
builddir=${HAKMEM_TEST_BUILDDIR:-.}
prog=$builddir/integ_purge
[ -x "$prog" ] || { echo "$prog not built" >&2; exit 99; }
fail=0
for mode in idle trim holder floated exited; do
	"$prog" $mode || { echo "FAIL: integ_purge $mode" >&2; fail=1; }
done
# with an hour's purge delay, the free pages beyond twice the pool's share of
# memory in use still go back at once
HAKMEM_PURGE_DELAY_MS=3600000 "$prog" keep || { echo "FAIL: integ_purge keep" >&2; fail=1; }
# a free page goes back to the size it last served, touching no new memory
HAKMEM_PURGE_DELAY_MS=3600000 "$prog" class || { echo "FAIL: integ_purge class" >&2; fail=1; }
# without the background thread, purging happens on allocator calls only: a
# program that idles keeps its memory, but trim still works
HAKMEM_BACKGROUND=0 "$prog" trim || { echo "FAIL: HAKMEM_BACKGROUND=0 integ_purge trim" >&2; fail=1; }
exit $fail
