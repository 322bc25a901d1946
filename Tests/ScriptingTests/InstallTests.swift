import Foundation
import Storage
import TestSupport
import XCTest

/// `scripts/install.sh --prefix DIR`: `ddpm` runs by name from any folder and finds its recipes
/// and the shipped weights under DIR; a stock `lua5.4` loads the Lua C module.
final class InstallTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws { dir = try temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    /// The folder of the built products (ddpm and libDDPMLua.so).
    var buildDir: String { URL(fileURLWithPath: ddpmExecutable).deletingLastPathComponent().path }

    /// Runs a program found through `path` in `directory`, without DDPM_SCRIPTS.
    func run(_ program: String, _ arguments: [String], in directory: String, path: String,
             environment: [String: String] = [:]) throws -> ProcessResult {
        var env: [String: String?] = ["DDPM_SCRIPTS": nil, "PATH": path]
        for (k, v) in environment { env[k] = v }
        return try runProcess("/usr/bin/env", [program] + arguments, in: directory, environment: env)
    }

    func install(_ prefix: String) throws {
        let systemPath = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        let r = try run(repoRoot + "/scripts/install.sh", ["--prefix", prefix, "--from", buildDir],
                        in: dir, path: systemPath)
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    func testInstalledCommandFindsItsRecipesAndWeights() throws {
        let prefix = dir + "/prefix"
        try install(prefix)
        for f in ["bin/ddpm", "lib/lua/5.4/ddpm.so", "share/ddpm/scripts/sample.lua", "share/ddpm/scripts/lib/args.lua",
                  "share/ddpm/scripts/configs/tiny.lua", "share/ddpm/weights/mnist-small.safetensors",
                  "share/ddpm/weights/mnist-classifier.safetensors"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: prefix + "/" + f), f)
        }
        try FileManager.default.createDirectory(atPath: dir + "/work", withIntermediateDirectories: true)
        let path = prefix + "/bin:" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        let r = try run("ddpm", ["sample", "--steps", "1", "--digits", "4", "--per-digit", "1", "--out", "four.png"],
                        in: dir + "/work", path: path)
        XCTAssertEqual(r.status, 0, r.stderr)
        let text = try String(contentsOfFile: dir + "/work/four.png", encoding: .isoLatin1)
        XCTAssertTrue(text.contains("weights\u{0}weights/mnist-small.safetensors"), "the installed default weights")
        let sha = try SHA256.hex(ofFile: repoRoot + "/weights/mnist-small.safetensors")
        XCTAssertTrue(text.contains("weights_sha256\u{0}" + sha))
        let help = try run("ddpm", ["run", prefix + "/share/ddpm/scripts/gif.lua", "--help"],
                           in: dir + "/work", path: path)
        XCTAssertEqual(help.status, 0, help.stderr)
        XCTAssertTrue(help.stdout.hasPrefix("usage: ddpm gif"), help.stdout)
        // again over the first installation: replaced in place
        try install(prefix)
    }

    /// `lua5.4 -e 'require "ddpm"'` with LUA_CPATH: the same tables as the host, the same numbers,
    /// binding errors as Lua errors.
    func testStockLuaRequiresTheModule() throws {
        let systemPath = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        guard try run("sh", ["-c", "command -v lua5.4"], in: dir, path: systemPath).status == 0 else {
            throw XCTSkip("lua5.4 is not installed (scripts/setup.sh installs it)")
        }
        try FileManager.default.createDirectory(atPath: dir + "/cpath", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: dir + "/cpath/ddpm.so",
                                                   withDestinationPath: buildDir + "/libDDPMLua.so")
        let code = """
            local names = {}
            for k, v in pairs(ddpm) do
              if type(v) == "table" then for k2 in pairs(v) do names[#names + 1] = k .. "." .. k2 end
              else names[#names + 1] = k end
            end
            table.sort(names)
            ddpm.seed(1)
            local m = ddpm.unet{base = 8, levels = 1, time_dim = 8, attention = {false}, \
            attention_mid = false, image_size = 8}
            local y = m:forward(ddpm.tensor.randn({2, 1, 8, 8}), {3, 700}, {1, -1})
            local ok, err = pcall(ddpm.tensor.zeros, "a")
            result = table.concat(names, " ") .. "\\n" .. string.format("%.9g", y:sum():item()) .. "\\n" .. err
            """
        let host = try runLua(code)
        let expected = try XCTUnwrap(host.global("result") as? String)
        let r = try run("lua5.4", ["-e", "local ddpm = require 'ddpm'\n" + code + "\nprint(result)"],
                        in: dir, path: systemPath,
                        environment: ["LUA_CPATH": dir + "/cpath/?.so"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, expected + "\n")
        XCTAssertTrue(expected.contains("schedule.from_weights"), expected)
        XCTAssertTrue(expected.hasSuffix(
            "ddpm.tensor.zeros: bad argument #1 (shape table such as {2, 3} expected, got \"a\")"))
    }
}
