#!/bin/sh
# test-stress-drain.sh - run stress_threads under every drain strategy
# (and a few other settings).
#
# The same binary, seed and options under HAKMEM_DRAIN=owner, roundrobin,
# hybrid and adopt, plus once with an invalid value, which must print
# exactly one warning line naming the variable and the value and still run
# correctly.  Elsewhere a warning fails the run: the library fell back to a
# default (a strategy or tunable renamed), and the run did not test what it
# names.  Extra arguments go to stress_threads, e.g.
#   ./test-stress-drain.sh --seed 42 --ops 200000
set -u

builddir=${HAKMEM_TEST_BUILDDIR:-.}
stress=$builddir/stress_threads
[ -x "$stress" ] || { echo "$stress not built" >&2; exit 99; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-drain.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT

fail=0
# no_warning LABEL: fail if the run's stderr has a hakmem warning
no_warning() {
	if grep -q '^hakmem: warning' "$tmp/err"; then
		echo "FAIL: $1: hakmem warned (the setting did not take):" >&2
		grep '^hakmem: warning' "$tmp/err" >&2
		fail=1
	fi
}

for mode in owner roundrobin hybrid adopt; do
	echo "== HAKMEM_DRAIN=$mode"
	if ! HAKMEM_DRAIN=$mode "$stress" "$@" 2>"$tmp/err"; then
		cat "$tmp/err" >&2
		echo "FAIL: stress_threads under HAKMEM_DRAIN=$mode" >&2
		fail=1
	fi
	cat "$tmp/err"
	no_warning "HAKMEM_DRAIN=$mode"
done

# Other paths the defaults leave cold: the shared pool (MF2 off), purging
# at once and from the allocating threads (purged pages reused), no large
# span cache, no lease (pages may move on every adoption), the misuse
# checks off and paranoid (canaries after every block), the free-page pool
# kept at its minimum (pages purged and faulted back all the time).
for config in HAKMEM_MF2_ENABLE=0 "HAKMEM_PURGE_DELAY_MS=0 HAKMEM_BACKGROUND=0" \
	HAKMEM_LARGE_CACHE_MB=0 "HAKMEM_LEASE_US=0 HAKMEM_SWEEP_MS=1" \
	HAKMEM_CHECK=0 HAKMEM_CHECK=2 HAKMEM_PURGE_KEEP_PCT=0 \
	"HAKMEM_PROFILE=1 HAKMEM_PROFILE_SAMPLE=4096"; do
	echo "== $config"
	# shellcheck disable=SC2086 # config is a list of assignments
	if ! env $config "$stress" --generations 3 "$@" 2>"$tmp/err"; then
		cat "$tmp/err" >&2
		echo "FAIL: stress_threads under $config" >&2
		fail=1
	fi
	cat "$tmp/err"
	no_warning "$config"
done

echo "== HAKMEM_DRAIN=no-such-strategy"
if ! HAKMEM_DRAIN=no-such-strategy "$stress" --ops 5000 --generations 2 "$@" 2>"$tmp/err"; then
	cat "$tmp/err" >&2
	echo "FAIL: stress_threads with an invalid HAKMEM_DRAIN" >&2
	fail=1
fi
lines=$(grep -c . "$tmp/err")
if [ "$lines" -ne 1 ] || ! grep HAKMEM_DRAIN "$tmp/err" | grep -q no-such-strategy; then
	echo "FAIL: want one warning line naming HAKMEM_DRAIN and its value, got:" >&2
	cat "$tmp/err" >&2
	fail=1
fi
exit $fail
