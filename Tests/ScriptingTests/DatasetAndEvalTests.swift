import Autograd
import Datasets
import Foundation
import Imaging
import Layers
import Storage
import Scripting
import TestSupport
import XCTest

/// `ddpm sample` into folders and IDX files with per-image seeds, `ddpm eval`, and the
/// reference recipe — each through the real binary.
final class DatasetAndEvalTests: XCTestCase {
    /// A tiny untrained model (8x8) saved as a weights file; sampling it is quick.
    func tinyWeights(_ dir: String, size: Int = 8) throws -> String {
        let path = dir + "/tiny.safetensors"
        try runLua("""
            ddpm.seed(3)
            local m = ddpm.unet{base = 8, levels = 1, time_dim = 8, attention = {false}, attention_mid = false, \
            image_size = \(size)}
            m:save('\(path)', {default_guidance = 2})
            """)
        return path
    }

    func pixels(_ path: String) throws -> [UInt8] { try PNG.read(path).gray }

    func testSampleFolderIDXAndPerImageSeeds() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let weights = try tinyWeights(dir)
        let common = ["sample", "--weights", weights, "--steps", "4", "--seed", "10"]

        // a folder: <digit>_<index>.png at native size, provenance in each file
        var r = try runDDPM(common + ["--digits", "37", "--per-digit", "3", "--out", dir + "/digits/"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let names = try FileManager.default.contentsOfDirectory(atPath: dir + "/digits").sorted()
        XCTAssertEqual(names, ["3_0.png", "3_1.png", "3_2.png", "7_0.png", "7_1.png", "7_2.png"])
        let png = try PNG.read(dir + "/digits/7_1.png")
        XCTAssertEqual([png.width, png.height], [8, 8])
        let text = try String(contentsOfFile: dir + "/digits/7_1.png", encoding: .isoLatin1)
        XCTAssertTrue(text.contains("seed\u{0}14"), "image 4 of seed 10 has seed 14")
        XCTAssertTrue(text.contains("weights_sha256\u{0}" + (try SHA256.hex(ofFile: weights))))

        // any one image regenerated alone from its seed: the same pixels
        r = try runDDPM(common.dropLast(2)
                        + ["--seed", "14", "--digits", "7", "--per-digit", "1", "--out", dir + "/one/"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try pixels(dir + "/one/7_0.png"), try pixels(dir + "/digits/7_1.png"))

        // the sheet prints the seeds of its rows; same seed -> the same file, byte for byte
        r = try runDDPM(common + ["--digits", "37", "--per-digit", "3", "--out", dir + "/a.png"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("row 1 (digit 7): seeds 13..15"), r.stdout)
        _ = try runDDPM(common + ["--digits", "37", "--per-digit", "3", "--out", dir + "/b.png"])
        XCTAssertEqual(FileManager.default.contents(atPath: dir + "/a.png"),
                       FileManager.default.contents(atPath: dir + "/b.png"))

        // DDPM draws noise at every step: per image too, so a lone image still matches
        let ddpm = ["sample", "--weights", weights, "--sampler", "ddpm", "--guidance", "1"]
        r = try runDDPM(ddpm + ["--seed", "0", "--digits", "12", "--per-digit", "2", "--out", dir + "/ddpm/"])
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try runDDPM(ddpm + ["--seed", "3", "--digits", "2", "--per-digit", "1", "--out", dir + "/ddpm-one/"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try pixels(dir + "/ddpm-one/2_0.png"), try pixels(dir + "/ddpm/2_1.png"))

        // IDX: a labelled dataset the loader reads back, pixels equal to the PNGs of the same seeds
        r = try runDDPM(common + ["--digits", "37", "--per-digit", "3", "--format", "idx", "--batch", "4",
                                  "--out", dir + "/idx"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let ds = try ImageDataset(imagesPath: dir + "/idx/train-images-idx3-ubyte",
                                  labelsPath: dir + "/idx/train-labels-idx1-ubyte",
                                  resize: .none, generator: Generator(seed: 0))
        XCTAssertEqual(ds.labels, [3, 3, 3, 7, 7, 7])
        let (dims, bytes) = try IDX.read(dir + "/idx/train-images-idx3-ubyte")
        XCTAssertEqual(dims, [6, 8, 8])
        XCTAssertEqual(Array(bytes[(4 * 64)..<(5 * 64)]), try pixels(dir + "/digits/7_1.png"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/idx/train-images-idx3-ubyte.tmp"))

        r = try runDDPM(common + ["--format", "jpg", "--out", dir + "/x/"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("--format must be png or idx, got 'jpg'"), r.stderr)
    }

    /// The guidance interval: the weights' recommended one unless --guidance-interval is given,
    /// recorded in the PNG; a bad interval is a clear error.
    func testGuidanceIntervalDefaultOverrideAndProvenance() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let weights = dir + "/tiny.safetensors"
        try runLua("""
            ddpm.seed(3)
            local m = ddpm.unet{base = 8, levels = 1, time_dim = 8, attention = {false}, attention_mid = false, \
            image_size = 8}
            m:save('\(weights)', {default_guidance = 3, default_guidance_interval = "300,700"})
            """)
        let common = ["sample", "--weights", weights, "--steps", "4", "--digits", "5", "--per-digit", "2"]
        func text(_ path: String) throws -> String { try String(contentsOfFile: path, encoding: .isoLatin1) }

        var r = try runDDPM(common + ["--out", dir + "/default.png"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(try text(dir + "/default.png").contains("guidance_interval\u{0}300,700"))
        r = try runDDPM(common + ["--guidance-interval", "all", "--out", dir + "/all.png"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(try text(dir + "/all.png").contains("guidance_interval\u{0}all"))
        XCTAssertNotEqual(try pixels(dir + "/default.png"), try pixels(dir + "/all.png"))
        r = try runDDPM(common + ["--guidance-interval", "0,999", "--out", dir + "/wide.png"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try pixels(dir + "/wide.png"), try pixels(dir + "/all.png"),
                       "an interval holding every step = guidance everywhere")
        r = try runDDPM(common + ["--guidance-interval", "all", "--eta", "1", "--out", dir + "/eta.png"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(try text(dir + "/eta.png").contains("eta\u{0}1"))
        XCTAssertNotEqual(try pixels(dir + "/eta.png"), try pixels(dir + "/all.png"), "eta 1 adds step noise")

        r = try runDDPM(common + ["--guidance-interval", "700,300", "--out", dir + "/bad.png"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("--guidance-interval needs LOW,HIGH timesteps with LOW <= HIGH (e.g. 100,700) "
                                        + "or 'all', got '700,300'"), r.stderr)
    }

    /// `ddpm eval` end to end on a tiny model and an untrained classifier: the JSON has every
    /// field, per-class accuracies average to the overall one, and --classifier-only agrees with
    /// the classifier's accuracy computed here.
    func testEvalReportsAccuracyFrechetAndDiversity() throws {
        try requireMNIST()
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let weights = try tinyWeights(dir, size: 32)
        let classifier = dir + "/clf.safetensors"
        let host = try runLua("""
            ddpm.seed(5)
            local clf = ddpm.classifier{width = 4, features = 16}
            clf:save('\(classifier)')
            local test = ddpm.data.mnist{split = 'test', path = '\(mnistDir)'}
            local right = 0
            for first = 1, #test, 1000 do
              local x, labels = test:slice(first, 1000)
              for i, p in ipairs(clf:predict(x)) do if p == labels[i] then right = right + 1 end end
            end
            expected_accuracy = right / #test * 100
            """)
        let expected = try XCTUnwrap(host.global("expected_accuracy") as? Double)
        let env = ["DDPM_DATA": mnistDir]

        var r = try runDDPM(["eval", "--classifier", classifier, "--classifier-only", "--json"], environment: env)
        XCTAssertEqual(r.status, 0, r.stderr)
        let only = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(try XCTUnwrap(only["accuracy"] as? Double), expected, accuracy: 0.006)

        r = try runDDPM(["eval", "--weights", weights, "--classifier", classifier, "--per-class", "3", "--steps", "2",
                         "--guidance", "1", "--guidance-interval", "100,500", "--json"], environment: env)
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
        let perClass = try XCTUnwrap(j["accuracy_per_class"] as? [String: Double])
        XCTAssertEqual(perClass.keys.sorted(), (0...9).map(String.init))
        XCTAssertEqual(perClass.values.reduce(0, +) / 10, try XCTUnwrap(j["accuracy"] as? Double), accuracy: 0.01)
        let fd = try XCTUnwrap(j["frechet"] as? Double), floor = try XCTUnwrap(j["frechet_real"] as? Double)
        XCTAssertGreaterThan(floor, 0)
        XCTAssertEqual(try XCTUnwrap(j["frechet_ratio"] as? Double), fd / floor, accuracy: 1e-3 * fd / floor)
        XCTAssertGreaterThan(try XCTUnwrap(j["diversity_real"] as? Double), 0)
        XCTAssertEqual(j["weights_sha256"] as? String, try SHA256.hex(ofFile: weights))
        XCTAssertEqual(j["per_class"] as? Int, 3)
        XCTAssertEqual(j["guidance_interval"] as? String, "100,500")
        // 3 per class is below 50: the numbers, but no verdict on the targets
        XCTAssertEqual(j["targets_meaningful"] as? Bool, false)
        XCTAssertNil(j["targets"])

        // the table form names the targets; too few digits per class to judge them
        r = try runDDPM(["eval", "--weights", weights, "--classifier", classifier, "--per-class", "2", "--steps", "1",
                         "--guidance", "1"], environment: env)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("Frechet distance"), r.stdout)
        XCTAssertTrue(r.stdout.contains("accuracy per class"), r.stdout)
        for target in [">= 99 %", "<= 2x real", ">= 0.9x real"] {
            XCTAssertTrue(r.stdout.contains(target + ": not meaningful"), r.stdout)
        }
        XCTAssertFalse(r.stdout.contains(": met") || r.stdout.contains("NOT met"), r.stdout)
        XCTAssertTrue(r.stdout.contains("verdicts need at least 50 digits per class (--per-class 50); 2 per class"),
                      r.stdout)

        r = try runDDPM(["eval", "--weights", weights, "--classifier", dir + "/missing.safetensors"], environment: env)
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("missing.safetensors"), r.stderr)
    }

    /// `ddpm eval --cas` on a tiny untrained 16x16 model: the JSON's reference accuracy is that of a
    /// classifier trained here the same way on the first 3 real training digits of each class, its
    /// CAS that of one trained on the 30 digits `ddpm.sample` gives for seeds 0..29, and the table
    /// names both and the gap.
    func testEvalClassificationAccuracyScore() throws {
        try requireMNIST()
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let weights = try tinyWeights(dir, size: 16)
        let host = try runLua("""
            ddpm.precision("auto")  -- eval's default
            local evaluation = require "lib.evaluation"
            local train = ddpm.data.mnist{split = 'train', size = 16, path = '\(mnistDir)'}
            local test = ddpm.data.mnist{split = 'test', size = 16, path = '\(mnistDir)'}
            local function score(images, labels)
              ddpm.seed(0)
              local ds = ddpm.data.from_tensor(images, labels)
              local clf = ddpm.classifier{image_size = 16}
              evaluation.train_classifier(clf, ds, {steps = 4})
              return (evaluation.accuracy(clf, test)) * 100
            end
            local picked, real, labels = evaluation.first_per_class(train, 3), {}, {}
            for c = 0, 9 do
              for _, i in ipairs(picked[c]) do real[#real + 1] = (train:get(i)); labels[#labels + 1] = c end
            end
            real_accuracy = score(ddpm.tensor.cat(real, 1), labels)
            local m = ddpm.load_model('\(weights)')
            local seeds = {}
            for i = 1, 30 do seeds[i] = i - 1 end
            local x = ddpm.sample{model = m, schedule = m.schedule, labels = labels, seeds = seeds, sampler = 'ddim',
                                  steps = 2, guidance = 2}
            generated_accuracy = score(x, labels)
            """)
        let env = sameBLASKernels.merging(["DDPM_DATA": mnistDir]) { a, _ in a }
        let common = ["eval", "--weights", weights, "--cas", "3", "--cas-steps", "4", "--steps", "2", "--seed", "0"]
        var r = try runDDPM(common + ["--json"], environment: env)
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
        XCTAssertEqual(j["mode"] as? String, "cas")
        XCTAssertEqual(j["per_class"] as? Int, 3)
        XCTAssertEqual(j["image_size"] as? Int, 16)
        XCTAssertEqual(j["guidance"] as? Double, 2, "the weights' recommended guidance")
        let cas = try XCTUnwrap(j["cas"] as? Double), real = try XCTUnwrap(j["cas_real"] as? Double)
        XCTAssertEqual(real, try XCTUnwrap(host.global("real_accuracy") as? Double), accuracy: 0.006)
        XCTAssertEqual(cas, try XCTUnwrap(host.global("generated_accuracy") as? Double), accuracy: 0.006)
        XCTAssertEqual(try XCTUnwrap(j["cas_gap"] as? Double), real - cas, accuracy: 0.011)
        XCTAssertEqual((j["cas_per_class"] as? [String: Double])?.keys.sorted(), (0...9).map(String.init))
        XCTAssertEqual((j["classifier"] as? [String: Any])?["steps"] as? Int, 4)
        XCTAssertEqual(j["weights_sha256"] as? String, try SHA256.hex(ofFile: weights))
        XCTAssertEqual(j["targets_meaningful"] as? Bool, false)
        XCTAssertNil(j["targets"])

        r = try runDDPM(common, environment: env)
        XCTAssertEqual(r.status, 0, r.stderr)
        for text in ["3 generated digits per class (CAS)", "3 real training digits per class", "gap (real - generated)",
                     "target <= 0.5 points: not meaningful", "per class, generated"] {
            XCTAssertTrue(r.stdout.contains(text), r.stdout)
        }
        XCTAssertTrue(r.stdout.contains(String(format: "%.2f %%", cas)), r.stdout)

        r = try runDDPM(["eval", "--weights", weights, "--cas", "-2"], environment: env)
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("--cas"), r.stderr)
        XCTAssertThrowsError(try runLua("ddpm.data.from_tensor(ddpm.tensor.zeros({2, 1, 4, 4}), {1})")) { e in
            XCTAssertTrue("\(e)".contains("labels: 1 entries for a batch of 2"), "\(e)")
        }
    }

    /// `ddpm train --init-weights`: training starts from the given weights (fine-tuning), and the
    /// output records where it started.
    func testTrainFromInitialWeights() throws {
        try requireMNIST()
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try runLua("""
            ddpm.seed(3)
            local cfg = dofile('\(scriptsDir)/configs/tiny.lua')
            ddpm.unet(cfg.model):save('\(dir)/start.safetensors', {steps = 7})
            """)
        let r = try runDDPM(["train", "--config", "configs/tiny.lua", "--steps", "1", "--out", dir + "/run",
                             "--init-weights", dir + "/start.safetensors"], environment: ["DDPM_DATA": mnistDir])
        XCTAssertEqual(r.status, 0, r.stderr)
        let start = try SafeTensors.read(dir + "/start.safetensors").dictionary
        let trained = try SafeTensors.read(dir + "/run/model.safetensors")
        XCTAssertEqual(trained.metadata["init"], dir + "/start.safetensors (7 steps)")
        // one Adam step moves each weight by at most ~lr (2e-3); the EMA keeps 90 % of it
        var worst: Float = 0
        for (name, t) in start {
            let u = try XCTUnwrap(trained.dictionary[name])
            for i in 0..<t.count { worst = max(worst, abs(t.data[i] - u.data[i])) }
        }
        XCTAssertLessThan(worst, 3e-3)
    }

    /// Without --weights the recipes take weights/mnist-small.safetensors by name, although
    /// mnist-fast comes first in the folder's listing.
    func testDefaultWeightsAreTheSmallPreset() throws {
        let host = try runLua("default = require('lib.common').default_weights()")
        let path = try XCTUnwrap(host.global("default") as? String)
        XCTAssertTrue(path.hasSuffix("weights/mnist-small.safetensors"), path)
        XCTAssertTrue(FileManager.default.fileExists(atPath: repoRoot + "/weights/mnist-fast.safetensors"))
    }

    /// The recipe's learning rate: constant, then from `lr_decay_start` a cosine down to `lr_min`
    /// at the last step; without `lr_decay_start` always the constant rate.
    func testLearningRateIsConstantThenCosineAnnealed() throws {
        let host = try runLua("""
            local common = require('lib.common')
            local tc = {lr_decay_start = 60, lr_min = 1e-5}
            for i, done in ipairs({0, 59, 60, 80, 99, 100}) do \
            _G['rate' .. i] = common.learning_rate(tc, 1e-3, 100, done) end
            flat = common.learning_rate({}, 1e-3, 100, 99)
            ok, bad = pcall(common.learning_rate, {lr_decay_start = 0, lr_min = 2e-3}, 1e-3, 100, 5)
            """)
        let rates = (1...6).map { host.global("rate\($0)") as? Double ?? .nan }
        let expected = [1e-3, 1e-3, 1e-3, 1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + cos(Double.pi * 0.5)),
                        1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + cos(Double.pi * 39 / 40)), 1e-5]
        XCTAssertEqual(rates.count, expected.count)
        for (r, e) in zip(rates, expected) { XCTAssertEqual(r, e, accuracy: 1e-12) }
        XCTAssertEqual(host.global("flat") as? Double, 1e-3)
        XCTAssertEqual(host.global("bad") as? String, "train.lr_min must be in (0, lr = 0.001], got 0.002")
    }

    /// train.eval_every: the EMA weights are probed with the classifier every N steps and at the
    /// end; eval.csv keeps one row per probe, and a resumed run continues it. A model whose images
    /// the classifier cannot read is a clear error before training starts.
    func testTrainingProbesQualityEveryNSteps() throws {
        try requireMNIST()
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = { (size: Int) in """
            return {model = {base = 8, levels = 2, time_dim = 16, attention = {false, false}, attention_mid = false, \
            image_size = \(size)},
                    schedule = {kind = "cosine", steps = 100},
                    train = {batch = 4, lr = 1e-3, steps = 3, eval_every = 2, eval_per_class = 2}}
            """ }
        try config(32).write(toFile: dir + "/c32.lua", atomically: true, encoding: .utf8)
        try config(16).write(toFile: dir + "/c16.lua", atomically: true, encoding: .utf8)
        let env = ["DDPM_DATA": mnistDir]
        var r = try runDDPM(["run", scriptsDir + "/train.lua", "--config", dir + "/c32.lua", "--out", dir + "/run",
                             "--quiet"], environment: env)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("step 2: accuracy "), r.stdout)
        func rows() throws -> [[String]] {
            try String(contentsOfFile: dir + "/run/eval.csv", encoding: .utf8).split(separator: "\n")
                .map { $0.split(separator: ",").map(String.init) }
        }
        var csv = try rows()
        XCTAssertEqual(csv.first, ["step", "accuracy", "frechet"])
        XCTAssertEqual(csv.dropFirst().map { $0[0] }, ["2", "3"])  // every 2 steps, and the last
        for row in csv.dropFirst() {
            let accuracy = try XCTUnwrap(Double(row[1])), frechet = try XCTUnwrap(Double(row[2]))
            XCTAssertTrue((0...1).contains(accuracy), row.joined(separator: ","))
            XCTAssertGreaterThan(frechet, 0)
        }
        r = try runDDPM(["run", scriptsDir + "/train.lua", "--config", dir + "/c32.lua", "--out", dir + "/run",
                         "--quiet", "--resume", "--steps", "4"], environment: env)
        XCTAssertEqual(r.status, 0, r.stderr)
        csv = try rows()
        XCTAssertEqual(csv.dropFirst().map { $0[0] }, ["2", "3", "4"])

        r = try runDDPM(["run", scriptsDir + "/train.lua", "--config", dir + "/c16.lua", "--out", dir + "/run16",
                         "--quiet"], environment: env)
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("train.eval_every: the classifier"), r.stderr)
        XCTAssertTrue(r.stderr.contains("cannot read 16x16 images"), r.stderr)
    }

    /// A misspelt config field is an error naming it and the known ones, for both model kinds.
    func testConfigTablesRejectUnknownFields() throws {
        let host = try runLua("""
            local _, e1 = pcall(ddpm.unet, {bas = 3})
            local _, e2 = pcall(ddpm.classifier, {widht = 3})
            unet_error, classifier_error = e1, e2
            """)
        XCTAssertEqual(host.global("unet_error") as? String,
                       "ddpm.unet: unknown config field(s) bas (known: attention, attention_mid, base, channels, "
                       + "classes, groups, head_dim, heads, image_size, levels, time_dim)")
        XCTAssertEqual(host.global("classifier_error") as? String,
                       "ddpm.classifier: unknown classifier field(s) widht (known: channels, classes, features, "
                       + "image_size, width)")
    }

    /// A training config's `train` and `sample` tables (and its top level) reject unknown fields;
    /// every bundled config passes.
    func testTrainingConfigsRejectUnknownFields() throws {
        let dir = try temporaryDirectory()
        for (name, body) in [("a", "train = {steps = 1, log_every = 5}"), ("b", "sample = {sampler = 'ddim'}"),
                             ("c", "trian = {}")] {
            try "return {model = {base = 8}, \(body)}"
                .write(toFile: "\(dir)/\(name).lua", atomically: true, encoding: .utf8)
        }
        let host = try runLua("""
            local common = require("lib.common")
            local errors = {}
            for _, name in ipairs({"a", "b", "c"}) do
              local ok, e = pcall(common.load_config, '\(dir)/' .. name .. '.lua')
              errors[#errors + 1] = ok and "accepted" or e
            end
            for _, c in ipairs({"tiny", "small", "small-v", "small-v-l2", "fast", "reference", "fashion"}) do
              common.load_config('configs/' .. c .. '.lua')
            end
            a, b, c = table.unpack(errors)
            """)
        XCTAssertEqual(host.global("a") as? String, "\(dir)/a.lua: unknown train field(s) log_every (known: batch, "
                       + "checkpoint_every, clip_norm, data, ema, ema_warmup, eval_every, eval_per_class, gamma, "
                       + "huber_delta, label_dropout, loss, loss_weight, lr, lr_decay_start, lr_min, objective, "
                       + "offset_noise, precision, resize, sample_every, seed, steps, weight_decay)")
        XCTAssertEqual(host.global("b") as? String,
                       "\(dir)/b.lua: unknown sample field(s) sampler (known: guidance, steps)")
        XCTAssertEqual(host.global("c") as? String,
                       "\(dir)/c.lua: unknown config field(s) trian (known: model, sample, schedule, train)")
    }

    /// The seed's recipe runs as written: 2 steps at batch 2 of the 51M-parameter reference model.
    func testReferenceRecipeRunsTwoSteps() throws {
        try requireMNIST()
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try runDDPM(["run", scriptsDir + "/train.lua", "--config", "configs/reference.lua", "--steps", "2",
                             "--batch", "2", "--out", dir, "--quiet"], environment: ["DDPM_DATA": mnistDir])
        XCTAssertEqual(r.status, 0, r.stderr)
        let meta = try SafeTensors.inspect(dir + "/model.safetensors").metadata
        let config = try UNetConfig(json: try XCTUnwrap(meta["config"]))
        XCTAssertEqual(config, UNetConfig())  // the reference model: base 64, 4 levels, "even" attention
        XCTAssertEqual(meta["steps"], "2")
        XCTAssertEqual(meta["schedule"], "linear")
        let csv = try String(contentsOfFile: dir + "/loss.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(csv.count, 3)  // header + 2 steps
    }
}
