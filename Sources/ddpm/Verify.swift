import ArgumentParser
import Autograd
import Foundation
import Layers
import Storage

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check the model against a PyTorch reference export (forward, L1 loss, backward).",
        discussion: """
            DIR holds model.safetensors (param/, input/, output/, act/ and the config in the metadata)
            and model_grads.safetensors (grad/, grad_input/x), as written by the reference's
            make_fixtures.py. Prints the largest absolute and relative error of every compared
            tensor; exits 0 when all are within tolerance, 1 otherwise.
            """)

    @Argument(help: "Folder with model.safetensors and model_grads.safetensors.") var dir: String
    @Flag(help: "Print every tensor, not only the summary and failures.") var all = false

    func run() throws {
        var failed = 0
        try runReportingErrors {
            let rows = try ReferenceCheck.run(directory: dir)
            let groups = Dictionary(grouping: rows) { row -> String in
                row.name.hasPrefix("grad_input") ? "grad_input" : String(row.name.split(separator: "/")[0])
            }
            print(String(format: "%-58@ %11@ %11@ %9@  %@", "tensor" as NSString, "max_abs" as NSString,
                         "rel" as NSString, "tol" as NSString, "ok" as NSString))
            for row in rows
                where all || !row.passed || row.name.hasPrefix("output") || row.name.hasPrefix("grad_input") {
                print(String(format: "%-58@ %11.3e %11.3e %9.1e  %@", row.name as NSString, row.maxAbs, row.relative,
                             row.tolerance, (row.passed ? "ok" : "FAIL") as NSString))
            }
            for (group, rs) in groups.sorted(by: { $0.key < $1.key }) {
                guard let worst = rs.max(by: { $0.relative < $1.relative }) else { continue }
                print(String(format: "%-12@ %4d tensors, worst rel %.3e (%@), max_abs %.3e, %d failed",
                             group as NSString, rs.count, worst.relative, worst.name as NSString,
                             rs.map(\.maxAbs).max() ?? 0, rs.filter { !$0.passed }.count))
            }
            failed = rows.filter { !$0.passed }.count
            print(failed == 0 ? "PASS: all \(rows.count) tensors within tolerance"
                              : "FAIL: \(failed) of \(rows.count) tensors out of tolerance")
        }
        if failed > 0 { throw ExitCode(1) }
    }
}
