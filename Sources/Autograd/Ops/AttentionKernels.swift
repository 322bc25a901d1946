// Fused attention for one (batch, head): register-blocked SIMD micro-kernels that process 8
// queries at a time, so their scores live in L1 and the full score matrix is never written:
// the forward takes all keys per 8 queries and keeps each query's log-sum-exp; the backward
// takes blocks of 32 keys, each against all queries. Used when head_dim is 16, 32, 48 or 64 and
// the token count is a multiple of 16; the sgemm path in Attention.swift is the reference beside it.

/// Whether the fused kernels handle this shape.
func fusedAttentionApplies(dim: Int, tokens: Int) -> Bool {
    dim % 16 == 0 && dim >= 16 && dim <= 64 && tokens % 16 == 0 && tokens >= 16
}

/// *p = a * scale, or *p += a * scale.
@_transparent
func put(_ p: UnsafeMutablePointer<Float>, _ a: Vec, _ scale: Vec, _ accumulate: Bool) {
    store16(p, accumulate ? load16(p).addingProduct(a, scale) : a * scale)
}

/// Out[r, :] (+)= scale * sum_c X[r, c] * B[c, :] for 8 rows of X (row stride ldx) and all m
/// columns of B (k x m, row stride ldb, m % 16 == 0); Out has row stride ldo. The scores
/// (X = queries, B = keys) and the value mix (X = probabilities, B = values) are both this.
/// Eight rows x 32 columns per pass (16 accumulators), so each load of B feeds 8 FMAs.
@_transparent
func eightRowProduct(_ out: UnsafeMutablePointer<Float>, ldo: Int, _ x: UnsafePointer<Float>, ldx: Int,
                     _ b: UnsafePointer<Float>, ldb: Int, k: Int, m: Int, scale: Float, accumulate: Bool = false) {
    let sv = Vec(repeating: scale)
    var j = 0
    while j + 32 <= m {
        var a00 = Vec(), a01 = Vec(), a10 = Vec(), a11 = Vec()
        var a20 = Vec(), a21 = Vec(), a30 = Vec(), a31 = Vec()
        var a40 = Vec(), a41 = Vec(), a50 = Vec(), a51 = Vec()
        var a60 = Vec(), a61 = Vec(), a70 = Vec(), a71 = Vec()
        for c in 0..<k {
            let row = b + c * ldb + j
            let b0 = load16(row), b1 = load16(row + 16)
            var t = Vec(repeating: x[c]); a00 = a00.addingProduct(t, b0); a01 = a01.addingProduct(t, b1)
            t = Vec(repeating: x[ldx + c]); a10 = a10.addingProduct(t, b0); a11 = a11.addingProduct(t, b1)
            t = Vec(repeating: x[2 * ldx + c]); a20 = a20.addingProduct(t, b0); a21 = a21.addingProduct(t, b1)
            t = Vec(repeating: x[3 * ldx + c]); a30 = a30.addingProduct(t, b0); a31 = a31.addingProduct(t, b1)
            t = Vec(repeating: x[4 * ldx + c]); a40 = a40.addingProduct(t, b0); a41 = a41.addingProduct(t, b1)
            t = Vec(repeating: x[5 * ldx + c]); a50 = a50.addingProduct(t, b0); a51 = a51.addingProduct(t, b1)
            t = Vec(repeating: x[6 * ldx + c]); a60 = a60.addingProduct(t, b0); a61 = a61.addingProduct(t, b1)
            t = Vec(repeating: x[7 * ldx + c]); a70 = a70.addingProduct(t, b0); a71 = a71.addingProduct(t, b1)
        }
        put(out + j, a00, sv, accumulate); put(out + j + 16, a01, sv, accumulate)
        put(out + ldo + j, a10, sv, accumulate); put(out + ldo + j + 16, a11, sv, accumulate)
        put(out + 2 * ldo + j, a20, sv, accumulate); put(out + 2 * ldo + j + 16, a21, sv, accumulate)
        put(out + 3 * ldo + j, a30, sv, accumulate); put(out + 3 * ldo + j + 16, a31, sv, accumulate)
        put(out + 4 * ldo + j, a40, sv, accumulate); put(out + 4 * ldo + j + 16, a41, sv, accumulate)
        put(out + 5 * ldo + j, a50, sv, accumulate); put(out + 5 * ldo + j + 16, a51, sv, accumulate)
        put(out + 6 * ldo + j, a60, sv, accumulate); put(out + 6 * ldo + j + 16, a61, sv, accumulate)
        put(out + 7 * ldo + j, a70, sv, accumulate); put(out + 7 * ldo + j + 16, a71, sv, accumulate)
        j += 32
    }
    if j < m {  // the last 16 columns
        var a0 = Vec(), a1 = Vec(), a2 = Vec(), a3 = Vec(), a4 = Vec(), a5 = Vec(), a6 = Vec(), a7 = Vec()
        for c in 0..<k {
            let b0 = load16(b + c * ldb + j)
            a0 = a0.addingProduct(Vec(repeating: x[c]), b0)
            a1 = a1.addingProduct(Vec(repeating: x[ldx + c]), b0)
            a2 = a2.addingProduct(Vec(repeating: x[2 * ldx + c]), b0)
            a3 = a3.addingProduct(Vec(repeating: x[3 * ldx + c]), b0)
            a4 = a4.addingProduct(Vec(repeating: x[4 * ldx + c]), b0)
            a5 = a5.addingProduct(Vec(repeating: x[5 * ldx + c]), b0)
            a6 = a6.addingProduct(Vec(repeating: x[6 * ldx + c]), b0)
            a7 = a7.addingProduct(Vec(repeating: x[7 * ldx + c]), b0)
        }
        put(out + j, a0, sv, accumulate); put(out + ldo + j, a1, sv, accumulate)
        put(out + 2 * ldo + j, a2, sv, accumulate); put(out + 3 * ldo + j, a3, sv, accumulate)
        put(out + 4 * ldo + j, a4, sv, accumulate); put(out + 5 * ldo + j, a5, sv, accumulate)
        put(out + 6 * ldo + j, a6, sv, accumulate); put(out + 7 * ldo + j, a7, sv, accumulate)
    }
}

/// D[j, :] += sum_r G[r, j] * X[r, :] for all n rows of D (n x d): a rank-8 update from 8 rows
/// of G (8 x n, row stride n) and X (8 x d). Eight rows per pass halve the read-modify-write
/// traffic on D compared with four, which is what bounds the attention backward; 32 columns per
/// pass (16 vectors of X in registers) reuse each broadcast of G twice. Each of the two output
/// vectors is one chain of eight FMAs from its loaded value (rows j are independent, so the core
/// overlaps their chains): no separate multiplies and adds.
@inline(__always)
func rank8Kernel(_ dst: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                 d: Int, n: Int) {
    var c = 0
    while c + 32 <= d {
        let x0 = load16(x + c), x1 = load16(x + d + c), x2 = load16(x + 2 * d + c), x3 = load16(x + 3 * d + c)
        let x4 = load16(x + 4 * d + c), x5 = load16(x + 5 * d + c)
        let x6 = load16(x + 6 * d + c), x7 = load16(x + 7 * d + c)
        let y0 = load16(x + c + 16), y1 = load16(x + d + c + 16)
        let y2 = load16(x + 2 * d + c + 16), y3 = load16(x + 3 * d + c + 16)
        let y4 = load16(x + 4 * d + c + 16), y5 = load16(x + 5 * d + c + 16)
        let y6 = load16(x + 6 * d + c + 16), y7 = load16(x + 7 * d + c + 16)
        for j in 0..<n {
            let o = dst + j * d + c
            let g0 = Vec(repeating: g[j]), g1 = Vec(repeating: g[n + j])
            let g2 = Vec(repeating: g[2 * n + j]), g3 = Vec(repeating: g[3 * n + j])
            let g4 = Vec(repeating: g[4 * n + j]), g5 = Vec(repeating: g[5 * n + j])
            let g6 = Vec(repeating: g[6 * n + j]), g7 = Vec(repeating: g[7 * n + j])
            store16(o, load16(o).addingProduct(g0, x0).addingProduct(g1, x1).addingProduct(g2, x2).addingProduct(g3, x3)
                .addingProduct(g4, x4).addingProduct(g5, x5).addingProduct(g6, x6).addingProduct(g7, x7))
            store16(o + 16, load16(o + 16).addingProduct(g0, y0).addingProduct(g1, y1).addingProduct(g2, y2)
                .addingProduct(g3, y3).addingProduct(g4, y4).addingProduct(g5, y5).addingProduct(g6, y6)
                .addingProduct(g7, y7))
        }
        c += 32
    }
    if c < d {  // the last 16 columns
        let x0 = load16(x + c), x1 = load16(x + d + c), x2 = load16(x + 2 * d + c), x3 = load16(x + 3 * d + c)
        let x4 = load16(x + 4 * d + c), x5 = load16(x + 5 * d + c)
        let x6 = load16(x + 6 * d + c), x7 = load16(x + 7 * d + c)
        for j in 0..<n {
            let o = dst + j * d + c
            let t = (Vec(repeating: g[j]) * x0).addingProduct(Vec(repeating: g[n + j]), x1)
                .addingProduct(Vec(repeating: g[2 * n + j]), x2).addingProduct(Vec(repeating: g[3 * n + j]), x3)
            let u = (Vec(repeating: g[4 * n + j]) * x4).addingProduct(Vec(repeating: g[5 * n + j]), x5)
                .addingProduct(Vec(repeating: g[6 * n + j]), x6).addingProduct(Vec(repeating: g[7 * n + j]), x7)
            store16(o, load16(o) + (t + u))
        }
    }
}

/// dst (cols x rows, row stride ldd) = transpose of src (rows x cols, row stride lds), times scale:
/// in 16 x 16 blocks through registers where both sides are multiples of 16 (always, in the fused
/// kernels), else one element at a time (transposeElements, also the blocks' reference). Each
/// element is multiplied by scale either way, so the same bits.
@inline(__always)
func transpose(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, rows: Int, cols: Int, lds: Int,
               ldd: Int? = nil, scale: Float = 1) {
    let ldd = ldd ?? rows
    guard rows % 16 == 0, cols % 16 == 0 else {
        transposeElements(dst, src, rows: rows, cols: cols, lds: lds, ldd: ldd, scale: scale)
        return
    }
    for r in stride(from: 0, to: rows, by: 16) {
        for c in stride(from: 0, to: cols, by: 16) {
            transpose16x16(dst + c * ldd + r, ldd, src + r * lds + c, lds, scale)
        }
    }
}

/// transpose one element at a time (the reference for the blocked one).
func transposeElements(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, rows: Int, cols: Int,
                       lds: Int, ldd: Int, scale: Float) {
    for r in 0..<rows {
        let s = src + r * lds
        for c in 0..<cols { dst[c * ldd + r] = s[c] * scale }
    }
}

/// Lane j of a where bit s of j is clear, else lane j - s of b: with swapHigh, the exchange of
/// the off-diagonal s x s blocks of a pair of rows s apart (one two-source permute each).
@_transparent
private func swapLow(_ a: Vec, _ b: Vec, _ s: Int) -> Vec {
    @_transparent func p(_ j: Int) -> Float { j & s == 0 ? a[j] : b[j - s] }
    return Vec(p(0), p(1), p(2), p(3), p(4), p(5), p(6), p(7), p(8), p(9), p(10), p(11), p(12), p(13), p(14), p(15))
}

@_transparent
private func swapHigh(_ a: Vec, _ b: Vec, _ s: Int) -> Vec {
    @_transparent func p(_ j: Int) -> Float { j & s == 0 ? a[j + s] : b[j] }
    return Vec(p(0), p(1), p(2), p(3), p(4), p(5), p(6), p(7), p(8), p(9), p(10), p(11), p(12), p(13), p(14), p(15))
}

/// One 16 x 16 block: 16 row loads, four rounds of block exchanges (8 x 8, 4 x 4, 2 x 2, 1 x 1:
/// each swaps one bit of the row index with the same bit of the column index), 16 row stores.
/// Written out so every vector stays in a register.
@inline(__always)
private func transpose16x16(_ dst: UnsafeMutablePointer<Float>, _ ldd: Int, _ src: UnsafePointer<Float>, _ lds: Int,
                            _ scale: Float) {
    let a0 = load16(src), a1 = load16(src + 1 * lds), a2 = load16(src + 2 * lds), a3 = load16(src + 3 * lds)
    let a4 = load16(src + 4 * lds), a5 = load16(src + 5 * lds), a6 = load16(src + 6 * lds), a7 = load16(src + 7 * lds)
    let a8 = load16(src + 8 * lds), a9 = load16(src + 9 * lds)
    let a10 = load16(src + 10 * lds), a11 = load16(src + 11 * lds)
    let a12 = load16(src + 12 * lds), a13 = load16(src + 13 * lds)
    let a14 = load16(src + 14 * lds), a15 = load16(src + 15 * lds)
    let b0 = swapLow(a0, a8, 8), b8 = swapHigh(a0, a8, 8), b1 = swapLow(a1, a9, 8), b9 = swapHigh(a1, a9, 8)
    let b2 = swapLow(a2, a10, 8), b10 = swapHigh(a2, a10, 8), b3 = swapLow(a3, a11, 8), b11 = swapHigh(a3, a11, 8)
    let b4 = swapLow(a4, a12, 8), b12 = swapHigh(a4, a12, 8), b5 = swapLow(a5, a13, 8), b13 = swapHigh(a5, a13, 8)
    let b6 = swapLow(a6, a14, 8), b14 = swapHigh(a6, a14, 8), b7 = swapLow(a7, a15, 8), b15 = swapHigh(a7, a15, 8)
    let c0 = swapLow(b0, b4, 4), c4 = swapHigh(b0, b4, 4), c1 = swapLow(b1, b5, 4), c5 = swapHigh(b1, b5, 4)
    let c2 = swapLow(b2, b6, 4), c6 = swapHigh(b2, b6, 4), c3 = swapLow(b3, b7, 4), c7 = swapHigh(b3, b7, 4)
    let c8 = swapLow(b8, b12, 4), c12 = swapHigh(b8, b12, 4), c9 = swapLow(b9, b13, 4), c13 = swapHigh(b9, b13, 4)
    let c10 = swapLow(b10, b14, 4), c14 = swapHigh(b10, b14, 4), c11 = swapLow(b11, b15, 4), c15 = swapHigh(b11, b15, 4)
    let d0 = swapLow(c0, c2, 2), d2 = swapHigh(c0, c2, 2), d1 = swapLow(c1, c3, 2), d3 = swapHigh(c1, c3, 2)
    let d4 = swapLow(c4, c6, 2), d6 = swapHigh(c4, c6, 2), d5 = swapLow(c5, c7, 2), d7 = swapHigh(c5, c7, 2)
    let d8 = swapLow(c8, c10, 2), d10 = swapHigh(c8, c10, 2), d9 = swapLow(c9, c11, 2), d11 = swapHigh(c9, c11, 2)
    let d12 = swapLow(c12, c14, 2), d14 = swapHigh(c12, c14, 2), d13 = swapLow(c13, c15, 2), d15 = swapHigh(c13, c15, 2)
    let e0 = swapLow(d0, d1, 1), e1 = swapHigh(d0, d1, 1), e2 = swapLow(d2, d3, 1), e3 = swapHigh(d2, d3, 1)
    let e4 = swapLow(d4, d5, 1), e5 = swapHigh(d4, d5, 1), e6 = swapLow(d6, d7, 1), e7 = swapHigh(d6, d7, 1)
    let e8 = swapLow(d8, d9, 1), e9 = swapHigh(d8, d9, 1), e10 = swapLow(d10, d11, 1), e11 = swapHigh(d10, d11, 1)
    let e12 = swapLow(d12, d13, 1), e13 = swapHigh(d12, d13, 1), e14 = swapLow(d14, d15, 1), e15 = swapHigh(d14, d15, 1)
    let sv = Vec(repeating: scale)
    store16(dst + 0 * ldd, e0 * sv); store16(dst + 1 * ldd, e1 * sv)
    store16(dst + 2 * ldd, e2 * sv); store16(dst + 3 * ldd, e3 * sv)
    store16(dst + 4 * ldd, e4 * sv); store16(dst + 5 * ldd, e5 * sv)
    store16(dst + 6 * ldd, e6 * sv); store16(dst + 7 * ldd, e7 * sv)
    store16(dst + 8 * ldd, e8 * sv); store16(dst + 9 * ldd, e9 * sv)
    store16(dst + 10 * ldd, e10 * sv); store16(dst + 11 * ldd, e11 * sv)
    store16(dst + 12 * ldd, e12 * sv); store16(dst + 13 * ldd, e13 * sv)
    store16(dst + 14 * ldd, e14 * sv); store16(dst + 15 * ldd, e15 * sv)
}

/// Keys per block in the backward pass: the block's keys, values and their gradient
/// accumulators (4 x keyBlock x d floats) stay in L1 while every query passes over them.
let attentionKeyBlock = 32

/// Scratch for one worker: transposed (n x d) blocks, one key block's packed keys and values
/// and their gradients, 8-query strips of scores (8 x n forward, 8 x keyBlock backward) and their
/// gradients, and the per-query delta. One pooled tensor, returned to the pool with the scratch
/// (a fresh mmap per call would page-fault every time).
struct AttentionScratch {
    let qt, kt, vt, ot, dq: UnsafeMutablePointer<Float>      // each n x d
    let kb, vb, dkb, dvb: UnsafeMutablePointer<Float>        // each keyBlock x d
    let s, ds: UnsafeMutablePointer<Float>                   // 8 x n, 8 x keyBlock
    let delta: UnsafeMutablePointer<Float>                   // n
    private let buffer: Tensor

    init(n: Int, d: Int) {
        let block = attentionKeyBlock
        let counts = [n * d, n * d, n * d, n * d, n * d, block * d, block * d, block * d, block * d, 8 * n, 8 * block,
                      n]
        buffer = Tensor(uninitialized: [counts.reduce(0, +)])
        var parts: [UnsafeMutablePointer<Float>] = []
        var offset = 0
        for c in counts { parts.append(buffer.data + offset); offset += c }
        (qt, kt, vt, ot, dq) = (parts[0], parts[1], parts[2], parts[3], parts[4])
        (kb, vb, dkb, dvb) = (parts[5], parts[6], parts[7], parts[8])
        (s, ds, delta) = (parts[9], parts[10], parts[11])
    }
}

/// o (d x n) = attention of one head: q, k, v are (d x n) blocks with row stride n. lse[i] gets
/// query i's log-sum-exp of its scores, which the backward pass uses to recompute the
/// probabilities in one pass.
func fusedAttentionForward(_ o: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>,
                           k: UnsafePointer<Float>, v: UnsafePointer<Float>, d: Int, n: Int, scale: Float,
                           scratch w: AttentionScratch) {
    transpose(w.qt, q, rows: d, cols: n, lds: n, scale: scale)
    transpose(w.vt, v, rows: d, cols: n, lds: n)
    for i0 in stride(from: 0, to: n, by: 8) {
        eightRowProduct(w.s, ldo: n, w.qt + i0 * d, ldx: d, k, ldb: n, k: d, m: n, scale: 1)           // S = Qs^T K
        for r in 0..<8 { lse[i0 + r] = softmaxRow(w.s + r * n, n) }
        eightRowProduct(w.ot + i0 * d, ldo: d, w.s, ldx: n, w.vt, ldb: d, k: n, m: d, scale: 1)  // O^T = P V^T
    }
    transpose(o, w.ot, rows: n, cols: d, lds: d)
}

/// Gradients of one head, FlashAttention-2's loop order: key blocks outside, queries inside, so
/// a block's dK and dV accumulate in L1 and only dQ is read and written per block. P is
/// recomputed from the forward's log-sum-exp in one pass, and dS = P (dP - delta) with
/// delta_i = dO_i . O_i (= sum_j dP_ij P_ij), so no pass needs a whole row of scores.
/// go: dO, o: the forward's output (d x n, row stride n); gq, gk, gv: outputs (d x n, stride n).
func fusedAttentionBackward(gq: UnsafeMutablePointer<Float>, gk: UnsafeMutablePointer<Float>,
                            gv: UnsafeMutablePointer<Float>, go: UnsafePointer<Float>, o: UnsafePointer<Float>,
                            lse: UnsafePointer<Float>,
                            q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                            d: Int, n: Int, scale: Float, scratch w: AttentionScratch) {
    transpose(w.qt, q, rows: d, cols: n, lds: n, scale: scale)   // Qs^T, Qs = scale Q
    transpose(w.kt, k, rows: d, cols: n, lds: n)
    transpose(w.ot, go, rows: d, cols: n, lds: n)                 // dO^T
    w.dq.update(repeating: 0, count: n * d)
    // delta_i = sum_c dO[c, i] O[c, i]
    for i in stride(from: 0, to: n, by: 16) {
        var acc = Vec()
        for c in 0..<d { acc = acc.addingProduct(load16(go + c * n + i), load16(o + c * n + i)) }
        store16(w.delta + i, acc)
    }
    for j0 in stride(from: 0, to: n, by: attentionKeyBlock) {
        let m = Swift.min(attentionKeyBlock, n - j0)   // a multiple of 16
        // the block's keys and values packed (d x m), so its rows are not 4 KB apart
        for c in 0..<d {
            (w.kb + c * m).update(from: k + c * n + j0, count: m)
            (w.vb + c * m).update(from: v + c * n + j0, count: m)
        }
        w.dkb.update(repeating: 0, count: m * d)
        w.dvb.update(repeating: 0, count: m * d)
        for i0 in stride(from: 0, to: n, by: 8) {
            eightRowProduct(w.s, ldo: m, w.qt + i0 * d, ldx: d, w.kb, ldb: m, k: d, m: m, scale: 1)   // S = Qs^T K
            eightRowProduct(w.ds, ldo: m, w.ot + i0 * d, ldx: d, w.vb, ldb: m, k: d, m: m, scale: 1)  // dP = dO^T V
            for r in 0..<8 {
                let l = Vec(repeating: lse[i0 + r]), dl = Vec(repeating: w.delta[i0 + r])
                let sr = w.s + r * m, dsr = w.ds + r * m
                for j in stride(from: 0, to: m, by: 16) {
                    let p = exp16(load16(sr + j) - l)
                    store16(sr + j, p)                                   // P
                    store16(dsr + j, p * (load16(dsr + j) - dl))         // dS
                }
            }
            rank8Kernel(w.dvb, w.s, w.ot + i0 * d, d: d, n: m)                                 // dV^T += P^T dO^T
            rank8Kernel(w.dkb, w.ds, w.qt + i0 * d, d: d, n: m)                                // dK^T += dS^T Qs^T
            eightRowProduct(w.dq + i0 * d, ldo: d, w.ds, ldx: m, w.kt + j0 * d, ldb: d, k: m, m: d, scale: scale,
                            accumulate: true)                                                 // dQ^T += scale dS K^T
        }
        transpose(gk + j0, w.dkb, rows: m, cols: d, lds: d, ldd: n)
        transpose(gv + j0, w.dvb, rows: m, cols: d, lds: d, ldd: n)
    }
    transpose(gq, w.dq, rows: n, cols: d, lds: d)
}
