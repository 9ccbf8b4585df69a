/*
 * lib_copy_values.c - Lua values as COPY fields, for the "sluice.copy"
 * binding: reading them (int64 cdata through a Lua helper, tables through
 * the JSON encoder), the errors that name the row, column and value, one
 * row of values, and the text/CSV encoders.  The binary encoders are
 * lib_copy_binary.c; both hand the values to the core's encoders
 * (copyenc.h) and turn a refusal into the error.
 *
 * Uses: lib_copy_priv.h (the stream), copyenc.h, numfmt.h.
 *
 * Caveats:
 * - In text and CSV, strings go to the server as they are (it parses
 *   them); numbers, booleans, int64 cdata, Lua arrays (array literals)
 *   and tables for json columns are turned into text here.
 * - Every error ends the COPY (lib_copy_raise) before it is raised.
 */
#include "lib_copy_priv.h"
#include "numfmt.h"

#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------- errors */

/* Push "row N, column "x" (type)[, element [i][j]]". */
static void push_where(lua_State *L, sl_copy *cp, const copy_col *col)
{
    cp->rj.col = col->name;
    lib_copy_push_row(L, cp);
    lua_pushfstring(L, ", column \"%s\" (%s)", col->name, col->type_name);
    int n = 2;
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
int lib_copy_value_error(lua_State *L, sl_copy *cp, const copy_col *col,
                         int idx, const char *what)
{
    push_where(L, cp, col);
    lua_pushfstring(L, ": expected %s, got ", what);
    push_value_desc(L, idx);
    lua_concat(L, 3);
    return lib_copy_refuse(L, cp);
}

/* Raise "<where>: <msg>" and end the COPY. */
int lib_copy_col_error(lua_State *L, sl_copy *cp, const copy_col *col,
                       const char *msg)
{
    push_where(L, cp, col);
    lua_pushstring(L, msg);
    lua_concat(L, 2);
    return lib_copy_refuse(L, cp);
}

void lib_copy_layout_refused(lua_State *L, sl_copy *cp, const copy_col *col,
                             int idx, int rc)
{
    if (rc == SL_OK)
        return;
    if (rc == SL_ENOMEM)
        lib_copy_oom(L, cp);
    const char *what = col->kind == COPY_K_DATE ? "a date" : "a timestamp";
    if (rc == SL_ENOZONE) {
        lib_copy_refusal(cp, "22007");
        lua_pushfstring(L, "%s in the layout %s, read in the session "
                           "TimeZone, whose rules were not read (%s); "
                           "format = \"text\" lets the server apply the "
                           "zone", what, col->layout->text,
                        cp->zone_err[0] ? cp->zone_err : "no reason given");
    } else if (rc == SL_ERANGE) {
        /* datetime_field_overflow, as the server says for Feb 30 */
        lib_copy_refusal(cp, "22008");
        lua_pushfstring(L, "%s in the layout %s whose fields are in range "
                           "(month 1-12, a day of that month, hour 0-24, "
                           "minute 0-59, second 0-60)", what,
                        col->layout->text);
    } else {
        lib_copy_refusal(cp, "22007"); /* invalid_datetime_format */
        lua_pushfstring(L, "%s in the layout %s", what, col->layout->text);
    }
    lib_copy_value_error(L, cp, col, idx, lua_tostring(L, -1));
}

static int nul_error(lua_State *L, sl_copy *cp, const copy_col *col)
{
    lib_copy_refusal(cp, "22021"); /* character_not_in_repertoire */
    return lib_copy_col_error(L, cp, col,
                              ": the string contains a NUL byte (\\0), "
                              "which PostgreSQL text cannot hold (use a "
                              "bytea column for binary data)");
}

/* Raise for a core encoder's failure rc (lib_copy_priv.h): the NUL byte
 * error for SL_ENUL, else out of memory.  Never returns. */
int lib_copy_encode_failed(lua_State *L, sl_copy *cp, const copy_col *col,
                           int rc)
{
    if (rc == SL_ENUL)
        return nul_error(L, cp, col);
    return lib_copy_oom(L, cp);
}

static inline void need_scratch(lua_State *L, sl_copy *cp, size_t n)
{
    if (sbuf_reserve(&cp->scratch, n) != SL_OK)
        lib_copy_oom(L, cp);
}

/* --------------------------------------------------- values from Lua */

/* If the value at idx is an int64_t (returns 1) or uint64_t (returns 2)
 * cdata, store its bits.  0 for anything else.  The ctype test is a Lua
 * helper (C cannot see ctypes); only cdata values pay for it. */
int lib_copy_cdata_call(lua_State *L, int idx, int nret)
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
    lua_call(L, 1, nret);
    return 1;
}

int lib_copy_cdata_int(lua_State *L, int idx, uint64_t *bits)
{
    if (!lib_copy_cdata_call(L, idx, 1))
        return 0;
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
size_t lib_copy_cdata_text(char *buf, uint64_t bits, int kind)
{
    return kind == 1 ? numfmt_int64(buf, (int64_t)bits)
                     : numfmt_uint64(buf, bits);
}

/* JSON text of the table at idx through the stream's encoder; the string
 * is left on the stack (the caller pops it). */
const char *lib_copy_json_encode(lua_State *L, sl_copy *cp,
                                 const copy_col *col, int idx, size_t *n)
{
    lua_getfenv(L, CP_SELF);
    lua_rawgeti(L, -1, FENV_JSON);
    lua_remove(L, -2);
    if (!lua_isfunction(L, -1))
        lib_copy_col_error(L, cp, col,
                           ": cannot encode a table as JSON: lua-cjson is not "
                           "installed (or pass opts.json_encode)");
    lua_pushvalue(L, idx);
    if (lua_pcall(L, 1, 1, 0) != 0) {
        const char *m = lua_tostring(L, -1);
        push_where(L, cp, col);
        lua_pushfstring(L, ": cannot encode the table as JSON: %s",
                        m ? m : "(error object)");
        lua_concat(L, 2);
        lib_copy_refuse(L, cp);
    }
    if (lua_type(L, -1) != LUA_TSTRING)
        lib_copy_col_error(L, cp, col,
                           ": the JSON encoder did not return a string");
    return lua_tolstring(L, -1, n);
}

/* ------------------------------------------------- text and CSV format */

/* Raise for copy_number_text()'s error (or a field writer's). */
static void number_failed(lua_State *L, sl_copy *cp, const copy_col *col,
                          int idx, int rc)
{
    lib_copy_refusal(cp, "22003"); /* numeric_value_out_of_range */
    if (rc == SL_ERANGE)
        lib_copy_value_error(L, cp, col, idx, copy_number_what(col->kind));
    lib_copy_refusal(cp, "22008"); /* datetime_field_overflow */
    if (rc == SL_EINVAL)
        lib_copy_value_error(L, cp, col, idx, EPOCH_WHAT);
    lib_copy_encode_failed(L, cp, col, rc);
}

static void lit_array(lua_State *L, sl_copy *cp, const copy_col *col,
                      int t, int depth);

/* Append raw text to the array literal in scratch. */
static void lit_raw(lua_State *L, sl_copy *cp, const char *s, size_t n)
{
    need_scratch(L, cp, n);
    sbuf_put_raw(&cp->scratch, s, n);
}

/* Append s to the array literal in scratch as a quoted element. */
static void lit_quoted(lua_State *L, sl_copy *cp, const copy_col *col,
                       const char *s, size_t n)
{
    int rc = copy_put_array_quoted(&cp->scratch, s, n);
    if (rc != SL_OK)
        lib_copy_encode_failed(L, cp, col, rc);
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
    if (copy_put_bytea_hex(&cp->scratch, s, n) != SL_OK)
        lib_copy_oom(L, cp);
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
    if (rc != SL_OK)
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
            const char *s = lib_copy_json_encode(L, cp, col, e, &n);
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
        int k = lib_copy_cdata_int(L, e, &bits);
        if (k) {
            lit_raw(L, cp, tmp, lib_copy_cdata_text(tmp, bits, k));
            return;
        }
    }
    }
    lib_copy_value_error(L, cp, col, e,
                         "a string, number, boolean, table or sluice.null");
}

/* Append the Lua array at stack index t as an array literal {a,b,...}
 * (nested tables are sub-arrays) to scratch. */
static void lit_array(lua_State *L, sl_copy *cp, const copy_col *col,
                      int t, int depth)
{
    if (depth >= MAX_DIMS) {
        lib_copy_refusal(cp, "54000"); /* program_limit_exceeded */
        lib_copy_col_error(L, cp, col, ": arrays have at most 6 dimensions");
    }
    size_t n;
    if (!lib_array_len(L, t, &n))
        lib_copy_value_error(L, cp, col, t, LIB_ARRAY_EXPECTED);
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
        const char *s = lib_copy_json_encode(L, cp, col, idx, &n);
        rc = copy_writer_field(&cp->w, s, n);
        lua_pop(L, 1);
    } else {
        return 0;
    }
    if (rc != SL_OK)
        lib_copy_encode_failed(L, cp, col, rc);
    return 1;
}

/* The text/CSV encoder of every column: strings go as they are (the
 * server parses them), other Lua values are turned into text here. */
void lib_copy_enc_text(lua_State *L, sl_copy *cp, const copy_col *col,
                       int idx)
{
    copy_writer *w = &cp->w;
    char tmp[24];
    size_t n;
    uint64_t bits;
    int k, rc;
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        const char *s = lua_tolstring(L, idx, &n);
        if (col->layout) {
            /* read by the layout here; the server gets ISO text */
            rc = copy_writer_layout(w, col->layout, s, n,
                                    col->kind == COPY_K_DATE);
            lib_copy_layout_refused(L, cp, col, idx, rc);
            return;
        }
        if (col->kind == COPY_K_BYTEA) {
            cp->scratch.len = 0;
            if (copy_put_bytea_hex(&cp->scratch, s, n) != SL_OK)
                lib_copy_oom(L, cp);
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
        if (rc != SL_OK)
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
        k = lib_copy_cdata_int(L, idx, &bits);
        if (!k)
            goto bad;
        n = lib_copy_cdata_text(tmp, bits, k);
        rc = copy_writer_plain(w, tmp, n);
    }
    if (rc != SL_OK)
        lib_copy_encode_failed(L, cp, col, rc);
    return;
bad:
    lib_copy_value_error(L, cp, col, idx,
                         col->kind == COPY_K_ARRAY
                             ? "a table (Lua array) or an array literal string"
                             : "a string, number or boolean");
}

/* ---------------------------------------------------------------- rows */

/* A sink with a NULL text of its own: a value whose field text (from
 * `start` in buf) equals it would read back as NULL.  CSV quotes it (a
 * quoted field is never NULL); text format cannot tell them apart, so
 * that is an error rather than a silent NULL. */
static void keep_value(lua_State *L, sl_copy *cp, const copy_col *col,
                       size_t start)
{
    sbuf *b = &cp->w.buf;
    size_t n = b->len - start;
    if (n != cp->null_len || memcmp(b->data + start, cp->null, n) != 0)
        return;
    if (cp->w.format != COPY_FMT_CSV)
        lib_copy_col_error(L, cp, col,
                           ": the value's text is the sink's NULL text "
                           "(option null); choose a NULL text that no "
                           "value has");
    cp->scratch.len = 0;
    need_scratch(L, cp, n);
    sbuf_put_raw(&cp->scratch, b->data + start, n);
    b->len = start;
    int rc = copy_put_csv_field_delim(b, cp->scratch.data, n, cp->w.delim,
                                      1);
    if (rc != SL_OK)
        lib_copy_encode_failed(L, cp, col, rc);
}

/* A NULL field: the sink's NULL text, or the format's. */
static void put_null(lua_State *L, sl_copy *cp)
{
    if (cp->null) {
        lib_copy_need(L, cp, cp->null_len);
        sbuf_put_raw(&cp->w.buf, cp->null, cp->null_len);
    } else if (copy_writer_null(&cp->w) != SL_OK) {
        lib_copy_oom(L, cp);
    }
}

/* Encode one row whose values are at stack indices first.. into buf.
 * A row that fails half-way is dropped by the next call (committed). */
void lib_copy_encode_row(lua_State *L, sl_copy *cp, int first)
{
    copy_writer *w = &cp->w;
    const copy_col *col = cp->cols;
    int n = w->ncols, text = w->format != COPY_FMT_BINARY;
    cp->depth = 0;
    if (copy_writer_row_begin(w) != SL_OK)
        lib_copy_oom(L, cp);
    for (int i = 0; i < n; i++, col++) {
        if (text && i > 0 && copy_writer_sep(w) != SL_OK)
            lib_copy_oom(L, cp);
        if (lib_copy_is_null(L, first + i)) {
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
        lib_copy_oom(L, cp);
}

/* The column names as a sink's first line (lib_copy_priv.h): the same field
 * writer as values, not counted in rows.  Raises on out of memory. */
void lib_copy_header_row(lua_State *L, sl_copy *cp)
{
    for (int i = 0; i < cp->w.ncols; i++) {
        const copy_col *col = &cp->cols[i];
        if (i > 0 && copy_writer_sep(&cp->w) != SL_OK)
            lib_copy_oom(L, cp);
        int rc = copy_writer_field(&cp->w, col->name, strlen(col->name));
        if (rc != SL_OK)
            lib_copy_encode_failed(L, cp, col, rc);
    }
    lib_copy_need(L, cp, 1);
    sbuf_put_byte(&cp->w.buf, '\n');
    cp->w.committed = cp->w.buf.len;
}
