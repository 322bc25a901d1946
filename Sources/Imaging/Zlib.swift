import Autograd
import CZlib
import Foundation

/// The one place that calls zlib: deflate for PNG, CRC-32 for PNG chunks, gunzip for IDX files
/// (GzipReader).
public enum Zlib {
    /// zlib-wrapped deflate of `bytes` (PNG IDAT payload).
    public static func compress(_ bytes: [UInt8], level: Int32 = 6) throws -> [UInt8] {
        var size = compressBound(uLong(bytes.count))
        var out = [UInt8](repeating: 0, count: Int(size))
        let status = out.withUnsafeMutableBufferPointer { o in
            bytes.withUnsafeBufferPointer { i in
                compress2(o.baseAddress, &size, i.baseAddress, uLong(bytes.count), level)
            }
        }
        guard status == Z_OK else { throw ImageError("zlib compress2 failed with status \(status)") }
        return Array(out.prefix(Int(size)))
    }

    public static func crc32(_ bytes: [UInt8], start: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBufferPointer { UInt32(CZlib.crc32(uLong(start), $0.baseAddress, uInt($0.count))) }
    }
}

/// A file read in order, gunzipped when it is gzip: callers read a header first and size their
/// buffers from it, so nothing grows by reallocation.
public final class GzipReader {
    public let path: String
    private let gz: gzFile

    public init(_ path: String) throws {
        do { try Files.checkRegular(path) } catch let e as TensorError { throw ImageError(e.message) }
        guard let gz = gzopen(path, "rb") else {
            throw ImageError("\(path): cannot open (\(String(cString: strerror(errno))))")
        }
        self.path = path
        self.gz = gz
    }

    deinit { gzclose(gz) }

    /// Fills `buffer` as far as the file goes; returns the bytes read (less only at the end).
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var done = 0
        while done < buffer.count, let base = buffer.baseAddress {
            let n = gzread(gz, base + done, UInt32(Swift.min(buffer.count - done, 1 << 30)))
            if n < 0 {
                var err: Int32 = 0
                let msg = gzerror(gz, &err).map { String(cString: $0) } ?? "read error"
                throw ImageError("\(path): corrupt or truncated gzip data (\(msg))")
            }
            if n == 0 { break }
            done += Int(n)
        }
        return done
    }

    /// The bytes left until the end (read and discarded), for messages about trailing data.
    public func remainingCount() throws -> Int {
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var total = 0
        while true {
            let n = try chunk.withUnsafeMutableBytes { try read(into: $0) }
            if n == 0 { return total }
            total += n
        }
    }
}

public struct ImageError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
