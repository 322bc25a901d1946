import Autograd
import Foundation

extension Module {
    /// Copies parameters from a name -> tensor table (e.g. a safetensors file). `prefix` is
    /// stripped from the table's names first (e.g. "param/" or "model."). Strict: any missing,
    /// extra or misshapen name is an error that lists every one of them; otherwise only matching
    /// names are copied. Returns the number of tensors copied.
    @discardableResult
    public func load(_ table: [String: Tensor], strict: Bool = true, prefix: String = "") throws -> Int {
        var source: [String: Tensor] = [:]
        for (k, v) in table where k.hasPrefix(prefix) { source[String(k.dropFirst(prefix.count))] = v }
        let params = namedParameters()
        var missing: [String] = [], misshapen: [String] = []
        var matched: [(Tensor, Tensor)] = []
        for (name, p) in params {
            guard let t = source[name] else { missing.append(name); continue }
            guard t.shape == p.shape else {
                misshapen.append("\(name): file \(Shape.describe(t.shape)), model \(Shape.describe(p.shape))")
                continue
            }
            matched.append((p, t))
        }
        let known = Set(params.map(\.0))
        let extra = source.keys.filter { !known.contains($0) }.sorted()
        if strict && !(missing.isEmpty && extra.isEmpty && misshapen.isEmpty) {
            var lines = ["load: parameters do not match the model (strict)"]
            if !missing.isEmpty { lines.append("  missing (\(missing.count)): " + missing.joined(separator: ", ")) }
            if !extra.isEmpty { lines.append("  unexpected (\(extra.count)): " + extra.joined(separator: ", ")) }
            if !misshapen.isEmpty { lines.append("  wrong shape (\(misshapen.count)): " + misshapen.joined(separator: "; ")) }
            throw TensorError(lines.joined(separator: "\n"))
        }
        for (p, t) in matched { p.data.update(from: t.data, count: p.count) }
        return matched.count
    }
}

extension Module {
    /// The parameters as an F32 safetensors file (state_dict names), written atomically.
    func writeWeights(_ path: String, metadata: [String: String]) throws {
        var meta = metadata
        meta["format"] = meta["format"] ?? "ddpm-swift"
        try SafeTensors(tensors: namedParameters().map { ($0.0, $0.1.detached()) }, metadata: meta).write(path)
    }
}

extension UNet {
    /// Builds a model from a weights file's `config` metadata and loads its parameters strictly.
    public static func load(_ path: String, prefix: String = "") throws -> UNet {
        let file = try SafeTensors.read(path)
        guard let json = file.metadata["config"] else {
            throw TensorError("\(path): no `config` in the metadata, so the model shape is unknown (was it written by ddpm or scripts/convert_pth.py?)")
        }
        var rng = Generator(seed: 0)
        let model = try UNet(UNetConfig(json: json), generator: &rng)
        do {
            try model.load(file.dictionary, strict: true, prefix: prefix)
        } catch let e as TensorError {
            throw TensorError("\(path): \(e.message)")
        }
        return model
    }

    /// Writes the parameters (F32, state_dict names) with the config and `metadata` atomically.
    public func save(_ path: String, metadata: [String: String] = [:]) throws {
        var meta = metadata
        meta["config"] = config.json
        try writeWeights(path, metadata: meta)
    }
}
