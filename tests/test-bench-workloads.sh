#!/bin/sh
# hakmem-bench run WORKLOAD: each workload's options are taken (and echoed in
# its JSON), bad ones refused in one line, and each does the work its
# manual page describes, as bench-countmalloc.so sees it from outside (an
# LD_PRELOAD malloc recording who allocates and frees blocks of a size range
# only the workload uses; see test-bench-larson.sh for larson's checks).
. "${srcdir:-.}/bench-lib.sh"
need_python

COUNTMALLOC=${BENCH_COUNTMALLOC_LIB:-$PWD/.libs/bench-countmalloc.so}
if [ ! -e "$COUNTMALLOC" ]; then
	echo "SKIP: $COUNTMALLOC not built"
	[ "${CI:-}" = true ] && exit 1
	exit 77
fi

# Bad input: one line, nothing run.
expect_usage_error "run without a workload" run
expect_usage_error "unknown workload" run frobnicate
expect_usage_error "another workload's option (xmalloc --chunks)" run xmalloc --chunks 10
expect_usage_error "xmalloc object too large" run xmalloc --size 5000
expect_usage_error "xmalloc bad size" run xmalloc --size big
expect_usage_error "false-sharing unknown mode" run false-sharing --mode sideways
expect_usage_error "false-sharing zero writes" run false-sharing --writes 0
expect_usage_error "false-sharing zero size" run false-sharing --size 0
expect_usage_error "simple takes no --threads" run simple --threads 2
expect_usage_error "simple size too large" run simple --size 1M
expect_usage_error "buffers unknown fill" run buffers --fill sometimes
expect_usage_error "buffers zero live" run buffers --live 0
expect_usage_error "buffers min above max" run buffers --min 4M --max 2M
expect_usage_error "buffers beyond 1 GiB" run buffers --max 2G
expect_usage_error "latency is larson's and churn's" run xmalloc --latency
expect_usage_error "stray argument" run simple 12

# Options reach the workload and come back in the JSON.
run_json() {
	"$BENCH" run "$@" --seconds 0.2 --json >"$TMP/j" 2>"$TMP/err" ||
		{ echo "exit $?: $(cat "$TMP/err")"; return 1; }
}
check_json() {
	desc=$1
	shift
	if "$PY" - "$TMP/j" "$@" <<'PYEOF'
import json, sys
o = json.load(open(sys.argv[1]))
for kv in sys.argv[2:]:
    k, v = kv.split("=")
    assert str(o[k]) == v, (k, o[k], v)
assert o["ops"] > 0 and o["ops_per_sec"] > 0 and o["peak_rss_kb"] > 0
PYEOF
	then
		pass "$desc"
	else
		fail "$desc: $(cat "$TMP/j")"
	fi
}
run_json xmalloc --threads 1 --size 0 &&
	check_json "xmalloc options" workload=xmalloc threads=1 size=0 threads_created=2
run_json false-sharing --threads 3 --mode active --size 16 --writes 10 &&
	check_json "false-sharing options" workload=false-sharing threads=3 mode=active size=16 \
		writes=10 threads_created=3
run_json simple --size 32 && check_json "simple options" workload=simple size=32
run_json buffers --threads 2 --live 3 --min 64K --max 128K --fill zero &&
	check_json "buffers options" workload=buffers threads=2 live=3 min=65536 max=131072 \
		fill=zero threads_created=2

# What each does, from outside.  counted LO HI ARGS...: run under
# bench-countmalloc recording sizes in [LO, HI).  (buffers runs 1 s: its
# check needs each thread to have filled each of its slots.)
counted() {
	lo=$1 hi=$2
	shift 2
	COUNTMALLOC_MIN=$lo COUNTMALLOC_MAX=$hi COUNTMALLOC_OUT=$TMP/count \
		LD_PRELOAD=$COUNTMALLOC "$BENCH" run "$@" >/dev/null 2>"$TMP/err" ||
		{ fail "$*: exit status $?: $(head -1 "$TMP/err")"; return 1; }
}
# verdict DESC AWK-PROGRAM: the program prints "ok ..." or "FAIL ...".
verdict() {
	desc=$1
	v=$(awk "$2" "$TMP/count")
	case $v in
	ok*) pass "$desc: ${v#ok }" ;;
	*) fail "$desc: ${v#FAIL }" ;;
	esac
}

# xmalloc: producers only allocate, consumers only free: every free remote.
# (64-byte objects: nothing else allocates that size in a worker thread.
# Which consumers get batches is up to the scheduler: at least one must.)
if counted 64 65 xmalloc --threads 2 --size 64 --seconds 0.2; then
	verdict "xmalloc: all frees remote" '
		$2 == "worker" && $3 > 0 && $4 == 0 { prod++ }
		$2 == "worker" && $3 == 0 && $4 > 0 { cons++; freed += $4; if ($5 != "other") bad = 1 }
		$2 == "worker" && $3 > 0 && $4 > 0 { mixed++ }
		END { if (prod == 2 && cons >= 1 && cons <= 2 && !mixed && !bad)
			print "ok 2 producers that never free; " cons " consumer(s) freed " freed " blocks, none their own"
		      else print "FAIL producers " prod+0 ", consumers " cons+0 ", threads doing both " mixed+0 }'
fi

# false-sharing, passive: the main thread allocates one object per thread
# and each thread's first free is of it; active: nothing of the main thread.
if counted 3001 3002 false-sharing --threads 3 --size 3001 --writes 1 --seconds 0.2; then
	verdict "false-sharing passive: threads start on the main thread's objects" '
		$2 == "main" { m = $3 }
		$2 == "worker" { w++; if ($5 == "main") frommain++ }
		END { if (m == 3 && w == 3 && frommain == 3)
			print "ok main allocated 3, each of 3 threads freed one of them first"
		      else print "FAIL main mallocs " m+0 ", threads " w+0 ", starting on main blocks " frommain+0 }'
fi
if counted 3001 3002 false-sharing --threads 3 --size 3001 --writes 1 --mode active --seconds 0.2; then
	verdict "false-sharing active: threads only free their own" '
		$2 == "main" { m = $3 }
		$2 == "worker" { w++; if ($5 == "self") own++ }
		END { if (m + 0 == 0 && w == 3 && own == 3)
			print "ok no main-thread objects, 3 threads freeing their own"
		      else print "FAIL main mallocs " m+0 ", threads " w+0 ", starting on own blocks " own+0 }'
fi

# simple: one thread, 1600 blocks live at the deepest.
if counted 3001 12005 simple --size 3001 --seconds 0.2; then
	verdict "simple: main thread only, depth 1600" '
		$2 == "worker" { w++ }
		$1 == "live" { live = $2 }
		END { if (w + 0 == 0 && live == 1600) print "ok no other thread, at most 1600 live"
		      else print "FAIL other threads " w+0 ", at most " live " live" }'
fi

# buffers: THREADS x LIVE buffers live at most, each thread on its own.
if counted 3001 3011 buffers --threads 2 --live 3 --min 3001 --max 3010 --seconds 1; then
	verdict "buffers: 2 threads x 3 live" '
		$2 == "worker" { w++; if ($5 != "self") bad++ }
		$1 == "live" { live = $2 }
		END { if (w == 2 && live == 6 && !bad) print "ok 2 threads, 6 buffers live at most"
		      else print "FAIL threads " w+0 ", at most " live " live, foreign frees " bad+0 }'
fi
finish
