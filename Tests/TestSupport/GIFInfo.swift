import Foundation

/// A minimal GIF structure reader (independent of giflib): screen size, NETSCAPE loop count,
/// per-frame delays from graphic control extensions, number of image descriptors, comments.
public struct GIFInfo: Equatable {
    public var version = "", width = 0, height = 0, loop: Int? = nil, delays: [Int] = [], frames = 0
    public var comments: [String] = []

    public init(
        version: String, width: Int, height: Int, loop: Int?, delays: [Int], frames: Int, comments: [String] = []
    ) {
        self.version = version; self.width = width; self.height = height
        self.loop = loop; self.delays = delays; self.frames = frames; self.comments = comments
    }

    public init(path: String) throws {
        let b = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        guard b.count > 13 else { throw GIFInfoError("short GIF") }
        version = String(decoding: b[0..<6], as: UTF8.self)
        width = Int(b[6]) | Int(b[7]) << 8
        height = Int(b[8]) | Int(b[9]) << 8
        var i = 13
        if b[10] & 0x80 != 0 { i += 3 << (Int(b[10] & 7) + 1) }
        func skipBlocks() { while i < b.count && b[i] != 0 { i += Int(b[i]) + 1 }; i += 1 }
        while i < b.count {
            switch b[i] {
            case 0x21:
                let label = b[i + 1]
                if label == 0xF9 { delays.append(Int(b[i + 4]) | Int(b[i + 5]) << 8) }
                if label == 0xFF, String(decoding: b[(i + 3)..<(i + 14)], as: UTF8.self) == "NETSCAPE2.0" {
                    loop = Int(b[i + 16]) | Int(b[i + 17]) << 8
                }
                i += 2
                if label == 0xFE {
                    var text: [UInt8] = []
                    var j = i
                    while j < b.count && b[j] != 0 {
                        text += b[(j + 1)..<min(j + 1 + Int(b[j]), b.count)]
                        j += Int(b[j]) + 1
                    }
                    comments.append(String(decoding: text, as: UTF8.self))
                }
                skipBlocks()
            case 0x2C:
                frames += 1
                let packed = b[i + 9]
                i += 10
                if packed & 0x80 != 0 { i += 3 << (Int(packed & 7) + 1) }
                i += 1  // LZW minimum code size
                skipBlocks()
            case 0x3B: return
            default: throw GIFInfoError("unexpected GIF block 0x\(String(b[i], radix: 16)) at \(i)")
            }
        }
    }
}

public struct GIFInfoError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
