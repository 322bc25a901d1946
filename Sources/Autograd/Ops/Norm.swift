import Foundation

// Normalisation: group norm (with per-channel affine) and weight standardization. Both normalise
// rows of a (rows, m) view to zero mean and unit biased variance, so they share one kernel pair.

/// Sum over p[0..<m] of f(p[i], q[i]) with SIMD partial sums in Float, flushed into a Double
/// every 1024 elements: vectorised (a serial Double sum is one add per 4 cycles) and, for these
/// row lengths, as accurate as summing in Double throughout.
@inlinable @inline(__always)
public func rowSum(_ m: Int, _ vector: (Int) -> Vec, _ scalar: (Int) -> Float) -> Double {
    var total: Double = 0
    var start = 0
    while start < m {
        let end = Swift.min(m, start + 1024)
        var a0 = Vec(repeating: 0), a1 = Vec(repeating: 0)
        var i = start
        while i + 32 <= end { a0 += vector(i); a1 += vector(i + 16); i += 32 }
        while i + 16 <= end { a0 += vector(i); i += 16 }
        var block = Double((a0 + a1).sum())
        while i < end { block += Double(scalar(i)); i += 1 }
        total += block
        start = end
    }
    return total
}

/// Mean and rstd = 1 / sqrt(biased variance + eps) of a row; two passes (mean, then squared
/// deviations) for accuracy.
@inline(__always)
func rowStatistics(_ p: UnsafePointer<Float>, m: Int, eps: Float) -> (mean: Float, rstd: Float) {
    let mean = Float(rowSum(m, { load16(p + $0) }, { p[$0] }) / Double(m))
    let meanV = Vec(repeating: mean)
    let v = rowSum(m, { let d = load16(p + $0) - meanV; return d * d }, { let d = p[$0] - mean; return d * d })
    return (mean, Float(1 / (v / Double(m) + Double(eps)).squareRoot()))
}

/// q[i] = silu(p[i] a + a0): the tail of the fused GroupNorm for one channel.
@inline(__always)
func siluAffine(_ q: UnsafeMutablePointer<Float>, _ p: UnsafePointer<Float>, count: Int, _ a: Float, _ a0: Float,
                plus r: UnsafePointer<Float>? = nil) {
    if let r { siluAffinePlus(q, p, r, count: count, a, a0) } else { siluAffinePlain(q, p, count: count, a, a0) }
}

/// q = silu(p a + a0) + r: its own loop, so neither loop branches per vector.
private func siluAffinePlus(_ q: UnsafeMutablePointer<Float>, _ p: UnsafePointer<Float>, _ r: UnsafePointer<Float>,
                            count: Int, _ a: Float, _ a0: Float) {
    forEachVector(0..<count) { i in
        let h = load16(p + i) * a + a0
        store16(q + i, h / (1 + exp16(-h)) + load16(r + i))
    } tail: { i in
        let h = p[i] * a + a0
        q[i] = h / (1 + Foundation.exp(-h)) + r[i]
    }
}

private func siluAffinePlain(_ q: UnsafeMutablePointer<Float>, _ p: UnsafePointer<Float>, count: Int, _ a: Float,
                             _ a0: Float) {
    forEachVector(0..<count) { i in
        let h = load16(p + i) * a + a0
        store16(q + i, h / (1 + exp16(-h)))
    } tail: { i in
        let h = p[i] * a + a0
        q[i] = h / (1 + Foundation.exp(-h))
    }
}

/// One row of m: xhat = (x - mean) * rstd; returns the row's rstd.
@inline(__always)
func normalizeRow(_ xhat: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, m: Int, eps: Float) -> Float {
    let (mean, rstd) = rowStatistics(x, m: m, eps: eps)
    let meanV = Vec(repeating: mean), rstdV = Vec(repeating: rstd)
    forEachVector(0..<m, { store16(xhat + $0, (load16(x + $0) - meanV) * rstdV) },
                  tail: { xhat[$0] = (x[$0] - mean) * rstd })
    return rstd
}

/// x: (rows, m) -> xhat = (x - mean) * rstd per row; returns per-row rstd.
func normalizeRows(_ xhat: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, rows: Int, m: Int,
                   eps: Float) -> [Float] {
    let rstds = UnsafeMutablePointer<Float>.allocate(capacity: max(rows, 1))
    defer { rstds.deallocate() }
    Parallel.ranges(rows, grain: max(1, (1 << 14) / max(m, 1))) { range in
        for r in range { rstds[r] = normalizeRow(xhat + r * m, x + r * m, m: m, eps: eps) }
    }
    return Array(UnsafeBufferPointer(start: rstds, count: rows))
}

/// Given d loss / d xhat per row, d loss / d x = rstd * (g - mean(g) - xhat * mean(g * xhat)).
func normalizeRowsBackward(_ gx: UnsafeMutablePointer<Float>, _ gxhat: UnsafePointer<Float>,
                           _ xhat: UnsafePointer<Float>, _ rstd: [Float], rows: Int, m: Int) {
    Parallel.ranges(rows, grain: max(1, (1 << 14) / max(m, 1))) { range in
        for r in range {
            let g = gxhat + r * m, xh = xhat + r * m, o = gx + r * m
            let mg = Float(rowSum(m, { load16(g + $0) }, { g[$0] }) / Double(m))
            let mgx = Float(rowSum(m, { load16(g + $0) * load16(xh + $0) }, { g[$0] * xh[$0] }) / Double(m))
            let rs = rstd[r]
            let mgV = Vec(repeating: mg), mgxV = Vec(repeating: mgx), rsV = Vec(repeating: rs)
            forEachVector(0..<m, { i in store16(o + i, rsV * (load16(g + i) - mgV - load16(xh + i) * mgxV)) },
                          tail: { i in o[i] = rs * (g[i] - mg - xh[i] * mgx) })
        }
    }
}

extension Tensor {
    /// x: (N, C, ...), weight, bias: (C); groups divides C.
    // y = xhat * w[c] + b[c] with xhat normalised over each (n, group);
    // dw = sum g xhat, db = sum g, dx = normalizeRowsBackward(g w)
    public static func groupNorm(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?,
                                 eps: Float = 1e-5) throws -> Tensor {
        guard x.rank >= 2, groups > 0, x.shape[1] % groups == 0 else {
            throw TensorError("group_norm: \(groups) groups do not divide the channels of input "
                              + "\(Shape.describe(x.shape))")
        }
        let (n, c) = (x.shape[0], x.shape[1])
        let spatial = x.count / Swift.max(n * c, 1)
        for p in [weight, bias].compactMap({ $0 }) where p.shape != [c] {
            throw TensorError("group_norm: affine parameter \(Shape.describe(p.shape)) does not match \(c) channels of "
                              + "input \(Shape.describe(x.shape))")
        }
        let rows = n * groups, m = (c / groups) * spatial
        let xhat = Tensor(uninitialized: x.shape)
        let rstd = normalizeRows(xhat.data, x.data, rows: rows, m: m, eps: eps)
        let out = Tensor(uninitialized: x.shape)
        for b in 0..<n { for ch in 0..<c {
            let w = weight?.data[ch] ?? 1, bb = bias?.data[ch] ?? 0
            let off = (b * c + ch) * spatial
            let p = xhat.data + off, q = out.data + off
            for i in 0..<spatial { q[i] = p[i] * w + bb }
        } }
        let sw = weight?.detached()
        let inputs = [x] + [weight, bias].compactMap { $0 }
        return out.recorded(.groupNorm, inputs) { g in
            var gw: Tensor?, gb: Tensor?
            if let weight, weight.requiresGrad { gw = Tensor(zeros: [c]) }
            if let bias, bias.requiresGrad { gb = Tensor(zeros: [c]) }
            let gxhat = Tensor(uninitialized: g.shape)
            for b in 0..<n { for ch in 0..<c {
                let off = (b * c + ch) * spatial
                let gp = g.data + off, xp = xhat.data + off, q = gxhat.data + off
                let w = sw?.data[ch] ?? 1
                var sg: Float = 0, sgx: Float = 0
                for i in 0..<spatial { sg += gp[i]; sgx += gp[i] * xp[i]; q[i] = gp[i] * w }
                gw?.data[ch] += sgx
                gb?.data[ch] += sg
            } }
            var gx: Tensor?
            if x.requiresGrad {
                let t = Tensor(uninitialized: x.shape)
                normalizeRowsBackward(t.data, gxhat.data, xhat.data, rstd, rows: rows, m: m)
                gx = t
            }
            var grads: [Tensor?] = [gx]
            if weight != nil { grads.append(gw) }
            if bias != nil { grads.append(gb) }
            return grads
        }
    }

    /// w: (O, ...) -> each output filter standardised over its other dims (biased variance).
    // y = (w - mean) / sqrt(var + eps); dw = normalizeRowsBackward(g)
    public func weightStandardized(eps: Float = 1e-5) throws -> Tensor {
        guard rank >= 2 else {
            throw TensorError("weight_standardize: weight \(Shape.describe(shape)) needs rank >= 2 (out, in, ...)")
        }
        let rows = shape[0], m = count / Swift.max(rows, 1)
        let out = Tensor(uninitialized: shape)
        let rstd = normalizeRows(out.data, data, rows: rows, m: m, eps: eps)
        let saved = out.detached()
        return out.recorded(.weightStandardize, [self]) { g in
            let gw = Tensor(uninitialized: saved.shape)
            normalizeRowsBackward(gw.data, g.data, saved.data, rstd, rows: rows, m: m)
            return [gw]
        }
    }
}

extension Tensor {
    /// The U-Net's Block tail in one pass: GroupNorm with affine, optional per-sample modulation
    /// x * (scale + 1) + shift, then SiLU, then an optional residual added. x and residual:
    /// (N, C, ...), weight/bias: (C), scale/shift: (N, C) or (N, C, 1, 1). Equal to the
    /// composition of groupNorm, `*`, `+` and silu (tested), with one read and one write of x
    /// instead of five passes (seven with the residual).
    // h = (xhat w + b)(1 + s) + t, y = silu(h) + r; dh = dy silu'(h); dt = sum dh; ds = sum dh (xhat w + b);
    // dw = sum dh (1+s) xhat; db = sum dh (1+s); dx = normalizeRowsBackward(dh (1+s) w); dr = dy
    public static func groupNormSiLU(_ x: Tensor, groups: Int, weight: Tensor, bias: Tensor,
                                     scale: Tensor? = nil, shift: Tensor? = nil, residual: Tensor? = nil,
                                     eps: Float = 1e-5) throws -> Tensor {
        guard x.rank >= 2, groups > 0, x.shape[1] % groups == 0 else {
            throw TensorError("group_norm_silu: \(groups) groups do not divide the channels of input "
                              + "\(Shape.describe(x.shape))")
        }
        let (n, c) = (x.shape[0], x.shape[1])
        let spatial = x.count / Swift.max(n * c, 1)
        guard weight.shape == [c], bias.shape == [c] else {
            throw TensorError("group_norm_silu: affine parameters \(Shape.describe(weight.shape)), "
                              + "\(Shape.describe(bias.shape)) do not match \(c) channels")
        }
        for m in [scale, shift].compactMap({ $0 }) where m.count != n * c || m.shape.first != n {
            throw TensorError("group_norm_silu: modulation \(Shape.describe(m.shape)) is not (\(n), \(c))")
        }
        if let residual, residual.shape != x.shape {
            throw TensorError("group_norm_silu: residual \(Shape.describe(residual.shape)) does not match input "
                              + "\(Shape.describe(x.shape))")
        }
        let rows = n * groups, m = (c / groups) * spatial
        var inputs = [x, weight, bias]
        if let scale { inputs.append(scale) }
        if let shift { inputs.append(shift) }
        if let residual { inputs.append(residual) }
        let (w, b, s, t, res) = (weight.data, bias.data, scale?.data, shift?.data, residual?.data)
        let out = Tensor(uninitialized: x.shape)
        if !GradMode.shouldRecord(inputs) {
            // Sampling: no xhat to keep for a backward, so y = silu(x a + a0) straight from x,
            // with the row's mean and rstd folded into a and a0 (3 passes over x instead of 5).
            let perGroup = c / groups
            Parallel.ranges(rows, grain: Swift.max(1, (1 << 14) / Swift.max(m, 1))) { range in
                for row in range {
                    let (mean, rstd) = rowStatistics(x.data + row * m, m: m, eps: eps)
                    for nc in (row * perGroup)..<((row + 1) * perGroup) {
                        let ch = nc % c
                        let k = s.map { 1 + $0[nc] } ?? 1
                        let a = w[ch] * k * rstd, a0 = b[ch] * k + (t?[nc] ?? 0) - mean * a
                        siluAffine(out.data + nc * spatial, x.data + nc * spatial, count: spatial, a, a0,
                                   plus: res.map { $0 + nc * spatial })
                    }
                }
            }
            return out
        }
        // Training: xhat is kept for the backward; y is written from each group's xhat right
        // after it (the group is still in cache).
        let xhat = Tensor(uninitialized: x.shape), rowRstd = Tensor(uninitialized: [rows])
        let perGroup = c / groups, grain = Swift.max(1, (1 << 14) / Swift.max(m, 1))
        Parallel.ranges(rows, grain: grain) { range in
            for row in range {
                rowRstd.data[row] = normalizeRow(xhat.data + row * m, x.data + row * m, m: m, eps: eps)
                for nc in (row * perGroup)..<((row + 1) * perGroup) {
                    let ch = nc % c
                    let k = s.map { 1 + $0[nc] } ?? 1
                    let a = w[ch] * k, a0 = b[ch] * k + (t?[nc] ?? 0)  // h = xhat a + a0
                    siluAffine(out.data + nc * spatial, xhat.data + nc * spatial, count: spatial, a, a0,
                               plus: res.map { $0 + nc * spatial })
                }
            }
        }
        let (sw, sb) = (weight.detached(), bias.detached())
        let (ss, st) = (scale?.detached(), shift?.detached())
        return out.recorded(.groupNormSiLU, inputs) { g in
            let gs = Tensor(uninitialized: [n, c]), gt = Tensor(uninitialized: [n, c])
            // per (n, c), summed over n below
            let gwn = Tensor(uninitialized: [n, c]), gbn = Tensor(uninitialized: [n, c])
            let gx = x.requiresGrad ? Tensor(uninitialized: x.shape) : nil
            let (w, b) = (sw.data, sb.data)
            // Per group: dh and d xhat = dh a channel by channel (with the sums the parameter
            // gradients need, which also give the group's mean(d xhat) and mean(d xhat xhat)),
            // then dx = rstd (d xhat - mean(d xhat) - xhat mean(d xhat xhat)) while the group is
            // still in cache. d xhat goes through gx's own memory.
            let gxhat = gx ?? Tensor(uninitialized: x.shape)
            Parallel.ranges(rows, grain: grain) { range in
                for row in range {
                    var sumGx: Double = 0, sumGxX: Double = 0
                    let base = gxhat.data + row * m
                    for (channelInGroup, nc) in ((row * perGroup)..<((row + 1) * perGroup)).enumerated() {
                        let ch = nc % c
                        let k = ss.map { 1 + $0.data[nc] } ?? 1
                        let a = w[ch] * k, a0 = b[ch] * k + (st?.data[nc] ?? 0)
                        let p = xhat.data + nc * spatial, gp = g.data + nc * spatial
                        let q = base + channelInGroup * spatial
                        var sdh = Vec(), sdhx = Vec()
                        var sdhS: Float = 0, sdhxS: Float = 0
                        forEachVector(0..<spatial) { i in
                            let xh = load16(p + i)
                            let h = xh * a + a0
                            let sg = 1 / (1 + exp16(-h))
                            let dh = load16(gp + i) * sg * (1 + h * (1 - sg))
                            sdh += dh
                            sdhx += dh * xh
                            store16(q + i, dh * a)
                        } tail: { i in
                            let xh = p[i]
                            let h = xh * a + a0
                            let sg = 1 / (1 + Foundation.exp(-h))
                            let dh = gp[i] * sg * (1 + h * (1 - sg))
                            sdhS += dh
                            sdhxS += dh * xh
                            q[i] = dh * a
                        }
                        let sumDh = sdh.sum() + sdhS, sumDhX = sdhx.sum() + sdhxS
                        gt.data[nc] = sumDh
                        gs.data[nc] = w[ch] * sumDhX + b[ch] * sumDh     // sum dh (xhat w + b)
                        gwn.data[nc] = k * sumDhX
                        gbn.data[nc] = k * sumDh
                        sumGx += Double(a * sumDh)
                        sumGxX += Double(a * sumDhX)
                    }
                    guard gx != nil else { continue }
                    let mg = Float(sumGx / Double(m)), mgx = Float(sumGxX / Double(m)), rs = rowRstd.data[row]
                    let mgV = Vec(repeating: mg), mgxV = Vec(repeating: mgx), rsV = Vec(repeating: rs)
                    let xh = xhat.data + row * m
                    forEachVector(0..<m, { i in
                        store16(base + i, rsV * (load16(base + i) - mgV - load16(xh + i) * mgxV))
                    }, tail: { i in base[i] = rs * (base[i] - mg - xh[i] * mgx) })
                }
            }
            let gw = Tensor(zeros: [c]), gb = Tensor(zeros: [c])
            for nc in 0..<(n * c) { gw.data[nc % c] += gwn.data[nc]; gb.data[nc % c] += gbn.data[nc] }
            var grads: [Tensor?] = [gx, weight.requiresGrad ? gw : nil, bias.requiresGrad ? gb : nil]
            if let scale { grads.append(scale.requiresGrad ? Tensor(storage: gs.storage, shape: scale.shape) : nil) }
            if let shift { grads.append(shift.requiresGrad ? Tensor(storage: gt.storage, shape: shift.shape) : nil) }
            if let residual { grads.append(residual.requiresGrad ? g : nil) }
            return grads
        }
    }
}
