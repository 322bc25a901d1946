import Autograd
import Diffusion
import Foundation
import Storage
import TestSupport
import XCTest

/// The training objectives of scripts/lib/objective.lua (eps, v, x0; min-SNR weights; losses;
/// offset noise) and sampling models of each objective through the one conversion.
final class ObjectiveRecipeTests: XCTestCase {
    /// min-SNR-gamma weights (Hang et al. 2023) from the recipe equal the formula computed here
    /// from the schedule's alpha-bar.
    func testMinSNRWeightsEqualTheFormula() throws {
        let host = try runLua("""
            local objective = require "lib.objective"
            local s = ddpm.schedule.cosine{steps = 1000}
            local t = {0, 10, 150, 400, 700, 999}
            for _, o in ipairs({"eps", "v", "x0"}) do
              _G["w_" .. o] = ddpm.tensor.from(objective.min_snr_weights(s, t, 5, o))
            end
            w_gamma2 = ddpm.tensor.from(objective.min_snr_weights(s, t, 2, "v"))
            """)
        let s = try Schedule.cosine(steps: 1000)
        let t = [0, 10, 150, 400, 700, 999]
        func formula(_ gamma: Double, _ f: (Double, Double) -> Double) -> [Double] {
            t.map { let snr = s.alphaBar[$0] / (1 - s.alphaBar[$0]); return f(min(snr, gamma), snr) }
        }
        let cases: [(String, [Double])] = [
            ("w_eps", formula(5) { m, snr in m / snr }), ("w_v", formula(5) { m, snr in m / (snr + 1) }),
            ("w_x0", formula(5) { m, _ in m }), ("w_gamma2", formula(2) { m, snr in m / (snr + 1) }),
        ]
        for (name, expected) in cases {
            let ours = try XCTUnwrap(host.global(name) as? Tensor, name).values
            XCTAssertEqual(ours.count, expected.count, name)
            for (o, e) in zip(ours, expected) { XCTAssertEqual(Double(o), e, accuracy: 1e-6 * max(1, e), name) }
        }
        // high noise (SNR < gamma): eps keeps weight 1; low noise: x0's weight stops at gamma
        XCTAssertEqual(try XCTUnwrap(host.global("w_eps") as? Tensor).values.last, 1)
        XCTAssertEqual(try XCTUnwrap(host.global("w_x0") as? Tensor).values.first, 5)
    }

    /// The recipe's training targets read back through s:to_eps / s:to_x0 (the native
    /// conversion) give the noise and the image; the weighted loss is the hand-weighted one.
    func testTargetsRoundTripAndTheLossIsWeighted() throws {
        let host = try runLua("""
            ddpm.seed(4)
            local objective = require "lib.objective"
            local s = ddpm.schedule.cosine{steps = 1000}
            local x0 = ddpm.tensor.rand({3, 1, 4, 4}) * 2 - 1
            local noise = objective.noise({3, 1, 4, 4}, 0.1)
            local t = {5, 500, 950}
            local x_t = s:add_noise(x0, t, noise)
            err = 0
            for _, o in ipairs({"eps", "v", "x0"}) do
              local target = objective.target(s, o, x0, noise, t)
              err = math.max(err, (s:to_eps(target, x_t, t, o) - noise):abs():max():item(),
                             (s:to_x0(target, x_t, t, o) - x0):abs():max():item())
            end
            local v = objective.target(s, "v", x0, noise, t)
            local a = math.sqrt(s:alpha_bar(500))
            v_row = (v:narrow(1, 2, 1) - (noise:narrow(1, 2, 1) * a - x0:narrow(1, 2, 1) * math.sqrt(1 - a * a)))
              :abs():max():item()
            -- min-SNR + L2 on v: sum_b w_b mean_b(d^2) / B
            local opts = objective.options{objective = "v", loss = "l2", loss_weight = "min_snr"}
            local out = v + ddpm.tensor.randn({3, 1, 4, 4}) * 0.1
            local w = objective.min_snr_weights(s, t, 5, "v")
            local by_hand = 0
            for b = 1, 3 do by_hand = by_hand + w[b] * (out - v):narrow(1, b, 1):square():mean():item() / 3 end
            loss_diff = math.abs(objective.loss(opts, s, out, v, t):item() - by_hand)
            local huber = objective.options{loss = "huber"}
            huber_delta = huber.huber_delta
            huber_small = objective.loss(huber, s, out, v, t):item() / (out - v):square():mean():item()
            """)
        // x0 from eps at t = 950 divides by sqrt(ab) ~ 0.06; eps from x0 at t = 5 by sqrt(1 - ab) ~ 0.01
        XCTAssertLessThan(try XCTUnwrap(host.global("err") as? Double), 1e-4)
        XCTAssertLessThan(try XCTUnwrap(host.global("v_row") as? Double), 1e-6)
        XCTAssertLessThan(try XCTUnwrap(host.global("loss_diff") as? Double), 1e-6)
        XCTAssertEqual(try XCTUnwrap(host.global("huber_delta") as? Double), 0.1)
        // differences ~0.1 straddle delta = 0.1: the Huber loss is below half the squared error
        XCTAssertLessThan(try XCTUnwrap(host.global("huber_small") as? Double), 0.5)
    }

    /// Config mistakes are errors naming the field, before any training.
    func testBadObjectiveOptionsAreErrors() throws {
        let cases: [(String, String)] = [
            ("objective = 'velocity'", "train.objective must be eps, v, x0, got velocity"),
            ("loss = 'l3'", "train.loss must be l1, l2, huber, got l3"),
            ("loss_weight = 'snr'", "train.loss_weight must be none, min_snr, got snr"),
            ("gamma = 3", "train.gamma is the gamma of loss_weight = \"min_snr\" (the weighting is none)"),
            ("loss_weight = 'min_snr', gamma = -1", "train.gamma must be a number > 0, got -1"),
            ("huber_delta = 1", "train.huber_delta is the delta of loss = \"huber\" (the loss is l1)"),
            ("ema_warmup = 'yes'", "train.ema_warmup must be true or false, got yes"),
            ("offset_noise = -0.1", "train.offset_noise must be a number >= 0, got -0.1"),
        ]
        for (fields, message) in cases {
            XCTAssertThrowsError(try runLua("require('lib.objective').options{\(fields)}"), fields) { e in
                XCTAssertTrue("\(e)".contains(message), "\(fields): \(e)")
            }
        }
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "local c = dofile('\(scriptsDir)/configs/tiny.lua'); c.train.objective = 'vee'; return c"
            .write(toFile: dir + "/bad.lua", atomically: true, encoding: .utf8)
        let r = try runDDPM(["train", "--config", dir + "/bad.lua", "--steps", "1", "--out", dir + "/run"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("train.objective must be eps, v, x0, got vee"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/run/checkpoint.safetensors"))
    }

    /// A v-model (min-SNR, L2, offset noise) and an eps-model of the tiny config train a few steps;
    /// the weights record the objective, `ddpm info` shows it, and both sample digits with DDIM
    /// and DDPM. The native samplers, the Lua DDIM and an explicit objective= agree; reading a
    /// v-model as eps gives other images.
    func testVAndEpsModelsTrainAndSample() throws {
        try requireMNIST()
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let variants = [("v", "c.train.objective = 'v'; c.train.loss = 'l2'; c.train.loss_weight = 'min_snr'; "
                               + "c.train.offset_noise = 0.1; c.train.ema_warmup = false"),
                        ("eps", "")]
        for (name, fields) in variants {
            try """
                local c = dofile('\(scriptsDir)/configs/tiny.lua')
                c.train.batch = 8; c.train.sample_every = nil; \(fields)
                return c
                """.write(toFile: "\(dir)/\(name).lua", atomically: true, encoding: .utf8)
            var r = try runDDPM(["train", "--config", "\(dir)/\(name).lua", "--steps", "4",
                                 "--out", "\(dir)/\(name)", "--data", mnistDir])
            XCTAssertEqual(r.status, 0, r.stderr)
            let weights = "\(dir)/\(name)/model.safetensors"
            let meta = try SafeTensors.inspect(weights).metadata
            XCTAssertEqual(meta["objective"], name)
            r = try runDDPM(["info", weights])
            XCTAssertTrue(r.stdout.contains("objective: \(name), the model's output"), r.stdout)
            r = try runDDPM(["info", "\(dir)/\(name)/checkpoint.safetensors"])
            XCTAssertTrue(r.stdout.contains("objective: \(name) (the run's config), the model's output"), r.stdout)
            for sampler in ["ddim", "ddpm"] {
                r = try runDDPM(["sample", "--weights", weights, "--sampler", sampler, "--digits", "38",
                                 "--per-digit", "2", "--guidance", "2", "--out", "\(dir)/\(name)-\(sampler).png"])
                XCTAssertEqual(r.status, 0, r.stderr)
                XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/\(name)-\(sampler).png"))
            }
        }
        XCTAssertEqual(try SafeTensors.inspect("\(dir)/v/model.safetensors").metadata["min_snr_gamma"], "5")
        XCTAssertEqual(try SafeTensors.inspect("\(dir)/v/model.safetensors").metadata["ema_warmup"], "false")

        let host = try runLua("""
            local m = ddpm.load_model('\(dir)/v/model.safetensors')
            local s = m.schedule
            v_objective = m.objective
            local labels, noise = {3, 8}, ddpm.tensor.randn({2, 1, 16, 16})
            local function native(o)
              return ddpm.sample{model = m, schedule = s, labels = labels, sampler = {native = "ddim"}, steps = 8,
                                 guidance = 2, noise = noise, objective = o}
            end
            local a, b, as_eps = native(nil), native("v"), native("eps")
            -- the bundled DDIM plugin (scripts/samplers/ddim.lua) reads the output through ctx.eps
            local c = ddpm.sample{model = m, schedule = s, labels = labels, sampler = "ddim", steps = 8,
                                  guidance = 2, noise = noise}
            attached_vs_explicit = (a - b):abs():max():item()
            native_vs_lua = (a - c):abs():max():item()
            v_read_as_eps = (a - as_eps):abs():max():item()
            in_range = a:min():item() >= -1 and a:max():item() <= 1
            -- on_step's x0-hat is the conversion's x0 of the model's output (no guidance, no clipping)
            local x_t, t_seen, x0_seen
            ddpm.sample{model = m, schedule = s, labels = labels, sampler = {native = "ddim"}, steps = 8,
                        noise = noise, clip = false, on_step = function(i, t, x, x0)
                          if i == 3 then x_t, t_seen, x0_seen = x, t, x0 end
                        end}
            local x0_hat = s:to_x0(m:forward(x_t, t_seen, labels), x_t, t_seen, m.objective)
            x0_diff = (x0_hat - x0_seen):abs():max():item()
            m.objective = nil
            cleared = m.objective
            eps_objective = ddpm.load_model('\(dir)/eps/model.safetensors').objective
            """)
        XCTAssertEqual(host.global("v_objective") as? String, "v")
        XCTAssertEqual(host.global("attached_vs_explicit") as? Double, 0)
        XCTAssertEqual(host.global("native_vs_lua") as? Double, 0)
        XCTAssertGreaterThan(try XCTUnwrap(host.global("v_read_as_eps") as? Double), 0.01)
        XCTAssertEqual(host.global("in_range") as? Bool, true)
        XCTAssertLessThan(try XCTUnwrap(host.global("x0_diff") as? Double), 1e-4)
        XCTAssertEqual(host.global("cleared") as? String, "eps")
        XCTAssertEqual(host.global("eps_objective") as? String, "eps")
    }

    /// The training run's sample sheets (and its probe) read a v-model as a v-model: the sheet of
    /// the last step equals the same sampling of the saved weights, byte for byte; ema:model()
    /// carries the source model's objective and schedule.
    func testTrainingSheetsReadTheModelsObjective() throws {
        try requireMNIST()
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
            local c = dofile('\(scriptsDir)/configs/tiny.lua')
            c.train.batch = 8; c.train.sample_every = 2; c.train.objective = 'v'; c.train.loss = 'l2'
            return c
            """.write(toFile: "\(dir)/v.lua", atomically: true, encoding: .utf8)
        let r = try runDDPM(["train", "--config", "\(dir)/v.lua", "--steps", "2", "--out", "\(dir)/v",
                             "--data", mnistDir])
        XCTAssertEqual(r.status, 0, r.stderr)
        let host = try runLua("""
            ddpm.precision("auto")  -- the run's precision (train's default)
            local m = ddpm.load_model('\(dir)/v/model.safetensors')
            local labels = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
            local x = ddpm.sample{model = m, schedule = m.schedule, labels = labels, sampler = "ddim", steps = 20,
                                  guidance = 2, seed = 1234}
            ddpm.image.save(ddpm.image.grid(x, {cols = 10}), '\(dir)/again.png', {scale = 2})
            local source = ddpm.unet{base = 8, levels = 1, time_dim = 8, attention = {false}, attention_mid = false,
                                     image_size = 8}
            source.objective, source.schedule = "v", ddpm.schedule.cosine{steps = 100}
            local ema = ddpm.ema(source, 0.9)
            ema_objective, ema_schedule_steps = ema:model().objective, ema:model().schedule.steps
            source.objective = "x0"
            ema_follows = ema:model().objective
            """)
        XCTAssertEqual(FileManager.default.contents(atPath: "\(dir)/v/samples/step-000002.png"),
                       FileManager.default.contents(atPath: "\(dir)/again.png"), "the sheet is the weights' sampling")
        XCTAssertEqual(host.global("ema_objective") as? String, "v")
        XCTAssertEqual(host.global("ema_schedule_steps") as? Double, 100)
        XCTAssertEqual(host.global("ema_follows") as? String, "x0")
    }

    func testObjectiveBindingErrors() throws {
        let schedule = "local s = ddpm.schedule.linear{steps = 10}; local x = ddpm.tensor.zeros({2, 1, 2, 2}); "
        let batch = "local x = ddpm.tensor.zeros({2, 3}); "
        let cases: [(String, String)] = [
            ("ddpm.unet{base = 8, levels = 1, time_dim = 8, attention = {false}, image_size = 8}.objective = 'w'",
             "objective \"w\" is not one of eps, v, x0"),
            (schedule + "s:to_eps(x, x, 3, 'vv')", "objective \"vv\" is not one of eps, v, x0"),
            (schedule + "s:to_x0(x, x, 10, 'v')", "prediction: timestep 10 out of range [0, 10)"),
            (batch + "ddpm.loss.l1(x, x, {weights = {1}})", "option weights: 1 entries for a batch of 2"),
            (batch + "ddpm.loss.mse(x, x, {delta = 1})", "unknown loss option field(s) delta"),
            (batch + "ddpm.loss.huber(x, x, {delta = 0})", "huber delta 0.0 must be finite and > 0"),
        ]
        for (code, message) in cases {
            XCTAssertThrowsError(try runLua(code), code) { e in
                XCTAssertTrue("\(e)".contains(message), "\(code): \(e)")
            }
        }
    }
}
