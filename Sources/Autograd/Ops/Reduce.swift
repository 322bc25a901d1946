// Reductions: to one element, or along one dimension with that dimension kept (size 1).

extension Tensor {
    /// Checks a 0-based dimension index.
    func checkDim(_ op: String, _ dim: Int) throws {
        guard dim >= 0 && dim < rank else {
            throw TensorError("\(op): dimension \(dim) out of range for shape \(Shape.describe(shape)) (0..<\(rank))")
        }
    }

    /// Splits the shape around `dim` into (outer, size, inner).
    func split(at dim: Int) -> (Int, Int, Int) {
        (shape[..<dim].reduce(1, *), shape[dim], shape[(dim + 1)...].reduce(1, *))
    }

    // y = sum x; dx = g (broadcast)
    public func sum() -> Tensor {
        var acc: Double = 0
        for i in 0..<count { acc += Double(data[i]) }
        let out = Tensor(repeating: Float(acc), shape: [])
        let shape = self.shape
        return out.recorded(.sum, [self]) { g in [Tensor(repeating: g.data[0], shape: shape)] }
    }

    // y = sum x / n; dx = g / n
    public func mean() -> Tensor {
        let n = Float(Swift.max(count, 1))
        return sum().affine(scale: 1 / n, shift: 0)
    }

    // y[o, 0, i] = sum_d x[o, d, i]; dx[o, d, i] = g[o, 0, i]
    public func sum(dim: Int) throws -> Tensor {
        try checkDim("sum", dim)
        let (outer, size, inner) = split(at: dim)
        var outShape = shape
        outShape[dim] = 1
        let out = Tensor(zeros: outShape)
        for o in 0..<outer {
            for d in 0..<size {
                let src = data + (o * size + d) * inner, dst = out.data + o * inner
                for i in 0..<inner { dst[i] += src[i] }
            }
        }
        let inShape = shape
        return out.recorded(.sumDim, [self]) { g in
            let gx = Tensor(uninitialized: inShape)
            for o in 0..<outer {
                for d in 0..<size {
                    (gx.data + (o * size + d) * inner).update(from: g.data + o * inner, count: inner)
                }
            }
            return [gx]
        }
    }

    public func mean(dim: Int) throws -> Tensor {
        try checkDim("mean", dim)
        return try sum(dim: dim).affine(scale: 1 / Float(Swift.max(shape[dim], 1)), shift: 0)
    }

    // y = max x; dx = g at the first maximal element, 0 elsewhere
    public func max() throws -> Tensor { try extreme(.max, >) }
    // y = min x; dx = g at the first minimal element, 0 elsewhere
    public func min() throws -> Tensor { try extreme(.min, <) }

    private func extreme(_ op: Op, _ better: (Float, Float) -> Bool) throws -> Tensor {
        guard count > 0 else { throw TensorError("\(op.rawValue): tensor is empty") }
        var best = 0
        for i in 1..<count where better(data[i], data[best]) { best = i }
        let out = Tensor(repeating: data[best], shape: [])
        let inShape = shape
        return out.recorded(op, [self]) { g in
            let gx = Tensor(zeros: inShape)
            gx.data[best] = g.data[0]
            return [gx]
        }
    }
}
