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
} sl_pipeline;

/* The one release routine.  Ends pipeline mode if still in it (the open
 * group committed only when `commit`), clears conn->busy.  Keeps s.err
 * for the caller; frees the rest.  Never raises. */
static int pl_end(sl_pipeline *pl, int commit, int new_state)
{
    int rc = COPY_OK;
    if (pl->state == PL_OPEN) {
        pl->state = new_state;
        pl->conn->busy = 0;
        if (pl->conn->pg)
            rc = pipe_finish(&pl->s, commit);
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

/* Raise the pipeline's failure: the kept server error (s->err), else
 * the lost connection's, with fields row (when a row failed) and
 * committed_rows, and the message saying which row and what was
 * committed.  The pipeline must be ended (pl_end) already. */
static int raise_failure(lua_State *L, sl_pipeline *pl)
{
    pipe_state *s = &pl->s;
    int gone = !pl->conn->pg || PQstatus(pl->conn->pg) == CONNECTION_BAD;
    if (s->err)
        lib_push_result_error(L, s->err, pl->conn->pg);
    else
        lib_push_conn_error(L, pl->conn->pg);
    int e = lua_gettop(L);
    int has_row = s->err && s->err_row > 0;
    if (has_row) {
        lua_pushnumber(L, (lua_Number)s->err_row);
        lua_setfield(L, e, "row");
    }
    lua_pushnumber(L, (lua_Number)s->rows_committed);
    lua_setfield(L, e, "committed_rows");
    if (has_row) {
        lua_pushliteral(L, "pipeline: row ");
        push_u64(L, s->err_row);
        lua_pushliteral(L, ": ");
    } else {
        lua_pushliteral(L, "pipeline: ");
        lua_pushliteral(L, "");
        lua_pushliteral(L, "");
    }
    lua_getfield(L, e, "message");
    if (!s->autocommit) {
        /* a lost connection's message already says the caller's
         * transaction is gone */
        if (gone)
            lua_pushliteral(L, "");
        else
            lua_pushliteral(L, " (the caller's transaction is aborted; "
                               "roll it back)");
    } else if (s->rows_committed == 0) {
        lua_pushliteral(L, " (nothing was committed)");
    } else {
        lua_pushliteral(L, " (rows 1-");
        push_u64(L, s->rows_committed);
        lua_pushliteral(L, " were committed by earlier syncs; nothing from "
                           "row ");
        push_u64(L, s->rows_committed + 1);
        lua_pushliteral(L, " on was)");
        lua_concat(L, 5);
    }
    lua_concat(L, 5);
    lua_setfield(L, e, "message");
    return lua_error(L);
}

/* After a pipe_* call: raise on a broken connection, Ctrl-C or a failure
 * the server reported (each ends the pipeline first). */
static void check(lua_State *L, sl_pipeline *pl, int rc)
{
    if (rc == COPY_EINTR) {
        char buf[256];
        pgconn_cancel(pl->conn->pg, buf, sizeof buf);
        pl_end(pl, 0, PL_FAILED);
        interrupt_consume(L);
        luaL_error(L, "interrupted (Ctrl-C)");
    }
    if (rc == COPY_ENOMEM) {
        pl_end(pl, 0, PL_FAILED);
        luaL_error(L, "pipeline: out of memory");
    }
    if (rc == COPY_EBROKEN || pl->s.err) {
        pl_end(pl, 0, PL_FAILED);
        raise_failure(L, pl);
    }
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
    if (params_reserve(&pl->p, (size_t)n) != COPY_OK)
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
    if (params_bind(&pl->p, 0, (size_t)n) != COPY_OK)
        return luaL_error(L, "pipeline:send: out of memory");
    int rc = pipe_send_row(&pl->s, pl->name, n, pl->p.ptrs, pl->p.lens,
                           pl->p.fmts, 1);
    if (rc == COPY_OK && ++pl->since_sync >= pl->sync_every) {
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
    int rc = COPY_OK;
    pl->since_sync = 0;
    if (pl->s.group_open)
        rc = pipe_sync(&pl->s);
    if (rc == COPY_OK)
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
    if (rc == COPY_EBROKEN || pl->s.err) {
        pl->state = PL_FAILED;
        return raise_failure(L, pl);
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

/* pl:abort() -> true, or false when the pipeline was already over: ends
 * it rolling the open group back (nothing since the last sync point is
 * committed), as garbage collection does.  Never raises. */
static int pl_abort(lua_State *L)
{
    sl_pipeline *pl = luaL_checkudata(L, 1, SLUICE_PIPELINE_MT);
    int was_open = pl->state == PL_OPEN;
    pl_end(pl, 0, PL_CLOSED);
    lua_pushboolean(L, was_open);
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

/* __index: methods first (upvalue 1), then read-only fields. */
int lib_pipeline_index(lua_State *L)
{
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
    if (!lua_isnil(L, -1))
        return 1;
    sl_pipeline *pl = luaL_checkudata(L, 1, SLUICE_PIPELINE_MT);
    const char *k = lua_tostring(L, 2);
    if (!k)
        return 1;
    if (strcmp(k, "rows_sent") == 0)
        lua_pushnumber(L, (lua_Number)pl->s.rows_sent);
    else if (strcmp(k, "rows_done") == 0)
        lua_pushnumber(L, (lua_Number)pl->s.rows_done);
    else if (strcmp(k, "rows_committed") == 0)
        lua_pushnumber(L, (lua_Number)pl->s.rows_committed);
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
    if (pipe_enter(&pl->s, c->pg, ts == PQTRANS_IDLE) != COPY_OK) {
        lib_push_conn_error(L, c->pg);
        return lua_error(L);
    }
    pl->state = PL_OPEN;
    c->busy = SL_BUSY_PIPELINE;
    lua_settop(L, ud);
    return 1;
}
