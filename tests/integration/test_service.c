/*
 * test_service.c - kvd as a service (issue 13): SIGHUP reopens the log
 * file for logrotate and never stops kvd; pid file locking; a live Unix
 * socket is never taken over, --unix-perm; protected mode; --password-file;
 * what the start and stop lines say about persistence.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

TestSuite(service, .init = harness_setup, .fini = harness_teardown, .timeout = 90);

static void assert_answers(void)
{
    kv_client *c = test_client(NULL);
    cr_assert_eq(kv_client_ping(c), KV_OK);
    kv_client_close(c);
}

/* ---- SIGHUP ---------------------------------------------------------------- */

Test(service, sighup_reopens_the_log_file)
{
    kvd_test_dir();
    char log[300], rotated[300];
    snprintf(log, sizeof log, "%s/service.log", g_kvd.dir);
    snprintf(rotated, sizeof rotated, "%s/service.log.1", g_kvd.dir);
    kvd_start("--log-file", log, NULL);
    cr_assert(wait_file_has(log, "ready"), "kvd logs to --log-file");

    /* logrotate: rename the file away, then kill -HUP */
    cr_assert_eq(rename(log, rotated), 0);
    cr_assert_eq(kill(g_kvd.pid, SIGHUP), 0);
    cr_assert(wait_file_has(log, "reopened the log file"), "a new file at the path");
    cr_assert(kvd_alive(), "SIGHUP does not stop kvd");
    assert_answers();
    cr_assert(!file_has(rotated, "reopened the log file"), "the rotated file is left alone");

    /* again: the handler stays installed */
    cr_assert_eq(unlink(log), 0);
    cr_assert_eq(kill(g_kvd.pid, SIGHUP), 0);
    cr_assert(wait_file_has(log, "reopened the log file"));
    assert_answers();
    kvd_stop();
    cr_assert(file_has(log, "stopped"), "later lines, to the end, go to the new file");
}

Test(service, sighup_without_log_file_keeps_serving)
{
    kvd_start(NULL);
    cr_assert_eq(kill(g_kvd.pid, SIGHUP), 0);
    cr_assert(wait_file_has(g_kvd.log, "received SIGHUP"));
    cr_assert(kvd_alive());
    assert_answers();
    kvd_stop();
}

/* ---- pid file and Unix socket ------------------------------------------------ */

static int read_pid(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int pid = -1;
    if (fscanf(f, "%d", &pid) != 1)
        pid = -1;
    fclose(f);
    return pid;
}

Test(service, second_kvd_with_the_same_pidfile_is_refused)
{
    kvd_test_dir();
    char pidfile[300], out[4096], expect[64];
    snprintf(pidfile, sizeof pidfile, "%s/kvd.pid", g_kvd.dir);
    kvd_start("--pidfile", pidfile, NULL);
    cr_assert_eq(read_pid(pidfile), g_kvd.pid);

    const char *args[] = {"--port", "0", "--pidfile", pidfile, NULL};
    int rc = kvd_run_to_end(args, out, sizeof out);
    cr_assert_eq(rc, 1, "exit 1: %s", out);
    snprintf(expect, sizeof expect, "kvd: already running (pid %d)", (int)g_kvd.pid);
    cr_assert(strstr(out, expect), "says who runs: %s", out);
    cr_assert_eq(read_pid(pidfile), g_kvd.pid, "the running kvd's pid file is untouched");
    assert_answers();
    kvd_stop();
    cr_assert_neq(access(pidfile, F_OK), 0, "removed at exit");
}

Test(service, stale_pidfile_is_taken_over)
{
    kvd_test_dir();
    char pidfile[300];
    snprintf(pidfile, sizeof pidfile, "%s/kvd.pid", g_kvd.dir);
    FILE *f = fopen(pidfile, "w");
    cr_assert_not_null(f);
    fprintf(f, "999999999\n"); /* longer than our pid: truncated away */
    fclose(f);
    kvd_start("--pidfile", pidfile, NULL);
    cr_assert_eq(read_pid(pidfile), g_kvd.pid, "nobody held the lock: ours now");
    kvd_stop();
    cr_assert_neq(access(pidfile, F_OK), 0);
}

Test(service, live_unix_socket_is_not_taken_over)
{
    kvd_test_dir();
    char sock[300], out[4096];
    snprintf(sock, sizeof sock, "%s/kvd.sock", g_kvd.dir);
    kvd_start("--unix", sock, NULL);

    const char *args[] = {"--port", "0", "--unix", sock, NULL};
    int rc = kvd_run_to_end(args, out, sizeof out);
    cr_assert_eq(rc, 1, "refused: %s", out);
    cr_assert(strstr(out, "in use by a running server"), "%s", out);
    kv_client *c = test_unix_client(sock); /* still the first kvd's */
    cr_assert_eq(kv_client_ping(c), KV_OK);
    kv_client_close(c);
    kvd_stop();
    cr_assert_neq(access(sock, F_OK), 0, "removed by its owner at exit");
}

Test(service, stale_unix_socket_is_replaced)
{
    kvd_test_dir();
    char sock[300];
    snprintf(sock, sizeof sock, "%s/kvd.sock", g_kvd.dir);
    /* bound, never listening, closed: what a crashed server leaves */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    strcpy(sun.sun_path, sock);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
    close(fd);
    kvd_start("--unix", sock, NULL);
    kv_client *c = test_unix_client(sock);
    cr_assert_eq(kv_client_ping(c), KV_OK);
    kv_client_close(c);
    kvd_stop();
}

Test(service, unix_socket_replaced_by_another_is_left_at_exit)
{
    kvd_test_dir();
    char sock[300], moved[300];
    snprintf(sock, sizeof sock, "%s/kvd.sock", g_kvd.dir);
    snprintf(moved, sizeof moved, "%s/kvd.sock.old", g_kvd.dir);
    kvd_start("--unix", sock, NULL);
    /* someone else's socket now at the path */
    cr_assert_eq(rename(sock, moved), 0);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    strcpy(sun.sun_path, sock);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
    kvd_stop();
    close(fd);
    cr_assert_eq(access(sock, F_OK), 0, "not ours any more: kept");
    unlink(sock);
    unlink(moved);
}

Test(service, unix_perm_sets_the_socket_mode)
{
    kvd_test_dir();
    char sock[300];
    snprintf(sock, sizeof sock, "%s/kvd.sock", g_kvd.dir);
    kvd_start("--unix", sock, "--unix-perm", "700", NULL);
    struct stat st;
    cr_assert_eq(stat(sock, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0700, "mode %03o", (unsigned)(st.st_mode & 0777));
    kv_client *c = test_unix_client(sock);
    cr_assert_eq(kv_client_ping(c), KV_OK);
    kv_client_close(c);
    kvd_stop();

    kvd_start("--unix", sock, "--unix-perm", "660", NULL);
    cr_assert_eq(stat(sock, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0660, "mode %03o", (unsigned)(st.st_mode & 0777));
    kvd_stop();

    char out[4096];
    const char *bad[] = {"--port", "0", "--unix", sock, "--unix-perm", "800", NULL};
    cr_assert_eq(kvd_run_to_end(bad, out, sizeof out), 2, "not octal: %s", out);
    const char *alone[] = {"--port", "0", "--unix-perm", "700", NULL};
    cr_assert_eq(kvd_run_to_end(alone, out, sizeof out), 2, "without --unix: %s", out);
}

/* ---- protected mode ----------------------------------------------------------- */

Test(service, protected_mode_refuses_wildcard_without_password)
{
    char out[4096];
    const char *args[] = {"--port", "0", "--bind", "0.0.0.0", NULL};
    cr_assert_eq(kvd_run_to_end(args, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "protected mode"), "explains why: %s", out);
    cr_assert(strstr(out, "--protected-mode no"), "and the way out: %s", out);

    kvd_start("--bind", "0.0.0.0", "--protected-mode", "no", NULL);
    assert_answers(); /* harness connects to 127.0.0.1, which 0.0.0.0 covers */
    kvd_stop();

    kvd_start("--bind", "0.0.0.0", "--password", "pw", NULL);
    kv_client *c = test_client("pw");
    cr_assert_eq(kv_client_ping(c), KV_OK);
    kv_client_close(c);
    kvd_stop();
}

Test(service, localhost_binds_ipv4_loopback)
{
    kvd_start("--bind", "localhost", NULL);
    assert_answers();
    kvd_stop();
    cr_assert(wait_file_has(g_kvd.log, "listening on 127.0.0.1 port"), "localhost is 127.0.0.1");
}

/* ---- --password-file --------------------------------------------------------- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

Test(service, password_file)
{
    kvd_test_dir();
    char pw[300], empty[300], out[4096];
    snprintf(pw, sizeof pw, "%s/pw", g_kvd.dir);
    snprintf(empty, sizeof empty, "%s/empty", g_kvd.dir);
    write_file(pw, "s3cret\r\nsecond line is ignored\n");
    write_file(empty, "\n");

    /* a password lifts protected mode, so 0.0.0.0 also proves it was read */
    kvd_start("--password-file", pw, "--bind", "0.0.0.0", NULL);
    kv_client *c = test_client("s3cret");
    cr_assert_eq(kv_client_set(c, "k", 1, "v", 1, NULL), KV_OK, "the first line, no line end");
    kv_client_close(c);
    kv_client_options o;
    kv_client_options_init(&o);
    o.host = "127.0.0.1";
    o.port = (uint16_t)g_kvd.port;
    o.io_timeout_ms = TEST_IO_TIMEOUT_MS;
    o.password = "s3cret\r";
    c = NULL;
    cr_assert_eq(kv_client_open(&o, &c), KV_AUTH_FAILED);
    kv_client_close(c);
    c = NULL;
    o.password = NULL;
    if (kv_client_open(&o, &c) == KV_OK)
        cr_assert_eq(kv_client_set(c, "k", 1, "v", 1, NULL), KV_AUTH_REQUIRED);
    kv_client_close(c);
    kvd_stop();

    const char *a1[] = {"--port", "0", "--password-file", empty, NULL};
    cr_assert_eq(kvd_run_to_end(a1, out, sizeof out), 2, "empty: %s", out);
    cr_assert(strstr(out, "empty"), "%s", out);
    const char *a2[] = {"--port", "0", "--password-file", "/nonexistent/pw", NULL};
    cr_assert_eq(kvd_run_to_end(a2, out, sizeof out), 2, "missing: %s", out);
    const char *a3[] = {"--port", "0", "--password-file", pw, "--password", "x", NULL};
    cr_assert_eq(kvd_run_to_end(a3, out, sizeof out), 2, "both: %s", out);
}

/* ---- what the log says about the data ----------------------------------------- */

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

Test(service, log_says_in_memory_and_keys_discarded)
{
    kvd_start(NULL);
    cr_assert(wait_file_has(g_kvd.log, "in memory only: data is lost when kvd stops"));
    set_keys(3);
    kvd_stop();
    cr_assert(file_has(g_kvd.log, "in memory only: 3 keys discarded"));
}

Test(service, log_says_data_dir_and_keys_saved)
{
    kvd_test_dir();
    char data[300], line[400];
    snprintf(data, sizeof data, "%s/data", g_kvd.dir);
    cr_assert_eq(mkdir(data, 0755), 0);
    kvd_start("--data-dir", data, "--fsync", "always", NULL);
    snprintf(line, sizeof line, "data in %s, fsync always", data);
    cr_assert(wait_file_has(g_kvd.log, line), "start line: %s", line);
    cr_assert(!file_has(g_kvd.log, "in memory only"));
    set_keys(2);
    kvd_stop();
    snprintf(line, sizeof line, "2 keys saved in %s", data);
    cr_assert(file_has(g_kvd.log, line), "stop line: %s", line);

    /* and they are: a restart finds them, and says so again at its stop */
    kvd_start("--data-dir", data, NULL);
    cr_assert(wait_file_has(g_kvd.log, "fsync everysec"));
    set_keys(1); /* key0 again: still 2 keys */
    kvd_stop();
    cr_assert(file_has(g_kvd.log, line), "stop line after restart: %s", line);
}

/* ---- --daemonize ------------------------------------------------------------ */

Test(service, daemonize_reports_a_busy_port_before_detaching)
{
    kvd_start(NULL);
    char port[16], out[4096], expect[96];
    snprintf(port, sizeof port, "%d", g_kvd.port);
    const char *args[] = {"--daemonize", "--bind", "127.0.0.1", "--port", port, NULL};
    int rc = kvd_run_to_end(args, out, sizeof out);
    cr_assert_neq(rc, 0, "exit non-zero: %s", out);
    snprintf(expect, sizeof expect, "kvd: error: cannot listen on 127.0.0.1 port %d", g_kvd.port);
    cr_assert(strstr(out, expect), "says why on stderr: %s", out);
    cr_assert(strstr(out, "kvd: warning: --daemonize without --log-file"),
              "says where the log goes: %s", out);
    assert_answers();
    kvd_stop();
}

/* ---- --syslog --------------------------------------------------------------- */

/* Every log line also reaches syslog(3), facility daemon with its level
 * as priority. kvd runs in a private mount namespace (unshare, as root)
 * whose /dev is the test's directory holding its own datagram socket
 * "log", where syslog(3) sends: a real syslog socket, no mock of it. */
Test(service, syslog_receives_the_log_lines)
{
    if (geteuid() != 0 || system("command -v unshare >/dev/null 2>&1") != 0)
        cr_skip_test("needs root and unshare (util-linux) for a private /dev/log");
    if (getenv("KVD_WRAPPER"))
        cr_skip_test("kvd already runs under a wrapper");
    kvd_test_dir();
    char dev[300], sock[320], wrap[320], wrapper[400];
    snprintf(dev, sizeof dev, "%s/dev", g_kvd.dir);
    snprintf(sock, sizeof sock, "%s/log", dev);
    snprintf(wrap, sizeof wrap, "%s/wrap.sh", g_kvd.dir);
    cr_assert_eq(mkdir(dev, 0755), 0);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    cr_assert_lt(strlen(sock), sizeof sa.sun_path);
    memcpy(sa.sun_path, sock, strlen(sock) + 1);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    FILE *f = fopen(wrap, "w");
    cr_assert_not_null(f);
    fprintf(f, "#!/bin/sh\nmount --bind '%s' /dev || exit 99\nexec \"$@\"\n", dev);
    fclose(f);
    cr_assert_eq(chmod(wrap, 0755), 0);
    snprintf(wrapper, sizeof wrapper, "unshare -m --propagation private %s", wrap);
    setenv("KVD_WRAPPER", wrapper, 1);
    kvd_start("--syslog", NULL);
    unsetenv("KVD_WRAPPER");
    /* the start-up lines, at LOG_DAEMON|LOG_INFO (<30>), ident kvd */
    char msg[2048];
    int ready = 0;
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (!ready) {
        ssize_t n = recv(fd, msg, sizeof msg - 1, 0);
        cr_assert_gt(n, 0, "no syslog message within 10 s");
        msg[n] = 0;
        if (strstr(msg, " ready ")) {
            cr_assert(strncmp(msg, "<30>", 4) == 0, "priority daemon.info: %s", msg);
            cr_assert_not_null(strstr(msg, "kvd["), "ident and pid: %s", msg);
            ready = 1;
        }
    }
    /* and the same lines still go to the log */
    cr_assert(file_has(g_kvd.log, " ready "));
    kvd_stop();
    close(fd);
}
