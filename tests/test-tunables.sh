#!/bin/sh
# Every HAKMEM_* tunable: a bad value gets exactly one warning line naming
# the variable, the value and the default; a good value gets none.
set -u
lib=${HAKMEM_TEST_LIB:?HAKMEM_TEST_LIB is not set}
fail=0

# variable  bad value  default named in the warning  a good value
cases='
HAKMEM_DRAIN bogus adopt roundrobin
HAKMEM_DRAIN_PERIOD 0 4 8
HAKMEM_DRAIN_PERIOD abc 4 1
HAKMEM_LEASE_US -5 0 1000
HAKMEM_LEASE_US 99999999999 0 500
HAKMEM_SCAN_BUDGET 0 64 16
HAKMEM_QUIET_FREES 1000001 32 0
HAKMEM_QUIET_FREES x 32 8
HAKMEM_SWEEP_MS 60001 0 10
HAKMEM_PURGE_DELAY_MS 1e3 200 0
HAKMEM_PURGE_KEEP_PCT 1001 20 50
HAKMEM_MF2_ENABLE 2 1 0
HAKMEM_STATS yes 1 0
HAKMEM_SHOW_STATS on 0 0
HAKMEM_BACKGROUND true 1 0
HAKMEM_LARGE_CACHE_MB 65537 64 0
HAKMEM_LARGE_CACHE_MB "" 64 16
HAKMEM_SPAN_MAX_MB 257 32 0
HAKMEM_SPAN_MAX_MB -1 32 8
HAKMEM_SPAN_KEEP_PCT 1001 100 25
'

check() { # name value default good
	out=$(env "$1=$2" LD_PRELOAD="$lib" /bin/true 2>&1)
	n=$(printf '%s\n' "$out" | grep -c .)
	if [ "$n" -ne 1 ]; then
		echo "FAIL: $1='$2' gave $n lines: $out"; fail=1; return
	fi
	case "$out" in
	*"$1=$2"*"default $3"*) echo "ok: $out" ;;
	*) echo "FAIL: $1='$2': warning does not name variable, value and default: $out"; fail=1 ;;
	esac
	out=$(env "$1=$4" LD_PRELOAD="$lib" /bin/true 2>&1)
	if [ -n "$out" ]; then
		echo "FAIL: $1=$4 is valid but gave: $out"; fail=1
	fi
}

printf '%s\n' "$cases" | while read -r name bad dflt good; do
	[ -n "$name" ] || continue
	[ "$bad" = '""' ] && bad=
	check "$name" "$bad" "$dflt" "$good"
	[ $fail -eq 0 ] || exit 1
done || fail=1

# several bad values: one line each
out=$(env HAKMEM_DRAIN=x HAKMEM_LEASE_US=y LD_PRELOAD="$lib" /bin/true 2>&1)
[ "$(printf '%s\n' "$out" | grep -c 'hakmem: warning')" -eq 2 ] ||
	{ echo "FAIL: two bad variables: $out"; fail=1; }
exit $fail
