import Autograd
@testable import Datasets
import Foundation
import TestSupport
import XCTest

/// IDX files (plain and gzipped), the in-memory dataset's resizing and epochs, and augmentation.
final class DatasetsTests: XCTestCase {
    /// An IDX file: magic (0, 0, 0x08, rank), big-endian dimensions, bytes.
    func idx(_ dir: String, _ name: String, dims: [Int], bytes: [UInt8]) throws -> String {
        var b: [UInt8] = [0, 0, 0x08, UInt8(dims.count)]
        for d in dims { b += [UInt8(d >> 24 & 255), UInt8(d >> 16 & 255), UInt8(d >> 8 & 255), UInt8(d & 255)] }
        b += bytes
        let path = "\(dir)/\(name)"
        try Data(b).write(to: URL(fileURLWithPath: path))
        return path
    }

    func testReadsDimensionsAndBytesAndRejectsABadSize() throws {
        let dir = try temporaryDirectory()
        let path = try idx(dir, "a", dims: [2, 3], bytes: [1, 2, 3, 4, 5, 6])
        let r = try IDX.read(path)
        XCTAssertEqual(r.dims, [2, 3])
        XCTAssertEqual(r.bytes, [1, 2, 3, 4, 5, 6])
        let short = try idx(dir, "b", dims: [2, 3], bytes: [1, 2, 3])
        XCTAssertThrowsError(try IDX.read(short)) { e in
            XCTAssert("\(e)".contains("3 data bytes for dimensions [2, 3] (expected 6)"), "\(e)")
        }
    }

    func testResizeModesAndShuffledEpochs() throws {
        let dir = try temporaryDirectory()
        // three 2x2 images: all 0, all 255, a left-right ramp
        let images = try idx(dir, "i", dims: [3, 2, 2], bytes: [0, 0, 0, 0, 255, 255, 255, 255, 0, 255, 0, 255])
        let labels = try idx(dir, "l", dims: [3], bytes: [7, 8, 9])
        let same = try ImageDataset(imagesPath: images, labelsPath: labels, resize: .none, generator: Generator(seed: 1))
        XCTAssertEqual(same.images.values, [-1, -1, -1, -1, 1, 1, 1, 1, -1, 1, -1, 1])
        let pad = try ImageDataset(imagesPath: images, labelsPath: labels, size: 4, resize: .pad, generator: Generator(seed: 1))
        XCTAssertEqual(Array(pad.images.values[16..<32]), [-1, -1, -1, -1, -1, 1, 1, -1, -1, 1, 1, -1, -1, -1, -1, -1])
        // bilinear with half-pixel centres (PyTorch align_corners=False): the ramp's row is
        // -1, -0.5, 0.5, 1 at 4 pixels
        let up = try ImageDataset(imagesPath: images, labelsPath: labels, size: 4, generator: Generator(seed: 1))
        XCTAssertEqual(Array(up.images.values[32..<36]), [-1, -0.5, 0.5, 1])
        XCTAssertThrowsError(try ImageDataset(imagesPath: images, labelsPath: labels, size: 1, resize: .pad,
                                              generator: Generator(seed: 1)))
        // two epochs of three: each epoch serves every label once
        let (_, first) = try same.batch(3)
        let (_, second) = try same.batch(3)
        XCTAssertEqual(first.sorted(), [7, 8, 9])
        XCTAssertEqual(second.sorted(), [7, 8, 9])
        XCTAssertEqual(same.epoch, 1)
    }

    /// Augmentation: every image is its input moved by one whole-pixel offset within the limit,
    /// the uncovered border filled with background.
    func testShiftAugmentationMovesEachImageWithinTheLimit() throws {
        var rng = Generator(seed: 4)
        let x = Tensor.randn([20, 1, 6, 6], generator: &rng)
        let y = try Augment.shift(x, maxShift: 2, generator: &rng)
        var offsets = Set<[Int]>()
        for i in 0..<20 {
            var found: [Int]? = nil
            for dy in -2...2 {
                for dx in -2...2 {
                    var same = true
                    for r in 0..<6 {
                        for c in 0..<6 {
                            let (sr, sc) = (r - dy, c - dx)
                            let expect: Float = sr >= 0 && sr < 6 && sc >= 0 && sc < 6 ? x.data[i * 36 + sr * 6 + sc] : -1
                            if y.data[i * 36 + r * 6 + c] != expect { same = false }
                        }
                    }
                    if same && found == nil { found = [dy, dx] }
                }
            }
            offsets.insert(try XCTUnwrap(found, "image \(i) is not a shifted copy"))
        }
        XCTAssertGreaterThan(offsets.count, 5, "offsets vary")
        XCTAssertThrowsError(try Augment.shift(x, maxShift: 6, generator: &rng))
    }
}
