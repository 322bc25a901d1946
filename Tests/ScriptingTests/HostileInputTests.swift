import Autograd
import Foundation
import Imaging
import Storage
import TestSupport
import XCTest

/// Inputs from a hostile or careless source, through the real `ddpm` executable: each is a clear
/// message and exit status 1, never a trap, an abort, a hang or escape codes on the terminal.
final class HostileInputTests: DDPMProcessTestCase {
    /// An IDX file: magic (0, 0, 0x08, rank), big-endian dimensions, bytes.
    func idx(_ name: String, dims: [Int], bytes: [UInt8] = []) throws -> String {
        var b: [UInt8] = [0, 0, 0x08, UInt8(dims.count)]
        for d in dims { b += [UInt8(d >> 24 & 255), UInt8(d >> 16 & 255), UInt8(d >> 8 & 255), UInt8(d & 255)] }
        let path = "\(dir)/\(name)"
        try Data(b + bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    func testFloatToIntegerConversionsAreChecked() throws {
        let model = "local m = ddpm.unet{base = 8, levels = 1, time_dim = 8, image_size = 8}\n"
            + "local x = ddpm.tensor.zeros({2, 1, 8, 8})\n"
        let p = try script("t.lua", model + "m:forward(x, ddpm.tensor.from({1e30, 1}), {1, 2})\n")
        try expectFailure(["run", p], contains: ["t.lua:3: Model:forward: timesteps must be integers, got 1e+30"])
        let q = try script("l.lua", model + "m:forward(x, 3, ddpm.tensor.from({0, -1e30}))\n")
        try expectFailure(["run", q], contains: ["l.lua:3: Model:forward: labels must be integers, got -1e+30"])
        let r = try script("n.lua", model + "m:forward(x, 1/0, {1, 2})\n")
        try expectFailure(["run", r], contains: ["n.lua:3: Model:forward: timesteps must be integers, got inf"])
        let s = try script("s.lua", "local s = ddpm.schedule.linear{steps = 10}\n"
                                 + "local x = ddpm.tensor.zeros({1, 1, 2, 2})\n"
                                 + "s:add_noise(x, ddpm.tensor.from({0/0}), x)\n")
        try expectFailure(["run", s],
                          contains: ["s.lua:3: Schedule:add_noise: timesteps must be integers, got ", "nan"])
    }

    func testRequestedSizesAreBoundedBeforeAllocating() throws {
        for kind in ["cosine", "linear", "sigmoid"] {
            let p = try script("\(kind).lua", "ddpm.schedule.\(kind){steps = 1e9}\n")
            try expectFailure(["run", p], contains: ["\(kind).lua:1: ddpm.schedule.\(kind): schedule.\(kind): "
                                                     + "steps 1000000000 must be in 1...1000000"])
        }
        let g = try script("grid.lua", "ddpm.image.grid(ddpm.tensor.zeros({1, 1, 2, 2}), {cols = 1, pad = 1e9})\n")
        try expectFailure(["run", g], contains: ["grid.lua:1: ddpm.image.grid: image.grid: "
                                                 + "shape [1, 2000000002, 2000000002] has more than"])
        let images = try idx("i", dims: [2, 2, 2], bytes: [UInt8](repeating: 0, count: 8))
        let labels = try idx("l", dims: [2], bytes: [1, 2])
        let b = try script("batch.lua",
                           "local ds = ddpm.data.idx{images = '\(images)', labels = '\(labels)'}\nds:batch(1e12)\n")
        try expectFailure(["run", b], contains: ["batch.lua:2: Dataset:batch: dataset:batch: "
                                                 + "shape [1000000000000, 1, 2, 2] has more than"])
    }

    /// A gzip file of `members` (gzip allows concatenated members; each is one deflate stream of
    /// a chunk, with its CRC-32 and size), built from zlib's output.
    func gzipMember(_ data: [UInt8]) throws -> [UInt8] {
        let zlib = try Zlib.compress(data, level: 9)
        let deflate = zlib[2..<(zlib.count - 4)]  // without the zlib header and Adler-32
        func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        return [0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 0xFF] + deflate + le32(Zlib.crc32(data)) + le32(UInt32(data.count))
    }

    /// A gzipped IDX of 1000 images of 1000x1000 (10^9 bytes, ~1 MB compressed) under a 2 GB
    /// address-space cap: read into one buffer of the declared size it loads; stored as floats
    /// at full size it needs 4 GB more, which is refused with a message before allocating.
    func testLargeGzippedDatasetUnderAMemoryCap() throws {
        var file = try gzipMember([0, 0, 8, 3, 0, 0, 0x03, 0xE8, 0, 0, 0x03, 0xE8, 0, 0, 0x03, 0xE8])
        let chunk = 1 << 20, total = 1_000_000_000
        let zeros = try gzipMember([UInt8](repeating: 0, count: chunk))
        for _ in 0..<(total / chunk) { file += zeros }
        file += try gzipMember([UInt8](repeating: 0, count: total % chunk))
        try Data(file).write(to: URL(fileURLWithPath: "\(dir)/images.gz"))
        let labels = try idx("labels", dims: [1000], bytes: [UInt8](repeating: 3, count: 1000))
        let cap = "ulimit -v 2000000"
        let small = try script("small.lua",
                               "local ds = ddpm.data.idx{images = 'images.gz', labels = '\(labels)', size = 8}\n"
                                   + "print(#ds, ds.size)\n")
        let r = try runShell(cap, ["run", small])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "1000\t8\n")
        let full = try script("full.lua", "ddpm.data.idx{images = 'images.gz', labels = '\(labels)'}\n")
        try expectFailure(["run", full], contains: ["full.lua:1: ddpm.data.idx: dataset images.gz "
                                                    + "(1000 images at 1000x1000) needs 4.7 GiB of memory, but only"],
                          shell: cap)
    }

    func testNotARegularFileSaysSo() throws {
        XCTAssertEqual(mkfifo("\(dir)/fifo", 0o600), 0)
        try expectFailure(["info", "/dev/zero"], contains: ["ddpm: /dev/zero: not a regular file (a character device)"])
        try expectFailure(["info", "\(dir)/fifo"], contains: ["ddpm: \(dir)/fifo: not a regular file (a FIFO)"])
        try expectFailure(["sample", "--weights", "/dev/urandom"],
                          contains: ["/dev/urandom: not a regular file (a character device)"])
        let images = try idx("l", dims: [1], bytes: [1])
        let p = try script("idx.lua", "ddpm.data.idx{images = '\(dir)/fifo', labels = '\(images)'}\n")
        try expectFailure(["run", p], contains: ["idx.lua:1: ddpm.data.idx: \(dir)/fifo: not a regular file (a FIFO)"])
        let q = try script("png.lua", "ddpm.image.load('/dev/urandom')\n")
        try expectFailure(["run", q],
                          contains: ["png.lua:1: ddpm.image.load: /dev/urandom: "
                                     + "not a regular file (a character device)"])
        let s = try script("sha.lua", "ddpm.sha256('/dev/zero')\n")
        try expectFailure(["run", s],
                          contains: ["sha.lua:1: ddpm.sha256: /dev/zero: not a regular file (a character device)"])
    }

    /// Escape sequences in a weights file's metadata and names (retitle the terminal, clear the
    /// screen) are printed as visible escapes by `ddpm info` and in errors.
    func testControlCharactersFromFilesArePrintedEscaped() throws {
        let path = "\(dir)/evil.safetensors"
        let esc = "\u{1B}]0;owned\u{07}\u{1B}[2J"
        try SafeTensors(tensors: [("w\(esc)", Tensor(zeros: [2]))], metadata: ["note\u{1B}[31m": "hi\(esc)\nthere"])
            .write(path)
        let r = try runDDPM(["info", path], in: dir)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertFalse(r.stdout.contains("\u{1B}") || r.stdout.contains("\u{07}"), r.stdout)
        XCTAssert(r.stdout.contains(#"  note\x1B[31m: hi\x1B]0;owned\x07\x1B[2J\nthere"#), r.stdout)
        // a model load names the unexpected tensor
        let p = try script("load.lua",
                           "local m = ddpm.unet{base = 8, levels = 1, time_dim = 8, image_size = 8}\n"
                               + "m:load('\(path)')\n")
        let e = try expectFailure(["run", p], contains: [#"unexpected (1): w\x1B]0;owned\x07\x1B[2J"#])
        XCTAssertFalse(e.stderr.contains("\u{1B}"), e.stderr)
        // a malformed entry names it too
        let bad = "\(dir)/bad.safetensors"
        let header = "{\"x\\u001b[2J\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,8]}}"
        var bytes = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian, Array.init) + Array(header.utf8)
        bytes += [UInt8](repeating: 0, count: 8)
        try Data(bytes).write(to: URL(fileURLWithPath: bad))
        let f = try expectFailure(["info", bad], contains: [#"tensor x\x1B[2J: 8 bytes for shape [1] of F32"#])
        XCTAssertFalse(f.stderr.contains("\u{1B}"), f.stderr)
    }

    /// NaN or infinite weights load (a diverged run's file is still a file) but `ddpm info` and
    /// sampling say so.
    func testNonFiniteWeightsAreReported() throws {
        let make = try script("make.lua", """
            local m = ddpm.unet{base = 8, levels = 1, time_dim = 8, image_size = 8}
            local p = m:parameters()
            p["time_mlp.1.bias"]:fill(0/0)
            p["time_mlp.3.bias"]:fill(1/0)
            m:save('\(dir)/nan.safetensors')
            """)
        XCTAssertEqual(try runDDPM(["run", make], in: dir).status, 0)
        let info = try runDDPM(["info", "\(dir)/nan.safetensors"], in: dir)
        XCTAssertEqual(info.status, 0, info.stderr)
        XCTAssert(info.stderr.contains("warning: \(dir)/nan.safetensors: "), info.stderr)
        XCTAssert(info.stderr.contains("40 NaN or infinite values in 2 tensors: "
                                       + "time_mlp.1.bias (32 of 32), time_mlp.3.bias (8 of 8)"), info.stderr)
        let sample = try runDDPM(["sample", "--weights", "\(dir)/nan.safetensors", "--per-digit", "1", "--digits", "0",
                                  "--steps", "1", "--out", "\(dir)/s.png"], in: dir)
        XCTAssert(sample.stderr.contains("warning: \(dir)/nan.safetensors: 40 NaN or infinite values in 2 tensors"),
                  sample.stderr)
    }
}
