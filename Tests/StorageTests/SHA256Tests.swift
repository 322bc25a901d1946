import Foundation
import Storage
import XCTest

final class SHA256Tests: XCTestCase {
    /// FIPS 180-4 test vectors (one block, empty, two blocks) and a file.
    func testSHA256() throws {
        XCTAssertEqual(SHA256.hex(of: Array("abc".utf8)),
                       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex(of: []), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(of: Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        let path = NSTemporaryDirectory() + "sha-\(getpid()).txt"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data("abc".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(try SHA256.hex(ofFile: path), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertThrowsError(try SHA256.hex(ofFile: path + ".missing"))
    }
}
