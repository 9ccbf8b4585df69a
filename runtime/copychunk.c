/*
 * copychunk.c - COPY in chunks that set bad rows aside (see copychunk.h).
 */
#include "copychunk.h"
#include "copy.h"
#include "pgconn.h"

#include <stdlib.h>
#include <string.h>

/* The binary COPY header (signature, flags, extension length) and
 * trailer (a field count of -1). */
static const char BIN_HEADER[19] = "PGCOPY\n\377\r\n";
static const char BIN_TRAILER[2] = { '\377', '\377' };

int copy_chunk_init(copy_chunk *c, size_t cap)
{
    memset(c, 0, sizeof *c);
    c->cap = cap;
    c->ends = malloc(cap * sizeof *c->ends);
    c->gone = calloc(cap, 1);
    c->rej_row = malloc(cap * sizeof *c->rej_row);
    c->rej_err = malloc(cap * sizeof *c->rej_err);
    if (!c->ends || !c->gone || !c->rej_row || !c->rej_err)
        return SL_ENOMEM;
    return SL_OK;
}

static void clear_rejections(copy_chunk *c)
{
    for (size_t i = 0; i < c->nrej; i++)
        PQclear(c->rej_err[i]);
    c->nrej = 0;
}

void copy_chunk_free(copy_chunk *c)
{
    if (c->rej_err)
        clear_rejections(c);
    free(c->ends);
    free(c->gone);
    free(c->rej_row);
    free(c->rej_err);
    memset(c, 0, sizeof *c);
}

void copy_chunk_reset(copy_chunk *c)
{
    clear_rejections(c);
    memset(c->gone, 0, c->n);
    c->n = c->done = c->doubt = 0;
}

int copy_row_fault(const char *sqlstate, int relayed)
{
    if (!sqlstate || strlen(sqlstate) != 5)
        return 0;
    return strncmp(sqlstate, "22", 2) == 0 || strncmp(sqlstate, "23", 2) == 0 ||
           strncmp(sqlstate, "44", 2) == 0 || strncmp(sqlstate, "P0", 2) == 0 ||
           strcmp(sqlstate, "54000") == 0 || (relayed && strcmp(sqlstate, "XX000") == 0);
}

/* ------------------------------------------------------ the statements */

/* Run one statement and read its results (Ctrl-C left pending).  SL_OK,
 * SL_EFAIL with *err (owned by the caller), SL_EBROKEN. */
static int run(PGconn *pg, const char *sql, PGresult **err)
{
    *err = NULL;
    if (!PQsendQuery(pg, sql))
        return SL_EBROKEN;
    int f = pgconn_collect(pg, 0, "unexpected COPY", 0, NULL, err);
    if (f & PGCONN_F_BROKEN) {
        PQclear(*err);
        *err = NULL;
        return SL_EBROKEN;
    }
    return *err ? SL_EFAIL : SL_OK;
}

int copy_chunk_undo(PGconn *pg, const copy_chunk *c)
{
    PGresult *err;
    int rc;
    if (c->own_tx) {
        if (PQtransactionStatus(pg) == PQTRANS_IDLE)
            return SL_OK; /* a failed COMMIT ended it already */
        rc = run(pg, "ROLLBACK", &err);
    } else {
        rc = run(pg, "ROLLBACK TO SAVEPOINT " COPY_CHUNK_SAVEPOINT, &err);
        if (rc == SL_OK) {
            rc = run(pg, "RELEASE SAVEPOINT " COPY_CHUNK_SAVEPOINT, &err);
        }
    }
    PQclear(err);
    return rc == SL_EBROKEN ? SL_EBROKEN : SL_OK;
}

int copy_chunk_open(PGconn *pg, const copy_chunk *c, PGresult **err)
{
    *err = NULL;
    const char *pre = c->own_tx ? "BEGIN; "
                                : "SAVEPOINT " COPY_CHUNK_SAVEPOINT "; ";
    size_t np = strlen(pre), ns = strlen(c->sql);
    char *sql = malloc(np + ns + 1);
    if (!sql)
        return SL_ENOMEM;
    memcpy(sql, pre, np);
    memcpy(sql + np, c->sql, ns + 1);
    int interrupted;
    int rc = copy_begin(pg, sql, PGRES_COPY_IN, err, &interrupted);
    free(sql);
    if (rc == SL_OK && interrupted) {
        copy_end(pg, "COPY interrupted (Ctrl-C)");
        copy_drain(pg, "COPY interrupted (Ctrl-C)");
        rc = SL_EINTR;
    } else if (rc == SL_EFAIL && interrupted) {
        PQclear(*err);
        *err = NULL;
        rc = SL_EINTR;
    }
    if (rc == SL_OK && c->binary)
        rc = copy_put(pg, BIN_HEADER, sizeof BIN_HEADER, 1);
    if (rc == SL_EINTR || rc == SL_EFAIL) {
        if (PQisBusy(pg) || PQstatus(pg) != CONNECTION_OK)
            return SL_EBROKEN;
        if (rc == SL_EINTR && PQtransactionStatus(pg) == PQTRANS_ACTIVE) {
            copy_end(pg, "COPY interrupted (Ctrl-C)");
            copy_drain(pg, "COPY interrupted (Ctrl-C)");
        }
        if (copy_chunk_undo(pg, c) != SL_OK)
            return SL_EBROKEN;
    }
    return rc;
}

int copy_chunk_close(PGconn *pg, const copy_chunk *c, uint64_t *loaded,
                     int *committing, PGresult **err)
{
    *err = NULL;
    *committing = 0;
    int rc = c->binary ? copy_put(pg, BIN_TRAILER, sizeof BIN_TRAILER, 0)
                       : SL_OK;
    if (rc == SL_OK)
        rc = copy_end(pg, NULL);
    if (rc != SL_OK)
        return SL_EBROKEN;
    PGresult *ok = NULL;
    int f = pgconn_collect(pg, 0, "unexpected COPY", 0, &ok, err);
    if (f & PGCONN_F_BROKEN) {
        PQclear(ok);
        PQclear(*err);
        *err = NULL;
        return SL_EBROKEN;
    }
    if (*err) {
        PQclear(ok);
        return copy_chunk_undo(pg, c) == SL_OK ? SL_EFAIL : SL_EBROKEN;
    }
    const char *t = ok ? PQcmdTuples(ok) : "";
    uint64_t count = *t ? strtoull(t, NULL, 10) : 0;
    PQclear(ok);
    *committing = c->own_tx;
    rc = run(pg, c->own_tx ? "COMMIT"
                           : "RELEASE SAVEPOINT " COPY_CHUNK_SAVEPOINT, err);
    if (rc == SL_EBROKEN)
        return rc;
    *committing = 0;
    if (rc == SL_EFAIL) /* a deferred constraint at COMMIT */
        return copy_chunk_undo(pg, c) == SL_OK ? SL_EFAIL : SL_EBROKEN;
    *loaded += count;
    return SL_OK;
}

/* ------------------------------------------------------------ the rows */

static size_t row_start(const copy_chunk *c, size_t i)
{
    return i ? c->ends[i - 1] : 0;
}

/* Send rows [from, to) that are not gone, as one COPY of their own,
 * committed when it succeeds.  Nothing is sent when no row is left. */
static int try_rows(PGconn *pg, copy_chunk *c, const char *data,
                    size_t from, size_t to, uint64_t *loaded,
                    int *committing, PGresult **err)
{
    *err = NULL;
    size_t live = 0;
    for (size_t i = from; i < to; i++)
        live += !c->gone[i];
    if (live == 0) {
        c->done = to;
        return SL_OK;
    }
    int rc = copy_chunk_open(pg, c, err);
    if (rc != SL_OK)
        return rc;
    /* runs of rows that are not gone go out as one piece each */
    size_t i = from;
    while (i < to && rc == SL_OK) {
        while (i < to && c->gone[i])
            i++;
        size_t j = i;
        while (j < to && !c->gone[j])
            j++;
        if (j > i) {
            size_t s = row_start(c, i);
            rc = copy_put(pg, data + s, c->ends[j - 1] - s, 1);
        }
        i = j;
    }
    if (rc != SL_OK) {
        if (rc != SL_EINTR)
            return SL_EBROKEN;
        copy_end(pg, "COPY interrupted (Ctrl-C)");
        copy_drain(pg, "COPY interrupted (Ctrl-C)");
        return copy_chunk_undo(pg, c) == SL_OK ? SL_EINTR : SL_EBROKEN;
    }
    rc = copy_chunk_close(pg, c, loaded, committing, err);
    if (rc == SL_OK)
        c->done = to;
    else if (rc == SL_EBROKEN && *committing)
        c->doubt = live;
    return rc;
}

/* The line number N of "COPY <name>, line N" in an error's context, or
 * 0 (the context stacks the innermost call first: a trigger's line, then
 * the COPY's). */
static unsigned long copy_line_of(const PGresult *err)
{
    const char *ctx = PQresultErrorField(err, PG_DIAG_CONTEXT);
    for (const char *p = ctx; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > 5 && strncmp(p, "COPY ", 5) == 0) {
            /* the table's name may hold ", line ": take the last one */
            const char *hit = NULL;
            for (const char *q = p; q + 7 <= p + len; q++)
                if (strncmp(q, ", line ", 7) == 0)
                    hit = q + 7;
            if (hit && *hit >= '0' && *hit <= '9')
                return strtoul(hit, NULL, 10);
        }
        p = eol ? eol + 1 : NULL;
    }
    return 0;
}

/* The line feeds inside row i's fields (CSV quotes them as they are). */
static unsigned long inner_lines(const copy_chunk *c, const char *data,
                                 size_t i)
{
    unsigned long n = 0;
    const char *p = data + row_start(c, i), *end = data + c->ends[i] - 1;
    while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        n++;
        p++;
    }
    return n;
}

size_t copy_chunk_row_of(const copy_chunk *c, const char *data, size_t from,
                         size_t to, const PGresult *err)
{
    unsigned long line = copy_line_of(err);
    if (line == 0)
        return c->n;
    /* The server's "line N" after reading a row: rows so far, and in CSV
     * the line feeds inside quoted fields of every row but the COPY's
     * first (as PostgreSQL 15 counts them: measured). */
    unsigned long at = 0;
    int first = 1;
    for (size_t i = from; i < to; i++) {
        if (c->gone[i])
            continue;
        at++;
        if (c->csv && !first)
            at += inner_lines(c, data, i);
        first = 0;
        if (at >= line)
            return i;
    }
    return c->n;
}

/* Set row i aside with its error (taken).  The rejections are kept in
 * row order: the server does not name bad rows in order (a unique key is
 * checked when its rows are flushed to the table, after later rows'
 * CHECK constraints), and settling the rows before a named one may find
 * more. */
static void reject(copy_chunk *c, size_t i, PGresult *err)
{
    size_t k = c->nrej;
    while (k > 0 && c->rej_row[k - 1] > i) {
        c->rej_row[k] = c->rej_row[k - 1];
        c->rej_err[k] = c->rej_err[k - 1];
        k--;
    }
    c->gone[i] = 1;
    c->rej_row[k] = i;
    c->rej_err[k] = err;
    c->nrej++;
}

static int settle_range(PGconn *pg, copy_chunk *c, const char *data,
                        size_t from, size_t to, PGresult *err,
                        uint64_t *loaded, int *committing, PGresult **fatal);

/* Send rows [from, to) and settle them if that fails. */
static int send_range(PGconn *pg, copy_chunk *c, const char *data,
                      size_t from, size_t to, uint64_t *loaded,
                      int *committing, PGresult **fatal)
{
    PGresult *err;
    int rc = try_rows(pg, c, data, from, to, loaded, committing, &err);
    if (rc == SL_EFAIL)
        return settle_range(pg, c, data, from, to, err, loaded, committing,
                            fatal);
    return rc;
}

/* The smallest window of rows sent again after a failure. */
#define MIN_WINDOW 64

/* Rows [from, to) failed with err (taken), and were undone.  Settled in
 * windows that follow the density of bad rows: after the server names a
 * bad row, the window sent next runs from the first unsettled row to as
 * far past the bad one as the bad one was from that row (at least
 * MIN_WINDOW rows), so dense bad rows cost small windows and sparse ones
 * few sends; every window that goes through doubles the next.  The rows
 * before a named row are sent again with the next window (the server took
 * them once: they are expected to pass), so a bad row costs one more send
 * of about a window, and one rejected COPY. */
static int settle_range(PGconn *pg, copy_chunk *c, const char *data,
                        size_t from, size_t to, PGresult *err,
                        uint64_t *loaded, int *committing, PGresult **fatal)
{
    size_t hi = to;       /* err is the failure of [from, hi) */
    size_t gap = MIN_WINDOW;
    for (;;) {
        if (err) {
            if (!copy_row_fault(PQresultErrorField(err, PG_DIAG_SQLSTATE), c->relayed)) {
                *fatal = err;
                return SL_EFAIL;
            }
            size_t live = 0, first = hi;
            for (size_t i = from; i < hi; i++) {
                if (!c->gone[i] && live++ == 0)
                    first = i;
            }
            size_t bad = copy_chunk_row_of(c, data, from, hi, err);
            if (bad == c->n && live == 1)
                bad = first;
            if (bad == c->n) {
                /* no row named: each half on its own */
                PQclear(err);
                err = NULL;
                size_t mid = first, half = live / 2;
                for (size_t k = 0; k < half; mid++)
                    k += !c->gone[mid];
                int rc = send_range(pg, c, data, from, mid, loaded,
                                    committing, fatal);
                if (rc == SL_OK)
                    rc = send_range(pg, c, data, mid, hi, loaded, committing,
                                    fatal);
                if (rc != SL_OK)
                    return rc;
                from = hi;
                c->done = from;
            } else {
                reject(c, bad, err);
                err = NULL;
                size_t span = bad + 1 - from;
                gap = span < MIN_WINDOW ? MIN_WINDOW : span;
                hi = bad + 1 + gap < to ? bad + 1 + gap : to;
                if (from == bad) {
                    from = bad + 1;
                    c->done = from;
                }
                if (from >= to)
                    return SL_OK;
                int rc = try_rows(pg, c, data, from, hi, loaded, committing,
                                  &err);
                if (rc == SL_OK) {
                    from = hi;
                    gap *= 2;
                } else if (rc != SL_EFAIL) {
                    return rc;
                }
                continue;
            }
        }
        if (from >= to)
            return SL_OK;
        hi = from + gap < to ? from + gap : to;
        int rc = try_rows(pg, c, data, from, hi, loaded, committing, &err);
        if (rc == SL_OK) {
            from = hi;
            gap *= 2;
        } else if (rc != SL_EFAIL) {
            return rc;
        }
    }
}

int copy_chunk_settle(PGconn *pg, copy_chunk *c, const char *data,
                      PGresult *err, uint64_t *loaded, int *committing,
                      PGresult **fatal)
{
    *fatal = NULL;
    *committing = 0;
    return settle_range(pg, c, data, 0, c->n, err, loaded, committing, fatal);
}
