/*
 * textops.h - per-row text work of transform scripts, in C: date/time
 * strings read by a layout ("MM/DD/YYYY", "DD.MM.YYYY HH24:MI"), and
 * numbers written with thousands separators or a decimal comma.
 *
 * Provides:
 * - textops_layout: a layout compiled once (textops_layout_compile), then
 *   applied to each value (textops_parse: the broken-down fields of
 *   datetime.h, which the COPY encoders turn into days or microseconds;
 *   textops_epoch: epoch seconds; textops_iso: ISO 8601 text);
 * - textops_number: "1.234,56" (decimal comma) or "1,234.56" as a double.
 * sluice.text (lua/sluice/text.lua) calls these through the FFI
 * (lib_text.c hands it their addresses); the COPY encoders (copyenc.h)
 * call the layout functions for columns given a layout.
 *
 * Uses: datetime.h (dt_fields), numfmt.h (numparse_double), sbuf.h (the
 * SL_* codes).
 *
 * The layout tokens (any case): YYYY (4 digits), YY (2 digits: 70-99 are
 * 1970-1999, 00-69 2000-2069, as the server reads 2-digit years), MM,
 * DD, HH24, HH12, HH (24-hour, or 12-hour when the layout has AM/PM), MI,
 * SS, FF (fraction of a second, 1-6 digits), AM or PM (the marker, either
 * in the value).  "quoted text" and every other non-letter character must
 * appear as they are.  A numeric field followed by a separator (or the
 * end) takes 1 digit up to its width; one followed directly by another
 * field takes exactly its width ("YYYYMMDD").  YYYY and YY always take
 * their width.  A layout needs a year, a month and a day.
 *
 * Results, with the SQLSTATE the server gives the like:
 *   SL_OK
 *   SL_EINVAL   22007: the value does not follow the layout
 *   SL_ERANGE   22008: a field out of range (month 13, Feb 30, 25:00,
 *               year 0)
 * None allocates, prints or keeps state.
 */
#ifndef SLUICE_TEXTOPS_H
#define SLUICE_TEXTOPS_H

#include "datetime.h"

#include <stddef.h>

#define TEXTOPS_MAX_ITEMS 40
#define TEXTOPS_MAX_LAYOUT 63 /* bytes of layout text */
#define TEXTOPS_ISO_MAX 32    /* "YYYY-MM-DD HH:MI:SS.ffffff" and NUL */

/* One step of a layout: a field (TX_YYYY...) or a literal byte. */
typedef struct textops_item {
    unsigned char tok;  /* enum textops_tok */
    unsigned char min;  /* digits a field takes: min..max */
    unsigned char max;
    char lit;           /* TX_LIT: the byte */
} textops_item;

enum textops_tok {
    TX_LIT = 0, TX_YYYY, TX_YY, TX_MM, TX_DD, TX_HH24, TX_HH12, TX_MI,
    TX_SS, TX_FF, TX_AMPM,
};

typedef struct textops_layout {
    int n;              /* items */
    int has_time;       /* an hour field: ISO text carries the time */
    textops_item item[TEXTOPS_MAX_ITEMS];
    char text[TEXTOPS_MAX_LAYOUT + 1]; /* as given, for messages */
} textops_layout;

/* Compile layout text s[0..n) into *l.  0, or -1 with why in err (a
 * sentence naming the layout and the offending place; errcap bytes). */
int textops_layout_compile(textops_layout *l, const char *s, size_t n,
                           char *err, size_t errcap);

/* Read s[0..n) by layout l into *f (kind DT_VALUE, no offset, seconds
 * 60 and hour 24 as written, as dt_parse leaves them).  SL_OK,
 * SL_EINVAL, SL_ERANGE. */
int textops_parse(const textops_layout *l, const char *s, size_t n,
                  dt_fields *f);

/* Epoch seconds of s read by l: the wall-clock time taken as UTC
 * (date_only: of the day's midnight, the time of day ignored as date_in
 * ignores it).  NaN when s does not read (textops_parse says why). */
double textops_epoch(const textops_layout *l, const char *s, size_t n,
                     int date_only);

/* The parse's result code for s (SL_OK, SL_EINVAL, SL_ERANGE): what the
 * FFI callers ask after textops_epoch gave NaN. */
int textops_check(const textops_layout *l, const char *s, size_t n);

/* ISO 8601 text of fields *f into buf (TEXTOPS_ISO_MAX bytes, NUL
 * ended): YYYY-MM-DD, then with_time " HH:MI:SS" and ".ffffff" when
 * there is a fraction (24:00:00 and :60 kept as written: the server reads
 * them as it reads them anywhere).  Returns the length. */
size_t textops_iso(const dt_fields *f, int with_time, char *buf);

/* s read by l as ISO text into buf (TEXTOPS_ISO_MAX bytes; date_only:
 * the date alone): its length, or the negative SL_EINVAL / SL_ERANGE. */
int textops_iso_of(const textops_layout *l, const char *s, size_t n,
                   int date_only, char *buf);

/* The spaces (space, \t \n \v \f \r: isspace in the C locale) at the
 * start of s[0..n), and at its end: text.trim's two steps. */
size_t textops_space_start(const char *s, size_t n);
size_t textops_space_end(const char *s, size_t n);

/* A decimal number with optional thousands separators: spaces around,
 * a sign, digits grouped by threes with ',' (or '.' with decimal_comma),
 * a decimal point '.' (or ',' with decimal_comma), an exponent.  At most
 * 256 bytes.  The number, or NaN for anything else (inf, nan, hex and
 * bad grouping included). */
double textops_number(const char *s, size_t n, int decimal_comma);

#endif
