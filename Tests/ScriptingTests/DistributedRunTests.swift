import Autograd
import Foundation
import Storage
import TestSupport
import XCTest

/// `ddpm` under `mpirun --oversubscribe -np 2` (as CI runs it: root, 2 cores): ddpm.dist across
/// ranks, data-parallel training that equals one process's, interrupts, refused mismatches, and
/// sharded sampling whose files equal one process's.
final class DistributedRunTests: XCTestCase {
    /// mpirun from PATH; the tests skip (with this message) only when it is not installed.
    func requireMPIRun() throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") where FileManager.default.isExecutableFile(atPath: "\(dir)/mpirun") {
            return "\(dir)/mpirun"
        }
        throw XCTSkip("mpirun not found: install openmpi-bin (scripts/setup.sh does) to run the multi-process tests")
    }

    /// Runs `mpirun --oversubscribe -np N ddpm ARGS` (or an MPMD command line with ":") and
    /// captures both streams. A job still running after `limit` seconds is killed and reported,
    /// so a hang fails the test instead of stalling the suite.
    func mpirun(_ np: Int, _ arguments: [String], in directory: String, environment: [String: String] = [:],
                limit: Double = 300) throws -> ProcessResult {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try requireMPIRun())
        p.arguments = ["--oversubscribe", "-np", "\(np)", ddpmExecutable] + arguments
        p.currentDirectoryURL = URL(fileURLWithPath: directory)
        p.environment = mpiEnvironment.merging(environment) { $1 }
        let out = try temporaryFile(directory, "out"), err = try temporaryFile(directory, "err")
        p.standardOutput = out.handle
        p.standardError = err.handle
        try p.run()
        let deadline = Date().addingTimeInterval(limit)
        while p.isRunning && Date() < deadline { usleep(50_000) }
        let hung = p.isRunning
        if hung { p.terminate(); p.waitUntilExit() }
        p.waitUntilExit()
        let o = (try? String(contentsOfFile: out.path, encoding: .utf8)) ?? ""
        let e = (try? String(contentsOfFile: err.path, encoding: .utf8)) ?? ""
        XCTAssertFalse(hung, "mpirun \(arguments.joined(separator: " ")) still running after \(limit) s: \(e)")
        return ProcessResult(status: p.terminationStatus, stdout: o, stderr: e)
    }

    /// Open MPI refuses to run as root (CI does) unless told twice.
    var mpiEnvironment: [String: String] {
        ProcessInfo.processInfo.environment.merging(
            ["DDPM_SCRIPTS": scriptsDir, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"]) { $1 }
    }

    func temporaryFile(_ dir: String, _ name: String) throws -> (path: String, handle: FileHandle) {
        let path = "\(dir)/.\(name)-\(UUID().uuidString)"
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        return (path, try FileHandle(forWritingTo: URL(fileURLWithPath: path)))
    }

    /// Every ddpm.dist function across two ranks; an error on one rank ends the job.
    func testDistFunctionsAcrossTwoRanks() throws {
        _ = try requireMPIRun()
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
            local d = ddpm.dist
            local r = d.rank()
            assert(d.size() == 2)
            local t = d.allreduce(ddpm.tensor.from({r + 1, 10}))
            assert(t:totable()[1] == 3 and t:totable()[2] == 20)
            local m = d.allreduce(ddpm.tensor.from({r, 4}), "mean")
            assert(m:totable()[1] == 0.5 and m:totable()[2] == 4)
            local b = d.broadcast(ddpm.tensor.from({r, r}), 1)
            assert(b:totable()[1] == 1)
            local first, count = d.shard(5)
            assert(first == (r == 0 and 1 or 3) and count == (r == 0 and 2 or 3))
            assert(d.any(r == 1) and not d.any(false))
            local g = d.gather(ddpm.tensor.full({r + 1, 2}, r))
            if r == 0 then assert(#g == 2 and g[2]:shape()[1] == 2 and g[2]:totable()[1] == 1) else assert(g == nil) end
            ddpm.seed(r)  -- different weights on each rank until the broadcast
            local model = ddpm.unet{base = 8, levels = 1, time_dim = 8, attention = {false}, attention_mid = false,
                                    image_size = 8}
            d.broadcast_parameters(model)
            local w = model:parameters()["time_mlp.1.weight"]
            local sum = d.allreduce(w:clone())
            assert((sum - w * 2):abs():max():item() == 0)
            local ok, err = pcall(d.allreduce, ddpm.tensor.zeros({r + 1}))
            assert(not ok and err:find("allreduce: tensor sizes differ between ranks %(1 to 2"), err)
            d.check("nothing", "same")
            d.barrier()
            print("rank " .. r .. " ok")
            """.write(toFile: dir + "/dist.lua", atomically: true, encoding: .utf8)
        var r = try mpirun(2, ["run", dir + "/dist.lua"], in: dir)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout.split(separator: "\n").sorted(), ["rank 0 ok", "rank 1 ok"], r.stderr)

        // rank 1 fails while rank 0 waits for it: the job ends, naming the failing rank
        try """
            if ddpm.dist.rank() == 1 then error("only rank 1 fails") end
            ddpm.dist.barrier()
            """.write(toFile: dir + "/fail.lua", atomically: true, encoding: .utf8)
        r = try mpirun(2, ["run", dir + "/fail.lua"], in: dir)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("rank 1 of 2: "), r.stderr)
        XCTAssertTrue(r.stderr.contains("fail.lua:1: only rank 1 fails"), r.stderr)
    }

    /// A tiny config (batch 8) that trains a step in well under a second. GroupNorm groups of two
    /// channels: with one channel per group a conv bias before the norm has an exactly zero
    /// gradient, whose float noise Adam's normalised first steps turn into +-lr updates in any
    /// summation order (one process with 1 or 2 threads differs there by 1e-3 of the tensor).
    func config(_ dir: String) throws -> String {
        let path = "\(dir)/tiny-dist.lua"
        try """
            local c = dofile('\(scriptsDir)/configs/tiny.lua')
            c.model.groups = 4
            c.train.batch = 8
            c.train.checkpoint_every = 1000
            c.train.sample_every = nil
            return c
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Two steps with 1 and 2 ranks: every tensor of the checkpoint (weights, Adam moments, EMA)
    /// within 1e-4 of the tensor's largest value; two 2-rank runs bit for bit; rank 0 alone logs.
    func testTwoRanksTrainAsOneProcess() throws {
        try requireMNIST()
        _ = try requireMPIRun()
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cfg = try config(dir)
        // fp32 (not the default auto, bf16 on some CPUs): Adam's first steps turn bf16's larger
        // rounding of near-zero gradients into differences beyond this tolerance
        let common = ["train", "--config", cfg, "--steps", "2", "--data", mnistDir, "--precision", "fp32"]
        let one = try runDDPM(common + ["--out", "\(dir)/one"], in: dir)
        XCTAssertEqual(one.status, 0, one.stderr)
        for run in ["a", "b"] {
            let r = try mpirun(2, common + ["--out", "\(dir)/\(run)"], in: dir)
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual(r.stdout.components(separatedBy: "trained 2 steps").count, 2,
                           "one report, from rank 0: \(r.stdout)")
            XCTAssertTrue(r.stdout.contains("on 2 ranks"), r.stdout)
        }
        let single = try SafeTensors.read("\(dir)/one/checkpoint.safetensors").dictionary
        let a = try SafeTensors.read("\(dir)/a/checkpoint.safetensors").dictionary
        let b = try SafeTensors.read("\(dir)/b/checkpoint.safetensors").dictionary
        XCTAssertEqual(Set(single.keys), Set(a.keys))
        XCTAssertGreaterThan(single.keys.filter { $0.hasPrefix("model/") }.count, 50)
        var worst = (0.0, "")
        for (name, s) in single {
            let x = try XCTUnwrap(a[name]), y = try XCTUnwrap(b[name])
            XCTAssertEqual(x.values, y.values, "\(name): two 2-rank runs differ")
            let scale = s.values.map { abs(Double($0)) }.max() ?? 0
            let diff = zip(s.values, x.values).map { abs(Double($0) - Double($1)) }.max() ?? 0
            let relative = scale > 0 ? diff / scale : diff
            if relative > worst.0 { worst = (relative, name) }
        }
        XCTAssertLessThanOrEqual(worst.0, 1e-4, "largest difference: \(worst.1)")
        // the logged loss and gradient norm are the whole batch's (Adam with clipping would hide
        // a wrongly scaled gradient in the weights): the same as one process's
        let rows = { (run: String) in
            try String(contentsOfFile: "\(dir)/\(run)/loss.csv", encoding: .utf8).split(separator: "\n").dropFirst()
                .map { $0.split(separator: ",").prefix(3).map { Double($0) ?? -1 } }
        }
        let (logOne, logTwo) = (try rows("one"), try rows("a"))
        XCTAssertEqual(logTwo.count, 2, "one row per step, written by rank 0 alone")
        for (x, y) in zip(logOne, logTwo) {
            XCTAssertEqual(x[1], y[1], accuracy: 1e-5, "loss")
            XCTAssertEqual(x[2], y[2], accuracy: 1e-3 * x[2], "gradient norm")
        }
    }

    /// Ctrl-C to mpirun: the ranks stop at the same step and rank 0 checkpoints once; --resume
    /// under mpirun continues; ranks given different options refuse to start.
    func testInterruptResumeAndMismatchedRanks() throws {
        try requireMNIST()
        let mpirunPath = try requireMPIRun()
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cfg = try config(dir)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: mpirunPath)
        p.arguments = ["--oversubscribe", "-np", "2", ddpmExecutable, "train", "--config", cfg, "--steps", "100000",
                       "--out", "\(dir)/run", "--data", mnistDir]
        p.environment = mpiEnvironment
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        let log = "\(dir)/run/loss.csv"
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline && p.isRunning {
            if let text = try? String(contentsOfFile: log, encoding: .utf8), text.split(separator: "\n").count >= 4 {
                break
            }
            usleep(100_000)
        }
        // mpirun passes it on as SIGTERM to every rank and kills them 1 s later; a step of this
        // config takes a few milliseconds
        kill(p.processIdentifier, SIGINT)
        p.waitUntilExit()
        XCTAssertNotEqual(p.terminationStatus, 0)
        let info = try runDDPM(["info", "\(dir)/run/checkpoint.safetensors"])
        let saved = try XCTUnwrap(info.stdout.range(of: #""step":(\d+)"#, options: .regularExpression)
            .flatMap { Int(info.stdout[$0].dropFirst(7)) }, info.stdout + info.stderr)
        XCTAssertGreaterThanOrEqual(saved, 3)
        let logged = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").count - 1
        XCTAssertEqual(logged, saved, "the checkpoint is the last logged step")

        let resumed = try mpirun(2, ["train", "--config", cfg, "--steps", "\(saved + 2)", "--out", "\(dir)/run",
                                     "--resume", "--data", mnistDir], in: dir)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("resumed from \(dir)/run/checkpoint.safetensors at step \(saved)"),
                      resumed.stdout)
        let rows = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(rows.count, saved + 3)  // header + one row per step, no duplicates
        XCTAssertEqual(rows.last?.hasPrefix("\(saved + 2),"), true)

        // MPMD: rank 0 and rank 1 get different batches
        let rank = ["train", "--config", cfg, "--steps", "1", "--out", "\(dir)/x", "--data", mnistDir, "--batch"]
        let mismatch = try mpirun(1, rank + ["8", ":", "-np", "1", ddpmExecutable] + rank + ["16"], in: dir)
        XCTAssertNotEqual(mismatch.status, 0)
        XCTAssertTrue(mismatch.stderr.contains("the ranks disagree on the options and config"), mismatch.stderr)
        XCTAssertTrue(mismatch.stderr.contains("(this rank's differs)"), mismatch.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/x/checkpoint.safetensors"))
    }

    /// `mpirun -np 2 ddpm sample` (sheet, folder, IDX) and `ddpm eval` write the same files and
    /// numbers as one process sampling the same batches with the same threads per process (the
    /// ranks get batches of min(--batch, images / ranks); other batch sizes or thread counts
    /// round differently and can move a pixel by one level).
    func testShardedSamplingAndEvalMatchOneProcess() throws {
        try requireMNIST()
        _ = try requireMPIRun()
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for size in [8, 32] {
            try runLua("""
                ddpm.seed(3)
                local m = ddpm.unet{base = 8, levels = 1, time_dim = 8, attention = {false}, attention_mid = false,
                                    image_size = \(size)}
                m:save('\(dir)/tiny\(size).safetensors', {default_guidance = 2})
                """)
        }
        try runLua("ddpm.seed(5); ddpm.classifier{width = 4, features = 16}:save('\(dir)/clf.safetensors')")
        let threads = ["DDPM_THREADS": "1", "DDPM_DATA": mnistDir]
        let sample = ["sample", "--weights", dir + "/tiny8.safetensors", "--steps", "3", "--seed", "5",
                      "--digits", "386", "--per-digit", "3"]
        // 9 images: one process in batches of 5 (5 + 4); two ranks with the default --batch 100 get the same
        for (name, extra) in [("sheet.png", [String]()), ("digits/", []), ("idx", ["--format", "idx"])] {
            let one = try runDDPM(sample + extra + ["--batch", "5", "--out", "\(dir)/one/\(name)"],
                                  environment: threads)
            XCTAssertEqual(one.status, 0, one.stderr)
            let two = try mpirun(2, sample + extra + ["--out", "\(dir)/two/\(name)"], in: dir, environment: threads)
            XCTAssertEqual(two.status, 0, two.stderr)
            XCTAssertEqual(two.stdout.components(separatedBy: "wrote ").count, 2, "rank 0 alone reports: \(two.stdout)")
        }
        let files = try FileManager.default.subpathsOfDirectory(atPath: dir + "/one").sorted()
        XCTAssertEqual(try FileManager.default.subpathsOfDirectory(atPath: dir + "/two").sorted(), files)
        XCTAssertEqual(files.filter { $0.hasPrefix("digits/") }.count, 9)
        // a sampler that fails on rank 1's second batch (batches of 2: rounds of two batches): the
        // job fails and the first round's images are not written either
        let failing = dir + "/rank1.lua"
        try """
            local calls = 0
            return {description = "fails on rank 1", default_steps = 2, sample = function(ctx)
              calls = calls + 1
              if ddpm.dist.rank() == 1 and calls == 2 then error("rank 1 fails") end
              return ctx.x
            end}
            """.write(toFile: failing, atomically: true, encoding: .utf8)
        let failed = try mpirun(2, sample + ["--sampler", failing, "--batch", "2", "--out", "\(dir)/failed/"],
                                in: dir, environment: threads)
        XCTAssertNotEqual(failed.status, 0, failed.stdout)
        XCTAssertTrue(failed.stderr.contains("rank 1 fails"), failed.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/failed"))
        for f in files where !f.hasSuffix("digits") && f != "idx" {
            XCTAssertEqual(FileManager.default.contents(atPath: "\(dir)/one/\(f)"),
                           FileManager.default.contents(atPath: "\(dir)/two/\(f)"), "\(f) differs")
        }

        // eval: 2 digits per class (20) in batches of 10 (one per rank); the report's numbers agree
        let eval = ["eval", "--weights", dir + "/tiny32.safetensors", "--classifier", dir + "/clf.safetensors",
                    "--per-class", "2", "--steps", "2", "--guidance", "1", "--json"]
        let one = try runDDPM(eval + ["--batch", "10"], environment: threads)
        XCTAssertEqual(one.status, 0, one.stderr)
        let two = try mpirun(2, eval, in: dir, environment: threads)
        XCTAssertEqual(two.status, 0, two.stderr)
        func report(_ text: String) throws -> NSDictionary {
            let j = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], text)
            return j.filter { !$0.key.hasSuffix("seconds") } as NSDictionary
        }
        let r1 = try report(one.stdout), r2 = try report(two.stdout)
        XCTAssertEqual(r1, r2)
        XCTAssertNotNil(r1["frechet"])
    }
}
