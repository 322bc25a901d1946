import ArgumentParser
import Autograd
import Diffusion
import Foundation
import Layers

/// JSON lines in the schema of ../shared/reference/torch_bench.py (kinds env, params, flops,
/// train_step, fwd_nograd; same fields), plus sgemm_peak and GFLOP/s, so the two can be run
/// back to back and compared line by line.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmark training steps and no-grad forwards (JSON lines, torch_bench.py schema).")

    @Option(help: "base,levels,time_dim (repeatable); default: the 5 standard configs.")
    var config: [String] = []
    @Option(help: "Comma list of params,flops,train,fwd,ops (ops: per-kernel timings, im2col vs Winograd per level).")
    var what = "params,flops,train,fwd"
    @Option(help: "Training batch.") var batch = 64
    @Option(help: "Timed steps per measurement (default as torch_bench.py).") var steps: Int?
    @Option(help: "Warm-up steps (default as torch_bench.py).") var warmup: Int?
    @Option(help: "Comma list of no-grad forward batches.") var fwdBatches = "10,100"
    @Option(help: "Image size.") var size = 32
    @Option(help: "\"even\" (the reference) or one 0/1 per level, e.g. 0,0,1.") var attention = "even"
    @Flag(help: "No attention in the bottleneck.") var noMidAttention = false
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Flag(help: "Skip the sgemm peak measurement.") var noPeak = false
    @Option(help: "Comma list of fp32, bf16 (the products' precision); with both, train and fwd alternate them.")
    var precision = "fp32"

    static let defaultConfigs = ["64,4,128", "32,3,128", "32,2,64", "16,3,64", "16,2,32"]

    func run() throws {
        try runReportingErrors {
            let kinds = Set(what.split(separator: ",").map(String.init))
            let fwdBatchList = try fwdBatches.split(separator: ",").map { s -> Int in
                guard let b = Int(s), b > 0 else { throw TensorError("bench: bad --fwd-batches entry \(s)") }
                return b
            }
            let precisions = try precision.split(separator: ",").map { name -> Precision in
                guard let p = Precision(rawValue: String(name)) else {
                    throw TensorError("bench: --precision \(name) is not fp32 or bf16")
                }
                if p == .bf16 { try Precision.set(.bf16); try Precision.set(.fp32) }  // refused without AVX512-BF16
                return p
            }
            emit(["kind": "env", "date": ISO8601DateFormatter().string(from: Date()), "engine": "ddpm-swift",
                  "threads": BLAS.threads, "cpu": cpuModel(), "size": size, "blas_core": BLAS.coreName,
                  "bf16_hardware": Precision.hardwareBF16,
                  "bf16_dot_speedup": (Precision.dotSpeedup * 100).rounded() / 100,
                  "fastest_precision": Precision.fastest.rawValue])
            var peak = 0.0
            if !noPeak {
                peak = sgemmPeak()
                emit(["kind": "sgemm_peak", "m": 2048, "n": 2048, "k": 2048, "gflops": round3(peak)])
            }
            if kinds.contains("ops") {
                for p in precisions { try Precision.with(p) { try benchOps() } }
            }
            for label in config.isEmpty ? Self.defaultConfigs : config where !kinds.isSubset(of: ["ops"]) {
                try benchConfig(label, kinds: kinds, fwdBatches: fwdBatchList, peak: peak, precisions: precisions)
            }
        }
    }

    func benchConfig(_ label: String, kinds: Set<String>, fwdBatches: [Int], peak: Double,
                     precisions: [Precision]) throws {
        let parts = label.split(separator: ",").compactMap { Int($0) }
        guard parts.count == 3 else { throw TensorError("bench: --config \(label) is not base,levels,time_dim") }
        let flags: [Bool]? = attention == "even" ? nil : attention.split(separator: ",").map { $0 == "1" }
        let config = UNetConfig(base: parts[0], levels: parts[1], timeDim: parts[2], attention: flags,
                                attentionMid: !noMidAttention, imageSize: size)
        var rng = Generator(seed: seed)
        let model = try UNet(config, generator: &rng)
        let big = config.base >= 64
        if kinds.contains("params") { emit(["kind": "params", "config": label, "params": model.parameterCount]) }
        var fwdBwdFlops = 0, fwdFlops = 0
        if kinds.contains("flops") || kinds.contains("train") || kinds.contains("fwd") {
            (fwdFlops, fwdBwdFlops) = countFlops(config)
        }
        if kinds.contains("flops") {
            emit(["kind": "flops", "config": label, "batch": 1, "size": size, "fwd_flops": fwdFlops,
                  "fwd_bwd_flops": fwdBwdFlops, "fwd_flops_fullres_attention": fullResAttentionFlops(config)])
        }
        if kinds.contains("train") {
            let n = steps ?? (big ? 3 : 5), w = warmup ?? (big ? 1 : 2)
            let step = try trainStepper(model)
            for (p, times) in zip(precisions, try alternate(precisions, steps: n, warmup: w, step)) {
                var rec = summary(times)
                rec.merge(["kind": "train_step", "config": label, "batch": batch, "size": size, "warmup": w,
                           "gflops": round3(Double(fwdBwdFlops * batch) / (median(times) * 1e6)),
                           "max_rss_mb": maxRSSMegabytes(), "precision": p.rawValue]) { a, _ in a }
                if peak > 0 {
                    rec["peak_fraction"] = round3(Double(fwdBwdFlops * batch) / (median(times) * 1e6) / peak)
                }
                emit(rec)
            }
        }
        if kinds.contains("fwd") {
            for b in fwdBatches {
                let n = steps ?? (big ? 3 : (b <= 10 ? 10 : 5)), w = warmup ?? (big ? 1 : (b <= 10 ? 2 : 1))
                let step = forwardStepper(model, batch: b)
                for (p, times) in zip(precisions, try alternate(precisions, steps: n, warmup: w, step)) {
                    var rec = summary(times)
                    rec.merge(["kind": "fwd_nograd", "config": label, "batch": b, "size": size, "warmup": w,
                               "gflops": round3(Double(fwdFlops * b) / (median(times) * 1e6)),
                               "max_rss_mb": maxRSSMegabytes(), "precision": p.rawValue]) { a, _ in a }
                    emit(rec)
                }
            }
        }
    }

    /// Per-op timings at the shapes of a batch-64 training step of the 32-base models (32x32):
    /// where the time goes, kernel by kernel. Forward and forward+backward medians.
    func benchOps() throws {
        var rng = Generator(seed: 3)
        let b = batch
        // passes: forward+backward FLOPs in forwards (3: dX and dW; 2: only one of them)
        func time(_ name: String, flops: Int, passes: Int = 3, _ inputs: [Tensor], _ f: () throws -> Tensor) throws {
            var fwd: [Double] = [], both: [Double] = []
            for _ in 0..<10 {
                var t0 = DispatchTime.now().uptimeNanoseconds
                _ = try withNoGrad { try f() }
                fwd.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
                for x in inputs { x.grad = nil }
                t0 = DispatchTime.now().uptimeNanoseconds
                let y = try f()
                try y.backward(gradient: Tensor(repeating: 1, shape: y.shape))
                both.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
            }
            let (mf, mb) = (median(Array(fwd.dropFirst())), median(Array(both.dropFirst())))
            emit(["kind": "op", "op": name, "batch": b, "precision": Precision.current.rawValue,
                  "fwd_ms": round3(mf), "fwd_bwd_ms": round3(mb),
                  "fwd_gflops": round3(Double(flops) / (mf * 1e6)),
                  "fwd_bwd_gflops": round3(Double(passes * flops) / (mb * 1e6))])
        }
        // raw single-threaded sgemm rates at the convolution shapes (per core); the first two are
        // Winograd's products and weight-gradient products for one 32x32 image at 32 channels
        for (m, n, k, ta, tb) in [(32, 256, 32, false, false), (32, 32, 256, false, true),
                                  (32, 1024, 288, false, false), (1024, 32, 288, false, true),
                                  (1024, 32, 288, true, true), (64, 1024, 576, false, false),
                                  (288, 1024, 32, true, false), (32, 288, 1024, false, true),
                                  (288, 32, 1024, false, true), (32, 4096, 288, false, false),
                                  (4096, 32, 288, true, true)] {
            let a = Tensor.randn([m * k], generator: &rng), bm = Tensor.randn([k * n], generator: &rng)
            let c = Tensor(zeros: [m * n])
            var times: [Double] = []
            for _ in 0..<20 {
                let t0 = DispatchTime.now().uptimeNanoseconds
                for _ in 0..<10 {
                    BLAS.gemmSerial(Precision.current, c.data, a.data, bm.data, m: m, n: n, k: k,
                                    transA: ta, transB: tb)
                }
                times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e7)
            }
            emit(["kind": "sgemm", "precision": Precision.current.rawValue, "m": m, "n": n, "k": k,
                  "transA": ta, "transB": tb,
                  "gflops_one_core": round3(Double(2 * m * n * k) / (median(times) * 1e6))])
        }
        func leaf(_ shape: [Int]) -> Tensor {
            let t = Tensor.randn(shape, generator: &rng)
            t.requiresGrad = true
            return t
        }
        let n = size * size
        let qkv = leaf([b, 384, n])
        try time("attention 4x32 heads, \(n) tokens", flops: 4 * b * 4 * n * n * 32, [qkv]) {
            try .attention(qkv, heads: 4, dim: 32)
        }
        let x = leaf([b, 32, size, size]), w = leaf([32, 32, 3, 3]), bias = leaf([32])
        try time("conv2d 3x3 32->32", flops: 2 * b * n * 32 * 32 * 9, [x, w, bias]) {
            try .conv2d(x, weight: w, bias: bias, stride: 1, padding: 1)
        }
        // each 3x3 kernel at the three levels of a 32-base model and its bottleneck (batch b)
        for (ch, side) in [(32, size), (64, size / 2), (128, size / 4), (128, size / 8)] {
            let xl = leaf([b, ch, side, side]), wl = leaf([ch, ch, 3, 3]), bl = leaf([ch])
            for (kernel, winograd) in [("im2col", false), ("winograd", true)] {
                try time("conv2d 3x3 \(ch)->\(ch) \(side)x\(side) \(kernel)", flops: 2 * b * side * side * ch * ch * 9,
                         [xl, wl, bl]) {
                    try .conv2d(xl, weight: wl, bias: bl, stride: 1, padding: 1, winograd: winograd)
                }
                xl.requiresGrad = false
                try time("conv2d 3x3 \(ch)->\(ch) \(side)x\(side) \(kernel) dW",
                         flops: 2 * b * side * side * ch * ch * 9, passes: 2, [wl, bl]) {
                    try .conv2d(xl, weight: wl, bias: bl, stride: 1, padding: 1, winograd: winograd)
                }
                xl.requiresGrad = true; wl.requiresGrad = false; bl.requiresGrad = false
                try time("conv2d 3x3 \(ch)->\(ch) \(side)x\(side) \(kernel) dX",
                         flops: 2 * b * side * side * ch * ch * 9, passes: 2, [xl]) {
                    try .conv2d(xl, weight: wl, bias: bl, stride: 1, padding: 1, winograd: winograd)
                }
                wl.requiresGrad = true; bl.requiresGrad = true
            }
        }
        let w1 = leaf([384, 32, 1, 1])
        try time("conv2d 1x1 32->384", flops: 2 * b * n * 32 * 384, [x, w1]) { try .conv2d(x, weight: w1, bias: nil) }
        let gw = leaf([32]), gb = leaf([32])
        try time("group_norm 8 groups", flops: 0, [x, gw, gb]) { try .groupNorm(x, groups: 8, weight: gw, bias: gb) }
        try time("silu", flops: 0, [x]) { x.silu() }
        let s = leaf([b, 32, 1, 1])
        try time("x * (scale + 1) + shift", flops: 0, [x, s]) { try x * (s + 1) + s }
        let xs = leaf([b, 64, size / 2, size / 2]), wt = leaf([64, 64, 4, 4]), bt = leaf([64])
        try time("conv_transpose2d 4x4 s2 64->64", flops: 2 * b * n / 4 * 64 * 64 * 16, [xs, wt, bt]) {
            try .convTranspose2d(xs, weight: wt, bias: bt, stride: 2, padding: 1)
        }
    }

    /// FLOPs of one forward and of forward+backward at batch 1, from the model's shapes
    /// (UNetConfig.flops: convolutions, linears, attention products, as PyTorch's FlopCounterMode).
    func countFlops(_ config: UNetConfig) -> (Int, Int) {
        let f = config.flops(batch: 1, height: size, width: size)
        return (f.forward, f.forwardBackward)
    }

    /// FLOPs of the attention blocks at full resolution (level 0 down and the last up stage).
    func fullResAttentionFlops(_ c: UNetConfig) -> Int {
        guard c.attention.first == true else { return 0 }
        let n = size * size, hid = c.heads * c.headDim, ch = c.base
        let one = 2 * n * ch * 3 * hid + 2 * 2 * n * n * hid + 2 * n * hid * ch
        return 2 * one
    }

    /// A training step per call (Adam, the batch and its labels made once), in milliseconds.
    func trainStepper(_ model: UNet) throws -> () throws -> Double {
        var rng = Generator(seed: seed)
        let schedule = try Schedule.linear(steps: 1001)
        let opt = Adam(model.parameters, lr: 1e-4)
        let x0 = Tensor.rand([batch, 1, size, size], generator: &rng) * 2 - 1
        let labels = (0..<batch).map { _ in rng.int(below: 10) }
        return {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let loss = try schedule.trainingLoss(model, x0: x0, labels: labels, generator: &rng)
            opt.zeroGrad()
            try loss.backward()
            opt.step()
            return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
        }
    }

    /// A no-grad forward of `batch` images per call, in milliseconds.
    func forwardStepper(_ model: UNet, batch: Int) -> () throws -> Double {
        var rng = Generator(seed: seed)
        let x = Tensor.randn([batch, 1, size, size], generator: &rng)
        let labels = (0..<batch).map { $0 % 10 }
        var i = 0
        return {
            let t = [Int](repeating: 500 - i % 500, count: batch)
            i += 1
            let t0 = DispatchTime.now().uptimeNanoseconds
            _ = try withNoGrad { try model(x, t: t, labels: labels) }
            return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
        }
    }

    /// `warmup` untimed then `steps` timed calls of step in each precision, the precisions taking
    /// turns call by call (so a slow stretch of a shared host falls on all of them); the times of
    /// each precision, in the order given.
    func alternate(_ precisions: [Precision], steps: Int, warmup: Int, _ step: () throws -> Double) throws
        -> [[Double]] {
        var times = [[Double]](repeating: [], count: precisions.count)
        for i in 0..<(warmup + steps) {
            for (j, p) in precisions.enumerated() {
                let ms = try Precision.with(p) { try step() }
                if i >= warmup { times[j].append(ms) }
            }
        }
        return times
    }

    /// GFLOP/s of a large square sgemm: the machine's practical peak with this BLAS.
    func sgemmPeak() -> Double {
        let n = 2048
        var rng = Generator(seed: 2)
        let a = Tensor.randn([n, n], generator: &rng), b = Tensor.randn([n, n], generator: &rng)
        let c = Tensor(zeros: [n, n])
        var best = Double.infinity
        for _ in 0..<5 {
            let t0 = DispatchTime.now().uptimeNanoseconds
            BLAS.sgemm(c.data, a.data, b.data, m: n, n: n, k: n)
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        return 2 * Double(n * n * n) / best / 1e9
    }
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    guard !s.isEmpty else { return 0 }
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

func round3(_ x: Double) -> Double { (x * 1000).rounded() / 1000 }

func summary(_ times: [Double]) -> [String: Any] {
    ["median_ms": round3(median(times)), "min_ms": round3(times.min() ?? 0), "max_ms": round3(times.max() ?? 0),
     "n": times.count]
}

func emit(_ record: [String: Any]) {
    if let data = try? JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]) {
        print(String(decoding: data, as: UTF8.self))
        fflush(nil)  // every output stream: stdout is a C global that Swift 6 cannot prove safe
    }
}

func maxRSSMegabytes() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return round3(Double(usage.ru_maxrss) / 1024)
}

func cpuModel() -> String {
    guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown" }
    for line in text.split(separator: "\n") where line.hasPrefix("model name") {
        return line.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) }
            ?? "unknown"
    }
    return "unknown"
}
