/*
 * tmpdb.c - a private, throwaway PostgreSQL server owned by this process.
 *
 * How and why:
 *
 * - The postmaster is fork()ed and exec()ed directly (no pg_ctl) so that it
 *   is our child: we can waitpid() it, notice at once when it dies during
 *   startup, and give it PR_SET_PDEATHSIG so the kernel sends it SIGQUIT
 *   (immediate shutdown) when we die, even by SIGKILL.  PDEATHSIG is set in
 *   the child after setuid(), because credential changes clear it, and is
 *   followed by a getppid() check because we may already have died before
 *   prctl() ran.  Caveat: PDEATHSIG fires when the *thread* that forked the
 *   server exits, not the process, so start servers from a long-lived thread.
 *
 * - The server listens only on a unix socket inside the temporary directory
 *   (listen_addresses empty), so the fixed port 5432 never collides with
 *   anything and nobody else can reach it.  The socket path must fit in
 *   sun_path (107 bytes), which limits how long the parent directory may be;
 *   that is checked up front because postgres' own complaint is obscure.
 *
 * - The server is put in its own process group.  sluice turns Ctrl-C into a
 *   cancelled query plus a Lua error so cleanup (ROLLBACK) can still run;
 *   if the terminal's SIGINT also reached the postmaster it would begin a
 *   fast shutdown underneath that cleanup.
 *
 * - initdb and postgres refuse to run as root, so as root the directory is
 *   chown()ed to the `postgres` user and the children drop to it.  The
 *   postgres user must be able to reach the directory: a parent_dir/TMPDIR
 *   under /root will make initdb fail with "Permission denied".
 *
 * - Between fork() and exec() the child only calls async-signal-safe
 *   functions (the host may have threads), so everything is computed
 *   beforehand: paths, argv, the supplementary group list, and the binaries
 *   are resolved in the parent (including the $PATH fallback, instead of
 *   execvp, which may allocate).  The child closes every inherited fd above
 *   2 so the long-lived server does not keep the host's pipes and sockets
 *   open, and resets signal mask and ignored signals, which survive exec.
 *
 * - A process-wide registry plus an atexit() handler stop what is still
 *   running when the process exit()s.  Entries remember the pid of the
 *   process that started them, so a forked child that exits (it inherits
 *   the registry and the atexit handler) does not stop its parent's server.
 *
 * - A process that dies without running atexit handlers (SIGKILL, an
 *   unhandled signal, _exit) leaves its directory behind (PDEATHSIG stops
 *   the server).  Each directory therefore names its owner in a file
 *   `owner` (pid and start time from /proc/<pid>/stat, so a reused pid is
 *   not taken for the owner), and every start first sweeps the parent
 *   directory (tmpdb_sweep): a directory whose owner is gone is removed,
 *   after stopping a postmaster still running in it (found by
 *   data/postmaster.pid and confirmed by its working directory).  A
 *   directory without an owner file (a start under way) is left alone.
 *
 * Caveats:  If SIGCHLD is ignored, or the host reaps all
 * children itself, exit statuses are lost; that is reported or treated as
 * "the process is gone".
 */
#define _GNU_SOURCE

#include "tmpdb.h"
#include "pgbin.h"
#include "spawn.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <libpq-fe.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TMPDB_PORT "5432"
#define TMPDB_PREFIX "sluice-tmpdb-"
#define TMPDB_DEFAULT_TIMEOUT_MS 30000
#define TMPDB_REGISTRY_SLOTS 16
#define TMPDB_LOG_TAIL_LINES 15
#define TMPDB_MAX_GROUPS 64
#define ERR_PREFIX "could not start a temporary PostgreSQL: "
#define BINDIR_HINT PGBIN_HINT

/* ------------------------------------------------------------------ */
/* small helpers                                                       */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    int n = snprintf(err, errlen, "%s", ERR_PREFIX);
    if (n < 0 || (size_t)n >= errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

static int is_safe_path_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '/' || c == '_' || c == '.' ||
           c == '-';
}

static int path_is_plain(const char *s)
{
    for (; *s; s++)
        if (!is_safe_path_char((unsigned char)*s))
            return 0;
    return 1;
}

/* Appends to buf at *pos; returns -1 once it no longer fits so callers can
 * check once at the end instead of after every piece. */
static int buf_add(char *buf, size_t size, size_t *pos, const char *s, size_t n)
{
    if (*pos + n >= size) {
        *pos = size;
        return -1;
    }
    memcpy(buf + *pos, s, n);
    *pos += n;
    buf[*pos] = '\0';
    return 0;
}

static int buf_adds(char *buf, size_t size, size_t *pos, const char *s)
{
    return buf_add(buf, size, pos, s, strlen(s));
}

/* libpq keyword/value syntax: values with spaces, quotes or backslashes
 * must be single-quoted with those characters backslash-escaped. */
static int append_conninfo_value(char *buf, size_t size, size_t *pos,
                                 const char *v)
{
    if (path_is_plain(v))
        return buf_adds(buf, size, pos, v);
    buf_adds(buf, size, pos, "'");
    for (; *v; v++) {
        if (*v == '\'' || *v == '\\')
            buf_adds(buf, size, pos, "\\");
        buf_add(buf, size, pos, v, 1);
    }
    return buf_adds(buf, size, pos, "'");
}

static int append_uri_value(char *buf, size_t size, size_t *pos, const char *v)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *v; v++) {
        unsigned char c = (unsigned char)*v;
        if (is_safe_path_char(c)) {
            buf_add(buf, size, pos, (const char *)&c, 1);
        } else {
            char enc[3] = { '%', hex[c >> 4], hex[c & 15] };
            buf_add(buf, size, pos, enc, 3);
        }
    }
    return *pos < size ? 0 : -1;
}

/* unix_socket_directories (-k) is a comma-separated list; an element in
 * double quotes may hold commas and spaces, with "" standing for ". */
static int quote_socket_dir(char *buf, size_t size, const char *dir)
{
    size_t pos = 0;
    buf[0] = '\0';
    if (path_is_plain(dir))
        return buf_adds(buf, size, &pos, dir);
    buf_adds(buf, size, &pos, "\"");
    for (; *dir; dir++) {
        if (*dir == '"')
            buf_adds(buf, size, &pos, "\"");
        buf_add(buf, size, &pos, dir, 1);
    }
    return buf_adds(buf, size, &pos, "\"");
}

/* The last few lines of a log, for error messages.  Only the end of the
 * file is read: a failing server may have written a lot. */
static void read_log_tail(const char *path, char *out, size_t outlen)
{
    char chunk[4096];
    out[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(out, outlen, "(no log: %s)", strerror(errno));
        return;
    }
    off_t end = lseek(fd, 0, SEEK_END);
    off_t start = end > (off_t)sizeof chunk - 1 ? end - (off_t)(sizeof chunk - 1) : 0;
    size_t len = 0;
    if (end > 0 && lseek(fd, start, SEEK_SET) == start) {
        while (len < sizeof chunk - 1) {
            ssize_t r = read(fd, chunk + len, sizeof chunk - 1 - len);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            len += (size_t)r;
        }
    }
    close(fd);
    chunk[len] = '\0';
    char *p = chunk;
    if (start > 0) {
        /* we started mid-line: drop the fragment */
        char *nl = strchr(p, '\n');
        p = nl ? nl + 1 : p;
    }
    size_t n = strlen(p);
    while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r' || p[n - 1] == ' '))
        p[--n] = '\0';
    if (n == 0) {
        snprintf(out, outlen, "(the log is empty)");
        return;
    }
    int lines = 0;
    char *q = p + n;
    while (q > p) {
        if (q[-1] == '\n' && ++lines == TMPDB_LOG_TAIL_LINES)
            break;
        q--;
    }
    snprintf(out, outlen, "%s", q);
}

/* ------------------------------------------------------------------ */
/* stopping                                                            */

static int rm_entry(const char *path, const struct stat *sb, int type,
                    struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    remove(path);
    return 0; /* keep going: remove as much as possible */
}

/* Guard against a corrupted or foreign struct making us delete a tree we
 * did not create. */
static int looks_like_ours(const char *dir)
{
    if (dir[0] != '/')
        return 0;
    const char *base = strrchr(dir, '/') + 1;
    return strncmp(base, TMPDB_PREFIX, strlen(TMPDB_PREFIX)) == 0 &&
           strlen(base) == strlen(TMPDB_PREFIX) + 6;
}

static void remove_tree(const char *dir)
{
    if (!dir[0] || !looks_like_ours(dir))
        return;
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Returns nonzero once pid has been reaped, or cannot be ours any more. */
static int wait_gone(pid_t pid, long ms)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        int st;
        pid_t r = spawn_wait(pid, &st, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD))
            return 1;
        if (spawn_elapsed_ms(&t0) >= ms)
            return 0;
        spawn_sleep_ms(10);
    }
}

/* Fast shutdown (SIGINT) disconnects clients and exits cleanly; immediate
 * (SIGQUIT) skips the shutdown checkpoint; SIGKILL is the last resort,
 * after which orphaned backends notice the postmaster is gone and exit. */
static void stop_postmaster(pid_t pid)
{
    if (pid <= 0)
        return;
    static const struct { int sig; long wait_ms; } steps[] = {
        { SIGINT, 10000 }, { SIGQUIT, 2000 },
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        /* ESRCH: already reaped by someone else; do not wait for a pid that
         * might be reused */
        if (kill(pid, steps[i].sig) != 0 && errno == ESRCH)
            return;
        if (wait_gone(pid, steps[i].wait_ms))
            return;
    }
    if (kill(pid, SIGKILL) != 0 && errno == ESRCH)
        return;
    int st;
    spawn_wait(pid, &st, 0);
}

/* ------------------------------------------------------------------ */
/* stale directories                                                   */

/* The first size - 1 bytes (at most) of the file at path, NUL-terminated
 * in buf; their count, or <= 0 when it cannot be read or is empty. */
static ssize_t read_head(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n > 0)
        buf[n] = '\0';
    return n;
}

/* Field 22 of /proc/<pid>/stat: the process's start time in clock ticks
 * since boot, which tells a process from a later one given the same pid.
 * 0 when unknown (no /proc, or no such process).  *zombie (may be NULL)
 * is set when the process has exited and only waits to be reaped (field
 * 3 is Z or X): a killed owner whose parent does not reap it. */
static unsigned long long proc_start_time_z(pid_t pid, int *zombie)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (read_head(path, buf, sizeof buf) <= 0)
        return 0;
    /* the command name (field 2) may hold spaces and parentheses: count
     * from the last ')' */
    char *p = strrchr(buf, ')');
    if (!p)
        return 0;
    p++;
    if (zombie)
        *zombie = p[0] == ' ' && (p[1] == 'Z' || p[1] == 'X');
    for (int field = 3; field < 22; field++) {
        p = strchr(p + 1, ' ');
        if (!p)
            return 0;
    }
    return strtoull(p + 1, NULL, 10);
}

static unsigned long long proc_start_time(pid_t pid)
{
    return proc_start_time_z(pid, NULL);
}

/* Record this process as the owner of dir (file "owner": pid and start
 * time), so a later start can tell whether dir was left behind. */
static int write_owner(const char *dir)
{
    char path[PATH_MAX + 32], line[64];
    snprintf(path, sizeof path, "%s/owner", dir);
    pid_t me = getpid();
    int n = snprintf(line, sizeof line, "%d %llu\n", (int)me,
                     proc_start_time(me));
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    int ok = write(fd, line, (size_t)n) == n;
    return close(fd) == 0 && ok ? 0 : -1;
}

/* Whether the process recorded in dir/owner is gone: 1 gone, 0 alive or
 * unknown (no owner file: a start still under way, or a directory from
 * elsewhere - left alone). */
static int owner_gone(const char *dir)
{
    char path[PATH_MAX + 32], line[64];
    snprintf(path, sizeof path, "%s/owner", dir);
    if (read_head(path, line, sizeof line) <= 0)
        return 0;
    int pid;
    unsigned long long start;
    if (sscanf(line, "%d %llu", &pid, &start) != 2 || pid <= 0)
        return 0;
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return 1;
    /* alive, unless it is a zombie or the pid names another process */
    int zombie = 0;
    unsigned long long now = proc_start_time_z(pid, &zombie);
    return zombie || (start != 0 && now != 0 && now != start);
}

/* A postmaster still running in dir (data/postmaster.pid, confirmed by
 * the process's working directory, which postgres sets to its data
 * directory): stopped, immediate shutdown then SIGKILL.  Returns 0 when
 * none runs any more, -1 when one may (the directory must stay). */
static int stop_stale_postmaster(const char *dir)
{
    char path[PATH_MAX + 32], line[32], cwd[PATH_MAX], want[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/data/postmaster.pid", dir);
    if (read_head(path, line, sizeof line) <= 0)
        return 0;
    pid_t pid = (pid_t)atoi(line);
    if (pid <= 0 || (kill(pid, 0) != 0 && errno == ESRCH))
        return 0;
    snprintf(path, sizeof path, "/proc/%d/cwd", (int)pid);
    ssize_t k = readlink(path, cwd, sizeof cwd - 1);
    if (k < 0)
        return errno == ENOENT ? 0 : -1; /* gone, or not ours to look at */
    cwd[k] = '\0';
    snprintf(want, sizeof want, "%s/data", dir);
    if (strcmp(cwd, want) != 0)
        return 0; /* the pid is another process's now */
    static const int sigs[] = { SIGQUIT, SIGKILL };
    for (size_t i = 0; i < 2; i++) {
        if (kill(pid, sigs[i]) != 0)
            return errno == ESRCH ? 0 : -1;
        for (int t = 0; t < 200; t++) { /* 2 s */
            int zombie = 0;
            if ((kill(pid, 0) != 0 && errno == ESRCH) ||
                (proc_start_time_z(pid, &zombie), zombie))
                return 0; /* exited (a zombie holds nothing) */
            spawn_sleep_ms(10);
        }
    }
    return -1;
}

int tmpdb_sweep(const char *parent_dir)
{
    DIR *d = opendir(parent_dir);
    if (!d)
        return 0;
    int removed = 0;
    uid_t me = geteuid();
    struct dirent *e;
    while ((e = readdir(d))) {
        char dir[PATH_MAX];
        struct stat st;
        if (snprintf(dir, sizeof dir, "%s/%s", parent_dir, e->d_name) >=
                (int)sizeof dir ||
            !looks_like_ours(dir) || lstat(dir, &st) != 0 ||
            !S_ISDIR(st.st_mode))
            continue;
        /* another user's directory is not ours to judge (as root, the
         * directory belongs to the postgres user) */
        if (me != 0 && st.st_uid != me)
            continue;
        if (!owner_gone(dir) || stop_stale_postmaster(dir) != 0)
            continue;
        remove_tree(dir);
        removed++;
    }
    closedir(d);
    return removed;
}

/* ------------------------------------------------------------------ */
/* registry                                                            */

/* The one piece of process-global state: atexit() handlers take no
 * argument, so the servers still running at exit must be findable from
 * here.  A spin lock on an atomic_flag rather than a pthread mutex because
 * the critical sections are a few copies, and the atexit handler can give
 * up waiting (a forked child may have inherited the lock held by another
 * thread) instead of deadlocking on exit. */
typedef struct registry_slot {
    int in_use;
    pid_t owner;   /* getpid() of the process that started the server */
    pid_t pid;     /* postmaster; 0 while initdb is still running */
    char dir[sizeof(((tmpdb *)0)->dir)];
} registry_slot;

static registry_slot registry[TMPDB_REGISTRY_SLOTS];
static atomic_flag registry_busy = ATOMIC_FLAG_INIT;
static int atexit_registered;

static int registry_lock(int max_tries)
{
    for (int i = 0; atomic_flag_test_and_set(&registry_busy); i++) {
        if (max_tries > 0 && i >= max_tries)
            return 0;
        spawn_sleep_ms(1);
    }
    return 1;
}

static void registry_unlock(void)
{
    atomic_flag_clear(&registry_busy);
}

static void stop_all_at_exit(void)
{
    registry_slot mine[TMPDB_REGISTRY_SLOTS];
    int n = 0;
    pid_t me = getpid();
    int locked = registry_lock(1000);
    for (int i = 0; i < TMPDB_REGISTRY_SLOTS; i++) {
        if (registry[i].in_use && registry[i].owner == me) {
            mine[n++] = registry[i];
            memset(&registry[i], 0, sizeof registry[i]);
        }
    }
    if (locked)
        registry_unlock();
    for (int i = 0; i < n; i++) {
        stop_postmaster(mine[i].pid);
        remove_tree(mine[i].dir);
    }
}

static int registry_reserve(const char *dir)
{
    int slot = -1;
    registry_lock(0);
    if (!atexit_registered && atexit(stop_all_at_exit) == 0)
        atexit_registered = 1;
    for (int i = 0; i < TMPDB_REGISTRY_SLOTS; i++) {
        if (!registry[i].in_use) {
            registry[i].in_use = 1;
            registry[i].owner = getpid();
            registry[i].pid = 0;
            snprintf(registry[i].dir, sizeof registry[i].dir, "%s", dir);
            slot = i;
            break;
        }
    }
    registry_unlock();
    return slot;
}

static void registry_set_pid(int slot, pid_t pid)
{
    registry_lock(0);
    registry[slot].pid = pid;
    registry_unlock();
}

/* The slot of this process's server in dir, or -1. */
static int registry_find(const char *dir)
{
    int slot = -1;
    pid_t me = getpid();
    registry_lock(0);
    for (int i = 0; i < TMPDB_REGISTRY_SLOTS; i++) {
        if (registry[i].in_use && registry[i].owner == me &&
            strcmp(registry[i].dir, dir) == 0) {
            slot = i;
            break;
        }
    }
    registry_unlock();
    return slot;
}

static void registry_release(int slot)
{
    registry_lock(0);
    memset(&registry[slot], 0, sizeof registry[slot]);
    registry_unlock();
}

/* ------------------------------------------------------------------ */
/* start                                                               */

typedef struct run_as {
    int drop;
    uid_t uid;
    gid_t gid;
    gid_t groups[TMPDB_MAX_GROUPS];
    int ngroups;
} run_as;

static int lookup_postgres_user(run_as *ra, char *err, size_t errlen)
{
    memset(ra, 0, sizeof *ra);
    if (geteuid() != 0)
        return 0;
    struct passwd pw, *found = NULL;
    char buf[4096];
    int e = getpwnam_r("postgres", &pw, buf, sizeof buf, &found);
    if (e != 0 || !found) {
        set_err(err, errlen,
                "running as root and there is no `postgres` user to run the "
                "server as (initdb and postgres refuse to run as root); create "
                "one (adduser --system --group postgres) or run as an ordinary "
                "user%s%s",
                e ? ": " : "", e ? strerror(e) : "");
        return -1;
    }
    ra->drop = 1;
    ra->uid = pw.pw_uid;
    ra->gid = pw.pw_gid;
    ra->ngroups = TMPDB_MAX_GROUPS;
    if (getgrouplist(pw.pw_name, pw.pw_gid, ra->groups, &ra->ngroups) < 0) {
        /* more groups than we keep: the primary group is all the server needs */
        ra->groups[0] = pw.pw_gid;
        ra->ngroups = 1;
    }
    return 0;
}

static const char *choose_parent_dir(const tmpdb_opts *opts)
{
    if (opts->parent_dir && *opts->parent_dir)
        return opts->parent_dir;
    const char *t = getenv("TMPDIR");
    if (t && *t)
        return t;
    return "/tmp";
}

/* What the phases of tmpdb_start share. */
typedef struct start_ctx {
    const tmpdb_opts *opts;
    char *err;
    size_t errlen;
    pgbin_paths bins;
    run_as ra;
    char dir[sizeof(((tmpdb *)0)->dir)];
    char data[PATH_MAX], initdb_log[PATH_MAX], server_log[PATH_MAX];
    char sockdir_arg[PATH_MAX * 2];
    char ping_ci[sizeof(((tmpdb *)0)->conninfo) + 64];
    spawn_spec child;   /* the fields every child shares */
    int slot;           /* registry slot, -1 when none */
    pid_t server;       /* postmaster, 0 when not running */
    char *argv_buf;     /* the postmaster's argv, packed (tmpdb.argv) */
    size_t argv_len;
    int argc;
} start_ctx;

/* Phase 1: a fresh directory under the parent (opts->parent_dir, $TMPDIR
 * or /tmp), checked first against what a unix socket path and libpq's
 * host= can take; registered, and given to the postgres user as root. */
static int prepare_dir(start_ctx *c)
{
    /* absolute, because postgres resolves -k after chdir()ing to its data
     * directory */
    const char *parent_arg = choose_parent_dir(c->opts);
    char parent[PATH_MAX];
    if (!realpath(parent_arg, parent)) {
        set_err(c->err, c->errlen, "cannot use %s as the parent directory: %s",
                parent_arg, strerror(errno));
        return -1;
    }
    /* libpq splits host= on commas with no way to escape one */
    if (strchr(parent, ',')) {
        set_err(c->err, c->errlen, "the parent directory %s contains a comma, "
                "which libpq cannot take in a socket directory; set TMPDIR to "
                "another directory", parent);
        return -1;
    }
    const char *sock_name = "/.s.PGSQL." TMPDB_PORT;
    size_t dir_len = strlen(parent) + 1 + strlen(TMPDB_PREFIX) + 6;
    size_t sun_max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
    if (dir_len + strlen(sock_name) > sun_max || dir_len >= sizeof c->dir) {
        set_err(c->err, c->errlen,
                "the parent directory %s is too long for a unix socket path "
                "(at most %zu bytes in all); set TMPDIR to a shorter directory",
                parent, sun_max);
        return -1;
    }
    /* what killed processes left behind here goes first */
    tmpdb_sweep(parent);
    size_t dpos = 0;
    buf_adds(c->dir, sizeof c->dir, &dpos, parent);
    buf_adds(c->dir, sizeof c->dir, &dpos, "/" TMPDB_PREFIX "XXXXXX");
    if (!mkdtemp(c->dir)) {
        set_err(c->err, c->errlen, "could not create a directory in %s: %s",
                parent, strerror(errno));
        c->dir[0] = '\0';
        return -1;
    }
    if (write_owner(c->dir) != 0) {
        set_err(c->err, c->errlen, "could not write %s/owner: %s", c->dir,
                strerror(errno));
        return -1;
    }
    c->slot = registry_reserve(c->dir);
    if (c->slot < 0) {
        set_err(c->err, c->errlen, "too many temporary servers in this process "
                "(at most %d)", TMPDB_REGISTRY_SLOTS);
        return -1;
    }
    if (c->ra.drop && chown(c->dir, c->ra.uid, c->ra.gid) != 0) {
        set_err(c->err, c->errlen, "could not give %s to the postgres user: %s",
                c->dir, strerror(errno));
        return -1;
    }
    snprintf(c->data, sizeof c->data, "%s/data", c->dir);
    snprintf(c->initdb_log, sizeof c->initdb_log, "%s/initdb.log", c->dir);
    snprintf(c->server_log, sizeof c->server_log, "%s/server.log", c->dir);
    quote_socket_dir(c->sockdir_arg, sizeof c->sockdir_arg, c->dir);
    long max_fd = sysconf(_SC_OPEN_MAX);
    if (max_fd < 0 || max_fd > 65536)
        max_fd = 65536;
    c->child = (spawn_spec){
        .log_fd = -1, .cwd = c->dir, .drop_privileges = c->ra.drop,
        .uid = c->ra.uid, .gid = c->ra.gid, .groups = c->ra.groups,
        .ngroups = c->ra.ngroups, .parent = getpid(), .max_fd = max_fd,
    };
    return 0;
}

/* Phase 2: the conninfo and URI users get, and the readiness probe's. */
static int build_targets(start_ctx *c, tmpdb *db)
{
    size_t pos = 0;
    buf_adds(db->conninfo, sizeof db->conninfo, &pos, "host=");
    append_conninfo_value(db->conninfo, sizeof db->conninfo, &pos, c->dir);
    buf_adds(db->conninfo, sizeof db->conninfo, &pos,
             " port=" TMPDB_PORT " dbname=postgres user=postgres");
    int too_long = pos >= sizeof db->conninfo;
    pos = 0;
    buf_adds(db->uri, sizeof db->uri, &pos, "postgresql:///postgres?host=");
    append_uri_value(db->uri, sizeof db->uri, &pos, c->dir);
    buf_adds(db->uri, sizeof db->uri, &pos, "&port=" TMPDB_PORT "&user=postgres");
    too_long |= pos >= sizeof db->uri;
    /* readiness only: sslmode=disable so a PGSSLMODE in the environment
     * cannot make the probe fail against a server without SSL */
    snprintf(c->ping_ci, sizeof c->ping_ci, "%s connect_timeout=2 sslmode=disable",
             db->conninfo);
    if (too_long) {
        set_err(c->err, c->errlen, "the directory name %s is too long", c->dir);
        return -1;
    }
    return 0;
}

/* Run one child to completion with its output in log; 0 when it exited 0,
 * else -1 with *st its wait status (st_valid = 0 when it could not run or
 * be waited for, the message then in err). */
static int run_to_end(start_ctx *c, const char *log, int *st, int *st_valid)
{
    *st_valid = 0;
    int log_fd = spawn_open_log(log);
    if (log_fd < 0) {
        set_err(c->err, c->errlen, "could not create %s: %s", log, strerror(errno));
        return -1;
    }
    c->child.log_fd = log_fd;
    pid_t pid = spawn_child(&c->child, c->err, c->errlen, c->child.path);
    close(log_fd);
    c->child.log_fd = -1;
    if (pid < 0)
        return -1;
    if (spawn_wait(pid, st, 0) < 0) {
        set_err(c->err, c->errlen, "could not wait for %s: %s (is SIGCHLD "
                "ignored?)", c->child.path, strerror(errno));
        return -1;
    }
    *st_valid = 1;
    return WIFEXITED(*st) && WEXITSTATUS(*st) == 0 ? 0 : -1;
}

/* Phase 3: initdb, trust authentication for the postgres user. */
static int run_initdb(start_ctx *c)
{
    char *argv[] = {
        c->bins.initdb, "-D", c->data, "-U", "postgres", "-A", "trust", "-E",
        "UTF8", "--locale=C", "--no-sync", "--no-instructions", NULL,
    };
    c->child.path = c->bins.initdb;
    c->child.argv = argv;
    /* initdb has no state worth keeping if we die; SIGKILL is simplest */
    c->child.pdeathsig = SIGKILL;
    c->child.own_process_group = 0;
    int st, st_valid;
    if (run_to_end(c, c->initdb_log, &st, &st_valid) == 0)
        return 0;
    if (!st_valid)
        return -1;
    char how[96], tail[2048];
    spawn_describe_status(st, how, sizeof how);
    read_log_tail(c->initdb_log, tail, sizeof tail);
    const char *hint = "";
    if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
        hint = " (" BINDIR_HINT ")";
    else if (c->ra.drop && strstr(tail, "ermission denied"))
        hint = " (the postgres user needs search permission on every "
               "directory above it; set TMPDIR elsewhere)";
    set_err(c->err, c->errlen, "initdb (%s) failed (%s) in %s%s; last lines of "
            "its log:\n%s", c->bins.initdb, how, c->dir, hint, tail);
    return -1;
}

/* Phase 4: the postmaster, in its own process group, on the socket only. */
static int start_postmaster(start_ctx *c)
{
    static const char *const fixed[] = {
        "-c", "listen_addresses=", "-p", TMPDB_PORT,
        "-c", "unix_socket_permissions=0777", "-c", "max_connections=50",
        "-c", "shared_buffers=128MB", "-c", "logging_collector=off",
    };
    static const char *const fast[] = {
        "-c", "fsync=off", "-c", "synchronous_commit=off",
        "-c", "full_page_writes=off",
    };
    const tmpdb_opts *opts = c->opts;
    size_t nfixed = sizeof fixed / sizeof fixed[0];
    size_t nfast = opts->fast ? sizeof fast / sizeof fast[0] : 0;
    size_t nsettings = 0;
    if (opts->settings)
        while (opts->settings[nsettings])
            nsettings++;
    char **argv = calloc(5 + nfixed + nfast + 2 * nsettings + 1, sizeof *argv);
    if (!argv) {
        set_err(c->err, c->errlen, "out of memory");
        return -1;
    }
    /* execv takes char *const[]; the strings are never written to */
    size_t a = 0;
    argv[a++] = c->bins.postgres;
    argv[a++] = "-D";
    argv[a++] = c->data;
    argv[a++] = "-k";
    argv[a++] = c->sockdir_arg;
    for (size_t i = 0; i < nfixed; i++)
        argv[a++] = (char *)fixed[i];
    for (size_t i = 0; i < nfast; i++)
        argv[a++] = (char *)fast[i];
    for (size_t i = 0; i < nsettings; i++) {
        argv[a++] = "-c";
        argv[a++] = (char *)opts->settings[i];
    }
    argv[a] = NULL;
    /* kept, packed, for tmpdb_restart() */
    size_t len = 0;
    for (size_t i = 0; i < a; i++)
        len += strlen(argv[i]) + 1;
    c->argv_buf = malloc(len);
    if (!c->argv_buf) {
        set_err(c->err, c->errlen, "out of memory");
        free(argv);
        return -1;
    }
    for (size_t i = 0, off = 0; i < a; i++) {
        size_t n = strlen(argv[i]) + 1;
        memcpy(c->argv_buf + off, argv[i], n);
        off += n;
    }
    c->argv_len = len;
    c->argc = (int)a;

    int log_fd = spawn_open_log(c->server_log);
    if (log_fd < 0) {
        set_err(c->err, c->errlen, "could not create %s: %s", c->server_log,
                strerror(errno));
        free(argv);
        return -1;
    }
    c->child.path = c->bins.postgres;
    c->child.argv = argv;
    c->child.log_fd = log_fd;
    c->child.pdeathsig = SIGQUIT; /* immediate shutdown of the whole server */
    c->child.own_process_group = 1;
    pid_t pid = spawn_child(&c->child, c->err, c->errlen, "postgres");
    close(log_fd);
    c->child.log_fd = -1;
    free(argv);
    if (pid < 0)
        return -1;
    c->server = pid;
    registry_set_pid(c->slot, pid);
    return 0;
}

/* Phase 5: wait until the server accepts connections, noticing at once
 * when it exits instead. */
static int wait_ready(start_ctx *c)
{
    int timeout_ms = c->opts->timeout_ms > 0 ? c->opts->timeout_ms
                                             : TMPDB_DEFAULT_TIMEOUT_MS;
    char tail[2048], how[96];
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        int st;
        pid_t r = spawn_wait(c->server, &st, WNOHANG);
        if (r == c->server || (r < 0 && errno == ECHILD)) {
            if (r == c->server)
                spawn_describe_status(st, how, sizeof how);
            else
                snprintf(how, sizeof how, "status unknown");
            c->server = 0;
            read_log_tail(c->server_log, tail, sizeof tail);
            set_err(c->err, c->errlen, "the server (%s) exited during startup "
                    "(%s) in %s; last lines of its log:\n%s",
                    c->bins.postgres, how, c->dir, tail);
            return -1;
        }
        PGPing p = PQping(c->ping_ci);
        if (p == PQPING_OK)
            return 0;
        if (p == PQPING_NO_ATTEMPT) {
            set_err(c->err, c->errlen, "libpq rejected the connection string %s",
                    c->ping_ci);
            return -1;
        }
        if (spawn_elapsed_ms(&t0) >= timeout_ms) {
            stop_postmaster(c->server);
            c->server = 0;
            read_log_tail(c->server_log, tail, sizeof tail);
            set_err(c->err, c->errlen, "the server did not accept connections "
                    "within %d ms in %s; last lines of its log:\n%s",
                    timeout_ms, c->dir, tail);
            return -1;
        }
        spawn_sleep_ms(20);
    }
}

int tmpdb_start(tmpdb *db, const tmpdb_opts *opts, char *err, size_t errlen)
{
    static const tmpdb_opts no_opts;
    if (err && errlen)
        err[0] = '\0';
    if (!db) {
        set_err(err, errlen, "no tmpdb struct given");
        return -1;
    }
    memset(db, 0, sizeof *db);
    start_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    c->opts = opts ? opts : &no_opts;
    c->err = err;
    c->errlen = errlen;
    c->slot = -1;
    int rc = -1;
    char why[PATH_MAX + 256];
    if (pgbin_find(c->opts->bindir, &c->bins, why, sizeof why) != 0) {
        set_err(err, errlen, "%s", why);
        goto out;
    }
    if (lookup_postgres_user(&c->ra, err, errlen) != 0)
        goto out;
    if (prepare_dir(c) != 0 || build_targets(c, db) != 0 || run_initdb(c) != 0 ||
        start_postmaster(c) != 0 || wait_ready(c) != 0)
        goto out;
    db->pid = c->server;
    memcpy(db->dir, c->dir, sizeof db->dir);
    db->argv = c->argv_buf;
    db->argv_len = c->argv_len;
    db->argc = c->argc;
    c->argv_buf = NULL;
    rc = 0;
out:
    if (rc != 0) {
        /* undo whatever the phases did */
        stop_postmaster(c->server);
        if (c->slot >= 0)
            registry_release(c->slot);
        if (c->dir[0])
            remove_tree(c->dir);
        memset(db, 0, sizeof *db);
    }
    free(c->argv_buf);
    free(c);
    return rc;
}

void tmpdb_stop(tmpdb *db)
{
    if (!db)
        return;
    free(db->argv);
    db->argv = NULL;
    if (!db->dir[0])
        return;
    pid_t me = getpid();
    registry_slot entry = { 0 };
    int found = 0, foreign = 0;
    registry_lock(0);
    for (int i = 0; i < TMPDB_REGISTRY_SLOTS; i++) {
        if (registry[i].in_use && strcmp(registry[i].dir, db->dir) == 0) {
            if (registry[i].owner != me) {
                foreign = 1;
            } else {
                entry = registry[i];
                memset(&registry[i], 0, sizeof registry[i]);
                found = 1;
            }
            break;
        }
    }
    registry_unlock();
    /* A forked child's copy of its parent's server: not ours to stop. */
    if (foreign)
        return;
    /* Not in the registry means already stopped (e.g. by the atexit
     * handler); the pid may have been reused since, so do not signal it. */
    if (found) {
        stop_postmaster(entry.pid);
        remove_tree(entry.dir);
    }
    memset(db, 0, sizeof *db);
}

int tmpdb_restart(tmpdb *db, int immediate, long pause_ms, int timeout_ms,
                  char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    int slot = db && db->dir[0] && db->argv ? registry_find(db->dir) : -1;
    if (slot < 0) {
        if (err && errlen)
            snprintf(err, errlen, "cannot restart the temporary PostgreSQL: it "
                     "is stopped, or another process's");
        return -1;
    }
    if (db->pid > 0) {
        pid_t pid = db->pid;
        if (kill(pid, immediate ? SIGQUIT : SIGINT) == 0 &&
            !wait_gone(pid, immediate ? 10000 : 30000)) {
            int st;
            kill(pid, SIGKILL);
            spawn_wait(pid, &st, 0);
        }
        registry_set_pid(slot, 0);
        db->pid = 0;
    }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (spawn_elapsed_ms(&t0) < pause_ms)
        spawn_sleep_ms(pause_ms - spawn_elapsed_ms(&t0));

    tmpdb_opts o = { .timeout_ms = timeout_ms };
    start_ctx *c = calloc(1, sizeof *c);
    char **argv = calloc((size_t)db->argc + 1, sizeof *argv);
    int rc = -1;
    if (!c || !argv) {
        set_err(err, errlen, "out of memory");
        goto out;
    }
    c->opts = &o;
    c->err = err;
    c->errlen = errlen;
    c->slot = slot;
    if (lookup_postgres_user(&c->ra, err, errlen) != 0)
        goto out;
    for (int i = 0, off = 0; i < db->argc; i++) {
        argv[i] = db->argv + off;
        off += (int)strlen(argv[i]) + 1;
    }
    memcpy(c->dir, db->dir, sizeof c->dir);
    snprintf(c->bins.postgres, sizeof c->bins.postgres, "%s", argv[0]);
    snprintf(c->server_log, sizeof c->server_log, "%s/server.log", c->dir);
    snprintf(c->ping_ci, sizeof c->ping_ci, "%s connect_timeout=2 sslmode=disable",
             db->conninfo);
    long max_fd = sysconf(_SC_OPEN_MAX);
    if (max_fd < 0 || max_fd > 65536)
        max_fd = 65536;
    /* the log goes on after the first server's lines (no O_TRUNC) */
    int log_fd = open(c->server_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log_fd >= 0 && log_fd < 3) {
        int high = fcntl(log_fd, F_DUPFD_CLOEXEC, 3);
        close(log_fd);
        log_fd = high;
    }
    if (log_fd < 0) {
        set_err(err, errlen, "could not open %s: %s", c->server_log, strerror(errno));
        goto out;
    }
    c->child = (spawn_spec){
        .path = c->bins.postgres, .argv = argv, .log_fd = log_fd, .cwd = c->dir,
        .drop_privileges = c->ra.drop, .uid = c->ra.uid, .gid = c->ra.gid,
        .groups = c->ra.groups, .ngroups = c->ra.ngroups, .parent = getpid(),
        .max_fd = max_fd, .pdeathsig = SIGQUIT, .own_process_group = 1,
    };
    pid_t pid = spawn_child(&c->child, err, errlen, "postgres");
    close(log_fd);
    if (pid < 0)
        goto out;
    c->server = pid;
    registry_set_pid(slot, pid);
    if (wait_ready(c) != 0) {
        registry_set_pid(slot, 0);
        goto out;
    }
    db->pid = pid;
    rc = 0;
out:
    free(argv);
    free(c);
    return rc;
}
