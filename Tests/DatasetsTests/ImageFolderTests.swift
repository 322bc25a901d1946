import Autograd
@testable import Datasets
import Foundation
import TestSupport
import XCTest

/// Folder datasets (one subfolder of grayscale PNGs per class): labels from the folder names,
/// resizing, and every kind of bad data refused with the file named.
final class ImageFolderTests: XCTestCase {
    func mkdir(_ path: String) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func expectError(_ body: @autoclosure () throws -> Any, contains text: String,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { e in
            XCTAssert("\(e)".contains(text), "\"\(e)\" lacks \"\(text)\"", file: file, line: line)
        }
    }

    func load(_ path: String, size: Int? = nil) throws -> ImageDataset {
        try ImageFolder.load(path, size: size, generator: Generator(seed: 1))
    }

    /// Numeric folder names are the labels; other names get 0..K-1 in sorted order. Images are
    /// read class by class in file-name order; hidden files and top-level non-PNGs are skipped.
    func testLabelsFromFolderNamesAndImagesInOrder() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // numeric: "3" and "10" keep their numbers (not their sorted positions)
        for (name, value) in [("10", UInt8(255)), ("3", UInt8(0))] {
            try mkdir("\(dir)/num/\(name)")
            try TestPNG.writeGray("\(dir)/num/\(name)/b.png", width: 2, height: 2, value: value)
            try TestPNG.writeGray("\(dir)/num/\(name)/a.png", width: 2, height: 2, value: value / 2)
        }
        try "notes".write(toFile: "\(dir)/num/README", atomically: true, encoding: .utf8)
        try "x".write(toFile: "\(dir)/num/3/.DS_Store", atomically: true, encoding: .utf8)
        let num = try load("\(dir)/num")
        XCTAssertEqual(num.labels, [3, 3, 10, 10])
        XCTAssertEqual(num.classes, 11)
        XCTAssertEqual(num.size, 2)
        XCTAssertEqual(num.images.values.enumerated().filter { $0.offset % 4 == 0 }.map(\.element),
                       [-1, -1, Float(127) / 127.5 - 1, 1], "class 3 before class 10, a.png before b.png")
        XCTAssertEqual(num.classNames?[3], "3")
        XCTAssertEqual(num.classNames?[10], "10")
        XCTAssertEqual(num.classNames?[4], "")
        // names: byte order, ant < cat < dog
        for name in ["dog", "ant", "cat"] {
            try mkdir("\(dir)/names/\(name)")
            try TestPNG.writeGray("\(dir)/names/\(name)/x.png", width: 4, height: 2, value: 9)
        }
        let names = try load("\(dir)/names", size: 8)
        XCTAssertEqual(names.labels, [0, 1, 2])
        XCTAssertEqual(names.classNames, ["ant", "cat", "dog"])
        XCTAssertEqual(names.images.shape, [3, 1, 8, 8], "4x2 images resized to 8x8")
        // 1-bit grayscale is grayscale: 0 -> black, 1 -> white
        try mkdir("\(dir)/bits/0")
        try TestPNG.write("\(dir)/bits/0/one.png", width: 8, height: 1, bitDepth: 1, colorType: TestPNG.gray,
                          rows: [[0b1010_0000]])
        XCTAssertEqual(Array(try load("\(dir)/bits").images.values.prefix(8)), [1, -1, 1, -1, -1, -1, -1, -1])
    }

    /// Each kind of bad folder is an error naming the folder or file and what is wrong.
    func testBadFoldersAreErrors() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func good(_ root: String, _ cls: String = "0", _ file: String = "a.png", width: Int = 2) throws {
            try mkdir("\(root)/\(cls)")
            try TestPNG.writeGray("\(root)/\(cls)/\(file)", width: width, height: 2, value: 1)
        }
        expectError(try load("\(dir)/nowhere"), contains: "folder dataset \(dir)/nowhere: no such folder")
        try "x".write(toFile: "\(dir)/file", atomically: true, encoding: .utf8)
        expectError(try load("\(dir)/file"), contains: "folder dataset \(dir)/file: not a folder")
        try mkdir("\(dir)/none")
        expectError(try load("\(dir)/none"), contains: "folder dataset \(dir)/none: no class subfolders")

        try good("\(dir)/top")
        try TestPNG.writeGray("\(dir)/top/loose.png", width: 2, height: 2, value: 0)
        expectError(try load("\(dir)/top"), contains: "loose.png is a PNG at the top; put the images in one subfolder")

        try good("\(dir)/empty")
        try mkdir("\(dir)/empty/1")
        try "x".write(toFile: "\(dir)/empty/1/.hidden", atomically: true, encoding: .utf8)
        expectError(try load("\(dir)/empty"),
                    contains: "folder dataset \(dir)/empty: class folder 1 is empty (no .png files)")

        try good("\(dir)/jpeg")
        try "x".write(toFile: "\(dir)/jpeg/0/b.jpg", atomically: true, encoding: .utf8)
        expectError(try load("\(dir)/jpeg"), contains: "0/b.jpg is not a .png file")

        try good("\(dir)/nested")
        try mkdir("\(dir)/nested/0/more")
        expectError(try load("\(dir)/nested"), contains: "0/more is a folder inside a class folder")

        try good("\(dir)/twice", "1")
        try good("\(dir)/twice", "01")
        expectError(try load("\(dir)/twice"), contains: "class folders 01 and 1 both name label 1")

        try good("\(dir)/mixed", "0", "a.png", width: 2)
        try good("\(dir)/mixed", "1", "b.png", width: 3)
        expectError(try load("\(dir)/mixed"),
                    contains: "mixed image sizes: \(dir)/mixed/1/b.png is 3x2 but \(dir)/mixed/0/a.png is 2x2")

        // what each non-grayscale PNG is, named
        let px = [UInt8](repeating: 200, count: 16)
        let kinds: [(String, UInt8, UInt8, [UInt8], [(String, [UInt8])], String)] = [
            ("rgba", TestPNG.rgba, 8, Array(px.prefix(8)), [], "an RGBA PNG (colour with alpha)"),
            ("rgb", TestPNG.rgb, 8, Array(px.prefix(6)), [], "an RGB (colour) PNG"),
            ("palette", TestPNG.palette, 8, [0, 0], [("PLTE", [0, 0, 0])], "a palette (indexed-colour) PNG"),
            ("grayalpha", TestPNG.grayAlpha, 8, [1, 2, 3, 4], [], "a grayscale PNG with alpha"),
            ("gray16", TestPNG.gray, 16, [1, 2, 3, 4], [], "a 16-bit grayscale PNG"),
        ]
        for (name, type, depth, row, chunks, found) in kinds {
            try good("\(dir)/\(name)")
            let file = "\(dir)/\(name)/0/z.png"
            try TestPNG.write(file, width: 2, height: 2, bitDepth: depth, colorType: type, rows: [row, row],
                              chunks: chunks)
            expectError(try load("\(dir)/\(name)"),
                        contains: "\(file): \(found); expected 8-bit grayscale without alpha")
        }
    }

    /// An IDX pair whose label count differs from its image count is an error naming both files.
    func testIDXImageAndLabelCountsMustMatch() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let images = "\(dir)/images", labels = "\(dir)/labels"
        try IDX.write(imagesPath: images, labelsPath: labels, pixels: [UInt8](repeating: 0, count: 12), rows: 2,
                      cols: 2, labels: [1, 2, 3])
        try Data([0, 0, 8, 1, 0, 0, 0, 2, 1, 2]).write(to: URL(fileURLWithPath: labels))
        expectError(try ImageDataset(imagesPath: images, labelsPath: labels, generator: Generator(seed: 1)),
                    contains: "\(labels): 2 labels for 3 images in \(images)")
    }
}
