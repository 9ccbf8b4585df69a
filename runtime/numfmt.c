/*
 * numfmt.c - exact, short number text.
 *
 * Values with up to 8 decimals get their shortest form without printf
 * (see numfmt_double); the rest try 15, 16 and 17 significant digits in
 * turn: 17 always round-trip, and most values people write need 15.  snprintf is locale-dependent for the decimal point; sluice
 * never calls setlocale(), so the C locale applies.
 */
#include "numfmt.h"
#include <errno.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The digits of u, with a minus sign when neg. */
static size_t put_decimal(char *buf, uint64_t u, int neg)
{
    char tmp[24];
    char *p = tmp + sizeof tmp;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (neg)
        *--p = '-';
    size_t n = (size_t)(tmp + sizeof tmp - p);
    memcpy(buf, p, n);
    buf[n] = '\0';
    return n;
}

size_t numfmt_int64(char *buf, int64_t v)
{
    /* work on the unsigned magnitude so INT64_MIN is fine */
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    return put_decimal(buf, u, v < 0);
}

size_t numfmt_uint64(char *buf, uint64_t v)
{
    return put_decimal(buf, v, 0);
}

static const uint64_t pow10_u64[20] = {
    1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL,
    10000000ULL, 100000000ULL, 1000000000ULL, 10000000000ULL,
    100000000000ULL, 1000000000000ULL, 10000000000000ULL,
    100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL,
    100000000000000000ULL, 1000000000000000000ULL,
    10000000000000000000ULL,
};

/* (f * 10^k) / 2^s exactly: returns it truncated, and rounded half to
 * even in *rounded; f < 2^53 and k <= 22 keep the product below 2^128 */
static uint64_t scaled(uint64_t f, int k, int s, uint64_t *rounded)
{
    unsigned __int128 v = f;
    for (; k >= 19; k -= 19)
        v *= pow10_u64[19];
    v *= pow10_u64[k];
    if (s <= 0) {
        *rounded = (uint64_t)(v << -s);
        return *rounded;
    }
    unsigned __int128 q = v >> s;
    unsigned __int128 r = v - (q << s);
    unsigned __int128 half = (unsigned __int128)1 << (s - 1);
    *rounded = (uint64_t)(q + (r > half || (r == half && (q & 1))));
    return (uint64_t)q;
}

size_t numfmt_digits(char *buf, double x, int digits)
{
    if (!(x == x) || digits < 1 || digits > 17)
        return 0;
    double ax = fabs(x);
    if (!(ax >= 1e-6 && ax < 1e17))
        return 0;
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    uint64_t f = (bits & ((1ULL << 52) - 1)) | (1ULL << 52);
    int e = (int)((bits >> 52) & 0x7FF) - 1075; /* x = f * 2^e, normal */
    /* p = floor(log10(ax)), estimated, then fixed by the digit count */
    int p = (int)floor(log10(ax));
    uint64_t lo = pow10_u64[digits - 1], hi = pow10_u64[digits];
    uint64_t n = 0;
    int found = 0;
    /* the exponent is right when the truncated value has `digits`
     * digits; rounding may then carry into one more (999.5 -> 1000) */
    for (int tries = 0; tries < 3 && !found; tries++) {
        int k = digits - 1 - p;
        if (k < 0 || k > 22 || e < -126)
            return 0;
        uint64_t q = scaled(f, k, -e, &n);
        if (q < lo) {
            p--;
        } else if (q >= hi) {
            p++;
        } else {
            found = 1;
            if (n == hi) {
                n = lo;
                p++;
            }
        }
    }
    if (!found)
        return 0;
    /* digits of n, then drop trailing zeros */
    char d[20];
    for (int i = digits - 1; i >= 0; i--) {
        d[i] = (char)('0' + n % 10);
        n /= 10;
    }
    int nd = digits;
    while (nd > 1 && d[nd - 1] == '0')
        nd--;
    char *o = buf;
    if (x < 0)
        *o++ = '-';
    if (p < 0) {
        *o++ = '0';
        *o++ = '.';
        for (int i = -1; i > p; i--)
            *o++ = '0';
        memcpy(o, d, (size_t)nd);
        o += nd;
    } else if (nd <= p + 1) {
        memcpy(o, d, (size_t)nd);
        o += nd;
        for (int i = nd; i <= p; i++)
            *o++ = '0';
    } else {
        memcpy(o, d, (size_t)p + 1);
        o += p + 1;
        *o++ = '.';
        memcpy(o, d + p + 1, (size_t)(nd - p - 1));
        o += nd - p - 1;
    }
    *o = '\0';
    return (size_t)(o - buf);
}

/* m * 10^-k as fixed-point text; m's last digit is not 0 (k is the
 * smallest that works). */
static size_t put_fixed(char *buf, int64_t m, int k)
{
    char digits[24];
    int neg = m < 0;
    uint64_t u = neg ? (uint64_t)0 - (uint64_t)m : (uint64_t)m;
    int nd = 0;
    do {
        digits[nd++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    while (nd <= k)
        digits[nd++] = '0'; /* at least one digit before the point */
    char *o = buf;
    if (neg)
        *o++ = '-';
    for (int i = nd - 1; i >= 0; i--) {
        *o++ = digits[i];
        if (i == k)
            *o++ = '.';
    }
    *o = '\0';
    return (size_t)(o - buf);
}

size_t numfmt_double(char *buf, double x)
{
    if (isnan(x)) {
        memcpy(buf, "NaN", 4);
        return 3;
    }
    if (isinf(x)) {
        if (x > 0) {
            memcpy(buf, "Infinity", 9);
            return 8;
        }
        memcpy(buf, "-Infinity", 10);
        return 9;
    }
    if (x == 0 && signbit(x)) {
        memcpy(buf, "-0", 3);
        return 2;
    }
    /* integers below 2^63 print as integers: they are exact and an int
     * column accepts "3" but not "3e+20" style text */
    if (x == floor(x) && fabs(x) < 9.2233720368547758e18)
        return numfmt_int64(buf, (int64_t)x);
    /* Values with a few decimals (money, measurements, 0.1): the
     * smallest k such that m / 10^k reads back as x.  m and 10^k are
     * exact doubles, so the division is the correctly rounded value of
     * the decimal m * 10^-k - what strtod returns for its text - and no
     * printf/strtod round trip is needed. */
    static const double p10[] = { 1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8 };
    for (int k = 1; k <= 8; k++) {
        double y = x * p10[k];
        if (!(fabs(y) < 9007199254740992.0))
            break;
        double m = nearbyint(y);
        if (m / p10[k] == x)
            return put_fixed(buf, (int64_t)m, k);
    }
    /* Otherwise the shortest of 15, 16 or 17 significant digits (17 is
     * always exact), written by the exact digit formatter; printf only
     * outside its range. */
    for (int digits = 15; digits <= 16; digits++) {
        size_t n = numfmt_digits(buf, x, digits);
        if (n == 0)
            break;
        if (strtod(buf, NULL) == x)
            return n;
    }
    if (numfmt_digits(buf, x, 17) > 0)
        return strlen(buf);
    for (int prec = 15; prec <= 17; prec++) {
        int len = snprintf(buf, NUMFMT_BUFSIZE, "%.*g", prec, x);
        if (prec == 17 || strtod(buf, NULL) == x)
            return (size_t)len;
    }
    return strlen(buf); /* not reached */
}

/* ---------------------------------------------------------------- parsing */

static int ieq(const char *s, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    if (n != m)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != lit[i])
            return 0;
    }
    return 1;
}

int numparse_int64(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    int neg = 0;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    if (i == n)
        return -1;
    uint64_t v = 0;
    int over = 0;
    for (; i < n; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9)
            return -1;
        if (v > (UINT64_MAX - d) / 10)
            over = 1;
        else
            v = v * 10 + d;
    }
    if (over || v > (uint64_t)INT64_MAX + (uint64_t)neg)
        return 1;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

/* inf, infinity and nan in any case, after the sign: the spellings strtod
 * reads and float4in/float8in accept.  0 with *out set, or -1.  Rare, so
 * kept out of line (as parse_strtod): numparse_double's fast path then
 * runs about one instruction a number fewer than when it was one
 * function (callgrind), instead of about five more when inlined. */
__attribute__((noinline))
static int parse_special(const char *s, size_t n, int neg, double *out)
{
    if (ieq(s, n, "inf") || ieq(s, n, "infinity")) {
        *out = neg ? -HUGE_VAL : HUGE_VAL;
        return 0;
    }
    if (ieq(s, n, "nan")) {
        /* signed as strtod signs it: "-nan" is stored with its sign
         * bit by float4in/float8in */
        *out = neg ? -NAN : NAN;
        return 0;
    }
    return -1;
}

/* The mantissa digits[.digits] from s[*i] as an integer *m with a decimal
 * exponent *e while they fit in 19 digits (*exact cleared when a nonzero
 * digit is dropped): the input of Clinger's fast path.  Returns how many
 * digits there were.  Inline: numparse_double runs per field. */
static inline size_t scan_mantissa(const char *s, size_t n, size_t *pi,
                                   uint64_t *pm, long *pe, int *exact)
{
    size_t i = *pi, digits = 0;
    uint64_t m = 0;
    long e = 0;
    int ndig = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
        if (ndig < 19) {
            m = m * 10 + (uint64_t)(s[i] - '0');
            if (m)
                ndig++;
        } else {
            *exact = 0;
            e++;
        }
    }
    if (i < n && s[i] == '.') {
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
            if (ndig < 19) {
                m = m * 10 + (uint64_t)(s[i] - '0');
                if (m)
                    ndig++;
                e--;
            } else if (s[i] != '0') {
                *exact = 0;
            }
        }
    }
    *pi = i;
    *pm = m;
    *pe = e;
    return digits;
}

/* The exponent part e[+-]digits at s[*i], if there is one, added to *e
 * (its digits stop counting past 10^5: the range check is strtod's).
 * Returns 0, or -1 for an 'e' with nothing after it. */
static inline int scan_exponent(const char *s, size_t n, size_t *pi,
                                long *e)
{
    size_t i = *pi;
    if (!(i < n && (s[i] == 'e' || s[i] == 'E')))
        return 0;
    i++;
    int eneg = 0;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        eneg = s[i++] == '-';
    if (i == n)
        return -1;
    long x = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
        if (x < 100000)
            x = x * 10 + (s[i] - '0');
    *e += eneg ? -x : x;
    *pi = i;
    return 0;
}

/* The slow path, for text whose syntax is checked: strtod on a
 * NUL-terminated copy (the C locale applies: the project never calls
 * setlocale).  Returns 0, 2 for a value out of range (*out is then
 * +-HUGE_VAL or 0, as strtod gives it), -1 when out of memory. */
__attribute__((noinline))
static int parse_strtod(const char *s, size_t n, double *out)
{
    char stack[128];
    char *buf = n < sizeof stack ? stack : malloc(n + 1);
    if (!buf)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    errno = 0;
    double x = strtod(buf, NULL);
    int range = errno == ERANGE && (x == 0.0 || isinf(x));
    if (buf != stack)
        free(buf);
    *out = x;
    return range ? 2 : 0;
}

/* The text s[0..n) as a double (numfmt.h): 0, -1 when it is not a number
 * (or a copy for strtod found no memory), 2 when out of range.  Most
 * texts take the fast path and never reach strtod or malloc. */
int numparse_double(const char *s, size_t n, double *out)
{
    static const double p10[] = { 1e0,  1e1,  1e2,  1e3,  1e4,  1e5,
                                   1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                   1e12, 1e13, 1e14, 1e15, 1e16, 1e17,
                                   1e18, 1e19, 1e20, 1e21, 1e22 };
    size_t i = 0;
    int neg = 0;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    if (i < n && (s[i] < '0' || s[i] > '9') && s[i] != '.')
        return parse_special(s + i, n - i, neg, out);
    uint64_t m;
    long e;
    int exact = 1;
    if (scan_mantissa(s, n, &i, &m, &e, &exact) == 0)
        return -1;
    if (scan_exponent(s, n, &i, &e) != 0 || i != n)
        return -1;
    /* Clinger's fast path: m and 10^|e| are both exact doubles, so one
     * IEEE multiplication or division rounds correctly */
    if (exact && m <= (1ULL << 53) && e >= -22 && e <= 22) {
        double d = (double)m;
        d = e < 0 ? d / p10[-e] : d * p10[e];
        *out = neg ? -d : d;
        return 0;
    }
    return parse_strtod(s, n, out);
}

int numparse_hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}
