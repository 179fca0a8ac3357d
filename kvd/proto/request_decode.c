/*
 * request_decode.c - server side: a request frame body into a
 * kv_proto_request (docs/protocol.md sections 2-4 and 6).
 *
 * Shape first, then limits: the envelope [op, id, args...] is read until
 * the id is known (from then on errors are per-request, not fatal), then
 * the op's arguments in order, then "no trailing bytes". Every array count
 * was checked against the bytes left by kv__rd, so allocating `count`
 * structs is bounded by the frame size (at most ~16 bytes of structs per
 * frame byte).
 */
#include <string.h>

#include "proto_internal.h"

typedef struct dec {
    kv__rd r;
    kv__alloc al;
    const kv_proto_limits *lim;
    const char *error;
} dec;

static int fail(dec *d, int status, const char *why)
{
    d->error = why;
    return status;
}

#define PROTO(why) fail(d, KV_PROTOCOL, why)

static int check_key(dec *d, const kv_key *k)
{
    if (k->len == 0)
        return fail(d, KV_KEY_EMPTY, "key is empty");
    if (k->len > d->lim->max_key_size)
        return fail(d, KV_KEY_TOO_LARGE, "key is too large");
    return KV_OK;
}

static int read_key(dec *d, kv_key *k)
{
    if (kv__rd_bytes(&d->r, k))
        return PROTO("key must be bin or str");
    return check_key(d, k);
}

static int read_value(dec *d, kv_key *v)
{
    if (kv__rd_bytes(&d->r, v))
        return PROTO("value must be bin");
    if (v->len > d->lim->max_value_size)
        return fail(d, KV_VALUE_TOO_LARGE, "value is too large");
    return KV_OK;
}

/* An expiry [mode, ms] (version 4): mode KV_PROTO_EXPIRY_IN or _AT, ms
 * 1..KV_PROTO_EXPIRY_MAX. */
static int read_expiry(dec *d, int *mode, uint64_t *ms)
{
    size_t n;
    uint64_t m;
    if (kv__rd_array(&d->r, &n) || n != 2 || kv__rd_uint(&d->r, &m) || kv__rd_uint(&d->r, ms))
        return PROTO("an expiry is [mode, ms]");
    if (m > KV_PROTO_EXPIRY_AT)
        return fail(d, KV_INVALID_ARGUMENT, "an expiry's mode is 0 (ms from now) or 1 (Unix ms)");
    if (*ms == 0 || *ms > KV_PROTO_EXPIRY_MAX)
        return fail(d, KV_INVALID_ARGUMENT, "an expiry's ms must be 1..2^52");
    *mode = (int)m;
    return KV_OK;
}

static int read_keys(dec *d, kv_proto_request *q, int need_one)
{
    size_t n;
    if (kv__rd_array(&d->r, &n))
        return PROTO("keys must be an array");
    if (need_one && n == 0)
        return PROTO("keys array is empty");
    kv_key *keys = kv__alloc_array(&d->al, n, sizeof *keys);
    if (keys == NULL)
        return fail(d, KV_NO_MEMORY, "out of memory");
    for (size_t i = 0; i < n; i++) {
        int rc = read_key(d, &keys[i]);
        if (rc)
            return rc;
    }
    q->keys = keys;
    q->nkeys = n;
    return KV_OK;
}

static int read_pairs(dec *d, kv_proto_request *q)
{
    size_t n;
    if (kv__rd_array(&d->r, &n) || n % 2 != 0)
        return PROTO("MSET takes an array of key, value, key, value...");
    kv_pair *pairs = kv__alloc_array(&d->al, n / 2, sizeof *pairs);
    if (pairs == NULL)
        return fail(d, KV_NO_MEMORY, "out of memory");
    for (size_t i = 0; i < n / 2; i++) {
        kv_key k, v;
        int rc = read_key(d, &k);
        if (rc == KV_OK)
            rc = read_value(d, &v);
        if (rc)
            return rc;
        pairs[i] = (kv_pair){k.data, k.len, v.data, v.len};
    }
    q->pairs = pairs;
    q->npairs = n / 2;
    return KV_OK;
}

/* The head of a TXN compare or op, [kind, key, ...]: its element count m
 * (at least 2), its kind (at most max_kind) and its key. */
static int read_entry_head(dec *d, size_t *m, uint64_t *kind, uint64_t max_kind, kv_key *key,
                           const char *shape, const char *unknown_kind)
{
    if (kv__rd_array(&d->r, m) || *m < 2 || kv__rd_uint(&d->r, kind))
        return PROTO(shape);
    if (*kind > max_kind)
        return fail(d, KV_INVALID_ARGUMENT, unknown_kind);
    return read_key(d, key);
}

static int read_compares(dec *d, kv_proto_request *q)
{
    size_t n;
    if (kv__rd_array(&d->r, &n))
        return PROTO("TXN compares must be an array");
    kv_compare *c = kv__alloc_array(&d->al, n, sizeof *c);
    if (c == NULL)
        return fail(d, KV_NO_MEMORY, "out of memory");
    for (size_t i = 0; i < n; i++) {
        size_t m;
        uint64_t kind;
        kv_key k, v;
        int rc;
        memset(&c[i], 0, sizeof c[i]);
        if ((rc = read_entry_head(d, &m, &kind, KV_CMP_VALUE_EQ, &k,
                                  "a compare is [kind, key, arg?]", "unknown compare kind")))
            return rc;
        c[i].kind = (kv_compare_kind)kind;
        c[i].key = k.data;
        c[i].klen = k.len;
        if (kind == KV_CMP_VERSION_EQ) {
            if (m != 3 || kv__rd_uint(&d->r, &c[i].version))
                return PROTO("a version compare is [0, key, version]");
        } else if (kind == KV_CMP_VALUE_EQ) {
            if (m != 3)
                return PROTO("a value compare is [3, key, value]");
            if ((rc = read_value(d, &v)))
                return rc;
            c[i].value = v.data;
            c[i].vlen = v.len;
        } else if (m != 2) {
            return PROTO("an exists/absent compare is [kind, key]");
        }
    }
    q->cmps = c;
    q->ncmps = n;
    return KV_OK;
}

static int read_ops(dec *d, kv_proto_request *q, const kv_op **out, size_t *nout,
                    const unsigned char **in_out)
{
    size_t n;
    if (kv__rd_array(&d->r, &n))
        return PROTO("TXN ops must be an array");
    kv_op *o = kv__alloc_array(&d->al, n, sizeof *o);
    if (o == NULL)
        return fail(d, KV_NO_MEMORY, "out of memory");
    unsigned char *in = NULL;
    for (size_t i = 0; i < n; i++) {
        size_t m;
        uint64_t kind;
        kv_key k, v;
        int rc;
        memset(&o[i], 0, sizeof o[i]);
        if ((rc = read_entry_head(d, &m, &kind, KV_OP_DELETE, &k,
                                  "an op is [kind, key, value?]", "unknown op kind")))
            return rc;
        o[i].kind = (kv_op_kind)kind;
        o[i].key = k.data;
        o[i].klen = k.len;
        if (kind == KV_OP_SET) {
            if (m != 3 && m != 4)
                return PROTO("a set op is [1, key, value, expiry?]");
            if ((rc = read_value(d, &v)))
                return rc;
            o[i].value = v.data;
            o[i].vlen = v.len;
            if (m == 4) {
                int mode;
                if ((rc = read_expiry(d, &mode, &o[i].expire_at_ms)))
                    return rc;
                q->has_expiry = 1;
                if (mode == KV_PROTO_EXPIRY_IN) {
                    if (!in) {
                        if (!(in = kv__alloc_array(&d->al, n, 1)))
                            return fail(d, KV_NO_MEMORY, "out of memory");
                        memset(in, 0, n);
                        *in_out = in;
                    }
                    in[i] = 1;
                }
            }
        } else if (m != 2) {
            return PROTO("a get/delete op is [kind, key]");
        }
    }
    *out = o;
    *nout = n;
    return KV_OK;
}

/* The op's arguments; nargs = elements after op and id. */
static int read_args(dec *d, kv_proto_request *q, size_t nargs)
{
    int rc;
    switch (q->op) {
    case KV_PROTO_HELLO:
        if (nargs < 2 || nargs > 3 || kv__rd_uint(&d->r, &q->min_version) ||
            kv__rd_uint(&d->r, &q->max_version))
            return PROTO("HELLO is [0, id, min_version, max_version, name?]");
        if (nargs == 3 && kv__rd_bytes(&d->r, &q->client_name))
            return PROTO("HELLO client name must be str or bin");
        return KV_OK;
    case KV_PROTO_PING:
        if (nargs > 1)
            return PROTO("PING is [1, id, payload?]");
        if (nargs == 1) {
            if (kv__rd_bytes(&d->r, &q->payload))
                return PROTO("PING payload must be bin");
            q->has_payload = 1;
        }
        return KV_OK;
    case KV_PROTO_AUTH:
        if (nargs != 1 || kv__rd_bytes(&d->r, &q->secret))
            return PROTO("AUTH is [2, id, secret]");
        return KV_OK;
    case KV_PROTO_GET:
        if (nargs != 1)
            return PROTO("GET is [3, id, key]");
        return read_key(d, &q->key);
    case KV_PROTO_MGET:
        if (nargs != 1)
            return PROTO("MGET is [4, id, [keys]]");
        return read_keys(d, q, 0);
    case KV_PROTO_SET: {
        if (nargs < 2 || nargs > 4)
            return PROTO("SET is [5, id, key, value, expected?, expiry?]");
        if ((rc = read_key(d, &q->key)) || (rc = read_value(d, &q->value)))
            return rc;
        if (nargs >= 3) {
            /* before an expiry, nil stands for "no expected version" */
            int nil = nargs == 4 ? kv__rd_nil(&d->r) : 0;
            if (nil != 1) {
                if (kv__rd_uint(&d->r, &q->expected))
                    return PROTO("SET expected version must be an unsigned int");
                q->has_expected = 1;
            }
        }
        if (nargs == 4) {
            if ((rc = read_expiry(d, &q->expiry_mode, &q->expiry_ms)))
                return rc;
            q->has_expiry = 1;
        }
        return KV_OK;
    }
    case KV_PROTO_MSET:
        if (nargs != 1 && nargs != 2)
            return PROTO("MSET is [6, id, [k, v, ...], expiry?]");
        if ((rc = read_pairs(d, q)))
            return rc;
        if (nargs == 2) {
            if ((rc = read_expiry(d, &q->expiry_mode, &q->expiry_ms)))
                return rc;
            q->has_expiry = 1;
        }
        return KV_OK;
    case KV_PROTO_DEL:
        if (nargs != 1)
            return PROTO("DEL is [7, id, [keys]]");
        return read_keys(d, q, 1);
    case KV_PROTO_TXN:
        if (nargs != 3)
            return PROTO("TXN is [8, id, compares, then_ops, else_ops]");
        if ((rc = read_compares(d, q)) ||
            (rc = read_ops(d, q, &q->then_ops, &q->nthen, &q->then_in)) ||
            (rc = read_ops(d, q, &q->else_ops, &q->nelse, &q->else_in)))
            return rc;
        return KV_OK;
    case KV_PROTO_SCAN:
        if (nargs < 3 || nargs > 4 || kv__rd_bytes(&d->r, &q->key) ||
            kv__rd_uint(&d->r, &q->cursor) || kv__rd_uint(&d->r, &q->limit))
            return PROTO("SCAN is [9, id, prefix, cursor, limit, keys_only?]");
        if (nargs == 4) {
            if (kv__rd_bool(&d->r, &q->keys_only))
                return PROTO("SCAN keys_only must be true or false");
            q->has_keys_only = 1;
        }
        if (q->key.len > d->lim->max_key_size)
            return fail(d, KV_KEY_TOO_LARGE, "prefix is too large");
        return KV_OK;
    case KV_PROTO_METRICS:
        if (nargs != 0)
            return PROTO("METRICS is [10, id]");
        return KV_OK;
    case KV_PROTO_SNAPSHOT:
        if (nargs != 0)
            return PROTO("SNAPSHOT is [11, id]");
        return KV_OK;
    case KV_PROTO_SNAPSHOT_READ:
        if (nargs != 3 || kv__rd_uint(&d->r, &q->revision) || kv__rd_uint(&d->r, &q->offset) ||
            kv__rd_uint(&d->r, &q->limit))
            return PROTO("SNAPSHOT_READ is [12, id, revision, offset, max_bytes]");
        return KV_OK;
    case KV_PROTO_CLUSTER:
        if (nargs < 1 || nargs > 3 || kv__rd_bytes(&d->r, &q->key) ||
            (nargs >= 2 && kv__rd_uint(&d->r, &q->revision)) ||
            (nargs == 3 && kv__rd_bytes(&d->r, &q->value)))
            return PROTO("CLUSTER is [13, id, subcommand, node_id?, address?]");
        if (q->key.len > 64 || q->value.len > 256)
            return fail(d, KV_INVALID_ARGUMENT, "CLUSTER argument too long");
        return KV_OK;
    case KV_PROTO_TTL:
    case KV_PROTO_PERSIST:
        if (nargs != 1)
            return PROTO(q->op == KV_PROTO_TTL ? "TTL is [14, id, key]"
                                               : "PERSIST is [16, id, key]");
        return read_key(d, &q->key);
    case KV_PROTO_EXPIRE: {
        uint64_t flags = 0;
        if (nargs < 2 || nargs > 3)
            return PROTO("EXPIRE is [15, id, key, expiry, conditions?]");
        if ((rc = read_key(d, &q->key)) ||
            (rc = read_expiry(d, &q->expiry_mode, &q->expiry_ms)))
            return rc;
        q->has_expiry = 1;
        if (nargs == 3 && kv__rd_uint(&d->r, &flags))
            return PROTO("EXPIRE conditions must be an unsigned int");
        if ((flags & ~(uint64_t)KV_PROTO_EXPIRE_ALL) ||
            ((flags & KV_PROTO_EXPIRE_NX) && (flags & ~(uint64_t)KV_PROTO_EXPIRE_NX)) ||
            ((flags & KV_PROTO_EXPIRE_GT) && (flags & KV_PROTO_EXPIRE_LT)))
            return fail(d, KV_INVALID_ARGUMENT,
                        "EXPIRE conditions: NX (1), XX (2), GT (4), LT (8); NX alone, not GT "
                        "with LT");
        q->expire_flags = (unsigned)flags;
        return KV_OK;
    }
    case KV_PROTO_GET_AT:
        if (nargs != 2)
            return PROTO("GET_AT is [17, id, key, revision]");
        if ((rc = read_key(d, &q->key)))
            return rc;
        if (kv__rd_uint(&d->r, &q->revision))
            return PROTO("GET_AT revision must be an unsigned int");
        return KV_OK;
    case KV_PROTO_MGET_AT:
        if (nargs != 2)
            return PROTO("MGET_AT is [18, id, [keys], revision]");
        if ((rc = read_keys(d, q, 0)))
            return rc;
        if (kv__rd_uint(&d->r, &q->revision))
            return PROTO("MGET_AT revision must be an unsigned int");
        return KV_OK;
    case KV_PROTO_SCAN_AT:
        if (nargs < 4 || nargs > 5 || kv__rd_bytes(&d->r, &q->key) ||
            kv__rd_uint(&d->r, &q->revision) || kv__rd_uint(&d->r, &q->cursor) ||
            kv__rd_uint(&d->r, &q->limit))
            return PROTO("SCAN_AT is [19, id, prefix, revision, cursor, limit, keys_only?]");
        if (nargs == 5) {
            if (kv__rd_bool(&d->r, &q->keys_only))
                return PROTO("SCAN_AT keys_only must be true or false");
            q->has_keys_only = 1;
        }
        if (q->key.len > d->lim->max_key_size)
            return fail(d, KV_KEY_TOO_LARGE, "prefix is too large");
        return KV_OK;
    case KV_PROTO_HISTORY:
        if (nargs != 4)
            return PROTO("HISTORY is [20, id, key, min_revision, max_revision, limit]");
        if ((rc = read_key(d, &q->key)))
            return rc;
        if (kv__rd_uint(&d->r, &q->min_revision) || kv__rd_uint(&d->r, &q->revision) ||
            kv__rd_uint(&d->r, &q->limit))
            return PROTO("HISTORY revisions and limit must be unsigned ints");
        return KV_OK;
    case KV_PROTO_ROLLBACK: {
        if (nargs != 3)
            return PROTO("ROLLBACK is [21, id, [keys] or prefix, to_revision, unchanged_since]");
        /* an array: the keys; bytes: a prefix (may be empty: every key) */
        size_t n;
        kv__rd peek = d->r;
        if (kv__rd_array(&peek, &n) == 0) {
            if ((rc = read_keys(d, q, 1)))
                return rc;
        } else {
            if (kv__rd_bytes(&d->r, &q->key))
                return PROTO("ROLLBACK's target is an array of keys or a prefix");
            if (q->key.len > d->lim->max_key_size)
                return fail(d, KV_KEY_TOO_LARGE, "prefix is too large");
            q->has_prefix = 1;
        }
        if (kv__rd_uint(&d->r, &q->revision) || kv__rd_uint(&d->r, &q->unchanged_since))
            return PROTO("ROLLBACK revisions must be unsigned ints");
        return KV_OK;
    }
    case KV_PROTO_COMPACT:
        if (nargs != 1 || kv__rd_uint(&d->r, &q->revision))
            return PROTO("COMPACT is [22, id, revision]");
        return KV_OK;
    case KV_PROTO_WATCH:
        if (nargs != 4 || kv__rd_bytes(&d->r, &q->key) || kv__rd_bool(&d->r, &q->has_prefix) ||
            kv__rd_uint(&d->r, &q->revision) || kv__rd_uint(&d->r, &q->limit))
            return PROTO("WATCH is [23, id, key, prefix, from_revision, max_events]");
        if (q->key.len > d->lim->max_key_size)
            return fail(d, KV_KEY_TOO_LARGE, "key is too large");
        if (q->key.len == 0 && !q->has_prefix)
            return fail(d, KV_KEY_EMPTY, "key is empty");
        return KV_OK;
    case KV_PROTO_CANCEL:
        if (nargs != 1 || kv__rd_uint(&d->r, &q->watch_id))
            return PROTO("CANCEL is [24, id, watch_id]");
        return KV_OK;
    case KV_PROTO_SESSION:
        if (nargs != 1 || kv__rd_uint(&d->r, &q->client_id))
            return PROTO("SESSION is [25, id, client_id]");
        return KV_OK;
    case KV_PROTO_CONSISTENCY:
        if (nargs != 1 || kv__rd_uint(&d->r, &q->consistency))
            return PROTO("CONSISTENCY is [26, id, level]");
        if (q->consistency > KV_PROTO_READ_SERIALIZABLE)
            return fail(d, KV_INVALID_ARGUMENT,
                        "CONSISTENCY's level is 0 (linearizable) or 1 (serializable)");
        return KV_OK;
    default:
        return fail(d, KV_UNSUPPORTED, "unknown op");
    }
}

void kv_proto_limits_init(kv_proto_limits *l)
{
    l->max_key_size = KV_DEFAULT_MAX_KEY_SIZE;
    l->max_value_size = KV_DEFAULT_MAX_VALUE_SIZE;
}

int kv_proto_request_decode(const void *body, size_t len,
                            const kv_proto_limits *limits,
                            kv_proto_arena *arena, kv_proto_request *out)
{
    kv_proto_limits deflim;
    if (limits == NULL) {
        kv_proto_limits_init(&deflim);
        limits = &deflim;
    }
    memset(out, 0, sizeof *out);
    out->op = -1;
    dec dd = {{body, (const uint8_t *)body + len}, {arena, &out->owned_},
              limits, NULL};
    dec *d = &dd;
    size_t n;
    uint64_t op = 0;
    int op_ok;
    int rc;

    if (body == NULL || len == 0)
        rc = PROTO("empty frame");
    else if (kv__rd_array(&d->r, &n) || n < 2)
        rc = PROTO("a request is an array [op, id, args...]");
    else {
        /* The op may have the wrong type (even a value nested deeper than
         * any valid one): skip it to still find the id. */
        const uint8_t *op_at = d->r.p;
        op_ok = kv__rd_uint(&d->r, &op) == 0;
        rc = KV_OK;
        if (!op_ok) {
            d->r.p = op_at;
            if (kv__rd_skip_any(&d->r))
                rc = PROTO("a request is an array [op, id, args...]");
        }
        if (rc == KV_OK && kv__rd_uint(&d->r, &out->id))
            rc = PROTO("request id must be an unsigned int");
        if (rc == KV_OK) {
            out->has_id = 1;
            if (!op_ok)
                rc = PROTO("op must be an unsigned int");
            else if (op >= KV_PROTO_OP_COUNT)
                rc = fail(d, KV_UNSUPPORTED, "unknown op");
            else {
                out->op = (int)op;
                rc = read_args(d, out, n - 2);
                if (rc == KV_OK && d->r.p != d->r.end)
                    rc = PROTO("trailing bytes after the request");
            }
        }
    }
    if (rc != KV_OK) {
        kv__alloc_release(&out->owned_);
        uint64_t id = out->id;
        int has_id = out->has_id;
        int o = out->op;
        memset(out, 0, sizeof *out);
        out->id = id;
        out->has_id = has_id;
        out->op = o;
        out->error = d->error;
    }
    return rc;
}

void kv_proto_request_free(kv_proto_request *req)
{
    if (req != NULL)
        kv__alloc_release(&req->owned_);
}

/* The key of a frame body that starts like [GET or SET, id, key, ...]. */
static int peek_key(const uint8_t *body, size_t len, kv_key *key, bool *is_set)
{
    kv__rd r = {body, body + len};
    size_t n;
    uint64_t op, id;
    if (kv__rd_array(&r, &n) != 0 || n < 3 || kv__rd_uint(&r, &op) != 0 ||
        (op != KV_PROTO_GET && op != KV_PROTO_SET) || kv__rd_uint(&r, &id) != 0)
        return 0;
    *is_set = op == KV_PROTO_SET;
    return kv__rd_bytes(&r, key) == 0 && key->len > 0;
}

size_t kv_proto_peek_keys(const void *buf, size_t len, size_t max_frame, kv_key *keys,
                          bool *is_set, size_t max)
{
    const uint8_t *p = buf;
    size_t off = 0, k = 0;
    while (k < max) {
        size_t boff, blen;
        if (kv_proto_frame_split(p + off, len - off, max_frame, &boff, &blen) != KV_PROTO_FRAME)
            break;
        bool set = false;
        if (peek_key(p + off + boff, blen, &keys[k], &set)) {
            if (is_set)
                is_set[k] = set;
            k++;
        }
        off += boff + blen;
    }
    return k;
}

int kv_proto_peek_id(const void *body, size_t len, uint64_t *id)
{
    kv__rd r = {body, (const uint8_t *)body + len};
    size_t n;
    uint64_t op;
    if (body == NULL || kv__rd_array(&r, &n) || n < 2)
        return 0;
    /* as the decoder: an op of the wrong type is skipped */
    if (kv__rd_uint(&r, &op) && kv__rd_skip_any(&r))
        return 0;
    return kv__rd_uint(&r, id) == 0;
}
