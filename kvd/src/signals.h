/*
 * signals.h - how kvd hears SIGINT, SIGTERM and SIGHUP: blocked in every
 * thread and read from a signalfd by the acceptor loop, never by an
 * asynchronous handler (signals.c says why).
 */
#ifndef KVD_SIGNALS_H
#define KVD_SIGNALS_H

#include <uv.h>

/* Called once by main() before any thread exists (after daemonizing):
 * blocks the three signals, which every later thread inherits, and until
 * kvd_signals_listen() lets a SIGINT or SIGTERM end the process at once,
 * as it would without kvd's handling (a stop during a long recovery).
 * Returns 0, or an errno. */
int kvd_signals_init(void);

/* on_stop: the first SIGINT or SIGTERM (a second one ends the process at
 * once, by that signal). on_hup: every SIGHUP. Both run on `loop`. The
 * handle keeps the loop alive until the first stop signal. */
typedef void (*kvd_signal_cb)(void *arg, int signum);
int kvd_signals_listen(uv_loop_t *loop, kvd_signal_cb on_stop, kvd_signal_cb on_hup, void *arg);

/* Closes the loop's handle (the loop must then run once to finish it);
 * a SIGHUP after this stays pending and does nothing. */
void kvd_signals_close(void);

/* After the loop is closed: releases the signalfd. */
void kvd_signals_end(void);

#endif
