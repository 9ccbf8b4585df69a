/*
 * tzrules.h - a time zone's rules, read from the system zoneinfo (TZif
 * files) or a POSIX TZ string, and the UTC offset PostgreSQL gives a
 * local date and time in that zone.
 *
 * Provides: tz_rules (the transition table, filled in the caller's
 * memory: no allocation), tz_rules_load() (a session TimeZone name as
 * the server reports it), tz_rules_utc (UTC, its aliases' rules), and
 * tz_local_offset(), PostgreSQL's DetermineTimeZoneOffset(): in a
 * spring-forward gap the offset before the transition, in a fall-back
 * overlap the one after.
 *
 * Uses: the C library only (open/read of one file).
 *
 * The table is built as PostgreSQL's copy of the IANA code builds it
 * (src/timezone/localtime.c: the file's 64-bit data, then the footer's
 * rule extending it, then 400-year cycles beyond), so the offsets are
 * the server's as long as both read the same tzdata (Debian's
 * PostgreSQL uses the system's /usr/share/zoneinfo).
 */
#ifndef SLUICE_TZRULES_H
#define SLUICE_TZRULES_H

#include <stddef.h>
#include <stdint.h>

#define TZR_MAX_TIMES 2000 /* PostgreSQL's TZ_MAX_TIMES */
#define TZR_MAX_TYPES 256
#define TZR_MAX_CHARS 50   /* abbreviation bytes a file may hold */
#define TZR_CHARS_SIZE 512

typedef struct tz_ttinfo {
    int32_t utoff;      /* seconds east of UTC */
    int isdst;
    int ttisstd, ttisut;
    int desigidx;       /* its abbreviation in chars */
} tz_ttinfo;

typedef struct tz_rules {
    int timecnt, typecnt, charcnt;
    int goback, goahead; /* times outside the table repeat every 400
                          * years */
    int defaulttype;     /* the type before the first transition */
    int64_t ats[TZR_MAX_TIMES]; /* transition instants, Unix seconds */
    unsigned char types[TZR_MAX_TIMES];
    tz_ttinfo ttis[TZR_MAX_TYPES];
    char chars[TZR_CHARS_SIZE];
} tz_rules;

/* UTC: no transitions, offset 0. */
extern const tz_rules tz_rules_utc;

/* Whether a TimeZone name is one of UTC's spellings (UTC, Etc/UTC, GMT,
 * Zulu, Universal, ...; any case). */
int tz_is_utc_name(const char *name);

/* Fill *z with the rules of the zone named as PostgreSQL reports its
 * TimeZone: a file under $TZDIR (default /usr/share/zoneinfo), or else
 * a POSIX TZ string ("<+03>-03", "EST5EDT,M3.2.0,M11.1.0").  Returns 0,
 * or -1 with the reason in err (errlen bytes, NUL-terminated): no such
 * file, unreadable, not a TZif file, leap-second rules.  Never
 * allocates; z is about 24 KB. */
int tz_rules_load(tz_rules *z, const char *name, char *err, size_t errlen);

/* The offset PostgreSQL's DetermineTimeZoneOffset() gives the local
 * time y-m-d h:mi:s (proleptic Gregorian, year 1 BC = 0) in zone z, in
 * PostgreSQL's sign: seconds WEST of UTC.  Dates PostgreSQL cannot
 * place get 0, as there. */
int32_t tz_local_offset(const tz_rules *z, int y, int m, int d, int h,
                        int mi, int s);

#endif
