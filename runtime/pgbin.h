/*
 * pgbin.h - where initdb and postgres are.
 *
 * Provides: pgbin_find() picks the server's bin directory: a configured one
 * (used or failing, never silently replaced), else PG_BINDIR, else
 * `pg_config --bindir`, else the newest /usr/lib/postgresql/<N>/bin, else
 * $PATH.  initdb finds postgres next to itself, so both must be in the same
 * directory.
 *
 * Uses: stat/access, popen of pg_config, opendir.  Knows nothing about Lua.
 */
#ifndef SLUICE_PGBIN_H
#define SLUICE_PGBIN_H

#include <limits.h>
#include <stddef.h>

#define PGBIN_HINT "set PG_BINDIR to the directory holding initdb and postgres"

typedef struct pgbin_paths {
    char initdb[PATH_MAX];
    char postgres[PATH_MAX];
} pgbin_paths;

/* Fill *out with absolute paths of initdb and postgres.  bindir: a
 * configured directory or NULL/"".  Returns 0, or -1 with a message in err
 * saying where it looked.  Allocates nothing that outlives the call. */
int pgbin_find(const char *bindir, pgbin_paths *out, char *err, size_t errlen);

#endif
