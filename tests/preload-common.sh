# preload-common.sh - sourced by the test-preload-*.sh scripts.
#
# Needs HAKMEM_TEST_LIB (the built libhakmem.so; set by `make check'), makes
# a scratch directory $tmp removed on exit, and offers:
#   require_preload_works    fail unless a preloaded process maps libhakmem
#   same_output NAME CMD...  run CMD plain and under LD_PRELOAD with stdout
#                            to $tmp/NAME.plain and $tmp/NAME.hak; fail unless
#                            both succeed and their stdout and their stderr
#                            are identical
# A test with a missing prerequisite is skipped (skip, from test-lib.sh:
# exit 77, a failure under CI=true).

set -u
. "${HAKMEM_TEST_SRCDIR:-.}/test-lib.sh"
# real programs run with the heap profile on, at its default rate
HAKMEM_PROFILE=1
export HAKMEM_PROFILE
unset HAKMEM_PROFILE_SAMPLE

lib=${HAKMEM_TEST_LIB:-}
if [ -z "$lib" ]; then
	echo "HAKMEM_TEST_LIB is not set (run through make check)" >&2
	exit 99
fi
if [ ! -f "$lib" ]; then
	echo "$lib does not exist (shared library not built?)" >&2
	exit 99
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-preload.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT

# (replaces test-lib.sh's fail: here the first failure ends the test)
fail() {
	echo "FAIL: $*" >&2
	exit 1
}

require_preload_works() {
	LD_PRELOAD=$lib cat /proc/self/maps >"$tmp/maps" ||
		fail "cat under LD_PRELOAD=$lib failed"
	grep -q libhakmem "$tmp/maps" ||
		fail "a process run with LD_PRELOAD=$lib does not map libhakmem"
}

same_output() {
	name=$1
	shift
	"$@" >"$tmp/$name.plain" 2>"$tmp/$name.plain.err" ||
		fail "$name without hakmem failed: $(cat "$tmp/$name.plain.err")"
	LD_PRELOAD=$lib "$@" >"$tmp/$name.hak" 2>"$tmp/$name.hak.err" || {
		status=$?
		cat "$tmp/$name.hak.err" >&2
		fail "$name under LD_PRELOAD=$lib failed (status $status)"
	}
	if ! cmp -s "$tmp/$name.plain" "$tmp/$name.hak"; then
		diff "$tmp/$name.plain" "$tmp/$name.hak" | head -20 >&2
		fail "$name: output under hakmem differs from the plain run"
	fi
	[ -s "$tmp/$name.plain" ] || fail "$name produced no output"
	# hakmem says nothing unasked: a warning or a report on stderr fails
	if ! cmp -s "$tmp/$name.plain.err" "$tmp/$name.hak.err"; then
		diff "$tmp/$name.plain.err" "$tmp/$name.hak.err" | head -20 >&2
		fail "$name: stderr under hakmem differs from the plain run"
	fi
	echo "ok - $name: $(wc -c <"$tmp/$name.plain") bytes of output identical"
}
