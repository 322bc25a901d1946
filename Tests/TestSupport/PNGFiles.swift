import Foundation
import Imaging

/// PNG files of any colour type and bit depth, for tests of readers that must refuse some of them.
public enum TestPNG {
    /// PNG colour types (the IHDR byte).
    public static let gray: UInt8 = 0, rgb: UInt8 = 2, palette: UInt8 = 3, grayAlpha: UInt8 = 4, rgba: UInt8 = 6

    /// Writes a PNG: `rows` holds each row's packed bytes (no filter byte); `chunks` go before the
    /// image data (a palette's PLTE, a tRNS).
    public static func write(_ path: String, width: Int, height: Int, bitDepth: UInt8 = 8, colorType: UInt8,
                             rows: [[UInt8]], chunks: [(String, [UInt8])] = []) throws {
        func be32(_ v: Int) -> [UInt8] { [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: v >> $0) } }
        var file: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        func chunk(_ type: String, _ data: [UInt8]) {
            let body = Array(type.utf8) + data
            file += be32(data.count) + body + be32(Int(Zlib.crc32(body)))
        }
        chunk("IHDR", be32(width) + be32(height) + [bitDepth, colorType, 0, 0, 0])
        for (type, data) in chunks { chunk(type, data) }
        chunk("IDAT", try Zlib.compress(rows.flatMap { [0] + $0 }))
        chunk("IEND", [])
        try Data(file).write(to: URL(fileURLWithPath: path))
    }

    /// An 8-bit grayscale PNG of width x height pixels, all `value`.
    public static func writeGray(_ path: String, width: Int, height: Int, value: UInt8) throws {
        try write(path, width: width, height: height, colorType: gray,
                  rows: Array(repeating: Array(repeating: value, count: width), count: height))
    }
}
