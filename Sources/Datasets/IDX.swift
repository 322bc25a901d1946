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
