import Autograd
import Layers

public enum LossKind: String, Sendable { case l1, l2 }

extension Schedule {
    /// The reference's training objective: t ~ U{0..steps-1}, noise ~ N(0, 1),
    /// loss = mean |model(x_t, t, labels) - noise| (or squared for .l2). Recorded for backward.
    public func trainingLoss(_ model: UNet, x0: Tensor, labels: [Int]?, loss: LossKind = .l1,
                             generator: inout Generator) throws -> Tensor {
        guard x0.rank == 4 else {
            throw TensorError("training_loss: x0 \(Shape.describe(x0.shape)) is not (N, C, H, W)")
        }
        let t = (0..<x0.shape[0]).map { _ in generator.int(below: steps) }
        let noise = Tensor.randn(x0.shape, generator: &generator)
        let xt = try withNoGrad { try addNoise(x0, t: t, noise: noise) }
        let eps = try model(xt, t: t, labels: labels)
        switch loss {
        case .l1: return try .l1Loss(eps, noise)
        case .l2: return try .mseLoss(eps, noise)
        }
    }
}
