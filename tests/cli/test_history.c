/*
 * test_history.c - kvcli's history commands against a real kvd (history
 * on, its default): get --rev (one key, several), scan --rev, history
 * (text, --limit, --json), rollback of keys and of a prefix (conditional
 * too), compact; a compacted or future revision exits 5 with one line
 * naming the oldest or latest revision; bad arguments exit 2 and change
 * nothing.
 *
 * A fresh kvd numbers its changes 1, 2, 3...; each test reads the
 * revisions kvcli prints rather than assuming them.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

TestSuite(cli_history, .init = setup, .fini = teardown, .timeout = 60);

/* set KEY VALUE; returns the revision kvcli printed. */
static unsigned long long set(const char *k, const char *v)
{
    cli_result r = CLI(&srv, "set", k, v);
    cr_assert_eq(r.rc, 0, "set %s: %s", k, r.err);
    unsigned long long rev = 0;
    cr_assert_eq(sscanf(r.out, "OK (version %llu)", &rev), 1, "%s", r.out);
    cli_result_free(&r);
    return rev;
}

static void expect_out(cli_result r, int rc, const char *out)
{
    cr_expect_eq(r.rc, rc, "rc %d, err %s", r.rc, r.err);
    cr_expect_str_eq(r.out, out);
    cli_result_free(&r);
}

Test(cli_history, get_and_scan_at_a_revision)
{
    char r1[24], r2[24];
    snprintf(r1, sizeof r1, "%llu", set("a", "one"));
    snprintf(r2, sizeof r2, "%llu", set("a", "two"));
    set("b", "bee");
    expect_out(CLI(&srv, "get", "a", "--rev", r1), 0, "one\n");
    expect_out(CLI(&srv, "get", "a"), 0, "two\n");
    expect_out(CLI(&srv, "get", "a", "b", "--rev", r2), 1, "a: two\nb: (not found)\n");
    cli_result r = CLI(&srv, "get", "b", "--rev", r1);
    cr_expect_eq(r.rc, 1);
    cli_assert_one_error_line(&r);
    cr_expect(strstr(r.err, "did not exist at revision"), "%s", r.err);
    cli_result_free(&r);
    expect_out(CLI(&srv, "scan", "--rev", r2, "--values"), 0, "a: two\n");
    r = CLI(&srv, "--json", "get", "a", "--rev", r1);
    cr_assert_eq(r.rc, 0);
    json_t *j = cli_json(&r);
    cr_expect_str_eq(json_string_value(json_object_get(j, "value")), "one");
    cr_expect_eq(json_integer_value(json_object_get(j, "version")), atoll(r1));
    json_decref(j);
    cli_result_free(&r);
}

Test(cli_history, history_text_and_json)
{
    unsigned long long r1 = set("k", "v1");
    unsigned long long r2 = set("k", "v2");
    cli_result r = CLI(&srv, "del", "k");
    cr_assert_eq(r.rc, 0);
    cli_result_free(&r);
    char want[256];
    snprintf(want, sizeof want,
             "%llu (deleted)\n%llu v2  (version 2, created at %llu)\n"
             "%llu v1  (version 1, created at %llu)\n",
             r2 + 1, r2, r1, r1, r1);
    expect_out(CLI(&srv, "history", "k"), 0, want);
    snprintf(want, sizeof want, "%llu (deleted)\n", r2 + 1);
    expect_out(CLI(&srv, "history", "k", "--limit", "1"), 0, want);
    r = CLI(&srv, "--json", "history", "k");
    cr_assert_eq(r.rc, 0, "%s", r.err);
    json_t *j = cli_json(&r);
    json_t *ev = json_object_get(j, "events");
    cr_assert_eq(json_array_size(ev), 3);
    cr_expect(json_is_true(json_object_get(json_array_get(ev, 0), "deleted")));
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(ev, 1), "value")), "v2");
    cr_expect_eq(json_integer_value(json_object_get(json_array_get(ev, 2), "revision")),
                 (long long)r1);
    json_decref(j);
    cli_result_free(&r);
    expect_out(CLI(&srv, "history", "nothing"), 0, "(no changes kept in that range)\n");
}

Test(cli_history, rollback_keys_prefix_and_conditions)
{
    char to[24], since[24];
    set("u:1", "a");
    unsigned long long r = set("u:2", "b");
    snprintf(to, sizeof to, "%llu", r);
    set("u:1", "A");
    unsigned long long last = set("u:3", "c");
    char want[128];
    snprintf(want, sizeof want, "OK, 1 key restored to revision %s (version %llu)\n", to,
             last + 1);
    expect_out(CLI(&srv, "rollback", "u:1", "--to-rev", to), 0, want);
    expect_out(CLI(&srv, "get", "u:1"), 0, "a\n");
    /* keys not changed since the revision are left alone */
    char now[24];
    snprintf(now, sizeof now, "%llu", last + 1);
    snprintf(want, sizeof want, "OK, nothing to change: already as at revision %s\n", now);
    expect_out(CLI(&srv, "rollback", "u:1", "u:2", "--to-rev", now), 0, want);

    /* conditional: u:3 changed after `since` */
    snprintf(since, sizeof since, "%llu", set("u:3", "C") - 1);
    cli_result res = CLI(&srv, "rollback", "--prefix", "u:", "--to-rev", to,
                         "--if-unchanged-since", since);
    cr_expect_eq(res.rc, 1);
    cli_assert_one_error_line(&res);
    cli_result_free(&res);
    expect_out(CLI(&srv, "get", "u:3"), 0, "C\n");

    res = CLI(&srv, "--json", "rollback", "--prefix", "u:", "--to-rev", to);
    cr_assert_eq(res.rc, 0, "%s", res.err);
    json_t *j = cli_json(&res);
    /* u:3 deleted, u:1 set again (it changed after `to`, if back to the
     * same value); u:2 did not change since */
    cr_expect_eq(json_integer_value(json_object_get(j, "changed")), 2);
    json_decref(j);
    cli_result_free(&res);
    res = CLI(&srv, "get", "u:3");
    cr_expect_eq(res.rc, 1);
    cli_result_free(&res);
}

Test(cli_history, compacted_and_future_exit_5)
{
    unsigned long long r1 = set("k", "1");
    unsigned long long r2 = set("k", "2");
    char a[24], b[24], far[24];
    snprintf(a, sizeof a, "%llu", r1);
    snprintf(b, sizeof b, "%llu", r2);
    snprintf(far, sizeof far, "%llu", r2 + 1000);
    cli_result r = CLI(&srv, "get", "k", "--rev", far);
    cr_expect_eq(r.rc, 5);
    cli_assert_one_error_line(&r);
    char want[64];
    snprintf(want, sizeof want, "latest is %llu", r2);
    cr_expect(strstr(r.err, want), "%s", r.err);
    cli_result_free(&r);
    char done[96];
    snprintf(done, sizeof done, "OK, history before revision %s dropped\n", b);
    expect_out(CLI(&srv, "compact", b), 0, done);
    r = CLI(&srv, "get", "k", "--rev", a);
    cr_expect_eq(r.rc, 5);
    cli_assert_one_error_line(&r);
    snprintf(want, sizeof want, "oldest is %llu", r2);
    cr_expect(strstr(r.err, want), "%s", r.err);
    cli_result_free(&r);
    r = CLI(&srv, "--json", "history", "k", "--min-rev", a);
    cr_expect_eq(r.rc, 5);
    json_t *j = cli_json(&r);
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "status")),
                     "COMPACTED");
    json_decref(j);
    cli_result_free(&r);
    r = CLI(&srv, "compact", b);
    cr_expect_eq(r.rc, 5, "not above the compaction revision");
    cli_result_free(&r);
    expect_out(CLI(&srv, "get", "k", "--rev", b), 0, "2\n");
}

Test(cli_history, usage_errors_change_nothing)
{
    set("k", "v");
    static const char *const bad[][6] = {
        {"get", "k", "--rev", "0", NULL},
        {"get", "k", "--rev", "x", NULL},
        {"history", NULL},
        {"history", "k", "--limit", "0", NULL},
        {"rollback", "k", NULL},
        {"rollback", "k", "--to-rev", "0", NULL},
        {"rollback", "k", "--prefix", "p", "--to-rev", "1"},
        {"compact", NULL},
        {"compact", "zero", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *args[9] = {"--port", NULL};
        char port[16];
        snprintf(port, sizeof port, "%d", srv.port);
        args[1] = port;
        for (int k = 0; k < 6 && bad[i][k]; k++)
            args[2 + k] = bad[i][k];
        cli_result r = cli_run(NULL, 0, NULL, args);
        cr_expect_eq(r.rc, 2, "%s: rc %d", bad[i][0], r.rc);
        cli_assert_one_error_line(&r);
        cli_result_free(&r);
    }
    expect_out(CLI(&srv, "get", "k"), 0, "v\n");
    cli_result r = CLI(&srv, "history", "--help");
    cr_expect_eq(r.rc, 0);
    cr_expect(strstr(r.out, "Usage: kvcli history KEY"), "%s", r.out);
    cli_result_free(&r);
}
