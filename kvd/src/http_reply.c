/*
 * http_reply.c - the reply interface (cmd.h) for HTTP: a command's
 * answer becomes one HTTP response in c->out.
 *
 * A value read by GET /v1/keys/{key} is written at once, raw, behind its
 * head (its length and version are known when the store hands it over).
 * Any other result is first collected as a JSON tree (jansson) from the
 * structural calls, then shaped for its endpoint when the reply finishes
 * (a TXN's [succeeded, revision, results] becomes {"succeeded", ...}),
 * because a head needs the body's length. A SCAN page is written as JSON
 * text directly, so its size can be held under the response limit as it
 * grows. Bytes are base64 and 64-bit numbers decimal strings, as etcd's
 * JSON gateway renders them.
 *
 * Errors: {"error":{"status":"NOT_FOUND","code":1,"message":"..."}} with
 * the HTTP status of kvd_http_code.
 *
 * What the answer looks like (raw or JSON, the command's shape, HEAD,
 * Connection: close, the ETag...) travels in the reply (r->u.http), so a
 * reply the cluster layer completes later, after the connection has
 * moved on to other requests, renders as it would have at once; the
 * buffers it collects into are the connection's (kvd_http), since a
 * reply is always rendered from first call to finish in one go.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conn.h"
#include "http.h"

enum { NOTHING = 0, STARTED = 1, DONE = 2, PAGE = 3 };

static kvd_http *S(kvd_reply *r)
{
    return r->u.http.state;
}

/* ---- the response ----------------------------------------------------------- */

int kvd_http_code(int status)
{
    switch (status) {
    case KV_OK: return 200;
    case KV_NOT_FOUND: return 404;
    case KV_VERSION_MISMATCH: return 412;
    case KV_CONFLICT: return 409;
    case KV_INVALID_ARGUMENT:
    case KV_KEY_EMPTY:
    case KV_KEY_TOO_LARGE:
    case KV_BUFFER_TOO_SMALL:
    case KV_PROTOCOL: return 400;
    case KV_VALUE_TOO_LARGE:
    case KV_FRAME_TOO_LARGE: return 413;
    case KV_AUTH_REQUIRED:
    case KV_AUTH_FAILED: return 401;
    case KV_UNSUPPORTED: return 404;
    case KV_COMPACTED: return 410;
    case KV_FUTURE_REVISION: return 400;
    case KV_STORE_FULL:
    case KV_MEMORY_LIMIT:
    case KV_NO_SPACE: return 507;
    case KV_NO_MEMORY:
    case KV_BUSY:
    case KV_NOT_LEADER: return 503;
    default: return 500;
    }
}

static const char *reason(int code)
{
    switch (code) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    case 507: return "Insufficient Storage";
    default: return "Internal Server Error";
    }
}

/* The Date header's value, formatted once a second per thread. */
static const char *http_date(void)
{
    static __thread time_t last;
    static __thread char buf[40];
    time_t now = time(NULL);
    if (now != last || !buf[0]) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        last = now;
    }
    return buf;
}

int kvd_http_put(kv_proto_buf *b, const void *p, size_t n)
{
    if (kv_proto_buf_reserve(b, n) != KV_OK)
        return KV_NO_MEMORY;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return KV_OK;
}

int kvd_http_respond(kvd_reply *r, int code, const char *ctype, const void *body, size_t n)
{
    kv_proto_buf *out = r->out;
    char head[768];
    int h = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nDate: %s\r\n",
                     code, reason(code), ctype, n, http_date());
    if (r->u.http.has_etag && code == 200)
        h += snprintf(head + h, sizeof head - (size_t)h,
                      "X-Kvd-Version: %" PRIu64 "\r\nETag: \"%" PRIu64 "\"\r\n", r->u.http.etag,
                      r->u.http.etag);
    if (r->want_expiry && r->expire_at_ms && code == 200)
        h += snprintf(head + h, sizeof head - (size_t)h,
                      "X-Kvd-Expires-At: %" PRIu64 "\r\nX-Kvd-Ttl-Ms: %" PRIu64 "\r\n",
                      r->expire_at_ms, r->expire_left_ms);
    if (code == 401)
        h += snprintf(head + h, sizeof head - (size_t)h,
                      "WWW-Authenticate: Bearer realm=\"kvd\"\r\n");
    if (code == 405 && r->u.http.allow)
        h += snprintf(head + h, sizeof head - (size_t)h, "Allow: %s\r\n", r->u.http.allow);
    if (r->u.http.close_after)
        h += snprintf(head + h, sizeof head - (size_t)h, "Connection: close\r\n");
    else if (r->u.http.http_minor == 0)
        h += snprintf(head + h, sizeof head - (size_t)h, "Connection: keep-alive\r\n");
    h += snprintf(head + h, sizeof head - (size_t)h, "\r\n");
    if (r->u.http.head_only)
        n = 0;
    if (kv_proto_buf_reserve(out, (size_t)h + n) != KV_OK)
        return KV_NO_MEMORY;
    memcpy(out->data + out->len, head, (size_t)h);
    if (n)
        memcpy(out->data + out->len + h, body, n);
    out->len += (size_t)h + n;
    return KV_OK;
}

int kvd_http_error_body(kv_proto_buf *b, int status, const char *msg)
{
    char num[64];
    const char *name = kv_status_name(status);
    int rc = kvd_http_put(b, "{\"error\":{\"status\":\"", 20);
    if (rc == KV_OK)
        rc = kvd_http_put(b, name, strlen(name));
    snprintf(num, sizeof num, "\",\"code\":%d,\"message\":", status);
    if (rc == KV_OK)
        rc = kvd_http_put(b, num, strlen(num));
    if (rc == KV_OK)
        rc = kvd_http_json_string(b, msg, strlen(msg));
    if (rc == KV_OK)
        rc = kvd_http_put(b, "}}\n", 3);
    return rc;
}

/* ---- collecting the result -------------------------------------------------- */

static void tree_clear(kvd_http *st)
{
    json_decref(st->root);
    json_decref(st->map_key);
    st->root = NULL;
    st->map_key = NULL;
    st->depth = 0;
}

void kvd_http_reply_reset(kvd_http *st)
{
    tree_clear(st);
    st->body_out.len = 0;
    st->err_msg[0] = 0;
}

/* Adds v to the tree; a container with n > 0 elements to come becomes
 * where the next ones go. */
static int add(kvd_reply *r, json_t *v, size_t n)
{
    kvd_http *st = S(r);
    if (r->err) {
        json_decref(v);
        return r->err;
    }
    if (!v)
        return r->err = KV_NO_MEMORY;
    if (r->started == DONE || r->started == PAGE || (st->depth == 0 && st->root)) {
        json_decref(v); /* a second value after a complete reply */
        return r->err = KV_INTERNAL;
    }
    r->started = STARTED;
    if (st->depth == 0) {
        st->root = v;
    } else {
        json_t *top = st->stack[st->depth - 1];
        int rc = 0;
        if (json_is_array(top)) {
            rc = json_array_append_new(top, v);
        } else if (!st->map_key) {
            if (!json_is_string(v)) {
                json_decref(v);
                return r->err = KV_INTERNAL;
            }
            st->map_key = v;
            v = NULL;
        } else {
            rc = json_object_set_new(top, json_string_value(st->map_key), v);
            json_decref(st->map_key);
            st->map_key = NULL;
        }
        if (rc != 0)
            return r->err = KV_NO_MEMORY;
        st->left[st->depth - 1]--;
    }
    if (v && n > 0) {
        if (st->depth == KVD_HTTP_DEPTH)
            return r->err = KV_INTERNAL;
        st->stack[st->depth] = v;
        st->left[st->depth++] = n;
    }
    while (st->depth > 0 && st->left[st->depth - 1] == 0)
        st->depth--;
    return KV_OK;
}

static json_t *u64_string(uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    return json_string(buf);
}

static json_t *base64_string(const void *p, size_t n)
{
    kv_proto_buf b = {0};
    if (kvd_http_json_base64(&b, p, n) != KV_OK)
        return NULL;
    /* without the quotes */
    json_t *s = json_stringn_nocheck((const char *)b.data + 1, b.len - 2);
    kv_proto_buf_free(&b);
    return s;
}

static int h_error(kvd_reply *r, int status, const char *detail)
{
    kvd_http *st = S(r);
    tree_clear(st);
    st->body_out.len = 0;
    if (r->u.http.raw_done) {
        r->out->len = r->mark;
        r->u.http.raw_done = 0;
    }
    r->status = status;
    r->started = DONE;
    snprintf(st->err_msg, sizeof st->err_msg, "%s", detail ? detail : kv_strerror(status));
    return KV_OK;
}

static int h_ok(kvd_reply *r, const char *word) { return add(r, json_string(word), 0); }
static int h_nil(kvd_reply *r) { return add(r, json_null(), 0); }
static int h_nil_array(kvd_reply *r) { return add(r, json_null(), 0); }
static int h_integer(kvd_reply *r, int64_t v) { return add(r, json_integer(v), 0); }
static int h_uinteger(kvd_reply *r, uint64_t v) { return add(r, json_integer((json_int_t)v), 0); }
static int h_dbl(kvd_reply *r, double v)
{
    return add(r, isfinite(v) ? json_real(v) : json_null(), 0);
}
static int h_boolean(kvd_reply *r, int v) { return add(r, json_boolean(v), 0); }
static int h_bytes(kvd_reply *r, const void *p, size_t n) { return add(r, base64_string(p, n), 0); }
static int h_text(kvd_reply *r, const char *s, size_t n)
{
    json_t *v = json_stringn(s, n);
    return add(r, v ? v : base64_string(s, n), 0);
}
static int h_word(kvd_reply *r, const char *s) { return add(r, json_string(s), 0); }
static int h_array(kvd_reply *r, size_t n) { return add(r, json_array(), n); }
static int h_map(kvd_reply *r, size_t n) { return add(r, json_object(), 2 * n); }

static int h_versioned(kvd_reply *r, const void *p, size_t n, uint64_t version)
{
    if (r->u.http.mode == KVD_HTTP_OUT_RAW && r->started == NOTHING && !r->err) {
        /* GET /v1/keys/{key}: the value itself, once, behind its head */
        r->u.http.has_etag = 1;
        r->u.http.etag = version;
        r->started = DONE;
        r->u.http.raw_done = 1;
        r->err = kvd_http_respond(r, 200, "application/octet-stream", p, n);
        return r->err;
    }
    json_t *o = json_object();
    if (o && (json_object_set_new(o, "value", base64_string(p, n)) != 0 ||
              json_object_set_new(o, "version", u64_string(version)) != 0)) {
        json_decref(o);
        o = NULL;
    }
    return add(r, o, 0);
}

static int h_written(kvd_reply *r, uint64_t revision)
{
    r->u.http.etag = revision;
    json_t *o = json_object();
    if (o && json_object_set_new(o, "revision", u64_string(revision)) != 0) {
        json_decref(o);
        o = NULL;
    }
    return add(r, o, 0);
}

static int h_deleted(kvd_reply *r, uint64_t n, uint64_t revision)
{
    json_t *o = json_object();
    if (o && (json_object_set_new(o, "deleted", u64_string(n)) != 0 ||
              (revision && json_object_set_new(o, "revision", u64_string(revision)) != 0))) {
        json_decref(o);
        o = NULL;
    }
    return add(r, o, 0);
}

/* A key's expiry: {"expires_at": "<Unix ms>" or null, "ttl_ms": ...}. */
static int h_expiry(kvd_reply *r, unsigned form, int found, uint64_t expire_at_ms,
                    uint64_t now_ms)
{
    (void)form;
    if (!found)
        return h_error(r, KV_NOT_FOUND, "no such key");
    json_t *o = json_object();
    if (o && (json_object_set_new(o, "expires_at",
                                  expire_at_ms ? u64_string(expire_at_ms) : json_null()) != 0 ||
              json_object_set_new(o, "ttl_ms",
                                  expire_at_ms ? u64_string(expire_at_ms > now_ms
                                                                ? expire_at_ms - now_ms : 0)
                                               : json_null()) != 0)) {
        json_decref(o);
        o = NULL;
    }
    return add(r, o, 0);
}

/* EXPIRE, PERSIST: {"revision", "changed"}, or the outcome as an error. */
static int h_updated(kvd_reply *r, int status, int changed, uint64_t revision)
{
    if (status != KV_OK)
        return h_error(r, status, NULL);
    json_t *o = json_object();
    if (o && (json_object_set_new(o, "revision", u64_string(revision)) != 0 ||
              json_object_set_new(o, "changed", json_boolean(changed)) != 0)) {
        json_decref(o);
        o = NULL;
    }
    return add(r, o, 0);
}

/* ---- a SCAN page, as JSON text -------------------------------------------------
 * {"entries":[{"key":"..","value":"..","version":".."}...],"cursor":"N","more":true} */

static int h_page_begin(kvd_reply *r, int keys_only, int with_cursor)
{
    (void)with_cursor;
    kvd_http *st = S(r);
    if (r->started != NOTHING)
        return r->err = KV_INTERNAL;
    r->started = PAGE;
    r->keys_only = keys_only;
    st->page_start = st->body_out.len;
    st->page_first = 1;
    if (kvd_http_put(&st->body_out, "{\"entries\":[", 12) != KV_OK)
        r->err = KV_NO_MEMORY;
    return r->err;
}

static size_t h_page_size(kvd_reply *r)
{
    return S(r)->body_out.len - S(r)->page_start;
}

static size_t h_page_entry_size(kvd_reply *r, size_t klen, size_t vlen, uint64_t version)
{
    (void)version;
    return (klen + 2) / 3 * 4 + (r->keys_only ? 0 : (vlen + 2) / 3 * 4) + 64;
}

static int h_page_add(kvd_reply *r, const void *k, size_t klen, const void *v, size_t vlen,
                      uint64_t version)
{
    kvd_http *st = S(r);
    kv_proto_buf *b = &st->body_out;
    if (r->err)
        return r->err;
    char ver[48];
    snprintf(ver, sizeof ver, ",\"version\":\"%" PRIu64 "\"}", version);
    int rc = kvd_http_put(b, st->page_first ? "{\"key\":" : ",{\"key\":", st->page_first ? 7 : 8);
    if (rc == KV_OK)
        rc = kvd_http_json_base64(b, k, klen);
    if (rc == KV_OK && !r->keys_only) {
        rc = kvd_http_put(b, ",\"value\":", 9);
        if (rc == KV_OK)
            rc = kvd_http_json_base64(b, v, vlen);
    }
    if (rc == KV_OK)
        rc = kvd_http_put(b, ver, strlen(ver));
    st->page_first = 0;
    return r->err = rc;
}

static void h_page_save(kvd_reply *r)
{
    S(r)->page_saved = S(r)->body_out.len;
    S(r)->page_saved_first = S(r)->page_first;
}

static void h_page_restore(kvd_reply *r)
{
    S(r)->body_out.len = S(r)->page_saved;
    S(r)->page_first = S(r)->page_saved_first;
}

static int h_page_end(kvd_reply *r, uint64_t next_cursor)
{
    kvd_http *st = S(r);
    if (r->err)
        return r->err;
    char tail[96];
    snprintf(tail, sizeof tail, "],\"cursor\":\"%" PRIu64 "\",\"more\":%s}\n", next_cursor,
             next_cursor ? "true" : "false");
    r->started = DONE;
    return r->err = kvd_http_put(&st->body_out, tail, strlen(tail));
}

/* ---- finishing: the endpoint's shape ------------------------------------------ */

static uint64_t u64_of(json_t *v)
{
    return json_is_integer(v) ? (uint64_t)json_integer_value(v) : 0;
}

/* TXN's [succeeded, revision, [[status, value?, version?]...]]. */
static json_t *shape_txn(json_t *root)
{
    json_t *results = json_array(), *doc = json_object();
    json_t *rs = json_array_get(root, 2);
    size_t i;
    json_t *res;
    json_array_foreach(rs, i, res) {
        json_t *o = json_object();
        json_object_set_new(o, "status",
                            json_string(kv_status_name((int)u64_of(json_array_get(res, 0)))));
        if (json_array_size(res) == 3) {
            json_object_set(o, "value", json_array_get(res, 1));
            json_object_set_new(o, "version", u64_string(u64_of(json_array_get(res, 2))));
        }
        json_array_append_new(results, o);
    }
    json_object_set(doc, "succeeded", json_array_get(root, 0));
    json_object_set_new(doc, "revision", u64_string(u64_of(json_array_get(root, 1))));
    json_object_set_new(doc, "results", results);
    return doc;
}

/* MGET's [{value, version} | null ...], in the keys' order. */
static json_t *shape_mget(json_t *root)
{
    return json_pack("{s:O}", "values", root);
}

/* HISTORY's [compact_revision, [[revision, value | null, create_revision,
 * version, expire_at_ms]...]]. */
static json_t *shape_history(json_t *root)
{
    json_t *events = json_array(), *doc = json_object();
    size_t i;
    json_t *e;
    json_array_foreach(json_array_get(root, 1), i, e) {
        json_t *o = json_object();
        json_t *val = json_array_get(e, 1);
        json_object_set_new(o, "revision", u64_string(u64_of(json_array_get(e, 0))));
        json_object_set_new(o, "deleted", json_boolean(json_is_null(val)));
        if (!json_is_null(val)) {
            json_object_set(o, "value", val);
            json_object_set_new(o, "create_revision", u64_string(u64_of(json_array_get(e, 2))));
            json_object_set_new(o, "version", u64_string(u64_of(json_array_get(e, 3))));
            json_object_set_new(o, "expire_at_ms", u64_string(u64_of(json_array_get(e, 4))));
        }
        json_array_append_new(events, o);
    }
    json_object_set_new(doc, "compact_revision", u64_string(u64_of(json_array_get(root, 0))));
    json_object_set_new(doc, "events", events);
    return doc;
}

/* ROLLBACK's [changed, revision]. */
static json_t *shape_rollback(json_t *root)
{
    return json_pack("{s:o,s:o}", "changed", u64_string(u64_of(json_array_get(root, 0))),
                     "revision", u64_string(u64_of(json_array_get(root, 1))));
}

static int dump_cb(const char *buf, size_t n, void *data)
{
    return kvd_http_put(data, buf, n) == KV_OK ? 0 : -1;
}

static int finish_error(kvd_reply *r)
{
    kvd_http *st = S(r);
    st->body_out.len = 0;
    r->u.http.has_etag = 0;
    int code = r->u.http.code ? r->u.http.code : kvd_http_code(r->status);
    int rc = kvd_http_error_body(&st->body_out, r->status, st->err_msg);
    if (rc == KV_OK)
        rc = kvd_http_respond(r, code, "application/json", st->body_out.data, st->body_out.len);
    return rc;
}

static int finish_json(kvd_reply *r)
{
    kvd_http *st = S(r);
    int kind = r->u.http.kind;
    json_t *doc;
    if (!st->root)
        doc = json_pack("{s:b}", "ok", 1);
    else if (kind == KVD_CMD_TXN && r->u.http.cas_delete) {
        if (!json_is_true(json_array_get(st->root, 0))) {
            r->status = KV_VERSION_MISMATCH;
            snprintf(st->err_msg, sizeof st->err_msg,
                     "the key's version is not the one in If-Match (or If-None-Match: * and "
                     "the key exists)");
            return finish_error(r);
        }
        json_t *res = json_array_get(json_array_get(st->root, 2), 0);
        int found = u64_of(json_array_get(res, 0)) == KV_OK;
        doc = json_object();
        json_object_set_new(doc, "deleted", json_string(found ? "1" : "0"));
        if (found)
            json_object_set_new(doc, "revision", u64_string(u64_of(json_array_get(st->root, 1))));
    } else if (kind == KVD_CMD_TXN && json_is_array(st->root))
        doc = shape_txn(st->root);
    else if ((kind == KVD_CMD_MGET || kind == KVD_CMD_MGET_AT) && json_is_array(st->root))
        doc = shape_mget(st->root);
    else if (kind == KVD_CMD_HISTORY && json_is_array(st->root))
        doc = shape_history(st->root);
    else if (kind == KVD_CMD_ROLLBACK && json_is_array(st->root))
        doc = shape_rollback(st->root);
    else if (kind == KVD_CMD_COMPACT && json_is_object(st->root))
        doc = json_pack("{s:O}", "compact_revision", json_object_get(st->root, "revision"));
    else
        doc = json_incref(st->root);
    if (!doc)
        return KV_NO_MEMORY;
    st->body_out.len = 0;
    int rc = json_dump_callback(doc, dump_cb, &st->body_out, JSON_COMPACT) == 0 ? KV_OK
                                                                               : KV_NO_MEMORY;
    json_decref(doc);
    if (rc == KV_OK)
        rc = kvd_http_put(&st->body_out, "\n", 1);
    if (rc == KV_OK)
        rc = kvd_http_respond(r, 200, "application/json", st->body_out.data, st->body_out.len);
    return rc;
}

static void h_rewind(kvd_reply *r)
{
    kvd_http *st = S(r);
    tree_clear(st);
    st->body_out.len = 0;
    r->u.http.raw_done = 0;
    r->out->len = r->mark;
    r->started = NOTHING;
    r->err = KV_OK;
    r->status = KV_OK;
}

static int h_finish(kvd_reply *r)
{
    kvd_http *st = S(r);
    if (r->none)
        return KV_OK;
    int rc = r->err;
    if (rc == KV_OK) {
        if (r->status != KV_OK)
            rc = finish_error(r);
        else if (r->started == PAGE)
            rc = KV_INTERNAL; /* a page that did not end */
        else if (r->u.http.raw_done)
            rc = KV_OK;
        else if (r->u.http.mode == KVD_HTTP_OUT_TEXT || (!st->root && st->body_out.len > 0))
            rc = kvd_http_respond(r, 200, r->u.http.ctype ? r->u.http.ctype : "application/json",
                                  st->body_out.data, st->body_out.len);
        else
            rc = finish_json(r);
    }
    tree_clear(st);
    st->body_out.len = 0;
    if (rc != KV_OK) {
        r->out->len = r->mark;
        r->started = NOTHING;
        r->u.http.raw_done = 0;
        r->err = rc;
    } else {
        r->started = DONE;
    }
    return rc;
}

static const kvd_reply_ops http_reply = {
    .error = h_error, .ok = h_ok, .nil = h_nil, .nil_array = h_nil_array, .integer = h_integer,
    .uinteger = h_uinteger, .dbl = h_dbl, .boolean = h_boolean, .bytes = h_bytes,
    .text = h_text, .word = h_word, .array = h_array, .map = h_map,
    .versioned = h_versioned, .written = h_written, .deleted = h_deleted,
    .expiry = h_expiry, .updated = h_updated, .page_begin = h_page_begin, .page_size = h_page_size,
    .page_entry_size = h_page_entry_size, .page_add = h_page_add,
    .page_save = h_page_save, .page_restore = h_page_restore, .page_end = h_page_end,
    .rewind = h_rewind, .finish = h_finish,
};

void kvd_http_reply_init(kvd_conn *c, kvd_reply *r, uint64_t id)
{
    kvd_reply_init(r, &http_reply, &c->out, id);
    kvd_http *st = c->fe_state;
    r->u.http.state = st;
    r->u.http.kind = -1;
    r->u.http.http_minor = 1;
    if (st) {
        r->u.http.head_only = st->head_only;
        r->u.http.http_minor = (unsigned char)st->http_minor;
        r->u.http.close_after = st->close_after != 0;
        r->u.http.code = st->code;
    }
}
