import ArgumentParser

/// `ddpm distill`: progressive distillation into a few-step student (runs scripts/distill.lua).
struct Distill: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Distil a model into a few-step student (progressive distillation; runs scripts/distill.lua).",
        discussion: """
            Each round halves the teacher's DDIM steps (the first teacher's classifier-free guidance is folded into \
            the student). Writes round-N.safetensors per round, model.safetensors (the latest student), \
            checkpoint.safetensors, loss.csv and eval.csv into --out; Ctrl-C saves a checkpoint and --resume \
            continues. The student samples with `ddpm sample --weights OUT/model.safetensors` and no other flags.
            """)

    @Option(parsing: .unconditional,
            help: "Distillation config (a Lua table; default: configs/distill.lua; on --resume the run's own).")
    var config: String?
    @Option(parsing: .unconditional, help: "Teacher weights (default: the config's distill.teacher).")
    var teacher: String?
    @Option(parsing: .unconditional, help: "Output folder.") var out = "runs/distill"
    @Flag(help: "Continue from --out's checkpoint, under the config it saved.") var resume = false
    @Option(parsing: .unconditional, help: "MNIST folder (default: $DDPM_DATA, then data/mnist).") var data: String?
    @Option(parsing: .unconditional,
            help: ArgumentHelp("Products in fp32, bf16 (mixed precision; needs AVX512-BF16) or auto (the faster "
                + "here; default: on --resume the run's own, else auto)."))
    var precision: String?

    func run() throws {
        var a = ["--out", out]
        if let config { a += ["--config", config] }
        if let teacher { a += ["--teacher", teacher] }
        if resume { a.append("--resume") }
        if let data { a += ["--data", data] }
        if let precision { a += ["--precision", precision] }
        try runRecipe(try bundled("distill.lua"), a, traceback: false)
    }
}
