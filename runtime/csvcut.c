/*
 * csvcut.c - record ends of CSV bytes, from the start of the input
 * (csvcut.h says why).  A byte loop over four states, the same four
 * csvread.c's parse has: at a field's start, in an unquoted field, in a
 * quoted one, just after a quote inside a quoted one.
 */
#include "csvcut.h"

#include <string.h>

enum { S_FIELD, S_UNQUOTED, S_QUOTED, S_QUOTE_SEEN };

void csvcut_init(csvcut *c, unsigned char delim, unsigned char quote,
                 long long skip)
{
    c->delim = delim;
    c->quote = quote;
    c->st = S_FIELD;
    c->in_record = 0;
    c->skip_left = skip;
    c->lines = 0;
    c->records = 0;
    memset(c->stop, 0, sizeof c->stop);
    c->stop[delim] = c->stop[quote] = c->stop['\n'] = c->stop['\r'] = 1;
}

size_t csvcut_scan(csvcut *c, const unsigned char *p, size_t n,
                   long long stop_after_records, long long *lines,
                   long long *records)
{
    size_t cut = 0;
    long long stop_at = stop_after_records > 0
                            ? c->records + stop_after_records : -1;
    const unsigned char delim = c->delim, quote = c->quote;
    int st = c->st;
    for (size_t i = 0; i < n; i++) {
        unsigned char b = p[i];
        if (c->skip_left > 0) {
            if (b == '\n') {
                c->lines++;
                if (--c->skip_left == 0) {
                    /* the skipped lines end here: stop, so the caller
                     * knows where the input proper begins */
                    *lines = c->lines;
                    *records = c->records;
                    c->st = st;
                    return i + 1;
                }
            }
            continue;
        }
        if (st == S_QUOTED) {
            /* to the closing quote at once, counting the line ends */
            const unsigned char *q = memchr(p + i, quote, n - i);
            size_t e = q ? (size_t)(q - p) : n;
            for (size_t j = i; j < e; j++)
                c->lines += p[j] == '\n';
            if (!q) {
                i = n - 1;
                continue;
            }
            i = e;
            st = S_QUOTE_SEEN;
            continue;
        }
        if (st == S_UNQUOTED && !c->stop[b]) {
            /* the rest of an unquoted field: only a few bytes matter */
            while (i + 1 < n && !c->stop[p[i + 1]])
                i++;
            continue;
        }
        if (b == '\n' || b == '\r') {
            if (b == '\n')
                c->lines++;
            if (c->in_record) {
                c->records++;
                c->in_record = 0;
            }
            st = S_FIELD;
            /* not between a CR and its LF (a CR last in p: not here
             * either), so a chunk's first line is never a CRLF's LF */
            if (b == '\n' || (i + 1 < n && p[i + 1] != '\n')) {
                cut = i + 1;
                *lines = c->lines;
                *records = c->records;
            }
            if (stop_at >= 0 && c->records >= stop_at) {
                /* where the record ends; a CRLF's LF belongs with its CR */
                cut = i + 1;
                *lines = c->lines;
                *records = c->records;
                if (b == '\r' && i + 1 < n && p[i + 1] == '\n') {
                    c->lines++;
                    cut = i + 2;
                    *lines = c->lines;
                }
                c->st = st;
                return cut;
            }
            continue;
        }
        c->in_record = 1;
        if (st == S_QUOTE_SEEN) {
            /* a doubled quote goes on inside the field; else it closed */
            st = b == quote ? S_QUOTED : b == delim ? S_FIELD : S_UNQUOTED;
        } else if (b == delim) {
            st = S_FIELD;
        } else if (st == S_FIELD) {
            st = b == quote ? S_QUOTED : S_UNQUOTED;
        }
    }
    c->st = st;
    return cut;
}
