#!/bin/sh
# hakmem-bench larson --allocator: allocators are found or refused in one
# line; a comparison run gives parseable JSON with the documented keys.
. "${srcdir:-.}/bench-lib.sh"
need_python

expect_usage_error "missing allocator library" larson --allocator "$TMP/nonexistent.so"
expect_usage_error "unknown allocator name" larson --allocator nosuchmalloc
expect_usage_error "empty allocator list" larson --allocator ,

# In-process run, JSON: the counters are null under glibc.
if "$BENCH" larson $QUICK --json >"$TMP/one.json" 2>"$TMP/err" &&
	"$PY" - "$TMP/one.json" <<'PYEOF'
import json, sys
o = json.load(open(sys.argv[1]))
for k in ("ops_per_sec", "peak_rss_kb", "page_reuse_pct", "pending_enqueued",
          "pending_drained", "adoptions", "allocator", "threads", "min", "max",
          "seconds", "seed", "strategy", "lease_refusals", "remote_frees",
          "pages_from_os", "pages_reused", "workload", "check", "warmup_ops",
          "threads_created"):
    assert k in o, k
assert o["ops_per_sec"] > 0 and o["peak_rss_kb"] > 0
assert o["workload"] == "larson" and o["check"] == 0 and o["rounds"] == 10
assert o["calls"] == "new", o["calls"]
assert o["page_reuse_pct"] is None and o["adoptions"] is None, "counters under glibc"
assert o["min"] == 64 and o["max"] == 4096 and o["threads"] == 4
PYEOF
then
	pass "in-process JSON under glibc"
else
	fail "in-process JSON under glibc"
	cat "$TMP/err"
fi

# hakmem and glibc side by side, twice each, latency on: hakmem reports its
# counters, glibc does not.
if "$BENCH" larson $QUICK --allocator hakmem,glibc -n 2 --latency --json \
	>"$TMP/cmp.json" 2>"$TMP/err" &&
	"$PY" - "$TMP/cmp.json" <<'PYEOF'
import json, sys
o = json.load(open(sys.argv[1]))
assert o["baseline"] == "hakmem"
names = [a["allocator"] for a in o["allocators"]]
assert names == ["hakmem", "glibc"], names
assert all(a["failed"] == 0 and a["median_ops_per_sec"] > 0 for a in o["allocators"])
assert abs(o["allocators"][0]["ratio"] - 1.0) < 1e-9
runs = o["runs"]
assert [r["allocator"] for r in runs] == ["hakmem", "glibc", "hakmem", "glibc"]
for r in runs:
    assert r["malloc_p50_ns"] is not None and r["free_p999_ns"] is not None
    assert r["malloc_p50_ns"] <= r["malloc_p99_ns"] <= r["malloc_p999_ns"] <= r["malloc_max_ns"]
    if r["allocator"] == "hakmem":
        assert r["page_reuse_pct"] is not None and 0 <= r["page_reuse_pct"] <= 100
        assert r["pages_from_os"] > 0
    else:
        assert r["page_reuse_pct"] is None
PYEOF
then
	pass "hakmem,glibc comparison JSON"
else
	fail "hakmem,glibc comparison JSON"
	cat "$TMP/err"
fi

# churn and larson --check compare the same way; the child does the workload
# it was asked for.
if "$BENCH" churn $QUICK --allocator glibc --json >"$TMP/churn.json" 2>"$TMP/err" &&
	"$BENCH" larson $QUICK --check --calls sized --allocator glibc --json \
		>"$TMP/check.json" 2>>"$TMP/err" &&
	"$PY" - "$TMP/churn.json" "$TMP/check.json" <<'PYEOF'
import json, sys
churn = json.load(open(sys.argv[1]))["runs"][0]
check = json.load(open(sys.argv[2]))["runs"][0]
assert churn["workload"] == "churn" and churn["check"] == 1 and churn["warmup_ops"] == 0
assert churn["calls"] == "malloc"
assert check["workload"] == "larson" and check["check"] == 1 and check["calls"] == "sized"
assert check["warmup_ops"] == 5 * 4 * 200, check["warmup_ops"]
PYEOF
then
	pass "churn and larson --check in child processes"
else
	fail "churn and larson --check in child processes"
	cat "$TMP/err"
fi

# Text table names every allocator; an uninstalled peer is skipped with a note.
if "$BENCH" larson $QUICK --allocator glibc,hakmem >"$TMP/table" 2>"$TMP/err" &&
	grep -q '^glibc ' "$TMP/table" && grep -q '^hakmem ' "$TMP/table"; then
	pass "comparison table"
else
	fail "comparison table"
	cat "$TMP/table" "$TMP/err"
fi
finish
