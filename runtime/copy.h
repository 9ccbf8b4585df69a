/*
 * copy.h - the COPY core: bytes in PostgreSQL's COPY formats, and the
 * libpq side of a COPY stream.  Knows libpq and bytes, not Lua.
 *
 * Provides:
 * - field encoders: COPY text escaping, CSV quoting, bytea hex, the
 *   binary header and trailer, the text of a number for a column;
 * - copy_kind_of(): the encoder family of a PostgreSQL type OID;
 * - the stream: copy_begin() starts a COPY, copy_put() hands a chunk to
 *   libpq (waiting, interruptibly, while the socket is full), copy_end()
 *   sends CopyDone/CopyFail, copy_drain() discards what the server still
 *   says; copy_out_next() reads one row of a COPY TO STDOUT and
 *   copy_unescape_text() decodes a text-format field in place.
 *
 * The strings a script hands to binary columns (integers, floats,
 * booleans, numerics, dates and timestamps, uuids) are read by
 * copyparse.h; one encoder per type on top of both is copyenc.h.
 *
 * Uses: libpq, poll(2), pgconn.h (waiting, cancel), interrupt.h,
 * copyparse.h (dates for copy_format_number), numfmt.h.
 *
 * Every function returns SL_OK (0) or a negative SL_E* code; none
 * prints, raises or exits.
 */
#ifndef SLUICE_COPY_H
#define SLUICE_COPY_H

#include "sbuf.h"

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>


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
    COPY_K_BIT,         /* bit(n) */
    COPY_K_VARBIT,      /* bit varying(n) */
    COPY_K_VECTOR,      /* pgvector's types (vecenc.h): an extension's, */
    COPY_K_HALFVEC,     /* so set by the caller from the catalog (the */
    COPY_K_SPARSEVEC,   /* type's name), never from a fixed OID */
    COPY_K_ARRAY,       /* set by the caller: element kind is separate */
    COPY_K_OTHER,
};

/* The kind of scalar base type `oid` (a domain must be resolved to its
 * base type first).  Never fails: unknown types are COPY_K_OTHER. */
int copy_kind_of(Oid oid);

/* Nonzero when values of `kind` can be encoded in binary format. */
int copy_kind_has_binary(int kind);


/* ------------------------------------------------------ field encoders */

/* The 19-byte header and the 2-byte trailer of a binary COPY stream. */
int copy_put_binary_header(sbuf *b);
int copy_put_binary_trailer(sbuf *b);

/* Append s[0..n) escaped for COPY text format (backslash, newline, CR,
 * tab and the other C escapes; everything else as is).  SL_ENUL when s
 * holds a NUL byte (nothing of s is kept then). */
int copy_put_text_escaped(sbuf *b, const char *s, size_t n);

/* Append s[0..n) as one CSV field: quoted (quotes doubled) when it holds
 * a quote, comma, CR or LF, is empty (so it is not NULL) or is exactly
 * "\." (the end-of-data marker).  SL_ENUL as above. */
int copy_put_csv_field(sbuf *b, const char *s, size_t n);

/* The two above for a delimiter other than tab / comma (file sinks, see
 * lib_sink.c): in text format `delim` inside s is written \<delim>; in
 * CSV it forces quoting, and so does force_quote (a value that equals the
 * NULL string must be quoted to stay a value).  delim must be a single
 * byte that is not NUL, CR, LF, backslash or the quote; same results and
 * errors as copy_put_text_escaped() / copy_put_csv_field(). */
int copy_put_text_escaped_delim(sbuf *b, const char *s, size_t n,
                                int delim);
int copy_put_csv_field_delim(sbuf *b, const char *s, size_t n,
                             int delim, int force_quote);

/* Append the hex form of bytea bytes ("\x" then 2 hex digits a byte),
 * unescaped: the caller runs it through the text/CSV field writer. */
int copy_put_bytea_hex(sbuf *b, const char *s, size_t n);

/* Exact decimal text of a double rounded to `digits` significant digits
 * (17 round-trips any double, 9 any float), trailing zeros dropped, in
 * fixed notation: what printf("%.*g") gives, without printf's cost.  It
 * covers finite 1e-6 <= |x| < 1e17 with 128-bit integer arithmetic and
 * returns 0 when it cannot (outside that range, or when `digits` is less
 * than the digits of x's integer part): the caller then uses printf.
 * buf needs 48 bytes; digits must be 1 to 17. */
size_t copy_format_double(char *buf, double x, int digits);

/* Append s[0..n) as a double-quoted element of an array literal
 * ({"a","b\\"c"}): backslash and double quote are escaped.  SL_ENUL
 * when s holds a NUL byte (nothing is kept then).  Shared by the batch
 * and pipeline parameter encoders (lib_params.c). */
int copy_put_array_quoted(sbuf *b, const char *s, size_t n);

/* Text of the Lua number x for a value of encoder family `kind`: epoch
 * seconds become "YYYY-MM-DD ..." for date, timestamp and timestamptz
 * (UTC, "+00"); float4/float8 non-integers get 9/17 significant digits
 * (exact, and much faster than the shortest form); everything else the
 * shortest exact text (numfmt_double).  buf needs 64 bytes.  Returns the
 * length, or 0 when x is not a valid timestamp for a date/time kind. */
size_t copy_format_number(char *buf, double x, int kind);

/* Whether the Lua number x stands for a value of encoder family `kind`
 * without loss.  False for int8 given a number beyond +-2^53: there
 * doubles no longer hold every integer (1e18 + 1 is already 1e18), so the
 * value the caller meant may have been rounded; such integers must come
 * as int64 cdata or strings.  False for real (float4) given a finite
 * number that rounds to infinity or to 0 as a float, which float4in
 * refuses as out of range.  copy_number_what(kind) is the text the
 * encoders raise with (the SQLSTATE is 22003 for both). */
int copy_number_exact(double x, int kind);

/* Whether s[0..n) holds a NUL byte or is not valid UTF-8: text the
 * server refuses (22021, character_not_in_repertoire) before it reads a
 * value from it.  For the error path: the encoders ask only once they
 * refused a string. */
int copy_bad_text(const char *s, size_t n);
const char *copy_number_what(int kind);
#define COPY_INT8_EXACT_WHAT                                            \
    "an int64 cdata (e.g. 1000000000000000001LL) or a string for an "   \
    "integer beyond +-2^53 (a Lua number that large may have been "     \
    "rounded)"
#define COPY_REAL_RANGE_WHAT                                            \
    "a number within the range of real (1e-45 to 3.4e38)"

/* --------------------------------------------------------------- stream */

/* Send `sql` (a COPY statement) and wait for the server to enter the COPY
 * (PGRES_COPY_IN or PGRES_COPY_OUT, whichever `expect` is).  On SL_OK
 * the COPY is open.  On SL_EFAIL *err holds the server's error result
 * (the caller owns it; every other result was drained).  SL_EBROKEN
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
 * SL_OK, SL_EBROKEN, or SL_EINTR when interruptible and an
 * interrupt is pending (part of the data may have been sent: end the COPY
 * with an error message then). */
int copy_put(PGconn *pg, const char *data, size_t n, int interruptible);

/* copy_put() in CopyData messages of at most `piece` bytes (> 0).  The
 * server reads a whole message before it parses any of it: a file sent
 * as it is read goes in small messages (copy_from_file), rows encoded in
 * chunks in large ones. */
int copy_put_pieces(PGconn *pg, const char *data, size_t n, int interruptible,
                    size_t piece);

/* End the COPY IN: CopyDone when errmsg is NULL (the rows are kept if the
 * server agrees), CopyFail(errmsg) otherwise (the server rolls the COPY
 * back).  Flushes, then puts the connection back in blocking mode.
 * Returns SL_OK or SL_EBROKEN.  Not interruptible: it only waits for
 * the server to read what was already sent. */
int copy_end(PGconn *pg, const char *errmsg);

/* Read and discard every remaining result (and any COPY data) until the
 * connection is idle again; ends a still-open COPY IN with `errmsg`.
 * Never fails loudly; returns SL_EBROKEN if the connection broke. */
int copy_drain(PGconn *pg, const char *errmsg);

/* Next row of a COPY OUT: *row (libpq memory, the caller PQfreemem()s it)
 * and *len.  Returns SL_OK, SL_DONE (then collect the final result
 * with PQgetResult), SL_EBROKEN, or SL_EINTR when interruptible and
 * an interrupt is pending. */
int copy_out_next(PGconn *pg, char **row, size_t *len, int interruptible);

/* Decode one COPY text field in place (\\, \t, \n, \r, \b, \f, \v, octal
 * \NNN, hex \xHH, and \c for any other c).  Returns the decoded length.
 * The caller recognises the NULL marker \N beforehand. */
size_t copy_unescape_text(char *s, size_t n);

#endif
