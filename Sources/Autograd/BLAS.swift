import CBF16
import COpenBLAS

/// The one place that calls OpenBLAS. Row-major single-precision matrix products.
public enum BLAS {
    /// Single-threaded OpenBLAS, set once: Parallel splits the work instead.
    static let configured: Bool = {
        openblas_set_num_threads(1)
        return true
    }()

    /// C[m x n] = alpha * op(A) * op(B) + beta * C, row-major; op(A) is m x k, op(B) is k x n.
    /// lda/ldb/ldc default to the packed row lengths. Large products are split across the cores
    /// by rows (m) or columns (n) of C; each part is an independent single-threaded sgemm.
    public static func sgemm(
        _ c: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
        m: Int, n: Int, k: Int, transA: Bool = false, transB: Bool = false,
        alpha: Float = 1, beta: Float = 0, lda: Int? = nil, ldb: Int? = nil, ldc: Int? = nil
    ) {
        guard m > 0, n > 0 else { return }
        let lda = lda ?? (transA ? m : k), ldb = ldb ?? (transB ? k : n), ldc = ldc ?? n
        split(c, a, b, m: m, n: n, k: k, transA: transA, transB: transB, lda: lda, ldb: ldb,
              ldc: ldc) { c, a, b, m, n in
            sgemmSerial(c, a, b, m: m, n: n, k: k, transA: transA, transB: transB, alpha: alpha, beta: beta,
                        lda: lda, ldb: ldb, ldc: ldc)
        }
    }

    /// Runs `part(c, a, b, m, n)` on the whole product, or on the cores by rows (m) or columns
    /// (n) of C when it is large enough (the pointers moved to the part's first row or column).
    @inline(__always)
    private static func split(
        _ c: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
        m: Int, n: Int, k: Int, transA: Bool, transB: Bool, lda: Int, ldb: Int, ldc: Int,
        _ part: (UnsafeMutablePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, Int, Int) -> Void
    ) {
        let parts = Parallel.workers
        guard parts > 1, m * n * k >= 1 << 20, max(m, n) >= 2 * parts * 8 else {
            part(c, a, b, m, n)
            return
        }
        if n >= m {
            // columns of C and of op(B); multiples of 16 keep the kernels' panels whole
            Parallel.run(parts) { p in
                let j0 = (n * p / parts) & ~15, j1 = p == parts - 1 ? n : (n * (p + 1) / parts) & ~15
                guard j1 > j0 else { return }
                part(c + j0, a, b + (transB ? j0 * ldb : j0), m, j1 - j0)
            }
        } else {
            Parallel.run(parts) { p in
                let i0 = (m * p / parts) & ~15, i1 = p == parts - 1 ? m : (m * (p + 1) / parts) & ~15
                guard i1 > i0 else { return }
                part(c + i0 * ldc, a + (transA ? i0 : i0 * lda), b, i1 - i0, n)
            }
        }
    }

    /// The product in `precision`: sgemm for .fp32 (the same call, the same bits); for .bf16
    /// operands rounded to bfloat16 and sums in fp32 (CBF16), split across the cores as sgemm is.
    public static func gemm(
        _ precision: Precision, _ c: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
        m: Int, n: Int, k: Int, transA: Bool = false, transB: Bool = false,
        alpha: Float = 1, beta: Float = 0, lda: Int? = nil, ldb: Int? = nil, ldc: Int? = nil
    ) {
        guard precision == .bf16 else {
            sgemm(c, a, b, m: m, n: n, k: k, transA: transA, transB: transB, alpha: alpha, beta: beta,
                  lda: lda, ldb: ldb, ldc: ldc)
            return
        }
        guard m > 0, n > 0 else { return }
        let lda = lda ?? (transA ? m : k), ldb = ldb ?? (transB ? k : n), ldc = ldc ?? n
        split(c, a, b, m: m, n: n, k: k, transA: transA, transB: transB, lda: lda, ldb: ldb,
              ldc: ldc) { c, a, b, m, n in
            bf16Serial(c, a, b, m: m, n: n, k: k, transA: transA, transB: transB, alpha: alpha, beta: beta,
                       lda: lda, ldb: ldb, ldc: ldc)
        }
    }

    /// One single-threaded product in `precision` (for use inside parallel regions); see gemm.
    @inline(__always)
    public static func gemmSerial(
        _ precision: Precision, _ c: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
        m: Int, n: Int, k: Int, transA: Bool = false, transB: Bool = false,
        alpha: Float = 1, beta: Float = 0, lda: Int? = nil, ldb: Int? = nil, ldc: Int? = nil
    ) {
        if precision == .bf16 {
            bf16Serial(c, a, b, m: m, n: n, k: k, transA: transA, transB: transB, alpha: alpha, beta: beta,
                       lda: lda ?? (transA ? m : k), ldb: ldb ?? (transB ? k : n), ldc: ldc ?? n)
        } else {
            sgemmSerial(c, a, b, m: m, n: n, k: k, transA: transA, transB: transB, alpha: alpha, beta: beta,
                        lda: lda, ldb: ldb, ldc: ldc)
        }
    }

    /// C = alpha op(A) op(B) + beta C with bfloat16 operands and fp32 sums, single-threaded:
    /// CBF16's AVX512-BF16 kernel, or its plain-C reference on a CPU without it (only reached
    /// through a direct call: Precision.set refuses bf16 there).
    public static func bf16Serial(
        _ c: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
        m: Int, n: Int, k: Int, transA: Bool, transB: Bool, alpha: Float, beta: Float, lda: Int, ldb: Int, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        let (ta, tb) = (Int32(transA ? 1 : 0), Int32(transB ? 1 : 0))
        if Precision.hardwareBF16 {
            cbf16_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        } else {
            cbf16_gemm_reference(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        }
    }

    /// One single-threaded sgemm (for use inside parallel regions).
    @inline(__always)
    public static func sgemmSerial(
        _ c: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
        m: Int, n: Int, k: Int, transA: Bool = false, transB: Bool = false,
        alpha: Float = 1, beta: Float = 0, lda: Int? = nil, ldb: Int? = nil, ldc: Int? = nil
    ) {
        guard m > 0, n > 0 else { return }
        _ = configured
        if k == 0 {
            if beta == 0 { for i in 0..<m { (c + i * (ldc ?? n)).update(repeating: 0, count: n) } }
            return
        }
        // OpenBLAS runs products of at most 100^3 multiply-adds through its small-matrix kernel,
        // which neither packs the operands nor clears C in a pass of its own. So two kinds of
        // larger products run in row pieces under that limit:
        // - narrow ones (few columns: Winograd's products of one block at 8x8 or 4x4), which
        //   would otherwise pay for packing A;
        // - wide ones with short sums into a fresh C (1x1 convolutions over whole images, whose
        //   output streams to memory), which skip the clearing pass over C.
        // Other wide products run faster whole (docs/performance.md has the measurements).
        let smallLimit = 1_000_000
        let narrow = n <= 64, wideShortFresh = n >= 512 && k <= 64 && beta == 0
        if !transA, !transB, narrow || wideShortFresh, m * n * k > smallLimit, n * k * 8 <= smallLimit {
            // equal pieces of a multiple of 8 rows (128 rows at 1.05 M: 2 x 64, not 120 + 8)
            var pieces = (m * n * k + smallLimit - 1) / smallLimit
            func rowsPerPiece() -> Int { ((m + pieces - 1) / pieces + 7) & ~7 }
            while rowsPerPiece() * n * k > smallLimit { pieces += 1 }
            let rows = rowsPerPiece(), lda = lda ?? k, ldc = ldc ?? n
            var i = 0
            while i < m {
                let r = Swift.min(rows, m - i)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blasint(r), blasint(n), blasint(k), alpha,
                            a + i * lda, blasint(lda), b, blasint(ldb ?? n), beta, c + i * ldc, blasint(ldc))
                i += r
            }
            return
        }
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            blasint(m), blasint(n), blasint(k), alpha,
            a, blasint(lda ?? (transA ? m : k)), b, blasint(ldb ?? (transB ? k : n)),
            beta, c, blasint(ldc ?? n))
    }

    /// OpenBLAS's own thread count (1: Parallel does the splitting).
    public static var threads: Int {
        _ = configured
        return Int(openblas_get_num_threads())
    }

    /// The kernel family OpenBLAS chose at load time (e.g. "SkylakeX", "Haswell", "Prescott").
    public static var coreName: String { openblas_get_corename().map { String(cString: $0) } ?? "unknown" }

    /// OpenBLAS releases before 0.3.27 do not know recent Xeons and fall back to their slowest
    /// (Prescott, SSE3) kernels: 5x below the machine's sgemm peak. When that happened, this
    /// names the core type to force through OPENBLAS_CORETYPE (read by OpenBLAS at load time,
    /// so the process must restart with it set); nil when the choice is already right.
    public static func betterCoreType(cpuFlags: String) -> String? {
        let weak = ["Prescott", "Katmai", "Coppermine", "Northwood", "Core2", "Penryn", "Dunnington", "Nehalem",
                    "unknown"]
        guard weak.contains(coreName) else { return nil }
        let flags = Set(cpuFlags.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).map(String.init))
        if flags.contains("avx512f") && flags.contains("avx512bw") && flags.contains("avx512vl") {
            return flags.contains("avx512_bf16") ? "Cooperlake" : "SkylakeX"
        }
        if flags.contains("avx2") && flags.contains("fma") { return "Haswell" }
        return nil
    }
}
