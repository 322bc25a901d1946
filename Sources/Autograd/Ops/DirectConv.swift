// Direct 3x3 convolution (stride 1, padding 1) for one image, NCHW, without im2col: a SIMD
// micro-kernel computes 8 output channels x 2 rows x 16 pixels (16 accumulators), reading the
// input from a zero-padded copy. No packing, no 9x column buffer: this is what the U-Net's 3x3
// convolutions at 32x32 and 16x16 spend most of their time on. The input gradient is the same
// kernel on dY with the filters transposed and flipped. The im2col path in Conv.swift is the
// reference beside it (KernelTests compare them).

/// Whether the direct kernel handles this convolution.
func directConvApplies(c: Int, o: Int, h: Int, w: Int, kh: Int, kw: Int, stride: Int, pad: Int) -> Bool {
    useDirectConv && kh == 3 && kw == 3 && stride == 1 && pad == 1 && o % 8 == 0 && w % 16 == 0 && h % 2 == 0 && c >= 1
}

/// false forces the im2col path (tests compare the two).
nonisolated(unsafe) public var useDirectConv = true

/// y (o, h, w) = conv3x3(x (c, h, w), weight (o, c, 3, 3)) + bias, for one image.
/// `padded` is scratch of c * (h + 2) * (w + 2) floats.
func directConv3x3(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                   bias: UnsafePointer<Float>?, c: Int, o: Int, h: Int, w: Int, padded: UnsafeMutablePointer<Float>) {
    let wp = w + 2, hp = h + 2
    // zero-padded input: copy the interior, zero only the border (the scratch is reused)
    for ci in 0..<c {
        let plane = padded + ci * hp * wp
        plane.update(repeating: 0, count: wp)
        (plane + (hp - 1) * wp).update(repeating: 0, count: wp)
        for r in 0..<h {
            let row = plane + (r + 1) * wp
            row[0] = 0
            (row + 1).update(from: x + (ci * h + r) * w, count: w)
            row[w + 1] = 0
        }
    }
    let c9 = c * 9
    for oc in stride(from: 0, to: o, by: 8) {
        let wb = weight + oc * c9
        var bv = [Float](repeating: 0, count: 8)
        if let bias { for k in 0..<8 { bv[k] = bias[oc + k] } }
        for row in stride(from: 0, to: h, by: 2) {
            for x0 in stride(from: 0, to: w, by: 16) {
                var a0 = Vec(repeating: bv[0]), a1 = Vec(repeating: bv[1]), a2 = Vec(repeating: bv[2]), a3 = Vec(repeating: bv[3])
                var a4 = Vec(repeating: bv[4]), a5 = Vec(repeating: bv[5]), a6 = Vec(repeating: bv[6]), a7 = Vec(repeating: bv[7])
                var b0 = a0, b1 = a1, b2 = a2, b3 = a3, b4 = a4, b5 = a5, b6 = a6, b7 = a7
                for ci in 0..<c {
                    let base = padded + (ci * hp + row) * wp + x0
                    let wc = wb + ci * 9
                    for ky in 0..<3 {
                        let r0 = base + ky * wp, r1 = r0 + wp
                        for kx in 0..<3 {
                            let u = load16(r0 + kx), v = load16(r1 + kx)
                            let t = wc + ky * 3 + kx
                            var s = Vec(repeating: t[0])
                            a0 = a0.addingProduct(s, u); b0 = b0.addingProduct(s, v)
                            s = Vec(repeating: t[c9])
                            a1 = a1.addingProduct(s, u); b1 = b1.addingProduct(s, v)
                            s = Vec(repeating: t[2 * c9])
                            a2 = a2.addingProduct(s, u); b2 = b2.addingProduct(s, v)
                            s = Vec(repeating: t[3 * c9])
                            a3 = a3.addingProduct(s, u); b3 = b3.addingProduct(s, v)
                            s = Vec(repeating: t[4 * c9])
                            a4 = a4.addingProduct(s, u); b4 = b4.addingProduct(s, v)
                            s = Vec(repeating: t[5 * c9])
                            a5 = a5.addingProduct(s, u); b5 = b5.addingProduct(s, v)
                            s = Vec(repeating: t[6 * c9])
                            a6 = a6.addingProduct(s, u); b6 = b6.addingProduct(s, v)
                            s = Vec(repeating: t[7 * c9])
                            a7 = a7.addingProduct(s, u); b7 = b7.addingProduct(s, v)
                        }
                    }
                }
                let out = y + (oc * h + row) * w + x0
                let plane = h * w
                store16(out, a0); store16(out + w, b0)
                store16(out + plane, a1); store16(out + plane + w, b1)
                store16(out + 2 * plane, a2); store16(out + 2 * plane + w, b2)
                store16(out + 3 * plane, a3); store16(out + 3 * plane + w, b3)
                store16(out + 4 * plane, a4); store16(out + 4 * plane + w, b4)
                store16(out + 5 * plane, a5); store16(out + 5 * plane + w, b5)
                store16(out + 6 * plane, a6); store16(out + 6 * plane + w, b6)
                store16(out + 7 * plane, a7); store16(out + 7 * plane + w, b7)
            }
        }
    }
}

/// The filters of the input-gradient convolution: wt[i, o, 2-ky, 2-kx] = w[o, i, ky, kx].
func flippedTransposedFilters(_ weight: Tensor) -> Tensor {
    let (o, c) = (weight.shape[0], weight.shape[1])
    let out = Tensor(uninitialized: [c, o, 3, 3])
    for oc in 0..<o {
        for ic in 0..<c {
            for k in 0..<9 { out.data[(ic * o + oc) * 9 + (8 - k)] = weight.data[(oc * c + ic) * 9 + k] }
        }
    }
    return out
}
