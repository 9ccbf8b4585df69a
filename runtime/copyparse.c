/*
 * copyparse.c - values as the server reads them from text (see
 * copyparse.h): integers, floats, booleans, uuids, numerics; dates and
 * timestamps through datetime.c; and dates and timestamps written back
 * as text.
 *
 * Caveats:
 * - Each parser follows the server's input function for its type
 *   (int8in, float8in/float4in, boolin, uuid_in, numeric_in, and
 *   date_in/timestamp_in in datetime.c), so a string a binary COPY takes
 *   is one a text COPY takes, with the same value; the forms not read
 *   here are refused, never misread.
 * - Dates are formatted from day counts on the proleptic Gregorian
 *   calendar, in int64 arithmetic.
 */
#include "copyparse.h"
#include "datetime.h"
#include "numfmt.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USECS_PER_DAY INT64_C(86400000000)
#define UNIX_TO_PG_DAYS 10957 /* days from 1970-01-01 to 2000-01-01 */

/* ------------------------------------------------------------- parsers */

static int is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
           c == '\v';
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* Trim surrounding spaces: *s and *n are updated. */
static void trim(const char **s, size_t *n)
{
    while (*n > 0 && is_space((unsigned char)**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && is_space((unsigned char)(*s)[*n - 1]))
        (*n)--;
}

/* Case-insensitive equality of s[0..n) and the lowercase word w. */
static int word_is(const char *s, size_t n, const char *w)
{
    size_t k = strlen(w);
    if (n != k)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)s[i]) != w[i])
            return 0;
    return 1;
}

int copy_parse_int64(const char *s, size_t n, int64_t *out)
{
    trim(&s, &n);
    int rc = numparse_int64(s, n, out);
    return rc == 0 ? SL_OK : rc > 0 ? SL_ERANGE : SL_EINVAL;
}

int copy_parse_double(const char *s, size_t n, double *out)
{
    trim(&s, &n);
    if (n >= 512) /* no float8 text is that long */
        return SL_EINVAL;
    double x;
    int rc = numparse_double(s, n, &x);
    if (rc < 0)
        return SL_EINVAL;
    /* like float8in: overflow and underflow to zero are errors,
     * denormals are fine */
    if (rc > 0)
        return SL_ERANGE;
    *out = x;
    return SL_OK;
}

int copy_parse_float(const char *s, size_t n, float *out)
{
    trim(&s, &n);
    double x;
    if (n >= 512 || numparse_double(s, n, &x) < 0) /* the syntax */
        return SL_EINVAL;
    /* float4in reads with strtof: one rounding, straight to float.  A
     * double rounded again to float can land one ulp away (a string
     * just above a halfway point becomes the halfway double, which then
     * rounds to even). */
    char buf[512];
    memcpy(buf, s, n);
    buf[n] = '\0';
    errno = 0;
    float f = strtof(buf, NULL);
    if (errno == ERANGE && (f == 0.0f || isinf(f)))
        return SL_ERANGE;
    *out = f;
    return SL_OK;
}

int copy_parse_bool(const char *s, size_t n, int *out)
{
    /* boolin: these words or any unique prefix of them */
    static const struct { const char *w; size_t min; int v; } words[] = {
        { "true", 1, 1 }, { "yes", 1, 1 }, { "on", 2, 1 }, { "1", 1, 1 },
        { "false", 1, 0 }, { "no", 1, 0 }, { "off", 2, 0 }, { "0", 1, 0 },
    };
    trim(&s, &n);
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        size_t k = strlen(words[i].w);
        if (n < words[i].min || n > k)
            continue;
        size_t j = 0;
        while (j < n && lower((unsigned char)s[j]) == words[i].w[j])
            j++;
        if (j == n) {
            *out = words[i].v;
            return SL_OK;
        }
    }
    return SL_EINVAL;
}


int copy_parse_uuid(const char *s, size_t n, unsigned char out[16])
{
    /* uuid_in: optional braces; a hyphen may follow any group of four
     * hex digits */
    size_t i = 0;
    int brace = 0;
    if (n > 0 && s[0] == '{') {
        brace = 1;
        i++;
    }
    for (int k = 0; k < 16; k++) {
        if (i + 2 > n)
            return SL_EINVAL;
        int hi = numparse_hex_digit((unsigned char)s[i]), lo = numparse_hex_digit((unsigned char)s[i + 1]);
        if (hi < 0 || lo < 0)
            return SL_EINVAL;
        out[k] = (unsigned char)(hi << 4 | lo);
        i += 2;
        if (i < n && s[i] == '-' && (k % 2) == 1 && k < 15)
            i++;
    }
    if (brace) {
        if (i >= n || s[i] != '}')
            return SL_EINVAL;
        i++;
    }
    return i == n ? SL_OK : SL_EINVAL;
}

/* ------------------------------------------------------------ numeric */

#define NUMERIC_POS 0x0000
#define NUMERIC_NEG 0x4000
#define NUMERIC_NAN 0xC000
#define NUMERIC_PINF 0xD000
#define NUMERIC_NINF 0xF000
#define NUMERIC_DSCALE_MAX 0x3FFF
#define NUMERIC_MAX_EXPONENT 1000 /* numeric_in's limit on e+NNN */
#define NUMERIC_MAX_NDIGITS 3000  /* numeric_recv's limit on digits */

static int floordiv4(long e)
{
    return (int)(e >= 0 ? e / 4 : -((-e + 3) / 4));
}

static int put_numeric_special(sbuf *b, uint16_t sign)
{
    if (sbuf_reserve(b, 8))
        return SL_ENOMEM;
    sbuf_put_be16(b, 0);
    sbuf_put_be16(b, 0);
    sbuf_put_be16(b, sign);
    sbuf_put_be16(b, 0);
    return SL_OK;
}

/* A finite decimal as written: its integer digits s[int_start..) and
 * fraction digits s[frac_start..), and the exponent after e. */
typedef struct decimal {
    const char *s;
    size_t int_start, int_len, frac_start, frac_len;
    long exp10;
    int neg;
} decimal;

/* Digit k of the number (integer digits, then fraction digits). */
static inline int dec_digit(const decimal *d, long k)
{
    return k < (long)d->int_len ? d->s[d->int_start + (size_t)k] - '0'
                                : d->s[d->frac_start + (size_t)k -
                                       d->int_len] - '0';
}

/* [+-]digits[.digits][e[+-]digits] from s[i..n) (the whole rest). */
static int parse_decimal(const char *s, size_t n, size_t i, decimal *d)
{
    d->s = s;
    d->int_start = i;
    while (i < n && is_digit((unsigned char)s[i]))
        i++;
    d->int_len = i - d->int_start;
    d->frac_start = i;
    d->frac_len = 0;
    if (i < n && s[i] == '.') {
        d->frac_start = ++i;
        while (i < n && is_digit((unsigned char)s[i]))
            i++;
        d->frac_len = i - d->frac_start;
    }
    if (d->int_len + d->frac_len == 0)
        return SL_EINVAL;
    d->exp10 = 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        int eneg = 0;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            eneg = s[i++] == '-';
        if (i == n || !is_digit((unsigned char)s[i]))
            return SL_EINVAL;
        while (i < n && is_digit((unsigned char)s[i])) {
            if (d->exp10 <= NUMERIC_MAX_EXPONENT)
                d->exp10 = d->exp10 * 10 + (s[i] - '0');
            i++;
        }
        if (d->exp10 > NUMERIC_MAX_EXPONENT)
            return SL_ERANGE;
        if (eneg)
            d->exp10 = -d->exp10;
    }
    return i == n ? SL_OK : SL_EINVAL;
}

/* The binary body of a parsed decimal: base-10000 digit groups. */
static int put_decimal(sbuf *b, const decimal *d)
{
    /* digit k of the string has decimal exponent point - 1 - k */
    long nd = (long)(d->int_len + d->frac_len);
    long point = (long)d->int_len + d->exp10;
    long dscale = (long)d->frac_len - d->exp10;
    if (dscale < 0)
        dscale = 0;
    if (dscale > NUMERIC_DSCALE_MAX)
        return SL_ERANGE;
    long first = 0, last = nd - 1;
    while (first < nd && dec_digit(d, first) == 0)
        first++;
    if (first == nd) { /* zero keeps its display scale; its sign is + */
        if (sbuf_reserve(b, 8))
            return SL_ENOMEM;
        sbuf_put_be16(b, 0);
        sbuf_put_be16(b, 0);
        sbuf_put_be16(b, NUMERIC_POS);
        sbuf_put_be16(b, (uint16_t)dscale);
        return SL_OK;
    }
    while (dec_digit(d, last) == 0)
        last--;
    int weight = floordiv4(point - 1 - first);
    int low = floordiv4(point - 1 - last);
    long ndigits = (long)weight - low + 1;
    if (weight > INT16_MAX || low < INT16_MIN || ndigits > NUMERIC_MAX_NDIGITS)
        return SL_ERANGE;
    if (sbuf_reserve(b, 8 + 2 * (size_t)ndigits))
        return SL_ENOMEM;
    sbuf_put_be16(b, (uint16_t)ndigits);
    sbuf_put_be16(b, (uint16_t)(int16_t)weight);
    sbuf_put_be16(b, d->neg ? NUMERIC_NEG : NUMERIC_POS);
    sbuf_put_be16(b, (uint16_t)dscale);
    for (long g = weight; g >= low; g--) {
        unsigned v = 0;
        for (int j = 3; j >= 0; j--) {
            long k = point - 1 - (4 * g + j);
            v = v * 10 + (unsigned)(k >= 0 && k < nd ? dec_digit(d, k) : 0);
        }
        sbuf_put_be16(b, (uint16_t)v);
    }
    return SL_OK;
}

int copy_put_numeric_text(sbuf *b, const char *s, size_t n)
{
    trim(&s, &n);
    size_t i = 0;
    int neg = 0;
    if (word_is(s, n, "nan"))
        return put_numeric_special(b, NUMERIC_NAN);
    if (i < n && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    if (word_is(s + i, n - i, "infinity") || word_is(s + i, n - i, "inf"))
        return put_numeric_special(b, neg ? NUMERIC_NINF : NUMERIC_PINF);
    decimal d;
    int rc = parse_decimal(s, n, i, &d);
    if (rc != SL_OK)
        return rc;
    d.neg = neg;
    return put_decimal(b, &d);
}

/* ----------------------------------------------------- dates and times */

/* The proleptic Gregorian date of day z since 1970-01-01 (H. Hinnant's
 * civil_from_days). */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* PostgreSQL's timestamp range in days since 2000-01-01: 4714-11-24 BC
 * (Julian day 0) up to, not including, 294277-01-01 (its END_TIMESTAMP).
 * Checking days before multiplying keeps usec arithmetic inside int64:
 * 294277 years of microseconds is about 9.2234e18, just under INT64_MAX. */
#define TS_MIN_DAYS INT64_C(-2451545)
#define TS_END_DAYS INT64_C(106751983)
int copy_ts_in_range(int64_t usec)
{
    return usec == COPY_TS_NOEND || usec == COPY_TS_NOBEGIN ||
           (usec >= TS_MIN_DAYS * USECS_PER_DAY &&
            usec < TS_END_DAYS * USECS_PER_DAY);
}

int copy_parse_timestamp(const char *s, size_t n, int64_t *usec,
                         int32_t *offset_sec, int *has_offset)
{
    dt_fields f;
    int rc = dt_parse(s, n, DT_MDY, 0, &f);
    if (rc != SL_OK)
        return rc;
    /* an offset means nothing to epoch (UTC) and the infinities */
    *offset_sec = f.has_tz && f.kind == DT_VALUE ? -f.tz : 0;
    *has_offset = (f.has_tz && f.kind == DT_VALUE) || f.kind == DT_EPOCH;
    return dt_timestamp(&f, NULL, 0, usec);
}

int copy_parse_date(const char *s, size_t n, int32_t *days)
{
    dt_fields f;
    int rc = dt_parse(s, n, DT_MDY, 1, &f);
    return rc != SL_OK ? rc : dt_date(&f, days);
}

int copy_epoch_to_usec(double secs, int64_t *usec)
{
    if (isnan(secs))
        return SL_EINVAL;
    if (isinf(secs)) {
        *usec = secs > 0 ? COPY_TS_NOEND : COPY_TS_NOBEGIN;
        return SL_OK;
    }
    /* seconds and fraction apart, so large epochs keep their
     * microseconds: the fraction is exact, only its rounding is ours */
    double whole = floor(secs);
    if (whole < -9.2e12 || whole > 9.2e12)
        return SL_ERANGE;
    int64_t us = (int64_t)llround((secs - whole) * 1e6);
    *usec = ((int64_t)whole - INT64_C(946684800)) * INT64_C(1000000) + us;
    return SL_OK;
}

int32_t copy_usec_to_days(int64_t usec)
{
    if (usec == COPY_TS_NOEND)
        return COPY_DATE_NOEND;
    if (usec == COPY_TS_NOBEGIN)
        return COPY_DATE_NOBEGIN;
    int64_t d = usec / USECS_PER_DAY;
    if (usec % USECS_PER_DAY < 0)
        d--;
    return (int32_t)d;
}

static size_t format_ymd(char *buf, int64_t pg_days, int *bc)
{
    int64_t y;
    unsigned m, d;
    civil_from_days(pg_days + UNIX_TO_PG_DAYS, &y, &m, &d);
    *bc = y <= 0;
    if (*bc)
        y = 1 - y; /* year 0 is 1 BC */
    return (size_t)snprintf(buf, 24, "%04lld-%02u-%02u", (long long)y, m, d);
}

size_t copy_format_timestamp(char *buf, int64_t usec, int with_tz)
{
    if (usec == COPY_TS_NOEND) {
        memcpy(buf, "infinity", 9);
        return 8;
    }
    if (usec == COPY_TS_NOBEGIN) {
        memcpy(buf, "-infinity", 10);
        return 9;
    }
    int64_t days = usec / USECS_PER_DAY, rem = usec % USECS_PER_DAY;
    if (rem < 0) {
        rem += USECS_PER_DAY;
        days--;
    }
    int bc;
    size_t n = format_ymd(buf, days, &bc);
    int64_t secs = rem / 1000000;
    int frac = (int)(rem % 1000000);
    n += (size_t)snprintf(buf + n, 16, " %02d:%02d:%02d", (int)(secs / 3600),
                          (int)(secs / 60 % 60), (int)(secs % 60));
    if (frac) {
        n += (size_t)snprintf(buf + n, 8, ".%06d", frac);
        while (buf[n - 1] == '0')
            n--;
    }
    if (with_tz) {
        memcpy(buf + n, "+00", 3);
        n += 3;
    }
    if (bc) {
        memcpy(buf + n, " BC", 3);
        n += 3;
    }
    buf[n] = '\0';
    return n;
}

size_t copy_format_date(char *buf, int32_t days)
{
    if (days == COPY_DATE_NOEND) {
        memcpy(buf, "infinity", 9);
        return 8;
    }
    if (days == COPY_DATE_NOBEGIN) {
        memcpy(buf, "-infinity", 10);
        return 9;
    }
    int bc;
    size_t n = format_ymd(buf, days, &bc);
    if (bc) {
        memcpy(buf + n, " BC", 4);
        n += 3;
    }
    return n;
}
