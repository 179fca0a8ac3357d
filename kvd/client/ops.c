/*
 * ops.c - libkvclient's one-request operations: PING, GET, MGET, SET,
 * MSET, DEL, TXN, SCAN, METRICS, the expiry ones (TTL, EXPIRE, PERSIST,
 * writes with an expiry), and freeing what they return.
 *
 * Each builds a kv_proto_request, calls kv__client_call(), and copies the
 * zero-copy response (which points into the receive buffer) into memory
 * the caller owns, with the same ownership rules as libkv's functions.
 */
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"

void kv_client_value_free(kv_value *v)
{
    if (v == NULL)
        return;
    free(v->data);
    v->data = NULL;
    v->len = 0;
    v->version = 0;
}

void kv_client_values_free(kv_value *values, size_t n)
{
    if (values == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        kv_client_value_free(&values[i]);
}

void kv_client_txn_result_free(kv_txn_result *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nresults; i++)
        kv_client_value_free(&r->results[i].value);
    free(r->results);
    memset(r, 0, sizeof *r);
}

/* Runs q; KV_OK means the server answered KV_OK (result in *r). */
static int run(kv_client *c, kv_proto_request *q, kv_proto_response *r)
{
    kv__client_start_call(c);
    int rc = kv__client_call(c, q, r);
    if (rc != KV_OK)
        return rc;
    return r->status == KV_OK ? KV_OK : kv__client_server_status(c, r);
}

int kv_client_ping(kv_client *c)
{
    kv_proto_request q = {.op = KV_PROTO_PING};
    kv_proto_response r;
    return run(c, &q, &r);
}

/* Runs q, whose result is one [bytes, number]: copied into *out. */
static int run_value(kv_client *c, kv_proto_request *q, kv_value *out)
{
    kv_proto_response r;
    int rc = run(c, q, &r);
    if (rc != KV_OK)
        return rc;
    void *d = kv__client_memdup(r.value.data, r.value.len);
    if (d == NULL)
        return kv__client_error(c, KV_NO_MEMORY, "out of memory");
    out->data = d;
    out->len = r.value.len;
    out->version = r.value.version;
    return KV_OK;
}

int kv_client_get(kv_client *c, const void *key, size_t klen, kv_value *out)
{
    kv_proto_request q = {.op = KV_PROTO_GET, .key = {key, klen}};
    return run_value(c, &q, out);
}

int kv__client_mget_run(kv_client *c, kv_proto_request *q, kv_value *out, const char *name)
{
    kv_proto_response r;
    int rc = run(c, q, &r);
    if (rc != KV_OK)
        return rc;
    size_t n = q->nkeys;
    if (r.nvalues != n)
        return kv__client_fail(c, KV_PROTOCOL, "%s reply has %zu values for %zu keys", name,
                               r.nvalues, n);
    for (size_t i = 0; i < n; i++) {
        const kv_proto_value *v = &r.values[i];
        kv_value tmp = {NULL, 0, 0};
        if (v->found) {
            tmp.data = kv__client_memdup(v->data, v->len);
            if (tmp.data == NULL) {
                kv_client_values_free(out, i);
                return kv__client_error(c, KV_NO_MEMORY, "out of memory");
            }
            tmp.len = v->len;
            tmp.version = v->version;
        }
        out[i] = tmp;
    }
    return KV_OK;
}

int kv_client_mget(kv_client *c, const kv_key *keys, size_t n, kv_value *out)
{
    kv_proto_request q = {.op = KV_PROTO_MGET, .keys = keys, .nkeys = n};
    return kv__client_mget_run(c, &q, out, "MGET");
}

static int set_common(kv_client *c, const void *key, size_t klen,
                      const void *val, size_t vlen, int has_expected,
                      uint64_t expected, uint64_t *version)
{
    kv_proto_request q = {.op = KV_PROTO_SET,
                          .key = {key, klen},
                          .value = {val, vlen},
                          .has_expected = has_expected,
                          .expected = expected};
    kv_proto_response r;
    int rc = run(c, &q, &r);
    if (rc == KV_OK && version != NULL)
        *version = r.version;
    return rc;
}

int kv_client_set(kv_client *c, const void *key, size_t klen, const void *val,
                  size_t vlen, uint64_t *version)
{
    return set_common(c, key, klen, val, vlen, 0, 0, version);
}

int kv_client_set_if(kv_client *c, const void *key, size_t klen,
                     const void *val, size_t vlen, uint64_t expected,
                     uint64_t *version)
{
    return set_common(c, key, klen, val, vlen, 1, expected, version);
}

int kv_client_mset(kv_client *c, const kv_pair *pairs, size_t n,
                   uint64_t *version)
{
    kv_proto_request q = {.op = KV_PROTO_MSET, .pairs = pairs, .npairs = n};
    kv_proto_response r;
    int rc = run(c, &q, &r);
    if (rc == KV_OK && version != NULL)
        *version = r.version;
    return rc;
}

/* ---- expiry (protocol version 4) ------------------------------------------ */

int kv__client_put_expiry(kv_client *c, kv_proto_request *q, int at, uint64_t ms)
{
    if (at && ms == 0)
        return KV_OK; /* no expiry: the plain write */
    if (ms == 0 || ms > KV_PROTO_EXPIRY_MAX)
        return kv__client_error(c, KV_INVALID_ARGUMENT,
                                "an expiry must be 1..2^52 ms (%s)", at ? "a Unix time" : "a TTL");
    q->has_expiry = 1;
    q->expiry_mode = at ? KV_PROTO_EXPIRY_AT : KV_PROTO_EXPIRY_IN;
    q->expiry_ms = ms;
    return KV_OK;
}

static int set_expiring(kv_client *c, const void *key, size_t klen, const void *val,
                        size_t vlen, int at, uint64_t ms, uint64_t *version)
{
    kv_proto_request q = {.op = KV_PROTO_SET, .key = {key, klen}, .value = {val, vlen}};
    kv_proto_response r;
    int rc = kv__client_put_expiry(c, &q, at, ms);
    if (rc == KV_OK)
        rc = run(c, &q, &r);
    if (rc == KV_OK && version != NULL)
        *version = r.version;
    return rc;
}

int kv_client_set_if_ttl(kv_client *c, const void *key, size_t klen, const void *val,
                         size_t vlen, uint64_t expected, uint64_t ttl_ms, uint64_t *version)
{
    kv_proto_request q = {.op = KV_PROTO_SET, .key = {key, klen}, .value = {val, vlen},
                          .has_expected = 1, .expected = expected};
    kv_proto_response r;
    int rc = kv__client_put_expiry(c, &q, 0, ttl_ms);
    if (rc == KV_OK)
        rc = run(c, &q, &r);
    if (rc == KV_OK && version != NULL)
        *version = r.version;
    return rc;
}

int kv_client_set_ex(kv_client *c, const void *key, size_t klen, const void *val, size_t vlen,
                     uint64_t expire_at_ms, uint64_t *version)
{
    return set_expiring(c, key, klen, val, vlen, 1, expire_at_ms, version);
}

int kv_client_set_ttl(kv_client *c, const void *key, size_t klen, const void *val, size_t vlen,
                      uint64_t ttl_ms, uint64_t *version)
{
    return set_expiring(c, key, klen, val, vlen, 0, ttl_ms, version);
}

static int mset_expiring(kv_client *c, const kv_pair *pairs, size_t n, int at, uint64_t ms,
                         uint64_t *version)
{
    kv_proto_request q = {.op = KV_PROTO_MSET, .pairs = pairs, .npairs = n};
    kv_proto_response r;
    int rc = kv__client_put_expiry(c, &q, at, ms);
    if (rc == KV_OK)
        rc = run(c, &q, &r);
    if (rc == KV_OK && version != NULL)
        *version = r.version;
    return rc;
}

int kv_client_mset_ex(kv_client *c, const kv_pair *pairs, size_t n, uint64_t expire_at_ms,
                      uint64_t *version)
{
    return mset_expiring(c, pairs, n, 1, expire_at_ms, version);
}

int kv_client_mset_ttl(kv_client *c, const kv_pair *pairs, size_t n, uint64_t ttl_ms,
                       uint64_t *version)
{
    return mset_expiring(c, pairs, n, 0, ttl_ms, version);
}

int kv_client_ttl(kv_client *c, const void *key, size_t klen, uint64_t *expire_at_ms,
                  uint64_t *ttl_ms)
{
    kv_proto_request q = {.op = KV_PROTO_TTL, .key = {key, klen}};
    kv_proto_response r;
    int rc = run(c, &q, &r);
    if (rc != KV_OK)
        return rc;
    if (expire_at_ms)
        *expire_at_ms = r.expire_at_ms;
    if (ttl_ms)
        *ttl_ms = r.ttl_ms;
    return KV_OK;
}

int kv_client_expire_if(kv_client *c, const void *key, size_t klen, uint64_t ms,
                        unsigned flags, uint64_t *version)
{
    if (flags & ~(KV_CLIENT_EXPIRE_AT | KV_CLIENT_EXPIRE_NX | KV_CLIENT_EXPIRE_XX |
                  KV_CLIENT_EXPIRE_GT | KV_CLIENT_EXPIRE_LT))
        return kv__client_error(c, KV_INVALID_ARGUMENT, "unknown EXPIRE flags");
    kv_proto_request q = {.op = KV_PROTO_EXPIRE, .key = {key, klen}};
    kv_proto_response r;
    int at = (flags & KV_CLIENT_EXPIRE_AT) != 0;
    if (at && ms == 0)
        return kv__client_error(c, KV_INVALID_ARGUMENT,
                                "an expiry time of 0 is none: use kv_client_persist");
    int rc = kv__client_put_expiry(c, &q, at, ms);
    q.expire_flags = flags & ~KV_CLIENT_EXPIRE_AT; /* the same bits as the protocol's */
    if (rc == KV_OK)
        rc = run(c, &q, &r);
    if (rc == KV_OK && version != NULL)
        *version = r.version;
    return rc;
}

int kv_client_expire(kv_client *c, const void *key, size_t klen, uint64_t expire_at_ms,
                     uint64_t *version)
{
    if (expire_at_ms == 0)
        return kv_client_persist(c, key, klen, version);
    return kv_client_expire_if(c, key, klen, expire_at_ms, KV_CLIENT_EXPIRE_AT, version);
}

int kv_client_expire_ttl(kv_client *c, const void *key, size_t klen, uint64_t ttl_ms,
                         uint64_t *version)
{
    return kv_client_expire_if(c, key, klen, ttl_ms, 0, version);
}

int kv_client_persist(kv_client *c, const void *key, size_t klen, uint64_t *version)
{
    kv_proto_request q = {.op = KV_PROTO_PERSIST, .key = {key, klen}};
    kv_proto_response r;
    int rc = run(c, &q, &r);
    if (rc == KV_OK && version != NULL)
        *version = r.version;
    return rc;
}

int kv_client_mdel(kv_client *c, const kv_key *keys, size_t n,
                   size_t *deleted, uint64_t *version)
{
    kv_proto_request q = {.op = KV_PROTO_DEL, .keys = keys, .nkeys = n};
    kv_proto_response r;
    if (n == 0)
        return kv__client_error(c, KV_INVALID_ARGUMENT, "no keys to delete");
    int rc = run(c, &q, &r);
    if (rc != KV_OK)
        return rc;
    if (deleted != NULL)
        *deleted = (size_t)r.deleted;
    if (version != NULL && r.deleted > 0)
        *version = r.version;
    return KV_OK;
}

int kv_client_del(kv_client *c, const void *key, size_t klen,
                  uint64_t *version)
{
    kv_key k = {key, klen};
    size_t deleted = 0;
    int rc = kv_client_mdel(c, &k, 1, &deleted, version);
    if (rc == KV_OK && deleted == 0)
        return kv__client_error(c, KV_NOT_FOUND, "%s",
                                kv_client_strerror(KV_NOT_FOUND));
    return rc;
}

int kv__client_copy_txn(const kv_proto_response *r, kv_txn_result *out)
{
    kv_op_result *res = calloc(r->nresults ? r->nresults : 1, sizeof *res);
    if (res == NULL)
        return KV_NO_MEMORY;
    for (size_t i = 0; i < r->nresults; i++) {
        const kv_proto_value *v = &r->results[i];
        res[i].status = v->status;
        if (v->found) {
            res[i].value.data = kv__client_memdup(v->data, v->len);
            if (res[i].value.data == NULL) {
                kv_txn_result tmp = {0, 0, i, res};
                kv_client_txn_result_free(&tmp);
                return KV_NO_MEMORY;
            }
            res[i].value.len = v->len;
            res[i].value.version = v->version;
        }
    }
    out->succeeded = r->succeeded;
    out->version = r->version;
    out->nresults = r->nresults;
    out->results = res;
    return KV_OK;
}

int kv__client_txn_request(kv_client *c, kv_proto_request *q, const kv_compare *cmps,
                           size_t ncmps, const kv_op *then_ops, size_t nthen,
                           const kv_op *else_ops, size_t nelse, int in,
                           unsigned char **in_buf)
{
    *in_buf = NULL;
    memset(q, 0, sizeof *q);
    q->op = KV_PROTO_TXN;
    q->cmps = cmps;
    q->ncmps = ncmps;
    q->then_ops = then_ops;
    q->nthen = nthen;
    q->else_ops = else_ops;
    q->nelse = nelse;
    /* set ops with an expiry need protocol version 4 */
    for (size_t i = 0; i < nthen + nelse; i++) {
        const kv_op *o = i < nthen ? &then_ops[i] : &else_ops[i - nthen];
        if (o->kind == KV_OP_SET && o->expire_at_ms != 0) {
            if (o->expire_at_ms > KV_PROTO_EXPIRY_MAX)
                return kv__client_error(c, KV_INVALID_ARGUMENT,
                                        "an op's expire_at_ms must be at most 2^52");
            q->has_expiry = 1;
        }
    }
    if (in && q->has_expiry) {
        /* every op's expiry is a time from now */
        unsigned char *b = malloc(nthen + nelse);
        if (b == NULL)
            return kv__client_error(c, KV_NO_MEMORY, "out of memory");
        memset(b, 1, nthen + nelse);
        q->then_in = b;
        q->else_in = b + nthen;
        *in_buf = b;
    }
    return KV_OK;
}

static int txn_common(kv_client *c, const kv_compare *cmps, size_t ncmps,
                      const kv_op *then_ops, size_t nthen, const kv_op *else_ops,
                      size_t nelse, int in, kv_txn_result *result)
{
    kv_proto_request q;
    unsigned char *in_buf;
    int rc = kv__client_txn_request(c, &q, cmps, ncmps, then_ops, nthen, else_ops, nelse,
                                    in, &in_buf);
    kv_proto_response r;
    if (rc == KV_OK)
        rc = run(c, &q, &r);
    free(in_buf);
    if (rc != KV_OK)
        return rc;
    size_t expect = r.succeeded ? nthen : nelse;
    if (r.nresults != expect)
        return kv__client_fail(c, KV_PROTOCOL,
                               "TXN reply has %zu results for %zu ops",
                               r.nresults, expect);
    if (kv__client_copy_txn(&r, result) != KV_OK)
        return kv__client_error(c, KV_NO_MEMORY, "out of memory");
    return KV_OK;
}

int kv_client_txn(kv_client *c, const kv_compare *cmps, size_t ncmps,
                  const kv_op *then_ops, size_t nthen,
                  const kv_op *else_ops, size_t nelse, kv_txn_result *result)
{
    return txn_common(c, cmps, ncmps, then_ops, nthen, else_ops, nelse, 0, result);
}

int kv_client_txn_ttl(kv_client *c, const kv_compare *cmps, size_t ncmps,
                      const kv_op *then_ops, size_t nthen,
                      const kv_op *else_ops, size_t nelse, kv_txn_result *result)
{
    return txn_common(c, cmps, ncmps, then_ops, nthen, else_ops, nelse, 1, result);
}

int kv_client_scan_ex(kv_client *c, const void *prefix, size_t plen,
                      uint64_t cursor, size_t limit, unsigned flags,
                      kv_scan_fn fn, void *ctx, uint64_t *next)
{
    if (flags & ~KV_CLIENT_SCAN_KEYS_ONLY)
        return kv__client_error(c, KV_INVALID_ARGUMENT, "unknown SCAN flags");
    int keys_only = (flags & KV_CLIENT_SCAN_KEYS_ONLY) != 0;
    kv_proto_request q = {.op = KV_PROTO_SCAN,
                          .key = {prefix, plen},
                          .cursor = cursor,
                          .limit = limit,
                          /* version 1 has no keys_only: hide the values */
                          .keys_only = keys_only && c->proto_version >= 2};
    kv_proto_response r;
    int rc = run(c, &q, &r);
    if (rc != KV_OK)
        return rc;
    for (size_t i = 0; i < r.nentries && fn != NULL; i++) {
        const kv_proto_entry *e = &r.entries[i];
        if (fn(ctx, e->key.data, e->key.len, keys_only ? NULL : e->val,
               keys_only ? 0 : e->vlen, e->version))
            break;
    }
    if (next != NULL)
        *next = r.cursor;
    return KV_OK;
}

int kv_client_scan(kv_client *c, const void *prefix, size_t plen,
                   uint64_t cursor, size_t limit, kv_scan_fn fn, void *ctx,
                   uint64_t *next)
{
    return kv_client_scan_ex(c, prefix, plen, cursor, limit, 0, fn, ctx, next);
}

/* ---- METRICS ------------------------------------------------------------ */

static int copy_metrics(kv_proto_arena *a, const kv_proto_metric *src,
                        size_t n, const kv_client_metric **out)
{
    kv_client_metric *m = kv_proto_arena_alloc(a, (n ? n : 1) * sizeof *m);
    if (m == NULL)
        return KV_NO_MEMORY;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(src[i].name);
        char *name = kv_proto_arena_alloc(a, len + 1);
        if (name == NULL)
            return KV_NO_MEMORY;
        memcpy(name, src[i].name, len + 1);
        m[i].name = name;
        m[i].kind = (kv_client_metric_kind)src[i].kind;
        m[i].u = src[i].u;
        m[i].d = src[i].d;
        m[i].children = NULL;
        m[i].nchildren = src[i].nchildren;
        if (src[i].kind == KV_PROTO_METRIC_MAP &&
            copy_metrics(a, src[i].children, src[i].nchildren,
                         &m[i].children) != KV_OK)
            return KV_NO_MEMORY;
    }
    *out = m;
    return KV_OK;
}

int kv_client_metrics_get(kv_client *c, kv_client_metrics *out)
{
    kv_proto_request q = {.op = KV_PROTO_METRICS};
    kv_proto_response r;
    int rc = run(c, &q, &r);
    if (rc != KV_OK)
        return rc;
    kv_proto_arena *a = malloc(sizeof *a);
    if (a == NULL)
        return kv__client_error(c, KV_NO_MEMORY, "out of memory");
    kv_proto_arena_init(a);
    const kv_client_metric *items;
    if (copy_metrics(a, r.metrics, r.nmetrics, &items) != KV_OK) {
        kv_proto_arena_free(a);
        free(a);
        return kv__client_error(c, KV_NO_MEMORY, "out of memory");
    }
    out->items = items;
    out->n = r.nmetrics;
    out->owned_ = a;
    return KV_OK;
}

int kv_client_snapshot(kv_client *c, uint64_t *revision)
{
    kv_proto_request q = {.op = KV_PROTO_SNAPSHOT};
    kv_proto_response r;
    int rc = run(c, &q, &r);
    if (rc == KV_OK && revision)
        *revision = r.version;
    return rc;
}

int kv_client_cluster(kv_client *c, const char *sub, uint64_t node_id, const char *addr,
                      char **json)
{
    if (json)
        *json = NULL;
    if (!sub)
        return kv__client_error(c, KV_INVALID_ARGUMENT, "no CLUSTER subcommand");
    kv_proto_request q = {.op = KV_PROTO_CLUSTER, .key = {sub, strlen(sub)},
                          .revision = node_id};
    if (addr)
        q.value = (kv_key){addr, strlen(addr)};
    kv_proto_response r;
    int rc = run(c, &q, &r);
    if (rc == KV_OK && json && r.has_payload) {
        *json = malloc(r.payload.len + 1);
        if (!*json)
            return kv__client_error(c, KV_NO_MEMORY, "out of memory");
        memcpy(*json, r.payload.data, r.payload.len);
        (*json)[r.payload.len] = '\0';
    }
    return rc;
}

int kv_client_snapshot_read(kv_client *c, uint64_t revision, uint64_t offset, size_t max,
                            kv_value *out)
{
    kv_proto_request q = {.op = KV_PROTO_SNAPSHOT_READ, .revision = revision, .offset = offset,
                          .limit = max};
    return run_value(c, &q, out);
}

void kv_client_metrics_free(kv_client_metrics *m)
{
    if (m == NULL)
        return;
    kv_proto_arena_free(m->owned_);
    free(m->owned_);
    memset(m, 0, sizeof *m);
}

const kv_client_metric *kv_client_metrics_find(const kv_client_metrics *m,
                                               const char *parent,
                                               const char *name)
{
    const kv_client_metric *items = m->items;
    size_t n = m->n;
    if (parent != NULL) {
        const kv_client_metric *p = kv_client_metrics_find(m, NULL, parent);
        if (p == NULL || p->kind != KV_CLIENT_METRIC_MAP)
            return NULL;
        items = p->children;
        n = p->nchildren;
    }
    for (size_t i = 0; i < n; i++)
        if (strcmp(items[i].name, name) == 0)
            return &items[i];
    return NULL;
}
