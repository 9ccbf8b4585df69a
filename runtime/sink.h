/*
 * sink.h - the output file of a file sink: plain or gzip, a path or
 * standard output, never left half-written under its final name.
 *
 * Provides: sink_file, opened by sink_open(), written by sink_write(),
 * ended by the one routine sink_close() (commit or discard).  The bytes
 * come from the COPY encoders (copyenc.c and copy.c, through the
 * lib_copy*.c binding); this unit only moves them to the file.  Knows
 * nothing about Lua: the binding is lib_sink.c.
 *
 * Uses: POSIX open/write/rename, zlib's gz writer (gzdopen/gzwrite).
 *
 * Where the bytes go, and why:
 * - a regular file (or a path that does not exist yet) is written to a
 *   temporary file beside it ("<path>.sluice-XXXXXX") that sink_close()
 *   renames over the path when it commits and removes when it discards:
 *   a reader of the path never sees a half-written file, and a failed or
 *   abandoned sink leaves the old file (or none) in place;
 * - anything else that exists (a device such as /dev/full, a FIFO) is
 *   written in place, and "-" is standard output (a dup of fd 1, so
 *   closing the sink leaves stdout open): what was written cannot be taken
 *   back there, a discard only stops writing;
 * - writes to a pipe block SIGPIPE around the write, so a reader that went
 *   away is the error EPIPE ("-: Broken pipe"), not the silent death of
 *   the process.
 *
 * Ownership: a sink_file lives inside its owner's memory (a Lua userdata),
 * zeroed before sink_open(); sink_close() frees every resource and is safe
 * on a zeroed, a failed-to-open and an already closed sink_file.
 * Functions return 0 or -1 with "<path>: <what>" in the caller's msg
 * buffer; none raises, prints or exits.
 */
#ifndef SLUICE_SINK_H
#define SLUICE_SINK_H

#include <stddef.h>
#include <zlib.h>

typedef struct sink_file {
    int open;       /* sink_open() succeeded and sink_close() has not run */
    int fd;         /* plain output (valid while open and gz is NULL) */
    gzFile gz;      /* gzip output: owns its fd */
    int guard_pipe; /* not a regular file: block SIGPIPE while writing */
    char *path;     /* owned: the name the user gave, for messages */
    char *tmp;      /* owned: the temporary file, NULL when in place */
    unsigned long long bytes; /* bytes handed to sink_write() */
} sink_file;

/* Open path ("-" = standard output) for writing; gzip_level 0 writes
 * plain bytes, 1 to 9 gzip at that level.  f must be zeroed.  Returns 0,
 * or -1 with the message in msg (then f holds nothing open, but
 * sink_close() is still safe). */
int sink_open(sink_file *f, const char *path, int gzip_level, char *msg,
              size_t msglen);

/* Write data[0..n) (through zlib when gzip).  Returns 0, or -1 with
 * "<path>: <strerror>" in msg; after a failure the caller discards. */
int sink_write(sink_file *f, const void *data, size_t n, char *msg,
               size_t msglen);

/* End the output.  commit: flush, close (a failure here, e.g. ENOSPC
 * reported by close, is -1 and the output is discarded) and rename the
 * temporary file over the path.  !commit: close and remove the temporary
 * file.  Frees everything; idempotent; returns 0 or -1 with msg (msglen
 * may be 0 when the caller does not want it). */
int sink_close(sink_file *f, int commit, char *msg, size_t msglen);

#endif
