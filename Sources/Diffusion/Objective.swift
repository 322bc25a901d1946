import Autograd

/// What a diffusion model outputs, given x_t = a x0 + s eps with a = sqrt(ab_t), s = sqrt(1 - ab_t):
/// the noise eps (DDPM's), the velocity v = a eps - s x0 (Salimans & Ho 2022), or x0 itself.
/// A weights file records it under the metadata key `objective`; absent means eps.
public enum Objective: String, CaseIterable, Sendable {
    case eps, v, x0

    /// The metadata key a weights file stores the objective under.
    public static let metadataKey = "objective"

    /// The objective a weights file's metadata records: eps when there is none.
    public init(metadata: [String: String]) throws {
        guard let text = metadata[Objective.metadataKey] else { self = .eps; return }
        guard let o = Objective(rawValue: text) else {
            throw TensorError("objective \"\(text.prefix(40))\" is not one of eps, v, x0")
        }
        self = o
    }

    /// An objective by name, with an error naming the choices.
    public init(name: String) throws {
        guard let o = Objective(rawValue: name) else {
            throw TensorError("objective \"\(name.prefix(40))\" is not one of eps, v, x0")
        }
        self = o
    }
}

/// The model's output read as noise and clean image: the one conversion every sampler uses.
public struct Prediction {
    public let eps: Tensor
    public let x0: Tensor
}

extension Schedule {
    /// Turns a model `output` for x_t at timesteps t (one per sample, or one for the batch) into
    /// (eps, x0-hat), unclipped:
    ///   eps: eps = out,          x0 = (x_t - s eps) / a
    ///   v:   eps = s x_t + a v,  x0 = a x_t - s v
    ///   x0:  eps = (x_t - a x0) / s,  x0 = out
    /// For eps the output is returned as is, and x0 is computed as the DDIM step computes it.
    public func prediction(_ output: Tensor, objective: Objective, x: Tensor, t: [Int]) throws -> Prediction {
        guard output.shape == x.shape else {
            throw TensorError("prediction: output \(Shape.describe(output.shape)) and x_t \(Shape.describe(x.shape)) "
                              + "differ in shape")
        }
        guard x.rank >= 1, t.count == 1 || t.count == x.shape[0] else {
            throw TensorError("prediction: \(t.count) timesteps for a batch of \(x.rank >= 1 ? x.shape[0] : 0)")
        }
        for v in t { try check("prediction", v) }
        let eps = objective == .eps ? output : Tensor(uninitialized: x.shape)
        let x0 = objective == .x0 ? output : Tensor(uninitialized: x.shape)
        let plane = t.count == 1 ? x.count : x.count / Swift.max(x.shape[0], 1)
        let o = output.data, xd = x.data
        for (k, tk) in t.enumerated() {
            let a = Float(alphaBar[tk].squareRoot()), s = Float((1 - alphaBar[tk]).squareRoot())
            for i in k * plane..<(k + 1) * plane {
                switch objective {
                case .eps: x0.data[i] = (xd[i] - s * o[i]) / a
                case .v:
                    eps.data[i] = s * xd[i] + a * o[i]
                    x0.data[i] = a * xd[i] - s * o[i]
                case .x0: eps.data[i] = (xd[i] - a * o[i]) / s
                }
            }
        }
        return Prediction(eps: eps, x0: x0)
    }
}
