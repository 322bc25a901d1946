import Synchronization

/// Reverse-mode autodiff. Every op that records gives its output a `Node`: the inputs and a closure
/// mapping the output's gradient to the inputs' gradients. `backward()` walks the nodes reachable
/// from the loss in reverse creation order, so the graph is freed with the tensors that use it and
/// an abandoned forward pass leaks nothing.
public final class Node {
    /// Creation order; reverse order is a valid topological order for backward.
    let id: Int
    let op: Op
    let inputs: [Tensor]
    /// Output gradient -> one gradient per input (nil where the input needs none).
    /// Closures capture `detached()` views of outputs, never the output itself (that would be a cycle).
    let backward: (Tensor) throws -> [Tensor?]

    init(id: Int, op: Op, inputs: [Tensor], backward: @escaping (Tensor) throws -> [Tensor?]) {
        self.id = id
        self.op = op
        self.inputs = inputs
        self.backward = backward
    }
}

/// Every op that records a backward, by the name its node carries. `recorded` takes one, so a new
/// op is a new case here, and GradCheckTests fails until the op has a finite-difference check.
public enum Op: String, CaseIterable, Sendable {
    case add, sub, mul, div, affine
    case abs, sqrt, exp, log, square, sin, cos, pow, clamp, relu, silu, gelu
    case sum, sumDim = "sum_dim", max, min, softmax
    case reshape, permute, narrow, cat, spaceToDepth = "space_to_depth"
    case matmul, linear, conv2d, convTranspose2d = "conv_transpose2d", attention
    case groupNorm = "group_norm", weightStandardize = "weight_standardize", groupNormSiLU = "group_norm_silu"
    case embedding, l1Loss = "l1_loss", mseLoss = "mse_loss", weightedLoss = "weighted_loss"
    case crossEntropy = "cross_entropy"
}

public enum GradMode {
    /// Whether ops record. Task-local (a thread-local outside tasks): a no-grad region turns
    /// recording off for the code it runs, never for another thread's.
    @TaskLocal static var enabled = true
    /// The last node id handed out. Global so that any two nodes compare by creation order;
    /// atomic, so graphs may be built on several threads.
    static let lastID = Atomic<Int>(0)

    /// Runs `body` without recording (sampling, optimizer updates, evaluation).
    public static func withNoGrad<T>(_ body: () throws -> T) rethrows -> T {
        try $enabled.withValue(false) { try body() }
    }

    /// Whether an op with these inputs should record a node.
    @inline(__always) static func shouldRecord(_ inputs: [Tensor]) -> Bool {
        enabled && inputs.contains { $0.requiresGrad }
    }
}

public func withNoGrad<T>(_ body: () throws -> T) rethrows -> T { try GradMode.withNoGrad(body) }

extension Tensor {
    /// Attaches `backward` to this freshly computed output when any input wants a gradient.
    /// Returns self so ops can end with `return out.recorded(...)`.
    @discardableResult
    func recorded(_ op: Op, _ inputs: [Tensor], backward: @escaping (Tensor) throws -> [Tensor?]) -> Tensor {
        guard GradMode.shouldRecord(inputs) else { return self }
        let id = GradMode.lastID.wrappingAdd(1, ordering: .relaxed).newValue
        requiresGrad = true
        creator = Node(id: id, op: op, inputs: inputs, backward: backward)
        return self
    }

    /// Backpropagates from this one-element tensor (d self / d self = 1) into every leaf that
    /// requires a gradient, accumulating into `grad`. The graph is released afterwards.
    public func backward() throws {
        guard count == 1 else {
            throw TensorError("backward: called on a tensor of shape \(Shape.describe(shape)); "
                              + "it needs one element (a loss)")
        }
        guard requiresGrad else {
            throw TensorError("backward: tensor does not require grad (no parameter or input with requires_grad took "
                              + "part, or it was computed under no_grad)")
        }
        try backward(gradient: Tensor(repeating: 1, shape: shape))
    }

    /// Backpropagates an explicit output gradient (same shape as self).
    public func backward(gradient: Tensor) throws {
        guard gradient.shape == shape else {
            throw TensorError("backward: gradient shape \(Shape.describe(gradient.shape)) differs from tensor shape "
                              + "\(Shape.describe(shape))")
        }
        // Collect every node reachable from self.
        var nodes: [Int: (Node, Tensor)] = [:]
        var stack: [Tensor] = [self]
        while let t = stack.popLast() {
            guard let n = t.creator, nodes[n.id] == nil else { continue }
            nodes[n.id] = (n, t)
            stack.append(contentsOf: n.inputs)
        }
        if creator == nil {
            accumulate(gradient)
            return
        }
        // Backward closures use the public ops; nothing they compute is recorded.
        try withNoGrad { try propagate(gradient, through: nodes) }
    }

    private func propagate(_ gradient: Tensor, through nodes: [Int: (Node, Tensor)]) throws {
        var grads: [ObjectIdentifier: Tensor] = [ObjectIdentifier(self): gradient]
        for id in nodes.keys.sorted(by: >) {
            guard let (node, output) = nodes[id] else { continue }
            guard let gy = grads.removeValue(forKey: ObjectIdentifier(output)) else { continue }
            let gins = try node.backward(gy)
            // An op's backward is ours, not the caller's: a mismatch is a bug in the op, reported
            // as an error naming it (a gradient of another size would otherwise be read in the
            // input's shape, silently wrong).
            guard gins.count == node.inputs.count else {
                throw TensorError("backward: internal error: \(node.op.rawValue) returned \(gins.count) gradients for "
                                  + "its \(node.inputs.count) inputs")
            }
            for (i, (input, gin)) in zip(node.inputs, gins).enumerated() {
                guard let gin else { continue }
                guard gin.count == input.count else {
                    throw TensorError("backward: internal error: \(node.op.rawValue) returned a gradient of "
                                      + "\(gin.count) elements for its input \(i) of shape "
                                      + "\(Shape.describe(input.shape)) (\(input.count) elements)")
                }
                guard input.requiresGrad else { continue }
                let g = gin.shape == input.shape ? gin : Tensor(storage: gin.storage, shape: input.shape)
                if input.creator == nil {
                    input.accumulate(g)
                } else {
                    let key = ObjectIdentifier(input)
                    grads[key] = try grads[key].map { try $0.adding(g) } ?? g
                }
            }
            output.creator = nil
        }
        creator = nil
    }

    /// grad += g, never writing into `g` (it may be shared with another input's gradient).
    func accumulate(_ g: Tensor) {
        if let old = grad {
            let sum = Tensor(uninitialized: shape)
            let (a, b, o) = (old.data, g.data, sum.data)
            Parallel.ranges(count) { r in for i in r { o[i] = a[i] + b[i] } }
            grad = sum
        } else {
            grad = g.shape == shape ? g : Tensor(storage: g.storage, shape: shape)
        }
    }
}
