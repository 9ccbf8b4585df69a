/*
 * lib_error.c - database errors as Lua error objects: the tables of the
 * "sluice.error" metatable (sqlstate, message, detail, hint, context, ...)
 * built from a failed PGresult, from a connection lost mid-call, or from
 * the fields a binding gives; their __tostring; sluice.core.new_error.
 *
 * Uses: libpq (PQresultErrorField, PQstatus, PQerrorMessage) and the
 * metatable lib_sluice.c registers; every binding that talks to the server
 * raises through here, so a lost connection reads the same on every path.
 *
 * Caveats: a lost connection always gets a sqlstate (08006 unless the
 * server sent its own), so a script that checks err.sqlstate sees it - a
 * connection sluice closed because its silence bound passed, or because
 * the server did not answer after Ctrl-C (pgconn.h), too; the
 * wording of its detail is shared by every caller, which prefix the
 * message with what they know of the rows in flight.
 */
#include "lib.h"
#include "interrupt.h"
#include "sbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Set field k of the table on top to v; a NULL or empty v is left out
 * (libpq's absent fields are NULL, some are ""). */
void lib_set_field(lua_State *L, const char *k, const char *v)
{
    if (v && *v) {
        lua_pushstring(L, v);
        lua_setfield(L, -2, k);
    }
}

void lib_set_user_where(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, SLUICE_REG_OWNDIR);
    size_t olen = 0;
    const char *own = lua_tolstring(L, -1, &olen);
    lua_Debug ar;
    lua_pushliteral(L, ""); /* no line of the script: as luaL_where says it */
    lua_setfield(L, -3, "where");
    int inside = 0; /* frames of sluice's modules were passed */
    int c_first = 0; /* C functions (a pcall) came first */
    for (int level = 1; lua_getstack(L, level, &ar); level++) {
        if (!lua_getinfo(L, "Sl", &ar))
            break;
        if (ar.currentline <= 0) {
            c_first |= !inside;
            continue;
        }
        if (own && ar.source[0] == '@' && strncmp(ar.source + 1, own, olen) == 0) {
            inside = 1;
            continue;
        }
        /* the script's frame: its line, unless it called the refusing
         * function through a C function (pcall) itself */
        if (c_first && !inside)
            break;
        lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
        lua_setfield(L, -3, "where");
        break;
    }
    lua_pop(L, 1);
}

/* A new error object from the given fields (see lib.h); severity ERROR. */
void lib_push_error(lua_State *L, const char *sqlstate, const char *message,
                    const char *detail, const char *hint)
{
    lua_createtable(L, 0, 6);
    lib_set_field(L, "severity", "ERROR");
    lib_set_field(L, "sqlstate", sqlstate);
    lib_set_field(L, "message", message ? message : "unknown error");
    lib_set_field(L, "detail", detail);
    lib_set_field(L, "hint", hint);
    luaL_getmetatable(L, SLUICE_ERROR_MT);
    lua_setmetatable(L, -2);
}

/* Push libpq's message without its trailing newline. */
void lib_push_trimmed(lua_State *L, const char *msg)
{
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        n--;
    lua_pushlstring(L, msg, n);
}

/* What a lost connection means for the script's data, in the detail:
 * one wording for every path (statements, COPY in and out, files,
 * batches, pipelines).  The message makes no claim: what a lost
 * connection left committed depends on what was in flight, and the
 * callers that know (batch, pipeline, COPY, load) say it in front. */
#define LOST_DETAIL "A server rolls back whatever a connection leaves " \
                    "uncommitted. Only a statement that commits on its " \
                    "own (a COMMIT, or a COPY or statement outside a " \
                    "transaction) may have completed just before the " \
                    "connection was lost."
#define LOST_HINT "connect again and run the transaction again"

/* Seconds as the user wrote them: "30", "2.5". */
static void push_seconds(lua_State *L, int ms)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%g", ms / 1000.0);
    lua_pushstring(L, buf);
}

/* The message, detail and hint of a connection that sluice closed itself
 * (pgconn.h): its silence bound passed, or the server did not answer
 * after Ctrl-C.  Sets them in the table on top; 0 when pg was not closed
 * that way. */
static int set_closed_fields(lua_State *L, PGconn *pg)
{
    int ms, sig;
    int why = pg ? pgconn_closed(pg, &ms, &sig) : PGCONN_OPEN;
    if (why == PGCONN_CLOSED_TIMEOUT) {
        lua_pushliteral(L, "no answer from the server for ");
        push_seconds(L, ms);
        lua_pushliteral(L, " s (timeout = ");
        push_seconds(L, ms);
        lua_pushliteral(L, "); the connection was closed");
        lua_concat(L, 5);
        lua_setfield(L, -2, "message");
        lib_set_field(L, "detail", "The server sent nothing, and took "
                      "nothing of what was sent, for the connection's "
                      "timeout: it or the network between went silent, or "
                      "one statement ran that long without a word. "
                      LOST_DETAIL);
        lib_set_field(L, "hint", "for statements that run longer, raise "
                      "the bound (sluice.connect(target, {timeout = "
                      "seconds}), db:set_timeout(seconds), 0 for none) and "
                      "bound them on the server with statement_timeout; "
                      "else " LOST_HINT);
        return 1;
    }
    if (why == PGCONN_CLOSED_INTERRUPT) {
        lua_pushfstring(L, "interrupted (%s): no answer from the server "
                           "within ", interrupt_name(sig));
        push_seconds(L, ms);
        lua_pushliteral(L, " s of the cancel request; the connection was "
                           "closed");
        lua_concat(L, 3);
        lua_setfield(L, -2, "message");
        lib_set_field(L, "detail", LOST_DETAIL);
        lib_set_field(L, "hint", LOST_HINT);
        return 1;
    }
    return 0;
}

/* Push the error object of a connection lost mid-call, whose only account
 * is libpq's `reason` (its first line is kept: the rest is libpq's guess
 * at the cause, or the same failure seen again) - or, when sluice closed
 * pg itself (a silence bound, Ctrl-C unanswered), what happened then.
 * severity FATAL, sqlstate 08006 (connection_failure): libpq gives none,
 * and a script that checks err.sqlstate must see a lost connection as
 * one. */
static void push_lost(lua_State *L, PGconn *pg, const char *reason)
{
    lua_createtable(L, 0, 5);
    lib_set_field(L, "severity", "FATAL");
    lib_set_field(L, "sqlstate", "08006");
    if (!set_closed_fields(L, pg)) {
        size_t n = reason ? strcspn(reason, "\n") : 0;
        while (n > 0 && reason[n - 1] == ' ')
            n--;
        if (n > 0) {
            lua_pushliteral(L, "connection to the server lost (");
            lua_pushlstring(L, reason, n);
            lua_pushliteral(L, ")");
            lua_concat(L, 3);
        } else {
            lua_pushliteral(L, "connection to the server lost");
        }
        lua_setfield(L, -2, "message");
        lib_set_field(L, "detail", LOST_DETAIL);
        lib_set_field(L, "hint", LOST_HINT);
    }
    luaL_getmetatable(L, SLUICE_ERROR_MT);
    lua_setmetatable(L, -2);
}

/* Set field k of the table on top to v unless it is set already. */
static void set_default(lua_State *L, const char *k, const char *v)
{
    lua_getfield(L, -1, k);
    int set = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (!set)
        lib_set_field(L, k, v);
}

/* Set field "position_lines" of the table on top: the two lines psql
 * prints under an error with a position ("LINE n: <the statement's
 * line>" and a "^" under the position).  libpq builds them itself, from
 * the statement it sent (it keeps its text in the result only when the
 * error has a position), with its own handling of long lines, tabs and
 * multibyte text; they follow the "SEVERITY:  message" line of its
 * default-verbosity message, which is all this takes from it. */
static void set_position_lines(lua_State *L, const PGresult *res)
{
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY);
    const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    if (!sev || !primary)
        return;
    char *full = PQresultVerboseErrorMessage(res, PQERRORS_DEFAULT,
                                             PQSHOW_CONTEXT_NEVER);
    if (!full)
        return;
    size_t ls = strlen(sev), lp = strlen(primary);
    const char *p = full;
    if (strncmp(p, sev, ls) == 0 && strncmp(p + ls, ":  ", 3) == 0 &&
        strncmp(p + ls + 3, primary, lp) == 0 && p[ls + 3 + lp] == '\n' &&
        strncmp(p + ls + 4 + lp, "LINE ", 5) == 0) {
        const char *from = p + ls + 4 + lp;
        const char *nl = strchr(from, '\n');
        const char *end = nl ? strchr(nl + 1, '\n') : NULL;
        if (end && end[-1] == '^') {
            lua_pushlstring(L, from, (size_t)(end - from));
            lua_setfield(L, -2, "position_lines");
        }
    }
    PQfreemem(full);
}

/* Push the error object describing a failed result.  A result without a
 * SQLSTATE on a connection that is gone is libpq's report of the loss:
 * it becomes the lost-connection error (08006).  A server error that
 * ended the session (FATAL, 57P01 when an administrator terminated it)
 * keeps its own fields and gains the lost connection's detail and hint
 * where the server gave none. */
void lib_push_result_error(lua_State *L, const PGresult *res, PGconn *pg)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    int gone = pg && PQstatus(pg) == CONNECTION_BAD;
    if (!(state && *state) && gone) {
        const char *m = PQresultErrorMessage(res);
        push_lost(L, pg, (m && *m) ? m : PQerrorMessage(pg));
        return;
    }
    const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    lua_createtable(L, 0, 12);
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    lib_set_field(L, "severity", sev ? sev : "ERROR");
    lib_set_field(L, "sqlstate", state);
    if (primary) {
        lib_set_field(L, "message", primary);
    } else {
        const char *m = PQresultErrorMessage(res);
        lib_push_trimmed(L, (m && *m) ? m : PQerrorMessage(pg));
        lua_setfield(L, -2, "message");
    }
    lib_set_field(L, "detail",
                  PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL));
    lib_set_field(L, "hint", PQresultErrorField(res, PG_DIAG_MESSAGE_HINT));
    lib_set_field(L, "context", PQresultErrorField(res, PG_DIAG_CONTEXT));
    lib_set_field(L, "schema",
                  PQresultErrorField(res, PG_DIAG_SCHEMA_NAME));
    lib_set_field(L, "table", PQresultErrorField(res, PG_DIAG_TABLE_NAME));
    lib_set_field(L, "column",
                  PQresultErrorField(res, PG_DIAG_COLUMN_NAME));
    lib_set_field(L, "constraint",
                  PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME));
    const char *pos = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
    if (pos) {
        lua_pushinteger(L, atoi(pos));
        lua_setfield(L, -2, "position");
    }
    if (pos || PQresultErrorField(res, PG_DIAG_INTERNAL_POSITION))
        set_position_lines(L, res);
    if (gone || (sev && (strcmp(sev, "FATAL") == 0 ||
                         strcmp(sev, "PANIC") == 0))) {
        set_default(L, "detail", "The connection to the server was lost. "
                                 LOST_DETAIL);
        set_default(L, "hint", LOST_HINT);
    }
    luaL_getmetatable(L, SLUICE_ERROR_MT);
    lua_setmetatable(L, -2);
}

/* Push the error object for a connection that broke mid-call. */
void lib_push_conn_error(lua_State *L, PGconn *pg)
{
    push_lost(L, pg, pg ? PQerrorMessage(pg) : NULL);
}

/* sluice.core.new_error(t): t itself, given the error metatable, so Lua
 * code raises errors that print and test like the server's.  Raises when
 * t is not a table. */
int lib_error_new(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_getmetatable(L, SLUICE_ERROR_MT);
    lua_setmetatable(L, 1);
    return 1;
}

/* Add field key of the error at e to b when it is a string (or a
 * number), and return 1; else add nothing and return 0.  luaL_addvalue
 * takes the value from the top of the stack, where the buffer allows
 * it. */
static int add_field(luaL_Buffer *b, lua_State *L, int e, const char *key)
{
    lua_getfield(L, e, key);
    if (!lua_isstring(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    luaL_addvalue(b);
    return 1;
}

/* Append "\nLABEL:  value" to b when field key of the error at e is a
 * string: psql's lines after the message (no label: the value alone). */
static void add_line(luaL_Buffer *b, lua_State *L, int e, const char *label,
                     const char *key)
{
    lua_getfield(L, e, key);
    size_t len = 0;
    int has = lua_isstring(L, -1) && (lua_tolstring(L, -1, &len), len > 0);
    lua_pop(L, 1);
    if (!has)
        return; /* absent, or empty (a refusal with no line of the script) */
    luaL_addchar(b, '\n');
    if (label) {
        luaL_addstring(b, label);
        luaL_addstring(b, ":  ");
    }
    add_field(b, L, e, key);
}

/* Push the text of the error table at index e, as psql prints it:
 * "SEVERITY:  message" (with "SQLSTATE: " before the message when
 * with_sqlstate, as psql's verbose mode), the statement's line and a "^"
 * under the position, then DETAIL, HINT, CONTEXT, and sluice's WHERE (the
 * script's line, for values refused before they reached the server).
 * Raises only for memory. */
void lib_error_format(lua_State *L, int e, int with_sqlstate)
{
    luaL_Buffer b;
    e = e < 0 ? lua_gettop(L) + e + 1 : e;
    luaL_buffinit(L, &b);
    if (!add_field(&b, L, e, "severity"))
        luaL_addstring(&b, "ERROR");
    luaL_addstring(&b, ":  ");
    if (with_sqlstate && add_field(&b, L, e, "sqlstate"))
        luaL_addstring(&b, ": ");
    if (!add_field(&b, L, e, "message"))
        luaL_addstring(&b, "?");
    add_line(&b, L, e, NULL, "position_lines");
    add_line(&b, L, e, "DETAIL", "detail");
    add_line(&b, L, e, "HINT", "hint");
    add_line(&b, L, e, "CONTEXT", "context");
    add_line(&b, L, e, "WHERE", "where");
    luaL_pushresult(&b);
}

/* __tostring of an error: the way psql prints it in verbose mode (with
 * the SQLSTATE), which a script that catches errors can log as is. */
static int error_tostring(lua_State *L)
{
    lua_settop(L, 1);
    lib_error_format(L, 1, 1);
    return 1;
}

/* The "sluice.error" metatable (lib_sluice.c registers it). */
const luaL_Reg lib_error_meta[] = {
    { "__tostring", error_tostring },
    { NULL, NULL },
};

/* Set number field k of the table at index e. */
static void set_number(lua_State *L, int e, const char *k, lua_Number v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, e, k);
}

int lib_raise_copy_lost(lua_State *L, PGconn *pg, const char *who,
                        int autocommit, const char *rows)
{
    lib_push_conn_error(L, pg);
    int e = lua_gettop(L);
    set_number(L, e, "committed_rows", 0);
    set_number(L, e, "in_doubt_rows",
               autocommit && rows ? strtod(rows, NULL) : 0);
    if (!autocommit)
        lua_pushfstring(L, "%s: the connection was lost, and the open "
                           "transaction with it (nothing of the COPY was "
                           "committed): ", who);
    else if (rows)
        lua_pushfstring(L, "%s: the connection was lost before the server "
                           "answered: its %s rows may or may not have been "
                           "committed (check the table): ", who, rows);
    else
        lua_pushfstring(L, "%s: the connection was lost before the server "
                           "answered: the COPY may or may not have been "
                           "committed (check the table): ", who);
    lua_getfield(L, e, "message");
    lua_concat(L, 2);
    lua_setfield(L, e, "message");
    return lua_error(L);
}

int lib_raise_copy_interrupted(lua_State *L, int sig, const char *who,
                               int autocommit, const char *rows)
{
    lua_createtable(L, 0, 3);
    int e = lua_gettop(L);
    lua_pushfstring(L, "%s: interrupted (%s) after the COPY had %s its %s "
                       "rows", who, interrupt_name(sig),
                    autocommit ? "committed"
                               : "loaded (in the open transaction, not "
                                 "committed)", rows);
    lua_setfield(L, e, "message");
    set_number(L, e, "committed_rows", autocommit ? strtod(rows, NULL) : 0);
    set_number(L, e, "in_doubt_rows", 0);
    luaL_getmetatable(L, SLUICE_ERROR_MT);
    lua_setmetatable(L, e);
    return lua_error(L);
}

int lib_raise_begin_failed(lua_State *L, sl_conn *c, int rc,
                           const PGresult *err)
{
    lib_conn_deliver_notices(L, c, 1);
    if (rc == SL_EFAIL)
        lib_push_result_error(L, err, c->pg);
    else
        lib_push_conn_error(L, c->pg);
    return lua_error(L);
}
