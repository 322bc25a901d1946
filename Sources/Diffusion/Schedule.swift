import Autograd
import Foundation

/// A noise schedule: betas for timesteps 0..<steps and everything derived from them, in Double.
/// Convention: alpha-bar before the first step is 1 (so the posterior variance at t = 0 is 0).
///
///     let s = try Schedule.linear(steps: 1000)
///     let xt = try s.addNoise(x0, t: [10, 999], noise: eps)
public struct Schedule: Sendable {
    public let name: String
    public let betas: [Double]
    public let alphas: [Double]
    public let alphaBar: [Double]
    public let alphaBarPrev: [Double]
    public let posteriorVariance: [Double]

    public var steps: Int { betas.count }

    /// Most timesteps a schedule may have (DDPMs use 1000-4000): a larger request is an error
    /// before anything is allocated.
    public static let maxSteps = 1_000_000

    static func checkSteps(_ steps: Int, _ op: String) throws {
        guard steps >= 1 && steps <= maxSteps else {
            throw TensorError("\(op): steps \(steps) must be in 1...\(maxSteps)")
        }
    }

    /// Any betas in (0, 1).
    public init(betas: [Double], name: String = "custom") throws {
        guard !betas.isEmpty else { throw TensorError("schedule: needs at least one beta") }
        guard betas.count <= Schedule.maxSteps else {
            throw TensorError("schedule: \(betas.count) betas (at most \(Schedule.maxSteps))")
        }
        if let i = betas.firstIndex(where: { !($0 > 0 && $0 < 1) }) {
            throw TensorError("schedule: the beta of timestep \(i) is \(betas[i]), not in (0, 1)")
        }
        self.name = name
        self.betas = betas
        alphas = betas.map { 1 - $0 }
        var ab: [Double] = []
        var acc = 1.0
        for a in alphas { acc *= a; ab.append(acc) }
        let prev = [1] + ab.dropLast()
        alphaBar = ab
        alphaBarPrev = prev
        posteriorVariance = betas.indices.map { (1 - prev[$0]) / (1 - ab[$0]) * betas[$0] }
    }

    /// betas = linspace(beta_start, beta_end, steps), the DDPM paper's (and the seed's) schedule.
    public static func linear(steps: Int = 1000, betaStart: Double = 1e-4, betaEnd: Double = 0.02) throws -> Schedule {
        try checkSteps(steps, "schedule.linear")
        let betas = (0..<steps).map {
            steps == 1 ? betaStart : betaStart + (betaEnd - betaStart) * Double($0) / Double(steps - 1)
        }
        return try Schedule(betas: betas, name: "linear")
    }

    /// Nichol & Dhariwal's cosine alpha-bar, f(u) = cos((u + s)/(1 + s) * pi/2)^2, betas clipped to
    /// [min_beta, max_beta] as the reference does.
    public static func cosine(steps: Int = 1000, s: Double = 0.008, maxBeta: Double = 0.999,
                              minBeta: Double = 1e-4) throws -> Schedule {
        let f = { (u: Double) in Foundation.pow(Foundation.cos((u + s) / (1 + s) * Double.pi / 2), 2) }
        return try fromAlphaBar(f, steps: steps, maxBeta: maxBeta, minBeta: minBeta, name: "cosine")
    }

    /// betas = sigmoid(linspace(-6, 6, steps)) * (end - start) + start (sigmoid on betas).
    public static func sigmoid(steps: Int = 1000, betaStart: Double = 1e-4, betaEnd: Double = 0.02) throws -> Schedule {
        try checkSteps(steps, "schedule.sigmoid")
        let betas = (0..<steps).map { i -> Double in
            let x = steps == 1 ? 0 : -6 + 12 * Double(i) / Double(steps - 1)
            return 1 / (1 + Foundation.exp(-x)) * (betaEnd - betaStart) + betaStart
        }
        return try Schedule(betas: betas, name: "sigmoid")
    }

    /// From a continuous alpha-bar f on [0, 1] with f(0) = 1:
    /// beta_t = min(1 - f((t+1)/steps) / f(t/steps), max_beta), at least min_beta.
    public static func fromAlphaBar(_ f: (Double) throws -> Double, steps: Int, maxBeta: Double = 0.999,
                                    minBeta: Double = 0, name: String = "alpha_bar") throws -> Schedule {
        try checkSteps(steps, name == "cosine" ? "schedule.cosine" : "schedule")
        let values = try (0...steps).map { try f(Double($0) / Double(steps)) }
        guard let f0 = values.first, f0 > 0, values.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
            throw TensorError("schedule: alpha-bar function must be finite, >= 0 and > 0 at u = 0")
        }
        let betas = (0..<steps).map { t -> Double in
            let b = values[t] > 0 ? 1 - (values[t + 1] / f0) / (values[t] / f0) : maxBeta
            return Swift.min(Swift.max(b, minBeta), maxBeta)
        }
        return try Schedule(betas: betas, name: name)
    }

    /// The metadata keys a weights file stores its schedule under: `schedule` (the name),
    /// `schedule_steps` (T) and `betas` (every beta_t, t = 0..T-1, comma-separated, 17 digits).
    public var metadata: [String: String] {
        ["schedule": name, "schedule_steps": String(steps),
         "betas": betas.map { String(format: "%.17g", $0) }.joined(separator: ",")]
    }

    /// The schedule a weights file's metadata records (see `metadata`); without `betas` (a
    /// converted PyTorch checkpoint) the reference's linear schedule with `schedule_steps`
    /// (default 1000) timesteps.
    public init(metadata: [String: String]) throws {
        guard let text = metadata["betas"] else {
            let stepsText = metadata["schedule_steps"] ?? "1000"
            guard let steps = Int(stepsText), steps >= 1, steps <= Schedule.maxSteps else {
                throw TensorError("schedule_steps \"\(stepsText)\" is not a count in [1, \(Schedule.maxSteps)]")
            }
            self = try .linear(steps: steps)
            return
        }
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        guard parts.count <= Schedule.maxSteps else {
            throw TensorError("betas: \(parts.count) values (max \(Schedule.maxSteps))")
        }
        let betas = try parts.enumerated().map { k, part -> Double in
            guard let b = Double(part.trimmingCharacters(in: .whitespaces)) else {
                throw TensorError("betas: entry \(k + 1) \"\(part.prefix(40))\" is not a number")
            }
            return b
        }
        try self.init(betas: betas, name: metadata["schedule"] ?? "custom")
    }

    /// The schedule cut after its first `steps` timesteps: the same betas and alpha-bars for
    /// t < steps (a sampler started at timestep steps - 1 runs on it unchanged: img2img).
    public func prefix(_ steps: Int) throws -> Schedule {
        guard steps >= 1 && steps <= self.steps else {
            throw TensorError("schedule: cannot cut \(self.steps) timesteps to \(steps)")
        }
        return steps == self.steps ? self : try Schedule(betas: Array(betas.prefix(steps)), name: name)
    }

    public func check(_ op: String, _ t: Int) throws {
        guard t >= 0 && t < steps else { throw TensorError("\(op): timestep \(t) out of range [0, \(steps))") }
    }

    public func snr(_ t: Int) throws -> Double {
        try check("snr", t)
        return alphaBar[t] / (1 - alphaBar[t])
    }

    /// (B, 1, 1, ...) coefficients, one per sample, for broadcasting against x.
    func perSample(_ op: String, _ t: [Int], like x: Tensor, _ f: (Int) -> Double) throws -> Tensor {
        guard x.rank >= 1, t.count == x.shape[0] else {
            throw TensorError(
                "\(op): \(t.count) timesteps for a batch of \(x.rank >= 1 ? x.shape[0] : 0)"
                    + " (input \(Shape.describe(x.shape)))")
        }
        for v in t { try check(op, v) }
        return try Tensor(t.map { Float(f($0)) }, shape: [t.count] + [Int](repeating: 1, count: x.rank - 1))
    }

    /// x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) noise, t per sample (recorded for autodiff).
    public func addNoise(_ x0: Tensor, t: [Int], noise: Tensor) throws -> Tensor {
        guard x0.shape == noise.shape else {
            throw TensorError(
                "add_noise: x0 \(Shape.describe(x0.shape)) and noise \(Shape.describe(noise.shape)) differ in shape")
        }
        let a = try perSample("add_noise", t, like: x0) { alphaBar[$0].squareRoot() }
        let b = try perSample("add_noise", t, like: x0) { (1 - alphaBar[$0]).squareRoot() }
        return try x0 * a + noise * b
    }

    /// x0-hat = (x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t), t per sample.
    public func predictX0(_ xt: Tensor, eps: Tensor, t: [Int]) throws -> Tensor {
        guard xt.shape == eps.shape else {
            throw TensorError(
                "predict_x0: x_t \(Shape.describe(xt.shape)) and eps \(Shape.describe(eps.shape)) differ in shape")
        }
        let a = try perSample("predict_x0", t, like: xt) { 1 / alphaBar[$0].squareRoot() }
        let b = try perSample("predict_x0", t, like: xt) { (1 - alphaBar[$0]).squareRoot() / alphaBar[$0].squareRoot() }
        return try xt * a - eps * b
    }

    /// One ancestral step t -> t-1: posterior mean from x0-hat (clipped to [-1, 1] when `clip`)
    /// plus sqrt(posterior variance) * noise; no noise at t = 0 (and none needed there).
    public func ddpmStep(_ xt: Tensor, eps: Tensor, t: Int, noise: Tensor?,
                         clip: Bool = true) throws -> (prev: Tensor, x0: Tensor) {
        try ddpmStep(xt, eps: eps, t: [t], noise: noise, clip: clip)
    }

    /// `ddpmStep` with a timestep per sample (`t.count` = the batch), or one for all (`t.count` = 1).
    public func ddpmStep(_ xt: Tensor, eps: Tensor, t: [Int], noise: Tensor?,
                         clip: Bool = true) throws -> (prev: Tensor, x0: Tensor) {
        guard xt.shape == eps.shape, noise.map({ $0.shape == xt.shape }) ?? true else {
            throw TensorError(
                "ddpm_step: x_t \(Shape.describe(xt.shape)), eps \(Shape.describe(eps.shape))"
                    + " and noise \(noise.map { Shape.describe($0.shape) } ?? "nil") must have one shape")
        }
        let plane = try segmentLength("ddpm_step", t.count, xt)
        for v in t {
            try check("ddpm_step", v)
            if v > 0 && noise == nil && posteriorVariance[v] > 0 {
                throw TensorError("ddpm_step: noise is needed at t = \(v) > 0")
            }
        }
        let prev = Tensor(uninitialized: xt.shape), x0 = Tensor(uninitialized: xt.shape)
        let x = xt.data, e = eps.data, n = noise?.data
        for (k, t) in t.enumerated() {
            let ab = alphaBar[t], abPrev = alphaBarPrev[t]
            let ca = Float(1 / ab.squareRoot()), cb = Float((1 - ab).squareRoot() / ab.squareRoot())
            let c1 = Float(abPrev.squareRoot() * betas[t] / (1 - ab))
            let c2 = Float(alphas[t].squareRoot() * (1 - abPrev) / (1 - ab))
            let sigma = Float(posteriorVariance[t].squareRoot())
            for i in k * plane..<(k + 1) * plane {
                var h = ca * x[i] - cb * e[i]
                if clip { h = Swift.min(Swift.max(h, -1), 1) }
                x0.data[i] = h
                var v = c1 * h + c2 * x[i]
                if t > 0, let n { v += sigma * n[i] }
                prev.data[i] = v
            }
        }
        return (prev, x0)
    }

    /// One DDIM step t -> tPrev (tPrev = -1 returns x0-hat): x = sqrt(ab') x0 + sqrt(1 - ab' - s^2) eps
    /// + s noise with s = eta sqrt((1 - ab')/(1 - ab) (1 - ab/ab')). With `clip`, x0-hat is clipped
    /// to [-1, 1] and eps re-derived from it.
    public func ddimStep(_ xt: Tensor, eps: Tensor, t: Int, tPrev: Int, eta: Double = 0, noise: Tensor? = nil,
                         clip: Bool = true) throws -> (prev: Tensor, x0: Tensor) {
        try ddimStep(xt, eps: eps, t: [t], tPrev: [tPrev], eta: eta, noise: noise, clip: clip)
    }

    /// `ddimStep` with timesteps per sample (`t.count` = `tPrev.count` = the batch), or one pair
    /// for all (count 1).
    public func ddimStep(_ xt: Tensor, eps: Tensor, t: [Int], tPrev: [Int], eta: Double = 0, noise: Tensor? = nil,
                         clip: Bool = true) throws -> (prev: Tensor, x0: Tensor) {
        guard t.count == tPrev.count else {
            throw TensorError("ddim_step: \(t.count) timesteps t but \(tPrev.count) t_prev")
        }
        for (v, p) in zip(t, tPrev) {
            try check("ddim_step", v)
            guard p >= -1 && p < v else {
                throw TensorError("ddim_step: t_prev \(p) must be in [-1, \(v)) for t = \(v)")
            }
        }
        guard xt.shape == eps.shape, noise.map({ $0.shape == xt.shape }) ?? true else {
            throw TensorError(
                "ddim_step: x_t \(Shape.describe(xt.shape)), eps \(Shape.describe(eps.shape))"
                    + " and noise must have one shape")
        }
        let plane = try segmentLength("ddim_step", t.count, xt)
        guard eta >= 0 else { throw TensorError("ddim_step: eta \(eta) must be >= 0") }
        if eta > 0 && tPrev.contains(where: { $0 >= 0 }) && noise == nil {
            throw TensorError("ddim_step: noise is needed when eta > 0")
        }
        let prev = Tensor(uninitialized: xt.shape), x0 = Tensor(uninitialized: xt.shape)
        let x = xt.data, e = eps.data, n = noise?.data
        for (k, (t, tPrev)) in zip(t, tPrev).enumerated() {
            let ab = alphaBar[t], abPrev = tPrev >= 0 ? alphaBar[tPrev] : 1
            let sigma = tPrev >= 0 ? eta * ((1 - abPrev) / (1 - ab) * (1 - ab / abPrev)).squareRoot() : 0
            let sa = Float(ab.squareRoot()), s1a = Float((1 - ab).squareRoot())
            let cx = Float(abPrev.squareRoot()), cs = Float(sigma)
            let ce = Float(Swift.max(1 - abPrev - sigma * sigma, 0).squareRoot())
            for i in k * plane..<(k + 1) * plane {
                let (h, ei) = Schedule.denoised(x[i], e[i], sa: sa, s1a: s1a, clip: clip)
                x0.data[i] = h
                var v = tPrev < 0 ? h : cx * h + ce * ei
                if cs > 0, let n { v += cs * n[i] }
                prev.data[i] = v
            }
        }
        return (prev, x0)
    }

    /// x0-hat at timestep t and the noise it implies, elementwise as in `ddimStep`: with `clip`,
    /// x0-hat is clipped to [-1, 1] and eps re-derived from it, so that
    /// x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps holds for the pair returned.
    public func denoise(_ xt: Tensor, eps: Tensor, t: Int, clip: Bool = true) throws -> (x0: Tensor, eps: Tensor) {
        try check("denoise", t)
        guard xt.shape == eps.shape else {
            throw TensorError("denoise: x_t \(Shape.describe(xt.shape)) and eps \(Shape.describe(eps.shape)) "
                              + "differ in shape")
        }
        let ab = alphaBar[t]
        let sa = Float(ab.squareRoot()), s1a = Float((1 - ab).squareRoot())
        let x0 = Tensor(uninitialized: xt.shape), outEps = Tensor(uninitialized: xt.shape)
        let x = xt.data, e = eps.data
        for i in 0..<xt.count {
            (x0.data[i], outEps.data[i]) = Schedule.denoised(x[i], e[i], sa: sa, s1a: s1a, clip: clip)
        }
        return (x0, outEps)
    }

    /// One element's x0-hat from x_t and eps (sa = sqrt(ab_t), s1a = sqrt(1 - ab_t)) and the eps
    /// it implies: with `clip`, x0-hat is clipped to [-1, 1] and eps re-derived from it.
    @inline(__always)
    static func denoised(_ x: Float, _ e: Float, sa: Float, s1a: Float, clip: Bool) -> (x0: Float, eps: Float) {
        let h = (x - s1a * e) / sa
        guard clip else { return (h, e) }
        let clipped = Swift.min(Swift.max(h, -1), 1)
        return (clipped, (x - sa * clipped) / s1a)
    }

    /// The elements per timestep entry: the whole tensor for one entry, a sample's for one per sample.
    func segmentLength(_ op: String, _ entries: Int, _ x: Tensor) throws -> Int {
        if entries == 1 { return x.count }
        guard x.rank >= 1, entries == x.shape[0] else {
            throw TensorError("\(op): \(entries) timesteps for a batch of \(x.rank >= 1 ? x.shape[0] : 0) "
                              + "(input \(Shape.describe(x.shape)))")
        }
        return x.count / Swift.max(entries, 1)
    }

    /// `count` timesteps evenly spaced from steps-1 down to 0 (both included), for DDIM.
    public func spacedTimesteps(_ count: Int) throws -> [Int] {
        guard count >= 1 && count <= steps else {
            throw TensorError("sampler: \(count) steps must be in [1, \(steps)]")
        }
        if count == 1 { return [steps - 1] }
        var ts: [Int] = []
        for i in 0..<count {
            let v = Int((Double(steps - 1) * Double(count - 1 - i) / Double(count - 1)).rounded())
            if ts.last != v { ts.append(v) }
        }
        return ts
    }
}
