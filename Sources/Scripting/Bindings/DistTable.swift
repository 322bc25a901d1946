import Autograd
import CLua
import Distributed
import Evaluation
import Foundation
import Layers

/// `ddpm.dist.*`: the processes of an `mpirun` job (one rank when run without it) and the
/// collectives recipes need for data-parallel training and sharded sampling. Every rank must
/// call a collective in the same order; sizes are checked and a mismatch is an error on every rank.
enum DistTable {
    static let tables = [LuaTable(name: "dist", functions: functions)]

    static var world: Communicator { Communicator.world }

    /// A model or classifier argument (anything with parameters).
    static func module(_ a: Arguments, _ i: Int32) throws -> Module {
        if let c = a.lua.object(i, metatable: Metatable.classifier, as: Classifier.self) { return c }
        return try ModelTable.model(a, i)
    }

    /// A 0-based root rank argument (default 0).
    static func root(_ a: Arguments, _ i: Int32) throws -> Int {
        let r = try a.int(i, default: 0)
        guard r >= 0 && r < world.size else {
            throw ScriptError("bad argument #\(i) (root must be a rank in 0..\(world.size - 1), got \(r))")
        }
        return r
    }

    static let functions: [(String, Binding)] = [
        ("rank", { a in a.lua.push(world.rank); return 1 }),
        ("size", { a in a.lua.push(world.size); return 1 }),
        ("barrier", { _ in world.barrier(); return 0 }),
        ("allreduce", { a in
            let t = try a.tensor(1)
            let op = try a.string(2, default: "sum")
            guard op == "sum" || op == "mean" else {
                throw ScriptError("bad argument #2 (\"sum\" or \"mean\" expected, got \"\(op)\")")
            }
            try world.allreduce(t, mean: op == "mean")
            a.lua.pushValue(1)
            return 1
        }),
        ("broadcast", { a in
            let t = try a.tensor(1)
            try world.broadcast(t, root: try root(a, 2))
            a.lua.pushValue(1)
            return 1
        }),
        ("any", { a in a.lua.push(world.any(try a.bool(1))); return 1 }),
        ("gather", { a in
            let t = try a.optionalTensor(1)
            guard let parts = try world.gather(t, root: try root(a, 2)) else { a.lua.pushNil(); return 1 }
            a.lua.newTable(array: parts.count)
            for (k, p) in parts.enumerated() { TensorTable.push(a.lua, p); a.lua.setIndex(-2, k + 1) }
            return 1
        }),
        ("shard", { a in
            let n = try a.int(1)
            guard n >= 0 else { throw ScriptError("bad argument #1 (a count >= 0 expected, got \(n))") }
            let r = world.share(of: n)
            a.lua.push(r.lowerBound + 1)
            a.lua.push(r.count)
            return 2
        }),
        ("broadcast_parameters", { a in
            try world.broadcastParameters(try module(a, 1).parameters, root: try root(a, 2))
            return 0
        }),
        ("allreduce_gradients", { a in
            let scale = try a.number(2, default: 1)
            guard scale.isFinite else { throw ScriptError("bad argument #2 (a finite scale expected, got \(scale))") }
            a.lua.push(try world.sumGradients(try module(a, 1).parameters, scale: Float(scale)))
            return 1
        }),
        ("check", { a in
            try world.requireSame(try a.string(1), try a.string(2))
            return 0
        }),
    ]
}
