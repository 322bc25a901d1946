import Autograd
import CLua
import Diffusion
import Layers

/// What a sampler plugin's `ctx.eps`, `ctx.x0` and `ctx.randn` work on: the model with its
/// guidance, the batch's shape and the noise generators. Each of those functions is a binding
/// with the context's userdata bound to it (`Lua.pushBound`), so one context serves one
/// `ddpm.sample` call and nothing outlives it.
final class SamplerContext {
    let model: UNet
    let schedule: Schedule
    let labels: [Label]?
    /// Guidance, its interval and clipping (the native sampler's guided noise prediction).
    let guide: Sampler
    let shape: [Int]
    /// One generator per image (`seeds=`), else `generator`.
    var generators: [Generator]?
    var generator: Generator

    init(model: UNet, schedule: Schedule, labels: [Label]?, guide: Sampler, shape: [Int],
         generators: [Generator]?, generator: Generator) {
        self.model = model
        self.schedule = schedule
        self.labels = labels
        self.guide = guide
        self.shape = shape
        self.generators = generators
        self.generator = generator
    }

    /// The guided noise prediction for x at timestep t (one batched forward when guided).
    func eps(_ x: Tensor, _ t: Int, _ op: String) throws -> Tensor {
        guard x.shape == shape else {
            throw ScriptError("x \(Shape.describe(x.shape)) must have the shape of ctx.x \(Shape.describe(shape))")
        }
        try schedule.check(op, t)
        return try guide.predictNoise(model, x, t: t, conditions: labels, schedule: schedule)
    }

    /// Fresh standard normal noise shaped like ctx.x, image i from its own generator when given.
    func randn() throws -> Tensor {
        guard var gs = generators else { return Tensor.randn(shape, generator: &generator) }
        defer { generators = gs }
        return try Sampler.initialNoise(shape, generators: &gs)
    }

    static func bound(_ a: Arguments) throws -> SamplerContext {
        guard let c = a.lua.object(Lua.boundValue, metatable: Metatable.samplerContext, as: SamplerContext.self) else {
            throw ScriptError("not called as a sampler context's function")
        }
        return c
    }

    /// The binding ids of the context's functions, registered once per process.
    static let epsID = Registry.add("ctx.eps") { a in
        TensorTable.push(a.lua, try bound(a).eps(try a.tensor(1), try a.int(2), "ctx.eps"))
        return 1
    }
    static let x0ID = Registry.add("ctx.x0") { a in
        let c = try bound(a)
        let x = try a.tensor(1), t = try a.int(2)
        let r = try c.schedule.denoise(x, eps: try c.eps(x, t, "ctx.x0"), t: t, clip: c.guide.clip)
        TensorTable.push(a.lua, r.x0)
        TensorTable.push(a.lua, r.eps)
        return 2
    }
    static let randnID = Registry.add("ctx.randn") { a in
        TensorTable.push(a.lua, try bound(a).randn())
        return 1
    }
    static let noStepID = Registry.add("ctx.on_step") { _ in 0 }

    /// Pushes the `ctx` table of the spec (docs/lua-api.md, "Sampler plugins") for `context`:
    /// `x`, `schedule`, `steps`, `labels`, `eps`, `x0`, `randn`, `eta`, `clip`, `options`,
    /// `on_step`, and `known` when given. The values of `schedule`, `options`, `on_step` and
    /// `known` are taken from the stack indices given (nil: a new schedule userdata, an empty
    /// table, a function doing nothing, no field).
    static func pushTable(_ lua: Lua, _ context: SamplerContext, noise: Tensor, steps: Int, eta: Double,
                          schedule: Int32?, options: Int32?, onStep: Int32?, known: Int32? = nil) {
        lua.newTable(hash: 13)
        let ctx = lua.absolute(-1)
        TensorTable.push(lua, noise); lua.setField(ctx, "x")
        if let schedule { lua.pushValue(schedule) } else { ScheduleTable.push(lua, context.schedule) }
        lua.setField(ctx, "schedule")
        lua.push(steps); lua.setField(ctx, "steps")
        let labels = context.labels ?? [Label](repeating: .none, count: noise.shape[0])
        lua.newTable(array: labels.count)
        for (i, l) in labels.enumerated() {
            if l.isPlain {
                lua.push(l.weight == 0 ? l.from : l.to)
            } else {  // a blend, as it may be given: {from = a, to = b, w = w}
                lua.newTable(hash: 3)
                lua.push(l.from); lua.setField(-2, "from")
                lua.push(l.to); lua.setField(-2, "to")
                lua.push(Double(l.weight)); lua.setField(-2, "w")
            }
            lua.setIndex(-2, i + 1)
        }
        lua.setField(ctx, "labels")
        if let known {
            lua.pushValue(known)
            lua.setField(ctx, "known")
        }
        lua.pushObject(context, metatable: Metatable.samplerContext)
        let handle = lua.absolute(-1)
        for (key, id) in [("eps", epsID), ("x0", x0ID), ("randn", randnID)] {
            lua.pushValue(handle)
            lua.pushBound(id)
            lua.setField(ctx, key)
        }
        lua.pop()
        lua.push(eta); lua.setField(ctx, "eta")
        lua.push(context.guide.clip); lua.setField(ctx, "clip")
        if let options { lua.pushValue(options) } else { lua.newTable() }
        lua.setField(ctx, "options")
        if let onStep {
            lua.pushValue(onStep)
        } else {
            lua.pushNil()
            lua.pushBound(noStepID)
        }
        lua.setField(ctx, "on_step")
    }

    static let contextClass = LuaClass(metatable: Metatable.samplerContext, display: "SamplerContext")
}
