import Autograd
import Layers

/// Reverse-process samplers: ancestral DDPM (the reference's `sample_p` with x0 clipping) over
/// every timestep, or DDIM over evenly spaced timesteps ending at t = 0, both with
/// classifier-free guidance eps = eps_u + w (eps_c - eps_u) (w = 1: conditional only), optionally
/// only at timesteps inside `guidanceInterval` (Kynkäänniemi et al. 2024: guidance at high noise
/// picks the class; at low noise it mostly narrows and over-sharpens; conditional steps cost half).
/// A model whose output is v or x0 (`objective`) is read as eps through `Schedule.prediction`.
public struct Sampler {
    public enum Kind: String, Sendable { case ddpm, ddim }

    public var kind: Kind = .ddim
    /// Model evaluations (DDIM); DDPM always uses every timestep.
    public var steps: Int = 50
    public var eta: Double = 0
    public var guidance: Double = 1
    /// Timesteps (inclusive) where guidance applies; nil: every step.
    public var guidanceInterval: ClosedRange<Int>? = nil
    public var clip = true
    /// What the model outputs.
    public var objective: Objective = .eps

    public init(kind: Kind = .ddim, steps: Int = 50, eta: Double = 0, guidance: Double = 1,
                guidanceInterval: ClosedRange<Int>? = nil, clip: Bool = true, objective: Objective = .eps) {
        self.kind = kind
        self.steps = steps
        self.eta = eta
        self.guidance = guidance
        self.guidanceInterval = guidanceInterval
        self.clip = clip
        self.objective = objective
    }

    /// The guidance weight used at timestep t.
    public func guidance(at t: Int) -> Double {
        guard let interval = guidanceInterval else { return guidance }
        return interval.contains(t) ? guidance : 1
    }

    /// The timesteps visited, from high to low, ending at 0.
    public func timesteps(_ schedule: Schedule) throws -> [Int] {
        switch kind {
        case .ddpm: return Array((0..<schedule.steps).reversed())
        case .ddim: return try schedule.spacedTimesteps(steps)
        }
    }

    /// Guided noise prediction: the model's output guided (one batched forward for the conditional
    /// and unconditional halves), read as eps through `Schedule.prediction` (the identity for an
    /// eps-model). Every objective's eps is affine in the output with the same x_t term, so guiding
    /// the output and converting gives eps_u + w (eps_c - eps_u).
    public func predictNoise(_ model: UNet, _ x: Tensor, t: Int, labels: [Int]?, schedule: Schedule) throws -> Tensor {
        try predictNoise(model, x, t: t, conditions: labels?.map { Label($0) }, schedule: schedule)
    }

    /// As `predictNoise(_:_:t:labels:schedule:)` with labels that may blend two classes (`Label`).
    public func predictNoise(_ model: UNet, _ x: Tensor, t: Int, conditions labels: [Label]?,
                             schedule: Schedule) throws -> Tensor {
        let out = try guidedOutput(model, x, t: t, labels: labels)
        if objective == .eps { return out }
        return try schedule.prediction(out, objective: objective, x: x, t: [t]).eps
    }

    /// The model's output out_u + w (out_c - out_u) at timestep t (w = `guidance(at: t)`).
    public func guidedOutput(_ model: UNet, _ x: Tensor, t: Int, labels: [Label]?) throws -> Tensor {
        let n = x.shape[0]
        let ts = [Int](repeating: t, count: n)
        let guidance = guidance(at: t)
        guard guidance != 1, let labels else { return try model(x, t: ts, conditions: labels) }
        let both = try model(Tensor.cat([x, x], dim: 0), t: ts + ts,
                             conditions: labels + [Label](repeating: .none, count: n))
        let cond = try both.narrowed(dim: 0, start: 0, length: n)
        let uncond = try both.narrowed(dim: 0, start: n, length: n)
        let w = Float(guidance)
        let out = Tensor(uninitialized: x.shape)
        for i in 0..<out.count { out.data[i] = uncond.data[i] + w * (cond.data[i] - uncond.data[i]) }
        return out
    }

    /// Per-image starting noise: image i is x_T drawn from `generators[i]`, so one image of a
    /// batch can be regenerated alone from its seed.
    public static func initialNoise(_ shape: [Int], generators: inout [Generator]) throws -> Tensor {
        guard shape.first == generators.count else {
            throw TensorError("sample: \(generators.count) seeds for \(shape.first ?? 0) images")
        }
        let x = Tensor(uninitialized: shape)
        let plane = x.count / max(generators.count, 1)
        for i in generators.indices { generators[i].fillNormal(x.data + i * plane, count: plane) }
        return x
    }

    /// Runs the reverse process from `noise` (x_T). Step noise (DDPM, DDIM with eta > 0) comes
    /// from `generator`, or per image from `generators` when given (one per image).
    /// `onStep(i, t, x_t, x0_hat)` is called once per step (i from 1) and may throw to stop.
    /// Returns the images (in [-1, 1] when clipping).
    public func sample(model: UNet, schedule: Schedule, labels: [Int]?, noise: Tensor,
                       generator: inout Generator, generators: [Generator]? = nil,
                       onStep: ((Int, Int, Tensor, Tensor) throws -> Void)? = nil) throws -> Tensor {
        try sample(model: model, schedule: schedule, conditions: labels?.map { Label($0) }, noise: noise,
                   generator: &generator, generators: generators, onStep: onStep)
    }

    /// As `sample(model:schedule:labels:...)` with labels that may blend two classes (`Label`).
    public func sample(model: UNet, schedule: Schedule, conditions labels: [Label]?, noise: Tensor,
                       generator: inout Generator, generators: [Generator]? = nil,
                       onStep: ((Int, Int, Tensor, Tensor) throws -> Void)? = nil) throws -> Tensor {
        if let labels, labels.count != noise.shape.first {
            throw TensorError("sample: \(labels.count) labels for \(noise.shape.first ?? 0) images")
        }
        var perImage = generators
        if let g = perImage, g.count != noise.shape.first {
            throw TensorError("sample: \(g.count) seeds for \(noise.shape.first ?? 0) images")
        }
        func stepNoise(_ shape: [Int]) throws -> Tensor {
            guard var gs = perImage else { return Tensor.randn(shape, generator: &generator) }
            defer { perImage = gs }
            return try Sampler.initialNoise(shape, generators: &gs)
        }
        let ts = try timesteps(schedule)
        return try withNoGrad {
            var x = noise
            for (i, t) in ts.enumerated() {
                let eps = try predictNoise(model, x, t: t, conditions: labels, schedule: schedule)
                let tPrev = i + 1 < ts.count ? ts[i + 1] : -1
                let step: (prev: Tensor, x0: Tensor)
                switch kind {
                case .ddpm:
                    let z = t > 0 ? try stepNoise(x.shape) : nil
                    step = try schedule.ddpmStep(x, eps: eps, t: t, noise: z, clip: clip)
                case .ddim:
                    let z = eta > 0 && tPrev >= 0 ? try stepNoise(x.shape) : nil
                    step = try schedule.ddimStep(x, eps: eps, t: t, tPrev: tPrev, eta: eta, noise: z, clip: clip)
                }
                try onStep?(i + 1, t, x, step.x0)
                x = step.prev
            }
            return x
        }
    }
}
