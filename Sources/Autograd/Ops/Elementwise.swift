import Foundation

// Broadcasting binary arithmetic, scalar arithmetic and elementwise unary functions.
// Each op: forward kernel, then its backward directly below.

/// A broadcast iteration plan: output shape and the two inputs' strides (0 on broadcast dims),
/// with adjacent dimensions merged where all three are contiguous across them, so the common
/// [N, C, H, W] op [N, C, 1, 1] runs as [N*C, H*W] with one inner loop per row.
struct BroadcastPlan {
    var shape: [Int]
    var strideA: [Int]
    var strideB: [Int]

    init(out: [Int], a: [Int], b: [Int]) {
        func aligned(_ s: [Int]) -> [Int] {
            let full = [Int](repeating: 1, count: out.count - s.count) + s
            let st = Shape.strides(full)
            return (0..<out.count).map { full[$0] == 1 && out[$0] != 1 ? 0 : st[$0] }
        }
        var sh: [Int] = [], sa: [Int] = [], sb: [Int] = []
        let fa = aligned(a), fb = aligned(b)
        for i in 0..<out.count where out[i] != 1 {
            if let last = sh.indices.last,
               sa[last] == fa[i] * out[i], sb[last] == fb[i] * out[i] {
                sh[last] *= out[i]
                sa[last] = fa[i]
                sb[last] = fb[i]
            } else {
                sh.append(out[i]); sa.append(fa[i]); sb.append(fb[i])
            }
        }
        if sh.isEmpty { sh = [1]; sa = [0]; sb = [0] }
        shape = sh; strideA = sa; strideB = sb
    }

    /// Calls `row(outOffset, aOffset, bOffset, n, strideA, strideB)` for every innermost row.
    @inline(__always)
    func forEachRow(_ row: (Int, Int, Int, Int, Int, Int) -> Void) {
        let r = shape.count
        let n = shape[r - 1], ia = strideA[r - 1], ib = strideB[r - 1]
        if r == 1 { row(0, 0, 0, n, ia, ib); return }
        var idx = [Int](repeating: 0, count: r - 1)
        var offA = 0, offB = 0, offO = 0
        let rows = shape.dropLast().reduce(1, *)
        for _ in 0..<rows {
            row(offO, offA, offB, n, ia, ib)
            offO += n
            var d = r - 2
            while d >= 0 {
                idx[d] += 1
                offA += strideA[d]
                offB += strideB[d]
                if idx[d] < shape[d] { break }
                offA -= strideA[d] * shape[d]
                offB -= strideB[d] * shape[d]
                idx[d] = 0
                d -= 1
            }
        }
    }
}

enum BinaryKind: String { case add, sub, mul, div }

@inline(__always)
private func binaryRow(
    _ kind: BinaryKind, _ o: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
    _ n: Int, _ sa: Int, _ sb: Int
) {
    @inline(__always) func run(_ f: (Float, Float) -> Float) {
        if sa == 1 && sb == 1 {
            for i in 0..<n { o[i] = f(a[i], b[i]) }
        } else if sa == 1 && sb == 0 {
            let bv = b[0]
            for i in 0..<n { o[i] = f(a[i], bv) }
        } else if sa == 0 && sb == 1 {
            let av = a[0]
            for i in 0..<n { o[i] = f(av, b[i]) }
        } else {
            for i in 0..<n { o[i] = f(a[i * sa], b[i * sb]) }
        }
    }
    switch kind {
    case .add: run(+)
    case .sub: run(-)
    case .mul: run(*)
    case .div: run(/)
    }
}

/// out = a (op) b with NumPy broadcasting, no recording.
func broadcastBinary(_ kind: BinaryKind, _ a: Tensor, _ b: Tensor) throws -> Tensor {
    guard let shape = Shape.broadcast(a.shape, b.shape) else {
        throw TensorError("\(kind.rawValue): shapes \(Shape.describe(a.shape)) and \(Shape.describe(b.shape)) cannot "
                          + "be broadcast together")
    }
    let out = Tensor(uninitialized: shape)
    if a.shape == b.shape {
        let (o, pa, pb) = (out.data, a.data, b.data)
        Parallel.ranges(out.count) { r in
            binaryRow(kind, o + r.lowerBound, pa + r.lowerBound, pb + r.lowerBound, r.count, 1, 1)
        }
        return out
    }
    let plan = BroadcastPlan(out: shape, a: a.shape, b: b.shape)
    let o = out.data, pa = a.data, pb = b.data
    plan.forEachRow { oo, oa, ob, n, sa, sb in binaryRow(kind, o + oo, pa + oa, pb + ob, n, sa, sb) }
    return out
}

extension Tensor {
    /// Sums `self` (a broadcast result) down to `shape`, the inverse of broadcasting: the
    /// gradient of an input that was broadcast. Returns self when the shapes already agree.
    public func sumTo(_ target: [Int]) -> Tensor {
        if target == shape { return self }
        let out = Tensor(zeros: target)
        let plan = BroadcastPlan(out: shape, a: target, b: shape)
        let o = out.data, g = data
        plan.forEachRow { _, oa, og, n, sa, sg in
            if sa == 0 {
                var acc: Float = 0
                for i in 0..<n { acc += g[og + i * sg] }
                o[oa] += acc
            } else {
                for i in 0..<n { o[oa + i * sa] += g[og + i * sg] }
            }
        }
        return out
    }

    /// Elementwise self + other for equal shapes, not recorded (gradient accumulation).
    func adding(_ other: Tensor) throws -> Tensor { try broadcastBinary(.add, self, other) }

    // a + b; da = g, db = g (each summed back to its shape)
    public static func + (a: Tensor, b: Tensor) throws -> Tensor {
        try broadcastBinary(.add, a, b).recorded(.add, [a, b]) { g in
            [a.requiresGrad ? g.sumTo(a.shape) : nil, b.requiresGrad ? g.sumTo(b.shape) : nil]
        }
    }

    // a - b; da = g, db = -g
    public static func - (a: Tensor, b: Tensor) throws -> Tensor {
        try broadcastBinary(.sub, a, b).recorded(.sub, [a, b]) { g in
            [a.requiresGrad ? g.sumTo(a.shape) : nil, b.requiresGrad ? g.sumTo(b.shape).scaled(-1) : nil]
        }
    }

    // a * b; da = g b, db = g a
    public static func * (a: Tensor, b: Tensor) throws -> Tensor {
        let (sa, sb) = (a.detached(), b.detached())
        return try broadcastBinary(.mul, a, b).recorded(.mul, [a, b]) { g in
            [a.requiresGrad ? try broadcastBinary(.mul, g, sb).sumTo(a.shape) : nil,
             b.requiresGrad ? try broadcastBinary(.mul, g, sa).sumTo(b.shape) : nil]
        }
    }

    // a / b; da = g / b, db = -g a / b^2
    public static func / (a: Tensor, b: Tensor) throws -> Tensor {
        let (sa, sb) = (a.detached(), b.detached())
        return try broadcastBinary(.div, a, b).recorded(.div, [a, b]) { g in
            let ga = try broadcastBinary(.div, g, sb)
            return [a.requiresGrad ? ga.sumTo(a.shape) : nil,
                    b.requiresGrad
                        ? try broadcastBinary(.div, broadcastBinary(.mul, ga, sa), sb).scaled(-1).sumTo(b.shape) : nil]
        }
    }

    public static func + (a: Tensor, s: Float) -> Tensor { a.affine(scale: 1, shift: s) }
    public static func + (s: Float, a: Tensor) -> Tensor { a.affine(scale: 1, shift: s) }
    public static func - (a: Tensor, s: Float) -> Tensor { a.affine(scale: 1, shift: -s) }
    public static func - (s: Float, a: Tensor) -> Tensor { a.affine(scale: -1, shift: s) }
    public static func * (a: Tensor, s: Float) -> Tensor { a.affine(scale: s, shift: 0) }
    public static func * (s: Float, a: Tensor) -> Tensor { a.affine(scale: s, shift: 0) }
    public static func / (a: Tensor, s: Float) -> Tensor { a.affine(scale: 1 / s, shift: 0) }
    public static func / (s: Float, a: Tensor) -> Tensor { a.pow(-1).affine(scale: s, shift: 0) }
    public static prefix func - (a: Tensor) -> Tensor { a.affine(scale: -1, shift: 0) }

    /// self * s, not recorded.
    func scaled(_ s: Float) -> Tensor {
        let out = Tensor(uninitialized: shape)
        let (x, y) = (data, out.data)
        Parallel.ranges(count) { r in for i in r { y[i] = x[i] * s } }
        return out
    }

    // y = scale * x + shift; dx = scale * g
    public func affine(scale: Float, shift: Float) -> Tensor {
        let out = Tensor(uninitialized: shape)
        let x = data, y = out.data
        Parallel.ranges(count) { r in for i in r { y[i] = scale * x[i] + shift } }
        return out.recorded(.affine, [self]) { g in [g.scaled(scale)] }
    }

    /// Applies `f` elementwise and records `df(x, y)` as the local derivative.
    @inline(__always)
    func unary(_ op: Op, _ f: (Float) -> Float, derivative: @escaping (Float, Float) -> Float) -> Tensor {
        let out = Tensor(uninitialized: shape)
        let x = data, y = out.data
        for i in 0..<count { y[i] = f(x[i]) }
        let (sx, sy) = (detached(), out.detached())
        return out.recorded(op, [self]) { g in
            let gx = Tensor(uninitialized: sx.shape)
            for i in 0..<gx.count { gx.data[i] = g.data[i] * derivative(sx.data[i], sy.data[i]) }
            return [gx]
        }
    }

    // y = |x|; dy/dx = sign(x) (0 at 0, as PyTorch)
    public func abs() -> Tensor { unary(.abs, Swift.abs) { x, _ in x > 0 ? 1 : (x < 0 ? -1 : 0) } }
    // y = sqrt(x); dy/dx = 1 / (2 y)
    public func sqrt() -> Tensor { unary(.sqrt, { $0.squareRoot() }) { _, y in 0.5 / y } }
    // y = e^x; dy/dx = y
    public func exp() -> Tensor { unary(.exp, Foundation.exp) { _, y in y } }
    // y = ln x; dy/dx = 1/x
    public func log() -> Tensor { unary(.log, Foundation.log) { x, _ in 1 / x } }
    // y = x^2; dy/dx = 2x
    public func square() -> Tensor { unary(.square, { $0 * $0 }) { x, _ in 2 * x } }
    // y = sin x; dy/dx = cos x
    public func sin() -> Tensor { unary(.sin, Foundation.sin) { x, _ in Foundation.cos(x) } }
    // y = cos x; dy/dx = -sin x
    public func cos() -> Tensor { unary(.cos, Foundation.cos) { x, _ in -Foundation.sin(x) } }
    // y = x^p; dy/dx = p x^(p-1)
    public func pow(_ p: Float) -> Tensor {
        unary(.pow, { Foundation.pow($0, p) }) { x, _ in p * Foundation.pow(x, p - 1) }
    }
    // y = min(max(x, lo), hi); dy/dx = 1 inside [lo, hi], else 0
    public func clamp(_ lo: Float, _ hi: Float) -> Tensor {
        unary(.clamp, { Swift.min(Swift.max($0, lo), hi) }) { x, _ in x >= lo && x <= hi ? 1 : 0 }
    }
    // y = max(x, 0); dy/dx = 1 for x > 0, else 0 (0 at 0, as PyTorch)
    public func relu() -> Tensor { unary(.relu, { Swift.max($0, 0) }) { x, _ in x > 0 ? 1 : 0 } }
    // y = x sigmoid(x); dy/dx = s (1 + x (1 - s)), s = sigmoid(x)
    public func silu() -> Tensor {
        let out = Tensor(uninitialized: shape)
        let x = data, y = out.data
        Parallel.ranges(count) { r in
            forEachVector(r) { i in
                let v = load16(x + i)
                store16(y + i, v / (1 + exp16(-v)))
            } tail: { i in y[i] = x[i] / (1 + Foundation.exp(-x[i])) }
        }
        let sx = detached()
        return out.recorded(.silu, [self]) { g in
            let gx = Tensor(uninitialized: sx.shape)
            let x = sx.data, gd = g.data, o = gx.data
            Parallel.ranges(gx.count) { r in
                forEachVector(r) { i in
                    let v = load16(x + i)
                    let s = 1 / (1 + exp16(-v))
                    store16(o + i, load16(gd + i) * s * (1 + v * (1 - s)))
                } tail: { i in
                    let s = 1 / (1 + Foundation.exp(-x[i]))
                    o[i] = gd[i] * s * (1 + x[i] * (1 - s))
                }
            }
            return [gx]
        }
    }
    // y = x Phi(x) = x/2 (1 + erf(x/sqrt2)); dy/dx = Phi(x) + x phi(x)
    public func gelu() -> Tensor {
        unary(.gelu, { 0.5 * $0 * (1 + erf($0 * 0.70710678118654752)) }) { x, _ in
            let cdf = 0.5 * (1 + erf(x * 0.70710678118654752))
            let pdf = Foundation.exp(-0.5 * x * x) * 0.39894228040143268
            return cdf + x * pdf
        }
    }
}
