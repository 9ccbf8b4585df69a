/*
 * csvcut.h - where CSV records end, for cutting an input into
 * record-aligned chunks (a parallel load deals them to its workers).
 *
 * Provides: csvcut, a scanner that follows the quote state of the RFC 4180
 * dialect csvread.c reads (a field is quoted when its first byte is the
 * quote; inside, a doubled quote is data; LF, CR or CRLF outside quotes
 * end a record; blank lines are no records) from the start of the input,
 * so a line end inside a quoted field is never taken for a record's end.
 * Why from the start: a reader dropped at an arbitrary byte cannot tell
 * whether it is inside quotes ("a\n1,2\n" is two records, or one field
 * of one), so resynchronising a byte range is a guess; the one pass that
 * knows is the sequential one, and it is cheap (a byte loop, no fields).
 *
 * Malformed input (text after a closing quote, a stray quote in an
 * unquoted field) is not judged here: the scan goes on as csvread goes on
 * or fails, and the worker's reader reports the error with its line.
 *
 * Uses: nothing but the C library; knows nothing about Lua (the binding
 * is in lib_workers.c).
 */
#ifndef SLUICE_CSVCUT_H
#define SLUICE_CSVCUT_H

#include <stddef.h>

typedef struct csvcut {
    unsigned char delim, quote;
    int st;              /* where in a field the scan is */
    int in_record;       /* bytes of a record seen since the last end */
    long long skip_left; /* physical lines still to pass over unread */
    long long lines;     /* LFs seen */
    long long records;   /* records ended */
    unsigned char stop[256]; /* the bytes an unquoted field stops at */
} csvcut;

/* Start a scan: delimiter, quote, and lines to skip first (csvread's
 * opts.skip: those lines are passed over without reading quotes). */
void csvcut_init(csvcut *c, unsigned char delim, unsigned char quote,
                 long long skip);

/* Scan p[0 .. n), going on from the state c is in.  Returns the offset
 * just past the last place in p where a chunk may be cut (after a line end
 * outside quotes, when no skipped line is pending), or 0 if there is none;
 * *lines and *records are then c's counts at that place.  stop_after_records
 * > 0 stops the scan at the end of that many more records (the header);
 * then the returned offset is where the scan stopped.  The scan also stops
 * where the last skipped line ends (returning that place).  Bytes after a
 * returned place that the scan went past are not to be scanned again: c's
 * state is past them. */
size_t csvcut_scan(csvcut *c, const unsigned char *p, size_t n,
                   long long stop_after_records, long long *lines,
                   long long *records);

#endif
