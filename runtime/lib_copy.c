/*
 * lib_copy.c - Lua binding of COPY ... FROM STDIN: "sluice.copy" streams,
 * opened by db:copy() in lua/sluice/copy.lua.  (The readers of COPY ...
 * TO STDOUT are lib_copyout.c.)
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
#include "lib.h"
#include "copy.h"
#include "copyenc.h"
#include "interrupt.h"
#include "numfmt.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CP_SELF 1 /* every method finds its userdata at stack index 1 */
#define LUA_TCDATA 10 /* LuaJIT's type tag for FFI cdata */
#define DEFAULT_CHUNK (64 * 1024) /* measured: larger chunks overlap
                                    * encoding and server parsing worse */
#define MIN_CHUNK 1024
#define MAX_DIMS 6 /* PostgreSQL's MAXDIM */
#define MAX_COLS 1600 /* PostgreSQL's MaxHeapAttributeNumber */

#define GC_MESSAGE "COPY abandoned: the copy object was garbage-collected " \
                   "before finish()"

/* slots of a stream's environment table */
enum { FENV_CONN = 1, FENV_COLS, FENV_JSON, FENV_CDATA, FENV_SPECS,
       FENV_NAME, FENV_NULL }; /* the last two: file sinks only */

enum { CP_NEW, CP_OPEN, CP_FINISHED, CP_ABORTED, CP_FAILED };
static const char *const cp_state_names[] = {
    "new", "open", "finished", "aborted", "failed",
};

struct sl_copy;
struct copy_col;
/* Encode the non-NULL value at idx for one column (binary: length word
 * and bytes; text/CSV: the escaped field).  Raises on a bad value. */
typedef void (*enc_fn)(lua_State *L, struct sl_copy *cp,
                       const struct copy_col *col, int idx);

typedef struct copy_col {
    const char *name;      /* strings anchored by fenv[FENV_SPECS] */
    const char *type_name; /* as format_type() spells it, for messages */
    int kind;              /* enum copy_kind */
    int elem_kind;         /* arrays: kind of the elements */
    Oid elem_oid;          /* arrays: element type sent in binary */
    enc_fn enc;
    enc_fn elem_enc;       /* binary arrays: one element */
} copy_col;

typedef struct sl_copy {
    copy_writer w;      /* owned buffer (the encoded rows not yet sent),
                         * complete rows, row count, format, delimiter;
                         * the compiled row writer is handed &w */
    sl_conn *conn;      /* borrowed: fenv[FENV_CONN] keeps it alive */
    int state;
    copy_col *cols;     /* a userdata in fenv[FENV_COLS] */
    copy_buf scratch;   /* owned: array literals and bytea hex in text */
    uint64_t bytes_sent;
    int depth;          /* array nesting of the value being encoded */
    int path[MAX_DIMS]; /* element indices at each depth, for messages */
    /* file sinks (lib_sink.c): rows go to `sink` and conn is NULL */
    const lib_copy_sink *sink;
    void *sink_ctx;     /* the sink's state, inside this userdata */
    const char *null;   /* the NULL text (fenv[FENV_NULL]) or NULL: \N /
                         * an empty field, the formats' defaults */
    size_t null_len;
} sl_copy;

/* ------------------------------------------------------------ release */

/* The one release routine behind finish(), abort(), failures and __gc.
 * If the COPY is open it ends it: CopyDone when fail_msg is NULL, else
 * CopyFail(fail_msg) (the server rolls the COPY back).  With drain it also
 * discards the server's answer; without, the caller collects it.  Clears
 * conn->busy and frees the buffers.  Never raises. */
static int cp_release(sl_copy *cp, const char *fail_msg, int new_state,
                      int drain)
{
    int rc = COPY_OK;
    cp->w.pg = NULL; /* the compiled writer takes no more rows */
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
    copy_buf_free(&cp->w.buf);
    copy_buf_free(&cp->scratch);
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

/* The message at the top of the stack (no position) ends the COPY, then
 * is raised at the caller's line. */
static int cp_raise(lua_State *L, sl_copy *cp)
{
    cp_release(cp, lua_tostring(L, -1), CP_FAILED, 1);
    luaL_where(L, 1);
    lua_insert(L, -2);
    lua_concat(L, 2);
    return lua_error(L);
}

/* ------------------------------------------------------------- errors */

static void push_u64(lua_State *L, uint64_t v)
{
    char buf[24];
    lua_pushlstring(L, buf, numfmt_uint64(buf, v));
}

/* Push "row N, column "x" (type)[, element [i][j]]". */
static void push_where(lua_State *L, sl_copy *cp, const copy_col *col)
{
    lua_pushliteral(L, "row ");
    push_u64(L, cp->w.rows + 1);
    lua_pushfstring(L, ", column \"%s\" (%s)", col->name, col->type_name);
    int n = 3;
    if (cp->depth > 0) {
        lua_pushliteral(L, ", element ");
        n++;
        for (int i = 0; i < cp->depth; i++, n++)
            lua_pushfstring(L, "[%d]", cp->path[i]);
    }
    lua_concat(L, n);
}

/* Push a short, printable description of the value at idx: its type and,
 * for strings and numbers, the value (long strings cut). */
static void push_value_desc(lua_State *L, int idx)
{
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t n, o = 0, i;
        const char *s = lua_tolstring(L, idx, &n);
        char out[160];
        out[o++] = '"';
        for (i = 0; i < n && o < 120; i++) {
            unsigned char c = (unsigned char)s[i];
            if (c == '"' || c == '\\') {
                out[o++] = '\\';
                out[o++] = (char)c;
            } else if (c < 0x20 || c == 0x7f) {
                static const char hex[] = "0123456789abcdef";
                out[o++] = '\\';
                out[o++] = 'x';
                out[o++] = hex[c >> 4];
                out[o++] = hex[c & 15];
            } else {
                out[o++] = (char)c;
            }
        }
        if (i < n) {
            /* do not cut a UTF-8 sequence in half */
            while (o > 1 && ((unsigned char)out[o - 1] & 0xC0) == 0x80)
                o--;
            if (o > 1 && ((unsigned char)out[o - 1] & 0xC0) == 0xC0)
                o--;
            memcpy(out + o, "\"...", 4);
            o += 4;
        } else {
            out[o++] = '"';
        }
        lua_pushliteral(L, "string ");
        lua_pushlstring(L, out, o);
        lua_concat(L, 2);
        return;
    }
    case LUA_TNUMBER: {
        char buf[NUMFMT_BUFSIZE];
        numfmt_double(buf, lua_tonumber(L, idx));
        lua_pushfstring(L, "number %s", buf);
        return;
    }
    case LUA_TBOOLEAN:
        lua_pushstring(L, lua_toboolean(L, idx) ? "boolean true"
                                                : "boolean false");
        return;
    default:
        lua_pushstring(L, luaL_typename(L, idx));
        return;
    }
}

/* Raise "<where>: expected <what>, got <value>" and end the COPY. */
static int value_error(lua_State *L, sl_copy *cp, const copy_col *col,
                       int idx, const char *what)
{
    push_where(L, cp, col);
    lua_pushfstring(L, ": expected %s, got ", what);
    push_value_desc(L, idx);
    lua_concat(L, 3);
    return cp_raise(L, cp);
}

/* Raise "<where>: <msg>" and end the COPY. */
static int col_error(lua_State *L, sl_copy *cp, const copy_col *col,
                     const char *msg)
{
    push_where(L, cp, col);
    lua_pushstring(L, msg);
    lua_concat(L, 2);
    return cp_raise(L, cp);
}

static int oom_error(lua_State *L, sl_copy *cp)
{
    lua_pushliteral(L, "row ");
    push_u64(L, cp->w.rows + 1);
    lua_pushliteral(L, ": out of memory growing the COPY buffer");
    lua_concat(L, 3);
    return cp_raise(L, cp);
}

static int nul_error(lua_State *L, sl_copy *cp, const copy_col *col)
{
    return col_error(L, cp, col,
                     ": the string contains a NUL byte (\\0), which "
                     "PostgreSQL text cannot hold (use a bytea column for "
                     "binary data)");
}

/* Raise for a failed encoder return code. */
static int encode_failed(lua_State *L, sl_copy *cp, const copy_col *col,
                         int rc)
{
    if (rc == COPY_ENUL)
        return nul_error(L, cp, col);
    return oom_error(L, cp);
}

static inline void need(lua_State *L, sl_copy *cp, size_t n)
{
    if (copy_buf_reserve(&cp->w.buf, n) != COPY_OK)
        oom_error(L, cp);
}

static inline void need_scratch(lua_State *L, sl_copy *cp, size_t n)
{
    if (copy_buf_reserve(&cp->scratch, n) != COPY_OK)
        oom_error(L, cp);
}

/* --------------------------------------------------- values from Lua */

/* If the value at idx is an int64_t (returns 1) or uint64_t (returns 2)
 * cdata, store its bits.  0 for anything else.  The ctype test is a Lua
 * helper (C cannot see ctypes); only cdata values pay for it. */
static int cdata_int(lua_State *L, int idx, uint64_t *bits)
{
    if (lua_type(L, idx) != LUA_TCDATA)
        return 0;
    lua_getfenv(L, CP_SELF);
    lua_rawgeti(L, -1, FENV_CDATA);
    lua_remove(L, -2);
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    lua_pushvalue(L, idx);
    lua_call(L, 1, 1);
    int kind = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (kind != 1 && kind != 2)
        return 0;
    /* lua_topointer gives a cdata's payload: the 8 integer bytes */
    memcpy(bits, lua_topointer(L, idx), sizeof *bits);
    return kind;
}

/* Decimal text of an int64/uint64 cdata (cdata_int's kind) into buf (24
 * bytes). */
static size_t cdata_text(char *buf, uint64_t bits, int kind)
{
    return kind == 1 ? numfmt_int64(buf, (int64_t)bits)
                     : numfmt_uint64(buf, bits);
}

/* An int64/uint64 cdata at idx as a double: 1, or 0 for anything else. */
static int cdata_double(lua_State *L, int idx, double *x)
{
    uint64_t bits;
    int k = cdata_int(L, idx, &bits);
    if (k == 1)
        *x = (double)(int64_t)bits;
    else if (k == 2)
        *x = (double)bits;
    return k != 0;
}

/* JSON text of the table at idx through the stream's encoder; the string
 * is left on the stack (the caller pops it). */
static const char *json_encode(lua_State *L, sl_copy *cp,
                               const copy_col *col, int idx, size_t *n)
{
    lua_getfenv(L, CP_SELF);
    lua_rawgeti(L, -1, FENV_JSON);
    lua_remove(L, -2);
    if (!lua_isfunction(L, -1))
        col_error(L, cp, col,
                  ": cannot encode a table as JSON: lua-cjson is not "
                  "installed (or pass opts.json_encode)");
    lua_pushvalue(L, idx);
    if (lua_pcall(L, 1, 1, 0) != 0) {
        const char *m = lua_tostring(L, -1);
        push_where(L, cp, col);
        lua_pushfstring(L, ": cannot encode the table as JSON: %s",
                        m ? m : "(error object)");
        lua_concat(L, 2);
        cp_raise(L, cp);
    }
    if (lua_type(L, -1) != LUA_TSTRING)
        col_error(L, cp, col, ": the JSON encoder did not return a string");
    return lua_tolstring(L, -1, n);
}

#define TS_FORM_WHAT                                                   \
    "epoch seconds or an ISO-8601 string "                             \
    "(YYYY-MM-DD[ hh:mm[:ss[.ffffff]]][Z|+hh:mm])"
#define TS_RANGE_WHAT                                                  \
    "a timestamp within PostgreSQL's range "                           \
    "(4714-11-24 BC .. 294276-12-31 AD)"
#define EPOCH_WHAT "epoch seconds within the timestamp range"
#define TOO_LARGE ": the value is larger than 2 GB"

/* Raise for an encoder's failure rc, if any: out of memory, a NUL byte,
 * else that the value at idx is not `what`. */
static void check_value(lua_State *L, sl_copy *cp, const copy_col *col,
                        int idx, int rc, const char *what)
{
    if (rc == COPY_OK)
        return;
    if (rc == COPY_ENOMEM || rc == COPY_ENUL)
        encode_failed(L, cp, col, rc);
    value_error(L, cp, col, idx, what);
}

/* Raise for a failed encoder of bytes: beyond 2 GB, a NUL byte, out of
 * memory. */
static void check_field(lua_State *L, sl_copy *cp, const copy_col *col,
                        int rc)
{
    if (rc == COPY_ERANGE)
        col_error(L, cp, col, TOO_LARGE);
    if (rc != COPY_OK)
        encode_failed(L, cp, col, rc);
}

/* ------------------------------------------------- text and CSV format */

/* Raise for copy_number_text()'s error (or a field writer's). */
static void number_failed(lua_State *L, sl_copy *cp, const copy_col *col,
                          int idx, int rc)
{
    if (rc == COPY_ERANGE)
        value_error(L, cp, col, idx, COPY_INT8_EXACT_WHAT);
    if (rc == COPY_EINVAL)
        value_error(L, cp, col, idx, EPOCH_WHAT);
    encode_failed(L, cp, col, rc);
}

static void lit_array(lua_State *L, sl_copy *cp, const copy_col *col,
                      int t, int depth);

/* Append raw text to the array literal in scratch. */
static void lit_raw(lua_State *L, sl_copy *cp, const char *s, size_t n)
{
    need_scratch(L, cp, n);
    copy_put_raw(&cp->scratch, s, n);
}

/* Append s to the array literal in scratch as a quoted element. */
static void lit_quoted(lua_State *L, sl_copy *cp, const copy_col *col,
                       const char *s, size_t n)
{
    int rc = copy_put_array_quoted(&cp->scratch, s, n);
    if (rc != COPY_OK)
        encode_failed(L, cp, col, rc);
}

/* A string element: quoted; bytea as "\\x..." (the element text \x...
 * with its backslash escaped for the array literal). */
static void lit_string(lua_State *L, sl_copy *cp, const copy_col *col,
                       int e)
{
    size_t n;
    const char *s = lua_tolstring(L, e, &n);
    if (col->elem_kind != COPY_K_BYTEA) {
        lit_quoted(L, cp, col, s, n);
        return;
    }
    lit_raw(L, cp, "\"\\", 2);
    if (copy_put_bytea_hex(&cp->scratch, s, n) != COPY_OK)
        oom_error(L, cp);
    lit_raw(L, cp, "\"", 1);
}

/* A number element: its text, quoted for dates and timestamps. */
static void lit_number(lua_State *L, sl_copy *cp, const copy_col *col,
                       int e)
{
    char tmp[64];
    size_t n = 0;
    int kind = col->elem_kind;
    int rc = copy_number_text(tmp, lua_tonumber(L, e), kind, &n);
    if (rc != COPY_OK)
        number_failed(L, cp, col, e, rc);
    int quote = kind == COPY_K_DATE || kind == COPY_K_TIMESTAMP ||
                kind == COPY_K_TIMESTAMPTZ;
    if (quote)
        lit_raw(L, cp, "\"", 1);
    lit_raw(L, cp, tmp, n);
    if (quote)
        lit_raw(L, cp, "\"", 1);
}

/* One element of a text array literal. */
static void lit_elem(lua_State *L, sl_copy *cp, const copy_col *col, int e,
                     int depth)
{
    size_t n;
    int kind = col->elem_kind;
    switch (lua_type(L, e)) {
    case LUA_TNIL:
        lit_raw(L, cp, "NULL", 4);
        return;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, e) == NULL) {
            lit_raw(L, cp, "NULL", 4);
            return;
        }
        break;
    case LUA_TTABLE:
        if (kind == COPY_K_JSON || kind == COPY_K_JSONB) {
            const char *s = json_encode(L, cp, col, e, &n);
            lit_quoted(L, cp, col, s, n);
            lua_pop(L, 1);
        } else {
            lit_array(L, cp, col, e, depth + 1);
        }
        return;
    case LUA_TSTRING:
        lit_string(L, cp, col, e);
        return;
    case LUA_TNUMBER:
        lit_number(L, cp, col, e);
        return;
    case LUA_TBOOLEAN: {
        const char *s = copy_bool_text(lua_toboolean(L, e), kind);
        lit_raw(L, cp, s, strlen(s));
        return;
    }
    default: {
        char tmp[24];
        uint64_t bits;
        int k = cdata_int(L, e, &bits);
        if (k) {
            lit_raw(L, cp, tmp, cdata_text(tmp, bits, k));
            return;
        }
    }
    }
    value_error(L, cp, col, e,
                "a string, number, boolean, table or sluice.null");
}

/* Append the Lua array at stack index t as an array literal {a,b,...}
 * (nested tables are sub-arrays) to scratch. */
static void lit_array(lua_State *L, sl_copy *cp, const copy_col *col,
                      int t, int depth)
{
    if (depth >= MAX_DIMS)
        col_error(L, cp, col, ": arrays have at most 6 dimensions");
    size_t n;
    if (!lib_array_len(L, t, &n))
        value_error(L, cp, col, t, LIB_ARRAY_EXPECTED);
    lit_raw(L, cp, "{", 1);
    for (size_t i = 1; i <= n; i++) {
        if (i > 1)
            lit_raw(L, cp, ",", 1);
        lua_rawgeti(L, t, (int)i);
        cp->path[depth] = (int)i;
        cp->depth = depth + 1;
        lit_elem(L, cp, col, lua_gettop(L), depth);
        lua_pop(L, 1);
    }
    lit_raw(L, cp, "}", 1);
    cp->depth = depth;
}

/* A table for a text/CSV column: an array literal, or JSON.  0 when the
 * column takes neither. */
static int text_table(lua_State *L, sl_copy *cp, const copy_col *col,
                      int idx)
{
    int rc;
    if (col->kind == COPY_K_ARRAY) {
        cp->scratch.len = 0;
        lit_array(L, cp, col, idx, 0);
        rc = copy_writer_field(&cp->w, cp->scratch.data, cp->scratch.len);
    } else if (col->kind == COPY_K_JSON || col->kind == COPY_K_JSONB) {
        size_t n;
        const char *s = json_encode(L, cp, col, idx, &n);
        rc = copy_writer_field(&cp->w, s, n);
        lua_pop(L, 1);
    } else {
        return 0;
    }
    if (rc != COPY_OK)
        encode_failed(L, cp, col, rc);
    return 1;
}

/* The text/CSV encoder of every column: strings go as they are (the
 * server parses them), other Lua values are turned into text here. */
static void enc_text(lua_State *L, sl_copy *cp, const copy_col *col, int idx)
{
    copy_writer *w = &cp->w;
    char tmp[24];
    size_t n;
    uint64_t bits;
    int k, rc;
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        const char *s = lua_tolstring(L, idx, &n);
        if (col->kind == COPY_K_BYTEA) {
            cp->scratch.len = 0;
            if (copy_put_bytea_hex(&cp->scratch, s, n) != COPY_OK)
                oom_error(L, cp);
            s = cp->scratch.data;
            n = cp->scratch.len;
        }
        rc = copy_writer_field(w, s, n);
        break;
    }
    case LUA_TNUMBER:
        /* digits, '.', '-', ':', ' ', letters: no escaping needed, but
         * for a custom delimiter (copy_writer_plain) */
        rc = copy_writer_number(w, lua_tonumber(L, idx), col->kind);
        if (rc != COPY_OK)
            number_failed(L, cp, col, idx, rc);
        return;
    case LUA_TBOOLEAN:
        rc = copy_writer_bool(w, lua_toboolean(L, idx), col->kind);
        break;
    case LUA_TTABLE:
        if (text_table(L, cp, col, idx))
            return;
        goto bad;
    default:
        k = cdata_int(L, idx, &bits);
        if (!k)
            goto bad;
        n = cdata_text(tmp, bits, k);
        rc = copy_writer_plain(w, tmp, n);
    }
    if (rc != COPY_OK)
        encode_failed(L, cp, col, rc);
    return;
bad:
    value_error(L, cp, col, idx,
                col->kind == COPY_K_ARRAY
                    ? "a table (Lua array) or an array literal string"
                    : "a string, number or boolean");
}

/* ------------------------------------------------------ binary format
 *
 * Each encoder reads the Lua value, hands it to the core's encoder of its
 * type (copyenc.h, the one the compiled row writer calls too) and turns
 * a refusal into the error naming the row and column. */

/* Text-like value (text, varchar, json, ...): its bytes.  Numbers,
 * booleans and int64 cdata become their text. */
static const char *textlike(lua_State *L, sl_copy *cp, const copy_col *col,
                            int idx, size_t *n, char *tmp, const char *what)
{
    const char *s;
    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
        return lua_tolstring(L, idx, n);
    case LUA_TNUMBER:
        *n = numfmt_double(tmp, lua_tonumber(L, idx));
        return tmp;
    case LUA_TBOOLEAN:
        s = lua_toboolean(L, idx) ? "true" : "false";
        *n = strlen(s);
        return s;
    default: {
        uint64_t bits;
        int k = cdata_int(L, idx, &bits);
        if (k) {
            *n = cdata_text(tmp, bits, k);
            return tmp;
        }
    }
    }
    value_error(L, cp, col, idx, what);
    return NULL;
}

static void bin_text(lua_State *L, sl_copy *cp, const copy_col *col, int idx)
{
    char tmp[NUMFMT_BUFSIZE];
    size_t n;
    const char *s = textlike(L, cp, col, idx, &n, tmp,
                             "a string, number or boolean");
    check_field(L, cp, col, copy_put_text(&cp->w.buf, s, n));
}

static void bin_json(lua_State *L, sl_copy *cp, const copy_col *col, int idx)
{
    char tmp[NUMFMT_BUFSIZE];
    size_t n;
    int pushed = lua_type(L, idx) == LUA_TTABLE;
    const char *s = pushed ? json_encode(L, cp, col, idx, &n)
                           : textlike(L, cp, col, idx, &n, tmp,
                                      "a JSON string or a table");
    /* a string from the script must be text; the encoder's is trusted */
    if (!pushed && memchr(s, '\0', n))
        nul_error(L, cp, col);
    int jsonb = col->kind == COPY_K_JSONB ||
                (col->kind == COPY_K_ARRAY && col->elem_kind == COPY_K_JSONB);
    check_field(L, cp, col, copy_put_json(&cp->w.buf, s, n, jsonb));
    if (pushed)
        lua_pop(L, 1);
}

static void bin_bytea(lua_State *L, sl_copy *cp, const copy_col *col, int idx)
{
    if (lua_type(L, idx) != LUA_TSTRING)
        value_error(L, cp, col, idx, "a string (bytes)");
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    check_field(L, cp, col, copy_put_bytes(&cp->w.buf, s, n));
}

static void bin_bool(lua_State *L, sl_copy *cp, const copy_col *col, int idx)
{
    int rc = COPY_EINVAL;
    if (lua_type(L, idx) == LUA_TBOOLEAN) {
        rc = copy_put_bool(&cp->w.buf, lua_toboolean(L, idx));
    } else if (lua_type(L, idx) == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        rc = copy_put_bool_str(&cp->w.buf, s, n);
    }
    check_value(L, cp, col, idx, rc, "a boolean");
}

/* An integer column of `kind`: an integral number (put_number, the
 * kind's encoder of doubles), a decimal string or an int64/uint64 cdata,
 * within the kind's range (`what`). */
static void bin_int(lua_State *L, sl_copy *cp, const copy_col *col, int idx,
                    int kind, int (*put_number)(copy_buf *, double),
                    const char *what)
{
    copy_buf *b = &cp->w.buf;
    int rc;
    switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
        rc = put_number(b, lua_tonumber(L, idx));
        if (rc == COPY_ERANGE && kind == COPY_K_INT8)
            value_error(L, cp, col, idx, COPY_INT8_EXACT_WHAT);
        break;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        rc = copy_put_int_str(b, kind, s, n);
        break;
    }
    default: {
        uint64_t bits;
        int k = cdata_int(L, idx, &bits);
        rc = k == 1 || (k == 2 && bits <= INT64_MAX)
                 ? copy_put_int(b, kind, (int64_t)bits)
                 : COPY_EINVAL;
    }
    }
    check_value(L, cp, col, idx, rc, what);
}

static void bin_int2(lua_State *L, sl_copy *cp, const copy_col *col, int idx)
{
    bin_int(L, cp, col, idx, COPY_K_INT2, copy_put_int2,
            "an integer from -32768 to 32767");
}

static void bin_int4(lua_State *L, sl_copy *cp, const copy_col *col, int idx)
{
    bin_int(L, cp, col, idx, COPY_K_INT4, copy_put_int4,
            "an integer from -2147483648 to 2147483647");
}

static void bin_int8(lua_State *L, sl_copy *cp, const copy_col *col, int idx)
{
    bin_int(L, cp, col, idx, COPY_K_INT8, copy_put_int8,
            "an integer from -9223372036854775808 to 9223372036854775807");
}

static void bin_oid(lua_State *L, sl_copy *cp, const copy_col *col, int idx)
{
    bin_int(L, cp, col, idx, COPY_K_OID, copy_put_oid,
            "an integer from 0 to 4294967295");
}

/* A float column: a number, a float8in/float4in-style string or an int64
 * cdata. */
static void bin_float8(lua_State *L, sl_copy *cp, const copy_col *col,
                       int idx)
{
    copy_buf *b = &cp->w.buf;
    double x = 0;
    int rc = COPY_EINVAL;
    if (lua_type(L, idx) == LUA_TNUMBER) {
        rc = copy_put_float8(b, lua_tonumber(L, idx));
    } else if (lua_type(L, idx) == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        rc = copy_put_float8_str(b, s, n);
    } else if (cdata_double(L, idx, &x)) {
        rc = copy_put_float8(b, x);
    }
    check_value(L, cp, col, idx, rc, "a number");
}

static void bin_float4(lua_State *L, sl_copy *cp, const copy_col *col,
                       int idx)
{
    copy_buf *b = &cp->w.buf;
    double x = 0;
    int rc = COPY_EINVAL;
    if (lua_type(L, idx) == LUA_TNUMBER) {
        rc = copy_put_float4(b, lua_tonumber(L, idx));
    } else if (lua_type(L, idx) == LUA_TSTRING) {
        /* a string is read as float4in reads it (copy_parse_float) */
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        rc = copy_put_float4_str(b, s, n);
    } else if (cdata_double(L, idx, &x)) {
        rc = copy_put_float4(b, x);
    }
    if (rc == COPY_EINVAL)
        value_error(L, cp, col, idx, "a number");
    check_value(L, cp, col, idx, rc,
                "a number within the range of real (1e-45 to 3.4e38)");
}

static void bin_numeric(lua_State *L, sl_copy *cp, const copy_col *col,
                        int idx)
{
    copy_buf *b = &cp->w.buf;
    int rc = COPY_EINVAL;
    size_t n;
    switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
        rc = copy_put_numeric(b, lua_tonumber(L, idx));
        break;
    case LUA_TSTRING: {
        const char *s = lua_tolstring(L, idx, &n);
        rc = copy_put_numeric_str(b, s, n);
        break;
    }
    default: {
        char tmp[24];
        uint64_t bits;
        int k = cdata_int(L, idx, &bits);
        if (k) {
            n = cdata_text(tmp, bits, k);
            rc = copy_put_numeric_str(b, tmp, n);
        }
    }
    }
    if (rc == COPY_ERANGE)
        value_error(L, cp, col, idx,
                    "a numeric within binary COPY's range (at most 12000 "
                    "significant digits; use format \"text\" for more)");
    check_value(L, cp, col, idx, rc, "a number or a decimal string");
}

/* A date: epoch seconds (the UTC day) or an ISO-8601 string, counted
 * without going through microseconds so that dates beyond the timestamp
 * range still load. */
static void bin_date(lua_State *L, sl_copy *cp, const copy_col *col, int idx)
{
    copy_buf *b = &cp->w.buf;
    int rc;
    if (lua_type(L, idx) == LUA_TNUMBER) {
        rc = copy_put_date(b, lua_tonumber(L, idx));
        check_value(L, cp, col, idx, rc, EPOCH_WHAT);
        return;
    }
    if (lua_type(L, idx) != LUA_TSTRING)
        value_error(L, cp, col, idx, "epoch seconds or an ISO-8601 string");
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    rc = copy_put_date_str(b, s, n);
    if (rc == COPY_ERANGE)
        value_error(L, cp, col, idx,
                    "a date within PostgreSQL's range "
                    "(4714-11-24 BC .. 5874897-12-31 AD)");
    check_value(L, cp, col, idx, rc, TS_FORM_WHAT);
}

/* A timestamp (tz: with time zone): epoch seconds or an ISO-8601
 * string. */
static void bin_ts(lua_State *L, sl_copy *cp, const copy_col *col, int idx,
                   int tz)
{
    copy_buf *b = &cp->w.buf;
    int rc;
    if (lua_type(L, idx) == LUA_TNUMBER) {
        rc = copy_put_ts(b, lua_tonumber(L, idx));
        check_value(L, cp, col, idx, rc, EPOCH_WHAT);
        return;
    }
    if (lua_type(L, idx) != LUA_TSTRING)
        value_error(L, cp, col, idx, "epoch seconds or an ISO-8601 string");
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    rc = copy_put_ts_str(b, s, n, tz, cp->w.utc);
    if (rc == COPY_ERANGE)
        value_error(L, cp, col, idx, TS_RANGE_WHAT);
    if (rc == COPY_ENOZONE)
        value_error(L, cp, col, idx,
                    "a timestamp with a UTC offset (Z or +hh:mm) "
                    "because the session TimeZone is not UTC");
    check_value(L, cp, col, idx, rc, TS_FORM_WHAT);
}

static void bin_timestamp(lua_State *L, sl_copy *cp, const copy_col *col,
                          int idx)
{
    bin_ts(L, cp, col, idx, 0);
}

static void bin_timestamptz(lua_State *L, sl_copy *cp, const copy_col *col,
                            int idx)
{
    bin_ts(L, cp, col, idx, 1);
}

static void bin_uuid(lua_State *L, sl_copy *cp, const copy_col *col, int idx)
{
    int rc = COPY_EINVAL;
    if (lua_type(L, idx) == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        rc = copy_put_uuid_str(&cp->w.buf, s, n);
    }
    check_value(L, cp, col, idx, rc,
                "a uuid string (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)");
}

static int is_null(lua_State *L, int idx)
{
    int t = lua_type(L, idx);
    return t <= LUA_TNIL ||
           (t == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL);
}

/* Elements of the (sub-)array at stack index t, at nesting `level`. */
static void bin_elems(lua_State *L, sl_copy *cp, const copy_col *col, int t,
                      int level, int ndim, const int *dims, int *has_null)
{
    for (int i = 1; i <= dims[level]; i++) {
        lua_rawgeti(L, t, i);
        int e = lua_gettop(L);
        cp->path[level] = i;
        cp->depth = level + 1;
        if (level + 1 < ndim) {
            size_t n;
            if (lua_istable(L, e) && !lib_array_len(L, e, &n))
                value_error(L, cp, col, e, LIB_ARRAY_EXPECTED);
            if (!lua_istable(L, e) || (int)lua_objlen(L, e) != dims[level + 1]) {
                lua_pushfstring(L, "a table of %d elements (sub-arrays of "
                                   "a multidimensional array must have "
                                   "matching sizes)", dims[level + 1]);
                value_error(L, cp, col, e, lua_tostring(L, -1));
            }
            bin_elems(L, cp, col, e, level + 1, ndim, dims, has_null);
        } else if (is_null(L, e)) {
            if (copy_put_null(&cp->w.buf) != COPY_OK)
                oom_error(L, cp);
            *has_null = 1;
        } else if (lua_istable(L, e) && col->elem_kind != COPY_K_JSON &&
                   col->elem_kind != COPY_K_JSONB) {
            value_error(L, cp, col, e,
                        "an element, not a table (sub-arrays of a "
                        "multidimensional array must have matching "
                        "sizes)");
        } else {
            col->elem_enc(L, cp, col, e);
        }
        lua_pop(L, 1);
    }
    cp->depth = level;
}

/* The embedding case - a one-dimensional real[] or float8[] of plain
 * numbers - without the generic per-element path: one reservation, no
 * per-element calls.  Returns 0, having written nothing, when an element
 * is anything else (NULL, a string, a float4 overflow), so that the
 * generic path encodes it or reports it precisely.  The values are
 * those of copy_put_float4/8(). */
static int bin_float_vector(lua_State *L, sl_copy *cp, const copy_col *col,
                            int idx, int n)
{
    int f4 = col->elem_kind == COPY_K_FLOAT4;
    if (!f4 && col->elem_kind != COPY_K_FLOAT8)
        return 0;
    size_t w = f4 ? 8 : 12; /* length word + value */
    need(L, cp, (size_t)n * w);
    unsigned char *o = (unsigned char *)cp->w.buf.data + cp->w.buf.len;
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        if (lua_type(L, -1) != LUA_TNUMBER) {
            lua_pop(L, 1);
            return 0;
        }
        double x = copy_float_of_number(lua_tonumber(L, -1));
        lua_pop(L, 1);
        uint64_t bits;
        if (f4) {
            float f;
            if (!copy_float4_of(x, &f))
                return 0;
            bits = copy_float4_bits(f);
            o[0] = 0; o[1] = 0; o[2] = 0; o[3] = 4;
            o[4] = (unsigned char)(bits >> 24);
            o[5] = (unsigned char)(bits >> 16);
            o[6] = (unsigned char)(bits >> 8);
            o[7] = (unsigned char)bits;
            o += 8;
        } else {
            bits = copy_float8_bits(x);
            o[0] = 0; o[1] = 0; o[2] = 0; o[3] = 8;
            for (int k = 0; k < 8; k++)
                o[4 + k] = (unsigned char)(bits >> (56 - 8 * k));
            o += 12;
        }
    }
    cp->w.buf.len += (size_t)n * w;
    return 1;
}

/* The shape of the Lua array at idx into dims (the first element at each
 * level decides; bin_elems checks that every sub-array matches); returns
 * the number of dimensions, 0 for the empty array.  json: a table element
 * is a value, not a sub-array. */
static int array_shape(lua_State *L, sl_copy *cp, const copy_col *col,
                       int idx, int json, int *dims)
{
    int ndim = 0, t = idx, top = lua_gettop(L);
    for (;;) {
        size_t len;
        if (!lib_array_len(L, t, &len))
            value_error(L, cp, col, t, LIB_ARRAY_EXPECTED);
        int n = (int)len;
        if (ndim == MAX_DIMS)
            col_error(L, cp, col, ": arrays have at most 6 dimensions");
        dims[ndim++] = n;
        if (n == 0)
            break;
        lua_rawgeti(L, t, 1);
        if (json || !lua_istable(L, -1))
            break;
        t = lua_gettop(L);
    }
    lua_settop(L, top);
    if (dims[ndim - 1] == 0 && ndim > 1)
        col_error(L, cp, col, ": a multidimensional array cannot have "
                              "empty sub-arrays");
    return dims[0] == 0 ? 0 : ndim;
}

/* A Lua array (nested tables for more dimensions) as a binary array:
 * ndim, has-null flag, element type, (size, lower bound 1) per dimension,
 * then each element as length + bytes. */
static void bin_array(lua_State *L, sl_copy *cp, const copy_col *col,
                      int idx)
{
    if (!lua_istable(L, idx))
        value_error(L, cp, col, idx, "a table (Lua array)");
    int json = col->elem_kind == COPY_K_JSON || col->elem_kind == COPY_K_JSONB;
    int dims[MAX_DIMS];
    int ndim = array_shape(L, cp, col, idx, json, dims);
    copy_buf *b = &cp->w.buf;
    need(L, cp, 16 + 8 * (size_t)ndim);
    size_t start = b->len;
    copy_put_be32(b, 0); /* length, patched below */
    copy_put_be32(b, (uint32_t)ndim);
    copy_put_be32(b, 0); /* has-null flag, patched below */
    copy_put_be32(b, col->elem_oid);
    for (int d = 0; d < ndim; d++) {
        copy_put_be32(b, (uint32_t)dims[d]);
        copy_put_be32(b, 1);
    }
    int has_null = 0;
    if (ndim == 1 && bin_float_vector(L, cp, col, idx, dims[0]))
        ndim = 0; /* done: every element was a plain number */
    if (ndim > 0)
        bin_elems(L, cp, col, idx, 0, ndim, dims, &has_null);
    size_t len = b->len - start - 4;
    if (len > INT32_MAX)
        col_error(L, cp, col, TOO_LARGE);
    copy_patch_be32(b, start, (uint32_t)len);
    copy_patch_be32(b, start + 8, (uint32_t)has_null);
}

/* The binary encoder of a kind; NULL when it has none. */
static enc_fn bin_encoder(int kind)
{
    switch (kind) {
    case COPY_K_TEXT: return bin_text;
    case COPY_K_BOOL: return bin_bool;
    case COPY_K_INT2: return bin_int2;
    case COPY_K_INT4: return bin_int4;
    case COPY_K_INT8: return bin_int8;
    case COPY_K_OID: return bin_oid;
    case COPY_K_FLOAT4: return bin_float4;
    case COPY_K_FLOAT8: return bin_float8;
    case COPY_K_NUMERIC: return bin_numeric;
    case COPY_K_BYTEA: return bin_bytea;
    case COPY_K_DATE: return bin_date;
    case COPY_K_TIMESTAMP: return bin_timestamp;
    case COPY_K_TIMESTAMPTZ: return bin_timestamptz;
    case COPY_K_JSON: case COPY_K_JSONB: return bin_json;
    case COPY_K_UUID: return bin_uuid;
    case COPY_K_ARRAY: return bin_array;
    default: return NULL;
    }
}

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
 * string there is hex-encoded: the C path's). */
int lib_copy_fast_text(lua_State *L)
{
    sl_copy *cp = luaL_checkudata(L, 1, SLUICE_COPY_MT);
    if (cp->w.format == COPY_FMT_BINARY || cp->sink || cp->w.custom ||
        cp->null || cp->state != CP_OPEN)
        return 0;
    lua_pushlightuserdata(L, &cp->w);
    lua_createtable(L, cp->w.ncols, 0);
    for (int i = 0; i < cp->w.ncols; i++) {
        lua_pushinteger(L, cp->cols[i].kind == COPY_K_BYTEA
                               ? -1 : cp->cols[i].kind);
        lua_rawseti(L, -2, i + 1);
    }
    return 2;
}

/* sluice.core.copy_fast(cp) -> writer pointer, {kind name, ...} when the
 * fast table serves every column of the stream (binary format, a COPY to
 * the server), else nil. */
int lib_copy_fast(lua_State *L)
{
    sl_copy *cp = luaL_checkudata(L, 1, SLUICE_COPY_MT);
    if (cp->w.format != COPY_FMT_BINARY || cp->sink || cp->state != CP_OPEN)
        return 0;
    lua_pushlightuserdata(L, &cp->w);
    lua_createtable(L, cp->w.ncols, 0);
    for (int i = 0; i < cp->w.ncols; i++) {
        if (!copy_fast_serves(cp->cols[i].kind))
            return 0;
        lua_pushstring(L, copy_kind_name(cp->cols[i].kind));
        lua_rawseti(L, -2, i + 1);
    }
    return 2;
}

/* sluice.core.copy_fast_functions() -> the fast table as a list of
 * { name =, sig =, fn = the function pointer as a light userdata,
 * takes = "number"|"string"|"boolean" (nil for row functions),
 * kinds = { kind name, ... } }, for ffi.cast in lua/sluice/copy.lua
 * (works alike in the executable and in the module, whose symbols are
 * not global). */
int lib_copy_fast_functions(lua_State *L)
{
    static const char *const takes[] = {
        [COPY_FAST_ROW] = NULL, [COPY_FAST_NUMBER] = "number",
        [COPY_FAST_STRING] = "string", [COPY_FAST_BOOL] = "boolean",
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

/* ---------------------------------------------------------------- rows */

/* A sink with a NULL text of its own: a value whose field text (from
 * `start` in buf) equals it would read back as NULL.  CSV quotes it (a
 * quoted field is never NULL); text format cannot tell them apart, so
 * that is an error rather than a silent NULL. */
static void keep_value(lua_State *L, sl_copy *cp, const copy_col *col,
                       size_t start)
{
    copy_buf *b = &cp->w.buf;
    size_t n = b->len - start;
    if (n != cp->null_len || memcmp(b->data + start, cp->null, n) != 0)
        return;
    if (cp->w.format != COPY_FMT_CSV)
        col_error(L, cp, col, ": the value's text is the sink's NULL text "
                              "(option null); choose a NULL text that no "
                              "value has");
    cp->scratch.len = 0;
    need_scratch(L, cp, n);
    copy_put_raw(&cp->scratch, b->data + start, n);
    b->len = start;
    int rc = copy_put_csv_field_delim(b, cp->scratch.data, n, cp->w.delim,
                                      1);
    if (rc != COPY_OK)
        encode_failed(L, cp, col, rc);
}

/* A NULL field: the sink's NULL text, or the format's. */
static void put_null(lua_State *L, sl_copy *cp)
{
    if (cp->null) {
        need(L, cp, cp->null_len);
        copy_put_raw(&cp->w.buf, cp->null, cp->null_len);
    } else if (copy_writer_null(&cp->w) != COPY_OK) {
        oom_error(L, cp);
    }
}

/* Encode one row whose values are at stack indices first.. into buf.
 * A row that fails half-way is dropped by the next call (committed). */
static void encode_row(lua_State *L, sl_copy *cp, int first)
{
    copy_writer *w = &cp->w;
    const copy_col *col = cp->cols;
    int n = w->ncols, text = w->format != COPY_FMT_BINARY;
    cp->depth = 0;
    if (copy_writer_row_begin(w) != COPY_OK)
        oom_error(L, cp);
    for (int i = 0; i < n; i++, col++) {
        if (text && i > 0 && copy_writer_sep(w) != COPY_OK)
            oom_error(L, cp);
        if (is_null(L, first + i)) {
            put_null(L, cp);
        } else if (cp->null) {
            size_t start = w->buf.len;
            col->enc(L, cp, col, first + i);
            keep_value(L, cp, col, start);
        } else {
            col->enc(L, cp, col, first + i);
        }
    }
    if (copy_writer_row_end(w) < 0)
        oom_error(L, cp);
}

/* Raise the error of a stream that could not send: after Ctrl-C, or
 * with the server's error / the broken connection's message. */
static int stream_failed(lua_State *L, sl_copy *cp, int rc)
{
    if (rc == COPY_EINTR) {
        cp_release(cp, "COPY interrupted (Ctrl-C)", CP_FAILED, 1);
        interrupt_consume(L);
        return luaL_error(L, "interrupted (Ctrl-C)");
    }
    int conn_idx = push_conn(L, CP_SELF);
    cp_release(cp, "COPY failed", CP_FAILED, 0);
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
        cp_raise(L, cp);
    }
    return COPY_OK;
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
    if (rc != COPY_OK)
        stream_failed(L, cp, rc);
    cp->bytes_sent += n;
    cp->w.buf.len = cp->w.committed = 0;
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
        cp_release(cp, NULL, CP_FAILED, 0);
        luaL_error(L, "%s: the connection is closed", fname);
    }
    return cp;
}

/* Raise "row N: expected K values (a, b, c), got M" and end the COPY
 * (got < 0: the row is a table that is not an array). */
static int count_error(lua_State *L, sl_copy *cp, int got, int list_idx)
{
    luaL_Buffer b;
    char num[24];
    lua_checkstack(L, 4);
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
    return cp_raise(L, cp);
}

/* cp:row(v1, v2, ...) appends one row. */
static int cp_row(lua_State *L)
{
    sl_copy *cp = check_open(L, "row");
    int n = lua_gettop(L) - 1;
    if (n != cp->w.ncols)
        count_error(L, cp, n, 0);
    encode_row(L, cp, 2);
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
        return cp_raise(L, cp);
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
        return cp_raise(L, cp);
    }
    int n = (int)len;
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, 2, i);
        // stack: cp, list, row
        if (!lua_istable(L, 3)) {
            lua_pushliteral(L, "row ");
            push_u64(L, cp->w.rows + 1);
            lua_pushfstring(L, " (element %d of the list): expected a table "
                               "of values, got %s", i, luaL_typename(L, 3));
            lua_concat(L, 3);
            return cp_raise(L, cp);
        }
        size_t k;
        if (!lib_array_len(L, 3, &k))
            count_error(L, cp, -1, i);
        if ((int)k != cp->w.ncols)
            count_error(L, cp, (int)k, i);
        for (int j = 1; j <= cp->w.ncols; j++)
            lua_rawgeti(L, 3, j);
        // stack: cp, list, row, v1..vN
        encode_row(L, cp, 4);
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
    cp_flush(L, cp);
    return 0;
}

/* cp:finish() -> number of rows the server loaded.  Raises the server's
 * error object when the COPY fails; either way the COPY is over. */
static int cp_finish(lua_State *L)
{
    sl_copy *cp = check_open(L, "finish");
    lua_settop(L, 1);
    if (cp->w.format == COPY_FMT_BINARY) {
        cp->w.buf.len = cp->w.committed;
        if (copy_put_binary_trailer(&cp->w.buf) != COPY_OK)
            oom_error(L, cp);
        cp->w.committed = cp->w.buf.len;
    }
    cp_flush(L, cp);
    if (cp->sink) {
        /* FAILED until the output is in place; the buffers go either way */
        char msg[512];
        cp->state = CP_FAILED;
        int rc = cp->sink->close(cp->sink_ctx, 1, msg, sizeof msg);
        cp_release(cp, NULL, CP_FAILED, 0);
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
    int conn_idx = push_conn(L, CP_SELF);
    /* FAILED until the server says otherwise: lib_conn_finish raises */
    cp_release(cp, NULL, CP_FAILED, 0);
    PGresult *res = lib_conn_finish(L, cp->conn, conn_idx, 1);
    cp->state = CP_FINISHED;
    const char *t = res ? PQcmdTuples(res) : "";
    lua_pushnumber(L, *t ? strtod(t, NULL) : 0);
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
    cp_release(cp, msg, CP_ABORTED, 1);
    lua_pushboolean(L, 1);
    return 1;
}

static int cp_gc(lua_State *L)
{
    sl_copy *cp = luaL_checkudata(L, CP_SELF, SLUICE_COPY_MT);
    cp_release(cp, GC_MESSAGE, CP_ABORTED, 1);
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

/* __index: methods first (upvalue 1), then the read-only fields. */
int lib_copy_index(lua_State *L)
{
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
    if (!lua_isnil(L, -1))
        return 1;
    sl_copy *cp = luaL_checkudata(L, 1, SLUICE_COPY_MT);
    const char *k = lua_tostring(L, 2);
    if (!k)
        return 1;
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

/* ---------------------------------------------------------------- start */

static int kind_from(Oid oid, int textlike)
{
    return textlike ? COPY_K_TEXT : copy_kind_of(oid);
}

/* sluice.core.copy_kind(base_oid, textlike) -> encoder family name
 * ("int4", "text", ..., "other" when there is no binary encoder). */
int lib_copy_kind(lua_State *L)
{
    Oid oid = (Oid)luaL_checknumber(L, 1);
    lua_pushstring(L, copy_kind_name(kind_from(oid, lua_toboolean(L, 2))));
    return 1;
}

static int opt_field(lua_State *L, int t, const char *k)
{
    lua_getfield(L, t, k);
    return lua_gettop(L);
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
    col->kind = kind_from((Oid)lua_tonumber(L, -2), lua_toboolean(L, -1));
    lua_pop(L, 2);
    lua_getfield(L, s, "elem_oid");
    if (lua_isnumber(L, -1) && lua_tonumber(L, -1) > 0) {
        col->elem_oid = (Oid)lua_tonumber(L, -1);
        lua_getfield(L, s, "elem_base_oid");
        lua_getfield(L, s, "elem_textlike");
        col->elem_kind = kind_from((Oid)lua_tonumber(L, -2),
                                   lua_toboolean(L, -1));
        col->kind = COPY_K_ARRAY;
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
    if (format != COPY_FMT_BINARY) {
        col->enc = enc_text;
        return;
    }
    col->enc = bin_encoder(col->kind);
    if (col->kind == COPY_K_ARRAY)
        col->elem_enc = bin_encoder(col->elem_kind);
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
    lua_createtable(L, 7, 0);
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
    if (copy_buf_grow(&cp->w.buf, chunk + chunk / 4) != COPY_OK)
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
    if (header) {
        /* the names as one row of strings, through the same field writer
         * (not counted in rows) */
        for (int i = 0; i < ncols; i++) {
            need(L, cp, 1);
            if (i > 0)
                copy_put_byte(&cp->w.buf, cp->w.delim);
            const char *name = cp->cols[i].name;
            int rc = copy_writer_field(&cp->w, name, strlen(name));
            if (rc != COPY_OK)
                encode_failed(L, cp, &cp->cols[i], rc);
        }
        need(L, cp, 1);
        copy_put_byte(&cp->w.buf, '\n');
        cp->w.committed = cp->w.buf.len;
    }
    lua_replace(L, ud - 2); /* the stream where delim was */
    lua_pop(L, 1);
    return cp->sink_ctx;
}

/* sluice.core.copy_start(db, sql, format, specs, opts) -> copy stream.
 * sql is the whole COPY ... FROM STDIN statement; format "text", "csv"
 * or "binary" (matching sql); specs one table per column: name,
 * type_name, base_oid, textlike, elem_oid, elem_base_oid, elem_textlike;
 * opts: chunk_size, json_encode, cdata_kind, utc.  Raises the server's
 * error object if the COPY cannot start. */
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
    int utc = lua_toboolean(L, opt_field(L, 5, "utc"));
    lua_settop(L, 5);

    sl_copy *cp = cp_new(L, 1, 4, 5, format, ncols, chunk, 0);
    cp->conn = c;
    cp->w.utc = utc;
    int ud = lua_gettop(L);
    // stack: db, sql, fmt, specs, opts, cp
    if (format == COPY_FMT_BINARY &&
        copy_put_binary_header(&cp->w.buf) != COPY_OK)
        return luaL_error(L, "copy: out of memory allocating the buffer");
    cp->w.committed = cp->w.buf.len;

    PGresult **err = lib_new_result_slot(L);
    // stack: ..., cp, err_holder
    int interrupted;
    int rc = copy_begin(c->pg, sql, PGRES_COPY_IN, err, &interrupted);
    if (interrupted)
        interrupt_consume(L);
    if (rc == COPY_OK) {
        cp->state = CP_OPEN;
        cp->w.pg = &c->pg;
        c->busy = 1;
        if (interrupted) {
            cp_release(cp, "COPY interrupted (Ctrl-C)", CP_FAILED, 1);
            return luaL_error(L, "interrupted (Ctrl-C)");
        }
        lua_settop(L, ud);
        return 1;
    }
    lib_conn_deliver_notices(L, c, 1);
    if (rc == COPY_EFAIL)
        lib_push_result_error(L, *err, c->pg);
    else
        lib_push_conn_error(L, c->pg);
    return lua_error(L);
}
