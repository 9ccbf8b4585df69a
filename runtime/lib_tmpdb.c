/*
 * lib_tmpdb.c - Lua binding of the throwaway PostgreSQL server.
 *
 * sluice.core.tmpdb_start{fast=, settings={...}, timeout_ms=, bindir=}
 * returns a "sluice.tmpdb" userdata; its __gc (and :stop()) shuts the
 * server down and removes its directory, so the server never outlives the
 * Lua state that started it (and tmpdb.c's atexit handler covers exits that
 * skip lua_close, such as os.exit()).  :restart{mode = "immediate"|"fast",
 * pause = seconds, timeout = seconds} stops the server and starts it again
 * in place (tmpdb_restart), for specs of clients that live through it.
 */
#include "lib.h"
#include "tmpdb.h"

#include <string.h>

#define MAX_SETTINGS 64

static tmpdb *check_tmpdb(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, SLUICE_TMPDB_MT);
}

int lib_tmpdb_start(lua_State *L)
{
    const char *settings[MAX_SETTINGS + 1];
    tmpdb_opts o;
    memset(&o, 0, sizeof o);
    o.fast = 0;
    if (!lua_isnoneornil(L, 1)) {
        luaL_checktype(L, 1, LUA_TTABLE);
        lua_getfield(L, 1, "fast");
        if (!lua_isnil(L, -1))
            o.fast = lua_toboolean(L, -1);
        lua_getfield(L, 1, "timeout_ms");
        o.timeout_ms = (int)luaL_optinteger(L, -1, 0);
        lua_getfield(L, 1, "bindir");
        o.bindir = luaL_optstring(L, -1, NULL);
        lua_getfield(L, 1, "settings");
        if (!lua_isnil(L, -1)) {
            luaL_argcheck(L, lua_istable(L, -1), 1,
                          "settings must be a list of \"name=value\"");
            int n = (int)lua_objlen(L, -1);
            luaL_argcheck(L, n <= MAX_SETTINGS, 1, "too many settings");
            for (int i = 0; i < n; i++) {
                lua_rawgeti(L, -1 - i, i + 1);
                settings[i] = luaL_checkstring(L, -1);
                luaL_argcheck(L, strchr(settings[i], '=') != NULL, 1,
                              "each setting is \"name=value\"");
            }
            settings[n] = NULL;
            o.settings = settings;
        }
        /* the values stay on the stack (anchored) until we return */
    }
    tmpdb *db = lua_newuserdata(L, sizeof *db);
    memset(db, 0, sizeof *db);
    luaL_getmetatable(L, SLUICE_TMPDB_MT);
    lua_setmetatable(L, -2);
    char err[2048];
    if (tmpdb_start(db, &o, err, sizeof err) != 0) {
        lua_pushstring(L, err);
        return lua_error(L);
    }
    return 1;
}

static int tmpdb_gc(lua_State *L)
{
    tmpdb_stop(check_tmpdb(L, 1));
    return 0;
}

static int tmpdb_l_conninfo(lua_State *L)
{
    tmpdb *db = check_tmpdb(L, 1);
    if (!db->pid)
        return luaL_error(L, "the temporary database is stopped");
    lua_pushstring(L, db->conninfo);
    return 1;
}

static int tmpdb_l_uri(lua_State *L)
{
    tmpdb *db = check_tmpdb(L, 1);
    if (!db->pid)
        return luaL_error(L, "the temporary database is stopped");
    lua_pushstring(L, db->uri);
    return 1;
}

static int tmpdb_l_dir(lua_State *L)
{
    tmpdb *db = check_tmpdb(L, 1);
    lua_pushstring(L, db->dir);
    return 1;
}

static int tmpdb_l_pid(lua_State *L)
{
    tmpdb *db = check_tmpdb(L, 1);
    lua_pushinteger(L, db->pid);
    return 1;
}

static int tmpdb_l_restart(lua_State *L)
{
    tmpdb *db = check_tmpdb(L, 1);
    int immediate = 1;
    double pause = 0, timeout = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_getfield(L, 2, "mode");
        const char *mode = luaL_optstring(L, -1, "immediate");
        if (strcmp(mode, "fast") == 0)
            immediate = 0;
        else if (strcmp(mode, "immediate") != 0)
            return luaL_error(L, "restart: mode must be \"immediate\" or \"fast\", got \"%s\"",
                              mode);
        lua_getfield(L, 2, "pause");
        pause = luaL_optnumber(L, -1, 0);
        lua_getfield(L, 2, "timeout");
        timeout = luaL_optnumber(L, -1, 0);
        luaL_argcheck(L, pause >= 0 && pause <= 3600 && timeout >= 0 && timeout <= 3600, 2,
                      "pause and timeout are seconds from 0 to 3600");
    }
    char err[2048];
    if (tmpdb_restart(db, immediate, (long)(pause * 1000), (int)(timeout * 1000), err,
                      sizeof err) != 0) {
        lua_pushstring(L, err);
        return lua_error(L);
    }
    return 0;
}

static int tmpdb_tostring(lua_State *L)
{
    tmpdb *db = check_tmpdb(L, 1);
    if (db->pid)
        lua_pushfstring(L, "sluice.tmpdb (%s)", db->conninfo);
    else
        lua_pushstring(L, "sluice.tmpdb (stopped)");
    return 1;
}

const luaL_Reg lib_tmpdb_methods[] = {
    { "conninfo", tmpdb_l_conninfo },
    { "uri", tmpdb_l_uri },
    { "dir", tmpdb_l_dir },
    { "pid", tmpdb_l_pid },
    { "stop", tmpdb_gc },
    { "restart", tmpdb_l_restart },
    { NULL, NULL },
};

const luaL_Reg lib_tmpdb_meta[] = {
    { "__gc", tmpdb_gc },
    { "__tostring", tmpdb_tostring },
    { NULL, NULL },
};
