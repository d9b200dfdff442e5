#!/bin/sh
# ThreadSanitizer: the library built without the standard names (as with
# --disable-override), the threaded stress test built on the hak_ API, run
# under every drain strategy.  Any report fails the test.  When a
# ThreadSanitizer program does not run as it is (GCC 12's aborts at start on
# kernels with vm.mmap_rnd_bits=32), the programs run without address
# randomisation (setarch -R).  Skipped when the compiler cannot build
# ThreadSanitizer programs or they run neither way; under CI=true that
# skip is a failure (test-lib.sh).
set -u
. "${HAKMEM_TEST_SRCDIR:?}/test-lib.sh"
src=${HAKMEM_TEST_SRCDIR:?}/..
build=${HAKMEM_TEST_BUILDDIR:?}/..
cc=${CC_FOR_TESTS:-cc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

flags="-std=gnu11 -O1 -g -pthread -fsanitize=thread -I$build -I$src/include -I$src/lib -I$src/tests"
{ probe_aslr_check; echo 'int main(void) { return 0; }'; } >"$tmp/probe.c"
$cc -fsanitize=thread -o "$tmp/probe" "$tmp/probe.c" 2>/dev/null ||
	skip "$cc cannot build ThreadSanitizer programs"
sanitizer_runner "$tmp/probe" || skip "a ThreadSanitizer program built by $cc does not run"

objs=""
for f in "$src"/lib/*.c; do
	o="$tmp/$(basename "$f" .c).o"
	# shellcheck disable=SC2086
	$cc $flags -DHAVE_CONFIG_H -DHAK_NO_OVERRIDE -c "$f" -o "$o" || exit 1
	objs="$objs $o"
done
# shellcheck disable=SC2086
$cc $flags -DHAVE_CONFIG_H -include "$src/tests/hak-api.h" -o "$tmp/stress" \
	"$src/tests/stress_threads.c" "$src/tests/testutil.c" $objs -lrt -lunwind -lm || exit 1

fail=0
# the four strategies, then adopt with the paranoid checks (canaries) and
# the free-page pool at its minimum (purges racing with allocation), and
# adopt with a takeover of a quiet holder's pages at its every pause
# (HAKMEM_QUIET_FREES=1: the per-heap shut racing with the holder's gate)
for s in owner roundrobin hybrid adopt adopt-check2 adopt-quiet1; do
	extra=
	[ "$s" = adopt-check2 ] && { s=adopt; extra="HAKMEM_CHECK=2 HAKMEM_PURGE_KEEP_PCT=0"; }
	[ "$s" = adopt-quiet1 ] && { s=adopt; extra="HAKMEM_QUIET_FREES=1"; }
	label="$s${extra:+ $extra}"
	# short runs: TSan slows the program ten times; the sweeper and a short
	# drain period exercise the paths between threads
	# shellcheck disable=SC2086 # extra: assignments; RUNNER: a command
	if env $extra HAKMEM_DRAIN=$s HAKMEM_DRAIN_PERIOD=2 HAKMEM_SWEEP_MS=2 \
		TSAN_OPTIONS="halt_on_error=0 exitcode=66" \
		$RUNNER "$tmp/stress" --quiet --threads 6 --generations 3 --seed 5 >"$tmp/log" 2>&1; then
		echo "ok: $label"
	else
		echo "FAIL: $label"
		head -60 "$tmp/log"
		fail=1
	fi
	if grep -q "WARNING: ThreadSanitizer" "$tmp/log"; then
		echo "FAIL: $label: ThreadSanitizer report"
		fail=1
	fi
	# a warning: a setting fell back to its default, e.g. a renamed strategy
	if grep -q "^hakmem: warning" "$tmp/log"; then
		echo "FAIL: $label: hakmem warned (the setting did not take):"
		grep "^hakmem: warning" "$tmp/log"
		fail=1
	fi
done
exit $fail
