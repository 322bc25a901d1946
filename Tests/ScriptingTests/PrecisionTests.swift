import Foundation
import TestSupport
import XCTest

/// `--precision` on the recipe commands: bf16 is refused with one plain line where the CPU has
/// no AVX512-BF16 (DDPM_NO_BF16 makes any CPU answer so), a bad name is refused everywhere, and on
/// CPUs with it a bf16 sheet is written and says so in its provenance.
final class PrecisionTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws { dir = try temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    /// A tiny untrained model (8x8) saved as a weights file.
    func tinyWeights() throws -> String {
        let path = dir + "/tiny.safetensors"
        try runLua("""
            ddpm.seed(3)
            local m = ddpm.unet{base = 8, levels = 1, time_dim = 8, attention = {false}, attention_mid = false,
                                image_size = 8}
            m:save('\(path)')
            """)
        return path
    }

    func sample(_ weights: String, _ precision: String, environment: [String: String] = [:]) throws -> ProcessResult {
        try runDDPM(["sample", "--weights", weights, "--digits", "01", "--per-digit", "2", "--steps", "3",
                     "--precision", precision, "--out", dir + "/\(precision).png"], in: dir, environment: environment)
    }

    func testBF16IsRefusedWithoutTheInstructions() throws {
        let weights = try tinyWeights()
        let refused = try sample(weights, "bf16", environment: ["DDPM_NO_BF16": "1"])
        XCTAssertEqual(refused.status, 1, refused.stderr)
        let message = "precision bf16 needs a CPU with AVX512-BF16 (avx512_bf16 in /proc/cpuinfo), which this one "
            + "does not report: use precision fp32\n"
        XCTAssertTrue(refused.stderr.hasSuffix(message), refused.stderr)
        XCTAssertEqual(refused.stderr.split(separator: "\n").count, 1, refused.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/bf16.png"))
        let config = dir + "/bf16.lua"
        let text = "return {model = {base = 8, levels = 1, time_dim = 8, attention = {false}, attention_mid = false, "
            + "image_size = 8}, train = {precision = 'bf16'}}\n"
        try text.write(toFile: config, atomically: true, encoding: .utf8)
        let train = try runDDPM(["train", "--config", config, "--steps", "1", "--out", dir + "/run"], in: dir,
                                environment: ["DDPM_NO_BF16": "1"])
        XCTAssertEqual(train.status, 1, train.stderr)
        XCTAssertTrue(train.stderr.contains("precision bf16 needs a CPU with AVX512-BF16"), train.stderr)
        let bad = try sample(weights, "fp16")
        XCTAssertEqual(bad.status, 1, bad.stderr)
        XCTAssertTrue(bad.stderr.hasSuffix("precision 'fp16' is not one of fp32, bf16\n"), bad.stderr)
    }

    func testBF16SheetWhereTheCPUHasIt() throws {
        let weights = try tinyWeights()
        let fp32 = try sample(weights, "fp32")
        XCTAssertEqual(fp32.status, 0, fp32.stderr)
        let plain = try Data(contentsOf: URL(fileURLWithPath: dir + "/fp32.png"))
        XCTAssertNil(plain.range(of: Data("precision".utf8)), "an fp32 sheet records no precision (as before)")
        guard ProcessInfo.processInfo.environment["DDPM_NO_BF16"] == nil,
              (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?.contains("avx512_bf16") == true else {
            throw XCTSkip("no AVX512-BF16 on this CPU: the bf16 sheet is not made here")
        }
        let mixed = try sample(weights, "bf16")
        XCTAssertEqual(mixed.status, 0, mixed.stderr)
        let png = try Data(contentsOf: URL(fileURLWithPath: dir + "/bf16.png"))
        XCTAssertNotNil(png.range(of: Data("precision\u{0}bf16".utf8)), "the sheet's provenance names bf16")
    }
}
