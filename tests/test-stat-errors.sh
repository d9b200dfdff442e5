#!/bin/sh
# hakmem-stat: every usage mistake, every process without a usable segment
# and every bad segment (random bytes, truncated, wrong magic, wrong
# layout version, damaged fields, wrong mode, another user's, not a file,
# a dead process's) gives one line on stderr and a non-zero exit.
. "${srcdir:-.}/stat-lib.sh"
need_python

# Usage errors: status 2.
expect_error "no arguments" 2 "no PID given"
expect_error "pid not a number" 2 "bad pid 'abc'" abc
expect_error "pid with junk" 2 "bad pid '12x'" 12x
expect_error "pid zero" 2 "bad pid '0'" 0
expect_error "pid too large" 2 "bad pid '99999999'" 99999999
expect_error "negative pid" 2 "" -- -5
expect_error "two pids" 2 "one PID at a time" 1 2
expect_error "unknown option" 2 "unknown option" --frobnicate 1
expect_error "missing interval" 2 "missing argument" 1 --watch
expect_error "zero interval" 2 "bad interval '0'" -w 0 1
expect_error "negative interval" 2 "bad interval '-1'" -w -1 1
expect_error "interval not a number" 2 "bad interval 'soon'" --watch soon 1
expect_error "absurd interval" 2 "bad interval '1e9'" -w 1e9 1
expect_error "nan interval" 2 "bad interval 'nan'" -w nan 1
expect_error "zero count" 2 "bad count '0'" -c 0 1
expect_error "count not a number" 2 "bad count 'x'" --count x 1
expect_error "--list with a pid" 2 "takes no PID" --list 1
expect_error "--list and --prune" 2 "cannot be combined" --list --prune
expect_error "--watch and --list" 2 "cannot be combined" -w 1 --list
expect_error "--prune and --json" 2 "no JSON" --prune --json
expect_error "--prune with a bad pid" 2 "bad pid" --prune 1x

# --help and --version work and exit 0.
"$STAT" --help >"$TMP/out" 2>&1 && grep -q -- "--watch=SECONDS" "$TMP/out" &&
	pass "--help" || fail "--help: $(cat "$TMP/out")"
"$STAT" --version >"$TMP/out" 2>&1 && grep -q "^hakmem-stat (hakmem) [0-9]" "$TMP/out" &&
	pass "--version: $(cat "$TMP/out")" || fail "--version: $(cat "$TMP/out")"

# Processes without a segment.
sleep 0 &
DEAD=$!
wait $DEAD
# pids wrap (pid_max is 32768 here): a process that died earlier with this
# pid, killed before it could remove its segment, would make it "stale"
rm -f "$SHM/hakmem.$DEAD"
expect_error "unknown pid" 1 "no such process $DEAD" "$DEAD"
start_helper
expect_error "pid without a segment" 1 "process $HELPER is not using hakmem" "$HELPER"
HAKMEM_STATS=0 "$CHILD" -t 1 -n 100 >"$TMP/child.out" 2>&1 &
CHILD_PID=$!
wait_for "$TMP/child.out" '^ready ' || fail "HAKMEM_STATS=0 child not ready"
expect_error "HAKMEM_STATS=0" 1 "process $CHILD_PID uses hakmem but publishes no stats segment" "$CHILD_PID"
stop_child

# A real segment to damage: copies are planted under the helper's pid (a
# live process that is not hakmem) or under a dead pid.
start_child -t 2 -n 100
REAL=$SHM/hakmem.$CHILD_PID
cp "$REAL" "$TMP/real" || fail "cannot copy $REAL"
FAKE=$SHM/hakmem.$HELPER

# plant FILE-CONTENTS-SOURCE PYTHON-PATCH: write $FAKE from a source file,
# patched by python statements on the bytearray b (struct imported).
plant() {
	rm -f "$FAKE"
	"$PY" -c '
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
exec(sys.argv[3])
open(sys.argv[2], "wb").write(b)
' "$1" "$FAKE" "$2" || fail "cannot plant $FAKE"
	chmod 600 "$FAKE"
}
# header offsets (lib/statseg.h): magic 0, layout 8, header_size 12,
# total_size 16, pid 24, num_classes 40, num_slots 44, slot_size 48,
# ready 52, comm 56, strategy 72, class_size[] 88
PIDPATCH="struct.pack_into('<q', b, 24, $HELPER)"

head -c 224624 /dev/urandom >"$TMP/random"
plant "$TMP/random" ""
expect_error "segment of random bytes" 1 "not a hakmem stats segment" "$HELPER"
head -c 100 /dev/urandom >"$TMP/random"
plant "$TMP/random" ""
expect_error "short segment of random bytes" 1 "not a hakmem stats segment" "$HELPER"
: >"$TMP/empty"
plant "$TMP/empty" ""
expect_error "empty segment" 1 "truncated: 0 bytes" "$HELPER"
plant "$TMP/real" "del b[4096:]; $PIDPATCH"
expect_error "truncated segment" 1 "truncated: 4096 bytes" "$HELPER"
plant "$TMP/real" "del b[12:]"
expect_error "segment cut inside the header" 1 "truncated: 12 bytes" "$HELPER"
plant "$TMP/real" "b[0:8] = b'NOTHAKMM'; $PIDPATCH"
expect_error "wrong magic" 1 "bad magic" "$HELPER"
plant "$TMP/real" "struct.pack_into('<I', b, 8, 7); $PIDPATCH"
expect_error "wrong layout version" 1 "layout version 7, this reader knows 4" "$HELPER"
plant "$TMP/real" "b += bytes(4096); $PIDPATCH"
expect_error "segment longer than its header says" 1 "object has" "$HELPER"
plant "$TMP/real" "struct.pack_into('<Q', b, 16, 1 << 40); $PIDPATCH"
expect_error "absurd total_size" 1 "total_size" "$HELPER"
plant "$TMP/real" "struct.pack_into('<I', b, 40, 1000); $PIDPATCH"
expect_error "too many classes" 1 "num_classes 1000" "$HELPER"
plant "$TMP/real" "struct.pack_into('<I', b, 44, 100000); $PIDPATCH"
expect_error "too many slots" 1 "num_slots 100000" "$HELPER"
plant "$TMP/real" "struct.pack_into('<I', b, 48, 8); $PIDPATCH"
expect_error "wrong slot size" 1 "slot_size 8" "$HELPER"
plant "$TMP/real" "struct.pack_into('<Q', b, 88 + 8, 1); $PIDPATCH"
expect_error "class sizes not increasing" 1 "size of class 1" "$HELPER"
plant "$TMP/real" "b[56:72] = b'x' * 16; $PIDPATCH"
expect_error "unterminated command name" 1 "unterminated" "$HELPER"
plant "$TMP/real" "struct.pack_into('<I', b, 52, 0); $PIDPATCH"
expect_error "ready flag not set" 1 "not ready" "$HELPER"
# A command name of any bytes (a quote, a backslash, bytes above 0x7f that
# are not UTF-8) still gives valid JSON, each byte standing for the code
# point of its value: sleep under that name, with hakmem preloaded.
if [ -n "${HAKMEM_TEST_LIB:-}" ] && [ -x /bin/sleep ]; then
	ODD=$TMP/$(printf 'q"x\\\377\303z')
	cp /bin/sleep "$ODD"
	LD_PRELOAD=$HAKMEM_TEST_LIB "$ODD" 20 &
	ODD_PID=$!
	HELPERS="$HELPERS $ODD_PID"
	i=0
	while [ ! -e "$SHM/hakmem.$ODD_PID" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
	if "$STAT" --json "$ODD_PID" >"$TMP/out" 2>"$TMP/err" &&
		"$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["comm"] == "q\"x\\\xff\xc3z", repr(d["comm"])
' "$TMP/out" 2>"$TMP/err"; then
		pass "a command name of any bytes: valid JSON, every byte kept"
	else
		fail "a command name of any bytes: $(cat "$TMP/err" "$TMP/out")"
	fi
	kill "$ODD_PID" 2>/dev/null
else
	fail "HAKMEM_TEST_LIB is not set: the command-name case cannot run"
fi
plant "$TMP/real" ""
expect_error "segment of another pid" 1 "written by pid $CHILD_PID, not $HELPER" "$HELPER"
plant "$TMP/real" "$PIDPATCH"
expect_error "valid segment the process does not map" 1 "does not map it" "$HELPER"
chmod 644 "$FAKE"
expect_error "mode 0644" 1 "mode 0644, not 0600" "$HELPER"
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
	plant "$TMP/real" "$PIDPATCH"
	chown nobody "$FAKE"
	expect_error "another user's segment" 1 "owned by another user" "$HELPER"
else
	echo "skip: another user's segment (needs root to chown)"
fi
rm -f "$FAKE"
mkfifo "$FAKE"
expect_error "a FIFO for a segment" 1 "not a regular file" "$HELPER"
rm -f "$FAKE"
ln -s "$REAL" "$FAKE"
expect_error "a symlink for a segment" 1 "symbolic link" "$HELPER"
rm -f "$FAKE"
mkdir "$FAKE"
expect_error "a directory for a segment" 1 "not a regular file" "$HELPER"
rmdir "$FAKE"

# A stale segment of a dead process: reported, then removed by --prune.
STALE=$SHM/hakmem.$DEAD
FAKE=$STALE
plant "$TMP/real" "struct.pack_into('<q', b, 24, $DEAD)"
expect_error "stale segment of a dead process" 1 "stale stats segment .* dead process $DEAD" "$DEAD"
"$STAT" --prune "$DEAD" "$CHILD_PID" >"$TMP/out" 2>"$TMP/err"
rc=$?
if [ "$rc" -eq 0 ] && [ ! -e "$STALE" ] && grep -q "removed $STALE" "$TMP/out" &&
	[ -e "$REAL" ] && grep -q "1 stale segment removed" "$TMP/out"; then
	pass "--prune removed the dead process's segment, kept the live one"
else
	fail "--prune (status $rc): $(cat "$TMP/out" "$TMP/err")"
fi
rm -f "$STALE"
"$STAT" "$CHILD_PID" >/dev/null 2>&1 || fail "the live child's segment is unreadable after --prune"
# (--prune without pids is not run here: it would also clean up the stale
# segments of other test runs on this machine)

# The snapshot tool itself is fine with the real segment all along.
"$STAT" "$CHILD_PID" >/dev/null 2>"$TMP/err" || fail "real segment: $(cat "$TMP/err")"
stop_child
finish
