#!/usr/bin/env python3
"""make-seeds.py - writes the seed corpus of fuzz_alloc (tests/fuzz/seed/).

Each seed is a program in the input format of fuzz_alloc.c, aimed at one
area, so that the fuzzer starts from inputs that already reach it.  Run it
from tests/fuzz after changing the format:  python3 make-seeds.py seed
"""
import os
import random
import sys

# opcode & 63 (see op_table in fuzz_alloc.c); REMOTE: the helper makes the call
MALLOC, FREE, REALLOC, CALLOC, REALLOCARRAY = 0, 10, 20, 28, 32
POSIX_MEMALIGN, ALIGNED_ALLOC, MEMALIGN, VALLOC, PVALLOC = 36, 40, 42, 46, 48
USABLE, TRIM, CHECK, BURST, FREE_BURST, RESTART = 50, 53, 54, 56, 60, 63
REMOTE = 0xC0
NCLASSES = 40


def tiny(n):            # 0..31
    return [n]


def cls(c, d):          # class c's block size + (-1, 0, 1, 16)[d]
    return [0x20 | d, c]


def small(n):           # n % 32769
    return [0x40, n & 255, n >> 8]


def medium(n):          # n (a multiple of 4) up to 256 KiB
    return [0x82, (n >> 2) & 255, (n >> 10) & 255]


def near64k(k, d):      # k * 64 KiB + (-65, -64, -63, -1, 0, 1, 16, 4096)[d]
    i = k - 1
    return [0xA0 | d, i]  # k in 1..8


def huge(i):            # sizes no mapping can have
    return [0xC0 | i, 0, 0] if i == 7 else [0xC0 | i]


def pow2(shift):        # alignment 1 << shift, shift < 24
    return [shift]


def big_align(shift):   # 1 << (24 + shift): 16 MiB .. 2 GiB
    return [0x60 | shift]


def odd_align(n, times8=False):
    return [0x80 | (1 if times8 else 0), n]


def bad_align(i):
    return [0xC0 | i]


def op(code, slot=None, *args, remote=False):
    out = [code | (REMOTE if remote else 0)]
    if slot is not None:
        out.append(slot)
    for a in args:
        out += a
    return out


def seeds():
    s = {}
    p = []
    for c in range(NCLASSES):               # every class boundary
        for d in range(3):
            p += op(MALLOC, (c * 3 + d) % 256, cls(c, d))
    for c in range(NCLASSES):               # one block grown through them
        p += op(REALLOC, 200, cls(c, 2))
    for c in reversed(range(NCLASSES)):
        p += op(REALLOC, 201, cls(c, 0))
    p += op(CHECK)
    s["classes"] = p

    p = []
    for i in range(8):                      # impossible sizes
        p += op(MALLOC, i, huge(i))
    p += op(MALLOC, 10, tiny(24))
    for i in range(8):                      # a failed realloc keeps the block
        p += op(REALLOC, 10, huge(i))
        p += op(REALLOCARRAY, 10, [0xC0 | i], small(100))   # overflow
    p += op(CALLOC, 11, [0xC3], small(64))
    p += op(CALLOC, 12, [0x03], huge(0))
    for i in range(8):
        p += op(POSIX_MEMALIGN, 20 + i, bad_align(i), tiny(8))
        p += op(ALIGNED_ALLOC, 30 + i, bad_align(i), tiny(8))
        p += op(MEMALIGN, 40 + i, bad_align(i), tiny(8))
    for n in (0, 3, 5, 12, 24, 100):
        p += op(POSIX_MEMALIGN, 50, odd_align(n), tiny(8))
        p += op(ALIGNED_ALLOC, 51, odd_align(n, True), tiny(8))
        p += op(MEMALIGN, 52, odd_align(n), small(300))
    p += op(VALLOC, 60, huge(0)) + op(PVALLOC, 61, huge(1)) + op(PVALLOC, 62, huge(0))
    p += op(ALIGNED_ALLOC, 63, big_align(7), tiny(8))
    s["errors"] = p

    p = []
    for shift in range(24):                 # every alignment, small and large
        p += op(POSIX_MEMALIGN, shift, pow2(shift), small(100 + 37 * shift))
        p += op(ALIGNED_ALLOC, 30 + shift, pow2(shift), medium(1000 * shift))
        p += op(MEMALIGN, 60 + shift, pow2(shift), tiny(shift))
        p += op(REALLOC, 60 + shift, small(5000 + shift))
    p += op(MEMALIGN, 100, big_align(6), tiny(1))       # 1 GiB
    p += op(POSIX_MEMALIGN, 101, big_align(0), medium(70000))
    for i in range(8):
        p += op(VALLOC, 110 + i, cls(i * 5, 1)) + op(PVALLOC, 120 + i, cls(i * 5, 2))
    p += op(USABLE, 120) + op(CHECK)
    s["aligned"] = p

    p = []
    for k in range(1, 9):                   # large blocks and the span cache
        for d in range(8):
            p += op(MALLOC, k * 8 + d, near64k(k, d))
    p += op(FREE_BURST, 8, [63])
    p += op(CALLOC, 8, [0x00], near64k(2, 4))           # reused span, zeroed
    p += op(REALLOC, 8, near64k(8, 7)) + op(REALLOC, 8, near64k(1, 0))
    p += op(REALLOC, 9, cls(39, 2)) + op(REALLOC, 9, medium(200000))
    p += op(REALLOC, 9, cls(39, 1)) + op(TRIM, None, [0]) + op(CHECK)
    s["large"] = p

    p = []
    p += op(MALLOC, 1, tiny(0)) + op(MALLOC, 2, tiny(0))
    p += op(CALLOC, 3, [0x80], small(10)) + op(CALLOC, 4, [0x81], small(10))
    p += op(REALLOC, 5, tiny(0))                        # realloc(NULL, 0)
    p += op(MALLOC, 6, small(50)) + op(REALLOC, 6, tiny(0))   # frees
    p += op(MALLOC, 7, medium(90000)) + op(REALLOCARRAY, 7, [0x80], tiny(5))
    p += op(FREE, 8) + op(USABLE, 1)
    s["zero"] = p

    p = []                                  # blocks between threads
    p += op(BURST, 0, [63], cls(20, 1), remote=True)
    p += op(FREE_BURST, 0, [63])
    p += op(BURST, 64, [63], cls(8, 1))
    p += op(FREE_BURST, 64, [63 | 0x40], remote=True)
    p += op(MALLOC, 130, small(777), remote=True) + op(MALLOC, 131, medium(100000), remote=True)
    p += op(RESTART)
    p += op(FREE, 130) + op(REALLOC, 131, small(20))
    p += op(BURST, 140, [40], cls(39, 1)) + op(REALLOC, 140, small(9000), remote=True)
    p += op(FREE_BURST, 141, [39], remote=True) + op(RESTART) + op(CHECK)
    s["remote"] = p

    p = []                                  # fill pages and the thread cache
    for c in (0, 7, 19, 27, 31, 39):
        for b in range(4):
            p += op(BURST, b * 64, [63], cls(c, 1))
        p += op(FREE_BURST, 0, [63 | 0xC0]) + op(FREE_BURST, 1, [63 | 0x80], remote=True)
    p += op(TRIM, None, [1]) + op(CHECK)
    s["pages"] = p

    rng = random.Random(1)                  # a mixed program
    p = []
    for _ in range(300):
        p += [rng.randrange(256) for _ in range(rng.randrange(2, 6))]
    s["mixed"] = p
    return s


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "seed"
    os.makedirs(out, exist_ok=True)
    for name, prog in seeds().items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(bytes(prog))


if __name__ == "__main__":
    main()
