// Winograd F(2x2, 3x3) convolution (stride 1, padding 1), NCHW (Lavin & Gray 2015): each 2x2
// output tile is computed from a 4x4 input tile with 16 multiplies per (input, output) channel
// pair instead of 36, so the 3x3 convolutions do 2.25x fewer multiplies. Per block of images: the
// input is transformed to 16 (C, tiles) matrices (along the rows, then down the columns, with the
// rows stored so that a vector of 16 tiles spans several tile rows of a small image, whose tile
// rows are shorter than a vector), multiplied by the 16 transformed filter matrices (O, C) in 16
// sgemms, and the 16 (O, tiles) products are transformed back into 2x2 output tiles.
// The backward pass uses it twice: the input gradient is the same convolution of dY with the
// filters transposed and flipped, and the weight gradient is accumulated in the transformed
// domain (16 (O, C) products of dY's and x's transformed tiles, then G^T dU G), with fewer
// operations than im2col + sgemm.
// The im2col path in Conv.swift is the reference beside it (KernelTests compare them).

/// Whether the Winograd path handles this convolution: 3x3, stride 1, padding 1, even height,
/// width a multiple of 4 (whole vectors of 2, 4, 8 or 16 tiles per tile row).
func winogradApplies(c: Int, o: Int, h: Int, w: Int, kh: Int, kw: Int, stride: Int, pad: Int) -> Bool {
    kh == 3 && kw == 3 && stride == 1 && pad == 1 && h % 2 == 0 && w % 4 == 0 && c >= 1 && o >= 1
}

/// The lanes the tile transforms work in: a vector of consecutive tiles (of one tile row, or of
/// several whole tile rows of a small image), and the twice-as-wide vector of pixels under them
/// (even and odd columns interleaved).
protocol WinogradLanes: SIMD where Scalar == Float {
    /// Loads 2 * scalarCount floats and returns the even- and odd-indexed ones.
    static func deinterleave(_ p: UnsafePointer<Float>) -> (Self, Self)
    /// Stores a and b interleaved (a[0], b[0], a[1], b[1], ...) as 2 * scalarCount floats.
    static func interleave(_ a: Self, _ b: Self, to p: UnsafeMutablePointer<Float>)
    /// (first, v[0], ..., v[n - 2]) and (v[1], ..., v[n - 1], last).
    static func shiftedUp(_ v: Self, first: Float) -> Self
    static func shiftedDown(_ v: Self, last: Float) -> Self
    /// deinterleave and interleave for a vector whose lanes lie on several rows, `width` lanes
    /// (2 * width floats) per row, rows `stride` floats apart; width >= scalarCount is one row.
    static func deinterleaveRows(_ p: UnsafePointer<Float>, width: Int, stride: Int) -> (Self, Self)
    static func interleaveRows(_ a: Self, _ b: Self, width: Int, to p: UnsafeMutablePointer<Float>, stride: Int)
}

/// Lanes made of two halves (SIMD16 of two SIMD8, ...): a vector across rows narrower than it is
/// loaded and stored half by half, down to the row width.
protocol HalvableLanes: WinogradLanes {
    associatedtype Half: WinogradLanes
    var lowHalf: Half { get }
    var highHalf: Half { get }
    init(lowHalf: Half, highHalf: Half)
}

extension HalvableLanes {
    @inline(__always) static func deinterleaveRows(_ p: UnsafePointer<Float>, width: Int, stride: Int) -> (Self, Self) {
        if width >= scalarCount { return deinterleave(p) }
        let (a0, b0) = Half.deinterleaveRows(p, width: width, stride: stride)
        let (a1, b1) = Half.deinterleaveRows(p + Half.scalarCount / width * stride, width: width, stride: stride)
        return (Self(lowHalf: a0, highHalf: a1), Self(lowHalf: b0, highHalf: b1))
    }
    @inline(__always) static func interleaveRows(_ a: Self, _ b: Self, width: Int, to p: UnsafeMutablePointer<Float>,
                                                 stride: Int) {
        if width >= scalarCount { return interleave(a, b, to: p) }
        Half.interleaveRows(a.lowHalf, b.lowHalf, width: width, to: p, stride: stride)
        Half.interleaveRows(a.highHalf, b.highHalf, width: width, to: p + Half.scalarCount / width * stride,
                            stride: stride)
    }
}

// Written as element lists of two whole-vector loads: LLVM turns these into two-source permutes
// (vpermi2ps), where SIMD32's evenHalf/oddHalf are sometimes left as calls or scalar inserts.
extension SIMD16: WinogradLanes, HalvableLanes where Scalar == Float {
    @inline(__always) static func deinterleave(_ p: UnsafePointer<Float>) -> (Self, Self) {
        let a = UnsafeRawPointer(p).loadUnaligned(as: Self.self)
        let b = UnsafeRawPointer(p + 16).loadUnaligned(as: Self.self)
        return (Self(a[0], a[2], a[4], a[6], a[8], a[10], a[12], a[14],
                     b[0], b[2], b[4], b[6], b[8], b[10], b[12], b[14]),
                Self(a[1], a[3], a[5], a[7], a[9], a[11], a[13], a[15],
                     b[1], b[3], b[5], b[7], b[9], b[11], b[13], b[15]))
    }
    @inline(__always) static func interleave(_ a: Self, _ b: Self, to p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: Self(a[0], b[0], a[1], b[1], a[2], b[2], a[3], b[3],
                                                        a[4], b[4], a[5], b[5], a[6], b[6], a[7], b[7]), as: Self.self)
        UnsafeMutableRawPointer(p + 16).storeBytes(of: Self(a[8], b[8], a[9], b[9], a[10], b[10], a[11], b[11],
                                                             a[12], b[12], a[13], b[13], a[14], b[14], a[15], b[15]),
                                                   as: Self.self)
    }
    @inline(__always) static func shiftedUp(_ v: Self, first: Float) -> Self {
        Self(first, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14])
    }
    @inline(__always) static func shiftedDown(_ v: Self, last: Float) -> Self {
        Self(v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15], last)
    }
}

extension SIMD8: WinogradLanes, HalvableLanes where Scalar == Float {
    @inline(__always) static func deinterleave(_ p: UnsafePointer<Float>) -> (Self, Self) {
        let a = UnsafeRawPointer(p).loadUnaligned(as: Self.self)
        let b = UnsafeRawPointer(p + 8).loadUnaligned(as: Self.self)
        return (Self(a[0], a[2], a[4], a[6], b[0], b[2], b[4], b[6]),
                Self(a[1], a[3], a[5], a[7], b[1], b[3], b[5], b[7]))
    }
    @inline(__always) static func interleave(_ a: Self, _ b: Self, to p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: SIMD16<Float>(a[0], b[0], a[1], b[1], a[2], b[2], a[3], b[3],
                                                                 a[4], b[4], a[5], b[5], a[6], b[6], a[7], b[7]),
                                              as: SIMD16<Float>.self)
    }
    @inline(__always) static func shiftedUp(_ v: Self, first: Float) -> Self {
        Self(first, v[0], v[1], v[2], v[3], v[4], v[5], v[6])
    }
    @inline(__always) static func shiftedDown(_ v: Self, last: Float) -> Self {
        Self(v[1], v[2], v[3], v[4], v[5], v[6], v[7], last)
    }
}

extension SIMD4: WinogradLanes, HalvableLanes where Scalar == Float {
    @inline(__always) static func deinterleave(_ p: UnsafePointer<Float>) -> (Self, Self) {
        let v = UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
        return (Self(v[0], v[2], v[4], v[6]), Self(v[1], v[3], v[5], v[7]))
    }
    @inline(__always) static func interleave(_ a: Self, _ b: Self, to p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: SIMD8<Float>(a[0], b[0], a[1], b[1], a[2], b[2], a[3], b[3]),
                                              as: SIMD8<Float>.self)
    }
    @inline(__always) static func shiftedUp(_ v: Self, first: Float) -> Self { Self(first, v[0], v[1], v[2]) }
    @inline(__always) static func shiftedDown(_ v: Self, last: Float) -> Self { Self(v[1], v[2], v[3], last) }
}

extension SIMD2: WinogradLanes where Scalar == Float {
    @inline(__always) static func deinterleave(_ p: UnsafePointer<Float>) -> (Self, Self) {
        let v = UnsafeRawPointer(p).loadUnaligned(as: SIMD4<Float>.self)
        return (Self(v[0], v[2]), Self(v[1], v[3]))
    }
    @inline(__always) static func interleave(_ a: Self, _ b: Self, to p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: SIMD4<Float>(a[0], b[0], a[1], b[1]), as: SIMD4<Float>.self)
    }
    @inline(__always) static func shiftedUp(_ v: Self, first: Float) -> Self { Self(first, v[0]) }
    @inline(__always) static func shiftedDown(_ v: Self, last: Float) -> Self { Self(v[1], last) }
    @inline(__always) static func deinterleaveRows(_ p: UnsafePointer<Float>, width: Int, stride: Int) -> (Self, Self) {
        deinterleave(p)
    }
    @inline(__always) static func interleaveRows(_ a: Self, _ b: Self, width: Int, to p: UnsafeMutablePointer<Float>,
                                                 stride: Int) {
        interleave(a, b, to: p)
    }
}

@inline(__always) private func load<V: WinogradLanes>(_ p: UnsafePointer<Float>) -> V {
    UnsafeRawPointer(p).loadUnaligned(as: V.self)
}
@inline(__always) private func store<V: WinogradLanes>(_ p: UnsafeMutablePointer<Float>, _ v: V) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
}

/// The 16 transformed filters U = G g G^T of (O, C, 3, 3) filters as (16, O, C): u[(xi * O + oc) * C + ci],
/// xi = 4 i + j.
/// 16 channel pairs at a time, on all cores: it runs on every convolution call.
func winogradFilters(_ filters: Tensor) -> Tensor {
    let pairs = filters.shape[0] * filters.shape[1]
    let weight = filters.data  // a parameter: alive until the call returns
    let u = Tensor(uninitialized: [16, filters.shape[0], filters.shape[1]])
    let out = u.data
    // G g (4 x 3), G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1], then (G g) G^T (4 x 4)
    @inline(__always) func gRow(_ g0: SIMD16<Float>, _ g1: SIMD16<Float>, _ g2: SIMD16<Float>)
        -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) {
        (g0, 0.5 * (g0 + g1 + g2), 0.5 * (g0 - g1 + g2), g2)
    }
    Parallel.ranges((pairs + 15) / 16, grain: 64) { chunks in
        for chunk in chunks {
            let p = chunk * 16, n = Swift.min(16, pairs - p)
            @inline(__always) func tap(_ k: Int) -> SIMD16<Float> {
                var v = SIMD16<Float>()
                for l in 0..<n { v[l] = weight[(p + l) * 9 + k] }
                return v
            }
            let (a0, b0, c0, d0) = gRow(tap(0), tap(3), tap(6))
            let (a1, b1, c1, d1) = gRow(tap(1), tap(4), tap(7))
            let (a2, b2, c2, d2) = gRow(tap(2), tap(5), tap(8))
            @inline(__always) func store(_ xi: Int, _ v: SIMD16<Float>) {
                let dst = out + xi * pairs + p
                if n == 16 { UnsafeMutableRawPointer(dst).storeBytes(of: v, as: SIMD16<Float>.self) }
                else { for l in 0..<n { dst[l] = v[l] } }
            }
            @inline(__always) func put(_ i: Int, _ r: (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>)) {
                store(4 * i, r.0); store(4 * i + 1, r.1); store(4 * i + 2, r.2); store(4 * i + 3, r.3)
            }
            put(0, gRow(a0, a1, a2)); put(1, gRow(b0, b1, b2)); put(2, gRow(c0, c1, c2)); put(3, gRow(d0, d1, d2))
        }
    }
    return u
}

/// The filters of the input-gradient convolution: wt[i, o, 2-ky, 2-kx] = w[o, i, ky, kx].
func flippedTransposedFilters(_ weight: Tensor) -> Tensor {
    let (o, c) = (weight.shape[0], weight.shape[1])
    let out = Tensor(uninitialized: [c, o, 3, 3])
    Parallel.ranges(o, grain: Swift.max(1, (1 << 14) / Swift.max(9 * c, 1))) { r in
        for oc in r {
            for ic in 0..<c {
                for k in 0..<9 { out.data[(ic * o + oc) * 9 + (8 - k)] = weight.data[(oc * c + ic) * 9 + k] }
            }
        }
    }
    return out
}

/// One Winograd convolution's geometry: its transforms' vector widths and the scratch sizes (floats)
/// for a block of `images` images.
struct WinogradBlock {
    let c, o, h, w: Int
    /// Tiles per vector in the column pass and the output transforms: consecutive tiles of one
    /// image, within one tile row or covering whole tile rows (so an 8x8 image's 16 tiles are one
    /// vector where a tile row has only 4).
    let lanes: Int
    /// Tiles per vector in the row pass: within one tile row.
    let rowLanes: Int

    init(c: Int, o: Int, h: Int, w: Int) {
        (self.c, self.o, self.h, self.w) = (c, o, h, w)
        let (tw, tiles) = (w / 2, (h / 2) * (w / 2))
        func fits(_ l: Int) -> Bool { tw > 0 && (tw % l == 0 || (l % tw == 0 && tiles % l == 0)) }
        lanes = fits(16) ? 16 : fits(8) ? 8 : fits(4) ? 4 : 2
        rowLanes = tw % 16 == 0 ? 16 : tw % 8 == 0 ? 8 : tw % 4 == 0 ? 4 : 2
    }

    var th: Int { h / 2 }
    var tw: Int { w / 2 }
    var tilesPerImage: Int { th * tw }
    /// The input transform's row pass for one image plane (see inputTransform): four outputs per
    /// padded row, each as two parities of th + 1 rows of tw tiles.
    var rowParity: Int { (th + 1) * tw }
    var rowTransformedCount: Int { 8 * rowParity }
    /// Floats from one of the 16 transformed-input (or product) matrices to the next: the matrix
    /// and 16 floats more. Unpadded, the 16 rows a transform writes or reads together lie a power
    /// of two apart (16-32 KB), all on the same L1 set (8 ways).
    func transformedStride(_ images: Int) -> Int { c * images * tilesPerImage + 16 }
    func productStride(_ images: Int) -> Int { o * images * tilesPerImage + 16 }
    func transformedCount(_ images: Int) -> Int { 16 * transformedStride(images) }
    func productCount(_ images: Int) -> Int { 16 * productStride(images) }

    /// Images per block: the transformed input and products (16 (C + O) floats per tile) stay
    /// within ~512 KB, half of L2. In forEachImageBlock's terms (blocks of ~1024 "columns") that
    /// is a plane of tiles * (C + O) / 8; larger blocks, and one image per block at 8x8, are slower.
    /// When the 16 (O, C) filter matrices outgrow L2 (O C > 16 K: 256 channels and wider),
    /// every block streams them from L3 (and the backward pass reads and writes its 16 (O, C)
    /// weight-gradient sums), so blocks get at least 64 tiles to amortise that: one 8x8 image
    /// has 16 tiles, two 4x4 images 8.
    var blockPlane: Int {
        let l2Sized = Swift.max(1, tilesPerImage * (c + o) / 8)
        return o * c > 16_384 ? Swift.min(l2Sized, 16 * tilesPerImage) : l2Sized
    }
}

/// y (n, o, h, w) = conv3x3(x (n, c, h, w), weight (o, c, 3, 3)) + bias for `images` images
/// starting at x and y, with the filters already transformed (winogradFilters) and scratch of
/// the block's sizes; the 16 products in `precision`.
func winogradConv3x3(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, filters u: UnsafePointer<Float>,
                     bias: UnsafePointer<Float>?, images: Int, geometry b: WinogradBlock,
                     rowTransformed: UnsafeMutablePointer<Float>, transformed: UnsafeMutablePointer<Float>,
                     products: UnsafeMutablePointer<Float>, precision: Precision = .fp32) {
    func run<V: WinogradLanes>(_: V.Type) {
        let tiles = images * b.tilesPerImage
        inputTransform(V.self, transformed, x, images, b, rowTransformed)
        // Sixteen products M_xi (O, tiles) = U_xi (O, C) V_xi (C, tiles).
        for xi in 0..<16 {
            BLAS.gemmSerial(precision, products + xi * b.productStride(images), u + xi * b.o * b.c,
                            transformed + xi * b.transformedStride(images), m: b.o, n: tiles, k: b.c)
        }
        outputTransform(V.self, y, products, bias, images, b)
    }
    switch b.lanes {
    case 16: run(SIMD16<Float>.self)
    case 8: run(SIMD8<Float>.self)
    case 4: run(SIMD4<Float>.self)
    default: run(SIMD2<Float>.self)
    }
}

/// The weight gradient's Winograd form: du (16, O, C) += sum over the block's tiles of
/// dM_xi (O, tiles) V_xi^T, where V = B^T d B are x's transformed tiles and dM = A dY A^T the
/// output gradient's (the adjoint of the output transform). winogradFilterGradient turns the
/// sum into the (O, C, 3, 3) gradient. Same scratch as winogradConv3x3 for this geometry; the
/// products in `precision`.
func winogradFilterGradientAccumulate(_ du: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
                                      _ dy: UnsafePointer<Float>, images: Int, geometry b: WinogradBlock,
                                      rowTransformed: UnsafeMutablePointer<Float>,
                                      transformed: UnsafeMutablePointer<Float>, products: UnsafeMutablePointer<Float>,
                                      precision: Precision = .fp32) {
    func run<V: WinogradLanes>(_: V.Type) {
        let tiles = images * b.tilesPerImage
        inputTransform(V.self, transformed, x, images, b, rowTransformed)
        outputGradientTransform(V.self, products, dy, images, b)
        for xi in 0..<16 {
            BLAS.gemmSerial(precision, du + xi * b.o * b.c, products + xi * b.productStride(images),
                            transformed + xi * b.transformedStride(images), m: b.o, n: b.c, k: tiles, transB: true,
                            beta: 1)
        }
    }
    switch b.lanes {
    case 16: run(SIMD16<Float>.self)
    case 8: run(SIMD8<Float>.self)
    case 4: run(SIMD4<Float>.self)
    default: run(SIMD2<Float>.self)
    }
}

/// The (O, C, 3, 3) filter gradient from its Winograd form du (16, O, C): G^T dU G per channel
/// pair (the adjoint of winogradFilters' G g G^T).
func winogradFilterGradient(_ du: Tensor, o: Int, c: Int) -> Tensor {
    let gw = Tensor(uninitialized: [o, c, 3, 3])
    let oc16 = o * c
    // G^T = [1 .5 .5 0; 0 .5 -.5 0; 0 .5 .5 1]
    @inline(__always) func gT(_ u0: Float, _ u1: Float, _ u2: Float, _ u3: Float) -> (Float, Float, Float) {
        (u0 + 0.5 * (u1 + u2), 0.5 * (u1 - u2), 0.5 * (u1 + u2) + u3)
    }
    for oc in 0..<o {
        for ci in 0..<c {
            let src = du.data + oc * c + ci
            @inline(__always) func at(_ xi: Int, _ nu: Int) -> Float { src[(xi * 4 + nu) * oc16] }
            // G^T along nu (x) for each row xi, then along xi (y)
            let r0 = gT(at(0, 0), at(0, 1), at(0, 2), at(0, 3)), r1 = gT(at(1, 0), at(1, 1), at(1, 2), at(1, 3))
            let r2 = gT(at(2, 0), at(2, 1), at(2, 2), at(2, 3)), r3 = gT(at(3, 0), at(3, 1), at(3, 2), at(3, 3))
            let k0 = gT(r0.0, r1.0, r2.0, r3.0), k1 = gT(r0.1, r1.1, r2.1, r3.1), k2 = gT(r0.2, r1.2, r2.2, r3.2)
            let dst = gw.data + (oc * c + ci) * 9
            dst[0] = k0.0; dst[1] = k1.0; dst[2] = k2.0
            dst[3] = k0.1; dst[4] = k1.1; dst[5] = k2.1
            dst[6] = k0.2; dst[7] = k1.2; dst[8] = k2.2
        }
    }
    return gw
}

/// Writes the transformed input V = B^T d B of every 4x4 tile (d: the input padded by 1) to vt
/// (16, C, tiles; matrices transformedStride apart), one image plane at a time: in registers where
/// planeTransform has a kernel for the geometry (tile rows of 16, 8, 4 or 2 tiles, vectors of one,
/// two or four tile rows), else in two passes through `rows` (L1-sized):
/// 1. along the padded rows (rowTransform), stored by row parity;
/// 2. down the columns: the four padded rows under tile row ty are rows ty and ty + 1 of the two
///    parities, so the rows under any run of consecutive tiles are consecutive floats, and a
///    vector spans whole tile rows when a tile row is shorter than it (8x8 and 4x4 images).
@inline(__always)
private func inputTransform<V: WinogradLanes>(_: V.Type, _ vt: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
                                              _ images: Int, _ b: WinogradBlock, _ rows: UnsafeMutablePointer<Float>) {
    let (c, tw, half, tpi) = (b.c, b.tw, b.rowParity, b.tilesPerImage)
    let tiles = images * tpi, ct = b.transformedStride(images)
    for img in 0..<images {
        for ci in 0..<c {
            let dst = vt + ci * tiles + img * tpi, plane = x + (img * c + ci) * b.h * b.w
            if planeTransform(dst, plane, b, stride: ct) { continue }
            rowTransform(rows, plane, b)
            for f in stride(from: 0, to: tpi, by: V.scalarCount) {
                // output j of padded rows 2 ty ... 2 ty + 3, then B^T down them
                @inline(__always) func column(_ j: Int) {
                    let p = rows + 2 * j * half + f
                    columnPass(dst + f, stride: ct, j, load(p) as V, load(p + half) as V, load(p + tw) as V,
                               load(p + half + tw) as V)
                }
                column(0); column(1); column(2); column(3)
            }
        }
    }
}

/// B^T along one row of x (one padded row): for the tiles' columns d0 ... d3 (padded columns
/// 2 tx ... 2 tx + 3) of the P.scalarCount tiles from tile column k on, in a tile row of tw
/// tiles, the outputs j = 0 ... 3 = (d0 - d2, d1 + d2, d2 - d1, d1 - d3), read straight from x
/// (x's even columns are the tiles' d1, its odd ones d2, shifted by one tile they are d3 and d0;
/// the padding is the lanes shifted in).
@inline(__always)
private func rowPass<P: WinogradLanes>(_: P.Type, _ s: UnsafePointer<Float>, _ k: Int, tw: Int) -> (P, P, P, P) {
    let n = P.scalarCount
    let (d1, d2): (P, P) = P.deinterleave(s + 2 * k)
    let d0 = P.shiftedUp(d2, first: k == 0 ? 0 : s[2 * k - 1])
    let d3 = P.shiftedDown(d1, last: k + n == tw ? 0 : s[2 * k + 2 * n])
    return (d0 - d2, d1 + d2, d2 - d1, d1 - d3)
}

/// B^T down the columns of one tile row (or of a vector of tile rows): outputs xi = 4 i + j from
/// output j of its four padded rows a ... d, to out[xi * stride].
@_transparent
private func columnPass<V: WinogradLanes>(_ out: UnsafeMutablePointer<Float>, stride ct: Int, _ j: Int,
                                          _ a: V, _ b: V, _ c: V, _ d: V) {
    store(out + j * ct, a - c); store(out + (4 + j) * ct, b + c)
    store(out + (8 + j) * ct, c - b); store(out + (12 + j) * ct, b - d)
}

/// inputTransform of one image plane with both passes in registers, where the geometry has a
/// kernel for it: the row pass's outputs for the two padded rows a tile row shares with the next
/// are carried down the plane instead of making a round trip through rowTransform's L1 buffer.
/// The same sums as rowTransform followed by the column pass, so the same bits. Output xi of
/// tile t goes to dst[xi * stride + t]. Returns false where there is no such kernel.
private func planeTransform(_ dst: UnsafeMutablePointer<Float>, _ plane: UnsafePointer<Float>, _ b: WinogradBlock,
                            stride ct: Int) -> Bool {
    switch (b.lanes, b.rowLanes) {
    case (16, 16): planeTransform(SIMD16<Float>.self, dst, plane, b, stride: ct)           // 32x32 and wider
    case (8, 8): planeTransform(SIMD8<Float>.self, dst, plane, b, stride: ct)
    case (4, 4): planeTransform(SIMD4<Float>.self, dst, plane, b, stride: ct)
    case (2, 2): planeTransform(SIMD2<Float>.self, dst, plane, b, stride: ct)
    case (16, 8): planeTransformTwoRows(SIMD16<Float>.self, dst, plane, b, stride: ct)    // 16x16
    case (8, 4): planeTransformTwoRows(SIMD8<Float>.self, dst, plane, b, stride: ct)
    case (4, 2): planeTransformTwoRows(SIMD4<Float>.self, dst, plane, b, stride: ct)      // 4x4
    case (16, 4): planeTransformFourRows(SIMD16<Float>.self, dst, plane, b, stride: ct)   // 8x8
    case (8, 2): planeTransformFourRows(SIMD8<Float>.self, dst, plane, b, stride: ct)
    default: return false
    }
    return true
}

/// Tile rows that are whole vectors of V: each vector strip of tile columns goes down the plane.
@inline(__always)
private func planeTransform<V: WinogradLanes>(_: V.Type, _ dst: UnsafeMutablePointer<Float>,
                                              _ plane: UnsafePointer<Float>, _ b: WinogradBlock, stride ct: Int) {
    let (h, w, th, tw) = (b.h, b.w, b.th, b.tw)
    let zero = (V(), V(), V(), V())
    for k in Swift.stride(from: 0, to: tw, by: V.scalarCount) {
        // padded row r is image row r - 1; rows 0 and h + 1 are zero
        @inline(__always) func row(_ r: Int) -> (V, V, V, V) {
            r <= h ? rowPass(V.self, plane + (r - 1) * w, k, tw: tw) : zero
        }
        var (e0, e1) = (zero, row(1))
        for ty in 0..<th {
            let e2 = row(2 * ty + 2), e3 = row(2 * ty + 3), out = dst + ty * tw + k
            columnPass(out, stride: ct, 0, e0.0, e1.0, e2.0, e3.0)
            columnPass(out, stride: ct, 1, e0.1, e1.1, e2.1, e3.1)
            columnPass(out, stride: ct, 2, e0.2, e1.2, e2.2, e3.2)
            columnPass(out, stride: ct, 3, e0.3, e1.3, e2.3, e3.3)
            (e0, e1) = (e2, e3)
        }
    }
}

/// Vectors of V spanning two tile rows of V.Half's width (16x16 images: 8 tiles per row): the
/// lower half of each column-pass input is tile row ty's, the upper half tile row ty + 1's.
@inline(__always)
private func planeTransformTwoRows<V: HalvableLanes>(_: V.Type, _ dst: UnsafeMutablePointer<Float>,
                                                     _ plane: UnsafePointer<Float>, _ b: WinogradBlock,
                                                     stride ct: Int) {
    let (h, w, th, tw) = (b.h, b.w, b.th, b.tw)
    let zero = (V.Half(), V.Half(), V.Half(), V.Half())
    @inline(__always) func row(_ r: Int) -> (V.Half, V.Half, V.Half, V.Half) {
        r <= h ? rowPass(V.Half.self, plane + (r - 1) * w, 0, tw: tw) : zero
    }
    @inline(__always) func two(_ lower: V.Half, _ upper: V.Half) -> V { V(lowHalf: lower, highHalf: upper) }
    var (e0, e1) = (zero, row(1))
    for ty in Swift.stride(from: 0, to: th, by: 2) {
        let e2 = row(2 * ty + 2), e3 = row(2 * ty + 3), e4 = row(2 * ty + 4), e5 = row(2 * ty + 5), out = dst + ty * tw
        columnPass(out, stride: ct, 0, two(e0.0, e2.0), two(e1.0, e3.0), two(e2.0, e4.0), two(e3.0, e5.0))
        columnPass(out, stride: ct, 1, two(e0.1, e2.1), two(e1.1, e3.1), two(e2.1, e4.1), two(e3.1, e5.1))
        columnPass(out, stride: ct, 2, two(e0.2, e2.2), two(e1.2, e3.2), two(e2.2, e4.2), two(e3.2, e5.2))
        columnPass(out, stride: ct, 3, two(e0.3, e2.3), two(e1.3, e3.3), two(e2.3, e4.3), two(e3.3, e5.3))
        (e0, e1) = (e4, e5)
    }
}

/// Vectors of V spanning four tile rows of V.Half.Half's width (8x8 images: 4 tiles per row).
@inline(__always)
private func planeTransformFourRows<V: HalvableLanes>(_: V.Type, _ dst: UnsafeMutablePointer<Float>,
                                                      _ plane: UnsafePointer<Float>, _ b: WinogradBlock,
                                                      stride ct: Int) where V.Half: HalvableLanes {
    typealias Q = V.Half.Half
    let (h, w, th, tw) = (b.h, b.w, b.th, b.tw)
    let zero = (Q(), Q(), Q(), Q())
    @inline(__always) func row(_ r: Int) -> (Q, Q, Q, Q) {
        r <= h ? rowPass(Q.self, plane + (r - 1) * w, 0, tw: tw) : zero
    }
    @inline(__always) func four(_ a: Q, _ b: Q, _ c: Q, _ d: Q) -> V {
        V(lowHalf: V.Half(lowHalf: a, highHalf: b), highHalf: V.Half(lowHalf: c, highHalf: d))
    }
    var (e0, e1) = (zero, row(1))
    for ty in Swift.stride(from: 0, to: th, by: 4) {
        let e2 = row(2 * ty + 2), e3 = row(2 * ty + 3), e4 = row(2 * ty + 4), e5 = row(2 * ty + 5)
        let e6 = row(2 * ty + 6), e7 = row(2 * ty + 7), e8 = row(2 * ty + 8), e9 = row(2 * ty + 9), out = dst + ty * tw
        columnPass(out, stride: ct, 0, four(e0.0, e2.0, e4.0, e6.0), four(e1.0, e3.0, e5.0, e7.0),
                   four(e2.0, e4.0, e6.0, e8.0), four(e3.0, e5.0, e7.0, e9.0))
        columnPass(out, stride: ct, 1, four(e0.1, e2.1, e4.1, e6.1), four(e1.1, e3.1, e5.1, e7.1),
                   four(e2.1, e4.1, e6.1, e8.1), four(e3.1, e5.1, e7.1, e9.1))
        columnPass(out, stride: ct, 2, four(e0.2, e2.2, e4.2, e6.2), four(e1.2, e3.2, e5.2, e7.2),
                   four(e2.2, e4.2, e6.2, e8.2), four(e3.2, e5.2, e7.2, e9.2))
        columnPass(out, stride: ct, 3, four(e0.3, e2.3, e4.3, e6.3), four(e1.3, e3.3, e5.3, e7.3),
                   four(e2.3, e4.3, e6.3, e8.3), four(e3.3, e5.3, e7.3, e9.3))
        (e0, e1) = (e8, e9)
    }
}

/// rowPass along every padded row of one image plane (the general case: vectors spanning more
/// than four tile rows). Output j of padded row r goes to
/// rows[(2 j + r % 2) * rowParity + (r / 2) * tw + tx].
private func rowTransform(_ rows: UnsafeMutablePointer<Float>, _ plane: UnsafePointer<Float>, _ b: WinogradBlock) {
    func run<P: WinogradLanes>(_: P.Type) {
        let (h, w, th, tw, half, n) = (b.h, b.w, b.th, b.tw, b.rowParity, P.scalarCount)
        for j in 0..<4 {  // padded rows 0 and h + 1 are zero
            (rows + 2 * j * half).update(repeating: 0, count: tw)
            (rows + (2 * j + 1) * half + th * tw).update(repeating: 0, count: tw)
        }
        for r in 0..<h {
            let s = plane + r * w, dst = rows + ((r + 1) % 2) * half + (r + 1) / 2 * tw
            for k in stride(from: 0, to: tw, by: n) {
                let e = rowPass(P.self, s, k, tw: tw)
                store(dst + k, e.0); store(dst + 2 * half + k, e.1)
                store(dst + 4 * half + k, e.2); store(dst + 6 * half + k, e.3)
            }
        }
    }
    switch b.rowLanes {
    case 16: run(SIMD16<Float>.self)
    case 8: run(SIMD8<Float>.self)
    case 4: run(SIMD4<Float>.self)
    default: run(SIMD2<Float>.self)
    }
}

/// Output transform Y = A^T M A of the products mt (16, O, tiles; productStride apart),
/// A^T = [1 1 1 0; 0 1 -1 -1], plus the bias, into the block's output images.
@inline(__always)
private func outputTransform<V: WinogradLanes>(_: V.Type, _ y: UnsafeMutablePointer<Float>, _ mt: UnsafePointer<Float>,
                                               _ bias: UnsafePointer<Float>?, _ images: Int, _ b: WinogradBlock) {
    let (o, h, w, tw, tpi) = (b.o, b.h, b.w, b.tw, b.tilesPerImage)
    let tiles = images * tpi, ot = b.productStride(images), width = Swift.min(V.scalarCount, tw)
    for oc in 0..<o {
        let add = V(repeating: bias?[oc] ?? 0)
        for img in 0..<images {
            let out = y + (img * o + oc) * h * w
            for f in stride(from: 0, to: tpi, by: V.scalarCount) {
                let src = mt + oc * tiles + img * tpi + f, ty = f / tw, tx = f - ty * tw
                // A^T along each row i of the tile's 4x4 products, then down the columns
                @inline(__always) func rowTransform(_ i: Int) -> (V, V) {
                    let m0: V = load(src + (i * 4) * ot), m1: V = load(src + (i * 4 + 1) * ot)
                    let m2: V = load(src + (i * 4 + 2) * ot), m3: V = load(src + (i * 4 + 3) * ot)
                    return (m0 + m1 + m2, m1 - m2 - m3)
                }
                let (p00, p01) = rowTransform(0), (p10, p11) = rowTransform(1)
                let (p20, p21) = rowTransform(2), (p30, p31) = rowTransform(3)
                let y00 = p00 + p10 + p20 + add, y01 = p01 + p11 + p21 + add
                let y10 = p10 - p20 - p30 + add, y11 = p11 - p21 - p31 + add
                let top = out + 2 * ty * w + 2 * tx
                V.interleaveRows(y00, y01, width: width, to: top, stride: 2 * w)
                V.interleaveRows(y10, y11, width: width, to: top + w, stride: 2 * w)
            }
        }
    }
}

/// The adjoint of outputTransform: dM = A dY A^T of every 2x2 output-gradient tile, into
/// dm (16, O, tiles; productStride apart). A = [1 0; 1 1; 1 -1; 0 -1].
@inline(__always)
private func outputGradientTransform<V: WinogradLanes>(_: V.Type, _ dm: UnsafeMutablePointer<Float>,
                                                       _ dy: UnsafePointer<Float>, _ images: Int, _ b: WinogradBlock) {
    let (o, h, w, tw, tpi) = (b.o, b.h, b.w, b.tw, b.tilesPerImage)
    let tiles = images * tpi, ot = b.productStride(images), width = Swift.min(V.scalarCount, tw)
    for oc in 0..<o {
        for img in 0..<images {
            let src = dy + (img * o + oc) * h * w
            for f in stride(from: 0, to: tpi, by: V.scalarCount) {
                let ty = f / tw, tx = f - ty * tw, top = src + 2 * ty * w + 2 * tx
                // tile [[a, b], [c, d]]: rows A (a, b; c, d), then A along each row
                let (a, bb): (V, V) = V.deinterleaveRows(top, width: width, stride: 2 * w)
                let (cc, d): (V, V) = V.deinterleaveRows(top + w, width: width, stride: 2 * w)
                let dst = dm + oc * tiles + img * tpi + f
                @inline(__always) func put(_ xi: Int, _ p: V, _ q: V) {
                    store(dst + (xi * 4) * ot, p); store(dst + (xi * 4 + 1) * ot, p + q)
                    store(dst + (xi * 4 + 2) * ot, p - q); store(dst + (xi * 4 + 3) * ot, -q)
                }
                put(0, a, bb); put(1, a + cc, bb + d); put(2, a - cc, bb - d); put(3, -cc, -d)
            }
        }
    }
}
