#!/bin/sh
# test-mf2.sh - integ_mf2 in each of its modes: pages of exited threads are
# claimed (adopt), their emptied pages are adopted warm, and pending pages of an idle owner are adopted under the
# default strategy but left alone under HAKMEM_DRAIN=owner, a quiet owner's
# held pages are taken over by the thread that frees into them (also while
# the owner's slow paths race with it), and a live owner's pages emptied by
# remote frees come back at its next free.
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

# emptied, pending and refresh leave a live owner's pages to it (no
# takeover of a quiet holder's pages: HAKMEM_QUIET_FREES=0), which is what
# they check; quiet checks the takeover, and its absence at 0
run "integ_mf2 exited" "$prog" exited
run "integ_mf2 emptied" env HAKMEM_QUIET_FREES=0 "$prog" emptied
run "integ_mf2 pending" env HAKMEM_QUIET_FREES=0 "$prog" pending
run "HAKMEM_DRAIN=owner integ_mf2 pending" env HAKMEM_DRAIN=owner "$prog" pending
run "integ_mf2 quiet" "$prog" quiet
run "HAKMEM_QUIET_FREES=0 integ_mf2 quiet" env HAKMEM_QUIET_FREES=0 "$prog" quiet
run "integ_mf2 quietback" "$prog" quietback
run "HAKMEM_QUIET_FREES=1 integ_mf2 quietrace" env HAKMEM_QUIET_FREES=1 "$prog" quietrace
run "integ_mf2 refresh" env HAKMEM_QUIET_FREES=0 HAKMEM_BACKGROUND=0 "$prog" refresh
run "HAKMEM_DRAIN=owner integ_mf2 refresh" env HAKMEM_DRAIN=owner HAKMEM_BACKGROUND=0 "$prog" refresh
exit $fail
