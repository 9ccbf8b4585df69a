/*
 * interrupt.c - turn SIGINT/SIGTERM into a Lua error or a cancelled query.
 *
 * Signal handlers may only touch sig_atomic_t and call async-signal-safe
 * functions; lua_sethook is the one Lua API call documented as safe to call
 * from a signal handler (it only stores a few fields), which is how LuaJIT's
 * own luajit.c interrupts a running script.
 */
#include "interrupt.h"

#include <lauxlib.h>
#include <signal.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t pending_signal;
static volatile time_t pending_since; /* only touched by the handler */
static lua_State *interrupt_L;
static int hold_depth; /* interrupt_hold() calls not yet released */

static void interrupt_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    if (hold_depth > 0) {
        /* held: the holder raises it at its next safe point */
        lua_sethook(L, NULL, 0, 0);
        return;
    }
    int sig = interrupt_consume(L);
    luaL_error(L, "interrupted (%s)", interrupt_name(sig));
}

static void on_signal(int sig)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now); /* async-signal-safe */
    if (pending_signal) {
        /* a repeat within a second is the same keypress delivered twice
         * (to the process and to its group); later, the first one was
         * never noticed: let the default action kill the process */
        if (now.tv_sec - pending_since < 1)
            return;
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    pending_since = now.tv_sec;
    pending_signal = sig;
    if (interrupt_L)
        lua_sethook(interrupt_L, interrupt_hook,
                    LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

static void arm_hook(lua_State *L)
{
    lua_sethook(L, interrupt_hook,
                LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

void interrupt_install(lua_State *L)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    interrupt_L = L;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int interrupt_pending(void)
{
    return pending_signal != 0;
}

int interrupt_consume(lua_State *L)
{
    int sig = pending_signal;
    if (L && lua_gethook(L) == interrupt_hook)
        lua_sethook(L, NULL, 0, 0);
    pending_signal = 0;
    return sig;
}

void interrupt_hold(void)
{
    hold_depth++;
}

void interrupt_release(lua_State *L)
{
    if (hold_depth > 0 && --hold_depth == 0 && pending_signal && L)
        arm_hook(L);
}

int interrupt_held(void)
{
    return hold_depth > 0;
}

const char *interrupt_name(int sig)
{
    return sig == SIGTERM ? "SIGTERM" : "Ctrl-C";
}
