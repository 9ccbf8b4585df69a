/*
 * copy.h - the COPY core: bytes in PostgreSQL's COPY formats, and the
 * libpq side of a COPY stream.  Knows libpq and bytes, not Lua.
 *
 * Provides:
 * - copy_buf: one growable byte buffer (geometric growth, reused across
 *   flushes; allocation failure is reported, never abort()ed);
 * - field encoders: COPY text escaping, CSV quoting, bytea hex, and the
 *   binary wire forms of numeric, date/timestamp, uuid;
 * - parsers for the strings a script hands to binary columns (integers,
 *   floats, booleans, decimal numerics, ISO-8601 dates/timestamps, uuids);
 * - copy_kind_of(): the encoder family of a PostgreSQL type OID;
 * - the stream: copy_begin() starts a COPY, copy_put() hands a chunk to
 *   libpq (waiting, interruptibly, while the socket is full), copy_end()
 *   sends CopyDone/CopyFail, copy_drain() discards what the server still
 *   says; copy_out_next() reads one row of a COPY TO STDOUT and
 *   copy_unescape_text() decodes a text-format field in place.
 *
 * Uses: libpq, poll(2), pgconn.h (waiting, cancel), interrupt.h.
 *
 * Every function returns COPY_OK (0) or a negative COPY_E* code; none
 * prints, raises or exits.
 */
#ifndef SLUICE_COPY_H
#define SLUICE_COPY_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum {
    COPY_OK = 0,
    COPY_ENOMEM = -1,      /* out of memory */
    COPY_ENUL = -2,        /* a NUL byte where text is expected */
    COPY_EINVAL = -3,      /* text that does not parse */
    COPY_ERANGE = -4,      /* parses, but out of the type's range */
    COPY_EBROKEN = -5,     /* the connection failed (PQerrorMessage) */
    COPY_EINTR = -6,       /* an interrupt (Ctrl-C) is pending */
    COPY_EFAIL = -7,       /* the server refused (an error PGresult) */
    COPY_ENOZONE = -8,     /* a timestamptz string without a UTC offset,
                            * and the session TimeZone is not UTC */
    COPY_DONE = 1,         /* copy_out_next: no more rows */
};

enum copy_format { COPY_FMT_TEXT, COPY_FMT_CSV, COPY_FMT_BINARY };

/* Encoder families.  Every type gets one; COPY_K_OTHER has no binary
 * encoder (its values travel as text, the server parses them). */
enum copy_kind {
    COPY_K_TEXT,        /* text, varchar, bpchar, name, citext-like */
    COPY_K_BOOL,
    COPY_K_INT2,
    COPY_K_INT4,
    COPY_K_INT8,
    COPY_K_OID,
    COPY_K_FLOAT4,
    COPY_K_FLOAT8,
    COPY_K_NUMERIC,
    COPY_K_BYTEA,
    COPY_K_DATE,
    COPY_K_TIMESTAMP,
    COPY_K_TIMESTAMPTZ,
    COPY_K_JSON,
    COPY_K_JSONB,
    COPY_K_UUID,
    COPY_K_ARRAY,       /* set by the caller: element kind is separate */
    COPY_K_OTHER,
};

/* The kind of scalar base type `oid` (a domain must be resolved to its
 * base type first).  Never fails: unknown types are COPY_K_OTHER. */
int copy_kind_of(Oid oid);

/* Nonzero when values of `kind` can be encoded in binary format. */
int copy_kind_has_binary(int kind);

/* ------------------------------------------------------------- buffer */

typedef struct copy_buf {
    char *data;   /* owned, malloc'd; NULL until the first growth */
    size_t len;   /* bytes in use */
    size_t cap;   /* bytes allocated */
} copy_buf;

/* Make room for `extra` more bytes after len, growing geometrically
 * (doubling, at least 4 KiB).  Returns COPY_OK or COPY_ENOMEM (the
 * buffer is unchanged then). */
int copy_buf_grow(copy_buf *b, size_t extra);

/* Free the storage; the buffer is empty and reusable afterwards. */
void copy_buf_free(copy_buf *b);

static inline int copy_buf_reserve(copy_buf *b, size_t extra)
{
    return b->cap - b->len >= extra ? COPY_OK : copy_buf_grow(b, extra);
}

/* The put_* helpers need room reserved beforehand. */
static inline void copy_put_raw(copy_buf *b, const void *p, size_t n)
{
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static inline void copy_put_byte(copy_buf *b, int c)
{
    b->data[b->len++] = (char)c;
}

static inline void copy_put_be16(copy_buf *b, uint16_t v)
{
    unsigned char *p = (unsigned char *)b->data + b->len;
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
    b->len += 2;
}

static inline void copy_put_be32(copy_buf *b, uint32_t v)
{
    unsigned char *p = (unsigned char *)b->data + b->len;
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
    b->len += 4;
}

static inline void copy_put_be64(copy_buf *b, uint64_t v)
{
    copy_put_be32(b, (uint32_t)(v >> 32));
    copy_put_be32(b, (uint32_t)v);
}

/* Overwrite 4 bytes at offset `at` (a length placeholder). */
static inline void copy_patch_be32(copy_buf *b, size_t at, uint32_t v)
{
    unsigned char *p = (unsigned char *)b->data + at;
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* ------------------------------------------------------ field encoders */

/* The 19-byte header and the 2-byte trailer of a binary COPY stream. */
int copy_put_binary_header(copy_buf *b);
int copy_put_binary_trailer(copy_buf *b);

/* Append s[0..n) escaped for COPY text format (backslash, newline, CR,
 * tab and the other C escapes; everything else as is).  COPY_ENUL when s
 * holds a NUL byte (nothing of s is kept then). */
int copy_put_text_escaped(copy_buf *b, const char *s, size_t n);

/* Append s[0..n) as one CSV field: quoted (quotes doubled) when it holds
 * a quote, comma, CR or LF, is empty (so it is not NULL) or is exactly
 * "\." (the end-of-data marker).  COPY_ENUL as above. */
int copy_put_csv_field(copy_buf *b, const char *s, size_t n);

/* The two above for a delimiter other than tab / comma (file sinks, see
 * lib_sink.c): in text format `delim` inside s is written \<delim>; in
 * CSV it forces quoting, and so does force_quote (a value that equals the
 * NULL string must be quoted to stay a value).  delim must be a single
 * byte that is not NUL, CR, LF, backslash or the quote; same results and
 * errors as copy_put_text_escaped() / copy_put_csv_field(). */
int copy_put_text_escaped_delim(copy_buf *b, const char *s, size_t n,
                                int delim);
int copy_put_csv_field_delim(copy_buf *b, const char *s, size_t n,
                             int delim, int force_quote);

/* Append the hex form of bytea bytes ("\x" then 2 hex digits a byte),
 * unescaped: the caller runs it through the text/CSV field writer. */
int copy_put_bytea_hex(copy_buf *b, const char *s, size_t n);

/* Append the binary body (no length word) of the numeric written as
 * decimal text s[0..n): [+-]digits[.digits][e[+-]digits], NaN,
 * [+-]Infinity/inf, surrounding spaces allowed.  COPY_EINVAL if it does
 * not parse, COPY_ERANGE if beyond what numeric holds. */
int copy_put_numeric_text(copy_buf *b, const char *s, size_t n);

/* Exact decimal text of a double rounded to `digits` significant digits
 * (17 round-trips any double, 9 any float), trailing zeros dropped, in
 * fixed notation: what printf("%.*g") gives, without printf's cost.  It
 * covers finite 1e-6 <= |x| < 1e17 with 128-bit integer arithmetic and
 * returns 0 when it cannot (outside that range, or when `digits` is less
 * than the digits of x's integer part): the caller then uses printf.
 * buf needs 48 bytes; digits must be 1 to 17. */
size_t copy_format_double(char *buf, double x, int digits);

/* Append s[0..n) as a double-quoted element of an array literal
 * ({"a","b\\"c"}): backslash and double quote are escaped.  COPY_ENUL
 * when s holds a NUL byte (nothing is kept then).  Shared by the batch
 * and pipeline parameter encoders (lib_params.c). */
int copy_put_array_quoted(copy_buf *b, const char *s, size_t n);

/* Text of the Lua number x for a value of encoder family `kind`: epoch
 * seconds become "YYYY-MM-DD ..." for date, timestamp and timestamptz
 * (UTC, "+00"); float4/float8 non-integers get 9/17 significant digits
 * (exact, and much faster than the shortest form); everything else the
 * shortest exact text (numfmt_double).  buf needs 64 bytes.  Returns the
 * length, or 0 when x is not a valid timestamp for a date/time kind. */
size_t copy_format_number(char *buf, double x, int kind);

/* Whether the Lua number x stands for a value of encoder family `kind`
 * without loss.  False only for int8 given a number beyond +-2^53: there
 * doubles no longer hold every integer (1e18 + 1 is already 1e18), so the
 * value the caller meant may have been rounded; such integers must come
 * as int64 cdata or strings.  COPY_INT8_EXACT_WHAT is the text the
 * encoders raise with. */
int copy_number_exact(double x, int kind);
#define COPY_INT8_EXACT_WHAT                                            \
    "an int64 cdata (e.g. 1000000000000000001LL) or a string for an "   \
    "integer beyond +-2^53 (a Lua number that large may have been "     \
    "rounded)"

/* ------------------------------------------------------------- parsers */

/* Whole-string parses (surrounding spaces allowed, as PostgreSQL's own
 * input functions do).  COPY_EINVAL if s is not of the form,
 * COPY_ERANGE if it does not fit. */
int copy_parse_int64(const char *s, size_t n, int64_t *out);
int copy_parse_double(const char *s, size_t n, double *out);
/* A float4in string (the same forms as copy_parse_double) as a float,
 * rounded once as the server's strtof rounds it, not through a double.
 * COPY_ERANGE when it overflows or underflows to zero. */
int copy_parse_float(const char *s, size_t n, float *out);
int copy_parse_bool(const char *s, size_t n, int *out);
int copy_parse_uuid(const char *s, size_t n, unsigned char out[16]);

/* PostgreSQL's own infinities for dates and timestamps. */
#define COPY_TS_NOBEGIN INT64_MIN
#define COPY_TS_NOEND INT64_MAX
#define COPY_DATE_NOBEGIN INT32_MIN
#define COPY_DATE_NOEND INT32_MAX

/* Parse an ISO-8601 date or timestamp: YYYY-MM-DD, optionally followed by
 * 'T' or ' ' and hh:mm[:ss[.fraction]], optionally followed by Z, UTC or
 * an offset +hh, +hhmm, +hh:mm[:ss]; or infinity, -infinity, epoch.
 * *usec gets microseconds since 2000-01-01 00:00 of the wall-clock time
 * (offset NOT applied), *offset_sec the offset, *has_offset whether one
 * was given ("epoch" is UTC).  Each string gets the value the server's
 * input functions give it, or is refused: the fraction is rounded to the
 * microsecond as rint(strtod(".fraction") * 1e6), 24:00:00 and the leap
 * second 23:59:60 are the next day's midnight, and a time past 24:00:00
 * is refused.  Years before 1 are not accepted (COPY_EINVAL); dates from
 * 294277-01-01 on are beyond PostgreSQL's timestamp range (COPY_ERANGE). */
int copy_parse_timestamp(const char *s, size_t n, int64_t *usec,
                         int32_t *offset_sec, int *has_offset);

/* The same forms as copy_parse_timestamp, as a date: *days gets days
 * since 2000-01-01 of the date written (time and offset are checked and
 * ignored, as date_in does: 24:00 and 23:59:60 stay on that day), or
 * COPY_DATE_NOBEGIN/NOEND.
 * Counts days directly, so every year the parser reads (up to 999999)
 * fits PostgreSQL's date range (to 5874897 AD).  COPY_EINVAL if s is not
 * of the form, COPY_ERANGE beyond the date range. */
int copy_parse_date(const char *s, size_t n, int32_t *days);

/* Whether a pg timestamp (microseconds since 2000-01-01) is within
 * PostgreSQL's timestamp range, 4714-11-24 BC up to 294277-01-01 AD;
 * the infinities count as in range. */
int copy_ts_in_range(int64_t usec);

/* Unix epoch seconds (fractions rounded to the microsecond) to
 * microseconds since 2000-01-01.  COPY_EINVAL for NaN, infinities map to
 * COPY_TS_NOBEGIN/NOEND, COPY_ERANGE beyond int64 microseconds. */
int copy_epoch_to_usec(double secs, int64_t *usec);

/* Days since 2000-01-01 of the UTC day that holds pg timestamp `usec`
 * (infinities kept). */
int32_t copy_usec_to_days(int64_t usec);

/* Format a pg timestamp (microseconds since 2000-01-01) as ISO text:
 * "YYYY-MM-DD HH:MM:SS[.ffffff]", plus "+00" when with_tz, " BC" for
 * years before 1, or "infinity"/"-infinity".  buf needs 48 bytes.
 * Returns the length. */
size_t copy_format_timestamp(char *buf, int64_t usec, int with_tz);

/* Format days since 2000-01-01 as "YYYY-MM-DD" (same rules).  buf needs
 * 32 bytes.  Returns the length. */
size_t copy_format_date(char *buf, int32_t days);

/* --------------------------------------------------------------- stream */

/* Send `sql` (a COPY statement) and wait for the server to enter the COPY
 * (PGRES_COPY_IN or PGRES_COPY_OUT, whichever `expect` is).  On COPY_OK
 * the COPY is open.  On COPY_EFAIL *err holds the server's error result
 * (the caller owns it; every other result was drained).  COPY_EBROKEN
 * when the connection failed.  A pending interrupt sends a cancel request
 * and keeps waiting, so the answer is then the cancellation error;
 * *interrupted tells the caller to consume the interrupt. */
int copy_begin(PGconn *pg, const char *sql, ExecStatusType expect,
               PGresult **err, int *interrupted);

/* Hand data[0..n) to libpq in pieces of at most 256 KiB.  Before each
 * piece it waits until libpq has written the previous one to the kernel,
 * so libpq holds at most one piece; the last piece goes out while the
 * caller encodes its next chunk (copy_end() flushes it).  Needs the
 * connection in nonblocking mode (copy_begin() sets it).  Reads input
 * while waiting, so a connection that died is seen at once.  Returns
 * COPY_OK, COPY_EBROKEN, or COPY_EINTR when interruptible and an
 * interrupt is pending (part of the data may have been sent: end the COPY
 * with an error message then). */
int copy_put(PGconn *pg, const char *data, size_t n, int interruptible);

/* End the COPY IN: CopyDone when errmsg is NULL (the rows are kept if the
 * server agrees), CopyFail(errmsg) otherwise (the server rolls the COPY
 * back).  Flushes, then puts the connection back in blocking mode.
 * Returns COPY_OK or COPY_EBROKEN.  Not interruptible: it only waits for
 * the server to read what was already sent. */
int copy_end(PGconn *pg, const char *errmsg);

/* Read and discard every remaining result (and any COPY data) until the
 * connection is idle again; ends a still-open COPY IN with `errmsg`.
 * Never fails loudly; returns COPY_EBROKEN if the connection broke. */
int copy_drain(PGconn *pg, const char *errmsg);

/* Next row of a COPY OUT: *row (libpq memory, the caller PQfreemem()s it)
 * and *len.  Returns COPY_OK, COPY_DONE (then collect the final result
 * with PQgetResult), COPY_EBROKEN, or COPY_EINTR when interruptible and
 * an interrupt is pending. */
int copy_out_next(PGconn *pg, char **row, size_t *len, int interruptible);

/* Decode one COPY text field in place (\\, \t, \n, \r, \b, \f, \v, octal
 * \NNN, hex \xHH, and \c for any other c).  Returns the decoded length.
 * The caller recognises the NULL marker \N beforehand. */
size_t copy_unescape_text(char *s, size_t n);

#endif
