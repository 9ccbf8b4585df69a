/*
 * lib_copyout.c - Lua binding of COPY ... TO STDOUT: "sluice.copyout"
 * readers (db:copy_out() in lua/sluice/copy.lua).
 *
 * A reader is a callable userdata: each call reads one row of the COPY
 * (copy_out_next() in copy.c) and returns it as an array of strings, NULL
 * as sluice.null.  The text format is decoded in place in libpq's row
 * buffer (copy_unescape_text()), which the reader owns until the strings
 * are made, so a Lua error cannot leak it.
 *
 * Uses: lib.h (connections, error objects), copy.h (the COPY OUT side of
 * the stream), numfmt.h, pgconn.h (cancel), interrupt.h.
 *
 * Caveats:
 * - The reader keeps its connection alive (fenv[1]) and sets conn->busy
 *   while the COPY runs, so other calls on the connection refuse.
 * - Stopping early (close(), __gc) cancels the COPY when no transaction
 *   block is open; inside one it reads and discards the remaining rows,
 *   since a cancel would doom the caller's transaction.
 */
#include "lib.h"
#include "copy.h"
#include "interrupt.h"
#include "numfmt.h"
#include "pgconn.h"

#include <stdint.h>
#include <string.h>

enum { RD_OPEN = 1, RD_DONE, RD_CLOSED };

typedef struct sl_copyout {
    sl_conn *conn;   /* borrowed: fenv[1] keeps it alive */
    int state;       /* 0 until the COPY started */
    int in_tx;       /* a transaction block was open at the start */
    char *row;       /* owned (PQfreemem): the row being converted */
    uint64_t rows;
} sl_copyout;

/* The one release routine of a reader (close(), end of the loop, a
 * failure, __gc).  A COPY still running is stopped: by a cancel request
 * when no transaction block is open, else by reading and discarding the
 * remaining rows (a cancel would doom the caller's transaction).  Then
 * its results are drained.  Never raises. */
static void rd_release(sl_copyout *rd, int new_state)
{
    if (rd->row) {
        PQfreemem(rd->row);
        rd->row = NULL;
    }
    if (rd->state == RD_OPEN) {
        sl_conn *c = rd->conn;
        rd->state = new_state;
        c->busy = 0;
        if (c->pg) {
            char buf[256];
            if (!rd->in_tx)
                pgconn_cancel(c->pg, buf, sizeof buf);
            copy_drain(c->pg, NULL);
        }
    }
}

/* Push the row in rd->row[0..len) as an array of strings / sluice.null. */
static void push_row(lua_State *L, char *s, size_t len)
{
    if (len > 0 && s[len - 1] == '\n')
        len--;
    int nf = 1;
    for (const char *p = s; (p = memchr(p, '\t', (size_t)(s + len - p)));
         p++)
        nf++;
    lua_createtable(L, nf, 0);
    char *p = s, *end = s + len;
    for (int i = 1; i <= nf; i++) {
        char *q = memchr(p, '\t', (size_t)(end - p));
        if (!q)
            q = end;
        size_t n = (size_t)(q - p);
        if (n == 2 && p[0] == '\\' && p[1] == 'N')
            lua_pushlightuserdata(L, NULL);
        else
            lua_pushlstring(L, p, copy_unescape_text(p, n));
        lua_rawseti(L, -2, i);
        p = q + 1;
    }
}

/* reader() -> next row (an array of strings, NULL as sluice.null), or nil
 * at the end.  Raises the server's error object if the query fails. */
static int rd_call(lua_State *L)
{
    sl_copyout *rd = luaL_checkudata(L, 1, SLUICE_COPYOUT_MT);
    if (rd->state != RD_OPEN) {
        lua_pushnil(L);
        return 1;
    }
    sl_conn *c = rd->conn;
    if (!c->pg) {
        rd_release(rd, RD_CLOSED);
        return luaL_error(L, "copy_out: the connection is closed");
    }
    if (rd->row) {
        PQfreemem(rd->row);
        rd->row = NULL;
    }
    char *row;
    size_t len;
    int rc = copy_out_next(c->pg, &row, &len, 1);
    if (rc == SL_OK) {
        rd->row = row; /* owned by rd until freed, even if Lua raises */
        push_row(L, row, len);
        PQfreemem(rd->row);
        rd->row = NULL;
        rd->rows++;
        return 1;
    }
    if (rc == SL_EINTR) {
        rd_release(rd, RD_CLOSED);
        lib_interrupt_consume(L);
        return luaL_error(L, "interrupted (%s)",
                          interrupt_name(interrupt_last()));
    }
    /* the end (or a failure): the final result says which */
    lua_settop(L, 1);
    lua_getfenv(L, 1);
    lua_rawgeti(L, -1, 1);
    int conn_idx = lua_gettop(L);
    // stack: reader, fenv, conn
    rd->state = RD_DONE;
    c->busy = 0;
    lib_conn_finish(L, c, conn_idx, 1); /* raises the server's error */
    if (rc == SL_EBROKEN) {
        lib_push_conn_error(L, c->pg);
        return lua_error(L);
    }
    lua_pushnil(L);
    return 1;
}

/* reader:close() stops the COPY if it is still running. */
static int rd_close(lua_State *L)
{
    sl_copyout *rd = luaL_checkudata(L, 1, SLUICE_COPYOUT_MT);
    rd_release(rd, RD_CLOSED);
    return 0;
}

static int rd_gc(lua_State *L)
{
    sl_copyout *rd = luaL_checkudata(L, 1, SLUICE_COPYOUT_MT);
    rd_release(rd, RD_CLOSED);
    return 0;
}

static const char *const rd_state_names[] = { "new", "open", "done",
                                              "closed" };

static int rd_tostring(lua_State *L)
{
    sl_copyout *rd = luaL_checkudata(L, 1, SLUICE_COPYOUT_MT);
    char rows[24];
    numfmt_uint64(rows, rd->rows);
    lua_pushfstring(L, "sluice.copyout (%s, %s rows)",
                    rd_state_names[rd->state], rows);
    return 1;
}

/* The read-only fields (see lib.h): rows, state; nil for any other
 * key. */
int lib_copyout_field(lua_State *L)
{
    sl_copyout *rd = luaL_checkudata(L, 1, SLUICE_COPYOUT_MT);
    const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "";
    if (strcmp(k, "rows") == 0)
        lua_pushnumber(L, (lua_Number)rd->rows);
    else if (strcmp(k, "state") == 0)
        lua_pushstring(L, rd_state_names[rd->state]);
    else
        lua_pushnil(L);
    return 1;
}

const luaL_Reg lib_copyout_methods[] = {
    { "close", rd_close },
    { NULL, NULL },
};

const luaL_Reg lib_copyout_meta[] = {
    { "__call", rd_call },
    { "__gc", rd_gc },
    { "__tostring", rd_tostring },
    { NULL, NULL },
};

/* sluice.core.copy_out_start(db, sql) -> reader.  sql is a whole COPY ...
 * TO STDOUT statement in text format.  Raises the server's error object
 * if it cannot start. */
int lib_copy_out_start(lua_State *L)
{
    sl_conn *c = lib_conn_check(L, 1);
    const char *sql = luaL_checkstring(L, 2);
    lua_settop(L, 2);
    sl_copyout *rd = lua_newuserdata(L, sizeof *rd);
    memset(rd, 0, sizeof *rd);
    rd->conn = c;
    luaL_getmetatable(L, SLUICE_COPYOUT_MT);
    lua_setmetatable(L, -2);
    lua_createtable(L, 1, 0);
    lua_pushvalue(L, 1);
    lua_rawseti(L, -2, 1);
    lua_setfenv(L, -2);
    // stack: db, sql, reader
    PGTransactionStatusType ts = PQtransactionStatus(c->pg);
    rd->in_tx = ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR;
    PGresult **err = lib_new_result_slot(L);
    int interrupted;
    int rc = copy_begin(c->pg, sql, PGRES_COPY_OUT, err, &interrupted);
    if (interrupted)
        lib_interrupt_consume(L);
    if (rc == SL_OK) {
        rd->state = RD_OPEN;
        c->busy = 1;
        if (interrupted) {
            rd_release(rd, RD_CLOSED);
            return luaL_error(L, "interrupted (%s)",
                          interrupt_name(interrupt_last()));
        }
        lua_settop(L, 3);
        return 1;
    }
    return lib_raise_begin_failed(L, c, rc, *err);
}
