import Foundation
import Imaging
import TestSupport
import XCTest

/// Sampler and schedule plugins (docs/lua-api.md, "Plugins"): the lookup order, a sampler
/// written only from the documented contract running in `sample`, `gif` and `eval`, the errors a
/// plugin can cause, and the bundled solvers' order of accuracy.
final class PluginTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws { dir = try temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func write(_ path: String, _ text: String) throws -> String {
        let full = path.hasPrefix("/") ? path : "\(dir)/\(path)"
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try text.write(toFile: full, atomically: true, encoding: .utf8)
        return full
    }

    /// A tiny untrained 8x8 model; sampling it is quick.
    func tinyWeights(size: Int = 8) throws -> String {
        let path = dir + "/tiny.safetensors"
        try runLua("""
            ddpm.seed(3)
            local m = ddpm.unet{base = 8, levels = 1, time_dim = 8, attention = {false}, attention_mid = false,
                                image_size = \(size)}
            m:save('\(path)', {})
            """)
        return path
    }

    func sampler(_ description: String, body: String = "return ctx.x") -> String {
        "return {description = \"\(description)\", default_steps = 2, sample = function(ctx) \(body) end}\n"
    }

    /// A path ending in .lua, then $DDPM_PLUGINS folders in order, then the bundled scripts,
    /// then the native names; `ddpm samplers` lists every one with where it came from.
    func testLookupOrderAndListing() throws {
        _ = try write("a/samplers/mine.lua", sampler("mine from a"))
        _ = try write("b/samplers/mine.lua", sampler("mine from b"))
        _ = try write("b/samplers/ddim.lua", sampler("ddim from b"))
        _ = try write("b/schedules/flat.lua", "return {description = 'flat betas', betas = function(n) local b = {} "
                      + "for i = 1, n do b[i] = 0.02 end return b end}\n")
        let rel = try write("rel/mine.lua", sampler("mine by path"))
        let script = try write("find.lua", """
            for _, name in ipairs({"mine", "ddim", "ddpm", "dpmpp_2m", "rel/mine.lua", "\(rel)"}) do
              local p = ddpm.plugins.load("sampler", name)
              print(name .. " -> " .. p.source .. " " .. (p.description or ""))
            end
            print(select(2, ddpm.plugins.find("sampler", "nope")))
            print(ddpm.plugins.load("schedule", "flat").source, ddpm.plugins.load("schedule", "cosine").native)
            """)
        let env = ["DDPM_PLUGINS": "\(dir)/a:\(dir)/b"]
        var r = try runDDPM(["run", script], in: dir, environment: env)
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(Array(lines.prefix(6)), [
            "mine -> $DDPM_PLUGINS mine from a", "ddim -> $DDPM_PLUGINS ddim from b",
            "ddpm -> native ancestral DDPM over every timestep of the schedule (stochastic)",
            "dpmpp_2m -> bundled DPM-Solver++(2M), multistep, deterministic; spacing=trailing|uniform|logsnr|karras",
            "rel/mine.lua -> file mine by path", "\(rel) -> file mine by path"])
        XCTAssertEqual(lines[6], "unknown sampler 'nope' (found: mine, ddim, dpmpp_2m, repaint, unipc, ddpm; "
                       + "or give a path ending in .lua)")
        XCTAssertEqual(lines[7], "$DDPM_PLUGINS\tcosine")

        r = try runDDPM(["samplers"], in: dir, environment: env)
        XCTAssertEqual(r.status, 0, r.stderr)
        let listed = r.stdout.split(separator: "\n").map { $0.split(separator: " ").first.map(String.init) ?? "" }
        XCTAssertEqual(listed, ["mine", "ddim", "mine", "ddim", "dpmpp_2m", "repaint", "unipc", "ddpm", "ddim"])
        XCTAssertTrue(r.stdout.contains("$DDPM_PLUGINS \(dir)/b/samplers/mine.lua  mine from b "
                                        + "(hidden by the mine above)"),
                      r.stdout)
        XCTAssertTrue(r.stdout.contains("bundled \(scriptsDir)/samplers/unipc.lua  UniPC"), r.stdout)
        r = try runDDPM(["schedules"], in: dir, environment: env)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("flat        $DDPM_PLUGINS \(dir)/b/schedules/flat.lua  flat betas"), r.stdout)
        XCTAssertTrue(r.stdout.contains("cosine_lua  bundled"), r.stdout)
        XCTAssertTrue(r.stdout.contains("sigmoid     native"), r.stdout)
    }

    /// A sampler written only from the contract (docs/lua-api.md) runs by name from
    /// $DDPM_PLUGINS and by path in `sample`, `gif` and `eval`; its ctx.randn draws per image
    /// (a digit alone equals the same digit in a sheet) and --sampler-opt reaches ctx.options.
    func testSpecOnlySamplerRunsInSampleGifAndEval() throws {
        let plugin = try write("plugins/samplers/spec_euler.lua", """
            -- Written from the contract only: deterministic x0-form steps plus eta-scaled fresh noise.
            return {
              description = "written from the spec",
              default_steps = 4,
              sample = function(ctx)
                local s, x, ts = ctx.schedule, ctx.x, {}
                for i = 0, ctx.steps - 1 do ts[#ts + 1] = math.floor((s.steps - 1) * (1 - i / ctx.steps)) end
                local x0
                for i, t in ipairs(ts) do
                  x0 = ctx.x0(x, t)
                  local eps = ctx.eps(x, t)
                  ctx.on_step(i, t, x, x0)
                  if ts[i + 1] then
                    local ab, abp = s:alpha_bar(t), s:alpha_bar(ts[i + 1])
                    local e = (x - x0 * math.sqrt(ab)) / math.sqrt(1 - ab)
                    x = x0 * math.sqrt(abp) + e * math.sqrt(1 - abp) + ctx.randn() * (0.3 * ctx.eta) + eps * 0
                  end
                end
                if ctx.options.invert == "yes" then x0 = -x0 end
                return x0
              end,
            }
            """)
        let weights = try tinyWeights()
        let env = ["DDPM_PLUGINS": "\(dir)/plugins"]
        let common = ["sample", "--weights", weights, "--eta", "1", "--guidance", "2", "--seed", "5"]
        var r = try runDDPM(common + ["--sampler", "spec_euler", "--digits", "37", "--per-digit", "3",
                                      "--out", "\(dir)/sheet/"], in: dir, environment: env)
        XCTAssertEqual(r.status, 0, r.stderr)
        let text = try String(contentsOfFile: "\(dir)/sheet/7_1.png", encoding: .isoLatin1)
        XCTAssertTrue(text.contains("sampler\u{0}spec_euler"))
        r = try runDDPM(common.dropLast(2) + ["--seed", "9", "--sampler", plugin, "--digits", "7", "--per-digit", "1",
                                              "--out", "\(dir)/one/"], in: dir)
        XCTAssertEqual(r.status, 0, r.stderr)
        let alone = try PNG.read("\(dir)/one/7_0.png").gray, inSheet = try PNG.read("\(dir)/sheet/7_1.png").gray
        XCTAssertEqual(alone, inSheet, "image 4 of seed 5 is seed 9 alone")
        r = try runDDPM(common + ["--sampler", "spec_euler", "--sampler-opt", "invert=yes", "--digits", "37",
                                  "--per-digit", "3", "--out", "\(dir)/inverted/"], in: dir, environment: env)
        XCTAssertEqual(r.status, 0, r.stderr)
        let inverted = try PNG.read("\(dir)/inverted/7_1.png").gray
        XCTAssertLessThanOrEqual(zip(inverted, inSheet).map { abs(Int($0) + Int($1) - 255) }.max() ?? 9, 1,
                                 "ctx.options.invert flips the images")

        r = try runDDPM(["gif", "--weights", weights, "--sampler", "spec_euler", "--steps", "3", "--digits", "12",
                         "--out", "\(dir)/gifs"], in: dir, environment: env)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try GIFInfo(path: "\(dir)/gifs/digit-2.gif").frames, 4, "3 steps + the held last frame")

        try requireMNIST()
        let big = try tinyWeights(size: 32)
        let classifier = dir + "/clf.safetensors"
        try runLua("ddpm.seed(5)\nddpm.classifier{width = 4, features = 16}:save('\(classifier)')")
        r = try runDDPM(["eval", "--weights", big, "--classifier", classifier, "--per-class", "2",
                         "--sampler", "spec_euler", "--guidance", "2", "--guidance-interval", "500,999", "--json"],
                        in: dir, environment: env.merging(["DDPM_DATA": mnistDir]) { $1 })
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
        XCTAssertEqual(j["sampler"] as? String, "spec_euler")
        XCTAssertEqual(j["steps"] as? Int, 4)
        XCTAssertEqual(j["network_evaluations"] as? Int, 4 + 2, "timesteps 999 and 749 guided (two forwards each)")
    }

    /// Plugin mistakes: the plugin's own file:line and nothing written; a wrong shape or a
    /// non-tensor named by file; unknown names list every sampler; bad --sampler-opt is usage.
    func testPluginErrors() throws {
        let weights = try tinyWeights()
        _ = try write("p/samplers/broken.lua", """
            return {
              description = "fails on its second batch",
              sample = function(ctx)
                if ctx.labels[1] == 7 then
                  local y = ctx.x + missing.field
                end
                return ctx.x
              end,
            }
            """)
        _ = try write("p/samplers/narrow.lua", sampler("wrong shape", body: "return ctx.x:narrow(1, 1, 1)"))
        _ = try write("p/samplers/number.lua", sampler("not a tensor", body: "return 42"))
        _ = try write("p/samplers/syntax.lua", "return {\n  sample = function(ctx) return = end,\n}\n")
        _ = try write("p/samplers/notable.lua", "return 'sampler'\n")
        let env = ["DDPM_PLUGINS": "\(dir)/p"]
        func run(_ args: [String]) throws -> ProcessResult {
            try runDDPM(["sample", "--weights", weights, "--steps", "2", "--digits", "37", "--per-digit", "2",
                         "--batch", "2"] + args, in: dir, environment: env)
        }
        func expect(_ r: ProcessResult, _ status: Int32, _ text: String, file: StaticString = #filePath,
                    line: UInt = #line) {
            XCTAssertEqual(r.status, status, r.stderr, file: file, line: line)
            XCTAssertTrue(r.stderr.contains(text), "stderr lacks \"\(text)\":\n\(r.stderr)", file: file, line: line)
        }
        // (Lua shortens long file names in positions to their end: "...p/samplers/broken.lua:5:")
        expect(try run(["--sampler", "broken", "--out", "\(dir)/out/"]), 1,
               "p/samplers/broken.lua:5: attempt to index a nil value (global 'missing')")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/out"), "nothing of the first batch is written")
        expect(try run(["--sampler", "broken", "--format", "idx", "--out", "\(dir)/idx"]), 1, "broken.lua:5:")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: "\(dir)/idx"), [])
        expect(try run(["--sampler", "broken", "--out", "\(dir)/sheet/x.png"]), 1, "broken.lua:5:")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/sheet"))
        expect(try runDDPM(["gif", "--weights", weights, "--sampler", "broken", "--digits", "7",
                            "--out", "\(dir)/gifs"], in: dir, environment: env), 1, "broken.lua:5:")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: "\(dir)/gifs"), [])

        expect(try run(["--sampler", "narrow"]), 1, "ddpm.sample: sampler \(dir)/p/samplers/narrow.lua: sample(ctx) "
               + "returned a tensor [1, 1, 8, 8]; expected the images, a tensor [2, 1, 8, 8] (the shape of ctx.x)")
        expect(try run(["--sampler", "number"]), 1, "sampler \(dir)/p/samplers/number.lua: sample(ctx) returned 42;")
        expect(try run(["--sampler", "syntax"]), 1, "p/samplers/syntax.lua:2: unexpected symbol near '='")
        expect(try run(["--sampler", "notable"]), 1,
               "sampler plugin \(dir)/p/samplers/notable.lua must return a table, got \"sampler\"")
        expect(try run(["--sampler", "nope"]), 1,
               "unknown sampler 'nope' (found: broken, narrow, notable, number, syntax, ddim, dpmpp_2m, repaint, "
               + "unipc, ddpm; or give a path ending in .lua)")
        expect(try run(["--sampler", "\(dir)/none.lua"]), 1, "sampler file \(dir)/none.lua: no such file")
        expect(try run(["--sampler", "dpmpp_2m", "--sampler-opt", "spacing=sideways"]), 1,
               "unknown spacing 'sideways' (uniform, trailing, logsnr, karras)")
        expect(try run(["--sampler", "dpmpp_2m", "--sampler-opt", "spaceing=uniform"]), 1,
               "unknown sampler option 'spaceing' (this sampler takes: lower_order_final, spacing)")
        expect(try run(["--sampler", "ddim", "--sampler-opt", "spacing"]), 2, "--sampler-opt needs key=value")
        expect(try runDDPM(["train", "--schedule", "nope", "--out", "\(dir)/run"], in: dir, environment: env), 1,
               "unknown schedule 'nope' (found: cosine_lua, linear, cosine, sigmoid; or give a path ending in .lua)")
    }

    /// Timestep arguments take a number, a table or a tensor everywhere: per-sample steps equal
    /// the same steps taken one sample at a time.
    func testTimestepArgumentsTakeNumbersTablesAndTensors() throws {
        let host = try runLua("""
            local T = ddpm.tensor
            local s = ddpm.schedule.cosine{steps = 100}
            ddpm.seed(4)
            local x, eps, noise = T.randn({3, 1, 4, 4}), T.randn({3, 1, 4, 4}), T.randn({3, 1, 4, 4})
            local snr = s:snr({5, 50})
            snr_table = snr[2] == s:snr(50) and #snr == 2
            local ab = s:alpha_bar(T.from({-1, 7}))
            ab_tensor = ab:shape()[1] == 2 and ab:totable()[1] == 1
                        and math.abs(ab:totable()[2] - s:alpha_bar(7)) < 1e-7
            local t, t_prev = {90, 40, 3}, {60, -1, 0}
            local one = {}
            for i = 1, 3 do
              one[i] = s:ddim_step(x:narrow(1, i, 1), eps:narrow(1, i, 1), t[i], t_prev[i],
                                   {eta = 0.5, noise = noise:narrow(1, i, 1)})
            end
            local batch = s:ddim_step(x, eps, T.from(t), t_prev, {eta = 0.5, noise = noise})
            ddim_diff = (batch - T.cat(one, 1)):abs():max():item()
            for i = 1, 3 do
              one[i] = s:ddpm_step(x:narrow(1, i, 1), eps:narrow(1, i, 1), t[i], {noise = noise:narrow(1, i, 1)})
            end
            ddpm_diff = (s:ddpm_step(x, eps, t, {noise = noise}) - T.cat(one, 1)):abs():max():item()
            same_diff = (s:ddim_step(x, eps, {9, 9, 9}, 4) - s:ddim_step(x, eps, 9, 4)):abs():max():item()
            local ok, err = pcall(s.ddim_step, s, x, eps, {9, 9}, 4)
            count_error = err
            """)
        XCTAssertEqual(host.global("snr_table") as? Bool, true)
        XCTAssertEqual(host.global("ab_tensor") as? Bool, true)
        XCTAssertEqual(host.global("ddim_diff") as? Double, 0)
        XCTAssertEqual(host.global("ddpm_diff") as? Double, 0)
        XCTAssertEqual(host.global("same_diff") as? Double, 0)
        XCTAssertTrue((host.global("count_error") as? String ?? "").hasSuffix("timesteps: 2 entries for a batch of 3"),
                      "\(host.global("count_error") ?? "nil")")
    }

    /// The bundled solvers on Gaussian data, where the model's x0-hat and the probability-flow
    /// ODE's solution are exact formulas (a plugin is plain Lua, so a hand-made ctx drives it):
    /// doubling the steps (even in log-SNR) divides DDIM's error by ~2 (first order),
    /// DPM-Solver++(2M)'s by ~4 (second) and UniPC's by more (its corrector adds an order).
    func testSolversHaveTheirOrderOfAccuracy() throws {
        let host = try runLua("""
            local T = ddpm.tensor
            local s = ddpm.schedule.cosine{steps = 1000}
            local mu, sd = 0.3, 0.5
            ddpm.seed(1)
            local z = T.randn({2, 1, 4, 4})
            local function error_of(name, steps)
              local function x0(x, t)
                local ab = s:alpha_bar(t)
                local h = (x - math.sqrt(ab) * mu) * (math.sqrt(ab) * sd ^ 2 / (ab * sd ^ 2 + 1 - ab)) + mu
                return h, (x - h * math.sqrt(ab)) / math.sqrt(1 - ab)
              end
              local last_t, ab_T = nil, s:alpha_bar(999)
              local ctx = {x = z * math.sqrt(ab_T * sd ^ 2 + 1 - ab_T) + math.sqrt(ab_T) * mu, schedule = s,
                           steps = steps,
                           labels = {0, 0}, eps = function(x, t) return select(2, x0(x, t)) end, x0 = x0,
                           randn = function() return T.randn({2, 1, 4, 4}) end, eta = 0, clip = false,
                           options = {spacing = "logsnr"}, on_step = function(i, t) last_t = t end}
              local out = ddpm.plugins.load("sampler", name).sample(ctx)
              local ab = s:alpha_bar(last_t)  -- the exact ODE solution at the last step, denoised
              local exact = z * (math.sqrt(ab) * sd ^ 2 / math.sqrt(ab * sd ^ 2 + 1 - ab)) + mu
              return (out - exact):abs():max():item()
            end
            ratios = {}
            for _, name in ipairs({"ddim", "dpmpp_2m", "unipc"}) do
              ratios[name] = error_of(name, 40) / error_of(name, 80)
            end
            ddim_ratio, dpmpp_ratio, unipc_ratio = ratios.ddim, ratios.dpmpp_2m, ratios.unipc
            dpmpp_vs_ddim = error_of("ddim", 80) / error_of("dpmpp_2m", 80)
            """)
        let ddim = try XCTUnwrap(host.global("ddim_ratio") as? Double)
        let dpmpp = try XCTUnwrap(host.global("dpmpp_ratio") as? Double)
        let unipc = try XCTUnwrap(host.global("unipc_ratio") as? Double)
        XCTAssertEqual(ddim, 2, accuracy: 0.3, "DDIM is first order")
        XCTAssertEqual(dpmpp, 4, accuracy: 0.8, "DPM-Solver++(2M) is second order")
        XCTAssertGreaterThan(unipc, 5.5, "UniPC-2 with its corrector is third order")
        XCTAssertGreaterThan(try XCTUnwrap(host.global("dpmpp_vs_ddim") as? Double), 10)
    }

    /// `ddpm train --schedule NAME` trains on a schedule plugin and stores its name and betas in
    /// the weights; a resumed run keeps it (and refuses another).
    func testTrainWithAScheduleAndASamplerPlugin() throws {
        try requireMNIST()
        _ = try write("p/schedules/flat.lua", "return {description = 'flat', betas = function(n) local b = {} "
                      + "for i = 1, n do b[i] = 0.01 end return b end}\n")
        let cfg = try write("tiny.lua", """
            local c = dofile('\(scriptsDir)/configs/tiny.lua')
            c.train.batch = 4
            c.train.sample_every = nil
            return c
            """)
        let env = ["DDPM_PLUGINS": "\(dir)/p"]
        var r = try runDDPM(["train", "--config", cfg, "--steps", "2", "--out", "\(dir)/run", "--data", mnistDir,
                             "--schedule", "flat", "--sampler", "dpmpp_2m"], in: dir, environment: env)
        XCTAssertEqual(r.status, 0, r.stderr)
        let host = try runLua("""
            local meta = ddpm.safetensors.metadata('\(dir)/run/model.safetensors')
            schedule, first_beta = meta.schedule, tonumber(meta.betas:match('^[^,]+'))
            """)
        XCTAssertEqual(host.global("schedule") as? String, "flat")
        XCTAssertEqual(try XCTUnwrap(host.global("first_beta") as? Double), 0.01, accuracy: 1e-12)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/run/samples/step-000002.png"))
        r = try runDDPM(["train", "--config", cfg, "--steps", "3", "--out", "\(dir)/run", "--data", mnistDir,
                         "--resume", "--schedule", "cosine"], in: dir, environment: env)
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("--schedule cosine: the run in \(dir)/run was trained with flat"), r.stderr)
        // a sampler plugin that fails stops the run before its first step: no checkpoint, no weights
        _ = try write("p/samplers/fails.lua", sampler("always fails", body: "error('no luck')"))
        r = try runDDPM(["train", "--config", cfg, "--steps", "2", "--out", "\(dir)/bad", "--data", mnistDir,
                         "--sampler", "fails"], in: dir, environment: env)
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("p/samplers/fails.lua:"), r.stderr)
        XCTAssertTrue(r.stderr.contains("no luck"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/bad/checkpoint.safetensors"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/bad/model.safetensors"))
    }
}
