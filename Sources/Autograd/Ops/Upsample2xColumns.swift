// im2col and col2im for the U-Net's upsampling, a 4x4 transposed convolution with stride 2 and
// padding 1: the generic loops in Conv.swift step through every window tap one scalar at a time.
// Here each output row is built from the taps
// that land on it: even columns from taps 1 and 3, odd ones from 0 and 2, computed as whole
// vectors and interleaved (the even/odd lanes of WinogradConv.swift). KernelTests compare both
// against the generic loops.

extension ConvGeometry {
    /// A 4x4 window with stride 2 and padding 1 over an image twice the grid's size, with a grid
    /// width that whole vectors of 4, 8 or 16 cover.
    var isUpsample2x: Bool {
        kh == 4 && kw == 4 && stride == 2 && pad == 1 && h == 2 * oh && w == 2 * ow && ow % 4 == 0
    }

    var upsampleLanes: Int { ow % 16 == 0 ? 16 : ow % 8 == 0 ? 8 : 4 }

    /// im2col for isUpsample2x: window (i, j) at grid (oy, ox) reads image row 2 oy - 1 + i,
    /// column 2 ox - 1 + j: j = 1, 3 are the row's even columns at ox and ox + 1, j = 0, 2 its odd
    /// columns at ox - 1 and ox.
    func upsampleIm2col(_ cols: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>) {
        switch upsampleLanes {
        case 16: upsampleIm2col(SIMD16<Float>.self, cols, x)
        case 8: upsampleIm2col(SIMD8<Float>.self, cols, x)
        default: upsampleIm2col(SIMD4<Float>.self, cols, x)
        }
    }

    /// col2im for isUpsample2x: image row 2m takes window rows i = 1 at grid row m and i = 3 at
    /// m - 1; row 2m + 1 takes i = 0 at m + 1 and i = 2 at m. Along a row, column 2m is
    /// j1[m] + j3[m - 1] and column 2m + 1 is j0[m + 1] + j2[m].
    func upsampleCol2im(_ x: UnsafeMutablePointer<Float>, _ cols: UnsafePointer<Float>, bias: UnsafePointer<Float>?) {
        switch upsampleLanes {
        case 16: upsampleCol2im(SIMD16<Float>.self, x, cols, bias)
        case 8: upsampleCol2im(SIMD8<Float>.self, x, cols, bias)
        default: upsampleCol2im(SIMD4<Float>.self, x, cols, bias)
        }
    }

    @inline(__always)
    private func upsampleIm2col<V: WinogradLanes>(_: V.Type, _ cols: UnsafeMutablePointer<Float>,
                                                  _ x: UnsafePointer<Float>) {
        let plane = oh * ow, lanes = V.scalarCount
        // even[0..<ow] then a zero; a zero then odd[0..<ow]: the shifted taps load from these
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * ow + 2) { buffer in
            let even = buffer.baseAddress!, odd = even + ow + 1
            even[ow] = 0
            odd[0] = 0
            for ci in 0..<c {
                for b in 0..<n {
                    let src = x + (b * c + ci) * h * w
                    for i in 0..<4 {
                        let rows = cols + (ci * 4 + i) * 4 * colCols + b * plane
                        for oy in 0..<oh {
                            let y = 2 * oy - 1 + i, at = rows + oy * ow
                            guard y >= 0 && y < h else {
                                for j in 0..<4 { (at + j * colCols).update(repeating: 0, count: ow) }
                                continue
                            }
                            for k in Swift.stride(from: 0, to: ow, by: lanes) {
                                let (e, o): (V, V) = V.deinterleave(src + y * w + 2 * k)
                                UnsafeMutableRawPointer(even + k).storeBytes(of: e, as: V.self)
                                UnsafeMutableRawPointer(odd + 1 + k).storeBytes(of: o, as: V.self)
                            }
                            at.update(from: odd, count: ow)
                            (at + colCols).update(from: even, count: ow)
                            (at + 2 * colCols).update(from: odd + 1, count: ow)
                            (at + 3 * colCols).update(from: even + 1, count: ow)
                        }
                    }
                }
            }
        }
    }

    @inline(__always)
    private func upsampleCol2im<V: WinogradLanes>(_: V.Type, _ x: UnsafeMutablePointer<Float>,
                                                  _ cols: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?) {
        let plane = oh * ow, lanes = V.scalarCount
        // a zero then tap 3's row; tap 0's row then a zero: the shifted taps load from these
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * ow + 2) { buffer in
            let tap3 = buffer.baseAddress!, tap0 = tap3 + ow + 1
            tap3[0] = 0
            tap0[ow] = 0
            for ci in 0..<c {
                for b in 0..<n {
                    let dst = x + (b * c + ci) * h * w
                    @inline(__always) func windowRow(_ i: Int, _ oy: Int) -> UnsafePointer<Float> {
                        cols + (ci * 4 + i) * 4 * colCols + b * plane + oy * ow
                    }
                    for y in 0..<h {
                        let m = y / 2
                        // the (window row, grid row) pairs that land on image row y, in the
                        // generic loops' order (ascending window row), so the sums round the same
                        let pairs = y % 2 == 0 ? ((1, m), (3, m - 1)) : ((0, m + 1), (2, m))
                        var first = true
                        for r in 0..<2 {
                            let (i, oy) = r == 0 ? pairs.0 : pairs.1
                            guard oy >= 0 && oy < oh else { continue }
                            let row = windowRow(i, oy)
                            (tap3 + 1).update(from: row + 3 * colCols, count: ow)
                            tap0.update(from: row, count: ow)
                            for k in Swift.stride(from: 0, to: ow, by: lanes) {
                                let j1 = UnsafeRawPointer(row + colCols + k).loadUnaligned(as: V.self)
                                let j2 = UnsafeRawPointer(row + 2 * colCols + k).loadUnaligned(as: V.self)
                                let j3 = UnsafeRawPointer(tap3 + k).loadUnaligned(as: V.self)
                                let j0 = UnsafeRawPointer(tap0 + k + 1).loadUnaligned(as: V.self)
                                let out = dst + y * w + 2 * k
                                var (even, odd) = first ? (V(), V()) : V.deinterleave(out)
                                even = even + j1 + j3
                                odd = odd + j0 + j2
                                V.interleave(even, odd, to: out)
                            }
                            first = false
                        }
                    }
                    if let bias { addToPlane(dst, bias[ci], count: h * w) }
                }
            }
        }
    }
}
