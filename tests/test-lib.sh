# test-lib.sh - helpers shared by bench-lib.sh and stat-lib.sh (sourced, not
# run): counting failures, skipping, and waiting for a condition.

failures=0

fail() {
	echo "FAIL: $*"
	failures=$((failures + 1))
}

pass() {
	echo "ok: $*"
}

# finish: exit 1 if any check failed, else 0.
finish() {
	if [ "$failures" -ne 0 ]; then
		echo "$failures check(s) failed"
		exit 1
	fi
	exit 0
}

# skip_unless_built PROGRAM: exit 77 (skipped) if PROGRAM is not built.
skip_unless_built() {
	if [ ! -x "$1" ]; then
		echo "SKIP: $1 not built (configure --disable-tools?)"
		exit 77
	fi
}

# need_python: set PY, or exit 77 (skipped) without python3.
need_python() {
	PY=${PYTHON3:-python3}
	if ! command -v "$PY" >/dev/null 2>&1; then
		echo "SKIP: python3 is needed to parse the output"
		exit 77
	fi
}

# poll COMMAND...: until COMMAND succeeds (10 s at most); its stderr is
# dropped.
poll() {
	i=0
	while ! "$@" 2>/dev/null; do
		i=$((i + 1))
		[ "$i" -gt 200 ] && return 1
		sleep 0.05
	done
	return 0
}

# wait_for FILE PATTERN: until a line of FILE matches (10 s at most).
wait_for() {
	poll grep -q "$2" "$1"
}

# wait_gone PATH: until PATH no longer exists (10 s at most).
wait_gone() {
	poll test ! -e "$1"
}
