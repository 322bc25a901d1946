import Autograd

/// A labelled image dataset in memory: images as (count, 1, size, size) floats in [-1, 1],
/// served in shuffled epochs. Its shuffle generator and cursor are its whole state.
public final class ImageDataset {
    public enum Resize: String { case bilinear, pad, none }

    public let images: Tensor      /// (count, 1, size, size)
    public let labels: [Int]
    /// Largest label + 1 (0 when empty): the classes a model needs to learn every label.
    public let classes: Int
    /// The name of each label (index = label) when the source names its classes, else nil.
    public let classNames: [String]?
    public let size: Int
    public var count: Int { labels.count }
    private var order: [Int] = []
    private var cursor = 0
    public private(set) var epoch = 0
    private var generator: Generator
    /// Generator state at the start of the current epoch (what a checkpoint saves).
    private var epochStart: Generator

    /// An IDX pair: images (count, rows, cols) and labels (count).
    public convenience init(imagesPath: String, labelsPath: String, size: Int? = nil, resize: Resize = .bilinear,
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
            try ImageDataset.reserve(count: n, height: h, width: w, size: size, resize: resize, what: imagesPath)
        }
        let (ldims, lbytes) = try IDX.read(labelsPath)
        guard ldims.count == 1, ldims[0] == idims[0] else {
            throw TensorError("\(labelsPath): \(ldims.first ?? 0) labels for \(idims[0]) images in \(imagesPath)")
        }
        try self.init(pixels: pixels, count: idims[0], height: idims[1], width: idims[2], labels: lbytes.map(Int.init),
                      size: size, resize: resize, generator: generator)
    }

    /// `count` images of height x width 8-bit pixels (0 = black, row-major, one after another)
    /// with their labels (>= 0), stored resized to size x size (see `targetSize`). `classNames`:
    /// the name of each label where the source has names (a folder dataset's subfolders).
    public init(pixels: [UInt8], count n: Int, height h: Int, width w: Int, labels: [Int], classNames: [String]? = nil,
                size: Int? = nil, resize: Resize = .bilinear, generator: Generator) throws {
        guard h >= 1, w >= 1, n >= 0 else {
            throw TensorError("dataset: \(n) images of \(h)x\(w) pixels (rows and columns must be >= 1)")
        }
        guard labels.count == n else { throw TensorError("dataset: \(labels.count) labels for \(n) images") }
        let (plane, overflow) = h.multipliedReportingOverflow(by: w)
        guard !overflow, pixels.count / plane == n, pixels.count % plane == 0 else {
            throw TensorError("dataset: \(pixels.count) pixel bytes for \(n) images of \(h)x\(w)")
        }
        if let bad = labels.first(where: { $0 < 0 }) { throw TensorError("dataset: label \(bad) is negative") }
        let target = try ImageDataset.targetSize(h: h, w: w, size: size, resize: resize)
        self.size = target
        self.labels = labels
        self.classNames = classNames
        classes = (labels.max() ?? -1) + 1
        _ = try Shape.checkedAllocation([n, 1, target, target], op: "dataset")
        images = Tensor(uninitialized: [n, 1, target, target])
        for k in 0..<n {
            ImageDataset.resample(pixels, offset: k * plane, h: h, w: w, into: images.data + k * target * target,
                                  size: target, mode: resize)
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
        classNames = nil
        classes = (labels.max() ?? -1) + 1
        size = s[2]
        self.generator = generator
        epochStart = generator
        shuffle()
    }

    /// Refuses, before anything is read, a dataset of `count` images of height x width whose
    /// pixels and resized floats will not fit in the memory the process can still take.
    public static func reserve(count n: Int, height h: Int, width w: Int, size: Int?, resize: Resize,
                               what: String) throws {
        let target = try targetSize(h: h, w: w, size: size, resize: resize)
        let floats = try Shape.checkedCount([n, 1, target, target], op: "dataset")
        let bytes = try Shape.checkedCount([n, h, w], op: "dataset")
        try Memory.check(bytes: bytes + 4 * floats, for: "dataset \(what) (\(n) images at \(target)x\(target))")
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

    /// One h x w image of 8-bit pixels resized to size x size as a dataset stores it (see
    /// `resample`): values in [-1, 1], row-major.
    public static func resized(_ pixels: [UInt8], height h: Int, width w: Int, size: Int,
                               mode: Resize) throws -> [Float] {
        guard h >= 1, w >= 1, pixels.count == h * w else {
            throw TensorError("resize: \(pixels.count) pixels for an image of \(h)x\(w)")
        }
        let target = try targetSize(h: h, w: w, size: size, resize: mode)
        var out = [Float](repeating: 0, count: target * target)
        out.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            resample(pixels, offset: 0, h: h, w: w, into: base, size: target, mode: mode)
        }
        return out
    }

    /// Pixels 0...255 -> [-1, 1], resized. Bilinear follows PyTorch's align_corners=False
    /// (half-pixel centres, edge clamped); pad centres the image on background -1.
    static func resample(
        _ px: [UInt8], offset: Int, h: Int, w: Int, into out: UnsafeMutablePointer<Float>, size: Int, mode: Resize
    ) {
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
