/*
 * log.c - leveled, timestamped log lines (see log.h).
 *
 * The level and the descriptor are set once at startup, before any worker
 * thread exists, and only read afterwards. Each line is formatted into a
 * local buffer and written with one write(2), so concurrent lines stay
 * whole. Reopening (SIGHUP, for logrotate) opens the path anew and dup2()s
 * it onto the same descriptor number: dup2 replaces it atomically, so a
 * thread writing at that moment writes to the old file or the new one,
 * never to a closed descriptor.
 */
#include "log.h"

#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static kvd_log_level g_level = KVD_LOG_INFO;
static _Atomic int g_mirror = -1; /* ERROR lines also go here (daemon start-up) */
static int g_fd = -1; /* -1: stderr */
static char *g_path;  /* for kvd_log_reopen() */

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

int kvd_log_parse_level(const char *name)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    if (strcmp(name, "warning") == 0)
        return KVD_LOG_WARN;
    return -1;
}

void kvd_log_set_level(kvd_log_level level)
{
    g_level = level;
}

static int open_log(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

int kvd_log_open(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return ENOMEM;
    int fd = open_log(path);
    if (fd < 0) {
        int err = errno;
        free(copy);
        return err;
    }
    kvd_log_close();
    g_fd = fd;
    g_path = copy;
    return 0;
}

int kvd_log_reopen(void)
{
    if (g_fd < 0)
        return 0;
    int fd = open_log(g_path);
    if (fd < 0)
        return errno;
    int err = dup3(fd, g_fd, O_CLOEXEC) < 0 ? errno : 0;
    close(fd);
    return err;
}

void kvd_log_close(void)
{
    if (g_fd >= 0)
        close(g_fd);
    g_fd = -1;
    free(g_path);
    g_path = NULL;
}

static _Atomic int g_syslog;

void kvd_log_set_syslog(int on)
{
    if (on && !atomic_load(&g_syslog))
        openlog("kvd", LOG_PID, LOG_DAEMON);
    else if (!on && atomic_load(&g_syslog))
        closelog();
    atomic_store(&g_syslog, on);
}

int kvd_log_fd(void)
{
    return g_fd >= 0 ? g_fd : STDERR_FILENO;
}

void kvd_log_set_mirror(int fd)
{
    atomic_store(&g_mirror, fd);
}

int kvd_log_enabled(kvd_log_level level)
{
    return level >= g_level;
}

void kvd_log(kvd_log_level level, const char *fmt, ...)
{
    if (level < g_level)
        return;
    char line[1024];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof line,
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ kvd[%d] %-5s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000),
                     (int)getpid(), level_names[level]);
    if (n < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = strlen(line);
    line[len++] = '\n';
    ssize_t w;
    do
        w = write(g_fd >= 0 ? g_fd : STDERR_FILENO, line, len);
    while (w < 0 && errno == EINTR);
    if (atomic_load(&g_syslog)) {
        static const int prio[] = {LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR};
        syslog(prio[level], "%.*s", (int)(len - 1 - (size_t)n), line + n);
    }
    int mirror = atomic_load(&g_mirror);
    if (mirror >= 0 && level == KVD_LOG_ERROR) {
        /* "kvd: error: <text>\n", for the terminal that started a daemon */
        char out[1100];
        int m = snprintf(out, sizeof out, "kvd: error: %.*s", (int)(len - (size_t)n), line + n);
        if (m > 0) {
            do
                w = write(mirror, out, (size_t)m < sizeof out ? (size_t)m : sizeof out - 1);
            while (w < 0 && errno == EINTR);
        }
    }
}
