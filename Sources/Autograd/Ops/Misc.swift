// Embedding lookup, space-to-depth, and the losses (L1, L2, Huber with per-sample weights, cross-entropy).
import Foundation

extension Tensor {
    /// weight: (K, D), indices: one per row; a negative index gives a zero row (unconditional).
    // y[r] = W[idx[r]] (or 0); dW[idx[r]] += g[r]
    public static func embedding(_ weight: Tensor, indices: [Int]) throws -> Tensor {
        guard weight.rank == 2 else {
            throw TensorError("embedding: weight \(Shape.describe(weight.shape)) is not (classes, dim)")
        }
        let (k, d) = (weight.shape[0], weight.shape[1])
        if let bad = indices.first(where: { $0 >= k }) {
            throw TensorError("embedding: index \(bad) out of range [0, \(k)) (or -1 for none)")
        }
        let out = Tensor(zeros: [indices.count, d])
        for (r, i) in indices.enumerated() where i >= 0 {
            (out.data + r * d).update(from: weight.data + i * d, count: d)
        }
        return out.recorded(.embedding, [weight]) { g in
            let gw = Tensor(zeros: [k, d])
            for (r, i) in indices.enumerated() where i >= 0 {
                let dst = gw.data + i * d, src = g.data + r * d
                for j in 0..<d { dst[j] += src[j] }
            }
            return [gw]
        }
    }

    /// x: (N, C, H, W) -> (N, C*s*s, H/s, W/s), out channel = c*s*s + dy*s + dx.
    // a pure permutation; dx = the inverse permutation of g
    public func spaceToDepth(_ s: Int = 2) throws -> Tensor {
        guard rank == 4, s > 0, shape[2] % s == 0, shape[3] % s == 0 else {
            throw TensorError("space_to_depth: input \(Shape.describe(shape)) is not (N, C, H, W) with H and W "
                              + "divisible by \(s)")
        }
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        // (n, c, h/s, s, w/s, s) -> (n, c, s, s, h/s, w/s)
        let view = Tensor(storage: storage, shape: [n, c, h / s, s, w / s, s])
        let out = Tensor(uninitialized: [n, c * s * s, h / s, w / s])
        Tensor.permuteCopy(from: view, to: Tensor(storage: out.storage, shape: [n, c, s, s, h / s, w / s]),
                           order: [0, 1, 3, 5, 2, 4])
        let inShape = shape
        return out.recorded(.spaceToDepth, [self]) { g in
            let gx = Tensor(uninitialized: inShape)
            let gview = Tensor(storage: g.storage, shape: [n, c, s, s, h / s, w / s])
            Tensor.permuteCopy(from: gview, to: Tensor(storage: gx.storage, shape: [n, c, h / s, s, w / s, s]),
                               order: [0, 1, 4, 2, 5, 3])
            return [gx]
        }
    }

    // loss = mean |p - t|; dp = sign(p - t) / n, dt = -dp
    public static func l1Loss(_ prediction: Tensor, _ target: Tensor) throws -> Tensor {
        try checkSameShape("l1_loss", prediction, target)
        let n = prediction.count
        var acc: Double = 0
        for i in 0..<n { acc += Double(Swift.abs(prediction.data[i] - target.data[i])) }
        let out = Tensor(repeating: Float(acc / Double(Swift.max(n, 1))), shape: [])
        let (sp, st) = (prediction.detached(), target.detached())
        return out.recorded(.l1Loss, [prediction, target]) { g in
            let gp = Tensor(uninitialized: sp.shape)
            let s = g.data[0] / Float(n)
            for i in 0..<n {
                let d = sp.data[i] - st.data[i]
                gp.data[i] = d > 0 ? s : (d < 0 ? -s : 0)
            }
            return [prediction.requiresGrad ? gp : nil, target.requiresGrad ? gp.scaled(-1) : nil]
        }
    }

    // loss = mean (p - t)^2; dp = 2 (p - t) / n, dt = -dp
    public static func mseLoss(_ prediction: Tensor, _ target: Tensor) throws -> Tensor {
        try checkSameShape("mse_loss", prediction, target)
        let n = prediction.count
        var acc: Double = 0
        for i in 0..<n { let d = Double(prediction.data[i] - target.data[i]); acc += d * d }
        let out = Tensor(repeating: Float(acc / Double(Swift.max(n, 1))), shape: [])
        let (sp, st) = (prediction.detached(), target.detached())
        return out.recorded(.mseLoss, [prediction, target]) { g in
            let gp = Tensor(uninitialized: sp.shape)
            let s = 2 * g.data[0] / Float(n)
            for i in 0..<n { gp.data[i] = s * (sp.data[i] - st.data[i]) }
            return [prediction.requiresGrad ? gp : nil, target.requiresGrad ? gp.scaled(-1) : nil]
        }
    }

    // loss = (1/n) sum_b w_b sum_j rho(p_bj - t_bj) over all n elements (weights nil: every w_b = 1);
    // dp_bj = w_b rho'(d_bj) g / n, dt = -dp, with rho' = sign(d) (l1), 2d (l2), clamp(d, -delta, delta) (huber).
    /// The mean elementwise penalty `kind` between prediction and target, each sample (index of
    /// the first dimension) weighted by its entry of `weights` (one per sample, finite, >= 0).
    /// A diffusion loss weights samples by their timestep (min-SNR weighting).
    public static func weightedLoss(_ prediction: Tensor, _ target: Tensor, weights: [Float]?,
                                    kind: ElementLoss) throws -> Tensor {
        try checkSameShape("weighted_loss", prediction, target)
        guard prediction.rank >= 1 else { throw TensorError("weighted_loss: needs a batch dimension, got a scalar") }
        let batch = prediction.shape[0], n = prediction.count
        if let weights {
            guard weights.count == batch else {
                throw TensorError("weighted_loss: \(weights.count) weights for a batch of \(batch)")
            }
            if let k = weights.firstIndex(where: { !($0.isFinite && $0 >= 0) }) {
                throw TensorError("weighted_loss: weight \(k + 1) is \(weights[k]); weights must be finite and >= 0")
            }
        }
        if case .huber(let delta) = kind, !(delta.isFinite && delta > 0) {
            throw TensorError("weighted_loss: huber delta \(delta) must be finite and > 0")
        }
        let plane = batch > 0 ? n / batch : 0
        var acc: Double = 0
        for b in 0..<batch {
            var sample: Double = 0
            for i in b * plane..<(b + 1) * plane {
                sample += Double(kind.penalty(prediction.data[i] - target.data[i]))
            }
            acc += Double(weights?[b] ?? 1) * sample
        }
        let out = Tensor(repeating: Float(acc / Double(Swift.max(n, 1))), shape: [])
        let (sp, st) = (prediction.detached(), target.detached())
        return out.recorded(.weightedLoss, [prediction, target]) { g in
            let gp = Tensor(uninitialized: sp.shape)
            for b in 0..<batch {
                let s = g.data[0] * (weights?[b] ?? 1) / Float(n)
                for i in b * plane..<(b + 1) * plane { gp.data[i] = s * kind.derivative(sp.data[i] - st.data[i]) }
            }
            return [prediction.requiresGrad ? gp : nil, target.requiresGrad ? gp.scaled(-1) : nil]
        }
    }

    // loss = mean_i [logsumexp(z_i) - z_i[y_i]] over a (B, C) batch of logits;
    // dz_i = (softmax(z_i) - onehot(y_i)) / B. Labels are class indices 0..<C.
    public static func crossEntropy(_ logits: Tensor, labels: [Int]) throws -> Tensor {
        guard logits.rank == 2 else {
            throw TensorError("cross_entropy: logits must be (batch, classes), got \(Shape.describe(logits.shape))")
        }
        let (b, c) = (logits.shape[0], logits.shape[1])
        guard labels.count == b else {
            throw TensorError("cross_entropy: \(labels.count) labels for \(b) rows of logits")
        }
        if let bad = labels.first(where: { $0 < 0 || $0 >= c }) {
            throw TensorError("cross_entropy: label \(bad) out of range 0..\(c - 1)")
        }
        let probs = Tensor(uninitialized: logits.shape)
        var total: Double = 0
        for i in 0..<b {
            let z = logits.data + i * c, p = probs.data + i * c
            var m = -Float.infinity
            for j in 0..<c { m = Swift.max(m, z[j]) }
            var s: Double = 0
            for j in 0..<c { p[j] = Foundation.exp(z[j] - m); s += Double(p[j]) }
            for j in 0..<c { p[j] = Float(Double(p[j]) / s) }
            total += Double(m) + Foundation.log(s) - Double(z[labels[i]])
        }
        let out = Tensor(repeating: Float(total / Double(Swift.max(b, 1))), shape: [])
        return out.recorded(.crossEntropy, [logits]) { g in
            let gz = Tensor(uninitialized: probs.shape)
            let s = g.data[0] / Float(b)
            for i in 0..<b {
                for j in 0..<c { gz.data[i * c + j] = s * (probs.data[i * c + j] - (j == labels[i] ? 1 : 0)) }
            }
            return [gz]
        }
    }

    static func checkSameShape(_ op: String, _ a: Tensor, _ b: Tensor) throws {
        guard a.shape == b.shape else {
            throw TensorError("\(op): prediction \(Shape.describe(a.shape)) and target \(Shape.describe(b.shape)) "
                              + "differ in shape")
        }
    }
}

/// The elementwise penalty of `Tensor.weightedLoss`, of the difference d = prediction - target.
public enum ElementLoss: Equatable, Sendable {
    /// |d|
    case l1
    /// d^2
    case l2
    /// d^2 / 2 for |d| <= delta, delta (|d| - delta / 2) beyond: quadratic near 0, linear for
    /// outliers (Huber 1964; PyTorch's huber_loss).
    case huber(delta: Float)

    public func penalty(_ d: Float) -> Float {
        switch self {
        case .l1: return Swift.abs(d)
        case .l2: return d * d
        case .huber(let delta):
            let a = Swift.abs(d)
            return a <= delta ? 0.5 * d * d : delta * (a - 0.5 * delta)
        }
    }

    public func derivative(_ d: Float) -> Float {
        switch self {
        case .l1: return d > 0 ? 1 : (d < 0 ? -1 : 0)
        case .l2: return 2 * d
        case .huber(let delta): return Swift.min(Swift.max(d, -delta), delta)
        }
    }
}
