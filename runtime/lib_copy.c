/*
 * lib_copy.c - Lua binding of COPY ... FROM STDIN: "sluice.copy" streams,
 * opened by db:copy() in lua/sluice/copy.lua (and file sinks, lib_sink.c).
 * The stream itself: start-up, the methods, sending, release, and the
 * stream's side of the compiled row writer.  The values' encoders are
 * lib_copy_values.c (reading Lua values, rows, text/CSV) and
 * lib_copy_binary.c over the core's copyenc.c; the readers of COPY ... TO
 * STDOUT are lib_copyout.c.
 *
 * Uses: lib_copy_priv.h (the stream's types), copy.h (the libpq side of the
 * stream), copyenc.h (the writer, the fast table), lib.h, interrupt.h.
 *
 * A row crosses the C-Lua boundary once: cp:row(a, b, c) encodes every
 * value straight into the stream's buffer, with an encoder chosen per
 * column when the COPY starts (from the catalog type), and the buffer goes
 * to libpq when it holds chunk_size bytes.  Plain numbers and strings never
 * call back into Lua; int64 cdata (one helper call to learn its ctype) and
 * tables for json columns (the JSON encoder) do.
 *
 * Caveats:
 * - Any error raised by row()/rows()/flush()/finish() ends the COPY: a
 *   client-side error (wrong value count, a value the column cannot take,
 *   a NUL byte, out of memory) sends CopyFail with the same message, so
 *   the server rolls the COPY back and the connection is usable at once
 *   (db:transaction() can roll back).  A half-encoded row never reaches
 *   the server: the buffer only ever sends complete rows (`committed`).
 * - Server errors (a bad value, a constraint) are read when the COPY ends
 *   (libpq does not parse them while a COPY IN is open): finish() raises
 *   them as error objects with the server's CONTEXT ("COPY t, line 3").
 *   A dead connection is noticed at the next flush.
 * - The stream keeps its connection alive (fenv) and sets conn->busy
 *   while open, so other calls on the connection refuse.
 */
#include "lib_copy_priv.h"
#include "interrupt.h"
#include "numfmt.h"
#include "pgconn.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GC_MESSAGE "COPY abandoned: the copy object was garbage-collected " \
                   "before finish()"

static const char *const cp_state_names[] = {
    "new", "open", "finished", "aborted", "failed",
};

/* ------------------------------------------------------------ release */

/* The one release routine behind finish(), abort(), failures and __gc.
 * If the COPY is open it ends it: CopyDone when fail_msg is NULL, else
 * CopyFail(fail_msg) (the server rolls the COPY back).  With drain it also
 * discards the server's answer; without, the caller collects it.  Clears
 * conn->busy and frees the buffers.  Never raises. */
static int cp_release(lua_State *L, sl_copy *cp, const char *fail_msg,
                      int new_state, int drain)
{
    int rc = SL_OK;
    if (L && cp->state == CP_OPEN)
        lib_progress_call(L, &cp->prog, 0, 0, -1, LIB_PROGRESS_HIDE);
    cp->prog.live = 0;
    cp->w.pg = NULL; /* the compiled writer takes no more rows */
    cp->w.row_ends = NULL;
    cp->w.row_n = NULL;
    if (lib_copy_rejecting(cp)) {
        if (cp->state == CP_OPEN) {
            cp->state = new_state;
            cp->conn->busy = 0;
            if (cp->conn->pg)
                lib_copy_reject_release(cp, fail_msg);
        }
        copy_chunk_free(&cp->rj.chunk);
        sbuf_free(&cp->w.buf);
        sbuf_free(&cp->scratch);
        sbuf_free(&cp->vec);
        cp->w.committed = 0;
        return rc;
    }
    if (cp->state == CP_OPEN && cp->sink) {
        /* a file sink: finish() commits on its own, so every end that
         * comes here discards the partial output */
        cp->state = new_state;
        cp->sink->close(cp->sink_ctx, 0, NULL, 0);
    }
    if (cp->state == CP_OPEN) {
        sl_conn *c = cp->conn;
        cp->state = new_state;
        c->busy = 0;
        if (c->pg) {
            rc = copy_end(c->pg, fail_msg);
            if (drain)
                copy_drain(c->pg, fail_msg);
        }
    }
    sbuf_free(&cp->w.buf);
    sbuf_free(&cp->scratch);
    sbuf_free(&cp->vec);
    cp->w.committed = 0;
    return rc;
}

/* Push the stream's connection; returns its stack index. */
static int push_conn(lua_State *L, int ud)
{
    lua_getfenv(L, ud);
    lua_rawgeti(L, -1, FENV_CONN);
    lua_remove(L, -2);
    return lua_gettop(L);
}

/* A row the client refuses (the message at the top) ends the COPY; but
 * the server may have refused an earlier row, among those sent or still
 * in the buffer: send the complete rows, end the COPY with CopyFail and
 * read the server's answer.  When it is an error of its own (not the
 * echo of the CopyFail), that error is raised instead: the first bad row
 * is the one the script must hear of.  Returns when there is none. */
static void earlier_refusal(lua_State *L, sl_copy *cp)
{
    PGconn *pg = cp->conn->pg;
    const char *msg = lua_tostring(L, -1);
    if (cp->w.committed > 0 &&
        copy_put(pg, cp->w.buf.data, cp->w.committed, 0) != SL_OK)
        return;
    cp->w.committed = cp->w.buf.len = 0;
    int conn_idx = push_conn(L, CP_SELF);
    cp_release(L, cp, msg, CP_FAILED, 0);
    PGresult **err = lib_new_result_slot(L);
    pgconn_collect(pg, 0, msg, 0, NULL, err);
    const char *state = *err ? PQresultErrorField(*err, PG_DIAG_SQLSTATE)
                             : NULL;
    lib_conn_deliver_notices(L, cp->conn, conn_idx);
    if (state && strcmp(state, "57014") != 0) {
        lib_push_result_error(L, *err, pg);
        lua_error(L);
    }
    lua_settop(L, conn_idx - 1);
}

/* A row the encoders refuse (the message at the top, cp->rj.code and
 * cp->rj.col set): in reject mode under pcall it is set aside
 * (lib_copy_raise); otherwise the COPY ends (after the server had its say
 * on the rows before: earlier_refusal) and the refusal is raised as an
 * error object like the server's - sqlstate, message, column - with the
 * caller's position in err.where. */
int lib_copy_refuse(lua_State *L, sl_copy *cp)
{
    if (!cp->rj.code)
        cp->rj.code = "22P02"; /* invalid_text_representation */
    if (cp->rj.protect)
        return lib_copy_raise(L, cp);
    if (!cp->sink && cp->state == CP_OPEN && !lib_copy_rejecting(cp) &&
        cp->conn->pg)
        earlier_refusal(L, cp);
    const char *msg = lua_tostring(L, -1);
    cp_release(L, cp, msg, CP_FAILED, 1);
    lib_push_error(L, cp->rj.code, msg, NULL, NULL);
    lib_set_field(L, "column", cp->rj.col);
    lib_set_user_where(L);
    return lua_error(L);
}

int lib_copy_release(lua_State *L, sl_copy *cp, const char *fail_msg,
                     int new_state, int drain)
{
    return cp_release(L, cp, fail_msg, new_state, drain);
}

/* The message at the top of the stack (no position) ends the COPY, then
 * is raised at the caller's line.  In reject mode, while a row is encoded
 * under pcall (rj.protect), a refusal of the row is raised instead as an
 * error object (sqlstate, message, column) and the COPY goes on. */
int lib_copy_raise(lua_State *L, sl_copy *cp)
{
    const char *code = cp->rj.code;
    if (cp->rj.protect && !(code && !*code)) {
        lib_push_error(L, code ? code : "22P02", lua_tostring(L, -1),
                       NULL, NULL);
        lib_set_field(L, "column", cp->rj.col);
        cp->rj.refused = 1;
        return lua_error(L);
    }
    if (code && *code)
        return lib_copy_refuse(L, cp);
    if (!cp->sink && cp->state == CP_OPEN && !lib_copy_rejecting(cp) &&
        cp->conn->pg)
        earlier_refusal(L, cp);
    cp_release(L, cp, lua_tostring(L, -1), CP_FAILED, 1);
    luaL_where(L, 1);
    lua_insert(L, -2);
    lua_concat(L, 2);
    return lua_error(L);
}

/* ------------------------------------------------------------- errors */

/* Push "row N" (lib_copy_priv.h).  Never raises but on out of memory. */
void lib_copy_push_row(lua_State *L, const sl_copy *cp)
{
    char buf[24];
    lua_pushliteral(L, "row ");
    lua_pushlstring(L, buf, numfmt_uint64(buf, cp->w.rows + 1));
    lua_concat(L, 2);
}

/* Raise "row N: out of memory ..." and end the COPY (lib_copy_priv.h). */
int lib_copy_oom(lua_State *L, sl_copy *cp)
{
    lib_copy_push_row(L, cp);
    lua_pushliteral(L, ": out of memory growing the COPY buffer");
    lua_concat(L, 2);
    cp->rj.code = ""; /* no row's fault: it ends the COPY */
    return lib_copy_raise(L, cp);
}

/* ---------------------------------------------------------------- rows */

/* Raise the error of a stream that could not send: after Ctrl-C, or
 * with the server's error / the broken connection's message. */
static int stream_failed(lua_State *L, sl_copy *cp, int rc)
{
    if (rc == SL_EINTR) {
        cp_release(L, cp, "COPY interrupted (Ctrl-C)", CP_FAILED, 1);
        lib_interrupt_consume(L);
        return luaL_error(L, "interrupted (%s)",
                          interrupt_name(interrupt_last()));
    }
    int conn_idx = push_conn(L, CP_SELF);
    cp_release(L, cp, "COPY failed", CP_FAILED, 0);
    if (cp->conn->pg)
        lib_conn_finish(L, cp->conn, conn_idx, 1); /* raises the error */
    lib_push_conn_error(L, cp->conn->pg);
    return lua_error(L);
}

/* Write n bytes of the buffer to a file sink; raises (and discards the
 * partial file) with the sink's message ("out.csv: No space left on
 * device") when the write fails. */
static int sink_put(lua_State *L, sl_copy *cp, size_t n)
{
    char msg[512];
    if (cp->sink->write(cp->sink_ctx, cp->w.buf.data, n, msg, sizeof msg)) {
        lua_pushstring(L, msg);
        lib_copy_raise(L, cp);
    }
    return SL_OK;
}

/* Send the complete rows in the buffer.  Raises (and ends the COPY) if
 * the connection failed or Ctrl-C was pressed. */
static void cp_flush(lua_State *L, sl_copy *cp)
{
    size_t n = cp->w.committed;
    cp->w.buf.len = n;
    if (n == 0)
        return;
    int rc = cp->sink ? sink_put(L, cp, n)
                      : copy_put(cp->conn->pg, cp->w.buf.data, n, 1);
    if (rc != SL_OK)
        stream_failed(L, cp, rc);
    cp->bytes_sent += n;
    cp->w.buf.len = cp->w.committed = 0;
    lib_copy_tick(L, cp);
}

/* Check that the stream at index 1 is open, for method fname. */
static sl_copy *check_open(lua_State *L, const char *fname)
{
    sl_copy *cp = luaL_checkudata(L, CP_SELF, SLUICE_COPY_MT);
    const char *what = cp->sink ? "sink" : "COPY";
    switch (cp->state) {
    case CP_OPEN:
        break;
    case CP_FINISHED:
        luaL_error(L, "%s: the %s is already finished", fname, what);
        break;
    case CP_ABORTED:
        luaL_error(L, "%s: the %s was aborted", fname, what);
        break;
    default:
        if (cp->sink)
            luaL_error(L, "%s: the sink failed earlier and its output was "
                          "discarded", fname);
        luaL_error(L, "%s: the COPY failed earlier and was rolled back "
                      "(nothing it sent was loaded)", fname);
    }
    if (!cp->sink && !cp->conn->pg) {
        cp_release(L, cp, NULL, CP_FAILED, 0);
        luaL_error(L, "%s: the connection is closed", fname);
    }
    return cp;
}

/* Raise "row N: expected K values (a, b, c), got M" and end the COPY
 * (got < 0: the row is a table that is not an array). */
int lib_copy_count_error(lua_State *L, sl_copy *cp, int got, int list_idx)
{
    luaL_Buffer b;
    char num[24];
    lua_checkstack(L, 4);
    cp->rj.code = "22P04"; /* bad_copy_file_format, as the server says */
    cp->rj.col = NULL;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "row ");
    numfmt_uint64(num, cp->w.rows + 1);
    luaL_addstring(&b, num);
    if (list_idx > 0) {
        lua_pushfstring(L, " (element %d of the list)", list_idx);
        luaL_addvalue(&b);
    }
    lua_pushfstring(L, ": expected %d value%s (", cp->w.ncols,
                    cp->w.ncols == 1 ? "" : "s");
    luaL_addvalue(&b);
    for (int i = 0; i < cp->w.ncols && i < 20; i++) {
        if (i)
            luaL_addstring(&b, ", ");
        luaL_addstring(&b, cp->cols[i].name);
    }
    if (cp->w.ncols > 20)
        luaL_addstring(&b, ", ...");
    if (got >= 0)
        lua_pushfstring(L, "), got %d", got);
    else
        lua_pushliteral(L, "), got a table with a nil inside or a key that "
                           "is not an index");
    luaL_addvalue(&b);
    if (list_idx > 0)
        luaL_addstring(&b, " (a NULL inside a table must be sluice.null, "
                           "not nil)");
    luaL_pushresult(&b);
    return lib_copy_raise(L, cp);
}

/* cp:row(v1, v2, ...) appends one row. */
static int cp_row(lua_State *L)
{
    sl_copy *cp = check_open(L, "row");
    int n = lua_gettop(L) - 1;
    if (lib_copy_rejecting(cp)) {
        lib_copy_reject_row(L, cp, 2, n);
        return 0;
    }
    if (n != cp->w.ncols)
        lib_copy_count_error(L, cp, n, 0);
    lib_copy_encode_row(L, cp, 2);
    if (cp->w.committed >= cp->w.chunk)
        cp_flush(L, cp);
    return 0;
}

/* cp:rows(list) appends every row of list (each an array of values) and
 * returns how many. */
static int cp_rows(lua_State *L)
{
    sl_copy *cp = check_open(L, "rows");
    if (!lua_istable(L, 2)) {
        lua_pushfstring(L, "rows: expected a list of rows (a table), got %s",
                        luaL_typename(L, 2));
        return lib_copy_raise(L, cp);
    }
    lua_settop(L, 2);
    luaL_checkstack(L, cp->w.ncols + 8, "too many columns");
    size_t len;
    if (!lib_array_len(L, 2, &len)) {
        /* a nil inside the list would end it early: nothing after it
         * would be loaded */
        lua_pushliteral(L, "rows: expected a list of rows (a table with keys "
                           "1..n only), got a table with a nil inside or a "
                           "key that is not an index");
        return lib_copy_raise(L, cp);
    }
    int n = (int)len;
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, 2, i);
        // stack: cp, list, row
        if (!lua_istable(L, 3)) {
            lib_copy_push_row(L, cp);
            lua_pushfstring(L, " (element %d of the list): expected a table "
                               "of values, got %s", i, luaL_typename(L, 3));
            lua_concat(L, 2);
            return lib_copy_raise(L, cp);
        }
        size_t k;
        if (lib_copy_rejecting(cp)) {
            int got = lib_array_len(L, 3, &k) ? (int)k : -1;
            if (got > 0)
                luaL_checkstack(L, got + 8, "too many values in a row");
            for (int j = 1; j <= got; j++)
                lua_rawgeti(L, 3, j);
            lib_copy_reject_row(L, cp, 4, got);
            lua_settop(L, 2);
            continue;
        }
        if (!lib_array_len(L, 3, &k))
            lib_copy_count_error(L, cp, -1, i);
        if ((int)k != cp->w.ncols)
            lib_copy_count_error(L, cp, (int)k, i);
        for (int j = 1; j <= cp->w.ncols; j++)
            lua_rawgeti(L, 3, j);
        // stack: cp, list, row, v1..vN
        lib_copy_encode_row(L, cp, 4);
        lua_settop(L, 2);
        if (cp->w.committed >= cp->w.chunk)
            cp_flush(L, cp);
    }
    lua_pushinteger(L, n);
    return 1;
}

/* cp:flush() sends the buffered rows now. */
static int cp_flush_method(lua_State *L)
{
    sl_copy *cp = check_open(L, "flush");
    if (lib_copy_rejecting(cp)) {
        lib_copy_reject_after_row(L, cp);
        return 0;
    }
    cp_flush(L, cp);
    return 0;
}

/* finish() of a file sink: commit its output (flushed, closed, put in
 * place) and push the rows written, or raise "where: path: what".  The
 * buffers go either way. */
static int finish_sink(lua_State *L, sl_copy *cp)
{
    /* FAILED until the output is in place */
    char msg[512];
    cp->state = CP_FAILED;
    int rc = cp->sink->close(cp->sink_ctx, 1, msg, sizeof msg);
    cp_release(L, cp, NULL, CP_FAILED, 0);
    if (rc != 0) {
        luaL_where(L, 1);
        lua_pushstring(L, msg);
        lua_concat(L, 2);
        return lua_error(L);
    }
    cp->state = CP_FINISHED;
    lua_pushnumber(L, (lua_Number)cp->w.rows);
    return 1;
}

/* cp:finish() -> number of rows the server loaded.  Raises the server's
 * error object when the COPY fails; either way the COPY is over. */
static int cp_finish(lua_State *L)
{
    sl_copy *cp = check_open(L, "finish");
    lua_settop(L, 1);
    if (lib_copy_rejecting(cp))
        return lib_copy_reject_finish(L, cp);
    if (cp->w.format == COPY_FMT_BINARY) {
        cp->w.buf.len = cp->w.committed;
        if (copy_put_binary_trailer(&cp->w.buf) != SL_OK)
            lib_copy_oom(L, cp);
        cp->w.committed = cp->w.buf.len;
    }
    cp_flush(L, cp);
    if (cp->sink)
        return finish_sink(L, cp);
    int conn_idx = push_conn(L, CP_SELF);
    /* FAILED until the server says otherwise: its error is raised here,
     * and then nothing of the COPY was loaded */
    cp_release(L, cp, NULL, CP_FAILED, 0);
    PGresult *res;
    int st = lib_conn_finish_status(L, cp->conn, conn_idx, 1, &res);
    if (st == LIB_FINISH_LOST) {
        /* every row was sent and nobody knows whether the COPY ended:
         * in autocommit it commits as it ends */
        char rows[24];
        numfmt_uint64(rows, cp->w.rows);
        return lib_raise_copy_lost(L, cp->conn->pg, "COPY", cp->autocommit,
                                   rows);
    }
    cp->state = CP_FINISHED;
    const char *t = res ? PQcmdTuples(res) : "";
    if (st == LIB_FINISH_INTERRUPTED && !interrupt_held())
        return lib_raise_copy_interrupted(L, lib_interrupt_consume(L), "COPY",
                                          cp->autocommit, t);
    double loaded = *t ? strtod(t, NULL) : 0;
    lib_progress_call(L, &cp->prog, loaded, (double)cp->bytes_sent, -1,
                      LIB_PROGRESS_DONE);
    lua_pushnumber(L, loaded);
    return 1;
}

/* cp:abort([message]) -> true if it ended an open COPY (the server rolls
 * it back), false if the COPY was already over.  Never raises for the
 * server's answer. */
static int cp_abort(lua_State *L)
{
    sl_copy *cp = luaL_checkudata(L, CP_SELF, SLUICE_COPY_MT);
    const char *msg = luaL_optstring(L, 2, "COPY aborted by the script");
    if (cp->state != CP_OPEN) {
        lua_pushboolean(L, 0);
        return 1;
    }
    cp_release(L, cp, msg, CP_ABORTED, 1);
    lua_pushboolean(L, 1);
    return 1;
}

static int cp_gc(lua_State *L)
{
    sl_copy *cp = luaL_checkudata(L, CP_SELF, SLUICE_COPY_MT);
    cp_release(L, cp, GC_MESSAGE, CP_ABORTED, 1);
    lib_progress_free(L, &cp->prog);
    return 0;
}

static const char *const format_names[] = { "text", "csv", "binary" };

static int cp_tostring(lua_State *L)
{
    sl_copy *cp = luaL_checkudata(L, CP_SELF, SLUICE_COPY_MT);
    char rows[24];
    numfmt_uint64(rows, cp->w.rows);
    if (cp->sink) {
        lua_getfenv(L, CP_SELF);
        lua_rawgeti(L, -1, FENV_NAME);
        lua_pushfstring(L, "sluice.sink (%s, %s, %d columns, %s rows, %s)",
                        cp_state_names[cp->state], format_names[cp->w.format],
                        cp->w.ncols, rows, lua_tostring(L, -1));
        return 1;
    }
    lua_pushfstring(L, "sluice.copy (%s, %s, %d columns, %s rows)",
                    cp_state_names[cp->state], format_names[cp->w.format],
                    cp->w.ncols, rows);
    return 1;
}

/* The read-only fields (see lib.h): rows_sent, bytes_sent, buffered,
 * buffer_size, chunk_size, format, state, path (a sink), columns, and in
 * reject mode rows_loaded, rows_rejected, reject_chunk; nil for any other
 * key. */
int lib_copy_field(lua_State *L)
{
    sl_copy *cp = luaL_checkudata(L, 1, SLUICE_COPY_MT);
    const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "";
    if (strcmp(k, "rows_sent") == 0)
        lua_pushnumber(L, (lua_Number)cp->w.rows);
    else if (strcmp(k, "bytes_sent") == 0)
        lua_pushnumber(L, (lua_Number)cp->bytes_sent);
    else if (strcmp(k, "buffered") == 0)
        lua_pushnumber(L, (lua_Number)cp->w.committed);
    else if (strcmp(k, "buffer_size") == 0)
        lua_pushnumber(L, (lua_Number)cp->w.buf.cap);
    else if (strcmp(k, "chunk_size") == 0)
        lua_pushnumber(L, (lua_Number)cp->w.chunk);
    else if (strcmp(k, "format") == 0)
        lua_pushstring(L, format_names[cp->w.format]);
    else if (strcmp(k, "state") == 0)
        lua_pushstring(L, cp_state_names[cp->state]);
    else if (strcmp(k, "rows_loaded") == 0 && lib_copy_rejecting(cp))
        lua_pushnumber(L, (lua_Number)cp->rj.loaded);
    else if (strcmp(k, "rows_rejected") == 0 && lib_copy_rejecting(cp))
        lua_pushnumber(L, (lua_Number)cp->rj.rejected);
    else if (strcmp(k, "reject_chunk") == 0 && lib_copy_rejecting(cp))
        lua_pushnumber(L, (lua_Number)cp->rj.cap);
    else if (strcmp(k, "path") == 0 && cp->sink) {
        lua_getfenv(L, 1);
        lua_rawgeti(L, -1, FENV_NAME);
    } else if (strcmp(k, "columns") == 0) {
        lua_createtable(L, cp->w.ncols, 0);
        for (int i = 0; i < cp->w.ncols; i++) {
            lua_pushstring(L, cp->cols[i].name);
            lua_rawseti(L, -2, i + 1);
        }
    } else
        lua_pushnil(L);
    return 1;
}

const luaL_Reg lib_copy_methods[] = {
    { "row", cp_row },
    { "rows", cp_rows },
    { "flush", cp_flush_method },
    { "finish", cp_finish },
    { "abort", cp_abort },
    { NULL, NULL },
};

const luaL_Reg lib_copy_meta[] = {
    { "__gc", cp_gc },
    { "__tostring", cp_tostring },
    { NULL, NULL },
};

/* ------------------------------------------------ the compiled writer
 *
 * A call of cp:row() from Lua is a call of a C function, which LuaJIT's
 * compiled code can only make by leaving the trace (and each value is
 * then read back through the C API).  For streams to the server whose
 * columns the fast table serves (copyenc.h), lua/sluice/copy.lua compiles
 * a row writer in Lua instead: it checks each value's Lua type itself and
 * calls the core's encoders through the FFI, which stays inside the
 * trace.  Here are the stream's side of it (its writer and its column
 * kinds) and the table, as Lua sees it. */

/* sluice.core.copy_fast_text(cp) -> writer pointer, {kind code, ...}: a
 * text or CSV stream to the server (else nil); the codes are enum
 * copy_kind's, for t_num and t_bool.  Byte columns are marked -1 (a
 * string there is hex-encoded: the C path's); columns given a layout
 * COPY_FAST_TEXT_LAYOUT + the code (a string there goes to t_lay). */
/* The third result of copy_fast()/copy_fast_text(): in reject mode the
 * table that keeps the chunk's values (the writer stores each row's at
 * (row_index * ncols) + 1..ncols), else none. */
static int push_keep(lua_State *L, sl_copy *cp)
{
    if (!lib_copy_rejecting(cp))
        return 2;
    lua_getfenv(L, 1);
    lua_rawgeti(L, -1, FENV_KEEP);
    lua_remove(L, -2);
    return 3;
}

int lib_copy_fast_text(lua_State *L)
{
    sl_copy *cp = luaL_checkudata(L, 1, SLUICE_COPY_MT);
    if (cp->w.format == COPY_FMT_BINARY || cp->sink || cp->w.custom ||
        cp->null || cp->state != CP_OPEN)
        return 0;
    lua_pushlightuserdata(L, &cp->w);
    lua_createtable(L, cp->w.ncols, 0);
    for (int i = 0; i < cp->w.ncols; i++) {
        const copy_col *col = &cp->cols[i];
        lua_pushinteger(L, col->kind == COPY_K_BYTEA ? -1
                           : col->layout ? col->kind + COPY_FAST_TEXT_LAYOUT
                                         : col->kind);
        lua_rawseti(L, -2, i + 1);
    }
    return push_keep(L, cp);
}

/* sluice.core.copy_fast(cp) -> writer pointer, {kind name, ...} when the
 * fast table serves every column of the stream (binary format, a COPY to
 * the server), else nil.  A column given a layout is "<kind>+layout"
 * (its strings go to the fast table's COPY_FAST_LAYOUT function); a
 * vector or halfvec column "<kind>:<dimension or -1>", a real[] or
 * float8[] column "floats:<1 for real>:<element oid>" (the compiled
 * writer copies a Lua array's numbers into a buffer for vec_f64 /
 * arr_f64). */
int lib_copy_fast(lua_State *L)
{
    sl_copy *cp = luaL_checkudata(L, 1, SLUICE_COPY_MT);
    if (cp->w.format != COPY_FMT_BINARY || cp->sink || cp->state != CP_OPEN)
        return 0;
    lua_pushlightuserdata(L, &cp->w);
    lua_createtable(L, cp->w.ncols, 0);
    for (int i = 0; i < cp->w.ncols; i++) {
        const copy_col *col = &cp->cols[i];
        if (col->kind == COPY_K_ARRAY && !col->layout &&
            (col->elem_kind == COPY_K_FLOAT4 ||
             col->elem_kind == COPY_K_FLOAT8)) {
            /* real[] / float8[]: "floats:<1 for real>:<element oid>" */
            lua_pushfstring(L, "floats:%d:%d",
                            col->elem_kind == COPY_K_FLOAT4,
                            (int)col->elem_oid);
            lua_rawseti(L, -2, i + 1);
            continue;
        }
        if (!copy_fast_serves(cp->cols[i].kind))
            return 0;
        lua_pushstring(L, copy_kind_name(cp->cols[i].kind));
        if (cp->cols[i].kind == COPY_K_VECTOR ||
            cp->cols[i].kind == COPY_K_HALFVEC) {
            lua_pushfstring(L, ":%d", cp->cols[i].typmod);
            lua_concat(L, 2);
        }
        if (cp->cols[i].layout) {
            lua_pushliteral(L, "+layout");
            lua_concat(L, 2);
        }
        lua_rawseti(L, -2, i + 1);
    }
    return push_keep(L, cp);
}

/* sluice.core.copy_fast_functions() -> the fast table as a list of
 * { name =, sig =, fn = the function pointer as a light userdata,
 * takes = "number"|"string"|"boolean"|"layout" (nil for row functions),
 * kinds = { kind name, ... } }, for ffi.cast in lua/sluice/copy.lua
 * (works alike in the executable and in the module, whose symbols are
 * not global). */
int lib_copy_fast_functions(lua_State *L)
{
    static const char *const takes[] = {
        [COPY_FAST_ROW] = NULL, [COPY_FAST_NUMBER] = "number",
        [COPY_FAST_STRING] = "string", [COPY_FAST_BOOL] = "boolean",
        [COPY_FAST_LAYOUT] = "layout", [COPY_FAST_VECTOR] = "vector",
    };
    lua_newtable(L);
    int n = 0;
    for (const copy_fast_fn *f = copy_fast_table; f->name; f++) {
        lua_createtable(L, 0, 5);
        lua_pushstring(L, f->name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, f->sig);
        lua_setfield(L, -2, "sig");
        void *p;
        memcpy(&p, &f->fn, sizeof p); /* a function's address as data */
        lua_pushlightuserdata(L, p);
        lua_setfield(L, -2, "fn");
        lua_pushstring(L, takes[f->takes]); /* NULL pushes nil */
        lua_setfield(L, -2, "takes");
        lua_newtable(L);
        for (int kind = 0, k = 0; kind <= COPY_K_OTHER; kind++) {
            if (f->kinds & (1u << kind)) {
                lua_pushstring(L, copy_kind_name(kind));
                lua_rawseti(L, -2, ++k);
            }
        }
        lua_setfield(L, -2, "kinds");
        lua_rawseti(L, -2, ++n);
    }
    return 1;
}

/* ---------------------------------------------------------------- start */

/* vec: pgvector's type name when the catalog says the column is one of
 * its types (lua/sluice/copy.lua: by the type's name and receive
 * function), else NULL. */
static int kind_from(Oid oid, int textlike, const char *vec)
{
    if (vec && strcmp(vec, "vector") == 0)
        return COPY_K_VECTOR;
    if (vec && strcmp(vec, "halfvec") == 0)
        return COPY_K_HALFVEC;
    if (vec && strcmp(vec, "sparsevec") == 0)
        return COPY_K_SPARSEVEC;
    return textlike ? COPY_K_TEXT : copy_kind_of(oid);
}

/* sluice.core.copy_kind(base_oid, textlike [, vec]) -> encoder family
 * name ("int4", "text", "vector", ..., "other" when there is no binary
 * encoder). */
int lib_copy_kind(lua_State *L)
{
    Oid oid = (Oid)luaL_checknumber(L, 1);
    lua_pushstring(L, copy_kind_name(kind_from(oid, lua_toboolean(L, 2),
                                               lua_tostring(L, 3))));
    return 1;
}

static int opt_field(lua_State *L, int t, const char *k)
{
    lua_getfield(L, t, k);
    return lua_gettop(L);
}
/* The encoder of a column of `kind` in `format` (enum copy_format):
 * text and CSV have one for every kind; binary NULL when the kind has
 * none.  Never raises. */
static enc_fn column_encoder(int format, int kind)
{
    if (kind == COPY_K_VECTOR || kind == COPY_K_HALFVEC ||
        kind == COPY_K_SPARSEVEC)
        return format == COPY_FMT_BINARY ? lib_copy_vec_bin
                                         : lib_copy_vec_text;
    if (kind == COPY_K_BIT || kind == COPY_K_VARBIT)
        return format == COPY_FMT_BINARY ? lib_copy_vec_bin
                                         : lib_copy_enc_text;
    return format == COPY_FMT_BINARY ? lib_copy_bin_encoder(kind)
                                     : lib_copy_enc_text;
}


/* Fill one column from its spec table at index s (see lib.h). */
static void load_col(lua_State *L, copy_col *col, int s, int format, int i)
{
    lua_getfield(L, s, "name");
    lua_getfield(L, s, "type_name");
    if (!lua_isstring(L, -2) || !lua_isstring(L, -1))
        luaL_error(L, "copy_start: column spec %d needs name and type_name",
                   i);
    col->name = lua_tostring(L, -2);
    col->type_name = lua_tostring(L, -1);
    lua_pop(L, 2);
    lua_getfield(L, s, "base_oid");
    lua_getfield(L, s, "textlike");
    lua_getfield(L, s, "vec");
    col->kind = kind_from((Oid)lua_tonumber(L, -3), lua_toboolean(L, -2),
                          lua_tostring(L, -1));
    lua_pop(L, 3);
    lua_getfield(L, s, "typmod");
    col->typmod = lua_isnumber(L, -1) ? (int)lua_tonumber(L, -1) : -1;
    lua_pop(L, 1);
    lua_getfield(L, s, "elem_oid");
    if (lua_isnumber(L, -1) && lua_tonumber(L, -1) > 0) {
        col->elem_oid = (Oid)lua_tonumber(L, -1);
        lua_getfield(L, s, "elem_base_oid");
        lua_getfield(L, s, "elem_textlike");
        col->elem_kind = kind_from((Oid)lua_tonumber(L, -2),
                                   lua_toboolean(L, -1), NULL);
        col->kind = COPY_K_ARRAY;
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
    col->enc = column_encoder(format, col->kind);
    if (format != COPY_FMT_BINARY)
        return;
    if (col->kind == COPY_K_ARRAY)
        col->elem_enc = column_encoder(format, col->elem_kind);
    if (!col->enc || (col->kind == COPY_K_ARRAY && !col->elem_enc))
        luaL_error(L, "copy: column \"%s\" (%s) has no binary encoder; use "
                      "format \"text\" or \"csv\"", col->name,
                   col->type_name);
}

/* Push a new stream: the userdata first, holding nothing, so a failure
 * below leaks nothing (its __gc frees whatever was acquired); then its
 * environment (connection at conn_idx, or none when 0; column encoders
 * from the specs at `specs`; helpers from the opts at `opts`) and its
 * buffer.  `extra` bytes after the struct are zeroed for a sink's state.
 * Raises on a bad spec or out of memory. */
static sl_copy *cp_new(lua_State *L, int conn_idx, int specs, int opts,
                       int format, int ncols, size_t chunk, size_t extra)
{
    size_t head = (sizeof(sl_copy) + 15) & ~(size_t)15;
    sl_copy *cp = lua_newuserdata(L, head + extra);
    memset(cp, 0, head + extra);
    cp->state = CP_NEW;
    cp->w.format = format;
    cp->w.chunk = chunk;
    cp->w.delim = format == COPY_FMT_CSV ? ',' : '\t';
    if (extra)
        cp->sink_ctx = (char *)cp + head;
    luaL_getmetatable(L, SLUICE_COPY_MT);
    lua_setmetatable(L, -2);
    int ud = lua_gettop(L);
    lua_createtable(L, FENV_SLOTS, 0);
    if (conn_idx) {
        lua_pushvalue(L, conn_idx);
        lua_rawseti(L, -2, FENV_CONN);
    }
    copy_col *cols = lua_newuserdata(L, sizeof(copy_col) * (size_t)ncols);
    memset(cols, 0, sizeof(copy_col) * (size_t)ncols);
    lua_rawseti(L, -2, FENV_COLS);
    lua_getfield(L, opts, "json_encode");
    lua_rawseti(L, -2, FENV_JSON);
    lua_getfield(L, opts, "cdata_kind");
    lua_rawseti(L, -2, FENV_CDATA);
    lua_pushvalue(L, specs);
    lua_rawseti(L, -2, FENV_SPECS);
    lua_setfenv(L, ud);
    cp->cols = cols;
    cp->w.ncols = ncols;
    for (int i = 0; i < ncols; i++) {
        lua_rawgeti(L, specs, i + 1);
        if (!lua_istable(L, -1))
            luaL_argerror(L, specs, "column specs must be tables");
        load_col(L, &cols[i], lua_gettop(L), format, i + 1);
        lua_pop(L, 1);
    }
    if (sbuf_grow(&cp->w.buf, chunk + chunk / 4) != SL_OK)
        luaL_error(L, "copy: out of memory allocating the buffer");
    return cp;
}

void *lib_copy_new_sink(lua_State *L, const char *format, int specs,
                        int opts, int name_idx, const lib_copy_sink *ops)
{
    int fmt = COPY_FMT_TEXT;
    if (strcmp(format, "text") == 0)
        fmt = COPY_FMT_TEXT;
    else if (strcmp(format, "csv") == 0)
        fmt = COPY_FMT_CSV;
    else
        luaL_error(L, "sink: format must be \"csv\" or \"text\"");
    int ncols = (int)lua_objlen(L, specs);
    if (ncols < 1 || ncols > MAX_COLS)
        luaL_error(L, "sink: 1 to 1600 columns");
    size_t chunk = DEFAULT_CHUNK;
    if (lua_isnumber(L, opt_field(L, opts, "chunk_size"))) {
        lua_Number v = lua_tonumber(L, -1);
        if (v < MIN_CHUNK || v > (1 << 30))
            luaL_error(L, "sink: chunk_size must be from 1024 to 2^30 bytes");
        chunk = (size_t)v;
    }
    lua_pop(L, 1);
    size_t dlen = 0, nlen = 0;
    lua_getfield(L, opts, "delimiter");
    const char *delim = lua_tolstring(L, -1, &dlen);
    lua_getfield(L, opts, "null");
    int null_idx = lua_gettop(L);
    const char *null = lua_tolstring(L, -1, &nlen);
    if (delim && (dlen != 1 || strchr("\r\n\\\"", delim[0])))
        luaL_error(L, "sink: delimiter must be one byte, not CR, LF, "
                      "backslash or a quote");
    int header = lua_toboolean(L, opt_field(L, opts, "header"));
    lua_pop(L, 1);

    sl_copy *cp = cp_new(L, 0, specs, opts, fmt, ncols, chunk,
                         ops->ctx_size);
    int ud = lua_gettop(L);
    // stack: ..., delim, null, cp
    lua_getfenv(L, ud);
    lua_pushvalue(L, name_idx);
    lua_rawseti(L, -2, FENV_NAME);
    lua_pushvalue(L, null_idx);
    lua_rawseti(L, -2, FENV_NULL); /* anchors cp->null */
    lua_pop(L, 1);
    cp->sink = ops;
    if (delim && delim[0] != cp->w.delim) {
        cp->w.delim = (unsigned char)delim[0];
        cp->w.custom = 1;
    }
    if (null) {
        cp->null = null;
        cp->null_len = nlen;
        cp->w.custom = 1;
    }
    cp->state = CP_OPEN; /* ops->close is safe on the zeroed ctx */
    if (header)
        lib_copy_header_row(L, cp);
    lua_replace(L, ud - 2); /* the stream where delim was */
    lua_pop(L, 1);
    return cp->sink_ctx;
}

/* What date/time strings mean in this session, for the binary encoders:
 * the DateStyle order (from the server's report of it now), and the
 * TimeZone rules copy.lua read (opts.zone: true for UTC, a zone userdata
 * from lib_copy_zone(), or nil with opts.zone_error saying why). */
static void session_datetime(lua_State *L, sl_copy *cp, sl_conn *c, int ud)
{
    cp->w.dt_order = dt_order_of(PQparameterStatus(c->pg, "DateStyle"));
    lua_getfield(L, 5, "zone");
    if (lua_type(L, -1) == LUA_TBOOLEAN && lua_toboolean(L, -1)) {
        cp->w.zone = &tz_rules_utc;
    } else if (lua_type(L, -1) == LUA_TUSERDATA &&
               lua_objlen(L, -1) == sizeof(tz_rules)) {
        cp->w.zone = lua_touserdata(L, -1);
        lua_getfenv(L, ud);
        lua_pushvalue(L, -2);
        lua_rawseti(L, -2, FENV_ZONE); /* anchors cp->w.zone */
        lua_pop(L, 1);
    }
    lua_getfield(L, 5, "zone_error");
    const char *why = lua_tostring(L, -1);
    snprintf(cp->zone_err, sizeof cp->zone_err, "%s", why ? why : "");
    lua_pop(L, 2);
}

/* The columns' layouts from opts.layouts (stack index 5): { [column
 * index] = layout text }, for date, timestamp and timestamptz columns
 * (copy.lua checks them first, with the caller's line; these are
 * guards).  Compiled into one userdata of ncols layouts in the stream's
 * environment.  Raises on a bad layout or column. */
static void column_layouts(lua_State *L, sl_copy *cp, int ud)
{
    lua_getfield(L, 5, "layouts");
    int t = lua_gettop(L);
    if (!lua_istable(L, t)) {
        lua_pop(L, 1);
        return;
    }
    size_t size = sizeof(textops_layout) * (size_t)cp->w.ncols;
    textops_layout *lay = lua_newuserdata(L, size);
    memset(lay, 0, size);
    lua_getfenv(L, ud);
    lua_pushvalue(L, -2);
    lua_rawseti(L, -2, FENV_LAYOUTS); /* anchors lay */
    lua_pop(L, 2);
    for (int i = 0; i < cp->w.ncols; i++) {
        lua_rawgeti(L, t, i + 1);
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        copy_col *col = &cp->cols[i];
        if (s) {
            char err[256];
            if (col->kind != COPY_K_DATE && col->kind != COPY_K_TIMESTAMP &&
                col->kind != COPY_K_TIMESTAMPTZ)
                luaL_error(L, "copy: layouts: column \"%s\" (%s) is not a "
                              "date or timestamp", col->name, col->type_name);
            if (textops_layout_compile(&lay[i], s, n, err, sizeof err) != 0)
                luaL_error(L, "copy: layouts: column \"%s\": %s", col->name,
                           err);
            col->layout = &lay[i];
        }
        lua_pop(L, 1);
    }
    cp->w.layouts = lay;
    lua_pop(L, 1);
}

/* sluice.core.copy_zone(db) -> true (the session TimeZone is UTC), a
 * zone (its rules, read from the system zoneinfo), or nil and why they
 * could not be read.  The binary encoders read offset-less timestamptz
 * strings in that zone. */
int lib_copy_zone(lua_State *L)
{
    sl_conn *c = lib_conn_check(L, 1);
    const char *name = c->pg ? PQparameterStatus(c->pg, "TimeZone") : NULL;
    if (!name) {
        lua_pushnil(L);
        lua_pushliteral(L, "the server did not report its TimeZone");
        return 2;
    }
    if (tz_is_utc_name(name)) {
        lua_pushboolean(L, 1);
        return 1;
    }
    tz_rules *z = lua_newuserdata(L, sizeof *z);
    char err[256];
    if (tz_rules_load(z, name, err, sizeof err) != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "the rules of the session TimeZone \"%s\" could "
                           "not be read (%s)", name, err);
        return 2;
    }
    return 1;
}

/* sluice.core.copy_start(db, sql, format, specs, opts) -> copy stream.
 * sql is the whole COPY ... FROM STDIN statement; format "text", "csv"
 * or "binary" (matching sql); specs one table per column: name,
 * type_name, base_oid, textlike, elem_oid, elem_base_oid, elem_textlike;
 * opts: chunk_size, json_encode, cdata_kind, zone and zone_error (see
 * session_datetime()), on_reject, reject_chunk, progress and
 * progress_live (lib_progress_setup: ticks where the stream hands a chunk
 * to libpq, the summary at finish()).  Raises the server's error object
 * if the COPY cannot start. */
int lib_copy_start(lua_State *L)
{
    sl_conn *c = lib_conn_check(L, 1);
    const char *sql = luaL_checkstring(L, 2);
    const char *fmt = luaL_checkstring(L, 3);
    luaL_checktype(L, 4, LUA_TTABLE);
    luaL_checktype(L, 5, LUA_TTABLE);
    lua_settop(L, 5);
    int format;
    if (strcmp(fmt, "text") == 0)
        format = COPY_FMT_TEXT;
    else if (strcmp(fmt, "csv") == 0)
        format = COPY_FMT_CSV;
    else if (strcmp(fmt, "binary") == 0)
        format = COPY_FMT_BINARY;
    else
        return luaL_argerror(L, 3, "text, csv or binary");
    int ncols = (int)lua_objlen(L, 4);
    luaL_argcheck(L, ncols >= 1 && ncols <= MAX_COLS, 4,
                  "1 to 1600 column specs");
    size_t chunk = DEFAULT_CHUNK;
    if (lua_isnumber(L, opt_field(L, 5, "chunk_size"))) {
        lua_Number v = lua_tonumber(L, -1);
        luaL_argcheck(L, v >= MIN_CHUNK && v <= (1 << 30), 5,
                      "chunk_size must be from 1024 to 2^30 bytes");
        chunk = (size_t)v;
    }
    size_t reject_rows = 0;
    int on_reject = opt_field(L, 5, "on_reject");
    if (!lua_isnil(L, on_reject)) {
        lua_Number v = lua_tonumber(L, opt_field(L, 5, "reject_chunk"));
        reject_rows = v >= 1 ? (size_t)v : REJECT_CHUNK_ROWS;
        luaL_argcheck(L, v == 0 || (v >= 1 && v <= 1e7), 5,
                      "reject_chunk must be from 1 to 10000000 rows");
    }
    lua_settop(L, 5);

    sl_copy *cp = cp_new(L, 1, 4, 5, format, ncols, chunk, 0);
    cp->conn = c;
    int ud = lua_gettop(L);
    session_datetime(L, cp, c, ud);
    lua_getfield(L, 5, "progress");
    lua_getfield(L, 5, "progress_live");
    lib_progress_setup(L, &cp->prog, -2, lua_toboolean(L, -1));
    lua_settop(L, ud);
    column_layouts(L, cp, ud);
    // stack: db, sql, fmt, specs, opts, cp
    if (format == COPY_FMT_BINARY &&
        copy_put_binary_header(&cp->w.buf) != SL_OK)
        return luaL_error(L, "copy: out of memory allocating the buffer");
    cp->w.committed = cp->w.buf.len;
    cp->autocommit = PQtransactionStatus(c->pg) == PQTRANS_IDLE;
    if (reject_rows) {
        /* reject mode: each chunk opens a COPY of its own */
        lua_getfield(L, 5, "on_reject");
        lib_copy_reject_setup(L, cp, ud, 2, lua_gettop(L), reject_rows);
        /* opts.relayed_errors: the server relays its nodes' errors as
         * XX000 (a Citus cluster; copy.lua finds out) */
        lua_getfield(L, 5, "relayed_errors");
        cp->rj.chunk.relayed = lua_toboolean(L, -1);
        lua_pop(L, 1);
        cp->state = CP_OPEN;
        cp->w.pg = &c->pg;
        c->busy = 1;
        lua_settop(L, ud);
        return 1;
    }

    PGresult **err = lib_new_result_slot(L);
    // stack: ..., cp, err_holder
    int interrupted;
    int rc = copy_begin(c->pg, sql, PGRES_COPY_IN, err, &interrupted);
    if (interrupted)
        lib_interrupt_consume(L);
    if (rc == SL_OK) {
        cp->state = CP_OPEN;
        cp->w.pg = &c->pg;
        c->busy = 1;
        if (interrupted) {
            cp_release(L, cp, "COPY interrupted (Ctrl-C)", CP_FAILED, 1);
            return luaL_error(L, "interrupted (%s)",
                              interrupt_name(interrupt_last()));
        }
        lua_settop(L, ud);
        return 1;
    }
    return lib_raise_begin_failed(L, c, rc, *err);
}
