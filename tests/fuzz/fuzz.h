/*
 * fuzz.h - what the libFuzzer targets in tests/fuzz/ share: the entry
 * point's prototype, a check that aborts with a message (libFuzzer then
 * saves the input as a crash), and a reader that takes typed values off
 * the front of an input.
 *
 * Uses: the C library only.  Each target is one .c file linked with the
 * core (`make fuzz`), never with Lua.
 */
#ifndef SLUICE_FUZZ_H
#define SLUICE_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A mismatch between the core and the harness's own model: print what
 * differed and abort, so libFuzzer keeps the input. */
#define FUZZ_CHECK(cond, ...)                                              \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: check failed: %s\n  ", __FILE__,       \
                    __LINE__, #cond);                                      \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
            abort();                                                       \
        }                                                                  \
    } while (0)

/* The input, consumed from the front.  Past its end every read gives
 * zeros (or nothing), so any input is a valid program for a target. */
typedef struct fuzz_in {
    const uint8_t *p;
    size_t n;
} fuzz_in;

static inline int fuzz_left(const fuzz_in *in)
{
    return in->n > 0;
}

static inline unsigned fuzz_byte(fuzz_in *in)
{
    if (!in->n)
        return 0;
    in->n--;
    return *in->p++;
}

static inline uint64_t fuzz_u64(fuzz_in *in)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | fuzz_byte(in);
    return v;
}

static inline double fuzz_double(fuzz_in *in)
{
    uint64_t v = fuzz_u64(in);
    double x;
    memcpy(&x, &v, sizeof x);
    return x;
}

/* Up to max bytes (a length byte first, capped by what is left); *n gets
 * the count.  The bytes stay in the input's memory. */
static inline const char *fuzz_bytes(fuzz_in *in, size_t max, size_t *n)
{
    size_t k = fuzz_byte(in);
    if (k > max)
        k = max;
    if (k > in->n)
        k = in->n;
    const char *s = (const char *)in->p;
    in->p += k;
    in->n -= k;
    *n = k;
    return s;
}

#endif
