/*
 * tzrules.c - a zone's rules from a TZif file or a POSIX TZ string, and
 * PostgreSQL's reading of a local time in that zone (see tzrules.h).
 *
 * The steps follow PostgreSQL's copy of the IANA code (tzloadbody,
 * tzparse, pg_next_dst_boundary in src/timezone/localtime.c, and
 * DetermineTimeZoneOffsetInternal in src/backend/utils/adt/datetime.c),
 * written again here, so that the table (and so every offset) is the
 * server's: the version 2+ 64-bit data, the footer's POSIX rule adding
 * transitions after the file's last one (up to TZR_MAX_TIMES in all),
 * and beyond the table the 400-year repetition of the Gregorian
 * calendar.
 *
 * Caveats:
 * - Zones with leap seconds ("right/...") are refused; the server reads
 *   them, but they are never a session TimeZone in practice.
 * - A POSIX string with DST but no rule gets the US rule, as the server
 *   gives it (TZDEFRULESTRING); the server never loads "posixrules".
 */
#include "tzrules.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECSPERMIN 60
#define MINSPERHOUR 60
#define SECSPERHOUR 3600
#define HOURSPERDAY 24
#define DAYSPERWEEK 7
#define SECSPERDAY 86400
#define MONSPERYEAR 12
#define DAYSPERNYEAR 365
#define DAYSPERLYEAR 366
#define EPOCH_YEAR 1970
#define YEARSPERREPEAT 400
#define AVGSECSPERYEAR INT64_C(31556952)
#define SECSPERREPEAT (YEARSPERREPEAT * AVGSECSPERYEAR)
#define TZR_MAX_LEAPS 50
#define TZDEFRULESTRING ",M3.2.0,M11.1.0"
#define TZHEAD_SIZE 44
#define TZFILE_MAX (1 << 20)

#define ISLEAP(y) (((y) % 4) == 0 && (((y) % 100) != 0 || ((y) % 400) == 0))

const tz_rules tz_rules_utc = {
    .typecnt = 1,
    .charcnt = 4,
    .chars = "UTC",
};

static const int mon_lengths[2][MONSPERYEAR] = {
    { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 },
    { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 },
};

static const int year_lengths[2] = { DAYSPERNYEAR, DAYSPERLYEAR };

int tz_is_utc_name(const char *name)
{
    static const char *const names[] = {
        "utc", "etc/utc", "gmt", "etc/gmt", "uct", "etc/uct", "zulu",
        "etc/zulu", "universal", "etc/universal", "greenwich",
        "etc/greenwich", "gmt0", "etc/gmt0", "gmt+0", "gmt-0", "etc/gmt+0",
        "etc/gmt-0", "z",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *a = name, *b = names[i];
        while (*a && tolower((unsigned char)*a) == *b) {
            a++;
            b++;
        }
        if (*a == '\0' && *b == '\0')
            return 1;
    }
    return 0;
}

/* ------------------------------------------------------- reading TZif */

static int32_t get32(const unsigned char *p)
{
    return (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
                     (uint32_t)p[2] << 8 | p[3]);
}

static int64_t get64(const unsigned char *p)
{
    return (int64_t)((uint64_t)(uint32_t)get32(p) << 32 |
                     (uint32_t)get32(p + 4));
}

static void set_err(char *err, size_t errlen, const char *what)
{
    if (errlen)
        snprintf(err, errlen, "%s", what);
}

/* One data block (4- or 8-byte times) of a TZif file at buf, len bytes
 * left; *used gets its size.  0, or -1 when it is malformed (the checks
 * of tzloadbody). */
static int read_block(tz_rules *z, const unsigned char *buf, size_t len,
                      int stored, size_t *used, int *leaps)
{
    if (len < TZHEAD_SIZE)
        return -1;
    int32_t ttisutcnt = get32(buf + 20), ttisstdcnt = get32(buf + 24),
            leapcnt = get32(buf + 28), timecnt = get32(buf + 32),
            typecnt = get32(buf + 36), charcnt = get32(buf + 40);
    if (!(leapcnt >= 0 && leapcnt < TZR_MAX_LEAPS && typecnt >= 0 &&
          typecnt < TZR_MAX_TYPES && timecnt >= 0 &&
          timecnt < TZR_MAX_TIMES && charcnt >= 0 &&
          charcnt < TZR_MAX_CHARS &&
          (ttisstdcnt == typecnt || ttisstdcnt == 0) &&
          (ttisutcnt == typecnt || ttisutcnt == 0)))
        return -1;
    size_t need = TZHEAD_SIZE + (size_t)timecnt * (size_t)stored +
                  (size_t)timecnt + (size_t)typecnt * 6 + (size_t)charcnt +
                  (size_t)leapcnt * ((size_t)stored + 4) +
                  (size_t)ttisstdcnt + (size_t)ttisutcnt;
    if (len < need)
        return -1;
    const unsigned char *p = buf + TZHEAD_SIZE;
    z->typecnt = typecnt;
    z->charcnt = charcnt;
    /* transitions: a repeated instant replaces the one before it */
    unsigned char keep[TZR_MAX_TIMES];
    int n = 0;
    for (int i = 0; i < timecnt; i++) {
        int64_t at = stored == 4 ? get32(p) : get64(p);
        p += stored;
        keep[i] = 1;
        if (n && at <= z->ats[n - 1]) {
            if (at < z->ats[n - 1])
                return -1;
            keep[i - 1] = 0;
            n--;
        }
        z->ats[n++] = at;
    }
    n = 0;
    for (int i = 0; i < timecnt; i++) {
        unsigned char typ = *p++;
        if (typ >= typecnt)
            return -1;
        if (keep[i])
            z->types[n++] = typ;
    }
    z->timecnt = n;
    for (int i = 0; i < typecnt; i++) {
        tz_ttinfo *t = &z->ttis[i];
        t->utoff = get32(p);
        p += 4;
        if (p[0] > 1 || p[1] >= charcnt)
            return -1;
        t->isdst = p[0];
        t->desigidx = p[1];
        t->ttisstd = t->ttisut = 0;
        p += 2;
    }
    memcpy(z->chars, p, (size_t)charcnt);
    z->chars[charcnt] = '\0';
    p += charcnt;
    p += (size_t)leapcnt * ((size_t)stored + 4);
    *leaps = leapcnt;
    for (int i = 0; i < typecnt && ttisstdcnt; i++) {
        if (*p > 1)
            return -1;
        z->ttis[i].ttisstd = *p++;
    }
    for (int i = 0; i < typecnt && ttisutcnt; i++) {
        if (*p > 1)
            return -1;
        z->ttis[i].ttisut = *p++;
    }
    *used = (size_t)(p - buf);
    return 0;
}

/* --------------------------------------------------- POSIX TZ strings */

enum { JULIAN_DAY, DAY_OF_YEAR, MONTH_NTH_DAY_OF_WEEK };

typedef struct tz_rule {
    int type, day, week, mon;
    int32_t time;
} tz_rule;

static const char *getzname(const char *p)
{
    while (*p && !isdigit((unsigned char)*p) && *p != ',' && *p != '-' &&
           *p != '+')
        p++;
    return p;
}

static const char *getqzname(const char *p, int delim)
{
    while (*p && *p != delim)
        p++;
    return p;
}

static const char *getnum(const char *p, int *num, int min, int max)
{
    if (!p || !isdigit((unsigned char)*p))
        return NULL;
    int v = 0;
    do {
        v = v * 10 + (*p - '0');
        if (v > max)
            return NULL;
        p++;
    } while (isdigit((unsigned char)*p));
    if (v < min)
        return NULL;
    *num = v;
    return p;
}

static const char *getsecs(const char *p, int32_t *secs)
{
    int num;
    p = getnum(p, &num, 0, HOURSPERDAY * DAYSPERWEEK - 1);
    if (!p)
        return NULL;
    *secs = num * SECSPERHOUR;
    if (*p == ':') {
        p = getnum(p + 1, &num, 0, MINSPERHOUR - 1);
        if (!p)
            return NULL;
        *secs += num * SECSPERMIN;
        if (*p == ':') {
            p = getnum(p + 1, &num, 0, SECSPERMIN);
            if (!p)
                return NULL;
            *secs += num;
        }
    }
    return p;
}

static const char *getoffset(const char *p, int32_t *off)
{
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    } else if (*p == '+') {
        p++;
    }
    p = getsecs(p, off);
    if (p && neg)
        *off = -*off;
    return p;
}

static const char *getrule(const char *p, tz_rule *r)
{
    if (*p == 'J') {
        r->type = JULIAN_DAY;
        p = getnum(p + 1, &r->day, 1, DAYSPERNYEAR);
    } else if (*p == 'M') {
        r->type = MONTH_NTH_DAY_OF_WEEK;
        p = getnum(p + 1, &r->mon, 1, MONSPERYEAR);
        if (!p || *p++ != '.')
            return NULL;
        p = getnum(p, &r->week, 1, 5);
        if (!p || *p++ != '.')
            return NULL;
        p = getnum(p, &r->day, 0, DAYSPERWEEK - 1);
    } else if (isdigit((unsigned char)*p)) {
        r->type = DAY_OF_YEAR;
        p = getnum(p, &r->day, 0, DAYSPERLYEAR - 1);
    } else {
        return NULL;
    }
    if (!p)
        return NULL;
    if (*p == '/')
        return getoffset(p + 1, &r->time);
    r->time = 2 * SECSPERHOUR;
    return p;
}

/* Seconds from the start of `year` (UT) to the rule's local time. */
static int32_t transtime(int year, const tz_rule *r, int32_t offset)
{
    int leap = ISLEAP(year);
    int32_t value = 0;
    switch (r->type) {
    case JULIAN_DAY:
        value = (r->day - 1) * SECSPERDAY;
        if (leap && r->day >= 60)
            value += SECSPERDAY;
        break;
    case DAY_OF_YEAR:
        value = r->day * SECSPERDAY;
        break;
    default: {
        /* Zeller's congruence: the weekday of the month's first day */
        int m1 = (r->mon + 9) % 12 + 1;
        int yy0 = r->mon <= 2 ? year - 1 : year;
        int yy1 = yy0 / 100, yy2 = yy0 % 100;
        int dow = ((26 * m1 - 2) / 10 + 1 + yy2 + yy2 / 4 + yy1 / 4 -
                   2 * yy1) % 7;
        if (dow < 0)
            dow += DAYSPERWEEK;
        int d = r->day - dow;
        if (d < 0)
            d += DAYSPERWEEK;
        for (int i = 1; i < r->week; i++) {
            if (d + DAYSPERWEEK >= mon_lengths[leap][r->mon - 1])
                break;
            d += DAYSPERWEEK;
        }
        value = d * SECSPERDAY;
        for (int i = 0; i < r->mon - 1; i++)
            value += mon_lengths[leap][i] * SECSPERDAY;
    }
    }
    return value + r->time + offset;
}

static void init_ttinfo(tz_ttinfo *t, int32_t utoff, int isdst, int idx)
{
    t->utoff = utoff;
    t->isdst = isdst;
    t->desigidx = idx;
    t->ttisstd = t->ttisut = 0;
}

/* tzparse(name, sp, false): 1, or 0 when name is not a POSIX TZ
 * string. */
static int tzparse(const char *name, tz_rules *z)
{
    const char *stdname = name, *dstname = NULL;
    size_t stdlen, dstlen = 0;
    int32_t stdoffset, dstoffset;
    if (*name == '<') {
        stdname = ++name;
        name = getqzname(name, '>');
        if (*name != '>')
            return 0;
        stdlen = (size_t)(name - stdname);
        name++;
    } else {
        name = getzname(name);
        stdlen = (size_t)(name - stdname);
    }
    if (*name == '\0')
        return 0;
    name = getoffset(name, &stdoffset);
    if (!name)
        return 0;
    size_t charcnt = stdlen + 1;
    if (charcnt > sizeof z->chars)
        return 0;
    z->goback = z->goahead = 0;
    if (*name != '\0') {
        if (*name == '<') {
            dstname = ++name;
            name = getqzname(name, '>');
            if (*name != '>')
                return 0;
            dstlen = (size_t)(name - dstname);
            name++;
        } else {
            dstname = name;
            name = getzname(name);
            dstlen = (size_t)(name - dstname);
        }
        if (!dstlen)
            return 0;
        charcnt += dstlen + 1;
        if (charcnt > sizeof z->chars)
            return 0;
        if (*name != '\0' && *name != ',' && *name != ';') {
            name = getoffset(name, &dstoffset);
            if (!name)
                return 0;
        } else {
            dstoffset = stdoffset - SECSPERHOUR;
        }
        if (*name == '\0')
            name = TZDEFRULESTRING;
        if (*name != ',' && *name != ';')
            return 0;
        tz_rule start, end;
        if (!(name = getrule(name + 1, &start)) || *name++ != ',' ||
            !(name = getrule(name, &end)) || *name != '\0')
            return 0;
        z->typecnt = 2;
        init_ttinfo(&z->ttis[0], -stdoffset, 0, 0);
        init_ttinfo(&z->ttis[1], -dstoffset, 1, (int)stdlen + 1);
        z->defaulttype = 0;
        /* two transitions a year, from two centuries before 1970 on */
        int timecnt = 0, yearbeg = EPOCH_YEAR, year;
        int64_t janfirst = 0;
        do {
            int32_t yearsecs = year_lengths[ISLEAP(yearbeg - 1)] * SECSPERDAY;
            yearbeg--;
            janfirst -= yearsecs;
        } while (EPOCH_YEAR - YEARSPERREPEAT / 2 < yearbeg);
        int yearlim = yearbeg + YEARSPERREPEAT + 1;
        for (year = yearbeg; year < yearlim; year++) {
            int32_t starttime = transtime(year, &start, stdoffset),
                    endtime = transtime(year, &end, dstoffset);
            int32_t yearsecs = year_lengths[ISLEAP(year)] * SECSPERDAY;
            int reversed = endtime < starttime;
            if (reversed) {
                int32_t swap = starttime;
                starttime = endtime;
                endtime = swap;
            }
            if (reversed ||
                (starttime < endtime &&
                 endtime - starttime < yearsecs + (stdoffset - dstoffset))) {
                if (TZR_MAX_TIMES - 2 < timecnt)
                    break;
                z->ats[timecnt] = janfirst + starttime;
                z->types[timecnt++] = (unsigned char)!reversed;
                z->ats[timecnt] = janfirst + endtime;
                z->types[timecnt++] = (unsigned char)reversed;
                yearlim = year + YEARSPERREPEAT + 1;
            }
            janfirst += yearsecs;
        }
        z->timecnt = timecnt;
        if (!timecnt) {
            z->ttis[0] = z->ttis[1]; /* perpetual DST */
            z->typecnt = 1;
        } else if (YEARSPERREPEAT < year - yearbeg) {
            z->goback = z->goahead = 1;
        }
    } else {
        z->typecnt = 1;
        z->timecnt = 0;
        init_ttinfo(&z->ttis[0], -stdoffset, 0, 0);
        z->defaulttype = 0;
    }
    z->charcnt = (int)charcnt;
    memcpy(z->chars, stdname, stdlen);
    z->chars[stdlen] = '\0';
    if (dstlen) {
        memcpy(z->chars + stdlen + 1, dstname, dstlen);
        z->chars[stdlen + 1 + dstlen] = '\0';
    }
    return 1;
}

/* ------------------------------------------------ building the table */

static int typesequiv(const tz_rules *z, int a, int b)
{
    if (a < 0 || a >= z->typecnt || b < 0 || b >= z->typecnt)
        return 0;
    const tz_ttinfo *x = &z->ttis[a], *y = &z->ttis[b];
    return x->utoff == y->utoff && x->isdst == y->isdst &&
           x->ttisstd == y->ttisstd && x->ttisut == y->ttisut &&
           strcmp(z->chars + x->desigidx, z->chars + y->desigidx) == 0;
}

/* The file's footer rule after its last transition (tzloadbody's
 * "doextend" step); ts is scratch space. */
static void extend(tz_rules *z, const char *footer, tz_rules *ts)
{
    if (!tzparse(footer, ts))
        return;
    /* reuse the file's abbreviations (their bytes count against
     * TZR_MAX_CHARS) */
    int gotabbr = 0, charcnt = z->charcnt;
    for (int i = 0; i < ts->typecnt; i++) {
        const char *abbr = ts->chars + ts->ttis[i].desigidx;
        int j;
        for (j = 0; j < charcnt; j++)
            if (strcmp(z->chars + j, abbr) == 0) {
                ts->ttis[i].desigidx = j;
                gotabbr++;
                break;
            }
        if (j >= charcnt) {
            int len = (int)strlen(abbr);
            if (j + len < TZR_MAX_CHARS) {
                memcpy(z->chars + j, abbr, (size_t)len + 1);
                charcnt = j + len + 1;
                ts->ttis[i].desigidx = j;
                gotabbr++;
            }
        }
    }
    if (gotabbr != ts->typecnt)
        return;
    z->charcnt = charcnt;
    /* trailing no-op transitions do not help */
    while (z->timecnt > 1 &&
           z->types[z->timecnt - 1] == z->types[z->timecnt - 2])
        z->timecnt--;
    int i = 0;
    while (i < ts->timecnt && z->timecnt != 0 &&
           !(z->ats[z->timecnt - 1] < ts->ats[i]))
        i++;
    for (; i < ts->timecnt && z->timecnt < TZR_MAX_TIMES; i++) {
        z->ats[z->timecnt] = ts->ats[i];
        z->types[z->timecnt] = (unsigned char)(z->typecnt + ts->types[i]);
        z->timecnt++;
    }
    for (i = 0; i < ts->typecnt; i++)
        z->ttis[z->typecnt++] = ts->ttis[i];
}

/* What tzloadbody does once the data is in: the 400-year repetition
 * and the default type. */
static void finish_table(tz_rules *z)
{
    z->goback = z->goahead = 0;
    if (z->timecnt > 1) {
        for (int i = 1; i < z->timecnt; i++)
            if (typesequiv(z, z->types[i], z->types[0]) &&
                z->ats[i] - z->ats[0] == SECSPERREPEAT) {
                z->goback = 1;
                break;
            }
        for (int i = z->timecnt - 2; i >= 0; i--)
            if (typesequiv(z, z->types[z->timecnt - 1], z->types[i]) &&
                z->ats[z->timecnt - 1] - z->ats[i] == SECSPERREPEAT) {
                z->goahead = 1;
                break;
            }
    }
    int i;
    for (i = 0; i < z->timecnt; i++)
        if (z->types[i] == 0)
            break;
    i = i < z->timecnt ? -1 : 0;
    if (i < 0 && z->timecnt > 0 && z->ttis[z->types[0]].isdst) {
        i = z->types[0];
        while (--i >= 0)
            if (!z->ttis[i].isdst)
                break;
    }
    if (i < 0) {
        i = 0;
        while (z->ttis[i].isdst)
            if (++i >= z->typecnt) {
                i = 0;
                break;
            }
    }
    z->defaulttype = i;
}

/* The whole file at path into a malloc'd buffer (*len bytes); NULL with
 * the reason in err. */
static unsigned char *slurp(const char *path, size_t *len, char *err,
                            size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%.200s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    unsigned char *buf = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        st.st_size > TZFILE_MAX) {
        snprintf(err, errlen, "%.200s: not a zone file", path);
        goto done;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            snprintf(err, errlen, "%.200s: %s", path,
                     r < 0 ? strerror(errno) : "short read");
            free(buf);
            buf = NULL;
            goto done;
        }
        got += (size_t)r;
    }
    *len = got;
done:
    close(fd);
    return buf;
}

/* Read the TZif data of buf into z (ts: scratch for the footer). */
static int load_tzif(tz_rules *z, unsigned char *buf, size_t len,
                     tz_rules *ts, char *err, size_t errlen)
{
    if (len < TZHEAD_SIZE || memcmp(buf, "TZif", 4) != 0) {
        set_err(err, errlen, "not a TZif file");
        return -1;
    }
    int version = buf[4];
    size_t used = 0;
    int leaps = 0;
    if (read_block(z, buf, len, 4, &used, &leaps) != 0) {
        set_err(err, errlen, "a malformed TZif file");
        return -1;
    }
    if (version != 0) {
        buf += used;
        len -= used;
        if (read_block(z, buf, len, 8, &used, &leaps) != 0) {
            set_err(err, errlen, "a malformed TZif file");
            return -1;
        }
        buf += used;
        len -= used;
    }
    if (leaps > 0) {
        set_err(err, errlen, "rules with leap seconds, which binary COPY "
                             "does not read");
        return -1;
    }
    if (version != 0 && len > 2 && buf[0] == '\n' && buf[len - 1] == '\n' &&
        z->typecnt + 2 <= TZR_MAX_TYPES) {
        buf[len - 1] = '\0';
        extend(z, (const char *)buf + 1, ts);
    }
    if (z->typecnt == 0) {
        set_err(err, errlen, "a TZif file without time types");
        return -1;
    }
    finish_table(z);
    return 0;
}

int tz_rules_load(tz_rules *z, const char *name, char *err, size_t errlen)
{
    memset(z, 0, sizeof *z);
    if (tz_is_utc_name(name)) {
        *z = tz_rules_utc;
        return 0;
    }
    size_t nlen = strlen(name);
    if (nlen == 0 || nlen > 255 || name[0] == '/' || strstr(name, "..")) {
        set_err(err, errlen, "not a zone name binary COPY reads");
        return -1;
    }
    const char *dir = getenv("TZDIR");
    if (!dir || !*dir)
        dir = "/usr/share/zoneinfo";
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t len = 0;
    char ferr[512];
    unsigned char *buf = slurp(path, &len, ferr, sizeof ferr);
    if (!buf) {
        /* not a file: perhaps a POSIX TZ string ("<+03>-03"), which the
         * server reads in upper case */
        char upper[256];
        for (size_t i = 0; i <= nlen; i++)
            upper[i] = (char)toupper((unsigned char)name[i]);
        if (upper[0] != ':' && tzparse(upper, z)) {
            finish_table(z);
            return 0;
        }
        set_err(err, errlen, ferr);
        return -1;
    }
    tz_rules *ts = malloc(sizeof *ts);
    int rc = -1;
    if (!ts)
        set_err(err, errlen, "out of memory");
    else
        rc = load_tzif(z, buf, len, ts, err, errlen);
    free(ts);
    free(buf);
    return rc;
}

/* ----------------------------------------------- the offset of a time */

/* pg_next_dst_boundary(): 1 with the next transition after t (and the
 * offsets either side), 0 with the offset at t when none follows, -1 on
 * failure. */
static int next_boundary(const tz_rules *z, int64_t t, int64_t *before_off,
                         int64_t *boundary, int64_t *after_off)
{
    if (z->timecnt == 0) {
        *before_off = z->ttis[z->defaulttype].utoff;
        return 0;
    }
    int64_t first = z->ats[0], last = z->ats[z->timecnt - 1];
    if ((z->goback && t < first) || (z->goahead && t > last)) {
        /* outside the table: the same instant some 400-year cycles in */
        int64_t seconds = (t < first ? first - t : t - last) - 1;
        int64_t cycles = seconds / YEARSPERREPEAT / AVGSECSPERYEAR + 1;
        seconds = cycles * YEARSPERREPEAT * AVGSECSPERYEAR;
        int64_t newt = t < first ? t + seconds : t - seconds;
        if (newt < first || newt > last)
            return -1;
        int rc = next_boundary(z, newt, before_off, boundary, after_off);
        *boundary += t < first ? -seconds : seconds;
        return rc;
    }
    if (t >= last) {
        *before_off = z->ttis[z->types[z->timecnt - 1]].utoff;
        return 0;
    }
    if (t < first) {
        *before_off = z->ttis[z->defaulttype].utoff;
        *boundary = first;
        *after_off = z->ttis[z->types[0]].utoff;
        return 1;
    }
    int lo = 1, hi = z->timecnt - 1;
    while (lo < hi) {
        int mid = (lo + hi) >> 1;
        if (t < z->ats[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    *before_off = z->ttis[z->types[lo - 1]].utoff;
    *boundary = z->ats[lo];
    *after_off = z->ttis[z->types[lo]].utoff;
    return 1;
}

/* date2j() for the dates IS_VALID_JULIAN admits (no overflow there). */
static int64_t julian_day(int64_t y, int64_t m, int64_t d)
{
    if (m > 2) {
        m += 1;
        y += 4800;
    } else {
        m += 13;
        y += 4799;
    }
    int64_t century = y / 100;
    return y * 365 - 32167 + y / 4 - century + century / 4 + 7834 * m / 256 +
           d;
}

int32_t tz_local_offset(const tz_rules *z, int y, int m, int d, int h,
                        int mi, int s)
{
    /* IS_VALID_JULIAN: 4713-11-01 BC .. 5874898-05-31 */
    if (!((y > -4713 || (y == -4713 && m >= 11)) &&
          (y < 5874898 || (y == 5874898 && m < 6))))
        return 0;
    if (z->timecnt == 0)
        return -z->ttis[z->defaulttype].utoff;
    int64_t day = (julian_day(y, m, d) - 2440588) * SECSPERDAY;
    /* the server adds the time in int arithmetic (wrapping: -fwrapv) */
    int32_t sec =
        (int32_t)(uint32_t)((int64_t)s + ((int64_t)mi + (int64_t)h * 60) * 60);
    int64_t mytime = day + sec;
    if (mytime < 0 && day > 0)
        return 0;
    int64_t prevtime = mytime - SECSPERDAY;
    int64_t before, after = 0, boundary = 0;
    int rc = next_boundary(z, prevtime, &before, &boundary, &after);
    if (rc < 0)
        return 0;
    if (rc == 0)
        return (int32_t)-before;
    int64_t beforetime = mytime - before, aftertime = mytime - after;
    if (beforetime < boundary && aftertime < boundary)
        return (int32_t)-before;
    if (beforetime > boundary && aftertime >= boundary)
        return (int32_t)-after;
    /* a gap (spring forward): the offset before; an overlap (fall
     * back): the one after */
    return (int32_t)(beforetime > aftertime ? -before : -after);
}
