import ArgumentParser
import Autograd
import Distributed
import Foundation
import Scripting

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a Lua recipe.",
        discussion: "The script sees the `ddpm` module, `arg` (arg[0] = script) and `...` "
            + "like the standalone lua interpreter.")

    @Argument(help: "The Lua script.") var script: String
    @Argument(parsing: .captureForPassthrough, help: "Arguments passed to the script.") var arguments: [String] = []

    func run() throws { try runRecipe(script, arguments) }
}

/// Runs a recipe; a Lua error prints its message (and, with `traceback`, the Lua traceback the
/// message handler added to an error with a position) and exits 1.
func runRecipe(_ path: String, _ arguments: [String], traceback: Bool = true) throws {
    Interrupts.install()
    do {
        let host = try LuaHost()
        try host.run(file: path, arguments: arguments)
    } catch let e as ScriptError {
        // Script errors already start with file:line; print them as Lua would (under mpirun
        // prefixed with the rank that failed).
        let message = traceback
            ? e.message : (e.message.components(separatedBy: "\nstack traceback:\n").first ?? e.message)
        // control characters from a file (a tensor name, a metadata value) are shown as escapes
        let shown = escapingControlCharacters(message, keepingLines: true)
        FileHandle.standardError.write(Data("\(Communicator.messagePrefix)\(shown)\n".utf8))
        throw ExitCode(1)
    }
}

/// A bundled recipe from scripts/.
func bundled(_ name: String) throws -> String {
    let path = LuaHost.scriptsDirectory() + "/" + name
    guard FileManager.default.fileExists(atPath: path) else {
        throw fail("bundled recipe \(name) not found in \(LuaHost.scriptsDirectory()) "
            + "(set DDPM_SCRIPTS to the repository's scripts/ folder)")
    }
    return path
}
