import Scripting

/// The entry point of the Lua C module (the dynamic library `libDDPMLua.so`, installed as
/// `ddpm.so`): `require "ddpm"` in a stock `lua5.4` finds it through LUA_CPATH and gets the
/// same `ddpm` table the `ddpm` host installs.
@_cdecl("luaopen_ddpm")
public func luaopenDDPM(_ L: OpaquePointer?) -> Int32 {
    guard let L else { return 0 }
    return LuaHost.openModule(L)
}
