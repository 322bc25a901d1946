import Autograd
import Foundation
import Scripting

/// For a `ddpm` child whose numbers are compared bit for bit with this process's: the OpenBLAS
/// kernels this process loaded (on a CPU Debian's OpenBLAS does not know, ddpm would pick its own
/// core type, and the products' last bits differ).
var sameBLASKernels: [String: String] { ["OPENBLAS_CORETYPE": BLAS.coreName] }
import TestSupport
import XCTest

let scriptsDir = repoRoot + "/scripts"

/// data/mnist of the repository (scripts/setup.sh puts it there), or $DDPM_DATA.
var mnistDir: String {
    if let d = ProcessInfo.processInfo.environment["DDPM_DATA"], !d.isEmpty { return d }
    return repoRoot + "/data/mnist"
}

func requireMNIST(file: StaticString = #filePath, line: UInt = #line) throws {
    guard FileManager.default.fileExists(atPath: mnistDir + "/train-images-idx3-ubyte.gz")
            || FileManager.default.fileExists(atPath: mnistDir + "/train-images-idx3-ubyte") else {
        XCTFail("MNIST not found in \(mnistDir): run scripts/setup.sh (the test command does)", file: file, line: line)
        throw XCTSkip("no MNIST")
    }
}

/// Runs Lua code in a fresh host with the bundled scripts on package.path.
@discardableResult
func runLua(_ code: String) throws -> LuaHost {
    setenv("DDPM_SCRIPTS", scriptsDir, 1)
    let host = try LuaHost()
    try host.run(code: "package.path = '\(scriptsDir)/?.lua;' .. package.path\n" + code, name: "=test")
    return host
}

/// The built `ddpm` executable next to the test bundle.
var ddpmExecutable: String {
    let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    let candidates = [dir.appendingPathComponent("ddpm"),
                      dir.deletingLastPathComponent().appendingPathComponent("ddpm")]
    for candidate in candidates {
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate.path }
    }
    return repoRoot + "/.build/debug/ddpm"
}

struct ProcessResult {
    let status: Int32
    let stdout: String
    let stderr: String
}

/// Runs `executable` with `arguments` in `directory` and captures both streams. The environment
/// is this process's with DDPM_SCRIPTS naming the bundled scripts, changed by `environment`
/// (a nil value removes a variable).
func runProcess(_ executable: String, _ arguments: [String], in directory: String? = nil,
                environment: [String: String?] = [:]) throws -> ProcessResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    if let directory { p.currentDirectoryURL = URL(fileURLWithPath: directory) }
    var env = ProcessInfo.processInfo.environment
    env["DDPM_SCRIPTS"] = scriptsDir
    for (k, v) in environment { env[k] = v }
    p.environment = env
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return ProcessResult(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                         stderr: String(decoding: e, as: UTF8.self))
}

/// Runs `ddpm` with arguments in `directory`; captures both streams.
func runDDPM(
    _ arguments: [String], in directory: String? = nil, environment: [String: String] = [:]
) throws -> ProcessResult {
    try runProcess(ddpmExecutable, arguments, in: directory, environment: environment)
}

/// Tests that run the real `ddpm` in a fresh folder and expect clear failures: `script` writes a
/// Lua file there; `expectFailure` checks the exit status, the message and that nothing crashed.
class DDPMProcessTestCase: XCTestCase {
    var dir = ""

    override func setUpWithError() throws { dir = try temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func script(_ name: String, _ code: String) throws -> String {
        let path = "\(dir)/\(name)"
        try code.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Runs `ddpm args` in the folder (after `shell prefix`, e.g. a ulimit, when given).
    @discardableResult
    func expectFailure(_ args: [String], contains texts: [String], status: Int32 = 1, shell prefix: String? = nil,
                       file: StaticString = #filePath, line: UInt = #line) throws -> ProcessResult {
        let r = try prefix.map { try runShell($0, args) } ?? runDDPM(args, in: dir)
        XCTAssertEqual(r.status, status, "exit status; stderr: \(r.stderr)", file: file, line: line)
        for t in texts {
            XCTAssert(r.stderr.contains(t), "stderr lacks \"\(t)\":\n\(r.stderr)", file: file, line: line)
        }
        for crash in ["Fatal error", "Stack dump", "Segmentation", "Illegal instruction", "crashed"] {
            XCTAssertFalse(r.stderr.contains(crash), "crash output: \(r.stderr)", file: file, line: line)
        }
        return r
    }

    /// `ddpm ARGS` run by /bin/sh after `prefix` (e.g. a ulimit), in the test folder.
    func runShell(_ prefix: String, _ args: [String]) throws -> ProcessResult {
        let quoted = ([ddpmExecutable] + args).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        return try runProcess("/bin/sh", ["-c", "\(prefix); exec \(quoted.joined(separator: " "))"], in: dir)
    }
}
