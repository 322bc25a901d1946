import Foundation
import Imaging
import TestSupport
import XCTest

/// Editing with the shipped fast model (few steps): inpainting (`ddpm inpaint`, the repaint
/// plugin, ctx.known), img2img (`ddpm sample --init --strength`, `t_start`) and class morphs
/// (blended labels, `ddpm gif --morph`), and their input errors.
final class EditingTests: DDPMProcessTestCase {
    let weights = repoRoot + "/weights/mnist-fast.safetensors"

    /// A 28x28 grayscale "digit" with many distinct pixel values (a ring plus a gradient), so a
    /// pasted pixel that is off by one shows.
    func writeInput(_ name: String, size: Int = 28) throws -> (path: String, pixels: [UInt8]) {
        var rows: [[UInt8]] = []
        for y in 0..<size {
            rows.append((0..<size).map { x in
                let dx = Double(x) - Double(size) / 2, dy = Double(y) - Double(size) / 2
                let r = (dx * dx + dy * dy).squareRoot()
                return abs(r - Double(size) / 4) < 2.5 ? UInt8(200 + (x + y) % 50) : UInt8((x * 3 + y) % 23)
            })
        }
        let path = "\(dir)/\(name)"
        try TestPNG.write(path, width: size, height: size, colorType: TestPNG.gray, rows: rows)
        return (path, rows.flatMap { $0 })
    }

    /// White (keep) in the top half, black below; rows 12 and 13 hold 128 (kept) and 127 (generated).
    func writeMask(_ name: String, size: Int = 28) throws -> (path: String, keep: [Bool]) {
        let rows: [[UInt8]] = (0..<size).map { y in
            [UInt8](repeating: y < 12 ? 255 : (y == 12 ? 128 : (y == 13 ? 127 : 0)), count: size)
        }
        let path = "\(dir)/\(name)"
        try TestPNG.write(path, width: size, height: size, colorType: TestPNG.gray, rows: rows)
        return (path, rows.flatMap { $0.map { $0 >= 128 } })
    }

    func run(_ args: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try runDDPM(args, in: dir)
        XCTAssertEqual(r.status, 0, r.stderr, file: file, line: line)
    }

    /// The fills keep every white pixel of the mask (within 3/255; the paste is exact) at the
    /// input's size, and generate the black region: it differs from the input and between fills.
    func testInpaintKeepsTheKnownPixelsAndFillsTheRest() throws {
        let input = try writeInput("in.png"), mask = try writeMask("mask.png")
        try run(["inpaint", "--weights", weights, "--image", input.path, "--mask", mask.path, "--digit", "8",
                 "--per-digit", "2", "--steps", "6", "--seed", "3", "--out", "\(dir)/out/fill.png"])
        let out = try PNG.read("\(dir)/out/fill.png")
        XCTAssertEqual(out.width, 56)
        XCTAssertEqual(out.height, 28)
        var fills: [[UInt8]] = [[], []]
        for y in 0..<28 { for k in 0..<2 { fills[k] += out.gray[(y * 56 + k * 28)..<(y * 56 + k * 28 + 28)] } }
        for fill in fills {
            var keptError = 0, changed = 0, generated = 0
            for p in 0..<(28 * 28) {
                let d = abs(Int(fill[p]) - Int(input.pixels[p]))
                if mask.keep[p] { keptError = max(keptError, d) } else { generated += 1; changed += d > 8 ? 1 : 0 }
            }
            XCTAssertLessThanOrEqual(keptError, 3, "a kept pixel moved by \(keptError)/255")
            XCTAssertGreaterThan(changed, generated / 4, "the generated region barely differs from the input")
        }
        let between = zip(fills[0], fills[1]).filter { abs(Int($0) - Int($1)) > 8 }.count
        XCTAssertGreaterThan(between, 20, "two seeds, two different fills")
        let text = try String(contentsOfFile: "\(dir)/out/fill.png", encoding: .isoLatin1)
        XCTAssertTrue(text.contains("sampler\u{0}repaint"), "provenance names the sampler")
    }

    /// RePaint's resampling: `calls` counts the model calls (= on_step calls), the kept region of
    /// the result is the known image exactly, and without a mask every pixel is generated.
    func testRepaintResamplingAndCalls() throws {
        try runLua("""
            local m = ddpm.load_model('\(weights)')
            local p = ddpm.plugins.load("sampler", "repaint")
            assert(p.calls(6, {}) == 6, p.calls(6, {}))
            local jumps = {jump_length = "2", jump_n_sample = "3"}
            local expected = p.calls(6, jumps)
            -- levels 2, 4 and 6 (of 6; 6 is the clean image) go back up 2 steps, twice each
            assert(expected == 6 + 3 * 2 * 2, expected)
            local image = ddpm.tensor.rand({2, 1, 32, 32}) * 2 - 1
            local mask = ddpm.tensor.cat({ddpm.tensor.ones({2, 1, 16, 32}), ddpm.tensor.zeros({2, 1, 16, 32})}, 3)
            local seen = 0
            local x = ddpm.sample{model = m, schedule = m.schedule, sampler = p, labels = {1, 2}, seeds = {4, 5},
                                  steps = 6, options = jumps, known = {image = image, mask = mask},
                                  on_step = function() seen = seen + 1 end}
            assert(seen == expected, seen .. " calls, expected " .. expected)
            assert(((x - image) * mask):abs():max():item() == 0, "the kept region is the image")
            assert(((x - image) * (1 - mask)):abs():mean():item() > 0.05, "the rest is generated")
            local plain = ddpm.sample{model = m, schedule = m.schedule, sampler = p, labels = {1, 2}, seeds = {4, 5},
                                      steps = 6}  -- eta: the plugin's default_eta, 1
            local ddim = ddpm.sample{model = m, schedule = m.schedule, sampler = {native = "ddim"}, labels = {1, 2},
                                     seeds = {4, 5}, steps = 6, eta = 1}
            assert((plain - ddim):abs():max():item() == 0, "no mask: DDIM")
            local eta
            local spy = {default_eta = 0.5, sample = function(ctx) eta = ctx.eta; return ctx.x end}
            ddpm.sample{model = m, schedule = m.schedule, sampler = spy, labels = {1}, steps = 1}
            assert(eta == 0.5, "default_eta reaches ctx.eta")
            ddpm.sample{model = m, schedule = m.schedule, sampler = spy, labels = {1}, steps = 1, eta = 0}
            assert(eta == 0, "eta= wins")
            local ok, err = pcall(ddpm.sample, {model = m, schedule = m.schedule, labels = {1},
                                  sampler = {default_eta = -1, sample = spy.sample}})
            assert(not ok and err:find("field default_eta must be a number >= 0, got %-1"), err)
            ok, err = pcall(ddpm.sample, {model = m, schedule = m.schedule, sampler = {native = "ddim"},
                                  labels = {1, 2}, known = {image = image, mask = mask}})
            assert(not ok and err:find("ignores a mask"), err)
            -- the bundled ddim plugin does not read a mask: refused, not silently ignored
            ok, err = pcall(ddpm.sample, {model = m, schedule = m.schedule, sampler = "ddim",
                                  labels = {1, 2}, known = {image = image, mask = mask}})
            assert(not ok and err:find("does not read ctx.known.mask", 1, true), err)
            """)
    }

    /// img2img: strength 0 returns the input (after the resize to the model's size), strength 1
    /// is plain sampling with the same seeds, pixel for pixel; a strength between keeps some of
    /// the input.
    func testImg2ImgStrengthZeroIsTheInputAndOneIsPlainSampling() throws {
        let big = try writeInput("in32.png", size: 32), small = try writeInput("in28.png")
        let common = ["sample", "--weights", weights, "--steps", "4", "--seed", "9"]
        try run(common + ["--init", big.path, "--strength", "0", "--digits", "3", "--per-digit", "1",
                          "--out", "\(dir)/s0/"])
        XCTAssertEqual(try PNG.read("\(dir)/s0/3_0.png").gray, big.pixels, "strength 0: the input itself")
        try run(common + ["--init", small.path, "--strength", "0", "--digits", "3", "--per-digit", "1",
                          "--out", "\(dir)/s0small/"])
        try runLua("""
            local x = ddpm.image.resize(ddpm.image.load('\(small.path)'), 32)
            ddpm.image.save(x, '\(dir)/resized.png')
            """)
        XCTAssertEqual(try PNG.read("\(dir)/s0small/3_0.png").gray, try PNG.read("\(dir)/resized.png").gray,
                       "strength 0 of a 28x28 input: the input resized as the training data")

        let sheet = ["--digits", "38", "--per-digit", "2"]
        try run(common + sheet + ["--out", "\(dir)/plain.png"])
        try run(common + sheet + ["--init", small.path, "--strength", "1", "--out", "\(dir)/s1.png"])
        try run(common + sheet + ["--init", small.path, "--strength", "0.5", "--out", "\(dir)/s05.png"])
        let plain = try PNG.read("\(dir)/plain.png").gray
        XCTAssertEqual(try PNG.read("\(dir)/s1.png").gray, plain, "strength 1: plain sampling")
        let half = try PNG.read("\(dir)/s05.png").gray
        XCTAssertGreaterThan(zip(half, plain).filter { abs(Int($0) - Int($1)) > 8 }.count, 100)

        // every bundled sampler and the native ones accept a start timestep
        try runLua("""
            local m = ddpm.load_model('\(weights)')
            local x0 = ddpm.image.resize(ddpm.image.load('\(small.path)'), 32)
            local image = ddpm.tensor.cat({x0, x0}, 1)
            for _, name in ipairs({"ddim", "unipc", "dpmpp_2m", "repaint"}) do
              local y = ddpm.sample{model = m, schedule = m.schedule, sampler = name, steps = 3, labels = {3, 8},
                                    seeds = {1, 2}, known = {image = image}, t_start = 400}
              assert((y - image):abs():mean():item() < 0.5, name)
            end
            for _, native in ipairs({"ddim", "ddpm"}) do
              local seen = 0
              ddpm.sample{model = m, schedule = m.schedule, sampler = {native = native}, steps = 3, labels = {3, 8},
                          seeds = {1, 2}, known = {image = image}, t_start = 20, on_step = function(i, t)
                            assert(t <= 20); seen = seen + 1 end}
              assert(seen == (native == "ddpm" and 21 or 3), native .. " " .. seen)
            end
            """)
    }

    /// A blended label {a, b, w} is (1 - w) embed(a) + w embed(b): w = 0 and w = 1 give exactly the
    /// samples of a and b (same batch, same seeds); `ddpm gif --morph` writes one frame per weight.
    func testMorphEndsAreTheDigitsSamples() throws {
        try runLua("""
            local m = ddpm.load_model('\(weights)')
            local function sample(labels, sampler)
              return ddpm.sample{model = m, schedule = m.schedule, sampler = sampler, steps = 4, labels = labels,
                                 seeds = {11, 11, 11}, guidance = 2.5, guidance_interval = {500, 880}}
            end
            for _, sampler in ipairs({"unipc", {native = "ddim"}}) do
              local plain = sample({3, 5, 8}, sampler)
              local blend = sample({{3, 8, 0}, {from = 3, to = 8, w = 0.5}, {3, 8, 1}}, sampler)
              assert((plain:narrow(1, 1, 1) - blend:narrow(1, 1, 1)):abs():max():item() == 0, "w = 0 is digit 3")
              assert((plain:narrow(1, 3, 1) - blend:narrow(1, 3, 1)):abs():max():item() == 0, "w = 1 is digit 8")
              local mid = blend:narrow(1, 2, 1)
              assert((mid - blend:narrow(1, 1, 1)):abs():max():item() > 0.1, "w = 0.5 is neither")
            end
            local x = ddpm.tensor.randn({2, 1, 32, 32})
            local a = m:forward(x, {10, 10}, {{2, 7, 0.25}, 4})
            local b = m:forward(x, {10, 10}, {2, 4})
            assert((a - b):narrow(1, 2, 1):abs():max():item() == 0 and (a - b):abs():max():item() > 0)
            local got
            local spy = {sample = function(ctx) got = ctx.labels; return ctx.x end}
            ddpm.sample{model = m, schedule = m.schedule, sampler = spy, steps = 1, labels = {{1, 2, 0.5}, 6}}
            assert(got[1].from == 1 and got[1].to == 2 and got[1].w == 0.5 and got[2] == 6)
            """)
        try run(["gif", "--weights", weights, "--morph", "3,8", "--morph", "1,7", "--frames", "5", "--steps", "3",
                 "--out", "\(dir)/gifs"])
        for name in ["morph-3-8.gif", "morph-1-7.gif"] {
            let info = try GIFInfo(path: "\(dir)/gifs/\(name)")
            XCTAssertEqual(info.frames, 5, name)
            XCTAssertEqual(info.width, 32 * 4)
            XCTAssertEqual(info.delays, [150, 8, 8, 8, 150], name)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: "\(dir)/gifs").sorted(),
                       ["morph-1-7.gif", "morph-3-8.gif"])
        // the inpainting process as GIFs: every on_step call is a frame candidate
        let input = try writeInput("in.png"), mask = try writeMask("mask.png")
        try run(["gif", "--weights", weights, "--image", input.path, "--mask", mask.path, "--digits", "2",
                 "--steps", "4",
                 "--sampler-opt", "jump_length=2", "--sampler-opt", "jump_n_sample=2", "--out", "\(dir)/inpaint"])
        XCTAssertEqual(try GIFInfo(path: "\(dir)/inpaint/digit-2.gif").frames, 4 + 2 * 2 + 1,
                       "4 steps, levels 2 and 4 jumping back 2 steps once, the held result")
    }

    /// Wrong inputs are one clear message each, exit 1, and write nothing.
    func testBadInputsAreClearErrors() throws {
        let input = try writeInput("in.png"), mask = try writeMask("mask.png")
        let big = try writeMask("mask32.png", size: 32)
        try TestPNG.write("\(dir)/rgb.png", width: 28, height: 28, colorType: TestPNG.rgb,
                          rows: [[UInt8]](repeating: [UInt8](repeating: 90, count: 84), count: 28))
        try TestPNG.write("\(dir)/rgba.png", width: 28, height: 28, colorType: TestPNG.rgba,
                          rows: [[UInt8]](repeating: [UInt8](repeating: 255, count: 112), count: 28))
        try TestPNG.writeGray("\(dir)/odd.png", width: 20, height: 20, value: 9)
        let inpaint = ["inpaint", "--weights", weights, "--digit", "3", "--out", "\(dir)/o.png"]
        try expectFailure(inpaint + ["--image", input.path, "--mask", big.path],
                          contains: ["--mask \(big.path) is 32x32 but the image is 28x28: the mask must have the "
                                     + "image's size"])
        try expectFailure(inpaint + ["--image", "\(dir)/rgb.png", "--mask", mask.path],
                          contains: ["--image: \(dir)/rgb.png: an RGB (colour) PNG; expected 8-bit grayscale "
                                     + "without alpha"])
        try expectFailure(inpaint + ["--image", input.path, "--mask", "\(dir)/rgba.png"],
                          contains: ["--mask: \(dir)/rgba.png: an RGBA PNG (colour with alpha); expected 8-bit "
                                     + "grayscale without alpha"])
        try expectFailure(inpaint + ["--image", "\(dir)/odd.png", "--mask", mask.path],
                          contains: ["--image \(dir)/odd.png is 20x20: expected a square grayscale digit of 28x28"])
        try expectFailure(["inpaint", "--weights", weights, "--image", input.path, "--mask", mask.path,
                           "--digit", "12"],
                          contains: ["--digit 12: the model knows classes 0..9"])
        let sample = ["sample", "--weights", weights, "--out", "\(dir)/s.png"]
        try expectFailure(sample + ["--init", input.path, "--strength", "1.5"],
                          contains: ["--strength must be in [0, 1] (0: the input, 1: plain sampling), got 1.5"])
        try expectFailure(sample + ["--strength", "0.5"], contains: ["--strength needs --init IN.png"])
        try expectFailure(sample + ["--init", "\(dir)/rgb.png"],
                          contains: ["--init: \(dir)/rgb.png: an RGB (colour) PNG"])
        try expectFailure(["gif", "--weights", weights, "--morph", "3", "--out", "\(dir)/g"],
                          contains: ["--morph needs two digits A,B such as 3,8, got '3'"])
        try expectFailure(["gif", "--weights", weights, "--image", input.path, "--out", "\(dir)/g"],
                          contains: ["--image needs --mask MASK.png (inpainting) or --strength S (img2img)"])
        for path in ["o.png", "s.png", "g"] { XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/\(path)")) }
    }
}
