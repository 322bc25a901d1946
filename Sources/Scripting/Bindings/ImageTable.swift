import Autograd
import CLua
import Datasets
import Foundation
import Imaging

/// `ddpm.image.*` (grids, PNG files) and `ddpm.gif.open` with the Gif userdata.
enum ImageTable {
    static let tables = [
        LuaTable(name: "image", functions: image),
        LuaTable(name: "gif", functions: gif, classes: [gifClass]),
    ]

    static let image: [(String, Binding)] = [
        ("grid", { a in
            let x = try a.tensor(1)
            let o = try a.options(2)
            TensorTable.push(a.lua, try Frames.grid(x, cols: try o.int("cols"), pad: try o.int("pad") ?? 2,
                                                       value: Float(try o.number("value") ?? -1)))
            return 1
        }),
        ("save", { a in
            let x = try a.tensor(1), path = try a.string(2)
            let o = try a.options(3)
            let img = try Frames.gray(x, scale: try o.int("scale") ?? 1)
            try PNG.write(path, width: img.width, height: img.height, gray: img.pixels, text: try text(a, o))
            return 0
        }),
        ("bytes", { a in a.lua.push(bytes: Frames.bytes(try a.tensor(1))); return 1 }),
        ("load", { a in
            let path = try a.string(1)
            let o = try a.options(2)
            try o.rejectUnknown(["grayscale"], what: "image.load")
            // grayscale = true: a colour, palette, alpha or 16-bit file is an error, not converted
            let r = try o.bool("grayscale") == true ? PNG.readGrayscale(path) : PNG.read(path)
            TensorTable.push(a.lua, try Frames.tensor(width: r.width, height: r.height, pixels: r.gray))
            return 1
        }),
        ("resize", { a in
            let x = try a.tensor(1), size = try a.int(2)
            let o = try a.options(3)
            try o.rejectUnknown(["resize"], what: "image.resize")
            TensorTable.push(a.lua, try resize(x, size: size, mode: try DataTable.resize(o)))
            return 1
        }),
    ]

    /// Each (H, W) plane of x (N, C, H, W) as 8-bit pixels (what a PNG of it holds), resized to
    /// size x size as the training data is (`ImageDataset.resized`).
    static func resize(_ x: Tensor, size: Int, mode: ImageDataset.Resize) throws -> Tensor {
        guard x.rank == 4, x.shape[2] >= 1, x.shape[3] >= 1 else {
            throw ScriptError("bad argument #1 (images (N, C, H, W) expected, got \(Shape.describe(x.shape)))")
        }
        guard size >= 1 && size <= 1024 else { throw ScriptError("bad argument #2 (size \(size) must be in 1...1024)") }
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        _ = try Shape.checkedAllocation([n, c, size, size], op: "image.resize")
        let out = Tensor(uninitialized: [n, c, size, size])
        let bytes = Frames.bytes(x)
        for p in 0..<(n * c) {
            let plane = try ImageDataset.resized(Array(bytes[(p * h * w)..<((p + 1) * h * w)]), height: h, width: w,
                                                 size: size, mode: mode)
            (out.data + p * size * size).update(from: plane, count: plane.count)
        }
        return out
    }

    /// The provenance entries of an options table's `text = {key = value}`, sorted by key (Lua's
    /// table order varies between runs, and the same image must be the same file), after
    /// Software = ddpm-swift.
    static func text(_ a: Arguments, _ o: Options) throws -> [(String, String)] {
        var extra: [(String, String)] = []
        if let t = o.index, o.has("text") {
            a.lua.getField(t, "text")
            defer { a.lua.pop() }
            guard a.lua.type(-1) == LUA_TTABLE else { throw o.bad("text", "table of key = value strings") }
            a.lua.forEachPair(-1) {
                if let k = a.lua.string(-2) { extra.append((k, a.lua.string(-1) ?? a.lua.describe(-1))) }
            }
        }
        return [("Software", "ddpm-swift")] + extra.sorted { $0.0 < $1.0 }
    }

    static let gif: [(String, Binding)] = [
        ("open", { a in
            let path = try a.string(1)
            let o = try a.options(2)
            // provenance (`text`): a GIF comment extension of key=value lines
            let comment = o.has("text") ? try text(a, o).map { "\($0.0)=\($0.1)" }.joined(separator: "\n") : ""
            // The size comes from the first frame; create lazily.
            a.lua.pushObject(PendingGIF(path: path, delay: try o.int("delay") ?? 4, loop: try o.int("loop") ?? 0,
                                        scale: try o.int("scale") ?? 1, comment: comment), metatable: Metatable.gif)
            return 1
        }),
    ]

    static func gifObject(_ a: Arguments) throws -> PendingGIF {
        try a.object(1, Metatable.gif, PendingGIF.self, "gif")
    }

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
    let path: String, delay: Int, loop: Int, scale: Int, comment: String
    private var gif: GIFWriter?
    private var closed = false
    var frames: Int { gif?.frames ?? 0 }

    init(path: String, delay: Int, loop: Int, scale: Int, comment: String) {
        self.path = path; self.delay = delay; self.loop = loop; self.scale = scale; self.comment = comment
    }

    func writer(width: Int, height: Int) throws -> GIFWriter {
        guard !closed else { throw ScriptError("\(path): GIF is already closed") }
        if let gif {
            guard gif.width == width, gif.height == height else {
                throw ScriptError("\(path): frame is \(width)x\(height), the GIF is \(gif.width)x\(gif.height)")
            }
            return gif
        }
        let g = try GIFWriter(path: path, width: width, height: height, loop: loop, comment: comment)
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
