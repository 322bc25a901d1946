import Autograd
import CLua
import Diffusion
import Foundation
import Layers

/// `ddpm.sample{...}`: the native samplers (DDPM, DDIM) with guidance, per-image seeds and hooks;
/// `objective=` (default: the model's, `model.objective`) says what the model outputs.
enum SampleTable {
    static let tables = [LuaTable(topLevel: [("sample", sample)])]

    static let sample: Binding = { a in
        let o = try a.options(1)
        guard let model = try o.object("model", Metatable.model, UNet.self, "model") else {
            throw ScriptError("option model= is required")
        }
        let schedule = try o.object("schedule", Metatable.schedule, ScheduleBox.self, "schedule")?.schedule ?? (try Schedule.linear())
        let kindName = try o.string("sampler") ?? "ddpm"
        guard let kind = Sampler.Kind(rawValue: kindName) else {
            throw ScriptError("option sampler: \"ddpm\" or \"ddim\" expected, got \"\(kindName)\"")
        }
        let c = model.config
        var generator = try o.int("seed").map { Generator(seed: UInt64(bitPattern: Int64($0))) }
        // seeds = {one per image}: each image's noise from its own generator (regenerable alone)
        var perImage: [Generator]? = nil
        if o.has("seeds") {
            let count = try o.int("n") ?? (try labelCount(o))
            guard count >= 1 else { throw ScriptError("option seeds= needs labels= or n= (one seed per image)") }
            perImage = try o.integers("seeds", count: count)?.map { Generator(seed: UInt64(bitPattern: Int64($0))) }
        }
        let noise: Tensor
        if let n = try o.tensor("noise") {
            noise = n
        } else if var gs = perImage {
            let count = gs.count
            noise = try Sampler.initialNoise([count, c.channels, c.imageSize, c.imageSize], generators: &gs)
            perImage = gs
        } else {
            let count = try o.int("n") ?? (try labelCount(o))
            guard count >= 1 else { throw ScriptError("nothing to sample: give labels= (one per image), n= or noise=") }
            let shape = [count, c.channels, c.imageSize, c.imageSize]
            if var g = generator {
                noise = Tensor.randn(shape, generator: &g)
                generator = g
            } else {
                noise = Tensor.randn(shape, generator: &Generator.global)
            }
        }
        guard noise.rank == 4 else { throw ScriptError("option noise: (N, C, H, W) expected, got \(Shape.describe(noise.shape))") }
        let labels = try o.integers("labels", count: noise.shape[0])
        let guidance = try o.number("guidance") ?? 1
        if guidance != 1 && labels == nil { throw ScriptError("option guidance needs labels= (classifier-free guidance)") }
        var interval: ClosedRange<Int>? = nil
        if let bounds = try o.integers("guidance_interval", count: 2) {
            guard bounds[0] <= bounds[1] else {
                throw ScriptError("option guidance_interval: {low, high} timesteps with low <= high expected, got {\(bounds[0]), \(bounds[1])}")
            }
            interval = bounds[0]...bounds[1]
        }
        let objective = try o.string("objective").map { try Objective(name: $0) } ?? (try modelObjective(o))
        let sampler = Sampler(kind: kind, steps: try o.int("steps") ?? (kind == .ddim ? 50 : schedule.steps),
                              eta: try o.number("eta") ?? 0, guidance: guidance, guidanceInterval: interval,
                              clip: try o.bool("clip") ?? true, objective: objective)
        let onStep = try o.pushFunction("on_step")
        let lua = a.lua
        var g = generator ?? Generator.global
        defer { if generator == nil { Generator.global = g } }
        let images = try sampler.sample(model: model, schedule: schedule, labels: labels, noise: noise, generator: &g,
                                        generators: perImage) { i, t, xt, x0 in
            guard let f = onStep else { return }
            lua.pushValue(f)
            lua.push(i)
            lua.push(t)
            TensorTable.push(lua, xt)
            TensorTable.push(lua, x0)
            try lua.call(arguments: 4, results: 0)
        }
        TensorTable.push(a.lua, images)
        return 1
    }

    /// The objective attached to the options' model (`model.objective`).
    static func modelObjective(_ o: Options) throws -> Objective {
        guard let index = o.index else { return .eps }
        o.lua.getField(index, "model")
        defer { o.lua.pop() }
        return try ModelTable.objective(o.lua, o.lua.absolute(-1))
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
