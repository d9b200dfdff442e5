#!/bin/sh
# test-preload-sort.sh - sort(1) of a generated 5 MB file under LD_PRELOAD
# gives the same output as without it: single-threaded in memory, with
# threads, and as an external merge through temporary files.
. "${HAKMEM_TEST_SRCDIR:-.}/preload-common.sh"

command -v sort >/dev/null 2>&1 || skip "sort not found"
command -v awk >/dev/null 2>&1 || skip "awk not found"
require_preload_works

# Deterministic input: an LCG (products stay below 2^53, exact in awk's
# doubles), so every run sorts the same bytes.
awk 'BEGIN {
	x = 12345
	for (i = 0; i < 120000; i++) {
		line = ""
		n = 2 + int(x / 65536) % 7
		for (j = 0; j < n; j++) {
			x = (x * 69069 + 1) % 4294967296
			w = ""
			len = 1 + int(x / 65536) % 9
			for (k = 0; k < len; k++) {
				x = (x * 69069 + 1) % 4294967296
				w = w sprintf("%c", 97 + int(x / 65536) % 26)
			}
			line = line (j ? " " : "") w
		}
		x = (x * 69069 + 1) % 4294967296
		print line, int(x / 256) % 100000
	}
}' >"$tmp/input"
lines=$(wc -l <"$tmp/input")
[ "$lines" -eq 120000 ] || fail "generated $lines lines"

export LC_ALL=C
same_output sort-plain sort "$tmp/input"
same_output sort-numeric sort -k2,2n -k1,1r -s "$tmp/input"
same_output sort-parallel sort --parallel=2 -S 64M "$tmp/input"
mkdir "$tmp/t"
same_output sort-merge sort --parallel=2 -S 256K -T "$tmp/t" -u "$tmp/input"
# paranoid checks (canaries after every block) and no checks
same_output sort-check2 env HAKMEM_CHECK=2 sort --parallel=2 -S 64M "$tmp/input"
same_output sort-check0 env HAKMEM_CHECK=0 sort --parallel=2 -S 64M "$tmp/input"
[ "$(wc -l <"$tmp/sort-plain.hak")" -eq 120000 ] || fail "sort lost lines"
exit 0
