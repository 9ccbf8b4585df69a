/*
 * csvdiff.h - the CSV reader (runtime/csvread.c) checked against libcsv,
 * the reader it replaced: the same bytes through both must give the same
 * records, field for field, NULL for NULL, or both must refuse them.
 *
 * Used by tests/core/core_test.c (the fixtures and RFC 4180's corner
 * cases, in `make test`) and tests/fuzz/csvdiff.c (any bytes).  libcsv is
 * a test dependency only: the project does not link it.
 *
 * The shared dialect, and how each side is set up for it:
 * - libcsv: CSV_STRICT | CSV_STRICT_FINI (malformed quoting and a quote
 *   open at the end are errors), CSV_EMPTY_IS_NULL (an empty unquoted
 *   field reaches the callback as a NULL pointer, "" as an empty string),
 *   no space function (spaces are data); an empty line is no record.
 * - csvread: strict = 0 (ragged rows are records), stray_quotes = 0
 *   (libcsv's strict mode refuses a quote inside an unquoted field too),
 *   check_utf8 = 0, null = "" (an empty unquoted field is NULL).
 * - A leading UTF-8 BOM: csvread drops it, libcsv reads it as data, so
 *   libcsv is given the bytes after it.
 * Where the two differ on purpose they are not compared: with stray
 * quotes allowed (the default of sluice.csv), only csvread's own model in
 * tests/fuzz/csvread.c checks the result.
 *
 * Uses: libcsv, csvread, a file descriptor the caller supplies (memfd).
 */
#ifndef SLUICE_TESTS_CSVDIFF_H
#define SLUICE_TESTS_CSVDIFF_H

#include "csvread.h"

#include <csv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One side's reading, flattened: every field as a tag byte ('N' NULL,
 * 'S' a string) + 4-byte length + bytes, a record ending in 'R'; then
 * whether it ended in an error. */
typedef struct csvdiff_out {
    unsigned char *p;
    size_t n, cap;
    size_t done;  /* transcript bytes of the records that ended */
    int failed;
} csvdiff_out;

static void csvdiff_put(csvdiff_out *o, const void *s, size_t n)
{
    if (o->n + n > o->cap) {
        size_t cap = o->cap ? o->cap : 256;
        while (cap < o->n + n)
            cap *= 2;
        unsigned char *p = realloc(o->p, cap);
        if (!p)
            abort();
        o->p = p;
        o->cap = cap;
    }
    if (n)
        memcpy(o->p + o->n, s, n);
    o->n += n;
}

static void csvdiff_field(csvdiff_out *o, const char *s, size_t len, int is_null)
{
    unsigned char tag = is_null ? 'N' : 'S';
    unsigned char l[4] = { (unsigned char)(len >> 24), (unsigned char)(len >> 16),
                           (unsigned char)(len >> 8), (unsigned char)len };
    csvdiff_put(o, &tag, 1);
    csvdiff_put(o, l, 4);
    if (!is_null)
        csvdiff_put(o, s, len);
}

static void csvdiff_on_field(void *s, size_t len, void *data)
{
    csvdiff_field(data, s, len, s == NULL);
}

static void csvdiff_on_row(int c, void *data)
{
    (void)c;
    csvdiff_out *o = data;
    unsigned char tag = 'R';
    csvdiff_put(o, &tag, 1);
    o->done = o->n;
}

static int csvdiff_never_space(unsigned char c)
{
    (void)c;
    return 0;
}

/* libcsv's reading of s[0 .. n). */
static void csvdiff_libcsv(const unsigned char *s, size_t n, unsigned char delim,
                           unsigned char quote, csvdiff_out *o)
{
    struct csv_parser p;
    if (n >= 3 && s[0] == 0xEF && s[1] == 0xBB && s[2] == 0xBF) {
        s += 3;
        n -= 3;
    }
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_EMPTY_IS_NULL) != 0)
        abort();
    csv_set_delim(&p, delim);
    csv_set_quote(&p, quote);
    csv_set_space_func(&p, csvdiff_never_space);
    o->failed = csv_parse(&p, s, n, csvdiff_on_field, csvdiff_on_row, o) != n;
    if (!o->failed)
        o->failed = csv_fini(&p, csvdiff_on_field, csvdiff_on_row, o) != 0;
    csv_free(&p);
}

/* csvread's reading of the file at path (the same bytes), in blocks of
 * `block` bytes (0: the reader's own). */
static void csvdiff_csvread(const char *path, unsigned char delim, unsigned char quote,
                            size_t block, csvdiff_out *o)
{
    csvread_opts opts = { .delim = delim, .quote = quote, .strict = 0, .stray_quotes = 0,
                          .check_utf8 = 0, .null = "", .null_len = 0, .block = block };
    csvread r;
    memset(&r, 0, sizeof r);
    int rc = csvread_open(&r, path, &opts);
    while (rc >= 0 && (rc = csvread_next(&r)) == 1) {
        for (size_t i = 0; i < r.nfields; i++)
            csvdiff_field(o, r.data + r.fields[i].off, r.fields[i].len,
                          (int)r.fields[i].is_null);
        csvdiff_on_row(0, o);
    }
    o->failed = rc < 0;
    csvread_release(&r);
}

/* Both readings of s[0 .. n) (written to the file fd, opened by csvread
 * as path); returns NULL when they agree, else a static description. */
static const char *csvdiff_compare(const unsigned char *s, size_t n, unsigned char delim,
                                   unsigned char quote, size_t block, int fd,
                                   const char *path)
{
    static char why[160];
    csvdiff_out a = { 0 }, b = { 0 };
    if (ftruncate(fd, 0) != 0 || pwrite(fd, s, n, 0) != (ssize_t)n)
        abort();
    csvdiff_libcsv(s, n, delim, quote, &a);
    csvdiff_csvread(path, delim, quote, block, &b);
    const char *res = NULL;
    if (a.failed != b.failed) {
        snprintf(why, sizeof why, "libcsv %s, csvread %s", a.failed ? "refused" : "read it",
                 b.failed ? "refused" : "read it");
        res = why;
    } else if (a.done != b.done || (a.done && memcmp(a.p, b.p, a.done) != 0)) {
        /* the records that ended (both read all, or both refused the
         * same record: a record cut by the error is not compared) */
        size_t i = 0;
        while (i < a.done && i < b.done && a.p[i] == b.p[i])
            i++;
        snprintf(why, sizeof why, "records differ at byte %zu of their transcripts "
                 "(libcsv %zu bytes, csvread %zu)", i, a.done, b.done);
        res = why;
    }
    free(a.p);
    free(b.p);
    return res;
}

#endif
