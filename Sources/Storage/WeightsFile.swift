import Autograd
import Foundation
import Layers

extension Module {
    /// The parameters as an F32 safetensors file (state_dict names), written atomically.
    public func writeWeights(_ path: String, metadata: [String: String]) throws {
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
            throw TensorError("\(path): no `config` in the metadata, so the model shape is unknown "
                + "(was it written by ddpm or scripts/convert_pth.py?)")
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
