/*
 * lib_params.c - Lua values as statement parameters, encoded straight into
 * a params_buf (params.h): the encoder behind batch:add() and
 * pipeline:send().
 *
 * The rules are db:query()'s (nil and sluice.null are NULL, booleans t/f,
 * numbers exact, strings as they are, int64/uint64 cdata as decimal
 * text), refined by the parameter's type when the server told us it
 * (PQparamtype after a describe): epoch seconds for date/timestamp
 * columns, bytea strings as \x hex, Lua tables as JSON for json/jsonb and
 * as array literals otherwise.  Number and array-element text come from
 * copy.c (copy_format_number, copy_put_array_quoted), the same code the
 * COPY text encoder uses.
 *
 * Caveats: array elements are encoded by their Lua type (the element
 * type is not looked up), so epoch numbers inside a timestamp[] are not
 * converted and tables inside json[] are sub-arrays; pass strings there.
 */
#include "lib.h"
#include "copy.h"
#include "copyenc.h"
#include "numfmt.h"
#include "params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LUA_TCDATA 10 /* LuaJIT's type tag for FFI cdata */
#define MAX_DIMS 6    /* PostgreSQL's MAXDIM */

static void oom(lua_State *L)
{
    luaL_error(L, "out of memory growing the parameter buffer");
}

static void put(lua_State *L, sbuf *b, const char *s, size_t n)
{
    if (sbuf_reserve(b, n) != SL_OK)
        oom(L);
    sbuf_put_raw(b, s, n);
}

/* Decimal text of an int64/uint64 cdata through the registry helper
 * init.lua installs; leaves the string (or nothing) on the stack and
 * returns it, or NULL when idx is another kind of cdata. */
static const char *cdata_text(lua_State *L, int idx, size_t *n)
{
    lua_getfield(L, LUA_REGISTRYINDEX, SLUICE_REG_CDATATEXT);
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 1);
        return NULL;
    }
    lua_pushvalue(L, idx);
    lua_call(L, 1, 1);
    if (lua_type(L, -1) != LUA_TSTRING) {
        lua_pop(L, 1);
        return NULL;
    }
    return lua_tolstring(L, -1, n);
}

int lib_array_len(lua_State *L, int t, size_t *len)
{
    size_t n = lua_objlen(L, t), count = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        // stack: key
        lua_Number k = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : 0;
        if (!(k >= 1 && k <= (lua_Number)n && k == (lua_Number)(size_t)k)) {
            lua_pop(L, 1);
            return 0;
        }
        count++;
    }
    /* count distinct keys, all in 1..n: every index is present */
    *len = n;
    return count == n;
}

/* Append the Lua array at t as an array literal {...} of elements of
 * encoder family elem to b, each element written as the COPY text
 * encoder writes it (numbers by copy_number_text: epoch seconds become
 * dates; booleans by copy_bool_text; bytea as \x hex).  Returns NULL or
 * what was expected. */
static const char *put_array(lua_State *L, sbuf *b, int t, int elem,
                             int depth)
{
    if (depth >= MAX_DIMS)
        return "an array of at most 6 dimensions";
    luaL_checkstack(L, 4, "array too deeply nested");
    size_t n;
    if (!lib_array_len(L, t, &n))
        return LIB_ARRAY_EXPECTED;
    put(L, b, "{", 1);
    for (size_t i = 1; i <= n; i++) {
        if (i > 1)
            put(L, b, ",", 1);
        lua_rawgeti(L, t, (int)i);
        int e = lua_gettop(L);
        const char *err = NULL;
        char tmp[64];
        size_t k;
        switch (lua_type(L, e)) {
        case LUA_TNIL:
            put(L, b, "NULL", 4);
            break;
        case LUA_TLIGHTUSERDATA:
            if (lua_touserdata(L, e) != NULL)
                err = "array elements that are strings, numbers, "
                      "booleans, tables or sluice.null";
            else
                put(L, b, "NULL", 4);
            break;
        case LUA_TBOOLEAN: {
            const char *s = copy_bool_text(lua_toboolean(L, e), elem);
            put(L, b, s, strlen(s));
            break;
        }
        case LUA_TNUMBER: {
            int rc = copy_number_text(tmp, lua_tonumber(L, e), elem, &k);
            if (rc == SL_ERANGE) {
                err = copy_number_what(elem);
                break;
            }
            if (rc != SL_OK) {
                err = "epoch seconds within the timestamp range";
                break;
            }
            int quote = elem == COPY_K_DATE || elem == COPY_K_TIMESTAMP ||
                        elem == COPY_K_TIMESTAMPTZ;
            if (quote)
                put(L, b, "\"", 1);
            put(L, b, tmp, k);
            if (quote)
                put(L, b, "\"", 1);
            break;
        }
        case LUA_TSTRING: {
            const char *s = lua_tolstring(L, e, &k);
            int rc = SL_OK;
            if (elem == COPY_K_BYTEA) {
                /* "\\x<hex>": the literal's backslash, then bytea's */
                put(L, b, "\"\\\\", 3);
                if (copy_put_bytea_hex(b, s, k) != SL_OK)
                    oom(L);
                put(L, b, "\"", 1);
            } else {
                rc = copy_put_array_quoted(b, s, k);
            }
            if (rc == SL_ENUL)
                err = "array elements without NUL bytes";
            else if (rc != SL_OK)
                oom(L);
            break;
        }
        case LUA_TTABLE:
            err = put_array(L, b, e, elem, depth + 1);
            break;
        default: {
            const char *s = cdata_text(L, e, &k);
            if (s) {
                put(L, b, s, k);
                lua_pop(L, 1);
            } else {
                err = "array elements that are strings, numbers, "
                      "booleans, tables or sluice.null";
            }
        }
        }
        lua_settop(L, e - 1);
        if (err)
            return err;
    }
    put(L, b, "}", 1);
    return NULL;
}

/* A number: the text the COPY text encoder writes for kind (epoch
 * seconds become a date or timestamp), refused when not exact for it. */
static const char *put_number(lua_State *L, params_buf *p, int idx, int kind)
{
    char tmp[64];
    if (!copy_number_exact(lua_tonumber(L, idx), kind))
        return copy_number_what(kind);
    size_t n = copy_format_number(tmp, lua_tonumber(L, idx), kind);
    if (n == 0)
        return "epoch seconds within the timestamp range";
    params_begin(p);
    put(L, &p->data, tmp, n);
    return NULL;
}

/* A string: \x hex for bytea, else as it is; a NUL byte is refused. */
static const char *put_string(lua_State *L, params_buf *p, int idx, int kind)
{
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    params_begin(p);
    if (kind == COPY_K_BYTEA) {
        if (copy_put_bytea_hex(&p->data, s, n) != SL_OK)
            oom(L);
        return NULL;
    }
    /* bytea has its own kind, above: every other type's text input
     * stops at a NUL (and its binary input wants its own format) */
    if (memchr(s, '\0', n))
        return "a string without NUL bytes (PostgreSQL text "
               "cannot hold \\0; use a bytea column)";
    put(L, &p->data, s, n);
    return NULL;
}

/* A table: JSON text from the encoder at json_idx for json/jsonb, an
 * array literal for arrays and unknown types.  Leaves the stack as it
 * was. */
static const char *put_table(lua_State *L, params_buf *p, int idx, int kind,
                             int elem, int json_idx)
{
    int top = lua_gettop(L);
    if (kind == COPY_K_JSON || kind == COPY_K_JSONB) {
        if (json_idx == 0 || !lua_isfunction(L, json_idx))
            return "a JSON string (no JSON encoder: install lua-cjson "
                   "or pass opts.json_encode)";
        lua_pushvalue(L, json_idx);
        lua_pushvalue(L, idx);
        if (lua_pcall(L, 1, 1, 0) != 0 || lua_type(L, -1) != LUA_TSTRING) {
            lua_settop(L, top);
            return "a table the JSON encoder accepts";
        }
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        params_begin(p);
        put(L, &p->data, s, n);
        lua_settop(L, top);
        return NULL;
    }
    if (kind == COPY_K_VECTOR || kind == COPY_K_HALFVEC ||
        kind == COPY_K_SPARSEVEC) {
        params_begin(p);
        const char *err = lib_vector_param(L, idx, kind, &p->data,
                                           &p->scratch);
        lua_settop(L, top);
        return err;
    }
    if (kind != COPY_K_ARRAY)
        return "a string, number, boolean or nil (tables only for "
               "array, json and vector columns)";
    params_begin(p);
    const char *err = put_array(L, &p->data, idx, elem, 0);
    lua_settop(L, top);
    return err;
}

/* Any other value: an int64/uint64 cdata as its decimal text. */
static const char *put_cdata(lua_State *L, params_buf *p, int idx)
{
    int top = lua_gettop(L);
    size_t n;
    const char *s = cdata_text(L, idx, &n);
    if (!s)
        return "nil, sluice.null, a boolean, a number, a string, an "
               "int64 cdata or a table";
    params_begin(p);
    put(L, &p->data, s, n);
    lua_settop(L, top);
    return NULL;
}

/* Encode the Lua value at idx as one parameter for a value of encoder
 * family `kind` (enum copy_kind; COPY_K_OTHER when the type is unknown)
 * and append it to p, which must have room for one value
 * (params_reserve).  json_idx is the stack index of a function(table) ->
 * string used for tables given to json/jsonb parameters (0: none).
 * Returns NULL, or a static text saying what the parameter expects; the
 * value is then not appended, though p->data may hold stray bytes (the
 * caller drops them with params_rewind).  Raises only for out of memory
 * (and an error in the cdata helper). */
const char *lib_params_put(lua_State *L, params_buf *p, int idx, int pkind,
                           int json_idx)
{
    int kind = LIB_PARAM_KIND_OF(pkind), elem = LIB_PARAM_ELEM_OF(pkind);
    const char *err = NULL;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        params_null(p);
        return NULL;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) != NULL)
            return "nil, sluice.null, a boolean, a number, a string, an "
                   "int64 cdata or a table (not a light userdata)";
        params_null(p);
        return NULL;
    case LUA_TBOOLEAN:
        params_begin(p);
    {
        const char *t = copy_bool_text(lua_toboolean(L, idx), kind);
        put(L, &p->data, t, strlen(t));
    }
        break;
    case LUA_TNUMBER:
        err = put_number(L, p, idx, kind);
        break;
    case LUA_TSTRING:
        err = put_string(L, p, idx, kind);
        break;
    case LUA_TTABLE:
        err = put_table(L, p, idx, kind, elem, json_idx);
        break;
    default:
        err = put_cdata(L, p, idx);
        break;
    }
    if (err)
        return err;
    int rc = params_end(p, 0);
    if (rc == SL_ERANGE)
        return "a value of at most 2147483647 bytes";
    if (rc != SL_OK)
        oom(L);
    return NULL;
}

/* The SQLSTATE the server gives a value lib_params_put() refused as not
 * `want`: a NUL byte 22021, out of range 22003 (numbers) or 22008
 * (timestamps), too many array dimensions 54000, else 22P02. */
static const char *refusal_state(const char *want)
{
    if (strstr(want, "NUL bytes"))
        return "22021";
    if (strstr(want, "epoch") || strstr(want, "timestamp"))
        return "22008";
    if (strstr(want, "dimension"))
        return "54000";
    if (strstr(want, "2^53") || strstr(want, "range"))
        return "22003";
    return "22P02";
}

void lib_params_refusal(lua_State *L, const char *want, const char *msg,
                        const char *field, const char *name)
{
    lib_push_error(L, refusal_state(want), msg, NULL, NULL);
    lib_set_field(L, field, name);
    lib_set_user_where(L);
    lua_error(L);
}

void lib_params_kinds(lua_State *L, sl_conn *c, int conn_idx,
                      const PGresult *d, int n, int *kinds)
{
    int top = lua_gettop(L), other = 0;
    Oid *oids = lua_newuserdata(L, sizeof(Oid) * (size_t)(n ? n : 1));
    luaL_Buffer sql;
    luaL_buffinit(L, &sql);
    luaL_addstring(&sql, "select oid, typelem, case when typname in "
                         "('vector', 'halfvec', 'sparsevec') and "
                         "typreceive::text = typname || '_recv' then "
                         "typname end from pg_type where (typcategory = "
                         "'A' or typname in ('vector', 'halfvec', "
                         "'sparsevec')) and oid in (0");
    for (int i = 0; i < n; i++) {
        oids[i] = d && i < PQnparams(d) ? PQparamtype(d, i) : 0;
        kinds[i] = copy_kind_of(oids[i]);
        if (kinds[i] == COPY_K_OTHER && oids[i]) {
            char num[16];
            snprintf(num, sizeof num, ",%u", (unsigned)oids[i]);
            luaL_addstring(&sql, num);
            other = 1;
        }
    }
    luaL_addchar(&sql, ')');
    luaL_pushresult(&sql);
    if (other) {
        /* the types without an encoder of their own: arrays take Lua
         * arrays (elements by their own type's kind), the others not */
        PGresult *r = lib_conn_finish(L, c, conn_idx,
                                      PQsendQuery(c->pg, lua_tostring(L, -1)));
        for (int row = 0; r && row < PQntuples(r); row++) {
            Oid t = (Oid)strtoul(PQgetvalue(r, row, 0), NULL, 10);
            Oid e = (Oid)strtoul(PQgetvalue(r, row, 1), NULL, 10);
            const char *vec = PQgetisnull(r, row, 2) ? NULL
                                                     : PQgetvalue(r, row, 2);
            int k = !vec ? LIB_PARAM_KIND(COPY_K_ARRAY, copy_kind_of(e))
                    : vec[0] == 'v' ? COPY_K_VECTOR
                    : vec[0] == 'h' ? COPY_K_HALFVEC : COPY_K_SPARSEVEC;
            for (int i = 0; i < n; i++)
                if (oids[i] == t)
                    kinds[i] = k;
        }
    }
    lua_settop(L, top);
}
