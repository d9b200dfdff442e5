#!/bin/sh
# hakmem-bench larson does the published Larson's work, seen from outside the
# bench by bench-countmalloc.so (an LD_PRELOAD malloc that records who
# allocates and frees each block of the workload's sizes):
#  - the main thread allocates THREADS x CHUNKS blocks and reallocates 4x as
#    many before the threads start, and frees what is left at the end;
#  - each thread generation does ROUNDS x CHUNKS free+malloc pairs (all but
#    the last generation of each slice, which the stop cuts short);
#  - a thread's first free is of a block another thread allocated, and
#    first generations free the main thread's blocks (all T of them unless
#    one started after the stop and, as published, did nothing: at least
#    one is asked for);
#  - THREADS x CHUNKS blocks are live throughout;
#  - the JSON's ops, threads_created and warmup_ops are what happened.
# The checks run for each of --calls new (operator new[]/delete[], the
# default), sized and malloc.  churn, the thread-churn variant, is run the
# same way as a contrast: its threads allocate their own blocks.
. "${srcdir:-.}/bench-lib.sh"

COUNTMALLOC=${BENCH_COUNTMALLOC_LIB:-$PWD/.libs/bench-countmalloc.so}
if [ ! -e "$COUNTMALLOC" ]; then
	echo "SKIP: $COUNTMALLOC not built"
	[ "${CI:-}" = true ] && exit 1
	exit 77
fi

T=2 C=50 R=3
MIN=3001 MAX=3011 # no other malloc of the bench has a size in [MIN, MAX)
N=$((T * C))
PER_GEN=$((R * C))

# json_num KEY FILE: the number under KEY in a flat JSON object.
json_num() {
	sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p" "$2"
}

counted_run() {
	COUNTMALLOC_MIN=$MIN COUNTMALLOC_MAX=$MAX COUNTMALLOC_OUT=$TMP/count \
		LD_PRELOAD=$COUNTMALLOC "$BENCH" "$@" --threads $T --chunks $C \
		--rounds $R --min $MIN --max $MAX --seconds 0.3 --json >"$TMP/json" 2>"$TMP/err"
}

check_larson() {
	calls=$1
	if ! counted_run larson --calls "$calls"; then
		fail "$calls: larson --calls $calls under bench-countmalloc failed:"
		sed 's/^/    /' "$TMP/err"
		return
	fi
	ops=$(json_num ops "$TMP/json")
	gens=$(json_num threads_created "$TMP/json")
	warm=$(json_num warmup_ops "$TMP/json")

	# Main thread: N mallocs, then 4N free+malloc pairs; N frees at the end.
	main=$(awk '$2 == "main" { print $3, $4 }' "$TMP/count")
	if [ "$main" = "$((5 * N)) $((5 * N))" ]; then
		pass "$calls: the main thread allocated $N blocks and reallocated $((4 * N)) before the threads ($main)"
	else
		fail "$calls: main thread mallocs and frees: '$main', want '$((5 * N)) $((5 * N))'"
	fi
	if [ "$warm" = "$((5 * N))" ]; then
		pass "$calls: JSON warmup_ops = $warm"
	else
		fail "$calls: JSON warmup_ops = '$warm', want $((5 * N))"
	fi

	# Workers: one line per generation, each a whole generation but for the
	# last of each slice.
	awk -v per=$PER_GEN -v t=$T -v gens="$gens" -v ops="$ops" '
		$2 != "worker" { next }
		{ n++; sum += $3
		  if ($3 != $4) bad = bad " " $1 ": " $3 " mallocs, " $4 " frees;"
		  if ($3 > per) bad = bad " " $1 ": " $3 " ops, more than " per ";"
		  if ($3 == per) full++; else short++
		  if ($5 == "main") from_main++
		  else if ($5 != "other") bad = bad " " $1 ": first free of a block of " $5 ";" }
		END {
		  if (n != gens) bad = bad " " n " worker threads, JSON threads_created " gens ";"
		  if (sum != ops) bad = bad " " sum " worker ops, JSON ops " ops ";"
		  if (short > t) bad = bad " " short " generations short of " per " ops, at most " t ";"
		  if (full < 1) bad = bad " no whole generation seen;"
		  if (from_main < 1 || from_main > n) bad = bad " " from_main+0 " threads began on the main thread'"'"'s blocks;"
		  if (bad != "") { print "FAIL" bad; exit }
		  print "ok " n " generations, " full " of exactly " per " ops; first frees: " from_main " of main-thread blocks, the rest of other threads'"'"'"
		}' "$TMP/count" >"$TMP/verdict"
	if grep -q '^ok' "$TMP/verdict"; then
		pass "$calls: $(sed 's/^ok //' "$TMP/verdict")"
	else
		fail "$calls: workers:$(sed 's/^FAIL//' "$TMP/verdict")"
	fi

	live=$(awk '$1 == "live" { print $2 }' "$TMP/count")
	if [ "$live" = "$N" ]; then
		pass "$calls: $N blocks ($T threads x $C chunks) live at most"
	else
		fail "$calls: at most '$live' blocks live, want $N ($T x $C)"
	fi
}

for calls in new sized malloc; do
	check_larson $calls
done

# Contrast: churn's threads allocate their own blocks and the main thread
# none, so the checks above tell the two apart.
if counted_run churn; then
	main=$(awk '$2 == "main" { print $3 }' "$TMP/count")
	selfs=$(awk '$2 == "worker" && $5 == "self"' "$TMP/count" | wc -l)
	if [ "${main:-0}" -eq 0 ] && [ "$selfs" -ge "$T" ]; then
		pass "churn: no main-thread warm-up, $selfs threads began on their own blocks"
	else
		fail "churn: main thread mallocs '${main:-0}', threads beginning on their own blocks $selfs"
	fi
else
	fail "churn under bench-countmalloc failed: $(head -1 "$TMP/err")"
fi
finish
