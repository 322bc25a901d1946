import Autograd
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
        let auto = try sample(weights, "auto", environment: ["DDPM_NO_BF16": "1"])
        XCTAssertEqual(auto.status, 0, "auto is fp32 where bf16 is refused: " + auto.stderr)
        let autoSheet = try Data(contentsOf: URL(fileURLWithPath: dir + "/auto.png"))
        XCTAssertNil(autoSheet.range(of: Data("precision".utf8)), "auto picked fp32 and records no precision")
        let bad = try sample(weights, "fp16")
        XCTAssertEqual(bad.status, 1, bad.stderr)
        XCTAssertTrue(bad.stderr.hasSuffix("precision 'fp16' is not one of fp32, bf16, auto\n"), bad.stderr)
    }

    /// A resumed run keeps the precision it was started with, whether a flag or its config chose it:
    /// here `--precision fp32` over a config asking for bf16, resumed without the flag on a CPU that
    /// refuses bf16; where the CPU has it, a run started with `--precision bf16` resumes in bf16.
    func testAResumedRunKeepsItsPrecision() throws {
        let config = dir + "/asks.lua"
        let text = "return {model = {base = 8, levels = 1, time_dim = 8, attention = {false}, attention_mid = false, "
            + "image_size = 8}, train = {precision = 'bf16', batch = 4}}\n"
        try text.write(toFile: config, atomically: true, encoding: .utf8)
        try requireMNIST()
        let noBF16 = ["DDPM_NO_BF16": "1", "DDPM_DATA": mnistDir]
        let run = dir + "/fp32run"
        var r = try runDDPM(["train", "--config", config, "--precision", "fp32", "--steps", "1", "--out", run],
                            in: dir, environment: noBF16)
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try runDDPM(["train", "--resume", "--steps", "2", "--out", run], in: dir, environment: noBF16)
        XCTAssertEqual(r.status, 0, r.stderr)
        var info = try runDDPM(["info", run + "/model.safetensors"])
        XCTAssertTrue(info.stdout.contains("  steps: 2\n"), info.stdout)
        XCTAssertFalse(info.stdout.contains("precision: bf16"), "resumed in fp32: " + info.stdout)

        guard ProcessInfo.processInfo.environment["DDPM_NO_BF16"] == nil,
              (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?.contains("avx512_bf16") == true else {
            throw XCTSkip("no AVX512-BF16 on this CPU: the bf16 run is not made here")
        }
        let plain = dir + "/plain.lua"
        try text.replacingOccurrences(of: "precision = 'bf16', ", with: "").write(toFile: plain, atomically: true,
                                                                                  encoding: .utf8)
        let mixed = dir + "/bf16run"
        r = try runDDPM(["train", "--config", plain, "--precision", "bf16", "--steps", "1", "--out", mixed], in: dir,
                        environment: ["DDPM_DATA": mnistDir])
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try runDDPM(["train", "--resume", "--steps", "2", "--out", mixed], in: dir,
                        environment: ["DDPM_DATA": mnistDir])
        XCTAssertEqual(r.status, 0, r.stderr)
        info = try runDDPM(["info", mixed + "/model.safetensors"])
        XCTAssertTrue(info.stdout.contains("precision: bf16"), "resumed in bf16: " + info.stdout)
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
        // auto: the faster precision here (Precision.fastest, from the measured dot-product rate)
        let auto = try sample(weights, "auto")
        XCTAssertEqual(auto.status, 0, auto.stderr)
        let autoSheet = try Data(contentsOf: URL(fileURLWithPath: dir + "/auto.png"))
        XCTAssertEqual(autoSheet.range(of: Data("precision\u{0}bf16".utf8)) != nil, Precision.fastest == .bf16,
                       "the sheet records what auto picked")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir + "/\(Precision.fastest.rawValue).png")),
                       autoSheet, "the same sheet as that precision's")
    }
}
