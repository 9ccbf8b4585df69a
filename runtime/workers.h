/*
 * workers.h - N worker processes forked from this one, each with a
 * two-way channel of framed messages to the parent.
 *
 * Provides: workers_fork() (one socket pair per child: the child writes
 * progress, results and errors, the parent deals work), the parent's
 * event loop (workers_poll: the next whole message of any child, or a
 * child's end with its exit status or signal), workers_send(),
 * workers_signal(), workers_stop() (ask, wait a bounded time, then
 * SIGKILL) and workers_release(); the child's side: workers_child_send()
 * and workers_child_recv().
 *
 * A frame is a 4-byte little-endian length n (type byte included), one
 * type byte, then n - 1 payload bytes.  Sends use MSG_NOSIGNAL, so a peer
 * that died makes a send fail with EPIPE instead of killing the sender.
 *
 * A child sets PR_SET_PDEATHSIG (SIGTERM) and then checks getppid(), so
 * it never outlives the parent; it must end with _exit() (never exit():
 * the parent's atexit handlers are not its own).  What a child inherited
 * besides its channel (connections, files) is the caller's business.
 *
 * Uses: fork, socketpair, poll, waitpid, kill, prctl.  Knows nothing
 * about Lua: the binding is lib_workers.c.
 */
#ifndef SLUICE_WORKERS_H
#define SLUICE_WORKERS_H

#include <stddef.h>
#include <sys/types.h>

#define WORKERS_MAX 256
/* The largest payload of one frame. */
#define WORKERS_MAX_FRAME ((size_t)1 << 30)

typedef struct workers_child {
    pid_t pid;        /* 0 once reaped */
    int fd;           /* the parent's end of the channel, -1 once closed */
    int status;       /* waitpid status, valid once reaped */
    int reaped;
    char *in;         /* bytes received, not yet handed out */
    size_t in_len, in_cap, in_used;
} workers_child;

typedef struct workers {
    int n;
    workers_child *c;   /* c[0 .. n) */
    pid_t parent;
    int next;           /* where the next poll starts (fairness) */
} workers;

enum { WORKERS_TIMEOUT = 0, WORKERS_MESSAGE, WORKERS_EXIT,
       WORKERS_INTERRUPTED, WORKERS_NONE };

typedef struct workers_event {
    int kind;            /* WORKERS_MESSAGE, _EXIT (a child ended), _TIMEOUT,
                            _INTERRUPTED (a signal came while waiting),
                            _NONE (no child left) */
    int index;           /* the child, 1 .. n */
    int type;            /* MESSAGE: the frame's type */
    const char *data;    /* MESSAGE: its payload, valid until the next poll */
    size_t len;
    int exit_code;       /* EXIT: the code, or -1 when killed by a signal */
    int signal;          /* EXIT: the signal that killed it, or 0 */
} workers_event;

/* Fork n children (1 <= n <= WORKERS_MAX).  w must be zeroed.  Returns 0
 * in the parent (w describes the children), k (1 .. n) in child k (its
 * channel is *child_fd; every other descriptor of w is closed and w's
 * memory freed), or -1 with a message in err (children already forked are
 * killed and reaped; workers_release() frees the rest). */
int workers_fork(workers *w, int n, int *child_fd, char *err, size_t cap);

/* The parent's next event, waiting up to timeout_ms (-1: no bound).
 * Frames already received come first.  A child whose channel closes is
 * reaped (waited for, up to a second, then killed) and reported as EXIT.
 * Returns the event's kind; -1 on a system error (message in err). */
int workers_poll(workers *w, int timeout_ms, workers_event *ev, char *err,
                 size_t cap);

/* Send one frame to child k (1 .. n), blocking until written.  Returns 0,
 * or -1 (the child is gone, or the channel is closed). */
int workers_send(workers *w, int k, int type, const void *p, size_t n);

/* Send sig to every child still running. */
void workers_signal(workers *w, int sig);

/* The children still running (not reaped). */
int workers_running(const workers *w);

/* Stop every child still running: SIGTERM, then up to grace_ms for them
 * to end, then SIGKILL; every child is reaped when it returns.  Messages
 * still in flight are dropped.  Returns the number that had to be
 * killed. */
int workers_stop(workers *w, int grace_ms);

/* workers_stop(w, 0) when children remain, then close and free all.
 * Idempotent; safe on a zeroed w. */
void workers_release(workers *w);

/* Child side: one frame to the parent / the next frame from it (blocking;
 * *data is malloc'd by the call, the caller frees it).  recv returns 1, 0
 * when the parent closed the channel, -1 on an error (EINTR included:
 * the caller checks its interrupt flag and calls again). */
int workers_child_send(int fd, int type, const void *p, size_t n);
int workers_child_recv(int fd, int *type, char **data, size_t *len);

#endif
