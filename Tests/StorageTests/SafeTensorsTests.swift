import Autograd
import Foundation
import Layers
@testable import Storage
import XCTest

final class SafeTensorsTests: XCTestCase {
    var dir: String!

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "ddpm-st-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    /// Raw file from a header dictionary and data bytes (for dtypes and malformed cases).
    func rawFile(_ name: String, header: String, data: [UInt8], declaredLength: UInt64? = nil) throws -> String {
        let path = "\(dir!)/\(name)"
        var bytes = Data()
        var n = (declaredLength ?? UInt64(header.utf8.count)).littleEndian
        bytes.append(Data(bytes: &n, count: 8))
        bytes.append(Data(header.utf8))
        bytes.append(contentsOf: data)
        try bytes.write(to: URL(fileURLWithPath: path))
        return path
    }

    func expectError(_ path: String, contains text: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try SafeTensors.read(path), file: file, line: line) { e in
            let msg = (e as? TensorError)?.message ?? "\(e)"
            XCTAssert(msg.contains(text), "message \"\(msg)\" lacks \"\(text)\"", file: file, line: line)
            XCTAssert(msg.hasPrefix(path), "message \"\(msg)\" does not start with the path", file: file, line: line)
        }
    }

    func testRoundTripKeepsNamesShapesValuesAndMetadata() throws {
        var rng = Generator(seed: 1)
        let a = Tensor.randn([2, 3, 4], generator: &rng), b = Tensor.randn([5], generator: &rng)
        let path = "\(dir!)/w.safetensors"
        try SafeTensors(tensors: [("layer.weight", a), ("layer.bias", b), ("empty", Tensor(zeros: [0, 3]))],
                        metadata: ["config": "{\"base\": 8}", "note": "é ✓"]).write(path)
        let back = try SafeTensors.read(path)
        XCTAssertEqual(back["layer.weight"]?.shape, [2, 3, 4])
        XCTAssertEqual(back["layer.weight"]?.values, a.values)
        XCTAssertEqual(back["layer.bias"]?.values, b.values)
        XCTAssertEqual(back["empty"]?.shape, [0, 3])
        XCTAssertEqual(back.metadata, ["config": "{\"base\": 8}", "note": "é ✓"])
        // header length is a multiple of 8 and no temp file is left behind
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        XCTAssertEqual(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) } % 8, 0)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir!), ["w.safetensors"])
    }

    func testReadsHalfBfloatAndIntegerDtypes() throws {
        // F16: 1.0 = 0x3C00, -2.0 = 0xC000, 65504 = 0x7BFF, smallest subnormal 0x0001 = 2^-24
        // BF16: 1.5 = 0x3FC0; I64: -3; I32: 7; U8: 200
        let header = #"{"h":{"dtype":"F16","shape":[4],"data_offsets":[0,8]},"#
            + #""b":{"dtype":"BF16","shape":[1],"data_offsets":[8,10]},"#
            + #""l":{"dtype":"I64","shape":[1],"data_offsets":[10,18]},"#
            + #""i":{"dtype":"I32","shape":[1],"data_offsets":[18,22]},"#
            + #""u":{"dtype":"U8","shape":[1],"data_offsets":[22,23]}}"#
        var data: [UInt8] = [0x00, 0x3C, 0x00, 0xC0, 0xFF, 0x7B, 0x01, 0x00, 0xC0, 0x3F]
        data += withUnsafeBytes(of: Int64(-3).littleEndian, Array.init)
        data += withUnsafeBytes(of: Int32(7).littleEndian, Array.init)
        data += [200]
        let f = try SafeTensors.read(try rawFile("dtypes.safetensors", header: header, data: data))
        XCTAssertEqual(f["h"]?.values, [1, -2, 65504, 0x1p-24])
        XCTAssertEqual(f["b"]?.values, [1.5])
        XCTAssertEqual(f["l"]?.values, [-3])
        XCTAssertEqual(f["i"]?.values, [7])
        XCTAssertEqual(f["u"]?.values, [200])
    }

    func testMalformedFilesGiveClearErrors() throws {
        expectError("\(dir!)/missing.safetensors", contains: "no such file")
        let tiny = "\(dir!)/tiny.safetensors"
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: tiny))
        expectError(tiny, contains: "too short for a header")
        expectError(try rawFile("huge.safetensors", header: "{}", data: [], declaredLength: 9_000_000_000_000_000_000),
                    contains: "header length 9000000000000000000 exceeds file size")
        expectError(try rawFile("json.safetensors", header: "{not json", data: []),
                    contains: "header is not a JSON object")
        expectError(try rawFile("range.safetensors",
                                header: #"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
                                data: [0, 0, 0, 0]),
                    contains: "lie outside the 4-byte data section")
        expectError(try rawFile("size.safetensors", header: #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
                                data: [UInt8](repeating: 0, count: 8)),
                    contains: "8 bytes for shape [3] of F32 (expected 12)")
        expectError(try rawFile("overflow.safetensors",
                                header: #"{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}}"#,
                                data: []),
                    contains: "is larger than the file")
        expectError(try rawFile("dtype.safetensors", header: #"{"a":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}"#,
                                data: [UInt8](repeating: 0, count: 8)),
                    contains: "unsupported dtype C64")
        expectError(try rawFile("entry.safetensors", header: #"{"a":{"dtype":"F32"}}"#, data: []),
                    contains: "lacks dtype, shape or data_offsets")
        // a truncated copy of a real file
        let good = "\(dir!)/good.safetensors"
        try SafeTensors(tensors: [("w", Tensor(zeros: [64]))]).write(good)
        let data = try Data(contentsOf: URL(fileURLWithPath: good))
        let cut = "\(dir!)/cut.safetensors"
        try data.prefix(data.count - 10).write(to: URL(fileURLWithPath: cut))
        expectError(cut, contains: "data_offsets")
    }

    func testStrictLoadListsEveryMissingExtraAndMisshapenName() throws {
        var rng = Generator(seed: 0)
        let layer = Linear(3, 2, generator: &rng)
        XCTAssertThrowsError(try layer.load(["weight": Tensor(zeros: [3, 2]), "extra": Tensor(zeros: [1])])) { e in
            let msg = (e as? TensorError)?.message ?? ""
            XCTAssert(msg.contains("missing (1): bias"), msg)
            XCTAssert(msg.contains("unexpected (1): extra"), msg)
            XCTAssert(msg.contains("wrong shape (1): weight: file [3, 2], model [2, 3]"), msg)
        }
        XCTAssertEqual(try layer.load(["model.weight": Tensor(repeating: 1, shape: [2, 3])],
                                      strict: false, prefix: "model."), 1)
        XCTAssertEqual(layer.weight.values, [Float](repeating: 1, count: 6))
    }

    func testModelSaveLoadRoundTripRebuildsFromMetadata() throws {
        var rng = Generator(seed: 3)
        let config = UNetConfig(base: 8, levels: 2, timeDim: 16, attention: [false, true], imageSize: 8)
        let model = try UNet(config, generator: &rng)
        let path = "\(dir!)/m.safetensors"
        try model.save(path, metadata: ["step": "12"])
        let back = try UNet.load(path)
        XCTAssertEqual(back.config, config)
        for ((n1, p1), (n2, p2)) in zip(model.namedParameters(), back.namedParameters()) {
            XCTAssertEqual(n1, n2)
            XCTAssertEqual(p1.values, p2.values, n1)
        }
        XCTAssertEqual(try SafeTensors.inspect(path).metadata["step"], "12")
    }

    func testAtomicWriteLeavesOldFileWhenWriteFails() throws {
        let path = "\(dir!)/keep.safetensors"
        try SafeTensors(tensors: [("a", Tensor(repeating: 2, shape: [3]))]).write(path)
        struct Boom: Error {}
        XCTAssertThrowsError(try AtomicFile.write(path) { h in
            try h.write(contentsOf: Data([1, 2, 3]))
            throw Boom()
        })
        XCTAssertEqual(try SafeTensors.read(path)["a"]?.values, [2, 2, 2])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir!), ["keep.safetensors"])
    }

    /// Headers the format does not allow, which JSONSerialization alone would accept.
    func testAmbiguousHeadersAreErrors() throws {
        let zeros = [UInt8](repeating: 0, count: 16)
        expectError(try rawFile("frac-shape.safetensors",
                                header: #"{"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}"#, data: zeros),
                    contains: "entry a has a malformed shape or data_offsets")
        expectError(try rawFile("float-shape.safetensors",
                                header: #"{"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}"#, data: zeros),
                    contains: "entry a has a malformed shape or data_offsets")
        expectError(try rawFile("frac-offset.safetensors",
                                header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0.5,8.5]}}"#, data: zeros),
                    contains: "entry a has a malformed shape or data_offsets")
        expectError(try rawFile("bool-shape.safetensors",
                                header: #"{"a":{"dtype":"U8","shape":[true],"data_offsets":[0,1]}}"#, data: zeros),
                    contains: "entry a has a malformed shape or data_offsets")
        expectError(try rawFile("three-offsets.safetensors",
                                header: #"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}"#, data: zeros),
                    contains: "entry a has a malformed shape or data_offsets")
        expectError(try rawFile("overlap.safetensors",
                                header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"#
                                    + #""b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, data: zeros),
                    contains: "tensors a and b overlap (data_offsets [0, 8] and [4, 12])")
        expectError(try rawFile("same.safetensors",
                                header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"#
                                    + #""b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: zeros),
                    contains: "tensors a and b overlap")
        expectError(try rawFile("dup.safetensors",
                                header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"#
                                    + #""a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#, data: zeros),
                    contains: "header has the key a twice")
        expectError(try rawFile("dup-escaped.safetensors",
                                header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"#
                                    + #""\u0061":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#, data: zeros),
                    contains: "header has the key a twice")
        expectError(try rawFile("dup-meta.safetensors", header: #"{"__metadata__":{"k":"1","k":"2"}}"#, data: []),
                    contains: "header has the key k twice")
        let header = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        expectError(try rawFile("bom.safetensors", header: "\u{FEFF}" + header, data: zeros),
                    contains: "header is not a JSON object")
        // what stays valid: empty tensors sharing an offset, keys equal only inside different objects
        let okHeader = #"{"e":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"#
            + #""f":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]},"#
            + #""a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"#
            + #""b":{"dtype":"U8","shape":[2],"data_offsets":[8,10]},"#
            + #""__metadata__":{"a":"x","dtype":"y"}}  "#
        let ok = try rawFile("ok.safetensors", header: okHeader, data: [UInt8](repeating: 0, count: 10))
        let f = try SafeTensors.read(ok)
        XCTAssertEqual(f.tensors.map(\.name).sorted(), ["a", "b", "e", "f"])
        XCTAssertEqual(f.metadata, ["a": "x", "dtype": "y"])
    }

    /// `.NAME.tmp-PID` files of writes that a kill interrupted are removed by the next write of
    /// that file; those of other files and of running processes stay.
    func testStaleTemporaryFilesAreRemovedByTheNextWrite() throws {
        let dead = Process()
        dead.executableURL = URL(fileURLWithPath: "/bin/true")
        try dead.run()
        dead.waitUntilExit()
        let stale = "\(dir!)/.w.safetensors.tmp-\(dead.processIdentifier)"
        let live = "\(dir!)/.w.safetensors.tmp-1"  // pid 1 always runs
        let other = "\(dir!)/.x.safetensors.tmp-\(dead.processIdentifier)"
        for p in [stale, live, other] { try Data([1, 2, 3]).write(to: URL(fileURLWithPath: p)) }
        try SafeTensors(tensors: [("a", Tensor(zeros: [1]))]).write("\(dir!)/w.safetensors")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir!).sorted(),
                       [".w.safetensors.tmp-1", ".x.safetensors.tmp-\(dead.processIdentifier)", "w.safetensors"])
    }
}
