/*
 * copyenc.h - one encoder per column type, and the row writer of a COPY
 * stream.  Knows bytes and PostgreSQL's COPY formats, not Lua.
 *
 * Provides:
 * - copy_put_<type>(): one binary COPY field (length word, then the
 *   value) of a value in the form a script hands it: a double for
 *   numbers (and epoch seconds for dates and timestamps), a string
 *   (copy_put_<type>_str: decimal, ISO-8601, uuid, ...), an integer or a
 *   flag.  These are the only binary encoders: the Lua binding
 *   (lib_copy_binary.c) and the compiled row writer of sluice.copy (over
 *   the FFI) both call them;
 * - copy_writer: the buffer of a COPY stream with its complete rows
 *   (`committed`), and what the text formats need (delimiter, format);
 *   row begin/end and the text/CSV field writers work on it;
 * - copy_fast_table: the functions the compiled row writer calls, with
 *   their C types for ffi.cast and the column kinds each serves.  Adding
 *   a type that has its copy_put_<type>() to the fast path is one row
 *   there.
 *
 * Uses: copy.h (the buffer, the text of numbers), copyparse.h (the
 * parsers, numeric), datetime.h (date/time strings, the session's
 * DateStyle and zone), textops.h (columns given a layout), numfmt.h.
 *
 * The encoders and writer functions return SL_OK (0), a negative
 * SL_E* code, or (row end) 1; none prints, raises or calls back.  A
 * value is checked before room is reserved for it; after an error the
 * row being written may hold a partial field, and the caller drops the
 * row (copy_writer_row_begin() starts again from `committed`).  The
 * small ones are static inline (defined at the end), as copy.h's put
 * helpers are.
 */
#ifndef SLUICE_COPYENC_H
#define SLUICE_COPYENC_H

#include "copy.h"
#include "copyparse.h"
#include "datetime.h"
#include "textops.h"

#include <libpq-fe.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ----------------------------------------------------- binary fields */

/* A NULL field: length -1.  SL_OK or SL_ENOMEM, as every encoder
 * below for a value it takes. */
static inline int copy_put_null(sbuf *b);

/* A boolean: v nonzero is true. */
static inline int copy_put_bool(sbuf *b, int v);
/* t/f, true/false, yes/no, on/off, 1/0 as boolin reads them:
 * SL_EINVAL otherwise. */
int copy_put_bool_str(sbuf *b, const char *s, size_t n);

/* An integer for a column of kind COPY_K_INT2, _INT4, _INT8 or _OID:
 * SL_ERANGE outside the kind's range. */
static inline int copy_put_int(sbuf *b, int kind, int64_t v);
/* The same from a double: SL_EINVAL when x is not an integer (NaN, a
 * fraction), SL_ERANGE outside the range.  int8 also refuses, with
 * SL_ERANGE, a double beyond +-2^53 (copy_number_exact()). */
static inline int copy_put_int2(sbuf *b, double x);
static inline int copy_put_int4(sbuf *b, double x);
static inline int copy_put_int8(sbuf *b, double x);
static inline int copy_put_oid(sbuf *b, double x);
/* The same from decimal text (copy_parse_int64): SL_EINVAL or
 * SL_ERANGE. */
int copy_put_int_str(sbuf *b, int kind, const char *s, size_t n);

/* A double from a script for a float column: its NaN becomes the
 * server's own NaN.  Text COPY spells any NaN "NaN", which float8in and
 * float4in read as a positive NaN; LuaJIT's 0/0 has the sign bit set,
 * and float8send would show it.  (A string "-nan" keeps its sign:
 * strtod keeps it, the server too.) */
static inline double copy_float_of_number(double x)
{
    return isnan(x) ? (double)NAN : x;
}

/* x as a real: 1, or 0 when it overflows or underflows to zero (which
 * float4in refuses). */
static inline int copy_float4_of(double x, float *f)
{
    *f = (float)x;
    return !(isfinite(x) && (isinf(*f) || (*f == 0.0f && x != 0.0)));
}

static inline uint32_t copy_float4_bits(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, 4);
    return bits;
}

static inline uint64_t copy_float8_bits(double x)
{
    uint64_t bits;
    memcpy(&bits, &x, 8);
    return bits;
}

/* float4 / float8 from a double (copy_float_of_number() applied): real
 * gives SL_ERANGE beyond its range (copy_float4_of()). */
static inline int copy_put_float4(sbuf *b, double x);
static inline int copy_put_float8(sbuf *b, double x);
/* From text as float4in / float8in read it (copy_parse_float /
 * copy_parse_double, rounded once): SL_EINVAL, or SL_ERANGE. */
int copy_put_float4_str(sbuf *b, const char *s, size_t n);
int copy_put_float8_str(sbuf *b, const char *s, size_t n);

/* Text, varchar and the other text-like types: SL_ENUL for a NUL byte
 * (PostgreSQL text cannot hold one), SL_ERANGE beyond 2 GB. */
int copy_put_text(sbuf *b, const char *s, size_t n);
/* bytea: the bytes as they are; SL_ERANGE beyond 2 GB. */
int copy_put_bytes(sbuf *b, const char *s, size_t n);
/* json (as text) or jsonb (version byte 1, then the text); SL_ERANGE
 * beyond 2 GB.  NUL bytes are not looked for: the caller refuses them in
 * strings where it must. */
int copy_put_json(sbuf *b, const char *s, size_t n, int jsonb);

/* numeric from a double (its shortest exact text, numfmt_double) or from
 * decimal text (copy_put_numeric_text): SL_EINVAL when the text is not
 * a number, SL_ERANGE beyond what binary numeric holds. */
int copy_put_numeric(sbuf *b, double x);
int copy_put_numeric_str(sbuf *b, const char *s, size_t n);

/* date: epoch seconds (the UTC day that holds them; SL_EINVAL or
 * SL_ERANGE as copy_epoch_to_usec()), or a date/time string as date_in
 * reads it in DateStyle order `order` (dt_parse, dt_date: counted in
 * days, so dates beyond the timestamp range load; their codes). */
static inline int copy_put_date(sbuf *b, double secs);
int copy_put_date_str(sbuf *b, const char *s, size_t n, int order);

/* timestamp and timestamptz from epoch seconds (copy_epoch_to_usec:
 * SL_EINVAL, SL_ERANGE). */
static inline int copy_put_ts(sbuf *b, double secs);
/* From a date/time string as timestamp_in / timestamptz_in read it in
 * DateStyle order `order` (dt_parse, dt_timestamp and their codes).  tz:
 * a timestamptz column: the string's offset is applied, or else the
 * string is local time in `zone` (the session TimeZone's rules; NULL:
 * not read, SL_ENOZONE). */
int copy_put_ts_str(sbuf *b, const char *s, size_t n, int tz, int order,
                    const tz_rules *zone);

/* date / timestamp / timestamptz from a string read by a layout
 * (textops_parse) instead of the server's date/time input: SL_EINVAL
 * (22007) or SL_ERANGE (22008) as textops.h says; a timestamptz's value
 * is local time in `zone` (NULL: SL_ENOZONE), as an offset-less string
 * is. */
int copy_put_date_layout(sbuf *b, const textops_layout *l, const char *s,
                         size_t n);
int copy_put_ts_layout(sbuf *b, const textops_layout *l, const char *s,
                       size_t n, int tz, const tz_rules *zone);

/* xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx (copy_parse_uuid): SL_EINVAL. */
int copy_put_uuid_str(sbuf *b, const char *s, size_t n);

/* --------------------------------------------------------- the writer */

typedef struct copy_writer {
    sbuf buf;       /* first: a writer's address is its buffer's, so
                         * the fast table can name copy_put_<type>()
                         * directly (see copy_fast_table) */
    size_t committed;   /* bytes of buf that hold complete rows */
    size_t chunk;       /* the rows are due to be sent from this size */
    uint64_t rows;      /* rows completed */
    PGconn **pg;        /* while a COPY to the server is open: where its
                         * connection keeps its PGconn (NULL once that is
                         * closed); else NULL.  The fast path writes rows
                         * only then. */
    int format;         /* enum copy_format */
    int ncols;
    int delim;          /* field delimiter (text: tab, CSV: comma) */
    int custom;         /* a delimiter or NULL text of a sink's own: every
                         * field goes through the escaper */
    int dt_order;       /* the session DateStyle's field order
                         * (enum dt_order), for date/time strings */
    const tz_rules *zone; /* the session TimeZone's rules (binary
                         * streams); NULL when they were not read */
    const textops_layout *layouts; /* ncols layouts (n == 0: the column
                         * has none), for date/time strings read by a
                         * layout (db:copy's opts.layouts); NULL: none */
    /* reject mode (copychunk.h): where each row of the chunk ends, the
     * chunk's row count and its size in rows; row_ends is NULL else */
    size_t *row_ends;
    size_t *row_n;
    size_t row_cap;
} copy_writer;

/* Start a row: anything after `committed` (a row that failed half-way)
 * is dropped; binary rows begin with their field count.  SL_OK or
 * SL_ENOMEM. */
static inline int copy_writer_row_begin(copy_writer *w);

/* End the row (text and CSV: the newline) and count it: 1 when the
 * committed rows reach `chunk` bytes (send them) or, in reject mode, the
 * chunk is full (row_cap rows: settle it), else 0; SL_ENOMEM (the row is
 * then not counted). */
static inline int copy_writer_row_end(copy_writer *w);

/* A NULL field of the writer's format: binary length -1, text \N, CSV
 * nothing (the default NULL texts; a sink's own is the caller's).
 * SL_OK or SL_ENOMEM. */
static inline int copy_writer_null(copy_writer *w);

/* The delimiter before a text/CSV field (every one but the first). */
static inline int copy_writer_sep(copy_writer *w);

/* s[0..n) as one text/CSV field, escaped or quoted for the writer's
 * format and delimiter.  SL_ENUL (a NUL byte) or SL_ENOMEM. */
int copy_writer_field(copy_writer *w, const char *s, size_t n);

/* s[0..n), text that needs no escaping with the default delimiters
 * (digits, signs, '.', ':', ' ', letters), as one text/CSV field: as it
 * is, or through copy_writer_field() when the writer is custom (a
 * sink's delimiter may be any of those). */
static inline int copy_writer_plain(copy_writer *w, const char *s, size_t n);

/* A date/time string read by layout l, as a text/CSV field: its ISO 8601
 * text (date_only: the date alone), which the server reads in any
 * DateStyle.  SL_EINVAL or SL_ERANGE (textops.h), SL_ENOMEM. */
int copy_writer_layout(copy_writer *w, const textops_layout *l,
                       const char *s, size_t n, int date_only);

/* The text of a double for a column of this kind (copy_format_number():
 * epoch seconds for dates and timestamps, exact digits otherwise) into
 * buf (64 bytes), its length in *len.  SL_ERANGE for an int8 number
 * beyond 2^53 (copy_number_exact()), SL_EINVAL for epoch seconds
 * outside the timestamp range. */
static inline int copy_number_text(char *buf, double x, int kind, size_t *len);

/* A boolean's text for a column of this kind: "t"/"f" for bool, else
 * "true"/"false" (for text columns, whose value it becomes). */
static inline const char *copy_bool_text(int v, int kind);

/* A double / boolean as a text/CSV field of a column of this kind
 * (copy_number_text(), copy_bool_text(), then copy_writer_plain()):
 * copy_number_text()'s errors, or SL_ENOMEM. */
static inline int copy_writer_number(copy_writer *w, double x, int kind);
static inline int copy_writer_bool(copy_writer *w, int v, int kind);

/* ------------------------------------------------------ the fast table
 *
 * For streams whose columns it serves, sluice.copy compiles a row writer
 * that checks each value's type itself and calls these functions through
 * the FFI, with a copy_writer's address as the first argument (for the
 * functions that take a sbuf, that is the writer's buffer).  Each one
 * writes exactly what the Lua binding writes for the same value, or
 * returns nonzero without writing a complete field; the compiled writer
 * then hands the whole row to the binding, which encodes it again from
 * the row's start and raises the usual error. */

enum copy_fast_takes {
    COPY_FAST_ROW,      /* a row function (begin, end, NULL, text fields) */
    COPY_FAST_NUMBER,   /* (writer, double) */
    COPY_FAST_STRING,   /* (writer, const char *, size_t) */
    COPY_FAST_BOOL,     /* (writer, int) */
    COPY_FAST_LAYOUT,   /* (writer, int column, const char *, size_t): a
                         * string read by the column's layout
                         * (copy_writer.layouts); the column kinds it
                         * serves are those given a layout */
    COPY_FAST_VECTOR,   /* (writer, type, dimension, elements, count):
                         * vector and halfvec from a Lua array copied
                         * into a double buffer, or an FFI float[] */
};

/* What sluice.core.copy_fast_text adds to the kind code of a column
 * given a layout (lib_copy.c, lua/sluice/copy.lua). */
#define COPY_FAST_TEXT_LAYOUT 256

typedef struct copy_fast_fn {
    const char *name;   /* the compiled writer calls it F.<name> */
    const char *sig;    /* its C type, for ffi.cast */
    void (*fn)(void);   /* the function, cast */
    int takes;          /* enum copy_fast_takes: the value it encodes */
    unsigned kinds;     /* binary columns it serves: 1u << COPY_K_* */
} copy_fast_fn;

/* Terminated by a NULL name.  The row functions: begin (fails unless
 * the writer's COPY is open: see copy_writer.pg), end_row, null; for
 * text and CSV, t_null, t_str, t_num and t_bool, whose second argument
 * says whether a delimiter goes first; t_lay (text and CSV, a column
 * with a layout: (writer, sep, column, string, length, kind)). */
extern const copy_fast_fn copy_fast_table[];

/* Whether the value functions of the table serve binary columns of this
 * kind (a stream gets a compiled writer only when they serve all of its
 * columns). */
int copy_fast_serves(int kind);

/* The name of an encoder family ("int4", "text", ..., "other"). */
const char *copy_kind_name(int kind);

/* ------------------------------------------------- inline definitions
 *
 * The fixed-size encoders and the writer's small steps are defined here,
 * as copy.h's put helpers are: the binding calls them once per field, and
 * as calls into another file they cost a few percent of a row.  The fast
 * table takes their addresses (copyenc.c's own copies). */

/* A fixed-size field: its length word, then len bytes of v, big-endian
 * (len 1, 2, 4 or 8). */
static inline int copy_put_fixed(sbuf *b, uint32_t len, uint64_t v)
{
    if (sbuf_reserve(b, 4 + len) != SL_OK)
        return SL_ENOMEM;
    sbuf_put_be32(b, len);
    if (len == 8)
        sbuf_put_be64(b, v);
    else if (len == 4)
        sbuf_put_be32(b, (uint32_t)v);
    else if (len == 2)
        sbuf_put_be16(b, (uint16_t)v);
    else
        sbuf_put_byte(b, (unsigned char)v);
    return SL_OK;
}

static inline int copy_put_null(sbuf *b)
{
    if (sbuf_reserve(b, 4) != SL_OK)
        return SL_ENOMEM;
    sbuf_put_be32(b, 0xFFFFFFFFu);
    return SL_OK;
}

static inline int copy_put_bool(sbuf *b, int v)
{
    return copy_put_fixed(b, 1, v ? 1 : 0);
}

/* An integral double as an int64: 1, or 0 when x is not one. */
static inline int copy_int_of_number(double x, int64_t *v)
{
    /* NaN fails the comparisons; 2^63 itself is out of range */
    if (x >= -9223372036854775808.0 && x < 9223372036854775808.0 &&
        x == floor(x)) {
        *v = (int64_t)x;
        return 1;
    }
    return 0;
}

static inline int copy_put_int_range(sbuf *b, int64_t v, int64_t lo,
                                     int64_t hi, uint32_t len)
{
    if (v < lo || v > hi)
        return SL_ERANGE;
    return copy_put_fixed(b, len, (uint64_t)v);
}

static inline int copy_put_int_number(sbuf *b, double x, int64_t lo,
                                      int64_t hi, uint32_t len)
{
    int64_t v;
    if (!copy_int_of_number(x, &v))
        return SL_EINVAL;
    return copy_put_int_range(b, v, lo, hi, len);
}

static inline int copy_put_int(sbuf *b, int kind, int64_t v)
{
    switch (kind) {
    case COPY_K_INT2:
        return copy_put_int_range(b, v, INT16_MIN, INT16_MAX, 2);
    case COPY_K_INT4:
        return copy_put_int_range(b, v, INT32_MIN, INT32_MAX, 4);
    case COPY_K_OID:
        return copy_put_int_range(b, v, 0, UINT32_MAX, 4);
    default:
        return copy_put_int_range(b, v, INT64_MIN, INT64_MAX, 8);
    }
}

static inline int copy_put_int2(sbuf *b, double x)
{
    return copy_put_int_number(b, x, INT16_MIN, INT16_MAX, 2);
}

static inline int copy_put_int4(sbuf *b, double x)
{
    return copy_put_int_number(b, x, INT32_MIN, INT32_MAX, 4);
}

static inline int copy_put_int8(sbuf *b, double x)
{
    if (!copy_number_exact(x, COPY_K_INT8))
        return SL_ERANGE;
    return copy_put_int_number(b, x, INT64_MIN, INT64_MAX, 8);
}

static inline int copy_put_oid(sbuf *b, double x)
{
    return copy_put_int_number(b, x, 0, UINT32_MAX, 4);
}

static inline int copy_put_float4(sbuf *b, double x)
{
    float f;
    if (!copy_float4_of(copy_float_of_number(x), &f))
        return SL_ERANGE;
    return copy_put_fixed(b, 4, copy_float4_bits(f));
}

static inline int copy_put_float8(sbuf *b, double x)
{
    return copy_put_fixed(b, 8, copy_float8_bits(copy_float_of_number(x)));
}

static inline int copy_put_date(sbuf *b, double secs)
{
    int64_t us;
    int rc = copy_epoch_to_usec(secs, &us);
    if (rc != SL_OK)
        return rc;
    return copy_put_fixed(b, 4, (uint32_t)copy_usec_to_days(us));
}

static inline int copy_put_ts(sbuf *b, double secs)
{
    int64_t us;
    int rc = copy_epoch_to_usec(secs, &us);
    return rc != SL_OK ? rc : copy_put_fixed(b, 8, (uint64_t)us);
}

static inline int copy_writer_row_begin(copy_writer *w)
{
    w->buf.len = w->committed;
    if (w->format != COPY_FMT_BINARY)
        return SL_OK;
    if (sbuf_reserve(&w->buf, 2) != SL_OK)
        return SL_ENOMEM;
    sbuf_put_be16(&w->buf, (uint16_t)w->ncols);
    return SL_OK;
}

static inline int copy_writer_row_end(copy_writer *w)
{
    if (w->format != COPY_FMT_BINARY) {
        if (sbuf_reserve(&w->buf, 1) != SL_OK)
            return SL_ENOMEM;
        sbuf_put_byte(&w->buf, '\n');
    }
    w->rows++;
    w->committed = w->buf.len;
    if (w->row_ends) {
        w->row_ends[*w->row_n] = w->committed;
        if (++*w->row_n == w->row_cap)
            return 1;
    }
    return w->committed >= w->chunk;
}

static inline int copy_writer_null(copy_writer *w)
{
    if (w->format == COPY_FMT_BINARY)
        return copy_put_null(&w->buf);
    if (w->format == COPY_FMT_CSV)
        return SL_OK; /* CSV's NULL is an empty, unquoted field */
    if (sbuf_reserve(&w->buf, 2) != SL_OK)
        return SL_ENOMEM;
    sbuf_put_raw(&w->buf, "\\N", 2);
    return SL_OK;
}

static inline int copy_writer_sep(copy_writer *w)
{
    if (sbuf_reserve(&w->buf, 1) != SL_OK)
        return SL_ENOMEM;
    sbuf_put_byte(&w->buf, w->delim);
    return SL_OK;
}

static inline int copy_writer_plain(copy_writer *w, const char *s, size_t n)
{
    if (w->custom)
        return copy_writer_field(w, s, n);
    if (sbuf_reserve(&w->buf, n) != SL_OK)
        return SL_ENOMEM;
    sbuf_put_raw(&w->buf, s, n);
    return SL_OK;
}

static inline int copy_number_text(char *buf, double x, int kind, size_t *len)
{
    if (!copy_number_exact(x, kind))
        return SL_ERANGE;
    size_t n = copy_format_number(buf, x, kind);
    if (n == 0)
        return SL_EINVAL;
    *len = n;
    return SL_OK;
}

static inline const char *copy_bool_text(int v, int kind)
{
    return kind == COPY_K_BOOL ? (v ? "t" : "f") : (v ? "true" : "false");
}

static inline int copy_writer_number(copy_writer *w, double x, int kind)
{
    char tmp[64];
    size_t n;
    int rc = copy_number_text(tmp, x, kind, &n);
    return rc != SL_OK ? rc : copy_writer_plain(w, tmp, n);
}

static inline int copy_writer_bool(copy_writer *w, int v, int kind)
{
    const char *s = copy_bool_text(v, kind);
    return copy_writer_plain(w, s, strlen(s));
}

#endif
