/*
 * lib_pipeline.c - Lua binding of libpq's pipeline mode,
 * "sluice.pipeline" (db:pipeline(sql, opts), lua/sluice/pipeline.lua).
 *
 * One prepared statement, executed once per pl:send(v1, ..., vN) with
 * many executions in flight: no round trip per row.  A sync point every
 * sync_every rows ends a group; with no transaction open on the
 * connection each group runs in its own BEGIN ... COMMIT (pipeline.h), so
 * exactly the groups before a failure are committed.  When the caller
 * holds a transaction nothing is committed here; a failure aborts the
 * caller's transaction.
 *
 * The row values are encoded in C (lib_params.c) into a buffer reused for
 * every row, with the parameter types the server reported for the
 * statement.  A failure, whenever it is read (in send, sync or close),
 * ends the pipeline and raises the server's error object with `row` set
 * to the failing row and the message prefixed "pipeline: row N: ".
 *
 * Reject mode (opts.on_reject): the row values are not dropped after
 * each send but kept in the same params buffer (row kept_first at index
 * 0) until their group is confirmed (s.confirmed_upto, pipeline.h); a
 * row's failure is settled by settle(): every answer read, the aborted
 * block ended (pipe_recover), the row set aside (gone[], and queued in
 * fenv[FENV_PENDING] with its values and error) and the kept rows sent
 * again.  The queued rejections go to on_reject at the end of the call
 * that found them (hand_over), in row order.  Confirmed rows leave the
 * buffer once they are at least half of it (params_drop_front), so a
 * row costs no more than a copy.
 *
 * Ownership: the pipeline keeps its connection alive (fenv) and sets
 * conn->busy while open (libpq allows nothing else, COPY included, in
 * pipeline mode).  One release routine (close, failure, __gc) leaves
 * pipeline mode; __gc never commits: it rolls the open group back.
 */
#include "lib.h"
#include "copy.h"
#include "interrupt.h"
#include "params.h"
#include "pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { FENV_CONN = 1, FENV_REJECT, FENV_PENDING };
enum { PL_OPEN = 1, PL_CLOSED, PL_FAILED };
static const char *const pl_state_names[] = { "new", "open", "closed",
                                              "failed" };

typedef struct sl_pipeline {
    sl_conn *conn;     /* borrowed: fenv[FENV_CONN] keeps it alive */
    int state;
    int nparams;
    int *kinds;        /* owned: encoder family per parameter */
    int sync_every;
    int since_sync;
    char name[32];     /* the prepared statement */
    params_buf p;      /* owned: the row being sent */
    pipe_state s;      /* owned: FIFO, kept error */
    int lost;          /* the connection broke before every answer came */
    /* reject mode: p keeps every row after s.confirmed_upto (row
     * kept_first at index 0), to be sent again after a row's failure */
    int reject;
    uint64_t kept_first;
    uint64_t given;    /* rows given to send() */
    uint64_t *gone;    /* owned: rejected rows still kept, ascending */
    size_t ngone, capgone;
    uint64_t nrejected;
    int pend_head, pend_tail; /* rejections to hand over (fenv[PENDING]) */
    int handing;       /* on_reject is running */
    lib_progress prog; /* opts.progress: ticks at sync points */
    uint64_t bytes;    /* encoded parameters sent, for progress */
} sl_pipeline;

/* The one release routine.  Ends pipeline mode if still in it (the open
 * group committed only when `commit`), clears conn->busy, hides the
 * progress line.  Keeps s.err for the caller; frees the rest.  Never
 * raises. */
static int pl_end(lua_State *L, sl_pipeline *pl, int commit, int new_state)
{
    int rc = SL_OK;
    if (pl->state == PL_OPEN)
        lib_progress_call(L, &pl->prog, 0, 0, -1, LIB_PROGRESS_HIDE);
    pl->prog.live = 0;
    if (pl->state == PL_OPEN) {
        pl->state = new_state;
        pl->conn->busy = 0;
        rc = pl->conn->pg ? pipe_finish(&pl->s, commit) : SL_EBROKEN;
        if (rc == SL_EBROKEN)
            pl->lost = 1;
    }
    params_free(&pl->p);
    free(pl->kinds);
    pl->kinds = NULL;
    free(pl->gone);
    pl->gone = NULL;
    pl->ngone = pl->capgone = 0;
    return rc;
}

/* Rows settled: committed (or, in the caller's transaction, released into
 * it) or handed to on_reject; without reject mode, rows answered. */
static uint64_t rows_done(const sl_pipeline *pl)
{
    return pl->reject ? pl->s.rows_confirmed + pl->nrejected
                      : pl->s.rows_done;
}

static int pl_gc(lua_State *L)
{
    sl_pipeline *pl = luaL_checkudata(L, 1, SLUICE_PIPELINE_MT);
    pl_end(L, pl, 0, PL_CLOSED);
    lib_progress_free(L, &pl->prog);
    pipe_free(&pl->s);
    return 0;
}

static int push_conn(lua_State *L)
{
    lua_getfenv(L, 1);
    lua_rawgeti(L, -1, FENV_CONN);
    lua_remove(L, -2);
    return lua_gettop(L);
}

static void push_u64(lua_State *L, uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    lua_pushstring(L, buf);
}

/* Did the kept failure come from the server?  libpq reports a lost
 * connection as a failure too, with no SQLSTATE (or class 08): no
 * answer came for what was in flight.  A class 08 ERROR (08P01 for bad
 * binary data in one statement) is an answer: the session goes on. */
static int err_answered(const PGresult *err)
{
    const char *code = err ? PQresultErrorField(err, PG_DIAG_SQLSTATE) : NULL;
    const char *sev =
        err ? PQresultErrorField(err, PG_DIAG_SEVERITY_NONLOCALIZED) : NULL;
    return code && *code &&
           (strncmp(code, "08", 2) != 0 || (sev && strcmp(sev, "ERROR") == 0));
}

/* Rows whose group's COMMIT was sent but never answered: nobody can tell
 * whether they were committed.  A failure the server reported is read
 * in order after every answer before it, and no later group commits
 * (pipeline.h), so then nothing is in doubt. */
static uint64_t rows_in_doubt(const sl_pipeline *pl)
{
    const pipe_state *s = &pl->s;
    if (!s->autocommit || err_answered(s->err) || !pl->lost)
        return 0;
    return s->rows_commit_sent > s->rows_committed
               ? s->rows_commit_sent - s->rows_committed : 0;
}

/* Push " (what was committed)" for the message of a pipeline that
 * ended on a failure; `server_failed`: the server reported one. */
static void push_claims(lua_State *L, sl_pipeline *pl, int server_failed)
{
    pipe_state *s = &pl->s;
    uint64_t k = s->rows_committed, d = rows_in_doubt(pl);
    luaL_Buffer b;
    char num[64];
    luaL_buffinit(L, &b);
    if (!s->autocommit) {
        if (server_failed)
            luaL_addstring(&b, " (the caller's transaction is aborted; roll "
                               "it back)");
        else if (pl->lost)
            luaL_addstring(&b, " (the connection was lost, and the caller's "
                               "transaction with it)");
        else if (PQtransactionStatus(pl->conn->pg) == PQTRANS_INERROR)
            luaL_addstring(&b, " (the caller's transaction is aborted; roll "
                               "it back)");
        else {
            snprintf(num, sizeof num, "%llu", (unsigned long long)rows_done(pl));
            luaL_addstring(&b, " (rows 1-");
            luaL_addstring(&b, num);
            luaL_addstring(&b, " were executed in the caller's transaction, "
                               "nothing is committed here)");
        }
        luaL_pushresult(&b);
        return;
    }
    if (pl->reject) {
        snprintf(num, sizeof num, " (%llu rows were committed and ",
                 (unsigned long long)k);
        luaL_addstring(&b, num);
        snprintf(num, sizeof num, "%llu handed to on_reject",
                 (unsigned long long)pl->nrejected);
        luaL_addstring(&b, num);
        if (s->confirmed_upto > 0) {
            snprintf(num, sizeof num, "; each row up to row %llu is one or "
                     "the other", (unsigned long long)s->confirmed_upto);
            luaL_addstring(&b, num);
        }
        if (d > 0) {
            snprintf(num, sizeof num, "; %llu rows after it ",
                     (unsigned long long)d);
            luaL_addstring(&b, num);
            luaL_addstring(&b, "may or may not have been committed: their "
                               "COMMIT was sent, but the connection was lost "
                               "before the server answered (check the "
                               "table)");
        }
        luaL_addstring(&b, "; no other row was committed)");
        luaL_pushresult(&b);
        return;
    }
    if (k == 0 && d == 0) {
        luaL_addstring(&b, " (nothing was committed)");
        luaL_pushresult(&b);
        return;
    }
    if (k == 0) {
        luaL_addstring(&b, " (nothing was committed for certain");
    } else {
        snprintf(num, sizeof num, " (rows 1-%llu were committed by earlier "
                                  "syncs", (unsigned long long)k);
        luaL_addstring(&b, num);
    }
    if (d > 0) {
        snprintf(num, sizeof num, "; rows %llu-%llu ",
                 (unsigned long long)k + 1, (unsigned long long)(k + d));
        luaL_addstring(&b, num);
        luaL_addstring(&b, "may or may not have been committed: their COMMIT "
                           "was sent, but the connection was lost before the "
                           "server answered (check the table)");
    }
    snprintf(num, sizeof num, "; nothing from row %llu on was)",
             (unsigned long long)(k + d + 1));
    luaL_addstring(&b, num);
    luaL_pushresult(&b);
}

/* Raise what ended the pipeline, as an error object whose message and
 * fields (row, committed_rows, in_doubt_rows) say what was committed:
 * the kept failure (the server's error, with its row) if any, else the
 * lost connection's error, else `msg` (Ctrl-C, out of memory).  The
 * pipeline must be ended (pl_end) already, so every answer that could
 * come is in. */
static int raise_outcome(lua_State *L, sl_pipeline *pl, const char *msg)
{
    pipe_state *s = &pl->s;
    int server_failed = err_answered(s->err);
    if (s->err) {
        lib_push_result_error(L, s->err, pl->conn->pg);
    } else if (pl->lost) {
        lib_push_conn_error(L, pl->conn->pg);
    } else {
        lua_createtable(L, 0, 4);
        lua_pushstring(L, msg);
        lua_setfield(L, -2, "message");
        luaL_getmetatable(L, SLUICE_ERROR_MT);
        lua_setmetatable(L, -2);
    }
    int e = lua_gettop(L);
    if (s->err) {
        lua_pushnumber(L, (lua_Number)s->err_row);
        lua_setfield(L, e, "row");
    }
    lua_pushnumber(L, (lua_Number)s->rows_committed);
    lua_setfield(L, e, "committed_rows");
    lua_pushnumber(L, (lua_Number)rows_in_doubt(pl));
    lua_setfield(L, e, "in_doubt_rows");
    if (s->err) {
        lua_pushliteral(L, "pipeline: row ");
        push_u64(L, s->err_row);
        lua_pushliteral(L, ": ");
    } else {
        lua_pushliteral(L, "pipeline: ");
        lua_pushliteral(L, "");
        lua_pushliteral(L, "");
    }
    lua_getfield(L, e, "message");
    push_claims(L, pl, server_failed);
    lua_concat(L, 5);
    lua_setfield(L, e, "message");
    return lua_error(L);
}

/* ---------------------------------------------------------- reject mode */

/* Forget the kept rows up to s.confirmed_upto (committed or released):
 * moved out of the buffer once they are at least half of it. */
static void drop_confirmed(sl_pipeline *pl)
{
    uint64_t upto = pl->s.confirmed_upto;
    while (pl->ngone > 0 && pl->gone[0] <= upto) {
        memmove(pl->gone, pl->gone + 1, (pl->ngone - 1) * sizeof *pl->gone);
        pl->ngone--;
    }
    if (upto < pl->kept_first)
        return;
    uint64_t drop = upto - pl->kept_first + 1;
    uint64_t kept = pl->given - upto;
    if (drop < kept)
        return;
    params_drop_front(&pl->p, (size_t)drop * (size_t)pl->nparams);
    pl->kept_first = upto + 1;
}

static int is_gone(const sl_pipeline *pl, uint64_t row)
{
    for (size_t i = 0; i < pl->ngone; i++)
        if (pl->gone[i] == row)
            return 1;
    return 0;
}

/* Push the kept values of row as sent: strings, nil for NULL. */
static void push_values(lua_State *L, sl_pipeline *pl, uint64_t row)
{
    size_t base = (size_t)(row - pl->kept_first) * (size_t)pl->nparams;
    lua_createtable(L, pl->nparams, 0);
    for (int j = 0; j < pl->nparams; j++) {
        size_t k = base + (size_t)j;
        if (k >= pl->p.n || pl->p.off[k] == PARAMS_NULL)
            continue;
        lua_pushlstring(L, pl->p.data.data + pl->p.off[k],
                        (size_t)pl->p.len[k]);
        lua_rawseti(L, -2, j + 1);
    }
}

/* Set the failed row aside: {values, err, row} queued for on_reject (the
 * pipeline userdata at index 1), the row marked gone.  Takes err. */
static int set_aside(lua_State *L, sl_pipeline *pl, uint64_t row,
                     PGresult *err)
{
    if (pl->ngone == pl->capgone) {
        size_t c = pl->capgone ? pl->capgone * 2 : 16;
        uint64_t *g = realloc(pl->gone, c * sizeof *g);
        if (!g) {
            PQclear(err);
            return SL_ENOMEM;
        }
        pl->gone = g;
        pl->capgone = c;
    }
    pl->gone[pl->ngone++] = row;
    pl->nrejected++;
    lua_getfenv(L, 1);
    lua_rawgeti(L, -1, FENV_PENDING);
    lua_createtable(L, 3, 0);
    push_values(L, pl, row);
    lua_rawseti(L, -2, 1);
    lib_push_result_error(L, err, pl->conn->pg);
    lua_rawseti(L, -2, 2);
    lua_pushnumber(L, (lua_Number)row);
    lua_rawseti(L, -2, 3);
    lua_rawseti(L, -2, ++pl->pend_tail);
    lua_pop(L, 2);
    PQclear(err);
    return SL_OK;
}

/* Send the kept rows after confirmed_upto again, but the gone ones; stops
 * at a failure read meanwhile (the rows after it go again later). */
static int resend(sl_pipeline *pl)
{
    pipe_state *s = &pl->s;
    uint64_t from = s->confirmed_upto + 1;
    if (from < pl->kept_first)
        from = pl->kept_first;
    for (uint64_t row = from; row <= pl->given && !s->err; row++) {
        if (is_gone(pl, row))
            continue;
        size_t base = (size_t)(row - pl->kept_first) * (size_t)pl->nparams;
        if (params_bind(&pl->p, base, (size_t)pl->nparams) != SL_OK)
            return SL_ENOMEM;
        int rc = pipe_send_row(s, pl->name, pl->nparams, pl->p.ptrs,
                               pl->p.lens, pl->p.fmts, row, 1);
        if (rc == SL_OK && ++pl->since_sync >= pl->sync_every) {
            pl->since_sync = 0;
            rc = pipe_sync(s);
        }
        if (rc != SL_OK)
            return rc;
    }
    return SL_OK;
}

/* A row failed for its own fault: read every result (the groups after
 * its own failed with it), end the aborted block, set the row aside and
 * send the kept rows again; again for each failure this meets.  Leaves
 * s.err set only for an error that is no row's fault. */
static int settle(lua_State *L, sl_pipeline *pl)
{
    pipe_state *s = &pl->s;
    int rc = SL_OK;
    while (rc == SL_OK && pipe_row_fault(s)) {
        if (s->group_open && (rc = pipe_sync(s)) != SL_OK)
            break;
        if ((rc = pipe_pump(s, 1, 1)) != SL_OK)
            break;
        PGresult *err = s->err;
        uint64_t row = s->err_row;
        s->err = NULL;
        /* every answer is in: no COMMIT is awaited */
        s->rows_commit_sent = s->rows_committed;
        if ((rc = set_aside(L, pl, row, err)) != SL_OK)
            break;
        if ((rc = pipe_recover(s)) != SL_OK || s->err)
            break;
        pl->since_sync = 0;
        rc = resend(pl);
    }
    return rc;
}

/* Every group synced, every answer read and every row failure settled.
 * A failure that is no row's fault is left in s.err. */
static int settle_all(lua_State *L, sl_pipeline *pl)
{
    pipe_state *s = &pl->s;
    for (;;) {
        int rc = SL_OK;
        pl->since_sync = 0;
        if (s->group_open && (rc = pipe_sync(s)) != SL_OK)
            return rc;
        if ((rc = pipe_pump(s, 1, 1)) != SL_OK)
            return rc;
        if (!pipe_row_fault(s))
            return SL_OK;
        if ((rc = settle(L, pl)) != SL_OK)
            return rc;
    }
}

/* Hand the rejections queued so far to on_reject, in row order (the
 * pipeline at index 1).  An error on_reject raises does not stop the
 * others from being handed over; then the pipeline ends (its open group
 * rolled back, as pl:abort() does) and the first error is raised with
 * what was committed.  on_reject may call pl:send() (a corrected row);
 * its own rejections are handed over by this same loop.  `quiet`: the
 * pipeline has ended on an error about to be raised; on_reject's errors
 * are dropped. */
static void hand_over(lua_State *L, sl_pipeline *pl, int quiet)
{
    if (!pl->reject || pl->handing || pl->pend_head == pl->pend_tail)
        return;
    int top = lua_gettop(L);
    lua_getfenv(L, 1);
    int fenv = lua_gettop(L);
    lua_pushnil(L); /* the first error */
    int first = lua_gettop(L);
    uint64_t first_row = 0;
    pl->handing = 1;
    while (pl->pend_head < pl->pend_tail) {
        int i = ++pl->pend_head;
        lua_rawgeti(L, fenv, FENV_PENDING);
        lua_rawgeti(L, -1, i);
        lua_pushnil(L);
        lua_rawseti(L, -3, i);
        lua_remove(L, -2);
        int item = lua_gettop(L);
        lua_rawgeti(L, fenv, FENV_REJECT);
        lua_rawgeti(L, item, 1);
        lua_rawgeti(L, item, 2);
        lua_rawgeti(L, item, 3);
        uint64_t row = (uint64_t)lua_tonumber(L, -1);
        if (lua_pcall(L, 3, 0, 0) != 0) {
            if (first_row == 0) {
                lua_replace(L, first);
                first_row = row;
            } else {
                lua_pop(L, 1);
            }
        }
        lua_settop(L, item - 1);
    }
    pl->handing = 0;
    if (first_row == 0 || quiet) {
        lua_settop(L, top);
        return;
    }
    pl_end(L, pl, 0, PL_FAILED);
    lua_pushliteral(L, "pipeline: on_reject raised for row ");
    push_u64(L, first_row);
    push_claims(L, pl, 0);
    lua_pushliteral(L, ": ");
    if (lua_type(L, first) != LUA_TTABLE) {
        /* a string (or another value): an error object of its own */
        if (lua_isstring(L, first))
            lua_pushvalue(L, first);
        else
            lua_pushstring(L, luaL_typename(L, first));
        lib_push_error(L, NULL, lua_tostring(L, -1), NULL, NULL);
        lua_replace(L, first);
        lua_pop(L, 1);
    }
    lua_getfield(L, first, "message");
    lua_concat(L, 5);
    lua_setfield(L, first, "message");
    lua_pushnumber(L, (lua_Number)first_row);
    lua_setfield(L, first, "row");
    lua_pushnumber(L, (lua_Number)pl->s.rows_committed);
    lua_setfield(L, first, "committed_rows");
    lua_pushnumber(L, (lua_Number)rows_in_doubt(pl));
    lua_setfield(L, first, "in_doubt_rows");
    lua_pushvalue(L, first);
    lua_error(L);
}

/* After a pipe_* call: on a broken connection, Ctrl-C, out of memory or
 * a failure the server reported, end the pipeline (which reads every
 * answer still to come) and raise what happened and what was committed.
 * Ctrl-C first sends a cancel request: the server's answers then say
 * what it stopped. */
static void check(lua_State *L, sl_pipeline *pl, int rc)
{
    if (rc == SL_OK && pl->reject && pipe_row_fault(&pl->s))
        rc = settle(L, pl);
    if (rc == SL_OK && !pl->s.err)
        return;
    if (rc == SL_EINTR) {
        char buf[256];
        pgconn_cancel(pl->conn->pg, buf, sizeof buf);
    }
    if (rc == SL_EBROKEN)
        pl->lost = 1;
    pl_end(L, pl, 0, PL_FAILED);
    hand_over(L, pl, 1); /* the rows set aside before it */
    if (rc == SL_EINTR) {
        int sig = lib_interrupt_consume(L);
        lua_pushfstring(L, "interrupted (%s)", interrupt_name(sig));
        raise_outcome(L, pl, lua_tostring(L, -1));
    }
    raise_outcome(L, pl, rc == SL_ENOMEM ? "out of memory"
                                           : "pipeline failed");
}

static sl_pipeline *check_open(lua_State *L, const char *fname)
{
    sl_pipeline *pl = luaL_checkudata(L, 1, SLUICE_PIPELINE_MT);
    if (pl->state == PL_FAILED)
        luaL_error(L, "pipeline:%s: the pipeline failed earlier and is "
                      "closed", fname);
    if (pl->state != PL_OPEN)
        luaL_error(L, "pipeline:%s: the pipeline is closed", fname);
    if (!pl->conn->pg) {
        pl_end(L, pl, 0, PL_FAILED);
        luaL_error(L, "pipeline:%s: the connection is closed", fname);
    }
    return pl;
}

/* At a sync point: a progress tick, when one is due (a flag test, and
 * while live a coarse clock read; Lua only every 100 ms). */
static void tick(lua_State *L, sl_pipeline *pl)
{
    if (pl->prog.live && lib_progress_due(&pl->prog))
        lib_progress_call(L, &pl->prog, (double)pl->s.rows_sent,
                          (double)pl->bytes, -1, LIB_PROGRESS_TICK);
}

/* pl:send(v1, ..., vN): queue one execution. */
static int pl_send(lua_State *L)
{
    sl_pipeline *pl = check_open(L, "send");
    int n = lua_gettop(L) - 1;
    if (n != pl->nparams)
        return luaL_error(L, "pipeline:send: expected %d value%s (one per "
                             "parameter), got %d", pl->nparams,
                          pl->nparams == 1 ? "" : "s", n);
    if (pl->reject)
        drop_confirmed(pl);
    else
        params_truncate(&pl->p, 0);
    size_t base = pl->p.n, base_len = pl->p.data.len;
    if (params_reserve(&pl->p, (size_t)n) != SL_OK)
        return luaL_error(L, "pipeline:send: out of memory");
    lua_getfenv(L, 1);
    lua_getfield(L, -1, "json_encode");
    int json_idx = lua_gettop(L);
    for (int i = 0; i < n; i++) {
        const char *want = lib_params_put(L, &pl->p, 2 + i, pl->kinds[i],
                                          json_idx);
        if (want) {
            params_rewind(&pl->p, base, base_len); /* the bytes encoded */
            lua_pushfstring(L, "pipeline:send: row %.0f, parameter $%d: "
                               "expected %s, got %s",
                            (double)pl->given + 1, i + 1, want,
                            luaL_typename(L, 2 + i));
            const char *msg = lua_tostring(L, -1);
            lua_pushfstring(L, "$%d", i + 1);
            lib_params_refusal(L, want, msg, "parameter", lua_tostring(L, -1));
            return 0;
        }
    }
    if (params_bind(&pl->p, base, (size_t)n) != SL_OK)
        return luaL_error(L, "pipeline:send: out of memory");
    uint64_t row = ++pl->given;
    pl->bytes += pl->p.data.len - base_len;
    int rc = pipe_send_row(&pl->s, pl->name, n, pl->p.ptrs, pl->p.lens,
                           pl->p.fmts, row, 1);
    int synced = 0;
    if (rc == SL_OK && ++pl->since_sync >= pl->sync_every) {
        pl->since_sync = 0;
        rc = pipe_sync(&pl->s);
        synced = 1;
    }
    check(L, pl, rc);
    hand_over(L, pl, 0);
    if (synced)
        tick(L, pl);
    return 0;
}

/* pl:sync() -> rows done: a sync point now, then wait for every result
 * (raises the first failure). */
static int pl_sync(lua_State *L)
{
    sl_pipeline *pl = check_open(L, "sync");
    int rc = SL_OK;
    lua_settop(L, 1);
    pl->since_sync = 0;
    if (pl->reject) {
        rc = settle_all(L, pl);
    } else {
        if (pl->s.group_open)
            rc = pipe_sync(&pl->s);
        if (rc == SL_OK)
            rc = pipe_pump(&pl->s, 1, 1);
    }
    check(L, pl, rc);
    hand_over(L, pl, 0);
    tick(L, pl);
    lua_pushnumber(L, (lua_Number)rows_done(pl));
    return 1;
}

/* pl:close() -> rows sent: commits the open group (autocommit), waits
 * for everything, leaves pipeline mode, deallocates the statement.
 * Raises the first failure.  A second close() does nothing. */
static int pl_close(lua_State *L)
{
    sl_pipeline *pl = luaL_checkudata(L, 1, SLUICE_PIPELINE_MT);
    if (pl->state != PL_OPEN) {
        lua_pushnumber(L, (lua_Number)pl->s.rows_sent);
        return 1;
    }
    lua_settop(L, 1);
    /* reject mode: every row settled and handed over first (on_reject
     * may send more rows) */
    while (pl->reject && pl->state == PL_OPEN && pl->conn->pg) {
        check(L, pl, settle_all(L, pl));
        if (pl->pend_head == pl->pend_tail)
            break;
        hand_over(L, pl, 0);
    }
    if (pl->state != PL_OPEN) /* a send from on_reject ended it */
        return luaL_error(L, "pipeline:close: the pipeline failed earlier "
                             "and is closed");
    int conn_idx = push_conn(L);
    int rc = pl_end(L, pl, 1, PL_CLOSED);
    if (rc != SL_OK || pl->s.err) {
        pl->state = PL_FAILED;
        return raise_outcome(L, pl, "pipeline failed");
    }
    sl_conn *c = pl->conn;
    if (c->pg && PQtransactionStatus(c->pg) != PQTRANS_INERROR) {
        char sql[64];
        snprintf(sql, sizeof sql, "DEALLOCATE %s", pl->name);
        lib_conn_finish(L, c, conn_idx, PQsendQuery(c->pg, sql));
    }
    lib_progress_call(L, &pl->prog, (double)pl->s.rows_sent,
                      (double)pl->bytes, -1, LIB_PROGRESS_DONE);
    lua_pushnumber(L, (lua_Number)pl->s.rows_sent);
    return 1;
}

/* pl:abort() -> rows committed: ends the pipeline without committing
 * its open group (rolled back); groups already synced commit as they
 * would (every answer is read).  Never raises; a second call does
 * nothing. */
static int pl_abort(lua_State *L)
{
    sl_pipeline *pl = luaL_checkudata(L, 1, SLUICE_PIPELINE_MT);
    pl_end(L, pl, 0, PL_CLOSED);
    lua_pushnumber(L, (lua_Number)pl->s.rows_committed);
    return 1;
}

static int pl_tostring(lua_State *L)
{
    sl_pipeline *pl = luaL_checkudata(L, 1, SLUICE_PIPELINE_MT);
    lua_pushfstring(L, "sluice.pipeline (%s, %d parameters, %.0f rows sent)",
                    pl_state_names[pl->state], pl->nparams,
                    (double)pl->s.rows_sent);
    return 1;
}

/* The read-only fields (see lib.h): rows_sent, rows_done, rows_committed,
 * rows_in_doubt, rows_rejected, sync_every, state;
 * nil for any other key. */
int lib_pipeline_field(lua_State *L)
{
    sl_pipeline *pl = luaL_checkudata(L, 1, SLUICE_PIPELINE_MT);
    const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "";
    if (strcmp(k, "rows_sent") == 0)
        lua_pushnumber(L, (lua_Number)pl->s.rows_sent);
    else if (strcmp(k, "rows_done") == 0)
        lua_pushnumber(L, (lua_Number)rows_done(pl));
    else if (strcmp(k, "rows_rejected") == 0)
        lua_pushnumber(L, (lua_Number)pl->nrejected);
    else if (strcmp(k, "rows_committed") == 0)
        lua_pushnumber(L, (lua_Number)pl->s.rows_committed);
    else if (strcmp(k, "rows_in_doubt") == 0)
        lua_pushnumber(L, (lua_Number)rows_in_doubt(pl));
    else if (strcmp(k, "sync_every") == 0)
        lua_pushinteger(L, pl->sync_every);
    else if (strcmp(k, "state") == 0)
        lua_pushstring(L, pl_state_names[pl->state]);
    else
        lua_pushnil(L);
    return 1;
}

const luaL_Reg lib_pipeline_methods[] = {
    { "send", pl_send },
    { "sync", pl_sync },
    { "close", pl_close },
    { "abort", pl_abort },
    { NULL, NULL },
};

const luaL_Reg lib_pipeline_meta[] = {
    { "__gc", pl_gc },
    { "__tostring", pl_tostring },
    { NULL, NULL },
};

/* sluice.core.pipeline_start(db, sql, opts) -> pipeline.  opts:
 * sync_every (default 1000), json_encode, on_reject, progress and
 * progress_live (lib_progress_setup: ticks at sync points, the summary at
 * close()).  Prepares and describes sql in normal mode (raising the
 * server's error object if it does not parse), then enters pipeline mode;
 * the connection is busy until close(). */
int lib_pipeline_start(lua_State *L)
{
    sl_conn *c = lib_conn_check(L, 1);
    const char *sql = luaL_checkstring(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_getfield(L, 3, "sync_every");
    lua_Integer every = luaL_optinteger(L, -1, 1000);
    luaL_argcheck(L, every >= 1 && every <= 1000000000, 3,
                  "sync_every must be from 1 to 1e9");
    lua_settop(L, 3);

    sl_pipeline *pl = lua_newuserdata(L, sizeof *pl);
    memset(pl, 0, sizeof *pl);
    pl->conn = c;
    pl->sync_every = (int)every;
    luaL_getmetatable(L, SLUICE_PIPELINE_MT);
    lua_setmetatable(L, -2);
    int ud = lua_gettop(L);
    lua_createtable(L, 1, 1);
    lua_pushvalue(L, 1);
    lua_rawseti(L, -2, FENV_CONN);
    lua_getfield(L, 3, "json_encode");
    lua_setfield(L, -2, "json_encode");
    lua_getfield(L, 3, "on_reject");
    pl->reject = !lua_isnil(L, -1);
    lua_rawseti(L, -2, FENV_REJECT);
    lua_newtable(L);
    lua_rawseti(L, -2, FENV_PENDING);
    lua_setfenv(L, ud);
    pl->kept_first = 1;
    lua_getfield(L, 3, "progress");
    lua_getfield(L, 3, "progress_live");
    lib_progress_setup(L, &pl->prog, -2, lua_toboolean(L, -1));
    lua_settop(L, ud);

    snprintf(pl->name, sizeof pl->name, "sluice_pipe_%u", ++c->stmt_seq);
    lib_conn_finish(L, c, 1, PQsendPrepare(c->pg, pl->name, sql, 0, NULL));
    PGresult *d = lib_conn_finish(L, c, 1,
                                  PQsendDescribePrepared(c->pg, pl->name));
    pl->nparams = d ? PQnparams(d) : 0;
    pl->kinds = calloc((size_t)(pl->nparams ? pl->nparams : 1),
                       sizeof *pl->kinds);
    if (!pl->kinds)
        return luaL_error(L, "pipeline: out of memory");
    lib_params_kinds(L, c, 1, d, pl->nparams, pl->kinds);
    PGTransactionStatusType ts = PQtransactionStatus(c->pg);
    if (ts == PQTRANS_INERROR)
        return luaL_error(L, "pipeline: the transaction on this connection "
                             "has failed; roll it back first");
    if (pipe_enter(&pl->s, c->pg, ts == PQTRANS_IDLE, pl->reject) != SL_OK) {
        lib_push_conn_error(L, c->pg);
        return lua_error(L);
    }
    pl->state = PL_OPEN;
    c->busy = SL_BUSY_PIPELINE;
    lua_settop(L, ud);
    return 1;
}
