/*
 * numbers.c - libFuzzer target: the number and date/time text of the
 * core (numfmt.h, copyparse.h, copy_format_double/number in copy.h).
 *
 * Each input is used twice:
 * - as text: numparse_double/int64 against the C library (strtod,
 *   strtoll) on a grammar of the harness's own (numparse is strict: no
 *   spaces, no hex, no "nan(...)"), the copy_parse_* wrappers against
 *   the same with spaces trimmed, boolin and uuid_in rewritten from the
 *   server's source, and timestamps and dates parsed, formatted and
 *   parsed again (the same value);
 * - its first 8 bytes as a double / int64 (4 as an int32): numfmt_double
 *   must read back bit for bit, numfmt_int64/uint64 must equal printf,
 *   copy_format_double must hold printf("%.*e")'s digits, and each
 *   column kind's copy_format_number must read back as its value.
 * Any difference aborts (libFuzzer saves the input).
 */
#include "fuzz.h"

#include "copy.h"
#include "copyparse.h"
#include "numfmt.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>

#define USECS_PER_DAY INT64_C(86400000000)

/* ----------------------------------------------------------- helpers */

static int is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
           c == '\v';
}

static void trim(const char **s, size_t *n)
{
    while (*n > 0 && is_space((unsigned char)**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && is_space((unsigned char)(*s)[*n - 1]))
        (*n)--;
}

/* s[0..n) as a C string (the caller frees it). */
static char *cstr(const char *s, size_t n)
{
    char *z = malloc(n + 1);
    if (!z)
        abort();
    memcpy(z, s, n);
    z[n] = '\0';
    return z;
}

static int ieq(const char *s, size_t n, const char *w)
{
    if (strlen(w) != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c >= 'A' && c <= 'Z')
            c += 32;
        if (c != w[i])
            return 0;
    }
    return 1;
}

static int same_double(double a, double b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b) && !signbit(a) == !signbit(b);
    return memcmp(&a, &b, sizeof a) == 0;
}

/* The whole of s[0..n) is a number numparse_double must read:
 * [+-] (digits [. digits] | . digits) [e [+-] digits], or [+-] inf,
 * infinity, nan in any case. */
static int double_syntax(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        i++;
    if (ieq(s + i, n - i, "inf") || ieq(s + i, n - i, "infinity") ||
        ieq(s + i, n - i, "nan"))
        return 1;
    size_t digits = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++, digits++;
    if (i < n && s[i] == '.')
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            digits++;
    if (!digits)
        return 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t e = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++, e++;
        if (!e)
            return 0;
    }
    return i == n;
}

static int int_syntax(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        i++;
    if (i == n)
        return 0;
    for (; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* The decimal value of a number's text as its significant digits (no
 * leading or trailing zeros) and the power of ten of the first one;
 * accepts fixed ("-12.5") and printf's %e ("1.25e+01") forms. */
typedef struct decimal {
    int neg;
    char digits[64];
    int nd;
    long exp;
} decimal;

static void to_decimal(const char *s, decimal *d)
{
    memset(d, 0, sizeof *d);
    if (*s == '-') {
        d->neg = 1;
        s++;
    }
    long point = -1, seen = 0; /* digits before the point */
    long lead = 0;             /* leading zeros skipped */
    for (; *s && *s != 'e'; s++) {
        if (*s == '.') {
            point = seen;
            continue;
        }
        seen++;
        if (d->nd == 0 && *s == '0') {
            lead++;
            continue;
        }
        if (d->nd < (int)sizeof d->digits - 1)
            d->digits[d->nd++] = *s;
    }
    if (point < 0)
        point = seen;
    long e = *s == 'e' ? strtol(s + 1, NULL, 10) : 0;
    while (d->nd > 0 && d->digits[d->nd - 1] == '0')
        d->nd--;
    d->digits[d->nd] = '\0';
    d->exp = point - 1 - lead + e;
}

/* ----------------------------------------------------- text -> value */

static void check_numparse(const char *s, size_t n)
{
    char *z = cstr(s, n);
    int ok = double_syntax(s, n);
    double got = 0;
    int rc = numparse_double(s, n, &got);
    if (!ok) {
        FUZZ_CHECK(rc == -1, "numparse_double took \"%s\" (%d)", z, rc);
    } else {
        char *end;
        errno = 0;
        double want = strtod(z, &end);
        int range = errno == ERANGE && (want == 0 || isinf(want));
        FUZZ_CHECK(end == z + n, "strtod stops early in \"%s\"", z);
        FUZZ_CHECK(rc == (range ? 2 : 0), "numparse_double(\"%s\") = %d", z,
                   rc);
        FUZZ_CHECK(same_double(got, want), "numparse_double(\"%s\") = %a, "
                   "strtod %a", z, got, want);
    }

    int64_t v = 0;
    rc = numparse_int64(s, n, &v);
    if (!int_syntax(s, n)) {
        FUZZ_CHECK(rc == -1, "numparse_int64 took \"%s\" (%d)", z, rc);
    } else {
        errno = 0;
        long long want = strtoll(z, NULL, 10);
        if (errno == ERANGE) {
            FUZZ_CHECK(rc == 1, "numparse_int64(\"%s\") = %d, not 1", z, rc);
        } else {
            FUZZ_CHECK(rc == 0 && v == want, "numparse_int64(\"%s\") = %d "
                       "%" PRId64 ", strtoll %lld", z, rc, v, want);
        }
    }
    free(z);
}

/* The copy_parse_* wrappers: spaces trimmed, then the same rules. */
static void check_copy_parse(const char *s0, size_t n0)
{
    const char *s = s0;
    size_t n = n0;
    trim(&s, &n);
    char *z = cstr(s, n);

    int64_t v = 0, v2 = 0;
    int rc = copy_parse_int64(s0, n0, &v);
    int want = numparse_int64(s, n, &v2);
    FUZZ_CHECK(rc == (want == 0 ? SL_OK : want > 0 ? SL_ERANGE : SL_EINVAL),
               "copy_parse_int64(\"%s\") = %d", z, rc);
    FUZZ_CHECK(rc != SL_OK || v == v2, "copy_parse_int64(\"%s\")", z);

    double x = 0, x2 = 0;
    rc = copy_parse_double(s0, n0, &x);
    want = n >= 512 ? -1 : numparse_double(s, n, &x2);
    FUZZ_CHECK(rc == (want == 0 ? SL_OK : want > 0 ? SL_ERANGE : SL_EINVAL),
               "copy_parse_double(\"%s\") = %d", z, rc);
    FUZZ_CHECK(rc != SL_OK || same_double(x, x2), "copy_parse_double(\"%s\")",
               z);

    /* float4in: strtof, one rounding straight to float */
    float f = 0;
    rc = copy_parse_float(s0, n0, &f);
    if (n >= 512 || !double_syntax(s, n)) {
        FUZZ_CHECK(rc == SL_EINVAL, "copy_parse_float(\"%s\") = %d", z, rc);
    } else {
        errno = 0;
        float wf = strtof(z, NULL);
        int range = errno == ERANGE && (wf == 0 || isinf(wf));
        FUZZ_CHECK(rc == (range ? SL_ERANGE : SL_OK),
                   "copy_parse_float(\"%s\") = %d", z, rc);
        FUZZ_CHECK(rc != SL_OK || same_double(f, wf),
                   "copy_parse_float(\"%s\") = %a, strtof %a", z, f, wf);
    }
    free(z);
}

/* PostgreSQL's parse_bool_with_len (boolin), on the trimmed text. */
static int ref_bool(const char *s, size_t n, int *out)
{
    trim(&s, &n);
    if (n == 0)
        return 0;
    char lc[8];
    if (n > 5)
        return 0;
    for (size_t i = 0; i < n; i++)
        lc[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);
    static const struct { const char *w; size_t min; int v; } words[] = {
        { "true", 1, 1 }, { "false", 1, 0 }, { "yes", 1, 1 }, { "no", 1, 0 },
        { "on", 2, 1 },   { "off", 2, 0 },   { "1", 1, 1 },   { "0", 1, 0 },
    };
    for (size_t k = 0; k < sizeof words / sizeof words[0]; k++)
        if (n >= words[k].min && n <= strlen(words[k].w) &&
            memcmp(lc, words[k].w, n) == 0) {
            *out = words[k].v;
            return 1;
        }
    return 0;
}

/* PostgreSQL's string_to_uuid (uuid_in): no spaces, optional braces, a
 * hyphen allowed after any group of four hex digits. */
static int ref_uuid(const char *s, size_t n, unsigned char out[16])
{
    size_t i = 0;
    int braces = n > 0 && s[0] == '{';
    i += (size_t)braces;
    for (int k = 0; k < 16; k++) {
        if (i + 1 >= n)
            return 0;
        char hx[3] = { s[i], s[i + 1], 0 };
        if (!strchr("0123456789abcdefABCDEF", hx[0]) || !hx[0] ||
            !strchr("0123456789abcdefABCDEF", hx[1]) || !hx[1])
            return 0;
        out[k] = (unsigned char)strtoul(hx, NULL, 16);
        i += 2;
        if (i < n && s[i] == '-' && k % 2 == 1 && k < 15)
            i++;
    }
    if (braces) {
        if (i >= n || s[i] != '}')
            return 0;
        i++;
    }
    return i == n;
}

static void check_bool_uuid(const char *s, size_t n)
{
    int b = -1, wb = -1;
    int rc = copy_parse_bool(s, n, &b);
    int ok = ref_bool(s, n, &wb);
    FUZZ_CHECK((rc == SL_OK) == ok && (!ok || b == wb),
               "copy_parse_bool(\"%.*s\") = %d %d, boolin %d %d", (int)n, s,
               rc, b, ok, wb);

    unsigned char u[16], wu[16];
    rc = copy_parse_uuid(s, n, u);
    ok = ref_uuid(s, n, wu);
    FUZZ_CHECK((rc == SL_OK) == ok && (!ok || memcmp(u, wu, 16) == 0),
               "copy_parse_uuid(\"%.*s\") = %d, uuid_in %d", (int)n, s, rc,
               ok);
}

/* Dates and timestamps: parse, format, parse again. */
static void check_datetime(const char *s, size_t n)
{
    int64_t us = 0, us2 = 0;
    int32_t off = 0, off2 = 0, days = 0, days2 = 0;
    int has = 0, has2 = 0;
    char buf[64];
    int rc = copy_parse_timestamp(s, n, &us, &off, &has);
    int drc = copy_parse_date(s, n, &days);
    FUZZ_CHECK(rc == SL_OK || rc == SL_EINVAL || rc == SL_ERANGE ||
                   rc == SL_ETZRANGE || rc == SL_ESERVERONLY || rc == SL_ENUL,
               "rc %d", rc);
    /* one parse: only the ranges differ (and date_in's smaller field
     * buffer, for long strings) */
    FUZZ_CHECK(n > 100 || (rc == SL_OK || rc == SL_ERANGE) ==
                              (drc == SL_OK || drc == SL_ERANGE),
               "timestamp %d, date %d for \"%.*s\"", rc, drc, (int)n, s);
    if (rc == SL_OK) {
        FUZZ_CHECK(drc == SL_OK || n > 100, "a timestamp, not a date: \"%.*s\"",
                   (int)n, s);
        FUZZ_CHECK(copy_ts_in_range(us), "\"%.*s\" out of range", (int)n, s);
        FUZZ_CHECK(!has || (off > -16 * 3600 && off < 16 * 3600),
                   "offset %d", (int)off);
        size_t k = copy_format_timestamp(buf, us, has);
        FUZZ_CHECK(k < 48 && buf[k] == '\0', "length %zu", k);
        FUZZ_CHECK(copy_parse_timestamp(buf, k, &us2, &off2, &has2) == SL_OK &&
                   us2 == us && has2 == has && off2 == 0,
                   "\"%.*s\" -> %" PRId64 " -> \"%s\" -> %" PRId64, (int)n, s,
                   us, buf, us2);
        if (drc == SL_OK && us != COPY_TS_NOEND && us != COPY_TS_NOBEGIN) {
            /* the date keeps the day written; the timestamp moves on at
             * 24:00 and 23:59:60 (and hhmmss fields may hold up to 99
             * hours, which the server adds as they are) */
            int64_t d = us / USECS_PER_DAY - (us % USECS_PER_DAY < 0);
            FUZZ_CHECK(d >= days && d <= days + 5,
                       "\"%.*s\": date %d, timestamp %" PRId64, (int)n, s,
                       (int)days, us);
        }
    }
    if (drc == SL_OK) {
        size_t k = copy_format_date(buf, days);
        FUZZ_CHECK(k < 32 && buf[k] == '\0', "length %zu", k);
        FUZZ_CHECK(copy_parse_date(buf, k, &days2) == SL_OK && days2 == days,
                   "\"%.*s\" -> %d -> \"%s\" -> %d", (int)n, s, (int)days, buf,
                   (int)days2);
    }
}

/* ----------------------------------------------------- value -> text */

/* numfmt_double reads back bit for bit, also through numparse. */
static void check_numfmt(double x, int64_t v)
{
    char buf[NUMFMT_BUFSIZE + 8];
    memset(buf, 'X', sizeof buf);
    size_t n = numfmt_double(buf, x);
    FUZZ_CHECK(n < NUMFMT_BUFSIZE && buf[n] == '\0' && strlen(buf) == n,
               "numfmt_double(%a): length %zu", x, n);
    if (isnan(x)) {
        FUZZ_CHECK(strcmp(buf, "NaN") == 0, "%s", buf);
    } else if (isinf(x)) {
        FUZZ_CHECK(strcmp(buf, x > 0 ? "Infinity" : "-Infinity") == 0, "%s",
                   buf);
    } else {
        double y = strtod(buf, NULL), z = 0;
        FUZZ_CHECK(same_double(x, y), "numfmt_double(%a) = \"%s\" reads %a",
                   x, buf, y);
        FUZZ_CHECK(numparse_double(buf, n, &z) == 0 && same_double(x, z),
                   "numparse(numfmt_double(%a) = \"%s\") = %a", x, buf, z);
        if (x == floor(x) && fabs(x) < 9.2233720368547758e18 && x != 0) {
            char want[32];
            snprintf(want, sizeof want, "%lld", (long long)x);
            FUZZ_CHECK(strcmp(buf, want) == 0, "integral %a: \"%s\"", x, buf);
        }
    }

    char want[32];
    n = numfmt_int64(buf, v);
    snprintf(want, sizeof want, "%" PRId64, v);
    FUZZ_CHECK(n == strlen(want) && strcmp(buf, want) == 0,
               "numfmt_int64: \"%s\", printf \"%s\"", buf, want);
    int64_t back = 0;
    FUZZ_CHECK(numparse_int64(buf, n, &back) == 0 && back == v, "%s", buf);
    n = numfmt_uint64(buf, (uint64_t)v);
    snprintf(want, sizeof want, "%" PRIu64, (uint64_t)v);
    FUZZ_CHECK(n == strlen(want) && strcmp(buf, want) == 0,
               "numfmt_uint64: \"%s\", printf \"%s\"", buf, want);
}

/* copy_format_double(x, digits) is printf("%.*e", digits - 1)'s value
 * in fixed notation, wherever it promises one. */
static void check_format_double(double x)
{
    double ax = fabs(x);
    for (int digits = 1; digits <= 17; digits++) {
        char buf[64];
        size_t n = copy_format_double(buf, x, digits);
        /* it covers 1e-6 <= |x| < 1e17 when x has at most `digits`
         * integer digits, give or take its edges, where it leaves x to
         * printf: the double 1e-6 is just below 10^-6 (its 17th digit
         * is past the 128-bit arithmetic), and just below a power of
         * ten the log10 estimate of the exponent can overshoot */
        int covered = ax > 1e-6 && ax < 0.999e17 &&
                      ax < 0.999 * pow(10, digits);
        if (covered)
            FUZZ_CHECK(n > 0, "copy_format_double(%a, %d) gave up", x, digits);
        if (n == 0)
            continue;
        FUZZ_CHECK(n < 48 && buf[n] == '\0' && strlen(buf) == n, "%zu", n);
        FUZZ_CHECK(!strchr(buf, 'e'), "not fixed: %s", buf);
        char ref[64];
        snprintf(ref, sizeof ref, "%.*e", digits - 1, x);
        decimal a, b;
        to_decimal(buf, &a);
        to_decimal(ref, &b);
        FUZZ_CHECK(a.neg == b.neg && a.exp == b.exp &&
                   strcmp(a.digits, b.digits) == 0,
                   "copy_format_double(%a, %d) = \"%s\", printf \"%s\"", x,
                   digits, buf, ref);
        if (strchr(buf, '.'))
            FUZZ_CHECK(buf[n - 1] != '0', "trailing zero: %s", buf);
    }
}

/* Each kind's copy_format_number text reads back as the value. */
static void check_format_number(double x)
{
    static const int kinds[] = {
        COPY_K_TEXT,    COPY_K_INT2,    COPY_K_INT4,      COPY_K_INT8,
        COPY_K_FLOAT4,  COPY_K_FLOAT8,  COPY_K_NUMERIC,   COPY_K_DATE,
        COPY_K_TIMESTAMP, COPY_K_TIMESTAMPTZ,
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        int kind = kinds[i];
        char buf[80];
        memset(buf, 'X', sizeof buf);
        size_t n = copy_format_number(buf, x, kind);
        FUZZ_CHECK(n < 64 && (n == 0 || strlen(buf) == n),
                   "copy_format_number(%a, %d): %zu", x, kind, n);
        if (kind == COPY_K_DATE || kind == COPY_K_TIMESTAMP ||
            kind == COPY_K_TIMESTAMPTZ) {
            int64_t us = 0, us2 = 0;
            int rc = copy_epoch_to_usec(x, &us);
            FUZZ_CHECK((rc == SL_OK) == (n > 0), "epoch %a: rc %d, %zu", x,
                       rc, n);
            if (rc != SL_OK)
                continue;
            if (fabs(x) < 1e12) {
                /* the fraction rounded to the microsecond (to within the
                 * one rounding of fraction * 1e6 in double) */
                long double want = roundl((long double)x * 1e6L) -
                                   946684800000000.0L;
                FUZZ_CHECK(fabsl((long double)us - want) <= 1,
                           "epoch %a: %" PRId64 " usec, want %.0Lf", x, us,
                           want);
            }
            if (strstr(buf, " BC"))
                continue; /* the parsers read years from 1 on */
            if (kind == COPY_K_DATE) {
                int32_t d = 0;
                FUZZ_CHECK(copy_parse_date(buf, n, &d) == SL_OK &&
                           d == copy_usec_to_days(us),
                           "epoch %a: date \"%s\" reads %d", x, buf, (int)d);
            } else {
                int32_t off = 1;
                int has = 0;
                int inf = us == COPY_TS_NOEND || us == COPY_TS_NOBEGIN;
                FUZZ_CHECK(copy_parse_timestamp(buf, n, &us2, &off, &has) ==
                           SL_OK && us2 == us && off == 0 &&
                           (inf || has == (kind == COPY_K_TIMESTAMPTZ)),
                           "epoch %a: \"%s\" reads %" PRId64 ", want %" PRId64,
                           x, buf, us2, us);
            }
            continue;
        }
        FUZZ_CHECK(n > 0, "copy_format_number(%a, %d) gave nothing", x, kind);
        if (kind == COPY_K_FLOAT4 && isfinite(x) && isfinite((float)x)) {
            float f = strtof(buf, NULL);
            FUZZ_CHECK(f == (float)x || (x == 0 && f == 0),
                       "real %a: \"%s\" reads %a", x, buf, (double)f);
        } else if (isnan(x)) {
            FUZZ_CHECK(strcmp(buf, "NaN") == 0, "%s", buf);
        } else {
            double y = strtod(buf, NULL);
            FUZZ_CHECK(same_double(x, y), "copy_format_number(%a, %d) = \"%s\""
                       " reads %a", x, kind, buf, y);
        }
    }
}

/* Any pg timestamp or date: formatting never overruns and, for years
 * the parser reads (1 AD on, 6 digits), reads back. */
static void check_format_datetime(int64_t us, int32_t days)
{
    char buf[80];
    memset(buf, 'X', sizeof buf);
    for (int tz = 0; tz < 2; tz++) {
        size_t n = copy_format_timestamp(buf, us, tz);
        FUZZ_CHECK(n < 48 && strlen(buf) == n, "timestamp %" PRId64 ": %zu",
                   us, n);
        if (!copy_ts_in_range(us) || strstr(buf, " BC"))
            continue;
        int64_t back = 0;
        int32_t off = 1;
        int has = 0;
        int inf = us == COPY_TS_NOEND || us == COPY_TS_NOBEGIN;
        FUZZ_CHECK(copy_parse_timestamp(buf, n, &back, &off, &has) == SL_OK &&
                   back == us && (inf || has == tz) && off == 0,
                   "%" PRId64 " -> \"%s\" -> %" PRId64, us, buf, back);
    }
    size_t n = copy_format_date(buf, days);
    FUZZ_CHECK(n < 32 && strlen(buf) == n, "date %d: %zu", (int)days, n);
    if (strstr(buf, " BC") || strchr(buf, '-') - buf > 6 || buf[0] == '-' ||
        buf[0] == 'i')
        return;
    int32_t back = 0;
    FUZZ_CHECK(copy_parse_date(buf, n, &back) == SL_OK && back == days,
               "%d -> \"%s\" -> %d", (int)days, buf, (int)back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    check_numparse(s, size);
    check_copy_parse(s, size);
    check_bool_uuid(s, size);
    check_datetime(s, size);

    fuzz_in in = { data, size };
    uint64_t bits = fuzz_u64(&in);
    double x;
    memcpy(&x, &bits, sizeof x);
    check_numfmt(x, (int64_t)bits);
    check_format_double(x);
    check_format_number(x);
    check_format_datetime((int64_t)bits, (int32_t)(bits >> 32));
    return 0;
}
