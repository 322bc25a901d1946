@testable import Autograd
import Foundation
import XCTest

/// The fast kernels against their simple references: shapes first, then values.
final class KernelTests: XCTestCase {
    /// Asserts equal shapes, then values within `tolerance`, relative to r's largest magnitude
    /// when `relative` (else absolute).
    func assertClose(_ a: Tensor, _ r: Tensor, tolerance: Float, relative: Bool = true, _ message: String,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.shape, r.shape, "shape of \(message)", file: file, line: line)
        guard a.shape == r.shape else { return }
        let scale = relative ? r.values.map(Swift.abs).max() ?? 1 : 1
        let worst = zip(a.values, r.values).map { Swift.abs($0 - $1) }.max() ?? 1
        XCTAssertLessThan(worst, tolerance * scale, message, file: file, line: line)
    }

    /// Asserts equal shapes, then equal values.
    func assertEqual(_ a: Tensor, _ r: Tensor, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.shape, r.shape, "shape of \(message)", file: file, line: line)
        guard a.shape == r.shape else { return }
        XCTAssertEqual(a.values, r.values, message, file: file, line: line)
    }

    /// Fused SIMD attention vs the sgemm path, forward and backward, for every head_dim the
    /// fused kernels take.
    func testFusedAttentionMatchesSgemmPath() throws {
        var rng = Generator(seed: 9)
        for (heads, dim, tokens) in [(2, 32, 64), (1, 16, 32), (3, 48, 16), (1, 64, 48)] {
            let x = Tensor.randn([2, 3 * heads * dim, tokens], generator: &rng)
            let g = Tensor.randn([2, heads * dim, tokens], generator: &rng)
            func run(fused: Bool) throws -> (Tensor, Tensor) {
                let xi = x.copy()
                xi.requiresGrad = true
                let y = try Tensor.attention(xi, heads: heads, dim: dim, fused: fused)
                try y.backward(gradient: g)
                return (y, try XCTUnwrap(xi.grad))
            }
            let (yf, gf) = try run(fused: true), (yr, gr) = try run(fused: false)
            assertClose(yf, yr, tolerance: 1e-5, "forward \(heads)x\(dim), \(tokens) tokens")
            assertClose(gf, gr, tolerance: 1e-5, "backward \(heads)x\(dim), \(tokens) tokens")
        }
    }

    /// The attention kernels' transpose in 16 x 16 register blocks equals the element loop bit for
    /// bit (with a scale, strided rows on both sides), and shapes that are not whole blocks take
    /// the element loop.
    func testBlockedTransposeMatchesElementLoop() throws {
        var rng = Generator(seed: 22)
        let cases: [(Int, Int, Int, Int, Float)] = [(32, 48, 48, 32, 0.125), (16, 16, 20, 40, 1), (48, 64, 80, 50, -3),
                                                    (5, 7, 9, 6, 0.5)]
        for (rows, cols, lds, ldd, scale) in cases {
            let src = Tensor.randn([rows * lds], generator: &rng)
            let blocked = Tensor(repeating: .nan, shape: [cols * ldd])
            let elements = Tensor(repeating: .nan, shape: [cols * ldd])
            transpose(blocked.data, src.data, rows: rows, cols: cols, lds: lds, ldd: ldd, scale: scale)
            transposeElements(elements.data, src.data, rows: rows, cols: cols, lds: lds, ldd: ldd, scale: scale)
            for c in 0..<cols {
                for r in 0..<rows {
                    XCTAssertEqual(blocked.data[c * ldd + r].bitPattern, elements.data[c * ldd + r].bitPattern,
                                   "\(rows)x\(cols) at (\(r), \(c))")
                    XCTAssertEqual(elements.data[c * ldd + r], src.data[r * lds + c] * scale)
                }
            }
        }
    }

    /// The Winograd 3x3 convolution vs the im2col path, forward and all gradients (the weight
    /// gradient in Winograd form too), for widths that take each of its vector widths (16, 8, 4
    /// and 2 tiles per vector, within a tile row or across 2, 4 or 8 of them), and with O C > 16 K
    /// (blocks of several images at 4x4).
    func testWinogradConvMatchesIm2colPath() throws {
        var rng = Generator(seed: 12)
        let shapes = [(2, 3, 8, 4, 16), (3, 16, 16, 6, 32), (1, 8, 24, 2, 16), (2, 5, 8, 8, 8), (3, 4, 6, 4, 24),
                      (3, 6, 5, 4, 4), (2, 3, 4, 6, 12), (1, 2, 3, 4, 64), (1, 3, 2, 2, 48), (1, 2, 3, 4, 8),
                      (1, 2, 3, 8, 4), (2, 3, 5, 16, 16), (2, 3, 4, 16, 4), (5, 129, 130, 4, 4)]
        for (n, c, o, h, w) in shapes {
            let x = Tensor.randn([n, c, h, w], generator: &rng), wt = Tensor.randn([o, c, 3, 3], generator: &rng)
            let b = Tensor.randn([o], generator: &rng), g = Tensor.randn([n, o, h, w], generator: &rng)
            func run(winograd: Bool) throws -> [Tensor] {
                let (xi, wi, bi) = (x.copy(), wt.copy(), b.copy())
                for t in [xi, wi, bi] { t.requiresGrad = true }
                let y = try Tensor.conv2d(xi, weight: wi, bias: bi, stride: 1, padding: 1, winograd: winograd)
                try y.backward(gradient: g)
                return [y, try XCTUnwrap(xi.grad), try XCTUnwrap(wi.grad), try XCTUnwrap(bi.grad)]
            }
            // the weight gradient alone too (the first layer's input needs none)
            func runWeightOnly(winograd: Bool) throws -> [Tensor] {
                let (xi, wi) = (x.copy(), wt.copy())
                wi.requiresGrad = true
                try Tensor.conv2d(xi, weight: wi, bias: nil, stride: 1, padding: 1, winograd: winograd)
                    .backward(gradient: g)
                XCTAssertNil(xi.grad)
                return [try XCTUnwrap(wi.grad)]
            }
            let fast = try run(winograd: true) + runWeightOnly(winograd: true)
            let ref = try run(winograd: false) + runWeightOnly(winograd: false)
            for (name, (a, r)) in zip(["y", "dx", "dw", "db", "dw alone"], zip(fast, ref)) {
                assertClose(a, r, tolerance: 1e-5, "\(name) for \(n)x\(c)->\(o) \(h)x\(w)")
            }
        }
    }

    /// The upsampling's im2col and col2im (4x4 windows, stride 2, padding 1) against the generic
    /// loops, for grid widths that take each vector width: bit for bit (the same sums in the same
    /// order, so sampling gives the same images either way).
    func testUpsampleColumnsMatchGenericLoops() throws {
        var rng = Generator(seed: 14)
        for (n, c, side) in [(2, 3, 16), (1, 2, 8), (3, 2, 4), (2, 1, 12)] {
            let geo = ConvGeometry(n: n, c: c, h: 2 * side, w: 2 * side, kh: 4, kw: 4, stride: 2, pad: 1)
            XCTAssertTrue(geo.isUpsample2x)
            let x = Tensor.randn([n, c, 2 * side, 2 * side], generator: &rng)
            let cols = Tensor.randn([geo.colRows, geo.colCols], generator: &rng)
            let (fast, loops) = (Tensor(zeros: cols.shape), Tensor(zeros: cols.shape))
            geo.im2col(fast.data, x.data)
            geo.im2colLoops(loops.data, x.data)
            assertEqual(fast, loops, "im2col \(n)x\(c) grid \(side)")
            let (image, imageLoops) = (Tensor(repeating: .nan, shape: x.shape), Tensor(zeros: x.shape))
            geo.col2im(image.data, cols.data)
            geo.col2imLoops(imageLoops.data, cols.data)
            assertEqual(image, imageLoops, "col2im \(n)x\(c) grid \(side)")
            // with a bias: the sums first, then the bias, as a separate pass would add it
            let bias = Tensor.randn([c], generator: &rng)
            geo.col2im(image.data, cols.data, bias: bias.data)
            let plane = x.count / (n * c)
            for b in 0..<n {
                for ci in 0..<c { for i in 0..<plane { imageLoops.data[(b * c + ci) * plane + i] += bias.data[ci] } }
            }
            assertEqual(image, imageLoops, "col2im with bias \(n)x\(c) grid \(side)")
        }
    }

    /// 1x1 convolutions read the input as their columns (no im2col): values and gradients
    /// against naive loops, for one image per block (32x32) and several (4x4).
    func testPointwiseConvMatchesNaiveLoops() throws {
        var rng = Generator(seed: 21)
        for (n, c, o, h) in [(2, 3, 5, 32), (3, 5, 4, 4)] {
            let p = h * h
            let x = Tensor.randn([n, c, h, h], generator: &rng), wt = Tensor.randn([o, c, 1, 1], generator: &rng)
            let b = Tensor.randn([o], generator: &rng), g = Tensor.randn([n, o, h, h], generator: &rng)
            let (xi, wi, bi) = (x.copy(), wt.copy(), b.copy())
            for t in [xi, wi, bi] { t.requiresGrad = true }
            let y = try Tensor.conv2d(xi, weight: wi, bias: bi, stride: 1, padding: 0)
            try y.backward(gradient: g)
            let (ry, rdx, rdw) = (Tensor(zeros: y.shape), Tensor(zeros: x.shape), Tensor(zeros: wt.shape))
            for i in 0..<n { for oc in 0..<o { for q in 0..<p {
                var acc = b.data[oc]
                let gv = g.data[(i * o + oc) * p + q]
                for ci in 0..<c {
                    acc += wt.data[oc * c + ci] * x.data[(i * c + ci) * p + q]
                    rdx.data[(i * c + ci) * p + q] += wt.data[oc * c + ci] * gv
                    rdw.data[oc * c + ci] += gv * x.data[(i * c + ci) * p + q]
                }
                ry.data[(i * o + oc) * p + q] = acc
            } } }
            XCTAssertEqual(y.shape, [n, o, h, h])
            let results = [("y", y, ry), ("dx", try XCTUnwrap(xi.grad), rdx), ("dw", try XCTUnwrap(wi.grad), rdw)]
            for (name, got, want) in results {
                assertClose(got, want, tolerance: 1e-3, relative: false, "\(name) for \(n)x\(c)->\(o) \(h)x\(h)")
            }
        }
    }

    /// Winograd's scratch is reused without clearing: only the padding's rows are zeroed, and
    /// the row pass, transformed input and products are overwritten. NaN-filled scratch must not leak.
    func testWinogradIgnoresStaleScratch() throws {
        var rng = Generator(seed: 5)
        let (n, c, o, h, w) = (2, 3, 8, 4, 16)
        let x = Tensor.randn([n, c, h, w], generator: &rng), wt = Tensor.randn([o, c, 3, 3], generator: &rng)
        let block = WinogradBlock(c: c, o: o, h: h, w: w)
        let rowTransformed = Tensor(repeating: .nan, shape: [block.rowTransformedCount])
        let transformed = Tensor(repeating: .nan, shape: [block.transformedCount(n)])
        let products = Tensor(repeating: .nan, shape: [block.productCount(n)])
        let y = Tensor(uninitialized: [n, o, h, w])
        let u = winogradFilters(wt)
        winogradConv3x3(y.data, x.data, filters: u.data, bias: nil, images: n, geometry: block,
                        rowTransformed: rowTransformed.data, transformed: transformed.data, products: products.data)
        withExtendedLifetime((u, rowTransformed, transformed, products)) {}
        let ref = try Tensor.conv2d(x, weight: wt, bias: nil, stride: 1, padding: 1, winograd: false)
        XCTAssertFalse(y.values.contains { $0.isNaN })
        assertClose(y, ref, tolerance: 1e-4, relative: false, "y")
    }

    /// The fused GroupNorm + modulation + SiLU + residual equals its composition, values and
    /// gradients.
    func testFusedGroupNormSiLUMatchesComposition() throws {
        var rng = Generator(seed: 13)
        let x = Tensor.randn([3, 16, 5, 7], generator: &rng) * 2, w = Tensor.randn([16], generator: &rng)
        let b = Tensor.randn([16], generator: &rng), s = Tensor.randn([3, 16, 1, 1], generator: &rng)
        let t = Tensor.randn([3, 16, 1, 1], generator: &rng)
        let g = Tensor.randn([3, 16, 5, 7], generator: &rng), res = Tensor.randn([3, 16, 5, 7], generator: &rng)
        func run(_ fused: Bool) throws -> [Tensor] {
            let ins = [x, w, b, s, t, res].map { v -> Tensor in let c = v.copy(); c.requiresGrad = true; return c }
            let y = fused
                ? try Tensor.groupNormSiLU(ins[0], groups: 8, weight: ins[1], bias: ins[2], scale: ins[3],
                                           shift: ins[4], residual: ins[5])
                : try (Tensor.groupNorm(ins[0], groups: 8, weight: ins[1], bias: ins[2]) * (ins[3] + 1) + ins[4]).silu()
                    + ins[5]
            try y.backward(gradient: g)
            return [y] + ins.map { $0.grad ?? Tensor(zeros: [1]) }
        }
        let names = ["y", "dx", "dw", "db", "dscale", "dshift", "dresidual"]
        for (name, (a, r)) in zip(names, zip(try run(true), try run(false))) {
            assertClose(a, r, tolerance: 2e-5, name)
        }
        // Under no_grad the fused op skips xhat (a separate code path): same values.
        let recorded = try run(true)[0]
        let sampled = try withNoGrad {
            try Tensor.groupNormSiLU(x, groups: 8, weight: w, bias: b, scale: s, shift: t, residual: res)
        }
        XCTAssertFalse(sampled.requiresGrad)
        assertClose(sampled, recorded, tolerance: 1e-5, relative: false, "no_grad with modulation and residual")
        let plain = try withNoGrad { try Tensor.groupNormSiLU(x, groups: 4, weight: w, bias: b) }
        let plainRef = try withNoGrad { try Tensor.groupNorm(x, groups: 4, weight: w, bias: b).silu() }
        assertClose(plain, plainRef, tolerance: 1e-5, relative: false, "no_grad plain")
    }

    func testVectorisedExpAndSoftmaxMatchScalar() throws {
        var worst: Float = 0
        var x: Float = -80
        while x < 80 {
            let v = exp16(Vec(repeating: x))[0]
            worst = Swift.max(worst, Swift.abs(v - Foundation.exp(x)) / Foundation.exp(x))
            x += 0.37
        }
        XCTAssertLessThan(worst, 5e-7)
        XCTAssertEqual(exp16(Vec(repeating: -200))[0], 0, accuracy: 1e-37)
        var rng = Generator(seed: 2)
        let row = Tensor.randn([37], generator: &rng) * 5
        let fast = row.copy()
        softmaxRow(fast.data, 37)
        let m = row.values.max() ?? 0
        let e = row.values.map { Foundation.exp($0 - m) }
        let s = e.reduce(0, +)
        for i in 0..<37 { XCTAssertEqual(fast.data[i], e[i] / s, accuracy: 1e-6) }
    }

    /// The sgemm split across the cores: deterministic, and equal to one single-threaded call
    /// within rounding, for both split directions.
    func testParallelSgemmMatchesSerial() throws {
        var rng = Generator(seed: 4)
        let shapes = [(40, 3000, 37, false, false), (3000, 40, 29, true, false), (513, 700, 64, false, true),
                      (700, 513, 16, true, true)]
        for (m, n, k, ta, tb) in shapes {
            let a = Tensor.randn([m * k], generator: &rng), b = Tensor.randn([k * n], generator: &rng)
            let c1 = Tensor(zeros: [m * n]), c2 = Tensor(zeros: [m * n])
            let again = Tensor(zeros: [m * n])
            BLAS.sgemm(c1.data, a.data, b.data, m: m, n: n, k: k, transA: ta, transB: tb)
            BLAS.sgemm(again.data, a.data, b.data, m: m, n: n, k: k, transA: ta, transB: tb)
            BLAS.sgemmSerial(c2.data, a.data, b.data, m: m, n: n, k: k, transA: ta, transB: tb)
            let shape = "\(m)x\(n)x\(k) \(ta) \(tb)"
            XCTAssertEqual(c1.values, again.values, "parallel sgemm not deterministic, \(shape)")
            // A part that ends off the kernel's panel grid runs OpenBLAS's edge kernels, which
            // sum in another order on some cores (Haswell kernels on AVX-512 machines): equal to
            // float rounding of a k-term dot product, not bit for bit.
            let tolerance = Float(k).squareRoot() * 4 * Float.ulpOfOne * 8
            for i in 0..<(m * n) {
                guard abs(c1.data[i] - c2.data[i]) <= tolerance * max(1, abs(c2.data[i])) else {
                    XCTFail("\(shape): element \(i) \(c1.data[i]) vs serial \(c2.data[i])")
                    break
                }
            }
        }
    }

    /// Narrow products, and wide ones with short sums into a fresh C, over the small-matrix
    /// limit run in row pieces: against a float64 reference, with leading dimensions wider than
    /// the matrices, alpha and beta.
    func testSgemmInRowPieces() throws {
        var rng = Generator(seed: 5)
        let shapes: [(Int, Int, Int, Float)] = [(256, 16, 256, 2), (136, 32, 300, 2), (512, 8, 1024, 2),
                                                (100, 64, 200, 2), (200, 600, 40, 0)]
        for (m, n, k, beta) in shapes {
            let (lda, ldb, ldc) = (k + 3, n + 5, n + 7)
            let a = Tensor.randn([m * lda], generator: &rng), b = Tensor.randn([k * ldb], generator: &rng)
            let c = Tensor.randn([m * ldc], generator: &rng)
            let c0 = c.values
            BLAS.sgemmSerial(c.data, a.data, b.data, m: m, n: n, k: k, alpha: 0.5, beta: beta, lda: lda, ldb: ldb,
                             ldc: ldc)
            var worst = 0.0
            for i in 0..<m {
                for j in 0..<n {
                    var dot = 0.0
                    for p in 0..<k { dot += Double(a.data[i * lda + p]) * Double(b.data[p * ldb + j]) }
                    let want = 0.5 * dot + Double(beta) * Double(c0[i * ldc + j])
                    worst = max(worst, abs(want - Double(c.data[i * ldc + j])))
                }
                for j in n..<ldc { XCTAssertEqual(c.data[i * ldc + j], c0[i * ldc + j], "padding of row \(i) written") }
            }
            XCTAssertLessThan(worst, 1e-3, "\(m)x\(n)x\(k)")
        }
    }
}
