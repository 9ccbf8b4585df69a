/*
 * numfmt.h - numbers as PostgreSQL text, exactly.
 *
 * Provides: numfmt_double() writes the shortest decimal text that reads
 * back as the same double (so 0.1 is "0.1", not "0.10000000000000001",
 * which matters for numeric columns), with integral values written as
 * integers and inf/nan spelled the way PostgreSQL reads them;
 * numfmt_int64() and numfmt_uint64() write a 64-bit integer.  Used by
 * query parameters and the COPY encoders.  Knows nothing about Lua or
 * libpq.
 */
#ifndef SLUICE_NUMFMT_H
#define SLUICE_NUMFMT_H

#include <stddef.h>
#include <stdint.h>

#define NUMFMT_BUFSIZE 32

/* buf must hold NUMFMT_BUFSIZE bytes; returns the length written (the
 * text is also NUL-terminated).  Never fails. */
size_t numfmt_double(char *buf, double x);
size_t numfmt_int64(char *buf, int64_t v);
size_t numfmt_uint64(char *buf, uint64_t v);

/* x rounded to `digits` (1..17) significant digits, written without an
 * exponent and without trailing zeros; exact (no printf), for
 * 1e-6 <= |x| < 1e17.  Returns 0 (nothing written) outside that range
 * or for nan/inf: the caller falls back to printf. */
size_t numfmt_digits(char *buf, double x, int digits);

/* Parsing, the reverse: text -> number, strictly (the whole of s[0..n)
 * must be the number; no spaces, no hex).  Both return 0 on success, -1
 * when the text is not a number of that kind; numparse_int64 returns 1
 * for an integer outside int64's range, numparse_double 2 for a value
 * that overflows to inf or underflows to 0 (*out is then that inf or 0,
 * as strtod gives it).  The one number parser of the project: the COPY
 * encoders' copy_parse_int64/copy_parse_double are these with spaces
 * trimmed and float8in's range rule.
 *   numparse_double: [+-] digits [. digits] [e [+-] digits], also ".5",
 *   "5.", and inf/infinity/nan in any case; correctly rounded (the same
 *   double as strtod, without its locale).
 *   numparse_int64: [+-] digits. */
int numparse_double(const char *s, size_t n, double *out);
int numparse_int64(const char *s, size_t n, int64_t *out);

/* The value of a hex digit (0-9, a-f, A-F), or -1. */
int numparse_hex_digit(int c);

#endif
