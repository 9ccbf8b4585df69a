/*
 * lib_text.c - the binding of textops (date/time layouts, grouped
 * numbers) for sluice.text (lua/sluice/text.lua) and db:copy's layouts.
 *
 * Uses: textops.h, lib.h.
 *
 * sluice.text calls the core's functions through the FFI, so a loop that
 * calls its helpers stays in one compiled trace; this file only hands it
 * their addresses and C types (the executable's symbols are global, but
 * the module's are not: the addresses work alike in both, as
 * copy_fast_functions does for the row writer).
 */
#include "lib.h"
#include "textops.h"

#include <string.h>

static const struct {
    const char *name, *sig;
    void (*fn)(void);
} text_fns[] = {
#define FN(f) ((void (*)(void))(f))
    { "layout_compile", "int (*)(void *, const char *, size_t, char *, size_t)",
      FN(textops_layout_compile) },
    { "epoch", "double (*)(const void *, const char *, size_t, int)",
      FN(textops_epoch) },
    { "check", "int (*)(const void *, const char *, size_t)",
      FN(textops_check) },
    { "iso_of", "int (*)(const void *, const char *, size_t, int, char *)",
      FN(textops_iso_of) },
    { "number", "double (*)(const char *, size_t, int)",
      FN(textops_number) },
    { "space_start", "size_t (*)(const char *, size_t)",
      FN(textops_space_start) },
    { "space_end", "size_t (*)(const char *, size_t)",
      FN(textops_space_end) },
#undef FN
};

/* sluice.core.text_functions() -> { name = { fn = light userdata, sig =
 * C type } ... }, layout_size (bytes of a compiled layout), iso_max
 * (bytes of an ISO text buffer). */
int lib_text_functions(lua_State *L)
{
    lua_newtable(L);
    for (size_t i = 0; i < sizeof text_fns / sizeof text_fns[0]; i++) {
        lua_createtable(L, 0, 2);
        void *p;
        memcpy(&p, &text_fns[i].fn, sizeof p); /* an address as data */
        lua_pushlightuserdata(L, p);
        lua_setfield(L, -2, "fn");
        lua_pushstring(L, text_fns[i].sig);
        lua_setfield(L, -2, "sig");
        lua_setfield(L, -2, text_fns[i].name);
    }
    lua_pushinteger(L, (lua_Integer)sizeof(textops_layout));
    lua_pushinteger(L, TEXTOPS_ISO_MAX);
    return 3;
}

/* sluice.core.text_layout_check(layout) -> true, or nil and why it is no
 * layout (the sentence of textops_layout_compile). */
int lib_text_layout_check(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    textops_layout l;
    char err[256];
    if (textops_layout_compile(&l, s, n, err, sizeof err) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}
