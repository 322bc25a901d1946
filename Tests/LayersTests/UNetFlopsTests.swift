import Autograd
@testable import Layers
import XCTest

final class UNetFlopsTests: XCTestCase {
    /// A one-level model with attention at its level, batch 2 of 4x4 images, counted by hand.
    func testTinyConfigMatchesHandCount() throws {
        let config = UNetConfig(base: 8, levels: 1, timeDim: 4, heads: 1, headDim: 4, attention: [true],
                                attentionMid: false, imageSize: 4)
        // forward, per layer (batch 2; a linear 2 B in out, a convolution 2 B out in k^2 pixels):
        let time = 256 + 256                          // 4 -> 16, 16 -> 4
        let down1 = 256 + 4_608 + 36_864 + 512        // mlp, 3x3 1 -> 8, 3x3 8 -> 8, 1x1 1 -> 8 (16 px)
        let down2 = 256 + 36_864 + 36_864             // mlp, two 3x3 8 -> 8
        let attention = 6_144 + 8_192 + 2_048         // 1x1 8 -> 12, 4 B heads n^2 dim (n = 16), 1x1 4 -> 8
        let down = 4_096                              // 1x1 32 -> 8 at 2x2
        let mid = 2 * (256 + 9_216 + 9_216)           // two blocks at 2x2
        let upconv = 16_384                           // 4x4 transposed 8 -> 8 (2 B 8 8 16 per pixel), 2x2 input
        let up1 = 256 + 73_728 + 36_864 + 8_192       // mlp, 3x3 16 -> 8, 3x3 8 -> 8, 1x1 16 -> 8
        let up2 = down2, upAttention = attention
        let final = 2 * down2 + 512                   // two blocks, 1x1 8 -> 1
        let forward = time + down1 + down2 + attention + down + mid + upconv + up1 + up2 + upAttention + final
        XCTAssertEqual(forward, 548_864)
        // backward: weight and input gradients (3x in all), attention 2x its products, and no input
        // gradient for the layers that read data (the first linear, the first 3x3 and 1x1)
        let forwardBackward = 3 * forward - (256 + 4_608 + 512)
        XCTAssertEqual(config.flops(batch: 2, height: 4, width: 4),
                       UNetFlops(forward: forward, forwardBackward: forwardBackward))
    }
}
