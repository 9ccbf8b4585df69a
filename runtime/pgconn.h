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
 * Uses: libpq, poll(2), interrupt.h.  Knows nothing about Lua.
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
 * -1 with a message in errbuf otherwise.  Does not wait for the result. */
int pgconn_cancel(PGconn *c, char *errbuf, int errlen);

/* Route c's notices into q (q must outlive c or be detached first). */
void pgconn_notices_attach(PGconn *c, pgconn_notices *q);

/* Free every queued notice. */
void pgconn_notices_clear(pgconn_notices *q);

#endif
