/*
 * workers.c - worker processes and their framed channels (workers.h).
 *
 * Why socket pairs, not pipes: one descriptor per child carries both
 * directions, and send(MSG_NOSIGNAL) turns a dead peer into EPIPE rather
 * than a SIGPIPE that would kill the parent (or a child) outright.
 *
 * Caveats:
 * - The parent reads without blocking (MSG_DONTWAIT) into a buffer per
 *   child and hands out whole frames; it writes blocking, which cannot
 *   deadlock with the protocol built on this (a child is sent work only
 *   after asking for it, and then waits in recv).
 * - A child is reaped when its channel reaches end of file: it closed it
 *   only by ending.  If it has not ended a second later (it closed the
 *   descriptor by hand), it is killed, so the parent never hangs on it.
 */
#include "workers.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void put_le32(unsigned char *b, uint32_t v)
{
    b[0] = (unsigned char)v;
    b[1] = (unsigned char)(v >> 8);
    b[2] = (unsigned char)(v >> 16);
    b[3] = (unsigned char)(v >> 24);
}

static uint32_t get_le32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
           (uint32_t)b[3] << 24;
}

/* Write all of p (blocking), retrying on EINTR.  0 or -1. */
static int send_all(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n > 0) {
        ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                struct pollfd pf = { fd, POLLOUT, 0 };
                poll(&pf, 1, 100);
                continue;
            }
            return -1;
        }
        s += k;
        n -= (size_t)k;
    }
    return 0;
}

static int send_frame(int fd, int type, const void *p, size_t n)
{
    if (n >= WORKERS_MAX_FRAME) {
        errno = EMSGSIZE;
        return -1;
    }
    unsigned char h[5];
    put_le32(h, (uint32_t)(n + 1));
    h[4] = (unsigned char)type;
    if (send_all(fd, h, sizeof h) < 0)
        return -1;
    return n ? send_all(fd, p, n) : 0;
}

static void reap(workers_child *c, int block_ms)
{
    if (c->reaped || c->pid <= 0)
        return;
    long long until = now_ms() + block_ms;
    for (;;) {
        int st;
        pid_t r = waitpid(c->pid, &st, WNOHANG);
        if (r == c->pid) {
            c->status = st;
            c->reaped = 1;
            return;
        }
        if (r < 0 && errno != EINTR) {
            /* not ours any more (reaped elsewhere): call it killed */
            c->status = SIGKILL;
            c->reaped = 1;
            return;
        }
        if (now_ms() >= until) {
            kill(c->pid, SIGKILL);
            until = now_ms() + 60000;
            block_ms = -1;
        }
        sleep_ms(5);
    }
}

static void close_child(workers_child *c)
{
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
}

int workers_fork(workers *w, int n, int *child_fd, char *err, size_t cap)
{
    if (n < 1 || n > WORKERS_MAX) {
        snprintf(err, cap, "jobs must be from 1 to %d, got %d", WORKERS_MAX,
                 n);
        return -1;
    }
    w->c = calloc((size_t)n, sizeof *w->c);
    if (!w->c) {
        snprintf(err, cap, "out of memory");
        return -1;
    }
    w->n = n;
    w->parent = getpid();
    for (int k = 0; k < n; k++)
        w->c[k].fd = -1;
    for (int k = 0; k < n; k++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
            snprintf(err, cap, "cannot make a channel for worker %d: %s",
                     k + 1, strerror(errno));
            workers_stop(w, 0);
            return -1;
        }
        pid_t pid = fork();
        if (pid < 0) {
            snprintf(err, cap, "cannot start worker %d: %s", k + 1,
                     strerror(errno));
            close(sv[0]);
            close(sv[1]);
            workers_stop(w, 0);
            return -1;
        }
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (getppid() != w->parent)
                _exit(1); /* the parent died before the line above */
            close(sv[0]);
            for (int j = 0; j < k; j++)
                close_child(&w->c[j]);
            free(w->c);
            memset(w, 0, sizeof *w);
            *child_fd = sv[1];
            return k + 1;
        }
        close(sv[1]);
        w->c[k].pid = pid;
        w->c[k].fd = sv[0];
    }
    return 0;
}

/* A whole frame at the start of c's buffer: fill ev and consume it. */
static int take_frame(workers_child *c, int k, workers_event *ev)
{
    size_t avail = c->in_len - c->in_used;
    if (avail < 5)
        return 0;
    const unsigned char *b = (const unsigned char *)c->in + c->in_used;
    uint32_t n = get_le32(b);
    if (n < 1 || avail < 4 + (size_t)n)
        return 0;
    ev->kind = WORKERS_MESSAGE;
    ev->index = k + 1;
    ev->type = b[4];
    ev->data = (const char *)b + 5;
    ev->len = n - 1;
    c->in_used += 4 + (size_t)n;
    return 1;
}

/* Make room for more bytes in c's buffer (dropping consumed ones). */
static int make_room(workers_child *c, size_t want)
{
    if (c->in_used > 0 && c->in_used == c->in_len) {
        c->in_used = c->in_len = 0;
    }
    if (c->in_cap - c->in_len >= want)
        return 0;
    if (c->in_used > 0) {
        memmove(c->in, c->in + c->in_used, c->in_len - c->in_used);
        c->in_len -= c->in_used;
        c->in_used = 0;
        if (c->in_cap - c->in_len >= want)
            return 0;
    }
    size_t cap = c->in_cap ? c->in_cap : 65536;
    while (cap - c->in_len < want)
        cap *= 2;
    char *p = realloc(c->in, cap);
    if (!p)
        return -1;
    c->in = p;
    c->in_cap = cap;
    return 0;
}

static void exit_event(workers_child *c, int k, workers_event *ev)
{
    ev->kind = WORKERS_EXIT;
    ev->index = k + 1;
    if (WIFSIGNALED(c->status)) {
        ev->exit_code = -1;
        ev->signal = WTERMSIG(c->status);
    } else if (WIFEXITED(c->status)) {
        ev->exit_code = WEXITSTATUS(c->status);
        ev->signal = 0;
    } else {
        ev->exit_code = -1;
        ev->signal = c->status; /* reap() gave up: SIGKILL */
    }
}

int workers_poll(workers *w, int timeout_ms, workers_event *ev, char *err,
                 size_t cap)
{
    memset(ev, 0, sizeof *ev);
    long long until = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    for (;;) {
        /* frames already here first, round-robin over the children */
        for (int i = 0; i < w->n; i++) {
            int k = (w->next + i) % w->n;
            if (take_frame(&w->c[k], k, ev)) {
                w->next = (k + 1) % w->n;
                return ev->kind;
            }
        }
        struct pollfd pf[WORKERS_MAX];
        int idx[WORKERS_MAX], np = 0;
        for (int k = 0; k < w->n; k++) {
            if (w->c[k].fd >= 0) {
                pf[np].fd = w->c[k].fd;
                pf[np].events = POLLIN;
                pf[np].revents = 0;
                idx[np++] = k;
            }
        }
        if (np == 0) {
            ev->kind = WORKERS_NONE;
            return ev->kind;
        }
        int wait = -1;
        if (until >= 0) {
            long long left = until - now_ms();
            wait = left < 0 ? 0 : (int)left;
        }
        int r = poll(pf, (nfds_t)np, wait);
        if (r < 0) {
            if (errno == EINTR) {
                ev->kind = WORKERS_INTERRUPTED;
                return ev->kind;
            }
            snprintf(err, cap, "poll: %s", strerror(errno));
            return -1;
        }
        if (r == 0) {
            ev->kind = WORKERS_TIMEOUT;
            return ev->kind;
        }
        for (int i = 0; i < np; i++) {
            if (!pf[i].revents)
                continue;
            int k = idx[i];
            workers_child *c = &w->c[k];
            if (make_room(c, 65536) < 0) {
                snprintf(err, cap, "out of memory");
                return -1;
            }
            ssize_t got = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len,
                               MSG_DONTWAIT);
            if (got > 0) {
                c->in_len += (size_t)got;
                size_t avail = c->in_len - c->in_used;
                if (avail >= 4) {
                    uint32_t fl = get_le32((const unsigned char *)c->in +
                                           c->in_used);
                    if (fl > WORKERS_MAX_FRAME) {
                        snprintf(err, cap, "worker %d sent a malformed "
                                 "message", k + 1);
                        return -1;
                    }
                    if (make_room(c, 4 + (size_t)fl) < 0) {
                        snprintf(err, cap, "out of memory");
                        return -1;
                    }
                }
                continue;
            }
            if (got < 0 && (errno == EINTR || errno == EAGAIN ||
                            errno == EWOULDBLOCK))
                continue;
            /* end of file (or a reset): the child ended */
            close_child(c);
            reap(c, 1000);
            c->in_len = c->in_used = 0;
            exit_event(c, k, ev);
            return ev->kind;
        }
    }
}

int workers_send(workers *w, int k, int type, const void *p, size_t n)
{
    if (k < 1 || k > w->n || w->c[k - 1].fd < 0)
        return -1;
    return send_frame(w->c[k - 1].fd, type, p, n);
}

void workers_signal(workers *w, int sig)
{
    for (int k = 0; k < w->n; k++)
        if (w->c[k].pid > 0 && !w->c[k].reaped)
            kill(w->c[k].pid, sig);
}

int workers_running(const workers *w)
{
    int n = 0;
    for (int k = 0; k < w->n; k++)
        if (w->c[k].pid > 0 && !w->c[k].reaped)
            n++;
    return n;
}

int workers_stop(workers *w, int grace_ms)
{
    if (!w->c)
        return 0;
    workers_signal(w, SIGTERM);
    long long until = now_ms() + grace_ms;
    for (;;) {
        int left = 0;
        for (int k = 0; k < w->n; k++) {
            workers_child *c = &w->c[k];
            if (c->pid <= 0 || c->reaped)
                continue;
            int st;
            pid_t r = waitpid(c->pid, &st, WNOHANG);
            if (r == c->pid || (r < 0 && errno == ECHILD)) {
                c->status = r == c->pid ? st : SIGKILL;
                c->reaped = 1;
            } else {
                left++;
            }
        }
        if (left == 0)
            return 0;
        if (now_ms() >= until)
            break;
        sleep_ms(10);
    }
    int killed = 0;
    for (int k = 0; k < w->n; k++) {
        workers_child *c = &w->c[k];
        if (c->pid > 0 && !c->reaped) {
            kill(c->pid, SIGKILL);
            killed++;
            reap(c, 60000);
        }
    }
    return killed;
}

void workers_release(workers *w)
{
    if (!w->c)
        return;
    if (w->parent == getpid() && workers_running(w) > 0)
        workers_stop(w, 0);
    for (int k = 0; k < w->n; k++) {
        close_child(&w->c[k]);
        free(w->c[k].in);
    }
    free(w->c);
    memset(w, 0, sizeof *w);
}

int workers_child_send(int fd, int type, const void *p, size_t n)
{
    return send_frame(fd, type, p, n);
}

/* Read exactly n bytes.  1, 0 at end of file before any byte, -1. */
static int recv_all(int fd, void *p, size_t n)
{
    char *s = p;
    size_t got = 0;
    while (got < n) {
        ssize_t k = recv(fd, s + got, n - got, 0);
        if (k == 0) {
            if (got == 0)
                return 0;
            errno = EPIPE;
            return -1;
        }
        if (k < 0) {
            if (errno == EINTR && got > 0)
                continue; /* the frame is half read: finish it */
            return -1;
        }
        got += (size_t)k;
    }
    return 1;
}

int workers_child_recv(int fd, int *type, char **data, size_t *len)
{
    unsigned char h[5];
    *data = NULL;
    *len = 0;
    int r = recv_all(fd, h, 4);
    if (r <= 0)
        return r;
    uint32_t n = get_le32(h);
    if (n < 1 || n > WORKERS_MAX_FRAME) {
        errno = EPROTO;
        return -1;
    }
    for (;;) {
        r = recv_all(fd, h + 4, 1);
        if (r == 1)
            break;
        if (r < 0 && errno == EINTR)
            continue; /* mid-frame: finish it */
        if (r == 0)
            errno = EPIPE;
        return -1;
    }
    *type = h[4];
    char *p = malloc(n);
    if (!p) {
        errno = ENOMEM;
        return -1;
    }
    if (n > 1) {
        for (;;) {
            r = recv_all(fd, p, n - 1);
            if (r == 1)
                break;
            if (r < 0 && errno == EINTR)
                continue;
            free(p);
            if (r == 0)
                errno = EPIPE;
            return -1;
        }
    }
    *data = p;
    *len = n - 1;
    return 1;
}
