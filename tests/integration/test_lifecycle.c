/*
 * test_lifecycle.c - graceful shutdown with a pipeline in flight,
 * SIGINT, a second SIGTERM while stopping, an idle client noticing the server's close (kv_client_check),
 * --daemonize with --pidfile, config file vs flags, and the
 * command line's exit codes (--help, --version, bad flags -> 2).
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <glob.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

TestSuite(lifecycle, .init = harness_setup, .fini = harness_teardown, .timeout = 90);

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}


Test(lifecycle, sigterm_answers_pipeline_in_flight)
{
    kvd_start(NULL);
    int fd = raw_connect(g_kvd.port, 10000);
    cr_assert_geq(fd, 0);
    kv_proto_buf b = {0};
    kv_proto_request ping = {.op = KV_PROTO_PING, .id = 1};
    enc(&b, &ping);
    cr_assert_eq(raw_send(fd, b.data, b.len), 0);
    cr_assert_eq(raw_recv_status(fd, KV_PROTO_PING, NULL), KV_OK); /* adopted */
    kv_proto_buf_reset(&b);

    enum { N = 800 };
    char k[32];
    for (int i = 0; i < N; i++) {
        int kl = snprintf(k, sizeof k, "sd:%d", i);
        kv_proto_request r = {.op = i % 2 ? KV_PROTO_GET : KV_PROTO_SET,
                              .id = (uint64_t)i + 100,
                              .key = {k, (size_t)kl},
                              .value = {"v", 1}};
        if (i % 2)
            r.key.len = (size_t)snprintf(k, sizeof k, "sd:%d", i - 1);
        enc(&b, &r);
    }
    cr_assert_lt(b.len, 32 * 1024, "fits the socket buffers at once");
    cr_assert_eq(raw_send(fd, b.data, b.len), 0);
    kill(g_kvd.pid, SIGTERM);
    for (int i = 0; i < N; i++) {
        uint64_t id = 0;
        int st = raw_recv_status(fd, i % 2 ? KV_PROTO_GET : KV_PROTO_SET, &id);
        cr_assert_eq(st, KV_OK, "response %d: status %d", i, st);
        cr_assert_eq(id, (uint64_t)i + 100, "in order");
    }
    cr_assert(raw_wait_closed(fd, 5000), "closed after the answers");
    close(fd);
    kv_proto_buf_free(&b);
    kvd_wait_clean(); /* exit code 0, clean log */
}

static atomic_int g_busy_ops;

static void *busy_client(void *arg)
{
    (void)arg;
    kv_client_options o;
    kv_client_options_init(&o);
    o.port = (uint16_t)g_kvd.port;
    o.io_timeout_ms = TEST_IO_TIMEOUT_MS;
    kv_client *c = NULL;
    if (kv_client_open(&o, &c) == KV_OK) {
        kv_client_pipeline *p = NULL;
        kv_client_pipeline_new(c, &p);
        char k[32];
        /* until the server goes away (bounded) */
        for (int r = 0; r < 100000; r++) {
            for (int i = 0; i < 100; i++) {
                int n = snprintf(k, sizeof k, "busy:%d", i);
                kv_client_pipeline_set(p, k, (size_t)n, "v", 1);
            }
            if (kv_client_pipeline_exec(p) != KV_OK)
                break;
            atomic_fetch_add(&g_busy_ops, 100);
        }
        kv_client_pipeline_free(p);
    }
    kv_client_close(c);
    return NULL;
}

Test(lifecycle, sigterm_under_load)
{
    kvd_start(NULL);
    atomic_store(&g_busy_ops, 0);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, busy_client, NULL);
    for (int i = 0; i < 1000 && atomic_load(&g_busy_ops) < 2000; i++)
        sleep_ms(10);
    cr_assert_geq(atomic_load(&g_busy_ops), 2000, "clients got going");
    kvd_wait_clean_after(SIGTERM);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
}

Test(lifecycle, sigint_exits_zero_with_idle_clients)
{
    kvd_start(NULL);
    kv_client *c = test_client(NULL);
    cr_assert_eq(kv_client_set(c, "a", 1, "b", 1, NULL), KV_OK);
    kill(g_kvd.pid, SIGINT);
    kvd_wait_clean();
    kv_value v;
    cr_assert_neq(kv_client_get(c, "a", 1, &v), KV_OK, "server is gone");
    kv_client_close(c);
}

/* The first SIGTERM asks for a clean stop; while kvd is still stopping (a
 * client that reads none of its replies holds it for the grace period) a
 * second one ends it at once, by SIGTERM, as an impatient operator's
 * second Ctrl-C or systemd's final kill expects (signals.c). */
Test(lifecycle, a_second_sigterm_while_stopping_ends_kvd_at_once)
{
    kvd_start(NULL);
    kv_client *c = test_client(NULL);
    enum { BIG = 256 * 1024 };
    char *big = malloc(BIG);
    cr_assert(big);
    memset(big, 'v', BIG);
    cr_assert_eq(kv_client_set(c, "big", 3, big, BIG, NULL), KV_OK);
    free(big);
    kv_client_close(c);

    /* 64 GETs of 256 KiB, and not one reply read: 16 MiB waits on kvd. */
    int fd = raw_connect(g_kvd.port, 10000);
    cr_assert_geq(fd, 0);
    kv_proto_buf b = {0};
    for (int i = 0; i < 64; i++) {
        kv_proto_request r = {.op = KV_PROTO_GET, .id = (uint64_t)i + 1, .key = {"big", 3}};
        enc(&b, &r);
    }
    cr_assert_eq(raw_send(fd, b.data, b.len), 0);
    kv_proto_buf_free(&b);
    sleep_ms(200);

    kill(g_kvd.pid, SIGTERM);
    cr_assert(wait_file_has(g_kvd.log, "received SIGTERM, shutting down"));
    cr_assert(kvd_alive(), "still answering the client that does not read");
    kill(g_kvd.pid, SIGTERM);
    int st = 0;
    cr_assert_eq(waitpid(g_kvd.pid, &st, 0), g_kvd.pid);
    g_kvd.pid = 0;
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "wait status %d", st);
    cr_assert(!file_has(g_kvd.log, "keys discarded"), "it did not finish its clean stop");
    close(fd);
}

/* A fatal signal leaves a crash report in the log (crash.c) and kvd still
 * dies of that signal, as a core dump and a service manager expect. */
Test(lifecycle, a_fatal_signal_leaves_a_crash_report_and_still_kills)
{
    if (kvd_under_a_tool())
        cr_skip_test("sanitizers and valgrind report crashes themselves; kvd leaves them to it");
    kvd_start(NULL);
    kill(g_kvd.pid, SIGSEGV);
    int st = 0;
    cr_assert_eq(waitpid(g_kvd.pid, &st, 0), g_kvd.pid);
    g_kvd.pid = 0;
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "wait status %d", st);
    cr_assert(file_has(g_kvd.log, "kvd: crashed: SIGSEGV"), "no crash line in the log");
    cr_assert(file_has(g_kvd.log, "kvd: end of crash report"), "the report was cut short");
    cr_assert(file_has(g_kvd.log, "kvd("), "no frame of kvd's own in the backtrace");
}

/* kv_client_check: an idle client learns, without a request, that the
 * server has gone (so kvcli's prompt can reconnect before a command). */
Test(lifecycle, client_check_sees_the_server_close)
{
    kvd_start(NULL);
    kv_client *c = test_client(NULL);
    cr_assert_eq(kv_client_check(c), KV_OK);
    cr_assert_eq(kv_client_ping(c), KV_OK);
    cr_assert_eq(kv_client_check(c), KV_OK, "a reply leaves nothing behind");
    kvd_stop();
    int st = KV_OK;
    for (int i = 0; i < 200 && (st = kv_client_check(c)) == KV_OK; i++)
        sleep_ms(10);
    cr_assert_eq(st, KV_CLOSED);
    cr_assert_eq(kv_client_is_connected(c), 0);
    cr_assert_str_eq(kv_client_last_error(c), "the server closed the connection");
    cr_assert_eq(kv_client_check(c), KV_CLOSED, "still closed");
    kv_client_close(c);
    cr_assert_eq(kv_client_check(NULL), KV_CLOSED);
}

static int process_gone(int pid)
{
    char path[64], stat[256];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 1;
    size_t n = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[n] = 0;
    char *p = strrchr(stat, ')');
    return p && p[1] == ' ' && p[2] == 'Z'; /* a zombie has exited */
}

static void setenv_append(const char *name, const char *extra)
{
    const char *old = getenv(name);
    char buf[1024];
    snprintf(buf, sizeof buf, "%s%s%s", old ? old : "", old && old[0] ? ":" : "", extra);
    setenv(name, buf, 1);
}

Test(lifecycle, daemonize_and_pidfile)
{
    kvd_test_dir();
    char pidfile[300], portfile[300], logfile[300], san[300], out[4096];
    snprintf(pidfile, sizeof pidfile, "%s/kvd.pid", g_kvd.dir);
    snprintf(portfile, sizeof portfile, "%s/port", g_kvd.dir);
    snprintf(logfile, sizeof logfile, "%s/daemon.log", g_kvd.dir);
    snprintf(san, sizeof san, "log_path=%s/san", g_kvd.dir);
    /* the daemon's stderr is /dev/null: sanitizer reports go to files */
    char *old_asan = getenv("ASAN_OPTIONS") ? strdup(getenv("ASAN_OPTIONS")) : NULL;
    char *old_tsan = getenv("TSAN_OPTIONS") ? strdup(getenv("TSAN_OPTIONS")) : NULL;
    setenv_append("ASAN_OPTIONS", san);
    setenv_append("TSAN_OPTIONS", san);
    const char *args[] = {"--daemonize", "--pidfile", pidfile, "--port", "0", "--port-file",
                          portfile, "--log-file", logfile, "--threads", "2", NULL};
    int rc = kvd_run_to_end(args, out, sizeof out);
    if (old_asan) setenv("ASAN_OPTIONS", old_asan, 1); else unsetenv("ASAN_OPTIONS");
    if (old_tsan) setenv("TSAN_OPTIONS", old_tsan, 1); else unsetenv("TSAN_OPTIONS");
    free(old_asan);
    free(old_tsan);
    cr_assert_eq(rc, 0, "launcher exits 0 once the daemon serves: %s", out);

    FILE *f = fopen(pidfile, "r");
    cr_assert_not_null(f, "pid file written");
    int pid = 0;
    cr_assert_eq(fscanf(f, "%d", &pid), 1);
    fclose(f);
    cr_assert_gt(pid, 1);
    cr_assert(!process_gone(pid), "daemon running");
    f = fopen(portfile, "r");
    cr_assert_not_null(f);
    cr_assert_eq(fscanf(f, "%d", &g_kvd.port), 1);
    fclose(f);

    kv_client *c = test_client(NULL);
    cr_assert_eq(kv_client_set(c, "d", 1, "x", 1, NULL), KV_OK);
    kv_client_close(c);

    kill(pid, SIGTERM);
    int gone = 0;
    for (int i = 0; i < 1000 && !gone; i++) {
        gone = process_gone(pid) && access(pidfile, F_OK) != 0;
        if (!gone)
            sleep_ms(10);
    }
    if (!gone)
        kill(pid, SIGKILL);
    cr_assert(gone, "daemon exits and removes its pid file");
    glob_t g;
    char pat[320];
    snprintf(pat, sizeof pat, "%s/san*", g_kvd.dir);
    int found = glob(pat, 0, NULL, &g) == 0 ? (int)g.gl_pathc : 0;
    if (found)
        globfree(&g);
    cr_assert_eq(found, 0, "no sanitizer report from the daemon");
    f = fopen(logfile, "r");
    cr_assert_not_null(f, "log file written");
    fclose(f);
}

Test(lifecycle, config_file_and_flags)
{
    kvd_test_dir();
    char conf[300];
    snprintf(conf, sizeof conf, "%s/kvd.conf", g_kvd.dir);
    FILE *f = fopen(conf, "w");
    cr_assert_not_null(f);
    fprintf(f, "# test\nlog_level = warn\n[kvd]\nmax-value-size = 100\nmax-key-size = 16\n");
    fclose(f);
    kvd_start("--config", conf, "--max-value-size", "200", NULL);
    kv_client *c = test_client(NULL);
    char val[300] = {0};
    cr_assert_eq(kv_client_set(c, "k", 1, val, 150, NULL), KV_OK, "flag overrides the file");
    cr_assert_eq(kv_client_set(c, "k", 1, val, 250, NULL), KV_VALUE_TOO_LARGE);
    cr_assert_eq(kv_client_set(c, "kkkkkkkkkkkkkkkkkkkk", 20, "v", 1, NULL), KV_KEY_TOO_LARGE,
                 "file setting applies");
    kv_client_close(c);
    kvd_stop();
}

Test(lifecycle, shipped_sample_config_is_valid)
{
    /* its data-dir is the unit's /var/lib/kvd: a test directory instead */
    kvd_test_dir();
    char data[300];
    snprintf(data, sizeof data, "%s/data", g_kvd.dir);
    kvd_start("--config", KVD_SAMPLE_CONF, "--data-dir", data, NULL); /* and --port 0, 2 threads */
    kv_client *c = test_client(NULL);
    cr_assert_eq(kv_client_ping(c), KV_OK);
    kv_client_close(c);
    kvd_stop();
    cr_assert(!file_has(g_kvd.log, KVD_SAMPLE_CONF), "no warning about a line of the sample");
}

Test(lifecycle, unix_socket_only)
{
    kvd_test_dir();
    char sock[300];
    snprintf(sock, sizeof sock, "%s/kvd.sock", g_kvd.dir);
    kvd_start("--bind", "none", "--unix", sock, NULL);
    cr_assert_eq(g_kvd.port, 0, "the port file says no TCP port");

    kv_client *c = test_unix_client(sock);
    cr_assert_eq(kv_client_set(c, "u", 1, "x", 1, NULL), KV_OK);
    kv_value v;
    cr_assert_eq(kv_client_get(c, "u", 1, &v), KV_OK);
    kv_client_value_free(&v);
    kv_client_close(c);
    kvd_stop();
    cr_assert_neq(access(sock, F_OK), 0, "socket file removed at exit");
}

Test(lifecycle, command_line_exit_codes)
{
    char out[8192];
    const char *help[] = {"--help", NULL};
    cr_assert_eq(kvd_run_to_end(help, out, sizeof out), 0);
    cr_assert_not_null(strstr(out, "--max-frame-size"));
    cr_assert_not_null(strstr(out, "default"));
    const char *version[] = {"--version", NULL};
    cr_assert_eq(kvd_run_to_end(version, out, sizeof out), 0);
    cr_assert_not_null(strstr(out, KV_VERSION_STRING));

    const char *bad_flag[] = {"--no-such-flag", NULL};
    cr_assert_eq(kvd_run_to_end(bad_flag, out, sizeof out), 2);
    cr_assert_not_null(strstr(out, "no-such-flag"));
    const char *bad_value[] = {"--port", "70000", NULL};
    cr_assert_eq(kvd_run_to_end(bad_value, out, sizeof out), 2);
    const char *bad_level[] = {"--log-level", "loud", NULL};
    cr_assert_eq(kvd_run_to_end(bad_level, out, sizeof out), 2);
    const char *bad_size[] = {"--max-key-size", "1m", NULL};
    cr_assert_eq(kvd_run_to_end(bad_size, out, sizeof out), 2);

    char conf[300];
    snprintf(conf, sizeof conf, "%s/bad.conf", g_kvd.dir);
    FILE *f = fopen(conf, "w");
    fprintf(f, "[kvd]\nno_such_key = 1\n");
    fclose(f);
    const char *bad_conf[] = {"--config", conf, NULL};
    cr_assert_eq(kvd_run_to_end(bad_conf, out, sizeof out), 2);
    cr_assert_not_null(strstr(out, "no_such_key"));
    cr_assert_eq(strchr(out, '\n'), out + strlen(out) - 1, "one line: %s", out);
    const char *missing_conf[] = {"--config", "/nonexistent/kvd.conf", NULL};
    cr_assert_eq(kvd_run_to_end(missing_conf, out, sizeof out), 2);
    const char *bad_bind[] = {"--bind", "not-an-address", "--port", "0", NULL};
    cr_assert_eq(kvd_run_to_end(bad_bind, out, sizeof out), 2, "bad config: %s", out);
    const char *nothing_to_listen_on[] = {"--bind", "none", NULL};
    cr_assert_eq(kvd_run_to_end(nothing_to_listen_on, out, sizeof out), 2);
    cr_assert_not_null(strstr(out, "--unix"), "says what to add: %s", out);
    const char *none_and_address[] = {"--bind", "none", "--bind", "127.0.0.1", "--unix", "/tmp/x",
                                      NULL};
    cr_assert_eq(kvd_run_to_end(none_and_address, out, sizeof out), 2);
    /* valid configuration, but the server cannot start: exit 1 */
    const char *bad_port_file[] = {"--port", "0", "--port-file", "/nonexistent/dir/port", NULL};
    cr_assert_eq(kvd_run_to_end(bad_port_file, out, sizeof out), 1, "cannot start: %s", out);
}
