import CZlib
import Foundation

/// The one place that calls zlib: deflate for PNG, CRC-32 for PNG chunks, gunzip for IDX files.
public enum Zlib {
    /// zlib-wrapped deflate of `bytes` (PNG IDAT payload).
    public static func compress(_ bytes: [UInt8], level: Int32 = 6) throws -> [UInt8] {
        var size = compressBound(uLong(bytes.count))
        var out = [UInt8](repeating: 0, count: Int(size))
        let status = out.withUnsafeMutableBufferPointer { o in
            bytes.withUnsafeBufferPointer { i in compress2(o.baseAddress, &size, i.baseAddress, uLong(bytes.count), level) }
        }
        guard status == Z_OK else { throw ImageError("zlib compress2 failed with status \(status)") }
        return Array(out.prefix(Int(size)))
    }

    public static func crc32(_ bytes: [UInt8], start: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBufferPointer { UInt32(CZlib.crc32(uLong(start), $0.baseAddress, uInt($0.count))) }
    }

    /// Reads a whole file, gunzipping it when it is gzip (plain files pass through).
    public static func readMaybeGzip(_ path: String, limit: Int = 1 << 30) throws -> [UInt8] {
        guard FileManager.default.fileExists(atPath: path) else { throw ImageError("\(path): no such file") }
        guard let gz = gzopen(path, "rb") else { throw ImageError("\(path): cannot open") }
        defer { gzclose(gz) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { gzread(gz, $0.baseAddress, UInt32($0.count)) }
            if n < 0 {
                var err: Int32 = 0
                let msg = gzerror(gz, &err).map { String(cString: $0) } ?? "read error"
                throw ImageError("\(path): corrupt or truncated gzip data (\(msg))")
            }
            if n == 0 { break }
            out.append(contentsOf: chunk.prefix(Int(n)))
            guard out.count <= limit else { throw ImageError("\(path): more than \(limit) bytes after decompression") }
        }
        return out
    }
}

public struct ImageError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
