#!/bin/sh
# test-prof.sh - integ_prof (the entry points on blocks the heap profile
# samples) at every HAKMEM_CHECK level, with every allocation sampled
# (HAKMEM_PROFILE_SAMPLE=1) and with one sample per 4 KiB (a mix of
# sampled blocks and page blocks).
set -u
builddir=${HAKMEM_TEST_BUILDDIR:-.}
prog=$builddir/integ_prof
[ -x "$prog" ] || { echo "$prog not built" >&2; exit 99; }
fail=0
for level in 0 1 2; do
	for rate in 1 4096; do
		HAKMEM_CHECK=$level HAKMEM_PROFILE=1 HAKMEM_PROFILE_SAMPLE=$rate "$prog" ||
			{ echo "FAIL: HAKMEM_CHECK=$level HAKMEM_PROFILE_SAMPLE=$rate integ_prof" >&2; fail=1; }
	done
done
exit $fail
