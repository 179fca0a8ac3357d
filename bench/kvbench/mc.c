/*
 * mc.c - memcached text-protocol commands and replies for kvbench (see
 * mc.h).
 *
 * As resp.c, the parser is a pure function of the bytes received so far:
 * an incomplete reply costs a re-parse of its first line when more bytes
 * come; a value's bytes are never scanned, only its length and the
 * \r\nEND\r\n after it checked. Lines are bounded (KVB_MC_MAX_LINE), so a
 * peer that is not memcached is recognised quickly.
 */
#include "mc.h"

#include <string.h>

/* Where the line that starts at buf ends: on KVB_MC_REPLY, *cr is the
 * index of its '\r' (the '\n' follows). */
static kvb_mc_result line_end(const uint8_t *buf, size_t len, size_t *cr, const char **why)
{
    size_t look = len < KVB_MC_MAX_LINE ? len : KVB_MC_MAX_LINE;
    const uint8_t *p = memchr(buf, '\r', look);
    if (!p) {
        if (len >= KVB_MC_MAX_LINE) {
            *why = "reply line too long (no \\r\\n)";
            return KVB_MC_BAD;
        }
        return KVB_MC_NEED_MORE;
    }
    size_t i = (size_t)(p - buf);
    if (i + 1 >= len)
        return KVB_MC_NEED_MORE;
    if (buf[i + 1] != '\n') {
        *why = "\\r not followed by \\n";
        return KVB_MC_BAD;
    }
    *cr = i;
    return KVB_MC_REPLY;
}

/* Whether line[0..n) is `word` or starts with `word` and a space. */
static int is_word(const uint8_t *line, size_t n, const char *word, int with_text)
{
    size_t w = strlen(word);
    if (n < w || memcmp(line, word, w) != 0)
        return 0;
    return n == w || (with_text && line[w] == ' ');
}

/* An unsigned decimal of 1 to 19 digits at *p (up to end); advances *p. */
static int parse_u64(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
    const uint8_t *s = *p;
    uint64_t v = 0;
    size_t n = 0;
    while (s < end && *s >= '0' && *s <= '9' && n < 19) {
        v = v * 10 + (uint64_t)(*s - '0');
        s++;
        n++;
    }
    if (n == 0 || (s < end && *s >= '0' && *s <= '9'))
        return -1;
    *p = s;
    *out = v;
    return 0;
}

/* VALUE <key> <flags> <bytes> [<cas>]: the value's length. */
static int parse_value_line(const uint8_t *line, size_t n, uint64_t *bytes)
{
    const uint8_t *p = line + 6, *end = line + n; /* after "VALUE " */
    const uint8_t *key = p;
    while (p < end && *p != ' ')
        p++;
    if (p == key || p == end)
        return -1;
    uint64_t flags, cas;
    p++;
    if (parse_u64(&p, end, &flags) != 0 || flags > UINT32_MAX || p == end || *p++ != ' ')
        return -1;
    if (parse_u64(&p, end, bytes) != 0)
        return -1;
    if (p < end && (*p++ != ' ' || parse_u64(&p, end, &cas) != 0))
        return -1;
    return p == end ? 0 : -1;
}

static kvb_mc_result parse_value(const uint8_t *buf, size_t len, size_t cr, kvb_mc_reply *out,
                                 size_t *used, const char **why)
{
    uint64_t bytes;
    if (parse_value_line(buf, cr, &bytes) != 0 || bytes > (uint64_t)KVB_MC_MAX_VALUE) {
        *why = "bad VALUE line";
        return KVB_MC_BAD;
    }
    static const char tail[] = "\r\nEND\r\n";
    size_t hdr = cr + 2, body = (size_t)bytes, tlen = sizeof tail - 1;
    size_t have = len - hdr;
    if (have < body + tlen) {
        /* Check what of the tail is there, so garbage fails early. */
        if (have > body && memcmp(buf + hdr + body, tail, have - body) != 0) {
            *why = "value not followed by \\r\\nEND\\r\\n (more than one VALUE?)";
            return KVB_MC_BAD;
        }
        return KVB_MC_NEED_MORE;
    }
    if (memcmp(buf + hdr + body, tail, tlen) != 0) {
        *why = "value not followed by \\r\\nEND\\r\\n (more than one VALUE?)";
        return KVB_MC_BAD;
    }
    *out = (kvb_mc_reply){.type = KVB_MC_VALUE, .str = (const char *)buf + hdr, .len = body};
    *used = hdr + body + tlen;
    return KVB_MC_REPLY;
}

kvb_mc_result kvb_mc_parse(const uint8_t *buf, size_t len, kvb_mc_reply *out, size_t *used,
                           const char **why)
{
    if (len == 0)
        return KVB_MC_NEED_MORE;
    size_t cr;
    kvb_mc_result r = line_end(buf, len, &cr, why);
    if (r != KVB_MC_REPLY)
        return r;
    if (cr > 6 && memcmp(buf, "VALUE ", 6) == 0)
        return parse_value(buf, len, cr, out, used, why);
    kvb_mc_reply rep = {.str = (const char *)buf, .len = cr};
    if (is_word(buf, cr, "END", 0)) {
        rep.type = KVB_MC_MISS;
    } else if (is_word(buf, cr, "STORED", 0)) {
        rep.type = KVB_MC_STORED;
    } else if (is_word(buf, cr, "ERROR", 0) || is_word(buf, cr, "CLIENT_ERROR", 1) ||
               is_word(buf, cr, "SERVER_ERROR", 1) || is_word(buf, cr, "NOT_STORED", 0) ||
               is_word(buf, cr, "EXISTS", 0) || is_word(buf, cr, "NOT_FOUND", 0)) {
        rep.type = KVB_MC_ERROR;
    } else {
        *why = "not a memcached text reply (is the server memcached?)";
        return KVB_MC_BAD;
    }
    *out = rep;
    *used = cr + 2;
    return KVB_MC_REPLY;
}

/* ------------------------------------------------------------------------
 * Commands
 * ---------------------------------------------------------------------- */

static int key_ok(kv_key k)
{
    if (k.len == 0 || k.len > KVB_MC_MAX_KEY)
        return 0;
    const unsigned char *p = (const unsigned char *)k.data;
    for (size_t i = 0; i < k.len; i++)
        if (p[i] <= ' ' || p[i] == 0x7f)
            return 0;
    return 1;
}

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

static uint8_t *put(uint8_t *p, const void *s, size_t n)
{
    if (n > 0)
        memcpy(p, s, n);
    return p + n;
}

int kvb_mc_request_encode(kv_proto_buf *b, const kv_proto_request *req)
{
    if (req->op != KV_PROTO_GET && req->op != KV_PROTO_SET)
        return KV_UNSUPPORTED;
    if (!key_ok(req->key))
        return KV_INVALID_ARGUMENT;
    int is_set = req->op == KV_PROTO_SET;
    size_t vlen = is_set ? req->value.len : 0;
    /* get <key>\r\n  or  set <key> 0 0 <n>\r\n<value>\r\n */
    size_t need = is_set ? 4 + req->key.len + 5 + ndigits(vlen) + 2 + vlen + 2
                         : 4 + req->key.len + 2;
    int rc = kv_proto_buf_reserve(b, need);
    if (rc != KV_OK)
        return rc;
    uint8_t *p = b->data + b->len;
    p = put(p, is_set ? "set " : "get ", 4);
    p = put(p, req->key.data, req->key.len);
    if (is_set) {
        p = put(p, " 0 0 ", 5);
        size_t n = ndigits(vlen), v = vlen;
        for (size_t i = n; i > 0; i--) {
            p[i - 1] = (uint8_t)('0' + v % 10);
            v /= 10;
        }
        p = put(p + n, "\r\n", 2);
        p = put(p, req->value.data, vlen);
    }
    put(p, "\r\n", 2);
    b->len += need;
    return KV_OK;
}
