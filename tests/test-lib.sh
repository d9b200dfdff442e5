# test-lib.sh - helpers shared by bench-lib.sh, stat-lib.sh and the
# sanitizer tests (sourced, not run): counting failures, skipping (loudly
# in CI), running sanitizer builds, and waiting for a condition.

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

# skip REASON...: exit 77 (skipped), except under CI=true (set by .ci/run),
# where it is a failure: CI runs on a machine set up by scripts/setup, and
# a test the project relies on that does not run there must be seen.
skip() {
	echo "SKIP: $*"
	if [ "${CI:-}" = true ]; then
		echo "FAIL: skipped under CI=true: this test must run in CI"
		exit 1
	fi
	exit 77
}

# skip_unless_built PROGRAM: skip if PROGRAM is not built.
skip_unless_built() {
	[ -x "$1" ] || skip "$1 not built (configure --disable-tools?)"
}

# need_python: set PY, or skip without python3.
need_python() {
	PY=${PYTHON3:-python3}
	command -v "$PY" >/dev/null 2>&1 || skip "python3 is needed to parse the output"
}

# sanitizer_runner PROBE: how to run the programs of a sanitizer build
# whose probe (a program that does nothing) is PROBE.  Sets RUNNER to ""
# when PROBE runs as it is, or to "setarch ARCH -R" (address randomisation
# off) when it only runs that way: GCC 12's ThreadSanitizer aborts at start
# on kernels with vm.mmap_rnd_bits=32, and runs without randomisation.
# Returns 1, after printing PROBE's output, when it runs neither way.
# shellcheck disable=SC2034 # RUNNER is for the caller
sanitizer_runner() {
	RUNNER=
	"$@" >"$1.log" 2>&1 && return 0
	norand="setarch $(uname -m) -R"
	if $norand "$@" >/dev/null 2>&1; then
		echo "note: $(basename "$1") does not run as it is here:"
		head -5 "$1.log"
		echo "note: running the sanitizer programs without address randomisation ($norand)"
		RUNNER=$norand
		return 0
	fi
	cat "$1.log"
	return 1
}

# probe_aslr_check: C code for a sanitizer probe.  With
# HAKMEM_TEST_SIMULATE_ASLR_ABORT=1 the probe aborts unless address
# randomisation is off, as on the kernels above, so that the fallback of
# sanitizer_runner can be tested where the sanitizers run as they are.
probe_aslr_check() {
	[ "${HAKMEM_TEST_SIMULATE_ASLR_ABORT:-0}" = 1 ] || return 0
	cat <<'EOF'
#include <stdlib.h>
#include <sys/personality.h>
__attribute__((constructor)) static void simulate_aslr_abort(void)
{
	if (!(personality(0xffffffff) & ADDR_NO_RANDOMIZE))
		abort();
}
EOF
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
