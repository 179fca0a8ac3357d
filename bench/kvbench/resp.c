/*
 * resp.c - RESP2 commands and replies for kvbench (see resp.h).
 *
 * The parser is a pure function of the bytes received so far: a reply
 * that is not complete yet costs a re-parse of its header when more
 * bytes come, which is cheap because every header is one short line;
 * the payload of a bulk string is never scanned, only its length
 * checked. Lines are bounded (KVB_RESP_MAX_LINE, or a few bytes for
 * lengths), so a peer that is not a Redis server is recognised quickly
 * instead of filling memory while kvbench waits for a line end.
 */
#include "resp.h"

#include <string.h>

/* "$" or ":" and a 64-bit decimal with sign, then \r\n. */
#define NUM_LINE_MAX 24

/* Where the line that starts at buf ends: on KVB_RESP_REPLY, *cr is the
 * index of its '\r' (the '\n' follows). Lines longer than max bytes
 * (\r\n included) are refused. */
static kvb_resp_result line_end(const uint8_t *buf, size_t len, size_t max, size_t *cr,
                                const char **why)
{
    size_t look = len < max ? len : max;
    const uint8_t *p = memchr(buf, '\r', look);
    if (!p) {
        if (len >= max) {
            *why = "reply line too long (no \\r\\n)";
            return KVB_RESP_BAD;
        }
        return KVB_RESP_NEED_MORE;
    }
    size_t i = (size_t)(p - buf);
    if (i + 1 >= len)
        return KVB_RESP_NEED_MORE;
    if (buf[i + 1] != '\n') {
        *why = "\\r not followed by \\n";
        return KVB_RESP_BAD;
    }
    *cr = i;
    return KVB_RESP_REPLY;
}

/* A signed decimal of 1 to 19 digits that fits an int64_t. */
static int parse_i64(const uint8_t *p, size_t n, int64_t *out)
{
    int neg = n > 0 && p[0] == '-';
    size_t i = (size_t)neg;
    if (n == i || n - i > 19)
        return -1;
    uint64_t v = 0;
    for (; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX + (uint64_t)neg)
        return -1;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

/* Simple string, error or integer: one line. */
static kvb_resp_result parse_line(const uint8_t *buf, size_t len, kvb_resp_reply *out,
                                  size_t *used, const char **why)
{
    int is_int = buf[0] == ':';
    size_t cr;
    kvb_resp_result r = line_end(buf, len, is_int ? NUM_LINE_MAX : KVB_RESP_MAX_LINE,
                                 &cr, why);
    if (r != KVB_RESP_REPLY)
        return r;
    kvb_resp_reply rep = {.str = (const char *)buf + 1, .len = cr - 1};
    if (is_int) {
        if (parse_i64(buf + 1, cr - 1, &rep.integer) != 0) {
            *why = "bad integer reply";
            return KVB_RESP_BAD;
        }
        rep.type = KVB_RESP_INTEGER;
    } else {
        rep.type = buf[0] == '+' ? KVB_RESP_SIMPLE : KVB_RESP_ERROR;
    }
    *out = rep;
    *used = cr + 2;
    return KVB_RESP_REPLY;
}

static kvb_resp_result parse_bulk(const uint8_t *buf, size_t len, kvb_resp_reply *out,
                                  size_t *used, const char **why)
{
    size_t cr;
    kvb_resp_result r = line_end(buf, len, NUM_LINE_MAX, &cr, why);
    if (r != KVB_RESP_REPLY)
        return r;
    int64_t n;
    if (parse_i64(buf + 1, cr - 1, &n) != 0 || n < -1 || n > KVB_RESP_MAX_BULK) {
        *why = "bad bulk string length";
        return KVB_RESP_BAD;
    }
    size_t hdr = cr + 2;
    if (n == -1) {
        *out = (kvb_resp_reply){.type = KVB_RESP_NULL};
        *used = hdr;
        return KVB_RESP_REPLY;
    }
    size_t body = (size_t)n;
    if (len - hdr < body + 2)
        return KVB_RESP_NEED_MORE;
    if (buf[hdr + body] != '\r' || buf[hdr + body + 1] != '\n') {
        *why = "bulk string not followed by \\r\\n";
        return KVB_RESP_BAD;
    }
    *out = (kvb_resp_reply){.type = KVB_RESP_BULK, .str = (const char *)buf + hdr,
                            .len = body};
    *used = hdr + body + 2;
    return KVB_RESP_REPLY;
}

kvb_resp_result kvb_resp_parse(const uint8_t *buf, size_t len, kvb_resp_reply *out,
                               size_t *used, const char **why)
{
    if (len == 0)
        return KVB_RESP_NEED_MORE;
    switch (buf[0]) {
    case '+':
    case '-':
    case ':':
        return parse_line(buf, len, out, used, why);
    case '$':
        return parse_bulk(buf, len, out, used, why);
    case '*':
        *why = "array reply (kvbench sends no command that gets one)";
        return KVB_RESP_BAD;
    default:
        *why = "not a RESP2 reply (is the server Redis?)";
        return KVB_RESP_BAD;
    }
}

/* ------------------------------------------------------------------------
 * Commands
 * ---------------------------------------------------------------------- */

/* Decimal digits of v. */
static size_t ndigits(size_t v)
{
    size_t n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

static uint8_t *put_num(uint8_t *p, char type, size_t v)
{
    size_t n = ndigits(v);
    *p++ = (uint8_t)type;
    for (size_t i = n; i > 0; i--) {
        p[i - 1] = (uint8_t)('0' + v % 10);
        v /= 10;
    }
    p += n;
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

/* Appends an array of argc bulk strings: one reservation, one pass. */
static int encode_command(kv_proto_buf *b, size_t argc, const kv_key *argv)
{
    size_t need = 1 + ndigits(argc) + 2;
    for (size_t i = 0; i < argc; i++)
        need += 1 + ndigits(argv[i].len) + 2 + argv[i].len + 2;
    int rc = kv_proto_buf_reserve(b, need);
    if (rc != KV_OK)
        return rc;
    uint8_t *p = put_num(b->data + b->len, '*', argc);
    for (size_t i = 0; i < argc; i++) {
        p = put_num(p, '$', argv[i].len);
        if (argv[i].len > 0)
            memcpy(p, argv[i].data, argv[i].len);
        p += argv[i].len;
        *p++ = '\r';
        *p++ = '\n';
    }
    b->len += need;
    return KV_OK;
}

int kvb_resp_request_encode(kv_proto_buf *b, const kv_proto_request *req)
{
    switch (req->op) {
    case KV_PROTO_GET: {
        kv_key argv[] = {{"GET", 3}, req->key};
        return encode_command(b, 2, argv);
    }
    case KV_PROTO_SET: {
        kv_key argv[] = {{"SET", 3}, req->key, req->value};
        return encode_command(b, 3, argv);
    }
    case KV_PROTO_AUTH: {
        kv_key argv[] = {{"AUTH", 4}, req->secret};
        return encode_command(b, 2, argv);
    }
    default:
        return KV_UNSUPPORTED;
    }
}
