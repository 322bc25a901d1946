import Foundation
import Scripting
import TestSupport
import XCTest

/// Every ```lua block of docs/lua-api.md runs without error, so the reference stays true.
final class DocsTests: XCTestCase {
    func testEveryLuaExampleInTheAPIReferenceRuns() throws {
        let text = try String(contentsOfFile: repoRoot + "/docs/lua-api.md", encoding: .utf8)
        var blocks: [String] = []
        var current: [Substring]?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("```lua") { current = [] } else if line.hasPrefix("```"), let c = current {
                blocks.append(c.joined(separator: "\n"))
                current = nil
            } else { current?.append(line) }
        }
        XCTAssertGreaterThanOrEqual(blocks.count, 8)
        for (i, code) in blocks.enumerated() {
            do {
                try runLua(code)
            } catch {
                XCTFail("docs/lua-api.md example \(i + 1) failed: \(error)\n\(code)")
            }
        }
    }
}
