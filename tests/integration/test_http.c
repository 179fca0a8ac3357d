/*
 * test_http.c - kvd's HTTP API (docs/http.md) end to end: curl for the
 * REST endpoints (binary values, percent-encoded keys, versions and CAS
 * with If-Match, listing with a cursor, JSON txn, mset and mget), bearer
 * tokens, keep-alive and pipelining over raw sockets, /metrics checked by
 * Prometheus's own parser (promtool check metrics), one port shared by
 * curl, redis-cli and kvcli, and an HTTP-only port (--http-port).
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base64.h"
#include "harness.h"

TestSuite(http, .init = harness_setup, .fini = harness_teardown, .timeout = 180);

/* ---- helpers ---------------------------------------------------------------- */

static char g_base[64]; /* http://127.0.0.1:PORT */

static void start(const char *arg, ...)
{
    const char *args[16];
    int n = 0;
    va_list ap;
    va_start(ap, arg);
    for (const char *a = arg; a && n < 15; a = va_arg(ap, const char *))
        args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    kvd_startv(args);
    snprintf(g_base, sizeof g_base, "http://127.0.0.1:%d", g_kvd.port);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = 0;
    fclose(f);
    if (len)
        *len = (size_t)n;
    return b;
}

typedef struct curl_out {
    int code;
    char *body;
    size_t len;
    char *head;
} curl_out;

static void curl_free(curl_out *o)
{
    free(o->body);
    free(o->head);
    memset(o, 0, sizeof *o);
}

/* Runs curl -sS with the arguments (a printf format; the URL is the
 * caller's, usually with g_base) and returns the HTTP status; the body
 * and the response head are in o. */
static int curl(curl_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int curl(curl_out *o, const char *fmt, ...)
{
    kvd_test_dir();
    char args[4096], cmd[8192], body[300], head[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(body, sizeof body, "%s/curl.body", g_kvd.dir);
    snprintf(head, sizeof head, "%s/curl.head", g_kvd.dir);
    snprintf(cmd, sizeof cmd, "curl -sS -o %s -D %s -w '%%{http_code}' %s", body, head, args);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    memset(o, 0, sizeof *o);
    if (fscanf(p, "%d", &o->code) != 1)
        o->code = -1;
    pclose(p);
    o->body = slurp(body, &o->len);
    o->head = slurp(head, NULL);
    return o->code;
}

/* Header name's value in the curl output's head (asserts it is there). */
static const char *header(const curl_out *o, const char *name, char *buf, size_t cap)
{
    http_resp r;
    memset(&r, 0, sizeof r);
    snprintf(r.head, sizeof r.head, "%s", o->head);
    cr_assert(http_header(&r, name, buf, cap), "no %s in\n%s", name, o->head);
    return buf;
}

static json_t *parse(const curl_out *o)
{
    json_error_t e;
    json_t *j = json_loadb(o->body, o->len, 0, &e);
    cr_assert_not_null(j, "not JSON (%s): %s", e.text, o->body);
    return j;
}

static const char *jstr(json_t *j, const char *path)
{
    json_t *v = json_object_get(j, path);
    cr_assert(json_is_string(v), "\"%s\" is not a string", path);
    return json_string_value(v);
}

/* The error status name of a JSON error body. */
static void expect_error(const curl_out *o, int code, const char *status)
{
    cr_assert_eq(o->code, code, "HTTP %d, expected %d: %s", o->code, code, o->body);
    json_t *j = parse(o);
    json_t *e = json_object_get(j, "error");
    cr_assert_str_eq(jstr(e, "status"), status, "%s", o->body);
    cr_assert(json_is_integer(json_object_get(e, "code")));
    cr_assert(json_is_string(json_object_get(e, "message")));
    json_decref(j);
}

static char *b64(const void *p, size_t n)
{
    char *s = malloc(kvd_base64_encoded_len(n) + 1);
    kvd_base64_encode(p, n, s);
    s[kvd_base64_encoded_len(n)] = 0;
    return s;
}

/* Decodes base64 s into buf (NUL-terminated); returns its length. */
static size_t unb64(const char *s, char *buf)
{
    size_t n = 0;
    cr_assert_eq(kvd_base64_decode(s, strlen(s), buf, &n), 0, "bad base64 %s", s);
    buf[n] = 0;
    return n;
}

/* Writes p[0..n) to the test directory's file name; returns its path. */
static const char *file_with(const char *name, const void *p, size_t n)
{
    static char path[300];
    kvd_test_dir();
    snprintf(path, sizeof path, "%s/%s", g_kvd.dir, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(p, 1, n, f), n);
    fclose(f);
    return path;
}

static uint64_t version_of(const curl_out *o)
{
    char v[32];
    header(o, "X-Kvd-Version", v, sizeof v);
    return strtoull(v, NULL, 10);
}

/* ---- keys ------------------------------------------------------------------- */

Test(http, binary_values_and_percent_encoded_keys)
{
    start(NULL);
    curl_out o;
    /* every byte value, under a key with NUL, 0xff and '/' in it */
    uint8_t val[1024];
    for (size_t i = 0; i < sizeof val; i++)
        val[i] = (uint8_t)i;
    const char *f = file_with("val", val, sizeof val);
    cr_assert_eq(curl(&o, "-X PUT --data-binary @%s '%s/v1/keys/bin%%00%%FF%%2Fkey'", f, g_base),
                 200, "%s", o.body);
    json_t *j = parse(&o);
    uint64_t rev = strtoull(jstr(j, "revision"), NULL, 10);
    json_decref(j);
    cr_assert_gt(rev, 0);
    cr_assert_eq(version_of(&o), rev);
    char etag[40], want[40];
    snprintf(want, sizeof want, "\"%llu\"", (unsigned long long)rev);
    cr_assert_str_eq(header(&o, "ETag", etag, sizeof etag), want);
    curl_free(&o);

    cr_assert_eq(curl(&o, "'%s/v1/keys/bin%%00%%ff%%2fkey'", g_base), 200);
    cr_assert_eq(o.len, sizeof val);
    cr_assert(memcmp(o.body, val, sizeof val) == 0);
    cr_assert_eq(version_of(&o), rev);
    char ct[64];
    cr_assert_str_eq(header(&o, "Content-Type", ct, sizeof ct), "application/octet-stream");
    curl_free(&o);

    /* the same key and value through kvd's own protocol */
    kv_client *c = test_client(NULL);
    kv_value v;
    cr_assert_eq(kv_client_get(c, "bin\0\xff/key", 9, &v), KV_OK);
    cr_assert_eq(v.len, sizeof val);
    cr_assert(memcmp(v.data, val, sizeof val) == 0);
    cr_assert_eq(v.version, rev);
    kv_client_value_free(&v);
    /* and the other way: UTF-8 and spaces in a key, set natively */
    cr_assert_eq(kv_client_set(c, "caf\xc3\xa9 au lait", 13, "chaud", 5, NULL), KV_OK);
    cr_assert_eq(curl(&o, "'%s/v1/keys/caf%%C3%%A9%%20au%%20lait'", g_base), 200);
    cr_assert_str_eq(o.body, "chaud");
    curl_free(&o);
    /* '+' in a path is a plus */
    cr_assert_eq(curl(&o, "-X PUT --data-binary plus '%s/v1/keys/a+b'", g_base), 200);
    curl_free(&o);
    cr_assert_eq(kv_client_get(c, "a+b", 3, &v), KV_OK);
    kv_client_value_free(&v);

    /* HEAD: the headers of GET */
    cr_assert_eq(curl(&o, "-I '%s/v1/keys/bin%%00%%FF%%2Fkey'", g_base), 200);
    char cl[32];
    cr_assert_str_eq(header(&o, "Content-Length", cl, sizeof cl), "1024");
    cr_assert_eq(o.len, strlen(o.head), "curl -I prints the head only"); /* (the raw
                                      test below checks that no body follows a HEAD) */
    curl_free(&o);

    /* an empty value */
    cr_assert_eq(curl(&o, "-X PUT --data-binary '' '%s/v1/keys/empty'", g_base), 200);
    curl_free(&o);
    cr_assert_eq(curl(&o, "'%s/v1/keys/empty'", g_base), 200);
    cr_assert_eq(o.len, 0);
    curl_free(&o);

    /* absent, malformed and empty keys */
    curl(&o, "'%s/v1/keys/absent'", g_base);
    expect_error(&o, 404, "NOT_FOUND");
    curl_free(&o);
    curl(&o, "'%s/v1/keys/a%%zz'", g_base);
    expect_error(&o, 400, "INVALID_ARGUMENT");
    curl_free(&o);
    curl(&o, "'%s/v1/keys/'", g_base);
    expect_error(&o, 400, "KEY_EMPTY");
    curl_free(&o);

    /* DELETE: how many existed */
    cr_assert_eq(curl(&o, "-X DELETE '%s/v1/keys/a+b'", g_base), 200);
    j = parse(&o);
    cr_assert_str_eq(jstr(j, "deleted"), "1");
    cr_assert(json_is_string(json_object_get(j, "revision")));
    json_decref(j);
    curl_free(&o);
    cr_assert_eq(curl(&o, "-X DELETE '%s/v1/keys/a+b'", g_base), 200);
    j = parse(&o);
    cr_assert_str_eq(jstr(j, "deleted"), "0");
    json_decref(j);
    curl_free(&o);
    cr_assert_eq(kv_client_get(c, "a+b", 3, &v), KV_NOT_FOUND);

    /* unknown paths and methods */
    curl(&o, "'%s/v2/nothing'", g_base);
    expect_error(&o, 404, "UNSUPPORTED");
    curl_free(&o);
    curl(&o, "-X POST -d x '%s/v1/keys/k'", g_base);
    expect_error(&o, 405, "UNSUPPORTED");
    char allow[64];
    cr_assert_str_eq(header(&o, "Allow", allow, sizeof allow), "GET, HEAD, PUT, DELETE");
    curl_free(&o);
    kv_client_close(c);
    kvd_stop();
}

Test(http, compare_and_swap_with_if_match)
{
    start(NULL);
    curl_out o;
    cr_assert_eq(curl(&o, "-X PUT --data-binary one '%s/v1/keys/cas'", g_base), 200);
    uint64_t v1 = version_of(&o);
    curl_free(&o);
    cr_assert_eq(curl(&o, "-X PUT -H 'If-Match: %llu' --data-binary two '%s/v1/keys/cas'",
                      (unsigned long long)v1, g_base),
                 200, "%s", o.body);
    uint64_t v2 = version_of(&o);
    cr_assert_gt(v2, v1);
    curl_free(&o);
    /* the stale version loses, and changes nothing */
    curl(&o, "-X PUT -H 'If-Match: %llu' --data-binary three '%s/v1/keys/cas'",
         (unsigned long long)v1, g_base);
    expect_error(&o, 412, "VERSION_MISMATCH");
    curl_free(&o);
    cr_assert_eq(curl(&o, "'%s/v1/keys/cas'", g_base), 200);
    cr_assert_str_eq(o.body, "two");
    curl_free(&o);
    /* the ETag form (quoted) works as well */
    cr_assert_eq(curl(&o, "-X PUT -H 'If-Match: \"%llu\"' --data-binary four '%s/v1/keys/cas'",
                      (unsigned long long)v2, g_base),
                 200);
    uint64_t v3 = version_of(&o);
    curl_free(&o);
    /* If-None-Match: * creates only; If-Match: * replaces only */
    curl(&o, "-X PUT -H 'If-None-Match: *' --data-binary x '%s/v1/keys/cas'", g_base);
    expect_error(&o, 412, "VERSION_MISMATCH");
    curl_free(&o);
    cr_assert_eq(curl(&o, "-X PUT -H 'If-None-Match: *' --data-binary x '%s/v1/keys/new'",
                      g_base), 200);
    curl_free(&o);
    curl(&o, "-X PUT -H 'If-Match: *' --data-binary x '%s/v1/keys/never'", g_base);
    expect_error(&o, 412, "VERSION_MISMATCH");
    curl_free(&o);
    curl(&o, "-X PUT -H 'If-Match: soon' --data-binary x '%s/v1/keys/cas'", g_base);
    expect_error(&o, 400, "INVALID_ARGUMENT");
    curl_free(&o);
    /* a conditional delete */
    curl(&o, "-X DELETE -H 'If-Match: %llu' '%s/v1/keys/cas'", (unsigned long long)v2, g_base);
    expect_error(&o, 412, "VERSION_MISMATCH");
    curl_free(&o);
    cr_assert_eq(curl(&o, "-X DELETE -H 'If-Match: %llu' '%s/v1/keys/cas'",
                      (unsigned long long)v3, g_base),
                 200, "%s", o.body);
    json_t *j = parse(&o);
    cr_assert_str_eq(jstr(j, "deleted"), "1");
    json_decref(j);
    curl_free(&o);
    curl(&o, "'%s/v1/keys/cas'", g_base);
    expect_error(&o, 404, "NOT_FOUND");
    curl_free(&o);
    kvd_stop();
}

/* ---- expiry ------------------------------------------------------------------- */

/* The value of header name, or "" when the response has none. */
static const char *header_or_empty(const curl_out *o, const char *name, char *buf, size_t cap)
{
    http_resp r;
    memset(&r, 0, sizeof r);
    snprintf(r.head, sizeof r.head, "%s", o->head);
    if (!http_header(&r, name, buf, cap))
        buf[0] = 0;
    return buf;
}

Test(http, expiry_on_put_and_get)
{
    start(NULL);
    curl_out o;
    char at[32], left[32];
    cr_assert_eq(curl(&o, "-X PUT --data-binary v '%s/v1/keys/e?ttl=1h'", g_base), 200, "%s",
                 o.body);
    curl_free(&o);
    cr_assert_eq(curl(&o, "'%s/v1/keys/e'", g_base), 200);
    uint64_t t = strtoull(header(&o, "X-Kvd-Expires-At", at, sizeof at), NULL, 10);
    uint64_t l = strtoull(header(&o, "X-Kvd-Ttl-Ms", left, sizeof left), NULL, 10);
    cr_assert(t > 1700000000000ull, "a Unix time in ms: %s", at);
    cr_assert(l > 0 && l <= 3600000, "%s", left);
    curl_free(&o);
    /* HEAD shows it too */
    cr_assert_eq(curl(&o, "-I '%s/v1/keys/e'", g_base), 200);
    cr_assert_eq(strtoull(header(&o, "X-Kvd-Expires-At", at, sizeof at), NULL, 10), t);
    curl_free(&o);
    /* keep_ttl keeps it, a plain PUT removes it, expires_at sets one */
    cr_assert_eq(curl(&o, "-X PUT --data-binary w '%s/v1/keys/e?keep_ttl'", g_base), 200);
    curl_free(&o);
    cr_assert_eq(curl(&o, "'%s/v1/keys/e'", g_base), 200);
    cr_assert_str_eq(o.body, "w");
    cr_assert_eq(strtoull(header(&o, "X-Kvd-Expires-At", at, sizeof at), NULL, 10), t);
    curl_free(&o);
    cr_assert_eq(curl(&o, "-X PUT --data-binary x '%s/v1/keys/e'", g_base), 200);
    curl_free(&o);
    cr_assert_eq(curl(&o, "'%s/v1/keys/e'", g_base), 200);
    cr_assert_str_eq(header_or_empty(&o, "X-Kvd-Expires-At", at, sizeof at), "");
    curl_free(&o);
    cr_assert_eq(curl(&o, "-X PUT --data-binary y '%s/v1/keys/e?expires_at=%llu'", g_base,
                      (unsigned long long)(t + 1000)),
                 200);
    curl_free(&o);
    cr_assert_eq(curl(&o, "'%s/v1/keys/e'", g_base), 200);
    cr_assert_eq(strtoull(header(&o, "X-Kvd-Expires-At", at, sizeof at), NULL, 10), t + 1000);
    uint64_t version = version_of(&o);
    curl_free(&o);
    /* bad expiries: 400, and the key is as it was */
    static const char *const bad[] = {"ttl=0", "ttl=-5", "ttl=abc", "ttl=5x", "ttl=",
                                      "ttl=99999999999999999999h", "ttl=5000000000h",
                                      "expires_at=0", "expires_at=-1", "expires_at=soon",
                                      "ttl=5s&expires_at=5", "ttl=5s&keep_ttl",
                                      "keep_ttl=maybe"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        curl(&o, "-X PUT --data-binary z '%s/v1/keys/e?%s'", g_base, bad[i]);
        expect_error(&o, 400, "INVALID_ARGUMENT");
        curl_free(&o);
    }
    cr_assert_eq(curl(&o, "'%s/v1/keys/e'", g_base), 200);
    cr_assert_str_eq(o.body, "y");
    cr_assert_eq(version_of(&o), version);
    cr_assert_eq(strtoull(header(&o, "X-Kvd-Expires-At", at, sizeof at), NULL, 10), t + 1000);
    curl_free(&o);
    /* a time past: written, and absent at once */
    cr_assert_eq(curl(&o, "-X PUT --data-binary p '%s/v1/keys/e?expires_at=1000'", g_base), 200);
    curl_free(&o);
    curl(&o, "'%s/v1/keys/e'", g_base);
    expect_error(&o, 404, "NOT_FOUND");
    curl_free(&o);
    /* /v1/mset: one expiry for every pair */
    char *k1 = b64("m1", 2), *k2 = b64("m2", 2), *v = b64("v", 1);
    char body[512];
    snprintf(body, sizeof body, "{\"pairs\":[{\"key\":\"%s\",\"value\":\"%s\"},"
             "{\"key\":\"%s\",\"value\":\"%s\"}]}", k1, v, k2, v);
    const char *path = file_with("mset.json", body, strlen(body));
    cr_assert_eq(curl(&o, "-X POST --data-binary @%s '%s/v1/mset?ttl=2h'", path, g_base), 200,
                 "%s", o.body);
    curl_free(&o);
    uint64_t t1, t2;
    cr_assert_eq(curl(&o, "'%s/v1/keys/m1'", g_base), 200);
    t1 = strtoull(header(&o, "X-Kvd-Expires-At", at, sizeof at), NULL, 10);
    curl_free(&o);
    cr_assert_eq(curl(&o, "'%s/v1/keys/m2'", g_base), 200);
    t2 = strtoull(header(&o, "X-Kvd-Expires-At", at, sizeof at), NULL, 10);
    curl_free(&o);
    cr_assert(t1 != 0 && t1 == t2);
    curl(&o, "-X POST --data-binary @%s '%s/v1/mset?keep_ttl'", path, g_base);
    expect_error(&o, 400, "INVALID_ARGUMENT");
    curl_free(&o);
    /* /v1/txn: a set op's "ttl" or "expires_at" */
    snprintf(body, sizeof body,
             "{\"compares\":[],\"then\":[{\"op\":\"set\",\"key\":\"%s\",\"value\":"
             "\"%s\",\"ttl\":\"1h\"},{\"op\":\"set\",\"key\":\"%s\",\"value\":\"%s\","
             "\"expires_at\":\"4102444800123\"}],\"else\":[]}", k1, v, k2, v);
    path = file_with("txn.json", body, strlen(body));
    cr_assert_eq(curl(&o, "-X POST --data-binary @%s '%s/v1/txn'", path, g_base), 200, "%s",
                 o.body);
    curl_free(&o);
    cr_assert_eq(curl(&o, "'%s/v1/keys/m1'", g_base), 200);
    t1 = strtoull(header(&o, "X-Kvd-Ttl-Ms", at, sizeof at), NULL, 10);
    cr_assert(t1 > 0 && t1 <= 3600000, "%s", at);
    curl_free(&o);
    cr_assert_eq(curl(&o, "'%s/v1/keys/m2'", g_base), 200);
    cr_assert_str_eq(header(&o, "X-Kvd-Expires-At", at, sizeof at), "4102444800123");
    curl_free(&o);
    static const char *const bad_ops[] = {"\"ttl\":\"0s\"", "\"ttl\":\"x\"", "\"ttl\":30",
                                          "\"expires_at\":0", "\"expires_at\":\"soon\"",
                                          "\"ttl\":\"1s\",\"expires_at\":5"};
    for (size_t i = 0; i < sizeof bad_ops / sizeof bad_ops[0]; i++) {
        snprintf(body, sizeof body,
                 "{\"compares\":[],\"then\":[{\"op\":\"set\",\"key\":\"%s\",\"value\":"
                 "\"%s\",%s}],\"else\":[]}", k2, k1, bad_ops[i]);
        path = file_with("txn.json", body, strlen(body));
        curl(&o, "-X POST --data-binary @%s '%s/v1/txn'", path, g_base);
        expect_error(&o, 400, "INVALID_ARGUMENT");
        curl_free(&o);
    }
    cr_assert_eq(curl(&o, "'%s/v1/keys/m2'", g_base), 200);
    cr_assert_str_eq(o.body, "v", "no refused txn changed it");
    cr_assert_str_eq(header(&o, "X-Kvd-Expires-At", at, sizeof at), "4102444800123");
    curl_free(&o);
    free(k1);
    free(k2);
    free(v);
    kvd_stop();
}

/* ---- listing ------------------------------------------------------------------- */

Test(http, list_by_prefix_page_by_page)
{
    start(NULL);
    kv_client *c = test_client(NULL);
    kv_pair pairs[260];
    char keys[260][8], vals[260][8];
    for (int i = 0; i < 260; i++) {
        snprintf(keys[i], sizeof keys[i], "%s%03d", i < 250 ? "p/" : "q/", i);
        snprintf(vals[i], sizeof vals[i], "v%d", i);
        pairs[i] = (kv_pair){keys[i], strlen(keys[i]), vals[i], strlen(vals[i])};
    }
    /* in MSETs of 50, as kvcli import sends them */
    for (int i = 0; i < 260; i += 50)
        cr_assert_eq(kv_client_mset(c, pairs + i, i + 50 <= 260 ? 50 : 260 - i, NULL), KV_OK);
    kv_client_close(c);

    int seen[250] = {0}, total = 0, pages = 0;
    char cursor[32] = "0";
    curl_out o;
    for (;;) {
        cr_assert_eq(curl(&o, "'%s/v1/keys?prefix=p%%2F&limit=40&cursor=%s'", g_base, cursor),
                     200, "%s", o.body);
        json_t *j = parse(&o);
        json_t *entries = json_object_get(j, "entries");
        cr_assert(json_is_array(entries));
        cr_assert_leq(json_array_size(entries), 40);
        size_t i;
        json_t *e;
        json_array_foreach(entries, i, e) {
            char k[64], v[64];
            unb64(jstr(e, "key"), k);
            unb64(jstr(e, "value"), v);
            cr_assert(strncmp(k, "p/", 2) == 0, "%s", k);
            int n = atoi(k + 2);
            char want[8];
            snprintf(want, sizeof want, "v%d", n);
            cr_assert_str_eq(v, want);
            cr_assert(json_is_string(json_object_get(e, "version")));
            seen[n]++;
            total++;
        }
        snprintf(cursor, sizeof cursor, "%s", jstr(j, "cursor"));
        int more = json_is_true(json_object_get(j, "more"));
        cr_assert_eq(more, strcmp(cursor, "0") != 0);
        json_decref(j);
        curl_free(&o);
        pages++;
        if (!more)
            break;
        cr_assert_lt(pages, 100);
    }
    cr_assert_eq(total, 250);
    for (int i = 0; i < 250; i++)
        cr_assert_eq(seen[i], 1, "key %d seen %d times", i, seen[i]);
    cr_assert_geq(pages, 7);

    /* keys only: no values */
    cr_assert_eq(curl(&o, "'%s/v1/keys?prefix=q/&keys_only=true&limit=1000'", g_base), 200);
    json_t *j = parse(&o);
    json_t *entries = json_object_get(j, "entries");
    cr_assert_eq(json_array_size(entries), 10);
    cr_assert_null(json_object_get(json_array_get(entries, 0), "value"));
    json_decref(j);
    curl_free(&o);

    curl(&o, "'%s/v1/keys?limit=0'", g_base);
    expect_error(&o, 400, "INVALID_ARGUMENT");
    curl_free(&o);
    curl(&o, "'%s/v1/keys?cursor=abc'", g_base);
    expect_error(&o, 400, "INVALID_ARGUMENT");
    curl_free(&o);
    kvd_stop();
}

/* ---- JSON: txn, mset, mget -------------------------------------------------------- */

Test(http, json_txn_mset_mget)
{
    start(NULL);
    curl_out o;
    char *ka = b64("a", 1), *kb = b64("b", 1), *kc = b64("c", 1);
    char *v1 = b64("1", 1), *v2 = b64("\x00\xff", 2), *v3 = b64("3", 1);
    cr_assert_eq(curl(&o,
                      "-X POST -d '{\"pairs\":[{\"key\":\"%s\",\"value\":\"%s\"},"
                      "{\"key\":\"%s\",\"value\":\"%s\"}]}' '%s/v1/mset'",
                      ka, v1, kb, v2, g_base),
                 200, "%s", o.body);
    json_t *j = parse(&o);
    uint64_t rev = strtoull(jstr(j, "revision"), NULL, 10);
    json_decref(j);
    curl_free(&o);

    cr_assert_eq(curl(&o, "-X POST -d '{\"keys\":[\"%s\",\"%s\",\"%s\"]}' '%s/v1/mget'", ka, kb,
                      kc, g_base),
                 200, "%s", o.body);
    j = parse(&o);
    json_t *vals = json_object_get(j, "values");
    cr_assert_eq(json_array_size(vals), 3);
    char buf[64];
    json_t *e0 = json_array_get(vals, 0), *e1 = json_array_get(vals, 1);
    cr_assert_eq(unb64(jstr(e0, "value"), buf), 1);
    cr_assert_str_eq(buf, "1");
    cr_assert_eq(strtoull(jstr(e0, "version"), NULL, 10), rev);
    cr_assert_eq(unb64(jstr(e1, "value"), buf), 2);
    cr_assert(memcmp(buf, "\x00\xff", 2) == 0);
    cr_assert(json_is_null(json_array_get(vals, 2)), "an absent key is null");
    json_decref(j);
    curl_free(&o);

    /* a txn: a holds 1 and c is absent, so set c and read a */
    char body[2048];
    snprintf(body, sizeof body,
             "{\"compares\":[{\"key\":\"%s\",\"target\":\"value\",\"value\":\"%s\"},"
             "{\"key\":\"%s\",\"target\":\"absent\"}],"
             "\"then\":[{\"op\":\"set\",\"key\":\"%s\",\"value\":\"%s\"},"
             "{\"op\":\"get\",\"key\":\"%s\"}],"
             "\"else\":[{\"op\":\"get\",\"key\":\"%s\"}]}",
             ka, v1, kc, kc, v3, ka, kc);
    const char *f = file_with("txn.json", body, strlen(body));
    cr_assert_eq(curl(&o, "-X POST -H 'Content-Type: application/json' --data-binary @%s "
                          "'%s/v1/txn'", f, g_base),
                 200, "%s", o.body);
    j = parse(&o);
    cr_assert(json_is_true(json_object_get(j, "succeeded")), "%s", o.body);
    uint64_t trev = strtoull(jstr(j, "revision"), NULL, 10);
    cr_assert_gt(trev, rev);
    json_t *res = json_object_get(j, "results");
    cr_assert_eq(json_array_size(res), 2);
    cr_assert_str_eq(jstr(json_array_get(res, 0), "status"), "OK");
    cr_assert_eq(unb64(jstr(json_array_get(res, 1), "value"), buf), 1);
    cr_assert_str_eq(buf, "1");
    json_decref(j);
    curl_free(&o);
    /* the same again: c exists now, so the else branch reads c */
    cr_assert_eq(curl(&o, "-X POST --data-binary @%s '%s/v1/txn'", f, g_base), 200);
    j = parse(&o);
    cr_assert(json_is_false(json_object_get(j, "succeeded")));
    res = json_object_get(j, "results");
    cr_assert_eq(unb64(jstr(json_array_get(res, 0), "value"), buf), 1);
    cr_assert_str_eq(buf, "3");
    cr_assert_eq(strtoull(jstr(json_array_get(res, 0), "version"), NULL, 10), trev);
    json_decref(j);
    curl_free(&o);
    /* compare on a version (a number or a string), delete in the txn */
    cr_assert_eq(curl(&o,
                      "-X POST -d '{\"compares\":[{\"key\":\"%s\",\"version\":%llu}],"
                      "\"then\":[{\"op\":\"delete\",\"key\":\"%s\"},{\"op\":\"get\",\"key\":\"%s\"}]}' "
                      "'%s/v1/txn'",
                      kc, (unsigned long long)trev, kc, kc, g_base),
                 200, "%s", o.body);
    j = parse(&o);
    cr_assert(json_is_true(json_object_get(j, "succeeded")), "%s", o.body);
    res = json_object_get(j, "results");
    cr_assert_str_eq(jstr(json_array_get(res, 1), "status"), "NOT_FOUND");
    json_decref(j);
    curl_free(&o);

    /* malformed bodies: 400 with the reason, the connection kept */
    static const char *const bad[] = {
        "{\"compares\":[", "[]", "{\"compare\":[]}", "{\"then\":[{\"op\":\"get\"}]}",
        "{\"then\":[{\"op\":\"set\",\"key\":\"!!\",\"value\":\"\"}]}",
        "{\"then\":[{\"op\":\"nap\",\"key\":\"YQ==\"}]}",
        "{\"compares\":[{\"key\":\"YQ==\",\"version\":-1}]}",
        "{\"compares\":[{\"key\":\"YQ==\",\"target\":\"version\",\"result\":\"LESS\",\"version\":1}]}",
        "{\"then\":[], \"then\":[]}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        f = file_with("bad.json", bad[i], strlen(bad[i]));
        curl(&o, "-X POST --data-binary @%s '%s/v1/txn'", f, g_base);
        expect_error(&o, 400, "INVALID_ARGUMENT");
        curl_free(&o);
    }
    curl(&o, "-X POST -d '{\"pairs\":[]}' '%s/v1/mset'", g_base);
    expect_error(&o, 400, "INVALID_ARGUMENT");
    curl_free(&o);
    curl(&o, "-X POST -d '{\"keys\":[\"YQ==\", 5]}' '%s/v1/mget'", g_base);
    expect_error(&o, 400, "INVALID_ARGUMENT");
    curl_free(&o);
    curl(&o, "-X POST '%s/v1/mget'", g_base);
    expect_error(&o, 400, "INVALID_ARGUMENT");
    curl_free(&o);
    curl(&o, "'%s/v1/txn'", g_base);
    expect_error(&o, 405, "UNSUPPORTED");
    char allow[32];
    cr_assert_str_eq(header(&o, "Allow", allow, sizeof allow), "POST");
    curl_free(&o);
    free(ka);
    free(kb);
    free(kc);
    free(v1);
    free(v2);
    free(v3);
    kvd_stop();
}

/* ---- auth ------------------------------------------------------------------------- */

Test(http, bearer_token_is_the_password)
{
    start("--password", "s3cret", NULL);
    curl_out o;
    curl(&o, "'%s/v1/keys/k'", g_base);
    expect_error(&o, 401, "AUTH_REQUIRED");
    char www[64];
    cr_assert_str_eq(header(&o, "WWW-Authenticate", www, sizeof www), "Bearer realm=\"kvd\"");
    curl_free(&o);
    curl(&o, "-H 'Authorization: Bearer nope' '%s/v1/keys/k'", g_base);
    expect_error(&o, 401, "AUTH_FAILED");
    curl_free(&o);
    cr_assert_eq(curl(&o, "-X PUT -H 'Authorization: Bearer s3cret' --data-binary v "
                          "'%s/v1/keys/k'", g_base), 200);
    curl_free(&o);
    cr_assert_eq(curl(&o, "-H 'Authorization: bearer s3cret' '%s/v1/keys/k'", g_base), 200);
    cr_assert_str_eq(o.body, "v");
    curl_free(&o);
    /* liveness needs no token; metrics do */
    cr_assert_eq(curl(&o, "'%s/healthz'", g_base), 200);
    curl_free(&o);
    curl(&o, "'%s/metrics'", g_base);
    expect_error(&o, 401, "AUTH_REQUIRED");
    curl_free(&o);
    cr_assert_eq(curl(&o, "-H 'Authorization: Bearer s3cret' '%s/metrics'", g_base), 200);
    cr_assert_not_null(strstr(o.body, "kvd_auth_failures_total 1\n"), "%s", o.body);
    curl_free(&o);

    /* a token proves one request: the next one on the connection needs
     * its own */
    int fd = raw_connect(g_kvd.port, 5000);
    cr_assert_geq(fd, 0);
    const char *two = "GET /v1/keys/k HTTP/1.1\r\nAuthorization: Bearer s3cret\r\n\r\n"
                      "GET /v1/keys/k HTTP/1.1\r\n\r\n";
    cr_assert_eq(raw_send(fd, two, strlen(two)), 0);
    http_resp r;
    cr_assert_eq(http_recv(fd, &r, 0), 200);
    http_resp_free(&r);
    cr_assert_eq(http_recv(fd, &r, 0), 401);
    http_resp_free(&r);
    close(fd);

    /* a body over the pre-auth limit (1 MiB) without the token is refused
     * from its head, unread, and the connection closes */
    fd = raw_connect(g_kvd.port, 5000);
    const char *big = "PUT /v1/keys/big HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n";
    cr_assert_eq(raw_send(fd, big, strlen(big)), 0);
    cr_assert_eq(http_recv(fd, &r, 0), 401);
    char conn[32];
    cr_assert(http_header(&r, "Connection", conn, sizeof conn));
    cr_assert_str_eq(conn, "close");
    http_resp_free(&r);
    cr_assert(raw_wait_closed(fd, 5000));
    close(fd);
    kvd_stop();
}

/* ---- connections ------------------------------------------------------------------- */

static void expect_responses(int fd, const int *codes, const char *const *bodies, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        http_resp r;
        cr_assert_eq(http_recv(fd, &r, 0), codes[i], "response %zu: %s", i, r.head);
        if (bodies[i])
            cr_assert_str_eq((char *)r.body, bodies[i], "response %zu", i);
        http_resp_free(&r);
    }
}

Test(http, keep_alive_and_pipelining)
{
    start(NULL);
    const char *reqs = "PUT /v1/keys/k1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                       "GET /v1/keys/k1 HTTP/1.1\r\nHost: x\r\n\r\n"
                       "GET /v1/keys/zz HTTP/1.1\r\nHost: x\r\n\r\n"
                       "DELETE /v1/keys/k1 HTTP/1.1\r\nHost: x\r\n\r\n"
                       "GET /v1/keys/k1 HTTP/1.1\r\nHost: x\r\n\r\n";
    static const int codes[] = {200, 200, 404, 200, 404};
    static const char *const bodies[] = {NULL, "abc", NULL, NULL, NULL};
    /* in one write */
    int fd = raw_connect(g_kvd.port, 5000);
    cr_assert_geq(fd, 0);
    cr_assert_eq(raw_send(fd, reqs, strlen(reqs)), 0);
    expect_responses(fd, codes, bodies, 5);
    /* a byte at a time, on the same connection */
    for (size_t i = 0; reqs[i]; i++)
        cr_assert_eq(raw_send(fd, reqs + i, 1), 0);
    expect_responses(fd, codes, bodies, 5);

    /* a chunked body, and Expect: 100-continue */
    const char *chunked = "POST /v1/mget HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "5\r\n{\"key\r\n8\r\ns\":[\"azE\r\n4\r\n=\"]}\r\n0\r\n\r\n";
    cr_assert_eq(raw_send(fd, chunked, strlen(chunked)), 0);
    http_resp r;
    cr_assert_eq(http_recv(fd, &r, 0), 200);
    cr_assert_str_eq((char *)r.body, "{\"values\":[null]}\n");
    http_resp_free(&r);
    const char *expect = "PUT /v1/keys/k2 HTTP/1.1\r\nExpect: 100-continue\r\n"
                         "Content-Length: 5\r\n\r\n";
    cr_assert_eq(raw_send(fd, expect, strlen(expect)), 0);
    cr_assert_eq(http_recv(fd, &r, 0), 100);
    http_resp_free(&r);
    cr_assert_eq(raw_send(fd, "hello", 5), 0);
    cr_assert_eq(http_recv(fd, &r, 0), 200);
    http_resp_free(&r);

    /* many in one write */
    char many[64 * 40 + 1] = "";
    for (int i = 0; i < 64; i++)
        strcat(many, "GET /v1/keys/k2 HTTP/1.1\r\n\r\n");
    cr_assert_eq(raw_send(fd, many, strlen(many)), 0);
    for (int i = 0; i < 64; i++) {
        cr_assert_eq(http_recv(fd, &r, 0), 200);
        cr_assert_str_eq((char *)r.body, "hello");
        http_resp_free(&r);
    }
    /* HEAD has no body, then the stream goes on */
    const char *head = "HEAD /v1/keys/k2 HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n";
    cr_assert_eq(raw_send(fd, head, strlen(head)), 0);
    cr_assert_eq(http_recv(fd, &r, 1), 200);
    http_resp_free(&r);
    cr_assert_eq(http_recv(fd, &r, 0), 200);
    cr_assert_str_eq((char *)r.body, "{\"health\":\"true\"}\n");
    http_resp_free(&r);
    /* Connection: close ends it after the answer */
    const char *bye = "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n";
    cr_assert_eq(raw_send(fd, bye, strlen(bye)), 0);
    cr_assert_eq(http_recv(fd, &r, 0), 200);
    char conn[32];
    cr_assert(http_header(&r, "Connection", conn, sizeof conn));
    cr_assert_str_eq(conn, "close");
    http_resp_free(&r);
    cr_assert(raw_wait_closed(fd, 5000));
    close(fd);

    /* HTTP/1.0: closed after one answer unless it asks to keep alive */
    fd = raw_connect(g_kvd.port, 5000);
    const char *ten = "GET /v1/keys/k2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                      "GET /v1/keys/k2 HTTP/1.0\r\n\r\n";
    cr_assert_eq(raw_send(fd, ten, strlen(ten)), 0);
    cr_assert_eq(http_recv(fd, &r, 0), 200);
    cr_assert(http_header(&r, "Connection", conn, sizeof conn));
    cr_assert_str_eq(conn, "keep-alive");
    http_resp_free(&r);
    cr_assert_eq(http_recv(fd, &r, 0), 200);
    cr_assert_str_eq((char *)r.body, "hello");
    http_resp_free(&r);
    cr_assert(raw_wait_closed(fd, 5000));
    close(fd);
    kvd_stop();
}

/* ---- metrics ------------------------------------------------------------------------ */

/* The value of the exposition line that starts with `series `. */
static double sample(const char *text, const char *series)
{
    char needle[256];
    snprintf(needle, sizeof needle, "\n%s ", series);
    const char *p = strstr(text, needle);
    cr_assert_not_null(p, "no %s", series);
    return strtod(p + strlen(needle), NULL);
}

Test(http, metrics_pass_promtool)
{
    cr_assert_eq(system("command -v promtool >/dev/null 2>&1"), 0,
                 "promtool (Debian's prometheus package) is needed: bash scripts/dev.sh deps");
    start(NULL);
    kv_client *c = test_client(NULL);
    cr_assert_eq(kv_client_set(c, "m", 1, "v", 1, NULL), KV_OK);
    cr_assert_eq(kv_client_set(c, "m", 1, "w", 1, NULL), KV_OK);
    kv_value v;
    cr_assert_eq(kv_client_get(c, "m", 1, &v), KV_OK);
    kv_client_value_free(&v);
    kv_client_close(c);
    curl_out o;
    cr_assert_eq(curl(&o, "-X PUT -d x '%s/v1/keys/m2'", g_base), 200);
    curl_free(&o);
    cr_assert_eq(curl(&o, "'%s/metrics'", g_base), 200);
    char ct[96];
    cr_assert_str_eq(header(&o, "Content-Type", ct, sizeof ct),
                     "text/plain; version=0.0.4; charset=utf-8");
    const char *f = file_with("metrics.txt", o.body, o.len);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s > %s/promtool.out 2>&1", f,
             g_kvd.dir);
    int rc = system(cmd);
    char out[300];
    snprintf(out, sizeof out, "%s/promtool.out", g_kvd.dir);
    char *msg = slurp(out, NULL);
    cr_assert_eq(rc, 0, "promtool check metrics: %s", msg);
    free(msg);

    const char *t = o.body;
    cr_assert_not_null(strstr(t, "# TYPE kvd_request_duration_seconds histogram\n"));
    cr_assert_not_null(strstr(t, "\nkvd_build_info{version=\""));
    cr_assert_eq(sample(t, "kvd_requests_total{command=\"set\"}"), 3.0);
    cr_assert_eq(sample(t, "kvd_request_duration_seconds_count{command=\"set\"}"), 3.0);
    cr_assert_eq(sample(t, "kvd_request_duration_seconds_bucket{command=\"set\",le=\"+Inf\"}"),
                 3.0);
    cr_assert_gt(sample(t, "kvd_request_duration_seconds_sum{command=\"set\"}"), 0.0);
    /* cumulative buckets never decrease */
    double last = 0;
    for (int e = 10; e <= 34; e++) {
        char s[160];
        snprintf(s, sizeof s, "kvd_request_duration_seconds_bucket{command=\"set\",le=\"%.12g\"}",
                 (double)((uint64_t)1 << e) / 1e9);
        double x = sample(t, s);
        cr_assert_geq(x, last);
        last = x;
    }
    cr_assert_eq(sample(t, "kvd_keys"), 2.0);
    cr_assert_geq(sample(t, "kvd_received_bytes_total"), 1.0);
    curl_free(&o);
    kvd_stop();
}

/* ---- one port ------------------------------------------------------------------------ */

static void run(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    pclose(p);
}

Test(http, curl_redis_cli_and_kvcli_share_one_port)
{
    start(NULL);
    curl_out o;
    char cmd[512], out[256];
    cr_assert_eq(curl(&o, "-X PUT --data-binary from-curl '%s/v1/keys/shared'", g_base), 200);
    curl_free(&o);
    snprintf(cmd, sizeof cmd, "%s --port %d get shared 2>&1", KVCLI_PATH, g_kvd.port);
    run(cmd, out, sizeof out);
    cr_assert_str_eq(out, "from-curl\n");
    if (system("command -v redis-cli >/dev/null 2>&1") == 0) {
        snprintf(cmd, sizeof cmd, "redis-cli -p %d GET shared 2>&1", g_kvd.port);
        run(cmd, out, sizeof out);
        cr_assert_str_eq(out, "from-curl\n");
        snprintf(cmd, sizeof cmd, "redis-cli -p %d SET shared from-redis 2>&1", g_kvd.port);
        run(cmd, out, sizeof out);
        cr_assert_str_eq(out, "OK\n");
        cr_assert_eq(curl(&o, "'%s/v1/keys/shared'", g_base), 200);
        cr_assert_str_eq(o.body, "from-redis");
        curl_free(&o);
    }
    snprintf(cmd, sizeof cmd, "%s --port %d set shared from-kvcli >/dev/null 2>&1", KVCLI_PATH,
             g_kvd.port);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(curl(&o, "'%s/v1/keys/shared'", g_base), 200);
    cr_assert_str_eq(o.body, "from-kvcli");
    curl_free(&o);
    kvd_stop();
}

Test(http, http_port_speaks_only_http)
{
    start("--http-port", "0", NULL);
    cr_assert(wait_file_has(g_kvd.log, "(HTTP only)"));
    int port = kvd_log_port("(HTTP only)");
    cr_assert_gt(port, 0);
    cr_assert_neq(port, g_kvd.port);
    curl_out o;
    cr_assert_eq(curl(&o, "-X PUT --data-binary v 'http://127.0.0.1:%d/v1/keys/k'", port), 200);
    curl_free(&o);
    cr_assert_eq(curl(&o, "'%s/v1/keys/k'", g_base), 200, "the main port speaks HTTP too");
    cr_assert_str_eq(o.body, "v");
    curl_free(&o);
    /* Redis's inline PING and a frame of kvd's protocol are not HTTP there */
    int fd = raw_connect(port, 5000);
    cr_assert_geq(fd, 0);
    cr_assert_eq(raw_send(fd, "PING\r\n\r\n", 8), 0);
    http_resp r;
    cr_assert_eq(http_recv(fd, &r, 0), 400);
    cr_assert_not_null(strstr((char *)r.body, "\"PROTOCOL\""), "%s", r.body);
    http_resp_free(&r);
    cr_assert(raw_wait_closed(fd, 5000));
    close(fd);
    fd = raw_connect(port, 5000);
    kv_proto_buf b = {0};
    kv_proto_request ping = {.op = KV_PROTO_PING, .id = 1};
    enc(&b, &ping);
    cr_assert_eq(raw_send(fd, b.data, b.len), 0);
    kv_proto_buf_free(&b);
    cr_assert_eq(http_recv(fd, &r, 0), 400);
    http_resp_free(&r);
    close(fd);
    kvd_stop();
}

/* ---- history ----------------------------------------------------------------- */

/* Reads at a revision (?rev= on a key and on a listing, "revision" in an
 * mget), a key's changes, rollback and compaction, and their errors:
 * 410 COMPACTED naming the oldest revision, 400 FUTURE_REVISION. A fresh
 * kvd numbers its changes 1, 2, 3... */
Test(http, history_endpoints)
{
    start(NULL);
    curl_out o;
    cr_assert_eq(curl(&o, "-X PUT --data-binary one %s/v1/keys/a", g_base), 200); /* 1 */
    curl_free(&o);
    cr_assert_eq(curl(&o, "-X PUT --data-binary two %s/v1/keys/a", g_base), 200); /* 2 */
    curl_free(&o);
    cr_assert_eq(curl(&o, "-X PUT --data-binary bee %s/v1/keys/b", g_base), 200); /* 3 */
    curl_free(&o);
    cr_assert_eq(curl(&o, "-X DELETE %s/v1/keys/a", g_base), 200);                /* 4 */
    curl_free(&o);

    cr_assert_eq(curl(&o, "'%s/v1/keys/a?rev=1'", g_base), 200, "%s", o.body);
    cr_expect_str_eq(o.body, "one");
    cr_expect_eq(version_of(&o), 1);
    curl_free(&o);
    cr_expect_eq(curl(&o, "'%s/v1/keys/a?rev=4'", g_base), 404);
    curl_free(&o);
    curl(&o, "'%s/v1/keys/a?rev=99'", g_base);
    expect_error(&o, 400, "FUTURE_REVISION");
    cr_expect(strstr(o.body, "latest is 4"), "%s", o.body);
    curl_free(&o);
    curl(&o, "'%s/v1/keys/a?rev=x'", g_base);
    expect_error(&o, 400, "INVALID_ARGUMENT");
    curl_free(&o);
    curl(&o, "-X PUT --data-binary v '%s/v1/keys/a?rev=1'", g_base);
    expect_error(&o, 400, "INVALID_ARGUMENT");
    curl_free(&o);

    /* the listing as at revision 2: a only */
    cr_assert_eq(curl(&o, "'%s/v1/keys?rev=2'", g_base), 200, "%s", o.body);
    json_t *j = parse(&o);
    json_t *e = json_object_get(j, "entries");
    cr_assert_eq(json_array_size(e), 1, "%s", o.body);
    char buf[64];
    unb64(jstr(json_array_get(e, 0), "key"), buf);
    cr_expect_str_eq(buf, "a");
    unb64(jstr(json_array_get(e, 0), "value"), buf);
    cr_expect_str_eq(buf, "two");
    json_decref(j);
    curl_free(&o);

    char *ka = b64("a", 1), *kb = b64("b", 1);
    cr_assert_eq(curl(&o, "-d '{\"keys\":[\"%s\",\"%s\"],\"revision\":\"2\"}' %s/v1/mget", ka, kb,
                      g_base), 200, "%s", o.body);
    j = parse(&o);
    json_t *vals = json_object_get(j, "values");
    unb64(jstr(json_array_get(vals, 0), "value"), buf);
    cr_expect_str_eq(buf, "two");
    cr_expect(json_is_null(json_array_get(vals, 1)), "%s", o.body);
    json_decref(j);
    curl_free(&o);

    cr_assert_eq(curl(&o, "'%s/v1/history/a?limit=2'", g_base), 200, "%s", o.body);
    j = parse(&o);
    cr_expect_str_eq(jstr(j, "compact_revision"), "0");
    e = json_object_get(j, "events");
    cr_assert_eq(json_array_size(e), 2, "%s", o.body);
    cr_expect_str_eq(jstr(json_array_get(e, 0), "revision"), "4");
    cr_expect(json_is_true(json_object_get(json_array_get(e, 0), "deleted")));
    cr_expect_str_eq(jstr(json_array_get(e, 1), "revision"), "2");
    cr_expect_str_eq(jstr(json_array_get(e, 1), "version"), "2");
    cr_expect_str_eq(jstr(json_array_get(e, 1), "create_revision"), "1");
    unb64(jstr(json_array_get(e, 1), "value"), buf);
    cr_expect_str_eq(buf, "two");
    json_decref(j);
    curl_free(&o);

    /* rollback: a back to revision 2, one new change */
    cr_assert_eq(curl(&o, "-d '{\"keys\":[\"%s\"],\"to_revision\":2}' %s/v1/rollback", ka,
                      g_base), 200, "%s", o.body);
    j = parse(&o);
    cr_expect_str_eq(jstr(j, "changed"), "1");
    cr_expect_str_eq(jstr(j, "revision"), "5");
    json_decref(j);
    curl_free(&o);
    cr_assert_eq(curl(&o, "%s/v1/keys/a", g_base), 200);
    cr_expect_str_eq(o.body, "two");
    curl_free(&o);
    curl(&o, "-d '{\"prefix\":\"\",\"to_revision\":\"1\",\"unchanged_since\":\"4\"}' "
             "%s/v1/rollback", g_base);
    expect_error(&o, 412, "VERSION_MISMATCH");
    curl_free(&o);
    curl(&o, "-d '{\"keys\":[\"%s\"],\"prefix\":\"\",\"to_revision\":1}' %s/v1/rollback", ka,
         g_base);
    expect_error(&o, 400, "INVALID_ARGUMENT");
    curl_free(&o);
    curl(&o, "%s/v1/rollback", g_base);
    cr_expect_eq(o.code, 405);
    curl_free(&o);

    /* compaction */
    cr_assert_eq(curl(&o, "-d '{\"revision\":3}' %s/v1/compact", g_base), 200, "%s", o.body);
    j = parse(&o);
    cr_expect_str_eq(jstr(j, "compact_revision"), "3");
    json_decref(j);
    curl_free(&o);
    curl(&o, "'%s/v1/keys/a?rev=1'", g_base);
    expect_error(&o, 410, "COMPACTED");
    cr_expect(strstr(o.body, "oldest is 3"), "%s", o.body);
    curl_free(&o);
    curl(&o, "-d '{\"revision\":3}' %s/v1/compact", g_base);
    expect_error(&o, 410, "COMPACTED");
    curl_free(&o);
    cr_assert_eq(curl(&o, "%s/metrics", g_base), 200);
    cr_expect(strstr(o.body, "\nkvd_compact_revision 3\n"), "%s", o.body);
    cr_expect(strstr(o.body, "\nkvd_history_versions "), "%s", o.body);
    curl_free(&o);
    free(ka);
    free(kb);
    kvd_stop();
}
