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
                let (yi, dxi, dwi) = try run(try x.narrowed(dim: 0, start: i, length: 1),
                                             try g.narrowed(dim: 0, start: i, length: 1))
                XCTAssertLessThan(maxDiff(yi, try y.narrowed(dim: 0, start: i, length: 1)), 1e-4, "y image \(i)")
                XCTAssertLessThan(maxDiff(dxi, try dx.narrowed(dim: 0, start: i, length: 1)), 1e-3, "dx image \(i)")
                for k in 0..<dw.count { dwSum[k] += dwi.data[k] }
            }
            let scale = dwSum.map(Swift.abs).max() ?? 1
            for k in 0..<dw.count {
                XCTAssertEqual(dw.data[k], dwSum[k], accuracy: 1e-4 * scale, "dw[\(k)] stride \(stride)")
            }
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
        for n in 0..<2 { for ci in 0..<3 { for iy in 0..<4 { for ix in 0..<5 {
            for co in 0..<2 { for ky in 0..<4 { for kx in 0..<4 {
                let oy = iy * 2 - 1 + ky, ox = ix * 2 - 1 + kx
                guard oy >= 0, oy < 8, ox >= 0, ox < 10 else { continue }
                ref.data[((n * 2 + co) * 8 + oy) * 10 + ox] +=
                    x.data[((n * 3 + ci) * 4 + iy) * 5 + ix] * w.data[((ci * 2 + co) * 4 + ky) * 4 + kx]
            } } }
        } } } }
        XCTAssertLessThan(maxDiff(y, ref), 1e-4)
    }

    func testConvShapeErrors() throws {
        let mismatched = (Tensor(zeros: [1, 2, 4, 4]), Tensor(zeros: [3, 5, 3, 3]))
        XCTAssertThrowsError(try Tensor.conv2d(mismatched.0, weight: mismatched.1, bias: nil)) { e in
            XCTAssertEqual((e as? TensorError)?.message,
                           "conv2d: input [1, 2, 4, 4] does not match weight [3, 5, 3, 3] "
                           + "(expected input (N, 5, H, W))")
        }
        XCTAssertThrowsError(try Tensor.conv2d(Tensor(zeros: [1, 1, 2, 2]), weight: Tensor(zeros: [1, 1, 3, 3]),
                                               bias: nil))
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
