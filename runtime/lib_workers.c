/*
 * lib_workers.c - Lua binding of worker processes (workers.h).
 *
 *   local pool, k = core.workers_fork(n)
 *     parent: pool (a "sluice.workers" userdata), 0
 *     child k: nil, k - its inherited connections are disowned first
 *              (lib_conn_disown_all), stdout/stderr buffers were flushed
 *              by the caller before the fork
 *   pool:poll(timeout_s) -> "message", k, type, payload
 *                         | "exit", k, code (or -1), signal name (or nil)
 *                         | "timeout" | "interrupted" | "none"
 *   pool:send(k, type, payload) -> true | false (the worker is gone)
 *   pool:signal("INT" | "TERM" | "KILL"), pool:running(), pool:pid(k),
 *   pool:stop(grace_s) -> the number killed, pool:close()
 *   core.worker_send(type, payload), core.worker_recv() -> type, payload
 *     (nil at the parent's end; raises "interrupted" on Ctrl-C),
 *   core.worker_exit(code): close this process's own connections, flush
 *     stdio, _exit(code).
 * A pool's __gc stops the workers still running (SIGTERM, then SIGKILL).
 */
#include "lib.h"
#include "interrupt.h"
#include "workers.h"
#include "csvcut.h"
#include "csvread.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int child_fd = -1;

typedef struct sl_workers {
    workers w;
    int live;
} sl_workers;

static sl_workers *check_pool(lua_State *L)
{
    sl_workers *p = luaL_checkudata(L, 1, SLUICE_WORKERS_MT);
    if (!p->live)
        luaL_error(L, "the workers were closed");
    return p;
}

int lib_workers_fork(lua_State *L)
{
    int n = (int)luaL_checkinteger(L, 1);
    if (child_fd >= 0)
        return luaL_error(L, "a worker cannot start workers of its own");
    sl_workers *p = lua_newuserdata(L, sizeof *p);
    memset(p, 0, sizeof *p);
    luaL_getmetatable(L, SLUICE_WORKERS_MT);
    lua_setmetatable(L, -2);
    char err[256];
    int fd = -1;
    int k = workers_fork(&p->w, n, &fd, err, sizeof err);
    if (k < 0) {
        workers_release(&p->w);
        return luaL_error(L, "%s", err);
    }
    if (k > 0) {
        child_fd = fd;
        lib_conn_disown_all();
        lua_pushnil(L);
        lua_pushinteger(L, k);
        return 2;
    }
    p->live = 1;
    lua_pushinteger(L, 0);
    return 2;
}

static const char *sig_name(int sig)
{
    switch (sig) {
    case SIGKILL: return "SIGKILL";
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGSEGV: return "SIGSEGV";
    case SIGABRT: return "SIGABRT";
    case SIGBUS: return "SIGBUS";
    case SIGHUP: return "SIGHUP";
    case SIGPIPE: return "SIGPIPE";
    default: return NULL;
    }
}

static int pool_poll(lua_State *L)
{
    sl_workers *p = check_pool(L);
    double t = luaL_optnumber(L, 2, -1);
    workers_event ev;
    char err[256];
    int r = workers_poll(&p->w, t < 0 ? -1 : (int)(t * 1000), &ev, err,
                         sizeof err);
    switch (r) {
    case WORKERS_MESSAGE:
        lua_pushliteral(L, "message");
        lua_pushinteger(L, ev.index);
        lua_pushinteger(L, ev.type);
        lua_pushlstring(L, ev.data, ev.len);
        return 4;
    case WORKERS_EXIT:
        lua_pushliteral(L, "exit");
        lua_pushinteger(L, ev.index);
        lua_pushinteger(L, ev.exit_code);
        if (ev.signal) {
            const char *s = sig_name(ev.signal);
            if (s)
                lua_pushstring(L, s);
            else
                lua_pushfstring(L, "signal %d", ev.signal);
        } else {
            lua_pushnil(L);
        }
        return 4;
    case WORKERS_TIMEOUT:
        lua_pushliteral(L, "timeout");
        return 1;
    case WORKERS_INTERRUPTED:
        lua_pushliteral(L, "interrupted");
        return 1;
    case WORKERS_NONE:
        lua_pushliteral(L, "none");
        return 1;
    default:
        return luaL_error(L, "workers: %s", err);
    }
}

static int pool_send(lua_State *L)
{
    sl_workers *p = check_pool(L);
    int k = (int)luaL_checkinteger(L, 2);
    int type = (int)luaL_checkinteger(L, 3);
    size_t n;
    const char *s = luaL_optlstring(L, 4, "", &n);
    lua_pushboolean(L, workers_send(&p->w, k, type, s, n) == 0);
    return 1;
}

static int pool_signal(lua_State *L)
{
    sl_workers *p = check_pool(L);
    const char *s = luaL_checkstring(L, 2);
    int sig = strcmp(s, "INT") == 0 ? SIGINT : strcmp(s, "TERM") == 0
              ? SIGTERM : strcmp(s, "KILL") == 0 ? SIGKILL : 0;
    luaL_argcheck(L, sig != 0, 2, "\"INT\", \"TERM\" or \"KILL\"");
    workers_signal(&p->w, sig);
    return 0;
}

static int pool_running(lua_State *L)
{
    sl_workers *p = check_pool(L);
    lua_pushinteger(L, workers_running(&p->w));
    return 1;
}

static int pool_pid(lua_State *L)
{
    sl_workers *p = check_pool(L);
    int k = (int)luaL_checkinteger(L, 2);
    luaL_argcheck(L, k >= 1 && k <= p->w.n, 2, "no such worker");
    lua_pushinteger(L, p->w.c[k - 1].pid);
    return 1;
}

static int pool_stop(lua_State *L)
{
    sl_workers *p = check_pool(L);
    double t = luaL_optnumber(L, 2, 10);
    lua_pushinteger(L, workers_stop(&p->w, (int)(t * 1000)));
    return 1;
}

static int pool_gc(lua_State *L)
{
    sl_workers *p = luaL_checkudata(L, 1, SLUICE_WORKERS_MT);
    workers_release(&p->w);
    p->live = 0;
    return 0;
}

int lib_worker_send(lua_State *L)
{
    int type = (int)luaL_checkinteger(L, 1);
    size_t n;
    const char *s = luaL_optlstring(L, 2, "", &n);
    if (child_fd < 0)
        return luaL_error(L, "not a worker process");
    lua_pushboolean(L, workers_child_send(child_fd, type, s, n) == 0);
    return 1;
}

int lib_worker_recv(lua_State *L)
{
    if (child_fd < 0)
        return luaL_error(L, "not a worker process");
    for (;;) {
        int type;
        char *data;
        size_t len;
        int r = workers_child_recv(child_fd, &type, &data, &len);
        if (r == 1) {
            lua_pushinteger(L, type);
            lua_pushlstring(L, data, len);
            free(data);
            return 2;
        }
        if (r == 0)
            return 0;
        if (errno == EINTR) {
            if (interrupt_pending() && !interrupt_held()) {
                int sig = lib_interrupt_consume(L);
                return luaL_error(L, "interrupted (%s)", interrupt_name(sig));
            }
            continue;
        }
        return luaL_error(L, "worker: the channel to the parent failed: %s",
                          strerror(errno));
    }
}

int lib_worker_exit(lua_State *L)
{
    int code = (int)luaL_optinteger(L, 1, 0);
    lib_conn_close_own();
    fflush(NULL);
    _exit(code);
    return 0;
}

const luaL_Reg lib_workers_meta[] = {
    { "__gc", pool_gc },
    { NULL, NULL },
};

const luaL_Reg lib_workers_methods[] = {
    { "poll", pool_poll },
    { "send", pool_send },
    { "signal", pool_signal },
    { "running", pool_running },
    { "pid", pool_pid },
    { "stop", pool_stop },
    { "close", pool_gc },
    { NULL, NULL },
};

/* ------------------------------------------------ CSV chunks (csvcut.h) */

/* A CSV input cut into record-aligned chunks: the decompressed bytes
 * (csvread's raw mode) and the scan.  buf[pos .. len) is not handed out
 * yet; buf[pos .. scanned) has been scanned, and cand is the last place a
 * chunk may end (cand_lines, cand_records: the counts there). */
typedef struct sl_cutter {
    csvread r;
    csvcut c;
    char *buf;
    size_t len, cap, pos, scanned, cand;
    long long consumed; /* input offset of buf[0] */
    long long lines_at_pos, records_at_pos, cand_lines, cand_records;
    int eof, opened;
} sl_cutter;

#define SLUICE_CUTTER_MT "sluice.csvcutter"

static sl_cutter *check_cutter(lua_State *L)
{
    sl_cutter *u = luaL_checkudata(L, 1, SLUICE_CUTTER_MT);
    if (!u->opened)
        luaL_error(L, "the CSV cutter is closed");
    return u;
}

static int cutter_gc(lua_State *L)
{
    sl_cutter *u = luaL_checkudata(L, 1, SLUICE_CUTTER_MT);
    csvread_release(&u->r);
    free(u->buf);
    u->buf = NULL;
    u->opened = 0;
    return 0;
}

/* Read one more block into buf (dropping what was handed out).  0, or 1
 * at the end of the input; raises on an error. */
static int cutter_fill(lua_State *L, sl_cutter *u)
{
    const unsigned char *p;
    size_t n;
    int r = csvread_raw(&u->r, &p, &n);
    if (r < 0)
        return luaL_error(L, "%s", u->r.err);
    if (r == 0) {
        u->eof = 1;
        return 1;
    }
    if (u->pos > 0) {
        u->consumed += (long long)u->pos;
        memmove(u->buf, u->buf + u->pos, u->len - u->pos);
        u->len -= u->pos;
        u->scanned -= u->pos;
        u->cand = u->cand >= u->pos ? u->cand - u->pos : 0;
        u->pos = 0;
    }
    if (u->cap - u->len < n) {
        size_t cap = u->cap ? u->cap : 1 << 20;
        while (cap - u->len < n)
            cap *= 2;
        char *b = realloc(u->buf, cap);
        if (!b)
            return luaL_error(L, "out of memory");
        u->buf = b;
        u->cap = cap;
    }
    memcpy(u->buf + u->len, p, n);
    u->len += n;
    return 0;
}

/* Scan buf[scanned .. end); stop at the first record end when `first`. */
static void cutter_scan(sl_cutter *u, size_t end, int first)
{
    long long l = 0, rc = 0;
    size_t k = csvcut_scan(&u->c, (const unsigned char *)u->buf + u->scanned,
                           end - u->scanned, first ? 1 : 0, &l, &rc);
    if (k) {
        u->cand = u->scanned + k;
        u->cand_lines = l;
        u->cand_records = rc;
        if (first) {
            u->scanned += k;
            return;
        }
    }
    u->scanned = end;
}

/* core.csv_cutter(path, delimiter, quote, skip) -> cutter */
static int csv_cutter_new(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    const char *d = luaL_checkstring(L, 2), *q = luaL_checkstring(L, 3);
    long long skip = (long long)luaL_optnumber(L, 4, 0);
    sl_cutter *u = lua_newuserdata(L, sizeof *u);
    memset(u, 0, sizeof *u);
    luaL_getmetatable(L, SLUICE_CUTTER_MT);
    lua_setmetatable(L, -2);
    csvread_opts o;
    memset(&o, 0, sizeof o);
    o.raw = 1;
    if (csvread_open(&u->r, path, &o) < 0) {
        lua_pushstring(L, u->r.err);
        csvread_release(&u->r);
        return lua_error(L);
    }
    u->opened = 1;
    csvcut_init(&u->c, (unsigned char)d[0], (unsigned char)q[0], skip);
    /* the skipped lines are nobody's chunk */
    while (u->c.skip_left > 0) {
        if (u->scanned == u->len && cutter_fill(L, u))
            break;
        long long l = 0, rc = 0;
        size_t k = csvcut_scan(&u->c, (const unsigned char *)u->buf + u->scanned,
                               u->len - u->scanned, 0, &l, &rc);
        if (u->c.skip_left == 0) {
            u->scanned += k;
            u->pos = u->cand = u->scanned;
            u->lines_at_pos = l;
            u->records_at_pos = rc;
        } else {
            u->scanned = u->len;
        }
    }
    return 1;
}

/* cutter:next(max_bytes [, records [, no_bytes]]) -> bytes, first_line,
 * records_before, records, offset, length | nil at the end.  With
 * records = 1: the next record alone (the header).  A chunk ends after a
 * record's line end (or at the end of the input), after about max_bytes.
 * offset is the chunk's place in the decompressed input (after a BOM);
 * with no_bytes, bytes is false (the caller reads the file itself). */
static int cutter_next(lua_State *L)
{
    sl_cutter *u = check_cutter(L);
    size_t max = (size_t)luaL_checknumber(L, 2);
    int one = (int)luaL_optinteger(L, 3, 0) == 1;
    int no_bytes = lua_toboolean(L, 4);
    if (max < 1)
        max = 1;
    size_t start = u->pos;
    u->cand = start;
    for (;;) {
        while (u->scanned < u->len) {
            size_t target = u->pos + max;
            if (!one && u->scanned < target) {
                cutter_scan(u, target < u->len ? target : u->len, 0);
            } else {
                cutter_scan(u, u->len, 1);
            }
            if (u->cand > u->pos &&
                (one ? u->c.in_record == 0 && u->cand == u->scanned
                     : u->scanned >= target))
                goto emit;
        }
        if (u->eof || cutter_fill(L, u)) {
            if (u->cand > u->pos && u->cand == u->len)
                goto emit;
            if (u->len == u->pos)
                return 0;
            /* the rest, with no line end at its end (or a quote open:
             * the worker's reader says so) */
            u->cand = u->len;
            u->cand_lines = u->c.lines;
            u->cand_records = u->c.records + (u->c.in_record ? 1 : 0);
            goto emit;
        }
    }
emit:
    if (no_bytes)
        lua_pushboolean(L, 0);
    else
        lua_pushlstring(L, u->buf + u->pos, u->cand - u->pos);
    lua_pushnumber(L, (lua_Number)(u->lines_at_pos + 1));
    lua_pushnumber(L, (lua_Number)u->records_at_pos);
    lua_pushnumber(L, (lua_Number)(u->cand_records - u->records_at_pos));
    lua_pushnumber(L, (lua_Number)(u->consumed + (long long)u->pos));
    lua_pushnumber(L, (lua_Number)(u->cand - u->pos));
    /* the scan stays where it is: no cut lies between cand and scanned */
    u->pos = u->cand;
    u->lines_at_pos = u->cand_lines;
    u->records_at_pos = u->cand_records;
    return 6;
}

/* cutter.bytes_read: bytes read from the file (compressed for gzip). */
static int cutter_bytes_read(lua_State *L)
{
    sl_cutter *u = luaL_checkudata(L, 1, SLUICE_CUTTER_MT);
    lua_pushnumber(L, (lua_Number)u->r.in_bytes);
    return 1;
}

static const luaL_Reg cutter_methods[] = {
    { "next", cutter_next },
    { "bytes_read", cutter_bytes_read },
    { "close", cutter_gc },
    { NULL, NULL },
};

int lib_csv_cutter(lua_State *L)
{
    if (luaL_newmetatable(L, SLUICE_CUTTER_MT)) {
        lua_pushcfunction(L, cutter_gc);
        lua_setfield(L, -2, "__gc");
        lua_newtable(L);
        luaL_register(L, NULL, cutter_methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    return csv_cutter_new(L);
}

/* core.worker_chunk_file(a [, b]) -> path: a .. b written to this
 * process's scratch file (unlinked, reused), as a path a reader can open
 * ("/proc/self/fd/N": a regular file). */
static int scratch_fd = -1;

int lib_worker_chunk_file(lua_State *L)
{
    size_t na, nb = 0;
    const char *a = luaL_checklstring(L, 1, &na);
    const char *b = luaL_optlstring(L, 2, "", &nb);
    if (scratch_fd < 0) {
        const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm"
                          : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        char path[4096];
        snprintf(path, sizeof path, "%s/sluice-chunk-XXXXXX", dir);
        int fd = mkstemp(path);
        if (fd < 0)
            return luaL_error(L, "cannot make a scratch file in %s: %s", dir,
                              strerror(errno));
        unlink(path);
        scratch_fd = fd;
    }
    if (ftruncate(scratch_fd, 0) < 0 ||
        pwrite(scratch_fd, a, na, 0) != (ssize_t)na ||
        (nb && pwrite(scratch_fd, b, nb, (off_t)na) != (ssize_t)nb))
        return luaL_error(L, "cannot write the scratch file: %s",
                          strerror(errno));
    lua_pushfstring(L, "/proc/self/fd/%d", scratch_fd);
    return 1;
}
