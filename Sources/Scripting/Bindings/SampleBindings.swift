import Autograd
import CLua
import Diffusion
import Foundation
import Imaging
import Layers

/// `ddpm.sample{...}`, `ddpm.image.*`, `ddpm.gif.open`.
final class GIFBox {
    let writer: GIFWriter
    let delay: Int, scale: Int
    init(_ w: GIFWriter, delay: Int, scale: Int) { writer = w; self.delay = delay; self.scale = scale }
}

enum SampleBindings {
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
        let sampler = Sampler(kind: kind, steps: try o.int("steps") ?? (kind == .ddim ? 50 : schedule.steps),
                              eta: try o.number("eta") ?? 0, guidance: guidance, guidanceInterval: interval,
                              clip: try o.bool("clip") ?? true)
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
            TensorBindings.push(lua, xt)
            TensorBindings.push(lua, x0)
            try lua.call(arguments: 4, results: 0)
        }
        TensorBindings.push(a.lua, images)
        return 1
    }

    static func labelCount(_ o: Options) throws -> Int {
        guard let index = o.index else { return 0 }
        o.lua.getField(index, "labels")
        defer { o.lua.pop() }
        if let t = o.lua.object(-1, metatable: Metatable.tensor, as: Tensor.self) { return t.count }
        if o.lua.type(-1) == LUA_TTABLE { return o.lua.length(-1) }
        return 0
    }

    static let image: [(String, Binding)] = [
        ("grid", { a in
            let x = try a.tensor(1)
            let o = try a.options(2)
            TensorBindings.push(a.lua, try Frames.grid(x, cols: try o.int("cols"), pad: try o.int("pad") ?? 2,
                                                       value: Float(try o.number("value") ?? -1)))
            return 1
        }),
        ("save", { a in
            let x = try a.tensor(1), path = try a.string(2)
            let o = try a.options(3)
            let img = try Frames.gray(x, scale: try o.int("scale") ?? 1)
            var extra: [(String, String)] = []
            if let t = o.index, o.has("text") {
                a.lua.getField(t, "text")
                defer { a.lua.pop() }
                a.lua.forEachPair(-1) {
                    if let k = a.lua.string(-2) { extra.append((k, a.lua.string(-1) ?? a.lua.describe(-1))) }
                }
            }
            // sorted: Lua's table order varies between runs, and the same sheet must be the same file
            let text = [("Software", "ddpm-swift")] + extra.sorted { $0.0 < $1.0 }
            try PNG.write(path, width: img.width, height: img.height, gray: img.pixels, text: text)
            return 0
        }),
        ("bytes", { a in a.lua.push(bytes: Frames.bytes(try a.tensor(1))); return 1 }),
        ("load", { a in
            let r = try PNG.read(try a.string(1))
            TensorBindings.push(a.lua, try Frames.tensor(width: r.width, height: r.height, pixels: r.gray))
            return 1
        }),
    ]

    static let gif: [(String, Binding)] = [
        ("open", { a in
            let path = try a.string(1)
            let o = try a.options(2)
            // The size comes from the first frame; create lazily.
            a.lua.pushObject(PendingGIF(path: path, delay: try o.int("delay") ?? 4, loop: try o.int("loop") ?? 0,
                                        scale: try o.int("scale") ?? 1), metatable: Metatable.gif)
            return 1
        }),
    ]

    static func gifObject(_ a: Arguments) throws -> PendingGIF { try a.object(1, Metatable.gif, PendingGIF.self, "gif") }

    static let gifClass = LuaClass(
        metatable: Metatable.gif, display: "Gif",
        methods: [
            ("add", { a in
                let g = try gifObject(a)
                let o = try a.options(3)
                let img = try Frames.gray(try a.tensor(2), scale: g.scale)
                let w = try g.writer(width: img.width, height: img.height)
                try w.add(img.pixels, delay: try o.int("delay") ?? g.delay)
                return 0
            }),
            ("close", { a in try gifObject(a).close(); return 0 }),
        ],
        metamethods: [
            ("__tostring", { a in
                let g = try gifObject(a)
                a.lua.push("ddpm.Gif(\(g.path), \(g.frames) frames)")
                return 1
            }),
        ],
        getters: ["frames": { a in a.lua.push(try gifObject(a).frames); return 1 }])
}

/// A GIF whose size is fixed by its first frame.
final class PendingGIF {
    let path: String, delay: Int, loop: Int, scale: Int
    private var gif: GIFWriter?
    private var closed = false
    var frames: Int { gif?.frames ?? 0 }

    init(path: String, delay: Int, loop: Int, scale: Int) {
        self.path = path; self.delay = delay; self.loop = loop; self.scale = scale
    }

    func writer(width: Int, height: Int) throws -> GIFWriter {
        guard !closed else { throw ScriptError("\(path): GIF is already closed") }
        if let gif {
            guard gif.width == width, gif.height == height else {
                throw ScriptError("\(path): frame is \(width)x\(height), the GIF is \(gif.width)x\(gif.height)")
            }
            return gif
        }
        let g = try GIFWriter(path: path, width: width, height: height, loop: loop)
        gif = g
        return g
    }

    func close() throws {
        guard !closed else { return }
        guard let gif else { throw ScriptError("\(path): no frames were added") }
        closed = true
        try gif.close()
    }
}
