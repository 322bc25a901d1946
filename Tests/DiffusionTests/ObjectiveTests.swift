import Autograd
import Diffusion
import Foundation
import Layers
import TestSupport
import XCTest

/// `Schedule.prediction`, the one conversion of a model's output (eps, v or x0) into eps and
/// x0-hat, against the formulas in Double, and the guided sampler's use of it.
final class ObjectiveTests: XCTestCase {
    let x = try! Tensor([0.3, -1.2, 0.8, 2.0, -0.4, 0.1, 1.5, -0.9], shape: [2, 1, 2, 2])
    let out = try! Tensor([-0.7, 0.2, 1.1, -0.3, 0.6, -1.5, 0.05, 0.9], shape: [2, 1, 2, 2])

    /// Expected (eps, x0) per element from the formulas, with a = sqrt(ab_t), s = sqrt(1 - ab_t).
    func expected(_ s: Schedule, _ objective: Objective, t: [Int]) -> (eps: [Double], x0: [Double]) {
        var eps: [Double] = [], x0: [Double] = []
        for i in 0..<x.count {
            let ab = s.alphaBar[t.count == 1 ? t[0] : t[i / 4]]
            let a = ab.squareRoot(), sd = (1 - ab).squareRoot()
            let xv = Double(x.data[i]), o = Double(out.data[i])
            switch objective {
            case .eps: eps.append(o); x0.append((xv - sd * o) / a)
            case .v: eps.append(sd * xv + a * o); x0.append(a * xv - sd * o)
            case .x0: eps.append((xv - a * o) / sd); x0.append(o)
            }
        }
        return (eps, x0)
    }

    func assertClose(_ ours: Tensor, _ reference: [Double], _ what: String, tolerance: Double = 2e-5,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(ours.count, reference.count, what, file: file, line: line)
        for (i, r) in reference.enumerated() {
            XCTAssertEqual(Double(ours.data[i]), r, accuracy: tolerance * Swift.max(1, Swift.abs(r)),
                           "\(what) element \(i)", file: file, line: line)
        }
    }

    func testConversionMatchesTheFormulas() throws {
        let s = try Schedule.cosine(steps: 1000)
        for objective in Objective.allCases {
            for t in [[40, 900], [500]] {
                let p = try s.prediction(out, objective: objective, x: x, t: t)
                let e = expected(s, objective, t: t)
                assertClose(p.eps, e.eps, "\(objective) eps at t = \(t)")
                assertClose(p.x0, e.x0, "\(objective) x0 at t = \(t)")
            }
        }
    }

    /// An eps-model's output is eps itself, and its x0-hat is the DDIM step's, bit for bit.
    func testEpsIsTheOutputAndItsX0TheDDIMStepsOne() throws {
        let s = try Schedule.linear(steps: 100)
        let p = try s.prediction(out, objective: .eps, x: x, t: [37])
        XCTAssertTrue(p.eps === out)
        let step = try s.ddimStep(x, eps: out, t: 37, tPrev: -1, eta: 0, noise: nil, clip: false)
        XCTAssertEqual(p.x0.values, step.x0.values)
    }

    /// The training targets of each objective convert back to the noise and the image they came from.
    func testTargetsRoundTrip() throws {
        let s = try Schedule.cosine(steps: 1000)
        var rng = Generator(seed: 11)
        let x0 = Tensor.rand([3, 1, 4, 4], generator: &rng) * 2 - 1, noise = Tensor.randn([3, 1, 4, 4], generator: &rng)
        let t = [0, 480, 990]
        let xt = try s.addNoise(x0, t: t, noise: noise)
        let a = try Tensor(t.map { Float(s.alphaBar[$0].squareRoot()) }, shape: [3, 1, 1, 1])
        let sigma = try Tensor(t.map { Float((1 - s.alphaBar[$0]).squareRoot()) }, shape: [3, 1, 1, 1])
        let v = try noise * a - x0 * sigma
        for (objective, target) in [(Objective.eps, noise), (.v, v), (.x0, x0)] {
            let p = try s.prediction(target, objective: objective, x: xt, t: t)
            // x0 from eps divides by a = sqrt(ab_990) ~ 0.015 and eps from x0 by s = sqrt(1 - ab_0) ~ 0.006
            expectClose("\(objective) eps", p.eps, noise, tolerance: 1e-4)
            expectClose("\(objective) x0", p.x0, x0, tolerance: 1e-4)
        }
    }

    /// Guiding a v-model's output and converting it gives eps_u + w (eps_c - eps_u) of the
    /// converted halves: the sampler's guided eps for any objective.
    func testGuidedOutputConvertsToGuidedEps() throws {
        var rng = Generator(seed: 5)
        let config = UNetConfig(base: 8, levels: 1, timeDim: 8, attention: [false], attentionMid: false, imageSize: 8)
        let model = try UNet(config, generator: &rng)
        let s = try Schedule.cosine(steps: 1000)
        let xt = Tensor.randn([2, 1, 8, 8], generator: &rng)
        let labels = [3, 7], t = 600
        let sampler = Sampler(kind: .ddim, steps: 10, guidance: 2.5, objective: .v)
        let guided = try withNoGrad { try sampler.predictNoise(model, xt, t: t, labels: labels, schedule: s) }
        let (cond, uncond) = try withNoGrad {
            (try model(xt, t: [t, t], labels: labels), try model(xt, t: [t, t], labels: [-1, -1]))
        }
        let ec = try s.prediction(cond, objective: .v, x: xt, t: [t]).eps
        let eu = try s.prediction(uncond, objective: .v, x: xt, t: [t]).eps
        expectClose("guided eps", guided, try eu + (ec - eu) * 2.5, tolerance: 1e-5)
        let unguided = try (guided - ec).abs().max().item()
        XCTAssertGreaterThan(unguided, 1e-3, "guidance changes eps")
    }

    func testObjectiveNamesAndErrors() throws {
        XCTAssertEqual(try Objective(metadata: [:]), .eps)
        XCTAssertEqual(try Objective(metadata: ["objective": "v"]), .v)
        XCTAssertThrowsError(try Objective(metadata: ["objective": "velocity"])) { e in
            XCTAssertEqual((e as? TensorError)?.message, "objective \"velocity\" is not one of eps, v, x0")
        }
        let s = try Schedule.linear(steps: 10)
        XCTAssertThrowsError(try s.prediction(out, objective: .v, x: x, t: [1, 2, 3])) { e in
            XCTAssertEqual((e as? TensorError)?.message, "prediction: 3 timesteps for a batch of 2")
        }
        XCTAssertThrowsError(try s.prediction(out, objective: .v, x: x, t: [10])) { e in
            XCTAssertEqual((e as? TensorError)?.message, "prediction: timestep 10 out of range [0, 10)")
        }
        XCTAssertThrowsError(try s.prediction(Tensor(zeros: [2, 1, 2, 1]), objective: .x0, x: x, t: [1])) { e in
            XCTAssertEqual((e as? TensorError)?.message,
                           "prediction: output [2, 1, 2, 1] and x_t [2, 1, 2, 2] differ in shape")
        }
    }
}
