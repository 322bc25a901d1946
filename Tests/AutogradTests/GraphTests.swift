@testable import Autograd
import XCTest

/// The autodiff graph: accumulation into leaves, no-grad mode, and the checks backward makes on
/// what each op's backward returns.
final class GraphTests: XCTestCase {
    func testGraphAccumulatesAndNoGradRecordsNothing() throws {
        let w = try Tensor([2], shape: [1])
        w.requiresGrad = true
        try (w * w).sum().backward()
        try (w * 3).sum().backward()
        XCTAssertEqual(w.grad?.values, [7])  // 2w + 3, accumulated over two backward passes
        let y = try withNoGrad { try w * w }
        XCTAssertFalse(y.requiresGrad)
        XCTAssertThrowsError(try y.sum().backward())
        let v = try Tensor([1, 2], shape: [2])
        v.requiresGrad = true
        XCTAssertThrowsError(try (v * v).backward()) { e in
            XCTAssertEqual((e as? TensorError)?.message,
                           "backward: called on a tensor of shape [2]; it needs one element (a loss)")
        }
    }

    /// A leaf x (3 elements) through an op whose backward is `backward`, then summed.
    func run(_ backward: @escaping (Tensor) throws -> [Tensor?]) throws -> Tensor {
        let x = try Tensor([1, 2, 3], shape: [3])
        x.requiresGrad = true
        try x.copy().recorded(.square, [x], backward: backward).sum().backward()
        return x
    }

    /// A deliberately wrong op: a gradient of another element count than its input's is an error
    /// naming the op, not a gradient read in the wrong shape.
    func testWrongSizedGradientIsCaught() throws {
        XCTAssertThrowsError(try run { _ in [Tensor(zeros: [4])] }) { e in
            XCTAssertEqual((e as? TensorError)?.message,
                           "backward: internal error: square returned a gradient of 4 elements for its input 0 "
                           + "of shape [3] (3 elements)")
        }
        XCTAssertThrowsError(try run { _ in [Tensor(zeros: [2])] })
    }

    /// One gradient per input, no more and no fewer.
    func testWrongNumberOfGradientsIsCaught() throws {
        XCTAssertThrowsError(try run { g in [g, g] }) { e in
            XCTAssertEqual((e as? TensorError)?.message,
                           "backward: internal error: square returned 2 gradients for its 1 inputs")
        }
        XCTAssertThrowsError(try run { _ in [] })
    }

    /// A gradient with the input's element count in another shape is taken in the input's shape.
    func testGradientOfEqualCountTakesTheInputsShape() throws {
        let x = try run { g in [Tensor(storage: g.storage, shape: [1, 3])] }
        XCTAssertEqual(x.grad?.shape, [3])
        XCTAssertEqual(x.grad?.values, [1, 1, 1])
    }
}
