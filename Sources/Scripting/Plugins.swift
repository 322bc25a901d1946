import CLua
import Foundation

/// What a plugin adds: a sampler (`ddpm sample --sampler NAME`) or a noise schedule
/// (`ddpm train --schedule NAME`).
public enum PluginKind: String, Sendable, CaseIterable {
    case sampler, schedule

    /// The folder holding this kind's files, under each plugin folder and under scripts/.
    var folder: String { rawValue + "s" }

    /// The names the host implements itself, with their one-line descriptions (listing order).
    var natives: [(name: String, description: String)] {
        switch self {
        case .sampler:
            return [("ddpm", "ancestral DDPM over every timestep of the schedule (stochastic)"),
                    ("ddim", "DDIM, evenly spaced timesteps ending at t = 0 (deterministic at eta 0)")]
        case .schedule:
            return [("linear", "betas linear from 1e-4 to 0.02 (the DDPM paper's)"),
                    ("cosine", "Nichol & Dhariwal's cosine alpha-bar"),
                    ("sigmoid", "betas along a sigmoid from 1e-4 to 0.02")]
        }
    }
}

/// One place a name can come from.
public struct PluginEntry: Sendable, Equatable {
    public let name: String
    /// "file" (a path given), "$DDPM_PLUGINS", "bundled" or "native".
    public let source: String
    /// The Lua file; nil for a native.
    public let path: String?
}

/// Samplers and schedules found by name. A name resolves, in this order, to: a path ending in
/// .lua (absolute or relative to the working directory); NAME.lua in samplers/ (schedules/)
/// under each folder of $DDPM_PLUGINS (colon-separated, first wins); the bundled
/// scripts/samplers/NAME.lua (scripts/schedules/NAME.lua); a native name.
public enum Plugins {
    /// The folders searched for `kind`'s files, in lookup order.
    public static func folders(_ kind: PluginKind) -> [(path: String, source: String)] {
        var out: [(String, String)] = []
        let env = ProcessInfo.processInfo.environment["DDPM_PLUGINS"] ?? ""
        for dir in env.split(separator: ":") where !dir.isEmpty {
            out.append(("\(dir)/\(kind.folder)", "$DDPM_PLUGINS"))
        }
        out.append(("\(LuaHost.scriptsDirectory())/\(kind.folder)", "bundled"))
        return out
    }

    /// Everything found for `kind`, in lookup order; a name found twice appears twice (the first
    /// one wins).
    public static func list(_ kind: PluginKind) -> [PluginEntry] {
        var out: [PluginEntry] = []
        for (dir, source) in folders(kind) {
            let files = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
            for file in files.sorted() where file.hasSuffix(".lua") && !file.hasPrefix(".") {
                out.append(PluginEntry(name: String(file.dropLast(4)), source: source, path: "\(dir)/\(file)"))
            }
        }
        for native in kind.natives { out.append(PluginEntry(name: native.name, source: "native", path: nil)) }
        return out
    }

    /// The entry `name` resolves to; an unknown name is an error listing every name found.
    public static func find(_ kind: PluginKind, _ name: String) throws -> PluginEntry {
        if name.hasSuffix(".lua") {
            guard FileManager.default.fileExists(atPath: name) else {
                throw ScriptError("\(kind.rawValue) file \(name): no such file")
            }
            let base = URL(fileURLWithPath: name).deletingPathExtension().lastPathComponent
            return PluginEntry(name: base, source: "file", path: name)
        }
        let all = list(kind)
        if let entry = all.first(where: { $0.name == name }) { return entry }
        var names: [String] = []
        for e in all where !names.contains(e.name) { names.append(e.name) }
        throw ScriptError("unknown \(kind.rawValue) '\(name)' (found: \(names.joined(separator: ", ")); or give a path "
                          + "ending in .lua)")
    }

    /// Pushes the plugin table of `entry`: the table its file returns, checked for `kind`'s
    /// fields, with `name`, `source` and `path` set; for a native, a table with `native` (its
    /// name), `name`, `source` and `description`. A Lua error in the file is raised as it is
    /// (it names the file's line).
    static func load(_ lua: Lua, _ kind: PluginKind, _ entry: PluginEntry) throws {
        guard let path = entry.path else {
            lua.newTable(hash: 4)
            lua.push(entry.name); lua.setField(-2, "native")
            lua.push(entry.name); lua.setField(-2, "name")
            lua.push("native"); lua.setField(-2, "source")
            lua.push(kind.natives.first { $0.name == entry.name }?.description ?? ""); lua.setField(-2, "description")
            return
        }
        guard luaL_loadfilex(lua.L, path, nil) == LUA_OK else {
            let message = lua.string(-1) ?? "cannot load \(path)"
            lua.pop()
            throw ScriptError(message, raisedByLua: true)
        }
        try lua.call(arguments: 0, results: 1)
        guard lua.type(-1) == LUA_TTABLE else {
            let got = lua.describe(-1)
            lua.pop()
            throw ScriptError("\(kind.rawValue) plugin \(path) must return a table, got \(got)")
        }
        do {
            try check(lua, kind, path)
        } catch {
            lua.pop()
            throw error
        }
        lua.push(entry.name); lua.setField(-2, "name")
        lua.push(entry.source); lua.setField(-2, "source")
        lua.push(path); lua.setField(-2, "path")
    }

    /// Checks the fields of the plugin table on top of the stack.
    static func check(_ lua: Lua, _ kind: PluginKind, _ path: String) throws {
        func field(_ key: String, _ types: [Int32], _ expected: String) throws {
            let type = lua.getField(-1, key)
            defer { lua.pop() }
            guard types.contains(type) else {
                throw ScriptError("\(kind.rawValue) plugin \(path): field \(key) must be \(expected), "
                                  + "got \(lua.describe(-1))")
            }
        }
        try field("description", [LUA_TNIL, LUA_TSTRING], "a string")
        switch kind {
        case .sampler:
            try field("sample", [LUA_TFUNCTION], "a function sample(ctx) returning the images")
            if lua.getField(-1, "default_steps") != LUA_TNIL {
                let steps = lua.number(-1)
                let bad = steps.map { !($0 >= 1 && $0 == $0.rounded() && $0 < 1e9) } ?? true
                if bad {
                    let got = lua.describe(-1)
                    lua.pop()
                    throw ScriptError("sampler plugin \(path): field default_steps must be an integer >= 1, got \(got)")
                }
            }
            lua.pop()
            if lua.getField(-1, "default_eta") != LUA_TNIL {
                let eta = lua.number(-1)
                if !(eta.map { $0 >= 0 && $0.isFinite } ?? false) {
                    let got = lua.describe(-1)
                    lua.pop()
                    throw ScriptError("sampler plugin \(path): field default_eta must be a number >= 0, got \(got)")
                }
            }
            lua.pop()
            try field("calls", [LUA_TNIL, LUA_TFUNCTION], "a function calls(steps, options)")
        case .schedule:
            try field("betas", [LUA_TNIL, LUA_TFUNCTION], "a function betas(steps)")
            try field("alpha_bar", [LUA_TNIL, LUA_TFUNCTION], "a function alpha_bar(u)")
            try field("max_beta", [LUA_TNIL, LUA_TNUMBER], "a number")
            let hasBetas = lua.getField(-1, "betas") != LUA_TNIL
            let hasAlphaBar = lua.getField(-2, "alpha_bar") != LUA_TNIL
            lua.pop(2)
            guard hasBetas || hasAlphaBar else {
                throw ScriptError("schedule plugin \(path): needs a function betas(steps) or alpha_bar(u)")
            }
        }
    }
}
