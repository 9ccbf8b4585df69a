/*
 * pgconn.h - the libpq side of a connection: waiting, cancelling, notices.
 *
 * Provides: pgconn_wait() waits for a query result without blocking signal
 * handling (so Ctrl-C can cancel a long statement); pgconn_cancel() asks the
 * server to cancel the running statement; a notice queue filled from
 * libpq's notice receiver, so that no Lua code ever runs inside a libpq
 * callback (the receiver only copies the notice; Lua reads the queue after
 * the call returns).
 *
 * Bounds on silence: every wait of the core on the server (here, copy.c,
 * pipeline.c) goes through pgconn_poll(), one slice of poll(2).  A
 * connection given a bound (pgconn_bound_attach) is closed when the server
 * sends nothing and takes none of what is sent for `timeout` ms of one
 * wait; and, whatever the bound, once Ctrl-C is pending, after
 * PGCONN_GRACE_MS of silence (the server did not answer the cancel
 * request).  Closing sends a cancel request (when the bound passed; after
 * Ctrl-C one was sent already) and shuts the socket down, so libpq sees
 * the connection as lost (CONNECTION_BAD) and every caller takes its
 * lost-connection path; pgconn_closed() tells the error builder why.  The
 * bound lives in libpq's per-connection instance data (an event
 * procedure frees it with the connection), so the core's functions keep
 * their PGconn-only signatures.
 *
 * Uses: libpq, poll(2), fork(2) (a bounded cancel request), interrupt.h.
 * Knows nothing about Lua.
 */
#ifndef SLUICE_PGCONN_H
#define SLUICE_PGCONN_H

#include <libpq-fe.h>

#define PGCONN_MAX_NOTICES 64

/* One notice; all strings live in the same allocation as the struct and
 * are never NULL ("" when the server sent no such field). */
typedef struct pgconn_notice {
    const char *severity, *sqlstate, *message, *detail, *hint, *context;
} pgconn_notice;

typedef struct pgconn_notices {
    pgconn_notice *items[PGCONN_MAX_NOTICES]; /* owned, malloc'd */
    int n;
    int dropped;       /* notices beyond the queue's capacity */
} pgconn_notices;

enum { PGCONN_READY = 0, PGCONN_BROKEN = -1, PGCONN_INTERRUPTED = 1 };

/* Wait until PQgetResult() will not block.  With interruptible set, a
 * pending interrupt makes it return PGCONN_INTERRUPTED at once (the caller
 * decides whether to cancel).  Returns PGCONN_BROKEN when the connection
 * failed (PQerrorMessage says why). */
int pgconn_wait(PGconn *c, int interruptible);

/* Wait like pgconn_wait() for a statement whose result must be read in
 * any case: the first pending interrupt sends a cancel request and sets
 * *interrupted, and the wait goes on (no longer interruptible) until the
 * server answers.  Returns PGCONN_READY or PGCONN_BROKEN. */
int pgconn_wait_cancel(PGconn *c, int *interrupted);

/* pgconn_collect's flags: what happened besides results. */
enum {
    PGCONN_F_INTERRUPTED = 1, /* Ctrl-C: a cancel request was sent */
    PGCONN_F_BROKEN = 2,      /* the connection failed */
    PGCONN_F_COPY_OUT = 4,    /* a COPY TO STDOUT nobody asked for, drained */
    PGCONN_F_STOPPED = 8,     /* the result of status `stop` arrived */
};

/* The one loop that reads the results of a command sent on c.  Reads until
 * libpq has no more, or until a result of status `stop` (PGRES_COPY_IN or
 * PGRES_COPY_OUT; 0: none) arrives with no error before it - then returns
 * with PGCONN_F_STOPPED (that result cleared; the COPY is the caller's).
 * The last successful result goes to *ok (replacing the one there), the
 * first failed one to *err; ok or err may be NULL to discard them.  A COPY
 * IN nobody asked for is ended with CopyFail(copy_in_msg), a COPY OUT is
 * read and discarded.  interruptible: the first pending interrupt sends a
 * cancel request and reading goes on; otherwise interrupts are left
 * pending.  Returns the PGCONN_F_* flags.  Never raises; allocates only
 * the results it hands over. */
int pgconn_collect(PGconn *c, int stop, const char *copy_in_msg,
                   int interruptible, PGresult **ok, PGresult **err);

/* Send a cancel request for the running statement.  Returns 0 on success,
 * -1 with a message in errbuf otherwise.  Does not wait for the result.
 * Bounded: libpq's PQcancel() connects and waits for the server's reply
 * with no limit, so it runs in a forked child that is killed after
 * PGCONN_CANCEL_MS (a silent peer: -1, "no answer ..."). */
int pgconn_cancel(PGconn *c, char *errbuf, int errlen);

/* ------------------------------------------------------ silence bounds */

/* After Ctrl-C, how long a wait goes on with no byte from the server
 * before the connection is closed; and how long a cancel request may
 * take. */
#define PGCONN_GRACE_MS 3000
#define PGCONN_CANCEL_MS 1000

/* Why pgconn_poll() closed a connection (pgconn_closed()). */
enum { PGCONN_OPEN = 0, PGCONN_CLOSED_TIMEOUT = 1,
       PGCONN_CLOSED_INTERRUPT = 2 };

/* Give c a silence bound of timeout_ms (0: none; Ctrl-C's grace applies
 * in any case).  Call once per connection, after it is made; later calls
 * change the bound.  Returns 0, or -1 when out of memory (c then has no
 * bound and no grace). */
int pgconn_bound_attach(PGconn *c, int timeout_ms);

/* c's bound in ms (0: none, or no bound attached). */
int pgconn_timeout(PGconn *c);

/* Whether pgconn_poll() closed c, and why (PGCONN_OPEN if not, or no
 * bound attached); *timeout_ms gets the bound that passed, *sig the
 * pending signal of PGCONN_CLOSED_INTERRUPT (either may be NULL). */
int pgconn_closed(PGconn *c, int *timeout_ms, int *sig);

/* A wait on c begins: silence is counted from now.  Every wait loop calls
 * it on entry (pgconn_wait does). */
void pgconn_wait_begin(PGconn *c);

/* One slice (at most 100 ms) of a wait for `events` (POLLIN, POLLOUT) on
 * c's socket, reading what arrived.  Returns PGCONN_READY (look at
 * libpq's state again: the connection may have gone bad while reading)
 * or PGCONN_BROKEN: reading failed, or the bound passed and the
 * connection was closed (pgconn_closed() says so).  Any event on the
 * socket counts as a sign of life. */
int pgconn_poll(PGconn *c, short events);

/* Milliseconds of a monotonic clock. */
long long pgconn_now_ms(void);

/* Route c's notices into q (q must outlive c or be detached first). */
void pgconn_notices_attach(PGconn *c, pgconn_notices *q);

/* Free every queued notice. */
void pgconn_notices_clear(pgconn_notices *q);

#endif
