import Autograd
import CGIF
import Foundation

/// Streams an animated 8-bit grayscale GIF to disk through giflib: frames are written as they
/// come (memory stays one frame), into a temp file renamed into place by `close()`.
public final class GIFWriter {
    public let path: String
    public let width: Int, height: Int
    public private(set) var frames = 0
    private var gif: UnsafeMutablePointer<GifFileType>?
    private let tmp: String

    /// `loop`: 0 = forever (NETSCAPE2.0 extension), n = play n extra times. `comment`: text for a
    /// comment extension (provenance), none when empty.
    public init(path: String, width: Int, height: Int, loop: Int = 0, comment: String = "") throws {
        guard width > 0, height > 0, width < 65536, height < 65536 else {
            throw ImageError("\(path): GIF size \(width)x\(height) out of range")
        }
        guard loop >= 0 && loop < 65536 else { throw ImageError("\(path): loop \(loop) must be in [0, 65535]") }
        self.path = path
        self.width = width
        self.height = height
        AtomicFile.removeStaleTemporaries(for: path)
        tmp = AtomicFile.temporaryPath(for: path)
        var err: Int32 = 0
        guard let g = EGifOpenFileName(tmp, false, &err) else {
            throw ImageError("\(path): cannot create GIF (\(GIFWriter.describe(err)))")
        }
        gif = g
        EGifSetGifVersion(g, true)
        var colors = (0..<256).map { GifColorType(Red: UInt8($0), Green: UInt8($0), Blue: UInt8($0)) }
        let map = GifMakeMapObject(256, &colors)
        defer { GifFreeMapObject(map) }
        try check(EGifPutScreenDesc(g, Int32(width), Int32(height), 8, 0, map), "EGifPutScreenDesc")
        try check(EGifPutExtensionLeader(g, APPLICATION_EXT_FUNC_CODE), "EGifPutExtensionLeader")
        var app = Array("NETSCAPE2.0".utf8)
        try check(EGifPutExtensionBlock(g, 11, &app), "EGifPutExtensionBlock")
        var loopBlock: [UInt8] = [1, UInt8(loop & 0xFF), UInt8(loop >> 8)]
        try check(EGifPutExtensionBlock(g, 3, &loopBlock), "EGifPutExtensionBlock")
        try check(EGifPutExtensionTrailer(g), "EGifPutExtensionTrailer")
        if !comment.isEmpty {
            // sub-blocks of at most 255 bytes
            try check(EGifPutExtensionLeader(g, COMMENT_EXT_FUNC_CODE), "EGifPutExtensionLeader")
            let bytes = Array(comment.utf8)
            for start in stride(from: 0, to: bytes.count, by: 255) {
                var block = Array(bytes[start..<min(start + 255, bytes.count)])
                try check(EGifPutExtensionBlock(g, Int32(block.count), &block), "EGifPutExtensionBlock")
            }
            try check(EGifPutExtensionTrailer(g), "EGifPutExtensionTrailer")
        }
    }

    deinit {
        if let g = gif {
            var err: Int32 = 0
            _ = EGifCloseFile(g, &err)
            try? FileManager.default.removeItem(atPath: tmp)
        }
    }

    /// Appends a frame of width*height gray pixels shown for `delay` hundredths of a second.
    public func add(_ gray: [UInt8], delay: Int) throws {
        guard let g = gif else { throw ImageError("\(path): GIF is already closed") }
        guard gray.count == width * height else {
            throw ImageError("\(path): frame has \(gray.count) pixels, GIF is \(width)x\(height)")
        }
        guard delay >= 0 && delay < 65536 else { throw ImageError("\(path): delay \(delay) must be in [0, 65535]") }
        var gce: [UInt8] = [0x04, UInt8(delay & 0xFF), UInt8(delay >> 8), 0]  // disposal 1: keep
        try check(EGifPutExtension(g, GRAPHICS_EXT_FUNC_CODE, 4, &gce), "EGifPutExtension")
        try check(EGifPutImageDesc(g, 0, 0, Int32(width), Int32(height), false, nil), "EGifPutImageDesc")
        var row = [GifPixelType](repeating: 0, count: width)
        for y in 0..<height {
            for x in 0..<width { row[x] = gray[y * width + x] }
            try check(EGifPutLine(g, &row, Int32(width)), "EGifPutLine")
        }
        frames += 1
    }

    /// Finishes the file and moves it into place.
    public func close() throws {
        guard let g = gif else { return }
        gif = nil
        var err: Int32 = 0
        guard EGifCloseFile(g, &err) == GIF_OK else {
            try? FileManager.default.removeItem(atPath: tmp)
            throw ImageError("\(path): EGifCloseFile failed (\(GIFWriter.describe(err)))")
        }
        chmod(tmp, 0o644)  // giflib creates files 0600
        guard rename(tmp, path) == 0 else {
            try? FileManager.default.removeItem(atPath: tmp)
            throw ImageError("\(path): cannot move the GIF into place (\(String(cString: strerror(errno))))")
        }
    }

    private func check(_ status: Int32, _ call: String) throws {
        guard status == GIF_OK else {
            throw ImageError("\(path): \(call) failed (\(GIFWriter.describe(gif?.pointee.Error ?? 0)))")
        }
    }

    static func describe(_ code: Int32) -> String {
        GifErrorString(code).map { String(cString: $0) } ?? "giflib error \(code)"
    }
}
