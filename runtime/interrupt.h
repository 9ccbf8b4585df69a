/*
 * interrupt.h - Ctrl-C (SIGINT/SIGTERM) for a running script.
 *
 * Provides: interrupt_install() sets the signal handlers of the sluice
 * executable; interrupt_pending() lets code that waits on the network poll
 * for a pending interrupt; interrupt_consume() takes the interrupt so it is
 * raised exactly once.
 *
 * A signal does two things: it sets a flag (seen by libpq wait loops, which
 * then cancel the server query) and installs a Lua hook (seen by running Lua
 * code, which then raises "interrupted").  Whichever sees it first consumes
 * both, so cleanup code such as a ROLLBACK in an error handler runs
 * undisturbed.  A second signal, a second or more after a first one that is
 * still pending, restores the default action and re-raises, so a stuck
 * process (for instance a pure-Lua loop that LuaJIT compiled: compiled code
 * does not run hooks) can still be killed.
 *
 * Uses: signal.h; the Lua debug hook.  The flag is process-wide because
 * signals are; when sluice is loaded as a plain Lua module nothing is
 * installed and interrupt_pending() is always false.
 */
#ifndef SLUICE_INTERRUPT_H
#define SLUICE_INTERRUPT_H

/* Only a pointer to it here: the core's wait loops (copy.c, pgconn.c)
 * include this header without depending on Lua's. */
struct lua_State;

/* Install handlers for SIGINT and SIGTERM that interrupt the Lua state L.
 * Call once, from the main thread, before running user code. */
void interrupt_install(struct lua_State *L);

/* Nonzero when a signal arrived and nobody has consumed it yet. */
int interrupt_pending(void);

/* Clear the pending flag and remove the hook, if ours.  Returns the signal
 * number that was pending (0 if none). */
int interrupt_consume(struct lua_State *L);

#endif
