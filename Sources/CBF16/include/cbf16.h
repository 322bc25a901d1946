// Mixed-precision matrix products: bfloat16 operands (fp32 rounded to nearest even), fp32
// accumulation, fp32 C. The fast kernel uses the AVX512-BF16 dot-product instruction and is only
// entered when the CPU reports it; the reference runs on any CPU.
#ifndef CBF16_H
#define CBF16_H

#include <stdint.h>

/// 1 when this CPU and OS run AVX512-BF16 (with AVX512F/BW/VL and the ZMM state enabled), else 0.
int cbf16_available(void);

/// The bf16 dot product's multiply-adds per second over the fp32 FMA's on this core, measured
/// (~2 ms): ~2 where VDPBF16PS issues as often as the FMA (AMD Zen 4), ~0.5 where it issues at a
/// quarter of the FMA's rate (the Intel Xeon of docs/performance.md, without AMX), where bf16
/// products are slower than fp32. 0 without AVX512-BF16.
double cbf16_dot_speedup(void);

/// C[m x n] = alpha * op(A) op(B) + beta * C, row-major; op(A) is m x k, op(B) is k x n.
/// Operands are rounded to bfloat16, products summed in fp32. beta == 0 never reads C.
/// Single-threaded; call only when cbf16_available() is 1.
void cbf16_gemm(int trans_a, int trans_b, long m, long n, long k, float alpha, const float *a, long lda,
                const float *b, long ldb, float beta, float *c, long ldc);

/// The same product on any CPU, in plain C: operands rounded as cbf16_gemm rounds them, products
/// and sums in fp32 in order of k. The tests' reference for cbf16_gemm.
void cbf16_gemm_reference(int trans_a, int trans_b, long m, long n, long k, float alpha, const float *a, long lda,
                          const float *b, long ldb, float beta, float *c, long ldc);

/// x rounded to bfloat16 and back, as the kernels round operands (nearest even, denormals to zero).
float cbf16_round(float x);

#endif
