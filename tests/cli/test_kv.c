/*
 * test_kv.c - kvcli set / get / del against a real kvd: text and JSON
 * output, escaping, Unicode, binary round trips through --file / stdin /
 * --raw, atomic multi-set, compare-and-swap and exit codes.
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

TestSuite(kv, .init = setup, .fini = teardown, .timeout = 60);

/* The version printed by "OK (version N)". */
static unsigned long long ok_version(const cli_result *r)
{
    unsigned long long v = 0;
    cr_assert_eq(sscanf(r->out, "OK (version %llu)", &v), 1, "out: %s",
                 r->out);
    return v;
}

Test(kv, set_then_get)
{
    cli_result r = CLI(&srv, "set", "greeting", "hello world");
    cr_assert_eq(r.rc, 0, "rc %d err %s", r.rc, r.err);
    cr_assert_gt(ok_version(&r), 0);
    cli_result_free(&r);
    r = CLI(&srv, "get", "greeting");
    cr_assert_eq(r.rc, 0);
    cr_assert_str_eq(r.out, "hello world\n");
    cr_assert_str_eq(r.err, "");
    cli_result_free(&r);
}

Test(kv, unicode_pairs_pass_through)
{
    cli_result r = CLI(&srv, "set", "cake=🎂", "horns=😈");
    cr_assert_eq(r.rc, 0, "err %s", r.err);
    cr_assert(strstr(r.out, "2 keys set") != NULL, "out: %s", r.out);
    cli_result_free(&r);
    r = CLI(&srv, "get", "cake", "horns");
    cr_assert_eq(r.rc, 0);
    cr_assert_str_eq(r.out, "cake: 🎂\nhorns: 😈\n");
    cli_result_free(&r);
}

Test(kv, non_printable_bytes_are_escaped)
{
    static const char v[] = "a\nb\tc\\d\x01" "e\xff" "f\r\x7f" "é";
    cli_result r = cli_run_srv(&srv, v, sizeof v - 1,
                               (const char *const[]){"set", "k", "-", NULL});
    cr_assert_eq(r.rc, 0, "err %s", r.err);
    cli_result_free(&r);
    r = CLI(&srv, "get", "k");
    cr_assert_eq(r.rc, 0);
    cr_assert_str_eq(r.out, "a\\nb\\tc\\\\d\\x01e\\xfff\\r\\x7fé\n");
    cli_result_free(&r);
}

Test(kv, binary_file_round_trip)
{
    unsigned char data[70000];
    srand(7);
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i % 3 == 0 ? 0 : rand());
    char path[128];
    snprintf(path, sizeof path, "%s/blob.bin", srv.dir);
    cli_write_file(path, data, sizeof data);

    cli_result r = CLI(&srv, "set", "img", "--file", path);
    cr_assert_eq(r.rc, 0, "err %s", r.err);
    cli_result_free(&r);
    r = CLI(&srv, "get", "--raw", "img");
    cr_assert_eq(r.rc, 0);
    cr_assert_eq(r.outlen, sizeof data);
    cr_assert(memcmp(r.out, data, sizeof data) == 0, "bytes differ");
    cli_result_free(&r);

    /* The same through standard input. */
    r = cli_run_srv(&srv, data, 1000,
                    (const char *const[]){"set", "img2", "-", NULL});
    cr_assert_eq(r.rc, 0, "err %s", r.err);
    cli_result_free(&r);
    r = CLI(&srv, "get", "img2", "--raw");
    cr_assert_eq(r.outlen, 1000);
    cr_assert(memcmp(r.out, data, 1000) == 0);
    cli_result_free(&r);

    /* JSON: not UTF-8, so base64. */
    r = CLI(&srv, "get", "img2", "--json");
    json_t *j = cli_json(&r);
    const char *b64 = json_string_value(
        json_object_get(json_object_get(j, "value"), "base64"));
    cr_assert_not_null(b64, "out: %s", r.out);
    cr_assert_eq(strlen(b64), 1336); /* 4 * ceil(1000 / 3) */
    cr_assert_eq(b64[0], 'A'); /* data[0] is 0 */
    json_decref(j);
    cli_result_free(&r);
}

Test(kv, empty_value)
{
    cli_result r = cli_run_srv(&srv, "", 0,
                               (const char *const[]){"set", "e", "-", NULL});
    cr_assert_eq(r.rc, 0, "err %s", r.err);
    cli_result_free(&r);
    r = CLI(&srv, "get", "e", "--raw");
    cr_assert_eq(r.rc, 0);
    cr_assert_eq(r.outlen, 0);
    cli_result_free(&r);
    r = CLI(&srv, "set", "e2", "");
    cr_assert_eq(r.rc, 0);
    cli_result_free(&r);
    r = CLI(&srv, "get", "e2");
    cr_assert_str_eq(r.out, "\n");
    cli_result_free(&r);
}

Test(kv, missing_keys)
{
    cli_result r = CLI(&srv, "get", "nope");
    cr_assert_eq(r.rc, 1);
    cr_assert_str_eq(r.out, "");
    cli_assert_one_error_line(&r);
    cr_assert(strstr(r.err, "'nope' not found") != NULL, "err: %s", r.err);
    cli_result_free(&r);

    r = CLI(&srv, "set", "a", "1");
    cli_result_free(&r);
    r = CLI(&srv, "get", "a", "nope");
    cr_assert_eq(r.rc, 1);
    cr_assert_str_eq(r.out, "a: 1\nnope: (not found)\n");
    cli_result_free(&r);

    r = CLI(&srv, "get", "a", "nope", "--json");
    cr_assert_eq(r.rc, 1);
    json_t *j = cli_json(&r);
    cr_assert(json_is_array(j));
    cr_assert_eq(json_array_size(j), 2);
    cr_assert(json_is_true(json_object_get(json_array_get(j, 0), "found")));
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(j, 0),
                                                       "value")), "1");
    cr_assert(json_is_false(json_object_get(json_array_get(j, 1), "found")));
    cr_assert_null(json_object_get(json_array_get(j, 1), "value"));
    json_decref(j);
    cli_result_free(&r);
}

Test(kv, multi_set_is_all_or_nothing)
{
    /* The second key is over kvd's 64 KiB key limit: nothing is set. */
    size_t big = 70000;
    char *pair = malloc(big + 3);
    memset(pair, 'x', big);
    memcpy(pair + big, "=2", 3);
    cli_result r = CLI(&srv, "set", "good=1", pair);
    cr_assert_eq(r.rc, 4, "rc %d err %s", r.rc, r.err);
    cli_assert_one_error_line(&r);
    cli_result_free(&r);
    free(pair);
    r = CLI(&srv, "get", "good");
    cr_assert_eq(r.rc, 1, "good was set although the MSET failed");
    cli_result_free(&r);

    r = CLI(&srv, "set", "m1=a", "m2=b", "m3=c=d", "--json");
    cr_assert_eq(r.rc, 0, "err %s", r.err);
    json_t *j = cli_json(&r);
    cr_assert(json_is_true(json_object_get(j, "ok")));
    cr_assert_eq(json_integer_value(json_object_get(j, "keys")), 3);
    json_int_t ver = json_integer_value(json_object_get(j, "version"));
    json_decref(j);
    cli_result_free(&r);
    /* One revision for all: each key carries the same version. */
    r = CLI(&srv, "get", "m1", "m2", "m3", "--json");
    j = cli_json(&r);
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(json_integer_value(json_object_get(json_array_get(j, i),
                                                        "version")), ver);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(j, 2),
                                                       "value")), "c=d");
    json_decref(j);
    cli_result_free(&r);
}

Test(kv, compare_and_swap)
{
    cli_result r = CLI(&srv, "set", "c", "1", "--if-version", "0");
    cr_assert_eq(r.rc, 0, "err %s", r.err);
    unsigned long long v = ok_version(&r);
    cli_result_free(&r);

    r = CLI(&srv, "set", "c", "2", "--if-version", "0");
    cr_assert_eq(r.rc, 1);
    cli_assert_one_error_line(&r);
    cr_assert(strstr(r.err, "version mismatch") != NULL, "err %s", r.err);
    cli_result_free(&r);

    char wrong[32], right[32];
    snprintf(wrong, sizeof wrong, "%llu", v + 1000);
    snprintf(right, sizeof right, "%llu", v);
    r = CLI(&srv, "--json", "set", "c", "3", "--if-version", wrong);
    cr_assert_eq(r.rc, 1);
    json_t *j = cli_json(&r);
    cr_assert(json_is_false(json_object_get(j, "ok")));
    cr_assert_str_eq(json_string_value(json_object_get(j, "error")),
                     "version_mismatch");
    json_decref(j);
    cli_result_free(&r);

    r = CLI(&srv, "set", "c", "4", "--if-version=", "x");
    cr_assert_eq(r.rc, 2);
    cli_result_free(&r);

    r = CLI(&srv, "set", "c", "5", "--if-version", right);
    cr_assert_eq(r.rc, 0, "err %s", r.err);
    cli_result_free(&r);
    r = CLI(&srv, "get", "c");
    cr_assert_str_eq(r.out, "5\n");
    cli_result_free(&r);
}

Test(kv, del_counts_and_exit_codes)
{
    cli_result r = CLI(&srv, "set", "d1=1", "d2=2");
    cli_result_free(&r);
    r = CLI(&srv, "del", "d1", "d2", "d3");
    cr_assert_eq(r.rc, 1);
    cr_assert_str_eq(r.out, "deleted 2 of 3 keys\n");
    cli_result_free(&r);
    r = CLI(&srv, "del", "d1");
    cr_assert_eq(r.rc, 1);
    cr_assert_str_eq(r.out, "(not found)\n");
    cli_result_free(&r);
    r = CLI(&srv, "set", "d4", "x");
    cli_result_free(&r);
    r = CLI(&srv, "del", "d4", "--json");
    cr_assert_eq(r.rc, 0);
    json_t *j = cli_json(&r);
    cr_assert_eq(json_integer_value(json_object_get(j, "deleted")), 1);
    cr_assert_eq(json_integer_value(json_object_get(j, "requested")), 1);
    cr_assert_gt(json_integer_value(json_object_get(j, "version")), 0);
    json_decref(j);
    cli_result_free(&r);
    r = CLI(&srv, "get", "d2");
    cr_assert_eq(r.rc, 1);
    cli_result_free(&r);
    r = CLI(&srv, "set", "d5", "x");
    cli_result_free(&r);
    r = CLI(&srv, "del", "d5", "d5");
    cr_assert_eq(r.rc, 0, "out %s", r.out);
    cli_result_free(&r);
}

Test(kv, json_strings_and_escapes)
{
    cli_result r = CLI(&srv, "set", "j", "line1\nquote\"🎂");
    cli_result_free(&r);
    r = CLI(&srv, "get", "j", "--json");
    cr_assert_eq(r.rc, 0);
    json_t *j = cli_json(&r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "key")), "j");
    cr_assert_str_eq(json_string_value(json_object_get(j, "value")),
                     "line1\nquote\"🎂");
    cr_assert(json_is_true(json_object_get(j, "found")));
    json_decref(j);
    cli_result_free(&r);
}

Test(kv, usage_errors)
{
    const char *const *cases[] = {
        (const char *const[]){"set", NULL},
        (const char *const[]){"set", "a", "b", "c", NULL},
        (const char *const[]){"set", "a=1", "b", "c=2", NULL},
        (const char *const[]){"set", "a=1", "b=2", "--if-version", "1", NULL},
        (const char *const[]){"set", "=1", NULL},
        (const char *const[]){"set", "", "v", NULL},
        (const char *const[]){"set", "", "--file", "/dev/null", NULL},
        (const char *const[]){"get", "", NULL},
        (const char *const[]){"get", "a", "", NULL},
        (const char *const[]){"del", "a", "", NULL},
        (const char *const[]){"set", "k", "--file", "/nonexistent/x", NULL},
        (const char *const[]){"get", NULL},
        (const char *const[]){"get", "a", "b", "--raw", NULL},
        (const char *const[]){"del", NULL},
        (const char *const[]){"get", "k", "--bogus", NULL},
        (const char *const[]){"frobnicate", NULL},
        (const char *const[]){"--port", "99999", "ping", NULL},
        (const char *const[]){"--timeout", "soon", "ping", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cli_result r = cli_run(NULL, 0, NULL, cases[i]);
        cr_expect_eq(r.rc, 2, "case %zu (%s): rc %d", i, cases[i][0], r.rc);
        cli_assert_one_error_line(&r);
        cli_result_free(&r);
    }
}

/* Pairs only when every argument has '='; two arguments otherwise are
 * KEY VALUE as given; a mix of more than two is refused. */
Test(kv, set_forms_cannot_be_confused)
{
    cli_result r = CLI(&srv, "set", "k=v", "extra");
    cr_assert_eq(r.rc, 0, "err %s", r.err);
    cr_assert(strncmp(r.out, "OK (version ", 12) == 0, "out: %s", r.out);
    cli_result_free(&r);
    r = CLI(&srv, "get", "k=v", "k");
    cr_assert_eq(r.rc, 1);
    cr_assert_str_eq(r.out, "k=v: extra\nk: (not found)\n");
    cli_result_free(&r);

    r = CLI(&srv, "set", "filter=a", "b=c");
    cr_assert_eq(r.rc, 0, "err %s", r.err);
    cr_assert_not_null(strstr(r.out, "2 keys set"), "out: %s", r.out);
    cli_result_free(&r);

    /* The escape for a key and a value that both contain '='. */
    r = CLI_IN(&srv, "b=c", "set", "filter=a", "-");
    cr_assert_eq(r.rc, 0, "err %s", r.err);
    cli_result_free(&r);
    r = CLI(&srv, "get", "filter=a", "filter", "b");
    cr_assert_str_eq(r.out, "filter=a: b=c\nfilter: a\nb: c\n");
    cli_result_free(&r);

    const char *const *mixed[] = {
        (const char *const[]){"set", "a=1", "b", "c=2", NULL},
        (const char *const[]){"set", "a=1", "b=2", "extra", NULL},
        (const char *const[]){"set", "key", "v=1", "w=2", NULL},
    };
    const char *culprit[] = {"'b'", "'extra'", "'key'"};
    for (size_t i = 0; i < sizeof mixed / sizeof mixed[0]; i++) {
        r = cli_run_srv(&srv, NULL, 0, mixed[i]);
        cr_expect_eq(r.rc, 2, "case %zu: rc %d", i, r.rc);
        cli_assert_one_error_line(&r);
        cr_expect_not_null(strstr(r.err, culprit[i]), "err: %s", r.err);
        cr_expect_not_null(strstr(r.err, "every one must be KEY=VALUE"),
                           "err: %s", r.err);
        cli_result_free(&r);
    }
    /* Nothing of the refused lines was set. */
    r = CLI(&srv, "get", "a", "c", "v", "key", "a=1");
    cr_assert_eq(r.rc, 1);
    cr_assert_str_eq(r.out, "a: (not found)\nc: (not found)\n"
                            "v: (not found)\nkey: (not found)\n"
                            "a=1: (not found)\n");
    cli_result_free(&r);
}

Test(kv, options_anywhere_dashes_and_host)
{
    /* "--" ends the options: a value may start with a dash. */
    cli_result r = CLI(&srv, "--host", "127.0.0.1", "set", "--", "neg", "-5");
    cr_assert_eq(r.rc, 0, "err %s", r.err);
    cli_result_free(&r);
    r = CLI(&srv, "get", "neg", "--json", "--host=127.0.0.1");
    cr_assert_eq(r.rc, 0, "err %s", r.err);
    json_t *j = cli_json(&r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "value")), "-5");
    json_decref(j);
    cli_result_free(&r);

    /* Two words where only the first lacks '=': KEY VALUE. */
    r = CLI(&srv, "set", "url", "http://x/?a=b", "--json");
    cr_assert_eq(r.rc, 0);
    j = cli_json(&r);
    cr_assert(json_is_true(json_object_get(j, "ok")));
    cr_assert(json_is_integer(json_object_get(j, "version")));
    json_decref(j);
    cli_result_free(&r);
    r = CLI(&srv, "get", "url");
    cr_assert_str_eq(r.out, "http://x/?a=b\n");
    cli_result_free(&r);

    /* Keys are escaped like values. */
    r = CLI(&srv, "set", "tab\tkey=v");
    cr_assert_eq(r.rc, 0);
    cli_result_free(&r);
    r = CLI(&srv, "get", "tab\tkey", "url");
    cr_assert_str_eq(r.out, "tab\\tkey: v\nurl: http://x/?a=b\n");
    cli_result_free(&r);
}

/* ------------------------------------------------------ del --prefix, flush */

/* The keys scan lists for prefix, one per line, as kvcli prints them. */
static char *scan_out(const char *prefix)
{
    cli_result r = CLI(&srv, "scan", "--", prefix);
    cr_assert_eq(r.rc, 0, "scan: rc %d err %s", r.rc, r.err);
    char *out = strdup(r.out);
    cli_result_free(&r);
    return out;
}

Test(kv, del_prefix_deletes_only_matching_keys)
{
    cli_result r = CLI(&srv, "set", "--", "-tmp a b=1", "-tmp c=2", "-tmpx=3",
                       "tmp d=4", "-tm=5");
    cr_assert_eq(r.rc, 0, "err %s", r.err);
    cli_result_free(&r);

    r = CLI(&srv, "del", "--prefix", "-tmp");
    cr_assert_eq(r.rc, 0, "rc %d err %s", r.rc, r.err);
    cr_assert_str_eq(r.out, "deleted 3 keys\n");
    cli_result_free(&r);

    char *left = scan_out("");
    cr_assert(strstr(left, "tmp d\n") != NULL, "left: %s", left);
    cr_assert(strstr(left, "-tm\n") != NULL, "left: %s", left);
    cr_assert(strstr(left, "-tmp") == NULL, "left: %s", left);
    free(left);

    /* Nothing left to match: still a success, 0 deleted. */
    r = CLI(&srv, "--json", "del", "--prefix=-tmp");
    cr_assert_eq(r.rc, 0, "rc %d err %s", r.rc, r.err);
    cr_assert_str_eq(r.out, "{\"deleted\":0,\"prefix\":\"-tmp\"}\n");
    cli_result_free(&r);
}

Test(kv, del_prefix_spans_pages)
{
    /* More keys than several pages (50 keys each) of the scan. */
    char *in = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&in, &len);
    for (int i = 0; i < 2100; i++)
        fprintf(f, "set 'p %d' v\n", i);
    fputs("set q v\n", f);
    fclose(f);
    cli_result r = cli_run_srv(&srv, in, len, (const char *const[]){NULL});
    free(in);
    cr_assert_eq(r.rc, 0, "err %s", r.err);
    cli_result_free(&r);

    r = CLI(&srv, "del", "--prefix", "p ");
    cr_assert_eq(r.rc, 0, "rc %d err %s", r.rc, r.err);
    cr_assert_str_eq(r.out, "deleted 2100 keys\n");
    cli_result_free(&r);
    char *left = scan_out("");
    cr_assert_str_eq(left, "q\n");
    free(left);
}

Test(kv, del_prefix_refuses_empty_prefix_and_keys)
{
    cli_result r = CLI(&srv, "set", "a", "1");
    cli_result_free(&r);
    r = CLI(&srv, "del", "--prefix", "");
    cr_assert_eq(r.rc, 2);
    cli_assert_one_error_line(&r);
    cr_assert(strstr(r.err, "flush") != NULL, "err: %s", r.err);
    cli_result_free(&r);
    r = CLI(&srv, "del", "a", "--prefix", "a");
    cr_assert_eq(r.rc, 2);
    cli_result_free(&r);
    char *left = scan_out("");
    cr_assert_str_eq(left, "a\n");
    free(left);
}

Test(kv, flush_yes_empties_the_store)
{
    cli_result r = CLI(&srv, "set", "--", "a=1", "b c=2", "-d=3");
    cli_result_free(&r);
    r = CLI(&srv, "flush", "--yes");
    cr_assert_eq(r.rc, 0, "rc %d err %s", r.rc, r.err);
    cr_assert_str_eq(r.out, "deleted 3 keys\n");
    cli_result_free(&r);
    char *left = scan_out("");
    cr_assert_str_eq(left, "");
    free(left);
}

Test(kv, flush_without_yes_or_terminal_refuses)
{
    cli_result r = CLI(&srv, "set", "a=1", "b=2");
    cli_result_free(&r);
    /* Standard input is "y\n" but not a terminal: no question, no delete. */
    r = CLI_IN(&srv, "y\n", "flush");
    cr_assert_eq(r.rc, 2, "rc %d", r.rc);
    cli_assert_one_error_line(&r);
    cr_assert(strstr(r.err, "--yes") != NULL, "err: %s", r.err);
    cr_assert_str_eq(r.out, "");
    cli_result_free(&r);
    char *left = scan_out("");
    cr_assert(strstr(left, "a\n") != NULL && strstr(left, "b\n") != NULL,
              "left: %s", left);
    free(left);
}

/* ------------------------------------------------------ client frame limit */

Test(kv, value_over_client_frame_limit_is_a_usage_error)
{
    /* A value as large as the limit: its request (value + key + framing)
     * is just over it. */
    char val[1001];
    memset(val, 'v', 1000);
    val[1000] = '\0';
    cli_result r = CLI(&srv, "--max-frame-size", "1000", "set", "big", val);
    cr_assert_eq(r.rc, 2, "rc %d err %s", r.rc, r.err);
    cli_assert_one_error_line(&r);
    cr_assert(strstr(r.err, "limit of 1000 bytes") != NULL, "err: %s", r.err);
    cr_assert(strstr(r.err, "request of 10") != NULL, "err: %s", r.err);
    cr_assert(strstr(r.err, "--max-frame-size") != NULL, "err: %s", r.err);
    cli_result_free(&r);
    r = CLI(&srv, "get", "big");
    cr_assert_eq(r.rc, 1, "the refused value was stored: %s", r.out);
    cli_result_free(&r);

    /* The same request under a limit it fits. */
    r = CLI(&srv, "--max-frame-size", "1100", "set", "big", val);
    cr_assert_eq(r.rc, 0, "rc %d err %s", r.rc, r.err);
    cli_result_free(&r);

    r = CLI(&srv, "--max-frame-size", "15", "ping");
    cr_assert_eq(r.rc, 2, "rc %d", r.rc);
    cli_result_free(&r);
}
