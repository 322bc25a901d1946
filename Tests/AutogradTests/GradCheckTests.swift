@testable import Autograd
import Foundation
import XCTest

/// Every differentiable op, checked against central finite differences. Adding an op means
/// adding a line here (testEveryRecordingOpHasAGradientCheck fails until there is one).
final class GradCheckTests: XCTestCase {
    var rng = Generator(seed: 7)

    func randn(_ shape: [Int], scale: Float = 1) -> Tensor { Tensor.randn(shape, generator: &rng) * scale }
    /// Values in [lo, hi], for ops with a restricted domain or kinks to stay away from.
    func uniform(_ shape: [Int], _ lo: Float, _ hi: Float) -> Tensor {
        let t = Tensor(uninitialized: shape)
        rng.fillUniform(t.data, count: t.count, low: lo, high: hi)
        return t
    }
    /// Values whose magnitude is at least 0.2 (away from the kink of abs / l1 / clamp edges).
    func awayFromZero(_ shape: [Int]) -> Tensor {
        let t = uniform(shape, 0.2, 1.5)
        for i in 0..<t.count where rng.uniform() < 0.5 { t.data[i] = -t.data[i] }
        return t
    }

    /// Set by testEveryRecordingOpHasAGradientCheck: `check` then only collects the ops that each
    /// check's graph records, without the finite differences.
    var covered: Set<Op>?

    func check(_ name: String, _ inputs: [Tensor], tolerance: Double = 5e-3, eps: Float = 1e-2,
               _ f: ([Tensor]) throws -> Tensor) throws {
        if covered != nil {
            let xs = inputs.map { x -> Tensor in
                let c = x.copy()
                c.requiresGrad = true
                return c
            }
            covered?.formUnion(recordedOps(try f(xs)))
            return
        }
        let errors = try gradCheck(inputs, eps: eps, f)
        for (i, e) in errors.enumerated() {
            XCTAssertLessThan(e, tolerance,
                              "\(name): input \(i) gradient differs from finite differences (relative error \(e))")
        }
    }

    func testElementwiseBinaryWithBroadcasting() throws {
        try check("add", [randn([2, 3, 4]), randn([3, 1])]) { try $0[0] + $0[1] }
        try check("sub", [randn([2, 3, 1]), randn([4])]) { try $0[0] - $0[1] }
        try check("mul", [randn([2, 3, 4, 2]), randn([2, 3, 1, 1])]) { try $0[0] * $0[1] }
        try check("div", [randn([3, 4]), uniform([1, 4], 0.5, 2)]) { try $0[0] / $0[1] }
        try check("scalar ops", [randn([5])]) { (2 - $0[0] * 3 + 1) / 4 }
        try check("scalar over tensor", [uniform([5], 0.5, 2)]) { 2 / $0[0] }
    }

    func testElementwiseUnary() throws {
        try check("abs", [awayFromZero([6])]) { $0[0].abs() }
        try check("sqrt", [uniform([6], 0.5, 3)]) { $0[0].sqrt() }
        try check("exp", [randn([6])]) { $0[0].exp() }
        try check("log", [uniform([6], 0.5, 3)]) { $0[0].log() }
        try check("square", [randn([6])]) { $0[0].square() }
        try check("sin", [randn([6])]) { $0[0].sin() }
        try check("cos", [randn([6])]) { $0[0].cos() }
        try check("pow", [uniform([6], 0.5, 2)]) { $0[0].pow(2.5) }
        try check("clamp", [awayFromZero([8])]) { $0[0].clamp(-0.5, 0.7) }
        try check("silu", [randn([8], scale: 2)]) { $0[0].silu() }
        try check("gelu", [randn([8], scale: 2)]) { $0[0].gelu() }
        try check("relu", [awayFromZero([8])]) { $0[0].relu() }
        try check("negate", [randn([4])]) { -$0[0] }
    }

    func testReductions() throws {
        try check("sum", [randn([2, 3])]) { $0[0].sum() }
        try check("mean", [randn([2, 3])]) { $0[0].mean() }
        try check("sum(dim)", [randn([2, 3, 4])]) { try $0[0].sum(dim: 1) }
        try check("mean(dim)", [randn([2, 3, 4])]) { try $0[0].mean(dim: 2) }
        try check("max", [try Tensor([0.1, 2.0, -1.0, 0.5], shape: [2, 2])]) { try $0[0].max() }
        try check("min", [try Tensor([0.1, 2.0, -1.0, 0.5], shape: [2, 2])]) { try $0[0].min() }
    }

    func testShapeOps() throws {
        try check("reshape", [randn([2, 6])]) { try $0[0].reshaped([3, -1]).square() }
        try check("permute", [randn([2, 3, 4])]) { try $0[0].permuted([2, 0, 1]).square() }
        try check("narrow", [randn([3, 5])]) { try $0[0].narrowed(dim: 1, start: 1, length: 3).square() }
        try check("cat", [randn([2, 2, 3]), randn([2, 1, 3])]) { try Tensor.cat([$0[0], $0[1]], dim: 1).square() }
    }

    func testMatrixProducts() throws {
        try check("matmul", [randn([3, 4]), randn([4, 2])]) { try $0[0].matmul($0[1]) }
        try check("linear", [randn([3, 4]), randn([5, 4]), randn([5])]) {
            try .linear($0[0], weight: $0[1], bias: $0[2])
        }
    }

    func testConvolutions() throws {
        try check("conv2d 3x3 pad 1", [randn([2, 2, 5, 5]), randn([3, 2, 3, 3]), randn([3])]) {
            try .conv2d($0[0], weight: $0[1], bias: $0[2], stride: 1, padding: 1)
        }
        // even height, width a multiple of 4: the Winograd path, forward and both gradients
        for (n, c, o, h, w) in [(2, 3, 4, 4, 8), (1, 2, 3, 6, 4)] {
            XCTAssertTrue(winogradApplies(c: c, o: o, h: h, w: w, kh: 3, kw: 3, stride: 1, pad: 1))
            let inputs = [randn([n, c, h, w]), randn([o, c, 3, 3]), randn([o])]
            try check("conv2d 3x3 pad 1 Winograd \(n)x\(c)->\(o) \(h)x\(w)", inputs) {
                try .conv2d($0[0], weight: $0[1], bias: $0[2], stride: 1, padding: 1)
            }
        }
        try check("conv2d 3x3 stride 2", [randn([1, 2, 6, 5]), randn([2, 2, 3, 3]), randn([2])]) {
            try .conv2d($0[0], weight: $0[1], bias: $0[2], stride: 2, padding: 1)
        }
        try check("conv2d 1x1 no bias", [randn([2, 3, 3, 3]), randn([4, 3, 1, 1])]) {
            try .conv2d($0[0], weight: $0[1], bias: nil)
        }
        try check("conv2d 2x3 kernel", [randn([1, 1, 4, 5]), randn([2, 1, 2, 3]), randn([2])]) {
            try .conv2d($0[0], weight: $0[1], bias: $0[2], stride: 1, padding: 0)
        }
        try check("conv_transpose2d 4x4 s2 p1", [randn([2, 2, 3, 3]), randn([2, 3, 4, 4]), randn([3])]) {
            try .convTranspose2d($0[0], weight: $0[1], bias: $0[2], stride: 2, padding: 1)
        }
    }

    func testNormalisation() throws {
        try check("group_norm", [randn([2, 4, 3, 3], scale: 2), uniform([4], 0.5, 1.5), randn([4])]) {
            try .groupNorm($0[0], groups: 2, weight: $0[1], bias: $0[2])
        }
        try check("weight_standardize", [randn([3, 2, 3, 3])]) { try $0[0].weightStandardized() }
        let modulated = [randn([2, 4, 3, 5], scale: 2), uniform([4], 0.5, 1.5), randn([4]),
                         randn([2, 4, 1, 1], scale: 0.5), randn([2, 4, 1, 1], scale: 0.5), randn([2, 4, 3, 5])]
        try check("group_norm_silu with modulation and residual", modulated) {
            try .groupNormSiLU($0[0], groups: 2, weight: $0[1], bias: $0[2], scale: $0[3], shift: $0[4],
                               residual: $0[5])
        }
        try check("group_norm_silu plain", [randn([2, 4, 17], scale: 2), uniform([4], 0.5, 1.5), randn([4])]) {
            try .groupNormSiLU($0[0], groups: 4, weight: $0[1], bias: $0[2])
        }
    }

    func testAttentionAndSoftmax() throws {
        try check("softmax", [randn([3, 5])]) { try $0[0].softmax() }
        try check("attention (sgemm path)", [randn([2, 3 * 2 * 3, 5])]) { try .attention($0[0], heads: 2, dim: 3) }
        try check("attention (fused kernels)", [randn([1, 3 * 16, 16], scale: 0.5)]) {
            try .attention($0[0], heads: 1, dim: 16)
        }
    }

    func testMiscOps() throws {
        try check("embedding", [randn([4, 3])]) { try .embedding($0[0], indices: [2, -1, 0, 2]) }
        try check("space_to_depth", [randn([2, 2, 4, 6])]) { try $0[0].spaceToDepth(2).square() }
        try check("l1_loss", [awayFromZero([2, 5]), Tensor(zeros: [2, 5])]) { try .l1Loss($0[0], $0[1]) }
        try check("mse_loss", [randn([2, 5]), randn([2, 5])]) { try .mseLoss($0[0], $0[1]) }
        try check("cross_entropy", [randn([3, 4], scale: 2)]) { try .crossEntropy($0[0], labels: [2, 0, 3]) }
        let w: [Float] = [0.5, 2, 0.25]
        try check("weighted_loss l1", [awayFromZero([3, 2, 2]), Tensor(zeros: [3, 2, 2])]) {
            try .weightedLoss($0[0], $0[1], weights: w, kind: .l1)
        }
        try check("weighted_loss l2", [randn([3, 4]), randn([3, 4])]) {
            try .weightedLoss($0[0], $0[1], weights: w, kind: .l2)
        }
        // differences on both sides of delta = 0.5, none within eps of the kink at +-delta
        let d = try Tensor([0.1, -0.3, 0.9, -1.4, 0.2, 1.1, -0.7, 0.05, -0.2, 0.8, 1.3, -0.1], shape: [3, 4])
        try check("weighted_loss huber", [d, Tensor(zeros: [3, 4])]) {
            try .weightedLoss($0[0], $0[1], weights: w, kind: .huber(delta: 0.5))
        }
        try check("weighted_loss unweighted", [randn([2, 3])]) {
            try .weightedLoss($0[0], Tensor(zeros: [2, 3]), weights: nil, kind: .l2)
        }
    }

    /// The weighted loss against a hand computation; unweighted it is l1_loss / mse_loss; bad weights are errors.
    func testWeightedLossValueAndErrors() throws {
        let p = try Tensor([1, -2, 0.5, 3], shape: [2, 2]), t = Tensor(zeros: [2, 2])
        // huber, delta 1: row 0 = 0.5 + (2 - 0.5) = 2, row 1 = 0.125 + (3 - 0.5) = 2.625; weights 2 and 0.5
        XCTAssertEqual(try Tensor.weightedLoss(p, t, weights: [2, 0.5], kind: .huber(delta: 1)).item(),
                       (2 * 2 + 0.5 * 2.625) / 4, accuracy: 1e-6)
        XCTAssertEqual(try Tensor.weightedLoss(p, t, weights: [2, 0.5], kind: .l2).item(), (2 * 5 + 0.5 * 9.25) / 4,
                       accuracy: 1e-6)
        XCTAssertEqual(try Tensor.weightedLoss(p, t, weights: nil, kind: .l1).item(), try Tensor.l1Loss(p, t).item())
        XCTAssertEqual(try Tensor.weightedLoss(p, t, weights: [1, 1], kind: .l2).item(),
                       try Tensor.mseLoss(p, t).item())
        XCTAssertThrowsError(try Tensor.weightedLoss(p, t, weights: [1], kind: .l1)) { e in
            XCTAssertEqual((e as? TensorError)?.message, "weighted_loss: 1 weights for a batch of 2")
        }
        XCTAssertThrowsError(try Tensor.weightedLoss(p, t, weights: [1, -1], kind: .l1)) { e in
            XCTAssertEqual((e as? TensorError)?.message,
                           "weighted_loss: weight 2 is -1.0; weights must be finite and >= 0")
        }
        XCTAssertThrowsError(try Tensor.weightedLoss(p, t, weights: nil, kind: .huber(delta: 0))) { e in
            XCTAssertEqual((e as? TensorError)?.message, "weighted_loss: huber delta 0.0 must be finite and > 0")
        }
    }

    /// The ops recorded in the graph that produced `y`.
    func recordedOps(_ y: Tensor) -> Set<Op> {
        var ops = Set<Op>(), seen = Set<ObjectIdentifier>(), stack = [y]
        while let t = stack.popLast() {
            guard let node = t.creator, seen.insert(ObjectIdentifier(node)).inserted else { continue }
            ops.insert(node.op)
            stack.append(contentsOf: node.inputs)
        }
        return ops
    }

    /// Every op that records a backward (every case of `Op`: `recorded` takes one) appears in the
    /// graph of at least one finite-difference check above.
    func testEveryRecordingOpHasAGradientCheck() throws {
        covered = []
        defer { covered = nil }
        let groups = [testElementwiseBinaryWithBroadcasting, testElementwiseUnary, testReductions, testShapeOps,
                      testMatrixProducts, testConvolutions, testNormalisation, testAttentionAndSoftmax, testMiscOps]
        for group in groups { try group() }
        let missing = Op.allCases.filter { !(covered ?? []).contains($0) }.map(\.rawValue)
        XCTAssertEqual(missing, [], "ops that record a backward but have no finite-difference check in GradCheckTests")
    }

    /// Cross-entropy's value against a hand computation, and its label checks.
    func testCrossEntropyValueAndErrors() throws {
        let z = try Tensor([1, 2, 3, 0, 0, 0], shape: [2, 3])
        let loss = try Tensor.crossEntropy(z, labels: [2, 1]).item()
        // row 0: log(e^1 + e^2 + e^3) - 3; row 1: log 3
        let expected = (Foundation.log(exp(1.0) + exp(2.0) + exp(3.0)) - 3 + Foundation.log(3.0)) / 2
        XCTAssertEqual(Double(loss), expected, accuracy: 1e-6)
        XCTAssertThrowsError(try Tensor.crossEntropy(z, labels: [3, 0])) { e in
            XCTAssertEqual((e as? TensorError)?.message, "cross_entropy: label 3 out of range 0..2")
        }
        XCTAssertThrowsError(try Tensor.crossEntropy(z, labels: [0])) { e in
            XCTAssertEqual((e as? TensorError)?.message, "cross_entropy: 1 labels for 2 rows of logits")
        }
    }

    /// The check itself must be able to fail: a deliberately wrong backward is caught.
    func testGradCheckCatchesAWrongGradient() throws {
        let errors = try gradCheck([randn([5])]) { x in
            // forward x^2, but the recorded derivative is the one of x^3
            x[0].unary(.square, { $0 * $0 }) { x, _ in 3 * x * x }
        }
        XCTAssertGreaterThan(errors[0], 0.1)
    }
}
