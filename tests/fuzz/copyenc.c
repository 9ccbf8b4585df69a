/*
 * copyenc.c - libFuzzer target: the COPY encoders (copyenc.h, copy.h's
 * field writers) against decoders written here from PostgreSQL's
 * sources.
 *
 * The input is a small program: a format byte, a delimiter byte, a chunk
 * byte, then rows, each a column count and, per column, an encoder and
 * its value.  The rows go through one copy_writer as the bindings drive
 * it (row begin, fields, row end; a row whose field fails is dropped).
 * - binary: each field is decoded as the server's typreceive reads it
 *   (length word, big-endian integers, IEEE bits, numeric's base-10000
 *   digits back to decimal, days/microseconds since 2000-01-01) and
 *   compared with the value the harness expects, worked out on its own
 *   (integer ranges, the float casts, a decimal parser, timegm for dates
 *   built from fields, uuid text in its five spellings), errors
 *   included; then the whole stream (header, rows, trailer) is parsed;
 * - text and CSV (default or a sink's delimiter): the whole buffer is
 *   split and unescaped the way the server's CopyReadAttributesText /
 *   CopyReadAttributesCSV do, and every field must come back as the
 *   bytes written (NULLs as NULL), with no bare CR, no bare line end,
 *   and no line that reads as the end-of-data marker \. .
 * Any difference aborts (libFuzzer keeps the input).
 */
#include "fuzz.h"

#include "copy.h"
#include "copyenc.h"
#include "copyparse.h"
#include "numfmt.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <time.h>

#define USECS_PER_DAY INT64_C(86400000000)
/* PostgreSQL's timestamp range, microseconds since 2000-01-01 */
#define TS_MIN INT64_C(-211813488000000000)
#define TS_END INT64_C(9223371331200000000)

#define STR_MAX 200

static void put(sbuf *b, const void *p, size_t n)
{
    if (sbuf_reserve(b, n) != SL_OK)
        abort();
    sbuf_put_raw(b, p, n);
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static uint64_t be_n(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static const char *rc_name(int rc)
{
    switch (rc) {
    case SL_OK: return "OK";
    case SL_ENOMEM: return "ENOMEM";
    case SL_ENUL: return "ENUL";
    case SL_EINVAL: return "EINVAL";
    case SL_ERANGE: return "ERANGE";
    case SL_ENOZONE: return "ENOZONE";
    case SL_ETZRANGE: return "ETZRANGE";
    case SL_ESERVERONLY: return "ESERVERONLY";
    default: return "other";
    }
}

#define CHECK_RC(got, want, what)                                          \
    FUZZ_CHECK((got) == (want), "%s: %s, want %s", (what), rc_name(got),   \
               rc_name(want))

/* ------------------------------------------------------------- values */

static int is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
           c == '\v';
}

/* A double the encoders find interesting, more often than random bits
 * would give one. */
static double get_number(fuzz_in *in)
{
    static const double special[] = {
        0.0, -0.0, NAN, -NAN, INFINITY, -INFINITY, 0.5, -0.5, 0.1, 1e-7,
        32767, 32768, -32768, -32769, 65535, 2147483647.0, 2147483648.0,
        -2147483648.0, -2147483649.0, 4294967295.0, 4294967296.0,
        9007199254740992.0, 9007199254740994.0, -9007199254740992.0,
        9223372036854775808.0, -9223372036854775808.0, 1e300, -1e300,
        DBL_MAX, DBL_MIN, 5e-324, FLT_MAX, 3.4028235677973366e38,
        3.4028235677973362e38, 1.4e-45, 7e-46, 7.1e-46, 1e17, 1e21,
        946684800.0, -62135596800.0, -210866803200.0, 9.2e12, -9.2e12,
        9.3e12, 253402300799.999999, 1700000000.1234565, 86399.9999995,
    };
    unsigned mode = fuzz_byte(in) % 5;
    switch (mode) {
    case 0:
        return fuzz_double(in);
    case 1: { /* an integer of any size */
        unsigned shift = fuzz_byte(in) % 64;
        return (double)((int64_t)fuzz_u64(in) >> shift);
    }
    case 2: /* a small integer, maybe with a half */
        return (double)(int16_t)(fuzz_byte(in) << 8 | fuzz_byte(in)) +
               (fuzz_byte(in) & 1 ? 0.5 : 0);
    case 3: /* a number of seconds, maybe with microseconds */
        return (double)((int64_t)fuzz_u64(in) % INT64_C(20000000000000)) /
               (fuzz_byte(in) & 1 ? 1e6 : 1);
    default:
        return special[fuzz_byte(in) % (sizeof special / sizeof special[0])];
    }
}

static const char *get_str(fuzz_in *in, size_t *n)
{
    return fuzz_bytes(in, STR_MAX, n);
}

/* ------------------------------------------------------------ decimal */

/* A decimal value: sign, significant digits (no leading or trailing
 * zeros; none for zero) and the power of ten of the first. */
typedef struct decimal {
    int neg;
    char d[16384];
    long nd;
    long exp;
} decimal;

static void dec_norm(decimal *v)
{
    long lead = 0;
    while (lead < v->nd && v->d[lead] == '0')
        lead++;
    memmove(v->d, v->d + lead, (size_t)(v->nd - lead));
    v->nd -= lead;
    v->exp -= lead;
    while (v->nd > 0 && v->d[v->nd - 1] == '0')
        v->nd--;
    if (v->nd == 0) {
        v->exp = 0;
        v->neg = 0;
    }
}

static int dec_same(const decimal *a, const decimal *b)
{
    return a->neg == b->neg && a->nd == b->nd &&
           (a->nd == 0 || (a->exp == b->exp && memcmp(a->d, b->d,
                                                       (size_t)a->nd) == 0));
}

/* s[0..n) is the lowercase word w, in any case. */
static int word_is(const char *s, size_t n, const char *w)
{
    if (strlen(w) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]) != w[i])
            return 0;
    return 1;
}

/* numeric_in's text, trimmed: NaN, [+-]inf[inity], or a decimal.
 * Returns 0 (not a number), 1 (finite: *v, *dscale, *exp10 the exponent
 * written), 2 (NaN), 3 (+inf), 4 (-inf). */
static int parse_numeric_text(const char *s, size_t n, decimal *v,
                              long *dscale, long *exp10)
{
    while (n && is_space((unsigned char)*s))
        s++, n--;
    while (n && is_space((unsigned char)s[n - 1]))
        n--;
    size_t i = 0;
    if (word_is(s, n, "nan"))
        return 2;
    int neg = 0;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    if (word_is(s + i, n - i, "inf") || word_is(s + i, n - i, "infinity"))
        return neg ? 4 : 3;
    v->neg = neg;
    v->nd = 0;
    long intd = 0, frac = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
        v->d[v->nd++] = s[i++];
        intd++;
    }
    if (i < n && s[i] == '.')
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            v->d[v->nd++] = s[i];
            frac++;
        }
    if (intd + frac == 0)
        return 0;
    long e = 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        int eneg = 0;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            eneg = s[i++] == '-';
        if (i == n || s[i] < '0' || s[i] > '9')
            return 0;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            if (e < 1000000)
                e = e * 10 + (s[i] - '0');
        if (eneg)
            e = -e;
    }
    if (i != n)
        return 0;
    v->exp = intd - 1 + e;
    *exp10 = e;
    *dscale = frac - e > 0 ? frac - e : 0;
    dec_norm(v);
    return 1;
}

/* A binary numeric body at p (len bytes) as a decimal; checks the form
 * the encoder promises (no leading or trailing zero groups, digits below
 * 10000, zero positive) and that dscale hides no digit (numeric_recv
 * would drop it).  Returns the sign word. */
static unsigned decode_numeric(const unsigned char *p, size_t len,
                               decimal *v, unsigned *dscale)
{
    FUZZ_CHECK(len >= 8, "numeric body of %zu bytes", len);
    unsigned ndigits = (unsigned)be_n(p, 2);
    int weight = (int16_t)be_n(p + 2, 2);
    unsigned sign = (unsigned)be_n(p + 4, 2);
    *dscale = (unsigned)be_n(p + 6, 2);
    FUZZ_CHECK(len == 8 + 2 * (size_t)ndigits, "numeric: %u digits in %zu "
               "bytes", ndigits, len);
    FUZZ_CHECK(ndigits <= 3000, "numeric: %u digits", ndigits);
    FUZZ_CHECK(*dscale <= 0x3FFF, "numeric: dscale %u", *dscale);
    v->neg = 0;
    v->nd = 0;
    v->exp = 0;
    if (sign == 0xC000 || sign == 0xD000 || sign == 0xF000) {
        FUZZ_CHECK(ndigits == 0 && weight == 0 && *dscale == 0,
                   "numeric special with digits");
        return sign;
    }
    FUZZ_CHECK(sign == 0 || sign == 0x4000, "numeric sign %04x", sign);
    if (ndigits == 0)
        FUZZ_CHECK(sign == 0 && weight == 0, "numeric zero: sign %04x, "
                   "weight %d", sign, weight);
    for (unsigned i = 0; i < ndigits; i++) {
        unsigned g = (unsigned)be_n(p + 8 + 2 * i, 2);
        FUZZ_CHECK(g < 10000, "numeric digit %u", g);
        if (i == 0 || i == ndigits - 1)
            FUZZ_CHECK(g != 0, "numeric: a zero group at an end");
        char tmp[5];
        snprintf(tmp, sizeof tmp, "%04u", g);
        memcpy(v->d + v->nd, tmp, 4);
        v->nd += 4;
    }
    v->neg = sign == 0x4000;
    v->exp = 4L * weight + 3;
    dec_norm(v);
    /* the last significant digit's power of ten must be within dscale */
    if (v->nd)
        FUZZ_CHECK(v->exp - (v->nd - 1) >= -(long)*dscale,
                   "numeric: dscale %u hides digits", *dscale);
    return sign;
}

/* Whether a finite decimal fits binary numeric (numeric_recv): weight
 * and the last group's weight in int16, at most 3000 groups, dscale at
 * most 0x3FFF. */
static int numeric_fits(const decimal *v, long dscale)
{
    if (dscale > 0x3FFF)
        return 0;
    if (v->nd == 0)
        return 1;
    long first = v->exp, last = v->exp - (v->nd - 1);
    long w = first >= 0 ? first / 4 : -((-first + 3) / 4);
    long lo = last >= 0 ? last / 4 : -((-last + 3) / 4);
    return w <= 32767 && lo >= -32768 && w - lo + 1 <= 3000;
}

/* ---------------------------------------------------- dates and times */

static int leap(long y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days since 2000-01-01 of y-m-d, by the C library's timegm. */
static int64_t days_of(long y, int m, int d)
{
    struct tm tm = { 0 };
    tm.tm_year = (int)(y - 1900);
    tm.tm_mon = m - 1;
    tm.tm_mday = d;
    time_t t = timegm(&tm);
    return (int64_t)(t / 86400) - 10957;
}

/* A date/timestamp string built from fields, with what it must give. */
typedef struct ts_case {
    char s[96];
    size_t n;
    int ok;            /* it is valid */
    int code;          /* else the server's refusal (in its order: the
                        * time, the offset, then the date) */
    int64_t days;      /* the day written */
    int64_t usec;      /* wall-clock usec since 2000-01-01 (offset not
                        * applied), 24:00 and 23:59:60 moved on */
    int has_off;
    int32_t off;
} ts_case;

static void make_ts(fuzz_in *in, ts_case *c)
{
    unsigned f = fuzz_byte(in);
    long y;
    if (f & 1)
        y = 1900 + fuzz_byte(in) % 200;
    else
        y = 1 + (long)((fuzz_byte(in) << 16 | fuzz_byte(in) << 8 |
                        fuzz_byte(in)) % 300000);
    int mo = 1 + (int)(fuzz_byte(in) % 12);
    int dim = mo == 2 ? 28 + leap(y)
                      : (int[]){ 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30,
                                 31 }[mo - 1];
    unsigned db = fuzz_byte(in);
    int d = 1 + (int)(db % (unsigned)(dim + (db >= 250))); /* dim+1: bad */
    int ok = d <= dim;
    int time_ok = 1, zone_ok = 1;
    size_t k = 0;
    char *s = c->s;
    if (f & 2)
        s[k++] = ' ';
    k += (size_t)snprintf(s + k, 16, "%04ld-%02d-%02d", y, mo, d);
    int64_t tod = 0;
    c->has_off = 0;
    c->off = 0;
    if (f & 4) { /* a time */
        int h = (int)(fuzz_byte(in) % 26), mi = (int)(fuzz_byte(in) % 61),
            sec = (int)(fuzz_byte(in) % 62);
        unsigned fd = fuzz_byte(in) % 10;
        s[k++] = f & 8 ? 'T' : ' ';
        k += (size_t)snprintf(s + k, 16, "%02d:%02d:%02d", h, mi, sec);
        double frac = 0;
        if (fd) {
            char digits[16] = "0.";
            s[k++] = '.';
            for (unsigned i = 0; i < fd; i++) {
                char ch = (char)('0' + fuzz_byte(in) % 10);
                s[k++] = ch;
                digits[2 + i] = ch;
            }
            frac = strtod(digits, NULL);
        }
        /* as the server: rint(fraction * 1e6), at most 24:00:00 */
        int64_t us = (int64_t)rint(frac * 1000000.0);
        tod = ((int64_t)h * 3600 + mi * 60 + sec) * 1000000 + us;
        time_ok = h <= 24 && mi <= 59 && sec <= 60 && tod <= USECS_PER_DAY;
        unsigned z = fuzz_byte(in);
        if (z & 0x80)
            s[k++] = ' ';
        int zsign = z & 0x40 ? -1 : 1;
        int zh = (int)(fuzz_byte(in) % 17), zm = (int)(fuzz_byte(in) % 60),
            zs = (int)(fuzz_byte(in) % 60);
        const char *sg = zsign < 0 ? "-" : "+";
        switch (z & 7) {
        case 0:
            if (z & 0x80)
                k--; /* no zone, no trailing space */
            break;
        case 1:
            s[k++] = z & 8 ? 'z' : 'Z';
            c->has_off = 1;
            break;
        case 2:
            memcpy(s + k, z & 8 ? "utc" : "UTC", 3);
            k += 3;
            c->has_off = 1;
            break;
        case 3:
            k += (size_t)snprintf(s + k, 8, "%s%02d", sg, zh);
            c->has_off = 1;
            c->off = zsign * zh * 3600;
            break;
        case 4:
            k += (size_t)snprintf(s + k, 8, "%s%02d%02d", sg, zh, zm);
            c->has_off = 1;
            c->off = zsign * (zh * 3600 + zm * 60);
            break;
        case 5:
            k += (size_t)snprintf(s + k, 8, "%s%d", sg, zh);
            c->has_off = 1;
            c->off = zsign * zh * 3600;
            break;
        default:
            k += (size_t)snprintf(s + k, 12, "%s%02d:%02d", sg, zh, zm);
            c->has_off = 1;
            c->off = zsign * (zh * 3600 + zm * 60);
            if ((z & 7) == 7) {
                k += (size_t)snprintf(s + k, 4, ":%02d", zs);
                c->off += zsign * zs;
            }
            break;
        }
        if ((z & 7) >= 3)
            zone_ok = zh <= 15; /* DecodeTimezone's limit */
    }
    if (f & 16)
        s[k++] = ' ';
    s[k] = '\0';
    c->n = k;
    c->code = !time_ok ? SL_ERANGE : !zone_ok ? SL_ETZRANGE
                                              : ok ? SL_OK : SL_ERANGE;
    ok &= time_ok && zone_ok;
    c->ok = ok;
    if (ok) {
        c->days = days_of(y, mo, d);
        /* past 292277 AD this leaves int64: saturate (out of range) */
        __int128 us = (__int128)c->days * USECS_PER_DAY + tod;
        c->usec = us > INT64_MAX ? INT64_MAX : (int64_t)us;
    }
}

/* uuid text in one of uuid_in's spellings. */
static size_t make_uuid(fuzz_in *in, unsigned char u[16], char *s)
{
    unsigned style = fuzz_byte(in) % 5;
    for (int i = 0; i < 16; i++)
        u[i] = (unsigned char)fuzz_byte(in);
    const char *hex = style == 1 ? "0123456789ABCDEF" : "0123456789abcdef";
    size_t k = 0;
    if (style == 2)
        s[k++] = '{';
    for (int i = 0; i < 16; i++) {
        s[k++] = hex[u[i] >> 4];
        s[k++] = hex[u[i] & 15];
        int hy = style == 4 ? i % 2 == 1 && i < 15
                            : i == 3 || i == 5 || i == 7 || i == 9;
        if (style != 3 && hy)
            s[k++] = '-';
    }
    if (style == 2)
        s[k++] = '}';
    s[k] = '\0';
    return k;
}

/* --------------------------------------------------------- binary rows */

/* The field at b[start..): its length word and body; checks it ends the
 * buffer.  Returns the body length (-1 for NULL), *body its bytes. */
static long field_at(const sbuf *b, size_t start, const unsigned char **body)
{
    FUZZ_CHECK(b->len >= start + 4, "field without a length word");
    const unsigned char *p = (const unsigned char *)b->data + start;
    uint32_t len = be32(p);
    *body = p + 4;
    if (len == 0xFFFFFFFFu) {
        FUZZ_CHECK(b->len == start + 4, "NULL with a body");
        return -1;
    }
    FUZZ_CHECK(b->len == start + 4 + (size_t)len,
               "length word %u, %zu bytes written", len, b->len - start - 4);
    return (long)len;
}

static void expect_fixed(const sbuf *b, size_t start, size_t len,
                         uint64_t want, const char *what)
{
    const unsigned char *p;
    long n = field_at(b, start, &p);
    FUZZ_CHECK(n == (long)len, "%s: %ld bytes, want %zu", what, n, len);
    uint64_t got = be_n(p, len);
    FUZZ_CHECK(got == want, "%s: %016" PRIx64 ", want %016" PRIx64, what, got,
               want);
}

static void expect_bytes(const sbuf *b, size_t start, const char *s,
                         size_t n, const char *what)
{
    const unsigned char *p;
    long got = field_at(b, start, &p);
    FUZZ_CHECK(got == (long)n && memcmp(p, s, n) == 0, "%s: %ld bytes, want "
               "%zu", what, got, n);
}

/* The integer a double stands for, as the encoders read it: 1 and *v,
 * or 0 (not an integer). */
static int integral(double x, int64_t *v)
{
    if (!(x >= -9223372036854775808.0 && x < 9223372036854775808.0) ||
        x != trunc(x))
        return 0;
    *v = (int64_t)x;
    return 1;
}

/* The integer kinds: their widths, ranges and encoders' names. */
static const struct {
    int kind;
    size_t len;
    int64_t lo, hi;
    const char *name;
} ints[] = {
    { COPY_K_INT2, 2, INT16_MIN, INT16_MAX, "int2" },
    { COPY_K_INT4, 4, INT32_MIN, INT32_MAX, "int4" },
    { COPY_K_INT8, 8, INT64_MIN, INT64_MAX, "int8" },
    { COPY_K_OID, 4, 0, UINT32_MAX, "oid" },
};

/* v's low len bytes, the field's big-endian value */
static uint64_t low_bytes(int64_t v, size_t len)
{
    return len == 8 ? (uint64_t)v
                    : (uint64_t)v & ((UINT64_C(1) << 8 * len) - 1);
}

/* A fast table entry by name. */
static const copy_fast_fn *fast(const char *name)
{
    for (const copy_fast_fn *f = copy_fast_table; f->name; f++)
        if (strcmp(f->name, name) == 0)
            return f;
    FUZZ_CHECK(0, "no fast function %s", name);
    return NULL;
}

/* The fast table's function for a binary encoder must write the same
 * bytes and return the same code as the direct call did (b[start..)). */
static void same_as_fast_num(const char *name, double x, const sbuf *b,
                             size_t start, int rc)
{
    copy_writer w = { 0 };
    int frc = ((int (*)(void *, double))fast(name)->fn)(&w, x);
    FUZZ_CHECK(frc == rc && (rc != SL_OK || (w.buf.len == b->len - start &&
               memcmp(w.buf.data, b->data + start, w.buf.len) == 0)),
               "fast %s(%a): %s, direct %s", name, x, rc_name(frc),
               rc_name(rc));
    sbuf_free(&w.buf);
}

static void same_as_fast_str(const char *name, const char *s, size_t n,
                             int utc, const sbuf *b, size_t start, int rc)
{
    copy_writer w = { 0 };
    w.zone = utc ? &tz_rules_utc : NULL;
    int frc = ((int (*)(void *, const char *, size_t))fast(name)->fn)(&w, s,
                                                                     n);
    FUZZ_CHECK(frc == rc && (rc != SL_OK || (w.buf.len == b->len - start &&
               memcmp(w.buf.data, b->data + start, w.buf.len) == 0)),
               "fast %s(\"%.*s\"): %s, direct %s", name, (int)n, s,
               rc_name(frc), rc_name(rc));
    sbuf_free(&w.buf);
}

static decimal dec_a, dec_b; /* big: static */

/* Encode one binary field of the program's choice at the end of b and
 * check it.  Returns the encoder's code (the row is dropped unless
 * SL_OK). */
static int binary_field(fuzz_in *in, sbuf *b)
{
    size_t start = b->len;
    unsigned op = fuzz_byte(in) % 24;
    int rc;
    switch (op) {
    case 0:
        rc = copy_put_null(b);
        CHECK_RC(rc, SL_OK, "null");
        FUZZ_CHECK(b->len == start + 4 && be32((const unsigned char *)
                   b->data + start) == 0xFFFFFFFFu, "null");
        return rc;
    case 1: {
        int v = (int)fuzz_byte(in) - 1;
        rc = copy_put_bool(b, v);
        CHECK_RC(rc, SL_OK, "bool");
        expect_fixed(b, start, 1, v != 0, "bool");
        return rc;
    }
    case 2: {
        size_t n;
        const char *s = get_str(in, &n);
        int v = 0, want = copy_parse_bool(s, n, &v);
        rc = copy_put_bool_str(b, s, n);
        CHECK_RC(rc, want == SL_OK ? SL_OK : SL_EINVAL, "bool_str");
        if (rc == SL_OK)
            expect_fixed(b, start, 1, (uint64_t)v, "bool_str");
        return rc;
    }
    case 3: { /* int2/int4/int8/oid from a double */
        unsigned k = fuzz_byte(in) % 4;
        double x = get_number(in);
        rc = k == 0 ? copy_put_int2(b, x) : k == 1 ? copy_put_int4(b, x)
             : k == 2 ? copy_put_int8(b, x) : copy_put_oid(b, x);
        int64_t v = 0;
        int want;
        if (k == 2 && fabs(x) > 9007199254740992.0)
            want = SL_ERANGE; /* may have been rounded */
        else if (!integral(x, &v))
            want = SL_EINVAL;
        else
            want = v < ints[k].lo || v > ints[k].hi ? SL_ERANGE : SL_OK;
        CHECK_RC(rc, want, ints[k].name);
        if (rc == SL_OK)
            expect_fixed(b, start, ints[k].len, low_bytes(v, ints[k].len),
                         ints[k].name);
        if (k != 3) /* the fast table has no oid */
            same_as_fast_num(ints[k].name, x, b, start, rc);
        return rc;
    }
    case 4: case 5: { /* copy_put_int from an int64, or from text */
        unsigned k = fuzz_byte(in) % 4;
        int64_t v = 0;
        int want = SL_OK;
        if (op == 4) {
            v = (int64_t)fuzz_u64(in) >> (fuzz_byte(in) % 64);
            rc = copy_put_int(b, ints[k].kind, v);
        } else {
            size_t n;
            const char *s = get_str(in, &n);
            want = copy_parse_int64(s, n, &v);
            rc = copy_put_int_str(b, ints[k].kind, s, n);
        }
        if (want == SL_OK && (v < ints[k].lo || v > ints[k].hi))
            want = SL_ERANGE;
        CHECK_RC(rc, want, op == 4 ? "int" : "int_str");
        if (rc == SL_OK)
            expect_fixed(b, start, ints[k].len, low_bytes(v, ints[k].len),
                         ints[k].name);
        return rc;
    }
    case 6: { /* float4 from a double: one cast, NaN made positive */
        double x = get_number(in);
        float f = (float)x;
        int want = isfinite(x) && (isinf(f) || (f == 0 && x != 0))
                       ? SL_ERANGE : SL_OK;
        uint32_t bits;
        if (isnan(x))
            bits = 0x7FC00000u;
        else
            memcpy(&bits, &f, 4);
        rc = copy_put_float4(b, x);
        CHECK_RC(rc, want, "float4");
        if (rc == SL_OK)
            expect_fixed(b, start, 4, bits, "float4");
        same_as_fast_num("float4", x, b, start, rc);
        return rc;
    }
    case 7: {
        double x = get_number(in);
        uint64_t bits;
        if (isnan(x))
            bits = UINT64_C(0x7FF8000000000000);
        else
            memcpy(&bits, &x, 8);
        rc = copy_put_float8(b, x);
        CHECK_RC(rc, SL_OK, "float8");
        expect_fixed(b, start, 8, bits, "float8");
        same_as_fast_num("float8", x, b, start, rc);
        return rc;
    }
    case 8: { /* float4/float8 from text (copy_parse_*: see numbers.c) */
        size_t n;
        const char *s = get_str(in, &n);
        int real = fuzz_byte(in) & 1;
        if (real) {
            float f = 0;
            int want = copy_parse_float(s, n, &f);
            uint32_t bits;
            memcpy(&bits, &f, 4);
            rc = copy_put_float4_str(b, s, n);
            CHECK_RC(rc, want, "float4_str");
            if (rc == SL_OK)
                expect_fixed(b, start, 4, bits, "float4_str");
        } else {
            double x = 0;
            int want = copy_parse_double(s, n, &x);
            uint64_t bits;
            memcpy(&bits, &x, 8);
            rc = copy_put_float8_str(b, s, n);
            CHECK_RC(rc, want, "float8_str");
            if (rc == SL_OK)
                expect_fixed(b, start, 8, bits, "float8_str");
        }
        return rc;
    }
    case 9: case 10: case 11: case 12: { /* text, bytea, json, jsonb */
        size_t n;
        const char *s = get_str(in, &n);
        if (op == 9) {
            rc = copy_put_text(b, s, n);
            CHECK_RC(rc, memchr(s, 0, n) ? SL_ENUL : SL_OK, "text");
            if (rc == SL_OK)
                expect_bytes(b, start, s, n, "text");
            same_as_fast_str("text", s, n, 0, b, start, rc);
        } else if (op == 10) {
            rc = copy_put_bytes(b, s, n);
            CHECK_RC(rc, SL_OK, "bytes");
            expect_bytes(b, start, s, n, "bytes");
        } else if (op == 11) {
            rc = copy_put_json(b, s, n, 0);
            CHECK_RC(rc, SL_OK, "json");
            expect_bytes(b, start, s, n, "json");
        } else {
            rc = copy_put_json(b, s, n, 1);
            CHECK_RC(rc, SL_OK, "jsonb");
            const unsigned char *p;
            long len = field_at(b, start, &p);
            FUZZ_CHECK(len == (long)n + 1 && p[0] == 1 &&
                       memcmp(p + 1, s, n) == 0, "jsonb");
        }
        return rc;
    }
    case 13: { /* numeric from a double: its decimal value, exactly */
        double x = get_number(in);
        rc = copy_put_numeric(b, x);
        CHECK_RC(rc, SL_OK, "numeric");
        const unsigned char *p;
        long len = field_at(b, start, &p);
        unsigned dscale;
        unsigned sign = decode_numeric(p, (size_t)len, &dec_a, &dscale);
        if (isnan(x)) {
            FUZZ_CHECK(sign == 0xC000, "numeric(%a): sign %04x", x, sign);
        } else if (isinf(x)) {
            FUZZ_CHECK(sign == (x > 0 ? 0xD000u : 0xF000u),
                       "numeric(%a): sign %04x", x, sign);
        } else {
            /* numfmt_double's text, as a decimal... */
            char text[NUMFMT_BUFSIZE];
            size_t tn = numfmt_double(text, x);
            long ds, e;
            FUZZ_CHECK(parse_numeric_text(text, tn, &dec_b, &ds, &e) == 1 &&
                       dec_same(&dec_a, &dec_b) && ds == (long)dscale,
                       "numeric(%a): not the decimal of \"%s\"", x, text);
            /* ...which is the double again */
            char back[64];
            size_t k = 0;
            if (dec_a.neg)
                back[k++] = '-';
            back[k++] = '0';
            back[k++] = '.';
            memcpy(back + k, dec_a.d, (size_t)dec_a.nd);
            k += (size_t)dec_a.nd;
            snprintf(back + k, sizeof back - k, "e%ld", dec_a.exp + 1);
            double y = strtod(back, NULL);
            FUZZ_CHECK(y == x, "numeric(%a) reads back as %a (%s)", x, y,
                       back);
        }
        same_as_fast_num("numeric", x, b, start, rc);
        return rc;
    }
    case 14: { /* numeric from text */
        size_t n;
        const char *s = get_str(in, &n);
        long dscale = 0, e = 0;
        int kind = parse_numeric_text(s, n, &dec_b, &dscale, &e);
        rc = copy_put_numeric_str(b, s, n);
        if (kind == 0) {
            /* an exponent over 1000 may be seen before the junk */
            FUZZ_CHECK(rc == SL_EINVAL || rc == SL_ERANGE,
                       "numeric_str(\"%.*s\"): %s", (int)n, s, rc_name(rc));
            return rc;
        }
        int want = SL_OK;
        if (kind == 1 && (e > 1000 || e < -1000 || !numeric_fits(&dec_b,
                                                                 dscale)))
            want = SL_ERANGE;
        FUZZ_CHECK(rc == want, "numeric_str(\"%.*s\"): %s, want %s", (int)n,
                   s, rc_name(rc), rc_name(want));
        if (rc != SL_OK)
            return rc;
        const unsigned char *p;
        long len = field_at(b, start, &p);
        unsigned ds;
        unsigned sign = decode_numeric(p, (size_t)len, &dec_a, &ds);
        static const unsigned signs[] = { 0, 0, 0xC000, 0xD000, 0xF000 };
        if (kind > 1) {
            FUZZ_CHECK(sign == signs[kind], "numeric_str(\"%.*s\"): %04x",
                       (int)n, s, sign);
        } else {
            FUZZ_CHECK(dec_same(&dec_a, &dec_b) && ds == (unsigned)dscale,
                       "numeric_str(\"%.*s\"): %s%.*se%ld scale %u, want "
                       "%s%.*se%ld scale %ld", (int)n, s, dec_a.neg ? "-" : "",
                       (int)dec_a.nd, dec_a.d, dec_a.exp, ds,
                       dec_b.neg ? "-" : "", (int)dec_b.nd, dec_b.d,
                       dec_b.exp, dscale);
        }
        same_as_fast_str("numeric_str", s, n, 0, b, start, rc);
        return rc;
    }
    case 15: case 16: { /* date, timestamp from epoch seconds */
        double x = get_number(in);
        int64_t us = 0;
        int want = copy_epoch_to_usec(x, &us);
        if (op == 15) {
            rc = copy_put_date(b, x);
            CHECK_RC(rc, want, "date");
            if (rc == SL_OK) {
                int32_t d = copy_usec_to_days(us);
                expect_fixed(b, start, 4, (uint32_t)d, "date");
                if (isfinite(x)) {
                    double days = floor(x / 86400) - 10957;
                    FUZZ_CHECK(fabs((double)d - days) <= 1, "date(%a) = %d",
                               x, (int)d);
                }
            }
            same_as_fast_num("date", x, b, start, rc);
        } else {
            rc = copy_put_ts(b, x);
            CHECK_RC(rc, want, "ts");
            if (rc == SL_OK)
                expect_fixed(b, start, 8, (uint64_t)us, "ts");
            same_as_fast_num("ts", x, b, start, rc);
        }
        return rc;
    }
    case 17: case 18: { /* date / timestamp(tz) from any string */
        size_t n;
        const char *s = get_str(in, &n);
        unsigned fl = fuzz_byte(in);
        int tz = fl & 1, utc = (fl >> 1) & 1;
        if (op == 17) {
            int32_t d = 0;
            int want = copy_parse_date(s, n, &d);
            rc = copy_put_date_str(b, s, n, DT_MDY);
            CHECK_RC(rc, want, "date_str");
            if (rc == SL_OK)
                expect_fixed(b, start, 4, (uint32_t)d, "date_str");
            same_as_fast_str("date_str", s, n, 0, b, start, rc);
            return rc;
        }
        int64_t us = 0;
        int32_t off = 0;
        int has = 0;
        int want = copy_parse_timestamp(s, n, &us, &off, &has);
        if (tz) {
            /* the range is checked on the instant, once the offset (or
             * the zone's) is applied */
            dt_fields f;
            want = dt_parse(s, n, DT_MDY, 0, &f);
            if (want == SL_OK)
                want = dt_timestamp(&f, utc ? &tz_rules_utc : NULL, 1, &us);
            FUZZ_CHECK(want != SL_OK || !has || f.kind != DT_VALUE ||
                           -f.tz == off,
                       "offset of \"%.*s\"", (int)n, s);
        }
        rc = copy_put_ts_str(b, s, n, tz, DT_MDY, utc ? &tz_rules_utc : NULL);
        CHECK_RC(rc, want, "ts_str");
        if (rc == SL_OK)
            expect_fixed(b, start, 8, (uint64_t)us, "ts_str");
        same_as_fast_str(tz ? "tstz_str" : "ts_str", s, n, utc, b, start, rc);
        return rc;
    }
    case 19: case 20: { /* dates and timestamps built from fields */
        ts_case c;
        make_ts(in, &c);
        if (op == 19) {
            rc = copy_put_date_str(b, c.s, c.n, DT_MDY);
            CHECK_RC(rc, c.code, c.s);
            if (rc == SL_OK)
                expect_fixed(b, start, 4, (uint32_t)c.days, c.s);
            return rc;
        }
        unsigned fl = fuzz_byte(in);
        int tz = fl & 1, utc = (fl >> 1) & 1;
        int want = c.code;
        int64_t us = c.usec;
        /* the time written must be in range; for timestamptz, then
         * also with its offset applied */
        if (want == SL_OK && tz) {
            if (c.has_off) {
                if (us < TS_END) /* (else saturated: out of range) */
                    us -= (int64_t)c.off * 1000000;
            } else if (!utc) {
                want = SL_ENOZONE;
            }
        }
        if (want == SL_OK && (us < TS_MIN || us >= TS_END))
            want = SL_ERANGE;
        rc = copy_put_ts_str(b, c.s, c.n, tz, DT_MDY,
                             utc ? &tz_rules_utc : NULL);
        CHECK_RC(rc, want, c.s);
        if (rc == SL_OK)
            expect_fixed(b, start, 8, (uint64_t)us, c.s);
        return rc;
    }
    case 21: { /* uuid text in its spellings */
        unsigned char u[16];
        char s[48];
        size_t n = make_uuid(in, u, s);
        rc = copy_put_uuid_str(b, s, n);
        CHECK_RC(rc, SL_OK, s);
        expect_bytes(b, start, (const char *)u, 16, s);
        return rc;
    }
    case 22: { /* uuid from any string */
        size_t n;
        const char *s = get_str(in, &n);
        unsigned char u[16];
        int want = copy_parse_uuid(s, n, u) == SL_OK ? SL_OK : SL_EINVAL;
        rc = copy_put_uuid_str(b, s, n);
        CHECK_RC(rc, want, "uuid_str");
        if (rc == SL_OK)
            expect_bytes(b, start, (const char *)u, 16, "uuid_str");
        return rc;
    }
    default: { /* numeric from a decimal built from digits */
        char s[80];
        size_t k = 0;
        unsigned f = fuzz_byte(in);
        if (f & 1)
            s[k++] = '-';
        unsigned nd = fuzz_byte(in) % 24, nf = fuzz_byte(in) % 24;
        for (unsigned i = 0; i < nd; i++)
            s[k++] = (char)('0' + fuzz_byte(in) % 10);
        if (f & 2) {
            s[k++] = '.';
            for (unsigned i = 0; i < nf; i++)
                s[k++] = (char)('0' + fuzz_byte(in) % 10);
        }
        if (f & 4)
            k += (size_t)snprintf(s + k, 8, "e%d",
                                  (int)(int8_t)fuzz_byte(in) * 4);
        long dscale = 0, e = 0;
        int kind = parse_numeric_text(s, k, &dec_b, &dscale, &e);
        rc = copy_put_numeric_str(b, s, k);
        CHECK_RC(rc, kind == 1 ? SL_OK : SL_EINVAL, "numeric digits");
        if (rc == SL_OK) {
            const unsigned char *p;
            long len = field_at(b, start, &p);
            unsigned ds;
            decode_numeric(p, (size_t)len, &dec_a, &ds);
            FUZZ_CHECK(dec_same(&dec_a, &dec_b) && ds == (unsigned)dscale,
                       "numeric(\"%.*s\")", (int)k, s);
        }
        return rc;
    }
    }
}

/* ----------------------------------------------------- text and CSV rows */

/* The expected rows, as a transcript: per field "N" or "<len>v<bytes>",
 * a newline after each row. */
static void expect_field(sbuf *t, const char *s, size_t n, int null)
{
    char tmp[32];
    if (null) {
        put(t, "N", 1);
        return;
    }
    size_t k = numfmt_uint64(tmp, n);
    tmp[k++] = 'v';
    put(t, tmp, k);
    put(t, s, n);
}

/* copy_put_array_quoted: an array element as array_in reads it back
 * (inside double quotes a backslash takes the next byte as it is). */
static void check_array_quoted(const char *s, size_t n)
{
    sbuf b = { 0 };
    int rc = copy_put_array_quoted(&b, s, n);
    if (memchr(s, 0, n)) {
        CHECK_RC(rc, SL_ENUL, "array_quoted");
        sbuf_free(&b);
        return;
    }
    CHECK_RC(rc, SL_OK, "array_quoted");
    FUZZ_CHECK(b.len >= 2 && b.data[0] == '"' && b.data[b.len - 1] == '"',
               "array element not in quotes");
    size_t k = 0;
    for (size_t i = 1; i + 1 < b.len; i++) {
        char c = b.data[i];
        FUZZ_CHECK(c != '"', "a bare quote inside an array element");
        if (c == '\\') {
            FUZZ_CHECK(i + 2 < b.len, "a backslash escapes the closing quote");
            c = b.data[++i];
        }
        FUZZ_CHECK(k < n && s[k] == c, "array element byte %zu differs", k);
        k++;
    }
    FUZZ_CHECK(k == n, "array element of %zu bytes, want %zu", k, n);
    sbuf_free(&b);
}

/* The fast table's text/CSV row functions (the compiled row writer's):
 * each writes the delimiter first when sep. */
typedef int (*t_null_fn)(void *, int);
typedef int (*t_str_fn)(void *, int, const char *, size_t);
typedef int (*t_num_fn)(void *, int, double, int);
typedef int (*t_bool_fn)(void *, int, int, int);

/* Encode one text/CSV field (the delimiter first when sep) through the
 * writer's functions or, for the value kinds it has, the fast table; its
 * expected value goes to t.  Returns the writer's code. */
static int text_field(fuzz_in *in, copy_writer *w, int sep, sbuf *t)
{
    unsigned sel = fuzz_byte(in), op = sel % 8;
    int via_fast = op <= 4 && (sel / 8) & 1;
    if (sep && !via_fast)
        CHECK_RC(copy_writer_sep(w), SL_OK, "sep");
    switch (op) {
    case 0: {
        int rc = via_fast ? ((t_null_fn)fast("t_null")->fn)(w, sep)
                          : copy_writer_null(w);
        CHECK_RC(rc, SL_OK, "null");
        expect_field(t, NULL, 0, 1);
        return rc;
    }
    case 1: case 2: { /* any bytes */
        size_t n;
        const char *s = get_str(in, &n);
        check_array_quoted(s, n);
        int rc = via_fast ? ((t_str_fn)fast("t_str")->fn)(w, sep, s, n)
                          : copy_writer_field(w, s, n);
        CHECK_RC(rc, memchr(s, 0, n) ? SL_ENUL : SL_OK, "field");
        expect_field(t, s, n, 0);
        return rc;
    }
    case 3: { /* a number for a column kind */
        static const int kinds[] = {
            COPY_K_TEXT, COPY_K_INT2, COPY_K_INT4, COPY_K_INT8,
            COPY_K_FLOAT4, COPY_K_FLOAT8, COPY_K_NUMERIC, COPY_K_DATE,
            COPY_K_TIMESTAMP, COPY_K_TIMESTAMPTZ,
        };
        int kind = kinds[fuzz_byte(in) % 10];
        double x = get_number(in);
        char text[64];
        size_t n = 0;
        int want = copy_number_text(text, x, kind, &n);
        int rc = via_fast ? ((t_num_fn)fast("t_num")->fn)(w, sep, x, kind)
                          : copy_writer_number(w, x, kind);
        CHECK_RC(rc, want, "number");
        if (rc == SL_OK) {
            FUZZ_CHECK(n > 0 && n < 64, "number text of %zu bytes", n);
            expect_field(t, text, n, 0);
        }
        return rc;
    }
    case 4: {
        int v = fuzz_byte(in) & 1;
        int kind = fuzz_byte(in) & 1 ? COPY_K_BOOL : COPY_K_TEXT;
        int rc = via_fast ? ((t_bool_fn)fast("t_bool")->fn)(w, sep, v, kind)
                          : copy_writer_bool(w, v, kind);
        CHECK_RC(rc, SL_OK, "bool");
        const char *s = copy_bool_text(v, kind);
        expect_field(t, s, strlen(s), 0);
        return rc;
    }
    case 5: { /* plain text: copy_writer_plain's alphabet, not empty */
        static const char abc[] = "0123456789abcdefghijklmnopqrstuvwxyz"
                                  "ABCDEFGHIJKLMNOPQRSTUVWXYZ.:+- ";
        size_t n;
        const char *raw = get_str(in, &n);
        char s[STR_MAX + 1];
        for (size_t i = 0; i < n; i++)
            s[i] = abc[(unsigned char)raw[i] % (sizeof abc - 1)];
        if (n == 0)
            s[n++] = '0';
        int rc = copy_writer_plain(w, s, n);
        CHECK_RC(rc, SL_OK, "plain");
        expect_field(t, s, n, 0);
        return rc;
    }
    case 7: { /* the escapers themselves; CSV with force_quote (a value
               * that equals a sink's NULL text) */
        size_t n;
        const char *s = get_str(in, &n);
        sbuf *b = &w->buf;
        size_t start = b->len;
        int rc = w->format == COPY_FMT_CSV
                     ? copy_put_csv_field_delim(b, s, n, w->delim, 1)
                     : copy_put_text_escaped_delim(b, s, n, w->delim);
        CHECK_RC(rc, memchr(s, 0, n) ? SL_ENUL : SL_OK, "escaper");
        if (rc == SL_OK && w->format == COPY_FMT_CSV)
            FUZZ_CHECK(b->len > start && b->data[start] == '"',
                       "force_quote: not quoted");
        expect_field(t, s, n, 0);
        return rc;
    }
    default: { /* bytea: its \x hex, through the field writer */
        size_t n;
        const char *s = get_str(in, &n);
        sbuf hex = { 0 };
        int rc = copy_put_bytea_hex(&hex, s, n);
        CHECK_RC(rc, SL_OK, "bytea_hex");
        FUZZ_CHECK(hex.len == 2 + 2 * n && memcmp(hex.data, "\\x", 2) == 0,
                   "bytea hex");
        for (size_t i = 0; i < n; i++) {
            unsigned v = (unsigned)strtoul((char[]){ hex.data[2 + 2 * i],
                                           hex.data[3 + 2 * i], 0 }, NULL, 16);
            FUZZ_CHECK(v == (unsigned char)s[i], "bytea hex byte %zu", i);
        }
        rc = copy_writer_field(w, hex.data, hex.len);
        CHECK_RC(rc, SL_OK, "bytea field");
        expect_field(t, hex.data, hex.len, 0);
        sbuf_free(&hex);
        return rc;
    }
    }
}

/* PostgreSQL's CopyReadAttributesText on the line s[0..n) (no line end),
 * into transcript t.  NULL is the raw text \N. */
static void decode_text_line(const char *s, size_t n, int delim, sbuf *t)
{
    size_t i = 0;
    sbuf f = { 0 };
    for (;;) {
        size_t start = i;
        f.len = 0;
        int end = 1;
        while (i < n) {
            unsigned char c = (unsigned char)s[i++];
            if (c == delim) {
                end = 0;
                break;
            }
            FUZZ_CHECK(c != '\r', "a bare CR in text format");
            if (c != '\\' || i == n) {
                FUZZ_CHECK(c != '\\', "a backslash ends a text line");
                put(&f, &c, 1);
                continue;
            }
            c = (unsigned char)s[i++];
            /* CopyReadLineText reads \. as the end of the data */
            FUZZ_CHECK(c != '.', "\\. in a text line");
            int v;
            switch (c) {
            case '0': case '1': case '2': case '3':
            case '4': case '5': case '6': case '7':
                v = c - '0';
                for (int k = 0; k < 2 && i < n && s[i] >= '0' && s[i] <= '7';
                     k++)
                    v = v * 8 + (s[i++] - '0');
                c = (unsigned char)v;
                break;
            case 'x':
                if (i < n && strchr("0123456789abcdefABCDEF", s[i]) && s[i]) {
                    char h[3] = { s[i++], 0, 0 };
                    if (i < n && strchr("0123456789abcdefABCDEF", s[i]) &&
                        s[i])
                        h[1] = s[i++];
                    c = (unsigned char)strtoul(h, NULL, 16);
                }
                break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case 'v': c = '\v'; break;
            default: break;
            }
            put(&f, &c, 1);
        }
        size_t raw = i - start - !end;
        if (raw == 2 && memcmp(s + start, "\\N", 2) == 0) {
            expect_field(t, NULL, 0, 1);
        } else {
            expect_field(t, f.data, f.len, 0);
            /* the core's own decoder (COPY TO's rows) agrees */
            char *u = malloc(raw + 1);
            if (!u)
                abort();
            memcpy(u, s + start, raw);
            size_t k = copy_unescape_text(u, raw);
            FUZZ_CHECK(k == f.len && (k == 0 || memcmp(u, f.data, k) == 0),
                       "copy_unescape_text(\"%.*s\") differs", (int)raw,
                       s + start);
            free(u);
        }
        if (end)
            break;
    }
    sbuf_free(&f);
}

/* PostgreSQL's CopyReadAttributesCSV (quote and escape '"') on one line
 * s[0..n) (quoted line ends inside it are data), into transcript t.
 * NULL is an unquoted empty field. */
static void decode_csv_line(const char *s, size_t n, int delim, sbuf *t)
{
    /* CopyReadLineText: \. alone on a line ends the data */
    FUZZ_CHECK(!(n == 2 && s[0] == '\\' && s[1] == '.'),
               "a CSV line is the end-of-data marker \\.");
    size_t i = 0;
    sbuf f = { 0 };
    int last = 0;
    while (!last) {
        f.len = 0;
        int saw_quote = 0;
        last = 1;
        for (;;) {
            /* outside quotes: to the delimiter, the end, or a quote */
            int quote = 0;
            while (i < n) {
                char c = s[i++];
                if ((unsigned char)c == delim) {
                    last = 0;
                    break;
                }
                if (c == '"') {
                    quote = saw_quote = 1;
                    break;
                }
                FUZZ_CHECK(c != '\r' && c != '\n', "a bare line end in CSV");
                put(&f, &c, 1);
            }
            if (!quote)
                break;
            /* inside: "" is a quote, " ends them */
            for (;;) {
                FUZZ_CHECK(i < n, "an unterminated CSV quoted field");
                char c = s[i++];
                if (c == '"' && i < n && s[i] == '"') {
                    put(&f, &c, 1);
                    i++;
                } else if (c == '"') {
                    break;
                } else {
                    put(&f, &c, 1);
                }
            }
        }
        expect_field(t, f.data, f.len, !saw_quote && f.len == 0);
    }
    sbuf_free(&f);
}

/* Split the committed rows into lines and decode each. */
static void decode_rows(const copy_writer *w, sbuf *t)
{
    const char *s = w->buf.data;
    size_t n = w->committed, i = 0;
    while (i < n) {
        size_t e = i;
        int q = 0;
        /* a line ends at a LF outside quotes (CSV) */
        while (e < n && (s[e] != '\n' || q)) {
            if (w->format == COPY_FMT_CSV && s[e] == '"')
                q = !q;
            e++;
        }
        FUZZ_CHECK(e < n, "the last row has no line end");
        if (w->format == COPY_FMT_CSV)
            decode_csv_line(s + i, e - i, w->delim, t);
        else
            decode_text_line(s + i, e - i, w->delim, t);
        put(t, "\n", 1);
        i = e + 1;
    }
}

/* --------------------------------------------------------------- target */

static sbuf want_t, got_t; /* kept across runs */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_in in = { data, size };
    unsigned fmt = fuzz_byte(&in), dl = fuzz_byte(&in);
    copy_writer w = { 0 };
    w.format = (fmt & 3) == 0 ? COPY_FMT_TEXT : (fmt & 3) == 1 ? COPY_FMT_CSV
                                                              : COPY_FMT_BINARY;
    w.delim = w.format == COPY_FMT_CSV ? ',' : '\t';
    w.chunk = (size_t)64 << (fuzz_byte(&in) % 10);
    w.zone = &tz_rules_utc;
    if (w.format != COPY_FMT_BINARY && (fmt & 4)) {
        /* a sink's delimiter: as sink.lua allows it */
        int ok = dl && dl != '\r' && dl != '\n' && dl != '\\' && dl != '"';
        if (w.format == COPY_FMT_TEXT)
            ok &= !strchr("abcdefghijklmnopqrstuvwxyz"
                          "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-+: ", (int)dl);
        if (ok) {
            w.delim = (int)dl;
            w.custom = 1;
        }
    }
    sbuf *t = &want_t;
    t->len = 0;
    if (w.format == COPY_FMT_BINARY) {
        CHECK_RC(copy_put_binary_header(&w.buf), SL_OK, "header");
        w.committed = w.buf.len;
    }
    size_t rows = 0, trows = 0;
    while (fuzz_left(&in) && rows < 64) {
        int ncols = 1 + (int)(fuzz_byte(&in) % 8);
        w.ncols = ncols;
        size_t tmark = t->len;
        CHECK_RC(copy_writer_row_begin(&w), SL_OK, "row begin");
        FUZZ_CHECK(w.buf.len == w.committed + (w.format == COPY_FMT_BINARY
                   ? 2 : 0), "row begin keeps a dropped row");
        int ok = 1;
        for (int c = 0; c < ncols && ok; c++) {
            int rc;
            if (w.format == COPY_FMT_BINARY) {
                rc = binary_field(&in, &w.buf);
            } else {
                rc = text_field(&in, &w, c > 0, t);
            }
            ok = rc == SL_OK;
        }
        rows++;
        if (!ok) {
            t->len = tmark; /* dropped: the next row_begin cuts it off */
            continue;
        }
        uint64_t before = w.rows;
        int end = copy_writer_row_end(&w);
        FUZZ_CHECK(end == (w.committed >= w.chunk) && w.rows == before + 1 &&
                   w.committed == w.buf.len, "row end: %d", end);
        if (w.format != COPY_FMT_BINARY)
            put(t, "\n", 1);
        trows++;
    }
    w.buf.len = w.committed;

    if (w.format == COPY_FMT_BINARY) {
        /* header, rows of the right field counts and lengths, trailer */
        CHECK_RC(copy_put_binary_trailer(&w.buf), SL_OK, "trailer");
        const unsigned char *p = (const unsigned char *)w.buf.data;
        size_t n = w.buf.len, i = 19, nrows = 0;
        FUZZ_CHECK(n >= 21 && memcmp(p, "PGCOPY\n\377\r\n\0", 11) == 0 &&
                   be32(p + 11) == 0 && be32(p + 15) == 0, "binary header");
        for (;;) {
            FUZZ_CHECK(i + 2 <= n, "binary stream cut short");
            unsigned cnt = (unsigned)be_n(p + i, 2);
            i += 2;
            if (cnt == 0xFFFF)
                break;
            FUZZ_CHECK(cnt >= 1 && cnt <= 8, "row of %u fields", cnt);
            for (unsigned k = 0; k < cnt; k++) {
                FUZZ_CHECK(i + 4 <= n, "binary field cut short");
                uint32_t len = be32(p + i);
                i += 4;
                if (len != 0xFFFFFFFFu) {
                    FUZZ_CHECK(len <= n - i, "field length %u", len);
                    i += len;
                }
            }
            nrows++;
        }
        FUZZ_CHECK(i == n && nrows == trows, "binary stream: %zu rows, %zu "
                   "bytes after the trailer", nrows, n - i);
    } else {
        sbuf *g = &got_t;
        g->len = 0;
        decode_rows(&w, g);
        if (g->len != t->len || (t->len && memcmp(g->data, t->data,
                                                  t->len) != 0)) {
            size_t i = 0;
            while (i < t->len && i < g->len && t->data[i] == g->data[i])
                i++;
            FUZZ_CHECK(0, "%s rows (delimiter 0x%02x) decode differently at "
                       "byte %zu:\n  want %.*s\n  got  %.*s",
                       w.format == COPY_FMT_CSV ? "CSV" : "text", w.delim, i,
                       (int)(t->len - i < 200 ? t->len - i : 200),
                       t->data + i,
                       (int)(g->len - i < 200 ? g->len - i : 200),
                       g->data + i);
        }
    }
    sbuf_free(&w.buf);
    return 0;
}
