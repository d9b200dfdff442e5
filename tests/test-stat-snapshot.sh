#!/bin/sh
# hakmem-stat PID on a live child that allocated known blocks in several
# threads: text and JSON figures match what it did, --list shows it, and
# the HAKMEM_SHOW_STATS summary at exit has the same lines as the tool.
. "${srcdir:-.}/stat-lib.sh"
need_python

start_child -t 4 -n 1000
P=$CHILD_PID
R=$TMP/child.out
if [ "$(field pid "$R")" != "$P" ]; then
	fail "child reports pid $(field pid "$R"), started $P"
fi

# Text snapshot.
if "$STAT" "$P" >"$TMP/text" 2>"$TMP/err"; then
	pass "snapshot of $P"
else
	fail "snapshot of $P: $(cat "$TMP/err")"
fi
head -n 1 "$TMP/text" | grep -q "^hakmem pid $P (.*stat-child), strategy " ||
	fail "first line: $(head -n 1 "$TMP/text")"
for label in "bytes in use" "mapped" "reserved" "resident (bound)" "resident (VmRSS)" \
	"pages from OS" "pages reused" "page reuse %" "pending enqueued" \
	"pending drained" "adoptions" "lease refusals" "remote frees" "purged" \
	"class     size        allocs         frees      in use    bytes in use" \
	"large        -"; do
	grep -qF "  $label" "$TMP/text" || fail "no '$label' line in the snapshot"
done
[ -s "$TMP/err" ] && fail "snapshot wrote to stderr: $(cat "$TMP/err")"

# JSON snapshot, checked against what the child did.
if "$STAT" --json "$P" >"$TMP/json" 2>"$TMP/err"; then
	pass "JSON snapshot of $P"
else
	fail "JSON snapshot: $(cat "$TMP/err")"
fi
[ "$(wc -l <"$TMP/json")" -eq 1 ] || fail "JSON snapshot is not one line"
if "$PY" - "$TMP/json" "$TMP/text" "$P" \
	"$(field threads "$R")" "$(field small "$R")" "$(field small_size "$R")" \
	"$(field mid "$R")" "$(field mid_size "$R")" "$(field large "$R")" \
	"$(field large_size "$R")" "$(field remote "$R")" <<'PYEOF'
import json, sys
path, text, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
threads, small, small_size, mid, mid_size, large, large_size, remote = map(int, sys.argv[4:])
d = json.load(open(path))
bad = []
def check(cond, what):
    if not cond:
        bad.append(what)
keys = ["pid", "comm", "strategy", "start_time_ns", "time_ns", "uptime_s", "threads",
        "heaps_created", "bytes_in_use", "mapped_bytes", "reserved_bytes", "resident_bound_bytes",
        "vm_rss_bytes", "unpurged_free_bytes", "purged_bytes", "pages_from_os",
        "pages_reused", "page_reuse_pct", "pending_enqueued", "pending_drained",
        "adoptions", "lease_refusals", "remote_frees", "allocs", "frees", "large",
        "classes"]
for k in keys:
    check(k in d, "field %s missing" % k)
check(d["pid"] == pid, "pid %s" % d["pid"])
check("stat-child" in d["comm"], "comm %r" % d["comm"])
# Exact where the child's blocks are alone: its threads, its two classes
# (glibc's own blocks - TLS vectors, stdio's buffer, the child's arrays -
# fall in others), its large blocks, its remote frees.  A figure counted
# twice fails; the main thread has a heap too, and a helper thread may.
check(threads + 1 <= d["threads"] <= threads + 2, "threads %d, want %d + main" % (d["threads"], threads))
check(threads + 1 <= d["heaps_created"] <= threads + 2, "heaps_created %d" % d["heaps_created"])
def cls(size):
    fits = [c for c in d["classes"] if c["size"] >= size]
    return min(fits, key=lambda c: c["size"]) if fits else None
s, m = cls(small_size), cls(mid_size)
check(s is not None and (s["allocs"], s["frees"], s["in_use"]) == (small, remote, small - remote),
      "class of %d: %r, want %d allocs, %d frees" % (small_size, s, small, remote))
check(m is not None and (m["allocs"], m["frees"], m["in_use"]) == (mid, 0, mid),
      "class of %d: %r, want %d allocs" % (mid_size, m, mid))
for c in d["classes"]:
    check(c["in_use"] == max(c["allocs"] - c["frees"], 0), "in_use of class %r" % c)
    check(c["bytes_in_use"] == c["in_use"] * c["size"], "bytes of class %r" % c)
L = d["large"]
check((L["allocs"], L["frees"], L["in_use"]) == (large, 0, large), "large %r, want %d" % (L, large))
# a large block's usable size is its size rounded up to its mapping
check(large * large_size <= L["bytes_in_use"] < 2 * large * large_size, "large bytes %r" % L)
want = (small - remote) * s["size"] + mid * m["size"] + L["bytes_in_use"]
check(want <= d["bytes_in_use"] <= want + (256 << 10),
      "bytes_in_use %d, the child's blocks %d" % (d["bytes_in_use"], want))
check(d["bytes_in_use"] == sum(c["bytes_in_use"] for c in d["classes"]) + L["bytes_in_use"],
      "bytes_in_use is not the sum of the classes and large")
check(d["allocs"] == sum(c["allocs"] for c in d["classes"]) + L["allocs"] and
      d["frees"] == sum(c["frees"] for c in d["classes"]) + L["frees"],
      "allocs/frees are not the sums of the classes and large")
check(d["remote_frees"] == remote, "remote_frees %d, the child made %d" % (d["remote_frees"], remote))
check(d["mapped_bytes"] >= d["bytes_in_use"], "mapped %d < in use" % d["mapped_bytes"])
# the arena span: reserved at start-up (16 GiB unless the kernel refused),
# less the arenas mapped in it since
check(0 < d["reserved_bytes"] <= 16 << 30 and d["reserved_bytes"] % (4 << 20) == 0,
      "reserved %d" % d["reserved_bytes"])
# nothing was unmapped yet: the pages counted came from mappings still held
check(d["pages_from_os"] > 0 and d["pages_from_os"] * 65536 + L["bytes_in_use"] <= d["mapped_bytes"],
      "pages_from_os %d (of 64 KiB) and large bytes %d do not fit in mapped %d" %
      (d["pages_from_os"], L["bytes_in_use"], d["mapped_bytes"]))
check(d["vm_rss_bytes"] is not None and d["vm_rss_bytes"] >= large * large_size,
      "VmRSS %r" % d["vm_rss_bytes"])
# the text snapshot shows the same figures (the child is idle)
t = open(text).read()
for label, key in (("bytes in use", "bytes_in_use"), ("remote frees", "remote_frees"),
                   ("pages from OS", "pages_from_os"), ("allocations", "allocs")):
    line = [l for l in t.splitlines() if l.startswith("  " + label + " ")]
    check(line and int(line[0].split()[len(label.split())]) == d[key],
          "text %r vs JSON %s=%d" % (line, key, d[key]))
if bad:
    print("\n".join(bad))
    sys.exit(1)
PYEOF
then
	pass "JSON figures match the child's allocations"
else
	fail "JSON figures"
fi

# --list shows it, as text and as JSON.
"$STAT" --list >"$TMP/list" 2>"$TMP/err" || fail "--list: $(cat "$TMP/err")"
if grep -Eq "^ *$P +[a-z-]*stat-child " "$TMP/list"; then
	pass "--list shows $P"
else
	fail "--list does not show $P:"
	cat "$TMP/list"
fi
"$STAT" --list --json >"$TMP/listj" 2>/dev/null
if "$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
p = [x for x in d["processes"] if x["pid"] == int(sys.argv[2])]
assert p and "stat-child" in p[0]["comm"] and p[0]["threads"] >= 4 and p[0]["bytes_in_use"] > 0, p
' "$TMP/listj" "$P"; then
	pass "--list --json shows $P"
else
	fail "--list --json"
fi
stop_child || fail "child exit status $?"

# HAKMEM_SHOW_STATS=1: the library's summary at exit has the lines of the
# tool's snapshot (figures aside).
HAKMEM_SHOW_STATS=1 "$CHILD" -t 2 -n 200 >"$TMP/child.out" 2>"$TMP/show" &
CHILD_PID=$!
wait_for "$TMP/child.out" '^ready ' || fail "second child not ready"
"$STAT" "$CHILD_PID" >"$TMP/text2" 2>&1 || fail "snapshot of the second child"
stop_child || fail "second child (HAKMEM_SHOW_STATS=1) exit status $?: $(head -5 "$TMP/show")"
# figures, sizes in parentheses and the class rows (which may change as
# the child frees) are left out of the comparison
norm() {
	sed -e 's/([^)]*)//g' -e 's/[0-9][0-9.]*//g' -e 's/  */ /g' "$1" |
		sed -n '1,/ class size allocs/p'
}
norm "$TMP/text2" >"$TMP/a"
norm "$TMP/show" >"$TMP/b"
if [ -s "$TMP/a" ] && cmp -s "$TMP/a" "$TMP/b" && grep -q '^ *large  *-' "$TMP/show"; then
	pass "HAKMEM_SHOW_STATS=1 prints the hakmem-stat summary ($(wc -l <"$TMP/a") lines)"
else
	fail "HAKMEM_SHOW_STATS output differs from hakmem-stat:"
	diff "$TMP/a" "$TMP/b" | sed 's/^/    /'
fi
finish
