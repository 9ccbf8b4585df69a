/*
 * textops.c - date/time layouts and grouped numbers (see textops.h).
 *
 * A layout is compiled into a short list of steps (fields with the digit
 * counts they take, literal bytes), so reading a value is one pass over
 * it with no search and no allocation: a few nanoseconds a value, cheaper
 * than the general date/time reader (datetime.c), which must first guess
 * what each field of the string is.
 *
 * Caveats:
 * - A layout reads exactly what it says: no spaces around the value, no
 *   month names, no offsets (a timestamptz column's value is local time
 *   in the session TimeZone, as an offset-less string is).
 * - Years are 1-9999 (4 digits), so every value is within the range of
 *   date and timestamp: a parse that succeeds gives a value the server
 *   stores.
 */
#include "textops.h"
#include "numfmt.h"
#include "sbuf.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------ layouts */

static const struct {
    const char *name;
    unsigned char tok, width;
} tokens[] = {
    /* longest first where one is the start of another */
    { "YYYY", TX_YYYY, 4 }, { "HH24", TX_HH24, 2 }, { "HH12", TX_HH12, 2 },
    { "YY", TX_YY, 2 }, { "MM", TX_MM, 2 }, { "DD", TX_DD, 2 },
    { "HH", TX_HH24, 2 }, { "MI", TX_MI, 2 }, { "SS", TX_SS, 2 },
    { "FF", TX_FF, 6 }, { "AM", TX_AMPM, 2 }, { "PM", TX_AMPM, 2 },
};

#define TOKEN_LIST "YYYY, YY, MM, DD, HH24, HH12, HH, MI, SS, FF, AM/PM"

static int upper(int c)
{
    return c >= 'a' && c <= 'z' ? c - 32 : c;
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* The token at s[i..n), or -1: its index in tokens[]. */
static int token_at(const char *s, size_t n, size_t i)
{
    for (size_t t = 0; t < sizeof tokens / sizeof tokens[0]; t++) {
        size_t k = strlen(tokens[t].name);
        if (i + k > n)
            continue;
        size_t j = 0;
        while (j < k && upper((unsigned char)s[i + j]) == tokens[t].name[j])
            j++;
        if (j == k)
            return (int)t;
    }
    return -1;
}

static int fail(char *err, size_t cap, const textops_layout *l,
                const char *why)
{
    if (cap)
        snprintf(err, cap, "layout \"%s\": %s", l->text, why);
    return -1;
}

static int add_item(textops_layout *l, int tok, int width, char lit)
{
    if (l->n == TEXTOPS_MAX_ITEMS)
        return -1;
    textops_item *it = &l->item[l->n++];
    it->tok = (unsigned char)tok;
    it->max = (unsigned char)width;
    it->min = (unsigned char)width;
    it->lit = lit;
    return 0;
}

int textops_layout_compile(textops_layout *l, const char *s, size_t n,
                           char *err, size_t errcap)
{
    char why[160];
    memset(l, 0, sizeof *l);
    size_t shown = n > TEXTOPS_MAX_LAYOUT ? TEXTOPS_MAX_LAYOUT : n;
    memcpy(l->text, s, shown);
    if (n > TEXTOPS_MAX_LAYOUT)
        return fail(err, errcap, l, "longer than 63 bytes");
    if (memchr(s, '\0', n))
        return fail(err, errcap, l, "contains a NUL byte");
    unsigned seen = 0;
    int hh = -1; /* the item of HH (24- or 12-hour by AM/PM) */
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"') {
            size_t j = i + 1;
            while (j < n && s[j] != '"') {
                if (add_item(l, TX_LIT, 0, s[j++]) != 0)
                    return fail(err, errcap, l, "too many steps");
            }
            if (j == n)
                return fail(err, errcap, l, "a quote is not closed");
            i = j + 1;
            continue;
        }
        int t = token_at(s, n, i);
        if (t < 0 && ((c | 32) >= 'a' && (c | 32) <= 'z')) {
            snprintf(why, sizeof why,
                     "\"%c\" at byte %zu begins no layout token (" TOKEN_LIST
                     "); put other letters in double quotes", c, i + 1);
            return fail(err, errcap, l, why);
        }
        if (t < 0) {
            if (add_item(l, TX_LIT, 0, (char)c) != 0)
                return fail(err, errcap, l, "too many steps");
            i++;
            continue;
        }
        int tok = tokens[t].tok;
        /* YYYY and YY are one field, so are HH24, HH12 and HH */
        int slot = tok == TX_YY ? TX_YYYY : tok == TX_HH12 ? TX_HH24 : tok;
        if (seen & (1u << slot)) {
            snprintf(why, sizeof why, "%s at byte %zu repeats a field",
                     tokens[t].name, i + 1);
            return fail(err, errcap, l, why);
        }
        seen |= 1u << slot;
        if (strcmp(tokens[t].name, "HH") == 0)
            hh = l->n;
        if (tok == TX_HH12 || tok == TX_HH24 || tok == TX_MI ||
            tok == TX_SS || tok == TX_FF)
            l->has_time = 1;
        if (add_item(l, tok, tokens[t].width, 0) != 0)
            return fail(err, errcap, l, "too many steps");
        i += strlen(tokens[t].name);
    }
    if (!(seen & (1u << TX_YYYY)) || !(seen & (1u << TX_MM)) ||
        !(seen & (1u << TX_DD)))
        return fail(err, errcap, l, "a layout needs a year (YYYY or YY), a "
                                    "month (MM) and a day (DD)");
    int ampm = (seen & (1u << TX_AMPM)) != 0;
    int h12 = 0, h24 = 0;
    for (int k = 0; k < l->n; k++) {
        if (l->item[k].tok == TX_HH12)
            h12 = 1;
        if (l->item[k].tok == TX_HH24 && k != hh)
            h24 = 1;
    }
    if (ampm && hh >= 0)
        l->item[hh].tok = TX_HH12;
    if (ampm && h24)
        return fail(err, errcap, l, "HH24 is a 24-hour clock: AM/PM goes "
                                    "with HH or HH12");
    if (ampm && !h12 && hh < 0)
        return fail(err, errcap, l, "AM/PM needs an hour (HH or HH12)");
    if (h12 && !ampm)
        return fail(err, errcap, l, "HH12 needs AM or PM in the layout (or "
                                    "use HH24)");
    if ((seen & (1u << TX_FF)) && !(seen & (1u << TX_SS)))
        return fail(err, errcap, l, "FF (a fraction of a second) needs SS");
    /* widths: a field followed by a separator, AM/PM or the end takes 1
     * digit up to its width (years always their width) */
    for (int k = 0; k < l->n; k++) {
        textops_item *it = &l->item[k];
        if (it->tok == TX_LIT || it->tok == TX_AMPM || it->tok == TX_YYYY ||
            it->tok == TX_YY)
            continue;
        int next = k + 1 < l->n ? l->item[k + 1].tok : TX_LIT;
        if (next == TX_LIT || next == TX_AMPM)
            it->min = 1;
    }
    return 0;
}

/* ------------------------------------------------------------ reading */

int textops_parse(const textops_layout *l, const char *s, size_t n,
                  dt_fields *f)
{
    int year = 0, mon = 0, mday = 0, hour = 0, min = 0, sec = 0;
    int32_t fsec = 0;
    int pm = -1, h12 = 0;
    size_t i = 0;
    for (int k = 0; k < l->n; k++) {
        const textops_item *it = &l->item[k];
        if (it->tok == TX_LIT) {
            if (i >= n || s[i] != it->lit)
                return SL_EINVAL;
            i++;
            continue;
        }
        if (it->tok == TX_AMPM) {
            if (i + 2 > n || upper((unsigned char)s[i + 1]) != 'M')
                return SL_EINVAL;
            int c = upper((unsigned char)s[i]);
            if (c != 'A' && c != 'P')
                return SL_EINVAL;
            pm = c == 'P';
            i += 2;
            continue;
        }
        int v = 0, d = 0;
        while (d < it->max && i < n && is_digit((unsigned char)s[i])) {
            v = v * 10 + (s[i++] - '0');
            d++;
        }
        if (d < it->min)
            return SL_EINVAL;
        switch (it->tok) {
        case TX_YYYY:
            year = v;
            break;
        case TX_YY:
            year = v < 70 ? 2000 + v : 1900 + v;
            break;
        case TX_MM:
            mon = v;
            break;
        case TX_DD:
            mday = v;
            break;
        case TX_HH12:
            h12 = 1;
            /* fallthrough */
        case TX_HH24:
            hour = v;
            break;
        case TX_MI:
            min = v;
            break;
        case TX_SS:
            sec = v;
            break;
        default: /* TX_FF: d digits of a fraction, as microseconds */
            while (d++ < 6)
                v *= 10;
            fsec = v;
            break;
        }
    }
    if (i != n)
        return SL_EINVAL;
    if (h12) {
        if (hour < 1 || hour > 12)
            return SL_ERANGE;
        hour = hour % 12 + (pm == 1 ? 12 : 0);
    }
    if (year < 1 || mon < 1 || mon > 12 || mday < 1 ||
        mday > dt_days_in_month(year, mon) || hour > 24 || min > 59 ||
        sec > 60 || (hour == 24 && (min || sec || fsec)))
        return SL_ERANGE;
    memset(f, 0, sizeof *f);
    f->kind = DT_VALUE;
    f->year = year;
    f->mon = mon;
    f->mday = mday;
    f->hour = hour;
    f->min = min;
    f->sec = sec;
    f->fsec = fsec;
    return SL_OK;
}

double textops_epoch(const textops_layout *l, const char *s, size_t n,
                     int date_only)
{
    dt_fields f;
    if (textops_parse(l, s, n, &f) != SL_OK)
        return NAN;
    /* days since 2000-01-01 (the calendar of datetime.c), from 1970 */
    int32_t d2000;
    if (dt_date(&f, &d2000) != SL_OK)
        return NAN;
    double days = (double)d2000 + 10957.0;
    if (date_only)
        return days * 86400.0;
    /* hour 24 and second 60 carry into the next day or minute, as the
     * server reads them */
    double secs = days * 86400.0 + f.hour * 3600.0 + f.min * 60.0 + f.sec;
    return f.fsec ? secs + f.fsec / 1e6 : secs;
}

int textops_check(const textops_layout *l, const char *s, size_t n)
{
    dt_fields f;
    return textops_parse(l, s, n, &f);
}

static char *put2(char *p, int v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
    return p + 2;
}

size_t textops_iso(const dt_fields *f, int with_time, char *buf)
{
    char *p = buf;
    p = put2(p, f->year / 100);
    p = put2(p, f->year % 100);
    *p++ = '-';
    p = put2(p, f->mon);
    *p++ = '-';
    p = put2(p, f->mday);
    if (with_time) {
        *p++ = ' ';
        p = put2(p, f->hour);
        *p++ = ':';
        p = put2(p, f->min);
        *p++ = ':';
        p = put2(p, f->sec);
        if (f->fsec) {
            *p++ = '.';
            int32_t v = f->fsec;
            for (int k = 5; k >= 0; k--, v /= 10)
                p[k] = (char)('0' + v % 10);
            p += 6;
        }
    }
    *p = '\0';
    return (size_t)(p - buf);
}

int textops_iso_of(const textops_layout *l, const char *s, size_t n,
                   int date_only, char *buf)
{
    dt_fields f;
    int rc = textops_parse(l, s, n, &f);
    if (rc != SL_OK)
        return rc;
    return (int)textops_iso(&f, l->has_time && !date_only, buf);
}

/* ------------------------------------------------------------ numbers */

static int is_space(int c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

size_t textops_space_start(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && is_space((unsigned char)s[i]))
        i++;
    return i;
}

size_t textops_space_end(const char *s, size_t n)
{
    size_t k = 0;
    while (k < n && is_space((unsigned char)s[n - 1 - k]))
        k++;
    return k;
}

double textops_number(const char *s, size_t n, int decimal_comma)
{
    char buf[260];
    char group = decimal_comma ? '.' : ',';
    char point = decimal_comma ? ',' : '.';
    size_t i = 0, o = 0;
    while (n > 0 && is_space((unsigned char)s[n - 1]))
        n--;
    while (i < n && is_space((unsigned char)s[i]))
        i++;
    if (n - i > 256)
        return NAN;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        buf[o++] = s[i++];
    /* the integer part: digits, or groups of three after the first */
    size_t run = 0, digits = 0;
    int grouped = 0;
    for (; i < n; i++) {
        char c = s[i];
        if (is_digit((unsigned char)c)) {
            buf[o++] = c;
            run++;
            digits++;
        } else if (c == group) {
            if (run == 0 || (grouped ? run != 3 : run > 3))
                return NAN;
            grouped = 1;
            run = 0;
        } else {
            break;
        }
    }
    if (grouped && run != 3)
        return NAN;
    if (i < n && s[i] == point) {
        buf[o++] = '.';
        for (i++; i < n && is_digit((unsigned char)s[i]); i++, digits++)
            buf[o++] = s[i];
    }
    if (digits == 0)
        return NAN;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        buf[o++] = 'e';
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            buf[o++] = s[i++];
        size_t e0 = i;
        for (; i < n && is_digit((unsigned char)s[i]); i++)
            buf[o++] = s[i];
        if (i == e0)
            return NAN;
    }
    if (i != n)
        return NAN;
    double x;
    if (numparse_double(buf, o, &x) < 0 || isinf(x))
        return NAN;
    return x;
}
