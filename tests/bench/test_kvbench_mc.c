/*
 * test_kvbench_mc.c - kvbench's memcached text-protocol codec
 * (bench/kvbench/mc.c): the commands it writes, and the replies it cuts
 * from a stream, fed whole, as every prefix, and back to back.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "mc.h"

/* Encodes req into a fresh buffer and compares it with want. */
static void expect_encoded(const kv_proto_request *req, const char *want, size_t want_len)
{
    kv_proto_buf b = {0};
    cr_assert_eq(kvb_mc_request_encode(&b, req), KV_OK);
    cr_expect_eq(b.len, want_len, "encoded %zu bytes, want %zu", b.len, want_len);
    cr_expect(b.len == want_len && memcmp(b.data, want, want_len) == 0);
    kv_proto_buf_free(&b);
}

Test(mc_encode, get_and_set)
{
    kv_proto_request get = {.op = KV_PROTO_GET, .key = {"key:00000001", 12}};
    expect_encoded(&get, "get key:00000001\r\n", 18);

    kv_proto_request set = {.op = KV_PROTO_SET, .key = {"k", 1}, .value = {"a\r\nb", 4}};
    expect_encoded(&set, "set k 0 0 4\r\na\r\nb\r\n", 19);

    kv_proto_request empty = {.op = KV_PROTO_SET, .key = {"k", 1}, .value = {NULL, 0}};
    expect_encoded(&empty, "set k 0 0 0\r\n\r\n", 15);

    static char big[12345];
    memset(big, 'v', sizeof big);
    kv_proto_request large = {.op = KV_PROTO_SET, .key = {"k", 1}, .value = {big, sizeof big}};
    kv_proto_buf b = {0};
    cr_assert_eq(kvb_mc_request_encode(&b, &large), KV_OK);
    cr_expect_eq(b.len, 17 + sizeof big + 2);
    cr_expect(memcmp(b.data, "set k 0 0 12345\r\n", 17) == 0);
    cr_expect(memcmp(b.data + b.len - 2, "\r\n", 2) == 0);
    kv_proto_buf_free(&b);
}

Test(mc_encode, refuses_what_memcached_would)
{
    char long_key[KVB_MC_MAX_KEY + 1];
    memset(long_key, 'k', sizeof long_key);
    const kv_key bad[] = {{"", 0}, {"a b", 3}, {"a\nb", 3}, {"a\x7f", 2},
                          {long_key, sizeof long_key}};
    kv_proto_buf b = {0};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kv_proto_request q = {.op = KV_PROTO_GET, .key = bad[i]};
        cr_expect_eq(kvb_mc_request_encode(&b, &q), KV_INVALID_ARGUMENT, "key %zu", i);
        cr_expect_eq(b.len, 0, "nothing written for key %zu", i);
    }
    kv_proto_request max = {.op = KV_PROTO_GET, .key = {long_key, KVB_MC_MAX_KEY}};
    cr_expect_eq(kvb_mc_request_encode(&b, &max), KV_OK);
    kv_proto_buf_reset(&b);

    kv_proto_request auth = {.op = KV_PROTO_AUTH, .secret = {"pw", 2}};
    cr_expect_eq(kvb_mc_request_encode(&b, &auth), KV_UNSUPPORTED);
    kv_proto_request del = {.op = KV_PROTO_DEL, .key = {"k", 1}};
    cr_expect_eq(kvb_mc_request_encode(&b, &del), KV_UNSUPPORTED);
    cr_expect_eq(b.len, 0);
    kv_proto_buf_free(&b);
}

/* Parses all of s as one reply of type want (payload want_str), and
 * every strict prefix as "need more". */
static void expect_reply(const char *s, size_t len, kvb_mc_type want, const char *want_str,
                         size_t want_len)
{
    const uint8_t *buf = (const uint8_t *)s;
    for (size_t n = 0; n < len; n++) {
        kvb_mc_reply r;
        size_t used = 99;
        const char *why = NULL;
        cr_expect_eq(kvb_mc_parse(buf, n, &r, &used, &why), KVB_MC_NEED_MORE,
                     "prefix of %zu bytes of %.*s: %s", n, (int)len, s, why ? why : "");
        cr_expect_eq(used, 99);
    }
    kvb_mc_reply r;
    size_t used = 0;
    const char *why = NULL;
    cr_assert_eq(kvb_mc_parse(buf, len, &r, &used, &why), KVB_MC_REPLY, "%s",
                 why ? why : "");
    cr_expect_eq(used, len);
    cr_expect_eq(r.type, want);
    cr_expect_eq(r.len, want_len);
    cr_expect(memcmp(r.str, want_str, want_len) == 0);
}

#define S(lit) lit, sizeof(lit) - 1

Test(mc_parse, replies)
{
    expect_reply(S("VALUE key:00000001 0 3\r\nabc\r\nEND\r\n"), KVB_MC_VALUE, S("abc"));
    /* With a cas unique (gets), flags, and a value that looks like a tail. */
    expect_reply(S("VALUE k 42 7 1234\r\n\r\nEND\r\n\r\nEND\r\n"), KVB_MC_VALUE,
                 S("\r\nEND\r\n"));
    expect_reply(S("VALUE k 0 0\r\n\r\nEND\r\n"), KVB_MC_VALUE, "", 0);
    expect_reply(S("END\r\n"), KVB_MC_MISS, S("END"));
    expect_reply(S("STORED\r\n"), KVB_MC_STORED, S("STORED"));
    expect_reply(S("ERROR\r\n"), KVB_MC_ERROR, S("ERROR"));
    expect_reply(S("CLIENT_ERROR bad data chunk\r\n"), KVB_MC_ERROR,
                 S("CLIENT_ERROR bad data chunk"));
    expect_reply(S("SERVER_ERROR object too large for cache\r\n"), KVB_MC_ERROR,
                 S("SERVER_ERROR object too large for cache"));
    expect_reply(S("NOT_STORED\r\n"), KVB_MC_ERROR, S("NOT_STORED"));
}

Test(mc_parse, back_to_back)
{
    static const char s[] = "STORED\r\nVALUE k 0 2\r\nhi\r\nEND\r\nEND\r\n";
    const uint8_t *p = (const uint8_t *)s;
    size_t len = sizeof s - 1, used;
    kvb_mc_reply r;
    const char *why;
    const kvb_mc_type want[] = {KVB_MC_STORED, KVB_MC_VALUE, KVB_MC_MISS};
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(kvb_mc_parse(p, len, &r, &used, &why), KVB_MC_REPLY);
        cr_expect_eq(r.type, want[i]);
        p += used;
        len -= used;
    }
    cr_expect_eq(len, 0);
    cr_expect_eq(kvb_mc_parse(p, len, &r, &used, &why), KVB_MC_NEED_MORE);
}

static void expect_bad(const char *s, size_t len)
{
    kvb_mc_reply r;
    size_t used = 99;
    const char *why = NULL;
    cr_expect_eq(kvb_mc_parse((const uint8_t *)s, len, &r, &used, &why), KVB_MC_BAD,
                 "%.*s", (int)len, s);
    cr_expect(why != NULL && why[0] != '\0');
    cr_expect_eq(used, 99);
}

Test(mc_parse, refuses_what_is_not_a_reply)
{
    expect_bad(S("+OK\r\n"));                             /* Redis */
    expect_bad(S("HELLO\r\n"));
    expect_bad(S("STORED \r\n"));
    expect_bad(S("ENDX\r\n"));
    expect_bad(S("END\rX"));
    expect_bad(S("VALUE\r\n"));
    expect_bad(S("VALUE k\r\n"));
    expect_bad(S("VALUE k 0\r\n"));
    expect_bad(S("VALUE k 0 x\r\n"));
    expect_bad(S("VALUE k -1 3\r\n"));
    expect_bad(S("VALUE k 0 3 \r\n"));
    expect_bad(S("VALUE k 0 3 1 2\r\n"));
    expect_bad(S("VALUE k 4294967296 3\r\n"));
    expect_bad(S("VALUE k 0 99999999999999999999\r\n"));
    expect_bad(S("VALUE k 0 1073741825\r\n"));
    /* Two values: kvbench asks for one key at a time. */
    expect_bad(S("VALUE k 0 1\r\na\r\nVALUE j 0 1\r\nb\r\nEND\r\n"));
    /* A wrong tail is seen before all of it has arrived. */
    expect_bad(S("VALUE k 0 1\r\naX"));

    static char line[KVB_MC_MAX_LINE + 10];
    memset(line, 'E', sizeof line);
    expect_bad(line, sizeof line);
}
