import Autograd
import Foundation

/// Sinusoidal timestep embedding, computed in float32 exactly as the reference does:
/// emb[:, 2i] = sin(t / den_i), emb[:, 2i+1] = cos(t / den_i), den_i = 10000^(2i/d).
/// t: one timestep per row -> (B, dim). Data, not a parameter: never recorded.
public func sinusoidalEmbedding(_ t: [Int], dim: Int) -> Tensor {
    let out = Tensor(zeros: [t.count, dim])
    for i in 0..<(dim / 2) {
        let den = powf(10000, Float(2 * i) / Float(dim))
        for (r, tv) in t.enumerated() {
            let a = Float(tv) / den
            out.data[r * dim + 2 * i] = sinf(a)
            out.data[r * dim + 2 * i + 1] = cosf(a)
        }
    }
    return out
}

/// WS-conv 3x3 -> GroupNorm -> optional x * (scale + 1) + shift -> SiLU.
final class Block: Module {
    let proj: Conv2d
    let norm: GroupNorm

    init(_ inCh: Int, _ outCh: Int, groups: Int, generator: inout Generator) {
        proj = Conv2d(inCh, outCh, kernel: 3, padding: 1, standardized: true, generator: &generator)
        norm = GroupNorm(groups: groups, channels: outCh)
    }

    /// scale, shift: (B, C, 1, 1); residual: added to the output. GroupNorm, modulation, SiLU and
    /// the residual run as one fused op.
    func callAsFunction(_ x: Tensor, scaleShift: (Tensor, Tensor)? = nil, residual: Tensor? = nil) throws -> Tensor {
        try .groupNormSiLU(proj(x), groups: norm.groups, weight: norm.weight, bias: norm.bias,
                           scale: scaleShift?.0, shift: scaleShift?.1, residual: residual, eps: 1e-5)
    }

    func namedParameters() -> [(String, Tensor)] { child("proj", proj) + child("norm", norm) }
}

/// Two Blocks with the first modulated by the time+label embedding, plus a residual
/// (a 1x1 conv when the channel count changes).
final class ResnetBlock: Module {
    let outCh: Int
    let mlp: Linear
    let block1: Block, block2: Block
    let resConv: Conv2d?

    init(_ inCh: Int, _ outCh: Int, timeDim: Int, groups: Int, generator: inout Generator) {
        self.outCh = outCh
        mlp = Linear(timeDim, 2 * outCh, generator: &generator)
        block1 = Block(inCh, outCh, groups: groups, generator: &generator)
        block2 = Block(outCh, outCh, groups: groups, generator: &generator)
        resConv = inCh != outCh ? Conv2d(inCh, outCh, kernel: 1, generator: &generator) : nil
    }

    /// x: (B, in, H, W), temb: (B, timeDim) -> (B, out, H, W)
    func callAsFunction(_ x: Tensor, _ temb: Tensor) throws -> Tensor {
        let e = try mlp(temb.silu()).reshaped([x.shape[0], 2 * outCh, 1, 1])
        let scale = try e.narrowed(dim: 1, start: 0, length: outCh)
        let shift = try e.narrowed(dim: 1, start: outCh, length: outCh)
        let h = try block1(x, scaleShift: (scale, shift))
        return try block2(h, residual: resConv.map { try $0(x) } ?? x)
    }

    func namedParameters() -> [(String, Tensor)] {
        child("mlp.1", mlp) + child("block1", block1) + child("block2", block2) + child("res_conv", resConv)
    }
}

/// Multi-head self-attention over all pixels: 1x1 conv to q, k, v; softmax(q^T k / sqrt(d)) v;
/// 1x1 conv back to the input channels.
final class SelfAttention: Module {
    let heads: Int, headDim: Int
    let toQKV: Conv2d
    let toOutput: Conv2d

    init(_ ch: Int, heads: Int, headDim: Int, generator: inout Generator) {
        self.heads = heads
        self.headDim = headDim
        toQKV = Conv2d(ch, 3 * heads * headDim, kernel: 1, bias: false, generator: &generator)
        toOutput = Conv2d(heads * headDim, ch, kernel: 1, generator: &generator)
    }

    /// x: (B, C, H, W) -> (B, C, H, W)
    func callAsFunction(_ x: Tensor) throws -> Tensor {
        let (b, h, w) = (x.shape[0], x.shape[2], x.shape[3])
        let qkv = try toQKV(x).reshaped([b, 3 * heads * headDim, h * w])
        let o = try Tensor.attention(qkv, heads: heads, dim: headDim)
        return try toOutput(o.reshaped([b, heads * headDim, h, w]))
    }

    func namedParameters() -> [(String, Tensor)] { child("input_to_qkv", toQKV) + child("to_output", toOutput) }
}

final class DownBlock: Module {
    let block1: ResnetBlock, block2: ResnetBlock
    let attn: SelfAttention?
    let down: Conv2d  // after space-to-depth: 4*ch -> ch

    init(_ inCh: Int, _ outCh: Int, config: UNetConfig, attention: Bool, generator: inout Generator) {
        block1 = ResnetBlock(inCh, outCh, timeDim: config.timeDim, groups: config.groups, generator: &generator)
        block2 = ResnetBlock(outCh, outCh, timeDim: config.timeDim, groups: config.groups, generator: &generator)
        attn = attention
            ? SelfAttention(outCh, heads: config.heads, headDim: config.headDim, generator: &generator) : nil
        down = Conv2d(4 * outCh, outCh, kernel: 1, generator: &generator)
    }

    /// -> (downsampled x, skip); `afterBlock1` sees the first ResnetBlock's output (tracing).
    func callAsFunction(
        _ x: Tensor, _ temb: Tensor, afterBlock1: ((Tensor) -> Void)? = nil
    ) throws -> (Tensor, Tensor) {
        let b1 = try block1(x, temb)
        afterBlock1?(b1)
        var h = try block2(b1, temb)
        if let attn { h = try attn(h) }
        return (try down(h.spaceToDepth(2)), h)
    }

    func namedParameters() -> [(String, Tensor)] {
        child("block1", block1) + child("block2", block2) + child("attn", attn) + child("down.1", down)
    }
}

final class UpBlock: Module {
    let upconv: ConvTranspose2d
    let block1: ResnetBlock, block2: ResnetBlock
    let attn: SelfAttention?

    init(_ inCh: Int, skip: Int, _ outCh: Int, config: UNetConfig, attention: Bool, generator: inout Generator) {
        upconv = ConvTranspose2d(inCh, inCh, kernel: 4, stride: 2, padding: 1, generator: &generator)
        block1 = ResnetBlock(inCh + skip, outCh, timeDim: config.timeDim, groups: config.groups, generator: &generator)
        block2 = ResnetBlock(outCh, outCh, timeDim: config.timeDim, groups: config.groups, generator: &generator)
        attn = attention
            ? SelfAttention(outCh, heads: config.heads, headDim: config.headDim, generator: &generator) : nil
    }

    func callAsFunction(_ x: Tensor, skip: Tensor, _ temb: Tensor) throws -> Tensor {
        let up = try upconv(x)
        var h = try block2(block1(Tensor.cat([up, skip], dim: 1), temb), temb)
        if let attn { h = try attn(h) }
        return h
    }

    func namedParameters() -> [(String, Tensor)] {
        child("upconv", upconv) + child("block1", block1) + child("block2", block2) + child("attn", attn)
    }
}

/// The reference conditional U-Net ("GabiDiffUnet"): predicts the noise in x_t given the
/// timestep and an optional digit label. Parameter names and layouts are the reference's.
///
///     var rng = Generator(seed: 0)
///     let model = try UNet(UNetConfig(base: 16, levels: 2, timeDim: 32), generator: &rng)
///     let eps = try model(x, t: [37, 912], labels: [3, -1])
public final class UNet: Module {
    public let config: UNetConfig
    let timeMLP1: Linear, timeMLP3: Linear
    let labelEmb: Embedding
    let downs: [DownBlock]
    let mid1: ResnetBlock, mid2: ResnetBlock
    let midAttn: SelfAttention?
    let ups: [UpBlock]
    let final1: ResnetBlock, final2: ResnetBlock
    let finalConv: Conv2d

    public init(_ config: UNetConfig, generator: inout Generator) throws {
        try config.validate()
        self.config = config
        let td = config.timeDim, base = config.base, levels = config.levels
        timeMLP1 = Linear(td, 4 * td, generator: &generator)
        timeMLP3 = Linear(4 * td, td, generator: &generator)
        labelEmb = Embedding(config.classes, td, generator: &generator)
        var downs: [DownBlock] = []
        var prev = config.channels
        for i in 0..<levels {
            let out = base << i
            downs.append(DownBlock(prev, out, config: config, attention: config.attention[i], generator: &generator))
            prev = out
        }
        self.downs = downs
        let top = base << (levels - 1)
        mid1 = ResnetBlock(top, top, timeDim: td, groups: config.groups, generator: &generator)
        mid2 = ResnetBlock(top, top, timeDim: td, groups: config.groups, generator: &generator)
        midAttn = config.attentionMid
            ? SelfAttention(top, heads: config.heads, headDim: config.headDim, generator: &generator) : nil
        var ups: [UpBlock] = []
        var inCh = top
        for i in (0..<levels).reversed() {
            let skip = base << i
            ups.append(UpBlock(inCh, skip: skip, skip, config: config, attention: config.attention[i],
                               generator: &generator))
            inCh = skip
        }
        self.ups = ups
        final1 = ResnetBlock(base, base, timeDim: td, groups: config.groups, generator: &generator)
        final2 = ResnetBlock(base, base, timeDim: td, groups: config.groups, generator: &generator)
        finalConv = Conv2d(base, config.channels, kernel: 1, generator: &generator)
    }

    public func namedParameters() -> [(String, Tensor)] {
        var p = child("time_mlp.1", timeMLP1) + child("time_mlp.3", timeMLP3) + child("label_emb", labelEmb)
        for (i, d) in downs.enumerated() { p += child("downsample.\(i)", d) }
        p += child("bottleneck.0", mid1) + child("bottleneck.1", mid2) + child("bottleneck.2", midAttn)
        for (i, u) in ups.enumerated() { p += child("upsample.\(i)", u) }
        p += child("final_block.0", final1) + child("final_block.1", final2) + child("final_block.2", finalConv)
        return p
    }

    /// The time + label conditioning vector: (B, timeDim).
    func conditioning(t: [Int], labels: [Label]?, trace: ((String, Tensor) -> Void)?) throws -> Tensor {
        let temb = try timeMLP3(timeMLP1(sinusoidalEmbedding(t, dim: config.timeDim)).gelu())
        trace?("time_mlp", temb)
        guard let labels else { return temb }
        let lemb = try labelEmb(labels)
        trace?("label_emb", lemb)
        return try temb + lemb
    }

    /// x: (B, channels, H, W), H and W divisible by 2^levels; t: B timesteps >= 0; labels: B
    /// labels in [0, classes) or -1 (unconditional), nil = all unconditional.
    /// `trace` receives named intermediate activations (the reference fixtures' `act/` names).
    public func callAsFunction(
        _ x: Tensor, t: [Int], labels: [Int]?, trace: ((String, Tensor) -> Void)? = nil
    ) throws -> Tensor {
        try self(x, t: t, conditions: labels?.map { Label($0) }, trace: trace)
    }

    /// As `callAsFunction(_:t:labels:)` with each label a class, none, or a blend of two
    /// classes' embeddings (`Label`).
    public func callAsFunction(
        _ x: Tensor, t: [Int], conditions labels: [Label]?, trace: ((String, Tensor) -> Void)? = nil
    ) throws -> Tensor {
        try checkInputs(x, t: t, labels: labels)
        let cond = try conditioning(t: t, labels: labels, trace: trace)
        var h = x
        var skips: [Tensor] = []
        for (i, d) in downs.enumerated() {
            let skip: Tensor
            (h, skip) = try d(h, cond) { trace?("downsample.\(i).block1", $0) }
            trace?("downsample.\(i).out", h)
            skips.append(skip)
        }
        h = try mid2(mid1(h, cond), cond)
        if let midAttn { h = try midAttn(h) }
        trace?("bottleneck.out", h)
        for (i, (u, s)) in zip(ups, skips.reversed()).enumerated() {
            h = try u(h, skip: s, cond)
            trace?("upsample.\(i).out", h)
        }
        h = try final2(final1(h, cond), cond)
        trace?("final_block.1.out", h)
        return try finalConv(h)
    }

    func checkInputs(_ x: Tensor, t: [Int], labels: [Label]?) throws {
        let f = 1 << config.levels
        guard x.rank == 4, x.shape[1] == config.channels, x.shape[2] % f == 0, x.shape[3] % f == 0,
              x.shape[2] > 0 else {
            throw TensorError("unet: input \(Shape.describe(x.shape)) is not (batch, \(config.channels), H, W) "
                + "with H and W divisible by \(f) (2^levels)")
        }
        let b = x.shape[0]
        guard t.count == b else { throw TensorError("unet: \(t.count) timesteps for a batch of \(b)") }
        if let bad = t.first(where: { $0 < 0 }) { throw TensorError("unet: timestep \(bad) is negative") }
        if let labels {
            guard labels.count == b else { throw TensorError("unet: \(labels.count) labels for a batch of \(b)") }
            let classes = config.classes
            if let bad = labels.flatMap({ [$0.from, $0.to] }).first(where: { $0 < -1 || $0 >= classes }) {
                throw TensorError("unet: label \(bad) out of range [0, \(classes)) (-1 = unconditional)")
            }
            if let bad = labels.first(where: { !$0.weight.isFinite }) {
                throw TensorError("unet: label blend weight \(bad.weight) is not finite")
            }
        }
    }
}
