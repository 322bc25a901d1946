// How fast this core runs the bf16 dot product against the fp32 FMA (see include/cbf16.h). Each
// loop is inline assembly with 12 independent zmm accumulators, enough to hide either
// instruction's latency, so its time is the issue rate alone, at any optimisation level.
#include "cbf16.h"

#if defined(__x86_64__)
#include <time.h>

enum { ROUNDS = 1 << 16 };  // x 12 instructions: ~0.1 ms at 2 per cycle and 4 GHz

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

#define ZERO "vpxord %%zmm0, %%zmm0, %%zmm0\n\t" "vpxord %%zmm1, %%zmm1, %%zmm1\n\t" \
    "vpxord %%zmm2, %%zmm2, %%zmm2\n\t" "vpxord %%zmm3, %%zmm3, %%zmm3\n\t" "vpxord %%zmm4, %%zmm4, %%zmm4\n\t" \
    "vpxord %%zmm5, %%zmm5, %%zmm5\n\t" "vpxord %%zmm6, %%zmm6, %%zmm6\n\t" "vpxord %%zmm7, %%zmm7, %%zmm7\n\t" \
    "vpxord %%zmm8, %%zmm8, %%zmm8\n\t" "vpxord %%zmm9, %%zmm9, %%zmm9\n\t" "vpxord %%zmm10, %%zmm10, %%zmm10\n\t" \
    "vpxord %%zmm11, %%zmm11, %%zmm11\n\t" "vpxord %%zmm12, %%zmm12, %%zmm12\n\t" \
    "vpxord %%zmm13, %%zmm13, %%zmm13\n\t"
#define TWELVE(op) op " %%zmm12, %%zmm13, %%zmm0\n\t" op " %%zmm12, %%zmm13, %%zmm1\n\t" \
    op " %%zmm12, %%zmm13, %%zmm2\n\t" op " %%zmm12, %%zmm13, %%zmm3\n\t" op " %%zmm12, %%zmm13, %%zmm4\n\t" \
    op " %%zmm12, %%zmm13, %%zmm5\n\t" op " %%zmm12, %%zmm13, %%zmm6\n\t" op " %%zmm12, %%zmm13, %%zmm7\n\t" \
    op " %%zmm12, %%zmm13, %%zmm8\n\t" op " %%zmm12, %%zmm13, %%zmm9\n\t" op " %%zmm12, %%zmm13, %%zmm10\n\t" \
    op " %%zmm12, %%zmm13, %%zmm11\n\t"
#define CLOBBERS "zmm0", "zmm1", "zmm2", "zmm3", "zmm4", "zmm5", "zmm6", "zmm7", "zmm8", "zmm9", "zmm10", "zmm11", \
    "zmm12", "zmm13", "cc"

/// Seconds for ROUNDS x 12 VFMADD231PS (on zeros: no denormal assists).
static double fma_seconds(void) {
    long n = ROUNDS;
    double t0 = now();
    __asm__ volatile(ZERO "1:\n\t" TWELVE("vfmadd231ps") "dec %0\n\tjnz 1b\n\t" : "+r"(n) : : CLOBBERS);
    return now() - t0;
}

/// Seconds for ROUNDS x 12 VDPBF16PS (twice the multiply-adds of an FMA each).
static double dot_seconds(void) {
    long n = ROUNDS;
    double t0 = now();
    __asm__ volatile(ZERO "1:\n\t" TWELVE("vdpbf16ps") "dec %0\n\tjnz 1b\n\t" : "+r"(n) : : CLOBBERS);
    return now() - t0;
}

double cbf16_dot_speedup(void) {
    if (!cbf16_available()) return 0;
    double fma = 1e9, dot = 1e9;
    for (int i = 0; i < 7; i++) {  // the fastest of each: a run the OS interrupted does not count
        double f = fma_seconds(), d = dot_seconds();
        if (f < fma) fma = f;
        if (d < dot) dot = d;
    }
    return 2 * fma / dot;
}

#else

double cbf16_dot_speedup(void) { return 0; }

#endif
