# stat-lib.sh - shared by the test-stat-*.sh scripts (sourced, not run).
# Run from the tests build directory (as `make check' does); HAKMEM_STAT
# overrides the binary under test, STAT_CHILD the child program.  fail,
# pass, finish, need_python, wait_for and wait_gone come from test-lib.sh.

. "${srcdir:-.}/test-lib.sh"

STAT=${HAKMEM_STAT:-../tools/hakmem-stat}
CHILD=${STAT_CHILD:-./stat-child}
SHM=/dev/shm
TMP=$(mktemp -d "${TMPDIR:-/tmp}/test-stat.XXXXXX") || exit 99
TIMEOUT=
command -v timeout >/dev/null 2>&1 && TIMEOUT="timeout 20"
CHILD_PID=
HELPERS=

skip_unless_built "$STAT"
[ -d "$SHM" ] || skip "no $SHM"

cleanup() {
	[ -n "$CHILD_PID" ] && kill -USR1 "$CHILD_PID" 2>/dev/null
	for p in $HELPERS; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

# field NAME FILE: the value of NAME=value on the first line of FILE
# that has it.
field() {
	sed -n "s/.*[ ]$1=\([0-9]*\).*/\1/p" "$2" | head -n 1
}

# start_child ARGS...: run stat-child in the background, wait for its
# "ready" line; sets CHILD_PID (the process that allocates: the libtool
# wrapper execs it, so it is $! as well).
start_child() {
	# emptied first: the background job's redirection truncates the file
	# only once it runs, and the previous child's ready line must not count
	: >"$TMP/child.out"
	# every free of worker 0's blocks stays a remote free (no takeover of
	# the quiet worker's pages), so that the child's count is exact
	HAKMEM_QUIET_FREES=0 "$CHILD" "$@" >"$TMP/child.out" 2>"$TMP/child.err" &
	CHILD_PID=$!
	if ! wait_for "$TMP/child.out" '^ready '; then
		echo "FAIL: stat-child did not get ready"
		cat "$TMP/child.err"
		exit 1
	fi
}

# stop_child: let the child free everything and return from main.
stop_child() {
	kill -USR1 "$CHILD_PID" 2>/dev/null
	wait "$CHILD_PID" 2>/dev/null
	rc=$?
	CHILD_PID=
	return $rc
}

# start_helper: a process that is not hakmem (sleep); sets HELPER.
start_helper() {
	sleep 60 &
	HELPER=$!
	# a segment left under this pid by a dead process is not the helper's
	rm -f "$SHM/hakmem.$HELPER"
	HELPERS="$HELPERS $HELPER"
}

# expect_error DESCRIPTION STATUS PATTERN ARGS...: exit status STATUS,
# exactly one line on stderr matching PATTERN, nothing on stdout.
expect_error() {
	desc=$1 want=$2 pat=$3
	shift 3
	# a bound on the run: a planted FIFO, say, must not hang the test
	$TIMEOUT "$STAT" "$@" >"$TMP/out" 2>"$TMP/err"
	rc=$?
	lines=$(wc -l <"$TMP/err")
	if [ "$rc" -ne "$want" ]; then
		fail "$desc: exit status $rc, want $want: $(cat "$TMP/err")"
	elif [ "$lines" -ne 1 ]; then
		fail "$desc: $lines lines on stderr, want 1:"
		sed 's/^/    /' "$TMP/err"
	elif [ -s "$TMP/out" ]; then
		fail "$desc: output on stdout"
	elif ! grep -q -- "$pat" "$TMP/err"; then
		fail "$desc: stderr does not match '$pat': $(cat "$TMP/err")"
	else
		pass "$desc (status $rc): $(cat "$TMP/err")"
	fi
}
