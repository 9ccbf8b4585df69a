/*
 * tmpdb.h - a private, throwaway PostgreSQL server for this process.
 *
 * Provides: tmpdb_start() runs initdb in a fresh temporary directory and
 * starts `postgres` as a direct child of this process, listening only on a
 * unix socket inside that directory (no TCP port); tmpdb_stop() shuts it
 * down and removes the directory.  Every started server is also recorded in
 * a small process-wide table so that an atexit() handler stops whatever is
 * still running when the process exits (os.exit(), error exit); the server
 * additionally gets PR_SET_PDEATHSIG so it dies with this process even on
 * SIGKILL.  The directory a killed process leaves behind is removed by the
 * next start in the same parent directory (tmpdb_sweep).
 *
 * Uses: fork/exec of initdb and postgres from the server bin directory
 * (PG_BINDIR, else `pg_config --bindir`, else the newest
 * /usr/lib/postgresql/<N>/bin, else $PATH); libpq's PQping to wait for
 * readiness.  When running as root, the server runs as the `postgres` user
 * (initdb refuses to run as root).
 *
 * Knows nothing about Lua.
 */
#ifndef SLUICE_TMPDB_H
#define SLUICE_TMPDB_H

#include <stddef.h>
#include <sys/types.h>

typedef struct tmpdb_opts {
    const char *bindir;      /* NULL: search as described above */
    const char *parent_dir;  /* NULL: $TMPDIR, else /tmp */
    const char *const *settings; /* NULL-terminated "name=value" list passed
                                    as -c to postgres, after the defaults;
                                    may be NULL */
    int fast;                /* nonzero: fsync=off, synchronous_commit=off,
                                full_page_writes=off (safe: data is thrown
                                away anyway) */
    int timeout_ms;          /* startup timeout; <= 0 means 30000 */
} tmpdb_opts;

typedef struct tmpdb {
    pid_t pid;               /* postmaster pid; 0 when not running */
    char dir[256];           /* the temporary directory (data/, socket, log) */
    char conninfo[512];      /* "host=<dir> port=5432 dbname=postgres user=postgres" */
    char uri[768];           /* same as a postgresql:// URI */
    char *argv;              /* the postmaster's arguments, each ending in
                                NUL (argv_len bytes, argc of them), kept for
                                tmpdb_restart(); owned, freed by tmpdb_stop() */
    size_t argv_len;
    int argc;
} tmpdb;

/* Start a server.  On success returns 0 and fills *db.  On failure returns
 * -1, writes a one-paragraph message into err (including the tail of the
 * initdb/server log when there is one), removes anything it created, and
 * leaves db->pid == 0.  Does not raise; allocates nothing that outlives the
 * call except the registry entry and db->argv, which tmpdb_stop()
 * releases. */
int tmpdb_start(tmpdb *db, const tmpdb_opts *opts, char *err, size_t errlen);

/* Stop the server (fast shutdown, then immediate, then SIGKILL if it does
 * not exit in time), wait for it, and remove the directory.  Safe to call
 * twice and on a db whose start failed.  Never fails loudly. */
void tmpdb_stop(tmpdb *db);

/* Stop the server and start it again in place: the same directory, data,
 * socket and settings, so a conninfo stays valid.  immediate: SIGQUIT
 * (what `pg_ctl stop -m immediate` sends: no shutdown checkpoint, the
 * start runs crash recovery), else SIGINT (fast shutdown).  pause_ms:
 * how long the server stays down.  Waits until the new server accepts
 * connections (timeout_ms; <= 0 means 30000).  Returns 0, or -1 with a
 * message in err (db->pid is then 0; tmpdb_stop() still removes the
 * directory).  For tests of clients that must live through a server
 * crash or restart. */
int tmpdb_restart(tmpdb *db, int immediate, long pause_ms, int timeout_ms,
                  char *err, size_t errlen);

/* Remove the server directories in parent_dir whose owner process is
 * gone (a process killed by SIGKILL leaves its directory behind), after
 * stopping a postmaster still running in one.  A directory whose owner is
 * alive, that names no owner, or that belongs to another user is left
 * alone.  tmpdb_start() calls it on its parent directory.  Returns how
 * many it removed.  Never fails loudly. */
int tmpdb_sweep(const char *parent_dir);

#endif
