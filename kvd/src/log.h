/*
 * log.h - kvd's leveled logger: one line per message, ISO-8601 UTC
 * timestamp, level and text, to stderr or a file (--log-file).
 *
 * Any thread may log. A line is written with one write(2), so lines from different threads never interleave. Logging is not
 * on the request path (only connection events and errors are logged).
 */
#ifndef KVD_LOG_H
#define KVD_LOG_H

typedef enum kvd_log_level {
    KVD_LOG_DEBUG = 0,
    KVD_LOG_INFO = 1,
    KVD_LOG_WARN = 2,
    KVD_LOG_ERROR = 3
} kvd_log_level;

/* "debug", "info", "warn", "error" -> level; -1 if unknown. */
int kvd_log_parse_level(const char *name);

/* Sets the minimum level (default info). Call before threads start. */
void kvd_log_set_level(kvd_log_level level);

/* Sends lines to path (appending) instead of stderr. Returns 0 or an
 * errno value. Call before threads start. */
int kvd_log_open(const char *path);

/* Opens the --log-file path again (after logrotate renamed the file) and
 * sends later lines there. Any thread may call it; lines being written at
 * the same time go whole to the old file or the new one. Returns 0 (also
 * when logging to stderr) or an errno value; on failure lines keep going
 * to the old file. */
int kvd_log_reopen(void);

/* The descriptor lines go to now (a crash report writes to it; it
 * stays the same across kvd_log_reopen()). */
int kvd_log_fd(void);

/* Closes a file opened by kvd_log_open(); later lines go to stderr. */
void kvd_log_close(void);

/* Also sends every line to syslog(3) (LOG_DAEMON, ident "kvd", the
 * line's level as priority), or stops doing so. */
void kvd_log_set_syslog(int on);

/* While fd >= 0, ERROR lines are also written to fd as "kvd: error: TEXT"
 * (kvd --daemonize sends them to the terminal it started from until it
 * serves). -1 stops it. Any thread may call it; the caller keeps fd open
 * until after it set -1. */
void kvd_log_set_mirror(int fd);
/* 1 if a message of this level would be written. */
int kvd_log_enabled(kvd_log_level level);

void kvd_log(kvd_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define kvd_debug(...) \
    do { if (kvd_log_enabled(KVD_LOG_DEBUG)) kvd_log(KVD_LOG_DEBUG, __VA_ARGS__); } while (0)
#define kvd_info(...) kvd_log(KVD_LOG_INFO, __VA_ARGS__)
#define kvd_warn(...) kvd_log(KVD_LOG_WARN, __VA_ARGS__)
#define kvd_error(...) kvd_log(KVD_LOG_ERROR, __VA_ARGS__)

#endif /* KVD_LOG_H */
