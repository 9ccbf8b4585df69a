/*
 * csvread.c - the streaming CSV reader: read(2) and zlib's inflate below,
 * a scanner over memchr in the middle, one record at a time out.
 *
 * Why not zlib's gzread: at the end of a gzip member it reads on only when
 * the next two bytes are a gzip magic, and ignores anything else after the
 * member ("trailing garbage", zlib.h says) without a word, so a damaged
 * file loaded half of its rows.  fill() below does what gzread does (plain
 * input unchanged; gzip through inflate, member after member, straight
 * into the block) and makes every way the input can stop short an error.
 *
 * How a block becomes records: fill() fills a 128 KiB block; the block
 * is cut into segments that end just after each CR or LF (or at the
 * block's end), and each segment is checked (UTF-8) and then parsed.  A
 * record only ends on a CR or LF, so at most one record can end per
 * segment, and it ends with the segment: we can stop right there and
 * return it, with no queue, and resume at the next segment on the next
 * call.  Segments also give exact physical line numbers (every LF is the
 * last byte of a segment) and byte offsets of record boundaries.
 *
 * The parse (parse_segment) is a state machine of four states (start of
 * a field, unquoted, quoted, a quote seen inside a quoted field) that
 * moves from one byte that matters to the next with memchr: in an
 * unquoted field only the delimiter matters (the segment's end is known),
 * in a quoted one only the quote.  Field bytes are copied into the
 * record's buffer a run at a time; a doubled quote becomes one there.
 * The state survives segment and block ends, so a record may span any
 * number of lines and blocks.  It replaces libcsv, which called back per
 * byte (half the reader's time on a file with a quarter quoted lines) and
 * whose one strict flag refused a stray quote and text after a closing
 * quote alike; the dialect is otherwise libcsv's, set up as it was:
 * malformed quoting is an error with a line number, never silently
 * reinterpreted; an empty unquoted field and "" can be told apart (null =
 * "" makes only the first NULL, as COPY does); spaces are data; an empty
 * line is no record (blank lines are skipped, outside quotes; inside
 * quotes they are data).
 *
 * Stray quotes (opts.stray_quotes): a field is quoted when its first byte
 * is the quote.  In a field that is not, a quote is data, as Python's csv
 * module and most readers take it (5" pipe, 37 deg 36' 37.8" N), or, when
 * the option is off, an error.  (PostgreSQL's COPY reads a quote anywhere
 * in a field as the start of a quoted part, so such a line is one it
 * refuses or joins to the next: sluice reads the value as written.)
 *
 * A record's text (csvread_record) is not copied as it is read: the
 * reader remembers where in the block the record began, and when it ends
 * the text is buf[from .. line end).  Only when a block ends inside a
 * record (or just after its CR, when the next block is peeked at for the
 * LF) are the bytes so far copied to r->text before the block is reused;
 * that is one copy of at most one record per block.
 *
 * The row buffers (field bytes, fields) grow geometrically and are
 * reused, so no allocation per row once warm.
 */
#include "csvread.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Record an error "name:line: message" and enter the failed state.  Raw
 * mode counts no lines, so its messages carry none. */
__attribute__((format(printf, 3, 4)))
static int fail(csvread *r, long long line, const char *fmt, ...)
{
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *name = r->name ? r->name : "?";
    if (r->o.raw || line <= 0)
        snprintf(r->err, sizeof r->err, "%s: %s", name, msg);
    else
        snprintf(r->err, sizeof r->err, "%s:%lld: %s", name, line, msg);
    r->state = CSVREAD_FAILED;
    return -1;
}

static int fail_nomem(csvread *r)
{
    return fail(r, r->line, "out of memory");
}

int csvread_open(csvread *r, const char *path, const csvread_opts *o)
{
    int from_stdin = strcmp(path, "-") == 0;
    r->o = *o;
    r->o.null = NULL;
    r->line = 1;
    r->next_line = 1;
    r->skip0 = o->skip;
    r->is_stdin = from_stdin;
    r->state = CSVREAD_OPEN;
    r->name = strdup(from_stdin ? "stdin" : path);
    if (!r->name)
        return fail_nomem(r);
    if (o->null) {
        r->null = malloc(o->null_len + 1);
        if (!r->null)
            return fail_nomem(r);
        memcpy(r->null, o->null, o->null_len);
        r->null[o->null_len] = '\0';
        r->o.null = r->null;
    }
    r->block = o->block == 0 ? CSVREAD_BLOCK
               : o->block < CSVREAD_MIN_BLOCK ? CSVREAD_MIN_BLOCK : o->block;
    r->buf = malloc(r->block);
    r->in = malloc(r->block);
    if (!r->buf || !r->in)
        return fail_nomem(r);
    if (!o->raw) {
        /* start with room for a typical row; grown when needed */
        r->data_cap = 4096;
        r->fields_cap = 64;
        r->data = malloc(r->data_cap);
        r->fields = malloc(r->fields_cap * sizeof *r->fields);
        if (!r->data || !r->fields)
            return fail_nomem(r);
    }

    /* a dup of stdin, so that closing it leaves the process's standard
     * input open */
    int fd = from_stdin ? fcntl(0, F_DUPFD_CLOEXEC, 0)
                        : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(r->err, sizeof r->err, "cannot open %s: %s", r->name,
                 strerror(errno));
        r->state = CSVREAD_FAILED;
        return -1;
    }
    r->fd = fd;
    r->fd_open = 1;
    return 0;
}

void csvread_release(csvread *r)
{
    if (r->fd_open) {
        close(r->fd);
        r->fd_open = 0;
    }
    if (r->zs_init) {
        inflateEnd(&r->zs);
        r->zs_init = 0;
    }
    free(r->in);
    r->in = NULL;
    free(r->buf);
    free(r->data);
    free(r->fields);
    free(r->name);
    free(r->null);
    free(r->text);
    r->text = NULL;
    r->text_len = r->text_cap = 0;
    r->rec_live = r->rec_ended = r->rec_spilled = 0;
    r->buf = NULL;
    r->data = NULL;
    r->fields = NULL;
    r->name = NULL;
    r->null = NULL;
    r->o.null = NULL;
    r->len = r->pos = 0;
    r->data_len = r->data_cap = r->nfields = r->fields_cap = 0;
}

/* ---------------------------------------------------------------- input */

enum { MODE_UNKNOWN = 0, MODE_PLAIN, MODE_GZIP };

/* Remember an input error for fill() to report once the bytes read before
 * it are used: then r->line is the line where the input stopped. */
__attribute__((format(printf, 2, 3)))
static void set_pend(csvread *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->pend, sizeof r->pend, fmt, ap);
    va_end(ap);
    if (!r->pend[0])
        snprintf(r->pend, sizeof r->pend, "input error");
}

/* The file said end of file.  A regular file that is now shorter than the
 * position reached was cut by another program while it was read: the end
 * is not the real end. */
static int at_input_end(csvread *r)
{
    r->in_eof = 1;
    struct stat st;
    off_t pos = lseek(r->fd, 0, SEEK_CUR);
    if (pos > 0 && fstat(r->fd, &st) == 0 && S_ISREG(st.st_mode) &&
        st.st_size < pos) {
        set_pend(r, "file shrank to %lld bytes while it was read (%lld "
                 "bytes read): another program changed it",
                 (long long)st.st_size, (long long)pos);
        return -1;
    }
    return 0;
}

/* read() into p[0 .. cap).  Returns the byte count, 0 at the end (or a
 * shrunk file: r->pend), -1 on a read error (r->pend).  EINTR is an error
 * too: the only handlers sluice installs are Ctrl-C's, and the callers
 * turn a read error with an interrupt pending into "interrupted". */
static ssize_t read_in(csvread *r, unsigned char *p, size_t cap)
{
    ssize_t n = read(r->fd, p, cap);
    if (n < 0) {
        set_pend(r, "read error: %s", strerror(errno));
        return -1;
    }
    if (n == 0 && at_input_end(r) < 0)
        return -1;
    r->in_bytes += n;
    return n;
}

/* Plain input: fill the block from have on.  Returns the bytes in it. */
static size_t fill_plain(csvread *r, size_t have)
{
    while (have < r->block && !r->in_eof) {
        ssize_t n = read_in(r, r->buf + have, r->block - have);
        if (n < 0)
            break;
        have += (size_t)n;
    }
    if (r->in_eof && !r->pend[0])
        r->at_eof = 1;
    return have;
}

/* Gzip input: more compressed bytes after the avail_in left over.
 * Returns -1 with r->pend set, else 0 (in_eof set at the end). */
static int load_in(csvread *r)
{
    z_stream *z = &r->zs;
    if (z->avail_in)
        memmove(r->in, z->next_in, z->avail_in);
    z->next_in = r->in;
    ssize_t n = read_in(r, r->in + z->avail_in, r->block - z->avail_in);
    if (n < 0)
        return -1;
    z->avail_in += (uInt)n;
    return 0;
}

/* Gzip input: inflate into the whole block, member after member.  Returns
 * the bytes in it; an error found on the way is left in r->pend, the end
 * of the last member at the end of the input sets r->at_eof. */
static size_t fill_gzip(csvread *r)
{
    z_stream *z = &r->zs;
    z->next_out = r->buf;
    z->avail_out = (uInt)r->block;
    while (z->avail_out > 0) {
        if (r->member_end) {
            /* zero padding (tape blocks) is skipped, as gzip(1) and
             * Python's gzip do; the next member starts with its magic */
            while (z->avail_in > 0 && *z->next_in == 0) {
                z->next_in++;
                z->avail_in--;
            }
            if (z->avail_in < 2 && !r->in_eof) {
                if (load_in(r) < 0)
                    break;
                continue;
            }
            if (z->avail_in == 0) {
                r->at_eof = 1;
                break;
            }
            if (z->avail_in >= 2 && z->next_in[0] == 0x1f &&
                z->next_in[1] == 0x8b) {
                inflateReset(z);
                r->member_end = 0;
                continue;
            }
            set_pend(r, "gzip stream is followed by bytes that are not gzip "
                     "(trailing garbage at byte %lld)",
                     r->in_bytes - (long long)z->avail_in);
            break;
        }
        if (z->avail_in == 0 && !r->in_eof) {
            if (load_in(r) < 0)
                break;
            continue;
        }
        int ret = inflate(z, Z_NO_FLUSH);
        if (ret == Z_STREAM_END) {
            r->member_end = 1;
        } else if (ret == Z_BUF_ERROR) {
            /* no progress with room in the block: the input ran out (it
             * is read above whenever it is empty and not over) */
            set_pend(r, "gzip stream is truncated or corrupt: %s",
                     z->avail_in == 0 ? "unexpected end of file"
                                      : "invalid data");
            break;
        } else if (ret == Z_MEM_ERROR) {
            set_pend(r, "out of memory");
            break;
        } else if (ret != Z_OK) {
            set_pend(r, "gzip stream is truncated or corrupt: %s",
                     z->msg ? z->msg : "invalid data");
            break;
        }
    }
    return r->block - z->avail_out;
}

/* The first bytes decide: a gzip magic, or plain input.  Returns the
 * plain bytes already in buf (0 for gzip), with r->mode set, or leaves an
 * error in r->pend. */
static size_t detect(csvread *r)
{
    size_t have = 0;
    while (have < 2 && !r->in_eof) {
        ssize_t n = read_in(r, r->buf + have, r->block - have);
        if (n < 0)
            return have;
        have += (size_t)n;
    }
    if (have < 2 || r->buf[0] != 0x1f || r->buf[1] != 0x8b) {
        r->mode = MODE_PLAIN;
        return have;
    }
    memset(&r->zs, 0, sizeof r->zs);
    if (inflateInit2(&r->zs, 15 + 16) != Z_OK) { /* gzip only */
        set_pend(r, "out of memory");
        return 0;
    }
    r->zs_init = 1;
    memcpy(r->in, r->buf, have);
    r->zs.next_in = r->in;
    r->zs.avail_in = (uInt)have;
    r->mode = MODE_GZIP;
    return 0;
}

/* Read the next block.  Returns 1 (r->pos < r->len), 0 at the end of the
 * input, -1 on a read or gzip error.  The block ends where an error was
 * found; the error is reported by the next call, when the bytes before it
 * have been used (records handed out, or sent). */
static int fill(csvread *r)
{
    for (;;) {
        r->base += (long long)r->len;
        r->len = r->pos = 0;
        if (r->pend[0]) {
            if (strcmp(r->pend, "out of memory") == 0)
                return fail_nomem(r);
            return fail(r, r->line, "%s", r->pend);
        }
        if (r->at_eof)
            return 0;
        size_t n = 0;
        if (r->mode == MODE_UNKNOWN)
            n = detect(r);
        if (r->mode == MODE_PLAIN)
            n = fill_plain(r, n);
        else if (r->mode == MODE_GZIP)
            n = fill_gzip(r);
        r->len = n;
        /* the block is whole unless the input ended, so a BOM is always
         * whole in the first block */
        if (!r->started && n > 0) {
            r->started = 1;
            if (n >= 3 && memcmp(r->buf, "\xEF\xBB\xBF", 3) == 0)
                r->pos = 3;
        }
        if (r->pos < r->len)
            return 1;
    }
}

int csvread_raw(csvread *r, const unsigned char **p, size_t *n)
{
    if (r->state == CSVREAD_DONE)
        return 0;
    if (r->state == CSVREAD_FAILED)
        return -1;
    if (r->pos == r->len) {
        int f = fill(r);
        if (f < 0)
            return -1;
        if (f == 0) {
            r->state = CSVREAD_DONE;
            return 0;
        }
    }
    *p = r->buf + r->pos;
    *n = r->len - r->pos;
    r->pos = r->len;
    r->next_offset = r->base + (long long)r->len;
    return 1;
}

/* ---------------------------------------------------------------- UTF-8 */

/* Check s[0..n) as the continuation of the UTF-8 stream (a sequence may
 * span segments and blocks; its state lives in r->u8_*).  Returns n, or
 * the index of the byte where the stream became invalid; *bad is then the
 * byte to report (the lead byte of a broken sequence: in a Latin-1 file
 * that is the accented letter itself). */
static size_t utf8_scan(csvread *r, const unsigned char *s, size_t n,
                        unsigned *bad)
{
    unsigned need = r->u8_need, lo = r->u8_lo, hi = r->u8_hi;
    size_t i = 0;
    while (i < n) {
        if (need == 0) {
            /* ASCII runs, eight bytes at a time */
            while (i + 8 <= n) {
                uint64_t w;
                memcpy(&w, s + i, 8);
                if (w & 0x8080808080808080ULL)
                    break;
                i += 8;
            }
            if (i == n)
                break;
            unsigned c = s[i];
            if (c < 0x80) {
                i++;
                continue;
            }
            lo = 0x80;
            hi = 0xBF;
            if (c >= 0xC2 && c <= 0xDF) {
                need = 1;
            } else if (c >= 0xE0 && c <= 0xEF) {
                need = 2;
                if (c == 0xE0)
                    lo = 0xA0; /* no overlong forms */
                else if (c == 0xED)
                    hi = 0x9F; /* no surrogates */
            } else if (c >= 0xF0 && c <= 0xF4) {
                need = 3;
                if (c == 0xF0)
                    lo = 0x90;
                else if (c == 0xF4)
                    hi = 0x8F; /* nothing above U+10FFFF */
            } else {
                *bad = c;
                return i;
            }
            r->u8_lead = (unsigned char)c;
            i++;
        } else {
            unsigned c = s[i];
            if (c < lo || c > hi) {
                *bad = r->u8_lead;
                return i;
            }
            need--;
            lo = 0x80;
            hi = 0xBF;
            i++;
        }
    }
    r->u8_need = (unsigned char)need;
    r->u8_lo = (unsigned char)lo;
    r->u8_hi = (unsigned char)hi;
    return n;
}

/* ------------------------------------------------------------- records */

/* Where the parse is in a record (r->pstate): at the start of a field,
 * inside an unquoted one, inside a quoted one, or just after a quote
 * inside a quoted one (the field ends there, or the quote doubles). */
enum { P_FIELD = 0, P_UNQUOTED, P_QUOTED, P_QUOTE_SEEN };

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    size_t c = *cap ? *cap : 16;
    while (c < need) {
        if (c > SIZE_MAX / 2 / elem)
            return -1;
        c *= 2;
    }
    void *q = realloc(*p, c * elem);
    if (!q)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}

/* Does the field data[from .. from+len) match the null text?  An empty
 * field matches null = "" only when it was not quoted. */
static int is_null_text(const csvread *r, size_t from, size_t len,
                        int quoted)
{
    if (!r->o.null)
        return 0;
    if (len == 0)
        return r->o.null_len == 0 && !quoted;
    return len == r->o.null_len && memcmp(r->data + from, r->o.null, len) == 0;
}

/* The field that began at r->fstart ends at data[dl]: add it, and start
 * the next one there.  Returns 0, or -1 when out of memory. */
static inline int end_field(csvread *r, size_t dl)
{
    if (r->nfields == r->fields_cap &&
        grow((void **)&r->fields, &r->fields_cap, r->nfields + 1,
             sizeof *r->fields) < 0)
        return -1;
    csvread_field *f = &r->fields[r->nfields++];
    size_t len = dl - r->fstart;
    f->off = (uint32_t)r->fstart;
    f->len = (uint32_t)len;
    f->is_null = r->o.null ? (uint32_t)is_null_text(r, r->fstart, len,
                                                    r->fquoted)
                           : 0;
    r->fstart = dl;
    r->fquoted = 0;
    return 0;
}

/* A record ended: check its field count and publish its position. */
static int finish_record(csvread *r)
{
    r->in_record = 0;
    if (r->expect == 0) {
        r->expect = r->nfields;
    } else if (r->o.strict && r->nfields != r->expect) {
        return fail(r, r->rec_line, "row has %zu field%s, expected %zu",
                    r->nfields, r->nfields == 1 ? "" : "s", r->expect);
    }
    r->rec_start_line = r->rec_line;
    r->rec_offset = r->rec_begin;
    r->next_offset = r->base + (long long)r->pos;
    r->next_line = r->line;
    return 1;
}

/* A record begins at buf[at]. */
static void begin_text(csvread *r, size_t at)
{
    r->rec_live = 1;
    r->rec_from = at;
    r->rec_begin = r->base + (long long)at;
}

/* The record's bytes up to s[n] are kept in text. */
static int add_text(csvread *r, const unsigned char *s, size_t n)
{
    if (r->text_cap - r->text_len < n &&
        grow((void **)&r->text, &r->text_cap, r->text_len + n, 1) < 0)
        return -1;
    if (n)
        memcpy(r->text + r->text_len, s, n);
    r->text_len += n;
    r->rec_spilled = 1;
    return 0;
}

/* buf is about to be refilled: keep the current record's bytes in it.
 * Only a record that spans blocks (or whose CR ends one) gets here.
 * Returns 0, or -1 with r->err set. */
static int keep_text(csvread *r)
{
    if (!r->rec_live)
        return 0;
    size_t to = r->rec_ended ? r->rec_to : r->len;
    if (add_text(r, r->buf + r->rec_from, to - r->rec_from) < 0)
        return fail_nomem(r);
    r->rec_from = r->rec_to = 0;
    /* text holds quotes and delimiters too, so allow it some more */
    if (r->text_len > 2 * CSVREAD_MAX_RECORD)
        return fail(r, r->rec_line, "record larger than %zu MiB (an "
                    "unclosed quote?)", CSVREAD_MAX_RECORD >> 20);
    return 0;
}

int csvread_record(csvread *r, const char **p, size_t *n)
{
    if (!r->rec_ended || !r->buf)
        return -1;
    if (!r->rec_spilled) {
        *p = (const char *)r->buf + r->rec_from;
        *n = r->rec_to - r->rec_from;
        return 0;
    }
    if (r->rec_to > r->rec_from) {
        if (add_text(r, r->buf + r->rec_from, r->rec_to - r->rec_from) < 0)
            return -1;
        r->rec_from = r->rec_to;
    }
    *p = r->text;
    *n = r->text_len;
    return 0;
}

/* The input ended: a last record without a line end ends here. */
static int at_end(csvread *r)
{
    if (r->u8_need)
        return fail(r, r->line, "invalid UTF-8 (byte 0x%02X); use "
                    "encoding = false to read it anyway", r->u8_lead);
    if (!r->in_record) {
        r->state = CSVREAD_DONE;
        return 0;
    }
    if (r->pstate == P_QUOTED)
        return fail(r, r->rec_line, "malformed quoting (quoted field not "
                    "closed at the end of the file)");
    if (end_field(r, r->data_len) < 0)
        return fail_nomem(r);
    r->rec_to = r->pos; /* no line end: the input's end */
    r->rec_ended = 1;
    return finish_record(r);
}

/* A line that opts.skip leaves out: not CSV, no quotes, no checks. */
static void skip_line(csvread *r, unsigned char *s, unsigned char *e)
{
    unsigned char *nl = memchr(s, '\n', (size_t)(e - s));
    if (!nl) {
        r->pos = r->len;
        return;
    }
    r->pos = (size_t)(nl + 1 - r->buf);
    r->o.skip--;
    r->line++;
}

/* Parse the segment s[0 .. n), which ends just after a CR or LF (term) or
 * at the end of the block, continuing the record in progress.  Returns 1
 * when the record ended with the segment (at its CR or LF), 0 when it goes
 * on in the next segment, -1 on an error (r->err).  The field bytes go to
 * r->data, one run at a time: a segment adds at most n bytes and n + 1
 * fields, so room is made once, here. */
static int parse_segment(csvread *r, const unsigned char *s, size_t n,
                         int term)
{
    if (r->data_cap - r->data_len < n &&
        grow((void **)&r->data, &r->data_cap, r->data_len + n, 1) < 0)
        return fail_nomem(r);
    const unsigned char delim = r->o.delim, quote = r->o.quote;
    /* end: the line end (outside quotes it ends the record), or the
     * segment's end */
    const unsigned char *p = s, *stop = s + n, *end = stop - (term ? 1 : 0);
    char *d = r->data;
    size_t dl = r->data_len;
    int st = r->pstate;
    for (;;) {
        if (st == P_FIELD) {
            if (p == end)
                break;
            if (*p == quote) {
                r->fquoted = 1;
                st = P_QUOTED;
                p++;
                continue;
            }
            st = P_UNQUOTED;
        }
        if (st == P_UNQUOTED) {
            const unsigned char *q = memchr(p, delim, (size_t)(end - p));
            const unsigned char *fe = q ? q : end;
            if (!r->o.stray_quotes && memchr(p, quote, (size_t)(fe - p))) {
                r->data_len = dl;
                return fail(r, r->line, "malformed quoting (a quote inside "
                            "an unquoted field)");
            }
            memcpy(d + dl, p, (size_t)(fe - p));
            dl += (size_t)(fe - p);
            if (!q) {
                p = end;
                break;
            }
            if (end_field(r, dl) < 0)
                return fail_nomem(r);
            p = q + 1;
            st = P_FIELD;
        } else if (st == P_QUOTED) {
            /* line ends are data here: the segment's last byte too */
            const unsigned char *q = memchr(p, quote, (size_t)(stop - p));
            const unsigned char *fe = q ? q : stop;
            memcpy(d + dl, p, (size_t)(fe - p));
            dl += (size_t)(fe - p);
            if (!q) {
                r->data_len = dl;
                r->pstate = st;
                return 0;
            }
            p = q + 1;
            st = P_QUOTE_SEEN;
        } else { /* P_QUOTE_SEEN: the quote closes the field, or doubles */
            if (p == end)
                break;
            if (*p == quote) {
                d[dl++] = (char)quote;
                st = P_QUOTED;
            } else if (*p == delim) {
                if (end_field(r, dl) < 0)
                    return fail_nomem(r);
                st = P_FIELD;
            } else {
                r->data_len = dl;
                return fail(r, r->line, "malformed quoting (text after a "
                            "closing quote)");
            }
            p++;
        }
    }
    /* p == end: the line end, or the block's end inside a field */
    r->data_len = dl;
    if (!term) {
        r->pstate = st;
        return 0;
    }
    if (end_field(r, dl) < 0)
        return fail_nomem(r);
    r->pstate = P_FIELD;
    return 1;
}

/* A record ended on a CR: take the LF of a CRLF along, so next_offset
 * points past the line end; a CR alone ends the line too (a file whose
 * lines end in CR), so the line is counted either way.  When the CR ends
 * the block, peek into the next one: the record is already copied out of
 * buf, and a read error recorded by fill() is reported by the next
 * call. */
static int take_lf(csvread *r)
{
    if (r->pos == r->len) {
        if (keep_text(r) < 0)
            return -1;
        fill(r);
    }
    if (r->pos < r->len && r->buf[r->pos] == '\n')
        r->pos++;
    r->line++;
    return 0;
}

int csvread_next(csvread *r)
{
    if (r->state == CSVREAD_DONE)
        return 0;
    if (r->state == CSVREAD_FAILED)
        return -1;
    r->nfields = 0;
    r->data_len = 0;
    r->fstart = 0;
    r->text_len = 0;
    r->rec_live = r->rec_ended = r->rec_spilled = 0;
    for (;;) {
        if (r->pos == r->len) {
            if (keep_text(r) < 0)
                return -1;
            int f = fill(r);
            if (f < 0)
                return -1;
            if (f == 0)
                return at_end(r);
        }
        unsigned char *s = r->buf + r->pos, *e = r->buf + r->len;
        if (r->o.skip > 0) {
            skip_line(r, s, e);
            continue;
        }
        /* the segment ends at the first CR or LF (glibc's memchr is far
         * faster than a byte loop; lines rarely hold a CR but at the end) */
        unsigned char *p = memchr(s, '\n', (size_t)(e - s));
        if (!p)
            p = e;
        unsigned char *cr = memchr(s, '\r', (size_t)(p - s));
        if (cr)
            p = cr;
        int term = p < e;
        size_t n = (size_t)(p - s) + (size_t)term;
        /* a segment that is not just a line end starts a record when none
         * is open: that is the record's first line; a line end alone
         * there is a blank line */
        if (!r->in_record && (n > 1 || !term)) {
            r->in_record = 1;
            r->rec_line = r->line;
            r->pstate = P_FIELD;
            r->fquoted = 0;
            begin_text(r, (size_t)(s - r->buf));
        }
        if (r->o.check_utf8) {
            unsigned bad = 0;
            if (utf8_scan(r, s, n, &bad) != n)
                return fail(r, r->line, "invalid UTF-8 (byte 0x%02X); use "
                            "encoding = false to read it anyway", bad);
        }
        int ended = 0;
        if (r->in_record) {
            ended = parse_segment(r, s, n, term);
            if (ended < 0)
                return -1;
            if (r->data_len > CSVREAD_MAX_RECORD)
                return fail(r, r->rec_line, "record larger than %zu MiB (an "
                            "unclosed quote?)", CSVREAD_MAX_RECORD >> 20);
        }
        r->pos += n;
        if (term && *p == '\n')
            r->line++;
        if (ended) {
            r->rec_to = (size_t)(p - r->buf); /* the line end */
            r->rec_ended = 1;
            if (*p == '\r' && take_lf(r) < 0)
                return -1;
            return finish_record(r);
        }
    }
}

/* ------------------------------------------------------------ positions */

/* Refuse a seek before anything moved: the reader stays as it was. */
__attribute__((format(printf, 2, 3)))
static int refuse(csvread *r, const char *fmt, ...)
{
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(r->err, sizeof r->err, "%s: %s", r->name ? r->name : "?", msg);
    return -1;
}

/* Back to byte 0 of the file with the input state of a fresh reader. */
static int rewind_input(csvread *r)
{
    if (lseek(r->fd, 0, SEEK_SET) < 0)
        return fail(r, 0, "cannot seek: %s", strerror(errno));
    if (r->zs_init) {
        inflateEnd(&r->zs);
        r->zs_init = 0;
    }
    r->mode = MODE_UNKNOWN;
    r->base = 0;
    r->len = r->pos = 0;
    r->started = r->at_eof = r->in_eof = r->member_end = 0;
    r->in_bytes = 0;
    r->pend[0] = '\0';
    return 0;
}

/* Forget the record in progress: the parser starts afresh. */
static void reset_parse(csvread *r)
{
    r->in_record = 0;
    r->pstate = P_FIELD;
    r->fquoted = 0;
    r->fstart = 0;
    r->u8_need = 0;
    r->nfields = r->data_len = 0;
    r->text_len = 0;
    r->rec_live = r->rec_ended = r->rec_spilled = 0;
}

static int bad_position(csvread *r, long long off)
{
    return fail(r, 0, "position %lld is not where a record starts (a "
                "position of another file, or of this one before it "
                "changed?)", off);
}

int csvread_seek(csvread *r, long long off, long long line, size_t expect)
{
    if (r->o.raw)
        return refuse(r, "cannot seek in raw mode");
    if (r->is_stdin)
        return refuse(r, "cannot seek in standard input (a position can "
                      "only be gone back to in a file)");
    if (!r->fd_open || !r->buf)
        return refuse(r, "cannot seek: the reader is closed");
    if (off < 0 || line < 1)
        return refuse(r, "invalid position (offset %lld, line %lld)", off,
                      line);
    struct stat st;
    if (fstat(r->fd, &st) < 0 || !S_ISREG(st.st_mode))
        return refuse(r, "cannot seek: not a regular file");

    int was_failed = r->state == CSVREAD_FAILED;
    reset_parse(r);
    r->state = CSVREAD_OPEN;
    r->err[0] = '\0';
    r->line = 0; /* no line in the messages of a failed seek */
    if (off == 0) {
        /* the start: the BOM and opts.skip as for a fresh reader */
        if (rewind_input(r) < 0)
            return -1;
        r->o.skip = r->skip0;
    } else {
        r->o.skip = 0;
        /* go to the byte before off, which must end a line */
        long long t = off - 1;
        if (was_failed || r->mode == MODE_UNKNOWN ||
            (r->mode == MODE_GZIP && t < r->base)) {
            if (rewind_input(r) < 0)
                return -1;
        }
        if (r->mode == MODE_UNKNOWN) {
            int f = fill(r); /* the first block tells plain from gzip */
            if (f < 0)
                return -1;
        }
        if (r->mode == MODE_PLAIN && (t < r->base ||
                                      t >= r->base + (long long)r->len)) {
            if (off > (long long)st.st_size)
                return fail(r, 0, "position %lld is past the end of the "
                            "input (%lld bytes)", off,
                            (long long)st.st_size);
            /* from the start of t's block: the blocks are where an
             * uninterrupted read has them, so the record is cut into the
             * same segments and a record with two faults reports the
             * same one (UTF-8 is checked a segment ahead of parsing) */
            long long b0 = t - t % (long long)r->block;
            if (lseek(r->fd, (off_t)b0, SEEK_SET) < 0)
                return fail(r, 0, "cannot seek: %s", strerror(errno));
            r->base = b0;
            r->len = r->pos = 0;
            r->started = 1; /* the BOM: t is after it, or it is refused */
            r->at_eof = r->in_eof = 0;
            r->in_bytes = b0;
            r->pend[0] = '\0';
        }
        /* gzip, or plain past its end: read on, dropping blocks */
        while (t >= r->base + (long long)r->len) {
            int f = fill(r);
            if (f < 0)
                return -1;
            if (f == 0)
                return fail(r, 0, "position %lld is past the end of the "
                            "input (%lld bytes%s)", off, r->base,
                            r->mode == MODE_GZIP ? " decompressed" : "");
        }
        /* (a BOM's bytes end no line: a position inside it is refused
         * below) */
        size_t at = (size_t)(t - r->base);
        unsigned char c = r->buf[at];
        r->pos = at + 1;
        if (c == '\r' && r->pos < r->len && r->buf[r->pos] == '\n')
            return bad_position(r, off); /* between CR and LF */
        if (c != '\n' && c != '\r') {
            /* only the input's end may follow a last record without a
             * line end */
            if (r->pos < r->len)
                return bad_position(r, off);
            int f = fill(r);
            if (f < 0)
                return -1;
            if (f > 0)
                return bad_position(r, off);
        }
    }
    r->line = line;
    r->next_line = line;
    r->next_offset = off;
    r->rec_offset = off;
    r->rec_start_line = 0;
    r->expect = expect;
    return 0;
}

#define IDENTITY_BYTES (64 * 1024)

int csvread_identity(const csvread *r, const char *path, char *out,
                     size_t cap)
{
    if (r->is_stdin) {
        snprintf(out, cap, "stdin: standard input has no identity (a "
                 "position can only be gone back to in a file)");
        return -1;
    }
    int fd = r->fd_open ? r->fd : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(out, cap, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    unsigned char *b = malloc(IDENTITY_BYTES);
    struct stat st;
    int rc = -1;
    if (!b) {
        snprintf(out, cap, "%s: out of memory", path);
    } else if (fstat(fd, &st) < 0) {
        snprintf(out, cap, "%s: %s", path, strerror(errno));
    } else {
        /* pread: the reader's own file offset stays where it is */
        size_t have = 0;
        int err = 0;
        while (have < IDENTITY_BYTES) {
            ssize_t n = pread(fd, b + have, IDENTITY_BYTES - have,
                              (off_t)have);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                err = errno;
            if (n <= 0)
                break;
            have += (size_t)n;
        }
        if (err) {
            snprintf(out, cap, "%s: read error: %s", path, strerror(err));
        } else {
            uLong crc = crc32(crc32(0L, Z_NULL, 0), b, (uInt)have);
            snprintf(out, cap, "size=%lld mtime=%lld.%09ld crc32=%08lx",
                     (long long)st.st_size, (long long)st.st_mtim.tv_sec,
                     (long)st.st_mtim.tv_nsec, (unsigned long)crc);
            rc = 0;
        }
    }
    free(b);
    if (!r->fd_open)
        close(fd);
    return rc;
}
