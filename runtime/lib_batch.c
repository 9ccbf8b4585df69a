/*
 * lib_batch.c - Lua binding of a batched multi-row INSERT buffer,
 * "sluice.batch" (opened by db:batch() in lua/sluice/batch.lua).
 *
 * b:add(v1, ..., vN) encodes the row in C into the batch's params_buf
 * (params.h) - one call per row, no per-row malloc, nothing kept in Lua -
 * and, when the buffer is full (rows or bytes) or its oldest row is
 * max_age_ms old, calls the Lua flush (batch.lua), which runs the
 * statements through send() and decides about transactions, RETURNING
 * and error messages.  Parameters never travel as Lua varargs on the way
 * out: send() binds a slice of the buffer to libpq directly.
 *
 * Two method tables: lib_batch_methods is what a script sees (add, poll;
 * batch.lua adds flush and close); lib_batch_private (send, values,
 * reset, release, set_counts) is for batch.lua only, called as plain
 * functions, and reachable from no batch object.
 *
 * The full statement shape (rows_per_statement rows) is prepared once,
 * when the batch is made; describing it tells the parameter types, which
 * pick each column's encoder (epoch seconds for timestamps, JSON for
 * tables in json columns, ...).  Partial shapes go out as unnamed
 * statements.
 *
 * Caveats: __gc frees the buffer and never flushes (it cannot run SQL
 * safely): rows added after the last flush are lost unless the script
 * calls close().  The prepared statement lives until close() (DEALLOCATE)
 * or the end of the session.
 */
#include "lib.h"
#include "copy.h"
#include "params.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* slots of the batch's environment table; FENV_STATE anchors batch.lua's
 * state table (its on_reject, counts, ...) for as long as the batch
 * lives, so batch.lua can find it in a table weak in keys and values.
 * C never reads it. */
enum { FENV_CONN = 1, FENV_NAMES, FENV_STATE };

/* The most rows one batch buffers: its params_buf grows with them, and
 * the buffered count is an int. */
#define BATCH_MAX_ROWS 10000000

typedef struct sl_batch {
    sl_conn *conn;     /* borrowed: fenv[FENV_CONN] keeps it alive */
    int open;
    int ncols;
    int per_stmt;      /* rows of the prepared (full) shape */
    int max_rows;      /* flush at this many buffered rows */
    size_t max_bytes;  /* flush at this many buffered value bytes; 0: off */
    double max_age;    /* seconds; 0: off */
    double first_at;   /* monotonic time the oldest buffered row came */
    int rows;          /* rows buffered */
    size_t rows_len;   /* p.data.len at the end of the last buffered row */
    double added;      /* rows added over the batch's life */
    double committed;  /* rows this batch committed (set_counts) */
    double in_doubt;   /* rows that may or may not have been committed */
    int *kinds;        /* owned: encoder family per column */
    char *prefix;      /* owned: "INSERT INTO t (a, b) VALUES " */
    char *suffix;      /* owned: " ON CONFLICT ... RETURNING ..." */
    char name[32];     /* the prepared full shape; "" until prepared */
    params_buf p;      /* owned: the encoded rows */
    sbuf sql;      /* owned: statement text scratch */
} sl_batch;

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The one release routine (close(), __gc): frees everything the batch
 * owns.  Never raises, never sends anything. */
static void batch_release(sl_batch *b)
{
    b->open = 0;
    params_free(&b->p);
    sbuf_free(&b->sql);
    free(b->kinds);
    free(b->prefix);
    free(b->suffix);
    b->kinds = NULL;
    b->prefix = b->suffix = NULL;
    b->rows = 0;
    b->rows_len = 0;
}

static sl_batch *check_open(lua_State *L, const char *fname)
{
    sl_batch *b = luaL_checkudata(L, 1, SLUICE_BATCH_MT);
    if (!b->open)
        luaL_error(L, "batch:%s: the batch is closed", fname);
    return b;
}

/* Push the batch's connection; returns its stack index. */
static int push_conn(lua_State *L)
{
    lua_getfenv(L, 1);
    lua_rawgeti(L, -1, FENV_CONN);
    lua_remove(L, -2);
    return lua_gettop(L);
}

/* Call the Lua flush (fenv.flush) on the batch at index 1; returns the
 * number of values it left on the stack. */
static int call_flush(lua_State *L)
{
    int top = lua_gettop(L);
    lua_getfenv(L, 1);
    lua_getfield(L, -1, "flush");
    lua_remove(L, -2);
    lua_pushvalue(L, 1);
    lua_call(L, 1, LUA_MULTRET);
    return lua_gettop(L) - top;
}

static int age_due(const sl_batch *b)
{
    return b->max_age > 0 && b->rows > 0 &&
           now_mono() - b->first_at >= b->max_age;
}

/* b:add(v1, ..., vN): buffer one row; flushes when the batch is full or
 * its oldest row is max_age_ms old (then raises what the flush raises). */
static int batch_add(lua_State *L)
{
    sl_batch *b = check_open(L, "add");
    int n = lua_gettop(L) - 1;
    if (n != b->ncols)
        return luaL_error(L, "batch:add: expected %d value%s (one per "
                             "column), got %d", b->ncols,
                          b->ncols == 1 ? "" : "s", n);
    /* a row that failed half-way (raised below, e.g. out of memory) is
     * dropped here, stray bytes of an unfinished value included */
    size_t row_start = (size_t)b->rows * (size_t)b->ncols;
    params_rewind(&b->p, row_start, b->rows_len);
    if (params_reserve(&b->p, (size_t)n) != SL_OK)
        return luaL_error(L, "batch:add: out of memory");
    lua_getfenv(L, 1);
    lua_getfield(L, -1, "json_encode");
    int json_idx = lua_gettop(L);
    for (int i = 0; i < n; i++) {
        const char *want = lib_params_put(L, &b->p, 2 + i, b->kinds[i],
                                          json_idx);
        if (want) {
            /* the bytes already encoded must not count towards `bytes` */
            params_rewind(&b->p, row_start, b->rows_len);
            lua_rawgeti(L, json_idx - 1, FENV_NAMES);
            lua_rawgeti(L, -1, i + 1);
            const char *col = lua_tostring(L, -1) ? lua_tostring(L, -1) : "?";
            lua_pushfstring(L, "batch:add: row %.0f, column \"%s\": expected "
                               "%s, got %s", b->added + 1, col, want,
                            luaL_typename(L, 2 + i));
            lib_params_refusal(L, want, lua_tostring(L, -1), "column", col);
            return 0;
        }
    }
    b->rows_len = b->p.data.len;
    if (b->rows++ == 0 && b->max_age > 0)
        b->first_at = now_mono();
    b->added++;
    if (b->rows >= b->max_rows ||
        (b->max_bytes && b->p.data.len >= b->max_bytes) || age_due(b)) {
        lua_settop(L, 1);
        call_flush(L);
    }
    return 0;
}

/* b:poll() -> what flush() returns when the oldest buffered row is
 * max_age_ms old (the batch is flushed), else 0. */
static int batch_poll(lua_State *L)
{
    sl_batch *b = check_open(L, "poll");
    lua_settop(L, 1);
    if (age_due(b))
        return call_flush(L);
    lua_pushinteger(L, 0);
    return 1;
}

/* send(b, first, nrows, want_rows) runs one INSERT for buffered rows
 * [first, first + nrows) (0-based) and returns its RETURNING rows when
 * want_rows, else the affected row count.  Raises the server's error
 * object.  Private (batch.lua). */
static int batch_send(lua_State *L)
{
    sl_batch *b = check_open(L, "flush");
    int first = (int)luaL_checkinteger(L, 2);
    int nrows = (int)luaL_checkinteger(L, 3);
    int want_rows = lua_toboolean(L, 4);
    luaL_argcheck(L, first >= 0 && nrows >= 1 && nrows <= b->per_stmt &&
                  first + nrows <= b->rows, 2, "row range out of the buffer");
    lua_settop(L, 4);
    int conn_idx = push_conn(L);
    sl_conn *c = lib_conn_check(L, conn_idx);
    size_t np = (size_t)nrows * (size_t)b->ncols;
    if (params_bind(&b->p, (size_t)first * (size_t)b->ncols, np) != SL_OK)
        return luaL_error(L, "batch: out of memory");
    int sent;
    if (nrows == b->per_stmt && b->name[0]) {
        sent = PQsendQueryPrepared(c->pg, b->name, (int)np, b->p.ptrs,
                                   b->p.lens, b->p.fmts, 0);
    } else {
        if (params_values_sql(&b->sql, b->prefix, nrows, b->ncols,
                              b->suffix) != SL_OK)
            return luaL_error(L, "batch: out of memory");
        sent = PQsendQueryParams(c->pg, b->sql.data, (int)np, NULL,
                                 b->p.ptrs, b->p.lens, b->p.fmts, 0);
    }
    PGresult *res = lib_conn_finish(L, c, conn_idx, sent);
    if (want_rows) {
        lib_push_rows(L, res);
    } else {
        const char *t = res ? PQcmdTuples(res) : "";
        lua_pushnumber(L, *t ? strtod(t, NULL) : 0);
    }
    return 1;
}

/* values(b, i) -> the encoded parameters of buffered row i (0-based) as
 * a table of strings (nil for NULL): what a rejected row held, as sent.
 * Private (batch.lua). */
static int batch_values(lua_State *L)
{
    sl_batch *b = check_open(L, "flush");
    int i = (int)luaL_checkinteger(L, 2);
    luaL_argcheck(L, i >= 0 && i < b->rows, 2, "row out of the buffer");
    lua_createtable(L, b->ncols, 0);
    for (int j = 0; j < b->ncols; j++) {
        size_t k = (size_t)i * (size_t)b->ncols + (size_t)j;
        if (b->p.off[k] == PARAMS_NULL)
            continue;
        lua_pushlstring(L, b->p.data.data + b->p.off[k], (size_t)b->p.len[k]);
        lua_rawseti(L, -2, j + 1);
    }
    return 1;
}

/* reset(b) empties the buffer (after a flush, whatever its outcome).
 * Private (batch.lua). */
static int batch_reset(lua_State *L)
{
    sl_batch *b = luaL_checkudata(L, 1, SLUICE_BATCH_MT);
    if (b->open)
        params_truncate(&b->p, 0);
    b->rows = 0;
    b->rows_len = 0;
    return 0;
}

/* release(b) frees the buffers; the batch is closed afterwards.
 * Private (batch.lua). */
static int batch_release_m(lua_State *L)
{
    batch_release(luaL_checkudata(L, 1, SLUICE_BATCH_MT));
    return 0;
}

/* set_counts(b, committed, in_doubt): what batch.lua learnt from the
 * server's answers, served as b.rows_committed and b.rows_in_doubt.
 * Private (batch.lua). */
static int batch_set_counts(lua_State *L)
{
    sl_batch *b = luaL_checkudata(L, 1, SLUICE_BATCH_MT);
    b->committed = luaL_checknumber(L, 2);
    b->in_doubt = luaL_checknumber(L, 3);
    return 0;
}

static int batch_gc(lua_State *L)
{
    batch_release(luaL_checkudata(L, 1, SLUICE_BATCH_MT));
    return 0;
}

static int batch_tostring(lua_State *L)
{
    sl_batch *b = luaL_checkudata(L, 1, SLUICE_BATCH_MT);
    lua_pushfstring(L, "sluice.batch (%s, %d columns, %d rows buffered)",
                    b->open ? "open" : "closed", b->ncols, b->rows);
    return 1;
}

/* The read-only fields (see lib.h): buffered, rows_added, buffered_bytes,
 * rows_per_statement, statement, state, rows_committed, rows_in_doubt;
 * nil for any other key. */
int lib_batch_field(lua_State *L)
{
    sl_batch *b = luaL_checkudata(L, 1, SLUICE_BATCH_MT);
    const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "";
    if (strcmp(k, "buffered") == 0)
        lua_pushinteger(L, b->rows);
    else if (strcmp(k, "rows_added") == 0)
        lua_pushnumber(L, b->added);
    else if (strcmp(k, "buffered_bytes") == 0)
        lua_pushnumber(L, (lua_Number)b->p.data.len);
    else if (strcmp(k, "rows_per_statement") == 0)
        lua_pushinteger(L, b->per_stmt);
    else if (strcmp(k, "statement") == 0)
        lua_pushstring(L, b->name);
    else if (strcmp(k, "state") == 0)
        lua_pushstring(L, b->open ? "open" : "closed");
    else if (strcmp(k, "rows_committed") == 0)
        lua_pushnumber(L, b->committed);
    else if (strcmp(k, "rows_in_doubt") == 0)
        lua_pushnumber(L, b->in_doubt);
    else
        lua_pushnil(L);
    return 1;
}

const luaL_Reg lib_batch_methods[] = {
    { "add", batch_add },
    { "poll", batch_poll },
    { NULL, NULL },
};

const luaL_Reg lib_batch_private[] = {
    { "send", batch_send },
    { "values", batch_values },
    { "reset", batch_reset },
    { "release", batch_release_m },
    { "set_counts", batch_set_counts },
    { NULL, NULL },
};

const luaL_Reg lib_batch_meta[] = {
    { "__gc", batch_gc },
    { "__tostring", batch_tostring },
    { NULL, NULL },
};

static char *dup_str(lua_State *L, const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (!d)
        luaL_error(L, "batch: out of memory");
    memcpy(d, s, n);
    return d;
}

/* sluice.core.batch_new(db, prefix, suffix, names, opts) -> batch.
 * prefix is "INSERT INTO t (cols) VALUES ", suffix the ON CONFLICT /
 * RETURNING text (or ""), names the column names (for messages); opts:
 * rows (1..), bytes (0 = off), max_age_ms (0 = off), json_encode,
 * flush (the Lua flush function), state (batch.lua's table for this
 * batch, kept alive with it).  Prepares the full shape; raises the
 * server's error object if it does not parse (a bad column, a bad
 * on_conflict). */
int lib_batch_new(lua_State *L)
{
    lib_conn_check(L, 1);
    const char *prefix = luaL_checkstring(L, 2);
    const char *suffix = luaL_checkstring(L, 3);
    luaL_checktype(L, 4, LUA_TTABLE);
    luaL_checktype(L, 5, LUA_TTABLE);
    int ncols = (int)lua_objlen(L, 4);
    luaL_argcheck(L, ncols >= 1 && ncols <= 1600, 4, "1 to 1600 columns");
    lua_getfield(L, 5, "bytes");
    lua_Number max_bytes = luaL_optnumber(L, -1, 0);
    lua_getfield(L, 5, "max_age_ms");
    lua_Number max_age = luaL_optnumber(L, -1, 0);
    lua_getfield(L, 5, "rows");
    lua_Number rows_opt = luaL_optnumber(L, -1, 1000);
    lua_pop(L, 1);
    /* checked as a number: a cast of 1e10 to int would wrap */
    if (!(rows_opt >= 1 && rows_opt <= BATCH_MAX_ROWS))
        return luaL_error(L, "batch: rows must be an integer from 1 to "
                             "10000000, got %f", rows_opt);
    luaL_argcheck(L, max_bytes >= 0 && max_age >= 0, 5,
                  "bytes and max_age_ms must not be negative");
    lua_settop(L, 5);

    /* the userdata first, owning nothing yet: __gc frees what follows */
    sl_batch *b = lua_newuserdata(L, sizeof *b);
    memset(b, 0, sizeof *b);
    luaL_getmetatable(L, SLUICE_BATCH_MT);
    lua_setmetatable(L, -2);
    int ud = lua_gettop(L);
    lua_createtable(L, 3, 2);
    lua_pushvalue(L, 1);
    lua_rawseti(L, -2, FENV_CONN);
    lua_pushvalue(L, 4);
    lua_rawseti(L, -2, FENV_NAMES);
    lua_getfield(L, 5, "state");
    lua_rawseti(L, -2, FENV_STATE);
    lua_getfield(L, 5, "json_encode");
    lua_setfield(L, -2, "json_encode");
    lua_getfield(L, 5, "flush");
    lua_setfield(L, -2, "flush");
    lua_setfenv(L, ud);
    b->open = 1;
    b->ncols = ncols;
    int max_rows = (int)rows_opt;
    b->max_rows = max_rows;
    b->max_bytes = (size_t)max_bytes;
    b->max_age = max_age / 1000.0;
    b->per_stmt = PARAMS_MAX / ncols;
    if (b->per_stmt > max_rows)
        b->per_stmt = max_rows;
    b->prefix = dup_str(L, prefix);
    b->suffix = dup_str(L, suffix);
    b->kinds = calloc((size_t)ncols, sizeof *b->kinds);
    if (!b->kinds)
        return luaL_error(L, "batch: out of memory");

    sl_conn *c = lib_conn_check(L, 1);
    /* the parameter types come from a one-row shape: libpq refuses a
     * ParameterDescription longer than 30,000 bytes (about 7,500
     * parameters), so the full shape cannot be described */
    if (params_values_sql(&b->sql, prefix, 1, ncols, suffix) != SL_OK)
        return luaL_error(L, "batch: out of memory");
    lib_conn_finish(L, c, 1, PQsendPrepare(c->pg, "", b->sql.data, 0, NULL));
    PGresult *d = lib_conn_finish(L, c, 1, PQsendDescribePrepared(c->pg, ""));
    lib_params_kinds(L, c, 1, d, ncols, b->kinds);
    if (params_values_sql(&b->sql, prefix, b->per_stmt, ncols, suffix) !=
        SL_OK)
        return luaL_error(L, "batch: out of memory");
    char name[32];
    snprintf(name, sizeof name, "sluice_batch_%u", ++c->stmt_seq);
    lib_conn_finish(L, c, 1, PQsendPrepare(c->pg, name, b->sql.data, 0,
                                           NULL));
    memcpy(b->name, name, sizeof name);
    lua_settop(L, ud);
    return 1;
}
