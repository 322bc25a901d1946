import Autograd
import Foundation
@testable import Layers
import TestSupport
import XCTest

final class UNetTests: XCTestCase {
    /// The default config is the reference model: same names, shapes and order as its state_dict.
    func testReferenceConfigHasTheSeedsStateDict() throws {
        let text = try String(contentsOfFile: "\(fixturesDir)/../Fixtures/seed_keys.txt", encoding: .utf8)
        let rows = text.split(separator: "\n").filter { !$0.hasPrefix("#") }.map { $0.split(separator: "\t") }
        var rng = Generator(seed: 0)
        let params = try UNet(UNetConfig(), generator: &rng).namedParameters()
        XCTAssertEqual(params.count, rows.count)
        for ((name, t), row) in zip(params, rows) {
            XCTAssertEqual(name, String(row[0]))
            XCTAssertEqual(Shape.describe(t.shape), String(row[1]), name)
        }
        XCTAssertEqual(params.reduce(0) { $0 + $1.1.count }, 51_067_777)
    }

    func testInitialisationFollowsPyTorchDefaults() throws {
        var rng = Generator(seed: 0)
        let model = try UNet(UNetConfig(base: 16, levels: 2, timeDim: 32, imageSize: 16), generator: &rng)
        let p = Dictionary(uniqueKeysWithValues: model.namedParameters())
        let w = try XCTUnwrap(p["downsample.0.block2.block1.proj.weight"])  // fan_in 16*9
        let bound = 1 / Float(16 * 9).squareRoot()
        XCTAssert(w.values.allSatisfy { Swift.abs($0) <= bound })
        XCTAssertGreaterThan(w.values.map { Swift.abs($0) }.max() ?? 0, 0.9 * bound)
        XCTAssertEqual(p["downsample.0.block1.block1.norm.weight"]?.values, [Float](repeating: 1, count: 16))
        XCTAssertEqual(p["downsample.0.block1.block1.norm.bias"]?.values, [Float](repeating: 0, count: 16))
        let up = try XCTUnwrap(p["upsample.0.upconv.weight"])  // ConvTranspose: fan_in = out * 16
        XCTAssert(up.values.allSatisfy { Swift.abs($0) <= 1 / Float(up.shape[1] * 16).squareRoot() })
    }

    func testUnconditionalLabelIsAZeroEmbedding() throws {
        var rng = Generator(seed: 1)
        let model = try UNet(UNetConfig(base: 8, levels: 1, timeDim: 8, attention: [false], attentionMid: false,
                                        imageSize: 4), generator: &rng)
        let x = Tensor.randn([2, 1, 4, 4], generator: &rng)
        let a = try withNoGrad { try model(x, t: [3, 5], labels: [-1, -1]) }
        let b = try withNoGrad { try model(x, t: [3, 5], labels: nil) }
        XCTAssertEqual(a.values, b.values)
        let c = try withNoGrad { try model(x, t: [3, 5], labels: [2, 2]) }
        XCTAssertNotEqual(a.values, c.values)
    }

    /// A blended label's row is (1 - w) e_a + w e_b (w = 0 and 1 exactly e_a and e_b), and its
    /// gradient reaches both rows with those weights (it is built from recorded ops).
    func testBlendedLabelsMixTwoEmbeddingRows() throws {
        var rng = Generator(seed: 4)
        let emb = Embedding(4, 3, generator: &rng)
        let w = emb.weight.values
        let labels = [Label(from: 1, to: 2, weight: 0.25), Label(from: 3, to: 0, weight: 0),
                      Label(from: 3, to: 0, weight: 1)]
        let y = try emb(labels)
        for j in 0..<3 {
            XCTAssertEqual(y.values[j], 0.75 * w[3 + j] + 0.25 * w[6 + j], accuracy: 1e-6)
            XCTAssertEqual(y.values[3 + j], w[9 + j], "w = 0: exactly row 3")
            XCTAssertEqual(y.values[6 + j], w[j], "w = 1: exactly row 0")
        }
        XCTAssertEqual(try emb([Label(2), Label.none]).values, try emb([2, -1]).values)
        let r = Tensor.randn([3, 3], generator: &rng)
        try (y * r).sum().backward()
        let g = try XCTUnwrap(emb.weight.grad).values, rv = r.values
        for j in 0..<3 {
            XCTAssertEqual(g[3 + j], 0.75 * rv[j], accuracy: 1e-6)
            XCTAssertEqual(g[6 + j], 0.25 * rv[j], accuracy: 1e-6)
            XCTAssertEqual(g[9 + j], rv[3 + j], accuracy: 1e-6)
            XCTAssertEqual(g[j], rv[6 + j], accuracy: 1e-6)
        }
        let model = try UNet(UNetConfig(base: 8, levels: 1, timeDim: 8, attention: [false], attentionMid: false,
                                        imageSize: 4), generator: &rng)
        XCTAssertThrowsError(try model(Tensor(zeros: [1, 1, 4, 4]), t: [1],
                                       conditions: [Label(from: 0, to: 10, weight: 0.5)])) { e in
            XCTAssertTrue("\(e)".contains("label 10 out of range [0, 10)"), "\(e)")
        }
    }

    func testBadInputsAreErrorsNotCrashes() throws {
        var rng = Generator(seed: 1)
        let model = try UNet(UNetConfig(base: 8, levels: 2, timeDim: 8, imageSize: 8), generator: &rng)
        func message(_ body: () throws -> Void) -> String {
            do { try body(); return "no error" } catch { return (error as? TensorError)?.message ?? "\(error)" }
        }
        XCTAssertEqual(message { _ = try model(Tensor(zeros: [1, 1, 6, 6]), t: [1], labels: nil) },
                       "unet: input [1, 1, 6, 6] is not (batch, 1, H, W) with H and W divisible by 4 (2^levels)")
        XCTAssertEqual(message { _ = try model(Tensor(zeros: [2, 1, 8, 8]), t: [1], labels: nil) },
                       "unet: 1 timesteps for a batch of 2")
        XCTAssertEqual(message { _ = try model(Tensor(zeros: [1, 1, 8, 8]), t: [1], labels: [10]) },
                       "unet: label 10 out of range [0, 10) (-1 = unconditional)")
        XCTAssertEqual(message { _ = try UNet(UNetConfig(base: 12, groups: 8), generator: &rng) },
                       "unet config: groups 8 must divide base 12")
        XCTAssertEqual(message { _ = try UNetConfig(json: #"{"attention": "odd"}"#) },
                       #"unet config: attention must be "even" or a list of booleans, got odd"#)
    }

    func testConfigJSONRoundTripAndReferenceKeys() throws {
        let c = UNetConfig(base: 32, levels: 3, timeDim: 64, attention: [false, false, true], attentionMid: false)
        XCTAssertEqual(try UNetConfig(json: c.json), c)
        let ref = try UNetConfig(json: #"{"base": 16, "resnet_depth": 2, "time_emb_dim": 32, "num_classes": 10, "#
                                     + #""in_channels": 1, "size": 16}"#)
        XCTAssertEqual(ref, UNetConfig(base: 16, levels: 2, timeDim: 32, imageSize: 16))
    }

    func testAdamMatchesPyTorchFormula() throws {
        // One parameter, constant gradient 0.5, lr 0.1: after step 1 the bias-corrected update is
        // -lr * m/(sqrt(v)+eps) = -0.1 (sign of the gradient), after step 2 also -0.1.
        let p = try Tensor([1.0], shape: [1])
        p.requiresGrad = true
        let opt = Adam([p], lr: 0.1)
        for _ in 0..<2 {
            p.grad = try Tensor([0.5], shape: [1])
            opt.step()
        }
        XCTAssertEqual(p.values[0], 0.8, accuracy: 1e-6)
        // clipping scales the gradient before the moments; the returned norm is the raw one
        let q = try Tensor([0.0, 0.0], shape: [2])
        let clipped = Adam([q], lr: 0.1, clipNorm: 1)
        q.grad = try Tensor([3, 4], shape: [2])
        XCTAssertEqual(clipped.step(), 5, accuracy: 1e-6)
        XCTAssertEqual(clipped.m[0].values[0], 0.1 * 0.6, accuracy: 1e-6)
    }

    /// The vectorised update (16 lanes, scalar tail) against the formula written out per element,
    /// with weight decay and clipping, over three steps.
    func testAdamVectorPathMatchesFormula() throws {
        var rng = Generator(seed: 3)
        let p = Tensor.randn([37], generator: &rng)
        p.requiresGrad = true
        let opt = Adam([p], lr: 0.01, weightDecay: 0.1, clipNorm: 1)
        var w = p.values.map(Double.init), m = [Double](repeating: 0, count: 37), v = m
        for step in 1...3 {
            let g = Tensor.randn([37], generator: &rng)
            p.grad = g
            let norm = opt.step()
            let gs = Double(norm > 1 ? 1 / (norm + 1e-6) : 1)
            for i in 0..<37 {
                let gi = Double(g.values[i]) * gs + 0.1 * w[i]
                m[i] = 0.9 * m[i] + 0.1 * gi
                v[i] = 0.999 * v[i] + 0.001 * gi * gi
                let mh = m[i] / (1 - pow(0.9, Double(step))), vh = v[i] / (1 - pow(0.999, Double(step)))
                w[i] -= 0.01 * mh / (vh.squareRoot() + 1e-8)
            }
        }
        for i in 0..<37 { XCTAssertEqual(Double(p.values[i]), w[i], accuracy: 1e-5, "element \(i)") }
        // the gradient norm over several chunks and tensors, against a double sum
        let big = Tensor.randn([10_000], generator: &rng), small = Tensor.randn([7], generator: &rng)
        let a = Tensor(zeros: [10_000]), b = Tensor(zeros: [7])
        (a.grad, b.grad) = (big, small)
        let exact = (big.values + small.values).reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        XCTAssertEqual(Double(Adam([a, b]).gradientNorm()), exact, accuracy: 1e-5 * exact)
    }
}
