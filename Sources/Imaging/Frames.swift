import Autograd

/// Tensor images <-> 8-bit frames, and grids of images.
public enum Frames {
    /// Values in [-1, 1] -> 0...255 (clamped, rounded), nearest-neighbour upscaled by `scale`.
    /// image: (H, W), (1, H, W) or (1, 1, H, W).
    public static func gray(_ image: Tensor, scale: Int = 1) throws -> (width: Int, height: Int, pixels: [UInt8]) {
        let dims = image.shape.filter { $0 != 1 }
        guard image.rank >= 2, image.rank <= 4, dims.count <= 2,
              image.shape.dropLast(2).allSatisfy({ $0 == 1 }) else {
            throw TensorError("image: expected one grayscale image (H, W), (1, H, W) or (1, 1, H, W), "
                + "got \(Shape.describe(image.shape)); use ddpm.image.grid for a batch")
        }
        guard scale >= 1 && scale <= 64 else { throw TensorError("image: scale \(scale) must be in 1...64") }
        let h = image.shape[image.rank - 2], w = image.shape[image.rank - 1]
        let (W, H) = (w * scale, h * scale)
        try Memory.check(bytes: 3 * W * H, for: "image: \(W)x\(H) pixels")
        var out = [UInt8](repeating: 0, count: W * H)
        for y in 0..<H {
            for x in 0..<W {
                out[y * W + x] = quantize(image.data[(y / scale) * w + x / scale])
            }
        }
        return (W, H, out)
    }

    /// [-1, 1] -> 0...255, clamped and rounded (NaN -> 0).
    @inline(__always) static func quantize(_ v: Float) -> UInt8 {
        UInt8((((v.isNaN ? -1 : min(max(v, -1), 1)) + 1) * 127.5).rounded())
    }

    /// Every value of a tensor as a byte (a batch's pixels in order, e.g. for IDX files).
    public static func bytes(_ x: Tensor) -> [UInt8] { (0..<x.count).map { quantize(x.data[$0]) } }

    /// 0...255 pixels -> (1, 1, H, W) tensor in [-1, 1].
    public static func tensor(width: Int, height: Int, pixels: [UInt8]) throws -> Tensor {
        try Tensor(pixels.map { Float($0) / 127.5 - 1 }, shape: [1, 1, height, width])
    }

    /// x: (N, C, H, W) -> (C, rows*(H+pad)+pad, cols*(W+pad)+pad), filled with `value` between
    /// images; image k goes to row k / cols, column k % cols.
    public static func grid(_ x: Tensor, cols: Int? = nil, pad: Int = 2, value: Float = -1) throws -> Tensor {
        guard x.rank == 4 else {
            throw TensorError("image.grid: expected a batch (N, C, H, W), got \(Shape.describe(x.shape))")
        }
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let columns = max(1, cols ?? Int(Double(n).squareRoot().rounded(.up)))
        guard pad >= 0 else { throw TensorError("image.grid: pad \(pad) must be >= 0") }
        let rows = max(1, n / columns + (n % columns == 0 ? 0 : 1))
        // pad and cols come from the caller: sizes are computed without overflow and checked
        // against the tensor limit and the free memory before the grid is allocated
        func side(_ count: Int, _ size: Int) throws -> Int {
            let (cell, o1) = size.addingReportingOverflow(pad)
            let (all, o2) = count.multipliedReportingOverflow(by: cell)
            let (total, o3) = all.addingReportingOverflow(pad)
            guard !(o1 || o2 || o3) else {
                throw TensorError("image.grid: \(count) images of \(size) pixels with pad \(pad) is too large")
            }
            return total
        }
        let H = try side(rows, h), W = try side(columns, w)
        _ = try Shape.checkedAllocation([c, H, W], op: "image.grid")
        let out = Tensor(repeating: value, shape: [c, H, W])
        for k in 0..<n {
            let oy = pad + (k / columns) * (h + pad), ox = pad + (k % columns) * (w + pad)
            for ch in 0..<c {
                for y in 0..<h {
                    (out.data + (ch * H + oy + y) * W + ox).update(from: x.data + ((k * c + ch) * h + y) * w, count: w)
                }
            }
        }
        return out
    }
}
