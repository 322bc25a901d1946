import Autograd
import Foundation
import Layers

/// One tensor compared against a reference: max |ours - ref| and that over max |ref|.
public struct Comparison: Sendable {
    public let name: String
    public let maxAbs: Double
    public let maxRef: Double
    /// maxAbs / max(maxRef, floor): the fixtures' rel_to_max measure, with a floor for tensors
    /// whose true value is ~0 (e.g. the bias of a conv feeding a GroupNorm).
    public let relative: Double
    public let tolerance: Double
    public var passed: Bool { relative <= tolerance && maxAbs.isFinite }

    public init(name: String, ours: Tensor, reference: Tensor, tolerance: Double, floor: Double = 0) {
        self.name = name
        self.tolerance = tolerance
        guard ours.shape == reference.shape else {
            maxAbs = .infinity; maxRef = 0; relative = .infinity
            return
        }
        var d: Double = 0, m: Double = 0
        for i in 0..<ours.count {
            let a = Double(ours.data[i]), b = Double(reference.data[i])
            d = max(d, Swift.abs(a - b).isNaN ? .infinity : Swift.abs(a - b))
            m = max(m, Swift.abs(b))
        }
        maxAbs = d
        maxRef = m
        let denom = max(m, floor)
        relative = denom > 0 ? d / denom : (d == 0 ? 0 : .infinity)
    }
}

/// Checks the U-Net against a PyTorch reference export laid out like the fixtures
/// (`model.safetensors`: param/, input/, output/, act/; `model_grads.safetensors`: grad/,
/// grad_input/x; the model config as JSON in the `config` metadata). Tolerances are the
/// fixture README's suggested ones.
public enum ReferenceCheck {
    /// rel_to_max tolerances by group (the fixture README's suggestions).
    public enum Tolerance {
        public static let output = 5e-5, loss = 1e-6, activation = 5e-5, gradient = 1e-4, inputGradient = 1e-4
    }

    public static func run(directory: String) throws -> [Comparison] {
        let main = try SafeTensors.read("\(directory)/model.safetensors")
        let grads = try SafeTensors.read("\(directory)/model_grads.safetensors")
        guard let json = main.metadata["config"] else {
            throw TensorError("\(directory)/model.safetensors: no `config` in the metadata")
        }
        var rng = Generator(seed: 0)
        let model = try UNet(UNetConfig(json: json), generator: &rng)
        try model.load(main.dictionary, strict: true, prefix: "param/")
        func need(_ key: String) throws -> Tensor {
            guard let t = main[key] else { throw TensorError("\(directory)/model.safetensors: missing \(key)") }
            return t
        }
        let x = try need("input/x").copy()
        x.requiresGrad = true
        func integers(_ key: String) throws -> [Int] {
            try need(key).values.map {
                guard let k = Int(exactly: $0) else {
                    throw TensorError("\(directory)/model.safetensors: \(key) holds \($0), not an integer")
                }
                return k
            }
        }
        let t = try integers("input/t"), labels = try integers("input/labels")
        let noise = try need("input/noise")

        var acts: [String: Tensor] = [:]
        let eps = try model(x, t: t, labels: labels) { acts[$0] = $1.detached() }
        let loss = try Tensor.l1Loss(eps, noise)
        try loss.backward()

        var out: [Comparison] = []
        out.append(Comparison(name: "output/eps", ours: eps, reference: try need("output/eps"),
                              tolerance: Tolerance.output))
        out.append(Comparison(name: "output/loss", ours: try loss.reshaped([1]), reference: try need("output/loss"),
                              tolerance: Tolerance.loss))
        for (name, ref) in main.tensors where name.hasPrefix("act/") {
            let key = String(name.dropFirst(4))
            guard let ours = acts[key] else {
                throw TensorError("reference activation \(name) has no counterpart in the model")
            }
            out.append(Comparison(name: name, ours: ours, reference: ref, tolerance: Tolerance.activation))
        }
        // Parameter gradients: relative to the tensor's own max, floored at 1e-3 of the model's
        // largest gradient, so gradients that are zero up to rounding do not fail on noise.
        let params = Dictionary(uniqueKeysWithValues: model.namedParameters())
        let largest = grads.tensors.filter { $0.name.hasPrefix("grad/") }
            .map { t in (0..<t.tensor.count).reduce(Float(0)) { max($0, Swift.abs(t.tensor.data[$1])) } }.max() ?? 0
        for (name, param) in model.namedParameters() {
            guard let ref = grads["grad/\(name)"] else {
                throw TensorError("\(directory)/model_grads.safetensors: missing grad/\(name)")
            }
            let ours = param.grad ?? Tensor(zeros: params[name]?.shape ?? [])
            out.append(Comparison(name: "grad/\(name)", ours: ours, reference: ref, tolerance: Tolerance.gradient,
                                  floor: 1e-3 * Double(largest)))
        }
        guard let gx = grads["grad_input/x"] else {
            throw TensorError("\(directory)/model_grads.safetensors: missing grad_input/x")
        }
        out.append(Comparison(name: "grad_input/x", ours: x.grad ?? Tensor(zeros: x.shape), reference: gx,
                              tolerance: Tolerance.inputGradient))
        return out
    }
}
