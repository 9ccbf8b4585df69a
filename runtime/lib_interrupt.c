/*
 * lib_interrupt.c - Ctrl-C as a Lua error: the binding of interrupt.h.
 *
 * A signal does two things: the core sets a flag (seen by libpq wait
 * loops, which then cancel the server query) and, through the notify
 * callback here, a Lua hook is installed (seen by running Lua code, which
 * then raises "interrupted").  Whichever sees it first consumes both, so
 * cleanup code such as a ROLLBACK in an error handler runs undisturbed.
 * While interrupts are held (interrupt_hold) the hook raises nothing.
 */
#include "lib.h"
#include "interrupt.h"

static lua_State *interrupt_L;

static void interrupt_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    if (interrupt_held()) {
        /* held: the holder raises it at its next safe point */
        lua_sethook(L, NULL, 0, 0);
        return;
    }
    int sig = lib_interrupt_consume(L);
    luaL_error(L, "interrupted (%s)", interrupt_name(sig));
}

static void arm_hook(lua_State *L)
{
    lua_sethook(L, interrupt_hook,
                LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

/* Runs in the signal handler: lua_sethook only stores a few fields. */
static void on_notify(int sig)
{
    (void)sig;
    if (interrupt_L)
        arm_hook(interrupt_L);
}

void lib_interrupt_install(lua_State *L)
{
    interrupt_L = L;
    interrupt_install_handlers(on_notify);
}

int lib_interrupt_consume(lua_State *L)
{
    if (L && lua_gethook(L) == interrupt_hook)
        lua_sethook(L, NULL, 0, 0);
    return interrupt_take();
}

void lib_interrupt_release(lua_State *L)
{
    if (interrupt_release() && L)
        arm_hook(L);
}
