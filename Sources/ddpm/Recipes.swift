import ArgumentParser
import Foundation

/// Subcommands that run a bundled recipe from scripts/ (copy the recipe to change it).
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model (runs scripts/train.lua).",
        discussion: "Writes checkpoint.safetensors, model.safetensors (EMA), loss.csv, loss.png and samples/ into --out. Ctrl-C saves a checkpoint; --resume continues from it.")

    @Option(help: "Config file (a Lua table; see scripts/configs/).") var config = "configs/tiny.lua"
    @Option(help: "Total training steps (default: the config's).") var steps: Int?
    @Option(help: "Output folder.") var out = "runs/default"
    @Flag(help: "Continue from --out's checkpoint.") var resume = false
    @Option(help: "MNIST folder (default: $DDPM_DATA, then data/mnist).") var data: String?
    @Option(help: "Batch size (default: the config's).") var batch: Int?

    func run() throws {
        var a = ["--config", config, "--out", out]
        if let steps { a += ["--steps", "\(steps)"] }
        if let data { a += ["--data", data] }
        if let batch { a += ["--batch", "\(batch)"] }
        if resume { a.append("--resume") }
        try runRecipe(try bundled("train.lua"), a)
    }
}

/// Options shared by `sample` and `gif`, passed to their recipes as --name value.
struct SamplingOptions: ParsableArguments {
    @Option(help: "Weights file (default: the shipped weights/mnist-*.safetensors).") var weights: String?
    @Option(help: "Digits, one row (sample) or one GIF (gif) each.") var digits = "0123456789"
    @Option(help: "ddpm or ddim.") var sampler = "ddim"
    @Option(help: "Sampling steps (default: 50 for DDIM, all for DDPM).") var steps: Int?
    @Option(help: "Classifier-free guidance w (1 = none; default: the weights' recommended).") var guidance: Double?
    @Option(help: "Random seed (same seed, same images).") var seed = 0

    var recipeArguments: [String] {
        var a = ["--digits", digits, "--sampler", sampler, "--seed", "\(seed)"]
        if let weights { a += ["--weights", weights] }
        if let steps { a += ["--steps", "\(steps)"] }
        if let guidance { a += ["--guidance", "\(guidance)"] }
        return a
    }
}

struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sample a digit sheet, row r = the r-th digit (runs scripts/sample.lua).")

    @OptionGroup var sampling: SamplingOptions
    @Option(help: "Samples per digit (columns).") var perDigit = 10
    @Option(help: "Output PNG.") var out = "out/sheet.png"

    func run() throws {
        try runRecipe(try bundled("sample.lua"), sampling.recipeArguments + ["--per-digit", "\(perDigit)", "--out", out])
    }
}

struct Gif: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Denoising GIFs, one per digit and a combined strip (runs scripts/gif.lua).")

    @OptionGroup var sampling: SamplingOptions
    @Option(help: "Frames spaced over the reverse process.") var frames = 40
    @Option(help: "Output folder.") var out = "out/gifs"

    func run() throws {
        try runRecipe(try bundled("gif.lua"), sampling.recipeArguments + ["--frames", "\(frames)", "--out", out])
    }
}
