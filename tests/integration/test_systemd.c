/*
 * test_systemd.c - kvd under a service manager (issue 13 item 5): the
 * sd_notify messages a Type=notify unit relies on, received the way
 * systemd receives them (a Unix datagram socket named by $NOTIFY_SOCKET):
 * READY=1 only once kvd listens, STATUS= while recovering and while
 * serving (refreshed), RELOADING=1 then READY=1 around SIGHUP (ExecReload),
 * STOPPING=1 at SIGTERM; and the hint to order kvd after
 * network-online.target when an address is not there yet.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

TestSuite(systemd, .init = harness_setup, .fini = harness_teardown, .timeout = 90);

/* ---- a stand-in for systemd's notify socket ----------------------------------- */

static int g_sock = -1;
static char g_seen[8192]; /* every message so far, for failure messages */

/* Binds a datagram socket in the test directory and points NOTIFY_SOCKET
 * at it (this test's process only: Criterion forks one per test). */
static void notify_listen(void)
{
#ifndef KVD_HAVE_SYSTEMD
    cr_skip_test("kvd was built without libsystemd (install libsystemd-dev): no sd_notify");
#endif
    kvd_test_dir();
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    char path[300];
    snprintf(path, sizeof path, "%s/notify", g_kvd.dir);
    cr_assert_lt(strlen(path), sizeof sun.sun_path);
    memcpy(sun.sun_path, path, strlen(path) + 1);
    g_sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(g_sock, 0);
    cr_assert_eq(bind(g_sock, (struct sockaddr *)&sun, sizeof sun), 0, "%s", strerror(errno));
    cr_assert_eq(setenv("NOTIFY_SOCKET", sun.sun_path, 1), 0);
    g_seen[0] = '\0';
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Waits (bounded) for the next message containing needle; copies it to
 * msg. Messages before it are skipped (and kept in g_seen). 1 if found. */
static int notify_wait(const char *needle, char *msg, size_t len, int timeout_ms)
{
    long deadline = now_ms() + timeout_ms;
    for (;;) {
        long left = deadline - now_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {g_sock, POLLIN, 0};
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        char buf[2048];
        ssize_t n = recv(g_sock, buf, sizeof buf - 1, 0);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        size_t have = strlen(g_seen);
        snprintf(g_seen + have, sizeof g_seen - have, "[%s] ", buf);
        if (strstr(buf, needle)) {
            snprintf(msg, len, "%s", buf);
            return 1;
        }
    }
}

static void set_keys(int n)
{
    kv_client *c = test_client(NULL);
    for (int i = 0; i < n; i++) {
        char k[16];
        int len = snprintf(k, sizeof k, "key%d", i);
        cr_assert_eq(kv_client_set(c, k, (size_t)len, "v", 1, NULL), KV_OK);
    }
    kv_client_close(c);
}

/* ---- the notifications ------------------------------------------------------- */

Test(systemd, ready_reload_and_stopping)
{
    notify_listen();
    kvd_start(NULL);
    char msg[2048], expect[128];
    cr_assert(notify_wait("READY=1", msg, sizeof msg, 20000), "no READY=1; got %s", g_seen);
    /* READY=1 means serving: the port answers */
    kv_client *c = test_client(NULL);
    cr_assert_eq(kv_client_ping(c), KV_OK);
    kv_client_close(c);
    snprintf(expect, sizeof expect, "STATUS=serving on port %d: 0 keys", g_kvd.port);
    cr_assert(strstr(msg, expect), "READY=1 carries the status '%s': %s", expect, msg);
    cr_assert(strstr(msg, "in memory only"), "%s", msg);

    /* systemctl reload kvd = ExecReload's kill -HUP */
    set_keys(2);
    cr_assert_eq(kill(g_kvd.pid, SIGHUP), 0);
    cr_assert(notify_wait("RELOADING=1", msg, sizeof msg, 20000), "no RELOADING=1; got %s", g_seen);
    cr_assert(strstr(msg, "MONOTONIC_USEC="), "%s", msg);
    cr_assert(notify_wait("READY=1", msg, sizeof msg, 20000), "no READY=1 after reload; got %s",
              g_seen);
    cr_assert(strstr(msg, ": 2 keys"), "the status is current: %s", msg);
    cr_assert(kvd_alive(), "SIGHUP does not stop kvd");

    cr_assert_eq(kill(g_kvd.pid, SIGTERM), 0);
    cr_assert(notify_wait("STOPPING=1", msg, sizeof msg, 20000), "no STOPPING=1; got %s", g_seen);
    kvd_wait_clean();
}

Test(systemd, status_while_recovering_and_closing)
{
    notify_listen();
    char data[300], msg[2048], expect[400];
    snprintf(data, sizeof data, "%s/data", g_kvd.dir);
    kvd_start("--data-dir", data, NULL);
    snprintf(expect, sizeof expect, "STATUS=recovering %s", data);
    cr_assert(notify_wait(expect, msg, sizeof msg, 20000), "no '%s'; got %s", expect, g_seen);
    cr_assert(!strstr(msg, "READY=1"), "%s", msg);
    cr_assert(notify_wait("READY=1", msg, sizeof msg, 20000), "no READY=1 after recovery; got %s",
              g_seen);
    snprintf(expect, sizeof expect, "data in %s", data);
    cr_assert(strstr(msg, expect), "%s", msg);
    set_keys(3);
    kvd_stop();
    snprintf(expect, sizeof expect, "STATUS=closing the store in %s", data);
    cr_assert(notify_wait(expect, msg, sizeof msg, 5000), "no '%s'; got %s", expect, g_seen);

    /* a restart recovers the keys before it says READY=1 */
    kvd_start("--data-dir", data, NULL);
    cr_assert(notify_wait("READY=1", msg, sizeof msg, 20000), "got %s", g_seen);
    cr_assert(strstr(msg, ": 3 keys"), "%s", msg);
    kvd_stop();
}

/* systemctl status shows the latest STATUS=: kvd refreshes it (every 10 s). */
Test(systemd, status_is_refreshed_while_serving)
{
    notify_listen();
    kvd_start(NULL);
    char msg[2048];
    cr_assert(notify_wait("READY=1", msg, sizeof msg, 20000), "got %s", g_seen);
    set_keys(4);
    cr_assert(notify_wait(": 4 keys", msg, sizeof msg, 30000), "no refreshed STATUS=; got %s",
              g_seen);
    cr_assert(strstr(msg, "STATUS=serving"), "%s", msg);
    cr_assert(!strstr(msg, "READY=1"), "a refresh is not a new READY=1: %s", msg);
    kvd_stop();
}

Test(systemd, no_manager_no_messages)
{
    /* without NOTIFY_SOCKET (the harness's default) kvd just runs */
    unsetenv("NOTIFY_SOCKET");
    kvd_start(NULL);
    kvd_stop();
    cr_assert(!file_has(g_kvd.log, "NOTIFY_SOCKET"));
}

/* ---- an address that is not up yet -------------------------------------------- */

Test(systemd, missing_address_hints_at_network_online)
{
    FILE *f = fopen("/proc/sys/net/ipv4/ip_nonlocal_bind", "r");
    int nonlocal = 0;
    if (f) {
        if (fscanf(f, "%d", &nonlocal) != 1)
            nonlocal = 0;
        fclose(f);
    }
    if (nonlocal)
        cr_skip_test("net.ipv4.ip_nonlocal_bind=1: any address can be bound here");
    char out[4096];
    /* 192.0.2.1 (TEST-NET-1) is on no interface, as a LAN address at boot */
    const char *args[] = {"--bind", "192.0.2.1", "--protected-mode", "no", "--port", "0", NULL};
    cr_assert_eq(kvd_run_to_end(args, out, sizeof out), 1, "cannot start: %s", out);
    cr_assert(strstr(out, "cannot listen on 192.0.2.1"), "%s", out);
    cr_assert(strstr(out, "After=network-online.target"), "says what to wait for: %s", out);
}
