/*
 * vecenc.c - pgvector's vector, halfvec and sparsevec, and bit strings,
 * as binary and text COPY fields (see vecenc.h).
 *
 * The binary layouts are pgvector 0.8's *_recv: vector and halfvec an
 * int16 dimension, an int16 0, then the elements (float4 / IEEE half,
 * big-endian); sparsevec an int32 dimension, int32 count, int32 0, the
 * 0-based indices, then the float4 values.  bit_recv reads an int32 bit
 * length and the bits, most significant first, the last byte padded
 * with zeros.
 */
#include "vecenc.h"
#include "numfmt.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

uint16_t vec_half_of_float(float f, int *overflow)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    *overflow = 0;
    if (ax >= 0x7f800000u) /* infinity, NaN */
        return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0));
    if (ax >= 0x477ff000u) { /* 65520 and up round to infinity */
        *overflow = 1;
        return (uint16_t)(sign | 0x7c00);
    }
    if (ax < 0x38800000u) {
        /* below 2^-14: a subnormal half counts units of 2^-24; scaling
         * by 2^24 is exact and nearbyintf rounds ties to even (1024
         * becomes the smallest normal, as it should) */
        float a;
        memcpy(&a, &ax, 4);
        return (uint16_t)(sign | (uint16_t)nearbyintf(a * 16777216.0f));
    }
    uint32_t h = (((ax >> 23) - 112) << 10) | ((ax & 0x7fffffu) >> 13);
    uint32_t rest = ax & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1)))
        h++; /* a carry into the exponent is right too */
    return (uint16_t)(sign | h);
}

/* The element x (a float) for a column of type: SL_OK, VEC_ENAN,
 * VEC_EINF, or SL_ERANGE when the double d it came from was finite
 * (d_finite) and it is not. */
static int check_elem(int type, float f, int d_finite, uint16_t *h)
{
    if (isnan(f))
        return VEC_ENAN;
    if (isinf(f))
        return d_finite ? SL_ERANGE : VEC_EINF;
    if (type == VEC_HALFVEC) {
        int over;
        *h = vec_half_of_float(f, &over);
        if (over)
            return SL_ERANGE;
    }
    return SL_OK;
}

static int check_dim(size_t n, int typmod)
{
    if (n == 0)
        return VEC_EEMPTY;
    if (n > VEC_MAX_DIM)
        return VEC_EMAXDIM;
    if (typmod > 0 && (size_t)typmod != n)
        return VEC_EDIM;
    return SL_OK;
}

/* The elements as floats, checked; the caller's loop over either source.
 * ELEM(i) is element i as a double (for the range check) and a float. */
#define PUT_BODY(D, F)                                                    \
    int rc = check_dim(n, typmod);                                        \
    if (rc != SL_OK)                                                      \
        return rc;                                                        \
    size_t w = type == VEC_HALFVEC ? 2 : 4;                               \
    if (sbuf_reserve(b, 8 + n * w) != SL_OK)                              \
        return SL_ENOMEM;                                                 \
    unsigned char *o = (unsigned char *)b->data + b->len + 8;             \
    for (size_t i = 0; i < n; i++) {                                      \
        float f = F;                                                      \
        uint16_t h = 0;                                                   \
        uint32_t bits;                                                    \
        if (!isfinite(f) || type == VEC_HALFVEC) {                        \
            rc = check_elem(type, f, isfinite(D), &h);                    \
            if (rc != SL_OK) {                                            \
                *bad = i;                                                 \
                return rc;                                                \
            }                                                             \
        }                                                                 \
        if (type == VEC_HALFVEC) {                                        \
            o[0] = (unsigned char)(h >> 8);                               \
            o[1] = (unsigned char)h;                                      \
            o += 2;                                                       \
        } else {                                                          \
            memcpy(&bits, &f, 4);                                         \
            o[0] = (unsigned char)(bits >> 24);                           \
            o[1] = (unsigned char)(bits >> 16);                           \
            o[2] = (unsigned char)(bits >> 8);                            \
            o[3] = (unsigned char)bits;                                   \
            o += 4;                                                       \
        }                                                                 \
    }                                                                     \
    sbuf_put_be32(b, (uint32_t)(4 + n * w));                              \
    sbuf_put_be16(b, (uint16_t)n);                                        \
    sbuf_put_be16(b, 0);                                                  \
    b->len += n * w;                                                      \
    return SL_OK;

int vec_put_f64(sbuf *b, int type, const double *x, size_t n, int typmod,
                size_t *bad)
{
    PUT_BODY(x[i], (float)x[i])
}

int vec_put_f32(sbuf *b, int type, const float *x, size_t n, int typmod,
                size_t *bad)
{
    PUT_BODY(x[i], x[i])
}

static int pair_cmp(const void *a, const void *b)
{
    int64_t x = ((const vec_pair *)a)->i, y = ((const vec_pair *)b)->i;
    return (x > y) - (x < y);
}

/* Sort p, drop zeros, check: the count of pairs kept (moved to the
 * front), or a refusal. */
static int sparse_check(int64_t dim, vec_pair *p, size_t n, int typmod,
                        size_t *bad, size_t *kept)
{
    if (dim < 1)
        return VEC_EEMPTY;
    if (dim > VEC_SPARSE_MAX_DIM)
        return VEC_EMAXDIM;
    if (typmod > 0 && dim != typmod)
        return VEC_EDIM;
    qsort(p, n, sizeof *p, pair_cmp);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        *bad = i;
        if (p[i].i < 1 || p[i].i > dim)
            return VEC_EINDEX;
        if (i > 0 && p[i].i == p[i - 1].i)
            return VEC_EDUP;
        float f = (float)p[i].v;
        uint16_t h;
        int rc = check_elem(VEC_SPARSEVEC, f, isfinite(p[i].v), &h);
        if (rc != SL_OK)
            return rc;
        if (f != 0)
            p[k++] = p[i];
    }
    if (k > VEC_SPARSE_MAX_NNZ)
        return VEC_EMAXNNZ;
    *kept = k;
    return SL_OK;
}

int vec_put_sparse(sbuf *b, int64_t dim, vec_pair *p, size_t n, int typmod,
                   size_t *bad)
{
    size_t k;
    int rc = sparse_check(dim, p, n, typmod, bad, &k);
    if (rc != SL_OK)
        return rc;
    if (sbuf_reserve(b, 16 + 8 * k) != SL_OK)
        return SL_ENOMEM;
    sbuf_put_be32(b, (uint32_t)(12 + 8 * k));
    sbuf_put_be32(b, (uint32_t)dim);
    sbuf_put_be32(b, (uint32_t)k);
    sbuf_put_be32(b, 0);
    for (size_t i = 0; i < k; i++)
        sbuf_put_be32(b, (uint32_t)(p[i].i - 1));
    for (size_t i = 0; i < k; i++) {
        float f = (float)p[i].v;
        uint32_t bits;
        memcpy(&bits, &f, 4);
        sbuf_put_be32(b, bits);
    }
    return SL_OK;
}


int vec_put_bit_str(sbuf *b, const char *s, size_t n, int typmod,
                    int varying, size_t *bad)
{
    size_t at = 0;
    int hex = 0;
    if (n > 0 && (s[0] == 'b' || s[0] == 'B'))
        at = 1;
    else if (n > 0 && (s[0] == 'x' || s[0] == 'X'))
        at = 1, hex = 1;
    size_t nbits = (n - at) * (hex ? 4 : 1);
    for (size_t i = at; i < n; i++) {
        int ok = hex ? numparse_hex_digit((unsigned char)s[i]) >= 0
                     : (s[i] == '0' || s[i] == '1');
        if (!ok) {
            *bad = i;
            return VEC_EBITDIGIT;
        }
    }
    if (typmod > 0 && !varying && nbits != (size_t)typmod)
        return VEC_EBITLEN;
    if (typmod > 0 && varying && nbits > (size_t)typmod)
        return VEC_EBITLONG;
    if (nbits > 83886080) /* the server's VARBITMAXLEN */
        return SL_ERANGE;
    size_t bytes = (nbits + 7) / 8;
    if (sbuf_reserve(b, 8 + bytes) != SL_OK)
        return SL_ENOMEM;
    sbuf_put_be32(b, (uint32_t)(4 + bytes));
    sbuf_put_be32(b, (uint32_t)nbits);
    unsigned char *o = (unsigned char *)b->data + b->len;
    memset(o, 0, bytes);
    size_t bit = 0;
    for (size_t i = at; i < n; i++) {
        int v = hex ? numparse_hex_digit((unsigned char)s[i]) : s[i] - '0';
        for (int k = hex ? 3 : 0; k >= 0; k--, bit++)
            if ((v >> k) & 1)
                o[bit / 8] |= (unsigned char)(0x80 >> (bit % 8));
    }
    b->len += bytes;
    return SL_OK;
}

/* 10^k for -60 <= k <= 60, as a product of at most three exact powers
 * (each step's rounding is far below what 9 digits of a float need). */
static double pow10_of(int k)
{
    static const double p[] = { 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7,
                                1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14,
                                1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21,
                                1e22 };
    double r = 1;
    int a = k < 0 ? -k : k;
    while (a > 22) {
        r *= p[22];
        a -= 22;
    }
    r *= p[a];
    return k < 0 ? 1 / r : r;
}

size_t vec_float_text(char *out, float f)
{
    char d[12];
    size_t o = 0;
    double x = f;
    if (x == 0) {
        if (signbit(x))
            out[o++] = '-';
        out[o++] = '0';
        return o;
    }
    if (x < 0) {
        out[o++] = '-';
        x = -x;
    }
    /* nine significant digits: every float reads back exactly from them
     * (their step is ~60 times finer than a float's), so an error in the
     * last digit from the scaling below cannot change the float */
    int e2;
    frexp(x, &e2);
    int e10 = (int)floor((e2 - 1) * 0.30102999566398120);
    double m = x * pow10_of(8 - e10);
    if (m >= 999999999.5) {
        e10++;
        m = x * pow10_of(8 - e10);
    } else if (m < 99999999.5) {
        e10--;
        m = x * pow10_of(8 - e10);
    }
    uint32_t u = (uint32_t)(m + 0.5);
    if (u >= 1000000000u) {
        u /= 10;
        e10++;
    }
    for (int i = 8; i >= 0; i--, u /= 10)
        d[i] = (char)('0' + u % 10);
    int nd = 9;
    while (nd > 1 && d[nd - 1] == '0')
        nd--;
    if (e10 >= -5 && e10 < 9) {
        if (e10 < 0) {
            out[o++] = '0';
            out[o++] = '.';
            for (int i = -1; i > e10; i--)
                out[o++] = '0';
            memcpy(out + o, d, (size_t)nd);
            return o + (size_t)nd;
        }
        for (int i = 0; i <= e10; i++)
            out[o++] = i < nd ? d[i] : '0';
        if (nd > e10 + 1) {
            out[o++] = '.';
            memcpy(out + o, d + e10 + 1, (size_t)(nd - e10 - 1));
            o += (size_t)(nd - e10 - 1);
        }
        return o;
    }
    out[o++] = d[0];
    if (nd > 1) {
        out[o++] = '.';
        memcpy(out + o, d + 1, (size_t)nd - 1);
        o += (size_t)nd - 1;
    }
    out[o++] = 'e';
    out[o++] = e10 < 0 ? '-' : '+';
    int ae = e10 < 0 ? -e10 : e10;
    if (ae >= 10)
        out[o++] = (char)('0' + ae / 10);
    out[o++] = (char)('0' + ae % 10);
    return o;
}

/* One element's text: the float f's value in at most nine significant
 * digits (vec_float_text), which strtof reads back as f exactly. */
static int put_elem_text(sbuf *b, float f)
{
    char tmp[NUMFMT_BUFSIZE];
    size_t k = vec_float_text(tmp, f);
    if (sbuf_reserve(b, k + 1) != SL_OK)
        return SL_ENOMEM;
    sbuf_put_raw(b, tmp, k);
    return SL_OK;
}

#define TEXT_BODY(D, F)                                                   \
    int rc = check_dim(n, typmod);                                        \
    if (rc != SL_OK)                                                      \
        return rc;                                                        \
    for (size_t i = 0; i < n; i++) {                                      \
        float f = F;                                                      \
        uint16_t h;                                                       \
        if (!isfinite(f) || type == VEC_HALFVEC) {                        \
            rc = check_elem(type, f, isfinite(D), &h);                    \
            if (rc != SL_OK) {                                            \
                *bad = i;                                                 \
                return rc;                                                \
            }                                                             \
        }                                                                 \
    }                                                                     \
    if (sbuf_reserve(b, 2) != SL_OK)                                      \
        return SL_ENOMEM;                                                 \
    sbuf_put_byte(b, '[');                                                \
    for (size_t i = 0; i < n; i++) {                                      \
        if (i > 0) {                                                      \
            if (sbuf_reserve(b, 1) != SL_OK)                              \
                return SL_ENOMEM;                                         \
            sbuf_put_byte(b, ',');                                        \
        }                                                                 \
        if (put_elem_text(b, F) != SL_OK)                                 \
            return SL_ENOMEM;                                             \
    }                                                                     \
    if (sbuf_reserve(b, 1) != SL_OK)                                      \
        return SL_ENOMEM;                                                 \
    sbuf_put_byte(b, ']');                                                \
    return SL_OK;

int vec_text_f64(sbuf *b, int type, const double *x, size_t n, int typmod,
                 size_t *bad)
{
    TEXT_BODY(x[i], (float)x[i])
}

int vec_text_f32(sbuf *b, int type, const float *x, size_t n, int typmod,
                 size_t *bad)
{
    TEXT_BODY(x[i], x[i])
}

int vec_text_sparse(sbuf *b, int64_t dim, vec_pair *p, size_t n, int typmod,
                    size_t *bad)
{
    size_t k;
    char tmp[NUMFMT_BUFSIZE];
    int rc = sparse_check(dim, p, n, typmod, bad, &k);
    if (rc != SL_OK)
        return rc;
    if (sbuf_reserve(b, 1) != SL_OK)
        return SL_ENOMEM;
    sbuf_put_byte(b, '{');
    for (size_t i = 0; i < k; i++) {
        size_t m = numfmt_int64(tmp, p[i].i);
        if (sbuf_reserve(b, m + 2) != SL_OK)
            return SL_ENOMEM;
        if (i > 0)
            sbuf_put_byte(b, ',');
        sbuf_put_raw(b, tmp, m);
        sbuf_put_byte(b, ':');
        if (put_elem_text(b, (float)p[i].v) != SL_OK)
            return SL_ENOMEM;
    }
    size_t m = numfmt_int64(tmp, dim);
    if (sbuf_reserve(b, m + 2) != SL_OK)
        return SL_ENOMEM;
    sbuf_put_raw(b, "}/", 2);
    sbuf_put_raw(b, tmp, m);
    return SL_OK;
}

static int lit_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
           c == '\f';
}

/* A number at *p (strtol or strtof on a bounded copy up to a stop
 * byte): 1 and *p past it, or 0. */
static int lit_number(const char **p, const char *end, int integer,
                      int64_t *iv, float *fv)
{
    char tmp[64];
    const char *q = *p;
    size_t k = 0;
    while (q < end && !strchr(":,}/ \t\n\r\v\f", *q) && k < sizeof tmp - 1)
        tmp[k++] = *q++;
    if (k == 0 || k == sizeof tmp - 1)
        return 0;
    tmp[k] = '\0';
    char *e;
    errno = 0;
    if (integer) {
        long long v = strtoll(tmp, &e, 10);
        if (errno == ERANGE)
            return 0;
        *iv = v;
    } else {
        *fv = strtof(tmp, &e);
        if (errno == ERANGE && (*fv == 0 || isinf(*fv)))
            return 0;
    }
    if (*e)
        return 0;
    *p = q;
    return 1;
}

long vec_parse_sparse(const char *s, size_t n, vec_pair *out, size_t cap,
                      int64_t *dim)
{
    const char *p = s, *end = s + n;
    size_t k = 0;
#define SKIP() while (p < end && lit_space(*p)) p++
    SKIP();
    if (p >= end || *p++ != '{')
        return -1;
    SKIP();
    if (p < end && *p == '}') {
        p++;
    } else {
        for (;;) {
            int64_t i;
            float v;
            SKIP();
            if (k >= cap || !lit_number(&p, end, 1, &i, NULL))
                return -1;
            SKIP();
            if (p >= end || *p++ != ':')
                return -1;
            SKIP();
            if (!lit_number(&p, end, 0, NULL, &v))
                return -1;
            out[k].i = i;
            out[k++].v = v;
            SKIP();
            if (p < end && *p == ',') {
                p++;
                continue;
            }
            if (p < end && *p == '}') {
                p++;
                break;
            }
            return -1;
        }
    }
    SKIP();
    if (p >= end || *p++ != '/')
        return -1;
    SKIP();
    if (!lit_number(&p, end, 1, dim, NULL))
        return -1;
    SKIP();
#undef SKIP
    return p == end ? (long)k : -1;
}

long vec_parse(const char *s, size_t n, float *out, size_t cap)
{
    char tmp[64];
    size_t i = 0, k = 0;
    while (i < n && lit_space(s[i]))
        i++;
    if (i >= n || s[i++] != '[')
        return -1;
    for (;;) {
        while (i < n && lit_space(s[i]))
            i++;
        /* an element: up to ',' or ']' (strtof on a bounded copy) */
        size_t j = i;
        while (j < n && s[j] != ',' && s[j] != ']')
            j++;
        if (j >= n || j == i || j - i >= sizeof tmp || k >= cap)
            return -1;
        memcpy(tmp, s + i, j - i);
        tmp[j - i] = '\0';
        char *end;
        errno = 0;
        float f = strtof(tmp, &end);
        if (end == tmp || (errno == ERANGE && isinf(f)))
            return -1;
        while (*end && lit_space(*end))
            end++;
        if (*end)
            return -1;
        out[k++] = f;
        i = j + 1;
        if (s[j] == ']')
            break;
    }
    while (i < n && lit_space(s[i]))
        i++;
    return i == n ? (long)k : -1;
}
