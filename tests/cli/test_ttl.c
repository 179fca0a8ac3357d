/*
 * test_ttl.c - kvcli's key expiry against a real kvd: set --ttl (one key,
 * compare-and-swap, several keys in one atomic step), ttl (text and JSON,
 * absent and no-expiry told apart by exit code and output), expire with
 * its conditions, persist, a key expiring at its boundary, and bad
 * durations refused with one line and exit 2, changing nothing.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

TestSuite(ttl, .init = setup, .fini = teardown, .timeout = 60);

/* ttl_ms and expire_at_ms of key from 'ttl --json' (asserts it has one). */
static void ttl_of(const char *key, long long *left, long long *at)
{
    cli_result r = CLI(&srv, "--json", "ttl", key);
    cr_assert_eq(r.rc, 0, "ttl %s: rc %d err %s", key, r.rc, r.err);
    json_t *j = cli_json(&r);
    cr_assert(json_is_true(json_object_get(j, "found")));
    cr_assert(json_is_true(json_object_get(j, "expires")), "%s has no expiry", key);
    *left = json_integer_value(json_object_get(j, "ttl_ms"));
    *at = json_integer_value(json_object_get(j, "expire_at_ms"));
    json_decref(j);
    cli_result_free(&r);
}

Test(ttl, set_with_ttl_and_ttl_output)
{
    cli_result r = CLI(&srv, "set", "s", "v", "--ttl", "30m");
    cr_assert_eq(r.rc, 0, "err %s", r.err);
    cli_result_free(&r);
    long long left, at;
    ttl_of("s", &left, &at);
    cr_assert(left > 0 && left <= 30 * 60000, "%lld", left);
    cr_assert_gt(at, 1700000000000ll);
    r = CLI(&srv, "ttl", "s");
    cr_assert_eq(r.rc, 0);
    /* "29m 59.998s (1799998 ms; expires at 2026-...Z)" */
    cr_assert(strstr(r.out, "m ") && strstr(r.out, " ms; expires at ") &&
              r.out[strlen(r.out) - 3] == 'Z', "%s", r.out);
    cli_result_free(&r);

    /* units: ms, s, m, h, and a bare number is seconds */
    static const struct {
        const char *d;
        long long ms;
    } units[] = {{"90000ms", 90000}, {"90s", 90000}, {"90", 90000}, {"2m", 120000},
                 {"1h", 3600000}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        r = CLI(&srv, "set", "u", "v", "--ttl", units[i].d);
        cr_assert_eq(r.rc, 0, "--ttl %s: %s", units[i].d, r.err);
        cli_result_free(&r);
        ttl_of("u", &left, &at);
        cr_assert(left > 0 && left <= units[i].ms, "--ttl %s: %lld ms left", units[i].d, left);
        cr_assert_gt(left, units[i].ms - 60000, "--ttl %s: %lld ms left", units[i].d, left);
    }

    /* no expiry: exit 0, said so; absent: exit 1 */
    r = CLI(&srv, "set", "plain", "v");
    cli_result_free(&r);
    r = CLI(&srv, "ttl", "plain");
    cr_assert_eq(r.rc, 0);
    cr_assert_str_eq(r.out, "no expiry\n");
    cli_result_free(&r);
    r = CLI(&srv, "--json", "ttl", "plain");
    json_t *j = cli_json(&r);
    cr_assert(json_is_false(json_object_get(j, "expires")));
    json_decref(j);
    cli_result_free(&r);
    r = CLI(&srv, "ttl", "absent");
    cr_assert_eq(r.rc, 1);
    cli_assert_one_error_line(&r);
    cr_assert_not_null(strstr(r.err, "not found"), "%s", r.err);
    cli_result_free(&r);
    r = CLI(&srv, "--json", "ttl", "absent");
    cr_assert_eq(r.rc, 1);
    j = cli_json(&r);
    cr_assert(json_is_false(json_object_get(j, "found")));
    json_decref(j);
    cli_result_free(&r);
    /* a plain set removes the expiry */
    r = CLI(&srv, "set", "s", "w");
    cli_result_free(&r);
    r = CLI(&srv, "ttl", "s");
    cr_assert_str_eq(r.out, "no expiry\n");
    cli_result_free(&r);
}

Test(ttl, several_keys_and_cas_with_ttl)
{
    cli_result r = CLI(&srv, "set", "a=1", "b=2", "c=3", "--ttl", "1h");
    cr_assert_eq(r.rc, 0, "err %s", r.err);
    cli_result_free(&r);
    long long l1, a1, l2, a2, l3, a3;
    ttl_of("a", &l1, &a1);
    ttl_of("b", &l2, &a2);
    ttl_of("c", &l3, &a3);
    cr_assert(a1 == a2 && a2 == a3, "one expiry time for the three keys");
    /* CAS with a TTL: a mismatch changes nothing */
    r = CLI(&srv, "--json", "set", "a", "x", "--if-version", "999999", "--ttl", "5m");
    cr_assert_eq(r.rc, 1);
    cli_result_free(&r);
    ttl_of("a", &l1, &a1);
    cr_assert_eq(a1, a2);
    r = CLI(&srv, "--json", "get", "a");
    json_t *j = cli_json(&r);
    json_int_t v = json_integer_value(json_object_get(j, "version"));
    json_decref(j);
    cli_result_free(&r);
    char ver[32];
    snprintf(ver, sizeof ver, "%lld", (long long)v);
    r = CLI(&srv, "set", "a", "x", "--if-version", ver, "--ttl", "5m");
    cr_assert_eq(r.rc, 0, "err %s", r.err);
    cli_result_free(&r);
    ttl_of("a", &l1, &a1);
    cr_assert(l1 <= 5 * 60000 && a1 < a2, "the CAS set a 5 minute expiry");
}

Test(ttl, expire_and_persist)
{
    cli_result r = CLI(&srv, "set", "k", "v");
    cli_result_free(&r);
    r = CLI(&srv, "expire", "k", "10m", "--xx");
    cr_assert_eq(r.rc, 1, "no expiry yet: --xx does not hold");
    cli_assert_one_error_line(&r);
    cli_result_free(&r);
    r = CLI(&srv, "expire", "k", "10m");
    cr_assert_eq(r.rc, 0, "err %s", r.err);
    cr_assert(strncmp(r.out, "OK (version ", 12) == 0, "%s", r.out);
    cli_result_free(&r);
    long long left, at;
    ttl_of("k", &left, &at);
    cr_assert(left > 0 && left <= 600000);
    r = CLI(&srv, "--json", "expire", "k", "1h", "--lt");
    cr_assert_eq(r.rc, 1);
    json_t *j = cli_json(&r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "error")), "condition_failed");
    json_decref(j);
    cli_result_free(&r);
    r = CLI(&srv, "expire", "k", "1h", "--gt");
    cr_assert_eq(r.rc, 0, "err %s", r.err);
    cli_result_free(&r);
    ttl_of("k", &left, &at);
    cr_assert_gt(left, 600000);
    r = CLI(&srv, "expire", "k", "1s", "--nx", "--gt");
    cr_assert_eq(r.rc, 2);
    cli_assert_one_error_line(&r);
    cli_result_free(&r);
    r = CLI(&srv, "persist", "k");
    cr_assert_eq(r.rc, 0, "err %s", r.err);
    cli_result_free(&r);
    r = CLI(&srv, "ttl", "k");
    cr_assert_str_eq(r.out, "no expiry\n");
    cli_result_free(&r);
    r = CLI(&srv, "get", "k");
    cr_assert_str_eq(r.out, "v\n", "expire and persist keep the value");
    cli_result_free(&r);
    /* absent keys: exit 1 */
    r = CLI(&srv, "expire", "nope", "10s");
    cr_assert_eq(r.rc, 1);
    cli_assert_one_error_line(&r);
    cli_result_free(&r);
    r = CLI(&srv, "persist", "nope");
    cr_assert_eq(r.rc, 1);
    cli_assert_one_error_line(&r);
    cli_result_free(&r);
}

Test(ttl, a_key_expires)
{
    cli_result r = CLI(&srv, "set", "x=1", "y=2", "--ttl", "300ms");
    cr_assert_eq(r.rc, 0, "err %s", r.err);
    cli_result_free(&r);
    for (;;) { /* polled: no upper bound but the test's */
        r = CLI(&srv, "get", "x", "y");
        int both = r.rc == 0, none = r.rc == 1 && strstr(r.out, "x: (not found)") &&
                                     strstr(r.out, "y: (not found)");
        cr_assert(both || none, "keys set together expire together: %s", r.out);
        cli_result_free(&r);
        if (none)
            break;
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    r = CLI(&srv, "ttl", "x");
    cr_assert_eq(r.rc, 1);
    cli_result_free(&r);
    r = CLI(&srv, "scan", "x");
    cr_assert_eq(r.rc, 0);
    cr_assert_eq(strstr(r.out, "x"), NULL, "scan lists no expired key: %s", r.out);
    cli_result_free(&r);
}

Test(ttl, bad_durations_change_nothing)
{
    cli_result r = CLI(&srv, "set", "k", "orig");
    cli_result_free(&r);
    static const char *const bad[] = {"0", "0s", "-5s", "5x", "abc", "", "1.5s", "s", "5 s",
                                      "99999999999999999999", "5000000000h", "10S"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = CLI(&srv, "set", "k", "new", "--ttl", bad[i]);
        cr_assert_eq(r.rc, 2, "--ttl '%s': rc %d", bad[i], r.rc);
        cli_assert_one_error_line(&r);
        cr_assert_not_null(strstr(r.err, "ms, s, m or h"), "%s", r.err);
        cli_result_free(&r);
        r = CLI(&srv, "expire", "k", bad[i]);
        cr_assert_eq(r.rc, 2, "expire '%s': rc %d", bad[i], r.rc);
        cli_assert_one_error_line(&r);
        cli_result_free(&r);
    }
    r = CLI(&srv, "set", "a=1", "b=2", "--ttl", "1y");
    cr_assert_eq(r.rc, 2);
    cli_result_free(&r);
    r = CLI(&srv, "get", "k", "a");
    cr_assert_str_eq(r.out, "k: orig\na: (not found)\n");
    cli_result_free(&r);
    r = CLI(&srv, "ttl", "k");
    cr_assert_str_eq(r.out, "no expiry\n");
    cli_result_free(&r);
}
