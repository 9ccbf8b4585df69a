/*
 * lib_sluice.c - luaopen_sluice_core: every userdata type and method table of
 * the core, registered in one place (the whole C API surface is here).
 *
 * Each type reaches Lua once, as sluice.core.types.<name> = { mt = its
 * metatable, methods = its methods table, field = its field getter (types
 * with read-only fields), private = functions for the Lua library only
 * (batch) }.  A type without fields (conn, stmt, tmpdb) gets __index =
 * its methods table here.  A type with fields gets no __index here:
 * LuaJIT cannot compile a call through a C __index, so
 * lua/sluice/api.lua gives it a Lua one (the methods table first, then
 * the field getter), once, before any object exists - which is also
 * where the methods written in Lua join these tables.  api.lua is the
 * place to read the API from; this file names the C tables it uses.
 *
 * The Lua library (lua/sluice/init.lua) requires "sluice.core" and builds
 * the user-facing API on it.  The executable preloads this function; plain
 * LuaJIT finds it as sluice/core.so.
 */
#include "lib.h"
#include "interrupt.h"
#include "copychunk.h"

#include <string.h>
#include <time.h>

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "dev"
#endif

int luaopen_sluice_core(lua_State *L);

/* Push the descriptor of type `name`: { mt = a new metatable with
 * metamethods `meta` and __name, methods = a table of `methods` (when
 * given) }.  Without `fields`, __index is the methods table; with it,
 * there is no __index yet (api.lua sets it) and the caller adds the
 * descriptor's field getter. */
static void new_type(lua_State *L, const char *name, const luaL_Reg *meta,
                     const luaL_Reg *methods, int fields)
{
    lua_createtable(L, 0, 4);
    luaL_newmetatable(L, name);
    luaL_register(L, NULL, meta);
    lua_pushstring(L, name);
    lua_setfield(L, -2, "__name");
    // stack: desc, mt
    if (methods) {
        lua_newtable(L);
        luaL_register(L, NULL, methods);
        if (!fields) {
            lua_pushvalue(L, -1);
            lua_setfield(L, -3, "__index");
        }
        lua_setfield(L, -3, "methods");
    }
    lua_setfield(L, -2, "mt");
}

/* new_type for a type with read-only fields served by `field`. */
static void new_type_fields(lua_State *L, const char *name,
                            const luaL_Reg *meta, const luaL_Reg *methods,
                            lua_CFunction field)
{
    new_type(L, name, meta, methods, 1);
    lua_pushcfunction(L, field);
    lua_setfield(L, -2, "field");
}

/* sluice.core.set_helper(name, fn): install a Lua helper the C code
 * calls (see SLUICE_REG_* in lib.h); set_helper("own_dir", path): the
 * directory of sluice's Lua modules. */
static int set_helper(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    if (strcmp(name, "own_dir") == 0)
        luaL_checktype(L, 2, LUA_TSTRING);
    else
        luaL_checktype(L, 2, LUA_TFUNCTION);
    if (strcmp(name, "int64") == 0)
        lua_setfield(L, LUA_REGISTRYINDEX, SLUICE_REG_INT64);
    else if (strcmp(name, "cdata_text") == 0)
        lua_setfield(L, LUA_REGISTRYINDEX, SLUICE_REG_CDATATEXT);
    else if (strcmp(name, "csv_rows") == 0)
        lua_setfield(L, LUA_REGISTRYINDEX, SLUICE_REG_CSVROWS);
    else if (strcmp(name, "own_dir") == 0)
        lua_setfield(L, LUA_REGISTRYINDEX, SLUICE_REG_OWNDIR);
    else
        return luaL_argerror(L, 1, "unknown helper");
    return 0;
}

/* sluice.core.keep_columns(t | nil): from now on query results are
 * keys of t, each with its columns (SLUICE_REG_COLUMNS in lib.h); nil
 * stops it.  The prompt uses it to print results in column order. */
static int keep_columns(lua_State *L)
{
    if (!lua_isnoneornil(L, 1))
        luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, SLUICE_REG_COLUMNS);
    return 0;
}

/* sluice.core.interrupt_hold() / interrupt_release(): see interrupt.h.
 * Lua code that holds must release on every path (it runs the held part
 * under pcall). */
static int core_interrupt_hold(lua_State *L)
{
    (void)L;
    interrupt_hold();
    return 0;
}

static int core_interrupt_release(lua_State *L)
{
    lib_interrupt_release(L);
    return 0;
}

/* sluice.core.interrupt_take() -> "Ctrl-C" or "SIGTERM" when an interrupt
 * was pending (it is consumed: the caller raises it), else nil. */
static int core_interrupt_take(lua_State *L)
{
    if (!interrupt_pending())
        return 0;
    lua_pushstring(L, interrupt_name(lib_interrupt_consume(L)));
    return 1;
}

/* Push core.types: every userdata type's descriptor (api.lua completes
 * the metatables of the types with fields). */
static void push_types(lua_State *L)
{
    lua_newtable(L);
    // stack: types
    new_type(L, SLUICE_CONN_MT, lib_conn_meta, lib_conn_methods, 0);
    lua_setfield(L, -2, "conn");
    new_type(L, SLUICE_STMT_MT, lib_stmt_meta, lib_stmt_methods, 0);
    lua_setfield(L, -2, "stmt");
    new_type(L, SLUICE_TMPDB_MT, lib_tmpdb_meta, lib_tmpdb_methods, 0);
    lua_setfield(L, -2, "tmpdb");
    new_type(L, SLUICE_CSV_MT, lib_csv_meta, lib_csv_methods, 1);
    lua_getfield(L, -1, "methods");
    lib_csv_push_field(L);
    // stack: types, desc, methods, field
    lua_setfield(L, -3, "field");
    lua_pop(L, 1);
    lua_setfield(L, -2, "csv");
    new_type_fields(L, SLUICE_COPY_MT, lib_copy_meta, lib_copy_methods,
                    lib_copy_field);
    lua_setfield(L, -2, "copy");
    new_type_fields(L, SLUICE_COPYOUT_MT, lib_copyout_meta,
                    lib_copyout_methods, lib_copyout_field);
    lua_setfield(L, -2, "copyout");
    new_type_fields(L, SLUICE_BATCH_MT, lib_batch_meta, lib_batch_methods,
                    lib_batch_field);
    lua_newtable(L);
    luaL_register(L, NULL, lib_batch_private);
    lua_setfield(L, -2, "private");
    lua_setfield(L, -2, "batch");
    new_type_fields(L, SLUICE_PIPELINE_MT, lib_pipeline_meta,
                    lib_pipeline_methods, lib_pipeline_field);
    lua_setfield(L, -2, "pipeline");
    new_type(L, SLUICE_WORKERS_MT, lib_workers_meta, lib_workers_methods, 0);
    lua_setfield(L, -2, "workers");
}

/* The functions of sluice.core that are not methods of a type. */
/* sluice.core.sleep(seconds): wait, in slices of 50 ms so that Ctrl-C
 * ends it early (returns false then, true after the whole wait). */
static int core_sleep(lua_State *L)
{
    double left = luaL_checknumber(L, 1);
    while (left > 0) {
        if (interrupt_pending()) {
            lua_pushboolean(L, 0);
            return 1;
        }
        double step = left < 0.05 ? left : 0.05;
        struct timespec ts = { 0, (long)(step * 1e9) };
        nanosleep(&ts, NULL);
        left -= step;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* sluice.core.row_fault(sqlstate [, relayed]) -> whether an error of
 * that SQLSTATE is one row's own fault (copychunk.h): what every reject
 * mode sets aside; relayed: XX000 too (a Citus cluster's relayed
 * errors). */
static int core_row_fault(lua_State *L)
{
    lua_pushboolean(L, lua_type(L, 1) == LUA_TSTRING &&
                           copy_row_fault(lua_tostring(L, 1), lua_toboolean(L, 2)));
    return 1;
}

/* sluice.core.interrupt_pending() -> the pending signal's name, or nil
 * (nothing consumed). */
static int core_interrupt_pending(lua_State *L)
{
    int sig = interrupt_pending();
    if (!sig)
        return 0;
    lua_pushstring(L, interrupt_name(sig));
    return 1;
}

static const luaL_Reg core_functions[] = {
    { "row_fault", core_row_fault },
    { "sleep", core_sleep },
    { "workers_fork", lib_workers_fork },
    { "worker_send", lib_worker_send },
    { "worker_recv", lib_worker_recv },
    { "worker_exit", lib_worker_exit },
    { "worker_chunk_file", lib_worker_chunk_file },
    { "csv_cutter", lib_csv_cutter },
    { "csv_reader_options", lib_csv_reader_options },
    { "csv_relabel", lib_csv_relabel },
    { "interrupt_pending", core_interrupt_pending },
    { "connect", lib_conn_connect },
    { "new_error", lib_error_new },
    { "tmpdb_start", lib_tmpdb_start },
    { "csv_open", lib_csv_open },
    { "csv_rows", lib_csv_rows },
    { "csv_reader_of", lib_csv_reader_of },
    { "csv_is_reader", lib_csv_is_reader },
    { "csv_copy_from_file", lib_csv_copy_from_file },
    { "copy_start", lib_copy_start },
    { "copy_zone", lib_copy_zone },
    { "copy_out_start", lib_copy_out_start },
    { "copy_kind", lib_copy_kind },
    { "vector_parse", lib_vector_parse },
    { "vector_columns", lib_vector_columns },
    { "copy_fast", lib_copy_fast },
    { "copy_fast_text", lib_copy_fast_text },
    { "copy_fast_functions", lib_copy_fast_functions },
    { "text_functions", lib_text_functions },
    { "text_layout_check", lib_text_layout_check },
    { "batch_new", lib_batch_new },
    { "pipeline_start", lib_pipeline_start },
    { "sink_open", lib_sink_open },
    { "set_helper", set_helper },
    { "keep_columns", keep_columns },
    { "interrupt_hold", core_interrupt_hold },
    { "interrupt_release", core_interrupt_release },
    { "interrupt_take", core_interrupt_take },
    { NULL, NULL },
};

int luaopen_sluice_core(lua_State *L)
{
    lua_newtable(L);
    // stack: core
    push_types(L);
    lua_setfield(L, -2, "types");
    new_type(L, SLUICE_RESULT_MT, lib_result_meta, NULL, 0);
    lua_pop(L, 1);
    new_type(L, SLUICE_ERROR_MT, lib_error_meta, NULL, 0);
    lua_getfield(L, -1, "mt");
    lua_setfield(L, -3, "error_meta");
    lua_pop(L, 1);
    luaL_register(L, NULL, core_functions);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    lua_pushstring(L, SLUICE_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushinteger(L, PQlibVersion());
    lua_setfield(L, -2, "libpq_version");
    return 1;
}
