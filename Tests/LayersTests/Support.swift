import Autograd
import Foundation
import Layers
import XCTest

/// Tests/Fixtures, or the folder in DDPM_FIXTURES (another reference export with the same keys).
let fixturesDir: String = {
    if let d = ProcessInfo.processInfo.environment["DDPM_FIXTURES"], !d.isEmpty { return d }
    return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").path
}()

/// Asserts rel_to_max = max|ours - ref| / max|ref| <= tolerance, reporting the evidence.
func expectClose(_ name: String, _ ours: Tensor?, _ reference: Tensor?, tolerance: Double,
                 file: StaticString = #filePath, line: UInt = #line) {
    guard let ours, let reference else {
        XCTFail("\(name): missing tensor (ours \(ours == nil ? "nil" : "ok"), reference \(reference == nil ? "nil" : "ok"))", file: file, line: line)
        return
    }
    XCTAssertEqual(ours.shape, reference.shape, "\(name): shape", file: file, line: line)
    let c = Comparison(name: name, ours: ours, reference: reference, tolerance: tolerance)
    XCTAssert(c.passed, "\(name): rel_to_max \(c.relative) > \(tolerance) (max_abs \(c.maxAbs), max_ref \(c.maxRef))", file: file, line: line)
}

extension SafeTensors {
    /// The tensors under `prefix/`, with the prefix removed.
    func group(_ prefix: String) -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (name, t) in tensors where name.hasPrefix(prefix + "/") { out[String(name.dropFirst(prefix.count + 1))] = t }
        return out
    }
}
