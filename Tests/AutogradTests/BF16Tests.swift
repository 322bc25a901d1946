@testable import Autograd
import CBF16
import Foundation
import XCTest

/// The bf16 mixed-precision products: the rounding and the plain-C reference (on every CPU), the
/// AVX512-BF16 kernel against the reference, the precision setting, and each op in bf16 against
/// fp32 within bf16's tolerance, forward and backward (on CPUs with AVX512-BF16; skipped with a
/// message elsewhere).
final class BF16Tests: XCTestCase {
    func requireBF16() throws {
        guard Precision.hardwareBF16 else {
            throw XCTSkip("no AVX512-BF16 on this CPU (avx512_bf16 not in /proc/cpuinfo, or DDPM_NO_BF16 set): "
                          + "the bf16 kernel is not run here; the fp32 path and the portable reference are tested")
        }
    }

    func testRoundingIsNearestEvenWithDenormalsToZero() {
        XCTAssertEqual(cbf16_round(1), 1)
        XCTAssertEqual(cbf16_round(1 + 1.0 / 256), 1)                           // tie: to the even 1
        XCTAssertEqual(cbf16_round(1 + 3.0 / 256), 1 + 4.0 / 256)               // tie: to the even 1 + 2/128
        XCTAssertEqual(cbf16_round(1 + 1.0 / 256 + 1.0 / 65536), 1 + 1.0 / 128)  // past the tie: up
        XCTAssertEqual(cbf16_round(-3.14159), -3.140625)
        XCTAssertEqual(cbf16_round(Float.leastNormalMagnitude / 2), 0)
        XCTAssertEqual(cbf16_round(-Float.leastNormalMagnitude / 2).sign, .minus)
        XCTAssertEqual(cbf16_round(.infinity), .infinity)
        XCTAssert(cbf16_round(.nan).isNaN)
    }

    /// (m, n, k, transA, transB, alpha, beta, extra leading-dimension padding): across the edges of
    /// the kernel's 8 x 32 tile, its 256-deep and 4096-wide blocks
    static let cases: [(Int, Int, Int, Bool, Bool, Float, Float, Int)] = [
        (1, 1, 1, false, false, 1, 0, 0), (7, 33, 5, false, false, 1, 0, 3), (8, 32, 2, true, false, 0.5, 1, 0),
        (9, 31, 3, false, true, 1, -2, 1), (17, 65, 257, true, true, 1, 1, 0), (200, 70, 300, false, false, 2, 0, 5),
        (33, 40, 513, false, true, 1, 0.5, 0), (5, 4100, 9, false, false, 1, 0, 0),
        (64, 64, 1024, false, true, 1, 1, 0),
        (300, 20, 33, true, false, 1, 0, 2),
    ]

    /// Operands, C and the leading dimensions of one case; `exact` fills with multiples of 1/8 in
    /// [-4, 4], whose products and sums are exact in fp32 (so any order of summation agrees).
    func operands(_ c: (Int, Int, Int, Bool, Bool, Float, Float, Int), exact: Bool, rng: inout Generator)
        -> (a: [Float], b: [Float], c: [Float], lda: Int, ldb: Int, ldc: Int) {
        let (m, n, k, ta, tb, _, _, pad) = c
        let lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad
        func fill(_ count: Int) -> [Float] {
            exact ? (0..<count).map { _ in Float(rng.int(below: 65) - 32) / 8 }
                  : Tensor.randn([count], generator: &rng).values
        }
        return (fill((ta ? k : m) * lda), fill((tb ? n : k) * ldb), fill(m * ldc), lda, ldb, ldc)
    }

    func testReferenceMatchesSgemmOnExactOperands() {
        var rng = Generator(seed: 1)
        for c in Self.cases {
            let (m, n, k, ta, tb, alpha, beta, _) = c
            let o = operands(c, exact: true, rng: &rng)
            var r = o.c, s = o.c
            cbf16_gemm_reference(ta ? 1 : 0, tb ? 1 : 0, m, n, k, alpha, o.a, o.lda, o.b, o.ldb, beta, &r, o.ldc)
            BLAS.sgemmSerial(&s, o.a, o.b, m: m, n: n, k: k, transA: ta, transB: tb, alpha: alpha, beta: beta,
                             lda: o.lda, ldb: o.ldb, ldc: o.ldc)
            XCTAssertEqual(r, s, "\(c)")
        }
    }

    func testReferenceIsWithinBF16OfSgemm() {
        var rng = Generator(seed: 2)
        for c in Self.cases where c.0 * c.1 * c.2 <= 1 << 20 {
            let (m, n, k, ta, tb, alpha, beta, _) = c
            let o = operands(c, exact: false, rng: &rng)
            var r = o.c, s = o.c
            cbf16_gemm_reference(ta ? 1 : 0, tb ? 1 : 0, m, n, k, alpha, o.a, o.lda, o.b, o.ldb, beta, &r, o.ldc)
            BLAS.sgemmSerial(&s, o.a, o.b, m: m, n: n, k: k, transA: ta, transB: tb, alpha: alpha, beta: beta,
                             lda: o.lda, ldb: o.ldb, ldc: o.ldc)
            // each operand is off by at most 2^-8 of itself (8 significant bits), so each product
            // by ~2^-7: |error| <= 2^-7 |alpha| sum_k |a b| (+ fp32 rounding)
            var bound = [Float](repeating: 0, count: o.c.count)
            BLAS.sgemmSerial(&bound, o.a.map(Swift.abs), o.b.map(Swift.abs), m: m, n: n, k: k, transA: ta, transB: tb,
                             alpha: Swift.abs(alpha) / 128, lda: o.lda, ldb: o.ldb, ldc: o.ldc)
            for i in 0..<m {
                for j in 0..<n {
                    let e = i * o.ldc + j
                    XCTAssertLessThanOrEqual(Swift.abs(r[e] - s[e]), bound[e] * 1.01 + 1e-5 * (1 + Swift.abs(s[e])),
                                             "\(c) at (\(i), \(j))")
                }
            }
            XCTAssertNotEqual(r, s, "\(c): bf16 rounding should show")
        }
    }

    func testKernelMatchesReference() throws {
        try requireBF16()
        var rng = Generator(seed: 3)
        for c in Self.cases {
            let (m, n, k, ta, tb, alpha, beta, _) = c
            for exact in [true, false] {
                let o = operands(c, exact: exact, rng: &rng)
                var r = o.c, f = o.c
                cbf16_gemm_reference(ta ? 1 : 0, tb ? 1 : 0, m, n, k, alpha, o.a, o.lda, o.b, o.ldb, beta, &r, o.ldc)
                cbf16_gemm(ta ? 1 : 0, tb ? 1 : 0, m, n, k, alpha, o.a, o.lda, o.b, o.ldb, beta, &f, o.ldc)
                if exact {
                    XCTAssertEqual(f, r, "\(c)")
                } else {  // the same rounded operands, summed in another order
                    let worst = zip(f, r).map { Swift.abs($0 - $1) }.max() ?? 0
                    XCTAssertLessThan(worst, 1e-4 * Float(k).squareRoot() * Swift.max(1, Swift.abs(alpha)), "\(c)")
                }
            }
        }
    }

    func testKernelNeverReadsCWithBetaZero() throws {
        try requireBF16()
        let a = [Float](repeating: 1, count: 9 * 5), b = [Float](repeating: 2, count: 5 * 40)
        var c = [Float](repeating: .nan, count: 9 * 40)
        cbf16_gemm(0, 0, 9, 40, 5, 1, a, 5, b, 40, 0, &c, 40)
        XCTAssertEqual(c, [Float](repeating: 10, count: 9 * 40))
    }

    func testFP32DispatchIsSgemmItself() {
        var rng = Generator(seed: 4)
        let a = Tensor.randn([300 * 200], generator: &rng), b = Tensor.randn([200 * 150], generator: &rng)
        let x = Tensor(zeros: [300 * 150]), y = Tensor(zeros: [300 * 150])
        BLAS.sgemm(x.data, a.data, b.data, m: 300, n: 150, k: 200)
        BLAS.gemm(.fp32, y.data, a.data, b.data, m: 300, n: 150, k: 200)
        XCTAssertEqual(x.values, y.values)
    }

    /// `auto` is the faster precision on this CPU: fp32 without AVX512-BF16; with it, bf16 only
    /// where the measured dot-product rate is at least 1.5x the FMA's (a rate 0.25-3x: twice an
    /// FMA's multiply-adds per instruction, issued at the FMA's rate down to an eighth of it).
    func testAutoIsTheFasterPrecisionHere() throws {
        let speedup = Precision.dotSpeedup
        if cbf16_available() == 1 {
            XCTAssertGreaterThan(speedup, 0.25)
            XCTAssertLessThan(speedup, 3)
        } else {
            XCTAssertEqual(speedup, 0)
        }
        XCTAssertEqual(Precision.fastest, Precision.hardwareBF16 && speedup >= 1.5 ? .bf16 : .fp32)
        XCTAssertEqual(try Precision.with(.fp32) { try Precision.set(named: "auto"); return Precision.current },
                       Precision.fastest)
        try Precision.set(.fp32)
    }

    func testPrecisionSetting() throws {
        XCTAssertEqual(Precision.current, .fp32)
        XCTAssertThrowsError(try Precision.set(named: "fp16")) {
            XCTAssertEqual(($0 as? TensorError)?.message, "precision 'fp16' is not one of fp32, bf16, auto")
        }
        if Precision.hardwareBF16 {
            XCTAssertEqual(try Precision.with(.bf16) { Precision.current }, .bf16)
        } else {
            XCTAssertThrowsError(try Precision.set(.bf16)) {
                XCTAssertEqual(($0 as? TensorError)?.message, Precision.unavailableMessage)
            }
        }
        XCTAssertEqual(Precision.current, .fp32)
    }

    /// Runs f in fp32 and in bf16 with the same output gradient; asserts that the bf16 output and
    /// input gradients are within `tolerance` of fp32's (relative to fp32's largest magnitude) and
    /// not equal to them (the bf16 products ran).
    /// Inputs listed in `fp32Gradients` (biases: sums of the output gradient) get the same gradient
    /// in both precisions.
    func assertBF16Close(_ name: String, _ inputs: [Tensor], tolerance: Float = 0.03, fp32Gradients: Set<Int> = [],
                         _ f: () throws -> Tensor, file: StaticString = #filePath, line: UInt = #line) throws {
        var rng = Generator(seed: 77)
        var gy: Tensor?
        func run(_ p: Precision) throws -> [Tensor] {
            for x in inputs { x.grad = nil }
            let y = try Precision.with(p) { try f() }
            if gy == nil { gy = Tensor.randn(y.shape, generator: &rng) }
            try y.backward(gradient: gy!)  // in the forward's precision
            return [y.copy()] + inputs.map { $0.grad?.copy() ?? Tensor(zeros: [0]) }
        }
        let reference = try run(.fp32), mixed = try run(.bf16)
        for (i, (r, m)) in zip(reference, mixed).enumerated() {
            let what = i == 0 ? "\(name) output" : "\(name) gradient of input \(i - 1)"
            XCTAssertEqual(r.shape, m.shape, what, file: file, line: line)
            if i > 0 && fp32Gradients.contains(i - 1) {
                XCTAssertEqual(r.values, m.values, what, file: file, line: line)
                continue
            }
            let scale = r.values.map(Swift.abs).max() ?? 1
            let worst = zip(r.values, m.values).map { Swift.abs($0 - $1) }.max() ?? 0
            XCTAssertLessThan(worst, tolerance * scale, what, file: file, line: line)
            XCTAssertGreaterThan(worst, 0, "\(what): identical to fp32, so bf16 did not run", file: file, line: line)
        }
    }

    func leaf(_ shape: [Int], _ rng: inout Generator) -> Tensor {
        let t = Tensor.randn(shape, generator: &rng)
        t.requiresGrad = true
        return t
    }

    func testConvolutionsInBF16AreCloseToFP32() throws {
        try requireBF16()
        var rng = Generator(seed: 5)
        let x = leaf([3, 16, 8, 12], &rng), w = leaf([24, 16, 3, 3], &rng), b = leaf([24], &rng)
        try assertBF16Close("conv2d 3x3 (Winograd)", [x, w, b], fp32Gradients: [2]) {
            try .conv2d(x, weight: w, bias: b, stride: 1, padding: 1)
        }
        try assertBF16Close("conv2d 3x3 (im2col)", [x, w, b], fp32Gradients: [2]) {
            try .conv2d(x, weight: w, bias: b, stride: 1, padding: 1, winograd: false)
        }
        try assertBF16Close("conv2d 3x3 stride 2", [x, w, b], fp32Gradients: [2]) {
            try .conv2d(x, weight: w, bias: b, stride: 2, padding: 1)
        }
        let w1 = leaf([40, 16, 1, 1], &rng)
        try assertBF16Close("conv2d 1x1", [x, w1]) { try .conv2d(x, weight: w1, bias: nil) }
        let wt = leaf([16, 8, 4, 4], &rng), bt = leaf([8], &rng)
        try assertBF16Close("conv_transpose2d 4x4 stride 2", [x, wt, bt], fp32Gradients: [2]) {
            try .convTranspose2d(x, weight: wt, bias: bt, stride: 2, padding: 1)
        }
    }

    func testProductsAndAttentionInBF16AreCloseToFP32() throws {
        try requireBF16()
        var rng = Generator(seed: 6)
        let x = leaf([20, 48], &rng), w = leaf([36, 48], &rng), b = leaf([36], &rng)
        try assertBF16Close("linear", [x, w, b], fp32Gradients: [2]) { try .linear(x, weight: w, bias: b) }
        let a = leaf([20, 48], &rng), m = leaf([48, 30], &rng)
        try assertBF16Close("matmul", [a, m]) { try a.matmul(m) }
        // one shape the fused fp32 kernels take (bf16 runs the row-block products), one they do not
        let qkv = leaf([2, 3 * 2 * 32, 64], &rng)
        try assertBF16Close("attention 2x32, 64 tokens", [qkv]) { try .attention(qkv, heads: 2, dim: 32) }
        let odd = leaf([2, 3 * 3 * 8, 20], &rng)
        try assertBF16Close("attention 3x8, 20 tokens", [odd]) { try .attention(odd, heads: 3, dim: 8) }
    }
}
