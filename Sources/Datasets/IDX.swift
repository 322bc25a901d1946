import Autograd
import Imaging

/// IDX files (MNIST, Fashion-MNIST): big-endian magic (0, 0, type 0x08 = ubyte, rank), the
/// dimensions, then the data. Gzipped files are read transparently.
public enum IDX {
    /// (dims, bytes) of a ubyte IDX file, checked against its declared size.
    public static func read(_ path: String) throws -> (dims: [Int], bytes: [UInt8]) {
        let b: [UInt8]
        do { b = try Zlib.readMaybeGzip(path) } catch let e as ImageError { throw TensorError(e.message) }
        func bad(_ why: String) -> TensorError { TensorError("\(path): \(why) (corrupt or not an IDX file)") }
        guard b.count >= 4, b[0] == 0, b[1] == 0 else { throw bad("bad magic number") }
        guard b[2] == 0x08 else { throw bad("element type 0x\(String(b[2], radix: 16)) is not unsigned byte") }
        let rank = Int(b[3])
        guard rank >= 1, rank <= 4, b.count >= 4 + 4 * rank else { throw bad("bad rank \(rank)") }
        var dims: [Int] = []
        for i in 0..<rank {
            let o = 4 + 4 * i
            dims.append(Int(b[o]) << 24 | Int(b[o + 1]) << 16 | Int(b[o + 2]) << 8 | Int(b[o + 3]))
        }
        let header = 4 + 4 * rank
        let n = dims.reduce(1, *)
        guard b.count - header == n else { throw bad("\(b.count - header) data bytes for dimensions \(dims) (expected \(n))") }
        return (dims, Array(b[header...]))
    }
}

/// A labelled image dataset in memory: images as (count, 1, size, size) floats in [-1, 1],
/// served in shuffled epochs. Its shuffle generator and cursor are its whole state.
public final class ImageDataset {
    public enum Resize: String { case bilinear, pad, none }

    public let images: Tensor      /// (count, 1, size, size)
    public let labels: [Int]
    public let size: Int
    public var count: Int { labels.count }
    private var order: [Int] = []
    private var cursor = 0
    public private(set) var epoch = 0
    private var generator: Generator
    /// Generator state at the start of the current epoch (what a checkpoint saves).
    private var epochStart: Generator

    public init(imagesPath: String, labelsPath: String, size: Int? = nil, resize: Resize = .bilinear,
                generator: Generator) throws {
        let (idims, pixels) = try IDX.read(imagesPath)
        let (ldims, lbytes) = try IDX.read(labelsPath)
        guard idims.count == 3 else { throw TensorError("\(imagesPath): expected images (count, rows, cols), got dimensions \(idims)") }
        guard ldims.count == 1, ldims[0] == idims[0] else {
            throw TensorError("\(labelsPath): \(ldims.first ?? 0) labels for \(idims[0]) images in \(imagesPath)")
        }
        let (n, h, w) = (idims[0], idims[1], idims[2])
        let target = size ?? max(h, w)
        guard target >= 1 && target <= 1024 else { throw TensorError("dataset: size \(target) out of range") }
        if resize == .pad && (target < h || target < w) {
            throw TensorError("dataset: resize \"pad\" cannot shrink \(h)x\(w) images to \(target)")
        }
        if resize == .none && (target != h || target != w) {
            throw TensorError("dataset: images are \(h)x\(w); size \(target) needs resize \"bilinear\" or \"pad\"")
        }
        self.size = target
        labels = lbytes.map(Int.init)
        images = Tensor(uninitialized: [n, 1, target, target])
        for k in 0..<n {
            ImageDataset.resample(pixels, offset: k * h * w, h: h, w: w, into: images.data + k * target * target, size: target, mode: resize)
        }
        self.generator = generator
        epochStart = generator
        shuffle()
    }

    /// Pixels 0...255 -> [-1, 1], resized. Bilinear follows PyTorch's align_corners=False
    /// (half-pixel centres, edge clamped); pad centres the image on background -1.
    static func resample(_ px: [UInt8], offset: Int, h: Int, w: Int, into out: UnsafeMutablePointer<Float>, size: Int, mode: Resize) {
        func v(_ y: Int, _ x: Int) -> Float { Float(px[offset + y * w + x]) / 127.5 - 1 }
        switch mode {
        case .none:
            for y in 0..<h { for x in 0..<w { out[y * size + x] = v(y, x) } }
        case .pad:
            out.update(repeating: -1, count: size * size)
            let oy = (size - h) / 2, ox = (size - w) / 2
            for y in 0..<h { for x in 0..<w { out[(y + oy) * size + x + ox] = v(y, x) } }
        case .bilinear:
            let sy = Float(h) / Float(size), sx = Float(w) / Float(size)
            for y in 0..<size {
                let fy = max((Float(y) + 0.5) * sy - 0.5, 0)
                let y0 = min(Int(fy), h - 1), y1 = min(y0 + 1, h - 1), ay = fy - Float(y0)
                for x in 0..<size {
                    let fx = max((Float(x) + 0.5) * sx - 0.5, 0)
                    let x0 = min(Int(fx), w - 1), x1 = min(x0 + 1, w - 1), ax = fx - Float(x0)
                    let top = v(y0, x0) * (1 - ax) + v(y0, x1) * ax
                    let bottom = v(y1, x0) * (1 - ax) + v(y1, x1) * ax
                    out[y * size + x] = top * (1 - ay) + bottom * ay
                }
            }
        }
    }

    private func shuffle() {
        epochStart = generator
        order = Array(0..<count)
        for i in stride(from: count - 1, to: 0, by: -1) { order.swapAt(i, generator.int(below: i + 1)) }
        cursor = 0
    }

    /// The next n examples of the shuffled stream (crossing into a new epoch when needed).
    public func batch(_ n: Int) throws -> (images: Tensor, labels: [Int]) {
        guard n >= 1 else { throw TensorError("dataset:batch: size \(n) must be >= 1") }
        guard count > 0 else { throw TensorError("dataset:batch: the dataset is empty") }
        let plane = size * size
        let x = Tensor(uninitialized: [n, 1, size, size])
        var ys: [Int] = []
        for k in 0..<n {
            if cursor == count { epoch += 1; shuffle() }
            let i = order[cursor]
            cursor += 1
            (x.data + k * plane).update(from: images.data + i * plane, count: plane)
            ys.append(labels[i])
        }
        return (x, ys)
    }

    /// [epoch, cursor, generator words at epoch start] — enough to continue the same stream.
    public var state: [UInt64] { [UInt64(epoch), UInt64(cursor)] + epochStart.stateWords }

    public func restore(_ s: [UInt64]) throws {
        guard s.count == 6, let g = Generator(stateWords: Array(s[2...])), Int(s[1]) <= count else {
            throw TensorError("dataset: saved state does not match this dataset")
        }
        generator = g
        shuffle()
        epoch = Int(s[0])
        cursor = Int(s[1])
    }
}
