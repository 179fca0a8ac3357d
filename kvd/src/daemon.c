/*
 * daemon.c - background mode and the pid file (see daemon.h).
 *
 * Classic double fork: the first child calls setsid() to leave the
 * terminal's session, the second (the daemon) can never reacquire a
 * controlling terminal. A pipe carries one status byte from the daemon
 * back to the original process, which waits for it before exiting.
 */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

int kvd_daemon_start(int *notify)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid > 0) {
        /* The original process: wait for the daemon's verdict. */
        close(p[1]);
        waitpid(pid, NULL, 0); /* the first child exits at once */
        char b = 0;
        ssize_t n;
        do
            n = read(p[0], &b, 1);
        while (n < 0 && errno == EINTR);
        _exit(n == 1 && b == '1' ? 0 : 1);
    }
    close(p[0]);
    if (setsid() < 0)
        _exit(1);
    pid = fork();
    if (pid < 0)
        _exit(1);
    if (pid > 0)
        _exit(0);
    if (chdir("/") != 0)
        _exit(1);
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
        dup2(devnull, STDIN_FILENO);
        dup2(devnull, STDOUT_FILENO);
        dup2(devnull, STDERR_FILENO);
        if (devnull > STDERR_FILENO)
            close(devnull);
    }
    *notify = p[1];
    return 0;
}

void kvd_daemon_ready(int notify, int ok)
{
    if (notify < 0)
        return;
    char b = ok ? '1' : '0';
    ssize_t n;
    do
        n = write(notify, &b, 1);
    while (n < 0 && errno == EINTR);
    close(notify);
}

int kvd_pidfile_write(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return errno;
    char buf[32];
    int len = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
    int err = write(fd, buf, (size_t)len) == len ? 0 : (errno ? errno : EIO);
    if (close(fd) != 0 && !err)
        err = errno;
    return err;
}

void kvd_pidfile_remove(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    int pid = 0;
    int ok = fscanf(f, "%d", &pid) == 1;
    fclose(f);
    if (ok && pid == (int)getpid())
        unlink(path);
}
