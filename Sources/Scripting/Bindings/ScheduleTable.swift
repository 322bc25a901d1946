import Autograd
import CLua
import Diffusion
import Storage

/// `ddpm.schedule.*` and the Schedule userdata. Built-ins are native; `from_betas` and
/// `from_alpha_bar` take any schedule written in Lua and run the same native math on it.
final class ScheduleBox {
    let schedule: Schedule
    init(_ s: Schedule) { schedule = s }
}

enum ScheduleTable {
    static func push(_ lua: Lua, _ s: Schedule) { lua.pushObject(ScheduleBox(s), metatable: Metatable.schedule) }

    static func schedule(_ a: Arguments, _ i: Int32 = 1) throws -> Schedule {
        try a.object(i, Metatable.schedule, ScheduleBox.self, "schedule").schedule
    }

    /// Timesteps for a batch of n: number, table or tensor.
    static func timesteps(_ a: Arguments, _ i: Int32, _ n: Int) throws -> [Int] {
        try a.integers(i, count: n, what: "timesteps")
    }

    /// `s:to_eps(out, x_t, t, objective)` / `s:to_x0(...)`: a model's output read through
    /// `Schedule.prediction` (objective nil = "eps").
    static func prediction(_ a: Arguments) throws -> Prediction {
        let s = try schedule(a)
        let out = try a.tensor(2), x = try a.tensor(3)
        let t = try timesteps(a, 4, x.shape.first ?? 0)
        let objective = a.has(5) ? try Objective(name: try a.string(5)) : .eps
        return try s.prediction(out, objective: objective, x: x, t: t)
    }

    /// The timesteps of a step function's argument `i` for the batch of `x`: one entry when a
    /// number or equal entries are given (the whole batch steps together), else one per sample.
    static func stepTimesteps(_ a: Arguments, _ i: Int32, _ x: Tensor) throws -> [Int] {
        if let v = a.lua.number(i) {
            guard v == v.rounded(), Swift.abs(v) < 9e15 else { throw a.bad(i, "integer timestep") }
            return [Int(v)]
        }
        let t = try timesteps(a, i, x.rank >= 1 ? x.shape[0] : 0)
        if let first = t.first, t.allSatisfy({ $0 == first }) { return [first] }
        return t
    }

    /// Pushes f(t) for a timestep argument: a number for a number, a table for a table, a tensor
    /// (same shape) for a tensor.
    static func pushPerTimestep(_ a: Arguments, _ i: Int32, _ f: (Int) throws -> Double) throws {
        func integer(_ v: Double) throws -> Int {
            guard v == v.rounded(), Swift.abs(v) < 9e15 else {
                throw ScriptError("timesteps must be integers, got \(v)")
            }
            return Int(v)
        }
        if let v = a.lua.number(i) {
            a.lua.push(try f(try integer(v)))
        } else if let t = a.lua.object(i, metatable: Metatable.tensor, as: Tensor.self) {
            TensorTable.push(a.lua, try Tensor(t.values.map { Float(try f(try integer(Double($0)))) }, shape: t.shape))
        } else if a.lua.type(i) == LUA_TTABLE {
            pushArray(a.lua, try readIntegers(a.lua, i, what: "timesteps").map(f))
        } else {
            throw a.bad(i, "timestep (number, table or tensor)")
        }
    }

    static func pushArray(_ lua: Lua, _ xs: [Double]) {
        lua.newTable(array: xs.count)
        for (i, v) in xs.enumerated() { lua.push(v); lua.setIndex(-2, i + 1) }
    }

    static let tables = [LuaTable(name: "schedule", functions: functions, classes: [scheduleClass])]

    static let functions: [(String, Binding)] = [
        ("linear", { a in
            let o = try a.options(1)
            push(a.lua, try .linear(steps: try o.int("steps") ?? 1000, betaStart: try o.number("beta_start") ?? 1e-4,
                                    betaEnd: try o.number("beta_end") ?? 0.02))
            return 1
        }),
        ("cosine", { a in
            let o = try a.options(1)
            push(a.lua, try .cosine(steps: try o.int("steps") ?? 1000, s: try o.number("s") ?? 0.008,
                                    maxBeta: try o.number("max_beta") ?? 0.999,
                                    minBeta: try o.number("min_beta") ?? 1e-4))
            return 1
        }),
        ("sigmoid", { a in
            let o = try a.options(1)
            push(a.lua, try .sigmoid(steps: try o.int("steps") ?? 1000, betaStart: try o.number("beta_start") ?? 1e-4,
                                     betaEnd: try o.number("beta_end") ?? 0.02))
            return 1
        }),
        ("from_betas", { a in
            let betas: [Double]
            if let t = a.lua.object(1, metatable: Metatable.tensor, as: Tensor.self) {
                betas = t.values.map(Double.init)
            } else {
                let t = try a.table(1)
                betas = try (0..<a.lua.length(t)).map { k in
                    a.lua.getIndex(t, k + 1)
                    defer { a.lua.pop() }
                    guard let v = a.lua.number(-1) else {
                        throw ScriptError("bad argument #1 (beta \(k + 1) must be a number, got \(a.lua.describe(-1)))")
                    }
                    return v
                }
            }
            guard !betas.isEmpty else { throw ScriptError("bad argument #1 (needs at least one beta)") }
            // entries count from 1 as Lua tables and tensor elements do; timesteps from 0
            if let k = betas.firstIndex(where: { !($0 > 0 && $0 < 1) }) {
                throw ScriptError(
                    "bad argument #1 (beta \(k + 1), of timestep \(k), is \(betas[k]): betas must be in (0, 1))")
            }
            push(a.lua, try Schedule(betas: betas, name: try a.options(2).string("name") ?? "custom"))
            return 1
        }),
        ("from_alpha_bar", { a in
            let f = try a.function(1)
            let steps = try a.int(2, default: 1000), maxBeta = try a.number(3, default: 0.999)
            guard steps >= 1 && steps <= Schedule.maxSteps else {
                throw ScriptError("bad argument #2 (steps must be in [1, \(Schedule.maxSteps)], got \(steps))")
            }
            let lua = a.lua
            let alphaBar = { (u: Double) throws -> Double in
                lua.pushValue(f)
                lua.push(u)
                try lua.call(arguments: 1, results: 1)
                defer { lua.pop() }
                guard let v = lua.number(-1) else {
                    throw ScriptError("alpha-bar function returned \(lua.describe(-1)), expected a number")
                }
                return v
            }
            // alpha-bar before any noise is 1; any other fn(0) would silently rescale every alpha-bar
            let f0 = try alphaBar(0)
            guard Swift.abs(f0 - 1) <= 1e-9 else {
                throw ScriptError(
                    "bad argument #1 (fn(0) must be 1, alpha-bar before any noise; got \(f0): divide by fn(0))")
            }
            push(a.lua, try Schedule.fromAlphaBar(alphaBar, steps: steps, maxBeta: maxBeta, name: "alpha_bar"))
            return 1
        }),
        ("from_weights", { a in
            let path = try a.string(1)
            do {
                push(a.lua, try Schedule(metadata: try SafeTensors.inspect(path).metadata))
            } catch let e as TensorError where !e.message.hasPrefix(path) {
                throw ScriptError("\(path): \(e.message)")
            }
            return 1
        }),
    ]

    static let scheduleClass = LuaClass(
        metatable: Metatable.schedule, display: "Schedule",
        methods: [
            ("betas", { a in pushArray(a.lua, try schedule(a).betas); return 1 }),
            ("metadata", { a in SafeTensorsTable.pushStringTable(a.lua, try schedule(a).metadata); return 1 }),
            ("alpha_bars", { a in pushArray(a.lua, try schedule(a).alphaBar); return 1 }),
            ("alpha_bar", { a in
                let s = try schedule(a)
                try pushPerTimestep(a, 2) { t in
                    guard t >= -1 && t < s.steps else {
                        throw ScriptError("timestep \(t) out of range [0, \(s.steps)) (-1 = before the first step)")
                    }
                    return t < 0 ? 1 : s.alphaBar[t]
                }
                return 1
            }),
            ("snr", { a in
                let s = try schedule(a)
                try pushPerTimestep(a, 2) { try s.snr($0) }
                return 1
            }),
            ("add_noise", { a in
                let s = try schedule(a)
                let x0 = try a.tensor(2)
                let t = try timesteps(a, 3, x0.shape.first ?? 0)
                TensorTable.push(a.lua, try s.addNoise(x0, t: t, noise: try a.tensor(4)))
                return 1
            }),
            ("predict_x0", { a in
                let s = try schedule(a)
                let xt = try a.tensor(2)
                let t = try timesteps(a, 4, xt.shape.first ?? 0)
                TensorTable.push(a.lua, try s.predictX0(xt, eps: try a.tensor(3), t: t))
                return 1
            }),
            ("to_eps", { a in TensorTable.push(a.lua, try prediction(a).eps); return 1 }),
            ("to_x0", { a in TensorTable.push(a.lua, try prediction(a).x0); return 1 }),
            ("ddpm_step", { a in
                let s = try schedule(a)
                let xt = try a.tensor(2), eps = try a.tensor(3)
                let t = try stepTimesteps(a, 4, xt)
                let o = try a.options(5)
                for v in t { try s.check("ddpm_step", v) }
                var noise = try o.tensor("noise")
                if noise == nil && t.contains(where: { $0 > 0 }) {
                    noise = Tensor.randn(xt.shape, generator: &Generator.global)
                }
                let r = try s.ddpmStep(xt, eps: eps, t: t, noise: noise, clip: try o.bool("clip") ?? true)
                TensorTable.push(a.lua, r.prev)
                TensorTable.push(a.lua, r.x0)
                return 2
            }),
            ("ddim_step", { a in
                let s = try schedule(a)
                let xt = try a.tensor(2), eps = try a.tensor(3)
                var t = try stepTimesteps(a, 4, xt), tPrev = try stepTimesteps(a, 5, xt)
                if t.count != tPrev.count {  // one given per sample, the other one for all
                    if t.count == 1 { t = [Int](repeating: t[0], count: tPrev.count) }
                    if tPrev.count == 1 { tPrev = [Int](repeating: tPrev[0], count: t.count) }
                }
                let o = try a.options(6)
                let eta = try o.number("eta") ?? 0
                var noise = try o.tensor("noise")
                if noise == nil && eta > 0 && tPrev.contains(where: { $0 >= 0 }) {
                    noise = Tensor.randn(xt.shape, generator: &Generator.global)
                }
                let r = try s.ddimStep(xt, eps: eps, t: t, tPrev: tPrev, eta: eta, noise: noise,
                                       clip: try o.bool("clip") ?? true)
                TensorTable.push(a.lua, r.prev)
                TensorTable.push(a.lua, r.x0)
                return 2
            }),
            ("timesteps", { a in
                let s = try schedule(a)
                let ts = try s.spacedTimesteps(try a.int(2, default: s.steps))
                a.lua.newTable(array: ts.count)
                for (i, t) in ts.enumerated() { a.lua.push(t); a.lua.setIndex(-2, i + 1) }
                return 1
            }),
        ],
        metamethods: [
            ("__tostring", { a in
                let s = try schedule(a)
                a.lua.push("ddpm.Schedule(\(s.name), \(s.steps) steps)")
                return 1
            }),
            ("__len", { a in a.lua.push(try schedule(a).steps); return 1 }),
        ],
        getters: [
            "steps": { a in a.lua.push(try schedule(a).steps); return 1 },
            "name": { a in a.lua.push(try schedule(a).name); return 1 },
        ])
}
