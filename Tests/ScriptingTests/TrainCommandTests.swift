import Foundation
import TestSupport
import XCTest

/// Training from the CLI: NaN stops with the last good checkpoint kept, Ctrl-C checkpoints and
/// exits, --resume continues.
final class TrainCommandTests: XCTestCase {
    func config(_ dir: String, lr: String, every: Int = 1, file: String = "tiny-test.lua") throws -> String {
        let path = "\(dir)/\(file)"
        try """
            local c = dofile('\(scriptsDir)/configs/tiny.lua')
            c.train.lr = \(lr)
            c.train.batch = 8
            c.train.checkpoint_every = \(every)
            c.train.sample_every = nil
            c.schedule = {file = "schedules/cosine_lua.lua", steps = 1000}
            return c
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func testNaNLossStopsAndKeepsTheLastGoodCheckpoint() throws {
        try requireMNIST()
        let dir = try temporaryDirectory()
        let cfg = try config(dir, lr: "1e30")
        let r = try runDDPM(["train", "--config", cfg, "--steps", "20", "--out", "\(dir)/run", "--data", mnistDir],
                            in: dir)
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssert(r.stderr.contains("loss became"), r.stderr)
        XCTAssert(r.stderr.contains("The last good checkpoint is \(dir)/run/checkpoint.safetensors"), r.stderr)
        let info = try runDDPM(["info", "\(dir)/run/checkpoint.safetensors"], in: dir)
        XCTAssertEqual(info.status, 0, info.stderr)
        XCTAssert(info.stdout.contains("\"step\":"), info.stdout)
    }

    func testInterruptCheckpointsAndResumeContinues() throws {
        try requireMNIST()
        let dir = try temporaryDirectory()
        let cfg = try config(dir, lr: "1e-3", every: 1000)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: ddpmExecutable)
        p.arguments = ["train", "--config", cfg, "--steps", "100000", "--out", "\(dir)/run", "--data", mnistDir]
        p.environment = ProcessInfo.processInfo.environment.merging(["DDPM_SCRIPTS": scriptsDir]) { $1 }
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        // wait until a few steps are logged, then Ctrl-C
        let log = "\(dir)/run/loss.csv"
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: log, encoding: .utf8), text.split(separator: "\n").count >= 4 {
                break
            }
            usleep(100_000)
        }
        kill(p.processIdentifier, SIGINT)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 130)
        let saved = try savedStep("\(dir)/run/checkpoint.safetensors")
        XCTAssertGreaterThanOrEqual(saved, 3)
        let resumed = try runDDPM(["train", "--config", cfg, "--steps", "\(saved + 2)", "--out", "\(dir)/run",
                                   "--resume", "--data", mnistDir], in: dir)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssert(resumed.stdout.contains("resumed from \(dir)/run/checkpoint.safetensors at step \(saved)"),
                  resumed.stdout)
        XCTAssertEqual(try savedStep("\(dir)/run/checkpoint.safetensors"), saved + 2)
        let rows = try String(contentsOfFile: "\(dir)/run/loss.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(rows.count, saved + 3)  // header + one row per step, no duplicates
    }

    /// The `step` plain value in a checkpoint's metadata.
    func savedStep(_ path: String) throws -> Int {
        let info = try runDDPM(["info", path])
        guard let r = info.stdout.range(of: #""step":(\d+)"#, options: .regularExpression) else {
            XCTFail("no step in: \(info.stdout)")
            return -1
        }
        return Int(info.stdout[r].dropFirst(7)) ?? -1
    }
}
