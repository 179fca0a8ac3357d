/*
 * crash.c - kvd's crash report. On a fatal signal kvd writes one line
 * naming the signal, then a backtrace, to its log (the file or stderr),
 * and dies of the same signal: the exit status, a core dump and what a
 * service manager sees are what they would have been without the report.
 * An operator (or a failing test) then has more than "killed by signal
 * 6" to go on, as Redis's crash report gives.
 *
 * The handler makes only async-signal-safe calls: write(2) and
 * backtrace_symbols_fd(3). backtrace(3) may allocate on its first call
 * (it loads libgcc), so it is called once at install time.
 * Addresses are printed as module+offset; `addr2line -e kvd 0xOFFSET`
 * on the same build names the line.
 */
#include "crash.h"

#include <execinfo.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define KVD_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define KVD_SANITIZED 1
#endif
#endif

#ifndef KVD_SANITIZED /* the sanitizers report crashes themselves */
#define CRASH_FRAMES 64

static const struct {
    int sig;
    const char *name;
} fatal[] = {{SIGSEGV, "SIGSEGV (invalid memory access)"},
             {SIGBUS, "SIGBUS (bus error)"},
             {SIGILL, "SIGILL (illegal instruction)"},
             {SIGFPE, "SIGFPE (arithmetic error)"},
             {SIGABRT, "SIGABRT (aborted: a failed assertion or a corrupted heap, see above)"}};

static void say(int fd, const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

static void on_fatal(int sig)
{
    int fd = kvd_log_fd();
    const char *name = "a fatal signal";
    for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++)
        if (fatal[i].sig == sig)
            name = fatal[i].name;
    say(fd, "kvd: crashed: ");
    say(fd, name);
    say(fd, "; backtrace (module(+offset), addr2line -e MODULE OFFSET):\n");
    void *frames[CRASH_FRAMES];
    int n = backtrace(frames, CRASH_FRAMES);
    backtrace_symbols_fd(frames, n, fd);
    say(fd, "kvd: end of crash report\n");
    /* SA_RESETHAND put the default action back; SA_NODEFER lets it in. */
    raise(sig);
}
#endif

void kvd_crash_install(void)
{
#ifndef KVD_SANITIZED
    void *warm[1];
    (void)backtrace(warm, 1);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal;
    sa.sa_flags = SA_RESETHAND | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++)
        sigaction(fatal[i].sig, &sa, NULL);
#endif
}
