import Autograd
import CLua
import Layers

/// Typed, non-raising reading of a binding's arguments. Every failure is a ScriptError naming
/// the argument, what was expected and what came.
struct Arguments {
    let lua: Lua
    var count: Int { lua.top }

    func bad(_ i: Int32, _ expected: String) -> ScriptError {
        ScriptError("bad argument #\(i) (\(expected) expected, got \(lua.describe(i)))")
    }

    func has(_ i: Int32) -> Bool { Int(i) <= count && !lua.isNil(i) }

    func tensor(_ i: Int32) throws -> Tensor {
        guard let t = lua.object(i, metatable: Metatable.tensor, as: Tensor.self) else { throw bad(i, "tensor") }
        return t
    }

    func optionalTensor(_ i: Int32) throws -> Tensor? { has(i) ? try tensor(i) : nil }

    /// A tensor, or a number promoted to a 0-d tensor (for `x + 1` style arithmetic).
    func tensorOrNumber(_ i: Int32) throws -> Tensor {
        if let n = lua.number(i) { return .scalar(Float(n)) }
        return try tensor(i)
    }

    func object<T: AnyObject>(_ i: Int32, _ metatable: String, _ type: T.Type, _ what: String) throws -> T {
        guard let o = lua.object(i, metatable: metatable, as: T.self) else { throw bad(i, what) }
        return o
    }

    func number(_ i: Int32, default d: Double? = nil) throws -> Double {
        if let v = lua.number(i) { return v }
        if !has(i), let d { return d }
        throw bad(i, "number")
    }

    func int(_ i: Int32, default d: Int? = nil) throws -> Int {
        if let v = lua.number(i) {
            guard let k = exactInteger(v) else { throw bad(i, "integer") }
            return k
        }
        if !has(i), let d { return d }
        throw bad(i, "integer")
    }

    func string(_ i: Int32, default d: String? = nil) throws -> String {
        if let s = lua.string(i) { return s }
        if !has(i), let d { return d }
        throw bad(i, "string")
    }

    func bool(_ i: Int32, default d: Bool? = nil) throws -> Bool {
        if let b = lua.bool(i) { return b }
        if !has(i), let d { return d }
        throw bad(i, "boolean")
    }

    func table(_ i: Int32) throws -> Int32 {
        guard lua.type(i) == LUA_TTABLE else { throw bad(i, "table") }
        return lua.absolute(i)
    }

    func optionalTable(_ i: Int32) throws -> Options? {
        guard has(i) else { return nil }
        return Options(lua: lua, index: try table(i), argument: i)
    }

    func options(_ i: Int32) throws -> Options {
        try optionalTable(i) ?? Options(lua: lua, index: nil, argument: i)
    }

    func function(_ i: Int32) throws -> Int32 {
        guard lua.type(i) == LUA_TFUNCTION else { throw bad(i, "function") }
        return lua.absolute(i)
    }

    /// A shape: a table of non-negative integers, e.g. {64, 1, 32, 32}.
    func shape(_ i: Int32) throws -> [Int] {
        guard lua.type(i) == LUA_TTABLE else { throw bad(i, "shape table such as {2, 3}") }
        let shape = try readIntegers(lua, i, what: "shape")
        if let bad = shape.first(where: { $0 < 0 }) {
            throw ScriptError("bad argument #\(i) (shape entries must be >= 0, got \(bad))")
        }
        _ = try Shape.checkedAllocation(shape, op: "shape")
        return shape
    }

    /// Timesteps or labels: a number (every sample), a table or a tensor with one entry per sample.
    func integers(_ i: Int32, count n: Int, what: String) throws -> [Int] {
        try integerList(lua, i, count: n, what: what, argument: "argument #\(i)")
    }

    /// Labels (see `labelList`): a number, a table or a tensor with one entry per sample.
    func labels(_ i: Int32, count n: Int) throws -> [Label] {
        try labelList(lua, i, count: n, what: "labels", argument: "argument #\(i)")
    }

    func floats(_ i: Int32) throws -> [Float] {
        guard lua.type(i) == LUA_TTABLE else { throw bad(i, "table of numbers") }
        var out: [Float] = []
        for k in 1...max(lua.length(i), 1) where k <= lua.length(i) {
            lua.getIndex(i, k)
            defer { lua.pop() }
            guard let v = lua.number(-1) else {
                throw ScriptError("bad argument #\(i) (entry \(k) must be a number, got \(lua.describe(-1)))")
            }
            out.append(Float(v))
        }
        return out
    }
}

/// Reads the entries of an integer table at `i`.
func readIntegers(_ lua: Lua, _ i: Int32, what: String) throws -> [Int] {
    let n = lua.length(i)
    var out: [Int] = []
    out.reserveCapacity(n)
    for k in 0..<n {
        lua.getIndex(i, k + 1)
        defer { lua.pop() }
        guard let v = lua.number(-1).flatMap(exactInteger) else {
            throw ScriptError("\(what) entry \(k + 1) must be an integer, got \(lua.describe(-1))")
        }
        out.append(v)
    }
    return out
}

/// A number (repeated n times), a table or a tensor of integers with n entries.
func integerList(_ lua: Lua, _ i: Int32, count n: Int, what: String, argument: String) throws -> [Int] {
    if let v = lua.number(i) {
        guard let k = exactInteger(v) else { throw ScriptError("\(what) must be integers, got \(lua.describe(i))") }
        return [Int](repeating: k, count: n)
    }
    var values: [Int]
    if lua.type(i) == LUA_TTABLE {
        values = try readIntegers(lua, i, what: what)
    } else if let t = lua.object(i, metatable: Metatable.tensor, as: Tensor.self) {
        values = try t.values.map {
            guard let k = exactInteger(Double($0)) else { throw ScriptError("\(what) must be integers, got \($0)") }
            return k
        }
    } else {
        throw ScriptError("bad \(argument) (\(what): number, table or tensor expected, got \(lua.describe(i)))")
    }
    guard values.count == n else {
        throw ScriptError("\(what): \(values.count) entries for a batch of \(n)")
    }
    return values
}

/// Labels, one per sample: what `integerList` reads, or a table whose entries may also be
/// blends of two classes, `{a, b, w}` or `{from = a, to = b, w = w}`: (1 - w) embed(a) + w embed(b).
func labelList(_ lua: Lua, _ i: Int32, count n: Int, what: String, argument: String) throws -> [Label] {
    guard lua.type(i) == LUA_TTABLE else {
        return try integerList(lua, i, count: n, what: what, argument: argument).map { Label($0) }
    }
    let table = lua.absolute(i)
    var out: [Label] = []
    for k in 0..<lua.length(table) {
        lua.getIndex(table, k + 1)
        defer { lua.pop() }
        if let v = lua.number(-1), let label = exactInteger(v) {
            out.append(Label(label))
        } else if lua.type(-1) == LUA_TTABLE {
            out.append(try blend(lua, lua.absolute(-1), what: "\(what) entry \(k + 1)"))
        } else {
            throw ScriptError("\(what) entry \(k + 1) must be an integer or a blend {a, b, w}, "
                              + "got \(lua.describe(-1))")
        }
    }
    guard out.count == n else { throw ScriptError("\(what): \(out.count) entries for a batch of \(n)") }
    return out
}

/// A blend label `{a, b, w}` or `{from = a, to = b, w = w}` at table index `t`.
private func blend(_ lua: Lua, _ t: Int32, what: String) throws -> Label {
    func field(_ key: String, _ position: Int) -> Double? {
        lua.getField(t, key)
        defer { lua.pop() }
        if !lua.isNil(-1) { return lua.number(-1) }
        lua.getIndex(t, position)
        defer { lua.pop() }
        return lua.number(-1)
    }
    let form = "a blend {a, b, w} or {from = a, to = b, w = w} (w a number, a and b labels)"
    guard let a = field("from", 1).flatMap(exactInteger), let b = field("to", 2).flatMap(exactInteger),
          let w = field("w", 3), w.isFinite else {
        throw ScriptError("\(what) must be \(form)")
    }
    return Label(from: a, to: b, weight: Float(w))
}

/// A Lua number that is a whole number within +-9e15 (beyond, doubles skip integers) as an Int;
/// nil for fractions, NaN, infinities and huge values. Every number a script passes as an
/// integer goes through this check, so no conversion traps.
func exactInteger(_ v: Double) -> Int? {
    guard v == v.rounded(), Swift.abs(v) < 9e15 else { return nil }
    return Int(v)
}

/// The fields of an options table such as `{steps=50, eta=0}`. Missing table = all defaults.
struct Options {
    let lua: Lua
    let index: Int32?
    let argument: Int32

    /// Throws naming every field not in `known` (a typo in a config table is an error, not a default).
    func rejectUnknown(_ known: Set<String>, what: String) throws {
        guard let index else { return }
        var unknown: [String] = []
        try lua.forEachPair(index) {
            guard let k = lua.string(-2) else {
                throw ScriptError("bad argument #\(argument) (\(what) keys must be strings)")
            }
            if !known.contains(k) { unknown.append(k) }
        }
        if !unknown.isEmpty {
            throw ScriptError(
                "unknown \(what) field(s) \(unknown.sorted().joined(separator: ", "))"
                    + " (known: \(known.sorted().joined(separator: ", ")))")
        }
    }

    /// Pushes the field's value and runs `body`; pops afterwards. Returns nil when absent/nil.
    private func with<T>(_ key: String, _ body: () throws -> T?) rethrows -> T? {
        guard let index else { return nil }
        lua.getField(index, key)
        defer { lua.pop() }
        if lua.isNil(-1) { return nil }
        return try body()
    }

    func bad(_ key: String, _ expected: String) -> ScriptError {
        lua.getField(index ?? 0, key)
        defer { lua.pop() }
        return ScriptError("option \(key): \(expected) expected, got \(lua.describe(-1))")
    }

    func has(_ key: String) -> Bool { with(key) { true } ?? false }

    func number(_ key: String) throws -> Double? {
        try with(key) { guard let v = lua.number(-1) else { throw bad(key, "number") }; return v }
    }

    func int(_ key: String) throws -> Int? {
        try with(key) {
            guard let v = lua.number(-1).flatMap(exactInteger) else { throw bad(key, "integer") }
            return v
        }
    }

    func string(_ key: String) throws -> String? {
        try with(key) { guard let v = lua.string(-1) else { throw bad(key, "string") }; return v }
    }

    func bool(_ key: String) throws -> Bool? {
        try with(key) { guard let v = lua.bool(-1) else { throw bad(key, "boolean") }; return v }
    }

    func tensor(_ key: String) throws -> Tensor? {
        try with(key) {
            guard let t = lua.object(-1, metatable: Metatable.tensor, as: Tensor.self) else { throw bad(key, "tensor") }
            return t
        }
    }

    func object<T: AnyObject>(_ key: String, _ metatable: String, _ type: T.Type, _ what: String) throws -> T? {
        try with(key) {
            guard let o = lua.object(-1, metatable: metatable, as: T.self) else { throw bad(key, what) }
            return o
        }
    }

    func integers(_ key: String, count n: Int) throws -> [Int]? {
        try with(key) { try integerList(lua, -1, count: n, what: key, argument: "option \(key)") }
    }

    /// Labels, one per sample, blends allowed (see `labelList`).
    func labels(_ key: String, count n: Int) throws -> [Label]? {
        try with(key) { try labelList(lua, -1, count: n, what: key, argument: "option \(key)") }
    }

    /// Numbers, one per sample: a table or a tensor with n entries.
    func floats(_ key: String, count n: Int) throws -> [Float]? {
        try with(key) {
            let values: [Float]
            if let t = lua.object(-1, metatable: Metatable.tensor, as: Tensor.self) {
                values = t.values
            } else if lua.type(-1) == LUA_TTABLE {
                values = try (0..<lua.length(-1)).map { k in
                    lua.getIndex(-1, k + 1)
                    defer { lua.pop() }
                    guard let v = lua.number(-1) else {
                        throw ScriptError("option \(key): entry \(k + 1) must be a number, got \(lua.describe(-1))")
                    }
                    return Float(v)
                }
            } else {
                throw bad(key, "table or tensor of numbers")
            }
            guard values.count == n else {
                throw ScriptError("option \(key): \(values.count) entries for a batch of \(n)")
            }
            return values
        }
    }

    /// Pushes the field (a function) for the caller to use; returns its absolute index or nil.
    func pushFunction(_ key: String) throws -> Int32? {
        guard let index else { return nil }
        lua.getField(index, key)
        if lua.isNil(-1) { lua.pop(); return nil }
        guard lua.type(-1) == LUA_TFUNCTION else {
            let e = ScriptError("option \(key): function expected, got \(lua.describe(-1))")
            lua.pop()
            throw e
        }
        return lua.absolute(-1)
    }
}
