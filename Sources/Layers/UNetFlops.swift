/// The U-Net's floating-point operations computed from its shapes, counted as PyTorch's
/// FlopCounterMode counts them (the benchmark's GFLOP/s): 2 per multiply-add of the
/// convolutions, transposed convolutions, linear layers and the two attention products
/// (q^T k and v p^T); normalisation, activations and elementwise work count nothing.
public struct UNetFlops: Equatable, Sendable {
    /// One forward pass.
    public var forward = 0
    /// A forward and a backward pass. A product's backward computes the weight's gradient and,
    /// unless the input is data (the image, the sinusoidal timestep embedding), the input's, each
    /// as many operations as the forward; attention's backward is twice its forward (dV and dP,
    /// then dQ and dK; the recomputed scores are not counted).
    public var forwardBackward = 0

    public init(forward: Int = 0, forwardBackward: Int = 0) {
        self.forward = forward
        self.forwardBackward = forwardBackward
    }

    /// A product of `flops` whose backward makes the weight's gradient and, with `inputGradient`,
    /// the input's.
    mutating func product(_ flops: Int, inputGradient: Bool = true) {
        forward += flops
        forwardBackward += flops * (inputGradient ? 3 : 2)
    }
}

extension UNetConfig {
    /// The FLOPs of the model for a batch of `batch` images of height x width, walking the layers
    /// as UNet's forward does.
    public func flops(batch: Int, height: Int, width: Int) -> UNetFlops {
        var f = UNetFlops()
        let hidden = heads * headDim
        func linear(_ fin: Int, _ fout: Int, inputGradient: Bool = true) {
            f.product(2 * batch * fin * fout, inputGradient: inputGradient)
        }
        /// A convolution with a k x k kernel and an h x w output.
        func conv(_ cin: Int, _ cout: Int, kernel k: Int, _ h: Int, _ w: Int, inputGradient: Bool = true) {
            f.product(2 * batch * cout * cin * k * k * h * w, inputGradient: inputGradient)
        }
        func resnetBlock(_ cin: Int, _ cout: Int, _ h: Int, _ w: Int, inputGradient: Bool = true) {
            linear(timeDim, 2 * cout)
            conv(cin, cout, kernel: 3, h, w, inputGradient: inputGradient)
            conv(cout, cout, kernel: 3, h, w)
            if cin != cout { conv(cin, cout, kernel: 1, h, w, inputGradient: inputGradient) }
        }
        func selfAttention(_ ch: Int, _ h: Int, _ w: Int) {
            conv(ch, 3 * hidden, kernel: 1, h, w)
            let scores = 4 * batch * heads * (h * w) * (h * w) * headDim
            f.forward += scores
            f.forwardBackward += 3 * scores
            conv(hidden, ch, kernel: 1, h, w)
        }
        linear(timeDim, 4 * timeDim, inputGradient: false)
        linear(4 * timeDim, timeDim)
        var (h, w, prev) = (height, width, channels)
        for level in 0..<levels {
            let out = base << level
            resnetBlock(prev, out, h, w, inputGradient: level > 0)
            resnetBlock(out, out, h, w)
            if attention[level] { selfAttention(out, h, w) }
            (h, w, prev) = (h / 2, w / 2, out)
            conv(4 * out, out, kernel: 1, h, w)
        }
        resnetBlock(prev, prev, h, w)
        resnetBlock(prev, prev, h, w)
        if attentionMid { selfAttention(prev, h, w) }
        for level in (0..<levels).reversed() {
            let skip = base << level
            // the 4x4 stride-2 transposed convolution: an h x w input, each pixel through the
            // whole kernel
            f.product(2 * batch * prev * prev * 16 * h * w)
            (h, w) = (2 * h, 2 * w)
            resnetBlock(prev + skip, skip, h, w)
            resnetBlock(skip, skip, h, w)
            if attention[level] { selfAttention(skip, h, w) }
            prev = skip
        }
        resnetBlock(base, base, h, w)
        resnetBlock(base, base, h, w)
        conv(base, channels, kernel: 1, h, w)
        return f
    }
}
