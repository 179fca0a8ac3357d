/*
 * http_route.c - what an HTTP request asks for, as a command: the method
 * and path choose the endpoint (docs/http.md), the path's key, the query,
 * If-Match / If-None-Match and the JSON body (http_json.c) fill one
 * kvd_cmd - GET (with the key's expiry), SET (plain, CAS, NX, XX, with an
 * expiry), DEL, a one-shot TXN for a
 * conditional delete, SCAN, TXN, MSET, MGET, and the history's GET_AT,
 * SCAN_AT, MGET_AT (a rev), HISTORY, ROLLBACK, COMPACT - executed through the
 * command layer, so statistics, limits, replication and the durability
 * wait are those of every protocol. ?consistency= and the request-id
 * headers set the session's cluster settings for the one request.
 * /metrics and /healthz are answered here. The reply's shape goes with
 * the reply (r->u.http).
 */
#include <stdio.h>
#include <string.h>

#include "conn.h"
#include "http.h"
#include "http_url.h"

/* Methods per route, as an Allow header lists them. */
static const char *allowed(int route)
{
    switch (route) {
    case KVD_HTTP_KEY: return "GET, HEAD, PUT, DELETE";
    case KVD_HTTP_TXN:
    case KVD_HTTP_MSET:
    case KVD_HTTP_MGET:
    case KVD_HTTP_ROLLBACK:
    case KVD_HTTP_COMPACT: return "POST";
    default: return "GET, HEAD";
    }
}

static int method_ok(int route, int m)
{
    switch (route) {
    case KVD_HTTP_KEY:
        return m == HTTP_GET || m == HTTP_HEAD || m == HTTP_PUT || m == HTTP_DELETE;
    case KVD_HTTP_TXN:
    case KVD_HTTP_MSET:
    case KVD_HTTP_MGET:
    case KVD_HTTP_ROLLBACK:
    case KVD_HTTP_COMPACT: return m == HTTP_POST;
    default: return m == HTTP_GET || m == HTTP_HEAD;
    }
}

static int refuse(kvd_conn *c, kvd_reply *r, int kind, int status, const char *msg,
                  uint64_t *clock)
{
    int rc = kvd_cmd_refuse(c, kind, r, status, msg);
    *clock = uv_hrtime();
    return rc;
}

/* The decoded key of /v1/keys/{key}, in the arena. */
static int path_key(kvd_conn *c, kvd_http *st, kv_key *key)
{
    char *k = kv_proto_arena_alloc(&c->arena, st->path_key.len + 1);
    if (!k)
        return KV_NO_MEMORY;
    long n = kvd_http_pct_decode(kvd_http_at(st, &st->path_key), st->path_key.len, k, 0);
    if (n < 0)
        return KV_INVALID_ARGUMENT;
    *key = (kv_key){k, (size_t)n};
    return KV_OK;
}

/* If-Match / If-None-Match of a PUT or DELETE: a version ("5", with or
 * without quotes) or "*". Returns 0, or -1 (malformed). */
static int precondition(const kvd_http *st, const kvd_http_span *h, int *any, uint64_t *v)
{
    const char *s = kvd_http_at(st, h);
    size_t n = h->len;
    *any = n == 1 && s[0] == '*';
    if (*any)
        return 0;
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        s++;
        n -= 2;
    }
    return kvd_http_parse_u64(s, n, v);
}

/* PUT's expiry from the query: ttl=DURATION (30s, 1500ms, 5m, 2h; a bare
 * number is seconds), expires_at=UNIX_MS, keep_ttl (true). Returns NULL,
 * or what is wrong. */
static const char *put_expiry(const kvd_http *st, kvd_cmd *cmd)
{
    const char *q = st->query.set ? kvd_http_at(st, &st->query) : "";
    size_t qn = st->query.set ? st->query.len : 0;
    const char *v;
    size_t vn;
    int given = 0;
    if (kvd_http_query_get(q, qn, "ttl", &v, &vn)) {
        given++;
        cmd->exp_mode = KVD_EXP_IN;
        if (kvd_http_parse_duration(v, vn, KVD_EXP_MAX, &cmd->exp) != 0)
            return "ttl must be a duration >= 1 ms: a number with a unit ms, s, m or h "
                   "(ttl=30s, ttl=1500ms; a bare number is seconds)";
    }
    if (kvd_http_query_get(q, qn, "expires_at", &v, &vn)) {
        given++;
        cmd->exp_mode = KVD_EXP_AT;
        if (kvd_http_parse_u64(v, vn, &cmd->exp) != 0 || cmd->exp == 0 || cmd->exp > KVD_EXP_MAX)
            return "expires_at must be a Unix time in milliseconds (1..2^52)";
    }
    if (kvd_http_query_get(q, qn, "keep_ttl", &v, &vn)) {
        if (vn == 0 || kvd_http_eq_ci(v, vn, "true") || kvd_http_eq_ci(v, vn, "1")) {
            given++;
            cmd->exp_mode = KVD_EXP_KEEP;
        } else if (!kvd_http_eq_ci(v, vn, "false") && !kvd_http_eq_ci(v, vn, "0")) {
            return "keep_ttl must be true or false";
        }
    }
    if (given > 1)
        return "give one of ttl, expires_at and keep_ttl";
    return NULL;
}

/* A revision from the query's name=N: 0 and *rev when absent or valid
 * (>= 1), -1 when malformed. */
static int query_rev(const kvd_http *st, const char *name, int *given, uint64_t *rev)
{
    const char *q = st->query.set ? kvd_http_at(st, &st->query) : "";
    size_t qn = st->query.set ? st->query.len : 0;
    const char *v;
    size_t vn;
    *given = kvd_http_query_get(q, qn, name, &v, &vn);
    if (!*given)
        return 0;
    return kvd_http_parse_u64(v, vn, rev) == 0 && *rev > 0 ? 0 : -1;
}

static int run_key(kvd_conn *c, kvd_http *st, kvd_cmd *cmd, kvd_reply *r, uint64_t *clock)
{
    int kind = st->method == HTTP_PUT ? KVD_CMD_SET
               : st->method == HTTP_DELETE ? KVD_CMD_DEL : KVD_CMD_GET;
    int rc = path_key(c, st, &cmd->key);
    if (rc != KV_OK)
        return refuse(c, r, kind, rc, rc == KV_NO_MEMORY ? "server out of memory"
                                      : "bad percent-encoding in the key", clock);
    int any = 0;
    uint64_t version = 0;
    if (st->if_match.set && st->if_none_match.set)
        return refuse(c, r, kind, KV_INVALID_ARGUMENT,
                      "give If-Match or If-None-Match, not both", clock);
    if ((st->if_match.set && precondition(st, &st->if_match, &any, &version) != 0) ||
        (st->if_none_match.set && !kvd_http_eq_ci(kvd_http_at(st, &st->if_none_match),
                                         st->if_none_match.len, "*")))
        return refuse(c, r, kind, KV_INVALID_ARGUMENT,
                      "If-Match takes a version (as in X-Kvd-Version or the ETag) or *; "
                      "If-None-Match takes *",
                      clock);
    int at = 0;
    if (query_rev(st, "rev", &at, &cmd->rev) != 0)
        return refuse(c, r, KVD_CMD_GET_AT, KV_INVALID_ARGUMENT, "rev must be a revision >= 1",
                      clock);
    if (at && kind != KVD_CMD_GET)
        return refuse(c, r, kind, KV_INVALID_ARGUMENT,
                      "rev reads the key as it was at a revision: GET or HEAD only (to restore "
                      "it, POST /v1/rollback)",
                      clock);
    if (kind == KVD_CMD_GET && at) {
        cmd->kind = KVD_CMD_GET_AT; /* the value, its revision in X-Kvd-Version */
        r->u.http.mode = KVD_HTTP_OUT_RAW;
    } else if (kind == KVD_CMD_GET) {
        cmd->kind = KVD_CMD_GET;
        r->u.http.mode = KVD_HTTP_OUT_RAW;
        r->want_expiry = 1; /* X-Kvd-Expires-At, X-Kvd-Ttl-Ms */
    } else if (kind == KVD_CMD_SET) {
        const char *bad = put_expiry(st, cmd);
        if (bad)
            return refuse(c, r, kind, KV_INVALID_ARGUMENT, bad, clock);
        cmd->kind = KVD_CMD_SET;
        cmd->value = st->copy_body ? (kv_key){st->body_copy.data, st->body_copy.len}
                     : st->body.set ? (kv_key){st->base + st->body.off, st->body.len}
                                    : (kv_key){"", 0};
        if (st->if_none_match.set)
            cmd->flags = KVD_SET_NX;
        else if (st->if_match.set && any)
            cmd->flags = KVD_SET_XX;
        else if (st->if_match.set) {
            cmd->has_expected = 1;
            cmd->expected = version;
        }
        r->u.http.has_etag = 1;
    } else if (st->if_match.set || st->if_none_match.set) {
        /* A conditional delete: a one-shot transaction. */
        kv_compare *cmp = kv_proto_arena_alloc(&c->arena, sizeof *cmp);
        kv_op *op = kv_proto_arena_alloc(&c->arena, sizeof *op);
        if (!cmp || !op)
            return refuse(c, r, kind, KV_NO_MEMORY, "server out of memory", clock);
        *cmp = (kv_compare){.kind = st->if_none_match.set ? KV_CMP_ABSENT
                                    : any ? KV_CMP_EXISTS : KV_CMP_VERSION_EQ,
                            .key = cmd->key.data, .klen = cmd->key.len, .version = version};
        *op = (kv_op){.kind = KV_OP_DELETE, .key = cmd->key.data, .klen = cmd->key.len};
        cmd->kind = KVD_CMD_TXN;
        cmd->cmps = cmp;
        cmd->ncmps = 1;
        cmd->then_ops = op;
        cmd->nthen = 1;
        r->u.http.cas_delete = 1;
    } else {
        cmd->kind = KVD_CMD_DEL;
        cmd->keys = &cmd->key;
        cmd->nkeys = 1;
    }
    r->u.http.kind = cmd->kind;
    return kvd_cmd_execute(c, cmd, r, clock);
}

/* GET /v1/keys?prefix=&cursor=&limit=&keys_only= */
static int run_list(kvd_conn *c, kvd_http *st, kvd_cmd *cmd, kvd_reply *r, uint64_t *clock)
{
    const char *q = st->query.set ? kvd_http_at(st, &st->query) : "";
    size_t qn = st->query.set ? st->query.len : 0;
    const char *v;
    size_t vn;
    cmd->kind = KVD_CMD_SCAN;
    if (kvd_http_query_get(q, qn, "prefix", &v, &vn)) {
        char *k = kv_proto_arena_alloc(&c->arena, vn + 1);
        long n = k ? kvd_http_pct_decode(v, vn, k, 1) : -1;
        if (n < 0)
            return refuse(c, r, KVD_CMD_SCAN, k ? KV_INVALID_ARGUMENT : KV_NO_MEMORY,
                          k ? "bad percent-encoding in prefix" : "server out of memory", clock);
        cmd->key = (kv_key){k, (size_t)n};
    }
    if (kvd_http_query_get(q, qn, "cursor", &v, &vn) && vn > 0 &&
        kvd_http_parse_u64(v, vn, &cmd->a) != 0)
        return refuse(c, r, KVD_CMD_SCAN, KV_INVALID_ARGUMENT,
                      "cursor must be a number from a previous page's \"cursor\"", clock);
    if (kvd_http_query_get(q, qn, "limit", &v, &vn) && vn > 0 &&
        (kvd_http_parse_u64(v, vn, &cmd->limit) != 0 || cmd->limit == 0))
        return refuse(c, r, KVD_CMD_SCAN, KV_INVALID_ARGUMENT, "limit must be a number >= 1",
                      clock);
    if (kvd_http_query_get(q, qn, "keys_only", &v, &vn)) {
        if (vn == 0 || kvd_http_eq_ci(v, vn, "true") || kvd_http_eq_ci(v, vn, "1"))
            cmd->flags = 1u;
        else if (!kvd_http_eq_ci(v, vn, "false") && !kvd_http_eq_ci(v, vn, "0"))
            return refuse(c, r, KVD_CMD_SCAN, KV_INVALID_ARGUMENT,
                          "keys_only must be true or false", clock);
    }
    int at = 0;
    if (query_rev(st, "rev", &at, &cmd->rev) != 0)
        return refuse(c, r, KVD_CMD_SCAN_AT, KV_INVALID_ARGUMENT, "rev must be a revision >= 1",
                      clock);
    if (at)
        cmd->kind = KVD_CMD_SCAN_AT;
    r->u.http.kind = cmd->kind;
    return kvd_cmd_execute(c, cmd, r, clock);
}

/* GET /v1/history/{key}?min_rev=&max_rev=&limit= */
static int run_history(kvd_conn *c, kvd_http *st, kvd_cmd *cmd, kvd_reply *r, uint64_t *clock)
{
    int rc = path_key(c, st, &cmd->key);
    if (rc != KV_OK)
        return refuse(c, r, KVD_CMD_HISTORY, rc, rc == KV_NO_MEMORY ? "server out of memory"
                                                 : "bad percent-encoding in the key", clock);
    const char *q = st->query.set ? kvd_http_at(st, &st->query) : "";
    size_t qn = st->query.set ? st->query.len : 0;
    static const char *const names[] = {"min_rev", "max_rev", "limit"};
    uint64_t *fields[] = {&cmd->min_rev, &cmd->rev, &cmd->limit};
    for (int i = 0; i < 3; i++) {
        const char *v;
        size_t vn;
        if (kvd_http_query_get(q, qn, names[i], &v, &vn) && vn > 0 &&
            kvd_http_parse_u64(v, vn, fields[i]) != 0) {
            char msg[64];
            snprintf(msg, sizeof msg, "%s must be a number >= 0", names[i]);
            return refuse(c, r, KVD_CMD_HISTORY, KV_INVALID_ARGUMENT, msg, clock);
        }
    }
    cmd->kind = KVD_CMD_HISTORY;
    r->u.http.kind = cmd->kind;
    return kvd_cmd_execute(c, cmd, r, clock);
}

/* POST /v1/txn, /v1/mset, /v1/mget, /v1/rollback, /v1/compact: a JSON body. */
static int run_json(kvd_conn *c, kvd_http *st, kvd_cmd *cmd, kvd_reply *r, uint64_t *clock)
{
    int kind = st->route == KVD_HTTP_TXN ? KVD_CMD_TXN
               : st->route == KVD_HTTP_MSET ? KVD_CMD_MSET
               : st->route == KVD_HTTP_ROLLBACK ? KVD_CMD_ROLLBACK
               : st->route == KVD_HTTP_COMPACT ? KVD_CMD_COMPACT : KVD_CMD_MGET;
    const void *body = st->copy_body ? (const void *)st->body_copy.data
                                     : (const void *)(st->base + st->body.off);
    char err[256];
    int rc = kvd_http_json_request(st->route, body, st->body_total,
                                   c->w->server->cfg->max_frame_size, &c->arena, cmd, err,
                                   sizeof err);
    if (rc != KV_OK)
        return refuse(c, r, kind, rc, err, clock);
    if (kind == KVD_CMD_MSET) { /* one expiry for all the pairs */
        const char *bad = put_expiry(st, cmd);
        if (!bad && cmd->exp_mode == KVD_EXP_KEEP)
            bad = "keep_ttl is for PUT /v1/keys/{key}; /v1/mset takes ttl or expires_at";
        if (bad)
            return refuse(c, r, kind, KV_INVALID_ARGUMENT, bad, clock);
    }
    r->u.http.kind = cmd->kind;
    return kvd_cmd_execute(c, cmd, r, clock);
}

/* Whether the request is a write (a command of KVD_CF_WRITE). */
static int route_writes(const kvd_http *st)
{
    switch (st->route) {
    case KVD_HTTP_KEY: return st->method == HTTP_PUT || st->method == HTTP_DELETE;
    case KVD_HTTP_TXN:
    case KVD_HTTP_MSET:
    case KVD_HTTP_ROLLBACK:
    case KVD_HTTP_COMPACT: return 1;
    default: return 0;
    }
}

/* A header's decimal number (blanks around it allowed). Returns 0, or -1. */
static int header_u64(const kvd_http *st, const kvd_http_span *h, uint64_t *v)
{
    const char *s = kvd_http_at(st, h);
    size_t n = h->len;
    while (n > 0 && (s[0] == ' ' || s[0] == '\t')) {
        s++;
        n--;
    }
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    return kvd_http_parse_u64(s, n, v);
}

/* How this request runs in a cluster: ?consistency=serializable (a read
 * answered from this node's store, possibly stale) and Kvd-Client-Id /
 * Kvd-Request-Id (a write's request id, applied once: repl/sessions.h).
 * They are the session's settings of the other protocols (CONSISTENCY,
 * SESSION), set here for this one request: http_run clears them after
 * it. Returns NULL, or what is wrong (*status: the error's status). */
static const char *cluster_options(kvd_conn *c, const kvd_http *st, kvd_cmd *cmd, int *status)
{
    const char *q = st->query.set ? kvd_http_at(st, &st->query) : "";
    size_t qn = st->query.set ? st->query.len : 0;
    const char *v;
    size_t vn;
    *status = KV_INVALID_ARGUMENT;
    if (kvd_http_query_get(q, qn, "consistency", &v, &vn)) {
        if (kvd_http_eq_ci(v, vn, "serializable")) {
            if (route_writes(st))
                return "consistency=serializable is for reads: a write is always linearizable";
            c->sess.stale_reads = 1;
        } else if (!kvd_http_eq_ci(v, vn, "linearizable")) {
            return "consistency must be linearizable (the default) or serializable";
        }
    }
    if (!st->client_id.set && !st->request_id.set)
        return NULL;
    if (!st->client_id.set || !st->request_id.set)
        return "give both Kvd-Client-Id and Kvd-Request-Id, or neither";
    uint64_t client, seq;
    if (header_u64(st, &st->client_id, &client) != 0 || client == 0)
        return "Kvd-Client-Id must be a decimal number from 1 to 2^64-1 (chosen at random, "
               "once per client)";
    if (header_u64(st, &st->request_id, &seq) != 0)
        return "Kvd-Request-Id must be a decimal number from 0 to 2^64-1 (increasing with "
               "each write of the client)";
    if (!c->w->server->repl) {
        *status = KV_UNSUPPORTED;
        return KVD_IDS_NEED_CLUSTER;
    }
    c->sess.req_client = client; /* only writes use them (a read's are ignored) */
    cmd->id = seq;
    return NULL;
}

static int run_metrics(kvd_conn *c, kvd_http *st, kvd_reply *r, uint64_t *clock)
{
    int rc = kvd_http_metrics(c->w->server, &st->body_out);
    if (rc != KV_OK)
        return refuse(c, r, KVD_CMD_METRICS, rc, "cannot gather the metrics", clock);
    r->u.http.mode = KVD_HTTP_OUT_TEXT;
    r->u.http.ctype = "text/plain; version=0.0.4; charset=utf-8";
    if (r->ops->finish(r) != KV_OK)
        return -1;
    /* Counted as the METRICS command, as the other protocols' scrapes. */
    kvd_stats *s = &c->w->stats;
    kvd_stat_add(&s->requests[KVD_CMD_METRICS], 1);
    uint64_t now = uv_hrtime();
    kvd_stats_record(s, KVD_CMD_METRICS, now - *clock);
    *clock = now;
    return 0;
}

int kvd_http_dispatch(kvd_conn *c, kvd_http *st, size_t len, kvd_reply *r, uint64_t *clock)
{
    if (st->route == KVD_HTTP_NONE)
        return refuse(c, r, -1, KV_UNSUPPORTED,
                      "no such endpoint (kvd serves /v1/keys, /v1/txn, /v1/mset, /v1/mget, "
                      "/v1/history, /v1/rollback, /v1/compact, /metrics and /healthz: see "
                      "docs/http.md)",
                      clock);
    if (!method_ok(st->route, st->method)) {
        char msg[96];
        snprintf(msg, sizeof msg, "method %s is not allowed here (allowed: %s)",
                 http_method_str((enum http_method)st->method), allowed(st->route));
        r->u.http.code = 405;
        r->u.http.allow = allowed(st->route);
        return refuse(c, r, -1, KV_UNSUPPORTED, msg, clock);
    }
    if (st->route == KVD_HTTP_HEALTH) {
        static const char ok[] = "{\"health\":\"true\"}\n";
        r->u.http.mode = KVD_HTTP_OUT_TEXT;
        r->u.http.ctype = "application/json";
        *clock = uv_hrtime();
        if (kvd_http_put(&st->body_out, ok, sizeof ok - 1) != KV_OK ||
            r->ops->finish(r) != KV_OK)
            return -1;
        return 0;
    }
    if (st->auth == KVD_HTTP_AUTH_MISSING)
        return refuse(c, r, -1, KV_AUTH_REQUIRED,
                      "authenticate with Authorization: Bearer <password>", clock);
    if (st->auth != KVD_HTTP_AUTH_OK)
        return refuse(c, r, -1, KV_AUTH_FAILED, "wrong password", clock);
    c->sess.authed = 1; /* for this request (the command layer checks it) */
    if (st->route == KVD_HTTP_METRICS)
        return run_metrics(c, st, r, clock);
    kvd_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.size = len;
    int status;
    const char *bad = cluster_options(c, st, &cmd, &status);
    if (bad) {
        r->u.http.code = 400; /* UNSUPPORTED would be 404: the path exists */
        return refuse(c, r, -1, status, bad, clock);
    }
    int rc;
    switch (st->route) {
    case KVD_HTTP_KEY: rc = run_key(c, st, &cmd, r, clock); break;
    case KVD_HTTP_KEYS: rc = run_list(c, st, &cmd, r, clock); break;
    case KVD_HTTP_HISTORY: rc = run_history(c, st, &cmd, r, clock); break;
    default: rc = run_json(c, st, &cmd, r, clock); break;
    }
    return rc;
}

