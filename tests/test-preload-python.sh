#!/bin/sh
# test-preload-python.sh - a threaded Python workload under LD_PRELOAD prints
# the same digests as without it, with Python's own small-object allocator
# and with PYTHONMALLOC=malloc (every object from malloc).  ctypes asks the
# preloaded library's counters whether the interpreter's mallocs reached it.
. "${HAKMEM_TEST_SRCDIR:-.}/preload-common.sh"

py=${PYTHON3:-}
[ -n "$py" ] || py=$(command -v python3 2>/dev/null) || true
[ -n "$py" ] && "$py" -c 'import threading, ctypes' 2>/dev/null || skip "python3 (with ctypes) not found"
# The interpreter itself, not a wrapper script (pyenv shims are slow).
py=$("$py" -c 'import sys; print(sys.executable)') && [ -x "$py" ] ||
	skip "cannot find the python3 executable"
require_preload_works
workload=$HAKMEM_TEST_SRCDIR/preload_workload.py
export PYTHONHASHSEED=0

# The interpreter's mallocs are counted by hakmem (struct hak_stats of
# <hakmem.h>: 4 uint32 fields, 14 uint64 fields, then the classes).
PYTHONMALLOC=malloc LD_PRELOAD=$lib "$py" - >"$tmp/ctypes.out" 2>&1 <<'PY' || {
import ctypes, sys
class ClassStats(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in
                ("block_size", "allocs", "frees", "in_use", "bytes_in_use")]
class Stats(ctypes.Structure):
    _fields_ = ([(n, ctypes.c_uint32) for n in ("version", "size", "num_classes", "threads")] +
                [(n, ctypes.c_uint64) for n in (
                    "bytes_in_use", "large_bytes_in_use", "mapped_bytes", "resident_bytes",
                    "pages_from_os", "pages_reused", "pending_enqueued", "pending_drained",
                    "adoptions", "lease_refusals", "remote_frees", "purged_bytes",
                    "large_allocs", "large_frees")] +
                [("classes", ClassStats * 48)])
lib = ctypes.CDLL(None)          # the process's global scope: the preload
st = Stats()
if lib.hak_stats_get(ctypes.byref(st), ctypes.sizeof(st)) != 0:
    sys.exit("hak_stats_get failed")
allocs = st.large_allocs + sum(st.classes[i].allocs for i in range(st.num_classes))
junk = [str(i) * 10 for i in range(100000)]
st2 = Stats()
lib.hak_stats_get(ctypes.byref(st2), ctypes.sizeof(st2))
allocs2 = st2.large_allocs + sum(st2.classes[i].allocs for i in range(st2.num_classes))
print("allocs at start", allocs, "after 100000 strings", allocs2)
if allocs < 1000 or allocs2 - allocs < 100000:
    sys.exit("the interpreter's allocations did not go through hakmem")
PY
	cat "$tmp/ctypes.out" >&2
	fail "python3 under LD_PRELOAD: hakmem's counters did not see its mallocs"
}
cat "$tmp/ctypes.out"

same_output python-default "$py" "$workload" --threads 3 --rounds 40
same_output python-malloc env PYTHONMALLOC=malloc "$py" "$workload" --threads 3 --rounds 40
# paranoid checks (canaries after every block): a real program's memory use
# must pass them, and its output must not change
same_output python-malloc-check2 env HAKMEM_CHECK=2 PYTHONMALLOC=malloc "$py" "$workload" \
	--threads 3 --rounds 20
grep -q '^total [0-9a-f]\{64\}$' "$tmp/python-malloc.hak" || fail "workload printed no total"
exit 0
