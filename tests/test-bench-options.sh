#!/bin/sh
# hakmem-bench: every bad option or value gets one line on stderr and a
# non-zero exit, and nothing is run.
. "${srcdir:-.}/bench-lib.sh"

expect_usage_error "no command"
expect_usage_error "unknown command" frobnicate
expect_usage_error "unknown option" larson --frobnicate
expect_usage_error "unknown option (sweep)" sweep --frobnicate
expect_usage_error "bad number" larson --threads 4x
expect_usage_error "negative number" larson --chunks -3
expect_usage_error "bad size" larson --max 12Q
expect_usage_error "bad seconds" larson --seconds soon
expect_usage_error "min larger than max" larson --min 4096 --max 64
expect_usage_error "zero threads" larson --threads 0
expect_usage_error "zero threads (sweep)" sweep --threads 4,0
expect_usage_error "too many threads" larson --threads 100000
expect_usage_error "missing value" larson --threads
expect_usage_error "stray argument" larson 12
expect_usage_error "timeout shorter than run" larson --seconds 10 --timeout 5
expect_usage_error "--runs without --allocator" larson -n 3
expect_usage_error "unknown strategy" sweep --strategies owner,greedy
expect_usage_error "period on owner" sweep --strategies owner@4
expect_usage_error "bad period" sweep --strategies roundrobin@0
expect_usage_error "bad tunable" sweep FOO=1,2
expect_usage_error "tunable without values" sweep HAKMEM_LEASE_US=
expect_usage_error "drain through --set" sweep --set HAKMEM_DRAIN=owner
expect_usage_error "baseline not run" larson --allocator glibc --baseline jemalloc
# larson draws with the published generator (714025 values) from an int seed.
expect_usage_error "slice beyond the generator" larson --chunks 714026
expect_usage_error "size range beyond the generator" larson --min 16 --max 1M
expect_usage_error "seed beyond an int" larson --seed 2147483648
expect_usage_error "unknown --calls" larson --calls calloc
expect_usage_error "--calls is larson's" churn --calls malloc
expect_usage_error "unknown option (churn)" churn --frobnicate
expect_usage_error "--check is larson's (churn always checks)" churn --check
expect_usage_error "zero rounds (churn)" churn --rounds 0
expect_usage_error "stray argument (churn)" churn 12

# Help works: exit status 0, nothing on stderr, the options listed.
expect_help() { # COMMAND OPTION
	"$BENCH" "$1" --help >"$TMP/out" 2>"$TMP/err"
	rc=$?
	if [ "$rc" -ne 0 ]; then
		fail "$1 --help: exit status $rc"
	elif [ -s "$TMP/err" ]; then
		fail "$1 --help: output on stderr: $(head -3 "$TMP/err")"
	elif ! grep -q -- "$2" "$TMP/out"; then
		fail "$1 --help does not list $2"
	else
		pass "$1 --help"
	fi
}
expect_help larson --allocator
expect_help churn "in a thread's life"
expect_help sweep --strategies
finish
