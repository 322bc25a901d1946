import Autograd
import Foundation
import Imaging
import Scripting
import TestSupport
import XCTest

/// Recipes drive training, schedules and sampling from Lua (small shapes, real MNIST batches).
final class RecipeTests: XCTestCase {
    /// A training loop written in Lua on a tiny config lowers the L1 noise loss.
    func testTrainingFromLuaLowersTheLoss() throws {
        try requireMNIST()
        let host = try runLua("""
            ddpm.seed(0)
            local cfg = dofile('\(scriptsDir)/configs/tiny.lua')
            local model = ddpm.unet(cfg.model)
            local s = ddpm.schedule.cosine{steps = 1000}
            local opt = ddpm.optim.adam(model, {lr = 2e-3})
            local data = ddpm.data.mnist{path = '\(mnistDir)', size = 16}
            local first, last = 0, 0
            for step = 1, 60 do
              local x0, labels = data:batch(16)
              local u = ddpm.tensor.rand({16}):totable()
              local t = {}
              for i = 1, 16 do t[i] = math.floor(u[i] * 1000) end
              local noise = ddpm.tensor.randn(x0:shape())
              local loss = ddpm.loss.l1(model:forward(s:add_noise(x0, t, noise), t, labels), noise)
              opt:zero_grad(); loss:backward(); opt:step()
              if step <= 10 then first = first + loss:item() / 10 end
              if step > 50 then last = last + loss:item() / 10 end
            end
            first_loss, last_loss = first, last
            """)
        let first = try XCTUnwrap(host.global("first_loss") as? Double)
        let last = try XCTUnwrap(host.global("last_loss") as? Double)
        print("L1 loss: first 10 steps \(first), last 10 of 60 steps \(last)")
        XCTAssertLessThan(last, 0.75 * first)
    }

    /// Built-in and Lua-defined schedules plug into the same native math: linear and cosine give
    /// different x_t, the Lua cosine agrees with the native one, and a training step runs on it.
    func testSchedulesSwapWithoutRebuilding() throws {
        let host = try runLua("""
            ddpm.seed(0)
            local x0 = ddpm.tensor.rand({2, 1, 8, 8}) * 2 - 1
            local noise = ddpm.tensor.randn({2, 1, 8, 8})
            local lin, cos = ddpm.schedule.linear{steps = 1000}, ddpm.schedule.cosine{steps = 1000}
            local lua_cos = require("lib.common").schedule{kind = "cosine_lua", steps = 1000}
            lua_cos_name = lua_cos.name
            local function xt(s) return s:add_noise(x0, {300, 700}, noise) end
            lin_vs_cos = (xt(lin) - xt(cos)):abs():max():item()
            lua_vs_cos = (xt(lua_cos) - xt(cos)):abs():max():item()
            local worst = 0
            for t = 0, 999, 37 do \
            worst = math.max(worst, math.abs(lua_cos:alpha_bar(t) - cos:alpha_bar(t)) / cos:alpha_bar(t)) end
            alpha_bar_rel = worst
            -- a schedule from a table of betas, and a training step on the Lua schedule
            local custom = ddpm.schedule.from_betas({0.1, 0.2, 0.3})
            custom_ab = custom:alpha_bar(2)
            local m = ddpm.unet{base = 8, levels = 1, time_dim = 8, attention = {false}, attention_mid = false, \
            image_size = 8}
            local loss = ddpm.loss.l1(m:forward(xt(lua_cos), {300, 700}, {1, 2}), noise)
            loss:backward()
            step_loss = loss:item()
            """)
        let linVsCos = try XCTUnwrap(host.global("lin_vs_cos") as? Double)
        let luaVsCos = try XCTUnwrap(host.global("lua_vs_cos") as? Double)
        XCTAssertGreaterThan(linVsCos, 0.05, "linear and cosine must noise differently")
        XCTAssertLessThan(luaVsCos, 1e-3, "the Lua cosine should match the native one (up to its 1e-4 beta clip)")
        XCTAssertLessThan(try XCTUnwrap(host.global("alpha_bar_rel") as? Double), 2e-3)
        XCTAssertEqual(try XCTUnwrap(host.global("custom_ab") as? Double), 0.9 * 0.8 * 0.7, accuracy: 1e-12)
        XCTAssertEqual(host.global("lua_cos_name") as? String, "cosine_lua")
        XCTAssert((try XCTUnwrap(host.global("step_loss") as? Double)).isFinite)
    }

    /// N steps straight vs N/2 + checkpoint + fresh objects + load + N/2: identical parameters.
    /// Bit-for-bit: every reduction is single-threaded and OpenBLAS gives the same result for
    /// the same shapes and thread count.
    func testResumeGivesTheSameParametersBitForBit() throws {
        try requireMNIST()
        let dir = try temporaryDirectory()
        let host = try runLua("""
            local function setup(seed)
              ddpm.seed(seed)
              local m = ddpm.unet{base = 8, levels = 2, time_dim = 16, attention = {false, true}, image_size = 16}
              local opt = ddpm.optim.adam(m, {lr = 1e-3, clip_norm = 1})
              local ema = ddpm.ema(m, 0.9)
              local data = ddpm.data.mnist{path = '\(mnistDir)', size = 16}
              return m, opt, ema, data
            end
            local s = ddpm.schedule.linear{}
            local function train(m, opt, ema, data, n)
              for _ = 1, n do
                local x0, labels = data:batch(8)
                local u = ddpm.tensor.rand({8}):totable()
                local t = {}
                for i = 1, 8 do t[i] = math.floor(u[i] * 1000); if u[i] < 0.2 then labels[i] = -1 end end
                local noise = ddpm.tensor.randn(x0:shape())
                local loss = ddpm.loss.l1(m:forward(s:add_noise(x0, t, noise), t, labels), noise)
                opt:zero_grad(); loss:backward(); opt:step(); ema:update()
              end
            end
            local function flat(m)
              local out = {}
              for _, name in ipairs(m:parameter_names()) do
                for _, v in ipairs(m:parameters()[name]:totable()) do out[#out + 1] = v end
              end
              return out
            end
            local a = {setup(5)}
            train(a[1], a[2], a[3], a[4], 6)
            local b = {setup(5)}
            train(b[1], b[2], b[3], b[4], 3)
            ddpm.checkpoint.save('\(dir)/ck.safetensors', {model = b[1], optimizer = b[2], ema = b[3], data = b[4], \
            step = 3, note = "half"})
            local c = {setup(99)}  -- different init and random state: the checkpoint must restore all of it
            local state = ddpm.checkpoint.load('\(dir)/ck.safetensors', \
            {model = c[1], optimizer = c[2], ema = c[3], data = c[4]})
            resumed_step, note = state.step, state.note
            train(c[1], c[2], c[3], c[4], 3)
            local pa, pc = flat(a[1]), flat(c[1])
            local ea, ec = flat(a[3]:model()), flat(c[3]:model())
            different, ema_different = 0, 0
            for i = 1, #pa do if pa[i] ~= pc[i] then different = different + 1 end end
            for i = 1, #ea do if ea[i] ~= ec[i] then ema_different = ema_different + 1 end end
            count = #pa
            """)
        XCTAssertEqual(host.global("resumed_step") as? Double, 3)
        XCTAssertEqual(host.global("note") as? String, "half")
        XCTAssertGreaterThan(try XCTUnwrap(host.global("count") as? Double), 1000)
        XCTAssertEqual(host.global("different") as? Double, 0, "parameters differ after resume")
        XCTAssertEqual(host.global("ema_different") as? Double, 0, "EMA parameters differ after resume")
    }

    /// The DDIM plugin (scripts/samplers/ddim.lua, what `--sampler ddim` runs) gives the native
    /// sampler's images bit for bit: guided, with a guidance interval, and with eta > 0 and
    /// per-image seeds (ctx.randn draws what the native step noise draws).
    func testDDIMPluginEqualsNativeDDIMBitForBit() throws {
        let host = try runLua("""
            ddpm.seed(3)
            local m = ddpm.unet{base = 8, levels = 2, time_dim = 16, attention = {false, true}, image_size = 16}
            local s = ddpm.schedule.linear{steps = 1000}
            local noise = ddpm.tensor.randn({4, 1, 16, 16})
            local labels = {1, 2, 3, 4}
            local plugin = ddpm.plugins.load("sampler", "ddim")
            plugin_source = plugin.source
            local function run(sampler, o)
              local steps_seen = 0
              local x = ddpm.sample{model = m, schedule = s, labels = labels, sampler = sampler, steps = 10,
                                    guidance = o.w, guidance_interval = o.interval, eta = o.eta, seeds = o.seeds,
                                    noise = not o.seeds and noise or nil,
                                    on_step = function() steps_seen = steps_seen + 1 end}
              return x, steps_seen
            end
            local function diff(o)
              local a = run({native = "ddim"}, o)
              local b, seen = run(plugin, o)
              local c = run("ddim", o)
              return math.max((a - b):abs():max():item(), (a - c):abs():max():item()), seen
            end
            guided_diff, lua_steps = diff{w = 2}
            plain_diff = diff{}
            partial_diff = diff{w = 2, interval = {300, 700}}
            eta_diff = diff{w = 2, eta = 0.5, seeds = {5, 6, 7, 8}}
            local a = run({native = "ddim"}, {w = 2})
            local p = run({native = "ddim"}, {w = 2, interval = {300, 700}})
            partial_from_guided = (a - p):abs():max():item()
            local ok, err = pcall(run, plugin, {w = 2, interval = {700, 300}})
            interval_error = err
            """)
        XCTAssertEqual(host.global("plugin_source") as? String, "bundled")
        XCTAssertEqual(host.global("guided_diff") as? Double, 0)
        XCTAssertEqual(host.global("plain_diff") as? Double, 0)
        XCTAssertEqual(host.global("partial_diff") as? Double, 0, "native and Lua DDIM disagree with an interval")
        XCTAssertEqual(host.global("eta_diff") as? Double, 0, "native and Lua DDIM disagree with eta > 0")
        XCTAssertEqual(host.global("lua_steps") as? Double, 10)
        XCTAssertGreaterThan(try XCTUnwrap(host.global("partial_from_guided") as? Double), 1e-4)
        let message = try XCTUnwrap(host.global("interval_error") as? String)
        XCTAssertTrue(message.hasSuffix("option guidance_interval: {low, high} timesteps with low <= high expected, "
                                        + "got {700, 300}"), message)
    }

    /// The ancestral step from Lua with the fixture's noise equals the reference's step, and
    /// ddpm.sample with sampler="ddpm" equals the same loop written with s:ddpm_step.
    func testDDPMStepMatchesReferenceAndSamplerMatchesStepLoop() throws {
        let host = try runLua("""
            local f = ddpm.safetensors.read('\(fixturesDir)/ops.safetensors')
            local s = ddpm.schedule.linear{steps = 1001}
            worst = 0
            for _, t in ipairs({1000, 500, 37}) do
              local p = 'sample_p/t' .. t .. '/'
              local x_prev = s:ddpm_step(f[p .. 'x_t'], f[p .. 'eps'], t, {noise = f[p .. 'noise']})
              local ref = f[p .. 'x_prev_f64']
              worst = math.max(worst, (x_prev - ref):abs():max():item() / ref:abs():max():item())
            end
            ddpm.seed(11)
            local m = ddpm.unet{base = 8, levels = 1, time_dim = 8, attention = {false}, attention_mid = false, \
            image_size = 8}
            local short = ddpm.schedule.linear{steps = 6, beta_start = 0.01, beta_end = 0.2}
            ddpm.seed(12)
            local x = ddpm.tensor.randn({3, 1, 8, 8})
            local a = ddpm.sample{model = m, schedule = short, labels = {0, 1, 2}, sampler = "ddpm", noise = x}
            ddpm.seed(12)
            local y = ddpm.tensor.randn({3, 1, 8, 8})
            ddpm.no_grad(function()
              for t = short.steps - 1, 0, -1 do y = short:ddpm_step(y, m:forward(y, t, {0, 1, 2}), t) end
            end)
            loop_diff = (a - y):abs():max():item()
            """)
        XCTAssertLessThan(try XCTUnwrap(host.global("worst") as? Double), 1e-5)
        XCTAssertEqual(host.global("loop_diff") as? Double, 0)
    }

    /// PNG read back by libpng (not our encoder) and GIF parsed by a separate decoder here.
    func testPNGAndGIFDecodeIndependently() throws {
        let dir = try temporaryDirectory()
        try runLua("""
            local v = {}
            for i = 0, 11 do v[#v + 1] = i / 11 * 2 - 1 end
            local img = ddpm.tensor.from(v, {1, 1, 3, 4})
            ddpm.image.save(img, '\(dir)/a.png', {scale = 2, text = {seed = "7"}})
            local g = ddpm.gif.open('\(dir)/a.gif', {delay = 7, loop = 0, scale = 3})
            g:add(img) g:add(-img) g:add(img, {delay = 150})
            g:close()
            """)
        let png = try PNG.read("\(dir)/a.png")
        XCTAssertEqual(png.width, 8)
        XCTAssertEqual(png.height, 6)
        XCTAssertEqual(Array(png.gray.prefix(8)), [0, 0, 23, 23, 46, 46, 70, 70])
        XCTAssertEqual(png.gray[5 * 8 + 7], 255)
        XCTAssertEqual(try PNG.textChunks("\(dir)/a.png")["seed"], "7")

        XCTAssertEqual(try GIFInfo(path: "\(dir)/a.gif"),
                       GIFInfo(version: "GIF89a", width: 12, height: 9, loop: 0, delays: [7, 7, 150], frames: 3))
    }
}
