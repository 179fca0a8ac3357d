/*
 * test_txn.c - kvcli txn: the argument form, the line form on stdin and
 * the JSON file form; which branch ran, op results, exit codes, errors;
 * set ops with a TTL (--ttl, "ttl") and bad TTLs refused with nothing
 * changed.
 */
#include <criterion/criterion.h>
#include <stdio.h>
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

TestSuite(txn, .init = setup, .fini = teardown, .timeout = 60);

static unsigned long long version_of(const char *key)
{
    cli_result r = CLI(&srv, "get", key, "--json");
    cr_assert_eq(r.rc, 0, "get %s: %s", key, r.err);
    json_t *j = cli_json(&r);
    unsigned long long v =
        (unsigned long long)json_integer_value(json_object_get(j, "version"));
    json_decref(j);
    cli_result_free(&r);
    return v;
}

Test(txn, then_branch_from_arguments)
{
    cli_result r = CLI(&srv, "set", "k=old", "a=1", "b=x");
    cr_assert_eq(r.rc, 0);
    cli_result_free(&r);
    char cmp[64];
    snprintf(cmp, sizeof cmp, "version(k)=%llu", version_of("k"));

    r = CLI(&srv, "txn", cmp, "exists(a)", "value(b)=x", "absent(zz)",
            "--then", "set k 'new value'", "del a", "get b", "get nope",
            "--else", "get k");
    cr_assert_eq(r.rc, 0, "rc %d err %s out %s", r.rc, r.err, r.out);
    cr_assert(strncmp(r.out, "THEN: compares held (version ", 29) == 0,
              "out: %s", r.out);
    cr_assert(strstr(r.out, "\nset k: OK\ndel a: OK\nget b: x\n"
                            "get nope: (not found)\n") != NULL,
              "out: %s", r.out);
    cli_result_free(&r);

    r = CLI(&srv, "get", "k", "a");
    cr_assert_str_eq(r.out, "k: new value\na: (not found)\n");
    cli_result_free(&r);
}

Test(txn, else_branch_exit_code_and_json)
{
    cli_result r = CLI(&srv, "set", "k", "v");
    cli_result_free(&r);
    r = CLI(&srv, "txn", "version(k)=999999", "--then", "set k x", "--else",
            "get k", "del gone", "--json");
    cr_assert_eq(r.rc, 1, "rc %d err %s", r.rc, r.err);
    json_t *j = cli_json(&r);
    cr_assert(json_is_false(json_object_get(j, "succeeded")));
    cr_assert_str_eq(json_string_value(json_object_get(j, "branch")), "else");
    json_t *res = json_object_get(j, "results");
    cr_assert_eq(json_array_size(res), 2);
    json_t *g = json_array_get(res, 0);
    cr_assert_str_eq(json_string_value(json_object_get(g, "op")), "get");
    cr_assert_str_eq(json_string_value(json_object_get(g, "key")), "k");
    cr_assert_str_eq(json_string_value(json_object_get(g, "status")), "ok");
    cr_assert_str_eq(json_string_value(json_object_get(g, "value")), "v");
    cr_assert_gt(json_integer_value(json_object_get(g, "version")), 0);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(res, 1),
                                                       "status")),
                     "not_found");
    json_decref(j);
    cli_result_free(&r);

    r = CLI(&srv, "txn", "exists(nokey)", "--then", "set k x");
    cr_assert_eq(r.rc, 1);
    cr_assert_str_eq(r.out, "ELSE: compares failed\n");
    cli_result_free(&r);
    r = CLI(&srv, "get", "k");
    cr_assert_str_eq(r.out, "v\n");
    cli_result_free(&r);
}

Test(txn, line_form_on_stdin)
{
    cli_result r = CLI(&srv, "set", "lock", "held");
    cli_result_free(&r);
    const char *in = "# a lock\n"
                     "absent(lock)\n"
                     "\n"
                     "set lock me\n"
                     "\n"
                     "get lock\n"
                     "set other \"two words\"\n";
    r = CLI_IN(&srv, in, "txn");
    cr_assert_eq(r.rc, 1, "rc %d err %s", r.rc, r.err);
    cr_assert(strncmp(r.out, "ELSE: compares failed (version ", 31) == 0,
              "out: %s", r.out);
    cr_assert(strstr(r.out, ")\nget lock: held\nset other: OK\n") != NULL,
              "out: %s", r.out);
    cli_result_free(&r);
}

Test(txn, json_file_form_with_base64)
{
    char path[128];
    snprintf(path, sizeof path, "%s/txn.json", srv.dir);
    /* "AAEC" = bytes 00 01 02 */
    const char *doc =
        "{\"compare\": [{\"key\": \"j\", \"version\": 0},"
        "              {\"key\": \"j2\", \"exists\": false}],"
        " \"then\": [{\"op\": \"set\", \"key\": \"j\","
        "             \"value\": {\"base64\": \"AAEC\"}},"
        "            {\"op\": \"set\", \"key\": \"j2\", \"value\": \"🎂\"},"
        "            {\"op\": \"get\", \"key\": \"j\"}],"
        " \"else\": []}";
    cli_write_file(path, doc, strlen(doc));
    cli_result r = CLI(&srv, "txn", "--file", path, "--json");
    cr_assert_eq(r.rc, 0, "rc %d err %s", r.rc, r.err);
    json_t *j = cli_json(&r);
    cr_assert(json_is_true(json_object_get(j, "succeeded")));
    json_t *g = json_array_get(json_object_get(j, "results"), 2);
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(g, "value"), "base64")),
                     "AAEC", "out: %s", r.out);
    json_decref(j);
    cli_result_free(&r);

    r = CLI(&srv, "get", "j", "--raw");
    cr_assert_eq(r.outlen, 3);
    cr_assert(memcmp(r.out, "\0\1\2", 3) == 0);
    cli_result_free(&r);
    r = CLI(&srv, "get", "j", "j2");
    cr_assert_str_eq(r.out, "j: \\x00\\x01\\x02\nj2: 🎂\n");
    cli_result_free(&r);

    /* The same file again: now the compares fail. */
    r = CLI(&srv, "txn", "--file", path);
    cr_assert_eq(r.rc, 1);
    cli_result_free(&r);
}

Test(txn, syntax_errors_are_usage_errors)
{
    char bad_json[128];
    snprintf(bad_json, sizeof bad_json, "%s/bad.json", srv.dir);
    cli_write_file(bad_json, "{\"then\": [{\"op\": \"frob\"}]}", 26);
    const char *const *cases[] = {
        (const char *const[]){"txn", "versoin(k)=1", NULL},
        (const char *const[]){"txn", "version(k)=x", NULL},
        (const char *const[]){"txn", "exists()", NULL},
        (const char *const[]){"txn", "--then", "put k v", NULL},
        (const char *const[]){"txn", "--then", "set k", NULL},
        (const char *const[]){"txn", "--then", "set k 'unterminated", NULL},
        (const char *const[]){"txn", "--else", "get k", "--then", "get k",
                              NULL},
        (const char *const[]){"txn", "--file", bad_json, NULL},
        (const char *const[]){"txn", "--file", "/nonexistent.json", NULL},
        (const char *const[]){"txn", NULL},
        (const char *const[]){"txn", "--then", "--else", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* stdin is /dev/null: "txn" alone would read an empty txn. */
        cli_result r = cli_run_srv(&srv, NULL, 0, cases[i]);
        cr_expect_eq(r.rc, 2, "case %zu: rc %d err %s", i, r.rc, r.err);
        cli_assert_one_error_line(&r);
        cr_expect_str_eq(r.out, "");
        cli_result_free(&r);
    }
}

/* expire_at_ms and ttl_ms of key ("ttl --json"); both 0 without expiry. */
static void expiry_of(const char *key, long long *at, long long *left)
{
    cli_result r = CLI(&srv, "--json", "ttl", key);
    cr_assert_eq(r.rc, 0, "ttl %s: rc %d err %s", key, r.rc, r.err);
    json_t *j = cli_json(&r);
    *at = json_integer_value(json_object_get(j, "expire_at_ms"));
    *left = json_integer_value(json_object_get(j, "ttl_ms"));
    json_decref(j);
    cli_result_free(&r);
}

Test(txn, set_ops_with_a_ttl_in_every_form)
{
    long long at, left;
    /* arguments: --ttl D and --ttl=D, in then and else */
    cli_result r = CLI(&srv, "txn", "absent(a)", "--then", "set a 1 --ttl 30m",
                       "set b 'two words' --ttl=90s", "set c 3", "--else", "get a");
    cr_assert_eq(r.rc, 0, "rc %d err %s", r.rc, r.err);
    cr_assert(strstr(r.out, "\nset a: OK\nset b: OK\nset c: OK\n"), "%s", r.out);
    cli_result_free(&r);
    expiry_of("a", &at, &left);
    cr_assert(left > 30 * 60000 - 60000 && left <= 30 * 60000, "a: %lld ms left", left);
    expiry_of("b", &at, &left);
    cr_assert(left > 30000 && left <= 90000, "b: %lld ms left", left);
    expiry_of("c", &at, &left);
    cr_assert_eq(at, 0, "no --ttl: no expiry");
    r = CLI(&srv, "get", "b");
    cr_assert_str_eq(r.out, "two words\n");
    cli_result_free(&r);
    r = CLI(&srv, "txn", "absent(a)", "--then", "get a", "--else", "set c 4 --ttl 2h");
    cr_assert_eq(r.rc, 1, "the else branch: rc %d err %s", r.rc, r.err);
    cli_result_free(&r);
    expiry_of("c", &at, &left);
    cr_assert(left > 2 * 3600000 - 60000 && left <= 2 * 3600000, "c: %lld ms left", left);
    /* a set without --ttl removes an expiry, as set does */
    r = CLI(&srv, "txn", "--then", "set a 5");
    cr_assert_eq(r.rc, 0, "rc %d err %s", r.rc, r.err);
    cli_result_free(&r);
    expiry_of("a", &at, &left);
    cr_assert_eq(at, 0);

    /* line form */
    static const char lines[] = "exists(a)\n\nset l 1 --ttl 5m\n\nget a\n";
    r = CLI_IN(&srv, lines, "txn");
    cr_assert_eq(r.rc, 0, "rc %d err %s", r.rc, r.err);
    cli_result_free(&r);
    expiry_of("l", &at, &left);
    cr_assert(left > 4 * 60000 && left <= 5 * 60000, "l: %lld ms left", left);

    /* JSON form */
    char path[128];
    snprintf(path, sizeof path, "%s/ttl.json", srv.dir);
    static const char js[] = "{\"then\": [{\"op\": \"set\", \"key\": \"j\", \"value\": \"v\","
                             " \"ttl\": \"1500ms\"}, {\"op\": \"set\", \"key\": \"k\","
                             " \"value\": \"w\", \"ttl\": \"1h\"}]}";
    cli_write_file(path, js, sizeof js - 1);
    r = CLI(&srv, "txn", "--file", path);
    cr_assert_eq(r.rc, 0, "rc %d err %s", r.rc, r.err);
    cli_result_free(&r);
    expiry_of("k", &at, &left);
    cr_assert(left > 3600000 - 60000 && left <= 3600000, "k: %lld ms left", left);
}

Test(txn, bad_ttls_change_nothing)
{
    cli_result r = CLI(&srv, "set", "a=orig", "b=orig");
    cr_assert_eq(r.rc, 0);
    cli_result_free(&r);
    static const char *const bad[] = {"0", "0s", "-5s", "5x", "abc", "1.5s", "10S",
                                      "99999999999999999999", "5000000000h"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char op[64];
        snprintf(op, sizeof op, "set a new --ttl %s", bad[i]);
        /* a good op first: the whole transaction is refused */
        r = CLI(&srv, "txn", "--then", "set b new", op);
        cr_assert_eq(r.rc, 2, "'%s': rc %d", op, r.rc);
        cli_assert_one_error_line(&r);
        cr_assert_not_null(strstr(r.err, "ms, s, m or h"), "%s", r.err);
        cr_assert_not_null(strstr(r.err, bad[i]), "%s", r.err);
        cr_assert_str_eq(r.out, "");
        cli_result_free(&r);
    }
    /* malformed --ttl: missing duration, extra words, --ttl on another op */
    static const char *const shapes[] = {"set a new --ttl", "set a new --ttl 5s x",
                                         "set a new --ttlx 5s", "set a --ttl 5s",
                                         "get a --ttl 5s", "del a --ttl 5s"};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        r = CLI(&srv, "txn", "--then", "set b new", shapes[i]);
        cr_assert_eq(r.rc, 2, "'%s': rc %d", shapes[i], r.rc);
        cli_assert_one_error_line(&r);
        cli_result_free(&r);
    }
    char path[128];
    snprintf(path, sizeof path, "%s/bad.json", srv.dir);
    static const char *const js[] = {
        "{\"then\": [{\"op\": \"set\", \"key\": \"a\", \"value\": \"v\", \"ttl\": \"5y\"}]}",
        "{\"then\": [{\"op\": \"set\", \"key\": \"a\", \"value\": \"v\", \"ttl\": 30}]}",
        "{\"then\": [{\"op\": \"get\", \"key\": \"a\", \"ttl\": \"30s\"}]}"};
    for (size_t i = 0; i < sizeof js / sizeof js[0]; i++) {
        cli_write_file(path, js[i], strlen(js[i]));
        r = CLI(&srv, "txn", "--file", path);
        cr_assert_eq(r.rc, 2, "%s: rc %d", js[i], r.rc);
        cli_assert_one_error_line(&r);
        cr_assert_not_null(strstr(r.err, "\"ttl\""), "%s", r.err);
        cli_result_free(&r);
    }
    r = CLI(&srv, "get", "a", "b");
    cr_assert_str_eq(r.out, "a: orig\nb: orig\n", "nothing changed");
    cli_result_free(&r);
    r = CLI(&srv, "ttl", "a");
    cr_assert_str_eq(r.out, "no expiry\n");
    cli_result_free(&r);
}
