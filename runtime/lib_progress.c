/*
 * lib_progress.c - progress of the paths written in C (a COPY stream,
 * copy_from_file, a pipeline): when to tick, and the call into the Lua
 * function that draws (lua/sluice/progress.lua, P:hook()).
 *
 * Uses: lib.h, interrupt.h (lib_interrupt_release), the C library's
 * monotonic clock.
 *
 * The hot loops never pay for progress: a path checks the clock only
 * where it already hands a chunk to libpq (a COPY flush, a sync point, a
 * block of a file), and calls into Lua only when 100 ms have passed since
 * the last tick.  The clock is CLOCK_MONOTONIC_COARSE (a read of the
 * vDSO's page, a few ns; its ticks of a few ms are plenty here).
 *
 * Caveats: the Lua function runs under lua_pcall with interrupts held, so
 * a Ctrl-C that arrives meanwhile is neither lost in the pcall nor raised
 * inside it: it stays pending for the path (whose next wait sees it) and
 * the hook is armed again when the hold ends.  Errors of the function
 * (a closed stderr, say) are dropped: progress must never stop a load.
 */
#include "lib.h"
#include "interrupt.h"

#include <time.h>

#define TICK_MS 100

static long long now_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) != 0 &&
        clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void lib_progress_setup(lua_State *L, lib_progress *p, int fn_idx,
                        int live)
{
    p->ref = 0;
    p->live = 0;
    p->due = 0;
    if (!lua_isfunction(L, fn_idx))
        return;
    lua_pushvalue(L, fn_idx);
    p->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    p->live = live;
}

int lib_progress_due(lib_progress *p)
{
    if (!p->live || p->ref <= 0)
        return 0;
    long long t = now_ms();
    if (t < p->due)
        return 0;
    p->due = t + TICK_MS;
    return 1;
}

void lib_progress_call(lua_State *L, lib_progress *p, double rows,
                       double bytes, double pos, int ended)
{
    if (p->ref <= 0 || !lua_checkstack(L, 7))
        return;
    interrupt_hold();
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->ref);
    lua_pushnumber(L, rows);
    lua_pushnumber(L, bytes);
    if (pos >= 0)
        lua_pushnumber(L, pos);
    else
        lua_pushnil(L);
    lua_pushinteger(L, ended);
    if (p->total > 0)
        lua_pushnumber(L, p->total);
    else
        lua_pushnil(L);
    if (lua_pcall(L, 5, 0, 0) != 0)
        lua_pop(L, 1);
    lib_interrupt_release(L);
    if (ended == LIB_PROGRESS_DONE)
        lib_progress_free(L, p);
}

void lib_progress_free(lua_State *L, lib_progress *p)
{
    if (p->ref > 0) {
        luaL_unref(L, LUA_REGISTRYINDEX, p->ref);
        p->ref = 0;
    }
    p->live = 0;
}
