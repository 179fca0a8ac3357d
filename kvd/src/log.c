/*
 * log.c - leveled, timestamped log lines (see log.h).
 *
 * The level and the stream are set once at startup, before any worker
 * thread exists, and only read afterwards. Each line is formatted into a
 * local buffer and written with one fputs, so concurrent lines stay whole.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static kvd_log_level g_level = KVD_LOG_INFO;
static FILE *g_file; /* NULL: stderr */

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

int kvd_log_open(const char *path)
{
    FILE *f = fopen(path, "ae");
    if (!f)
        return errno;
    setvbuf(f, NULL, _IONBF, 0);
    kvd_log_close();
    g_file = f;
    return 0;
}

void kvd_log_close(void)
{
    if (g_file)
        fclose(g_file);
    g_file = NULL;
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
    line[len] = '\n';
    line[len + 1] = '\0';
    fputs(line, g_file ? g_file : stderr);
}
