import ArgumentParser
import Foundation

/// Subcommands that run a bundled recipe from scripts/ (copy the recipe to change it).
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model (runs scripts/train.lua).",
        discussion: "Writes checkpoint.safetensors, model.safetensors (EMA), loss.csv, loss.png and samples/ into --out. Ctrl-C saves a checkpoint; --resume continues from it. Under mpirun -np N each batch is split across the N ranks (docs/scaling.md).")

    @Option(help: "Config file (a Lua table; see scripts/configs/).") var config = "configs/tiny.lua"
    @Option(help: "Total training steps (default: the config's).") var steps: Int?
    @Option(help: "Output folder.") var out = "runs/default"
    @Flag(help: "Continue from --out's checkpoint.") var resume = false
    @Option(help: "Start from these weights (fine-tuning; fresh optimizer, EMA starts there).") var initWeights: String?
    @Option(help: "MNIST folder (default: $DDPM_DATA, then data/mnist).") var data: String?
    @Option(help: "Batch size (default: the config's).") var batch: Int?

    func run() throws {
        var a = ["--config", config, "--out", out]
        if let steps { a += ["--steps", "\(steps)"] }
        if let data { a += ["--data", data] }
        if let batch { a += ["--batch", "\(batch)"] }
        if resume { a.append("--resume") }
        if let initWeights { a += ["--init", initWeights] }
        try runRecipe(try bundled("train.lua"), a)
    }
}

/// Options shared by `sample`, `gif` and `eval`, passed to their recipes as --name value.
struct SamplingOptions: ParsableArguments {
    @Option(help: "Weights file (default: weights/mnist-small.safetensors; weights/mnist-fast.safetensors samples ~2.5x faster).") var weights: String?
    @Option(help: "ddpm or ddim.") var sampler = "ddim"
    @Option(help: "Sampling steps (default: 50 for DDIM, all for DDPM).") var steps: Int?
    @Option(help: "Classifier-free guidance w (1 = none; default: the weights' recommended).") var guidance: Double?
    @Option(help: "Timesteps LOW,HIGH (0-based, inclusive) where guidance applies, or 'all' (default: the weights' recommended).")
    var guidanceInterval: String?
    @Option(help: "DDIM eta: 0 deterministic (default), 1 as stochastic as DDPM.") var eta: Double?
    @Option(help: "Random seed; image i uses seed + i (same seed, same images).") var seed = 0

    var recipeArguments: [String] {
        var a = ["--sampler", sampler, "--seed", "\(seed)"]
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
        discussion: "--out FILE.png writes a sheet; --out DIR/ writes <digit>_<index>.png files; --format idx --out DIR writes train-images-idx3-ubyte and train-labels-idx1-ubyte (MNIST's names, so --data DIR reads them). Image i uses seed + i: --digits D --per-digit 1 --seed S regenerates one image alone. Under mpirun -np N the images are split across the N ranks; rank 0 writes.")

    @OptionGroup var sampling: SamplingOptions
    @Option(help: "Digits, one row each.") var digits = "0123456789"
    @Option(help: "Samples per digit (columns of a sheet).") var perDigit = 10
    @Option(help: "Output: a PNG sheet, or a folder ending in /.") var out = "out/sheet.png"
    @Option(help: "png or idx (idx writes an IDX image/label pair into the --out folder).") var format = "png"
    @Option(help: "Images per sampling batch.") var batch = 100

    func run() throws {
        try runRecipe(try bundled("sample.lua"), sampling.recipeArguments + [
            "--digits", digits, "--per-digit", "\(perDigit)", "--out", out, "--format", format, "--batch", "\(batch)"])
    }
}

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a model with the shipped classifier: accuracy, Fréchet distance, diversity (runs scripts/eval.lua).",
        discussion: "Generates --per-class digits of each class and compares the classifier's verdicts and features with real MNIST. --classifier-only reports the classifier's own test accuracy. Under mpirun -np N the images are split across the N ranks.")

    @OptionGroup var sampling: SamplingOptions
    @Option(help: "Generated digits per class.") var perClass = 100
    @Option(help: "Classifier weights (default: weights/mnist-classifier.safetensors).") var classifier: String?
    @Option(help: "Images per sampling batch.") var batch = 100
    @Option(help: "MNIST folder (default: $DDPM_DATA, then data/mnist).") var data: String?
    @Flag(help: "Print JSON instead of the table.") var json = false
    @Flag(help: "Only the classifier's accuracy on the MNIST test set.") var classifierOnly = false

    func run() throws {
        var a = sampling.recipeArguments + ["--per-class", "\(perClass)", "--batch", "\(batch)"]
        if let classifier { a += ["--classifier", classifier] }
        if let data { a += ["--data", data] }
        if json { a.append("--json") }
        if classifierOnly { a.append("--classifier-only") }
        try runRecipe(try bundled("eval.lua"), a)
    }
}

struct Gif: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Denoising GIFs, one per digit and a combined strip (runs scripts/gif.lua).")

    @OptionGroup var sampling: SamplingOptions
    @Option(help: "Digits, one GIF each (and all of them in the strip).") var digits = "0123456789"
    @Option(help: "Frames spaced over the reverse process.") var frames = 40
    @Option(help: "Output folder.") var out = "out/gifs"

    func run() throws {
        try runRecipe(try bundled("gif.lua"), sampling.recipeArguments + ["--digits", digits, "--frames", "\(frames)", "--out", out])
    }
}
