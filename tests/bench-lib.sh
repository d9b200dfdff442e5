# bench-lib.sh - shared by the test-bench-*.sh scripts (sourced, not run).
# Run from the tests build directory (as `make check' does); HAKMEM_BENCH
# overrides the binary under test.

BENCH=${HAKMEM_BENCH:-../tools/hakmem-bench}
CRASHMALLOC=${BENCH_CRASHMALLOC_LIB:-$PWD/.libs/bench-crashmalloc.so}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/test-bench.XXXXXX") || exit 99
trap 'rm -rf "$TMP"' EXIT
failures=0

if [ ! -x "$BENCH" ]; then
	echo "SKIP: $BENCH not built (configure --disable-tools?)"
	exit 77
fi

fail() {
	echo "FAIL: $*"
	failures=$((failures + 1))
}

pass() {
	echo "ok: $*"
}

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

finish() {
	if [ "$failures" -ne 0 ]; then
		echo "$failures check(s) failed"
		exit 1
	fi
	exit 0
}

need_python() {
	PY=${PYTHON3:-python3}
	if ! command -v "$PY" >/dev/null 2>&1; then
		echo "SKIP: python3 is needed to parse the output"
		exit 77
	fi
}

# A short Larson run, so the tests stay quick.
QUICK="--seconds 0.3 --chunks 200 --rounds 2000 --min 64 --max 4096 --timeout 30"
