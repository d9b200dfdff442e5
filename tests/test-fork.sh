#!/bin/sh
# test-fork.sh - test_fork at every HAKMEM_CHECK level: children forked
# (from the main thread and from others, while threads start, exit,
# allocate and free in every size range) that check what they inherited,
# allocate, start a thread, fork a grandchild, give everything back and
# exit; and posix_spawn, system() and popen() from the threaded parent.
# A child that aborts (a false report after fork), hangs, loses memory or
# leaves a stats segment fails the run, and so does anything hakmem prints.
# Extra arguments go to test_fork, e.g.  ./test-fork.sh --children 1000
set -u

builddir=${HAKMEM_TEST_BUILDDIR:-.}
prog=$builddir/test_fork
[ -x "$prog" ] || { echo "$prog not built" >&2; exit 99; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-fork.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT

fail=0
for level in 0 1 2; do
	echo "== HAKMEM_CHECK=$level"
	if ! HAKMEM_CHECK=$level "$prog" --children 200 --seed $((level + 11)) "$@" \
		>"$tmp/out" 2>"$tmp/err"; then
		echo "FAIL: test_fork at HAKMEM_CHECK=$level" >&2
		fail=1
	elif [ -s "$tmp/err" ]; then
		echo "FAIL: test_fork at HAKMEM_CHECK=$level wrote to stderr" >&2
		fail=1
	fi
	cat "$tmp/out" "$tmp/err"
done
exit $fail
