/*
 * lib_conn.c - Lua binding of a PostgreSQL connection and its prepared
 * statements: connect, exec, query with parameters, prepare, notices, and
 * the one wait for a statement's results that every binding uses.  The
 * error objects it raises are built in lib_error.c.
 *
 * Caveats:
 * - Every statement is sent with libpq's asynchronous API and waited for in
 *   pgconn_wait(), so Ctrl-C cancels it on the server.  All results of a
 *   statement are drained before anything is raised, so an error never
 *   leaves the connection with unread results.
 * - PGresults are parked in "sluice.result" userdata (created before the
 *   result exists) while Lua values are built from them, so a Lua error in
 *   the middle (out of memory, a failing notice handler) cannot leak one.
 * - Query results arrive in text format and are converted by column type;
 *   this is a control path, not the bulk path (COPY and batches are).
 * - Connecting goes through PQconnectStartParams/PQconnectPoll in our own
 *   poll() loop (libpq's blocking connect retries on EINTR, so Ctrl-C
 *   could not stop it), with TCP keepalives and tcp_user_timeout on by
 *   default (tcp_keys; the target's own settings win), and the silence
 *   bound of the connection (`timeout`, DEFAULT_TIMEOUT_S) applies to the
 *   connect too, unless the target sets connect_timeout.
 */
#include "lib.h"
#include "copyenc.h"
#include "interrupt.h"
#include "numfmt.h"
#include "pgconn.h"
#include "redact.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* type OIDs from pg_type.dat; stable since forever */
#define OID_BOOL 16
#define OID_BYTEA 17
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23
#define OID_OID 26
#define OID_FLOAT4 700
#define OID_FLOAT8 701

#define MAX_PARAMS 65535

typedef struct sl_stmt {
    char name[32];
    int closed;
} sl_stmt;

typedef struct sl_result {
    PGresult *res;
} sl_result;

/* --------------------------------------------------------------- results */

PGresult **lib_new_result_slot(lua_State *L)
{
    sl_result *r = lua_newuserdata(L, sizeof *r);
    r->res = NULL;
    luaL_getmetatable(L, SLUICE_RESULT_MT);
    lua_setmetatable(L, -2);
    return &r->res;
}

static int result_gc(lua_State *L)
{
    sl_result *r = luaL_checkudata(L, 1, SLUICE_RESULT_MT);
    if (r->res) {
        PQclear(r->res);
        r->res = NULL;
    }
    return 0;
}

const luaL_Reg lib_result_meta[] = {
    { "__gc", result_gc },
    { NULL, NULL },
};

/* ----------------------------------------------------------- connection */

/* Raise (caller's line) when a COPY or pipeline owns the connection. */
static void check_not_busy(lua_State *L, sl_conn *c)
{
    if (!c->busy)
        return;
    /* a COPY stream, reader or pipeline that the script dropped (a loop
     * left with break or an error) still holds the connection until its
     * __gc ends it: collect once before refusing */
    lua_gc(L, LUA_GCCOLLECT, 0);
    if (c->busy == SL_BUSY_PIPELINE)
        luaL_error(L, "the connection is busy with an open pipeline; "
                      "close() it first");
    if (c->busy)
        luaL_error(L, "the connection is busy with an open COPY; "
                      "finish() or abort() it (close() a copy_out "
                      "reader) first");
}

sl_conn *lib_conn_check(lua_State *L, int idx)
{
    sl_conn *c = luaL_checkudata(L, idx, SLUICE_CONN_MT);
    if (!c->pg)
        luaL_error(L, "the connection is closed");
    if (c->gen != lib_process_gen)
        luaL_error(L, "this connection belongs to the parent process; a "
                      "worker connects on its own");
    check_not_busy(L, c);
    return c;
}

unsigned lib_process_gen;
static sl_conn *all_conns;

void lib_conn_disown_all(void)
{
    int dn = open("/dev/null", O_RDWR | O_CLOEXEC);
    for (sl_conn *c = all_conns; c; c = c->next) {
        int fd = c->pg ? PQsocket(c->pg) : -1;
        if (fd >= 0 && dn >= 0 && dup2(dn, fd) >= 0)
            fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    if (dn >= 0)
        close(dn);
    lib_process_gen++;
}

static void conn_release(sl_conn *c);

void lib_conn_close_own(void)
{
    for (sl_conn *c = all_conns; c; c = c->next)
        if (c->pg && c->gen == lib_process_gen)
            conn_release(c);
}

static void conn_release(sl_conn *c)
{
    if (c->pg) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    pgconn_notices_clear(&c->notices);
}

#define MALFORMED_HINT                                                    \
    "in a postgres:// URI, percent-encode reserved characters of the "   \
    "user name and password (%40 for @, %2F for /, %25 for %); in a "    \
    "key=value string, put a value that holds spaces or quotes in "      \
    "single quotes, writing \\' for a quote"

/* Whether libpq reads target as a conninfo string or a URI rather than a
 * database name (libpq's recognized_connection_string). */
static int is_connection_string(const char *target)
{
    return strncmp(target, "postgresql://", 13) == 0 ||
           strncmp(target, "postgres://", 11) == 0 ||
           strchr(target, '=') != NULL;
}

/* Push libpq's message msg through r, without its trailing newline. */
static void push_redacted(lua_State *L, const redact *r, const char *msg)
{
    char buf[2048];
    redact_text(r, msg, buf, sizeof buf);
    lib_push_trimmed(L, buf);
}

/* Push a value the connection tried (host, port, ...) for a message:
 * "(default)" when unset, "***" when it shares text with a secret. */
static void push_tried(lua_State *L, const redact *r, const char *v)
{
    char buf[512];
    if (!v || !*v) {
        lua_pushliteral(L, "(default)");
        return;
    }
    redact_text(r, v, buf, sizeof buf);
    if (redact_overlaps(r, buf))
        lua_pushliteral(L, REDACT_MARK);
    else
        lua_pushstring(L, buf);
}

/* Raise the 08001 error of the failed connection c (released here).
 * Never shows the password (see redact.h): a target libpq cannot parse is
 * shown with its secrets replaced, and libpq's messages and the values
 * the connection tried go through the same filter.  reason: why, when it
 * is not libpq's PQerrorMessage (a bound that passed), else NULL. */
static int connect_failed(lua_State *L, sl_conn *c, const char *target,
                          const char *reason)
{
    redact *r = lua_newuserdata(L, sizeof *r);
    redact_init(r, target);
    redact_add(r, PQpass(c->pg));
    char *perr = NULL;
    if (is_connection_string(target)) {
        PQconninfoOption *o = PQconninfoParse(target, &perr);
        if (o)
            PQconninfoFree(o);
    }
    const char *hint = "check the target given to sluice.connect(), "
                       "DATABASE_URL or the PG* environment variables";
    if (perr) {
        char buf[2048];
        redact_text(r, perr, buf, sizeof buf);
        PQfreemem(perr);
        lua_pushfstring(L, "could not connect to PostgreSQL: malformed "
                           "connection target \"%s\": ", r->shown);
        lib_push_trimmed(L, buf);
        hint = MALFORMED_HINT;
    } else {
        lua_pushliteral(L, "could not connect to PostgreSQL (host=");
        push_tried(L, r, PQhost(c->pg));
        lua_pushliteral(L, " port=");
        push_tried(L, r, PQport(c->pg));
        lua_pushliteral(L, " dbname=");
        push_tried(L, r, PQdb(c->pg));
        lua_pushliteral(L, " user=");
        push_tried(L, r, PQuser(c->pg));
        lua_pushliteral(L, "): ");
        push_redacted(L, r, reason ? reason : PQerrorMessage(c->pg));
        lua_concat(L, 9);
    }
    lua_concat(L, 2);
    conn_release(c);
    lib_push_error(L, "08001", lua_tostring(L, -1), NULL, hint);
    return lua_error(L);
}

/* TCP defaults for every connection, given before the target so that the
 * target's own settings win (libpq keeps the last value of a key; the
 * target is expanded at "dbname").  A peer that stops answering is then
 * noticed in about a minute by the kernel: keepalive probes after 30 s
 * idle, every 10 s, 3 unanswered ones drop the connection; data sent and
 * not acknowledged for 60 s drops it too (tcp_user_timeout, ms).  A unix
 * socket ignores them. */
static const char *const tcp_keys[] = {
    "keepalives", "keepalives_idle", "keepalives_interval",
    "keepalives_count", "tcp_user_timeout",
};
static const char *const tcp_vals[] = { "1", "30", "10", "3", "60000" };
#define N_TCP (sizeof tcp_keys / sizeof tcp_keys[0])

/* The silence bound of a connection when the script gives none, in
 * seconds (README, "Connecting").  Generous: a load's round trips answer
 * in far less, and the kernel catches a dead host in about a minute
 * (tcp_keys); this catches what the kernel cannot (a proxy or server that
 * holds the connection open and says nothing), while a statement that
 * legitimately runs that long without a word needs a larger bound. */
#define DEFAULT_TIMEOUT_S 300

enum { CW_OK, CW_FAILED, CW_TIMEOUT, CW_INTERRUPTED };

/* libpq's PQconnectPoll loop, waiting in poll() so that Ctrl-C is seen
 * and silence is bounded: the user's connect_timeout (which only libpq's
 * blocking connect honours) when set, else the connection's timeout_ms.
 * *limit_ms gets the bound used, *key its name. */
static int connect_wait(PGconn *pg, int timeout_ms, int *limit_ms,
                        const char **key)
{
    int limit = timeout_ms;
    *key = "timeout";
    PQconninfoOption *opts = PQconninfo(pg);
    for (PQconninfoOption *o = opts; o && o->keyword; o++) {
        if (strcmp(o->keyword, "connect_timeout") == 0 && o->val &&
            atoi(o->val) > 0) {
            int t = atoi(o->val);
            limit = (t < 2 ? 2 : t > 2000000 ? 2000000 : t) * 1000;
            *key = "connect_timeout";
        }
    }
    PQconninfoFree(opts);
    *limit_ms = limit;
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    long long mark = pgconn_now_ms();
    for (;;) {
        if (st == PGRES_POLLING_OK)
            return CW_OK;
        /* a failure with Ctrl-C pending is the interrupt's: the signal
         * can end a system call inside libpq (EINTR), which then gives
         * up the attempt as if the server had */
        if (interrupt_pending())
            return CW_INTERRUPTED;
        if (st == PGRES_POLLING_FAILED)
            return CW_FAILED;
        struct pollfd p = { PQsocket(pg),
                            st == PGRES_POLLING_READING ? POLLIN : POLLOUT,
                            0 };
        int r = p.fd < 0 ? 1 : poll(&p, 1, 100);
        if (r < 0 && errno != EINTR)
            return interrupt_pending() ? CW_INTERRUPTED : CW_FAILED;
        if (r > 0) {
            st = PQconnectPoll(pg);
            mark = pgconn_now_ms();
        } else if (limit > 0 && pgconn_now_ms() - mark >= limit) {
            return CW_TIMEOUT;
        }
    }
}

/* Seconds (a Lua number >= 0) as ms for a silence bound; raises at arg. */
static int check_seconds(lua_State *L, int arg, lua_Number s)
{
    luaL_argcheck(L, s >= 0 && s <= 2000000, arg,
                  "timeout must be a number of seconds, 0 (none) to 2000000");
    int ms = (int)(s * 1000 + 0.5);
    return s > 0 && ms == 0 ? 1 : ms;
}

int lib_conn_connect(lua_State *L)
{
    const char *target = luaL_optstring(L, 1, "");
    int timeout_ms = check_seconds(L, 2, luaL_optnumber(L, 2,
                                                        DEFAULT_TIMEOUT_S));
    sl_conn *c = lua_newuserdata(L, sizeof *c);
    memset(c, 0, sizeof *c);
    c->gen = lib_process_gen;
    c->next = all_conns;
    if (all_conns)
        all_conns->prev = c;
    all_conns = c;
    luaL_getmetatable(L, SLUICE_CONN_MT);
    lua_setmetatable(L, -2);
    lua_newtable(L); /* per-connection Lua state: on_notice, ... */
    lua_setfenv(L, -2);

    /* expand_dbname makes "dbname" accept a conninfo string or a URI; empty
     * values are ignored, so "" means "PG* environment variables only" */
    const char *keys[N_TCP + 3], *vals[N_TCP + 3];
    for (size_t i = 0; i < N_TCP; i++) {
        keys[i] = tcp_keys[i];
        vals[i] = tcp_vals[i];
    }
    keys[N_TCP] = "dbname";
    vals[N_TCP] = target;
    keys[N_TCP + 1] = "fallback_application_name";
    vals[N_TCP + 1] = "sluice";
    keys[N_TCP + 2] = vals[N_TCP + 2] = NULL;
    c->pg = PQconnectStartParams(keys, vals, 1);
    if (!c->pg)
        return luaL_error(L, "out of memory while connecting");
    if (PQstatus(c->pg) == CONNECTION_BAD && !interrupt_pending())
        return connect_failed(L, c, target, NULL);
    int limit;
    const char *key;
    switch (connect_wait(c->pg, timeout_ms, &limit, &key)) {
    case CW_OK:
        break;
    case CW_INTERRUPTED: {
        conn_release(c);
        int sig = lib_interrupt_consume(L);
        return luaL_error(L, "interrupted (%s) while connecting",
                          interrupt_name(sig));
    }
    case CW_TIMEOUT: {
        char why[128];
        snprintf(why, sizeof why, "no answer from the server for %g s "
                 "(%s = %g)", limit / 1000.0, key, limit / 1000.0);
        return connect_failed(L, c, target, why);
    }
    default:
        return connect_failed(L, c, target, NULL);
    }
    if (pgconn_bound_attach(c->pg, timeout_ms) != 0) {
        conn_release(c);
        return luaL_error(L, "out of memory while connecting");
    }
    pgconn_notices_attach(c->pg, &c->notices);
    return 1;
}

static int conn_gc(lua_State *L)
{
    sl_conn *c = luaL_checkudata(L, 1, SLUICE_CONN_MT);
    conn_release(c);
    if (c->prev)
        c->prev->next = c->next;
    else if (all_conns == c)
        all_conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    return 0;
}

static int conn_close(lua_State *L)
{
    sl_conn *c = luaL_checkudata(L, 1, SLUICE_CONN_MT);
    conn_release(c);
    return 0;
}

static int conn_is_closed(lua_State *L)
{
    sl_conn *c = luaL_checkudata(L, 1, SLUICE_CONN_MT);
    lua_pushboolean(L, c->pg == NULL);
    return 1;
}

static int conn_tostring(lua_State *L)
{
    sl_conn *c = luaL_checkudata(L, 1, SLUICE_CONN_MT);
    if (!c->pg)
        lua_pushstring(L, "sluice.conn (closed)");
    else
        lua_pushfstring(L, "sluice.conn (dbname=%s user=%s host=%s)",
                        PQdb(c->pg), PQuser(c->pg), PQhost(c->pg));
    return 1;
}

/* Hand queued notices to the connection's on_notice handler, or print
 * warnings to stderr when there is none.  May raise (the handler's error). */
void lib_conn_deliver_notices(lua_State *L, sl_conn *c, int conn_idx)
{
    if (c->notices.n == 0)
        return;
    /* Copy the queue into Lua tables and empty it before any handler
     * runs: a handler that uses the connection (to log the notice, say)
     * must not see the same notices again. */
    int n = c->notices.n;
    lua_getfenv(L, conn_idx);
    lua_getfield(L, -1, "on_notice");
    lua_remove(L, -2);
    lua_createtable(L, n, 0);
    // stack: handler|nil, list
    for (int i = 0; i < n; i++) {
        const pgconn_notice *nt = c->notices.items[i];
        lua_createtable(L, 0, 6);
        lib_set_field(L, "severity", nt->severity);
        lib_set_field(L, "sqlstate", nt->sqlstate);
        lib_set_field(L, "message", nt->message);
        lib_set_field(L, "detail", nt->detail);
        lib_set_field(L, "hint", nt->hint);
        lib_set_field(L, "context", nt->context);
        lua_rawseti(L, -2, i + 1);
    }
    pgconn_notices_clear(&c->notices);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        // stack: handler|nil, list, notice
        if (lua_isfunction(L, -3)) {
            lua_pushvalue(L, -3);
            lua_insert(L, -2);
            lua_call(L, 1, 0); /* a handler's error propagates */
        } else {
            lua_getfield(L, -1, "severity");
            lua_getfield(L, -2, "message");
            const char *sev = lua_tostring(L, -2);
            if (sev && strcmp(sev, "WARNING") == 0)
                fprintf(stderr, "WARNING:  %s\n", lua_tostring(L, -1));
            lua_pop(L, 3);
        }
    }
    lua_pop(L, 2);
}

/* Wait for and collect every result of the command just sent: the core's
 * one result loop (pgconn_collect).  The last successful result goes to
 * *ok, the first failed one to *err (both slots owned by "sluice.result"
 * userdata).  Never raises.  Returns the flags: the call was interrupted
 * (a cancel was sent), the connection broke, a COPY TO STDOUT was
 * refused. */
#define RUN_INTERRUPTED PGCONN_F_INTERRUPTED
#define RUN_BROKEN PGCONN_F_BROKEN
#define RUN_COPY_OUT PGCONN_F_COPY_OUT

static int collect_results(PGconn *pg, PGresult **ok, PGresult **err)
{
    return pgconn_collect(pg, 0, "COPY FROM STDIN is not available through "
                                 "exec() or query(); use db:copy()",
                          1, ok, err);
}

/* The one wait behind lib_conn_finish() and lib_conn_finish_status():
 * collects the results, raises the server's error, and returns the status
 * for the rest (see lib.h).  Pushes the result holder. */
int lib_conn_finish_status(lua_State *L, sl_conn *c, int conn_idx, int sent,
                           PGresult **res)
{
    PGresult **ok = lib_new_result_slot(L);
    PGresult **err = lib_new_result_slot(L);
    // stack: ..., ok_holder, err_holder
    int flags = 0;
    if (!sent)
        flags = RUN_BROKEN;
    else
        flags = collect_results(c->pg, ok, err);
    /* held (interrupt.h): the holder learns from what is raised or
     * returned here what the statement did, and raises the interrupt */
    int held = interrupt_held();
    if ((flags & RUN_INTERRUPTED) && !held && (*err || (flags & RUN_BROKEN)))
        lib_interrupt_consume(L);
    lib_conn_deliver_notices(L, c, conn_idx);
    if (*err) {
        lib_push_result_error(L, *err, c->pg);
        return lua_error(L);
    }
    lua_pop(L, 1);
    // stack: ..., ok_holder
    *res = *ok;
    if (flags & RUN_BROKEN)
        return LIB_FINISH_LOST;
    if (flags & RUN_COPY_OUT)
        return luaL_error(L, "COPY TO STDOUT is not available through "
                             "exec() or query(); use db:copy_out()");
    return (flags & RUN_INTERRUPTED) ? LIB_FINISH_INTERRUPTED
                                     : LIB_FINISH_OK;
}

/* Run a command already sent with a PQsend* call and raise on any failure.
 * Pushes one "sluice.result" holder whose result is the last successful
 * one (may be NULL for an empty query string) and returns that result.
 * `sent` is the return value of the PQsend* call. */
PGresult *lib_conn_finish(lua_State *L, sl_conn *c, int conn_idx, int sent)
{
    PGresult *res;
    int st = lib_conn_finish_status(L, c, conn_idx, sent, &res);
    if (st == LIB_FINISH_LOST) {
        lib_push_conn_error(L, c->pg);
        return (lua_error(L), NULL);
    }
    if (st == LIB_FINISH_INTERRUPTED && !interrupt_held()) {
        lib_interrupt_consume(L);
        return (luaL_error(L, "interrupted (%s)",
                           interrupt_name(interrupt_last())), NULL);
    }
    return res;
}

/* Parameters for PQsend*Params, built in one scratch userdata so nothing
 * leaks if a conversion raises. */
typedef struct params {
    int n;
    const char **values;
    int *lengths;
    int *formats;
} params;

static void check_param_count(lua_State *L, int n)
{
    if (n > MAX_PARAMS)
        luaL_error(L, "too many parameters (%d); PostgreSQL accepts at most "
                      "%d per statement", n, MAX_PARAMS);
}

/* Convert the Lua values at stack indices first..first+n-1.  Pushes the
 * scratch userdata (and, when needed, an anchor table for converted
 * strings) - the pointers stay valid while those stay on the stack. */
static void build_params(lua_State *L, int first, int n, params *p)
{
    check_param_count(L, n);
    size_t per = sizeof(char *) + 2 * sizeof(int) + NUMFMT_BUFSIZE;
    char *mem = lua_newuserdata(L, per * (size_t)(n ? n : 1));
    lua_newtable(L); /* anchor for strings made here */
    int anchor = lua_gettop(L), nanchored = 0;
    p->n = n;
    p->values = (const char **)(void *)mem;
    p->lengths = (int *)(void *)(mem + sizeof(char *) * (size_t)n);
    p->formats = p->lengths + n;
    char *num = (char *)(p->formats + n);

    for (int i = 0; i < n; i++) {
        int idx = first + i;
        p->lengths[i] = 0;
        p->formats[i] = 0;
        switch (lua_type(L, idx)) {
        case LUA_TNIL:
            p->values[i] = NULL;
            break;
        case LUA_TLIGHTUSERDATA:
            if (lua_touserdata(L, idx) != NULL)
                luaL_error(L, "parameter $%d: cannot send a light userdata",
                           i + 1);
            p->values[i] = NULL; /* sluice.null */
            break;
        case LUA_TBOOLEAN:
            /* as every path writes a boolean (copyenc.h) */
            p->values[i] = copy_bool_text(lua_toboolean(L, idx), COPY_K_OTHER);
            break;
        case LUA_TNUMBER: {
            char *buf = num + (size_t)i * NUMFMT_BUFSIZE;
            numfmt_double(buf, lua_tonumber(L, idx));
            p->values[i] = buf;
            break;
        }
        case LUA_TSTRING: {
            size_t len;
            const char *s = lua_tolstring(L, idx, &len);
            p->values[i] = s;
            if (memchr(s, '\0', len)) {
                /* text parameters end at the first NUL; send the bytes as
                 * they are (right for bytea, an error for text types) */
                if (len > INT32_MAX)
                    luaL_error(L, "parameter $%d is too large", i + 1);
                p->formats[i] = 1;
                p->lengths[i] = (int)len;
            }
            break;
        }
        default: {
            int is_cdata = lua_type(L, idx) == 10; /* LUA_TCDATA */
            if (is_cdata) {
                lua_getfield(L, LUA_REGISTRYINDEX, SLUICE_REG_CDATATEXT);
                if (lua_isfunction(L, -1)) {
                    lua_pushvalue(L, idx);
                    lua_call(L, 1, 1);
                    if (lua_isstring(L, -1)) {
                        p->values[i] = lua_tostring(L, -1);
                        lua_rawseti(L, anchor, ++nanchored);
                        break;
                    }
                }
                lua_pop(L, 1);
            }
            luaL_error(L,
                       "parameter $%d: cannot send a %s (use nil, "
                       "sluice.null, a boolean, a number, a string or an "
                       "int64/uint64 cdata)",
                       i + 1, is_cdata ? "cdata of this type"
                                       : luaL_typename(L, idx));
        }
        }
    }
}

/* Build the Lua value of field (row, col) whose kind was decided from the
 * column type. */
enum { K_TEXT, K_BOOL, K_NUM, K_INT8, K_BYTEA, K_VEC0 /* + 1..3 */ };

static int kind_of(Oid t)
{
    switch (t) {
    case OID_BOOL: return K_BOOL;
    case OID_INT2: case OID_INT4: case OID_OID: case OID_FLOAT4:
    case OID_FLOAT8: return K_NUM;
    case OID_INT8: return K_INT8;
    case OID_BYTEA: return K_BYTEA;
    default: return K_TEXT;
    }
}

static void push_value(lua_State *L, const PGresult *res, int row, int col,
                       int kind)
{
    if (PQgetisnull(res, row, col)) {
        lua_pushlightuserdata(L, NULL);
        return;
    }
    const char *v = PQgetvalue(res, row, col);
    int len = PQgetlength(res, row, col);
    switch (kind) {
    case K_BOOL:
        lua_pushboolean(L, v[0] == 't');
        return;
    case K_NUM:
        lua_pushnumber(L, strtod(v, NULL));
        return;
    case K_INT8:
        lib_push_int8(L, strtoll(v, NULL, 10), v, (size_t)len);
        return;
    case K_BYTEA: {
        size_t n;
        unsigned char *raw = PQunescapeBytea((const unsigned char *)v, &n);
        if (!raw)
            luaL_error(L, "out of memory decoding a bytea value");
        lua_pushlstring(L, (const char *)raw, n);
        PQfreemem(raw);
        return;
    }
    case K_VEC0 + 1: case K_VEC0 + 2: case K_VEC0 + 3:
        lib_vector_push(L, v, (size_t)len, kind - K_VEC0);
        return;
    default:
        lua_pushlstring(L, v, (size_t)len);
        return;
    }
}

/* For the prompt (SLUICE_REG_COLUMNS in lib.h): keep the columns of the
 * result on top (res's, names at stack index `names`) in the weak table
 * on top of that.  A column whose name a later one repeats lost its
 * values in the rows (the last one wins): they are kept too, by row, in
 * shadowed[column], so the prompt shows every column. */
static void keep_columns(lua_State *L, const PGresult *res, int names,
                         const int *kinds, int nrows, int one_row)
{
    int nf = PQnfields(res);
    // stack: ..., result, keep
    lua_pushvalue(L, -2);
    lua_createtable(L, nf, 1);
    for (int j = 0; j < nf; j++) {
        lua_pushvalue(L, names + j);
        lua_rawseti(L, -2, j + 1);
    }
    lua_createtable(L, nf, 0);
    for (int j = 0; j < nf; j++) {
        lua_pushnumber(L, (lua_Number)PQftype(res, j));
        lua_rawseti(L, -2, j + 1);
    }
    lua_setfield(L, -2, "types");
    if (one_row) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "one");
    }
    int shadowed = 0;
    for (int j = 0; j < nf; j++) {
        int repeated = 0;
        for (int k = j + 1; k < nf && !repeated; k++)
            repeated = strcmp(PQfname(res, j), PQfname(res, k)) == 0;
        if (!repeated)
            continue;
        if (!shadowed) {
            lua_newtable(L);
            lua_pushvalue(L, -1);
            lua_setfield(L, -3, "shadowed");
            shadowed = 1;
        }
        // stack: ..., result, keep, result, info, shadowed
        lua_createtable(L, nrows, 0);
        for (int i = 0; i < nrows; i++) {
            push_value(L, res, i, j, kinds[j]);
            lua_rawseti(L, -2, i + 1);
        }
        lua_rawseti(L, -2, j + 1);
    }
    if (shadowed)
        lua_pop(L, 1);
    lua_rawset(L, -3);
}

/* Push res as an array of rows keyed by column name (only the first row,
 * or nil, when one_row).  Duplicate column names: the last one wins.
 * When the prompt asked for it (SLUICE_REG_COLUMNS), the result's
 * columns are kept beside it, in order. */
/* The pgvector kinds of res's columns (lib_vector_kinds), in a userdata
 * left on the stack; NULL (nothing pushed) when no column is of a type
 * outside the built-in ones. */
static const signed char *vector_kinds(lua_State *L, sl_conn *c,
                                       int conn_idx, const PGresult *res)
{
    int nf = res ? PQnfields(res) : 0, ext = 0;
    for (int j = 0; j < nf && !ext; j++)
        ext = PQftype(res, j) >= 16384;
    if (!ext)
        return NULL;
    signed char *vk = lua_newuserdata(L, (size_t)nf);
    return lib_vector_kinds(L, c, conn_idx, res, vk) ? vk : NULL;
}

static void push_rows(lua_State *L, const PGresult *res, int one_row,
                      const signed char *vk)
{
    int nrows = res ? PQntuples(res) : 0;
    int nf = res ? PQnfields(res) : 0;
    if (one_row && nrows == 0) {
        lua_pushnil(L);
        return;
    }
    if (one_row)
        nrows = 1;
    int *kinds = lua_newuserdata(L, sizeof(int) * (size_t)(nf ? nf : 1));
    luaL_checkstack(L, nf + 8, "too many columns");
    int names = lua_gettop(L) + 1;
    for (int j = 0; j < nf; j++) {
        kinds[j] = vk && vk[j] ? K_VEC0 + vk[j] : kind_of(PQftype(res, j));
        lua_pushstring(L, PQfname(res, j));
    }
    // stack: ..., kinds, name1..nameN
    if (!one_row)
        lua_createtable(L, nrows, 0);
    for (int i = 0; i < nrows; i++) {
        lua_createtable(L, 0, nf);
        for (int j = 0; j < nf; j++) {
            lua_pushvalue(L, names + j);
            push_value(L, res, i, j, kinds[j]);
            lua_rawset(L, -3);
        }
        if (!one_row)
            lua_rawseti(L, -2, i + 1);
    }
    // stack: ..., kinds, names..., result
    lua_getfield(L, LUA_REGISTRYINDEX, SLUICE_REG_COLUMNS);
    if (lua_istable(L, -1) && res)
        keep_columns(L, res, names, kinds, nrows, one_row);
    lua_pop(L, 1);
    lua_replace(L, names - 1);
    lua_settop(L, names - 1);
}

static void push_tag(lua_State *L, const PGresult *res)
{
    if (res)
        lua_pushstring(L, PQcmdStatus((PGresult *)res));
    else
        lua_pushstring(L, "");
}

static void push_affected(lua_State *L, const PGresult *res)
{
    const char *n = res ? PQcmdTuples((PGresult *)res) : "";
    lua_pushnumber(L, *n ? strtod(n, NULL) : 0);
}

/* db:exec(sql) -> affected_rows, command_tag
 * Runs one or more statements (simple protocol). */
static int conn_exec(lua_State *L)
{
    sl_conn *c = lib_conn_check(L, 1);
    const char *sql = luaL_checkstring(L, 2);
    int sent = PQsendQuery(c->pg, sql);
    PGresult *res = lib_conn_finish(L, c, 1, sent);
    push_affected(L, res);
    push_tag(L, res);
    return 2;
}

static int do_query(lua_State *L, int one_row)
{
    sl_conn *c = lib_conn_check(L, 1);
    const char *sql = luaL_checkstring(L, 2);
    int n = lua_gettop(L) - 2;
    params p;
    build_params(L, 3, n, &p);
    int sent = PQsendQueryParams(c->pg, sql, n, NULL, p.values, p.lengths,
                                 p.formats, 0);
    PGresult *res = lib_conn_finish(L, c, 1, sent);
    push_rows(L, res, one_row, vector_kinds(L, c, 1, res));
    push_tag(L, res);
    return 2;
}

/* db:query(sql, ...) -> rows, command_tag */
static int conn_query(lua_State *L)
{
    return do_query(L, 0);
}

/* db:query_one(sql, ...) -> first row or nil, command_tag */
static int conn_query_one(lua_State *L)
{
    return do_query(L, 1);
}

/* db:prepare(sql) -> statement */
static int conn_prepare(lua_State *L)
{
    sl_conn *c = lib_conn_check(L, 1);
    const char *sql = luaL_checkstring(L, 2);
    sl_stmt *s = lua_newuserdata(L, sizeof *s);
    memset(s, 0, sizeof *s);
    s->closed = 1;
    luaL_getmetatable(L, SLUICE_STMT_MT);
    lua_setmetatable(L, -2);
    lua_createtable(L, 1, 0); /* the statement keeps its connection alive */
    lua_pushvalue(L, 1);
    lua_rawseti(L, -2, 1);
    lua_setfenv(L, -2);
    snprintf(s->name, sizeof s->name, "sluice_stmt_%u", ++c->stmt_seq);
    int sent = PQsendPrepare(c->pg, s->name, sql, 0, NULL);
    lib_conn_finish(L, c, 1, sent);
    lua_pop(L, 1);
    s->closed = 0;
    return 1;
}

static int conn_status(lua_State *L)
{
    sl_conn *c = luaL_checkudata(L, 1, SLUICE_CONN_MT);
    if (!c->pg) {
        lua_pushstring(L, "closed");
        return 1;
    }
    switch (PQtransactionStatus(c->pg)) {
    case PQTRANS_IDLE: lua_pushstring(L, "idle"); break;
    case PQTRANS_ACTIVE: lua_pushstring(L, "active"); break;
    case PQTRANS_INTRANS: lua_pushstring(L, "intrans"); break;
    case PQTRANS_INERROR: lua_pushstring(L, "inerror"); break;
    default: lua_pushstring(L, PQstatus(c->pg) == CONNECTION_OK
                                   ? "unknown" : "broken");
    }
    return 1;
}

/* db:info() -> {host, port, dbname, user, server_version, backend_pid}
 * (never the password) */
static int conn_info(lua_State *L)
{
    sl_conn *c = lib_conn_check(L, 1);
    lua_createtable(L, 0, 6);
    lib_set_field(L, "host", PQhost(c->pg));
    lib_set_field(L, "port", PQport(c->pg));
    lib_set_field(L, "dbname", PQdb(c->pg));
    lib_set_field(L, "user", PQuser(c->pg));
    lua_pushinteger(L, PQserverVersion(c->pg));
    lua_setfield(L, -2, "server_version");
    lua_pushinteger(L, PQbackendPID(c->pg));
    lua_setfield(L, -2, "backend_pid");
    return 1;
}

static int conn_quote_ident(lua_State *L)
{
    sl_conn *c = lib_conn_check(L, 1);
    size_t len;
    const char *s = luaL_checklstring(L, 2, &len);
    char *q = PQescapeIdentifier(c->pg, s, len);
    if (!q) {
        lua_pushstring(L, PQerrorMessage(c->pg));
        return luaL_error(L, "quote_ident: %s", lua_tostring(L, -1));
    }
    lua_pushstring(L, q);
    PQfreemem(q);
    return 1;
}

/* db:set_timeout(seconds) -> the previous bound in seconds: the silence
 * bound of every later wait on this connection (0: none). */
static int conn_set_timeout(lua_State *L)
{
    sl_conn *c = lib_conn_check(L, 1);
    int ms = check_seconds(L, 2, luaL_checknumber(L, 2));
    lua_pushnumber(L, pgconn_timeout(c->pg) / 1000.0);
    if (pgconn_bound_attach(c->pg, ms) != 0)
        return luaL_error(L, "set_timeout: out of memory");
    return 1;
}

/* db:timeout() -> the silence bound in seconds (0: none). */
static int conn_timeout(lua_State *L)
{
    sl_conn *c = lib_conn_check(L, 1);
    lua_pushnumber(L, pgconn_timeout(c->pg) / 1000.0);
    return 1;
}

/* db:on_notice(fn|nil): fn(notice) is called after each call that
 * produced notices (never from inside libpq). */
static int conn_on_notice(lua_State *L)
{
    lib_conn_check(L, 1);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_settop(L, 2);
    lua_getfenv(L, 1);
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "on_notice");
    return 0;
}

const luaL_Reg lib_conn_methods[] = {
    { "exec", conn_exec },
    { "query", conn_query },
    { "query_one", conn_query_one },
    { "prepare", conn_prepare },
    { "status", conn_status },
    { "info", conn_info },
    { "quote_ident", conn_quote_ident },
    { "on_notice", conn_on_notice },
    { "set_timeout", conn_set_timeout },
    { "timeout", conn_timeout },
    { "close", conn_close },
    { "is_closed", conn_is_closed },
    { NULL, NULL },
};

const luaL_Reg lib_conn_meta[] = {
    { "__gc", conn_gc },
    { "__tostring", conn_tostring },
    { NULL, NULL },
};

/* ------------------------------------------------------------ statements */

/* Check a statement and push-free return its open connection. */
static sl_stmt *check_stmt(lua_State *L, int idx, sl_conn **conn)
{
    sl_stmt *s = luaL_checkudata(L, idx, SLUICE_STMT_MT);
    if (s->closed)
        luaL_error(L, "the prepared statement is closed");
    lua_getfenv(L, idx);
    lua_rawgeti(L, -1, 1);
    lua_remove(L, -2);
    *conn = luaL_checkudata(L, -1, SLUICE_CONN_MT);
    if (!(*conn)->pg)
        luaL_error(L, "the connection is closed");
    check_not_busy(L, *conn);
    return s;
}

static int stmt_run(lua_State *L, int mode)
{
    sl_conn *c;
    sl_stmt *s = check_stmt(L, 1, &c);
    int conn_idx = lua_gettop(L);
    int n = conn_idx - 2;
    params p;
    build_params(L, 2, n, &p);
    int sent = PQsendQueryPrepared(c->pg, s->name, n, p.values, p.lengths,
                                   p.formats, 0);
    PGresult *res = lib_conn_finish(L, c, conn_idx, sent);
    if (mode == 2) {
        push_affected(L, res);
    } else {
        push_rows(L, res, mode == 1, vector_kinds(L, c, conn_idx, res));
    }
    push_tag(L, res);
    return 2;
}

static int stmt_query(lua_State *L) { return stmt_run(L, 0); }
static int stmt_query_one(lua_State *L) { return stmt_run(L, 1); }
static int stmt_exec(lua_State *L) { return stmt_run(L, 2); }

/* stmt:close() deallocates the statement on the server. */
static int stmt_close(lua_State *L)
{
    sl_stmt *s = luaL_checkudata(L, 1, SLUICE_STMT_MT);
    if (s->closed)
        return 0;
    lua_getfenv(L, 1);
    lua_rawgeti(L, -1, 1);
    lua_remove(L, -2);
    sl_conn *c = luaL_checkudata(L, -1, SLUICE_CONN_MT);
    if (c->pg)
        check_not_busy(L, c);
    s->closed = 1;
    if (!c->pg)
        return 0; /* gone with its session */
    char sql[64];
    snprintf(sql, sizeof sql, "DEALLOCATE %s", s->name);
    lib_conn_finish(L, c, 2, PQsendQuery(c->pg, sql));
    return 0;
}

static int stmt_tostring(lua_State *L)
{
    sl_stmt *s = luaL_checkudata(L, 1, SLUICE_STMT_MT);
    lua_pushfstring(L, "sluice.stmt (%s%s)", s->name,
                    s->closed ? ", closed" : "");
    return 1;
}

const luaL_Reg lib_stmt_methods[] = {
    { "query", stmt_query },
    { "query_one", stmt_query_one },
    { "exec", stmt_exec },
    { "close", stmt_close },
    { NULL, NULL },
};

/* Statements live as long as their session: __gc cannot run SQL safely
 * (it may fire in the middle of another command), so there is none. */
const luaL_Reg lib_stmt_meta[] = {
    { "__tostring", stmt_tostring },
    { NULL, NULL },
};

/* Exported for batch RETURNING (lib_batch.c): the same conversion as
 * db:query(). */
void lib_push_int8(lua_State *L, long long x, const char *text, size_t len)
{
    /* exact as a double up to 2^53; beyond that, an int64 cdata */
    if (x >= -(1LL << 53) && x <= (1LL << 53)) {
        lua_pushnumber(L, (lua_Number)x);
        return;
    }
    lua_getfield(L, LUA_REGISTRYINDEX, SLUICE_REG_INT64);
    if (lua_isfunction(L, -1)) {
        lua_pushlstring(L, text, len);
        lua_call(L, 1, 1);
    } else {
        lua_pop(L, 1);
        lua_pushlstring(L, text, len);
    }
}

void lib_push_rows(lua_State *L, const PGresult *res)
{
    push_rows(L, res, 0, NULL);
}
