import Foundation
import Storage
import TestSupport
import XCTest

/// A training run's folder survives what happens to runs: a resume keeps the run's config and
/// schedule, a kill -9 loses no logged row and leaves a consistent checkpoint/model pair after
/// the next resume, and two runs never write into one folder.
final class RunFolderTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        try requireMNIST()
        dir = try temporaryDirectory()
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    /// A tiny config with its own schedule (sigmoid, 500 steps: not the default's cosine 1000).
    func config(every: Int = 1000, name: String = "run-config.lua") throws -> String {
        let path = "\(dir)/\(name)"
        try """
            local c = dofile('\(scriptsDir)/configs/tiny.lua')
            c.train.batch = 8
            c.train.checkpoint_every = \(every)
            c.train.sample_every = nil
            c.schedule = {kind = "sigmoid", steps = 500}
            return c
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func train(_ args: [String]) throws -> ProcessResult {
        try runDDPM(["train", "--data", mnistDir] + args, in: dir)
    }

    func metadata(_ path: String) throws -> [String: String] { try SafeTensors.inspect(path).metadata }

    /// Starts `ddpm train ARGS` and returns once it has logged its first step (its progress line
    /// on stderr comes after the step's row in loss.csv).
    func startTrain(_ args: [String]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: ddpmExecutable)
        p.arguments = ["train", "--data", mnistDir] + args
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        p.environment = ProcessInfo.processInfo.environment.merging(["DDPM_SCRIPTS": scriptsDir]) { $1 }
        let err = Pipe()
        p.standardOutput = FileHandle.nullDevice
        p.standardError = err
        try p.run()
        var seen = ""
        while !seen.contains("train: ") {
            let chunk = err.fileHandleForReading.availableData
            if chunk.isEmpty { break }  // the process ended
            seen += String(decoding: chunk, as: UTF8.self)
        }
        XCTAssert(seen.contains("train: "), "no progress line: \(seen)")
        return p
    }

    func killHard(_ p: Process) {
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
    }

    func testResumeContinuesUnderTheRunsSavedConfigAndSchedule() throws {
        let cfg = try config()
        let first = try train(["--config", cfg, "--steps", "2", "--out", "run"])
        XCTAssertEqual(first.status, 0, first.stderr)
        let before = try metadata("\(dir)/run/model.safetensors")
        XCTAssertEqual(before["schedule"], "sigmoid")
        // no --config: the run's own config and schedule, not the default (tiny: cosine 1000)
        let resumed = try train(["--steps", "4", "--out", "run", "--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        let after = try metadata("\(dir)/run/model.safetensors")
        XCTAssertEqual(after["steps"], "4")
        XCTAssertEqual(after["schedule"], "sigmoid")
        XCTAssertEqual(after["schedule_steps"], "500")
        XCTAssertEqual(after["betas"], before["betas"])
        XCTAssertEqual(after["recipe"], cfg)
        // the same config again is fine; another one is an error unless overridden
        XCTAssertEqual(try train(["--config", cfg, "--steps", "5", "--out", "run", "--resume"]).status, 0)
        let tiny = "\(scriptsDir)/configs/tiny.lua"
        let other = try train(["--config", tiny, "--steps", "6", "--out", "run", "--resume"])
        XCTAssertEqual(other.status, 1)
        XCTAssert(other.stderr.contains("--resume: --config \(tiny) differs from the config "
                                        + "the run was started with (\(cfg), saved in run/checkpoint.safetensors)"),
                  other.stderr)
        XCTAssert(other.stderr.contains("add --override-config to continue under \(tiny)"), other.stderr)
        XCTAssertEqual(try metadata("\(dir)/run/model.safetensors")["steps"], "5")
        let overridden = try train(["--config", tiny, "--steps", "6", "--out", "run", "--resume", "--override-config"])
        XCTAssertEqual(overridden.status, 0, overridden.stderr)
        XCTAssert(overridden.stdout.contains("--override-config: continuing run/checkpoint.safetensors under \(tiny)"),
                  overridden.stdout)
        XCTAssertEqual(try metadata("\(dir)/run/model.safetensors")["schedule"], "cosine")
    }

    /// A kill -9 of a resumed run before its first checkpoint: loss.csv still holds every row the
    /// earlier run saved (it is appended to, never rewritten) plus the rows logged since, and
    /// model.safetensors, left one save behind by a kill between the two writes, was rewritten
    /// from the checkpoint when the run resumed.
    func testKillDuringAResumedRunLosesNoRowAndLeavesAConsistentPair() throws {
        let cfg = try config()
        XCTAssertEqual(try train(["--config", cfg, "--steps", "2", "--out", "run"]).status, 0)
        let older = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/run/model.safetensors"))
        XCTAssertEqual(try train(["--steps", "4", "--out", "run", "--resume"]).status, 0)
        // a kill between the checkpoint write and the model write leaves the model one save behind
        try older.write(to: URL(fileURLWithPath: "\(dir)/run/model.safetensors"))
        let log = try String(contentsOfFile: "\(dir)/run/loss.csv", encoding: .utf8)
        XCTAssertEqual(log.split(separator: "\n").count, 5)

        let p = try startTrain(["--steps", "100000", "--out", "run", "--resume"])
        killHard(p)
        let after = try String(contentsOfFile: "\(dir)/run/loss.csv", encoding: .utf8)
        XCTAssert(after.hasPrefix(log), "rows lost:\n\(after)")
        XCTAssert(after.dropFirst(log.count).hasPrefix("5,"), "step 5 not logged:\n\(after)")
        XCTAssertEqual(try metadata("\(dir)/run/model.safetensors")["steps"], "4")
        let checkpoint = try SafeTensors.read("\(dir)/run/checkpoint.safetensors")
        let model = try SafeTensors.read("\(dir)/run/model.safetensors")
        XCTAssert(checkpoint.metadata["values"]?.contains("\"step\":4") == true)
        for (name, t) in model.tensors {
            XCTAssertEqual(t.values, checkpoint["ema/\(name)"]?.values, name)
        }
        // and the next resume continues from step 4 with both files in step
        XCTAssertEqual(try train(["--steps", "6", "--out", "run", "--resume"]).status, 0)
        let rows = try String(contentsOfFile: "\(dir)/run/loss.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(rows.last?.hasPrefix("6,"), true)
        XCTAssertEqual(try metadata("\(dir)/run/model.safetensors")["steps"], "6")
    }

    func testASecondRunOnTheSameFolderIsRefusedAndAKilledRunsLockIsTakenOver() throws {
        let cfg = try config()
        let p = try startTrain(["--config", cfg, "--steps", "100000", "--out", "run"])
        let lock = "\(dir)/run/train.lock"
        XCTAssertEqual(try String(contentsOfFile: lock, encoding: .utf8), "\(p.processIdentifier)\n")
        let second = try train(["--config", cfg, "--steps", "2", "--out", "run"])
        XCTAssertEqual(second.status, 1)
        XCTAssert(second.stderr.contains("run is in use by process \(p.processIdentifier) (it holds run/train.lock); "
                                         + "wait for it to finish or choose another folder"), second.stderr)
        killHard(p)
        // the killed run's lock file is still there, with its pid: taken over
        XCTAssertEqual(try String(contentsOfFile: lock, encoding: .utf8), "\(p.processIdentifier)\n")
        let third = try train(["--config", cfg, "--steps", "2", "--out", "run"])
        XCTAssertEqual(third.status, 0, third.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: lock), "a finished run removes its lock")
    }
}
