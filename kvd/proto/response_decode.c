/*
 * response_decode.c - client side: a response frame body [id, status,
 * result] into a kv_proto_response, given the op of the request it answers
 * (docs/protocol.md sections 2 and 4).
 *
 * A server is trusted no more than a client: same bounds checks, counts
 * checked against the bytes left, trailing bytes rejected. Values point
 * into the frame; arrays and metric names (copied, NUL-terminated) go to
 * the arena.
 */
#include <string.h>

#include "proto_internal.h"

typedef struct rdec {
    kv__rd r;
    kv__alloc al;
    const char *error;
} rdec;

static int bad(rdec *d, const char *why)
{
    d->error = why;
    return KV_PROTOCOL;
}

static int nomem(rdec *d)
{
    d->error = "out of memory";
    return KV_NO_MEMORY;
}

/* [value, version] -> found value */
static int read_found(rdec *d, kv_proto_value *v)
{
    size_t n;
    kv_key k;
    if (kv__rd_array(&d->r, &n) || n != 2 || kv__rd_bytes(&d->r, &k) ||
        kv__rd_uint(&d->r, &v->version))
        return bad(d, "a value is [bin, version]");
    v->found = 1;
    v->status = KV_OK;
    v->data = k.data;
    v->len = k.len;
    return KV_OK;
}

static int read_mget(rdec *d, kv_proto_response *o)
{
    size_t n;
    if (kv__rd_array(&d->r, &n))
        return bad(d, "MGET result must be an array");
    kv_proto_value *v = kv__alloc_array(&d->al, n, sizeof *v);
    if (v == NULL)
        return nomem(d);
    for (size_t i = 0; i < n; i++) {
        memset(&v[i], 0, sizeof v[i]);
        int nil = kv__rd_nil(&d->r);
        if (nil < 0)
            return bad(d, "MGET result truncated");
        if (!nil && read_found(d, &v[i]))
            return KV_PROTOCOL;
    }
    o->values = v;
    o->nvalues = n;
    return KV_OK;
}

static int read_txn(rdec *d, kv_proto_response *o)
{
    size_t n, m;
    if (kv__rd_array(&d->r, &n) || n != 3 ||
        kv__rd_bool(&d->r, &o->succeeded) ||
        kv__rd_uint(&d->r, &o->version) || kv__rd_array(&d->r, &m))
        return bad(d, "TXN result is [succeeded, version, [results]]");
    kv_proto_value *v = kv__alloc_array(&d->al, m, sizeof *v);
    if (v == NULL)
        return nomem(d);
    for (size_t i = 0; i < m; i++) {
        size_t k;
        uint64_t st;
        kv_key val;
        memset(&v[i], 0, sizeof v[i]);
        if (kv__rd_array(&d->r, &k) || (k != 1 && k != 3) ||
            kv__rd_uint(&d->r, &st) || st > INT32_MAX)
            return bad(d, "a TXN op result is [status, value?, version?]");
        v[i].status = (int)st;
        if (k == 3) {
            if (kv__rd_bytes(&d->r, &val) ||
                kv__rd_uint(&d->r, &v[i].version))
                return bad(d, "a TXN op result is [status, value, version]");
            v[i].found = 1;
            v[i].data = val.data;
            v[i].len = val.len;
        }
    }
    o->results = v;
    o->nresults = m;
    return KV_OK;
}

/* [cursor, [k, v, version, ...]], or [cursor, [k, version, ...]] for a
 * keys_only SCAN. */
static int read_scan(rdec *d, kv_proto_response *o, int keys_only)
{
    size_t n, m, per = keys_only ? 2 : 3;
    if (kv__rd_array(&d->r, &n) || n != 2 || kv__rd_uint(&d->r, &o->cursor) ||
        kv__rd_array(&d->r, &m) || m % per != 0)
        return bad(d, keys_only ? "SCAN result is [cursor, [k, version, ...]]"
                                : "SCAN result is [cursor, [k, v, version, ...]]");
    kv_proto_entry *e = kv__alloc_array(&d->al, m / per, sizeof *e);
    if (e == NULL)
        return nomem(d);
    for (size_t i = 0; i < m / per; i++) {
        kv_key v = {NULL, 0};
        if (kv__rd_bytes(&d->r, &e[i].key) || (!keys_only && kv__rd_bytes(&d->r, &v)) ||
            kv__rd_uint(&d->r, &e[i].version))
            return bad(d, keys_only ? "a SCAN entry is key, version"
                                    : "a SCAN entry is key, value, version");
        e[i].val = v.data;
        e[i].vlen = v.len;
    }
    o->entries = e;
    o->nentries = m / per;
    return KV_OK;
}

/* HISTORY: [compact_revision, [[revision, value | nil, create_revision,
 * version, expire_at_ms], ...]]. */
static int read_history(rdec *d, kv_proto_response *o)
{
    size_t n, m;
    if (kv__rd_array(&d->r, &n) || n != 2 || kv__rd_uint(&d->r, &o->compact_revision) ||
        kv__rd_array(&d->r, &m))
        return bad(d, "HISTORY result is [compact_revision, [events]]");
    kv_proto_event *e = kv__alloc_array(&d->al, m, sizeof *e);
    if (e == NULL)
        return nomem(d);
    for (size_t i = 0; i < m; i++) {
        size_t k;
        int nil;
        memset(&e[i], 0, sizeof e[i]);
        if (kv__rd_array(&d->r, &k) || k != 5 || kv__rd_uint(&d->r, &e[i].revision) ||
            (nil = kv__rd_nil(&d->r)) < 0)
            return bad(d, "a HISTORY event is [revision, value, create_revision, version, "
                          "expire_at_ms]");
        if (nil) {
            e[i].deleted = 1;
        } else {
            kv_key v;
            if (kv__rd_bytes(&d->r, &v))
                return bad(d, "a HISTORY event's value must be bin or nil");
            e[i].value = v.data;
            e[i].vlen = v.len;
        }
        if (kv__rd_uint(&d->r, &e[i].create_revision) || kv__rd_uint(&d->r, &e[i].version) ||
            kv__rd_uint(&d->r, &e[i].expire_at_ms))
            return bad(d, "a HISTORY event is [revision, value, create_revision, version, "
                          "expire_at_ms]");
    }
    o->events = e;
    o->nevents = m;
    return KV_OK;
}

/* name (copied with a NUL) and a number or, if depth allows, a map. */
static int read_metric(rdec *d, kv_proto_metric *m, int depth)
{
    kv_key name;
    memset(m, 0, sizeof *m);
    if (kv__rd_bytes(&d->r, &name))
        return bad(d, "a metric name must be a str");
    char *s = kv__alloc_array(&d->al, name.len + 1, 1);
    if (s == NULL)
        return nomem(d);
    if (name.len)
        memcpy(s, name.data, name.len);
    s[name.len] = '\0';
    m->name = s;
    size_t n;
    int is_uint;
    if (depth == 0 && kv__rd_map(&d->r, &n) == 0) {
        kv_proto_metric *c = kv__alloc_array(&d->al, n, sizeof *c);
        if (c == NULL)
            return nomem(d);
        for (size_t i = 0; i < n; i++) {
            int rc = read_metric(d, &c[i], 1);
            if (rc)
                return rc;
        }
        m->kind = KV_PROTO_METRIC_MAP;
        m->children = c;
        m->nchildren = n;
        return KV_OK;
    }
    if (kv__rd_number(&d->r, &is_uint, &m->u, &m->d))
        return bad(d, "a metric must be a number or a map of numbers");
    m->kind = is_uint ? KV_PROTO_METRIC_UINT : KV_PROTO_METRIC_DOUBLE;
    return KV_OK;
}

static int read_metrics(rdec *d, kv_proto_response *o)
{
    size_t n;
    if (kv__rd_map(&d->r, &n))
        return bad(d, "METRICS result must be a map");
    kv_proto_metric *m = kv__alloc_array(&d->al, n, sizeof *m);
    if (m == NULL)
        return nomem(d);
    for (size_t i = 0; i < n; i++) {
        int rc = read_metric(d, &m[i], 0);
        if (rc)
            return rc;
    }
    o->metrics = m;
    o->nmetrics = n;
    return KV_OK;
}

/* The result of a KV_OK response to op. */
static int read_result(rdec *d, int op, unsigned flags, kv_proto_response *o)
{
    size_t n;
    int nil;
    switch (op) {
    case KV_PROTO_HELLO:
        if (kv__rd_array(&d->r, &n) || n != 3 ||
            kv__rd_uint(&d->r, &o->proto_version) ||
            kv__rd_bytes(&d->r, &o->server_name) ||
            kv__rd_bytes(&d->r, &o->server_version))
            return bad(d, "HELLO result is [version, name, version]");
        return KV_OK;
    case KV_PROTO_PING:
        nil = kv__rd_nil(&d->r);
        if (nil == 0) {
            if (kv__rd_bytes(&d->r, &o->payload))
                return bad(d, "PING result must be nil or bin");
            o->has_payload = 1;
        } else if (nil < 0) {
            return bad(d, "PING result missing");
        }
        return KV_OK;
    case KV_PROTO_AUTH:
        return kv__rd_nil(&d->r) == 1 ? KV_OK
                                       : bad(d, "AUTH result must be nil");
    case KV_PROTO_GET:
    case KV_PROTO_GET_AT:
    case KV_PROTO_SNAPSHOT_READ: /* [bytes, file size] */
        return read_found(d, &o->value);
    case KV_PROTO_MGET:
    case KV_PROTO_MGET_AT:
        return read_mget(d, o);
    case KV_PROTO_HISTORY:
        return read_history(d, o);
    case KV_PROTO_ROLLBACK:
        if (kv__rd_array(&d->r, &n) || n != 2 || kv__rd_uint(&d->r, &o->changed) ||
            kv__rd_uint(&d->r, &o->version))
            return bad(d, "ROLLBACK result is [changed, revision]");
        return KV_OK;
    case KV_PROTO_WATCH:
        if (kv__rd_uint(&d->r, &o->version))
            return bad(d, "WATCH result must be a revision");
        return KV_OK;
    case KV_PROTO_CANCEL:
        return kv__rd_nil(&d->r) == 1 ? KV_OK : bad(d, "CANCEL result must be nil");
    case KV_PROTO_SESSION:
        return kv__rd_nil(&d->r) == 1 ? KV_OK : bad(d, "SESSION result must be nil");
    case KV_PROTO_CONSISTENCY:
        return kv__rd_nil(&d->r) == 1 ? KV_OK : bad(d, "CONSISTENCY result must be nil");
    case KV_PROTO_COMPACT:
        if (kv__rd_uint(&d->r, &o->compact_revision))
            return bad(d, "COMPACT result must be a revision");
        o->version = o->compact_revision;
        return KV_OK;
    case KV_PROTO_SET:
    case KV_PROTO_MSET:
    case KV_PROTO_SNAPSHOT:
    case KV_PROTO_EXPIRE:
    case KV_PROTO_PERSIST:
        if (kv__rd_uint(&d->r, &o->version))
            return bad(d, "SET/MSET/SNAPSHOT/EXPIRE/PERSIST result must be a revision");
        return KV_OK;
    case KV_PROTO_TTL:
        if (kv__rd_array(&d->r, &n) || n != 2 || kv__rd_uint(&d->r, &o->expire_at_ms) ||
            kv__rd_uint(&d->r, &o->ttl_ms))
            return bad(d, "TTL result is [expire_at_ms, ttl_ms]");
        return KV_OK;
    case KV_PROTO_DEL:
        if (kv__rd_array(&d->r, &n) || n != 2 ||
            kv__rd_uint(&d->r, &o->deleted) || kv__rd_uint(&d->r, &o->version))
            return bad(d, "DEL result is [deleted, version]");
        return KV_OK;
    case KV_PROTO_TXN:
        return read_txn(d, o);
    case KV_PROTO_SCAN:
    case KV_PROTO_SCAN_AT:
        return read_scan(d, o, (flags & KV_PROTO_RESULT_KEYS_ONLY) != 0);
    case KV_PROTO_METRICS:
        return read_metrics(d, o);
    case KV_PROTO_CLUSTER: /* nil, or a JSON document */
        nil = kv__rd_nil(&d->r);
        if (nil == 0) {
            if (kv__rd_bytes(&d->r, &o->payload))
                return bad(d, "CLUSTER result must be nil or a string");
            o->has_payload = 1;
        } else if (nil < 0) {
            return bad(d, "CLUSTER result missing");
        }
        return KV_OK;
    default:
        d->error = "unknown op";
        return KV_UNSUPPORTED;
    }
}

int kv_proto_response_decode(const void *body, size_t len, int op,
                             kv_proto_arena *arena, kv_proto_response *out)
{
    return kv_proto_response_decode_ex(body, len, op, 0, arena, out);
}

int kv_proto_response_decode_ex(const void *body, size_t len, int op,
                                unsigned flags, kv_proto_arena *arena,
                                kv_proto_response *out)
{
    memset(out, 0, sizeof *out);
    rdec dd = {{body, (const uint8_t *)body + len}, {arena, &out->owned_},
               NULL};
    rdec *d = &dd;
    size_t n;
    uint64_t st;
    int rc;

    if (op < 0 || op >= KV_PROTO_OP_COUNT) {
        d->error = "unknown op";
        rc = KV_UNSUPPORTED;
    } else if (body == NULL || len == 0 || kv__rd_array(&d->r, &n) ||
               n != 3 || kv__rd_uint(&d->r, &out->id) ||
               kv__rd_uint(&d->r, &st) || st > INT32_MAX) {
        rc = bad(d, "a response is [id, status, result]");
    } else {
        out->status = (int)st;
        if (st == KV_OK) {
            rc = read_result(d, op, flags, out);
        } else if (kv__rd_is_str(&d->r)) {
            rc = kv__rd_bytes(&d->r, &out->detail) ? bad(d, "bad detail")
                                                   : KV_OK;
        } else {
            rc = kv__rd_nil(&d->r) == 1
                     ? KV_OK
                     : bad(d, "an error result must be nil or a str");
        }
        if (rc == KV_OK && d->r.p != d->r.end)
            rc = bad(d, "trailing bytes after the response");
    }
    if (rc != KV_OK) {
        kv__alloc_release(&out->owned_);
        uint64_t id = out->id;
        int status = out->status;
        memset(out, 0, sizeof *out);
        out->id = id;
        out->status = status;
        out->error = d->error;
    }
    return rc;
}

void kv_proto_response_free(kv_proto_response *resp)
{
    if (resp != NULL)
        kv__alloc_release(&resp->owned_);
}
