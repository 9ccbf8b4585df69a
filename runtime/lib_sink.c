/*
 * lib_sink.c - Lua binding of file sinks: sluice.core.sink_open(), behind
 * sluice.sink.file() in lua/sluice/sink.lua.
 *
 * A sink is a "sluice.copy" stream whose destination is a file (sink.c)
 * instead of a server: the same userdata type, the same row()/rows()/
 * flush()/finish()/abort() methods, the same per-column encoders and
 * buffer (lib_copy*.c over copyenc.c and copy.c).  So a row written to a
 * sink is byte for byte the row a COPY in the same format would send,
 * and a script changes its destination by changing one line.  This file
 * only adapts sink.c to the lib_copy_sink interface and opens the file.
 *
 * Caveats:
 * - The file is opened after the stream userdata exists (its zeroed
 *   sink_file is the stream's own memory), so a failure to open leaks
 *   nothing: the stream's __gc runs sink_close() on it, which is safe.
 * - finish() commits (the temporary file is renamed over the path);
 *   abort(), an error in row()/rows()/finish() and __gc discard: the
 *   path is never left holding a half-written file.
 */
#include "lib.h"
#include "sink.h"

#include <string.h>

static int file_write(void *ctx, const char *data, size_t n, char *msg,
                      size_t msglen)
{
    return sink_write(ctx, data, n, msg, msglen);
}

static int file_close(void *ctx, int commit, char *msg, size_t msglen)
{
    return sink_close(ctx, commit, msg, msglen);
}

static const lib_copy_sink file_ops = {
    sizeof(sink_file), file_write, file_close,
};

/* sluice.core.sink_open(path, format, specs, opts) -> stream.
 * opts as for lib_copy_new_sink(), plus gzip (0 for plain output, or the
 * level 1 to 9).  Raises "path: what" when the file cannot be opened
 * (with no position: sink.lua re-raises at its caller's line). */
int lib_sink_open(lua_State *L)
{
    luaL_checkstring(L, 1);
    const char *format = luaL_checkstring(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    luaL_checktype(L, 4, LUA_TTABLE);
    lua_settop(L, 4);
    lua_getfield(L, 4, "gzip");
    int level = (int)lua_tonumber(L, -1);
    lua_pop(L, 1);
    luaL_argcheck(L, level >= 0 && level <= 9, 4, "gzip must be 0 to 9");
    sink_file *f = lib_copy_new_sink(L, format, 3, 4, 1, &file_ops);
    // stack: path, format, specs, opts, stream
    char msg[512];
    if (sink_open(f, lua_tostring(L, 1), level, msg, sizeof msg) != 0) {
        lua_pushstring(L, msg);
        return lua_error(L);
    }
    return 1;
}
