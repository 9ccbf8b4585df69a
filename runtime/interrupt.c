/*
 * interrupt.c - SIGINT/SIGTERM/SIGHUP as a flag (see interrupt.h).
 *
 * Signal handlers may only touch sig_atomic_t and call async-signal-safe
 * functions: the handler sets the flag, then calls the binding's notify,
 * which must be async-signal-safe too (lib_interrupt.c only stores a
 * debug hook, the way LuaJIT's own interpreter interrupts a script).
 */
#include "interrupt.h"

#include <signal.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t pending_signal;
static int last_taken; /* the last signal interrupt_take() consumed */
static volatile time_t pending_since; /* only touched by the handler */
static void (*notify_fn)(int sig);
static int hold_depth; /* interrupt_hold() calls not yet released */

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
    if (notify_fn)
        notify_fn(sig);
}

void interrupt_install_handlers(void (*notify)(int sig))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    notify_fn = notify;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

int interrupt_pending(void)
{
    return pending_signal;
}

int interrupt_take(void)
{
    int sig = pending_signal;
    pending_signal = 0;
    if (sig)
        last_taken = sig;
    return sig;
}

int interrupt_last(void)
{
    return last_taken;
}

void interrupt_hold(void)
{
    hold_depth++;
}

int interrupt_release(void)
{
    return hold_depth > 0 && --hold_depth == 0 && pending_signal;
}

int interrupt_held(void)
{
    return hold_depth > 0;
}

const char *interrupt_name(int sig)
{
    return sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : "Ctrl-C";
}
