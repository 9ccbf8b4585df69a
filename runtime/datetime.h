/*
 * datetime.h - date/time text as PostgreSQL's date_in, timestamp_in and
 * timestamptz_in read it, for binary COPY.
 *
 * Provides: dt_parse() (the string to broken-down fields, honouring the
 * session's DateStyle field order), dt_timestamp() and dt_date() (the
 * fields to PostgreSQL's microsecond and day counts, with the session
 * zone's rules for an offset-less timestamptz), dt_order_of() (the order
 * in a DateStyle setting).
 *
 * Uses: tzrules.h (the session zone), numfmt.h (fractions), sbuf.h (the
 * SL_* codes).
 *
 * Results, and the SQLSTATE the server gives the same string:
 *   SL_OK
 *   SL_EINVAL       22007 invalid_datetime_format
 *   SL_ERANGE       22008 datetime_field_overflow (a field out of range:
 *                   month 13, Feb 30, 25:00) or the value beyond the
 *                   type's range (also 22008)
 *   SL_ETZRANGE     22009 invalid_time_zone_displacement_value (+16:00)
 *   SL_ENUL         a NUL byte (22021 in text COPY)
 *   SL_ESERVERONLY  a form only the server reads: now, today, tomorrow,
 *                   yesterday (the transaction's time), time zone names
 *                   and abbreviations other than UTC/GMT/Z (the word is
 *                   in dt_fields.word)
 *   SL_ENOZONE      (dt_timestamp) an offset-less timestamptz and the
 *                   session zone's rules were not read
 * None allocates, prints or keeps state.
 */
#ifndef SLUICE_DATETIME_H
#define SLUICE_DATETIME_H

#include "tzrules.h"

#include <stddef.h>
#include <stdint.h>

/* DateStyle's field order for numeric dates (1/2/3, 01/02/03). */
enum dt_order { DT_MDY = 0, DT_DMY, DT_YMD };

/* What a string denotes: a date/time, or one of the special values. */
enum dt_kind { DT_VALUE = 0, DT_EPOCH, DT_LATE, DT_EARLY };

typedef struct dt_fields {
    int kind;
    int year, mon, mday;  /* year 1 BC is 0 */
    int hour, min, sec;   /* as written: 24:00:00 and 23:59:60 stay so */
    int32_t fsec;         /* microseconds, rounded as the server rounds */
    int has_tz;           /* the string gave an offset (Z, +05:30, UTC) */
    int32_t tz;           /* then: seconds WEST of UTC (PostgreSQL's sign) */
    char word[24];        /* SL_ESERVERONLY: the word, lower case */
} dt_fields;

/* The field order of a DateStyle setting as the server reports it
 * ("ISO, MDY", "SQL, DMY"); MDY when it names none (or s is NULL). */
int dt_order_of(const char *datestyle);

/* Read s[0..n) as the server's date/time input functions do, with
 * DateStyle order `order` (enum dt_order); for_date: as date_in, whose
 * field buffer is smaller (a string of more than about 125 bytes of
 * fields is refused there), else as timestamp_in and timestamptz_in.
 * Fills *f on SL_OK; the result codes above otherwise. */
int dt_parse(const char *s, size_t n, int order, int for_date,
             dt_fields *f);

/* The timestamp of fields from dt_parse: microseconds since 2000-01-01
 * (INT64_MAX / INT64_MIN for infinity / -infinity).  with_tz: for a
 * timestamptz, UTC: the string's offset, else the local time in `zone`
 * (NULL: not known, SL_ENOZONE).  Without, the wall-clock time.
 * SL_ERANGE beyond PostgreSQL's range (4714-11-24 BC .. 294276 AD). */
int dt_timestamp(const dt_fields *f, const tz_rules *zone, int with_tz,
                 int64_t *usec);

/* The date of fields from dt_parse: days since 2000-01-01 (INT32_MAX /
 * INT32_MIN for the infinities); the time of day is ignored, as date_in
 * ignores it.  SL_ERANGE beyond 4714-11-24 BC .. 5874897-12-31. */
int dt_date(const dt_fields *f, int32_t *days);

/* Days in month m (1..12) of year y, in the Gregorian calendar. */
int dt_days_in_month(int y, int m);

#endif
