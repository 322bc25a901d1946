@testable import Autograd
import Foundation
import XCTest

/// Forward results of the tensor ops against hand-computed values and naive loops, and the
/// errors a caller gets for bad shapes.
final class TensorTests: XCTestCase {
    func t(_ v: [Float], _ s: [Int]) throws -> Tensor { try Tensor(v, shape: s) }

    func testBroadcastArithmetic() throws {
        let a = try t([1, 2, 3, 4, 5, 6], [2, 3])
        let b = try t([10, 20, 30], [3])
        XCTAssertEqual(try (a + b).values, [11, 22, 33, 14, 25, 36])
        XCTAssertEqual(try (a * t([2, 3], [2, 1])).values, [2, 4, 6, 12, 15, 18])
        XCTAssertEqual(try (a - b).shape, [2, 3])
        XCTAssertEqual((a * 2 + 1).values, [3, 5, 7, 9, 11, 13])
        XCTAssertEqual(try (b / t([10], [1])).values, [1, 2, 3])
    }

    func testBroadcastMismatchNamesBothShapes() throws {
        let a = Tensor(zeros: [2, 3]), b = Tensor(zeros: [4])
        XCTAssertThrowsError(try a + b) { e in
            XCTAssertEqual((e as? TensorError)?.message, "add: shapes [2, 3] and [4] cannot be broadcast together")
        }
    }

    func testReductions() throws {
        let a = try t([1, 2, 3, 4, 5, 6], [2, 3])
        XCTAssertEqual(try a.sum().item(), 21)
        XCTAssertEqual(try a.mean().item(), 3.5)
        XCTAssertEqual(try a.sum(dim: 0).values, [5, 7, 9])
        XCTAssertEqual(try a.sum(dim: 0).shape, [1, 3])
        XCTAssertEqual(try a.mean(dim: 1).values, [2, 5])
        XCTAssertEqual(try a.max().item(), 6)
        XCTAssertEqual(try a.min().item(), 1)
        XCTAssertThrowsError(try a.sum(dim: 2)) { e in
            XCTAssertEqual((e as? TensorError)?.message, "sum: dimension 2 out of range for shape [2, 3] (0..<2)")
        }
    }

    func testShapeOps() throws {
        let a = try t([1, 2, 3, 4, 5, 6], [2, 3])
        XCTAssertEqual(try a.permuted([1, 0]).values, [1, 4, 2, 5, 3, 6])
        XCTAssertEqual(try a.reshaped([3, -1]).shape, [3, 2])
        XCTAssertEqual(try a.narrowed(dim: 1, start: 1, length: 2).values, [2, 3, 5, 6])
        XCTAssertEqual(try Tensor.cat([a, a], dim: 0).shape, [4, 3])
        XCTAssertEqual(try Tensor.cat([a, try t([7, 8], [2, 1])], dim: 1).values, [1, 2, 3, 7, 4, 5, 6, 8])
        XCTAssertThrowsError(try a.reshaped([4, 2])) { e in
            XCTAssertEqual((e as? TensorError)?.message, "reshape: cannot reshape [2, 3] (6 elements) to [4, 2]")
        }
        XCTAssertThrowsError(try a.narrowed(dim: 1, start: 2, length: 2))
        XCTAssertThrowsError(try Tensor.cat([a, Tensor(zeros: [2, 2])], dim: 0))
    }

    /// permute and cat split large tensors across the cores by their leading dimension: values
    /// and cat's gradients against index arithmetic, at a size that takes the parallel path.
    func testLargePermuteAndCatMatchIndexArithmetic() throws {
        var rng = Generator(seed: 31)
        let (n, c, h, w) = (16, 4, 64, 64)
        let x = Tensor.randn([n, c, h, w], generator: &rng)
        let p = try x.permuted([0, 2, 3, 1])
        var worst: Float = 0
        for i in 0..<n { for ci in 0..<c { for y in 0..<h { for xx in 0..<w {
            worst = max(worst, abs(p.data[((i * h + y) * w + xx) * c + ci] - x.data[((i * c + ci) * h + y) * w + xx]))
        } } } }
        XCTAssertEqual(worst, 0)
        let a = x.copy(), b = Tensor.randn([n, 2, h, w], generator: &rng)
        for v in [a, b] { v.requiresGrad = true }
        let y = try Tensor.cat([a, b], dim: 1)
        let g = Tensor.randn(y.shape, generator: &rng)
        try y.backward(gradient: g)
        let (ga, gb) = (try XCTUnwrap(a.grad), try XCTUnwrap(b.grad))
        for i in 0..<n { for ch in 0..<(c + 2) { for q in 0..<(h * w) {
            let at = (i * (c + 2) + ch) * h * w + q
            let (src, grad) = ch < c ? (a.data[(i * c + ch) * h * w + q], ga.data[(i * c + ch) * h * w + q])
                                     : (b.data[(i * 2 + ch - c) * h * w + q], gb.data[(i * 2 + ch - c) * h * w + q])
            worst = max(worst, abs(y.data[at] - src), abs(g.data[at] - grad))
        } } }
        XCTAssertEqual(worst, 0)
    }

    func testMatmulAndLinear() throws {
        let a = try t([1, 2, 3, 4, 5, 6], [2, 3])
        let b = try t([1, 0, 0, 1, 1, 1], [3, 2])
        XCTAssertEqual(try a.matmul(b).values, [4, 5, 10, 11])
        let y = try Tensor.linear(a, weight: b.permuted([1, 0]), bias: t([1, -1], [2]))
        XCTAssertEqual(y.values, [5, 4, 11, 10])
        XCTAssertThrowsError(try a.matmul(a)) { e in
            XCTAssertEqual((e as? TensorError)?.message, "matmul: shapes [2, 3] and [2, 3] are not (m, k) and (k, n)")
        }
    }

    /// The im2col + sgemm convolution against a direct six-loop convolution.
    func testConv2dMatchesNaiveLoops() throws {
        var rng = Generator(seed: 3)
        for (stride, pad, k) in [(1, 1, 3), (2, 1, 3), (1, 0, 1), (2, 0, 2), (1, 2, 3)] {
            let x = Tensor.randn([2, 3, 7, 6], generator: &rng)
            let w = Tensor.randn([4, 3, k, k], generator: &rng)
            let b = Tensor.randn([4], generator: &rng)
            let y = try Tensor.conv2d(x, weight: w, bias: b, stride: stride, padding: pad)
            let ref = naiveConv2d(x, w, b, stride: stride, pad: pad)
            XCTAssertEqual(y.shape, ref.shape)
            XCTAssertLessThan(maxDiff(y, ref), 1e-4, "conv2d k\(k) s\(stride) p\(pad)")
        }
    }

    /// Batches big enough to be split into image blocks (stride 2 at 32x32: 256 columns per image,
    /// 4 images per block, a remainder block) give the same values and gradients as one image at a time.
    func testConv2dImageBlocksMatchOneImageAtATime() throws {
        var rng = Generator(seed: 5)
        for (stride, c) in [(2, 3), (1, 2)] {
            let x = Tensor.randn([5, c, 32, 32], generator: &rng), w = Tensor.randn([4, c, 3, 3], generator: &rng)
            let b = Tensor.randn([4], generator: &rng)
            let out = 32 / stride
            let g = Tensor.randn([5, 4, out, out], generator: &rng)
            func run(_ xs: Tensor, _ gs: Tensor) throws -> (Tensor, Tensor, Tensor) {
                let (xi, wi) = (xs.copy(), w.copy())
                xi.requiresGrad = true; wi.requiresGrad = true
                let y = try Tensor.conv2d(xi, weight: wi, bias: b, stride: stride, padding: 1)
                try y.backward(gradient: gs)
                return (y, try XCTUnwrap(xi.grad), try XCTUnwrap(wi.grad))
            }
            let (y, dx, dw) = try run(x, g)
            XCTAssertLessThan(maxDiff(y, naiveConv2d(x, w, b, stride: stride, pad: 1)), 1e-4)
            var dwSum = [Float](repeating: 0, count: dw.count)
            for i in 0..<5 {
                let (yi, dxi, dwi) = try run(try x.narrowed(dim: 0, start: i, length: 1), try g.narrowed(dim: 0, start: i, length: 1))
                XCTAssertLessThan(maxDiff(yi, try y.narrowed(dim: 0, start: i, length: 1)), 1e-4, "y image \(i)")
                XCTAssertLessThan(maxDiff(dxi, try dx.narrowed(dim: 0, start: i, length: 1)), 1e-3, "dx image \(i)")
                for k in 0..<dw.count { dwSum[k] += dwi.data[k] }
            }
            let scale = dwSum.map(Swift.abs).max() ?? 1
            for k in 0..<dw.count { XCTAssertEqual(dw.data[k], dwSum[k], accuracy: 1e-4 * scale, "dw[\(k)] stride \(stride)") }
        }
    }

    /// Transposed convolution against its definition: every input pixel scatters weight * x.
    func testConvTransposeMatchesNaiveLoops() throws {
        var rng = Generator(seed: 4)
        let x = Tensor.randn([2, 3, 4, 5], generator: &rng)
        let w = Tensor.randn([3, 2, 4, 4], generator: &rng)
        let b = Tensor.randn([2], generator: &rng)
        let y = try Tensor.convTranspose2d(x, weight: w, bias: b, stride: 2, padding: 1)
        XCTAssertEqual(y.shape, [2, 2, 8, 10])
        let ref = Tensor(zeros: y.shape)
        for n in 0..<2 { for co in 0..<2 { for i in 0..<(8 * 10) { ref.data[(n * 2 + co) * 80 + i] = b.data[co] } } }
        for n in 0..<2 { for ci in 0..<3 { for iy in 0..<4 { for ix in 0..<5 { for co in 0..<2 { for ky in 0..<4 { for kx in 0..<4 {
            let oy = iy * 2 - 1 + ky, ox = ix * 2 - 1 + kx
            guard oy >= 0, oy < 8, ox >= 0, ox < 10 else { continue }
            ref.data[((n * 2 + co) * 8 + oy) * 10 + ox] += x.data[((n * 3 + ci) * 4 + iy) * 5 + ix] * w.data[((ci * 2 + co) * 4 + ky) * 4 + kx]
        } } } } } } }
        XCTAssertLessThan(maxDiff(y, ref), 1e-4)
    }

    func testConvShapeErrors() throws {
        XCTAssertThrowsError(try Tensor.conv2d(Tensor(zeros: [1, 2, 4, 4]), weight: Tensor(zeros: [3, 5, 3, 3]), bias: nil)) { e in
            XCTAssertEqual((e as? TensorError)?.message, "conv2d: input [1, 2, 4, 4] does not match weight [3, 5, 3, 3] (expected input (N, 5, H, W))")
        }
        XCTAssertThrowsError(try Tensor.conv2d(Tensor(zeros: [1, 1, 2, 2]), weight: Tensor(zeros: [1, 1, 3, 3]), bias: nil))
    }

    func testSoftmaxRowsSumToOneAndAttentionOfUniformKeys() throws {
        var rng = Generator(seed: 5)
        let s = try Tensor.randn([3, 7], generator: &rng).softmax()
        for r in 0..<3 { XCTAssertEqual((0..<7).reduce(Float(0)) { $0 + s.data[r * 7 + $1] }, 1, accuracy: 1e-6) }
        // q = k = 0: uniform attention, so every output token is the mean of v over tokens.
        let qkv = Tensor(zeros: [1, 3 * 2, 4])
        for i in 0..<8 { qkv.data[16 + i] = Float(i) }
        let o = try Tensor.attention(qkv, heads: 1, dim: 2)
        XCTAssertEqual(o.values, [1.5, 1.5, 1.5, 1.5, 5.5, 5.5, 5.5, 5.5])
    }

    func testGeneratorIsSeededAndRestorable() throws {
        var a = Generator(seed: 11), b = Generator(seed: 11)
        XCTAssertEqual(Tensor.randn([5], generator: &a).values, Tensor.randn([5], generator: &b).values)
        let saved = a.stateWords
        let x = Tensor.rand([4], generator: &a).values
        var c = try XCTUnwrap(Generator(stateWords: saved))
        XCTAssertEqual(Tensor.rand([4], generator: &c).values, x)
        // normal draws: mean ~0, variance ~1 over many samples
        let n = Tensor.randn([100_000], generator: &a)
        XCTAssertEqual(try n.mean().item(), 0, accuracy: 0.02)
        XCTAssertEqual(try n.square().mean().item(), 1, accuracy: 0.02)
    }

    func naiveConv2d(_ x: Tensor, _ w: Tensor, _ b: Tensor, stride: Int, pad: Int) -> Tensor {
        let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (o, k) = (w.shape[0], w.shape[2])
        let oh = (h + 2 * pad - k) / stride + 1, ow = (wd + 2 * pad - k) / stride + 1
        let y = Tensor(zeros: [n, o, oh, ow])
        for bi in 0..<n { for oc in 0..<o { for oy in 0..<oh { for ox in 0..<ow {
            var acc = b.data[oc]
            for ci in 0..<c { for ky in 0..<k { for kx in 0..<k {
                let iy = oy * stride - pad + ky, ix = ox * stride - pad + kx
                guard iy >= 0, iy < h, ix >= 0, ix < wd else { continue }
                acc += x.data[((bi * c + ci) * h + iy) * wd + ix] * w.data[((oc * c + ci) * k + ky) * k + kx]
            } } }
            y.data[((bi * o + oc) * oh + oy) * ow + ox] = acc
        } } } }
        return y
    }

    func maxDiff(_ a: Tensor, _ b: Tensor) -> Float {
        zip(a.values, b.values).map { Swift.abs($0 - $1) }.max() ?? .infinity
    }
}

/// The fast kernels against their simple references.
final class KernelTests: XCTestCase {
    /// Fused SIMD attention vs the sgemm path, forward and backward, for every head_dim the
    /// fused kernels take.
    func testFusedAttentionMatchesSgemmPath() throws {
        var rng = Generator(seed: 9)
        for (heads, dim, tokens) in [(2, 32, 64), (1, 16, 32), (3, 48, 16), (1, 64, 48)] {
            let x = Tensor.randn([2, 3 * heads * dim, tokens], generator: &rng)
            let g = Tensor.randn([2, heads * dim, tokens], generator: &rng)
            func run(fused: Bool) throws -> (Tensor, Tensor) {
                useFusedAttention = fused
                defer { useFusedAttention = true }
                let xi = x.copy()
                xi.requiresGrad = true
                let y = try Tensor.attention(xi, heads: heads, dim: dim)
                try y.backward(gradient: g)
                return (y, try XCTUnwrap(xi.grad))
            }
            let (yf, gf) = try run(fused: true), (yr, gr) = try run(fused: false)
            let scale = yr.values.map(Swift.abs).max() ?? 1, gscale = gr.values.map(Swift.abs).max() ?? 1
            XCTAssertLessThan(zip(yf.values, yr.values).map { Swift.abs($0 - $1) }.max() ?? 1, 1e-5 * scale, "forward \(heads)x\(dim), \(tokens) tokens")
            XCTAssertLessThan(zip(gf.values, gr.values).map { Swift.abs($0 - $1) }.max() ?? 1, 1e-5 * gscale, "backward \(heads)x\(dim), \(tokens) tokens")
        }
    }

    /// The attention kernels' transpose in 16 x 16 register blocks equals the element loop bit for
    /// bit (with a scale, strided rows on both sides), and shapes that are not whole blocks take
    /// the element loop.
    func testBlockedTransposeMatchesElementLoop() throws {
        var rng = Generator(seed: 22)
        for (rows, cols, lds, ldd, scale) in [(32, 48, 48, 32, Float(0.125)), (16, 16, 20, 40, 1), (48, 64, 80, 50, -3), (5, 7, 9, 6, 0.5)] {
            let src = Tensor.randn([rows * lds], generator: &rng)
            let (blocked, elements) = (Tensor(repeating: .nan, shape: [cols * ldd]), Tensor(repeating: .nan, shape: [cols * ldd]))
            transpose(blocked.data, src.data, rows: rows, cols: cols, lds: lds, ldd: ldd, scale: scale)
            transposeElements(elements.data, src.data, rows: rows, cols: cols, lds: lds, ldd: ldd, scale: scale)
            for c in 0..<cols {
                for r in 0..<rows {
                    XCTAssertEqual(blocked.data[c * ldd + r].bitPattern, elements.data[c * ldd + r].bitPattern, "\(rows)x\(cols) at (\(r), \(c))")
                    XCTAssertEqual(elements.data[c * ldd + r], src.data[r * lds + c] * scale)
                }
            }
        }
    }

    /// Runs body on the im2col path (Winograd off).
    func withIm2col<T>(_ body: () throws -> T) rethrows -> T {
        useWinograd = false
        defer { useWinograd = true }
        return try body()
    }

    /// The Winograd 3x3 convolution vs the im2col path, forward and all gradients (the weight
    /// gradient in Winograd form too), for widths that take each of its vector widths (16, 8, 4
    /// and 2 tiles per vector, within a tile row or across 2, 4 or 8 of them), and with O C > 16 K
    /// (blocks of several images at 4x4).
    func testWinogradConvMatchesIm2colPath() throws {
        var rng = Generator(seed: 12)
        for (n, c, o, h, w) in [(2, 3, 8, 4, 16), (3, 16, 16, 6, 32), (1, 8, 24, 2, 16), (2, 5, 8, 8, 8), (3, 4, 6, 4, 24), (3, 6, 5, 4, 4),
                                  (2, 3, 4, 6, 12), (1, 2, 3, 4, 64), (1, 3, 2, 2, 48), (1, 2, 3, 4, 8), (1, 2, 3, 8, 4),
                                  (2, 3, 5, 16, 16), (2, 3, 4, 16, 4), (5, 129, 130, 4, 4)] {
            let x = Tensor.randn([n, c, h, w], generator: &rng), wt = Tensor.randn([o, c, 3, 3], generator: &rng)
            let b = Tensor.randn([o], generator: &rng), g = Tensor.randn([n, o, h, w], generator: &rng)
            func run() throws -> [Tensor] {
                let (xi, wi, bi) = (x.copy(), wt.copy(), b.copy())
                for t in [xi, wi, bi] { t.requiresGrad = true }
                let y = try Tensor.conv2d(xi, weight: wi, bias: bi, stride: 1, padding: 1)
                try y.backward(gradient: g)
                return [y, try XCTUnwrap(xi.grad), try XCTUnwrap(wi.grad), try XCTUnwrap(bi.grad)]
            }
            // the weight gradient alone too (the first layer's input needs none)
            func runWeightOnly() throws -> [Tensor] {
                let (xi, wi) = (x.copy(), wt.copy())
                wi.requiresGrad = true
                try Tensor.conv2d(xi, weight: wi, bias: nil, stride: 1, padding: 1).backward(gradient: g)
                XCTAssertNil(xi.grad)
                return [try XCTUnwrap(wi.grad)]
            }
            let fast = try run() + runWeightOnly(), ref = try withIm2col { try run() + runWeightOnly() }
            for (name, (a, r)) in zip(["y", "dx", "dw", "db", "dw alone"], zip(fast, ref)) {
                let scale = r.values.map(Swift.abs).max() ?? 1
                XCTAssertLessThan(zip(a.values, r.values).map { Swift.abs($0 - $1) }.max() ?? 1, 1e-5 * scale,
                                  "\(name) for \(n)x\(c)->\(o) \(h)x\(w)")
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
            XCTAssertEqual(fast.values, loops.values, "im2col \(n)x\(c) grid \(side)")
            let (image, imageLoops) = (Tensor(repeating: .nan, shape: x.shape), Tensor(zeros: x.shape))
            geo.col2im(image.data, cols.data)
            geo.col2imLoops(imageLoops.data, cols.data)
            XCTAssertEqual(image.values, imageLoops.values, "col2im \(n)x\(c) grid \(side)")
            // with a bias: the sums first, then the bias, as a separate pass would add it
            let bias = Tensor.randn([c], generator: &rng)
            geo.col2im(image.data, cols.data, bias: bias.data)
            for b in 0..<n { for ci in 0..<c { for i in 0..<(x.count / (n * c)) { imageLoops.data[(b * c + ci) * (x.count / (n * c)) + i] += bias.data[ci] } } }
            XCTAssertEqual(image.values, imageLoops.values, "col2im with bias \(n)x\(c) grid \(side)")
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
            var ry = [Float](repeating: 0, count: n * o * p), rdx = [Float](repeating: 0, count: n * c * p)
            var rdw = [Float](repeating: 0, count: o * c)
            for i in 0..<n { for oc in 0..<o { for q in 0..<p {
                var acc = b.data[oc]
                let gv = g.data[(i * o + oc) * p + q]
                for ci in 0..<c {
                    acc += wt.data[oc * c + ci] * x.data[(i * c + ci) * p + q]
                    rdx[(i * c + ci) * p + q] += wt.data[oc * c + ci] * gv
                    rdw[oc * c + ci] += gv * x.data[(i * c + ci) * p + q]
                }
                ry[(i * o + oc) * p + q] = acc
            } } }
            for (name, got, want) in [("y", y.values, ry), ("dx", try XCTUnwrap(xi.grad).values, rdx), ("dw", try XCTUnwrap(wi.grad).values, rdw)] {
                let worst = zip(got, want).map { Swift.abs($0 - $1) }.max() ?? 1
                XCTAssertLessThan(worst, 1e-3, "\(name) for \(n)x\(c)->\(o) \(h)x\(h)")
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
        winogradConv3x3(y.data, x.data, filters: u.data, bias: nil, images: n,
                        geometry: block, rowTransformed: rowTransformed.data, transformed: transformed.data, products: products.data)
        withExtendedLifetime((u, rowTransformed, transformed, products)) {}
        let ref = try withIm2col { try Tensor.conv2d(x, weight: wt, bias: nil, stride: 1, padding: 1) }
        XCTAssertFalse(y.values.contains { $0.isNaN })
        XCTAssertLessThan(zip(y.values, ref.values).map { Swift.abs($0 - $1) }.max() ?? 1, 1e-4)
    }

    /// The fused GroupNorm + modulation + SiLU + residual equals its composition, values and
    /// gradients.
    func testFusedGroupNormSiLUMatchesComposition() throws {
        var rng = Generator(seed: 13)
        let x = Tensor.randn([3, 16, 5, 7], generator: &rng) * 2, w = Tensor.randn([16], generator: &rng)
        let b = Tensor.randn([16], generator: &rng), s = Tensor.randn([3, 16, 1, 1], generator: &rng), t = Tensor.randn([3, 16, 1, 1], generator: &rng)
        let g = Tensor.randn([3, 16, 5, 7], generator: &rng), res = Tensor.randn([3, 16, 5, 7], generator: &rng)
        func run(_ fused: Bool) throws -> [Tensor] {
            let ins = [x, w, b, s, t, res].map { v -> Tensor in let c = v.copy(); c.requiresGrad = true; return c }
            let y = fused
                ? try Tensor.groupNormSiLU(ins[0], groups: 8, weight: ins[1], bias: ins[2], scale: ins[3], shift: ins[4], residual: ins[5])
                : try (Tensor.groupNorm(ins[0], groups: 8, weight: ins[1], bias: ins[2]) * (ins[3] + 1) + ins[4]).silu() + ins[5]
            try y.backward(gradient: g)
            return [y] + ins.map { $0.grad ?? Tensor(zeros: [1]) }
        }
        for (name, (a, r)) in zip(["y", "dx", "dw", "db", "dscale", "dshift", "dresidual"], zip(try run(true), try run(false))) {
            XCTAssertEqual(a.shape, r.shape, name)
            let scale = r.values.map(Swift.abs).max() ?? 1
            XCTAssertLessThan(zip(a.values, r.values).map { Swift.abs($0 - $1) }.max() ?? 1, 2e-5 * scale, name)
        }
        // Under no_grad the fused op skips xhat (a separate code path): same values.
        let recorded = try run(true)[0]
        let sampled = try withNoGrad { try Tensor.groupNormSiLU(x, groups: 8, weight: w, bias: b, scale: s, shift: t, residual: res) }
        XCTAssertFalse(sampled.requiresGrad)
        XCTAssertLessThan(zip(sampled.values, recorded.values).map { Swift.abs($0 - $1) }.max() ?? 1, 1e-5)
        let plain = try withNoGrad { try Tensor.groupNormSiLU(x, groups: 4, weight: w, bias: b) }
        let plainRef = try withNoGrad { try Tensor.groupNorm(x, groups: 4, weight: w, bias: b).silu() }
        XCTAssertLessThan(zip(plain.values, plainRef.values).map { Swift.abs($0 - $1) }.max() ?? 1, 1e-5)
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
        for (m, n, k, ta, tb) in [(40, 3000, 37, false, false), (3000, 40, 29, true, false), (513, 700, 64, false, true), (700, 513, 16, true, true)] {
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
        for (m, n, k, beta) in [(256, 16, 256, 2), (136, 32, 300, 2), (512, 8, 1024, 2), (100, 64, 200, 2), (200, 600, 40, 0)] as [(Int, Int, Int, Float)] {
            let (lda, ldb, ldc) = (k + 3, n + 5, n + 7)
            let a = Tensor.randn([m * lda], generator: &rng), b = Tensor.randn([k * ldb], generator: &rng)
            let c = Tensor.randn([m * ldc], generator: &rng)
            let c0 = c.values
            BLAS.sgemmSerial(c.data, a.data, b.data, m: m, n: n, k: k, alpha: 0.5, beta: beta, lda: lda, ldb: ldb, ldc: ldc)
            var worst = 0.0
            for i in 0..<m {
                for j in 0..<n {
                    var dot = 0.0
                    for p in 0..<k { dot += Double(a.data[i * lda + p]) * Double(b.data[p * ldb + j]) }
                    worst = max(worst, abs(0.5 * dot + Double(beta) * Double(c0[i * ldc + j]) - Double(c.data[i * ldc + j])))
                }
                for j in n..<ldc { XCTAssertEqual(c.data[i * ldc + j], c0[i * ldc + j], "padding of row \(i) written") }
            }
            XCTAssertLessThan(worst, 1e-3, "\(m)x\(n)x\(k)")
        }
    }
}
