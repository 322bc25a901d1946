import Autograd
import Foundation
import Storage
import XCTest

/// The repository's root folder (tests read fixtures, scripts and shipped weights from it).
public let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

/// Tests/Fixtures, or the folder in DDPM_FIXTURES (another reference export with the same keys).
public let fixturesDir: String = {
    if let d = ProcessInfo.processInfo.environment["DDPM_FIXTURES"], !d.isEmpty { return d }
    return repoRoot + "/Tests/Fixtures"
}()

/// A new empty folder under the system's temporary folder.
public func temporaryDirectory() throws -> String {
    let d = NSTemporaryDirectory() + "ddpm-test-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
}

/// Asserts rel_to_max = max|ours - ref| / max|ref| <= tolerance, reporting the evidence.
public func expectClose(_ name: String, _ ours: Tensor?, _ reference: Tensor?, tolerance: Double,
                        file: StaticString = #filePath, line: UInt = #line) {
    guard let ours, let reference else {
        XCTFail("\(name): missing tensor (ours \(ours == nil ? "nil" : "ok"), "
                + "reference \(reference == nil ? "nil" : "ok"))", file: file, line: line)
        return
    }
    XCTAssertEqual(ours.shape, reference.shape, "\(name): shape", file: file, line: line)
    let c = Comparison(name: name, ours: ours, reference: reference, tolerance: tolerance)
    XCTAssert(c.passed, "\(name): rel_to_max \(c.relative) > \(tolerance) (max_abs \(c.maxAbs), max_ref \(c.maxRef))",
              file: file, line: line)
}

/// The golden vectors of Tests/Fixtures/ops.safetensors, read once per test process.
public enum OpsFixture {
    nonisolated(unsafe) private static var cached: SafeTensors?

    public static var file: SafeTensors {
        get throws {
            if let f = cached { return f }
            let f = try SafeTensors.read("\(fixturesDir)/ops.safetensors")
            cached = f
            return f
        }
    }
}

extension SafeTensors {
    /// The tensors under `prefix/`, with the prefix removed.
    public func group(_ prefix: String) -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (name, t) in tensors where name.hasPrefix(prefix + "/") {
            out[String(name.dropFirst(prefix.count + 1))] = t
        }
        return out
    }
}
