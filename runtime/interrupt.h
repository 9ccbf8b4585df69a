/*
 * interrupt.h - Ctrl-C (SIGINT, SIGTERM, SIGHUP) as a flag the core can
 * poll.
 *
 * Provides: interrupt_install_handlers() sets the signal handlers (the
 * sluice executable calls it, through lib_interrupt.c); interrupt_pending()
 * lets code that waits on the network poll for a pending interrupt (the
 * wait loops then cancel the server's query); interrupt_take() consumes it
 * so it is raised exactly once; interrupt_hold()/interrupt_release() keep
 * it pending while a caller learns from the server what a round trip did
 * (db:batch, sluice.load: the Lua side is the outcome module).
 *
 * A second signal, a second or more after a first one that is still
 * pending, restores the default action and re-raises, so a stuck process
 * (for instance a pure-Lua loop that LuaJIT compiled: compiled code does
 * not run hooks) can still be killed.
 *
 * Uses: signal.h.  The flag is process-wide because signals are; when
 * sluice is loaded as a plain Lua module nothing is installed and
 * interrupt_pending() is always false.  Knows nothing about Lua: the
 * binding (lib_interrupt.c) turns a signal into a Lua error through the
 * `notify` callback.
 */
#ifndef SLUICE_INTERRUPT_H
#define SLUICE_INTERRUPT_H

/* Install handlers for SIGINT, SIGTERM and SIGHUP (a closed terminal
 * ends a script the way SIGTERM does, its cleanup included).  notify(sig),
 * if not NULL, is called from the handler after the flag is set: it must
 * be async-signal-safe.  Call once, from the main thread. */
void interrupt_install_handlers(void (*notify)(int sig));

/* Nonzero when a signal arrived and nobody has taken it yet: the signal
 * number. */
int interrupt_pending(void);

/* Clear the pending flag.  Returns the signal number that was pending (0
 * if none). */
int interrupt_take(void);

/* The signal of the last interrupt interrupt_take() consumed, 0 if none
 * was: the executable's exit status after an interrupted script
 * (128 + the signal).  Main thread only. */
int interrupt_last(void);

/* Hold interrupts for code that must learn, from the server's answers,
 * what a round trip did before it stops: while held, the binding raises
 * nothing (the flag stays pending), and lib_conn_finish() neither
 * consumes the interrupt nor raises it for a statement that completed.
 * Wait loops still see the flag and send a cancel request.  The holder
 * checks interrupt_pending() after each round trip and raises it itself.
 * Holds nest; every hold needs a release.  interrupt_release() returns
 * nonzero when it ended the last hold with an interrupt still pending
 * (the binding then arms its hook again). */
void interrupt_hold(void);
int interrupt_release(void);
int interrupt_held(void);

/* "Ctrl-C", "SIGTERM" or "SIGHUP", for messages. */
const char *interrupt_name(int sig);

#endif
