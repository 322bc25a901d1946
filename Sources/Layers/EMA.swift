import Autograd

/// Exponential moving average of a model's parameters, kept in a second model of the same
/// config (so `ema.model` samples like any model). With warm-up the decay starts low:
/// d_k = min(decay, (1 + k) / (10 + k)) at update k, so early EMA weights are not stuck near init.
public final class EMA {
    public let source: UNet
    public let model: UNet
    public var decay: Float
    public var warmup: Bool
    public private(set) var updates = 0

    public init(_ source: UNet, decay: Float = 0.999, warmup: Bool = true) throws {
        guard decay >= 0 && decay <= 1 else { throw TensorError("ema: decay \(decay) must be in [0, 1]") }
        self.source = source
        self.decay = decay
        self.warmup = warmup
        var rng = Generator(seed: 0)
        model = try UNet(source.config, generator: &rng)
        for ((_, s), (_, p)) in zip(model.namedParameters(), source.namedParameters()) {
            s.requiresGrad = false
            s.data.update(from: p.data, count: p.count)
        }
    }

    /// The decay the next update uses.
    public var currentDecay: Float {
        warmup ? min(decay, Float(1 + updates) / Float(10 + updates)) : decay
    }

    /// shadow = d * shadow + (1 - d) * parameter
    public func update() {
        let d = currentDecay
        for ((_, s), (_, p)) in zip(model.namedParameters(), source.namedParameters()) {
            let sd = s.data, pd = p.data
            for i in 0..<s.count { sd[i] = d * sd[i] + (1 - d) * pd[i] }
        }
        updates += 1
    }

    public func restore(updates: Int) { self.updates = updates }
}
