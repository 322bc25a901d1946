import Foundation

// Softmax and fused multi-head self-attention.

/// Softmax of each row of (rows, n), in place, with the row max subtracted for stability.
@inline(__always)
func softmaxRows(_ p: UnsafeMutablePointer<Float>, rows: Int, n: Int) {
    for r in 0..<rows { softmaxRow(p + r * n, n) }
}

/// Given y = softmax(x) rows and dy, dx = y * (dy - sum(dy * y)), written over dy.
@inline(__always)
func softmaxRowsBackward(_ gy: UnsafeMutablePointer<Float>, _ y: UnsafePointer<Float>, rows: Int, n: Int) {
    for r in 0..<rows { softmaxRowBackward(gy + r * n, y + r * n, n) }
}

extension Tensor {
    // y = softmax over the last dim; dx = y (g - sum(g y))
    public func softmax() throws -> Tensor {
        guard rank >= 1, let n = shape.last, n > 0 else {
            throw TensorError("softmax: tensor of shape \(Shape.describe(shape)) has no last dimension")
        }
        let out = copy()
        softmaxRows(out.data, rows: count / n, n: n)
        let saved = out.detached()
        return out.recorded(.softmax, [self]) { g in
            let gx = g.copy()
            softmaxRowsBackward(gx.data, saved.data, rows: gx.count / n, n: n)
            return [gx]
        }
    }

    /// qkv: (B, 3 * heads * dim, N) -> (B, heads * dim, N): softmax(scale q^T k) attention per
    /// (batch, head), channel = head * dim + c within each of q, k, v (the reference layout).
    /// Flash-attention style: rows are processed in blocks of `attentionBlock` queries, so the
    /// (N, N) score matrix never exists — only a (block, N) strip per core, in cache — and backward
    /// recomputes each strip instead of storing probabilities. (batch, head) pairs run in parallel
    /// (the fused path hands them out one at a time to whichever core is free).
    // S = scale Q^T K, P = softmax(S), O = V P^T;
    // dV = dO P, dP = dO^T V, dS = P (dP - rowsum(dP P)), dQ = scale K dS^T, dK = scale Q dS
    /// `fused: false` forces the sgemm path where the fused kernels would apply (KernelTests
    /// compare the two).
    public static func attention(_ qkv: Tensor, heads: Int, dim: Int, fused allowFused: Bool = true) throws -> Tensor {
        let hidden = heads * dim
        guard qkv.rank == 3, heads > 0, dim > 0, qkv.shape[1] == 3 * hidden else {
            throw TensorError("attention: input \(Shape.describe(qkv.shape)) is not (batch, 3*\(heads)*\(dim), tokens)")
        }
        let (b, n) = (qkv.shape[0], qkv.shape[2])
        let scale = 1 / Float(dim).squareRoot()
        let out = Tensor(uninitialized: [b, hidden, n])
        let rows = Swift.min(attentionBlock, n)
        let pairs = b * heads
        let precision = Precision.current  // forward and backward products
        // the fused kernels are fp32; bf16 runs the products of the sgemm path in bf16
        let fused = allowFused && precision == .fp32 && fusedAttentionApplies(dim: dim, tokens: n)
        // each query's log-sum-exp of its scores (fused path), for the backward pass
        let lse = Tensor(uninitialized: fused ? [pairs, n] : [0])
        if fused {
            let queue = WorkQueue(count: pairs)
            Parallel.run(pairs) { _ in
                let scratch = AttentionScratch(n: n, d: dim)
                while let pair = queue.take() {
                    let (bi, h) = (pair / heads, pair % heads)
                    let (q, k, v) = qkvPointers(qkv.data, bi, h, hidden: hidden, dim: dim, n: n)
                    fusedAttentionForward(out.data + (bi * hidden + h * dim) * n, lse: lse.data + pair * n,
                                          q: q, k: k, v: v, d: dim, n: n, scale: scale, scratch: scratch)
                }
            }
        } else {
        Parallel.run(pairs) { w in
            let p = Tensor(uninitialized: [rows, n])
            for pair in stride(from: w, to: pairs, by: Parallel.workers) {
                let (bi, h) = (pair / heads, pair % heads)
                let (q, k, v) = qkvPointers(qkv.data, bi, h, hidden: hidden, dim: dim, n: n)
                let o = out.data + (bi * hidden + h * dim) * n
                for i0 in stride(from: 0, to: n, by: rows) {
                    let r = Swift.min(rows, n - i0)
                    BLAS.gemmSerial(precision, p.data, q + i0, k, m: r, n: n, k: dim, transA: true, alpha: scale,
                                    lda: n)
                    for i in 0..<r { softmaxRow(p.data + i * n, n) }
                    BLAS.gemmSerial(precision, o + i0, v, p.data, m: dim, n: r, k: n, transB: true, ldc: n)
                }
            }
        }
        }
        let saved = qkv.detached(), output = out.detached()
        return out.recorded(.attention, [qkv]) { g in
            let gqkv = Tensor(uninitialized: saved.shape)
            if fused {
                let queue = WorkQueue(count: pairs)
                Parallel.run(pairs) { _ in
                    let scratch = AttentionScratch(n: n, d: dim)
                    while let pair = queue.take() {
                        let (bi, h) = (pair / heads, pair % heads)
                        let (q, k, v) = qkvPointers(saved.data, bi, h, hidden: hidden, dim: dim, n: n)
                        let (gq, gk, gv) = qkvPointers(gqkv.data, bi, h, hidden: hidden, dim: dim, n: n)
                        let head = (bi * hidden + h * dim) * n
                        fusedAttentionBackward(gq: gq, gk: gk, gv: gv, go: g.data + head, o: output.data + head,
                                               lse: lse.data + pair * n, q: q, k: k, v: v, d: dim, n: n, scale: scale,
                                               scratch: scratch)
                    }
                }
                return [gqkv]
            }
            Parallel.run(pairs) { w in
                let p = Tensor(uninitialized: [rows, n]), gp = Tensor(uninitialized: [rows, n])
                for pair in stride(from: w, to: pairs, by: Parallel.workers) {
                    let (bi, h) = (pair / heads, pair % heads)
                    let (q, k, v) = qkvPointers(saved.data, bi, h, hidden: hidden, dim: dim, n: n)
                    let (gq, gk, gv) = qkvPointers(gqkv.data, bi, h, hidden: hidden, dim: dim, n: n)
                    let go = g.data + (bi * hidden + h * dim) * n
                    for i0 in stride(from: 0, to: n, by: rows) {
                        let r = Swift.min(rows, n - i0)
                        let first: Float = i0 == 0 ? 0 : 1  // dV and dK accumulate over row blocks
                        BLAS.gemmSerial(precision, p.data, q + i0, k, m: r, n: n, k: dim, transA: true, alpha: scale,
                                        lda: n)
                        for i in 0..<r { softmaxRow(p.data + i * n, n) }
                        BLAS.gemmSerial(precision, gv, go + i0, p.data, m: dim, n: n, k: r, beta: first, lda: n)
                        BLAS.gemmSerial(precision, gp.data, go + i0, v, m: r, n: n, k: dim, transA: true, lda: n)
                        for i in 0..<r { softmaxRowBackward(gp.data + i * n, p.data + i * n, n) }
                        BLAS.gemmSerial(precision, gq + i0, k, gp.data, m: dim, n: r, k: n, transB: true, alpha: scale,
                                        ldc: n)
                        BLAS.gemmSerial(precision, gk, q + i0, gp.data, m: dim, n: n, k: r, alpha: scale, beta: first,
                                        lda: n)
                    }
                }
            }
            return [gqkv]
        }
    }
}

/// Query rows per block in the sgemm path: a (block, N) strip of scores stays in L2.
let attentionBlock = 64

/// Pointers to the (dim, n) q, k and v blocks of one (batch, head) in a (B, 3*hidden, n) buffer.
@inline(__always)
private func qkvPointers(_ base: UnsafeMutablePointer<Float>, _ b: Int, _ h: Int, hidden: Int, dim: Int, n: Int)
    -> (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) {
    let q = base + (b * 3 * hidden + h * dim) * n
    return (q, q + hidden * n, q + 2 * hidden * n)
}
