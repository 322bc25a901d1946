import Autograd
import Diffusion
import Foundation
@testable import Layers
import XCTest

/// Golden vectors from the PyTorch reference (Tests/Fixtures, see its README for keys and the
/// tolerances used here).
final class FixtureTests: XCTestCase {
    static var opsFile: SafeTensors?
    var ops: SafeTensors {
        get throws {
            if let f = Self.opsFile { return f }
            let f = try SafeTensors.read("\(fixturesDir)/ops.safetensors")
            Self.opsFile = f
            return f
        }
    }

    /// Forward, L1 loss, backward of the whole model: output, loss, activations, every
    /// parameter gradient and the input gradient (the same check as `ddpm verify`).
    func testWholeModelMatchesReference() throws {
        let rows = try ReferenceCheck.run(directory: fixturesDir)
        XCTAssertGreaterThan(rows.filter { $0.name.hasPrefix("grad/") }.count, 10)
        for row in rows {
            XCTAssert(row.passed, "\(row.name): relative error \(row.relative) > \(row.tolerance) (max_abs \(row.maxAbs))")
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
        for (name, x) in zip(inputs, xs) { expectClose("\(prefix)/grad_\(name)", x.grad, c["grad_\(name)"], tolerance: tolerance) }
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

    /// Schedule arrays in float64 (ours are Double) and the float32 ones the seed uses. Our
    /// alpha-bar before step 0 is 1, the reference's 0, so *_prev and the posterior variance are
    /// compared from index 1.
    func testScheduleArrays() throws {
        let f = try ops
        for (name, schedule) in [("linear", try Schedule.linear(steps: 1001)), ("cosine", try Schedule.cosine(steps: 1000))] {
            let arrays: [(String, [Double], Int)] = [
                ("betas", schedule.betas, 0), ("alphas", schedule.alphas, 0), ("alphas_cumprod", schedule.alphaBar, 0),
                ("alphas_cumprod_prev", schedule.alphaBarPrev, 1), ("posterior_variance", schedule.posteriorVariance, 1),
            ]
            for (key, ours, from) in arrays {
                let ref64 = try XCTUnwrap(f["schedule/\(name)/\(key)"]).values
                let ref32 = try XCTUnwrap(f["schedule/\(name)_f32/\(key)"]).values
                XCTAssertEqual(ours.count, ref64.count, "\(name)/\(key) length")
                let maxRef = ref64.map { Double(Swift.abs($0)) }.max() ?? 1
                var e64 = 0.0, e32 = 0.0
                for i in from..<ours.count {
                    e64 = max(e64, Swift.abs(ours[i] - Double(ref64[i])))
                    e32 = max(e32, Swift.abs(ours[i] - Double(ref32[i])))
                }
                // float64 reference arrays are stored here as float32 (our reader converts), so
                // agreement is to float32 rounding.
                XCTAssertLessThan(e64 / maxRef, 1e-6, "\(name)/\(key) vs float64 reference")
                XCTAssertLessThan(e32 / maxRef, 2e-3, "\(name)/\(key) vs float32 reference")
            }
            XCTAssertEqual(schedule.alphaBarPrev[0], 1)
        }
    }

    func testAddNoise() throws {
        let c = try ops.group("q_sample")
        let s = try Schedule.linear(steps: 1001)
        let t = try XCTUnwrap(c["t"]).values.map { Int($0) }
        let xt = try s.addNoise(try XCTUnwrap(c["x0"]), t: t, noise: try XCTUnwrap(c["noise"]))
        expectClose("q_sample/x_t", xt, c["x_t"], tolerance: 1e-5)
    }

    /// One ancestral step with x0 clipping. The seed adds no noise on its last step (t = 1 with
    /// its 1001-step schedule), so that case is run with zero noise.
    func testAncestralStep() throws {
        let s = try Schedule.linear(steps: 1001)
        for tv in [1000, 500, 37, 1] {
            let c = try ops.group("sample_p/t\(tv)")
            let xt = try XCTUnwrap(c["x_t"])
            let noise = tv == 1 ? Tensor(zeros: xt.shape) : try XCTUnwrap(c["noise"])
            let (prev, _) = try s.ddpmStep(xt, eps: try XCTUnwrap(c["eps"]), t: tv, noise: noise)
            expectClose("sample_p/t\(tv)/x_prev", prev, c["x_prev"], tolerance: 2e-3)
            expectClose("sample_p/t\(tv)/x_prev_f64", prev, c["x_prev_f64"], tolerance: 1e-5)
        }
    }
}
