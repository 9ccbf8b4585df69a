/*
 * lib.h - the Lua bindings of the core, gathered by lib_sluice.c.
 *
 * Provides: the method tables, field getters and constructors of each
 * userdata type, and the few helpers bindings share (error objects, the
 * NULL sentinel).  lib_sluice.c hands them to Lua as sluice.core.types;
 * lua/sluice/api.lua gives each type its final __index from them.
 * Uses: lua.h, libpq-fe.h.
 *
 * Userdata types and their metatables:
 *   "sluice.conn"    a PostgreSQL connection (lib_conn.c)
 *   "sluice.stmt"    a prepared statement; keeps its connection alive
 *   "sluice.result"  a PGresult held while it is converted (never escapes)
 *   "sluice.error"   metatable of database error tables (not a userdata;
 *                    lib_error.c)
 *   "sluice.tmpdb"   a throwaway PostgreSQL server (lib_tmpdb.c)
 *   "sluice.csv"     a CSV reader over a plain or gzip file (lib_csv.c)
 *   "sluice.copy"    a COPY ... FROM STDIN stream (lib_copy.c); also a
 *                    file sink, a COPY stream writing to a file
 *                    (lib_sink.c)
 *   "sluice.copyout" a COPY ... TO STDOUT reader (lib_copyout.c)
 *   "sluice.batch"   a batched multi-row INSERT (lib_batch.c)
 *   "sluice.pipeline" executions in libpq's pipeline mode (lib_pipeline.c)
 */
#ifndef SLUICE_LIB_H
#define SLUICE_LIB_H

#include <lua.h>
#include <lauxlib.h>
#include <libpq-fe.h>

#include "pgconn.h"

#define SLUICE_CONN_MT   "sluice.conn"
#define SLUICE_STMT_MT   "sluice.stmt"
#define SLUICE_RESULT_MT "sluice.result"
#define SLUICE_ERROR_MT  "sluice.error"
#define SLUICE_TMPDB_MT  "sluice.tmpdb"
#define SLUICE_COPY_MT   "sluice.copy"
#define SLUICE_COPYOUT_MT "sluice.copyout"
#define SLUICE_CSV_MT    "sluice.csv"

/* Registry keys of helpers that init.lua installs (Lua functions that use
 * the FFI, which C cannot reach directly). */
#define SLUICE_REG_INT64     "sluice.int64"      /* string -> int64 cdata */
#define SLUICE_REG_CDATATEXT "sluice.cdata_text" /* cdata -> string|nil */
#define SLUICE_REG_OWNDIR    "sluice.own_dir"    /* the directory of sluice's
                                                  Lua modules (init.lua's) */
#define SLUICE_REG_CSVROWS   "sluice.csv_rows"   /* a reader -> its rows()
                                                    iterator (csv.lua) */
/* Set by the interactive prompt only (sluice.core.keep_columns): a table
 * with weak keys where every query result (the rows array, or
 * query_one's row) gets its columns in the statement's order:
 * { name1, ..., nameN, types = { oid1, ..., oidN }, one = true for
 * query_one's row, shadowed = { [j] = { value of row 1, ... } } for a
 * column j whose name a later column repeats }.  Unset, a query
 * pays one registry lookup. */
#define SLUICE_REG_COLUMNS   "sluice.columns"

#define SL_VEC_OIDS 32

/* A connection userdata.  pg is NULL once closed.  busy is set while a
 * child object (a COPY stream) owns the protocol, so other calls refuse. */
typedef struct sl_conn {
    PGconn *pg;
    pgconn_notices notices;
    unsigned stmt_seq; /* names prepared statements uniquely */
    int busy;          /* nonzero while a COPY (SL_BUSY_COPY) or a
                          pipeline (SL_BUSY_PIPELINE) is open */
    unsigned gen;      /* lib_process_gen when it connected: another value
                          means it is the parent's (we are a worker) */
    struct sl_conn *prev, *next; /* every connection userdata alive */
    struct {           /* result types of extensions seen on this
                        * connection (lib_vector.c): kind 1 vector, 2
                        * halfvec, 3 sparsevec, 0 any other type */
        Oid oid[SL_VEC_OIDS];
        signed char kind[SL_VEC_OIDS];
        int n;
    } vec;
} sl_conn;

/* Bumped in a worker process right after fork (lib_workers.c): a
 * connection made under another value belongs to the parent. */
extern unsigned lib_process_gen;
/* In a worker, right after fork: put /dev/null under the socket of every
 * inherited connection, so that nothing this process does (a COPY's
 * __gc, PQfinish's Terminate message) reaches the parent's sessions, and
 * bump lib_process_gen so that any use raises.  Not async-signal-safe. */
void lib_conn_disown_all(void);
/* Close the connections this process made (a worker, before _exit). */
void lib_conn_close_own(void);

#define SL_BUSY_COPY 1
#define SL_BUSY_PIPELINE 2

/* Check that idx is an open connection; raises (caller's line) if not.
 * While a COPY stream or reader holds the connection (busy) it first runs
 * a full garbage collection, so one the script dropped is ended by its
 * __gc, and raises only if the connection is still busy. */
sl_conn *lib_conn_check(lua_State *L, int idx);

/* Wait for and collect every result of the command just sent with a
 * PQsend* call (`sent` is its return value), deliver notices, and raise
 * the database error if any.  Pushes one "sluice.result" holder and
 * returns its result (the last successful one, may be NULL).  Ctrl-C
 * while waiting sends a cancel request and the wait goes on: the
 * server's answer decides.  A statement that still completed raises
 * "interrupted (Ctrl-C)" - except while interrupts are held
 * (interrupt.h), when it returns normally and the interrupt stays
 * pending for the holder. */
PGresult *lib_conn_finish(lua_State *L, sl_conn *c, int conn_idx, int sent);

/* Like lib_conn_finish(), for a caller that must say what the statement
 * did: it raises the server's error (the server answered, the statement
 * failed) but returns, with the result in *res and the holder pushed,
 * LIB_FINISH_OK; LIB_FINISH_INTERRUPTED when the statement completed
 * although Ctrl-C sent a cancel meanwhile (the interrupt is left
 * pending: the caller consumes and raises it); LIB_FINISH_LOST when the
 * connection broke before an answer came (*res may hold an earlier
 * result; lib_push_conn_error() says why). */
enum { LIB_FINISH_OK, LIB_FINISH_INTERRUPTED, LIB_FINISH_LOST };
int lib_conn_finish_status(lua_State *L, sl_conn *c, int conn_idx, int sent,
                           PGresult **res);

/* Hand queued notices to the on_notice handler of the connection at
 * conn_idx (or print warnings).  May raise the handler's error. */
void lib_conn_deliver_notices(lua_State *L, sl_conn *c, int conn_idx);

/* A "sluice.result" holder whose __gc clears the PGresult stored in the
 * returned slot: create it before the result exists. */
PGresult **lib_new_result_slot(lua_State *L);

/* Push a bigint: a number when exact (|x| <= 2^53), else an int64 cdata
 * made from its text (text[0..len) is x in decimal). */
void lib_push_int8(lua_State *L, long long x, const char *text, size_t len);

/* Push the error object for a failed result / a broken connection.  A
 * lost connection always gets a sqlstate: the server's (57P01 when an
 * administrator ended the session) when its error arrived, else 08006
 * with severity FATAL; its message says the connection was lost (no claim
 * about what was committed: the detail explains, the callers that know
 * put it in front).  pg may be NULL (a closed connection). */
void lib_push_result_error(lua_State *L, const PGresult *res, PGconn *pg);
void lib_push_conn_error(lua_State *L, PGconn *pg);
/* Push the psql-style text of the error table at stack index e (see
 * lib_error.c): the __tostring of error objects (with_sqlstate 1) and what
 * the executable prints for an uncaught one (0, psql's default).  A
 * result error with a position also has field position_lines (psql's
 * "LINE n: ..." and "^" lines), printed after the message. */
void lib_error_format(lua_State *L, int e, int with_sqlstate);

/* What a COPY that sent all its data left, when the end did not go as
 * planned; who names the call ("COPY", "copy_from_file"), rows is the
 * text of the row count (NULL when unknown).  Both raise an error object
 * with committed_rows and in_doubt_rows (0 for an unknown count):
 * - lib_raise_copy_lost: the connection was lost before the server
 *   answered: in autocommit the COPY may or may not have been committed,
 *   inside a transaction nothing of it was;
 * - lib_raise_copy_interrupted: Ctrl-C (signal sig) came, but the COPY
 *   completed: committed in autocommit, else loaded in the open
 *   transaction. */
/* Raise why a COPY could not start (copy_begin's rc): the server's error
 * err (SL_EFAIL) or the lost connection's, after delivering the
 * connection's notices (its userdata at stack index 1). */
int lib_raise_begin_failed(lua_State *L, sl_conn *c, int rc,
                           const PGresult *err);
int lib_raise_copy_lost(lua_State *L, PGconn *pg, const char *who,
                        int autocommit, const char *rows);
int lib_raise_copy_interrupted(lua_State *L, int sig, const char *who,
                               int autocommit, const char *rows);

extern const luaL_Reg lib_conn_methods[];
extern const luaL_Reg lib_conn_meta[];
extern const luaL_Reg lib_stmt_methods[];
extern const luaL_Reg lib_stmt_meta[];
extern const luaL_Reg lib_result_meta[];
extern const luaL_Reg lib_error_meta[];
extern const luaL_Reg lib_tmpdb_methods[];
extern const luaL_Reg lib_tmpdb_meta[];
extern const luaL_Reg lib_copy_methods[];
extern const luaL_Reg lib_copy_meta[];
extern const luaL_Reg lib_copyout_methods[];
extern const luaL_Reg lib_copyout_meta[];

/* Field getters: f(obj, key) -> the read-only field `key` of a
 * "sluice.copy" (rows_sent, bytes_sent, ...) / "sluice.copyout" (rows,
 * state) object, nil for any other key.  Not an __index: the Lua __index
 * (lua/sluice/api.lua) looks in the methods table first, so a loop
 * calling methods stays compilable by LuaJIT, and calls these for the
 * rest.  Raise only on a wrong object. */
int lib_copy_field(lua_State *L);
int lib_copyout_field(lua_State *L);

/* sluice.core.connect(conninfo_or_uri) -> conn; raises an error object. */
int lib_conn_connect(lua_State *L);
/* sluice.core.new_error(table) -> table with the error metatable. */
int lib_error_new(lua_State *L);
/* sluice.core.tmpdb_start(opts) -> tmpdb userdata; raises on failure. */
int lib_tmpdb_start(lua_State *L);
/* sluice.core.copy_start(db, sql, format, specs, opts) -> "sluice.copy";
 * the COPY is open (db busy) when it returns; raises an error object if
 * the server refuses.  Called by lua/sluice/copy.lua, which reads the
 * catalog and builds sql and specs. */
int lib_copy_start(lua_State *L);
int lib_copy_zone(lua_State *L);
/* sluice.core.copy_out_start(db, sql) -> "sluice.copyout"; raises an
 * error object if the server refuses. */
int lib_copy_out_start(lua_State *L);
/* sluice.core.copy_kind(base_oid, textlike) -> encoder family name;
 * "other" means no binary encoder.  Never raises on a valid number. */
int lib_copy_kind(lua_State *L);
/* sluice.core.copy_fast(cp) / copy_fast_text(cp) / copy_fast_functions():
 * the compiled row writer of streams to the server (lib_copy.c; the
 * functions and their table are copyenc.c; lua/sluice/copy.lua). */
int lib_copy_fast(lua_State *L);
int lib_copy_fast_text(lua_State *L);
int lib_copy_fast_functions(lua_State *L);
/* sluice.core.text_functions() / text_layout_check(layout): the layout
 * and number functions of textops.h for sluice.text's FFI calls, and a
 * layout's check (lib_text.c).  Raise only on a wrong argument type. */
int lib_text_functions(lua_State *L);
int lib_text_layout_check(lua_State *L);

/* The output of a file sink (lib_sink.c): a "sluice.copy" stream made by
 * lib_copy_new_sink() hands its encoded rows to these instead of libpq,
 * so a sink and a COPY share the encoders, the buffer and the methods.
 * ctx is ctx_size zeroed bytes inside the stream's own userdata: the
 * stream owns the file, and its one release routine (finish, abort, an
 * error, __gc) ends it.  Neither function may raise. */
typedef struct lib_copy_sink {
    size_t ctx_size;
    /* Write data[0..n): 0, or -1 with "path: what" in msg. */
    int (*write)(void *ctx, const char *data, size_t n, char *msg,
                 size_t msglen);
    /* commit: keep the output (flush, close, put in place); else discard
     * it.  0, or -1 with msg (msglen may be 0); the output is discarded
     * on failure.  Idempotent, safe on a zeroed ctx. */
    int (*close)(void *ctx, int commit, char *msg, size_t msglen);
} lib_copy_sink;

/* Push a "sluice.copy" stream that writes to a sink, and return its ctx
 * (zeroed: the caller opens the output in it; the stream is open).
 * format "text" or "csv"; specs (stack index) as for copy_start, built
 * without a catalog by lua/sluice/sink.lua; opts (stack index, a table):
 * chunk_size, json_encode, cdata_kind, delimiter (one byte), null (the
 * NULL text; nil for the format's default), header (true: the column
 * names are the first line); name_idx: the destination's name (a string,
 * for messages).  Raises on bad arguments or out of memory. */
void *lib_copy_new_sink(lua_State *L, const char *format, int specs,
                        int opts, int name_idx, const lib_copy_sink *ops);

/* sluice.core.sink_open(path, format, specs, opts) -> a "sluice.copy"
 * stream writing to a file (lib_sink.c); raises "path: what" when the
 * file cannot be opened. */
int lib_sink_open(lua_State *L);

extern const luaL_Reg lib_csv_methods[];
extern const luaL_Reg lib_csv_meta[];
/* sluice.csv.open(path [, opts]) -> reader; raises on a bad option (at the
 * caller's line) or an unreadable file / bad header ("name:line: what"). */
int lib_csv_open(lua_State *L);
/* sluice.csv.rows(path [, opts]) -> iterator, reader: for row, n in ... */
int lib_csv_rows(lua_State *L);
int lib_csv_reader_of(lua_State *L);
/* sluice.core.csv_is_reader(x) -> whether x is a reader of csv_open. */
int lib_csv_is_reader(lua_State *L);
/* db:copy_from_file(table, path [, opts]) -> rows loaded; raises the
 * server's error object (a bad row), or the file's read error. */
int lib_csv_copy_from_file(lua_State *L);
/* With the methods table of SLUICE_CSV_MT on the stack top, push the
 * reader's field getter (see lib_copy_field): a C closure serving the
 * properties line, offset and header (and, through its upvalue, the
 * methods).  Raises only on out of memory. */
void lib_csv_push_field(lua_State *L);

/* Push a new error table (metatable set) with the given fields; NULL
 * fields are left out.  Does not raise except on out-of-memory. */
void lib_push_error(lua_State *L, const char *sqlstate, const char *message,
                    const char *detail, const char *hint);
/* Set field k of the table on top of the stack to v, unless v is NULL or
 * empty (an absent libpq field).  Raises only on out of memory. */
void lib_set_field(lua_State *L, const char *k, const char *v);
/* Set field "where" of the error table on top of the stack to the
 * position ("file:line: ") of the script's line that led to the running
 * C function: the first Lua function up the stack that is not one of
 * sluice's own modules (a load's, an upsert's or a model's rows are given
 * by the script, but put by those modules), or "" when a C function (a
 * pcall) called it directly. */
void lib_set_user_where(lua_State *L);
/* Push msg (libpq's, NUL-terminated) without its trailing newlines and
 * spaces.  Raises only on out of memory. */
void lib_push_trimmed(lua_State *L, const char *msg);

/* ---- progress (lib_progress.c): the paths written in C call the Lua
 * function of lua/sluice/progress.lua's P:hook(),
 * f(rows, bytes, pos, ended, total), pos (bytes read of an input of
 * total bytes) and total nil when unknown; ended is
 *   LIB_PROGRESS_TICK  rows and bytes so far (only while live);
 *   LIB_PROGRESS_DONE  the path succeeded: rows and bytes in the end (the
 *                      summary); the function is then dropped;
 *   LIB_PROGRESS_HIDE  the live line goes (a failure, or a wait whose
 *                      outcome is not known yet).
 * A zeroed lib_progress has no function: every call does nothing. */
enum { LIB_PROGRESS_TICK, LIB_PROGRESS_DONE, LIB_PROGRESS_HIDE };
typedef struct lib_progress {
    int ref;        /* the function in the registry (> 0), or none */
    int live;       /* it wants ticks: its line is drawn on a terminal */
    long long due;  /* no tick before this (monotonic ms) */
    double total;   /* bytes of the input (> 0), or unknown */
} lib_progress;

/* Take the function at fn_idx (anything else: none); live: it wants
 * ticks.  The owner releases it with lib_progress_free() (its __gc).
 * Raises only on out of memory. */
void lib_progress_setup(lua_State *L, lib_progress *p, int fn_idx,
                        int live);
/* Whether a tick is due: live, and 100 ms since the last one.  One read
 * of a coarse clock; never raises. */
int lib_progress_due(lib_progress *p);
/* Call the function (rows, bytes, pos < 0: nil, ended, total) under
 * lua_pcall, interrupts held (a pending Ctrl-C stays pending); its errors
 * are dropped.  Never raises. */
void lib_progress_call(lua_State *L, lib_progress *p, double rows,
                       double bytes, double pos, int ended);
/* Drop the function.  Never raises. */
void lib_progress_free(lua_State *L, lib_progress *p);

/* ---- worker processes (lib_workers.c over workers.h) */
int lib_workers_fork(lua_State *L);
int lib_worker_send(lua_State *L);
int lib_worker_recv(lua_State *L);
int lib_worker_exit(lua_State *L);
int lib_csv_cutter(lua_State *L);
int lib_worker_chunk_file(lua_State *L);
int lib_csv_reader_options(lua_State *L);
int lib_csv_relabel(lua_State *L);
extern const luaL_Reg lib_workers_meta[], lib_workers_methods[];
#define SLUICE_WORKERS_MT "sluice.workers"

/* ---- Ctrl-C (lib_interrupt.c over interrupt.h) */
/* Install the SIGINT/SIGTERM/SIGHUP handlers so that a signal interrupts
 * the Lua state L (a hook raises "interrupted (Ctrl-C)", or names the
 * signal).  Call once, from the main thread, before running user code. */
void lib_interrupt_install(lua_State *L);
/* Take the pending interrupt and remove the hook, if ours.  Returns the
 * signal number that was pending (0 if none). */
int lib_interrupt_consume(lua_State *L);
/* interrupt_release(), arming the hook on L again when the last hold
 * ended with an interrupt pending. */
void lib_interrupt_release(lua_State *L);

/* What every array encoder says of a Lua table that is not an array. */
#define LIB_ARRAY_EXPECTED "an array (a table with keys 1..n only: a NULL " \
                           "element must be sluice.null, not nil)"
/* The length of the Lua array at stack index t (absolute): 1 and *len set
 * when t's keys are exactly 1..n (# is unambiguous), else 0 (a nil inside
 * it, a key that is not an index).  Never raises. */
int lib_array_len(lua_State *L, int t, size_t *len);

/* ---- batched INSERT and pipeline (lib_batch.c, lib_pipeline.c,
 * lib_params.c) */
#define SLUICE_BATCH_MT    "sluice.batch"
#define SLUICE_PIPELINE_MT "sluice.pipeline"
struct params_buf;
/* Encode the Lua value at idx as one statement parameter of encoder
 * family kind (enum copy_kind) into p (room for one value reserved);
 * json_idx: stack index of the JSON encoder or 0.  Returns NULL or a
 * static text of what was expected.  Raises only on out of memory. */
const char *lib_params_put(lua_State *L, struct params_buf *p, int idx,
                           int kind, int json_idx);
/* A parameter's kind for lib_params_put: the encoder family, and for
 * arrays (COPY_K_ARRAY) the family of the elements. */
#define LIB_PARAM_KIND(k, elem) ((k) | ((elem) << 8))
#define LIB_PARAM_KIND_OF(pk) ((pk) & 0xff)
#define LIB_PARAM_ELEM_OF(pk) ((pk) >> 8)
/* The kinds (LIB_PARAM_KIND) of the n parameters that the statement
 * description d gives, into kinds: one catalog query (a round trip on c,
 * at conn_idx) tells arrays from the other types sluice has no encoder
 * for, when there are any.  Raises as lib_conn_finish(). */
void lib_params_kinds(lua_State *L, sl_conn *c, int conn_idx,
                      const PGresult *d, int n, int *kinds);
/* Raise b:add()'s or pl:send()'s refusal of a value that
 * lib_params_put() refused as not `want`: an error object like the
 * server's (the SQLSTATE the server would give, msg, field = name:
 * "column" or "parameter", the caller's line in `where`).  Never
 * returns. */
void lib_params_refusal(lua_State *L, const char *want, const char *msg,
                        const char *field, const char *name);
/* Push res (may be NULL) as an array of rows keyed by column name, values
 * converted as db:query() does.  Raises only on out of memory. */
void lib_push_rows(lua_State *L, const PGresult *res);

/* lib_vector.c: pgvector's values in results.  The kinds (0, or 1
 * vector, 2 halfvec, 3 sparsevec) of res's columns into kinds; nonzero
 * when one is pgvector's.  Types not seen before on c are looked up in
 * the catalog (a round trip on c, at conn_idx; raises as
 * lib_conn_finish()). */
int lib_vector_kinds(lua_State *L, sl_conn *c, int conn_idx,
                     const PGresult *res, signed char *kinds);
/* Push the server's text of a value of such a kind as its Lua table. */
void lib_vector_push(lua_State *L, const char *s, size_t n, int kind);
int lib_vector_parse(lua_State *L);
struct sbuf;
/* A Lua table for a batch/pipeline parameter of a pgvector kind
 * (COPY_K_VECTOR...): its text appended to out (see lib_vector.c). */
const char *lib_vector_param(lua_State *L, int idx, int kind,
                             struct sbuf *out, struct sbuf *scratch);
int lib_vector_columns(lua_State *L);
extern const luaL_Reg lib_batch_methods[];
/* The batch's private functions (send, values, reset, release,
 * set_counts), for lua/sluice/batch.lua only: called as functions, never
 * reachable from a batch object. */
extern const luaL_Reg lib_batch_private[];
extern const luaL_Reg lib_batch_meta[];
extern const luaL_Reg lib_pipeline_methods[];
extern const luaL_Reg lib_pipeline_meta[];
/* Field getters, as lib_copy_field: buffered, rows_added, ... /
 * rows_sent, rows_done, ... */
int lib_batch_field(lua_State *L);
int lib_pipeline_field(lua_State *L);
/* sluice.core.batch_new(db, prefix, suffix, names, opts) -> batch;
 * prepares the full statement shape, raises the server's error object if
 * it does not parse.  opts.state: a table the batch keeps alive (its Lua
 * state).  Called by lua/sluice/batch.lua. */
int lib_batch_new(lua_State *L);
/* sluice.core.pipeline_start(db, sql, opts) -> pipeline (db busy until
 * close); raises the server's error object if sql does not parse. */
int lib_pipeline_start(lua_State *L);

#endif
