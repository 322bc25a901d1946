// bfloat16 matrix products with fp32 accumulation (see include/cbf16.h). Blocked as BLIS does:
// B is packed KC x NC at a time (to L3), A MC x KC (to L2), and an MR x NR micro-kernel runs over
// the packed panels (the KC x NR panel of B stays in L1). Packing rounds each fp32 operand to
// bfloat16 once, in the pair layout VDPBF16PS reads: a 32-bit lane holds the elements k and
// k + 1 of one row of A (broadcast) or one column of B (16 columns per vector). Only the
// functions marked BF16_TARGET use AVX-512; the rest of the file builds for any x86_64.
#include "cbf16.h"

#include <stdlib.h>
#include <string.h>

enum { MR = 8, NR = 32, KC = 256, MC = 192, NC = 4096 };

static uint16_t round_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) == 0) return (uint16_t)((u >> 16) & 0x8000u);       // zero and denormals: zero
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);  // NaN stays a (quiet) NaN
    u += 0x7fffu + ((u >> 16) & 1u);                                            // nearest, ties to even
    return (uint16_t)(u >> 16);
}

static float widen(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

float cbf16_round(float x) { return widen(round_bits(x)); }

static void scale_c(long m, long n, float beta, float *c, long ldc) {
    for (long i = 0; i < m; i++)
        for (long j = 0; j < n; j++) c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j];
}

void cbf16_gemm_reference(int trans_a, int trans_b, long m, long n, long k, float alpha, const float *a, long lda,
                          const float *b, long ldb, float beta, float *c, long ldc) {
    for (long i = 0; i < m; i++) {
        for (long j = 0; j < n; j++) {
            float s = 0;
            for (long p = 0; p < k; p++) {
                float x = cbf16_round(trans_a ? a[p * lda + i] : a[i * lda + p]);
                float y = cbf16_round(trans_b ? b[j * ldb + p] : b[p * ldb + j]);
                s += x * y;
            }
            float *d = c + i * ldc + j;
            *d = beta == 0 ? alpha * s : alpha * s + beta * *d;
        }
    }
}

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>

#define BF16_TARGET __attribute__((target("avx512bf16,avx512f,avx512bw,avx512vl")))

int cbf16_available(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return 0;  // OSXSAVE
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 0xe6u) != 0xe6u) return 0;  // the OS saves XMM, YMM, opmask and ZMM state
    if (__get_cpuid_max(0, 0) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    if (!(b & (1u << 16)) || !(b & (1u << 30)) || !(b & (1u << 31))) return 0;  // AVX512F, BW, VL
    __cpuid_count(7, 1, a, b, c, d);
    return (a >> 5) & 1;  // AVX512_BF16
}

/// Interleaves 16-bit elements i and 16 + i: (x[0], y[0], x[1], y[1], ...) from (x | y).
BF16_TARGET static inline __m512i interleave_index(void) {
    return _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                            23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
}

/// Panel of `width` (<= 32) vectors whose elements k are `ld` apart and whose vectors are
/// contiguous (B, or A transposed): pair p of vector v goes to dst[(p * width + v) * 2 + {0, 1}];
/// `count` (<= width) vectors are read, the rest of the panel is zero; kc may be odd (zero pad).
BF16_TARGET static void pack_interleaved(uint16_t *dst, const float *src, long ld, int count, int width, long kc) {
    const __m512i index = interleave_index();
    const __mmask16 m0 = count >= 16 ? 0xffff : (__mmask16)((1u << count) - 1);
    const __mmask16 m1 = count >= 32 ? 0xffff : count > 16 ? (__mmask16)((1u << (count - 16)) - 1) : 0;
    const long pairs = (kc + 1) / 2;
    for (long p = 0; p < pairs; p++) {
        const float *r0 = src + 2 * p * ld, *r1 = r0 + ld;
        int second = 2 * p + 1 < kc;
        for (int h = 0; h < width; h += 16) {
            __mmask16 mask = h == 0 ? m0 : m1;
            __m512 x = _mm512_maskz_loadu_ps(mask, r0 + h);
            __m512 y = second ? _mm512_maskz_loadu_ps(mask, r1 + h) : _mm512_setzero_ps();
            __m512i v = _mm512_permutexvar_epi16(index, (__m512i)_mm512_cvtne2ps_pbh(y, x));
            uint16_t *d = dst + (p * width + h) * 2;
            if (width - h >= 16) _mm512_storeu_si512(d, v);
            else _mm256_storeu_si256((__m256i *)d, _mm512_castsi512_si256(v));  // width 8
        }
    }
}

/// Transposes a 16 x 16 matrix of 32-bit words held as 16 rows.
BF16_TARGET static inline void transpose16(__m512i r[16]) {
    __m512i t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {  // u[4 i + j], 128-bit lane L: column 4 L + j of rows 4 i ... 4 i + 3
        u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int j = 0; j < 4; j++) {
        __m512i v0 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x44), v1 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x44);
        __m512i w0 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xee), w1 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xee);
        r[j] = _mm512_shuffle_i32x4(v0, v1, 0x88);
        r[4 + j] = _mm512_shuffle_i32x4(v0, v1, 0xdd);
        r[8 + j] = _mm512_shuffle_i32x4(w0, w1, 0x88);
        r[12 + j] = _mm512_shuffle_i32x4(w0, w1, 0xdd);
    }
}

/// Panel of `width` (8 or 32) vectors whose elements k are contiguous and which lie `ld` apart
/// (A, or B transposed): pair p of vector v goes to the 32-bit word dst[p * width + v]. Groups of
/// 16 vectors x 16 pairs are rounded in registers and transposed there.
BF16_TARGET static void pack_contiguous(uint32_t *dst, const float *src, long ld, int count, int width, long kc) {
    const long pairs = (kc + 1) / 2;
    for (int v0 = 0; v0 < width; v0 += 16) {
        for (long k0 = 0; k0 < kc; k0 += 32) {
            long left = kc - k0;
            __mmask16 m0 = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1);
            __mmask16 m1 = left >= 32 ? 0xffff : left > 16 ? (__mmask16)((1u << (left - 16)) - 1) : 0;
            __m512i r[16];
            for (int v = 0; v < 16; v++) {
                if (v0 + v < count) {
                    const float *s = src + (v0 + v) * ld + k0;
                    __m512 x = _mm512_maskz_loadu_ps(m0, s), y = _mm512_maskz_loadu_ps(m1, s + 16);
                    r[v] = (__m512i)_mm512_cvtne2ps_pbh(y, x);
                } else {
                    r[v] = _mm512_setzero_si512();
                }
            }
            transpose16(r);
            long p0 = k0 / 2, n = pairs - p0 < 16 ? pairs - p0 : 16;
            for (long q = 0; q < n; q++) {
                uint32_t *d = dst + (p0 + q) * width + v0;
                if (width - v0 >= 16) _mm512_storeu_si512(d, r[q]);
                else _mm256_storeu_si256((__m256i *)d, _mm512_castsi512_si256(r[q]));
            }
        }
    }
}

/// C[rows x cols] (rows <= MR, cols <= NR) = alpha * A_panel B_panel + beta * C over `pairs`
/// pairs of k; beta == 0 does not read C.
BF16_TARGET static void micro_kernel(long pairs, const uint32_t *a, const uint16_t *b, float *c, long ldc, int rows,
                                     int cols, float alpha, float beta) {
    __m512 acc[MR][2];
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (long p = 0; p < pairs; p++) {
        __m512bh b0 = (__m512bh)_mm512_loadu_si512(b + p * 2 * NR);
        __m512bh b1 = (__m512bh)_mm512_loadu_si512(b + p * 2 * NR + NR);
#pragma clang loop unroll(full)
        for (int i = 0; i < MR; i++) {
            __m512bh ai = (__m512bh)_mm512_set1_epi32((int)a[p * MR + i]);
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
            acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
        }
    }
    const __mmask16 m0 = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1);
    const __mmask16 m1 = cols >= 32 ? 0xffff : cols > 16 ? (__mmask16)((1u << (cols - 16)) - 1) : 0;
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) {  // constant indices keep acc in registers
        if (i >= rows) break;
        float *ci = c + i * ldc;
        __m512 r0 = _mm512_mul_ps(acc[i][0], va), r1 = _mm512_mul_ps(acc[i][1], va);
        if (beta != 0) {
            r0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m0, ci), vb, r0);
            r1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m1, ci + 16), vb, r1);
        }
        _mm512_mask_storeu_ps(ci, m0, r0);
        _mm512_mask_storeu_ps(ci + 16, m1, r1);
    }
}

/// Packing buffers, one pair per thread, grown as needed and kept for the thread's life.
static _Thread_local uint16_t *packed_a, *packed_b;
static _Thread_local size_t capacity_a, capacity_b;

static uint16_t *buffer(uint16_t **p, size_t *cap, size_t count) {
    if (count > *cap) {
        free(*p);
        size_t bytes = (count * sizeof(uint16_t) + 63) & ~(size_t)63;
        *p = aligned_alloc(64, bytes);
        *cap = *p ? count : 0;
    }
    return *p;
}

BF16_TARGET void cbf16_gemm(int trans_a, int trans_b, long m, long n, long k, float alpha, const float *a, long lda,
                            const float *b, long ldb, float beta, float *c, long ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) { scale_c(m, n, beta, c, ldc); return; }
    long ncap = n < NC ? n : NC, mcap = m < MC ? m : MC;
    uint16_t *bp = buffer(&packed_b, &capacity_b, (size_t)(KC + 1) * (size_t)((ncap + NR - 1) / NR * NR));
    uint16_t *ap = buffer(&packed_a, &capacity_a, (size_t)(KC + 1) * (size_t)((mcap + MR - 1) / MR * MR));
    if (!bp || !ap) {  // out of memory for a few hundred KB: still give the right answer
        cbf16_gemm_reference(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    for (long jc = 0; jc < n; jc += NC) {
        long nc = n - jc < NC ? n - jc : NC;
        for (long pc = 0; pc < k; pc += KC) {
            long kc = k - pc < KC ? k - pc : KC, pairs = (kc + 1) / 2;
            float beta_block = pc == 0 ? beta : 1;
            for (long j0 = 0; j0 < nc; j0 += NR) {
                int w = nc - j0 < NR ? (int)(nc - j0) : NR;
                uint16_t *dst = bp + j0 / NR * pairs * 2 * NR;
                if (trans_b) pack_contiguous((uint32_t *)dst, b + (jc + j0) * ldb + pc, ldb, w, NR, kc);
                else pack_interleaved(dst, b + pc * ldb + jc + j0, ldb, w, NR, kc);
            }
            for (long ic = 0; ic < m; ic += MC) {
                long mc = m - ic < MC ? m - ic : MC;
                for (long i0 = 0; i0 < mc; i0 += MR) {
                    int h = mc - i0 < MR ? (int)(mc - i0) : MR;
                    uint16_t *dst = ap + i0 / MR * pairs * 2 * MR;
                    if (trans_a) pack_interleaved(dst, a + pc * lda + ic + i0, lda, h, MR, kc);
                    else pack_contiguous((uint32_t *)dst, a + (ic + i0) * lda + pc, lda, h, MR, kc);
                }
                for (long j0 = 0; j0 < nc; j0 += NR) {
                    int w = nc - j0 < NR ? (int)(nc - j0) : NR;
                    const uint16_t *bpanel = bp + j0 / NR * pairs * 2 * NR;
                    for (long i0 = 0; i0 < mc; i0 += MR) {
                        int h = mc - i0 < MR ? (int)(mc - i0) : MR;
                        micro_kernel(pairs, (const uint32_t *)(ap + i0 / MR * pairs * 2 * MR), bpanel,
                                     c + (ic + i0) * ldc + jc + j0, ldc, h, w, alpha, beta_block);
                    }
                }
            }
        }
    }
}

#else

int cbf16_available(void) { return 0; }

void cbf16_gemm(int trans_a, int trans_b, long m, long n, long k, float alpha, const float *a, long lda,
                const float *b, long ldb, float beta, float *c, long ldc) {
    cbf16_gemm_reference(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

#endif
