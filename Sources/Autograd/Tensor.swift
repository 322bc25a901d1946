import Foundation

/// A float32, contiguous, row-major n-dimensional array that can take part in reverse-mode autodiff.
///
/// Images are NCHW. A tensor is a reference type: the graph, optimizers and parameter tables all
/// refer to the same object, and `grad` accumulates into it until cleared.
///
///     let x = Tensor.randn([2, 1, 8, 8], generator: &rng)
///     let y = try (x * x).sum()
public final class Tensor: @unchecked Sendable {
    /// The elements, shared between tensors that are reshapes of one another.
    public let storage: Storage
    public let shape: [Int]
    /// Set on leaves whose gradient the caller wants (parameters, inputs); outputs of ops inherit it.
    public var requiresGrad: Bool
    /// Accumulated gradient, same shape as the tensor; nil until a backward pass reaches it.
    public var grad: Tensor?
    /// The op that produced this tensor while recording, nil for leaves and no-grad results.
    public internal(set) var creator: Node?

    public var count: Int { storage.count }
    public var rank: Int { shape.count }
    public var data: UnsafeMutablePointer<Float> { storage.pointer }

    public init(storage: Storage, shape: [Int], requiresGrad: Bool = false) {
        self.storage = storage
        self.shape = shape
        self.requiresGrad = requiresGrad
    }

    /// Uninitialised storage; every kernel that uses it writes all elements.
    public convenience init(uninitialized shape: [Int]) {
        self.init(storage: Storage(count: Shape.count(shape)), shape: shape)
    }

    public convenience init(zeros shape: [Int]) {
        let s = Storage(count: Shape.count(shape))
        s.pointer.initialize(repeating: 0, count: s.count)
        self.init(storage: s, shape: shape)
    }

    public convenience init(repeating value: Float, shape: [Int]) {
        let s = Storage(count: Shape.count(shape))
        s.pointer.initialize(repeating: value, count: s.count)
        self.init(storage: s, shape: shape)
    }

    /// Copies `values`; throws when their number differs from the shape's element count.
    public convenience init(_ values: [Float], shape: [Int]) throws {
        guard try values.count == Shape.checkedCount(shape, op: "tensor") else {
            throw TensorError("tensor: \(values.count) values do not fill shape \(shape) (\(Shape.count(shape)) "
                              + "elements)")
        }
        self.init(uninitialized: shape)
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: values.count) }
    }

    public convenience init(_ values: [Float]) {
        self.init(uninitialized: [values.count])
        values.withUnsafeBufferPointer { buf in
            if let base = buf.baseAddress { data.update(from: base, count: values.count) }
        }
    }

    public static func scalar(_ v: Float) -> Tensor { Tensor(repeating: v, shape: []) }

    public static func randn(_ shape: [Int], generator: inout Generator) -> Tensor {
        let t = Tensor(uninitialized: shape)
        generator.fillNormal(t.data, count: t.count)
        return t
    }

    public static func rand(_ shape: [Int], generator: inout Generator) -> Tensor {
        let t = Tensor(uninitialized: shape)
        generator.fillUniform(t.data, count: t.count)
        return t
    }

    /// 0, 1, ..., n-1 as floats.
    public static func arange(_ n: Int) -> Tensor {
        let t = Tensor(uninitialized: [Swift.max(n, 0)])
        for i in 0..<t.count { t.data[i] = Float(i) }
        return t
    }

    /// The elements as a Swift array (a copy).
    public var values: [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }

    /// The single element of a one-element tensor.
    public func item() throws -> Float {
        guard count == 1 else { throw TensorError("item: tensor of shape \(shape) has \(count) elements, expected 1") }
        return data[0]
    }

    /// A deep copy that is not connected to the graph.
    public func copy() -> Tensor {
        let t = Tensor(uninitialized: shape)
        t.data.update(from: data, count: count)
        return t
    }

    /// Same storage, no gradient history.
    public func detached() -> Tensor { Tensor(storage: storage, shape: shape) }

    /// Copies `other`'s elements into this tensor in place (no autodiff); shapes must hold as many elements.
    public func assign(_ other: Tensor) throws {
        guard other.count == count else {
            throw TensorError("assign: shapes \(shape) and \(other.shape) differ in size")
        }
        data.update(from: other.data, count: count)
    }

    public func zeroGrad() { grad = nil }
}

/// Reference-counted aligned float buffer. Kernels get raw pointers to it; it is freed (or
/// returned to the buffer pool) with the last tensor that uses it.
public final class Storage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int

    public init(count: Int) {
        self.count = count
        pointer = BufferPool.allocate(bytes: max(count, 1) * 4).bindMemory(to: Float.self, capacity: max(count, 1))
    }

    deinit { BufferPool.release(UnsafeMutableRawPointer(pointer), bytes: max(count, 1) * 4) }
}

/// Reuses large buffers by exact size. A training step allocates the same shapes every step;
/// without reuse each big temporary is a fresh mmap that the kernel zero-fills page by page and
/// unmaps again. Small buffers go to the system allocator, which already recycles them.
public enum BufferPool {
    static let threshold = 1 << 16
    /// Upper bound on idle cached bytes; buffers released beyond it are freed.
    public static let capacity = 6 << 30
    /// The idle buffers by size, and their total bytes: global because every Storage of the
    /// process allocates from and returns to this one pool; `lock` guards both.
    nonisolated(unsafe) static var free: [Int: [UnsafeMutableRawPointer]] = [:]
    nonisolated(unsafe) static var cached = 0
    static let lock = NSLock()

    static func allocate(bytes: Int) -> UnsafeMutableRawPointer {
        if bytes >= threshold {
            lock.lock()
            let p = free[bytes]?.popLast()
            if p != nil { cached -= bytes }
            lock.unlock()
            if let p { return p }
        }
        // 64-byte alignment suits AVX-512 loads and BLAS packing.
        return UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
    }

    static func release(_ p: UnsafeMutableRawPointer, bytes: Int) {
        if bytes >= threshold {
            lock.lock()
            if cached + bytes <= capacity {
                free[bytes, default: []].append(p)
                cached += bytes
                lock.unlock()
                return
            }
            lock.unlock()
        }
        p.deallocate()
    }
}

/// Shape arithmetic shared by the ops.
public enum Shape {
    public static func count(_ shape: [Int]) -> Int { shape.reduce(1, *) }

    /// Largest tensor a caller may ask for (2^31 elements, 8 GiB): beyond it a request is an
    /// error, not an allocation that fails.
    public static let maxElements = 1 << 31

    /// The element count of a shape coming from a caller: non-negative entries, no overflow,
    /// at most maxElements; otherwise an error naming `op` and the shape.
    public static func checkedCount(_ shape: [Int], op: String) throws -> Int {
        var n = 1
        for d in shape {
            guard d >= 0 else { throw TensorError("\(op): negative size in shape \(describe(shape))") }
            let (p, overflow) = n.multipliedReportingOverflow(by: d)
            guard !overflow, p <= maxElements else {
                throw TensorError("\(op): shape \(describe(shape)) has more than \(maxElements) elements")
            }
            n = p
        }
        return n
    }

    /// Row-major strides: the last dimension has stride 1.
    public static func strides(_ shape: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: shape.count)
        var acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            s[i] = acc
            acc *= shape[i]
        }
        return s
    }

    /// NumPy broadcasting of two shapes, or nil when they are incompatible.
    public static func broadcast(_ a: [Int], _ b: [Int]) -> [Int]? {
        let n = max(a.count, b.count)
        var out = [Int](repeating: 1, count: n)
        for i in 0..<n {
            let da = i < n - a.count ? 1 : a[i - (n - a.count)]
            let db = i < n - b.count ? 1 : b[i - (n - b.count)]
            if da == db || db == 1 { out[i] = da } else if da == 1 { out[i] = db } else { return nil }
        }
        return out
    }

    public static func describe(_ shape: [Int]) -> String {
        "[" + shape.map(String.init).joined(separator: ", ") + "]"
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let shown = values.prefix(8).map { String(format: "%.4g", $0) }.joined(separator: ", ")
        return "Tensor\(Shape.describe(shape))(\(shown)\(count > 8 ? ", ..." : ""))"
    }
}

/// Every error the core throws: a message naming the op and the offending shapes or values.
public struct TensorError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

