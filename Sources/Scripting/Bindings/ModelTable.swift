import Autograd
import CLua
import Diffusion
import Foundation
import Layers
import Storage

/// `ddpm.unet`, `ddpm.load_model` and the Model userdata.
enum ModelTable {
    /// User values of a model's userdata: the schedule it was trained with and its objective's name.
    static let scheduleSlot: Int32 = 1, objectiveSlot: Int32 = 2

    static func push(_ lua: Lua, _ m: UNet) { lua.pushObject(m, metatable: Metatable.model, userValues: 2) }

    static func model(_ a: Arguments, _ i: Int32 = 1) throws -> UNet {
        try a.object(i, Metatable.model, UNet.self, "model")
    }

    /// A config table -> UNetConfig (spec field names; unknown fields are errors).
    static func config(_ a: Arguments, _ i: Int32) throws -> UNetConfig {
        guard let o = try a.optionalTable(i), let t = o.index else { return UNetConfig() }
        try o.rejectUnknown(UNetConfig.fieldNames, what: "config")
        var fields: [String: Any] = [:]
        try a.lua.forEachPair(t) {
            guard let key = a.lua.string(-2) else { return }
            fields[key] = try plainValue(a.lua, a.lua.absolute(-1), key: key)
        }
        return try UNetConfig(dictionary: fields)
    }

    /// A config field's Lua value: integer, number, boolean, string, or a list of those.
    static func plainValue(_ lua: Lua, _ i: Int32, key: String, nested: Bool = false) throws -> Any {
        if let n = lua.integer(i) { return n }
        if let x = lua.number(i) { return x }
        if let b = lua.bool(i) { return b }
        if let s = lua.string(i) { return s }
        if !nested && lua.type(i) == LUA_TTABLE {
            return try (0..<lua.length(i)).map { k in
                lua.getIndex(i, k + 1)
                defer { lua.pop() }
                return try plainValue(lua, lua.absolute(-1), key: key, nested: true)
            }
        }
        throw ScriptError("option \(key): \(lua.describe(i)) is not a number, boolean, string or list")
    }

    /// `model:config()`: the config's dictionary form as a Lua table.
    static func pushConfig(_ lua: Lua, _ c: UNetConfig) {
        let fields = c.dictionary
        lua.newTable(hash: fields.count)
        for (key, value) in fields {
            switch value {
            case let n as Int: lua.push(n)
            case let b as Bool: lua.push(b)
            case let flags as [Bool]:
                lua.newTable(array: flags.count)
                for (k, f) in flags.enumerated() { lua.push(f); lua.setIndex(-2, k + 1) }
            default: lua.push("\(value)")
            }
            lua.setField(-2, key)
        }
    }

    static let tables = [LuaTable(topLevel: topLevel, classes: [modelClass])]

    static let topLevel: [(String, Binding)] = [
        ("unet", { a in
            push(a.lua, try UNet(try config(a, 1), generator: &Generator.global)); return 1
        }),
        ("load_model", { a in
            let path = try a.string(1)
            let m = try UNet.load(path)
            // a diverged run's weights load fine and sample noise: say so before sampling
            if let warning = SafeTensors.nonFiniteWarning(m.namedParameters().map { ($0.0, $0.1) }) {
                FileHandle.standardError.write(Data("warning: \(escapingControlCharacters(path)): \(warning)\n".utf8))
            }
            let metadata = try SafeTensors.inspect(path).metadata
            let schedule: Schedule, objective: Objective
            do {
                schedule = try Schedule(metadata: metadata)
            } catch let e as TensorError {
                throw ScriptError("\(path): its schedule metadata: \(e.message)")
            }
            do {
                objective = try Objective(metadata: metadata)
            } catch let e as TensorError {
                throw ScriptError("\(path): its metadata: \(e.message)")
            }
            push(a.lua, m)
            ScheduleTable.push(a.lua, schedule)
            a.lua.setUserValue(-2, scheduleSlot)
            a.lua.push(objective.rawValue)
            a.lua.setUserValue(-2, objectiveSlot)
            return 1
        }),
    ]

    /// The schedule attached to the model at `i` (`model.schedule`), if any.
    static func attachedSchedule(_ a: Arguments, _ i: Int32 = 1) -> Schedule? {
        a.lua.pushUserValue(i, scheduleSlot)
        defer { a.lua.pop() }
        return a.lua.object(-1, metatable: Metatable.schedule, as: ScheduleBox.self)?.schedule
    }

    /// The objective of the model at `i` (`model.objective`): the attached one, else eps.
    static func objective(_ lua: Lua, _ i: Int32) throws -> Objective {
        lua.pushUserValue(i, objectiveSlot)
        defer { lua.pop() }
        guard let name = lua.string(-1) else { return .eps }
        return try Objective(name: name)
    }

    static let forward: Binding = { a in
        let m = try model(a)
        let x = try a.tensor(2)
        guard x.rank == 4 else {
            throw ScriptError("bad argument #2 (x must be (batch, channels, H, W), got \(Shape.describe(x.shape)))")
        }
        let n = x.shape[0]
        let t = try a.integers(3, count: n, what: "timesteps")
        if let s = attachedSchedule(a), let bad = t.first(where: { $0 < 0 || $0 >= s.steps }) {
            throw ScriptError(
                "timestep \(bad) out of range [0, \(s.steps)) of the model's schedule (\(s.name), \(s.steps) steps)")
        }
        let labels = a.has(4) ? try a.labels(4, count: n) : nil
        TensorTable.push(a.lua, try m(x, t: t, conditions: labels))
        return 1
    }

    static let modelClass = LuaClass(
        metatable: Metatable.model, display: "Model",
        methods: [
            ("forward", forward),
            ("parameters", { a in
                let params = try model(a).namedParameters()
                a.lua.newTable(hash: params.count)
                for (k, t) in params { TensorTable.push(a.lua, t); a.lua.setField(-2, k) }
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
                    table = Dictionary(try SafeTensorsTable.tensorTable(a, 2), uniquingKeysWith: { x, _ in x })
                } else {
                    throw a.bad(2, "path or table of tensors")
                }
                a.lua.push(try m.load(table, strict: strict, prefix: prefix))
                return 1
            }),
            ("save", { a in
                try model(a).save(try a.string(2), metadata: try SafeTensorsTable.metadata(a, 3))
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
        ],
        // model.schedule: the schedule the model was trained with (ddpm.load_model attaches the
        // weights' one; nil for a new model until set); forward checks timesteps against it.
        // model.objective: what it outputs, "eps", "v" or "x0" (ddpm.load_model attaches the
        // weights' one; "eps" until set); ddpm.sample and the Lua samplers read it.
        getters: [
            "schedule": { a in _ = try model(a); a.lua.pushUserValue(1, scheduleSlot); return 1 },
            "objective": { a in _ = try model(a); a.lua.push(try objective(a.lua, 1).rawValue); return 1 },
        ],
        setters: [
            "schedule": { a in
                _ = try model(a)
                let isSchedule = a.lua.object(3, metatable: Metatable.schedule, as: ScheduleBox.self) != nil
                guard a.lua.isNil(3) || isSchedule else { throw a.bad(3, "schedule or nil") }
                a.lua.pushValue(3)
                a.lua.setUserValue(1, scheduleSlot)
                return 0
            },
            "objective": { a in
                _ = try model(a)
                if a.lua.isNil(3) {
                    a.lua.pushNil()
                } else {
                    guard let name = a.lua.string(3) else { throw a.bad(3, "\"eps\", \"v\", \"x0\" or nil") }
                    a.lua.push(try Objective(name: name).rawValue)
                }
                a.lua.setUserValue(1, objectiveSlot)
                return 0
            },
        ])
}

extension Lua {
    /// Pushes user value `n` of the userdata at `i` (nil when none).
    func pushUserValue(_ i: Int32, _ n: Int32) { _ = lua_getiuservalue(L, i, n) }

    /// Pops the value on top into user value `n` of the userdata at `i` (an index that counts
    /// the value, e.g. -2 for the userdata just below it).
    func setUserValue(_ i: Int32, _ n: Int32) { _ = lua_setiuservalue(L, i, n) }
}
