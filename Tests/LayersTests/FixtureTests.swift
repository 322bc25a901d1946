import Autograd
import Foundation
@testable import Layers
import Storage
import TestSupport
import XCTest

/// Golden vectors from the PyTorch reference (Tests/Fixtures, see its README for keys and the
/// tolerances used here).
final class FixtureTests: XCTestCase {
    var ops: SafeTensors { get throws { try OpsFixture.file } }

    /// Forward, L1 loss, backward of the whole model: output, loss, activations, every
    /// parameter gradient and the input gradient (the same check as `ddpm verify`).
    func testWholeModelMatchesReference() throws {
        let rows = try ReferenceCheck.run(directory: fixturesDir)
        XCTAssertGreaterThan(rows.filter { $0.name.hasPrefix("grad/") }.count, 10)
        for row in rows {
            XCTAssert(row.passed,
                      "\(row.name): relative error \(row.relative) > \(row.tolerance) (max_abs \(row.maxAbs))")
        }
    }

    /// Runs `module` on the case's inputs, backpropagates its grad_out, compares everything.
    func checkModule(_ prefix: String, _ module: Module, inputs: [String], tolerance: Double,
                     forward: ([Tensor]) throws -> Tensor) throws {
        let c = try ops.group(prefix)
        try module.load(c, strict: true, prefix: "param/")
        let xs = try inputs.map { name -> Tensor in
            let x = try XCTUnwrap(c[name], "\(prefix)/\(name)").copy()
            x.requiresGrad = true
            return x
        }
        let out = try forward(xs)
        expectClose("\(prefix)/out", out, c["out"], tolerance: tolerance)
        try out.backward(gradient: XCTUnwrap(c["grad_out"]))
        for (name, x) in zip(inputs, xs) {
            expectClose("\(prefix)/grad_\(name)", x.grad, c["grad_\(name)"], tolerance: tolerance)
        }
        for (name, p) in module.namedParameters() {
            expectClose("\(prefix)/grad_param/\(name)", p.grad, c["grad_param/\(name)"], tolerance: tolerance)
        }
    }

    func testWeightStandardizedConv() throws {
        var rng = Generator(seed: 0)
        let conv = Conv2d(4, 8, kernel: 3, padding: 1, standardized: true, generator: &rng)
        let c = try ops.group("ws_conv")
        try conv.load(c, strict: true, prefix: "param/")
        expectClose("ws_conv/w_hat", try conv.weight.weightStandardized(), c["w_hat"], tolerance: 2e-6)
        try checkModule("ws_conv", conv, inputs: ["x"], tolerance: 2e-6) { try conv($0[0]) }
    }

    func testGroupNorm() throws {
        let c = try ops.group("group_norm")
        let groups = Int(try XCTUnwrap(c["num_groups"]).data[0])
        let norm = GroupNorm(groups: groups, channels: try XCTUnwrap(c["x"]).shape[1])
        try checkModule("group_norm", norm, inputs: ["x"], tolerance: 2e-6) { try norm($0[0]) }
    }

    func testAttention() throws {
        var rng = Generator(seed: 0)
        let x = try XCTUnwrap(try ops["attention/x"])
        let attn = SelfAttention(x.shape[1], heads: 4, headDim: 32, generator: &rng)
        try checkModule("attention", attn, inputs: ["x"], tolerance: 5e-6) { try attn($0[0]) }
    }

    func testConvTranspose() throws {
        var rng = Generator(seed: 0)
        let w = try XCTUnwrap(try ops["conv_transpose/param/weight"])
        let up = ConvTranspose2d(w.shape[0], w.shape[1], kernel: w.shape[2], stride: 2, padding: 1, generator: &rng)
        try checkModule("conv_transpose", up, inputs: ["x"], tolerance: 5e-6) { try up($0[0]) }
    }

    func testSpaceToDepthIsExact() throws {
        let c = try ops.group("space_to_depth")
        let x = try XCTUnwrap(c["x"]).copy()
        x.requiresGrad = true
        let y = try x.spaceToDepth(2)
        XCTAssertEqual(y.values, try XCTUnwrap(c["out"]).values)
        try y.backward(gradient: XCTUnwrap(c["grad_out"]))
        XCTAssertEqual(x.grad?.values, try XCTUnwrap(c["grad_x"]).values)
    }

    func testResnetBlock() throws {
        var rng = Generator(seed: 0)
        let c = try ops.group("resnet_block")
        let x = try XCTUnwrap(c["x"]), temb = try XCTUnwrap(c["temb"])
        let outCh = try XCTUnwrap(c["out"]).shape[1]
        let block = ResnetBlock(x.shape[1], outCh, timeDim: temb.shape[1], groups: 8, generator: &rng)
        try checkModule("resnet_block", block, inputs: ["x", "temb"], tolerance: 1e-5) { try block($0[0], $0[1]) }
    }

    func testSinusoidalEmbedding() throws {
        let c = try ops.group("sinusoidal")
        let t = try XCTUnwrap(c["t"]).values.map { Int($0) }
        for d in [32, 64, 128] {
            let ours = sinusoidalEmbedding(t, dim: d)
            expectClose("sinusoidal/d\(d)", ours, c["d\(d)"], tolerance: 5e-5)
            expectClose("sinusoidal/d\(d)_f64", ours, c["d\(d)_f64"], tolerance: 5e-4)
        }
    }
}
