/*
 * vecenc.c - libFuzzer target: pgvector's encoders (vecenc.h) against a
 * model written here.
 *
 * The input is a list of operations, each an opcode byte and its values:
 * - vector/halfvec from doubles or floats: the binary field is decoded as
 *   vector_recv / halfvec_recv read it and compared, bit for bit, with
 *   the model (the double rounded to float by the C cast; the float to
 *   half by scaling it to its half ulp and rounding that exact quotient to
 *   nearest even with nearbyint), refusals included (which code, which
 *   element);
 * - the same values as text: read back by vec_parse (strtof per element)
 *   they must give the same floats;
 * - sparse vectors: decoded as sparsevec_recv reads them against the
 *   model (sorted, zeros dropped, bounds and duplicates refused);
 * - bit strings: decoded as bit_recv reads them against the digits.
 * Any difference aborts (libFuzzer keeps the input).
 */
#include "fuzz.h"

#include "vecenc.h"

#include <math.h>

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

/* The model's half: sign, then |f| scaled to units of its half ulp. */
static uint16_t model_half(float f, int *over)
{
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    double a = fabs((double)f);
    *over = 0;
    if (a >= 65520.0) {
        *over = 1;
        return sign | 0x7c00;
    }
    int e;
    frexp(a, &e); /* a = m * 2^e, m in [0.5, 1) */
    int ue = e - 1 < -14 ? -14 : e - 1; /* the unbiased exponent */
    double q = nearbyint(ldexp(a, 10 - ue)); /* exact scaling */
    if (q == 2048) { /* rounded up to the next binade */
        q = 1024;
        ue++;
    }
    if (q < 1024) /* subnormal (or zero) */
        return sign | (uint16_t)q;
    return sign | (uint16_t)(((ue + 15) << 10) | ((unsigned)q - 1024));
}

/* The refusal the encoder must give element x (a double, or a float when
 * from_f32), or SL_OK; *f the float, *h the half. */
static int model_elem(int type, double x, int from_f32, float *f,
                      uint16_t *h)
{
    *f = (float)x;
    if (isnan(*f))
        return VEC_ENAN;
    if (isinf(*f))
        return (!from_f32 && isfinite(x)) ? SL_ERANGE : VEC_EINF;
    if (type == VEC_HALFVEC) {
        int over;
        *h = model_half(*f, &over);
        if (over)
            return SL_ERANGE;
    }
    return SL_OK;
}

static sbuf out;

static void dense(fuzz_in *in, int from_f32, int text)
{
    unsigned op = fuzz_byte(in);
    int type = op & 1 ? VEC_HALFVEC : VEC_VECTOR;
    size_t n = fuzz_byte(in) % 40;
    int typmod = op & 2 ? (int)n + (op & 4 ? 1 : 0) : -1;
    double xd[40];
    float xf[40];
    for (size_t i = 0; i < n; i++) {
        if (from_f32) {
            uint32_t b = (uint32_t)fuzz_u64(in);
            memcpy(&xf[i], &b, 4);
            xd[i] = xf[i];
        } else {
            /* a byte picks a double of interest, or the raw bits */
            unsigned k = fuzz_byte(in);
            xd[i] = k < 128 ? ldexp((double)(int8_t)fuzz_byte(in), (int)k % 60 - 40)
                            : fuzz_double(in);
        }
    }
    int want = n == 0 ? VEC_EEMPTY
               : typmod > 0 && (size_t)typmod != n ? VEC_EDIM : SL_OK;
    size_t want_bad = 0;
    float f[40];
    uint16_t h[40];
    for (size_t i = 0; i < n && want == SL_OK; i++) {
        want = model_elem(type, xd[i], from_f32, &f[i], &h[i]);
        want_bad = i;
    }
    out.len = 0;
    size_t bad = 99;
    int rc = text ? (from_f32 ? vec_text_f32(&out, type, xf, n, typmod, &bad)
                              : vec_text_f64(&out, type, xd, n, typmod, &bad))
                  : (from_f32 ? vec_put_f32(&out, type, xf, n, typmod, &bad)
                              : vec_put_f64(&out, type, xd, n, typmod, &bad));
    FUZZ_CHECK(rc == want, "rc %d, want %d (n %zu, typmod %d)", rc, want, n,
               typmod);
    if (rc == VEC_ENAN || rc == VEC_EINF || rc == SL_ERANGE)
        FUZZ_CHECK(bad == want_bad, "element %zu, want %zu", bad, want_bad);
    if (rc != SL_OK) {
        FUZZ_CHECK(out.len == 0, "bytes written before a refusal");
        return;
    }
    const unsigned char *p = (const unsigned char *)out.data;
    if (text) {
        float back[40];
        if (sbuf_reserve(&out, 1) != SL_OK)
            abort();
        out.data[out.len] = '\0';
        long k = vec_parse(out.data, out.len, back, 40);
        FUZZ_CHECK(k == (long)n, "text %s read back as %ld elements", out.data, k);
        for (size_t i = 0; i < n; i++)
            FUZZ_CHECK(memcmp(&back[i], &f[i], 4) == 0 || (back[i] == 0 && f[i] == 0),
                       "text %s: element %zu", out.data, i);
        return;
    }
    size_t w = type == VEC_HALFVEC ? 2 : 4;
    FUZZ_CHECK(out.len == 8 + n * w && be32(p) == 4 + n * w, "length");
    FUZZ_CHECK(p[4] == (n >> 8) && p[5] == (n & 255) && !p[6] && !p[7],
               "dim, unused");
    for (size_t i = 0; i < n; i++) {
        const unsigned char *e = p + 8 + i * w;
        if (type == VEC_HALFVEC) {
            uint16_t got = (uint16_t)(e[0] << 8 | e[1]);
            FUZZ_CHECK(got == h[i], "half of %a: %04x, want %04x", (double)f[i],
                       got, h[i]);
        } else {
            uint32_t bits;
            memcpy(&bits, &f[i], 4);
            FUZZ_CHECK(be32(e) == bits, "float %zu", i);
        }
    }
}

static int cmp_pair(const void *a, const void *b)
{
    int64_t x = ((const vec_pair *)a)->i, y = ((const vec_pair *)b)->i;
    return (x > y) - (x < y);
}

static void sparse(fuzz_in *in)
{
    int64_t dim = fuzz_byte(in) % 20;
    size_t n = fuzz_byte(in) % 12;
    vec_pair p[12], m[12];
    for (size_t i = 0; i < n; i++) {
        p[i].i = (int64_t)(fuzz_byte(in) % 24) - 1;
        unsigned k = fuzz_byte(in);
        p[i].v = k < 200 ? (double)((int)k % 7 - 3) / 2 : fuzz_double(in);
    }
    memcpy(m, p, sizeof p);
    qsort(m, n, sizeof *m, cmp_pair);
    int want = dim < 1 ? VEC_EEMPTY : SL_OK;
    size_t kept = 0;
    for (size_t i = 0; i < n && want == SL_OK; i++) {
        float f;
        uint16_t h;
        if (m[i].i < 1 || m[i].i > dim)
            want = VEC_EINDEX;
        else if (i > 0 && m[i].i == m[i - 1].i)
            want = VEC_EDUP;
        else
            want = model_elem(VEC_SPARSEVEC, m[i].v, 0, &f, &h);
        if (want == SL_OK && f != 0)
            m[kept++] = m[i];
    }
    out.len = 0;
    size_t bad;
    int rc = vec_put_sparse(&out, dim, p, n, -1, &bad);
    FUZZ_CHECK(rc == want, "sparse rc %d, want %d", rc, want);
    if (rc != SL_OK)
        return;
    const unsigned char *b = (const unsigned char *)out.data;
    FUZZ_CHECK(out.len == 16 + 8 * kept && be32(b) == 12 + 8 * kept, "length");
    FUZZ_CHECK(be32(b + 4) == (uint32_t)dim && be32(b + 8) == kept &&
               be32(b + 12) == 0, "header");
    for (size_t i = 0; i < kept; i++) {
        float f = (float)m[i].v;
        uint32_t bits;
        memcpy(&bits, &f, 4);
        FUZZ_CHECK(be32(b + 16 + 4 * i) == (uint32_t)(m[i].i - 1), "index %zu", i);
        FUZZ_CHECK(be32(b + 16 + 4 * kept + 4 * i) == bits, "value %zu", i);
    }
}

static void bits(fuzz_in *in)
{
    static const char alphabet[] = "0101010101xXbB2aF";
    char s[40];
    size_t n = fuzz_byte(in) % 40;
    for (size_t i = 0; i < n; i++)
        s[i] = alphabet[fuzz_byte(in) % (sizeof alphabet - 1)];
    unsigned op = fuzz_byte(in);
    int varying = op & 1, typmod = op & 2 ? (int)(fuzz_byte(in) % 48) : -1;
    int hex = n > 0 && (s[0] == 'x' || s[0] == 'X');
    size_t at = n > 0 && (hex || s[0] == 'b' || s[0] == 'B');
    int want = SL_OK;
    for (size_t i = at; i < n && want == SL_OK; i++)
        if (!(hex ? strchr("0123456789abcdefABCDEF", s[i]) != NULL
                  : s[i] == '0' || s[i] == '1'))
            want = VEC_EBITDIGIT;
    size_t nbits = (n - at) * (hex ? 4 : 1);
    if (want == SL_OK && typmod > 0 && !varying && nbits != (size_t)typmod)
        want = VEC_EBITLEN;
    if (want == SL_OK && typmod > 0 && varying && nbits > (size_t)typmod)
        want = VEC_EBITLONG;
    out.len = 0;
    size_t bad;
    int rc = vec_put_bit_str(&out, s, n, typmod, varying, &bad);
    FUZZ_CHECK(rc == want, "bits %.*s: rc %d, want %d", (int)n, s, rc, want);
    if (rc != SL_OK)
        return;
    const unsigned char *b = (const unsigned char *)out.data;
    FUZZ_CHECK(be32(b + 4) == nbits && out.len == 8 + (nbits + 7) / 8, "length");
    for (size_t k = 0; k < (nbits + 7) / 8 * 8; k++) {
        int got = b[8 + k / 8] >> (7 - k % 8) & 1, digit = 0;
        if (k < nbits) {
            char c = s[at + (hex ? k / 4 : k)];
            int v = c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
            digit = hex ? v >> (3 - k % 4) & 1 : v;
        }
        FUZZ_CHECK(got == digit, "bit %zu of %.*s", k, (int)n, s);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_in in = { data, size };
    for (int ops = 0; fuzz_left(&in) && ops < 32; ops++) {
        switch (fuzz_byte(&in) % 6) {
        case 0: dense(&in, 0, 0); break;
        case 1: dense(&in, 1, 0); break;
        case 2: dense(&in, 0, 1); break;
        case 3: dense(&in, 1, 1); break;
        case 4: sparse(&in); break;
        default: bits(&in); break;
        }
    }
    return 0;
}
