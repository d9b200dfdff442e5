#!/bin/sh
# hakmem-bench sweep end to end under hakmem: the default strategy list,
# two thread counts and a swept tunable; the CSV and the JSON parse and hold
# every point, with hakmem's counters.
. "${srcdir:-.}/bench-lib.sh"
need_python

"$BENCH" sweep $QUICK --threads 2,4 --periods 2,8 \
	--strategies owner,roundrobin,hybrid@4,adopt HAKMEM_LEASE_US=0,1000 \
	--csv "$TMP/s.csv" --json "$TMP/s.json" >"$TMP/out" 2>"$TMP/err"
rc=$?
if [ "$rc" -ne 0 ]; then
	fail "sweep exited with status $rc"
	cat "$TMP/out" "$TMP/err"
	finish
fi
# owner, roundrobin@2, roundrobin@8, hybrid@4, adopt = 5, x 2 threads x 2 leases
if "$PY" - "$TMP/s.csv" "$TMP/s.json" 20 <<'PYEOF'
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1])))
pts = json.load(open(sys.argv[2]))
want = int(sys.argv[3])
assert len(rows) == want and len(pts) == want, (len(rows), len(pts))
cols = ["strategy", "period", "threads", "ops_per_sec", "page_reuse_pct",
        "pending_enqueued", "pending_drained", "adoptions", "peak_rss_kb"]
for c in cols + ["HAKMEM_LEASE_US"]:
    assert c in rows[0], c
    assert c in pts[0], c
seen = set()
for r, p in zip(rows, pts):
    assert r["error"] == "" and p["error"] is None
    assert float(r["ops_per_sec"]) > 0 and p["ops_per_sec"] > 0
    assert p["page_reuse_pct"] is not None and 0 <= p["page_reuse_pct"] <= 100
    assert int(r["peak_rss_kb"]) > 0
    seen.add((p["strategy"], p["period"], p["threads"], p["HAKMEM_LEASE_US"]))
    # The strategy column is the sweep's own label: the library's counters
    # say whether the child ran it.  Only adopt moves pages between threads.
    assert int(r["adoptions"]) == p["adoptions"]
    if p["strategy"] == "adopt":
        assert p["adoptions"] > 0, ("no adoption under adopt", p)
    else:
        assert p["adoptions"] == 0, ("adoptions under " + p["strategy"], p)
assert len(seen) == want, seen
strategies = {s for s, _, _, _ in seen}
assert strategies == {"owner", "roundrobin", "hybrid", "adopt"}, strategies
assert {per for s, per, _, _ in seen if s == "roundrobin"} == {2, 8}
assert {per for s, per, _, _ in seen if s == "hybrid"} == {4}
assert {per for s, per, _, _ in seen if s in ("owner", "adopt")} == {None}
PYEOF
then
	pass "sweep CSV and JSON hold all 20 points"
else
	fail "sweep CSV/JSON"
	cat "$TMP/out"
fi
if [ "$(grep -c -E '^(owner|roundrobin|hybrid|adopt) ' "$TMP/out")" -eq 20 ]; then
	pass "sweep table has 20 rows"
else
	fail "sweep table"
	cat "$TMP/out"
fi

# A plot, when gnuplot is there.
if command -v gnuplot >/dev/null 2>&1; then
	if "$BENCH" sweep $QUICK --strategies owner,roundrobin@2,roundrobin@4 \
		--plot "$TMP/s.svg" >/dev/null 2>"$TMP/err" && grep -q '<svg' "$TMP/s.svg"; then
		pass "sweep plot"
	else
		fail "sweep plot"
		cat "$TMP/err"
	fi
fi
# Without gnuplot on PATH: one line, non-zero exit.
if PATH=/nonexistent "$BENCH" sweep $QUICK --strategies owner --plot "$TMP/x.svg" \
	>/dev/null 2>"$TMP/err"; then
	fail "plot without gnuplot succeeded"
elif grep -q 'gnuplot is not installed' "$TMP/err"; then
	pass "plot without gnuplot: $(cat "$TMP/err")"
else
	fail "plot without gnuplot"
	cat "$TMP/err"
fi
finish
