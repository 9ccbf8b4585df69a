/*
 * copy.c - COPY bytes and the COPY stream over libpq (see copy.h).
 *
 * Caveats:
 * - The binary forms follow the server's typsend/typreceive functions
 *   (src/backend/utils/adt): big-endian integers, IEEE floats, numeric as
 *   base-10000 digits, timestamps as int64 microseconds since 2000-01-01,
 *   dates as int32 days since 2000-01-01.
 * - libpq parses nothing but notices while a COPY IN is open: a server
 *   error (bad value, constraint) stays unread until the COPY is ended,
 *   so it surfaces at copy_end()/PQgetResult, not in copy_put().  A
 *   connection that dies is seen in copy_put(): it reads input on every
 *   chunk.
 * - During COPY IN the connection is in nonblocking mode, so a full
 *   socket never blocks inside libpq where Ctrl-C cannot reach; copy_put()
 *   waits in poll() and checks interrupt_pending() between waits.
 * - Every wait here (a full socket, the end of the COPY, the next row of a
 *   COPY OUT) is a pgconn_poll() slice, so the connection's silence bound
 *   and the grace after Ctrl-C apply (pgconn.h): a peer that goes silent
 *   ends in a lost connection, never in a wait without end.
 */
#include "copy.h"
#include "copyparse.h"
#include "interrupt.h"
#include "numfmt.h"
#include "pgconn.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>

/* type OIDs from pg_type.dat */
#define OID_BOOL 16
#define OID_BYTEA 17
#define OID_NAME 19
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23
#define OID_TEXT 25
#define OID_OID 26
#define OID_JSON 114
#define OID_FLOAT4 700
#define OID_FLOAT8 701
#define OID_BPCHAR 1042
#define OID_VARCHAR 1043
#define OID_DATE 1082
#define OID_TIMESTAMP 1114
#define OID_TIMESTAMPTZ 1184
#define OID_NUMERIC 1700
#define OID_UUID 2950
#define OID_BIT 1560
#define OID_VARBIT 1562
#define OID_JSONB 3802

/* one PQputCopyData call at most; libpq copies each call into its own
 * output buffer, so this also bounds that buffer */
#define COPY_PIECE (256 * 1024)

#define USECS_PER_DAY INT64_C(86400000000)
#define UNIX_TO_PG_DAYS 10957 /* days from 1970-01-01 to 2000-01-01 */

int copy_kind_of(Oid oid)
{
    switch (oid) {
    case OID_TEXT: case OID_VARCHAR: case OID_BPCHAR: case OID_NAME:
        return COPY_K_TEXT;
    case OID_BOOL: return COPY_K_BOOL;
    case OID_INT2: return COPY_K_INT2;
    case OID_INT4: return COPY_K_INT4;
    case OID_INT8: return COPY_K_INT8;
    case OID_OID: return COPY_K_OID;
    case OID_FLOAT4: return COPY_K_FLOAT4;
    case OID_FLOAT8: return COPY_K_FLOAT8;
    case OID_NUMERIC: return COPY_K_NUMERIC;
    case OID_BYTEA: return COPY_K_BYTEA;
    case OID_DATE: return COPY_K_DATE;
    case OID_TIMESTAMP: return COPY_K_TIMESTAMP;
    case OID_TIMESTAMPTZ: return COPY_K_TIMESTAMPTZ;
    case OID_JSON: return COPY_K_JSON;
    case OID_JSONB: return COPY_K_JSONB;
    case OID_UUID: return COPY_K_UUID;
    case OID_BIT: return COPY_K_BIT;
    case OID_VARBIT: return COPY_K_VARBIT;
    default: return COPY_K_OTHER;
    }
}

int copy_kind_has_binary(int kind)
{
    return kind != COPY_K_OTHER;
}

/* --------------------------------------------------------------- buffer */

/* ------------------------------------------------------- field encoders */

int copy_put_binary_header(sbuf *b)
{
    static const char sig[11] = "PGCOPY\n\377\r\n\0";
    if (sbuf_reserve(b, 19))
        return SL_ENOMEM;
    sbuf_put_raw(b, sig, 11);
    sbuf_put_be32(b, 0); /* flags: no OIDs */
    sbuf_put_be32(b, 0); /* header extension length */
    return SL_OK;
}

int copy_put_binary_trailer(sbuf *b)
{
    if (sbuf_reserve(b, 2))
        return SL_ENOMEM;
    sbuf_put_be16(b, 0xFFFF);
    return SL_OK;
}

/* Escape letter of each byte in COPY text format; 1 marks NUL (which
 * text cannot hold), 0 a byte copied as is.  Only backslash, newline, CR
 * and the delimiter (tab) must be escaped; \b \f \v are escaped too so
 * that the stream stays readable in logs. */
static const unsigned char text_esc[256] = {
    [0] = 1, ['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', ['\v'] = 'v',
    ['\f'] = 'f', ['\r'] = 'r', ['\\'] = '\\',
};

/* The text escaper behind both entry points: `delim` (the tab for a COPY
 * stream) is escaped as \<delim>, which is how the server reads a
 * delimiter inside a field; inlined so the tab case costs nothing more. */
static inline int text_escaped(sbuf *b, const char *s, size_t n,
                               unsigned char delim)
{
    size_t i = 0;
    while (i < n && !text_esc[(unsigned char)s[i]] &&
           (unsigned char)s[i] != delim)
        i++;
    if (i == n) { /* the common case: nothing to escape */
        if (sbuf_reserve(b, n))
            return SL_ENOMEM;
        sbuf_put_raw(b, s, n);
        return SL_OK;
    }
    if (n - i > (SIZE_MAX / 4 - i) / 2 ||
        sbuf_reserve(b, i + 2 * (n - i)))
        return SL_ENOMEM;
    size_t start = b->len;
    sbuf_put_raw(b, s, i);
    char *out = b->data + b->len;
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        unsigned char e = text_esc[c];
        if (e == 1) { /* NUL: tested first, a delimiter may be byte 1 */
            b->len = start;
            return SL_ENUL;
        }
        if (!e && c == delim)
            e = c;
        if (!e) {
            *out++ = (char)c;
        } else {
            *out++ = '\\';
            *out++ = (char)e;
        }
    }
    b->len = (size_t)(out - b->data);
    return SL_OK;
}

int copy_put_text_escaped(sbuf *b, const char *s, size_t n)
{
    return text_escaped(b, s, n, '\t');
}

int copy_put_text_escaped_delim(sbuf *b, const char *s, size_t n,
                                int delim)
{
    if (delim == '\t')
        return text_escaped(b, s, n, '\t');
    return text_escaped(b, s, n, (unsigned char)delim);
}

/* 1 = NUL, 2 = forces quoting, 3 = a quote (forces quoting, is doubled) */
static const unsigned char csv_cls[256] = {
    [0] = 1, ['\n'] = 2, ['\r'] = 2, [','] = 2, ['"'] = 3,
};

/* The CSV writer behind both entry points (see copy.h); inlined so the
 * comma case keeps its single table lookup per byte. */
static inline int csv_field(sbuf *b, const char *s, size_t n,
                            unsigned char delim, int force)
{
    /* an empty string must be quoted or it reads back as NULL; a lone
     * \. would end the data, and so would a lone \ before a '.'
     * delimiter and a NULL: the line "\." */
    int quote = force || n == 0 || (n == 2 && s[0] == '\\' && s[1] == '.') ||
                (n == 1 && s[0] == '\\' && delim == '.');
    size_t nq = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        unsigned char k = csv_cls[c];
        if (c == delim && !k)
            k = 2;
        if (k) {
            if (k == 1)
                return SL_ENUL;
            quote = 1;
            nq += k == 3;
        }
    }
    if (!quote) {
        if (sbuf_reserve(b, n))
            return SL_ENOMEM;
        sbuf_put_raw(b, s, n);
        return SL_OK;
    }
    if (n > SIZE_MAX / 4 || sbuf_reserve(b, n + nq + 2))
        return SL_ENOMEM;
    sbuf_put_byte(b, '"');
    if (nq == 0) {
        sbuf_put_raw(b, s, n);
    } else {
        char *out = b->data + b->len;
        for (size_t i = 0; i < n; i++) {
            if (s[i] == '"')
                *out++ = '"';
            *out++ = s[i];
        }
        b->len = (size_t)(out - b->data);
    }
    sbuf_put_byte(b, '"');
    return SL_OK;
}

int copy_put_csv_field(sbuf *b, const char *s, size_t n)
{
    return csv_field(b, s, n, ',', 0);
}

int copy_put_csv_field_delim(sbuf *b, const char *s, size_t n,
                             int delim, int force_quote)
{
    return csv_field(b, s, n, (unsigned char)delim, force_quote);
}

int copy_put_bytea_hex(sbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (n > SIZE_MAX / 4 || sbuf_reserve(b, 2 + 2 * n))
        return SL_ENOMEM;
    char *out = b->data + b->len;
    *out++ = '\\';
    *out++ = 'x';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        *out++ = hex[c >> 4];
        *out++ = hex[c & 15];
    }
    b->len = (size_t)(out - b->data);
    return SL_OK;
}

/* ------------------------------------------------------------- numbers */

size_t copy_format_double(char *buf, double x, int digits)
{
    return numfmt_digits(buf, x, digits);
}

/* --------------------------------------------------------------- stream */

/* Wait until the socket is writable or readable (reading what arrived,
 * which is how a dead connection or the server's notices are seen).  The
 * silence bound of the connection applies (pgconn_poll): the caller
 * started the count with pgconn_wait_begin(). */
static int wait_io(PGconn *pg, int interruptible)
{
    if (interruptible && interrupt_pending())
        return SL_EINTR;
    if (pgconn_poll(pg, POLLOUT | POLLIN) != PGCONN_READY)
        return SL_EBROKEN;
    return PQstatus(pg) == CONNECTION_BAD ? SL_EBROKEN : SL_OK;
}

/* Flush libpq's output buffer completely. */
static int flush_all(PGconn *pg, int interruptible)
{
    for (;;) {
        int f = PQflush(pg);
        if (f < 0)
            return SL_EBROKEN;
        if (f == 0)
            return SL_OK;
        int w = wait_io(pg, interruptible);
        if (w != SL_OK)
            return w;
    }
}

int copy_begin(PGconn *pg, const char *sql, ExecStatusType expect,
               PGresult **err, int *interrupted)
{
    *err = NULL;
    *interrupted = 0;
    if (!PQsendQuery(pg, sql))
        return SL_EBROKEN;
    int f = pgconn_collect(pg, (int)expect, "unexpected COPY direction", 1,
                           NULL, err);
    *interrupted = (f & PGCONN_F_INTERRUPTED) != 0;
    if (f & PGCONN_F_STOPPED) {
        if (expect == PGRES_COPY_IN && PQsetnonblocking(pg, 1) != 0) {
            copy_drain(pg, "sluice could not switch the connection to "
                           "nonblocking mode");
            return SL_EBROKEN;
        }
        return SL_OK;
    }
    return *err ? SL_EFAIL : SL_EBROKEN;
}

int copy_put(PGconn *pg, const char *data, size_t n, int interruptible)
{
    return copy_put_pieces(pg, data, n, interruptible, COPY_PIECE);
}

int copy_put_pieces(PGconn *pg, const char *data, size_t n, int interruptible,
                    size_t piece)
{
    /* a dead peer is noticed here even when every write "succeeds"
     * (libpq discards output after a failed write, to read the error) */
    if (!PQconsumeInput(pg) || PQstatus(pg) == CONNECTION_BAD)
        return SL_EBROKEN;
    /* checked on every chunk, not only when the socket is full: a row
     * loop that LuaJIT compiled runs no hooks, so this may be the only
     * place that notices Ctrl-C */
    if (interruptible && interrupt_pending())
        return SL_EINTR;
    pgconn_wait_begin(pg);
    while (n > 0) {
        /* what the last piece left in libpq goes first, so libpq never
         * holds more than one piece beyond what the kernel took */
        int f = flush_all(pg, interruptible);
        if (f != SL_OK)
            return f;
        int k = (int)(n > piece ? piece : n);
        int r = PQputCopyData(pg, data, k);
        if (r < 0)
            return SL_EBROKEN;
        if (r == 0) { /* could not queue without blocking */
            int w = wait_io(pg, interruptible);
            if (w != SL_OK)
                return w;
            continue;
        }
        data += k;
        n -= (size_t)k;
        /* send what the socket takes now; the rest leaves while the
         * caller encodes the next chunk (the server keeps busy) */
        if (PQflush(pg) < 0)
            return SL_EBROKEN;
    }
    return SL_OK;
}

int copy_end(PGconn *pg, const char *errmsg)
{
    int rc = SL_OK;
    pgconn_wait_begin(pg);
    for (;;) {
        int r = PQputCopyEnd(pg, errmsg);
        if (r > 0)
            break;
        if (r < 0 || wait_io(pg, 0) != SL_OK) {
            rc = SL_EBROKEN;
            break;
        }
    }
    if (rc == SL_OK && flush_all(pg, 0) != SL_OK)
        rc = SL_EBROKEN;
    /* back to blocking mode for the rest of sluice, whatever happened
     * (this flushes: after a failed flush it fails too, and then the
     * connection is broken anyway) */
    if (PQstatus(pg) == CONNECTION_OK && PQsetnonblocking(pg, 0) != 0)
        rc = SL_EBROKEN;
    return rc;
}

int copy_drain(PGconn *pg, const char *errmsg)
{
    if (PQstatus(pg) == CONNECTION_BAD)
        return SL_EBROKEN;
    int f = pgconn_collect(pg, 0, errmsg, 0, NULL, NULL);
    if (PQstatus(pg) == CONNECTION_OK && PQisnonblocking(pg))
        PQsetnonblocking(pg, 0);
    return f & PGCONN_F_BROKEN ? SL_EBROKEN : SL_OK;
}

int copy_out_next(PGconn *pg, char **row, size_t *len, int interruptible)
{
    pgconn_wait_begin(pg);
    for (;;) {
        char *buf = NULL;
        int k = PQgetCopyData(pg, &buf, 1);
        if (k > 0) {
            *row = buf;
            *len = (size_t)k;
            return SL_OK;
        }
        if (k == -1)
            return SL_DONE;
        if (k < -1)
            return SL_EBROKEN;
        if (interruptible && interrupt_pending())
            return SL_EINTR;
        if (pgconn_poll(pg, POLLIN) != PGCONN_READY)
            return SL_EBROKEN;
    }
}


size_t copy_unescape_text(char *s, size_t n)
{
    char *bs = memchr(s, '\\', n);
    if (!bs)
        return n;
    size_t i = (size_t)(bs - s), o = i;
    while (i < n) {
        char c = s[i++];
        if (c != '\\' || i == n) {
            s[o++] = c;
            continue;
        }
        c = s[i++];
        switch (c) {
        case 'b': s[o++] = '\b'; break;
        case 'f': s[o++] = '\f'; break;
        case 'n': s[o++] = '\n'; break;
        case 'r': s[o++] = '\r'; break;
        case 't': s[o++] = '\t'; break;
        case 'v': s[o++] = '\v'; break;
        case '0': case '1': case '2': case '3':
        case '4': case '5': case '6': case '7': {
            int v = c - '0';
            for (int k = 0; k < 2 && i < n && s[i] >= '0' && s[i] <= '7'; k++)
                v = v * 8 + (s[i++] - '0');
            s[o++] = (char)(v & 0xFF);
            break;
        }
        case 'x': {
            int h = i < n ? numparse_hex_digit((unsigned char)s[i]) : -1;
            if (h < 0) {
                s[o++] = 'x';
                break;
            }
            i++;
            int h2 = i < n ? numparse_hex_digit((unsigned char)s[i]) : -1;
            if (h2 >= 0) {
                h = h * 16 + h2;
                i++;
            }
            s[o++] = (char)h;
            break;
        }
        default:
            s[o++] = c;
        }
    }
    return o;
}

/* ------------------------------------------- shared parameter helpers */

int copy_put_array_quoted(sbuf *b, const char *s, size_t n)
{
    if (memchr(s, '\0', n))
        return SL_ENUL;
    if (n > SIZE_MAX / 4 || sbuf_reserve(b, 2 * n + 2))
        return SL_ENOMEM;
    char *out = b->data + b->len;
    *out++ = '"';
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\')
            *out++ = '\\';
        *out++ = s[i];
    }
    *out++ = '"';
    b->len = (size_t)(out - b->data);
    return SL_OK;
}

int copy_number_exact(double x, int kind)
{
    if (kind == COPY_K_FLOAT4) {
        float f = (float)x;
        return !(isfinite(x) && (isinf(f) || (f == 0.0f && x != 0.0)));
    }
    /* NaN passes: it is refused later as not an integer */
    return kind != COPY_K_INT8 ||
           !(x > 9007199254740992.0 || x < -9007199254740992.0);
}

const char *copy_number_what(int kind)
{
    return kind == COPY_K_FLOAT4 ? COPY_REAL_RANGE_WHAT : COPY_INT8_EXACT_WHAT;
}

size_t copy_format_number(char *buf, double x, int kind)
{
    if (kind == COPY_K_DATE || kind == COPY_K_TIMESTAMP ||
        kind == COPY_K_TIMESTAMPTZ) {
        int64_t us;
        if (copy_epoch_to_usec(x, &us) != SL_OK)
            return 0;
        if (kind == COPY_K_DATE)
            return copy_format_date(buf, copy_usec_to_days(us));
        return copy_format_timestamp(buf, us, kind == COPY_K_TIMESTAMPTZ);
    }
    /* Float columns need the exact value, not the shortest text (which
     * matters for numeric, where 0.1 must stay 0.1): 17 significant
     * digits are exact, and copy_format_double() writes them ~10x faster
     * than numfmt's printf/strtod search for the shortest form, the hot
     * spot of text COPY.  real gets its float's 9 digits, the value that
     * binary COPY sends.  Integers and inf/nan keep numfmt's spelling,
     * but for a real only below 2^63: above, that spelling is the
     * double's shortest text, not its exact value, and strtof rounding
     * it again can land one float away from (float)x. */
    if ((kind == COPY_K_FLOAT8 || kind == COPY_K_FLOAT4) && isfinite(x) &&
        (x != floor(x) ||
         (kind == COPY_K_FLOAT4 && fabs(x) >= 9.2233720368547758e18))) {
        float f = (float)x;
        int real = kind == COPY_K_FLOAT4 && isfinite(f);
        double v = real ? (double)f : x;
        size_t n = copy_format_double(buf, v, real ? 9 : 17);
        if (n == 0)
            n = (size_t)snprintf(buf, 64, "%.*g", real ? 9 : 17, v);
        return n;
    }
    return numfmt_double(buf, x);
}

int copy_bad_text(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        unsigned c = *p++;
        if (c < 0x80) {
            if (c == 0)
                return 1;
            continue;
        }
        /* the lead byte: how many continuation bytes, and the range of
         * the first one (no overlong forms, no surrogates, <= U+10FFFF) */
        unsigned need, lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF)
            need = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        } else
            return 1;
        if ((size_t)(end - p) < need || *p < lo || *p > hi)
            return 1;
        p++;
        for (unsigned i = 1; i < need; i++, p++)
            if (*p < 0x80 || *p > 0xBF)
                return 1;
    }
    return 0;
}
