// Matrix products through BLAS.gemm in Precision.current: matmul (2-D) and linear (y = x W^T + b).

extension Tensor {
    // y = a b, a: (m, k), b: (k, n); da = g b^T, db = a^T g
    public func matmul(_ b: Tensor) throws -> Tensor {
        let a = self
        guard a.rank == 2, b.rank == 2, a.shape[1] == b.shape[0] else {
            throw TensorError("matmul: shapes \(Shape.describe(a.shape)) and \(Shape.describe(b.shape)) are not (m, k) "
                              + "and (k, n)")
        }
        let (m, k, n) = (a.shape[0], a.shape[1], b.shape[1])
        let out = Tensor(uninitialized: [m, n])
        let precision = Precision.current  // forward and backward products
        BLAS.gemm(precision, out.data, a.data, b.data, m: m, n: n, k: k)
        let (sa, sb) = (a.detached(), b.detached())
        return out.recorded(.matmul, [a, b]) { g in
            var ga: Tensor?, gb: Tensor?
            if a.requiresGrad {
                let t = Tensor(uninitialized: [m, k])
                BLAS.gemm(precision, t.data, g.data, sb.data, m: m, n: k, k: n, transB: true)
                ga = t
            }
            if b.requiresGrad {
                let t = Tensor(uninitialized: [k, n])
                BLAS.gemm(precision, t.data, sa.data, g.data, m: k, n: n, k: m, transA: true)
                gb = t
            }
            return [ga, gb]
        }
    }

    /// x: (B, in), weight: (out, in), bias: (out)
    // y = x W^T + b; dx = g W, dW = g^T x, db = sum_rows g
    public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) throws -> Tensor {
        guard x.rank == 2, weight.rank == 2, x.shape[1] == weight.shape[1] else {
            throw TensorError("linear: input \(Shape.describe(x.shape)) does not match weight "
                              + "\(Shape.describe(weight.shape)) (expected (batch, \(weight.shape.last ?? 0)))")
        }
        let (rows, fin, fout) = (x.shape[0], x.shape[1], weight.shape[0])
        if let bias, bias.shape != [fout] {
            throw TensorError("linear: bias \(Shape.describe(bias.shape)) does not match weight "
                              + "\(Shape.describe(weight.shape))")
        }
        let out = Tensor(uninitialized: [rows, fout])
        let precision = Precision.current  // forward and backward products
        if let bias {
            for r in 0..<rows { (out.data + r * fout).update(from: bias.data, count: fout) }
        }
        BLAS.gemm(precision, out.data, x.data, weight.data, m: rows, n: fout, k: fin, transB: true,
                  beta: bias == nil ? 0 : 1)
        let (sx, sw) = (x.detached(), weight.detached())
        let inputs = [x, weight] + (bias.map { [$0] } ?? [])
        return out.recorded(.linear, inputs) { g in
            var grads: [Tensor?] = [nil, nil]
            if x.requiresGrad {
                let gx = Tensor(uninitialized: [rows, fin])
                BLAS.gemm(precision, gx.data, g.data, sw.data, m: rows, n: fin, k: fout)
                grads[0] = gx
            }
            if weight.requiresGrad {
                let gw = Tensor(uninitialized: [fout, fin])
                BLAS.gemm(precision, gw.data, g.data, sx.data, m: fout, n: fin, k: rows, transA: true)
                grads[1] = gw
            }
            if let bias {
                grads.append(bias.requiresGrad ? try g.sum(dim: 0).reshaped([fout]) : nil)
            }
            return grads
        }
    }
}
