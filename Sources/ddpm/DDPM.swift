import ArgumentParser
import Autograd
import Distributed
import Foundation
import Layers

@main
enum Main {
    /// Exit status: 0 success, 1 script or input error, 2 bad usage (ArgumentParser's 64 -> 2).
    /// Under mpirun a failing rank aborts the whole job (Communicator.end), after its message.
    static func main() {
        selectFastBLASKernels()
        do {
            var command = try DDPM.parseAsRoot()
            try command.run()
        } catch {
            let code = DDPM.exitCode(for: error)
            if code == .success { DDPM.exit(withError: error) }  // --help, --version
            let message = DDPM.fullMessage(for: error)
            if !message.isEmpty { FileHandle.standardError.write(Data((message + "\n").utf8)) }
            let status = code == .validationFailure ? 2 : code.rawValue
            Communicator.end(status: status)
            exit(status)
        }
    }
}

/// Restarts the process with OPENBLAS_CORETYPE set when OpenBLAS fell back to slow generic
/// kernels on a CPU it does not recognise (see BLAS.betterCoreType). Set OPENBLAS_CORETYPE
/// yourself to choose; the restart happens at most once.
func selectFastBLASKernels() {
    let env = ProcessInfo.processInfo.environment
    guard env["OPENBLAS_CORETYPE"] == nil,
          let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
          let flagsLine = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
          let core = BLAS.betterCoreType(cpuFlags: String(flagsLine)) else { return }
    setenv("OPENBLAS_CORETYPE", core, 1)
    let args = CommandLine.arguments.map { strdup($0) } + [nil]
    execv("/proc/self/exe", args)
    // exec failed: carry on with the slow kernels
}

struct DDPM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ddpm",
        abstract: "Train and sample class-conditional DDPMs on MNIST-style digits.",
        subcommands: [Run.self, Train.self, Distill.self, Sample.self, Inpaint.self, Gif.self, Eval.self,
                      Samplers.self, Schedules.self, Info.self, Bench.self, Verify.self]
    )
}

/// Input errors (bad file, bad shape) end the process with a message and exit status 1.
func fail(_ message: String) -> ExitCode {
    FileHandle.standardError.write(Data("ddpm: \(escapingControlCharacters(message, keepingLines: true))\n".utf8))
    return ExitCode(1)
}

/// Runs `body`, turning any thrown error into a clear message and exit status 1.
func runReportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let e as ExitCode {
        throw e
    } catch let e as TensorError {
        throw fail(e.message)
    } catch {
        throw fail("\(error)")
    }
}
