/*
 * lib_copy_vector.c - pgvector's vector, halfvec and sparsevec, and bit
 * strings, as COPY fields of the "sluice.copy" binding: Lua values read
 * into the core's encoders (vecenc.h), binary and text, and their
 * refusals turned into the errors that name the row, column and element
 * with the server's own words and SQLSTATE.
 *
 * Values:
 * - vector, halfvec: a Lua array of numbers, an FFI float[] or double[]
 *   buffer (a pointer: the column's dimension counts), or the type's
 *   text ("[1,2,3]");
 * - sparsevec: a table {[index] = value, ..., dim = D} (indices from 1,
 *   as the text form numbers them) or {indices = {...}, values = {...},
 *   dim = D}; dim may be left out for a sparsevec(D) column; or the text
 *   ("{1:1.5,3:2}/5", read here for binary as sparsevec_in reads it);
 * - bit, bit varying: the text ("0101", "B0101", "X5").
 *
 * Uses: lib_copy_priv.h (the stream, its errors), vecenc.h.
 *
 * Caveats: the elements are copied into the stream's scratch buffer
 * (doubles, or index/value pairs) before the core sees them; text is
 * built in cp->vec and written through the field writer (CSV quotes its
 * commas).  Every error ends the COPY before it is raised.
 */
#include "lib_copy_priv.h"
#include "vecenc.h"
#include "numfmt.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

static int vec_type_of(int kind)
{
    return kind == COPY_K_HALFVEC ? VEC_HALFVEC
           : kind == COPY_K_SPARSEVEC ? VEC_SPARSEVEC : VEC_VECTOR;
}

static const char *const type_word[] = { "vector", "halfvec", "sparsevec" };

/* Raise for the core's refusal rc (SL_OK: nothing); n the element count,
 * bad the element (0-based) it names, x its value when known. */
static void refused(lua_State *L, sl_copy *cp, const copy_col *col, int rc,
                    size_t n, size_t bad, double x)
{
    const char *t = type_word[vec_type_of(col->kind)];
    const char *code = "22000"; /* data_exception, as pgvector's checks */
    char num[NUMFMT_BUFSIZE];
    if (rc == SL_OK)
        return;
    if (rc == SL_ENOMEM)
        lib_copy_oom(L, cp);
    if (rc == VEC_ENAN || rc == VEC_EINF || rc == SL_ERANGE) {
        cp->depth = 1;
        cp->path[0] = (int)bad + 1;
    }
    switch (rc) {
    case VEC_ENAN:
        lua_pushfstring(L, ": NaN not allowed in %s", t);
        break;
    case VEC_EINF:
        lua_pushfstring(L, ": infinite value not allowed in %s", t);
        break;
    case SL_ERANGE:
        numfmt_double(num, x);
        lua_pushfstring(L, ": \"%s\" is out of range for type %s", num, t);
        code = "22003";
        break;
    case VEC_EEMPTY:
        lua_pushfstring(L, ": %s must have at least 1 dimension", t);
        break;
    case VEC_EMAXDIM:
        lua_pushfstring(L, ": %s cannot have more than %d dimensions", t,
                        col->kind == COPY_K_SPARSEVEC ? VEC_SPARSE_MAX_DIM
                                                      : VEC_MAX_DIM);
        code = "54000";
        break;
    case VEC_EDIM:
        lua_pushfstring(L, ": expected %d dimensions, not %d", col->typmod,
                        (int)n);
        break;
    case VEC_EINDEX:
        lua_pushfstring(L, ": sparsevec index out of bounds (index %d, "
                           "dimension %d)", (int)bad, (int)n);
        break;
    case VEC_EDUP:
        lua_pushfstring(L, ": sparsevec indices must not contain duplicates "
                           "(index %d)", (int)bad);
        break;
    case VEC_EMAXNNZ:
        lua_pushfstring(L, ": sparsevec cannot have more than %d non-zero "
                           "elements", VEC_SPARSE_MAX_NNZ);
        code = "54000";
        break;
    default:
        lib_copy_encode_failed(L, cp, col, rc);
    }
    lib_copy_refusal(cp, code);
    lib_copy_col_error(L, cp, col, lua_tostring(L, -1));
}

/* Room for n bytes in the scratch buffer (raises when it cannot grow). */
static void *scratch(lua_State *L, sl_copy *cp, size_t n)
{
    cp->scratch.len = 0;
    if (sbuf_reserve(&cp->scratch, n ? n : 1) != SL_OK)
        lib_copy_oom(L, cp);
    return cp->scratch.data;
}

/* The text built in cp->vec as the field (escaped or quoted as the
 * format needs). */
static void put_text(lua_State *L, sl_copy *cp, const copy_col *col, int rc,
                     size_t n, size_t bad, double x)
{
    refused(L, cp, col, rc, n, bad, x);
    rc = copy_writer_field(&cp->w, cp->vec.data, cp->vec.len);
    if (rc != SL_OK)
        lib_copy_encode_failed(L, cp, col, rc);
}

#define DENSE_WHAT                                                       \
    "a Lua array of numbers, an FFI float[] or double[] buffer, or a "   \
    "vector literal such as [1,2,3]"

/* An FFI buffer at idx (float or double elements): 1 with *p, *n, *f32
 * set; 0 when the value is no such cdata. */
static int float_buffer(lua_State *L, sl_copy *cp, const copy_col *col,
                        int idx, const void **p, size_t *n, int *f32)
{
    if (!lib_copy_cdata_call(L, idx, 3))
        return 0;
    int kind = (int)lua_tointeger(L, -3);
    double count = lua_tonumber(L, -2);
    uintptr_t addr = (uintptr_t)lua_tonumber(L, -1);
    lua_pop(L, 3);
    if (kind != 3 && kind != 4)
        return 0;
    if (addr == 0)
        lib_copy_value_error(L, cp, col, idx, "a buffer, not a NULL pointer");
    if (count < 0) {
        if (col->typmod <= 0)
            lib_copy_value_error(L, cp, col, idx,
                                 "an FFI float[] array (a pointer has no "
                                 "length: it needs a column of a declared "
                                 "dimension)");
        count = col->typmod;
    }
    *p = (const void *)addr;
    *n = (size_t)count;
    *f32 = kind == 3;
    return 1;
}

/* The Lua array at idx as doubles in the scratch buffer; its length. */
static size_t read_numbers(lua_State *L, sl_copy *cp, const copy_col *col,
                           int idx, double **out)
{
    size_t n;
    if (!lib_array_len(L, idx, &n)) {
        lib_copy_refusal(cp, "22P02");
        lib_copy_value_error(L, cp, col, idx,
                             "a vector: a Lua array of numbers (keys 1..n "
                             "only)");
    }
    if (n > VEC_MAX_DIM)
        refused(L, cp, col, VEC_EMAXDIM, n, 0, 0);
    double *x = scratch(L, cp, n * sizeof(double));
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, idx, (int)i + 1);
        if (lua_type(L, -1) != LUA_TNUMBER) {
            cp->depth = 1;
            cp->path[0] = (int)i + 1;
            lib_copy_value_error(L, cp, col, lua_gettop(L), "a number");
        }
        x[i] = lua_tonumber(L, -1);
        lua_pop(L, 1);
    }
    *out = x;
    return n;
}

static void dense(lua_State *L, sl_copy *cp, const copy_col *col, int idx,
                  int text)
{
    int type = vec_type_of(col->kind), rc, f32;
    size_t n = 0, bad = 0;
    const void *p;
    sbuf *out = text ? &cp->vec : &cp->w.buf;
    if (text)
        cp->vec.len = 0;
    if (lua_istable(L, idx)) {
        double *x;
        n = read_numbers(L, cp, col, idx, &x);
        rc = text ? vec_text_f64(out, type, x, n, col->typmod, &bad)
                  : vec_put_f64(out, type, x, n, col->typmod, &bad);
        if (rc != SL_OK)
            refused(L, cp, col, rc, n, bad, n ? x[bad] : 0);
    } else if (float_buffer(L, cp, col, idx, &p, &n, &f32)) {
        rc = f32 ? (text ? vec_text_f32(out, type, p, n, col->typmod, &bad)
                         : vec_put_f32(out, type, p, n, col->typmod, &bad))
                 : (text ? vec_text_f64(out, type, p, n, col->typmod, &bad)
                         : vec_put_f64(out, type, p, n, col->typmod, &bad));
        if (rc != SL_OK)
            refused(L, cp, col, rc, n, bad,
                    f32 ? ((const float *)p)[bad] : ((const double *)p)[bad]);
    } else if (lua_type(L, idx) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        if (text) { /* the server reads the text */
            rc = copy_writer_field(&cp->w, s, len);
            if (rc != SL_OK)
                lib_copy_encode_failed(L, cp, col, rc);
            return;
        }
        float *x = scratch(L, cp, VEC_MAX_DIM * sizeof(float));
        long k = memchr(s, 0, len) ? -1 : vec_parse(s, len, x, VEC_MAX_DIM);
        if (k < 0) {
            lib_copy_refusal(cp, "22P02");
            lib_copy_value_error(L, cp, col, idx, DENSE_WHAT);
        }
        n = (size_t)k;
        rc = vec_put_f32(out, type, x, n, col->typmod, &bad);
        refused(L, cp, col, rc, n, bad, n ? x[bad] : 0);
        return;
    } else {
        lib_copy_refusal(cp, "22P02");
        lib_copy_value_error(L, cp, col, idx, DENSE_WHAT);
    }
    if (text)
        put_text(L, cp, col, SL_OK, n, bad, 0);
}

#define SPARSE_WHAT                                                      \
    "a sparse vector: {[index] = value, ..., dim = D} or {indices = "    \
    "{...}, values = {...}, dim = D} (indices from 1)"

/* An integral index at idx, or raise. */
static int64_t sparse_index(lua_State *L, sl_copy *cp, const copy_col *col,
                            int t, int idx)
{
    double k = lua_tonumber(L, idx);
    if (lua_type(L, idx) != LUA_TNUMBER || k != floor(k) || fabs(k) > 4e9) {
        lib_copy_refusal(cp, "22P02");
        lib_copy_value_error(L, cp, col, t, SPARSE_WHAT);
    }
    return (int64_t)k;
}

static void sparse(lua_State *L, sl_copy *cp, const copy_col *col, int idx,
                   int text)
{
    if (lua_type(L, idx) == LUA_TSTRING && text) {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        int rc = copy_writer_field(&cp->w, s, len);
        if (rc != SL_OK)
            lib_copy_encode_failed(L, cp, col, rc);
        return;
    }
    int64_t dim = col->typmod;
    size_t n = 0;
    vec_pair *p;
    if (lua_type(L, idx) == LUA_TSTRING) {
        /* binary: the text read as sparsevec_in reads it */
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        p = scratch(L, cp, (VEC_SPARSE_MAX_NNZ + 1) * sizeof *p);
        long k = memchr(s, 0, len) ? -1
                 : vec_parse_sparse(s, len, p, VEC_SPARSE_MAX_NNZ + 1, &dim);
        if (k < 0) {
            lib_copy_refusal(cp, "22P02");
            lib_copy_value_error(L, cp, col, idx,
                                 SPARSE_WHAT " or its text ({1:1.5,3:2}/5)");
        }
        n = (size_t)k;
        goto encode;
    }
    if (!lua_istable(L, idx)) {
        lib_copy_refusal(cp, "22P02");
        lib_copy_value_error(L, cp, col, idx,
                             SPARSE_WHAT " or its text ({1:1.5,3:2}/5)");
    }
    int top = lua_gettop(L);
    lua_getfield(L, idx, "dim");
    if (!lua_isnil(L, -1))
        dim = sparse_index(L, cp, col, idx, -1);
    else if (dim <= 0)
        lib_copy_col_error(L, cp, col,
                           ": a sparse vector needs its dimension (dim = D "
                           "in the table, or a sparsevec(D) column)");
    lua_getfield(L, idx, "indices");
    lua_getfield(L, idx, "values");
    if (lua_istable(L, -2) && lua_istable(L, -1)) {
        int iv = lua_gettop(L) - 1, vv = iv + 1;
        n = lua_objlen(L, iv);
        if (lua_objlen(L, vv) != n)
            lib_copy_col_error(L, cp, col,
                               ": a sparse vector's indices and values must "
                               "have the same length");
        p = scratch(L, cp, n * sizeof *p);
        for (size_t i = 0; i < n; i++) {
            lua_rawgeti(L, iv, (int)i + 1);
            lua_rawgeti(L, vv, (int)i + 1);
            p[i].i = sparse_index(L, cp, col, idx, -2);
            if (lua_type(L, -1) != LUA_TNUMBER) {
                lib_copy_refusal(cp, "22P02");
                lib_copy_value_error(L, cp, col, idx, SPARSE_WHAT);
            }
            p[i].v = lua_tonumber(L, -1);
            lua_pop(L, 2);
        }
    } else {
        size_t cap = 0;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            lua_pop(L, 1);
            cap++;
        }
        p = scratch(L, cp, cap * sizeof *p);
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            if (lua_type(L, -2) == LUA_TSTRING &&
                strcmp(lua_tostring(L, -2), "dim") == 0) {
                lua_pop(L, 1);
                continue;
            }
            p[n].i = sparse_index(L, cp, col, idx, -2);
            if (lua_type(L, -1) != LUA_TNUMBER) {
                lib_copy_refusal(cp, "22P02");
                lib_copy_value_error(L, cp, col, idx, SPARSE_WHAT);
            }
            p[n++].v = lua_tonumber(L, -1);
            lua_pop(L, 1);
        }
    }
    lua_settop(L, top);
encode:;
    size_t bad = 0;
    int rc;
    if (text) {
        cp->vec.len = 0;
        rc = vec_text_sparse(&cp->vec, dim, p, n, col->typmod, &bad);
    } else {
        rc = vec_put_sparse(&cp->w.buf, dim, p, n, col->typmod, &bad);
    }
    if (rc == VEC_EINDEX || rc == VEC_EDUP) {
        bad = (size_t)p[bad].i;
        n = (size_t)dim;
    } else if (rc == VEC_EDIM) {
        n = (size_t)dim;
    } else if (rc == VEC_ENAN || rc == VEC_EINF || rc == SL_ERANGE) {
        double x = p[bad].v;
        bad = (size_t)p[bad].i - 1;
        refused(L, cp, col, rc, n, bad, x);
    }
    if (text)
        put_text(L, cp, col, rc, n, bad, 0);
    else
        refused(L, cp, col, rc, n, bad, 0);
}

/* bit and bit varying, binary: their text as bit_in reads it. */
static void bits(lua_State *L, sl_copy *cp, const copy_col *col, int idx)
{
    size_t n, bad = 0;
    if (lua_type(L, idx) != LUA_TSTRING) {
        lib_copy_refusal(cp, "22P02");
        lib_copy_value_error(L, cp, col, idx,
                             "a bit string such as \"0101\" (or X and hex "
                             "digits)");
    }
    const char *s = lua_tolstring(L, idx, &n);
    int varying = col->kind == COPY_K_VARBIT;
    int rc = vec_put_bit_str(&cp->w.buf, s, n, col->typmod, varying, &bad);
    size_t nbits = n;
    if (n > 0 && strchr("bBxX", s[0]))
        nbits = (n - 1) * (strchr("xX", s[0]) ? 4 : 1);
    switch (rc) {
    case SL_OK:
        return;
    case VEC_EBITDIGIT:
        lib_copy_refusal(cp, "22P02");
        lua_pushfstring(L, ": \"%c\" is not a valid %s digit", s[bad],
                        n > 0 && strchr("xX", s[0]) ? "hexadecimal"
                                                    : "binary");
        break;
    case VEC_EBITLEN:
        lib_copy_refusal(cp, "22026");
        lua_pushfstring(L, ": bit string length %d does not match type "
                           "bit(%d)", (int)nbits, col->typmod);
        break;
    case VEC_EBITLONG:
        lib_copy_refusal(cp, "22001");
        lua_pushfstring(L, ": bit string too long for type bit "
                           "varying(%d)", col->typmod);
        break;
    case SL_ERANGE:
        lib_copy_refusal(cp, "54000");
        lua_pushliteral(L, ": bit string length exceeds the maximum "
                           "allowed (83886080)");
        break;
    default:
        lib_copy_encode_failed(L, cp, col, rc);
    }
    lib_copy_col_error(L, cp, col, lua_tostring(L, -1));
}

void lib_copy_vec_bin(lua_State *L, sl_copy *cp, const copy_col *col,
                      int idx)
{
    if (col->kind == COPY_K_BIT || col->kind == COPY_K_VARBIT)
        bits(L, cp, col, idx);
    else if (col->kind == COPY_K_SPARSEVEC)
        sparse(L, cp, col, idx, 0);
    else
        dense(L, cp, col, idx, 0);
}

void lib_copy_vec_text(lua_State *L, sl_copy *cp, const copy_col *col,
                       int idx)
{
    if (col->kind == COPY_K_SPARSEVEC)
        sparse(L, cp, col, idx, 1);
    else if (lua_type(L, idx) == LUA_TNUMBER ||
             lua_type(L, idx) == LUA_TBOOLEAN)
        lib_copy_value_error(L, cp, col, idx, DENSE_WHAT);
    else
        dense(L, cp, col, idx, 1);
}
