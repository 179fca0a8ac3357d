/*
 * test_watch.c - kvcli watch against a real kvd: live changes of a
 * prefix, one line each, stopping after --count; catching up from
 * --from-rev with --json lines; Ctrl-C (SIGINT) ends it with exit 0;
 * lost events (kvd keeping 2 earlier values per key) exit 6 with one
 * line naming the revision to resume from; a compacted --from-rev exits
 * 5; bad arguments exit 2.
 *
 * A live watch runs in the background (spawn below, its output in a
 * file) while the test writes with other kvcli runs; it is known to be
 * watching once kvd's metric `watchers` says so.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static cli_server srv;

static void setup(void)
{
    cli_server_start(&srv, NULL);
}

static void teardown(void)
{
    cli_server_stop(&srv);
}

TestSuite(cli_watch, .init = setup, .fini = teardown, .timeout = 60);

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A kvcli run in the background, stdout and stderr into files. */
typedef struct bg {
    pid_t pid;
    char out[160], err[160];
} bg;

static void spawn(bg *b, const char *const *args)
{
    snprintf(b->out, sizeof b->out, "%s/watch.out", srv.dir);
    snprintf(b->err, sizeof b->err, "%s/watch.err", srv.dir);
    char port[16];
    snprintf(port, sizeof port, "%d", srv.port);
    pid_t pid = fork();
    if (pid == -1)
        cr_assert_fail("fork");
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int o = open(b->out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(b->err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(o, STDOUT_FILENO);
        dup2(e, STDERR_FILENO);
        const char *argv[16] = {"kvcli", "--port", port};
        int n = 3;
        for (int i = 0; args[i] && n < 15; i++)
            argv[n++] = args[i];
        argv[n] = NULL;
        execv(KVCLI_BIN, (char *const *)argv);
        _exit(127);
    }
    b->pid = pid;
}

/* Waits (bounded) for the background kvcli to exit; its exit code. */
static int reap(bg *b)
{
    for (int i = 0; i < 2000; i++) {
        int st;
        if (waitpid(b->pid, &st, WNOHANG) == b->pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        sleep_ms(10);
    }
    kill(b->pid, SIGKILL);
    waitpid(b->pid, NULL, 0);
    cr_assert_fail("kvcli watch did not exit");
    return -1;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

/* kvd's `watchers` metric. */
static long watchers(void)
{
    cli_result r = CLI(&srv, "metrics", "--json");
    cr_assert_eq(r.rc, 0, "%s", r.err);
    json_t *j = cli_json(&r);
    long n = (long)json_integer_value(json_object_get(j, "watchers"));
    json_decref(j);
    cli_result_free(&r);
    return n;
}

static void await_watchers(long want)
{
    for (int i = 0; i < 1000; i++) {
        if (watchers() == want)
            return;
        sleep_ms(10);
    }
    cr_assert_fail("kvd never had %ld watchers", want);
}

static void run_ok(const char *const *args)
{
    cli_result r = cli_run_srv(&srv, NULL, 0, args);
    cr_assert_eq(r.rc, 0, "%s: %s", args[0], r.err);
    cli_result_free(&r);
}

#define RUN(...) run_ok((const char *const[]){__VA_ARGS__, NULL})

Test(cli_watch, live_lines_until_count)
{
    bg b;
    spawn(&b, (const char *const[]){"watch", "p", "--prefix", "--count", "4", NULL});
    await_watchers(1);
    RUN("set", "p1", "a");          /* 1 */
    RUN("set", "x", "b");           /* 2: not watched */
    RUN("set", "p2=c", "p3=d e");   /* 3: one change, two keys */
    RUN("del", "p1");               /* 4 */
    RUN("set", "p4", "after");      /* 5: after --count */
    cr_expect_eq(reap(&b), 0, "stderr: %s", slurp(b.err));
    cr_expect_str_eq(slurp(b.out), "1 PUT p1 a\n3 PUT p2 c\n3 PUT p3 d e\n4 DEL p1\n");
    await_watchers(0);
}

Test(cli_watch, from_rev_json_lines)
{
    RUN("set", "k", "one");  /* 1 */
    RUN("set", "k", "two");  /* 2 */
    RUN("del", "k");         /* 3 */
    cli_result r = CLI(&srv, "watch", "k", "--from-rev", "2", "--count", "2", "--json");
    cr_assert_eq(r.rc, 0, "%s", r.err);
    char *nl = strchr(r.out, '\n');
    cr_assert_not_null(nl, "%s", r.out);
    *nl = 0;
    json_error_t e;
    json_t *a = json_loads(r.out, 0, &e), *d = json_loads(nl + 1, 0, &e);
    cr_assert(a && d, "two JSON lines: %s", r.out);
    cr_expect_eq(json_integer_value(json_object_get(a, "revision")), 2);
    cr_expect_str_eq(json_string_value(json_object_get(a, "type")), "PUT");
    cr_expect_str_eq(json_string_value(json_object_get(a, "key")), "k");
    cr_expect_str_eq(json_string_value(json_object_get(a, "value")), "two");
    cr_expect_eq(json_integer_value(json_object_get(a, "version")), 2);
    cr_expect_eq(json_integer_value(json_object_get(a, "create_revision")), 1);
    cr_expect_eq(json_integer_value(json_object_get(d, "revision")), 3);
    cr_expect_str_eq(json_string_value(json_object_get(d, "type")), "DEL");
    cr_expect_null(json_object_get(d, "value"));
    json_decref(a);
    json_decref(d);
    cli_result_free(&r);
}

Test(cli_watch, ctrl_c_exits_zero)
{
    bg b;
    spawn(&b, (const char *const[]){"watch", "k", NULL});
    await_watchers(1);
    RUN("set", "k", "v");
    for (int i = 0; i < 1000 && !strstr(slurp(b.out), "\n"); i++)
        sleep_ms(10);
    kill(b.pid, SIGINT);
    cr_expect_eq(reap(&b), 0, "stderr: %s", slurp(b.err));
    cr_expect_str_eq(slurp(b.out), "1 PUT k v\n");
    cr_expect_str_eq(slurp(b.err), "");
    await_watchers(0);
}

Test(cli_watch, lost_events_exit_6_naming_the_resume_revision)
{
    cli_server_stop(&srv);
    cli_server_start_with(&srv, (const char *const[]){"--history-versions", "2", NULL});
    for (int i = 1; i <= 6; i++) {
        char v[8];
        snprintf(v, sizeof v, "v%d", i);
        RUN("set", "k", v);
    }
    /* revisions 1..3 are gone (2 earlier values are kept: 4 and 5) */
    cli_result r = CLI(&srv, "watch", "k", "--from-rev", "1");
    cr_expect_eq(r.rc, 6, "rc %d: %s", r.rc, r.err);
    cr_expect_str_eq(r.out, "");
    cli_assert_one_error_line(&r);
    cr_expect(strstr(r.err, "--from-rev 4"), "%s", r.err);
    cli_result_free(&r);
    r = CLI(&srv, "watch", "k", "--from-rev", "4", "--count", "3");
    cr_expect_eq(r.rc, 0, "%s", r.err);
    cr_expect_str_eq(r.out, "4 PUT k v4\n5 PUT k v5\n6 PUT k v6\n");
    cli_result_free(&r);
}

Test(cli_watch, compacted_from_rev_and_usage)
{
    RUN("set", "k", "1");
    RUN("set", "k", "2");
    RUN("set", "k", "3");
    RUN("compact", "3");
    cli_result r = CLI(&srv, "watch", "k", "--from-rev", "1");
    cr_expect_eq(r.rc, 5, "%s", r.err);
    cli_assert_one_error_line(&r);
    cr_expect(strstr(r.err, "oldest is 3"), "%s", r.err);
    cli_result_free(&r);
    const char *const bad[][5] = {
        {"watch", NULL},
        {"watch", "a", "b", NULL},
        {"watch", "k", "--count", "0", NULL},
        {"watch", "k", "--from-rev", "x", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = cli_run_srv(&srv, NULL, 0, bad[i]);
        cr_expect_eq(r.rc, 2, "case %zu: rc %d", i, r.rc);
        cli_assert_one_error_line(&r);
        cli_result_free(&r);
    }
    r = CLI(&srv, "watch", "--help");
    cr_expect_eq(r.rc, 0);
    cr_expect(strstr(r.out, "REV PUT key value"), "%s", r.out);
    cli_result_free(&r);
}
