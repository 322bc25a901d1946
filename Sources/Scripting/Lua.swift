import Autograd
import CLua

/// A script-facing error: becomes a Lua error (with the caller's file:line) or, at top level,
/// the message `ddpm run` prints before exiting 1.
public struct ScriptError: Error, CustomStringConvertible {
    public let message: String
    /// A Lua error raised by Lua code a binding called (a plugin, a callback): its message
    /// already starts with that code's file:line and carries a traceback, so it is re-raised
    /// unchanged rather than prefixed with the binding's name and its caller's position.
    public let raisedByLua: Bool
    public init(_ message: String, raisedByLua: Bool = false) {
        self.message = message
        self.raisedByLua = raisedByLua
    }
    public var description: String { message }
}

/// A thin, non-raising view of a lua_State's stack. Only raw table access (no metamethods), so
/// no Lua error can start inside a Swift frame.
struct Lua {
    let L: OpaquePointer

    var top: Int { Int(lua_gettop(L)) }
    func type(_ i: Int32) -> Int32 { lua_type(L, i) }
    func typeName(_ i: Int32) -> String { String(cString: lua_typename(L, lua_type(L, i))) }
    func isNil(_ i: Int32) -> Bool { lua_type(L, i) <= LUA_TNIL }  // none or nil
    func pop(_ n: Int32 = 1) { ddpm_lua_pop(L, n) }
    func absolute(_ i: Int32) -> Int32 { lua_absindex(L, i) }

    // MARK: push

    func push(_ v: Double) { lua_pushnumber(L, v) }
    func push(_ v: Int) { lua_pushinteger(L, lua_Integer(v)) }
    func push(_ v: Bool) { lua_pushboolean(L, v ? 1 : 0) }
    func push(_ s: String) { _ = s.withCString { lua_pushstring(L, $0) } }
    func push(bytes: [UInt8]) {
        _ = bytes.withUnsafeBufferPointer { b in
            b.baseAddress.map { lua_pushlstring(L, $0, b.count) } ?? lua_pushstring(L, "")
        }
    }
    func pushNil() { lua_pushnil(L) }
    func newTable(array: Int = 0, hash: Int = 0) { lua_createtable(L, Int32(array), Int32(hash)) }

    /// t[key] = value on the table at `table` (value on top of the stack; popped).
    func setField(_ table: Int32, _ key: String) {
        let t = absolute(table)
        push(key)
        ddpm_lua_insert(L, -2)
        lua_rawset(L, t)
    }

    /// t[i] = value (value on top; popped).
    func setIndex(_ table: Int32, _ i: Int) { lua_rawseti(L, table, lua_Integer(i)) }

    /// Pushes t[key] (raw) and returns its Lua type.
    @discardableResult
    func getField(_ table: Int32, _ key: String) -> Int32 {
        let t = absolute(table)
        push(key)
        return lua_rawget(L, t)
    }

    @discardableResult
    func getIndex(_ table: Int32, _ i: Int) -> Int32 { lua_rawgeti(L, table, lua_Integer(i)) }

    func length(_ i: Int32) -> Int { Int(lua_rawlen(L, i)) }

    // MARK: read (nil when the value has another type)

    func number(_ i: Int32) -> Double? {
        guard type(i) == LUA_TNUMBER else { return nil }
        var ok: Int32 = 0
        let v = ddpm_lua_tonumber(L, i, &ok)
        return ok != 0 ? v : nil
    }

    func integer(_ i: Int32) -> Int? {
        guard type(i) == LUA_TNUMBER else { return nil }
        var v: lua_Integer = 0
        if ddpm_lua_isinteger_value(L, i, &v) != 0 { return Int(v) }
        return nil
    }

    func string(_ i: Int32) -> String? {
        guard type(i) == LUA_TSTRING, let p = ddpm_lua_tostring(L, i) else { return nil }
        return String(cString: p)
    }

    /// A string's bytes, NULs included (binary data such as pixels).
    func bytes(_ i: Int32) -> [UInt8]? {
        guard type(i) == LUA_TSTRING else { return nil }
        var n = 0
        guard let p = lua_tolstring(L, i, &n) else { return nil }
        return [UInt8](UnsafeRawBufferPointer(start: p, count: n))
    }

    func bool(_ i: Int32) -> Bool? { type(i) == LUA_TBOOLEAN ? lua_toboolean(L, i) != 0 : nil }

    /// The string form of any value, for messages (no metamethods).
    func describe(_ i: Int32) -> String {
        switch type(i) {
        case LUA_TNUMBER:
            return number(i).map { $0 == $0.rounded() && Swift.abs($0) < 1e15 ? String(Int($0)) : String($0) } ?? "?"
        case LUA_TSTRING: return "\"\(string(i) ?? "")\""
        case LUA_TBOOLEAN: return (bool(i) ?? false) ? "true" : "false"
        case LUA_TUSERDATA: return userdataTypeName(i) ?? "userdata"
        default: return typeName(i)
        }
    }

    /// Iterates a table's key/value pairs; `body` sees the key at -2 and the value at -1 and must
    /// leave the stack as it found it.
    func forEachPair(_ table: Int32, _ body: () throws -> Void) rethrows {
        let t = absolute(table)
        pushNil()
        while lua_next(L, t) != 0 {
            try body()
            pop()
        }
    }

    // MARK: userdata (retained Swift objects)

    /// Pushes `object` as full userdata with the named metatable (created by the module loader)
    /// and `userValues` Lua values attached (nil until set; a model keeps its schedule and objective).
    func pushObject(_ object: AnyObject, metatable: String, userValues: Int32 = 1) {
        let p = ddpm_lua_newuserdata(L, MemoryLayout<UnsafeMutableRawPointer>.size, userValues)
        p?.storeBytes(of: Unmanaged.passRetained(object).toOpaque(), as: UnsafeMutableRawPointer.self)
        _ = lua_getfield(L, ddpm_lua_registryindex(), metatable)
        lua_setmetatable(L, -2)
    }

    /// The object in the userdata at `i` if its metatable is `metatable`.
    func object<T: AnyObject>(_ i: Int32, metatable: String, as: T.Type) -> T? {
        guard type(i) == LUA_TUSERDATA, let p = luaL_testudata(L, i, metatable) else { return nil }
        let raw = p.load(as: UnsafeMutableRawPointer?.self)
        guard let raw else { return nil }
        return Unmanaged<AnyObject>.fromOpaque(raw).takeUnretainedValue() as? T
    }

    /// Releases the object of a userdata (its __gc); safe to call twice.
    func releaseObject(_ i: Int32) {
        guard let p = lua_touserdata(L, i) else { return }
        if let raw = p.load(as: UnsafeMutableRawPointer?.self) {
            Unmanaged<AnyObject>.fromOpaque(raw).release()
            p.storeBytes(of: nil, as: UnsafeMutableRawPointer?.self)
        }
    }

    /// The `__name` of a userdata's metatable (e.g. "ddpm.Tensor").
    func userdataTypeName(_ i: Int32) -> String? {
        guard lua_getmetatable(L, i) != 0 else { return nil }
        defer { pop() }
        guard getField(-1, "__name") == LUA_TSTRING else { pop(); return nil }
        defer { pop() }
        return string(-1)
    }

    // MARK: calling Lua from Swift

    /// Calls the function at `function` with `args` values already pushed above it, under
    /// lua_pcall with a traceback handler; returns `results` values on the stack or throws the
    /// message (with traceback).
    func call(arguments: Int32, results: Int32) throws {
        let base = top - Int(arguments)  // index of the function
        ddpm_push_traceback_handler(L)
        ddpm_lua_insert(L, Int32(base))
        let status = ddpm_lua_pcall(L, arguments, results, Int32(base))
        ddpm_lua_remove(L, Int32(base))
        if status != LUA_OK {
            let msg = string(-1) ?? "(error object is not a string)"
            pop()
            throw ScriptError(msg, raisedByLua: true)
        }
    }
}
