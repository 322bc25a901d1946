// Convolutions as im2col + sgemm, and transposed convolution as the same two pieces in the other
// order (sgemm, then col2im). The batch is cut into blocks of whole images with about 1024 GEMM
// columns each, so that a block's im2col buffer stays in L2 and its sgemm compute-bound (a
// whole-batch buffer, 75 MB for 32 channels at 32x32 and batch 64, would make it memory-bound).

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

    /// A 1x1 convolution with stride 1 and no padding: its columns are the input itself.
    var isPointwise: Bool { kh == 1 && kw == 1 && stride == 1 && pad == 0 }

    /// The (c*kh*kw, count*oh*ow) columns of `count` images starting at x: im2col into `cols`,
    /// or for a pointwise convolution x itself (one image) or its (c, count, plane) transpose.
    func columns(_ cols: UnsafeMutablePointer<Float>, _ x: UnsafeMutablePointer<Float>,
                 count: Int) -> UnsafeMutablePointer<Float> {
        if isPointwise {
            if count == 1 { return x }
            swapLeadingDims(cols, x, count, c, h * w)
            return cols
        }
        block(count).im2col(cols, x)
        return cols
    }

    /// cols: (c*kh*kw, n*oh*ow) <- x: (n, c, h, w); row (ci, i, j), column (b, oy, ox).
    func im2col(_ cols: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>) {
        if isUpsample2x { upsampleIm2col(cols, x) } else { im2colLoops(cols, x) }
    }

    /// x: (n, c, h, w) = sum of cols scattered back to their pixels, plus bias[c] when given
    /// (added to each image plane while it is still in cache).
    func col2im(_ x: UnsafeMutablePointer<Float>, _ cols: UnsafePointer<Float>, bias: UnsafePointer<Float>? = nil) {
        if isUpsample2x { upsampleCol2im(x, cols, bias: bias); return }
        col2imLoops(x, cols)
        guard let bias else { return }
        for b in 0..<n { for ci in 0..<c { addToPlane(x + (b * c + ci) * h * w, bias[ci], count: h * w) } }
    }

    /// im2col for any geometry, one window tap at a time (the reference for the fast paths).
    func im2colLoops(_ cols: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>) {
        let plane = oh * ow
        for ci in 0..<c {
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

    /// col2im for any geometry (x is zeroed first), one window tap at a time.
    func col2imLoops(_ x: UnsafeMutablePointer<Float>, _ cols: UnsafePointer<Float>) {
        let plane = oh * ow
        x.update(repeating: 0, count: n * c * h * w)
        for ci in 0..<c {
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

    /// The same geometry for `count` images (a block of the batch).
    func block(_ count: Int) -> ConvGeometry {
        ConvGeometry(n: count, c: c, h: h, w: w, kh: kh, kw: kw, stride: stride, pad: pad)
    }
}

/// (c, n, plane) <-> (n, c, plane) with an optional per-c bias added on the way.
@inline(__always)
func swapLeadingDims(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ a: Int, _ b: Int, _ plane: Int,
                     bias: UnsafePointer<Float>? = nil) {
    // src is (a, b, plane); dst becomes (b, a, plane); bias indexed by a.
    for i in 0..<a {
        let add = bias?[i] ?? 0
        for j in 0..<b {
            let s = src + (i * b + j) * plane, d = dst + (j * a + i) * plane
            if add == 0 { d.update(from: s, count: plane) } else { for p in 0..<plane { d[p] = s[p] + add } }
        }
    }
}

/// A block of `count` images (count, channels, plane) as a (channels, count*plane) GEMM operand:
/// the NCHW slice itself for one image, else transposed into `buffer`.
@inline(__always)
func channelMajor(_ src: UnsafeMutablePointer<Float>, count: Int, channels: Int, plane: Int,
                  buffer: UnsafeMutablePointer<Float>) -> UnsafeMutablePointer<Float> {
    if count == 1 { return src }
    swapLeadingDims(buffer, src, count, channels, plane)
    return buffer
}

/// Splits a batch of `n` images with `plane` output pixels each into blocks of whole images with
/// about ~1024 GEMM columns, so each block's im2col buffer stays in L2 and its GEMM is still
/// large. Each core takes an equal share of the images (to one image), cut into `blockRounds`
/// blocks, one single-threaded sgemm each; each worker gets `scratch`.
@inline(__always)
func forEachImageBlock<S>(n: Int, plane: Int, scratch: () -> S,
                          _ body: (_ worker: Int, _ first: Int, _ count: Int, _ scratch: S) -> Void) {
    guard n > 0 else { return }
    let workers = Swift.min(Parallel.workers, n), rounds = blockRounds(n: n, plane: plane)
    Parallel.run(workers) { w in
        let lo = n * w / workers, share = n * (w + 1) / workers - lo
        guard share > 0 else { return }
        let s = scratch()  // per worker; Tensors return their buffers to the pool when done
        for r in 0..<rounds {
            let first = lo + share * r / rounds, next = lo + share * (r + 1) / rounds
            if next > first { body(w, first, next - first, s) }
        }
    }
}

/// Blocks per core: enough that a block holds about ~1024 GEMM columns (its im2col buffer stays
/// in L2) and no more.
@inline(__always)
func blockRounds(n: Int, plane: Int) -> Int {
    let wanted = Swift.max(1, (1024 + plane - 1) / Swift.max(plane, 1))
    return Swift.max(1, (n + wanted * Parallel.workers - 1) / (wanted * Parallel.workers))
}

/// The largest block forEachImageBlock hands out (for sizing scratch).
@inline(__always)
func imagesPerBlock(n: Int, plane: Int) -> Int {
    let perCore = (n + Parallel.workers - 1) / Parallel.workers
    let rounds = blockRounds(n: n, plane: plane)
    return Swift.max(1, (perCore + rounds - 1) / rounds)
}

/// p[0..<count] += v.
func addToPlane(_ p: UnsafeMutablePointer<Float>, _ v: Float, count: Int) {
    let vv = Vec(repeating: v)
    forEachVector(0..<count, { store16(p + $0, load16(p + $0) + vv) }, tail: { p[$0] += v })
}

/// Per-worker partial sums (weight and bias gradients), added up after the parallel region.
final class Partials {
    let parts: [Tensor]
    init(shape: [Int], workers: Int = Parallel.workers) { parts = (0..<workers).map { _ in Tensor(zeros: shape) } }
    func total() -> Tensor {
        let out = parts[0]
        guard parts.count > 1 else { return out }
        Parallel.ranges(out.count) { r in
            for p in parts.dropFirst() { for i in r { out.data[i] += p.data[i] } }
        }
        return out
    }
}

/// Adds the row sums of a (rows, cols) block to acc (rows) (the bias gradients), in vectors: a
/// serial float sum does one add per 4 cycles.
func addRowSums(_ acc: UnsafeMutablePointer<Float>, _ m: UnsafePointer<Float>, rows: Int, cols: Int) {
    for r in 0..<rows {
        let p = m + r * cols
        acc[r] += Float(rowSum(cols, { load16(p + $0) }, { p[$0] }))
    }
}

extension Tensor {
    /// x: (N, C, H, W), weight: (O, C, kh, kw), bias: (O) -> (N, O, oh, ow)
    // y = W * cols(x) + b; dW = g cols^T, db = sum g, dx = col2im(W^T g)
    /// `winograd: false` forces im2col + sgemm where Winograd would apply (the reference path:
    /// KernelTests and `bench --what ops` compare the two).
    public static func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Int = 0,
                              winograd: Bool = true) throws -> Tensor {
        guard x.rank == 4, weight.rank == 4, x.shape[1] == weight.shape[1] else {
            throw TensorError("conv2d: input \(Shape.describe(x.shape)) does not match weight "
                              + "\(Shape.describe(weight.shape)) "
                              + "(expected input (N, \(weight.rank == 4 ? weight.shape[1] : 0), H, W))")
        }
        guard stride >= 1, padding >= 0 else {
            throw TensorError("conv2d: stride \(stride) and padding \(padding) must be >= 1 and >= 0")
        }
        let o = weight.shape[0]
        if let bias, bias.shape != [o] {
            throw TensorError("conv2d: bias \(Shape.describe(bias.shape)) does not match weight "
                              + "\(Shape.describe(weight.shape))")
        }
        let geo = ConvGeometry(n: x.shape[0], c: x.shape[1], h: x.shape[2], w: x.shape[3],
                               kh: weight.shape[2], kw: weight.shape[3], stride: stride, pad: padding)
        guard geo.oh > 0, geo.ow > 0 else {
            throw TensorError("conv2d: kernel \(geo.kh)x\(geo.kw) with padding \(padding) does not fit input "
                              + "\(Shape.describe(x.shape))")
        }
        let plane = geo.oh * geo.ow, rowsK = geo.colRows
        let out = Tensor(uninitialized: [geo.n, o, geo.oh, geo.ow])
        let precision = Precision.current  // forward and backward products
        let chw = geo.c * geo.h * geo.w
        let useWinograd = winograd
            && winogradApplies(c: geo.c, o: o, h: geo.h, w: geo.w, kh: geo.kh, kw: geo.kw, stride: stride, pad: padding)
        if useWinograd {
            let block = WinogradBlock(c: geo.c, o: o, h: geo.h, w: geo.w)
            let u = winogradFilters(weight)
            forEachImageBlock(n: geo.n, plane: block.blockPlane, scratch: { () -> (Tensor, Tensor, Tensor) in
                let per = imagesPerBlock(n: geo.n, plane: block.blockPlane)
                return (Tensor(uninitialized: [block.rowTransformedCount]),
                        Tensor(uninitialized: [block.transformedCount(per)]),
                        Tensor(uninitialized: [block.productCount(per)]))
            }) { _, first, count, s in
                winogradConv3x3(out.data + first * o * plane, x.data + first * chw, filters: u.data, bias: bias?.data,
                                images: count, geometry: block, rowTransformed: s.0.data, transformed: s.1.data,
                                products: s.2.data, precision: precision)
            }
        } else {
            // Blocks of whole images: im2col into an L2-sized buffer, one sgemm per block written
            // straight into NCHW (one image) or through a small transpose (several small images).
            forEachImageBlock(n: geo.n, plane: plane, scratch: { () -> (Tensor, Tensor) in
                let per = imagesPerBlock(n: geo.n, plane: plane)
                return (Tensor(uninitialized: [rowsK, per * plane]), Tensor(uninitialized: [o, per * plane]))
            }) { _, first, count, buffers in
                let (cols, ybuf) = buffers
                let columns = geo.columns(cols.data, x.data + first * chw, count: count)
                let dst = out.data + first * o * plane
                if count == 1 {
                    BLAS.gemmSerial(precision, dst, weight.data, columns, m: o, n: plane, k: rowsK)
                    if let bias {
                        for c in 0..<o {
                            let v = bias.data[c], p = dst + c * plane
                            for i in 0..<plane { p[i] += v }
                        }
                    }
                } else {
                    BLAS.gemmSerial(precision, ybuf.data, weight.data, columns, m: o, n: count * plane, k: rowsK)
                    swapLeadingDims(dst, ybuf.data, o, count, plane, bias: bias?.data)
                }
            }
        }
        let (sx, sw) = (x.detached(), weight.detached())
        let inputs = [x, weight] + (bias.map { [$0] } ?? [])
        return out.recorded(.conv2d, inputs) { g in
            let wantW = weight.requiresGrad, wantX = x.requiresGrad, wantB = bias?.requiresGrad ?? false
            let gb = Partials(shape: [o])
            let gx = wantX ? Tensor(uninitialized: sx.shape) : nil
            var gw: Tensor?
            if useWinograd {
                // dW in Winograd form from x's and dY's transformed tiles; dX = conv3x3(dY, the
                // filters transposed and flipped), both by Winograd.
                let forward = WinogradBlock(c: geo.c, o: o, h: geo.h, w: geo.w)
                let backward = WinogradBlock(c: o, o: geo.c, h: geo.h, w: geo.w)
                let u = wantX ? winogradFilters(flippedTransposedFilters(sw)) : nil
                let gu = Partials(shape: wantW ? [16, o, geo.c] : [1])
                forEachImageBlock(n: geo.n, plane: forward.blockPlane, scratch: { () -> (Tensor, Tensor, Tensor) in
                    let per = imagesPerBlock(n: geo.n, plane: forward.blockPlane)
                    let rows = Swift.max(forward.rowTransformedCount, backward.rowTransformedCount)
                    let transformed = Swift.max(forward.transformedCount(per), backward.transformedCount(per))
                    let products = Swift.max(forward.productCount(per), backward.productCount(per))
                    return (Tensor(uninitialized: [rows]), Tensor(uninitialized: [transformed]),
                            Tensor(uninitialized: [products]))
                }) { w, first, count, s in
                    let dy = g.data + first * o * plane
                    if wantB {
                        for b in 0..<count { addRowSums(gb.parts[w].data, dy + b * o * plane, rows: o, cols: plane) }
                    }
                    if wantW {
                        winogradFilterGradientAccumulate(gu.parts[w].data, sx.data + first * chw, dy, images: count,
                                                         geometry: forward, rowTransformed: s.0.data,
                                                         transformed: s.1.data, products: s.2.data,
                                                         precision: precision)
                    }
                    if let gx, let u {
                        winogradConv3x3(gx.data + first * chw, dy, filters: u.data, bias: nil, images: count,
                                        geometry: backward, rowTransformed: s.0.data, transformed: s.1.data,
                                        products: s.2.data, precision: precision)
                    }
                }
                if wantW { gw = winogradFilterGradient(gu.total(), o: o, c: geo.c) }
            } else {
                // dW accumulates transposed, (C*kh*kw, O): OpenBLAS runs that orientation faster
                // at these shapes than (O, C*kh*kw).
                let gwT = Partials(shape: [rowsK, o])
                forEachImageBlock(n: geo.n, plane: plane, scratch: { () -> (Tensor, Tensor) in
                    let per = imagesPerBlock(n: geo.n, plane: plane)
                    return (Tensor(uninitialized: [rowsK * per * plane]), Tensor(uninitialized: [o, per * plane]))
                }) { w, first, count, buffers in
                    let (cols, gbuf) = buffers
                    let g2 = channelMajor(g.data + first * o * plane, count: count, channels: o, plane: plane,
                                          buffer: gbuf.data)
                    if wantB { addRowSums(gb.parts[w].data, g2, rows: o, cols: count * plane) }
                    if wantW {
                        // the columns recomputed, not kept from the forward: saves memory
                        let columns = geo.columns(cols.data, sx.data + first * chw, count: count)
                        BLAS.gemmSerial(precision, gwT.parts[w].data, columns, g2, m: rowsK, n: o, k: count * plane,
                                        transB: true, beta: 1)
                    }
                    if let gx, geo.isPointwise, count == 1 {
                        BLAS.gemmSerial(precision, gx.data + first * chw, sw.data, g2, m: rowsK, n: plane, k: o,
                                        transA: true)
                    } else if let gx {
                        BLAS.gemmSerial(precision, cols.data, sw.data, g2, m: rowsK, n: count * plane, k: o,
                                        transA: true)
                        if geo.isPointwise { swapLeadingDims(gx.data + first * chw, cols.data, geo.c, count, plane) }
                        else { geo.block(count).col2im(gx.data + first * chw, cols.data) }
                    }
                }
                if wantW {
                    let t = gwT.total()
                    let out = Tensor(uninitialized: sw.shape)
                    for r in 0..<rowsK { for c in 0..<o { out.data[c * rowsK + r] = t.data[r * o + c] } }
                    gw = out
                }
            }
            var grads: [Tensor?] = [gx, gw]
            if bias != nil { grads.append(wantB ? gb.total() : nil) }
            return grads
        }
    }

    /// x: (N, Cin, H, W), weight: (Cin, Cout, k, k) (PyTorch layout), bias: (Cout)
    /// -> (N, Cout, (H-1)*stride - 2*padding + k, ...)
    // y = col2im(W^T x) + b; dx = W im2col(g), dW = x im2col(g)^T, db = sum g
    public static func convTranspose2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int = 1,
                                       padding: Int = 0) throws -> Tensor {
        guard x.rank == 4, weight.rank == 4, x.shape[1] == weight.shape[0] else {
            throw TensorError("conv_transpose2d: input \(Shape.describe(x.shape)) does not match weight "
                              + "\(Shape.describe(weight.shape)) "
                              + "(expected input (N, \(weight.rank == 4 ? weight.shape[0] : 0), H, W))")
        }
        guard stride >= 1, padding >= 0 else {
            throw TensorError("conv_transpose2d: stride \(stride) and padding \(padding) must be >= 1 and >= 0")
        }
        let (n, cin, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (cout, kh, kw) = (weight.shape[1], weight.shape[2], weight.shape[3])
        if let bias, bias.shape != [cout] {
            throw TensorError("conv_transpose2d: bias \(Shape.describe(bias.shape)) does not match weight "
                              + "\(Shape.describe(weight.shape))")
        }
        let oh = (h - 1) * stride - 2 * padding + kh, ow = (w - 1) * stride - 2 * padding + kw
        guard oh > 0, ow > 0 else {
            throw TensorError("conv_transpose2d: output size \(oh)x\(ow) for input \(Shape.describe(x.shape)) is empty")
        }
        // The output is the "input image" of a convolution whose window grid is (h, w).
        let geo = ConvGeometry(n: n, c: cout, h: oh, w: ow, kh: kh, kw: kw, stride: stride, pad: padding)
        guard geo.oh == h, geo.ow == w else {
            throw TensorError("conv_transpose2d: unsupported geometry for input \(Shape.describe(x.shape)), kernel "
                              + "\(kh)x\(kw), stride \(stride), padding \(padding)")
        }
        let plane = h * w, rowsK = geo.colRows, ohw = oh * ow
        let out = Tensor(uninitialized: [n, cout, oh, ow])
        let precision = Precision.current  // forward and backward products
        // Blocks of whole images: x block as (Cin, count*plane), one sgemm into the block's
        // columns, col2im into the block's output images.
        forEachImageBlock(n: n, plane: plane, scratch: { () -> (Tensor, Tensor) in
            let per = imagesPerBlock(n: n, plane: plane)
            return (Tensor(uninitialized: [rowsK, per * plane]), Tensor(uninitialized: [cin, per * plane]))
        }) { _, first, count, buffers in
            let (cols, xbuf) = buffers
            let x2 = channelMajor(x.data + first * cin * plane, count: count, channels: cin, plane: plane,
                                  buffer: xbuf.data)
            BLAS.gemmSerial(precision, cols.data, weight.data, x2, m: rowsK, n: count * plane, k: cin, transA: true)
            geo.block(count).col2im(out.data + first * cout * ohw, cols.data, bias: bias?.data)
        }
        let (sx, sw) = (x.detached(), weight.detached())
        let inputs = [x, weight] + (bias.map { [$0] } ?? [])
        return out.recorded(.convTranspose2d, inputs) { g in
            let wantW = weight.requiresGrad, wantX = x.requiresGrad, wantB = bias?.requiresGrad ?? false
            let gw = Partials(shape: sw.shape), gb = Partials(shape: [cout])
            let gx = wantX ? Tensor(uninitialized: [n, cin, h, w]) : nil
            forEachImageBlock(n: n, plane: plane, scratch: { () -> (Tensor, Tensor, Tensor) in
                let per = imagesPerBlock(n: n, plane: plane)
                return (Tensor(uninitialized: [rowsK, per * plane]), Tensor(uninitialized: [cin, per * plane]),
                        Tensor(uninitialized: [cin, per * plane]))
            }) { wk, first, count, buffers in
                let (gcols, xbuf, gxbuf) = buffers
                geo.block(count).im2col(gcols.data, g.data + first * cout * ohw)
                if wantB {
                    for b in 0..<count {
                        addRowSums(gb.parts[wk].data, g.data + (first + b) * cout * ohw, rows: cout, cols: ohw)
                    }
                }
                if let gx {
                    let dst = gx.data + first * cin * plane
                    if count == 1 {
                        BLAS.gemmSerial(precision, dst, sw.data, gcols.data, m: cin, n: plane, k: rowsK)
                    } else {
                        BLAS.gemmSerial(precision, gxbuf.data, sw.data, gcols.data, m: cin, n: count * plane, k: rowsK)
                        swapLeadingDims(dst, gxbuf.data, cin, count, plane)
                    }
                }
                if wantW {
                    let x2 = channelMajor(sx.data + first * cin * plane, count: count, channels: cin, plane: plane,
                                          buffer: xbuf.data)
                    BLAS.gemmSerial(precision, gw.parts[wk].data, x2, gcols.data, m: cin, n: rowsK, k: count * plane,
                                    transB: true, beta: 1)
                }
            }
            var grads: [Tensor?] = [gx, wantW ? gw.total() : nil]
            if bias != nil { grads.append(wantB ? gb.total() : nil) }
            return grads
        }
    }
}
