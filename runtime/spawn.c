/*
 * spawn.c - fork/exec of the throwaway servers' programs (see spawn.h).
 *
 * Caveats: PR_SET_PDEATHSIG fires when the *thread* that forked exits, not
 * the process, so spawn from a long-lived thread; it is set after setuid()
 * because credential changes clear it, and followed by a getppid() check
 * because the parent may have died before prctl() ran.  Signal mask and
 * ignored signals survive exec, so the child resets them.
 */
#define _GNU_SOURCE

#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

long spawn_elapsed_ms(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long)(now.tv_sec - since->tv_sec) * 1000L +
           (long)(now.tv_nsec - since->tv_nsec) / 1000000L;
}

void spawn_sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    /* an EINTR just shortens one poll interval; callers loop on a deadline */
    nanosleep(&ts, NULL);
}

pid_t spawn_wait(pid_t pid, int *status, int flags)
{
    pid_t r;
    do
        r = waitpid(pid, status, flags);
    while (r < 0 && errno == EINTR);
    return r;
}



static void child_write(int fd, const char *s)
{
    ssize_t r = write(fd, s, strlen(s));
    (void)r;
}

static _Noreturn void child_fail(int fd, const char *what, const char *arg, int e)
{
    /* strerrordesc_np, unlike strerror, neither translates nor allocates */
    const char *msg = strerrordesc_np(e);
    child_write(fd, "sluice tmpdb: ");
    child_write(fd, what);
    if (arg) {
        child_write(fd, " ");
        child_write(fd, arg);
    }
    child_write(fd, ": ");
    child_write(fd, msg ? msg : "unknown error");
    child_write(fd, "\n");
    _exit(127);
}

/* Runs in the forked child: async-signal-safe calls only. */
static _Noreturn void run_child(const spawn_spec *c)
{
    int err_fd = c->log_fd;
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &dfl, NULL); /* EINVAL for libc-reserved ones */

    if (c->own_process_group)
        setpgid(0, 0);

    if (dup2(c->log_fd, STDOUT_FILENO) < 0 || dup2(c->log_fd, STDERR_FILENO) < 0)
        child_fail(err_fd, "could not redirect output to the log", NULL, errno);
    err_fd = STDERR_FILENO;
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull < 0)
        child_fail(err_fd, "could not open", "/dev/null", errno);
    if (devnull != STDIN_FILENO) {
        if (dup2(devnull, STDIN_FILENO) < 0)
            child_fail(err_fd, "could not redirect stdin", NULL, errno);
        close(devnull);
    }
    if (close_range(3, ~0U, 0) != 0)
        for (long fd = 3; fd < c->max_fd; fd++)
            close((int)fd);

    if (chdir(c->cwd) != 0)
        child_fail(err_fd, "could not change directory to", c->cwd, errno);

    if (c->drop_privileges) {
        if (setgroups((size_t)c->ngroups, c->groups) != 0)
            child_fail(err_fd, "setgroups for the postgres user failed", NULL, errno);
        if (setgid(c->gid) != 0)
            child_fail(err_fd, "setgid to the postgres user failed", NULL, errno);
        if (setuid(c->uid) != 0)
            child_fail(err_fd, "setuid to the postgres user failed", NULL, errno);
    }

    /* after setuid: changing credentials resets the death signal */
    if (prctl(PR_SET_PDEATHSIG, c->pdeathsig, 0, 0, 0) != 0)
        child_fail(err_fd, "prctl(PR_SET_PDEATHSIG) failed", NULL, errno);
    if (getppid() != c->parent) {
        child_write(err_fd, "sluice tmpdb: the starting process is gone, not starting\n");
        _exit(127);
    }

    execv(c->path, c->argv);
    child_fail(err_fd, "could not execute", c->path, errno);
}

/* Log files are opened by the parent (as root if we are root), so the
 * child's error messages land in them even when the postgres user could not
 * create files there.  Kept above 2 so dup2() in the child never sees the
 * same fd on both sides (which would leave close-on-exec set). */
int spawn_open_log(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0 && fd < 3) {
        int high = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        int saved = errno;
        close(fd);
        errno = saved;
        fd = high;
    }
    return fd;
}

void spawn_describe_status(int st, char *out, size_t outlen)
{
    if (WIFEXITED(st))
        snprintf(out, outlen, "exit %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(out, outlen, "killed by signal %d, %s", WTERMSIG(st),
                 strsignal(WTERMSIG(st)));
    else
        snprintf(out, outlen, "status 0x%x", (unsigned)st);
}

pid_t spawn_child(const spawn_spec *c, char *err, size_t errlen,
                  const char *what)
{
    pid_t pid = fork();
    if (pid == 0)
        run_child(c);
    if (pid < 0 && err && errlen)
        snprintf(err, errlen, "could not fork for %s: %s", what, strerror(errno));
    return pid;
}
