import Foundation
import TestSupport
import XCTest

/// The bundled recipes' command lines: --help, option values and their ranges, output naming
/// rules, and input errors printed without a Lua traceback. Each case runs the real `ddpm`.
final class RecipeOptionsTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws { dir = try temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    static let recipes = ["train.lua", "sample.lua", "inpaint.lua", "gif.lua", "eval.lua", "train_classifier.lua"]

    /// A tiny untrained model (8x8, linear schedule T = 1000) saved as a weights file.
    func tinyWeights() throws -> String {
        let path = dir + "/tiny.safetensors"
        try runLua("""
            ddpm.seed(3)
            local m = ddpm.unet{base = 8, levels = 1, time_dim = 8, attention = {false}, attention_mid = false, \
            image_size = 8}
            m:save('\(path)')
            """)
        return path
    }

    /// An input error: exit 1, exactly `message` on stderr (no traceback), nothing on stdout.
    func expectPlainError(_ args: [String], _ message: String, file: StaticString = #filePath,
                          line: UInt = #line) throws {
        let r = try runDDPM(args, in: dir)
        XCTAssertEqual(r.status, 1, r.stderr, file: file, line: line)
        XCTAssertEqual(r.stderr, message + "\n", file: file, line: line)
    }

    /// `--help` on every bundled recipe: usage, then each option (the same set the recipe accepts)
    /// with a one-line description; exit 0.
    func testEveryBundledRecipeHasHelp() throws {
        for recipe in Self.recipes {
            let path = scriptsDir + "/" + recipe
            let r = try runDDPM(["run", path, "--help"], in: dir)
            XCTAssertEqual(r.status, 0, "\(recipe): \(r.stderr)")
            XCTAssertTrue(r.stdout.hasPrefix("usage: "), "\(recipe): \(r.stdout)")
            var described: [String] = []
            for line in r.stdout.split(separator: "\n") where line.hasPrefix("  --") {
                let parts = line.dropFirst(2).split(separator: " ", omittingEmptySubsequences: true)
                let name = String(parts[0])
                if name != "--help" { described.append(name) }
                XCTAssertFalse(line.contains("(no description)"), "\(recipe): \(line)")
                XCTAssertGreaterThan(parts.count, name == "--help" ? 1 : 2, "\(recipe): no description in \(line)")
            }
            // the options the recipe accepts, from its unknown-option error
            let bad = try runDDPM(["run", path, "--no-such-option"], in: dir)
            XCTAssertEqual(bad.status, 1)
            let known = try XCTUnwrap(bad.stderr.range(of: "(known: ").map { bad.stderr[$0.upperBound...] }, bad.stderr)
            let accepted = known.prefix(while: { $0 != ";" }).split(separator: " ").map(String.init)
            XCTAssertEqual(described.sorted(), accepted.sorted(), recipe)
            XCTAssertGreaterThan(accepted.count, 3, recipe)
        }
    }

    /// Usage and input errors are the message alone; errors with a position keep the traceback.
    func testInputErrorsPrintTheMessageWithoutTraceback() throws {
        try expectPlainError(["run", scriptsDir + "/sample.lua", "--bogus"],
                             "unknown option --bogus (known: --batch --digits --eta --format --guidance "
                             + "--guidance-interval --init --out --per-digit --precision --sampler --sampler-opt "
                             + "--scale --seed --steps --strength --weights; "
                             + "--help describes them)")
        try expectPlainError(["run", scriptsDir + "/gif.lua", "stray"],
                             "unexpected argument 'stray' (options look like --name value; --help lists them)")
        let plain = dir + "/plain.lua"
        try "local function check() error('bad input: 3 is not a digit', 0) end\ncheck()\n"
            .write(toFile: plain, atomically: true, encoding: .utf8)
        try expectPlainError(["run", plain], "bad input: 3 is not a digit")
        // the recipe commands print an input error from a binding without the traceback
        let missing = try runDDPM(["sample", "--weights", "nope.safetensors"], in: dir)
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.hasSuffix(": ddpm.load_model: nope.safetensors: no such file\n"), missing.stderr)
        XCTAssertEqual(missing.stderr.split(separator: "\n").count, 1, missing.stderr)
        let positioned = dir + "/positioned.lua"
        try "local x = nil\nprint(x.field)\n".write(toFile: positioned, atomically: true, encoding: .utf8)
        let r = try runDDPM(["run", positioned], in: dir)
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("positioned.lua:2: attempt to index a nil value"), r.stderr)
        XCTAssertTrue(r.stderr.contains("stack traceback:"), r.stderr)
    }

    /// A value after an option is its value even when it starts with '-'; counts are checked
    /// (no silent default for 0 or a negative number, no DDPM run past the schedule's end).
    func testNegativeAndZeroOptionValues() throws {
        let weights = try tinyWeights()
        let sample = ["sample", "--weights", weights, "--digits", "3", "--per-digit", "2"]
        var r = try runDDPM(sample + ["--steps", "2", "--seed", "-1", "--out", dir + "/neg.png"], in: dir)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("row 0 (digit 3): seeds -1..0"), r.stdout)
        r = try runDDPM(["run", scriptsDir + "/sample.lua", "--weights", weights, "--steps", "2", "--seed", "-1",
                         "--digits", "3", "--per-digit", "2", "--out", dir + "/neg-run.png"], in: dir)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(FileManager.default.contents(atPath: dir + "/neg.png"),
                       FileManager.default.contents(atPath: dir + "/neg-run.png"))

        try expectPlainError(sample + ["--steps", "-5"], "--steps must be a whole number >= 1 or 'auto', got '-5'")
        try expectPlainError(sample + ["--steps", "0"], "--steps must be a whole number >= 1 or 'auto', got '0'")
        try expectPlainError(sample + ["--steps", "1001"], "--steps 1001 is more than the schedule's 1000 timesteps")
        try expectPlainError(sample + ["--sampler", "ddpm", "--steps", "10000000"],
                             "--steps 10000000 is more than the schedule's 1000 timesteps")
        try expectPlainError(sample + ["--sampler", "ddpm", "--steps", "10"],
                             "--sampler ddpm visits every one of the schedule's 1000 timesteps: leave --steps out")
        try expectPlainError(["gif", "--weights", weights, "--frames", "0", "--out", dir + "/gifs"],
                             "--frames must be >= 2, got 0")
        try expectPlainError(["eval", "--weights", weights, "--steps", "-2"],
                             "--steps must be a whole number >= 1 or 'auto', got '-2'")
        try expectPlainError(["train", "--steps", "0", "--out", dir + "/run"],
                             "--steps must be a whole number >= 1 or 'config', got '0'")
        try expectPlainError(["train", "--batch", "-8", "--out", dir + "/run"],
                             "--batch must be a whole number >= 1 or 'config', got '-8'")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/gifs"))
    }

    /// --out: a sheet is FILE.png, a folder of PNGs ends in /, an IDX pair goes into a folder.
    func testOutputNamingRules() throws {
        let weights = try tinyWeights()
        let sample = ["sample", "--weights", weights, "--steps", "2", "--digits", "1", "--per-digit", "1"]
        try expectPlainError(sample + ["--out", "digits"],
                             "--out digits: a sheet is a .png file and a folder of PNGs ends in / (--out digits/)")
        try expectPlainError(sample + ["--format", "idx", "--out", "x.png"],
                             "--format idx writes two files into a folder: --out x.png names a file "
                             + "(e.g. --out out/synthetic/)")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).sorted(), ["tiny.safetensors"])
        let r = try runDDPM(sample + ["--format", "idx", "--out", "set.v2"], in: dir)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/set.v2/train-images-idx3-ubyte"))
    }
}
