/*
 * textops.c - libFuzzer target: date/time layouts and grouped numbers
 * (runtime/textops.h).
 *
 * The input: byte 0 is the layout's length L (mod 64), byte 1 flags
 * (bit 0: decimal_comma), then L bytes of layout, then the value.
 * - A layout that compiles reads the value; a value it reads must give
 *   the same timestamp, date and epoch seconds by every route: its ISO
 *   text read back by the server's reader (datetime.c), the fields
 *   through dt_timestamp/dt_date, textops_epoch, and the binary COPY
 *   encoders (copy_put_*_layout against copy_put_*_str of the ISO text).
 * - The value as a number: a number textops_number reads must be what
 *   strtod reads of it with the grouping taken out and the decimal
 *   comma made a point; and the spaces counted at either end are spaces.
 * Any difference aborts (libFuzzer saves the input).
 */
#include "fuzz.h"

#include "copyenc.h"
#include "datetime.h"
#include "textops.h"

#include <math.h>

#define EPOCH_2000 946684800.0

static void check_layout(const textops_layout *l, const char *s, size_t n)
{
    dt_fields f;
    int rc = textops_parse(l, s, n, &f);
    double secs = textops_epoch(l, s, n, 0);
    double day = textops_epoch(l, s, n, 1);
    FUZZ_CHECK(rc == textops_check(l, s, n), "check differs from parse");
    if (rc != SL_OK) {
        FUZZ_CHECK(rc == SL_EINVAL || rc == SL_ERANGE, "code %d", rc);
        FUZZ_CHECK(isnan(secs) && isnan(day), "epoch of a refused value");
        return;
    }
    FUZZ_CHECK(f.year >= 1 && f.year <= 9999, "year %d", f.year);
    /* the ISO text, read by the server's reader, is the same value */
    char iso[TEXTOPS_ISO_MAX];
    size_t len = textops_iso(&f, 1, iso);
    FUZZ_CHECK(len < TEXTOPS_ISO_MAX && strlen(iso) == len, "iso length");
    dt_fields g;
    FUZZ_CHECK(dt_parse(iso, len, DT_MDY, 0, &g) == SL_OK, "iso %s", iso);
    int64_t us1 = 0, us2 = 0;
    FUZZ_CHECK(dt_timestamp(&f, NULL, 0, &us1) == SL_OK, "fields");
    FUZZ_CHECK(dt_timestamp(&g, NULL, 0, &us2) == SL_OK, "iso fields");
    FUZZ_CHECK(us1 == us2, "%s: %lld vs %lld", iso, (long long)us1,
               (long long)us2);
    FUZZ_CHECK(fabs((double)us1 / 1e6 + EPOCH_2000 - secs) < 1e-3,
               "%s: epoch %.6f", iso, secs);
    int32_t d1 = 0, d2 = 0;
    FUZZ_CHECK(dt_date(&f, &d1) == SL_OK && dt_date(&g, &d2) == SL_OK,
               "dates");
    FUZZ_CHECK(d1 == d2 && (double)d1 * 86400 + EPOCH_2000 == day,
               "%s: day %d, %d, %.0f", iso, d1, d2, day);
    /* textops_iso_of gives the same text (date_only: its first 10) */
    char iso2[TEXTOPS_ISO_MAX];
    int k = textops_iso_of(l, s, n, 1, iso2);
    FUZZ_CHECK(k == 10 && memcmp(iso, iso2, 10) == 0, "date text");
    /* the binary encoders: by layout and by the ISO text, the same bytes */
    sbuf a = { 0 }, b = { 0 };
    FUZZ_CHECK(copy_put_date_layout(&a, l, s, n) == SL_OK, "date enc");
    FUZZ_CHECK(copy_put_date_str(&b, iso, len, DT_MDY) == SL_OK, "date str");
    FUZZ_CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0,
               "date bytes");
    a.len = b.len = 0;
    FUZZ_CHECK(copy_put_ts_layout(&a, l, s, n, 1, &tz_rules_utc) == SL_OK,
               "ts enc");
    FUZZ_CHECK(copy_put_ts_str(&b, iso, len, 1, DT_MDY, &tz_rules_utc) ==
                   SL_OK, "ts str");
    FUZZ_CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0,
               "ts bytes");
    sbuf_free(&a);
    sbuf_free(&b);
}

static int space(int c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

static void check_number(const char *s, size_t n, int dc)
{
    double x = textops_number(s, n, dc);
    size_t a = textops_space_start(s, n), z = textops_space_end(s, n);
    FUZZ_CHECK(a <= n && z <= n, "space counts");
    for (size_t i = 0; i < a; i++)
        FUZZ_CHECK(space((unsigned char)s[i]), "space_start");
    FUZZ_CHECK(a == n || !space((unsigned char)s[a]), "space_start end");
    for (size_t i = 0; i < z; i++)
        FUZZ_CHECK(space((unsigned char)s[n - 1 - i]), "space_end");
    if (isnan(x))
        return;
    /* the model: the spaces at the ends taken off (at most 256 bytes
     * left), without grouping, the decimal mark a point, strtod */
    FUZZ_CHECK(n - a - z <= 256, "a number of %zu bytes", n - a - z);
    char buf[300];
    size_t o = 0;
    for (size_t i = a; i < n - z; i++) {
        char c = s[i];
        if (c == (dc ? '.' : ','))
            continue;
        buf[o++] = c == (dc ? ',' : '.') ? '.' : c;
    }
    buf[o] = '\0';
    char *end;
    double y = strtod(buf, &end);
    FUZZ_CHECK(*end == '\0' && x == y, "\"%s\": %.17g vs %.17g", buf, x, y);
    for (size_t i = 0; i < o; i++)
        FUZZ_CHECK(!strchr("xXiInN", buf[i]), "hex, inf or nan: %s", buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_in in = { data, size };
    size_t ln = fuzz_byte(&in) % 64;
    unsigned flags = fuzz_byte(&in);
    if (ln > in.n)
        ln = in.n;
    const char *lay = (const char *)in.p;
    const char *s = lay + ln;
    size_t n = in.n - ln;
    textops_layout l;
    char err[256];
    if (textops_layout_compile(&l, lay, ln, err, sizeof err) == 0)
        check_layout(&l, s, n);
    else
        FUZZ_CHECK(strncmp(err, "layout \"", 8) == 0, "message %s", err);
    check_number(s, n, flags & 1);
    return 0;
}
