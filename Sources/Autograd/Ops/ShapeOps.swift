// Reshape (shares storage), permute, concatenation and narrowing (copies).

extension Tensor {
    // y = x viewed with a new shape; dx = g viewed with the old one. One entry may be -1.
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        var target = newShape
        let unknown = newShape.indices.filter { newShape[$0] == -1 }
        guard unknown.count <= 1, newShape.allSatisfy({ $0 >= -1 }) else {
            throw TensorError("reshape: invalid shape \(Shape.describe(newShape))")
        }
        if let u = unknown.first {
            let known = try Shape.checkedCount(newShape.filter { $0 != -1 }, op: "reshape")
            guard known > 0, count % known == 0 else {
                throw TensorError("reshape: cannot reshape \(Shape.describe(shape)) (\(count) elements) to "
                                  + "\(Shape.describe(newShape))")
            }
            target[u] = count / known
        }
        guard try Shape.checkedCount(target, op: "reshape") == count else {
            throw TensorError("reshape: cannot reshape \(Shape.describe(shape)) (\(count) elements) to "
                              + "\(Shape.describe(newShape))")
        }
        let out = Tensor(storage: storage, shape: target)
        let inShape = shape
        return out.recorded(.reshape, [self]) { g in [Tensor(storage: g.storage, shape: inShape)] }
    }

    // y[i_order[0], ...] = x[i_0, ...]: output dim k is input dim order[k]; dx = permute(g, inverse)
    public func permuted(_ order: [Int]) throws -> Tensor {
        guard order.count == rank, order.sorted() == Array(0..<rank) else {
            throw TensorError("permute: order \(order) is not a permutation of 0..<\(rank) for shape "
                              + "\(Shape.describe(shape))")
        }
        let out = Tensor(uninitialized: order.map { shape[$0] })
        Tensor.permuteCopy(from: self, to: out, order: order)
        var inverse = [Int](repeating: 0, count: rank)
        for (k, d) in order.enumerated() { inverse[d] = k }
        let inShape = shape
        return out.recorded(.permute, [self]) { g in
            let gx = Tensor(uninitialized: inShape)
            Tensor.permuteCopy(from: g, to: gx, order: inverse)
            return [gx]
        }
    }

    /// out = x.permute(order), contiguous; the innermost output dimension runs as one loop, and
    /// the slabs of the leading output dimension are split across the cores.
    static func permuteCopy(from x: Tensor, to out: Tensor, order: [Int]) {
        let r = x.rank
        if r == 0 { out.data[0] = x.data[0]; return }
        let inStrides = Shape.strides(x.shape)
        let stridesOut = order.map { inStrides[$0] }  // input stride of each output dim
        let shapeOut = out.shape
        let n = shapeOut[r - 1], s = stridesOut[r - 1]
        func copyRow(_ dst: UnsafeMutablePointer<Float>, _ p: UnsafePointer<Float>) {
            if s == 1 { dst.update(from: p, count: n) } else { for i in 0..<n { dst[i] = p[i * s] } }
        }
        if r == 1 { copyRow(out.data, x.data); return }
        let lead = shapeOut[0], slab = out.count / Swift.max(lead, 1), rowsPerSlab = slab / Swift.max(n, 1)
        Parallel.ranges(lead, grain: Swift.max(1, (1 << 16) / Swift.max(slab, 1))) { range in
            var idx = [Int](repeating: 0, count: r)
            for i0 in range {
                var src = i0 * stridesOut[0], dst = out.data + i0 * slab
                for d in 1..<r { idx[d] = 0 }
                for _ in 0..<rowsPerSlab {
                    copyRow(dst, x.data + src)
                    dst += n
                    var d = r - 2
                    while d >= 1 {
                        idx[d] += 1
                        src += stridesOut[d]
                        if idx[d] < shapeOut[d] { break }
                        src -= stridesOut[d] * shapeOut[d]
                        idx[d] = 0
                        d -= 1
                    }
                }
            }
        }
    }

    // y = x[..., start ..< start+length, ...] along dim; dx = g placed back, zeros elsewhere
    public func narrowed(dim: Int, start: Int, length: Int) throws -> Tensor {
        try checkDim("narrow", dim)
        guard start >= 0, length >= 0, start + length <= shape[dim] else {
            throw TensorError("narrow: range \(start)..<\(start + length) out of bounds for dimension \(dim) of size "
                              + "\(shape[dim]) (shape \(Shape.describe(shape)))")
        }
        let (outer, size, inner) = split(at: dim)
        var outShape = shape
        outShape[dim] = length
        let out = Tensor(uninitialized: outShape)
        for o in 0..<outer {
            (out.data + o * length * inner).update(from: data + (o * size + start) * inner, count: length * inner)
        }
        let inShape = shape
        return out.recorded(.narrow, [self]) { g in
            let gx = Tensor(zeros: inShape)
            for o in 0..<outer {
                (gx.data + (o * size + start) * inner).update(from: g.data + o * length * inner, count: length * inner)
            }
            return [gx]
        }
    }

    // y = [x_1, x_2, ...] along dim; dx_k = the matching slice of g
    public static func cat(_ xs: [Tensor], dim: Int) throws -> Tensor {
        guard let first = xs.first else { throw TensorError("cat: empty list of tensors") }
        try first.checkDim("cat", dim)
        for x in xs {
            var a = x.shape, b = first.shape
            guard a.count == b.count else {
                throw TensorError("cat: shapes \(Shape.describe(first.shape)) and \(Shape.describe(x.shape)) differ in "
                                  + "rank")
            }
            a[dim] = 0; b[dim] = 0
            guard a == b else {
                throw TensorError("cat: shapes \(Shape.describe(first.shape)) and \(Shape.describe(x.shape)) differ "
                                  + "outside dimension \(dim)")
            }
        }
        let sizes = xs.map { $0.shape[dim] }
        var outShape = first.shape
        outShape[dim] = sizes.reduce(0, +)
        let out = Tensor(uninitialized: outShape)
        let (outer, total, inner) = out.split(at: dim)
        let offsets = sizes.reduce(into: [0]) { $0.append($0.last! + $1) }
        let grain = Swift.max(1, (1 << 16) / Swift.max(total * inner, 1))  // outer slices per core
        Parallel.ranges(outer, grain: grain) { range in
            for o in range {
                for (x, (size, offset)) in zip(xs, zip(sizes, offsets)) {
                    (out.data + (o * total + offset) * inner)
                        .update(from: x.data + o * size * inner, count: size * inner)
                }
            }
        }
        return out.recorded(.cat, xs) { g in
            let grads = xs.map { $0.requiresGrad ? Tensor(uninitialized: $0.shape) : nil }
            Parallel.ranges(outer, grain: grain) { range in
                for o in range {
                    for (gx, (size, offset)) in zip(grads, zip(sizes, offsets)) {
                        guard let gx else { continue }
                        (gx.data + o * size * inner)
                            .update(from: g.data + (o * total + offset) * inner, count: size * inner)
                    }
                }
            }
            return grads
        }
    }
}
