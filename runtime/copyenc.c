/*
 * copyenc.c - one encoder per column type, the row writer, and the table
 * of the fast path (see copyenc.h).
 *
 * The binary forms follow the server's typsend/typreceive functions (see
 * copy.c); what a value may be (an integral double, a string the input
 * function reads) follows what the server accepts in text COPY, so a row
 * loads the same in either format.
 *
 * Caveats:
 * - Each encoder checks its value before it reserves room, so the one
 *   error a valid value can meet is SL_ENOMEM.
 * - The fast table names most encoders directly although the compiled
 *   row writer passes a copy_writer: the writer begins with its buffer
 *   (checked below), so its address is a valid sbuf pointer.  The
 *   few that need the writer's state (the session's DateStyle and zone,
 *   the delimiter) are the fast_* wrappers here.
 */
#include "copyenc.h"
#include "numfmt.h"
#include "vecenc.h"

#include <stddef.h>

_Static_assert(offsetof(copy_writer, buf) == 0,
               "the fast table passes a writer where a sbuf is taken");

/* ------------------------------------------------ values as strings
 *
 * The encoders of values given as text; the fixed-size encoders of
 * numbers and flags are inline in copyenc.h. */

int copy_put_bool_str(sbuf *b, const char *s, size_t n)
{
    int v;
    if (copy_parse_bool(s, n, &v) != SL_OK)
        return SL_EINVAL;
    return copy_put_bool(b, v);
}

int copy_put_int_str(sbuf *b, int kind, const char *s, size_t n)
{
    int64_t v;
    int rc = copy_parse_int64(s, n, &v);
    return rc != SL_OK ? rc : copy_put_int(b, kind, v);
}

int copy_put_float4_str(sbuf *b, const char *s, size_t n)
{
    float f;
    int rc = copy_parse_float(s, n, &f);
    return rc != SL_OK ? rc : copy_put_fixed(b, 4, copy_float4_bits(f));
}

int copy_put_float8_str(sbuf *b, const char *s, size_t n)
{
    double x;
    int rc = copy_parse_double(s, n, &x);
    return rc != SL_OK ? rc : copy_put_fixed(b, 8, copy_float8_bits(x));
}

/* ------------------------------------------------------- text, bytes */

int copy_put_bytes(sbuf *b, const char *s, size_t n)
{
    if (n > INT32_MAX)
        return SL_ERANGE;
    if (sbuf_reserve(b, 4 + n) != SL_OK)
        return SL_ENOMEM;
    sbuf_put_be32(b, (uint32_t)n);
    sbuf_put_raw(b, s, n);
    return SL_OK;
}

int copy_put_text(sbuf *b, const char *s, size_t n)
{
    if (memchr(s, '\0', n))
        return SL_ENUL;
    return copy_put_bytes(b, s, n);
}

int copy_put_json(sbuf *b, const char *s, size_t n, int jsonb)
{
    if (!jsonb)
        return copy_put_bytes(b, s, n);
    if (n >= INT32_MAX)
        return SL_ERANGE;
    if (sbuf_reserve(b, 5 + n) != SL_OK)
        return SL_ENOMEM;
    sbuf_put_be32(b, (uint32_t)n + 1);
    sbuf_put_byte(b, 1); /* jsonb binary format version */
    sbuf_put_raw(b, s, n);
    return SL_OK;
}

int copy_put_uuid_str(sbuf *b, const char *s, size_t n)
{
    unsigned char u[16];
    if (copy_parse_uuid(s, n, u) != SL_OK)
        return SL_EINVAL;
    if (sbuf_reserve(b, 20) != SL_OK)
        return SL_ENOMEM;
    sbuf_put_be32(b, 16);
    sbuf_put_raw(b, u, 16);
    return SL_OK;
}

/* ------------------------------------------------------------ numeric */

int copy_put_numeric_str(sbuf *b, const char *s, size_t n)
{
    if (sbuf_reserve(b, 4) != SL_OK)
        return SL_ENOMEM;
    size_t start = b->len;
    sbuf_put_be32(b, 0); /* the length, patched once it is known */
    int rc = copy_put_numeric_text(b, s, n);
    if (rc == SL_OK)
        sbuf_patch_be32(b, start, (uint32_t)(b->len - start - 4));
    return rc;
}

int copy_put_numeric(sbuf *b, double x)
{
    char tmp[NUMFMT_BUFSIZE];
    return copy_put_numeric_str(b, tmp, numfmt_double(tmp, x));
}

/* ----------------------------------------------------- dates and times */

int copy_put_date_str(sbuf *b, const char *s, size_t n, int order)
{
    dt_fields f;
    int32_t days = 0;
    int rc = dt_parse(s, n, order, 1, &f);
    if (rc == SL_OK)
        rc = dt_date(&f, &days);
    return rc != SL_OK ? rc : copy_put_fixed(b, 4, (uint32_t)days);
}

int copy_put_ts_str(sbuf *b, const char *s, size_t n, int tz, int order,
                    const tz_rules *zone)
{
    dt_fields f;
    int64_t us = 0;
    int rc = dt_parse(s, n, order, 0, &f);
    if (rc == SL_OK)
        rc = dt_timestamp(&f, zone, tz, &us);
    return rc != SL_OK ? rc : copy_put_fixed(b, 8, (uint64_t)us);
}

int copy_put_date_layout(sbuf *b, const textops_layout *l, const char *s,
                         size_t n)
{
    dt_fields f;
    int32_t days = 0;
    int rc = textops_parse(l, s, n, &f);
    if (rc == SL_OK)
        rc = dt_date(&f, &days);
    return rc != SL_OK ? rc : copy_put_fixed(b, 4, (uint32_t)days);
}

int copy_put_ts_layout(sbuf *b, const textops_layout *l, const char *s,
                       size_t n, int tz, const tz_rules *zone)
{
    dt_fields f;
    int64_t us = 0;
    int rc = textops_parse(l, s, n, &f);
    if (rc == SL_OK)
        rc = dt_timestamp(&f, zone, tz, &us);
    return rc != SL_OK ? rc : copy_put_fixed(b, 8, (uint64_t)us);
}

/* --------------------------------------------------------- the writer */

int copy_writer_layout(copy_writer *w, const textops_layout *l,
                       const char *s, size_t n, int date_only)
{
    char iso[TEXTOPS_ISO_MAX];
    int len = textops_iso_of(l, s, n, date_only, iso);
    return len < 0 ? len : copy_writer_plain(w, iso, (size_t)len);
}

int copy_writer_field(copy_writer *w, const char *s, size_t n)
{
    sbuf *b = &w->buf;
    if (w->custom)
        return w->format == COPY_FMT_CSV
                   ? copy_put_csv_field_delim(b, s, n, w->delim, 0)
                   : copy_put_text_escaped_delim(b, s, n, w->delim);
    return w->format == COPY_FMT_CSV ? copy_put_csv_field(b, s, n)
                                     : copy_put_text_escaped(b, s, n);
}

/* ------------------------------------------------------ the fast table */

/* Rows only while the stream's COPY to the server is open. */
static int fast_begin(copy_writer *w)
{
    if (!w->pg || !*w->pg)
        return SL_EBROKEN;
    return copy_writer_row_begin(w);
}

/* Reject mode: the index of the next row in its chunk (where its values
 * are kept); -1 otherwise. */
static int fast_row_index(copy_writer *w)
{
    return w->row_n ? (int)*w->row_n : -1;
}

static int fast_date_str(copy_writer *w, const char *s, size_t n)
{
    return copy_put_date_str(&w->buf, s, n, w->dt_order);
}

static int fast_ts_str(copy_writer *w, const char *s, size_t n)
{
    return copy_put_ts_str(&w->buf, s, n, 0, w->dt_order, w->zone);
}

static int fast_tstz_str(copy_writer *w, const char *s, size_t n)
{
    return copy_put_ts_str(&w->buf, s, n, 1, w->dt_order, w->zone);
}

/* Columns read by a layout: col is the column's index (0-based). */
static int fast_date_lay(copy_writer *w, int col, const char *s, size_t n)
{
    return copy_put_date_layout(&w->buf, &w->layouts[col], s, n);
}

static int fast_ts_lay(copy_writer *w, int col, const char *s, size_t n)
{
    return copy_put_ts_layout(&w->buf, &w->layouts[col], s, n, 0, w->zone);
}

static int fast_tstz_lay(copy_writer *w, int col, const char *s, size_t n)
{
    return copy_put_ts_layout(&w->buf, &w->layouts[col], s, n, 1, w->zone);
}

/* Text and CSV: sep says whether a delimiter goes before the field. */
/* vector and halfvec columns (vecenc.h); a refusal makes the C path
 * encode the row again and name the element */
static int fast_vec_f64(copy_writer *w, int type, int typmod,
                        const double *x, size_t n)
{
    size_t bad;
    return vec_put_f64(&w->buf, type, x, n, typmod, &bad);
}

static int fast_vec_f32(copy_writer *w, int type, int typmod,
                        const float *x, size_t n)
{
    size_t bad;
    return vec_put_f32(&w->buf, type, x, n, typmod, &bad);
}

/* A one-dimensional real[] (f4) or float8[] of n numbers (element type
 * oid): bin_array's bytes for a Lua array of plain numbers; SL_ERANGE (a
 * real overflows) leaves nothing, and the C path says which element. */
static int fast_arr_f64(copy_writer *w, int f4, unsigned oid,
                        const double *x, size_t n)
{
    sbuf *b = &w->buf;
    size_t ew = f4 ? 8 : 12;
    if (n > (INT32_MAX - 24) / ew)
        return SL_ERANGE;
    if (sbuf_reserve(b, 24 + n * ew) != SL_OK)
        return SL_ENOMEM;
    size_t start = b->len;
    sbuf_put_be32(b, 0); /* length, patched below */
    sbuf_put_be32(b, n ? 1 : 0);
    sbuf_put_be32(b, 0); /* no NULL */
    sbuf_put_be32(b, oid);
    if (n) {
        sbuf_put_be32(b, (uint32_t)n);
        sbuf_put_be32(b, 1);
    }
    for (size_t i = 0; i < n; i++) {
        double v = copy_float_of_number(x[i]);
        if (f4) {
            float f;
            if (!copy_float4_of(v, &f)) {
                b->len = start;
                return SL_ERANGE;
            }
            sbuf_put_be32(b, 4);
            sbuf_put_be32(b, copy_float4_bits(f));
        } else {
            sbuf_put_be32(b, 8);
            sbuf_put_be64(b, copy_float8_bits(v));
        }
    }
    sbuf_patch_be32(b, start, (uint32_t)(b->len - start - 4));
    return SL_OK;
}

static inline int fast_sep(copy_writer *w, int sep)
{
    return sep ? copy_writer_sep(w) : SL_OK;
}

static int fast_t_null(copy_writer *w, int sep)
{
    int rc = fast_sep(w, sep);
    return rc != SL_OK ? rc : copy_writer_null(w);
}

static int fast_t_str(copy_writer *w, int sep, const char *s, size_t n)
{
    int rc = fast_sep(w, sep);
    return rc != SL_OK ? rc : copy_writer_field(w, s, n);
}

static int fast_t_num(copy_writer *w, int sep, double x, int kind)
{
    int rc = fast_sep(w, sep);
    return rc != SL_OK ? rc : copy_writer_number(w, x, kind);
}

static int fast_t_lay(copy_writer *w, int sep, int col, const char *s,
                      size_t n, int kind)
{
    int rc = fast_sep(w, sep);
    return rc != SL_OK ? rc
                       : copy_writer_layout(w, &w->layouts[col], s, n,
                                            kind == COPY_K_DATE);
}

static int fast_t_bool(copy_writer *w, int sep, int v, int kind)
{
    int rc = fast_sep(w, sep);
    return rc != SL_OK ? rc : copy_writer_bool(w, v, kind);
}

#define FN(f) ((void (*)(void))(f))
#define K(kind) (1u << COPY_K_##kind)
#define ROW COPY_FAST_ROW, 0
#define SIG_ROW "int (*)(void *)"
#define SIG_NUM "int (*)(void *, double)"
#define SIG_STR "int (*)(void *, const char *, size_t)"
#define SIG_BOOL "int (*)(void *, int)"
#define SIG_LAY "int (*)(void *, int, const char *, size_t)"
#define SIG_VEC(t) "int (*)(void *, int, int, const " t " *, size_t)"

const copy_fast_fn copy_fast_table[] = {
    { "begin", SIG_ROW, FN(fast_begin), ROW },
    { "end_row", SIG_ROW, FN(copy_writer_row_end), ROW },
    { "row_index", SIG_ROW, FN(fast_row_index), ROW },
    { "null", SIG_ROW, FN(copy_writer_null), ROW },
    { "t_null", "int (*)(void *, int)", FN(fast_t_null), ROW },
    { "t_str", "int (*)(void *, int, const char *, size_t)", FN(fast_t_str),
      ROW },
    { "t_num", "int (*)(void *, int, double, int)", FN(fast_t_num), ROW },
    { "t_bool", "int (*)(void *, int, int, int)", FN(fast_t_bool), ROW },
    { "t_lay", "int (*)(void *, int, int, const char *, size_t, int)",
      FN(fast_t_lay), ROW },
    /* binary values: name, C type, encoder, the value it takes, kinds */
    { "int2", SIG_NUM, FN(copy_put_int2), COPY_FAST_NUMBER, K(INT2) },
    { "int4", SIG_NUM, FN(copy_put_int4), COPY_FAST_NUMBER, K(INT4) },
    { "int8", SIG_NUM, FN(copy_put_int8), COPY_FAST_NUMBER, K(INT8) },
    { "float4", SIG_NUM, FN(copy_put_float4), COPY_FAST_NUMBER, K(FLOAT4) },
    { "float8", SIG_NUM, FN(copy_put_float8), COPY_FAST_NUMBER, K(FLOAT8) },
    { "bool", SIG_BOOL, FN(copy_put_bool), COPY_FAST_BOOL, K(BOOL) },
    { "text", SIG_STR, FN(copy_put_text), COPY_FAST_STRING, K(TEXT) },
    { "numeric", SIG_NUM, FN(copy_put_numeric), COPY_FAST_NUMBER,
      K(NUMERIC) },
    { "numeric_str", SIG_STR, FN(copy_put_numeric_str), COPY_FAST_STRING,
      K(NUMERIC) },
    { "date", SIG_NUM, FN(copy_put_date), COPY_FAST_NUMBER, K(DATE) },
    { "date_str", SIG_STR, FN(fast_date_str), COPY_FAST_STRING,
      K(DATE) },
    { "ts", SIG_NUM, FN(copy_put_ts), COPY_FAST_NUMBER,
      K(TIMESTAMP) | K(TIMESTAMPTZ) },
    { "ts_str", SIG_STR, FN(fast_ts_str), COPY_FAST_STRING, K(TIMESTAMP) },
    { "tstz_str", SIG_STR, FN(fast_tstz_str), COPY_FAST_STRING,
      K(TIMESTAMPTZ) },
    /* columns read by a layout (db:copy's opts.layouts) */
    { "date_lay", SIG_LAY, FN(fast_date_lay), COPY_FAST_LAYOUT, K(DATE) },
    { "ts_lay", SIG_LAY, FN(fast_ts_lay), COPY_FAST_LAYOUT, K(TIMESTAMP) },
    { "tstz_lay", SIG_LAY, FN(fast_tstz_lay), COPY_FAST_LAYOUT,
      K(TIMESTAMPTZ) },
    /* vector and halfvec: (writer, enum vec_type, the column's
     * dimension or -1, the elements, their count) */
    { "vec_f64", SIG_VEC("double"), FN(fast_vec_f64), COPY_FAST_VECTOR,
      K(VECTOR) | K(HALFVEC) },
    { "vec_f32", SIG_VEC("float"), FN(fast_vec_f32), COPY_FAST_VECTOR,
      K(VECTOR) | K(HALFVEC) },
    /* one-dimensional real[] and float8[] of numbers: (writer, is real,
     * element type, the elements, their count); named by sluice.core.
     * copy_fast for such columns, no column kind of its own */
    { "arr_f64", "int (*)(void *, int, unsigned int, const double *, size_t)",
      FN(fast_arr_f64), COPY_FAST_VECTOR, 0 },
    { NULL, NULL, NULL, 0, 0 },
};

int copy_fast_serves(int kind)
{
    if (kind < 0 || kind >= 32)
        return 0;
    for (const copy_fast_fn *f = copy_fast_table; f->name; f++)
        if (f->takes != COPY_FAST_ROW && f->takes != COPY_FAST_LAYOUT &&
            (f->kinds & (1u << kind)))
            return 1;
    return 0;
}

static const char *const kind_names[] = {
    [COPY_K_TEXT] = "text", [COPY_K_BOOL] = "bool", [COPY_K_INT2] = "int2",
    [COPY_K_INT4] = "int4", [COPY_K_INT8] = "int8", [COPY_K_OID] = "oid",
    [COPY_K_FLOAT4] = "float4", [COPY_K_FLOAT8] = "float8",
    [COPY_K_NUMERIC] = "numeric", [COPY_K_BYTEA] = "bytea",
    [COPY_K_DATE] = "date", [COPY_K_TIMESTAMP] = "timestamp",
    [COPY_K_TIMESTAMPTZ] = "timestamptz", [COPY_K_JSON] = "json",
    [COPY_K_JSONB] = "jsonb", [COPY_K_UUID] = "uuid",
    [COPY_K_BIT] = "bit", [COPY_K_VARBIT] = "varbit",
    [COPY_K_VECTOR] = "vector", [COPY_K_HALFVEC] = "halfvec",
    [COPY_K_SPARSEVEC] = "sparsevec",
    [COPY_K_ARRAY] = "array", [COPY_K_OTHER] = "other",
};

const char *copy_kind_name(int kind)
{
    if (kind < 0 || kind > COPY_K_OTHER)
        return "other";
    return kind_names[kind];
}
