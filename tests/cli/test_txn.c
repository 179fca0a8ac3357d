/*
 * test_txn.c - kvcli txn: the argument form, the line form on stdin and
 * the JSON file form; which branch ran, op results, exit codes, errors.
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
