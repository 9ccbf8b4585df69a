/*
 * lib_copy_binary.c - the binary encoders of the "sluice.copy" binding:
 * one per encoder family (enum copy_kind), each reading the Lua value,
 * handing it to the core's encoder of its type (copyenc.h: the one the
 * compiled row writer calls too) and turning a refusal into the error
 * that names the row, column and value.  Arrays (nested Lua tables) are
 * here as well: their header, shape checks, and the elements through the
 * element type's encoder.
 *
 * Uses: lib_copy_priv.h (the stream, the value readers and errors of
 * lib_copy_values.c), copyenc.h, numfmt.h.
 *
 * Caveats: every error ends the COPY before it is raised; a field left
 * half-written is dropped with its row (copy_writer_row_begin()).
 */
#include "lib_copy_priv.h"
#include "numfmt.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#define TS_FORM_WHAT                                                   \
    "epoch seconds or a date/time string PostgreSQL reads (ISO 8601 "  \
    "YYYY-MM-DD[ hh:mm[:ss[.ffffff]]][Z|+hh:mm], or another form of "  \
    "its date/time input, in the session's DateStyle)"
#define TS_RANGE_WHAT                                                  \
    "a timestamp within PostgreSQL's range "                           \
    "(4714-11-24 BC .. 294276-12-31 AD)"
#define DATE_RANGE_WHAT                                                \
    "a date within PostgreSQL's range "                                \
    "(4714-11-24 BC .. 5874897-12-31 AD)"
#define FIELD_RANGE_WHAT                                               \
    "a date/time whose fields are in range (month 1-12, a day of "     \
    "that month, a time up to 24:00:00)"
#define TZ_RANGE_WHAT "a UTC offset within -15:59:59 .. +15:59:59"
#define TOO_LARGE ": the value is larger than 2 GB"

/* An int64/uint64 cdata at idx as a double: 1, or 0 for anything else. */
static int cdata_double(lua_State *L, int idx, double *x)
{
    uint64_t bits;
    int k = lib_copy_cdata_int(L, idx, &bits);
    if (k == 1)
        *x = (double)(int64_t)bits;
    else if (k == 2)
        *x = (double)bits;
    return k != 0;
}

/* The SQLSTATE the server gives the value at idx that an encoder refused
 * with rc: a string with a NUL byte or not UTF-8 22021, out of range
 * (numbers 22003, dates and times 22008) or not of the type (22P02,
 * dates and times 22007). */
static const char *refusal_code(lua_State *L, const sl_copy *cp,
                                const copy_col *col, int idx, int rc)
{
    int k = col->kind == COPY_K_ARRAY ? col->elem_kind : col->kind;
    size_t n;
    if (lua_type(L, idx) == LUA_TSTRING) {
        /* as the server reads text: its encoding first (checked here
         * for UTF-8, the usual client encoding; a NUL byte in any) */
        const char *s = lua_tolstring(L, idx, &n);
        int utf8 = cp->conn && cp->conn->pg &&
                   strcmp(pg_encoding_to_char(PQclientEncoding(cp->conn->pg)),
                          "UTF8") == 0;
        if (utf8 ? copy_bad_text(s, n) : memchr(s, 0, n) != NULL)
            return "22021";
    }
    int when = k == COPY_K_DATE || k == COPY_K_TIMESTAMP ||
               k == COPY_K_TIMESTAMPTZ;
    if (rc == SL_ERANGE)
        return when ? "22008" : "22003";
    if (rc == SL_ETZRANGE) /* invalid_time_zone_displacement_value */
        return "22009";
    return when ? "22007" : "22P02";
}

/* Raise for an encoder's failure rc, if any: out of memory, a NUL byte,
 * else that the value at idx is not `what`. */
static void check_value(lua_State *L, sl_copy *cp, const copy_col *col,
                        int idx, int rc, const char *what)
{
    if (rc == SL_OK)
        return;
    if (rc == SL_ENOMEM || rc == SL_ENUL)
        lib_copy_encode_failed(L, cp, col, rc);
    lib_copy_refusal(cp, refusal_code(L, cp, col, idx, rc));
    lib_copy_value_error(L, cp, col, idx, what);
}

/* Raise for a failed encoder of bytes: beyond 2 GB, a NUL byte, out of
 * memory. */
static void check_field(lua_State *L, sl_copy *cp, const copy_col *col,
                        int rc)
{
    if (rc == SL_ERANGE) {
        lib_copy_refusal(cp, "54000"); /* program_limit_exceeded */
        lib_copy_col_error(L, cp, col, TOO_LARGE);
    }
    if (rc != SL_OK)
        lib_copy_encode_failed(L, cp, col, rc);
}

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
        s = copy_bool_text(lua_toboolean(L, idx), col->kind);
        *n = strlen(s);
        return s;
    default: {
        uint64_t bits;
        int k = lib_copy_cdata_int(L, idx, &bits);
        if (k) {
            *n = lib_copy_cdata_text(tmp, bits, k);
            return tmp;
        }
    }
    }
    lib_copy_value_error(L, cp, col, idx, what);
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
    const char *s = pushed ? lib_copy_json_encode(L, cp, col, idx, &n)
                           : textlike(L, cp, col, idx, &n, tmp,
                                      "a JSON string or a table");
    /* a string from the script must be text; the encoder's is trusted */
    if (!pushed && memchr(s, '\0', n))
        lib_copy_encode_failed(L, cp, col, SL_ENUL);
    int jsonb = col->kind == COPY_K_JSONB ||
                (col->kind == COPY_K_ARRAY && col->elem_kind == COPY_K_JSONB);
    check_field(L, cp, col, copy_put_json(&cp->w.buf, s, n, jsonb));
    if (pushed)
        lua_pop(L, 1);
}

/* bytea: a string's bytes; a number, boolean or int64 cdata the bytes
 * of its text, as bytea's input reads that text on every other path. */
static void bin_bytea(lua_State *L, sl_copy *cp, const copy_col *col, int idx)
{
    char tmp[NUMFMT_BUFSIZE];
    size_t n;
    const char *s = textlike(L, cp, col, idx, &n, tmp, "a string (bytes)");
    check_field(L, cp, col, copy_put_bytes(&cp->w.buf, s, n));
}

static void bin_bool(lua_State *L, sl_copy *cp, const copy_col *col, int idx)
{
    int rc = SL_EINVAL;
    double x = 0;
    if (lua_type(L, idx) == LUA_TBOOLEAN) {
        rc = copy_put_bool(&cp->w.buf, lua_toboolean(L, idx));
    } else if (lua_type(L, idx) == LUA_TNUMBER || cdata_double(L, idx, &x)) {
        /* 0 and 1, as boolin reads their digits */
        if (lua_type(L, idx) == LUA_TNUMBER)
            x = lua_tonumber(L, idx);
        if ((x == 0 && !signbit(x)) || x == 1) /* "-0" is no boolean */
            rc = copy_put_bool(&cp->w.buf, x == 1);
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
                    int kind, int (*put_number)(sbuf *, double),
                    const char *what)
{
    sbuf *b = &cp->w.buf;
    int rc;
    switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
        rc = put_number(b, lua_tonumber(L, idx));
        if (rc == SL_ERANGE && kind == COPY_K_INT8) {
            lib_copy_refusal(cp, "22003");
            lib_copy_value_error(L, cp, col, idx, COPY_INT8_EXACT_WHAT);
        }
        break;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        rc = copy_put_int_str(b, kind, s, n);
        break;
    }
    default: {
        uint64_t bits;
        int k = lib_copy_cdata_int(L, idx, &bits);
        /* a uint64 beyond int8 is out of range, as its digits are */
        rc = k == 1 || (k == 2 && bits <= INT64_MAX)
                 ? copy_put_int(b, kind, (int64_t)bits)
                 : k == 2 ? SL_ERANGE : SL_EINVAL;
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

/* A float column: a number, a float8in/float4in-style string (a real's
 * string read as float4in reads it, rounded once) or an int64 cdata,
 * through the core's encoders for the column's width. */
static int put_float(lua_State *L, sl_copy *cp, int idx,
                     int (*put_num)(sbuf *, double),
                     int (*put_str)(sbuf *, const char *, size_t))
{
    sbuf *b = &cp->w.buf;
    double x = 0;
    if (lua_type(L, idx) == LUA_TNUMBER)
        return put_num(b, lua_tonumber(L, idx));
    if (lua_type(L, idx) == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        return put_str(b, s, n);
    }
    if (cdata_double(L, idx, &x))
        return put_num(b, x);
    return SL_EINVAL;
}

static void bin_float8(lua_State *L, sl_copy *cp, const copy_col *col,
                       int idx)
{
    int rc = put_float(L, cp, idx, copy_put_float8, copy_put_float8_str);
    check_value(L, cp, col, idx, rc, "a number");
}

static void bin_float4(lua_State *L, sl_copy *cp, const copy_col *col,
                       int idx)
{
    int rc = put_float(L, cp, idx, copy_put_float4, copy_put_float4_str);
    if (rc == SL_EINVAL)
        check_value(L, cp, col, idx, rc, "a number");
    check_value(L, cp, col, idx, rc, COPY_REAL_RANGE_WHAT);
}

static void bin_numeric(lua_State *L, sl_copy *cp, const copy_col *col,
                        int idx)
{
    sbuf *b = &cp->w.buf;
    int rc = SL_EINVAL;
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
        int k = lib_copy_cdata_int(L, idx, &bits);
        if (k) {
            n = lib_copy_cdata_text(tmp, bits, k);
            rc = copy_put_numeric_str(b, tmp, n);
        }
    }
    }
    if (rc == SL_ERANGE)
        lib_copy_value_error(L, cp, col, idx,
                             "a numeric within binary COPY's range (at most "
                             "12000 significant digits; use format \"text\" "
                             "for more)");
    check_value(L, cp, col, idx, rc, "a number or a decimal string");
}

/* Dates and timestamps: epoch seconds are encoded here by put_epoch (1
 * is returned); anything else must be a string, left in *s, *n for the
 * caller's parser (0 is returned).  Raises for other values. */
static int epoch_or_text(lua_State *L, sl_copy *cp, const copy_col *col,
                         int idx, int (*put_epoch)(sbuf *, double),
                         const char **s, size_t *n)
{
    if (lua_type(L, idx) == LUA_TNUMBER) {
        int rc = put_epoch(&cp->w.buf, lua_tonumber(L, idx));
        if (rc == SL_EINVAL) /* beyond the range: the field's overflow */
            rc = SL_ERANGE;
        check_value(L, cp, col, idx, rc, EPOCH_WHAT);
        return 1;
    }
    uint64_t bits;
    int k = lua_type(L, idx) == LUA_TSTRING ? 0 : lib_copy_cdata_int(L, idx, &bits);
    if (k) {
        /* an int64 cdata's digits, read as the date/time text they are
         * on every other path (the scratch buffer holds them) */
        char tmp[24];
        size_t len = lib_copy_cdata_text(tmp, bits, k);
        cp->scratch.len = 0;
        if (sbuf_reserve(&cp->scratch, len) != SL_OK)
            lib_copy_oom(L, cp);
        sbuf_put_raw(&cp->scratch, tmp, len);
        *s = cp->scratch.data;
        *n = len;
        return 0;
    }
    if (lua_type(L, idx) != LUA_TSTRING) {
        /* a table is no date on any path (22P02); a boolean's text is
         * read and refused by the server (22007) */
        lib_copy_refusal(cp, lua_istable(L, idx) ? "22P02" : "22007");
        lib_copy_value_error(L, cp, col, idx,
                             "epoch seconds or a date/time string");
    }
    *s = lua_tolstring(L, idx, n);
    return 0;
}

/* Raise for a date/time string's refusal rc (none when SL_OK), with
 * the SQLSTATE the server gives the string; range_what says the type's
 * range. */
static void datetime_refused(lua_State *L, sl_copy *cp, const copy_col *col,
                             int idx, int rc, const char *s, size_t n,
                             int for_date, const char *range_what)
{
    if (rc == SL_OK)
        return;
    if (rc == SL_ENOMEM || rc == SL_ENUL)
        lib_copy_encode_failed(L, cp, col, rc);
    lib_copy_refusal(cp, refusal_code(L, cp, col, idx, rc));
    dt_fields f;
    int prc = dt_parse(s, n, cp->w.dt_order, for_date, &f);
    if (rc == SL_ERANGE)
        lib_copy_value_error(L, cp, col, idx,
                             prc == SL_ERANGE ? FIELD_RANGE_WHAT
                                              : range_what);
    if (rc == SL_ETZRANGE)
        lib_copy_value_error(L, cp, col, idx, TZ_RANGE_WHAT);
    if (rc == SL_ESERVERONLY) {
        lua_pushfstring(L,
                        "a date/time binary COPY reads (\"%s\" is not one of "
                        "its words: time zone names and abbreviations other "
                        "than UTC, GMT and Z, and now, today, tomorrow and "
                        "yesterday, are read by the server only; use format = "
                        "\"text\")",
                        f.word);
        lib_copy_value_error(L, cp, col, idx, lua_tostring(L, -1));
    }
    if (rc == SL_ENOZONE) {
        lua_pushfstring(L,
                        "a timestamp with a UTC offset (Z or +hh:mm), as %s; "
                        "format = \"text\" lets the server apply the zone",
                        cp->zone_err[0] ? cp->zone_err
                                        : "the session TimeZone's rules "
                                          "were not read");
        lib_copy_value_error(L, cp, col, idx, lua_tostring(L, -1));
    }
    lib_copy_value_error(L, cp, col, idx, TS_FORM_WHAT);
}

/* A date: epoch seconds (the UTC day) or a date/time string, counted
 * without going through microseconds so that dates beyond the timestamp
 * range still load. */
static void bin_date(lua_State *L, sl_copy *cp, const copy_col *col, int idx)
{
    const char *s;
    size_t n;
    if (epoch_or_text(L, cp, col, idx, copy_put_date, &s, &n))
        return;
    if (col->layout && lua_type(L, idx) == LUA_TSTRING) {
        lib_copy_layout_refused(
            L, cp, col, idx,
            copy_put_date_layout(&cp->w.buf, col->layout, s, n));
        return;
    }
    int rc = copy_put_date_str(&cp->w.buf, s, n, cp->w.dt_order);
    datetime_refused(L, cp, col, idx, rc, s, n, 1, DATE_RANGE_WHAT);
}

/* A timestamp (tz: with time zone): epoch seconds or a date/time
 * string. */
static void bin_ts(lua_State *L, sl_copy *cp, const copy_col *col, int idx,
                   int tz)
{
    const char *s;
    size_t n;
    if (epoch_or_text(L, cp, col, idx, copy_put_ts, &s, &n))
        return;
    if (col->layout && lua_type(L, idx) == LUA_TSTRING) {
        lib_copy_layout_refused(
            L, cp, col, idx,
            copy_put_ts_layout(&cp->w.buf, col->layout, s, n, tz,
                               cp->w.zone));
        return;
    }
    int rc = copy_put_ts_str(&cp->w.buf, s, n, tz, cp->w.dt_order,
                             cp->w.zone);
    datetime_refused(L, cp, col, idx, rc, s, n, 0, TS_RANGE_WHAT);
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
    int rc = SL_EINVAL;
    if (lua_type(L, idx) == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        rc = copy_put_uuid_str(&cp->w.buf, s, n);
    }
    check_value(L, cp, col, idx, rc,
                "a uuid string (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)");
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
                lib_copy_value_error(L, cp, col, e, LIB_ARRAY_EXPECTED);
            if (!lua_istable(L, e) ||
                (int)lua_objlen(L, e) != dims[level + 1]) {
                lua_pushfstring(L, "a table of %d elements (sub-arrays of "
                                   "a multidimensional array must have "
                                   "matching sizes)", dims[level + 1]);
                lib_copy_value_error(L, cp, col, e, lua_tostring(L, -1));
            }
            bin_elems(L, cp, col, e, level + 1, ndim, dims, has_null);
        } else if (lib_copy_is_null(L, e)) {
            if (copy_put_null(&cp->w.buf) != SL_OK)
                lib_copy_oom(L, cp);
            *has_null = 1;
        } else if (lua_istable(L, e) && col->elem_kind != COPY_K_JSON &&
                   col->elem_kind != COPY_K_JSONB) {
            lib_copy_value_error(L, cp, col, e,
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
    lib_copy_need(L, cp, (size_t)n * w);
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
            lib_copy_value_error(L, cp, col, t, LIB_ARRAY_EXPECTED);
        int n = (int)len;
        if (ndim == MAX_DIMS) {
            lib_copy_refusal(cp, "54000"); /* program_limit_exceeded */
            lib_copy_col_error(L, cp, col,
                               ": arrays have at most 6 dimensions");
        }
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
        lib_copy_col_error(L, cp, col,
                           ": a multidimensional array cannot have empty "
                           "sub-arrays");
    return dims[0] == 0 ? 0 : ndim;
}

/* A Lua array (nested tables for more dimensions) as a binary array:
 * ndim, has-null flag, element type, (size, lower bound 1) per dimension,
 * then each element as length + bytes. */
/* ---------------------------------------------- array literals */

static int lit_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
           c == '\f';
}

/* One level of an array literal from *p (at its '{'), as array_in reads
 * it with the delimiter ',': a Lua array pushed (sub-arrays as tables,
 * NULL as sluice.null, every other element its text).  Returns 0 for a
 * malformed literal (with the stack as it was). */
static int lit_level(lua_State *L, sl_copy *cp, const char **p,
                     const char *end, int depth)
{
    const char *q = *p + 1;
    if (depth > MAX_DIMS || !lua_checkstack(L, 4))
        return 0;
    lua_newtable(L);
    int k = 0, top = lua_gettop(L);
    sbuf *sc = &cp->scratch;
    for (;;) {
        while (q < end && lit_space(*q))
            q++;
        if (q >= end)
            goto bad;
        if (*q == '}' && k == 0) {
            q++;
            break;
        }
        if (*q == '{') {
            if (!lit_level(L, cp, &q, end, depth + 1))
                goto bad;
        } else {
            /* an element: quoted, or bare up to ',' or '}' (trimmed);
             * a backslash keeps the next byte as it is */
            sc->len = 0;
            int quoted = 0, escaped = 0;
            size_t keep = 0; /* bytes of a bare element up to its last
                              * non-space (or escaped) byte */
            if (*q == '"') {
                quoted = 1;
                q++;
                while (q < end && *q != '"') {
                    if (*q == '\\' && ++q >= end)
                        goto bad;
                    if (sbuf_reserve(sc, 1) != SL_OK)
                        lib_copy_oom(L, cp);
                    sbuf_put_byte(sc, *q++);
                }
                if (q >= end)
                    goto bad;
                q++;
                while (q < end && lit_space(*q))
                    q++;
            } else {
                while (q < end && *q != ',' && *q != '}') {
                    if (*q == '{' || *q == '"')
                        goto bad;
                    int esc = *q == '\\';
                    if (esc && ++q >= end)
                        goto bad;
                    if (sbuf_reserve(sc, 1) != SL_OK)
                        lib_copy_oom(L, cp);
                    sbuf_put_byte(sc, *q);
                    if (esc || !lit_space(*q))
                        keep = sc->len;
                    escaped |= esc;
                    q++;
                }
                sc->len = keep;
                if (keep == 0 && !escaped)
                    goto bad; /* an empty bare element */
            }
            if (!quoted && !escaped && sc->len == 4 &&
                strncasecmp(sc->data, "NULL", 4) == 0)
                lua_pushlightuserdata(L, NULL); /* sluice.null */
            else
                lua_pushlstring(L, sc->len ? sc->data : "", sc->len);
        }
        lua_rawseti(L, top, ++k);
        while (q < end && lit_space(*q))
            q++;
        if (q < end && *q == ',') {
            q++;
            continue;
        }
        if (q < end && *q == '}') {
            q++;
            break;
        }
        goto bad;
    }
    *p = q;
    return 1;
bad:
    lua_settop(L, top - 1);
    return 0;
}

/* The array literal at idx (a string) as a Lua array pushed on the
 * stack (its index returned), or a refusal (22P02) naming the literal.
 * Dimension decorations ("[1:2]={...}") are refused: give a Lua array. */
static int array_of_literal(lua_State *L, sl_copy *cp, const copy_col *col,
                            int idx)
{
    size_t n;
    const char *s = lua_tolstring(L, idx, &n), *end = s + n;
    while (s < end && lit_space(*s))
        s++;
    if (s < end && *s == '{' && lit_level(L, cp, &s, end, 1)) {
        while (s < end && lit_space(*s))
            s++;
        if (s == end)
            return lua_gettop(L);
        lua_pop(L, 1);
    }
    /* "malformed array literal", whatever the element type */
    const char *code = refusal_code(L, cp, col, idx, SL_EINVAL);
    lib_copy_refusal(cp, strcmp(code, "22021") == 0 ? code : "22P02");
    lib_copy_value_error(L, cp, col, idx,
                         "a table (Lua array) or an array literal such as "
                         "{1,2,3}");
    return 0;
}

static void bin_array(lua_State *L, sl_copy *cp, const copy_col *col,
                      int idx)
{
    /* a string is the array's text, as array_in reads it */
    int literal = lua_type(L, idx) == LUA_TSTRING;
    if (literal)
        idx = array_of_literal(L, cp, col, idx);
    if (!lua_istable(L, idx))
        lib_copy_value_error(L, cp, col, idx, "a table (Lua array)");
    int json = col->elem_kind == COPY_K_JSON || col->elem_kind == COPY_K_JSONB;
    int dims[MAX_DIMS];
    int ndim = array_shape(L, cp, col, idx, json, dims);
    sbuf *b = &cp->w.buf;
    lib_copy_need(L, cp, 16 + 8 * (size_t)ndim);
    size_t start = b->len;
    sbuf_put_be32(b, 0); /* length, patched below */
    sbuf_put_be32(b, (uint32_t)ndim);
    sbuf_put_be32(b, 0); /* has-null flag, patched below */
    sbuf_put_be32(b, col->elem_oid);
    for (int d = 0; d < ndim; d++) {
        sbuf_put_be32(b, (uint32_t)dims[d]);
        sbuf_put_be32(b, 1);
    }
    int has_null = 0;
    if (ndim == 1 && bin_float_vector(L, cp, col, idx, dims[0]))
        ndim = 0; /* done: every element was a plain number */
    if (ndim > 0)
        bin_elems(L, cp, col, idx, 0, ndim, dims, &has_null);
    size_t len = b->len - start - 4;
    if (len > INT32_MAX)
        lib_copy_col_error(L, cp, col, TOO_LARGE);
    sbuf_patch_be32(b, start, (uint32_t)len);
    sbuf_patch_be32(b, start + 8, (uint32_t)has_null);
    if (literal)
        lua_pop(L, 1);
}

/* The binary encoder of a kind; NULL when it has none. */
enc_fn lib_copy_bin_encoder(int kind)
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
