/*
 * csvread.h - a streaming CSV reader over plain or gzip input.
 *
 * Provides: csvread, a reader that pulls one record at a time out of a file
 * (or stdin) in the RFC 4180 dialect, with the physical line and byte
 * offset of every record, strict field counts, UTF-8 checking and precise
 * error messages ("data.csv:17: row has 4 fields, expected 3"); and a raw
 * mode that only hands out the decompressed bytes in large blocks (for
 * COPY pass-through); and positions: where the next record starts (byte
 * offset in the decompressed input, line, expected field count), which a
 * reader of the same file, in this process or another, can seek to.
 *
 * Uses: read(2), zlib's inflate and the C library (memchr does the
 * scanning).  Gzip is recognised by its first two bytes (anything else is
 * read unchanged); every member of a multi-member file is read, zero
 * padding between and after members is skipped (as gzip(1) does), and
 * anything else after a member (trailing garbage), a member cut short or
 * damaged, a read error, and a regular file that shrinks while it is read
 * are errors: the reader never ends early without saying why.  (zlib's
 * gzread would stop quietly at trailing garbage.)  Knows nothing about
 * Lua: the binding is lib_csv.c.
 *
 * Ownership: a csvread lives inside its owner's memory (a Lua userdata), is
 * zeroed before csvread_open(), and every resource it acquires is freed by
 * the one routine csvread_release(), which is safe on a zeroed, a partly
 * opened, a failed or an already released reader.  No function here calls
 * back into the caller, so a caller's error handling (longjmp) never runs
 * through zlib frames.
 *
 * Dialect notes (see the .c file for why):
 * - spaces are data (RFC 4180), never trimmed;
 * - blank lines are skipped, so a one-column file cannot express an empty
 *   value with an empty line;
 * - a record ends at LF, CRLF or a lone CR, but only LF counts as a line;
 * - a field is quoted when its first byte is the quote; in a field that
 *   is not, a quote is data (5" pipe) when opts.stray_quotes is set, else
 *   an error;
 * - text after a closing quote, and a quote still open at the end of the
 *   file, are errors, never a guess.
 */
#ifndef SLUICE_CSVREAD_H
#define SLUICE_CSVREAD_H

#include <stddef.h>
#include <stdint.h>
#include <zlib.h>


/* Size of one read (decompressed bytes). */
#define CSVREAD_BLOCK (128 * 1024)

/* The smallest block csvread_opts.block may ask for (a BOM must fit in the
 * first block). */
#define CSVREAD_MIN_BLOCK 4

/* A record larger than this is an error (an unclosed quote would otherwise
 * swallow the rest of the file into memory); PostgreSQL's own limit for
 * one field is 1 GB.  Field offsets and lengths are 32-bit: a record's
 * field bytes stay below this plus one block. */
#define CSVREAD_MAX_RECORD ((size_t)1 << 30)

typedef struct csvread_opts {
    unsigned char delim;   /* field delimiter, ',' */
    unsigned char quote;   /* quote character, '"' */
    int strict;            /* field count must match the first record's */
    int stray_quotes;      /* a quote inside an unquoted field is data
                              (else an error) */
    int check_utf8;        /* invalid UTF-8 is an error */
    long long skip;        /* physical lines to skip before the first record */
    const char *null;      /* field text meaning NULL, or NULL for none;
                              "" means: an unquoted empty field */
    size_t null_len;
    int raw;               /* raw mode: no parsing, see csvread_raw() */
    size_t block;          /* size of one read: 0 for CSVREAD_BLOCK; tests
                              set small ones (at least CSVREAD_MIN_BLOCK)
                              to put block boundaries everywhere */
} csvread_opts;

/* One field of the current record: data[off .. off+len) of the record's
 * buffer; is_null when it matched opts.null.  (32-bit, so that the Lua
 * binding reads them through the FFI as plain numbers.) */
typedef struct csvread_field {
    uint32_t off, len;
    uint32_t is_null;
} csvread_field;

enum { CSVREAD_OPEN = 0, CSVREAD_DONE, CSVREAD_FAILED };

typedef struct csvread {
    /* resources: released by csvread_release() */
    int fd;                        /* the input, valid when fd_open */
    int fd_open;
    z_stream zs;                   /* gzip input: the inflater (zs_init) */
    int zs_init;
    unsigned char *in;             /* gzip input: compressed bytes */
    unsigned char *buf;            /* one block of decompressed input */
    char *data;                    /* field bytes of the current record */
    csvread_field *fields;         /* fields of the current record */
    char *name;                    /* for messages: the path, or "stdin" */
    char *null;                    /* copy of opts.null */
    char *text;                    /* the record's text, when it spans
                                      blocks (see csvread_record) */

    /* settings */
    csvread_opts o;

    /* input position */
    size_t block;                  /* size of buf and in */
    size_t len, pos;               /* bytes in buf, next byte to use */
    long long base;                /* stream offset of buf[0] */
    int started;                   /* first block read (BOM handled) */
    int at_eof;                    /* the input is over, all of it read */
    int mode;                      /* not known yet, plain or gzip */
    int in_eof;                    /* read() returned 0 */
    long long in_bytes;            /* bytes read from the input */
    int is_stdin;                  /* the input is standard input */
    int member_end;                /* a gzip member ended: next, another
                                      member, zero padding or the end */
    char pend[256];                /* an input error found while filling a
                                      block, reported once its bytes are
                                      used (so with the right line) */

    /* parsing state */
    size_t data_len, data_cap, nfields, fields_cap;
    size_t expect;                 /* field count of the first record */
    long long skip0;               /* opts.skip as given (a seek to 0
                                      skips those lines again) */
    long long line;                /* physical line of the next byte */
    long long rec_line;            /* line where the current record began */
    int in_record;                 /* bytes of a record seen, not ended */
    int pstate;                    /* where in a field the parse is */
    int fquoted;                   /* the current field began with a quote */
    size_t fstart;                 /* its first byte in data */
    unsigned char u8_need, u8_lo, u8_hi; /* UTF-8 sequence in progress: */
    unsigned char u8_lead;         /* bytes still needed, their range, lead */

    /* the current record's text: its bytes in buf[rec_from .. rec_to)
     * (.. len while it goes on), after the text[0 .. text_len) kept from
     * earlier blocks; copied only when a block ends inside the record */
    size_t rec_from, rec_to, text_len, text_cap;
    int rec_live;                  /* a record began (this call) */
    int rec_ended;                 /* it ended at rec_to */
    int rec_spilled;               /* part of it is in text */
    long long rec_begin;           /* stream offset where it began */

    /* results, readable after release */
    int state;                     /* CSVREAD_OPEN, _DONE or _FAILED */
    long long rec_start_line;      /* line of the last record returned */
    long long next_offset;         /* offset where the next record starts */
    long long next_line;           /* the line it starts on */
    long long rec_offset;          /* offset where the last record began */
    char err[512];                 /* message when state is CSVREAD_FAILED */
} csvread;

/* Open path ("-" = standard input, which stays open) for reading.  r must
 * be zeroed memory; o is copied (o->null too).  Returns 0, or -1 with the
 * message in r->err ("cannot open x.csv: No such file or directory"); in
 * both cases csvread_release(r) frees what was acquired.  Reads nothing
 * yet.  In raw mode only o->raw matters. */
int csvread_open(csvread *r, const char *path, const csvread_opts *o);

/* Parse the next record.  Returns 1 with the record's fields in
 * r->fields[0 .. r->nfields) and their bytes in r->data (valid until the
 * next call), 0 at the end of the input, -1 on an error (message in r->err,
 * "name:line: what").  After 0 or -1 every later call returns the same, and
 * the reader's resources may be released.  Not for raw mode. */
int csvread_next(csvread *r);

/* The text of the record the last csvread_next() returned, exactly as it
 * is in the (decompressed) input: from its first byte to its line end, not
 * included (LF, CRLF or CR), quotes and the line ends of quoted fields
 * kept, a leading BOM not part of it.  Call only after csvread_next()
 * returned 1 and before any other call on r.  Returns 0 with the bytes in
 * *p, *n (valid until the next call on r), or -1 when there is no such
 * record (released, or not after a record) or out of memory.  Costs
 * nothing until called, unless the record spans blocks: then its earlier
 * pieces are copied as the blocks end. */
int csvread_record(csvread *r, const char **p, size_t *n);

/* Raw mode: hand out the next run of decompressed input (a leading UTF-8
 * BOM removed) in *p, *n; valid until the next call.  Returns 1, 0 at the
 * end, -1 on an error (message in r->err, e.g. a truncated gzip stream). */
int csvread_raw(csvread *r, const unsigned char **p, size_t *n);

/* Go to a position of this input: offset and line are a record's
 * next_offset and next_line (or 0 and 1: the start), expect the field
 * count the records must have (r->expect then; 0: set by the next
 * record).  The next csvread_next() returns the record that starts
 * there, with the line numbers an uninterrupted read would give.  Plain
 * files seek with lseek(); gzip input is decompressed from its start (or
 * from the current block, when the offset is ahead of it) and the bytes
 * before the offset dropped.  The byte before offset must end a line (or
 * offset be the end of the input), else the position is refused.
 * Returns 0, or -1 with the message in r->err: when the reader cannot
 * seek at all (standard input, not a regular file, released, raw mode)
 * it is left as it was; when the position is bad (past the end, not
 * after a line end) or the input fails on the way (damaged gzip), it is
 * failed (CSVREAD_FAILED) like after a read error.  Not for raw mode. */
int csvread_seek(csvread *r, long long offset, long long line, size_t expect);

/* An identity of the open input, for telling whether a later reader reads
 * the same file: "size=<bytes> mtime=<seconds>.<nanoseconds>
 * crc32=<8 hex digits>", the checksum of the file's first 64 KiB as
 * stored (compressed bytes for a gzip file).  Uses the open file; when
 * the reader was released, opens path again.  Returns 0 with the text in
 * out (cap bytes), or -1 with the message in out (standard input, a file
 * that cannot be read); changes nothing in r. */
int csvread_identity(const csvread *r, const char *path, char *out,
                     size_t cap);

/* Free every resource (file, parser, buffers); keeps state, err,
 * rec_start_line, rec_offset, next_offset and next_line readable.
 * Idempotent. */
void csvread_release(csvread *r);

#endif
