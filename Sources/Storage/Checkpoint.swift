import Autograd
import Foundation
import Layers

/// A training checkpoint in one safetensors file: `model/<name>`, `ema/<name>`,
/// `adam.m/<name>`, `adam.v/<name>` tensors; metadata holds the model config, the optimizer
/// step and settings, EMA updates, the generator state and the caller's plain values (JSON).
/// Written atomically, so the previous checkpoint survives a crash mid-write.
public struct Checkpoint {
    public var model: UNet?
    public var optimizer: Adam?
    public var ema: EMA?
    /// Extra plain values (step, loss, ...), as JSON text.
    public var values: String = "{}"
    /// Extra metadata entries (e.g. a dataset's stream position), stored as `extra.<name>`.
    public var extra: [String: String] = [:]

    public init(model: UNet? = nil, optimizer: Adam? = nil, ema: EMA? = nil) {
        self.model = model
        self.optimizer = optimizer
        self.ema = ema
    }

    public func save(_ path: String, generator: Generator) throws {
        var tensors: [(name: String, tensor: Tensor)] = []
        var meta: [String: String] = ["format": "ddpm-swift-checkpoint", "values": values,
                                      "generator": generator.stateWords.map(String.init).joined(separator: ",")]
        if let model {
            meta["config"] = model.config.json
            tensors += model.namedParameters().map { ("model/\($0.0)", $0.1) }
        }
        if let ema {
            tensors += ema.model.namedParameters().map { ("ema/\($0.0)", $0.1) }
            meta["ema"] = "{\"decay\": \(ema.decay), \"updates\": \(ema.updates), \"warmup\": \(ema.warmup)}"
        }
        if let optimizer {
            let names = model?.namedParameters().map(\.0) ?? optimizer.parameters.indices.map { "p\($0)" }
            for (k, name) in names.enumerated() where k < optimizer.parameters.count {
                tensors.append(("adam.m/\(name)", optimizer.m[k]))
                tensors.append(("adam.v/\(name)", optimizer.v[k]))
            }
            meta["adam"] = "{\"step\": \(optimizer.stepCount), \"lr\": \(optimizer.lr)}"
        }
        for (k, v) in extra { meta["extra.\(k)"] = v }
        try SafeTensors(tensors: tensors, metadata: meta).write(path)
    }

    /// Restores into the objects given; returns the plain values JSON, the generator and extras.
    public static func load(_ path: String, model: UNet?, optimizer: Adam?, ema: EMA?) throws
        -> (values: String, generator: Generator?, extra: [String: String]) {
        let file = try SafeTensors.read(path)
        guard file.metadata["format"] == "ddpm-swift-checkpoint" else {
            throw TensorError("\(path): not a ddpm checkpoint (no format=ddpm-swift-checkpoint in its metadata)")
        }
        let table = file.dictionary
        func wrap(_ body: () throws -> Void) throws {
            do { try body() } catch let e as TensorError { throw TensorError("\(path): \(e.message)") }
        }
        if let model { try wrap { try model.load(table, strict: true, prefix: "model/") } }
        if let ema {
            try wrap { try ema.model.load(table, strict: true, prefix: "ema/") }
            if let json = file.metadata["ema"], let d = parseJSON(json), let u = d["updates"] as? Int {
                ema.restore(updates: u)
            }
        }
        if let optimizer {
            let names = model?.namedParameters().map(\.0) ?? optimizer.parameters.indices.map { "p\($0)" }
            var m: [Tensor] = [], v: [Tensor] = []
            for name in names {
                guard let mt = table["adam.m/\(name)"], let vt = table["adam.v/\(name)"] else {
                    throw TensorError("\(path): optimizer state for \(name) is missing")
                }
                m.append(mt); v.append(vt)
            }
            guard let json = file.metadata["adam"], let d = parseJSON(json), let step = d["step"] as? Int else {
                throw TensorError("\(path): optimizer metadata is missing")
            }
            try wrap { try optimizer.restore(step: step, m: m, v: v) }
            if let lr = d["lr"] as? Double { optimizer.lr = Float(lr) }
        }
        let words = file.metadata["generator"]?.split(separator: ",").compactMap { UInt64($0) } ?? []
        var extra: [String: String] = [:]
        for (k, v) in file.metadata where k.hasPrefix("extra.") { extra[String(k.dropFirst(6))] = v }
        return (file.metadata["values"] ?? "{}", Generator(stateWords: words), extra)
    }
}

func parseJSON(_ text: String) -> [String: Any]? {
    (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]
}
