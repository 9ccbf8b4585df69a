/*
 * datetime.c - date/time text as the server reads it (see datetime.h).
 *
 * The general path follows PostgreSQL 15's date/time input step by step
 * (src/backend/utils/adt/datetime.c: ParseDateTime splits the string
 * into typed fields, DecodeDateTime with DecodeDate, DecodeNumber,
 * DecodeNumberField, DecodeTime and DecodeTimezone gives them meaning,
 * ValidateDate checks them; tm2timestamp and date_in make the value),
 * written again here with the same field masks, the same order of checks
 * (so the same SQLSTATE for a string the server refuses) and the same
 * quirks (a 150-byte field buffer, 2-digit years 1970-2069, day of year
 * 366 rolling over, 12:30.5 read as minutes and seconds, C int
 * arithmetic wrapping as the server's -fwrapv build wraps it).
 *
 * ISO 8601 strings as the server prints them take a fast path that
 * reads them straight into the fields; anything it is unsure of goes to
 * the general path, so both give the same answer.
 *
 * Caveats:
 * - Words the server looks up in the session's timezone_abbreviations
 *   or zone files are refused (SL_ESERVERONLY), except UTC's spellings
 *   in the default set (utc, gmt, z, zulu, ut, uct); so are now, today,
 *   tomorrow and yesterday, which need the transaction's time.
 * - Bytes beyond ASCII are refused as the server refuses them in a UTF-8
 *   locale (not letters, digits or punctuation there).
 */
#include "datetime.h"
#include "numfmt.h"
#include "sbuf.h"

#include <math.h>
#include <string.h>

#define MAXDATEFIELDS 25
/* the field buffers of timestamp_in and timestamptz_in (MAXDATELEN +
 * MAXDATEFIELDS) and of date_in (MAXDATELEN + 1): a string whose fields
 * fill them is refused */
#define WORKBUF_TS (128 + MAXDATEFIELDS)
#define WORKBUF_DATE (128 + 1)
#define USECS_PER_DAY INT64_C(86400000000)
#define USECS_PER_HOUR INT64_C(3600000000)
#define USECS_PER_MINUTE INT64_C(60000000)
#define USECS_PER_SEC INT64_C(1000000)
#define POSTGRES_EPOCH_JDATE 2451545
#define MIN_TIMESTAMP INT64_C(-211813488000000000)
#define END_TIMESTAMP INT64_C(9223371331200000000)
#define DATE_END_JULIAN 2147483494

/* ParseDateTime's field types */
enum { F_NUMBER, F_STRING, F_DATE, F_TIME, F_TZ, F_SPECIAL };

/* token types: also the bits of the field masks (PostgreSQL's numbers) */
enum {
    T_RESERV = 0, T_MONTH = 1, T_YEAR = 2, T_DAY = 3, T_TZ = 5, T_DTZ = 6,
    T_IGNORE = 8, T_AMPM = 9, T_HOUR = 10, T_MINUTE = 11, T_SECOND = 12,
    T_MILLISECOND = 13, T_MICROSECOND = 14, T_DOY = 15, T_DOW = 16,
    T_UNITS = 17, T_ADBC = 18, T_ISOTIME = 23, T_DTZMOD = 28,
    T_UNKNOWN = 31,
};
#define M(t) (1u << (t))
#define DATE_M (M(T_YEAR) | M(T_MONTH) | M(T_DAY))
#define ALL_SECS_M (M(T_SECOND) | M(T_MILLISECOND) | M(T_MICROSECOND))
#define TIME_M (M(T_HOUR) | M(T_MINUTE) | ALL_SECS_M)

/* keyword values */
enum { V_AM, V_PM, V_HR24 };
enum { V_AD, V_BC };
enum { R_NOW, R_TODAY, R_TOMORROW, R_YESTERDAY, R_EPOCH, R_LATE, R_EARLY,
       R_ZULU };
/* units: what a number after the word is ("prefix type"); 0 is none */
enum { U_NONE, U_YEAR, U_MONTH, U_DAY, U_HOUR, U_MINUTE, U_SECOND,
       U_JULIAN, U_TIME, U_OTHER };

typedef struct keyword {
    const char *word;
    int type, value;
} keyword;

/* PostgreSQL 15's datetktbl, in its (strcmp) order. */
static const keyword keywords[] = {
    { "-infinity", T_RESERV, R_EARLY }, { "ad", T_ADBC, V_AD },
    { "allballs", T_RESERV, R_ZULU }, { "am", T_AMPM, V_AM },
    { "apr", T_MONTH, 4 }, { "april", T_MONTH, 4 },
    { "at", T_IGNORE, 0 }, { "aug", T_MONTH, 8 },
    { "august", T_MONTH, 8 }, { "bc", T_ADBC, V_BC },
    { "d", T_UNITS, U_DAY }, { "dec", T_MONTH, 12 },
    { "december", T_MONTH, 12 }, { "dow", T_UNITS, U_OTHER },
    { "doy", T_UNITS, U_OTHER }, { "dst", T_DTZMOD, 3600 },
    { "epoch", T_RESERV, R_EPOCH }, { "feb", T_MONTH, 2 },
    { "february", T_MONTH, 2 }, { "fri", T_DOW, 5 },
    { "friday", T_DOW, 5 }, { "h", T_UNITS, U_HOUR },
    { "infinity", T_RESERV, R_LATE }, { "isodow", T_UNITS, U_OTHER },
    { "isoyear", T_UNITS, U_OTHER }, { "j", T_UNITS, U_JULIAN },
    { "jan", T_MONTH, 1 }, { "january", T_MONTH, 1 },
    { "jd", T_UNITS, U_JULIAN }, { "jul", T_MONTH, 7 },
    { "julian", T_UNITS, U_JULIAN }, { "july", T_MONTH, 7 },
    { "jun", T_MONTH, 6 }, { "june", T_MONTH, 6 },
    { "m", T_UNITS, U_MONTH }, { "mar", T_MONTH, 3 },
    { "march", T_MONTH, 3 }, { "may", T_MONTH, 5 },
    { "mm", T_UNITS, U_MINUTE }, { "mon", T_DOW, 1 },
    { "monday", T_DOW, 1 }, { "nov", T_MONTH, 11 },
    { "november", T_MONTH, 11 }, { "now", T_RESERV, R_NOW },
    { "oct", T_MONTH, 10 }, { "october", T_MONTH, 10 },
    { "on", T_IGNORE, 0 }, { "pm", T_AMPM, V_PM },
    { "s", T_UNITS, U_SECOND }, { "sat", T_DOW, 6 },
    { "saturday", T_DOW, 6 }, { "sep", T_MONTH, 9 },
    { "sept", T_MONTH, 9 }, { "september", T_MONTH, 9 },
    { "sun", T_DOW, 0 }, { "sunday", T_DOW, 0 },
    { "t", T_ISOTIME, U_TIME }, { "thu", T_DOW, 4 },
    { "thur", T_DOW, 4 }, { "thurs", T_DOW, 4 },
    { "thursday", T_DOW, 4 }, { "today", T_RESERV, R_TODAY },
    { "tomorrow", T_RESERV, R_TOMORROW }, { "tue", T_DOW, 2 },
    { "tues", T_DOW, 2 }, { "tuesday", T_DOW, 2 },
    { "wed", T_DOW, 3 }, { "wednesday", T_DOW, 3 },
    { "weds", T_DOW, 3 }, { "y", T_UNITS, U_YEAR },
    { "yesterday", T_RESERV, R_YESTERDAY },
};

/* ----------------------------------------------------- characters */

static inline int is_space(int c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

static inline int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static inline int is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static inline int is_alnum(int c)
{
    return is_digit(c) || is_alpha(c);
}

static inline int is_punct(int c)
{
    return c > ' ' && c < 0x7f && !is_alnum(c);
}

static inline int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* --------------------------------------------------- C int semantics */

/* The server's int arithmetic wraps (-fwrapv). */
static inline int32_t w32(int64_t v)
{
    return (int32_t)(uint32_t)(uint64_t)v;
}

/* strtol(p, end, 10) on 64-bit long: *erange on overflow; no digits:
 * *end = p. */
static int64_t str_to_i64(const char *p, char **end, int *erange)
{
    const char *s = p;
    *erange = 0;
    while (is_space((unsigned char)*s))
        s++;
    int neg = 0;
    if (*s == '+' || *s == '-')
        neg = *s++ == '-';
    if (!is_digit((unsigned char)*s)) {
        *end = (char *)p;
        return 0;
    }
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t v = 0;
    for (; is_digit((unsigned char)*s); s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (limit - d) / 10) {
            *erange = 1;
            v = limit;
        } else if (!*erange) {
            v = v * 10 + d;
        }
    }
    *end = (char *)s;
    if (neg)
        return v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    return (int64_t)v;
}

/* strtoint(): strtol, and *erange outside int. */
static int str_to_int(const char *p, char **end, int *erange)
{
    int64_t v = str_to_i64(p, end, erange);
    if (v < INT32_MIN || v > INT32_MAX)
        *erange = 1;
    return w32(v);
}

/* atoi() of digits: strtol saturating, then cut to int. */
static int atoi_digits(const char *p)
{
    char *end;
    int erange;
    return w32(str_to_i64(p, &end, &erange));
}

/* -------------------------------------------------------- calendar */

/* date2j() with the server's int arithmetic. */
static int date2j(int y, int m, int d)
{
    if (m > 2) {
        m = w32((int64_t)m + 1);
        y = w32((int64_t)y + 4800);
    } else {
        m = w32((int64_t)m + 13);
        y = w32((int64_t)y + 4799);
    }
    int century = y / 100;
    int julian = w32((int64_t)y * 365 - 32167);
    julian = w32((int64_t)julian + (y / 4 - century + century / 4));
    julian = w32((int64_t)julian + w32(w32((int64_t)7834 * m) / 256 + (int64_t)d));
    return julian;
}

/* j2date(), in the server's unsigned arithmetic. */
static void j2date(int jd, int *year, int *month, int *day)
{
    uint32_t julian = (uint32_t)jd, quad, extra;
    julian += 32044;
    quad = julian / 146097;
    extra = (julian - quad * 146097) * 4 + 3;
    julian += 60 + quad * 3 + extra / 146097;
    quad = julian / 1461;
    julian -= quad * 1461;
    int y = (int)(julian * 4 / 1461);
    julian = (y != 0 ? (julian + 305) % 365 : (julian + 306) % 366) + 123;
    y = w32((int64_t)(uint32_t)((uint32_t)y + quad * 4));
    *year = w32((int64_t)y - 4800);
    quad = julian * 2141 / 65536;
    *day = (int)(julian - 7834 * quad / 256);
    *month = (int)((quad + 10) % 12 + 1);
}

static int is_leap(int y)
{
    return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

int dt_days_in_month(int y, int m)
{
    static const unsigned char d[] = { 31, 28, 31, 30, 31, 30,
                                       31, 31, 30, 31, 30, 31 };
    return m == 2 && is_leap(y) ? 29 : d[m - 1];
}

static const int day_tab[2][12] = {
    { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 },
    { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 },
};

/* IS_VALID_JULIAN() */
static int valid_julian(int y, int m)
{
    return (y > -4713 || (y == -4713 && m >= 11)) &&
           (y < 5874898 || (y == 5874898 && m < 6));
}

/* ------------------------------------------------------- the fields */

static const keyword *lookup(const char *w)
{
    size_t lo = 0, hi = sizeof keywords / sizeof keywords[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(w, keywords[mid].word);
        if (c == 0)
            return &keywords[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* UTC's abbreviations in the server's default timezone_abbreviations. */
static int is_utc_abbrev(const char *w)
{
    return strcmp(w, "utc") == 0 || strcmp(w, "gmt") == 0 ||
           strcmp(w, "z") == 0 || strcmp(w, "zulu") == 0 ||
           strcmp(w, "ut") == 0 || strcmp(w, "uct") == 0;
}

/* ParseDateTime(): the fields of s into buf (NUL-terminated, letters
 * lower-cased), their types in ftype. */
static int split_fields(const char *s, size_t n, char *buf, size_t buflen,
                        char **field, int *ftype, int *nfields)
{
    size_t i = 0;
    char *bp = buf, *end = buf + buflen;
    int nf = 0;
#define AT(k) ((k) < n ? (unsigned char)s[k] : 0)
#define PUT(c)                                                           \
    do {                                                                 \
        if (bp + 1 >= end)                                               \
            return SL_EINVAL;                                            \
        *bp++ = (char)(c);                                               \
    } while (0)
    while (i < n) {
        int c = AT(i);
        if (is_space(c)) {
            i++;
            continue;
        }
        if (nf >= MAXDATEFIELDS)
            return SL_EINVAL;
        field[nf] = bp;
        if (is_digit(c)) {
            PUT(s[i++]);
            while (is_digit(AT(i)))
                PUT(s[i++]);
            if (AT(i) == ':') {
                ftype[nf] = F_TIME;
                PUT(s[i++]);
                while (is_digit(AT(i)) || AT(i) == ':' || AT(i) == '.')
                    PUT(s[i++]);
            } else if (AT(i) == '-' || AT(i) == '/' || AT(i) == '.') {
                int delim = AT(i);
                PUT(s[i++]);
                if (is_digit(AT(i))) {
                    ftype[nf] = delim == '.' ? F_NUMBER : F_DATE;
                    while (is_digit(AT(i)))
                        PUT(s[i++]);
                    if (AT(i) == delim) {
                        ftype[nf] = F_DATE;
                        PUT(s[i++]);
                        while (is_digit(AT(i)) || AT(i) == delim)
                            PUT(s[i++]);
                    }
                } else {
                    ftype[nf] = F_DATE;
                    while (is_alnum(AT(i)) || AT(i) == delim)
                        PUT(lower(s[i++]));
                }
            } else {
                ftype[nf] = F_NUMBER;
            }
        } else if (c == '.') {
            PUT(s[i++]);
            while (is_digit(AT(i)))
                PUT(s[i++]);
            ftype[nf] = F_NUMBER;
        } else if (is_alpha(c)) {
            ftype[nf] = F_STRING;
            PUT(lower(s[i++]));
            while (is_alpha(AT(i)))
                PUT(lower(s[i++]));
            /* a date with a month name, or a zone name (America/New_York,
             * EST5EDT): unless the word so far is a keyword */
            int d = AT(i), is_date = 0;
            if (d == '-' || d == '/' || d == '.') {
                is_date = 1;
            } else if (d == '+' || is_digit(d)) {
                *bp = '\0';
                is_date = lookup(field[nf]) == NULL;
            }
            if (is_date) {
                ftype[nf] = F_DATE;
                do {
                    PUT(lower(s[i++]));
                } while (AT(i) == '+' || AT(i) == '-' || AT(i) == '/' ||
                         AT(i) == '_' || AT(i) == '.' || AT(i) == ':' ||
                         is_alnum(AT(i)));
            }
        } else if (c == '+' || c == '-') {
            PUT(s[i++]);
            while (is_space(AT(i)))
                i++;
            if (is_digit(AT(i))) {
                ftype[nf] = F_TZ;
                PUT(s[i++]);
                while (is_digit(AT(i)) || AT(i) == ':' || AT(i) == '.' ||
                       AT(i) == '-')
                    PUT(s[i++]);
            } else if (is_alpha(AT(i))) {
                ftype[nf] = F_SPECIAL;
                PUT(lower(s[i++]));
                while (is_alpha(AT(i)))
                    PUT(lower(s[i++]));
            } else {
                return SL_EINVAL;
            }
        } else if (is_punct(c)) {
            i++;
            continue;
        } else {
            return SL_EINVAL;
        }
        *bp++ = '\0';
        nf++;
    }
#undef AT
#undef PUT
    *nfields = nf;
    return SL_OK;
}

/* ParseFraction(): ".digits" (or "." alone) to end of string. */
static int parse_fraction(const char *cp, double *frac)
{
    size_t k = 1;
    while (is_digit((unsigned char)cp[k]))
        k++;
    if (cp[k] != '\0')
        return SL_EINVAL;
    if (k == 1) {
        *frac = 0;
        return SL_OK;
    }
    return numparse_double(cp, k, frac) == 0 ? SL_OK : SL_EINVAL;
}

static int parse_frac_second(const char *cp, int32_t *fsec)
{
    double frac;
    int rc = parse_fraction(cp, &frac);
    if (rc == SL_OK)
        *fsec = (int32_t)rint(frac * 1000000.0);
    return rc;
}

/* DecodeTimezone(): +hh[:mm[:ss]], +hhmm; *tz in seconds west. */
static int decode_timezone(const char *str, int32_t *tz)
{
    if (*str != '+' && *str != '-')
        return SL_EINVAL;
    char *cp;
    int erange, min, sec = 0;
    int hr = str_to_int(str + 1, &cp, &erange);
    if (erange)
        return SL_ETZRANGE;
    if (*cp == ':') {
        min = str_to_int(cp + 1, &cp, &erange);
        if (erange)
            return SL_ETZRANGE;
        if (*cp == ':') {
            sec = str_to_int(cp + 1, &cp, &erange);
            if (erange)
                return SL_ETZRANGE;
        }
    } else if (*cp == '\0' && strlen(str) > 3) {
        min = hr % 100;
        hr = hr / 100;
    } else {
        min = 0;
    }
    if (hr < 0 || hr > 15 || min < 0 || min >= 60 || sec < 0 || sec >= 60)
        return SL_ETZRANGE;
    int32_t t = (hr * 60 + min) * 60 + sec;
    *tz = *str == '-' ? t : -t;
    return *cp == '\0' ? SL_OK : SL_EINVAL;
}

/* time_overflows() */
static int time_overflows(int hour, int min, int sec, int32_t fsec)
{
    if (hour < 0 || hour > 24 || min < 0 || min >= 60 || sec < 0 ||
        sec > 60 || fsec < 0 || fsec > 1000000)
        return 1;
    return (((int64_t)hour * 60 + min) * 60 + sec) * USECS_PER_SEC + fsec >
           USECS_PER_DAY;
}

/* DecodeTime() (DecodeTimeCommon for a timestamp). */
static int decode_time(char *str, unsigned *tmask, dt_fields *f)
{
    char *cp;
    int erange, rc, sec = 0;
    int32_t fsec = 0;
    *tmask = TIME_M;
    int64_t hour = str_to_i64(str, &cp, &erange);
    if (erange)
        return SL_ERANGE;
    if (*cp != ':')
        return SL_EINVAL;
    int min = str_to_int(cp + 1, &cp, &erange);
    if (erange)
        return SL_ERANGE;
    if (*cp == '\0') {
        sec = 0;
    } else if (*cp == '.') {
        /* mm:ss.sss */
        if ((rc = parse_frac_second(cp, &fsec)) != SL_OK)
            return rc;
        if (hour > INT32_MAX || hour < INT32_MIN)
            return SL_ERANGE;
        sec = min;
        min = (int)hour;
        hour = 0;
    } else if (*cp == ':') {
        sec = str_to_int(cp + 1, &cp, &erange);
        if (erange)
            return SL_ERANGE;
        if (*cp == '.') {
            if ((rc = parse_frac_second(cp, &fsec)) != SL_OK)
                return rc;
        } else if (*cp != '\0') {
            return SL_EINVAL;
        }
    } else {
        return SL_EINVAL;
    }
    if (hour < 0 || min < 0 || min > 59 || sec < 0 || sec > 60 || fsec < 0 ||
        fsec > 1000000 || hour > INT32_MAX)
        return SL_ERANGE;
    f->hour = (int)hour;
    f->min = min;
    f->sec = sec;
    f->fsec = fsec;
    return SL_OK;
}

/* DecodeNumberField(): a run of digits as yyyymmdd / yymmdd (no date
 * yet) or hhmmss / hhmm.  1 (date) or 2 (time), or SL_EINVAL. */
static int decode_number_field(size_t len, char *str, unsigned fmask,
                               unsigned *tmask, dt_fields *f, int *is2digits)
{
    char *cp = strchr(str, '.');
    if (cp) {
        if (cp[1] == '\0') {
            f->fsec = 0;
        } else {
            size_t k = 1;
            while (is_digit((unsigned char)cp[k]))
                k++;
            double frac;
            if (numparse_double(cp, k, &frac) != 0)
                return SL_EINVAL;
            f->fsec = (int32_t)rint(frac * 1000000.0);
        }
        *cp = '\0';
        len = strlen(str);
    } else if ((fmask & DATE_M) != DATE_M) {
        if (len >= 6) {
            *tmask = DATE_M;
            f->mday = atoi_digits(str + (len - 2));
            str[len - 2] = '\0';
            f->mon = atoi_digits(str + (len - 4));
            str[len - 4] = '\0';
            f->year = atoi_digits(str);
            if (len - 4 == 2)
                *is2digits = 1;
            return 1;
        }
    }
    if ((fmask & TIME_M) != TIME_M) {
        if (len == 6) {
            *tmask = TIME_M;
            f->sec = atoi_digits(str + 4);
            str[4] = '\0';
            f->min = atoi_digits(str + 2);
            str[2] = '\0';
            f->hour = atoi_digits(str);
            return 2;
        }
        if (len == 4) {
            *tmask = TIME_M;
            f->sec = 0;
            f->min = atoi_digits(str + 2);
            str[2] = '\0';
            f->hour = atoi_digits(str);
            return 2;
        }
    }
    return SL_EINVAL;
}

/* DecodeNumber(): one number of a date, placed by what came before and
 * the DateStyle order. */
static int decode_number(size_t flen, char *str, int text_month,
                         unsigned fmask, unsigned *tmask, int order,
                         dt_fields *f, int *is2digits, int *yday)
{
    char *cp;
    int erange, rc;
    *tmask = 0;
    int val = str_to_int(str, &cp, &erange);
    if (erange)
        return SL_ERANGE;
    if (cp == str)
        return SL_EINVAL;
    if (*cp == '.') {
        /* 2001.360, 20011225.5, 040506.789 */
        if (cp - str > 2) {
            rc = decode_number_field(flen, str, fmask | DATE_M, tmask, f,
                                     is2digits);
            return rc < 0 ? rc : SL_OK;
        }
        if ((rc = parse_frac_second(cp, &f->fsec)) != SL_OK)
            return rc;
    } else if (*cp != '\0') {
        return SL_EINVAL;
    }
    /* day of year */
    if (flen == 3 && (fmask & DATE_M) == M(T_YEAR) && val >= 1 &&
        val <= 366) {
        *tmask = M(T_DOY) | M(T_MONTH) | M(T_DAY);
        *yday = val;
        return SL_OK;
    }
    switch (fmask & DATE_M) {
    case 0:
        if (flen >= 3 || order == DT_YMD) {
            *tmask = M(T_YEAR);
            f->year = val;
        } else if (order == DT_DMY) {
            *tmask = M(T_DAY);
            f->mday = val;
        } else {
            *tmask = M(T_MONTH);
            f->mon = val;
        }
        break;
    case M(T_YEAR):
        *tmask = M(T_MONTH);
        f->mon = val;
        break;
    case M(T_MONTH):
        if (text_month && (flen >= 3 || order == DT_YMD)) {
            *tmask = M(T_YEAR);
            f->year = val;
        } else {
            *tmask = M(T_DAY);
            f->mday = val;
        }
        break;
    case M(T_YEAR) | M(T_MONTH):
        if (text_month && flen >= 3 && *is2digits) {
            /* DD-MON-YYYY: the first number was the day */
            *tmask = M(T_DAY);
            f->mday = f->year;
            f->year = val;
            *is2digits = 0;
        } else {
            *tmask = M(T_DAY);
            f->mday = val;
        }
        break;
    case M(T_DAY):
        *tmask = M(T_MONTH);
        f->mon = val;
        break;
    case M(T_MONTH) | M(T_DAY):
        *tmask = M(T_YEAR);
        f->year = val;
        break;
    case DATE_M:
        rc = decode_number_field(flen, str, fmask, tmask, f, is2digits);
        return rc < 0 ? rc : SL_OK;
    default:
        return SL_EINVAL;
    }
    if (*tmask == M(T_YEAR))
        *is2digits = flen <= 2;
    return SL_OK;
}

/* DecodeDate(): a field with separators (2000-01-02, 1/2/2000,
 * 8-jan-1999, 1999.008). */
static int decode_date(char *str, unsigned fmask, unsigned *tmask,
                       int *is2digits, int order, dt_fields *f, int *yday)
{
    char *field[MAXDATEFIELDS];
    int nf = 0, text_month = 0, rc;
    unsigned dmask;
    *tmask = 0;
    while (*str != '\0' && nf < MAXDATEFIELDS) {
        while (*str != '\0' && !is_alnum((unsigned char)*str))
            str++;
        if (*str == '\0')
            return SL_EINVAL;
        field[nf] = str;
        if (is_digit((unsigned char)*str)) {
            while (is_digit((unsigned char)*str))
                str++;
        } else if (is_alpha((unsigned char)*str)) {
            while (is_alpha((unsigned char)*str))
                str++;
        }
        if (*str != '\0')
            *str++ = '\0';
        nf++;
    }
    /* month names first: they are unambiguous */
    for (int i = 0; i < nf; i++) {
        if (!is_alpha((unsigned char)*field[i]))
            continue;
        const keyword *k = lookup(field[i]);
        int type = k ? k->type : T_UNKNOWN;
        if (type == T_IGNORE)
            continue;
        dmask = M(type);
        if (type != T_MONTH)
            return SL_EINVAL;
        f->mon = k->value;
        text_month = 1;
        if (fmask & dmask)
            return SL_EINVAL;
        fmask |= dmask;
        *tmask |= dmask;
        field[i] = NULL;
    }
    for (int i = 0; i < nf; i++) {
        if (!field[i])
            continue;
        size_t len = strlen(field[i]);
        if (len == 0)
            return SL_EINVAL;
        rc = decode_number(len, field[i], text_month, fmask, &dmask, order,
                           f, is2digits, yday);
        if (rc != SL_OK)
            return rc;
        if (fmask & dmask)
            return SL_EINVAL;
        fmask |= dmask;
        *tmask |= dmask;
    }
    if ((fmask & ~(M(T_DOY) | M(T_TZ))) != DATE_M)
        return SL_EINVAL;
    return SL_OK;
}

/* ValidateDate() */
static int validate_date(unsigned fmask, int isjulian, int is2digits,
                         int bc, int yday, dt_fields *f)
{
    if (fmask & M(T_YEAR)) {
        if (isjulian) {
            /* as j2date gave it */
        } else if (bc) {
            if (f->year <= 0)
                return SL_ERANGE;
            f->year = -(f->year - 1);
        } else if (is2digits) {
            if (f->year < 0)
                return SL_ERANGE;
            if (f->year < 70)
                f->year += 2000;
            else if (f->year < 100)
                f->year += 1900;
        } else if (f->year <= 0) {
            return SL_ERANGE;
        }
    }
    if (fmask & M(T_DOY))
        j2date(w32((int64_t)date2j(f->year, 1, 1) + yday - 1), &f->year,
               &f->mon, &f->mday);
    if ((fmask & M(T_MONTH)) && (f->mon < 1 || f->mon > 12))
        return SL_ERANGE;
    if ((fmask & M(T_DAY)) && (f->mday < 1 || f->mday > 31))
        return SL_ERANGE;
    if ((fmask & DATE_M) == DATE_M &&
        f->mday > day_tab[is_leap(f->year)][f->mon - 1])
        return SL_ERANGE;
    return SL_OK;
}

/* Keep the first word only the server reads. */
static void server_word(dt_fields *f, const char *w, int *flag)
{
    if (!*flag) {
        size_t k = strlen(w);
        if (k >= sizeof f->word)
            k = sizeof f->word - 1;
        memcpy(f->word, w, k);
        f->word[k] = '\0';
    }
    *flag = 1;
}

/* A date standing in for the transaction's (now, today...), so that the
 * checks after the loop pass as they do for the server. */
static void placeholder_date(dt_fields *f)
{
    f->year = 2000;
    f->mon = 1;
    f->mday = 1;
}

/* DecodeDateTime() */
static int decode(char **field, const int *ftype, int nf, int order,
                  dt_fields *f)
{
    unsigned fmask = 0, tmask = 0;
    int ptype = U_NONE, mer = V_HR24, text_month = 0, isjulian = 0;
    int is2digits = 0, bc = 0, yday = 0, server = 0, rc;
    int dtype = DT_VALUE;
    int32_t tz = 0;
    char *cp;
    int erange;
    for (int i = 0; i < nf; i++) {
        switch (ftype[i]) {
        case F_DATE:
            if (ptype == U_JULIAN) {
                /* J2451187-05: a Julian day and an offset */
                int val = str_to_int(field[i], &cp, &erange);
                if (erange || val < 0)
                    return SL_ERANGE;
                j2date(val, &f->year, &f->mon, &f->mday);
                isjulian = 1;
                if ((rc = decode_timezone(cp, &tz)) != SL_OK)
                    return rc;
                tmask = DATE_M | TIME_M | M(T_TZ);
                ptype = U_NONE;
            } else if (ptype != U_NONE ||
                       (fmask & (M(T_MONTH) | M(T_DAY))) ==
                           (M(T_MONTH) | M(T_DAY))) {
                if (is_digit((unsigned char)*field[i]) || ptype != U_NONE) {
                    /* hhmmss-zz */
                    if (ptype != U_NONE) {
                        if (ptype != U_TIME)
                            return SL_EINVAL;
                        ptype = U_NONE;
                    }
                    if ((fmask & TIME_M) == TIME_M)
                        return SL_EINVAL;
                    if (!(cp = strchr(field[i], '-')))
                        return SL_EINVAL;
                    if ((rc = decode_timezone(cp, &tz)) != SL_OK)
                        return rc;
                    *cp = '\0';
                    rc = decode_number_field(strlen(field[i]), field[i], fmask,
                                             &tmask, f, &is2digits);
                    if (rc < 0)
                        return rc;
                    tmask |= M(T_TZ);
                } else {
                    /* a zone name (America/New_York, EST5EDT): the
                     * server looks it up at once and refuses (22023) one
                     * it does not know */
                    server_word(f, field[i], &server);
                    return SL_ESERVERONLY;
                }
            } else {
                rc = decode_date(field[i], fmask, &tmask, &is2digits, order,
                                 f, &yday);
                if (rc != SL_OK)
                    return rc;
            }
            break;
        case F_TIME:
            if (ptype != U_NONE) {
                if (ptype != U_TIME)
                    return SL_EINVAL;
                ptype = U_NONE;
            }
            if ((rc = decode_time(field[i], &tmask, f)) != SL_OK)
                return rc;
            if (time_overflows(f->hour, f->min, f->sec, f->fsec))
                return SL_ERANGE;
            break;
        case F_TZ:
            if ((rc = decode_timezone(field[i], &tz)) != SL_OK)
                return rc;
            tmask = M(T_TZ);
            break;
        case F_NUMBER:
            if (ptype != U_NONE) {
                /* a number after a unit word: y2000, j2451187, t040506 */
                int val = str_to_int(field[i], &cp, &erange);
                if (erange)
                    return SL_ERANGE;
                if (*cp == '.') {
                    if (ptype != U_JULIAN && ptype != U_TIME &&
                        ptype != U_SECOND)
                        return SL_EINVAL;
                } else if (*cp != '\0') {
                    return SL_EINVAL;
                }
                switch (ptype) {
                case U_YEAR:
                    f->year = val;
                    tmask = M(T_YEAR);
                    break;
                case U_MONTH:
                    if ((fmask & M(T_MONTH)) && (fmask & M(T_HOUR))) {
                        f->min = val;
                        tmask = M(T_MINUTE);
                    } else {
                        f->mon = val;
                        tmask = M(T_MONTH);
                    }
                    break;
                case U_DAY:
                    f->mday = val;
                    tmask = M(T_DAY);
                    break;
                case U_HOUR:
                    /* beyond a day the server's date_in moves the date
                     * with them (e.g. "9923H32058sep8" is 9927-05-05):
                     * left to the server's reading */
                    if (val < 0 || val > 24)
                        return SL_ESERVERONLY;
                    f->hour = val;
                    tmask = M(T_HOUR);
                    break;
                case U_MINUTE:
                    if (val < 0 || val > 59)
                        return SL_ESERVERONLY;
                    f->min = val;
                    tmask = M(T_MINUTE);
                    break;
                case U_SECOND:
                    if (val < 0 || val > 60)
                        return SL_ESERVERONLY;
                    f->sec = val;
                    tmask = M(T_SECOND);
                    if (*cp == '.') {
                        if ((rc = parse_frac_second(cp, &f->fsec)) != SL_OK)
                            return rc;
                        tmask = ALL_SECS_M;
                    }
                    break;
                case U_JULIAN:
                    if (val < 0)
                        return SL_ERANGE;
                    tmask = DATE_M;
                    j2date(val, &f->year, &f->mon, &f->mday);
                    isjulian = 1;
                    if (*cp == '.') {
                        double frac;
                        if ((rc = parse_fraction(cp, &frac)) != SL_OK)
                            return rc;
                        /* dt2time() of the fraction of a day */
                        int64_t t = (int64_t)(frac * (double)USECS_PER_DAY);
                        f->hour = (int)(t / USECS_PER_HOUR);
                        t -= f->hour * USECS_PER_HOUR;
                        f->min = (int)(t / USECS_PER_MINUTE);
                        t -= f->min * USECS_PER_MINUTE;
                        f->sec = (int)(t / USECS_PER_SEC);
                        f->fsec = (int32_t)(t - f->sec * USECS_PER_SEC);
                        tmask |= TIME_M;
                    }
                    break;
                case U_TIME:
                    rc = decode_number_field(strlen(field[i]), field[i],
                                             fmask | DATE_M, &tmask, f,
                                             &is2digits);
                    if (rc < 0)
                        return rc;
                    if (tmask != TIME_M)
                        return SL_EINVAL;
                    break;
                default:
                    return SL_EINVAL;
                }
                ptype = U_NONE;
                dtype = DT_VALUE;
            } else {
                size_t flen = strlen(field[i]);
                cp = strchr(field[i], '.');
                if (cp && !(fmask & DATE_M)) {
                    rc = decode_date(field[i], fmask, &tmask, &is2digits,
                                     order, f, &yday);
                    if (rc != SL_OK)
                        return rc;
                } else if (cp && flen - strlen(cp) > 2) {
                    rc = decode_number_field(flen, field[i], fmask, &tmask,
                                             f, &is2digits);
                    if (rc < 0)
                        return rc;
                } else if (flen >= 6 &&
                           (!(fmask & DATE_M) || !(fmask & TIME_M))) {
                    /* 19990108, 990108, 040506 */
                    rc = decode_number_field(flen, field[i], fmask, &tmask,
                                             f, &is2digits);
                    if (rc < 0)
                        return rc;
                } else {
                    rc = decode_number(flen, field[i], text_month, fmask,
                                       &tmask, order, f, &is2digits, &yday);
                    if (rc != SL_OK)
                        return rc;
                }
            }
            break;
        case F_STRING:
        case F_SPECIAL: {
            int type, val = 0;
            const keyword *k = NULL;
            if (ftype[i] == F_STRING && is_utc_abbrev(field[i])) {
                type = T_TZ;
            } else {
                k = lookup(field[i]);
                type = k ? k->type : T_UNKNOWN;
                val = k ? k->value : 0;
            }
            if (type == T_IGNORE)
                continue;
            tmask = M(type);
            switch (type) {
            case T_RESERV:
                switch (val) {
                case R_NOW:
                    tmask = DATE_M | TIME_M | M(T_TZ);
                    dtype = DT_VALUE;
                    placeholder_date(f);
                    server_word(f, field[i], &server);
                    break;
                case R_TODAY:
                case R_TOMORROW:
                case R_YESTERDAY:
                    tmask = DATE_M;
                    dtype = DT_VALUE;
                    placeholder_date(f);
                    server_word(f, field[i], &server);
                    break;
                case R_ZULU: /* allballs */
                    tmask = TIME_M | M(T_TZ);
                    dtype = DT_VALUE;
                    f->hour = f->min = f->sec = 0;
                    tz = 0;
                    break;
                case R_EPOCH:
                    dtype = DT_EPOCH;
                    break;
                case R_LATE:
                    dtype = DT_LATE;
                    break;
                default:
                    dtype = DT_EARLY;
                    break;
                }
                break;
            case T_MONTH:
                /* a number already read as the month was the day */
                if ((fmask & M(T_MONTH)) && !text_month &&
                    !(fmask & M(T_DAY)) && f->mon >= 1 && f->mon <= 31) {
                    f->mday = f->mon;
                    tmask = M(T_DAY);
                }
                text_month = 1;
                f->mon = val;
                break;
            case T_DTZMOD:
                tmask |= M(T_DTZ);
                tz -= val;
                break;
            case T_TZ:
                tz = 0;
                break;
            case T_AMPM:
                mer = val;
                break;
            case T_ADBC:
                bc = val == V_BC;
                break;
            case T_DOW:
                break;
            case T_UNITS:
                tmask = 0;
                ptype = val;
                break;
            case T_ISOTIME:
                tmask = 0;
                if ((fmask & DATE_M) != DATE_M)
                    return SL_EINVAL;
                if (i >= nf - 1 ||
                    (ftype[i + 1] != F_NUMBER && ftype[i + 1] != F_TIME &&
                     ftype[i + 1] != F_DATE))
                    return SL_EINVAL;
                ptype = val;
                break;
            default:
                /* a zone name or abbreviation, which the server looks up
                 * (a sign and letters is neither, nor is one letter) */
                if (ftype[i] == F_SPECIAL || field[i][1] == '\0')
                    return SL_EINVAL;
                server_word(f, field[i], &server);
                return SL_ESERVERONLY;
            }
            break;
        }
        default:
            return SL_EINVAL;
        }
        if (tmask & fmask)
            return SL_EINVAL;
        fmask |= tmask;
    }
    if ((rc = validate_date(fmask, isjulian, is2digits, bc, yday, f)) !=
        SL_OK)
        return rc;
    if (mer != V_HR24 && f->hour > 12)
        return SL_ERANGE;
    if (mer == V_AM && f->hour == 12)
        f->hour = 0;
    else if (mer == V_PM && f->hour != 12)
        f->hour += 12;
    if (dtype == DT_VALUE) {
        if ((fmask & DATE_M) != DATE_M)
            return SL_EINVAL;
        if ((fmask & M(T_DTZMOD)) && (server || !(fmask & M(T_TZ))))
            return SL_EINVAL;
    }
    if (server)
        return SL_ESERVERONLY;
    f->kind = dtype;
    f->has_tz = (fmask & M(T_TZ)) != 0;
    f->tz = tz;
    return SL_OK;
}

/* ------------------------------------------------------ the fast path */

static inline int digits(const char *s, size_t n, size_t *i, int min,
                         int max, int *v)
{
    int k = 0, x = 0;
    while (*i < n && k < max && is_digit((unsigned char)s[*i])) {
        x = x * 10 + (s[*i] - '0');
        (*i)++;
        k++;
    }
    *v = x;
    return k >= min && !(*i < n && is_digit((unsigned char)s[*i]));
}

/* YYYY-MM-DD[( |T)hh:mm[:ss[.f]]][ ][Z|UTC|+hh[[:]mm[:ss]]], the forms
 * the server prints, read straight into f: 1, or 0 when the string is
 * anything else or out of range (the general path then decides). */
static int fast_iso(const char *s, size_t n, dt_fields *f)
{
    while (n > 0 && is_space((unsigned char)*s)) {
        s++;
        n--;
    }
    while (n > 0 && is_space((unsigned char)s[n - 1]))
        n--;
    if (n < 10 || n > 64)
        return 0;
    size_t i = 0;
    int y, mo, d, h = 0, mi = 0, sec = 0;
    int32_t fsec = 0;
    if (!digits(s, n, &i, 4, 6, &y) || i >= n || s[i++] != '-' ||
        !digits(s, n, &i, 1, 2, &mo) || i >= n || s[i++] != '-' ||
        !digits(s, n, &i, 1, 2, &d))
        return 0;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 ||
        d > day_tab[is_leap(y)][mo - 1])
        return 0;
    f->kind = DT_VALUE;
    f->has_tz = 0;
    f->tz = 0;
    if (i < n) {
        if (s[i] != ' ' && s[i] != 'T' && s[i] != 't')
            return 0;
        i++;
        if (!digits(s, n, &i, 1, 2, &h) || i >= n || s[i++] != ':' ||
            !digits(s, n, &i, 2, 2, &mi))
            return 0;
        if (i < n && s[i] == ':') {
            i++;
            if (!digits(s, n, &i, 2, 2, &sec))
                return 0;
            if (i < n && s[i] == '.') {
                size_t dot = i++;
                int v = 0;
                while (i < n && is_digit((unsigned char)s[i])) {
                    if (i - dot <= 6)
                        v = v * 10 + (s[i] - '0');
                    i++;
                }
                size_t k = i - dot - 1;
                if (k == 0 || k > 30)
                    return 0;
                if (k <= 6) {
                    /* exact: rint() of the double is this integer */
                    while (k++ < 6)
                        v *= 10;
                    fsec = v;
                } else {
                    double frac;
                    if (numparse_double(s + dot, i - dot, &frac) != 0)
                        return 0;
                    fsec = (int32_t)rint(frac * 1000000.0);
                }
            }
        }
        if (i < n && (s[i] == '.' || s[i] == ':'))
            return 0;
        if (time_overflows(h, mi, sec, fsec))
            return 0;
        while (i < n && s[i] == ' ')
            i++;
        if (i < n) {
            int c = s[i];
            if ((c == 'Z' || c == 'z') && i + 1 == n) {
                f->has_tz = 1;
                i++;
            } else if (n - i == 3 && lower(c) == 'u' &&
                       lower(s[i + 1]) == 't' && lower(s[i + 2]) == 'c') {
                f->has_tz = 1;
                i += 3;
            } else if (c == '+' || c == '-') {
                int oh, om = 0, os = 0;
                i++;
                if (!digits(s, n, &i, 2, 2, &oh))
                    return 0;
                if (i < n && s[i] == ':') {
                    i++;
                    if (!digits(s, n, &i, 2, 2, &om))
                        return 0;
                    if (i < n && s[i] == ':') {
                        i++;
                        if (!digits(s, n, &i, 2, 2, &os))
                            return 0;
                    }
                } else if (i < n && !digits(s, n, &i, 2, 2, &om)) {
                    return 0;
                }
                if (i != n || oh > 15 || om > 59 || os > 59)
                    return 0;
                int32_t t = (oh * 60 + om) * 60 + os;
                f->has_tz = 1;
                f->tz = c == '-' ? t : -t;
            }
            if (i != n)
                return 0;
        }
    }
    f->year = y;
    f->mon = mo;
    f->mday = d;
    f->hour = h;
    f->min = mi;
    f->sec = sec;
    f->fsec = fsec;
    return 1;
}

/* ---------------------------------------------------------- the API */

int dt_order_of(const char *datestyle)
{
    if (!datestyle)
        return DT_MDY;
    for (const char *p = datestyle; p[0] && p[1] && p[2]; p++) {
        char w[4] = { (char)lower(p[0]), (char)lower(p[1]),
                      (char)lower(p[2]), 0 };
        if (strcmp(w, "dmy") == 0)
            return DT_DMY;
        if (strcmp(w, "ymd") == 0)
            return DT_YMD;
        if (strcmp(w, "mdy") == 0)
            return DT_MDY;
    }
    return DT_MDY;
}

int dt_parse(const char *s, size_t n, int order, int for_date,
             dt_fields *f)
{
    /* (the fast path sets every field; it takes no NUL byte) */
    f->word[0] = '\0';
    if (fast_iso(s, n, f))
        return SL_OK;
    memset(f, 0, sizeof *f);
    if (memchr(s, '\0', n))
        return SL_ENUL;
    char buf[WORKBUF_TS];
    char *field[MAXDATEFIELDS];
    int ftype[MAXDATEFIELDS], nf = 0;
    int rc = split_fields(s, n, buf, for_date ? WORKBUF_DATE : WORKBUF_TS,
                          field, ftype, &nf);
    if (rc != SL_OK)
        return rc;
    return decode(field, ftype, nf, order, f);
}

/* tm2timestamp() (tzp: seconds west, or NULL for a timestamp), with the
 * server's wrapping arithmetic and checks. */
static int tm2timestamp(const dt_fields *f, const int32_t *tzp,
                        int64_t *out)
{
    if (!valid_julian(f->year, f->mon))
        return SL_ERANGE;
    int64_t date = (int64_t)date2j(f->year, f->mon, f->mday) -
                   POSTGRES_EPOCH_JDATE;
    int32_t hms = w32((int64_t)w32((int64_t)w32((int64_t)f->hour * 60) +
                                   f->min) *
                          60 +
                      f->sec);
    int64_t time = (int64_t)hms * USECS_PER_SEC + f->fsec;
    int64_t result =
        (int64_t)((uint64_t)date * (uint64_t)USECS_PER_DAY + (uint64_t)time);
    if ((int64_t)((uint64_t)result - (uint64_t)time) / USECS_PER_DAY != date)
        return SL_ERANGE;
    if ((result < 0 && date > 0) || (result > 0 && date < -1))
        return SL_ERANGE;
    if (tzp)
        result = (int64_t)((uint64_t)result +
                           (uint64_t)((int64_t)*tzp * USECS_PER_SEC));
    if (!(result >= MIN_TIMESTAMP && result < END_TIMESTAMP))
        return SL_ERANGE;
    *out = result;
    return SL_OK;
}

int dt_timestamp(const dt_fields *f, const tz_rules *zone, int with_tz,
                 int64_t *usec)
{
    switch (f->kind) {
    case DT_EPOCH:
        *usec = INT64_C(-946684800000000);
        return SL_OK;
    case DT_LATE:
        *usec = INT64_MAX;
        return SL_OK;
    case DT_EARLY:
        *usec = INT64_MIN;
        return SL_OK;
    }
    if (!with_tz)
        return tm2timestamp(f, NULL, usec);
    int32_t tz = f->tz;
    if (!f->has_tz) {
        if (!zone)
            return SL_ENOZONE;
        tz = tz_local_offset(zone, f->year, f->mon, f->mday, f->hour, f->min,
                             f->sec);
    }
    return tm2timestamp(f, &tz, usec);
}

int dt_date(const dt_fields *f, int32_t *days)
{
    int y = f->year, m = f->mon, d = f->mday;
    switch (f->kind) {
    case DT_EPOCH:
        y = 1970;
        m = d = 1;
        break;
    case DT_LATE:
        *days = INT32_MAX;
        return SL_OK;
    case DT_EARLY:
        *days = INT32_MIN;
        return SL_OK;
    }
    if (!valid_julian(y, m))
        return SL_ERANGE;
    int64_t date = (int64_t)date2j(y, m, d) - POSTGRES_EPOCH_JDATE;
    if (!(date >= -POSTGRES_EPOCH_JDATE &&
          date < DATE_END_JULIAN - POSTGRES_EPOCH_JDATE))
        return SL_ERANGE;
    *days = (int32_t)date;
    return SL_OK;
}
