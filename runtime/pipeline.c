/*
 * pipeline.c - pipelined executions over libpq (see pipeline.h).
 *
 * Caveats:
 * - The server sends results only when its output buffer fills or at a
 *   sync point, so pipe_pump(wait_all) is only used after pipe_sync().
 * - libpq's output buffer would grow without bound if the server stopped
 *   reading (it stops when its own output is not read): pipe_send_row()
 *   therefore reads results while it waits for libpq to flush, which is
 *   what keeps the pipe from deadlocking.
 * - PQgetResult() may only be called when PQisBusy() is false, or it
 *   blocks in libpq where Ctrl-C cannot reach.
 * - pipe_pump() waits in pgconn_poll(), so the connection's silence bound
 *   and the grace after Ctrl-C apply (pgconn.h).
 */
#include "pipeline.h"
#include "sbuf.h"
#include "interrupt.h"
#include "pgconn.h"
#include "copychunk.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

enum { IT_COMMIT = PIPE_IT_COMMIT, IT_ROW = PIPE_IT_ROW,
       IT_CTRL = PIPE_IT_CTRL, IT_SYNC = PIPE_IT_SYNC,
       IT_RELEASE = PIPE_IT_RELEASE };

#define SAVEPOINT_NAME "sluice_pipe"

#define PUMP_EVERY 64 /* rows between reads of the results that came */

static int push_item(pipe_state *s, int kind, uint64_t row, uint64_t count)
{
    if (s->head == s->tail)
        s->head = s->tail = 0;
    if (s->tail == s->cap) {
        if (s->head > 0) { /* slide the live part down */
            for (size_t i = s->head; i < s->tail; i++)
                s->fifo[i - s->head] = s->fifo[i];
            s->tail -= s->head;
            s->head = 0;
        } else {
            size_t c = s->cap ? s->cap * 2 : 1024;
            pipe_item *f = realloc(s->fifo, c * sizeof *f);
            if (!f)
                return SL_ENOMEM;
            s->fifo = f;
            s->cap = c;
        }
    }
    pipe_item *it = &s->fifo[s->tail++];
    it->row = row;
    it->count = count;
    it->kind = kind;
    return SL_OK;
}

static int send_ctrl(pipe_state *s, const char *sql, int kind)
{
    if (!PQsendQueryParams(s->pg, sql, 0, NULL, NULL, NULL, NULL, 0))
        return SL_EBROKEN;
    return push_item(s, kind, s->last_row, 0);
}

int pipe_enter(pipe_state *s, PGconn *pg, int autocommit, int reject)
{
    s->pg = pg;
    s->autocommit = autocommit;
    s->reject = reject;
    if (PQsetnonblocking(pg, 1) != 0)
        return SL_EBROKEN;
    if (!PQenterPipelineMode(pg)) {
        PQsetnonblocking(pg, 0);
        return SL_EBROKEN;
    }
    s->active = 1;
    return SL_OK;
}

/* Take one result that arrived: map it to what was sent. */
static void take(pipe_state *s, PGresult *r)
{
    ExecStatusType st = PQresultStatus(r);
    if (s->head == s->tail) { /* nothing expected: ignore */
        PQclear(r);
        return;
    }
    pipe_item item = s->fifo[s->head++];
    int kind = item.kind;
    if (st == PGRES_PIPELINE_SYNC) {
        PQclear(r);
        return;
    }
    /* a COMMIT that ran (not skipped after a failure, not turned into a
     * ROLLBACK by an aborted block) committed its whole group */
    if (kind == IT_COMMIT && st == PGRES_COMMAND_OK &&
        strcmp(PQcmdStatus(r), "COMMIT") == 0) {
        s->rows_committed += item.count;
        s->rows_confirmed += item.count;
        s->confirmed_upto = item.row;
    }
    if (kind == IT_RELEASE && st == PGRES_COMMAND_OK) {
        s->rows_confirmed += item.count;
        s->confirmed_upto = item.row;
    }
    if (kind == IT_ROW)
        s->rows_done++;
    if ((st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE) && !s->err) {
        s->err = r;
        s->err_row = item.row;
        s->err_kind = kind;
        return;
    }
    PQclear(r);
}

/* Read every result libpq has complete, without blocking. */
static void take_ready(pipe_state *s)
{
    int nulls = 0;
    while (s->head < s->tail && !PQisBusy(s->pg)) {
        PGresult *r = PQgetResult(s->pg);
        if (!r) {
            /* the end of one query's results; two in a row: nothing more
             * is ready */
            if (++nulls > 1)
                break;
            continue;
        }
        nulls = 0;
        take(s, r);
    }
}

int pipe_pump(pipe_state *s, int wait_all, int interruptible)
{
    s->since_pump = 0;
    pgconn_wait_begin(s->pg);
    for (;;) {
        int f = PQflush(s->pg);
        if (f < 0 || !PQconsumeInput(s->pg))
            return SL_EBROKEN;
        take_ready(s);
        if (PQstatus(s->pg) == CONNECTION_BAD)
            return SL_EBROKEN;
        if (f == 0 && (!wait_all || s->head == s->tail))
            return SL_OK;
        if (interruptible && interrupt_pending())
            return SL_EINTR;
        /* the connection's silence bound applies (pgconn_poll) */
        if (pgconn_poll(s->pg, f == 1 ? POLLIN | POLLOUT : POLLIN) !=
            PGCONN_READY)
            return SL_EBROKEN;
    }
}

int pipe_send_row(pipe_state *s, const char *stmt, int n,
                  const char *const *values, const int *lengths,
                  const int *formats, uint64_t row, int interruptible)
{
    int rc;
    if (!s->group_open) {
        if (s->autocommit && (rc = send_ctrl(s, "BEGIN", IT_CTRL)) != SL_OK)
            return rc;
        if (!s->autocommit && s->reject &&
            (rc = send_ctrl(s, "SAVEPOINT " SAVEPOINT_NAME, IT_CTRL)) != SL_OK)
            return rc;
        s->group_open = 1;
        s->group_rows = 0;
    }
    if (!PQsendQueryPrepared(s->pg, stmt, n, values, lengths, formats, 0))
        return SL_EBROKEN;
    if (row > s->rows_sent)
        s->rows_sent = row;
    s->last_row = row;
    s->group_rows++;
    if ((rc = push_item(s, IT_ROW, row, 0)) != SL_OK)
        return rc;
    /* libpq sends by itself once it holds 8 KiB; every PUMP_EVERY rows
     * make sure all of it left and read what came back */
    if (++s->since_pump >= PUMP_EVERY)
        return pipe_pump(s, 0, interruptible);
    return SL_OK;
}

int pipe_sync(pipe_state *s)
{
    int rc;
    if (s->group_open && s->autocommit) {
        if (!PQsendQueryParams(s->pg, "COMMIT", 0, NULL, NULL, NULL, NULL, 0))
            return SL_EBROKEN;
        if ((rc = push_item(s, IT_COMMIT, s->last_row, s->group_rows)) != SL_OK)
            return rc;
        s->rows_commit_sent += s->group_rows;
    } else if (s->group_open && s->reject) {
        if (!PQsendQueryParams(s->pg, "RELEASE SAVEPOINT " SAVEPOINT_NAME, 0,
                               NULL, NULL, NULL, NULL, 0))
            return SL_EBROKEN;
        if ((rc = push_item(s, IT_RELEASE, s->last_row, s->group_rows)) != SL_OK)
            return rc;
    }
    s->group_open = 0;
    s->group_rows = 0;
    if (!PQpipelineSync(s->pg))
        return SL_EBROKEN;
    return push_item(s, IT_SYNC, s->last_row, 0);
}

int pipe_row_fault(const pipe_state *s)
{
    if (!s->err || s->err_kind != IT_ROW)
        return 0;
    return copy_row_fault(PQresultErrorField(s->err, PG_DIAG_SQLSTATE), 0);
}

int pipe_recover(pipe_state *s)
{
    int rc;
    if (s->autocommit)
        rc = send_ctrl(s, "ROLLBACK", IT_CTRL);
    else if ((rc = send_ctrl(s, "ROLLBACK TO SAVEPOINT " SAVEPOINT_NAME,
                             IT_CTRL)) == SL_OK)
        rc = send_ctrl(s, "RELEASE SAVEPOINT " SAVEPOINT_NAME, IT_CTRL);
    if (rc == SL_OK)
        rc = pipe_sync(s);
    if (rc == SL_OK)
        rc = pipe_pump(s, 1, 0);
    return rc;
}

int pipe_finish(pipe_state *s, int commit)
{
    if (!s->active)
        return SL_OK;
    int rc = SL_OK;
    if (PQstatus(s->pg) == CONNECTION_BAD) {
        rc = SL_EBROKEN;
        goto out;
    }
    if (s->group_open) {
        /* never commit what the caller did not ask to: ROLLBACK instead
         * of COMMIT ends the group (it also ends it after a failure) */
        if (s->autocommit && (!commit || s->err)) {
            if (send_ctrl(s, "ROLLBACK", IT_CTRL) != SL_OK)
                rc = SL_EBROKEN;
            s->group_open = 0;
        } else if (!s->autocommit && s->reject && (!commit || s->err)) {
            /* reject mode in the caller's transaction: undo the group */
            if (send_ctrl(s, "ROLLBACK TO SAVEPOINT " SAVEPOINT_NAME,
                          IT_CTRL) != SL_OK ||
                send_ctrl(s, "RELEASE SAVEPOINT " SAVEPOINT_NAME,
                          IT_CTRL) != SL_OK)
                rc = SL_EBROKEN;
            s->group_open = 0;
        }
    }
    /* anything sent after the last sync point needs one */
    if (rc == SL_OK && (s->group_open ||
                          (s->tail > s->head &&
                           s->fifo[s->tail - 1].kind != IT_SYNC)))
        rc = pipe_sync(s);
    if (rc == SL_OK)
        rc = pipe_pump(s, 1, 0);
    /* a failed group leaves its transaction block aborted: end it */
    if (rc == SL_OK && s->autocommit &&
        PQtransactionStatus(s->pg) == PQTRANS_INERROR) {
        if (send_ctrl(s, "ROLLBACK", IT_CTRL) != SL_OK || pipe_sync(s) != SL_OK ||
            pipe_pump(s, 1, 0) != SL_OK)
            rc = SL_EBROKEN;
    }
out:
    if (PQstatus(s->pg) == CONNECTION_OK) {
        /* collect the trailing NULL so libpq is idle again */
        while (!PQisBusy(s->pg)) {
            PGresult *r = PQgetResult(s->pg);
            if (!r)
                break;
            PQclear(r);
        }
        if (!PQexitPipelineMode(s->pg))
            rc = SL_EBROKEN;
        if (PQsetnonblocking(s->pg, 0) != 0)
            rc = SL_EBROKEN;
    }
    s->active = 0;
    s->group_open = 0;
    return rc;
}

void pipe_free(pipe_state *s)
{
    free(s->fifo);
    s->fifo = NULL;
    s->head = s->tail = s->cap = 0;
    if (s->err) {
        PQclear(s->err);
        s->err = NULL;
    }
}
