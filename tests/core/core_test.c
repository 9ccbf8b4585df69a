/*
 * core_test.c - unit tests of sluice's C core, linked without Lua
 * (`make check-core`): the buffer, text/CSV escaping, number formatting
 * and parsing, date/time parsing (every form of PostgreSQL's date/time
 * input, DateStyle orders, zone rules), date/time layouts and grouped
 * numbers (textops), the binary encoders against known
 * bytes, the CSV reader's states (quotes, line ends, block boundaries,
 * gzip members, errors) and its records against libcsv's on the
 * fixtures and RFC 4180's corner cases, the redaction of secrets, and which left-behind
 * server directories tmpdb_sweep() removes.
 *
 * Each CHECK prints the failing expression with its line; the program
 * exits non-zero when any failed.
 */
#include "copy.h"
#include "sbuf.h"
#include "copyenc.h"
#include "copyparse.h"
#include "csvread.h"
#include "numfmt.h"
#include "redact.h"
#include "tmpdb.h"
#include "copychunk.h"
#include "datetime.h"
#include "tzrules.h"
#include "textops.h"
#include "workers.h"
#include "csvcut.h"
#include "../csvdiff.h"
#include "vecenc.h"

#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

static int failures, checks;

#define CHECK(cond)                                                        \
    do {                                                                   \
        checks++;                                                          \
        if (!(cond)) {                                                     \
            failures++;                                                    \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,         \
                    __LINE__, #cond);                                      \
        }                                                                  \
    } while (0)

#define CHECK_STR(got, want)                                               \
    do {                                                                   \
        checks++;                                                          \
        if (strcmp((got), (want)) != 0) {                                  \
            failures++;                                                    \
            fprintf(stderr, "%s:%d: got \"%s\", want \"%s\"\n", __FILE__,  \
                    __LINE__, (got), (want));                              \
        }                                                                  \
    } while (0)

/* The buffer's bytes as lowercase hex. */
static const char *hex(const sbuf *b)
{
    static char out[4096];
    size_t o = 0;
    for (size_t i = 0; i < b->len && o + 3 < sizeof out; i++)
        o += (size_t)snprintf(out + o, sizeof out - o, "%02x",
                              (unsigned char)b->data[i]);
    out[o] = '\0';
    return out;
}

/* The buffer as a C string (a copy, NUL-terminated). */
static const char *text(const sbuf *b)
{
    static char out[4096];
    size_t n = b->len < sizeof out - 1 ? b->len : sizeof out - 1;
    memcpy(out, b->data, n);
    out[n] = '\0';
    return out;
}

static void test_buffer(void)
{
    sbuf b = { 0 };
    size_t last_cap = 0;
    int grew = 0, reserved = 1;
    for (int i = 0; i < 1 << 20; i++) {
        reserved &= sbuf_reserve(&b, 1) == SL_OK;
        sbuf_put_byte(&b, 'a' + i % 26);
        if (b.cap != last_cap) {
            /* geometric: each growth at least doubles */
            if (last_cap)
                CHECK(b.cap >= 2 * last_cap);
            last_cap = b.cap;
            grew++;
        }
    }
    CHECK(reserved);
    CHECK(b.len == 1u << 20);
    CHECK(grew < 20);
    int ok = 1;
    for (size_t i = 0; i < b.len; i++)
        ok &= b.data[i] == 'a' + (int)(i % 26);
    CHECK(ok);
    b.len = 0;
    CHECK(sbuf_reserve(&b, 8) == SL_OK);
    sbuf_put_be32(&b, 0x01020304u);
    sbuf_put_be16(&b, 0xa0b0);
    sbuf_patch_be32(&b, 0, 0xdeadbeefu);
    CHECK_STR(hex(&b), "deadbeefa0b0");
    sbuf_free(&b);
    CHECK(b.data == NULL && b.len == 0 && b.cap == 0);
}

static void test_escaping(void)
{
    sbuf b = { 0 };
    CHECK(copy_put_text_escaped(&b, "a\tb\\c\nd\re", 9) == SL_OK);
    CHECK_STR(text(&b), "a\\tb\\\\c\\nd\\re");
    b.len = 0;
    CHECK(copy_put_text_escaped(&b, "a\0b", 3) == SL_ENUL);
    b.len = 0;
    CHECK(copy_put_csv_field(&b, "plain", 5) == SL_OK);
    CHECK_STR(text(&b), "plain");
    b.len = 0;
    CHECK(copy_put_csv_field(&b, "a,\"b\"", 5) == SL_OK);
    CHECK_STR(text(&b), "\"a,\"\"b\"\"\"");
    b.len = 0;
    /* "\." alone on a line would end the data: always quoted */
    CHECK(copy_put_csv_field(&b, "\\.", 2) == SL_OK);
    CHECK_STR(text(&b), "\"\\.\"");
    b.len = 0;
    /* a sink's delimiter may be byte 1: it is escaped, not taken for NUL */
    CHECK(copy_put_text_escaped_delim(&b, "a\001b", 3, 1) == SL_OK);
    CHECK_STR(text(&b), "a\\\001b");
    b.len = 0;
    /* with a '.' delimiter, \ then a NULL would be the line "\.", the
     * end-of-data marker (the server stops reading there, silently) */
    CHECK(copy_put_csv_field_delim(&b, "\\", 1, '.', 0) == SL_OK);
    CHECK_STR(text(&b), "\"\\\"");
    b.len = 0;
    CHECK(copy_put_csv_field_delim(&b, "\\", 1, ',', 0) == SL_OK);
    CHECK_STR(text(&b), "\\");
    b.len = 0;
    CHECK(copy_put_bytea_hex(&b, "\x01\xff", 2) == SL_OK);
    CHECK_STR(text(&b), "\\x01ff");
    char esc[] = "x\\ty\\\\z\\N";
    size_t n = copy_unescape_text(esc, strlen(esc));
    esc[n] = '\0';
    CHECK_STR(esc, "x\ty\\zN"); /* \N is the caller's to see first */
    sbuf_free(&b);
}

static void test_numbers(void)
{
    char buf[NUMFMT_BUFSIZE];
    numfmt_double(buf, 0.1);
    CHECK_STR(buf, "0.1");
    numfmt_double(buf, 1.0 / 3);
    CHECK_STR(buf, "0.3333333333333333");
    numfmt_double(buf, 1e21);
    CHECK_STR(buf, "1e+21");
    numfmt_double(buf, 5e-324);
    CHECK(strtod(buf, NULL) == 5e-324);
    numfmt_double(buf, 42.0);
    CHECK_STR(buf, "42");
    /* a real's text is its float's, also for an integer above 2^63: the
     * double's shortest text -8.318952152736613e+29 would read (strtof,
     * float4in) one float away from (float)x, what binary COPY sends */
    char nbuf[64];
    CHECK(copy_format_number(nbuf, -0x1.4ffff3p+99, COPY_K_FLOAT4) > 0);
    CHECK(strtof(nbuf, NULL) == (float)-0x1.4ffff3p+99);
    CHECK(copy_format_number(nbuf, 1e19, COPY_K_FLOAT4) > 0);
    CHECK(strtof(nbuf, NULL) == 1e19f);
    copy_format_number(nbuf, 42.0, COPY_K_FLOAT4);
    CHECK_STR(nbuf, "42");
    numfmt_int64(buf, INT64_MIN);
    CHECK_STR(buf, "-9223372036854775808");
    double d;
    CHECK(numparse_double("2.5e3", 5, &d) == 0 && d == 2500.0);
    CHECK(numparse_double("0.1", 3, &d) == 0 && d == 0.1);
    CHECK(numparse_double("1e999", 5, &d) == 2);
    CHECK(numparse_double("1 ", 2, &d) == -1);
    CHECK(numparse_double("0x10", 4, &d) == -1);
    int64_t v;
    CHECK(numparse_int64("-9223372036854775808", 20, &v) == 0 && v == INT64_MIN);
    CHECK(numparse_int64("9223372036854775808", 19, &v) == 1);
    CHECK(numparse_int64("12a", 3, &v) == -1);
    /* with spaces trimmed, as the server's input functions do */
    CHECK(copy_parse_int64("  12 ", 5, &v) == SL_OK && v == 12);
    CHECK(copy_parse_int64("1e5", 3, &v) == SL_EINVAL);
    int flag;
    CHECK(copy_parse_bool("ye", 2, &flag) == SL_OK && flag == 1);
    CHECK(copy_parse_bool("of", 2, &flag) == SL_OK && flag == 0); /* boolin too */
    CHECK(copy_parse_bool("o", 1, &flag) == SL_EINVAL); /* on or off? */
}

static void test_datetime(void)
{
    int64_t us;
    int32_t off, days;
    int has_off;
    char buf[64];
    CHECK(copy_parse_timestamp("2000-01-01 00:00:01.5", 21, &us, &off,
                               &has_off) == SL_OK);
    CHECK(us == 1500000 && !has_off);
    CHECK(copy_parse_timestamp("2000-01-01T12:00:00+05:30", 25, &us, &off,
                               &has_off) == SL_OK);
    CHECK(has_off && off == 5 * 3600 + 30 * 60);
    /* the server rounds a 7th digit with rint: half to even */
    CHECK(copy_parse_timestamp("2000-01-01 00:00:00.1234565", 27, &us, &off,
                               &has_off) == SL_OK);
    CHECK(us == 123456);
    CHECK(copy_parse_timestamp("2000-01-01 12:00:00,5", 21, &us, &off,
                               &has_off) == SL_EINVAL);
    CHECK(copy_parse_timestamp("Jan 8 1999 4:05 PM", 18, &us, &off,
                               &has_off) == SL_OK);
    copy_format_timestamp(buf, us, 0);
    CHECK_STR(buf, "1999-01-08 16:05:00");
    /* a date keeps its day at 24:00 */
    CHECK(copy_parse_date("2016-12-31 24:00:00", 19, &days) == SL_OK);
    copy_format_date(buf, days);
    CHECK_STR(buf, "2016-12-31");
    copy_format_timestamp(buf, 86400000000LL + 1, 0);
    CHECK_STR(buf, "2000-01-02 00:00:00.000001");
    CHECK(copy_epoch_to_usec(946684800.25, &us) == SL_OK && us == 250000);
}

/* What a result code of the date/time parser stands for. */
static const char *dt_code(int rc)
{
    switch (rc) {
    case SL_EINVAL: return "22007";
    case SL_ERANGE: return "22008";
    case SL_ETZRANGE: return "22009";
    case SL_ESERVERONLY: return "server only";
    case SL_ENOZONE: return "no zone";
    case SL_ENUL: return "NUL";
    default: return "?";
    }
}

/* s as timestamp_in (tz: timestamptz_in in zone z) reads it in DateStyle
 * order, printed back as the server prints it in UTC; or the refusal. */
static const char *ts_of(const char *s, int order, int tz, const tz_rules *z)
{
    static char buf[64];
    dt_fields f;
    int64_t us = 0;
    int rc = dt_parse(s, strlen(s), order, 0, &f);
    if (rc == SL_OK)
        rc = dt_timestamp(&f, z, tz, &us);
    if (rc != SL_OK)
        return dt_code(rc);
    copy_format_timestamp(buf, us, tz);
    return buf;
}

static const char *date_of(const char *s, int order)
{
    static char buf[32];
    dt_fields f;
    int32_t days = 0;
    int rc = dt_parse(s, strlen(s), order, 1, &f);
    if (rc == SL_OK)
        rc = dt_date(&f, &days);
    if (rc != SL_OK)
        return dt_code(rc);
    copy_format_date(buf, days);
    return buf;
}

/* The forms of the PostgreSQL manual's date/time input tables (8.5.1),
 * each with the value the server gives it (asked of PostgreSQL 15). */
static void test_datetime_forms(void)
{
    /* dates: ISO, month names, DateStyle orders */
    CHECK_STR(date_of("1999-01-08", DT_MDY), "1999-01-08");
    CHECK_STR(date_of("January 8, 1999", DT_MDY), "1999-01-08");
    CHECK_STR(date_of("1/8/1999", DT_MDY), "1999-01-08");
    CHECK_STR(date_of("1/8/1999", DT_DMY), "1999-08-01");
    CHECK_STR(date_of("1/18/1999", DT_MDY), "1999-01-18");
    CHECK_STR(date_of("1/18/1999", DT_DMY), "22008");
    CHECK_STR(date_of("01/02/03", DT_MDY), "2003-01-02");
    CHECK_STR(date_of("01/02/03", DT_DMY), "2003-02-01");
    CHECK_STR(date_of("01/02/03", DT_YMD), "2001-02-03");
    CHECK_STR(date_of("03/19/2016", DT_MDY), "2016-03-19");
    CHECK_STR(date_of("03/19/2016", DT_DMY), "22008");
    CHECK_STR(date_of("1999-Jan-08", DT_MDY), "1999-01-08");
    CHECK_STR(date_of("Jan-08-1999", DT_MDY), "1999-01-08");
    CHECK_STR(date_of("08-Jan-1999", DT_YMD), "1999-01-08");
    CHECK_STR(date_of("99-Jan-08", DT_YMD), "1999-01-08");
    CHECK_STR(date_of("99-Jan-08", DT_MDY), "22008");
    CHECK_STR(date_of("08-Jan-99", DT_MDY), "1999-01-08");
    CHECK_STR(date_of("Jan-08-99", DT_DMY), "1999-01-08");
    CHECK_STR(date_of("19990108", DT_MDY), "1999-01-08");
    CHECK_STR(date_of("990108", DT_MDY), "1999-01-08");
    CHECK_STR(date_of("1999.008", DT_MDY), "1999-01-08");
    CHECK_STR(date_of("1999.366", DT_MDY), "2000-01-01"); /* rolls over */
    CHECK_STR(date_of("J2451187", DT_MDY), "1999-01-08");
    CHECK_STR(date_of("January 8, 99 BC", DT_MDY), "0099-01-08 BC");
    CHECK_STR(date_of("Mar 19 2016", DT_MDY), "2016-03-19");
    CHECK_STR(date_of("19 March 2016", DT_DMY), "2016-03-19");
    CHECK_STR(date_of("Sat Mar 19 2016", DT_MDY), "2016-03-19");
    CHECK_STR(date_of("69-01-01", DT_YMD), "2069-01-01");
    CHECK_STR(date_of("70-01-01", DT_YMD), "1970-01-01");
    CHECK_STR(date_of("2016-12-31 24:00", DT_MDY), "2016-12-31");
    CHECK_STR(date_of("5874897-12-31", DT_MDY), "5874897-12-31");
    CHECK_STR(date_of("5874898-01-01", DT_MDY), "22008");
    /* times, AM/PM, fractions, BC */
    CHECK_STR(ts_of("1999-01-08 04:05:06", DT_MDY, 0, NULL),
              "1999-01-08 04:05:06");
    CHECK_STR(ts_of("1999-01-08T04:05:06", DT_MDY, 0, NULL),
              "1999-01-08 04:05:06");
    CHECK_STR(ts_of("19 March 2016 10:00", DT_MDY, 0, NULL),
              "2016-03-19 10:00:00");
    CHECK_STR(ts_of("2000-01-01 12:00 PM", DT_MDY, 0, NULL),
              "2000-01-01 12:00:00");
    CHECK_STR(ts_of("2000-01-01 12:00 AM", DT_MDY, 0, NULL),
              "2000-01-01 00:00:00");
    CHECK_STR(ts_of("2000-01-01 1:30 pm", DT_MDY, 0, NULL),
              "2000-01-01 13:30:00");
    CHECK_STR(ts_of("2000-01-01 13:00 PM", DT_MDY, 0, NULL), "22008");
    CHECK_STR(ts_of("2000-01-01 04:05:06.1234565", DT_MDY, 0, NULL),
              "2000-01-01 04:05:06.123456");
    CHECK_STR(ts_of("2000-01-01 04:05:06.1234575", DT_MDY, 0, NULL),
              "2000-01-01 04:05:06.123458");
    CHECK_STR(ts_of("2000-01-01 12:30.5", DT_MDY, 0, NULL),
              "2000-01-01 00:12:30.5");
    CHECK_STR(ts_of("1999-01-08 04:05:06 BC", DT_MDY, 0, NULL),
              "1999-01-08 04:05:06 BC");
    CHECK_STR(ts_of("20011225T040506.789", DT_MDY, 0, NULL),
              "2001-12-25 04:05:06.789");
    CHECK_STR(ts_of("J2451187.5", DT_MDY, 0, NULL), "1999-01-08 12:00:00");
    CHECK_STR(ts_of("2016-12-31 23:59:60", DT_MDY, 0, NULL),
              "2017-01-01 00:00:00");
    /* offsets and UTC's words */
    CHECK_STR(ts_of("2000-01-01 12:00:00Z", DT_MDY, 1, NULL),
              "2000-01-01 12:00:00+00");
    CHECK_STR(ts_of("2000-01-01 12:00:00+05", DT_MDY, 1, NULL),
              "2000-01-01 07:00:00+00");
    CHECK_STR(ts_of("2000-01-01 12:00:00+05:30", DT_MDY, 1, NULL),
              "2000-01-01 06:30:00+00");
    CHECK_STR(ts_of("2000-01-01 12:00:00+0530", DT_MDY, 1, NULL),
              "2000-01-01 06:30:00+00");
    CHECK_STR(ts_of("2000-01-01 12:00:00+530", DT_MDY, 1, NULL),
              "2000-01-01 06:30:00+00");
    CHECK_STR(ts_of("2000-01-01 12:00:00 -8", DT_MDY, 1, NULL),
              "2000-01-01 20:00:00+00");
    CHECK_STR(ts_of("2000-01-01 12:00:00-08:00:30", DT_MDY, 1, NULL),
              "2000-01-01 20:00:30+00");
    CHECK_STR(ts_of("Jan 1 2000 12:00 GMT", DT_MDY, 1, NULL),
              "2000-01-01 12:00:00+00");
    CHECK_STR(ts_of("2000-01-01 12:00 zulu", DT_MDY, 1, NULL),
              "2000-01-01 12:00:00+00");
    CHECK_STR(ts_of("2000-01-01 12:00 UTC DST", DT_MDY, 1, NULL),
              "2000-01-01 11:00:00+00");
    CHECK_STR(ts_of("2000-01-01 12:00+16", DT_MDY, 1, NULL), "22009");
    CHECK_STR(ts_of("2000-01-01 12:00", DT_MDY, 1, NULL), "no zone");
    /* special values */
    CHECK_STR(ts_of("epoch", DT_MDY, 1, NULL), "1970-01-01 00:00:00+00");
    CHECK_STR(ts_of(" Infinity ", DT_MDY, 0, NULL), "infinity");
    CHECK_STR(ts_of("-infinity", DT_MDY, 0, NULL), "-infinity");
    CHECK_STR(date_of("epoch", DT_MDY), "1970-01-01");
    /* refused: what only the server reads, and what it refuses */
    CHECK_STR(ts_of("now", DT_MDY, 0, NULL), "server only");
    CHECK_STR(date_of("today", DT_MDY), "server only");
    CHECK_STR(date_of("tomorrow", DT_MDY), "server only");
    CHECK_STR(date_of("yesterday", DT_MDY), "server only");
    CHECK_STR(ts_of("2000-01-01 12:00 America/New_York", DT_MDY, 1, NULL),
              "server only");
    CHECK_STR(ts_of("2000-01-01 12:00 EST", DT_MDY, 1, NULL), "server only");
    CHECK_STR(date_of("2000-13-01", DT_MDY), "22008");
    CHECK_STR(date_of("2000-02-30", DT_MDY), "22008");
    CHECK_STR(date_of("2001-02-29", DT_MDY), "22008");
    CHECK_STR(date_of("0000-01-01", DT_MDY), "22008");
    CHECK_STR(ts_of("2000-01-01 25:00", DT_MDY, 0, NULL), "22008");
    CHECK_STR(ts_of("2000-01-01 23:59:60.5", DT_MDY, 0, NULL), "22008");
    /* a word binary COPY does not know may be a zone name (the server
     * refuses this one with 22007 too) */
    CHECK_STR(date_of("garbage", DT_MDY), "server only");
    CHECK_STR(date_of("2000-01-01 x", DT_MDY), "22007");
    CHECK_STR(date_of("+infinity", DT_MDY), "22007");
    CHECK_STR(date_of("2000-01-01 12:00:00:00", DT_MDY), "22007");
    CHECK_STR(date_of("", DT_MDY), "22007");
    CHECK_STR(ts_of("294277-01-01", DT_MDY, 0, NULL), "22008");
    CHECK(dt_parse("2000-01-01\0", 11, DT_MDY, 1, &(dt_fields){ 0 }) == SL_ENUL);
    /* DateStyle as the server reports it */
    CHECK(dt_order_of("ISO, MDY") == DT_MDY);
    CHECK(dt_order_of("SQL, DMY") == DT_DMY);
    CHECK(dt_order_of("Postgres, YMD") == DT_YMD);
    CHECK(dt_order_of(NULL) == DT_MDY);
}

/* Zone rules from the system zoneinfo, as the server applies them. */
static void test_zone_rules(void)
{
    static tz_rules z; /* ~24 KB: not on the stack */
    char err[256];
    CHECK(tz_is_utc_name("Etc/UTC") && tz_is_utc_name("zulu") &&
          !tz_is_utc_name("Europe/London"));
    CHECK(tz_rules_load(&z, "No/Such_Zone", err, sizeof err) == -1 &&
          strstr(err, "No/Such_Zone"));
    CHECK(tz_rules_load(&z, "../etc/passwd", err, sizeof err) == -1);
    if (access("/usr/share/zoneinfo/America/New_York", R_OK) == 0) {
        CHECK(tz_rules_load(&z, "America/New_York", err, sizeof err) == 0);
        CHECK_STR(ts_of("2016-03-19 12:34:56", DT_MDY, 1, &z),
                  "2016-03-19 16:34:56+00");
        /* the spring-forward gap takes the offset before (EST), the
         * fall-back overlap the one after (EST) */
        CHECK_STR(ts_of("2016-03-13 02:30", DT_MDY, 1, &z),
                  "2016-03-13 07:30:00+00");
        CHECK_STR(ts_of("2016-11-06 01:30", DT_MDY, 1, &z),
                  "2016-11-06 06:30:00+00");
        CHECK_STR(ts_of("2016-11-06 00:59:59", DT_MDY, 1, &z),
                  "2016-11-06 04:59:59+00");
        /* past the file's table: its footer rule, then 400-year cycles */
        CHECK_STR(ts_of("2100-07-01 12:00", DT_MDY, 1, &z),
                  "2100-07-01 16:00:00+00");
        CHECK_STR(ts_of("3000-01-15 12:00", DT_MDY, 1, &z),
                  "3000-01-15 17:00:00+00");
        /* before it: local mean time */
        CHECK_STR(ts_of("1800-01-01 12:00", DT_MDY, 1, &z),
                  "1800-01-01 16:56:02+00");
        /* an offset given wins */
        CHECK_STR(ts_of("2016-07-01 12:00Z", DT_MDY, 1, &z),
                  "2016-07-01 12:00:00+00");
    }
    if (access("/usr/share/zoneinfo/Europe/London", R_OK) == 0) {
        CHECK(tz_rules_load(&z, "Europe/London", err, sizeof err) == 0);
        CHECK_STR(ts_of("2016-03-27 01:30", DT_MDY, 1, &z),
                  "2016-03-27 01:30:00+00");
        CHECK_STR(ts_of("2016-10-30 01:30", DT_MDY, 1, &z),
                  "2016-10-30 01:30:00+00");
        CHECK_STR(ts_of("2016-07-01 12:00", DT_MDY, 1, &z),
                  "2016-07-01 11:00:00+00");
    }
    if (access("/usr/share/zoneinfo/Asia/Kolkata", R_OK) == 0) {
        CHECK(tz_rules_load(&z, "Asia/Kolkata", err, sizeof err) == 0);
        CHECK_STR(ts_of("2016-03-19 12:00", DT_MDY, 1, &z),
                  "2016-03-19 06:30:00+00");
    }
    /* a POSIX string, as the server reports SET TIME ZONE 3 */
    CHECK(tz_rules_load(&z, "<+03>-03", err, sizeof err) == 0);
    CHECK_STR(ts_of("2000-01-01 12:00", DT_MDY, 1, &z),
              "2000-01-01 09:00:00+00");
    CHECK(tz_rules_load(&z, "UTC", err, sizeof err) == 0);
    CHECK_STR(ts_of("2000-01-01 12:00", DT_MDY, 1, &z),
              "2000-01-01 12:00:00+00");
}

static void test_binary_encoders(void)
{
    sbuf b = { 0 };
#define ENC(call, want)                                                    \
    do {                                                                   \
        b.len = 0;                                                         \
        CHECK((call) == SL_OK);                                          \
        CHECK_STR(hex(&b), want);                                          \
    } while (0)
    ENC(copy_put_null(&b), "ffffffff");
    ENC(copy_put_bool(&b, 1), "0000000101");
    ENC(copy_put_int2(&b, -2), "00000002fffe");
    ENC(copy_put_int4(&b, 42), "000000040000002a");
    ENC(copy_put_int8(&b, -1), "00000008ffffffffffffffff");
    ENC(copy_put_float8(&b, 1.5), "000000083ff8000000000000");
    ENC(copy_put_float4(&b, 1.5), "000000043fc00000");
    ENC(copy_put_text(&b, "hi", 2), "000000026869");
    ENC(copy_put_json(&b, "{}", 2, 1), "00000003017b7d");
    /* numeric 123.45: 2 digits of base 10000, weight 0, scale 2 */
    ENC(copy_put_numeric_str(&b, "123.45", 6),
        "0000000c0002000000000002007b1194");
    ENC(copy_put_date_str(&b, "2000-01-02", 10, DT_MDY), "0000000400000001");
    ENC(copy_put_ts_str(&b, "2000-01-01 00:00:01", 19, 0, DT_MDY, NULL),
        "0000000800000000000f4240");
    ENC(copy_put_uuid_str(&b, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", 36),
        "00000010a0eebc999c0b4ef8bb6d6bb9bd380a11");
#undef ENC
    b.len = 0;
    CHECK(copy_put_int2(&b, 40000) == SL_ERANGE);
    CHECK(copy_put_int4(&b, 1.5) == SL_EINVAL);
    CHECK(copy_put_int8(&b, 9007199254740994.0) == SL_ERANGE);
    CHECK(copy_put_text(&b, "a\0b", 3) == SL_ENUL);
    CHECK(copy_put_float4(&b, 1e300) == SL_ERANGE);
    CHECK(copy_put_ts_str(&b, "2000-01-01 00:00:01", 19, 1, DT_MDY, NULL) ==
          SL_ENOZONE);
    sbuf_free(&b);
}

/* Write data to a new temporary file; returns its path (static). */
static const char *temp_file(const void *data, size_t n, int gzip)
{
    static char path[64];
    strcpy(path, "/tmp/sluice-core-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) {
        perror("mkstemp");
        exit(2);
    }
    if (gzip) {
        gzFile g = gzdopen(fd, "wb");
        gzwrite(g, data, (unsigned)n);
        gzclose(g);
    } else {
        if (write(fd, data, n) != (ssize_t)n)
            exit(2);
        close(fd);
    }
    return path;
}

/* Read every record of path; the fields joined by '|', records by '\n',
 * into out; returns csvread_next's last answer (0 at the end, -1). */
static int read_all(const char *path, const csvread_opts *o, char *out,
                    size_t outlen, csvread *r)
{
    memset(r, 0, sizeof *r);
    out[0] = '\0';
    if (csvread_open(r, path, o) < 0)
        return -1;
    size_t len = 0;
    int rc;
    while ((rc = csvread_next(r)) == 1) {
        for (size_t i = 0; i < r->nfields; i++) {
            const csvread_field *f = &r->fields[i];
            len += (size_t)snprintf(out + len, outlen - len, "%s%.*s",
                                    i ? "|" : "", (int)f->len, r->data + f->off);
        }
        len += (size_t)snprintf(out + len, outlen - len, "@%lld\n",
                                r->rec_start_line);
    }
    return rc;
}

static void test_csv(void)
{
    csvread_opts o = { .delim = ',', .quote = '"', .strict = 1, .check_utf8 = 1 };
    csvread r;
    char out[4096];
    const char *in = "a,b\r\n\"x,1\",\"multi\nline\"\n\n3,\"q\"\"q\"\r4,5";
    const char *p = temp_file(in, strlen(in), 0);
    CHECK(read_all(p, &o, out, sizeof out, &r) == 0);
    /* a CR alone ends a line: "4,5" is on line 6 */
    CHECK_STR(out, "a|b@1\nx,1|multi\nline@2\n3|q\"q@5\n4|5@6\n");
    csvread_release(&r);
    unlink(p);

    /* the same bytes gzip'd, twice: every member is read */
    char twice[256];
    snprintf(twice, sizeof twice, "1,a\n2,b\n");
    p = temp_file(twice, strlen(twice), 1);
    FILE *f = fopen(p, "ab");
    gzFile g = gzdopen(dup(fileno(f)), "ab");
    gzputs(g, "3,c\n");
    gzclose(g);
    fclose(f);
    CHECK(read_all(p, &o, out, sizeof out, &r) == 0);
    CHECK_STR(out, "1|a@1\n2|b@2\n3|c@3\n");
    csvread_release(&r);
    /* then bytes that are not gzip: an error, not a quiet end */
    f = fopen(p, "ab");
    fputs("garbage", f);
    fclose(f);
    CHECK(read_all(p, &o, out, sizeof out, &r) == -1);
    CHECK(strstr(r.err, "gzip stream is followed by bytes that are not gzip") != NULL);
    csvread_release(&r);
    unlink(p);

    /* errors name the line */
    const char *bad[][2] = {
        { "a,b\n1,2,3\n", ":2: row has 3 fields, expected 2" },
        { "a,b\n1,x\"y\n", ":2: malformed quoting (a quote inside an unquoted field)" },
        { "a,b\n\"1\"x,2\n", ":2: malformed quoting (text after a closing quote)" },
        { "a\n\xff\n", ":2: invalid UTF-8 (byte 0xFF)" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p = temp_file(bad[i][0], strlen(bad[i][0]), 0);
        CHECK(read_all(p, &o, out, sizeof out, &r) == -1);
        if (!strstr(r.err, bad[i][1])) {
            failures++;
            fprintf(stderr, "csv case %zu: \"%s\" lacks \"%s\"\n", i, r.err, bad[i][1]);
        }
        csvread_release(&r);
        unlink(p);
    }

    /* records across block boundaries: 100k lines, quoted every 7th */
    size_t cap = 8u << 20, n = 0;
    char *big = malloc(cap);
    for (int i = 0; i < 100000; i++)
        n += (size_t)snprintf(big + n, cap - n, i % 7 ? "%d,v%d\n" : "%d,\"v,%d\"\n", i, i);
    p = temp_file(big, n, 0);
    memset(&r, 0, sizeof r);
    CHECK(csvread_open(&r, p, &o) == 0);
    int rows = 0, good = 1;
    while (csvread_next(&r) == 1) {
        char want[32];
        int k = snprintf(want, sizeof want, rows % 7 ? "v%d" : "v,%d", rows);
        good &= r.nfields == 2 && r.fields[1].len == (size_t)k &&
                memcmp(r.data + r.fields[1].off, want, (size_t)k) == 0 &&
                r.rec_start_line == rows + 1;
        char line[48];
        int kl = snprintf(line, sizeof line, rows % 7 ? "%d,v%d" : "%d,\"v,%d\"",
                          rows, rows);
        const char *t;
        size_t tn;
        good &= csvread_record(&r, &t, &tn) == 0 && tn == (size_t)kl &&
                memcmp(t, line, tn) == 0 &&
                memcmp(big + r.rec_offset, line, tn) == 0;
        rows++;
    }
    CHECK(rows == 100000);
    CHECK(good);
    CHECK(r.state == CSVREAD_DONE);
    csvread_release(&r);
    unlink(p);
    free(big);
}

/* csvread_record: each record's text is its bytes in the input, line end
 * left out, for every block size (so every record is split at every
 * place), plain and gzip, quote-free and quoted lines. */
static void test_csv_record(void)
{
    static const char in[] =
        "\xEF\xBB\xBF" "h1,h2\r\n"
        "\n"
        "1,\"a\r\nb\"\n"
        "\"x\"\"y\",2\r"
        "plain,line\n"
        "\r\n"
        "3,\"multi\nline\nquoted\"\r\n"
        "skipped? no,\"\"\r\n"
        "4,last";
    static const char *want[] = {
        "h1,h2", "1,\"a\r\nb\"", "\"x\"\"y\",2", "plain,line",
        "3,\"multi\nline\nquoted\"", "skipped? no,\"\"", "4,last",
    };
    /* a CR alone ends a line too (the one after "x""y",2) */
    static const long long want_line[] = { 1, 3, 5, 6, 8, 11, 12 };
    size_t nwant = sizeof want / sizeof want[0], len = sizeof in - 1;
    csvread_opts o = { .delim = ',', .quote = '"', .strict = 1, .check_utf8 = 1 };
    int good = 1, cases = 0;
    for (int gz = 0; gz <= 1; gz++) {
        const char *p = temp_file(in, len, gz);
        for (size_t block = CSVREAD_MIN_BLOCK; block <= len + 1; block++) {
            csvread r;
            memset(&r, 0, sizeof r);
            o.block = block;
            CHECK(csvread_open(&r, p, &o) == 0);
            size_t k = 0;
            long long end = 3; /* the BOM */
            while (csvread_next(&r) == 1) {
                const char *t;
                size_t n;
                int rc = csvread_record(&r, &t, &n);
                /* twice: the same text */
                const char *t2;
                size_t n2;
                int rc2 = csvread_record(&r, &t2, &n2);
                int ok = k < nwant && rc == 0 && rc2 == 0 &&
                         n == strlen(want[k]) && memcmp(t, want[k], n) == 0 &&
                         n2 == n && memcmp(t2, t, n) == 0 &&
                         r.rec_offset >= end && r.rec_offset + (long long)n <= r.next_offset &&
                         memcmp(in + r.rec_offset, t, n) == 0 &&
                         r.rec_start_line == want_line[k];
                if (!ok) {
                    fprintf(stderr, "record %zu (gzip %d, block %zu): \"%.*s\" at %lld\n",
                            k, gz, block, rc == 0 ? (int)n : 0, rc == 0 ? t : "",
                            r.rec_offset);
                    good = 0;
                }
                end = r.next_offset;
                k++;
            }
            good &= k == nwant && r.state == CSVREAD_DONE &&
                    end == (long long)len;
            /* after the end, and after release: no record */
            const char *t;
            size_t n;
            good &= csvread_record(&r, &t, &n) == -1;
            csvread_release(&r);
            good &= csvread_record(&r, &t, &n) == -1;
            cases++;
        }
        unlink(p);
    }
    CHECK(good);
    CHECK(cases > 2 * 60);
    o.block = 0;

    /* skipped lines are no part of a record; a record ended by a failed
     * field count is not handed out */
    const char *in2 = "junk \"line\nh\n\"a\nb\"\n";
    const char *p = temp_file(in2, strlen(in2), 0);
    csvread r;
    memset(&r, 0, sizeof r);
    o.skip = 1;
    CHECK(csvread_open(&r, p, &o) == 0);
    const char *t;
    size_t n;
    CHECK(csvread_next(&r) == 1 && csvread_record(&r, &t, &n) == 0 &&
          n == 1 && *t == 'h' && r.rec_offset == 11);
    CHECK(csvread_next(&r) == 1 && csvread_record(&r, &t, &n) == 0 &&
          n == 5 && memcmp(t, "\"a\nb\"", 5) == 0 && r.rec_offset == 13);
    CHECK(csvread_next(&r) == 0);
    csvread_release(&r);
    unlink(p);
}

/* One record in the form seek tests compare: fields, the line it began
 * on, where it began and where the next one starts. */
static void put_record(const csvread *r, char *out, size_t cap, size_t *len)
{
    for (size_t i = 0; i < r->nfields && *len < cap; i++) {
        const csvread_field *f = &r->fields[i];
        *len += (size_t)snprintf(out + *len, cap - *len, "%s%.*s",
                                 i ? "|" : "", (int)f->len, r->data + f->off);
    }
    if (*len < cap)
        *len += (size_t)snprintf(out + *len, cap - *len, "@%lld:%lld-%lld/%lld\n",
                                 r->rec_start_line, r->rec_offset,
                                 r->next_offset, r->next_line);
}

/* The records from the reader's position to the end, then "D" or the
 * error. */
static void read_rest(csvread *r, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    int rc;
    while ((rc = csvread_next(r)) == 1)
        put_record(r, out, cap, &len);
    if (len < cap)
        snprintf(out + len, cap - len, rc == 0 ? "D" : "E%s", r->err);
}

/* csvread_seek: from the position before every record of a file with a
 * BOM, CRLF, lone CRs, quoted line ends and a last line without one, a
 * reader reads exactly the records, lines and offsets an uninterrupted
 * read gives: a fresh reader, and one that read to the end and goes back
 * (and forward); plain and gzip, for many block sizes. */
static void test_csv_seek(void)
{
    static const char in[] =
        "\xEF\xBB\xBF" "h1,h2\r\n"
        "\n"
        "1,\"a\r\nb\"\n"
        "\"x\"\"y\",2\r"
        "plain,line\n"
        "\r\n"
        "3,\"multi\nline\nquoted\"\r\n"
        "skipped? no,\"\"\r\n"
        "4,last";
    enum { NREC = 7 };
    size_t len = sizeof in - 1;
    csvread_opts o = { .delim = ',', .quote = '"', .strict = 1, .check_utf8 = 1 };
    int good = 1, cases = 0;
    for (int gz = 0; gz <= 1; gz++) {
        const char *p = temp_file(in, len, gz);
        for (size_t block = CSVREAD_MIN_BLOCK; block <= len + 1;
             block += block < 24 ? 1 : 17) {
            o.block = block;
            /* the uninterrupted read, and the position before each record */
            static char whole[4096], rest[4096];
            long long off[NREC + 1], line[NREC + 1];
            size_t expect[NREC + 1];
            csvread r;
            memset(&r, 0, sizeof r);
            CHECK(csvread_open(&r, p, &o) == 0);
            size_t wl = 0, starts[NREC + 2];
            int k = 0;
            off[0] = 0, line[0] = 1, expect[0] = 0, starts[0] = 0;
            while (csvread_next(&r) == 1 && k < NREC) {
                put_record(&r, whole, sizeof whole, &wl);
                k++;
                off[k] = r.next_offset, line[k] = r.next_line;
                expect[k] = r.expect;
                starts[k] = wl;
            }
            good &= k == NREC && r.state == CSVREAD_DONE;
            snprintf(whole + wl, sizeof whole - wl, "D");
            /* the same reader, after its end: back to each position, last
             * to first, then forward again */
            for (int pass = 0; pass < 2; pass++) {
                for (int j = 0; j <= NREC; j++) {
                    int at = pass == 0 ? NREC - j : j;
                    int ok = csvread_seek(&r, off[at], line[at], expect[at]) == 0;
                    read_rest(&r, rest, sizeof rest);
                    if (!ok || strcmp(rest, whole + starts[at]) != 0) {
                        fprintf(stderr, "seek (gzip %d, block %zu, record %d, "
                                "same reader): %s\n  got:  %s\n  want: %s\n",
                                gz, block, at, r.err, rest, whole + starts[at]);
                        good = 0;
                    }
                    cases++;
                }
            }
            csvread_release(&r);
            /* fresh readers */
            for (int at = 0; at <= NREC; at++) {
                memset(&r, 0, sizeof r);
                CHECK(csvread_open(&r, p, &o) == 0);
                int ok = csvread_seek(&r, off[at], line[at], expect[at]) == 0;
                read_rest(&r, rest, sizeof rest);
                if (!ok || strcmp(rest, whole + starts[at]) != 0) {
                    fprintf(stderr, "seek (gzip %d, block %zu, record %d, "
                            "fresh reader): %s\n  got:  %s\n  want: %s\n",
                            gz, block, at, r.err, rest, whole + starts[at]);
                    good = 0;
                }
                csvread_release(&r);
                cases++;
            }
            /* a seek in the middle of reading: forward past records */
            memset(&r, 0, sizeof r);
            CHECK(csvread_open(&r, p, &o) == 0);
            good &= csvread_next(&r) == 1 && csvread_next(&r) == 1;
            good &= csvread_seek(&r, off[5], line[5], expect[5]) == 0;
            read_rest(&r, rest, sizeof rest);
            good &= strcmp(rest, whole + starts[5]) == 0;
            csvread_release(&r);
        }
        o.block = 0;

        /* bad positions: in a record, between CR and LF, past the end */
        csvread r;
        const long long bad[] = { 5, 9, 14, (long long)len + 1, 1000000 };
        const char *why[] = { "is not where a record starts",
                              "is not where a record starts",
                              "is not where a record starts",
                              "is past the end of the input",
                              "is past the end of the input" };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            memset(&r, 0, sizeof r);
            CHECK(csvread_open(&r, p, &o) == 0);
            CHECK(csvread_seek(&r, bad[i], 2, 2) == -1);
            if (!strstr(r.err, why[i]) || strncmp(r.err, p, strlen(p)) != 0) {
                fprintf(stderr, "bad position %lld (gzip %d): %s\n", bad[i], gz,
                        r.err);
                good = 0;
            }
            CHECK(r.state == CSVREAD_FAILED && csvread_next(&r) == -1);
            /* a failed reader can seek again */
            CHECK(csvread_seek(&r, 0, 1, 0) == 0 && csvread_next(&r) == 1 &&
                  r.rec_start_line == 1);
            csvread_release(&r);
        }
        /* the end is a position: nothing follows */
        memset(&r, 0, sizeof r);
        CHECK(csvread_open(&r, p, &o) == 0);
        CHECK(csvread_seek(&r, (long long)len, 11, 2) == 0 &&
              csvread_next(&r) == 0 && r.state == CSVREAD_DONE);
        csvread_release(&r);
        CHECK(csvread_seek(&r, 0, 1, 0) == -1); /* released */
        unlink(p);
    }
    CHECK(good);
    CHECK(cases > 100);

    /* a strict width carried by the position; opts.skip only from 0 */
    const char *in2 = "junk\na,b\n1,2\n3\n";
    const char *p = temp_file(in2, strlen(in2), 0);
    o.skip = 1;
    csvread r;
    memset(&r, 0, sizeof r);
    CHECK(csvread_open(&r, p, &o) == 0);
    CHECK(csvread_seek(&r, 13, 4, 2) == 0 && csvread_next(&r) == -1);
    CHECK(strstr(r.err, ":4: row has 1 field, expected 2") != NULL);
    CHECK(csvread_seek(&r, 0, 1, 0) == 0 && csvread_next(&r) == 1 &&
          r.rec_start_line == 2 && r.nfields == 2);
    csvread_release(&r);
    o.skip = 0;
    unlink(p);

    /* a reader that failed inside a record goes on cleanly after a seek
     * past it (the parser's half record forgotten) */
    const char *in3 = "a,b\n1,\"x\ny\"z\n2,3\n";
    p = temp_file(in3, strlen(in3), 0);
    memset(&r, 0, sizeof r);
    CHECK(csvread_open(&r, p, &o) == 0);
    CHECK(csvread_next(&r) == 1 && csvread_next(&r) == -1);
    CHECK(strstr(r.err, ":3: malformed quoting (text after a closing quote)") != NULL);
    CHECK(csvread_seek(&r, 13, 4, 2) == 0 && csvread_next(&r) == 1 &&
          r.nfields == 2 && r.rec_start_line == 4 && r.rec_offset == 13 &&
          r.data[r.fields[1].off] == '3' && csvread_next(&r) == 0);
    csvread_release(&r);
    unlink(p);

    /* standard input cannot seek, and the reader goes on */
    memset(&r, 0, sizeof r);
    CHECK(csvread_open(&r, "-", &o) == 0);
    CHECK(csvread_seek(&r, 0, 1, 0) == -1 && r.state == CSVREAD_OPEN);
    CHECK(strstr(r.err, "cannot seek in standard input") != NULL);
    char id[128];
    CHECK(csvread_identity(&r, "-", id, sizeof id) == -1);
    csvread_release(&r);

    /* identity: size, mtime and the first bytes' checksum */
    p = temp_file("a,b\n", 4, 0);
    memset(&r, 0, sizeof r);
    CHECK(csvread_open(&r, p, &o) == 0);
    CHECK(csvread_identity(&r, p, id, sizeof id) == 0);
    /* crc32 of "a,b\n" */
    uLong crc = crc32(crc32(0L, Z_NULL, 0), (const Bytef *)"a,b\n", 4);
    char want[32];
    snprintf(want, sizeof want, "crc32=%08lx", (unsigned long)crc);
    CHECK(strncmp(id, "size=4 mtime=", 13) == 0 && strstr(id, want) != NULL);
    csvread_release(&r);
    char id2[128];
    CHECK(csvread_identity(&r, p, id2, sizeof id2) == 0); /* reopens */
    CHECK_STR(id2, id);
    unlink(p);
    CHECK(csvread_identity(&r, p, id2, sizeof id2) == -1 &&
          strstr(id2, "No such file") != NULL);
}

/* The CSV reader against libcsv (tests/csvdiff.h): every fixture and
 * RFC 4180's corner cases, each with the reader's own block and with
 * small blocks that put a block end at every few bytes. */
static void test_csv_libcsv(void)
{
    static const char *cases[] = {
        "a,b\n1,2\n",
        "a,b\n1,2",                          /* a last line without a newline */
        "a,b\r\n1,2\r\n",                    /* CRLF */
        "a,b\r1,2\r",                        /* CR alone */
        "\"a\"\"b\",c\n",                    /* a doubled quote */
        "\"\"\"\",\"\"\n",                   /* a field that is one quote; "" */
        "\"x\r\ny\",z\r\n",                  /* CRLF inside quotes */
        "\"x\ny\",\"\n\"\n",                 /* LF inside quotes, one alone */
        ",\n\"\",\n,\"\"\n",                 /* empty fields vs empty quoted */
        "a\n\n\nb\n",                        /* blank lines */
        "a\n\n",                             /* a blank last line */
        "a\r\n\r\n",
        "\xEF\xBB\xBF" "a,b\n1,2\n",         /* a BOM */
        "\xEF\xBB\xBF\"q\",b\n",             /* a BOM, then a quoted field */
        " a , b \n",                         /* spaces are data */
        "\"a,b\",\"c\nd\",e\n",
        "a,\"b\"x\n",                        /* text after a closing quote */
        "a,b\"c\n",                          /* a quote inside a field */
        "\"never closed\n",                  /* a quote open at the end */
        "\"a\" \n",
        "1,2,3\n4\n5,6\n",                   /* ragged */
        "",
        "\n",
        ",",
        "\"\"",
        "a,\xC3\xA9\x00z\n",                 /* bytes, a NUL */
    };
    char path[] = "/tmp/sluice_core_csvdiff_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    static const size_t blocks[] = { 0, 4, 5, 7, 16 };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        size_t n = strlen(cases[c]);
        if (c + 1 == sizeof cases / sizeof *cases)
            n = 7; /* the NUL case: its bytes past the NUL too */
        for (size_t b = 0; b < sizeof blocks / sizeof *blocks; b++) {
            const char *why = csvdiff_compare((const unsigned char *)cases[c], n, ',', '"',
                                              blocks[b], fd, path);
            checks++;
            if (why) {
                failures++;
                fprintf(stderr, "csv vs libcsv, case %zu, block %zu: %s\n", c, blocks[b], why);
            }
        }
    }
    /* the fixtures, with ',' and with ';' (the custom one is ;-separated) */
    const char *dir = "tests/fixtures/csv";
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    struct dirent *e;
    int files = 0;
    while (d && (e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".csv") != 0)
            continue;
        char fp[512];
        snprintf(fp, sizeof fp, "%s/%s", dir, e->d_name);
        FILE *f = fopen(fp, "rb");
        CHECK(f != NULL);
        if (!f)
            continue;
        static unsigned char buf[1 << 20];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        files++;
        for (size_t b = 0; b < sizeof blocks / sizeof *blocks; b++) {
            for (int dl = 0; dl < 2; dl++) {
                const char *why = csvdiff_compare(buf, n, dl ? ';' : ',', '"', blocks[b], fd, path);
                checks++;
                if (why) {
                    failures++;
                    fprintf(stderr, "csv vs libcsv, %s, block %zu, delimiter %c: %s\n", fp,
                            blocks[b], dl ? ';' : ',', why);
                }
            }
        }
    }
    if (d)
        closedir(d);
    CHECK(files >= 10);
    close(fd);
    unlink(path);
}

static void test_redact(void)
{
    redact r;
    char out[512];
    redact_init(&r, "postgres://u:S3cret%21@db.example/app");
    redact_text(&r, "password authentication failed for \"S3cret!\"", out, sizeof out);
    CHECK(strstr(out, "S3cret") == NULL);
    CHECK(strstr(out, "***") != NULL);
    CHECK(strstr(r.shown, "S3cret") == NULL);
    redact_init(&r, "host=h password='a b c' dbname=x");
    redact_text(&r, "invalid connection option near \"a b c\"", out, sizeof out);
    CHECK(strstr(out, "a b c") == NULL);
}

/* Field 22 of /proc/self/stat (start time), as tmpdb.c records it. */
static unsigned long long self_start_time(void)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    for (int field = 3; p && field < 22; field++)
        p = strchr(p + 1, ' ');
    return p ? strtoull(p + 1, NULL, 10) : 0;
}

/* A fake server directory parent/name with a file inside, and its owner
 * file saying `owner` (NULL: none). */
static void fake_dir(const char *parent, const char *name, const char *owner)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", parent, name);
    CHECK(mkdir(path, 0700) == 0);
    snprintf(path, sizeof path, "%s/%s/data", parent, name);
    CHECK(mkdir(path, 0700) == 0);
    snprintf(path, sizeof path, "%s/%s/data/PG_VERSION", parent, name);
    FILE *f = fopen(path, "w");
    CHECK(f && fputs("15\n", f) >= 0 && fclose(f) == 0);
    if (owner) {
        snprintf(path, sizeof path, "%s/%s/owner", parent, name);
        f = fopen(path, "w");
        CHECK(f && fputs(owner, f) >= 0 && fclose(f) == 0);
    }
}

static int dir_exists(const char *parent, const char *name)
{
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", parent, name);
    return stat(path, &st) == 0;
}

static void test_tmpdb_sweep(void)
{
    char parent[] = "/tmp/sluice-core-XXXXXX";
    CHECK(mkdtemp(parent) != NULL);
    /* a dead owner: a child that exited (and was reaped) */
    pid_t dead = fork();
    if (dead == 0)
        _exit(0);
    int st;
    CHECK(waitpid(dead, &st, 0) == dead);
    char line[64];
    snprintf(line, sizeof line, "%d 12345\n", (int)dead);
    fake_dir(parent, "sluice-tmpdb-dead01", line);
    /* a live owner: this process, its start time */
    snprintf(line, sizeof line, "%d %llu\n", (int)getpid(), self_start_time());
    fake_dir(parent, "sluice-tmpdb-live01", line);
    /* this pid with another start time: the pid was reused */
    snprintf(line, sizeof line, "%d %llu\n", (int)getpid(), self_start_time() + 1);
    fake_dir(parent, "sluice-tmpdb-reuse1", line);
    /* no owner yet (a start under way), and a name not ours */
    fake_dir(parent, "sluice-tmpdb-noown1", NULL);
    fake_dir(parent, "other-dead01", "1 1\n");
    CHECK(tmpdb_sweep(parent) == 2);
    CHECK(!dir_exists(parent, "sluice-tmpdb-dead01"));
    CHECK(!dir_exists(parent, "sluice-tmpdb-reuse1"));
    CHECK(dir_exists(parent, "sluice-tmpdb-live01"));
    CHECK(dir_exists(parent, "sluice-tmpdb-noown1"));
    CHECK(dir_exists(parent, "other-dead01"));
    CHECK(tmpdb_sweep(parent) == 0);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", parent);
    CHECK(system(cmd) == 0);
}

/* Reject mode's core against a real server, no Lua: a chunk of rows with
 * bad ones is sent, fails, and is settled - the bad rows set aside with
 * the server's errors, every other row committed. */
static int exec_ok(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK ||
             PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    return ok;
}

static long count_rows(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    long n = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    return n;
}

/* Send the chunk's rows as one COPY and settle it when it fails; returns
 * the rows loaded, -1 on an unexpected failure. */
static long load_chunk(PGconn *pg, copy_chunk *c, const sbuf *data)
{
    PGresult *err = NULL, *fatal = NULL;
    uint64_t loaded = 0;
    int committing = 0;
    if (copy_chunk_open(pg, c, &err) != SL_OK ||
        copy_put(pg, data->data, data->len, 0) != SL_OK)
        return -1;
    int rc = copy_chunk_close(pg, c, &loaded, &committing, &err);
    if (rc == SL_EFAIL)
        rc = copy_chunk_settle(pg, c, data->data, err, &loaded, &committing,
                               &fatal);
    PQclear(fatal);
    return rc == SL_OK ? (long)loaded : -1;
}

static void test_copychunk(void)
{
    tmpdb db;
    char err[1024];
    tmpdb_opts o = { .fast = 1 };
    memset(&db, 0, sizeof db);
    if (tmpdb_start(&db, &o, err, sizeof err) != 0) {
        fprintf(stderr, "copychunk: no server: %s\n", err);
        CHECK(0);
        return;
    }
    PGconn *pg = PQconnectdb(db.conninfo);
    CHECK(PQstatus(pg) == CONNECTION_OK);
    CHECK(exec_ok(pg, "create table t (id int primary key, v int check (v >= 0), s text)"));

    /* text format: 40 rows; row 5, 17, 33 break the CHECK, row 20
     * repeats the key of row 3 (0-based 4, 16, 32, 19) */
    copy_chunk c;
    CHECK(copy_chunk_init(&c, 64) == SL_OK);
    c.own_tx = 1;
    c.sql = "COPY t (id, v, s) FROM STDIN";
    sbuf data = { 0 };
    char line[64];
    for (int i = 1; i <= 40; i++) {
        int id = i == 20 ? 3 : i, v = (i == 5 || i == 17 || i == 33) ? -1 : i;
        int n = snprintf(line, sizeof line, "%d\t%d\tx%d\n", id, v, i);
        CHECK(sbuf_reserve(&data, (size_t)n) == SL_OK);
        sbuf_put_raw(&data, line, (size_t)n);
        copy_chunk_add(&c, data.len, 0);
    }
    CHECK(load_chunk(pg, &c, &data) == 36);
    CHECK(c.nrej == 4 && c.rej_row[0] == 4 && c.rej_row[1] == 16 &&
          c.rej_row[2] == 19 && c.rej_row[3] == 32);
    CHECK(c.nrej == 4 &&
          strcmp(PQresultErrorField(c.rej_err[2], PG_DIAG_SQLSTATE), "23505") == 0 &&
          strcmp(PQresultErrorField(c.rej_err[3], PG_DIAG_SQLSTATE), "23514") == 0);
    CHECK(count_rows(pg, "select count(*) from t") == 36);
    CHECK(count_rows(pg, "select count(*) from t where id in (5, 17, 33) or s = 'x20'") == 0);
    CHECK(PQtransactionStatus(pg) == PQTRANS_IDLE);

    /* CSV: line feeds inside quoted values move the server's "line N"
     * (not in the COPY's first row); the bad row is still the one found */
    copy_chunk_reset(&c);
    c.csv = 1;
    c.sql = "COPY t (id, v, s) FROM STDIN (FORMAT csv)";
    data.len = 0;
    static const char *csv_rows[] = {
        "101,1,\"a\nb\nc\"\n", "102,2,\"d\ne\"\n", "103,x,f\n",
        "104,4,\"g\n\n\"\n", "105,5,h\n", "106,y,i\n", "107,7,j\n",
    };
    for (size_t i = 0; i < sizeof csv_rows / sizeof csv_rows[0]; i++) {
        size_t n = strlen(csv_rows[i]);
        CHECK(sbuf_reserve(&data, n) == SL_OK);
        sbuf_put_raw(&data, csv_rows[i], n);
        copy_chunk_add(&c, data.len, 0);
    }
    CHECK(load_chunk(pg, &c, &data) == 5);
    CHECK(c.nrej == 2 && c.rej_row[0] == 2 && c.rej_row[1] == 5);
    CHECK(count_rows(pg, "select count(*) from t where id > 100") == 5);
    CHECK(count_rows(pg, "select count(*) from t where id in (103, 106)") == 0);

    sbuf_free(&data);
    copy_chunk_free(&c);
    PQfinish(pg);
    tmpdb_stop(&db);
}

/* s read by layout (date_only: as a date) as ISO text, or the refusal
 * ("22007", "22008"; "layout" when the layout does not compile). */
static const char *by_layout(const char *layout, const char *s,
                             int date_only)
{
    static char buf[TEXTOPS_ISO_MAX];
    textops_layout l;
    char err[256];
    if (textops_layout_compile(&l, layout, strlen(layout), err, sizeof err))
        return "layout";
    int n = textops_iso_of(&l, s, strlen(s), date_only, buf);
    return n < 0 ? dt_code(n) : buf;
}

static double epoch_by(const char *layout, const char *s, int date_only)
{
    textops_layout l;
    if (textops_layout_compile(&l, layout, strlen(layout), NULL, 0))
        return -1;
    return textops_epoch(&l, s, strlen(s), date_only);
}

static void test_textops(void)
{
    textops_layout l;
    char err[256];
    /* layouts */
    CHECK_STR(by_layout("MM/DD/YYYY", "03/07/2024", 1), "2024-03-07");
    CHECK_STR(by_layout("MM/DD/YYYY", "3/7/2024", 1), "2024-03-07");
    CHECK_STR(by_layout("MM/DD/YYYY", "03/07/24", 1), "22007");
    CHECK_STR(by_layout("MM/DD/YYYY", "02/30/2024", 1), "22008");
    CHECK_STR(by_layout("MM/DD/YYYY", "02/29/2024", 1), "2024-02-29");
    CHECK_STR(by_layout("MM/DD/YYYY", "02/29/2023", 1), "22008");
    CHECK_STR(by_layout("MM/DD/YYYY", "13/01/2024", 1), "22008");
    CHECK_STR(by_layout("MM/DD/YYYY", "1/1/0000", 1), "22008");
    CHECK_STR(by_layout("MM/DD/YYYY", " 1/1/2024", 1), "22007");
    CHECK_STR(by_layout("MM/DD/YYYY", "1/1/2024 ", 1), "22007");
    CHECK_STR(by_layout("MM/DD/YYYY", "123/1/2024", 1), "22007");
    CHECK_STR(by_layout("MM/DD/YYYY", "1-1-2024", 1), "22007");
    CHECK_STR(by_layout("MM/DD/YYYY", "", 1), "22007");
    CHECK_STR(by_layout("YYYYMMDD", "20240307", 1), "2024-03-07");
    /* the last field takes 1 or 2 digits, the others their width */
    CHECK_STR(by_layout("YYYYMMDD", "2024037", 1), "2024-03-07");
    CHECK_STR(by_layout("YYYYMMDD", "202403", 1), "22007");
    CHECK_STR(by_layout("YYYYMMDD", "20241307", 1), "22008");
    CHECK_STR(by_layout("DD/MM/YY", "07/03/69", 1), "2069-03-07");
    CHECK_STR(by_layout("DD/MM/YY", "07/03/70", 1), "1970-03-07");
    CHECK_STR(by_layout("DD.MM.YYYY HH:MI", "07.03.2024 14:05", 0),
              "2024-03-07 14:05:00");
    CHECK_STR(by_layout("DD.MM.YYYY HH:MI", "07.03.2024 14:05", 1),
              "2024-03-07");
    CHECK_STR(by_layout("DD.MM.YYYY HH:MI", "07.03.2024 24:00", 0),
              "2024-03-07 24:00:00");
    CHECK_STR(by_layout("DD.MM.YYYY HH:MI", "07.03.2024 24:01", 0), "22008");
    CHECK_STR(by_layout("DD.MM.YYYY HH:MI", "07.03.2024 14:60", 0), "22008");
    CHECK_STR(by_layout("YYYY-MM-DD HH24:MI:SS.FF", "2024-03-07 1:2:3.5", 0),
              "2024-03-07 01:02:03.500000");
    CHECK_STR(by_layout("YYYY-MM-DD\"T\"HH24:MI:SS", "2024-03-07T01:02:60",
                        0), "2024-03-07 01:02:60");
    CHECK_STR(by_layout("MM/DD/YYYY HH:MI AM", "03/07/2024 12:05 AM", 0),
              "2024-03-07 00:05:00");
    CHECK_STR(by_layout("MM/DD/YYYY HH:MI AM", "03/07/2024 12:05 pm", 0),
              "2024-03-07 12:05:00");
    CHECK_STR(by_layout("MM/DD/YYYY HH12:MIPM", "03/07/2024 1:05PM", 0),
              "2024-03-07 13:05:00");
    CHECK_STR(by_layout("MM/DD/YYYY HH:MI AM", "03/07/2024 13:05 PM", 0),
              "22008");
    CHECK_STR(by_layout("MM/DD/YYYY HH:MI AM", "03/07/2024 1:05 XM", 0),
              "22007");
    /* the layout's ISO text is what the server's reader reads back */
    CHECK_STR(date_of(by_layout("DD/MM/YY", "29/02/00", 1), DT_DMY),
              "2000-02-29");
    CHECK_STR(ts_of(by_layout("DD.MM.YYYY HH:MI", "31.12.2016 24:00", 0),
                    DT_MDY, 0, NULL), "2017-01-01 00:00:00");
    /* epoch seconds: the wall clock as UTC; a date's midnight */
    CHECK(epoch_by("MM/DD/YYYY", "01/01/1970", 1) == 0);
    CHECK(epoch_by("MM/DD/YYYY", "03/07/2024", 1) == 1709769600);
    CHECK(epoch_by("YYYY-MM-DD HH24:MI:SS", "2024-03-07 24:00:00", 1) ==
          1709769600);
    CHECK(epoch_by("YYYY-MM-DD HH24:MI:SS", "2024-03-07 24:00:00", 0) ==
          1709769600 + 86400);
    CHECK(isnan(epoch_by("YYYY-MM-DD HH24:MI:SS.FF", "2024-03-07 24:00:00",
                         0)));
    CHECK(epoch_by("YYYY-MM-DD HH24:MI:SS.FF", "1969-12-31 23:59:59.25", 0) ==
          -0.75);
    CHECK(epoch_by("YYYY-MM-DD", "0001-01-01", 1) == -62135596800.0);
    CHECK(isnan(epoch_by("MM/DD/YYYY", "02/30/2024", 1)));
    /* layouts refused, with why */
    CHECK(textops_layout_compile(&l, "mm/dd/yyyy", 10, err, sizeof err) == 0);
    CHECK(textops_layout_compile(&l, "MM/DD/YYYYT", 11, err, sizeof err) ==
          -1);
    CHECK_STR(err, "layout \"MM/DD/YYYYT\": \"T\" at byte 11 begins no "
                   "layout token (YYYY, YY, MM, DD, HH24, HH12, HH, MI, SS, "
                   "FF, AM/PM); put other letters in double quotes");
    CHECK_STR(by_layout("MM/DD", "03/07", 1), "layout");
    CHECK_STR(by_layout("MM/DD/YYYY/YY", "1/1/2024/24", 1), "layout");
    CHECK_STR(by_layout("MM/DD/YYYY HH24:MI AM", "1/1/2024 1:00 AM", 0),
              "layout");
    CHECK_STR(by_layout("MM/DD/YYYY HH12:MI", "1/1/2024 1:00", 0), "layout");
    CHECK_STR(by_layout("MM/DD/YYYY \"T", "1/1/2024 T", 0), "layout");
    /* numbers */
    CHECK(textops_number("1.234,56", 8, 1) == 1234.56);
    CHECK(textops_number("1,234.56", 8, 0) == 1234.56);
    CHECK(textops_number(" -1.234.567,5 ", 14, 1) == -1234567.5);
    CHECK(textops_number("1234,5", 6, 1) == 1234.5);
    CHECK(textops_number("1e3", 3, 0) == 1000);
    CHECK(textops_number("0.1", 3, 0) == 0.1);
    CHECK(isnan(textops_number("1,5", 3, 0)));
    CHECK(isnan(textops_number("1.5", 3, 1)));
    CHECK(isnan(textops_number("12,34", 5, 0)));
    CHECK(isnan(textops_number("1,2345", 6, 0)));
    CHECK(isnan(textops_number(",123", 4, 0)));
    CHECK(isnan(textops_number("", 0, 0)));
    CHECK(isnan(textops_number("-", 1, 0)));
    CHECK(isnan(textops_number("inf", 3, 0)));
    CHECK(isnan(textops_number("nan", 3, 0)));
    CHECK(isnan(textops_number("0x10", 4, 0)));
    CHECK(isnan(textops_number("1e", 2, 0)));
    CHECK(isnan(textops_number("1e999", 5, 0)));
    CHECK(textops_space_start(" \t a ", 5) == 3);
    CHECK(textops_space_end(" \t a \r\n", 7) == 3);
    CHECK(textops_space_start("   ", 3) == 3);
}

/* Worker processes: frames both ways, a result from each child, a child
 * that dies by a signal reported with its index and signal, stop(). */
static void test_workers(void)
{
    workers w;
    memset(&w, 0, sizeof w);
    char err[256];
    int fd = -1;
    int k = workers_fork(&w, 3, &fd, err, sizeof err);
    if (k > 0) {
        /* a child: ask, get an answer, reply with it and our index */
        char msg[64];
        int n = snprintf(msg, sizeof msg, "hello %d", k);
        workers_child_send(fd, 4, msg, (size_t)n);
        int type;
        char *data;
        size_t len;
        if (workers_child_recv(fd, &type, &data, &len) != 1)
            _exit(3);
        if (k == 2)
            raise(SIGKILL);
        /* a payload bigger than a socket buffer */
        size_t big = 1 << 20;
        char *b = malloc(big);
        memset(b, 'a' + k, big);
        memcpy(b, data, len);
        workers_child_send(fd, type + 1, b, big);
        free(b);
        free(data);
        _exit(k == 3 ? 7 : 0);
    }
    CHECK(k == 0);
    int hellos = 0, results = 0, exits = 0, killed = 0, code7 = 0;
    workers_event ev;
    for (int guard = 0; guard < 1000 && exits < 3; guard++) {
        int r = workers_poll(&w, 5000, &ev, err, sizeof err);
        CHECK(r != -1);
        if (r == WORKERS_MESSAGE && ev.type == 4) {
            char want[32];
            snprintf(want, sizeof want, "hello %d", ev.index);
            CHECK(ev.len == strlen(want) && memcmp(ev.data, want, ev.len) == 0);
            hellos++;
            CHECK(workers_send(&w, ev.index, 8, "go", 2) == 0);
        } else if (r == WORKERS_MESSAGE && ev.type == 9) {
            CHECK(ev.len == (size_t)1 << 20);
            CHECK(memcmp(ev.data, "go", 2) == 0);
            CHECK(ev.data[ev.len - 1] == 'a' + ev.index);
            results++;
        } else if (r == WORKERS_EXIT) {
            exits++;
            if (ev.index == 2 && ev.signal == SIGKILL && ev.exit_code == -1)
                killed++;
            if (ev.index == 3 && ev.exit_code == 7)
                code7++;
        } else if (r == WORKERS_TIMEOUT) {
            break;
        }
    }
    CHECK(hellos == 3);
    CHECK(results == 2);
    CHECK(exits == 3);
    CHECK(killed == 1);
    CHECK(code7 == 1);
    CHECK(workers_running(&w) == 0);
    CHECK(workers_poll(&w, 0, &ev, err, sizeof err) == WORKERS_NONE);
    workers_release(&w);

    /* stop(): a child that ignores nothing and sleeps is ended in time */
    memset(&w, 0, sizeof w);
    k = workers_fork(&w, 2, &fd, err, sizeof err);
    if (k > 0) {
        signal(SIGTERM, SIG_IGN); /* must be killed */
        for (;;)
            pause();
    }
    CHECK(workers_running(&w) == 2);
    usleep(200000); /* time for the children to ignore SIGTERM */
    CHECK(workers_stop(&w, 200) == 2);
    CHECK(workers_running(&w) == 0);
    workers_release(&w);
    CHECK(workers_fork(&w, 0, &fd, err, sizeof err) == -1);
    CHECK_STR(err, "jobs must be from 1 to 256, got 0");
    workers_release(&w);
}

/* CSV cuts: a line end inside quotes is never a cut; counts of lines and
 * records; the header alone; skipped lines; fed a byte at a time. */
static void test_csvcut(void)
{
    const char *csv = "skip me \"\nid,note\n1,\"a\nb\"\n\n2,\"x\"\"\ny\"\r\n3,plain\n4,\"q\"";
    size_t n = strlen(csv);
    csvcut c;
    long long lines = -1, recs = -1;
    csvcut_init(&c, ',', '"', 1);
    /* the skipped line: the scan stops where it ends */
    size_t s0 = csvcut_scan(&c, (const unsigned char *)csv, n, 1, &lines, &recs);
    CHECK(s0 == strlen("skip me \"\n"));
    CHECK(lines == 1 && recs == 0);
    /* the header alone: stops after the first record */
    size_t h = s0 + csvcut_scan(&c, (const unsigned char *)csv + s0, n - s0, 1, &lines, &recs);
    CHECK(h == strlen("skip me \"\nid,note\n"));
    CHECK(lines == 2 && recs == 1);
    /* then every cut, one byte at a time */
    size_t cuts[16];
    long long cl[16], cr[16];
    int nc = 0;
    for (size_t i = h; i < n; i++) {
        size_t k = csvcut_scan(&c, (const unsigned char *)csv + i, 1, 0, &lines, &recs);
        if (k && nc < 16) {
            cuts[nc] = i + k;
            cl[nc] = lines;
            cr[nc] = recs;
            nc++;
        }
    }
    /* after "1,"a\nb"\n", the blank line, "2,..."\r\n" (after its LF,
     * not between CR and LF), "3,plain\n" */
    CHECK(nc == 4);
    if (nc == 4) {
        CHECK(cuts[0] == h + strlen("1,\"a\nb\"\n") && cl[0] == 4 && cr[0] == 2);
        CHECK(cuts[1] == cuts[0] + 1 && cl[1] == 5 && cr[1] == 2);
        CHECK(csv[cuts[2] - 1] == '\n' && csv[cuts[2] - 2] == '\r' && cl[2] == 7 && cr[2] == 3);
        CHECK(cuts[3] == n - strlen("4,\"q\"") && cl[3] == 8 && cr[3] == 4);
    }
    /* the last record has no line end: no cut after it, in_record set */
    CHECK(c.in_record == 1);
    /* the same in one call after the skipped line: the last cut */
    csvcut_init(&c, ',', '"', 1);
    s0 = csvcut_scan(&c, (const unsigned char *)csv, n, 0, &lines, &recs);
    size_t last = s0 + csvcut_scan(&c, (const unsigned char *)csv + s0, n - s0, 0, &lines, &recs);
    CHECK(last == n - strlen("4,\"q\""));
    CHECK(lines == 8 && recs == 4);
    /* a quote inside an unquoted field opens nothing */
    csvcut_init(&c, ';', '\'', 0);
    last = csvcut_scan(&c, (const unsigned char *)"a'b;c\nd;'e\n'\n", 13, 0, &lines, &recs);
    CHECK(last == 13);
    CHECK(recs == 2);
    CHECK(lines == 3);
}

/* pgvector's types: float to half (against the compiler's own _Float16
 * conversion where it has one, and known values), the binary layouts of
 * vector_recv / halfvec_recv / sparsevec_recv / bit_recv, the text, and
 * every refusal. */
static void test_vecenc(void)
{
    int over;
    CHECK(vec_half_of_float(1.0f, &over) == 0x3c00 && !over);
    CHECK(vec_half_of_float(-2.0f, &over) == 0xc000);
    CHECK(vec_half_of_float(0.1f, &over) == 0x2e66);
    CHECK(vec_half_of_float(65504.0f, &over) == 0x7bff && !over);
    CHECK(vec_half_of_float(65519.99f, &over) == 0x7bff && !over);
    CHECK(vec_half_of_float(65520.0f, &over) == 0x7c00 && over);
    CHECK(vec_half_of_float(ldexpf(1, -24), &over) == 0x0001);
    CHECK(vec_half_of_float(ldexpf(1, -25), &over) == 0x0000); /* tie: even */
    CHECK(vec_half_of_float(ldexpf(3, -25), &over) == 0x0002); /* tie: even */
    CHECK(vec_half_of_float(ldexpf(1023, -24) + ldexpf(1, -25), &over) ==
          0x0400); /* the largest subnormal's tie rounds to the smallest normal */
    CHECK(vec_half_of_float(1.0f + ldexpf(1, -11), &over) == 0x3c00);
    CHECK(vec_half_of_float(1.0f + ldexpf(3, -11), &over) == 0x3c02);
#ifdef __FLT16_MAX__
    int same = 1;
    for (uint64_t u = 0; u < 0x100000000ull && same; u += 4099) {
        uint32_t bits = (uint32_t)u;
        float f;
        memcpy(&f, &bits, 4);
        if (isnan(f))
            continue;
        _Float16 h = (_Float16)f;
        uint16_t want;
        memcpy(&want, &h, 2);
        same = vec_half_of_float(f, &over) == want;
        if (!same)
            fprintf(stderr, "half of %a: got %04x, want %04x\n", (double)f,
                    vec_half_of_float(f, &over), want);
    }
    CHECK(same);
#endif
    sbuf b = { 0 };
    size_t bad = 99;
    double x[3] = { 1, 2.5, -3 };
    CHECK(vec_put_f64(&b, VEC_VECTOR, x, 3, 3, &bad) == SL_OK);
    CHECK_STR(hex(&b), "00000010" "00030000" "3f800000" "40200000" "c0400000");
    b.len = 0;
    CHECK(vec_put_f64(&b, VEC_HALFVEC, x, 3, -1, &bad) == SL_OK);
    CHECK_STR(hex(&b), "0000000a" "00030000" "3c00" "4100" "c200");
    b.len = 0;
    float f[2] = { 0.5f, 4.0f };
    CHECK(vec_put_f32(&b, VEC_VECTOR, f, 2, -1, &bad) == SL_OK);
    CHECK_STR(hex(&b), "0000000c" "00020000" "3f000000" "40800000");
    b.len = 0;
    CHECK(vec_put_f64(&b, VEC_VECTOR, x, 3, 4, &bad) == VEC_EDIM);
    CHECK(vec_put_f64(&b, VEC_VECTOR, x, 0, -1, &bad) == VEC_EEMPTY);
    CHECK(vec_put_f64(&b, VEC_VECTOR, x, VEC_MAX_DIM + 1, -1, &bad) ==
          VEC_EMAXDIM);
    double nan3[3] = { 1, NAN, 3 }, inf3[3] = { 1, 2, -INFINITY },
           big3[3] = { 1e39, 0, 0 }, hbig[2] = { 1, 65520 };
    CHECK(vec_put_f64(&b, VEC_VECTOR, nan3, 3, -1, &bad) == VEC_ENAN &&
          bad == 1);
    CHECK(vec_put_f64(&b, VEC_VECTOR, inf3, 3, -1, &bad) == VEC_EINF &&
          bad == 2);
    CHECK(vec_put_f64(&b, VEC_VECTOR, big3, 3, -1, &bad) == SL_ERANGE &&
          bad == 0);
    CHECK(vec_put_f64(&b, VEC_HALFVEC, hbig, 2, -1, &bad) == SL_ERANGE &&
          bad == 1);
    CHECK(b.len == 0); /* nothing written before the checks pass */
    vec_pair p[3] = { { 5, 1 }, { 2, -2 }, { 3, 0 } };
    CHECK(vec_put_sparse(&b, 5, p, 3, -1, &bad) == SL_OK);
    CHECK_STR(hex(&b), "0000001c" "00000005" "00000002" "00000000"
                       "00000001" "00000004" "c0000000" "3f800000");
    b.len = 0;
    vec_pair q[2] = { { 5, 1 }, { 2, -2 } };
    CHECK(vec_text_sparse(&b, 5, q, 2, 5, &bad) == SL_OK);
    sbuf_put_byte(&b, 0);
    CHECK_STR(b.data, "{2:-2,5:1}/5");
    b.len = 0;
    vec_pair d[2] = { { 2, 1 }, { 2, 3 } }, o[1] = { { 6, 1 } };
    CHECK(vec_put_sparse(&b, 5, d, 2, -1, &bad) == VEC_EDUP);
    CHECK(vec_put_sparse(&b, 5, o, 1, -1, &bad) == VEC_EINDEX);
    CHECK(vec_put_sparse(&b, 5, o, 0, 4, &bad) == VEC_EDIM);
    CHECK(vec_put_sparse(&b, 0, o, 0, -1, &bad) == VEC_EEMPTY);
    CHECK(vec_text_f64(&b, VEC_VECTOR, x, 3, -1, &bad) == SL_OK);
    sbuf_put_byte(&b, 0);
    CHECK_STR(b.data, "[1,2.5,-3]");
    b.len = 0;
    CHECK(vec_put_bit_str(&b, "10110", 5, 5, 0, &bad) == SL_OK);
    CHECK_STR(hex(&b), "00000005" "00000005" "b0");
    b.len = 0;
    CHECK(vec_put_bit_str(&b, "X5f", 3, -1, 1, &bad) == SL_OK);
    CHECK_STR(hex(&b), "00000005" "00000008" "5f");
    b.len = 0;
    CHECK(vec_put_bit_str(&b, "1021", 4, -1, 0, &bad) == VEC_EBITDIGIT &&
          bad == 2);
    CHECK(vec_put_bit_str(&b, "101", 3, 4, 0, &bad) == VEC_EBITLEN);
    CHECK(vec_put_bit_str(&b, "10101", 5, 4, 1, &bad) == VEC_EBITLONG);
    char txt[32];
    int exact = 1;
    for (uint64_t u = 1; u < 0x7f800000u && exact; u += 7919) {
        uint32_t bits = (uint32_t)u;
        float v, back;
        memcpy(&v, &bits, 4);
        for (int sgn = 0; sgn < 2; sgn++, v = -v) {
            size_t k = vec_float_text(txt, v);
            txt[k] = '\0';
            back = strtof(txt, NULL);
            if (back != v) {
                exact = 0;
                fprintf(stderr, "float text of %a: %s\n", (double)v, txt);
            }
        }
    }
    CHECK(exact);
    size_t tk = vec_float_text(txt, 0.25f);
    txt[tk] = '\0';
    CHECK_STR(txt, "0.25");
    tk = vec_float_text(txt, 1e-8f);
    txt[tk] = '\0';
    CHECK_STR(txt, "9.99999994e-9"); /* nine digits, not the shortest */
    tk = vec_float_text(txt, 123456.0f);
    txt[tk] = '\0';
    CHECK_STR(txt, "123456");
    tk = vec_float_text(txt, -0.0f);
    txt[tk] = '\0';
    CHECK_STR(txt, "-0");
    vec_pair sp[4];
    int64_t sdim = 0;
    const char *lit = " { 3 : 1.5 , 1:-2 } / 6 ";
    CHECK(vec_parse_sparse(lit, strlen(lit), sp, 4, &sdim) == 2 &&
          sdim == 6 && sp[0].i == 3 && sp[0].v == 1.5 && sp[1].i == 1);
    CHECK(vec_parse_sparse("{}/3", 4, sp, 4, &sdim) == 0 && sdim == 3);
    CHECK(vec_parse_sparse("{1:1}", 5, sp, 4, &sdim) == -1);
    CHECK(vec_parse_sparse("{1:1,}/3", 8, sp, 4, &sdim) == -1);
    CHECK(vec_parse_sparse("{1:1}/3x", 8, sp, 4, &sdim) == -1);
    CHECK(vec_parse_sparse("{1:1e-50}/3", 11, sp, 4, &sdim) == -1);
    float out[4];
    CHECK(vec_parse(" [1, 2.5 ,-3e2] ", 16, out, 4) == 3 && out[2] == -300);
    CHECK(vec_parse("[1,2", 4, out, 4) == -1);
    CHECK(vec_parse("[]", 2, out, 4) == -1);
    CHECK(vec_parse("[1,2,3,4,5]", 11, out, 4) == -1);
    CHECK(vec_parse("[1e39]", 6, out, 4) == -1);
    sbuf_free(&b);
}

int main(void)
{
    test_vecenc();
    test_buffer();
    test_escaping();
    test_numbers();
    test_datetime();
    test_datetime_forms();
    test_textops();
    test_zone_rules();
    test_binary_encoders();
    test_csv();
    test_csv_record();
    test_csv_seek();
    test_csv_libcsv();
    test_redact();
    test_tmpdb_sweep();
    test_copychunk();
    test_workers();
    test_csvcut();
    printf("core: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
