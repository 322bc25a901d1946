import Autograd
import CLua
import Foundation
import Layers

/// `ddpm.unet`, `ddpm.load_model`, `ddpm.safetensors.*` and the Model userdata.
enum ModelBindings {
    static func push(_ lua: Lua, _ m: UNet) { lua.pushObject(m, metatable: Metatable.model) }

    static func model(_ a: Arguments, _ i: Int32 = 1) throws -> UNet {
        try a.object(i, Metatable.model, UNet.self, "model")
    }

    /// A config table -> UNetConfig (spec field names; unknown fields are errors).
    static func config(_ a: Arguments, _ i: Int32) throws -> UNetConfig {
        guard let o = try a.optionalTable(i), let t = o.index else { return UNetConfig() }
        try o.rejectUnknown(["channels", "classes", "base", "levels", "time_dim", "groups", "heads", "head_dim",
                             "attention", "attention_mid", "image_size"], what: "config")
        var c = UNetConfig()
        c.channels = try o.int("channels") ?? c.channels
        c.classes = try o.int("classes") ?? c.classes
        c.base = try o.int("base") ?? c.base
        c.levels = try o.int("levels") ?? c.levels
        c.timeDim = try o.int("time_dim") ?? c.timeDim
        c.groups = try o.int("groups") ?? c.groups
        c.heads = try o.int("heads") ?? c.heads
        c.headDim = try o.int("head_dim") ?? c.headDim
        c.imageSize = try o.int("image_size") ?? c.imageSize
        c.attentionMid = try o.bool("attention_mid") ?? c.attentionMid
        c.attention = UNetConfig.even(c.levels)
        a.lua.getField(t, "attention")
        defer { a.lua.pop() }
        if let s = a.lua.string(-1) {
            guard s == "even" else { throw ScriptError("option attention: \"even\" or a table of booleans expected, got \"\(s)\"") }
        } else if a.lua.type(-1) == LUA_TTABLE {
            var flags: [Bool] = []
            for k in 0..<a.lua.length(-1) {
                a.lua.getIndex(-1, k + 1)
                defer { a.lua.pop() }
                if let b = a.lua.bool(-1) { flags.append(b) } else if let n = a.lua.number(-1) { flags.append(n != 0) } else {
                    throw ScriptError("option attention: entry \(k + 1) must be a boolean, got \(a.lua.describe(-1))")
                }
            }
            c.attention = flags
        } else if !a.lua.isNil(-1) {
            throw ScriptError("option attention: \"even\" or a table of booleans expected, got \(a.lua.describe(-1))")
        }
        try c.validate()
        return c
    }

    static func pushConfig(_ lua: Lua, _ c: UNetConfig) {
        lua.newTable(hash: 11)
        for (k, v) in [("channels", c.channels), ("classes", c.classes), ("base", c.base), ("levels", c.levels),
                       ("time_dim", c.timeDim), ("groups", c.groups), ("heads", c.heads), ("head_dim", c.headDim),
                       ("image_size", c.imageSize)] {
            lua.push(v); lua.setField(-2, k)
        }
        lua.newTable(array: c.attention.count)
        for (i, f) in c.attention.enumerated() { lua.push(f); lua.setIndex(-2, i + 1) }
        lua.setField(-2, "attention")
        lua.push(c.attentionMid); lua.setField(-2, "attention_mid")
    }

    /// A `name -> tensor` table at `i` (values must be tensors).
    static func tensorTable(_ a: Arguments, _ i: Int32) throws -> [(String, Tensor)] {
        let t = try a.table(i)
        var out: [(String, Tensor)] = []
        try a.lua.forEachPair(t) {
            guard let k = a.lua.string(-2) else { throw ScriptError("bad argument #\(i) (keys must be strings, got \(a.lua.describe(-2)))") }
            guard let v = a.lua.object(-1, metatable: Metatable.tensor, as: Tensor.self) else {
                throw ScriptError("bad argument #\(i) (\(k) must be a tensor, got \(a.lua.describe(-1)))")
            }
            out.append((k, v))
        }
        return out.sorted { $0.0 < $1.0 }
    }

    /// A `string -> string|number|boolean` table -> metadata strings.
    static func metadata(_ a: Arguments, _ i: Int32) throws -> [String: String] {
        guard a.has(i) else { return [:] }
        let t = try a.table(i)
        var out: [String: String] = [:]
        try a.lua.forEachPair(t) {
            guard let k = a.lua.string(-2) else { throw ScriptError("bad argument #\(i) (metadata keys must be strings)") }
            switch a.lua.type(-1) {
            case LUA_TSTRING: out[k] = a.lua.string(-1)
            case LUA_TNUMBER: out[k] = a.lua.describe(-1)
            case LUA_TBOOLEAN: out[k] = (a.lua.bool(-1) ?? false) ? "true" : "false"
            default: throw ScriptError("bad argument #\(i) (metadata value for \(k) must be a string, number or boolean, got \(a.lua.describe(-1)))")
            }
        }
        return out
    }

    static func pushStringTable(_ lua: Lua, _ d: [String: String]) {
        lua.newTable(hash: d.count)
        for (k, v) in d { lua.push(v); lua.setField(-2, k) }
    }

    static let module: [(String, Binding)] = [
        ("unet", { a in
            push(a.lua, try UNet(try config(a, 1), generator: &Generator.global)); return 1
        }),
        ("load_model", { a in push(a.lua, try UNet.load(try a.string(1))); return 1 }),
        ("sha256", { a in a.lua.push(try SHA256.hex(ofFile: try a.string(1))); return 1 }),
    ]

    static let safetensors: [(String, Binding)] = [
        ("read", { a in
            let f = try SafeTensors.read(try a.string(1))
            a.lua.newTable(hash: f.tensors.count)
            for (k, t) in f.tensors { TensorBindings.push(a.lua, t); a.lua.setField(-2, k) }
            return 1
        }),
        ("write", { a in
            let path = try a.string(1)
            try SafeTensors(tensors: try tensorTable(a, 2).map { ($0.0, $0.1) }, metadata: try metadata(a, 3)).write(path)
            return 0
        }),
        ("metadata", { a in pushStringTable(a.lua, try SafeTensors.inspect(try a.string(1)).metadata); return 1 }),
    ]

    static let forward: Binding = { a in
        let m = try model(a)
        let x = try a.tensor(2)
        guard x.rank == 4 else { throw ScriptError("bad argument #2 (x must be (batch, channels, H, W), got \(Shape.describe(x.shape)))") }
        let n = x.shape[0]
        let t = try a.integers(3, count: n, what: "timesteps")
        let labels = a.has(4) ? try a.integers(4, count: n, what: "labels") : nil
        TensorBindings.push(a.lua, try m(x, t: t, labels: labels))
        return 1
    }

    static let modelClass = LuaClass(
        metatable: Metatable.model, display: "Model",
        methods: [
            ("forward", forward),
            ("parameters", { a in
                let params = try model(a).namedParameters()
                a.lua.newTable(hash: params.count)
                for (k, t) in params { TensorBindings.push(a.lua, t); a.lua.setField(-2, k) }
                return 1
            }),
            ("parameter_names", { a in
                let params = try model(a).namedParameters()
                a.lua.newTable(array: params.count)
                for (i, (k, _)) in params.enumerated() { a.lua.push(k); a.lua.setIndex(-2, i + 1) }
                return 1
            }),
            ("num_parameters", { a in a.lua.push(try model(a).parameterCount); return 1 }),
            ("config", { a in pushConfig(a.lua, try model(a).config); return 1 }),
            ("zero_grad", { a in try model(a).zeroGrad(); return 0 }),
            ("load", { a in
                let m = try model(a)
                let o = try a.options(3)
                let strict = try o.bool("strict") ?? true, prefix = try o.string("prefix") ?? ""
                let table: [String: Tensor]
                if let path = a.lua.string(2) {
                    table = try SafeTensors.read(path).dictionary
                } else if a.lua.type(2) == LUA_TTABLE {
                    table = Dictionary(try tensorTable(a, 2), uniquingKeysWith: { x, _ in x })
                } else {
                    throw a.bad(2, "path or table of tensors")
                }
                a.lua.push(try m.load(table, strict: strict, prefix: prefix))
                return 1
            }),
            ("save", { a in
                try model(a).save(try a.string(2), metadata: try metadata(a, 3))
                return 0
            }),
            ("copy_from", { a in
                let m = try model(a), src = try model(a, 2)
                try m.load(Dictionary(uniqueKeysWithValues: src.namedParameters()), strict: true)
                return 0
            }),
        ],
        metamethods: [
            ("__call", forward),
            ("__tostring", { a in
                let m = try model(a)
                a.lua.push("ddpm.Model(\(m.config.json), \(m.parameterCount) parameters)")
                return 1
            }),
        ])
}
