import Autograd
import Foundation
import Layers
import XCTest

/// The whole model in bf16 mixed precision against fp32: the forward and every parameter's
/// gradient within bf16's tolerance (on CPUs with AVX512-BF16; skipped with a message elsewhere).
final class BF16ModelTests: XCTestCase {
    func testModelForwardAndGradientsInBF16AreCloseToFP32() throws {
        guard Precision.hardwareBF16 else {
            throw XCTSkip("no AVX512-BF16 on this CPU (avx512_bf16 not in /proc/cpuinfo, or DDPM_NO_BF16 set): "
                          + "the model's bf16 path is not run here")
        }
        var rng = Generator(seed: 11)
        // every kind of product: Winograd 3x3 at 16x16, 8x8 and 4x4, 1x1, transposed, linear, attention
        let model = try UNet(UNetConfig(base: 16, levels: 2, timeDim: 32, imageSize: 16), generator: &rng)
        let x = Tensor.randn([3, 1, 16, 16], generator: &rng), gy = Tensor.randn([3, 1, 16, 16], generator: &rng)
        func run(_ p: Precision) throws -> (Tensor, [Tensor]) {
            model.zeroGrad()
            let y = try Precision.with(p) { try model(x, t: [5, 300, 900], labels: [1, -1, 7]) }
            try y.backward(gradient: gy)
            return (y.copy(), model.parameters.map { $0.grad?.copy() ?? Tensor(zeros: $0.shape) })
        }
        let (y32, g32) = try run(.fp32), (y16, g16) = try run(.bf16)
        func relative(_ a: [Float], _ b: [Float]) -> Float {
            let diff = zip(a, b).reduce(Float(0)) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
            let norm = b.reduce(Float(0)) { $0 + $1 * $1 }
            return (diff / Swift.max(norm, 1e-30)).squareRoot()
        }
        // Each product is within ~0.3 % of fp32 (BF16Tests); through the model's ~30 layers, with
        // GroupNorm rescaling, the output drifts ~2 % and the gradients ~5 % (median over the
        // parameters; up to ~10 % for biases and norm parameters, whose gradients are sums with
        // much cancellation).
        let forward = relative(y16.values, y32.values)
        XCTAssertLessThan(forward, 0.04, "forward: relative L2 error of bf16 against fp32")
        XCTAssertGreaterThan(forward, 0, "forward identical to fp32: bf16 did not run")
        let all = relative(g16.flatMap(\.values), g32.flatMap(\.values))
        XCTAssertLessThan(all, 0.08, "all gradients: relative L2 error of bf16 against fp32")
        XCTAssertGreaterThan(all, 0, "gradients identical to fp32: bf16 did not run")
        for ((name, _), (a, b)) in zip(model.namedParameters(), zip(g16, g32)) {
            XCTAssertLessThan(relative(a.values, b.values), 0.2,
                              "gradient of \(name): relative L2 error of bf16 against fp32")
        }
    }
}
