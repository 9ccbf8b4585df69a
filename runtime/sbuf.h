/*
 * sbuf.h - the project's byte buffer and status codes.
 *
 * Provides: sbuf, one growable byte buffer (geometric growth, reused
 * across flushes and rows; allocation failure is reported, never
 * abort()ed) with big-endian put helpers for wire formats; and the SL_*
 * status codes every core unit returns (COPY streams, batch parameters,
 * the pipeline, the encoders and parsers).
 *
 * Uses: the C library only.  Knows nothing about Lua or libpq.
 */
#ifndef SLUICE_SBUF_H
#define SLUICE_SBUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum {
    SL_OK = 0,
    SL_ENOMEM = -1,      /* out of memory */
    SL_ENUL = -2,        /* a NUL byte where text is expected */
    SL_EINVAL = -3,      /* text that does not parse */
    SL_ERANGE = -4,      /* parses, but out of the type's range */
    SL_EBROKEN = -5,     /* the connection failed (PQerrorMessage) */
    SL_EINTR = -6,       /* an interrupt (Ctrl-C) is pending */
    SL_EFAIL = -7,       /* the server refused (an error PGresult) */
    SL_ENOZONE = -8,     /* a timestamptz string without a UTC offset,
                          * and the session zone's rules were not read */
    SL_ETZRANGE = -9,    /* a UTC offset beyond +-15:59:59 */
    SL_ESERVERONLY = -10, /* date/time text only the server reads (now,
                           * today, time zone names) */
    SL_DONE = 1,         /* copy_out_next: no more rows */
};

typedef struct sbuf {
    char *data;   /* owned, malloc'd; NULL until the first growth */
    size_t len;   /* bytes in use */
    size_t cap;   /* bytes allocated */
} sbuf;

/* Make room for `extra` more bytes after len, growing geometrically
 * (doubling, at least 4 KiB).  Returns SL_OK or SL_ENOMEM (the
 * buffer is unchanged then). */
int sbuf_grow(sbuf *b, size_t extra);

/* Free the storage; the buffer is empty and reusable afterwards. */
void sbuf_free(sbuf *b);

static inline int sbuf_reserve(sbuf *b, size_t extra)
{
    return b->cap - b->len >= extra ? SL_OK : sbuf_grow(b, extra);
}

/* The put_* helpers need room reserved beforehand. */
static inline void sbuf_put_raw(sbuf *b, const void *p, size_t n)
{
    /* n == 0 may come with a buffer never allocated (data NULL), and
     * memcpy's pointers must be valid even for 0 bytes */
    if (n) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
    }
}

static inline void sbuf_put_byte(sbuf *b, int c)
{
    b->data[b->len++] = (char)c;
}

static inline void sbuf_put_be16(sbuf *b, uint16_t v)
{
    unsigned char *p = (unsigned char *)b->data + b->len;
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
    b->len += 2;
}

static inline void sbuf_put_be32(sbuf *b, uint32_t v)
{
    unsigned char *p = (unsigned char *)b->data + b->len;
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
    b->len += 4;
}

static inline void sbuf_put_be64(sbuf *b, uint64_t v)
{
    sbuf_put_be32(b, (uint32_t)(v >> 32));
    sbuf_put_be32(b, (uint32_t)v);
}

/* Overwrite 4 bytes at offset `at` (a length placeholder). */
static inline void sbuf_patch_be32(sbuf *b, size_t at, uint32_t v)
{
    unsigned char *p = (unsigned char *)b->data + at;
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

#endif
