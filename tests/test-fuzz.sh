#!/bin/sh
# libFuzzer on tests/fuzz/fuzz_alloc.c: the library without the standard
# names (as test-tsan.sh builds it) and the target, compiled by clang with
# coverage (-fsanitize=fuzzer) and UndefinedBehaviorSanitizer, run for
# HAKMEM_FUZZ_SECONDS (60) from the seed corpus and the regression inputs.
# A crash, a timeout or a sanitizer report fails the test; the input that
# caused it is written to tests/fuzz-crashes/ and printed in base64.
# Skipped when no clang with libFuzzer is found (HAKMEM_FUZZ_CC: the
# compiler to use) or its programs run neither as they are nor without
# address randomisation (setarch -R); under CI=true such a skip is a
# failure (test-lib.sh).
#
# `make fuzz' runs it for FUZZ_SECONDS (600) with a corpus that is kept in
# tests/fuzz-corpus/ (HAKMEM_FUZZ_CORPUS) from one campaign to the next,
# and libFuzzer's output in tests/fuzz-campaign.log.
set -u
. "${HAKMEM_TEST_SRCDIR:?}/test-lib.sh"
src=${HAKMEM_TEST_SRCDIR:?}/..
build=${HAKMEM_TEST_BUILDDIR:?}/..
cc=${HAKMEM_FUZZ_CC:-clang}
seconds=${HAKMEM_FUZZ_SECONDS:-60}
rss_mb=${HAKMEM_FUZZ_RSS_MB:-2048} # libFuzzer stops at this RSS ("out-of-memory")
crashes=${HAKMEM_TEST_BUILDDIR}/fuzz-crashes
case $seconds in
0) echo "SKIP: HAKMEM_FUZZ_SECONDS=0"; exit 77 ;;
*[!0-9]*|'') echo "HAKMEM_FUZZ_SECONDS=$seconds is not a number of seconds"; exit 99 ;;
esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A target that libFuzzer can drive, with UBSan if the compiler has it.
{
	probe_aslr_check
	cat <<'EOF'
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }
EOF
} >"$tmp/probe.c"
ubsan=,undefined
if ! $cc -fsanitize=fuzzer$ubsan -o "$tmp/probe" "$tmp/probe.c" 2>/dev/null; then
	ubsan=
	$cc -fsanitize=fuzzer -o "$tmp/probe" "$tmp/probe.c" 2>/dev/null ||
		skip "$cc cannot build libFuzzer targets" \
			"(scripts/setup installs clang and libclang-rt-14-dev)"
fi
sanitizer_runner "$tmp/probe" -runs=1 || skip "a libFuzzer target built by $cc does not run"

# Coverage (fuzzer-no-link) in the library too; a sanitizer report aborts.
flags="-std=gnu11 -O1 -g -pthread -fno-strict-aliasing -ftls-model=initial-exec
	-fno-sanitize-recover=all -I$build -I$src/include -I$src/lib"
objs=""
for f in "$src"/lib/*.c; do
	o="$tmp/$(basename "$f" .c).o"
	# shellcheck disable=SC2086
	$cc $flags -fsanitize=fuzzer-no-link$ubsan -DHAVE_CONFIG_H -DHAK_NO_OVERRIDE \
		-c "$f" -o "$o" || exit 1
	objs="$objs $o"
done
# shellcheck disable=SC2086
$cc $flags -fsanitize=fuzzer$ubsan -o "$tmp/fuzz_alloc" "$src/tests/fuzz/fuzz_alloc.c" $objs -lrt -lunwind -lm ||
	exit 1

# New inputs go to the first corpus directory only; the others are read.
# make check runs with a fixed seed, so that a red run can be repeated;
# a campaign (make fuzz) with a random one (0), unless HAKMEM_FUZZ_SEED says.
corpus=$tmp/corpus
log=$tmp/log
seed=${HAKMEM_FUZZ_SEED:-1}
if [ -n "${HAKMEM_FUZZ_CORPUS:-}" ]; then
	corpus=$HAKMEM_FUZZ_CORPUS
	log=$HAKMEM_TEST_BUILDDIR/fuzz-campaign.log
	seed=${HAKMEM_FUZZ_SEED:-0}
fi
mkdir -p "$corpus" "$crashes" || exit 1
echo "fuzzing for $seconds s with $cc -fsanitize=fuzzer$ubsan ($(nproc) CPUs), seed $seed; corpus $corpus"
echo "crashes go to $crashes/; replay one with tests/fuzz/fuzz_replay --trace FILE"
[ "$log" = "$tmp/log" ] || echo "progress: tail -f $log"
# shellcheck disable=SC2086 # RUNNER: a command
$RUNNER "$tmp/fuzz_alloc" -seed="$seed" -max_total_time="$seconds" -max_len=4096 -timeout=20 \
	-rss_limit_mb="$rss_mb" \
	-print_final_stats=1 -artifact_prefix="$crashes/" \
	"$corpus" "$src/tests/fuzz/seed" "$src/tests/fuzz/regress" >"$log" 2>&1
rc=$?
grep -E '^#[0-9]+.*(DONE|INITED)|^stat::' "$log"
if [ $rc -ne 0 ]; then
	echo "FAIL: the fuzzer exited with $rc"
	grep -v -E '^#[0-9]+.*(NEW|REDUCE|pulse|RELOAD)' "$log" | tail -40
	for f in $(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log"); do
		echo "input $f (base64):"
		base64 "$f"
	done
	exit 1
fi
exit 0
