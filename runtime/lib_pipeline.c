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

enum { FENV_CONN = 1 };
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
} sl_pipeline;

/* The one release routine.  Ends pipeline mode if still in it (the open
 * group committed only when `commit`), clears conn->busy.  Keeps s.err
 * for the caller; frees the rest.  Never raises. */
static int pl_end(sl_pipeline *pl, int commit, int new_state)
{
    int rc = SL_OK;
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
    return rc;
}

static int pl_gc(lua_State *L)
{
    sl_pipeline *pl = luaL_checkudata(L, 1, SLUICE_PIPELINE_MT);
    pl_end(pl, 0, PL_CLOSED);
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
 * answer came for what was in flight. */
static int err_answered(const PGresult *err)
{
    const char *code = err ? PQresultErrorField(err, PG_DIAG_SQLSTATE) : NULL;
    return code && *code && strncmp(code, "08", 2) != 0;
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
            snprintf(num, sizeof num, "%llu", (unsigned long long)s->rows_done);
            luaL_addstring(&b, " (rows 1-");
            luaL_addstring(&b, num);
            luaL_addstring(&b, " were executed in the caller's transaction, "
                               "nothing is committed here)");
        }
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

/* After a pipe_* call: on a broken connection, Ctrl-C, out of memory or
 * a failure the server reported, end the pipeline (which reads every
 * answer still to come) and raise what happened and what was committed.
 * Ctrl-C first sends a cancel request: the server's answers then say
 * what it stopped. */
static void check(lua_State *L, sl_pipeline *pl, int rc)
{
    if (rc == SL_OK && !pl->s.err)
        return;
    if (rc == SL_EINTR) {
        char buf[256];
        pgconn_cancel(pl->conn->pg, buf, sizeof buf);
    }
    if (rc == SL_EBROKEN)
        pl->lost = 1;
    pl_end(pl, 0, PL_FAILED);
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
        pl_end(pl, 0, PL_FAILED);
        luaL_error(L, "pipeline:%s: the connection is closed", fname);
    }
    return pl;
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
    params_truncate(&pl->p, 0);
    if (params_reserve(&pl->p, (size_t)n) != SL_OK)
        return luaL_error(L, "pipeline:send: out of memory");
    lua_getfenv(L, 1);
    lua_getfield(L, -1, "json_encode");
    int json_idx = lua_gettop(L);
    for (int i = 0; i < n; i++) {
        const char *want = lib_params_put(L, &pl->p, 2 + i, pl->kinds[i],
                                          json_idx);
        if (want) {
            params_truncate(&pl->p, 0); /* the bytes already encoded */
            lua_pushfstring(L, "pipeline:send: row %.0f, parameter $%d: "
                               "expected %s, got %s",
                            (double)pl->s.rows_sent + 1, i + 1, want,
                            luaL_typename(L, 2 + i));
            luaL_where(L, 1);
            lua_insert(L, -2);
            lua_concat(L, 2);
            return lua_error(L);
        }
    }
    if (params_bind(&pl->p, 0, (size_t)n) != SL_OK)
        return luaL_error(L, "pipeline:send: out of memory");
    int rc = pipe_send_row(&pl->s, pl->name, n, pl->p.ptrs, pl->p.lens,
                           pl->p.fmts, 1);
    if (rc == SL_OK && ++pl->since_sync >= pl->sync_every) {
        pl->since_sync = 0;
        rc = pipe_sync(&pl->s);
    }
    check(L, pl, rc);
    return 0;
}

/* pl:sync() -> rows done: a sync point now, then wait for every result
 * (raises the first failure). */
static int pl_sync(lua_State *L)
{
    sl_pipeline *pl = check_open(L, "sync");
    int rc = SL_OK;
    pl->since_sync = 0;
    if (pl->s.group_open)
        rc = pipe_sync(&pl->s);
    if (rc == SL_OK)
        rc = pipe_pump(&pl->s, 1, 1);
    check(L, pl, rc);
    lua_pushnumber(L, (lua_Number)pl->s.rows_done);
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
    int conn_idx = push_conn(L);
    int rc = pl_end(pl, 1, PL_CLOSED);
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
    pl_end(pl, 0, PL_CLOSED);
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
 * rows_in_doubt, sync_every, state;
 * nil for any other key. */
int lib_pipeline_field(lua_State *L)
{
    sl_pipeline *pl = luaL_checkudata(L, 1, SLUICE_PIPELINE_MT);
    const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "";
    if (strcmp(k, "rows_sent") == 0)
        lua_pushnumber(L, (lua_Number)pl->s.rows_sent);
    else if (strcmp(k, "rows_done") == 0)
        lua_pushnumber(L, (lua_Number)pl->s.rows_done);
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
 * sync_every (default 1000), json_encode.  Prepares and describes sql in
 * normal mode (raising the server's error object if it does not parse),
 * then enters pipeline mode; the connection is busy until close(). */
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
    lua_setfenv(L, ud);

    snprintf(pl->name, sizeof pl->name, "sluice_pipe_%u", ++c->stmt_seq);
    lib_conn_finish(L, c, 1, PQsendPrepare(c->pg, pl->name, sql, 0, NULL));
    PGresult *d = lib_conn_finish(L, c, 1,
                                  PQsendDescribePrepared(c->pg, pl->name));
    pl->nparams = d ? PQnparams(d) : 0;
    pl->kinds = calloc((size_t)(pl->nparams ? pl->nparams : 1),
                       sizeof *pl->kinds);
    if (!pl->kinds)
        return luaL_error(L, "pipeline: out of memory");
    for (int i = 0; i < pl->nparams; i++)
        pl->kinds[i] = copy_kind_of(PQparamtype(d, i));
    PGTransactionStatusType ts = PQtransactionStatus(c->pg);
    if (ts == PQTRANS_INERROR)
        return luaL_error(L, "pipeline: the transaction on this connection "
                             "has failed; roll it back first");
    if (pipe_enter(&pl->s, c->pg, ts == PQTRANS_IDLE) != SL_OK) {
        lib_push_conn_error(L, c->pg);
        return lua_error(L);
    }
    pl->state = PL_OPEN;
    c->busy = SL_BUSY_PIPELINE;
    lua_settop(L, ud);
    return 1;
}
