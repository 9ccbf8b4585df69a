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

#endif
