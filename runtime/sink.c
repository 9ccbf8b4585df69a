/*
 * sink.c - the output file of a file sink (see sink.h).
 *
 * Caveats:
 * - No stdio: the encoder already gathers 64 KiB chunks, so a FILE's own
 *   buffer would only add a copy.  Plain output is write(2) in a loop
 *   (short writes, EINTR); gzip output is gzwrite with a 128 KiB buffer.
 * - A write error that the kernel reports late (NFS, a full disk with
 *   delayed allocation) surfaces at close(): sink_close() checks it and
 *   discards, so a commit that returns 0 really has every byte.
 * - The temporary file is created 0600 by mkstemp; it gets the mode a
 *   plain open(path, O_CREAT, 0666) would have (umask applied) before the
 *   rename, so the result looks like any other file the user writes.
 */
#include "sink.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define GZ_BUFFER (128 * 1024)

static void set_msg(char *msg, size_t msglen, const char *path,
                    const char *what, int err)
{
    if (msglen == 0)
        return;
    if (err)
        snprintf(msg, msglen, "%s: %s%s%s", path ? path : "sink", what,
                 *what ? ": " : "", strerror(err));
    else
        snprintf(msg, msglen, "%s: %s", path ? path : "sink", what);
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

/* --------------------------------------------------------- SIGPIPE guard */

/* While writing to a pipe SIGPIPE is blocked, so a closed reader makes
 * write() fail with EPIPE instead of killing the process; a SIGPIPE that
 * the write raised is then taken off the pending set before unblocking
 * (the approach libpq takes where MSG_NOSIGNAL is missing). */
typedef struct pipe_guard {
    int on;
    int was_pending;
    sigset_t old;
} pipe_guard;

static void guard_begin(pipe_guard *g, int on)
{
    g->on = on;
    if (!on)
        return;
    sigset_t pipe_set, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigpending(&pending);
    g->was_pending = sigismember(&pending, SIGPIPE);
    sigprocmask(SIG_BLOCK, &pipe_set, &g->old);
}

static void guard_end(pipe_guard *g)
{
    if (!g->on)
        return;
    sigset_t pipe_set, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigpending(&pending);
    if (!g->was_pending && sigismember(&pending, SIGPIPE)) {
        struct timespec zero = { 0, 0 };
        int saved = errno;
        sigtimedwait(&pipe_set, NULL, &zero);
        errno = saved;
    }
    sigprocmask(SIG_SETMASK, &g->old, NULL);
}

/* ------------------------------------------------------------------ open */

/* Standard output: a dup of fd 1, so closing the sink leaves stdout
 * open, taken after what Lua's io.write/print buffered went out.  A pipe
 * or terminal gets the SIGPIPE guard.  Returns the fd, or -1 with msg. */
static int open_stdout(sink_file *f, const char *path, char *msg,
                       size_t msglen)
{
    fflush(stdout);
    int fd = fcntl(1, F_DUPFD_CLOEXEC, 3);
    if (fd < 0) {
        set_msg(msg, msglen, path, "cannot use standard output", errno);
        return -1;
    }
    struct stat st;
    f->guard_pipe = fstat(fd, &st) != 0 || !S_ISREG(st.st_mode);
    return fd;
}

/* Something that exists and is not a regular file (st: its stat), such
 * as a device or a FIFO: written in place, with the SIGPIPE guard; a
 * directory is refused.  Returns the fd, or -1 with msg. */
static int open_in_place(sink_file *f, const char *path,
                         const struct stat *st, char *msg, size_t msglen)
{
    if (S_ISDIR(st->st_mode)) {
        set_msg(msg, msglen, path, "cannot write", EISDIR);
        return -1;
    }
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        set_msg(msg, msglen, path, "cannot open", errno);
        return -1;
    }
    f->guard_pipe = 1;
    return fd;
}

/* Remove and forget the temporary file of a sink that failed to open. */
static void drop_tmp(sink_file *f)
{
    unlink(f->tmp);
    free(f->tmp);
    f->tmp = NULL;
}

/* A regular file or a new path: a temporary file beside it (f->tmp),
 * renamed over it when the sink commits, with the mode a plain creat
 * would give it.  Returns the fd, or -1 with msg (f->tmp NULL). */
static int open_tmp(sink_file *f, const char *path, char *msg,
                    size_t msglen)
{
    size_t n = strlen(path);
    f->tmp = malloc(n + sizeof ".sluice-XXXXXX");
    if (!f->tmp) {
        set_msg(msg, msglen, path, "out of memory", 0);
        return -1;
    }
    memcpy(f->tmp, path, n);
    memcpy(f->tmp + n, ".sluice-XXXXXX", sizeof ".sluice-XXXXXX");
    int fd = mkstemp(f->tmp); /* mkostemp is not POSIX */
    if (fd >= 0)
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        free(f->tmp);
        f->tmp = NULL;
        set_msg(msg, msglen, path, "cannot create", e);
        return -1;
    }
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) != 0) {
        set_msg(msg, msglen, path, "cannot set the file mode", errno);
        close(fd);
        drop_tmp(f);
        return -1;
    }
    return fd;
}

/* Put gzip (level 1..9; more is 9) over fd, which it then owns.  0, or
 * -1 with msg: fd is closed and the temporary file removed. */
static int start_gzip(sink_file *f, int fd, int gzip_level,
                      const char *path, char *msg, size_t msglen)
{
    char mode[8];
    snprintf(mode, sizeof mode, "wb%d", gzip_level > 9 ? 9 : gzip_level);
    f->gz = gzdopen(fd, mode);
    if (!f->gz) {
        set_msg(msg, msglen, path, "cannot start gzip", errno ? errno
                                                              : ENOMEM);
        close(fd);
        if (f->tmp)
            drop_tmp(f);
        return -1;
    }
    gzbuffer(f->gz, GZ_BUFFER);
    return 0;
}

/* Open path for writing (sink.h): standard output, in place or through a
 * temporary file, then gzip over it when asked.  Never raises. */
int sink_open(sink_file *f, const char *path, int gzip_level, char *msg,
              size_t msglen)
{
    f->path = dup_str(path);
    if (!f->path) {
        set_msg(msg, msglen, path, "out of memory", 0);
        return -1;
    }
    int fd;
    struct stat st;
    if (strcmp(path, "-") == 0)
        fd = open_stdout(f, path, msg, msglen);
    else if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        fd = open_in_place(f, path, &st, msg, msglen);
    else
        fd = open_tmp(f, path, msg, msglen);
    if (fd < 0)
        return -1;
    if (gzip_level > 0 && start_gzip(f, fd, gzip_level, path, msg,
                                     msglen) != 0)
        return -1;
    f->fd = fd;
    f->open = 1;
    return 0;
}

/* ----------------------------------------------------------------- write */

static int gz_failed(sink_file *f, char *msg, size_t msglen)
{
    int zerr;
    const char *zmsg = gzerror(f->gz, &zerr);
    if (zerr == Z_ERRNO)
        set_msg(msg, msglen, f->path, "", errno ? errno : EIO);
    else
        set_msg(msg, msglen, f->path, zmsg ? zmsg : "gzip error", 0);
    return -1;
}

int sink_write(sink_file *f, const void *data, size_t n, char *msg,
               size_t msglen)
{
    if (!f->open) {
        set_msg(msg, msglen, f->path, "the sink is closed", 0);
        return -1;
    }
    const char *p = data;
    int rc = 0;
    pipe_guard g;
    guard_begin(&g, f->guard_pipe);
    errno = 0;
    while (n > 0) {
        size_t k = n > (1u << 30) ? (1u << 30) : n;
        if (f->gz) {
            int w = gzwrite(f->gz, p, (unsigned)k);
            if (w <= 0) {
                rc = gz_failed(f, msg, msglen);
                break;
            }
            k = (size_t)w;
        } else {
            ssize_t w = write(f->fd, p, k);
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                set_msg(msg, msglen, f->path, "", errno);
                rc = -1;
                break;
            }
            k = (size_t)w;
        }
        p += k;
        n -= k;
        f->bytes += k;
    }
    guard_end(&g);
    return rc;
}

/* ----------------------------------------------------------------- close */

int sink_close(sink_file *f, int commit, char *msg, size_t msglen)
{
    int rc = 0;
    if (f->open) {
        f->open = 0;
        pipe_guard g;
        guard_begin(&g, f->guard_pipe);
        errno = 0;
        if (f->gz) {
            /* gzclose writes the last compressed block and the trailer */
            int z = gzclose(f->gz);
            f->gz = NULL;
            if (z != Z_OK && commit) {
                set_msg(msg, msglen, f->path,
                        z == Z_ERRNO ? "" : "gzip error",
                        z == Z_ERRNO ? (errno ? errno : EIO) : 0);
                rc = -1;
            }
        } else if (close(f->fd) != 0 && commit && errno != EINTR) {
            set_msg(msg, msglen, f->path, "", errno);
            rc = -1;
        }
        guard_end(&g);
        if (f->tmp) {
            if (commit && rc == 0 && rename(f->tmp, f->path) != 0) {
                set_msg(msg, msglen, f->path, "cannot rename the finished "
                                              "file into place", errno);
                rc = -1;
            }
            if (!commit || rc != 0)
                unlink(f->tmp);
        }
    } else if (commit) {
        set_msg(msg, msglen, f->path, "the sink is not open", 0);
        rc = -1;
    }
    free(f->tmp);
    f->tmp = NULL;
    free(f->path);
    f->path = NULL;
    return rc;
}
