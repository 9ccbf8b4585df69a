/*
 * pgconn.c - waiting on libpq without losing Ctrl-C, and the notice queue.
 *
 * libpq's blocking calls (PQexec and friends) retry poll() on EINTR, so a
 * signal cannot stop a long statement.  sluice sends every statement with
 * the asynchronous API instead and waits here, in poll() with a short
 * timeout, checking the interrupt flag between waits.
 */
#include "pgconn.h"
#include "interrupt.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

int pgconn_wait(PGconn *c, int interruptible)
{
    /* checked even when the result is already in: a row-by-row loop that
     * LuaJIT compiled runs no hooks, so a fast statement may be the only
     * place that notices Ctrl-C */
    if (interruptible && interrupt_pending())
        return PGCONN_INTERRUPTED;
    /* flush anything libpq still holds (large parameter sets) */
    while (PQflush(c) == 1) {
        struct pollfd p = { PQsocket(c), POLLOUT | POLLIN, 0 };
        if (poll(&p, 1, 100) < 0 && errno != EINTR)
            return PGCONN_BROKEN;
        if ((p.revents & POLLIN) && !PQconsumeInput(c))
            return PGCONN_BROKEN;
    }
    while (PQisBusy(c)) {
        if (interruptible && interrupt_pending())
            return PGCONN_INTERRUPTED;
        struct pollfd p = { PQsocket(c), POLLIN, 0 };
        if (p.fd < 0)
            return PGCONN_BROKEN;
        int r = poll(&p, 1, 100);
        if (r < 0 && errno != EINTR)
            return PGCONN_BROKEN;
        if (r > 0 && !PQconsumeInput(c))
            return PGCONN_BROKEN;
    }
    return PGCONN_READY;
}

int pgconn_wait_cancel(PGconn *c, int *interrupted)
{
    for (;;) {
        int w = pgconn_wait(c, !*interrupted);
        if (w != PGCONN_INTERRUPTED)
            return w;
        char buf[256];
        *interrupted = 1;
        pgconn_cancel(c, buf, sizeof buf);
    }
}

/* Keep r in *slot (replacing what is there) or clear it. */
static void keep(PGresult **slot, PGresult *r, int replace)
{
    if (slot && (replace || !*slot)) {
        if (*slot)
            PQclear(*slot);
        *slot = r;
    } else {
        PQclear(r);
    }
}

int pgconn_collect(PGconn *c, int stop, const char *copy_in_msg,
                   int interruptible, PGresult **ok, PGresult **err)
{
    int flags = 0, interrupted = !interruptible;
    int saw_err = 0;
    for (;;) {
        int w = interruptible ? pgconn_wait_cancel(c, &interrupted)
                              : pgconn_wait(c, 0);
        if (interruptible && interrupted)
            flags |= PGCONN_F_INTERRUPTED;
        if (w == PGCONN_BROKEN)
            return flags | PGCONN_F_BROKEN;
        PGresult *r = PQgetResult(c);
        if (!r)
            return flags;
        ExecStatusType st = PQresultStatus(r);
        if (stop && (int)st == stop && !saw_err) {
            PQclear(r);
            return flags | PGCONN_F_STOPPED;
        }
        switch (st) {
        case PGRES_COPY_IN:
            PQclear(r);
            /* blocking: CopyFail is queued and sent whole (this flushes
             * what a nonblocking COPY left in libpq first) */
            if ((PQisnonblocking(c) && PQsetnonblocking(c, 0) != 0) ||
                PQputCopyEnd(c, copy_in_msg ? copy_in_msg : "COPY abandoned") < 0 ||
                PQflush(c) != 0)
                return flags | PGCONN_F_BROKEN;
            break;
        case PGRES_COPY_OUT: {
            PQclear(r);
            char *buf;
            int k;
            while ((k = PQgetCopyData(c, &buf, 0)) > 0)
                PQfreemem(buf);
            flags |= PGCONN_F_COPY_OUT;
            break;
        }
        case PGRES_BAD_RESPONSE:
        case PGRES_NONFATAL_ERROR:
        case PGRES_FATAL_ERROR:
            saw_err = 1;
            keep(err, r, 0);
            break;
        default:
            keep(ok, r, 1);
            break;
        }
        if (PQstatus(c) == CONNECTION_BAD)
            return flags | PGCONN_F_BROKEN;
    }
}

int pgconn_cancel(PGconn *c, char *errbuf, int errlen)
{
    PGcancel *cn = PQgetCancel(c);
    if (!cn) {
        if (errlen > 0)
            errbuf[0] = '\0';
        return -1;
    }
    int ok = PQcancel(cn, errbuf, errlen);
    PQfreeCancel(cn);
    return ok ? 0 : -1;
}

static void notice_receiver(void *arg, const PGresult *res)
{
    pgconn_notices *q = arg;
    static const int codes[6] = {
        PG_DIAG_SEVERITY_NONLOCALIZED, PG_DIAG_SQLSTATE,
        PG_DIAG_MESSAGE_PRIMARY, PG_DIAG_MESSAGE_DETAIL,
        PG_DIAG_MESSAGE_HINT, PG_DIAG_CONTEXT,
    };
    const char *f[6];
    size_t len[6], total = sizeof(pgconn_notice);

    if (q->n >= PGCONN_MAX_NOTICES) {
        q->dropped++;
        return;
    }
    for (int i = 0; i < 6; i++) {
        f[i] = PQresultErrorField(res, codes[i]);
        if (!f[i])
            f[i] = "";
        len[i] = strlen(f[i]);
        total += len[i] + 1;
    }
    pgconn_notice *nt = malloc(total);
    if (!nt) {
        q->dropped++;
        return;
    }
    char *p = (char *)(nt + 1);
    const char **dst[6] = { &nt->severity, &nt->sqlstate, &nt->message,
                            &nt->detail, &nt->hint, &nt->context };
    for (int i = 0; i < 6; i++) {
        memcpy(p, f[i], len[i] + 1);
        *dst[i] = p;
        p += len[i] + 1;
    }
    q->items[q->n++] = nt;
}

void pgconn_notices_attach(PGconn *c, pgconn_notices *q)
{
    q->n = 0;
    q->dropped = 0;
    PQsetNoticeReceiver(c, notice_receiver, q);
}

void pgconn_notices_clear(pgconn_notices *q)
{
    for (int i = 0; i < q->n; i++)
        free(q->items[i]);
    q->n = 0;
    q->dropped = 0;
}
