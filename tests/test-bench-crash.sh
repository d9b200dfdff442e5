#!/bin/sh
# hakmem-bench: a child whose allocator crashes or hangs is reported in one
# line, the other runs go on, and the exit status is non-zero.
# Uses bench-crashmalloc.so (built by `make check').
. "${srcdir:-.}/bench-lib.sh"

[ -r "$CRASHMALLOC" ] || skip "$CRASHMALLOC not built"

# Crash: glibc still runs and is reported; the crash names the signal.
BENCH_CRASHMALLOC=crash BENCH_CRASHMALLOC_AFTER=2000 \
	"$BENCH" larson $QUICK --allocator glibc,"$CRASHMALLOC" -n 2 >"$TMP/out" 2>"$TMP/err"
rc=$?
crashes=$(grep -c 'bench-crashmalloc.so crashed: killed by signal 11' "$TMP/err")
if [ "$rc" -ne 0 ] && [ "$crashes" -eq 2 ] && grep -q '^glibc .* 2 ' "$TMP/out" &&
	grep -q 'all 2 runs failed' "$TMP/out"; then
	pass "crashing allocator reported (status $rc)"
else
	fail "crashing allocator: status $rc, $crashes crash lines"
	cat "$TMP/out" "$TMP/err"
fi

# Hang: killed at the timeout.
start=$(date +%s)
BENCH_CRASHMALLOC=hang BENCH_CRASHMALLOC_AFTER=2000 \
	"$BENCH" larson --seconds 0.3 --chunks 200 --rounds 10 --timeout 2 \
	--allocator "$CRASHMALLOC" >"$TMP/out" 2>"$TMP/err"
rc=$?
took=$(($(date +%s) - start))
if [ "$rc" -ne 0 ] && grep -q 'timed out after 2 s' "$TMP/err" && [ "$took" -lt 20 ]; then
	pass "hanging allocator killed after the timeout (${took}s)"
else
	fail "hanging allocator: status $rc after ${took}s"
	cat "$TMP/out" "$TMP/err"
fi

# Sweep: every point crashes; each is listed, the table and exit say so.
BENCH_CRASHMALLOC=crash BENCH_CRASHMALLOC_AFTER=2000 \
	"$BENCH" sweep $QUICK --allocator "$CRASHMALLOC" --strategies owner,adopt \
	--csv "$TMP/s.csv" >"$TMP/out" 2>"$TMP/err"
rc=$?
if [ "$rc" -ne 0 ] && grep -q '2 of 2 points failed' "$TMP/err" &&
	[ "$(grep -c FAILED "$TMP/out")" -eq 2 ] && [ "$(wc -l <"$TMP/s.csv")" -eq 3 ]; then
	pass "crashing sweep points listed (status $rc)"
else
	fail "crashing sweep: status $rc"
	cat "$TMP/out" "$TMP/err"
fi
finish
