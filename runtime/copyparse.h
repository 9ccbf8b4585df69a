/*
 * copyparse.h - values from their text: the strings a script hands to
 * binary COPY columns, read as the server's input functions read them.
 * Knows bytes, not Lua nor libpq.
 *
 * Provides: whole-string parsers of integers, floats, booleans and uuids;
 * copy_put_numeric_text(), a decimal string as binary numeric; date/time
 * strings (datetime.h, with DateStyle MDY) to PostgreSQL's day and
 * microsecond counts, epoch seconds to those, and both back to ISO text.
 *
 * Uses: copy.h (the result codes, sbuf), numfmt.h (the number
 * parsers underneath), datetime.h (dates and times).
 *
 * Every function returns SL_OK (0) or a negative SL_E* code, or a
 * length; none prints, raises or allocates (but copy_put_numeric_text's
 * buffer).
 */
#ifndef SLUICE_COPYPARSE_H
#define SLUICE_COPYPARSE_H

#include "copy.h"

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------- parsers */

/* Whole-string parses (surrounding spaces allowed, as PostgreSQL's own
 * input functions do).  SL_EINVAL if s is not of the form,
 * SL_ERANGE if it does not fit. */
int copy_parse_int64(const char *s, size_t n, int64_t *out);
int copy_parse_double(const char *s, size_t n, double *out);
/* A float4in string (the same forms as copy_parse_double) as a float,
 * rounded once as the server's strtof rounds it, not through a double.
 * SL_ERANGE when it overflows or underflows to zero. */
int copy_parse_float(const char *s, size_t n, float *out);
int copy_parse_bool(const char *s, size_t n, int *out);
int copy_parse_uuid(const char *s, size_t n, unsigned char out[16]);

/* PostgreSQL's own infinities for dates and timestamps. */
#define COPY_TS_NOBEGIN INT64_MIN
#define COPY_TS_NOEND INT64_MAX
#define COPY_DATE_NOBEGIN INT32_MIN
#define COPY_DATE_NOEND INT32_MAX

/* A date/time string as timestamp_in reads it in DateStyle MDY (dt_parse
 * in datetime.h: ISO 8601, month names, 1/8/1999, J2451187, epoch,
 * infinity...): *usec gets microseconds since 2000-01-01 of the
 * wall-clock time (offset NOT applied), *offset_sec the offset east of
 * UTC, *has_offset whether one was given ("epoch" is UTC).  dt_parse's
 * codes: SL_EINVAL, SL_ERANGE (a field or the value out of range),
 * SL_ETZRANGE, SL_ESERVERONLY, SL_ENUL. */
int copy_parse_timestamp(const char *s, size_t n, int64_t *usec,
                         int32_t *offset_sec, int *has_offset);

/* The same string as date_in reads it: *days since 2000-01-01 of the
 * date written (the time is ignored: 24:00 and 23:59:60 stay on that
 * day), or COPY_DATE_NOBEGIN/NOEND. */
int copy_parse_date(const char *s, size_t n, int32_t *days);

/* Whether a pg timestamp (microseconds since 2000-01-01) is within
 * PostgreSQL's timestamp range, 4714-11-24 BC up to 294277-01-01 AD;
 * the infinities count as in range. */
int copy_ts_in_range(int64_t usec);

/* Unix epoch seconds (fractions rounded to the microsecond) to
 * microseconds since 2000-01-01.  SL_EINVAL for NaN, infinities map to
 * COPY_TS_NOBEGIN/NOEND, SL_ERANGE beyond int64 microseconds. */
int copy_epoch_to_usec(double secs, int64_t *usec);

/* Days since 2000-01-01 of the UTC day that holds pg timestamp `usec`
 * (infinities kept). */
int32_t copy_usec_to_days(int64_t usec);

/* Format a pg timestamp (microseconds since 2000-01-01) as ISO text:
 * "YYYY-MM-DD HH:MM:SS[.ffffff]", plus "+00" when with_tz, " BC" for
 * years before 1, or "infinity"/"-infinity".  buf needs 48 bytes.
 * Returns the length. */
size_t copy_format_timestamp(char *buf, int64_t usec, int with_tz);

/* Format days since 2000-01-01 as "YYYY-MM-DD" (same rules).  buf needs
 * 32 bytes.  Returns the length. */
size_t copy_format_date(char *buf, int32_t days);

/* ------------------------------------------------------------ numeric */

/* Append the binary body (no length word) of the numeric written as
 * decimal text s[0..n): [+-]digits[.digits][e[+-]digits], NaN,
 * [+-]Infinity/inf, surrounding spaces allowed.  SL_EINVAL if it does
 * not parse, SL_ERANGE if beyond what numeric holds. */
int copy_put_numeric_text(sbuf *b, const char *s, size_t n);

#endif
