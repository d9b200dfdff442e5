/*
 * fuzz_alloc.h - the fuzz target's entry points, shared by libFuzzer (which
 * calls LLVMFuzzerTestOneInput itself) and the replay driver (replay.c).
 */
#ifndef HAKMEM_FUZZ_ALLOC_H
#define HAKMEM_FUZZ_ALLOC_H

#include <stddef.h>
#include <stdint.h>

/* Run one input as a program of allocation calls; aborts on any mismatch. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Nonzero: print every operation and its result to stderr. */
extern int fuzz_alloc_trace;

#endif /* HAKMEM_FUZZ_ALLOC_H */
