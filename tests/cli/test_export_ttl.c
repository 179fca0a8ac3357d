/*
 * test_export_ttl.c - kvcli export and import with key expiry against
 * real kvds: expiry times written (JSON's "expire_at_ms" only for keys
 * with one, binary format version 2) and restored to the same absolute
 * time, in both formats; entries whose time has passed skipped, counted
 * and reported, leaving the key alone; files of the first binary version
 * and JSON without expiry still imported; bad expiry times refused with
 * nothing changed.
 *
 * No timing thresholds: the expiry times used are an hour or more ahead,
 * or long past (1970).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

static cli_server srv, srv2;

static void setup(void)
{
    cli_server_start(&srv, NULL);
    cli_server_start(&srv2, NULL);
}

static void teardown(void)
{
    cli_server_stop(&srv2);
    cli_server_stop(&srv);
}

TestSuite(export_ttl, .init = setup, .fini = teardown, .timeout = 90);

static const char *tmp_path(const char *name)
{
    static char path[4][160];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, sizeof path[0], "%s/%s", srv.dir, name);
    return p;
}

static void expect_ok(cli_result *r)
{
    cr_assert_eq(r->rc, 0, "rc %d, err: %s", r->rc, r->err);
    cli_result_free(r);
}

static long long unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The expiry time of key on s (0: none); asserts the key exists. */
static long long expiry_of(const cli_server *s, const char *key)
{
    cli_result r = CLI(s, "--json", "ttl", key);
    cr_assert_eq(r.rc, 0, "ttl %s: rc %d err %s", key, r.rc, r.err);
    json_t *j = cli_json(&r);
    cr_assert(json_is_true(json_object_get(j, "found")), "%s", r.out);
    long long at = json_is_true(json_object_get(j, "expires"))
                       ? json_integer_value(json_object_get(j, "expire_at_ms"))
                       : 0;
    json_decref(j);
    cli_result_free(&r);
    return at;
}

static void expect_value(const cli_server *s, const char *key, const char *want)
{
    cli_result r = CLI(s, "get", "--raw", key);
    cr_assert_eq(r.rc, 0, "get %s: %s", key, r.err);
    cr_assert_eq(r.outlen, strlen(want), "%s", key);
    cr_assert_eq(memcmp(r.out, want, r.outlen), 0, "%s", key);
    cli_result_free(&r);
}

static long long keys_on(const cli_server *s)
{
    cli_result r = CLI(s, "--json", "metrics");
    json_t *j = cli_json(&r);
    long long n = json_integer_value(json_object_get(j, "keys"));
    json_decref(j);
    cli_result_free(&r);
    return n;
}

/* The JSON line of key (base64 b64) in an export, parsed. */
static json_t *line_of(const char *out, const char *b64)
{
    char want[64];
    snprintf(want, sizeof want, "{\"key\":\"%s\"", b64);
    const char *l = strstr(out, want);
    cr_assert_not_null(l, "no %s in:\n%s", want, out);
    json_error_t e;
    json_t *j = json_loadb(l, (size_t)(strchr(l, '\n') - l), 0, &e);
    cr_assert(json_is_object(j), "%.80s", l);
    return j;
}

/* e (1 h) and x (2 h) expire, p does not. */
static void load(long long *at_e, long long *at_x)
{
    cli_result r = CLI(&srv, "set", "e", "1", "--ttl", "1h");
    expect_ok(&r);
    r = CLI(&srv, "set", "p", "2");
    expect_ok(&r);
    r = CLI(&srv, "set", "x", "3", "--ttl", "2h");
    expect_ok(&r);
    *at_e = expiry_of(&srv, "e");
    *at_x = expiry_of(&srv, "x");
    cr_assert_gt(*at_e, unix_ms());
}

static void check_restored(long long at_e, long long at_x)
{
    expect_value(&srv2, "e", "1");
    expect_value(&srv2, "p", "2");
    expect_value(&srv2, "x", "3");
    cr_assert_eq(expiry_of(&srv2, "e"), at_e, "the same absolute time, not a new TTL");
    cr_assert_eq(expiry_of(&srv2, "x"), at_x);
    cr_assert_eq(expiry_of(&srv2, "p"), 0, "no expiry stays none");
    cr_assert_eq(keys_on(&srv2), 3);
}

Test(export_ttl, json_lines_carry_expiry_times)
{
    long long at_e, at_x;
    load(&at_e, &at_x);
    cli_result r = CLI(&srv, "export");
    cr_assert_eq(r.rc, 0, "err: %s", r.err);
    cr_assert_not_null(strstr(r.err, "exported 3 entries ("), "%s", r.err);
    cr_assert_not_null(strstr(r.err, "; 2 with an expiry time) in "), "%s", r.err);
    json_t *j = line_of(r.out, "ZQ=="); /* e */
    cr_assert_eq(json_object_size(j), 4);
    cr_assert_eq(json_integer_value(json_object_get(j, "expire_at_ms")), at_e);
    json_decref(j);
    j = line_of(r.out, "eA=="); /* x */
    cr_assert_eq(json_integer_value(json_object_get(j, "expire_at_ms")), at_x);
    json_decref(j);
    j = line_of(r.out, "cA=="); /* p: no member at all */
    cr_assert_eq(json_object_size(j), 3, "%s", r.out);
    cr_assert_null(json_object_get(j, "expire_at_ms"));
    json_decref(j);
    /* members in order, expire_at_ms last */
    j = line_of(r.out, "ZQ==");
    char want[96];
    snprintf(want, sizeof want, "\"version\":%lld,\"expire_at_ms\":%lld}\n",
             (long long)json_integer_value(json_object_get(j, "version")), at_e);
    json_decref(j);
    cr_assert_not_null(strstr(r.out, want), "no %s in:\n%s", want, r.out);
    const char *file = tmp_path("ttl.jsonl");
    cli_write_file(file, r.out, r.outlen);
    cli_result_free(&r);

    /* a mixed batch (a TXN of set ops), then one entry per batch (an
     * MSET for p) */
    r = CLI(&srv2, "import", file);
    cr_assert_eq(r.rc, 0, "err: %s", r.err);
    cr_assert_null(strstr(r.out, "skipped"), "%s", r.out);
    cli_result_free(&r);
    check_restored(at_e, at_x);
    r = CLI(&srv2, "flush", "--yes");
    expect_ok(&r);
    r = CLI(&srv2, "import", "--batch", "1", file, "--json");
    cr_assert_eq(r.rc, 0, "err: %s", r.err);
    j = cli_json(&r);
    cr_assert_eq(json_integer_value(json_object_get(j, "batches")), 3);
    cr_assert_eq(json_integer_value(json_object_get(j, "expired")), 0);
    json_decref(j);
    cli_result_free(&r);
    check_restored(at_e, at_x);

    /* an import over a key with an expiry: the entry's (none) wins */
    r = CLI(&srv2, "expire", "p", "1h");
    expect_ok(&r);
    r = CLI(&srv2, "import", file);
    expect_ok(&r);
    cr_assert_eq(expiry_of(&srv2, "p"), 0);
}

Test(export_ttl, binary_format_version_2_carries_expiry_times)
{
    long long at_e, at_x;
    load(&at_e, &at_x);
    cli_result r = CLI(&srv, "export", "--format", "bin");
    cr_assert_eq(r.rc, 0, "err: %s", r.err);
    cr_assert_eq(memcmp(r.out, "KVEXPORT\0\0\0\2", 12), 0, "the magic and version 2");
    /* each entry: 'E' + 24 bytes of header + 1-byte key + 1-byte value */
    cr_assert_eq(r.outlen, 12 + 3 * (1 + 24 + 2) + 9);
    int found = 0;
    for (size_t off = 12; off < r.outlen - 9; off += 27) {
        const unsigned char *e = (const unsigned char *)r.out + off;
        cr_assert_eq(e[0], 'E');
        unsigned long long at = 0;
        for (int i = 0; i < 8; i++)
            at = at << 8 | e[17 + i];
        if (e[25] == 'e') {
            cr_assert_eq((long long)at, at_e);
            found++;
        } else if (e[25] == 'p') {
            cr_assert_eq(at, 0, "no expiry: 0");
            found++;
        }
    }
    cr_assert_eq(found, 2);
    const char *file = tmp_path("ttl.kvx");
    cli_write_file(file, r.out, r.outlen);
    cli_result_free(&r);
    r = CLI(&srv2, "import", file);
    expect_ok(&r);
    check_restored(at_e, at_x);
}

/* One binary entry: version (1 or 2) decides whether the expiry is there. */
static size_t bin_entry(unsigned char *p, int version, const char *k, const char *v,
                        unsigned long long at)
{
    size_t kl = strlen(k), vl = strlen(v), n = 0;
    p[n++] = 'E';
    for (int i = 3; i >= 0; i--)
        p[n++] = (unsigned char)(kl >> (8 * i));
    for (int i = 3; i >= 0; i--)
        p[n++] = (unsigned char)(vl >> (8 * i));
    for (int i = 0; i < 8; i++)
        p[n++] = i == 7 ? 5 : 0; /* version 5 */
    if (version >= 2)
        for (int i = 7; i >= 0; i--)
            p[n++] = (unsigned char)(at >> (8 * i));
    memcpy(p + n, k, kl);
    memcpy(p + n + kl, v, vl);
    return n + kl + vl;
}

static size_t bin_file(unsigned char *p, int version, int nentries)
{
    memcpy(p, "KVEXPORT\0\0\0", 11);
    p[11] = (unsigned char)version;
    (void)nentries;
    return 12;
}

static size_t bin_end(unsigned char *p, int nentries)
{
    p[0] = 'Z';
    memset(p + 1, 0, 8);
    p[8] = (unsigned char)nentries;
    return 9;
}

Test(export_ttl, past_expiry_times_are_skipped_and_counted)
{
    cli_result r = CLI(&srv2, "set", "a", "old");
    expect_ok(&r);
    long long later = unix_ms() + 3600000;
    char text[512];
    snprintf(text, sizeof text,
             "{\"key\":\"YQ==\",\"value\":\"MQ==\",\"expire_at_ms\":1000}\n"   /* a, 1970 */
             "{\"key\":\"Yg==\",\"value\":\"Mg==\",\"expire_at_ms\":%lld}\n"  /* b */
             "{\"key\":\"Yw==\",\"value\":\"Mw==\"}\n"                        /* c */
             "{\"key\":\"ZA==\",\"value\":\"NA==\",\"expire_at_ms\":2000}\n", /* d, 1970 */
             later);
    const char *file = tmp_path("past.jsonl");
    cli_write_file(file, text, strlen(text));

    r = CLI(&srv2, "import", "--dry-run", file);
    cr_assert_eq(r.rc, 0, "err: %s", r.err);
    cr_assert_not_null(strstr(r.out, "checked 2 entries ("), "%s", r.out);
    cr_assert_not_null(strstr(r.out, "\nskipped 2 entries whose expiry time had passed\n"),
                       "%s", r.out);
    cli_result_free(&r);
    cr_assert_eq(keys_on(&srv2), 1, "--dry-run changed nothing");

    r = CLI(&srv2, "import", file);
    cr_assert_eq(r.rc, 0, "err: %s", r.err);
    cr_assert_not_null(strstr(r.out, "imported 2 entries ("), "%s", r.out);
    cr_assert_not_null(strstr(r.out, "\nskipped 2 entries whose expiry time had passed\n"),
                       "%s", r.out);
    cli_result_free(&r);
    expect_value(&srv2, "a", "old"); /* left alone, not overwritten nor deleted */
    cr_assert_eq(expiry_of(&srv2, "a"), 0);
    expect_value(&srv2, "b", "2");
    cr_assert_eq(expiry_of(&srv2, "b"), later);
    expect_value(&srv2, "c", "3");
    cr_assert_eq(expiry_of(&srv2, "c"), 0);
    r = CLI(&srv2, "get", "d");
    cr_assert_eq(r.rc, 1, "d was skipped");
    cli_result_free(&r);
    cr_assert_eq(keys_on(&srv2), 3);

    r = CLI(&srv2, "import", file, "--json");
    cr_assert_eq(r.rc, 0, "err: %s", r.err);
    json_t *j = cli_json(&r);
    cr_assert_eq(json_integer_value(json_object_get(j, "entries")), 2);
    cr_assert_eq(json_integer_value(json_object_get(j, "expired")), 2);
    json_decref(j);
    cli_result_free(&r);

    /* the same in the binary format */
    unsigned char bin[256];
    size_t n = bin_file(bin, 2, 2);
    n += bin_entry(bin + n, 2, "f", "6", 1000);
    n += bin_entry(bin + n, 2, "g", "7", (unsigned long long)later);
    n += bin_end(bin + n, 2);
    file = tmp_path("past.kvx");
    cli_write_file(file, bin, n);
    r = CLI(&srv2, "import", file);
    cr_assert_eq(r.rc, 0, "err: %s", r.err);
    cr_assert_not_null(strstr(r.out, "imported 1 entry ("), "%s", r.out);
    cr_assert_not_null(strstr(r.out, "\nskipped 1 entry whose expiry time had passed\n"),
                       "%s", r.out);
    cli_result_free(&r);
    cr_assert_eq(expiry_of(&srv2, "g"), later);
    r = CLI(&srv2, "get", "f");
    cr_assert_eq(r.rc, 1, "f was skipped");
    cli_result_free(&r);
}

Test(export_ttl, first_binary_version_still_imports)
{
    unsigned char bin[256];
    size_t n = bin_file(bin, 1, 2);
    n += bin_entry(bin + n, 1, "k", "v", 0);
    n += bin_entry(bin + n, 1, "l", "w", 0);
    n += bin_end(bin + n, 2);
    const char *file = tmp_path("v1.kvx");
    cli_write_file(file, bin, n);
    cli_result r = CLI(&srv2, "import", file);
    cr_assert_eq(r.rc, 0, "err: %s", r.err);
    cr_assert_not_null(strstr(r.out, "imported 2 entries ("), "%s", r.out);
    cli_result_free(&r);
    expect_value(&srv2, "k", "v");
    expect_value(&srv2, "l", "w");
    cr_assert_eq(expiry_of(&srv2, "k"), 0);

    /* a version from the future is refused, naming the ones read */
    bin[11] = 3;
    cli_write_file(file, bin, n);
    r = CLI(&srv2, "import", file);
    cr_assert_eq(r.rc, 2);
    cli_assert_one_error_line(&r);
    cr_assert_not_null(strstr(r.err, "version 3: this kvcli reads versions 1 to 2"), "%s",
                       r.err);
    cli_result_free(&r);
}

Test(export_ttl, bad_expiry_times_change_nothing)
{
    cli_result r = CLI(&srv2, "set", "a", "old");
    expect_ok(&r);
    static const char *const bad[] = {"\"soon\"", "0", "-5", "1.5", "null", "true",
                                      "4503599627370497" /* 2^52 + 1 */, "{}"};
    const char *file = tmp_path("bad.jsonl");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[256];
        snprintf(text, sizeof text,
                 "{\"key\":\"YQ==\",\"value\":\"MQ==\",\"expire_at_ms\":%s}\n", bad[i]);
        cli_write_file(file, text, strlen(text));
        r = CLI(&srv2, "import", file);
        cr_assert_eq(r.rc, 2, "%s: rc %d", bad[i], r.rc);
        cli_assert_one_error_line(&r);
        cr_assert_not_null(strstr(r.err, "line 1: \"expire_at_ms\" must be an expiry time"),
                           "%s: %s", bad[i], r.err);
        cr_assert_not_null(strstr(r.err, "nothing imported"), "%s", r.err);
        cli_result_free(&r);
    }
    unsigned char bin[256];
    size_t n = bin_file(bin, 2, 1);
    n += bin_entry(bin + n, 2, "a", "1", (1ull << 52) + 1);
    n += bin_end(bin + n, 1);
    file = tmp_path("bad.kvx");
    cli_write_file(file, bin, n);
    r = CLI(&srv2, "import", file);
    cr_assert_eq(r.rc, 2);
    cli_assert_one_error_line(&r);
    cr_assert_not_null(strstr(r.err, "record 1: expiry time"), "%s", r.err);
    cli_result_free(&r);
    expect_value(&srv2, "a", "old");
    cr_assert_eq(expiry_of(&srv2, "a"), 0);
    cr_assert_eq(keys_on(&srv2), 1);
}
