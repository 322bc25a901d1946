import Autograd
import CLua
import Diffusion
import Foundation
import Layers

/// `ddpm.sample{...}`: a sampler plugin (by name or path, resolved as `--sampler` is, or a
/// plugin table) or the native DDPM and DDIM, with guidance, per-image seeds and hooks.
/// `objective=` (default: the model's, `model.objective`) says what the model outputs; every
/// sampler, native or plugin, reads it as eps through `Schedule.prediction`.
enum SampleTable {
    static let tables = [LuaTable(topLevel: [("sample", sample)], classes: [SamplerContext.contextClass])]

    /// The sampler a call asked for: a native one, or a plugin table at a stack index.
    enum Choice {
        case native(Sampler.Kind)
        case plugin(table: Int32, label: String)
    }

    /// Reads option `sampler`: absent = native DDPM; a name or FILE.lua resolves as `--sampler`
    /// does (plugins first, then the native names); a table is a plugin's (with `sample`) or a
    /// native one (`{native = "ddim"}`, as `ddpm.plugins.load` returns for a native name). A
    /// plugin table stays on the stack.
    static func choose(_ lua: Lua, _ o: Options) throws -> Choice {
        guard let index = o.index else { return .native(.ddpm) }
        switch lua.getField(index, "sampler") {
        case LUA_TNIL:
            lua.pop()
            return .native(.ddpm)
        case LUA_TSTRING:
            let name = lua.string(-1) ?? ""
            lua.pop()
            try Plugins.load(lua, .sampler, try Plugins.find(.sampler, name))
        case LUA_TTABLE:
            break
        default:
            let e = ScriptError("option sampler: a name, a FILE.lua or a sampler table expected, "
                                + "got \(lua.describe(-1))")
            lua.pop()
            throw e
        }
        let table = lua.absolute(-1)
        if lua.getField(table, "native") != LUA_TNIL {
            let name = lua.string(-1) ?? lua.describe(-1)
            lua.pop()
            guard let kind = Sampler.Kind(rawValue: name) else {
                throw ScriptError("option sampler: native \"ddpm\" or \"ddim\" expected, got \(name)")
            }
            return .native(kind)
        }
        lua.pop()
        let label = (lua.getField(table, "path") == LUA_TSTRING ? lua.string(-1) : nil) ?? "(table)"
        lua.pop()
        try Plugins.check(lua, .sampler, label)
        return .plugin(table: table, label: label)
    }

    static let sample: Binding = { a in
        let o = try a.options(1)
        guard let model = try o.object("model", Metatable.model, UNet.self, "model") else {
            throw ScriptError("option model= is required")
        }
        let fullSchedule = try o.object("schedule", Metatable.schedule, ScheduleBox.self, "schedule")?.schedule
            ?? (try Schedule.linear())
        let choice = try choose(a.lua, o)
        let c = model.config
        var generator = try o.int("seed").map { Generator(seed: UInt64(bitPattern: Int64($0))) }
        // seeds = {one per image}: each image's noise from its own generator (regenerable alone)
        var perImage: [Generator]? = nil
        if o.has("seeds") {
            let count = try o.int("n") ?? (try labelCount(o))
            guard count >= 1 else { throw ScriptError("option seeds= needs labels= or n= (one seed per image)") }
            perImage = try o.integers("seeds", count: count)?.map { Generator(seed: UInt64(bitPattern: Int64($0))) }
        }
        let initial: Tensor
        if let n = try o.tensor("noise") {
            initial = n
        } else if var gs = perImage {
            let count = gs.count
            initial = try Sampler.initialNoise([count, c.channels, c.imageSize, c.imageSize], generators: &gs)
            perImage = gs
        } else {
            let count = try o.int("n") ?? (try labelCount(o))
            guard count >= 1 else { throw ScriptError("nothing to sample: give labels= (one per image), n= or noise=") }
            let shape = [count, c.channels, c.imageSize, c.imageSize]
            if var g = generator {
                initial = Tensor.randn(shape, generator: &g)
                generator = g
            } else {
                initial = Tensor.randn(shape, generator: &Generator.global)
            }
        }
        guard initial.rank == 4 else {
            throw ScriptError("option noise: (N, C, H, W) expected, got \(Shape.describe(initial.shape))")
        }
        let labels = try o.labels("labels", count: initial.shape[0])
        let guidance = try o.number("guidance") ?? 1
        if guidance != 1 && labels == nil {
            throw ScriptError("option guidance needs labels= (classifier-free guidance)")
        }
        var interval: ClosedRange<Int>? = nil
        if let bounds = try o.integers("guidance_interval", count: 2) {
            guard bounds[0] <= bounds[1] else {
                throw ScriptError(
                    "option guidance_interval: {low, high} timesteps with low <= high expected,"
                        + " got {\(bounds[0]), \(bounds[1])}")
            }
            interval = bounds[0]...bounds[1]
        }
        let objective = try o.string("objective").map { try Objective(name: $0) } ?? (try modelObjective(o))
        // eta absent: a plugin's default_eta, else 0
        var defaultEta = 0.0
        if case .plugin(let table, _) = choice {
            if a.lua.getField(table, "default_eta") == LUA_TNUMBER { defaultEta = a.lua.number(-1) ?? 0 }
            a.lua.pop()
        }
        let eta = try o.number("eta") ?? defaultEta, clip = try o.bool("clip") ?? true
        let onStep = try o.pushFunction("on_step")
        let lua = a.lua
        let known = try Known(lua, o, noise: initial, schedule: fullSchedule)
        if known.startsClean, let image = known.image {  // t_start = -1: nothing to denoise
            TensorTable.push(lua, image.copy())
            return 1
        }
        let start = try known.start(noise: initial)
        let schedule = start.schedule, noise = start.x
        var g = generator ?? Generator.global
        defer { if generator == nil { Generator.global = g } }
        switch choice {
        case .native(let kind):
            if known.hasMask {
                throw ScriptError("option known.mask: the native \(kind.rawValue) sampler ignores a mask; use a "
                                  + "sampler plugin that reads ctx.known (e.g. repaint)")
            }
            let steps = try o.int("steps").map { min($0, schedule.steps) }
            let sampler = Sampler(kind: kind, steps: steps ?? min(kind == .ddim ? 50 : schedule.steps, schedule.steps),
                                  eta: eta, guidance: guidance, guidanceInterval: interval, clip: clip,
                                  objective: objective)
            let images = try sampler.sample(model: model, schedule: schedule, conditions: labels, noise: noise,
                                            generator: &g, generators: perImage) { i, t, xt, x0 in
                guard let f = onStep else { return }
                lua.pushValue(f)
                lua.push(i)
                lua.push(t)
                TensorTable.push(lua, xt)
                TensorTable.push(lua, x0)
                try lua.call(arguments: 4, results: 0)
            }
            TensorTable.push(lua, images)
        case .plugin(let table, let label):
            guard eta >= 0 else { throw ScriptError("option eta: \(eta) must be >= 0") }
            // a mask only means something to a plugin that says it reads one (`inpaints = true`)
            if known.hasMask {
                let inpaints = lua.getField(table, "inpaints") == LUA_TBOOLEAN && lua.bool(-1) == true
                lua.pop()
                if !inpaints {
                    throw ScriptError("option known.mask: sampler \(label) does not read ctx.known.mask (its table has "
                                      + "no inpaints = true); use a sampler plugin that does (e.g. repaint)")
                }
            }
            var steps = try o.int("steps")
            if steps == nil {
                steps = lua.getField(table, "default_steps") == LUA_TNUMBER ? lua.number(-1).map { Int($0) } : nil
                lua.pop()
            }
            guard (steps ?? 1) >= 1 else { throw ScriptError("option steps: \(steps ?? 0) must be >= 1") }
            let count = min(steps ?? schedule.steps, schedule.steps)  // a cut schedule has fewer timesteps
            let guide = Sampler(kind: .ddim, steps: count, eta: eta, guidance: guidance, guidanceInterval: interval,
                                clip: clip, objective: objective)
            let context = SamplerContext(model: model, schedule: schedule, labels: labels, guide: guide,
                                         shape: noise.shape, generators: perImage, generator: g)
            let scheduleIndex = start.cut ? nil : stackField(lua, o, "schedule")
            let optionsIndex = stackField(lua, o, "options")
            if let optionsIndex, lua.type(optionsIndex) != LUA_TTABLE {
                throw ScriptError("option options: a table of plugin options expected, "
                                  + "got \(lua.describe(optionsIndex))")
            }
            SamplerContext.pushTable(lua, context, noise: noise, steps: count, eta: eta, schedule: scheduleIndex,
                                     options: optionsIndex, onStep: onStep, known: stackField(lua, o, "known"))
            let ctx = lua.absolute(-1)
            lua.getField(table, "sample")
            lua.pushValue(ctx)
            try withNoGrad { try lua.call(arguments: 1, results: 1) }
            g = context.generator
            let images = lua.object(-1, metatable: Metatable.tensor, as: Tensor.self)
            guard let images, images.shape == noise.shape else {
                let got = images.map { "a tensor \(Shape.describe($0.shape))" } ?? lua.describe(-1)
                throw ScriptError("sampler \(label): sample(ctx) returned \(got); expected the images, a tensor "
                                  + "\(Shape.describe(noise.shape)) (the shape of ctx.x)")
            }
        }
        return 1
    }

    /// The objective attached to the options' model (`model.objective`).
    static func modelObjective(_ o: Options) throws -> Objective {
        guard let index = o.index else { return .eps }
        o.lua.getField(index, "model")
        defer { o.lua.pop() }
        return try ModelTable.objective(o.lua, o.lua.absolute(-1))
    }

    /// Pushes option `key` of `o` and returns its stack index, or nil (nothing pushed) when absent.
    static func stackField(_ lua: Lua, _ o: Options, _ key: String) -> Int32? {
        guard let index = o.index else { return nil }
        if lua.getField(index, key) == LUA_TNIL {
            lua.pop()
            return nil
        }
        return lua.absolute(-1)
    }

    static func labelCount(_ o: Options) throws -> Int {
        guard let index = o.index else { return 0 }
        o.lua.getField(index, "labels")
        defer { o.lua.pop() }
        if let t = o.lua.object(-1, metatable: Metatable.tensor, as: Tensor.self) { return t.count }
        if o.lua.type(-1) == LUA_TTABLE { return o.lua.length(-1) }
        return 0
    }
}
