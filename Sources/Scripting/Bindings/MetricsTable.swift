import Autograd
import CLua
import Evaluation
import Foundation
import Layers
import Storage

/// `ddpm.metrics.*`, `ddpm.classifier`, `ddpm.load_classifier` and the Classifier userdata:
/// what `ddpm eval` judges generated digits with.
enum MetricsTable {
    static func classifier(_ a: Arguments, _ i: Int32 = 1) throws -> Classifier {
        try a.object(i, Metatable.classifier, Classifier.self, "classifier")
    }

    static func config(_ a: Arguments, _ i: Int32) throws -> ClassifierConfig {
        let o = try a.options(i)
        try o.rejectUnknown(["channels", "classes", "width", "features", "image_size"], what: "classifier")
        var c = ClassifierConfig()
        c.channels = try o.int("channels") ?? c.channels
        c.classes = try o.int("classes") ?? c.classes
        c.width = try o.int("width") ?? c.width
        c.features = try o.int("features") ?? c.features
        c.imageSize = try o.int("image_size") ?? c.imageSize
        return c
    }

    static func push(_ lua: Lua, _ c: Classifier) { lua.pushObject(c, metatable: Metatable.classifier) }

    static let tables = [LuaTable(name: "metrics", functions: metrics, topLevel: topLevel, classes: [classifierClass])]

    static let topLevel: [(String, Binding)] = [
        ("classifier", { a in push(a.lua, try Classifier(try config(a, 1), generator: &Generator.global)); return 1 }),
        ("load_classifier", { a in push(a.lua, try Classifier.load(try a.string(1))); return 1 }),
    ]

    /// (N, D) tensor -> N rows.
    static func rows(_ a: Arguments, _ i: Int32) throws -> [[Float]] {
        let t = try a.tensor(i)
        guard t.rank == 2 else {
            throw ScriptError("bad argument #\(i) (features must be (N, D), got \(Shape.describe(t.shape)))")
        }
        let d = t.shape[1]
        return (0..<t.shape[0]).map { r in Array(UnsafeBufferPointer(start: t.data + r * d, count: d)) }
    }

    static let metrics: [(String, Binding)] = [
        ("frechet", { a in
            a.lua.push(try FeatureStatistics.frechetDistance(try rows(a, 1), try rows(a, 2)))
            return 1
        }),
        ("diversity", { a in a.lua.push(try FeatureStatistics.meanPairwiseDistance(try rows(a, 1))); return 1 }),
    ]

    static let forward: Binding = { a in
        TensorTable.push(a.lua, try classifier(a)(try a.tensor(2)))
        return 1
    }

    static let classifierClass = LuaClass(
        metatable: Metatable.classifier, display: "Classifier",
        methods: [
            ("forward", forward),
            ("features", { a in TensorTable.push(a.lua, try classifier(a).features(try a.tensor(2))); return 1 }),
            ("predict", { a in
                let c = try classifier(a)
                let labels = try withNoGrad { c.predict(try c(try a.tensor(2))) }
                a.lua.newTable(array: labels.count)
                for (i, l) in labels.enumerated() { a.lua.push(l); a.lua.setIndex(-2, i + 1) }
                return 1
            }),
            ("parameters", { a in
                let params = try classifier(a).namedParameters()
                a.lua.newTable(hash: params.count)
                for (k, t) in params { TensorTable.push(a.lua, t); a.lua.setField(-2, k) }
                return 1
            }),
            ("num_parameters", { a in a.lua.push(try classifier(a).parameterCount); return 1 }),
            ("zero_grad", { a in try classifier(a).zeroGrad(); return 0 }),
            ("save", { a in
                try classifier(a).save(try a.string(2), metadata: try SafeTensorsTable.metadata(a, 3))
                return 0
            }),
        ],
        metamethods: [
            ("__call", forward),
            ("__tostring", { a in
                let c = try classifier(a)
                a.lua.push("ddpm.Classifier(\(c.config.json), \(c.parameterCount) parameters)")
                return 1
            }),
        ])
}
