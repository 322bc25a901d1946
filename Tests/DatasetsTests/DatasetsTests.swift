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
        let same = try ImageDataset(imagesPath: images, labelsPath: labels, resize: .none,
                                    generator: Generator(seed: 1))
        XCTAssertEqual(same.images.values, [-1, -1, -1, -1, 1, 1, 1, 1, -1, 1, -1, 1])
        let pad = try ImageDataset(imagesPath: images, labelsPath: labels, size: 4, resize: .pad,
                                   generator: Generator(seed: 1))
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

    func expectError(_ body: @autoclosure () throws -> Any, contains text: String,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { e in
            XCTAssert("\(e)".contains(text), "\"\(e)\" lacks \"\(text)\"", file: file, line: line)
        }
    }

    /// Headers a hostile or broken file can carry: dimensions whose product overflows, images of
    /// no rows, a FIFO and a device instead of a file. Each is an error naming the file.
    /// Images already in memory (generated digits): copied, served in shuffled epochs; bad shapes
    /// and labels are errors.
    func testDatasetFromImagesInMemory() throws {
        let x = try Tensor([-1, 0, 0.5, 1, 1, 1, 1, 1, -1, -1, -1, -1], shape: [3, 1, 2, 2])
        let ds = try ImageDataset(images: x, labels: [4, 0, 9], generator: Generator(seed: 2))
        x.data[0] = 7  // the dataset holds a copy
        XCTAssertEqual(ds.images.values, [-1, 0, 0.5, 1, 1, 1, 1, 1, -1, -1, -1, -1])
        XCTAssertEqual([ds.count, ds.size], [3, 2])
        let (images, labels) = try ds.batch(3)
        XCTAssertEqual(labels.sorted(), [0, 4, 9])
        let index = try XCTUnwrap(labels.firstIndex(of: 0))
        XCTAssertEqual(Array(images.values[(4 * index)..<(4 * index + 4)]), [1, 1, 1, 1])
        XCTAssertThrowsError(try ImageDataset(images: x, labels: [1, 2], generator: Generator(seed: 2))) { e in
            XCTAssertEqual((e as? TensorError)?.message, "dataset: 2 labels for 3 images")
        }
        XCTAssertThrowsError(try ImageDataset(images: x, labels: [1, -1, 2], generator: Generator(seed: 2))) { e in
            XCTAssertEqual((e as? TensorError)?.message, "dataset: label -1 is negative")
        }
        XCTAssertThrowsError(try ImageDataset(images: Tensor(zeros: [3, 1, 2, 3]), labels: [1, 2, 3],
                                              generator: Generator(seed: 2))) { e in
            XCTAssertEqual((e as? TensorError)?.message,
                           "dataset: images must be (count >= 1, 1, size, size), got [3, 1, 2, 3]")
        }
    }

    func testHostileIDXHeadersAreErrors() throws {
        let dir = try temporaryDirectory()
        let labels = try idx(dir, "l", dims: [20], bytes: [UInt8](repeating: 1, count: 20))
        let huge = try idx(dir, "huge", dims: [0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF], bytes: [])
        expectError(try IDX.read(huge),
                    contains: "\(huge): dimensions [4294967295, 4294967295, 4294967295] describe more than")
        expectError(try ImageDataset(imagesPath: huge, labelsPath: labels, generator: Generator(seed: 1)),
                    contains: "describe more than 1073741824 bytes")
        let noRows = try idx(dir, "rows", dims: [20, 0, 28], bytes: [])
        expectError(try ImageDataset(imagesPath: noRows, labelsPath: labels, generator: Generator(seed: 1)),
                    contains: "\(noRows): images of 0x28 pixels (rows and columns must be >= 1)")
        let noCols = try idx(dir, "cols", dims: [20, 28, 0], bytes: [])
        expectError(try ImageDataset(imagesPath: noCols, labelsPath: labels, size: 8, generator: Generator(seed: 1)),
                    contains: "images of 28x0 pixels")
        XCTAssertEqual(mkfifo("\(dir)/fifo", 0o600), 0)
        expectError(try IDX.read("\(dir)/fifo"), contains: "\(dir)/fifo: not a regular file (a FIFO)")
        expectError(try IDX.read("/dev/zero"), contains: "/dev/zero: not a regular file (a character device)")
    }

    /// A dataset's saved stream position comes from a checkpoint file: out-of-range words are an
    /// error, not a trapping conversion.
    func testRestoreRejectsOutOfRangeState() throws {
        let dir = try temporaryDirectory()
        let ds = try ImageDataset(
            imagesPath: try idx(dir, "i", dims: [2, 2, 2], bytes: [UInt8](repeating: 0, count: 8)),
            labelsPath: try idx(dir, "l", dims: [2], bytes: [1, 2]), generator: Generator(seed: 1))
        let words = Array(ds.state[2...])
        expectError(try ds.restore([0, UInt64.max] + words), contains: "saved state does not match this dataset")
        expectError(try ds.restore([UInt64.max, 0] + words), contains: "saved state does not match this dataset")
        XCTAssertNoThrow(try ds.restore([1, 2] + words))
    }

    /// ds:batch sizes come from scripts: a batch beyond the tensor limit is an error before any
    /// allocation.
    func testHugeBatchIsAnError() throws {
        let dir = try temporaryDirectory()
        let ds = try ImageDataset(
            imagesPath: try idx(dir, "i", dims: [2, 2, 2], bytes: [UInt8](repeating: 0, count: 8)),
            labelsPath: try idx(dir, "l", dims: [2], bytes: [1, 2]), generator: Generator(seed: 1))
        expectError(try ds.batch(1_000_000_000_000),
                    contains: "dataset:batch: shape [1000000000000, 1, 2, 2] has more than")
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
                            let inside = sr >= 0 && sr < 6 && sc >= 0 && sc < 6
                            let expect: Float = inside ? x.data[i * 36 + sr * 6 + sc] : -1
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
