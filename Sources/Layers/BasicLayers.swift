import Autograd

/// y = x W^T + b. weight: (out, in), bias: (out).
public final class Linear: Module {
    public let weight: Tensor
    public let bias: Tensor?

    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, generator: inout Generator) {
        weight = parameter([outFeatures, inFeatures])
        initUniform(weight, fanIn: inFeatures, generator: &generator)
        self.bias = bias ? parameter([outFeatures]) : nil
        if let b = self.bias { initUniform(b, fanIn: inFeatures, generator: &generator) }
    }

    /// x: (B, in) -> (B, out)
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try .linear(x, weight: weight, bias: bias) }

    public func namedParameters() -> [(String, Tensor)] {
        [("weight", weight)] + (bias.map { [("bias", $0)] } ?? [])
    }
}

/// 2-D convolution; with `standardized` the weight is standardised per filter first
/// (WeightStandardizedConv2d: eps 1e-5, biased variance). weight: (out, in, k, k), bias: (out).
public final class Conv2d: Module {
    public let weight: Tensor
    public let bias: Tensor?
    public let stride: Int, padding: Int
    public let standardized: Bool

    public init(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
                bias: Bool = true, standardized: Bool = false, generator: inout Generator) {
        self.stride = stride
        self.padding = padding
        self.standardized = standardized
        weight = parameter([outChannels, inChannels, kernel, kernel])
        let fanIn = inChannels * kernel * kernel
        initUniform(weight, fanIn: fanIn, generator: &generator)
        self.bias = bias ? parameter([outChannels]) : nil
        if let b = self.bias { initUniform(b, fanIn: fanIn, generator: &generator) }
    }

    /// x: (N, in, H, W) -> (N, out, H', W')
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let w = standardized ? try weight.weightStandardized(eps: 1e-5) : weight
        return try .conv2d(x, weight: w, bias: bias, stride: stride, padding: padding)
    }

    public func namedParameters() -> [(String, Tensor)] {
        [("weight", weight)] + (bias.map { [("bias", $0)] } ?? [])
    }
}

/// Transposed convolution. weight: (in, out, k, k) (PyTorch layout), bias: (out).
public final class ConvTranspose2d: Module {
    public let weight: Tensor
    public let bias: Tensor
    public let stride: Int, padding: Int

    public init(
        _ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int, padding: Int, generator: inout Generator
    ) {
        self.stride = stride
        self.padding = padding
        weight = parameter([inChannels, outChannels, kernel, kernel])
        // PyTorch computes fan_in from weight.size(1), which is out_channels for a transposed conv.
        let fanIn = outChannels * kernel * kernel
        initUniform(weight, fanIn: fanIn, generator: &generator)
        bias = parameter([outChannels])
        initUniform(bias, fanIn: fanIn, generator: &generator)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try .convTranspose2d(x, weight: weight, bias: bias, stride: stride, padding: padding)
    }

    public func namedParameters() -> [(String, Tensor)] { [("weight", weight), ("bias", bias)] }
}

/// GroupNorm with per-channel affine (weight 1, bias 0 at init), eps 1e-5.
public final class GroupNorm: Module {
    public let groups: Int
    public let weight: Tensor, bias: Tensor

    public init(groups: Int, channels: Int) {
        self.groups = groups
        weight = parameter([channels])
        weight.data.update(repeating: 1, count: channels)
        bias = parameter([channels])
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try .groupNorm(x, groups: groups, weight: weight, bias: bias, eps: 1e-5)
    }

    public func namedParameters() -> [(String, Tensor)] { [("weight", weight), ("bias", bias)] }
}

/// Label embedding table (classes, dim), N(0, 1) at init like nn.Embedding.
public final class Embedding: Module {
    public let weight: Tensor

    public init(_ classes: Int, _ dim: Int, generator: inout Generator) {
        weight = parameter([classes, dim])
        generator.fillNormal(weight.data, count: weight.count)
    }

    /// indices: one per row, -1 = a zero row.
    public func callAsFunction(_ indices: [Int]) throws -> Tensor { try .embedding(weight, indices: indices) }

    public func namedParameters() -> [(String, Tensor)] { [("weight", weight)] }
}
