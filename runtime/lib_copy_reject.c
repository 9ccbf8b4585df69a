/*
 * lib_copy_reject.c - reject mode of "sluice.copy" streams (db:copy with
 * opts.on_reject): rows that the encoders or the server refuse for their
 * own fault are handed to on_reject(values, err, row), and every other row
 * is loaded.
 *
 * Uses: lib_copy_priv.h (the stream), copychunk.h (the chunks, their
 * transactions and the settling of a failed one), interrupt.h.
 *
 * The stream sends its rows in chunks of rj.chunk.cap rows (reject_chunk),
 * each one COPY in its own transaction, or under a savepoint when the
 * caller holds a transaction.  Per row:
 * - the values are kept (fenv[FENV_KEEP]) until the chunk is settled, so
 *   on_reject gets them as they were given;
 * - the row is encoded under pcall: a value the encoders refuse sets the
 *   row aside at once (its error object in fenv[FENV_CREJ]; the server
 *   never sees it);
 * - the encoded bytes stay in the buffer for the whole chunk, and go to
 *   the server as they fill chunk_size, so the server parses the chunk
 *   while the script produces it.
 * When the chunk is full (or at finish()) its COPY ends; if the server
 * refused it for a row's fault, copychunk.c settles it (the rows sent
 * again without the bad ones).  Then, with the chunk committed, the
 * refused rows go to on_reject in row order, and the next chunk starts.
 *
 * What is committed: every chunk before the current one (in the caller's
 * transaction: released into it).  An error that is no row's fault (a
 * lost connection, Ctrl-C, a serialization failure) rolls the current
 * chunk back and is raised with err.committed_rows / err.in_doubt_rows
 * and a message saying so; the chunk's rows refused so far are handed to
 * on_reject first.
 */
#include "lib_copy_priv.h"
#include "interrupt.h"
#include "numfmt.h"

#include <stdint.h>
#include <string.h>

#define ABORTED_MSG "COPY aborted"

static int encode_protected(lua_State *L);

void lib_copy_reject_setup(lua_State *L, sl_copy *cp, int ud, int sql_idx,
                           int fn_idx, size_t rows)
{
    copy_chunk *c = &cp->rj.chunk;
    cp->rj.on = 1;
    cp->rj.cap = rows;
    if (copy_chunk_init(c, rows) != SL_OK) {
        copy_chunk_free(c);
        luaL_error(L, "copy: out of memory allocating a chunk of %d rows",
                   (int)rows);
    }
    c->own_tx = cp->autocommit;
    c->binary = cp->w.format == COPY_FMT_BINARY;
    c->csv = cp->w.format == COPY_FMT_CSV;
    c->sql = lua_tostring(L, sql_idx);
    lua_getfenv(L, ud);
    lua_pushvalue(L, sql_idx);
    lua_rawseti(L, -2, FENV_SQL);
    lua_pushvalue(L, fn_idx);
    lua_rawseti(L, -2, FENV_REJECT);
    size_t slots = rows * (size_t)cp->w.ncols;
    lua_createtable(L, slots < (1u << 16) ? (int)slots : (1 << 16), 0);
    lua_rawseti(L, -2, FENV_KEEP);
    lua_newtable(L);
    lua_rawseti(L, -2, FENV_CREJ);
    lua_pushlightuserdata(L, cp);
    lua_pushcclosure(L, encode_protected, 1);
    lua_rawseti(L, -2, FENV_ENCODE);
    lua_pop(L, 1);
    /* the rows only: each chunk's COPY gets its own binary header */
    cp->w.buf.len = cp->w.committed = 0;
    cp->rj.piece = cp->w.chunk;
    cp->w.row_ends = c->ends;
    cp->w.row_n = &c->n;
    cp->w.row_cap = rows;
}

/* Push fenv[slot] of the stream at CP_SELF. */
static void push_slot(lua_State *L, int slot)
{
    lua_getfenv(L, CP_SELF);
    lua_rawgeti(L, -1, slot);
    lua_remove(L, -2);
}

/* ------------------------------------------------------------ failures */

/* Push "rows 1-N were done by earlier chunks (...)" for an error that
 * stops the stream, and set err's committed_rows / in_doubt_rows (the
 * error object at e). */
static void push_done(lua_State *L, sl_copy *cp, int e, uint64_t doubt,
                      int own_tx)
{
    char done[24], loaded[24], rej[24];
    numfmt_uint64(done, cp->rj.base);
    numfmt_uint64(loaded, cp->rj.loaded);
    numfmt_uint64(rej, cp->rj.rejected);
    lua_pushnumber(L, own_tx ? (lua_Number)cp->rj.loaded : 0);
    lua_setfield(L, e, "committed_rows");
    lua_pushnumber(L, (lua_Number)doubt);
    lua_setfield(L, e, "in_doubt_rows");
    if (cp->rj.base == 0 && cp->rj.loaded == 0)
        lua_pushliteral(L, "copy: no row was loaded: ");
    else if (own_tx)
        lua_pushfstring(L, "copy: rows 1-%s were done by earlier chunks (%s "
                           "loaded and committed, %s handed to on_reject); "
                           "the rest was not loaded: ", done, loaded, rej);
    else
        lua_pushfstring(L, "copy: rows 1-%s were done by earlier chunks (%s "
                           "loaded in the open transaction, %s handed to "
                           "on_reject); the rest was not loaded: ", done,
                        loaded, rej);
    if (doubt) {
        char d[24];
        numfmt_uint64(d, doubt);
        lua_pushfstring(L, "the last chunk's COMMIT got no answer: its %s "
                           "rows may or may not have been committed; ", d);
        lua_concat(L, 2);
    }
}

/* Hand the refused rows [0, upto) of the chunk to on_reject, in row
 * order: the encoders' (fenv[FENV_CREJ]) and the server's (c->rej_*).
 * An error raised by on_reject does not stop the others from being
 * handed over; the first one is left on the stack (returns 1), else
 * returns 0. */
static int hand_over(lua_State *L, sl_copy *cp, size_t upto)
{
    copy_chunk *c = &cp->rj.chunk;
    lua_pushnil(L); /* the first error */
    int first_err = lua_gettop(L);
    push_slot(L, FENV_REJECT);
    push_slot(L, FENV_KEEP);
    push_slot(L, FENV_CREJ);
    int fn = first_err + 1, keep = fn + 1, crej = fn + 2;
    int failed = 0, ncols = cp->w.ncols;
    size_t k = 0; /* next of the server's rejections */
    cp->conn->busy = 0; /* on_reject may use the connection */
    for (size_t i = 0; i < upto; i++) {
        int from_server = k < c->nrej && c->rej_row[k] == i;
        if (!c->gone[i])
            continue;
        lua_pushvalue(L, fn);
        /* the values: kept, or (a row of the wrong width) its own */
        lua_rawgeti(L, crej, (int)(2 * i + 2));
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_createtable(L, ncols, 0);
            for (int j = 1; j <= ncols; j++) {
                lua_rawgeti(L, keep, (int)i * ncols + j);
                lua_rawseti(L, -2, j);
            }
        }
        if (from_server)
            lib_push_result_error(L, c->rej_err[k++], cp->conn->pg);
        else
            lua_rawgeti(L, crej, (int)(2 * i + 1));
        lua_pushnumber(L, (lua_Number)(cp->rj.base + i + 1));
        cp->rj.rejected++;
        if (lua_pcall(L, 3, 0, 0) != 0) {
            if (failed) {
                lua_pop(L, 1);
            } else {
                lua_replace(L, first_err);
                failed = 1;
            }
        }
    }
    cp->conn->busy = 1;
    lua_settop(L, first_err);
    if (failed)
        return 1;
    lua_pop(L, 1);
    return 0;
}

/* Raise on_reject's error (at the top): a string gains where it came
 * from; an error object keeps its own message.  The stream is over. */
static int raise_on_reject(lua_State *L, sl_copy *cp)
{
    lib_copy_release(L, cp, NULL, CP_FAILED, 1);
    if (lua_type(L, -1) == LUA_TSTRING) {
        lua_pushliteral(L, "copy: on_reject raised (the rows of its chunk "
                           "are loaded or handed over): ");
        lua_insert(L, -2);
        lua_concat(L, 2);
    }
    return lua_error(L);
}

/* The stream stops: rc (SL_EFAIL with res, SL_EBROKEN, SL_EINTR,
 * SL_ENOMEM).  The chunk's open COPY is undone, the refused rows of its
 * settled part handed over, then the error is raised with what was
 * committed.  Takes res. */
static int stop(lua_State *L, sl_copy *cp, int rc, PGresult *res)
{
    copy_chunk *c = &cp->rj.chunk;
    int lost = rc == SL_EBROKEN || !cp->conn->pg ||
               PQstatus(cp->conn->pg) == CONNECTION_BAD;
    if (rc == SL_EFAIL && res) {
        lib_push_result_error(L, res, cp->conn->pg);
    } else if (lost) {
        lib_push_conn_error(L, cp->conn->pg);
    } else if (rc == SL_EINTR) {
        int sig = lib_interrupt_consume(L);
        lua_pushfstring(L, "interrupted (%s)", interrupt_name(sig));
        lib_push_error(L, "57014", lua_tostring(L, -1), NULL, NULL);
        lua_remove(L, -2);
    } else {
        lib_push_error(L, NULL, "out of memory", NULL, NULL);
    }
    PQclear(res);
    int e = lua_gettop(L);
    lib_copy_reject_release(cp, "COPY failed");
    /* the refused rows of the settled part: handed over, on_reject's
     * errors dropped for the one that stops the stream */
    if (c->done > 0 && hand_over(L, cp, c->done))
        lua_pop(L, 1);
    uint64_t doubt = c->doubt;
    int own_tx = c->own_tx;
    cp->rj.base += c->done;
    lib_copy_release(L, cp, "COPY failed", CP_FAILED, 1);
    push_done(L, cp, e, doubt, own_tx);
    lua_getfield(L, e, "message");
    lua_concat(L, 2);
    lua_setfield(L, e, "message");
    lua_settop(L, e);
    return lua_error(L);
}

/* -------------------------------------------------------------- chunks */

/* Open the chunk's COPY if it is not, and send the rows encoded since. */
static void send_rows(lua_State *L, sl_copy *cp)
{
    PGconn *pg = cp->conn->pg;
    if (!pg)
        stop(L, cp, SL_EBROKEN, NULL);
    if (!cp->rj.open) {
        PGresult *err;
        int rc = copy_chunk_open(pg, &cp->rj.chunk, &err);
        if (rc != SL_OK)
            stop(L, cp, rc, err);
        cp->rj.open = 1;
    }
    size_t n = cp->w.committed - cp->rj.sent;
    if (n == 0)
        return;
    int rc = copy_put(pg, cp->w.buf.data + cp->rj.sent, n, 1);
    if (rc != SL_OK)
        stop(L, cp, rc, NULL);
    cp->bytes_sent += n;
    cp->rj.sent = cp->w.committed;
    cp->w.chunk = cp->rj.sent + cp->rj.piece; /* the next send */
    lib_copy_tick(L, cp);
}

/* The chunk is complete: end its COPY, settle it when the server refused
 * it, hand the refused rows over and start the next chunk. */
static void end_chunk(lua_State *L, sl_copy *cp)
{
    copy_chunk *c = &cp->rj.chunk;
    size_t live = 0;
    for (size_t i = 0; i < c->n; i++)
        live += !c->gone[i];
    if (live > 0) {
        send_rows(L, cp);
        PGconn *pg = cp->conn->pg;
        PGresult *err = NULL, *fatal = NULL;
        int committing = 0;
        cp->rj.open = 0;
        int rc = copy_chunk_close(pg, c, &cp->rj.loaded, &committing, &err);
        if (rc == SL_EBROKEN && committing)
            c->doubt = live;
        if (rc == SL_EFAIL &&
            copy_row_fault(PQresultErrorField(err, PG_DIAG_SQLSTATE), c->relayed)) {
            rc = copy_chunk_settle(pg, c, cp->w.buf.data, err,
                                   &cp->rj.loaded, &committing, &fatal);
            err = fatal;
        }
        if (rc != SL_OK)
            stop(L, cp, rc, err);
    }
    cp->rj.open = 0;
    c->done = c->n;
    if (hand_over(L, cp, c->n))
        raise_on_reject(L, cp);
    cp->rj.base += c->n;
    copy_chunk_reset(c);
    cp->w.buf.len = cp->w.committed = cp->rj.sent = 0;
    /* the next chunk's first piece goes early: the server is idle until
     * it comes */
    cp->w.chunk = cp->rj.piece / 4;
    lua_getfenv(L, CP_SELF);
    lua_newtable(L);
    lua_rawseti(L, -2, FENV_CREJ);
    lua_pop(L, 1);
}

/* ---------------------------------------------------------------- rows */

/* lua_pcall'd (fenv[FENV_ENCODE], upvalue 1 the stream's address): the
 * stream at 1 (CP_SELF, as the encoders expect), the row's values after
 * it, rj.nvals of them (< 0: a table with holes). */
static int encode_protected(lua_State *L)
{
    sl_copy *cp = lua_touserdata(L, lua_upvalueindex(1));
    if (cp->rj.nvals != cp->w.ncols)
        lib_copy_count_error(L, cp, cp->rj.nvals, 0);
    lib_copy_encode_row(L, cp, 2);
    return 0;
}

void lib_copy_reject_row(lua_State *L, sl_copy *cp, int first, int n)
{
    copy_chunk *c = &cp->rj.chunk;
    int ncols = cp->w.ncols, nv = n < 0 ? 0 : n;
    int i = (int)c->n;
    luaL_checkstack(L, nv + 8, "too many values in a row");
    if (n == ncols) {
        push_slot(L, FENV_KEEP);
        for (int j = 0; j < ncols; j++) {
            lua_pushvalue(L, first + j);
            lua_rawseti(L, -2, i * ncols + j + 1);
        }
        lua_pop(L, 1);
    }
    push_slot(L, FENV_ENCODE);
    lua_pushvalue(L, CP_SELF);
    cp->rj.nvals = n;
    for (int j = 0; j < nv; j++)
        lua_pushvalue(L, first + j);
    cp->rj.protect = 1;
    cp->rj.refused = 0;
    cp->rj.code = NULL;
    cp->rj.col = NULL;
    int r = lua_pcall(L, 1 + nv, 0, 0);
    cp->rj.protect = 0;
    if (r != 0) {
        if (!cp->rj.refused) {
            /* not the row's fault: the stream is over (lib_copy_raise
             * ended it already, or this does) */
            if (cp->state == CP_OPEN)
                lib_copy_release(L, cp, "COPY failed", CP_FAILED, 1);
            lua_error(L);
        }
        /* the row is set aside: its error, and its values when they
         * were not kept */
        push_slot(L, FENV_CREJ);
        lua_insert(L, -2);
        lua_rawseti(L, -2, 2 * i + 1);
        if (n != ncols) {
            lua_createtable(L, nv, 0);
            for (int j = 0; j < nv; j++) {
                lua_pushvalue(L, first + j);
                lua_rawseti(L, -2, j + 1);
            }
            lua_rawseti(L, -2, 2 * i + 2);
        }
        lua_pop(L, 1);
        cp->w.buf.len = cp->w.committed;
        cp->w.rows++;
        copy_chunk_add(c, cp->w.committed, 1);
    } /* else copy_writer_row_end() added it */
    lib_copy_reject_after_row(L, cp);
}

void lib_copy_reject_after_row(lua_State *L, sl_copy *cp)
{
    if (cp->rj.chunk.n == cp->rj.chunk.cap ||
        cp->w.committed >= REJECT_CHUNK_BYTES)
        end_chunk(L, cp);
    else if (cp->w.committed >= cp->w.chunk)
        send_rows(L, cp);
}

int lib_copy_reject_finish(lua_State *L, sl_copy *cp)
{
    if (cp->rj.chunk.n > 0)
        end_chunk(L, cp);
    lib_copy_release(L, cp, NULL, CP_FINISHED, 0);
    lib_progress_call(L, &cp->prog, (double)cp->rj.loaded,
                      (double)cp->bytes_sent, -1, LIB_PROGRESS_DONE);
    lua_pushnumber(L, (lua_Number)cp->rj.loaded);
    return 1;
}

void lib_copy_reject_release(sl_copy *cp, const char *fail_msg)
{
    PGconn *pg = cp->conn->pg;
    if (!cp->rj.open || !pg)
        return;
    cp->rj.open = 0;
    const char *msg = fail_msg ? fail_msg : ABORTED_MSG;
    copy_end(pg, msg);
    copy_drain(pg, msg);
    copy_chunk_undo(pg, &cp->rj.chunk);
}
