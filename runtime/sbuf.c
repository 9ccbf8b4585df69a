/*
 * sbuf.c - the growable byte buffer (see sbuf.h).
 */
#include "sbuf.h"

#include <stdint.h>
#include <stdlib.h>

int sbuf_grow(sbuf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return SL_OK;
    if (extra > SIZE_MAX / 4 - b->len)
        return SL_ENOMEM;
    size_t need = b->len + extra;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p)
        return SL_ENOMEM;
    b->data = p;
    b->cap = cap;
    return SL_OK;
}

void sbuf_free(sbuf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
