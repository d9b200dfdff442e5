#!/bin/sh
# The sensitivity of integ_churn's memory bound: with every churn thread
# leaking a 1 KiB block (integ_churn --leak 1024: 9 MiB over the 9,000
# threads after the first measure), the check that RSS and mapped bytes stay
# bounded must fail - that check, not another one.  If it passes, the bound
# has become too loose to see a leak of this size.
set -u
builddir=${HAKMEM_TEST_BUILDDIR:-.}
prog=$builddir/integ_churn
[ -x "$prog" ] || { echo "$prog not built" >&2; exit 99; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-churn.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT

# HAKMEM_DRAIN: the bound holds for the default strategy only
env -u HAKMEM_DRAIN "$prog" --leak 1024 >"$tmp/out" 2>&1
rc=$?
cat "$tmp/out"
if [ "$rc" -eq 0 ]; then
	echo "FAIL: integ_churn --leak 1024 passed: its memory bound misses a 1 KiB leak per thread"
	exit 1
fi
if ! grep -q 'grew from .* MiB after .* (allowed: +' "$tmp/out"; then
	echo "FAIL: integ_churn --leak 1024 failed (status $rc), but not on its memory bound"
	exit 1
fi
echo "ok: integ_churn --leak 1024 fails on its memory bound"
exit 0
