/*
 * fe_resp.c - the front-end for the Redis protocol: RESP2 and RESP3
 * (after HELLO 3) requests as arrays of bulk strings, and inline commands
 * (a line of words, as redis-benchmark's PING_INLINE and telnet send),
 * turned into the command layer's kvd_cmd; replies in RESP.
 *
 * Parsing is resumable: the position, the argument count and the offsets
 * of the arguments found so far are kept between reads (relative to the
 * message's start, which may move in memory), so a request arriving in
 * many reads is scanned once. Every count and length is checked against
 * the request limit (--max-frame-size, lower before AUTH) before anything
 * is allocated; a malformed stream gets "-ERR Protocol error: ..." and
 * the connection closes after it, as Redis does.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cmd.h"
#include "conn.h"
#include "frontend.h"
#include "glob.h"
#include "log.h"
#include "watchers.h"

#define RESP_MAX_ARGS (1024 * 1024)
#define RESP_MAX_INLINE (64 * 1024)
#define RESP_MAX_HEADER 32 /* "*<count>\r\n" / "$<len>\r\n" */

/* Parse state of the message being received (c->fe_state). */
typedef struct resp_state {
    size_t pos;      /* bytes of the message parsed so far         */
    int64_t n;       /* arguments announced (-1: header not read)  */
    int64_t i;       /* arguments found                            */
    size_t bulk;     /* length of the bulk being waited for, or 0  */
    int in_bulk;     /* its header was read                        */
    size_t *off, *len;
    size_t cap;
    int is_inline;
    kv_key *argv;    /* for run: pointers into the message          */
    size_t argv_cap;
} resp_state;

static resp_state *state_of(kvd_conn *c)
{
    if (!c->fe_state) {
        resp_state *s = calloc(1, sizeof *s);
        if (!s)
            return NULL;
        s->n = -1;
        c->fe_state = s;
    }
    return c->fe_state;
}

static void resp_release(kvd_conn *c)
{
    resp_state *s = c->fe_state;
    if (!s)
        return;
    free(s->off);
    free(s->len);
    free(s->argv);
    free(s);
    c->fe_state = NULL;
}

/* After each message; a big one's argument arrays are given back. */
#define KEEP_ARGS 1024
static void state_reset(resp_state *s)
{
    if (s->cap > KEEP_ARGS) {
        free(s->off);
        free(s->len);
        free(s->argv);
        s->off = s->len = NULL;
        s->argv = NULL;
        s->cap = s->argv_cap = 0;
    }
    s->pos = 0;
    s->n = -1;
    s->i = 0;
    s->bulk = 0;
    s->in_bulk = 0;
    s->is_inline = 0;
}

/* ---- replies ------------------------------------------------------------- */

enum { NOTHING = 0, STARTED = 1, PAGE = 2 };

static int put(kvd_reply *r, const void *p, size_t n)
{
    if (r->err)
        return r->err;
    if (kv_proto_buf_reserve(r->out, n) != KV_OK)
        return r->err = KV_NO_MEMORY;
    memcpy(r->out->data + r->out->len, p, n);
    r->out->len += n;
    if (r->started == NOTHING)
        r->started = STARTED;
    return KV_OK;
}

static int putf(kvd_reply *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int putf(kvd_reply *r, const char *fmt, ...)
{
    char buf[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return put(r, buf, (size_t)n);
}

static int r_nil(kvd_reply *r) { return r->resp3 ? put(r, "_\r\n", 3) : put(r, "$-1\r\n", 5); }
static int r_nil_array(kvd_reply *r)
{
    return r->resp3 ? put(r, "_\r\n", 3) : put(r, "*-1\r\n", 5);
}

static int r_error(kvd_reply *r, int status, const char *detail)
{
    if (r->started == NOTHING)
        r->status = status;
    if (status == KV_NOT_FOUND || status == KV_VERSION_MISMATCH)
        return r_nil(r);
    const char *prefix = "ERR ";
    if (status == KV_AUTH_REQUIRED)
        return put(r, "-NOAUTH Authentication required.\r\n", 34);
    if (status == KV_AUTH_FAILED)
        return put(r, "-WRONGPASS invalid username-password pair or user is disabled.\r\n", 64);
    if (status == KV_MEMORY_LIMIT) /* Redis's words, which clients recognize */
        return put(r, "-OOM command not allowed when used memory > 'maxmemory'.\r\n", 58);
    if (status == KV_COMPACTED) /* a code word of its own, as etcd's ErrCompacted */
        prefix = "COMPACTED ";
    else if (status == KV_FUTURE_REVISION)
        prefix = "FUTURE_REVISION ";
    if (!detail)
        detail = kv_strerror(status);
    /* A detail that starts with its own code word (EXECABORT, NOPROTO);
     * only these: "EXEC without MULTI" is an ERR like any other. */
    static const char *const codes[] = {"EXECABORT ", "NOPROTO ", "WRONGPASS ", "NOAUTH ",
                                        "WRONGTYPE "};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (strncmp(detail, codes[i], strlen(codes[i])) == 0)
            prefix = "";
    put(r, "-", 1);
    put(r, prefix, strlen(prefix));
    size_t n = strlen(detail);
    for (size_t i = 0; i < n && !r->err; i++) {
        char ch = detail[i] == '\r' || detail[i] == '\n' ? ' ' : detail[i];
        put(r, &ch, 1);
    }
    return put(r, "\r\n", 2);
}

static int r_ok(kvd_reply *r, const char *word)
{
    put(r, "+", 1);
    put(r, word, strlen(word));
    return put(r, "\r\n", 2);
}

/* "<c><v>\r\n" without printf: replies to GET and SET need one each. */
static int put_header(kvd_reply *r, char c, int neg, uint64_t v)
{
    char buf[24];
    size_t i = sizeof buf;
    buf[--i] = '\n';
    buf[--i] = '\r';
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (neg)
        buf[--i] = '-';
    buf[--i] = c;
    return put(r, buf + i, sizeof buf - i);
}

static int r_integer(kvd_reply *r, int64_t v)
{
    return put_header(r, ':', v < 0, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
}
static int r_uinteger(kvd_reply *r, uint64_t v) { return put_header(r, ':', 0, v); }

static int r_bytes(kvd_reply *r, const void *p, size_t n)
{
    if (r->err)
        return r->err;
    if (kv_proto_buf_reserve(r->out, n + 32) != KV_OK)
        return r->err = KV_NO_MEMORY;
    put_header(r, '$', 0, n);
    put(r, p, n);
    return put(r, "\r\n", 2);
}

static int r_dbl(kvd_reply *r, double v)
{
    char buf[40];
    int n = snprintf(buf, sizeof buf, "%.17g", v);
    if (r->resp3)
        return putf(r, ",%s\r\n", isinf(v) ? (v > 0 ? "inf" : "-inf") : buf);
    return r_bytes(r, buf, (size_t)n);
}

static int r_boolean(kvd_reply *r, int v)
{
    if (r->resp3)
        return put(r, v ? "#t\r\n" : "#f\r\n", 4);
    return put(r, v ? ":1\r\n" : ":0\r\n", 4);
}

static int r_text(kvd_reply *r, const char *s, size_t n) { return r_bytes(r, s, n); }
static int r_word(kvd_reply *r, const char *s) { return r_ok(r, s); }
static int r_array(kvd_reply *r, size_t n) { return put_header(r, '*', 0, n); }
static int r_map(kvd_reply *r, size_t n)
{
    return r->resp3 ? put_header(r, '%', 0, n) : put_header(r, '*', 0, 2 * (uint64_t)n);
}

static int r_versioned(kvd_reply *r, const void *p, size_t n, uint64_t version)
{
    (void)version; /* RESP has no place for it */
    return r_bytes(r, p, n);
}

static int r_written(kvd_reply *r, uint64_t revision)
{
    (void)revision;
    return r_ok(r, "OK");
}

static int r_deleted(kvd_reply *r, uint64_t n, uint64_t revision)
{
    (void)revision;
    return r_uinteger(r, n);
}

/* TTL, PTTL, EXPIRETIME, PEXPIRETIME as Redis answers them: -2 absent,
 * -1 no expiry, else ms or seconds rounded to the nearest. */
static int r_expiry(kvd_reply *r, unsigned form, int found, uint64_t expire_at_ms,
                    uint64_t now_ms)
{
    if (!found)
        return r_integer(r, -2);
    if (expire_at_ms == 0)
        return r_integer(r, -1);
    uint64_t v = (form & KVD_TTL_AT) ? expire_at_ms
                 : expire_at_ms > now_ms ? expire_at_ms - now_ms : 0;
    return r_uinteger(r, (form & KVD_TTL_MS) ? v : (v + 500) / 1000);
}

/* EXPIRE, PERSIST: 1 when changed, else 0. */
static int r_updated(kvd_reply *r, int status, int changed, uint64_t revision)
{
    (void)revision;
    return r_integer(r, status == KV_OK && changed);
}

/* A page: [cursor, [keys...]] (SCAN) or [keys...] (KEYS). The header's
 * room is reserved at begin and written at end, when the count is known;
 * the entries then move back over what the header did not use. */
#define PAGE_RESERVE 64

static int r_page_begin(kvd_reply *r, int keys_only, int with_cursor)
{
    r->keys_only = keys_only;
    r->u.page.with_cursor = with_cursor;
    r->u.page.count = 0;
    r->u.page.head = r->out->len;
    if (kv_proto_buf_reserve(r->out, PAGE_RESERVE) != KV_OK)
        return r->err = KV_NO_MEMORY;
    memset(r->out->data + r->out->len, 0, PAGE_RESERVE);
    r->out->len += PAGE_RESERVE;
    r->started = PAGE;
    return KV_OK;
}

static size_t r_page_size(kvd_reply *r) { return r->out->len - r->u.page.head; }

static size_t r_page_entry_size(kvd_reply *r, size_t klen, size_t vlen, uint64_t version)
{
    (void)version;
    return klen + 16 + (r->keys_only ? 0 : vlen + 16);
}

static int r_page_add(kvd_reply *r, const void *k, size_t klen, const void *v, size_t vlen,
                      uint64_t version)
{
    (void)version;
    r_bytes(r, k, klen);
    if (!r->keys_only)
        r_bytes(r, v, vlen);
    r->u.page.count++;
    return r->err;
}

static void r_page_save(kvd_reply *r)
{
    r->u.page.saved_len = r->out->len;
    r->u.page.saved_count = r->u.page.count;
}

static void r_page_restore(kvd_reply *r)
{
    r->out->len = r->u.page.saved_len;
    r->u.page.count = r->u.page.saved_count;
}

static int r_page_end(kvd_reply *r, uint64_t next_cursor)
{
    if (r->err)
        return r->err;
    char head[PAGE_RESERVE], cur[24];
    size_t items = r->u.page.count * (r->keys_only ? 1 : 2);
    int n;
    if (r->u.page.with_cursor) {
        int cl = snprintf(cur, sizeof cur, "%" PRIu64, next_cursor);
        n = snprintf(head, sizeof head, "*2\r\n$%d\r\n%s\r\n*%zu\r\n", cl, cur, items);
    } else {
        n = snprintf(head, sizeof head, "*%zu\r\n", items);
    }
    uint8_t *base = r->out->data + r->u.page.head;
    size_t body = r->out->len - r->u.page.head - PAGE_RESERVE;
    memcpy(base, head, (size_t)n);
    memmove(base + n, base + PAGE_RESERVE, body);
    r->out->len = r->u.page.head + (size_t)n + body;
    r->started = STARTED;
    return KV_OK;
}

static void r_rewind(kvd_reply *r)
{
    r->out->len = r->mark;
    r->started = NOTHING;
    r->err = KV_OK;
    r->status = KV_OK;
}

static int r_finish(kvd_reply *r)
{
    if (r->none)
        return KV_OK;
    if (r->err) {
        r->out->len = r->mark;
        r->started = NOTHING;
        return r->err;
    }
    if (r->started == NOTHING)
        r_ok(r, "OK");
    if (r->started == PAGE) {
        r->out->len = r->mark;
        return r->err = KV_INTERNAL;
    }
    return r->err;
}

static const kvd_reply_ops resp_reply = {
    .error = r_error, .ok = r_ok, .nil = r_nil, .nil_array = r_nil_array, .integer = r_integer,
    .uinteger = r_uinteger, .dbl = r_dbl, .boolean = r_boolean, .bytes = r_bytes,
    .text = r_text, .word = r_word, .array = r_array, .map = r_map,
    .versioned = r_versioned, .written = r_written, .deleted = r_deleted,
    .expiry = r_expiry, .updated = r_updated, .page_begin = r_page_begin, .page_size = r_page_size,
    .page_entry_size = r_page_entry_size, .page_add = r_page_add,
    .page_save = r_page_save, .page_restore = r_page_restore, .page_end = r_page_end,
    .rewind = r_rewind, .finish = r_finish,
};

static void resp_reply_init(kvd_conn *c, kvd_reply *r, uint64_t id)
{
    kvd_reply_init(r, &resp_reply, &c->out, id);
    r->resp3 = c->sess.resp_version == 3;
}

/* ---- input ------------------------------------------------------------------ */

static int resp_fatal(kvd_conn *c, const uint8_t *partial, size_t have, int status,
                      const char *detail)
{
    (void)partial;
    (void)have;
    kvd_reply r;
    resp_reply_init(c, &r, 0);
    c->fatal = 1;
    return kvd_cmd_refuse(c, -1, &r, status, detail);
}

static int protocol_error(kvd_conn *c, const char *what)
{
    char msg[160];
    snprintf(msg, sizeof msg, "Protocol error: %s", what);
    char warn[200];
    snprintf(warn, sizeof warn, "RESP %s, closing", what);
    kvd_cmd_protocol_warn(c, warn);
    if (resp_fatal(c, NULL, 0, KV_PROTOCOL, msg) != 0)
        kvd_conn_close(c);
    return KVD_MSG_FATAL;
}

/* Reads "<c><integer>\r\n" at p[pos..len) (an optional '-', then at
 * most 18 digits). 1: done (*v, *pos moved), 0: incomplete, -1:
 * malformed. */
static int read_header(const uint8_t *p, size_t len, size_t *pos, int64_t *v)
{
    size_t i = *pos + 1;
    int neg = 0;
    if (i < len && p[i] == '-') {
        neg = 1;
        i++;
    }
    size_t digits = i;
    int64_t x = 0;
    while (i < len && p[i] >= '0' && p[i] <= '9') {
        if (i - digits >= 18)
            return -1;
        x = x * 10 + (p[i] - '0');
        i++;
    }
    if (i == len)
        return i - *pos < RESP_MAX_HEADER ? 0 : -1;
    if (i == digits || p[i] != '\r')
        return -1;
    if (i + 1 == len)
        return 0;
    if (p[i + 1] != '\n')
        return -1;
    *v = neg ? -x : x;
    *pos = i + 2;
    return 1;
}

static int add_arg(resp_state *s, size_t off, size_t len)
{
    if ((size_t)s->i == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        size_t *o = realloc(s->off, cap * sizeof *o);
        if (!o)
            return -1;
        s->off = o;
        size_t *l = realloc(s->len, cap * sizeof *l);
        if (!l)
            return -1;
        s->len = l;
        s->cap = cap;
    }
    s->off[s->i] = off;
    s->len[s->i] = len;
    s->i++;
    return 0;
}

/* An inline command: words separated by spaces; "..." and '...' quote
 * (with \" \\ \n \r \t \xHH in double quotes, rewritten in place is not
 * possible on our input, so quoted words may not contain escapes other
 * than the quote itself: enough for tools, documented). */
static int split_inline(kvd_conn *c, resp_state *s, const uint8_t *p, size_t len,
                        size_t *msg_len)
{
    size_t end = 0;
    while (end < len && p[end] != '\n')
        end++;
    /* Over the limit with or without its newline yet: whether the newline
     * came in the same read must not decide. */
    if (end > RESP_MAX_INLINE)
        return protocol_error(c, "too big inline request");
    if (end == len)
        return KVD_MSG_MORE;
    size_t line = end > 0 && p[end - 1] == '\r' ? end - 1 : end;
    s->i = 0;
    s->is_inline = 1;
    size_t i = 0;
    while (i < line) {
        while (i < line && (p[i] == ' ' || p[i] == '\t'))
            i++;
        if (i == line)
            break;
        size_t start = i;
        if (p[i] == '"' || p[i] == '\'') {
            uint8_t q = p[i++];
            start = i;
            while (i < line && p[i] != q)
                i++;
            if (i == line)
                return protocol_error(c, "unbalanced quotes in request");
            if (add_arg(s, start, i - start) != 0)
                return protocol_error(c, "out of memory");
            i++;
            continue;
        }
        while (i < line && p[i] != ' ' && p[i] != '\t')
            i++;
        if (add_arg(s, start, i - start) != 0)
            return protocol_error(c, "out of memory");
    }
    s->n = s->i;
    *msg_len = end + 1;
    return KVD_MSG_READY;
}

static int resp_split(kvd_conn *c, const uint8_t *p, size_t len, size_t *msg_len)
{
    resp_state *s = state_of(c);
    if (!s) {
        resp_fatal(c, NULL, 0, KV_NO_MEMORY, "server out of memory");
        return KVD_MSG_FATAL;
    }
    if (s->pos == 0 && s->n < 0 && p[0] != '*')
        return split_inline(c, s, p, len, msg_len);
    size_t limit = kvd_cmd_request_limit(c, c->sess.authed);
    if (s->n < 0) {
        int64_t n;
        int rc = read_header(p, len, &s->pos, &n);
        if (rc == 0)
            return KVD_MSG_MORE;
        if (rc < 0 || n > RESP_MAX_ARGS || (n > 0 && (size_t)n > limit / 4))
            return protocol_error(c, "invalid multibulk length");
        s->n = n < 0 ? 0 : n;
        s->i = 0;
    }
    while (s->i < s->n) {
        if (!s->in_bulk) {
            if (s->pos >= len)
                return KVD_MSG_MORE;
            if (p[s->pos] != '$') {
                char what[64];
                snprintf(what, sizeof what, "expected '$', got '%c'",
                         isprint(p[s->pos]) ? p[s->pos] : '?');
                return protocol_error(c, what);
            }
            int64_t b;
            int rc = read_header(p, len, &s->pos, &b);
            if (rc == 0)
                return KVD_MSG_MORE;
            if (rc < 0 || b < 0 || (uint64_t)b > limit || s->pos + (size_t)b > limit + 64 * (size_t)s->n + 64)
                return protocol_error(c, "invalid bulk length");
            s->bulk = (size_t)b;
            s->in_bulk = 1;
        }
        if (len - s->pos < s->bulk + 2)
            return KVD_MSG_MORE;
        if (p[s->pos + s->bulk] != '\r' || p[s->pos + s->bulk + 1] != '\n')
            return protocol_error(c, "bulk string not followed by CRLF");
        if (add_arg(s, s->pos, s->bulk) != 0) {
            resp_fatal(c, NULL, 0, KV_NO_MEMORY, "server out of memory");
            return KVD_MSG_FATAL;
        }
        s->pos += s->bulk + 2;
        s->in_bulk = 0;
        s->bulk = 0;
    }
    if (s->pos > limit + 64 * (size_t)s->n + 64)
        return protocol_error(c, "request larger than the limit");
    *msg_len = s->pos;
    return KVD_MSG_READY;
}

/* The keys of the next GETs and SETs in the buffer, to kvd_prefetch. A
 * quick look at complete multibulk commands only: anything else (inline,
 * partial, malformed) ends the look, and resp_split judges it. */
static size_t resp_prefetch(kvd_conn *c, const uint8_t *p, size_t len)
{
    kv_key keys[KVD_PREFETCH_MAX];
    bool is_set[KVD_PREFETCH_MAX];
    size_t n = 0, pos = 0;
    while (n < KVD_PREFETCH_MAX && pos < len && p[pos] == '*') {
        int64_t argc, b;
        if (read_header(p, len, &pos, &argc) != 1 || argc < 1 || argc > RESP_MAX_ARGS)
            break;
        kv_key argv[2] = {{NULL, 0}, {NULL, 0}};
        int64_t i = 0;
        for (; i < argc; i++) {
            if (pos >= len || p[pos] != '$' || read_header(p, len, &pos, &b) != 1 || b < 0 ||
                len - pos < (size_t)b + 2)
                break;
            if (i < 2)
                argv[i] = (kv_key){p + pos, (size_t)b};
            pos += (size_t)b + 2;
        }
        if (i < argc)
            break; /* incomplete */
        bool get = argc >= 2 && argv[0].len == 3 &&
                   strncasecmp((const char *)argv[0].data, "GET", 3) == 0;
        bool set = argc >= 2 && argv[0].len == 3 &&
                   strncasecmp((const char *)argv[0].data, "SET", 3) == 0;
        if (!get && !set)
            break;
        is_set[n] = set;
        keys[n++] = argv[1];
    }
    if (n > 1)
        kvd_prefetch(c->w->server->store, keys, is_set, n);
    return n > 1 ? n - 1 : 0;
}

static size_t resp_want(const kvd_conn *c, const uint8_t *p, size_t len)
{
    (void)p;
    (void)len;
    const resp_state *s = c->fe_state;
    if (s && s->in_bulk)
        return s->pos + s->bulk + 2;
    return 0;
}

/* ---- commands ------------------------------------------------------------------ */

static int eq(const kv_key *a, const char *s)
{
    size_t n = strlen(s);
    return a->len == n && strncasecmp(a->data, s, n) == 0;
}

static int to_i64(const kv_key *a, int64_t *v)
{
    char buf[32];
    if (a->len == 0 || a->len >= sizeof buf)
        return -1;
    memcpy(buf, a->data, a->len);
    buf[a->len] = 0;
    char *e;
    errno = 0;
    long long x = strtoll(buf, &e, 10);
    if (e != buf + a->len || errno || isspace((unsigned char)buf[0]))
        return -1;
    /* Only the canonical form, as Redis's string2ll: no '+', no leading
     * zero, no "-0". */
    if (buf[0] == '+' || (buf[0] == '0' && a->len > 1) || (buf[0] == '-' && buf[1] == '0'))
        return -1;
    *v = x;
    return 0;
}

static int to_u64(const kv_key *a, uint64_t *v)
{
    int64_t x;
    if (to_i64(a, &x) != 0 || x < 0) {
        /* cursors go up to 2^64-1 */
        char buf[32];
        if (a->len == 0 || a->len >= sizeof buf)
            return -1;
        memcpy(buf, a->data, a->len);
        buf[a->len] = 0;
        char *e;
        errno = 0;
        unsigned long long u = strtoull(buf, &e, 10);
        if (e != buf + a->len || errno || buf[0] == '-')
            return -1;
        *v = u;
        return 0;
    }
    *v = (uint64_t)x;
    return 0;
}

typedef struct resp_command {
    const char *name;
    size_t len;
    int kind;
    int min, max; /* argument counts including the name; max -1: any */
} resp_command;

static const resp_command table[] = {
    {"PING", 4, KVD_CMD_PING, 1, 2},       {"ECHO", 4, KVD_CMD_ECHO, 2, 2},
    {"HELLO", 5, KVD_CMD_HELLO, 1, -1},    {"AUTH", 4, KVD_CMD_AUTH, 2, 3},
    {"SELECT", 6, KVD_CMD_SELECT, 2, 2},   {"QUIT", 4, KVD_CMD_QUIT, 1, -1},
    {"CLIENT", 6, KVD_CMD_CLIENT, 2, -1},  {"COMMAND", 7, KVD_CMD_COMMAND, 1, -1},
    {"INFO", 4, KVD_CMD_INFO, 1, -1},      {"CONFIG", 6, KVD_CMD_CONFIG, 2, -1},
    {"DBSIZE", 6, KVD_CMD_DBSIZE, 1, 1},   {"FLUSHDB", 7, KVD_CMD_FLUSHDB, 1, 2},
    {"FLUSHALL", 8, KVD_CMD_FLUSHDB, 1, 2}, {"GET", 3, KVD_CMD_GET, 2, 2},
    {"SET", 3, KVD_CMD_SET, 3, -1},        {"GETSET", 6, KVD_CMD_GETSET, 3, 3},
    {"GETDEL", 6, KVD_CMD_GETDEL, 2, 2},   {"SETNX", 5, KVD_CMD_MSETNX, 3, 3},
    {"MGET", 4, KVD_CMD_MGET, 2, -1},      {"MSET", 4, KVD_CMD_MSET, 3, -1},
    {"MSETNX", 6, KVD_CMD_MSETNX, 3, -1},  {"DEL", 3, KVD_CMD_DEL, 2, -1},
    {"UNLINK", 6, KVD_CMD_DEL, 2, -1},     {"EXISTS", 6, KVD_CMD_EXISTS, 2, -1},
    {"STRLEN", 6, KVD_CMD_STRLEN, 2, 2},   {"APPEND", 6, KVD_CMD_APPEND, 3, 3},
    {"INCR", 4, KVD_CMD_INCRBY, 2, 2},     {"DECR", 4, KVD_CMD_INCRBY, 2, 2},
    {"INCRBY", 6, KVD_CMD_INCRBY, 3, 3},   {"DECRBY", 6, KVD_CMD_INCRBY, 3, 3},
    {"INCRBYFLOAT", 11, KVD_CMD_INCRBYFLOAT, 3, 3},
    {"SCAN", 4, KVD_CMD_SCAN, 2, -1},      {"KEYS", 4, KVD_CMD_KEYS, 2, 2},
    {"TYPE", 4, KVD_CMD_TYPE, 2, 2},       {"RENAME", 6, KVD_CMD_RENAME, 3, 3},
    {"MULTI", 5, KVD_CMD_MULTI, 1, 1},     {"EXEC", 4, KVD_CMD_EXEC, 1, 1},
    {"DISCARD", 7, KVD_CMD_DISCARD, 1, 1}, {"WATCH", 5, KVD_CMD_WATCH, 2, -1},
    {"UNWATCH", 7, KVD_CMD_UNWATCH, 1, 1},
    {"READONLY", 8, KVD_CMD_READONLY, 1, 1}, {"READWRITE", 9, KVD_CMD_READWRITE, 1, 1},
    {"SETEX", 5, KVD_CMD_SET, 4, 4},       {"PSETEX", 6, KVD_CMD_SET, 4, 4},
    {"TTL", 3, KVD_CMD_TTL, 2, 2},         {"PTTL", 4, KVD_CMD_TTL, 2, 2},
    {"EXPIRETIME", 10, KVD_CMD_TTL, 2, 2}, {"PEXPIRETIME", 11, KVD_CMD_TTL, 2, 2},
    {"EXPIRE", 6, KVD_CMD_EXPIRE, 3, -1},   {"PEXPIRE", 7, KVD_CMD_EXPIRE, 3, -1},
    {"EXPIREAT", 8, KVD_CMD_EXPIRE, 3, -1}, {"PEXPIREAT", 9, KVD_CMD_EXPIRE, 3, -1},
    {"PERSIST", 7, KVD_CMD_PERSIST, 2, 2}, {"GETEX", 5, KVD_CMD_GETEX, 2, -1},
    /* kvd's own (docs/resp.md, "History"), named as a module's would be */
    {"KVD.GETAT", 9, KVD_CMD_GET_AT, 3, 3}, {"KVD.MGETAT", 10, KVD_CMD_MGET_AT, 3, -1},
    {"KVD.SCANAT", 10, KVD_CMD_SCAN_AT, 3, -1}, {"KVD.HISTORY", 11, KVD_CMD_HISTORY, 2, -1},
    {"KVD.ROLLBACK", 12, KVD_CMD_ROLLBACK, 4, -1}, {"KVD.COMPACT", 11, KVD_CMD_COMPACT, 2, 2},
    /* docs/resp.md, "Watch" */
    {"KVD.WATCH", 9, KVD_CMD_WATCH_CHANGES, 2, -1},
    {"KVD.UNWATCH", 11, KVD_CMD_WATCH_CANCEL, 1, 3},
};

static const resp_command *lookup(const kv_key *name)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (name->len == table[i].len && strncasecmp(name->data, table[i].name, name->len) == 0)
            return &table[i];
    return NULL;
}

/* An expiry argument of command `name` in units of unit_ms, as Redis
 * reads one: not an integer, or (unless past_ok) not positive, or too
 * large is an error (too large: over KVD_EXP_MAX ms, about 142 000 years;
 * Redis's limit is 2^63 ms). With past_ok a value <= 0 gives *ms 0. */
static const char *expiry_arg(const kv_key *a, uint64_t unit_ms, int past_ok, const char *name,
                              uint64_t *ms, char *buf, size_t bufsize)
{
    int64_t v;
    if (to_i64(a, &v) != 0)
        return "value is not an integer or out of range";
    if (v > 0 && (uint64_t)v <= KVD_EXP_MAX / unit_ms) {
        *ms = (uint64_t)v * unit_ms;
        return NULL;
    }
    if (v <= 0 && past_ok) {
        *ms = 0;
        return NULL;
    }
    snprintf(buf, bufsize, "invalid expire time in '%s' command", name);
    return buf;
}

/* SET's and GETEX's EX, PX, EXAT, PXAT option o (followed by its
 * value): which (1..4) with its mode and unit, or 0 when o is not one.
 * KEEP_OPT stands for SET's KEEPTTL and GETEX's PERSIST. */
#define KEEP_OPT 5
static int expiry_option(const kv_key *o, int *mode, uint64_t *unit_ms)
{
    static const char *const names[] = {"EX", "PX", "EXAT", "PXAT"};
    for (int i = 0; i < 4; i++)
        if (eq(o, names[i])) {
            *mode = i < 2 ? KVD_EXP_IN : KVD_EXP_AT;
            *unit_ms = i % 2 == 0 ? 1000 : 1;
            return i + 1;
        }
    return 0;
}

/* Fills cmd from argv; returns NULL, or the error to answer (a static
 * string, or buf). */
static const char *parse(kvd_conn *c, const resp_command *rc, const kv_key *argv, size_t argc,
                         kvd_cmd *cmd, char *buf, size_t bufsize)
{
    const kv_key *a = argv + 1;
    size_t n = argc - 1;
    cmd->kind = rc->kind;
    if (n >= 1)
        cmd->key = a[0];
    cmd->has_key = n >= 1;
    switch (rc->kind) {
    case KVD_CMD_HELLO:
        if (n >= 1 && to_u64(&a[0], &cmd->a) != 0)
            return "Protocol version is not an integer or out of range";
        cmd->key = (kv_key){0};
        cmd->has_key = 0;
        for (size_t i = 1; i < n; i++) {
            if (eq(&a[i], "AUTH") && i + 2 < n) {
                if (!eq(&a[i + 1], "default"))
                    return "WRONGPASS invalid username-password pair or user is disabled.";
                cmd->key = a[i + 2];
                cmd->has_key = 1;
                i += 2;
            } else if (eq(&a[i], "SETNAME") && i + 1 < n) {
                cmd->value = a[++i];
            } else {
                snprintf(buf, bufsize, "Syntax error in HELLO option '%.*s'",
                         (int)(a[i].len > 32 ? 32 : a[i].len), (const char *)a[i].data);
                return buf;
            }
        }
        return NULL;
    case KVD_CMD_AUTH:
        if (n == 2) {
            if (!eq(&a[0], "default"))
                return "WRONGPASS invalid username-password pair or user is disabled.";
            cmd->key = a[1];
        }
        return NULL;
    case KVD_CMD_SELECT:
        if (to_i64(&a[0], &cmd->i) != 0)
            return "value is not an integer or out of range";
        return NULL;
    case KVD_CMD_CLIENT:
        cmd->sub = eq(&a[0], "SETNAME") && n == 2 ? KVD_SUB_CLIENT_SETNAME
                   : eq(&a[0], "GETNAME") ? KVD_SUB_CLIENT_GETNAME
                   : eq(&a[0], "ID") ? KVD_SUB_CLIENT_ID
                   : eq(&a[0], "SETINFO") && n == 3 ? KVD_SUB_CLIENT_SETINFO
                   : eq(&a[0], "INFO") ? KVD_SUB_CLIENT_INFO
                                       : KVD_SUB_UNKNOWN;
        if (n >= 2)
            cmd->key = a[1];
        return NULL;
    case KVD_CMD_COMMAND:
        cmd->sub = n == 0 ? KVD_SUB_NONE
                   : eq(&a[0], "COUNT") ? KVD_SUB_COMMAND_COUNT
                   : eq(&a[0], "DOCS") ? KVD_SUB_COMMAND_DOCS
                   : eq(&a[0], "INFO") ? KVD_SUB_COMMAND_INFO
                   : eq(&a[0], "LIST") ? KVD_SUB_COMMAND_LIST
                                       : KVD_SUB_UNKNOWN;
        if (n >= 2) { /* COMMAND INFO / DOCS name... */
            cmd->keys = a + 1;
            cmd->nkeys = n - 1;
        }
        return NULL;
    case KVD_CMD_CONFIG:
        cmd->sub = eq(&a[0], "GET") && n == 2 ? KVD_SUB_CONFIG_GET
                   : eq(&a[0], "SET") ? KVD_SUB_CONFIG_SET
                   : eq(&a[0], "RESETSTAT") ? KVD_SUB_CONFIG_RESETSTAT
                                            : KVD_SUB_UNKNOWN;
        if (cmd->sub == KVD_SUB_UNKNOWN)
            return "unknown CONFIG subcommand or wrong number of arguments (kvd has GET "
                   "pattern, RESETSTAT)";
        if (n >= 2)
            cmd->key = a[1];
        return NULL;
    case KVD_CMD_SET: {
        if (eq(&argv[0], "SETEX") || eq(&argv[0], "PSETEX")) { /* key, time, value */
            int ms = eq(&argv[0], "PSETEX");
            cmd->value = a[2];
            cmd->exp_mode = KVD_EXP_IN;
            return expiry_arg(&a[1], ms ? 1 : 1000, 0, ms ? "psetex" : "setex", &cmd->exp, buf,
                              bufsize);
        }
        cmd->value = a[1];
        /* the options first, then the time (Redis's order of errors) */
        const kv_key *when = NULL;
        uint64_t unit = 1;
        int opt = 0; /* the expiry option given (Redis lets one repeat) */
        for (size_t i = 2; i < n; i++) {
            int mode, o = expiry_option(&a[i], &mode, &unit);
            if (eq(&a[i], "NX") && !(cmd->flags & KVD_SET_XX))
                cmd->flags |= KVD_SET_NX;
            else if (eq(&a[i], "XX") && !(cmd->flags & KVD_SET_NX))
                cmd->flags |= KVD_SET_XX;
            else if (eq(&a[i], "GET"))
                cmd->flags |= KVD_SET_GET;
            else if (eq(&a[i], "KEEPTTL") && (opt == 0 || opt == KEEP_OPT))
                cmd->exp_mode = KVD_EXP_KEEP, opt = KEEP_OPT;
            else if (o && (opt == 0 || opt == o) && i + 1 < n) {
                cmd->exp_mode = mode;
                opt = o;
                when = &a[++i];
            } else
                return "syntax error";
        }
        return when ? expiry_arg(when, unit, 0, "set", &cmd->exp, buf, bufsize) : NULL;
    }
    case KVD_CMD_GETEX: {
        const kv_key *when = NULL;
        uint64_t unit = 1;
        int opt = 0;
        cmd->exp_mode = KVD_EXP_KEEP;
        for (size_t i = 1; i < n; i++) {
            int mode, o = expiry_option(&a[i], &mode, &unit);
            if (eq(&a[i], "PERSIST") && (opt == 0 || opt == KEEP_OPT))
                cmd->exp_mode = KVD_EXP_PERSIST, opt = KEEP_OPT;
            else if (o && (opt == 0 || opt == o) && i + 1 < n) {
                cmd->exp_mode = mode;
                opt = o;
                when = &a[++i];
            } else
                return "syntax error";
        }
        return when ? expiry_arg(when, unit, 0, "getex", &cmd->exp, buf, bufsize) : NULL;
    }
    case KVD_CMD_TTL:
        cmd->flags = (eq(&argv[0], "PTTL") || eq(&argv[0], "PEXPIRETIME") ? KVD_TTL_MS : 0) |
                     (eq(&argv[0], "EXPIRETIME") || eq(&argv[0], "PEXPIRETIME") ? KVD_TTL_AT : 0);
        return NULL;
    case KVD_CMD_EXPIRE: {
        int ms = eq(&argv[0], "PEXPIRE") || eq(&argv[0], "PEXPIREAT");
        int at = eq(&argv[0], "EXPIREAT") || eq(&argv[0], "PEXPIREAT");
        for (size_t i = 2; i < n; i++) {
            unsigned f = eq(&a[i], "NX")   ? KV_PROTO_EXPIRE_NX
                         : eq(&a[i], "XX") ? KV_PROTO_EXPIRE_XX
                         : eq(&a[i], "GT") ? KV_PROTO_EXPIRE_GT
                         : eq(&a[i], "LT") ? KV_PROTO_EXPIRE_LT : 0;
            if (!f) {
                snprintf(buf, bufsize, "Unsupported option %.*s",
                         (int)(a[i].len > 64 ? 64 : a[i].len), (const char *)a[i].data);
                return buf;
            }
            cmd->flags |= f;
        }
        if ((cmd->flags & KV_PROTO_EXPIRE_NX) && (cmd->flags & ~KV_PROTO_EXPIRE_NX))
            return "NX and XX, GT or LT options at the same time are not compatible";
        if ((cmd->flags & KV_PROTO_EXPIRE_GT) && (cmd->flags & KV_PROTO_EXPIRE_LT))
            return "GT and LT options at the same time are not compatible";
        char name[16];
        size_t len = argv[0].len < sizeof name - 1 ? argv[0].len : sizeof name - 1;
        for (size_t i = 0; i < len; i++)
            name[i] = (char)tolower(((const unsigned char *)argv[0].data)[i]);
        name[len] = 0;
        const char *err = expiry_arg(&a[1], ms ? 1 : 1000, 1, name, &cmd->exp, buf, bufsize);
        if (err)
            return err;
        /* a time <= 0 (or an absolute one past): the key goes at once */
        cmd->exp_mode = at || cmd->exp == 0 ? KVD_EXP_AT : KVD_EXP_IN;
        if (cmd->exp == 0)
            cmd->exp = 1;
        return NULL;
    }
    case KVD_CMD_GETSET:
    case KVD_CMD_APPEND:
        cmd->value = a[1];
        return NULL;
    case KVD_CMD_RENAME:
        cmd->value = a[1];
        return NULL;
    case KVD_CMD_MGET:
    case KVD_CMD_DEL:
    case KVD_CMD_EXISTS:
    case KVD_CMD_WATCH:
        cmd->keys = a;
        cmd->nkeys = n;
        return NULL;
    case KVD_CMD_MSET:
    case KVD_CMD_MSETNX: {
        if (n % 2 != 0)
            return NULL; /* caught by the caller's arity message */
        kv_pair *pairs = kv_proto_arena_alloc(&c->arena, (n / 2 + 1) * sizeof *pairs);
        if (!pairs)
            return "out of memory";
        for (size_t i = 0; i < n / 2; i++)
            pairs[i] = (kv_pair){a[2 * i].data, a[2 * i].len, a[2 * i + 1].data,
                                 a[2 * i + 1].len};
        cmd->pairs = pairs;
        cmd->npairs = n / 2;
        return NULL;
    }
    case KVD_CMD_INCRBY: {
        if (eq(&argv[0], "INCR") || eq(&argv[0], "DECR")) {
            cmd->i = eq(&argv[0], "INCR") ? 1 : -1;
            return NULL;
        }
        if (to_i64(&a[1], &cmd->i) != 0)
            return "value is not an integer or out of range";
        if (eq(&argv[0], "DECRBY")) {
            if (cmd->i == INT64_MIN)
                return "decrement would overflow";
            cmd->i = -cmd->i;
        }
        return NULL;
    }
    case KVD_CMD_INCRBYFLOAT: {
        char fb[64];
        if (a[1].len == 0 || a[1].len >= sizeof fb)
            return "value is not a valid float";
        memcpy(fb, a[1].data, a[1].len);
        fb[a[1].len] = 0;
        char *e;
        errno = 0;
        cmd->f = strtod(fb, &e);
        if (e != fb + a[1].len || errno || isnan(cmd->f) || isinf(cmd->f) ||
            isspace((unsigned char)fb[0]))
            return "value is not a valid float";
        cmd->value = a[1]; /* the text too: cmd_kv.c reads it as a long double */
        return NULL;
    }
    case KVD_CMD_GET_AT:
        if (to_u64(&a[1], &cmd->rev) != 0 || cmd->rev == 0)
            return "revision is not a positive integer";
        return NULL;
    case KVD_CMD_MGET_AT:
        if (to_u64(&a[0], &cmd->rev) != 0 || cmd->rev == 0)
            return "revision is not a positive integer";
        cmd->key = (kv_key){0};
        cmd->keys = a + 1;
        cmd->nkeys = n - 1;
        return NULL;
    case KVD_CMD_COMPACT:
        if (to_u64(&a[0], &cmd->rev) != 0 || cmd->rev == 0)
            return "revision is not a positive integer";
        cmd->key = (kv_key){0};
        return NULL;
    case KVD_CMD_HISTORY:
        for (size_t i = 1; i < n; i++) {
            uint64_t *v = eq(&a[i], "MINREV") ? &cmd->min_rev
                          : eq(&a[i], "MAXREV") ? &cmd->rev
                          : eq(&a[i], "LIMIT") ? &cmd->limit : NULL;
            if (!v || i + 1 >= n)
                return "syntax error";
            if (to_u64(&a[++i], v) != 0)
                return "value is not an integer or out of range";
        }
        return NULL;
    case KVD_CMD_ROLLBACK: {
        /* torev [IFUNCHANGEDSINCE rev] (KEYS key [key ...] | PREFIX prefix) */
        if (to_u64(&a[0], &cmd->rev) != 0 || cmd->rev == 0)
            return "revision is not a positive integer";
        cmd->key = (kv_key){0};
        size_t i = 1;
        if (i + 1 < n && eq(&a[i], "IFUNCHANGEDSINCE")) {
            if (to_u64(&a[i + 1], &cmd->expected) != 0)
                return "value is not an integer or out of range";
            i += 2;
        }
        if (i + 1 < n && eq(&a[i], "KEYS")) {
            cmd->keys = a + i + 1;
            cmd->nkeys = n - i - 1;
        } else if (i + 2 == n && eq(&a[i], "PREFIX")) {
            cmd->key = a[i + 1];
            cmd->flags = KVD_ROLLBACK_PREFIX;
        } else {
            return "syntax error (KVD.ROLLBACK torev [IFUNCHANGEDSINCE rev] KEYS key [key ...] "
                   "| PREFIX prefix)";
        }
        return NULL;
    }
    case KVD_CMD_SCAN:
    case KVD_CMD_SCAN_AT: {
        if (rc->kind == KVD_CMD_SCAN_AT) { /* KVD.SCANAT rev cursor [MATCH] [COUNT] */
            if (to_u64(&a[0], &cmd->rev) != 0 || cmd->rev == 0)
                return "revision is not a positive integer";
            a++;
            n--;
        }
        if (to_u64(&a[0], &cmd->a) != 0)
            return "invalid cursor";
        cmd->key = (kv_key){0};
        cmd->flags = 1u; /* keys only */
        int no_type = 0;
        for (size_t i = 1; i < n; i++) {
            if (eq(&a[i], "MATCH") && i + 1 < n) {
                cmd->value = a[++i];
            } else if (eq(&a[i], "COUNT") && i + 1 < n) {
                int64_t v = 0;
                if (to_i64(&a[++i], &v) != 0)
                    return "value is not an integer or out of range";
                if (v < 1)
                    return "syntax error";
                cmd->limit = (uint64_t)v;
            } else if (eq(&a[i], "TYPE") && i + 1 < n) {
                no_type |= !eq(&a[++i], "string");
            } else {
                return "syntax error";
            }
        }
        if (no_type) /* every key is a string: an empty pattern matches none */
            cmd->value = (kv_key){"", 0};
        if (cmd->value.data && cmd->value.len) {
            cmd->key = (kv_key){cmd->value.data,
                                kvd_glob_literal_prefix(cmd->value.data, cmd->value.len)};
        }
        return NULL;
    }
    case KVD_CMD_WATCH_CHANGES:
        /* key [PREFIX] [FROM rev] [COUNT n] */
        for (size_t i = 1; i < n; i++) {
            if (eq(&a[i], "PREFIX")) {
                cmd->flags |= KVD_WATCH_PREFIX;
            } else if ((eq(&a[i], "FROM") || eq(&a[i], "COUNT")) && i + 1 < n) {
                uint64_t *v = eq(&a[i], "FROM") ? &cmd->rev : &cmd->limit;
                if (to_u64(&a[++i], v) != 0)
                    return "value is not an integer or out of range";
            } else {
                return "syntax error (KVD.WATCH key [PREFIX] [FROM rev] [COUNT n])";
            }
        }
        if (cmd->key.len == 0 && !(cmd->flags & KVD_WATCH_PREFIX))
            return "an empty key needs PREFIX (every key)";
        return NULL;
    case KVD_CMD_WATCH_CANCEL:
        /* [key [PREFIX]]: those watches, or all */
        if (n == 2 && !eq(&a[1], "PREFIX"))
            return "syntax error (KVD.UNWATCH [key [PREFIX]])";
        cmd->flags = n == 2 ? KVD_WATCH_PREFIX : 0u;
        return NULL;
    case KVD_CMD_KEYS:
        cmd->value = a[0];
        cmd->key = (kv_key){a[0].data, kvd_glob_literal_prefix(a[0].data, a[0].len)};
        return NULL;
    default:
        return NULL;
    }
}

/* "-ERR unknown command 'x', with args beginning with: 'a' 'b' " */
static void unknown_message(const kv_key *argv, size_t argc, char *buf, size_t size)
{
    size_t n = (size_t)snprintf(buf, size, "unknown command '%.*s', with args beginning with: ",
                                (int)(argv[0].len > 64 ? 64 : argv[0].len),
                                (const char *)argv[0].data);
    for (size_t i = 1; i < argc && n < size - 80; i++)
        n += (size_t)snprintf(buf + n, size - n, "'%.*s' ",
                              (int)(argv[i].len > 32 ? 32 : argv[i].len),
                              (const char *)argv[i].data);
}

/* Runs the command in argv[0..argc). */
static int run_args(kvd_conn *c, const kv_key *argv, size_t argc, size_t len, uint64_t *clock)
{
    kvd_reply r;
    resp_reply_init(c, &r, 0);
    const resp_command *rc = lookup(&argv[0]);
    char buf[512];
    if (!rc) {
        if (kvd_cmd_needs_auth(c, -1))
            return kvd_cmd_refuse(c, -1, &r, KV_AUTH_REQUIRED, NULL);
        unknown_message(argv, argc, buf, sizeof buf);
        return kvd_cmd_refuse(c, -1, &r, KV_UNSUPPORTED, buf);
    }
    kvd_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.size = len;
    int arity_ok = argc >= (size_t)rc->min && (rc->max < 0 || argc <= (size_t)rc->max);
    if (arity_ok && (rc->kind == KVD_CMD_MSET || rc->kind == KVD_CMD_MSETNX) && argc % 2 == 0)
        arity_ok = 0;
    if (!arity_ok) {
        if (kvd_cmd_needs_auth(c, rc->kind))
            return kvd_cmd_refuse(c, rc->kind, &r, KV_AUTH_REQUIRED, NULL);
        snprintf(buf, sizeof buf, "wrong number of arguments for '%s' command", rc->name);
        for (char *p = buf; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        return kvd_cmd_refuse(c, rc->kind, &r, KV_INVALID_ARGUMENT, buf);
    }
    if (c->watchers && c->sess.resp_version != 3 && rc->kind != KVD_CMD_WATCH_CHANGES &&
        rc->kind != KVD_CMD_WATCH_CANCEL && rc->kind != KVD_CMD_PING &&
        rc->kind != KVD_CMD_QUIT) {
        /* RESP2 cannot tell pushes from replies: as Redis's SUBSCRIBE */
        snprintf(buf, sizeof buf,
                 "Can't execute '%.32s': only KVD.WATCH / KVD.UNWATCH / PING / QUIT are allowed "
                 "in this context (or use RESP3: HELLO 3)",
                 rc->name);
        for (char *p = buf + 15; *p && *p != '\''; p++)
            *p = (char)tolower((unsigned char)*p);
        return kvd_cmd_refuse(c, rc->kind, &r, KV_INVALID_ARGUMENT, buf);
    }
    const char *err = parse(c, rc, argv, argc, &cmd, buf, sizeof buf);
    if (err) {
        if (kvd_cmd_needs_auth(c, rc->kind))
            return kvd_cmd_refuse(c, rc->kind, &r, KV_AUTH_REQUIRED, NULL);
        int st = strncmp(err, "WRONGPASS", 9) == 0 ? KV_AUTH_FAILED : KV_INVALID_ARGUMENT;
        return kvd_cmd_refuse(c, rc->kind, &r, st, err);
    }
    return kvd_cmd_execute(c, &cmd, &r, clock);
}

static int resp_run(kvd_conn *c, const uint8_t *msg, size_t len, uint64_t *clock)
{
    resp_state *s = c->fe_state;
    size_t argc = (size_t)s->i;
    int rc = 0;
    kv_proto_arena_reset(&c->arena);
    if (s->argv_cap < argc) {
        kv_key *v = realloc(s->argv, argc * sizeof *v);
        if (v) {
            s->argv = v;
            s->argv_cap = argc;
        }
    }
    if (argc == 0) {
        *clock = uv_hrtime(); /* an empty line or *0: nothing to answer, as Redis */
    } else if (s->argv_cap < argc) {
        rc = -1; /* out of memory */
    } else {
        for (size_t i = 0; i < argc; i++)
            s->argv[i] = (kv_key){msg + s->off[i], s->len[i]};
        rc = run_args(c, s->argv, argc, len, clock);
    }
    state_reset(s);
    return rc;
}

/* ---- watches ------------------------------------------------------------------ */

/* One push message (RESP3 >, RESP2 an array as SUBSCRIBE's messages):
 * ["kvd.event", watched, revision, "put"|"del", key, value|nil, version,
 *  create_revision] per event (docs/resp.md, "Watch"). */
static int resp_watch_events(kvd_conn *c, const kvd_watcher *wt, const kv_event *ev, size_t n,
                             uint64_t next_revision)
{
    (void)next_revision;
    kvd_reply r;
    resp_reply_init(c, &r, 0);
    size_t mark = c->out.len;
    for (size_t i = 0; i < n && !r.err; i++) {
        const kv_event *e = &ev[i];
        put(&r, r.resp3 ? ">8\r\n" : "*8\r\n", 4);
        r_bytes(&r, "kvd.event", 9);
        r_bytes(&r, wt->key, wt->klen);
        r_uinteger(&r, e->revision);
        r_bytes(&r, e->deleted ? "del" : "put", 3);
        r_bytes(&r, e->key, e->klen);
        if (e->deleted)
            r_nil(&r);
        else
            r_bytes(&r, e->value, e->vlen);
        r_uinteger(&r, e->version);
        r_uinteger(&r, e->create_revision);
    }
    if (r.err)
        c->out.len = mark;
    return r.err;
}

/* The end of a watch: ["kvd.lost", watched, resume_revision] when events
 * were lost, ["kvd.unwatch", watched, next_revision] after KVD.UNWATCH. */
static int resp_watch_end(kvd_conn *c, const kvd_watcher *wt, int status,
                          uint64_t next_revision)
{
    kvd_reply r;
    resp_reply_init(c, &r, 0);
    size_t mark = c->out.len;
    put(&r, r.resp3 ? ">3\r\n" : "*3\r\n", 4);
    if (status == KV_OK)
        r_bytes(&r, "kvd.unwatch", 11);
    else
        r_bytes(&r, "kvd.lost", 8);
    r_bytes(&r, wt->key, wt->klen);
    r_uinteger(&r, next_revision);
    if (r.err)
        c->out.len = mark;
    return r.err;
}

const kvd_frontend kvd_fe_resp = {
    .name = "resp",
    .protocol = KVD_PROTOCOL_RESP,
    .split = resp_split,
    .run = resp_run,
    .want = resp_want,
    .reply_init = resp_reply_init,
    .fatal = resp_fatal,
    .prefetch = resp_prefetch,
    .release = resp_release,
    .watch_events = resp_watch_events,
    .watch_end = resp_watch_end,
};
