/*
 * params.c - reusable parameter buffers and multi-row INSERT text (see
 * params.h).
 */
#include "params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Grow one array to hold `want` elements of `size` bytes, doubling. */
static int grow_array(void **a, size_t *cap, size_t want, size_t size)
{
    if (*cap >= want)
        return SL_OK;
    size_t c = *cap ? *cap : 256;
    while (c < want)
        c *= 2;
    void *q = realloc(*a, c * size);
    if (!q)
        return SL_ENOMEM;
    *a = q;
    return SL_OK;
}

int params_reserve(params_buf *p, size_t more)
{
    size_t want = p->n + more;
    if (want <= p->cap)
        return SL_OK;
    size_t c1 = p->cap, c2 = p->cap, c3 = p->cap;
    /* each array keeps its own capacity until all three have grown, so a
     * failure half-way leaves every array at least p->cap long */
    if (grow_array((void **)&p->off, &c1, want, sizeof *p->off) ||
        grow_array((void **)&p->len, &c2, want, sizeof *p->len) ||
        grow_array((void **)&p->fmt, &c3, want, sizeof *p->fmt))
        return SL_ENOMEM;
    size_t c = p->cap ? p->cap : 256;
    while (c < want)
        c *= 2;
    p->cap = c;
    return SL_OK;
}

void params_truncate(params_buf *p, size_t n)
{
    if (n == 0) { /* also the bytes of a value begun but not ended */
        p->n = 0;
        p->data.len = 0;
        return;
    }
    if (n >= p->n)
        return;
    /* the bytes end where the first dropped non-NULL value began */
    for (size_t i = n; i < p->n; i++) {
        if (p->off[i] != PARAMS_NULL) {
            p->data.len = p->off[i];
            break;
        }
    }
    p->n = n;
}

void params_drop_front(params_buf *p, size_t n)
{
    if (n == 0)
        return;
    if (n >= p->n) {
        params_truncate(p, 0);
        return;
    }
    /* the kept bytes begin at the first kept value that is not NULL */
    size_t start = p->data.len;
    for (size_t i = n; i < p->n; i++) {
        if (p->off[i] != PARAMS_NULL) {
            start = p->off[i];
            break;
        }
    }
    size_t keep = p->n - n;
    memmove(p->data.data, p->data.data + start, p->data.len - start);
    p->data.len -= start;
    for (size_t i = 0; i < keep; i++) {
        size_t o = p->off[n + i];
        p->off[i] = o == PARAMS_NULL ? PARAMS_NULL : o - start;
        p->len[i] = p->len[n + i];
        p->fmt[i] = p->fmt[n + i];
    }
    p->n = keep;
}

int params_bind(params_buf *p, size_t first, size_t n)
{
    size_t c1 = p->bind_cap, c2 = p->bind_cap, c3 = p->bind_cap;
    if (grow_array((void **)&p->ptrs, &c1, n, sizeof *p->ptrs) ||
        grow_array((void **)&p->lens, &c2, n, sizeof *p->lens) ||
        grow_array((void **)&p->fmts, &c3, n, sizeof *p->fmts))
        return SL_ENOMEM;
    if (n > p->bind_cap) {
        size_t c = p->bind_cap ? p->bind_cap : 256;
        while (c < n)
            c *= 2;
        p->bind_cap = c;
    }
    for (size_t i = 0; i < n; i++) {
        size_t o = p->off[first + i];
        p->ptrs[i] = o == PARAMS_NULL ? NULL : p->data.data + o;
        p->lens[i] = p->len[first + i];
        p->fmts[i] = p->fmt[first + i];
    }
    return SL_OK;
}

void params_free(params_buf *p)
{
    sbuf_free(&p->data);
    sbuf_free(&p->scratch);
    free(p->off);
    free(p->len);
    free(p->fmt);
    free(p->ptrs);
    free(p->lens);
    free(p->fmts);
    memset(p, 0, sizeof *p);
}

int params_values_sql(sbuf *out, const char *prefix, int nrows,
                      int ncols, const char *suffix)
{
    size_t lp = strlen(prefix), ls = strlen(suffix);
    /* "$65535," is 7 bytes; "(" and ")," per row */
    size_t need = lp + ls + 1 + (size_t)nrows * ((size_t)ncols * 7 + 3);
    out->len = 0;
    if (sbuf_reserve(out, need) != SL_OK)
        return SL_ENOMEM;
    sbuf_put_raw(out, prefix, lp);
    int k = 1;
    for (int r = 0; r < nrows; r++) {
        if (r > 0)
            sbuf_put_byte(out, ',');
        sbuf_put_byte(out, '(');
        for (int c = 0; c < ncols; c++, k++) {
            char num[16];
            int m = snprintf(num, sizeof num, c ? ",$%d" : "$%d", k);
            sbuf_put_raw(out, num, (size_t)m);
        }
        sbuf_put_byte(out, ')');
    }
    sbuf_put_raw(out, suffix, ls);
    sbuf_put_byte(out, 0);
    return SL_OK;
}
