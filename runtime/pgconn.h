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

/* Send a cancel request for the running statement.  Returns 0 on success,
 * -1 with a message in errbuf otherwise.  Does not wait for the result. */
int pgconn_cancel(PGconn *c, char *errbuf, int errlen);

/* Route c's notices into q (q must outlive c or be detached first). */
void pgconn_notices_attach(PGconn *c, pgconn_notices *q);

/* Free every queued notice. */
void pgconn_notices_clear(pgconn_notices *q);

#endif
