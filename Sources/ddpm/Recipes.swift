import ArgumentParser
import Foundation

/// Subcommands that run a bundled recipe from scripts/ (copy the recipe to change it).
/// Every option takes the next argument as its value (`parsing: .unconditional`), so negative
/// numbers such as `--seed -1` are values; the recipe checks their range. Their errors print
/// without the Lua traceback (the message names the file and line): the user gave an input, not
/// a script.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model (runs scripts/train.lua).",
        discussion: """
            Writes checkpoint.safetensors, model.safetensors (EMA), loss.csv, loss.png and samples/ into --out. \
            Ctrl-C saves a checkpoint; --resume continues from it under the config the checkpoint saved. \
            One run per --out at a time (train.lock). Under mpirun -np N each batch is split across the N ranks \
            (docs/scaling.md).
            """)

    @Option(parsing: .unconditional,
            help: ArgumentHelp("Config file (a Lua table; see scripts/configs/; default: configs/tiny.lua, "
                    + "on --resume the run's own)."))
    var config: String?
    @Option(parsing: .unconditional, help: "Total training steps (default: the config's).") var steps: Int?
    @Option(parsing: .unconditional, help: "Output folder.") var out = "runs/default"
    @Flag(help: "Continue from --out's checkpoint, under the config it saved.") var resume = false
    @Flag(help: "With --resume: continue under --config instead of the run's saved config.") var overrideConfig = false
    @Option(parsing: .unconditional, help: "Start from these weights (fine-tuning; fresh optimizer, EMA starts there).")
    var initWeights: String?
    @Option(parsing: .unconditional, help: """
        The data's folder in place of the config's train.data path (MNIST, Fashion-MNIST or a folder of PNGs; \
        default: the config's, for MNIST $DDPM_DATA, then data/mnist).
        """) var data: String?
    @Option(parsing: .unconditional, help: "Batch size (default: the config's).") var batch: Int?
    @Option(parsing: .unconditional,
            help: ArgumentHelp("Products in fp32, bf16 (mixed precision; needs AVX512-BF16) or auto (the faster here; "
                    + "default: on --resume the run's own, else the config's train.precision, else auto)."))
    var precision: String?
    @Option(parsing: .unconditional,
            help: ArgumentHelp("Noise schedule: NAME or FILE.lua, a plugin or linear, cosine, sigmoid "
                    + "(default: the config's). `ddpm schedules` lists them."))
    var schedule: String?
    @Option(parsing: .unconditional,
            help: ArgumentHelp("Sampler of the sample sheets and the quality probe: NAME or FILE.lua (default: ddim). "
                    + "`ddpm samplers` lists them."))
    var sampler: String?
    @Option(parsing: .unconditionalSingleValue, help: "A sampler option key=value (repeatable).")
    var samplerOpt: [String] = []

    func validate() throws { try validateSamplerOptions(samplerOpt) }

    func run() throws {
        var a = ["--out", out]
        if let config { a += ["--config", config] }
        if overrideConfig { a.append("--override-config") }
        if let schedule { a += ["--schedule", schedule] }
        if let sampler { a += ["--sampler", sampler] }
        for kv in samplerOpt { a += ["--sampler-opt", kv] }
        if let steps { a += ["--steps", "\(steps)"] }
        if let data { a += ["--data", data] }
        if let batch { a += ["--batch", "\(batch)"] }
        if resume { a.append("--resume") }
        if let initWeights { a += ["--init", initWeights] }
        if let precision { a += ["--precision", precision] }
        try runRecipe(try bundled("train.lua"), a, traceback: false)
    }
}

/// `--sampler-opt` values must be key=value.
func validateSamplerOptions(_ values: [String]) throws {
    for kv in values where !(kv.contains("=") && !kv.hasPrefix("=")) {
        throw ValidationError("--sampler-opt needs key=value (e.g. spacing=trailing), got '\(kv)'")
    }
}

/// Options shared by `sample`, `gif` and `eval`, passed to their recipes as --name value (the
/// recipes declare them once, in scripts/lib/common.lua's sampling_options).
struct SamplingOptions: ParsableArguments {
    @Option(parsing: .unconditional,
            help: ArgumentHelp("Weights file (default: weights/mnist-small.safetensors; "
                    + "weights/mnist-fast.safetensors samples ~2.5x faster)."))
    var weights: String?
    @Option(parsing: .unconditional,
            help: ArgumentHelp("Sampler: NAME or FILE.lua, a plugin or the native ddpm, ddim "
                    + "(default: the weights' recommended). `ddpm samplers` lists them."))
    var sampler: String?
    @Option(parsing: .unconditionalSingleValue, help: "A sampler option key=value, e.g. spacing=trailing (repeatable).")
    var samplerOpt: [String] = []
    @Option(parsing: .unconditional,
            help: "Sampling steps (default: the weights' recommended for their sampler, else the sampler's).")
    var steps: Int?
    @Option(parsing: .unconditional, help: "Classifier-free guidance w (1 = none; default: the weights' recommended).")
    var guidance: Double?
    @Option(parsing: .unconditional,
            help: ArgumentHelp("Timesteps LOW,HIGH (0-based, inclusive) where guidance applies, or 'all' "
                    + "(default: the weights' recommended)."))
    var guidanceInterval: String?
    @Option(parsing: .unconditional,
            help: ArgumentHelp("Sampler noise (ctx.eta): DDIM 0 deterministic, 1 as stochastic as DDPM "
                    + "(default: the sampler's default_eta, else 0; repaint's is 1)."))
    var eta: Double?
    @Option(parsing: .unconditional, help: "Random seed; image i uses seed + i (same seed, same images).") var seed = 0
    @Option(parsing: .unconditional,
            help: ArgumentHelp("Products in fp32, bf16 (mixed precision; needs a CPU with AVX512-BF16) or auto "
                + "(the faster here; the default)."))
    var precision: String?

    func validate() throws { try validateSamplerOptions(samplerOpt) }

    var recipeArguments: [String] {
        var a = ["--seed", "\(seed)"]
        if let precision { a += ["--precision", precision] }
        if let sampler { a += ["--sampler", sampler] }
        for kv in samplerOpt { a += ["--sampler-opt", kv] }
        if let weights { a += ["--weights", weights] }
        if let steps { a += ["--steps", "\(steps)"] }
        if let guidance { a += ["--guidance", "\(guidance)"] }
        if let guidanceInterval { a += ["--guidance-interval", guidanceInterval] }
        if let eta { a += ["--eta", "\(eta)"] }
        return a
    }
}

struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sample a digit sheet, row r = the r-th digit, or a folder of digits (runs scripts/sample.lua).",
        discussion: "--out FILE.png writes a sheet; --out DIR/ writes <digit>_<index>.png files; --format idx "
            + "--out DIR writes train-images-idx3-ubyte and train-labels-idx1-ubyte (MNIST's names, so --data DIR "
            + "reads them). Image i uses seed + i: --digits D --per-digit 1 --seed S regenerates one image alone. "
            + "Under mpirun -np N the images are split across the N ranks; rank 0 writes.")

    @OptionGroup var sampling: SamplingOptions
    @Option(parsing: .unconditional, help: "Digits, one row each.") var digits = "0123456789"
    @Option(parsing: .unconditional, help: "Samples per digit (columns of a sheet).") var perDigit = 10
    @Option(parsing: .unconditional, help: "Output: a PNG sheet, or a folder ending in /.") var out = "out/sheet.png"
    @Option(parsing: .unconditional, help: "png or idx (idx writes an IDX image/label pair into the --out folder).")
    var format = "png"
    @Option(parsing: .unconditional, help: "Images per sampling batch.") var batch = 100
    @Option(name: .customLong("init"), parsing: .unconditional,
            help: ArgumentHelp("img2img: a grayscale PNG (28x28 or the model's size) every image starts from, "
                    + "noised to --strength."))
    var initImage: String?
    @Option(parsing: .unconditional,
            help: "img2img: the share of the reverse process run from --init, in [0, 1] (default 0.6).")
    var strength: Double?

    func run() throws {
        var a = sampling.recipeArguments + [
            "--digits", digits, "--per-digit", "\(perDigit)", "--out", out, "--format", format, "--batch", "\(batch)",
        ]
        if let initImage { a += ["--init", initImage] }
        if let strength { a += ["--strength", "\(strength)"] }
        try runRecipe(try bundled("sample.lua"), a, traceback: false)
    }
}

struct Inpaint: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fill the black region of a mask with a digit, keeping the input's other pixels "
            + "(runs scripts/inpaint.lua).",
        discussion: "--image is a grayscale PNG of 28x28 or the model's size, --mask a grayscale PNG of the same size "
            + "(white = keep, black = generate). The output has the input's size (--per-digit fills side by side) and "
            + "keeps the white region's pixels exactly. The sampler (default: the repaint plugin) gets the image and "
            + "the mask as ctx.known; --sampler-opt jump_n_sample=R resamples. --steps defaults to the sampler's "
            + "default_steps (repaint: 25).")

    @OptionGroup var sampling: SamplingOptions
    @Option(parsing: .unconditional, help: "The input image (grayscale PNG).") var image: String
    @Option(parsing: .unconditional, help: "The mask (grayscale PNG of the input's size): white keeps, black fills.")
    var mask: String
    @Option(parsing: .unconditional, help: "The digit to fill in.") var digit: Int
    @Option(parsing: .unconditional, help: "Fills side by side (fill i uses seed + i).") var perDigit = 1
    @Option(parsing: .unconditional, help: "Output PNG.") var out = "out/inpaint.png"

    func run() throws {
        try runRecipe(try bundled("inpaint.lua"), sampling.recipeArguments + [
            "--image", image, "--mask", mask, "--digit", "\(digit)", "--per-digit", "\(perDigit)", "--out", out,
        ], traceback: false)
    }
}

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a model with the shipped classifier: accuracy, Fréchet distance, diversity "
            + "(runs scripts/eval.lua).",
        discussion: "Generates --per-class digits of each class and compares the classifier's verdicts and features "
            + "with real MNIST. --classifier-only reports the classifier's own test accuracy. Under mpirun -np N the "
            + "images are split across the N ranks. --cas N reports the classification accuracy score instead: a new "
            + "classifier trained only on N generated digits per class, tested on the real test set, next to the "
            + "same classifier trained on N real digits per class.")

    @OptionGroup var sampling: SamplingOptions
    @Option(parsing: .unconditional, help: "Generated digits per class.") var perClass = 100
    @Option(parsing: .unconditional, help: "Classifier weights (default: weights/mnist-classifier.safetensors).")
    var classifier: String?
    @Option(parsing: .unconditional, help: "Images per sampling batch.") var batch = 100
    @Option(parsing: .unconditional, help: "MNIST folder (default: $DDPM_DATA, then data/mnist).") var data: String?
    @Flag(help: "Print JSON instead of the table.") var json = false
    @Flag(help: "Only the classifier's accuracy on the MNIST test set.") var classifierOnly = false
    @Option(parsing: .unconditional,
            help: "Classification accuracy score with N generated digits per class (see above).") var cas: Int?
    @Option(parsing: .unconditional, help: "With --cas: training steps of each classifier (default 2000, batch 128).")
    var casSteps: Int?

    func run() throws {
        var a = sampling.recipeArguments + ["--per-class", "\(perClass)", "--batch", "\(batch)"]
        if let classifier { a += ["--classifier", classifier] }
        if let data { a += ["--data", data] }
        if json { a.append("--json") }
        if classifierOnly { a.append("--classifier-only") }
        if let cas { a += ["--cas", "\(cas)"] }
        if let casSteps { a += ["--cas-steps", "\(casSteps)"] }
        try runRecipe(try bundled("eval.lua"), a, traceback: false)
    }
}

struct Gif: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Denoising GIFs, one per digit and a combined strip (runs scripts/gif.lua).")

    @OptionGroup var sampling: SamplingOptions
    @Option(parsing: .unconditional, help: "Digits, one GIF each (and all of them in the strip).")
    var digits = "0123456789"
    @Option(parsing: .unconditional, help: "Frames spaced over the reverse process (with --morph: per morph).")
    var frames = 40
    @Option(parsing: .unconditional, help: "Output folder.") var out = "out/gifs"
    @Option(parsing: .unconditionalSingleValue,
            help: "A,B: morph-A-B.gif walks the label from digit A to B with fixed noise (repeatable).")
    var morph: [String] = []
    @Option(parsing: .unconditional, help: "Inpainting (with --mask) or img2img (with --strength): the input PNG.")
    var image: String?
    @Option(parsing: .unconditional, help: "With --image: the mask (white keeps, black is generated).")
    var mask: String?
    @Option(parsing: .unconditional, help: "With --image: img2img strength in [0, 1].") var strength: Double?

    func run() throws {
        var a = sampling.recipeArguments + ["--digits", digits, "--frames", "\(frames)", "--out", out]
        for m in morph { a += ["--morph", m] }
        if let image { a += ["--image", image] }
        if let mask { a += ["--mask", mask] }
        if let strength { a += ["--strength", "\(strength)"] }
        try runRecipe(try bundled("gif.lua"), a, traceback: false)
    }
}

/// `ddpm samplers` and `ddpm schedules`: what `--sampler` and `--schedule` can name (runs
/// scripts/plugins.lua).
struct Samplers: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the samplers --sampler can name: plugins ($DDPM_PLUGINS/samplers/, scripts/samplers/) "
            + "and native ones.")

    func run() throws { try runRecipe(try bundled("plugins.lua"), ["sampler"], traceback: false) }
}

struct Schedules: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the noise schedules --schedule can name: plugins ($DDPM_PLUGINS/schedules/, "
            + "scripts/schedules/) and native ones.")

    func run() throws { try runRecipe(try bundled("plugins.lua"), ["schedule"], traceback: false) }
}
