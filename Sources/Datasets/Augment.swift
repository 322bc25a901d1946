import Autograd

/// Data augmentation for training classifiers (not the diffusion model, which learns the data as is).
public enum Augment {
    /// Each image of x (N, C, H, W) moved by a random whole-pixel offset in [-maxShift, maxShift]
    /// on both axes; uncovered pixels get `background` (-1 = black in [-1, 1] images).
    public static func shift(
        _ x: Tensor, maxShift: Int, background: Float = -1, generator: inout Generator
    ) throws -> Tensor {
        guard x.rank == 4 else { throw TensorError("shift: expected (N, C, H, W), got \(Shape.describe(x.shape))") }
        guard maxShift >= 0 && maxShift < min(x.shape[2], x.shape[3]) else {
            throw TensorError("shift: max shift \(maxShift) must be in 0..<\(min(x.shape[2], x.shape[3]))")
        }
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let out = Tensor(repeating: background, shape: x.shape)
        for i in 0..<n {
            let dy = generator.int(below: 2 * maxShift + 1) - maxShift
            let dx = generator.int(below: 2 * maxShift + 1) - maxShift
            for ch in 0..<c {
                let base = (i * c + ch) * h * w
                for y in max(0, dy)..<min(h, h + dy) {
                    let sy = y - dy
                    for xx in max(0, dx)..<min(w, w + dx) {
                        out.data[base + y * w + xx] = x.data[base + sy * w + xx - dx]
                    }
                }
            }
        }
        return out
    }
}
