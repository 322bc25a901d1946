import Autograd
import CLua

/// `ddpm.tensor.*`, `ddpm.loss.*` and the Tensor userdata's methods. Dimensions and indices are 1-based, as in
/// Lua Torch.
enum TensorTable {
    static func push(_ lua: Lua, _ t: Tensor) { lua.pushObject(t, metatable: Metatable.tensor) }

    static func pushShape(_ lua: Lua, _ shape: [Int]) {
        lua.newTable(array: shape.count)
        for (i, d) in shape.enumerated() { lua.push(d); lua.setIndex(-2, i + 1) }
    }

    /// A 1-based dimension argument -> 0-based, checked against the rank.
    static func dim(_ a: Arguments, _ i: Int32, _ t: Tensor) throws -> Int {
        let d = try a.int(i)
        guard d >= 1 && d <= t.rank else {
            throw ScriptError(
                "bad argument #\(i) (dimension \(d) out of range 1..\(t.rank) for shape \(Shape.describe(t.shape)))")
        }
        return d - 1
    }

    static let tables = [
        LuaTable(name: "tensor", functions: functions),
        LuaTable(name: "loss", functions: losses, classes: [tensorClass]),
    ]

    static let functions: [(String, Binding)] = [
        ("zeros", { a in push(a.lua, Tensor(zeros: try a.shape(1))); return 1 }),
        ("ones", { a in push(a.lua, Tensor(repeating: 1, shape: try a.shape(1))); return 1 }),
        ("full", { a in push(a.lua, Tensor(repeating: Float(try a.number(2)), shape: try a.shape(1))); return 1 }),
        ("randn", { a in push(a.lua, Tensor.randn(try a.shape(1), generator: &Generator.global)); return 1 }),
        ("rand", { a in push(a.lua, Tensor.rand(try a.shape(1), generator: &Generator.global)); return 1 }),
        ("arange", { a in
            let n = try a.int(1)
            guard n >= 0 && n <= Shape.maxElements else {
                throw ScriptError("bad argument #1 (n must be in 0...\(Shape.maxElements), got \(n))")
            }
            push(a.lua, Tensor.arange(n)); return 1
        }),
        ("from", { a in
            let values = try a.floats(1)
            let shape = a.has(2) ? try a.shape(2) : [values.count]
            push(a.lua, try Tensor(values, shape: shape)); return 1
        }),
        ("cat", { a in
            let list = try a.table(1)
            var xs: [Tensor] = []
            for k in 1...Swift.max(a.lua.length(list), 1) where k <= a.lua.length(list) {
                a.lua.getIndex(list, k)
                defer { a.lua.pop() }
                guard let t = a.lua.object(-1, metatable: Metatable.tensor, as: Tensor.self) else {
                    throw ScriptError("bad argument #1 (entry \(k) must be a tensor, got \(a.lua.describe(-1)))")
                }
                xs.append(t)
            }
            guard let first = xs.first else { throw ScriptError("bad argument #1 (empty list of tensors)") }
            let d = a.has(2) ? try dim(a, 2, first) : 0
            push(a.lua, try Tensor.cat(xs, dim: d)); return 1
        }),
    ]

    static let losses: [(String, Binding)] = [
        ("l1", { a in push(a.lua, try elementLoss(a, .l1)); return 1 }),
        ("mse", { a in push(a.lua, try elementLoss(a, .l2)); return 1 }),
        ("huber", { a in
            let delta = try a.options(3).number("delta") ?? 1
            push(a.lua, try elementLoss(a, .huber(delta: Float(delta)))); return 1
        }),
        ("cross_entropy", { a in
            let logits = try a.tensor(1)
            guard logits.rank == 2 else {
                throw ScriptError(
                    "bad argument #1 (logits must be (batch, classes), got \(Shape.describe(logits.shape)))")
            }
            push(a.lua, try Tensor.crossEntropy(
                logits, labels: try a.integers(2, count: logits.shape[0], what: "labels")))
            return 1
        }),
    ]

    /// `ddpm.loss.l1/mse/huber(prediction, target, {weights=})`: the mean penalty; `weights` (a
    /// table or tensor, one per sample) weights each sample's terms (`Tensor.weightedLoss`).
    static func elementLoss(_ a: Arguments, _ kind: ElementLoss) throws -> Tensor {
        let p = try a.tensor(1), t = try a.tensor(2)
        let o = try a.options(3)
        try o.rejectUnknown(kind == .l1 || kind == .l2 ? ["weights"] : ["weights", "delta"], what: "loss option")
        let weights = try o.floats("weights", count: p.shape.first ?? 0)
        switch (kind, weights) {
        case (.l1, nil): return try .l1Loss(p, t)
        case (.l2, nil): return try .mseLoss(p, t)
        default: return try .weightedLoss(p, t, weights: weights, kind: kind)
        }
    }

    /// x op y where either side may be a number.
    static func arithmetic(_ f: @escaping @Sendable (Tensor, Tensor) throws -> Tensor) -> Binding {
        { a in
            let x = try a.tensorOrNumber(1), y = try a.tensorOrNumber(2)
            push(a.lua, try f(x, y)); return 1
        }
    }

    static func unary(_ f: @escaping @Sendable (Tensor) throws -> Tensor) -> Binding {
        { a in push(a.lua, try f(try a.tensor(1))); return 1 }
    }

    static let tensorClass = LuaClass(
        metatable: Metatable.tensor, display: "Tensor",
        methods: [
            ("shape", { a in pushShape(a.lua, try a.tensor(1).shape); return 1 }),
            ("size", { a in
                let t = try a.tensor(1)
                if a.has(2) { a.lua.push(t.shape[try dim(a, 2, t)]) } else { pushShape(a.lua, t.shape) }
                return 1
            }),
            ("dim", { a in a.lua.push(try a.tensor(1).rank); return 1 }),
            ("numel", { a in a.lua.push(try a.tensor(1).count); return 1 }),
            ("item", { a in a.lua.push(Double(try a.tensor(1).item())); return 1 }),
            ("totable", { a in
                let t = try a.tensor(1)
                a.lua.newTable(array: t.count)
                for i in 0..<t.count { a.lua.push(Double(t.data[i])); a.lua.setIndex(-2, i + 1) }
                return 1
            }),
            ("abs", unary { $0.abs() }), ("sqrt", unary { $0.sqrt() }), ("exp", unary { $0.exp() }),
            ("log", unary { $0.log() }), ("square", unary { $0.square() }), ("sin", unary { $0.sin() }),
            ("cos", unary { $0.cos() }), ("silu", unary { $0.silu() }), ("gelu", unary { $0.gelu() }),
            ("relu", unary { $0.relu() }),
            ("softmax", unary { try $0.softmax() }),
            ("clamp", { a in
                let lo = Float(try a.number(2, default: -Double.infinity))
                let hi = Float(try a.number(3, default: Double.infinity))
                push(a.lua, try a.tensor(1).clamp(lo, hi)); return 1
            }),
            ("pow", { a in push(a.lua, try a.tensor(1).pow(Float(try a.number(2)))); return 1 }),
            ("add", arithmetic(+)), ("sub", arithmetic(-)), ("mul", arithmetic(*)), ("div", arithmetic(/)),
            ("sum", { a in
                let t = try a.tensor(1)
                push(a.lua, a.has(2) ? try t.sum(dim: try dim(a, 2, t)) : t.sum()); return 1
            }),
            ("mean", { a in
                let t = try a.tensor(1)
                push(a.lua, a.has(2) ? try t.mean(dim: try dim(a, 2, t)) : t.mean()); return 1
            }),
            ("max", { a in push(a.lua, try a.tensor(1).max()); return 1 }),
            ("min", { a in push(a.lua, try a.tensor(1).min()); return 1 }),
            ("reshape", { a in
                push(a.lua, try a.tensor(1).reshaped(try readIntegers(a.lua, try a.table(2), what: "shape")))
                return 1
            }),
            ("view", { a in
                push(a.lua, try a.tensor(1).reshaped(try readIntegers(a.lua, try a.table(2), what: "shape")))
                return 1
            }),
            ("permute", { a in
                let t = try a.tensor(1)
                let order = try readIntegers(a.lua, try a.table(2), what: "order").map { $0 - 1 }
                push(a.lua, try t.permuted(order)); return 1
            }),
            ("narrow", { a in
                let t = try a.tensor(1)
                let d = try dim(a, 2, t)
                let start = try a.int(3), size = try a.int(4)
                guard start >= 1 else { throw ScriptError("bad argument #3 (index \(start) must be >= 1)") }
                push(a.lua, try t.narrowed(dim: d, start: start - 1, length: size)); return 1
            }),
            ("clone", { a in
                let t = try a.tensor(1)
                push(a.lua, t.affine(scale: 1, shift: 0)); return 1  // a copy that keeps autodiff
            }),
            ("detach", { a in push(a.lua, try a.tensor(1).detached()); return 1 }),
            ("requires_grad", { a in
                let t = try a.tensor(1)
                if a.has(2) {
                    let on = try a.bool(2)
                    guard t.creator == nil || on else {
                        throw ScriptError("requires_grad(false) on a computed tensor; use detach()")
                    }
                    t.requiresGrad = on
                    a.lua.pushValue(1); return 1
                }
                a.lua.push(t.requiresGrad); return 1
            }),
            ("backward", { a in
                let t = try a.tensor(1)
                if let g = try a.optionalTensor(2) { try t.backward(gradient: g) } else { try t.backward() }
                return 0
            }),
            ("grad", { a in
                if let g = try a.tensor(1).grad { push(a.lua, g) } else { a.lua.pushNil() }
                return 1
            }),
            ("zero_grad", { a in try a.tensor(1).grad = nil; return 0 }),
            ("copy", { a in
                let t = try a.tensor(1)
                try t.assign(try a.tensor(2))
                a.lua.pushValue(1); return 1
            }),
            ("fill", { a in
                let t = try a.tensor(1)
                t.data.update(repeating: Float(try a.number(2)), count: t.count)
                a.lua.pushValue(1); return 1
            }),
        ],
        metamethods: [
            ("__add", arithmetic(+)), ("__sub", arithmetic(-)), ("__mul", arithmetic(*)), ("__div", arithmetic(/)),
            ("__unm", unary { -$0 }),
            ("__len", { a in a.lua.push(try a.tensor(1).shape.first ?? 1); return 1 }),
            ("__tostring", { a in a.lua.push(format(try a.tensor(1))); return 1 }),
        ])

    /// Torch-like printing: values (up to 6 per row, 8 rows) and the shape.
    static func format(_ t: Tensor) -> String {
        func f(_ v: Float) -> String {
            let s = String(format: "%.4f", v)
            return v >= 0 ? " " + s : s
        }
        let cols = t.shape.last ?? 1
        var lines: [String] = []
        if t.count == 1 { lines.append(f(t.data[0])) } else if t.count > 0 {
            let rows = t.count / Swift.max(cols, 1)
            for r in 0..<Swift.min(rows, 8) {
                let n = Swift.min(cols, 6)
                var row = (0..<n).map { f(t.data[r * cols + $0]) }.joined(separator: " ")
                if cols > n { row += " ..." }
                lines.append(row)
            }
            if rows > 8 { lines.append("...") }
        }
        lines.append("[ddpm.Tensor of shape \(Shape.describe(t.shape))\(t.requiresGrad ? ", requires_grad" : "")]")
        return lines.joined(separator: "\n")
    }
}

import Foundation

extension Lua {
    func pushValue(_ i: Int32) { lua_pushvalue(L, i) }
}
