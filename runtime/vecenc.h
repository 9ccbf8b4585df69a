/*
 * vecenc.h - pgvector's types (vector, halfvec, sparsevec) and
 * PostgreSQL's bit strings as COPY fields: binary (the formats of
 * pgvector's vector_recv, halfvec_recv, sparsevec_recv and the server's
 * bit_recv) and text.  Knows bytes, not Lua.
 *
 * Provides:
 * - vec_put_f64 / vec_put_f32: a vector or halfvec binary field from
 *   doubles (a script's numbers) or floats (an FFI float[] buffer);
 * - vec_put_sparse: a sparsevec field from (index, value) pairs;
 * - vec_put_bit_str: a bit / bit varying field from its text;
 * - vec_text_f64 / vec_text_f32 / vec_text_sparse: the same values as
 *   the text the types' input functions read;
 * - vec_parse: a vector literal ("[1,2,3]") as floats, as vector_in
 *   reads it, for binary streams given the text;
 * - vec_half_of_float: float to IEEE half, correctly rounded.
 *
 * Uses: sbuf.h, numfmt.h.
 *
 * One value, one meaning: a number becomes the float the server's text
 * input would make of its digits (the double rounded once to float; a
 * halfvec element then once more to half, as halfvec_in does), so the
 * binary and text encoders of a value agree.  The checks are the
 * server's: no NaN, no infinity, no finite value beyond the element's
 * range, 1..16000 dimensions (sparsevec: 1..10^9, at most 16000 non-zero
 * elements), the column's dimension; each failure has its code below and
 * *bad says which element (0-based).  Nothing is written before the
 * checks pass; none of these prints, raises or allocates beyond the
 * buffer.
 */
#ifndef SLUICE_VECENC_H
#define SLUICE_VECENC_H

#include "sbuf.h"

#include <stddef.h>
#include <stdint.h>

enum vec_type { VEC_VECTOR, VEC_HALFVEC, VEC_SPARSEVEC };

#define VEC_MAX_DIM 16000           /* vector and halfvec */
#define VEC_SPARSE_MAX_DIM 1000000000
#define VEC_SPARSE_MAX_NNZ 16000

/* Refusals, beside SL_ENOMEM and SL_ERANGE (a finite element beyond the
 * element type's range: 22003, "... is out of range for type vector"). */
enum {
    VEC_ENAN = -40,     /* 22000 "NaN not allowed in vector" */
    VEC_EINF = -41,     /* 22000 "infinite value not allowed in vector" */
    VEC_EEMPTY = -42,   /* 22000 "vector must have at least 1 dimension" */
    VEC_EMAXDIM = -43,  /* 54000 "vector cannot have more than 16000
                         * dimensions" */
    VEC_EDIM = -44,     /* 22000 "expected D dimensions, not N" (typmod) */
    VEC_EINDEX = -45,   /* 22000 "sparsevec index out of bounds" */
    VEC_EDUP = -46,     /* 22000 "sparsevec indices must not contain
                         * duplicates" */
    VEC_EMAXNNZ = -47,  /* 54000 "sparsevec cannot have more than 16000
                         * non-zero elements" */
    VEC_EBITDIGIT = -48, /* 22P02 "x" is not a valid binary/hex digit */
    VEC_EBITLEN = -49,  /* 22026 bit string length L does not match type
                         * bit(D) */
    VEC_EBITLONG = -50, /* 22001 bit string too long for type bit
                         * varying(D) */
};

/* IEEE binary16 bits of f, rounded to nearest, ties to even (F16C's
 * _cvtss_sh(f, 0), pgvector's Float4ToHalf).  *overflow is set when a
 * finite f rounds to infinity (halfvec refuses it). */
uint16_t vec_half_of_float(float f, int *overflow);

/* A vector or halfvec (type) binary field, length word included, from n
 * doubles (each rounded to float, then for halfvec to half) or floats.
 * typmod: the column's dimension, or -1.  SL_OK or a refusal above
 * (*bad: the element, for the element refusals). */
int vec_put_f64(sbuf *b, int type, const double *x, size_t n, int typmod,
                size_t *bad);
int vec_put_f32(sbuf *b, int type, const float *x, size_t n, int typmod,
                size_t *bad);

/* One non-zero element of a sparse vector: index from 1 (the text
 * form's numbering), value. */
typedef struct vec_pair {
    int64_t i;
    double v;
} vec_pair;

/* A sparsevec binary field of dimension dim from n pairs (sorted here by
 * index, in place; zero values dropped, as sparsevec_in drops them).
 * typmod as above.  *bad: the pair (after sorting) a refusal is about. */
int vec_put_sparse(sbuf *b, int64_t dim, vec_pair *p, size_t n, int typmod,
                   size_t *bad);

/* A bit (varying: bit varying) field from its text as bit_in reads it:
 * 0/1 digits after an optional B, or hex digits after X.  typmod: the
 * declared length or -1.  *bad: the offending byte for VEC_EBITDIGIT. */
int vec_put_bit_str(sbuf *b, const char *s, size_t n, int typmod,
                    int varying, size_t *bad);

/* The text of a vector/halfvec ("[1,2.5,3]", each element the float the
 * binary encoder sends) or sparsevec ("{1:1.5,3:2}/5") appended to b
 * (no length word).  The same checks and codes as the binary encoders. */
int vec_text_f64(sbuf *b, int type, const double *x, size_t n, int typmod,
                 size_t *bad);
int vec_text_f32(sbuf *b, int type, const float *x, size_t n, int typmod,
                 size_t *bad);
int vec_text_sparse(sbuf *b, int64_t dim, vec_pair *p, size_t n, int typmod,
                    size_t *bad);

/* The text of a finite float f in out (at least 16 bytes): at most nine
 * significant digits, trailing zeros dropped ("0.25", "9.99999994e-9",
 * "3.40282347e+38"), which strtof reads back as f exactly.  Its length. */
size_t vec_float_text(char *out, float f);

/* A vector literal "[a, b, ...]" (spaces allowed around elements) read
 * as vector_in reads it (strtof per element) into out (cap floats):
 * the element count, or -1 when the text is no vector literal (or has
 * more than cap elements).  Range and NaN are left to vec_put_f32. */
long vec_parse(const char *s, size_t n, float *out, size_t cap);

/* A sparsevec literal "{i:v, ...}/dim" read as sparsevec_in reads it
 * (strtol indices, strtof values; spaces allowed between the parts) into
 * out (cap pairs) and *dim: the pair count, or -1 when the text is no
 * sparsevec literal (or has more than cap pairs).  Zeros are kept here
 * (vec_put_sparse drops them); indices and the dimension are checked by
 * vec_put_sparse. */
long vec_parse_sparse(const char *s, size_t n, vec_pair *out, size_t cap,
                      int64_t *dim);

#endif
