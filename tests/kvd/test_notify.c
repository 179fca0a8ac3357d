/*
 * test_notify.c - kvd/src/notify.c, built both ways: with libsystemd
 * (test_kvd_notify: messages reach $NOTIFY_SOCKET as sent) and without
 * (test_kvd_notify_off: nothing is sent, and a kvd started by a manager
 * that waits for READY=1 says it will not come).
 */
#include <criterion/criterion.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "notify.h"

static char g_dir[64];
static char g_log[128];
static int g_sock = -1;

static void setup(void)
{
    strcpy(g_dir, "/tmp/kvdnotify.XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir));
    snprintf(g_log, sizeof g_log, "%s/log", g_dir);
    cr_assert_eq(kvd_log_open(g_log), 0);
    unsetenv("NOTIFY_SOCKET");
}

static void teardown(void)
{
    kvd_log_close();
    char p[128];
    snprintf(p, sizeof p, "%s/sock", g_dir);
    unlink(p);
    unlink(g_log);
    rmdir(g_dir);
}

TestSuite(notify, .init = setup, .fini = teardown);

/* A datagram socket standing in for systemd's, named by NOTIFY_SOCKET. */
static void listen_notify(void)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%.60s/sock", g_dir);
    g_sock = socket(AF_UNIX, SOCK_DGRAM, 0);
    cr_assert_geq(g_sock, 0);
    cr_assert_eq(bind(g_sock, (struct sockaddr *)&sun, sizeof sun), 0);
    cr_assert_eq(setenv("NOTIFY_SOCKET", sun.sun_path, 1), 0);
}

/* The next message, or "" after a second. */
static void next_msg(char *buf, size_t len)
{
    buf[0] = '\0';
    struct pollfd p = {g_sock, POLLIN, 0};
    if (poll(&p, 1, 1000) != 1)
        return;
    ssize_t n = recv(g_sock, buf, len - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
}

static int log_has(const char *needle)
{
    FILE *f = fopen(g_log, "r");
    if (!f)
        return 0;
    char line[1024];
    int found = 0;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

Test(notify, nothing_without_a_manager)
{
    cr_assert_eq(kvd_notify_init(), 0);
    cr_assert_eq(kvd_notify_active(), 0);
    kvd_notify("READY=1"); /* a no-op */
    cr_assert(!log_has("NOTIFY_SOCKET"), "no manager, nothing to say");
}

Test(notify, messages_reach_the_socket)
{
    listen_notify();
    char msg[256];
    if (!kvd_notify_supported()) {
        cr_assert_eq(kvd_notify_init(), 0, "nothing can be sent");
        cr_assert(log_has("built without libsystemd"), "and the manager waiting for READY=1 is told");
        kvd_notify("READY=1");
        next_msg(msg, sizeof msg);
        cr_assert_str_eq(msg, "", "nothing was sent: %s", msg);
        return;
    }
    cr_assert_eq(kvd_notify_init(), 1);
    cr_assert_eq(kvd_notify_active(), 1);
    kvd_notify("READY=1\nSTATUS=serving %d keys", 42);
    next_msg(msg, sizeof msg);
    cr_assert_str_eq(msg, "READY=1\nSTATUS=serving 42 keys");

    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned long long before = (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000;
    kvd_notify_reloading();
    next_msg(msg, sizeof msg);
    unsigned long long usec = 0;
    cr_assert_eq(sscanf(msg, "RELOADING=1\nMONOTONIC_USEC=%llu", &usec), 1, "got: %s", msg);
    cr_assert(usec >= before && usec < before + 60000000ULL, "CLOCK_MONOTONIC in us: %llu", usec);
    cr_assert(!log_has("NOTIFY_SOCKET"));
}
