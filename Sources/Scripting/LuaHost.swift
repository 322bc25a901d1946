import Autograd
import CLua
import Foundation

/// One Lua state with the standard libraries and the `ddpm` module. The only place that loads
/// and runs Lua code.
///
///     let host = try LuaHost()
///     try host.run(file: "scripts/train.lua", arguments: ["--steps", "10"])
public final class LuaHost {
    let L: OpaquePointer
    var lua: Lua { Lua(L: L) }

    public init() throws {
        guard let state = luaL_newstate() else { throw ScriptError("cannot create a Lua state (out of memory)") }
        L = state
        luaL_openlibs(L)
        LuaHost.pushModule(L)
        // package.loaded.ddpm = ddpm, so `require "ddpm"` works too.
        _ = lua_getglobal(L, "package")
        lua.getField(-1, "loaded")
        lua.pushValue(-3)
        lua.setField(-2, "ddpm")
        lua.pop(3)
    }

    /// `luaopen_ddpm` of the Lua C module (the LuaModule target): installs the module into a
    /// stock Lua 5.4 state as the host does and leaves it on the stack for `require`.
    public static func openModule(_ L: OpaquePointer) -> Int32 {
        pushModule(L)
        return 1
    }

    deinit { lua_close(L) }

    /// The bundled recipes: $DDPM_SCRIPTS, else a `scripts/` or `share/ddpm/scripts/` folder in an
    /// ancestor of the executable (the repository when run from .build/, the prefix of
    /// `scripts/install.sh --prefix DIR` when run as DIR/bin/ddpm), else ./scripts.
    public static func scriptsDirectory() -> String {
        let fm = FileManager.default
        if let env = ProcessInfo.processInfo.environment["DDPM_SCRIPTS"], !env.isEmpty { return env }
        // /proc/self/exe: argv[0] is a bare name when the binary is found through PATH
        let exe = (try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments.first ?? "."
        var dir = URL(fileURLWithPath: exe).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<6 {
            for sub in ["scripts", "share/ddpm/scripts"] {
                let candidate = dir.appendingPathComponent(sub)
                if fm.fileExists(atPath: candidate.appendingPathComponent("train.lua").path) { return candidate.path }
            }
            dir.deleteLastPathComponent()
        }
        return fm.currentDirectoryPath + "/scripts"
    }

    /// Every table of the `ddpm` module, one per file of Bindings/.
    static let tables: [LuaTable] = CoreTable.tables + TensorTable.tables + ModelTable.tables
        + ScheduleTable.tables + SampleTable.tables + ImageTable.tables + DataTable.tables + OptimTable.tables
        + SafeTensorsTable.tables + MetricsTable.tables + DistTable.tables + PluginsTable.tables

    /// Pushes the `ddpm` module table (every table of `tables`, the userdata metatables,
    /// `version`) and sets it as the global `ddpm` too (the bundled scripts/lib use the global).
    static func pushModule(_ L: OpaquePointer) {
        let lua = Lua(L: L)
        lua.newTable()
        let d = Int32(lua.top)
        for table in LuaHost.tables {
            lua.setFunctions(d, prefix: "ddpm.", table.topLevel)
            if let name = table.name {
                lua.newTable()
                lua.setFunctions(-1, prefix: "ddpm.\(name).", table.functions)
                lua.setField(d, name)
            }
            for cls in table.classes { cls.install(lua) }
        }
        lua.push("1"); lua.setField(d, "version")
        lua.pushValue(d)
        lua_setglobal(L, "ddpm")
    }

    /// Prepends folders to package.path.
    func addSearchPaths(_ folders: [String]) {
        _ = lua_getglobal(L, "package")
        lua.getField(-1, "path")
        let old = lua.string(-1) ?? ""
        lua.pop()
        lua.push(folders.map { "\($0)/?.lua" }.joined(separator: ";") + ";" + old)
        lua.setField(-2, "path")
        lua.pop()
    }

    /// Runs a script file with `arguments` (as the `arg` table and as `...`). Errors carry
    /// `file:line: message` and a traceback.
    public func run(file path: String, arguments: [String] = []) throws {
        guard FileManager.default.fileExists(atPath: path) else {
            throw ScriptError("\(path): no such script")
        }
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        addSearchPaths([dir, LuaHost.scriptsDirectory()])
        lua.newTable(array: arguments.count, hash: 1)
        lua.push(path); lua.setIndex(-2, 0)
        for (i, s) in arguments.enumerated() { lua.push(s); lua.setIndex(-2, i + 1) }
        lua_setglobal(L, "arg")
        guard luaL_loadfilex(L, path, nil) == LUA_OK else {
            let msg = lua.string(-1) ?? "cannot load \(path)"
            lua.pop()
            throw ScriptError(msg)
        }
        for s in arguments { lua.push(s) }
        try lua.call(arguments: Int32(arguments.count), results: 0)
    }

    /// Runs a chunk of Lua source (tests, `-e`).
    public func run(code: String, name: String = "=(code)") throws {
        let status = code.withCString { luaL_loadbufferx(L, $0, strlen($0), name, nil) }
        guard status == LUA_OK else {
            let msg = lua.string(-1) ?? "cannot load \(name)"
            lua.pop()
            throw ScriptError(msg)
        }
        try lua.call(arguments: 0, results: 0)
    }

    /// The value of a global after a run (tests): numbers, strings and booleans as Swift values.
    public func global(_ name: String) -> Any? {
        _ = lua_getglobal(L, name)
        defer { lua.pop() }
        switch lua.type(-1) {
        case LUA_TNUMBER: return lua.number(-1)
        case LUA_TSTRING: return lua.string(-1)
        case LUA_TBOOLEAN: return lua.bool(-1)
        case LUA_TUSERDATA: return lua.object(-1, metatable: Metatable.tensor, as: Tensor.self)
        default: return nil
        }
    }
}
