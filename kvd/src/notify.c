/*
 * notify.c - sd_notify for Type=notify units (see notify.h).
 *
 * With KVD_HAVE_SYSTEMD (CMake found libsystemd through pkg-config) the
 * messages go through sd_notify(3); the environment is kept, since kvd
 * notifies many times and starts no child that could inherit it by
 * mistake. Without it, nothing is sent.
 */
#include "notify.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef KVD_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "log.h"

static int g_active;             /* set once by kvd_notify_init() */
static atomic_int g_failed_once; /* a failure was logged */

int kvd_notify_supported(void)
{
#ifdef KVD_HAVE_SYSTEMD
    return 1;
#else
    return 0;
#endif
}

int kvd_notify_init(void)
{
    const char *sock = getenv("NOTIFY_SOCKET");
    if (!sock || !*sock)
        return g_active = 0;
    if (!kvd_notify_supported()) {
        kvd_warn("NOTIFY_SOCKET is set, but this kvd was built without libsystemd: the service "
                 "manager will not hear READY=1 (use Type=simple, or build with libsystemd-dev)");
        return g_active = 0;
    }
    return g_active = 1;
}

int kvd_notify_active(void)
{
    return g_active;
}

void kvd_notify(const char *fmt, ...)
{
    if (!g_active)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
#ifdef KVD_HAVE_SYSTEMD
    int rc = sd_notify(0, msg);
    if (rc < 0 && atomic_exchange(&g_failed_once, 1) == 0)
        kvd_warn("cannot notify the service manager ($NOTIFY_SOCKET): %s", strerror(-rc));
#else
    (void)g_failed_once;
#endif
}

void kvd_notify_reloading(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    kvd_notify("RELOADING=1\nMONOTONIC_USEC=%llu",
               (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
}
