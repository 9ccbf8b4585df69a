/*
 * spawn.h - child processes for the throwaway servers (tmpdb.c).
 *
 * Provides: spawn_child() forks and execs one program with its output in a
 * log file, optionally as another user, in its own process group, with a
 * parent-death signal; spawn_open_log() opens that log; spawn_wait() is
 * waitpid() retried on EINTR; spawn_describe_status() turns a wait status
 * into words; spawn_sleep_ms() and spawn_elapsed_ms() are the polling
 * clock the callers wait with.
 *
 * Uses: fork, execv, prctl(PR_SET_PDEATHSIG), close_range.  Between fork()
 * and exec() the child calls async-signal-safe functions only, so every
 * input (paths, argv, the group list) is computed by the caller first.
 *
 * Knows nothing about Lua or PostgreSQL.
 */
#ifndef SLUICE_SPAWN_H
#define SLUICE_SPAWN_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

typedef struct spawn_spec {
    const char *path;       /* absolute path of the program (no $PATH search) */
    char *const *argv;
    int log_fd;             /* >= 3 (spawn_open_log), becomes stdout and stderr */
    const char *cwd;
    int drop_privileges;    /* nonzero: setgroups/setgid/setuid below */
    uid_t uid;
    gid_t gid;
    const gid_t *groups;
    int ngroups;
    int pdeathsig;          /* sent to the child when the forking thread dies */
    pid_t parent;           /* getpid() of the caller: the child checks it */
    int own_process_group;  /* nonzero: setpgid(0, 0), away from the tty's SIGINT */
    long max_fd;            /* fds 3..max_fd are closed where close_range fails */
} spawn_spec;

/* Fork and exec c.  Returns the child's pid, or -1 with "could not fork for
 * <what>: <reason>" in err.  The child writes why it could not exec into the
 * log and exits 127.  Never raises. */
pid_t spawn_child(const spawn_spec *c, char *err, size_t errlen,
                  const char *what);

/* Open (create, truncate) a log file for a child: close-on-exec, and never
 * fd 0-2.  Returns the fd or -1 with errno set. */
int spawn_open_log(const char *path);

/* waitpid() retried on EINTR. */
pid_t spawn_wait(pid_t pid, int *status, int flags);

/* "exit 1", "killed by signal 9, Killed", ... into out. */
void spawn_describe_status(int st, char *out, size_t outlen);

/* Sleep ms milliseconds (an EINTR just shortens it). */
void spawn_sleep_ms(long ms);

/* Milliseconds since *since (CLOCK_MONOTONIC). */
long spawn_elapsed_ms(const struct timespec *since);

#endif
