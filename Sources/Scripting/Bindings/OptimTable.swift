import Autograd
import CLua
import Datasets
import Evaluation
import Foundation
import Layers
import Storage

/// An optimizer and the model whose parameters it updates.
final class AdamBox {
    let adam: Adam
    let model: Module
    init(_ adam: Adam, _ model: Module) { self.adam = adam; self.model = model }
}

/// `ddpm.optim.adam`, `ddpm.ema`, `ddpm.checkpoint.*` and the Adam, EMA and RunLock userdata.
enum OptimTable {
    static let tables = [
        LuaTable(name: "optim", functions: optim, topLevel: [("ema", emaFunction)], classes: [adamClass, emaClass]),
        LuaTable(name: "checkpoint", functions: checkpoint, classes: [runLockClass]),
    ]

    static func adam(_ a: Arguments, _ i: Int32 = 1) throws -> AdamBox {
        try a.object(i, Metatable.adam, AdamBox.self, "optimizer")
    }
    static func ema(_ a: Arguments, _ i: Int32 = 1) throws -> EMA { try a.object(i, Metatable.ema, EMA.self, "ema") }

    static let optim: [(String, Binding)] = [
        ("adam", { a in
            let m: Module = try a.lua.object(1, metatable: Metatable.classifier, as: Classifier.self)
                ?? ModelTable.model(a)
            let o = try a.options(2)
            var betas: (Float, Float) = (0.9, 0.999)
            if o.has("betas") {
                a.lua.getField(o.index ?? 0, "betas")
                defer { a.lua.pop() }
                a.lua.getIndex(-1, 1); a.lua.getIndex(-2, 2)
                defer { a.lua.pop(2) }
                guard let b1 = a.lua.number(-2), let b2 = a.lua.number(-1) else {
                    throw ScriptError("option betas: table of two numbers expected")
                }
                betas = (Float(b1), Float(b2))
            }
            let clip = try o.number("clip_norm").map(Float.init)
            let lr = try o.number("lr") ?? 1e-4
            guard lr > 0 else { throw ScriptError("option lr: must be > 0, got \(lr)") }
            let opt = Adam(m.parameters, lr: Float(lr), betas: betas, eps: Float(try o.number("eps") ?? 1e-8),
                           weightDecay: Float(try o.number("weight_decay") ?? 0), clipNorm: clip)
            a.lua.pushObject(AdamBox(opt, m), metatable: Metatable.adam)
            return 1
        }),
    ]

    static let adamClass = LuaClass(
        metatable: Metatable.adam, display: "Adam",
        methods: [
            ("zero_grad", { a in try adam(a).adam.zeroGrad(); return 0 }),
            ("step", { a in a.lua.push(Double(try adam(a).adam.step())); return 1 }),
            ("grad_norm", { a in a.lua.push(Double(try adam(a).adam.gradientNorm())); return 1 }),
        ],
        getters: [
            "lr": { a in a.lua.push(Double(try adam(a).adam.lr)); return 1 },
            "steps": { a in a.lua.push(try adam(a).adam.stepCount); return 1 },
        ],
        setters: [
            "lr": { a in
                let v = try a.number(3)
                guard v > 0 else { throw ScriptError("lr must be > 0, got \(v)") }
                try adam(a).adam.lr = Float(v); return 0
            },
        ])

    static let emaFunction: Binding = { a in
        let m = try ModelTable.model(a)
        let o = try a.options(3)
        let decay = a.lua.number(2) ?? 0.999
        let e = try EMA(m, decay: Float(decay), warmup: try o.bool("warmup") ?? true)
        a.lua.pushObject(e, metatable: Metatable.ema)
        // the averaged model reads its output as the source model does: keep the source model to
        // copy its schedule and objective from when ema:model() is asked for
        a.lua.pushValue(1)
        a.lua.setUserValue(-2, 1)
        return 1
    }

    /// `ema:model()`: the averages as a model with the source model's schedule and objective.
    static let emaModel: Binding = { a in
        let averaged = try ema(a).model
        ModelTable.push(a.lua, averaged)
        let pushed = a.lua.absolute(-1)
        a.lua.pushUserValue(1, 1)
        let source = a.lua.absolute(-1)
        for slot in [ModelTable.scheduleSlot, ModelTable.objectiveSlot] {
            a.lua.pushUserValue(source, slot)
            a.lua.setUserValue(pushed, slot)
        }
        a.lua.pop()
        return 1
    }

    static let emaClass = LuaClass(
        metatable: Metatable.ema, display: "EMA",
        methods: [
            ("update", { a in try ema(a).update(); return 0 }),
            ("model", emaModel),
        ],
        getters: [
            "decay": { a in a.lua.push(Double(try ema(a).decay)); return 1 },
            "updates": { a in a.lua.push(try ema(a).updates); return 1 },
        ])

    /// Plain values of a state table (numbers, strings, booleans, nested plain tables) -> JSON.
    static func plainValues(_ lua: Lua, _ t: Int32, skip: Set<String>) throws -> String {
        func value(_ i: Int32, depth: Int) throws -> Any? {
            switch lua.type(i) {
            case LUA_TNUMBER:
                if let n = lua.integer(i) { return n }
                guard let x = lua.number(i), x.isFinite else {
                    throw ScriptError("the plain value \(lua.describe(i)) cannot be saved (numbers must be finite)")
                }
                return x
            case LUA_TSTRING: return lua.string(i)
            case LUA_TBOOLEAN: return lua.bool(i)
            case LUA_TTABLE:
                guard depth < 8 else { throw ScriptError("checkpoint.save: state nests too deeply") }
                var d: [String: Any] = [:]
                try lua.forEachPair(i) {
                    let key = lua.string(-2) ?? lua.integer(-2).map { "#\($0)" }
                    if let key, let v = try value(lua.absolute(-1), depth: depth + 1) { d[key] = v }
                }
                return d
            default: return nil  // functions, userdata (model, optimizer, ...) are not plain values
            }
        }
        var out: [String: Any] = [:]
        try lua.forEachPair(t) {
            guard let k = lua.string(-2), !skip.contains(k) else { return }
            if let v = try value(lua.absolute(-1), depth: 0) { out[k] = v }
        }
        let data = try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }

    static func pushJSON(_ lua: Lua, _ v: Any) {
        switch v {
        case let d as [String: Any]:
            lua.newTable(hash: d.count)
            for (k, x) in d {
                pushJSON(lua, x)
                if k.hasPrefix("#"), let i = Int(k.dropFirst()) { lua.setIndex(-2, i) } else { lua.setField(-2, k) }
            }
        case let s as String: lua.push(s)
        case let b as Bool where !(v is NSNumber): lua.push(b)
        case let n as NSNumber:
            if String(cString: n.objCType) == "c" { lua.push(n.boolValue) }
            else if Double(n.int64Value) == n.doubleValue { lua.push(n.intValue) } else { lua.push(n.doubleValue) }
        default: lua.pushNil()
        }
    }

    /// A checkpoint's plain values as a table, with its `run` entry as the field `run`.
    static func pushValues(_ lua: Lua, _ values: String, run: String?) {
        var d = ((try? JSONSerialization.jsonObject(with: Data(values.utf8))) as? [String: Any]) ?? [:]
        if let run, let r = try? JSONSerialization.jsonObject(with: Data(run.utf8)) { d["run"] = r }
        pushJSON(lua, d)
    }

    static let checkpoint: [(String, Binding)] = [
        ("save", { a in
            let path = try a.string(1)
            let o = try a.options(2)
            var ck = Checkpoint(model: try o.object("model", Metatable.model, UNet.self, "model"),
                                optimizer: try o.object("optimizer", Metatable.adam, AdamBox.self, "optimizer")?.adam,
                                ema: try o.object("ema", Metatable.ema, EMA.self, "ema"))
            if let ds = try o.object("data", Metatable.dataset, ImageDataset.self, "dataset") {
                ck.extra["data"] = ds.state.map(String.init).joined(separator: ",")
            }
            if let t = o.index {
                ck.values = try plainValues(a.lua, t, skip: ["model", "optimizer", "ema", "data", "run"])
                // `run` (what the run is: its config, its schedule) gets its own metadata entry
                if a.lua.getField(t, "run") == LUA_TTABLE {
                    defer { a.lua.pop() }
                    ck.extra["run"] = try plainValues(a.lua, a.lua.absolute(-1), skip: [])
                } else {
                    let given = a.lua.isNil(-1) ? nil : a.lua.describe(-1)
                    a.lua.pop()
                    if let given { throw ScriptError("option run: table expected, got \(given)") }
                }
            }
            try ck.save(path, generator: Generator.global)
            return 0
        }),
        ("load", { a in
            let path = try a.string(1)
            let o = try a.options(2)
            let r = try Checkpoint.load(
                path, model: try o.object("model", Metatable.model, UNet.self, "model"),
                optimizer: try o.object("optimizer", Metatable.adam, AdamBox.self, "optimizer")?.adam,
                ema: try o.object("ema", Metatable.ema, EMA.self, "ema"))
            if let ds = try o.object("data", Metatable.dataset, ImageDataset.self, "dataset") {
                guard let s = r.extra["data"] else { throw ScriptError("\(path): holds no dataset state") }
                try ds.restore(s.split(separator: ",").compactMap { UInt64($0) })
            }
            if let g = r.generator { Generator.global = g }
            pushValues(a.lua, r.values, run: r.extra["run"])
            return 1
        }),
        ("read", { a in
            // the plain values alone, nothing restored (what a run saved about itself)
            let path = try a.string(1)
            let meta = try SafeTensors.inspect(path).metadata
            guard meta["format"] == "ddpm-swift-checkpoint", let values = meta["values"] else {
                throw ScriptError("\(path): not a ddpm checkpoint (no format=ddpm-swift-checkpoint in its metadata)")
            }
            pushValues(a.lua, values, run: meta["extra.run"])
            return 1
        }),
        ("lock", { a in
            let folder = try a.string(1)
            a.lua.pushObject(try RunLock(folder + "/train.lock"), metatable: Metatable.runLock)
            return 1
        }),
    ]

    static let runLockClass = LuaClass(
        metatable: Metatable.runLock, display: "RunLock",
        methods: [
            ("release", { a in try a.object(1, Metatable.runLock, RunLock.self, "lock").release(); return 0 }),
        ],
        getters: [
            "path": { a in a.lua.push(try a.object(1, Metatable.runLock, RunLock.self, "lock").path); return 1 },
        ])
}
