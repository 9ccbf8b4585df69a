/*
 * lib_copy_priv.h - what the files of the "sluice.copy" binding share, and
 * nothing else includes: the stream userdata (sl_copy), its columns and
 * their encoders, the slots of its environment table, and the helpers
 * that raise its errors.
 *
 * Provides, by file:
 * - lib_copy.c, the stream: release, the errors every part raises (out
 *   of memory, "row N"), the methods, start-up;
 * - lib_copy_values.c, Lua values as fields: reading them (int64 cdata,
 *   tables through the JSON encoder), the errors that name a row, column
 *   and value, one row, and the text/CSV encoders;
 * - lib_copy_binary.c: the binary encoders.
 *
 * Uses: lib.h (connections, sinks), copy.h and copyenc.h (the core: the
 * buffer, the per-type encoders, the writer).
 *
 * Every function declared here may raise a Lua error; the ones that
 * raise about a stream end its COPY first (CopyFail with the message), so
 * the connection is usable at once.
 */
#ifndef SLUICE_COPY_PRIV_H
#define SLUICE_COPY_PRIV_H

#include "lib.h"
#include "copy.h"
#include "copyenc.h"
#include "copychunk.h"

#include <stdint.h>

#define CP_SELF 1 /* every method finds its userdata at stack index 1 */
#define LUA_TCDATA 10 /* LuaJIT's type tag for FFI cdata */
#define DEFAULT_CHUNK (64 * 1024) /* measured: larger chunks overlap
                                    * encoding and server parsing worse */
#define MIN_CHUNK 1024
/* reject mode: a chunk ends at this many rows (opts.reject_chunk) or
 * encoded bytes, whichever comes first (measured: fewer, larger chunks
 * keep the server busier; the bytes bound keeps wide rows' chunks in
 * memory bounds) */
#define REJECT_CHUNK_ROWS 100000
#define REJECT_CHUNK_BYTES (16u << 20)
#define MAX_DIMS 6 /* PostgreSQL's MAXDIM */
#define MAX_COLS 1600 /* PostgreSQL's MaxHeapAttributeNumber */

/* What a date/time column's encoders say of epoch seconds they refuse. */
#define EPOCH_WHAT "epoch seconds within the timestamp range"

/* slots of a stream's environment table */
enum { FENV_CONN = 1, FENV_COLS, FENV_JSON, FENV_CDATA, FENV_SPECS,
       FENV_NAME, FENV_NULL, /* these two: file sinks only */
       /* reject mode only (lib_copy_reject.c): */
       FENV_SQL,     /* the COPY statement (anchors cp->rj.chunk.sql) */
       FENV_REJECT,  /* the on_reject function */
       FENV_KEEP,    /* the chunk's values: row i's at i*ncols+1.. */
       FENV_CREJ,    /* rows the encoders refused: 2i+1 -> error, 2i+2 ->
                      * values (a row of the wrong width) */
       FENV_ENCODE,  /* the row encoder run under pcall */
       FENV_ZONE,    /* binary: the session zone's rules (tz_rules) */
       FENV_LAYOUTS, /* the columns' layouts (opts.layouts): ncols
                      * textops_layout, anchoring w.layouts */
       FENV_SLOTS = FENV_LAYOUTS };

/* the states of a stream */
enum { CP_NEW, CP_OPEN, CP_FINISHED, CP_ABORTED, CP_FAILED };

struct sl_copy;
struct copy_col;
/* Encode the non-NULL value at idx for one column (binary: length word
 * and bytes; text/CSV: the escaped field).  Raises on a bad value. */
typedef void (*enc_fn)(lua_State *L, struct sl_copy *cp,
                       const struct copy_col *col, int idx);

typedef struct copy_col {
    const char *name;      /* strings anchored by fenv[FENV_SPECS] */
    const char *type_name; /* as format_type() spells it, for messages */
    int kind;              /* enum copy_kind */
    int elem_kind;         /* arrays: kind of the elements */
    Oid elem_oid;          /* arrays: element type sent in binary */
    enc_fn enc;
    enc_fn elem_enc;       /* binary arrays: one element */
    int typmod;            /* vector kinds and bit strings: the declared
                            * dimension or length, -1 for none */
    const textops_layout *layout; /* date/time strings are read by this
                            * layout (db:copy's opts.layouts); NULL: as
                            * the server reads them */
} copy_col;

typedef struct sl_copy {
    copy_writer w;      /* owned buffer (the encoded rows not yet sent),
                         * complete rows, row count, format, delimiter;
                         * the compiled row writer is handed &w */
    sl_conn *conn;      /* borrowed: fenv[FENV_CONN] keeps it alive */
    int state;
    copy_col *cols;     /* a userdata in fenv[FENV_COLS] */
    sbuf scratch;   /* owned: array literals and bytea hex in text;
                     * a vector's elements (lib_copy_vector.c) */
    sbuf vec;       /* owned: a vector's text (lib_copy_vector.c) */
    uint64_t bytes_sent;
    int depth;          /* array nesting of the value being encoded */
    int path[MAX_DIMS]; /* element indices at each depth, for messages */
    /* file sinks (lib_sink.c): rows go to `sink` and conn is NULL */
    const lib_copy_sink *sink;
    void *sink_ctx;     /* the sink's state, inside this userdata */
    const char *null;   /* the NULL text (fenv[FENV_NULL]) or NULL: \N /
                         * an empty field, the formats' defaults */
    size_t null_len;
    int autocommit;     /* no transaction was open: finish() commits */
    char zone_err[320]; /* binary: why w.zone is NULL (for messages) */
    lib_progress prog;  /* opts.progress: ticks at flushes (none for
                         * file sinks) */
    /* reject mode (opts.on_reject; lib_copy_reject.c) */
    struct {
        int on;             /* the stream is in reject mode */
        size_t cap;         /* rows per chunk (reject_chunk) */
        size_t piece;       /* bytes sent at a time (chunk_size) */
        copy_chunk chunk;   /* owned: the rows of the current chunk */
        size_t sent;        /* bytes of the chunk handed to libpq */
        int open;           /* the chunk's COPY is open on the server */
        int refused;        /* set when such a refusal was raised */
        int nvals;          /* values of the row being encoded */
        int protect;        /* encoding under pcall: an error refuses
                             * the row instead of ending the COPY */
        const char *code;   /* the SQLSTATE of the refusal being raised
                             * (NULL: not a row's fault, e.g. out of
                             * memory) */
        const char *col;    /* its column, or NULL */
        uint64_t base;      /* rows given before the current chunk */
        uint64_t loaded;    /* rows the server committed (counts) */
        uint64_t rejected;  /* rows set aside */
        int committing;     /* a COMMIT's answer is awaited */
    } rj;
} sl_copy;

/* ------------------------------------------------------ lib_copy.c */

/* The message at the top of the stack (no position) ends the COPY
 * (CopyFail with it), then is raised at the caller's line. */
int lib_copy_raise(lua_State *L, sl_copy *cp);

/* Raise a row's refusal by the encoders (the message at the top; the
 * SQLSTATE in cp->rj.code, default 22P02; the column in cp->rj.col) as an
 * error object, ending the COPY - or, in reject mode, setting the row
 * aside. */
int lib_copy_refuse(lua_State *L, sl_copy *cp);

/* Raise "row N: out of memory growing the COPY buffer" (N the row being
 * encoded) and end the COPY. */
int lib_copy_oom(lua_State *L, sl_copy *cp);

/* Raise "row N: expected K values (a, b, c), got M" and end the COPY
 * (got < 0: the row is a table with holes; list_idx > 0: the row is
 * element list_idx of cp:rows' list).  In reject mode, under pcall, a
 * refusal (lib_copy_raise). */
int lib_copy_count_error(lua_State *L, sl_copy *cp, int got, int list_idx);

/* Push "row N", N the row being encoded (rows so far + 1). */
void lib_copy_push_row(lua_State *L, const sl_copy *cp);

/* Room for n more bytes in the stream's buffer; raises (lib_copy_oom)
 * when it cannot grow. */
static inline void lib_copy_need(lua_State *L, sl_copy *cp, size_t n)
{
    if (sbuf_reserve(&cp->w.buf, n) != SL_OK)
        lib_copy_oom(L, cp);
}

/* Release the stream (the COPY ended with fail_msg, or CopyDone when
 * NULL; drain: discard the server's answer).  An open stream's progress
 * line is hidden first (L may be NULL: not).  Never raises. */
int lib_copy_release(lua_State *L, sl_copy *cp, const char *fail_msg,
                     int new_state, int drain);

/* After bytes went to libpq: a progress tick, when one is due (a flag
 * test, and while live a coarse clock read; Lua only every 100 ms).
 * Never raises. */
static inline void lib_copy_tick(lua_State *L, sl_copy *cp)
{
    if (cp->prog.live && lib_progress_due(&cp->prog))
        lib_progress_call(L, &cp->prog, (double)cp->w.rows,
                          (double)cp->bytes_sent, -1, LIB_PROGRESS_TICK);
}

/* ---------------------------------------------------- lib_copy_reject.c */

/* Whether the stream is in reject mode. */
static inline int lib_copy_rejecting(const sl_copy *cp)
{
    return cp->rj.on;
}

/* Put the new stream at ud in reject mode: chunks of `rows` rows, the
 * COPY statement at sql_idx, on_reject at fn_idx.  Raises on out of
 * memory. */
void lib_copy_reject_setup(lua_State *L, sl_copy *cp, int ud, int sql_idx,
                           int fn_idx, size_t rows);

/* One row (n values at stack indices first..; n < 0: a table with holes,
 * no values) in reject mode: kept,
 * encoded (a value the encoders refuse sets the row aside), sent; a full
 * chunk is settled.  Raises what stops the stream. */
void lib_copy_reject_row(lua_State *L, sl_copy *cp, int first, int n);

/* After a row in reject mode (also cp:flush(), which the compiled row
 * writer calls when copy_writer_row_end() says so): settle a full chunk,
 * or send what reached chunk_size bytes.  Raises what stops the stream. */
void lib_copy_reject_after_row(lua_State *L, sl_copy *cp);

/* finish() in reject mode: settle the last chunk; push the rows loaded. */
int lib_copy_reject_finish(lua_State *L, sl_copy *cp);

/* The release of a stream in reject mode: end and undo an open chunk.
 * Never raises. */
void lib_copy_reject_release(sl_copy *cp, const char *fail_msg);

/* The error being raised by an encoder, in reject mode: the refusal's
 * SQLSTATE (the caller sets cp->rj.code and cp->rj.col before). */
static inline void lib_copy_refusal(sl_copy *cp, const char *code)
{
    cp->rj.code = code;
}

/* ---------------------------------------------------- lib_copy_values.c */

/* Whether the value at idx is a NULL: nil, none, or sluice.null (the
 * NULL light userdata). */
static inline int lib_copy_is_null(lua_State *L, int idx)
{
    int t = lua_type(L, idx);
    return t <= LUA_TNIL ||
           (t == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL);
}

/* The text/CSV encoder of every column kind: strings go as they are (the
 * server parses them), other Lua values are turned into text here.
 * Raises the value's error. */
void lib_copy_enc_text(lua_State *L, sl_copy *cp, const copy_col *col,
                       int idx);

/* Encode one row, whose values are at stack indices first.., into the
 * stream's buffer and count it.  A row that fails half-way is dropped by
 * the next call (committed).  Raises the value's error. */
void lib_copy_encode_row(lua_State *L, sl_copy *cp, int first);

/* The column names as the first line of a text/CSV sink (through the
 * field writer; not counted as a row).  Raises on out of memory. */
void lib_copy_header_row(lua_State *L, sl_copy *cp);

/* Raise "row N, column "x" (type)[, element [i]]: expected <what>, got
 * <the value at idx>" and end the COPY. */
int lib_copy_value_error(lua_State *L, sl_copy *cp, const copy_col *col,
                         int idx, const char *what);

/* Raise for a string at idx that the column's layout refused with rc
 * (textops.h: SL_EINVAL 22007, SL_ERANGE 22008; also the timestamptz
 * zone's SL_ENOZONE, and out of memory): "row N, column "x" (type):
 * expected a date in the layout L, got string "..."", ending the COPY.
 * Does nothing for SL_OK. */
void lib_copy_layout_refused(lua_State *L, sl_copy *cp, const copy_col *col,
                             int idx, int rc);

/* Raise "row N, column "x" (type)<msg>" and end the COPY. */
int lib_copy_col_error(lua_State *L, sl_copy *cp, const copy_col *col,
                       const char *msg);

/* Raise for a core encoder's SL_ENUL (the NUL byte error) or any other
 * failure (out of memory) and end the COPY. */
int lib_copy_encode_failed(lua_State *L, sl_copy *cp, const copy_col *col,
                           int rc);

/* If the value at idx is a cdata and the stream has its cdata helper
 * (fenv[FENV_CDATA] of the stream at CP_SELF), call the helper on it with
 * nret results left on the stack and return 1; else push nothing and
 * return 0.  Raises only what the helper raises. */
int lib_copy_cdata_call(lua_State *L, int idx, int nret);

/* If the value at idx is an int64_t (returns 1) or uint64_t (returns 2)
 * cdata, store its bits.  0 for anything else.  The ctype test is a Lua
 * helper (fenv[FENV_CDATA] of the stream at CP_SELF; C cannot see
 * ctypes): only cdata values pay for it.  Raises only what the helper
 * raises. */
int lib_copy_cdata_int(lua_State *L, int idx, uint64_t *bits);

/* Decimal text of lib_copy_cdata_int()'s bits (kind 1 or 2) into buf (24
 * bytes); its length.  Never raises. */
size_t lib_copy_cdata_text(char *buf, uint64_t bits, int kind);

/* JSON text of the table at idx through the stream's encoder
 * (fenv[FENV_JSON]); the string is left on the stack (the caller pops
 * it).  Raises, ending the COPY, when there is no encoder, it fails or it
 * returns something else than a string. */
const char *lib_copy_json_encode(lua_State *L, sl_copy *cp,
                                 const copy_col *col, int idx, size_t *n);

/* ---------------------------------------------------- lib_copy_binary.c */

/* The binary encoder of a kind; NULL when it has none.  Never raises. */
enc_fn lib_copy_bin_encoder(int kind);

/* ---------------------------------------------------- lib_copy_vector.c */

/* pgvector's vector, halfvec, sparsevec and bit strings: the binary and
 * the text/CSV encoders (the values they take are listed at the top of
 * lib_copy_vector.c).  Raise the value's error. */
void lib_copy_vec_bin(lua_State *L, sl_copy *cp, const copy_col *col,
                      int idx);
void lib_copy_vec_text(lua_State *L, sl_copy *cp, const copy_col *col,
                       int idx);

#endif
