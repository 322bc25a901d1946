/// Finite-difference gradient check: compares the graph's gradient of L = sum(f(x) * R), R a
/// fixed random tensor, with central differences (L accumulated in Double). Returns, per input,
/// max |analytic - numeric| / max(max |numeric|, 1e-3). Float32 forward passes limit the
/// agreement to ~1e-3 with eps = 1e-2; keep inputs small (two forwards per element).
public func gradCheck(_ inputs: [Tensor], eps: Float = 1e-2, seed: UInt64 = 42,
                      _ f: ([Tensor]) throws -> Tensor) throws -> [Double] {
    let xs = inputs.map { x -> Tensor in
        let c = x.copy()
        c.requiresGrad = true
        return c
    }
    let y = try f(xs)
    var rng = Generator(seed: seed)
    let r = Tensor.randn(y.shape, generator: &rng)
    try (y * r).sum().backward()

    func objective() throws -> Double {
        try withNoGrad {
            let out = try f(xs)
            var acc: Double = 0
            for i in 0..<out.count { acc += Double(out.data[i]) * Double(r.data[i]) }
            return acc
        }
    }
    return try xs.map { x in
        let analytic = x.grad ?? Tensor(zeros: x.shape)
        var maxErr: Double = 0, maxRef: Double = 0
        for j in 0..<x.count {
            let saved = x.data[j]
            let (hi, lo) = (saved + eps, saved - eps)
            x.data[j] = hi
            let plus = try objective()
            x.data[j] = lo
            let minus = try objective()
            x.data[j] = saved
            let numeric = (plus - minus) / Double(hi - lo)
            maxErr = Swift.max(maxErr, Swift.abs(numeric - Double(analytic.data[j])))
            maxRef = Swift.max(maxRef, Swift.abs(numeric))
        }
        return maxErr / Swift.max(maxRef, 1e-3)
    }
}
