/*
 * numfmt.h - numbers as PostgreSQL text, exactly.
 *
 * Provides: numfmt_double() writes the shortest decimal text that reads
 * back as the same double (so 0.1 is "0.1", not "0.10000000000000001",
 * which matters for numeric columns), with integral values written as
 * integers and inf/nan spelled the way PostgreSQL reads them;
 * numfmt_int64() writes a 64-bit integer.  Used by query parameters and,
 * later, by the COPY text encoder.  Knows nothing about Lua or libpq.
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

/* x rounded to `digits` (1..17) significant digits, written without an
 * exponent and without trailing zeros; exact (no printf), for
 * 1e-6 <= |x| < 1e17.  Returns 0 (nothing written) outside that range
 * or for nan/inf: the caller falls back to printf. */
size_t numfmt_digits(char *buf, double x, int digits);

#endif
