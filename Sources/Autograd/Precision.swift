import CBF16
import Foundation
import Synchronization

/// The arithmetic of the matrix products inside the convolutions (Winograd's included), the
/// transposed convolutions, the linear layers, matmul and attention. `.fp32` is OpenBLAS's sgemm
/// throughout. `.bf16` is mixed precision: each product's operands are rounded to bfloat16 (8-bit
/// mantissa) and the products summed in fp32 (CBF16's AVX512-BF16 kernel, twice the fp32 FMA
/// rate); parameters, gradients, GroupNorm, softmax, losses, Adam and EMA stay fp32. bf16 runs only
/// on CPUs with AVX512-BF16: asking for it elsewhere is an error, never a silent fallback, so a
/// setting means the same arithmetic on every machine that accepts it.
public enum Precision: String, CaseIterable, Sendable {
    case fp32, bf16

    /// Whether this CPU runs the bf16 kernels (AVX512-BF16 with AVX512F/BW/VL). The environment
    /// variable DDPM_NO_BF16 (any value) makes it false, to try the fp32-only behaviour on a
    /// machine that has them.
    public static let hardwareBF16: Bool =
        cbf16_available() == 1 && ProcessInfo.processInfo.environment["DDPM_NO_BF16"] == nil

    /// The faster of the two on this CPU, which `auto` names: bf16 where its dot product does at
    /// least 1.5x the fp32 FMA's multiply-adds per second (measured once, ~2 ms; ~2x expected on AMD Zen 4),
    /// else fp32 (an Intel Xeon without AMX issues it at a quarter of the FMA's rate: 0.5x).
    public static let fastest: Precision = hardwareBF16 && dotSpeedup >= 1.5 ? .bf16 : .fp32

    /// The bf16 dot product's multiply-adds per second over the fp32 FMA's on one core (0 without
    /// AVX512-BF16; cbf16_dot_speedup).
    public static let dotSpeedup: Double = cbf16_dot_speedup()

    private static let state = Atomic<Int>(0)

    /// The precision new ops compute in (process-wide; fp32 at start). An op reads it once, when
    /// its forward runs; its backward computes in the same precision.
    public static var current: Precision { state.load(ordering: .relaxed) == 1 ? .bf16 : .fp32 }

    /// Sets `current`; bf16 on a CPU without AVX512-BF16 throws (and leaves it unchanged).
    public static func set(_ precision: Precision) throws {
        if precision == .bf16 && !hardwareBF16 { throw TensorError(unavailableMessage) }
        state.store(precision == .bf16 ? 1 : 0, ordering: .relaxed)
    }

    /// Parses "fp32", "bf16" or "auto" (`fastest`) and sets it (see set).
    public static func set(named name: String) throws {
        guard let p = name == "auto" ? fastest : Precision(rawValue: name) else {
            throw TensorError("precision '\(name)' is not one of fp32, bf16, auto")
        }
        try set(p)
    }

    /// Runs body with `current` = precision, then restores the previous setting.
    public static func with<T>(_ precision: Precision, _ body: () throws -> T) throws -> T {
        let before = current
        try set(precision)
        defer { try? set(before) }
        return try body()
    }

    static let unavailableMessage = "precision bf16 needs a CPU with AVX512-BF16 (avx512_bf16 in /proc/cpuinfo)"
        + ", which this one does not report: use precision fp32"
}
