/*
 * signals.c - how kvd hears SIGINT, SIGTERM and SIGHUP.
 *
 * The three are blocked in every thread (main() blocks them before the
 * first thread starts, and threads inherit the mask) and read from a
 * signalfd, which the acceptor loop polls like any other descriptor. No
 * asynchronous handler runs, so it does not matter which thread the
 * kernel would have picked, or what that thread was doing: a worker in a
 * raw futex wait, the log's flusher in fdatasync. (With libuv's signal
 * handles a stop depended on the handler's thread; under ThreadSanitizer,
 * which defers a handler until its thread next enters the C library, a
 * SIGTERM landing on a thread that sleeps in a raw system call was never
 * seen, and kvd did not stop.)
 *
 * Until kvd_signals_listen() (configuration, a long recovery of
 * --data-dir) a small thread waits on the signalfd: SIGINT or SIGTERM then
 * ends the process at once, by that signal, as it did when nothing was
 * blocked; a SIGHUP is kept for the loop (it reopens the log then). From
 * kvd_signals_listen() on (the server calls it once the store is open,
 * before it listens or writes its port file) the first SIGINT or SIGTERM
 * asks for a clean stop, acted on once the loop runs; after it both are
 * unblocked in the loop's thread with their default action, so a second
 * one ends kvd at once even while it is still answering clients or
 * closing the store.
 */
#include "signals.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "log.h"

static int g_sfd = -1;            /* the signalfd of SIGINT, SIGTERM, SIGHUP */
static int g_wake = -1;           /* eventfd: the start-up thread's end */
static pthread_t g_early;         /* waits on g_sfd until the loop listens */
static bool g_early_running;
static _Atomic bool g_hup_kept;   /* a SIGHUP came during start-up */
static uv_poll_t g_poll;
static bool g_polling;
static bool g_stopping;
static kvd_signal_cb g_on_stop, g_on_hup;
static void *g_arg;

static const char *name(int signum)
{
    return signum == SIGINT ? "SIGINT" : signum == SIGTERM ? "SIGTERM" : "SIGHUP";
}

/* Ends the process by `signum` (its default action), from this thread. */
static void die_by(int signum)
{
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, signum);
    signal(signum, SIG_DFL);
    raise(signum); /* pending on this thread until it is unblocked: */
    pthread_sigmask(SIG_UNBLOCK, &one, NULL);
    _exit(128 + signum); /* not reached */
}

/* Reads one signal; 0 when none is pending (or the read failed). */
static int next_signal(void)
{
    struct signalfd_siginfo si;
    ssize_t n;
    do
        n = read(g_sfd, &si, sizeof si);
    while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof si ? (int)si.ssi_signo : 0;
}

static void *early_main(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "kvd-signals");
    struct pollfd p[2] = {{.fd = g_sfd, .events = POLLIN}, {.fd = g_wake, .events = POLLIN}};
    for (;;) {
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            return NULL;
        if (p[1].revents)
            return NULL;
        if (!p[0].revents)
            continue;
        int signum;
        while ((signum = next_signal()) != 0) {
            if (signum == SIGHUP) {
                g_hup_kept = true;
                continue;
            }
            kvd_info("received %s while starting, exiting", name(signum));
            die_by(signum);
        }
    }
}

int kvd_signals_init(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    int err = pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (err)
        return err;
    g_sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (g_sfd < 0)
        return errno;
    g_wake = eventfd(0, EFD_CLOEXEC);
    if (g_wake < 0)
        return errno;
    err = pthread_create(&g_early, NULL, early_main, NULL);
    if (err)
        return err;
    g_early_running = true;
    return 0;
}

static void stop_early(void)
{
    if (!g_early_running)
        return;
    uint64_t one = 1;
    while (write(g_wake, &one, sizeof one) < 0 && errno == EINTR)
        ;
    pthread_join(g_early, NULL);
    g_early_running = false;
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    (void)h;
    (void)events;
    if (status < 0)
        return;
    int signum;
    while ((signum = next_signal()) != 0) {
        if (signum == SIGHUP) {
            g_on_hup(g_arg, signum);
            continue;
        }
        if (g_stopping) {
            kvd_info("received %s again, exiting at once", name(signum));
            die_by(signum);
        }
        g_stopping = true;
        g_on_stop(g_arg, signum);
        /* From now on the default action: a second one ends kvd. */
        sigset_t stop;
        sigemptyset(&stop);
        sigaddset(&stop, SIGINT);
        sigaddset(&stop, SIGTERM);
        pthread_sigmask(SIG_UNBLOCK, &stop, NULL);
        uv_unref((uv_handle_t *)&g_poll); /* SIGHUP alone keeps no loop alive */
    }
}

int kvd_signals_listen(uv_loop_t *loop, kvd_signal_cb on_stop, kvd_signal_cb on_hup, void *arg)
{
    stop_early();
    g_on_stop = on_stop;
    g_on_hup = on_hup;
    g_arg = arg;
    int rc = uv_poll_init(loop, &g_poll, g_sfd);
    if (rc != 0)
        return rc;
    g_polling = true;
    rc = uv_poll_start(&g_poll, UV_READABLE, on_readable);
    if (rc != 0)
        return rc;
    if (g_hup_kept) {
        g_hup_kept = false;
        on_hup(arg, SIGHUP);
    }
    return 0;
}

void kvd_signals_close(void)
{
    if (g_polling && !uv_is_closing((uv_handle_t *)&g_poll))
        uv_close((uv_handle_t *)&g_poll, NULL);
}

void kvd_signals_end(void)
{
    stop_early();
    if (g_sfd >= 0)
        close(g_sfd);
    if (g_wake >= 0)
        close(g_wake);
    g_sfd = g_wake = -1;
    g_polling = false;
}
