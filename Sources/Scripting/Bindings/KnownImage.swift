import Autograd
import CLua
import Diffusion

/// `ddpm.sample`'s `known = {image =, mask =}` and `t_start =`: an image the sampling starts from
/// or must keep. `t_start` (img2img) starts the reverse process at that timestep from `image`
/// noised to it with the starting noise, on the schedule cut after it (`Schedule.prefix`, the
/// same alpha-bars), so every sampler runs unchanged; -1 returns the image, T - 1 is plain
/// sampling (x_{T-1} is pure noise there, as without an image). `mask` (1 = keep, 0 = generate)
/// is for sampler plugins that read `ctx.known` (inpainting); the table reaches them as given.
struct Known {
    let image: Tensor?
    let mask: Tensor?
    let tStart: Int?
    let schedule: Schedule

    var hasMask: Bool { mask != nil }
    var startsClean: Bool { tStart == -1 }

    init(_ lua: Lua, _ o: Options, noise: Tensor, schedule: Schedule) throws {
        self.schedule = schedule
        var image: Tensor? = nil, mask: Tensor? = nil
        if let index = o.index {
            let type = lua.getField(index, "known")
            defer { lua.pop() }
            if type != LUA_TNIL {
                guard type == LUA_TTABLE else {
                    throw ScriptError("option known: a table {image = x, mask = m} expected, got \(lua.describe(-1))")
                }
                let k = Options(lua: lua, index: lua.absolute(-1), argument: o.argument)
                try k.rejectUnknown(["image", "mask"], what: "known")
                func tensor(_ key: String) throws -> Tensor? {
                    guard k.has(key) else { return nil }
                    guard let t = try? k.tensor(key), t.shape == noise.shape else {
                        lua.getField(-1, key)
                        defer { lua.pop() }
                        throw ScriptError("option known.\(key): a tensor \(Shape.describe(noise.shape)) (the shape of "
                                          + "the images) expected, got \(describeTensor(lua))")
                    }
                    return t
                }
                image = try tensor("image")
                mask = try tensor("mask")
                if let m = mask, m.values.contains(where: { !($0 >= 0 && $0 <= 1) }) {
                    throw ScriptError("option known.mask: values must be in [0, 1] (1 = keep, 0 = generate)")
                }
                if mask != nil && image == nil {
                    throw ScriptError("option known.mask needs known.image (the pixels to keep)")
                }
            }
        }
        self.image = image
        self.mask = mask
        tStart = try o.int("t_start")
        if let t = tStart {
            guard t >= -1 && t < schedule.steps else {
                throw ScriptError("option t_start: \(t) must be in [-1, \(schedule.steps - 1)] (timesteps 0-based; "
                                  + "-1 returns known.image)")
            }
            guard image != nil else { throw ScriptError("option t_start needs known.image (the image to start from)") }
        }
    }

    /// The starting x and the schedule the sampler runs on (`cut`: shorter than the model's).
    func start(noise: Tensor) throws -> (x: Tensor, schedule: Schedule, cut: Bool) {
        guard let t = tStart, let image, t < schedule.steps - 1 else { return (noise, schedule, false) }
        let x = try withNoGrad {
            try schedule.addNoise(image, t: [Int](repeating: t, count: image.shape[0]), noise: noise)
        }
        return (x, try schedule.prefix(t + 1), true)
    }
}

/// The value on top of the stack: a tensor's shape, else its Lua description.
private func describeTensor(_ lua: Lua) -> String {
    guard let t = lua.object(-1, metatable: Metatable.tensor, as: Tensor.self) else { return lua.describe(-1) }
    return "a tensor \(Shape.describe(t.shape))"
}
