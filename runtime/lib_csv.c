/*
 * lib_csv.c - Lua binding of the CSV reader (csvread.c) and the raw CSV-file
 * to COPY pass-through.
 *
 *   sluice.csv.open(path [, opts]) -> reader      ("sluice.csv" userdata)
 *   sluice.csv.rows(path [, opts]) -> iterator    for row, n in ... do
 *   reader:next() -> row, n | nil;  reader:record() -> text | nil;
 *   reader:position() -> pos;  reader:seek(pos);  reader:identity() -> id;
 *   reader:close()
 *   reader.line, reader.offset, reader.record_offset, reader.header,
 *   reader.path, reader.bytes_read, reader.file_size
 *   db:copy_from_file(table, path [, opts]) -> rows loaded
 *
 * Caveats:
 * - One C call per row: the reader parses up to the end of one record in C
 *   (csvread_next never calls Lua), then the row table is built here, or
 *   (rows()) by csv.lua's iterator from a view of the record through the
 *   FFI (see "FFI rows" below).  A Lua error while building it (out of
 *   memory) cannot cross a zlib frame, and leaves nothing behind: the
 *   reader userdata owns every buffer and the file.
 * - At the end of the input or on an error the reader frees its file and
 *   buffers at once (a rows() loop that ends releases the file without
 *   waiting for the garbage collector); line and offset stay readable.
 * - copy_from_file sends decompressed blocks as they are: Lua never sees a
 *   row, the server parses the CSV.  It runs on the one COPY engine
 *   (copy.c: copy_begin, copy_put_pieces, copy_end) and the one result
 *   loop (pgconn_collect), so a full socket is waited for in poll() and
 *   Ctrl-C is noticed as for every other COPY.
 */
#include "lib.h"
#include "copy.h"
#include "csvread.h"
#include "interrupt.h"
#include "numfmt.h"
#include "pgconn.h"

#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Conversions of typed columns (opts.types). */
enum { CONV_NONE = 0, CONV_NUMBER, CONV_INTEGER };

/* What the FFI row builder of csv.lua reads after fast_next(): the
 * current record's field bytes and fields, the numbers of its typed
 * columns, the record number.  csv.lua declares the same struct. */
typedef struct sl_csv_view {
    const char *data;
    const csvread_field *fields;
    const double *nums;   /* nums[i]: typed column i, converted */
    double n;             /* records handed out, this one included */
} sl_csv_view;

/* fast_next() left nothing for take(): it did not read. */
#define FAST_NONE 2

typedef struct sl_csv {
    sl_csv_view v;  /* first: a pointer to the reader is one to its view */
    csvread r;
    int closed;     /* close() or __gc ran */
    int header;     /* rows are keyed by the header's names (in the fenv) */
    long long n;    /* data records handed out */
    unsigned char *conv; /* conv[i]: conversion of field i (i < nconv); the
                            memory is a userdata anchored in the fenv */
    size_t nconv;
    csvread_opts o; /* as opened (o.null anchored in the fenv): seek opens
                       the file again after the reader freed it */
    long long data_start; /* offset of the first data record */
    int bad_record; /* the last record was handed out but failed a
                       conversion: the position is its start */
    double size;    /* bytes of the file when it is a regular one, else 0
                       (reader.file_size, for progress) */
    int fast_rc;    /* csvread_next's answer that fast_next() left for
                       take() (FAST_NONE: it read nothing) */
    double *nums;   /* nconv numbers of the typed columns, for the view
                       (memory anchored in the fenv with conv) */
} sl_csv;

/* The size of the reader's input when it is a regular file, else 0. */
static double input_size(const csvread *r)
{
    struct stat st;
    if (r->fd_open && fstat(r->fd, &st) == 0 && S_ISREG(st.st_mode))
        return (double)st.st_size;
    return 0;
}

/* ---------------------------------------------------------------- options */

static void check_keys(lua_State *L, int t, const char *fname,
                       const char *const *keys)
{
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        // stack: ..., key
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "%s: option names must be strings, got a %s",
                       fname, luaL_typename(L, -1));
        const char *k = lua_tostring(L, -1);
        int i = 0;
        while (keys[i] && strcmp(keys[i], k) != 0)
            i++;
        if (!keys[i])
            luaL_error(L, "%s: unknown option '%s'", fname, k);
    }
}

static int opt_bool(lua_State *L, int t, const char *key, int dflt,
                    const char *fname)
{
    lua_getfield(L, t, key);
    int v = dflt;
    if (!lua_isnil(L, -1)) {
        if (!lua_isboolean(L, -1))
            luaL_error(L, "%s: option %s must be a boolean, got a %s", fname,
                       key, luaL_typename(L, -1));
        v = lua_toboolean(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

/* A string option, or NULL when absent.  The string stays anchored by the
 * options table, which the caller keeps on the stack. */
static const char *opt_string(lua_State *L, int t, const char *key,
                              size_t *len, const char *fname)
{
    lua_getfield(L, t, key);
    const char *s = NULL;
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "%s: option %s must be a string, got a %s", fname,
                       key, luaL_typename(L, -1));
        s = lua_tolstring(L, -1, len);
    }
    lua_pop(L, 1);
    return s;
}

static unsigned char opt_char(lua_State *L, int t, const char *key,
                              unsigned char dflt, const char *fname)
{
    size_t len;
    const char *s = opt_string(L, t, key, &len, fname);
    if (!s)
        return dflt;
    if (len != 1 || s[0] == '\r' || s[0] == '\n')
        luaL_error(L, "%s: option %s must be one character (a single byte, "
                      "not a line end)", fname, key);
    return (unsigned char)s[0];
}

static const char *const reader_keys[] = {
    "header", "delimiter", "quote", "null", "strict", "encoding", "skip",
    "types", "stray_quotes", NULL,
};

/* Read the reader options at index t (a table or nil). */
static void reader_opts(lua_State *L, int t, const char *fname,
                        csvread_opts *o, int *header)
{
    memset(o, 0, sizeof *o);
    o->delim = ',';
    o->quote = '"';
    o->strict = 1;
    o->stray_quotes = 1;
    o->check_utf8 = 1;
    *header = 1;
    if (lua_isnoneornil(L, t))
        return;
    if (!lua_istable(L, t))
        luaL_error(L, "%s: opts must be a table, got a %s", fname,
                   luaL_typename(L, t));
    check_keys(L, t, fname, reader_keys);
    *header = opt_bool(L, t, "header", 1, fname);
    o->strict = opt_bool(L, t, "strict", 1, fname);
    o->stray_quotes = opt_bool(L, t, "stray_quotes", 1, fname);
    o->delim = opt_char(L, t, "delimiter", ',', fname);
    o->quote = opt_char(L, t, "quote", '"', fname);
    if (o->delim == o->quote)
        luaL_error(L, "%s: delimiter and quote must differ", fname);
    o->null = opt_string(L, t, "null", &o->null_len, fname);

    lua_getfield(L, t, "encoding");
    if (lua_isboolean(L, -1)) {
        o->check_utf8 = lua_toboolean(L, -1);
    } else if (!lua_isnil(L, -1)) {
        const char *e = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                       : "";
        if (strcmp(e, "utf8") != 0 && strcmp(e, "utf-8") != 0 &&
            strcmp(e, "UTF8") != 0 && strcmp(e, "UTF-8") != 0)
            luaL_error(L, "%s: option encoding must be \"utf8\" (checked) or "
                          "false (bytes as they are)", fname);
    }
    lua_pop(L, 1);
    /* a byte above 127 cannot be a whole UTF-8 character */
    if (o->check_utf8 && (o->delim >= 0x80 || o->quote >= 0x80))
        luaL_error(L, "%s: a delimiter or quote byte above 127 needs "
                      "encoding = false", fname);

    lua_getfield(L, t, "skip");
    if (!lua_isnil(L, -1)) {
        lua_Number v = lua_tonumber(L, -1);
        if (lua_type(L, -1) != LUA_TNUMBER || v < 0 || v != (long long)v)
            luaL_error(L, "%s: option skip must be a whole number >= 0",
                       fname);
        o->skip = (long long)v;
    }
    lua_pop(L, 1);
}

/* ---------------------------------------------------------------- reader */

static sl_csv *new_reader(lua_State *L)
{
    sl_csv *u = lua_newuserdata(L, sizeof *u);
    memset(u, 0, sizeof *u); /* no resource yet: __gc is a no-op */
    u->fast_rc = FAST_NONE;
    luaL_getmetatable(L, SLUICE_CSV_MT);
    lua_setmetatable(L, -2);
    lua_newtable(L); /* the header's names, when rows are keyed */
    lua_setfenv(L, -2);
    return u;
}

static sl_csv *check_reader(lua_State *L, int idx)
{
    sl_csv *u = luaL_checkudata(L, idx, SLUICE_CSV_MT);
    if (u->closed)
        luaL_error(L, "the CSV reader is closed");
    return u;
}

/* Free the file and buffers now and raise the reader's error message as it
 * is ("name:line: what"): no position of ours to add. */
static int raise_reader(lua_State *L, sl_csv *u)
{
    csvread_release(&u->r);
    lua_pushstring(L, u->r.err);
    return lua_error(L);
}

/* A typed field that does not convert: free the file and raise
 * "name:line: column "amount": "12,5" is not a number". */
static void raise_conv(lua_State *L, sl_csv *u, int ud, size_t i,
                       const char *what)
{
    const csvread *r = &u->r;
    const csvread_field *f = &r->fields[i];
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    lua_pushfstring(L, "%s:%d: column ", r->name, (int)r->rec_start_line);
    luaL_addvalue(&b);
    lua_getfenv(L, ud);
    lua_rawgeti(L, -1, (int)i + 1);
    if (u->header && lua_type(L, -1) == LUA_TSTRING)
        lua_pushfstring(L, "\"%s\"", lua_tostring(L, -1));
    else
        lua_pushfstring(L, "%d", (int)i + 1);
    lua_replace(L, -3);
    lua_pop(L, 1);
    luaL_addvalue(&b);
    /* the value as it was, cut short when long */
    size_t len = f->len > 60 ? 60 : f->len;
    lua_pushfstring(L, ": \"%s", "");
    luaL_addvalue(&b);
    luaL_addlstring(&b, r->data + f->off, len);
    lua_pushfstring(L, "%s\" %s", f->len > len ? "..." : "", what);
    luaL_addvalue(&b);
    luaL_pushresult(&b);
    /* the reader has failed: later calls repeat this message */
    snprintf(u->r.err, sizeof u->r.err, "%s", lua_tostring(L, -1));
    u->bad_record = 1;
    u->r.state = CSVREAD_FAILED;
    csvread_release(&u->r);
    lua_error(L);
}

/* Push the current record's field i as a Lua value: a string, sluice.null,
 * or a number for a typed column. */
static void push_field(lua_State *L, sl_csv *u, int ud, size_t i)
{
    const csvread *r = &u->r;
    const csvread_field *f = &r->fields[i];
    if (f->is_null) {
        lua_pushlightuserdata(L, NULL); /* sluice.null */
        return;
    }
    const char *s = r->data + f->off;
    int conv = i < u->nconv ? u->conv[i] : CONV_NONE;
    if (conv == CONV_NUMBER) {
        double d;
        if (numparse_double(s, f->len, &d) < 0) /* inf/0 on overflow, as tonumber */
            raise_conv(L, u, ud, i, "is not a number");
        lua_pushnumber(L, d);
    } else if (conv == CONV_INTEGER) {
        int64_t x;
        int rc = numparse_int64(s, f->len, &x);
        if (rc < 0)
            raise_conv(L, u, ud, i, "is not an integer");
        if (rc > 0)
            raise_conv(L, u, ud, i, "is out of range for a 64-bit integer");
        lib_push_int8(L, x, s, f->len);
    } else {
        lua_pushlstring(L, s, f->len);
    }
}

/* Read the header record into the names table (the reader's fenv at
 * index ud).  Duplicate names are an error: keyed rows would lose data. */
static void read_header(lua_State *L, sl_csv *u, int ud)
{
    int rc = csvread_next(&u->r);
    if (rc < 0)
        raise_reader(L, u);
    if (rc == 0)
        return; /* an empty file: no header, no rows */
    lua_getfenv(L, ud);
    lua_newtable(L);
    // stack: ..., names, seen
    for (size_t i = 0; i < u->r.nfields; i++) {
        const csvread_field *f = &u->r.fields[i];
        /* a header name is its text, even when it matches null */
        lua_pushlstring(L, u->r.data + f->off, f->len);
        lua_pushvalue(L, -1);
        lua_rawget(L, -3);
        if (!lua_isnil(L, -1)) {
            lua_pushfstring(L, "%s:%d: duplicate column name \"%s\" in the "
                               "header (header = false reads rows as arrays)",
                            u->r.name, (int)u->r.rec_start_line,
                            lua_tostring(L, -2));
            csvread_release(&u->r);
            lua_error(L);
        }
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_pushboolean(L, 1);
        lua_rawset(L, -4);
        lua_rawseti(L, -3, (int)i + 1);
    }
    lua_pop(L, 2);
}

static int conv_of(lua_State *L, int v, const char *fname)
{
    const char *t = lua_type(L, v) == LUA_TSTRING ? lua_tostring(L, v) : "";
    if (strcmp(t, "number") == 0)
        return CONV_NUMBER;
    if (strcmp(t, "integer") == 0)
        return CONV_INTEGER;
    if (strcmp(t, "string") == 0)
        return CONV_NONE;
    return luaL_error(L, "%s: option types: %s%s%s is not a type (use "
                         "\"number\", \"integer\" or \"string\")", fname,
                      *t ? "\"" : "a ", *t ? t : luaL_typename(L, v),
                      *t ? "\"" : "");
}

/* The column (1-based) named by the key of an opts.types entry (lua_next's
 * key at -2, its value at -1): a position, or a name of the header (nh
 * names in the table at index names).  Raises for a key that names no
 * column. */
static size_t type_column(lua_State *L, sl_csv *u, int names, size_t nh,
                          const char *fname)
{
    if (lua_type(L, -2) == LUA_TNUMBER) {
        lua_Number k = lua_tonumber(L, -2);
        if (k < 1 || k != (lua_Number)(size_t)k || k > 1e6)
            luaL_error(L, "%s: option types: %s is not a column position",
                       fname, lua_tostring(L, -2));
        return (size_t)k;
    }
    if (lua_type(L, -2) != LUA_TSTRING)
        luaL_error(L, "%s: option types: keys must be column names or "
                      "positions, got a %s", fname, luaL_typename(L, -2));
    if (!u->header)
        luaL_error(L, "%s: option types: column \"%s\" is named, but "
                      "header = false (name columns by position)",
                   fname, lua_tostring(L, -2));
    size_t pos = 0;
    for (size_t i = 1; i <= nh && !pos; i++) {
        lua_rawgeti(L, names, (int)i);
        if (lua_rawequal(L, -1, -3))
            pos = i;
        lua_pop(L, 1);
    }
    if (!pos)
        luaL_error(L, "%s: option types: the header has no column \"%s\"",
                   fname, lua_tostring(L, -2));
    return pos;
}

/* opts.types (at index t of the options, or absent): column -> "number" |
 * "integer" | "string", columns named by the header's names or by
 * position.  Builds u->conv, anchored in the reader's fenv (index ud). */
static void read_types(lua_State *L, sl_csv *u, int ud, int opts,
                       const char *fname)
{
    if (lua_isnoneornil(L, opts))
        return;
    lua_getfield(L, opts, "types");
    int types = lua_gettop(L);
    if (lua_isnil(L, types)) {
        lua_pop(L, 1);
        return;
    }
    if (!lua_istable(L, types))
        luaL_error(L, "%s: option types must be a table (column -> type), "
                      "got a %s", fname, luaL_typename(L, types));
    lua_getfenv(L, ud);
    int names = lua_gettop(L);
    size_t nh = u->header ? lua_objlen(L, names) : 0;
    if (u->header && nh == 0) {
        /* an empty file: no header to name columns, and no rows */
        lua_pop(L, 2);
        return;
    }
    /* first pass: check every entry, and find the highest position */
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, types)) {
        size_t pos = type_column(L, u, names, nh, fname);
        conv_of(L, -1, fname);
        if (pos > n)
            n = pos;
        lua_pop(L, 1);
    }
    if (n == 0) {
        lua_pop(L, 2);
        return;
    }
    /* n numbers for the view, then the n conversion codes */
    double *nums = lua_newuserdata(L, n * (sizeof *nums + 1));
    unsigned char *conv = (unsigned char *)(nums + n);
    memset(nums, 0, n * (sizeof *nums + 1));
    lua_setfield(L, names, "types"); /* anchored for the reader's life */
    lua_pushnil(L);
    while (lua_next(L, types)) {
        size_t pos = type_column(L, u, names, nh, fname);
        conv[pos - 1] = (unsigned char)conv_of(L, -1, fname);
        lua_pop(L, 1);
    }
    u->conv = conv;
    u->nums = nums;
    u->v.nums = nums;
    u->nconv = n;
    lua_pop(L, 2);
}

/* Open a reader from the arguments (path, opts); leaves it on the stack. */
static void open_reader(lua_State *L, const char *fname)
{
    const char *path = luaL_checkstring(L, 1);
    csvread_opts o;
    int header;
    reader_opts(L, 2, fname, &o, &header);
    sl_csv *u = new_reader(L);
    int ud = lua_gettop(L);
    lua_getfenv(L, ud);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "path"); /* as given, readable after the end */
    if (o.null) {
        lua_pushlstring(L, o.null, o.null_len);
        o.null = lua_tostring(L, -1);
        lua_setfield(L, -2, "null"); /* u->o.null stays valid */
    }
    lua_pop(L, 1);
    u->o = o;
    if (csvread_open(&u->r, path, &o) < 0)
        raise_reader(L, u);
    u->size = input_size(&u->r);
    u->header = header;
    if (header) {
        read_header(L, u, ud);
        u->data_start = u->r.next_offset;
    }
    read_types(L, u, ud, 2, fname);
}

/* sluice.csv.open(path [, opts]) -> reader */
int lib_csv_open(lua_State *L)
{
    open_reader(L, "sluice.csv.open");
    return 1;
}

/* Push what csv_next returns for csvread_next's answer rc (the reader at
 * index 1, u->n already counting a record read): row, n; nil at the end;
 * or raise the reader's error. */
static int push_next(lua_State *L, sl_csv *u, int rc)
{
    if (rc <= 0) {
        /* the reader reports a read() cut short by a signal (stdin, a
         * pipe) as a read error: raise the interrupt instead */
        if (rc < 0 && interrupt_pending()) {
            csvread_release(&u->r);
            int sig = lib_interrupt_consume(L);
            return luaL_error(L, "interrupted (%s)", interrupt_name(sig));
        }
        if (rc < 0)
            return raise_reader(L, u);
        csvread_release(&u->r);
        lua_pushnil(L);
        return 1;
    }
    const csvread *r = &u->r;
    size_t nf = r->nfields;
    if (u->header) {
        lua_getfenv(L, 1);
        int names = lua_gettop(L);
        size_t nh = lua_objlen(L, names);
        lua_createtable(L, nf > nh ? (int)(nf - nh) : 0, (int)nh);
        // stack: reader, ..., names, row
        for (size_t i = 0; i < nf; i++) {
            if (i < nh) {
                lua_rawgeti(L, names, (int)i + 1);
                push_field(L, u, 1, i);
                lua_rawset(L, -3);
            } else { /* beyond the header (strict = false): by position */
                push_field(L, u, 1, i);
                lua_rawseti(L, -2, (int)i + 1);
            }
        }
        lua_remove(L, names);
    } else {
        lua_createtable(L, (int)nf, 0);
        for (size_t i = 0; i < nf; i++) {
            push_field(L, u, 1, i);
            lua_rawseti(L, -2, (int)i + 1);
        }
    }
    lua_pushnumber(L, (lua_Number)u->n);
    return 2;
}

/* reader:next() -> row, n | nil; also the iterator function of rows(). */
static int csv_next(lua_State *L)
{
    sl_csv *u = check_reader(L, 1);
    u->fast_rc = FAST_NONE;
    int rc = csvread_next(&u->r);
    if (rc > 0)
        u->n++;
    return push_next(L, u, rc);
}

/* ------------------------------------------------------------ FFI rows
 *
 * rows() hands out an iterator that csv.lua writes in Lua for the
 * reader's shape (its header's names, or its width; its typed columns):
 * it calls fast_next() through the FFI, then builds the row itself
 * from the view (ffi.string per field, a table constructor with the
 * header's names as constant keys), so a compiled loop never leaves its
 * trace for a row.  Whatever it does not build (the end, an error, a row
 * of another width, a NULL or a value the view cannot hold, an
 * interrupt, a closed reader) goes to take(), the classic path above,
 * which builds the row or raises as reader:next() does. */

/* Convert the typed columns of the current record into u->nums.  Returns
 * 0 when one cannot be held there (not a number, an integer beyond 2^53:
 * push_field raises, or makes an int64 cdata). */
static int fast_convert(sl_csv *u)
{
    const csvread *r = &u->r;
    size_t n = u->nconv < r->nfields ? u->nconv : r->nfields;
    for (size_t i = 0; i < n; i++) {
        const csvread_field *f = &r->fields[i];
        if (u->conv[i] == CONV_NONE || f->is_null)
            continue;
        const char *s = r->data + f->off;
        if (u->conv[i] == CONV_NUMBER) {
            if (numparse_double(s, f->len, &u->nums[i]) < 0)
                return 0;
        } else {
            int64_t x;
            if (numparse_int64(s, f->len, &x) != 0 || x < -(1LL << 53) ||
                x > (1LL << 53))
                return 0;
            u->nums[i] = (double)x;
        }
    }
    return 1;
}

/* Called through the FFI with the reader's view (never raises, never
 * calls Lua): read the next record.  Returns its field count with the
 * view set when the Lua builder may make the row; 0 when take() must:
 * then u->fast_rc is csvread_next's answer, or FAST_NONE when nothing was
 * read (the reader is closed, or an interrupt is pending: compiled code
 * runs no hooks, so the loop notices Ctrl-C here at its next row). */
static int fast_next(sl_csv_view *v)
{
    sl_csv *u = (sl_csv *)v; /* the view is its first member */
    u->fast_rc = FAST_NONE;
    if (u->closed || (interrupt_pending() && !interrupt_held()))
        return 0;
    int rc = csvread_next(&u->r);
    u->fast_rc = rc;
    if (rc <= 0)
        return 0;
    u->n++;
    if (u->nconv && !fast_convert(u))
        return 0;
    u->v.data = u->r.data;
    u->v.fields = u->r.fields;
    u->v.n = (double)u->n;
    return u->r.nfields > INT_MAX ? 0 : (int)u->r.nfields;
}

/* take(reader) -> row, n | nil: what fast_next() left to the classic
 * path. */
static int csv_take(lua_State *L)
{
    sl_csv *u = luaL_checkudata(L, 1, SLUICE_CSV_MT);
    lua_settop(L, 1);
    int rc = u->fast_rc;
    u->fast_rc = FAST_NONE;
    if (rc == FAST_NONE) {
        check_reader(L, 1);
        if (interrupt_pending() && !interrupt_held()) {
            int sig = lib_interrupt_consume(L);
            return luaL_error(L, "interrupted (%s)", interrupt_name(sig));
        }
        return csv_next(L);
    }
    return push_next(L, u, rc);
}

/* Hand the reader on top of the stack (at index ud) to csv.lua's builder
 * of iterators, when it installed one: pushes its iterator, or nothing
 * (the reader's shape is one it does not take, e.g. too wide). */
static int push_fast_iter(lua_State *L, sl_csv *u, int ud)
{
    lua_getfield(L, LUA_REGISTRYINDEX, SLUICE_REG_CSVROWS);
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    int (*next)(sl_csv_view *) = fast_next;
    void *fn;
    memcpy(&fn, &next, sizeof fn); /* a function's address as data */
    lua_pushvalue(L, ud);
    lua_pushlightuserdata(L, &u->v);
    lua_pushlightuserdata(L, fn);
    lua_pushcfunction(L, csv_take);
    // stack: ..., builder, reader, view, next, take
    if (u->header) {
        lua_getfenv(L, ud);
        int n = (int)lua_objlen(L, -1);
        lua_createtable(L, n, 0);
        for (int i = 1; i <= n; i++) {
            lua_rawgeti(L, -2, i);
            lua_rawseti(L, -2, i);
        }
        lua_remove(L, -2);
    } else {
        lua_pushboolean(L, 0);
    }
    lua_createtable(L, (int)u->nconv, 0);
    for (size_t i = 0; i < u->nconv; i++) {
        lua_pushinteger(L, u->conv[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_pushboolean(L, u->o.null != NULL);
    // stack: ..., builder, reader, view, next, take, names|false, kinds, null
    lua_call(L, 7, 1);
    if (lua_isfunction(L, -1))
        return 1;
    lua_pop(L, 1);
    return 0;
}

/* rows()'s iterator: the reader is its upvalue, so it needs no state
 * (sluice.load calls it alone). */
static int csv_iter(lua_State *L)
{
    lua_settop(L, 0);
    lua_pushvalue(L, lua_upvalueindex(1));
    return csv_next(L);
}

/* The registry key of the table iterator -> reader (weak keys: an entry
 * goes with its iterator). */
static char iter_readers_key;

static void push_iter_readers(lua_State *L)
{
    lua_pushlightuserdata(L, &iter_readers_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_createtable(L, 0, 1);
        lua_pushliteral(L, "k");
        lua_setfield(L, -2, "__mode");
        lua_setmetatable(L, -2);
        lua_pushlightuserdata(L, &iter_readers_key);
        lua_pushvalue(L, -2);
        lua_rawset(L, LUA_REGISTRYINDEX);
    }
}

/* sluice.csv.rows(path [, opts]) -> iterator, reader (for a generic for,
 * or called alone: it() -> row, n | nil) */
int lib_csv_rows(lua_State *L)
{
    open_reader(L, "sluice.csv.rows");
    // stack: ..., reader
    sl_csv *u = lua_touserdata(L, -1);
    if (!push_fast_iter(L, u, lua_gettop(L))) {
        lua_pushvalue(L, -1);
        lua_pushcclosure(L, csv_iter, 1);
    }
    push_iter_readers(L);
    lua_pushvalue(L, -2);
    lua_pushvalue(L, -4);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    // stack: ..., reader, iterator
    lua_insert(L, -2);
    return 2;
}

int lib_csv_is_reader(lua_State *L)
{
    lua_pushboolean(L, luaL_testudata(L, 1, SLUICE_CSV_MT) != NULL);
    return 1;
}

/* sluice.csv.reader_of(iterator) -> the reader of a rows() iterator, or
 * nil */
int lib_csv_reader_of(lua_State *L)
{
    lua_settop(L, 1);
    if (lua_type(L, 1) != LUA_TFUNCTION) {
        lua_pushnil(L);
        return 1;
    }
    push_iter_readers(L);
    lua_pushvalue(L, 1);
    lua_rawget(L, -2);
    return 1;
}

/* ------------------------------------------------------------- positions */

/* "offset:line:record:width": where the next record starts in the
 * decompressed input, its line, the records handed out before it, the
 * field count records must have (0: not known yet). */
static int csv_position(lua_State *L)
{
    sl_csv *u = check_reader(L, 1);
    const csvread *r = &u->r;
    long long off = r->next_offset, line = r->next_line, n = u->n;
    if (u->bad_record) { /* it is the next record again */
        off = r->rec_offset;
        line = r->rec_start_line;
        n--;
    }
    char buf[96];
    snprintf(buf, sizeof buf, "%lld:%lld:%lld:%zu", off, line, n, r->expect);
    lua_pushstring(L, buf);
    return 1;
}

/* Parse "offset:line:record:width" (decimal digits only) into v. */
static int parse_position(const char *s, size_t len, long long v[4])
{
    const char *p = s, *end = s + len;
    for (int i = 0; i < 4; i++) {
        if (p == end || *p < '0' || *p > '9')
            return 0;
        long long x = 0;
        while (p < end && *p >= '0' && *p <= '9') {
            if (x > (LLONG_MAX - 9) / 10)
                return 0;
            x = x * 10 + (*p++ - '0');
        }
        v[i] = x;
        if (i < 3 && (p == end || *p++ != ':'))
            return 0;
    }
    return p == end && v[1] >= 1 && v[3] <= (long long)CSVREAD_MAX_RECORD;
}

/* The reader freed its file (at the end, on an error): open it again, as
 * it was opened (the header's names are kept in the fenv). */
static void reopen(lua_State *L, sl_csv *u)
{
    lua_getfenv(L, 1);
    lua_getfield(L, -1, "path");
    const char *path = lua_tostring(L, -1);
    csvread_release(&u->r);
    memset(&u->r, 0, sizeof u->r);
    if (csvread_open(&u->r, path, &u->o) < 0)
        raise_reader(L, u);
    u->size = input_size(&u->r);
    lua_pop(L, 2);
}

/* reader:seek(pos): go back (or forward) to a position that position()
 * returned, in this reader or another of the same file. */
static int csv_seek(lua_State *L)
{
    sl_csv *u = check_reader(L, 1);
    size_t len;
    const char *s = luaL_checklstring(L, 2, &len);
    long long v[4];
    if (!parse_position(s, len, v))
        return luaL_error(L, "seek: invalid position \"%s\" (expected what "
                             "position() returns: offset:line:record:width)",
                          s);
    if (u->header && v[0] < u->data_start) {
        char end[32];
        snprintf(end, sizeof end, "%lld", u->data_start);
        return luaL_error(L, "seek: position %s is before the first record "
                             "(the header ends at byte %s)", s, end);
    }
    if (!u->r.buf && !u->r.is_stdin)
        reopen(L, u);
    if (csvread_seek(&u->r, v[0], v[1], (size_t)v[3]) < 0) {
        if (u->r.state == CSVREAD_FAILED)
            return raise_reader(L, u);
        lua_pushstring(L, u->r.err);
        return lua_error(L);
    }
    u->n = v[2];
    u->bad_record = 0;
    return 0;
}

/* reader:identity() -> "csv <path> size=... mtime=... crc32=...
 * delimiter=0x2c quote=0x22 header=true skip=0": the file and the options
 * that decide where its records are. */
static int csv_identity(lua_State *L)
{
    sl_csv *u = check_reader(L, 1);
    lua_getfenv(L, 1);
    lua_getfield(L, -1, "path");
    const char *path = lua_tostring(L, -1);
    char id[512];
    if (csvread_identity(&u->r, path, id, sizeof id) < 0) {
        lua_pushstring(L, id);
        return lua_error(L);
    }
    char opts[96];
    snprintf(opts, sizeof opts, " delimiter=0x%02x quote=0x%02x header=%s "
             "skip=%lld", u->o.delim, u->o.quote, u->header ? "true" : "false",
             u->o.skip);
    lua_pushfstring(L, "csv %s %s%s", path, id, opts);
    return 1;
}

/* reader:record() -> the last record's text as it is in the input (line
 * end left out), or nil when there is none (before the first record,
 * after the end or an error: the reader's buffers are gone then). */
static int csv_record(lua_State *L)
{
    sl_csv *u = check_reader(L, 1);
    const char *p;
    size_t n;
    if (csvread_record(&u->r, &p, &n) < 0) {
        if (u->r.buf && u->r.rec_ended) /* there was one: no memory */
            return luaL_error(L, "out of memory");
        lua_pushnil(L);
        return 1;
    }
    lua_pushlstring(L, p, n);
    return 1;
}

static int csv_close(lua_State *L)
{
    sl_csv *u = luaL_checkudata(L, 1, SLUICE_CSV_MT);
    csvread_release(&u->r);
    u->closed = 1;
    return 0;
}

static int csv_tostring(lua_State *L)
{
    sl_csv *u = luaL_checkudata(L, 1, SLUICE_CSV_MT);
    if (u->closed || !u->r.name)
        lua_pushfstring(L, "sluice.csv (%s)", u->closed ? "closed" : "done");
    else
        lua_pushfstring(L, "sluice.csv (%s, line %d)", u->r.name,
                        (int)u->r.rec_start_line);
    return 1;
}

/* __index: the properties line, offset, record_offset, path, header,
 * bytes_read and file_size, else a method (the
 * methods table is upvalue 1, so Lua code can add methods to it). */
static int csv_index(lua_State *L)
{
    sl_csv *u = luaL_checkudata(L, 1, SLUICE_CSV_MT);
    const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "";
    if (strcmp(k, "line") == 0) {
        lua_pushnumber(L, (lua_Number)u->r.rec_start_line);
    } else if (strcmp(k, "offset") == 0) {
        lua_pushnumber(L, (lua_Number)u->r.next_offset);
    } else if (strcmp(k, "record_offset") == 0) {
        lua_pushnumber(L, (lua_Number)u->r.rec_offset);
    } else if (strcmp(k, "bytes_read") == 0) {
        lua_pushnumber(L, (lua_Number)u->r.in_bytes);
    } else if (strcmp(k, "file_size") == 0) {
        if (u->size > 0)
            lua_pushnumber(L, u->size);
        else
            lua_pushnil(L);
    } else if (strcmp(k, "path") == 0) {
        lua_getfenv(L, 1);
        lua_getfield(L, -1, "path");
    } else if (strcmp(k, "header") == 0) {
        if (!u->header) {
            lua_pushnil(L);
            return 1;
        }
        /* a copy: the reader's own names must not change under it */
        lua_getfenv(L, 1);
        int n = (int)lua_objlen(L, -1);
        lua_createtable(L, n, 0);
        for (int i = 1; i <= n; i++) {
            lua_rawgeti(L, -2, i);
            lua_rawseti(L, -2, i);
        }
    } else {
        lua_settop(L, 2);
        lua_rawget(L, lua_upvalueindex(1));
    }
    return 1;
}

void lib_csv_push_field(lua_State *L)
{
    // stack: ..., methods
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, csv_index, 1);
    // stack: ..., methods, field getter
}

const luaL_Reg lib_csv_methods[] = {
    { "next", csv_next },
    { "record", csv_record },
    { "position", csv_position },
    { "seek", csv_seek },
    { "identity", csv_identity },
    { "close", csv_close },
    { NULL, NULL },
};

const luaL_Reg lib_csv_meta[] = {
    { "__gc", csv_close },
    { "__tostring", csv_tostring },
    { NULL, NULL },
};

/* ------------------------------------------------------ copy_from_file */

/* Push libpq's escaping of s (an identifier, or a literal).  The Lua copy's
 * memory is allocated before libpq's string exists, so no Lua error can
 * happen while libpq's string is alive (it would leak). */
static void push_escaped(lua_State *L, PGconn *pg, const char *s, size_t len,
                         int ident)
{
    if (len > (SIZE_MAX - 16) / 2)
        luaL_error(L, "copy_from_file: name too long");
    size_t cap = 2 * len + 16; /* quotes doubled, two quotes, " E" */
    char *dst = lua_newuserdata(L, cap);
    char *q = ident ? PQescapeIdentifier(pg, s, len)
                    : PQescapeLiteral(pg, s, len);
    if (!q) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(pg));
        msg[strcspn(msg, "\n")] = '\0';
        luaL_error(L, "copy_from_file: %s", msg);
    }
    size_t n = strlen(q);
    if (n > cap)
        n = cap; /* cannot happen: libpq's output fits the bound above */
    memcpy(dst, q, n);
    PQfreemem(q);
    lua_pushlstring(L, dst, n);
    lua_remove(L, -2);
}

static const char *const copy_keys[] = {
    "columns", "header", "delimiter", "quote", "null", "encoding",
    "quiet", /* read by lua/sluice/csv.lua */
    NULL,
};

/* The options of copy_from_file, checked: what the COPY statement says. */
typedef struct copy_opts {
    int header;
    size_t ncols; /* entries of opts.columns (0: all columns) */
    const char *val[4]; /* delimiter, quote, null, encoding; NULL: unset */
    size_t len[4];
} copy_opts;

/* Read and check the options table at t (nil: the defaults); raises
 * "copy_from_file: ..." at the first bad one. */
static void read_copy_opts(lua_State *L, int t, const char *fname,
                           copy_opts *o)
{
    memset(o, 0, sizeof *o);
    o->header = 1;
    if (lua_isnil(L, t))
        return;
    check_keys(L, t, fname, copy_keys);
    o->header = opt_bool(L, t, "header", 1, fname);
    o->val[0] = opt_string(L, t, "delimiter", &o->len[0], fname);
    o->val[1] = opt_string(L, t, "quote", &o->len[1], fname);
    if ((o->val[0] && o->len[0] != 1) || (o->val[1] && o->len[1] != 1))
        luaL_error(L, "%s: options delimiter and quote must be one "
                      "character", fname);
    o->val[2] = opt_string(L, t, "null", &o->len[2], fname);
    o->val[3] = opt_string(L, t, "encoding", &o->len[3], fname);
    lua_getfield(L, t, "columns");
    if (!lua_isnil(L, -1)) {
        o->ncols = lua_istable(L, -1) ? lua_objlen(L, -1) : 0;
        if (o->ncols == 0)
            luaL_error(L, "%s: option columns must be a non-empty array "
                          "of column names", fname);
        for (size_t i = 1; i <= o->ncols; i++) {
            lua_rawgeti(L, -1, (int)i);
            if (lua_type(L, -1) != LUA_TSTRING || lua_objlen(L, -1) == 0)
                luaL_error(L, "%s: columns[%d] must be a non-empty string",
                           fname, (int)i);
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
}

/* Append table to the string on top, each part of schema.table quoted on
 * its own. */
static void append_table_name(lua_State *L, PGconn *pg, const char *table,
                              size_t tlen)
{
    for (const char *p = table, *end = table + tlen; p < end;) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        size_t n = dot ? (size_t)(dot - p) : (size_t)(end - p);
        push_escaped(L, pg, p, n, 1);
        lua_concat(L, 2);
        p += n;
        if (dot) {
            lua_pushliteral(L, ".");
            lua_concat(L, 2);
            p++;
        }
    }
}

/* Append the rest after the table name: the column list (the array at
 * index cols), FROM STDIN and the options given, quoted as literals. */
static void append_copy_rest(lua_State *L, PGconn *pg, int cols,
                             const copy_opts *o)
{
    for (size_t i = 1; i <= o->ncols; i++) {
        size_t n;
        lua_pushstring(L, i == 1 ? " (" : ", ");
        lua_rawgeti(L, cols, (int)i);
        const char *col = lua_tolstring(L, -1, &n);
        push_escaped(L, pg, col, n, 1);
        lua_remove(L, -2);
        lua_concat(L, 3);
    }
    lua_pushfstring(L, "%s FROM STDIN (FORMAT csv, HEADER %s",
                    o->ncols ? ")" : "", o->header ? "true" : "false");
    lua_concat(L, 2);
    const char *const names[] = { ", DELIMITER ", ", QUOTE ", ", NULL ",
                                  ", ENCODING " };
    for (int i = 0; i < 4; i++) {
        if (!o->val[i])
            continue;
        lua_pushstring(L, names[i]);
        push_escaped(L, pg, o->val[i], o->len[i], 0);
        lua_concat(L, 3);
    }
    lua_pushliteral(L, ")");
    lua_concat(L, 2);
}

/* Push the COPY statement for (table, opts at index t).  Checks every
 * option before building anything. */
static void push_copy_sql(lua_State *L, PGconn *pg, const char *table,
                          size_t tlen, int t)
{
    const char *fname = "copy_from_file";
    copy_opts o;
    read_copy_opts(L, t, fname, &o);
    if (tlen == 0 || table[0] == '.' || table[tlen - 1] == '.' ||
        strstr(table, ".."))
        luaL_error(L, "%s: invalid table name '%s'", fname, table);

    /* pieces are appended to one accumulating string (lua_concat): a
     * luaL_Buffer would not allow the column table on the stack */
    if (o.ncols)
        lua_getfield(L, t, "columns");
    else
        lua_pushnil(L);
    int cols = lua_gettop(L);
    lua_pushliteral(L, "COPY ");
    // stack: ..., columns|nil, sql
    append_table_name(L, pg, table, tlen);
    append_copy_rest(L, pg, cols, &o);
    lua_remove(L, cols);
}

/* Bytes per CopyData message, as psql sends them: the server reads a whole
 * message before it parses any of it, so small messages let it start on
 * the first bytes while the rest is still on the way (measured against
 * 128 KiB messages: a few percent faster, within this machine's noise). */
#define SEND_PIECE (8 * 1024)

/* Line ends in p[0..n), for the live progress line's row count (only
 * while it is drawn: a quoted line break counts too; the summary has the
 * server's count).  Blocks of 64 bytes, which the compiler turns into
 * vector compares (a memchr per line costs several times more). */
static double count_lines(const unsigned char *p, size_t n)
{
    size_t i = 0, k = 0;
    for (; i + 64 <= n; i += 64) {
        unsigned char c = 0;
        for (int j = 0; j < 64; j++)
            c += p[i + j] == '\n';
        k += c;
    }
    for (; i < n; i++)
        k += p[i] == '\n';
    return (double)k;
}

/* Send the file through the open COPY, then end it: normally, or with a
 * failure message when the file could not be read or an interrupt arrived
 * (the server then rolls the COPY back).  Returns SL_OK, SL_EBROKEN,
 * SL_EINTR, or SL_EINVAL for a file that could not be read (r->err);
 * *ended is set when CopyDone went out (every byte of the file sent);
 * *sent counts the bytes sent.  prog ticks after a block went out (L
 * only for that: nothing here raises). */
static int send_file(lua_State *L, PGconn *pg, csvread *r, int *ended,
                     double *sent, lib_progress *prog)
{
    const unsigned char *p;
    size_t n;
    int rc = SL_OK;
    double lines = 0;
    for (;;) {
        int k = csvread_raw(r, &p, &n);
        if (k == 0)
            break;
        if (k < 0) {
            /* the reader reports a read() cut short by a signal (a pipe,
             * a FIFO) as a read error: it is the interrupt */
            rc = interrupt_pending() ? SL_EINTR : SL_EINVAL;
            break;
        }
        rc = copy_put_pieces(pg, (const char *)p, n, 1, SEND_PIECE);
        if (rc != SL_OK)
            break;
        *sent += (double)n;
        if (prog->live) {
            lines += count_lines(p, n);
            if (lib_progress_due(prog))
                lib_progress_call(L, prog, lines, *sent, (double)r->in_bytes,
                                  LIB_PROGRESS_TICK);
        }
    }
    if (rc == SL_EBROKEN)
        return rc;
    const char *why = rc == SL_EINVAL ? r->err
                      : rc == SL_EINTR ? "interrupted" : NULL;
    if (copy_end(pg, why) != SL_OK)
        return SL_EBROKEN;
    *ended = why == NULL; /* CopyDone went out: the server decides now */
    return rc;
}

/* db:copy_from_file(table, path [, opts [, progress, live]]) -> rows
 * loaded.  progress: lua/sluice/progress.lua's hook (csv.lua passes it),
 * live: whether it wants ticks.
 * Raises misuse at the caller's line, a file error as the reader's message
 * ("data.csv.gz: gzip stream is truncated or corrupt: ..."), a server error
 * (a bad row) as an error object whose context names the line.  COPY is one
 * statement: on any error the table is unchanged. */
int lib_csv_copy_from_file(lua_State *L)
{
    sl_conn *c = lib_conn_check(L, 1);
    size_t tlen;
    const char *table = luaL_checklstring(L, 2, &tlen);
    const char *path = luaL_checkstring(L, 3);
    if (!lua_isnoneornil(L, 4) && !lua_istable(L, 4))
        luaL_error(L, "copy_from_file: opts must be a table, got a %s",
                   luaL_typename(L, 4));
    int live = lua_toboolean(L, 6);
    lua_settop(L, 5);
    // stack: db, table, path, opts|nil, progress|nil
    push_copy_sql(L, c->pg, table, tlen, 4);
    PGresult **ok = lib_new_result_slot(L);
    PGresult **err = lib_new_result_slot(L);
    csvread_opts o;
    memset(&o, 0, sizeof o);
    o.raw = 1;
    sl_csv *u = new_reader(L);
    // stack: db, table, path, opts, progress, sql, ok, err, reader
    if (csvread_open(&u->r, path, &o) < 0)
        raise_reader(L, u);
    lib_progress prog;
    memset(&prog, 0, sizeof prog);
    prog.total = input_size(&u->r);
    lib_progress_setup(L, &prog, 5, live); /* freed below, before raising */

    /* from here until busy is cleared nothing may raise */
    int interrupted = 0, ended = 0;
    double sent = 0;
    int autocommit = PQtransactionStatus(c->pg) == PQTRANS_IDLE;
    c->busy = 1;
    int rc = copy_begin(c->pg, lua_tostring(L, 6), PGRES_COPY_IN, err,
                        &interrupted);
    if (rc == SL_OK) {
        rc = send_file(L, c->pg, &u->r, &ended, &sent, &prog);
        lib_progress_call(L, &prog, 0, 0, -1, LIB_PROGRESS_HIDE);
        int f = pgconn_collect(c->pg, 0, "unexpected COPY", 1, ok, err);
        if (f & PGCONN_F_INTERRUPTED)
            interrupted = 1;
        if ((f & PGCONN_F_BROKEN) && rc == SL_OK)
            rc = SL_EBROKEN;
    }
    c->busy = 0;
    csvread_release(&u->r);
    if (rc == SL_OK && !*err && !interrupted && *ok) {
        const char *t = PQcmdTuples(*ok);
        lib_progress_call(L, &prog, *t ? strtod(t, NULL) : 0, sent, -1,
                          LIB_PROGRESS_DONE);
    }
    lib_progress_free(L, &prog);

    int sig = 0;
    if (interrupted || rc == SL_EINTR)
        sig = lib_interrupt_consume(L);
    if (!sig)
        sig = SIGINT; /* a read cut short by a signal already taken */
    lib_conn_deliver_notices(L, c, 1);
    if (rc == SL_EINVAL) {
        lua_pushstring(L, u->r.err);
        return lua_error(L);
    }
    if (*err) {
        lib_push_result_error(L, *err, c->pg);
        return lua_error(L);
    }
    if (rc == SL_EBROKEN || rc == SL_EFAIL) {
        if (ended) /* the whole file went out and no answer came */
            return lib_raise_copy_lost(L, c->pg, "copy_from_file", autocommit,
                                       NULL);
        lib_push_conn_error(L, c->pg);
        return lua_error(L);
    }
    const char *n = *ok ? PQcmdTuples(*ok) : "";
    if (interrupted || rc == SL_EINTR) {
        if (!ended || rc == SL_EINTR)
            return luaL_error(L, "interrupted (%s)", interrupt_name(sig));
        /* Ctrl-C came after the whole file was sent, and the COPY still
         * completed: say so, rather than let it read as nothing loaded */
        return lib_raise_copy_interrupted(L, sig, "copy_from_file",
                                          autocommit, n);
    }
    lua_pushnumber(L, *n ? strtod(n, NULL) : 0);
    return 1;
}

/* ------------------------------------------------- parallel loads' helpers */

/* sluice.core.csv_reader_options(reader) -> { path, header, delimiter,
 * quote, null, strict, stray_quotes, encoding, skip, types }: the options
 * the reader was opened with, for a worker that reads a piece of the same
 * input with the same meaning. */
int lib_csv_reader_options(lua_State *L)
{
    sl_csv *u = luaL_checkudata(L, 1, SLUICE_CSV_MT);
    lua_createtable(L, 0, 10);
    lua_getfenv(L, 1);
    lua_getfield(L, -1, "path");
    lua_setfield(L, -3, "path");
    lua_getfield(L, -1, "types");
    lua_setfield(L, -3, "types");
    lua_pop(L, 1);
    lua_pushboolean(L, u->header);
    lua_setfield(L, -2, "header");
    lua_pushlstring(L, (const char *)&u->o.delim, 1);
    lua_setfield(L, -2, "delimiter");
    lua_pushlstring(L, (const char *)&u->o.quote, 1);
    lua_setfield(L, -2, "quote");
    if (u->o.null) {
        lua_pushlstring(L, u->o.null, u->o.null_len);
        lua_setfield(L, -2, "null");
    }
    lua_pushboolean(L, u->o.strict);
    lua_setfield(L, -2, "strict");
    lua_pushboolean(L, u->o.stray_quotes);
    lua_setfield(L, -2, "stray_quotes");
    lua_pushboolean(L, u->o.check_utf8);
    lua_setfield(L, -2, "encoding");
    lua_pushnumber(L, (lua_Number)u->o.skip);
    lua_setfield(L, -2, "skip");
    return 1;
}

/* sluice.core.csv_relabel(reader, name, line, records_before): a reader
 * over a piece of a larger input (a parallel load's chunk, after its
 * header) names that input in its messages, numbers lines from `line`
 * and records from records_before + 1, as a read of the whole input
 * would.  Call before the first next(). */
int lib_csv_relabel(lua_State *L)
{
    sl_csv *u = check_reader(L, 1);
    const char *name = luaL_checkstring(L, 2);
    long long line = (long long)luaL_checknumber(L, 3);
    long long before = (long long)luaL_checknumber(L, 4);
    char *copy = strdup(name);
    if (!copy)
        return luaL_error(L, "out of memory");
    free(u->r.name);
    u->r.name = copy;
    u->r.line = line;
    u->n = before;
    u->v.n = (double)before;
    return 0;
}
