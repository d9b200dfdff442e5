#!/bin/sh
# The segment's life: created 0600 at start, removed at normal exit, absent
# with HAKMEM_STATS=0, a forked child publishes its own segment while the
# parent's keeps describing the parent, and children that _exit or exec at
# once leave none.
. "${srcdir:-.}/stat-lib.sh"
need_python

# Normal exit (return from main) removes the segment.
"$CHILD" --exit -t 2 -n 100 >"$TMP/out" 2>&1 || fail "stat-child --exit: $(cat "$TMP/out")"
P=$(field pid "$TMP/out")
if [ -n "$P" ] && [ ! -e "$SHM/hakmem.$P" ]; then
	pass "segment of $P removed at normal exit"
else
	fail "segment $SHM/hakmem.$P left after normal exit"
	rm -f "$SHM/hakmem.$P"
fi

# While running: a 0600 object of ours.
start_child -t 2 -n 100
S=$SHM/hakmem.$CHILD_PID
mode=$(stat -c '%a %u' "$S" 2>/dev/null)
if [ "$mode" = "600 $(id -u)" ]; then
	pass "segment $S is mode 0600, ours"
else
	fail "segment $S: mode/owner '$mode'"
fi
stop_child
wait_gone "$S" && pass "removed after SIGUSR1 and return from main" || fail "$S left behind"

# HAKMEM_STATS=0: nothing published.
HAKMEM_STATS=0 "$CHILD" -t 1 -n 100 >"$TMP/child.out" 2>&1 &
CHILD_PID=$!
wait_for "$TMP/child.out" '^ready ' || fail "HAKMEM_STATS=0 child not ready"
[ -e "$SHM/hakmem.$CHILD_PID" ] && fail "HAKMEM_STATS=0 published $SHM/hakmem.$CHILD_PID" ||
	pass "HAKMEM_STATS=0: no segment"
stop_child

# fork: the child has its own segment; the parent's still describes the
# parent (its pid, its live threads).
start_child -t 4 -n 200 --fork
P=$CHILD_PID
wait_for "$TMP/child.out" '^child ' || fail "forked child not ready"
C=$(sed -n 's/^child pid=\([0-9]*\).*/\1/p' "$TMP/child.out")
if [ -n "$C" ] && [ -e "$SHM/hakmem.$C" ] && [ -e "$SHM/hakmem.$P" ]; then
	pass "forked child $C has its own segment"
else
	fail "forked child '$C' has no segment of its own"
fi
"$STAT" --json "$C" >"$TMP/cj" 2>"$TMP/err" || fail "snapshot of the forked child: $(cat "$TMP/err")"
"$STAT" --json "$P" >"$TMP/pj" 2>"$TMP/err" || fail "snapshot of the parent: $(cat "$TMP/err")"
"$PY" - "$TMP/cj" "$TMP/pj" "$C" "$P" >"$TMP/py" 2>&1 <<'PYEOF'
import json, sys
c, p = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
C, P = int(sys.argv[3]), int(sys.argv[4])
bad = []
if c["pid"] != C: bad.append("child segment says pid %d" % c["pid"])
if p["pid"] != P: bad.append("parent segment says pid %d" % p["pid"])
if c["threads"] != 1: bad.append("forked child shows %d threads, has 1" % c["threads"])
if p["threads"] < 4:
    bad.append("parent shows %d live threads, has 5: the fork child wrote into the parent's segment" % p["threads"])
k = [x for x in c["classes"] if x["size"] >= 200]
if not k or min(k, key=lambda x: x["size"])["allocs"] < 300:
    bad.append("forked child's 300 blocks of 200 bytes not counted")
print("\n".join(bad))
sys.exit(1 if bad else 0)
PYEOF
if [ $? -eq 0 ]; then
	pass "parent and forked child each describe themselves"
else
	fail "$(cat "$TMP/py")"
fi
kill -USR1 "$C"
wait_gone "$SHM/hakmem.$C" && pass "forked child's segment removed at its exit(0)" ||
	fail "forked child's segment $SHM/hakmem.$C left behind"
[ -e "$SHM/hakmem.$P" ] && pass "parent's segment still there" ||
	fail "parent's segment removed by the child's exit"
stop_child
wait_gone "$SHM/hakmem.$P" || fail "parent's segment left behind"

# Children that allocate and then _exit or exec at once, as a shell's do,
# leave no segment behind (nothing would ever remove it).  A child that the
# machine stalls for 0.1 s names its segment, as it should: so up to three
# rounds, one of which must leave nothing.
round=1
while :; do
	start_child -t 1 -n 100 --fork-brief
	wait_for "$TMP/child.out" '^brief ' || fail "--fork-brief children did not finish"
	left=
	for c in $(sed -n 's/^brief //p' "$TMP/child.out"); do
		[ -e "$SHM/hakmem.$c" ] && left="$left $c"
	done
	for c in $left; do rm -f "$SHM/hakmem.$c"; done
	[ -e "$SHM/hakmem.$CHILD_PID" ] || fail "the parent's segment went away with its children"
	stop_child
	if [ -z "$left" ] && grep -q '^brief [0-9]' "$TMP/child.out"; then
		pass "short-lived fork children (_exit, exec) left no segment (round $round)"
		break
	fi
	if [ "$round" -eq 3 ]; then
		fail "short-lived fork children left segments:$left"
		break
	fi
	round=$((round + 1))
done

# Segments that processes which ended with _exit or were killed left
# behind: a hakmem process that starts removes those of its user's dead
# processes once they are a minute old, and nothing else.
sleep 0 &
D1=$!
wait $D1
sleep 0 &
D2=$!
wait $D2
start_helper
OLD=$SHM/hakmem.$D1 YOUNG=$SHM/hakmem.$D2 ALIVE=$SHM/hakmem.$HELPER
printf 'x' >"$OLD" && printf 'x' >"$YOUNG" && printf 'x' >"$ALIVE" ||
	fail "cannot plant segments"
touch -d '2 minutes ago' "$OLD" "$ALIVE"
OTHER=
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
	sleep 0 &
	D3=$!
	wait $D3
	OTHER=$SHM/hakmem.$D3
	printf 'x' >"$OTHER" && chown nobody "$OTHER" && touch -d '2 minutes ago' "$OTHER"
fi
"$CHILD" --exit -t 1 -n 100 >"$TMP/out" 2>&1 || fail "stat-child --exit: $(cat "$TMP/out")"
[ ! -e "$OLD" ] && pass "a dead process's old segment removed by the next start" ||
	fail "$OLD (dead pid, 2 minutes old) still there"
[ -e "$YOUNG" ] && pass "a dead process's segment younger than a minute kept" ||
	fail "$YOUNG (dead pid, new) removed"
[ -e "$ALIVE" ] && pass "an old segment under a live pid kept" ||
	fail "$ALIVE (live pid) removed"
if [ -n "$OTHER" ]; then
	[ -e "$OTHER" ] && pass "another user's old segment kept" || fail "$OTHER (nobody's) removed"
fi
rm -f "$OLD" "$YOUNG" "$ALIVE" $OTHER
finish
