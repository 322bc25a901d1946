import CLua

/// `ddpm.plugins`: samplers and schedules found by name (`Plugins`), as the commands resolve
/// `--sampler` and `--schedule`.
enum PluginsTable {
    static let tables = [LuaTable(name: "plugins", functions: functions)]

    static func kind(_ a: Arguments, _ i: Int32 = 1) throws -> PluginKind {
        let s = try a.string(i)
        guard let k = PluginKind(rawValue: s.hasSuffix("s") ? String(s.dropLast()) : s) else {
            throw ScriptError("bad argument #\(i) (\"sampler\" or \"schedule\" expected, got \(a.lua.describe(i)))")
        }
        return k
    }

    static func pushEntry(_ lua: Lua, _ e: PluginEntry) {
        lua.newTable(hash: 4)
        lua.push(e.name); lua.setField(-2, "name")
        lua.push(e.source); lua.setField(-2, "source")
        if let p = e.path { lua.push(p); lua.setField(-2, "path") }
    }

    static let functions: [(String, Binding)] = [
        // list(kind) -> every entry found, in lookup order, each with its description (or the
        // error loading it) and `shadowed` when an earlier entry has its name.
        ("list", { a in
            let k = try kind(a)
            let lua = a.lua
            let entries = Plugins.list(k)
            lua.newTable(array: entries.count)
            var seen = Set<String>()
            for (i, e) in entries.enumerated() {
                pushEntry(lua, e)
                lua.push(seen.contains(e.name)); lua.setField(-2, "shadowed")
                seen.insert(e.name)
                do {
                    try Plugins.load(lua, k, e)
                    for key in ["description", "default_steps"] {
                        lua.getField(-1, key)
                        lua.setField(-3, key)
                    }
                    lua.pop()
                } catch {
                    let message = (error as? ScriptError)?.message ?? "\(error)"
                    lua.push(String(message.split(separator: "\n").first ?? "")); lua.setField(-2, "error")
                }
                lua.setIndex(-2, i + 1)
            }
            return 1
        }),
        // find(kind, name) -> the entry `name` resolves to, or nil and a message listing every name.
        ("find", { a in
            let k = try kind(a)
            do {
                pushEntry(a.lua, try Plugins.find(k, try a.string(2)))
                return 1
            } catch let e as ScriptError {
                a.lua.pushNil()
                a.lua.push(e.message)
                return 2
            }
        }),
        // load(kind, name) -> the plugin's table (see Plugins.load); errors on an unknown name.
        ("load", { a in
            let k = try kind(a)
            try Plugins.load(a.lua, k, try Plugins.find(k, try a.string(2)))
            return 1
        }),
    ]
}
