# bench-lib.sh - shared by the test-bench-*.sh scripts (sourced, not run).
# Run from the tests build directory (as `make check' does); HAKMEM_BENCH
# overrides the binary under test.  fail, pass, finish and need_python come
# from test-lib.sh.

. "${srcdir:-.}/test-lib.sh"

BENCH=${HAKMEM_BENCH:-../tools/hakmem-bench}
CRASHMALLOC=${BENCH_CRASHMALLOC_LIB:-$PWD/.libs/bench-crashmalloc.so}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/test-bench.XXXXXX") || exit 99
trap 'rm -rf "$TMP"' EXIT
skip_unless_built "$BENCH"

# expect_usage_error DESCRIPTION ARGS... : non-zero exit, exactly one line on
# stderr, nothing on stdout.
expect_usage_error() {
	desc=$1
	shift
	"$BENCH" "$@" >"$TMP/out" 2>"$TMP/err"
	rc=$?
	lines=$(wc -l <"$TMP/err")
	if [ "$rc" -eq 0 ]; then
		fail "$desc: exit status 0"
	elif [ "$lines" -ne 1 ]; then
		fail "$desc: $lines lines on stderr, want 1:"
		sed 's/^/    /' "$TMP/err"
	elif [ -s "$TMP/out" ]; then
		fail "$desc: output on stdout"
	else
		pass "$desc (status $rc): $(cat "$TMP/err")"
	fi
}

# A short run, so the tests stay quick (larson: 10 x 200 ops per thread).
QUICK="--seconds 0.3 --chunks 200 --rounds 10 --min 64 --max 4096 --timeout 30"
