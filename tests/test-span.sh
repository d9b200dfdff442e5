#!/bin/sh
# test-span.sh - integ_span (the span tier: reuse, fit, calloc, realloc,
# threads, fork) under every check level, its keep bound with an hour's
# purge delay (what is beyond the bound goes back at once), and the debt
# (fresh pages taken while freed memory waits send as much of it back).
set -u
builddir=${HAKMEM_TEST_BUILDDIR:-.}
prog=$builddir/integ_span
[ -x "$prog" ] || { echo "$prog not built" >&2; exit 99; }
fail=0
for level in 0 1 2; do
	HAKMEM_CHECK=$level "$prog" all || { echo "FAIL: HAKMEM_CHECK=$level integ_span" >&2; fail=1; }
	HAKMEM_CHECK=$level HAKMEM_PURGE_DELAY_MS=3600000 HAKMEM_LARGE_CACHE_MB=8 \
		HAKMEM_SPAN_KEEP_PCT=100 "$prog" keep ||
		{ echo "FAIL: HAKMEM_CHECK=$level integ_span keep" >&2; fail=1; }
	HAKMEM_CHECK=$level HAKMEM_PURGE_DELAY_MS=3600000 HAKMEM_LARGE_CACHE_MB=8 \
		HAKMEM_SPAN_KEEP_PCT=1000 "$prog" debt ||
		{ echo "FAIL: HAKMEM_CHECK=$level integ_span debt" >&2; fail=1; }
done
exit $fail
