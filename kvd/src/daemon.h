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

/* Tells the waiting foreground process the outcome (ok: 1 serving,
 * 0 failed) and closes notify. */
void kvd_daemon_ready(int notify, int ok);

/* Writes our pid to path. Returns 0 or an errno value. */
int kvd_pidfile_write(const char *path);

/* Removes path if it still holds our pid. */
void kvd_pidfile_remove(const char *path);

#endif /* KVD_DAEMON_H */
