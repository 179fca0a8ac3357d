/*
 * daemon.h - --daemonize and --pidfile.
 *
 * The foreground process waits until the daemon says it is serving (or
 * failed), so `kvd --daemonize` exits 0 only once the port is bound, and
 * with 1 if the daemon could not start.
 */
#ifndef KVD_DAEMON_H
#define KVD_DAEMON_H

/* Double fork + setsid, chdir("/"), stdio to /dev/null. Returns in the
 * daemon only, with *notify set for kvd_daemon_ready(); the original
 * process exits there. Returns -1 (in the original process) on failure.
 * Call before any thread exists. */
int kvd_daemon_start(int *notify);

/* The start-up errors logged before kvd_daemon_ready() reach the
 * foreground process's stderr when main() passes notify to
 * kvd_log_set_mirror().
 *
 * Tells the waiting foreground process the outcome (ok: 1 serving,
 * 0 failed) and closes notify. */
void kvd_daemon_ready(int notify, int ok);

/* Opens (creating) the pid file at path and takes its lock, without
 * writing. Returns 0 with *fd_out set (keep it open while serving; it
 * survives kvd_daemon_start()), EWOULDBLOCK if another process holds the
 * lock (*holder: the pid it wrote, 0 if unreadable), or an errno value.
 * On failure the file is left as it was. */
int kvd_pidfile_lock(const char *path, int *fd_out, int *holder);

/* Writes our pid into the locked file fd. Returns 0 or an errno value. */
int kvd_pidfile_write(int fd);

/* Removes path if it is still the file locked by fd, then closes fd. */
void kvd_pidfile_remove(const char *path, int fd);

#endif /* KVD_DAEMON_H */
