// Fused attention for one (batch, head): register-blocked SIMD micro-kernels that process 8
// queries at a time, so the scores of those queries (8 x N) live in L1 and nothing is packed
// or written to memory beyond the outputs. Used when head_dim is 16, 32, 48 or 64 and the token
// count is a multiple of 16; the sgemm path in Attention.swift is the reference beside it.

/// Whether the fused kernels handle this shape.
func fusedAttentionApplies(dim: Int, tokens: Int) -> Bool {
    dim % 16 == 0 && dim >= 16 && dim <= 64 && tokens % 16 == 0 && tokens >= 16
}

/// S[r, j] = sum_c A[r, c] * B[c, j] for 8 rows r of A (row stride lda) and all n columns of B
/// (d x n, row stride n); S has row stride n. n % 16 == 0. Eight rows per pass, so each load of
/// B feeds 8 FMAs: with 4 rows the kernel streamed B from L2 faster than L2 delivers it.
@inline(__always)
func scoresKernel(_ s: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, d: Int, n: Int) {
    var j = 0
    while j + 32 <= n {
        var a00 = Vec(), a01 = Vec(), a10 = Vec(), a11 = Vec()
        var a20 = Vec(), a21 = Vec(), a30 = Vec(), a31 = Vec()
        var a40 = Vec(), a41 = Vec(), a50 = Vec(), a51 = Vec()
        var a60 = Vec(), a61 = Vec(), a70 = Vec(), a71 = Vec()
        for c in 0..<d {
            let row = b + c * n + j
            let b0 = load16(row), b1 = load16(row + 16)
            var x = Vec(repeating: a[c]); a00 = a00.addingProduct(x, b0); a01 = a01.addingProduct(x, b1)
            x = Vec(repeating: a[lda + c]); a10 = a10.addingProduct(x, b0); a11 = a11.addingProduct(x, b1)
            x = Vec(repeating: a[2 * lda + c]); a20 = a20.addingProduct(x, b0); a21 = a21.addingProduct(x, b1)
            x = Vec(repeating: a[3 * lda + c]); a30 = a30.addingProduct(x, b0); a31 = a31.addingProduct(x, b1)
            x = Vec(repeating: a[4 * lda + c]); a40 = a40.addingProduct(x, b0); a41 = a41.addingProduct(x, b1)
            x = Vec(repeating: a[5 * lda + c]); a50 = a50.addingProduct(x, b0); a51 = a51.addingProduct(x, b1)
            x = Vec(repeating: a[6 * lda + c]); a60 = a60.addingProduct(x, b0); a61 = a61.addingProduct(x, b1)
            x = Vec(repeating: a[7 * lda + c]); a70 = a70.addingProduct(x, b0); a71 = a71.addingProduct(x, b1)
        }
        store16(s + j, a00); store16(s + j + 16, a01)
        store16(s + n + j, a10); store16(s + n + j + 16, a11)
        store16(s + 2 * n + j, a20); store16(s + 2 * n + j + 16, a21)
        store16(s + 3 * n + j, a30); store16(s + 3 * n + j + 16, a31)
        store16(s + 4 * n + j, a40); store16(s + 4 * n + j + 16, a41)
        store16(s + 5 * n + j, a50); store16(s + 5 * n + j + 16, a51)
        store16(s + 6 * n + j, a60); store16(s + 6 * n + j + 16, a61)
        store16(s + 7 * n + j, a70); store16(s + 7 * n + j + 16, a71)
        j += 32
    }
    if j < n {  // the last 16 columns
        var a0 = Vec(), a1 = Vec(), a2 = Vec(), a3 = Vec(), a4 = Vec(), a5 = Vec(), a6 = Vec(), a7 = Vec()
        for c in 0..<d {
            let b0 = load16(b + c * n + j)
            a0 = a0.addingProduct(Vec(repeating: a[c]), b0)
            a1 = a1.addingProduct(Vec(repeating: a[lda + c]), b0)
            a2 = a2.addingProduct(Vec(repeating: a[2 * lda + c]), b0)
            a3 = a3.addingProduct(Vec(repeating: a[3 * lda + c]), b0)
            a4 = a4.addingProduct(Vec(repeating: a[4 * lda + c]), b0)
            a5 = a5.addingProduct(Vec(repeating: a[5 * lda + c]), b0)
            a6 = a6.addingProduct(Vec(repeating: a[6 * lda + c]), b0)
            a7 = a7.addingProduct(Vec(repeating: a[7 * lda + c]), b0)
        }
        store16(s + j, a0); store16(s + n + j, a1); store16(s + 2 * n + j, a2); store16(s + 3 * n + j, a3)
        store16(s + 4 * n + j, a4); store16(s + 5 * n + j, a5); store16(s + 6 * n + j, a6); store16(s + 7 * n + j, a7)
    }
}

/// Out[r, :] = scale * sum_j P[r, j] * B[j, :] for 8 rows of P (8 x n, row stride n) and B
/// (n x d, d = 16 * vectors); Out has row stride ldo. Eight rows per pass, as in scoresKernel.
@inline(__always)
func mixKernel(_ out: UnsafeMutablePointer<Float>, ldo: Int, _ p: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
               d: Int, n: Int, scale: Float) {
    let sv = Vec(repeating: scale)
    var c = 0
    while c + 32 <= d {
        var a00 = Vec(), a01 = Vec(), a10 = Vec(), a11 = Vec()
        var a20 = Vec(), a21 = Vec(), a30 = Vec(), a31 = Vec()
        var a40 = Vec(), a41 = Vec(), a50 = Vec(), a51 = Vec()
        var a60 = Vec(), a61 = Vec(), a70 = Vec(), a71 = Vec()
        for j in 0..<n {
            let row = b + j * d + c
            let b0 = load16(row), b1 = load16(row + 16)
            var x = Vec(repeating: p[j]); a00 = a00.addingProduct(x, b0); a01 = a01.addingProduct(x, b1)
            x = Vec(repeating: p[n + j]); a10 = a10.addingProduct(x, b0); a11 = a11.addingProduct(x, b1)
            x = Vec(repeating: p[2 * n + j]); a20 = a20.addingProduct(x, b0); a21 = a21.addingProduct(x, b1)
            x = Vec(repeating: p[3 * n + j]); a30 = a30.addingProduct(x, b0); a31 = a31.addingProduct(x, b1)
            x = Vec(repeating: p[4 * n + j]); a40 = a40.addingProduct(x, b0); a41 = a41.addingProduct(x, b1)
            x = Vec(repeating: p[5 * n + j]); a50 = a50.addingProduct(x, b0); a51 = a51.addingProduct(x, b1)
            x = Vec(repeating: p[6 * n + j]); a60 = a60.addingProduct(x, b0); a61 = a61.addingProduct(x, b1)
            x = Vec(repeating: p[7 * n + j]); a70 = a70.addingProduct(x, b0); a71 = a71.addingProduct(x, b1)
        }
        store16(out + c, a00 * sv); store16(out + c + 16, a01 * sv)
        store16(out + ldo + c, a10 * sv); store16(out + ldo + c + 16, a11 * sv)
        store16(out + 2 * ldo + c, a20 * sv); store16(out + 2 * ldo + c + 16, a21 * sv)
        store16(out + 3 * ldo + c, a30 * sv); store16(out + 3 * ldo + c + 16, a31 * sv)
        store16(out + 4 * ldo + c, a40 * sv); store16(out + 4 * ldo + c + 16, a41 * sv)
        store16(out + 5 * ldo + c, a50 * sv); store16(out + 5 * ldo + c + 16, a51 * sv)
        store16(out + 6 * ldo + c, a60 * sv); store16(out + 6 * ldo + c + 16, a61 * sv)
        store16(out + 7 * ldo + c, a70 * sv); store16(out + 7 * ldo + c + 16, a71 * sv)
        c += 32
    }
    if c < d {  // the last 16 columns
        var a0 = Vec(), a1 = Vec(), a2 = Vec(), a3 = Vec(), a4 = Vec(), a5 = Vec(), a6 = Vec(), a7 = Vec()
        for j in 0..<n {
            let b0 = load16(b + j * d + c)
            a0 = a0.addingProduct(Vec(repeating: p[j]), b0)
            a1 = a1.addingProduct(Vec(repeating: p[n + j]), b0)
            a2 = a2.addingProduct(Vec(repeating: p[2 * n + j]), b0)
            a3 = a3.addingProduct(Vec(repeating: p[3 * n + j]), b0)
            a4 = a4.addingProduct(Vec(repeating: p[4 * n + j]), b0)
            a5 = a5.addingProduct(Vec(repeating: p[5 * n + j]), b0)
            a6 = a6.addingProduct(Vec(repeating: p[6 * n + j]), b0)
            a7 = a7.addingProduct(Vec(repeating: p[7 * n + j]), b0)
        }
        store16(out + c, a0 * sv); store16(out + ldo + c, a1 * sv); store16(out + 2 * ldo + c, a2 * sv); store16(out + 3 * ldo + c, a3 * sv)
        store16(out + 4 * ldo + c, a4 * sv); store16(out + 5 * ldo + c, a5 * sv); store16(out + 6 * ldo + c, a6 * sv); store16(out + 7 * ldo + c, a7 * sv)
    }
}

/// D[j, :] += sum_r G[r, j] * X[r, :] for all n rows of D (n x d): a rank-8 update from 8 rows
/// of G (8 x n, row stride n) and X (8 x d). Eight rows per pass halve the read-modify-write
/// traffic on D compared with four, which is what bounds the attention backward.
@inline(__always)
func rank8Kernel(_ dst: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>, _ x: UnsafePointer<Float>, d: Int, n: Int) {
    var c = 0
    while c < d {
        let x0 = load16(x + c), x1 = load16(x + d + c), x2 = load16(x + 2 * d + c), x3 = load16(x + 3 * d + c)
        let x4 = load16(x + 4 * d + c), x5 = load16(x + 5 * d + c), x6 = load16(x + 6 * d + c), x7 = load16(x + 7 * d + c)
        for j in 0..<n {
            let o = dst + j * d + c
            let t = (Vec(repeating: g[j]) * x0).addingProduct(Vec(repeating: g[n + j]), x1)
                .addingProduct(Vec(repeating: g[2 * n + j]), x2).addingProduct(Vec(repeating: g[3 * n + j]), x3)
            let u = (Vec(repeating: g[4 * n + j]) * x4).addingProduct(Vec(repeating: g[5 * n + j]), x5)
                .addingProduct(Vec(repeating: g[6 * n + j]), x6).addingProduct(Vec(repeating: g[7 * n + j]), x7)
            store16(o, load16(o) + (t + u))
        }
        c += 16
    }
}

/// dst (cols x rows) = transpose of src (rows x cols, row stride lds), times scale.
@inline(__always)
func transpose(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, rows: Int, cols: Int, lds: Int, scale: Float = 1) {
    for r in 0..<rows {
        let s = src + r * lds
        for c in 0..<cols { dst[c * rows + r] = s[c] * scale }
    }
}

/// Scratch for one worker: transposed blocks and 8 x n strips of scores and their gradients.
struct AttentionScratch {
    let qt, kt, vt, ot, dq, dk, dv: UnsafeMutablePointer<Float>  // each n x d
    let s, ds: UnsafeMutablePointer<Float>                         // each 8 x n

    let n: Int, d: Int

    init(n: Int, d: Int) {
        self.n = n
        self.d = d
        // from the buffer pool: a fresh mmap per call would page-fault every time
        func alloc(_ c: Int) -> UnsafeMutablePointer<Float> { BufferPool.allocate(bytes: c * 4).bindMemory(to: Float.self, capacity: c) }
        qt = alloc(n * d); kt = alloc(n * d); vt = alloc(n * d); ot = alloc(n * d)
        dq = alloc(n * d); dk = alloc(n * d); dv = alloc(n * d)
        s = alloc(8 * n); ds = alloc(8 * n)
    }

    func free() {
        for p in [qt, kt, vt, ot, dq, dk, dv] { BufferPool.release(UnsafeMutableRawPointer(p), bytes: n * d * 4) }
        for p in [s, ds] { BufferPool.release(UnsafeMutableRawPointer(p), bytes: 8 * n * 4) }
    }
}

/// o (d x n) = attention of one head: q, k, v are (d x n) blocks with row stride n.
func fusedAttentionForward(_ o: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
                           v: UnsafePointer<Float>, d: Int, n: Int, scale: Float, scratch w: AttentionScratch) {
    transpose(w.qt, q, rows: d, cols: n, lds: n, scale: scale)
    transpose(w.vt, v, rows: d, cols: n, lds: n)
    for i0 in stride(from: 0, to: n, by: 8) {
        scoresKernel(w.s, w.qt + i0 * d, lda: d, k, d: d, n: n)
        for r in 0..<8 { softmaxRow(w.s + r * n, n) }
        mixKernel(w.ot + i0 * d, ldo: d, w.s, w.vt, d: d, n: n, scale: 1)
    }
    transpose(o, w.ot, rows: n, cols: d, lds: d)
}

/// Gradients of one head. go: dO (d x n, row stride n); gq, gk, gv: outputs (d x n, stride n).
func fusedAttentionBackward(gq: UnsafeMutablePointer<Float>, gk: UnsafeMutablePointer<Float>, gv: UnsafeMutablePointer<Float>,
                            go: UnsafePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                            d: Int, n: Int, scale: Float, scratch w: AttentionScratch) {
    transpose(w.qt, q, rows: d, cols: n, lds: n, scale: scale)   // Qs^T, Qs = scale Q
    transpose(w.kt, k, rows: d, cols: n, lds: n)
    transpose(w.ot, go, rows: d, cols: n, lds: n)                 // dO^T
    w.dk.update(repeating: 0, count: n * d)
    w.dv.update(repeating: 0, count: n * d)
    // 8 queries per iteration (n % 16 == 0); the dK/dV updates as one rank-8 pass over all keys
    for i0 in stride(from: 0, to: n, by: 8) {
        scoresKernel(w.s, w.qt + i0 * d, lda: d, k, d: d, n: n)                  // S = Qs^T K
        for r in 0..<8 { softmaxRow(w.s + r * n, n) }                             // P
        rank8Kernel(w.dv, w.s, w.ot + i0 * d, d: d, n: n)                          // dV^T += P^T dO^T
        scoresKernel(w.ds, w.ot + i0 * d, lda: d, v, d: d, n: n)                 // dP = dO^T V
        for r in 0..<8 { softmaxRowBackward(w.ds + r * n, w.s + r * n, n) }        // dS
        mixKernel(w.dq + i0 * d, ldo: d, w.ds, w.kt, d: d, n: n, scale: scale)   // dQ^T = scale dS K^T
        rank8Kernel(w.dk, w.ds, w.qt + i0 * d, d: d, n: n)                         // dK^T += dS^T Qs^T
    }
    transpose(gq, w.dq, rows: n, cols: d, lds: d)
    transpose(gk, w.dk, rows: n, cols: d, lds: d)
    transpose(gv, w.dv, rows: n, cols: d, lds: d)
}
