import Autograd
import Foundation

/// Adam as PyTorch's torch.optim.Adam (L2 weight decay added to the gradient, bias-corrected
/// moments), with optional clipping of the global gradient norm before the update.
public final class Adam {
    public let parameters: [Tensor]
    public var lr: Float
    public var beta1: Float, beta2: Float, eps: Float, weightDecay: Float
    public var clipNorm: Float?
    public private(set) var stepCount = 0
    /// First and second moments, one pair per parameter (allocated on first step).
    public private(set) var m: [Tensor], v: [Tensor]

    public init(_ parameters: [Tensor], lr: Float = 1e-4, betas: (Float, Float) = (0.9, 0.999), eps: Float = 1e-8,
                weightDecay: Float = 0, clipNorm: Float? = nil) {
        self.parameters = parameters
        self.lr = lr
        (beta1, beta2) = betas
        self.eps = eps
        self.weightDecay = weightDecay
        self.clipNorm = clipNorm
        m = parameters.map { Tensor(zeros: $0.shape) }
        v = parameters.map { Tensor(zeros: $0.shape) }
    }

    public func zeroGrad() { for p in parameters { p.grad = nil } }

    /// The L2 norm of all gradients together.
    public func gradientNorm() -> Float {
        var s: Double = 0
        for p in parameters {
            guard let g = p.grad else { continue }
            // vector partial sums flushed to double (rowSum), not one dependent double add per element
            let p = g.data
            s += rowSum(g.count, { let v = load16(p + $0); return v * v }, { p[$0] * p[$0] })
        }
        return Float(s.squareRoot())
    }

    /// One update from the accumulated gradients; parameters without a gradient are skipped.
    /// Returns the gradient norm before clipping.
    @discardableResult
    public func step() -> Float {
        let norm = gradientNorm()
        var gscale: Float = 1
        if let clipNorm, norm > clipNorm, norm.isFinite { gscale = clipNorm / (norm + 1e-6) }
        stepCount += 1
        let bc1 = 1 - powf(beta1, Float(stepCount)), bc2 = 1 - powf(beta2, Float(stepCount))
        let stepSize = lr / bc1, bc2Sqrt = bc2.squareRoot()
        let (b1, b2, eps, wd) = (beta1, beta2, self.eps, weightDecay)
        for (k, p) in parameters.enumerated() {
            guard let g = p.grad else { continue }
            let w = p.data, gd = g.data, md = m[k].data, vd = v[k].data
            // 16 lanes at a time (the compiler left this loop scalar; it is memory-bound, and
            // whole vectors keep more loads in flight), the same operations in the same order
            // as the scalar tail, so every lane rounds as the scalar formula does
            Parallel.ranges(p.count) { r in
                forEachVector(r, { i in
                    let gi = load16(gd + i) * gscale + wd * load16(w + i)
                    let mi = b1 * load16(md + i) + (1 - b1) * gi, vi = b2 * load16(vd + i) + (1 - b2) * gi * gi
                    store16(md + i, mi)
                    store16(vd + i, vi)
                    store16(w + i, load16(w + i) - stepSize * mi / (vi.squareRoot() / bc2Sqrt + eps))
                }, tail: { i in
                    let gi = gd[i] * gscale + wd * w[i]
                    md[i] = b1 * md[i] + (1 - b1) * gi
                    vd[i] = b2 * vd[i] + (1 - b2) * gi * gi
                    w[i] -= stepSize * md[i] / (vd[i].squareRoot() / bc2Sqrt + eps)
                })
            }
        }
        return norm
    }

    /// Restores the step count and moments (checkpoint resume).
    public func restore(step: Int, m: [Tensor], v: [Tensor]) throws {
        guard m.count == parameters.count, v.count == parameters.count,
              zip(m, parameters).allSatisfy({ $0.shape == $1.shape }),
              zip(v, parameters).allSatisfy({ $0.shape == $1.shape }) else {
            throw TensorError("adam: saved optimizer state does not match the model's parameters")
        }
        self.stepCount = step
        self.m = m
        self.v = v
    }
}
