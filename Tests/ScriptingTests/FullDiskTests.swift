import Foundation
import TestSupport
import XCTest

/// Writes that fail half way (a full disk, simulated with a file-size limit: `ulimit -f` with
/// SIGXFSZ ignored makes a write past the limit fail with EFBIG, as ENOSPC would): exit status
/// 1, the old files untouched, no temp file left.
final class FullDiskTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = try temporaryDirectory()
        // a tiny model: 8x8 digits, sampled in a fraction of a second
        try "ddpm.unet{base = 8, levels = 1, time_dim = 8, image_size = 8}:save('tiny.safetensors')\n"
            .write(toFile: "\(dir)/make.lua", atomically: true, encoding: .utf8)
        XCTAssertEqual(try runDDPM(["run", "make.lua"], in: dir).status, 0)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    /// `ddpm ARGS` with files limited to `blocks` of 512 bytes.
    func runWithSmallDisk(_ args: [String], blocks: Int) throws -> ProcessResult {
        let quoted = ([ddpmExecutable] + args).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        let command = "trap '' XFSZ; ulimit -f \(blocks); exec \(quoted.joined(separator: " "))"
        return try runProcess("/bin/sh", ["-c", command], in: dir)
    }

    func contents(_ folder: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
    }

    func testIDXPairOnAFullDiskFailsAndKeepsTheOldPair() throws {
        let out = "\(dir)/synthetic"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try "old images".write(toFile: "\(out)/train-images-idx3-ubyte", atomically: true, encoding: .utf8)
        try "old labels".write(toFile: "\(out)/train-labels-idx1-ubyte", atomically: true, encoding: .utf8)
        // 200 digits of 8x8: 12816 bytes of images, over a 4 KB limit (8 KB where sh counts in KB)
        let r = try runWithSmallDisk(["sample", "--weights", "tiny.safetensors", "--steps", "2", "--per-digit", "20",
                                      "--format", "idx", "--out", out], blocks: 8)
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssert(r.stderr.contains("\(out)/train-images-idx3-ubyte: write failed (File too large); "
                                    + "the previous file is untouched"), r.stderr)
        XCTAssertEqual(try String(contentsOfFile: "\(out)/train-images-idx3-ubyte", encoding: .utf8), "old images")
        XCTAssertEqual(try String(contentsOfFile: "\(out)/train-labels-idx1-ubyte", encoding: .utf8), "old labels")
        XCTAssertEqual(try contents(out), ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"])
        // with room, the pair is written and reads back
        let ok = try runDDPM(["sample", "--weights", "tiny.safetensors", "--steps", "2", "--format", "idx",
                              "--out", out], in: dir)
        XCTAssertEqual(ok.status, 0, ok.stderr)
        let check = "local ds = ddpm.data.idx{images = '\(out)/train-images-idx3-ubyte', "
            + "labels = '\(out)/train-labels-idx1-ubyte'}\n"
            + "local _, l = ds:slice(1, 100)\nprint(#ds, ds.size, l[1], l[100])\n"
        try check.write(toFile: "\(dir)/check.lua", atomically: true, encoding: .utf8)
        XCTAssertEqual(try runDDPM(["run", "check.lua"], in: dir).stdout, "100\t8\t0\t9\n")
    }

    func testPNGOnAFullDiskFailsAndLeavesNoTempFile() throws {
        let out = "\(dir)/sheets"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try "old sheet".write(toFile: "\(out)/sheet.png", atomically: true, encoding: .utf8)
        // 100 digits of 8x8 at scale 2 with provenance: ~2.7 KB, over a 1 KB limit (2 KB where sh counts in KB)
        let r = try runWithSmallDisk(["sample", "--weights", "tiny.safetensors", "--steps", "2",
                                      "--out", "\(out)/sheet.png"], blocks: 2)
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssert(r.stderr.contains("\(out)/sheet.png: write failed (File too large)"), r.stderr)
        XCTAssertEqual(try String(contentsOfFile: "\(out)/sheet.png", encoding: .utf8), "old sheet")
        XCTAssertEqual(try contents(out), ["sheet.png"])
    }
}
