// Lua 5.4 for Swift. Swift cannot import Lua's function-like macros, and must never let a Lua
// error (longjmp) cross its frames, so this header (1) re-exports the macros it needs as static
// inline functions and (2) provides the trampoline that raises a binding's error after the Swift
// binding has returned.
#ifndef DDPM_CLUA_SHIM_H
#define DDPM_CLUA_SHIM_H
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <string.h>

// Macros Swift cannot import, one line each.
static inline int ddpm_lua_pcall(lua_State *L, int n, int r, int h) { return lua_pcall(L, n, r, h); }
static inline void ddpm_lua_pop(lua_State *L, int n) { lua_pop(L, n); }
static inline const char *ddpm_lua_tostring(lua_State *L, int i) { return lua_tostring(L, i); }
static inline void ddpm_lua_newtable(lua_State *L) { lua_newtable(L); }
static inline int ddpm_lua_registryindex(void) { return LUA_REGISTRYINDEX; }
static inline int ddpm_lua_upvalueindex(int i) { return lua_upvalueindex(i); }
static inline void ddpm_lua_insert(lua_State *L, int i) { lua_insert(L, i); }
static inline void ddpm_lua_remove(lua_State *L, int i) { lua_remove(L, i); }
static inline void *ddpm_lua_newuserdata(lua_State *L, size_t n, int uv) { return lua_newuserdatauv(L, n, uv); }
static inline int ddpm_lua_isinteger_value(lua_State *L, int i, lua_Integer *out) {
    int ok = 0; lua_Integer v = lua_tointegerx(L, i, &ok); if (ok) *out = v; return ok;
}
static inline lua_Number ddpm_lua_tonumber(lua_State *L, int i, int *ok) { return lua_tonumberx(L, i, ok); }

// A Swift binding: returns the number of results, -1 after pushing an error message, or -2
// after pushing an error that Lua code called by the binding raised (already positioned).
typedef int (*ddpm_swift_dispatch)(lua_State *L, lua_Integer id);

// Calls the Swift dispatcher (upvalue 2) for binding `id` (upvalue 1); on -1 raises the message
// it left on the stack as a Lua error prefixed with the calling script's file:line, on -2 raises
// it as it is (it names the file:line of the Lua code that failed).
static inline int ddpm_trampoline(lua_State *L) {
    lua_Integer id = lua_tointeger(L, lua_upvalueindex(1));
    ddpm_swift_dispatch f = (ddpm_swift_dispatch)lua_touserdata(L, lua_upvalueindex(2));
    int n = f(L, id);
    if (n >= 0) return n;
    if (n == -1) {
        luaL_where(L, 1);
        lua_insert(L, -2);
        lua_concat(L, 2);
    }
    return lua_error(L);
}

static inline void ddpm_push_binding(lua_State *L, lua_Integer id, ddpm_swift_dispatch f) {
    lua_pushinteger(L, id);
    lua_pushlightuserdata(L, (void *)f);
    lua_pushcclosure(L, ddpm_trampoline, 2);
}

// As ddpm_push_binding, with the value on top of the stack (popped) as upvalue 3: the binding
// reads it at lua_upvalueindex(3) (a sampling context's functions find their context there).
static inline void ddpm_push_bound_binding(lua_State *L, lua_Integer id, ddpm_swift_dispatch f) {
    lua_pushinteger(L, id);
    lua_insert(L, -2);
    lua_pushlightuserdata(L, (void *)f);
    lua_insert(L, -2);
    lua_pushcclosure(L, ddpm_trampoline, 3);
}

// Whether `msg` starts with the "source:line:" of a function on the stack: errors raised by
// code (runtime errors, error(msg), a binding's error) do; a plain message raised with
// error(msg, 0) (an input or usage error a recipe reports) does not.
static inline int ddpm_has_position(lua_State *L, const char *msg) {
    lua_Debug ar;
    for (int level = 1; lua_getstack(L, level, &ar); level++) {
        if (!lua_getinfo(L, "Sl", &ar) || ar.currentline <= 0) continue;
        size_t n = strlen(ar.short_src);
        if (strncmp(msg, ar.short_src, n) == 0 && msg[n] == ':') return 1;
    }
    return 0;
}

// Message handler for lua_pcall: the error message plus a traceback, or the message alone when
// it carries no position (error(msg, 0): the message is all the user needs) or already has a
// traceback (an error re-raised through a binding that called Lua: that one was taken where the
// error happened and covers the whole stack).
static inline int ddpm_traceback(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    } else if (!ddpm_has_position(L, msg)) {
        return 1;
    }
    if (strstr(msg, "\nstack traceback:\n") != NULL) return 1;
    luaL_traceback(L, L, msg, 1);
    return 1;
}
static inline void ddpm_push_traceback_handler(lua_State *L) { lua_pushcfunction(L, ddpm_traceback); }

#endif
