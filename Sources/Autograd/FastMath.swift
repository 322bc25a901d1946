import Foundation

/// Vectorised kernels for the hot elementwise work: exp (for softmax) and the row softmax
/// forward/backward. Each has a scalar reference beside it in the tests.
public typealias Vec = SIMD16<Float>

/// e^x for 16 lanes: x = k ln2 + r, |r| <= ln2/2, e^r by Cephes' degree-6 polynomial
/// (relative error ~2e-7), times 2^k built in the exponent bits. Inputs below -87 give 0.
@_transparent
public func exp16(_ x: Vec) -> Vec {
    // Only lane-wise arithmetic and bit casts: Swift's generic SIMD conversions and rounding
    // are scalarised, so the rounding uses the 1.5 * 2^23 trick and the exponent is built from
    // the integer bits of that sum.
    let lo = Vec(repeating: -87.3), hi = Vec(repeating: 88.3)
    let xc = x.replacing(with: lo, where: x .< lo).replacing(with: hi, where: x .> hi)
    let magic = Vec(repeating: 12_582_912)  // 1.5 * 2^23: adding it rounds to an integer
    // Fused multiply-adds throughout (Swift does not contract `p * r + c`): half the
    // instructions and half the dependency chain of separate multiplies and adds.
    let t = magic.addingProduct(xc, Vec(repeating: 1.44269504088896341))
    let k = t - magic
    let r = xc.addingProduct(k, Vec(repeating: -0.693359375)).addingProduct(k, Vec(repeating: 2.12194440e-4))
    var p = Vec(repeating: 1.9875691500e-4)
    p = Vec(repeating: 1.3981999507e-3).addingProduct(p, r)
    p = Vec(repeating: 8.3334519073e-3).addingProduct(p, r)
    p = Vec(repeating: 4.1665795894e-2).addingProduct(p, r)
    p = Vec(repeating: 1.6666665459e-1).addingProduct(p, r)
    p = Vec(repeating: 5.0000001201e-1).addingProduct(p, r)
    let er = (r + 1).addingProduct(p, r * r)
    // the low mantissa bits of t hold k (+ 0x400000); shift them into the exponent field
    let ki = unsafeBitCast(t, to: SIMD16<Int32>.self) &- 0x4B40_0000
    let scale = unsafeBitCast((ki &+ 127) &<< 23, to: Vec.self)
    return er * scale
}

/// Softmax of one row of n floats in place (max subtracted). Scalar tail beyond multiples of 16.
/// Returns the row's log-sum-exp, max + log(sum of exp(x - max)).
@inline(__always) @discardableResult
public func softmaxRow(_ p: UnsafeMutablePointer<Float>, _ n: Int) -> Float {
    let n16 = n & ~15
    // four running maxima: one would wait on its own previous compare every vector
    var m0 = Vec(repeating: -.infinity), m1 = m0, m2 = m0, m3 = m0
    var i = 0
    while i + 64 <= n16 {
        let v0 = UnsafeRawPointer(p + i).loadUnaligned(as: Vec.self)
        let v1 = UnsafeRawPointer(p + i + 16).loadUnaligned(as: Vec.self)
        let v2 = UnsafeRawPointer(p + i + 32).loadUnaligned(as: Vec.self)
        let v3 = UnsafeRawPointer(p + i + 48).loadUnaligned(as: Vec.self)
        // pointwiseMax and .max() are scalarised
        m0 = m0.replacing(with: v0, where: v0 .> m0); m1 = m1.replacing(with: v1, where: v1 .> m1)
        m2 = m2.replacing(with: v2, where: v2 .> m2); m3 = m3.replacing(with: v3, where: v3 .> m3)
        i += 64
    }
    while i < n16 {
        let v = UnsafeRawPointer(p + i).loadUnaligned(as: Vec.self)
        m0 = m0.replacing(with: v, where: v .> m0)
        i += 16
    }
    m0 = m0.replacing(with: m1, where: m1 .> m0)
    m2 = m2.replacing(with: m3, where: m3 .> m2)
    let mv = m0.replacing(with: m2, where: m2 .> m0)
    var mx = -Float.infinity
    for l in 0..<16 where mv[l] > mx { mx = mv[l] }
    while i < n { mx = max(mx, p[i]); i += 1 }
    var sv = Vec(repeating: 0)
    let mvb = Vec(repeating: mx)
    i = 0
    while i < n16 {
        let e = exp16(UnsafeRawPointer(p + i).loadUnaligned(as: Vec.self) - mvb)
        UnsafeMutableRawPointer(p + i).storeBytes(of: e, as: Vec.self)
        sv += e
        i += 16
    }
    var s = sv.sum()
    while i < n {
        var t = Vec(repeating: -.infinity)
        t[0] = p[i] - mx
        let e = exp16(t)[0]
        p[i] = e
        s += e
        i += 1
    }
    let inv = 1 / s
    let invv = Vec(repeating: inv)
    i = 0
    while i < n16 {
        let v = UnsafeRawPointer(p + i).loadUnaligned(as: Vec.self)
        UnsafeMutableRawPointer(p + i).storeBytes(of: v * invv, as: Vec.self)
        i += 16
    }
    while i < n { p[i] *= inv; i += 1 }
    return mx + logf(s)
}

/// Given y = softmax(x) and dy for one row, writes dx = y * (dy - sum(dy * y)) over dy.
@inline(__always)
public func softmaxRowBackward(_ g: UnsafeMutablePointer<Float>, _ y: UnsafePointer<Float>, _ n: Int) {
    let n16 = n & ~15
    var dv = Vec(repeating: 0)
    var i = 0
    while i < n16 {
        dv += UnsafeRawPointer(g + i).loadUnaligned(as: Vec.self) * UnsafeRawPointer(y + i).loadUnaligned(as: Vec.self)
        i += 16
    }
    var dot = dv.sum()
    while i < n { dot += g[i] * y[i]; i += 1 }
    let d = Vec(repeating: dot)
    i = 0
    while i < n16 {
        let gv = UnsafeRawPointer(g + i).loadUnaligned(as: Vec.self)
        let yv = UnsafeRawPointer(y + i).loadUnaligned(as: Vec.self)
        UnsafeMutableRawPointer(g + i).storeBytes(of: yv * (gv - d), as: Vec.self)
        i += 16
    }
    while i < n { g[i] = y[i] * (g[i] - dot); i += 1 }
}

@inline(__always) public func load16(_ p: UnsafePointer<Float>) -> Vec {
    UnsafeRawPointer(p).loadUnaligned(as: Vec.self)
}
@inline(__always) public func load16(_ p: UnsafeMutablePointer<Float>) -> Vec {
    UnsafeRawPointer(p).loadUnaligned(as: Vec.self)
}
@inline(__always) public func store16(_ p: UnsafeMutablePointer<Float>, _ v: Vec) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vec.self)
}

/// Runs `vector(i)` for i = start, start+16, ... while 16 elements remain, then `tail(i)` for the rest.
@inline(__always)
public func forEachVector(_ r: Range<Int>, _ vector: (Int) -> Void, tail: (Int) -> Void) {
    var i = r.lowerBound
    while i + 16 <= r.upperBound { vector(i); i += 16 }
    while i < r.upperBound { tail(i); i += 1 }
}
