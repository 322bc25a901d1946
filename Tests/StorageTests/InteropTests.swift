import Autograd
import Foundation
import Layers
import Storage
import TestSupport
import XCTest

/// A PyTorch checkpoint converted by scripts/convert_pth.py loads and gives PyTorch's output.
final class InteropTests: XCTestCase {
    func testConvertedPyTorchCheckpointMatchesPyTorchOutput() throws {
        let dir = repoRoot + "/Tests/Fixtures/interop"
        let model = try UNet.load("\(dir)/converted_seed16.safetensors")
        XCTAssertEqual(model.config,
                       UNetConfig(base: 16, levels: 2, timeDim: 32, attention: [false, true], imageSize: 16))
        let io = try SafeTensors.read("\(dir)/seed16_io.safetensors")
        let out = try withNoGrad { try model(try XCTUnwrap(io["x"]), t: [37, 912], labels: [3, -1]) }
        expectClose("converted forward", out, io["out"], tolerance: 5e-5)
    }
}
