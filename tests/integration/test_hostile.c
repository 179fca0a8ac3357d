/*
 * test_hostile.c - malformed input over raw sockets (no client library):
 * bad length prefixes, a truncated frame, wrong MessagePack types, an
 * unknown op, oversized keys and values, trailing bytes, absurd counts,
 * deep nesting and random garbage. Each gets the error docs/protocol.md
 * section 6 prescribes (and a close when the stream cannot be trusted);
 * afterwards kvd still serves a normal client and the store is unchanged.
 *
 * The bad bytes are written by hand on purpose: the codec would refuse
 * to produce them.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

TestSuite(hostile, .init = harness_setup, .fini = harness_teardown, .timeout = 90);

/* Sends a frame whose body is `body`, with the right length prefix. */
static void send_body(int fd, const void *body, size_t len)
{
    uint8_t hdr[4];
    kv_proto_write_u32(hdr, (uint32_t)len);
    cr_assert_eq(raw_send(fd, hdr, 4), 0);
    cr_assert_eq(raw_send(fd, body, len), 0);
}

/* Expects [expect_id, expect_status, ...] and then, if close_expected,
 * the connection to end; otherwise a PING on it still works. */
static void expect(int fd, uint64_t expect_id, int expect_status, int close_expected, const char *what)
{
    uint64_t id = 12345;
    int st = raw_recv_status(fd, KV_PROTO_PING, &id);
    cr_assert_eq(st, expect_status, "%s: status %d, expected %d", what, st, expect_status);
    cr_assert_eq(id, expect_id, "%s: id %llu", what, (unsigned long long)id);
    if (close_expected) {
        cr_assert(raw_wait_closed(fd, 5000), "%s: connection should close", what);
        return;
    }
    static const uint8_t ping[] = {0x92, 0x01, 0x2a}; /* [1, 42] */
    send_body(fd, ping, sizeof ping);
    cr_assert_eq(raw_recv_status(fd, KV_PROTO_PING, &id), KV_OK, "%s: still usable", what);
    cr_assert_eq(id, 42);
}

static int conn(void)
{
    int fd = raw_connect(g_kvd.port, 5000);
    cr_assert_geq(fd, 0);
    return fd;
}

static void known_state(uint64_t *rev, uint64_t *keys)
{
    *rev = metric_u(NULL, "revision");
    *keys = metric_u(NULL, "keys");
}

Test(hostile, every_kind_of_bad_input)
{
    kvd_start("--max-frame-size", "200000", "--max-value-size", "1024", NULL);
    kv_client *c = test_client(NULL);
    cr_assert_eq(kv_client_set(c, "keep", 4, "safe", 4, NULL), KV_OK);
    cr_assert_eq(kv_client_set(c, "k", 1, "orig", 4, NULL), KV_OK);
    kv_client_close(c);
    uint64_t rev0, keys0;
    known_state(&rev0, &keys0);
    int fd;

    /* length prefix 0 */
    fd = conn();
    cr_assert_eq(raw_send(fd, "\0\0\0\0", 4), 0);
    expect(fd, 0, KV_PROTOCOL, 1, "zero length");
    close(fd);

    /* length prefix far over the limit, and exactly one over it */
    fd = conn();
    cr_assert_eq(raw_send(fd, "\xff\xff\xff\xff", 4), 0);
    expect(fd, 0, KV_FRAME_TOO_LARGE, 1, "4 GiB length");
    close(fd);
    fd = conn();
    uint8_t hdr[4];
    kv_proto_write_u32(hdr, 200001);
    cr_assert_eq(raw_send(fd, hdr, 4), 0);
    expect(fd, 0, KV_FRAME_TOO_LARGE, 1, "limit + 1");
    close(fd);

    /* truncated frame, then the client stops sending */
    fd = conn();
    static const uint8_t trunc[] = {0, 0, 0, 100, 0x94, 0x05, 0x01, 0xc4, 0x01};
    cr_assert_eq(raw_send(fd, trunc, sizeof trunc), 0);
    shutdown(fd, SHUT_WR);
    uint64_t id;
    int st = raw_recv_status(fd, KV_PROTO_PING, &id);
    cr_assert(st == KV_PROTOCOL || st == -1, "truncated frame: %d", st);
    cr_assert(raw_wait_closed(fd, 5000));
    close(fd);
    /* truncated frame and an abrupt close */
    fd = conn();
    cr_assert_eq(raw_send(fd, trunc, sizeof trunc), 0);
    close(fd);

    /* not an array / no readable id: connection-level error, close */
    static const uint8_t a_map[] = {0x81, 0x01, 0x02};          /* {1: 2} */
    static const uint8_t neg_id[] = {0x93, 0x03, 0xff, 0xa1, 'k'}; /* [3, -1, "k"] */
    static const uint8_t str_id[] = {0x92, 0x01, 0xa1, 'x'};    /* [1, "x"] */
    static const uint8_t short_arr[] = {0x91, 0x01};            /* [1] */
    static const uint8_t not_mp[] = {0xc1, 0xc1, 0xc1};         /* never-used byte */
    static const uint8_t float_id[] = {0x92, 0x01, 0xcb, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f};
    const struct {
        const uint8_t *b;
        size_t n;
        const char *what;
    } fatal[] = {{a_map, sizeof a_map, "map body"},       {neg_id, sizeof neg_id, "negative id"},
                 {str_id, sizeof str_id, "string id"},    {short_arr, sizeof short_arr, "1 element"},
                 {not_mp, sizeof not_mp, "not msgpack"},  {float_id, sizeof float_id, "float id"}};
    for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++) {
        fd = conn();
        send_body(fd, fatal[i].b, fatal[i].n);
        expect(fd, 0, KV_PROTOCOL, 1, fatal[i].what);
        close(fd);
    }

    /* id readable: per-request errors, the connection stays open */
    static const uint8_t get_int_key[] = {0x93, 0x03, 0x07, 0x05};     /* [3, 7, 5] */
    static const uint8_t set_missing[] = {0x93, 0x05, 0x07, 0xa1, 'k'}; /* [5, 7, "k"] */
    static const uint8_t set_map_val[] = {0x94, 0x05, 0x07, 0xa1, 'k', 0x80};
    static const uint8_t trailing[] = {0x92, 0x01, 0x07, 0xc0};        /* [1, 7] nil */
    static const uint8_t op_str[] = {0x92, 0xa1, 'x', 0x07};           /* ["x", 7] */
    static const uint8_t mset_odd[] = {0x93, 0x06, 0x07, 0x93, 0xa1, 'k', 0xa1, 'v', 0xa1, 'j'};
    static const uint8_t huge_count[] = {0x93, 0x04, 0x07, 0xdd, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t empty_key[] = {0x94, 0x05, 0x07, 0xc4, 0x00, 0xc4, 0x01, 'v'};
    static const uint8_t bad_cmp[] = {0x95, 0x08, 0x07, 0x91, 0x92, 0x09, 0xa1, 'k', 0x90, 0x90};
    static const uint8_t nested[] = {0x93, 0x04, 0x07, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0xa1, 'k'};
    /* an op nested 6 levels deep (deeper than any valid value), then id 7 */
    static const uint8_t deep_op[] = {0x92, 0x91, 0x91, 0x91, 0x91, 0x91, 0x90, 0x07};
    const struct {
        const uint8_t *b;
        size_t n;
        int status;
        const char *what;
    } soft[] = {
        {get_int_key, sizeof get_int_key, KV_PROTOCOL, "int key"},
        {set_missing, sizeof set_missing, KV_PROTOCOL, "missing value"},
        {set_map_val, sizeof set_map_val, KV_PROTOCOL, "map value"},
        {trailing, sizeof trailing, KV_PROTOCOL, "trailing bytes"},
        {op_str, sizeof op_str, KV_PROTOCOL, "string op"},
        {mset_odd, sizeof mset_odd, KV_PROTOCOL, "odd MSET"},
        {huge_count, sizeof huge_count, KV_PROTOCOL, "count > bytes"},
        {empty_key, sizeof empty_key, KV_KEY_EMPTY, "empty key"},
        {bad_cmp, sizeof bad_cmp, KV_INVALID_ARGUMENT, "compare kind 9"},
        {nested, sizeof nested, KV_PROTOCOL, "deep nesting"},
        {deep_op, sizeof deep_op, KV_PROTOCOL, "op nested 6 deep: [id, 30], kept"},
    };
    fd = conn();
    for (size_t i = 0; i < sizeof soft / sizeof soft[0]; i++) {
        send_body(fd, soft[i].b, soft[i].n);
        expect(fd, 7, soft[i].status, 0, soft[i].what);
    }
    /* a fatal error after good requests in the same write: the good ones
     * are answered first, then the error, then the close */
    {
        int fd2 = conn();
        kv_proto_buf b = {0};
        kv_proto_request p5 = {.op = KV_PROTO_PING, .id = 5};
        kv_proto_request g6 = {.op = KV_PROTO_GET, .id = 6, .key = {"keep", 4}};
        kv_proto_request p7 = {.op = KV_PROTO_PING, .id = 7};
        enc(&b, &p5);
        enc(&b, &g6);
        cr_assert_eq(kv_proto_buf_reserve(&b, 4), KV_OK);
        memset(b.data + b.len, 0, 4); /* zero length prefix */
        b.len += 4;
        enc(&b, &p7);
        cr_assert_eq(raw_send(fd2, b.data, b.len), 0);
        kv_proto_buf_free(&b);
        uint64_t rid;
        cr_assert_eq(raw_recv_status(fd2, KV_PROTO_PING, &rid), KV_OK);
        cr_assert_eq(rid, 5);
        cr_assert_eq(raw_recv_status(fd2, KV_PROTO_GET, &rid), KV_OK);
        cr_assert_eq(rid, 6);
        cr_assert_eq(raw_recv_status(fd2, KV_PROTO_PING, &rid), KV_PROTOCOL);
        cr_assert_eq(rid, 0);
        uint8_t *extra = NULL;
        cr_assert_eq(raw_recv_frame(fd2, &extra), 0, "EOF, nothing after the fatal error");
        close(fd2);
    }

    /* unknown op */
    static const uint8_t unknown[] = {0x92, 0x63, 0x07}; /* [99, 7] */
    send_body(fd, unknown, sizeof unknown);
    expect(fd, 7, KV_UNSUPPORTED, 0, "unknown op");

    /* oversized key (> 64 KiB) and value (> --max-value-size 1024) */
    size_t klen = 70000;
    uint8_t *big = malloc(16 + klen);
    size_t n = 0;
    big[n++] = 0x94, big[n++] = 0x05, big[n++] = 0x07;
    big[n++] = 0xc6; /* bin 32 */
    kv_proto_write_u32(big + n, (uint32_t)klen);
    n += 4;
    memset(big + n, 'K', klen);
    n += klen;
    big[n++] = 0xc4, big[n++] = 0x01, big[n++] = 'v';
    send_body(fd, big, n);
    expect(fd, 7, KV_KEY_TOO_LARGE, 0, "key too large");
    n = 0;
    big[n++] = 0x94, big[n++] = 0x05, big[n++] = 0x07;
    big[n++] = 0xa1, big[n++] = 'k';
    big[n++] = 0xc5; /* bin 16 */
    big[n++] = 0x08, big[n++] = 0x00; /* 2048 bytes */
    memset(big + n, 'V', 2048);
    n += 2048;
    send_body(fd, big, n);
    expect(fd, 7, KV_VALUE_TOO_LARGE, 0, "value too large");
    free(big);
    close(fd);

    /* random garbage, deterministic */
    srand(12345);
    for (int i = 0; i < 60; i++) {
        fd = conn();
        uint8_t junk[512];
        size_t len = 1 + (size_t)(rand() % (int)sizeof junk);
        for (size_t j = 0; j < len; j++)
            junk[j] = (uint8_t)rand();
        if (i % 2 == 0) {
            send_body(fd, junk, len); /* framed garbage */
        } else {
            cr_assert_eq(raw_send(fd, junk, len), 0); /* unframed */
        }
        if (i % 3 == 0)
            shutdown(fd, SHUT_WR);
        /* read whatever comes, briefly; never required */
        raw_wait_closed(fd, i % 3 == 0 ? 2000 : 50);
        close(fd);
    }

    /* kvd is alive, serves others, and nothing changed */
    cr_assert(kvd_alive());
    c = test_client(NULL);
    kv_value v;
    cr_assert_eq(kv_client_get(c, "keep", 4, &v), KV_OK);
    cr_assert_eq(memcmp(v.data, "safe", 4), 0);
    kv_client_value_free(&v);
    cr_assert_eq(kv_client_get(c, "k", 1, &v), KV_OK);
    cr_assert_eq(memcmp(v.data, "orig", 4), 0);
    kv_client_value_free(&v);
    kv_client_close(c);
    uint64_t rev1, keys1;
    known_state(&rev1, &keys1);
    cr_assert_eq(rev1, rev0, "store revision unchanged");
    cr_assert_eq(keys1, keys0);
    cr_assert_gt(metric_u(NULL, "protocol_errors"), 10);
    kvd_stop();
}

/* Before AUTH, a request other than HELLO, PING and AUTH whose id is
 * readable gets 32 AUTH_REQUIRED first, however malformed (an unknown op,
 * an op of the wrong type or nested too deep, bad arguments); HELLO, PING
 * and AUTH are validated as usual. The connection stays open. */
Test(hostile, auth_required_comes_before_validation)
{
    kvd_start("--password", "pw", NULL);
    int fd = conn();
    static const uint8_t get_int_key[] = {0x93, 0x03, 0x05, 0x7b};     /* [3, 5, 123] */
    static const uint8_t unknown[] = {0x92, 0x63, 0x06};               /* [99, 6] */
    static const uint8_t op_str[] = {0x92, 0xa1, 'x', 0x08};           /* ["x", 8] */
    static const uint8_t set_missing[] = {0x93, 0x05, 0x09, 0xa1, 'k'}; /* [5, 9, "k"] */
    static const uint8_t deep_op[] = {0x92, 0x91, 0x91, 0x91, 0x91, 0x91, 0x90, 0x0c};
    static const uint8_t ping_int[] = {0x93, 0x01, 0x0a, 0x05};        /* [1, 10, 5] */
    static const uint8_t auth_none[] = {0x92, 0x02, 0x0b};             /* [2, 11] */
    const struct {
        const uint8_t *b;
        size_t n;
        uint64_t id;
        int status;
        const char *what;
    } cases[] = {
        {get_int_key, sizeof get_int_key, 5, KV_AUTH_REQUIRED, "GET with an int key"},
        {unknown, sizeof unknown, 6, KV_AUTH_REQUIRED, "unknown op"},
        {op_str, sizeof op_str, 8, KV_AUTH_REQUIRED, "string op"},
        {set_missing, sizeof set_missing, 9, KV_AUTH_REQUIRED, "SET without a value"},
        {deep_op, sizeof deep_op, 12, KV_AUTH_REQUIRED, "op nested 6 deep"},
        {ping_int, sizeof ping_int, 10, KV_PROTOCOL, "PING is validated"},
        {auth_none, sizeof auth_none, 11, KV_PROTOCOL, "AUTH is validated"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        send_body(fd, cases[i].b, cases[i].n);
        expect(fd, cases[i].id, cases[i].status, 0, cases[i].what);
    }
    kv_proto_buf b = {0};
    kv_proto_request a = {.op = KV_PROTO_AUTH, .id = 13, .secret = {"pw", 2}};
    enc(&b, &a);
    cr_assert_eq(raw_send(fd, b.data, b.len), 0);
    kv_proto_buf_free(&b);
    uint64_t id;
    cr_assert_eq(raw_recv_status(fd, KV_PROTO_AUTH, &id), KV_OK);
    /* authenticated: validation errors as usual */
    send_body(fd, get_int_key, sizeof get_int_key);
    expect(fd, 5, KV_PROTOCOL, 0, "GET with an int key after AUTH");
    close(fd);
    kvd_stop();
}

static void text_answer(const char *request, char *out, size_t cap)
{
    int fd = conn();
    cr_assert_eq(raw_send(fd, request, strlen(request)), 0);
    raw_read_all(fd, out, cap);
    close(fd);
}

/* Runs a shell command, returns its stdout (NUL-terminated). */
static void run_tool(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    pclose(p);
}

/* The first bytes choose the protocol: kvd's frames, Redis (RESP or
 * inline) and HTTP are all served on the one port. */
Test(hostile, every_protocol_is_served_on_one_port)
{
    kvd_start(NULL);
    char buf[4096];

    static const char *const http[] = {"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                                       "POST /k HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
                                       "OPTIONS * HTTP/1.1\r\nConnection: close\r\n\r\n"};
    for (size_t i = 0; i < sizeof http / sizeof http[0]; i++) {
        int fd = conn();
        cr_assert_eq(raw_send(fd, http[i], strlen(http[i])), 0);
        http_resp r;
        cr_assert_eq(http_recv(fd, &r, 0), 404, "%s -> %s", http[i], r.head);
        cr_assert_not_null(strstr((char *)r.body, "\"status\":\"UNSUPPORTED\""), "%s", r.body);
        http_resp_free(&r);
        close(fd);
    }

    static const char *const redis[][2] = {
        {"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nQUIT\r\n", "+PONG\r\n+OK\r\n"},
        {"PING\r\nQUIT\r\n", "+PONG\r\n+OK\r\n"},
        {"SET a b\r\nGET a\r\nquit\r\n", "+OK\r\n$1\r\nb\r\n+OK\r\n"},
        {"ping\nquit\n", "+PONG\r\n+OK\r\n"}};
    for (size_t i = 0; i < sizeof redis / sizeof redis[0]; i++) {
        text_answer(redis[i][0], buf, sizeof buf);
        cr_assert_str_eq(buf, redis[i][1], "%s", redis[i][0]);
    }

    /* Only a connection's first bytes: after a frame, the same text is a
     * frame header like any other (FRAME_TOO_LARGE, binary). */
    int fd = conn();
    static const uint8_t ping[] = {0x92, 0x01, 0x07};
    send_body(fd, ping, sizeof ping);
    uint64_t id = 0;
    cr_assert_eq(raw_recv_status(fd, KV_PROTO_PING, &id), KV_OK);
    cr_assert_eq(raw_send(fd, "GET / HTTP/1.0\r\n\r\n", 18), 0);
    expect(fd, 0, KV_FRAME_TOO_LARGE, 1, "GET after a frame");
    close(fd);

    /* Binary garbage with a huge length is still answered in frames. */
    fd = conn();
    static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 0x00};
    cr_assert_eq(raw_send(fd, huge, sizeof huge), 0);
    expect(fd, 0, KV_FRAME_TOO_LARGE, 1, "0xffffffff length");
    close(fd);

    /* The real tools, when installed. */
    char cmd[256];
    if (system("command -v curl >/dev/null 2>&1") == 0) {
        snprintf(cmd, sizeof cmd, "curl -s http://127.0.0.1:%d/healthz 2>/dev/null", g_kvd.port);
        run_tool(cmd, buf, sizeof buf);
        cr_assert_str_eq(buf, "{\"health\":\"true\"}\n");
    }
    if (system("command -v redis-cli >/dev/null 2>&1") == 0) {
        snprintf(cmd, sizeof cmd, "redis-cli -h 127.0.0.1 -p %d PING 2>&1", g_kvd.port);
        run_tool(cmd, buf, sizeof buf);
        cr_assert_str_eq(buf, "PONG\n");
    }

    /* Still serving. */
    kv_client *cl = test_client(NULL);
    cr_assert_eq(kv_client_ping(cl), KV_OK);
    kv_client_close(cl);
    kvd_stop();
}

/* ---- HTTP ------------------------------------------------------------------ */

/* Sends request on a new connection and expects HTTP code with JSON
 * error status; then, if close_expected, the connection to end, else a
 * GET /healthz on it to be answered. */
static void http_expect(const void *request, size_t len, int code, const char *status,
                        int close_expected, const char *what)
{
    int fd = conn();
    /* a refusal may come (and the connection close) before all is sent */
    send(fd, request, len, MSG_NOSIGNAL);
    http_resp r;
    cr_assert_eq(http_recv(fd, &r, 0), code, "%s: %s", what, r.head);
    char want[64];
    snprintf(want, sizeof want, "{\"error\":{\"status\":\"%s\",", status);
    cr_assert(r.body && strncmp((char *)r.body, want, strlen(want)) == 0, "%s: %s", what,
              r.body ? (char *)r.body : "");
    char connhdr[32] = "";
    http_header(&r, "Connection", connhdr, sizeof connhdr);
    http_resp_free(&r);
    if (close_expected) {
        cr_assert_str_eq(connhdr, "close", "%s", what);
        cr_assert(raw_wait_closed(fd, 5000), "%s: connection should close", what);
    } else {
        const char *ping = "GET /healthz HTTP/1.1\r\n\r\n";
        cr_assert_eq(raw_send(fd, ping, strlen(ping)), 0, "%s", what);
        cr_assert_eq(http_recv(fd, &r, 0), 200, "%s: still usable", what);
        http_resp_free(&r);
    }
    close(fd);
}

static void http_expect_s(const char *request, int code, const char *status, int close_expected)
{
    http_expect(request, strlen(request), code, status, close_expected, request);
}

/* A request of len bytes: head, then filler up to len, then tail. */
static char *padded(const char *head, size_t len, char fill, const char *tail)
{
    char *b = malloc(len + 1);
    size_t h = strlen(head), t = strlen(tail);
    memcpy(b, head, h);
    memset(b + h, fill, len - h - t);
    memcpy(b + len - t, tail, t);
    b[len] = 0;
    return b;
}

Test(hostile, http_bad_requests_get_json_errors)
{
    kvd_start("--max-frame-size", "200000", NULL);
    kv_client *c = test_client(NULL);
    cr_assert_eq(kv_client_set(c, "keep", 4, "safe", 4, NULL), KV_OK);
    kv_client_close(c);
    uint64_t rev0, keys0;
    known_state(&rev0, &keys0);

    /* the stream cannot be trusted: answered, then closed */
    http_expect_s("GET /healthz HTTP/1.1\r\nHost x\r\n\r\n", 400, "PROTOCOL", 1);
    http_expect_s("PUT /v1/keys/k HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400, "PROTOCOL", 1);
    http_expect_s("PUT /v1/keys/k HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc",
                  400, "PROTOCOL", 1);
    http_expect_s("PUT /v1/keys/k HTTP/1.1\r\nContent-Length: 3\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                  400, "PROTOCOL", 1);
    http_expect_s("PUT /v1/keys/k HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400,
                  "PROTOCOL", 1);
    http_expect_s("GET /v1/keys/\x01 HTTP/1.1\r\n\r\n", 400, "PROTOCOL", 1);
    http_expect_s("GET /healthz HTTP/1.1\r\nAuthorization: Bearer a\r\n"
                  "Authorization: Bearer b\r\n\r\n", 400, "INVALID_ARGUMENT", 1);
    http_expect_s("PUT /v1/keys/k HTTP/1.1\r\nExpect: 200-ok\r\nContent-Length: 3\r\n\r\nabc",
                  417, "UNSUPPORTED", 1);
    /* over the limits: refused from the head, before the body is read */
    http_expect_s("PUT /v1/keys/k HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", 413,
                  "FRAME_TOO_LARGE", 1);
    http_expect_s("PUT /v1/keys/k HTTP/1.1\r\nContent-Length: 200001\r\n\r\n", 413,
                  "FRAME_TOO_LARGE", 1);
    char *big = padded("GET /healthz HTTP/1.1\r\nX-Pad: ", 250000, 'a', "\r\n\r\n");
    http_expect(big, strlen(big), 431, "FRAME_TOO_LARGE", 1, "a 250 KB header");
    free(big);
    big = padded("GET /v1/keys/", 250000, 'k', " HTTP/1.1\r\n\r\n");
    http_expect(big, strlen(big), 431, "FRAME_TOO_LARGE", 1, "a 250 KB target");
    free(big);
    /* a chunked body over the limit */
    {
        size_t chunk = 90000, n = 0;
        char *b = malloc(4 * chunk + 512);
        n += (size_t)sprintf(b, "PUT /v1/keys/k HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        for (int i = 0; i < 3; i++) {
            n += (size_t)sprintf(b + n, "%zx\r\n", chunk);
            memset(b + n, 'x', chunk);
            n += chunk;
            n += (size_t)sprintf(b + n, "\r\n");
        }
        n += (size_t)sprintf(b + n, "0\r\n\r\n");
        http_expect(b, n, 413, "FRAME_TOO_LARGE", 1, "chunked body over the limit");
        free(b);
    }
    /* a good request, then garbage: the first is answered */
    {
        int fd = conn();
        const char *g = "GET /healthz HTTP/1.1\r\n\r\n\x01\x02\x03\r\n\r\n";
        cr_assert_eq(raw_send(fd, g, strlen(g)), 0);
        http_resp r;
        cr_assert_eq(http_recv(fd, &r, 0), 200);
        http_resp_free(&r);
        cr_assert_eq(http_recv(fd, &r, 0), 400);
        http_resp_free(&r);
        cr_assert(raw_wait_closed(fd, 5000));
        close(fd);
    }

    /* one request is wrong: answered, the connection kept */
    http_expect_s("PATCH /v1/keys/k HTTP/1.1\r\n\r\n", 405, "UNSUPPORTED", 0);
    http_expect_s("GET /nowhere HTTP/1.1\r\n\r\n", 404, "UNSUPPORTED", 0);
    http_expect_s("GET /v1/keys/%zz HTTP/1.1\r\n\r\n", 400, "INVALID_ARGUMENT", 0);
    http_expect_s("GET /v1/keys?cursor=-1 HTTP/1.1\r\n\r\n", 400, "INVALID_ARGUMENT", 0);
    http_expect_s("PUT /v1/keys/k HTTP/1.1\r\nIf-Match: 1, 2\r\nContent-Length: 1\r\n\r\nx",
                  400, "INVALID_ARGUMENT", 0);
    http_expect_s("POST /v1/txn HTTP/1.1\r\nContent-Length: 9\r\n\r\n{\"then\":[", 400,
                  "INVALID_ARGUMENT", 0);
    http_expect_s("POST /v1/mget HTTP/1.1\r\nContent-Length: 15\r\n\r\n{\"keys\":[\"%%\"]}",
                  400, "INVALID_ARGUMENT", 0);
    http_expect_s("POST /v1/mset HTTP/1.1\r\nContent-Length: 4\r\n\r\nnull", 400,
                  "INVALID_ARGUMENT", 0);
    /* deep nesting, and many small values: refused without building them */
    {
        char *deep = padded("", 5000, '[', "");
        char head[128];
        int h = snprintf(head, sizeof head, "POST /v1/txn HTTP/1.1\r\nContent-Length: %zu\r\n\r\n",
                         strlen(deep));
        char *req = malloc((size_t)h + strlen(deep) + 1);
        memcpy(req, head, (size_t)h);
        strcpy(req + h, deep);
        http_expect(req, strlen(req), 400, "INVALID_ARGUMENT", 0, "deep JSON");
        free(req);
        free(deep);
        size_t n = 190000;
        char *many = malloc(n + 128);
        size_t off = (size_t)sprintf(many, "POST /v1/mget HTTP/1.1\r\nContent-Length: %zu\r\n\r\n", n);
        many[off] = '[';
        for (size_t i = 1; i < n - 1; i += 2) {
            many[off + i] = '0';
            many[off + i + 1] = ',';
        }
        many[off + n - 2] = '0';
        many[off + n - 1] = ']';
        http_expect(many, off + n, 413, "FRAME_TOO_LARGE", 0, "95000 JSON values");
        free(many);
    }

    /* random damage to good requests, each half-closed after sending */
    {
        static const char *const good[] = {
            "GET /v1/keys/keep HTTP/1.1\r\nHost: x\r\n\r\n",
            "POST /v1/mget HTTP/1.1\r\nContent-Length: 17\r\n\r\n{\"keys\":[\"a2VlcA==\"]}",
            "GET /v1/keys?prefix=k&limit=5 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        };
        unsigned seed = 12345;
        for (int i = 0; i < 150; i++) {
            const char *g = good[i % 3];
            char req[256];
            size_t n = strlen(g);
            memcpy(req, g, n);
            for (int k = 0; k < 1 + i % 4; k++) {
                seed = seed * 1103515245u + 12345u;
                size_t at = (seed >> 8) % n;
                seed = seed * 1103515245u + 12345u;
                req[at] = (char)(seed >> 16);
            }
            int fd = conn();
            send(fd, req, n, MSG_NOSIGNAL);
            shutdown(fd, SHUT_WR);
            char sink[4096];
            int closed = 0;
            for (int t = 0; t < 100 && !closed; t++) {
                ssize_t got = recv(fd, sink, sizeof sink, 0);
                closed = got <= 0;
            }
            cr_assert(closed, "damaged request %d left the connection open", i);
            close(fd);
        }
    }

    /* nothing changed; still serving */
    uint64_t rev1, keys1;
    known_state(&rev1, &keys1);
    cr_assert_eq(rev1, rev0);
    cr_assert_eq(keys1, keys0);
    http_expect_s("GET /v1/keys/nope HTTP/1.1\r\n\r\n", 404, "NOT_FOUND", 0);
    kvd_stop();
}

/* Lines of the kvd log containing needle. */
static int log_count(const char *needle)
{
    FILE *f = fopen(g_kvd.log, "r");
    if (!f)
        return 0;
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle))
            n++;
    fclose(f);
    return n;
}

Test(hostile, protocol_errors_warn_once_naming_the_peer)
{
    kvd_start(NULL);
    char first_peer[64] = "";
    for (int i = 0; i < 4; i++) {
        int fd = conn();
        if (i == 0) {
            struct sockaddr_in a;
            socklen_t alen = sizeof a;
            cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
            snprintf(first_peer, sizeof first_peer, "127.0.0.1:%u", ntohs(a.sin_port));
        }
        static const uint8_t zero[] = {0, 0, 0, 0}; /* length 0 */
        cr_assert_eq(raw_send(fd, zero, sizeof zero), 0);
        expect(fd, 0, KV_PROTOCOL, 1, "length 0");
        close(fd);
    }
    char needle[128];
    snprintf(needle, sizeof needle, "WARN  %s: protocol error: frame length 0", first_peer);
    int found = 0;
    for (int i = 0; i < 1000 && !(found = log_count(needle)); i++)
        usleep(5000); /* bounded: 5 s */
    cr_assert_eq(found, 1, "one WARN naming %s", first_peer);
    cr_assert_eq(log_count("protocol error:"), 1, "the other three are only counted");
    kvd_stop();
}
