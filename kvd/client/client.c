/*
 * client.c - kv_client's life cycle: options, connect (dial, HELLO, AUTH),
 * close, error messages, and the request/reply core every operation uses.
 *
 * Invariant: after any transport failure c->fd is -1 (kv__client_fail),
 * and calls answer KV_CLOSED until kv_client_connect() succeeds again.
 * Request ids increase from 1; a reply with another id than the one
 * expected is a protocol error (responses come in request order).
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "client_internal.h"

#define DEFAULT_HOST "127.0.0.1"
#define DEFAULT_NAME "libkvclient"

const char *kv_client_version(void)
{
    return KV_VERSION_STRING;
}

const char *kv_client_strerror(int status)
{
    switch (status) {
#define KV__CLIENT_STATUS_TEXT(name, code, text) \
    case code:                                   \
        return text;
        KV_STATUS_MAP(KV__CLIENT_STATUS_TEXT)
#undef KV__CLIENT_STATUS_TEXT
    default:
        return "unknown status";
    }
}

const char *kv_client_status_name(int status)
{
    switch (status) {
#define KV__CLIENT_STATUS_NAME(name, code, text) \
    case code:                                   \
        return #name;
        KV_STATUS_MAP(KV__CLIENT_STATUS_NAME)
#undef KV__CLIENT_STATUS_NAME
    default:
        return "UNKNOWN";
    }
}

int64_t kv__client_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void kv__client_start_call(kv_client *c)
{
    int t = c->opts.io_timeout_ms;
    c->deadline_ms = t > 0 ? kv__client_now_ms() + t : 0;
    c->err[0] = '\0';
    c->err_local = 0;
}

static void vset_error(kv_client *c, const char *fmt, va_list ap)
{
    c->err_local = 0;
    vsnprintf(c->err, sizeof c->err, fmt, ap);
}

int kv__client_error(kv_client *c, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset_error(c, fmt, ap);
    va_end(ap);
    return status;
}

int kv__client_fail(kv_client *c, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset_error(c, fmt, ap);
    va_end(ap);
    kv_client_disconnect(c);
    return status;
}

void *kv__client_memdup(const void *p, size_t n)
{
    void *d = malloc(n ? n : 1);
    if (d != NULL && n)
        memcpy(d, p, n);
    return d;
}

/* ---- options and life cycle ------------------------------------------ */

void kv_client_options_init(kv_client_options *o)
{
    memset(o, 0, sizeof *o);
    o->host = DEFAULT_HOST;
    o->port = KV_CLIENT_DEFAULT_PORT;
    o->connect_timeout_ms = 5000;
    o->io_timeout_ms = 0;
    o->max_frame = KV_CLIENT_DEFAULT_MAX_FRAME;
}

static char *dup_opt(const char *s, int *oom)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL)
        *oom = 1;
    return d;
}

static void free_opts(kv_client_options *o)
{
    free((char *)o->host);
    free((char *)o->unix_path);
    free((char *)o->password);
    free((char *)o->client_name);
}

int kv_client_new(const kv_client_options *opts, kv_client **out)
{
    kv_client_options d;
    kv_client_options_init(&d);
    if (opts == NULL)
        opts = &d;
    if (opts->unix_path != NULL &&
        (opts->unix_path[0] == '\0' ||
         strlen(opts->unix_path) >= sizeof(((struct sockaddr_un *)0)->sun_path)))
        return KV_INVALID_ARGUMENT;
    kv_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return KV_NO_MEMORY;
    int oom = 0;
    c->opts = *opts;
    c->opts.host = dup_opt(opts->host ? opts->host : DEFAULT_HOST, &oom);
    c->opts.unix_path = dup_opt(opts->unix_path, &oom);
    c->opts.password = dup_opt(opts->password, &oom);
    c->opts.client_name =
        dup_opt(opts->client_name ? opts->client_name : DEFAULT_NAME, &oom);
    if (oom) {
        free_opts(&c->opts);
        free(c);
        return KV_NO_MEMORY;
    }
    if (c->opts.port == 0)
        c->opts.port = KV_CLIENT_DEFAULT_PORT;
    if (c->opts.max_frame == 0)
        c->opts.max_frame = KV_CLIENT_DEFAULT_MAX_FRAME;
    c->fd = -1;
    c->next_id = 1;
    kv_proto_buf_init(&c->out);
    kv_proto_arena_init(&c->arena);
    *out = c;
    return KV_OK;
}

void kv_client_disconnect(kv_client *c)
{
    if (c == NULL)
        return;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->watching = 0; /* a watch ends with its connection */
    c->in_start = c->in_len = c->in_pending = 0;
    kv_proto_buf_reset(&c->out);
    c->proto_version = 0;
    c->server_name[0] = '\0';
    c->server_version[0] = '\0';
}

void kv_client_close(kv_client *c)
{
    if (c == NULL)
        return;
    kv_client_disconnect(c);
    free(c->in);
    kv_proto_buf_free(&c->out);
    kv_proto_arena_free(&c->arena);
    free_opts(&c->opts);
    free(c);
}

int kv_client_is_connected(const kv_client *c)
{
    return c != NULL && c->fd >= 0;
}

int kv_client_check(kv_client *c)
{
    if (c == NULL || c->fd < 0)
        return KV_CLOSED;
    struct pollfd p = {c->fd, POLLIN, 0};
    if (poll(&p, 1, 0) <= 0)
        return KV_OK; /* nothing arrived (or poll itself failed: let the
                         next call find out) */
    /* No request is outstanding, so any byte, the end of the stream or an
     * error means the server has given up on this connection: it only
     * speaks unasked to say why it closes (docs/protocol.md, section 6). */
    char b;
    ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return KV_OK;
    return kv__client_fail(c, KV_CLOSED, "the server closed the connection");
}

const char *kv_client_last_error(const kv_client *c)
{
    return c ? c->err : "";
}

int kv_client_last_error_local(const kv_client *c)
{
    return c != NULL && c->err[0] != '\0' && c->err_local;
}

int kv_client_protocol_version(const kv_client *c)
{
    return c->fd >= 0 ? c->proto_version : 0;
}

const char *kv_client_server_name(const kv_client *c)
{
    return c->server_name;
}

const char *kv_client_server_version(const kv_client *c)
{
    return c->server_version;
}

static void copy_name(char *dst, size_t cap, kv_key k)
{
    size_t n = k.len < cap - 1 ? k.len : cap - 1;
    if (n)
        memcpy(dst, k.data, n);
    dst[n] = '\0';
}

/* ---- request / reply core --------------------------------------------- */

int kv__client_read_reply(kv_client *c, uint64_t id, int op, unsigned flags,
                          kv_proto_response *resp)
{
    const uint8_t *body;
    size_t len;
    int rc = kv__client_recv_frame(c, &body, &len);
    if (rc != KV_OK)
        return rc;
    kv_proto_arena_reset(&c->arena);
    rc = kv_proto_response_decode_ex(body, len, op, flags, &c->arena, resp);
    if (rc == KV_NO_MEMORY)
        return kv__client_fail(c, rc, "out of memory decoding a reply");
    if (resp->id == 0 && resp->status != KV_OK && rc != KV_UNSUPPORTED) {
        /* connection-level error: the server closes after it */
        kv__client_fail(c, resp->status, "server: %.*s",
                        (int)resp->detail.len,
                        resp->detail.len ? (const char *)resp->detail.data
                                         : kv_client_strerror(resp->status));
        return resp->status;
    }
    if (rc != KV_OK)
        return kv__client_fail(c, KV_PROTOCOL, "bad reply from server: %s",
                               resp->error ? resp->error : "undecodable");
    if (resp->id != id)
        return kv__client_fail(c, KV_PROTOCOL,
                               "reply id %llu does not match request id %llu",
                               (unsigned long long)resp->id,
                               (unsigned long long)id);
    return KV_OK;
}

int kv__client_check_version(kv_client *c, const kv_proto_request *req)
{
    if ((req->op == KV_PROTO_WATCH || req->op == KV_PROTO_CANCEL) &&
        c->proto_version < KV_PROTO_WATCH_VERSION) {
        kv__client_error(c, KV_UNSUPPORTED,
                         "the server speaks protocol version %d; watches need version %d: a "
                         "newer kvd",
                         c->proto_version, KV_PROTO_WATCH_VERSION);
        c->err_local = 1;
        return KV_UNSUPPORTED;
    }
    if ((req->has_expiry || req->op == KV_PROTO_TTL || req->op == KV_PROTO_EXPIRE ||
         req->op == KV_PROTO_PERSIST) &&
        c->proto_version < KV_PROTO_EXPIRY_VERSION) {
        /* Not sent: the server would refuse it. */
        kv__client_error(c, KV_UNSUPPORTED,
                         "the server speaks protocol version %d; key expiry (TTL, EXPIRE, "
                         "PERSIST, a write's expiry) needs version %d: a newer kvd",
                         c->proto_version, KV_PROTO_EXPIRY_VERSION);
        c->err_local = 1;
        return KV_UNSUPPORTED;
    }
    if (req->op >= KV_PROTO_GET_AT && req->op <= KV_PROTO_COMPACT &&
        c->proto_version < KV_PROTO_HISTORY_VERSION) {
        kv__client_error(c, KV_UNSUPPORTED,
                         "the server speaks protocol version %d; history (reads at a revision, "
                         "HISTORY, ROLLBACK, COMPACT) needs version %d: a newer kvd",
                         c->proto_version, KV_PROTO_HISTORY_VERSION);
        c->err_local = 1;
        return KV_UNSUPPORTED;
    }
    return KV_OK;
}

static int call_once(kv_client *c, kv_proto_request *req, kv_proto_response *resp)
{
    if (c->fd < 0)
        return kv__client_error(c, KV_CLOSED, "not connected");
    if (c->watching) {
        kv__client_error(c, KV_INVALID_ARGUMENT,
                         "the connection is following a watch: close the watch first "
                         "(kv_client_watch_close) or use another client");
        c->err_local = 1;
        return KV_INVALID_ARGUMENT;
    }
    if (kv__client_check_version(c, req) != KV_OK)
        return KV_UNSUPPORTED;
    req->id = c->next_id++;
    kv_proto_buf_reset(&c->out);
    int rc = kv_proto_request_encode(&c->out, req);
    if (rc != KV_OK)
        return kv__client_error(c, rc, "cannot encode request: %s",
                                kv_client_strerror(rc));
    size_t size = c->out.len - KV_PROTO_HEADER_SIZE;
    if (size > c->opts.max_frame) {
        kv_proto_buf_reset(&c->out);
        kv__client_error(c, KV_FRAME_TOO_LARGE,
                         "request of %zu bytes is larger than this client's"
                         " limit of %zu bytes, so it was not sent (raise"
                         " kv_client_options.max_frame; the server has its"
                         " own limit, kvd --max-frame-size)",
                         size, c->opts.max_frame);
        c->err_local = 1;
        return KV_FRAME_TOO_LARGE;
    }
    if ((rc = kv__client_flush(c)) != KV_OK)
        return rc;
    unsigned flags = (req->op == KV_PROTO_SCAN || req->op == KV_PROTO_SCAN_AT) && req->keys_only
                         ? KV_PROTO_RESULT_KEYS_ONLY : 0;
    return kv__client_read_reply(c, req->id, req->op, flags, resp);
}

/* A cluster node that is not the leader answers NOT_LEADER, naming the
 * leader "reachable at HOST:PORT" when it knows where clients reach it
 * (docs/replication.md): the client reconnects there and sends the
 * request again (it was not run: NOT_LEADER is never an unknown outcome). */
#define FOLLOW_MAX_HOPS 3

/* The leader's address from a NOT_LEADER detail, or 0. */
static int leader_of(const kv_proto_response *resp, char *host, size_t cap, uint16_t *port)
{
    static const char mark[] = "reachable at ";
    char detail[256];
    size_t n = resp->detail.len < sizeof detail - 1 ? resp->detail.len : sizeof detail - 1;
    if (n)
        memcpy(detail, resp->detail.data, n);
    detail[n] = '\0';
    const char *at = strstr(detail, mark);
    if (!at)
        return 0;
    at += sizeof mark - 1;
    const char *colon = strrchr(at, ':');
    if (!colon || colon == at || (size_t)(colon - at) >= cap)
        return 0;
    char *end;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (p == 0 || p > 65535 || (*end && *end != ' ' && *end != ')'))
        return 0;
    memcpy(host, at, (size_t)(colon - at));
    host[colon - at] = '\0';
    *port = (uint16_t)p;
    return 1;
}

int kv__client_call(kv_client *c, kv_proto_request *req, kv_proto_response *resp)
{
    for (int hop = 0;; hop++) {
        int rc = call_once(c, req, resp);
        char host[200];
        uint16_t port;
        if (rc != KV_OK || resp->status != KV_NOT_LEADER || hop == FOLLOW_MAX_HOPS ||
            c->opts.unix_path || !leader_of(resp, host, sizeof host, &port))
            return rc;
        char *h = strdup(host);
        if (!h)
            return rc;
        free((char *)c->opts.host);
        c->opts.host = h;
        c->opts.port = port;
        if (kv_client_connect(c) != KV_OK)
            return c->fd < 0 ? KV_CONNECT : rc;
    }
}

int kv__client_server_status(kv_client *c, const kv_proto_response *resp)
{
    if (resp->detail.len)
        kv__client_error(c, resp->status, "server: %.*s",
                         (int)resp->detail.len,
                         (const char *)resp->detail.data);
    else
        kv__client_error(c, resp->status, "%s",
                         kv_client_strerror(resp->status));
    return resp->status;
}

/* ---- connect ------------------------------------------------------------ */

int kv_client_auth(kv_client *c, const char *password)
{
    kv_proto_request q = {0};
    kv_proto_response r;
    kv__client_start_call(c);
    q.op = KV_PROTO_AUTH;
    q.secret.data = password ? password : "";
    q.secret.len = password ? strlen(password) : 0;
    int rc = kv__client_call(c, &q, &r);
    if (rc != KV_OK)
        return rc;
    return r.status == KV_OK ? KV_OK : kv__client_server_status(c, &r);
}

int kv_client_connect(kv_client *c)
{
    kv_client_disconnect(c);
    c->err[0] = '\0';
    int rc = kv__client_dial(c);
    if (rc != KV_OK)
        return rc;

    kv_proto_request q = {0};
    kv_proto_response r;
    kv__client_start_call(c);
    q.op = KV_PROTO_HELLO;
    q.min_version = KV_PROTO_MIN_VERSION;
    q.max_version = KV_PROTO_MAX_VERSION;
    q.client_name.data = c->opts.client_name;
    q.client_name.len = strlen(c->opts.client_name);
    rc = kv__client_call(c, &q, &r);
    if (rc == KV_OK && r.status != KV_OK)
        rc = kv__client_server_status(c, &r);
    if (rc == KV_OK && (r.proto_version < KV_PROTO_MIN_VERSION ||
                        r.proto_version > KV_PROTO_MAX_VERSION))
        rc = kv__client_error(c, KV_UNSUPPORTED,
                              "server chose protocol version %llu",
                              (unsigned long long)r.proto_version);
    if (rc != KV_OK) {
        char msg[KV__CLIENT_ERRLEN], peer[300];
        snprintf(msg, sizeof msg, "%s", c->err);
        kv__client_peer_name(c, peer, sizeof peer);
        kv__client_fail(c, rc, "handshake with %s failed: %s", peer, msg);
        return rc;
    }
    c->proto_version = (int)r.proto_version;
    copy_name(c->server_name, sizeof c->server_name, r.server_name);
    copy_name(c->server_version, sizeof c->server_version, r.server_version);

    if (c->opts.password != NULL) {
        rc = kv_client_auth(c, c->opts.password);
        if (rc != KV_OK) {
            char msg[KV__CLIENT_ERRLEN];
            snprintf(msg, sizeof msg, "%s", c->err);
            kv__client_fail(c, rc, "authentication failed: %s", msg);
            return rc;
        }
    }
    c->err[0] = '\0';
    return KV_OK;
}

int kv_client_open(const kv_client_options *opts, kv_client **out)
{
    kv_client *c;
    int rc = kv_client_new(opts, &c);
    if (rc != KV_OK)
        return rc;
    *out = c;
    return kv_client_connect(c);
}
