#!/bin/sh
# hakmem-stat --watch: plain lines when not on a terminal (a header, then
# one line per sample), JSON lines with --json, a redrawn screen on a
# terminal, and a clean end: --count, the process exiting, SIGINT, SIGTERM.
. "${srcdir:-.}/stat-lib.sh"
need_python

start_child -t 3 -n 500
P=$CHILD_PID

# Not a terminal: header + one line per sample.
"$STAT" -w 0.2 -c 3 "$P" >"$TMP/out" 2>"$TMP/err"
rc=$?
if [ "$rc" -eq 0 ] && [ "$(wc -l <"$TMP/out")" -eq 4 ] && [ ! -s "$TMP/err" ] &&
	head -n 1 "$TMP/out" | grep -q '^time  *pid  *threads  *bytes_in_use  *allocs/s' &&
	[ "$(awk -v p="$P" 'NR > 1 && $2 == p && $1 ~ /^[0-9][0-9]:[0-9][0-9]:[0-9][0-9]$/' "$TMP/out" | wc -l)" -eq 3 ]; then
	pass "--watch -c 3 not on a terminal: header and 3 lines"
else
	fail "--watch -c 3 (status $rc):"
	cat "$TMP/out" "$TMP/err"
fi
if grep -q "$(printf '\033')" "$TMP/out"; then
	fail "escape sequences in output that is not a terminal"
fi

# --count alone implies --watch 1.
"$STAT" -c 2 "$P" >"$TMP/out" 2>"$TMP/err"
[ "$(wc -l <"$TMP/out")" -eq 3 ] && pass "-c 2 takes 2 samples" ||
	fail "-c 2: $(cat "$TMP/out" "$TMP/err")"

# JSON lines.
"$STAT" --json -w 0.2 -c 2 "$P" >"$TMP/out" 2>"$TMP/err"
if [ "$(wc -l <"$TMP/out")" -eq 2 ] && "$PY" -c '
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    assert d["pid"] == int(sys.argv[2]) and "bytes_in_use" in d and "classes" in d, d
    r = d["rates"]
    assert set(r) == {"seconds", "allocs", "frees", "remote_frees", "adoptions", "pages"}, r
' "$TMP/out" "$P"; then
	pass "--json --watch: one JSON object per sample"
else
	fail "--json --watch: $(cat "$TMP/out" "$TMP/err")"
fi

# On a terminal (a pty from python): redrawn in place.
"$PY" - "$STAT" "$P" >"$TMP/tty" 2>&1 <<'PYEOF'
import os, pty, sys, select
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], [sys.argv[1], "-w", "0.2", "-c", "2", sys.argv[2]])
out = b""
while True:
    r, _, _ = select.select([fd], [], [], 10)
    if not r:
        break
    try:
        chunk = os.read(fd, 65536)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
_, status = os.waitpid(pid, 0)
sys.stdout.write("status %d homes %d lines %d\n" % (os.waitstatus_to_exitcode(status),
      out.count(b"\x1b[H"), out.count(b"hakmem pid " + sys.argv[2].encode())))
PYEOF
if grep -q '^status 0 homes 2 lines 2$' "$TMP/tty"; then
	pass "--watch on a terminal redraws in place"
else
	fail "--watch on a terminal: $(cat "$TMP/tty")"
fi

# SIGINT and SIGTERM: "interrupted", status 0.
for sig in INT TERM; do
	"$STAT" -w 0.2 "$P" >"$TMP/out" 2>"$TMP/err" &
	W=$!
	wait_for "$TMP/out" "^[0-9]" || fail "watcher printed nothing"
	kill -"$sig" "$W"
	wait "$W"
	rc=$?
	if [ "$rc" -eq 0 ] && grep -q "^hakmem-stat: interrupted (SIG$sig)$" "$TMP/err"; then
		pass "SIG$sig stops --watch: $(cat "$TMP/err")"
	else
		fail "SIG$sig (status $rc): $(cat "$TMP/err")"
	fi
done

# The process exits: "process P exited", status 0.
"$STAT" -w 0.2 "$P" >"$TMP/out" 2>"$TMP/err" &
W=$!
wait_for "$TMP/out" "^[0-9]" || fail "watcher printed nothing"
stop_child
i=0
while kill -0 "$W" 2>/dev/null && [ "$i" -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
if kill -0 "$W" 2>/dev/null; then
	kill "$W"
	fail "--watch still running after the process exited"
fi
wait "$W"
rc=$?
if [ "$rc" -eq 0 ] && [ "$(cat "$TMP/err")" = "hakmem-stat: process $P exited" ]; then
	pass "--watch ends when the process exits: $(cat "$TMP/err")"
else
	fail "--watch at process exit (status $rc): $(cat "$TMP/err")"
fi

# Watching a pid that never had a segment fails at once.
start_helper
expect_error "--watch a process without hakmem" 1 "not using hakmem" -w 0.2 "$HELPER"
finish
