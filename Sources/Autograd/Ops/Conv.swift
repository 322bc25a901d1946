// Convolutions as im2col + ONE sgemm over the whole batch, and transposed convolution as the
// same two pieces in the other order (sgemm, then col2im).

/// The geometry shared by im2col and col2im: an image (n, c, h, w) seen through a (kh, kw)
/// window with stride and zero padding, giving an (oh, ow) grid of window positions.
struct ConvGeometry {
    let n, c, h, w, kh, kw, stride, pad, oh, ow: Int
    var colRows: Int { c * kh * kw }
    var colCols: Int { n * oh * ow }

    init(n: Int, c: Int, h: Int, w: Int, kh: Int, kw: Int, stride: Int, pad: Int) {
        self.n = n; self.c = c; self.h = h; self.w = w
        self.kh = kh; self.kw = kw; self.stride = stride; self.pad = pad
        oh = (h + 2 * pad - kh) / stride + 1
        ow = (w + 2 * pad - kw) / stride + 1
    }

    /// cols: (c*kh*kw, n*oh*ow) <- x: (n, c, h, w); row (ci, i, j), column (b, oy, ox).
    func im2col(_ cols: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>) {
        let plane = oh * ow
        // channels write disjoint row blocks: split them across the cores
        Parallel.ranges(c, grain: max(1, c / Parallel.workers)) { channels in
        for ci in channels {
            for i in 0..<kh {
                for j in 0..<kw {
                    let row = cols + ((ci * kh + i) * kw + j) * colCols
                    for b in 0..<n {
                        let src = x + (b * c + ci) * h * w
                        let dst = row + b * plane
                        for oy in 0..<oh {
                            let iy = oy * stride - pad + i
                            let d = dst + oy * ow
                            guard iy >= 0 && iy < h else { d.update(repeating: 0, count: ow); continue }
                            let s = src + iy * w
                            if stride == 1 {
                                // ix = ox - pad + j: valid for ox in [lo, hi)
                                let lo = Swift.max(0, pad - j), hi = Swift.min(ow, w + pad - j)
                                if lo > 0 { d.update(repeating: 0, count: Swift.min(lo, ow)) }
                                if hi > lo { (d + lo).update(from: s + (lo - pad + j), count: hi - lo) }
                                if hi < ow { (d + Swift.max(hi, 0)).update(repeating: 0, count: ow - Swift.max(hi, 0)) }
                            } else {
                                for ox in 0..<ow {
                                    let ix = ox * stride - pad + j
                                    d[ox] = ix >= 0 && ix < w ? s[ix] : 0
                                }
                            }
                        }
                    }
                }
            }
        }
        }
    }

    /// x: (n, c, h, w) = sum of cols scattered back to their pixels (x is zeroed first).
    func col2im(_ x: UnsafeMutablePointer<Float>, _ cols: UnsafePointer<Float>) {
        let plane = oh * ow
        Parallel.ranges(c, grain: max(1, c / Parallel.workers)) { channels in
        for b in 0..<n { for ci in channels { (x + (b * c + ci) * h * w).update(repeating: 0, count: h * w) } }
        for ci in channels {
            for i in 0..<kh {
                for j in 0..<kw {
                    let row = cols + ((ci * kh + i) * kw + j) * colCols
                    for b in 0..<n {
                        let dst = x + (b * c + ci) * h * w
                        let src = row + b * plane
                        for oy in 0..<oh {
                            let iy = oy * stride - pad + i
                            guard iy >= 0 && iy < h else { continue }
                            let d = dst + iy * w, s = src + oy * ow
                            if stride == 1 {
                                let lo = Swift.max(0, pad - j), hi = Swift.min(ow, w + pad - j)
                                if hi > lo { for ox in lo..<hi { d[ox - pad + j] += s[ox] } }
                            } else {
                                for ox in 0..<ow {
                                    let ix = ox * stride - pad + j
                                    if ix >= 0 && ix < w { d[ix] += s[ox] }
                                }
                            }
                        }
                    }
                }
            }
        }
        }
    }
}

/// (c, n, plane) <-> (n, c, plane) with an optional per-c bias added on the way.
@inline(__always)
func swapLeadingDims(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ a: Int, _ b: Int, _ plane: Int, bias: UnsafePointer<Float>? = nil) {
    // src is (a, b, plane); dst becomes (b, a, plane); bias indexed by a.
    Parallel.ranges(a, grain: max(1, a / Parallel.workers)) { rows in
    for i in rows {
        let add = bias?[i] ?? 0
        for j in 0..<b {
            let s = src + (i * b + j) * plane, d = dst + (j * a + i) * plane
            if add == 0 { d.update(from: s, count: plane) } else { for p in 0..<plane { d[p] = s[p] + add } }
        }
    }
    }
}

extension Tensor {
    /// x: (N, C, H, W), weight: (O, C, kh, kw), bias: (O) -> (N, O, oh, ow)
    // y = W * cols(x) + b; dW = g cols^T, db = sum g, dx = col2im(W^T g)
    public static func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Int = 0) throws -> Tensor {
        guard x.rank == 4, weight.rank == 4, x.shape[1] == weight.shape[1] else {
            throw TensorError("conv2d: input \(Shape.describe(x.shape)) does not match weight \(Shape.describe(weight.shape)) (expected input (N, \(weight.rank == 4 ? weight.shape[1] : 0), H, W))")
        }
        guard stride >= 1, padding >= 0 else { throw TensorError("conv2d: stride \(stride) and padding \(padding) must be >= 1 and >= 0") }
        let o = weight.shape[0]
        if let bias, bias.shape != [o] {
            throw TensorError("conv2d: bias \(Shape.describe(bias.shape)) does not match weight \(Shape.describe(weight.shape))")
        }
        let geo = ConvGeometry(n: x.shape[0], c: x.shape[1], h: x.shape[2], w: x.shape[3],
                               kh: weight.shape[2], kw: weight.shape[3], stride: stride, pad: padding)
        guard geo.oh > 0, geo.ow > 0 else {
            throw TensorError("conv2d: kernel \(geo.kh)x\(geo.kw) with padding \(padding) does not fit input \(Shape.describe(x.shape))")
        }
        let plane = geo.oh * geo.ow
        let cols = Tensor(uninitialized: [geo.colRows, geo.colCols])
        geo.im2col(cols.data, x.data)
        let y2 = Tensor(uninitialized: [o, geo.colCols])
        BLAS.sgemm(y2.data, weight.data, cols.data, m: o, n: geo.colCols, k: geo.colRows)
        let out = Tensor(uninitialized: [geo.n, o, geo.oh, geo.ow])
        swapLeadingDims(out.data, y2.data, o, geo.n, plane, bias: bias?.data)
        let (sx, sw) = (x.detached(), weight.detached())
        let inputs = [x, weight] + (bias.map { [$0] } ?? [])
        return out.recorded("conv2d", inputs) { g in
            let g2 = Tensor(uninitialized: [o, geo.colCols])
            swapLeadingDims(g2.data, g.data, geo.n, o, plane)
            var grads: [Tensor?] = [nil, nil]
            if weight.requiresGrad {
                let cols = Tensor(uninitialized: [geo.colRows, geo.colCols])  // recomputed: saves memory
                geo.im2col(cols.data, sx.data)
                let gw = Tensor(uninitialized: sw.shape)
                BLAS.sgemm(gw.data, g2.data, cols.data, m: o, n: geo.colRows, k: geo.colCols, transB: true)
                grads[1] = gw
            }
            if x.requiresGrad {
                let gcols = Tensor(uninitialized: [geo.colRows, geo.colCols])
                BLAS.sgemm(gcols.data, sw.data, g2.data, m: geo.colRows, n: geo.colCols, k: o, transA: true)
                let gx = Tensor(uninitialized: sx.shape)
                geo.col2im(gx.data, gcols.data)
                grads[0] = gx
            }
            if let bias { grads.append(bias.requiresGrad ? g2.rowSums() : nil) }
            return grads
        }
    }

    /// x: (N, Cin, H, W), weight: (Cin, Cout, k, k) (PyTorch layout), bias: (Cout)
    /// -> (N, Cout, (H-1)*stride - 2*padding + k, ...)
    // y = col2im(W^T x) + b; dx = W im2col(g), dW = x im2col(g)^T, db = sum g
    public static func convTranspose2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Int = 0) throws -> Tensor {
        guard x.rank == 4, weight.rank == 4, x.shape[1] == weight.shape[0] else {
            throw TensorError("conv_transpose2d: input \(Shape.describe(x.shape)) does not match weight \(Shape.describe(weight.shape)) (expected input (N, \(weight.rank == 4 ? weight.shape[0] : 0), H, W))")
        }
        guard stride >= 1, padding >= 0 else { throw TensorError("conv_transpose2d: stride \(stride) and padding \(padding) must be >= 1 and >= 0") }
        let (n, cin, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (cout, kh, kw) = (weight.shape[1], weight.shape[2], weight.shape[3])
        if let bias, bias.shape != [cout] {
            throw TensorError("conv_transpose2d: bias \(Shape.describe(bias.shape)) does not match weight \(Shape.describe(weight.shape))")
        }
        let oh = (h - 1) * stride - 2 * padding + kh, ow = (w - 1) * stride - 2 * padding + kw
        guard oh > 0, ow > 0 else {
            throw TensorError("conv_transpose2d: output size \(oh)x\(ow) for input \(Shape.describe(x.shape)) is empty")
        }
        // The output is the "input image" of a convolution whose window grid is (h, w).
        let geo = ConvGeometry(n: n, c: cout, h: oh, w: ow, kh: kh, kw: kw, stride: stride, pad: padding)
        guard geo.oh == h, geo.ow == w else {
            throw TensorError("conv_transpose2d: unsupported geometry for input \(Shape.describe(x.shape)), kernel \(kh)x\(kw), stride \(stride), padding \(padding)")
        }
        let x2 = Tensor(uninitialized: [cin, n * h * w])
        swapLeadingDims(x2.data, x.data, n, cin, h * w)
        let cols = Tensor(uninitialized: [geo.colRows, geo.colCols])
        BLAS.sgemm(cols.data, weight.data, x2.data, m: geo.colRows, n: geo.colCols, k: cin, transA: true)
        let out = Tensor(uninitialized: [n, cout, oh, ow])
        geo.col2im(out.data, cols.data)
        if let bias {
            for b in 0..<n { for c in 0..<cout {
                let p = out.data + (b * cout + c) * oh * ow, v = bias.data[c]
                for i in 0..<(oh * ow) { p[i] += v }
            } }
        }
        let sw = weight.detached()
        let inputs = [x, weight] + (bias.map { [$0] } ?? [])
        return out.recorded("conv_transpose2d", inputs) { g in
            let gcols = Tensor(uninitialized: [geo.colRows, geo.colCols])
            geo.im2col(gcols.data, g.data)
            var grads: [Tensor?] = [nil, nil]
            if x.requiresGrad {
                let gx2 = Tensor(uninitialized: [cin, n * h * w])
                BLAS.sgemm(gx2.data, sw.data, gcols.data, m: cin, n: geo.colCols, k: geo.colRows)
                let gx = Tensor(uninitialized: [n, cin, h, w])
                swapLeadingDims(gx.data, gx2.data, cin, n, h * w)
                grads[0] = gx
            }
            if weight.requiresGrad {
                let gw = Tensor(uninitialized: sw.shape)
                BLAS.sgemm(gw.data, x2.data, gcols.data, m: cin, n: geo.colRows, k: geo.colCols, transB: true)
                grads[1] = gw
            }
            if let bias {
                guard bias.requiresGrad else { grads.append(nil); return grads }
                let gb = Tensor(zeros: [cout])
                for b in 0..<n { for c in 0..<cout {
                    let p = g.data + (b * cout + c) * oh * ow
                    var acc: Float = 0
                    for i in 0..<(oh * ow) { acc += p[i] }
                    gb.data[c] += acc
                } }
                grads.append(gb)
            }
            return grads
        }
    }

    /// Sum of each row of a 2-D tensor: (r, c) -> (r).
    func rowSums() -> Tensor {
        let (r, c) = (shape[0], count / Swift.max(shape[0], 1))
        let out = Tensor(uninitialized: [r])
        for i in 0..<r {
            var acc: Float = 0
            let p = data + i * c
            for j in 0..<c { acc += p[j] }
            out.data[i] = acc
        }
        return out
    }
}
