import Autograd
import CPNG
import Foundation

/// 8-bit grayscale PNG. Writing is our own small encoder (IHDR, tEXt provenance chunks, one
/// IDAT through zlib, IEND), written atomically; reading uses libpng's simplified API (any PNG
/// converted to 8-bit gray; errors come back in `message`, no setjmp).
public enum PNG {
    public static func write(
        _ path: String, width: Int, height: Int, gray: [UInt8], text: [(String, String)] = []
    ) throws {
        guard width > 0, height > 0, gray.count == width * height else {
            throw ImageError("\(path): \(gray.count) pixels do not fill \(width)x\(height)")
        }
        var file: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        func be32(_ v: UInt32) -> [UInt8] {
            [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
        }
        func chunk(_ type: String, _ data: [UInt8]) {
            let body = Array(type.utf8) + data
            file += be32(UInt32(data.count)) + body + be32(Zlib.crc32(body))
        }
        chunk("IHDR", be32(UInt32(width)) + be32(UInt32(height)) + [8, 0, 0, 0, 0])  // 8-bit gray
        for (key, value) in text {
            // tEXt is Latin-1; keep keys short ASCII and replace anything else.
            let k = Array(key.utf8.prefix(79).map { $0 < 128 && $0 >= 32 ? $0 : UInt8(ascii: "_") })
            let v = value.unicodeScalars.map { $0.value < 256 ? UInt8($0.value) : UInt8(ascii: "?") }
            chunk("tEXt", k + [0] + v)
        }
        var raw = [UInt8]()
        raw.reserveCapacity((width + 1) * height)
        for y in 0..<height {
            raw.append(0)  // filter: none
            raw += gray[(y * width)..<((y + 1) * width)]
        }
        chunk("IDAT", try Zlib.compress(raw))
        chunk("IEND", [])
        try AtomicFile.write(path, bytes: file)
    }

    /// Any PNG -> (width, height, 8-bit gray pixels).
    public static func read(_ path: String) throws -> (width: Int, height: Int, gray: [UInt8]) {
        try decode(path, grayscaleOnly: false)
    }

    /// A grayscale PNG without alpha, 1 to 8 bits per pixel -> (width, height, 8-bit pixels).
    /// Anything else is an error naming what the file holds (RGB, RGBA, palette, gray + alpha,
    /// 16-bit gray): datasets must not be converted behind the user's back.
    public static func readGrayscale(_ path: String) throws -> (width: Int, height: Int, gray: [UInt8]) {
        try decode(path, grayscaleOnly: true)
    }

    /// What a PNG's format flags (libpng's simplified API) describe, when it is not plain gray.
    static func nonGrayKind(_ format: UInt32) -> String? {
        let alpha = format & UInt32(PNG_FORMAT_FLAG_ALPHA) != 0
        if format & UInt32(PNG_FORMAT_FLAG_COLORMAP) != 0 {
            return alpha ? "a palette (indexed-colour) PNG with transparency" : "a palette (indexed-colour) PNG"
        }
        if format & UInt32(PNG_FORMAT_FLAG_COLOR) != 0 {
            return alpha ? "an RGBA PNG (colour with alpha)" : "an RGB (colour) PNG"
        }
        if alpha { return "a grayscale PNG with alpha" }
        if format & UInt32(PNG_FORMAT_FLAG_LINEAR) != 0 { return "a 16-bit grayscale PNG" }
        return nil
    }

    private static func decode(_ path: String, grayscaleOnly: Bool) throws -> (width: Int, height: Int, gray: [UInt8]) {
        do { try Files.checkRegular(path) } catch let e as TensorError { throw ImageError(e.message) }
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        defer { png_image_free(&image) }
        guard png_image_begin_read_from_file(&image, path) != 0 else {
            throw ImageError("\(path): not a readable PNG (\(message(&image)))")
        }
        if grayscaleOnly, let kind = nonGrayKind(image.format) {
            throw ImageError("\(path): \(kind); expected 8-bit grayscale without alpha")
        }
        let (w, h) = (Int(image.width), Int(image.height))
        guard w > 0, h > 0, w * h <= 1 << 28 else { throw ImageError("\(path): unsupported size \(w)x\(h)") }
        image.format = UInt32(PNG_FORMAT_GRAY)
        var pixels = [UInt8](repeating: 0, count: w * h)
        let ok = pixels.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, Int32(w), nil) }
        guard ok != 0 else { throw ImageError("\(path): corrupt PNG (\(message(&image)))") }
        return (w, h, pixels)
    }

    private static func message(_ image: inout png_image) -> String {
        withUnsafeBytes(of: &image.message) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// The tEXt chunks of a PNG (provenance), read directly.
    public static func textChunks(_ path: String) throws -> [String: String] {
        let bytes = [UInt8](try Files.read(path))
        var out: [String: String] = [:]
        var i = 8
        while i + 8 <= bytes.count {
            let n = Int(bytes[i]) << 24 | Int(bytes[i + 1]) << 16 | Int(bytes[i + 2]) << 8 | Int(bytes[i + 3])
            let type = String(decoding: bytes[(i + 4)..<(i + 8)], as: UTF8.self)
            guard n >= 0, i + 12 + n <= bytes.count else { break }
            if type == "tEXt" {
                let data = bytes[(i + 8)..<(i + 8 + n)]
                if let z = data.firstIndex(of: 0) {
                    out[String(decoding: data[data.startIndex..<z], as: UTF8.self)] =
                        String(data[(z + 1)...].map { Character(Unicode.Scalar($0)) })
                }
            }
            i += 12 + n
        }
        return out
    }
}
