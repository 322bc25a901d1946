import Autograd
import Foundation

/// The safetensors format: 8-byte little-endian header length, a JSON header mapping each name
/// to {dtype, shape, data_offsets} (plus an optional "__metadata__" string map), then the raw
/// little-endian data. Reading converts F32/F16/BF16/F64/I64/I32/I16/I8/U8/BOOL to float32;
/// writing is F32 and atomic (temp file + rename).
public struct SafeTensors {
    /// Tensors in file order.
    public var tensors: [(name: String, tensor: Tensor)]
    public var metadata: [String: String]

    public init(tensors: [(name: String, tensor: Tensor)] = [], metadata: [String: String] = [:]) {
        self.tensors = tensors
        self.metadata = metadata
    }

    public subscript(name: String) -> Tensor? { tensors.first { $0.name == name }?.tensor }

    public var dictionary: [String: Tensor] {
        Dictionary(tensors.map { ($0.name, $0.tensor) }, uniquingKeysWith: { a, _ in a })
    }

    static let maxHeader = 100 << 20

    /// A warning naming the tensors that hold NaN or infinite values (a diverged run's weights
    /// load fine but sample noise), or nil when every value is finite.
    public static func nonFiniteWarning(_ tensors: [(name: String, tensor: Tensor)]) -> String? {
        var bad: [String] = [], total = 0
        for (name, t) in tensors {
            var k = 0
            for i in 0..<t.count where !t.data[i].isFinite { k += 1 }
            if k > 0 { bad.append("\(escapingControlCharacters(name)) (\(k) of \(t.count))"); total += k }
        }
        guard !bad.isEmpty else { return nil }
        let shown = bad.prefix(5).joined(separator: ", ") + (bad.count > 5 ? ", ..." : "")
        return "\(total) NaN or infinite values in \(bad.count) tensor\(bad.count == 1 ? "" : "s"): \(shown)"
    }

    /// Reads a whole file. Errors name the file and what is wrong with it.
    public static func read(_ path: String) throws -> SafeTensors {
        let data = try load(path)
        let (header, dataStart) = try parseHeader(data, path: path)
        var out = SafeTensors()
        out.metadata = header.metadata
        for e in header.entries {
            let t = Tensor(uninitialized: e.shape)
            data.withUnsafeBytes { raw in
                convert(e.dtype, UnsafeRawBufferPointer(rebasing: raw[(dataStart + e.begin)..<(dataStart + e.end)]),
                        into: t.data, count: t.count)
            }
            out.tensors.append((e.name, t))
        }
        return out
    }

    /// Only the metadata and the tensor names/shapes (for `ddpm info`); the data is still checked
    /// for bounds but not converted.
    public static func inspect(
        _ path: String
    ) throws -> (metadata: [String: String], entries: [(name: String, dtype: String, shape: [Int])]) {
        let data = try load(path)
        let (header, _) = try parseHeader(data, path: path)
        return (header.metadata, header.entries.map { ($0.name, $0.dtype, $0.shape) })
    }

    private static func load(_ path: String) throws -> Data {
        try Files.checkRegular(path)
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        } catch {
            throw TensorError("\(path): cannot read (\(error.localizedDescription))")
        }
    }

    struct Entry {
        let name: String, dtype: String, shape: [Int], begin: Int, end: Int
    }

    static let dtypeSizes: [String: Int] = [
        "F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
    ]

    static func parseHeader(
        _ data: Data, path: String
    ) throws -> (header: (entries: [Entry], metadata: [String: String]), dataStart: Int) {
        func bad(_ why: String) -> TensorError { TensorError("\(path): \(why) (truncated or not a safetensors file)") }
        guard data.count >= 8 else { throw bad("file is \(data.count) bytes, too short for a header") }
        let n = data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }.littleEndian
        guard n <= UInt64(data.count - 8) else { throw bad("header length \(n) exceeds file size \(data.count)") }
        guard n <= UInt64(maxHeader) else { throw bad("header length \(n) is over the \(maxHeader)-byte limit") }
        let headerBytes = data.subdata(in: 8..<(8 + Int(n)))
        // The JSON starts at the first byte: no byte-order mark, no other encoding than UTF-8.
        guard headerBytes.first == UInt8(ascii: "{"), String(data: headerBytes, encoding: .utf8) != nil,
              let obj = try? JSONSerialization.jsonObject(with: headerBytes), let dict = obj as? [String: Any] else {
            throw bad("header is not a JSON object")
        }
        if let key = JSONKeys.firstDuplicate(in: headerBytes) {
            throw bad("header has the key \(escapingControlCharacters(key)) twice")
        }
        let dataStart = 8 + Int(n)
        let dataSize = data.count - dataStart
        var metadata: [String: String] = [:]
        var entries: [Entry] = []
        for (name, value) in dict {
            let shown = escapingControlCharacters(name)
            if name == "__metadata__" {
                guard let m = value as? [String: Any] else { throw bad("__metadata__ is not an object") }
                for (k, v) in m {
                    guard let s = v as? String else {
                        throw bad("__metadata__ value for \(escapingControlCharacters(k)) is not a string")
                    }
                    metadata[k] = s
                }
                continue
            }
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
                  let shapeAny = info["shape"] as? [Any], let offsAny = info["data_offsets"] as? [Any] else {
                throw bad("entry \(shown) lacks dtype, shape or data_offsets")
            }
            guard let size = dtypeSizes[dtype] else {
                throw TensorError("\(path): tensor \(shown) has unsupported dtype \(escapingControlCharacters(dtype)) "
                                  + "(supported: \(dtypeSizes.keys.sorted().joined(separator: ", ")))")
            }
            // Whole JSON integers only: 2.5, 2.0, 1e3 or true are not sizes.
            let shape = shapeAny.compactMap(jsonInteger), offs = offsAny.compactMap(jsonInteger)
            guard shape.count == shapeAny.count, shape.allSatisfy({ $0 >= 0 }), offs.count == 2,
                  offsAny.count == 2 else {
                throw bad("entry \(shown) has a malformed shape or data_offsets (non-negative whole numbers expected)")
            }
            // Overflow-safe element count: a hostile shape must not become a huge allocation.
            var elements = 1
            for d in shape {
                let (p, o) = elements.multipliedReportingOverflow(by: d)
                guard !o, p <= dataSize else { throw bad("tensor \(shown) shape \(shape) is larger than the file") }
                elements = p
            }
            guard offs[0] >= 0, offs[0] <= offs[1], offs[1] <= dataSize else {
                throw bad("tensor \(shown) data_offsets \(offs) lie outside the \(dataSize)-byte data section")
            }
            guard offs[1] - offs[0] == elements * size else {
                throw bad("tensor \(shown): \(offs[1] - offs[0]) bytes for shape \(shape) of \(dtype) "
                          + "(expected \(elements * size))")
            }
            entries.append(Entry(name: name, dtype: dtype, shape: shape, begin: offs[0], end: offs[1]))
        }
        entries.sort { $0.begin < $1.begin || ($0.begin == $1.begin && $0.name < $1.name) }
        // Each byte belongs to at most one tensor (empty tensors take none).
        var previous: Entry?
        for e in entries where e.end > e.begin {
            if let p = previous, e.begin < p.end {
                let (a, b) = (escapingControlCharacters(p.name), escapingControlCharacters(e.name))
                throw bad("tensors \(a) and \(b) overlap "
                          + "(data_offsets [\(p.begin), \(p.end)] and [\(e.begin), \(e.end)])")
            }
            previous = e
        }
        return ((entries, metadata), dataStart)
    }

    /// A JSON whole number as an Int (nil for fractions, floats such as 2.0, booleans and
    /// numbers beyond Int).
    static func jsonInteger(_ v: Any) -> Int? {
        guard let n = v as? NSNumber else { return nil }
        switch String(cString: n.objCType) {
        case "i", "s", "l", "q": return n.intValue
        default: return nil
        }
    }

    private static func convert(
        _ dtype: String, _ src: UnsafeRawBufferPointer, into dst: UnsafeMutablePointer<Float>, count: Int
    ) {
        func each<T>(_ type: T.Type, _ f: (T) -> Float) {
            for i in 0..<count { dst[i] = f(src.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self)) }
        }
        switch dtype {
        case "F32": each(UInt32.self) { Float(bitPattern: UInt32(littleEndian: $0)) }
        case "F64": each(UInt64.self) { Float(Double(bitPattern: UInt64(littleEndian: $0))) }
        case "F16": each(UInt16.self) { halfToFloat(UInt16(littleEndian: $0)) }
        case "BF16": each(UInt16.self) { Float(bitPattern: UInt32(UInt16(littleEndian: $0)) << 16) }
        case "I64": each(Int64.self) { Float(Int64(littleEndian: $0)) }
        case "I32": each(Int32.self) { Float(Int32(littleEndian: $0)) }
        case "I16": each(Int16.self) { Float(Int16(littleEndian: $0)) }
        case "I8": each(Int8.self) { Float($0) }
        case "U8", "BOOL": each(UInt8.self) { Float($0) }
        default: break  // unreachable: parseHeader rejects unknown dtypes
        }
    }

    /// IEEE half -> float, including subnormals, infinities and NaN.
    static func halfToFloat(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exp = Int((h >> 10) & 0x1F), frac = UInt32(h & 0x3FF)
        if exp == 0 {
            let v = Float(frac) * 0x1p-24
            return sign != 0 ? -v : v
        }
        if exp == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (frac << 13)) }
        return Float(bitPattern: sign | UInt32(exp + 112) << 23 | (frac << 13))
    }

    /// Writes F32 tensors and string metadata atomically: a temp file in the same folder, fsync,
    /// then rename over `path`, so a crash never leaves a partial file under the real name.
    public func write(_ path: String) throws {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        var seen = Set<String>()
        for (name, t) in tensors {
            guard seen.insert(name).inserted else { throw TensorError("\(path): duplicate tensor name \(name)") }
            guard name != "__metadata__" else { throw TensorError("\(path): __metadata__ is reserved") }
            header[name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + 4 * t.count]]
                as [String: Any]
            offset += 4 * t.count
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        json.append(contentsOf: [UInt8](repeating: 0x20, count: (8 - json.count % 8) % 8))
        var prefix = Data(count: 8)
        prefix.withUnsafeMutableBytes { $0.storeBytes(of: UInt64(json.count).littleEndian, as: UInt64.self) }
        try AtomicFile.write(path) { out in
            try out.write(prefix)
            try out.write(json)
            for (_, t) in tensors { try out.write(UnsafeRawBufferPointer(start: t.data, count: 4 * t.count)) }
        }
    }
}
