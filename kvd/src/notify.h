/*
 * notify.h - telling a service manager how kvd is doing: systemd's
 * sd_notify protocol (Type=notify units), through libsystemd.
 *
 * kvd sends READY=1 once it listens (after recovering --data-dir),
 * STATUS= lines a person reads in `systemctl status kvd`, RELOADING=1 /
 * READY=1 around SIGHUP and STOPPING=1 when a stop begins. Without
 * $NOTIFY_SOCKET (not started by systemd) every call is a no-op. libsystemd
 * is optional at build time: without it the calls are no-ops too, and
 * kvd_notify_init() warns if a manager is waiting for a READY=1 that will
 * never come.
 */
#ifndef KVD_NOTIFY_H
#define KVD_NOTIFY_H

/* 1 if this kvd was built with libsystemd (notifications work). */
int kvd_notify_supported(void);

/* Checks $NOTIFY_SOCKET once, at start (main thread, before other
 * threads). Returns 1 if notifications will be sent. */
int kvd_notify_init(void);

/* 1 if kvd_notify_init() found a manager to notify. */
int kvd_notify_active(void);

/* Sends one notification: newline-separated VARIABLE=value assignments
 * (printf format), e.g. "READY=1\nSTATUS=serving". Any thread may call
 * it. Failures are logged once and otherwise ignored: the manager's own
 * timeouts deal with a kvd it cannot hear. */
void kvd_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* RELOADING=1 with the MONOTONIC_USEC= that newer systemd versions ask
 * for; READY=1 (with a STATUS=) ends the reload. */
void kvd_notify_reloading(void);

#endif /* KVD_NOTIFY_H */
