/*
 * pgbin.c - finding a PostgreSQL server installation (see pgbin.h).
 */
#define _GNU_SOURCE

#include "pgbin.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* initdb finds postgres next to itself, so both must be in the same dir. */
static int dir_has_server(const char *dir, pgbin_paths *out)
{
    pgbin_paths b;
    if (!dir || !*dir)
        return 0;
    if (snprintf(b.initdb, sizeof b.initdb, "%s/initdb", dir) >= (int)sizeof b.initdb ||
        snprintf(b.postgres, sizeof b.postgres, "%s/postgres", dir) >= (int)sizeof b.postgres)
        return 0;
    if (access(b.initdb, X_OK) != 0 || access(b.postgres, X_OK) != 0)
        return 0;
    if (out)
        *out = b;
    return 1;
}

static void pg_config_bindir(char *out, size_t outlen)
{
    out[0] = '\0';
    /* "e": close-on-exec, so servers forked meanwhile do not hold the pipe */
    FILE *f = popen("pg_config --bindir 2>/dev/null", "re");
    if (!f)
        return;
    if (!fgets(out, (int)outlen, f))
        out[0] = '\0';
    /* drain, so pg_config never blocks on a full pipe */
    char junk[256];
    while (fgets(junk, sizeof junk, f))
        ;
    int st = pclose(f);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        out[0] = '\0';
    size_t n = strlen(out);
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' '))
        out[--n] = '\0';
}

/* Debian's layout: /usr/lib/postgresql/<major>/bin, several may coexist.
 * Old majors look like "9.6", so compare major then minor numerically. */
static int newest_debian_bindir(pgbin_paths *out)
{
    const char *root = "/usr/lib/postgresql";
    DIR *d = opendir(root);
    if (!d)
        return 0;
    long best_major = -1, best_minor = -1;
    pgbin_paths best;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *name = e->d_name;
        if (!(name[0] >= '0' && name[0] <= '9'))
            continue;
        char *end;
        long major = strtol(name, &end, 10), minor = 0;
        if (*end == '.')
            minor = strtol(end + 1, &end, 10);
        if (*end != '\0')
            continue;
        if (major < best_major || (major == best_major && minor <= best_minor))
            continue;
        char dir[PATH_MAX];
        pgbin_paths b;
        if (snprintf(dir, sizeof dir, "%s/%s/bin", root, name) >= (int)sizeof dir ||
            !dir_has_server(dir, &b))
            continue;
        best_major = major;
        best_minor = minor;
        best = b;
    }
    closedir(d);
    if (best_major < 0)
        return 0;
    *out = best;
    return 1;
}

static int path_bindir(pgbin_paths *out)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        return 0;
    while (*path) {
        const char *colon = strchr(path, ':');
        size_t len = colon ? (size_t)(colon - path) : strlen(path);
        char dir[PATH_MAX];
        if (len == 0)
            snprintf(dir, sizeof dir, ".");
        else if (len < sizeof dir)
            snprintf(dir, sizeof dir, "%.*s", (int)len, path);
        else
            dir[0] = '\0';
        if (dir[0] && dir_has_server(dir, out)) {
            /* a relative PATH entry would break once the child chdir()s */
            if (out->initdb[0] != '/') {
                char abs[PATH_MAX];
                if (realpath(dir, abs) && dir_has_server(abs, out))
                    return 1;
            } else {
                return 1;
            }
        }
        if (!colon)
            break;
        path = colon + 1;
    }
    return 0;
}

int pgbin_find(const char *bindir, pgbin_paths *out, char *err, size_t errlen)
{
    /* An explicitly configured directory is used or fails: silently falling
     * back to some other installation would hide a configuration mistake. */
    if (bindir && *bindir) {
        if (dir_has_server(bindir, out))
            return 0;
        snprintf(err, errlen,
                "initdb and postgres not found in the configured bindir %s",
                bindir);
        return -1;
    }
    const char *env = getenv("PG_BINDIR");
    if (env && *env) {
        if (dir_has_server(env, out))
            return 0;
        snprintf(err, errlen,
                "initdb and postgres not found in PG_BINDIR=%s; " PGBIN_HINT,
                env);
        return -1;
    }
    char pgc[PATH_MAX];
    pg_config_bindir(pgc, sizeof pgc);
    if (pgc[0] && dir_has_server(pgc, out))
        return 0;
    if (newest_debian_bindir(out))
        return 0;
    if (path_bindir(out))
        return 0;
    snprintf(err, errlen,
            "could not find initdb and postgres (looked at: PG_BINDIR (unset), "
            "pg_config --bindir (%s%s), /usr/lib/postgresql/<N>/bin, $PATH); "
            PGBIN_HINT,
            pgc[0] ? pgc : "no pg_config",
            pgc[0] ? ": no initdb and postgres there" : "");
    return -1;
}
