import Autograd
import Foundation
import Imaging
import TestSupport
import XCTest

/// Frames, PNG and GIF files, each decoded by something other than our encoder: PNG by libpng,
/// GIF by the structure reader in TestSupport.
final class ImageFilesTests: XCTestCase {
    /// Twelve levels from -1 to 1 in a 3x4 image.
    var ramp: Tensor { get throws { try Tensor((0..<12).map { Float($0) / 11 * 2 - 1 }, shape: [1, 1, 3, 4]) } }

    func testGrayFramesQuantizeAndScale() throws {
        let img = try Frames.gray(try ramp, scale: 2)
        XCTAssertEqual(img.width, 8)
        XCTAssertEqual(img.height, 6)
        XCTAssertEqual(Array(img.pixels.prefix(8)), [0, 0, 23, 23, 46, 46, 70, 70])
        XCTAssertEqual(img.pixels[5 * 8 + 7], 255)
        XCTAssertThrowsError(try Frames.gray(Tensor(zeros: [2, 1, 3, 4]), scale: 1), "a batch is not one image")
    }

    func testGridPlacesImagesInRowsWithPadding() throws {
        let x = try Tensor([-0.5, 0, 0.5], shape: [3, 1, 1, 1])
        let g = try Frames.grid(x, cols: 2, pad: 1, value: -1)
        XCTAssertEqual(g.shape, [1, 5, 5])
        XCTAssertEqual(g.values, [-1, -1, -1, -1, -1,
                                  -1, -0.5, -1, 0, -1,
                                  -1, -1, -1, -1, -1,
                                  -1, 0.5, -1, -1, -1,
                                  -1, -1, -1, -1, -1])
    }

    func testPNGRoundTripThroughLibpngKeepsPixelsAndText() throws {
        let dir = try temporaryDirectory()
        let img = try Frames.gray(try ramp, scale: 2)
        try PNG.write("\(dir)/a.png", width: img.width, height: img.height, gray: img.pixels, text: [("seed", "7")])
        let png = try PNG.read("\(dir)/a.png")
        XCTAssertEqual(png.width, 8)
        XCTAssertEqual(png.height, 6)
        XCTAssertEqual(png.gray, img.pixels)
        XCTAssertEqual(try PNG.textChunks("\(dir)/a.png")["seed"], "7")
        XCTAssertThrowsError(try PNG.read("\(dir)/missing.png"))
    }

    func testGIFHasSizeLoopDelaysAndFrames() throws {
        let dir = try temporaryDirectory()
        let img = try Frames.gray(try ramp, scale: 3)
        let gif = try GIFWriter(path: "\(dir)/a.gif", width: img.width, height: img.height, loop: 0)
        try gif.add(img.pixels, delay: 7)
        try gif.add(img.pixels.map { 255 - $0 }, delay: 7)
        try gif.add(img.pixels, delay: 150)
        XCTAssertThrowsError(try gif.add([0, 1], delay: 7), "a frame of the wrong size")
        try gif.close()
        XCTAssertEqual(try GIFInfo(path: "\(dir)/a.gif"),
                       GIFInfo(version: "GIF89a", width: 12, height: 9, loop: 0, delays: [7, 7, 150], frames: 3))
    }
}
