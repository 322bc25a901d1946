import Autograd
import Diffusion
import Storage
import TestSupport
import XCTest

/// The schedules and the reverse step against the PyTorch reference's golden vectors
/// (Tests/Fixtures/ops.safetensors; tolerances from its README).
final class ScheduleFixtureTests: XCTestCase {
    var ops: SafeTensors { get throws { try OpsFixture.file } }

    /// Schedule arrays in float64 (ours are Double) and the float32 ones the seed uses. Our
    /// alpha-bar before step 0 is 1, the reference's 0, so *_prev and the posterior variance are
    /// compared from index 1.
    func testScheduleArrays() throws {
        let f = try ops
        let schedules = [("linear", try Schedule.linear(steps: 1001)), ("cosine", try Schedule.cosine(steps: 1000))]
        for (name, schedule) in schedules {
            let arrays: [(String, [Double], Int)] = [
                ("betas", schedule.betas, 0), ("alphas", schedule.alphas, 0), ("alphas_cumprod", schedule.alphaBar, 0),
                ("alphas_cumprod_prev", schedule.alphaBarPrev, 1),
                ("posterior_variance", schedule.posteriorVariance, 1),
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
