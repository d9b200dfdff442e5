#!/bin/sh
# hakmem-stat --heap: the sampled heap profile of a running process.
# heap-child (built with -g, no frame pointers) keeps known amounts live
# from keep_small() and keep_large() and leaks steadily from leak_step():
#  - at the default rate, --heap names the three functions with the file
#    and line of their malloc calls, and estimates their live bytes within
#    20% (at one sample per 2 MiB each site holds 320 samples or more:
#    20% is more than 3.5 standard deviations); --watch marks the leaker as growing, and only
#    it; --folded, --top and --min-bytes; --json throughout;
#  - churn() frees all it allocates: its stack holds nothing;
#  - with HAKMEM_PROFILE_SAMPLE=1 (every allocation) the figures are exact;
#  - the same for heap-child-plain, never linked against hakmem, started
#    with LD_PRELOAD;
#  - a damaged or hostile profile table, a process without a profile and
#    every usage mistake give one line on stderr and a non-zero exit.
. "${srcdir:-.}/stat-lib.sh"
need_python
# the profile on, at the default rate (it is off by default)
HAKMEM_PROFILE=1
export HAKMEM_PROFILE
unset HAKMEM_PROFILE_SAMPLE
PLAIN=${HEAP_CHILD_PLAIN:-./heap-child-plain}
LINKED=${HEAP_CHILD:-./heap-child}
skip_unless_built "$LINKED"
skip_unless_built "$PLAIN"
[ -f "$HAKMEM_TEST_LIB" ] || skip "HAKMEM_TEST_LIB not set (run by make check)"

# hp_start PRELOAD PROGRAM ARGS...: start a heap child (with LD_PRELOAD if
# PRELOAD is not empty), wait for its ready line.
hp_start() {
	pre=$1
	shift
	# emptied here, not by the child's redirection, which runs later in the
	# background: the previous child's ready line must not be seen
	: >"$TMP/child.out"
	if [ -n "$pre" ]; then
		LD_PRELOAD=$pre "$@" >"$TMP/child.out" 2>"$TMP/child.err" &
	else
		"$@" >"$TMP/child.out" 2>"$TMP/child.err" &
	fi
	CHILD_PID=$!
	if ! wait_for "$TMP/child.out" '^ready '; then
		echo "FAIL: heap child did not get ready"
		cat "$TMP/child.err"
		exit 1
	fi
}

# hp_leaked: let the child stop leaking and wait until it says how much.
hp_leaked() {
	kill -USR2 "$CHILD_PID"
	poll grep -q '^leaked ' "$TMP/child.out" ||
		{ fail "heap child never finished leaking"; cat "$TMP/child.err"; }
}

# check_sites DESC TOLERANCE FILE: the JSON profile in FILE names the three
# sites with heap-child.c and the lines of their malloc calls, and each
# estimate is within TOLERANCE (a fraction; 0: exact) of what the child says;
# churn's samples were all freed: it holds nothing.
check_sites() {
	"$PY" - "$1" "$2" "$3" "$TMP/child.out" <<'PYEOF'
import json, re, sys
desc, tol, path, child = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
text = open(child).read()
def num(k):
    return int(re.search(r"\b%s=(\d+)" % k, text).group(1))
want = {"keep_small": (num("keep_small"), num("keep_small_line")),
        "keep_large": (num("keep_large"), num("keep_large_line")),
        "leak_step": (num("bytes"), num("leak_line"))}
prof = json.load(open(path))
bad = 0
for fn, (bytes_, line) in want.items():
    got = 0
    for s in prof["sites"]:
        f = s["frames"][0] if s["frames"] else {}
        if f.get("function") == fn and f.get("line") == line and \
           f.get("file", "").endswith("heap-child.c"):
            got += s["live_bytes"]
    err = abs(got - bytes_) / bytes_
    ok = got > 0 and (err <= tol if tol else got == bytes_)
    print("%s: %s at heap-child.c:%d: estimated %d live bytes, holds %d (%+.1f%%)%s"
          % ("ok" if ok else "FAIL", desc, line, got, bytes_,
             100.0 * (got - bytes_) / bytes_, "" if ok else " <- not within %g%%" % (tol * 100)))
    bad += not ok
churn = [s for s in prof["sites"] if s["frames"] and s["frames"][0].get("function") == "churn"]
ok = bool(churn) and all(s["live_bytes"] == 0 and s["live_samples"] == 0 for s in churn) \
    and sum(s["alloc_samples"] for s in churn) > 0
print("%s: %s: churn (everything freed): %s" % ("ok" if ok else "FAIL", desc,
      ", ".join("live %d bytes in %d samples of %d" % (s["live_bytes"], s["live_samples"],
                s["alloc_samples"]) for s in churn) or "no site"))
bad += not ok
sys.exit(1 if bad else 0)
PYEOF
	[ $? -eq 0 ] || failures=$((failures + 1))
}

# check_watch DESC FILE: in the --watch --json lines of FILE, the leak_step
# site grows at every refresh after the first, and the kept sites never do.
check_watch() {
	"$PY" - "$1" "$2" <<'PYEOF'
import json, sys
desc, path = sys.argv[1], sys.argv[2]
lines = [json.loads(l) for l in open(path) if l.strip()]
bad = []
if len(lines) < 3:
    bad.append("%d refreshes, want 3" % len(lines))
for n, prof in enumerate(lines):
    for s in prof["sites"]:
        fn = s["frames"][0].get("function") if s["frames"] else ""
        if fn in ("keep_small", "keep_large") and s["growing"]:
            bad.append("refresh %d: %s marked growing" % (n, fn))
    if n == 0:
        continue
    leak = [s for s in prof["sites"] if s["frames"] and s["frames"][0].get("function") == "leak_step"]
    if not leak or not all(s["growing"] and s["growth_bytes"] > 0 for s in leak):
        bad.append("refresh %d: leak_step not marked growing" % n)
print("%s: %s: %s" % ("FAIL" if bad else "ok", desc, "; ".join(bad) or "leak_step marked growing at every refresh, the kept sites never"))
sys.exit(1 if bad else 0)
PYEOF
	[ $? -eq 0 ] || failures=$((failures + 1))
}

# run_profile DESC PRELOAD PROGRAM: the default rate, then every allocation.
run_profile() {
	rp=$1 pre=$2 prog=$3
	hp_start "$pre" "$prog"
	$TIMEOUT "$STAT" --heap --json --watch 0.4 --count 4 "$CHILD_PID" >"$TMP/watch.json" \
		2>"$TMP/watch.err" || fail "$rp: --heap --watch failed: $(cat "$TMP/watch.err")"
	$TIMEOUT "$STAT" --heap --watch 0.4 --count 2 "$CHILD_PID" >"$TMP/watch.txt" 2>&1
	hp_leaked
	check_watch "$rp: --watch" "$TMP/watch.json"
	# the text form marks the same site
	awk '/^#/ { g = /GROWING/; next } g && /^    / { print $1; g = 0 }' "$TMP/watch.txt" |
		grep -q '^leak_step+' && ! awk '/^#/ { g = /GROWING/; next } g && /^    / { print $1; g = 0 }' \
		"$TMP/watch.txt" | grep -q '^keep_' &&
		pass "$rp: text --watch marks leak_step GROWING" ||
		{ fail "$rp: text --watch does not mark leak_step alone:"; sed 's/^/    /' "$TMP/watch.txt" | head -40; }
	$TIMEOUT "$STAT" --heap --json --top 1000 "$CHILD_PID" >"$TMP/prof.json" 2>"$TMP/err" ||
		fail "$rp: --heap --json failed: $(cat "$TMP/err")"
	check_sites "$rp, default rate" 0.20 "$TMP/prof.json"
	$TIMEOUT "$STAT" --heap "$CHILD_PID" >"$TMP/prof.txt" 2>"$TMP/err"
	for fn in keep_small keep_large leak_step; do
		grep -q "^    $fn+0x[0-9a-f]* (heap-child.c:[0-9]*)$" "$TMP/prof.txt" &&
			pass "$rp: text names $fn with file:line" ||
			{ fail "$rp: text does not name $fn with file:line:"; head -30 "$TMP/prof.txt"; }
	done
	if [ -z "$pre" ]; then
		hostile
	fi
	stop_child
	HAKMEM_PROFILE_SAMPLE=1 hp_start "$pre" "$prog" 64
	hp_leaked
	$TIMEOUT "$STAT" --heap --json --top 100 "$CHILD_PID" >"$TMP/prof1.json" 2>"$TMP/err" ||
		fail "$rp: --heap --json failed: $(cat "$TMP/err")"
	check_sites "$rp, HAKMEM_PROFILE_SAMPLE=1" 0 "$TMP/prof1.json"
	stop_child
}

# The table of a live process, damaged in place (and restored): the
# profile's header and entries (lib/statseg.h) lie at the end of the segment.
PROF_SIZE=$((48 + 2 * 4096 + 4096 * 320))
patch_seg() {
	"$PY" - "$SHM/hakmem.$CHILD_PID" "$PROF_SIZE" "$1" <<'PYEOF'
import os, struct, sys
path, size, code = sys.argv[1], int(sys.argv[2]), sys.argv[3]
f = open(path, "r+b")
total = os.fstat(f.fileno()).st_size
prof = total - size
f.seek(prof)
b = bytearray(f.read(size))
stacks = 48 + 2 * 4096
# the first entry in use (order[0]), and the first empty one
first = stacks + struct.unpack_from("<H", b, 48)[0] * 320
empty = next(stacks + 320 * i for i in range(4096)
             if struct.unpack_from("<Q", b, stacks + 320 * i)[0] == 0)
exec(code)
f.seek(prof)
f.write(b)
PYEOF
}

hostile() {
	cp "$SHM/hakmem.$CHILD_PID" "$TMP/seg.orig"
	restore() { cp "$TMP/seg.orig" "$SHM/hakmem.$CHILD_PID"; }
	# offsets: sample_bytes 0, num_stacks 8, max_frames 12, stack_size 16,
	# samples 24, dropped 32, stacks_used 40, order 48; an entry: hash 0,
	# ready 8, depth 12, live_est 16, live_bytes 24, live_count 32,
	# total_est 40, total_bytes 48, total_count 56, frames 64
	for case in \
		"geometry|struct.pack_into('<I', b, 8, 1 << 31)" \
		"geometry|struct.pack_into('<I', b, 12, 1000)" \
		"geometry|struct.pack_into('<I', b, 16, 8)" \
		"sample interval|struct.pack_into('<Q', b, 0, 1 << 62)" \
		"stacks used|struct.pack_into('<Q', b, 40, 1 << 40)" \
		"bad ready flag|struct.pack_into('<I', b, first + 8, 7)" \
		"bad depth|struct.pack_into('<I', b, first + 12, 1000000)" \
		"bad depth|struct.pack_into('<I', b, first + 12, 0)" \
		"hash does not match|struct.pack_into('<Q', b, first + 64, 0x4141414141414141)" \
		"live figures above the totals|struct.pack_into('<Q', b, first + 32, 1 << 60)" \
		"ready but empty|struct.pack_into('<Q', b, first, 0)" \
		"counts in an empty entry|struct.pack_into('<Q', b, empty + 56, 5)"; do
		what=${case%%|*}
		patch_seg "${case#*|}" || fail "cannot patch the segment"
		expect_error "hostile profile table ($what)" 1 "damaged heap profile: .*$what" \
			--heap "$CHILD_PID"
		restore
	done
	# a table of random bytes
	patch_seg "b[:] = os.urandom(len(b))" || fail "cannot patch the segment"
	expect_error "hostile profile table (random bytes)" 1 "damaged heap profile" --heap "$CHILD_PID"
	restore
	"$STAT" --heap "$CHILD_PID" >/dev/null 2>&1 && pass "restored table reads again" ||
		fail "restored table does not read"
}

# Usage mistakes.
expect_error "--folded without --heap" 2 "--folded needs --heap" --folded 1
expect_error "--top without --heap" 2 "--top needs --heap" --top 3 1
expect_error "--min-bytes without --heap" 2 "--min-bytes needs --heap" --min-bytes 1 1
expect_error "--top 0" 2 "bad --top '0'" --heap --top 0 1
expect_error "--top x" 2 "bad --top 'x'" --heap --top x 1
expect_error "--min-bytes junk" 2 "bad --min-bytes '12Q'" --heap --min-bytes 12Q 1
expect_error "--min-bytes huge" 2 "bad --min-bytes" --heap --min-bytes 99999999999G 1
expect_error "--folded --json" 2 "cannot be combined" --heap --folded --json 1
expect_error "--heap --list" 2 "cannot be combined" --heap --list

# A process with the profile off: by default, and with no interval.
unset HAKMEM_PROFILE
hp_start "" "$LINKED" 64
expect_error "profile off by default" 1 "has no heap profile (start it with HAKMEM_PROFILE=1)" \
	--heap "$CHILD_PID"
hp_leaked
stop_child
HAKMEM_PROFILE=1
export HAKMEM_PROFILE
HAKMEM_PROFILE_SAMPLE=0 hp_start "" "$LINKED" 64
expect_error "HAKMEM_PROFILE_SAMPLE=0" 1 "has no heap profile" --heap "$CHILD_PID"
hp_leaked
stop_child

run_profile "linked" "" "$LINKED"
run_profile "LD_PRELOAD" "$HAKMEM_TEST_LIB" "$PLAIN"

# --folded, --top, --min-bytes (on a small run at every allocation).
HAKMEM_PROFILE_SAMPLE=1 hp_start "" "$LINKED" 64
hp_leaked
"$STAT" --heap --folded "$CHILD_PID" >"$TMP/folded" 2>"$TMP/err" || fail "--folded: $(cat "$TMP/err")"
if grep -vq '^[^ ]* [0-9][0-9]*$' "$TMP/folded"; then
	fail "--folded: a line is not 'frames bytes':"
	grep -v '^[^ ]* [0-9][0-9]*$' "$TMP/folded" | head -3
fi
for fn in keep_small keep_large leak_step; do
	grep -q ";main;$fn [0-9]*$" "$TMP/folded" && pass "--folded: ...;main;$fn BYTES" ||
		{ fail "--folded has no ...;main;$fn line:"; head -5 "$TMP/folded"; }
done
"$STAT" --heap --json "$CHILD_PID" >"$TMP/all.json" 2>&1
first=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["sites"][0]["frames"][0]["function"])' "$TMP/all.json")
"$STAT" --heap --top 1 "$CHILD_PID" >"$TMP/top" 2>&1
n=$(grep -c '^#' "$TMP/top")
[ "$n" -eq 1 ] && grep -q "^    $first+" "$TMP/top" && pass "--top 1: $first alone" ||
	fail "--top 1: $n sites, want $first alone: $(head -12 "$TMP/top")"
# one byte more than keep_small holds: keep_large and leak_step hold more
min=$(($(field keep_small "$TMP/child.out") + 1))
"$STAT" --heap --min-bytes "$min" "$CHILD_PID" >"$TMP/min" 2>&1
n=$(grep -c '^#' "$TMP/min")
[ "$n" -eq 2 ] && ! grep -q '^    keep_small' "$TMP/min" &&
	pass "--min-bytes $min: keep_large and leak_step" ||
	fail "--min-bytes $min: $n sites, want 2: $(grep -A1 '^#' "$TMP/min")"
stop_child
finish
