import Autograd

/// A class condition of one image: a class (0..<classes), none (-1: the zero embedding), or a
/// blend (1 - weight) embed(from) + weight embed(to) of two of them (class morphs walk the
/// weight from 0 to 1). A plain label is from == to, weight 0.
public struct Label: Hashable, Sendable, ExpressibleByIntegerLiteral {
    public let from: Int
    public let to: Int
    public let weight: Float

    public init(_ label: Int) {
        from = label
        to = label
        weight = 0
    }

    public init(from: Int, to: Int, weight: Float) {
        self.from = from
        self.to = to
        self.weight = weight
    }

    public init(integerLiteral value: Int) { self.init(value) }

    /// The unconditional label.
    public static let none = Label(-1)

    /// True when this is one class (or none), not a blend of two.
    public var isPlain: Bool { from == to || weight == 0 }
}

extension Embedding {
    /// Rows for blended labels: (1 - w) weight[from] + w weight[to] (-1 = a zero row), from the
    /// recorded embedding, broadcast multiply and add ops, so it is differentiable like them.
    /// A plain label's row equals `self([label])`'s bit for bit ((1 - 0) e + 0 e' = e).
    public func callAsFunction(_ labels: [Label]) throws -> Tensor {
        if labels.allSatisfy(\.isPlain) { return try self(labels.map { $0.weight == 0 ? $0.from : $0.to }) }
        let w = try Tensor(labels.map(\.weight), shape: [labels.count, 1])
        let keep = try Tensor(labels.map { 1 - $0.weight }, shape: [labels.count, 1])
        return try self(labels.map(\.from)) * keep + self(labels.map(\.to)) * w
    }
}
