/*
 * fe_http.c - the front-end for HTTP/1.1 (docs/http.md): a small REST
 * API on the store, /metrics for Prometheus and /healthz, on the same
 * port as kvd's other protocols.
 *
 * Reading: Node's http_parser (libhttp-parser-dev) is fed each request's
 * bytes once, resuming where it stopped when more arrive, and is paused
 * at the end of every request so that pipelined requests are cut one at
 * a time at their boundaries. The parser's callbacks record only offsets
 * (kvd_http_span) of the target, the few headers kvd reads and the body;
 * a chunked body is reassembled into a side buffer. Limits, checked
 * before anything is buffered for them: the head (request line and
 * headers) at 3 x --max-key-size + 8 KiB (a key in the path takes up to
 * three bytes per byte) and never more than the request limit; the body
 * at --max-frame-size (1 MiB before a password is proven), refused from
 * its declared Content-Length when there is one; a chunked message's
 * framing at twice its body. Over a limit, or on a malformed request, the
 * answer is a JSON error and the connection closes after it.
 *
 * Authentication: with a password, every request but /healthz carries
 * "Authorization: Bearer <password>". The token is checked when the
 * request's head is complete, before its body is read, with the same
 * bookkeeping as AUTH (cmd.c) - and, from an address with recent
 * failures, after the same wait (the AUTH throttle; the connection stops
 * reading meanwhile). A token verified once on a connection is then only
 * compared, in constant time.
 *
 * Running: http_route.c turns each request into one kvd_cmd executed
 * through the command layer; http_reply.c renders the answer.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conn.h"
#include "conn_internal.h"
#include "frontend.h"
#include "http.h"
#include "http_url.h"
#include "log.h"

#define HEAD_MIN ((size_t)8192)
#define PARSER_MAX_HEAD (256u * 1024u) /* above any head limit we compute */
#define KEEP_BUF_MAX ((size_t)64 << 10) /* buffers kept between requests */

static pthread_once_t parser_once = PTHREAD_ONCE_INIT;

/* http_parser's own head limit is a global; ours is per connection and
 * lower, checked in split. */
static void parser_setup(void)
{
    http_parser_set_max_header_size(PARSER_MAX_HEAD);
}

static kvd_http *state_of(kvd_conn *c)
{
    if (!c->fe_state) {
        kvd_http *st = calloc(1, sizeof *st);
        if (!st)
            return NULL;
        pthread_once(&parser_once, parser_setup);
        http_parser_init(&st->parser, HTTP_REQUEST);
        st->parser.data = st;
        st->c = c;
        c->fe_state = st;
    }
    return c->fe_state;
}

static void http_release(kvd_conn *c)
{
    kvd_http *st = c->fe_state;
    if (!st)
        return;
    kvd_http_reply_reset(st);
    kv_proto_buf_free(&st->body_copy);
    kv_proto_buf_free(&st->body_out);
    free(st);
    c->fe_state = NULL;
}

static size_t head_limit(const kvd_conn *c)
{
    size_t lim = 3 * c->w->server->cfg->max_key_size + HEAD_MIN;
    size_t req = kvd_cmd_request_limit(c, 0);
    if (lim > req)
        lim = req;
    return lim < HEAD_MIN ? HEAD_MIN : lim;
}

/* Records an error found while reading; the request is answered with it
 * and the connection closes. Returns -1 (a callback's failure). */
static int refuse_early(kvd_http *st, int status, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int refuse_early(kvd_http *st, int status, int code, const char *fmt, ...)
{
    if (st->early_status)
        return -1; /* the first one is answered */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->early_msg, sizeof st->early_msg, fmt, ap);
    va_end(ap);
    st->early_status = status;
    st->code = code;
    return -1;
}

/* ---- parser callbacks --------------------------------------------------------- */

static void span_add(kvd_http *st, kvd_http_span *s, const char *at, size_t n)
{
    size_t off = (size_t)((const uint8_t *)at - st->base);
    if (off + n > st->head_end)
        st->head_end = off + n;
    if (!s->set) {
        s->off = off;
        s->len = n;
        s->set = 1;
    } else {
        s->len = off + n - s->off;
    }
}

static int on_message_begin(http_parser *p)
{
    kvd_http *st = p->data;
    memset(&st->url, 0, sizeof st->url);
    memset(&st->field, 0, sizeof st->field);
    memset(&st->authorization, 0, sizeof st->authorization);
    memset(&st->if_match, 0, sizeof st->if_match);
    memset(&st->if_none_match, 0, sizeof st->if_none_match);
    memset(&st->expect, 0, sizeof st->expect);
    memset(&st->client_id, 0, sizeof st->client_id);
    memset(&st->request_id, 0, sizeof st->request_id);
    memset(&st->body, 0, sizeof st->body);
    memset(&st->path_key, 0, sizeof st->path_key);
    memset(&st->query, 0, sizeof st->query);
    st->value = NULL;
    st->in_field = 0;
    st->duplicate = 0;
    st->headers_done = 0;
    st->complete = 0;
    st->copy_body = 0;
    st->body_ok = 0;
    st->waiting = 0;
    st->head_only = 0;
    st->body_total = 0;
    st->head_end = 0;
    st->body_copy.len = 0;
    st->route = KVD_HTTP_NONE;
    st->auth = KVD_HTTP_AUTH_OK;
    st->early_status = 0;
    st->early_msg[0] = 0;
    st->code = 0;
    st->close_after = 0;
    st->begun = 1;
    kvd_http_reply_reset(st);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    kvd_http *st = p->data;
    span_add(st, &st->url, at, n);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    kvd_http *st = p->data;
    /* A name arrives in pieces only across reads, contiguously. */
    if (!st->in_field || (const uint8_t *)at != st->base + st->field.off + st->field.len) {
        memset(&st->field, 0, sizeof st->field);
        st->in_field = 1;
    }
    span_add(st, &st->field, at, n);
    return 0;
}

/* The span for the header named by st->field, if kvd reads it. */
static kvd_http_span *header_slot(kvd_http *st)
{
    static const struct {
        const char *name;
        size_t off;
    } known[] = {
        {"authorization", offsetof(kvd_http, authorization)},
        {"if-match", offsetof(kvd_http, if_match)},
        {"if-none-match", offsetof(kvd_http, if_none_match)},
        {"expect", offsetof(kvd_http, expect)},
        {"kvd-client-id", offsetof(kvd_http, client_id)},
        {"kvd-request-id", offsetof(kvd_http, request_id)},
    };
    const char *name = (const char *)st->base + st->field.off;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (st->field.len == strlen(known[i].name) &&
            strncasecmp(name, known[i].name, st->field.len) == 0)
            return (kvd_http_span *)((char *)st + known[i].off);
    return NULL;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    kvd_http *st = p->data;
    size_t end = (size_t)((const uint8_t *)at - st->base) + n;
    if (end > st->head_end)
        st->head_end = end; /* headers kvd does not read count too */
    if (st->in_field) {
        st->in_field = 0;
        st->value = header_slot(st);
        if (st->value) {
            if (st->value->set)
                st->duplicate = 1;
            memset(st->value, 0, sizeof *st->value);
        }
    }
    if (st->value)
        span_add(st, st->value, at, n);
    return 0;
}

/* Finds the endpoint from the path. Returns 0, or -1 (early error). */
static int route(kvd_http *st)
{
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (!st->url.set ||
        http_parser_parse_url(kvd_http_at(st, &st->url), st->url.len, st->parser.method == HTTP_CONNECT,
                              &u) != 0)
        return refuse_early(st, KV_PROTOCOL, 0, "malformed request target");
    if (!(u.field_set & (1 << UF_PATH)))
        return 0; /* "*" or authority form: no endpoint */
    const char *path = kvd_http_at(st, &st->url) + u.field_data[UF_PATH].off;
    size_t plen = u.field_data[UF_PATH].len;
    if (u.field_set & (1 << UF_QUERY)) {
        st->query.off = st->url.off + u.field_data[UF_QUERY].off;
        st->query.len = u.field_data[UF_QUERY].len;
        st->query.set = 1;
    }
    static const char keys_prefix[] = "/v1/keys/";
    size_t kp = sizeof keys_prefix - 1;
    if (plen >= kp && memcmp(path, keys_prefix, kp) == 0) {
        st->route = KVD_HTTP_KEY;
        st->path_key.off = (size_t)((const uint8_t *)path - st->base) + kp;
        st->path_key.len = plen - kp;
        st->path_key.set = 1;
        return 0;
    }
    static const char history_prefix[] = "/v1/history/";
    size_t hp = sizeof history_prefix - 1;
    if (plen > hp && memcmp(path, history_prefix, hp) == 0) {
        st->route = KVD_HTTP_HISTORY;
        st->path_key.off = (size_t)((const uint8_t *)path - st->base) + hp;
        st->path_key.len = plen - hp;
        st->path_key.set = 1;
        return 0;
    }
    static const struct {
        const char *path;
        int route;
    } fixed[] = {{"/v1/keys", KVD_HTTP_KEYS}, {"/v1/txn", KVD_HTTP_TXN},
                 {"/v1/mset", KVD_HTTP_MSET}, {"/v1/mget", KVD_HTTP_MGET},
                 {"/v1/rollback", KVD_HTTP_ROLLBACK}, {"/v1/compact", KVD_HTTP_COMPACT},
                 {"/metrics", KVD_HTTP_METRICS}, {"/healthz", KVD_HTTP_HEALTH}};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (plen == strlen(fixed[i].path) && memcmp(path, fixed[i].path, plen) == 0)
            st->route = fixed[i].route;
    return 0;
}

/* The token of "Authorization: Bearer <token>", or NULL. */
static const char *bearer(const kvd_http *st, size_t *n)
{
    if (!st->authorization.set)
        return NULL;
    const char *v = kvd_http_at(st, &st->authorization);
    size_t len = st->authorization.len;
    if (len < 7 || strncasecmp(v, "Bearer ", 7) != 0)
        return NULL;
    size_t i = 7;
    while (i < len && (v[i] == ' ' || v[i] == '\t'))
        i++;
    while (len > i && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    *n = len - i;
    return v + i;
}

/* Checks the token now (its turn has come): AUTH's bookkeeping. */
static void verify_token(kvd_http *st)
{
    size_t n = 0;
    const char *tok = bearer(st, &n);
    int fatal = 0;
    if (kvd_cmd_auth_verify(st->c, tok, n, &fatal) == KV_OK) {
        st->auth = KVD_HTTP_AUTH_OK;
        st->verified = 1;
    } else {
        st->auth = KVD_HTTP_AUTH_WRONG;
        st->verified = 0;
        if (fatal)
            st->close_after = 1;
    }
}

/* Decides st->auth from the request's head; AUTH_WAIT when the address
 * must wait for its turn first. */
static void authenticate(kvd_http *st)
{
    kvd_conn *c = st->c;
    kvd_server *s = c->w->server;
    st->auth = KVD_HTTP_AUTH_OK;
    if (!s->cfg->password || st->route == KVD_HTTP_HEALTH)
        return;
    size_t n = 0;
    const char *tok = bearer(st, &n);
    if (!tok) {
        st->auth = KVD_HTTP_AUTH_MISSING;
        return;
    }
    if (st->verified && kvd_cmd_secret_is(c, tok, n))
        return;
    uint64_t delay = kvd_auth_throttle_admit(&s->auth_throttle, &c->peer_key,
                                             uv_now(&c->w->loop));
    if (delay > 0) {
        kvd_stat_add(&c->w->stats.auth_throttled, 1);
        st->auth = KVD_HTTP_AUTH_WAIT;
        st->wait_ms = delay;
        return;
    }
    verify_token(st);
}

/* Once the token is decided: the body's limit, and 100 Continue.
 * Returns 0, or -1 (early error). */
static int admit_body(kvd_http *st)
{
    http_parser *p = &st->parser;
    kvd_conn *c = st->c;
    int authed = st->auth == KVD_HTTP_AUTH_OK;
    st->body_limit = kvd_cmd_request_limit(c, authed);
    int chunked = (p->flags & F_CHUNKED) != 0;
    uint64_t declared = chunked || p->content_length == ULLONG_MAX ? 0 : p->content_length;
    int has_body = chunked || declared > 0;
    int expect = has_body && st->expect.set;
    if (!authed && (declared > st->body_limit || expect)) {
        /* Not read for a client that is refused anyway. */
        return refuse_early(st, st->auth == KVD_HTTP_AUTH_MISSING ? KV_AUTH_REQUIRED
                                                                  : KV_AUTH_FAILED,
                            0, "%s", st->auth == KVD_HTTP_AUTH_MISSING
                                         ? "authenticate with Authorization: Bearer <password>"
                                         : "wrong password");
    }
    if (declared > st->body_limit)
        return refuse_early(st, KV_FRAME_TOO_LARGE, 0,
                            "request body of %llu bytes exceeds the limit of %zu bytes "
                            "(--max-frame-size)",
                            (unsigned long long)declared, st->body_limit);
    if (expect) {
        if (!kvd_http_eq_ci(kvd_http_at(st, &st->expect), st->expect.len, "100-continue"))
            return refuse_early(st, KV_UNSUPPORTED, 417, "only Expect: 100-continue is supported");
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (kvd_http_put(&c->out, cont, sizeof cont - 1) != KV_OK)
            return refuse_early(st, KV_NO_MEMORY, 0, "server out of memory");
    }
    st->body_ok = 1;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    kvd_http *st = p->data;
    st->headers_done = 1;
    st->in_field = 0;
    st->value = NULL;
    st->method = p->method;
    st->http_minor = p->http_major == 1 ? p->http_minor : 1;
    st->head_only = p->method == HTTP_HEAD;
    /* The head arrived whole in this read: its size, give or take the
     * request line's tail. */
    if (st->head_end > st->head_limit)
        return refuse_early(st, KV_FRAME_TOO_LARGE, 431, "request head larger than %zu bytes",
                            st->head_limit);
    if (p->http_major != 1)
        return refuse_early(st, KV_UNSUPPORTED, 505, "kvd speaks HTTP/1.0 and HTTP/1.1");
    if (st->duplicate)
        return refuse_early(st, KV_INVALID_ARGUMENT, 0,
                            "a header that kvd reads (Authorization, If-Match, If-None-Match, "
                            "Expect, Kvd-Client-Id, Kvd-Request-Id) is repeated");
    if (route(st) != 0)
        return -1;
    authenticate(st);
    if (st->auth == KVD_HTTP_AUTH_WAIT) {
        st->waiting = 1;
        http_parser_pause(p, 1); /* the body waits for the token's turn */
        return 0;
    }
    return admit_body(st);
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    kvd_http *st = p->data;
    st->body_total += n;
    if (st->body_total > st->body_limit)
        return refuse_early(st, KV_FRAME_TOO_LARGE, 0,
                            "request body exceeds the limit of %zu bytes (--max-frame-size)",
                            st->body_limit);
    size_t off = (size_t)((const uint8_t *)at - st->base);
    if (!st->copy_body && (!st->body.set || off == st->body.off + st->body.len)) {
        span_add(st, &st->body, at, n);
        return 0;
    }
    if (!st->copy_body) {
        /* A second chunk: from now on the body is reassembled. */
        st->copy_body = 1;
        st->body_copy.len = 0;
        if (kvd_http_put(&st->body_copy, st->base + st->body.off, st->body.len) != KV_OK)
            return refuse_early(st, KV_NO_MEMORY, 0, "server out of memory");
    }
    if (kvd_http_put(&st->body_copy, at, n) != KV_OK)
        return refuse_early(st, KV_NO_MEMORY, 0, "server out of memory");
    return 0;
}

static int on_message_complete(http_parser *p)
{
    kvd_http *st = p->data;
    st->complete = 1;
    st->keep_alive = http_should_keep_alive(p) != 0;
    http_parser_pause(p, 1); /* the next request is cut after this one runs */
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- input ------------------------------------------------------------------- */

/* A last error for a connection without HTTP state (out of memory). */
static void bare_error(kvd_conn *c)
{
    static const char text[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                               "Connection: close\r\n\r\n";
    c->fatal = 1;
    kvd_http_put(&c->out, text, sizeof text - 1);
}

static int http_fatal(kvd_conn *c, const uint8_t *partial, size_t have, int status,
                      const char *detail)
{
    (void)partial;
    (void)have;
    kvd_http *st = c->fe_state;
    c->fatal = 1;
    if (!st) {
        bare_error(c);
        return 0;
    }
    st->close_after = 1;
    kvd_reply r;
    kvd_http_reply_init(c, &r, 0);
    return kvd_cmd_refuse(c, -1, &r, status, detail);
}

/* Answers the error found while reading, then closes. */
static int early_fatal(kvd_conn *c, kvd_http *st)
{
    int status = st->early_status;
    if (status == KV_PROTOCOL || status == KV_FRAME_TOO_LARGE) {
        char what[224];
        snprintf(what, sizeof what, "HTTP request refused (%s), closing", kv_status_name(status));
        kvd_cmd_protocol_warn(c, what);
    }
    if (http_fatal(c, NULL, 0, status, st->early_msg) != 0)
        kvd_conn_close(c);
    return KVD_MSG_FATAL;
}

/* The AUTH throttle's wait is over: check the token, go on reading. */
static void on_turn(uv_timer_t *t)
{
    kvd_conn *c = t->data;
    if (c->closing || c->lingering || c->fatal)
        return;
    c->auth_wait = 0;
    kvd__conn_resume(c);
}

static int http_split(kvd_conn *c, const uint8_t *p, size_t len, size_t *msg_len)
{
    kvd_http *st = state_of(c);
    if (!st) {
        bare_error(c);
        return KVD_MSG_FATAL;
    }
    st->base = p;
    if (st->waiting) {
        st->waiting = 0;
        verify_token(st);
        if (admit_body(st) != 0)
            return early_fatal(c, st);
    }
    if (st->pos == 0)
        st->head_limit = head_limit(c);
    http_parser_pause(&st->parser, 0);
    size_t n = http_parser_execute(&st->parser, &settings, (const char *)p + st->pos,
                                   len - st->pos);
    st->pos += n;
    enum http_errno e = HTTP_PARSER_ERRNO(&st->parser);
    if (st->early_status)
        return early_fatal(c, st);
    if (e == HPE_PAUSED && st->complete) {
        *msg_len = st->pos;
        return KVD_MSG_READY;
    }
    if (e == HPE_PAUSED && st->waiting) {
        c->auth_wait = 1; /* conn.c stops processing and reading */
        c->auth_timer.data = c;
        uv_timer_start(&c->auth_timer, on_turn, st->wait_ms, 0);
        return KVD_MSG_MORE;
    }
    if (e != HPE_OK && e != HPE_PAUSED) {
        if (e == HPE_HEADER_OVERFLOW)
            refuse_early(st, KV_FRAME_TOO_LARGE, 431, "request head larger than %zu bytes",
                         st->head_limit);
        else
            refuse_early(st, KV_PROTOCOL, 0, "malformed HTTP request: %s",
                         http_errno_description(e));
        return early_fatal(c, st);
    }
    if (!st->headers_done && st->pos > st->head_limit) {
        refuse_early(st, KV_FRAME_TOO_LARGE, 431, "request head larger than %zu bytes",
                     st->head_limit);
        return early_fatal(c, st);
    }
    /* Chunk framing around a body within its limit. */
    if (st->headers_done && st->pos > st->head_limit + 2 * st->body_limit + 4096) {
        refuse_early(st, KV_FRAME_TOO_LARGE, 0,
                     "request larger than its body limit allows (%zu bytes)", st->body_limit);
        return early_fatal(c, st);
    }
    return KVD_MSG_MORE;
}

/* With a Content-Length, the whole request's size once its head is read
 * (checked against the limit by then), so it is read in one piece. */
static size_t http_want(const kvd_conn *c, const uint8_t *p, size_t len)
{
    (void)p;
    (void)len;
    const kvd_http *st = c->fe_state;
    if (!st || !st->body_ok || st->copy_body || (st->parser.flags & F_CHUNKED) ||
        st->parser.content_length == ULLONG_MAX)
        return 0;
    return st->pos + (size_t)st->parser.content_length;
}

static int http_run(kvd_conn *c, const uint8_t *msg, size_t len, uint64_t *clock)
{
    kvd_http *st = c->fe_state;
    st->base = msg;
    st->pos = 0; /* the next request starts after this one */
    kv_proto_arena_reset(&c->arena);
    if (!st->keep_alive)
        st->close_after = 1;
    kvd_reply r;
    kvd_http_reply_init(c, &r, 0);
    int rc = kvd_http_dispatch(c, st, len, &r, clock);
    /* Each request proves itself and says how it runs in a cluster:
     * nothing of one request's carries over to the next. */
    c->sess.authed = 0;
    c->sess.stale_reads = 0;
    c->sess.req_client = 0;
    int close_after = st->close_after;
    kvd_http_reply_reset(st);
    if (st->body_copy.cap > KEEP_BUF_MAX)
        kv_proto_buf_free(&st->body_copy);
    if (st->body_out.cap > KEEP_BUF_MAX)
        kv_proto_buf_free(&st->body_out);
    if (rc < 0)
        return -1;
    return rc > 0 || close_after ? 1 : 0;
}

const kvd_frontend kvd_fe_http = {
    .name = "http",
    .protocol = KVD_PROTOCOL_HTTP,
    .split = http_split,
    .run = http_run,
    .want = http_want,
    .reply_init = kvd_http_reply_init,
    .fatal = http_fatal,
    .prefetch = NULL,
    .release = http_release,
};
