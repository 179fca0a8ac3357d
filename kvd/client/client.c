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
#include <sys/random.h>
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
    c->session = 0;
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
    kv__client_endpoints_free(c);
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

/* reuse_id: send req with the id it has (a retry), else a new one. */
static int call_once(kv_client *c, kv_proto_request *req, kv_proto_response *resp,
                     int reuse_id)
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
    if (!reuse_id)
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

/* The leader's address from a NOT_LEADER detail, or 0. */
int kv__client_leader_of(const kv_proto_response *resp, char *host, size_t cap, uint16_t *port)
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

int kv__client_is_write(int op)
{
    switch (op) {
    case KV_PROTO_SET:
    case KV_PROTO_MSET:
    case KV_PROTO_DEL:
    case KV_PROTO_TXN:
    case KV_PROTO_EXPIRE:
    case KV_PROTO_PERSIST:
    case KV_PROTO_ROLLBACK:
    case KV_PROTO_COMPACT:
        return 1;
    default:
        return 0;
    }
}

int kv__client_move_to(kv_client *c, const char *host, uint16_t port)
{
    char *h = strdup(host);
    if (!h)
        return KV_NO_MEMORY;
    free((char *)c->opts.host);
    c->opts.host = h;
    c->opts.port = port;
    return kv_client_connect(c);
}

/* Sends req, following the leader named by NOT_LEADER (a new id unless
 * reuse_id: the request was not run, and a retried write keeps its id). */
static int call_following(kv_client *c, kv_proto_request *req, kv_proto_response *resp,
                          int reuse_id)
{
    for (int hop = 0;; hop++) {
        int rc = call_once(c, req, resp, reuse_id || hop > 0);
        char host[200];
        uint16_t port;
        if (rc != KV_OK || resp->status != KV_NOT_LEADER || hop == KV__CLIENT_FOLLOW_MAX_HOPS ||
            c->opts.unix_path || !kv__client_leader_of(resp, host, sizeof host, &port))
            return rc;
        int had_session = c->session;
        int moved = kv__client_move_to(c, host, port);
        if (moved == KV_NO_MEMORY)
            return rc;
        if (moved != KV_OK)
            return c->fd < 0 ? KV_CONNECT : rc;
        if (had_session && !c->session && kv__client_is_write(req->op))
            return rc; /* the leader would get the write without its id */
    }
}

/* The pause before retry number n (from 0): 50 ms doubling, at most 1 s,
 * so that an election (a second or two) can end meanwhile. */
void kv__client_retry_pause(int n)
{
    long ms = n < 5 ? 50L << n : 1000;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* A write that may have been run but was not answered (UNKNOWN_OUTCOME,
 * a lost connection, a timeout), or refused while no leader is known, is
 * sent again with the same request id - on the same connection, or a new
 * one to the same address, which follows the leader: the cluster applies
 * a request id once (docs/replication.md, "Request ids"), so the retry
 * gets the first outcome if it was applied. Only while the connection
 * has a session (c->session): without one a retry could apply twice. */
int kv__client_call(kv_client *c, kv_proto_request *req, kv_proto_response *resp)
{
    int had_session = c->session; /* the write carries a request id */
    int rc = call_following(c, req, resp, 0);
    if (!had_session || !kv__client_is_write(req->op))
        return rc;
    for (int n = 0; n < c->retries; n++) {
        int lost = rc == KV_CLOSED || rc == KV_TIMEOUT || rc == KV_IO || rc == KV_CONNECT;
        int again = rc == KV_OK && (resp->status == KV_UNKNOWN_OUTCOME ||
                                    resp->status == KV_NOT_LEADER);
        if (!lost && !again)
            break;
        kv__client_retry_pause(n);
        kv__client_start_call(c);
        if (c->fd < 0 && (rc = kv_client_connect(c)) != KV_OK) {
            rc = rc == KV_TIMEOUT || rc == KV_CLOSED || rc == KV_IO ? rc : KV_CONNECT;
            continue;
        }
        if (!c->session)
            break; /* without a session the id would not go with it */
        c->retried++;
        rc = call_following(c, req, resp, 1);
    }
    return rc;
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

static int session_setup(kv_client *c);

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

/* Connects to the current address (opts.host/port or the Unix socket). */
static int connect_here(kv_client *c)
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
    if ((rc = session_setup(c)) != KV_OK)
        return rc;
    c->err[0] = '\0';
    return KV_OK;
}

int kv_client_connect(kv_client *c)
{
    int rc = kv__client_connect_any(c, connect_here);
    return rc == KV_OK ? kv__client_auto_sync(c) : rc;
}

/* Sends a version 7 request of op with arg; KV_OK with the server's
 * status in *status, or a transport failure. */
static int session_request(kv_client *c, int op, uint64_t arg, int *status)
{
    kv_proto_request q = {.op = op};
    kv_proto_response r;
    if (op == KV_PROTO_SESSION)
        q.client_id = arg;
    else
        q.consistency = arg;
    kv__client_start_call(c);
    int rc = call_once(c, &q, &r, 0);
    if (rc == KV_OK)
        *status = r.status;
    if (rc == KV_OK && r.status != KV_OK)
        kv__client_server_status(c, &r);
    return rc;
}

/* After HELLO (and AUTH): the connection's SESSION, when retries are on,
 * and its CONSISTENCY, when not the default. A server that cannot keep
 * request ids (not a cluster node: UNSUPPORTED) leaves the connection
 * without a session: its writes are then not retried. */
static int session_setup(kv_client *c)
{
    int status;
    if (c->proto_version < KV_PROTO_SESSION_VERSION)
        return KV_OK;
    if (c->retries > 0 && c->client_id) {
        int rc = session_request(c, KV_PROTO_SESSION, c->client_id, &status);
        if (rc != KV_OK)
            return rc;
        c->session = status == KV_OK;
    }
    if (c->consistency != KV_CLIENT_LINEARIZABLE) {
        int rc = session_request(c, KV_PROTO_CONSISTENCY, (uint64_t)c->consistency, &status);
        if (rc != KV_OK)
            return rc;
    }
    return KV_OK;
}

/* 64 random bits, never 0: the client id of this client's requests. */
static uint64_t random_id(const kv_client *c)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        v = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ ((uint64_t)getpid() << 48) ^
            (uint64_t)(uintptr_t)c;
        v *= 0x9e3779b97f4a7c15ull;
    }
    return v ? v : 1;
}

int kv_client_set_retries(kv_client *c, int retries)
{
    if (retries < 0 || retries > KV_CLIENT_MAX_RETRIES)
        return KV_INVALID_ARGUMENT;
    c->retries = retries;
    if (retries && !c->client_id)
        c->client_id = random_id(c);
    if (c->fd < 0 || c->watching)
        return KV_OK; /* at the next connect */
    if (c->proto_version < KV_PROTO_SESSION_VERSION) {
        c->session = 0;
        return retries ? KV_UNSUPPORTED : KV_OK;
    }
    int status = KV_OK;
    int rc = session_request(c, KV_PROTO_SESSION, retries ? c->client_id : 0, &status);
    if (rc != KV_OK)
        return rc;
    c->session = retries && status == KV_OK;
    return retries ? status : KV_OK;
}

int kv_client_set_consistency(kv_client *c, int level)
{
    if (level != KV_CLIENT_LINEARIZABLE && level != KV_CLIENT_SERIALIZABLE)
        return KV_INVALID_ARGUMENT;
    if (c->fd >= 0 && !c->watching && c->proto_version < KV_PROTO_SESSION_VERSION &&
        level != KV_CLIENT_LINEARIZABLE) {
        kv__client_error(c, KV_UNSUPPORTED,
                         "the server speaks protocol version %d; serializable reads need "
                         "version %d: a newer kvd",
                         c->proto_version, KV_PROTO_SESSION_VERSION);
        c->err_local = 1;
        return KV_UNSUPPORTED;
    }
    c->consistency = level;
    if (c->fd < 0 || c->watching || c->proto_version < KV_PROTO_SESSION_VERSION)
        return KV_OK;
    int status = KV_OK;
    int rc = session_request(c, KV_PROTO_CONSISTENCY, (uint64_t)level, &status);
    return rc != KV_OK ? rc : status;
}

unsigned kv_client_retried(const kv_client *c)
{
    return c->retried;
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
