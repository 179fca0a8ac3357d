/*
 * daemon.c - background mode and the pid file (see daemon.h).
 *
 * Classic double fork: the first child calls setsid() to leave the
 * terminal's session, the second (the daemon) can never reacquire a
 * controlling terminal. A pipe carries the daemon's start-up errors (as
 * text lines, see kvd_log_set_mirror) and then one status byte back to
 * the original process, which copies the lines to its stderr and exits
 * with the status once the pipe closes.
 *
 * The pid file is locked with flock() for the whole life of the server
 * (the lock belongs to the open file description, so it passes from the
 * starting process to the daemon across fork). The lock, not the pid in
 * the file, says whether a kvd is running: a stale file from a crash is
 * simply taken over, and a kvd that finds it locked never touches it.
 */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
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
        char buf[4096];
        size_t have = 0;
        for (;;) {
            ssize_t n = read(p[0], buf + have, sizeof buf - have);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            have += (size_t)n;
            if (have == sizeof buf) { /* keep the last byte: the status */
                ssize_t w = write(STDERR_FILENO, buf, have - 1);
                (void)w;
                buf[0] = buf[have - 1];
                have = 1;
            }
        }
        char status = have > 0 ? buf[have - 1] : 0;
        int ok = status == '1';
        if (status == '0' || status == '1')
            have--;
        if (have > 0) {
            ssize_t w = write(STDERR_FILENO, buf, have);
            (void)w;
        }
        if (!ok && status != '0')
            fprintf(stderr, "kvd: error: the daemon exited before it was serving\n");
        _exit(ok ? 0 : 1);
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

int kvd_pidfile_lock(const char *path, int *fd_out, int *holder)
{
    *holder = 0;
    for (int attempt = 0; attempt < 16; attempt++) {
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            return errno;
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int err = errno;
            if (err == EWOULDBLOCK) {
                char buf[32] = {0};
                if (pread(fd, buf, sizeof buf - 1, 0) > 0)
                    *holder = atoi(buf);
            }
            close(fd);
            return err;
        }
        /* A kvd stopping at this moment may have unlinked the file we
         * opened: then our lock is on a name nobody sees. Try again. */
        struct stat a, b;
        if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
            a.st_ino == b.st_ino) {
            *fd_out = fd;
            return 0;
        }
        close(fd);
    }
    return EAGAIN;
}

int kvd_pidfile_write(int fd)
{
    char buf[32];
    int len = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
    if (ftruncate(fd, 0) != 0)
        return errno;
    ssize_t n = pwrite(fd, buf, (size_t)len, 0);
    return n == len ? 0 : (n < 0 ? errno : EIO);
}

void kvd_pidfile_remove(const char *path, int fd)
{
    /* Still holding the lock: nobody else can have taken the name, unless
     * it was replaced by hand; then it is not ours to remove. */
    struct stat a, b;
    if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
        unlink(path);
    close(fd);
}
