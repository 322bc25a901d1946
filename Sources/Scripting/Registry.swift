import Autograd
import CLua

/// A Swift function callable from Lua: reads its arguments, pushes its results, returns their
/// number. Throwing is how it fails; the trampoline turns that into a Lua error.
typealias Binding = @Sendable (Arguments) throws -> Int

/// Metatable names of the userdata types.
enum Metatable {
    static let tensor = "ddpm.Tensor"
    static let model = "ddpm.Model"
    static let classifier = "ddpm.Classifier"
    static let schedule = "ddpm.Schedule"
    static let adam = "ddpm.Adam"
    static let ema = "ddpm.EMA"
    static let dataset = "ddpm.Dataset"
    static let gif = "ddpm.Gif"
    static let progress = "ddpm.Progress"
    static let samplerContext = "ddpm.SamplerContext"
    static let runLock = "ddpm.RunLock"
}

/// What one file of Bindings/ adds to the `ddpm` module: the functions of its table
/// `ddpm.<name>` (none when `name` is nil), functions set on `ddpm` itself, and the userdata
/// types its functions create.
struct LuaTable: Sendable {
    var name: String? = nil
    var functions: [(String, Binding)] = []
    var topLevel: [(String, Binding)] = []
    var classes: [LuaClass] = []
}

/// Every binding of the process, by id; a Lua closure holds its id as an upvalue.
enum Registry {
    /// Global because the dispatcher is a C function pointer (no context) that finds a binding by
    /// the id its Lua closure holds. Lua states are used from one thread at a time, and bindings
    /// are only appended (when a state installs the module), never removed.
    nonisolated(unsafe) static var bindings: [(name: String, body: Binding)] = []

    static func add(_ name: String, _ body: @escaping Binding) -> Int {
        bindings.append((name, body))
        return bindings.count - 1
    }
}

/// Called by the C trampoline: runs binding `id`; on a thrown error pushes "name: message" and
/// returns -1 so the trampoline raises it once this Swift frame is gone (-2 and the message
/// unchanged for an error raised by Lua code the binding called).
let dispatch: ddpm_swift_dispatch = { state, id in
    guard let state else { return 0 }
    let lua = Lua(L: state)
    let index = Int(id)
    guard index >= 0 && index < Registry.bindings.count else {
        lua.push("ddpm: unknown binding \(id)")
        return -1
    }
    let (name, body) = Registry.bindings[index]
    do {
        return Int32(try body(Arguments(lua: lua)))
    } catch let e as ScriptError where e.raisedByLua {
        lua.push(e.message)
        return -2
    } catch {
        let message = (error as? ScriptError)?.message ?? (error as? TensorError)?.message ?? "\(error)"
        // Operators (name "") report the core's message, which already names the op.
        lua.push(name.isEmpty || message.hasPrefix(name) ? message : "\(name): \(message)")
    }
    return -1
}

extension Lua {
    /// Pushes a Lua function that runs `body`.
    func pushFunction(_ name: String, _ body: @escaping Binding) {
        ddpm_push_binding(L, lua_Integer(Registry.add(name, body)), dispatch)
    }

    /// Pushes a Lua function that runs binding `id` (from `Registry.add`) with the value on top
    /// of the stack (popped) bound to it; the binding finds that value at `Lua.boundValue`.
    func pushBound(_ id: Int) { ddpm_push_bound_binding(L, lua_Integer(id), dispatch) }

    /// Where a binding pushed by `pushBound` finds its bound value.
    static var boundValue: Int32 { ddpm_lua_upvalueindex(3) }

    /// Sets table[key] = function for each entry (table at `table`).
    func setFunctions(_ table: Int32, prefix: String, _ functions: [(String, Binding)]) {
        let t = absolute(table)
        for (key, body) in functions {
            pushFunction("\(prefix)\(key)", body)
            setField(t, key)
        }
    }
}

/// A userdata type: methods (obj:name()), metamethods (__add, __tostring, ...), and optional
/// properties read by `obj.name` and written by `obj.name = v`.
struct LuaClass: Sendable {
    let metatable: String
    let display: String  // "Tensor": prefix of method names in messages ("Tensor:sum")
    var methods: [(String, Binding)] = []
    var metamethods: [(String, Binding)] = []
    var getters: [String: Binding] = [:]
    var setters: [String: Binding] = [:]

    /// Creates the metatable in the registry. `__index` looks up methods, then getters.
    func install(_ lua: Lua) {
        _ = luaL_newmetatable(lua.L, metatable)
        let mt = lua.top
        lua.newTable()
        lua.setFunctions(-1, prefix: "\(display):", methods)
        lua.setField(Int32(mt), "__methods")
        for (key, body) in metamethods {
            lua.pushFunction(key == "__tostring" || key == "__len" || key == "__call" ? "\(display) \(key)" : "", body)
            lua.setField(Int32(mt), key)
        }
        lua.pushFunction("\(display) __gc") { a in a.lua.releaseObject(1); return 0 }
        lua.setField(Int32(mt), "__gc")
        let getters = self.getters, setters = self.setters, display = self.display
        lua.pushFunction("\(display).__index") { a in
            let lua = a.lua
            if let key = lua.string(2) {
                if lua_getmetatable(lua.L, 1) != 0 {
                    lua.getField(-1, "__methods")
                    if lua.getField(-1, key) != LUA_TNIL { return 1 }
                    lua.pop(3)
                }
                if let getter = getters[key] { return try getter(a) }
            }
            lua.pushNil()
            return 1
        }
        lua.setField(Int32(mt), "__index")
        lua.pushFunction("\(display).__newindex") { a in
            guard let key = a.lua.string(2), let setter = setters[key] else {
                throw ScriptError("cannot set field \(a.lua.describe(2)) of a \(display)")
            }
            return try setter(a)
        }
        lua.setField(Int32(mt), "__newindex")
        lua.pop()
    }
}
