/*
 * lib_vector.c - pgvector's values coming back: query results and
 * copy_out rows give vector, halfvec and sparsevec values as Lua tables
 * (vector, halfvec: an array of numbers; sparsevec: {[index] = value,
 * ..., dim = D}, the table db:copy takes).
 *
 * The types are an extension's, so their OIDs are found in the catalog
 * (pg_type, by name and receive function) the first time a result shows
 * a column of a type the connection has not seen, and kept on the
 * connection (sl_conn.vec).  A type dropped and created again gets a new
 * OID, which is looked up in turn.
 *
 * Uses: lib.h (connections, lib_conn_finish), the server's text forms of
 * the types (vector_out: "[1,2.5]", sparsevec_out: "{1:1.5,3:2}/5").
 */
#include "lib.h"
#include "copy.h"
#include "vecenc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIRST_NORMAL_OID 16384 /* built-in types are below */

static const char VEC_TYPES_SQL[] =
    "select t.oid::int8, case t.typname when 'vector' then 1 when "
    "'halfvec' then 2 else 3 end from pg_catalog.pg_type t "
    "where t.oid = any($1::oid[]) and t.typname in ('vector', 'halfvec', "
    "'sparsevec') and t.typreceive::text = t.typname || '_recv'";

static int known(const sl_conn *c, Oid oid)
{
    for (int i = 0; i < c->vec.n; i++)
        if (c->vec.oid[i] == oid)
            return c->vec.kind[i];
    return -1;
}

static void remember(sl_conn *c, Oid oid, int kind)
{
    if (c->vec.n == SL_VEC_OIDS) /* forget the oldest half */
    {
        int h = SL_VEC_OIDS / 2;
        memmove(c->vec.oid, c->vec.oid + h, sizeof(Oid) * (size_t)h);
        memmove(c->vec.kind, c->vec.kind + h, (size_t)h);
        c->vec.n = h;
    }
    c->vec.oid[c->vec.n] = oid;
    c->vec.kind[c->vec.n++] = (signed char)kind;
}

int lib_vector_kinds(lua_State *L, sl_conn *c, int conn_idx,
                     const PGresult *res, signed char *kinds)
{
    int nf = res ? PQnfields(res) : 0, any = 0, ask = 0;
    char list[512];
    size_t at = 0;
    list[at++] = '{';
    for (int j = 0; j < nf; j++) {
        Oid t = PQftype(res, j);
        int k = t >= FIRST_NORMAL_OID ? known(c, t) : 0;
        kinds[j] = (signed char)(k > 0 ? k : 0);
        any |= k > 0;
        if (k < 0 && at < sizeof list - 16) {
            at += (size_t)snprintf(list + at, sizeof list - at, "%s%u",
                                   ask ? "," : "", (unsigned)t);
            ask++;
        }
    }
    if (!ask)
        return any;
    list[at++] = '}';
    list[at] = '\0';
    const char *vals[1] = { list };
    int sent = PQsendQueryParams(c->pg, VEC_TYPES_SQL, 1, NULL, vals, NULL,
                                 NULL, 0);
    PGresult *found = lib_conn_finish(L, c, conn_idx, sent);
    for (int j = 0; j < nf; j++) {
        Oid t = PQftype(res, j);
        if (t < FIRST_NORMAL_OID || known(c, t) >= 0)
            continue;
        int k = 0;
        for (int i = 0; found && i < PQntuples(found); i++)
            if ((Oid)strtoul(PQgetvalue(found, i, 0), NULL, 10) == t)
                k = atoi(PQgetvalue(found, i, 1));
        remember(c, t, k);
    }
    for (int j = 0; j < nf; j++) {
        int k = known(c, PQftype(res, j));
        kinds[j] = (signed char)(k > 0 ? k : 0);
        any |= k > 0;
    }
    lua_pop(L, 1); /* the lookup's result holder */
    return any;
}

void lib_vector_push(lua_State *L, const char *s, size_t n, int kind)
{
    const char *end = s + n;
    char *q;
    lua_newtable(L);
    if (kind == 3) {
        /* {i:v,...}/dim */
        const char *p = s + 1;
        while (p < end && *p != '}') {
            long i = strtol(p, &q, 10);
            if (q >= end || *q != ':')
                break;
            double v = strtod(q + 1, &q);
            lua_pushnumber(L, v);
            lua_rawseti(L, -2, (int)i);
            p = q < end && *q == ',' ? q + 1 : q;
        }
        if (p < end && p + 2 <= end && p[1] == '/') {
            lua_pushnumber(L, strtod(p + 2, NULL));
            lua_setfield(L, -2, "dim");
        }
        return;
    }
    const char *p = s + 1;
    int i = 0;
    while (p < end && *p != ']') {
        double v = strtod(p, &q);
        if (q == p)
            break;
        lua_pushnumber(L, v);
        lua_rawseti(L, -2, ++i);
        p = q < end && *q == ',' ? q + 1 : q;
    }
}

/* sluice.core.vector_parse(text, kind) -> table: the server's text of a
 * vector ("vector", "halfvec") or "sparsevec" as the Lua table query
 * results give (copy_out's rows, lua/sluice/copy.lua). */
int lib_vector_parse(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    const char *k = luaL_checkstring(L, 2);
    lib_vector_push(L, s, n, strcmp(k, "sparsevec") == 0 ? 3 : 1);
    return 1;
}

/* sluice.core.vector_columns(db, sql) -> { [column] = "vector" |
 * "halfvec" | "sparsevec" } for the columns of the query's result that
 * are pgvector's (described, not run: an unnamed prepared statement). */
int lib_vector_columns(lua_State *L)
{
    static const char *const names[] = { NULL, "vector", "halfvec",
                                         "sparsevec" };
    sl_conn *c = lib_conn_check(L, 1);
    const char *sql = luaL_checkstring(L, 2);
    lib_conn_finish(L, c, 1, PQsendPrepare(c->pg, "", sql, 0, NULL));
    lua_pop(L, 1);
    PGresult *res = lib_conn_finish(L, c, 1, PQsendDescribePrepared(c->pg, ""));
    int nf = res ? PQnfields(res) : 0;
    signed char *kinds = lua_newuserdata(L, (size_t)(nf ? nf : 1));
    lib_vector_kinds(L, c, 1, res, kinds);
    lua_newtable(L);
    for (int j = 0; j < nf; j++) {
        if (kinds[j] > 0) {
            lua_pushstring(L, names[kinds[j]]);
            lua_rawseti(L, -2, j + 1);
        }
    }
    return 1;
}

/* ------------------------------------------------ batch and pipeline */

/* The text of the Lua table at idx for a parameter of a pgvector kind
 * (COPY_K_VECTOR, _HALFVEC, _SPARSEVEC), as db:copy writes it in text
 * (vecenc.h: the same floats, the same checks; the column's dimension is
 * the server's to check, parameters carry no typmod), appended to out
 * with scratch holding the elements.  NULL, or what the parameter
 * expects.  Raises only for out of memory. */
const char *lib_vector_param(lua_State *L, int idx, int kind, sbuf *out,
                             sbuf *scratch)
{
    size_t bad, n = 0;
    int rc;
    scratch->len = 0;
    if (kind == COPY_K_SPARSEVEC) {
        lua_getfield(L, idx, "dim");
        int64_t dim = (int64_t)lua_tonumber(L, -1);
        if (lua_type(L, -1) != LUA_TNUMBER)
            return "a sparse vector with its size (dim = D: a parameter has no "
                   "column type to give it)";
        lua_pop(L, 1);
        lua_getfield(L, idx, "indices");
        lua_getfield(L, idx, "values");
        int arrays = lua_istable(L, -2) && lua_istable(L, -1);
        size_t cap = arrays ? lua_objlen(L, -2) : 0;
        if (!arrays) {
            lua_pushnil(L);
            while (lua_next(L, idx)) {
                lua_pop(L, 1);
                cap++;
            }
        }
        if (sbuf_reserve(scratch, (cap + 1) * sizeof(vec_pair)) != SL_OK)
            luaL_error(L, "out of memory");
        vec_pair *p = (vec_pair *)scratch->data;
        if (arrays) {
            if (lua_objlen(L, -1) != cap)
                return "a sparse vector whose indices and values have the "
                       "same length";
            for (size_t i = 0; i < cap; i++) {
                lua_rawgeti(L, -2, (int)i + 1);
                lua_rawgeti(L, -2, (int)i + 1);
                if (!lua_isnumber(L, -2) || lua_type(L, -1) != LUA_TNUMBER)
                    return "a sparse vector of numbers";
                p[n].i = (int64_t)lua_tonumber(L, -2);
                p[n++].v = lua_tonumber(L, -1);
                lua_pop(L, 2);
            }
        } else {
            lua_pushnil(L);
            while (lua_next(L, idx)) {
                if (lua_type(L, -2) == LUA_TNUMBER) {
                    if (lua_type(L, -1) != LUA_TNUMBER)
                        return "a sparse vector of numbers";
                    p[n].i = (int64_t)lua_tonumber(L, -2);
                    p[n++].v = lua_tonumber(L, -1);
                } else if (lua_type(L, -2) != LUA_TSTRING ||
                           strcmp(lua_tostring(L, -2), "dim") != 0) {
                    return "a sparse vector: {[index] = value, ..., dim = D}";
                }
                lua_pop(L, 1);
            }
        }
        lua_pop(L, 2);
        rc = vec_text_sparse(out, dim, p, n, -1, &bad);
    } else {
        n = lua_objlen(L, idx);
        if (n > VEC_MAX_DIM)
            n = VEC_MAX_DIM + 1; /* refused below, without reading it */
        if (sbuf_reserve(scratch, (n + 1) * sizeof(double)) != SL_OK)
            luaL_error(L, "out of memory");
        double *x = (double *)scratch->data;
        for (size_t i = 0; i < n && n <= VEC_MAX_DIM; i++) {
            lua_rawgeti(L, idx, (int)i + 1);
            if (lua_type(L, -1) != LUA_TNUMBER)
                return "a Lua array of numbers (a vector)";
            x[i] = lua_tonumber(L, -1);
            lua_pop(L, 1);
        }
        rc = vec_text_f64(out, kind == COPY_K_HALFVEC ? VEC_HALFVEC
                                                      : VEC_VECTOR,
                          x, n, -1, &bad);
    }
    switch (rc) {
    case SL_OK: return NULL;
    case SL_ENOMEM: luaL_error(L, "out of memory"); return NULL;
    case VEC_ENAN: return "a vector of finite numbers (NaN not allowed in vector)";
    case VEC_EINF: return "a vector of finite numbers (infinite value not allowed in vector)";
    case SL_ERANGE: return "a vector of numbers within the range of its elements (real, or half for halfvec)";
    case VEC_EEMPTY: return "a vector of at least one element";
    case VEC_EMAXDIM: return "a vector of at most 16000 dimensions (sparsevec: 1000000000)";
    case VEC_EINDEX: return "a sparse vector whose indices are within 1..dim";
    case VEC_EDUP: return "a sparse vector without duplicate indices";
    default: return "a sparse vector of at most 16000 non-zero elements";
    }
}
