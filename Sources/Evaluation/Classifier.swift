import Autograd
import Foundation
import Layers
import Storage

/// The evaluation classifier's shape: a small CNN on the generator's images (32x32 in [-1, 1]).
/// Stored as JSON in the `classifier_config` metadata entry of its weights file.
public struct ClassifierConfig: Equatable, Sendable {
    public var channels = 1
    public var classes = 10
    public var width = 32
    public var features = 128
    public var imageSize = 32

    public init(channels: Int = 1, classes: Int = 10, width: Int = 32, features: Int = 128, imageSize: Int = 32) {
        self.channels = channels; self.classes = classes; self.width = width
        self.features = features; self.imageSize = imageSize
    }

    public func validate() throws {
        func need(_ ok: Bool, _ what: String) throws { if !ok { throw TensorError("classifier config: \(what)") } }
        try need((1...64).contains(channels) && (2...100_000).contains(classes),
                 "channels \(channels) (1...64) or classes \(classes) (2...100000) out of range")
        try need((1...1024).contains(width) && (1...8192).contains(features),
                 "width \(width) (1...1024) or features \(features) (1...8192) out of range")
        try need(imageSize >= 8 && imageSize <= 256 && imageSize % 8 == 0,
                 "image_size \(imageSize) must be a multiple of 8 in 8...256")
    }

    public var json: String {
        "{\"channels\":\(channels),\"classes\":\(classes),\"width\":\(width),"
            + "\"features\":\(features),\"image_size\":\(imageSize)}"
    }

    public init(json: String) throws {
        guard let d = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else {
            throw TensorError("classifier config: not a JSON object: \(json.prefix(200))")
        }
        func int(_ k: String, _ fallback: Int) throws -> Int {
            guard let v = d[k] else { return fallback }
            guard let n = v as? Int else { throw TensorError("classifier config: \(k) must be an integer") }
            return n
        }
        self.init(channels: try int("channels", 1), classes: try int("classes", 10), width: try int("width", 32),
                  features: try int("features", 128), imageSize: try int("image_size", 32))
        try validate()
    }
}

/// conv3x3(w) -> conv3x3(w, stride 2) -> conv3x3(2w) -> conv3x3(2w, stride 2) -> conv3x3(2w, stride 2)
/// -> linear(features) -> linear(classes), ReLU between. The `features` layer (after its ReLU) is
/// what `ddpm eval` compares between generated and real digits (as FID uses Inception's pool layer).
public final class Classifier: Module {
    public let config: ClassifierConfig
    let convs: [Conv2d]
    let fc1: Linear, fc2: Linear

    public init(_ config: ClassifierConfig = ClassifierConfig(), generator: inout Generator) throws {
        try config.validate()
        self.config = config
        let w = config.width
        let plan: [(Int, Int, Int)] = [
            (config.channels, w, 1), (w, w, 2), (w, 2 * w, 1), (2 * w, 2 * w, 2), (2 * w, 2 * w, 2),
        ]
        convs = plan.map { Conv2d($0.0, $0.1, kernel: 3, stride: $0.2, padding: 1, generator: &generator) }
        let side = config.imageSize / 8
        fc1 = Linear(2 * w * side * side, config.features, generator: &generator)
        fc2 = Linear(config.features, config.classes, generator: &generator)
    }

    /// x: (B, channels, S, S) -> (B, features)
    public func features(_ x: Tensor) throws -> Tensor {
        let c = config
        guard x.rank == 4, x.shape[1] == c.channels, x.shape[2] == c.imageSize, x.shape[3] == c.imageSize else {
            throw TensorError("classifier: input must be (batch, \(c.channels), \(c.imageSize), \(c.imageSize)), "
                + "got \(Shape.describe(x.shape))")
        }
        var h = x
        for conv in convs { h = try conv(h).relu() }
        return try fc1(try h.reshaped([x.shape[0], h.count / max(x.shape[0], 1)])).relu()
    }

    /// x -> logits (B, classes)
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try fc2(try features(x)) }

    /// The most likely class of each image.
    public func predict(_ logits: Tensor) -> [Int] {
        let (b, k) = (logits.shape[0], logits.shape[1])
        return (0..<b).map { i in
            var best = 0
            for j in 1..<k where logits.data[i * k + j] > logits.data[i * k + best] { best = j }
            return best
        }
    }

    public func namedParameters() -> [(String, Tensor)] {
        convs.enumerated().flatMap { child("conv\($0.offset + 1)", $0.element) } + child("fc1", fc1) + child("fc2", fc2)
    }

    public static func load(_ path: String) throws -> Classifier {
        let file = try SafeTensors.read(path)
        guard let json = file.metadata["classifier_config"] else {
            throw TensorError("\(path): no `classifier_config` in the metadata "
                + "(is it a diffusion model? classifiers come from scripts/train_classifier.lua)")
        }
        var rng = Generator(seed: 0)
        let model = try Classifier(try ClassifierConfig(json: json), generator: &rng)
        do {
            try model.load(file.dictionary, strict: true)
        } catch let e as TensorError {
            throw TensorError("\(path): \(e.message)")
        }
        return model
    }

    public func save(_ path: String, metadata: [String: String] = [:]) throws {
        var meta = metadata
        meta["classifier_config"] = config.json
        try writeWeights(path, metadata: meta)
    }
}
