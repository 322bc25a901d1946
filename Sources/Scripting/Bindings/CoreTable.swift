import Autograd
import CLua
import Foundation

/// Functions on `ddpm` itself: `seed`, `no_grad`, `precision` (the products' fp32 or bf16),
/// `bf16_available`, `interrupted`, `clock`, `progress` (and the Progress userdata), `absolute_path`.
enum CoreTable {
    static let tables = [LuaTable(topLevel: topLevel, classes: [progressClass])]

    static let topLevel: [(String, Binding)] = [
        ("seed", { a in
            let n = try a.int(1)
            Generator.global = Generator(seed: UInt64(bitPattern: Int64(n)))
            return 0
        }),
        ("no_grad", { a in
            let f = try a.function(1)
            let lua = a.lua
            let before = lua.top
            try withNoGrad {
                lua.pushValue(f)
                try lua.call(arguments: 0, results: LUA_MULTRET)
            }
            return lua.top - before
        }),
        ("precision", { a in
            if a.has(1) { try Precision.set(named: try a.string(1)) }
            a.lua.push(Precision.current.rawValue)
            return 1
        }),
        ("bf16_available", { a in a.lua.push(Precision.hardwareBF16); return 1 }),
        ("interrupted", { a in a.lua.push(Interrupts.received != 0); return 1 }),
        ("clock", { a in a.lua.push(Double(DispatchTime.now().uptimeNanoseconds) / 1e9); return 1 }),
        ("absolute_path", { a in
            let path = try a.string(1)
            guard !path.isEmpty else { throw a.bad(1, "path") }
            a.lua.push(URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path)
            return 1
        }),
        ("progress", { a in
            let p = Progress(
                total: try a.int(1), label: try a.string(2, default: "progress"), startCount: try a.int(3, default: 0))
            a.lua.pushObject(p, metatable: Metatable.progress)
            return 1
        }),
    ]

    static func progress(_ a: Arguments) throws -> Progress {
        try a.object(1, Metatable.progress, Progress.self, "progress")
    }

    static let progressClass = LuaClass(
        metatable: Metatable.progress, display: "Progress",
        methods: [
            ("update", { a in
                let p = try progress(a)
                p.update(try a.int(2, default: p.done + 1), info: a.lua.string(3))
                return 0
            }),
            ("close", { a in
                let p = try progress(a)
                if p.done < p.total { p.update(p.total, info: nil) }
                return 0
            }),
        ])
}
