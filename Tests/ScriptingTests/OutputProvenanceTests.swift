import Autograd
import Foundation
import Imaging
import Storage
import TestSupport
import XCTest

/// What the written files tell a reader: loss.png's axes carry numbers (read back here with the
/// font's glyphs), GIFs carry their provenance in a comment extension, and the weights path in
/// provenance is standardised.
final class OutputProvenanceTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws { dir = try temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    /// The 3x5 glyphs of scripts/lib/plot.lua, drawn at 2x with a pitch of 8 pixels.
    static let glyphs: [Character: [String]] = [
        "0": ["###", "#.#", "#.#", "#.#", "###"], "1": ["##.", ".#.", ".#.", ".#.", "###"],
        "2": ["###", "..#", "###", "#..", "###"], "3": ["###", "..#", "###", "..#", "###"],
        "4": ["#.#", "#.#", "###", "..#", "..#"], "5": ["###", "#..", "###", "..#", "###"],
        "6": ["###", "#..", "###", "#.#", "###"], "7": ["###", "..#", "..#", "..#", "..#"],
        "8": ["###", "#.#", "###", "#.#", "###"], "9": ["###", "#.#", "###", "..#", "###"],
        ".": ["...", "...", "...", "...", ".#."], "-": ["...", "...", "###", "...", "..."],
        "e": ["...", "###", "###", "#..", "###"], "l": ["#..", "#..", "#..", "#..", "##."],
        "o": ["...", "###", "#.#", "#.#", "###"], "g": [".##", "#.#", ".##", "..#", "##."],
    ]

    struct UnreadableGlyph: Error, CustomStringConvertible { let description: String }

    struct PlotImage {
        let width: Int, height: Int, gray: [UInt8]
        func ink(_ x: Int, _ y: Int) -> Bool {
            x >= 0 && y >= 0 && x < width && y < height && gray[y * width + x] < 128
        }

        /// The text whose first inked column is `x0` and top row `y0`, glyph by glyph.
        func read(x0: Int, y0: Int, until x1: Int) throws -> String {
            var out = "", x = x0
            while x < x1 {
                let cell = (0..<5).map { r in String((0..<3).map { c in ink(x + 2 * c, y0 + 2 * r) ? "#" : "." }) }
                if cell.allSatisfy({ $0 == "..." }) { break }
                guard let ch = OutputProvenanceTests.glyphs.first(where: { $0.value == cell })?.key else {
                    throw UnreadableGlyph(description: "unreadable glyph at \(x),\(y0): \(cell)")
                }
                out.append(ch)
                x += 8
            }
            return out
        }

        /// Bands of rows with ink in columns `cols`, as (first row, last row).
        func bands(rows: Range<Int>, cols: Range<Int>) -> [(Int, Int)] {
            var out: [(Int, Int)] = [], start: Int? = nil
            for y in rows {
                let any = cols.contains { ink($0, y) }
                if any && start == nil { start = y }
                if !any, let s = start { out.append((s, y - 1)); start = nil }
            }
            if let s = start { out.append((s, rows.upperBound - 1)) }
            return out
        }
    }

    /// Reads the y tick labels (top to bottom), the x tick labels (left to right) and the text
    /// at the top right of a plot.
    func readPlot(_ path: String) throws -> (y: [String], x: [String], corner: String) {
        let png = try PNG.read(path)
        let img = PlotImage(width: png.width, height: png.height, gray: png.gray)
        let axisX = try XCTUnwrap((0..<img.width).first { x in
            (0..<img.height).filter { img.ink(x, $0) }.count > img.height / 2
        })
        let axisY = try XCTUnwrap((0..<img.height).last { y in
            (0..<img.width).filter { img.ink($0, y) }.count > img.width / 2
        })
        var ys: [String] = []
        for (top, bottom) in img.bands(rows: 0..<(axisY + 5), cols: 0..<(axisX - 4)) {
            XCTAssertEqual(bottom - top + 1, 10, "a y label is 10 pixels high")
            let x0 = try XCTUnwrap((0..<axisX - 4).first { x in (top...bottom).contains { img.ink(x, $0) } })
            ys.append(try img.read(x0: x0, y0: top, until: axisX - 4))
        }
        var xs: [String] = []
        let labelRows = img.bands(rows: (axisY + 5)..<img.height, cols: 0..<img.width)
        XCTAssertEqual(labelRows.count, 1)
        let top = labelRows[0].0
        var x = 0
        while x < img.width {
            if (top..<(top + 10)).contains(where: { img.ink(x, $0) }) {
                let text = try img.read(x0: x, y0: top, until: img.width)
                xs.append(text)
                x += text.count * 8
            } else {
                x += 1
            }
        }
        let corner = try XCTUnwrap((axisX + 1..<img.width).last { x in (0..<10).contains { img.ink(x, 12 + $0) } })
        let cornerText = (try? img.read(x0: corner - 21, y0: 12, until: img.width)) ?? ""
        return (ys, xs, cornerText)
    }

    /// loss.png's axes: five numbered ticks on each, the steps along x, log-scaled losses marked.
    func testLossPlotHasNumberedAxes() throws {
        try runLua("""
            local plot = require("lib.plot")
            ddpm.image.save(plot.curve({2, 1.5, 1.2, 1.0, 0.9, 0.8}, {x_last = 400}), '\(dir)/linear.png')
            ddpm.image.save(plot.curve({1, 0.3, 0.1, 0.03, 0.01}), '\(dir)/log.png')
            """)
        let linear = try readPlot(dir + "/linear.png")
        XCTAssertEqual(linear.y, ["2", "1.7", "1.4", "1.1", "0.8"])
        XCTAssertEqual(linear.x, ["0", "100", "200", "300", "400"])
        XCTAssertNotEqual(linear.corner, "log")
        let log = try readPlot(dir + "/log.png")
        XCTAssertEqual(log.y, ["1", "0.316", "0.1", "0.0316", "0.01"])
        XCTAssertEqual(log.x, ["0", "1", "3", "4", "5"])
        XCTAssertEqual(log.corner, "log")
    }

    /// `ddpm gif` writes its provenance into each GIF (a comment extension); the weights path there
    /// and in `ddpm sample`'s PNGs is standardised: absolute, or relative to the repository for
    /// the shipped weights.
    func testGIFProvenanceAndStandardisedWeightsPath() throws {
        try FileManager.default.createDirectory(atPath: dir + "/w/sub", withIntermediateDirectories: true)
        let weights = dir + "/w/tiny.safetensors"
        try runLua("""
            ddpm.seed(3)
            local m = ddpm.unet{base = 8, levels = 1, time_dim = 8, attention = {false}, \
            attention_mid = false, image_size = 8}
            m:save('\(weights)')
            """)
        let given = "w/sub/..//./tiny.safetensors"
        var r = try runDDPM(["gif", "--weights", given, "--steps", "3", "--digits", "27", "--seed", "5",
                             "--out", "gifs"], in: dir)
        XCTAssertEqual(r.status, 0, r.stderr)
        let sha = try SHA256.hex(ofFile: weights)
        let expected = ["Software=ddpm-swift", "ddpm_version=1", "digits=7", "eta=0", "guidance=1",
                        "guidance_interval=all"] + (Precision.fastest == .bf16 ? ["precision=bf16"] : [])
            + ["sampler=ddim", "seed=6", "steps=3", "weights=\(weights)", "weights_sha256=\(sha)"]
        let info = try GIFInfo(path: dir + "/gifs/digit-7.gif")
        XCTAssertEqual(info.comments, [expected.joined(separator: "\n")])
        XCTAssertEqual(info.frames, 4)
        let strip = try GIFInfo(path: dir + "/gifs/digits.gif")
        XCTAssertEqual(strip.comments.count, 1)
        XCTAssertTrue(strip.comments[0].contains("digits=27\n"), strip.comments[0])
        XCTAssertTrue(strip.comments[0].contains("seed=5 (digit i uses seed + i)\n"), strip.comments[0])

        r = try runDDPM(["sample", "--weights", given, "--steps", "2", "--digits", "1", "--per-digit", "1",
                         "--out", "one.png"], in: dir)
        XCTAssertEqual(r.status, 0, r.stderr)
        let text = try String(contentsOfFile: dir + "/one.png", encoding: .isoLatin1)
        XCTAssertTrue(text.contains("weights\u{0}\(weights)"), "absolute and standardised")
        // the shipped weights: relative to the repository, the same text from any folder
        r = try runDDPM(["sample", "--weights", repoRoot + "/scripts/../weights/mnist-fast.safetensors", "--steps", "1",
                         "--digits", "1", "--per-digit", "1", "--out", "shipped.png"], in: dir)
        XCTAssertEqual(r.status, 0, r.stderr)
        let shipped = try String(contentsOfFile: dir + "/shipped.png", encoding: .isoLatin1)
        XCTAssertTrue(shipped.contains("weights\u{0}weights/mnist-fast.safetensors"), "relative to the repository")
    }
}
