import Foundation
import TestSupport
import XCTest

/// Every error a user can cause ends with a clear message and exit status 1: no Swift crash,
/// no stack dump. Each case runs the real `ddpm` executable.
final class ErrorTests: DDPMProcessTestCase {
    func testSyntaxErrorNamesFileAndLine() throws {
        let p = try script("syntax.lua", "local a = 1\nlocal x = = 2\n")
        try expectFailure(["run", p], contains: ["syntax.lua:2:", "unexpected symbol near '='"])
    }

    func testRuntimeErrorHasFileLineAndTraceback() throws {
        let p = try script("runtime.lua", "local function f()\n  error('boom')\nend\nf()\n")
        try expectFailure(["run", p],
                          contains: ["runtime.lua:2: boom", "stack traceback:", "runtime.lua:4: in main chunk"])
    }

    func testWrongArgumentType() throws {
        let p = try script("argtype.lua", "local x = ddpm.tensor.zeros('a')\n")
        try expectFailure(["run", p], contains: [#"argtype.lua:1: ddpm.tensor.zeros: bad argument #1 "#
                                                 + #"(shape table such as {2, 3} expected, got "a")"#])
    }

    func testHugeOrNegativeShapesAreErrorsNotCrashes() throws {
        let p = try script("huge.lua", "local x = ddpm.tensor.zeros({1e9, 1e9})\n")
        try expectFailure(["run", p], contains: ["huge.lua:1: ddpm.tensor.zeros: shape: "
                                                 + "shape [1000000000, 1000000000] has more than 2147483648 elements"])
        let q = try script("reshape.lua", "local x = ddpm.tensor.zeros({4}):reshape({1e6, 1e6, -1})\n")
        try expectFailure(["run", q], contains: ["reshape.lua:1: Tensor:reshape: reshape: "
                                                 + "shape [1000000, 1000000] has more than 2147483648 elements"])
        let r = try script("neg.lua", "ddpm.tensor.ones({2, -3})\n")
        try expectFailure(["run", r],
                          contains: ["neg.lua:1: ddpm.tensor.ones: "
                                     + "bad argument #1 (shape entries must be >= 0, got -3)"])
        let u = try script("bigmodel.lua", "ddpm.unet{base = 100000}\n")
        try expectFailure(["run", u], contains: ["bigmodel.lua:1: ddpm.unet: unet config: base 100000 (max 1024)"])
    }

    func testShapeMismatchNamesBothShapes() throws {
        let p = try script("shape.lua", "local a = ddpm.tensor.zeros({2, 3})\nlocal b = a + ddpm.tensor.ones({4})\n")
        try expectFailure(["run", p],
                          contains: ["shape.lua:2: add: shapes [2, 3] and [4] cannot be broadcast together"])
        let q = try script("conv.lua", "local m = ddpm.unet{base = 8, levels = 1, time_dim = 8, image_size = 8}\n"
                                     + "m:forward(ddpm.tensor.zeros({1, 3, 8, 8}), 0)\n")
        try expectFailure(["run", q],
                          contains: ["conv.lua:2: Model:forward: unet: input [1, 3, 8, 8] is not (batch, 1, H, W)"])
    }

    func testLabelAndTimestepOutOfRange() throws {
        let p = try script("label.lua", """
            local m = ddpm.unet{base = 8, levels = 1, time_dim = 8, image_size = 8}
            m:forward(ddpm.tensor.zeros({1, 1, 8, 8}), 5, {12})
            """)
        try expectFailure(["run", p],
                          contains: ["label.lua:2: Model:forward: "
                                     + "unet: label 12 out of range [0, 10) (-1 = unconditional)"])
        let q = try script("timestep.lua", """
            local s = ddpm.schedule.linear{steps = 1000}
            local x = ddpm.tensor.zeros({2, 1, 4, 4})
            s:add_noise(x, {3, 1000}, x)
            """)
        try expectFailure(["run", q],
                          contains: ["timestep.lua:3: Schedule:add_noise: "
                                     + "add_noise: timestep 1000 out of range [0, 1000)"])
    }

    func testMissingDataSaysWhichCommandFixesIt() throws {
        try expectFailure(["train", "--data", "\(dir)/nowhere", "--out", "\(dir)/run"],
                          contains: ["MNIST train files not found in \(dir)/nowhere", "run scripts/setup.sh"])
    }

    func testMissingWeightsSaysWhatToDo() throws {
        try expectFailure(["sample", "--weights", "\(dir)/none.safetensors"],
                          contains: ["\(dir)/none.safetensors: no such file"])
        try expectFailure(["info", "\(dir)/none.safetensors"], contains: ["none.safetensors: no such file"])
    }

    func testCorruptFiles() throws {
        let junk = "\(dir)/junk.safetensors"
        try Data([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 1, 2, 3]).write(to: URL(fileURLWithPath: junk))
        try expectFailure(["sample", "--weights", junk],
                          contains: ["junk.safetensors: header length", "(truncated or not a safetensors file)"])
        try expectFailure(["info", junk], contains: ["junk.safetensors: header length"])
        // a checkpoint cut short
        try FileManager.default.createDirectory(atPath: "\(dir)/run", withIntermediateDirectories: true)
        try Data(repeating: 7, count: 100).write(to: URL(fileURLWithPath: "\(dir)/run/checkpoint.safetensors"))
        try expectFailure(["train", "--resume", "--out", "\(dir)/run", "--data", mnistDir],
                          contains: ["checkpoint.safetensors: header length"])
        // IDX and PNG
        try Data([1, 2, 3, 4, 5, 6, 7, 8]).write(to: URL(fileURLWithPath: "\(dir)/bad-idx"))
        let p = try script("idx.lua", "ddpm.data.idx{images = '\(dir)/bad-idx', labels = '\(dir)/bad-idx'}\n")
        try expectFailure(["run", p],
                          contains: ["idx.lua:1: ddpm.data.idx: \(dir)/bad-idx: "
                                     + "bad magic number (corrupt or not an IDX file)"])
        try Data("not a png".utf8).write(to: URL(fileURLWithPath: "\(dir)/bad.png"))
        let q = try script("png.lua", "ddpm.image.load('\(dir)/bad.png')\n")
        try expectFailure(["run", q], contains: ["png.lua:1: ddpm.image.load: \(dir)/bad.png: not a readable PNG"])
    }

    func testBadUsageIsStatus2() throws {
        let r = try runDDPM(["sample", "--per-digit", "many"], in: dir)
        XCTAssertEqual(r.status, 2)
        XCTAssert(r.stderr.contains("--per-digit"), r.stderr)
    }
}
