/*
 * pgconn.c - waiting on libpq without losing Ctrl-C, bounds on silence,
 * and the notice queue.
 *
 * libpq's blocking calls (PQexec and friends) retry poll() on EINTR, so a
 * signal cannot stop a long statement.  sluice sends every statement with
 * the asynchronous API instead and waits here, in poll() with a short
 * timeout, checking the interrupt flag between waits.
 *
 * Caveats:
 * - A silence bound cannot tell a dead peer from a server busy with one
 *   long statement: both send nothing.  That is why it is a connection
 *   option with a generous default (lib_conn.c) and 0 turns it off.
 * - The bound is closed by shutdown(2) on libpq's socket, then
 *   PQconsumeInput() reads the end of file: libpq drops the connection
 *   itself (CONNECTION_BAD, socket closed), so no caller needs a new path.
 * - PQcancel() has no time limit of its own (it connects and waits for the
 *   server to close).  It is async-signal-safe, so a forked child can run
 *   it; the child is killed when the limit passes.
 */
#include "pgconn.h"
#include "interrupt.h"

#include <errno.h>
#include <libpq-events.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------ silence bounds */

typedef struct pgconn_bound {
    int timeout_ms;      /* 0: no bound (the grace after Ctrl-C still) */
    long long mark_ms;   /* the last sign of life, or the wait's start */
    int closed;          /* PGCONN_CLOSED_* once pgconn_poll closed it */
    int closed_ms;       /* the bound that passed */
    int closed_sig;      /* the signal pending then (CLOSED_INTERRUPT) */
} pgconn_bound;

long long pgconn_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Frees the bound with its connection (PQfinish). */
static int bound_event(PGEventId id, void *info, void *pass)
{
    (void)pass;
    if (id == PGEVT_CONNDESTROY) {
        PGEventConnDestroy *e = info;
        free(PQinstanceData(e->conn, bound_event));
        PQsetInstanceData(e->conn, bound_event, NULL);
    }
    return 1;
}

static pgconn_bound *bound_of(PGconn *c)
{
    return c ? PQinstanceData(c, bound_event) : NULL;
}

int pgconn_bound_attach(PGconn *c, int timeout_ms)
{
    pgconn_bound *b = bound_of(c);
    if (!b) {
        b = calloc(1, sizeof *b);
        if (!b)
            return -1;
        if (!PQregisterEventProc(c, bound_event, "sluice bound", NULL) ||
            !PQsetInstanceData(c, bound_event, b)) {
            free(b);
            return -1;
        }
    }
    b->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
    b->mark_ms = pgconn_now_ms();
    return 0;
}

int pgconn_timeout(PGconn *c)
{
    pgconn_bound *b = bound_of(c);
    return b ? b->timeout_ms : 0;
}

int pgconn_closed(PGconn *c, int *timeout_ms, int *sig)
{
    pgconn_bound *b = bound_of(c);
    if (timeout_ms)
        *timeout_ms = b ? b->closed_ms : 0;
    if (sig)
        *sig = b ? b->closed_sig : 0;
    return b ? b->closed : PGCONN_OPEN;
}

void pgconn_wait_begin(PGconn *c)
{
    pgconn_bound *b = bound_of(c);
    if (b)
        b->mark_ms = pgconn_now_ms();
}

/* The bound in force now, and why it would close (0: none). */
static int bound_limit(const pgconn_bound *b, int *why)
{
    int limit = b->timeout_ms;
    *why = PGCONN_CLOSED_TIMEOUT;
    if (interrupt_pending() && (limit == 0 || limit > PGCONN_GRACE_MS)) {
        limit = PGCONN_GRACE_MS;
        *why = PGCONN_CLOSED_INTERRUPT;
    }
    return limit;
}

/* Close c after its bound passed: a cancel request (best effort, bounded;
 * after Ctrl-C one went out already), then the socket is shut down and
 * libpq reads the end of file, which drops the connection. */
static void bound_close(PGconn *c, pgconn_bound *b, int why, int limit)
{
    if (why == PGCONN_CLOSED_TIMEOUT) {
        char buf[256];
        pgconn_cancel(c, buf, sizeof buf);
    }
    b->closed = why;
    b->closed_ms = limit;
    b->closed_sig = interrupt_pending();
    int fd = PQsocket(c);
    if (fd >= 0)
        shutdown(fd, SHUT_RDWR);
    /* data already in the kernel is read first; the end of file follows */
    for (int i = 0; i < 1000 && PQstatus(c) != CONNECTION_BAD; i++)
        if (!PQconsumeInput(c))
            break;
}

int pgconn_poll(PGconn *c, short events)
{
    struct pollfd p = { PQsocket(c), events, 0 };
    if (p.fd < 0)
        return PGCONN_BROKEN;
    int r = poll(&p, 1, 100);
    if (r < 0 && errno != EINTR)
        return PGCONN_BROKEN;
    pgconn_bound *b = bound_of(c);
    if (r > 0) {
        if (b)
            b->mark_ms = pgconn_now_ms();
        if ((p.revents & (POLLIN | POLLHUP | POLLERR)) && !PQconsumeInput(c))
            return PGCONN_BROKEN;
    } else if (b) {
        int why, limit = bound_limit(b, &why);
        if (limit > 0 && pgconn_now_ms() - b->mark_ms >= limit) {
            bound_close(c, b, why, limit);
            return PGCONN_BROKEN;
        }
    }
    /* a connection that went bad while reading is the caller's to see:
     * the server's last error may be waiting in libpq */
    return PGCONN_READY;
}

/* ---------------------------------------------------------------- waits */

/* pgconn_wait() without its start of the silence count. */
static int wait_ready(PGconn *c, int interruptible)
{
    /* checked even when the result is already in: a row-by-row loop that
     * LuaJIT compiled runs no hooks, so a fast statement may be the only
     * place that notices Ctrl-C */
    if (interruptible && interrupt_pending())
        return PGCONN_INTERRUPTED;
    /* flush anything libpq still holds (large parameter sets); a failed
     * flush is left to the result loop: what the server said before the
     * connection died (a FATAL error) is still there to read */
    while (PQflush(c) == 1)
        if (pgconn_poll(c, POLLOUT | POLLIN) != PGCONN_READY)
            return PGCONN_BROKEN;
    while (PQisBusy(c)) {
        if (interruptible && interrupt_pending())
            return PGCONN_INTERRUPTED;
        if (pgconn_poll(c, POLLIN) != PGCONN_READY)
            return PGCONN_BROKEN;
    }
    return PGCONN_READY;
}

int pgconn_wait(PGconn *c, int interruptible)
{
    pgconn_wait_begin(c);
    return wait_ready(c, interruptible);
}

int pgconn_wait_cancel(PGconn *c, int *interrupted)
{
    pgconn_wait_begin(c);
    for (;;) {
        int w = wait_ready(c, !*interrupted);
        if (w != PGCONN_INTERRUPTED)
            return w;
        char buf[256];
        *interrupted = 1;
        /* the grace after Ctrl-C counts from here, the cancel included */
        pgconn_wait_begin(c);
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

/* End a COPY IN nobody asked for with CopyFail(msg), sent whole (after
 * what a nonblocking COPY left in libpq).  Nonblocking while it waits, so
 * a full socket waits in pgconn_poll(); the mode is restored.  0 or -1
 * (the connection is lost). */
static int end_copy_in(PGconn *c, const char *msg)
{
    int was_nonblocking = PQisnonblocking(c);
    if (!was_nonblocking && PQsetnonblocking(c, 1) != 0)
        return -1;
    int r;
    pgconn_wait_begin(c);
    while ((r = PQputCopyEnd(c, msg)) == 0)
        if (pgconn_poll(c, POLLOUT | POLLIN) != PGCONN_READY)
            return -1;
    if (r < 0)
        return -1;
    for (;;) {
        int f = PQflush(c);
        if (f < 0)
            return -1;
        if (f == 0)
            break;
        if (pgconn_poll(c, POLLOUT | POLLIN) != PGCONN_READY)
            return -1;
    }
    /* everything is flushed: switching back does not block */
    return !was_nonblocking && PQsetnonblocking(c, 0) != 0 ? -1 : 0;
}

/* Read and discard a COPY OUT nobody asked for.  0 or -1 (lost). */
static int skip_copy_out(PGconn *c)
{
    pgconn_wait_begin(c);
    for (;;) {
        char *buf;
        int k = PQgetCopyData(c, &buf, 1);
        if (k > 0) {
            PQfreemem(buf);
            pgconn_wait_begin(c);
        } else if (k == 0) {
            if (pgconn_poll(c, POLLIN) != PGCONN_READY)
                return -1;
        } else {
            return k == -1 ? 0 : -1;
        }
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
            if (end_copy_in(c, copy_in_msg ? copy_in_msg : "COPY abandoned"))
                return flags | PGCONN_F_BROKEN;
            break;
        case PGRES_COPY_OUT:
            PQclear(r);
            if (skip_copy_out(c))
                return flags | PGCONN_F_BROKEN;
            flags |= PGCONN_F_COPY_OUT;
            break;
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
    if (errlen > 0)
        errbuf[0] = '\0';
    PGcancel *cn = PQgetCancel(c);
    if (!cn)
        return -1;
    /* the child's verdict: one byte, then libpq's message */
    int fds[2];
    if (pipe(fds) != 0) {
        PQfreeCancel(cn);
        if (errlen > 0)
            snprintf(errbuf, (size_t)errlen, "could not send a cancel "
                     "request: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        /* async-signal-safe calls only: the parent may have threads */
        char msg[256];
        close(fds[0]);
        /* the Ctrl-C (or the closed terminal's SIGHUP) that asked for
         * this cancel may reach us too (sent to the process group): it
         * must not stop the request; the parent kills us when the time
         * is up */
        signal(SIGINT, SIG_IGN);
        signal(SIGTERM, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
        msg[0] = PQcancel(cn, msg + 1, (int)sizeof msg - 1) ? '1' : '0';
        ssize_t w = write(fds[1], msg, 1 + strlen(msg + 1));
        _exit(w > 0 ? 0 : 1);
    }
    int saved = errno;
    PQfreeCancel(cn);
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        if (errlen > 0)
            snprintf(errbuf, (size_t)errlen, "could not send a cancel "
                     "request: %s", strerror(saved));
        return -1;
    }
    char msg[256];
    size_t got = 0;
    long long until = pgconn_now_ms() + PGCONN_CANCEL_MS;
    for (;;) {
        long long left = until - pgconn_now_ms();
        if (left <= 0)
            break;
        struct pollfd p = { fds[0], POLLIN, 0 };
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno != EINTR)
            break;
        if (r <= 0)
            continue;
        ssize_t n = read(fds[0], msg + got, sizeof msg - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || (got += (size_t)n) == sizeof msg - 1)
            break; /* the child is done (end of file) */
    }
    close(fds[0]);
    int st;
    if (waitpid(pid, &st, WNOHANG) == 0) {
        kill(pid, SIGKILL);
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
    }
    msg[got] = '\0';
    if (got > 0 && msg[0] == '1')
        return 0;
    if (errlen > 0) {
        if (got > 0)
            snprintf(errbuf, (size_t)errlen, "%s", msg + 1);
        else
            snprintf(errbuf, (size_t)errlen, "no answer to the cancel "
                     "request within %d ms", PGCONN_CANCEL_MS);
    }
    return -1;
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
