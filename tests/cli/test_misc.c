/*
 * test_misc.c - kvcli scan, metrics, ping, version, help, and the
 * connection conventions: --host/--port/--unix/--password/--timeout and
 * their KV_* variables, error lines and exit codes when kvd is down, slow,
 * wants a password or is not kvd at all.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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

TestSuite(misc, .init = setup, .fini = teardown, .timeout = 60);

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

Test(misc, scan_prefix_limit_values_json)
{
    cli_result r = CLI(&srv, "set", "p:1=a", "p:2=b", "p:3=c", "p:4=d",
                       "p:5=e", "q:1=z");
    cr_assert_eq(r.rc, 0);
    cli_result_free(&r);

    r = CLI(&srv, "scan", "p:");
    cr_assert_eq(r.rc, 0, "err %s", r.err);
    cr_assert_eq(count_lines(r.out), 5, "out: %s", r.out);
    cr_assert_null(strstr(r.out, "q:1"));
    cr_assert_not_null(strstr(r.out, "p:3\n"));
    cli_result_free(&r);

    r = CLI(&srv, "scan");
    cr_assert_eq(count_lines(r.out), 6);
    cli_result_free(&r);

    r = CLI(&srv, "scan", "p:", "--limit", "2");
    cr_assert_eq(r.rc, 0);
    cr_assert_eq(count_lines(r.out), 2, "out: %s", r.out);
    cli_result_free(&r);

    r = CLI(&srv, "scan", "q", "--values");
    cr_assert_str_eq(r.out, "q:1: z\n");
    cli_result_free(&r);

    r = CLI(&srv, "scan", "p:", "--values", "--json");
    json_t *j = cli_json(&r);
    cr_assert(json_is_array(j));
    cr_assert_eq(json_array_size(j), 5);
    json_t *e = json_array_get(j, 0);
    cr_assert(json_is_string(json_object_get(e, "key")));
    cr_assert(json_is_string(json_object_get(e, "value")));
    cr_assert(json_is_integer(json_object_get(e, "version")));
    json_decref(j);
    cli_result_free(&r);

    r = CLI(&srv, "scan", "--limit", "0");
    cr_assert_eq(r.rc, 2);
    cli_result_free(&r);
}

/* The audit's repro: values adding up to more than the 64 MiB + 64 KiB
 * frame limit. `kvcli scan` lists keys only (no values fetched), and
 * `--values` gets pages that each fit the limit; before, both exited 4
 * with "response frame of ... bytes exceeds the limit". */
Test(misc, scan_values_over_the_frame_limit, .timeout = 240)
{
    enum { N = 17 };
    size_t vlen = (size_t)4 << 20; /* 17 x 4 MiB = 68 MiB */
    char *val = malloc(vlen);
    cr_assert_not_null(val);
    memset(val, 'a', vlen);
    char path[128];
    snprintf(path, sizeof path, "%s/4m.bin", srv.dir);
    cli_write_file(path, val, vlen);
    free(val);
    for (int i = 0; i < N; i++) {
        char key[16];
        snprintf(key, sizeof key, "big:%d", i);
        cli_result r = CLI(&srv, "set", key, "--file", path);
        cr_assert_eq(r.rc, 0, "err %s", r.err);
        cli_result_free(&r);
    }

    cli_result r = CLI(&srv, "scan", "big:");
    cr_assert_eq(r.rc, 0, "err %s", r.err);
    cr_assert_eq(count_lines(r.out), N, "out: %s", r.out);
    cr_assert_not_null(strstr(r.out, "big:16\n"));
    cli_result_free(&r);

    r = CLI(&srv, "scan", "big:", "--values");
    cr_assert_eq(r.rc, 0, "err %s", r.err);
    cr_assert_eq(count_lines(r.out), N);
    cr_assert_eq(r.outlen, N * (vlen + 2) + 10 * 6 + 7 * 7, "every value whole");
    cli_result_free(&r);
}

Test(misc, metrics_text_and_json)
{
    cli_result r = CLI(&srv, "set", "m", "12345");
    cli_result_free(&r);
    r = CLI(&srv, "get", "m");
    cli_result_free(&r);

    r = CLI(&srv, "metrics");
    cr_assert_eq(r.rc, 0, "err %s", r.err);
    const char *want[] = {"Store\n", "\n  keys ", "\n  key_bytes ",
                          "\n  value_bytes ", "Operations\n", "\n  gets ",
                          "\n  get_hits ", "\n  cas_failures ", "\n  sets ",
                          "\n  deletes ", "Server\n", "\n  bytes_in ",
                          "\n  latency_us "};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_expect_not_null(strstr(r.out, want[i]), "no '%s' in:\n%s", want[i],
                           r.out);
    /* One naming style: every line is a section title or a snake_case
     * name (as in --json) and numbers, rounded to at most one decimal. */
    char *copy = strdup(r.out), *save = NULL;
    for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (l[0] != ' ') {
            cr_expect(strcmp(l, "Store") == 0 || strcmp(l, "Operations") == 0 ||
                          strcmp(l, "Index") == 0 || strcmp(l, "Server") == 0,
                      "section '%s'", l);
            continue;
        }
        char *p = l + strspn(l, " ");
        size_t nl = strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789_");
        cr_expect(nl > 0 && (p[nl] == ' ' || p[nl] == '\0'), "name in '%s'", l);
        for (char *d = strchr(p + nl, '.'); d; d = strchr(d + 1, '.'))
            if (d[-1] >= '0' && d[-1] <= '9' && strncmp(d - 3, "p99", 3) != 0)
                cr_expect(d[1] >= '0' && d[1] <= '9' && (d[2] < '0' || d[2] > '9'),
                          "not rounded to one decimal: '%s'", l);
    }
    free(copy);
    /* The latency percentiles in order, p50 p99 p99.9, one table. */
    const char *lat = strstr(r.out, "\n  latency_us ");
    cr_assert_not_null(lat);
    const char *p50 = strstr(lat, " p50"), *p99 = strstr(lat, " p99 "),
               *p999 = strstr(lat, " p99.9\n");
    cr_assert(p50 && p99 && p999 && p50 < p99 && p99 < p999, "%.80s", lat);
    cr_assert_not_null(strstr(lat, "\n    get "), "%s", lat);
    cr_assert_null(strstr(r.out, "latency_p"), "maps also listed: %s", r.out);
    cli_result_free(&r);

    r = CLI(&srv, "metrics", "--json");
    cr_assert_eq(r.rc, 0);
    json_t *j = cli_json(&r);
    cr_assert_eq(json_integer_value(json_object_get(j, "keys")), 1);
    cr_assert_eq(json_integer_value(json_object_get(j, "value_bytes")), 5);
    cr_assert_geq(json_integer_value(json_object_get(j, "sets")), 1);
    cr_assert_geq(json_integer_value(json_object_get(j, "gets")), 1);
    /* The server adds its own metrics besides the store's 15. */
    cr_assert_gt(json_object_size(j), 15, "out: %s", r.out);
    /* Floats rounded to 0.001 (nanoseconds), in the server's order. */
    const char *maps[] = {"latency_p50_us", "latency_p99_us", "latency_p999_us"};
    for (size_t i = 0; i < 3; i++) {
        json_t *m = json_object_get(j, maps[i]);
        cr_assert(json_is_object(m), "%s: %s", maps[i], r.out);
        double v = json_real_value(json_object_get(m, "get"));
        cr_assert_gt(v, 0, "%s", r.out);
        cr_assert_lt(fabs(v * 1000 - round(v * 1000)), 1e-6, "%s: %.17g", maps[i], v);
    }
    cr_assert(strstr(r.out, "latency_p50_us") < strstr(r.out, "latency_p99_us") &&
              strstr(r.out, "latency_p99_us") < strstr(r.out, "latency_p999_us"));
    json_decref(j);
    cli_result_free(&r);
}

Test(misc, ping_and_version)
{
    cli_result r = CLI(&srv, "ping");
    cr_assert_eq(r.rc, 0, "err %s", r.err);
    cr_assert(strncmp(r.out, "PONG (", 6) == 0, "out: %s", r.out);
    cli_result_free(&r);

    r = CLI(&srv, "ping", "--json");
    json_t *j = cli_json(&r);
    cr_assert(json_is_true(json_object_get(j, "ok")));
    cr_assert(json_is_number(json_object_get(j, "rtt_ms")));
    /* Rounded to the microsecond: at most 3 decimals in the text. */
    const char *rtt = strstr(r.out, "\"rtt_ms\":");
    cr_assert_not_null(rtt);
    const char *dot = strchr(rtt, '.');
    if (dot && dot < strchr(rtt, '}'))
        cr_assert_leq(strspn(dot + 1, "0123456789"), 3, "out: %s", r.out);
    json_decref(j);
    cli_result_free(&r);

    r = CLI(&srv, "version");
    cr_assert_eq(r.rc, 0);
    cr_assert(strncmp(r.out, "kvcli 0.", 8) == 0, "out: %s", r.out);
    cr_assert_not_null(strstr(r.out, "\nserver: kvd "), "out: %s", r.out);
    cli_result_free(&r);

    r = CLI(&srv, "version", "--json");
    j = cli_json(&r);
    cr_assert(json_is_string(json_object_get(j, "client")));
    json_t *s = json_object_get(j, "server");
    cr_assert_str_eq(json_string_value(json_object_get(s, "name")), "kvd");
    cr_assert_eq(json_integer_value(json_object_get(s, "protocol")), 7,
                 "the version negotiated with kvd (1..7)");
    json_decref(j);
    cli_result_free(&r);

    /* Without a server the client part still works. */
    char port[16];
    snprintf(port, sizeof port, "%d", cli_closed_port());
    r = cli_run(NULL, 0, NULL,
                (const char *const[]){"--port", port, "version", NULL});
    cr_assert_eq(r.rc, 0);
    cr_assert_not_null(strstr(r.out, "server: not reachable ("), "out %s",
                       r.out);
    cli_result_free(&r);
}

Test(misc, dash_dash_version_is_the_version_command)
{
    const char *const *pairs[][2] = {
        {(const char *const[]){"version", NULL},
         (const char *const[]){"--version", NULL}},
        {(const char *const[]){"version", "--json", NULL},
         (const char *const[]){"--json", "--version", NULL}},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        cli_result a = cli_run_srv(&srv, NULL, 0, pairs[i][0]);
        cli_result b = cli_run_srv(&srv, NULL, 0, pairs[i][1]);
        cr_assert_eq(a.rc, 0, "err %s", a.err);
        cr_assert_eq(b.rc, 0, "case %zu: rc %d err %s", i, b.rc, b.err);
        cr_assert_str_eq(b.out, a.out);
        cr_assert_str_eq(b.err, "");
        cli_result_free(&a);
        cli_result_free(&b);
    }
    cli_result r = CLI(&srv, "--version");
    cr_assert_not_null(strstr(r.out, "\nserver: kvd "), "out: %s", r.out);
    cli_result_free(&r);
    r = cli_run(NULL, 0, NULL, (const char *const[]){"--version", "--help",
                                                     NULL});
    cr_assert_eq(r.rc, 0);
    cr_assert_not_null(strstr(r.out, "kvcli --version"), "out: %s", r.out);
    cli_result_free(&r);
}

Test(misc, commands_in_any_case_and_typos_get_a_suggestion)
{
    cli_result r = CLI(&srv, "SET", "k", "v");
    cr_assert_eq(r.rc, 0, "err %s", r.err);
    cli_result_free(&r);
    r = CLI(&srv, "Get", "k");
    cr_assert_eq(r.rc, 0, "err %s", r.err);
    cr_assert_str_eq(r.out, "v\n");
    cli_result_free(&r);
    r = CLI(&srv, "DELETE", "k");
    cr_assert_eq(r.rc, 0, "err %s", r.err);
    cli_result_free(&r);
    r = cli_run(NULL, 0, NULL, (const char *const[]){"PING", "--help", NULL});
    cr_assert_eq(r.rc, 0);
    cr_assert(strncmp(r.out, "Usage: kvcli ping", 17) == 0, "%s", r.out);
    cli_result_free(&r);

    const struct {
        const char *typed, *want;
    } typos[] = {
        {"gte", "kvcli: unknown command 'gte'; did you mean 'get'?\n"},
        {"sacn", "kvcli: unknown command 'sacn'; did you mean 'scan'?\n"},
        {"DLE", "kvcli: unknown command 'DLE'; did you mean 'del'?\n"},
        {"metric", "kvcli: unknown command 'metric'; did you mean"
                   " 'metrics'?\n"},
        {"frobnicate", "kvcli: unknown command 'frobnicate' (try 'kvcli"
                       " help')\n"},
        {"x", "kvcli: unknown command 'x' (try 'kvcli help')\n"},
    };
    for (size_t i = 0; i < sizeof typos / sizeof typos[0]; i++) {
        r = cli_run(NULL, 0, NULL,
                    (const char *const[]){typos[i].typed, "k", NULL});
        cr_expect_eq(r.rc, 2, "%s: rc %d", typos[i].typed, r.rc);
        cr_expect_str_eq(r.err, typos[i].want);
        cr_expect_str_eq(r.out, "");
        cli_result_free(&r);
    }
    r = cli_run(NULL, 0, NULL, (const char *const[]){"help", "gte", NULL});
    cr_expect_eq(r.rc, 2);
    cr_expect_str_eq(r.err, "kvcli: unknown command 'gte'; did you mean"
                            " 'get'?\n");
    cli_result_free(&r);
}

/* --json: one document per command, errors included; exit codes kept. */
Test(misc, json_errors_are_json_on_stdout)
{
    char port[16];
    snprintf(port, sizeof port, "%d", cli_closed_port());
    const struct {
        const char *const *args;
        int rc;
        const char *status, *msg;
    } cases[] = {
        {(const char *const[]){"--json", "--port", port, "get", "k", NULL}, 3,
         "CONNECT", "cannot connect to 127.0.0.1:"},
        {(const char *const[]){"gte", "k", "--json", NULL}, 2, "USAGE",
         "did you mean 'get'?"},
        {(const char *const[]){"--json", "--bogus", "ping", NULL}, 2, "USAGE",
         "unknown option '--bogus'"},
        {(const char *const[]){"set", "a=1", "b", "c=2", "--json", NULL}, 2,
         "USAGE", "'b' is not KEY=VALUE"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cli_result r = cli_run(NULL, 0, NULL, cases[i].args);
        cr_expect_eq(r.rc, cases[i].rc, "case %zu: rc %d", i, r.rc);
        cli_assert_one_error_line(&r);
        json_t *j = cli_json(&r);
        json_t *e = json_object_get(j, "error");
        cr_expect_str_eq(json_string_value(json_object_get(e, "status")),
                         cases[i].status, "case %zu", i);
        const char *m = json_string_value(json_object_get(e, "message"));
        cr_assert_not_null(m, "case %zu: %s", i, r.out);
        cr_expect_not_null(strstr(m, cases[i].msg), "case %zu: %s", i, m);
        cr_expect_not_null(strstr(r.err, m), "the same text on stderr");
        cr_expect_eq(json_integer_value(json_object_get(j, "exit")),
                     cases[i].rc);
        json_decref(j);
        cli_result_free(&r);
    }

    /* A command that wrote its own document adds no second one. */
    cli_result r = CLI(&srv, "get", "missing", "--json");
    cr_assert_eq(r.rc, 1);
    json_t *j = cli_json(&r);
    cr_assert(json_is_false(json_object_get(j, "found")));
    cr_assert_null(json_object_get(j, "error"));
    json_decref(j);
    cli_result_free(&r);

    /* At the prompt each failing line gets its own object. */
    static const char lines[] = "frob --json\nget k --json\n";
    r = cli_run_srv(&srv, lines, sizeof lines - 1,
                    (const char *const[]){NULL});
    cr_assert_eq(r.rc, 1);
    cr_assert(strncmp(r.out, "{\"error\":{\"status\":\"USAGE\"", 26) == 0,
              "out: %s", r.out);
    cr_assert_not_null(strstr(r.out, "}\n{\"key\":\"k\",\"found\":false}\n"),
                       "out: %s", r.out);
    cli_result_free(&r);
}

Test(misc, help_for_every_command)
{
    cli_result r = cli_run(NULL, 0, NULL, (const char *const[]){"--help", NULL});
    cr_assert_eq(r.rc, 0);
    const char *want[] = {"Exit codes:", "--host", "--port", "--unix",
                          "--password", "--timeout", "--json", "KV_HOST",
                          "Examples:", "~/.kvcli_history"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_expect_not_null(strstr(r.out, want[i]), "no '%s'", want[i]);
    cli_result_free(&r);
    const char *cmds[] = {"set", "get", "del", "txn", "scan", "export",
                          "import", "metrics", "ping", "version", "help"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        r = cli_run(NULL, 0, NULL, (const char *const[]){cmds[i], "--help",
                                                         NULL});
        cr_expect_eq(r.rc, 0, "%s --help: rc %d", cmds[i], r.rc);
        cr_expect(strncmp(r.out, "Usage: kvcli ", 13) == 0, "%s", cmds[i]);
        cr_expect_not_null(strstr(r.out, "Exit codes:"), "%s", cmds[i]);
        cli_result_free(&r);
        r = cli_run(NULL, 0, NULL, (const char *const[]){"help", cmds[i],
                                                         NULL});
        cr_expect_eq(r.rc, 0);
        cli_result_free(&r);
    }
}

Test(misc, kvd_down_gives_one_actionable_line)
{
    int port = cli_closed_port();
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    const char *cmds[][3] = {{"get", "k", NULL}, {"set", "k", "v"},
                             {"ping", NULL, NULL}, {"metrics", NULL, NULL}};
    for (size_t i = 0; i < 4; i++) {
        cli_result r = cli_run(NULL, 0, NULL,
                               (const char *const[]){"--port", p, cmds[i][0],
                                                     cmds[i][1], cmds[i][2],
                                                     NULL});
        cr_assert_eq(r.rc, 3, "%s: rc %d", cmds[i][0], r.rc);
        cli_assert_one_error_line(&r);
        char want[128];
        snprintf(want, sizeof want, "kvcli: cannot connect to 127.0.0.1:%d: ",
                 port);
        cr_assert(strncmp(r.err, want, strlen(want)) == 0, "err: %s", r.err);
        cr_assert_not_null(strstr(r.err, "refused"), "err: %s", r.err);
        cr_assert_not_null(strstr(r.err, "(is kvd running?)"), "err: %s",
                           r.err);
        cr_assert_str_eq(r.out, "");
        cli_result_free(&r);
    }
}

Test(misc, endpoints_are_tried_when_the_address_does_not_answer)
{
    /* the address refuses; the second endpoint is the server */
    int closed = cli_closed_port();
    char p[16], list[64], bad[64];
    snprintf(p, sizeof p, "%d", closed);
    snprintf(list, sizeof list, "127.0.0.1:%d,127.0.0.1:%d", closed, srv.port);
    cli_result r = cli_run(NULL, 0, NULL,
                           (const char *const[]){"--port", p, "--endpoints", list, "set", "ek",
                                                 "ev", NULL});
    cr_assert_eq(r.rc, 0, "rc %d: %s", r.rc, r.err);
    cli_result_free(&r);
    char env[96];
    snprintf(env, sizeof env, "KV_ENDPOINTS=%s", list);
    r = cli_run(NULL, 0, (const char *const[]){env, NULL},
                (const char *const[]){"--port", p, "get", "ek", NULL});
    cr_assert_eq(r.rc, 0, "rc %d: %s", r.rc, r.err);
    cr_assert_str_eq(r.out, "ev\n");
    cli_result_free(&r);
    /* nothing answers: one line naming the address and the others tried */
    snprintf(bad, sizeof bad, "127.0.0.1:%d,localhost:%d", closed, closed);
    r = cli_run(NULL, 0, NULL,
                (const char *const[]){"--port", p, "--endpoints", bad, "get", "ek", NULL});
    cr_assert_eq(r.rc, 3, "rc %d: %s", r.rc, r.err);
    cli_assert_one_error_line(&r);
    cr_assert_not_null(strstr(r.err, "1 other endpoint failed too"), "err: %s", r.err);
    cli_result_free(&r);
    /* a malformed list is a usage error */
    r = cli_run(NULL, 0, NULL,
                (const char *const[]){"--port", p, "--endpoints", "nohost", "get", "ek", NULL});
    cr_assert_eq(r.rc, 2, "rc %d: %s", r.rc, r.err);
    cli_assert_one_error_line(&r);
    cr_assert_not_null(strstr(r.err, "invalid --endpoints 'nohost'"), "err: %s", r.err);
    cli_result_free(&r);
}

Test(misc, environment_variables)
{
    char port[32];
    snprintf(port, sizeof port, "KV_PORT=%d", srv.port);
    cli_result r = cli_run(NULL, 0,
                           (const char *const[]){port, "KV_HOST=127.0.0.1",
                                                 NULL},
                           (const char *const[]){"set", "env", "ok", NULL});
    cr_assert_eq(r.rc, 0, "err %s", r.err);
    cli_result_free(&r);

    /* --port overrides KV_PORT. */
    char closed[32];
    snprintf(closed, sizeof closed, "%d", cli_closed_port());
    r = cli_run(NULL, 0, (const char *const[]){port, NULL},
                (const char *const[]){"get", "env", "--port", closed, NULL});
    cr_assert_eq(r.rc, 3);
    cli_result_free(&r);

    char unix_var[160];
    snprintf(unix_var, sizeof unix_var, "KV_UNIX=%s", srv.unix_path);
    r = cli_run(NULL, 0, (const char *const[]){unix_var, NULL},
                (const char *const[]){"get", "env", NULL});
    cr_assert_eq(r.rc, 0, "err %s", r.err);
    cr_assert_str_eq(r.out, "ok\n");
    cli_result_free(&r);

    r = cli_run(NULL, 0, (const char *const[]){"KV_PORT=http", NULL},
                (const char *const[]){"ping", NULL});
    cr_assert_eq(r.rc, 2);
    cli_assert_one_error_line(&r);
    cr_assert_not_null(strstr(r.err, "KV_PORT"));
    cli_result_free(&r);

    r = cli_run(NULL, 0, (const char *const[]){"KV_TIMEOUT=-1", NULL},
                (const char *const[]){"ping", NULL});
    cr_assert_eq(r.rc, 2);
    cli_result_free(&r);

    /* a short option before the command is named, not taken for one */
    r = cli_run(NULL, 0, NULL, (const char *const[]){"-p", "7379", "ping", NULL});
    cr_assert_eq(r.rc, 2);
    cli_assert_one_error_line(&r);
    cr_assert_not_null(strstr(r.err, "unknown option '-p'"), "err %s", r.err);
    cli_result_free(&r);

    /* a command's option before the command is pointed out */
    r = cli_run(NULL, 0, NULL, (const char *const[]){"--limit", "5", "scan", NULL});
    cr_assert_eq(r.rc, 2);
    cli_assert_one_error_line(&r);
    cr_assert_not_null(strstr(r.err, "value of --limit"), "err %s", r.err);
    cli_result_free(&r);
}

Test(misc, unix_socket_option)
{
    cli_result r = cli_run(NULL, 0, NULL,
                           (const char *const[]){"--unix", srv.unix_path,
                                                 "set", "u", "1", NULL});
    cr_assert_eq(r.rc, 0, "err %s", r.err);
    cli_result_free(&r);
    r = CLI(&srv, "get", "u");
    cr_assert_str_eq(r.out, "1\n");
    cli_result_free(&r);

    char missing[160];
    snprintf(missing, sizeof missing, "%s/none.sock", srv.dir);
    r = cli_run(NULL, 0, NULL,
                (const char *const[]){"--unix", missing, "ping", NULL});
    cr_assert_eq(r.rc, 3);
    cli_assert_one_error_line(&r);
    cli_result_free(&r);
}

/* A socket listening on an ephemeral loopback port, named in port[16];
 * the kernel accepts connections to it, nobody answers unless asked to. */
static int listen_loopback(char *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(fd, 4), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    snprintf(port, 16, "%d", ntohs(a.sin_port));
    return fd;
}

Test(misc, timeout_on_a_silent_server)
{
    char port[16];
    int fd = listen_loopback(port);
    cli_result r = cli_run(NULL, 0, NULL,
                           (const char *const[]){"--port", port, "--timeout",
                                                 "0.3", "ping", NULL});
    close(fd);
    cr_assert_eq(r.rc, 3, "rc %d err %s", r.rc, r.err);
    cli_assert_one_error_line(&r);
    cr_assert_not_null(strstr(r.err, "--timeout"), "err: %s", r.err);
    cli_result_free(&r);
}

/* Answers one connection the way a Redis server answers a stranger. */
static void *answer_like_redis(void *arg)
{
    int lfd = *(int *)arg;
    int c = accept(lfd, NULL, NULL);
    if (c >= 0) {
        char buf[256];
        (void)!read(c, buf, sizeof buf);
        const char reply[] = "-ERR unknown command\r\n";
        (void)!write(c, reply, sizeof reply - 1);
        close(c);
    }
    return NULL;
}

Test(misc, a_server_that_is_not_kvd)
{
    char port[16];
    int fd = listen_loopback(port);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, answer_like_redis, &fd), 0);
    cli_result r = cli_run(NULL, 0, NULL,
                           (const char *const[]){"--port", port, "--timeout", "5", "ping", NULL});
    pthread_join(th, NULL);
    close(fd);
    cr_assert_eq(r.rc, 3, "rc %d err %s", r.rc, r.err);
    cli_assert_one_error_line(&r);
    cr_assert_not_null(strstr(r.err, "is kvd listening there?"), "err: %s", r.err);
    cli_result_free(&r);
}

static cli_server pw_srv;

static void pw_setup(void)
{
    cli_server_start(&pw_srv, "s3cret");
}

static void pw_teardown(void)
{
    cli_server_stop(&pw_srv);
}

Test(auth, password_required_wrong_and_right, .init = pw_setup,
     .fini = pw_teardown, .timeout = 60)
{
    cli_result r = CLI(&pw_srv, "get", "k");
    cr_assert_eq(r.rc, 3, "rc %d err %s", r.rc, r.err);
    cli_assert_one_error_line(&r);
    cr_assert_not_null(strstr(r.err, "--password"), "err: %s", r.err);
    cli_result_free(&r);

    r = CLI(&pw_srv, "--password", "wrong", "get", "k");
    cr_assert_eq(r.rc, 3);
    cli_assert_one_error_line(&r);
    cli_result_free(&r);

    r = CLI(&pw_srv, "--password", "s3cret", "set", "k", "v");
    cr_assert_eq(r.rc, 0, "err %s", r.err);
    cli_result_free(&r);

    char port[32];
    snprintf(port, sizeof port, "KV_PORT=%d", pw_srv.port);
    r = cli_run(NULL, 0,
                (const char *const[]){port, "KV_PASSWORD=s3cret", NULL},
                (const char *const[]){"get", "k", NULL});
    cr_assert_eq(r.rc, 0, "err %s", r.err);
    cr_assert_str_eq(r.out, "v\n");
    cli_result_free(&r);
}
