/*
 * main.c - the sluice executable: a LuaJIT interpreter with the sluice
 * library preloaded.
 *
 *   sluice [options] [script.lua | -] [args...]
 *
 * Modelled on LuaJIT's own luajit.c: everything runs inside lua_cpcall of a
 * protected main, errors go through a message handler, Ctrl-C becomes a
 * Lua error (interrupt.c) and the process exits non-zero on any error.  The
 * Lua state is always closed before exit, so every __gc runs: connections
 * close (the server rolls back open transactions) and a --tmpdb server is
 * stopped and removed.
 *
 * An error that ends a script is printed for people: a database error as
 * psql prints it (ERROR, the statement's line with a ^ under the
 * position, DETAIL, HINT, CONTEXT), any other error as its message, then
 * the script's line it came from; the Lua stack only with --traceback or
 * SLUICE_DEBUG.  Exit status: 1 after an error, 2 for a bad option, and a
 * script ended by SIGINT, SIGTERM or SIGHUP ends the process by that same
 * signal once everything is cleaned up (a shell sees 130, 143, 129), so a
 * shell loop around sluice stops at Ctrl-C as it does for other programs.
 *
 * Where the Lua library is found: $SLUICE_LUADIR if set, else <dir of the
 * executable>/lua (a source tree), else <dir>/../share/lua/5.1 (an install).
 */
#define _GNU_SOURCE
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <luajit.h>

#include <editline/readline.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "interrupt.h"
#include "lib.h"
#include <libpq-fe.h>

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "dev"
#endif

int luaopen_sluice_core(lua_State *L);

static const char *progname = "sluice";

typedef struct smain {
    int argc;
    char **argv;
    int status;
} smain;

/* Print the Lua stack under a script's error (--traceback, SLUICE_DEBUG). */
static int show_traceback;
/* Where the sluice library was found: frames there are not "the script's
 * line" of an error. */
static char libdir[PATH_MAX + 64];
/* The signal that ended the script (0: none); re-raised at exit. */
static int exit_signal;

static void print_usage(FILE *f)
{
    fprintf(f,
        "usage: %s [options] [script.lua | -] [args...]\n"
        "\n"
        "Runs a Lua script with the sluice library (LuaJIT) for loading data\n"
        "into PostgreSQL.  With no script, starts an interactive prompt when\n"
        "stdin is a terminal, and reads the script from stdin otherwise.\n"
        "\n"
        "options:\n"
        "  -e CODE       run CODE (may be given several times)\n"
        "  -l NAME       require library NAME before the script\n"
        "  -i            enter the interactive prompt after the script\n"
        "  -             read the script from stdin\n"
        "  --tmpdb       start a private throwaway PostgreSQL, point\n"
        "                DATABASE_URL at it, remove it at exit\n"
        "  --tmpdb=citus:N  the same with a Citus cluster: a coordinator\n"
        "                (DATABASE_URL) and N workers; SLUICE_NODES lists\n"
        "                every node's URI, the coordinator first\n"
        "  --quiet       no live progress lines (sets SLUICE_QUIET=1);\n"
        "                final summaries are still printed\n"
        "  --nodes LIST  connection strings, separated by commas: a load's\n"
        "                workers connect to them in turn (sluice.load's\n"
        "                nodes; one worker per node unless --jobs says)\n"
        "  --shard k/K   a load takes share k of K of its input (chunks\n"
        "                k, k + K, ...), so that K runs, on any machines,\n"
        "                load it once between them (sluice.load's shard)\n"
        "  --jobs N      load with N worker processes: the default of\n"
        "                sluice.load's and sluice.parallel's jobs (sets\n"
        "                SLUICE_JOBS=N)\n"
        "  --traceback   print the Lua stack under an error (also when\n"
        "                SLUICE_DEBUG is set)\n"
        "  --profile     sample the script with LuaJIT's profiler and print\n"
        "                where the time went (functions, lines, compiled or\n"
        "                not) and the traces LuaJIT gave up on, on stderr\n"
        "  -v, --version print the version and exit\n"
        "  -h, --help    print this help and exit\n"
        "  --            stop handling options\n"
        "\n"
        "commands:\n"
        "  repl          the interactive prompt (same as no script on a tty)\n"
        "\n"
        "In scripts: local sluice = require \"sluice\"; local db = sluice.connect()\n"
        "connects to DATABASE_URL, else to what the PG* variables say.\n"
        "\n"
        "Exit status: 0, 1 after an error, 2 for a bad option; a script\n"
        "ended by SIGINT, SIGTERM or SIGHUP ends by that signal (130, 143,\n"
        "129 in a shell).\n",
        progname);
}

/* A bad option: what was wrong, then the usage, on stderr; exit 2. */
static void usage_error(smain *s, const char *what, const char *opt)
{
    fprintf(stderr, "%s: %s %s\n\n", progname, what, opt);
    print_usage(stderr);
    s->status = 2;
}

/* Report an error message (already on the stack) to stderr. */
static void report(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "%s: %s\n", progname, msg ? msg : "(error object)");
    fflush(stderr);
    lua_pop(L, 1);
}

/* Message handler: turn any error value into text plus a traceback. */
static int traceback(lua_State *L)
{
    if (!lua_isstring(L, 1)) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_isstring(L, -1))
            lua_replace(L, 1);
        else
            lua_pushfstring(L, "(error object is a %s value)",
                            luaL_typename(L, 1));
        if (!lua_isstring(L, 1))
            lua_replace(L, 1);
        lua_settop(L, 1);
    }
    luaL_traceback(L, L, lua_tostring(L, 1), 1);
    return 1;
}

/* Call the function below narg arguments under message handler msgh;
 * after an error, a full collection when collect is set. */
static int call_with(lua_State *L, lua_CFunction msgh, int collect,
                     int narg, int nres)
{
    int base = lua_gettop(L) - narg;
    lua_pushcfunction(L, msgh);
    lua_insert(L, base);
    int status = lua_pcall(L, narg, nres, base);
    lua_remove(L, base);
    if (status != 0 && collect)
        lua_gc(L, LUA_GCCOLLECT, 0);
    return status;
}

static int docall(lua_State *L, int narg, int nres)
{
    return call_with(L, traceback, 1, narg, nres);
}

/* Directory part of path (into out); "." when there is none. */
static void dir_of(const char *path, char *out, size_t outlen)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(out, outlen, ".");
    else if (slash == path)
        snprintf(out, outlen, "/");
    else
        snprintf(out, outlen, "%.*s", (int)(slash - path), path);
}

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Prepend dir/?.lua;dir/?/init.lua to package.path. */
static void prepend_path(lua_State *L, const char *dir)
{
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", dir, dir,
                    lua_tostring(L, -1));
    lua_setfield(L, -3, "path");
    lua_pop(L, 2);
}

/* Make require "sluice" work with no set-up: find lua/ from the
 * executable's location, not the working directory. */
static void setup_paths(lua_State *L)
{
    char exe[PATH_MAX], dir[PATH_MAX], cand[PATH_MAX + 64];
    const char *env = getenv("SLUICE_LUADIR");
    if (env && *env) {
        prepend_path(L, env);
        snprintf(libdir, sizeof libdir, "%s", env);
    } else {
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n > 0) {
            exe[n] = '\0';
            dir_of(exe, dir, sizeof dir);
            snprintf(cand, sizeof cand, "%s/lua/sluice/init.lua", dir);
            if (is_file(cand))
                snprintf(cand, sizeof cand, "%s/lua", dir);
            else
                snprintf(cand, sizeof cand, "%s/../share/lua/5.1", dir);
            prepend_path(L, cand);
            snprintf(libdir, sizeof libdir, "%s", cand);
        }
    }
    /* the C core is built in; no sluice/core.so needed */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, luaopen_sluice_core);
    lua_setfield(L, -2, "sluice.core");
    lua_pop(L, 2);
}

/* Global `arg` as luajit sets it: arg[0] the script, arg[1..] its args,
 * negative indices the interpreter and options. */
static void create_arg_table(lua_State *L, char **argv, int argc, int script)
{
    lua_createtable(L, argc - script - 1, script + 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - script);
    }
    lua_setglobal(L, "arg");
}

/* ------------------------------------------- a script's error, for people */

#define REG_TRACEBACK "sluice.main_traceback"
#define REG_WHERE "sluice.main_where"

/* Push "file:line" of the innermost frame that is the script's own code
 * (not C, not the sluice library), or nil. */
static void push_script_line(lua_State *L)
{
    lua_Debug ar;
    size_t ld = strlen(libdir);
    for (int level = 1; lua_getstack(L, level, &ar); level++) {
        if (!lua_getinfo(L, "Sl", &ar) || ar.currentline <= 0)
            continue;
        if (ld && ar.source[0] == '@' &&
            strncmp(ar.source + 1, libdir, ld) == 0 &&
            ar.source[1 + ld] == '/')
            continue;
        lua_pushfstring(L, "%s:%d", ar.short_src, ar.currentline);
        return;
    }
    lua_pushnil(L);
}

/* Message handler of the script path: the error value stays as it is (an
 * error object stays a table, for report_script_error), the stack and the
 * script's line go to the registry.  (The prompt has its own handler.) */
static int script_msgh(lua_State *L)
{
    // stack: err
    luaL_traceback(L, L, NULL, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, REG_TRACEBACK);
    push_script_line(L);
    lua_setfield(L, LUA_REGISTRYINDEX, REG_WHERE);
    lua_settop(L, 1);
    return 1;
}

/* docall() with script_msgh: the error value is left on the stack. */
static int script_call(lua_State *L, int narg, int nres)
{
    return call_with(L, script_msgh, 0, narg, nres);
}

static int is_error_object(lua_State *L, int idx)
{
    if (!lua_istable(L, idx) || !lua_getmetatable(L, idx))
        return 0;
    luaL_getmetatable(L, SLUICE_ERROR_MT);
    int same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same;
}

/* Print the error that ended the script (on top of the stack, popped),
 * for people: a database error as psql prints it (its SQLSTATE too with
 * --traceback), any other error as "sluice: message"; then the stack
 * (--traceback, SLUICE_DEBUG), or else the script's line it came from and
 * how to see the stack.  After an interrupt, or for a script that did not
 * compile, just the message. */
static void report_script_error(lua_State *L, int interrupted)
{
    int err = lua_gettop(L);
    int object = is_error_object(L, err);
    if (object) {
        lib_error_format(L, err, show_traceback);
    } else if (!lua_isstring(L, err) &&
               !(luaL_callmeta(L, err, "__tostring") && lua_isstring(L, -1))) {
        lua_pushfstring(L, "(error object is a %s value)",
                        luaL_typename(L, err));
    } else {
        lua_pushvalue(L, lua_isstring(L, err) ? err : -1);
    }
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "%s%s%s\n", object ? "" : progname,
            object ? "" : ": ", msg);
    /* an error object whose WHERE line named the script's line already */
    if (object)
        lua_getfield(L, err, "where");
    else
        lua_pushnil(L);
    int has_where = lua_isstring(L, -1);
    lua_getfield(L, LUA_REGISTRYINDEX, REG_WHERE);
    const char *where = has_where ? NULL : lua_tostring(L, -1);
    lua_getfield(L, LUA_REGISTRYINDEX, REG_TRACEBACK);
    const char *tb = lua_tostring(L, -1);
    if (!tb) {
        /* nothing ran: the script did not compile, or was not found */
    } else if (show_traceback) {
        fprintf(stderr, "%s\n", tb);
    } else if (!interrupted) {
        /* the line is left out when the message starts with it */
        size_t lw = where ? strlen(where) : 0;
        if (where && !(strncmp(msg, where, lw) == 0 && msg[lw] == ':'))
            fprintf(stderr, "%s: at %s (run with --traceback for the "
                            "stack)\n", progname, where);
        else
            fprintf(stderr, "%s: run with --traceback for the stack\n",
                    progname);
    }
    fflush(stderr);
    lua_settop(L, err - 1);
}

static int run_chunk_with_args(lua_State *L, int status, char **argv,
                               int argc, int first_arg)
{
    if (status != 0)
        return status;
    int n = 0;
    for (int i = first_arg; i < argc; i++, n++)
        lua_pushstring(L, argv[i]);
    return script_call(L, n, 0);
}

static int handle_script(lua_State *L, char **argv, int argc, int script)
{
    const char *fname = argv[script];
    int status;
    if (strcmp(fname, "-") == 0) {
        status = luaL_loadfile(L, NULL);
    } else {
        char dir[PATH_MAX];
        dir_of(fname, dir, sizeof dir);
        prepend_path(L, dir);
        status = luaL_loadfile(L, fname);
    }
    return run_chunk_with_args(L, status, argv, argc, script + 1);
}

/* ------------------------------------------------------------- the REPL */

/* Ctrl-C at the prompt only drops the line being typed: while readline
 * waits, SIGINT goes to this handler instead of interrupt.c's (whose
 * pending interrupt would hit the next command, and whose second press
 * kills the process).  libedit's read() then fails with EINTR and readline
 * returns NULL, which prompt_sigint tells apart from Ctrl-D. */
static volatile sig_atomic_t prompt_sigint;

static void on_prompt_sigint(int sig)
{
    (void)sig;
    prompt_sigint = 1;
}

static char *prompt_line(const char *prompt)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_prompt_sigint; /* no SA_RESTART: read() returns */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    prompt_sigint = 0;
    char *line = readline(prompt);
    sigaction(SIGINT, &old, NULL);
    if (!line && prompt_sigint) {
        /* the next prompt starts on a line of its own, as psql's */
        fputc('\n', stdout);
        fflush(stdout);
    }
    return line;
}

/* The prompt's Lua state, for the completion hook, and whether an SQL
 * statement is being continued (completion then offers SQL names). */
static lua_State *repl_L;
static int repl_in_sql;

/* Push sluice.repl's function `name`; returns 0 (nothing pushed) when
 * the module or the function is missing.  Never raises. */
static int push_repl_fn(lua_State *L, const char *name)
{
    lua_getglobal(L, "require");
    lua_pushstring(L, "sluice.repl");
    if (lua_pcall(L, 1, 1, 0) != 0 || !lua_istable(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    lua_getfield(L, -1, name);
    lua_remove(L, -2);
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    return 1;
}

/* The prompt's message handler: a database error object is kept as it
 * is, for sluice.repl.report_error to print as psql does (no traceback);
 * anything else gets the traceback. */
static int repl_traceback(lua_State *L)
{
    if (lua_istable(L, 1) && lua_getmetatable(L, 1)) {
        luaL_getmetatable(L, SLUICE_ERROR_MT);
        int is_error = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
        if (is_error) {
            lua_settop(L, 1);
            return 1;
        }
    }
    return traceback(L);
}

/* docall() with the prompt's message handler. */
static int repl_docall(lua_State *L, int narg, int nres)
{
    return call_with(L, repl_traceback, 1, narg, nres);
}

/* Report the error of a line (on top, popped): a database error through
 * sluice.repl.report_error (psql's ERROR:, LINE and caret lines), any
 * other as report() does. */
static void repl_report(lua_State *L)
{
    if (lua_istable(L, -1) && push_repl_fn(L, "report_error")) {
        lua_pushvalue(L, -2);
        if (lua_pcall(L, 1, 1, 0) == 0 && lua_toboolean(L, -1)) {
            lua_pop(L, 2);
            return;
        }
        lua_pop(L, 1);
    }
    if (!lua_isstring(L, -1) && luaL_callmeta(L, -1, "__tostring"))
        lua_replace(L, -2);
    report(L);
}

/* The generator rl_completion_matches() calls: the strings of the Lua
 * list at stack index complete_list, one copy (the caller frees it) per
 * call, NULL after the last. */
static int complete_list, complete_i;

static char *complete_next(const char *text, int state)
{
    (void)text;
    if (state == 0)
        complete_i = 0;
    lua_rawgeti(repl_L, complete_list, ++complete_i);
    const char *s = lua_tostring(repl_L, -1);
    char *r = s ? strdup(s) : NULL;
    lua_pop(repl_L, 1);
    return r;
}

/* libedit's Tab hook: sluice.repl.complete(the line up to the cursor,
 * the word there, continuing SQL) lists the candidates; nothing falls
 * back to file names.  Lua errors are caught here: none may unwind
 * through libedit's frames. */
static char **repl_complete(const char *text, int start, int end)
{
    (void)start;
    lua_State *L = repl_L;
    char **matches = NULL;
    rl_attempted_completion_over = 1;
    if (!L || !rl_line_buffer)
        return NULL;
    size_t len = strlen(rl_line_buffer);
    if (end >= 0 && (size_t)end < len)
        len = (size_t)end;
    int top = lua_gettop(L);
    if (push_repl_fn(L, "complete")) {
        lua_pushlstring(L, rl_line_buffer, len);
        lua_pushstring(L, text);
        lua_pushboolean(L, repl_in_sql);
        if (lua_pcall(L, 3, 2, 0) == 0 && lua_istable(L, -2) &&
            lua_objlen(L, -2) > 0) {
            rl_completion_append_character = lua_toboolean(L, -1) ? ' '
                                                                  : '\0';
            complete_list = lua_gettop(L) - 1;
            matches = rl_completion_matches(text, complete_next);
        }
    }
    lua_settop(L, top);
    return matches;
}

static int incomplete(lua_State *L, int status)
{
    if (status == LUA_ERRSYNTAX) {
        size_t lmsg;
        const char *msg = lua_tolstring(L, -1, &lmsg);
        const char *eof = "'<eof>'";
        size_t le = strlen(eof);
        if (lmsg >= le && strcmp(msg + lmsg - le, eof) == 0) {
            lua_pop(L, 1);
            return 1;
        }
    }
    return 0;
}

/* Print the values a line returned, with sluice.repl_print when the
 * library provides one (pretty tables), else tostring. */
static void print_results(lua_State *L, int base)
{
    int n = lua_gettop(L) - base;
    if (n <= 0)
        return;
    lua_getglobal(L, "require");
    lua_pushstring(L, "sluice.repl");
    if (lua_pcall(L, 1, 1, 0) == 0 && lua_istable(L, -1)) {
        lua_getfield(L, -1, "print");
        lua_remove(L, -2);
    } else {
        lua_pop(L, 1);
        lua_getglobal(L, "print");
    }
    lua_insert(L, base + 1);
    if (repl_docall(L, n, 0) != 0)
        repl_report(L);
}

/* After a line failed (its message on top, popped): let the library tidy
 * up - sluice.repl.after_error rolls back db's transaction when the line
 * was interrupted by Ctrl-C, so the prompt goes on with a usable db. */
static void after_error(lua_State *L)
{
    lua_getglobal(L, "require");
    lua_pushstring(L, "sluice.repl");
    if (lua_pcall(L, 1, 1, 0) != 0 || !lua_istable(L, -1)) {
        lua_pop(L, 2);
        return;
    }
    lua_getfield(L, -1, "after_error");
    lua_remove(L, -2);
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 2);
        return;
    }
    lua_insert(L, -2); /* stack: after_error, message */
    if (docall(L, 1, 0) != 0)
        report(L);
}

/* The prompt's history file, ~/.sluice_history, read in; NULL when there
 * is no HOME.  The caller writes it back and frees it. */
static char *open_history(void)
{
    char *hist = NULL;
    const char *home = getenv("HOME");
    if (home && asprintf(&hist, "%s/.sluice_history", home) < 0)
        hist = NULL;
    if (hist)
        read_history(hist);
    return hist;
}

/* The globals db, sluice and help() from sluice.repl.setup, then the
 * greeting; a failing setup is reported and the prompt opens anyway. */
static void repl_setup(lua_State *L)
{
    lua_getglobal(L, "require");
    lua_pushstring(L, "sluice.repl");
    if (docall(L, 1, 1) == 0) {
        lua_getfield(L, -1, "setup");
        lua_remove(L, -2);
        if (docall(L, 0, 0) != 0)
            report(L);
    } else {
        report(L);
    }
    printf("sluice %s (%s) - Lua with PostgreSQL loading; SQL lines run "
           "on db; help() for help, Ctrl-D to quit\n", SLUICE_VERSION,
           LUAJIT_VERSION);
}

/* The kind of the line at index 1, from sluice.repl.line_kind: 's' SQL,
 * 'm' a backslash command, 'l' Lua (also when the library cannot say). */
static int line_kind(lua_State *L)
{
    int kind = 'l';
    if (push_repl_fn(L, "line_kind")) {
        lua_pushvalue(L, 1);
        if (lua_pcall(L, 1, 1, 0) == 0) {
            const char *k = lua_tostring(L, -1);
            if (k && strcmp(k, "sql") == 0)
                kind = 's';
            else if (k && strcmp(k, "meta") == 0)
                kind = 'm';
        }
        lua_pop(L, 1);
    }
    return kind;
}

/* Read the further lines ("   ...> ") of the SQL input at index 1 until
 * sluice.repl.sql_ready says it can run (a first line complete on its
 * own, or a `;` at the end); index 1 then holds the whole input.
 * Returns 0 to run it, -1 when Ctrl-C dropped it, -2 at the end of
 * input (Ctrl-D, which then quits, as in psql). */
static int read_sql(lua_State *L)
{
    for (int first = 1;; first = 0) {
        int ready = 1;
        if (push_repl_fn(L, "sql_ready")) {
            lua_pushvalue(L, 1);
            lua_pushboolean(L, first);
            if (lua_pcall(L, 2, 1, 0) == 0)
                ready = lua_toboolean(L, -1);
            lua_pop(L, 1);
        }
        if (ready)
            return 0;
        repl_in_sql = 1;
        char *more = prompt_line("   ...> ");
        repl_in_sql = 0;
        if (!more)
            return prompt_sigint ? -1 : -2;
        lua_pushfstring(L, "%s\n%s", lua_tostring(L, 1), more);
        free(more);
        lua_replace(L, 1);
    }
}

/* Run the SQL input or backslash command at index 1 with
 * sluice.repl.run, reporting an error as run_line() does.  Returns 1
 * when it was \q. */
static int run_text(lua_State *L, int kind)
{
    int quit = 0;
    if (!push_repl_fn(L, "run"))
        return 0;
    lua_pushstring(L, kind == 's' ? "sql" : "meta");
    lua_pushvalue(L, 1);
    int status = repl_docall(L, 2, 1);
    lib_interrupt_consume(L); /* before the tidying up runs SQL */
    if (status == 0) {
        const char *r = lua_tostring(L, -1);
        quit = r && strcmp(r, "quit") == 0;
        lua_pop(L, 1);
    } else {
        lua_pushvalue(L, -1);
        repl_report(L);
        after_error(L);
    }
    return quit;
}

/* Compile the input at stack index 1: as an expression first, so `1+1`
 * prints 2, then as a statement, reading more lines ("   ...>") while
 * either is merely unfinished; index 1 then holds the whole input.
 * Returns 0 with the chunk on top, -1 when Ctrl-C dropped the unfinished
 * input, else a load status with the message on top. */
static int read_chunk(lua_State *L)
{
    int status;
    for (;;) {
        lua_pushfstring(L, "return %s", lua_tostring(L, 1));
        status = luaL_loadbuffer(L, lua_tostring(L, -1),
                                 lua_objlen(L, -1), "=stdin");
        lua_remove(L, -2);
        if (status == 0)
            break;
        int expr_more = incomplete(L, status); /* pops if so */
        if (!expr_more)
            lua_pop(L, 1);
        status = luaL_loadbuffer(L, lua_tostring(L, 1), lua_objlen(L, 1),
                                 "=stdin");
        if (status == 0)
            break;
        int stmt_more = incomplete(L, status);
        if (!stmt_more && !expr_more)
            break; /* a real syntax error, message on the stack */
        if (!stmt_more)
            lua_pop(L, 1);
        char *more = prompt_line("   ...> ");
        if (!more && prompt_sigint) {
            status = -1; /* the unfinished input is dropped */
            break;
        }
        if (!more) {
            lua_pushliteral(L, "incomplete input");
            break;
        }
        lua_pushfstring(L, "%s\n%s", lua_tostring(L, 1), more);
        free(more);
        lua_replace(L, 1);
    }
    return status;
}

/* Run what read_chunk() returned (status 0: the chunk on top, else the
 * error on top) and print its values, or report the error and let the
 * library tidy up after it. */
static void run_line(lua_State *L, int status)
{
    if (status == 0) {
        lua_remove(L, 1);
        status = repl_docall(L, 0, LUA_MULTRET);
        if (status == 0)
            print_results(L, 0);
    }
    lib_interrupt_consume(L); /* before the tidying up runs SQL */
    if (status != 0) {
        lua_pushvalue(L, -1);
        repl_report(L);
        after_error(L);
    }
}

/* Word breaks for completion: everything but the characters of names
 * and of Lua's `a.b:c`, so the hook sees "db:co" or "public.t" whole. */
static char repl_word_breaks[] = " \t\n\"\\'`@$><=;|&{(,)+-*/%^~[]#";

/* The interactive prompt, until Ctrl-D or \q. */
static void repl(lua_State *L)
{
    char *hist = open_history();
    repl_setup(L);
    repl_L = L;
    rl_attempted_completion_function = repl_complete;
    rl_basic_word_break_characters = repl_word_breaks;
    rl_completer_word_break_characters = repl_word_breaks;
    for (;;) {
        char *line = prompt_line("sluice> ");
        if (!line && prompt_sigint)
            continue;
        if (!line)
            break;
        if (!*line) {
            free(line);
            continue;
        }
        lua_settop(L, 0);
        lua_pushstring(L, line);
        free(line);
        int kind = line_kind(L);
        if (kind != 'l') {
            int st = kind == 's' ? read_sql(L) : 0;
            if (st == -1)
                continue;
            if (st == -2)
                break;
            add_history(lua_tostring(L, 1));
            if (run_text(L, kind))
                break;
            continue;
        }
        int status = read_chunk(L);
        if (status == -1)
            continue;
        add_history(lua_tostring(L, 1));
        run_line(L, status);
    }
    repl_L = NULL;
    if (hist) {
        write_history(hist);
        free(hist);
    }
    putchar('\n');
}

/* Start a throwaway server (or a Citus cluster of citus_workers workers,
 * when >= 0) through the library and export DATABASE_URL (and, for a
 * cluster, SLUICE_NODES: every node's URI, space-separated, the
 * coordinator first).  The tmpdb object is kept in the registry, so it
 * lives until lua_close. */
static int start_tmpdb(lua_State *L, int citus_workers)
{
    lua_getglobal(L, "require");
    lua_pushstring(L, "sluice");
    if (script_call(L, 1, 1) != 0)
        return 1;
    lua_getfield(L, -1, "tmpdb");
    lua_remove(L, -2);
    int nargs = 0;
    if (citus_workers >= 0) {
        lua_createtable(L, 0, 1);
        lua_createtable(L, 0, 1);
        lua_pushinteger(L, citus_workers);
        lua_setfield(L, -2, "workers");
        lua_setfield(L, -2, "citus");
        nargs = 1;
    }
    if (script_call(L, nargs, 1) != 0)
        return 1;
    if (citus_workers >= 0) {
        static const char nodes[] =
            "local t = ...; local u = { t:uri() }\n"
            "for _, w in ipairs(t.workers) do u[#u + 1] = w:uri() end\n"
            "return table.concat(u, ' ')";
        if (luaL_loadbuffer(L, nodes, sizeof nodes - 1, "=(--tmpdb=citus)") != 0)
            return 1;
        lua_pushvalue(L, -2);
        if (script_call(L, 1, 1) != 0)
            return 1;
        setenv("SLUICE_NODES", lua_tostring(L, -1), 1);
        lua_pop(L, 1);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, "sluice.main_tmpdb");
    lua_getfield(L, -1, "uri");
    lua_pushvalue(L, -2);
    if (script_call(L, 1, 1) != 0)
        return 1;
    setenv("DATABASE_URL", lua_tostring(L, -1), 1);
    lua_pop(L, 2);
    return 0;
}

/* What the first pass over the options found. */
typedef struct main_opts {
    int script;      /* argv index of the script (argc: none) */
    int want_repl;   /* the "repl" command */
    int interactive; /* -i */
    int use_tmpdb;   /* --tmpdb */
    int citus_workers; /* --tmpdb=citus:N: N, else -1 */
    int profile;     /* --profile */
} main_opts;

/* First pass over the options: the ones that change the environment, or
 * end the run (help, version, a bad option); -e and -l are only checked
 * here and run by run_preloads(), after --tmpdb has set DATABASE_URL.
 * Returns 1 to go on, 0 when the run is over (s->status says how). */
static int scan_options(smain *s, main_opts *o)
{
    char **argv = s->argv;
    int argc = s->argc, i;
    memset(o, 0, sizeof *o);
    o->citus_workers = -1;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0 || a[0] != '-' || strcmp(a, "-") == 0)
            break;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            print_usage(stdout);
            return 0;
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--version") == 0) {
            printf("sluice %s (%s, libpq %d)\n", SLUICE_VERSION,
                   LUAJIT_VERSION, PQlibVersion());
            return 0;
        } else if (strcmp(a, "--tmpdb") == 0) {
            o->use_tmpdb = 1;
        } else if (strncmp(a, "--tmpdb=citus:", 14) == 0) {
            char *end;
            long n = strtol(a + 14, &end, 10);
            if (a[14] == '\0' || *end != '\0' || n < 0 || n > 16) {
                usage_error(s, "the number of Citus workers must be 0 to 16 in", a);
                return 0;
            }
            o->use_tmpdb = 1;
            o->citus_workers = (int)n;
        } else if (strcmp(a, "--quiet") == 0) {
            /* read by sluice.progress; children inherit it too */
            setenv("SLUICE_QUIET", "1", 1);
        } else if (strcmp(a, "--jobs") == 0 || strncmp(a, "--jobs=", 7) == 0) {
            const char *v = a[6] == '=' ? a + 7 : NULL;
            if (!v) {
                if (++i >= argc) {
                    usage_error(s, "a number is missing after", a);
                    return 0;
                }
                v = argv[i];
            }
            char *end;
            long n = strtol(v, &end, 10);
            if (*v == '\0' || *end != '\0' || n < 1 || n > 256) {
                usage_error(s, "--jobs takes a number from 1 to 256, got", v);
                return 0;
            }
            /* read by sluice.parallel; workers ignore it */
            setenv("SLUICE_JOBS", v, 1);
        } else if (strcmp(a, "--nodes") == 0 || strncmp(a, "--nodes=", 8) == 0) {
            const char *v = a[7] == '=' ? a + 8 : NULL;
            if (!v) {
                if (++i >= argc) {
                    usage_error(s, "a list of connection strings is missing after", a);
                    return 0;
                }
                v = argv[i];
            }
            if (*v == '\0') {
                usage_error(s, "--nodes takes connection strings separated by commas, got", "\"\"");
                return 0;
            }
            /* read by sluice.load: its workers' nodes */
            setenv("SLUICE_LOAD_NODES", v, 1);
        } else if (strcmp(a, "--shard") == 0 || strncmp(a, "--shard=", 8) == 0) {
            const char *v = a[7] == '=' ? a + 8 : NULL;
            if (!v) {
                if (++i >= argc) {
                    usage_error(s, "k/K is missing after", a);
                    return 0;
                }
                v = argv[i];
            }
            long k = 0, K = 0;
            char tail = 0;
            if (sscanf(v, "%ld/%ld%c", &k, &K, &tail) != 2 || K < 1 || k < 1 || k > K ||
                K > 100000) {
                usage_error(s, "--shard takes k/K (this run's share k of K, 1 <= k <= K), got", v);
                return 0;
            }
            /* read by sluice.load: the share of the input it takes */
            setenv("SLUICE_SHARD", v, 1);
        } else if (strcmp(a, "-i") == 0) {
            o->interactive = 1;
        } else if (strcmp(a, "--traceback") == 0) {
            show_traceback = 1;
        } else if (strcmp(a, "--profile") == 0) {
            o->profile = 1;
        } else if (strcmp(a, "-e") == 0 || strcmp(a, "-l") == 0) {
            if (++i >= argc) {
                usage_error(s, "an argument is missing after", a);
                return 0;
            }
        } else {
            usage_error(s, "unknown option", a);
            return 0;
        }
    }
    o->script = i;
    if (o->script < argc && strcmp(argv[o->script], "--") == 0)
        o->script++;
    if (o->script < argc && strcmp(argv[o->script], "repl") == 0 &&
        !is_file(argv[o->script])) {
        o->want_repl = 1;
    }
    return 1;
}

/* Second pass: -e and -l in the order given, before the script.  Returns
 * nonzero with the error message on the stack when one fails; *ran is set
 * when code ran (then no prompt opens by default). */
static int run_preloads(lua_State *L, char **argv, int script, int *ran)
{
    for (int i = 1; i < script; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-e") == 0) {
            const char *code = argv[++i];
            if (luaL_loadbuffer(L, code, strlen(code), "=(command line)") ||
                script_call(L, 0, 0))
                return 1;
            *ran = 1;
        } else if (strcmp(a, "-l") == 0) {
            lua_getglobal(L, "require");
            lua_pushstring(L, argv[++i]);
            if (script_call(L, 1, 1))
                return 1;
            lua_setglobal(L, argv[i]);
        }
    }
    return 0;
}

/* --profile: sluice.profile's start() (before the script) or stop()
 * (after it, also after an error: the report goes to stderr).  Leaves the
 * stack as it was; nonzero with the error on top when it fails. */
static int profile_call(lua_State *L, const char *fn)
{
    lua_getglobal(L, "require");
    lua_pushliteral(L, "sluice.profile");
    if (lua_pcall(L, 1, 1, 0))
        return 1;
    lua_getfield(L, -1, fn);
    lua_remove(L, -2);
    return lua_pcall(L, 0, 0, 0);
}

/* The protected main, run by lua_cpcall with the smain in argument 1:
 * options, --tmpdb, -e/-l, then the script, stdin or the prompt.  Sets
 * s->status (0, 1 after a reported error, 2 for a bad option). */
static int pmain(lua_State *L)
{
    smain *s = lua_touserdata(L, 1);
    char **argv = s->argv;
    int argc = s->argc;
    int ran = 0;
    main_opts o;

    lua_settop(L, 0);
    lua_gc(L, LUA_GCSTOP, 0);
    luaL_openlibs(L);
    lua_gc(L, LUA_GCRESTART, -1);
    setup_paths(L);
    lib_interrupt_install(L);

    if (!scan_options(s, &o))
        return 0;
    create_arg_table(L, argv, argc, o.script < argc ? o.script : argc - 1);
    if (o.use_tmpdb && start_tmpdb(L, o.citus_workers) != 0)
        goto fail;
    if (o.profile && profile_call(L, "start"))
        goto fail;
    if (run_preloads(L, argv, o.script, &ran))
        goto fail;

    if (o.want_repl) {
        repl(L);
        return 0;
    }
    if (o.script < argc) {
        if (handle_script(L, argv, argc, o.script))
            goto fail;
        ran = 1;
    }
    if (o.interactive || (!ran && isatty(0))) {
        repl(L);
    } else if (!ran) {
        if (luaL_loadfile(L, NULL) || script_call(L, 0, 0))
            goto fail;
    }
    if (o.profile && profile_call(L, "stop"))
        goto fail;
    return 0;

fail:
    if (o.profile && profile_call(L, "stop"))
        lua_pop(L, 1); /* the script's error is the one to report */
    /* an interrupt ended the script: the one pending, or the last taken */
    exit_signal = interrupt_pending();
    if (!exit_signal)
        exit_signal = interrupt_last();
    report_script_error(L, exit_signal != 0);
    s->status = exit_signal ? 128 + exit_signal : 1;
    return 0;
}

/* At exit, after a script ended by a signal: end by that signal, as a
 * program without a handler would, now that the cleanup is done (lua_close
 * and the tmpdb's handler ran).  A shell then sees 128 + the signal and,
 * for Ctrl-C, stops the loop or script that ran sluice.  Registered before
 * check_stdout, so it runs after it. */
static void end_by_signal(void)
{
    if (!exit_signal)
        return;
    fflush(NULL);
    signal(exit_signal, SIG_DFL);
    raise(exit_signal);
}

/* At exit: output that print() or io.write() could not write (a full
 * disk, an I/O error) makes the exit status 1, with a message, instead of
 * a quiet 0 with the output cut short (as coreutils' close_stdout does).
 * Registered first, so it runs last: after lua_close and after tmpdb's
 * handler has stopped its server; it covers os.exit() too. */
static void check_stdout(void)
{
    errno = 0;
    int failed = fflush(stdout) != 0;
    int err = errno;
    if (!failed && !ferror(stdout))
        return;
    if (failed && err)
        fprintf(stderr, "%s: cannot write to standard output: %s\n",
                progname, strerror(err));
    else
        fprintf(stderr, "%s: cannot write to standard output\n", progname);
    _exit(1);
}

int main(int argc, char **argv)
{
    smain s = { argc, argv, 0 };
    if (argv[0] && argv[0][0]) {
        const char *slash = strrchr(argv[0], '/');
        progname = slash ? slash + 1 : argv[0];
    }
    atexit(end_by_signal);
    atexit(check_stdout);
    const char *debug = getenv("SLUICE_DEBUG");
    if (debug && *debug && strcmp(debug, "0") != 0)
        show_traceback = 1;
    lua_State *L = luaL_newstate();
    if (!L) {
        fprintf(stderr, "%s: cannot create the Lua state: out of memory\n",
                progname);
        return 1;
    }
    int status = lua_cpcall(L, pmain, &s);
    if (status != 0) {
        report(L);
        s.status = 1;
    }
    lua_close(L); /* runs every __gc: connections, the tmpdb */
    return s.status; /* then check_stdout(), end_by_signal() */
}
