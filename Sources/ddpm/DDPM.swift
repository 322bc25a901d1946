import ArgumentParser
import Autograd
import Foundation
import Layers

@main
enum Main {
    /// Exit status: 0 success, 1 script or input error, 2 bad usage (ArgumentParser's 64 -> 2).
    static func main() {
        do {
            var command = try DDPM.parseAsRoot()
            try command.run()
        } catch {
            let code = DDPM.exitCode(for: error)
            if code == .validationFailure {
                FileHandle.standardError.write(Data((DDPM.fullMessage(for: error) + "\n").utf8))
                exit(2)
            }
            DDPM.exit(withError: error)
        }
    }
}

struct DDPM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ddpm",
        abstract: "Train and sample class-conditional DDPMs on MNIST-style digits.",
        subcommands: [Run.self, Train.self, Sample.self, Gif.self, Info.self, Bench.self, Verify.self]
    )
}

/// Input errors (bad file, bad shape) end the process with a message and exit status 1.
func fail(_ message: String) -> ExitCode {
    FileHandle.standardError.write(Data("ddpm: \(message)\n".utf8))
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
