/*
 * numfmt.c - exact, short number text.
 *
 * The shortest round-trip form is found by trying %.15g, %.16g and %.17g in
 * turn: 17 significant digits always round-trip, and most values people
 * write need 15.  snprintf is locale-dependent for the decimal point; sluice
 * never calls setlocale(), so the C locale applies.
 */
#include "numfmt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t numfmt_int64(char *buf, int64_t v)
{
    char tmp[24];
    char *p = tmp + sizeof tmp;
    /* work on the unsigned magnitude so INT64_MIN is fine */
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    size_t n = (size_t)(tmp + sizeof tmp - p);
    memcpy(buf, p, n);
    buf[n] = '\0';
    return n;
}

size_t numfmt_double(char *buf, double x)
{
    if (isnan(x)) {
        memcpy(buf, "NaN", 4);
        return 3;
    }
    if (isinf(x)) {
        if (x > 0) {
            memcpy(buf, "Infinity", 9);
            return 8;
        }
        memcpy(buf, "-Infinity", 10);
        return 9;
    }
    if (x == 0 && signbit(x)) {
        memcpy(buf, "-0", 3);
        return 2;
    }
    /* integers below 2^63 print as integers: they are exact and an int
     * column accepts "3" but not "3e+20" style text */
    if (x == floor(x) && fabs(x) < 9.2233720368547758e18)
        return numfmt_int64(buf, (int64_t)x);
    for (int prec = 15; prec <= 17; prec++) {
        int n = snprintf(buf, NUMFMT_BUFSIZE, "%.*g", prec, x);
        if (prec == 17 || strtod(buf, NULL) == x)
            return (size_t)n;
    }
    return strlen(buf); /* not reached */
}
