#!/usr/bin/env python3
"""preload_workload.py - a threaded Python workload with deterministic output.

Several threads build dicts, strings, lists and sets from seeded generators,
pass objects to a consumer thread through queues (so that objects made in
one thread die in another), and each prints a digest of what it computed.
The output depends only on the seed, never on the interleaving, so a run
under LD_PRELOAD=libhakmem.so must print exactly what a plain run prints.

usage: preload_workload.py [--threads N] [--rounds N] [--seed N]
"""
import argparse
import hashlib
import json
import queue
import random
import threading


def churn(seed, rounds):
    """Dicts, strings and lists of many sizes; returns a digest."""
    rng = random.Random(seed)
    h = hashlib.sha256()
    table = {}
    for r in range(rounds):
        words = ["".join(chr(97 + rng.randrange(26)) for _ in range(rng.randrange(1, 12)))
                 for _ in range(rng.randrange(50, 400))]
        counts = {}
        for w in words:
            counts[w] = counts.get(w, 0) + 1
        big = " ".join(words) * rng.randrange(1, 40)      # strings up to ~100 KB
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 3000)))
        nested = {w: [c, {"len": len(w), "sq": [i * i for i in range(c % 50)]}]
                  for w, c in counts.items()}
        table[r % 64] = (nested, big, blob)                # replace: frees old
        if r % 7 == 0:
            table.pop(rng.randrange(64), None)
        s = set(words)
        s.symmetric_difference_update(w[::-1] for w in words)
        h.update(json.dumps(sorted(counts.items())).encode())
        h.update(str(len(big)).encode())
        h.update(hashlib.md5(blob).digest())
        h.update(str(sorted(s)[:20]).encode())
    for k in sorted(table):
        nested, big, blob = table[k]
        h.update(json.dumps(nested, sort_keys=True).encode())
    return h.hexdigest()


def producer(seed, rounds, q):
    rng = random.Random(seed)
    for _ in range(rounds):
        n = rng.randrange(1, 200)
        q.put({"k%d" % i: ["x" * rng.randrange(0, 2000), list(range(rng.randrange(30)))]
               for i in range(n)})
    q.put(None)


def consumer(q, out, idx):
    h = hashlib.sha256()
    while True:
        item = q.get()
        if item is None:
            break
        h.update(json.dumps(item, sort_keys=True).encode())
        del item                                           # dies in this thread
    out[idx] = h.hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--seed", type=int, default=2026)
    a = ap.parse_args()

    results = [None] * a.threads
    passed = [None] * a.threads

    def worker(i):
        results[i] = churn(a.seed * 1000 + i, a.rounds)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(a.threads)]
    queues = [queue.Queue(maxsize=16) for _ in range(a.threads)]
    threads += [threading.Thread(target=producer, args=(a.seed + 7 * i, a.rounds, queues[i]))
                for i in range(a.threads)]
    threads += [threading.Thread(target=consumer, args=(queues[i], passed, i))
                for i in range(a.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(a.threads):
        print("thread %d churn %s passed %s" % (i, results[i], passed[i]))
    total = hashlib.sha256("".join(results + passed).encode()).hexdigest()
    print("total", total)


if __name__ == "__main__":
    main()
