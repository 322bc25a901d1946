import ArgumentParser
import Autograd
import Diffusion
import Evaluation
import Foundation
import Layers
import Storage

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the config, parameter count and metadata of a weights or checkpoint file.")

    @Argument(help: "A .safetensors file.") var file: String

    func run() throws {
        try runReportingErrors {
            let (metadata, entries) = try SafeTensors.inspect(file)
            let total = entries.reduce(0) { $0 + $1.shape.reduce(1, *) }
            print("file: \(escapingControlCharacters(file))")
            print("tensors: \(entries.count), elements: \(total)")
            if let json = metadata["config"] {
                let config = try UNetConfig(json: json)
                print("model config: \(config.json)")
                var rng = Generator(seed: 0)
                let params = try UNet(config, generator: &rng).namedParameters()
                let names = Set(params.map(\.0))
                // weights files use bare names; checkpoints and reference exports prefix them
                let prefix = ["", "model/", "param/"].first { p in
                    entries.contains { names.contains(String($0.name.dropFirst(p.count))) && $0.name.hasPrefix(p) }
                } ?? ""
                let modelCount = entries
                    .filter { $0.name.hasPrefix(prefix) && names.contains(String($0.name.dropFirst(prefix.count))) }
                    .reduce(0) { $0 + $1.shape.reduce(1, *) }
                let expected = params.reduce(0) { $0 + $1.1.count }
                print("model parameters: \(modelCount) in \(params.count) tensors (config expects \(expected))")
                print("objective: \(try objectiveText(metadata)), the model's output (eps noise, v velocity, x0 image)")
            } else if let json = metadata["classifier_config"] {
                let config = try ClassifierConfig(json: json)
                var rng = Generator(seed: 0)
                let count = try Classifier(config, generator: &rng).parameterCount
                print("classifier config: \(config.json), \(count) parameters")
            } else {
                print("model config: none in metadata")
            }
            let dtypes = Dictionary(grouping: entries, by: \.dtype).map { "\($0.key) x\($0.value.count)" }.sorted()
            print("dtypes: \(dtypes.joined(separator: ", "))")
            print("metadata:")
            // keys and values come from the file: control characters are shown as escapes
            for (k, v) in metadata.sorted(by: { $0.key < $1.key }) {
                let shown = escapingControlCharacters(v.count > 300 ? String(v.prefix(300)) + "..." : v)
                print("  \(escapingControlCharacters(k)): \(shown)")
            }
            if let warning = SafeTensors.nonFiniteWarning(try SafeTensors.read(file).tensors) {
                FileHandle.standardError.write(Data("ddpm: warning: \(file): \(warning)\n".utf8))
            }
        }
    }

    /// A weights file's `objective` (eps when none is recorded); a training checkpoint's from the
    /// run's saved config (`extra.run`: config.train.objective, eps when unset; a distillation
    /// run's config.distill.objective, v when unset).
    func objectiveText(_ metadata: [String: String]) throws -> String {
        if metadata[Objective.metadataKey] != nil { return try Objective(metadata: metadata).rawValue }
        guard metadata["format"] == "ddpm-swift-checkpoint" else { return "eps (none recorded)" }
        guard let run = metadata["extra.run"],
              let object = try? JSONSerialization.jsonObject(with: Data(run.utf8)) as? [String: Any],
              let config = object["config"] as? [String: Any] else {
            return "eps (the checkpoint saved no config)"
        }
        let distill = config["distill"] as? [String: Any]
        let name = (distill.map { $0["objective"] as? String ?? "v" })
            ?? (config["train"] as? [String: Any])?["objective"] as? String ?? "eps"
        return try Objective(name: name).rawValue + " (the run's config)"
    }
}
