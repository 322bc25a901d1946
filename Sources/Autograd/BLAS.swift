import COpenBLAS

/// The one place that calls OpenBLAS. Row-major single-precision matrix products.
public enum BLAS {
    /// C[m x n] = alpha * op(A) * op(B) + beta * C, row-major; op(A) is m x k, op(B) is k x n.
    /// lda/ldb/ldc default to the packed row lengths.
    @inline(__always)
    public static func sgemm(
        _ c: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
        m: Int, n: Int, k: Int, transA: Bool = false, transB: Bool = false,
        alpha: Float = 1, beta: Float = 0, lda: Int? = nil, ldb: Int? = nil, ldc: Int? = nil
    ) {
        guard m > 0, n > 0 else { return }
        flops &+= 2 * m * n * k
        if k == 0 {
            if beta == 0 { for i in 0..<m { (c + i * (ldc ?? n)).update(repeating: 0, count: n) } }
            return
        }
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            blasint(m), blasint(n), blasint(k), alpha,
            a, blasint(lda ?? (transA ? m : k)), b, blasint(ldb ?? (transB ? k : n)),
            beta, c, blasint(ldc ?? n))
    }

    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(newValue)) }
    }

    /// FLOPs (2 per multiply-add) counted in convolutions and matrix products, like PyTorch's
    /// FlopCounterMode; the benchmark reads and resets it.
    nonisolated(unsafe) public static var flops: Int = 0
}
