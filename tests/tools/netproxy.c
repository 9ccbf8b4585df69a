/*
 * netproxy.c - a tiny TCP proxy for the specs that need a network that
 * fails (tests/faults_net_spec.lua).  Built by `make test`, never
 * installed.
 *
 *   netproxy PORTFILE UPSTREAM [PORT]
 *
 * Listens on 127.0.0.1 (PORT, else a port the kernel picks; written to
 * PORTFILE once it listens: a new proxy can take over the port of one
 * that was cut) and forwards each connection, both ways, to UPSTREAM: a
 * unix socket path (starting with '/') or HOST:PORT.  Signals:
 *
 *   SIGUSR1  go silent: keep every socket open, stop forwarding both ways
 *            and stop accepting (the kernel still completes new
 *            handshakes: a peer that connects waits forever) - a stuck
 *            proxy or middlebox;
 *   SIGUSR2  forward again;
 *   SIGTERM  cut: close every socket and exit.
 *
 * One poll() loop, nonblocking sockets, one buffer per direction: a
 * direction reads only when its buffer is empty and writes only when it
 * is not, so nothing blocks and nothing is lost or reordered.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_PAIRS 64
#define BUF_SIZE 65536

typedef struct dir {
    int from, to;
    char buf[BUF_SIZE];
    size_t len, off;
} dir;

typedef struct pair {
    int used;
    dir d[2]; /* client -> server, server -> client */
} pair;

static pair pairs[MAX_PAIRS];
static volatile sig_atomic_t silent, stop;

static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        silent = 1;
    else if (sig == SIGUSR2)
        silent = 0;
    else
        stop = 1;
}

static void die(const char *what)
{
    perror(what);
    exit(2);
}

static void nonblocking(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static int connect_upstream(const char *up)
{
    int fd;
    if (up[0] == '/') {
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        snprintf(a.sun_path, sizeof a.sun_path, "%s", up);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
            goto fail;
    } else {
        char host[256];
        snprintf(host, sizeof host, "%s", up);
        char *colon = strrchr(host, ':');
        if (!colon)
            return -1;
        *colon = '\0';
        struct sockaddr_in a = { .sin_family = AF_INET,
                                 .sin_port = htons((unsigned short)atoi(colon + 1)) };
        if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
            return -1;
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
            goto fail;
    }
    nonblocking(fd);
    return fd;
fail:
    if (fd >= 0)
        close(fd);
    return -1;
}

static void close_pair(pair *p)
{
    close(p->d[0].from);
    close(p->d[0].to);
    p->used = 0;
}

/* Move what can move in direction d; -1 when the pair must close. */
static int pump(dir *d, short rev_from, short rev_to)
{
    if (d->len == 0 && (rev_from & (POLLIN | POLLHUP | POLLERR))) {
        ssize_t n = read(d->from, d->buf, sizeof d->buf);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            return -1;
        if (n > 0) {
            d->len = (size_t)n;
            d->off = 0;
        }
    }
    if (d->len > 0 && (rev_to & (POLLOUT | POLLERR | POLLHUP))) {
        ssize_t n = write(d->to, d->buf + d->off, d->len);
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return -1;
        if (n > 0) {
            d->off += (size_t)n;
            d->len -= (size_t)n;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: netproxy PORTFILE UPSTREAM [PORT]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (lfd < 0)
        die("socket");
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (argc == 4)
        a.sin_port = htons((unsigned short)atoi(argv[3]));
    socklen_t alen = sizeof a;
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 16) != 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &alen) != 0)
        die("listen");
    nonblocking(lfd);
    /* the port appears whole or not at all */
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", argv[1]);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%d\n", ntohs(a.sin_port)) < 0 || fclose(f) != 0 ||
        rename(tmp, argv[1]) != 0)
        die(argv[1]);

    while (!stop) {
        struct pollfd pf[1 + 2 * MAX_PAIRS];
        int idx[MAX_PAIRS], n = 0;
        pf[n++] = (struct pollfd){ lfd, silent ? 0 : POLLIN, 0 };
        for (int i = 0; i < MAX_PAIRS; i++) {
            pair *p = &pairs[i];
            idx[i] = -1;
            if (!p->used)
                continue;
            idx[i] = n;
            /* fd of side 0 (client), then side 1 (server) */
            for (int s = 0; s < 2; s++) {
                short ev = 0;
                if (!silent) {
                    if (p->d[s].len == 0)
                        ev |= POLLIN;      /* s reads into d[s] */
                    if (p->d[1 - s].len > 0)
                        ev |= POLLOUT;     /* s writes d[1-s] */
                }
                pf[n++] = (struct pollfd){ p->d[s].from, ev, 0 };
            }
        }
        if (poll(pf, (nfds_t)n, 100) < 0 && errno != EINTR)
            die("poll");
        if (stop)
            break;
        if (silent)
            continue; /* hold everything as it is */
        if (pf[0].revents & POLLIN) {
            int c = accept(lfd, NULL, NULL);
            if (c >= 0) {
                int u = connect_upstream(argv[2]);
                int slot = -1;
                for (int i = 0; i < MAX_PAIRS && slot < 0; i++)
                    if (!pairs[i].used)
                        slot = i;
                if (u < 0 || slot < 0) {
                    close(c);
                    if (u >= 0)
                        close(u);
                } else {
                    nonblocking(c);
                    pair *p = &pairs[slot];
                    memset(p, 0, sizeof *p);
                    p->used = 1;
                    p->d[0].from = c;
                    p->d[0].to = u;
                    p->d[1].from = u;
                    p->d[1].to = c;
                }
            }
        }
        for (int i = 0; i < MAX_PAIRS; i++) {
            pair *p = &pairs[i];
            if (!p->used || idx[i] < 0)
                continue;
            short r0 = pf[idx[i]].revents, r1 = pf[idx[i] + 1].revents;
            if (pump(&p->d[0], r0, r1) < 0 || pump(&p->d[1], r1, r0) < 0)
                close_pair(p);
        }
    }
    for (int i = 0; i < MAX_PAIRS; i++)
        if (pairs[i].used)
            close_pair(&pairs[i]);
    close(lfd);
    return 0;
}
