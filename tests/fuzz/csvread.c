/*
 * csvread.c - libFuzzer target: the streaming CSV reader (csvread.h),
 * its scanner in every state, plain and gzip, records and raw mode,
 * across its 128 KiB blocks.
 *
 * The input: 7 bytes of options, the NULL text, then the CSV body
 * (layout below).  The stream is the body, or (F_BIG) a long line that
 * opts.skip skips and then copies of the body, so that the first block
 * ends inside them at an offset the input chooses (a few bytes in, or
 * some 8 KiB: records larger than the reader's first buffers).  It is
 * read
 * - plain, and checked against a model of the dialect written here from
 *   csvread.h (RFC 4180, text after a closing quote an error, a quote
 *   inside an unquoted field data or an error as opts.stray_quotes
 *   says, blank lines skipped, CR, LF or CRLF ending a record and a line
 *   (a CR or LF inside quotes: only the LF counts as a line), a leading
 *   BOM dropped, UTF-8 checked per segment, i.e. up to each CR or LF or
 *   block end, before its bytes are parsed): the same records, fields,
 *   NULLs, line numbers, offsets, and the same error at the same line;
 * - gzip-compressed (one member, or two with optional zero padding): the
 *   same records and error; damaged (cut short, trailing garbage): a
 *   prefix of the records, then an error, never a quiet end;
 * - plain again with a small block (4 to 35 bytes, from byte 1), unless
 *   F_BIG: every record split across blocks somewhere, the same
 *   transcript as the model's for that block size;
 * - in every read, each record's text (csvread_record) is the stream's
 *   bytes from where the model saw the record begin to its line end (not
 *   included), and rec_offset is where it began;
 * - in raw mode, plain and gzip: exactly the stream, minus a BOM;
 * - its records written back as CSV, every field quoted: the same
 *   fields again;
 * - positions (plain, small blocks, gzip): read up to a record the input
 *   picks (or the end), take the position, read the rest; a fresh reader
 *   that seeks there reads exactly that rest (records, lines, offsets,
 *   the error), and so does the same reader seeking there again after
 *   its end.
 * A crash, a leak (libFuzzer's leak check) or any difference aborts.
 *
 * The reader opens a path: the bytes go to a memfd, opened again as
 * /proc/self/fd/N.
 */
#define _GNU_SOURCE /* memfd_create */
#include "fuzz.h"

#include "csvread.h"
#include "numfmt.h"
#include "sbuf.h"

#include <stdarg.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

/* Input layout. */
enum {
    F_STRICT = 1,      /* flags: opts.strict */
    F_UTF8 = 2,        /* opts.check_utf8 */
    F_NULL = 4,        /* opts.null given (its length from the misc byte) */
    F_CHARS = 8,       /* delimiter and quote from bytes 4 and 5 */
    F_TWO = 16,        /* gzip: two members, split at byte 2's fraction */
    F_PAD = 32,        /* gzip: zero padding after each member */
    F_BIG = 64,        /* the body across the first 128 KiB block
                          boundary, at an offset from byte 1 */
    F_DAMAGE = 128,    /* gzip: cut short, or trailing garbage */
    M_STRAY = 1,       /* mode byte: opts.stray_quotes */
    HEADER = 7,        /* flags; rep: block offset (F_BIG), damage kind;
                          split: member split, cut; misc: skip (bits 0-1),
                          NULL length (2-4), stored gzip (5), padding
                          (6-7); delimiter; quote; mode */
};

#define NULL_MAX 4

/* The harness's own plumbing (transcripts) runs per byte of big inputs:
 * no coverage feedback from it (it would only slow libFuzzer down). */
#define PLUMBING __attribute__((no_sanitize("coverage")))

static int memfd = -1;
static char path[64];

/* Put bytes in the memfd; returns the path that opens them. */
static const char *put_file(const void *p, size_t n)
{
    if (memfd < 0) {
        memfd = memfd_create("fuzz-csv", MFD_CLOEXEC);
        if (memfd < 0) {
            perror("memfd_create");
            abort();
        }
        snprintf(path, sizeof path, "/proc/self/fd/%d", memfd);
    }
    if (ftruncate(memfd, 0) != 0 || pwrite(memfd, p, n, 0) != (ssize_t)n) {
        perror("memfd write");
        abort();
    }
    return path;
}

PLUMBING static void put(sbuf *b, const void *p, size_t n)
{
    if (sbuf_reserve(b, n) != SL_OK)
        abort();
    sbuf_put_raw(b, p, n);
}

/* A number, a letter: the transcripts' framing (printf is too slow for
 * the thousands of fields of a big input). */
PLUMBING static void put_num(sbuf *b, long long v, char tag)
{
    char tmp[NUMFMT_BUFSIZE + 1];
    size_t k = numfmt_int64(tmp, v);
    tmp[k++] = tag;
    put(b, tmp, k);
}

__attribute__((format(printf, 2, 3)))
static void putf(sbuf *b, const char *fmt, ...)
{
    char tmp[600];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    put(b, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}

/* ------------------------------------------------------------ the model
 *
 * The transcript of a read: each record as
 * "R<line>@<start>-<end of text>-<next offset>:" (when positions are
 * kept), its fields as " <len><N or v><bytes>", a newline;
 * then "D" at the end or "E<:line: message>" on an error. */

enum { ROW_START, FIELD_START, UNQUOTED, QUOTED, QUOTE_SEEN };

typedef struct model {
    const csvread_opts *o;
    sbuf *out;
    sbuf field;            /* the field being read */
    sbuf rec;              /* the record's fields, in transcript form */
    size_t nfields, expect;
    long long rec_line;
    long long at, rec_start;   /* offset of the byte stepped, of the record */
    int state, quoted;
} model;

/* The first byte where s[from..n) stops being UTF-8 (Unicode's table of
 * well-formed byte sequences), n when it ends inside a sequence, or
 * SIZE_MAX; *bad gets the byte the reader names: the lead byte. */
static size_t utf8_first_bad(const unsigned char *s, size_t from, size_t n,
                             unsigned *bad)
{
    size_t i = from;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        unsigned len, lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF)
            len = 2;
        else if (c >= 0xE0 && c <= 0xEF)
            len = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        else if (c >= 0xF0 && c <= 0xF4)
            len = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        else {
            *bad = c;
            return i;
        }
        for (unsigned k = 1; k < len; k++) {
            if (i + k >= n) {
                *bad = c;
                return n;
            }
            unsigned d = s[i + k];
            if (d < (k == 1 ? lo : 0x80) || d > (k == 1 ? hi : 0xBF)) {
                *bad = c;
                return i + k;
            }
        }
        i += len;
    }
    return SIZE_MAX;
}

PLUMBING static void end_field(model *m)
{
    const csvread_opts *o = m->o;
    size_t len = m->field.len;
    int null = 0;
    if (o->null) {
        if (o->null_len == 0)
            null = len == 0 && !m->quoted;
        else
            null = len == o->null_len &&
                   memcmp(m->field.data, o->null, len) == 0;
    }
    put(&m->rec, " ", 1);
    put_num(&m->rec, (long long)len, null ? 'N' : 'v');
    put(&m->rec, m->field.data, len);
    m->field.len = 0;
    m->quoted = 0;
    m->nfields++;
}

/* A record ended, its text at end (its line end, or the stream's end);
 * the next record starts at offset next.  0, or -1 when its field count
 * is wrong (the error is in the transcript). */
static int end_record(model *m, long long end, long long next)
{
    m->state = ROW_START;
    if (m->expect == 0) {
        m->expect = m->nfields;
    } else if (m->o->strict && m->nfields != m->expect) {
        putf(m->out, "E:%lld: row has %zu field%s, expected %zu", m->rec_line,
             m->nfields, m->nfields == 1 ? "" : "s", m->expect);
        return -1;
    }
    put(m->out, "R", 1);
    put_num(m->out, m->rec_line, '@');
    put_num(m->out, m->rec_start, '-');
    put_num(m->out, end, '-');
    put_num(m->out, next, ':');
    put(m->out, m->rec.data, m->rec.len);
    put(m->out, "\n", 1);
    m->rec.len = 0;
    m->nfields = 0;
    return 0;
}

/* One byte of the dialect.  Returns 1 when it ended a record, 0, or -1 on
 * a quoting error (in the transcript). */
static int step(model *m, unsigned char c, long long line)
{
    const csvread_opts *o = m->o;
    int eol = c == '\r' || c == '\n';
    switch (m->state) {
    case ROW_START:
        if (eol)
            return 0; /* a blank line */
        m->rec_line = line;
        m->rec_start = m->at;
        m->state = FIELD_START;
        /* fall through */
    case FIELD_START:
        if (c == o->delim) {
            end_field(m);
        } else if (eol) {
            end_field(m);
            return 1;
        } else if (c == o->quote) {
            m->state = QUOTED;
            m->quoted = 1;
        } else {
            m->state = UNQUOTED;
            put(&m->field, &c, 1);
        }
        return 0;
    case UNQUOTED:
        if (c == o->delim) {
            end_field(m);
            m->state = FIELD_START;
        } else if (eol) {
            end_field(m);
            return 1;
        } else if (c == o->quote && !o->stray_quotes) {
            putf(m->out, "E:%lld: malformed quoting (a quote inside an "
                 "unquoted field)", line);
            return -1;
        } else { /* a stray quote is data when stray_quotes */
            put(&m->field, &c, 1);
        }
        return 0;
    case QUOTED:
        if (c == o->quote)
            m->state = QUOTE_SEEN;
        else
            put(&m->field, &c, 1);
        return 0;
    default: /* QUOTE_SEEN */
        if (c == o->quote) {
            put(&m->field, &c, 1);
            m->state = QUOTED;
        } else if (c == o->delim) {
            end_field(m);
            m->state = FIELD_START;
        } else if (eol) {
            end_field(m);
            return 1;
        } else {
            putf(m->out, "E:%lld: malformed quoting (text after a closing "
                 "quote)", line);
            return -1;
        }
        return 0;
    }
}

/* What csvread_next must give for the stream s[0..n), read in blocks of
 * block bytes. */
static sbuf model_field, model_rec; /* kept for the next run */

static void model_read(const unsigned char *s, size_t n,
                       const csvread_opts *o, size_t block, sbuf *out)
{
    model m = { .o = o, .out = out, .state = ROW_START,
                .field = model_field, .rec = model_rec };
    size_t pos = n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    long long line = 1;
    for (long long skip = o->skip; skip > 0 && pos < n; skip--) {
        const unsigned char *nl = memchr(s + pos, '\n', n - pos);
        pos = nl ? (size_t)(nl - s) + 1 : n;
        line += nl != NULL;
    }
    unsigned bad = 0;
    size_t first_bad = o->check_utf8 ? utf8_first_bad(s, pos, n, &bad)
                                     : SIZE_MAX;
    const char *utf8_msg = "invalid UTF-8 (byte 0x%02X); use encoding = "
                           "false to read it anyway";
    while (pos < n) {
        /* a segment: up to and with the next CR or LF, within a block */
        size_t lim = (pos / block + 1) * block;
        if (lim > n)
            lim = n;
        size_t e = pos;
        while (e < lim && s[e] != '\r' && s[e] != '\n')
            e++;
        size_t end = e < lim ? e + 1 : lim;
        if (first_bad < end) {
            putf(out, "E:%lld: ", line);
            putf(out, utf8_msg, bad);
            goto done;
        }
        int ended = 0;
        for (size_t i = pos; i < end; i++) {
            m.at = (long long)i;
            int r = step(&m, s[i], line);
            if (r < 0)
                goto done;
            if (r > 0) {
                FUZZ_CHECK(i == end - 1, "model: record ends mid-segment");
                ended = 1;
            }
        }
        pos = end;
        if (s[end - 1] == '\n')
            line++;
        if (ended) {
            /* a record ended on a CR: its LF (if any) goes with it, and
             * the CR, alone or not, ends the line */
            if (s[end - 1] == '\r') {
                if (pos < n && s[pos] == '\n')
                    pos++;
                line++;
            }
            if (end_record(&m, (long long)end - 1, (long long)pos) < 0)
                goto done;
        }
    }
    if (first_bad == n) {
        putf(out, "E:%lld: ", line);
        putf(out, utf8_msg, bad);
    } else if (m.state == QUOTED) {
        putf(out, "E:%lld: malformed quoting (quoted field not closed at the "
             "end of the file)", m.rec_line);
    } else {
        if (m.state != ROW_START) {
            end_field(&m);
            if (end_record(&m, (long long)n, (long long)n) < 0)
                goto done;
        }
        put(out, "D", 1);
    }
done:
    m.field.len = m.rec.len = 0;
    model_field = m.field;
    model_rec = m.rec;
}

/* ------------------------------------------------------------- readers */

/* Every record r hands out from where it is, in transcript form (with
 * positions), then "D" or "E<error>".  Each record's text must be its
 * bytes in the stream s[0..n).  Returns csvread_next's last answer;
 * leaves r unreleased. */
static int transcribe(csvread *r, const char *p, const unsigned char *s,
                      size_t n, sbuf *out)
{
    int rc;
    while ((rc = csvread_next(r)) == 1) {
        const char *t;
        size_t tn;
        FUZZ_CHECK(csvread_record(r, &t, &tn) == 0, "csvread_record");
        long long at = r->rec_offset;
        FUZZ_CHECK(at >= 0 && (size_t)at <= n && tn <= n - (size_t)at &&
                   memcmp(t, s + at, tn) == 0,
                   "record text (%zu bytes at %lld) is not the stream's",
                   tn, at);
        const char *t2;
        size_t tn2;
        FUZZ_CHECK(csvread_record(r, &t2, &tn2) == 0 && tn2 == tn &&
                   memcmp(t2, t, tn) == 0, "record text changed");
        put(out, "R", 1);
        put_num(out, r->rec_start_line, '@');
        put_num(out, at, '-');
        put_num(out, at + (long long)tn, '-');
        put_num(out, r->next_offset, ':');
        for (size_t i = 0; i < r->nfields; i++) {
            const csvread_field *f = &r->fields[i];
            put(out, " ", 1);
            put_num(out, (long long)f->len, f->is_null ? 'N' : 'v');
            put(out, r->data + f->off, f->len);
        }
        put(out, "\n", 1);
    }
    FUZZ_CHECK(rc == 0 || rc == -1, "csvread_next: %d", rc);
    FUZZ_CHECK((rc == 0 && r->state == CSVREAD_DONE) ||
               (rc == -1 && r->state == CSVREAD_FAILED),
               "state %d after %d", r->state, rc);
    FUZZ_CHECK(csvread_next(r) == rc, "a second end differs");
    if (rc == 0) {
        put(out, "D", 1);
    } else {
        size_t k = strlen(p);
        FUZZ_CHECK(strncmp(r->err, p, k) == 0, "error without the name: %s",
                   r->err);
        putf(out, "E%s", r->err + k);
    }
    return rc;
}

/* Every record of the file at p, whose (decompressed) stream is
 * s[0..n), in transcript form (with positions).  Returns csvread_next's
 * last answer. */
static int read_records(const char *p, const unsigned char *s, size_t n,
                        const csvread_opts *o, sbuf *out)
{
    csvread r;
    memset(&r, 0, sizeof r);
    int rc = csvread_open(&r, p, o);
    FUZZ_CHECK(rc == 0, "csvread_open: %s", r.err);
    rc = transcribe(&r, p, s, n, out);
    csvread_release(&r);
    csvread_release(&r); /* idempotent */
    return rc;
}

static void same(const char *what, const sbuf *want, const sbuf *got);
static size_t transcript_records(const sbuf *t);

/* Positions: read k records of the file at p, take the position, read
 * the rest; a fresh reader that seeks there reads exactly that rest
 * (records, lines, offsets, the error), and so does the same reader
 * when it seeks there again after its end. */
static void check_seek(const char *p, const unsigned char *s, size_t n,
                       const csvread_opts *o, size_t k, sbuf *want,
                       sbuf *got)
{
    csvread r;
    memset(&r, 0, sizeof r);
    FUZZ_CHECK(csvread_open(&r, p, o) == 0, "csvread_open: %s", r.err);
    for (size_t i = 0; i < k && csvread_next(&r) == 1; i++)
        ;
    long long off = r.next_offset, line = r.next_line;
    size_t expect = r.expect;
    transcribe(&r, p, s, n, want);
    csvread_release(&r);

    memset(&r, 0, sizeof r);
    FUZZ_CHECK(csvread_open(&r, p, o) == 0, "csvread_open: %s", r.err);
    for (int pass = 0; pass < 2; pass++) {
        got->len = 0;
        FUZZ_CHECK(csvread_seek(&r, off, line, expect) == 0,
                   "seek to %lld (line %lld, record %zu): %s", off, line, k,
                   r.err);
        transcribe(&r, p, s, n, got);
        same(pass ? "seek again after the end" : "seek in a fresh reader",
             want, got);
    }
    csvread_release(&r);
}

/* Raw mode: exactly the stream's bytes, minus a leading BOM; or, when
 * damaged, a prefix of them and then an error. */
static void check_raw(const char *p, const unsigned char *s, size_t n,
                      int damaged)
{
    csvread_opts o = { .raw = 1 };
    csvread r;
    memset(&r, 0, sizeof r);
    FUZZ_CHECK(csvread_open(&r, p, &o) == 0, "csvread_open: %s", r.err);
    size_t at = n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    const unsigned char *q;
    size_t k;
    int rc;
    int first = 1;
    while ((rc = csvread_raw(&r, &q, &k)) == 1) {
        /* a damaged stream may end inside the BOM: those bytes cannot be
         * told from the start of a BOM, so they come as they are */
        if (first && damaged && at == 3 && k < 3 && memcmp(q, s, k) == 0)
            at = 0;
        first = 0;
        FUZZ_CHECK(k > 0 && k <= n - at && memcmp(q, s + at, k) == 0,
                   "raw: %zu bytes at %zu differ", k, at);
        at += k;
    }
    if (damaged)
        FUZZ_CHECK(rc == -1 && r.err[0], "raw: damaged gzip read to the end");
    else
        FUZZ_CHECK(rc == 0 && at == n, "raw: %d after %zu of %zu bytes: %s",
                   rc, at, n, r.err);
    FUZZ_CHECK(csvread_raw(&r, &q, &k) == rc, "raw: a second end differs");
    csvread_release(&r);
}

static void show_diff(const char *what, const sbuf *want, const sbuf *got)
{
    size_t i = 0;
    while (i < want->len && i < got->len && want->data[i] == got->data[i])
        i++;
    size_t from = i > 200 ? i - 200 : 0;
    fprintf(stderr, "%s: transcripts differ at byte %zu\n  want: %.*s\n"
            "  got:  %.*s\n", what, i,
            (int)((want->len - from) < 400 ? want->len - from : 400),
            want->data + from,
            (int)((got->len - from) < 400 ? got->len - from : 400),
            got->data + from);
}

PLUMBING static void same(const char *what, const sbuf *want, const sbuf *got)
{
    if (want->len == got->len &&
        (want->len == 0 || memcmp(want->data, got->data, want->len) == 0))
        return;
    show_diff(what, want, got);
    abort();
}

/* ---------------------------------------------------------------- gzip */

/* Append s[0..n) as one gzip member. */
static void gzip_member(sbuf *out, const unsigned char *s, size_t n, int level)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    /* a small window and hash: zlib's default state is ~256 KiB of
     * fresh memory per call under ASan; the reader inflates any window */
    if (deflateInit2(&z, level, Z_DEFLATED, 10 + 16, 1,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        abort();
    size_t cap = deflateBound(&z, (uLong)n) + 64;
    if (sbuf_reserve(out, cap) != SL_OK)
        abort();
    z.next_in = (unsigned char *)s;
    z.avail_in = (uInt)n;
    z.next_out = (unsigned char *)out->data + out->len;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END)
        abort();
    out->len += cap - z.avail_out;
    deflateEnd(&z);
}

/* Records of the records-transcript t up to (not with) the end line. */
PLUMBING static size_t transcript_records(const sbuf *t)
{
    /* the last line is "D" or "E..."; records are the lines before */
    size_t k = t->len;
    while (k > 0 && t->data[k - 1] != '\n')
        k--;
    return k;
}

/* --------------------------------------------------------- round trip */

/* The records of transcript t (with positions) as CSV: every field
 * quoted, quotes doubled, but an unquoted empty NULL kept unquoted. */
PLUMBING static void rewrite(const sbuf *t, const csvread_opts *o, sbuf *csv)
{
    size_t i = 0, end = transcript_records(t);
    while (i < end) {
        /* R<line>@<start>-<end>-<next>: */
        while (t->data[i] != ' ')
            i++;
        int first = 1;
        while (t->data[i] == ' ') {
            char *q;
            size_t len = strtoul(t->data + i + 1, &q, 10);
            int null = *q == 'N';
            const char *f = q + 1;
            if (!first)
                put(csv, &o->delim, 1);
            first = 0;
            if (!(null && len == 0)) {
                put(csv, &o->quote, 1);
                for (size_t k = 0; k < len; k++) {
                    if ((unsigned char)f[k] == o->quote)
                        put(csv, &o->quote, 1);
                    put(csv, f + k, 1);
                }
                put(csv, &o->quote, 1);
            }
            i = (size_t)(f + len - t->data);
        }
        FUZZ_CHECK(t->data[i] == '\n', "transcript");
        put(csv, "\n", 1);
        i++;
    }
}

/* A transcript without positions: "R...@..." dropped. */
PLUMBING static void strip_pos(const sbuf *t, sbuf *out)
{
    size_t i = 0, end = transcript_records(t);
    while (i < end) {
        while (t->data[i] != ' ')
            i++;
        size_t j = i;
        while (t->data[j] == ' ') {
            char *q;
            size_t len = strtoul(t->data + j + 1, &q, 10);
            j = (size_t)(q + 1 + len - t->data);
        }
        put(out, t->data + i, j + 1 - i);
        i = j + 1;
    }
}

/* ----------------------------------------------------------- the target */

/* The buffers of one run, kept (emptied) for the next: a big input's
 * transcripts are megabytes, and fresh memory for them each run (page
 * faults, ASan's quarantine) cost more than the reading itself. */
enum { B_STREAM, B_WANT, B_GOT, B_GZ, B_GOT_GZ, B_DMG, B_CSV, B_AGAIN, B_A,
       B_B, B_COUNT };
static sbuf bufs[B_COUNT];

static sbuf *empty(int which)
{
    bufs[which].len = 0;
    return &bufs[which];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < HEADER)
        return 0;
    unsigned flags = data[0], rep = data[1], split = data[2], misc = data[3];
    csvread_opts o = { .delim = ',', .quote = '"' };
    o.strict = (flags & F_STRICT) != 0;
    o.check_utf8 = (flags & F_UTF8) != 0;
    o.stray_quotes = (data[6] & M_STRAY) != 0;
    o.skip = misc & 3;
    if (flags & F_CHARS) {
        /* what the binding (lib_csv.c) lets through */
        unsigned d = data[4], q = data[5];
        if (d != '\r' && d != '\n' && q != '\r' && q != '\n' && d != q &&
            !(o.check_utf8 && (d >= 0x80 || q >= 0x80))) {
            o.delim = (unsigned char)d;
            o.quote = (unsigned char)q;
        }
    }
    size_t at = HEADER;
    if (flags & F_NULL) {
        size_t k = (misc >> 2) & 7;
        if (k > NULL_MAX)
            k = NULL_MAX;
        if (k > size - at)
            k = size - at;
        o.null = (const char *)data + at;
        o.null_len = k;
        at += k;
    }
    const unsigned char *body = data + at;
    size_t blen = size - at;

    /* the stream */
    sbuf *st = empty(B_STREAM);
    put(st, "", 0);
    if ((flags & F_BIG) && blen > 0) {
        /* a line that opts.skip skips (cheaply), long enough that the
         * first block ends off bytes into the body's copies after it;
         * with rep's top bit, 8 KiB more on each side: records larger
         * than the reader's first buffers (4 KiB, 64 fields) */
        size_t more = rep & 0x80 ? 8192 : 0;
        size_t off = (rep & 0x7F) * blen / 64 + more;
        if (off > CSVREAD_BLOCK / 2)
            off = CSVREAD_BLOCK / 2;
        size_t fill = CSVREAD_BLOCK - off - 1;
        if (sbuf_reserve(st, fill + 1) != SL_OK)
            abort();
        memset(st->data, 'x', fill);
        st->data[fill] = '\n';
        st->len = fill + 1;
        o.skip++;
        for (size_t i = 0; i < (off + more) / blen + 2; i++)
            put(st, body, blen);
    } else {
        put(st, body, blen);
    }
    const unsigned char *s = (const unsigned char *)st->data;
    size_t n = st->len;
    if (!s)
        s = (const unsigned char *)"";

    sbuf *want = empty(B_WANT), *got = empty(B_GOT), *gz = empty(B_GZ),
         *got_gz = empty(B_GOT_GZ);
    model_read(s, n, &o, CSVREAD_BLOCK, want);

    /* plain (unless the stream starts like gzip: then it is read as
     * gzip, and fails) */
    int plain_gzip = n >= 2 && s[0] == 0x1f && s[1] == 0x8b;
    read_records(put_file(s, n), s, n, &o, got);
    /* the record to seek to: any, or the end (line ends in the model's
     * transcript: one per record, and those inside fields) */
    size_t nrec = 0;
    for (size_t i = 0; i < transcript_records(want); i++)
        nrec += want->data[i] == '\n';
    size_t seek_at = ((size_t)rep * 257 + split) % (nrec + 2);
    if (!plain_gzip)
        check_seek(path, s, n, &o, seek_at, empty(B_A), empty(B_B));
    /* raw mode: of the plain file or (below) the gzip one; each open
     * costs two fresh 128 KiB blocks, the slow part of a small input */
    int raw_gz = split & 1;
    if (!plain_gzip) {
        same("plain read vs model", want, got);
        if (!raw_gz)
            check_raw(path, s, n, 0);
        if (!(flags & F_BIG)) {
            /* small blocks: records split everywhere */
            csvread_opts os = o;
            os.block = CSVREAD_MIN_BLOCK + (rep >> 3) % 32;
            sbuf *want_s = empty(B_A), *got_s = empty(B_B);
            model_read(s, n, &os, os.block, want_s);
            read_records(path, s, n, &os, got_s);
            same("small blocks: plain read vs model", want_s, got_s);
            check_seek(path, s, n, &os, seek_at, empty(B_A), empty(B_B));
        }
    }

    /* gzip: one member, or two split at split/256 of the stream, each
     * maybe followed by zero padding */
    int level = (misc >> 5) & 1 ? 0 : 1;
    size_t pad = flags & F_PAD ? 1 + (misc >> 6) : 0;
    size_t cut = flags & F_TWO ? n * split / 256 : n;
    gzip_member(gz, s, cut, level);
    size_t end1 = gz->len, end2 = 0;
    put(gz, "\0\0\0\0", pad);
    if (flags & F_TWO) {
        gzip_member(gz, s + cut, n - cut, level);
        end2 = gz->len;
        put(gz, "\0\0\0\0", pad);
    }
    read_records(put_file(gz->data, gz->len), s, n, &o, got_gz);
    same("gzip read vs model", want, got_gz);
    check_seek(path, s, n, &o, seek_at, empty(B_A), empty(B_B));
    if (raw_gz)
        check_raw(path, s, n, 0);

    /* damaged gzip: a prefix of the records, then an error */
    if (flags & F_DAMAGE) {
        int valid = 0;
        if (rep & 1) {
            /* cut short; but cut at the end of a member or in its
             * padding it is a shorter file, and below 2 bytes not gzip */
            size_t len = gz->len * split / 256;
            valid = len < 2 || (len >= end1 && len <= end1 + pad) ||
                    (end2 && len >= end2);
            gz->len = len;
        } else {
            put(gz, &"\x01\x1f\x8b\xff"[rep >> 1 & 3], 1);
        }
        if (!valid) {
            sbuf *dmg = empty(B_DMG), *a = empty(B_A), *b = empty(B_B);
            int drc = read_records(put_file(gz->data, gz->len), s, n, &o, dmg);
            FUZZ_CHECK(drc == -1, "damaged gzip read to the end");
            /* positions aside: a record ended by a CR just before the
             * damage ends there, without the LF that followed it */
            strip_pos(dmg, a);
            strip_pos(got_gz, b);
            FUZZ_CHECK(a->len <= b->len && (a->len == 0 ||
                       memcmp(a->data, b->data, a->len) == 0),
                       "damaged gzip: its records are not a prefix");
            check_raw(path, s, n, 1);
        }
    }

    /* round trip: the records written back, every field quoted (unless
     * the rewritten file could start with a BOM or a gzip magic) */
    if (o.delim != 0xEF && o.quote != 0xEF && o.delim != 0x1F &&
        o.quote != 0x1F) {
        sbuf *csv = empty(B_CSV), *again = empty(B_AGAIN), *a = empty(B_A),
             *b = empty(B_B);
        rewrite(got_gz, &o, csv);
        put(csv, "", 0);
        csvread_opts o2 = o;
        o2.skip = 0;
        int rc2 = read_records(put_file(csv->data, csv->len),
                               (const unsigned char *)csv->data, csv->len,
                               &o2, again);
        FUZZ_CHECK(rc2 == 0, "the rewritten records fail: %.*s",
                   (int)(again->len < 300 ? again->len : 300), again->data);
        strip_pos(got_gz, a);
        strip_pos(again, b);
        same("round trip", a, b);
    }
    return 0;
}
