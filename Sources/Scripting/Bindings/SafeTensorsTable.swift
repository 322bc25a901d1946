import Autograd
import CLua
import Foundation
import Storage

/// `ddpm.safetensors.*` and `ddpm.sha256`: weights files and their provenance hash.
enum SafeTensorsTable {
    static let tables = [LuaTable(name: "safetensors", functions: functions, topLevel: [
        ("sha256", { a in a.lua.push(try SHA256.hex(ofFile: try a.string(1))); return 1 }),
    ])]

    /// A `name -> tensor` table at `i` (values must be tensors).
    static func tensorTable(_ a: Arguments, _ i: Int32) throws -> [(String, Tensor)] {
        let t = try a.table(i)
        var out: [(String, Tensor)] = []
        try a.lua.forEachPair(t) {
            guard let k = a.lua.string(-2) else {
                throw ScriptError("bad argument #\(i) (keys must be strings, got \(a.lua.describe(-2)))")
            }
            guard let v = a.lua.object(-1, metatable: Metatable.tensor, as: Tensor.self) else {
                throw ScriptError("bad argument #\(i) (\(k) must be a tensor, got \(a.lua.describe(-1)))")
            }
            out.append((k, v))
        }
        return out.sorted { $0.0 < $1.0 }
    }

    /// A `string -> string|number|boolean` table -> metadata strings.
    static func metadata(_ a: Arguments, _ i: Int32) throws -> [String: String] {
        guard a.has(i) else { return [:] }
        let t = try a.table(i)
        var out: [String: String] = [:]
        try a.lua.forEachPair(t) {
            guard let k = a.lua.string(-2) else {
                throw ScriptError("bad argument #\(i) (metadata keys must be strings)")
            }
            switch a.lua.type(-1) {
            case LUA_TSTRING: out[k] = a.lua.string(-1)
            case LUA_TNUMBER: out[k] = a.lua.describe(-1)
            case LUA_TBOOLEAN: out[k] = (a.lua.bool(-1) ?? false) ? "true" : "false"
            default:
                throw ScriptError("bad argument #\(i) (metadata value for \(k) must be a string, number or boolean, "
                    + "got \(a.lua.describe(-1)))")
            }
        }
        return out
    }

    static func pushStringTable(_ lua: Lua, _ d: [String: String]) {
        lua.newTable(hash: d.count)
        for (k, v) in d { lua.push(v); lua.setField(-2, k) }
    }

    static let functions: [(String, Binding)] = [
        ("read", { a in
            let f = try SafeTensors.read(try a.string(1))
            a.lua.newTable(hash: f.tensors.count)
            for (k, t) in f.tensors { TensorTable.push(a.lua, t); a.lua.setField(-2, k) }
            return 1
        }),
        ("write", { a in
            let path = try a.string(1)
            try SafeTensors(tensors: try tensorTable(a, 2).map { ($0.0, $0.1) }, metadata: try metadata(a, 3))
                .write(path)
            return 0
        }),
        ("metadata", { a in pushStringTable(a.lua, try SafeTensors.inspect(try a.string(1)).metadata); return 1 }),
    ]

}
