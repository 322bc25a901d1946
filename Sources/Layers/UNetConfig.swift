import Autograd
import Foundation

/// The U-Net's shape. Defaults are the reference model (base 64, 4 levels, time_dim 128: ~51M
/// parameters). Stored as JSON in the `config` metadata entry of every weights file.
public struct UNetConfig: Equatable, Sendable {
    public var channels = 1
    public var classes = 10
    public var base = 64
    public var levels = 4
    public var timeDim = 128
    public var groups = 8
    public var heads = 4
    public var headDim = 32
    /// One flag per level (down and the matching up stage); the reference's "even" = levels 0, 2, ...
    public var attention: [Bool]
    public var attentionMid = true
    public var imageSize = 32

    public init(channels: Int = 1, classes: Int = 10, base: Int = 64, levels: Int = 4, timeDim: Int = 128,
                groups: Int = 8, heads: Int = 4, headDim: Int = 32, attention: [Bool]? = nil,
                attentionMid: Bool = true, imageSize: Int = 32) {
        self.channels = channels; self.classes = classes; self.base = base; self.levels = levels
        self.timeDim = timeDim; self.groups = groups; self.heads = heads; self.headDim = headDim
        self.attention = attention ?? UNetConfig.even(levels)
        self.attentionMid = attentionMid; self.imageSize = imageSize
    }

    /// The reference's "even" layout: attention at levels 0, 2, 4, ...
    public static func even(_ levels: Int) -> [Bool] { (0..<max(levels, 0)).map { $0 % 2 == 0 } }

    public func validate() throws {
        func need(_ ok: Bool, _ what: String) throws { if !ok { throw TensorError("unet config: \(what)") } }
        try need(channels >= 1 && classes >= 1 && base >= 1 && levels >= 1 && timeDim >= 2,
                 "channels, classes, base, levels must be >= 1 and time_dim >= 2 (got channels \(channels), "
                     + "classes \(classes), base \(base), levels \(levels), time_dim \(timeDim))")
        try need(timeDim % 2 == 0, "time_dim \(timeDim) must be even (sinusoidal embedding)")
        try need(levels <= 8, "levels \(levels) must be at most 8")
        // caps keep a typo from becoming a multi-terabyte allocation
        try need(base <= 1024 && timeDim <= 8192 && classes <= 100_000 && channels <= 64,
                 "base \(base) (max 1024), time_dim \(timeDim) (max 8192), "
                     + "classes \(classes) or channels \(channels) out of range")
        try need(heads * headDim <= 4096 && imageSize <= 4096,
                 "heads * head_dim \(heads * headDim) (max 4096) or image_size \(imageSize) (max 4096) too large")
        try need(groups >= 1 && base % groups == 0, "groups \(groups) must divide base \(base)")
        try need(heads >= 1 && headDim >= 1, "heads \(heads) and head_dim \(headDim) must be >= 1")
        try need(attention.count == levels, "attention has \(attention.count) flags for \(levels) levels")
        try need(imageSize >= 1 && imageSize % (1 << levels) == 0,
                 "image_size \(imageSize) must be divisible by 2^levels = \(1 << levels)")
    }

    /// "base,levels,time_dim", the benchmark's config label.
    public var label: String { "\(base),\(levels),\(timeDim)" }

    /// The spec's field names and values: the form stored as JSON in weights files and
    /// exchanged with Lua (`ddpm.unet{...}`, `model:config()`).
    public var dictionary: [String: Any] {
        [
            "channels": channels, "classes": classes, "base": base, "levels": levels, "time_dim": timeDim,
            "groups": groups, "heads": heads, "head_dim": headDim, "attention": attention,
            "attention_mid": attentionMid, "image_size": imageSize,
        ]
    }

    /// The field names `dictionary` holds.
    public static let fieldNames: Set<String> = [
        "channels", "classes", "base", "levels", "time_dim", "groups", "heads", "head_dim", "attention",
        "attention_mid", "image_size",
    ]

    /// Our JSON form (`dictionary`, keys sorted).
    public var json: String {
        guard let data = try? JSONSerialization.data(withJSONObject: dictionary, options: [.sortedKeys]) else {
            return "{}"
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// Parses our JSON or the reference's; see `init(dictionary:)`.
    public init(json: String) throws {
        guard let obj = try? JSONSerialization.jsonObject(with: Data(json.utf8)), let d = obj as? [String: Any] else {
            throw TensorError("unet config: not a JSON object: \(json.prefix(200))")
        }
        try self.init(dictionary: d)
    }

    /// Reads our field names or the reference's (`resnet_depth`, `time_emb_dim`, `num_classes`,
    /// `in_channels`, `size`, `dim_head`); unknown keys are ignored, missing ones take the
    /// defaults; the result is validated.
    public init(dictionary d: [String: Any]) throws {
        func int(_ keys: String...) throws -> Int? {
            for k in keys {
                guard let v = d[k] else { continue }
                if let n = v as? Int { return n }
                if let x = v as? Double, x == x.rounded(), Swift.abs(x) < 9e15 { return Int(x) }
                throw TensorError("unet config: \(k) must be an integer, got \(v)")
            }
            return nil
        }
        var c = UNetConfig()
        c.channels = try int("channels", "in_channels") ?? c.channels
        c.classes = try int("classes", "num_classes") ?? c.classes
        c.base = try int("base") ?? c.base
        c.levels = try int("levels", "resnet_depth") ?? c.levels
        c.timeDim = try int("time_dim", "time_emb_dim") ?? c.timeDim
        c.groups = try int("groups") ?? c.groups
        c.heads = try int("heads") ?? c.heads
        c.headDim = try int("head_dim", "dim_head") ?? c.headDim
        c.imageSize = try int("image_size", "size") ?? c.imageSize
        c.attention = UNetConfig.even(c.levels)
        if let a = d["attention"] {
            if let s = a as? String, s == "even" {
                c.attention = UNetConfig.even(c.levels)
            } else if let flags = a as? [Any] {
                c.attention = try flags.map {
                    if let b = $0 as? Bool { return b }
                    if let n = $0 as? Int { return n != 0 }
                    throw TensorError("unet config: attention entries must be booleans, got \($0)")
                }
            } else {
                throw TensorError("unet config: attention must be \"even\" or a list of booleans, got \(a)")
            }
        }
        if let m = d["attention_mid"] {
            guard let b = m as? Bool else {
                throw TensorError("unet config: attention_mid must be a boolean, got \(m)")
            }
            c.attentionMid = b
        }
        try c.validate()
        self = c
    }
}
