import Autograd

/// Anything with named parameters. Names are the reference's PyTorch state_dict keys, so a
/// parameter table is exactly what a converted checkpoint holds.
public protocol Module: AnyObject {
    /// (name, tensor) for every parameter, in the reference's state_dict order.
    func namedParameters() -> [(String, Tensor)]
}

extension Module {
    public var parameters: [Tensor] { namedParameters().map(\.1) }
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.count } }
    public func zeroGrad() { for p in parameters { p.grad = nil } }
}

/// Prefixes a child's parameter names ("block1" + "proj.weight" -> "block1.proj.weight").
public func child(_ prefix: String, _ m: Module?) -> [(String, Tensor)] {
    m?.namedParameters().map { ("\(prefix).\($0.0)", $0.1) } ?? []
}

/// A parameter: a leaf tensor that wants gradients.
func parameter(_ shape: [Int]) -> Tensor {
    let t = Tensor(zeros: shape)
    t.requiresGrad = true
    return t
}

/// PyTorch's default init for Linear/Conv weights and biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
/// (kaiming_uniform with a = sqrt(5) reduces to this bound). fan_in = shape[1] * receptive field.
func initUniform(_ t: Tensor, fanIn: Int, generator: inout Generator) {
    let bound = 1 / Float(max(fanIn, 1)).squareRoot()
    generator.fillUniform(t.data, count: t.count, low: -bound, high: bound)
}
