import Autograd
import Imaging

/// IDX files (MNIST, Fashion-MNIST): big-endian magic (0, 0, type 0x08 = ubyte, rank), the
/// dimensions, then the data. Gzipped files are read transparently.
public enum IDX {
    /// Largest data section read (bytes after the header).
    public static let maxBytes = 1 << 30

    /// (dims, bytes) of a ubyte IDX file, checked against its declared size. The header is read
    /// first: `reserve` sees the dimensions before the data buffer is allocated (to refuse what
    /// will not fit in memory), and the data is read straight into a buffer of the declared size.
    public static func read(_ path: String, reserve: ([Int]) throws -> Void = { _ in }) throws
        -> (dims: [Int], bytes: [UInt8]) {
        do {
            return try readChecked(path, reserve: reserve)
        } catch let e as ImageError {
            throw TensorError(e.message)
        }
    }

    /// Writes a labelled image set as an IDX pair (images (count, rows, cols), labels (count)),
    /// both atomically and as a set: a failed write (a full disk) leaves the old pair in place.
    public static func write(imagesPath: String, labelsPath: String, pixels: [UInt8], rows: Int, cols: Int,
                             labels: [Int]) throws {
        let n = labels.count
        guard rows >= 1, cols >= 1, rows < 1 << 31, cols < 1 << 31, n < 1 << 31 else {
            throw TensorError("idx: \(n) images of \(rows)x\(cols) cannot be written")
        }
        guard pixels.count == n * rows * cols else {
            throw TensorError("idx: \(pixels.count) pixel bytes for \(n) images of \(rows)x\(cols) "
                              + "(expected \(n * rows * cols))")
        }
        if let bad = labels.first(where: { !(0...255).contains($0) }) {
            throw TensorError("idx: label \(bad) is not a byte (0...255)")
        }
        func be32(_ v: Int) -> [UInt8] { [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: v >> $0) } }
        try AtomicFile.writeAll([
            (imagesPath, { try $0.write([0, 0, 8, 3] + be32(n) + be32(rows) + be32(cols)); try $0.write(pixels) }),
            (labelsPath, { try $0.write([0, 0, 8, 1] + be32(n) + labels.map { UInt8($0) }) }),
        ])
    }

    private static func readChecked(_ path: String, reserve: ([Int]) throws -> Void) throws
        -> (dims: [Int], bytes: [UInt8]) {
        let reader = try GzipReader(path)
        func bad(_ why: String) -> TensorError { TensorError("\(path): \(why) (corrupt or not an IDX file)") }
        func next(_ n: Int) throws -> [UInt8] {
            var b = [UInt8](repeating: 0, count: n)
            let got = try b.withUnsafeMutableBytes { try reader.read(into: $0) }
            return Array(b.prefix(got))
        }
        let magic = try next(4)
        guard magic.count == 4, magic[0] == 0, magic[1] == 0 else { throw bad("bad magic number") }
        guard magic[2] == 0x08 else { throw bad("element type 0x\(String(magic[2], radix: 16)) is not unsigned byte") }
        let rank = Int(magic[3])
        guard rank >= 1, rank <= 4 else { throw bad("bad rank \(rank)") }
        let raw = try next(4 * rank)
        guard raw.count == 4 * rank else { throw bad("header cut short (rank \(rank))") }
        let dims = (0..<rank).map { i in raw[4 * i..<4 * i + 4].reduce(0) { $0 << 8 | Int($1) } }
        var n = 1
        for d in dims {
            let (p, overflow) = n.multipliedReportingOverflow(by: d)
            guard !overflow, p <= maxBytes else { throw bad("dimensions \(dims) describe more than \(maxBytes) bytes") }
            n = p
        }
        try Memory.check(bytes: n, for: "\(path): dimensions \(dims)")
        try reserve(dims)
        var bytes = [UInt8](repeating: 0, count: n)
        let got = try bytes.withUnsafeMutableBytes { try reader.read(into: $0) }
        let extra = got == n ? try reader.remainingCount() : 0
        guard got == n, extra == 0 else {
            throw bad("\(got + extra) data bytes for dimensions \(dims) (expected \(n))")
        }
        return (dims, bytes)
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
        // Every check on the dimensions, and the memory for the pixels and the resized floats,
        // before the data is read.
        let (idims, pixels) = try IDX.read(imagesPath) { dims in
            guard dims.count == 3 else {
                throw TensorError("\(imagesPath): expected images (count, rows, cols), got dimensions \(dims)")
            }
            let (n, h, w) = (dims[0], dims[1], dims[2])
            guard h >= 1, w >= 1 else {
                throw TensorError("\(imagesPath): images of \(h)x\(w) pixels (rows and columns must be >= 1)")
            }
            let target = try ImageDataset.targetSize(h: h, w: w, size: size, resize: resize)
            let floats = try Shape.checkedCount([n, 1, target, target], op: "dataset")
            try Memory.check(bytes: n * h * w + 4 * floats,
                             for: "dataset \(imagesPath) (\(n) images at \(target)x\(target))")
        }
        let (ldims, lbytes) = try IDX.read(labelsPath)
        guard ldims.count == 1, ldims[0] == idims[0] else {
            throw TensorError("\(labelsPath): \(ldims.first ?? 0) labels for \(idims[0]) images in \(imagesPath)")
        }
        let (n, h, w) = (idims[0], idims[1], idims[2])
        let target = try ImageDataset.targetSize(h: h, w: w, size: size, resize: resize)
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

    /// A dataset of images already in memory (copied): (count, 1, size, size) in [-1, 1], such as
    /// generated digits, with one label >= 0 each.
    public init(images: Tensor, labels: [Int], generator: Generator) throws {
        let s = images.shape
        guard s.count == 4, s[1] == 1, s[2] == s[3], s[2] >= 1, s[0] >= 1 else {
            throw TensorError("dataset: images must be (count >= 1, 1, size, size), got \(Shape.describe(s))")
        }
        guard labels.count == s[0] else { throw TensorError("dataset: \(labels.count) labels for \(s[0]) images") }
        if let bad = labels.first(where: { $0 < 0 }) { throw TensorError("dataset: label \(bad) is negative") }
        self.images = images.copy()
        self.labels = labels
        size = s[2]
        self.generator = generator
        epochStart = generator
        shuffle()
    }

    /// The side of the stored images: `size`, else the larger of h and w; checked against the mode.
    static func targetSize(h: Int, w: Int, size: Int?, resize: Resize) throws -> Int {
        let target = size ?? max(h, w)
        guard target >= 1 && target <= 1024 else { throw TensorError("dataset: size \(target) out of range") }
        if resize == .pad && (target < h || target < w) {
            throw TensorError("dataset: resize \"pad\" cannot shrink \(h)x\(w) images to \(target)")
        }
        if resize == .none && (target != h || target != w) {
            throw TensorError("dataset: images are \(h)x\(w); size \(target) needs resize \"bilinear\" or \"pad\"")
        }
        return target
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
        _ = try Shape.checkedAllocation([n, 1, size, size], op: "dataset:batch")
        let x = Tensor(uninitialized: [n, 1, size, size])
        var ys: [Int] = []
        ys.reserveCapacity(n)
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
        guard s.count == 6, let g = Generator(stateWords: Array(s[2...])), s[1] <= UInt64(count),
              s[0] <= UInt64(Int32.max) else {
            throw TensorError("dataset: saved state does not match this dataset")
        }
        generator = g
        shuffle()
        epoch = Int(s[0])
        cursor = Int(s[1])
    }
}
