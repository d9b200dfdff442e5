#!/bin/sh
# test-mf2.sh - integ_mf2 in each of its modes: pages of exited threads are
# claimed (adopt), their emptied pages are adopted warm, and pending pages of an idle owner are adopted under the
# default strategy but left alone under HAKMEM_DRAIN=owner, and a live owner's
# pages emptied by remote frees come back at its next free.
set -u
builddir=${HAKMEM_TEST_BUILDDIR:-.}
prog=$builddir/integ_mf2
[ -x "$prog" ] || { echo "$prog not built" >&2; exit 99; }
fail=0

run() { # label, then the command
	label=$1
	shift
	echo "== $label"
	"$@"
	rc=$?
	case $rc in
	0) ;;
	77) echo "(skipped)" ;;
	*) echo "FAIL: $label (status $rc)" >&2; fail=1 ;;
	esac
}

run "integ_mf2 exited" "$prog" exited
run "integ_mf2 emptied" "$prog" emptied
run "integ_mf2 pending" "$prog" pending
run "HAKMEM_DRAIN=owner integ_mf2 pending" env HAKMEM_DRAIN=owner "$prog" pending
run "integ_mf2 refresh" env HAKMEM_BACKGROUND=0 "$prog" refresh
run "HAKMEM_DRAIN=owner integ_mf2 refresh" env HAKMEM_DRAIN=owner HAKMEM_BACKGROUND=0 "$prog" refresh
exit $fail
