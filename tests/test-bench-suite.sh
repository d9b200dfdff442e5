#!/bin/sh
# hakmem-bench suite: bad options get one line; a short suite over two
# allocators writes a CSV and a JSON whose ratios are the medians' ratios to
# the baseline and whose geomean is the geometric mean of those ratios; a
# crashing allocator's runs are reported and fail the suite.
. "${srcdir:-.}/bench-lib.sh"
need_python

expect_usage_error "suite: unknown workload" suite -w simple,frobnicate
expect_usage_error "suite: workload twice" suite -w simple,simple
expect_usage_error "suite: zero runs" suite -n 0
expect_usage_error "suite: baseline not run" suite -a glibc,hakmem -b jemalloc
expect_usage_error "suite: plot file without a known suffix" suite --plot out.pdf
expect_usage_error "suite: stray argument" suite larson

SHORT="-n 2 -s 0.1 -w simple,xmalloc,false-sharing"
if "$BENCH" suite -a hakmem,glibc -b glibc $SHORT --csv "$TMP/s.csv" --json "$TMP/s.json" \
	>"$TMP/out" 2>"$TMP/err" &&
	"$PY" - "$TMP/s.csv" "$TMP/s.json" <<'PYEOF'
import csv, json, math, sys
rows = list(csv.DictReader(open(sys.argv[1])))
o = json.load(open(sys.argv[2]))
cells = [r for r in rows if r["workload"] != "geomean"]
assert len(cells) == 6, len(cells)
assert {r["workload"] for r in cells} == {"simple", "xmalloc", "false-sharing"}
med = {(r["workload"], r["allocator"]): float(r["ops_per_sec"]) for r in cells}
for r in cells:
    assert r["runs"] == "2", r
    want = med[(r["workload"], r["allocator"])] / med[(r["workload"], "glibc")]
    assert abs(float(r["ops_ratio"]) - want) < 1e-3 * want, (r, want)
    if r["allocator"] == "glibc":
        assert float(r["ops_ratio"]) == 1.0 and float(r["rss_ratio"]) == 1.0
g = {r["allocator"]: float(r["ops_ratio"]) for r in rows if r["workload"] == "geomean"}
ratios = [float(r["ops_ratio"]) for r in cells if r["allocator"] == "hakmem"]
want = math.exp(sum(map(math.log, ratios)) / len(ratios))
assert abs(g["hakmem"] - want) < 1e-3 * want, (g, want)
assert o["baseline"] == "glibc" and len(o["cells"]) == 6
jg = {x["allocator"]: x["ops_ratio"] for x in o["geomean"]}
assert abs(jg["hakmem"] - g["hakmem"]) < 1e-3 * g["hakmem"]
PYEOF
then
	pass "suite CSV and JSON: ratios to the baseline and their geomean"
else
	fail "suite CSV/JSON"
	cat "$TMP/out" "$TMP/err"
fi
if grep -q '^geomean' "$TMP/out" && grep -q '^xmalloc' "$TMP/out"; then
	pass "suite table"
else
	fail "suite table"
	cat "$TMP/out"
fi

# A plot, when gnuplot is there.
if command -v gnuplot >/dev/null 2>&1; then
	if "$BENCH" suite -a glibc -n 1 -s 0.05 -w simple,buffers --plot "$TMP/s.svg" \
		>/dev/null 2>"$TMP/err" && grep -q '<svg' "$TMP/s.svg"; then
		pass "suite plot"
	else
		fail "suite plot"
		cat "$TMP/err"
	fi
fi

# An allocator that crashes: its runs are listed, the table says so, exit 1.
BENCH_CRASHMALLOC=crash BENCH_CRASHMALLOC_AFTER=200 \
	"$BENCH" suite -a glibc,"$CRASHMALLOC" -n 1 -s 0.05 -w simple,xmalloc \
	>"$TMP/out" 2>"$TMP/err"
rc=$?
crashes=$(grep -c 'crashed' "$TMP/err")
if [ "$rc" -eq 1 ] && [ "$crashes" -eq 2 ] && grep -q 'failed' "$TMP/out"; then
	pass "crashing allocator: $crashes runs reported, status 1"
else
	fail "crashing allocator: status $rc, $crashes crash lines"
	cat "$TMP/out" "$TMP/err"
fi
finish
