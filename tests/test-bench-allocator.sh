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
# the rate is the ops over the timed phase, which lasts at least --seconds
assert o["elapsed_sec"] >= o["seconds"], (o["elapsed_sec"], o["seconds"])
assert abs(o["ops"] - o["ops_per_sec"] * o["elapsed_sec"]) <= 1e-3 * o["ops"], \
    (o["ops"], o["ops_per_sec"], o["elapsed_sec"])
PYEOF
then
	pass "in-process JSON under glibc"
else
	fail "in-process JSON under glibc"
	cat "$TMP/err"
fi

# hakmem and glibc side by side, twice each, latency on: hakmem reports its
# counters, glibc does not.  Every run got the seed asked for, and its rate
# is its ops over its timed phase; hakmem (adopt, the default strategy)
# transferred pages between threads.
if env -u HAKMEM_DRAIN "$BENCH" larson $QUICK --seed 7 --allocator hakmem,glibc -n 2 \
	--latency --json >"$TMP/cmp.json" 2>"$TMP/err" &&
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
    assert r["seed"] == 7, r["seed"]
    assert r["elapsed_sec"] >= r["seconds"], (r["elapsed_sec"], r["seconds"])
    assert abs(r["ops"] - r["ops_per_sec"] * r["elapsed_sec"]) <= 1e-3 * r["ops"], \
        (r["ops"], r["ops_per_sec"], r["elapsed_sec"])
    if r["allocator"] == "hakmem":
        assert r["page_reuse_pct"] is not None and 0 <= r["page_reuse_pct"] <= 100
        assert r["pages_from_os"] > 0
        assert r["adoptions"] > 0, "no adoption under the default strategy (adopt)"
    else:
        assert r["page_reuse_pct"] is None
PYEOF
then
	pass "hakmem,glibc comparison JSON"
else
	fail "hakmem,glibc comparison JSON"
	cat "$TMP/err"
fi

# The strategy in the environment reaches the runs: under owner no page
# changes hands (adoptions 0), under adopt pages do.
for mode in owner adopt; do
	if HAKMEM_DRAIN=$mode "$BENCH" larson $QUICK --allocator hakmem --json \
		>"$TMP/$mode.json" 2>"$TMP/err" &&
		"$PY" - "$TMP/$mode.json" "$mode" <<'PYEOF'
import json, sys
o = json.load(open(sys.argv[1]))
mode = sys.argv[2]
r = o["runs"][0]
assert r["strategy"] == mode, r["strategy"]
if mode == "owner":
    assert r["adoptions"] == 0, "%d adoptions under owner" % r["adoptions"]
else:
    assert r["adoptions"] > 0, "no adoption under adopt"
PYEOF
	then
		pass "HAKMEM_DRAIN=$mode: adoptions as the strategy says"
	else
		fail "HAKMEM_DRAIN=$mode: adoptions"
		cat "$TMP/err"
	fi
done

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
