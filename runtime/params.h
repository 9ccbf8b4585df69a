/*
 * params.h - parameter sets for PQsend*Prepared / PQsendQueryParams, kept
 * in one reusable buffer, and the text of multi-row INSERT statements.
 *
 * Provides:
 * - params_buf: many rows of text-format (or binary) parameter values in
 *   one byte buffer plus per-value offset/length/format arrays.  Values
 *   are appended by the binding (lib_params.c) as rows are added; a send
 *   turns a slice of them into the pointer arrays libpq wants with
 *   params_bind().  Every array grows geometrically and is reused across
 *   flushes, so steady-state adds do no malloc at all.
 * - params_values_sql(): "prefix ($1,$2),($3,$4) suffix" for a shape of
 *   nrows x ncols parameters.
 *
 * Offsets, not pointers, are stored per value: the byte buffer may move
 * when it grows, so pointers are only made at bind time.
 *
 * Uses: sbuf.h.  Knows nothing about Lua; never raises;
 * functions return SL_OK or SL_ENOMEM (params_end also SL_ERANGE).
 */
#ifndef SLUICE_PARAMS_H
#define SLUICE_PARAMS_H

#include "sbuf.h"

#include <stddef.h>
#include <stdint.h>

#define PARAMS_MAX 65535 /* PostgreSQL's limit of parameters a statement */
#define PARAMS_NULL ((size_t)-1)

typedef struct params_buf {
    sbuf data;       /* owned: value bytes, each followed by a NUL */
    size_t *off;         /* owned: offset of each value, or PARAMS_NULL */
    int *len;            /* owned: byte length of each value */
    unsigned char *fmt;  /* owned: 0 text, 1 binary, per value */
    size_t n, cap;       /* values stored / room in off, len, fmt */
    const char **ptrs;   /* owned: the pointers of the last params_bind */
    int *lens, *fmts;    /* owned: lengths/formats of the last bind */
    size_t bind_cap;
    sbuf scratch;    /* owned: staging for nested encodings */
} params_buf;

/* Room for `more` values after n (the per-value arrays only; value bytes
 * are reserved as they are written).  SL_OK or SL_ENOMEM. */
int params_reserve(params_buf *p, size_t more);

/* Drop every value at index >= n (and their bytes).  n <= p->n.  Bytes
 * of a value begun but never ended are only dropped when n is 0; use
 * params_rewind() to undo a partly encoded row. */
void params_truncate(params_buf *p, size_t n);

/* Go back to a state recorded earlier: n and len are what p->n and
 * p->data.len were then (n <= p->n, len <= p->data.len).  Drops the
 * values after it and every byte after it, including those of a value
 * begun but never ended (an encoding that failed half-way). */
static inline void params_rewind(params_buf *p, size_t n, size_t len)
{
    p->n = n;
    p->data.len = len;
}

/* Start value p->n: its bytes are appended to p->data next.  Needs
 * params_reserve() room for one value. */
static inline void params_begin(params_buf *p)
{
    p->off[p->n] = p->data.len;
}

/* Finish the value begun by params_begin with format fmt (0 text, 1
 * binary): appends the terminating NUL.  SL_OK, SL_ENOMEM, or
 * SL_ERANGE when the value is longer than INT32_MAX bytes (libpq's
 * lengths are int); the value is then not ended and its bytes stay
 * until the caller rewinds. */
static inline int params_end(params_buf *p, int fmt)
{
    size_t o = p->off[p->n];
    if (p->data.len - o > (size_t)INT32_MAX)
        return SL_ERANGE;
    if (sbuf_reserve(&p->data, 1) != SL_OK)
        return SL_ENOMEM;
    p->len[p->n] = (int)(p->data.len - o);
    p->fmt[p->n] = (unsigned char)fmt;
    sbuf_put_byte(&p->data, 0);
    p->n++;
    return SL_OK;
}

/* Append a NULL value.  Needs params_reserve() room for one value. */
static inline void params_null(params_buf *p)
{
    p->off[p->n] = PARAMS_NULL;
    p->len[p->n] = 0;
    p->fmt[p->n] = 0;
    p->n++;
}

/* Drop values [0, n) and their bytes; the others move to the front
 * (their offsets adjusted).  n <= p->n.  Costs the values kept. */
void params_drop_front(params_buf *p, size_t n);

/* Fill p->ptrs/lens/fmts for values [first, first + n); the pointers stay
 * valid until p->data changes.  SL_OK or SL_ENOMEM. */
int params_bind(params_buf *p, size_t first, size_t n);

/* Free every buffer; p is empty and reusable afterwards. */
void params_free(params_buf *p);

/* Write "<prefix>($1,...,$ncols),(...)...<suffix>" with nrows groups and
 * a terminating NUL into out (replacing its contents).  nrows * ncols
 * must be at most PARAMS_MAX.  SL_OK or SL_ENOMEM. */
int params_values_sql(sbuf *out, const char *prefix, int nrows,
                      int ncols, const char *suffix);

#endif
